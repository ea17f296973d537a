//! The containers table and its label index.

use rusqlite::{params, Connection, Row};
use schema::events as ev;
use schema::{Container, Runtime};

use super::{is_unique_violation, namespaces, not_found, Result, StoreError, Tx};

/// The columns a container is read from, in the order both readers (here and
/// `containers_json`) index them.
pub(super) const COLUMNS: &str =
    "c.id, c.image, c.labels, c.runtime_name, c.runtime_options, c.spec, \
                       c.snapshotter, c.snapshot_key, c.extensions, c.created_at, c.updated_at";

pub(super) fn missing(ns: &str, id: &str) -> String {
    format!("container \"{id}\" not found in namespace \"{ns}\"")
}

fn from_row(r: &Row<'_>) -> Result<Container> {
    let text = |i: usize| -> Result<String> { Ok(r.get::<_, String>(i)?) };
    Ok(Container {
        id: text(0)?,
        image: text(1)?,
        labels: serde_json::from_str(&text(2)?)?,
        runtime: Runtime {
            name: text(3)?,
            options: serde_json::from_str(&text(4)?)?,
        },
        spec: serde_json::value::RawValue::from_string(text(5)?)?,
        snapshotter: text(6)?,
        snapshot_key: text(7)?,
        extensions: serde_json::from_str(&text(8)?)?,
        created_at: text(9)?,
        updated_at: text(10)?,
        status: None,
    })
}

fn write_labels(conn: &Connection, pk: i64, c: &Container) -> Result<()> {
    conn.prepare_cached("DELETE FROM container_labels WHERE container = ?1")?
        .execute([pk])?;
    let mut ins = conn.prepare_cached(
        "INSERT INTO container_labels (container, key, value) VALUES (?1, ?2, ?3)",
    )?;
    for (k, v) in &c.labels {
        ins.execute(params![pk, k, v])?;
    }
    Ok(())
}

/// Inserts a new container (creating its namespace on first use) and records
/// `/containers/create`.
pub fn insert(tx: &mut Tx<'_>, ns: &str, c: &Container) -> Result<()> {
    namespaces::ensure(tx, ns)?;
    let conn = tx.conn();
    let res = conn
        .prepare_cached(
            "INSERT INTO containers (namespace, id, image, labels, runtime_name, runtime_options, \
             spec, snapshotter, snapshot_key, extensions, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            ns,
            c.id,
            c.image,
            serde_json::to_string(&c.labels)?,
            c.runtime.name,
            serde_json::to_string(&c.runtime.options)?,
            c.spec.get(),
            c.snapshotter,
            c.snapshot_key,
            serde_json::to_string(&c.extensions)?,
            c.created_at,
            c.updated_at,
        ]);
    match res {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::AlreadyExists(format!(
                "container \"{}\" already exists in namespace \"{ns}\"",
                c.id
            )))
        }
        other => other?,
    };
    write_labels(conn, conn.last_insert_rowid(), c)?;
    tx.emit(
        ns,
        &ev::ContainerCreate {
            id: c.id.clone(),
            image: c.image.clone(),
            runtime: c.runtime.clone(),
        },
    )
}

pub fn get(conn: &Connection, ns: &str, id: &str) -> Result<Container> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM containers c WHERE c.namespace = ?1 AND c.id = ?2"
    ))?;
    let mut rows = stmt.query(params![ns, id])?;
    match rows.next()? {
        Some(row) => from_row(row),
        None => Err(StoreError::NotFound(missing(ns, id))),
    }
}

/// Reads the container, lets `change` compute its new state, stores it and records
/// `/containers/update`, all in the caller's transaction (no lost updates).
pub fn update(
    tx: &mut Tx<'_>,
    ns: &str,
    id: &str,
    change: impl FnOnce(Container) -> Result<Container>,
) -> Result<Container> {
    let conn = tx.conn();
    let current = get(conn, ns, id)?;
    let pk: i64 = not_found(
        conn.prepare_cached("SELECT pk FROM containers WHERE namespace = ?1 AND id = ?2")?
            .query_row(params![ns, id], |r| r.get(0)),
        || missing(ns, id),
    )?;
    let c = change(current)?;
    conn.prepare_cached(
        "UPDATE containers SET image = ?2, labels = ?3, spec = ?4, snapshot_key = ?5, \
         extensions = ?6, updated_at = ?7 WHERE pk = ?1",
    )?
    .execute(params![
        pk,
        c.image,
        serde_json::to_string(&c.labels)?,
        c.spec.get(),
        c.snapshot_key,
        serde_json::to_string(&c.extensions)?,
        c.updated_at,
    ])?;
    write_labels(conn, pk, &c)?;
    let (labels, labels_truncated) = schema::events::event_labels(&c.labels);
    tx.emit(
        ns,
        &ev::ContainerUpdate {
            id: c.id.clone(),
            image: c.image.clone(),
            labels,
            snapshot_key: c.snapshot_key.clone(),
            labels_truncated,
        },
    )?;
    Ok(c)
}

/// Deletes the container (labels cascade) and records `/containers/delete`. Refused while
/// the container has a task.
pub fn delete(tx: &mut Tx<'_>, ns: &str, id: &str) -> Result<Container> {
    let c = get(tx.conn(), ns, id)?;
    if super::tasks::task_exists(tx.conn(), ns, id)? {
        return Err(StoreError::FailedPrecondition(format!(
            "container \"{id}\" in namespace \"{ns}\" has a task; delete the task first"
        )));
    }
    // A deleted task still being torn down: its intent goes with the container (a crash
    // before the teardown ends leaves runc state, mounts and a bundle without a row, which
    // start-up removes all the same).
    super::tasks::remove_intent(tx, ns, id, schema::TaskStatus::Deleting)?;
    tx.conn()
        .prepare_cached("DELETE FROM containers WHERE namespace = ?1 AND id = ?2")?
        .execute(params![ns, id])?;
    tx.emit(ns, &ev::ContainerDelete { id: id.to_owned() })?;
    Ok(c)
}

/// How many containers of `ns` use snapshot `key` of snapshotter `sn` (an empty snapshotter
/// column means `default_sn`).
pub fn count_using_snapshot(
    conn: &Connection,
    ns: &str,
    sn: &str,
    key: &str,
    default_sn: &str,
) -> Result<i64> {
    Ok(conn
        .prepare_cached(
            "SELECT count(*) FROM containers WHERE namespace = ?1 AND snapshot_key = ?2 \
             AND (snapshotter = ?3 OR (snapshotter = '' AND ?3 = ?4))",
        )?
        .query_row(params![ns, key, sn, default_sn], |r| r.get(0))?)
}

/// `(namespace, snapshotter, snapshot_key)` of every container that pins a snapshot: GC roots.
pub fn snapshot_refs(conn: &Connection) -> Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT namespace, snapshotter, snapshot_key FROM containers WHERE snapshot_key <> ''",
    )?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// `(id, image)` of every container of `ns` that names an image, ordered by id.
pub fn images_of(conn: &Connection, ns: &str) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, image FROM containers WHERE namespace = ?1 AND image <> '' ORDER BY id",
    )?;
    let rows = stmt.query_map(params![ns], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM containers", [], |r| r.get(0))?)
}
