-- exec_events.exec_ancestor: the nearest ancestor that had exec'd when the
-- process exec'd. A fork-only parent (a shell's subshell, a pre-forked
-- worker) often exits before anything reads its pid, which cut the new
-- process off from its lineage; the exec'd ancestor is what links it to the
-- shell, service or script that ran it. Appended last, as in the collector's
-- Arrow schema; rows written before this migration read 0 (unknown).
ALTER TABLE {{db}}.exec_events
    ADD COLUMN IF NOT EXISTS exec_ancestor UInt32 COMMENT 'nearest ancestor that had exec''d: ppid, or the process a fork-only parent (a subshell) was forked from; 0 if unknown or written before this column existed';
