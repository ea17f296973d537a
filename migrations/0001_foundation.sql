-- berth metadata, version 1: namespaces, containers (+ labels), events.
-- Applied once at start-up inside a transaction; PRAGMA user_version records it.

CREATE TABLE namespaces (
    name       TEXT PRIMARY KEY NOT NULL,
    labels     TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE containers (
    pk              INTEGER PRIMARY KEY,
    namespace       TEXT NOT NULL REFERENCES namespaces(name),
    id              TEXT NOT NULL,
    image           TEXT NOT NULL DEFAULT '',
    -- The labels as one JSON object, read with the row; container_labels indexes them.
    labels          TEXT NOT NULL DEFAULT '{}',
    runtime_name    TEXT NOT NULL,
    runtime_options TEXT NOT NULL DEFAULT 'null',
    spec            TEXT NOT NULL DEFAULT 'null',
    snapshotter     TEXT NOT NULL DEFAULT '',
    snapshot_key    TEXT NOT NULL DEFAULT '',
    extensions      TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (namespace, id)
);

-- Labels live in their own table so that label filters are answered from an index.
CREATE TABLE container_labels (
    container INTEGER NOT NULL REFERENCES containers(pk) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT NOT NULL,
    PRIMARY KEY (container, key)
) WITHOUT ROWID;
CREATE INDEX container_labels_by_kv ON container_labels (key, value);

-- seq is the rowid: new rows take max+1, and pruning only ever removes the oldest rows,
-- so a seq is never reused (AUTOINCREMENT would cost a page write per commit for nothing).
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    timestamp TEXT NOT NULL,
    namespace TEXT NOT NULL,
    topic     TEXT NOT NULL,
    event     TEXT NOT NULL
);
