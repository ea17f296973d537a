//! Reads a small file (the image's `/etc/passwd`, `/etc/group`) from a snapshot's layers
//! without ever leaving them: each layer directory is the root of an
//! `openat2(RESOLVE_IN_ROOT)` lookup, so absolute or `..` symlinks stay inside it, and
//! overlay whiteouts and opaque directories hide lower layers as overlayfs would.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

fn resolve(root: &OwnedFd, rel: &Path, flags: OFlag) -> io::Result<Option<OwnedFd>> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(
            ResolveFlag::RESOLVE_IN_ROOT
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    match openat2(root.as_fd(), rel, how) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn file_type(fd: &OwnedFd) -> io::Result<SFlag> {
    let st = fstat(fd.as_fd())?;
    Ok(SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT)
}

fn opaque(fd: &OwnedFd) -> bool {
    let mut buf = [0u8; 2];
    // SAFETY: the fd is open for the call; the name is NUL-terminated; the buffer is
    // valid for its length.
    let n = unsafe {
        libc::fgetxattr(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// Reads `rel` (relative, e.g. `etc/passwd`) from the union of `layers` (uppermost first),
/// at most `limit` bytes. `None` when no layer has it as a regular file.
pub fn read_in_layers(layers: &[PathBuf], rel: &Path, limit: u64) -> io::Result<Option<String>> {
    for layer in layers {
        let root = nix::fcntl::open(
            layer.as_path(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        // O_PATH opens nothing: a device or FIFO a hostile layer names is never opened
        // (no driver's open runs, nothing blocks). Only a regular file is then read,
        // reopened through the very inode the O_PATH descriptor holds.
        let Some(fd) = resolve(&root, rel, OFlag::O_PATH)? else {
            // Not in this layer: a whiteout or an opaque directory on the way hides lower
            // layers; otherwise look further down.
            let mut hidden = false;
            let mut prefix = PathBuf::new();
            for part in rel.iter() {
                prefix.push(part);
                match resolve(&root, &prefix, OFlag::O_PATH)? {
                    None => break,
                    Some(fd) => {
                        let t = file_type(&fd)?;
                        if t == SFlag::S_IFCHR {
                            hidden = true;
                            break;
                        }
                        if t == SFlag::S_IFDIR && prefix.as_os_str() != rel.as_os_str() {
                            let dir =
                                resolve(&root, &prefix, OFlag::O_RDONLY | OFlag::O_DIRECTORY)?;
                            if dir.as_ref().is_some_and(opaque) {
                                hidden = true;
                                break;
                            }
                        }
                    }
                }
            }
            if hidden {
                return Ok(None);
            }
            continue;
        };
        return match file_type(&fd)? {
            SFlag::S_IFREG => {
                let mut out = String::new();
                let file = File::open(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
                drop(fd);
                file.take(limit).read_to_string(&mut out).map_err(|e| {
                    io::Error::new(e.kind(), format!("reading {}: {e}", rel.display()))
                })?;
                Ok(Some(out))
            }
            _ => Ok(None),
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_through_layers_and_never_follows_a_link_out() {
        let top = tempfile::tempdir().expect("tmp");
        let low = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(low.path().join("etc")).expect("mkdir");
        std::fs::write(low.path().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").expect("w");
        let layers = vec![top.path().to_owned(), low.path().to_owned()];
        let got = read_in_layers(&layers, Path::new("etc/passwd"), 1 << 20).expect("read");
        assert_eq!(got.as_deref(), Some("root:x:0:0::/:/bin/sh\n"));

        // A symlink to the host's /etc/passwd resolves inside the layer: not found there.
        std::fs::create_dir(top.path().join("etc")).expect("mkdir");
        std::os::unix::fs::symlink("/etc/hostname", top.path().join("etc/group")).expect("ln");
        let got = read_in_layers(&layers[..1], Path::new("etc/group"), 1 << 20).expect("read");
        assert_eq!(got, None);
    }

    #[test]
    fn a_device_or_fifo_a_layer_names_is_never_opened() {
        let top = tempfile::tempdir().expect("tmp");
        let etc = top.path().join("etc");
        std::fs::create_dir(&etc).expect("mkdir");
        // /dev/tty's numbers (5:0): opening it on the host fails with ENXIO without a
        // controlling terminal; a FIFO would block an open forever.
        nix::sys::stat::mknod(
            &etc.join("passwd"),
            SFlag::S_IFCHR,
            Mode::from_bits_truncate(0o644),
            nix::sys::stat::makedev(5, 0),
        )
        .expect("mknod");
        nix::unistd::mkfifo(&etc.join("group"), Mode::from_bits_truncate(0o644)).expect("fifo");
        let layers = vec![top.path().to_owned()];
        let passwd = read_in_layers(&layers, Path::new("etc/passwd"), 1 << 20);
        assert_eq!(passwd.expect("not opened, so no ENXIO"), None);
        let group = read_in_layers(&layers, Path::new("etc/group"), 1 << 20);
        assert_eq!(group.expect("not opened, so no hang"), None);
    }
}
