//! The content table: metadata of the blobs in `<root>/content`. Blobs are shared by every
//! namespace; their events are recorded in the namespace of the request.

use rusqlite::{params, Connection, OptionalExtension, Row};
use schema::ContentInfo;

use super::{Result, StoreError, Tx};

fn from_row(r: &Row<'_>) -> Result<ContentInfo> {
    Ok(ContentInfo {
        digest: r.get(0)?,
        size: r.get(1)?,
        labels: serde_json::from_str(&r.get::<_, String>(2)?)?,
        created_at: r.get(3)?,
        updated_at: r.get(4)?,
    })
}

const COLUMNS: &str = "digest, size, labels, created_at, updated_at";

fn missing(digest: &str) -> String {
    format!("content \"{digest}\" not found")
}

/// Records a blob that is now on disk; a blob already known keeps its row.
pub fn insert(conn: &Connection, digest: &str, size: i64, now: &str) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO content (digest, size, created_at, updated_at) VALUES (?1, ?2, ?3, ?3) \
         ON CONFLICT (digest) DO NOTHING",
    )?
    .execute(params![digest, size, now])?;
    Ok(())
}

pub fn get(conn: &Connection, digest: &str) -> Result<ContentInfo> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM content WHERE digest = ?1"))?;
    let mut rows = stmt.query([digest])?;
    match rows.next()? {
        Some(r) => from_row(r),
        None => Err(StoreError::NotFound(missing(digest))),
    }
}

pub fn exists(conn: &Connection, digest: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM content WHERE digest = ?1")?
        .query_row([digest], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn list(conn: &Connection) -> Result<Vec<ContentInfo>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {COLUMNS} FROM content ORDER BY digest"))?;
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(from_row(r)?);
    }
    Ok(out)
}

/// Deletes the row and records `/content/delete` in `ns`.
pub fn delete(tx: &mut Tx<'_>, ns: &str, digest: &str) -> Result<()> {
    let n = tx
        .conn()
        .prepare_cached("DELETE FROM content WHERE digest = ?1")?
        .execute([digest])?;
    if n == 0 {
        return Err(StoreError::NotFound(missing(digest)));
    }
    tx.emit(
        ns,
        &schema::events::ContentDelete {
            digest: digest.to_owned(),
        },
    )
}
