//! leases.* and gc.run

use schema::methods::{
    GcRun, LeasesAddResource, LeasesCreate, LeasesDelete, LeasesDeleteResource, LeasesList,
    LeasesListResources,
};
use schema::{Empty, LeaseList, LeaseReply, LeaseResources};

use super::{method, Module};

pub(super) fn register(m: &mut Module) {
    method::<LeasesCreate, _, _>(m, |app, p| async move {
        let lease = app
            .leases
            .create(p.namespace, p.id, p.labels, p.expires_at)
            .await?;
        Ok(LeaseReply { lease })
    });
    method::<LeasesList, _, _>(m, |app, p| async move {
        Ok(LeaseList {
            leases: app.leases.list(&p.namespace, &p.filters).await?,
        })
    });
    method::<LeasesDelete, _, _>(m, |app, p| async move {
        app.leases.delete(p.namespace, p.id).await?;
        Ok(Empty {})
    });
    method::<LeasesAddResource, _, _>(m, |app, p| async move {
        app.leases
            .add_resource(p.namespace, p.id, p.resource)
            .await?;
        Ok(Empty {})
    });
    method::<LeasesDeleteResource, _, _>(m, |app, p| async move {
        app.leases
            .delete_resource(p.namespace, p.id, p.resource)
            .await?;
        Ok(Empty {})
    });
    method::<LeasesListResources, _, _>(m, |app, p| async move {
        Ok(LeaseResources {
            resources: app.leases.resources(&p.namespace, &p.id)?,
        })
    });
    method::<GcRun, _, _>(m, |app, _| async move { app.gc.run().await });
}
