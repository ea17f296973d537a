//! The exit monitor every task process gets: it waits for the exit the keeper reports for
//! the process's identity, stores it (with its `/tasks/exit` event), then answers waiters,
//! and only then tells the keeper it may forget the exit. Nothing waits on a pid.

use std::sync::Arc;
use std::time::Duration;

use schema::ExitReason;

use super::live::LiveTask;
use super::{Inner, UNKNOWN_EXIT_STATUS};
use crate::keeper::{ExitRecord, ExitWait, Identity, Watched};
use crate::runtime::pidfd;
use crate::store::{self, tasks::Exited};

/// How long an exit waits for its last output to be copied out (terminal and log).
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

/// The stored form of an exit the keeper reaped.
pub(super) fn exited(rec: &ExitRecord) -> Exited {
    Exited {
        status: i64::from(rec.status),
        at: rec.at.clone(),
        reason: if rec.signal.is_some() {
            ExitReason::Signaled
        } else {
            ExitReason::Exited
        },
    }
}

/// An exit nobody could observe.
pub(super) fn unknown(reason: ExitReason) -> Exited {
    Exited {
        status: UNKNOWN_EXIT_STATUS,
        at: store::now(),
        reason,
    }
}

/// Watches process `exec_id` of `task` (identity `who`) until its exit is stored.
pub(super) fn spawn(
    inner: &Arc<Inner>,
    task: &Arc<LiveTask>,
    exec_id: &str,
    who: Identity,
    exit: ExitWait,
) {
    let (inner, task, exec_id) = (Arc::clone(inner), Arc::clone(task), exec_id.to_owned());
    tokio::spawn(async move {
        let exit = match exit.await {
            Ok(rec) => exit_of(&task, &exec_id, &rec),
            Err(_) => {
                tracing::warn!(task = %task.id, exec_id, pid = who.pid,
                    "the keeper died before the process exited; berthd reaps it");
                orphan_exit(&inner, &task, &exec_id, who).await
            }
        };
        drain_output(&task, &exec_id).await;
        // Also after the keeper died: its successor may hold the process's output pipes
        // (see `handover`) and lets them go on this ack.
        if record(&inner, &task, &exec_id, exit).await {
            inner.keeper.ack(who).await;
        }
    });
}

/// How long berthd's reaper may take to reap a process it saw end.
const REAP_GRACE: Duration = Duration::from_secs(2);

/// The exit of `who` once its keeper died. The process was re-parented to berthd (the
/// keeper's parent and a subreaper too) when berthd started that keeper, and berthd's
/// reaper has its real status; else (a keeper started by an earlier berthd, whose orphans
/// went elsewhere) nobody here can learn it and it is recorded `lost`, never a silent 255.
/// An exit the dead keeper had stored comes back from its successor's replay.
pub(super) async fn orphan_exit(
    inner: &Inner,
    task: &LiveTask,
    exec_id: &str,
    who: Identity,
) -> Exited {
    let mut claim = inner.reaper.claim(who.pid, who.start);
    let reaped = tokio::select! {
        Ok(exit) = &mut claim => Some(exit),
        () = wait_gone(who) => tokio::time::timeout(REAP_GRACE, claim).await.ok().and_then(Result::ok),
    };
    if let Some(exit) = reaped {
        let rec = ExitRecord {
            who,
            status: exit.status,
            signal: exit.signal,
            at: humantime::format_rfc3339_nanos(exit.at).to_string(),
        };
        return exit_of(task, exec_id, &rec);
    }
    if let Ok(Watched::Exited(rec)) = inner.keeper.watch(who).await {
        return exit_of(task, exec_id, &rec);
    }
    tracing::warn!(task = %task.id, exec_id, pid = who.pid,
        "the process was not reaped by berthd; its exit status is lost");
    unknown(ExitReason::Lost)
}

/// Waiters read the output once told of the exit: lets the terminal and log copies catch
/// up (bounded: a daemonised grandchild may hold the output open for ever).
pub(super) async fn drain_output(task: &LiveTask, exec_id: &str) {
    let drained = task.process(exec_id, |p| {
        let pty = p.pty.as_mut().and_then(|c| c.output_done.take());
        let log = p.log.as_mut().and_then(|c| c.done.take());
        (pty, log)
    });
    if let Some((pty, log)) = drained {
        let deadline = tokio::time::Instant::now() + OUTPUT_DRAIN;
        for done in [pty, log].into_iter().flatten() {
            let _ = tokio::time::timeout_at(deadline, done).await;
        }
    }
}

/// The stored form of `rec`, `oom` when the init ended with 137 (killed by SIGKILL, or an
/// init such as tini passing its child's death on) while its cgroup counted an OOM kill.
pub(super) fn exit_of(task: &LiveTask, exec_id: &str, rec: &ExitRecord) -> Exited {
    let mut e = exited(rec);
    if exec_id.is_empty() && rec.status == 128 + libc::SIGKILL && oom(task) {
        e.reason = ExitReason::Oom;
    }
    e
}

/// Whether the task's cgroup (its spec's, else berth's default) counted an OOM kill.
fn oom(task: &LiveTask) -> bool {
    let path = std::fs::read(task.bundle.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|s| s["linux"]["cgroupsPath"].as_str().map(str::to_owned))
        .unwrap_or_else(|| super::create::cgroups_path(&task.ns, &task.id));
    // A systemd-style `slice:prefix:name` path is not a directory path.
    !path.contains(':') && crate::runtime::cgroup::oom_killed(&path)
}

/// Resolves once the process `who` names no longer runs.
pub(super) async fn wait_gone(who: Identity) {
    if let Ok(Some(fd)) = pidfd::open_checked(who) {
        let _ = pidfd::exited(fd).await;
    }
}

/// Stores the exit (and `/tasks/exit`), then tells the waiters; false if it could not be
/// stored. Ordered after the process's recorded start by the task lock.
pub(super) async fn record(
    inner: &Arc<Inner>,
    task: &Arc<LiveTask>,
    exec_id: &str,
    exit: Exited,
) -> bool {
    let _order = task.lock.lock().await;
    let (ns, id, exec) = (task.ns.clone(), task.id.clone(), exec_id.to_owned());
    let stored = inner
        .store
        .write(move |tx| store::tasks::set_exited(tx, &ns, &id, &exec, &exit))
        .await;
    match stored {
        Ok(row) => {
            if let Some(info) = super::exit_info(&row) {
                task.process(exec_id, |p| p.exit.send_replace(Some(info)));
            }
            if exec_id.is_empty() {
                // Off every caller's path: DEL takes tens to hundreds of ms.
                let (networks, ns, id) = (inner.networks.clone(), task.ns.clone(), task.id.clone());
                tokio::spawn(async move { networks.detach(&ns, &id).await });
            }
            if row.auto_remove && exec_id.is_empty() {
                let _ = inner.removals.send(super::Removal {
                    namespace: task.ns.clone(),
                    container_id: task.id.clone(),
                    task_created_at: Some(row.created_at.clone()),
                    create_cut_off: false,
                });
            }
            true
        }
        Err(e) => {
            tracing::warn!(task = %task.id, exec_id, error = %e, "exit not recorded");
            false
        }
    }
}
