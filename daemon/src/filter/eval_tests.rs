//! In-memory evaluation tests, containerd's missing-field semantics included.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::{parse, Adaptor};

/// A container-like object with containerd's adaptor rules: empty scalar fields are
/// absent, labels are present even when empty, `labels.a.b` is the label `a.b`.
pub(super) struct Object {
    pub id: &'static str,
    pub image: &'static str,
    pub labels: BTreeMap<&'static str, &'static str>,
}

impl Adaptor for Object {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        let non_empty = |s: &'static str| (!s.is_empty()).then_some(Cow::Borrowed(s));
        match path {
            [f] if f == "id" => non_empty(self.id),
            [f] if f == "image" => non_empty(self.image),
            [f, key @ ..] if f == "labels" && !key.is_empty() => self
                .labels
                .get(key.join(".").as_str())
                .map(|v| Cow::Borrowed(*v)),
            _ => None,
        }
    }
}

fn web() -> Object {
    Object {
        id: "web",
        image: "docker.io/library/busybox:latest",
        labels: BTreeMap::from([("app", "web"), ("a.b", "c"), ("empty", "")]),
    }
}

fn bare() -> Object {
    Object {
        id: "bare",
        image: "",
        labels: BTreeMap::new(),
    }
}

fn matches(filters: &[&str], object: &Object) -> bool {
    let filters: Vec<String> = filters.iter().map(|s| s.to_string()).collect();
    parse(&filters)
        .unwrap_or_else(|e| panic!("{e}"))
        .matches(object)
}

#[test]
fn empty_filter_matches_everything() {
    assert!(matches(&[], &bare()));
    assert!(matches(&[""], &bare()));
    assert!(matches(&["id==nope", ""], &bare()));
}

#[test]
fn equality_and_presence() {
    assert!(matches(&[r#"labels."a.b"==c"#], &web()));
    assert!(matches(&["labels.a.b==c"], &web()));
    assert!(!matches(&["labels.app==db"], &web()));
    assert!(matches(&["labels.app"], &web()));
    assert!(matches(&["labels.empty"], &web()));
    assert!(matches(&[r#"labels.empty=="""#], &web()));
    assert!(!matches(&["labels.app"], &bare()));
    assert!(!matches(&["image"], &bare()));
    assert!(matches(&["image"], &web()));
}

#[test]
fn comma_is_and_and_list_is_or() {
    assert!(matches(&["id==web,labels.app==web"], &web()));
    assert!(!matches(&["id==web,labels.app==db"], &web()));
    assert!(matches(&["id==nope", "labels.app==web"], &web()));
    assert!(!matches(&["id==nope", "labels.app==db"], &web()));
}

#[test]
fn regex_is_an_unanchored_search() {
    assert!(matches(&["image~=^docker.io/"], &web()));
    assert!(matches(&["image~=busybox"], &web()));
    assert!(!matches(&["image~=^busybox"], &web()));
    assert!(matches(&[r"labels.app~=/^w.b$/"], &web()));
}

#[test]
fn missing_field_reads_as_empty_for_not_equal_and_regex() {
    // `!=` on a missing field compares "" with the value (containerd's filter.go).
    assert!(matches(&["labels.app!=web"], &bare()));
    assert!(matches(&["image!=busybox"], &bare()));
    assert!(!matches(&[r#"labels.app!="""#], &bare()));
    assert!(!matches(&[r#"labels.empty!="""#], &web()));
    assert!(matches(&[r#"labels.app!="""#], &web()));
    assert!(!matches(&["labels.app!=web"], &web()));
    // `~=` runs the regex on "".
    assert!(matches(&["labels.app~=^$"], &bare()));
    assert!(matches(&["labels.app~=.*"], &bare()));
    assert!(!matches(&["labels.app~=."], &bare()));
    assert!(!matches(&["labels.app~=^$"], &web()));
    // `==` needs the field.
    assert!(!matches(&[r#"labels.app=="""#], &bare()));
    assert!(!matches(&[r#"image=="""#], &bare()));
}
