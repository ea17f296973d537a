//! The namespaces table.

use rusqlite::{params, Connection, OptionalExtension};
use schema::{Labels, Namespace};

use super::{is_unique_violation, now, Result, StoreError, Tx};

/// Creates a namespace and records `/namespaces/create`.
pub fn create(tx: &mut Tx<'_>, name: &str, labels: &Labels) -> Result<Namespace> {
    let created_at = now();
    let res = tx
        .conn()
        .prepare_cached("INSERT INTO namespaces (name, labels, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![name, serde_json::to_string(labels)?, created_at]);
    match res {
        Err(e) if is_unique_violation(&e) => {
            return Err(StoreError::AlreadyExists(format!(
                "namespace \"{name}\" already exists"
            )))
        }
        other => other?,
    };
    let (event_labels, labels_truncated) = schema::events::event_labels(labels);
    tx.emit(
        name,
        &schema::events::NamespaceCreate {
            name: name.to_owned(),
            labels: event_labels,
            labels_truncated,
        },
    )?;
    Ok(Namespace {
        name: name.to_owned(),
        labels: labels.clone(),
        created_at,
    })
}

/// Creates the namespace unless it exists: objects are created in a namespace on first use.
pub fn ensure(tx: &mut Tx<'_>, name: &str) -> Result<()> {
    let exists = tx
        .conn()
        .prepare_cached("SELECT 1 FROM namespaces WHERE name = ?1")?
        .query_row([name], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        create(tx, name, &Labels::new())?;
    }
    Ok(())
}

/// Deletes an empty namespace and records `/namespaces/delete`.
pub fn delete(tx: &mut Tx<'_>, name: &str) -> Result<()> {
    let conn = tx.conn();
    for (table, what) in [
        ("containers", "container"),
        ("images", "image"),
        ("snapshots", "snapshot"),
        ("leases", "lease"),
    ] {
        let n: i64 = conn
            .prepare_cached(&format!(
                "SELECT count(*) FROM {table} WHERE namespace = ?1"
            ))?
            .query_row([name], |r| r.get(0))?;
        if n > 0 {
            return Err(StoreError::FailedPrecondition(format!(
                "namespace \"{name}\" is not empty: it holds {n} {what}(s)"
            )));
        }
    }
    let n = conn
        .prepare_cached("DELETE FROM namespaces WHERE name = ?1")?
        .execute([name])?;
    if n == 0 {
        return Err(StoreError::NotFound(format!(
            "namespace \"{name}\" not found"
        )));
    }
    tx.emit(
        name,
        &schema::events::NamespaceDelete {
            name: name.to_owned(),
        },
    )
}

pub fn list(conn: &Connection) -> Result<Vec<Namespace>> {
    let mut stmt =
        conn.prepare_cached("SELECT name, labels, created_at FROM namespaces ORDER BY name")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, labels, created_at) = row?;
        out.push(Namespace {
            name,
            labels: serde_json::from_str(&labels)?,
            created_at,
        });
    }
    Ok(out)
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM namespaces", [], |r| r.get(0))?)
}
