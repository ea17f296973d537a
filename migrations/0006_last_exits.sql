-- How a container ended, after its task is gone: `docker ps -a` shows "Exited (3) 10
-- seconds ago" for a container whose process is long deleted. Rebuilds `processes` (SQLite
-- changes a CHECK only by a rebuild, as 0004 did) with:
--   * exit_reason `oom`: the kernel's OOM killer ended it (its cgroup counted an oom_kill);
--   * started_at: when the init (or an exec process) was started (RFC 3339);
--   * auto_remove: `run --rm -d`: once the init's exit is stored, berthd deletes the task
--     and its container (and the snapshot), also when it learns of the exit at start-up.
-- A task's row goes with `tasks.delete`; its init's exit moves to `last_exits` in the same
-- transaction, one row per container (the last task's), removed with the container.

CREATE TABLE processes_v6 (
    namespace    TEXT NOT NULL,
    container_id TEXT NOT NULL,
    exec_id      TEXT NOT NULL DEFAULT '',
    pid          INTEGER NOT NULL DEFAULT 0,
    start_time   INTEGER NOT NULL DEFAULT 0,
    status       TEXT NOT NULL
        CHECK (status IN ('creating', 'created', 'running', 'paused', 'stopped', 'deleting')),
    stdin        TEXT NOT NULL DEFAULT '',
    stdout       TEXT NOT NULL DEFAULT '',
    stderr       TEXT NOT NULL DEFAULT '',
    terminal     INTEGER NOT NULL DEFAULT 0,
    exit_status  INTEGER,
    exited_at    TEXT,
    exit_reason  TEXT
        CHECK (exit_reason IN ('exited', 'signaled', 'oom', 'lost', 'host_restarted')),
    bundle       TEXT NOT NULL DEFAULT '',
    runtime      TEXT NOT NULL DEFAULT '',
    spec         TEXT NOT NULL DEFAULT 'null',
    created_at   TEXT NOT NULL,
    auto_remove  INTEGER NOT NULL DEFAULT 0,
    started_at   TEXT,
    PRIMARY KEY (namespace, container_id, exec_id),
    FOREIGN KEY (namespace, container_id) REFERENCES containers(namespace, id),
    CHECK ((exit_status IS NULL) = (exit_reason IS NULL))
) WITHOUT ROWID;

INSERT INTO processes_v6 (namespace, container_id, exec_id, pid, start_time, status, stdin,
    stdout, stderr, terminal, exit_status, exited_at, exit_reason, bundle, runtime, spec,
    created_at, started_at)
SELECT namespace, container_id, exec_id, pid, start_time, status, stdin, stdout, stderr,
    terminal, exit_status, exited_at, exit_reason, bundle, runtime, spec, created_at,
    -- The best known start of what already ran: its creation.
    CASE WHEN status IN ('running', 'paused', 'stopped', 'deleting') THEN created_at END
FROM processes;

DROP TABLE processes;
ALTER TABLE processes_v6 RENAME TO processes;
CREATE INDEX processes_by_status ON processes (status);

CREATE TABLE last_exits (
    container    INTEGER PRIMARY KEY REFERENCES containers(pk) ON DELETE CASCADE,
    exit_status  INTEGER NOT NULL,
    exit_reason  TEXT NOT NULL
        CHECK (exit_reason IN ('exited', 'signaled', 'oom', 'lost', 'host_restarted')),
    started_at   TEXT,
    exited_at    TEXT NOT NULL,
    -- The ended task was `auto_remove`: the container goes too. Start-up removes those a
    -- crash left (their task deleted, the container not yet).
    auto_remove  INTEGER NOT NULL DEFAULT 0
);
