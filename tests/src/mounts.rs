//! Unmounting whatever a daemon under test left mounted below its temp dir, so the dir can
//! be removed and no test leaks mounts into the next one.

use std::cmp::Reverse;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Lazily unmounts (MNT_DETACH) every mount point at or below `dir`, deepest first.
/// Errors are ignored: this runs from `Drop`, often while a test is already failing.
pub fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points = mount_points_below(&info, dir);
    points.sort_by_key(|p| Reverse(p.components().count()));
    points.dedup();
    for point in points {
        let Ok(c) = CString::new(point.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: `c` is a valid NUL-terminated path that outlives the call; umount2 only
        // reads it.
        unsafe {
            libc::umount2(c.as_ptr(), libc::MNT_DETACH);
        }
    }
}

/// Mount points (field 5 of mountinfo) at or below `dir`, in file order.
pub fn mount_points_below(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .filter(|point| point.starts_with(dir))
        .collect()
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\134` for a backslash).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 4);
        if bytes[i] == b'\\' {
            if let Some(d) = digits.filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b))) {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(b) = u8::try_from(value) {
                    out.push(b);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
90 22 0:50 / /tmp/berth-x/root/snap\\0401 rw - overlay overlay rw
91 90 0:51 / /tmp/berth-x/root/snap\\0401/proc rw - proc proc rw
92 22 0:52 / /tmp/berth-xy rw - tmpfs tmpfs rw
";

    #[test]
    fn finds_only_mounts_below_the_dir_and_unescapes_them() {
        let found = mount_points_below(SAMPLE, Path::new("/tmp/berth-x"));
        assert_eq!(
            found,
            vec![
                PathBuf::from("/tmp/berth-x/root/snap 1"),
                PathBuf::from("/tmp/berth-x/root/snap 1/proc"),
            ]
        );
    }

    fn mount_tmpfs(at: &Path) {
        let target = CString::new(at.as_os_str().as_bytes()).expect("path without NUL");
        let fstype = CString::new("tmpfs").expect("literal");
        // SAFETY: every pointer is a valid NUL-terminated string that outlives the call;
        // data may be null for tmpfs.
        let rc = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        assert_eq!(
            rc,
            0,
            "mount tmpfs on {}: {}",
            at.display(),
            std::io::Error::last_os_error()
        );
    }

    #[test]
    fn unmount_below_detaches_nested_mounts_deepest_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let outer = dir.path().join("outer");
        std::fs::create_dir(&outer).expect("mkdir outer");
        mount_tmpfs(&outer);
        let inner = outer.join("inner");
        std::fs::create_dir(&inner).expect("mkdir inner");
        mount_tmpfs(&inner);
        let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert_eq!(mount_points_below(&info, dir.path()).len(), 2);

        unmount_below(dir.path());
        let info = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
        assert_eq!(mount_points_below(&info, dir.path()), Vec::<PathBuf>::new());
        assert!(
            !inner.exists(),
            "inner was a directory on the unmounted tmpfs"
        );
    }

    #[test]
    fn unescape_leaves_plain_text_and_short_escapes_alone() {
        assert_eq!(unescape("/a/b"), "/a/b");
        assert_eq!(unescape("/a\\134b"), "/a\\b");
        assert_eq!(unescape("/a\\04"), "/a\\04");
    }
}
