//! Mounting a container's rootfs: the `{type, source, options}` mounts a snapshotter
//! returns are applied with mount(2) onto the bundle's `rootfs` directory before `runc
//! create`, and everything mounted there is unmounted on delete. Options follow
//! mount(8): flag words (`ro`, `nosuid`, `rbind`, ...) become mount flags, the rest is
//! the filesystem's data string (`lowerdir=...,upperdir=...`).

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use schema::Mount;

/// Errors applying or removing rootfs mounts.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot mount {kind} {from:?} on {target:?} (options {options:?}): {errno}")]
    Mount {
        kind: String,
        from: String,
        target: PathBuf,
        options: Vec<String>,
        errno: Errno,
    },
    #[error("cannot unmount {target:?}: {errno}")]
    Unmount { target: PathBuf, errno: Errno },
}

/// Mount flags and data of an option list.
fn parse_options(options: &[String]) -> (MsFlags, MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut propagation = MsFlags::empty();
    let mut data = Vec::new();
    for opt in options {
        let (set, clear, prop) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty(), MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty(), MsFlags::empty()),
            "rbind" => (
                MsFlags::MS_BIND | MsFlags::MS_REC,
                MsFlags::empty(),
                MsFlags::empty(),
            ),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty(), MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID, MsFlags::empty()),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty(), MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV, MsFlags::empty()),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty(), MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty(), MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty(), MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty(), MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty(), MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty(), MsFlags::empty()),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty(), MsFlags::empty()),
            "private" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_PRIVATE),
            "rprivate" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            ),
            "slave" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SLAVE),
            "rslave" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
            ),
            _ => {
                data.push(opt.as_str());
                continue;
            }
        };
        flags = (flags | set) - clear;
        propagation |= prop;
    }
    (flags, propagation, data.join(","))
}

/// Mounts every entry onto `target`, in order (later ones stack on earlier ones). On
/// failure what was mounted is unmounted again.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), MountError> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target) {
            for _ in 0..i {
                let _ = umount2(target, MntFlags::MNT_DETACH);
            }
            return Err(e);
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> Result<(), MountError> {
    let err = |errno| MountError::Mount {
        kind: m.kind.clone(),
        from: m.source.clone(),
        target: target.to_owned(),
        options: m.options.clone(),
        errno,
    };
    let (flags, propagation, data) = parse_options(&m.options);
    let data = (!data.is_empty()).then_some(data.as_str());
    let fstype = (!flags.contains(MsFlags::MS_BIND)).then_some(m.kind.as_str());
    mount(Some(m.source.as_str()), target, fstype, flags, data).map_err(err)?;
    // A bind mount ignores most flags until remounted (ro, nosuid...).
    let extra = flags - (MsFlags::MS_BIND | MsFlags::MS_REC);
    if flags.contains(MsFlags::MS_BIND) && !extra.is_empty() {
        let remount = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | extra;
        if let Err(e) = mount(None::<&str>, target, None::<&str>, remount, None::<&str>) {
            let _ = umount2(target, MntFlags::MNT_DETACH);
            return Err(err(e));
        }
    }
    if !propagation.is_empty() {
        if let Err(e) = mount(
            None::<&str>,
            target,
            None::<&str>,
            propagation,
            None::<&str>,
        ) {
            let _ = umount2(target, MntFlags::MNT_DETACH);
            return Err(err(e));
        }
    }
    Ok(())
}

/// Unmounts everything stacked on `target` until it is no mount point. A busy mount is
/// detached (lazily unmounted) rather than left behind.
pub fn unmount_all(target: &Path) -> Result<(), MountError> {
    for _ in 0..64 {
        match umount2(target, MntFlags::empty()) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) => match umount2(target, MntFlags::MNT_DETACH) {
                Ok(()) => continue,
                Err(errno) => {
                    return Err(MountError::Unmount {
                        target: target.to_owned(),
                        errno,
                    })
                }
            },
            Err(errno) => {
                return Err(MountError::Unmount {
                    target: target.to_owned(),
                    errno,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_mount_point(path: &Path) -> bool {
        let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        let p = path.to_str().expect("utf8");
        info.lines().any(|l| l.split(' ').nth(4) == Some(p))
    }

    fn m(kind: &str, source: &Path, options: &[&str]) -> Mount {
        Mount {
            kind: kind.into(),
            source: source.to_str().expect("utf8").into(),
            options: options.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn options_split_into_flags_and_data() {
        let opts: Vec<String> = ["ro", "nosuid", "lowerdir=/a", "upperdir=/b", "rw"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (flags, prop, data) = parse_options(&opts);
        assert_eq!(flags, MsFlags::MS_NOSUID, "a later rw clears ro");
        assert!(prop.is_empty());
        assert_eq!(data, "lowerdir=/a,upperdir=/b");
    }

    #[test]
    fn read_only_bind_mount_is_visible_then_gone_after_unmount() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (src, target) = (dir.path().join("src"), dir.path().join("rootfs"));
        std::fs::create_dir_all(&src).expect("src");
        std::fs::create_dir_all(&target).expect("target");
        std::fs::write(src.join("hello"), "hi").expect("write");
        mount_all(&[m("bind", &src, &["rbind", "ro"])], &target).expect("mount");
        let guard = scopeguard(&target);
        assert_eq!(
            std::fs::read_to_string(target.join("hello")).expect("read"),
            "hi"
        );
        let write = std::fs::write(target.join("new"), "x").expect_err("read-only");
        assert_eq!(write.raw_os_error(), Some(libc::EROFS));
        unmount_all(&target).expect("unmount");
        assert!(!is_mount_point(&target));
        assert!(!target.join("hello").exists());
        drop(guard);
    }

    #[test]
    fn overlay_mount_merges_layers_and_unmounts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = |n: &str| {
            let path = dir.path().join(n);
            std::fs::create_dir_all(&path).expect("mkdir");
            path
        };
        let (lower, upper, work, target) = (p("lower"), p("upper"), p("work"), p("rootfs"));
        std::fs::write(lower.join("base"), "lower").expect("write");
        let opts = [
            format!("lowerdir={}", lower.display()),
            format!("upperdir={}", upper.display()),
            format!("workdir={}", work.display()),
        ];
        let mount = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: opts.to_vec(),
        };
        mount_all(&[mount], &target).expect("mount overlay");
        let guard = scopeguard(&target);
        assert_eq!(
            std::fs::read_to_string(target.join("base")).expect("read"),
            "lower"
        );
        std::fs::write(target.join("added"), "up").expect("write through");
        assert!(upper.join("added").exists());
        unmount_all(&target).expect("unmount");
        assert!(!is_mount_point(&target));
        drop(guard);
    }

    /// Detaches the mount if an assertion fails first.
    struct Guard(PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = umount2(&self.0, MntFlags::MNT_DETACH);
        }
    }
    fn scopeguard(path: &Path) -> Guard {
        Guard(path.to_owned())
    }
}
