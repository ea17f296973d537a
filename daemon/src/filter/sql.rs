//! Compiles a [`Filter`] into a SQLite boolean expression, and provides the
//! `regexp()` SQL function that `~=` compiles to.
//!
//! Values always travel as `?` parameters; only the `&'static str` table and column
//! names given by the caller's resolver are written into the SQL text. Label
//! selectors become uncorrelated `owner IN (SELECT container FROM labels WHERE key = ?
//! ...)` sub-selects, which SQLite answers from the `(key, value)` index once per
//! statement instead of probing labels row by row.

use rusqlite::functions::{Context, FunctionFlags};
use rusqlite::types::{Value, ValueRef};
use rusqlite::Connection;

use super::{compile_regex, display_path, Filter, FilterError, Operator, Selector};

/// Where a field path lives in the database, as told by the caller's resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlField {
    /// A `NOT NULL` text column, e.g. `"c.image"`. Like containerd's adaptors, the
    /// empty string counts as absent.
    Column(&'static str),
    /// One key of a label table with columns `(<owner_column>, key, value)` and an
    /// index on `(key, value)`; `owner` is the outer query's key, e.g. `"c.pk"`, and
    /// `owner_column` the label table's column holding it, e.g. `"container"`.
    Label {
        table: &'static str,
        owner_column: &'static str,
        owner: &'static str,
        key: String,
    },
}

impl Filter {
    /// Compiles the filter into a boolean SQL expression plus its parameters, for the
    /// caller to AND into its `WHERE` clause. `~=` needs [`register_regexp`] on the
    /// connection. An empty filter compiles to `"1"`.
    pub fn to_sql(
        &self,
        resolve: &dyn Fn(&[String]) -> Option<SqlField>,
    ) -> Result<(String, Vec<Value>), FilterError> {
        let mut params = Vec::new();
        if self.matches_all() {
            return Ok(("1".to_owned(), params));
        }
        let mut alternatives = Vec::with_capacity(self.alternatives.len());
        for conjunction in &self.alternatives {
            let mut terms = Vec::with_capacity(conjunction.selectors.len());
            for selector in &conjunction.selectors {
                terms.push(selector_sql(selector, resolve, &mut params)?);
            }
            alternatives.push(format!("({})", terms.join(" AND ")));
        }
        Ok((format!("({})", alternatives.join(" OR ")), params))
    }
}

fn selector_sql(
    selector: &Selector,
    resolve: &dyn Fn(&[String]) -> Option<SqlField>,
    params: &mut Vec<Value>,
) -> Result<String, FilterError> {
    let field = resolve(&selector.path).ok_or_else(|| FilterError::UnknownField {
        path: display_path(&selector.path),
    })?;
    let mut bind = |v: &str| params.push(Value::Text(v.to_owned()));
    Ok(match field {
        SqlField::Column(column) => match &selector.op {
            Operator::Present => format!("{column} <> ''"),
            // `==` needs the field present, and an empty column is absent (as in memory and
            // in containerd): `==""` selects nothing.
            Operator::Equal(v) if v.is_empty() => "0".to_owned(),
            Operator::Equal(v) => {
                bind(v);
                format!("{column} = ?")
            }
            Operator::NotEqual(v) => {
                bind(v);
                format!("{column} <> ?")
            }
            Operator::Matches { source, .. } => {
                bind(source);
                format!("regexp(?, {column})")
            }
        },
        SqlField::Label {
            table,
            owner_column,
            owner,
            key,
        } => {
            bind(&key);
            let select = format!("SELECT {owner_column} FROM {table} WHERE key = ?");
            match &selector.op {
                Operator::Present => format!("{owner} IN ({select})"),
                Operator::Equal(v) => {
                    bind(v);
                    format!("{owner} IN ({select} AND value = ?)")
                }
                // A missing label reads as "", so `!= ""` only keeps non-empty labels
                // and any other `!= v` keeps everything without the label `= v`.
                Operator::NotEqual(v) if v.is_empty() => {
                    format!("{owner} IN ({select} AND value <> '')")
                }
                Operator::NotEqual(v) => {
                    bind(v);
                    format!("{owner} NOT IN ({select} AND value = ?)")
                }
                // A missing label reads as ""; a pattern that matches "" therefore keeps
                // every object except those whose label fails it.
                Operator::Matches { source, regex } if regex.is_match("") => {
                    bind(source);
                    format!("{owner} NOT IN ({select} AND NOT regexp(?, value))")
                }
                Operator::Matches { source, .. } => {
                    bind(source);
                    format!("{owner} IN ({select} AND regexp(?, value))")
                }
            }
        }
    })
}

/// Registers `regexp(pattern, text)` (also what SQLite's `text REGEXP pattern`
/// calls). The compiled pattern is cached per statement through SQLite's auxdata, and
/// compiled with the same size limit as the parser. A NULL `text` yields NULL.
pub fn register_regexp(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        regexp,
    )
}

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

fn regexp(ctx: &Context<'_>) -> rusqlite::Result<Option<bool>> {
    let regex = ctx.get_or_create_aux(0, |pattern| -> Result<_, BoxError> {
        let pattern = pattern.as_str()?;
        compile_regex(pattern)
            .map_err(|e| format!("invalid regular expression {pattern:?}: {e}").into())
    })?;
    let text = match ctx.get_raw(1) {
        ValueRef::Null => return Ok(None),
        text => text
            .as_str()
            .map_err(|e| rusqlite::Error::UserFunctionError(e.into()))?,
    };
    Ok(Some(regex.is_match(text)))
}
