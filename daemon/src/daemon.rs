//! Running the daemon: directories, the root lock, the store, the socket, and orderly shutdown.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;

use crate::api::{self, server::Limits};
use crate::app::{App, Paths};
use crate::config::{Config, ConfigError};
use crate::keeper::Keeper;
use crate::lock::{self, DirLock, LockError};
use crate::runtime::reaper::{Reaper, ReaperError};
use crate::service::events::EventBus;
use crate::service::gc::GcTrigger;
use crate::store::{Store, StoreError};

/// Why the daemon could not start or stopped badly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("creating {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another berthd is already running on root {0} ({1}it holds {0}/berthd.lock)")]
    Locked(PathBuf, String),
    #[error(
        "another berthd is already running on state dir {0} ({1}it holds {0}/berthd.lock); \
         give each berthd its own --state"
    )]
    StateLocked(PathBuf, String),
    #[error("locking {path}: {source}")]
    Lock {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another daemon answers on the socket {0}; stop it or give berthd another --socket")]
    SocketInUse(PathBuf),
    #[error("{0} exists and is not a socket; berthd will not remove it (give another --socket)")]
    NotASocket(PathBuf),
    #[error("binding the socket {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Layout(#[from] crate::layout::LayoutError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Reaper(ReaperError),
    #[error("reconciling tasks: {0}")]
    Recover(crate::service::Error),
    #[error(transparent)]
    App(#[from] crate::app::AppError),
    #[error(transparent)]
    Preflight(#[from] crate::preflight::PreflightError),
}

/// Everything `berthd` is told on its command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub root: PathBuf,
    pub state: PathBuf,
    pub socket: PathBuf,
    pub config: Config,
    /// `--reset-store`: start over with an empty database (see [`crate::preflight`]).
    pub reset_store: bool,
}

fn mkdir(path: &Path, mode: u32) -> Result<(), DaemonError> {
    let dir_err = |source| DaemonError::Dir {
        path: path.to_owned(),
        source,
    };
    fs::create_dir_all(path).map_err(dir_err)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(dir_err)
}

/// Takes the root's lock file (see [`lock::take`]: a live holder is refused at once, a
/// dying one waited for).
pub fn lock_root(root: &Path) -> Result<DirLock, DaemonError> {
    lock::take(root).map_err(|e| match e {
        LockError::Held { holder, .. } => DaemonError::Locked(root.to_owned(), pid_of(holder)),
        LockError::Io { path, source } => DaemonError::Lock { path, source },
    })
}

/// Takes the state dir's lock: two daemons on one state dir would share its keeper, its
/// runc root and its bundles, and each would remove the other's tasks as unknown.
fn lock_state(state: &Path) -> Result<DirLock, DaemonError> {
    lock::take(state).map_err(|e| match e {
        LockError::Held { holder, .. } => {
            DaemonError::StateLocked(state.to_owned(), pid_of(holder))
        }
        LockError::Io { path, source } => DaemonError::Lock { path, source },
    })
}

fn pid_of(holder: Option<i32>) -> String {
    holder.map(|p| format!("pid {p}, ")).unwrap_or_default()
}

/// Binds the socket with mode 0660, owner root and the configured group. A stale socket file
/// from a daemon that died is replaced (the root lock proves no daemon is using it).
fn bind_socket(path: &Path, gid: Option<u32>) -> Result<UnixListener, DaemonError> {
    let bind_err = |source| DaemonError::Bind {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        mkdir_keep_mode(parent)?;
    }
    if check_socket_free(path)? {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(bind_err(e)),
        }
    }
    let listener = UnixListener::bind(path).map_err(bind_err)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    std::os::unix::fs::chown(path, Some(0), Some(gid.unwrap_or(0))).map_err(bind_err)?;
    Ok(listener)
}

/// Whether a stale socket sits at `path` (one nobody answers on), which may be replaced.
/// Nothing at all is fine too (`false`); a live socket or any other file is an error, and
/// nothing is removed.
fn check_socket_free(path: &Path) -> Result<bool, DaemonError> {
    use std::os::unix::fs::FileTypeExt;
    match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(DaemonError::Bind {
            path: path.to_owned(),
            source,
        }),
        Ok(m) if !m.file_type().is_socket() => Err(DaemonError::NotASocket(path.to_owned())),
        Ok(_) => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => Err(DaemonError::SocketInUse(path.to_owned())),
            Err(_) => Ok(true),
        },
    }
}

/// Creates a directory without changing the mode of one that exists (only a directory
/// berthd creates gets its mode).
fn mkdir_keep_mode(path: &Path) -> Result<(), DaemonError> {
    if path.is_dir() {
        return Ok(());
    }
    mkdir(path, 0o711)
}

/// Runs the daemon until SIGTERM or SIGINT, on `inherited` (a socket a service manager
/// passed, see [`crate::systemd::listener`]) or else on a socket it binds at `opts.socket`.
pub async fn run(
    opts: Options,
    inherited: Option<std::os::unix::net::UnixListener>,
) -> Result<(), DaemonError> {
    let shutdown = shutdown_signal();
    let open_files = raise_open_file_limit();
    let gid = opts.config.socket_gid()?;
    let socket_path = inherited
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .and_then(|a| a.as_pathname().map(Path::to_owned))
        .unwrap_or_else(|| opts.socket.clone());
    crate::layout::create(&opts.root, &opts.state, &socket_path, gid)?;
    let _lock = lock_root(&opts.root)?;
    let _state_lock = lock_state(&opts.state)?;
    crate::layout::secure(&opts.root, &opts.state, &socket_path, gid)?;
    // Before any work on the root: a daemon that would fail to bind must not reconcile.
    if inherited.is_none() {
        check_socket_free(&opts.socket)?;
    }
    let db = opts.root.join("meta.db");
    let checked = crate::preflight::check(&opts.root, &db, opts.reset_store)?;
    let bus = EventBus::default();
    let publisher = bus.clone();
    let gc_trigger = GcTrigger::default();
    let deletes = gc_trigger.clone();
    let store = Store::open(
        &db,
        Arc::new(move |events| {
            publisher.publish(events);
            deletes.on_commit(events);
        }),
    )?;
    store.set_event_limits(opts.config.events_max_count, opts.config.events_max_bytes);
    let paths = Paths {
        root: opts.root.clone(),
        state: opts.state.clone(),
        socket: opts.socket.clone(),
    };
    // Before the reaper owns waitpid(-1): this one still waits on its child with std.
    crate::app::runc_version();
    let host_restarted = host_restarted(&opts.root, &opts.state);
    let reaper = Reaper::start().map_err(DaemonError::Reaper)?;
    let keeper = Keeper::new(&opts.state, reaper.clone());
    let app = App::new(
        paths,
        store.clone(),
        bus,
        reaper,
        keeper,
        &opts.config,
        gc_trigger,
    )?;
    app.tasks
        .recover(host_restarted)
        .await
        .map_err(DaemonError::Recover)?;
    app.start_auto_remove();
    if let Err(e) = app.logs.sweep() {
        tracing::warn!(error = %e, "logs of deleted containers not swept");
    }
    // After recovery (live tasks' rootfs mounts are back, so their directories are kept)
    // and before serving.
    app.gc.start(checked).await;
    let direct = api::direct::Direct {
        containers: app.containers.clone(),
        stall: std::time::Duration::from_secs(opts.config.request_timeout_secs.max(1)),
    };
    let tasks = app.tasks.clone();
    let module = api::build_module(app);
    let activated = inherited.is_some();
    let listener = match inherited {
        Some(l) => UnixListener::from_std(l).map_err(|source| DaemonError::Bind {
            path: opts.socket.clone(),
            source,
        })?,
        None => bind_socket(&opts.socket, gid)?,
    };
    let shown = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_owned))
        .unwrap_or_else(|| opts.socket.clone());
    tracing::info!(socket = %shown.display(), root = %opts.root.display(), activated,
        "berthd serving");
    let c = &opts.config;
    let limits = Limits {
        gid,
        max_request_bytes: c.max_request_bytes,
        max_connections: connections_within(c.max_connections, open_files),
        max_response_bytes: c.max_response_bytes,
        max_batch: c.max_batch.max(1),
        memory_budget_bytes: c.memory_budget_bytes,
        idle_timeout: std::time::Duration::from_secs(c.idle_timeout_secs.max(1)),
        request_timeout: std::time::Duration::from_secs(c.request_timeout_secs.max(1)),
    };
    crate::systemd::notify("READY=1");
    let stopping = async {
        shutdown.await;
        crate::systemd::notify("STOPPING=1");
    };
    api::server::serve(listener, module, Some(direct), limits, stopping).await;
    // Deletes answered before the stop still unmount and remove their bundles.
    tasks.settle(std::time::Duration::from_secs(10)).await;
    // An inherited socket belongs to the manager, which keeps it for the next start.
    if !activated {
        let _ = fs::remove_file(&opts.socket);
    }
    store.close();
    tracing::info!("berthd stopped");
    Ok(())
}

/// Descriptors kept free for what berthd opens besides client connections (the store,
/// content, the keeper, stdio FIFOs, runc pipes) and for answering refused peers.
const FD_RESERVE: u64 = 256;

/// Raises the soft RLIMIT_NOFILE to the hard limit (an inherited 1024 would starve the
/// socket long before `max_connections`) and returns the soft limit now in force.
fn raise_open_file_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the valid, exclusively borrowed `lim`.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read RLIMIT_NOFILE");
        return 1024;
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one valid rlimit; raising soft up to hard needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            tracing::info!(
                from = lim.rlim_cur,
                to = lim.rlim_max,
                "raised RLIMIT_NOFILE"
            );
            lim.rlim_cur = lim.rlim_max;
        } else {
            let e = std::io::Error::last_os_error();
            tracing::warn!(error = %e, soft = lim.rlim_cur, "cannot raise RLIMIT_NOFILE");
        }
    }
    lim.rlim_cur
}

/// `max_connections`, lowered so that every connection can be opened and berthd still has
/// descriptors left for its own files.
fn connections_within(max_connections: u32, open_files: u64) -> u32 {
    let reserve = FD_RESERVE.min(open_files / 2);
    let fits = u32::try_from(open_files.saturating_sub(reserve)).unwrap_or(u32::MAX);
    if max_connections > fits {
        tracing::warn!(
            max_connections,
            serving = fits,
            open_files,
            "max_connections lowered to fit RLIMIT_NOFILE"
        );
    }
    max_connections.min(fits).max(1)
}

/// Whether nothing of the state dir's previous life survived: it is new (a reboot wiped
/// /run, or an operator did) or the kernel's boot id changed since berthd last started.
fn host_restarted(root: &Path, state: &Path) -> bool {
    let fresh_state = !crate::keeper::server::dir(state).exists();
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let file = root.join("boot_id");
    let last = fs::read_to_string(&file).ok();
    if let Err(e) = fs::write(&file, boot.trim()) {
        tracing::warn!(path = %file.display(), error = %e, "cannot record the boot id");
    }
    let rebooted = last.is_some_and(|l| l.trim() != boot.trim());
    if fresh_state || rebooted {
        tracing::info!(
            fresh_state,
            rebooted,
            "no task can have outlived the last berthd"
        );
    }
    fresh_state || rebooted
}

/// SIGTERM and SIGINT, caught from the moment this is called: a signal that arrives while
/// berthd starts up (its socket may already accept) is kept, and stops it as soon as it
/// serves, with the usual clean-up, instead of killing it with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers; stop berthd with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    }
}
