//! networks.*

use schema::methods::{NetworksCreate, NetworksDelete, NetworksGet, NetworksList};
use schema::{Empty, NetworkList, NetworkReply};

use super::{method, Module};

pub(super) fn register(m: &mut Module) {
    method::<NetworksCreate, _, _>(m, |app, p| async move {
        Ok(NetworkReply {
            network: app.networks.create(p).await?,
        })
    });
    method::<NetworksGet, _, _>(m, |app, p| async move {
        Ok(NetworkReply {
            network: app.networks.get(&p.name).await?,
        })
    });
    method::<NetworksList, _, _>(m, |app, _p| async move {
        Ok(NetworkList {
            networks: app.networks.list()?,
        })
    });
    method::<NetworksDelete, _, _>(m, |app, p| async move {
        app.networks.delete(&p.name).await?;
        Ok(Empty {})
    });
}
