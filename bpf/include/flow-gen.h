/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The flow table's generation switch (see flows.h): `flow_gen`, an array of
 * maps whose one slot names the per-CPU hash packets count into. Included by
 * flows.h (trace program) and by the drop program, whose loader shares the
 * trace program's `flow_gen` (bpf_map__reuse_fd) to add drops to flows.
 */
#ifndef __PERISCOPE_FLOW_GEN_H
#define __PERISCOPE_FLOW_GEN_H

#include "periscope.h"

/* One generation of the flow table; entries set before load. */
struct flow_table {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct pscope_flow_key);
	__type(value, struct pscope_flow_value);
};

/* The table in use (slot 0), set and switched by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct flow_table);
} flow_gen SEC(".maps");

#endif /* __PERISCOPE_FLOW_GEN_H */
