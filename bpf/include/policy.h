/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * L3/L4 policy in the tc programs. Included by trace.bpf.c after events.h
 * (`events`, `lost_events`), skb.h and `cfg`. The trace program calls
 * pscope_policy_rev() per packet and pscope_policy_decide() only for a
 * connection whose cached verdict belongs to another revision (a new
 * connection, or the policy changed); every packet of a denied connection
 * goes through pscope_policy_drop().
 *
 * Rule sets are double-buffered: the collector writes the slot that is not
 * active (rules, summary, subject devices and addresses), then stores the
 * next revision into `policy_active` with one aligned 32-bit store through a
 * shared mapping. The slot in force is revision & 1, so every packet sees
 * either the whole old rule set or the whole new one. Revision 0 means no
 * policy: everything is allowed and nothing is reported.
 *
 * Subjects: a packet's ingress subjects are the subjects of its device when
 * seen at tc ingress plus those of its destination address; its egress
 * subjects are the device's at tc egress plus those of its source address.
 * Ingress rules match the source as peer, egress rules the destination; both
 * match the destination port. Deny rules come first in a slot, so the first
 * matching rule decides. A direction selected by an allow rule that no rule
 * matches is denied (match type NONE, rule 0), audited when no enforcing
 * policy selects it.
 */
#ifndef __PERISCOPE_POLICY_H
#define __PERISCOPE_POLICY_H

#include "periscope.h"
#include "tuple.h"
#include "flowhash.h"
#include "proto.h"

#ifndef BPF_F_MMAPABLE
#define BPF_F_MMAPABLE (1U << 10)
#endif

#define POLICY_FIXED_SIZE ((__u32)__builtin_offsetof(struct pscope_policy_verdict, data))
#define POLICY_DROP_FIXED_SIZE ((__u32)__builtin_offsetof(struct pscope_drop, data))

_Static_assert(__builtin_offsetof(struct pscope_policy_verdict, data) == 56,
	       "pscope_policy_verdict fixed part must be 56 bytes");
_Static_assert(sizeof(struct pscope_policy_rule) == 32, "pscope_policy_rule must be 32 bytes");

/* Active revision (key 0), written by user space through mmap. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
} policy_active SEC(".maps");

/* Rules: slot * PSCOPE_POLICY_MAX_RULES + index. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PSCOPE_POLICY_SLOTS * PSCOPE_POLICY_MAX_RULES);
	__type(key, __u32);
	__type(value, struct pscope_policy_rule);
} policy_rules SEC(".maps");

/* Rule set summary per slot. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, PSCOPE_POLICY_SLOTS);
	__type(key, __u32);
	__type(value, struct pscope_policy_set);
} policy_sets SEC(".maps");

/* Devices of interface subjects -> subject bits. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct pscope_policy_dev_key);
	__type(value, __u64);
} policy_devices SEC(".maps");

/* Addresses of endpoint subjects -> subject bits. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pscope_policy_ep_key);
	__type(value, __u64);
} policy_endpoints SEC(".maps");

/* Working state of one decision, per CPU: the tc program's own frame leaves
 * little stack for the policy. */
struct policy_work {
	struct pscope_policy_dev_key dev;
	struct pscope_policy_ep_key ep;
	__u32 base;        /* slot * PSCOPE_POLICY_MAX_RULES */
	__u32 n_rules;
	__u64 subjects[2]; /* ingress, egress */
	__u32 hit[2];      /* key of the first matching rule per direction, POLICY_NO_HIT if none */
};

#define POLICY_NO_HIT 0xffffffffU

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct policy_work);
} policy_workbuf SEC(".maps");

/* Room for one verdict or policy drop record (too large for the stack). */
union pscope_policy_record {
	struct pscope_policy_verdict verdict;
	struct pscope_drop drop;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, union pscope_policy_record);
} policy_scratch SEC(".maps");

/* Kernel's struct sk_buff behind the __sk_buff context (kfunc, Linux 6.3+). */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* Revision of the active policy; a connection's cached verdict is valid while
 * it carries this revision. One array lookup. */
static __always_inline __u32 pscope_policy_rev(void)
{
	__u32 zero = 0;
	__u32 *rev = bpf_map_lookup_elem(&policy_active, &zero);

	return rev ? *(volatile __u32 *)rev : 0;
}

static __always_inline __u64 policy_netns_cookie(struct __sk_buff *ctx)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
	struct net_device *dev = BPF_CORE_READ(skb, dev);

	if (!dev)
		return 0;
	return BPF_CORE_READ(dev, nd_net.net, net_cookie);
}

/* The flow hash trace records of this connection carry. */
static __always_inline __u32 policy_flow_hash(const struct pscope_tuple *t)
{
	int words = t->family == 6 ? 4 : 1;

	if (t->family != 4 && t->family != 6)
		return 0;
	return flow_hash_combine(endpoint_hash(t->saddr, words, t->sport),
				 endpoint_hash(t->daddr, words, t->dport), t->proto);
}

static __always_inline __u64 policy_ep_bits(struct pscope_policy_ep_key *k, __u32 slot,
					    __u8 family, const __u32 *addr)
{
	__u64 *bits;

	k->slot = (__u8)slot;
	k->family = family;
	k->_pad0 = 0;
	k->addr[0] = addr[0];
	k->addr[1] = family == 6 ? addr[1] : 0;
	k->addr[2] = family == 6 ? addr[2] : 0;
	k->addr[3] = family == 6 ? addr[3] : 0;
	bits = bpf_map_lookup_elem(&policy_endpoints, k);
	return bits ? *bits : 0;
}

/* Context of the rule loop's callback (bpf_loop wants it on the stack). */
struct policy_scan {
	const struct pscope_tuple *t;
	struct policy_work *w;
};

/* True when `addr` lies in the rule's peer prefix. */
static __always_inline int policy_peer_match(const struct pscope_policy_rule *r, const __u32 *addr)
{
	int i;

	if (r->family == 0)
		return 1;
#pragma unroll
	for (i = 0; i < 4; i++) {
		__u32 bits = r->prefix_len > i * 32 ? r->prefix_len - i * 32 : 0;
		__u32 mask;

		if (bits == 0)
			break;
		mask = bits >= 32 ? 0xffffffff : bpf_htonl(~((1U << (32 - bits)) - 1));
		if ((addr[i] & mask) != r->peer[i])
			return 0;
	}
	return 1;
}

static long policy_scan_rule(__u32 i, void *ctx)
{
	struct policy_scan *s = ctx;
	const struct pscope_tuple *t = s->t;
	struct policy_work *w = s->w;
	struct pscope_policy_rule *r;
	__u32 key;
	int d;

	if (i >= w->n_rules || (w->hit[0] != POLICY_NO_HIT && w->hit[1] != POLICY_NO_HIT))
		return 1;
	key = w->base + i;
	r = bpf_map_lookup_elem(&policy_rules, &key);
	if (!r)
		return 1;
	d = r->direction == PSCOPE_DIR_EGRESS ? 1 : 0;
	if (w->hit[d] != POLICY_NO_HIT)
		return 0;
	if (r->subject >= PSCOPE_POLICY_MAX_SUBJECTS || !(w->subjects[d] & (1ULL << r->subject)))
		return 0;
	if (r->proto && r->proto != t->proto)
		return 0;
	if (r->ports) {
		if (t->proto != PROTO_TCP && t->proto != PROTO_UDP && t->proto != PROTO_SCTP)
			return 0;
		if (t->dport < r->port_lo || t->dport > r->port_hi)
			return 0;
	}
	if (r->family && r->family != t->family)
		return 0;
	if (!policy_peer_match(r, d == 0 ? t->saddr : t->daddr))
		return 0;
	w->hit[d] = key;
	return 0;
}

/* Captured bytes of `skb` into `data`; returns the count (0 on failure). */
static __always_inline __u32 policy_capture(struct __sk_buff *skb, __u8 *data)
{
	__u32 cap = cfg.capture_len;

	if (cap > skb->len)
		cap = skb->len;
	if (cap > PSCOPE_MAX_CAPTURE)
		cap = PSCOPE_MAX_CAPTURE;
	if (cap == 0)
		return 0;
	if (bpf_skb_load_bytes(skb, 0, data, pscope_copy_len(cap)) < 0)
		return 0;
	return cap;
}

/* The header of a policy record holding the first `cap` bytes of the packet. */
static __always_inline void policy_hdr(struct pscope_hdr *hdr, struct __sk_buff *skb,
				       const struct pscope_tuple *t, __u8 type, __u8 subtype,
				       __u8 version, __u32 cap)
{
	pscope_hdr(hdr, skb, type, subtype, version,
		   (cap < skb->len ? PSCOPE_F_TRUNCATED : 0) | (t->l3_off == 0 ? PSCOPE_F_L3 : 0), cap);
}

static __always_inline void policy_emit_verdict(struct __sk_buff *skb, const struct pscope_tuple *t,
						__u8 obs_point, __u8 direction, __u8 action,
						__u8 match_type, __u32 rule_id)
{
	struct pscope_policy_verdict *rec;
	__u32 zero = 0;
	__u32 cap;

	rec = bpf_map_lookup_elem(&policy_scratch, &zero);
	if (!rec)
		return;
	cap = policy_capture(skb, rec->data);
	policy_hdr(&rec->hdr, skb, t, PSCOPE_REC_POLICY_VERDICT, 0, PSCOPE_POLICY_VERDICT_VERSION,
		   cap);
	rec->ts_boot_ns = bpf_ktime_get_boot_ns();
	rec->ifindex = skb->ifindex;
	rec->rule_id = rule_id;
	rec->flow_hash = policy_flow_hash(t);
	rec->l3_proto = (__u16)skb->protocol;
	rec->match_type = match_type;
	rec->action = action;
	rec->netns_cookie = policy_netns_cookie(skb);
	rec->direction = direction;
	rec->obs_point = obs_point;
	__builtin_memset(rec->_pad0, 0, sizeof(rec->_pad0));
	pscope_output(rec, POLICY_FIXED_SIZE + cap, sizeof(*rec));
}

/* DENY beats AUDIT beats ALLOW. */
static __always_inline int policy_action_rank(__u8 action)
{
	return action == PSCOPE_POLICY_ACTION_DENY ? 2 : action == PSCOPE_POLICY_ACTION_AUDIT ? 1 : 0;
}

/*
 * Verdict of direction `d` (0 ingress, 1 egress) after the rule scan: emits
 * the verdict record and returns PSCOPE_POLICY_ACTION_* with the deciding
 * rule in *rule; ALLOW without a record when no rule selects the subjects.
 */
static __always_inline __u8 policy_direction_verdict(struct __sk_buff *skb,
						     const struct pscope_tuple *t, __u8 obs_point,
						     const struct pscope_policy_set *set,
						     struct policy_work *w, int d, __u32 *rule)
{
	__u64 subj = w->subjects[d & 1];
	struct pscope_policy_rule *r = 0;
	__u8 action = PSCOPE_POLICY_ACTION_ALLOW, match = PSCOPE_POLICY_MATCH_NONE;

	*rule = 0;
	if (!subj)
		return PSCOPE_POLICY_ACTION_ALLOW;
	if (w->hit[d & 1] != POLICY_NO_HIT)
		r = bpf_map_lookup_elem(&policy_rules, &w->hit[d & 1]);
	if (r) {
		action = r->action;
		match = r->match_type;
		*rule = r->id;
	} else if (subj & set->allow_selected[d & 1]) {
		action = (subj & set->allow_selected[d & 1] & set->enforce) ? PSCOPE_POLICY_ACTION_DENY
									     : PSCOPE_POLICY_ACTION_AUDIT;
	}
	policy_emit_verdict(skb, t, obs_point, d ? PSCOPE_DIR_EGRESS : PSCOPE_DIR_INGRESS, action,
			    match, *rule);
	return action;
}

/*
 * Decides the policy for the packet described by `t`, seen at `obs_point`
 * (PSCOPE_OBS_*) on the device of `skb`. Emits the policy verdict record when
 * a policy selects the packet's endpoint, stores the deciding rule's id in
 * *rule_id and returns PSCOPE_POLICY_ACTION_*. When both directions are
 * selected the stronger verdict wins (DENY over AUDIT over ALLOW, ingress
 * first on a tie).
 */
static __always_inline __u8 pscope_policy_decide(struct __sk_buff *skb,
						  const struct pscope_tuple *t, __u8 obs_point,
						  __u32 *rule_id)
{
	struct pscope_policy_set *set;
	struct policy_work *w;
	struct policy_scan s;
	__u32 rev, slot, zero = 0, rule_in, rule_eg;
	__u8 in, eg;
	__u64 *dev_bits;

	*rule_id = 0;
	rev = pscope_policy_rev();
	if (rev == 0 || (t->family != 4 && t->family != 6))
		return PSCOPE_POLICY_ACTION_ALLOW;
	slot = rev & 1;
	set = bpf_map_lookup_elem(&policy_sets, &slot);
	if (!set || (!set->selected[0] && !set->selected[1]))
		return PSCOPE_POLICY_ACTION_ALLOW;
	w = bpf_map_lookup_elem(&policy_workbuf, &zero);
	if (!w)
		return PSCOPE_POLICY_ACTION_ALLOW;

	w->subjects[0] = 0;
	w->subjects[1] = 0;
	w->dev.netns_cookie = policy_netns_cookie(skb);
	w->dev.ifindex = skb->ifindex;
	w->dev.slot = slot;
	dev_bits = bpf_map_lookup_elem(&policy_devices, &w->dev);
	if (dev_bits)
		w->subjects[obs_point == PSCOPE_OBS_FROM_NETWORK ? 0 : 1] = *dev_bits;
	w->subjects[0] |= policy_ep_bits(&w->ep, slot, t->family, t->daddr);
	w->subjects[1] |= policy_ep_bits(&w->ep, slot, t->family, t->saddr);
	w->subjects[0] &= set->selected[0];
	w->subjects[1] &= set->selected[1];
	if (!w->subjects[0] && !w->subjects[1])
		return PSCOPE_POLICY_ACTION_ALLOW;

	w->hit[0] = POLICY_NO_HIT;
	w->hit[1] = POLICY_NO_HIT;
	w->base = slot * PSCOPE_POLICY_MAX_RULES;
	w->n_rules = set->n_rules < PSCOPE_POLICY_MAX_RULES ? set->n_rules : PSCOPE_POLICY_MAX_RULES;
	s.t = t;
	s.w = w;
	bpf_loop(PSCOPE_POLICY_MAX_RULES, policy_scan_rule, &s, 0);

	in = policy_direction_verdict(skb, t, obs_point, set, w, 0, &rule_in);
	eg = policy_direction_verdict(skb, t, obs_point, set, w, 1, &rule_eg);
	if (policy_action_rank(eg) > policy_action_rank(in)) {
		*rule_id = rule_eg;
		return eg;
	}
	*rule_id = rule_in ? rule_in : rule_eg;
	return in;
}

/* Reports one denied packet as a PSCOPE_REC_DROP record (source policy). The
 * caller then returns TC_ACT_SHOT. */
static __always_inline void pscope_policy_drop(struct __sk_buff *skb, const struct pscope_tuple *t,
					       __u8 obs_point, __u32 rule_id)
{
	struct pscope_drop *rec;
	__u32 zero = 0;
	__u32 cap;

	(void)rule_id; /* the drop record has no rule field; the verdict record names it */
	rec = bpf_map_lookup_elem(&policy_scratch, &zero);
	if (!rec)
		return;
	cap = policy_capture(skb, rec->data);
	policy_hdr(&rec->hdr, skb, t, PSCOPE_REC_DROP, PSCOPE_DROP_SRC_POLICY, PSCOPE_DROP_VERSION,
		   cap);
	rec->ts_boot_ns = bpf_ktime_get_boot_ns();
	rec->ifindex = skb->ifindex;
	rec->reason = PSCOPE_DROP_POLICY_DENIED;
	rec->flow_hash = policy_flow_hash(t);
	rec->l3_proto = (__u16)skb->protocol;
	rec->obs_point = obs_point;
	rec->_pad0 = 0;
	rec->netns_cookie = policy_netns_cookie(skb);
	rec->location = 0;
	pscope_output(rec, POLICY_DROP_FIXED_SIZE + cap, sizeof(*rec));
}

#endif /* __PERISCOPE_POLICY_H */
