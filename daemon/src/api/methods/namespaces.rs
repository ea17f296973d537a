//! namespaces.*

use schema::methods::{NamespacesCreate, NamespacesDelete, NamespacesList};
use schema::{Empty, NamespaceList, NamespaceReply};

use super::{method, Module};

pub(super) fn register(m: &mut Module) {
    method::<NamespacesList, _, _>(m, |app, _| async move {
        Ok(NamespaceList {
            namespaces: app.namespaces.list()?,
        })
    });
    method::<NamespacesCreate, _, _>(m, |app, p| async move {
        let namespace = app.namespaces.create(p.name, p.labels).await?;
        Ok(NamespaceReply { namespace })
    });
    method::<NamespacesDelete, _, _>(m, |app, p| async move {
        app.namespaces.delete(p.name).await?;
        Ok(Empty {})
    });
}
