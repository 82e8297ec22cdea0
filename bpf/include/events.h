/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The record channel of the trace program: the `events` ring buffer and the
 * per-CPU `lost_events` counter. The drop program includes the same
 * definitions and its loader shares both maps with trace.bpf.o
 * (bpf_map__reuse_fd before load), so drops travel with traces.
 */
#ifndef __PERISCOPE_EVENTS_H
#define __PERISCOPE_EVENTS_H

/* Records for user space. Size (bytes, power of two) is set before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* Records that could not be written to `events` (key 0), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost_events SEC(".maps");

/*
 * Copies the first `size` bytes (at most `max`, the size of the buffer) of a
 * record built in scratch memory into `events`; a full ring buffer counts one
 * lost record. Returns what bpf_ringbuf_output() returned.
 */
static __always_inline long pscope_output(void *rec, __u64 size, __u64 max)
{
	__u32 zero = 0;
	__u64 *lost;
	long rc;

	asm volatile("" : "+r"(size));
	if (size > max)
		size = max;
	rc = bpf_ringbuf_output(&events, rec, size, 0);
	if (rc < 0) {
		lost = bpf_map_lookup_elem(&lost_events, &zero);
		if (lost)
			__sync_fetch_and_add(lost, 1);
	}
	return rc;
}

/*
 * `cap` (1..PSCOPE_MAX_CAPTURE) re-derived so the verifier sees that range on
 * the register handed to a copy helper; the barrier stops the compiler from
 * folding the clamp into checks on another register.
 */
static __always_inline __u64 pscope_copy_len(__u32 cap)
{
	__u64 n = cap;

	asm volatile("" : "+r"(n));
	n -= 1;
	if (n > PSCOPE_MAX_CAPTURE - 1)
		n = PSCOPE_MAX_CAPTURE - 1;
	return n + 1;
}

#endif /* __PERISCOPE_EVENTS_H */
