//! The images table and its label index.

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use schema::events as ev;
use schema::{Descriptor, Image};

use super::{namespaces, Result, StoreError, Tx};

const COLUMNS: &str = "i.name, i.target_media_type, i.target_digest, i.target_size, i.labels, \
                       i.created_at, i.updated_at";

fn from_row(r: &Row<'_>) -> Result<Image> {
    Ok(Image {
        name: r.get(0)?,
        target: Descriptor {
            media_type: r.get(1)?,
            digest: r.get(2)?,
            size: r.get(3)?,
        },
        labels: serde_json::from_str(&r.get::<_, String>(4)?)?,
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        size: None,
    })
}

pub fn missing(ns: &str, name: &str) -> String {
    format!("image \"{name}\" not found in namespace \"{ns}\"")
}

/// Creates the image or points an existing one at a new target (as an import does),
/// recording `/images/create` or `/images/update`.
pub fn put(tx: &mut Tx<'_>, ns: &str, image: &Image) -> Result<Image> {
    namespaces::ensure(tx, ns)?;
    let conn = tx.conn();
    let existing: Option<(i64, String)> = conn
        .prepare_cached("SELECT pk, created_at FROM images WHERE namespace = ?1 AND name = ?2")?
        .query_row(params![ns, image.name], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let mut stored = image.clone();
    let labels = serde_json::to_string(&image.labels)?;
    let (pk, created) = match existing {
        Some((pk, created_at)) => {
            stored.created_at = created_at;
            conn.prepare_cached(
                "UPDATE images SET target_media_type = ?2, target_digest = ?3, target_size = ?4, \
                 labels = ?5, updated_at = ?6 WHERE pk = ?1",
            )?
            .execute(params![
                pk,
                image.target.media_type,
                image.target.digest,
                image.target.size,
                labels,
                image.updated_at
            ])?;
            (pk, false)
        }
        None => {
            conn.prepare_cached(
                "INSERT INTO images (namespace, name, target_media_type, target_digest, \
                 target_size, labels, created_at, updated_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
            )?
            .execute(params![
                ns,
                image.name,
                image.target.media_type,
                image.target.digest,
                image.target.size,
                labels,
                image.created_at,
                image.updated_at
            ])?;
            (conn.last_insert_rowid(), true)
        }
    };
    conn.prepare_cached("DELETE FROM image_labels WHERE image = ?1")?
        .execute([pk])?;
    let mut ins =
        conn.prepare_cached("INSERT INTO image_labels (image, key, value) VALUES (?1, ?2, ?3)")?;
    for (k, v) in &image.labels {
        ins.execute(params![pk, k, v])?;
    }
    let name = image.name.clone();
    let (labels, labels_truncated) = schema::events::event_labels(&image.labels);
    if created {
        tx.emit(
            ns,
            &ev::ImageCreate {
                name,
                labels,
                labels_truncated,
            },
        )?;
    } else {
        tx.emit(
            ns,
            &ev::ImageUpdate {
                name,
                labels,
                labels_truncated,
            },
        )?;
    }
    Ok(stored)
}

pub fn get(conn: &Connection, ns: &str, name: &str) -> Result<Image> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM images i WHERE i.namespace = ?1 AND i.name = ?2"
    ))?;
    let mut rows = stmt.query(params![ns, name])?;
    match rows.next()? {
        Some(r) => from_row(r),
        None => Err(StoreError::NotFound(missing(ns, name))),
    }
}

/// Images of `ns` in name order; `filter` is a SQL expression over alias `i`.
pub fn list(conn: &Connection, ns: &str, filter: (&str, Vec<SqlValue>)) -> Result<Vec<Image>> {
    let (cond, args) = filter;
    let sql = format!(
        "SELECT {COLUMNS} FROM images i WHERE i.namespace = ? AND ({cond}) ORDER BY i.name"
    );
    let mut all: Vec<SqlValue> = vec![ns.to_owned().into()];
    all.extend(args);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(all))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// Every image of every namespace: `(namespace, target digest)`; the roots of GC.
pub fn all_targets(conn: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare_cached("SELECT namespace, target_digest FROM images")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn delete(tx: &mut Tx<'_>, ns: &str, name: &str) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached("DELETE FROM images WHERE namespace = ?1 AND name = ?2")?
        .execute(params![ns, name])?;
    if n == 0 {
        return Err(StoreError::NotFound(missing(ns, name)));
    }
    tx.emit(
        ns,
        &ev::ImageDelete {
            name: name.to_owned(),
        },
    )
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM images", [], |r| r.get(0))?)
}
