-- The collector now names a process that exited before the harvest from its
-- process table (its exec or exit event) rather than leaving comm empty.
ALTER TABLE {{db}}.syscall_counts
    MODIFY COLUMN comm COMMENT 'process name: from /proc at harvest time, or from its exec or exit event if it had exited; empty only if neither was seen';
