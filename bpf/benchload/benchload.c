//go:build ignore

/* benchload: for benchmarks only. A load generator that writes records in
 * the priv probe's format into the priv probe's own ring buffer, many per
 * syscall, so that `vigil bench collector --burst N` can measure the
 * collector at rates a syscall-per-event load cannot reach on a small
 * machine.
 *
 * The program runs on syscalls/sys_enter_getppid of one process (load_tgid)
 * and, per call, reserves and submits burst records with bpf_loop. The
 * loader replaces priv_events and drops with the loaded priv probe's maps
 * (cilium/ebpf MapReplacements) and copies the priv probe's wakeup_bytes,
 * so wakeup batching and failed-reserve counting are those of real priv
 * events. Its own per-CPU counter (generated) says how many records it
 * submitted and how many it could not reserve, so that a run accounts for
 * every record: submitted + failed = received + kernel drops + user drops. */
#include "vigil.h"
#include "priv_event.h"

char __license[] SEC("license") = "Dual BSD/GPL";


#define MAX_BURST 65536

/* The process whose getppid calls trigger bursts. */
volatile const u32 load_tgid = 0;
/* Records per getppid call, at most MAX_BURST. */
volatile const u32 burst = 1;
/* The priv probe's slot in drops. */
volatile const u32 drop_slot = 1;

/* struct priv_event comes from priv_event.h, shared with bpf/sys: the
 * collector decodes these records as priv rows. TestLayout in this package
 * still compares the generated Go types of both. */
const struct priv_event *unused_priv_event __attribute__((unused));

/* Replaced by the priv probe's maps at load: sizes and types must match. */
VIGIL_RINGBUF(priv_events, 1 << 22);
VIGIL_DROPS(drops, 2);

/* Per-CPU: slot 0 records submitted, slot 1 records not reserved. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, u32);
	__type(value, u64);
} generated SEC(".maps");

/* What one burst's records share, filled once per call. */
struct burst_state {
	u64 cgroup_id;
	u64 seq; /* varies the fields from call to call */
	u64 submitted;
	u64 failed;
	u32 pid;
	u32 tid;
	u32 uid;
	u32 euid;
	u8 comm[TASK_COMM_LEN];
};

/* The priv syscalls the records cycle through, with their argument counts. */
static __always_inline void pick_call(u64 i, u32 *nr, u32 *nargs)
{
	switch (i % 10) {
	case 0: *nr = NR_setresuid; *nargs = 3; break;
	case 1: *nr = NR_setuid; *nargs = 1; break;
	case 2: *nr = NR_setgid; *nargs = 1; break;
	case 3: *nr = NR_setreuid; *nargs = 2; break;
	case 4: *nr = NR_setregid; *nargs = 2; break;
	case 5: *nr = NR_setresgid; *nargs = 3; break;
	case 6: *nr = NR_setfsuid; *nargs = 1; break;
	case 7: *nr = NR_setfsgid; *nargs = 1; break;
	case 8: *nr = NR_capset; *nargs = 2; break;
	default: *nr = NR_ptrace; *nargs = 3; break;
	}
}

static long emit_one(u32 i, void *arg)
{
	struct burst_state *s = arg;
	struct priv_event *e = bpf_ringbuf_reserve(&priv_events, sizeof(*e), 0);
	if (!e) {
		vigil_count_drop(&drops, drop_slot);
		s->failed++;
		return 0;
	}
	u64 n = s->seq + i;
	u32 nr, nargs;
	pick_call(n, &nr, &nargs);
	/* Every byte is written: reserved space is not zeroed. */
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->cgroup_id = s->cgroup_id;
	e->args[0] = 1000 + (n & 1023);
	e->args[1] = nargs > 1 ? 1000 + ((n >> 3) & 1023) : 0;
	e->args[2] = nargs > 2 ? (u32)-1 : 0;
	e->pid = s->pid;
	e->tid = s->tid + (n & 7); /* a few synthetic threads of the process */
	e->nr = nr;
	e->ret = (n & 15) == 15 ? -1 /* EPERM */ : 0;
	e->uid_before = s->uid;
	e->euid_before = s->euid;
	e->uid_after = s->uid;
	e->euid_after = s->euid;
	e->cap_effective[0] = nr == NR_capset ? 0x1ff : 0;
	e->cap_effective[1] = 0;
	__builtin_memcpy(e->comm, s->comm, sizeof(e->comm));
	vigil_submit(&priv_events, e);
	s->submitted++;
	return 0;
}

static __always_inline void count(u32 slot, u64 n)
{
	u64 *c = bpf_map_lookup_elem(&generated, &slot);
	if (c)
		*c += n; /* per-CPU slot */
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int burst_getppid(void *ctx)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	if ((u32)(pid_tgid >> 32) != load_tgid)
		return 0;
	struct burst_state s = {};
	u64 ug = bpf_get_current_uid_gid();
	s.cgroup_id = bpf_get_current_cgroup_id();
	s.seq = bpf_ktime_get_ns() >> 6;
	s.pid = pid_tgid >> 32;
	s.tid = (u32)pid_tgid;
	s.uid = (u32)ug;
	s.euid = (u32)ug;
	bpf_get_current_comm(s.comm, sizeof(s.comm));
	u32 n = burst;
	if (n > MAX_BURST)
		n = MAX_BURST;
	bpf_loop(n, emit_one, &s, 0);
	count(0, s.submitted);
	count(1, s.failed);
	return 0;
}
