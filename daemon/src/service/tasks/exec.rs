//! `tasks.exec` (an exec process's row and stdio) and its start: `runc exec --detach`,
//! started by the keeper, which then parents the process and reports its exit.

use std::sync::Arc;

use schema::{TaskExecParams, TaskStatus};
use serde_json::Value;

use super::create::{internal, launch, open_stdio};
use super::{check, monitor, Inner};
use crate::runtime::runc::ExecOpts;
use crate::service::{blocking, Error, Result};
use crate::store::{self, tasks::ProcessRow};

pub(super) async fn exec(inner: &Arc<Inner>, p: TaskExecParams) -> Result<()> {
    let (ns, id, exec_id) = (
        p.namespace.as_str(),
        p.container_id.as_str(),
        p.exec_id.as_str(),
    );
    check(ns, id, exec_id)?;
    if exec_id.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "tasks.exec in task \"{id}\" (namespace \"{ns}\") needs an exec_id naming the new \
             process"
        )));
    }
    let init = inner.row(ns, id, "")?;
    if init.exit_status.is_some() || !init.status.can_exec() {
        return Err(Error::FailedPrecondition(format!(
            "{} is {}; cannot exec in it",
            store::tasks::describe(ns, id, ""),
            init.status.wire()
        )));
    }
    let args_ok = p
        .process
        .get("args")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !args_ok {
        return Err(Error::InvalidArgument(format!(
            "{}: process.args must be a non-empty array",
            store::tasks::describe(ns, id, exec_id)
        )));
    }
    let task = inner.live_task(ns, id)?;
    // Opened now, as containerd does, so the client can open its FIFO ends before start.
    let opened = open_stdio(&task, exec_id, (&p.stdin, &p.stdout, &p.stderr), false)?;
    let row = ProcessRow {
        namespace: ns.to_owned(),
        container_id: id.to_owned(),
        exec_id: exec_id.to_owned(),
        pid: 0,
        start_time: 0,
        status: TaskStatus::Created,
        stdin: p.stdin.clone(),
        stdout: p.stdout.clone(),
        stderr: p.stderr.clone(),
        terminal: p.terminal,
        exit_status: None,
        exited_at: None,
        exit_reason: None,
        bundle: String::new(),
        runtime: init.runtime.clone(),
        spec: p.process.clone(),
        created_at: store::now(),
        auto_remove: false,
        started_at: None,
    };
    inner
        .store
        .write(move |tx| store::tasks::insert(tx, &row))
        .await?;
    task.with_process(exec_id, |p| p.stdio = Some(opened));
    Ok(())
}

pub(super) async fn start(inner: &Arc<Inner>, ns: &str, id: &str, exec_id: &str) -> Result<i64> {
    let task = inner.live_task(ns, id)?;
    let _order = task.lock.lock().await;
    let row = inner.row(ns, id, exec_id)?;
    let what = store::tasks::describe(ns, id, exec_id);
    if !row.status.can_start() {
        return Err(Error::FailedPrecondition(format!(
            "{what} is {}, not created",
            row.status.wire()
        )));
    }
    let execs = task.bundle.join("execs");
    let mut process = row.spec.clone();
    if let Some(obj) = process.as_object_mut() {
        obj.insert("terminal".into(), row.terminal.into());
    }
    let process_file = execs.join(format!("{exec_id}.json"));
    let pid_file = execs.join(format!("{exec_id}.pid"));
    {
        let (text, file) = (process.to_string(), process_file.clone());
        blocking("writing process.json", move || {
            std::fs::create_dir_all(&execs).map_err(internal("creating the execs dir"))?;
            crate::layout::write_private(&file, text.as_bytes())
                .map_err(internal("writing process.json"))
        })
        .await?;
    }
    let opened = match task.process(exec_id, |p| p.stdio.take()).flatten() {
        Some(opened) => opened,
        None => open_stdio(
            &task,
            exec_id,
            (&row.stdin, &row.stdout, &row.stderr),
            false,
        )?,
    };
    let stdio = (opened, !row.stdin.is_empty());
    // Before runc: the process may exit (and be reaped) before runc returns.
    let at = store::now();
    let started = launch(inner, &task, exec_id, row.terminal, stdio, |s, console| {
        let opts = ExecOpts {
            process: process_file.clone(),
            pid_file: pid_file.clone(),
            detach: true,
            console_socket: console,
            stdio: s,
        };
        let runc = task.runc.clone();
        let id = id.to_owned();
        async move { runc.exec_detached(&id, opts).await }
    })
    .await?;
    let who = started.who;
    monitor::spawn(inner, &task, exec_id, who, started.exit);
    let (ns2, id2, exec2) = (ns.to_owned(), id.to_owned(), exec_id.to_owned());
    inner
        .store
        .write(move |tx| {
            let who = (i64::from(who.pid), who.start);
            store::tasks::set_started(tx, &ns2, &id2, &exec2, who, &at)
        })
        .await?;
    Ok(i64::from(who.pid))
}
