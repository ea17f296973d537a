//! berth's filter language: containerd's `filters` grammar and semantics.
//!
//! A request carries a list of expressions; the list is an OR, each expression an AND
//! of comma-separated selectors such as `labels."a.b"==c,image~=^busy`. This module
//! owns parsing ([`parse`]), evaluation against in-memory objects ([`Filter::matches`]
//! through an [`Adaptor`]) and compilation to a SQLite `WHERE` fragment
//! ([`Filter::to_sql`]). It knows no table or object: callers map field paths to
//! values or columns.
//!
//! Semantics follow containerd: a missing field reads as the empty string for `!=`
//! and `~=` (so `labels.x!=y` matches objects without label `x`, and `labels.x~=^$`
//! does too), while `==` and the bare field need the field to be present.

mod parser;
mod scanner;
mod sql;

#[cfg(test)]
mod eval_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod grammar_tests;
#[cfg(test)]
mod sql_tests;

use std::borrow::Cow;

use regex::{Regex, RegexBuilder};

pub use sql::{register_regexp, SqlField};

/// Upper bound on a compiled regex (and its lazy DFA cache), so a hostile filter
/// cannot make the daemon allocate without bound.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Everything that can be wrong with a filter.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    /// The expression does not follow the grammar; `pos` is the 0-based byte offset
    /// of the offending token in `filter`.
    #[error("filter {filter:?}[{pos}]: {message}")]
    Syntax {
        filter: String,
        pos: usize,
        message: String,
    },
    /// A `~=` value is not a usable regular expression (bad syntax or too large).
    #[error("filter {filter:?}[{pos}]: invalid regular expression {pattern:?}: {source}")]
    Regex {
        filter: String,
        pos: usize,
        pattern: String,
        #[source]
        source: regex::Error,
    },
    /// The field path means nothing for the objects being listed.
    #[error("filter field {path:?} is not supported here")]
    UnknownField { path: String },
    /// More selectors than one request may combine (SQLite bounds the expression tree a
    /// filter compiles to; berth refuses well before that bound).
    #[error("the filters hold {selectors} selectors; at most {MAX_SELECTORS} are allowed")]
    TooLarge { selectors: usize },
}

/// Most selectors one request's filters may hold, all expressions together.
pub const MAX_SELECTORS: usize = 64;

/// A parsed filter: matches when any of its conjunctions matches. No conjunction at
/// all (an empty request list) matches everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub alternatives: Vec<Conjunction>,
}

/// One expression: matches when all of its selectors match (so an empty one, from
/// the expression `""`, matches everything).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conjunction {
    pub selectors: Vec<Selector>,
}

/// One `fieldpath[op value]` test.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    /// Path components, unquoted: `labels."a.b"` is `["labels", "a.b"]`.
    pub path: Vec<String>,
    pub op: Operator,
}

/// What a selector tests; equality compares the regex's source text only.
#[derive(Debug, Clone)]
pub enum Operator {
    /// Bare field path: the field is present.
    Present,
    /// `==`: present and equal.
    Equal(String),
    /// `!=`: a missing field counts as `""`.
    NotEqual(String),
    /// `~=`: unanchored regex search; a missing field counts as `""`.
    Matches { source: String, regex: Regex },
}

impl PartialEq for Operator {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Operator::Present, Operator::Present) => true,
            (Operator::Equal(a), Operator::Equal(b)) => a == b,
            (Operator::NotEqual(a), Operator::NotEqual(b)) => a == b,
            (Operator::Matches { source: a, .. }, Operator::Matches { source: b, .. }) => a == b,
            _ => false,
        }
    }
}

/// Gives a filter access to one object's fields.
pub trait Adaptor {
    /// The value at `path` (whole path, e.g. `["labels", "a.b"]`), or `None` when the
    /// object has no such field. Follow containerd's adaptors: an empty string field
    /// such as an unset image is absent; a label with an empty value is present.
    fn field(&self, path: &[String]) -> Option<Cow<'_, str>>;
}

/// Parses a request's filter list; an empty list matches everything.
pub fn parse(exprs: &[String]) -> Result<Filter, FilterError> {
    let alternatives = exprs
        .iter()
        .map(|e| parser::Parser::new(e).expression())
        .collect::<Result<Vec<Conjunction>, _>>()?;
    let selectors = alternatives
        .iter()
        .map(|c| c.selectors.len())
        .sum::<usize>();
    // An empty expression is a selector-less conjunction; count it so a list of
    // thousands of them is refused too.
    let selectors = selectors.max(alternatives.len());
    if selectors > MAX_SELECTORS {
        return Err(FilterError::TooLarge { selectors });
    }
    Ok(Filter { alternatives })
}

impl Filter {
    /// True when the filter lets every object through, so callers can skip work.
    pub fn matches_all(&self) -> bool {
        self.alternatives.is_empty() || self.alternatives.iter().any(|c| c.selectors.is_empty())
    }

    /// Evaluates the filter in memory, for objects that do not live in SQLite
    /// (events, tasks, images).
    pub fn matches(&self, object: &dyn Adaptor) -> bool {
        self.alternatives.is_empty() || self.alternatives.iter().any(|c| c.matches(object))
    }
}

impl Conjunction {
    pub fn matches(&self, object: &dyn Adaptor) -> bool {
        self.selectors.iter().all(|s| s.matches(object))
    }
}

impl Selector {
    pub fn matches(&self, object: &dyn Adaptor) -> bool {
        let value = object.field(&self.path);
        match &self.op {
            Operator::Present => value.is_some(),
            Operator::Equal(want) => value.as_deref() == Some(want.as_str()),
            Operator::NotEqual(want) => value.as_deref().unwrap_or("") != want,
            Operator::Matches { regex, .. } => regex.is_match(value.as_deref().unwrap_or("")),
        }
    }
}

/// Compiles a `~=` pattern with berth's size limits; shared by the parser and the
/// SQLite `regexp` function so both accept exactly the same patterns.
fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// Renders a field path for messages, quoting components that are not bare names.
pub fn display_path(path: &[String]) -> String {
    let bare = |s: &String| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    path.iter()
        .map(|s| if bare(s) { s.clone() } else { format!("{s:?}") })
        .collect::<Vec<_>>()
        .join(".")
}
