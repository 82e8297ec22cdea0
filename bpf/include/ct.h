/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The trace program's connection table: which side opened a connection,
 * and from that the trace reason of every packet (NEW, ESTABLISHED, REPLY,
 * RELATED, REOPENED). Included by trace.bpf.c after the `conntrack` map.
 *
 * Direction rules:
 *  - a packet with no entry creates one and its sender is the initiator (NEW),
 *    except: a TCP packet without SYN (connection already running when we
 *    started looking: the "pickup" case) takes the side with the higher port
 *    as initiator (clients usually use ephemeral ports), equal ports the
 *    sender; a TCP SYN-ACK makes the receiver the initiator; an ICMP echo
 *    reply makes the receiver the initiator. Those packets are ESTABLISHED or
 *    REPLY, never NEW.
 *  - ICMP echo: requests always come from the initiator, replies from the
 *    responder (also when both ends are the same address).
 *  - a TCP SYN without ACK on an entry that saw FIN or RST restarts the entry
 *    (REOPENED); an entry idle for longer than its timeout is restarted (NEW).
 *  - an ICMP error quoting a packet of a known connection is RELATED and
 *    counted on that connection; one quoting nothing known is not tracked.
 */
#ifndef __PERISCOPE_CT_H
#define __PERISCOPE_CT_H

#include "periscope.h"
#include "parse.h"

#define NSEC_PER_SEC 1000000000ULL
/* Idle times after which an entry is considered a new connection. */
#define CT_TIMEOUT_TCP (6 * 3600 * NSEC_PER_SEC)
#define CT_TIMEOUT_TCP_CLOSING (10 * NSEC_PER_SEC)
#define CT_TIMEOUT_OTHER (60 * NSEC_PER_SEC)

/* Outcome of the lookup for one packet. */
struct ct_result {
	struct pscope_ct_entry *entry; /* NULL: not tracked */
	__u8 reason;                   /* PSCOPE_TRACE_REASON_* */
	__u8 dir;                      /* 0 from the initiator, 1 from the responder */
	__u8 created;                  /* entry made by this packet */
	__u8 first_in_dir;             /* first packet of the connection in this direction */
	__u8 new_flags;                /* TCP flag bits not seen before in this direction */
};

/* 1 when (a, ap) sorts before or equal to (b, bp). */
static __always_inline int ct_addr_le(const __u32 *a, __u16 ap, const __u32 *b, __u16 bp)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (a[i] != b[i])
			return a[i] < b[i];
	}
	return ap <= bp;
}

/* Fills the canonical key for `t`; returns 1 when the sender is the key's lo side. */
static __always_inline int ct_make_key(struct __sk_buff *skb, __u64 netns_cookie,
				       const struct pscope_tuple *t, struct pscope_ct_key *k)
{
	int sender_lo = ct_addr_le(t->saddr, t->sport, t->daddr, t->dport);

	k->netns_cookie = netns_cookie;
	k->ifindex = skb->ifindex;
	k->proto = t->proto;
	k->family = t->family;
	if (sender_lo) {
		__builtin_memcpy(k->addr_lo, t->saddr, 16);
		__builtin_memcpy(k->addr_hi, t->daddr, 16);
		k->port_lo = t->sport;
		k->port_hi = t->dport;
	} else {
		__builtin_memcpy(k->addr_lo, t->daddr, 16);
		__builtin_memcpy(k->addr_hi, t->saddr, 16);
		k->port_lo = t->dport;
		k->port_hi = t->sport;
	}
	return sender_lo;
}

static __always_inline __u64 ct_timeout(const struct pscope_ct_entry *e, __u8 proto)
{
	if (proto != PROTO_TCP)
		return CT_TIMEOUT_OTHER;
	return e->closing ? CT_TIMEOUT_TCP_CLOSING : CT_TIMEOUT_TCP;
}

/* Counts one packet of `len` bytes with TCP flags `flags` in direction `dir`. */
static __always_inline void ct_account(struct pscope_ct_entry *e, __u8 dir, __u32 len, __u8 flags,
				       __u64 now)
{
	__sync_fetch_and_add(&e->packets[dir & 1], 1);
	__sync_fetch_and_add(&e->bytes[dir & 1], len);
	e->last_seen_ns = now;
	if (flags & ~e->tcp_flags[dir & 1])
		e->tcp_flags[dir & 1] |= flags;
	if (flags & (TCPF_FIN | TCPF_RST))
		e->closing = 1;
}

/* (Re)starts `e` for a connection whose initiator is the key's lo side when `init_lo`. */
static __always_inline void ct_init(struct pscope_ct_entry *e, __u8 init_lo, __u64 now)
{
	__builtin_memset(e, 0, sizeof(*e));
	e->first_seen_ns = now;
	e->last_seen_ns = now;
	e->initiator_is_lo = init_lo;
}

/* A packet of the live entry `e`: direction, reason, counters. */
static __always_inline void ct_existing(struct pscope_ct_entry *e, int sender_lo,
					const struct pscope_pkt *p, __u32 len, __u64 now,
					struct ct_result *r)
{
	__u8 flags = p->t.tcp_flags;
	__u8 dir;

	if (p->icmp_echo)
		dir = p->icmp_echo == 2;
	else
		dir = (__u8)sender_lo != e->initiator_is_lo;
	dir &= 1;
	r->reason = dir ? PSCOPE_TRACE_REASON_REPLY : PSCOPE_TRACE_REASON_ESTABLISHED;
	r->first_in_dir = e->packets[dir] == 0;
	r->new_flags = flags & ~e->tcp_flags[dir];
	ct_account(e, dir, len, flags, now);
	r->entry = e;
	r->dir = dir;
}

/*
 * Creates the entry for a packet without a live one (a separately verified
 * function: it holds the new entry on its own stack). `mode` bit 0: the
 * sender is the key's lo side; bit 1: an expired entry is there to replace.
 * Returns the packet's direction in bit 0 and its trace reason in bits 8-15,
 * or -1 when the entry could not be created (another CPU was first, or the
 * table refused it).
 */
__noinline int ct_insert(struct pscope_ct_key *k, const struct pscope_pkt *p, __u32 len,
			 __u64 now, __u32 mode)
{
	struct pscope_ct_entry init;
	int sender_lo = mode & 1;
	__u8 flags, init_lo, dir, reason;
	int syn_only;

	if (!k || !p)
		return -1;
	flags = p->t.tcp_flags;
	syn_only = p->t.proto == PROTO_TCP && (flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN;
	if (p->t.proto == PROTO_TCP && !syn_only) {
		if (flags & TCPF_SYN) /* SYN-ACK: the receiver opened it */
			init_lo = !sender_lo;
		else if (p->t.sport != p->t.dport) /* pickup: the higher port is the client */
			init_lo = (p->t.sport > p->t.dport) ? sender_lo : !sender_lo;
		else
			init_lo = sender_lo;
	} else if (p->icmp_echo == 2) {
		init_lo = !sender_lo;
	} else {
		init_lo = sender_lo;
	}
	dir = ((__u8)sender_lo != init_lo) & 1;
	if ((p->t.proto == PROTO_TCP && !syn_only) || p->icmp_echo == 2)
		reason = dir ? PSCOPE_TRACE_REASON_REPLY : PSCOPE_TRACE_REASON_ESTABLISHED;
	else
		reason = PSCOPE_TRACE_REASON_NEW;

	ct_init(&init, init_lo, now);
	if (dir) { /* constant indexes: stack offsets the verifier can follow */
		init.packets[1] = 1;
		init.bytes[1] = len;
		init.tcp_flags[1] = flags;
	} else {
		init.packets[0] = 1;
		init.bytes[0] = len;
		init.tcp_flags[0] = flags;
	}
	init.closing = (flags & (TCPF_FIN | TCPF_RST)) != 0;
	if (bpf_map_update_elem(&conntrack, k, &init, (mode & 2) ? BPF_ANY : BPF_NOEXIST) < 0)
		return -1;
	return dir | ((int)reason << 8);
}

/*
 * Looks up (creating when needed) the entry of `p`'s connection and fills
 * `r`. `sender_lo` is what ct_make_key returned for `k`.
 */
static __always_inline void ct_track(struct pscope_ct_key *k, int sender_lo,
				     const struct pscope_pkt *p, __u32 len, __u64 now,
				     struct ct_result *r)
{
	__u8 flags = p->t.tcp_flags;
	int syn_only = p->t.proto == PROTO_TCP && (flags & (TCPF_SYN | TCPF_ACK)) == TCPF_SYN;
	struct pscope_ct_entry *e = bpf_map_lookup_elem(&conntrack, k);
	int expired = 0, rc;

	if (e) {
		expired = now - e->last_seen_ns > ct_timeout(e, p->t.proto);
		if (!expired && !(syn_only && e->closing)) {
			ct_existing(e, sender_lo, p, len, now, r);
			return;
		}
		if (!expired) {
			/* SYN after FIN/RST: same tuple, new connection */
			ct_init(e, (__u8)sender_lo, now);
			ct_account(e, 0, len, flags, now);
			r->reason = PSCOPE_TRACE_REASON_REOPENED;
			r->entry = e;
			r->first_in_dir = 1;
			r->new_flags = flags;
			return;
		}
	}

	rc = ct_insert(k, p, len, now, (sender_lo & 1) | (expired ? 2 : 0));
	e = bpf_map_lookup_elem(&conntrack, k);
	if (!e) {
		r->reason = PSCOPE_TRACE_REASON_UNKNOWN;
		return;
	}
	if (rc < 0) {
		/* another CPU created it first */
		ct_existing(e, sender_lo, p, len, now, r);
		return;
	}
	r->entry = e;
	r->created = 1;
	r->dir = rc & 1;
	r->reason = (rc >> 8) & 0xff;
	r->first_in_dir = 1;
	r->new_flags = flags;
}

/*
 * An ICMP error: finds the connection of the quoted packet and counts the
 * error on it. The error travels back towards the quoted packet's sender,
 * so it counts in the direction opposite to the quoted packet's. Returns
 * that direction, or -1 when the quoted connection is unknown.
 */
__noinline int ct_related(struct __sk_buff *skb, __u64 netns_cookie, const struct pscope_pkt *p,
			  __u32 len, __u64 now)
{
	struct pscope_tuple inner = {};
	struct pscope_ct_key k = {};
	struct pscope_ct_entry *e;
	int quoted_lo;
	__u8 dir;

	if (!p || pscope_parse_inner(skb, p->t.l4_off + 8, p->t.family, &inner) < 0)
		return -1;
	quoted_lo = ct_make_key(skb, netns_cookie, &inner, &k);
	e = bpf_map_lookup_elem(&conntrack, &k);
	if (!e)
		return -1;
	dir = ((__u8)quoted_lo == e->initiator_is_lo) & 1; /* quoted from the initiator => error to it */
	__sync_fetch_and_add(&e->packets[dir], 1);
	__sync_fetch_and_add(&e->bytes[dir], len);
	e->last_seen_ns = now;
	return dir;
}

#endif /* __PERISCOPE_CT_H */
