/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * One pass over a packet's headers into struct pscope_tuple, for the tc
 * programs: Ethernet with up to two VLAN tags (802.1Q / 802.1ad), or no L2
 * header at all on L3 devices; IPv4 (every fragment of a datagram gets ports
 * 0, so all of them hash and track together) or IPv6 (hop-by-hop, routing,
 * destination options and fragment headers skipped); TCP, UDP, SCTP ports,
 * TCP flags, ICMP echo identifiers; for ICMP errors pscope_parse_inner()
 * reads the tuple of the packet the error is about.
 */
#ifndef __PERISCOPE_PARSE_H
#define __PERISCOPE_PARSE_H

#include "proto.h"
#include "tuple.h"

/*
 * Copies `len` (a constant) bytes at `off` into `to`: straight from the
 * linear packet data when they are there, else through the helper (paged
 * data). Returns 0 or a negative error.
 */
static __always_inline int pscope_load(struct __sk_buff *skb, __u32 off, void *to, const __u32 len)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;

	if (off < 0x4000) {
		void *at = data + off;

		if (at + len <= end) {
			__builtin_memcpy(to, at, len);
			return 0;
		}
	}
	return bpf_skb_load_bytes(skb, off, to, len);
}

/* TCP flag bits (the flags byte of the TCP header). */
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_PSH 0x08
#define TCPF_ACK 0x10

/* What one parse learned: the tuple plus the ICMP details the connection
 * table needs. */
struct pscope_pkt {
	struct pscope_tuple t;
	__u8 icmp_type;
	__u8 icmp_code;
	__u8 icmp_echo;  /* 1 echo request, 2 echo reply, 0 neither */
	__u8 icmp_error; /* an ICMP error: the quoted packet starts at t.l4_off + 8 */
};

static __always_inline int pscope_is_icmp_error(__u8 family, __u8 type)
{
	if (family == 4) /* dest unreachable, source quench, redirect, time exceeded, param problem */
		return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
	/* dest unreachable, packet too big, time exceeded, param problem */
	return type >= 1 && type <= 4;
}

/* Ports (or echo identifier) and flags at `off` for protocol `proto`. */
static __always_inline void pscope_parse_l4(struct __sk_buff *skb, __u32 off, __u8 proto,
					    struct pscope_tuple *t, __u32 l4_len, int fragment)
{
	__u8 buf[16];

	t->l4_off = (__u16)off;
	if (fragment)
		return; /* ports 0 for every fragment, flags unknown */
	if (proto == PROTO_TCP) {
		if (pscope_load(skb, off, buf, 14) < 0)
			return;
		t->sport = ((__u16)buf[0] << 8) | buf[1];
		t->dport = ((__u16)buf[2] << 8) | buf[3];
		t->tcp_flags = buf[13];
		__u32 doff = (buf[12] >> 4) * 4;
		t->payload_len = l4_len > doff ? l4_len - doff : 0;
	} else if (proto == PROTO_UDP || proto == PROTO_SCTP) {
		if (pscope_load(skb, off, buf, 4) < 0)
			return;
		t->sport = ((__u16)buf[0] << 8) | buf[1];
		t->dport = ((__u16)buf[2] << 8) | buf[3];
		if (proto == PROTO_UDP)
			t->payload_len = l4_len > 8 ? l4_len - 8 : 0;
	}
}

/* The IP header quoted by an ICMP error at `off` (family as the outer). */
static __always_inline int pscope_parse_inner(struct __sk_buff *skb, __u32 off, __u8 family,
					      struct pscope_tuple *in)
{
	__u8 l4[8];
	__u8 proto;
	int fragment = 0;

	in->family = family;
	if (family == 4) {
		struct iphdr ip;

		if (pscope_load(skb, off, &ip, sizeof(ip)) < 0 || ip.version != 4)
			return -1;
		in->saddr[0] = ip.saddr;
		in->daddr[0] = ip.daddr;
		proto = ip.protocol;
		fragment = (ip.frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;
		off += ip.ihl * 4;
	} else {
		struct ipv6hdr ip6;

		if (pscope_load(skb, off, &ip6, sizeof(ip6)) < 0)
			return -1;
		__builtin_memcpy(in->saddr, &ip6.saddr, 16);
		__builtin_memcpy(in->daddr, &ip6.daddr, 16);
		proto = ip6.nexthdr;
		off += sizeof(ip6);
	}
	in->proto = proto;
	if (fragment)
		return 0;
	if (pscope_load(skb, off, l4, sizeof(l4)) < 0)
		return 0;
	if (proto == PROTO_TCP || proto == PROTO_UDP || proto == PROTO_SCTP) {
		in->sport = ((__u16)l4[0] << 8) | l4[1];
		in->dport = ((__u16)l4[2] << 8) | l4[3];
	} else if ((proto == PROTO_ICMP && (l4[0] == 8 || l4[0] == 0)) ||
		   (proto == PROTO_ICMPV6 && (l4[0] == 128 || l4[0] == 129))) {
		in->sport = ((__u16)l4[4] << 8) | l4[5];
		in->dport = in->sport;
	}
	return 0;
}

/* ICMP / ICMPv6 header at `off`: echo identifier as both ports, errors' inner tuple. */
static __always_inline void pscope_parse_icmp(struct __sk_buff *skb, __u32 off, struct pscope_pkt *p)
{
	__u8 h[8];

	p->t.l4_off = (__u16)off;
	if (pscope_load(skb, off, h, sizeof(h)) < 0)
		return;
	p->icmp_type = h[0];
	p->icmp_code = h[1];
	if (p->t.family == 4 ? h[0] == 8 : h[0] == 128)
		p->icmp_echo = 1;
	else if (p->t.family == 4 ? h[0] == 0 : h[0] == 129)
		p->icmp_echo = 2;
	if (p->icmp_echo) {
		p->t.sport = ((__u16)h[4] << 8) | h[5];
		p->t.dport = p->t.sport;
	} else if (pscope_is_icmp_error(p->t.family, h[0])) {
		p->icmp_error = 1;
	}
}

/*
 * Parses the packet. `l3` is set when the device has no L2 header: the
 * packet starts at the network header and skb->protocol names it.
 * Leaves p->t.family 0 for anything that is not IPv4/IPv6. `p` must be zeroed.
 */
static __always_inline void pscope_parse(struct __sk_buff *skb, int l3, struct pscope_pkt *p)
{
	struct pscope_tuple *t = &p->t;
	__u32 off = 0;
	__be16 proto;

	if (l3) {
		proto = (__be16)skb->protocol;
	} else {
		off = ETH_HLEN;
		if (pscope_load(skb, 12, &proto, sizeof(proto)) < 0)
			return;
#pragma unroll
		for (int i = 0; i < 2; i++) {
			if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
				break;
			if (pscope_load(skb, off + 2, &proto, sizeof(proto)) < 0)
				return;
			off += 4;
		}
	}
	t->l3_off = (__u16)off;

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		__u32 hlen, tot;
		int fragment;

		if (pscope_load(skb, off, &ip, sizeof(ip)) < 0 || ip.version != 4 || ip.ihl < 5)
			return;
		t->family = 4;
		t->proto = ip.protocol;
		t->saddr[0] = ip.saddr;
		t->daddr[0] = ip.daddr;
		hlen = ip.ihl * 4;
		tot = bpf_ntohs(ip.tot_len);
		fragment = (ip.frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;
		if (ip.frag_off & bpf_htons(IP_OFFSET)) {
			t->is_fragment = 1; /* no L4 header in this one */
			return;
		}
		off += hlen;
		if (t->proto == PROTO_ICMP) {
			if (!fragment)
				pscope_parse_icmp(skb, off, p);
			return;
		}
		pscope_parse_l4(skb, off, t->proto, t, tot > hlen ? tot - hlen : 0, fragment);
		return;
	}

	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		__u32 plen;
		__u8 nexthdr;
		int fragment = 0;

		if (pscope_load(skb, off, &ip6, sizeof(ip6)) < 0)
			return;
		t->family = 6;
		__builtin_memcpy(t->saddr, &ip6.saddr, 16);
		__builtin_memcpy(t->daddr, &ip6.daddr, 16);
		plen = bpf_ntohs(ip6.payload_len);
		nexthdr = ip6.nexthdr;
		off += sizeof(ip6);
#pragma unroll
		for (int i = 0; i < PARSE_MAX_EXTHDRS; i++) {
			__u8 ext[4];
			__u32 elen;

			if (nexthdr != NEXTHDR_HOP && nexthdr != NEXTHDR_ROUTING &&
			    nexthdr != NEXTHDR_FRAGMENT && nexthdr != NEXTHDR_DEST)
				break;
			if (pscope_load(skb, off, ext, sizeof(ext)) < 0)
				return;
			if (nexthdr == NEXTHDR_FRAGMENT) {
				elen = 8;
				fragment = 1;
				/* offset != 0: no L4 header in this one */
				if ((((__u16)ext[2] << 8) | ext[3]) & 0xFFF8) {
					t->proto = ext[0];
					t->is_fragment = 1;
					return;
				}
			} else {
				elen = ((__u32)ext[1] + 1) * 8;
			}
			nexthdr = ext[0];
			off += elen;
			plen = plen > elen ? plen - elen : 0;
		}
		t->proto = nexthdr;
		if (nexthdr == PROTO_ICMPV6) {
			if (!fragment)
				pscope_parse_icmp(skb, off, p);
			return;
		}
		pscope_parse_l4(skb, off, nexthdr, t, plen, fragment);
	}
}

#endif /* __PERISCOPE_PARSE_H */
