//! Namespaces: isolation of every object's name space. A namespace is created on first use by
//! objects created in it, or explicitly; it can be deleted only when empty.

use schema::{Labels, Namespace};

use super::{check_id, check_labels, Result};
use crate::store::{self, Store};

#[derive(Clone)]
pub struct Namespaces {
    store: Store,
}

impl Namespaces {
    pub fn new(store: Store) -> Self {
        Namespaces { store }
    }

    pub async fn create(&self, name: String, labels: Labels) -> Result<Namespace> {
        check_id("namespace", &name)?;
        check_labels(&format!("namespace \"{name}\""), &labels)?;
        Ok(self
            .store
            .write(move |tx| store::namespaces::create(tx, &name, &labels))
            .await?)
    }

    pub async fn delete(&self, name: String) -> Result<()> {
        check_id("namespace", &name)?;
        Ok(self
            .store
            .write_reclaiming(move |tx| store::namespaces::delete(tx, &name))
            .await?)
    }

    pub fn list(&self) -> Result<Vec<Namespace>> {
        Ok(self.store.read(store::namespaces::list)?)
    }
}
