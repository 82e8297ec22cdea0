/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Flow accounting of the tc trace programs: per-flow counters (one direction
 * at one hook of one device) in a per-CPU hash, for flow export.
 *
 * Two generations: `flow_gen` (array of maps, one slot) points at the table
 * packets count into, either `flows_a` or `flows_b`. User space switches the
 * slot to the other table; the map-in-map update returns only after every
 * program that could still hold the old table has finished (the kernel waits
 * for an RCU grace period), so user space then reads and empties the old
 * table while nothing writes it: no increment is lost between read and
 * delete. Per-CPU values need no atomics. An empty slot turns accounting off.
 *
 * A packet whose flow is not in the table when the table is full goes
 * through the `flow_spill` ring buffer as one struct pscope_flow_spill; when
 * that ring is full too it is counted in `flow_spill_lost`.
 * Included by trace.bpf.c.
 */
#ifndef __PERISCOPE_FLOWS_H
#define __PERISCOPE_FLOWS_H

#include "periscope.h"
#include "parse.h"
#include "flow-gen.h"

struct flow_table flows_a SEC(".maps");
struct flow_table flows_b SEC(".maps");

/* Packets of flows that found the table full. Size (bytes) set before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} flow_spill SEC(".maps");

/* Packets neither in the table nor in `flow_spill` (key 0), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} flow_spill_lost SEC(".maps");

/* SYN times for the handshake RTT, by the SYN's flow key. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct pscope_flow_key);
	__type(value, __u64);
} flow_syn SEC(".maps");

/* Fills the flow key of packet `p` seen at hook `dir` (0 ingress, 1 egress). */
static __always_inline void flow_make_key(struct __sk_buff *skb, __u64 netns_cookie,
					  const struct pscope_pkt *p, __u8 dir,
					  struct pscope_flow_key *k)
{
	k->netns_cookie = netns_cookie;
	k->ifindex = skb->ifindex;
	k->family = p->t.family;
	k->proto = p->t.proto;
	k->direction = dir;
	__builtin_memcpy(k->saddr, p->t.saddr, 16);
	__builtin_memcpy(k->daddr, p->t.daddr, 16);
	if (p->t.proto == PROTO_ICMP || p->t.proto == PROTO_ICMPV6) {
		k->icmp_type = p->icmp_type;
		k->icmp_code = p->icmp_code;
	} else {
		k->sport = p->t.sport;
		k->dport = p->t.dport;
	}
}

/* MACs and DSCP of the packet, for the first packet of a flow on a CPU. */
static __always_inline void flow_fill_headers(struct __sk_buff *skb, const struct pscope_pkt *p,
					      int l3, struct pscope_flow_value *v)
{
	__u8 ip[2], eth[12];

	if (!l3 && pscope_load(skb, 0, eth, sizeof(eth)) == 0) {
		__builtin_memcpy(v->dst_mac, eth, 6);
		__builtin_memcpy(v->src_mac, eth + 6, 6);
	}
	if (pscope_load(skb, p->t.l3_off, ip, sizeof(ip)) == 0)
		v->dscp = p->t.family == 4 ? ip[1] >> 2 : (((ip[0] & 0x0f) << 4) | (ip[1] >> 4)) >> 2;
}

/*
 * TCP handshake RTT: a SYN leaves its time under its own key; the SYN-ACK
 * coming back through the same device (reverse tuple, other hook) takes it
 * and returns the difference, in ns (0 when there is none).
 */
__noinline __u64 flow_handshake_rtt(const struct pscope_flow_key *k, __u8 tcp_flags)
{
	struct pscope_flow_key syn;
	__u64 now, *ts;

	if (!k)
		return 0;
	if ((tcp_flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN) {
		now = bpf_ktime_get_ns();
		bpf_map_update_elem(&flow_syn, k, &now, BPF_ANY);
		return 0;
	}
	if ((tcp_flags & (TCPF_SYN | TCPF_ACK)) != (TCPF_SYN | TCPF_ACK))
		return 0;
	syn = *k;
	__builtin_memcpy(syn.saddr, k->daddr, 16);
	__builtin_memcpy(syn.daddr, k->saddr, 16);
	syn.sport = k->dport;
	syn.dport = k->sport;
	syn.direction = !k->direction;
	ts = bpf_map_lookup_elem(&flow_syn, &syn);
	if (!ts)
		return 0;
	now = bpf_ktime_get_ns() - *ts;
	bpf_map_delete_elem(&flow_syn, &syn);
	return now ? now : 1;
}

/* The first packet counted on this CPU into an entry that exists: everything but
 * the drop counts the drop program may have added. */
static __always_inline void flow_start(struct pscope_flow_value *v,
				       const struct pscope_flow_value *init)
{
	v->first_seen_ns = init->first_seen_ns;
	v->last_seen_ns = init->last_seen_ns;
	v->packets = init->packets;
	v->bytes = init->bytes;
	v->rtt_ns = init->rtt_ns;
	__builtin_memcpy(v->src_mac, init->src_mac, 6);
	__builtin_memcpy(v->dst_mac, init->dst_mac, 6);
	v->tcp_flags = init->tcp_flags;
	v->dscp = init->dscp;
}

/* A packet that found the table full: to user space through `flow_spill`. */
__noinline int flow_spill_packet(const struct pscope_flow_key *k,
				 const struct pscope_flow_value *v)
{
	struct pscope_flow_spill *rec;
	__u32 zero = 0;
	__u64 *lost;

	/* names the record in the object's BTF for the layout check; never false */
	if (!k || !v || !bpf_core_type_id_local(struct pscope_flow_spill))
		return 0;
	rec = bpf_ringbuf_reserve(&flow_spill, sizeof(*rec), 0);
	if (!rec) {
		lost = bpf_map_lookup_elem(&flow_spill_lost, &zero);
		if (lost)
			*lost += 1;
		return 0;
	}
	rec->key = *k;
	rec->value = *v;
	bpf_ringbuf_submit(rec, 0);
	return 1;
}

/*
 * Counts packet `p` (parsed, IP) seen at hook `dir` in the flow table in
 * use, or sends it through `flow_spill` when the table is full. Does
 * nothing while no table is set. `dir_l3` bit 0: the hook (0 ingress,
 * 1 egress); bit 1: the device has no L2 header. A separately verified
 * function (five arguments at most: the two flags share one).
 */
__noinline int flow_account(struct __sk_buff *skb, const struct pscope_pkt *p, __u64 netns_cookie,
			    __u32 dir_l3, __u64 now)
{
	struct pscope_flow_value *v, init = {};
	struct pscope_flow_key k = {};
	__u32 zero = 0;
	__u64 rtt = 0;
	void *table;

	if (!p)
		return 0;
	table = bpf_map_lookup_elem(&flow_gen, &zero);
	if (!table)
		return 0;
	flow_make_key(skb, netns_cookie, p, dir_l3 & 1, &k);
	if (p->t.proto == PROTO_TCP && (p->t.tcp_flags & TCPF_SYN))
		rtt = flow_handshake_rtt(&k, p->t.tcp_flags);
	v = bpf_map_lookup_elem(table, &k);
	if (v && v->packets) {
		v->packets += 1;
		v->bytes += skb->len - p->t.l3_off;
		v->last_seen_ns = now;
		v->tcp_flags |= p->t.tcp_flags;
		if (rtt)
			v->rtt_ns = rtt;
		return 0;
	}
	/* first packet of the flow on this CPU (in this generation) */
	init.first_seen_ns = now;
	init.last_seen_ns = now;
	init.packets = 1;
	init.bytes = skb->len - p->t.l3_off;
	init.tcp_flags = p->t.tcp_flags;
	init.rtt_ns = rtt;
	flow_fill_headers(skb, p, dir_l3 & 2, &init);
	if (v) { /* another CPU (or a drop) made the entry: this CPU has no packets */
		flow_start(v, &init);
		return 0;
	}
	if (bpf_map_update_elem(table, &k, &init, BPF_NOEXIST) == 0)
		return 0;
	v = bpf_map_lookup_elem(table, &k);
	if (v) { /* another CPU made it meanwhile */
		if (v->packets) {
			v->packets += 1;
			v->bytes += init.bytes;
			v->last_seen_ns = now;
			v->tcp_flags |= init.tcp_flags;
		} else {
			flow_start(v, &init);
		}
		return 0;
	}
	return flow_spill_packet(&k, &init);
}

#endif /* __PERISCOPE_FLOWS_H */
