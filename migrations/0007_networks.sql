-- berth metadata: networks (issue 16). A network is a host bridge the CNI plugins manage;
-- an attachment is one task's place on it, written before CNI ADD and removed after DEL, so
-- that start-up can release the address and ports of a task that no longer runs.
CREATE TABLE networks (
    name       TEXT PRIMARY KEY,
    bridge     TEXT NOT NULL UNIQUE,
    subnet     TEXT NOT NULL UNIQUE,
    gateway    TEXT NOT NULL,
    labels     TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);

CREATE TABLE attachments (
    namespace    TEXT NOT NULL,
    container_id TEXT NOT NULL,
    network      TEXT NOT NULL REFERENCES networks(name),
    -- The pinned network namespace (a bind mount) CNI ran in.
    netns        TEXT NOT NULL,
    -- JSON array of PortMapping.
    ports        TEXT NOT NULL DEFAULT '[]',
    -- The task's address once ADD answered ('' before).
    ip           TEXT NOT NULL DEFAULT '',
    -- ADD's result, handed to DEL as prevResult.
    result       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (namespace, container_id)
);
CREATE INDEX attachments_by_network ON attachments (network);
