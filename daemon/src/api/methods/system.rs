//! system.version, system.info, rpc.discover.

use schema::methods::{OpenRpcDocument, RpcDiscover, SystemInfo, SystemVersion};

use super::{method, Module};

pub(super) fn register(m: &mut Module) {
    method::<SystemVersion, _, _>(m, |app, _| async move { Ok(app.version()) });
    method::<SystemInfo, _, _>(m, |app, _| async move { app.info().await });
    method::<RpcDiscover, _, _>(m, |_app, _| async move { Ok(OpenRpcDocument) });
}
