//! The lease a pull holds: it names every blob the pull fetches, so `gc.run` keeps them
//! while the pull runs; it is deleted when the pull ends (or, if berthd dies, expires).

use std::time::{Duration, SystemTime};

use schema::LeaseResource;

use crate::service::Result;
use crate::store::{self, Store};

/// A pull's lease outlives a daemon crash by at most this long.
const LEASE_TTL: Duration = Duration::from_secs(24 * 3600);

/// The lease that guards a pull's blobs; deleted when the pull ends, however it ends.
pub struct PullLease {
    store: Store,
    ns: String,
    id: String,
    released: bool,
}

impl PullLease {
    pub async fn create(store: &Store, ns: &str, name: &str) -> Result<PullLease> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let id = format!("pull-{nanos}-{n}");
        let expires = humantime::format_rfc3339_nanos(SystemTime::now() + LEASE_TTL).to_string();
        let labels = [("berth.pull/ref".to_owned(), name.to_owned())].into();
        let (n, i) = (ns.to_owned(), id.clone());
        store
            .write(move |tx| store::leases::create(tx, &n, &i, &labels, &expires, &store::now()))
            .await?;
        Ok(PullLease {
            store: store.clone(),
            ns: ns.to_owned(),
            id,
            released: false,
        })
    }

    pub async fn hold(&self, digests: Vec<String>) -> Result<()> {
        let (ns, id) = (self.ns.clone(), self.id.clone());
        self.store
            .write(move |tx| {
                for d in &digests {
                    let r = LeaseResource {
                        id: d.clone(),
                        kind: "content".into(),
                    };
                    store::leases::add_resource(tx, &ns, &id, &r)?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    pub async fn release(mut self) {
        self.released = true;
        let (ns, id) = (self.ns.clone(), self.id.clone());
        if let Err(e) = self
            .store
            .write_reclaiming(move |tx| store::leases::delete(tx, &ns, &id))
            .await
        {
            tracing::warn!(lease = %self.id, error = %e, "releasing a pull's lease");
        }
    }
}

impl Drop for PullLease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (store, ns, id) = (self.store.clone(), self.ns.clone(), self.id.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = store
                    .write_reclaiming(move |tx| store::leases::delete(tx, &ns, &id))
                    .await;
            });
        }
    }
}
