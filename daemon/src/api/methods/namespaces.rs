//! namespaces.*

use schema::{NamespaceCreateParams, NamespaceDeleteParams, NoParams};
use serde_json::json;

use super::{method, Module};

pub(super) fn register(m: &mut Module) {
    method(m, "namespaces.list", |app, _: NoParams| async move {
        Ok(json!({ "namespaces": app.namespaces.list()? }))
    });
    method(
        m,
        "namespaces.create",
        |app, p: NamespaceCreateParams| async move {
            let ns = app.namespaces.create(p.name, p.labels).await?;
            Ok(json!({ "namespace": ns }))
        },
    );
    method(
        m,
        "namespaces.delete",
        |app, p: NamespaceDeleteParams| async move {
            app.namespaces.delete(p.name).await?;
            Ok(json!({}))
        },
    );
}
