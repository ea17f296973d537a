//! Start-up reconciliation: tasks stored in SQLite against what runc and /proc say now.
//!
//! A process that died while berthd was down is recorded `stopped` with exit status
//! [`UNKNOWN_EXIT_STATUS`] (255) and `exited_at` = the time of reconciliation: its real
//! status went to whichever process reaped it. A process still alive is no longer
//! berthd's child, so it is watched through a pidfd and, when it exits, also recorded
//! with 255. Its stdio FIFOs and pty were berthd's and are gone with the old daemon.

use std::sync::Arc;

use super::live::LiveTask;
use super::{create::record_exit, Inner, UNKNOWN_EXIT_STATUS};
use crate::runtime::pidfd;
use crate::runtime::runc::ContainerStatus;
use crate::service::Result;
use crate::store::{self, tasks::ProcessRow};

pub(super) async fn recover(inner: &Arc<Inner>) -> Result<()> {
    let rows = inner.store.read(store::tasks::list_all)?;
    let mut recovered = 0usize;
    for row in rows.iter().filter(|r| r.exec_id.is_empty()) {
        let bundle = inner.bundle(&row.namespace, &row.container_id);
        let runc = match inner.runc(&row.namespace, &row.runtime, &bundle) {
            Ok(runc) => runc,
            Err(e) => {
                tracing::warn!(task = %row.container_id, error = %e, "cannot recover task");
                continue;
            }
        };
        let task = Arc::new(LiveTask::new(
            &row.namespace,
            &row.container_id,
            bundle,
            runc,
        ));
        inner.live.insert_new(Arc::clone(&task));
        recovered += 1;
        let alive = if row.exit_status.is_some() {
            false
        } else {
            match task.runc.state(&row.container_id).await {
                Ok(s) => {
                    s.pid as i64 == row.pid
                        && matches!(
                            s.status,
                            ContainerStatus::Created
                                | ContainerStatus::Running
                                | ContainerStatus::Paused
                        )
                }
                Err(_) => false,
            }
        };
        watch_or_close(inner, &task, row, alive).await;
        for exec in rows.iter().filter(|r| {
            !r.exec_id.is_empty()
                && r.container_id == row.container_id
                && r.namespace == row.namespace
        }) {
            let alive = exec.exit_status.is_none() && exec.status != "created" && alive;
            if exec.status == "created" && exec.exit_status.is_none() {
                task.with_process(&exec.exec_id, |_| ());
                continue;
            }
            watch_or_close(inner, &task, exec, alive).await;
        }
    }
    if recovered > 0 {
        tracing::info!(tasks = recovered, "reconciled tasks with the runtime");
    }
    Ok(())
}

/// Records the exit of a dead process now, or watches a live one through a pidfd.
async fn watch_or_close(inner: &Arc<Inner>, task: &Arc<LiveTask>, row: &ProcessRow, alive: bool) {
    task.with_process(&row.exec_id, |_| ());
    if row.exit_status.is_some() {
        return;
    }
    let fd = if alive {
        pidfd::open(row.pid as i32).ok().flatten()
    } else {
        None
    };
    let Some(fd) = fd else {
        tracing::info!(task = %row.container_id, exec_id = %row.exec_id, pid = row.pid,
            "process exited while berthd was down; recording status {UNKNOWN_EXIT_STATUS}");
        record_exit(
            inner,
            task,
            &row.exec_id,
            UNKNOWN_EXIT_STATUS,
            &store::now(),
        )
        .await;
        return;
    };
    let (inner, task, exec_id) = (Arc::clone(inner), Arc::clone(task), row.exec_id.clone());
    tokio::spawn(async move {
        if let Err(e) = pidfd::exited(fd).await {
            tracing::warn!(error = %e, "watching a recovered process");
            return;
        }
        record_exit(&inner, &task, &exec_id, UNKNOWN_EXIT_STATUS, &store::now()).await;
    });
}
