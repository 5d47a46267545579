//go:build ignore

/* sys: everything Vigil derives from system calls, in one object:
 *
 *  - counts:  syscalls per (process, syscall number), aggregated in per-CPU
 *             maps that user space harvests and clears each interval;
 *  - file:    open/openat/openat2 of paths that match configured patterns
 *             (prefix, or prefix + one '*' path segment + suffix), with the
 *             result, from a ring buffer;
 *  - priv:    setuid-family, capset and ptrace calls with arguments,
 *             credentials before and after, and the result.
 *
 * Counts need every syscall: sys_enter, attached as tp_btf to
 * raw_syscalls/sys_enter. File and priv need a dozen syscalls but the
 * result of each, and a program on raw_syscalls/sys_exit runs on the exit
 * of every syscall. So their exits go where possible to the per-syscall
 * tracepoints syscalls/sys_exit_<name> (file_sys_exit, priv_sys_exit),
 * where the kernel tests a bitmap of syscall numbers before running
 * anything. Their entries go to syscalls/sys_enter_<name> too
 * (file_sys_enter, priv_sys_enter<n>) when counts is off; when it is on,
 * sys_enter runs anyway and does them (generic_file, generic_priv): a
 * second hook on raw_syscalls/sys_enter would cost every syscall more than
 * the few compares. Without tracefs the per-syscall tracepoints cannot be
 * attached, and sys_exit on raw_syscalls/sys_exit does the exits: the
 * fallback. x86-64 syscall numbers. */
#include "vigil.h"
#include "priv_event.h"

char __license[] SEC("license") = "Dual BSD/GPL";

#define NR_open 2
#define NR_openat 257
#define NR_openat2 437

#define PATH_SIZE 256
#define PREFIX_SIZE 64
#define SUFFIX_SIZE 32
#define SEGMENT_MAX 32
#define MAX_PATTERNS 16

volatile const u32 enable_counts = 0;
/* The generic raw_syscalls programs also do file and priv: their entries
 * in sys_enter, their exits in sys_exit when that is attached. */
volatile const u32 generic_file = 0;
volatile const u32 generic_priv = 0;

/* The context of a syscalls/sys_enter_<name> or sys_exit_<name> tracepoint
 * program (struct syscall_tp_t in kernel/trace/trace_syscalls.c). It is not
 * zeroed: the bytes after nr, and the args the syscall does not take, are
 * stale stack. */
struct syscall_enter_ctx {
	u64 common;
	s32 nr;
	u32 pad;
	u64 args[6];
};

struct syscall_exit_ctx {
	u64 common;
	s32 nr;
	u32 pad;
	s64 ret;
};

struct count_key {
	u32 tgid;
	u32 nr;
};

struct pattern {
	u32 used;       /* 0 ends the list */
	u32 prefix_len;
	u32 has_star;   /* one path segment of [^/]* follows the prefix */
	u32 suffix_len;
	u8 prefix[PREFIX_SIZE];
	u8 suffix[SUFFIX_SIZE];
};

struct file_event {
	u64 boot_ns;
	u64 cgroup_id;
	u32 pid;
	u32 tid;
	u32 uid;
	u32 nr;       /* open, openat or openat2 */
	u32 flags;    /* open flags */
	s32 ret;      /* fd, or -errno */
	u8 comm[TASK_COMM_LEN];
	u8 path[PATH_SIZE];
};

VIGIL_RINGBUF(file_events, 1 << 22);
VIGIL_RINGBUF(priv_events, 1 << 22);
VIGIL_DROPS(drops, 2); /* 0: file_events, 1: priv_events */
const struct file_event *unused_file_event __attribute__((unused));
const struct priv_event *unused_priv_event __attribute__((unused));
const struct count_key *unused_count_key __attribute__((unused));
const struct pattern *unused_pattern __attribute__((unused));

/* Syscall counts live in a direct-mapped per-CPU table, two halves of
 * COUNT_SLOTS: the kernel counts into half count_epoch & 1 while user space
 * reads and zeroes the other, so no count is lost at harvest. A slot taken
 * by another (tgid, nr) sends the call to the overflow hash instead. An
 * array slot costs a few instructions (the lookup is inlined); a hash
 * lookup per syscall costs several times that. */
#define COUNT_SLOTS 16384

struct count_slot {
	u32 tgid;
	u32 nr;
	u64 count;
};

const struct count_slot *unused_count_slot __attribute__((unused));

/* Flipped by user space before each harvest. */
volatile u32 count_epoch = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * COUNT_SLOTS);
	__type(key, u32);
	__type(value, struct count_slot);
} count_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 32768);
	__type(key, struct count_key);
	__type(value, u64);
} counts SEC(".maps");

static __always_inline void count_syscall(u32 tgid, u32 nr)
{
	u32 h = (tgid * 2654435761u) ^ (nr * 2246822519u);
	u32 idx = ((count_epoch & 1) * COUNT_SLOTS) + ((h ^ (h >> 15)) & (COUNT_SLOTS - 1));
	struct count_slot *s = bpf_map_lookup_elem(&count_slots, &idx);
	if (!s)
		return;
	if (s->count == 0) {
		s->tgid = tgid;
		s->nr = nr;
		s->count = 1;
		return;
	}
	if (s->tgid == tgid && s->nr == nr) {
		s->count++;
		return;
	}
	struct count_key k = {.tgid = tgid, .nr = nr};
	u64 *n = bpf_map_lookup_elem(&counts, &k);
	if (n) {
		*n += 1; /* per-CPU value */
	} else {
		u64 one = 1;
		bpf_map_update_elem(&counts, &k, &one, BPF_NOEXIST);
	}
}

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_PATTERNS);
	__type(key, u32);
	__type(value, struct pattern);
} patterns SEC(".maps");

/* The open being examined on this CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct file_event);
} file_scratch SEC(".maps");

/* Calls between entry and exit, by thread id. LRU: an entry whose exit
 * never came (a thread killed in the call, a program attached in between)
 * must not hold its slot for good. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct file_event);
} file_pending SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct priv_event);
} priv_pending SEC(".maps");

static __always_inline bool match_pattern(const u8 *path, const struct pattern *p)
{
	u32 n = p->prefix_len;
	for (u32 i = 0; i < PREFIX_SIZE; i++) {
		if (i >= n)
			break;
		if (path[i] != p->prefix[i])
			return false;
	}
	if (!p->has_star)
		return true;
	u32 j = n;
	for (u32 k = 0; k < SEGMENT_MAX; k++) {
		u8 c = path[j & (PATH_SIZE - 1)];
		if (c == '/' || c == 0)
			break;
		j++;
	}
	n = p->suffix_len;
	for (u32 i = 0; i < SUFFIX_SIZE; i++) {
		if (i >= n)
			break;
		if (path[(j + i) & (PATH_SIZE - 1)] != p->suffix[i])
			return false;
	}
	return true;
}

static long match_cb(u32 idx, void *ctx)
{
	u32 zero = 0;
	struct file_event *e = bpf_map_lookup_elem(&file_scratch, &zero);
	struct pattern *p = bpf_map_lookup_elem(&patterns, &idx);
	if (!e || !p || !p->used)
		return 1;
	if (match_pattern(e->path, p)) {
		*(u32 *)ctx = 1;
		return 1;
	}
	return 0;
}

/* file_enter examines an open, open(path, flags) or openat(dfd, path,
 * flags) or openat2(dfd, path, how), and remembers a matching one until its
 * exit. */
static __always_inline void file_enter(u64 pid_tgid, long id, u64 a0, u64 a1, u64 a2)
{
	u32 zero = 0;
	struct file_event *e = bpf_map_lookup_elem(&file_scratch, &zero);
	if (!e)
		return;
	const char *path;
	u64 flags;
	if (id == NR_open) {
		path = (const char *)a0;
		flags = a1;
	} else {
		path = (const char *)a1;
		if (id == NR_openat2) {
			/* struct open_how starts with u64 flags */
			if (bpf_probe_read_user(&flags, sizeof(flags), (void *)a2) < 0)
				flags = 0;
		} else {
			flags = a2;
		}
	}
	if (bpf_probe_read_user_str(e->path, sizeof(e->path), path) <= 0)
		return;
	u32 matched = 0;
	bpf_loop(MAX_PATTERNS, match_cb, &matched, 0);
	if (!matched)
		return;
	u64 ug = bpf_get_current_uid_gid();
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = bpf_get_current_cgroup_id();
	e->pid = pid_tgid >> 32;
	e->tid = (u32)pid_tgid;
	e->uid = (u32)ug;
	e->nr = id;
	e->flags = flags;
	e->ret = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	u32 tid = (u32)pid_tgid;
	bpf_map_update_elem(&file_pending, &tid, e, BPF_ANY);
}

/* file_exit reports the open this thread's file_enter remembered. */
static __always_inline void file_exit(long ret)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct file_event *p = bpf_map_lookup_elem(&file_pending, &tid);
	if (!p)
		return;
	struct file_event *e = bpf_ringbuf_reserve(&file_events, sizeof(*e), 0);
	if (!e) {
		vigil_count_drop(&drops, 0);
	} else {
		__builtin_memcpy(e, p, sizeof(*e));
		e->ret = ret;
		vigil_submit(&file_events, e);
	}
	bpf_map_delete_elem(&file_pending, &tid);
}

static __always_inline bool is_file(long id)
{
	return id == NR_openat || id == NR_open || id == NR_openat2;
}

static __always_inline bool is_priv(long id)
{
	switch (id) {
	case NR_ptrace:
	case NR_setuid:
	case NR_setgid:
	case NR_setreuid:
	case NR_setregid:
	case NR_setresuid:
	case NR_setresgid:
	case NR_setfsuid:
	case NR_setfsgid:
	case NR_capset:
		return true;
	}
	return false;
}

/* priv_nargs is how many of the three recorded arguments a priv call takes;
 * the others are recorded as 0, not as whatever the registers held. */
static __always_inline u32 priv_nargs(long id)
{
	switch (id) {
	case NR_setuid:
	case NR_setgid:
	case NR_setfsuid:
	case NR_setfsgid:
		return 1;
	case NR_setreuid:
	case NR_setregid:
	case NR_capset:
		return 2;
	}
	return 3;
}

static __always_inline void priv_enter(u64 pid_tgid, long id, u64 a0, u64 a1, u64 a2)
{
	struct priv_event e = {};
	struct task_struct *task = bpf_get_current_task_btf();
	u32 n = priv_nargs(id);
	e.boot_ns = bpf_ktime_get_boot_ns();
	e.cgroup_id = bpf_get_current_cgroup_id();
	e.pid = pid_tgid >> 32;
	e.tid = (u32)pid_tgid;
	e.nr = id;
	e.args[0] = a0;
	e.args[1] = n > 1 ? a1 : 0;
	e.args[2] = n > 2 ? a2 : 0;
	e.uid_before = BPF_CORE_READ(task, cred, uid.val);
	e.euid_before = BPF_CORE_READ(task, cred, euid.val);
	if (id == NR_capset) {
		/* struct __user_cap_data_struct { u32 effective, permitted,
		 * inheritable; } data[2] for _LINUX_CAPABILITY_VERSION_3 */
		u32 data[6] = {};
		bpf_probe_read_user(data, sizeof(data), (void *)e.args[1]);
		e.cap_effective[0] = data[0];
		e.cap_effective[1] = data[3];
	}
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	u32 tid = e.tid;
	bpf_map_update_elem(&priv_pending, &tid, &e, BPF_ANY);
}

/* priv_exit reports the call this thread's priv_enter remembered, with the
 * credentials it left. */
static __always_inline void priv_exit(long ret)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct priv_event *p = bpf_map_lookup_elem(&priv_pending, &tid);
	if (!p)
		return;
	struct priv_event *e = bpf_ringbuf_reserve(&priv_events, sizeof(*e), 0);
	if (!e) {
		vigil_count_drop(&drops, 1);
	} else {
		struct task_struct *task = bpf_get_current_task_btf();
		__builtin_memcpy(e, p, sizeof(*e));
		e->ret = ret;
		e->uid_after = BPF_CORE_READ(task, cred, uid.val);
		e->euid_after = BPF_CORE_READ(task, cred, euid.val);
		vigil_submit(&priv_events, e);
	}
	bpf_map_delete_elem(&priv_pending, &tid);
}

/* TS_COMPAT in thread_info.status (x86): the current syscall is a 32-bit
 * one, with other numbers and arguments. The per-syscall tracepoints skip
 * those; so do the generic programs, for the same rows either way. */
#define TS_COMPAT 0x0002

static __always_inline bool in_compat_syscall(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	return task->thread_info.status & TS_COMPAT;
}

/* Run on every syscall: only counting costs anything unless the call is
 * one file or priv wants. */
SEC("tp_btf/sys_enter")
int BPF_PROG(sys_enter, struct pt_regs *regs, long id)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 tgid = pid_tgid >> 32;
	if (vigil_is_self(tgid))
		return 0;
	if (enable_counts)
		count_syscall(tgid, id);
	if (generic_file && is_file(id)) {
		if (!in_compat_syscall())
			file_enter(pid_tgid, id, regs->di, regs->si, regs->dx);
	} else if (generic_priv && is_priv(id)) {
		if (!in_compat_syscall())
			priv_enter(pid_tgid, id, regs->di, regs->si, regs->dx);
	}
	return 0;
}

/* Attached only as the fallback. */
SEC("tp_btf/sys_exit")
int BPF_PROG(sys_exit, struct pt_regs *regs, long ret)
{
	long id = regs->orig_ax; /* direct load: regs is a trusted BTF pointer */
	if (generic_file && is_file(id))
		file_exit(ret);
	else if (generic_priv && is_priv(id))
		priv_exit(ret);
	return 0;
}

/* The per-syscall programs: file_sys_enter and file_sys_exit are attached
 * to syscalls/sys_{enter,exit}_{open,openat,openat2}, priv_sys_enter<n>
 * and priv_sys_exit to those of the priv calls of n arguments (or more).
 * The exits also serve entries made by sys_enter. */
SEC("tracepoint")
int file_sys_enter(struct syscall_enter_ctx *ctx)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	if (vigil_is_self(pid_tgid >> 32))
		return 0;
	file_enter(pid_tgid, ctx->nr, ctx->args[0], ctx->args[1], ctx->args[2]);
	return 0;
}

SEC("tracepoint")
int file_sys_exit(struct syscall_exit_ctx *ctx)
{
	file_exit(ctx->ret); /* nothing pending for the collector itself */
	return 0;
}

/* A tracepoint program may read no further into its context than the
 * event's last argument (the kernel refuses to attach it otherwise), so
 * there is one priv entry program per number of arguments read. */
SEC("tracepoint")
int priv_sys_enter1(struct syscall_enter_ctx *ctx)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	if (vigil_is_self(pid_tgid >> 32))
		return 0;
	priv_enter(pid_tgid, ctx->nr, ctx->args[0], 0, 0);
	return 0;
}

SEC("tracepoint")
int priv_sys_enter2(struct syscall_enter_ctx *ctx)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	if (vigil_is_self(pid_tgid >> 32))
		return 0;
	priv_enter(pid_tgid, ctx->nr, ctx->args[0], ctx->args[1], 0);
	return 0;
}

SEC("tracepoint")
int priv_sys_enter3(struct syscall_enter_ctx *ctx)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	if (vigil_is_self(pid_tgid >> 32))
		return 0;
	priv_enter(pid_tgid, ctx->nr, ctx->args[0], ctx->args[1], ctx->args[2]);
	return 0;
}

SEC("tracepoint")
int priv_sys_exit(struct syscall_exit_ctx *ctx)
{
	priv_exit(ctx->ret);
	return 0;
}
