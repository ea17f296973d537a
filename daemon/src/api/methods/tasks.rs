//! tasks.*

use schema::{
    TaskCreateParams, TaskDeleteParams, TaskExecParams, TaskKillParams, TaskListParams, TaskParams,
    TaskProcessParams, TaskResizeParams,
};
use serde_json::json;

use super::{method, Module};

pub(super) fn register(m: &mut Module) {
    method(m, "tasks.create", |app, p: TaskCreateParams| async move {
        let process = app.tasks.create(p).await?;
        Ok(json!({ "container_id": process.container_id, "pid": process.pid }))
    });
    method(m, "tasks.start", |app, p: TaskProcessParams| async move {
        let pid = app
            .tasks
            .start(&p.namespace, &p.container_id, &p.exec_id)
            .await?;
        Ok(json!({ "pid": pid }))
    });
    method(m, "tasks.get", |app, p: TaskProcessParams| async move {
        let process = app.tasks.get(&p.namespace, &p.container_id, &p.exec_id)?;
        Ok(json!({ "process": process }))
    });
    method(m, "tasks.list", |app, p: TaskListParams| async move {
        Ok(json!({ "tasks": app.tasks.list(&p)? }))
    });
    method(m, "tasks.kill", |app, p: TaskKillParams| async move {
        app.tasks.kill(&p).await?;
        Ok(json!({}))
    });
    method(m, "tasks.wait", |app, p: TaskProcessParams| async move {
        app.tasks
            .wait(&p.namespace, &p.container_id, &p.exec_id)
            .await
    });
    method(m, "tasks.delete", |app, p: TaskDeleteParams| async move {
        app.tasks
            .delete(&p.namespace, &p.container_id, p.force)
            .await
    });
    method(m, "tasks.exec", |app, p: TaskExecParams| async move {
        app.tasks.exec(p).await?;
        Ok(json!({}))
    });
    method(
        m,
        "tasks.delete_process",
        |app, p: TaskProcessParams| async move {
            app.tasks
                .delete_process(&p.namespace, &p.container_id, &p.exec_id)
                .await
        },
    );
    method(
        m,
        "tasks.resize_pty",
        |app, p: TaskResizeParams| async move {
            app.tasks
                .resize_pty(&p.namespace, &p.container_id, &p.exec_id, p.width, p.height)?;
            Ok(json!({}))
        },
    );
    method(
        m,
        "tasks.write_stdin",
        |app, p: schema::TaskWriteStdinParams| async move {
            let written = app.tasks.write_stdin(&p).await?;
            Ok(json!({ "written": written }))
        },
    );
    method(
        m,
        "tasks.close_io",
        |app, p: TaskProcessParams| async move {
            app.tasks
                .close_io(&p.namespace, &p.container_id, &p.exec_id)
                .await?;
            Ok(json!({}))
        },
    );
    method(m, "tasks.pause", |app, p: TaskParams| async move {
        app.tasks.pause(&p.namespace, &p.container_id, true).await?;
        Ok(json!({}))
    });
    method(m, "tasks.resume", |app, p: TaskParams| async move {
        app.tasks
            .pause(&p.namespace, &p.container_id, false)
            .await?;
        Ok(json!({}))
    });
    method(m, "tasks.pids", |app, p: TaskParams| async move {
        app.tasks.pids(&p.namespace, &p.container_id).await
    });
    method(m, "tasks.metrics", |app, p: TaskParams| async move {
        app.tasks.metrics(&p.namespace, &p.container_id).await
    });
}
