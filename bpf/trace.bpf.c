// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * TC ingress/egress trace. Every packet is parsed once (parse.h), tracked in
 * the `conntrack` connection table (ct.h), checked against the policy
 * (policy.h) and, when the aggregation level in `settings` says it is worth
 * reporting, written to the `events` ring buffer as one struct pscope_trace
 * followed by the first cap_len bytes of the packet.
 *
 * Returns TC_ACT_UNSPEC (observe only) except for packets of connections the
 * policy denies: TC_ACT_SHOT.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "periscope.h"
#include "flowhash.h"
#include "parse.h"
#include "skb.h"

#define TC_ACT_SHOT 2

/* Debug event types (flow.DebugEventType). */
#define DBG_POLICY_DENIED 5
#define DBG_CT_MATCH 8
#define DBG_CT_CREATED4 50
#define DBG_CT_CREATED6 53

#define TRACE_FIXED_SIZE ((__u32)__builtin_offsetof(struct pscope_trace, data))

/* Packet bytes are copied straight into the reserved ring buffer sample
 * (bpf_ringbuf_reserve_dynptr + bpf_dynptr_copy) unless built with
 * -DPSCOPE_EMIT_OUTPUT, which builds the record in a per-CPU scratch buffer
 * and copies it with bpf_ringbuf_output (kept for the benchmark). */
#ifndef PSCOPE_EMIT_OUTPUT
#define PSCOPE_EMIT_DYNPTR 1
#endif

_Static_assert(sizeof(struct pscope_hdr) == 16, "pscope_hdr must be 16 bytes");
_Static_assert(__builtin_offsetof(struct pscope_trace, data) == 48,
	       "pscope_trace fixed part must be 48 bytes");
_Static_assert(sizeof(struct pscope_debug) == 56, "pscope_debug must be 56 bytes");

/* Tunables; the only .rodata global, so it sits at offset 0 of .rodata. */
const volatile struct pscope_trace_config cfg = {
	.capture_len = PSCOPE_DEFAULT_CAPTURE,
};

#include "events.h"

#ifdef PSCOPE_EMIT_OUTPUT
/* Per-CPU scratch for building one record (too large for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pscope_trace);
} scratch SEC(".maps");
#endif

/* Run-time settings (aggregation, capture rules, debug): one entry, written by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pscope_settings);
} settings SEC(".maps");

/* Connection table; size set before load (default 65536), least recently used go first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct pscope_ct_key);
	__type(value, struct pscope_ct_entry);
} conntrack SEC(".maps");

#include "ct.h"
#include "flows.h"
#include "policy.h"


/*
 * Global (separately verified) functions around the big inline pieces, so
 * the verifier checks each once instead of once per path through the
 * caller. Pointer arguments are checked for NULL as global functions must.
 */
__noinline int trace_parse(struct __sk_buff *skb, int l3, struct pscope_pkt *p)
{
	if (!p)
		return 0;
	pscope_parse(skb, l3, p);
	return p->t.family;
}

__noinline int trace_policy_decide(struct __sk_buff *skb, const struct pscope_tuple *t,
				   __u32 obs_point, __u32 *rule_id)
{
	if (!t || !rule_id)
		return PSCOPE_POLICY_ACTION_ALLOW;
	return pscope_policy_decide(skb, t, (__u8)obs_point, rule_id);
}

__noinline int trace_policy_drop(struct __sk_buff *skb, const struct pscope_tuple *t,
				 __u32 obs_point, __u32 rule_id)
{
	if (!t)
		return 0;
	/* keep the argument live: the compiler may not pass unused ones, the verifier wants them */
	asm volatile("" : "+r"(rule_id), "+r"(obs_point));
	pscope_policy_drop(skb, t, (__u8)obs_point, rule_id);
	return 0;
}

/* What the program knows about the device the packet is on. */
struct dev_info {
	__u64 netns_cookie; /* 0 when unknown */
	int l3;             /* no L2 header: the packet starts at the network header */
};

static __always_inline void count_lost(void)
{
	__u32 zero = 0;
	__u64 *lost = bpf_map_lookup_elem(&lost_events, &zero);

	if (lost)
		*lost += 1;
}

static __always_inline __u32 tuple_flow_hash(const struct pscope_tuple *t)
{
	int words = t->family == 6 ? 4 : 1;

	return flow_hash_combine(endpoint_hash(t->saddr, words, t->sport),
				 endpoint_hash(t->daddr, words, t->dport), t->proto);
}

/* One debug record (no packet data), written in place in the ring buffer. */
static __always_inline void emit_debug(struct __sk_buff *skb, const struct dev_info *d, __u8 type,
				       __u32 hash, __u32 arg1, __u32 arg2, __u32 arg3)
{
	struct pscope_debug *rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);

	if (!rec) {
		count_lost();
		return;
	}
	pscope_hdr(&rec->hdr, skb, PSCOPE_REC_DEBUG, type, PSCOPE_DEBUG_VERSION, 0, 0);
	rec->ts_boot_ns = bpf_ktime_get_boot_ns();
	rec->ifindex = skb->ifindex;
	rec->arg1 = arg1;
	rec->flow_hash = hash;
	rec->arg2 = arg2;
	rec->arg3 = arg3;
	rec->_pad0 = 0;
	rec->netns_cookie = d->netns_cookie;
	bpf_ringbuf_submit(rec, 0);
}

/* The first capture rule matching the packet's protocol and ports, or NULL. */
static __always_inline const struct pscope_capture_rule *
first_capture_rule(const struct pscope_settings *st, const struct pscope_tuple *t)
{
	__u32 n = st->n_capture_rules;

#pragma unroll
	for (int i = 0; i < PSCOPE_MAX_CAPTURE_RULES; i++) {
		const struct pscope_capture_rule *rule = &st->capture_rules[i];

		if (i >= n)
			break;
		if ((rule->proto == 0 || rule->proto == t->proto) &&
		    (rule->port == 0 || rule->port == t->sport || rule->port == t->dport))
			return rule;
	}
	return 0;
}

/* Capture length for a packet: first matching capture rule, else cfg.capture_len. */
static __always_inline __u32 capture_len(const struct pscope_settings *st,
					 const struct pscope_tuple *t)
{
	const struct pscope_capture_rule *rule = first_capture_rule(st, t);

	return rule ? rule->len : cfg.capture_len;
}

/*
 * Whether the first capture rule matching the packet names a port and asks for
 * more than the default capture: that port's payload is wanted (DNS, HTTP parsed
 * in user space), so its packets with payload are reported at every level.
 */
static __always_inline int payload_port(const struct pscope_settings *st,
					const struct pscope_tuple *t)
{
	const struct pscope_capture_rule *rule = first_capture_rule(st, t);

	return rule && rule->port != 0 && rule->len > cfg.capture_len;
}

/*
 * The aggregation decision for a tracked packet. Returns 0 to suppress it,
 * else 1 and may set PSCOPE_F_CT_REPORT in *flags for a periodic report.
 */
static __always_inline int should_report(const struct pscope_settings *st,
					 const struct pscope_pkt *p, const struct ct_result *r,
					 __u64 now, __u8 *flags)
{
	struct pscope_ct_entry *e = r->entry;
	__u32 agg = st->aggregation;
	__u8 dir = r->dir & 1;
	__u8 tf = p->t.tcp_flags;
	__u8 mask;

	if (agg == PSCOPE_AGG_NONE || !e)
		return 1;
	if (p->t.payload_len && payload_port(st, &p->t))
		goto report;
	if (r->reason != PSCOPE_TRACE_REASON_ESTABLISHED && r->reason != PSCOPE_TRACE_REASON_REPLY)
		goto report;
	if (agg == PSCOPE_AGG_LOW) {
		/* pure ACK: no payload, no flag this direction had not sent already */
		if (p->t.proto == PROTO_TCP && p->t.l4_off && p->t.payload_len == 0 &&
		    r->new_flags == 0)
			return 0;
		goto report;
	}
	mask = agg == PSCOPE_AGG_MAXIMUM ? (TCPF_SYN | TCPF_FIN | TCPF_RST) : 0xff;
	if (r->first_in_dir || (tf & mask & ~e->reported_flags[dir]))
		goto report;
	if (st->report_interval_ms) {
		__u64 last = e->last_report_ns;

		/* One CPU wins the interval's report: the compare-and-swap fails on
		 * every other CPU that read the same last_report_ns. */
		if (now - last >= (__u64)st->report_interval_ms * 1000000ULL &&
		    __sync_val_compare_and_swap(&e->last_report_ns, last, now) == last) {
			*flags |= PSCOPE_F_CT_REPORT;
			goto report;
		}
	}
	return 0;
report:
	e->last_report_ns = now;
	if (tf & ~e->reported_flags[dir])
		e->reported_flags[dir] |= tf;
	return 1;
}

/* Writes the fixed part of a trace record. */
static __always_inline void fill_trace(struct pscope_trace *rec, struct __sk_buff *skb,
				       const struct dev_info *d, __u8 obs_point, __u8 flags,
				       __u32 cap, __u32 hash, __u8 reason, __u64 now)
{
	pscope_hdr(&rec->hdr, skb, PSCOPE_REC_TRACE, obs_point, PSCOPE_TRACE_VERSION, flags, cap);
	rec->ts_boot_ns = bpf_ktime_get_boot_ns();
	rec->ifindex = skb->ifindex;
	rec->mark = skb->mark;
	rec->flow_hash = hash;
	rec->l3_proto = (__u16)skb->protocol;
	rec->pkt_type = (__u8)skb->pkt_type;
	rec->trace_reason = reason;
	rec->netns_cookie = d->netns_cookie;
}

/* Emits one trace record with the first `cap` bytes of the packet. */
static __always_inline void emit_trace(struct __sk_buff *skb, const struct dev_info *d,
				       __u8 obs_point, __u8 flags, __u32 cap, __u32 hash,
				       __u8 reason, __u64 now)
{
	if (cap > skb->len)
		cap = skb->len;
	if (cap > PSCOPE_MAX_CAPTURE)
		cap = PSCOPE_MAX_CAPTURE;
	if (cap < skb->len)
		flags |= PSCOPE_F_TRUNCATED;

#ifdef PSCOPE_EMIT_DYNPTR
	struct bpf_dynptr rb;
	struct pscope_trace *rec;

	/* Names struct pscope_trace in the object's BTF (only ever cast to here), which
	 * user space checks its layout against; resolved at load, never false. */
	if (!bpf_core_type_id_local(struct pscope_trace))
		return;
	rec = pscope_reserve_packet(&events, skb, &rb, TRACE_FIXED_SIZE, cap);
	if (!rec) {
		count_lost();
		return;
	}
	fill_trace(rec, skb, d, obs_point, flags, cap, hash, reason, now);
	bpf_ringbuf_submit_dynptr(&rb, 0);
#else
	struct pscope_trace *rec;
	__u32 zero = 0;

	rec = bpf_map_lookup_elem(&scratch, &zero);
	if (!rec)
		return;
	if (cap > 0 && bpf_skb_load_bytes(skb, 0, rec->data, pscope_copy_len(cap)) < 0) {
		cap = 0;
		flags |= PSCOPE_F_TRUNCATED;
	}
	fill_trace(rec, skb, d, obs_point, flags, cap, hash, reason, now);
	pscope_output(rec, TRACE_FIXED_SIZE + cap, sizeof(*rec));
#endif
}

static __always_inline int trace_packet(struct __sk_buff *skb, __u8 obs_point)
{
	struct ct_result r = { .reason = PSCOPE_TRACE_REASON_UNKNOWN };
	struct pscope_settings *st;
	struct dev_info d = {};
	struct pscope_pkt p = {};
	__u32 zero = 0, hash = 0;
	__u8 flags = 0;
	__u64 now;

	st = bpf_map_lookup_elem(&settings, &zero);
	if (!st)
		return TC_ACT_UNSPEC;
	d.l3 = pscope_device(skb, &d.netns_cookie);
	if (d.l3)
		flags |= PSCOPE_F_L3;
	trace_parse(skb, d.l3, &p);
	now = bpf_ktime_get_coarse_ns();

	if (p.t.family) {
		struct pscope_ct_key k = {};
		__u8 action = PSCOPE_POLICY_ACTION_ALLOW;
		__u32 rule_id = 0;

		flow_account(skb, &p, d.netns_cookie,
			     (obs_point == PSCOPE_OBS_TO_NETWORK) | (d.l3 ? 2 : 0), now);

		if (p.icmp_error) {
			int dir = ct_related(skb, d.netns_cookie, &p, skb->len, now);

			if (dir >= 0) {
				r.reason = PSCOPE_TRACE_REASON_RELATED;
				r.dir = dir;
			}
		} else {
			int sender_lo = ct_make_key(skb, d.netns_cookie, &p.t, &k);

			ct_track(&k, sender_lo, &p, skb->len, now, &r);
		}

		if (r.entry) {
			__u32 rev = pscope_policy_rev();
			struct pscope_ct_entry *e = r.entry;

			if (r.created || r.reason == PSCOPE_TRACE_REASON_REOPENED ||
			    e->policy_rev != rev) {
				action = trace_policy_decide(skb, &p.t, obs_point, &rule_id);
				e->policy_action = action;
				e->policy_rev = rev;
				e->policy_rule_id = rule_id;
			} else {
				action = e->policy_action;
				rule_id = e->policy_rule_id;
			}
		} else if (r.reason != PSCOPE_TRACE_REASON_RELATED) {
			action = trace_policy_decide(skb, &p.t, obs_point, &rule_id);
		}
		if (st->debug)
			hash = tuple_flow_hash(&p.t);
		if (action == PSCOPE_POLICY_ACTION_DENY) {
			trace_policy_drop(skb, &p.t, obs_point, rule_id);
			if (st->debug)
				emit_debug(skb, &d, DBG_POLICY_DENIED, hash, rule_id, p.t.proto,
					   ((__u32)p.t.sport << 16) | p.t.dport);
			return TC_ACT_SHOT;
		}

		if (st->debug && r.entry) {
			if (r.created)
				emit_debug(skb, &d, p.t.family == 6 ? DBG_CT_CREATED6 : DBG_CT_CREATED4,
					   hash, r.entry->initiator_is_lo, p.t.proto,
					   ((__u32)p.t.sport << 16) | p.t.dport);
			else if (st->aggregation == PSCOPE_AGG_NONE)
				emit_debug(skb, &d, DBG_CT_MATCH, hash, r.dir, p.t.proto,
					   ((__u32)p.t.sport << 16) | p.t.dport);
		}

		if (!should_report(st, &p, &r, now, &flags))
			return TC_ACT_UNSPEC;
		if (!hash) /* only for packets that are reported: it costs */
			hash = tuple_flow_hash(&p.t);
	}

	emit_trace(skb, &d, obs_point, flags, capture_len(st, &p.t), hash, r.reason, now);
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
