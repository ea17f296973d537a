//! Fuzzing the filter language (issue #9): [`parse`] on arbitrary strings and on strings
//! generated from the grammar never panics; every error it returns is an `invalid_argument`;
//! every filter it accepts compiles to SQL that SQLite runs, and selects exactly the rows
//! in-memory evaluation selects.
//!
//! Seeds: `tests/corpus/filter/` (one filter list per line, expressions separated by `\t`).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use rusqlite::{params_from_iter, Connection};
use schema::ErrorKind;

use super::{parse, register_regexp, Adaptor, FilterError, SqlField};
use crate::fuzz_support;
use crate::service;

/// A small table and its label table; values chosen to collide with generated ones.
const SCHEMA: &str = "
CREATE TABLE things (pk INTEGER PRIMARY KEY, id TEXT NOT NULL, image TEXT NOT NULL);
CREATE TABLE thing_labels (thing INTEGER NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (thing, key)) WITHOUT ROWID;
CREATE INDEX thing_labels_by_kv ON thing_labels (key, value);
";

struct Thing {
    id: &'static str,
    image: &'static str,
    labels: &'static [(&'static str, &'static str)],
}

const THINGS: &[Thing] = &[
    Thing {
        id: "a",
        image: "busybox",
        labels: &[("a", "b"), ("a.b", ""), ("x", "a,b")],
    },
    Thing {
        id: "b",
        image: "",
        labels: &[("a", ""), ("é", "\"")],
    },
    Thing {
        id: "c",
        image: "a.b",
        labels: &[],
    },
];

impl Adaptor for Thing {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        let non_empty = |s: &'static str| (!s.is_empty()).then_some(Cow::Borrowed(s));
        match path {
            [f] if f == "id" => non_empty(self.id),
            [f] if f == "image" => non_empty(self.image),
            [l, key @ ..] if l == "labels" && !key.is_empty() => {
                let key = key.join(".");
                self.labels
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| Cow::Borrowed(*v))
            }
            _ => None,
        }
    }
}

fn resolve(path: &[String]) -> Option<SqlField> {
    match path {
        [f] if f == "id" => Some(SqlField::Column("t.id")),
        [f] if f == "image" => Some(SqlField::Column("t.image")),
        [l, key @ ..] if l == "labels" && !key.is_empty() => Some(SqlField::Label {
            table: "thing_labels",
            owner_column: "thing",
            owner: "t.pk",
            key: key.join("."),
        }),
        _ => None,
    }
}

fn database() -> Connection {
    let conn = Connection::open_in_memory().expect("open in-memory SQLite");
    conn.execute_batch(SCHEMA).expect("schema");
    register_regexp(&conn).expect("regexp()");
    for (pk, t) in THINGS.iter().enumerate() {
        conn.execute(
            "INSERT INTO things (pk, id, image) VALUES (?1, ?2, ?3)",
            rusqlite::params![pk as i64, t.id, t.image],
        )
        .expect("insert thing");
        for (k, v) in t.labels {
            conn.execute(
                "INSERT INTO thing_labels (thing, key, value) VALUES (?1, ?2, ?3)",
                rusqlite::params![pk as i64, k, v],
            )
            .expect("insert label");
        }
    }
    conn
}

/// The property every filter list must satisfy.
fn check(conn: &Connection, exprs: &[String], valid: &AtomicU64) -> Result<(), TestCaseError> {
    let filter = match parse(exprs) {
        Ok(f) => {
            valid.fetch_add(1, Ordering::Relaxed);
            f
        }
        Err(e) => return check_error(e),
    };
    let by_memory: Vec<&str> = THINGS
        .iter()
        .filter(|t| filter.matches(*t))
        .map(|t| t.id)
        .collect();
    let (cond, params) = match filter.to_sql(&resolve) {
        Ok(sql) => sql,
        Err(e @ FilterError::UnknownField { .. }) => return check_error(e),
        Err(e) => return Err(TestCaseError::fail(format!("to_sql failed: {e:?}"))),
    };
    let sql = format!("SELECT t.id FROM things t WHERE {cond} ORDER BY t.pk");
    let mut stmt = conn
        .prepare(&sql)
        .map_err(|e| TestCaseError::fail(format!("SQLite refused {sql:?}: {e}")))?;
    let by_sql = stmt
        .query_map(params_from_iter(params.iter()), |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TestCaseError::fail(format!("SQLite failed on {sql:?}: {e}")))?;
    prop_assert_eq!(by_sql, by_memory, "SQL and in-memory evaluation disagree");
    Ok(())
}

fn check_error(e: FilterError) -> Result<(), TestCaseError> {
    let message = e.to_string();
    prop_assert!(!message.is_empty());
    let kind = service::Error::from(e).kind();
    prop_assert_eq!(kind, ErrorKind::InvalidArgument, "{}", message);
    Ok(())
}

fn seeds() -> Vec<Vec<String>> {
    fuzz_support::corpus_lines("filter")
        .into_iter()
        .map(|line| line.split('\t').map(str::to_owned).collect())
        .collect()
}

/// Text made mostly of the grammar's own characters, so the scanner's corners are hit.
fn grammar_soup() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z.\"/|=!~, \\\\0-9xuU\\t\\n()\\[\\]*+?^$é]{0,40}",
    ]
}

/// `s` written as a Go-style quoted string with `quote`, escaping what needs escaping and,
/// at `style`'s choice, other characters too.
fn quote(s: &str, quote: char, style: u8) -> String {
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if style % 3 == 1 && c.is_ascii() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if style % 3 == 2 && (c as u32) < 0x10000 => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop_oneof![Just("id"), Just("image"), Just("labels"), Just("a"), Just("b")]
            .prop_map(str::to_owned),
        2 => "[A-Za-z0-9_-]{1,6}",
        2 => (".{0,6}", 0u8..3).prop_map(|(s, style)| quote(&s, '"', style)),
    ]
}

fn value(regex: bool) -> BoxedStrategy<String> {
    let plain = prop_oneof![
        3 => prop_oneof![Just(""), Just("a"), Just("b"), Just("busybox"), Just("a,b")]
            .prop_map(str::to_owned),
        2 => "[^, \\t\\n\"/|]{1,8}",
    ];
    let quoted = (plain.clone(), 0u8..3, 0u8..3).prop_map(move |(s, q, style)| {
        let q = if regex {
            ['"', '/', '|'][q as usize]
        } else {
            '"'
        };
        quote(&s, q, style)
    });
    if regex {
        prop_oneof![
            2 => quoted,
            2 => prop_oneof![Just("^a"), Just("^$"), Just("b$"), Just("[a-z]+"), Just(".*"),
                Just("(a|b)"), Just("a{2,}"), Just("[")].prop_map(str::to_owned),
            1 => plain,
        ]
        .boxed()
    } else {
        prop_oneof![2 => quoted, 3 => plain].boxed()
    }
}

fn selector() -> impl Strategy<Value = String> {
    let path = prop::collection::vec(field(), 1..4).prop_map(|f| f.join("."));
    let op = prop_oneof![Just(""), Just("=="), Just("!="), Just("~=")];
    (path, op, " {0,1}").prop_flat_map(|(path, op, space)| {
        let v = if op.is_empty() {
            Just(String::new()).boxed()
        } else {
            value(op == "~=")
        };
        v.prop_map(move |v| format!("{path}{space}{op}{space}{v}"))
    })
}

/// One expression as the grammar shapes it, sometimes damaged by one edit.
fn expression() -> impl Strategy<Value = String> {
    let clean = prop::collection::vec(selector(), 0..4).prop_map(|s| s.join(","));
    (
        clean,
        any::<u8>(),
        any::<prop::sample::Index>(),
        grammar_soup(),
    )
        .prop_map(|(text, edit, at, soup)| {
            let mut cut = at.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            match edit % 8 {
                0 => text[..cut].to_owned(),
                1 => format!("{}{}{}", &text[..cut], soup, &text[cut..]),
                _ => text,
            }
        })
}

#[test]
fn fuzz_filter_arbitrary_strings() {
    let conn = database();
    let valid = AtomicU64::new(0);
    fuzz_support::run(
        "filter-arbitrary",
        seeds(),
        prop::collection::vec(grammar_soup(), 0..3),
        |exprs| check(&conn, &exprs, &valid),
    );
    eprintln!("fuzz filter-arbitrary: {} parsed", valid.into_inner());
}

#[test]
fn fuzz_filter_grammar_shaped() {
    let conn = database();
    let valid = AtomicU64::new(0);
    fuzz_support::run(
        "filter-grammar",
        seeds(),
        prop::collection::vec(expression(), 0..3),
        |exprs| check(&conn, &exprs, &valid),
    );
    eprintln!("fuzz filter-grammar: {} parsed", valid.into_inner());
}

/// Found by `fuzz_filter_grammar_shaped` (minimal input `["image==\"\""]`): `<column>==""`
/// selected rows with an empty column in SQL, while `==` needs the field present (an empty
/// column is absent), as `Filter::matches` and containerd say.
#[test]
fn column_equal_empty_selects_nothing_in_sql_as_in_memory() {
    let conn = database();
    let exprs = vec![r#"image=="""#.to_owned()];
    let filter = parse(&exprs).expect("parses");
    let by_memory: Vec<&str> = THINGS
        .iter()
        .filter(|t| filter.matches(*t))
        .map(|t| t.id)
        .collect();
    let (cond, params) = filter.to_sql(&resolve).expect("compiles");
    let by_sql: Vec<String> = conn
        .prepare(&format!(
            "SELECT t.id FROM things t WHERE {cond} ORDER BY t.pk"
        ))
        .expect("prepare")
        .query_map(params_from_iter(params.iter()), |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        by_sql, by_memory,
        "image==\"\" must select nothing (no thing has an empty image present)"
    );
}
