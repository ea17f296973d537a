//! Hostile layers: each must fail naming the entry, or be contained in the root, and
//! never touch the sentinel directory beside the root.

use std::fs;
use std::os::unix::fs::MetadataExt;

use tar::{Builder, EntryType, Header};

use super::*;

fn err_of(sb: &Sandbox, tar: &[u8]) -> UnpackError {
    match sb.apply(tar, WhiteoutMode::Delete) {
        Ok(applied) => panic!("hostile layer applied: {applied:?}"),
        Err(e) => e,
    }
}

#[test]
fn dotdot_names_are_rejected() {
    for name in ["../x", "a/../../x", "/../outside/x"] {
        let sb = Sandbox::new();
        let err = err_of(&sb, &layer(|b| file(b, name, b"evil")));
        assert!(
            matches!(&err, UnpackError::Breakout { entry } if entry == name),
            "{err}"
        );
        assert!(err.to_string().contains(name));
        sb.assert_outside_holds(&[]);
    }
    let sb = Sandbox::new();
    let err = err_of(&sb, &layer(|b| file(b, "../.wh.outside", b"")));
    assert!(matches!(err, UnpackError::Breakout { .. }), "{err}");
    let err = err_of(&sb, &layer(|b| file(b, "a/.wh..", b"")));
    assert!(
        matches!(&err, UnpackError::BadWhiteout { entry } if entry == "a/.wh.."),
        "{err}"
    );
    sb.assert_outside_holds(&[]);
}

#[test]
fn absolute_symlink_parent_never_reaches_the_host() {
    let sb = Sandbox::new();
    let outside = sb.outside.to_str().expect("utf-8 path");
    let err = err_of(
        &sb,
        &layer(|b| {
            symlink(b, "etc", outside);
            file(b, "etc/passwd", b"root::0:0::/:/bin/sh");
        }),
    );
    assert!(err.to_string().contains("\"etc/passwd\""), "{err}");
    sb.assert_outside_holds(&[]);

    // The same link resolves inside the root once the path exists there.
    let sb = Sandbox::new();
    let outside = sb.outside.to_str().expect("utf-8 path");
    sb.apply(
        &layer(|b| {
            dir(b, &format!("{outside}/"));
            symlink(b, "etc", outside);
            file(b, "etc/passwd", b"contained");
        }),
        WhiteoutMode::Delete,
    )
    .expect("contained");
    let inside = sb.root.join(outside.trim_start_matches('/')).join("passwd");
    assert_eq!(fs::read(inside).expect("inside"), b"contained");
    sb.assert_outside_holds(&[]);
}

#[test]
fn dotdot_symlink_chains_are_clamped_at_the_root() {
    let sb = Sandbox::new();
    sb.apply(
        &layer(|b| {
            dir(b, "outside/");
            symlink(b, "up", "../outside");
            symlink(b, "a/b/up2", "../../../../../../..");
            file(b, "up/f", b"contained");
            file(b, "a/b/up2/outside/g", b"contained");
        }),
        WhiteoutMode::Delete,
    )
    .expect("contained");
    assert!(sb.root.join("outside/f").is_file());
    assert!(sb.root.join("outside/g").is_file());
    sb.assert_outside_holds(&[]);
}

#[test]
fn hardlinks_cannot_reach_outside_files() {
    let sb = Sandbox::new();
    let secret = sb.outside.join("secret");
    fs::write(&secret, b"s").expect("secret");
    let abs = secret.to_str().expect("utf-8 path");
    let outside = sb.outside.to_str().expect("utf-8 path");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (layer(|b| hardlink(b, "pw", "/etc/passwd")), "pw"),
        (layer(|b| hardlink(b, "s1", abs)), "s1"),
        (layer(|b| hardlink(b, "s2", "../outside/secret")), "s2"),
        (
            layer(|b| {
                symlink(b, "d", outside);
                hardlink(b, "s3", "d/secret");
            }),
            "s3",
        ),
    ];
    for (tar, entry) in cases {
        let err = err_of(&sb, &tar);
        assert!(err.to_string().contains(&format!("\"{entry}\"")), "{err}");
    }
    assert_eq!(fs::metadata(&secret).expect("secret").nlink(), 1);
    assert_eq!(fs::metadata("/etc/passwd").expect("passwd").nlink(), 1);
    sb.assert_outside_holds(&["secret"]);
}

#[test]
fn a_dir_replaced_by_an_outside_symlink_is_not_written_through() {
    let sb = Sandbox::new();
    let outside = sb.outside.to_str().expect("utf-8 path");
    let err = err_of(
        &sb,
        &layer(|b| {
            dir(b, "d/");
            symlink(b, "d", outside);
            file(b, "d/f", b"evil");
        }),
    );
    assert!(err.to_string().contains("\"d/f\""), "{err}");
    sb.assert_outside_holds(&[]);
}

#[test]
fn a_file_replacing_an_outside_symlink_is_written_in_the_root() {
    let sb = Sandbox::new();
    let target = sb.outside.join("victim");
    let target = target.to_str().expect("utf-8 path");
    sb.apply(
        &layer(|b| {
            file(b, "a", b"one");
            symlink(b, "a", target);
            file(b, "a", b"two");
            symlink(b, "b", target);
            raw(b, EntryType::Fifo, b"b", b"", b"");
        }),
        WhiteoutMode::Delete,
    )
    .expect("apply");
    assert_eq!(fs::read(sb.root.join("a")).expect("a"), b"two");
    sb.assert_outside_holds(&[]);
}

#[test]
fn a_huge_declared_size_fails_cleanly() {
    // Over the byte limit: refused before anything is read or created.
    let sb = Sandbox::new();
    let mut tar = Vec::new();
    let mut h = Header::new_gnu();
    h.set_path("huge").expect("path");
    h.set_size(1 << 40);
    h.set_cksum();
    tar.extend_from_slice(h.as_bytes());
    let err = err_of(&sb, &tar);
    assert!(
        matches!(&err, UnpackError::TooManyBytes { entry, .. } if entry == "huge"),
        "{err}"
    );
    assert!(!sb.root.join("huge").exists());

    // Under the limit but without the data: truncated.
    let mut tar = Vec::new();
    h.set_size(1 << 20);
    h.set_cksum();
    tar.extend_from_slice(h.as_bytes());
    tar.extend_from_slice(&[1u8; 1000]);
    let err = err_of(&sb, &tar);
    assert!(
        matches!(&err, UnpackError::Truncated { entry, declared, read } if entry == "huge" && *declared == 1 << 20 && *read == 1000),
        "{err}"
    );
}

#[test]
fn a_gzip_bomb_stops_at_max_bytes() {
    let limits = Limits {
        max_bytes: 8 << 20,
        max_entries: 100,
    };
    let bomb = gzip(&layer(|b| file(b, "bomb", &vec![0u8; 64 << 20])));
    assert!(bomb.len() < 1 << 20);
    let sb = Sandbox::new();
    let err = apply_layer(&bomb[..], &sb.root, WhiteoutMode::Delete, &limits).expect_err("bomb");
    assert!(
        matches!(&err, UnpackError::TooManyBytes { entry, limit } if entry == "bomb" && *limit == 8 << 20),
        "{err}"
    );
    assert!(!sb.root.join("bomb").exists());

    // Zeros after the end of the archive count too (they are part of the diff_id).
    let mut tail = layer(|b| file(b, "small", b"s"));
    tail.extend(std::iter::repeat_n(0u8, 16 << 20));
    let err =
        apply_layer(&gzip(&tail)[..], &sb.root, WhiteoutMode::Delete, &limits).expect_err("tail");
    assert!(
        matches!(&err, UnpackError::StreamTooLarge { at, .. } if at.contains("\"small\"")),
        "{err}"
    );
}

#[test]
fn too_many_entries_names_the_first_entry_over_the_limit() {
    let limits = Limits {
        max_bytes: 1 << 30,
        max_entries: 10,
    };
    let tar = layer(|b| (0..11).for_each(|i| file(b, &format!("f{i}"), b"")));
    let sb = Sandbox::new();
    let err = apply_layer(&tar[..], &sb.root, WhiteoutMode::Delete, &limits).expect_err("entries");
    assert!(
        matches!(&err, UnpackError::TooManyEntries { entry, limit: 10 } if entry == "f10"),
        "{err}"
    );
    assert!(!sb.root.join("f10").exists());
}

#[test]
fn oversized_pax_records_are_refused_not_buffered() {
    let sb = Sandbox::new();
    let mut b = Builder::new(Vec::new());
    let big = vec![b'x'; 8 << 20];
    b.append_pax_extensions([("comment", &big[..])])
        .expect("pax");
    file(&mut b, "after-pax", b"");
    let tar = b.into_inner().expect("tar");
    let err = err_of(&sb, &tar);
    assert!(matches!(err, UnpackError::MetadataTooLarge { .. }), "{err}");
}

/// Unmounts on drop so a failing test leaves no mount behind.
struct BindMount(std::path::PathBuf);

impl Drop for BindMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn whiteouts_never_delete_across_a_mount_inside_the_root() {
    let sb = Sandbox::new();
    fs::write(sb.outside.join("host-file"), b"h").expect("host file");
    sb.apply(&layer(|b| dir(b, "mnt/")), WhiteoutMode::Delete)
        .expect("layer 1");
    let target = sb.root.join("mnt");
    // mount(2), not mount(8): a child process would race the reaper tests' waitpid(-1).
    nix::mount::mount(
        Some(&sb.outside),
        &target,
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .expect("bind mount");
    let _guard = BindMount(target);
    let err = err_of(&sb, &layer(|b| file(b, ".wh.mnt", b"")));
    assert!(err.to_string().contains("\".wh.mnt\""), "{err}");
    let err = err_of(&sb, &layer(|b| file(b, "mnt/x", b"")));
    assert!(err.to_string().contains("\"mnt/x\""), "{err}");
    assert!(sb.outside.join("host-file").exists());
    assert_eq!(fs::read_dir(&sb.outside).expect("outside").count(), 1);
}
