//! Starting processes: `tasks.create` (bundle, rootfs mounts, stdio, `runc create`),
//! `tasks.start`, `tasks.exec` + start of an exec process, and the exit monitor every
//! process gets, which stores the exit before anyone hears of it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use schema::{ExitInfo, Process, TaskCreateParams, TaskExecParams};
use serde_json::Value;

use super::live::LiveTask;
use super::{check, pty, runc_error, Inner};
use crate::runtime::console::{self, ConsoleSocket};
use crate::runtime::mount;
use crate::runtime::runc::{CreateOpts, ExecOpts, ProcessStdio};
use crate::runtime::stdio::{self, TaskStdio};
use crate::service::{Error, Result};
use crate::store::{self, tasks::ProcessRow};

/// How long runc may take to hand over a pty master once it has returned.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an exit waits for a terminal's last output to be copied out.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);

fn internal(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Internal(format!("{what}: {e}"))
}

pub(super) async fn create(inner: &Arc<Inner>, p: TaskCreateParams) -> Result<Process> {
    let (ns, id) = (p.namespace.as_str(), p.container_id.as_str());
    check(ns, id, "")?;
    let container = inner.store.read(|c| store::containers::get(c, ns, id))?;
    let bundle = inner.bundle(ns, id);
    let runc = inner.runc(ns, &container.runtime.name, &bundle)?;
    let task = Arc::new(LiveTask::new(ns, id, bundle.clone(), runc));
    let exists = || {
        Error::AlreadyExists(format!(
            "task \"{id}\" already exists in namespace \"{ns}\""
        ))
    };
    if !inner.live.insert_new(Arc::clone(&task)) {
        return Err(exists());
    }
    let _order = task.lock.lock().await;
    let result = async {
        if inner.store.read(|c| store::tasks::task_exists(c, ns, id))? {
            return Err(exists());
        }
        create_in_bundle(inner, &task, &container, &p).await
    }
    .await;
    if result.is_err() {
        inner.live.remove(ns, id);
        task.clear();
    }
    result
}

async fn create_in_bundle(
    inner: &Arc<Inner>,
    task: &Arc<LiveTask>,
    container: &schema::Container,
    p: &TaskCreateParams,
) -> Result<Process> {
    let (ns, id, bundle) = (task.ns.as_str(), task.id.as_str(), task.bundle.as_path());
    let rootfs = bundle.join("rootfs");
    super::delete::remove_bundle(bundle)?;
    std::fs::create_dir_all(&rootfs).map_err(internal("creating the bundle"))?;
    let made = async {
        let mounts = inner.rootfs.mounts(ns, container).await?;
        // Containers keep their spec as raw text; the task edits its own copy.
        let mut spec: Value = serde_json::from_str(container.spec.get())
            .map_err(|e| Error::Internal(format!("decoding the stored spec: {e}")))?;
        prepare_spec(&mut spec, ns, id, p.terminal, &rootfs, !mounts.is_empty())?;
        if !mounts.is_empty() {
            mount::mount_all(&mounts, &rootfs)
                .map_err(|e| Error::Internal(format!("task \"{id}\": {e}")))?;
        }
        let text = serde_json::to_vec(&spec)
            .map_err(|e| Error::Internal(format!("encoding config.json: {e}")))?;
        std::fs::write(bundle.join("config.json"), text)
            .map_err(internal("writing config.json"))?;
        let opened = open_stdio(task, "", (&p.stdin, &p.stdout, &p.stderr))?;
        launch(
            task,
            "",
            p.terminal,
            (opened, !p.stdin.is_empty()),
            |s, console| {
                let opts = CreateOpts {
                    pid_file: bundle.join("init.pid"),
                    console_socket: console,
                    stdio: s,
                };
                let runc = task.runc.clone();
                let (id, bundle) = (id.to_owned(), bundle.to_owned());
                async move { runc.create(&id, &bundle, opts).await }
            },
        )
        .await?;
        let pid = read_pid(&bundle.join("init.pid"))?;
        spawn_monitor(inner, task, "", pid);
        let row = ProcessRow {
            namespace: ns.to_owned(),
            container_id: id.to_owned(),
            exec_id: String::new(),
            pid: i64::from(pid),
            status: "created".into(),
            stdin: p.stdin.clone(),
            stdout: p.stdout.clone(),
            stderr: p.stderr.clone(),
            terminal: p.terminal,
            exit_status: None,
            exited_at: None,
            bundle: bundle.display().to_string(),
            runtime: container.runtime.name.clone(),
            spec: Value::Null,
            created_at: store::now(),
        };
        let stored = row.clone();
        inner
            .store
            .write(move |tx| store::tasks::insert(tx, &stored))
            .await?;
        Ok(row.to_process())
    }
    .await;
    if made.is_err() {
        let _ = task.runc.delete(id, true).await;
        let _ = super::delete::remove_bundle(bundle);
    }
    made
}

/// The cgroup a task of container `id` in namespace `ns` gets unless its spec names one.
pub fn cgroups_path(ns: &str, id: &str) -> String {
    format!("/berth/{ns}/{id}")
}

/// Points the spec at the rootfs and sets the terminal flag the task asked for.
fn prepare_spec(
    spec: &mut Value,
    ns: &str,
    id: &str,
    terminal: bool,
    rootfs: &Path,
    mounted: bool,
) -> Result<()> {
    let owner = format!("container \"{id}\" in namespace \"{ns}\"");
    let obj = spec
        .as_object_mut()
        .ok_or_else(|| Error::FailedPrecondition(format!("{owner}: spec is not an object")))?;
    let root = obj
        .entry("root")
        .or_insert_with(|| serde_json::json!({}))
        .as_object_mut()
        .ok_or_else(|| Error::FailedPrecondition(format!("{owner}: spec.root is not an object")))?;
    if mounted {
        root.insert("path".into(), rootfs.display().to_string().into());
    } else {
        let path = root.get("path").and_then(Value::as_str).unwrap_or("");
        if !path.starts_with('/') || !Path::new(path).is_dir() {
            return Err(Error::FailedPrecondition(format!(
                "{owner} has no rootfs: no snapshot and spec.root.path {path:?} is not an \
                 absolute host directory"
            )));
        }
    }
    // Without a cgroups path runc puts every task at /<id>, so the same id in two namespaces
    // would share one cgroup; like containerd, berth scopes it by namespace.
    if let Some(linux) = obj.get_mut("linux").and_then(Value::as_object_mut) {
        linux
            .entry("cgroupsPath")
            .or_insert_with(|| cgroups_path(ns, id).into());
    }
    let process = obj
        .get_mut("process")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| Error::FailedPrecondition(format!("{owner}: spec has no process")))?;
    process.insert("terminal".into(), terminal.into());
    Ok(())
}

/// Opens a process's host stdio paths (never blocks, see `runtime::stdio`).
fn open_stdio(task: &LiveTask, exec_id: &str, (i, o, e): (&str, &str, &str)) -> Result<TaskStdio> {
    stdio::open(i, o, e).map_err(|err| {
        let what = store::tasks::describe(&task.ns, &task.id, exec_id);
        Error::InvalidArgument(format!("{what}: {err}"))
    })
}

/// Runs `run` (runc create or exec) with the opened stdio (or a console socket for a
/// terminal), and records the keepers, pty master and copy threads on the process.
async fn launch<F, Fut>(
    task: &Arc<LiveTask>,
    exec_id: &str,
    terminal: bool,
    (opened, has_stdin): (TaskStdio, bool),
    run: F,
) -> Result<()>
where
    F: FnOnce(ProcessStdio, Option<PathBuf>) -> Fut,
    Fut: std::future::Future<Output = Result<(), crate::runtime::runc::RuncError>>,
{
    let what = store::tasks::describe(&task.ns, &task.id, exec_id);
    let (process, keepers) = (opened.process, opened.keepers);
    if !terminal {
        run(process, None).await.map_err(runc_error)?;
        task.with_process(exec_id, |p| p.keepers = Some(keepers));
        return Ok(());
    }
    let socket = ConsoleSocket::new().map_err(|e| Error::Internal(format!("{what}: {e}")))?;
    run(ProcessStdio::default(), Some(socket.path().to_owned()))
        .await
        .map_err(runc_error)?;
    let master: OwnedFd = socket
        .receive(CONSOLE_TIMEOUT)
        .await
        .map_err(|e| Error::Internal(format!("{what}: {e}")))?;
    let stdin = has_stdin.then_some(process.stdin).flatten();
    let stdout_fd = process
        .stdout
        .ok_or_else(|| Error::Internal(format!("{what}: no stdout")))?;
    let copy = pty::start(&master, stdin, stdout_fd).map_err(internal("starting pty copy"))?;
    let master = Arc::new(master);
    task.with_process(exec_id, |p| {
        if let Some((w, h)) = p.pending_size.take() {
            let _ = console::resize(master.as_fd(), w, h);
        }
        p.console = Some(Arc::clone(&master));
        p.pty = Some(copy);
        p.keepers = Some(keepers);
    });
    Ok(())
}

fn read_pid(path: &Path) -> Result<i32> {
    let text = std::fs::read_to_string(path).map_err(internal("reading runc's pid file"))?;
    text.trim()
        .parse()
        .map_err(|_| Error::Internal(format!("pid file {} holds {text:?}", path.display())))
}

pub(super) async fn start(inner: &Arc<Inner>, ns: &str, id: &str) -> Result<i64> {
    let task = inner.live_task(ns, id)?;
    let _order = task.lock.lock().await;
    let row = inner.row(ns, id, "")?;
    if row.status != "created" {
        return Err(Error::FailedPrecondition(format!(
            "{} is {}, not created",
            store::tasks::describe(ns, id, ""),
            row.status
        )));
    }
    task.runc.start(id).await.map_err(runc_error)?;
    let (ns2, id2, pid) = (ns.to_owned(), id.to_owned(), row.pid);
    inner
        .store
        .write(move |tx| store::tasks::set_started(tx, &ns2, &id2, "", pid))
        .await?;
    Ok(row.pid)
}

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
    if init.exit_status.is_some() {
        return Err(Error::FailedPrecondition(format!(
            "{} is stopped; cannot exec in it",
            store::tasks::describe(ns, id, "")
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
    let opened = open_stdio(&task, exec_id, (&p.stdin, &p.stdout, &p.stderr))?;
    let row = ProcessRow {
        namespace: ns.to_owned(),
        container_id: id.to_owned(),
        exec_id: exec_id.to_owned(),
        pid: 0,
        status: "created".into(),
        stdin: p.stdin.clone(),
        stdout: p.stdout.clone(),
        stderr: p.stderr.clone(),
        terminal: p.terminal,
        exit_status: None,
        exited_at: None,
        bundle: String::new(),
        runtime: init.runtime.clone(),
        spec: p.process.clone(),
        created_at: store::now(),
    };
    inner
        .store
        .write(move |tx| store::tasks::insert(tx, &row))
        .await?;
    task.with_process(exec_id, |p| p.stdio = Some(opened));
    Ok(())
}

pub(super) async fn start_exec(
    inner: &Arc<Inner>,
    ns: &str,
    id: &str,
    exec_id: &str,
) -> Result<i64> {
    let task = inner.live_task(ns, id)?;
    let _order = task.lock.lock().await;
    let row = inner.row(ns, id, exec_id)?;
    let what = store::tasks::describe(ns, id, exec_id);
    if row.status != "created" {
        return Err(Error::FailedPrecondition(format!(
            "{what} is {}, not created",
            row.status
        )));
    }
    let execs = task.bundle.join("execs");
    std::fs::create_dir_all(&execs).map_err(internal("creating the execs dir"))?;
    let mut process = row.spec.clone();
    if let Some(obj) = process.as_object_mut() {
        obj.insert("terminal".into(), row.terminal.into());
    }
    let process_file = execs.join(format!("{exec_id}.json"));
    let pid_file = execs.join(format!("{exec_id}.pid"));
    std::fs::write(&process_file, process.to_string()).map_err(internal("writing process.json"))?;
    let opened = match task.process(exec_id, |p| p.stdio.take()).flatten() {
        Some(opened) => opened,
        None => open_stdio(&task, exec_id, (&row.stdin, &row.stdout, &row.stderr))?,
    };
    let stdio = (opened, !row.stdin.is_empty());
    launch(&task, exec_id, row.terminal, stdio, |s, console| {
        let opts = ExecOpts {
            process: process_file.clone(),
            pid_file: pid_file.clone(),
            detach: true,
            console_socket: console,
            stdio: s,
        };
        let runc = task.runc.clone();
        let id = id.to_owned();
        async move { runc.exec(&id, opts).await.map(drop) }
    })
    .await?;
    let pid = read_pid(&pid_file)?;
    spawn_monitor(inner, &task, exec_id, pid);
    let (ns2, id2, exec2) = (ns.to_owned(), id.to_owned(), exec_id.to_owned());
    inner
        .store
        .write(move |tx| store::tasks::set_started(tx, &ns2, &id2, &exec2, i64::from(pid)))
        .await?;
    Ok(i64::from(pid))
}

/// Waits for `pid` (a child of ours: re-parented by runc), then records its exit.
fn spawn_monitor(inner: &Arc<Inner>, task: &Arc<LiveTask>, exec_id: &str, pid: i32) {
    let (inner, task, exec_id) = (Arc::clone(inner), Arc::clone(task), exec_id.to_owned());
    tokio::spawn(async move {
        let exit = match inner.reaper.wait_pid(pid).await {
            Ok(exit) => exit,
            Err(e) => {
                tracing::warn!(pid, error = %e, "no exit for task process");
                return;
            }
        };
        let drained = task.process(&exec_id, |p| {
            p.pty.as_mut().and_then(|c| c.output_done.take())
        });
        if let Some(Some(done)) = drained {
            let _ = tokio::time::timeout(OUTPUT_DRAIN, done).await;
        }
        let at = humantime::format_rfc3339_nanos(exit.at).to_string();
        record_exit(&inner, &task, &exec_id, i64::from(exit.status), &at).await;
    });
}

/// Stores the exit (and `/tasks/exit`), then tells the waiters. Ordered after the
/// process's recorded start by the task lock.
pub(super) async fn record_exit(
    inner: &Arc<Inner>,
    task: &Arc<LiveTask>,
    exec_id: &str,
    status: i64,
    at: &str,
) {
    let _order = task.lock.lock().await;
    let (ns, id, exec) = (task.ns.clone(), task.id.clone(), exec_id.to_owned());
    let at_owned = at.to_owned();
    let stored = inner
        .store
        .write(move |tx| store::tasks::set_exited(tx, &ns, &id, &exec, status, &at_owned))
        .await;
    match stored {
        Ok(row) => {
            let info = ExitInfo {
                pid: row.pid,
                exit_status: row.exit_status.unwrap_or(status),
                exited_at: row.exited_at.unwrap_or_else(|| at.to_owned()),
            };
            task.process(exec_id, |p| p.exit.send_replace(Some(info)));
        }
        Err(e) => tracing::warn!(task = %task.id, exec_id, error = %e, "exit not recorded"),
    }
}
