-- berth metadata: tasks that outlive berthd. Rebuilds `processes` (SQLite adds CHECK
-- constraints only by a rebuild) with:
--   * `status` limited to the states service code may store, including the two intents
--     `creating` (written before `runc create`) and `deleting` (before `runc delete`) that
--     start-up reconciliation finishes or undoes after a crash;
--   * `start_time`: with `pid`, the process's identity (field 22 of /proc/<pid>/stat), so a
--     reused pid is never taken for the task;
--   * `exit_reason`: how the exit was learnt; `lost` and `host_restarted` mark statuses the
--     keeper could not report, never a silent 255.

CREATE TABLE processes_v4 (
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
        CHECK (exit_reason IN ('exited', 'signaled', 'lost', 'host_restarted')),
    bundle       TEXT NOT NULL DEFAULT '',
    runtime      TEXT NOT NULL DEFAULT '',
    spec         TEXT NOT NULL DEFAULT 'null',
    created_at   TEXT NOT NULL,
    PRIMARY KEY (namespace, container_id, exec_id),
    FOREIGN KEY (namespace, container_id) REFERENCES containers(namespace, id),
    CHECK ((exit_status IS NULL) = (exit_reason IS NULL))
) WITHOUT ROWID;

INSERT INTO processes_v4 (namespace, container_id, exec_id, pid, start_time, status, stdin,
    stdout, stderr, terminal, exit_status, exited_at, exit_reason, bundle, runtime, spec,
    created_at)
SELECT namespace, container_id, exec_id, pid, 0,
    CASE WHEN exit_status IS NOT NULL THEN 'stopped'
         WHEN status IN ('created', 'running', 'paused') THEN status
         ELSE 'running' END,
    stdin, stdout, stderr, terminal, exit_status, exited_at,
    CASE WHEN exit_status IS NULL THEN NULL
         WHEN exit_status = 255 THEN 'lost'
         ELSE 'exited' END,
    bundle, runtime, spec, created_at
FROM processes;

DROP TABLE processes;
ALTER TABLE processes_v4 RENAME TO processes;
CREATE INDEX processes_by_status ON processes (status);
