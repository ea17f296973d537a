//! The method table: every JSON-RPC method berthd serves, each a thin adapter onto a service.
//! One file per domain; each registers its methods with [`method`].

mod containers;
mod events;
mod export;
mod images;
mod leases;
mod logs;
mod namespaces;
mod networks;
mod snapshots;
mod stream;
mod system;
mod tasks;

use std::future::Future;
use std::sync::Arc;

use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::RpcModule;
use schema::methods::Method;
use serde::Serialize;
use serde_json::value::RawValue;

use super::parse_params;
use crate::app::App;
use crate::service::{self, Peer};

pub(crate) type Module = RpcModule<App>;

/// Registers method `M`: its params are parsed as `M::Params` and its handler answers
/// `M::Result`, the types the OpenRPC document is generated from.
pub(crate) fn method<M, F, Fut>(module: &mut Module, handler: F)
where
    M: Method,
    M::Result: Clone,
    F: Fn(Arc<App>, M::Params) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<M::Result, service::Error>> + Send,
{
    register::<M, M::Result, F, Fut>(module, handler)
}

/// Registers method `M` whose handler is told who called ([`Peer`], put in the call's
/// extensions by the transport). A call without one (no transport of berth's made it) is
/// refused rather than served as anyone.
pub(crate) fn method_peer<M, F, Fut>(module: &mut Module, handler: F)
where
    M: Method,
    M::Result: Clone,
    F: Fn(Arc<App>, M::Params, Peer) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<M::Result, service::Error>> + Send,
{
    let registered = module.register_async_method(M::NAME, move |params, app, ext| {
        let handler = handler.clone();
        let peer = ext.get::<Peer>().copied();
        async move {
            let p: M::Params = parse_params(&params)?;
            let peer = peer.ok_or_else(|| {
                service::Error::Internal(format!("{}: the caller is unknown", M::NAME))
            })?;
            handler(app, p, peer).await.map_err(ErrorObjectOwned::from)
        }
    });
    if let Err(e) = registered {
        panic!("registering {}: {e}", M::NAME);
    }
}

/// Registers method `M` whose handler answers `M::Result` already encoded
/// (`containers.list`, written from the store's rows; a unit test holds that text to
/// serde's encoding of `M::Result`).
pub(crate) fn method_encoded<M, F, Fut>(module: &mut Module, handler: F)
where
    M: Method,
    F: Fn(Arc<App>, M::Params) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<Box<RawValue>, service::Error>> + Send,
{
    register::<M, Box<RawValue>, F, Fut>(module, handler)
}

fn register<M, R, F, Fut>(module: &mut Module, handler: F)
where
    M: Method,
    R: Serialize + Clone + Send + 'static,
    F: Fn(Arc<App>, M::Params) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<R, service::Error>> + Send,
{
    let registered = module.register_async_method(M::NAME, move |params, app, _| {
        let handler = handler.clone();
        async move {
            let p: M::Params = parse_params(&params)?;
            handler(app, p).await.map_err(ErrorObjectOwned::from)
        }
    });
    if let Err(e) = registered {
        // Only a programming error (a duplicate name) gets here; fail loudly at start-up.
        panic!("registering {}: {e}", M::NAME);
    }
}

/// Builds the module with every method berthd serves.
pub fn build_module(app: App) -> Module {
    let mut m = RpcModule::new(app);
    system::register(&mut m);
    namespaces::register(&mut m);
    containers::register(&mut m);
    events::register(&mut m);
    tasks::register(&mut m);
    images::register(&mut m);
    snapshots::register(&mut m);
    leases::register(&mut m);
    networks::register(&mut m);
    logs::register(&mut m);
    export::register(&mut m);
    m
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use crate::app::{App, Paths};
    use crate::service::events::EventBus;
    use crate::store::Store;

    /// rpc.discover must describe exactly what is served: a method added without documenting
    /// it, or documented but never registered, fails here.
    #[test]
    fn openrpc_document_lists_exactly_the_served_methods() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("meta.db"), Arc::new(|_| {})).expect("store");
        let paths = Paths {
            root: dir.path().into(),
            state: dir.path().into(),
            socket: dir.path().join("s.sock"),
        };
        let reaper = crate::runtime::reaper::tests::shared_reaper();
        let config = crate::config::Config::default();
        let keeper = crate::keeper::Keeper::new(dir.path(), reaper.clone());
        let app = App::new(
            paths,
            store.clone(),
            EventBus::default(),
            reaper,
            keeper,
            &config,
            Default::default(),
        )
        .expect("app");
        let module = super::build_module(app);
        let served: BTreeSet<String> = module.method_names().map(str::to_owned).collect();
        let doc: serde_json::Value = serde_json::from_str(schema::OPENRPC).expect("document");
        let listed: BTreeSet<String> = doc["methods"]
            .as_array()
            .expect("methods")
            .iter()
            .map(|m| m["name"].as_str().expect("name").to_owned())
            .collect();
        let undocumented: Vec<_> = served.difference(&listed).collect();
        let unserved: Vec<_> = listed.difference(&served).collect();
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "served but not in schema/openrpc.json: {undocumented:?}; \
             documented but not served: {unserved:?} (add it to schema/src/methods.rs)"
        );
        store.close();
    }
}
