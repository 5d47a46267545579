//go:build ignore

/* signal: fatal signals as they are generated (signal/signal_generate,
 * tp_btf), filtered in the kernel by a signal mask set at load time. The
 * sender is the current task (for faults and kernel kills that is the
 * target itself or the task that triggered it). */
#include "vigil.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Bit n set: report signal n. Set by the loader. */
volatile const u64 signal_mask = 0;

struct signal_event {
	u64 boot_ns;
	u64 cgroup_id;   /* target's cgroup v2 id */
	u32 pid;         /* target tgid */
	u32 sender_pid;  /* current tgid */
	u32 sig;
	s32 code;        /* si_code: 0 SI_USER, 0x80 SI_KERNEL, <0 from user space */
	u32 result;      /* 0 delivered, 1 ignored, 2 already pending, 3 overflow, 4 lose info */
	u32 group;       /* sent to the whole thread group */
	u8 comm[TASK_COMM_LEN];        /* target */
	u8 sender_comm[TASK_COMM_LEN];
};

VIGIL_RINGBUF(events, 1 << 20);
VIGIL_DROPS(drops, 1);
const struct signal_event *unused_signal_event __attribute__((unused));

SEC("tp_btf/signal_generate")
int BPF_PROG(handle_signal, int sig, struct kernel_siginfo *info, struct task_struct *task,
	     int group, int result)
{
	if (sig <= 0 || sig >= 64 || !(signal_mask & (1ULL << sig)))
		return 0;
	u32 tgid = BPF_CORE_READ(task, tgid);
	if (vigil_is_self(tgid))
		return 0;
	struct signal_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		vigil_count_drop(&drops, 0);
		return 0;
	}
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = BPF_CORE_READ(task, cgroups, dfl_cgrp, kn, id);
	e->pid = tgid;
	e->sender_pid = bpf_get_current_pid_tgid() >> 32;
	e->sig = sig;
	/* info may be SEND_SIG_NOINFO (0) or SEND_SIG_PRIV (1) */
	if ((unsigned long)info > 1)
		e->code = BPF_CORE_READ(info, si_code);
	else
		e->code = (unsigned long)info == 1 ? 0x80 : 0;
	e->result = result;
	e->group = group;
	BPF_CORE_READ_STR_INTO(&e->comm, task, comm);
	bpf_get_current_comm(e->sender_comm, sizeof(e->sender_comm));
	vigil_submit(&events, e);
	return 0;
}
