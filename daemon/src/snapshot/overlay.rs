//! The overlayfs snapshotter: each snapshot has `fs` (its own files: a layer, or a
//! container's writable upper dir) and `work` (overlayfs's work dir). Mounts follow
//! containerd's overlay snapshotter exactly.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use schema::Mount;

use super::{Kind, Snapshotter};
use crate::unpack::WhiteoutMode;

pub struct Overlay {
    base: PathBuf,
}

impl Overlay {
    pub fn new(root: &Path) -> io::Result<Self> {
        let base = root.join("snapshots").join("overlayfs");
        fs::create_dir_all(&base)?;
        Ok(Self { base })
    }
}

impl Snapshotter for Overlay {
    fn name(&self) -> &'static str {
        "overlayfs"
    }

    fn base(&self) -> &Path {
        &self.base
    }

    fn whiteouts(&self) -> WhiteoutMode {
        WhiteoutMode::Overlay
    }

    fn create(&self, dir: &Path, _parents: &[i64]) -> io::Result<()> {
        fs::create_dir(dir)?;
        fs::create_dir(dir.join("fs"))?;
        fs::create_dir(dir.join("work"))?;
        fs::set_permissions(
            dir.join("fs"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
    }

    fn mounts(&self, id: i64, kind: Kind, parents: &[i64]) -> Vec<Mount> {
        let path = |id: i64| self.fs_dir(id).display().to_string();
        let bind = |source: String, mode: &str| Mount {
            kind: "bind".into(),
            source,
            options: vec![mode.into(), "rbind".into()],
        };
        let lowerdir = || {
            let dirs: Vec<String> = parents.iter().map(|&p| path(p)).collect();
            format!("lowerdir={}", dirs.join(":"))
        };
        match (kind, parents) {
            (Kind::Active, []) => vec![bind(path(id), "rw")],
            (Kind::View | Kind::Committed, []) => vec![bind(path(id), "ro")],
            (Kind::View | Kind::Committed, [one]) => vec![bind(path(*one), "ro")],
            (Kind::View | Kind::Committed, _) => vec![Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![lowerdir()],
            }],
            (Kind::Active, _) => vec![Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    format!("workdir={}", self.dir(id).join("work").display()),
                    format!("upperdir={}", path(id)),
                    lowerdir(),
                ],
            }],
        }
    }

    fn layers(&self, id: i64, parents: &[i64]) -> Vec<PathBuf> {
        std::iter::once(id)
            .chain(parents.iter().copied())
            .map(|i| self.fs_dir(i))
            .collect()
    }
}
