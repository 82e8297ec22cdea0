/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Protocol numbers and header constants every program that reads packet
 * headers uses (tc programs through parse.h, the drop program directly).
 */
#ifndef __PERISCOPE_PROTO_H
#define __PERISCOPE_PROTO_H

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define PROTO_ICMP 1
#define PROTO_TCP 6
#define PROTO_UDP 17
#define PROTO_ICMPV6 58
#define PROTO_SCTP 132
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_DEST 60
/* IPv6 extension headers skipped before giving up on finding L4. */
#define PARSE_MAX_EXTHDRS 4

#endif /* __PERISCOPE_PROTO_H */
