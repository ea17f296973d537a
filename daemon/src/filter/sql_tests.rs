//! SQL compilation tests against a real in-memory SQLite with berth's container schema:
//! every filter must select exactly the rows that in-memory evaluation selects, and
//! label selectors must be answered from the `(key, value)` index.

use std::borrow::Cow;

use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use super::{parse, register_regexp, Adaptor, Filter, FilterError, SqlField};

const SCHEMA: &str = "
CREATE TABLE containers (pk INTEGER PRIMARY KEY, namespace TEXT NOT NULL, id TEXT NOT NULL, image TEXT NOT NULL DEFAULT '', runtime_name TEXT NOT NULL DEFAULT '', snapshotter TEXT NOT NULL DEFAULT '', snapshot_key TEXT NOT NULL DEFAULT '', UNIQUE(namespace,id));
CREATE TABLE container_labels (container INTEGER NOT NULL REFERENCES containers(pk) ON DELETE CASCADE, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(container,key)) WITHOUT ROWID;
CREATE INDEX container_labels_by_kv ON container_labels(key, value);
";

struct Fixture {
    namespace: &'static str,
    id: &'static str,
    image: &'static str,
    runtime: &'static str,
    labels: &'static [(&'static str, &'static str)],
}

const BUSYBOX: &str = "docker.io/library/busybox:latest";
const RUNC: &str = "io.containerd.runc.v2";

const CONTAINERS: &[Fixture] = &[
    Fixture {
        namespace: "default",
        id: "web",
        image: BUSYBOX,
        runtime: RUNC,
        labels: &[("app", "web"), ("a.b", "c"), ("empty", "")],
    },
    Fixture {
        namespace: "default",
        id: "db",
        image: "docker.io/library/postgres:16",
        runtime: "",
        labels: &[("app", "db"), ("tier", "backend")],
    },
    Fixture {
        namespace: "default",
        id: "bare",
        image: "",
        runtime: "",
        labels: &[],
    },
    Fixture {
        namespace: "default",
        id: "job",
        image: "docker.io/library/busybox:1.36",
        runtime: "",
        labels: &[("tier", "batch")],
    },
    Fixture {
        namespace: "other",
        id: "web",
        image: BUSYBOX,
        runtime: RUNC,
        labels: &[("app", "web")],
    },
];

/// The in-memory twin of [`resolve`], with containerd's adaptor rules.
impl Adaptor for Fixture {
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>> {
        let non_empty = |s: &'static str| (!s.is_empty()).then_some(Cow::Borrowed(s));
        match path {
            [f] if f == "id" => non_empty(self.id),
            [f] if f == "image" => non_empty(self.image),
            [a, b] if a == "runtime" && b == "name" => non_empty(self.runtime),
            [f, key @ ..] if f == "labels" && !key.is_empty() => {
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
        [f] if f == "id" => Some(SqlField::Column("c.id")),
        [f] if f == "image" => Some(SqlField::Column("c.image")),
        [a, b] if a == "runtime" && b == "name" => Some(SqlField::Column("c.runtime_name")),
        [f, key @ ..] if f == "labels" && !key.is_empty() => Some(SqlField::Label {
            table: "container_labels",
            owner_column: "container",
            owner: "c.pk",
            key: key.join("."),
        }),
        _ => None,
    }
}

fn database() -> Connection {
    let conn = Connection::open_in_memory().expect("open in-memory database");
    register_regexp(&conn).expect("register regexp");
    conn.execute_batch(SCHEMA).expect("create schema");
    for c in CONTAINERS {
        conn.execute(
            "INSERT INTO containers (namespace, id, image, runtime_name) VALUES (?, ?, ?, ?)",
            (c.namespace, c.id, c.image, c.runtime),
        )
        .expect("insert container");
        let pk = conn.last_insert_rowid();
        for (k, v) in c.labels {
            conn.execute(
                "INSERT INTO container_labels (container, key, value) VALUES (?, ?, ?)",
                (pk, k, v),
            )
            .expect("insert label");
        }
    }
    conn
}

fn filter(exprs: &[&str]) -> Filter {
    let exprs: Vec<String> = exprs.iter().map(|s| s.to_string()).collect();
    parse(&exprs).unwrap_or_else(|e| panic!("{e}"))
}

/// The query a list call would run, plus its parameters (namespace first).
fn query(filter: &Filter) -> (String, Vec<Value>) {
    let (fragment, params) = filter.to_sql(&resolve).unwrap_or_else(|e| panic!("{e}"));
    let sql =
        format!("SELECT c.id FROM containers c WHERE c.namespace = ? AND {fragment} ORDER BY c.id");
    let mut all = vec![Value::Text("default".into())];
    all.extend(params);
    (sql, all)
}

fn sql_ids(conn: &Connection, exprs: &[&str]) -> Vec<String> {
    let (sql, params) = query(&filter(exprs));
    let mut stmt = conn.prepare(&sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let rows = stmt
        .query_map(params_from_iter(params), |row| row.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>());
    rows.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn memory_ids(exprs: &[&str]) -> Vec<String> {
    let f = filter(exprs);
    let mut ids: Vec<String> = CONTAINERS
        .iter()
        .filter(|c| c.namespace == "default" && f.matches(*c))
        .map(|c| c.id.to_owned())
        .collect();
    ids.sort();
    ids
}

#[test]
fn sql_selects_the_same_rows_as_in_memory_evaluation() {
    let conn = database();
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["bare", "db", "job", "web"]),
        (&[""], &["bare", "db", "job", "web"]),
        (&["id==nope", ""], &["bare", "db", "job", "web"]),
        (&["labels.app==web"], &["web"]),
        (&[r#"labels."a.b"==c"#], &["web"]),
        (&["labels.app"], &["db", "web"]),
        (&["labels.empty"], &["web"]),
        (&[r#"labels.empty=="""#], &["web"]),
        (&["labels.app!=web"], &["bare", "db", "job"]),
        (&[r#"labels.app!="""#], &["db", "web"]),
        (&[r#"labels.empty!="""#], &[]),
        (&["labels.app~=^w"], &["web"]),
        (&["labels.app~=^$"], &["bare", "job"]),
        (&["labels.app~=.*"], &["bare", "db", "job", "web"]),
        (&["labels.tier~=/^(batch|backend)$/"], &["db", "job"]),
        (&["image"], &["db", "job", "web"]),
        (&["image~=busybox"], &["job", "web"]),
        (&["image~=^$"], &["bare"]),
        (
            &["image!=docker.io/library/postgres:16"],
            &["bare", "job", "web"],
        ),
        (&["id==web,labels.app==web"], &["web"]),
        (&["id==web,labels.app==db"], &[]),
        (&["id==db", "labels.tier==batch"], &["db", "job"]),
        (&["runtime.name==io.containerd.runc.v2"], &["web"]),
        (&["runtime.name"], &["web"]),
        (&["labels.app!=web,labels.tier!=batch"], &["bare", "db"]),
    ];
    for (exprs, want) in cases {
        let got = sql_ids(&conn, exprs);
        assert_eq!(got, *want, "SQL for {exprs:?}");
        assert_eq!(memory_ids(exprs), *want, "in-memory for {exprs:?}");
    }
}

#[test]
fn empty_filter_compiles_to_true_without_parameters() {
    let (sql, params) = filter(&[])
        .to_sql(&resolve)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((sql.as_str(), params.len()), ("1", 0));
    let (sql, _) = filter(&["id==x", ""])
        .to_sql(&resolve)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sql, "1");
}

#[test]
fn values_travel_as_parameters_never_as_sql_text() {
    let hostile = "x'OR'1'='1";
    let (sql, params) = filter(&[&format!("id=={hostile},labels.\"k'\"~={hostile}")])
        .to_sql(&resolve)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!sql.contains(hostile), "{sql}");
    assert!(params.contains(&Value::Text(hostile.to_owned())));
    assert!(params.contains(&Value::Text("k'".to_owned())));
    let conn = database();
    assert!(sql_ids(&conn, &[&format!("id=={hostile}")]).is_empty());
}

#[test]
fn unknown_fields_are_errors_naming_the_path() {
    for (expr, path) in [
        ("nope==x", "nope"),
        ("labels", "labels"),
        (r#"id==web,spec."a b""#, r#"spec."a b""#),
    ] {
        match filter(&[expr]).to_sql(&resolve) {
            Err(e @ FilterError::UnknownField { .. }) => {
                assert_eq!(
                    e.to_string(),
                    format!("filter field {path:?} is not supported here")
                );
            }
            other => panic!("{expr}: expected an unknown-field error, got {other:?}"),
        }
    }
}

#[test]
fn label_selectors_use_the_key_value_index() {
    let conn = database();
    for (expr, label_selectors) in [
        ("labels.app", 1),
        ("labels.app==web", 1),
        ("labels.app!=web", 1),
        (r#"labels.app!="""#, 1),
        ("labels.app~=^w", 1),
        ("labels.app~=^$", 1),
        ("id==web,labels.app==web,labels.tier!=x", 2),
    ] {
        let (sql, params) = query(&filter(&[expr]));
        let plan = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .and_then(|mut stmt| {
                stmt.query_map(params_from_iter(params), |row| row.get::<_, String>(3))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap_or_else(|e| panic!("{expr}: {e}"));
        let searches = plan
            .iter()
            .filter(|d| {
                d.starts_with("SEARCH container_labels USING COVERING INDEX container_labels_by_kv")
            })
            .count();
        assert_eq!(searches, label_selectors, "{expr}: {plan:#?}");
        assert!(
            !plan.iter().any(|d| d.starts_with("SCAN container_labels")),
            "{expr}: {plan:#?}"
        );
    }
}

#[test]
fn regexp_function_matches_caches_and_reports_bad_patterns() {
    let conn = database();
    let one = |sql: &str| conn.query_row(sql, [], |row| row.get::<_, Option<bool>>(0));
    assert_eq!(
        one("SELECT 'busybox' REGEXP '^busy'").ok(),
        Some(Some(true))
    );
    assert_eq!(
        one("SELECT regexp('^busy', 'xbusy')").ok(),
        Some(Some(false))
    );
    assert_eq!(one("SELECT regexp('x', NULL)").ok(), Some(None));
    // One statement, many rows: the pattern is compiled once and reused per row.
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM containers WHERE regexp('^docker\\.io/', image)",
            [],
            |row| row.get(0),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n, 4);
    let err = one("SELECT regexp('(', 'x')").map_err(|e| e.to_string());
    assert!(
        matches!(&err, Err(m) if m.contains(r#"invalid regular expression "(""#)),
        "{err:?}"
    );
}

#[test]
fn the_largest_filter_allowed_runs_and_a_larger_one_is_refused_before_sqlite() {
    let conn = database();
    // The widest shapes: one expression of MAX selectors, and MAX one-selector expressions.
    let wide: Vec<String> = (0..super::MAX_SELECTORS)
        .map(|i| format!("labels.k{i}==v"))
        .collect();
    let joined = wide.join(",");
    assert_eq!(sql_ids(&conn, &[joined.as_str()]), Vec::<String>::new());
    let alternatives: Vec<&str> = wide.iter().map(String::as_str).collect();
    assert_eq!(sql_ids(&conn, &alternatives), Vec::<String>::new());
    let many: Vec<String> = (0..998).map(|i| format!("labels.k{i}==v")).collect();
    let err = parse(&[many.join(",")]).map(|_| ());
    assert!(
        matches!(err, Err(FilterError::TooLarge { selectors: 998 })),
        "{err:?}"
    );
    let err = parse(&vec![String::new(); 5000]).map(|_| ());
    assert!(matches!(err, Err(FilterError::TooLarge { .. })), "{err:?}");
}
