//! The events table: every change's event, written in the change's transaction.

use rusqlite::{params, Connection, OptionalExtension};
use schema::Event;

use super::{now, Result};

pub(crate) fn insert(
    conn: &Connection,
    namespace: &str,
    topic: &str,
    event: serde_json::Value,
) -> Result<(Event, i64)> {
    let timestamp = now();
    let body = serde_json::to_string(&event)?;
    let bytes = i64::try_from(body.len()).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO events (timestamp, namespace, topic, event, bytes) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![timestamp, namespace, topic, body, bytes])?;
    let ev = Event {
        seq: conn.last_insert_rowid(),
        timestamp,
        namespace: namespace.to_owned(),
        topic: topic.to_owned(),
        event,
    };
    Ok((ev, bytes))
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

/// Drops the oldest events so that at most `keep` remain and those kept add up to at most
/// `keep_bytes` of event text. The newest event always stays, whatever its size: seqs are
/// rowids, and deleting the largest would hand its seq out again.
pub(crate) fn prune(conn: &Connection, keep: i64, keep_bytes: i64) -> Result<usize> {
    let last = last_seq(conn)?;
    let over: Option<i64> = conn
        .prepare_cached(
            "SELECT seq FROM (SELECT seq, sum(bytes) OVER (ORDER BY seq DESC) AS newer \
             FROM events) WHERE newer > ?1 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([keep_bytes], |r| r.get(0))
        .optional()?;
    let cut = match over {
        Some(seq) => (last - keep).max(seq.min(last - 1)),
        None => last - keep,
    };
    Ok(conn
        .prepare_cached("DELETE FROM events WHERE seq <= ?1")?
        .execute([cut])?)
}

/// Bytes of event text stored.
pub fn bytes(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT total(bytes) FROM events", [], |r| {
        r.get::<_, f64>(0)
    })? as i64)
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?)
}
