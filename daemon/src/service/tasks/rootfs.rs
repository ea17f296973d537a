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

/// Rootfs for containers without a snapshot: `spec.root.path` is a host directory (e.g.
/// `berth run --rootfs DIR`). Containers with a snapshot key need the snapshots service,
/// which this source refuses.
pub struct HostRootfs;

impl RootfsSource for HostRootfs {
    fn mounts<'a>(
        &'a self,
        ns: &'a str,
        container: &'a Container,
    ) -> BoxFuture<'a, Result<Vec<Mount>>> {
        Box::pin(async move {
            if container.snapshot_key.is_empty() {
                return Ok(Vec::new());
            }
            Err(Error::FailedPrecondition(format!(
                "container \"{}\" in namespace \"{ns}\" has snapshot \"{}\", but no snapshot \
                 service is available to mount it",
                container.id, container.snapshot_key
            )))
        })
    }
}
