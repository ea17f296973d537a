//! Where a task's root filesystem comes from: the seam between tasks and snapshots.

use std::future::Future;
use std::pin::Pin;

use schema::{Container, Mount};

use crate::service::{Error, Result};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Gives the mounts that make up a container's rootfs; the task service mounts them on
/// the bundle's `rootfs` directory. No mounts means the spec's `root.path` is used as is
/// (it must then be an absolute host directory).
pub trait RootfsSource: Send + Sync {
    fn mounts<'a>(
        &'a self,
        ns: &'a str,
        container: &'a Container,
    ) -> BoxFuture<'a, Result<Vec<Mount>>>;
}

/// The snapshot service is the rootfs source: a container's snapshot key names its rootfs
/// snapshot; without one, `spec.root.path` is a host directory (e.g. `berth run --rootfs DIR`).
impl RootfsSource for crate::service::snapshots::Snapshots {
    fn mounts<'a>(
        &'a self,
        ns: &'a str,
        container: &'a Container,
    ) -> BoxFuture<'a, Result<Vec<Mount>>> {
        Box::pin(async move {
            if container.snapshot_key.is_empty() {
                return Ok(Vec::new());
            }
            let snapshotter = Some(container.snapshotter.as_str()).filter(|s| !s.is_empty());
            crate::service::snapshots::Snapshots::mounts(
                self,
                ns,
                snapshotter,
                &container.snapshot_key,
            )
            .map_err(|e| match e {
                Error::NotFound(m) => Error::FailedPrecondition(format!(
                    "container \"{}\" in namespace \"{ns}\": its rootfs snapshot is gone: {m}",
                    container.id
                )),
                other => other,
            })
        })
    }
}
