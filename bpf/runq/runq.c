//go:build ignore

/* runq: run-queue latency (wakeup or preemption to running) per cgroup as
 * an in-kernel log2 histogram in microseconds. sched_wakeup, sched_wakeup_new
 * and sched_switch (preempted prev) stamp the task in task storage;
 * sched_switch to next adds the delay to next's cgroup histogram. User
 * space harvests and clears the per-CPU histogram each interval. */
#include "vigil.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define MAX_SLOTS 32

struct hist_key {
	u64 cgroup_id;
	u32 slot; /* delay in [2^slot, 2^(slot+1)) us; slot 0 also holds < 1us */
	u32 _pad;
};

const struct hist_key *unused_hist_key __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, u64);
} enqueued SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct hist_key);
	__type(value, u64);
} hist SEC(".maps");

static __always_inline void stamp(struct task_struct *p)
{
	if (!BPF_CORE_READ(p, pid))
		return; /* idle */
	u64 *ts = bpf_task_storage_get(&enqueued, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (ts)
		*ts = bpf_ktime_get_ns();
}

static __always_inline u32 log2_slot(u64 v)
{
	u32 r = 0;
	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) { r += 1; }
	return r;
}

SEC("tp_btf/sched_wakeup")
int BPF_PROG(handle_wakeup, struct task_struct *p)
{
	stamp(p);
	return 0;
}

SEC("tp_btf/sched_wakeup_new")
int BPF_PROG(handle_wakeup_new, struct task_struct *p)
{
	stamp(p);
	return 0;
}

SEC("tp_btf/sched_switch")
int BPF_PROG(handle_switch, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	if (prev_state == 0) /* TASK_RUNNING: preempted, back on the run queue */
		stamp(prev);
	if (!BPF_CORE_READ(next, pid))
		return 0;
	u64 *ts = bpf_task_storage_get(&enqueued, next, 0, 0);
	if (!ts || !*ts)
		return 0;
	u64 delta_us = (bpf_ktime_get_ns() - *ts) / 1000;
	*ts = 0;
	u32 slot = log2_slot(delta_us);
	if (slot >= MAX_SLOTS)
		slot = MAX_SLOTS - 1;
	struct hist_key k = {
		.cgroup_id = BPF_CORE_READ(next, cgroups, dfl_cgrp, kn, id),
		.slot = slot,
	};
	u64 *n = bpf_map_lookup_elem(&hist, &k);
	if (n) {
		*n += 1;
	} else {
		u64 one = 1;
		bpf_map_update_elem(&hist, &k, &one, BPF_NOEXIST);
	}
	return 0;
}
