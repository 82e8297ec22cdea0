/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Periscope kernel/user contract: the single definition of every record the
 * BPF programs emit. TypeScript mirrors these layouts in packages/wire and a
 * test compares them with the BTF of the compiled objects.
 *
 * Every record starts with struct pscope_hdr, which carries no length of its
 * own: the ring buffer sample's size is the record's. Readers check that the
 * sample holds the header, then `type` and `version`, then that it is exactly
 * the type's fixed part + cap_len bytes, then read fields at named offsets.
 */
#ifndef __PERISCOPE_H
#define __PERISCOPE_H

/* Record types (pscope_hdr.type), numbered like Cilium's monitor message
 * types where the meaning is the same (1 drop, 2 debug, 3 capture, 4 trace,
 * 5 policy verdict, ...); Periscope-only types start at 128. */
#define PSCOPE_REC_DROP 1           /* packet dropped: kernel drop reason or policy denial */
#define PSCOPE_REC_DEBUG 2          /* datapath debug event (only when settings.debug != 0) */
#define PSCOPE_REC_TRACE 4          /* packet seen at an observation point */
#define PSCOPE_REC_POLICY_VERDICT 5 /* policy decision for a new connection */

/* Record format versions (pscope_hdr.version), per type. */
#define PSCOPE_TRACE_VERSION 2 /* 2: trace_reason in byte 39, PSCOPE_F_L3, aggregation */
#define PSCOPE_DROP_VERSION 1
#define PSCOPE_POLICY_VERDICT_VERSION 1
#define PSCOPE_DEBUG_VERSION 1

/* Observation points (pscope_hdr.subtype for PSCOPE_REC_TRACE), numbered
 * like Cilium's trace sub-types (which map onto flow.TraceObservationPoint). */
#define PSCOPE_OBS_FROM_NETWORK 10 /* tc ingress: packet arrived on the device */
#define PSCOPE_OBS_TO_NETWORK 11   /* tc egress: packet about to leave the device */

/* Header flags (pscope_hdr.flags). */
#define PSCOPE_F_TRUNCATED 0x01 /* cap_len < orig_len */
#define PSCOPE_F_L3 0x02        /* data starts at the network header (no L2 header:
                                 * L3 device such as tun/wireguard/ipip, or a kernel drop) */
#define PSCOPE_F_CT_REPORT 0x04 /* periodic report of an active connection (aggregation) */

/* Trace reasons (pscope_trace.trace_reason), Cilium's datapath numbering
 * (enum trace_reason = ct_status); flow.TraceReason is this value + 1. */
#define PSCOPE_TRACE_REASON_NEW 0         /* first packet of a connection (initiator) */
#define PSCOPE_TRACE_REASON_ESTABLISHED 1 /* later packet from the initiator */
#define PSCOPE_TRACE_REASON_REPLY 2       /* packet from the responder */
#define PSCOPE_TRACE_REASON_RELATED 3     /* ICMP error about a known connection */
#define PSCOPE_TRACE_REASON_REOPENED 4    /* TCP SYN on a closed connection's entry */
#define PSCOPE_TRACE_REASON_UNKNOWN 5     /* not tracked (non-IP, table full) */

/* Drop sources (pscope_hdr.subtype for PSCOPE_REC_DROP). */
#define PSCOPE_DROP_SRC_KERNEL 1 /* skb:kfree_skb; reason is enum skb_drop_reason */
#define PSCOPE_DROP_SRC_POLICY 2 /* Periscope's tc policy; reason is a Cilium drop reason */
/* Cilium's drop reason for a policy denial (flow.DropReason POLICY_DENIED). */
#define PSCOPE_DROP_POLICY_DENIED 133

/* Monitor aggregation levels (pscope_settings.aggregation), like Cilium's
 * monitor-aggregation. Drops and policy verdicts are always reported. */
#define PSCOPE_AGG_NONE 0    /* every packet */
#define PSCOPE_AGG_LOW 1     /* every packet except pure ACKs of established TCP */
#define PSCOPE_AGG_MEDIUM 2  /* first packet per direction, TCP flag changes, periodic report */
#define PSCOPE_AGG_MAXIMUM 3 /* first packet per direction, SYN/FIN/RST, periodic report */

/* Policy verdict record fields (Cilium's policy-verdict notification). */
#define PSCOPE_POLICY_ACTION_ALLOW 0 /* forwarded */
#define PSCOPE_POLICY_ACTION_DENY 1  /* dropped (mode enforce) */
#define PSCOPE_POLICY_ACTION_AUDIT 2 /* would be dropped, forwarded (mode audit) */
/* Match types: Cilium's POLICY_MATCH_* (flow.policy_match_type). */
#define PSCOPE_POLICY_MATCH_NONE 0
#define PSCOPE_POLICY_MATCH_L3_ONLY 1
#define PSCOPE_POLICY_MATCH_L3_L4 2
#define PSCOPE_POLICY_MATCH_L4_ONLY 3
#define PSCOPE_POLICY_MATCH_ALL 4
/* Traffic direction relative to the policy's subject (flow.TrafficDirection). */
#define PSCOPE_DIR_INGRESS 1
#define PSCOPE_DIR_EGRESS 2

/* Largest capture a record can carry, in bytes. */
#define PSCOPE_MAX_CAPTURE 1536
/* Default capture length, in bytes. */
#define PSCOPE_DEFAULT_CAPTURE 128
/* Per-protocol capture overrides in pscope_settings. */
#define PSCOPE_MAX_CAPTURE_RULES 8

/* Common header of every record: 16 bytes. */
struct pscope_hdr {
	__u8 type;      /* PSCOPE_REC_* */
	__u8 subtype;   /* per type; observation point for traces */
	__u8 version;   /* per type format version */
	__u8 flags;     /* PSCOPE_F_* */
	__u32 source;   /* CPU that produced the record */
	__u32 orig_len; /* skb->len at the hook, bytes: from the L2 header on; a GSO/GRO
	                 * skb counts all its segments, so it can exceed one wire frame */
	__u32 cap_len;  /* bytes of packet data that follow the fixed part */
};

/* PSCOPE_REC_TRACE: fixed part is 48 bytes, followed by cap_len packet bytes. */
struct pscope_trace {
	struct pscope_hdr hdr;
	__u64 ts_boot_ns; /* bpf_ktime_get_boot_ns() at observation */
	__u32 ifindex;    /* skb->ifindex */
	__u32 mark;       /* skb->mark */
	__u32 flow_hash;  /* symmetric 5-tuple hash (same both directions), 0 if not IP */
	__u16 l3_proto;   /* skb->protocol, network byte order */
	__u8 pkt_type;    /* skb->pkt_type */
	__u8 trace_reason;  /* PSCOPE_TRACE_REASON_* from the connection table */
	__u64 netns_cookie; /* network namespace cookie of the device, 0 if unknown */
	__u8 data[PSCOPE_MAX_CAPTURE];
};

/* PSCOPE_REC_DROP: fixed part is 56 bytes, followed by cap_len packet bytes.
 * Same offsets as pscope_trace up to netns_cookie (flow_hash at 32). */
struct pscope_drop {
	struct pscope_hdr hdr; /* subtype: PSCOPE_DROP_SRC_* */
	__u64 ts_boot_ns;
	__u32 ifindex;      /* device of the skb (skb->dev or skb->skb_iif), 0 if none */
	__u32 reason;       /* enum skb_drop_reason (kernel) or PSCOPE_DROP_POLICY_DENIED */
	__u32 flow_hash;    /* same hash as trace records of the flow, 0 if not IP */
	__u16 l3_proto;     /* network byte order */
	__u8 obs_point;     /* policy drops: PSCOPE_OBS_*; kernel drops: 0 */
	__u8 _pad0;
	__u64 netns_cookie; /* namespace of the device (or of the socket when no device) */
	__u64 location;     /* kernel text address that dropped the packet; 0 for policy */
	__u8 data[PSCOPE_MAX_CAPTURE];
};

/* PSCOPE_REC_POLICY_VERDICT: fixed part is 56 bytes, followed by cap_len bytes. */
struct pscope_policy_verdict {
	struct pscope_hdr hdr; /* subtype 0 */
	__u64 ts_boot_ns;
	__u32 ifindex;
	__u32 rule_id;      /* id of the deciding rule, 0 for the default decision */
	__u32 flow_hash;
	__u16 l3_proto;     /* network byte order */
	__u8 match_type;    /* PSCOPE_POLICY_MATCH_* */
	__u8 action;        /* PSCOPE_POLICY_ACTION_* */
	__u64 netns_cookie;
	__u8 direction;     /* PSCOPE_DIR_* */
	__u8 obs_point;     /* PSCOPE_OBS_* */
	__u8 _pad0[6];
	__u8 data[PSCOPE_MAX_CAPTURE];
};

/* PSCOPE_REC_DEBUG: 56 bytes, no packet data (cap_len 0). hdr.subtype is the
 * debug type, numbered like flow.DebugEventType. */
struct pscope_debug {
	struct pscope_hdr hdr;
	__u64 ts_boot_ns;
	__u32 ifindex;
	__u32 arg1;
	__u32 flow_hash;
	__u32 arg2;
	__u32 arg3;
	__u32 _pad0;
	__u64 netns_cookie;
};

/* Tunables, set before load through the object's .rodata. The only
 * read-only global in each object, so it sits at offset 0 of .rodata. */
struct pscope_trace_config {
	__u32 capture_len; /* default bytes of each packet to capture, 1..PSCOPE_MAX_CAPTURE */
	__u32 _pad0;
};

/* A capture-length override: packets of `proto` (0 = any) with `port` as
 * source or destination port (0 = any) capture `len` bytes. First match wins. */
struct pscope_capture_rule {
	__u8 proto;
	__u8 _pad0;
	__u16 port; /* host byte order */
	__u16 len;  /* 1..PSCOPE_MAX_CAPTURE */
	__u16 _pad1;
};

/* Run-time settings: the single entry of the `settings` array map, written
 * by the collector at start and on control requests; read per packet. */
struct pscope_settings {
	__u32 aggregation;        /* PSCOPE_AGG_* */
	__u32 report_interval_ms; /* medium/maximum: one report per active connection per interval */
	__u32 debug;              /* nonzero: emit PSCOPE_REC_DEBUG records */
	__u32 n_capture_rules;    /* entries used in capture_rules */
	struct pscope_capture_rule capture_rules[PSCOPE_MAX_CAPTURE_RULES];
};

/* Connection table key (`conntrack`, LRU hash): the canonical 5-tuple (the
 * lower address/port pair first) plus the device, so both directions of a
 * connection on one device share an entry. IPv4 addresses use word 0. */
struct pscope_ct_key {
	__u64 netns_cookie;
	__u32 ifindex;
	__u8 proto;
	__u8 family; /* 4 or 6 */
	__u16 _pad0;
	__u32 addr_lo[4];
	__u32 addr_hi[4];
	__u16 port_lo; /* host byte order; ICMP echo: identifier on both sides */
	__u16 port_hi;
	__u32 _pad1;
};

/* Connection table value. Index [0] is the initiator's direction (the side
 * that sent the first packet seen), [1] the responder's. Counters are
 * updated atomically and never reset while the entry lives. */
struct pscope_ct_entry {
	__u64 first_seen_ns; /* bpf_ktime_get_coarse_ns() (CLOCK_MONOTONIC_COARSE), as the other times */
	__u64 last_seen_ns;
	__u64 last_report_ns; /* last trace record emitted for this connection */
	__u64 packets[2];
	__u64 bytes[2];
	__u8 tcp_flags[2];     /* union of TCP flags seen, per direction */
	__u8 reported_flags[2];/* flags already reported, per direction */
	__u8 initiator_is_lo;  /* 1 when the initiator is the key's lo side */
	__u8 closing;          /* FIN or RST seen */
	__u8 policy_action;    /* PSCOPE_POLICY_ACTION_* cached for policy_rev */
	__u8 _pad0;
	__u32 policy_rev;      /* policy revision the cached verdict belongs to */
	__u32 policy_rule_id;
};

/* Policy rule sets (bpf/include/policy.h). Two slots: the collector fills the
 * inactive one, then switches the active revision (slot = revision & 1). */
#define PSCOPE_POLICY_SLOTS 2
#define PSCOPE_POLICY_MAX_RULES 256   /* kernel rules per slot */
#define PSCOPE_POLICY_MAX_SUBJECTS 64 /* subjects per slot: one bit each */

/* One kernel rule: a user rule with several peers becomes one per peer. Rules
 * of a slot are ordered deny first, so the first match decides. */
struct pscope_policy_rule {
	__u32 id;          /* user rule id, reported in verdicts */
	__u8 action;       /* PSCOPE_POLICY_ACTION_*: ALLOW, DENY, or AUDIT (deny in audit mode) */
	__u8 direction;    /* PSCOPE_DIR_* */
	__u8 subject;      /* subject bit index, 0..PSCOPE_POLICY_MAX_SUBJECTS-1 */
	__u8 match_type;   /* PSCOPE_POLICY_MATCH_* reported when this rule decides */
	__u8 proto;        /* IPPROTO_*, 0 = any */
	__u8 family;       /* 4 or 6: peer must be in peer/prefix_len; 0 = any peer */
	__u8 prefix_len;   /* bits of `peer` that must match */
	__u8 ports;        /* 1: destination port must be in port_lo..port_hi (TCP/UDP/SCTP) */
	__u16 port_lo;     /* host byte order */
	__u16 port_hi;
	__u32 peer[4];     /* network byte order, IPv4 in word 0, host bits zero */
};

/* Per-slot summary of the rule set (`policy_sets`, one entry per slot).
 * Masks are subject bits; index 0 ingress, 1 egress. */
struct pscope_policy_set {
	__u32 n_rules;
	__u32 _pad0;
	__u64 selected[2];       /* subjects any rule selects: a verdict is reported */
	__u64 allow_selected[2]; /* subjects an allow rule selects: the rest is denied */
	__u64 enforce;           /* subjects of policies in mode enforce (else audit) */
};

/* `policy_devices` key: an interface subject's device, per slot. Value: __u64 subject bits. */
struct pscope_policy_dev_key {
	__u64 netns_cookie;
	__u32 ifindex;
	__u32 slot;
};

/* `policy_endpoints` key: an endpoint subject's address, per slot. Value: __u64 subject bits. */
struct pscope_policy_ep_key {
	__u8 slot;
	__u8 family; /* 4 or 6 */
	__u16 _pad0;
	__u32 addr[4]; /* network byte order, IPv4 in word 0 */
};

/* Recorder capture (bpf/capture.bpf.c): packets matching the recordings'
 * filters, copied into the `captures` ring buffer. Cilium's RECORDER_CAPTURE. */
#define PSCOPE_REC_CAPTURE 6
#define PSCOPE_CAPTURE_VERSION 1
#define PSCOPE_CAPTURE_MAX_RECORDINGS 32 /* one bit each in pscope_capture.recordings */
#define PSCOPE_CAPTURE_MAX_FILTERS 64    /* filters of all recordings together */
#define PSCOPE_CAPTURE_MAX_LEN 65535     /* largest capture per packet, bytes */

/* PSCOPE_REC_CAPTURE: fixed part is 48 bytes, followed by cap_len packet bytes
 * (from the L2 header, or the network header when PSCOPE_F_L3). */
struct pscope_capture {
	struct pscope_hdr hdr; /* subtype: PSCOPE_OBS_* */
	__u64 ts_boot_ns;
	__u32 ifindex;
	__u32 recordings;   /* bit i: the packet matches a filter of recording slot i */
	__u64 netns_cookie;
	__u16 l3_proto;     /* network byte order */
	__u16 _pad0;
	__u32 _pad1;
};

/* One filter: a packet matches when every set field matches. */
struct pscope_capture_filter {
	__u8 family;     /* 4 or 6 */
	__u8 proto;      /* IPPROTO_*, 0 = any */
	__u8 src_prefix; /* bits of src_addr that must match, 0 = any */
	__u8 dst_prefix;
	__u16 src_port;  /* host byte order, 0 = any (TCP/UDP/SCTP only) */
	__u16 dst_port;
	__u32 src_addr[4]; /* network byte order, IPv4 in word 0, host bits zero */
	__u32 dst_addr[4];
	__u32 recording;   /* slot, 0..PSCOPE_CAPTURE_MAX_RECORDINGS-1 */
	__u32 _pad0;
};

/* The single entry of `capture_filters`, written whole by the collector. */
struct pscope_capture_filters {
	__u32 n_filters;
	__u32 _pad0;
	__u32 cap_len[PSCOPE_CAPTURE_MAX_RECORDINGS]; /* per slot, 1..PSCOPE_CAPTURE_MAX_LEN */
	struct pscope_capture_filter filters[PSCOPE_CAPTURE_MAX_FILTERS];
};

/* Flow table (bpf/include/flows.h): per-flow counters accumulated by the tc
 * trace programs. Key: one direction of a flow at one hook of one device.
 * ICMP/ICMPv6 flows have ports 0 and their type/code in the key. */
struct pscope_flow_key {
	__u64 netns_cookie;
	__u32 ifindex;
	__u8 family;    /* 4 or 6 */
	__u8 proto;     /* IPPROTO_* */
	__u8 direction; /* 0 tc ingress, 1 tc egress */
	__u8 icmp_type;
	__u32 saddr[4]; /* network byte order, IPv4 in word 0 */
	__u32 daddr[4];
	__u16 sport;    /* host byte order */
	__u16 dport;
	__u8 icmp_code;
	__u8 _pad0[3];
};

/* Flow table value, one per CPU (per-CPU hash): each CPU counts its own
 * packets, user space adds them up. Times are bpf_ktime_get_coarse_ns().
 * The drop program adds the flow's kernel drops to the entry of the device and
 * hook where the packet was seen (packets may be 0 on that CPU). */
struct pscope_flow_value {
	__u64 first_seen_ns;
	__u64 last_seen_ns;
	__u64 packets;  /* skbs: a GSO/GRO skb counts once, like the device counters */
	__u64 bytes;    /* skb->len from the network header on */
	__u64 rtt_ns;   /* TCP handshake: SYN to SYN-ACK seen at this device, 0 if not measured */
	__u8 src_mac[6];
	__u8 dst_mac[6];
	__u8 tcp_flags; /* union */
	__u8 dscp;
	__u16 _pad0;
	__u64 drop_packets; /* packets of the flow the kernel dropped (skb:kfree_skb) */
	__u64 drop_bytes;
	__u32 drop_reason;  /* last enum skb_drop_reason */
	__u32 _pad1;
};

/* One packet that found the flow table full, sent through the `flow_spill`
 * ring buffer instead: user space accounts it with the same semantics. */
struct pscope_flow_spill {
	struct pscope_flow_key key;
	struct pscope_flow_value value;
};

/* Process lifecycle and socket ownership (bpf/proc.bpf.c): Periscope-only types. */
#define PSCOPE_REC_PROC 140       /* process exec, fork or exit (subtype PSCOPE_PROC_*) */
#define PSCOPE_REC_SOCK_OWNER 141 /* the process owning a connection's socket */
#define PSCOPE_PROC_VERSION 1
#define PSCOPE_SOCK_OWNER_VERSION 1
#define PSCOPE_PROC_EXEC 1 /* sched_process_exec: a new program image */
#define PSCOPE_PROC_FORK 2 /* sched_process_fork: a new process (threads are not reported) */
#define PSCOPE_PROC_EXIT 3 /* sched_process_exit of the last thread of a process */
#define PSCOPE_PROC_MAX_PATH 256  /* binary path bytes an exec record carries */
#define PSCOPE_PROC_MAX_ARGS 4096 /* argument bytes an exec record can carry */
/* How the owner was learned (pscope_sock_owner hdr.subtype). */
#define PSCOPE_SOCK_TCP_CONNECT 1 /* sockops connect: TCP client, SYN about to leave */
#define PSCOPE_SOCK_TCP_ACCEPT 2  /* sockops passive established: TCP server (the listener's process) */
#define PSCOPE_SOCK_UDP 3         /* cgroup_skb: first UDP datagram of a flow on a socket */
#define PSCOPE_SOCK_BACKFILL 4    /* user space: socket older than the sensor, from /proc */

/* PSCOPE_REC_PROC: fixed part is 104 bytes, followed by cap_len bytes of data:
 * for exec, path_len bytes of binary path, then args_len bytes of arguments,
 * each ending in NUL. hdr.orig_len is the argument bytes the process had;
 * PSCOPE_F_TRUNCATED when fewer were copied. Fork and exit carry no data. */
struct pscope_proc {
	struct pscope_hdr hdr; /* subtype: PSCOPE_PROC_* */
	__u64 ts_boot_ns;
	__u32 pid;       /* thread id (the kernel's pid) */
	__u32 tgid;      /* process id */
	__u32 ppid;      /* parent process id (real_parent's tgid) */
	__u32 uid;       /* real ids, in the initial user namespace */
	__u32 gid;
	__u32 euid;
	__u32 egid;
	__u32 exit_code; /* exit: wait status (code << 8 | signal); else 0 */
	__u64 cgroup_id; /* cgroup v2 id of the task */
	__u64 start_ns;  /* process start: group leader's start_boottime */
	__u64 parent_start_ns;
	char comm[16];
	__u16 path_len;  /* exec: bytes of binary path at data[0], with its NUL */
	__u16 args_len;  /* exec: argument bytes after the path */
	__u32 ns_tgid;   /* tgid in the task's own pid namespace (exec, fork: also its pid) */
	__u8 data[PSCOPE_PROC_MAX_PATH + PSCOPE_PROC_MAX_ARGS];
};

/* PSCOPE_REC_SOCK_OWNER: 128 bytes, no packet data (cap_len 0). Same offsets
 * as pscope_trace for flow_hash (32) and netns_cookie (40), so the record
 * lands in its flow's partition. s* is the socket's own side, d* the peer. */
struct pscope_sock_owner {
	struct pscope_hdr hdr; /* subtype: PSCOPE_SOCK_* */
	__u64 ts_boot_ns;
	__u32 pid;
	__u32 tgid;
	__u32 flow_hash;    /* same hash as the flow's trace records */
	__u8 family;        /* 4 or 6 */
	__u8 proto;         /* IPPROTO_TCP or IPPROTO_UDP */
	__u16 _pad0;
	__u64 netns_cookie; /* network namespace of the socket */
	__u32 saddr[4];     /* network byte order, IPv4 in word 0 */
	__u32 daddr[4];
	__u16 sport;        /* host byte order */
	__u16 dport;
	__u32 uid;
	__u64 sock_cookie;
	__u64 cgroup_id;
	__u64 start_ns;     /* process start (group leader's start_boottime) */
	char comm[16];
};

#endif /* __PERISCOPE_H */
