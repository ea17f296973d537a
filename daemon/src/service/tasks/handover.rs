//! The keeper's death while berthd runs. Its tasks are re-parented to berthd (a subreaper
//! too), whose reaper keeps their real exits for the monitors (`monitor::orphan_exit`).
//! What must not wait is the rest of what the keeper did: a successor is started at once,
//! not on the next call that needs one, and given duplicates of every running process's
//! FIFO ends, log pipe readers and terminal master, so that a berthd crash or restart
//! after the keeper's death still closes none of them (a logged task would otherwise get
//! EPIPE on its next write, and its log would stop for good).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use schema::TaskStatus;

use super::{identity, Inner};
use crate::keeper::Held;
use crate::store;

/// How long berthd waits before it tries again to start a keeper that would not start.
const RETRY: Duration = Duration::from_secs(1);

/// Watches for the keeper's death (as `deaths` reports it) for as long as berthd runs.
pub(super) fn start(inner: &Arc<Inner>, mut deaths: tokio::sync::watch::Receiver<u64>) {
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        while deaths.changed().await.is_ok() {
            tracing::warn!("the keeper died; starting its successor and handing it the tasks");
            while let Err(e) = inner.keeper.ensure().await {
                tracing::error!(error = %e, "no keeper could be started; trying again");
                tokio::time::sleep(RETRY).await;
            }
            // A death noticed while starting the successor was the old connection's.
            deaths.borrow_and_update();
            let handed = hand_over(&inner).await;
            tracing::info!(processes = handed, "the new keeper holds the tasks' stdio");
        }
    });
}

/// Has the keeper hold what berthd holds for each process that has not exited; the number
/// of processes handed over.
async fn hand_over(inner: &Inner) -> usize {
    let rows = match inner.store.read(store::tasks::list_all) {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "listing the tasks to hand to the new keeper");
            return 0;
        }
    };
    let mut handed = 0;
    for row in rows.iter().filter(|r| {
        r.exit_status.is_none()
            && r.pid != 0
            && !matches!(r.status, TaskStatus::Creating | TaskStatus::Deleting)
    }) {
        let Some(task) = inner.live.get(&row.namespace, &row.container_id) else {
            continue;
        };
        let dups: Vec<(Held, OwnedFd)> = task
            .process(&row.exec_id, |p| {
                let mut held: Vec<(Held, OwnedFd)> = p
                    .keepers
                    .as_ref()
                    .map(|k| k.held())
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(h, fd)| fd.try_clone_to_owned().ok().map(|d| (h, d)))
                    .collect();
                if let Some(master) = &p.console {
                    if let Ok(d) = master.try_clone() {
                        held.push((Held::PtyMaster, d));
                    }
                }
                held
            })
            .unwrap_or_default();
        if dups.is_empty() {
            continue;
        }
        let who = identity(row);
        let fds = dups.iter().map(|(h, fd)| (*h, fd.as_fd())).collect();
        match inner.keeper.hold(who, fds).await {
            Ok(()) => handed += 1,
            Err(e) => tracing::warn!(task = %row.container_id, exec_id = %row.exec_id,
                error = %e, "the new keeper does not hold this process's stdio"),
        }
    }
    handed
}
