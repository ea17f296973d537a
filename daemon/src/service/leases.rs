//! Leases: named holds on content and snapshots that `gc.run` respects until the lease is
//! deleted or expires.

use schema::{Labels, Lease, LeaseResource};

use super::gc::GcTrigger;
use super::{check_id, check_labels, Error, Result};
use crate::store::{self, Store};

#[derive(Clone)]
pub struct Leases {
    store: Store,
    /// Pulled when a lease goes: what it held may be garbage now.
    gc: GcTrigger,
}

static NEXT_LEASE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Normalises an RFC 3339 time to berth's form (UTC, nanoseconds) so that stored times
/// compare as strings.
fn normalise_time(t: &str) -> Result<String> {
    let parsed = humantime::parse_rfc3339_weak(t).map_err(|e| {
        Error::InvalidArgument(format!("expires_at \"{t}\" is not an RFC 3339 time: {e}"))
    })?;
    Ok(humantime::format_rfc3339_nanos(parsed).to_string())
}

fn check_resource(r: &LeaseResource) -> Result<()> {
    let ok = r.kind == "content"
        || r.kind
            .strip_prefix("snapshots/")
            .is_some_and(|s| !s.is_empty());
    if !ok || r.id.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "lease resource {{id: \"{}\", type: \"{}\"}}: type must be \"content\" or \
             \"snapshots/<snapshotter>\" and id non-empty",
            r.id, r.kind
        )));
    }
    Ok(())
}

impl Leases {
    pub fn new(store: Store, gc: GcTrigger) -> Self {
        Leases { store, gc }
    }

    pub async fn create(
        &self,
        ns: String,
        id: Option<String>,
        labels: Labels,
        expires_at: Option<String>,
    ) -> Result<Lease> {
        check_id("namespace", &ns)?;
        let id = id.unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            let n = NEXT_LEASE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("lease-{nanos}-{n}")
        });
        check_id("lease id", &id)?;
        check_labels(&format!("lease \"{id}\""), &labels)?;
        let expires = match expires_at.filter(|e| !e.is_empty()) {
            Some(e) => normalise_time(&e)?,
            None => String::new(),
        };
        let now = store::now();
        Ok(self
            .store
            .write(move |tx| store::leases::create(tx, &ns, &id, &labels, &expires, &now))
            .await?)
    }

    pub async fn list(&self, ns: &str, filters: &[String]) -> Result<Vec<Lease>> {
        check_id("namespace", ns)?;
        let filter = crate::filter::parse(filters)?;
        let ns2 = ns.to_owned();
        let all = self
            .store
            .read_blocking(move |c| store::leases::list(c, &ns2))
            .await?;
        Ok(all
            .into_iter()
            .filter(|l| filter.matches(&Adapt(l)))
            .collect())
    }

    pub async fn delete(&self, ns: String, id: String) -> Result<()> {
        check_id("namespace", &ns)?;
        self.store
            .write_reclaiming(move |tx| store::leases::delete(tx, &ns, &id))
            .await?;
        self.gc.pull();
        Ok(())
    }

    pub async fn add_resource(&self, ns: String, id: String, r: LeaseResource) -> Result<()> {
        check_id("namespace", &ns)?;
        check_resource(&r)?;
        self.store
            .write(move |tx| store::leases::add_resource(tx, &ns, &id, &r))
            .await?;
        Ok(())
    }

    pub async fn delete_resource(&self, ns: String, id: String, r: LeaseResource) -> Result<()> {
        check_id("namespace", &ns)?;
        check_resource(&r)?;
        self.store
            .write_reclaiming(move |tx| store::leases::delete_resource(tx, &ns, &id, &r))
            .await?;
        Ok(())
    }

    pub fn resources(&self, ns: &str, id: &str) -> Result<Vec<LeaseResource>> {
        check_id("namespace", ns)?;
        Ok(self.store.read(|c| store::leases::resources(c, ns, id))?)
    }
}

struct Adapt<'a>(&'a Lease);

impl crate::filter::Adaptor for Adapt<'_> {
    fn field(&self, path: &[String]) -> Option<std::borrow::Cow<'_, str>> {
        match path {
            [f] if f == "id" => Some(self.0.id.as_str().into()),
            [l, key @ ..] if l == "labels" && !key.is_empty() => {
                self.0.labels.get(&key.join(".")).map(|v| v.as_str().into())
            }
            _ => None,
        }
    }
}
