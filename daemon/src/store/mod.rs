//! SQLite: the only place that speaks SQL.
//!
//! One writer thread owns the write connection. Writes from every task are queued to it and
//! the thread commits whatever has queued up in ONE transaction (group commit): durability stays
//! at `synchronous=FULL` (fsync before any reply) while concurrent writers share the fsync.
//! Each job runs inside its own SAVEPOINT, so one failing job rolls back alone.
//! Events a job records are written in the same transaction as the change they describe and
//! handed to the `on_commit` hook only after the commit, in seq order.
//!
//! A job that panics is answered with an internal error and rolled back to its savepoint;
//! the thread and the rest of the batch go on. A job whose SAVEPOINT fails is not run.
//! The database uses incremental auto-vacuum: when deletes leave many free pages the writer
//! returns them to the filesystem while it is idle, so the file shrinks. `space` keeps room
//! for deletes on a full disk.
//!
//! Reads use a per-thread read-only connection (WAL lets them run beside the writer).

pub mod check;
pub mod containers;
pub mod containers_json;
pub mod content;
pub mod events;
pub mod images;
pub mod leases;
mod migrate;
pub mod namespaces;
pub mod networks;
pub mod snapshots;
pub mod space;
pub mod tasks;

use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use schema::Event;
use tokio::sync::oneshot;

use space::Space;

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
    /// The disk holding the database is full; only writes that free space run.
    #[error("{0}")]
    DiskFull(String),
    /// A write job panicked; it was rolled back, the others in its batch were not.
    #[error("a metadata write panicked: {0}")]
    Panicked(String),
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

impl StoreError {
    /// Whether SQLite ran out of disk (SQLITE_FULL) or the store refused a write for it.
    pub fn is_disk_full(&self) -> bool {
        match self {
            StoreError::DiskFull(_) => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.code == rusqlite::ErrorCode::DiskFull
            }
            _ => false,
        }
    }
}

/// A copy of a SQLite failure, for answering every job of a batch with it.
fn copy_sqlite(e: &rusqlite::Error, context: &str) -> StoreError {
    let code = match e {
        rusqlite::Error::SqliteFailure(f, _) => f.extended_code,
        _ => rusqlite::ffi::SQLITE_ERROR,
    };
    StoreError::Sqlite(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(code),
        Some(format!("{context}: {e}")),
    ))
}

/// Called on the writer thread after each commit with the events it made durable, in order.
pub type CommitHook = Arc<dyn Fn(&[Event]) + Send + Sync>;

/// A write transaction as a job sees it: the connection plus the events it records.
pub struct Tx<'a> {
    conn: &'a Connection,
    events: Vec<Event>,
    /// Bytes of event text recorded (rolled-back jobs' too: it only hastens a prune).
    event_bytes: i64,
}

/// How much of the event log is kept (configuration); read by the writer at each prune.
#[derive(Debug)]
pub struct EventLimits {
    count: AtomicI64,
    bytes: AtomicI64,
}

/// The writer's view of pruning: the limits in force and the event bytes since the last prune.
struct Pruning {
    limits: Arc<EventLimits>,
    unpruned: i64,
}

impl Default for EventLimits {
    fn default() -> Self {
        EventLimits {
            count: AtomicI64::new(EVENT_RETENTION),
            bytes: AtomicI64::new(EVENT_RETENTION_BYTES),
        }
    }
}

impl<'a> Tx<'a> {
    pub fn conn(&self) -> &'a Connection {
        self.conn
    }

    /// Records an event in this transaction; it is published only if the transaction commits.
    pub fn emit<T: schema::events::Topic>(&mut self, namespace: &str, payload: &T) -> Result<()> {
        let event = serde_json::to_value(payload)?;
        self.emit_value(namespace, T::TOPIC, event)
    }

    /// `emit` of a payload no topic type describes: the events service's own tests.
    #[cfg(test)]
    pub fn emit_untyped(
        &mut self,
        namespace: &str,
        topic: &str,
        event: serde_json::Value,
    ) -> Result<()> {
        self.emit_value(namespace, topic, event)
    }

    fn emit_value(&mut self, namespace: &str, topic: &str, event: serde_json::Value) -> Result<()> {
        let (ev, bytes) = events::insert(self.conn, namespace, topic, event)?;
        self.events.push(ev);
        self.event_bytes = self.event_bytes.saturating_add(bytes);
        Ok(())
    }
}

type Completion = Box<dyn FnOnce(Result<()>) + Send>;

/// How a job ran, as the writer needs to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Failed,
    /// Failed because the disk is full.
    DiskFull,
}

/// A queued write. Given an error it must not touch the database (its savepoint or the
/// batch could not begin) and answers with that error.
type Run = Box<dyn FnOnce(Result<&mut Tx<'_>>) -> (Outcome, Completion) + Send>;

struct Job {
    /// The job frees space (a delete, gc): it runs even when the disk is full.
    reclaims: bool,
    run: Run,
}

/// Most jobs folded into one commit; bounds the latency one commit adds to the first job.
const MAX_BATCH: usize = 512;
/// Events kept for `events.list` and resuming subscribers; older ones are pruned.
pub const EVENT_RETENTION: i64 = 100_000;
/// Bytes of event text kept, however few events that is (the newest is always kept).
pub const EVENT_RETENTION_BYTES: i64 = 64 << 20;
/// Pruning runs once every this many commits, inside the commit's transaction.
const PRUNE_EVERY: u64 = 1024;
/// How long the writer waits for work before doing idle chores (returning free pages).
const IDLE: Duration = Duration::from_millis(250);
/// Free pages (4 KiB each) worth returning to the filesystem.
const VACUUM_MIN_FREE_PAGES: i64 = 256;
/// Pages returned per idle step, so a waiting write is never held long.
const VACUUM_STEP_PAGES: i64 = 2048;
/// Largest WAL file kept after a checkpoint resets it.
const WAL_SIZE_LIMIT: i64 = 4 << 20;

/// Large reads ([`Store::read_blocking`]) running at once, each on its own blocking thread
/// with its own read connection: a bounded reader pool.
const BLOCKING_READERS: usize = 4;

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
    space: Arc<Space>,
    event_limits: Arc<EventLimits>,
    /// Permits for [`Store::read_blocking`]: how many large reads run at once.
    blocking_readers: Arc<tokio::sync::Semaphore>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies pending migrations and starts
    /// the writer thread.
    pub fn open(path: &Path, on_commit: CommitHook) -> Result<Store> {
        let open_err = |e: &dyn std::fmt::Display| StoreError::Open {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        // The database holds every container's environment, secrets included: root's alone.
        // SQLite makes the WAL and shared-memory files with the database file's mode, so a
        // file from an older berthd is narrowed before they can be made, and all three after.
        let private = || {
            let mut wal = path.as_os_str().to_owned();
            wal.push("-wal");
            let mut shm = path.as_os_str().to_owned();
            shm.push("-shm");
            let files = [path.to_owned(), wal.into(), shm.into()];
            crate::layout::restrict_files(files.iter().map(PathBuf::as_path))
        };
        private().map_err(|e| open_err(&e))?;
        let mut conn = Connection::open(path).map_err(|e| open_err(&e))?;
        configure(&conn, false).map_err(|e| open_err(&e))?;
        enable_incremental_vacuum(&conn);
        migrate::apply(&mut conn).map_err(|e| open_err(&e))?;
        private().map_err(|e| open_err(&e))?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let space = Arc::new(Space::open(dir, space::RESERVE_BYTES));
        let (tx, rx) = mpsc::channel::<Job>();
        let writer_space = space.clone();
        let event_limits = Arc::new(EventLimits::default());
        let writer_limits = Arc::clone(&event_limits);
        let writer = std::thread::Builder::new()
            .name("berth-store-writer".into())
            .spawn(move || writer_loop(conn, rx, on_commit, writer_space, writer_limits))
            .map_err(|e| open_err(&e))?;
        Ok(Store {
            inner: Arc::new(Inner {
                id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                path: path.to_owned(),
                jobs: std::sync::Mutex::new(Some(tx)),
                writer: std::sync::Mutex::new(Some(writer)),
                space,
                event_limits,
                blocking_readers: Arc::new(tokio::sync::Semaphore::new(BLOCKING_READERS)),
            }),
        })
    }

    /// Runs `f` in a write transaction; resolves once the transaction is durable (or failed).
    /// Refused with [`StoreError::DiskFull`] while the room kept for deletes is all that is
    /// left of a full disk (see [`space`]).
    pub async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<R> + Send + 'static,
    {
        self.submit(false, f).await
    }

    /// Like [`Store::write`] for a change that frees space (a delete, gc): it runs on a full
    /// disk too, in the room the store keeps for it.
    pub async fn write_reclaiming<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<R> + Send + 'static,
    {
        self.submit(true, f).await
    }

    /// Keeps at most `count` events and `bytes` of event text from the next prune on (the
    /// newest event always stays).
    pub fn set_event_limits(&self, count: i64, bytes: i64) {
        let l = &self.inner.event_limits;
        l.count.store(count.max(1), Ordering::Relaxed);
        l.bytes.store(bytes.max(0), Ordering::Relaxed);
    }

    /// Whether the disk is full: the reserve is given back and writes other than deletes
    /// are refused. Callers about to fill the disk outside SQLite (imports, pulls) check it.
    /// Asking takes the reserve back if space was freed since (the writer does so too, but
    /// only when it writes or idles after a checkpoint), so an import after `gc.run` is not
    /// refused for a disk that has room again.
    pub fn disk_full(&self) -> bool {
        !self.inner.space.restore()
    }

    async fn submit<R, F>(&self, reclaims: bool, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let run: Run = Box::new(move |tx| {
            let result = match tx {
                Ok(tx) => catch_unwind(AssertUnwindSafe(|| f(tx)))
                    .unwrap_or_else(|panic| Err(StoreError::Panicked(panic_message(&*panic)))),
                Err(e) => Err(e),
            };
            let outcome = match &result {
                Ok(_) => Outcome::Ok,
                Err(e) if e.is_disk_full() => Outcome::DiskFull,
                Err(_) => Outcome::Failed,
            };
            let done: Completion = Box::new(move |commit: Result<()>| {
                let _ = reply.send(commit.and(result));
            });
            (outcome, done)
        });
        {
            let jobs = self.inner.jobs.lock().unwrap_or_else(|p| p.into_inner());
            let sender = jobs.as_ref().ok_or(StoreError::Closed)?;
            sender
                .send(Job { reclaims, run })
                .map_err(|_| StoreError::Closed)?;
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

    /// [`Store::read`] on a blocking thread, at most [`BLOCKING_READERS`] at once: for reads
    /// whose cost grows with the data (lists), which would otherwise hold an async worker
    /// thread, and every connection it serves, for as long as they take.
    pub async fn read_blocking<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let _permit = self.reader_permit().await?;
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .unwrap_or_else(|e| Err(StoreError::Panicked(e.to_string())))
    }

    /// A place in the bounded reader pool of [`Store::read_blocking`], for a caller that
    /// runs a larger job on a blocking thread, reading through [`Store::read`] there.
    pub async fn reader_permit(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.inner
            .blocking_readers
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)
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
    if !reader {
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
    }
    // Bounded page cache per connection (KiB when negative): keeps RSS flat as data grows.
    conn.pragma_update(None, "cache_size", -2048)?;
    crate::filter::register_regexp(conn)?;
    Ok(())
}

/// Switches the database to incremental auto-vacuum, once: the mode only takes effect on
/// an existing file through a VACUUM, which cannot run in a transaction. Failing (a full
/// disk) only costs the shrinking; it is retried at the next start.
fn enable_incremental_vacuum(conn: &Connection) {
    let mode = conn.pragma_query_value(None, "auto_vacuum", |r| r.get::<_, i64>(0));
    if matches!(mode, Ok(2)) {
        return;
    }
    let done = conn
        .pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .and_then(|()| conn.execute_batch("VACUUM"));
    match done {
        Ok(()) => tracing::info!("metadata database switched to incremental auto-vacuum"),
        Err(e) => tracing::warn!(error = %e, "could not switch to incremental auto-vacuum"),
    }
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

/// Runs one job, answering it with an internal error if the job itself panics outside its
/// closure (the closure's own panics are answered by `Store::submit`).
fn run_job(run: Run, tx: Result<&mut Tx<'_>>) -> (Outcome, Option<Completion>) {
    match catch_unwind(AssertUnwindSafe(|| run(tx))) {
        Ok((outcome, done)) => (outcome, Some(done)),
        Err(panic) => {
            tracing::error!(panic = %panic_message(&*panic), "a metadata write job panicked");
            (Outcome::Failed, None)
        }
    }
}

fn writer_loop(
    conn: Connection,
    jobs: mpsc::Receiver<Job>,
    on_commit: CommitHook,
    space: Arc<Space>,
    limits: Arc<EventLimits>,
) {
    let mut pruning = Pruning {
        limits,
        unpruned: 0,
    };
    let mut commits: u64 = 0;
    // Set by commits (they may have freed pages), cleared once the free list is small.
    let mut may_vacuum = true;
    let mut last_vacuum = std::time::Instant::now();
    loop {
        let first = match jobs.recv_timeout(IDLE) {
            Ok(job) => job,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                recover_space(&conn, &space);
                if may_vacuum {
                    may_vacuum = vacuum_step(&conn);
                    last_vacuum = std::time::Instant::now();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        commits += 1;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let reclaims = batch.iter().any(|j| j.reclaims);
        if reclaims && space.is_low() {
            space.release();
        }
        if !recover_space(&conn, &space) && space.keep_for_deletes() {
            batch = refuse_unless_reclaiming(batch);
            if batch.is_empty() {
                if may_vacuum && last_vacuum.elapsed() >= IDLE {
                    may_vacuum = vacuum_step(&conn);
                    last_vacuum = std::time::Instant::now();
                }
                continue;
            }
        }
        let disk_full = run_batch(&conn, batch, &on_commit, commits, &mut pruning);
        if disk_full && reclaims {
            // A delete found no room even with the reserve held: give it back so the
            // client's retry can run.
            space.release();
        }
        may_vacuum = true;
        // A steady stream of writes never leaves the writer idle: step anyway, now and then.
        if last_vacuum.elapsed() >= IDLE {
            may_vacuum = vacuum_step(&conn);
            last_vacuum = std::time::Instant::now();
        }
    }
}

/// After a full-disk episode (the reserve given back), checkpoints the WAL and truncates it
/// to nothing, so the pages it grew to during the deletes go back to the disk, then takes
/// the reserve back if there is room. Returns whether the reserve is held. While the
/// reserve is held this costs one atomic load.
fn recover_space(conn: &Connection, space: &Space) -> bool {
    if !space.is_released() {
        return true;
    }
    // Busy (a reader holds an old snapshot) or full: retried at the next batch or idle tick.
    let checkpoint = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    });
    if let Err(e) = &checkpoint {
        tracing::debug!(error = %e, "checkpointing the WAL on a full disk failed");
    }
    space.restore()
}

/// Answers every job of `batch` that does not free space with a disk-full error; returns
/// the others.
fn refuse_unless_reclaiming(batch: Vec<Job>) -> Vec<Job> {
    let mut keep = Vec::new();
    for job in batch {
        if job.reclaims {
            keep.push(job);
            continue;
        }
        let refused = Err(StoreError::DiskFull(
            "the disk holding berthd's root is full; delete images, containers or snapshots \
             (and run gc.run) to free space"
                .into(),
        ));
        if let (_, Some(done)) = run_job(job.run, refused) {
            done(Ok(()));
        }
    }
    keep
}

/// Runs `batch` in one transaction, each job in its own savepoint, and commits. Returns
/// whether a job or the commit failed for a full disk.
fn run_batch(
    conn: &Connection,
    batch: Vec<Job>,
    on_commit: &CommitHook,
    commits: u64,
    pruning: &mut Pruning,
) -> bool {
    let mut tx = Tx {
        conn,
        events: Vec::new(),
        event_bytes: 0,
    };
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %e, "could not begin a write transaction");
        for job in batch {
            if let (_, Some(done)) = run_job(job.run, Err(copy_sqlite(&e, "beginning a write"))) {
                done(Ok(()));
            }
        }
        return is_full(&e);
    }
    let mut done = Vec::with_capacity(batch.len());
    let mut disk_full = false;
    let mut jobs = batch.into_iter();
    let mut broken: Option<rusqlite::Error> = None;
    for job in jobs.by_ref() {
        if let Err(e) = open_savepoint(conn) {
            tracing::error!(error = %e, "a job's savepoint failed; the job is not run");
            disk_full |= is_full(&e);
            let (_, complete) = run_job(job.run, Err(copy_sqlite(&e, "opening a savepoint")));
            done.extend(complete);
            continue;
        }
        let before = tx.events.len();
        let (outcome, complete) = run_job(job.run, Ok(&mut tx));
        disk_full |= outcome == Outcome::DiskFull;
        done.extend(complete);
        let end = if outcome == Outcome::Ok {
            "RELEASE job"
        } else {
            tx.events.truncate(before);
            "ROLLBACK TO job; RELEASE job"
        };
        if let Err(e) = conn.execute_batch(end) {
            // The transaction may hold a failed job's changes: none of it may commit.
            tracing::error!(error = %e, "ending a savepoint failed; the batch is rolled back");
            broken = Some(e);
            break;
        }
    }
    if let Some(e) = broken {
        let _ = conn.execute_batch("ROLLBACK");
        for job in jobs {
            let (_, complete) = run_job(job.run, Err(copy_sqlite(&e, "an earlier job")));
            done.extend(complete);
        }
        for complete in done {
            complete(Err(copy_sqlite(&e, "ending a savepoint")));
        }
        return disk_full || is_full(&e);
    }
    pruning.unpruned = pruning.unpruned.saturating_add(tx.event_bytes);
    let keep_bytes = pruning.limits.bytes.load(Ordering::Relaxed).max(0);
    // By count now and then; by size as soon as an eighth of the cap arrived since the last
    // prune, so a burst of large events is cut back within the batch that makes it.
    if commits.is_multiple_of(PRUNE_EVERY) || pruning.unpruned > keep_bytes / 8 {
        let keep = pruning.limits.count.load(Ordering::Relaxed).max(1);
        match events::prune(conn, keep, keep_bytes) {
            Ok(_) => pruning.unpruned = 0,
            Err(e) => tracing::warn!(error = %e, "pruning old events failed"),
        }
    }
    match conn.execute_batch("COMMIT") {
        Ok(()) => {
            if !tx.events.is_empty() {
                let events = &tx.events;
                if catch_unwind(AssertUnwindSafe(|| on_commit(events))).is_err() {
                    tracing::error!("the commit hook panicked; events were not published");
                }
            }
            for complete in done {
                complete(Ok(()));
            }
            disk_full
        }
        Err(e) => {
            tracing::error!(error = %e, "commit failed");
            let _ = conn.execute_batch("ROLLBACK");
            for complete in done {
                complete(Err(copy_sqlite(&e, "commit failed")));
            }
            is_full(&e) || disk_full
        }
    }
}

fn open_savepoint(conn: &Connection) -> rusqlite::Result<()> {
    #[cfg(test)]
    if tests::FAIL_NEXT_SAVEPOINT.with(|f| f.replace(false)) {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            Some("injected savepoint failure".into()),
        ));
    }
    conn.execute_batch("SAVEPOINT job")
}

fn is_full(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull)
}

/// Returns up to `VACUUM_STEP_PAGES` free pages to the filesystem and checkpoints, so the
/// file shrinks. Returns whether more is left to do.
fn vacuum_step(conn: &Connection) -> bool {
    let free = match conn.pragma_query_value(None, "freelist_count", |r| r.get::<_, i64>(0)) {
        Ok(n) => n,
        Err(_) => return false,
    };
    if free < VACUUM_MIN_FREE_PAGES {
        return false;
    }
    // The pragma frees one page per row it returns: step it to the end.
    let step = conn
        .prepare(&format!("PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})"))
        .and_then(|mut stmt| {
            let mut rows = stmt.query([])?;
            while rows.next()?.is_some() {}
            Ok(())
        })
        .and_then(|()| conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())));
    match step {
        Ok(()) => {
            tracing::debug!(free_pages = free, "returned free pages to the filesystem");
            free > VACUUM_STEP_PAGES
        }
        Err(e) => {
            tracing::warn!(error = %e, "incremental vacuum failed");
            false
        }
    }
}

/// Most of the database file a scan maps (address space only; SQLite maps at most the file).
const SCAN_MMAP_BYTES: i64 = 1 << 30;

/// Runs `f`, a scan of most of the database (a list of every container), with the database
/// file memory-mapped on `conn`: SQLite reads its pages in place instead of a `pread` and a
/// copy per page, which were half of a 10,000-container list (perf, issue 11). The mapping
/// is dropped after `f`, so the process is charged the mapped pages for the scan only and
/// the page cache is not held twice. Pages still in the WAL are read as before.
pub(crate) fn mapped<R>(conn: &Connection, f: impl FnOnce() -> Result<R>) -> Result<R> {
    conn.pragma_update(None, "mmap_size", SCAN_MMAP_BYTES)?;
    let r = f();
    let unmapped = conn.pragma_update(None, "mmap_size", 0);
    let r = r?;
    unmapped?;
    Ok(r)
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

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::Future;
    use std::sync::atomic::AtomicBool;

    use super::*;

    thread_local! {
        /// Set by a job (on the writer thread): the next job's SAVEPOINT fails.
        pub(super) static FAIL_NEXT_SAVEPOINT: Cell<bool> = const { Cell::new(false) };
    }

    #[test]
    fn a_mapped_scan_maps_the_file_and_unmaps_it_after_even_when_it_fails() {
        let (dir, _store) = open();
        let conn = Connection::open(dir.path().join("meta.db")).expect("a reader");
        let limit = |c: &Connection| {
            c.pragma_query_value(None, "mmap_size", |r| r.get::<_, i64>(0))
                .expect("mmap_size")
        };
        // A build of SQLite without mmap would report 0 inside as well.
        let inside = mapped(&conn, || Ok(limit(&conn))).expect("a mapped read");
        assert_eq!(inside, SCAN_MMAP_BYTES);
        assert_eq!(limit(&conn), 0, "the mapping outlived the scan");
        let failed = mapped(&conn, || -> Result<()> { Err(StoreError::Closed) });
        assert!(matches!(failed, Err(StoreError::Closed)), "{failed:?}");
        assert_eq!(limit(&conn), 0, "a failed scan left the file mapped");
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("meta.db"), Arc::new(|_: &[Event]| {}))
            .expect("open the store");
        (dir, store)
    }

    #[tokio::test]
    async fn the_event_log_is_cut_back_by_bytes_keeping_the_newest_whatever_its_size() {
        let (_dir, store) = open();
        store.set_event_limits(1_000_000, 20_000);
        let big = "x".repeat(1_000);
        for i in 0..200 {
            let body = big.clone();
            store
                .write(move |tx| {
                    tx.emit_untyped("default", "/test", serde_json::json!({"i": i, "b": body}))
                })
                .await
                .expect("write");
            // Never more than the cap plus what one batch added since the last prune.
            let stored = store.read(events::bytes).expect("bytes");
            assert!(
                stored <= 20_000 + 20_000 / 8 + 1_100,
                "{stored} bytes after {i}"
            );
        }
        let (count, last) = store
            .read(|c| Ok((events::count(c)?, events::last_seq(c)?)))
            .expect("count");
        assert!(count < 30, "{count} events of ~1 KB kept under a 20 KB cap");
        assert_eq!(last, 200, "seqs go on");
        // One event over the whole cap: it is the newest, so it stays, alone.
        let huge = "y".repeat(50_000);
        store
            .write(move |tx| tx.emit_untyped("default", "/test", serde_json::json!({"b": huge})))
            .await
            .expect("write");
        let left = store
            .read(|c| events::list_since(c, 0, 1_000))
            .expect("list");
        assert_eq!(left.len(), 1, "only the newest stays");
        assert_eq!(left[0].seq, 201);
    }

    fn add_namespace(tx: &mut Tx<'_>, name: &str) -> Result<()> {
        tx.conn().execute(
            "INSERT INTO namespaces (name, created_at) VALUES (?1, 'now')",
            [name],
        )?;
        Ok(())
    }

    fn namespaces(store: &Store) -> Vec<String> {
        store
            .read(|c| {
                let mut stmt = c.prepare("SELECT name FROM namespaces ORDER BY name")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
            })
            .expect("read")
    }

    /// Queues `futs` while a first job holds the writer, then lets it go: the writer takes
    /// all of them as one batch.
    type Pending<'a> = std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send + 'a>>;

    async fn in_one_batch(store: &Store, futs: &mut [Pending<'_>]) {
        let (entered, wait_entered) = std::sync::mpsc::channel::<()>();
        let (release, wait_release) = std::sync::mpsc::channel::<()>();
        let mut blocker = Box::pin(store.write(move |_| {
            let _ = entered.send(());
            let _ = wait_release.recv();
            Ok(())
        }));
        let _ = tokio::time::timeout(Duration::ZERO, &mut blocker).await;
        wait_entered.recv().expect("the blocker runs");
        for f in futs.iter_mut() {
            // One poll sends the job to the writer's queue.
            let _ = tokio::time::timeout(Duration::ZERO, f).await;
        }
        release.send(()).expect("release");
        blocker.await.expect("the blocker commits");
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_rest_of_its_batch_commits() {
        let (_dir, store) = open();
        let mut jobs: Vec<Pending<'_>> = vec![
            Box::pin(store.write(|tx| add_namespace(tx, "before"))),
            Box::pin(store.write(|tx| -> Result<()> {
                add_namespace(tx, "panicker")?;
                panic!("a bug in a job");
            })),
            Box::pin(store.write(|tx| add_namespace(tx, "after"))),
        ];
        in_one_batch(&store, &mut jobs).await;
        let [before, panicker, after] = jobs.try_into().ok().expect("three");
        before.await.expect("the job before commits");
        let err = panicker.await.expect_err("the panicking job fails");
        assert!(
            matches!(err, StoreError::Panicked(ref m) if m.contains("a bug")),
            "{err}"
        );
        assert_eq!(
            crate::service::Error::from(err).kind(),
            schema::ErrorKind::Internal
        );
        after.await.expect("the job after commits");
        assert_eq!(
            namespaces(&store),
            ["after", "before"],
            "the panicker's row is rolled back"
        );

        // The writer thread lives on.
        store
            .write(|tx| add_namespace(tx, "later"))
            .await
            .expect("a later write");
        assert!(namespaces(&store).contains(&"later".to_owned()));
        store.close();
    }

    #[tokio::test]
    async fn a_failed_savepoint_fails_its_job_without_running_it() {
        let (_dir, store) = open();
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let mut jobs: Vec<Pending<'_>> = vec![
            Box::pin(store.write(|tx| {
                FAIL_NEXT_SAVEPOINT.with(|f| f.set(true));
                add_namespace(tx, "first")
            })),
            Box::pin(store.write(move |tx| {
                flag.store(true, Ordering::SeqCst);
                add_namespace(tx, "never")
            })),
            Box::pin(store.write(|tx| add_namespace(tx, "third"))),
        ];
        in_one_batch(&store, &mut jobs).await;
        let [first, refused, third] = jobs.try_into().ok().expect("three");
        first.await.expect("the first job commits");
        let err = refused
            .await
            .expect_err("the job without a savepoint fails");
        assert!(err.to_string().contains("savepoint"), "{err}");
        assert!(!ran.load(Ordering::SeqCst), "the job did not run");
        third.await.expect("the third job commits");
        assert_eq!(namespaces(&store), ["first", "third"]);
        store.close();
    }

    #[tokio::test]
    async fn mass_deletes_shrink_the_file() {
        let (dir, store) = open();
        let mode: i64 = store
            .read(|c| Ok(c.pragma_query_value(None, "auto_vacuum", |r| r.get(0))?))
            .expect("auto_vacuum");
        assert_eq!(mode, 2, "incremental");
        let blob = "x".repeat(4000);
        store
            .write(move |tx| {
                for i in 0..3000 {
                    tx.conn().execute(
                        "INSERT INTO namespaces (name, labels, created_at) VALUES (?1, ?2, 'now')",
                        rusqlite::params![format!("ns{i}"), blob],
                    )?;
                }
                Ok(())
            })
            .await
            .expect("fill");
        let size = || {
            let db = std::fs::metadata(dir.path().join("meta.db")).map_or(0, |m| m.len());
            let wal = std::fs::metadata(dir.path().join("meta.db-wal")).map_or(0, |m| m.len());
            (db, wal)
        };
        // Let the writer checkpoint what it wrote.
        store
            .write(|tx| {
                Ok(tx
                    .conn()
                    .query_row("PRAGMA wal_checkpoint", [], |_| Ok(()))?)
            })
            .await
            .ok();
        let (full, _) = size();
        assert!(full > 12 << 20, "{full}");
        store
            .write_reclaiming(|tx| {
                tx.conn()
                    .execute("DELETE FROM namespaces WHERE name LIKE 'ns%'", [])?;
                Ok(())
            })
            .await
            .expect("mass delete");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let (db, wal) = size();
            if db < full / 4 {
                eprintln!("meta.db: {full} bytes full, {db} after the delete (wal {wal})");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "meta.db still {db} bytes (was {full}) after the delete"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        store.close();
    }
}
