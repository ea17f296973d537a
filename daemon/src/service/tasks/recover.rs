//! Start-up reconciliation, in both directions, before berthd serves:
//!
//! - **Rows -> processes.** Each process that had not exited is asked of the keeper by
//!   its identity: an exit the keeper stored while berthd was down is recorded with its
//!   real status and time; a process still running is re-adopted (its exit watched, its
//!   terminal master and FIFO ends taken back from the keeper, its status taken from
//!   `runc state`). One the keeper does not know was lost with a keeper that died: it is
//!   recorded with reason `lost` once it is gone. After a host restart (a new state dir)
//!   nothing survived: every such process is recorded with reason `host_restarted`.
//! - **Intents.** A `creating` row is undone (runc container, mounts, cgroup, bundle,
//!   row); a `deleting` row is finished.
//! - **Leftovers -> rows.** A runc container, bundle or task cgroup with no row is removed
//!   (processes killed, rootfs unmounted) before anything could delete the snapshot it
//!   mounts.

use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use schema::{ExitReason, TaskStatus};

use super::live::LiveTask;
use super::{create, delete, handover, identity, monitor, Inner};
use crate::keeper::{ExitRecord, Held, Identity, Watched};
use crate::runtime::logfile::{self, Stream};
use crate::runtime::runc::ContainerStatus;
use crate::runtime::stdio;
use crate::service::{dir_names, Error, Result};
use crate::store::{self, tasks::ProcessRow};

/// How long start-up waits for runc invocations a crashed berthd left running.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);

pub(super) async fn recover(inner: &Arc<Inner>, host_restarted: bool) -> Result<()> {
    // The layout exists from the start (bundles, runc's roots), so what scans it can tell
    // an empty dir from a moved one.
    for dir in ["tasks", "runc"] {
        std::fs::create_dir_all(inner.state.join(dir))
            .map_err(|e| Error::failure(format!("creating {dir} under the state dir"), &e))?;
    }
    // Taken before the keeper is reached: a death during recovery is acted on after it.
    let deaths = inner.keeper.deaths();
    let stored = inner
        .keeper
        .connect()
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    if let Err(e) = inner.keeper.settle(SETTLE_LIMIT).await {
        tracing::warn!(error = %e, "runc invocations of the previous berthd still run");
    }
    let mut stored: HashMap<Identity, ExitRecord> =
        stored.into_iter().map(|e| (e.who, e)).collect();
    let rows = inner.store.read(store::tasks::list_all)?;
    let mut kept: HashSet<(String, String)> = HashSet::new();
    let mut counts = (0usize, 0usize, 0usize);
    for row in rows.iter().filter(|r| r.exec_id.is_empty()) {
        let (ns, id) = (row.namespace.as_str(), row.container_id.as_str());
        match row.status {
            TaskStatus::Creating => {
                tracing::info!(
                    namespace = ns,
                    task = id,
                    "undoing a create cut off by a crash"
                );
                delete::finish(inner, ns, id, &row.runtime).await?;
                let (ns2, id2) = (ns.to_owned(), id.to_owned());
                inner
                    .store
                    .write(move |tx| {
                        store::tasks::remove_intent(tx, &ns2, &id2, TaskStatus::Creating)
                    })
                    .await?;
                if row.auto_remove {
                    // `run --rm -d`: the intent to remove came with the create, and nobody
                    // is left to act on it but start-up.
                    let _ = inner.removals.send(super::Removal {
                        namespace: ns.to_owned(),
                        container_id: id.to_owned(),
                        task_created_at: None,
                        create_cut_off: true,
                    });
                }
                counts.1 += 1;
                continue;
            }
            TaskStatus::Deleting => {
                tracing::info!(
                    namespace = ns,
                    task = id,
                    "finishing a delete cut off by a crash"
                );
                delete::teardown(inner, ns, id, &row.runtime).await?;
                counts.2 += 1;
                continue;
            }
            _ => {}
        }
        kept.insert((ns.to_owned(), id.to_owned()));
        let bundle = inner.bundle(ns, id);
        let runc = inner.runc(ns, &row.runtime, &bundle)?;
        let task = Arc::new(LiveTask::new(ns, id, bundle, runc));
        inner.live.insert_new(Arc::clone(&task));
        counts.0 += 1;
        let execs = rows
            .iter()
            .filter(|r| !r.exec_id.is_empty() && r.namespace == ns && r.container_id == id);
        if row.auto_remove && row.exit_status.is_some() {
            // Its exit was stored before the crash, its removal not done.
            let _ = inner.removals.send(super::Removal {
                namespace: ns.to_owned(),
                container_id: id.to_owned(),
                task_created_at: Some(row.created_at.clone()),
                create_cut_off: false,
            });
        }
        for process in std::iter::once(row).chain(execs) {
            task.with_process(&process.exec_id, |_| ());
            if process.exit_status.is_some() || process.pid == 0 {
                continue;
            }
            adopt(inner, &task, process, host_restarted, &mut stored).await?;
        }
    }
    for (who, _) in stored {
        // Exits of processes no row names (a create undone above): nothing to record.
        inner.keeper.ack(who).await;
    }
    sweep_leftovers(inner, &kept).await;
    // Addresses and ports of tasks that no longer run (a crash, a reboot) go back.
    let running: HashSet<(String, String)> = inner
        .store
        .read(store::tasks::list_all)?
        .into_iter()
        .filter(|r| r.exec_id.is_empty() && r.exit_status.is_none() && r.pid != 0)
        .map(|r| (r.namespace, r.container_id))
        .collect();
    inner.networks.sweep(&running).await;
    if counts != (0, 0, 0) {
        tracing::info!(
            tasks = counts.0,
            creates_undone = counts.1,
            deletes_finished = counts.2,
            "reconciled tasks with the keeper and runc"
        );
    }
    // Containers whose auto_remove task was deleted but which a crash kept.
    for (namespace, container_id) in inner.store.read(store::tasks::auto_removals_due)? {
        let _ = inner.removals.send(super::Removal {
            namespace,
            container_id,
            task_created_at: None,
            create_cut_off: false,
        });
    }
    if let Some(orphans) = inner.keeper.orphans() {
        tokio::spawn(record_orphans(Arc::clone(inner), orphans));
    }
    handover::start(inner, deaths);
    Ok(())
}

/// Records the exit of `process`, or watches it again if it still runs.
async fn adopt(
    inner: &Arc<Inner>,
    task: &Arc<LiveTask>,
    process: &ProcessRow,
    host_restarted: bool,
    stored: &mut HashMap<Identity, ExitRecord>,
) -> Result<()> {
    let exec_id = process.exec_id.as_str();
    let who = identity(process);
    if host_restarted || process.start_time == 0 {
        let reason = if host_restarted {
            ExitReason::HostRestarted
        } else {
            ExitReason::Lost
        };
        monitor::record(inner, task, exec_id, monitor::unknown(reason)).await;
        return Ok(());
    }
    if let Some(rec) = stored.remove(&who) {
        tracing::info!(task = %task.id, exec_id, status = rec.status,
            "recording an exit the keeper kept while berthd was down");
        record_late_exit(inner, task, process, who, &rec).await;
        return Ok(());
    }
    let watched = inner
        .keeper
        .watch(who)
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    match watched {
        Watched::Exited(rec) => record_late_exit(inner, task, process, who, &rec).await,
        Watched::Alive(exit) => {
            if exec_id.is_empty() {
                sync_status(inner, task, process).await?;
            }
            restore_stdio(inner, task, process, who).await;
            monitor::spawn(inner, task, exec_id, who, exit);
        }
        Watched::Unknown => {
            // Not the keeper's child: the keeper that parented it died, and its orphans went
            // to a berthd that is gone too. Its status is gone; record that once the process
            // is gone too. Its output goes on: the keeper may hold its pipes (`handover`).
            tracing::warn!(task = %task.id, exec_id, pid = who.pid,
                "the keeper does not parent this process; its exit status will be lost");
            restore_stdio(inner, task, process, who).await;
            let (inner, task, exec_id) = (Arc::clone(inner), Arc::clone(task), exec_id.to_owned());
            tokio::spawn(async move {
                monitor::wait_gone(who).await;
                monitor::drain_output(&task, &exec_id).await;
                let lost = monitor::unknown(ExitReason::Lost);
                if monitor::record(&inner, &task, &exec_id, lost).await {
                    inner.keeper.ack(who).await;
                }
            });
        }
    }
    Ok(())
}

/// An exit that happened while berthd was down: what the process wrote last still sits in
/// the pipes the keeper kept, so it is logged before the exit is stored and acknowledged
/// (the ack lets the keeper close them).
async fn record_late_exit(
    inner: &Arc<Inner>,
    task: &Arc<LiveTask>,
    process: &ProcessRow,
    who: Identity,
    rec: &ExitRecord,
) {
    let exec_id = process.exec_id.as_str();
    if !process.terminal {
        restore_stdio(inner, task, process, who).await;
        monitor::drain_output(task, exec_id).await;
    }
    let exit = monitor::exit_of(task, exec_id, rec);
    if monitor::record(inner, task, exec_id, exit).await {
        inner.keeper.ack(who).await;
    }
}

/// A task whose start or pause was cut off takes its status from `runc state`.
async fn sync_status(inner: &Inner, task: &LiveTask, row: &ProcessRow) -> Result<()> {
    let Ok(state) = task.runc.state(&task.id).await else {
        return Ok(());
    };
    let now = match state.status {
        ContainerStatus::Created => TaskStatus::Created,
        ContainerStatus::Running => TaskStatus::Running,
        ContainerStatus::Paused => TaskStatus::Paused,
        _ => return Ok(()),
    };
    if now != row.status {
        tracing::info!(task = %task.id, was = row.status.as_str(), now = now.as_str(),
            "status taken from runc");
        let (ns, id) = (task.ns.clone(), task.id.clone());
        inner
            .store
            .write(move |tx| store::tasks::set_status(tx, &ns, &id, "", now))
            .await?;
    }
    Ok(())
}

/// Takes back the terminal master the keeper held and copies it to the client's FIFOs
/// (if the client still has them) or the log again; FIFO ends stay with the keeper. A
/// logged output's pipe reader comes back from the keeper to a new log copy.
async fn restore_stdio(inner: &Inner, task: &LiveTask, row: &ProcessRow, who: Identity) {
    let logged = row.exec_id.is_empty() && (row.stdout.is_empty() || row.stderr.is_empty());
    if !row.terminal && !logged {
        return;
    }
    let Ok(held) = inner.keeper.fds(who).await else {
        return;
    };
    if !row.terminal {
        // berthd keeps duplicates too, for a successor of a keeper that dies (`handover`).
        let dups = held
            .iter()
            .filter_map(|(h, fd)| fd.try_clone().ok().map(|d| (*h, d)))
            .collect();
        task.with_process(&row.exec_id, |p| {
            p.keepers = Some(stdio::StdioKeepers::from_held(dups));
        });
        let sources: Vec<_> = held
            .into_iter()
            .filter_map(|(h, fd)| match h {
                Held::StdoutReader if row.stdout.is_empty() => Some((Stream::Stdout, fd)),
                Held::StderrReader if row.stderr.is_empty() => Some((Stream::Stderr, fd)),
                _ => None,
            })
            .collect();
        restart_log(inner, task, sources);
        return;
    }
    let Some((_, master)) = held.into_iter().find(|(h, _)| *h == Held::PtyMaster) else {
        return;
    };
    if logged && row.stdout.is_empty() {
        let pipe = logfile::pipe();
        match pipe {
            Ok((reader, writer)) => {
                restart_log(inner, task, vec![(Stream::Stdout, reader)]);
                if let Err(e) = create::attach_pty(task, "", master, None, writer) {
                    tracing::warn!(task = %task.id, error = %e, "terminal not re-attached");
                }
            }
            Err(e) => tracing::warn!(task = %task.id, error = %e, "terminal not re-attached"),
        }
        return;
    }
    match stdio::open(&row.stdin, &row.stdout, &row.stderr, false) {
        Ok(opened) => {
            let stdin = (!row.stdin.is_empty())
                .then_some(opened.process.stdin)
                .flatten();
            let Some(stdout) = opened.process.stdout else {
                return;
            };
            if let Err(e) = create::attach_pty(task, &row.exec_id, master, stdin, stdout) {
                tracing::warn!(task = %task.id, error = %e, "terminal not re-attached");
            }
            task.with_process(&row.exec_id, |p| p.keepers = Some(opened.keepers));
        }
        Err(e) => {
            tracing::info!(task = %task.id, error = %e, "the terminal's client is gone");
            let master = Arc::new(master);
            task.with_process(&row.exec_id, |p| p.console = Some(master));
        }
    }
}

/// Copies a running task's output into its log again.
fn restart_log(inner: &Inner, task: &LiveTask, sources: Vec<(Stream, OwnedFd)>) {
    if sources.is_empty() {
        return;
    }
    match inner.logs.start(&task.ns, &task.id, sources) {
        Ok(copier) => task.with_process("", |p| p.log = Some(copier)),
        Err(e) => tracing::warn!(task = %task.id, error = %e, "the task's log is not written"),
    }
}

/// Removes runc containers and bundles (with their task cgroups) that no kept row owns.
/// Only what this state dir names: cgroups are host-wide, and another berthd's tasks
/// live beside ours under /berth/<ns>.
async fn sweep_leftovers(inner: &Inner, kept: &HashSet<(String, String)>) {
    let mut leftovers: HashSet<(String, String)> = HashSet::new();
    for base in [inner.state.join("runc"), inner.state.join("tasks")] {
        for ns in dir_names(&base) {
            for id in dir_names(&base.join(&ns)) {
                leftovers.insert((ns.clone(), id));
            }
        }
    }
    for (ns, id) in leftovers.difference(kept) {
        if super::check(ns, id, "").is_err() {
            continue;
        }
        tracing::info!(namespace = %ns, task = %id, "removing a runc container, bundle or cgroup no task owns");
        if let Err(e) = delete::finish(inner, ns, id, "runc").await {
            tracing::warn!(namespace = %ns, task = %id, error = %e, "leftover not removed");
        }
    }
}

/// Exits nobody waited for: a keeper restarted after dying replays what it stored.
async fn record_orphans(
    inner: Arc<Inner>,
    mut orphans: tokio::sync::mpsc::UnboundedReceiver<ExitRecord>,
) {
    while let Some(rec) = orphans.recv().await {
        let found = inner
            .store
            .read(|c| store::tasks::find_running(c, i64::from(rec.who.pid), rec.who.start));
        let stored = match found {
            Ok(Some(row)) => match inner.live.get(&row.namespace, &row.container_id) {
                Some(task) => {
                    monitor::record(&inner, &task, &row.exec_id, monitor::exited(&rec)).await
                }
                None => false,
            },
            Ok(None) => true,
            Err(e) => {
                tracing::warn!(error = %e, "looking up an orphaned exit");
                false
            }
        };
        if stored {
            inner.keeper.ack(rec.who).await;
        }
    }
}
