//! Parser and scanner tests: what each expression parses to, and where each error points.

use super::{parse, Conjunction, Filter, FilterError, Operator, Selector};

fn one(expr: &str) -> Vec<Selector> {
    let filter = parse(&[expr.to_owned()]).unwrap_or_else(|e| panic!("{expr:?}: {e}"));
    assert_eq!(filter.alternatives.len(), 1);
    filter
        .alternatives
        .into_iter()
        .next()
        .map(|c| c.selectors)
        .unwrap_or_default()
}

fn sel(path: &[&str], op: Operator) -> Selector {
    Selector {
        path: path.iter().map(|s| s.to_string()).collect(),
        op,
    }
}

fn eq(v: &str) -> Operator {
    Operator::Equal(v.to_owned())
}

fn re_source(op: &Operator) -> &str {
    match op {
        Operator::Matches { source, regex } => {
            assert_eq!(source, regex.as_str());
            source
        }
        other => panic!("expected ~=, got {other:?}"),
    }
}

/// Parses `expr`, expecting a syntax error at `pos` whose message contains `needle`.
fn syntax_error(expr: &str, pos: usize, needle: &str) {
    match parse(&[expr.to_owned()]) {
        Err(FilterError::Syntax {
            filter,
            pos: at,
            message,
        }) => {
            assert_eq!(filter, expr);
            assert!(
                at == pos && message.contains(needle),
                "{expr:?}: got [{at}] {message:?}, want [{pos}] containing {needle:?}"
            );
        }
        other => panic!("{expr:?}: expected a syntax error, got {other:?}"),
    }
}

#[test]
fn empty_list_and_empty_expression_match_everything() {
    assert_eq!(parse(&[]).map_err(|e| e.to_string()), Ok(Filter::default()));
    let f = parse(&[String::new()]).map_err(|e| e.to_string());
    assert_eq!(
        f,
        Ok(Filter {
            alternatives: vec![Conjunction::default()]
        })
    );
}

#[test]
fn the_api_example_parses_to_two_selectors() {
    let s = one(r#"labels."a.b"==c,image~=^busy"#);
    assert_eq!(s[0], sel(&["labels", "a.b"], eq("c")));
    assert_eq!(s[1].path, ["image"]);
    assert_eq!(re_source(&s[1].op), "^busy");
}

#[test]
fn bare_field_paths_test_presence() {
    assert_eq!(
        one("labels.foo,id"),
        [
            sel(&["labels", "foo"], Operator::Present),
            sel(&["id"], Operator::Present)
        ]
    );
    assert_eq!(
        one("runtime.name"),
        [sel(&["runtime", "name"], Operator::Present)]
    );
}

#[test]
fn field_names_take_digits_dashes_and_underscores() {
    assert_eq!(
        one("labels.io-k8s_2==x"),
        [sel(&["labels", "io-k8s_2"], eq("x"))]
    );
}

#[test]
fn every_operator_parses() {
    let s = one("a==1,b!=2,c~=3");
    assert_eq!(s[0].op, eq("1"));
    assert_eq!(s[1].op, Operator::NotEqual("2".into()));
    assert_eq!(re_source(&s[2].op), "3");
}

#[test]
fn bare_values_run_to_comma_or_space_and_keep_dots_and_operators() {
    let s = one("image==docker.io/library/busybox:1.36,labels.x==a=b!c~d\"e");
    assert_eq!(s[0].op, eq("docker.io/library/busybox:1.36"));
    assert_eq!(s[1].op, eq("a=b!c~d\"e"));
    assert_eq!(one("a==.hidden")[0].op, eq(".hidden"));
    assert_eq!(one("a==ünï")[0].op, eq("ünï"));
}

#[test]
fn whitespace_between_tokens_is_ignored() {
    assert_eq!(
        one("  labels . \"a b\"  ==  c ,  id  "),
        [
            sel(&["labels", "a b"], eq("c")),
            sel(&["id"], Operator::Present)
        ]
    );
}

#[test]
fn quoted_fields_and_values_unescape_like_go() {
    let s = one(r#""a\"b"."c\\d"=="x\ty\n\x41\101\u00e9\U0001F600\"""#);
    assert_eq!(s[0].path, ["a\"b", "c\\d"]);
    assert_eq!(s[0].op, eq("x\ty\nAAé😀\""));
    assert_eq!(one(r#"a=="\a\b\f\r\v""#)[0].op, eq("\x07\x08\x0c\r\x0b"));
    assert_eq!(one(r#"a=="""#)[0].op, eq(""));
    assert_eq!(one(r#"a=="x,y z""#)[0].op, eq("x,y z"));
}

#[test]
fn regexes_may_use_slash_and_pipe_quotes() {
    assert_eq!(re_source(&one(r"a~=/^x\/y$/")[0].op), "^x/y$");
    assert_eq!(re_source(&one(r"a~=|a\|b|")[0].op), "a|b");
    assert_eq!(re_source(&one(r"a~=/a\\.b,c/")[0].op), r"a\.b,c");
    assert_eq!(re_source(&one(r#"a~="^x\\d+$""#)[0].op), r"^x\d+$");
    // Bare regex values need no escaping.
    assert_eq!(re_source(&one(r"a~=^x\d+\.y$")[0].op), r"^x\d+\.y$");
}

#[test]
fn a_comma_ends_a_bare_regex_so_counted_repetitions_need_quotes() {
    let err = parse(&["a~=x{1,2}".to_owned()]).map(|_| ());
    assert!(
        matches!(&err, Err(FilterError::Regex { pattern, .. }) if pattern == "x{1"),
        "{err:?}"
    );
    assert_eq!(re_source(&one("a~=/x{1,2}/")[0].op), "x{1,2}");
}

#[test]
fn a_list_of_expressions_is_an_or() {
    let f = parse(&["id==a,image==b".to_owned(), "labels.x".to_owned()])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.alternatives.len(), 2);
    assert_eq!(f.alternatives[0].selectors.len(), 2);
    assert_eq!(
        f.alternatives[1].selectors,
        [sel(&["labels", "x"], Operator::Present)]
    );
}

#[test]
fn error_message_names_filter_position_and_expectation() {
    let err = parse(&["labels.a==".to_owned()])
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert_eq!(
        err,
        Err(r#"filter "labels.a=="[10]: expected a value after "==""#.to_owned())
    );
}

#[test]
fn syntax_errors_point_at_the_bad_token() {
    syntax_error("labels.a==", 10, r#"expected a value after "==""#);
    syntax_error("a!=,b", 3, r#"expected a value after "!=""#);
    syntax_error(
        "labels.",
        7,
        r#"expected a field name or a quoted string after ".""#,
    );
    syntax_error("labels..a", 7, "after \".\"");
    syntax_error("==a", 0, "expected a field name or a quoted string");
    syntax_error("   ", 3, "expected a field name");
    syntax_error("a==b,", 5, "expected a field name");
    syntax_error("a,,b", 2, "expected a field name");
    syntax_error("a=b", 1, r#"unsupported operator "=""#);
    syntax_error("a===b", 1, r#"unsupported operator "===""#);
    syntax_error("a~b", 1, r#"unsupported operator "~""#);
    syntax_error("a b", 2, "expected an operator");
    syntax_error("a==b c", 5, r#"expected "," or the end of the filter"#);
    syntax_error("a==b\"c\"d e", 9, r#"expected ",""#);
    syntax_error("a$==b", 1, "expected an operator");
    syntax_error("a==\u{7}", 3, "expected a value");
}

#[test]
fn quoting_errors_point_at_the_quote_or_escape() {
    syntax_error(r#"a=="abc"#, 3, "not terminated");
    syntax_error("a==\"ab\ncd\"", 3, "not terminated");
    syntax_error(r#""abc"#, 0, "not terminated");
    syntax_error(r#"a=="x\.y""#, 5, r#"illegal escape sequence "\\.""#);
    syntax_error(r"a~=/x\.y/", 5, "illegal escape sequence");
    syntax_error(r#"a=="\/""#, 4, "illegal escape sequence");
    syntax_error(r#"a=="\x4""#, 4, "illegal escape sequence");
    syntax_error(r#"a=="\400""#, 4, "illegal escape sequence");
    syntax_error(r#"a=="\ud800""#, 4, "illegal escape sequence");
    syntax_error(r#"a=="\"#, 4, "illegal escape sequence");
    syntax_error(r#"a=="\xff""#, 3, "not valid UTF-8");
    syntax_error("a==/x/", 3, r#"quoting is only allowed for "~=" values"#);
    syntax_error("a!=|x|", 3, r#"quoting is only allowed for "~=" values"#);
    syntax_error("/a/==x", 0, "a field name can only be quoted with '\"'");
    syntax_error("labels.|a|", 7, "a field name can only be quoted");
}

#[test]
fn invalid_regexes_are_errors_naming_the_regex() {
    let err = parse(&["id==x,image~=(busy".to_owned()]).map(|_| ());
    match err {
        Err(FilterError::Regex {
            filter,
            pos,
            pattern,
            ..
        }) => {
            assert_eq!(
                (filter.as_str(), pos, pattern.as_str()),
                ("id==x,image~=(busy", 13, "(busy")
            );
        }
        other => panic!("expected a regex error, got {other:?}"),
    }
    let msg = parse(&["a~=[z-a]".to_owned()])
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert!(
        matches!(&msg, Err(m) if m.starts_with(r#"filter "a~=[z-a]"[3]: invalid regular expression "[z-a]""#)),
        "{msg:?}"
    );
}

#[test]
fn oversized_regexes_are_rejected() {
    let err = parse(&["a~=(((a{100}){100}){100})".to_owned()]).map(|_| ());
    assert!(
        matches!(
            err,
            Err(FilterError::Regex {
                source: regex::Error::CompiledTooBig(_),
                ..
            })
        ),
        "{err:?}"
    );
    // A modest pattern stays well under the limit.
    let ok = parse(&[r#"a~="^(foo|bar)[0-9]{1,20}$""#.to_owned()]).map(|_| ());
    assert!(ok.is_ok(), "{ok:?}");
}

#[test]
fn an_error_in_any_expression_fails_the_list() {
    let err = parse(&["id==a".to_owned(), "id==".to_owned()]).map(|_| ());
    assert!(
        matches!(&err, Err(FilterError::Syntax { filter, pos: 4, .. }) if filter == "id=="),
        "{err:?}"
    );
}
