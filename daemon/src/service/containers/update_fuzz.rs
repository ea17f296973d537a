//! Fuzzing containers.update's mask (issue #9): [`parse_mask_path`] and [`apply_update`] on
//! arbitrary and mask-shaped paths with arbitrary inputs never panic, every error is an
//! `invalid_argument`, and an accepted update never changes what is immutable nor a label
//! that a `labels.<key>`-only mask does not name.
//!
//! Seeds: `tests/corpus/update-mask/` (one mask per line, paths separated by `\t`).

use std::collections::BTreeMap;

use proptest::prelude::*;
use schema::{Container, ContainerInput, ErrorKind, Runtime};
use serde_json::value::RawValue;
use serde_json::Value;

use super::update::{apply_update, parse_mask_path, MaskPath};
use crate::fuzz_support;

fn stored() -> Container {
    Container {
        id: "web".into(),
        labels: [("a".to_owned(), "1".to_owned()), ("b.c".into(), "2".into())].into(),
        image: "busybox".into(),
        runtime: Runtime {
            name: "runc".into(),
            options: Value::Null,
        },
        spec: RawValue::from_string(r#"{"ociVersion":"1.0.2"}"#.into()).expect("json"),
        snapshotter: "overlayfs".into(),
        snapshot_key: "web".into(),
        created_at: "t0".into(),
        updated_at: "t0".into(),
        extensions: BTreeMap::new(),
        status: None,
    }
}

/// Paths close to the valid ones, and text made of their characters.
fn mask_path() -> impl Strategy<Value = String> {
    let known = prop_oneof![
        Just("labels"),
        Just("labels."),
        Just("image"),
        Just("spec"),
        Just("snapshot_key"),
        Just("extensions"),
        Just("extensions."),
        Just("runtime"),
        Just("id"),
        Just(""),
        Just("."),
    ]
    .prop_map(str::to_owned);
    prop_oneof![
        3 => (known.clone(), "[a-c.]{0,4}").prop_map(|(p, k)| format!("{p}{k}")),
        1 => known,
        1 => any::<String>(),
        1 => "[a-z_.é\\x00 ]{0,16}",
    ]
}

/// A JSON document of nesting depth `depth`, as an object or not.
fn spec(depth: usize, object: bool) -> Box<RawValue> {
    let inner = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let text = if object {
        format!(r#"{{"a":{inner}}}"#)
    } else {
        inner
    };
    RawValue::from_string(text).expect("generated JSON")
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    let key = prop_oneof![
        Just("a".to_owned()),
        Just("b.c".to_owned()),
        ".{0,4}".prop_map(String::from)
    ];
    let value = prop_oneof![
        4 => ".{0,6}".prop_map(String::from),
        1 => (4090usize..4100).prop_map(|n| "v".repeat(n)),
    ];
    prop::collection::btree_map(key, value, 0..4)
}

fn input() -> impl Strategy<Value = ContainerInput> {
    (
        labels(),
        ".{0,8}",
        prop::option::of((0usize..70, any::<bool>())),
        prop_oneof![Just(None), Just(Some("runc")), Just(Some("crun"))],
        prop_oneof![Just(""), Just("overlayfs"), Just("native")],
        prop::collection::btree_map("[a-c.]{0,3}", any::<i32>().prop_map(Value::from), 0..3),
    )
        .prop_map(
            |(labels, image, spec_shape, runtime, snapshotter, extensions)| ContainerInput {
                id: "web".into(),
                labels,
                image,
                runtime: runtime.map(|name| Runtime {
                    name: name.into(),
                    options: Value::Null,
                }),
                spec: spec_shape.map(|(depth, object)| spec(depth, object)),
                snapshotter: snapshotter.into(),
                snapshot_key: "key".into(),
                extensions,
            },
        )
}

fn check(mask: Vec<String>, input: ContainerInput) -> Result<(), TestCaseError> {
    let mut label_keys = Some(Vec::new());
    for path in &mask {
        match parse_mask_path("web", path) {
            Ok(MaskPath::Label(key)) => {
                if let Some(keys) = label_keys.as_mut() {
                    keys.push(key.to_owned());
                }
            }
            Ok(_) => label_keys = None,
            Err(e) => {
                prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e);
                prop_assert!(e.to_string().contains("cannot update field"), "{}", e);
            }
        }
    }
    let before = stored();
    match apply_update(before.clone(), input, &mask) {
        Err(e) => prop_assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e),
        Ok(after) => {
            prop_assert_eq!(&after.id, &before.id);
            prop_assert_eq!(&after.runtime, &before.runtime);
            prop_assert_eq!(&after.snapshotter, &before.snapshotter);
            prop_assert_eq!(&after.created_at, &before.created_at);
            prop_assert!(after.labels.keys().all(|k| !k.is_empty()));
            if let (Some(keys), false) = (label_keys, mask.is_empty()) {
                for (k, v) in &before.labels {
                    if !keys.contains(k) {
                        prop_assert_eq!(after.labels.get(k), Some(v), "label {} changed", k);
                    }
                }
                prop_assert_eq!(&after.image, &before.image);
            }
        }
    }
    Ok(())
}

fn seeds() -> Vec<(Vec<String>, ContainerInput)> {
    let given = ContainerInput {
        id: "web".into(),
        labels: [("a".to_owned(), "".to_owned()), ("z".into(), "9".into())].into(),
        spec: Some(spec(3, true)),
        ..Default::default()
    };
    fuzz_support::corpus_lines("update-mask")
        .into_iter()
        .map(|line| {
            let mask = if line.is_empty() {
                Vec::new()
            } else {
                line.split('\t').map(str::to_owned).collect()
            };
            (mask, given.clone())
        })
        .collect()
}

#[test]
fn fuzz_update_mask_arbitrary() {
    fuzz_support::run(
        "update-mask-arbitrary",
        seeds(),
        (prop::collection::vec(any::<String>(), 0..4), input()),
        |(mask, input)| check(mask, input),
    );
}

#[test]
fn fuzz_update_mask_shaped() {
    fuzz_support::run(
        "update-mask-shaped",
        seeds(),
        (prop::collection::vec(mask_path(), 0..5), input()),
        |(mask, input)| check(mask, input),
    );
}
