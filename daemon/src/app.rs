//! The daemon's object graph: the services every handler reaches, built once at start-up.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::config::Config;
use crate::runtime::reaper::Reaper;
use crate::service::containers::Containers;
use crate::service::events::{EventBus, Events};
use crate::service::namespaces::Namespaces;
use crate::service::tasks::{HostRootfs, Tasks};
use crate::service::Result;
use crate::store::{self, Store};

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
    pub tasks: Tasks,
    /// The daemon's one reaper: berthd is a child subreaper from start-up.
    pub reaper: Reaper,
}

impl App {
    /// `reaper` must be the process's only one ([`Reaper::start`] at start-up).
    pub fn new(paths: Paths, store: Store, bus: EventBus, reaper: Reaper, config: &Config) -> App {
        let tasks = Tasks::new(
            store.clone(),
            reaper.clone(),
            paths.state.clone(),
            config.clone(),
            Arc::new(HostRootfs),
        );
        App {
            tasks,
            reaper,
            paths,
            namespaces: Namespaces::new(store.clone()),
            containers: Containers::new(store.clone()),
            events: Events::new(store.clone(), bus),
            store,
        }
    }

    pub fn version(&self) -> Value {
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "api_version": schema::API_VERSION,
            "runtime": { "name": "runc", "version": runc_version() },
        })
    }

    pub fn info(&self) -> Result<Value> {
        let (namespaces, containers, events) = self.store.read(|c| {
            Ok((
                store::namespaces::count(c)?,
                store::containers::count(c)?,
                store::events::count(c)?,
            ))
        })?;
        Ok(json!({
            "root": self.paths.root,
            "state": self.paths.state,
            "socket": self.paths.socket,
            "snapshotters": Vec::<String>::new(),
            "counts": { "namespaces": namespaces, "containers": containers, "events": events },
        }))
    }
}

/// runc's version line, or "unknown" when the binary is missing. `daemon::run` reads it
/// before the reaper starts (std's wait would race the reaper's `waitpid(-1)` later); it never
/// changes while the daemon runs.
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
