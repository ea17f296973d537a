//! Behaviour tests on real directories (run as root): metadata, node types, whiteouts,
//! replacement rules and diff_id. Hostile layers live in `tests/hostile.rs`.

mod fuzz;
mod hostile;

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tar::{Builder, EntryType, Header};

use super::*;

/// A temp dir holding the snapshot `root` and, beside it, an `outside` sentinel dir
/// that no layer may touch.
pub(super) struct Sandbox {
    _tmp: tempfile::TempDir,
    pub root: PathBuf,
    pub outside: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        fs::create_dir(&root).expect("mkdir root");
        fs::create_dir(&outside).expect("mkdir outside");
        Self {
            _tmp: tmp,
            root,
            outside,
        }
    }

    pub fn apply(&self, layer: &[u8], mode: WhiteoutMode) -> Result<AppliedLayer, UnpackError> {
        apply_layer(layer, &self.root, mode, &Limits::default())
    }

    /// The sentinel dir still holds exactly `expected` names and the sandbox nothing
    /// but `root` and `outside`.
    pub fn assert_outside_holds(&self, expected: &[&str]) {
        let mut names: Vec<String> = fs::read_dir(&self.outside)
            .expect("read outside")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, expected, "the outside dir was touched");
        let beside: Vec<_> = fs::read_dir(self.root.parent().expect("parent"))
            .expect("read sandbox")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            beside.len(),
            2,
            "something was created beside the root: {beside:?}"
        );
    }
}

/// A header with raw bytes for name and link, bypassing the tar crate's path checks so
/// hostile names can be written.
pub(super) fn raw(
    b: &mut Builder<Vec<u8>>,
    kind: EntryType,
    name: &[u8],
    link: &[u8],
    data: &[u8],
) {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(if kind == EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_mtime(1_600_000_000);
    h.set_uid(0);
    h.set_gid(0);
    let gnu = h.as_gnu_mut().expect("gnu header");
    gnu.name[..name.len()].copy_from_slice(name);
    gnu.linkname[..link.len()].copy_from_slice(link);
    h.set_cksum();
    b.append(&h, data).expect("append");
}

pub(super) fn file(b: &mut Builder<Vec<u8>>, name: &str, data: &[u8]) {
    raw(b, EntryType::Regular, name.as_bytes(), b"", data);
}

pub(super) fn dir(b: &mut Builder<Vec<u8>>, name: &str) {
    raw(b, EntryType::Directory, name.as_bytes(), b"", b"");
}

pub(super) fn symlink(b: &mut Builder<Vec<u8>>, name: &str, target: &str) {
    raw(
        b,
        EntryType::Symlink,
        name.as_bytes(),
        target.as_bytes(),
        b"",
    );
}

pub(super) fn hardlink(b: &mut Builder<Vec<u8>>, name: &str, target: &str) {
    raw(b, EntryType::Link, name.as_bytes(), target.as_bytes(), b"");
}

pub(super) fn layer(build: impl FnOnce(&mut Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().expect("finish tar")
}

pub(super) fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).expect("gzip");
    enc.finish().expect("gzip")
}

fn lgetxattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).expect("path");
    let k = CString::new(key).expect("key");
    let mut buf = vec![0u8; 256];
    // SAFETY: strings are NUL-terminated, `buf` is writable for its length.
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    Some(buf)
}

fn lstat(path: &Path) -> fs::Metadata {
    fs::symlink_metadata(path).unwrap_or_else(|e| panic!("lstat {path:?}: {e}"))
}

#[test]
fn files_and_dirs_keep_owner_mode_times_and_xattrs() {
    let sb = Sandbox::new();
    let tar = layer(|b| {
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::Directory);
        h.set_mode(0o3775);
        h.set_uid(1234);
        h.set_gid(2345);
        h.set_mtime(1_000_000_000);
        h.set_size(0);
        b.append_data(&mut h, "bin/", &b""[..]).expect("dir");
        b.append_pax_extensions([
            ("SCHILY.xattr.user.origin", &b"layer"[..]),
            ("SCHILY.xattr.trusted.note", &b"t"[..]),
            ("mtime", &b"1500000000.5"[..]),
        ])
        .expect("pax");
        let mut h = Header::new_ustar();
        h.set_mode(0o4755);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_mtime(1);
        h.set_size(5);
        b.append_data(&mut h, "bin/su", &b"hello"[..])
            .expect("file");
    });
    let applied = sb.apply(&tar, WhiteoutMode::Overlay).expect("apply");
    assert_eq!(applied.entries, 2);
    assert_eq!(applied.bytes, tar.len() as u64);

    let su = lstat(&sb.root.join("bin/su"));
    assert_eq!(fs::read(sb.root.join("bin/su")).expect("read"), b"hello");
    assert_eq!((su.uid(), su.gid()), (1000, 1001));
    assert_eq!(
        su.permissions().mode() & 0o7777,
        0o4755,
        "setuid survives chown"
    );
    assert_eq!((su.mtime(), su.mtime_nsec()), (1_500_000_000, 500_000_000));
    assert_eq!(
        lgetxattr(&sb.root.join("bin/su"), "user.origin"),
        Some(b"layer".to_vec())
    );
    assert_eq!(
        lgetxattr(&sb.root.join("bin/su"), "trusted.note"),
        Some(b"t".to_vec())
    );

    let bin = lstat(&sb.root.join("bin"));
    assert_eq!((bin.uid(), bin.gid()), (1234, 2345));
    assert_eq!(bin.permissions().mode() & 0o7777, 0o3775);
    assert_eq!(
        bin.mtime(),
        1_000_000_000,
        "dir time set after its child was written"
    );
}

#[test]
fn symlinks_hardlinks_devices_fifos_and_empty_dirs_are_created() {
    let sb = Sandbox::new();
    let tar = layer(|b| {
        dir(b, "empty/");
        file(b, "data", b"x");
        symlink(b, "abs", "/etc/shadow");
        symlink(b, "rel", "../../data");
        hardlink(b, "data-link", "data");
        hardlink(b, "rel-link", "rel");
        raw(b, EntryType::Fifo, b"fifo", b"", b"");
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Char);
        h.set_device_major(1).expect("major");
        h.set_device_minor(3).expect("minor");
        h.set_mode(0o666);
        h.set_size(0);
        b.append_data(&mut h, "null", &b""[..]).expect("dev");
        h.set_entry_type(EntryType::Block);
        h.set_device_major(7).expect("major");
        h.set_device_minor(9).expect("minor");
        h.set_mode(0o660);
        b.append_data(&mut h, "loop9", &b""[..]).expect("dev");
    });
    sb.apply(&tar, WhiteoutMode::Overlay).expect("apply");
    assert!(fs::read_dir(sb.root.join("empty"))
        .expect("empty dir")
        .next()
        .is_none());
    assert_eq!(
        fs::read_link(sb.root.join("abs")).expect("link"),
        Path::new("/etc/shadow")
    );
    assert_eq!(
        fs::read_link(sb.root.join("rel")).expect("link"),
        Path::new("../../data")
    );
    let data = lstat(&sb.root.join("data"));
    assert_eq!(data.nlink(), 2);
    assert_eq!(lstat(&sb.root.join("data-link")).ino(), data.ino());
    let rel_link = lstat(&sb.root.join("rel-link"));
    assert!(
        rel_link.file_type().is_symlink(),
        "a hard link to a symlink links the symlink"
    );
    assert!(lstat(&sb.root.join("fifo")).file_type().is_fifo());
    let null = lstat(&sb.root.join("null"));
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.permissions().mode() & 0o7777, 0o666);
    let loop9 = lstat(&sb.root.join("loop9"));
    assert!(loop9.file_type().is_block_device());
    assert_eq!(loop9.rdev(), nix::sys::stat::makedev(7, 9));
}

#[test]
fn diff_id_is_sha256_of_the_uncompressed_tar() {
    let tar = layer(|b| {
        dir(b, "a/");
        file(b, "a/f", &vec![7u8; 100_000]);
    });
    let expected = format!("sha256:{:x}", Sha256::digest(&tar));
    let zst = zstd::encode_all(&tar[..], 3).expect("zstd");
    for (blob, name) in [(tar.clone(), "tar"), (gzip(&tar), "gzip"), (zst, "zstd")] {
        let sb = Sandbox::new();
        let applied = sb.apply(&blob, WhiteoutMode::Delete).expect(name);
        assert_eq!(applied.diff_id, expected, "{name}");
        assert_eq!(applied.bytes, tar.len() as u64, "{name}");
        assert_eq!(fs::read(sb.root.join("a/f")).expect(name).len(), 100_000);
    }
    let sb = Sandbox::new();
    let compression =
        Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+gzip").expect("type");
    let applied = apply_layer_compressed(
        &gzip(&tar)[..],
        compression,
        &sb.root,
        WhiteoutMode::Overlay,
        &Limits::default(),
    )
    .expect("apply gzip by media type");
    assert_eq!(applied.diff_id, expected);
    assert!(matches!(
        Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+bzip2"),
        Err(UnpackError::UnsupportedMediaType(_))
    ));
}

fn lower_layer() -> Vec<u8> {
    layer(|b| {
        dir(b, "a/");
        file(b, "a/keep", b"k");
        file(b, "a/gone", b"g");
        dir(b, "b/");
        file(b, "b/old", b"o");
        dir(b, "b/sub/");
        file(b, "b/sub/old2", b"o");
        dir(b, "c/");
        file(b, "c/x", b"x");
    })
}

#[test]
fn delete_mode_whiteouts_remove_lower_entries_but_not_this_layers() {
    let sb = Sandbox::new();
    sb.apply(&lower_layer(), WhiteoutMode::Delete)
        .expect("layer 1");
    let upper = layer(|b| {
        file(b, "a/.wh.gone", b"");
        // Entries of this layer listed before the opaque marker must survive it.
        file(b, "b/new", b"n");
        dir(b, "b/sub/");
        file(b, "b/sub/new2", b"n");
        file(b, "b/.wh..wh..opq", b"");
        file(b, "b/after", b"a");
        file(b, ".wh.c", b"");
        file(b, ".wh..wh.plnk", b"");
    });
    sb.apply(&upper, WhiteoutMode::Delete).expect("layer 2");
    let r = &sb.root;
    assert!(r.join("a/keep").exists());
    assert!(!r.join("a/gone").exists());
    assert!(!r.join("a/.wh.gone").exists());
    assert!(r.join("b/new").exists() && r.join("b/after").exists());
    assert!(r.join("b/sub/new2").exists());
    assert!(!r.join("b/old").exists(), "opaque dir hides lower entries");
    assert!(
        !r.join("b/sub/old2").exists(),
        "also below directories this layer kept"
    );
    assert!(!r.join("b/.wh..wh..opq").exists());
    assert!(
        !r.join("c").exists(),
        "whiteout removes a directory recursively"
    );
    assert!(!r.join(".wh..wh.plnk").exists());
}

#[test]
fn overlay_mode_whiteouts_become_char_devices_and_opaque_xattrs() {
    let sb = Sandbox::new();
    let upper = layer(|b| {
        dir(b, "b/");
        file(b, "b/.wh..wh..opq", b"");
        file(b, "a/.wh.gone", b"");
    });
    sb.apply(&upper, WhiteoutMode::Overlay).expect("apply");
    let gone = lstat(&sb.root.join("a/gone"));
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert_eq!(
        lgetxattr(&sb.root.join("b"), "trusted.overlay.opaque"),
        Some(b"y".to_vec())
    );
    assert!(!sb.root.join("b/.wh..wh..opq").exists());
}

#[test]
fn later_entries_replace_earlier_ones_as_containerd_does() {
    let sb = Sandbox::new();
    sb.apply(&lower_layer(), WhiteoutMode::Delete)
        .expect("layer 1");
    let upper = layer(|b| {
        file(b, "c", b"file over dir");
        raw(b, EntryType::Directory, b"a/", b"", b"");
        file(b, "dup", b"first");
        file(b, "dup", b"second");
        symlink(b, "b/old", "/nowhere");
    });
    sb.apply(&upper, WhiteoutMode::Delete).expect("layer 2");
    assert_eq!(fs::read(sb.root.join("c")).expect("c"), b"file over dir");
    assert!(
        sb.root.join("a/keep").exists(),
        "a dir over a dir keeps its contents"
    );
    assert_eq!(
        lstat(&sb.root.join("a")).permissions().mode() & 0o777,
        0o755
    );
    assert_eq!(fs::read(sb.root.join("dup")).expect("dup"), b"second");
    assert!(lstat(&sb.root.join("b/old")).file_type().is_symlink());
}

#[test]
fn parents_are_created_and_in_root_symlinks_are_followed() {
    let sb = Sandbox::new();
    let tar = layer(|b| {
        file(b, "deep/er/file", b"d");
        dir(b, "usr/lib/");
        symlink(b, "lib", "usr/lib");
        symlink(b, "lib64", "/usr/lib");
        file(b, "lib/via-relative", b"r");
        file(b, "lib64/via-absolute", b"a");
        file(b, "/abs/name", b"contained");
    });
    sb.apply(&tar, WhiteoutMode::Overlay).expect("apply");
    let deep = lstat(&sb.root.join("deep/er"));
    assert_eq!(deep.permissions().mode() & 0o7777, 0o755);
    assert!(sb.root.join("usr/lib/via-relative").is_file());
    assert!(sb.root.join("usr/lib/via-absolute").is_file());
    assert_eq!(
        fs::read(sb.root.join("abs/name")).expect("abs"),
        b"contained"
    );
    sb.assert_outside_holds(&[]);
}
