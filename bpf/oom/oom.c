//go:build ignore

/* oom: OOM-killer victims from oom/mark_victim (tp_btf), with the victim's
 * memory at the time and the task whose allocation triggered the kill. */
#include "vigil.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define PAGE_SHIFT 12

struct oom_event {
	u64 boot_ns;
	u64 cgroup_id;      /* victim's cgroup v2 id */
	u64 total_vm;       /* bytes */
	u64 anon_rss;       /* bytes, approximate (per-CPU counters not summed) */
	u64 file_rss;
	u64 shmem_rss;
	u32 pid;            /* victim tgid */
	u32 uid;
	u32 trigger_pid;    /* current: the task whose allocation failed */
	s32 oom_score_adj;
	u8 comm[TASK_COMM_LEN];
	u8 trigger_comm[TASK_COMM_LEN];
};

VIGIL_RINGBUF(events, 1 << 16);
VIGIL_DROPS(drops, 1);
const struct oom_event *unused_oom_event __attribute__((unused));

static __always_inline u64 pages(s64 n)
{
	return n > 0 ? (u64)n << PAGE_SHIFT : 0;
}

SEC("tp_btf/mark_victim")
int BPF_PROG(handle_mark_victim, struct task_struct *task)
{
	struct oom_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		vigil_count_drop(&drops, 0);
		return 0;
	}
	struct mm_struct *mm = BPF_CORE_READ(task, mm);
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	e->total_vm = pages(BPF_CORE_READ(mm, total_vm));
	e->anon_rss = pages(BPF_CORE_READ(mm, rss_stat[1].count)); /* MM_ANONPAGES */
	e->file_rss = pages(BPF_CORE_READ(mm, rss_stat[0].count)); /* MM_FILEPAGES */
	e->shmem_rss = pages(BPF_CORE_READ(mm, rss_stat[3].count)); /* MM_SHMEMPAGES */
	e->pid = BPF_CORE_READ(task, tgid);
	e->uid = BPF_CORE_READ(task, cred, uid.val);
	e->trigger_pid = bpf_get_current_pid_tgid() >> 32;
	e->oom_score_adj = BPF_CORE_READ(task, signal, oom_score_adj);
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	bpf_get_current_comm(e->trigger_comm, sizeof(e->trigger_comm));
	vigil_submit(&events, e);
	return 0;
}
