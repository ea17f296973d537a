//! The daemon's object graph: the services every handler reaches, built once at start-up.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Config;
use crate::content::ContentStore;
use crate::keeper::Keeper;
use crate::runtime::cni::Cni;
use crate::runtime::reaper::Reaper;
use crate::service::containers::Containers;
use crate::service::content::Content;
use crate::service::events::{EventBus, Events};
use crate::service::gc::{Gc, GcTrigger};
use crate::service::images::upload::{UploadLimits, Uploads};
use crate::service::images::Images;
use crate::service::leases::Leases;
use crate::service::logs::Logs;
use crate::service::namespaces::Namespaces;
use crate::service::networks::Networks;
use crate::service::snapshots::Snapshots;
use crate::service::tasks::Tasks;
use crate::service::Result;
use crate::snapshot::{self, Snapshotter};
use crate::store::{self, Store};
use crate::unpack::Limits;

/// Where the daemon keeps things; reported by `system.info`.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub state: PathBuf,
    pub socket: PathBuf,
}

pub struct App {
    pub paths: Paths,
    pub store: Store,
    pub namespaces: Namespaces,
    pub containers: Containers,
    pub events: Events,
    pub images: Images,
    pub content: Content,
    pub snapshots: Snapshots,
    pub leases: Leases,
    pub gc: Gc,
    pub tasks: Tasks,
    pub networks: Networks,
    pub logs: Logs,
    /// The daemon's one reaper: berthd is a child subreaper from start-up.
    pub reaper: Reaper,
}

/// Why the image side of the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Content(#[from] crate::content::ContentError),
    #[error("creating the snapshot directories under {root}: {source}")]
    Snapshots {
        root: PathBuf,
        source: std::io::Error,
    },
    #[error("preparing {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl App {
    /// `reaper` must be the process's only one ([`Reaper::start`] at start-up).
    pub fn new(
        paths: Paths,
        store: Store,
        bus: EventBus,
        reaper: Reaper,
        keeper: Keeper,
        config: &Config,
        gc_trigger: GcTrigger,
    ) -> Result<App, AppError> {
        let blobs = ContentStore::open(&paths.root)?;
        let snapshot_err = |source| AppError::Snapshots {
            root: paths.root.clone(),
            source,
        };
        let snapshotters: Vec<Arc<dyn Snapshotter>> = vec![
            Arc::new(snapshot::Overlay::new(&paths.root).map_err(snapshot_err)?),
            Arc::new(snapshot::Native::new(&paths.root, reaper.clone()).map_err(snapshot_err)?),
        ];
        let snapshots = Snapshots::new(store.clone(), snapshotters);
        let limits = Limits {
            max_bytes: config.max_layer_bytes,
            max_entries: config.max_layer_entries,
        };
        let images = Images::new(
            store.clone(),
            blobs.clone(),
            snapshots.clone(),
            limits,
            config.credential_sources(),
            Uploads::new(
                &paths.root.join("uploads"),
                UploadLimits {
                    max_bytes: config.max_upload_bytes,
                    per_peer: config.max_uploads_per_peer.max(1),
                },
            )
            .map_err(|e| AppError::Dir {
                path: paths.root.join("uploads"),
                source: e,
            })?,
        );
        let logs = Logs::new(
            store.clone(),
            &paths.root,
            crate::runtime::logfile::Limits {
                max_bytes: config.log_max_bytes.max(1),
                max_files: config.log_max_files.max(1),
            },
        );
        let networks = Networks::new(
            store.clone(),
            Cni::new(config.cni_bin_dirs.clone(), &paths.state, reaper.clone()),
            (&paths.root, &paths.state),
            (config.network_subnet.clone(), config.network_bridge.clone()),
        );
        let tasks = Tasks::new(
            store.clone(),
            reaper.clone(),
            keeper,
            paths.state.clone(),
            config.clone(),
            Arc::new(snapshots.clone()),
            logs.clone(),
            networks.clone(),
        );
        Ok(App {
            tasks,
            networks,
            reaper,
            paths,
            namespaces: Namespaces::new(store.clone()),
            containers: Containers::new(
                store.clone(),
                images.clone(),
                snapshots.clone(),
                logs.clone(),
                config.max_response_bytes as usize,
            ),
            logs,
            events: Events::new(store.clone(), bus),
            content: Content::new(store.clone(), blobs.clone()),
            leases: Leases::new(store.clone(), gc_trigger.clone()),
            gc: Gc::new(store.clone(), snapshots.clone(), blobs, gc_trigger),
            images,
            snapshots,
            store,
        })
    }

    /// Removes each `auto_remove` task once its exit is stored, and its container (with its
    /// snapshot): `run --rm -d` needs no client to stay connected.
    pub fn start_auto_remove(&self) {
        let Some(mut removals) = self.tasks.take_removals() else {
            return;
        };
        let (tasks, containers) = (self.tasks.clone(), self.containers.clone());
        tokio::spawn(async move {
            while let Some(r) = removals.recv().await {
                let (ns, id) = (r.namespace.clone(), r.container_id.clone());
                match tasks.auto_remove(&r).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        // Left for the next start-up, which finds what is due.
                        tracing::warn!(namespace = %ns, container = %id, error = %e,
                            "auto-remove: the task is not deleted");
                        continue;
                    }
                }
                let torn_down = tasks.torn_down(&ns, &id);
                match containers
                    .delete(ns.clone(), id.clone(), false, torn_down)
                    .await
                {
                    Ok(_) => tracing::info!(namespace = %ns, container = %id, "auto-removed"),
                    Err(crate::service::Error::NotFound(_)) => {}
                    Err(e) => tracing::warn!(namespace = %ns, container = %id, error = %e,
                        "auto-remove: the container is not deleted"),
                }
            }
        });
    }

    pub fn version(&self) -> schema::Version {
        schema::Version {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            api_version: schema::API_VERSION.to_owned(),
            runtime: schema::RuntimeVersion {
                name: "runc".to_owned(),
                version: runc_version().to_owned(),
            },
        }
    }

    pub async fn info(&self) -> Result<schema::Info> {
        // Counting scans each table: on the reader pool.
        let (namespaces, containers, events, images, snapshots) = self
            .store
            .read_blocking(|c| {
                Ok((
                    store::namespaces::count(c)?,
                    store::containers::count(c)?,
                    store::events::count(c)?,
                    store::images::count(c)?,
                    store::snapshots::count(c)?,
                ))
            })
            .await?;
        let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
        Ok(schema::Info {
            root: path(&self.paths.root),
            state: path(&self.paths.state),
            socket: path(&self.paths.socket),
            snapshotters: self
                .snapshots
                .names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            counts: schema::Counts {
                namespaces: namespaces as u64,
                containers: containers as u64,
                events: events as u64,
                images: images as u64,
                snapshots: snapshots as u64,
            },
        })
    }
}

/// runc's version line, or "unknown" when the binary is missing. `daemon::run` reads it
/// before the reaper starts (std's wait would race the reaper's `waitpid(-1)` later); it never
/// changes while the daemon runs.
#[allow(clippy::disallowed_methods)] // runs before the reaper exists (see above)
pub fn runc_version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        std::process::Command::new("runc")
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                let out = String::from_utf8_lossy(&o.stdout).into_owned();
                out.lines()
                    .next()
                    .and_then(|l| l.strip_prefix("runc version "))
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "unknown".to_owned())
    })
}
