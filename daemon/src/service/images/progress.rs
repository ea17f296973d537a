//! What `images.progress` reports: imports in flight (archive bytes read of its size) and
//! pulls in flight (per layer: size, bytes fetched, status). In memory only: progress is
//! polled, never persisted; the finished image is announced by `/images/create`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
pub struct Progress(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    next: u64,
    /// Archive path, archive size, bytes read so far.
    imports: BTreeMap<u64, (String, u64, Arc<AtomicU64>)>,
    pulls: BTreeMap<u64, Arc<PullProgress>>,
}

/// One pull: the reference as given, its full name, its phase and its layers.
pub struct PullProgress {
    reference: String,
    name: String,
    phase: Mutex<&'static str>,
    layers: Mutex<Vec<Arc<LayerProgress>>>,
}

/// One blob of a pull.
pub struct LayerProgress {
    pub digest: String,
    pub size: u64,
    pub read: AtomicU64,
    status: Mutex<&'static str>,
}

impl LayerProgress {
    /// `waiting`, `downloading`, `done` or `exists` (already in the content store).
    pub fn set(&self, status: &'static str) {
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    fn report(&self) -> schema::LayerProgress {
        schema::LayerProgress {
            digest: self.digest.clone(),
            size: self.size,
            read: self.read.load(Ordering::Relaxed),
            status: (*self.status.lock().unwrap_or_else(|p| p.into_inner())).to_owned(),
        }
    }
}

impl PullProgress {
    /// `resolving`, `fetching`, `unpacking`.
    pub fn phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }

    /// Adds a blob to follow.
    pub fn layer(&self, digest: &str, size: u64, status: &'static str) -> Arc<LayerProgress> {
        let l = Arc::new(LayerProgress {
            digest: digest.to_owned(),
            size,
            read: AtomicU64::new(0),
            status: Mutex::new(status),
        });
        self.layers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(l.clone());
        l
    }

    fn report(&self) -> schema::PullProgress {
        let layers = self
            .layers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|l| l.report())
            .collect();
        schema::PullProgress {
            reference: self.reference.clone(),
            name: self.name.clone(),
            phase: (*self.phase.lock().unwrap_or_else(|p| p.into_inner())).to_owned(),
            layers,
        }
    }
}

/// Removes its entry when the import or pull ends, however it ends.
pub struct Tracked {
    progress: Progress,
    id: u64,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut inner = self.progress.lock();
        inner.imports.remove(&self.id);
        inner.pulls.remove(&self.id);
    }
}

impl Progress {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn track_import(&self, path: &str, total: u64) -> (Tracked, Arc<AtomicU64>) {
        let read = Arc::new(AtomicU64::new(0));
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        inner
            .imports
            .insert(id, (path.to_owned(), total, read.clone()));
        let tracked = Tracked {
            progress: self.clone(),
            id,
        };
        (tracked, read)
    }

    pub fn track_pull(&self, reference: &str, name: &str) -> (Tracked, Arc<PullProgress>) {
        let pull = Arc::new(PullProgress {
            reference: reference.to_owned(),
            name: name.to_owned(),
            phase: Mutex::new("resolving"),
            layers: Mutex::new(Vec::new()),
        });
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        inner.pulls.insert(id, pull.clone());
        let tracked = Tracked {
            progress: self.clone(),
            id,
        };
        (tracked, pull)
    }

    pub fn snapshot(&self) -> schema::ImageProgress {
        let inner = self.lock();
        let imports = inner
            .imports
            .values()
            .map(|(path, total, read)| schema::ImportProgress {
                path: path.clone(),
                size: *total,
                read: read.load(Ordering::Relaxed),
            })
            .collect();
        let pulls = inner.pulls.values().map(|p| p.report()).collect();
        schema::ImageProgress { imports, pulls }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_report_their_layers_until_they_end() {
        let p = Progress::default();
        let (tracked, pull) = p.track_pull("bb", "docker.io/library/bb:latest");
        let l = pull.layer("sha256:x", 10, "waiting");
        l.read.store(4, Ordering::Relaxed);
        l.set("downloading");
        let snap = p.snapshot();
        assert_eq!(snap.pulls[0].reference, "bb");
        assert_eq!(snap.pulls[0].layers[0].read, 4);
        assert_eq!(snap.pulls[0].layers[0].status, "downloading");
        drop(tracked);
        assert_eq!(p.snapshot().pulls, []);
    }
}
