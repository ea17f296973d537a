//! containers.*

use schema::{
    ContainerCreateParams, ContainerDeleteParams, ContainerGetParams, ContainerListParams,
    ContainerReply, ContainerUpdateParams,
};
use serde_json::json;

use super::{method, Module};
use crate::service;

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
        // WebSocket's path (HTTP and NDJSON take `api::direct`'s, around jsonrpsee): the
        // same text, which jsonrpsee then copies and checks once more.
        |app, p: ContainerListParams| async move {
            let (max, page) = (app.containers.max_reply, app.containers.page_bytes());
            match app.containers.list_json(p, page, Vec::new()).await? {
                Some(json) => {
                    let text = String::from_utf8(json)
                        .map_err(|e| service::Error::Internal(format!("list: {e}")))?;
                    serde_json::value::RawValue::from_string(text)
                        .map_err(|e| service::Error::Internal(format!("list: {e}")))
                }
                None => Err(service::Error::ResourceExhausted(format!(
                    "the reply to containers.list exceeds the limit of {max} bytes \
                     (max_response_bytes); ask for less (limit, filters)"
                ))),
            }
        },
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
