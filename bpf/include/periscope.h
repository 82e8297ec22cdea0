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
#define PSCOPE_REC_TRACE 4 /* packet seen at an observation point */

/* Record format version (pscope_hdr.version). */
#define PSCOPE_TRACE_VERSION 1

/* Observation points (pscope_hdr.subtype for PSCOPE_REC_TRACE), numbered
 * like Cilium's trace sub-types (which map onto flow.TraceObservationPoint). */
#define PSCOPE_OBS_FROM_NETWORK 10 /* tc ingress: packet arrived on the device */
#define PSCOPE_OBS_TO_NETWORK 11   /* tc egress: packet about to leave the device */

/* Header flags (pscope_hdr.flags). */
#define PSCOPE_F_TRUNCATED 0x01 /* cap_len < orig_len */

/* Largest capture a trace record can carry, in bytes. */
#define PSCOPE_MAX_CAPTURE 1536
/* Default capture length, in bytes. */
#define PSCOPE_DEFAULT_CAPTURE 128

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
	__u8 _pad0;
	__u64 netns_cookie; /* network namespace cookie of the device, 0 if unknown */
	__u8 data[PSCOPE_MAX_CAPTURE];
};

/* Tunables, set before load through the object's .rodata. The only
 * read-only global in each object, so it sits at offset 0 of .rodata. */
struct pscope_trace_config {
	__u32 capture_len; /* bytes of each packet to capture, 1..PSCOPE_MAX_CAPTURE */
	__u32 _pad0;
};

#endif /* __PERISCOPE_H */
