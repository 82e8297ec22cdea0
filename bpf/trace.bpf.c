// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TC ingress/egress trace: one struct pscope_trace per packet into the
 * `events` ring buffer, followed by the first cap_len bytes of the packet.
 * Observe only: both programs always return TC_ACT_UNSPEC.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "periscope.h"
#include "flowhash.h"

#define TC_ACT_UNSPEC (-1)
#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IP_OFFSET 0x1FFF
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_SCTP 132

#define TRACE_FIXED_SIZE ((__u32)__builtin_offsetof(struct pscope_trace, data))

_Static_assert(sizeof(struct pscope_hdr) == 16, "pscope_hdr must be 16 bytes");
_Static_assert(__builtin_offsetof(struct pscope_trace, data) == 48,
	       "pscope_trace fixed part must be 48 bytes");

/* Tunables; the only .rodata global, so it sits at offset 0 of .rodata. */
const volatile struct pscope_trace_config cfg = {
	.capture_len = PSCOPE_DEFAULT_CAPTURE,
};

/* Trace records for user space. Size (bytes, power of two) is set before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} events SEC(".maps");

/* Per-CPU scratch for building one record (too large for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pscope_trace);
} scratch SEC(".maps");

/* Records that could not be written to `events` (key 0), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost_events SEC(".maps");

/* Kernel's struct sk_buff behind the __sk_buff context (kfunc, Linux 6.3+). */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/*
 * Cookie of the network namespace the device belongs to. The
 * bpf_get_netns_cookie() helper is not offered to tc programs on every
 * kernel (and reports the socket's namespace when there is one), so read
 * dev->nd_net.net->net_cookie directly; 0 when the device is unknown.
 */
static __always_inline __u64 device_netns_cookie(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
	struct net_device *dev = BPF_CORE_READ(skb, dev);

	if (!dev)
		return 0;
	return BPF_CORE_READ(dev, nd_net.net, net_cookie);
}

static __always_inline int l4_ports(struct __sk_buff *skb, __u32 off, __u8 proto, __u16 *sport,
				    __u16 *dport)
{
	__u16 ports[2];

	*sport = 0;
	*dport = 0;
	if (proto != PROTO_TCP && proto != PROTO_UDP && proto != PROTO_SCTP)
		return 0;
	if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
		return 0;
	*sport = bpf_ntohs(ports[0]);
	*dport = bpf_ntohs(ports[1]);
	return 0;
}

/* Symmetric 5-tuple hash of an Ethernet frame; 0 when it is not IPv4/IPv6. */
static __always_inline __u32 compute_flow_hash(struct __sk_buff *skb)
{
	__u16 sport = 0, dport = 0;
	__u32 off = ETH_HLEN;
	__be16 h_proto;

	if (bpf_skb_load_bytes(skb, 12, &h_proto, sizeof(h_proto)) < 0)
		return 0;
	if (h_proto == bpf_htons(ETH_P_8021Q) || h_proto == bpf_htons(ETH_P_8021AD)) {
		if (bpf_skb_load_bytes(skb, 16, &h_proto, sizeof(h_proto)) < 0)
			return 0;
		off += 4;
	}

	if (h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		__u32 src, dst;

		if (bpf_skb_load_bytes(skb, off, &ip, sizeof(ip)) < 0 || ip.version != 4)
			return 0;
		/* Non-first fragments carry no L4 header: hash them without ports. */
		if (!(ip.frag_off & bpf_htons(IP_OFFSET)))
			l4_ports(skb, off + ip.ihl * 4, ip.protocol, &sport, &dport);
		src = ip.saddr;
		dst = ip.daddr;
		return flow_hash_combine(endpoint_hash(&src, 1, sport), endpoint_hash(&dst, 1, dport),
					 ip.protocol);
	}

	if (h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		__u32 src[4], dst[4];

		if (bpf_skb_load_bytes(skb, off, &ip6, sizeof(ip6)) < 0)
			return 0;
		l4_ports(skb, off + sizeof(ip6), ip6.nexthdr, &sport, &dport);
		__builtin_memcpy(src, &ip6.saddr, sizeof(src));
		__builtin_memcpy(dst, &ip6.daddr, sizeof(dst));
		return flow_hash_combine(endpoint_hash(src, 4, sport), endpoint_hash(dst, 4, dport),
					 ip6.nexthdr);
	}

	return 0;
}

static __always_inline int trace_packet(struct __sk_buff *skb, __u8 obs_point)
{
	struct pscope_trace *rec;
	__u32 zero = 0;
	__u64 size;
	__u32 cap;
	__u64 *lost;

	rec = bpf_map_lookup_elem(&scratch, &zero);
	if (!rec)
		return TC_ACT_UNSPEC;

	cap = cfg.capture_len;
	if (cap > skb->len)
		cap = skb->len;
	if (cap > PSCOPE_MAX_CAPTURE)
		cap = PSCOPE_MAX_CAPTURE;

	rec->hdr.type = PSCOPE_REC_TRACE;
	rec->hdr.subtype = obs_point;
	rec->hdr.version = PSCOPE_TRACE_VERSION;
	rec->hdr.flags = cap < skb->len ? PSCOPE_F_TRUNCATED : 0;
	rec->hdr.source = bpf_get_smp_processor_id();
	rec->hdr.orig_len = skb->len;
	rec->ts_boot_ns = bpf_ktime_get_boot_ns();
	rec->ifindex = skb->ifindex;
	rec->mark = skb->mark;
	rec->flow_hash = compute_flow_hash(skb);
	rec->l3_proto = (__u16)skb->protocol;
	rec->pkt_type = (__u8)skb->pkt_type;
	rec->trace_reason = PSCOPE_TRACE_REASON_UNKNOWN;
	rec->netns_cookie = device_netns_cookie(skb);

	if (cap > 0) {
		/*
		 * Re-derive the length so the verifier sees 1..PSCOPE_MAX_CAPTURE on
		 * the register passed to the helper; the barrier stops the compiler
		 * from folding the clamp into checks on another register.
		 */
		__u64 n = cap;

		asm volatile("" : "+r"(n));
		n -= 1;
		if (n > PSCOPE_MAX_CAPTURE - 1)
			n = PSCOPE_MAX_CAPTURE - 1;
		n += 1;
		if (bpf_skb_load_bytes(skb, 0, rec->data, n) < 0)
			cap = 0;
	}
	rec->hdr.cap_len = cap;
	if (cap == 0 && skb->len > 0)
		rec->hdr.flags = PSCOPE_F_TRUNCATED;

	size = TRACE_FIXED_SIZE + cap;
	/* Hide the value from the compiler so the clamp below stays for the verifier. */
	asm volatile("" : "+r"(size));
	if (size > sizeof(*rec))
		size = sizeof(*rec);
	if (bpf_ringbuf_output(&events, rec, size, 0) < 0) {
		lost = bpf_map_lookup_elem(&lost_events, &zero);
		if (lost)
			*lost += 1;
	}
	return TC_ACT_UNSPEC;
}

SEC("tc")
int trace_ingress(struct __sk_buff *skb)
{
	return trace_packet(skb, PSCOPE_OBS_FROM_NETWORK);
}

SEC("tc")
int trace_egress(struct __sk_buff *skb)
{
	return trace_packet(skb, PSCOPE_OBS_TO_NETWORK);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
