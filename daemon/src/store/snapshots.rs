//! The snapshots table: each snapshot's key, parent, kind and labels. The directories live
//! with the snapshotters; a row's `id` names its directory.

use rusqlite::types::Value as SqlValue;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSqlOutput, ValueRef};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row, ToSql};
use schema::events as ev;
use schema::{Labels, SnapshotInfo};

use super::{is_unique_violation, namespaces, Result, StoreError, Tx};
use crate::snapshot::Kind;

impl ToSql for Kind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Kind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let name = value.as_str()?;
        Kind::parse(name)
            .ok_or_else(|| FromSqlError::Other(format!("\"{name}\" is not a snapshot kind").into()))
    }
}

/// A snapshot as the services need it: its directory id and its parent's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub id: i64,
    pub namespace: String,
    pub snapshotter: String,
    pub key: String,
    pub parent: Option<i64>,
    pub kind: Kind,
    pub labels: Labels,
}

pub fn missing(ns: &str, sn: &str, key: &str) -> String {
    format!("snapshot \"{key}\" not found in namespace \"{ns}\" (snapshotter {sn})")
}

fn row(r: &Row<'_>) -> Result<SnapshotRow> {
    Ok(SnapshotRow {
        id: r.get(0)?,
        namespace: r.get(1)?,
        snapshotter: r.get(2)?,
        key: r.get(3)?,
        parent: r.get(4)?,
        kind: r.get(5)?,
        labels: serde_json::from_str(&r.get::<_, String>(6)?)?,
    })
}

const ROW: &str = "s.id, s.namespace, s.snapshotter, s.key, s.parent, s.kind, s.labels";

pub fn find(conn: &Connection, ns: &str, sn: &str, key: &str) -> Result<Option<SnapshotRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {ROW} FROM snapshots s WHERE s.namespace = ?1 AND s.snapshotter = ?2 AND s.key = ?3"
    ))?;
    let mut rows = stmt.query(params![ns, sn, key])?;
    rows.next()?.map(row).transpose()
}

pub fn get(conn: &Connection, ns: &str, sn: &str, key: &str) -> Result<SnapshotRow> {
    find(conn, ns, sn, key)?.ok_or_else(|| StoreError::NotFound(missing(ns, sn, key)))
}

/// The ids of `id`'s ancestors, nearest first.
pub fn ancestors(conn: &Connection, id: i64) -> Result<Vec<i64>> {
    let mut out = Vec::new();
    let mut stmt = conn.prepare_cached("SELECT parent FROM snapshots WHERE id = ?1")?;
    let mut at = id;
    while let Some(Some(parent)) = stmt
        .query_row([at], |r| r.get::<_, Option<i64>>(0))
        .optional()?
    {
        out.push(parent);
        at = parent;
    }
    Ok(out)
}

/// Inserts a new active or view snapshot and records `/snapshot/prepare`; returns its id.
/// `id` is chosen by the caller's directory allocation.
#[allow(clippy::too_many_arguments)]
pub fn insert(
    tx: &mut Tx<'_>,
    ns: &str,
    sn: &str,
    key: &str,
    parent: Option<(&str, i64)>,
    kind: Kind,
    labels: &Labels,
    now: &str,
) -> Result<i64> {
    namespaces::ensure(tx, ns)?;
    let conn = tx.conn();
    let res = conn
        .prepare_cached(
            "INSERT INTO snapshots (namespace, snapshotter, key, parent, kind, labels, \
             created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
        )?
        .execute(params![
            ns,
            sn,
            key,
            parent.map(|p| p.1),
            kind,
            serde_json::to_string(labels)?,
            now
        ]);
    match res {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::AlreadyExists(format!(
                "snapshot \"{key}\" already exists in namespace \"{ns}\" (snapshotter {sn})"
            )))
        }
        other => other?,
    };
    let id = conn.last_insert_rowid();
    write_labels(conn, id, labels)?;
    tx.emit(
        ns,
        &ev::SnapshotPrepare {
            key: key.to_owned(),
            parent: parent.map_or("", |p| p.0).to_owned(),
            snapshotter: sn.to_owned(),
        },
    )?;
    Ok(id)
}

fn write_labels(conn: &Connection, id: i64, labels: &Labels) -> Result<()> {
    conn.prepare_cached("DELETE FROM snapshot_labels WHERE snapshot = ?1")?
        .execute([id])?;
    let mut ins = conn
        .prepare_cached("INSERT INTO snapshot_labels (snapshot, key, value) VALUES (?1, ?2, ?3)")?;
    for (k, v) in labels {
        ins.execute(params![id, k, v])?;
    }
    Ok(())
}

/// Turns active snapshot `key` into committed snapshot `name` (same directory) and records
/// `/snapshot/commit`. Labels given replace the active snapshot's when non-empty.
pub fn commit(
    tx: &mut Tx<'_>,
    ns: &str,
    sn: &str,
    name: &str,
    key: &str,
    labels: &Labels,
    now: &str,
) -> Result<i64> {
    let conn = tx.conn();
    let active = get(conn, ns, sn, key)?;
    if !active.kind.can_become(Kind::Committed) {
        return Err(StoreError::FailedPrecondition(format!(
            "snapshot \"{key}\" in namespace \"{ns}\" is {}, only an active snapshot can be \
             committed",
            active.kind
        )));
    }
    if find(conn, ns, sn, name)?.is_some() {
        return Err(StoreError::AlreadyExists(format!(
            "snapshot \"{name}\" already exists in namespace \"{ns}\" (snapshotter {sn})"
        )));
    }
    let labels = if labels.is_empty() {
        &active.labels
    } else {
        labels
    };
    conn.prepare_cached(
        "UPDATE snapshots SET key = ?2, kind = ?5, labels = ?3, updated_at = ?4 WHERE id = ?1",
    )?
    .execute(params![
        active.id,
        name,
        serde_json::to_string(labels)?,
        now,
        Kind::Committed
    ])?;
    write_labels(conn, active.id, labels)?;
    tx.emit(
        ns,
        &ev::SnapshotCommit {
            key: key.to_owned(),
            name: name.to_owned(),
            snapshotter: sn.to_owned(),
        },
    )?;
    Ok(active.id)
}

/// Number of snapshots whose parent is `id`.
pub fn children(conn: &Connection, id: i64) -> Result<i64> {
    Ok(conn
        .prepare_cached("SELECT count(*) FROM snapshots WHERE parent = ?1")?
        .query_row([id], |r| r.get(0))?)
}

/// Deletes a snapshot without children and records `/snapshot/remove`; returns its id.
pub fn remove(tx: &mut Tx<'_>, ns: &str, sn: &str, key: &str) -> Result<i64> {
    let conn = tx.conn();
    let s = get(conn, ns, sn, key)?;
    let n = children(conn, s.id)?;
    if n > 0 {
        return Err(StoreError::FailedPrecondition(format!(
            "snapshot \"{key}\" in namespace \"{ns}\" has {n} child snapshot(s); remove them first"
        )));
    }
    remove_row(tx, &s)?;
    Ok(s.id)
}

/// Deletes the row of `s` (the caller checked it has no children) and records the event.
pub fn remove_row(tx: &mut Tx<'_>, s: &SnapshotRow) -> Result<()> {
    tx.conn()
        .prepare_cached("DELETE FROM snapshots WHERE id = ?1")?
        .execute([s.id])?;
    tx.emit(
        &s.namespace,
        &ev::SnapshotRemove {
            key: s.key.clone(),
            snapshotter: s.snapshotter.clone(),
        },
    )
}

fn info_row(r: &Row<'_>) -> Result<SnapshotInfo> {
    Ok(SnapshotInfo {
        key: r.get(0)?,
        parent: r.get::<_, Option<String>>(1)?.unwrap_or_default(),
        kind: r.get::<_, Kind>(2)?.as_str().to_owned(),
        snapshotter: r.get(3)?,
        labels: serde_json::from_str(&r.get::<_, String>(4)?)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
    })
}

const INFO: &str = "SELECT s.key, p.key, s.kind, s.snapshotter, s.labels, s.created_at, \
                    s.updated_at FROM snapshots s LEFT JOIN snapshots p ON p.id = s.parent";

pub fn info(conn: &Connection, ns: &str, sn: &str, key: &str) -> Result<SnapshotInfo> {
    let mut stmt = conn.prepare_cached(&format!(
        "{INFO} WHERE s.namespace = ?1 AND s.snapshotter = ?2 AND s.key = ?3"
    ))?;
    let mut rows = stmt.query(params![ns, sn, key])?;
    match rows.next()? {
        Some(r) => info_row(r),
        None => Err(StoreError::NotFound(missing(ns, sn, key))),
    }
}

/// Snapshots of one snapshotter in `ns`, in key order; `filter` is over alias `s`.
pub fn list(
    conn: &Connection,
    ns: &str,
    sn: &str,
    filter: (&str, Vec<SqlValue>),
) -> Result<Vec<SnapshotInfo>> {
    let (cond, args) = filter;
    let sql =
        format!("{INFO} WHERE s.namespace = ? AND s.snapshotter = ? AND ({cond}) ORDER BY s.key");
    let mut all: Vec<SqlValue> = vec![ns.to_owned().into(), sn.to_owned().into()];
    all.extend(args);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(all))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(info_row(r)?);
    }
    Ok(out)
}

/// Every snapshot of every namespace, oldest first (parents before children).
pub fn all(conn: &Connection) -> Result<Vec<SnapshotRow>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {ROW} FROM snapshots s ORDER BY s.id"))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(row(r)?);
    }
    Ok(out)
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM snapshots", [], |r| r.get(0))?)
}
