//! Importing an archive the client streams over the socket (`berth images import -`), so
//! the client needs no path berthd can open as root: `images.upload_begin` opens an upload,
//! `images.upload_write` appends base64 chunks to it, `images.upload_commit` imports what
//! arrived and answers the import, `images.upload_abort` (or a minute without a chunk)
//! drops it.
//!
//! An upload is a capability of the peer that began it: its id is 128 random bits, and it
//! answers only calls from the same uid in the same namespace (anything else is
//! `not_found`, as if it did not exist). Each peer (uid) holds at most
//! `max_uploads_per_peer` uploads, and one upload at most `max_upload_bytes`.
//!
//! The archive is spooled to a file under `<root>/uploads` while it arrives and imported
//! only at commit, at disk speed: an upload that trickles (or stalls) never holds the GC
//! lock, which an import must hold while it writes blobs gc could otherwise take. Spools
//! are removed by commit, abort, the idle timer, and at start-up.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use schema::Image;

use super::import::ImportOptions;
use super::Images;
use crate::service::{check_id, Error, Peer, Result};

/// An upload that sends no chunk for this long is aborted.
const IDLE: Duration = Duration::from_secs(60);
/// Most bytes of one `images.upload_write`.
pub const MAX_CHUNK: usize = 4 << 20;
/// Uploads in flight at once, all peers together.
const MAX_UPLOADS: usize = 64;

/// What uploads may hold (configuration).
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Most archive bytes one upload may send.
    pub max_bytes: u64,
    /// Most uploads one uid may have open.
    pub per_peer: u32,
}

/// The uploads in flight, shared by every clone of [`Images`].
pub struct Uploads {
    dir: PathBuf,
    limits: UploadLimits,
    open: Mutex<HashMap<String, Arc<Upload>>>,
}

struct Upload {
    ns: String,
    owner: Peer,
    opts: Mutex<Option<ImportOptions>>,
    path: PathBuf,
    /// The spool and the bytes written to it; `None` once committed or aborted.
    file: Mutex<Option<(File, u64)>>,
    touched: Mutex<Instant>,
}

impl Uploads {
    /// Uploads spooled under `dir`, which is emptied: no upload outlives a berthd.
    pub fn new(dir: &Path, limits: UploadLimits) -> std::io::Result<Uploads> {
        if dir.exists() {
            for e in std::fs::read_dir(dir)?.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        crate::layout::private_dir(dir)?;
        Ok(Uploads {
            dir: dir.to_owned(),
            limits,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Upload>>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The upload `id` if `peer` began it in `ns`; anyone else learns nothing of it.
    fn get(&self, ns: &str, id: &str, peer: Peer) -> Result<Arc<Upload>> {
        self.lock()
            .get(id)
            .filter(|u| u.answers(ns, peer))
            .cloned()
            .ok_or_else(|| not_found(id))
    }

    /// [`Uploads::get`], removing it from the open uploads.
    fn take(&self, ns: &str, id: &str, peer: Peer) -> Result<Arc<Upload>> {
        let mut open = self.lock();
        if !open.get(id).is_some_and(|u| u.answers(ns, peer)) {
            return Err(not_found(id));
        }
        open.remove(id).ok_or_else(|| not_found(id))
    }
}

fn not_found(id: &str) -> Error {
    Error::NotFound(format!(
        "upload \"{id}\" not found (committed, aborted, idle for over {}s, or not yours)",
        IDLE.as_secs()
    ))
}

/// 128 random bits from the kernel, as hex.
fn random_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the valid, exclusively
    // borrowed buffer; flags 0 blocks only until the pool is initialised at boot.
    let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if usize::try_from(n).ok() != Some(bytes.len()) {
        return Err(Error::failure(
            "drawing an upload id",
            &std::io::Error::last_os_error(),
        ));
    }
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Upload {
    /// Whether a call from `peer` in namespace `ns` may use this upload.
    fn answers(&self, ns: &str, peer: Peer) -> bool {
        self.ns == ns && self.owner.uid == peer.uid
    }

    fn touch(&self) {
        *self.touched.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn idle_for(&self) -> Duration {
        self.touched
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .elapsed()
    }

    /// Closes the spool and removes it.
    fn discard(&self) {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Images {
    pub async fn upload_begin(
        &self,
        ns: String,
        opts: ImportOptions,
        peer: Peer,
    ) -> Result<String> {
        check_id("namespace", &ns)?;
        if let Some(n) = &opts.name {
            super::import::check_image_name(n)?;
        }
        self.check_space("beginning an upload")?;
        let id = format!("upload-{}", random_id()?);
        let path = self.uploads.dir.join(&id);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::failure("creating an upload's spool", &e))?;
        let upload = Arc::new(Upload {
            ns,
            owner: peer,
            opts: Mutex::new(Some(opts)),
            path,
            file: Mutex::new(Some((file, 0))),
            touched: Mutex::new(Instant::now()),
        });
        {
            let mut open = self.uploads.lock();
            let mine = open.values().filter(|u| u.owner.uid == peer.uid).count();
            let refused = if mine >= self.uploads.limits.per_peer as usize {
                Some(format!(
                    "uid {} has {mine} uploads open, the most max_uploads_per_peer allows; \
                     commit or abort one first",
                    peer.uid
                ))
            } else if open.len() >= MAX_UPLOADS {
                Some(format!(
                    "{MAX_UPLOADS} uploads are open already; commit or abort one first"
                ))
            } else {
                None
            };
            if let Some(msg) = refused {
                drop(open);
                upload.discard();
                return Err(Error::ResourceExhausted(msg));
            }
            open.insert(id.clone(), Arc::clone(&upload));
        }
        self.watch_idle(id.clone(), Arc::downgrade(&upload));
        Ok(id)
    }

    /// Aborts the upload once it has sent nothing for [`IDLE`].
    fn watch_idle(&self, id: String, upload: std::sync::Weak<Upload>) {
        let images = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(IDLE / 4).await;
                let Some(up) = upload.upgrade() else { return };
                if up.idle_for() > IDLE {
                    tracing::info!(upload = %id, "aborting an idle image upload");
                    if images.uploads.take(&up.ns, &id, up.owner).is_ok() {
                        up.discard();
                    }
                    return;
                }
            }
        });
    }

    /// Appends `data` (base64) to the upload's spool.
    pub async fn upload_write(&self, ns: &str, id: &str, data: &str, peer: Peer) -> Result<()> {
        let up = self.uploads.get(ns, id, peer)?;
        let data = crate::service::decode_base64(&format!("upload \"{id}\""), data)?;
        if data.len() > MAX_CHUNK {
            return Err(Error::InvalidArgument(format!(
                "upload \"{id}\": {} bytes in one chunk; the limit is {MAX_CHUNK}",
                data.len()
            )));
        }
        self.check_space(&format!("upload \"{id}\""))?;
        up.touch();
        let max = self.uploads.limits.max_bytes;
        let (id2, up2) = (id.to_owned(), Arc::clone(&up));
        tokio::task::spawn_blocking(move || {
            let mut guard = up2.file.lock().unwrap_or_else(PoisonError::into_inner);
            let Some((file, written)) = guard.as_mut() else {
                return Err(not_found(&id2));
            };
            let after = *written + data.len() as u64;
            if after > max {
                return Err(Error::ResourceExhausted(format!(
                    "upload \"{id2}\": {after} bytes would pass max_upload_bytes ({max}); \
                     abort it"
                )));
            }
            file.write_all(&data)
                .map_err(|e| Error::failure(format!("upload \"{id2}\": spooling"), &e))?;
            *written = after;
            Ok(())
        })
        .await
        .map_err(|e| Error::Internal(format!("upload \"{id}\": {e}")))??;
        up.touch();
        Ok(())
    }

    /// Imports what the upload sent and answers the import; the upload is gone either way.
    pub async fn upload_commit(&self, ns: &str, id: &str, peer: Peer) -> Result<Vec<Image>> {
        let up = self.uploads.take(ns, id, peer)?;
        let spool = up
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let opts = up
            .opts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let (Some((mut file, total)), Some(opts)) = (spool, opts) else {
            return Err(not_found(id));
        };
        let _ = std::fs::remove_file(&up.path);
        // The spool stays readable through the open file after its name is gone.
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::failure(format!("upload \"{id}\": rewinding"), &e))?;
        self.import_from(up.ns.clone(), file, id, total, opts).await
    }

    /// Drops the upload and its spool.
    pub fn upload_abort(&self, ns: &str, id: &str, peer: Peer) -> bool {
        match self.uploads.take(ns, id, peer) {
            Ok(up) => {
                up.discard();
                true
            }
            Err(_) => false,
        }
    }
}
