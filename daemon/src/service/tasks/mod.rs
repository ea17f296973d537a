//! Tasks: running containers with an OCI runtime (runc by default), their exec
//! processes, stdio and terminals, signals, and exit statuses that are never lost.
//!
//! The rules: one task per container; every task process is the keeper's child, known by
//! its identity (pid + start time), never by a bare pid; an exit is written to SQLite (with
//! its `/tasks/exit` event) before any waiter is answered and before the keeper may forget
//! it; a task stays `stopped` with its status until `tasks.delete`; create and delete
//! store their intent before runc runs. The OS work is the `runtime` layer's; this module
//! decides when to do it and what it means. One file per verb (`create`, `start`, `exec`,
//! `delete`), `monitor.rs` stores exits, `recover.rs` reconciles SQLite, the keeper and
//! runc at start-up.

mod create;
mod delete;
mod exec;
mod handover;
mod live;
mod monitor;
mod pty;
mod recover;
pub mod rootfs;
mod signal;
mod start;

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;

use schema::{ExitInfo, Process, TaskKillParams, TaskListParams, TaskStatus};
use serde_json::Value;

use super::logs::Logs;
use super::networks::Networks;
use super::{check_id, Error, Result};
use crate::config::Config;
use crate::filter::{self, Adaptor};
use crate::keeper::{Held, Identity, Keeper};
use crate::runtime::console;
use crate::runtime::reaper::Reaper;
use crate::runtime::runc::{Runc, RuncError};
use crate::store::{self, tasks::ProcessRow, Store};
use live::{LiveTask, Registry};
pub use rootfs::RootfsSource;

/// A container to remove once its `auto_remove` task has ended: the task (by when it was
/// created, so a task started since is never taken for it), or `None` when only the
/// container is left to remove (start-up after a crash).
#[derive(Debug, Clone)]
pub struct Removal {
    pub namespace: String,
    pub container_id: String,
    pub task_created_at: Option<String>,
    /// The `auto_remove` task's create was cut off by a crash (start-up undid it): no
    /// exit was ever stored, and the container goes unless a task exists again.
    pub create_cut_off: bool,
}

/// Most bytes one `tasks.write_stdin` call carries.
const MAX_STDIN_WRITE: usize = 64 << 10;
/// How long `tasks.write_stdin` waits for a process that does not read its input.
const WRITE_STDIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The exit status recorded for a process whose real status cannot be known (the keeper
/// died, or the host restarted); its `exit_reason` says which.
pub const UNKNOWN_EXIT_STATUS: i64 = 255;

/// The task service; cheap to clone.
#[derive(Clone)]
pub struct Tasks {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    reaper: Reaper,
    keeper: Keeper,
    /// berthd's volatile state dir: bundles under `tasks/<ns>/<id>`, runc's root under
    /// `runc/<ns>`.
    state: PathBuf,
    config: Config,
    rootfs: Arc<dyn RootfsSource>,
    logs: Logs,
    live: Registry,
    /// Tasks created with `auto_remove` whose init's exit is stored: their removal (task and
    /// container) is the App's, which owns both services.
    removals: tokio::sync::mpsc::UnboundedSender<Removal>,
    removals_rx: std::sync::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<Removal>>>,
    /// Deleted tasks whose teardown runs in the background.
    teardowns: tokio::sync::watch::Sender<usize>,
    networks: Networks,
}

impl Tasks {
    // Each is a service or OS handle the tasks own a clone of; a builder would only move
    // the same list elsewhere.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Store,
        reaper: Reaper,
        keeper: Keeper,
        state: PathBuf,
        config: Config,
        rootfs: Arc<dyn RootfsSource>,
        logs: Logs,
        networks: Networks,
    ) -> Tasks {
        let (removals, removals_rx) = tokio::sync::mpsc::unbounded_channel();
        Tasks {
            inner: Arc::new(Inner {
                store,
                reaper,
                keeper,
                state,
                config,
                rootfs,
                logs,
                live: Registry::default(),
                removals,
                removals_rx: std::sync::Mutex::new(Some(removals_rx)),
                teardowns: tokio::sync::watch::channel(0).0,
                networks,
            }),
        }
    }

    /// The (namespace, container id) of each `auto_remove` task whose exit is stored, for
    /// the one caller that removes them; `None` after the first call.
    pub fn take_removals(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Removal>> {
        self.inner
            .removals_rx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Deletes the task `r` names if it is still that task and has exited (never one
    /// started since), then says whether the container is to go as well.
    pub async fn auto_remove(&self, r: &Removal) -> Result<bool> {
        let (ns, id) = (r.namespace.as_str(), r.container_id.as_str());
        if r.create_cut_off {
            return Ok(!self
                .inner
                .store
                .read(|c| store::tasks::task_exists(c, ns, id))?);
        }
        if let Some(created) = &r.task_created_at {
            match self.inner.row(ns, id, "") {
                Ok(row) if &row.created_at == created && row.exit_status.is_some() => {
                    match delete::delete(&self.inner, ns, id, false).await {
                        Ok(_) | Err(Error::NotFound(_)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(_) => return Ok(false),
                Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self
            .inner
            .store
            .read(|c| store::tasks::auto_remove_due(c, ns, id))?)
    }

    pub async fn create(&self, p: schema::TaskCreateParams) -> Result<Process> {
        create::create(&self.inner, p).await
    }

    pub async fn start(&self, ns: &str, id: &str, exec_id: &str) -> Result<i64> {
        check(ns, id, exec_id)?;
        if exec_id.is_empty() {
            start::start(&self.inner, ns, id).await
        } else {
            exec::start(&self.inner, ns, id, exec_id).await
        }
    }

    pub async fn exec(&self, p: schema::TaskExecParams) -> Result<()> {
        exec::exec(&self.inner, p).await
    }

    pub async fn delete(&self, ns: &str, id: &str, force: bool) -> Result<ExitInfo> {
        check(ns, id, "")?;
        delete::delete(&self.inner, ns, id, force).await
    }

    pub async fn delete_process(&self, ns: &str, id: &str, exec_id: &str) -> Result<ExitInfo> {
        check(ns, id, exec_id)?;
        if exec_id.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "tasks.delete_process in task \"{id}\" (namespace \"{ns}\") needs an exec_id; \
                 delete the task's init with tasks.delete"
            )));
        }
        delete::delete_process(&self.inner, ns, id, exec_id).await
    }

    /// Resolves once the task of container `id`, if it was deleted, is torn down (its
    /// rootfs unmounted): what removing the container's snapshot waits for.
    pub fn torn_down(
        &self,
        ns: &str,
        id: &str,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        let task = self.inner.live.get(ns, id).filter(|t| t.is_deleted());
        let gone = task.map(|t| t.gone());
        async move {
            if let Some(gone) = gone {
                gone.await;
            }
        }
    }

    /// Waits up to `limit` for the teardowns running in the background (berthd stopping);
    /// what is left is finished at the next start.
    pub async fn settle(&self, limit: std::time::Duration) {
        let mut running = self.inner.teardowns.subscribe();
        if tokio::time::timeout(limit, running.wait_for(|n| *n == 0))
            .await
            .is_err()
        {
            tracing::warn!(
                running = *running.borrow(),
                "task teardowns left to the next start"
            );
        }
    }

    /// Reconciles stored tasks with the keeper and runc after a (re)start; `host_restarted`
    /// says the state dir is new (a reboot wiped it), so nothing in it outlived berthd.
    pub async fn recover(&self, host_restarted: bool) -> Result<()> {
        recover::recover(&self.inner, host_restarted).await
    }

    pub fn get(&self, ns: &str, id: &str, exec_id: &str) -> Result<Process> {
        check(ns, id, exec_id)?;
        let mut process = self.inner.row(ns, id, exec_id)?.to_process();
        if exec_id.is_empty() {
            process.network = self.inner.networks.of(ns, id);
        }
        Ok(process)
    }

    pub async fn list(&self, p: TaskListParams) -> Result<Vec<Process>> {
        let this = self.clone();
        crate::service::scan(&self.inner.store, "listing tasks", move || this.scan(&p)).await
    }

    fn scan(&self, p: &TaskListParams) -> Result<Vec<Process>> {
        check_id("namespace", &p.namespace)?;
        let filter = filter::parse(&p.filters)?;
        let rows = self
            .inner
            .store
            .read(|c| store::tasks::list_tasks(c, &p.namespace))?;
        let mut networks = self.inner.networks.in_namespace(&p.namespace);
        Ok(rows
            .iter()
            .map(ProcessRow::to_process)
            .filter(|p| filter.matches(&ProcessFields(p)))
            .map(|mut process| {
                process.network = networks.remove(&process.container_id);
                process
            })
            .collect())
    }

    pub async fn kill(&self, p: &TaskKillParams) -> Result<()> {
        let (ns, id, exec_id) = (&p.namespace, &p.container_id, &p.exec_id);
        check(ns, id, exec_id)?;
        let signal = signal::parse(p.signal.as_ref())?;
        let row = self.inner.row(ns, id, exec_id)?;
        let finished = || {
            Error::NotFound(format!(
                "{}: process already finished",
                store::tasks::describe(ns, id, exec_id)
            ))
        };
        if row.exit_status.is_some() {
            return Err(finished());
        }
        if !exec_id.is_empty() {
            if row.status == TaskStatus::Created {
                return Err(Error::FailedPrecondition(format!(
                    "{} has not been started",
                    store::tasks::describe(ns, id, exec_id)
                )));
            }
            return match crate::runtime::pidfd::signal(identity(&row), signal) {
                Ok(true) => Ok(()),
                Ok(false) => Err(finished()),
                Err(e) => Err(Error::InvalidArgument(format!(
                    "{}: signal {signal}: {e}",
                    store::tasks::describe(ns, id, exec_id)
                ))),
            };
        }
        let task = self.inner.live_task(ns, id)?;
        match task.runc.kill(id, signal, p.all).await {
            Ok(()) => Ok(()),
            Err(e) => match self.inner.row(ns, id, "")?.exit_status {
                Some(_) => Err(finished()),
                None => Err(runc_error(e)),
            },
        }
    }

    /// Blocks until the process has exited and its status is stored.
    pub async fn wait(&self, ns: &str, id: &str, exec_id: &str) -> Result<ExitInfo> {
        check(ns, id, exec_id)?;
        let row = self.inner.row(ns, id, exec_id)?;
        if let Some(info) = exit_info(&row) {
            return Ok(info);
        }
        let task = self.inner.live_task(ns, id)?;
        let mut rx = task.watch_exit(exec_id);
        // The exit may have been recorded between the read above and the subscription.
        if let Some(info) = exit_info(&self.inner.row(ns, id, exec_id)?) {
            return Ok(info);
        }
        let seen = rx.wait_for(Option::is_some).await.map_err(|_| {
            Error::Unavailable(format!(
                "{} was deleted or berthd is stopping before it exited",
                store::tasks::describe(ns, id, exec_id)
            ))
        })?;
        seen.clone()
            .ok_or_else(|| Error::Internal("exit watch yielded nothing".into()))
    }

    pub fn resize_pty(&self, ns: &str, id: &str, exec_id: &str, w: u16, h: u16) -> Result<()> {
        check(ns, id, exec_id)?;
        let row = self.inner.row(ns, id, exec_id)?;
        let what = store::tasks::describe(ns, id, exec_id);
        if !row.terminal {
            return Err(Error::FailedPrecondition(format!("{what} has no terminal")));
        }
        let task = self.inner.live_task(ns, id)?;
        let master = task.with_process(exec_id, |p| match &p.console {
            Some(master) => Some(Arc::clone(master)),
            None => {
                p.pending_size = Some((w, h));
                None
            }
        });
        match master {
            Some(master) => console::resize(master.as_fd(), w, h)
                .map_err(|e| Error::FailedPrecondition(format!("{what}: {e}"))),
            None => Ok(()),
        }
    }

    /// Writes keystrokes (or any bytes) to a process's terminal, or to its stdin FIFO while
    /// berthd holds it open; waits at most [`WRITE_STDIN_TIMEOUT`] for room.
    pub async fn write_stdin(&self, p: &schema::TaskWriteStdinParams) -> Result<usize> {
        let (ns, id, exec_id) = (&p.namespace, &p.container_id, &p.exec_id);
        check(ns, id, exec_id)?;
        let what = store::tasks::describe(ns, id, exec_id);
        let data = super::decode_base64(&what, &p.data)?;
        if data.len() > MAX_STDIN_WRITE {
            return Err(Error::InvalidArgument(format!(
                "{what}: {} bytes of data; one call takes at most {MAX_STDIN_WRITE}",
                data.len()
            )));
        }
        let row = self.inner.row(ns, id, exec_id)?;
        if row.exit_status.is_some() {
            return Err(Error::FailedPrecondition(format!("{what} has exited")));
        }
        let task = self.inner.live_task(ns, id)?;
        let target = task.process(exec_id, |p| match &p.console {
            Some(master) => master.try_clone().ok(),
            None => p.keepers.as_ref().and_then(|k| k.stdin_writer()),
        });
        let Some(Some(fd)) = target else {
            return Err(Error::FailedPrecondition(format!(
                "{what} has neither a terminal nor an open stdin to write to"
            )));
        };
        let n = data.len();
        tokio::task::spawn_blocking(move || console::write_within(&fd, &data, WRITE_STDIN_TIMEOUT))
            .await
            .map_err(|e| Error::Internal(format!("{what}: {e}")))?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut => {
                    Error::ResourceExhausted(format!("{what} does not read its input: {e}"))
                }
                _ => Error::FailedPrecondition(format!("{what}: writing its input: {e}")),
            })?;
        Ok(n)
    }

    pub async fn close_io(&self, ns: &str, id: &str, exec_id: &str) -> Result<()> {
        check(ns, id, exec_id)?;
        let row = self.inner.row(ns, id, exec_id)?;
        let task = self.inner.live_task(ns, id)?;
        task.process(exec_id, |p| {
            if let Some(k) = p.keepers.as_mut() {
                k.close_stdin();
            }
        });
        if row.exit_status.is_none() && row.pid != 0 {
            let _ = self
                .inner
                .keeper
                .release(identity(&row), Held::StdinWriter)
                .await;
        }
        Ok(())
    }

    pub async fn pause(&self, ns: &str, id: &str, paused: bool) -> Result<()> {
        check(ns, id, "")?;
        let row = self.inner.row(ns, id, "")?;
        let (allowed, want) = if paused {
            (row.status.can_pause(), TaskStatus::Running)
        } else {
            (row.status.can_resume(), TaskStatus::Paused)
        };
        if !allowed || row.exit_status.is_some() {
            return Err(Error::FailedPrecondition(format!(
                "{} is {}, not {}",
                store::tasks::describe(ns, id, ""),
                row.status.wire(),
                want.wire()
            )));
        }
        let task = self.inner.live_task(ns, id)?;
        let res = if paused {
            task.runc.pause(id).await
        } else {
            task.runc.resume(id).await
        };
        res.map_err(runc_error)?;
        let (ns2, id2) = (ns.to_owned(), id.to_owned());
        self.inner
            .store
            .write(move |tx| store::tasks::set_paused(tx, &ns2, &id2, paused))
            .await?;
        Ok(())
    }

    pub async fn pids(&self, ns: &str, id: &str) -> Result<schema::Pids> {
        check(ns, id, "")?;
        self.running_row(ns, id)?;
        let task = self.inner.live_task(ns, id)?;
        let pids = task.runc.ps(id).await.map_err(runc_error)?;
        let processes = pids
            .into_iter()
            .map(|pid| schema::PidInfo { pid: pid.into() })
            .collect();
        Ok(schema::Pids { processes })
    }

    /// cgroup figures as runc reports them (it reads cgroup v1 or v2 alike).
    pub async fn metrics(&self, ns: &str, id: &str) -> Result<schema::Metrics> {
        check(ns, id, "")?;
        self.running_row(ns, id)?;
        let task = self.inner.live_task(ns, id)?;
        let stats = task.runc.stats(id).await.map_err(runc_error)?;
        let d = &stats.data;
        Ok(schema::Metrics {
            container_id: id.to_owned(),
            timestamp: store::now(),
            cgroup: cgroup_version(),
            cpu: figure(d, "cpu")?,
            memory: figure(d, "memory")?,
            pids: figure(d, "pids")?,
        })
    }

    fn running_row(&self, ns: &str, id: &str) -> Result<ProcessRow> {
        let row = self.inner.row(ns, id, "")?;
        if row.exit_status.is_some() {
            return Err(Error::FailedPrecondition(format!(
                "{} is stopped",
                store::tasks::describe(ns, id, "")
            )));
        }
        Ok(row)
    }
}

impl Inner {
    fn row(&self, ns: &str, id: &str, exec_id: &str) -> Result<ProcessRow> {
        Ok(self.store.read(|c| store::tasks::get(c, ns, id, exec_id))?)
    }

    /// The task berthd drives for container `id`. Without one, a container that has no
    /// task row at all is `not_found` (naming the task); only a row that exists while
    /// no live task does (mid-create or mid-delete) is `failed_precondition`.
    fn live_task(&self, ns: &str, id: &str) -> Result<Arc<LiveTask>> {
        if let Some(task) = self.live.get(ns, id).filter(|t| !t.is_deleted()) {
            return Ok(task);
        }
        self.row(ns, id, "")?;
        Err(Error::FailedPrecondition(format!(
            "{} is not managed by this berthd (it is being created or deleted)",
            store::tasks::describe(ns, id, "")
        )))
    }

    fn bundle(&self, ns: &str, id: &str) -> PathBuf {
        self.state.join("tasks").join(ns).join(id)
    }

    /// runc's state dir of namespace `ns`.
    fn runc_root(&self, ns: &str) -> PathBuf {
        self.state.join("runc").join(ns)
    }

    /// Whether runc keeps state for container `id` (it has one to delete).
    fn runc_has(&self, ns: &str, id: &str) -> bool {
        self.runc_root(ns).join(id).is_dir()
    }

    fn runc(&self, ns: &str, runtime: &str, bundle: &std::path::Path) -> Result<Runc> {
        let binary = self.config.runtime_binary(runtime).ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "runtime \"{runtime}\" is not configured (add [runtimes.{runtime}] path = \
                 \"...\" to berthd's config)"
            ))
        })?;
        Ok(Runc::new(binary, self.reaper.clone())
            .keeper(self.keeper.clone())
            .timeout(self.config.runc_timeout())
            .root(self.runc_root(ns))
            .log(bundle.join("log.json"))
            .log_format_json())
    }
}

fn check(ns: &str, id: &str, exec_id: &str) -> Result<()> {
    check_id("namespace", ns)?;
    check_id("container id", id)?;
    if !exec_id.is_empty() {
        check_id("exec id", exec_id)?;
    }
    Ok(())
}

fn exit_info(row: &ProcessRow) -> Option<ExitInfo> {
    Some(ExitInfo {
        pid: row.pid,
        exit_status: row.exit_status?,
        exited_at: row.exited_at.clone()?,
        exit_reason: row.exit_reason,
    })
}

/// The identity a row records for its process.
fn identity(row: &ProcessRow) -> Identity {
    Identity {
        pid: row.pid as i32,
        start: row.start_time,
    }
}

/// A runc failure as a domain error: refusals in the current state are preconditions; a
/// runc that hung, or a keeper that cannot be reached, leaves berthd unable to serve.
fn runc_error(e: RuncError) -> Error {
    match e {
        RuncError::CommandFailed { .. } => {
            let message = e.to_string();
            match super::ExecFailure::from_runc(&message) {
                Some(reason) => Error::CannotExec { message, reason },
                None => Error::FailedPrecondition(message),
            }
        }
        RuncError::Timeout { .. } | RuncError::Keeper { .. } => Error::Unavailable(e.to_string()),
        other => Error::Internal(other.to_string()),
    }
}

/// One of `runc events --stats`' figures. runc omits empty ones, which are zeros; a figure
/// of another shape is a runc berth does not know.
fn figure<T: serde::de::DeserializeOwned + Default>(data: &Value, key: &str) -> Result<T> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(T::default()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| Error::Internal(format!("runc events --stats: {key}: {e}"))),
    }
}

fn cgroup_version() -> u8 {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        2
    } else {
        1
    }
}

/// Filter fields of a task: `id`/`container_id`, `exec_id`, `status`, `pid`.
struct ProcessFields<'a>(&'a Process);

impl Adaptor for ProcessFields<'_> {
    fn field(&self, path: &[String]) -> Option<std::borrow::Cow<'_, str>> {
        let p = self.0;
        let v: std::borrow::Cow<'_, str> = match path {
            [f] if f == "id" || f == "container_id" => p.container_id.as_str().into(),
            [f] if f == "exec_id" => p.exec_id.as_str().into(),
            [f] if f == "status" => p.status.as_str().into(),
            [f] if f == "pid" => p.pid.to_string().into(),
            [f] if f == "exit_status" => p.exit_status?.to_string().into(),
            _ => return None,
        };
        (!v.is_empty()).then_some(v)
    }
}
