-- The comments of metrics named series and entity kinds the models never
-- wrote (exec_rate, cpu); DESCRIBE now shows the real ones.
ALTER TABLE {{db}}.metrics
    MODIFY COLUMN entity_kind COMMENT 'host, container or comm (a process name)',
    MODIFY COLUMN series COMMENT 'series name, e.g. execs, new_binaries, connect_failures, bytes_out, syscalls_file; all are listed in docs/models.md';
