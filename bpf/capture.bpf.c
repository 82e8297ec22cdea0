// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Recorder capture: tc ingress/egress programs, attached by the collector only
 * while a recording is active, that copy the packets matching any recording's
 * filters (struct pscope_capture_filter, 5-tuple with CIDR prefixes) into the
 * `captures` ring buffer as PSCOPE_REC_CAPTURE records: one record per packet,
 * its `recordings` bits naming every recording it matched, its length the
 * largest capture length among them. A full ring buffer is counted per
 * recording slot in `capture_lost`. Always returns TC_ACT_UNSPEC: the packet
 * goes on to the next filter (the trace program) unchanged.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "periscope.h"
#include "parse.h"
#include "skb.h"

#define CAPTURE_FIXED_SIZE 48

_Static_assert(sizeof(struct pscope_capture) == CAPTURE_FIXED_SIZE, "pscope_capture is 48 bytes");

/* Sized by the loader (bpf_map__set_max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} captures SEC(".maps");

/* Records that did not fit in the ring buffer, per CPU and recording slot. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PSCOPE_CAPTURE_MAX_RECORDINGS);
	__type(key, __u32);
	__type(value, __u64);
} capture_lost SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pscope_capture_filters);
} capture_filters SEC(".maps");

/* Whether the first `bits` bits of `a` and `b` (network byte order words) agree. */
static __always_inline int prefix_match(const __u32 *a, const __u32 *b, __u32 bits)
{
	for (int w = 0; w < 4; w++) {
		if (bits == 0)
			return 1;
		__u32 n = bits > 32 ? 32 : bits;
		__u32 mask = bpf_htonl(n == 32 ? 0xffffffffu : ~(0xffffffffu >> n));

		if ((a[w] ^ b[w]) & mask)
			return 0;
		bits -= n;
	}
	return 1;
}

static __always_inline int has_ports(__u8 proto)
{
	return proto == PROTO_TCP || proto == PROTO_UDP || proto == PROTO_SCTP;
}

static __always_inline int filter_match(const struct pscope_capture_filter *f,
					const struct pscope_tuple *t)
{
	if (f->family != t->family)
		return 0;
	if (f->proto != 0 && f->proto != t->proto)
		return 0;
	if (f->src_port != 0 || f->dst_port != 0) {
		if (!has_ports(t->proto) || t->is_fragment)
			return 0;
		if (f->src_port != 0 && f->src_port != t->sport)
			return 0;
		if (f->dst_port != 0 && f->dst_port != t->dport)
			return 0;
	}
	return prefix_match(f->src_addr, t->saddr, f->src_prefix) &&
	       prefix_match(f->dst_addr, t->daddr, f->dst_prefix);
}

static long lost_one(__u64 i, void *ctx)
{
	__u32 slot = (__u32)i;

	if (*(__u32 *)ctx & (1u << (slot & 31))) {
		__u64 *n = bpf_map_lookup_elem(&capture_lost, &slot);

		if (n)
			*n += 1;
	}
	return 0;
}

/* Counts one lost record for every recording slot in `recordings`. */
static __always_inline void count_lost(__u32 recordings)
{
	bpf_loop(PSCOPE_CAPTURE_MAX_RECORDINGS, lost_one, &recordings, 0);
}

/* State of the filter walk (bpf_loop callback context). */
struct match_ctx {
	const struct pscope_tuple *t;
	__u32 n;       /* filters in use */
	__u32 matched; /* recording bits matched so far */
	__u32 cap;     /* largest capture length among them */
};

static long match_one(__u64 i, void *ctx)
{
	struct match_ctx *m = ctx;
	struct pscope_capture_filters *cf;
	__u32 zero = 0;

	if (i >= m->n || i >= PSCOPE_CAPTURE_MAX_FILTERS)
		return 1;
	cf = bpf_map_lookup_elem(&capture_filters, &zero);
	if (!cf)
		return 1;
	const struct pscope_capture_filter *f = &cf->filters[i & (PSCOPE_CAPTURE_MAX_FILTERS - 1)];
	__u32 slot = f->recording & (PSCOPE_CAPTURE_MAX_RECORDINGS - 1);

	if ((m->matched & (1u << slot)) || !filter_match(f, m->t))
		return 0;
	m->matched |= 1u << slot;
	if (cf->cap_len[slot] > m->cap)
		m->cap = cf->cap_len[slot];
	return 0;
}

static __always_inline int capture_packet(struct __sk_buff *skb, __u8 obs_point)
{
	struct pscope_capture_filters *cf;
	struct pscope_pkt p = {};
	struct bpf_dynptr rb;
	struct pscope_capture *rec;
	__u32 zero = 0, matched = 0, cap = 0;
	__u64 cookie = 0;
	__u8 flags = 0;
	int l3;

	cf = bpf_map_lookup_elem(&capture_filters, &zero);
	if (!cf || cf->n_filters == 0)
		return TC_ACT_UNSPEC;
	l3 = pscope_device(skb, &cookie);
	pscope_parse(skb, l3, &p);
	if (p.t.family == 0)
		return TC_ACT_UNSPEC;

	struct match_ctx m = { .t = &p.t, .n = cf->n_filters };

	bpf_loop(PSCOPE_CAPTURE_MAX_FILTERS, match_one, &m, 0);
	matched = m.matched;
	cap = m.cap;
	if (!matched)
		return TC_ACT_UNSPEC;

	if (cap > skb->len)
		cap = skb->len;
	if (cap > PSCOPE_CAPTURE_MAX_LEN)
		cap = PSCOPE_CAPTURE_MAX_LEN;
	if (cap < skb->len)
		flags |= PSCOPE_F_TRUNCATED;
	if (l3)
		flags |= PSCOPE_F_L3;

	/* Names struct pscope_capture in the object's BTF for the layout test. */
	if (!bpf_core_type_id_local(struct pscope_capture))
		return TC_ACT_UNSPEC;
	rec = pscope_reserve_packet(&captures, skb, &rb, CAPTURE_FIXED_SIZE, cap);
	if (!rec) {
		count_lost(matched);
		return TC_ACT_UNSPEC;
	}
	pscope_hdr(&rec->hdr, skb, PSCOPE_REC_CAPTURE, obs_point, PSCOPE_CAPTURE_VERSION, flags, cap);
	rec->ts_boot_ns = bpf_ktime_get_boot_ns();
	rec->ifindex = skb->ifindex;
	rec->recordings = matched;
	rec->netns_cookie = cookie;
	rec->l3_proto = (__u16)skb->protocol;
	rec->_pad0 = 0;
	rec->_pad1 = 0;
	bpf_ringbuf_submit_dynptr(&rb, 0);
	return TC_ACT_UNSPEC;
}

SEC("tc")
int capture_ingress(struct __sk_buff *skb)
{
	return capture_packet(skb, PSCOPE_OBS_FROM_NETWORK);
}

SEC("tc")
int capture_egress(struct __sk_buff *skb)
{
	return capture_packet(skb, PSCOPE_OBS_TO_NETWORK);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
