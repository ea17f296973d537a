//! containers.*

use schema::{
    ContainerCreateParams, ContainerDeleteParams, ContainerGetParams, ContainerListParams,
    ContainerReply, ContainerUpdateParams,
};
use serde_json::json;

use super::{method, Module};

pub(super) fn register(m: &mut Module) {
    method(
        m,
        "containers.create",
        |app, p: ContainerCreateParams| async move {
            let c = app
                .containers
                .create(p.namespace, p.container, p.spec_options)
                .await?;
            Ok(ContainerReply { container: c })
        },
    );
    method(
        m,
        "containers.get",
        |app, p: ContainerGetParams| async move {
            Ok(ContainerReply {
                container: app.containers.get(&p.namespace, &p.id)?,
            })
        },
    );
    method(
        m,
        "containers.list",
        |app, p: ContainerListParams| async move { app.containers.list(&p) },
    );
    method(
        m,
        "containers.update",
        |app, p: ContainerUpdateParams| async move {
            let c = app
                .containers
                .update(p.namespace, p.container, p.update_mask)
                .await?;
            Ok(ContainerReply { container: c })
        },
    );
    method(
        m,
        "containers.delete",
        |app, p: ContainerDeleteParams| async move {
            app.containers
                .delete(p.namespace, p.id, p.keep_snapshot)
                .await?;
            Ok(json!({}))
        },
    );
}
