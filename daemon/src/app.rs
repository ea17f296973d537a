//! The daemon's object graph: the services every handler reaches, built once at start-up.

use std::path::PathBuf;

use serde_json::{json, Value};

use crate::content::ContentStore;
use crate::service::containers::Containers;
use crate::service::content::Content;
use crate::service::events::{EventBus, Events};
use crate::service::gc::Gc;
use crate::service::images::Images;
use crate::service::leases::Leases;
use crate::service::namespaces::Namespaces;
use crate::service::snapshots::Snapshots;
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
}

impl App {
    pub fn new(paths: Paths, store: Store, bus: EventBus, limits: Limits) -> Result<App, AppError> {
        let blobs = ContentStore::open(&paths.root)?;
        let snapshot_err = |source| AppError::Snapshots {
            root: paths.root.clone(),
            source,
        };
        let snapshotters: Vec<std::sync::Arc<dyn Snapshotter>> = vec![
            std::sync::Arc::new(snapshot::Overlay::new(&paths.root).map_err(snapshot_err)?),
            std::sync::Arc::new(snapshot::Native::new(&paths.root).map_err(snapshot_err)?),
        ];
        let snapshots = Snapshots::new(store.clone(), snapshotters);
        let images = Images::new(store.clone(), blobs.clone(), snapshots.clone(), limits);
        Ok(App {
            paths,
            namespaces: Namespaces::new(store.clone()),
            containers: Containers::new(store.clone(), images.clone(), snapshots.clone()),
            events: Events::new(store.clone(), bus),
            content: Content::new(store.clone(), blobs.clone()),
            leases: Leases::new(store.clone()),
            gc: Gc::new(store.clone(), snapshots.clone(), blobs),
            images,
            snapshots,
            store,
        })
    }

    pub fn version(&self) -> Value {
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "api_version": schema::API_VERSION,
            "runtime": { "name": "runc", "version": runc_version() },
        })
    }

    pub fn info(&self) -> Result<Value> {
        let (namespaces, containers, events, images, snapshots) = self.store.read(|c| {
            Ok((
                store::namespaces::count(c)?,
                store::containers::count(c)?,
                store::events::count(c)?,
                store::images::count(c)?,
                store::snapshots::count(c)?,
            ))
        })?;
        Ok(json!({
            "root": self.paths.root,
            "state": self.paths.state,
            "socket": self.paths.socket,
            "snapshotters": self.snapshots.names(),
            "counts": {
                "namespaces": namespaces, "containers": containers, "events": events,
                "images": images, "snapshots": snapshots,
            },
        }))
    }
}

/// runc's version line, or "unknown" when the binary is missing. Read once: it never changes
/// while the daemon runs.
fn runc_version() -> &'static str {
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
