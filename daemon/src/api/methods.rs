//! The method table: every JSON-RPC method berthd serves, each a thin adapter onto a service.

use std::future::Future;
use std::sync::Arc;

use jsonrpsee::core::SubscriptionError;
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{RpcModule, SubscriptionMessage};
use schema::{
    ContainerCreateParams, ContainerDeleteParams, ContainerGetParams, ContainerListParams,
    ContainerUpdateParams, EventListParams, EventSubscribeParams, NamespaceCreateParams,
    NamespaceDeleteParams, NoParams,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use super::parse_params;
use crate::app::App;
use crate::service;

/// Notification method name of `events.subscribe`.
pub const EVENTS_NOTIFICATION: &str = "events.event";

type Module = RpcModule<App>;

/// Registers `name` as an async method taking params `P` and answering with `R`.
fn method<P, R, F, Fut>(module: &mut Module, name: &'static str, handler: F)
where
    P: DeserializeOwned + Send + 'static,
    R: Serialize + 'static,
    F: Fn(Arc<App>, P) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, service::Error>> + Send,
{
    let registered = module.register_async_method(name, move |params, app, _| {
        let handler = handler.clone();
        async move {
            let p: P = parse_params(&params)?;
            let r = handler(app, p).await?;
            serde_json::to_value(r).map_err(|e| {
                ErrorObjectOwned::from(service::Error::Internal(format!("encoding result: {e}")))
            })
        }
    });
    if let Err(e) = registered {
        // Only a programming error (a duplicate name) gets here; fail loudly at start-up.
        panic!("registering {name}: {e}");
    }
}

/// Builds the module with every method berthd serves.
pub fn build_module(app: App) -> Module {
    let mut m = RpcModule::new(app);

    method(&mut m, "system.version", |app, _: NoParams| async move {
        Ok(app.version())
    });
    method(&mut m, "system.info", |app, _: NoParams| async move {
        app.info()
    });
    method(&mut m, "rpc.discover", |_app, _: NoParams| async move {
        serde_json::from_str::<Value>(schema::OPENRPC)
            .map_err(|e| service::Error::Internal(format!("the OpenRPC document: {e}")))
    });

    method(&mut m, "namespaces.list", |app, _: NoParams| async move {
        Ok(json!({ "namespaces": app.namespaces.list()? }))
    });
    method(
        &mut m,
        "namespaces.create",
        |app, p: NamespaceCreateParams| async move {
            let ns = app.namespaces.create(p.name, p.labels).await?;
            Ok(json!({ "namespace": ns }))
        },
    );
    method(
        &mut m,
        "namespaces.delete",
        |app, p: NamespaceDeleteParams| async move {
            app.namespaces.delete(p.name).await?;
            Ok(json!({}))
        },
    );

    method(
        &mut m,
        "containers.create",
        |app, p: ContainerCreateParams| async move {
            let c = app
                .containers
                .create(p.namespace, p.container, p.spec_options)
                .await?;
            Ok(json!({ "container": c }))
        },
    );
    method(
        &mut m,
        "containers.get",
        |app, p: ContainerGetParams| async move {
            Ok(json!({ "container": app.containers.get(&p.namespace, &p.id)? }))
        },
    );
    method(
        &mut m,
        "containers.list",
        |app, p: ContainerListParams| async move { app.containers.list(&p) },
    );
    method(
        &mut m,
        "containers.update",
        |app, p: ContainerUpdateParams| async move {
            let c = app
                .containers
                .update(p.namespace, p.container, p.update_mask)
                .await?;
            Ok(json!({ "container": c }))
        },
    );
    method(
        &mut m,
        "containers.delete",
        |app, p: ContainerDeleteParams| async move {
            app.containers.delete(p.namespace, p.id).await?;
            Ok(json!({}))
        },
    );

    method(
        &mut m,
        "events.list",
        |app, p: EventListParams| async move { app.events.list(&p) },
    );
    register_events_subscribe(&mut m);
    m
}

fn subscription_error(e: service::Error) -> SubscriptionError {
    let obj = ErrorObjectOwned::from(e);
    match serde_json::value::to_raw_value(&obj) {
        Ok(raw) => SubscriptionError::from_json(raw),
        Err(_) => SubscriptionError::from(obj.message()),
    }
}

/// How long a notification may wait for a subscriber's connection before it counts as stuck.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn register_events_subscribe(m: &mut Module) {
    let registered = m.register_subscription(
        "events.subscribe",
        EVENTS_NOTIFICATION,
        "events.unsubscribe",
        |params, pending, app, _| async move {
            let p: EventSubscribeParams = match parse_params(&params) {
                Ok(p) => p,
                Err(e) => {
                    pending.reject(e).await;
                    return Ok(());
                }
            };
            let mut sub = match app.events.subscribe(&p.filters, p.since) {
                Ok(s) => s,
                Err(e) => {
                    pending.reject(e).await;
                    return Ok(());
                }
            };
            let Ok(sink) = pending.accept().await else {
                return Ok(());
            };
            loop {
                let ev = tokio::select! {
                    _ = sink.closed() => return Ok(()),
                    ev = sub.next() => ev.map_err(subscription_error)?,
                };
                let msg = serde_json::value::to_raw_value(&*ev)
                    .map_err(|e| SubscriptionError::from(format!("encoding event: {e}")))?;
                if sink
                    .send_timeout(SubscriptionMessage::from(msg), SEND_TIMEOUT)
                    .await
                    .is_err()
                {
                    return Err(subscription_error(service::Error::ResourceExhausted(
                        "event subscriber stopped reading; subscription dropped".into(),
                    )));
                }
            }
        },
    );
    if let Err(e) = registered {
        panic!("registering events.subscribe: {e}");
    }
}
