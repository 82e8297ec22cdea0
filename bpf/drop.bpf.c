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
#include "tuple.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IP_OFFSET 0x1FFF
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_SCTP 132
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

/* Shared with trace.bpf.o (bpf_map__reuse_fd before load); same definitions. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost_events SEC(".maps");

/* Drop records written to `events` (key 0), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops_emitted SEC(".maps");

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

static __always_inline void read_ports(const void *l4, __u8 proto, struct pscope_tuple *t)
{
	__u16 ports[2];

	if (proto != PROTO_TCP && proto != PROTO_UDP && proto != PROTO_SCTP)
		return;
	if (bpf_probe_read_kernel(ports, sizeof(ports), l4) < 0)
		return;
	t->sport = bpf_ntohs(ports[0]);
	t->dport = bpf_ntohs(ports[1]);
}

/*
 * Symmetric flow hash of the packet whose network header is at `nh`, equal to
 * the trace program's for the same packet (same ports rule: TCP/UDP/SCTP only,
 * none for non-first IPv4 fragments). 0 when it is not IPv4/IPv6.
 */
static __always_inline __u32 drop_flow_hash(const unsigned char *nh, __u32 avail)
{
	struct pscope_tuple t = {};
	__u8 version;

	if (avail < 1 || bpf_probe_read_kernel(&version, 1, nh) < 0)
		return 0;
	version >>= 4;
	if (version == 4) {
		struct iphdr ip;

		if (avail < sizeof(ip) || bpf_probe_read_kernel(&ip, sizeof(ip), nh) < 0)
			return 0;
		if (!(ip.frag_off & bpf_htons(IP_OFFSET)) && avail >= ip.ihl * 4 + 4)
			read_ports(nh + ip.ihl * 4, ip.protocol, &t);
		t.saddr[0] = ip.saddr;
		t.daddr[0] = ip.daddr;
		return flow_hash_combine(endpoint_hash(t.saddr, 1, t.sport),
					 endpoint_hash(t.daddr, 1, t.dport), ip.protocol);
	}
	if (version == 6) {
		struct ipv6hdr ip6;

		if (avail < sizeof(ip6) || bpf_probe_read_kernel(&ip6, sizeof(ip6), nh) < 0)
			return 0;
		if (avail >= sizeof(ip6) + 4)
			read_ports(nh + sizeof(ip6), ip6.nexthdr, &t);
		__builtin_memcpy(t.saddr, &ip6.saddr, sizeof(t.saddr));
		__builtin_memcpy(t.daddr, &ip6.daddr, sizeof(t.daddr));
		return flow_hash_combine(endpoint_hash(t.saddr, 4, t.sport),
					 endpoint_hash(t.daddr, 4, t.dport), ip6.nexthdr);
	}
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(drop_kfree_skb, struct sk_buff *skb, void *location, enum skb_drop_reason reason,
	     struct sock *rx_sk)
{
	struct net_device *dev;
	struct pscope_drop *rec;
	unsigned char *head;
	__u16 nh_off;
	__u32 linear = 0, orig = 0, cap = 0, zero = 0;
	__u64 cookie, size;
	__u64 *lost, *emitted;

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
	rec->flow_hash = nh_off != NETWORK_HEADER_UNSET ? drop_flow_hash(head + nh_off, linear) : 0;
	rec->l3_proto = BPF_CORE_READ(skb, protocol);
	rec->obs_point = 0;
	rec->_pad0 = 0;
	rec->netns_cookie = cookie;
	rec->location = (__u64)location;

	if (cap > 0) {
		/* Re-derive 1..PSCOPE_MAX_CAPTURE on the register handed to the helper. */
		__u64 n = cap;

		asm volatile("" : "+r"(n));
		n -= 1;
		if (n > PSCOPE_MAX_CAPTURE - 1)
			n = PSCOPE_MAX_CAPTURE - 1;
		n += 1;
		if (bpf_probe_read_kernel(rec->data, n, head + nh_off) < 0)
			cap = 0;
	}
	rec->hdr.cap_len = cap;
	if (cap < orig)
		rec->hdr.flags |= PSCOPE_F_TRUNCATED;

	size = DROP_FIXED_SIZE + cap;
	asm volatile("" : "+r"(size));
	if (size > sizeof(*rec))
		size = sizeof(*rec);
	if (bpf_ringbuf_output(&events, rec, size, 0) < 0) {
		lost = bpf_map_lookup_elem(&lost_events, &zero);
		if (lost)
			__sync_fetch_and_add(lost, 1);
	} else {
		emitted = bpf_map_lookup_elem(&drops_emitted, &zero);
		if (emitted)
			*emitted += 1;
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
