//! tasks.*

use schema::methods::{
    TasksCloseIo, TasksCreate, TasksDelete, TasksDeleteProcess, TasksExec, TasksGet, TasksKill,
    TasksList, TasksMetrics, TasksPause, TasksPids, TasksResizePty, TasksResume, TasksStart,
    TasksWait, TasksWriteStdin,
};
use schema::{Empty, ProcessReply, Started, TaskCreated, TaskList, Written};

use super::{method, Module};

pub(super) fn register(m: &mut Module) {
    method::<TasksCreate, _, _>(m, |app, p| async move {
        let process = app.tasks.create(p).await?;
        Ok(TaskCreated {
            container_id: process.container_id,
            pid: process.pid,
        })
    });
    method::<TasksStart, _, _>(m, |app, p| async move {
        let pid = app
            .tasks
            .start(&p.namespace, &p.container_id, &p.exec_id)
            .await?;
        Ok(Started { pid })
    });
    method::<TasksGet, _, _>(m, |app, p| async move {
        let process = app.tasks.get(&p.namespace, &p.container_id, &p.exec_id)?;
        Ok(ProcessReply { process })
    });
    method::<TasksList, _, _>(m, |app, p| async move {
        Ok(TaskList {
            tasks: app.tasks.list(p).await?,
        })
    });
    method::<TasksKill, _, _>(m, |app, p| async move {
        app.tasks.kill(&p).await?;
        Ok(Empty {})
    });
    method::<TasksWait, _, _>(m, |app, p| async move {
        app.tasks
            .wait(&p.namespace, &p.container_id, &p.exec_id)
            .await
    });
    method::<TasksDelete, _, _>(m, |app, p| async move {
        app.tasks
            .delete(&p.namespace, &p.container_id, p.force)
            .await
    });
    method::<TasksExec, _, _>(m, |app, p| async move {
        app.tasks.exec(p).await?;
        Ok(Empty {})
    });
    method::<TasksDeleteProcess, _, _>(m, |app, p| async move {
        app.tasks
            .delete_process(&p.namespace, &p.container_id, &p.exec_id)
            .await
    });
    method::<TasksResizePty, _, _>(m, |app, p| async move {
        app.tasks
            .resize_pty(&p.namespace, &p.container_id, &p.exec_id, p.width, p.height)?;
        Ok(Empty {})
    });
    method::<TasksWriteStdin, _, _>(m, |app, p| async move {
        let written = app.tasks.write_stdin(&p).await? as u64;
        Ok(Written { written })
    });
    method::<TasksCloseIo, _, _>(m, |app, p| async move {
        app.tasks
            .close_io(&p.namespace, &p.container_id, &p.exec_id)
            .await?;
        Ok(Empty {})
    });
    method::<TasksPause, _, _>(m, |app, p| async move {
        app.tasks.pause(&p.namespace, &p.container_id, true).await?;
        Ok(Empty {})
    });
    method::<TasksResume, _, _>(m, |app, p| async move {
        app.tasks
            .pause(&p.namespace, &p.container_id, false)
            .await?;
        Ok(Empty {})
    });
    method::<TasksPids, _, _>(m, |app, p| async move {
        app.tasks.pids(&p.namespace, &p.container_id).await
    });
    method::<TasksMetrics, _, _>(m, |app, p| async move {
        app.tasks.metrics(&p.namespace, &p.container_id).await
    });
}
