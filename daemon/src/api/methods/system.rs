//! system.version, system.info, rpc.discover.

use schema::NoParams;
use serde_json::Value;

use super::{method, Module};
use crate::service;

pub(super) fn register(m: &mut Module) {
    method(m, "system.version", |app, _: NoParams| async move {
        Ok(app.version())
    });
    method(
        m,
        "system.info",
        |app, _: NoParams| async move { app.info() },
    );
    method(m, "rpc.discover", |_app, _: NoParams| async move {
        serde_json::from_str::<Value>(schema::OPENRPC)
            .map_err(|e| service::Error::Internal(format!("the OpenRPC document: {e}")))
    });
}
