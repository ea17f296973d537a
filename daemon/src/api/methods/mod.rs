//! The method table: every JSON-RPC method berthd serves, each a thin adapter onto a service.
//! One file per domain; each registers its methods with [`method`].

mod containers;
mod events;
mod images;
mod leases;
mod namespaces;
mod snapshots;
mod system;

use std::future::Future;
use std::sync::Arc;

use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::parse_params;
use crate::app::App;
use crate::service;

pub(crate) type Module = RpcModule<App>;

/// Registers `name` as an async method taking params `P` and answering with `R`.
pub(crate) fn method<P, R, F, Fut>(module: &mut Module, name: &'static str, handler: F)
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
    system::register(&mut m);
    namespaces::register(&mut m);
    containers::register(&mut m);
    events::register(&mut m);
    images::register(&mut m);
    snapshots::register(&mut m);
    leases::register(&mut m);
    m
}
