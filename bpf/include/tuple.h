/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A parsed packet's addresses and ports, shared by the programs in bpf/.
 * Internal to the BPF side: never sent to user space as is.
 */
#ifndef __PERISCOPE_TUPLE_H
#define __PERISCOPE_TUPLE_H

struct pscope_tuple {
	__u32 saddr[4]; /* IPv4 in word 0, network byte order */
	__u32 daddr[4];
	__u16 sport;    /* host byte order; 0 without ports (ICMP echo: identifier) */
	__u16 dport;
	__u8 proto;     /* IPPROTO_* */
	__u8 family;    /* 4 or 6; 0 when the packet is not IP */
	__u8 tcp_flags; /* TCP flags byte (FIN 0x01 ... CWR 0x80), 0 for other protocols */
	__u8 is_fragment; /* non-first IPv4 fragment: no L4 header, ports 0 */
	__u16 l3_off;   /* offset of the network header in the packet */
	__u16 l4_off;   /* offset of the transport header, 0 when absent */
	__u32 payload_len; /* bytes after the transport header (TCP/UDP), else 0 */
};

#endif /* __PERISCOPE_TUPLE_H */
