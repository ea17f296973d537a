//! The native snapshotter, for filesystems without overlayfs: every snapshot is a full copy
//! of its parent (`cp -a`, which keeps owners, modes, times, xattrs, hard links, devices),
//! presented with a bind mount.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use schema::Mount;

use super::{Kind, Snapshotter};
use crate::unpack::WhiteoutMode;

pub struct Native {
    base: PathBuf,
}

impl Native {
    pub fn new(root: &Path) -> io::Result<Self> {
        let base = root.join("snapshots").join("native");
        fs::create_dir_all(&base)?;
        Ok(Self { base })
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
            Some(&parent) => {
                let out = Command::new("cp")
                    .arg("-a")
                    .arg("--no-target-directory")
                    .arg(self.fs_dir(parent))
                    .arg(&fs_dir)
                    .output()?;
                if out.status.success() {
                    Ok(())
                } else {
                    Err(io::Error::other(format!(
                        "copying the parent snapshot failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    )))
                }
            }
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
