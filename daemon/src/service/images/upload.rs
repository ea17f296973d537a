//! Importing an archive the client streams over the socket (`berth images import -`), so
//! the client needs no path berthd can open as root: `images.upload_begin` starts an import
//! that reads a pipe, `images.upload_write` feeds it base64 chunks (blocking while the
//! importer is behind, so memory stays bounded), `images.upload_commit` ends the stream and
//! answers the import, `images.upload_abort` (or a minute without a chunk) fails it. A
//! stream cut short leaves only unreferenced blobs, which gc removes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use schema::Image;
use tokio::sync::oneshot;

use super::import::ImportOptions;
use super::Images;
use crate::service::{check_id, Error, Result};

/// An upload that sends no chunk for this long is aborted.
const IDLE: Duration = Duration::from_secs(60);
/// Most bytes of one `images.upload_write`.
pub const MAX_CHUNK: usize = 4 << 20;
/// Uploads in flight at once.
const MAX_UPLOADS: usize = 16;

/// The uploads in flight, shared by every clone of [`Images`].
#[derive(Default)]
pub struct Uploads {
    next: AtomicU64,
    open: Mutex<HashMap<String, Upload>>,
}

struct Upload {
    writer: Arc<Mutex<File>>,
    aborted: Arc<AtomicBool>,
    touched: Arc<Mutex<Instant>>,
    done: oneshot::Receiver<Result<Vec<Image>>>,
}

/// The pipe's read end; an abort turns its end of file into an error, so a stream cut off
/// at an entry boundary is never taken for a whole archive.
struct Incoming {
    pipe: File,
    aborted: Arc<AtomicBool>,
}

impl Read for Incoming {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0 && self.aborted.load(Ordering::SeqCst) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the upload was aborted before its end",
            ));
        }
        Ok(n)
    }
}

impl Uploads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Upload>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn not_found(id: &str) -> Error {
        Error::NotFound(format!(
            "upload \"{id}\" not found (committed, aborted, or idle for over {}s)",
            IDLE.as_secs()
        ))
    }
}

impl Images {
    pub async fn upload_begin(&self, ns: String, opts: ImportOptions) -> Result<String> {
        check_id("namespace", &ns)?;
        if let Some(n) = &opts.name {
            super::import::check_image_name(n)?;
        }
        if self.uploads.lock().len() >= MAX_UPLOADS {
            return Err(Error::ResourceExhausted(format!(
                "{MAX_UPLOADS} uploads are in flight already; commit or abort one first"
            )));
        }
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::failure("opening an upload pipe", &e))?;
        let id = format!(
            "upload-{}",
            self.uploads.next.fetch_add(1, Ordering::Relaxed) + 1
        );
        let aborted = Arc::new(AtomicBool::new(false));
        let incoming = Incoming {
            pipe: File::from(r),
            aborted: Arc::clone(&aborted),
        };
        let (tx, done) = oneshot::channel();
        let images = self.clone();
        let label = id.clone();
        tokio::spawn(async move {
            let r = images.import_from(ns, incoming, &label, 0, opts).await;
            let _ = tx.send(r);
        });
        let touched = Arc::new(Mutex::new(Instant::now()));
        let writer = Arc::new(Mutex::new(File::from(w)));
        self.uploads.lock().insert(
            id.clone(),
            Upload {
                writer,
                aborted,
                touched: Arc::clone(&touched),
                done,
            },
        );
        self.watch_idle(id.clone(), touched);
        Ok(id)
    }

    /// Aborts the upload once it has sent nothing for [`IDLE`].
    fn watch_idle(&self, id: String, touched: Arc<Mutex<Instant>>) {
        let images = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(IDLE / 4).await;
                let last = *touched.lock().unwrap_or_else(PoisonError::into_inner);
                if !images.uploads.lock().contains_key(&id) {
                    return;
                }
                if last.elapsed() > IDLE {
                    tracing::info!(upload = %id, "aborting an idle image upload");
                    images.upload_abort(&id);
                    return;
                }
            }
        });
    }

    /// Feeds `data` (base64) to the import; waits while it is behind.
    pub async fn upload_write(&self, id: &str, data: &str) -> Result<()> {
        let data = crate::service::decode_base64(&format!("upload \"{id}\""), data)?;
        if data.len() > MAX_CHUNK {
            return Err(Error::InvalidArgument(format!(
                "upload \"{id}\": {} bytes in one chunk; the limit is {MAX_CHUNK}",
                data.len()
            )));
        }
        let (writer, touched) = {
            let open = self.uploads.lock();
            let up = open.get(id).ok_or_else(|| Uploads::not_found(id))?;
            (Arc::clone(&up.writer), Arc::clone(&up.touched))
        };
        *touched.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        let id2 = id.to_owned();
        tokio::task::spawn_blocking(move || {
            writer
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .write_all(&data)
        })
        .await
        .map_err(|e| Error::Internal(format!("upload \"{id2}\": {e}")))?
        // The importer stopped reading: it failed, and commit says why.
        .map_err(|e| {
            Error::FailedPrecondition(format!(
                "upload \"{id}\": the import stopped reading ({e}); commit to see why"
            ))
        })?;
        *touched.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
        Ok(())
    }

    /// Ends the stream and answers the import.
    pub async fn upload_commit(&self, id: &str) -> Result<Vec<Image>> {
        let up = self
            .uploads
            .lock()
            .remove(id)
            .ok_or_else(|| Uploads::not_found(id))?;
        drop(up.writer);
        up.done
            .await
            .map_err(|_| Error::Internal(format!("upload \"{id}\": the import vanished")))?
    }

    /// Fails the import; what it wrote is left for gc.
    pub fn upload_abort(&self, id: &str) -> bool {
        match self.uploads.lock().remove(id) {
            Some(up) => {
                up.aborted.store(true, Ordering::SeqCst);
                drop(up.writer);
                true
            }
            None => false,
        }
    }
}
