/*
 * Copies committed samples out of a mapped BPF ring buffer in one call, compiled at
 * run time by bun:ffi's cc (TinyCC). Layout: kernel/bpf/ringbuf.c and
 * https://docs.kernel.org/bpf/ringbuf.html; the data pages are mapped twice in a row,
 * so a run of samples starting anywhere in the ring is contiguous.
 */
#include <stdint.h>
#include <string.h>

#define RINGBUF_BUSY_BIT (1u << 31)
#define RINGBUF_DISCARD_BIT (1u << 30)
#define RINGBUF_HDR_SZ 8

/*
 * Copies committed, non-discarded samples from consumer_pos on into dst, in their ring
 * layout (8-byte header whose first u32 is the length, record, padding to 8): at most
 * max_records samples and dst_cap bytes. Stops at a sample not committed yet. Moves
 * consumer_pos past everything copied or discarded. out[0] = samples copied,
 * out[1] = bytes written, out[2] = 1 when it stopped because dst_cap or max_records
 * was reached with more committed data left, else 0.
 *
 * x86-64 only ordering: loads are not reordered with loads and stores not with loads
 * before them, so volatile accesses give the acquire/release libbpf asks for.
 */
void pscope_ring_copy(uint64_t *consumer_pos, uint64_t *producer_pos, uint8_t *data,
                      uint64_t mask, uint8_t *dst, uint64_t dst_cap, uint64_t max_records,
                      uint64_t *out)
{
	volatile uint64_t *cons_p = (volatile uint64_t *)consumer_pos;
	volatile uint64_t *prod_p = (volatile uint64_t *)producer_pos;
	uint64_t cons = *cons_p;
	uint64_t prod = *prod_p;
	uint64_t written = 0, n = 0, full = 0;
	uint64_t run_start = cons, run_bytes = 0;

	while (cons < prod) {
		volatile uint32_t *hdr = (volatile uint32_t *)(data + (cons & mask));
		uint32_t len = *hdr;
		uint64_t size;

		if (len & RINGBUF_BUSY_BIT)
			break;
		size = ((uint64_t)(len & ~(RINGBUF_BUSY_BIT | RINGBUF_DISCARD_BIT)) + RINGBUF_HDR_SZ + 7) & ~(uint64_t)7;
		if (len & RINGBUF_DISCARD_BIT) {
			if (run_bytes > 0)
				memcpy(dst + written, data + (run_start & mask), run_bytes);
			written += run_bytes;
			run_bytes = 0;
			cons += size;
			run_start = cons;
			continue;
		}
		if (n >= max_records || written + run_bytes + size > dst_cap) {
			full = 1;
			break;
		}
		run_bytes += size;
		cons += size;
		n++;
	}
	if (run_bytes > 0)
		memcpy(dst + written, data + (run_start & mask), run_bytes);
	written += run_bytes;
	*cons_p = cons;
	out[0] = n;
	out[1] = written;
	out[2] = full;
}
