-- metrics: the aggregated series the models see, one value per point.
CREATE TABLE IF NOT EXISTS {{db}}.metrics
(
    ts          DateTime64(9) COMMENT 'point time (end of the aggregation step)' CODEC(Delta(8), ZSTD(1)),
    host        LowCardinality(String) COMMENT 'host name',
    entity_kind LowCardinality(String) COMMENT 'what entity is: host, comm, cgroup, cpu, ...',
    entity      String COMMENT 'the entity, e.g. nginx, or the host name for host-wide series',
    series      LowCardinality(String) COMMENT 'series name, e.g. exec_rate, tcp_retransmits',
    value       Float64 COMMENT 'the value' CODEC(Gorilla, ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, series, entity_kind, entity, ts)
{{ttl "metrics"}}
SETTINGS {{settings}};

-- anomalies: one row per detection, immutable.
CREATE TABLE IF NOT EXISTS {{db}}.anomalies
(
    id           UUID COMMENT 'anomaly id',
    ts           DateTime64(9) COMMENT 'when the detector flagged it',
    host         LowCardinality(String) COMMENT 'host name',
    entity_kind  LowCardinality(String) COMMENT 'as in metrics',
    entity       String COMMENT 'as in metrics',
    series       LowCardinality(String) COMMENT 'series that is anomalous',
    detector     LowCardinality(String) COMMENT 'detector name and version',
    score        Float64 COMMENT 'detector score, higher is more anomalous',
    severity     LowCardinality(String) COMMENT 'info, low, medium, high or critical',
    expected     Float64 COMMENT 'value the model expected',
    observed     Float64 COMMENT 'value observed',
    window_start DateTime64(9) COMMENT 'start of the window the detector looked at',
    window_end   DateTime64(9) COMMENT 'end of that window',
    evidence     String COMMENT 'JSON object with detector-specific evidence' CODEC(ZSTD(3)),
    incident_id  Nullable(UUID) COMMENT 'incident it was grouped into, NULL if none'
)
ENGINE = MergeTree
PARTITION BY toDate(ts)
ORDER BY (host, ts)
{{ttl "anomalies"}}
SETTINGS {{settings}};

-- incidents: a row per version; the newest (largest updated) wins. Query
-- with FINAL or argMax(..., updated).
CREATE TABLE IF NOT EXISTS {{db}}.incidents
(
    id                UUID COMMENT 'incident id',
    opened            DateTime64(9) COMMENT 'first anomaly time',
    updated           DateTime64(9) COMMENT 'version: time of this row',
    resolved          Nullable(DateTime64(9)) COMMENT 'when resolved, NULL while open',
    state             LowCardinality(String) COMMENT 'open, acknowledged or resolved',
    severity          LowCardinality(String) COMMENT 'highest severity of its anomalies',
    title             String COMMENT 'one-line title',
    hosts             Array(LowCardinality(String)) COMMENT 'hosts involved',
    entities          Array(String) COMMENT 'entities involved, as entity_kind:entity',
    anomaly_ids       Array(UUID) COMMENT 'anomalies grouped into it',
    summary           String COMMENT 'LLM summary (markdown)',
    summary_model     LowCardinality(String) COMMENT 'model that wrote the summary',
    prompt_tokens     UInt32 COMMENT 'tokens sent for the summary',
    completion_tokens UInt32 COMMENT 'tokens received'
)
ENGINE = ReplacingMergeTree(updated)
PARTITION BY toYYYYMM(opened)
ORDER BY id
SETTINGS {{settings}};
