//! SQLite: the only place that speaks SQL.
//!
//! One writer thread owns the write connection. Writes from every task are queued to it and
//! the thread commits whatever has queued up in ONE transaction (group commit): durability stays
//! at `synchronous=FULL` (fsync before any reply) while concurrent writers share the fsync.
//! Each job runs inside its own SAVEPOINT, so one failing job rolls back alone.
//! Events a job records are written in the same transaction as the change they describe and
//! handed to the `on_commit` hook only after the commit, in seq order.
//!
//! Reads use a per-thread read-only connection (WAL lets them run beside the writer).

pub mod containers;
pub mod content;
pub mod events;
pub mod images;
pub mod leases;
mod migrate;
pub mod namespaces;
pub mod snapshots;
pub mod tasks;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

use rusqlite::{Connection, OpenFlags};
use schema::Event;
use tokio::sync::oneshot;

/// Errors of the storage layer. Messages name the object.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An object with that name exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// A rule of the caller's refused the change (raised inside a transaction).
    #[error("{0}")]
    InvalidArgument(String),
    /// The change is refused in the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON column could not be encoded or decoded.
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The writer thread is gone (the daemon is shutting down).
    #[error("the metadata store is closed")]
    Closed,
    /// Opening or migrating the database failed.
    #[error("opening {path}: {reason}")]
    Open { path: PathBuf, reason: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Called on the writer thread after each commit with the events it made durable, in order.
pub type CommitHook = Arc<dyn Fn(&[Event]) + Send + Sync>;

/// A write transaction as a job sees it: the connection plus the events it records.
pub struct Tx<'a> {
    conn: &'a Connection,
    events: Vec<Event>,
}

impl<'a> Tx<'a> {
    pub fn conn(&self) -> &'a Connection {
        self.conn
    }

    /// Records an event in this transaction; it is published only if the transaction commits.
    pub fn emit(&mut self, namespace: &str, topic: &str, event: serde_json::Value) -> Result<()> {
        let ev = events::insert(self.conn, namespace, topic, event)?;
        self.events.push(ev);
        Ok(())
    }
}

type Completion = Box<dyn FnOnce(Result<()>) + Send>;
/// A queued write. Given `None` it must not touch the database (the batch could not begin).
type Job = Box<dyn FnOnce(Option<&mut Tx<'_>>) -> (bool, Completion) + Send>;

/// Most jobs folded into one commit; bounds the latency one commit adds to the first job.
const MAX_BATCH: usize = 512;
/// Events kept for `events.list` and resuming subscribers; older ones are pruned.
pub const EVENT_RETENTION: i64 = 100_000;
/// Pruning runs once every this many commits, inside the commit's transaction.
const PRUNE_EVERY: u64 = 1024;

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static READERS: RefCell<HashMap<u64, Connection>> = RefCell::new(HashMap::new());
}

/// The metadata store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    id: u64,
    path: PathBuf,
    jobs: std::sync::Mutex<Option<mpsc::Sender<Job>>>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies pending migrations and starts
    /// the writer thread.
    pub fn open(path: &Path, on_commit: CommitHook) -> Result<Store> {
        let open_err = |e: &dyn std::fmt::Display| StoreError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        let mut conn = Connection::open(path).map_err(|e| open_err(&e))?;
        configure(&conn, false).map_err(|e| open_err(&e))?;
        migrate::apply(&mut conn).map_err(|e| open_err(&e))?;
        let (tx, rx) = mpsc::channel::<Job>();
        let writer = std::thread::Builder::new()
            .name("berth-store-writer".into())
            .spawn(move || writer_loop(conn, rx, on_commit))
            .map_err(|e| open_err(&e))?;
        Ok(Store {
            inner: Arc::new(Inner {
                id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                path: path.to_owned(),
                jobs: std::sync::Mutex::new(Some(tx)),
                writer: std::sync::Mutex::new(Some(writer)),
            }),
        })
    }

    /// Runs `f` in a write transaction; resolves once the transaction is durable (or failed).
    pub async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |tx| {
            let result = match tx {
                Some(tx) => f(tx),
                None => Err(StoreError::FailedPrecondition(
                    "the metadata store could not begin a transaction".into(),
                )),
            };
            let ok = result.is_ok();
            let done: Completion = Box::new(move |commit: Result<()>| {
                let _ = reply.send(commit.and(result));
            });
            (ok, done)
        });
        {
            let jobs = self.inner.jobs.lock().unwrap_or_else(|p| p.into_inner());
            let sender = jobs.as_ref().ok_or(StoreError::Closed)?;
            sender.send(job).map_err(|_| StoreError::Closed)?;
        }
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on this thread's read connection. Reads are short; they run in place.
    pub fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        READERS.with(|readers| {
            let mut readers = readers.borrow_mut();
            let conn = match readers.entry(self.inner.id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let conn = Connection::open_with_flags(
                        &self.inner.path,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    configure(&conn, true)?;
                    e.insert(conn)
                }
            };
            f(conn)
        })
    }

    /// Stops accepting writes, lets the writer finish what is queued, and waits for it.
    pub fn close(&self) {
        drop(
            self.inner
                .jobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }
}

fn configure(conn: &Connection, reader: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    if !reader {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // Bounded page cache per connection (KiB when negative): keeps RSS flat as data grows.
    conn.pragma_update(None, "cache_size", -2048)?;
    crate::filter::register_regexp(conn)?;
    Ok(())
}

fn writer_loop(conn: Connection, jobs: mpsc::Receiver<Job>, on_commit: CommitHook) {
    let mut commits: u64 = 0;
    while let Ok(first) = jobs.recv() {
        commits += 1;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut tx = Tx {
            conn: &conn,
            events: Vec::new(),
        };
        let mut done = Vec::with_capacity(batch.len());
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            tracing::error!(error = %e, "could not begin a write transaction");
            for job in batch {
                let (_, complete) = job(None);
                complete(Ok(()));
            }
            continue;
        }
        for job in batch {
            let before = tx.events.len();
            if let Err(e) = conn.execute_batch("SAVEPOINT job") {
                tracing::error!(error = %e, "savepoint failed");
            }
            let (ok, complete) = job(Some(&mut tx));
            let end = if ok {
                "RELEASE job"
            } else {
                tx.events.truncate(before);
                "ROLLBACK TO job; RELEASE job"
            };
            if let Err(e) = conn.execute_batch(end) {
                tracing::error!(error = %e, "ending savepoint failed");
            }
            done.push(complete);
        }
        if commits.is_multiple_of(PRUNE_EVERY) {
            if let Err(e) = events::prune(&conn, EVENT_RETENTION) {
                tracing::warn!(error = %e, "pruning old events failed");
            }
        }
        let committed = conn.execute_batch("COMMIT");
        match committed {
            Ok(()) => {
                if !tx.events.is_empty() {
                    on_commit(&tx.events);
                }
                for complete in done {
                    complete(Ok(()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed");
                let _ = conn.execute_batch("ROLLBACK");
                let msg = e.to_string();
                for complete in done {
                    complete(Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
                        Some(format!("commit failed: {msg}")),
                    ))));
                }
            }
        }
    }
}

/// The current time as an RFC 3339 UTC string with nanoseconds.
pub fn now() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

/// Maps "no row" to a not-found error with the given message.
pub(crate) fn not_found<T>(r: rusqlite::Result<T>, what: impl FnOnce() -> String) -> Result<T> {
    match r {
        Ok(v) => Ok(v),
        Err(rusqlite::Error::QueryReturnedNoRows) => Err(StoreError::NotFound(what())),
        Err(e) => Err(e.into()),
    }
}

/// True when `e` is a UNIQUE or PRIMARY KEY constraint violation.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _)
        if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        || f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
}
