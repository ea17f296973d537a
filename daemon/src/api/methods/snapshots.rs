//! snapshots.*

use schema::methods::{
    Method, SnapshotsCommit, SnapshotsList, SnapshotsMounts, SnapshotsPrepare, SnapshotsRemove,
    SnapshotsStat, SnapshotsUsage, SnapshotsView,
};
use schema::{Empty, Mounts, SnapshotInfoReply, SnapshotList, SnapshotPrepareParams};

use super::{method, Module};
use crate::snapshot::Kind;

/// `snapshots.prepare` and `snapshots.view`: the same params and reply, another kind.
fn register_prepare<M>(m: &mut Module, kind: Kind)
where
    M: Method<Params = SnapshotPrepareParams, Result = Mounts>,
{
    method::<M, _, _>(m, move |app, p| async move {
        let mounts = app
            .snapshots
            .prepare(
                p.namespace,
                p.snapshotter.as_deref(),
                p.key,
                p.parent,
                p.labels,
                kind,
            )
            .await?;
        Ok(Mounts { mounts })
    });
}

pub(super) fn register(m: &mut Module) {
    register_prepare::<SnapshotsPrepare>(m, Kind::Active);
    register_prepare::<SnapshotsView>(m, Kind::View);
    method::<SnapshotsCommit, _, _>(m, |app, p| async move {
        app.snapshots
            .commit(
                p.namespace,
                p.snapshotter.as_deref(),
                p.name,
                p.key,
                p.labels,
            )
            .await?;
        Ok(Empty {})
    });
    method::<SnapshotsMounts, _, _>(m, |app, p| async move {
        let mounts = app
            .snapshots
            .mounts(&p.namespace, p.snapshotter.as_deref(), &p.key)?;
        Ok(Mounts { mounts })
    });
    method::<SnapshotsStat, _, _>(m, |app, p| async move {
        let info = app
            .snapshots
            .stat(&p.namespace, p.snapshotter.as_deref(), &p.key)?;
        Ok(SnapshotInfoReply { info })
    });
    method::<SnapshotsUsage, _, _>(m, |app, p| async move {
        app.snapshots
            .usage(&p.namespace, p.snapshotter.as_deref(), &p.key)
            .await
    });
    method::<SnapshotsList, _, _>(m, |app, p| async move {
        let snapshots = app
            .snapshots
            .list(&p.namespace, p.snapshotter.as_deref(), &p.filters)
            .await?;
        Ok(SnapshotList { snapshots })
    });
    method::<SnapshotsRemove, _, _>(m, |app, p| async move {
        app.snapshots
            .remove(p.namespace, p.snapshotter.as_deref(), p.key)
            .await?;
        Ok(Empty {})
    });
}
