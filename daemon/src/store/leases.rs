//! Leases and the resources they hold.

use rusqlite::{params, Connection, Row};
use schema::{Labels, Lease, LeaseResource};

use super::{is_unique_violation, namespaces, Result, StoreError, Tx};

fn missing(ns: &str, id: &str) -> String {
    format!("lease \"{id}\" not found in namespace \"{ns}\"")
}

fn from_row(r: &Row<'_>) -> Result<Lease> {
    Ok(Lease {
        id: r.get(0)?,
        labels: serde_json::from_str(&r.get::<_, String>(1)?)?,
        created_at: r.get(2)?,
        expires_at: r.get(3)?,
    })
}

pub fn create(
    tx: &mut Tx<'_>,
    ns: &str,
    id: &str,
    labels: &Labels,
    expires_at: &str,
    now: &str,
) -> Result<Lease> {
    namespaces::ensure(tx, ns)?;
    let res = tx
        .conn()
        .prepare_cached(
            "INSERT INTO leases (namespace, id, labels, created_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            ns,
            id,
            serde_json::to_string(labels)?,
            now,
            expires_at
        ]);
    match res {
        Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists(format!(
            "lease \"{id}\" already exists in namespace \"{ns}\""
        ))),
        Err(e) => Err(e.into()),
        Ok(_) => Ok(Lease {
            id: id.to_owned(),
            labels: labels.clone(),
            created_at: now.to_owned(),
            expires_at: expires_at.to_owned(),
        }),
    }
}

pub fn list(conn: &Connection, ns: &str) -> Result<Vec<Lease>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, labels, created_at, expires_at FROM leases WHERE namespace = ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query([ns])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

pub fn delete(tx: &mut Tx<'_>, ns: &str, id: &str) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached("DELETE FROM leases WHERE namespace = ?1 AND id = ?2")?
        .execute(params![ns, id])?;
    if n == 0 {
        return Err(StoreError::NotFound(missing(ns, id)));
    }
    Ok(())
}

fn require(conn: &Connection, ns: &str, id: &str) -> Result<()> {
    let n: i64 = conn
        .prepare_cached("SELECT count(*) FROM leases WHERE namespace = ?1 AND id = ?2")?
        .query_row(params![ns, id], |r| r.get(0))?;
    if n == 0 {
        return Err(StoreError::NotFound(missing(ns, id)));
    }
    Ok(())
}

pub fn add_resource(tx: &mut Tx<'_>, ns: &str, id: &str, r: &LeaseResource) -> Result<()> {
    require(tx.conn(), ns, id)?;
    tx.conn()
        .prepare_cached(
            "INSERT INTO lease_resources (namespace, lease, kind, resource) VALUES (?1,?2,?3,?4) \
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![ns, id, r.kind, r.id])?;
    Ok(())
}

pub fn delete_resource(tx: &mut Tx<'_>, ns: &str, id: &str, r: &LeaseResource) -> Result<()> {
    require(tx.conn(), ns, id)?;
    tx.conn()
        .prepare_cached(
            "DELETE FROM lease_resources WHERE namespace = ?1 AND lease = ?2 AND kind = ?3 \
             AND resource = ?4",
        )?
        .execute(params![ns, id, r.kind, r.id])?;
    Ok(())
}

pub fn resources(conn: &Connection, ns: &str, id: &str) -> Result<Vec<LeaseResource>> {
    require(conn, ns, id)?;
    let mut stmt = conn.prepare_cached(
        "SELECT resource, kind FROM lease_resources WHERE namespace = ?1 AND lease = ?2 \
         ORDER BY kind, resource",
    )?;
    let rows = stmt.query_map(params![ns, id], |r| {
        Ok(LeaseResource {
            id: r.get(0)?,
            kind: r.get(1)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Resources held by live leases (`expires_at` empty or after `now`), all namespaces:
/// `(namespace, kind, resource)`.
pub fn live_resources(conn: &Connection, now: &str) -> Result<Vec<(String, String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT r.namespace, r.kind, r.resource FROM lease_resources r JOIN leases l \
         ON l.namespace = r.namespace AND l.id = r.lease \
         WHERE l.expires_at = '' OR l.expires_at > ?1",
    )?;
    let rows = stmt.query_map([now], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes expired leases; returns how many.
pub fn expire(tx: &mut Tx<'_>, now: &str) -> Result<usize> {
    Ok(tx
        .conn()
        .prepare_cached("DELETE FROM leases WHERE expires_at <> '' AND expires_at <= ?1")?
        .execute([now])?)
}

/// Whether a live lease in `ns` holds snapshot `key` of snapshotter `sn`.
pub fn holds_snapshot(conn: &Connection, ns: &str, sn: &str, key: &str, now: &str) -> Result<bool> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM lease_resources r JOIN leases l \
             ON l.namespace = r.namespace AND l.id = r.lease \
             WHERE r.namespace = ?1 AND r.kind = ?2 AND r.resource = ?3 \
             AND (l.expires_at = '' OR l.expires_at > ?4)",
        )?
        .query_row(params![ns, format!("snapshots/{sn}"), key, now], |r| {
            r.get(0)
        })?;
    Ok(n > 0)
}
