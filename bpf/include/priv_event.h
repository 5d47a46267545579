/* The priv probe's ring record and the x86-64 syscall numbers it reports.
 * One definition for bpf/sys (the probe) and bpf/benchload (the collector
 * benchmark, which writes records the collector decodes as priv rows). */
#ifndef VIGIL_PRIV_EVENT_H
#define VIGIL_PRIV_EVENT_H

#define NR_ptrace 101
#define NR_setuid 105
#define NR_setgid 106
#define NR_setreuid 113
#define NR_setregid 114
#define NR_setresuid 117
#define NR_setresgid 119
#define NR_setfsuid 122
#define NR_setfsgid 123
#define NR_capset 126

struct priv_event {
	u64 boot_ns;
	u64 cgroup_id;
	u64 args[3];
	u32 pid;
	u32 tid;
	u32 nr;
	s32 ret;         /* 0 or -errno (ptrace: the call's return value) */
	u32 uid_before;
	u32 euid_before;
	u32 uid_after;
	u32 euid_after;
	u32 cap_effective[2]; /* capset: requested effective set */
	u8 comm[TASK_COMM_LEN];
};

#endif
