//! snapshots.*

use schema::{SnapshotCommitParams, SnapshotKeyParams, SnapshotListParams, SnapshotPrepareParams};
use serde_json::json;

use super::{method, Module};
use crate::snapshot::Kind;

pub(super) fn register(m: &mut Module) {
    for (name, kind) in [
        ("snapshots.prepare", Kind::Active),
        ("snapshots.view", Kind::View),
    ] {
        method(m, name, move |app, p: SnapshotPrepareParams| async move {
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
            Ok(json!({ "mounts": mounts }))
        });
    }
    method(
        m,
        "snapshots.commit",
        |app, p: SnapshotCommitParams| async move {
            app.snapshots
                .commit(
                    p.namespace,
                    p.snapshotter.as_deref(),
                    p.name,
                    p.key,
                    p.labels,
                )
                .await?;
            Ok(json!({}))
        },
    );
    method(
        m,
        "snapshots.mounts",
        |app, p: SnapshotKeyParams| async move {
            let mounts = app
                .snapshots
                .mounts(&p.namespace, p.snapshotter.as_deref(), &p.key)?;
            Ok(json!({ "mounts": mounts }))
        },
    );
    method(
        m,
        "snapshots.stat",
        |app, p: SnapshotKeyParams| async move {
            let info = app
                .snapshots
                .stat(&p.namespace, p.snapshotter.as_deref(), &p.key)?;
            Ok(json!({ "info": info }))
        },
    );
    method(
        m,
        "snapshots.usage",
        |app, p: SnapshotKeyParams| async move {
            let usage = app
                .snapshots
                .usage(&p.namespace, p.snapshotter.as_deref(), &p.key)
                .await?;
            Ok(json!(usage))
        },
    );
    method(
        m,
        "snapshots.list",
        |app, p: SnapshotListParams| async move {
            let list = app
                .snapshots
                .list(&p.namespace, p.snapshotter.as_deref(), &p.filters)?;
            Ok(json!({ "snapshots": list }))
        },
    );
    method(
        m,
        "snapshots.remove",
        |app, p: SnapshotKeyParams| async move {
            app.snapshots
                .remove(p.namespace, p.snapshotter.as_deref(), p.key)
                .await?;
            Ok(json!({}))
        },
    );
}
