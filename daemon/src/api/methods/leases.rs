//! leases.* and gc.run

use schema::{GcRunParams, LeaseCreateParams, LeaseIdParams, LeaseListParams, LeaseResourceParams};
use serde_json::json;

use super::{method, Module};

pub(super) fn register(m: &mut Module) {
    method(m, "leases.create", |app, p: LeaseCreateParams| async move {
        let lease = app
            .leases
            .create(p.namespace, p.id, p.labels, p.expires_at)
            .await?;
        Ok(json!({ "lease": lease }))
    });
    method(m, "leases.list", |app, p: LeaseListParams| async move {
        Ok(json!({ "leases": app.leases.list(&p.namespace, &p.filters)? }))
    });
    method(m, "leases.delete", |app, p: LeaseIdParams| async move {
        app.leases.delete(p.namespace, p.id).await?;
        Ok(json!({}))
    });
    method(
        m,
        "leases.add_resource",
        |app, p: LeaseResourceParams| async move {
            app.leases
                .add_resource(p.namespace, p.id, p.resource)
                .await?;
            Ok(json!({}))
        },
    );
    method(
        m,
        "leases.delete_resource",
        |app, p: LeaseResourceParams| async move {
            app.leases
                .delete_resource(p.namespace, p.id, p.resource)
                .await?;
            Ok(json!({}))
        },
    );
    method(
        m,
        "leases.list_resources",
        |app, p: LeaseIdParams| async move {
            Ok(json!({ "resources": app.leases.resources(&p.namespace, &p.id)? }))
        },
    );
    method(m, "gc.run", |app, _p: GcRunParams| async move {
        app.gc.run().await
    });
}
