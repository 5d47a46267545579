//go:build ignore

/* exec: one record per successful execve/execveat, from the
 * sched/sched_process_exec tracepoint (attached as tp_btf, so no tracefs is
 * needed), with the new image's argv read from the new mm's argument area
 * (bounded to ARGV_SIZE bytes). */
#include "vigil.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define FILENAME_SIZE 256
#define ARGV_SIZE 1024

struct exec_event {
	u64 boot_ns;    /* bpf_ktime_get_boot_ns at exec */
	u64 cgroup_id;
	u32 pid;        /* tgid */
	u32 ppid;       /* real parent's tgid */
	u32 exec_ancestor; /* nearest ancestor that exec'd: ppid, or above a fork-only parent; 0 if unknown */
	u32 uid;
	u32 gid;
	u32 argv_size;  /* valid bytes in argv */
	u32 truncated;  /* 1 if argv was longer than ARGV_SIZE */
	u32 pad;
	u8 comm[TASK_COMM_LEN];
	u8 filename[FILENAME_SIZE];
	u8 argv[ARGV_SIZE]; /* NUL-separated, as in /proc/PID/cmdline */
};

/* ANCESTOR_HOPS bounds the walk past fork-only ancestors (subshells). */
#define ANCESTOR_HOPS 8

VIGIL_RINGBUF(events, 1 << 22);
/* Referenced so the type lands in BTF for bpf2go -type. */
const struct exec_event *unused_exec_event __attribute__((unused));
VIGIL_DROPS(drops, 1);

/* exec_ancestor returns the tgid of the nearest of p and its ancestors that
 * has exec'd since it was forked, skipping fork-only copies such as a shell's
 * subshells. Those often exit before userspace reads this event, which would
 * cut the new process off from its lineage; the exec'd ancestor is the one
 * userspace has seen exec, or a long-lived process that predates it. A task
 * that has not exec'd since its fork still has self_exec_id ==
 * parent_exec_id (copy_process copies the first and sets the second to the
 * parent's self_exec_id; each exec increments the first). 0 if no such
 * ancestor is found within ANCESTOR_HOPS. */
static __always_inline u32 exec_ancestor(struct task_struct *p)
{
	for (int i = 0; i < ANCESTOR_HOPS && p; i++) {
		u32 tgid = BPF_CORE_READ(p, tgid);
		if (tgid <= 1 || BPF_CORE_READ(p, self_exec_id) != BPF_CORE_READ(p, parent_exec_id))
			return tgid;
		p = BPF_CORE_READ(p, real_parent);
	}
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(handle_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tgid = id >> 32;
	if (vigil_is_self(tgid))
		return 0;

	struct exec_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		vigil_count_drop(&drops, 0);
		return 0;
	}

	u64 ug = bpf_get_current_uid_gid();

	e->boot_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = tgid;
	struct task_struct *parent = BPF_CORE_READ(task, real_parent);
	e->ppid = BPF_CORE_READ(parent, tgid);
	e->exec_ancestor = exec_ancestor(parent);
	e->uid = (u32)ug;
	e->gid = ug >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	if (bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), BPF_CORE_READ(bprm, filename)) < 0)
		e->filename[0] = 0;

	unsigned long start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long end = BPF_CORE_READ(task, mm, arg_end);
	u64 len = end > start ? end - start : 0;
	e->truncated = 0;
	if (len > ARGV_SIZE) {
		len = ARGV_SIZE;
		e->truncated = 1;
	}
	if (len && bpf_probe_read_user(e->argv, len, (void *)start) < 0)
		len = 0;
	e->argv_size = len;

	vigil_submit(&events, e);
	return 0;
}
