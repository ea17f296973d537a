//! `berth content`: list, inspect and remove blobs (`content.*`).

use clap::Subcommand;
use serde_json::json;

use super::{for_each_reporting, Ctx};
use crate::output::{labels_cell, Table};

#[derive(Subcommand)]
pub enum Command {
    /// List blobs
    #[command(visible_alias = "list")]
    Ls {
        /// Filters such as labels.a==b (containerd filter grammar); any one may match
        filters: Vec<String>,
    },
    /// Print a blob's metadata
    Info {
        /// Blob digest (sha256:...)
        digest: String,
    },
    /// Remove blobs
    #[command(visible_aliases = ["remove", "delete"])]
    Rm {
        /// Blob digests (sha256:...)
        #[arg(required = true)]
        digests: Vec<String>,
    },
}

pub fn run(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    let mut client = ctx.connect()?;
    match command {
        Command::Ls { filters } => {
            let r = client.call("content.list", json!({ "filters": filters }))?;
            ctx.show(&r, |r| {
                let mut t = Table::new(&["DIGEST", "SIZE", "AGE", "LABELS"]);
                for b in r["blobs"].as_array().cloned().unwrap_or_default() {
                    t.push(vec![
                        b["digest"].as_str().unwrap_or_default().to_owned(),
                        super::images::human_size(b["size"].as_u64().unwrap_or(0)),
                        crate::output::age(b["created_at"].as_str().unwrap_or_default()),
                        labels_cell(b.get("labels")),
                    ]);
                }
                Ok(t.print()?)
            })
        }
        Command::Info { digest } => {
            let r = client.call("content.info", json!({ "digest": digest }))?;
            crate::output::print_json(&r)?;
            Ok(())
        }
        Command::Rm { digests } => for_each_reporting(&digests, "removals", |d| {
            client.call("content.delete", json!({ "digest": d }))?;
            Ok(())
        }),
    }
}
