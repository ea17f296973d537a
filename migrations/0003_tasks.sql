-- berth metadata: tasks. One row per process: the task's init (exec_id '') and its exec
-- processes. The exit status is written here before anyone is told of an exit, so it
-- survives a daemon restart.

CREATE TABLE processes (
    namespace    TEXT NOT NULL,
    container_id TEXT NOT NULL,
    exec_id      TEXT NOT NULL DEFAULT '',
    pid          INTEGER NOT NULL DEFAULT 0,
    -- created running stopped paused pausing unknown
    status       TEXT NOT NULL,
    stdin        TEXT NOT NULL DEFAULT '',
    stdout       TEXT NOT NULL DEFAULT '',
    stderr       TEXT NOT NULL DEFAULT '',
    terminal     INTEGER NOT NULL DEFAULT 0,
    exit_status  INTEGER,
    exited_at    TEXT,
    -- The task's bundle directory (init rows) and runtime binary name.
    bundle       TEXT NOT NULL DEFAULT '',
    runtime      TEXT NOT NULL DEFAULT '',
    -- The OCI process object of an exec process (JSON), 'null' for the init.
    spec         TEXT NOT NULL DEFAULT 'null',
    created_at   TEXT NOT NULL,
    PRIMARY KEY (namespace, container_id, exec_id),
    FOREIGN KEY (namespace, container_id) REFERENCES containers(namespace, id)
) WITHOUT ROWID;

CREATE INDEX processes_by_status ON processes (status);
