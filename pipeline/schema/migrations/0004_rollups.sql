-- Per-minute rollups, filled by materialized views at insert time. Counts
-- of one minute may be spread over several rows until merges sum them:
-- always query with sum(...) GROUP BY.

CREATE TABLE IF NOT EXISTS {{db}}.exec_events_1m
(
    ts    DateTime COMMENT 'minute',
    host  LowCardinality(String) COMMENT 'host name',
    comm  LowCardinality(String) COMMENT 'command name',
    execs UInt64 COMMENT 'exec count in the minute'
)
ENGINE = SummingMergeTree
PARTITION BY toDate(ts)
ORDER BY (host, comm, ts)
{{ttl "exec_events_1m"}}
SETTINGS {{settings}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.exec_events_1m_mv TO {{db}}.exec_events_1m AS
SELECT toStartOfMinute(ts) AS ts, host, comm, count() AS execs
FROM {{db}}.exec_events
GROUP BY ts, host, comm;

CREATE TABLE IF NOT EXISTS {{db}}.tcp_events_1m
(
    ts         DateTime COMMENT 'minute',
    host       LowCardinality(String) COMMENT 'host name',
    comm       LowCardinality(String) COMMENT 'command name',
    connects   UInt64 COMMENT 'outgoing connects',
    accepts    UInt64 COMMENT 'accepted connections',
    closes     UInt64 COMMENT 'closed connections',
    bytes_sent UInt64 COMMENT 'bytes sent by connections closed in the minute',
    bytes_received UInt64 COMMENT 'bytes received by them'
)
ENGINE = SummingMergeTree
PARTITION BY toDate(ts)
ORDER BY (host, comm, ts)
{{ttl "tcp_events_1m"}}
SETTINGS {{settings}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.tcp_events_1m_mv TO {{db}}.tcp_events_1m AS
SELECT toStartOfMinute(ts) AS ts, host, comm,
       countIf(event IN ('connect', 'connect_failed')) AS connects,
       countIf(event = 'accept') AS accepts,
       countIf(event = 'close') AS closes,
       sum(bytes_sent) AS bytes_sent,
       sum(bytes_received) AS bytes_received
FROM {{db}}.tcp_events
GROUP BY ts, host, comm;

CREATE TABLE IF NOT EXISTS {{db}}.retransmit_events_1m
(
    ts          DateTime COMMENT 'minute',
    host        LowCardinality(String) COMMENT 'host name',
    daddr       String COMMENT 'destination address',
    retransmits UInt64 COMMENT 'retransmissions in the minute'
)
ENGINE = SummingMergeTree
PARTITION BY toDate(ts)
ORDER BY (host, daddr, ts)
{{ttl "retransmit_events_1m"}}
SETTINGS {{settings}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.retransmit_events_1m_mv TO {{db}}.retransmit_events_1m AS
SELECT toStartOfMinute(ts) AS ts, host, daddr, count() AS retransmits
FROM {{db}}.retransmit_events
GROUP BY ts, host, daddr;

CREATE TABLE IF NOT EXISTS {{db}}.file_events_1m
(
    ts       DateTime COMMENT 'minute',
    host     LowCardinality(String) COMMENT 'host name',
    comm     LowCardinality(String) COMMENT 'command name',
    syscall  LowCardinality(String) COMMENT 'open, openat or openat2',
    calls    UInt64 COMMENT 'calls in the minute',
    failures UInt64 COMMENT 'calls with errno != 0'
)
ENGINE = SummingMergeTree
PARTITION BY toDate(ts)
ORDER BY (host, comm, syscall, ts)
{{ttl "file_events_1m"}}
SETTINGS {{settings}};

CREATE MATERIALIZED VIEW IF NOT EXISTS {{db}}.file_events_1m_mv TO {{db}}.file_events_1m AS
SELECT toStartOfMinute(ts) AS ts, host, comm, syscall, count() AS calls, countIf(errno != 0) AS failures
FROM {{db}}.file_events
GROUP BY ts, host, comm, syscall;
