//! The events table: every change's event, written in the change's transaction.

use rusqlite::{params, Connection};
use schema::Event;

use super::{now, Result};

pub(crate) fn insert(
    conn: &Connection,
    namespace: &str,
    topic: &str,
    event: serde_json::Value,
) -> Result<Event> {
    let timestamp = now();
    let body = serde_json::to_string(&event)?;
    conn.prepare_cached(
        "INSERT INTO events (timestamp, namespace, topic, event) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![timestamp, namespace, topic, body])?;
    Ok(Event {
        seq: conn.last_insert_rowid(),
        timestamp,
        namespace: namespace.to_owned(),
        topic: topic.to_owned(),
        event,
    })
}

/// Events with seq > `since`, oldest first, at most `limit`.
pub fn list_since(conn: &Connection, since: i64, limit: u32) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, timestamp, namespace, topic, event FROM events \
         WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![since, limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, timestamp, namespace, topic, body) = row?;
        out.push(Event {
            seq,
            timestamp,
            namespace,
            topic,
            event: serde_json::from_str(&body)?,
        });
    }
    Ok(out)
}

/// The newest seq ever assigned (0 when there has been none).
pub fn last_seq(conn: &Connection) -> Result<i64> {
    let seq: Option<i64> = conn
        .prepare_cached("SELECT max(seq) FROM events")?
        .query_row([], |r| r.get(0))?;
    Ok(seq.unwrap_or(0))
}

/// Drops the oldest events so that at most `keep` remain (never the newest: see the migration).
pub(crate) fn prune(conn: &Connection, keep: i64) -> Result<usize> {
    let last = last_seq(conn)?;
    Ok(conn
        .prepare_cached("DELETE FROM events WHERE seq <= ?1")?
        .execute([last - keep])?)
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?)
}
