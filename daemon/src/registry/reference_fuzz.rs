//! Fuzzing image references (issue #9): [`Reference::parse`] never panics on any string, and a
//! parsed reference printed with `Display` parses back to the same value.
//!
//! Seeds: `tests/corpus/reference/` (one reference per line).

use proptest::prelude::*;

use super::{Reference, ReferenceError};
use crate::fuzz_support;

/// `Reference::parse`'s length limit.
const MAX_REFERENCE: usize = 4096;

fn check(s: String) -> Result<(), TestCaseError> {
    match Reference::parse(&s) {
        Err(ReferenceError { reference, why }) => {
            prop_assert_eq!(reference, s);
            prop_assert!(!why.is_empty());
        }
        Ok(r) => {
            let printed = r.to_string();
            prop_assert!(
                printed.len() <= MAX_REFERENCE,
                "{:?} printed as {} bytes",
                s,
                printed.len()
            );
            let again = Reference::parse(&printed).map_err(|e| {
                TestCaseError::fail(format!("{s:?} printed as {printed:?} does not parse: {e}"))
            })?;
            prop_assert_eq!(&again, &r, "{:?} printed as {:?}", s, printed);
            prop_assert_eq!(again.to_string(), printed);
        }
    }
    Ok(())
}

/// References built from the grammar's parts, some at its length limits.
fn shaped() -> impl Strategy<Value = String> {
    let label = "[a-zA-Z0-9]([a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?";
    let domain = prop_oneof![
        Just(String::new()),
        Just("docker.io/".to_owned()),
        Just("index.docker.io/".to_owned()),
        Just("localhost/".to_owned()),
        Just("[::1]:5000/".to_owned()),
        (
            prop::collection::vec(label, 1..4),
            prop::option::of(0u32..99999)
        )
            .prop_map(|(labels, port)| match port {
                Some(p) => format!("{}:{p}/", labels.join(".")),
                None => format!("{}/", labels.join(".")),
            }),
        (1usize..70).prop_map(|n| format!("{}.io/", vec!["host"; n].join("-"))),
        (1000usize..1030).prop_map(|n| format!("{}.io/", "h".repeat(n * 4))),
    ];
    let component = "[a-z0-9]{1,4}([._-]{1,2}[a-z0-9]{1,4})?";
    let path = prop_oneof![
        4 => prop::collection::vec(component, 1..4).prop_map(|c| c.join("/")),
        1 => (1usize..130).prop_map(|n| vec!["ab"; n].join("/")),
    ];
    let tag = prop::option::of(prop_oneof![
        "[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}",
        (120usize..130).prop_map(|n| "t".repeat(n)),
    ]);
    let digest = prop::option::of(prop_oneof![
        "[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}")),
        "[0-9a-fA-F:]{0,66}".prop_map(|h| format!("sha256:{h}")),
    ]);
    (domain, path, tag, digest).prop_map(|(d, p, t, g)| {
        let mut s = format!("{d}{p}");
        if let Some(t) = t {
            s.push(':');
            s.push_str(&t);
        }
        if let Some(g) = g {
            s.push('@');
            s.push_str(&g);
        }
        s
    })
}

fn seeds() -> Vec<String> {
    fuzz_support::corpus_lines("reference")
}

#[test]
fn fuzz_reference_arbitrary() {
    fuzz_support::run(
        "reference-arbitrary",
        seeds(),
        prop_oneof![any::<String>(), "[a-zA-Z0-9.:/@_-]{0,40}"],
        check,
    );
}

#[test]
fn fuzz_reference_round_trip() {
    fuzz_support::run("reference-shaped", seeds(), shaped(), check);
}

/// Found by `fuzz_reference_round_trip`: a 4091-byte reference without a tag parsed, but its
/// full form adds `:latest` (4098 bytes) and did not parse, so an image stored under that
/// name could not be named again. The limit now holds for the full form.
#[test]
fn a_reference_whose_full_form_is_too_long_is_refused() {
    let input = format!("{}.io/a", "h".repeat(4086));
    assert_eq!(input.len(), 4091);
    let err = Reference::parse(&input).expect_err("its full form is 4098 bytes");
    assert!(err.why.contains("full form"), "{}", err.why);
    let fits = format!("{}.io/a", "h".repeat(4079));
    let r = Reference::parse(&fits).expect("its full form is 4091 bytes");
    assert_eq!(Reference::parse(&r.to_string()).expect("round trip"), r);
}
