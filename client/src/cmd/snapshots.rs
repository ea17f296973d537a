//! `berth snapshots`: containerd's snapshot verbs (`snapshots.*`), plus `tree`.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::{for_each_reporting, Ctx};
use crate::args::{labels_object, parse_label};
use crate::output::{labels_cell, Table};

#[derive(Args)]
pub struct SnapshotsArgs {
    /// The snapshotter (default: overlayfs)
    #[arg(long, global = true)]
    pub snapshotter: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// List snapshots
    #[command(visible_alias = "list")]
    Ls {
        /// Filters such as kind==committed (containerd filter grammar); any one may match
        filters: Vec<String>,
    },
    /// Show snapshots as a tree of parents and children
    Tree,
    /// Prepare an active snapshot and print its mounts
    Prepare {
        /// Key of the new active snapshot
        key: String,
        /// Committed snapshot to build on; none starts empty
        parent: Option<String>,
        /// Label the snapshot (repeatable)
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Make a read-only view and print its mounts
    View {
        /// Key of the new view
        key: String,
        /// Committed snapshot to view
        parent: String,
    },
    /// Commit an active snapshot as `name`
    Commit {
        /// Name of the committed snapshot
        name: String,
        /// Key of the active snapshot to commit
        key: String,
    },
    /// Print a snapshot's mounts
    Mounts {
        /// Snapshot key
        key: String,
    },
    /// Print a snapshot's disk usage
    Usage {
        /// Snapshot keys; none means every snapshot
        keys: Vec<String>,
    },
    /// Remove snapshots
    #[command(visible_aliases = ["remove", "delete"])]
    Rm {
        /// Snapshot keys
        #[arg(required = true)]
        keys: Vec<String>,
    },
}

pub fn run(ctx: &Ctx, args: SnapshotsArgs) -> anyhow::Result<()> {
    let mut client = ctx.connect()?;
    let with = |mut p: Value| {
        if let Some(s) = &args.snapshotter {
            p["snapshotter"] = json!(s);
        }
        p
    };
    match args.command {
        Command::Ls { filters } => {
            let r = client.call("snapshots.list", with(json!({ "filters": filters })))?;
            ctx.show(&r, |r| {
                let mut t = Table::new(&["KEY", "PARENT", "KIND", "LABELS"]);
                for s in r["snapshots"].as_array().cloned().unwrap_or_default() {
                    t.push(vec![
                        s["key"].as_str().unwrap_or_default().to_owned(),
                        s["parent"].as_str().unwrap_or_default().to_owned(),
                        s["kind"].as_str().unwrap_or_default().to_owned(),
                        labels_cell(s.get("labels")),
                    ]);
                }
                Ok(t.print()?)
            })
        }
        Command::Tree => {
            let r = client.call("snapshots.list", with(json!({})))?;
            ctx.show(&r, |r| {
                print!(
                    "{}",
                    tree(r["snapshots"].as_array().map(Vec::as_slice).unwrap_or(&[]))
                );
                Ok(())
            })
        }
        Command::Prepare {
            key,
            parent,
            labels,
        } => {
            let p = json!({"key": key, "parent": parent.unwrap_or_default(), "labels": labels_object(&labels)});
            let r = client.call("snapshots.prepare", with(p))?;
            ctx.show(&r, print_mounts)
        }
        Command::View { key, parent } => {
            let r = client.call(
                "snapshots.view",
                with(json!({"key": key, "parent": parent})),
            )?;
            ctx.show(&r, print_mounts)
        }
        Command::Commit { name, key } => {
            client.call("snapshots.commit", with(json!({"name": name, "key": key})))?;
            Ok(())
        }
        Command::Mounts { key } => {
            let r = client.call("snapshots.mounts", with(json!({ "key": key })))?;
            ctx.show(&r, print_mounts)
        }
        Command::Usage { keys } => {
            let keys = if keys.is_empty() {
                let r = client.call("snapshots.list", with(json!({})))?;
                r["snapshots"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|s| s["key"].as_str().map(str::to_owned))
                    .collect()
            } else {
                keys
            };
            let mut usage = Vec::new();
            for k in keys {
                let u = client.call("snapshots.usage", with(json!({ "key": k })))?;
                usage.push(json!({ "key": k, "size": u["size"], "inodes": u["inodes"] }));
            }
            ctx.show(&json!({ "usage": usage }), |_| {
                let mut t = Table::new(&["KEY", "SIZE", "INODES"]);
                for u in &usage {
                    t.push(vec![
                        u["key"].as_str().unwrap_or_default().to_owned(),
                        super::images::human_size(u["size"].as_u64().unwrap_or(0)),
                        u["inodes"].to_string(),
                    ]);
                }
                Ok(t.print()?)
            })
        }
        Command::Rm { keys } => for_each_reporting(&keys, "removals", |k| {
            client.call("snapshots.remove", with(json!({ "key": k })))?;
            Ok(())
        }),
    }
}

/// Mounts as `mount` arguments, one per line.
fn print_mounts(r: &Value) -> anyhow::Result<()> {
    for m in r["mounts"].as_array().cloned().unwrap_or_default() {
        let opts: Vec<&str> = m["options"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        println!(
            "mount -t {} {} <target> -o {}",
            m["type"].as_str().unwrap_or_default(),
            m["source"].as_str().unwrap_or_default(),
            opts.join(",")
        );
    }
    Ok(())
}

/// Renders snapshots as an indented tree under their parents.
pub fn tree(snapshots: &[Value]) -> String {
    let mut children: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in snapshots {
        let parent = s["parent"].as_str().unwrap_or_default();
        children
            .entry(parent)
            .or_default()
            .push(s["key"].as_str().unwrap_or_default());
    }
    let mut out = String::new();
    let mut stack: Vec<(&str, usize)> = children
        .get("")
        .map(|r| r.iter().rev().map(|k| (*k, 0)).collect())
        .unwrap_or_default();
    while let Some((key, depth)) = stack.pop() {
        out.push_str(&format!("{}{key}\n", "  ".repeat(depth)));
        if let Some(kids) = children.get(key) {
            stack.extend(kids.iter().rev().map(|k| (*k, depth + 1)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_nests_children_under_parents() {
        let s = vec![
            json!({"key": "a", "parent": ""}),
            json!({"key": "b", "parent": "a"}),
            json!({"key": "c", "parent": "b"}),
            json!({"key": "d", "parent": ""}),
        ];
        assert_eq!(tree(&s), "a\n  b\n    c\nd\n");
    }
}
