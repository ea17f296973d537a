//! Fuzzing layer tar headers (issue #9): arbitrary bytes and mutated valid layers (byte
//! flips, truncation, overwritten header fields, gzip) given to [`apply_layer`] on a temp
//! snapshot root never panic, never touch the `outside` canary dir beside the root, and fail
//! only with an [`UnpackError`] (the function's type; the test checks it renders a message).
//!
//! Seeds: `tests/corpus/layer/` (whole layer files, plain or gzip).

use std::fs;

use proptest::prelude::*;
use tar::{Builder, EntryType};

use super::*;
use crate::fuzz_support;

const CANARY: &[u8] = b"must not change";

/// Small limits, so a mutated size field fails fast instead of writing gigabytes.
fn limits() -> Limits {
    Limits {
        max_bytes: 1 << 20,
        max_entries: 1000,
    }
}

fn check(layer: &[u8], mode: WhiteoutMode) -> Result<(), TestCaseError> {
    let sb = Sandbox::new();
    fs::write(sb.outside.join("canary"), CANARY).expect("write canary");
    if let Err(e) = apply_layer(layer, &sb.root, mode, &limits()) {
        prop_assert!(!e.to_string().is_empty());
    }
    sb.assert_outside_holds(&["canary"]);
    prop_assert_eq!(
        fs::read(sb.outside.join("canary")).expect("read canary"),
        CANARY
    );
    Ok(())
}

/// One entry of a generated layer; names and targets lean on the tricky ones.
#[derive(Debug, Clone)]
struct Entry {
    kind: EntryType,
    name: String,
    link: String,
    data: Vec<u8>,
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "a", "a/b", "a/b/c", "./a", "/a", "/", ".", "./", "..", "../a", "a/../..", "a/./b",
            ".wh.a", "a/.wh.b", "a/.wh..wh..opq", ".wh..wh..opq", ".wh.", ".wh..", "l/x",
            "l/../x", "outside/x", "a//b", "a/",
        ])
        .prop_map(str::to_owned),
        1 => "[a-c./]{1,12}",
        1 => "[^\\x00]{1,20}",
    ]
}

fn link() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a",
        "a/b",
        "/",
        "..",
        "../outside",
        "../outside/canary",
        "../../..",
        "/proc/self/root",
        "/etc",
        "l",
        "",
    ])
    .prop_map(str::to_owned)
}

fn entry() -> impl Strategy<Value = Entry> {
    let kind = prop::sample::select(vec![
        EntryType::Regular,
        EntryType::Regular,
        EntryType::Directory,
        EntryType::Directory,
        EntryType::Symlink,
        EntryType::Link,
        EntryType::Char,
        EntryType::Fifo,
    ]);
    (
        kind,
        name(),
        link(),
        prop::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(kind, name, link, data)| Entry {
            kind,
            name,
            link,
            data: if kind == EntryType::Regular {
                data
            } else {
                Vec::new()
            },
        })
}

fn build(entries: &[Entry]) -> Vec<u8> {
    layer(|b: &mut Builder<Vec<u8>>| {
        for e in entries {
            let name = &e.name.as_bytes()[..e.name.len().min(99)];
            let link = &e.link.as_bytes()[..e.link.len().min(99)];
            raw(b, e.kind, name, link, &e.data);
        }
    })
}

/// How a valid layer is damaged before it is applied.
#[derive(Debug, Clone)]
enum Mutation {
    /// Flip the byte at (index mod length) with the mask.
    Flip(Vec<(prop::sample::Index, u8)>),
    /// Keep only the first (index mod length) bytes.
    Truncate(prop::sample::Index),
    /// Overwrite a header field of a 512-byte block with bytes (size, mode, type, checksum...).
    Field {
        block: prop::sample::Index,
        offset: usize,
        bytes: Vec<u8>,
    },
    None,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let field_offset = prop::sample::select(vec![
        0usize, 100, 108, 116, 124, 136, 148, 156, 157, 257, 263, 329, 337, 345,
    ]);
    let field_bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..13),
        Just(b"77777777777\0".to_vec()),
        Just(vec![
            0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
        ]),
        Just(b"L".to_vec()),
        Just(b"x".to_vec()),
        Just(b"S".to_vec()),
        Just(b"4".to_vec()),
    ];
    prop_oneof![
        3 => prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..8).prop_map(Mutation::Flip),
        1 => any::<prop::sample::Index>().prop_map(Mutation::Truncate),
        3 => (any::<prop::sample::Index>(), field_offset, field_bytes)
            .prop_map(|(block, offset, bytes)| Mutation::Field { block, offset, bytes }),
        1 => Just(Mutation::None),
    ]
}

fn mutate(mut tar: Vec<u8>, m: &Mutation) -> Vec<u8> {
    match m {
        Mutation::Flip(flips) => {
            for (at, mask) in flips {
                let i = at.index(tar.len());
                tar[i] ^= mask;
            }
        }
        Mutation::Truncate(at) => tar.truncate(at.index(tar.len())),
        Mutation::Field {
            block,
            offset,
            bytes,
        } => {
            let start = block.index(tar.len() / 512) * 512 + offset;
            let end = (start + bytes.len()).min(tar.len());
            tar[start..end].copy_from_slice(&bytes[..end - start]);
        }
        Mutation::None => {}
    }
    tar
}

fn mode(overlay: bool) -> WhiteoutMode {
    if overlay {
        WhiteoutMode::Overlay
    } else {
        WhiteoutMode::Delete
    }
}

fn seeds() -> Vec<(Vec<u8>, bool)> {
    fuzz_support::corpus("layer")
        .into_iter()
        .flat_map(|(_, bytes)| [(bytes.clone(), true), (bytes, false)])
        .collect()
}

#[test]
fn fuzz_layer_arbitrary_bytes() {
    let bytes = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        // gzip and zstd magic in front of noise, so the decoders see it too.
        prop::collection::vec(any::<u8>(), 0..512)
            .prop_map(|b| [&[0x1f, 0x8b, 8, 0][..], &b].concat()),
        prop::collection::vec(any::<u8>(), 0..512).prop_map(|b| [
            &[0x28, 0xb5, 0x2f, 0xfd][..],
            &b
        ]
        .concat()),
    ];
    fuzz_support::run(
        "layer-arbitrary",
        seeds(),
        (bytes, any::<bool>()),
        |(bytes, overlay)| check(&bytes, mode(overlay)),
    );
}

#[test]
fn fuzz_layer_mutated_tars() {
    let strategy = (
        prop::collection::vec(entry(), 1..8),
        mutation(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(entries, m, compress, overlay)| {
            let tar = mutate(build(&entries), &m);
            let tar = if compress { gzip(&tar) } else { tar };
            (tar, overlay)
        });
    fuzz_support::run("layer-mutated", seeds(), strategy, |(bytes, overlay)| {
        check(&bytes, mode(overlay))
    });
}
