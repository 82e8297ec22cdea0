/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * L3/L4 policy in the tc programs. Included by trace.bpf.c after its maps
 * (`events`, `lost_events`) are defined. The trace program calls
 * pscope_policy_rev() per packet and pscope_policy_decide() only for a
 * connection whose cached verdict belongs to another revision (a new
 * connection, or the policy changed); every packet of a denied connection
 * goes through pscope_policy_drop().
 *
 * Until policies are loaded this is the "no policy" implementation: revision
 * 0, everything allowed, nothing reported.
 */
#ifndef __PERISCOPE_POLICY_H
#define __PERISCOPE_POLICY_H

#include "periscope.h"
#include "tuple.h"

/* Revision of the active policy; a connection's cached verdict is valid while
 * it carries this revision. One array lookup. */
static __always_inline __u32 pscope_policy_rev(void)
{
	return 0;
}

/*
 * Decides the policy for the packet described by `t`, seen at `obs_point`
 * (PSCOPE_OBS_*) on the device of `skb`. Emits the policy verdict record when
 * a policy selects the packet's endpoint, stores the deciding rule's id in
 * *rule_id and returns PSCOPE_POLICY_ACTION_*.
 */
static __always_inline __u8 pscope_policy_decide(struct __sk_buff *skb,
						  const struct pscope_tuple *t, __u8 obs_point,
						  __u32 *rule_id)
{
	*rule_id = 0;
	return PSCOPE_POLICY_ACTION_ALLOW;
}

/* Reports one denied packet as a PSCOPE_REC_DROP record (source policy). The
 * caller then returns TC_ACT_SHOT. */
static __always_inline void pscope_policy_drop(struct __sk_buff *skb, const struct pscope_tuple *t,
					       __u8 obs_point, __u32 rule_id)
{
}

#endif /* __PERISCOPE_POLICY_H */
