//! `tasks.create`: the `creating` intent row, the bundle, rootfs mounts, stdio and
//! `runc create` (started by the keeper, which then parents the init), then `created`
//! with the init's identity; with `start`, `runc run --detach` and `created` + `running` in
//! one transaction. Also the pieces exec shares: opening stdio and launching runc with a
//! terminal.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use schema::{Process, TaskCreateParams, TaskStatus};
use serde_json::Value;

use super::live::LiveTask;
use super::{check, monitor, pty, runc_error, Inner};
use crate::keeper::Held;
use crate::runtime::console::{self, ConsoleSocket};
use crate::runtime::mount;
use crate::runtime::runc::{CreateOpts, ProcessStdio, Started};
use crate::runtime::stdio::{self, TaskStdio};
use crate::service::networks::{self, NetFiles};
use crate::service::{blocking, Error, Result};
use crate::store::{self, tasks::ProcessRow};

/// How long a create waits for the teardown of the deleted task of the same id.
const TEARDOWN_WAIT: Duration = Duration::from_secs(30);
/// How long runc may take to hand over a pty master once it has returned.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);
/// An I/O failure building a bundle: `resource_exhausted` on a full disk, else internal.
pub(super) fn internal(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::failure(what, &e)
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
    // A deleted task of the same id may still be torn down (its bundle is this one's).
    while !inner.live.insert_new(Arc::clone(&task)) {
        let old = match inner.live.get(ns, id) {
            Some(old) if old.is_deleted() => old,
            Some(_) => return Err(exists()),
            None => continue,
        };
        if tokio::time::timeout(TEARDOWN_WAIT, old.gone())
            .await
            .is_err()
        {
            return Err(Error::Unavailable(format!(
                "task \"{id}\" in namespace \"{ns}\": the deleted task of the same id is still \
                 being torn down (runc delete, unmounts) after {TEARDOWN_WAIT:?}; try again, \
                 or see berthd's log for a hung runc"
            )));
        }
    }
    // One whose background teardown failed left its intent: finished here, or refused.
    let left = inner
        .store
        .read(|c| store::tasks::get_any(c, ns, id, ""))
        .ok()
        .filter(|r| r.status == TaskStatus::Deleting);
    if let Some(left) = left {
        if let Err(e) = super::delete::teardown(inner, ns, id, &left.runtime).await {
            inner.live.remove(ns, id);
            return Err(e);
        }
    }
    let _order = task.lock.lock().await;
    // The intent, durable before runc runs: a crash from here on leaves a `creating` row
    // that start-up reconciliation undoes (runc container, mounts, cgroup, bundle).
    let intent = ProcessRow {
        namespace: ns.to_owned(),
        container_id: id.to_owned(),
        exec_id: String::new(),
        pid: 0,
        start_time: 0,
        status: TaskStatus::Creating,
        stdin: p.stdin.clone(),
        stdout: p.stdout.clone(),
        stderr: p.stderr.clone(),
        terminal: p.terminal,
        exit_status: None,
        exited_at: None,
        exit_reason: None,
        bundle: task.bundle.display().to_string(),
        runtime: container.runtime.name.clone(),
        spec: Value::Null,
        created_at: store::now(),
        // While `creating`, whether start-up removes the container if the create is cut
        // off; `set_created` leaves it only to an `auto_remove` task.
        auto_remove: p.auto_remove || p.remove_if_cut_off,
        started_at: None,
    };
    let inserted = inner
        .store
        .write(move |tx| store::tasks::insert(tx, &intent))
        .await;
    let result = match inserted {
        Err(store::StoreError::AlreadyExists(_)) => Err(exists()),
        Err(e) => Err(e.into()),
        Ok(()) => create_in_bundle(inner, &task, &container, &p).await,
    };
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
    {
        let (bundle, rootfs) = (bundle.to_owned(), rootfs.clone());
        blocking("preparing the bundle", move || {
            super::delete::remove_bundle(&bundle)?;
            std::fs::create_dir_all(&rootfs).map_err(internal("creating the bundle"))
        })
        .await?;
    }
    let made = async {
        let net = networks::request(&container.labels, inner.config.default_network.as_deref())?;
        let files = match &net {
            Some(req) => Some(inner.networks.prepare(req, id, bundle).await?),
            None => None,
        };
        let mounts = inner.rootfs.mounts(ns, container).await?;
        // Containers keep their spec as raw text; the task edits its own copy.
        let mut spec: Value = serde_json::from_str(container.spec.get())
            .map_err(|e| Error::Internal(format!("decoding the stored spec: {e}")))?;
        prepare_spec(&mut spec, ns, id, p.terminal, &rootfs, !mounts.is_empty())?;
        if let Some(files) = &files {
            network_mounts(&mut spec, ns, id, files)?;
        }
        // Ours (a spec naming its own cgroup keeps it): made before runc, see `ensure`.
        let ours = cgroups_path(ns, id);
        let ensure = spec["linux"]["cgroupsPath"] == ours.as_str();
        let text = serde_json::to_vec(&spec)
            .map_err(|e| Error::Internal(format!("encoding config.json: {e}")))?;
        let (config, rootfs, what) = (
            bundle.join("config.json"),
            rootfs.clone(),
            format!("task \"{id}\""),
        );
        blocking("writing the bundle", move || {
            if ensure {
                crate::runtime::cgroup::ensure(&ours);
            }
            if !mounts.is_empty() {
                mount::mount_all(&mounts, &rootfs)
                    .map_err(|e| Error::Internal(format!("{what}: {e}")))?;
            }
            crate::layout::write_private(&config, &text).map_err(internal("writing config.json"))
        })
        .await?;
        let mut opened = open_stdio(task, "", (&p.stdin, &p.stdout, &p.stderr), true)?;
        // Before runc: with `start`, the process may exit before runc returns.
        let started_at = store::now();
        // Started before runc: if the create fails, the pipes' writers close and it ends.
        let sources = std::mem::take(&mut opened.log);
        if !sources.is_empty() {
            let copier = inner.logs.start(ns, id, sources)?;
            task.with_process("", |p| p.log = Some(copier));
        }
        let started = launch(
            inner,
            task,
            "",
            p.terminal,
            (opened, !p.stdin.is_empty()),
            |s, console| {
                let opts = CreateOpts {
                    pid_file: bundle.join("init.pid"),
                    // On a network: created, joined, then started.
                    start: p.start && net.is_none(),
                    console_socket: console,
                    stdio: s,
                };
                let runc = task.runc.clone();
                let (id, bundle) = (id.to_owned(), bundle.to_owned());
                async move { runc.create(&id, &bundle, opts).await }
            },
        )
        .await?;
        let who = started.who;
        let network = match &net {
            Some(req) => {
                let joined = inner.networks.attach(ns, id, req, who.pid).await?;
                if p.start {
                    if let Err(e) = task.runc.start(id).await {
                        inner.networks.detach(ns, id).await;
                        return Err(runc_error(e));
                    }
                }
                Some(joined)
            }
            None => None,
        };
        // The exit monitor stores the exit only once this create lets go of the task lock,
        // so a `start` task that is already gone is recorded running first, then stopped.
        monitor::spawn(inner, task, "", who, started.exit);
        let (ns2, id2, start, auto_remove) = (ns.to_owned(), id.to_owned(), p.start, p.auto_remove);
        let row = inner
            .store
            .write(move |tx| {
                let pid = (i64::from(who.pid), who.start);
                let row = store::tasks::set_created(tx, &ns2, &id2, pid.0, pid.1, auto_remove)?;
                if !start {
                    return Ok(row);
                }
                store::tasks::set_started(tx, &ns2, &id2, "", pid, &started_at)?;
                store::tasks::get_any(tx.conn(), &ns2, &id2, "")
            })
            .await?;
        let mut process = row.to_process();
        process.network = network;
        Ok(process)
    }
    .await;
    if made.is_err() {
        let _ = task.runc.delete(id, true).await;
        inner.networks.detach(ns, id).await;
        let (cgroup, bundle) = (cgroups_path(ns, id), bundle.to_owned());
        let _ = blocking("undoing the bundle", move || {
            // The cgroup `ensure` made when runc never got to it.
            let _ = crate::runtime::cgroup::sweep(&cgroup);
            super::delete::remove_bundle(&bundle)
        })
        .await;
        let (ns2, id2) = (ns.to_owned(), id.to_owned());
        let _ = inner
            .store
            .write(move |tx| store::tasks::remove_intent(tx, &ns2, &id2, TaskStatus::Creating))
            .await;
    }
    made
}

/// Bind-mounts the network's hosts file and the task's hostname and resolv.conf; refuses a
/// spec without a network namespace of its own (`--net-host`), which CNI cannot join.
fn network_mounts(spec: &mut Value, ns: &str, id: &str, files: &NetFiles) -> Result<()> {
    let own = spec["linux"]["namespaces"].as_array().is_some_and(|all| {
        all.iter()
            .any(|n| n["type"] == "network" && n.get("path").is_none_or(|p| p == ""))
    });
    if !own {
        return Err(Error::FailedPrecondition(format!(
            "container \"{id}\" in namespace \"{ns}\" asks for a network but its spec has no \
             network namespace of its own (host networking?)"
        )));
    }
    let mount = |dest: &str, source: &Path| {
        serde_json::json!({"destination": dest, "type": "bind", "source": source,
                           "options": ["rbind", "ro"]})
    };
    let mounts = spec
        .as_object_mut()
        .map(|o| {
            o.entry("mounts")
                .or_insert_with(|| Value::Array(Vec::new()))
        })
        .and_then(Value::as_array_mut)
        .ok_or_else(|| {
            Error::FailedPrecondition(format!("task \"{id}\": spec.mounts is not a list"))
        })?;
    mounts.push(mount("/etc/hosts", &files.hosts));
    mounts.push(mount("/etc/hostname", &files.hostname));
    mounts.push(mount("/etc/resolv.conf", &files.resolv));
    Ok(())
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
    // Stored before containers.create refused such specs: nothing is mounted for it.
    if !crate::service::containers::unshares_mounts(spec) {
        return Err(Error::FailedPrecondition(format!(
            "{owner}: {}",
            crate::service::containers::NO_MOUNT_NAMESPACE
        )));
    }
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
    if let Some(caps) = process
        .get_mut("capabilities")
        .and_then(Value::as_object_mut)
    {
        within_bounding_set(caps);
    }
    Ok(())
}

/// Drops the capabilities berthd's own bounding set lacks (a sandboxed host): runc cannot
/// grant them and would fail the create, as docker's `--privileged` also gives only what
/// the daemon has.
fn within_bounding_set(caps: &mut serde_json::Map<String, Value>) {
    static BOUNDING: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let Some(bounding) = *BOUNDING.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
        u64::from_str_radix(hex.trim(), 16).ok()
    }) else {
        return;
    };
    let held = |name: &str| {
        let bare = name.strip_prefix("CAP_").unwrap_or(name);
        match schema::spec::ALL_CAPABILITIES
            .iter()
            .position(|c| *c == bare)
        {
            Some(bit) => bounding >> bit & 1 == 1,
            None => true,
        }
    };
    for set in caps.values_mut() {
        if let Some(list) = set.as_array_mut() {
            list.retain(|c| c.as_str().is_none_or(held));
        }
    }
}

/// Opens a process's host stdio paths (never blocks, see `runtime::stdio`); `logged`
/// sends the outputs it names "" to the container's log.
pub(super) fn open_stdio(
    task: &LiveTask,
    exec_id: &str,
    (i, o, e): (&str, &str, &str),
    logged: bool,
) -> Result<TaskStdio> {
    stdio::open(i, o, e, logged).map_err(|err| {
        let what = store::tasks::describe(&task.ns, &task.id, exec_id);
        Error::InvalidArgument(format!("{what}: {err}"))
    })
}

/// Runs `run` (runc create or exec) with the opened stdio (or a console socket for a
/// terminal), records the keepers, pty master and copy threads on the process, and has
/// the keeper hold duplicates of the FIFO ends and the master.
pub(super) async fn launch<F, Fut>(
    inner: &Inner,
    task: &Arc<LiveTask>,
    exec_id: &str,
    terminal: bool,
    (opened, has_stdin): (TaskStdio, bool),
    run: F,
) -> Result<Started>
where
    F: FnOnce(ProcessStdio, Option<PathBuf>) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Started>, crate::runtime::runc::RuncError>>,
{
    let what = store::tasks::describe(&task.ns, &task.id, exec_id);
    let no_target = || Error::Internal(format!("{what}: runc named no process in its pid file"));
    let (process, keepers) = (opened.process, opened.keepers);
    if !terminal {
        let started = run(process, None)
            .await
            .map_err(runc_error)?
            .ok_or_else(no_target)?;
        hold(inner, started.who, keepers.held()).await;
        task.with_process(exec_id, |p| p.keepers = Some(keepers));
        return Ok(started);
    }
    let socket = ConsoleSocket::new().map_err(|e| Error::Internal(format!("{what}: {e}")))?;
    let started = run(ProcessStdio::default(), Some(socket.path().to_owned()))
        .await
        .map_err(runc_error)?
        .ok_or_else(no_target)?;
    let master: OwnedFd = socket
        .receive(CONSOLE_TIMEOUT)
        .await
        .map_err(|e| Error::Internal(format!("{what}: {e}")))?;
    let mut held = keepers.held();
    held.push((Held::PtyMaster, master.as_fd()));
    hold(inner, started.who, held).await;
    let stdin = has_stdin.then_some(process.stdin).flatten();
    let stdout_fd = process
        .stdout
        .ok_or_else(|| Error::Internal(format!("{what}: no stdout")))?;
    attach_pty(task, exec_id, master, stdin, stdout_fd)?;
    task.with_process(exec_id, |p| p.keepers = Some(keepers));
    Ok(started)
}

/// Copies between a terminal's master and the host stdio, and keeps the master for resize.
pub(super) fn attach_pty(
    task: &LiveTask,
    exec_id: &str,
    master: OwnedFd,
    stdin: Option<OwnedFd>,
    stdout: OwnedFd,
) -> Result<()> {
    let copy = pty::start(&master, stdin, stdout).map_err(internal("starting pty copy"))?;
    let master = Arc::new(master);
    task.with_process(exec_id, |p| {
        if let Some((w, h)) = p.pending_size.take() {
            let _ = console::resize(master.as_fd(), w, h);
        }
        p.console = Some(Arc::clone(&master));
        p.pty = Some(copy);
    });
    Ok(())
}

/// Hands duplicates to the keeper. Best effort: without them the task still runs, it only
/// loses its stdio ends if berthd crashes.
async fn hold(
    inner: &Inner,
    who: crate::keeper::Identity,
    held: Vec<(Held, std::os::fd::BorrowedFd<'_>)>,
) {
    if let Err(e) = inner.keeper.hold(who, held).await {
        tracing::warn!(pid = who.pid, error = %e, "the keeper cannot hold the task's stdio");
    }
}
