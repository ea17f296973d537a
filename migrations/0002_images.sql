-- berth metadata, version 2: content blobs, images (+ labels), snapshots (+ labels), leases
-- (+ the resources they hold). Applied once at start-up inside a transaction.

-- Blob metadata; the bytes live in <root>/content/blobs/sha256/<hex>. Blobs are shared by
-- every namespace (a digest names the same bytes everywhere).
CREATE TABLE content (
    digest     TEXT PRIMARY KEY NOT NULL,
    size       INTEGER NOT NULL,
    labels     TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE images (
    pk                INTEGER PRIMARY KEY,
    namespace         TEXT NOT NULL REFERENCES namespaces(name),
    name              TEXT NOT NULL,
    target_media_type TEXT NOT NULL,
    target_digest     TEXT NOT NULL,
    target_size       INTEGER NOT NULL,
    labels            TEXT NOT NULL DEFAULT '{}',
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (namespace, name)
);
CREATE INDEX images_by_target ON images (target_digest);

CREATE TABLE image_labels (
    image INTEGER NOT NULL REFERENCES images(pk) ON DELETE CASCADE,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (image, key)
) WITHOUT ROWID;
CREATE INDEX image_labels_by_kv ON image_labels (key, value);

-- One row per snapshot; `id` names its directory <root>/snapshots/<snapshotter>/<id>.
-- A committed snapshot keeps the id of the active snapshot it was committed from.
CREATE TABLE snapshots (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    namespace   TEXT NOT NULL REFERENCES namespaces(name),
    snapshotter TEXT NOT NULL,
    key         TEXT NOT NULL,
    parent      INTEGER REFERENCES snapshots(id),
    kind        TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
    labels      TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (namespace, snapshotter, key)
);
CREATE INDEX snapshots_by_parent ON snapshots (parent);

CREATE TABLE snapshot_labels (
    snapshot INTEGER NOT NULL REFERENCES snapshots(id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    PRIMARY KEY (snapshot, key)
) WITHOUT ROWID;
CREATE INDEX snapshot_labels_by_kv ON snapshot_labels (key, value);

CREATE TABLE leases (
    namespace  TEXT NOT NULL REFERENCES namespaces(name),
    id         TEXT NOT NULL,
    labels     TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    -- '' when the lease never expires.
    expires_at TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (namespace, id)
) WITHOUT ROWID;

-- What a lease keeps from garbage collection: `kind` is 'content' (resource = digest) or
-- 'snapshots/<snapshotter>' (resource = snapshot key), as containerd names them.
CREATE TABLE lease_resources (
    namespace TEXT NOT NULL,
    lease     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    resource  TEXT NOT NULL,
    PRIMARY KEY (namespace, lease, kind, resource),
    FOREIGN KEY (namespace, lease) REFERENCES leases(namespace, id) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX lease_resources_by_resource ON lease_resources (kind, resource);
