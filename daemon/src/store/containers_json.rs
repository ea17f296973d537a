//! `containers.list` written from SQLite rows straight into its JSON reply: the stored JSON
//! columns (labels, runtime options, the spec, extensions) are copied as stored, never parsed
//! or re-validated, and no `Container` is built. The list is the one call every `ps` makes
//! and its reply is tens of MiB for 10,000 containers; decoding each spec only to encode it
//! again was most of its cost (issue 11).
//!
//! Why copying is sound: those columns are written only by [`super::containers`] from
//! values that were parsed (the spec validated as JSON) and re-encoded by serde_json, so the
//! text is exactly what serializing the parsed value gives. The unit test below holds the
//! output to `serde_json::to_string` of the same list, byte for byte.

use std::collections::HashMap;

use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, Row};
use schema::ContainerStatus;

use super::containers::{missing, COLUMNS};
use super::{Result, StoreError};

/// Not even one row fits in `max` bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Oversized;

/// Bytes kept free for the end of a page (an id is at most a few hundred bytes escaped).
const TAIL_ROOM: usize = 1024;

/// Where a page's text goes: `out` fills, and with a `flush`, each time it holds `chunk`
/// bytes or more after a whole row it is handed to `flush` and starts again empty, so a
/// page never sits in memory whole. `flush` failing (the reader went away) ends the page.
pub struct Sink<'a> {
    pub out: &'a mut Vec<u8>,
    pub chunk: usize,
    pub flush: Option<&'a mut dyn FnMut(Vec<u8>) -> Result<()>>,
}

impl Sink<'_> {
    /// A sink that keeps the whole page in `out`.
    pub fn whole(out: &mut Vec<u8>) -> Sink<'_> {
        Sink {
            out,
            chunk: usize::MAX,
            flush: None,
        }
    }
}

/// Writes the result object of `containers.list` (`{"containers":[...],"next":...}`) for one
/// page into `sink`, as serde would serialize the decoded rows: rows in id order after
/// `after`, at most `limit` and no more than fit in `max` bytes (past what `sink.out` held;
/// `next` names the last row when more follow), each with its status from `statuses` when
/// given. Nothing is flushed before the first row is known to fit, so `Oversized` comes
/// before any text left.
#[allow(clippy::too_many_arguments)]
pub fn list_json(
    conn: &Connection,
    ns: &str,
    filter: (&str, Vec<SqlValue>),
    after: Option<&str>,
    limit: Option<u32>,
    mut statuses: Option<HashMap<String, ContainerStatus>>,
    sink: Sink<'_>,
    max: usize,
) -> Result<std::result::Result<(), Oversized>> {
    let Sink {
        out,
        chunk,
        mut flush,
    } = sink;
    let (cond, filter_params) = filter;
    let sql = format!(
        "SELECT {COLUMNS} FROM containers c WHERE c.namespace = ? AND c.id > ? AND ({cond}) \
         ORDER BY c.id LIMIT ?"
    );
    let mut all: Vec<SqlValue> = vec![ns.to_owned().into(), after.unwrap_or("").to_owned().into()];
    all.extend(filter_params);
    // One extra row tells whether another page follows.
    all.push(limit.map_or(-1, |l| i64::from(l) + 1).into());
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(all))?;
    out.extend_from_slice(b"{\"containers\":[");
    let mut written = 0u32;
    let mut last = String::new();
    let mut next = None;
    // `max` counts from what `out` already holds; room is kept for what closes the page:
    // `],"next":"<id>"}`. `flushed` counts the bytes handed on.
    let rows_max = (out.len() + max).saturating_sub(TAIL_ROOM);
    let mut flushed = 0usize;
    while let Some(row) = rows.next()? {
        if limit.is_some_and(|l| written == l) {
            next = Some(std::mem::take(&mut last));
            break;
        }
        let start = out.len();
        if written > 0 {
            out.push(b',');
        }
        let id = text(row, 0)?;
        let status = statuses.as_mut().and_then(|s| s.remove(id));
        row_json(row, status.as_ref(), out)?;
        if flushed + out.len() > rows_max {
            if written == 0 {
                return Ok(Err(Oversized));
            }
            // The page ends with the rows that fit; the client follows `next`.
            out.truncate(start);
            next = Some(std::mem::take(&mut last));
            break;
        }
        last.clear();
        last.push_str(id);
        written += 1;
        if let Some(flush) = flush.as_mut().filter(|_| out.len() >= chunk) {
            let full = std::mem::replace(out, Vec::with_capacity(chunk.saturating_add(chunk / 4)));
            flushed += full.len();
            flush(full)?;
        }
    }
    out.push(b']');
    if let Some(next) = next {
        out.extend_from_slice(b",\"next\":");
        serde_json::to_writer(&mut *out, &next)?;
    }
    out.push(b'}');
    Ok(Ok(()))
}

/// Writes the result object of `containers.get` (`{"container":{...}}`) for container `id`
/// after what `out` holds, as serde would serialize the decoded container.
pub fn get_json(conn: &Connection, ns: &str, id: &str, out: &mut Vec<u8>) -> Result<()> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM containers c WHERE c.namespace = ?1 AND c.id = ?2"
    ))?;
    let mut rows = stmt.query(params![ns, id])?;
    let row = rows
        .next()?
        .ok_or_else(|| StoreError::NotFound(missing(ns, id)))?;
    out.extend_from_slice(b"{\"container\":");
    row_json(row, None, out)?;
    out.push(b'}');
    Ok(())
}

fn text<'r>(row: &'r Row<'_>, i: usize) -> Result<&'r str> {
    Ok(row.get_ref(i)?.as_str().map_err(|e| not_text(i, e))?)
}

fn not_text(i: usize, e: rusqlite::types::FromSqlError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
}

/// One container in `schema::Container`'s field order.
fn row_json(row: &Row<'_>, status: Option<&ContainerStatus>, out: &mut Vec<u8>) -> Result<()> {
    let string = |out: &mut Vec<u8>, key: &[u8], i: usize| -> Result<()> {
        out.extend_from_slice(key);
        serde_json::to_writer(&mut *out, text(row, i)?)?;
        Ok(())
    };
    // Copied as bytes: what is stored there was encoded by serde_json (see the module's
    // doc), so it is UTF-8 already and checking each spec again was 6% of a list.
    let stored = |out: &mut Vec<u8>, key: &[u8], i: usize| -> Result<()> {
        out.extend_from_slice(key);
        out.extend_from_slice(row.get_ref(i)?.as_bytes().map_err(|e| not_text(i, e))?);
        Ok(())
    };
    string(out, b"{\"id\":", 0)?;
    stored(out, b",\"labels\":", 2)?;
    string(out, b",\"image\":", 1)?;
    string(out, b",\"runtime\":{\"name\":", 3)?;
    stored(out, b",\"options\":", 4)?;
    stored(out, b"},\"spec\":", 5)?;
    string(out, b",\"snapshotter\":", 6)?;
    string(out, b",\"snapshot_key\":", 7)?;
    string(out, b",\"created_at\":", 9)?;
    string(out, b",\"updated_at\":", 10)?;
    stored(out, b",\"extensions\":", 8)?;
    if let Some(s) = status {
        out.extend_from_slice(b",\"status\":");
        serde_json::to_writer(&mut *out, s)?;
    }
    out.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use schema::{Container, ContainerList, Runtime};
    use serde_json::json;

    use super::*;
    use crate::store::{containers, Store};

    fn container(id: &str, labels: serde_json::Value, spec: &str) -> Container {
        Container {
            id: id.into(),
            labels: serde_json::from_value(labels).expect("labels"),
            image: "docker.io/library/busybox:latest".into(),
            runtime: Runtime {
                name: "io.containerd.runc.v2".into(),
                options: json!({"binary": "runc", "n": 1.5, "nested": {"b": [1, "\u{7}"]}}),
            },
            spec: serde_json::value::RawValue::from_string(spec.into()).expect("spec"),
            snapshotter: "overlayfs".into(),
            snapshot_key: format!("{id}-snap"),
            created_at: "2026-12-03T12:00:00.000000001Z".into(),
            updated_at: "2026-12-03T12:00:00.000000002Z".into(),
            extensions: serde_json::from_value(json!({"x": {"y": null, "z": -3}}))
                .expect("extensions"),
            status: None,
        }
    }

    #[tokio::test]
    async fn the_encoded_list_is_what_serde_writes_for_the_decoded_one_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("meta.db"), Arc::new(|_: &[_]| {})).expect("open");
        let rows = [
            container(
                "a",
                json!({"k": "v", "quote\"d": "tab\there"}),
                r#"{"ociVersion":"1.0.2"}"#,
            ),
            // A spec as a client sent it, whitespace and escapes kept.
            container(
                "b",
                json!({"sel": "yes"}),
                "{ \"process\" : {\"args\": [\"\\u00e9\", \"é\"]} }",
            ),
            container("c", json!({}), r#"{"root":{"path":"/x"}}"#),
        ];
        for c in rows {
            store
                .write(move |tx| containers::insert(tx, "ns", &c))
                .await
                .expect("insert");
        }
        let status = ContainerStatus {
            state: "exited".into(),
            pid: None,
            exit_status: Some(3),
            exit_reason: None,
            started_at: Some("2026-12-03T12:00:01Z".into()),
            exited_at: Some("2026-12-03T12:00:02Z".into()),
        };
        // (filter, after, limit, with_status) -> (ids, next)
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<u32>,
            bool,
            &'a [&'a str],
            Option<&'a str>,
        );
        let cases: [Case<'_>; 5] = [
            ("1", None, None, false, &["a", "b", "c"], None),
            ("1", None, Some(2), true, &["a", "b"], Some("b")),
            ("1", Some("b"), Some(1), false, &["c"], None),
            ("1", None, Some(3), false, &["a", "b", "c"], None),
            (
                "c.labels ->> '$.sel' = 'yes'",
                None,
                None,
                true,
                &["b"],
                None,
            ),
        ];
        let decoded =
            |conn: &Connection, ids: &[&str], next: Option<&str>, st: bool| -> Result<Vec<u8>> {
                let mut list = Vec::new();
                for id in ids {
                    let mut c = containers::get(conn, "ns", id)?;
                    if st && *id == "b" {
                        c.status = Some(status.clone());
                    }
                    list.push(c);
                }
                let next = next.map(str::to_owned);
                Ok(serde_json::to_vec(&ContainerList {
                    containers: list,
                    next,
                })?)
            };
        for (cond, after, limit, with_status, ids, next) in cases {
            let statuses = with_status.then(|| HashMap::from([("b".to_owned(), status.clone())]));
            let (got, want) = store
                .read(|conn| {
                    let mut out = Vec::new();
                    list_json(
                        conn,
                        "ns",
                        (cond, vec![]),
                        after,
                        limit,
                        statuses,
                        Sink::whole(&mut out),
                        1 << 20,
                    )?
                    .expect("fits");
                    Ok((out, decoded(conn, ids, next, with_status)?))
                })
                .expect("read");
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "{cond} after {after:?} limit {limit:?}"
            );
        }
        // Without a limit, a page holds what fits in `max` and names the next.
        let (got, want) = store
            .read(|conn| {
                let two = decoded(conn, &["a", "b"], None, false)?;
                // `{"containers":[a,b]}` less its last two bytes, plus the room for the end.
                let max = two.len() - 2 + TAIL_ROOM;
                let mut out = Vec::new();
                list_json(
                    conn,
                    "ns",
                    ("1", vec![]),
                    None,
                    None,
                    None,
                    Sink::whole(&mut out),
                    max,
                )?
                .expect("two fit");
                Ok((out, decoded(conn, &["a", "b"], Some("b"), false)?))
            })
            .expect("read");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
        let over = store
            .read(|conn| {
                list_json(
                    conn,
                    "ns",
                    ("1", vec![]),
                    None,
                    None,
                    None,
                    Sink::whole(&mut Vec::new()),
                    100,
                )
            })
            .expect("read");
        assert_eq!(over, Err(Oversized), "not even one row fits");
        store.close();
    }

    #[tokio::test]
    async fn the_encoded_get_is_what_serde_writes_for_the_decoded_one_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("meta.db"), Arc::new(|_: &[_]| {})).expect("open");
        let spaced = "{ \"process\" : {\"args\": [\"\\u00e9\", \"é\"]} }";
        let c = container("b", json!({"quote\"d": "tab\there", "é": "x"}), spaced);
        store
            .write(move |tx| containers::insert(tx, "ns", &c))
            .await
            .expect("insert");
        let (encoded, decoded) = store
            .read(|conn| {
                let mut out = b"prefix".to_vec();
                get_json(conn, "ns", "b", &mut out)?;
                let container = containers::get(conn, "ns", "b")?;
                Ok((out, schema::ContainerReply { container }))
            })
            .expect("read");
        let want = [
            b"prefix".to_vec(),
            serde_json::to_vec(&decoded).expect("json"),
        ]
        .concat();
        assert_eq!(
            String::from_utf8_lossy(&encoded),
            String::from_utf8_lossy(&want)
        );
        let missing = store.read(|conn| get_json(conn, "ns", "nope", &mut Vec::new()));
        assert!(
            matches!(&missing, Err(StoreError::NotFound(m)) if m.contains("\"nope\"")),
            "{missing:?}"
        );
        store.close();
    }
}
