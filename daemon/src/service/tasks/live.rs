//! What berthd holds in memory for tasks it runs: per process the exit watch that
//! waiters subscribe to, the stdio FIFO keepers, the pty master and its copy threads.
//! SQLite holds the truth about statuses; this holds the open files.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use schema::ExitInfo;
use tokio::sync::watch;

use super::pty::PtyCopy;
use crate::runtime::logfile::Copier;
use crate::runtime::runc::Runc;
use crate::runtime::stdio::{StdioKeepers, TaskStdio};

pub type Key = (String, String);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One task berthd knows is not deleted.
pub struct LiveTask {
    pub ns: String,
    pub id: String,
    pub bundle: PathBuf,
    pub runc: Runc,
    /// Orders a process's recorded start before its recorded exit, and serialises
    /// create/start/delete of one task.
    pub lock: tokio::sync::Mutex<()>,
    procs: Mutex<HashMap<String, LiveProcess>>,
    /// Deleted as clients see it; its teardown (runc, mounts, bundle) runs in the
    /// background, and a task of the same id waits for [`LiveTask::gone`].
    deleted: AtomicBool,
    /// Set once the task has left the registry.
    gone: watch::Sender<bool>,
}

/// One process of a live task.
pub struct LiveProcess {
    pub exit: watch::Sender<Option<ExitInfo>>,
    pub keepers: Option<StdioKeepers>,
    pub console: Option<Arc<OwnedFd>>,
    /// A size asked for before the pty existed (an exec not yet started).
    pub pending_size: Option<(u16, u16)>,
    pub pty: Option<PtyCopy>,
    /// An exec process's stdio, opened at `tasks.exec` and handed to runc at start.
    pub stdio: Option<TaskStdio>,
    /// The copy of the init's output into the container's log.
    pub log: Option<Copier>,
}

impl LiveProcess {
    pub fn new() -> LiveProcess {
        LiveProcess {
            exit: watch::channel(None).0,
            keepers: None,
            console: None,
            pending_size: None,
            pty: None,
            stdio: None,
            log: None,
        }
    }
}

impl LiveTask {
    pub fn new(ns: &str, id: &str, bundle: PathBuf, runc: Runc) -> LiveTask {
        LiveTask {
            ns: ns.to_owned(),
            id: id.to_owned(),
            bundle,
            runc,
            lock: tokio::sync::Mutex::new(()),
            procs: Mutex::new(HashMap::new()),
            deleted: AtomicBool::new(false),
            gone: watch::channel(false).0,
        }
    }

    pub fn set_deleted(&self, deleted: bool) {
        self.deleted.store(deleted, Ordering::SeqCst);
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::SeqCst)
    }

    /// Resolves once the task has left the registry.
    pub fn gone(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut gone = self.gone.subscribe();
        async move {
            // An error means the task was dropped, which it is only once gone.
            let _ = gone.wait_for(|g| *g).await;
        }
    }

    /// Runs `f` on process `exec_id`'s entry, creating it if missing.
    pub fn with_process<R>(&self, exec_id: &str, f: impl FnOnce(&mut LiveProcess) -> R) -> R {
        let mut procs = lock(&self.procs);
        f(procs
            .entry(exec_id.to_owned())
            .or_insert_with(LiveProcess::new))
    }

    /// Runs `f` on process `exec_id`'s entry if there is one.
    pub fn process<R>(&self, exec_id: &str, f: impl FnOnce(&mut LiveProcess) -> R) -> Option<R> {
        lock(&self.procs).get_mut(exec_id).map(f)
    }

    /// A receiver of process `exec_id`'s exit.
    pub fn watch_exit(&self, exec_id: &str) -> watch::Receiver<Option<ExitInfo>> {
        self.with_process(exec_id, |p| p.exit.subscribe())
    }

    /// Forgets process `exec_id`, closing its files.
    pub fn remove_process(&self, exec_id: &str) {
        let gone = lock(&self.procs).remove(exec_id);
        drop(gone);
    }

    /// Forgets every process, closing their files.
    pub fn clear(&self) {
        let gone: Vec<_> = lock(&self.procs).drain().collect();
        drop(gone);
    }
}

/// Every live task by (namespace, container id).
#[derive(Default)]
pub struct Registry {
    tasks: Mutex<HashMap<Key, Arc<LiveTask>>>,
}

impl Registry {
    pub fn get(&self, ns: &str, id: &str) -> Option<Arc<LiveTask>> {
        lock(&self.tasks)
            .get(&(ns.to_owned(), id.to_owned()))
            .cloned()
    }

    /// Inserts `task` unless one is registered under its key already.
    pub fn insert_new(&self, task: Arc<LiveTask>) -> bool {
        let mut tasks = lock(&self.tasks);
        let key = (task.ns.clone(), task.id.clone());
        if tasks.contains_key(&key) {
            return false;
        }
        tasks.insert(key, task);
        true
    }

    pub fn remove(&self, ns: &str, id: &str) -> Option<Arc<LiveTask>> {
        let gone = lock(&self.tasks).remove(&(ns.to_owned(), id.to_owned()));
        if let Some(task) = &gone {
            task.gone.send_replace(true);
        }
        gone
    }
}
