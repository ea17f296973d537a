//! Container logs: where each container's log lives (`<root>/logs/<ns>/<id>/task.log`, kept
//! across tasks and reboots, removed with the container), the copy each task's output gets
//! unless its caller passes its own stdio, and reading it back, once or following it.
//!
//! Followers never touch a task's pipes: the copy thread writes the file and bumps a
//! per-container [`watch`] that followers wait on, so a slow or stopped follower costs the
//! task nothing and berthd no memory; one that falls behind by more than the rotated files
//! hold misses what was rotated away, as with docker's json-file driver.

use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use schema::{LogBatch, LogEntry, LogsParams};
use tokio::sync::watch;

use super::{check_id, dir_names, Error, Result};
use crate::runtime::logfile::{self, Copier, Cursor, Entry, Limits, LogFile, Stream};
use crate::store::{self, Store};

/// Encoded bytes one `containers.logs` reply carries at most (and a follower's tail).
const REPLY_BYTES: usize = 4 << 20;
/// Encoded bytes one `logs.subscribe` notification carries at most (about).
pub const BATCH_BYTES: usize = 64 << 10;

/// About what an entry costs as JSON: its fields, and its text with escapes (a control
/// byte is six), so an empty line or a run of NULs is not counted as nothing.
fn encoded_len(e: &Entry) -> usize {
    let text: usize = e
        .text
        .bytes()
        .map(|b| {
            if b < 0x20 || b == b'"' || b == b'\\' {
                6
            } else {
                1
            }
        })
        .sum();
    96 + text
}

type Key = (String, String);

/// How many copies write a container's log now (an old task's may still drain while a
/// new one starts), and a counter bumped after each write.
#[derive(Debug, Clone, Copy, Default)]
pub struct Activity {
    pub writes: u64,
    pub writers: u32,
}

/// The log service; cheap to clone.
#[derive(Clone)]
pub struct Logs {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    dir: PathBuf,
    limits: Limits,
    feeds: Mutex<HashMap<Key, watch::Sender<Activity>>>,
}

/// What a reader asked for, checked.
#[derive(Clone)]
struct Query {
    stream: Option<Stream>,
    since: Option<String>,
    tail: Option<u64>,
}

impl Query {
    fn matches(&self, e: &Entry) -> bool {
        self.stream.is_none_or(|s| s == e.stream)
            && self.since.as_deref().is_none_or(|t| e.time.as_str() >= t)
    }
}

fn wire(e: Entry) -> LogEntry {
    LogEntry {
        time: e.time,
        stream: e.stream.as_str().to_owned(),
        partial: e.partial,
        text: e.text,
    }
}

impl Logs {
    pub fn new(store: Store, root: &Path, limits: Limits) -> Logs {
        Logs {
            inner: Arc::new(Inner {
                store,
                dir: root.join("logs"),
                limits,
                feeds: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The newest file of container `id`'s log.
    pub fn path(&self, ns: &str, id: &str) -> PathBuf {
        self.inner.dir.join(ns).join(id).join("task.log")
    }

    fn feed(&self, ns: &str, id: &str) -> watch::Sender<Activity> {
        let mut feeds = self
            .inner
            .feeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        feeds
            .entry((ns.to_owned(), id.to_owned()))
            .or_insert_with(|| watch::channel(Activity::default()).0)
            .clone()
    }

    /// Copies a task's output `sources` into container `id`'s log until they end.
    pub fn start(&self, ns: &str, id: &str, sources: Vec<(Stream, OwnedFd)>) -> Result<Copier> {
        let path = self.path(ns, id);
        let file = LogFile::open(&path, self.inner.limits)
            .map_err(|e| Error::failure(format!("opening the log {}", path.display()), &e))?;
        let feed = self.feed(ns, id);
        // Counted before the thread starts, which may end (and say so) at once.
        feed.send_modify(|a| a.writers += 1);
        let writer = feed.clone();
        let notify: logfile::Notify = Arc::new(move |end| {
            writer.send_modify(|a| {
                a.writes += 1;
                if end {
                    a.writers = a.writers.saturating_sub(1);
                }
            })
        });
        logfile::start(sources, Arc::new(Mutex::new(file)), notify).map_err(|e| {
            feed.send_modify(|a| a.writers = a.writers.saturating_sub(1));
            Error::failure("starting the log copy", &e)
        })
    }

    /// Removes container `id`'s log (all its files).
    pub fn remove(&self, ns: &str, id: &str) {
        self.inner
            .feeds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(ns.to_owned(), id.to_owned()));
        let dir = self.inner.dir.join(ns).join(id);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %dir.display(), error = %e, "log not removed");
            }
            _ => {}
        }
    }

    /// Removes the logs of containers that no longer exist (one deleted while berthd was
    /// killed between its row and its files).
    pub fn sweep(&self) -> Result<()> {
        for ns in dir_names(&self.inner.dir) {
            for id in dir_names(&self.inner.dir.join(&ns)) {
                let gone = match self
                    .inner
                    .store
                    .read(|c| store::containers::get(c, &ns, &id))
                {
                    Ok(_) => false,
                    Err(store::StoreError::NotFound(_)) => true,
                    Err(e) => return Err(e.into()),
                };
                if gone {
                    tracing::info!(namespace = %ns, container = %id, "removing the log of a deleted container");
                    self.remove(&ns, &id);
                }
            }
        }
        Ok(())
    }

    fn query(&self, p: &LogsParams) -> Result<Query> {
        check_id("namespace", &p.namespace)?;
        check_id("container id", &p.id)?;
        let (ns, id) = (p.namespace.as_str(), p.id.as_str());
        self.inner
            .store
            .read(|c| store::containers::get(c, ns, id))?;
        let stream = match p.stream.as_deref() {
            None | Some("") => None,
            Some("stdout") => Some(Stream::Stdout),
            Some("stderr") => Some(Stream::Stderr),
            Some(other) => {
                return Err(Error::InvalidArgument(format!(
                    "stream {other:?} is neither \"stdout\" nor \"stderr\""
                )))
            }
        };
        let since = match p.since.as_deref() {
            None | Some("") => None,
            Some(t) => {
                let at = humantime::parse_rfc3339_weak(t).map_err(|e| {
                    Error::InvalidArgument(format!("since {t:?} is not an RFC 3339 time: {e}"))
                })?;
                // Entries carry fixed-width UTC times, so they compare as strings.
                Some(humantime::format_rfc3339_nanos(at).to_string())
            }
        };
        Ok(Query {
            stream,
            since,
            tail: p.tail,
        })
    }

    /// `containers.logs`: what the log holds now, bounded in size.
    pub async fn read(&self, p: &LogsParams) -> Result<LogBatch> {
        if p.follow {
            return Err(Error::InvalidArgument(
                "containers.logs does not follow; subscribe with logs.subscribe".into(),
            ));
        }
        let query = self.query(p)?;
        let cursor = Cursor::new(&self.path(&p.namespace, &p.id), self.inner.limits);
        super::blocking("log reader", move || {
            let mut cursor = cursor;
            let (entries, truncated) = collect(&mut cursor, &query, REPLY_BYTES)?;
            Ok(LogBatch {
                entries: entries.into_iter().map(wire).collect(),
                truncated,
                end: false,
            })
        })
        .await
    }

    /// `logs.subscribe`: a reader positioned per `p`, and the entries before that position
    /// that `p` asks for.
    pub async fn follow(&self, p: &LogsParams) -> Result<Follower> {
        let query = self.query(p)?;
        let feed = self.feed(&p.namespace, &p.id).subscribe();
        let cursor = Cursor::new(&self.path(&p.namespace, &p.id), self.inner.limits);
        let mut follower = Follower {
            cursor,
            query,
            feed,
            backlog: VecDeque::new(),
            closed: false,
        };
        if follower.query.tail.is_some() {
            follower.feed.borrow_and_update();
            follower = super::blocking("log reader", move || {
                let mut f = follower;
                // Bounded as a reply is: a tail of a log of short lines stays a few MiB.
                let (entries, _) = collect(&mut f.cursor, &f.query, REPLY_BYTES)?;
                f.backlog = entries;
                // The tail is taken; from here on, everything new.
                f.query.tail = None;
                Ok(f)
            })
            .await?;
        }
        Ok(follower)
    }
}

/// Reads `cursor` to its current end: the matching entries (the last `tail` of them when
/// asked), at most `bound` text bytes, and whether more matched.
fn collect(cursor: &mut Cursor, q: &Query, bound: usize) -> Result<(VecDeque<Entry>, bool)> {
    let mut out = VecDeque::new();
    let (mut bytes, mut truncated) = (0usize, false);
    let mut lines = 0u64;
    while let Some(e) = cursor
        .next_entry()
        .map_err(|e| Error::failure("reading a log", &e))?
    {
        if !q.matches(&e) {
            continue;
        }
        bytes += encoded_len(&e);
        lines += u64::from(!e.partial);
        out.push_back(e);
        // `tail` counts lines, not entries: a terminal echoes keys one read at a time, so
        // a typed command is many partial entries ending in a full one. A trailing run of
        // partials (a prompt) is a line of its own.
        let open = u64::from(out.back().is_some_and(|e| e.partial));
        if q.tail.is_some_and(|n| lines + open > n) {
            while let Some(old) = out.pop_front() {
                bytes -= encoded_len(&old);
                if !old.partial {
                    lines -= 1;
                    break;
                }
            }
        }
        if bytes > bound {
            if q.tail.is_none() {
                out.pop_back();
                return Ok((out, true));
            }
            while bytes > bound {
                let Some(old) = out.pop_front() else { break };
                bytes -= encoded_len(&old);
                lines -= u64::from(!old.partial);
            }
            truncated = true;
        }
    }
    Ok((out, truncated))
}

/// A reader of one log that waits for more; see [`Logs::follow`].
pub struct Follower {
    cursor: Cursor,
    query: Query,
    feed: watch::Receiver<Activity>,
    backlog: VecDeque<Entry>,
    /// The feed's sender is gone: nothing will write this log again.
    closed: bool,
}

impl Follower {
    /// The next entries, at most about [`BATCH_BYTES`] of text; empty once the log has
    /// nothing more now. `still_written` says whether a task was writing the log when the
    /// read began (if not, an empty batch means the end).
    pub async fn batch(self) -> Result<(Follower, Vec<LogEntry>, bool)> {
        let mut f = self;
        let active = f.feed.borrow_and_update().writers > 0 && !f.closed;
        super::blocking("log reader", move || {
            let mut out = Vec::new();
            let mut bytes = 0;
            while bytes < BATCH_BYTES {
                let next = match f.backlog.pop_front() {
                    Some(e) => Some(e),
                    None => f
                        .cursor
                        .next_entry()
                        .map_err(|e| Error::failure("reading a log", &e))?,
                };
                let Some(e) = next else { break };
                if f.query.matches(&e) {
                    bytes += encoded_len(&e);
                    out.push(wire(e));
                }
            }
            Ok((f, out, active))
        })
        .await
    }

    /// Waits until the log is written again, its writer ends, or the container's feed is
    /// gone (it was deleted; the next batch then ends the stream).
    pub async fn changed(&mut self) {
        if self.feed.changed().await.is_err() {
            self.closed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts `collect` keeps of a log holding `lines` (CRI format) for `tail`.
    fn tail_of(lines: &[&str], tail: u64) -> Vec<String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("task.log");
        let text: String = lines
            .iter()
            .map(|l| format!("2024-05-01T12:34:56.000000000Z stdout {l}\n"))
            .collect();
        std::fs::write(&path, text).expect("write log");
        let limits = Limits {
            max_bytes: 1 << 20,
            max_files: 1,
        };
        let q = Query {
            stream: None,
            since: None,
            tail: Some(tail),
        };
        let (out, _) = collect(&mut Cursor::new(&path, limits), &q, 1 << 20).expect("collect");
        out.into_iter().map(|e| e.text).collect()
    }

    #[test]
    fn tail_counts_lines_not_the_partial_entries_a_terminal_echo_makes() {
        let log = ["F first", "P e", "P c", "P h", "F o two", "P / # "];
        assert_eq!(tail_of(&log, 2), ["e", "c", "h", "o two", "/ # "]);
        assert_eq!(tail_of(&log, 1), ["/ # "]);
        assert_eq!(tail_of(&log, 3).len(), log.len());
        assert_eq!(tail_of(&log[..5], 1), ["e", "c", "h", "o two"]);
    }
}
