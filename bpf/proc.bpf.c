// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Process lifecycle and socket ownership, into the `proc_events` ring buffer.
 *
 * Lifecycle (struct pscope_proc): tp_btf sched_process_exec (binary path as
 * given to execve, first `max_args` argument bytes read from the new image's
 * stack), sched_process_fork (new processes only, threads are skipped) and
 * sched_process_exit (only when the last thread of a process exits).
 *
 * Ownership (struct pscope_sock_owner), with the flow hash of the
 * connection's trace records. fentry/fexit are not permitted on every kernel
 * (lockdown), so only cgroup hooks and tracepoints are used; the programs
 * attach to the root of the cgroup v2 hierarchy, so they see every socket:
 *  - sockops TCP_CONNECT_CB: TCP client, in connect(), after the source port
 *    is bound (sock:inet_sock_set_state SYN_SENT and cgroup/connect4 come
 *    before that), before the SYN leaves.
 *  - sockops TCP_LISTEN_CB stores the listening process in the socket's
 *    storage, cloned into every accepted socket; PASSIVE_ESTABLISHED_CB
 *    reports it for the new connection (TCP server: the listening process).
 *  - cgroup/sock_create stores the creating process of UDP sockets;
 *    cgroup_skb egress and ingress report it once per (socket, flow), with
 *    the tuple from the datagram (so unconnected sockets are covered too).
 * Not attributed: forwarded traffic (no local socket), sockets created
 * before the programs (user space backfills those from /proc at start),
 * sockets handed to another process keep their creator (UDP) or listener.
 *
 * Expiry: the stored owner (and the UDP per-flow dedupe state) goes when the
 * socket closes: deleted at sockops STATE_CB to TCP_CLOSE (enabled per
 * socket with bpf_sock_ops_cb_flags_set), cleared at cgroup/sock_release for
 * UDP (cgroup sock programs cannot delete storage), so a tuple reused by
 * another socket gets a record of its own owner.
 *
 * Namespace filter: socket-owner records only for sockets whose network
 * namespace cookie is in `watched_netns`, unless `proc_filter` says the map
 * is empty (then all). Lifecycle records are not filtered.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "periscope.h"
#include "flowhash.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17

#define PROC_FIXED_SIZE ((__u32)__builtin_offsetof(struct pscope_proc, data))

_Static_assert(__builtin_offsetof(struct pscope_proc, data) == 104,
	       "pscope_proc fixed part must be 104 bytes");
_Static_assert(sizeof(struct pscope_sock_owner) == 128, "pscope_sock_owner must be 128 bytes");
_Static_assert(__builtin_offsetof(struct pscope_sock_owner, flow_hash) == 32,
	       "pscope_sock_owner flow_hash must sit where the trace record's does");
_Static_assert(__builtin_offsetof(struct pscope_sock_owner, netns_cookie) == 40,
	       "pscope_sock_owner netns_cookie must sit where the trace record's does");

/* Keeps struct pscope_sock_owner (built on the stack) in the object's BTF for the layout test. */
struct pscope_sock_owner *sock_owner_btf __attribute__((unused));

/* Argument bytes copied per exec (0..PSCOPE_PROC_MAX_ARGS); the only .rodata global. */
const volatile __u32 max_args = 1024;

/* Records for user space. Size (bytes, power of two) is set before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} proc_events SEC(".maps");

/* Per-CPU counters, see PROC_STAT_*. */
#define PROC_STAT_EMITTED 0      /* process records written */
#define PROC_STAT_LOST 1         /* process records lost: ring buffer full */
#define PROC_STAT_SOCK_EMITTED 2 /* socket-owner records written */
#define PROC_STAT_SOCK_LOST 3    /* socket-owner records lost */
#define PROC_STAT_SOCK_EXPIRED 4 /* stored owners deleted when their socket closed */
#define PROC_STAT_SOCK_FILTERED 5 /* socket-owner records skipped: namespace not watched */
#define PROC_STAT_N 6
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PROC_STAT_N);
	__type(key, __u32);
	__type(value, __u64);
} proc_stats SEC(".maps");

/* Per-CPU scratch for one process record (too large for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pscope_proc);
} proc_scratch SEC(".maps");

/* Network namespaces (cookies) whose sockets are reported (value unused). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} watched_netns SEC(".maps");

/* Entry 0: number of entries user space keeps in watched_netns (0: report all). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} proc_filter SEC(".maps");

/* Process start time by tgid, for hooks that cannot read the task (cgroup hooks). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u64);
} proc_start SEC(".maps");

/* The owner stored with a socket: its creator (UDP) or listener (TCP, cloned
 * into accepted sockets). last_hash: flow hash of the last record (UDP). */
struct sk_owner {
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u32 last_hash;
	__u64 cgroup_id;
	__u64 start_ns;
	char comm[16];
};
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct sk_owner);
} sk_owners SEC(".maps");

static __always_inline void count(__u32 stat)
{
	__u64 *v = bpf_map_lookup_elem(&proc_stats, &stat);

	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Writes `size` bytes of `rec` (at most `max`), counting the record as emitted or lost. */
static __always_inline void emit(void *rec, __u64 size, __u64 max, __u32 stat_ok)
{
	asm volatile("" : "+r"(size));
	if (size > max)
		size = max;
	if (size < sizeof(struct pscope_hdr))
		return;
	if (bpf_ringbuf_output(&proc_events, rec, size, 0) < 0)
		count(stat_ok + 1);
	else
		count(stat_ok);
}

/* Whether socket-owner records of namespace `cookie` are wanted; counts the skipped. */
static __always_inline int netns_wanted(__u64 cookie)
{
	__u32 zero = 0;
	__u32 *n = bpf_map_lookup_elem(&proc_filter, &zero);

	if (!n || *n == 0 || bpf_map_lookup_elem(&watched_netns, &cookie))
		return 1;
	count(PROC_STAT_SOCK_FILTERED);
	return 0;
}

static __always_inline __u64 task_start(struct task_struct *t)
{
	return BPF_CORE_READ(t, group_leader, start_boottime);
}

/* Process id of `t` in its own (innermost) pid namespace: its group leader's pid there. */
static __always_inline __u32 task_ns_tgid(struct task_struct *t)
{
	struct pid *pid = BPF_CORE_READ(t, group_leader, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid up = {};

	if (level > 32)
		return 0;
	bpf_core_read(&up, sizeof(up), &pid->numbers[level]);
	return up.nr;
}

/* The fields every process record has, from `t`. */
static __always_inline void fill_task(struct pscope_proc *rec, struct task_struct *t, __u8 event)
{
	struct task_struct *parent = BPF_CORE_READ(t, real_parent);
	const struct cred *cred = BPF_CORE_READ(t, real_cred);

	rec->hdr.type = PSCOPE_REC_PROC;
	rec->hdr.subtype = event;
	rec->hdr.version = PSCOPE_PROC_VERSION;
	rec->hdr.flags = 0;
	rec->hdr.source = bpf_get_smp_processor_id();
	rec->hdr.orig_len = 0;
	rec->hdr.cap_len = 0;
	rec->ts_boot_ns = bpf_ktime_get_boot_ns();
	rec->pid = BPF_CORE_READ(t, pid);
	rec->tgid = BPF_CORE_READ(t, tgid);
	rec->ppid = BPF_CORE_READ(parent, tgid);
	rec->uid = BPF_CORE_READ(cred, uid.val);
	rec->gid = BPF_CORE_READ(cred, gid.val);
	rec->euid = BPF_CORE_READ(cred, euid.val);
	rec->egid = BPF_CORE_READ(cred, egid.val);
	rec->exit_code = 0;
	rec->cgroup_id = BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
	rec->start_ns = task_start(t);
	rec->parent_start_ns = task_start(parent);
	bpf_probe_read_kernel_str(rec->comm, sizeof(rec->comm), &t->comm);
	rec->path_len = 0;
	rec->args_len = 0;
	rec->ns_tgid = task_ns_tgid(t);
}

static __always_inline struct pscope_proc *scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&proc_scratch, &zero);
}

static __always_inline void remember_start(struct task_struct *t)
{
	__u32 tgid = BPF_CORE_READ(t, tgid);
	__u64 start = task_start(t);

	bpf_map_update_elem(&proc_start, &tgid, &start, BPF_ANY);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(proc_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct pscope_proc *rec = scratch();
	unsigned long arg_start, arg_end;
	__u64 path_len, total, copy;
	long n;

	if (!rec)
		return 0;
	fill_task(rec, p, PSCOPE_PROC_EXEC);
	remember_start(p);
	n = bpf_probe_read_kernel_str(rec->data, PSCOPE_PROC_MAX_PATH, BPF_CORE_READ(bprm, filename));
	path_len = n > 0 ? n : 0;
	asm volatile("" : "+r"(path_len));
	if (path_len > PSCOPE_PROC_MAX_PATH)
		path_len = PSCOPE_PROC_MAX_PATH;

	arg_start = BPF_CORE_READ(p, mm, arg_start);
	arg_end = BPF_CORE_READ(p, mm, arg_end);
	total = arg_end > arg_start ? arg_end - arg_start : 0;
	copy = total < max_args ? total : max_args;
	asm volatile("" : "+r"(copy));
	if (copy > PSCOPE_PROC_MAX_ARGS)
		copy = PSCOPE_PROC_MAX_ARGS;
	if (copy > 0 && bpf_probe_read_user(rec->data + path_len, copy, (void *)arg_start) < 0)
		copy = 0;
	rec->path_len = path_len;
	rec->args_len = copy;
	rec->hdr.orig_len = total;
	rec->hdr.cap_len = path_len + copy;
	if (copy < total)
		rec->hdr.flags |= PSCOPE_F_TRUNCATED;
	emit(rec, PROC_FIXED_SIZE + path_len + copy, sizeof(*rec), PROC_STAT_EMITTED);
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(proc_fork, struct task_struct *parent, struct task_struct *child)
{
	struct pscope_proc *rec;

	if (BPF_CORE_READ(child, pid) != BPF_CORE_READ(child, tgid))
		return 0; /* a new thread, not a new process */
	rec = scratch();
	if (!rec)
		return 0;
	fill_task(rec, child, PSCOPE_PROC_FORK);
	remember_start(child);
	emit(rec, PROC_FIXED_SIZE, sizeof(*rec), PROC_STAT_EMITTED);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(proc_exit, struct task_struct *p, bool group_dead)
{
	struct pscope_proc *rec;
	__u32 tgid;

	if (!group_dead)
		return 0; /* other threads of the process still run */
	rec = scratch();
	if (!rec)
		return 0;
	fill_task(rec, p, PSCOPE_PROC_EXIT);
	rec->exit_code = BPF_CORE_READ(p, exit_code);
	tgid = rec->tgid;
	bpf_map_delete_elem(&proc_start, &tgid);
	emit(rec, PROC_FIXED_SIZE, sizeof(*rec), PROC_STAT_EMITTED);
	return 0;
}

/* The current process, as stored with a socket. */
static __always_inline void current_owner(struct sk_owner *o)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u64 *start = bpf_map_lookup_elem(&proc_start, &tgid);

	o->pid = (__u32)pid_tgid;
	o->tgid = tgid;
	o->uid = (__u32)bpf_get_current_uid_gid();
	o->cgroup_id = bpf_get_current_cgroup_id();
	o->start_ns = start ? *start : 0;
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

static __always_inline void owner_hash(struct pscope_sock_owner *rec)
{
	int words = rec->family == 4 ? 1 : 4;

	rec->flow_hash = flow_hash_combine(endpoint_hash(rec->saddr, words, rec->sport),
					   endpoint_hash(rec->daddr, words, rec->dport), rec->proto);
}

/* Fills the owner part, hashes the tuple and writes the record. */
static __always_inline void emit_owner(struct pscope_sock_owner *rec, const struct sk_owner *o,
				       __u8 source)
{
	rec->hdr.type = PSCOPE_REC_SOCK_OWNER;
	rec->hdr.subtype = source;
	rec->hdr.version = PSCOPE_SOCK_OWNER_VERSION;
	rec->hdr.source = bpf_get_smp_processor_id();
	rec->ts_boot_ns = bpf_ktime_get_boot_ns();
	rec->pid = o->pid;
	rec->tgid = o->tgid;
	rec->uid = o->uid;
	rec->cgroup_id = o->cgroup_id;
	rec->start_ns = o->start_ns;
	__builtin_memcpy(rec->comm, o->comm, sizeof(rec->comm));
	owner_hash(rec);
	emit(rec, sizeof(*rec), sizeof(*rec), PROC_STAT_SOCK_EMITTED);
}

/* An IPv4-mapped IPv6 pair becomes IPv4, as the packets on the wire are. */
static __always_inline void unmap_v4(struct pscope_sock_owner *rec)
{
	if (rec->daddr[0] != 0 || rec->daddr[1] != 0 || rec->daddr[2] != bpf_htonl(0xffff))
		return;
	rec->family = 4;
	rec->saddr[0] = rec->saddr[3];
	rec->daddr[0] = rec->daddr[3];
	rec->saddr[1] = rec->saddr[2] = rec->saddr[3] = 0;
	rec->daddr[1] = rec->daddr[2] = rec->daddr[3] = 0;
}

/* The tuple of a TCP socket as sock_ops sees it; 0 when neither IPv4 nor IPv6. */
static __always_inline int skops_tuple(struct pscope_sock_owner *rec, struct bpf_sock_ops *skops)
{
	rec->proto = IPPROTO_TCP;
	rec->sport = skops->local_port;
	rec->dport = bpf_ntohl(skops->remote_port);
	if (skops->family == AF_INET) {
		rec->family = 4;
		rec->saddr[0] = skops->local_ip4;
		rec->daddr[0] = skops->remote_ip4;
		return 1;
	}
	if (skops->family != AF_INET6)
		return 0;
	rec->family = 6;
	rec->saddr[0] = skops->local_ip6[0];
	rec->saddr[1] = skops->local_ip6[1];
	rec->saddr[2] = skops->local_ip6[2];
	rec->saddr[3] = skops->local_ip6[3];
	rec->daddr[0] = skops->remote_ip6[0];
	rec->daddr[1] = skops->remote_ip6[1];
	rec->daddr[2] = skops->remote_ip6[2];
	rec->daddr[3] = skops->remote_ip6[3];
	unmap_v4(rec);
	return 1;
}

/* Deletes the stored owner of `sk` (socket closing), counting it when there was one. */
static __always_inline void expire_owner(struct bpf_sock *sk)
{
	if (bpf_sk_storage_delete(&sk_owners, sk) == 0)
		count(PROC_STAT_SOCK_EXPIRED);
}

SEC("sockops")
int sock_tcp_ops(struct bpf_sock_ops *skops)
{
	struct pscope_sock_owner rec = {};
	struct sk_owner cur = {}, *o;
	struct bpf_sock *sk;
	__u64 netns;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		if (!skops_tuple(&rec, skops))
			return 1;
		netns = bpf_get_netns_cookie(skops);
		if (!netns_wanted(netns))
			return 1;
		current_owner(&cur);
		rec.netns_cookie = netns;
		rec.sock_cookie = bpf_get_socket_cookie(skops);
		emit_owner(&rec, &cur, PSCOPE_SOCK_TCP_CONNECT);
		return 1;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		sk = skops->sk;
		if (!sk)
			return 1;
		o = bpf_sk_storage_get(&sk_owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (o) {
			current_owner(o);
			/* The listener's storage goes when it closes. */
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							       BPF_SOCK_OPS_STATE_CB_FLAG);
		}
		return 1;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		sk = skops->sk;
		if (!sk || !skops_tuple(&rec, skops))
			return 1;
		o = bpf_sk_storage_get(&sk_owners, sk, 0, 0);
		if (!o)
			return 1; /* listener older than the programs */
		/* The clone of the listener's owner goes when this connection closes. */
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
						       BPF_SOCK_OPS_STATE_CB_FLAG);
		netns = bpf_get_netns_cookie(skops);
		if (!netns_wanted(netns))
			return 1;
		rec.netns_cookie = netns;
		rec.sock_cookie = bpf_get_socket_cookie(skops);
		emit_owner(&rec, o, PSCOPE_SOCK_TCP_ACCEPT);
		return 1;
	case BPF_SOCK_OPS_STATE_CB:
		/* args[0]: old state, args[1]: new state. */
		if (skops->args[1] != BPF_TCP_CLOSE)
			return 1;
		sk = skops->sk;
		if (sk)
			expire_owner(sk);
		return 1;
	}
	return 1;
}

SEC("cgroup/sock_create")
int sock_udp_create(struct bpf_sock *sk)
{
	struct sk_owner *o;

	if (sk->protocol != IPPROTO_UDP || (sk->family != AF_INET && sk->family != AF_INET6))
		return 1;
	o = bpf_sk_storage_get(&sk_owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (o)
		current_owner(o);
	return 1;
}

/* cgroup sock programs cannot delete socket storage: the owner is cleared instead (tgid
 * 0: no owner), with the UDP dedupe state; the storage itself goes with the socket. */
SEC("cgroup/sock_release")
int sock_udp_release(struct bpf_sock *sk)
{
	struct sk_owner *o;

	if (sk->protocol != IPPROTO_UDP)
		return 1;
	o = bpf_sk_storage_get(&sk_owners, sk, 0, 0);
	if (!o || o->tgid == 0)
		return 1;
	__builtin_memset(o, 0, sizeof(*o));
	count(PROC_STAT_SOCK_EXPIRED);
	return 1;
}

/* A UDP datagram of a socket with a stored owner: one record per (socket, flow). */
static __always_inline void udp_packet(struct __sk_buff *skb, int egress)
{
	struct pscope_sock_owner rec = {};
	struct bpf_sock *sk = skb->sk;
	struct sk_owner *o;
	__u32 l4 = 0;
	__u16 ports[2];

	if (!sk)
		return;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_UDP)
		return;
	o = bpf_sk_storage_get(&sk_owners, sk, 0, 0);
	if (!o || o->tgid == 0)
		return; /* no owner, or expired */
	if (skb->protocol == bpf_htons(0x0800)) {
		struct iphdr ip;

		if (bpf_skb_load_bytes(skb, 0, &ip, sizeof(ip)) < 0 || ip.protocol != IPPROTO_UDP)
			return;
		rec.family = 4;
		rec.saddr[0] = ip.saddr;
		rec.daddr[0] = ip.daddr;
		l4 = ip.ihl * 4;
	} else if (skb->protocol == bpf_htons(0x86dd)) {
		struct ipv6hdr ip6;

		if (bpf_skb_load_bytes(skb, 0, &ip6, sizeof(ip6)) < 0 || ip6.nexthdr != IPPROTO_UDP)
			return;
		rec.family = 6;
		__builtin_memcpy(rec.saddr, &ip6.saddr, 16);
		__builtin_memcpy(rec.daddr, &ip6.daddr, 16);
		l4 = sizeof(ip6);
	} else {
		return;
	}
	if (bpf_skb_load_bytes(skb, l4, ports, sizeof(ports)) < 0)
		return;
	rec.proto = IPPROTO_UDP;
	rec.sport = bpf_ntohs(ports[0]);
	rec.dport = bpf_ntohs(ports[1]);
	if (!egress) {
		/* s* is the socket's own side: the destination of a received datagram. */
		__u32 a[4];
		__u16 p = rec.sport;

		__builtin_memcpy(a, rec.saddr, 16);
		__builtin_memcpy(rec.saddr, rec.daddr, 16);
		__builtin_memcpy(rec.daddr, a, 16);
		rec.sport = rec.dport;
		rec.dport = p;
	}
	owner_hash(&rec);
	if (o->last_hash == rec.flow_hash)
		return;
	rec.netns_cookie = bpf_get_netns_cookie(skb);
	if (!netns_wanted(rec.netns_cookie))
		return; /* last_hash kept: reported once its namespace is watched */
	o->last_hash = rec.flow_hash;
	rec.sock_cookie = bpf_get_socket_cookie(skb);
	emit_owner(&rec, o, PSCOPE_SOCK_UDP);
}

SEC("cgroup_skb/egress")
int sock_udp_egress(struct __sk_buff *skb)
{
	udp_packet(skb, 1);
	return 1;
}

SEC("cgroup_skb/ingress")
int sock_udp_ingress(struct __sk_buff *skb)
{
	udp_packet(skb, 0);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
