-- How a container ended, after its task is gone: `docker ps -a` shows "Exited (3) 10
-- seconds ago" for a container whose process is long deleted. A task's row goes with
-- `tasks.delete`; its init's exit moves here in the same transaction, one row per container
-- (the last task's), removed with the container.
--   * processes.started_at: when the init (or an exec process) was started (RFC 3339).

ALTER TABLE processes ADD COLUMN started_at TEXT;

CREATE TABLE last_exits (
    container    INTEGER PRIMARY KEY REFERENCES containers(pk) ON DELETE CASCADE,
    exit_status  INTEGER NOT NULL,
    exit_reason  TEXT NOT NULL
        CHECK (exit_reason IN ('exited', 'signaled', 'lost', 'host_restarted')),
    started_at   TEXT,
    exited_at    TEXT NOT NULL
);
