-- exit_events: one row per process exit.
CREATE TABLE IF NOT EXISTS {{db}}.exit_events
(
    ts           DateTime64(9) COMMENT 'when the last thread exited' CODEC(Delta(8), ZSTD(1)),
    host         LowCardinality(String) COMMENT 'host name the collector runs on',
    pid          UInt32 COMMENT 'process id (tgid)',
    ppid         UInt32 COMMENT 'real parent tgid at exit',
    uid          UInt32 COMMENT 'real user id',
    comm         LowCardinality(String) COMMENT 'task command name',
    exit_code    UInt32 COMMENT 'exit status 0-255 (0 when killed by a signal)',
    signal       UInt32 COMMENT 'terminating signal number, 0 for a normal exit',
    core_dumped  UInt32 COMMENT '1 if a core was dumped',
    lifetime_ns  UInt64 COMMENT 'process lifetime in ns',
    forks        UInt32 COMMENT 'child processes it created (fork rate = forks / lifetime)',
    threads      UInt32 COMMENT 'threads it created',
    cgroup_id    UInt64 COMMENT 'cgroup v2 id',
    container_id LowCardinality(String) COMMENT 'container id parsed from the cgroup path, empty if none',
    pod_uid      LowCardinality(String) COMMENT 'Kubernetes pod UID parsed from the cgroup path, empty if none'
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, comm, ts)
{{ttl "exit_events"}}
SETTINGS {{settings}};

-- tcp_events: TCP lifecycle from sock:inet_sock_set_state.
CREATE TABLE IF NOT EXISTS {{db}}.tcp_events
(
    ts           DateTime64(9) COMMENT 'time of the event' CODEC(Delta(8), ZSTD(1)),
    host         LowCardinality(String) COMMENT 'host name the collector runs on',
    event        LowCardinality(String) COMMENT 'connect, connect_failed, accept or close',
    pid          UInt32 COMMENT 'owner: the connecting process, or for inbound connections the listener; 0 if it predates the collector',
    comm         LowCardinality(String) COMMENT 'owner comm at connect/listen time',
    family       LowCardinality(String) COMMENT 'ipv4 or ipv6',
    saddr        String COMMENT 'local address (IPv4-mapped IPv6 shown as IPv4)',
    sport        UInt32 COMMENT 'local port',
    daddr        String COMMENT 'remote address',
    dport        UInt32 COMMENT 'remote port',
    latency_ns   UInt64 COMMENT 'connect, connect_failed: SYN sent to established/failed',
    duration_ns  UInt64 COMMENT 'close: established to closed (0 if unknown)',
    bytes_sent   UInt64 COMMENT 'close: payload bytes sent',
    bytes_received UInt64 COMMENT 'close: payload bytes received',
    retransmits  UInt32 COMMENT 'close: segments retransmitted over the lifetime',
    cgroup_id    UInt64 COMMENT 'owner cgroup v2 id',
    container_id LowCardinality(String) COMMENT 'container id parsed from the cgroup path, empty if none',
    pod_uid      LowCardinality(String) COMMENT 'Kubernetes pod UID parsed from the cgroup path, empty if none'
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, comm, ts)
{{ttl "tcp_events"}}
SETTINGS {{settings}};

-- retransmit_events: one row per tcp:tcp_retransmit_skb.
CREATE TABLE IF NOT EXISTS {{db}}.retransmit_events
(
    ts           DateTime64(9) COMMENT 'time of the retransmission' CODEC(Delta(8), ZSTD(1)),
    host         LowCardinality(String) COMMENT 'host name the collector runs on',
    pid          UInt32 COMMENT 'flow owner (as in tcp_events), 0 if unknown: attributed by socket, not by the softirq task',
    comm         LowCardinality(String) COMMENT 'flow owner comm',
    family       LowCardinality(String) COMMENT 'ipv4 or ipv6',
    saddr        String COMMENT 'local address',
    sport        UInt32 COMMENT 'local port',
    daddr        String COMMENT 'remote address',
    dport        UInt32 COMMENT 'remote port',
    state        LowCardinality(String) COMMENT 'TCP state, e.g. ESTABLISHED',
    total_retrans UInt32 COMMENT 'retransmits of the socket so far',
    cgroup_id    UInt64 COMMENT 'owner cgroup v2 id',
    container_id LowCardinality(String) COMMENT 'container id parsed from the cgroup path, empty if none',
    pod_uid      LowCardinality(String) COMMENT 'Kubernetes pod UID parsed from the cgroup path, empty if none'
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, ts)
{{ttl "retransmit_events"}}
SETTINGS {{settings}};

-- file_events: opens of sensitive path prefixes, filtered in the kernel.
CREATE TABLE IF NOT EXISTS {{db}}.file_events
(
    ts           DateTime64(9) COMMENT 'at entry to the open call' CODEC(Delta(8), ZSTD(1)),
    host         LowCardinality(String) COMMENT 'host name the collector runs on',
    pid          UInt32 COMMENT 'process id',
    tid          UInt32 COMMENT 'thread id',
    uid          UInt32 COMMENT 'user id',
    comm         LowCardinality(String) COMMENT 'task command name',
    syscall      LowCardinality(String) COMMENT 'open, openat or openat2',
    path         String COMMENT 'path as passed by the caller (not resolved), at most 255 bytes',
    flags        UInt32 COMMENT 'open flags (O_RDONLY=0, O_WRONLY=1, O_RDWR=2, ...)',
    errno        UInt32 COMMENT '0 on success, else the error number (13 = EACCES)',
    cgroup_id    UInt64 COMMENT 'cgroup v2 id',
    container_id LowCardinality(String) COMMENT 'container id parsed from the cgroup path, empty if none',
    pod_uid      LowCardinality(String) COMMENT 'Kubernetes pod UID parsed from the cgroup path, empty if none'
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, comm, ts)
{{ttl "file_events"}}
SETTINGS {{settings}};

-- priv_events: privilege changes and ptrace, with their results.
CREATE TABLE IF NOT EXISTS {{db}}.priv_events
(
    ts           DateTime64(9) COMMENT 'at entry to the call' CODEC(Delta(8), ZSTD(1)),
    host         LowCardinality(String) COMMENT 'host name the collector runs on',
    pid          UInt32 COMMENT 'process id',
    tid          UInt32 COMMENT 'thread id',
    comm         LowCardinality(String) COMMENT 'task command name',
    syscall      LowCardinality(String) COMMENT 'setuid, setgid, setreuid, setregid, setresuid, setresgid, setfsuid, setfsgid, capset or ptrace',
    arg0         UInt64 COMMENT 'raw argument 0: set*id: the id (4294967295 = -1, unchanged); ptrace: request',
    arg1         UInt64 COMMENT 'raw argument 1: ptrace: target pid',
    arg2         UInt64 COMMENT 'raw argument 2: ptrace: address',
    uid_before   UInt32 COMMENT 'real uid before the call',
    euid_before  UInt32 COMMENT 'effective uid before the call',
    uid_after    UInt32 COMMENT 'real uid after the call',
    euid_after   UInt32 COMMENT 'effective uid after the call',
    cap_effective UInt64 COMMENT 'capset: requested effective capability set',
    errno        UInt32 COMMENT '0 on success, else the error number',
    cgroup_id    UInt64 COMMENT 'cgroup v2 id',
    container_id LowCardinality(String) COMMENT 'container id parsed from the cgroup path, empty if none',
    pod_uid      LowCardinality(String) COMMENT 'Kubernetes pod UID parsed from the cgroup path, empty if none'
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, ts)
{{ttl "priv_events"}}
SETTINGS {{settings}};

-- signal_events: fatal signals from signal:signal_generate.
CREATE TABLE IF NOT EXISTS {{db}}.signal_events
(
    ts           DateTime64(9) COMMENT 'when the signal was generated' CODEC(Delta(8), ZSTD(1)),
    host         LowCardinality(String) COMMENT 'host name the collector runs on',
    signal       LowCardinality(String) COMMENT 'signal name, e.g. SIGKILL',
    pid          UInt32 COMMENT 'target process id',
    comm         LowCardinality(String) COMMENT 'target command name',
    sender_pid   UInt32 COMMENT 'task that generated it (the target itself for faults)',
    sender_comm  LowCardinality(String) COMMENT 'sender command name',
    code         LowCardinality(String) COMMENT 'si_code: SI_USER, SI_KERNEL, SI_TKILL, SI_QUEUE, or the number',
    result       LowCardinality(String) COMMENT 'delivered, ignored, already_pending, overflow_fail or lose_info',
    cgroup_id    UInt64 COMMENT 'target cgroup v2 id',
    container_id LowCardinality(String) COMMENT 'container id parsed from the cgroup path, empty if none',
    pod_uid      LowCardinality(String) COMMENT 'Kubernetes pod UID parsed from the cgroup path, empty if none'
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, ts)
{{ttl "signal_events"}}
SETTINGS {{settings}};

-- oom_events: OOM kills from oom:mark_victim.
CREATE TABLE IF NOT EXISTS {{db}}.oom_events
(
    ts           DateTime64(9) COMMENT 'when the victim was chosen' CODEC(Delta(8), ZSTD(1)),
    host         LowCardinality(String) COMMENT 'host name the collector runs on',
    pid          UInt32 COMMENT 'victim process id',
    comm         LowCardinality(String) COMMENT 'victim command name',
    uid          UInt32 COMMENT 'victim user id',
    total_vm     UInt64 COMMENT 'victim virtual memory, bytes',
    anon_rss     UInt64 COMMENT 'anonymous RSS, bytes (approximate)',
    file_rss     UInt64 COMMENT 'file RSS, bytes (approximate)',
    shmem_rss    UInt64 COMMENT 'shared memory RSS, bytes (approximate)',
    oom_score_adj LowCardinality(String) COMMENT '-1000..1000, as text',
    trigger_pid  UInt32 COMMENT 'task whose allocation invoked the OOM killer',
    trigger_comm LowCardinality(String) COMMENT 'its command name',
    cgroup_id    UInt64 COMMENT 'victim cgroup v2 id',
    container_id LowCardinality(String) COMMENT 'container id parsed from the cgroup path, empty if none',
    pod_uid      LowCardinality(String) COMMENT 'Kubernetes pod UID parsed from the cgroup path, empty if none'
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, ts)
{{ttl "oom_events"}}
SETTINGS {{settings}};

-- syscall_counts: per-process syscall counts, aggregated in the kernel and harvested each interval.
CREATE TABLE IF NOT EXISTS {{db}}.syscall_counts
(
    ts           DateTime64(9) COMMENT 'end of the interval (harvest time)' CODEC(Delta(8), ZSTD(1)),
    host         LowCardinality(String) COMMENT 'host name the collector runs on',
    pid          UInt32 COMMENT 'process id',
    comm         LowCardinality(String) COMMENT 'from /proc at harvest time; empty if it exited',
    syscall      LowCardinality(String) COMMENT 'syscall name (x86-64), or the number if unknown',
    count        UInt64 COMMENT 'calls in the interval',
    interval_ns  UInt64 COMMENT 'length of the interval'
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, comm, syscall, ts)
{{ttl "syscall_counts"}}
SETTINGS {{settings}};

-- runq_latency: run-queue latency per cgroup as an in-kernel log2 histogram.
CREATE TABLE IF NOT EXISTS {{db}}.runq_latency
(
    ts           DateTime64(9) COMMENT 'end of the interval (harvest time)' CODEC(Delta(8), ZSTD(1)),
    host         LowCardinality(String) COMMENT 'host name the collector runs on',
    cgroup_id    UInt64 COMMENT 'cgroup v2 id of the tasks that waited',
    slot         UInt32 COMMENT 'log2 bucket: waits of [2^slot, 2^(slot+1)) microseconds (slot 0: under 2)',
    le_us        UInt64 COMMENT 'bucket upper bound, 2^(slot+1) microseconds',
    count        UInt64 COMMENT 'waits in the bucket during the interval',
    interval_ns  UInt64 COMMENT 'length of the interval',
    container_id LowCardinality(String) COMMENT 'container id parsed from the cgroup path, empty if none',
    pod_uid      LowCardinality(String) COMMENT 'Kubernetes pod UID parsed from the cgroup path, empty if none'
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, cgroup_id, ts)
{{ttl "runq_latency"}}
SETTINGS {{settings}};
