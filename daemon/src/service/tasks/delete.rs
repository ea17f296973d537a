//! Tearing tasks down: `tasks.delete` (force kills and waits), `tasks.delete_process`,
//! and removing a bundle (unmount the rootfs, then only the files berth made).
//!
//! `tasks.delete` answers once the task is deleted as clients see it: its exit stored as
//! the container's last, `/tasks/delete` recorded, the row left as the `deleting` intent.
//! `runc delete`, the cgroup, unmounts and the bundle ([`finish`]) follow in the
//! background, off the critical path of every `run --rm` (they were half of it). A create
//! of the same id waits for them; a crash in the middle leaves the intent, which start-up
//! finishes before it serves. A runc that has no such container (a host restart wiped its
//! state) is not asked to delete it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use schema::{ExitInfo, TaskStatus};

use super::{exit_info, Inner};
use crate::runtime::mount;
use crate::service::{blocking, Error, Result};
use crate::store;

/// How long a forced delete waits for the killed task to exit.
const KILL_WAIT: Duration = Duration::from_secs(10);

pub(super) async fn delete(
    inner: &Arc<Inner>,
    ns: &str,
    id: &str,
    force: bool,
) -> Result<ExitInfo> {
    let row = inner.row(ns, id, "")?;
    let what = store::tasks::describe(ns, id, "");
    if row.exit_status.is_none() {
        if !row.status.can_delete(force) {
            return Err(Error::FailedPrecondition(format!(
                "{what} is {}; kill it first or delete with force",
                row.status.wire()
            )));
        }
        let task = inner.live_task(ns, id)?;
        let mut exited = task.watch_exit("");
        if row.status == TaskStatus::Paused {
            let _ = task.runc.resume(id).await;
        }
        if let Err(e) = task.runc.kill(id, libc::SIGKILL, true).await {
            tracing::debug!(task = id, error = %e, "kill before delete");
        }
        let waited = tokio::time::timeout(KILL_WAIT, exited.wait_for(Option::is_some)).await;
        if !matches!(waited, Ok(Ok(_))) {
            return Err(Error::Unavailable(format!(
                "{what} did not exit within {KILL_WAIT:?} of SIGKILL"
            )));
        }
    }
    let task = inner.live.get(ns, id);
    // Flagged first, so that a create of the same id, from the moment the row says
    // `deleting`, waits for the teardown instead of failing.
    if let Some(t) = &task {
        t.set_deleted(true);
    }
    let (ns2, id2) = (ns.to_owned(), id.to_owned());
    // Deletes must work on a full disk: they may use the room berthd keeps in reserve.
    let marked = inner
        .store
        .write_reclaiming(move |tx| store::tasks::mark_deleted(tx, &ns2, &id2))
        .await;
    let row = match marked {
        Ok(row) => row,
        Err(e) => {
            // Not found: a concurrent delete marked it first, and its teardown runs.
            if let Some(t) = task.filter(|_| !matches!(e, store::StoreError::NotFound(_))) {
                t.set_deleted(false);
            }
            return Err(e.into());
        }
    };
    // Marked deleted: its teardown runs whatever is answered.
    let exit =
        exit_info(&row).ok_or_else(|| Error::Internal(format!("{what}: deleted without an exit")));
    inner.teardowns.send_modify(|n| *n += 1);
    let (inner, ns, id, runtime) = (Arc::clone(inner), ns.to_owned(), id.to_owned(), row.runtime);
    tokio::spawn(async move {
        if let Err(e) = teardown(&inner, &ns, &id, &runtime).await {
            // The intent stays: a create of the same id, or the next start-up, retries.
            tracing::warn!(namespace = %ns, task = %id, error = %e, "task teardown failed");
        }
        inner.live.remove(&ns, &id);
        inner.teardowns.send_modify(|n| *n -= 1);
    });
    exit
}

/// Finishes a deleted task ([`finish`]) and removes its `deleting` row.
pub(super) async fn teardown(inner: &Inner, ns: &str, id: &str, runtime: &str) -> Result<()> {
    finish(inner, ns, id, runtime).await?;
    let (ns2, id2) = (ns.to_owned(), id.to_owned());
    inner
        .store
        .write_reclaiming(move |tx| {
            store::tasks::remove_intent(tx, &ns2, &id2, TaskStatus::Deleting)
        })
        .await?;
    Ok(())
}

/// Removes what runc and the bundle hold of task `id`: `runc delete --force` (which kills
/// what still runs and removes the cgroup) if runc has the container, then the bundle.
/// Used by `tasks.delete`, by start-up for `deleting` rows, and to undo a cut-off create.
pub(super) async fn finish(inner: &Inner, ns: &str, id: &str, runtime: &str) -> Result<()> {
    let bundle = inner.bundle(ns, id);
    let what = store::tasks::describe(ns, id, "");
    let task = inner.live.get(ns, id);
    let _order = match &task {
        Some(t) => Some(t.lock.lock().await),
        None => None,
    };
    if inner.runc_has(ns, id) {
        // runc writes its log into the bundle, which a crash may have removed already.
        let b = bundle.clone();
        blocking("recreating the bundle", move || {
            std::fs::create_dir_all(&b)
                .map_err(|e| Error::Internal(format!("{what}: recreating the bundle: {e}")))
        })
        .await?;
        let runc = match &task {
            Some(t) => t.runc.clone(),
            None => inner.runc(ns, runtime, &bundle)?,
        };
        runc.delete(id, true).await.map_err(super::runc_error)?;
    }
    if let Some(task) = &task {
        task.clear();
    }
    // Waits for a DEL the exit started, or runs it (a crash took that one).
    inner.networks.detach(ns, id).await;
    // What runc cannot remove because it no longer knows the container (a host restart
    // wiped its state, a create died half-way): berth's own cgroup for the task.
    let cgroup = super::create::cgroups_path(ns, id);
    let (ns2, id2) = (ns.to_owned(), id.to_owned());
    blocking("removing the bundle", move || {
        if let Err(e) = crate::runtime::cgroup::sweep(&cgroup) {
            tracing::warn!(namespace = ns2, task = id2, error = %e, "task cgroup not removed");
        }
        crate::runtime::cgroup::remove_empty_parents(&cgroup);
        remove_bundle(&bundle)
    })
    .await
}

pub(super) async fn delete_process(
    inner: &Arc<Inner>,
    ns: &str,
    id: &str,
    exec_id: &str,
) -> Result<ExitInfo> {
    let row = inner.row(ns, id, exec_id)?;
    let what = store::tasks::describe(ns, id, exec_id);
    if row.exit_status.is_none() && row.status != TaskStatus::Created {
        return Err(Error::FailedPrecondition(format!(
            "{what} is {}; kill it first",
            row.status.wire()
        )));
    }
    let (ns2, id2, exec2) = (ns.to_owned(), id.to_owned(), exec_id.to_owned());
    let row = inner
        .store
        .write_reclaiming(move |tx| store::tasks::delete_exec(tx, &ns2, &id2, &exec2))
        .await?;
    if let Some(task) = inner.live.get(ns, id) {
        task.remove_process(exec_id);
        let execs = task.bundle.join("execs");
        let _ = std::fs::remove_file(execs.join(format!("{exec_id}.json")));
        let _ = std::fs::remove_file(execs.join(format!("{exec_id}.pid")));
    }
    Ok(ExitInfo {
        pid: row.pid,
        exit_status: row.exit_status.unwrap_or(super::UNKNOWN_EXIT_STATUS),
        exited_at: row.exited_at.unwrap_or_else(store::now),
        exit_reason: row.exit_reason,
    })
}

/// Unmounts the bundle's rootfs and removes the bundle. The rootfs directory is removed
/// only once empty, so a mount that would not go away never loses its files.
pub(super) fn remove_bundle(bundle: &Path) -> Result<()> {
    if !bundle.exists() {
        return Ok(());
    }
    let rootfs = bundle.join("rootfs");
    mount::unmount_all(&rootfs).map_err(|e| Error::Internal(e.to_string()))?;
    match std::fs::remove_dir(&rootfs) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::Internal(format!(
                "bundle rootfs {} still holds files after unmount: {e}",
                rootfs.display()
            )))
        }
    }
    std::fs::remove_dir_all(bundle)
        .map_err(|e| Error::Internal(format!("removing bundle {}: {e}", bundle.display())))
}
