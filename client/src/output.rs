//! How results reach the terminal: ctr-style aligned tables and pretty JSON. Commands decide
//! what goes in a table; this module only decides where the columns fall.

use std::io::{self, Write};

use serde_json::Value;

/// Narrowest a non-final column may be, as ctr's `tabwriter.NewWriter(w, 10, 1, 3, ' ', 0)`.
const MIN_WIDTH: usize = 10;
/// Spaces that always follow the widest cell of a non-final column.
const PADDING: usize = 3;

/// Rows of cells laid out like Go's tabwriter: each column but the last is as wide as its
/// widest cell plus padding (never below the minimum); the last column is not padded, so
/// lines carry no trailing blanks.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self {
            rows: vec![header.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..columns.saturating_sub(1))
            .map(|c| {
                let widest = self
                    .rows
                    .iter()
                    .filter_map(|row| row.get(c))
                    .map(|cell| cell.chars().count())
                    .max()
                    .unwrap_or(0);
                (widest + PADDING).max(MIN_WIDTH)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if let Some(width) = widths.get(c).filter(|_| c + 1 < row.len()) {
                    let fill = width.saturating_sub(cell.chars().count());
                    line.extend(std::iter::repeat_n(' ', fill));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub fn print(&self) -> io::Result<()> {
        io::stdout().lock().write_all(self.render().as_bytes())
    }
}

pub fn print_json(value: &Value) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    writeln!(io::stdout().lock(), "{text}")
}

/// docker's relative durations: `Less than a second`, `10 seconds`, `About a minute`,
/// `3 minutes`, `About an hour`, `5 hours`, `2 days`.
pub fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        2..=59 => format!("{s} seconds"),
        60..=119 => "About a minute".to_owned(),
        120..=3599 => format!("{} minutes", s / 60),
        3600..=7199 => "About an hour".to_owned(),
        7200..=172_799 => format!("{} hours", s / 3600),
        _ => format!("{} days", s / 86_400),
    }
}

/// An RFC 3339 time as docker's AGE: `3 minutes ago` (`-` when it cannot be read).
pub fn age(rfc3339: &str) -> String {
    match humantime::parse_rfc3339_weak(rfc3339) {
        Ok(t) => {
            let d = std::time::SystemTime::now()
                .duration_since(t)
                .unwrap_or_default();
            format!("{} ago", human(d))
        }
        Err(_) => "-".to_owned(),
    }
}

/// `k=v` pairs of a label object, sorted by key and joined with commas (ctr's LABELS cell).
pub fn labels_cell(labels: Option<&Value>) -> String {
    let Some(Value::Object(map)) = labels else {
        return String::new();
    };
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    pairs.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ages_read_as_docker_s() {
        let ten_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(10);
        let t = humantime::format_rfc3339_nanos(ten_ago).to_string();
        let a = age(&t);
        assert!(a == "10 seconds ago" || a == "11 seconds ago", "{a}");
        assert_eq!(age("not a time"), "-");
    }

    #[test]
    fn columns_take_widest_cell_plus_padding_and_last_column_is_unpadded() {
        let mut table = Table::new(&["CONTAINER", "IMAGE", "RUNTIME"]);
        table.push(vec![
            "a-rather-long-id".into(),
            "docker.io/library/busybox:latest".into(),
            "runc".into(),
        ]);
        table.push(vec!["x".into(), "-".into(), "runc".into()]);
        let expected = "\
CONTAINER          IMAGE                              RUNTIME
a-rather-long-id   docker.io/library/busybox:latest   runc
x                  -                                  runc
";
        assert_eq!(table.render(), expected);
    }

    #[test]
    fn narrow_columns_are_held_at_the_minimum_width() {
        let mut table = Table::new(&["NAME", "LABELS"]);
        table.push(vec!["ns1".into(), String::new()]);
        assert_eq!(table.render(), "NAME      LABELS\nns1\n");
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        let mut table = Table::new(&["ID", "X"]);
        table.push(vec!["ééééééééééé".into(), "y".into()]);
        let lines: Vec<String> = table.render().lines().map(str::to_owned).collect();
        assert_eq!(lines[0].find('X'), Some(14));
        assert_eq!(lines[1].chars().position(|c| c == 'y'), Some(14));
    }

    #[test]
    fn labels_cell_is_sorted_key_value_pairs() {
        let labels = json!({"b": "2", "a": "1"});
        assert_eq!(labels_cell(Some(&labels)), "a=1,b=2");
        assert_eq!(labels_cell(None), "");
    }
}
