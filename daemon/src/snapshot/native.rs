//! The native snapshotter, for filesystems without overlayfs: every snapshot is a full copy
//! of its parent (`cp -a`, which keeps owners, modes, times, xattrs, hard links, devices),
//! presented with a bind mount. `cp` is started through the daemon's reaper: it owns
//! `waitpid(-1)`, so a plain std wait would lose the exit status to it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use schema::Mount;

use super::{Kind, Snapshotter};
use crate::runtime::reaper::Reaper;
use crate::unpack::WhiteoutMode;

pub struct Native {
    base: PathBuf,
    reaper: Reaper,
}

impl Native {
    pub fn new(root: &Path, reaper: Reaper) -> io::Result<Self> {
        let base = root.join("snapshots").join("native");
        fs::create_dir_all(&base)?;
        Ok(Self { base, reaper })
    }

    /// `cp -a parent/. fs`, waited for through the reaper. Runs on a blocking thread.
    fn copy(&self, from: &Path, to: &Path, scratch: &Path) -> io::Result<()> {
        let errors_path = scratch.join("cp.stderr");
        let errors = fs::File::create(&errors_path)?;
        let mut cmd = Command::new("cp");
        cmd.arg("-a")
            .arg("--no-target-directory")
            .arg(from)
            .arg(to)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(errors);
        let launched = self.reaper.spawn(&mut cmd).map_err(io::Error::other)?;
        let exit = tokio::runtime::Handle::try_current()
            .map_err(io::Error::other)?
            .block_on(launched.wait())
            .map_err(io::Error::other)?;
        let stderr = fs::read_to_string(&errors_path).unwrap_or_default();
        let _ = fs::remove_file(&errors_path);
        if exit.status == 0 {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "copying the parent snapshot failed (cp exited {}): {}",
                exit.status,
                stderr.trim()
            )))
        }
    }
}

impl Snapshotter for Native {
    fn name(&self) -> &'static str {
        "native"
    }

    fn base(&self) -> &Path {
        &self.base
    }

    fn whiteouts(&self) -> WhiteoutMode {
        WhiteoutMode::Delete
    }

    fn create(&self, dir: &Path, parents: &[i64]) -> io::Result<()> {
        fs::create_dir(dir)?;
        let fs_dir = dir.join("fs");
        match parents.first() {
            None => {
                fs::create_dir(&fs_dir)?;
                fs::set_permissions(&fs_dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            }
            Some(&parent) => self.copy(&self.fs_dir(parent), &fs_dir, dir),
        }
    }

    fn mounts(&self, id: i64, kind: Kind, _parents: &[i64]) -> Vec<Mount> {
        let mode = if kind == Kind::Active { "rw" } else { "ro" };
        vec![Mount {
            kind: "bind".into(),
            source: self.fs_dir(id).display().to_string(),
            options: vec![mode.into(), "rbind".into()],
        }]
    }

    fn layers(&self, id: i64, _parents: &[i64]) -> Vec<PathBuf> {
        vec![self.fs_dir(id)]
    }
}
