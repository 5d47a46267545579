-- exec_events: one row per successful execve. Columns are exactly the collector's Arrow schema for kind exec (a test checks every kind).
CREATE TABLE IF NOT EXISTS {{db}}.exec_events
(
    ts           DateTime64(9) COMMENT 'time of the exec (ns, UTC)' CODEC(Delta(8), ZSTD(1)),
    host         LowCardinality(String) COMMENT 'host name the collector runs on',
    pid          UInt32 COMMENT 'process id (tgid) after exec',
    ppid         UInt32 COMMENT 'real parent process id',
    uid          UInt32 COMMENT 'real user id',
    gid          UInt32 COMMENT 'real group id',
    comm         LowCardinality(String) COMMENT 'task command name (15 bytes max) after exec',
    filename     String COMMENT 'path of the executed file as passed to execve',
    argv         Array(String) COMMENT 'arguments, argv[0] first; at most 1024 bytes in all (longer argv is cut)',
    cgroup_id    UInt64 COMMENT 'cgroup v2 id of the process',
    container_id LowCardinality(String) COMMENT 'container id parsed from the cgroup path, empty if none',
    pod_uid      LowCardinality(String) COMMENT 'Kubernetes pod UID parsed from the cgroup path, empty if none'
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, comm, ts)
{{ttl "exec_events"}}
SETTINGS {{settings}};
