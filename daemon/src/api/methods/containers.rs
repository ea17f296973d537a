//! containers.*

use schema::methods::{
    ContainersCreate, ContainersDelete, ContainersGet, ContainersList, ContainersUpdate,
};
use schema::{ContainerReply, Empty};

use super::{method, method_encoded, Module};
use crate::service;

pub(super) fn register(m: &mut Module) {
    method::<ContainersCreate, _, _>(m, |app, p| async move {
        let container = app
            .containers
            .create(p.namespace, p.container, p.spec_options)
            .await?;
        Ok(ContainerReply { container })
    });
    method::<ContainersGet, _, _>(m, |app, p| async move {
        Ok(ContainerReply {
            container: app.containers.get(&p.namespace, &p.id)?,
        })
    });
    // WebSocket's path (HTTP and NDJSON take `api::direct`'s, around jsonrpsee): the same
    // text, which jsonrpsee then copies and checks once more.
    method_encoded::<ContainersList, _, _>(m, |app, p| async move {
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
    });
    method::<ContainersUpdate, _, _>(m, |app, p| async move {
        let container = app
            .containers
            .update(p.namespace, p.container, p.update_mask)
            .await?;
        Ok(ContainerReply { container })
    });
    method::<ContainersDelete, _, _>(m, |app, p| async move {
        let torn_down = app.tasks.torn_down(&p.namespace, &p.id);
        app.containers
            .delete(p.namespace, p.id, p.keep_snapshot, torn_down)
            .await?;
        Ok(Empty {})
    });
}
