// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Kernel packet drops: skb:kfree_skb (tp_btf) with the kernel's drop reason.
 * One struct pscope_drop per dropped packet, followed by the first cap_len
 * bytes from the packet's network header (PSCOPE_F_L3), into the trace
 * program's `events` ring buffer (the loader shares `events` and
 * `lost_events` with trace.bpf.o before load), so drops travel with traces.
 *
 * Which reasons count as drops is decided by user space: `drop_reasons`
 * holds one byte per reason value (nonzero = report). Reasons beyond the
 * table (subsystem reasons, with bits in SKB_DROP_REASON_SUBSYS_MASK) are
 * always reported. With `netns_filter` set only devices (or sockets) in a
 * namespace listed in `watched_netns` are reported.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "periscope.h"
#include "flowhash.h"
#include "proto.h"
#include "tuple.h"
#include "flow-gen.h" /* `flow_gen`: shared with trace.bpf.o (bpf_map__reuse_fd before load) */

/* Entries of `drop_reasons`: covers every core reason (SKB_DROP_REASON_MAX is ~130). */
#define DROP_REASON_SLOTS 1024
/* skb->network_header value when the header was never set ((u16)~0U). */
#define NETWORK_HEADER_UNSET 0xffff

#define DROP_FIXED_SIZE ((__u32)__builtin_offsetof(struct pscope_drop, data))

_Static_assert(__builtin_offsetof(struct pscope_drop, data) == 56,
	       "pscope_drop fixed part must be 56 bytes");
_Static_assert(__builtin_offsetof(struct pscope_drop, flow_hash) == 32,
	       "pscope_drop flow_hash must sit where the trace record's does");

/* Tunables (.rodata): cfg first, at offset 0, like the trace program. */
const volatile struct pscope_trace_config cfg = {
	.capture_len = PSCOPE_DEFAULT_CAPTURE,
};
/* Nonzero: report only namespaces listed in `watched_netns`. */
const volatile __u32 netns_filter = 0;

/* `events` and `lost_events`: shared with trace.bpf.o (bpf_map__reuse_fd before load). */
#include "events.h"

/* Drop records written to `events` (key 0), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops_emitted SEC(".maps");

/* Kernel addresses that dropped packets (value unused), read by user space to name
 * them; full once 1024 distinct locations were seen (later ones stay unnamed). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u8);
} drop_locations SEC(".maps");

/* Per-CPU scratch for one record (too large for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pscope_drop);
} drop_scratch SEC(".maps");

/* Reason value -> report (nonzero) or skip (0); filled by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DROP_REASON_SLOTS);
	__type(key, __u32);
	__type(value, __u8);
} drop_reasons SEC(".maps");

/* Netns cookies to report when netns_filter is set (value unused). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} watched_netns SEC(".maps");

static __always_inline int wanted_reason(__u32 reason)
{
	__u8 *keep;

	if (reason >= DROP_REASON_SLOTS)
		return 1;
	keep = bpf_map_lookup_elem(&drop_reasons, &reason);
	return keep && *keep;
}

/* Namespace of the device, else of the receiving or owning socket; 0 if none. */
static __always_inline __u64 drop_netns_cookie(struct sk_buff *skb, struct net_device *dev,
					       struct sock *rx_sk)
{
	struct sock *sk = rx_sk;

	if (dev)
		return BPF_CORE_READ(dev, nd_net.net, net_cookie);
	if (!sk)
		sk = BPF_CORE_READ(skb, sk);
	if (sk)
		return BPF_CORE_READ(sk, __sk_common.skc_net.net, net_cookie);
	return 0;
}

/*
 * The tuple of the packet whose network header is at `nh` (`avail` linear bytes),
 * by the rules of parse.h so the hash equals the trace records': ports for
 * TCP/UDP/SCTP, the echo identifier as both ports for ICMP/ICMPv6 echo, no ports
 * for any fragment, up to PARSE_MAX_EXTHDRS IPv6 extension headers walked.
 */
static __always_inline void drop_l4(const unsigned char *l4, __u32 left, __u8 proto,
				    struct pscope_tuple *t, __u8 *icmp)
{
	__u8 h[8] = {};
	__u32 n = left < 8 ? 4 : 8;

	if (left < 4 || bpf_probe_read_kernel(h, n, l4) < 0)
		return;
	if (proto == PROTO_ICMP || proto == PROTO_ICMPV6) {
		icmp[0] = h[0]; /* type and code, for the flow key */
		icmp[1] = h[1];
	}
	if (proto == PROTO_TCP || proto == PROTO_UDP || proto == PROTO_SCTP) {
		t->sport = ((__u16)h[0] << 8) | h[1];
		t->dport = ((__u16)h[2] << 8) | h[3];
	} else if (n == 8 && ((proto == PROTO_ICMP && (h[0] == 8 || h[0] == 0)) ||
			      (proto == PROTO_ICMPV6 && (h[0] == 128 || h[0] == 129)))) {
		t->sport = ((__u16)h[4] << 8) | h[5];
		t->dport = t->sport;
	}
}

/*
 * Parses the packet at `nh` into `t` (and its ICMP type/code into `icmp`) and
 * returns its symmetric flow hash; 0 (and t->family 0) when it is not IPv4/IPv6.
 */
static __always_inline __u32 drop_parse(const unsigned char *nh, __u32 avail,
					struct pscope_tuple *t, __u8 *icmp)
{
	__u8 version;

	if (avail < 1 || bpf_probe_read_kernel(&version, 1, nh) < 0)
		return 0;
	version >>= 4;
	if (version == 4) {
		struct iphdr ip;
		__u32 hlen;

		if (avail < sizeof(ip) || bpf_probe_read_kernel(&ip, sizeof(ip), nh) < 0 ||
		    ip.ihl < 5)
			return 0;
		hlen = ip.ihl * 4;
		t->proto = ip.protocol;
		if (!(ip.frag_off & bpf_htons(IP_MF | IP_OFFSET)) && avail > hlen)
			drop_l4(nh + hlen, avail - hlen, t->proto, t, icmp);
		t->saddr[0] = ip.saddr;
		t->daddr[0] = ip.daddr;
		t->family = 4;
		return flow_hash_combine(endpoint_hash(t->saddr, 1, t->sport),
					 endpoint_hash(t->daddr, 1, t->dport), t->proto);
	}
	if (version == 6) {
		struct ipv6hdr ip6;
		__u32 off = sizeof(ip6);
		__u8 nexthdr;
		int fragment = 0;

		if (avail < sizeof(ip6) || bpf_probe_read_kernel(&ip6, sizeof(ip6), nh) < 0)
			return 0;
		nexthdr = ip6.nexthdr;
#pragma unroll
		for (int i = 0; i < PARSE_MAX_EXTHDRS; i++) {
			__u8 ext[4];

			if (nexthdr != NEXTHDR_HOP && nexthdr != NEXTHDR_ROUTING &&
			    nexthdr != NEXTHDR_FRAGMENT && nexthdr != NEXTHDR_DEST)
				break;
			if (off > 0x4000 || avail < off + 4 ||
			    bpf_probe_read_kernel(ext, sizeof(ext), nh + off) < 0) {
				fragment = 1; /* header beyond the capture: hash without ports */
				break;
			}
			if (nexthdr == NEXTHDR_FRAGMENT) {
				fragment = 1;
				off += 8;
			} else {
				off += ((__u32)ext[1] + 1) * 8;
			}
			nexthdr = ext[0];
		}
		t->proto = nexthdr;
		if (!fragment && off <= 0x4000 && avail > off)
			drop_l4(nh + off, avail - off, nexthdr, t, icmp);
		__builtin_memcpy(t->saddr, &ip6.saddr, sizeof(t->saddr));
		__builtin_memcpy(t->daddr, &ip6.daddr, sizeof(t->daddr));
		t->family = 6;
		return flow_hash_combine(endpoint_hash(t->saddr, 4, t->sport),
					 endpoint_hash(t->daddr, 4, t->dport), t->proto);
	}
	return 0;
}

/*
 * Adds the drop to its flow in the flow table in use: the entry of the device
 * and hook the packet was counted at (received: ingress, else egress). Flows
 * the table does not hold are not created.
 */
static __always_inline void drop_count_flow(struct sk_buff *skb, __u64 cookie, __u32 ifindex,
					    const struct pscope_tuple *t, const __u8 *icmp,
					    __u32 len, __u32 reason)
{
	struct pscope_flow_key k = {};
	struct pscope_flow_value *v;
	__u32 zero = 0;
	void *table;

	/* full BTF of the flow table's key and value (libbpf sizes `flow_gen`'s inner map
	 * from it); resolved at load, never false */
	if (!t->family || !bpf_core_type_id_local(struct pscope_flow_key) ||
	    !bpf_core_type_id_local(struct pscope_flow_value))
		return;
	table = bpf_map_lookup_elem(&flow_gen, &zero);
	if (!table)
		return;
	k.netns_cookie = cookie;
	k.ifindex = ifindex;
	k.family = t->family;
	k.proto = t->proto;
	k.direction = BPF_CORE_READ(skb, skb_iif) ? 0 : 1;
	__builtin_memcpy(k.saddr, t->saddr, 16);
	__builtin_memcpy(k.daddr, t->daddr, 16);
	if (t->proto == PROTO_ICMP || t->proto == PROTO_ICMPV6) {
		k.icmp_type = icmp[0];
		k.icmp_code = icmp[1];
	} else {
		k.sport = t->sport;
		k.dport = t->dport;
	}
	v = bpf_map_lookup_elem(table, &k);
	if (!v)
		return;
	v->drop_packets += 1;
	v->drop_bytes += len;
	v->drop_reason = reason;
	if (!v->first_seen_ns) { /* no packet counted on this CPU: the drop's time */
		v->first_seen_ns = bpf_ktime_get_ns(); /* coarse is not for tracing programs */
		v->last_seen_ns = v->first_seen_ns;
	}
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(drop_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	     struct sock *rx_sk)
{
	struct pscope_tuple t = {};
	__u8 icmp[2] = {};
	struct net_device *dev;
	struct pscope_drop *rec;
	unsigned char *head;
	__u16 nh_off;
	__u32 linear = 0, orig = 0, cap = 0, zero = 0;
	__u64 cookie;
	__u64 *emitted;

	if (!wanted_reason((__u32)reason))
		return 0;

	dev = BPF_CORE_READ(skb, dev);
	cookie = drop_netns_cookie(skb, dev, rx_sk);
	if (netns_filter && !bpf_map_lookup_elem(&watched_netns, &cookie))
		return 0;

	rec = bpf_map_lookup_elem(&drop_scratch, &zero);
	if (!rec)
		return 0;

	head = BPF_CORE_READ(skb, head);
	nh_off = BPF_CORE_READ(skb, network_header);
	if (nh_off != NETWORK_HEADER_UNSET) {
		/* 64-bit kernels keep data/tail as offsets from head (NET_SKBUFF_DATA_USES_OFFSET). */
		__u32 tail = BPF_CORE_READ(skb, tail);
		unsigned char *data = BPF_CORE_READ(skb, data);
		__u32 data_off = data - head;
		__u32 len = BPF_CORE_READ(skb, len);

		linear = tail > nh_off ? tail - nh_off : 0;
		/* Bytes from the network header to the end of the packet (paged data too). */
		orig = len + data_off > nh_off ? len + data_off - nh_off : 0;
		cap = cfg.capture_len;
		if (cap > linear)
			cap = linear;
		if (cap > PSCOPE_MAX_CAPTURE)
			cap = PSCOPE_MAX_CAPTURE;
	}

	rec->hdr.type = PSCOPE_REC_DROP;
	rec->hdr.subtype = PSCOPE_DROP_SRC_KERNEL;
	rec->hdr.version = PSCOPE_DROP_VERSION;
	rec->hdr.flags = PSCOPE_F_L3;
	rec->hdr.source = bpf_get_smp_processor_id();
	rec->hdr.orig_len = orig;
	rec->ts_boot_ns = bpf_ktime_get_boot_ns();
	rec->ifindex = dev ? BPF_CORE_READ(dev, ifindex) : BPF_CORE_READ(skb, skb_iif);
	rec->reason = (__u32)reason;
	rec->flow_hash = nh_off != NETWORK_HEADER_UNSET ? drop_parse(head + nh_off, linear, &t, icmp) : 0;
	rec->l3_proto = BPF_CORE_READ(skb, protocol);
	rec->obs_point = 0;
	rec->_pad0 = 0;
	rec->netns_cookie = cookie;
	rec->location = (__u64)location;
	drop_count_flow(skb, cookie, rec->ifindex, &t, icmp, orig, (__u32)reason);
	if (!bpf_map_lookup_elem(&drop_locations, &rec->location)) {
		__u8 seen = 1;

		bpf_map_update_elem(&drop_locations, &rec->location, &seen, BPF_NOEXIST);
	}

	if (cap > 0 && bpf_probe_read_kernel(rec->data, pscope_copy_len(cap), head + nh_off) < 0)
		cap = 0;
	rec->hdr.cap_len = cap;
	if (cap < orig)
		rec->hdr.flags |= PSCOPE_F_TRUNCATED;

	if (pscope_output(rec, DROP_FIXED_SIZE + cap, sizeof(*rec)) == 0) {
		emitted = bpf_map_lookup_elem(&drops_emitted, &zero);
		if (emitted)
			*emitted += 1;
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
