//go:build ignore

/* exit: one record per process (thread group) exit, from
 * sched/sched_process_exit when the last thread dies, with the exit status,
 * the terminating signal, the lifetime and how many processes and threads
 * the process forked (counted in the kernel from sched/sched_process_fork). */
#include "vigil.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#ifndef SIGNAL_GROUP_EXIT
#define SIGNAL_GROUP_EXIT 0x00000004
#endif

struct exit_event {
	u64 boot_ns;
	u64 cgroup_id;
	u64 lifetime_ns; /* since the thread group leader started */
	u32 pid;         /* tgid */
	u32 ppid;
	u32 uid;
	u32 exit_code;   /* exit status, 0-255 (0 when killed by a signal) */
	u32 signal;      /* terminating signal, 0 for a normal exit */
	u32 core_dumped;
	u32 forks;       /* child processes created */
	u32 threads;     /* threads created */
	u8 comm[TASK_COMM_LEN];
};

struct fork_count {
	u32 forks;
	u32 threads;
};

VIGIL_RINGBUF(events, 1 << 22);
VIGIL_DROPS(drops, 1);
const struct exit_event *unused_exit_event __attribute__((unused));

/* Forks per live process; LRU so processes that exit while the probe is
 * detached cannot fill it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, u32);
	__type(value, struct fork_count);
} fork_counts SEC(".maps");

SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	u32 tgid = BPF_CORE_READ(parent, tgid);
	if (vigil_is_self(tgid))
		return 0;
	struct fork_count *c = bpf_map_lookup_elem(&fork_counts, &tgid);
	if (!c) {
		struct fork_count zero = {};
		bpf_map_update_elem(&fork_counts, &tgid, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&fork_counts, &tgid);
		if (!c)
			return 0;
	}
	if (BPF_CORE_READ(child, pid) == BPF_CORE_READ(child, tgid))
		__sync_fetch_and_add(&c->forks, 1);
	else
		__sync_fetch_and_add(&c->threads, 1);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(handle_exit, struct task_struct *task)
{
	u32 tgid = BPF_CORE_READ(task, tgid);
	if (vigil_is_self(tgid))
		return 0;
	/* Only the last thread of the group reports the process. */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;

	struct exit_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		vigil_count_drop(&drops, 0);
		return 0;
	}
	u64 now = bpf_ktime_get_ns();
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->lifetime_ns = now - BPF_CORE_READ(task, group_leader, start_time);
	e->pid = tgid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = BPF_CORE_READ(task, cred, uid.val);

	int code = BPF_CORE_READ(task, exit_code);
	if (BPF_CORE_READ(task, signal, flags) & SIGNAL_GROUP_EXIT)
		code = BPF_CORE_READ(task, signal, group_exit_code);
	e->exit_code = (code >> 8) & 0xff;
	e->signal = code & 0x7f;
	e->core_dumped = (code & 0x80) ? 1 : 0;

	struct fork_count *c = bpf_map_lookup_elem(&fork_counts, &tgid);
	if (c) {
		e->forks = c->forks;
		e->threads = c->threads;
		bpf_map_delete_elem(&fork_counts, &tgid);
	} else {
		e->forks = 0;
		e->threads = 0;
	}
	BPF_CORE_READ_STR_INTO(&e->comm, task, group_leader, comm);

	vigil_submit(&events, e);
	return 0;
}
