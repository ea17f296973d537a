//! Domain services: the rules of berth's objects. They validate input, decide what a request
//! means, and call the store; they never see JSON-RPC or HTTP.

pub mod containers;
pub mod content;
pub mod events;
pub mod gc;
pub mod images;
pub mod leases;
pub mod logs;
pub mod namespaces;
pub mod networks;
pub mod snapshots;
pub mod tasks;

use schema::{identifiers, ErrorKind, Labels};

use crate::filter::FilterError;
use crate::store::StoreError;

/// A domain error: what the caller did wrong or what state refused the request.
/// The API layer maps each variant to its stable JSON-RPC code via [`Error::kind`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or breaks a rule (identifier, size, update mask...).
    #[error("{0}")]
    InvalidArgument(String),
    /// The named object does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The named object exists already.
    #[error("{0}")]
    AlreadyExists(String),
    /// The object's state does not allow the request now.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The process's command could not be run: a `failed_precondition` whose `data.reason`
    /// says why, so a client can exit as a shell does (127 not found, 126 not executable).
    #[error("{message}")]
    CannotExec {
        message: String,
        reason: ExecFailure,
    },
    /// The caller (or the credentials berthd holds for it) may not do this.
    #[error("{0}")]
    PermissionDenied(String),
    /// A limit was hit (a slow subscriber, a size limit).
    #[error("{0}")]
    ResourceExhausted(String),
    /// The daemon cannot serve this now (shutting down).
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an unexpected failure below; the message says where.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a process's command could not be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecFailure {
    /// No such file, or not found in PATH (a shell's 127).
    NotFound,
    /// Found but not executable: permissions, a directory (a shell's 126).
    NotExecutable,
}

impl ExecFailure {
    /// The `data.reason` of the error.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecFailure::NotFound => "command_not_found",
            ExecFailure::NotExecutable => "command_not_executable",
        }
    }

    /// What runc's message says of the exec, if it is about the command at all.
    pub fn from_runc(message: &str) -> Option<ExecFailure> {
        let (_, exec) = message.split_once("exec: \"")?;
        if exec.contains("executable file not found") || exec.contains("no such file or directory")
        {
            Some(ExecFailure::NotFound)
        } else if exec.contains("permission denied") || exec.contains("is a directory") {
            Some(ExecFailure::NotExecutable)
        } else {
            None
        }
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::FailedPrecondition(_) | Error::CannotExec { .. } => {
                ErrorKind::FailedPrecondition
            }
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::ResourceExhausted(_) => ErrorKind::ResourceExhausted,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl Error {
    /// The error for an unexpected failure below the services: `resource_exhausted` when
    /// the disk (or the quota) is full anywhere in `err`'s chain, `internal` otherwise.
    /// Every failure that may come from a filesystem or SQLite goes through here, so a full
    /// disk never surfaces as an internal error.
    pub fn failure(
        context: impl std::fmt::Display,
        err: &(dyn std::error::Error + 'static),
    ) -> Self {
        Error::unexpected(format!("{context}: {err}"), err)
    }

    /// [`Error::failure`] with a message of the caller's (which names the object).
    pub fn unexpected(message: String, err: &(dyn std::error::Error + 'static)) -> Self {
        if disk_full(err) {
            Error::ResourceExhausted(format!("{message} (the disk is full)"))
        } else {
            Error::Internal(message)
        }
    }
}

/// Whether `err` or one of its sources says the disk or the quota is full: ENOSPC or EDQUOT
/// from the OS, `SQLITE_FULL` from SQLite.
pub fn disk_full(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(err);
    while let Some(e) = at {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(io.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
                || matches!(
                    io.kind(),
                    std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
                )
            {
                return true;
            }
            // A wrapped io::Error (`io::Error::new(kind, inner)`) hides its inner error
            // from `source`.
            if let Some(inner) = io.get_ref() {
                if disk_full(inner) {
                    return true;
                }
            }
        }
        if let Some(rusqlite::Error::SqliteFailure(f, _)) = e.downcast_ref::<rusqlite::Error>() {
            if f.code == rusqlite::ErrorCode::DiskFull {
                return true;
            }
        }
        if let Some(StoreError::DiskFull(_)) = e.downcast_ref::<StoreError>() {
            return true;
        }
        at = e.source();
    }
    false
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => Error::NotFound(m),
            StoreError::AlreadyExists(m) => Error::AlreadyExists(m),
            StoreError::FailedPrecondition(m) => Error::FailedPrecondition(m),
            StoreError::InvalidArgument(m) => Error::InvalidArgument(m),
            StoreError::DiskFull(m) => Error::ResourceExhausted(m),
            StoreError::Closed => Error::Unavailable(e.to_string()),
            other => Error::unexpected(other.to_string(), &other),
        }
    }
}

impl From<FilterError> for Error {
    fn from(e: FilterError) -> Self {
        Error::InvalidArgument(e.to_string())
    }
}

/// Checks an identifier; `what` names it in the message (`container id "../x"`).
/// Who made a call: the peer's credentials from SO_PEERCRED, as the transport read them
/// when the connection was accepted. Services that keep per-caller state (uploads) bind it
/// to the uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
}

pub fn check_id(what: &str, value: &str) -> Result<()> {
    identifiers::validate(value)
        .map_err(|e| Error::InvalidArgument(format!("{what} \"{value}\" {e}")))
}

/// `data` (base64, standard alphabet) decoded; `what` names the object in the error.
pub(crate) fn decode_base64(what: &str, data: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| Error::InvalidArgument(format!("{what}: data is not base64: {e}")))
}

/// The names of the directories in `dir` (none if it cannot be read): the per-namespace,
/// per-container trees berthd sweeps at start-up.
pub(crate) fn dir_names(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

/// Largest label key+value, in bytes (containerd's limit).
pub const MAX_LABEL_BYTES: usize = 4096;

/// Checks every label of `owner` against the size limit.
pub fn check_labels(owner: &str, labels: &Labels) -> Result<()> {
    for (k, v) in labels {
        if k.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{owner}: label keys must not be empty"
            )));
        }
        if k.len() + v.len() > MAX_LABEL_BYTES {
            return Err(Error::InvalidArgument(format!(
                "{owner}: label \"{k}\" is {} bytes (key + value), the limit is {MAX_LABEL_BYTES}",
                k.len() + v.len()
            )));
        }
    }
    Ok(())
}

/// [`blocking`] within the store's bounded reader pool: for work whose cost grows with the
/// data (a list and what it reads for each row), reading through `Store::read` on its
/// blocking thread. Point reads by key stay on the async workers: moving `containers.get`
/// here halved its throughput (51k/s to 26k/s with 16 clients), the price of two thread
/// hand-offs per call.
pub(crate) async fn scan<T: Send + 'static>(
    store: &crate::store::Store,
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let _permit = store.reader_permit().await?;
    blocking(what, f).await
}

/// Runs `f` on tokio's blocking pool: file I/O, mounts and cgroup writes, which would
/// otherwise hold an async worker (and every connection it serves) while the kernel works.
/// `what` names the work in the error if the blocking thread panicked.
pub(crate) async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("{what}: {e}")))?
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    #[test]
    fn runc_exec_errors_say_whether_the_command_is_missing_or_not_executable() {
        let f = |m: &str| ExecFailure::from_runc(m);
        let base = "runc create failed: unable to start container process: ";
        assert_eq!(
            f(&format!(
                "{base}exec: \"nosuch\": executable file not found in $PATH"
            )),
            Some(ExecFailure::NotFound)
        );
        assert_eq!(
            f(&format!(
                "{base}exec: \"/bin/x\": stat /bin/x: no such file or directory"
            )),
            Some(ExecFailure::NotFound)
        );
        assert_eq!(
            f(&format!("{base}exec: \"/etc\": permission denied")),
            Some(ExecFailure::NotExecutable)
        );
        assert_eq!(
            f(&format!(
                "{base}error mounting \"proc\": no such file or directory"
            )),
            None
        );
        let e = Error::CannotExec {
            message: "m".into(),
            reason: ExecFailure::NotFound,
        };
        assert_eq!(e.kind(), ErrorKind::FailedPrecondition);
    }

    #[test]
    fn a_full_disk_anywhere_in_the_chain_is_resource_exhausted() {
        let full = [
            io::Error::from_raw_os_error(libc::ENOSPC),
            io::Error::from_raw_os_error(libc::EDQUOT),
            io::Error::new(io::ErrorKind::StorageFull, "reading etc/passwd"),
        ];
        for e in full {
            let wrapped = crate::content::ContentError::Io {
                what: "writing a blob".into(),
                source: e,
            };
            let err = Error::failure("importing x", &wrapped);
            assert_eq!(err.kind(), ErrorKind::ResourceExhausted, "{err}");
            assert!(err.to_string().contains("writing a blob"), "{err}");
        }
        let sqlite = StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        ));
        assert_eq!(Error::from(sqlite).kind(), ErrorKind::ResourceExhausted);
        let refused = StoreError::DiskFull("full".into());
        assert_eq!(Error::from(refused).kind(), ErrorKind::ResourceExhausted);

        let other = io::Error::from_raw_os_error(libc::EIO);
        assert_eq!(Error::failure("x", &other).kind(), ErrorKind::Internal);
        let busy = StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR),
            None,
        ));
        assert_eq!(Error::from(busy).kind(), ErrorKind::Internal);
    }
}
