//! `tasks.start` of a task's init: `runc start`, then `running`. A crash between the two
//! leaves the row `created` while runc runs the task; start-up takes the status from
//! `runc state` (see `recover.rs`).

use std::sync::Arc;

use super::{runc_error, Inner};
use crate::service::{Error, Result};
use crate::store;

pub(super) async fn start(inner: &Arc<Inner>, ns: &str, id: &str) -> Result<i64> {
    let task = inner.live_task(ns, id)?;
    let _order = task.lock.lock().await;
    let row = inner.row(ns, id, "")?;
    if !row.status.can_start() {
        return Err(Error::FailedPrecondition(format!(
            "{} is {}, not created",
            store::tasks::describe(ns, id, ""),
            row.status.wire()
        )));
    }
    // Before runc: the process may exit (and be reaped) before runc returns.
    let at = store::now();
    task.runc.start(id).await.map_err(runc_error)?;
    let (ns2, id2, pid, start) = (ns.to_owned(), id.to_owned(), row.pid, row.start_time);
    inner
        .store
        .write(move |tx| store::tasks::set_started(tx, &ns2, &id2, "", (pid, start), &at))
        .await?;
    Ok(row.pid)
}
