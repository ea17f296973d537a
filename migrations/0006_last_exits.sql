-- How a container ended, after its task is gone: `docker ps -a` shows "Exited (3) 10
-- seconds ago" for a container whose process is long deleted. A task's row goes with
-- `tasks.delete`; its init's exit moves here in the same transaction, one row per container
-- (the last task's), removed with the container.
--   * processes.started_at: when the init (or an exec process) was started (RFC 3339).
--   * processes.auto_remove: `run --rm -d`: once the init's exit is stored, berthd deletes
--     the task and its container (and the snapshot), also when it learns of the exit only
--     at start-up.

ALTER TABLE processes ADD COLUMN started_at TEXT;
ALTER TABLE processes ADD COLUMN auto_remove INTEGER NOT NULL DEFAULT 0;

CREATE TABLE last_exits (
    container    INTEGER PRIMARY KEY REFERENCES containers(pk) ON DELETE CASCADE,
    exit_status  INTEGER NOT NULL,
    exit_reason  TEXT NOT NULL
        CHECK (exit_reason IN ('exited', 'signaled', 'lost', 'host_restarted')),
    started_at   TEXT,
    exited_at    TEXT NOT NULL
);
