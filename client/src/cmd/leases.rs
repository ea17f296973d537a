//! `berth leases`: create, list and remove leases (`leases.*`), and run the GC.

use clap::Subcommand;
use serde_json::json;

use super::{for_each_reporting, Ctx};
use crate::args::{labels_object, parse_label};
use crate::output::{labels_cell, Table};

#[derive(Subcommand)]
pub enum Command {
    /// Create a lease
    Create {
        /// Lease id; berthd generates one when omitted
        id: Option<String>,
        /// Label the lease (repeatable)
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
        /// RFC 3339 expiry time
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List leases
    #[command(visible_alias = "list")]
    Ls {
        /// Filters such as labels.a==b (containerd filter grammar); any one may match
        filters: Vec<String>,
    },
    /// Remove leases
    #[command(visible_aliases = ["remove", "delete"])]
    Rm {
        /// Lease ids
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Add a resource (`content` DIGEST or `snapshots/<snapshotter>` KEY) to a lease
    Add {
        /// Lease id
        id: String,
        /// Resource type: `content` or `snapshots/<snapshotter>`
        kind: String,
        /// The blob's digest or the snapshot's key
        resource: String,
    },
    /// Run the garbage collector now
    Gc,
}

pub fn run(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    let mut client = ctx.connect()?;
    match command {
        Command::Create {
            id,
            labels,
            expires_at,
        } => {
            let mut p = json!({ "labels": labels_object(&labels) });
            if let Some(id) = id {
                p["id"] = json!(id);
            }
            if let Some(e) = expires_at {
                p["expires_at"] = json!(e);
            }
            let r = client.call("leases.create", p)?;
            ctx.show(&r, |r| {
                println!("{}", r["lease"]["id"].as_str().unwrap_or_default());
                Ok(())
            })
        }
        Command::Ls { filters } => {
            let r = client.call("leases.list", json!({ "filters": filters }))?;
            ctx.show(&r, |r| {
                let mut t = Table::new(&["ID", "CREATED AT", "EXPIRES AT", "LABELS"]);
                for l in r["leases"].as_array().cloned().unwrap_or_default() {
                    t.push(vec![
                        l["id"].as_str().unwrap_or_default().to_owned(),
                        l["created_at"].as_str().unwrap_or_default().to_owned(),
                        l["expires_at"].as_str().unwrap_or_default().to_owned(),
                        labels_cell(l.get("labels")),
                    ]);
                }
                Ok(t.print()?)
            })
        }
        Command::Rm { ids } => for_each_reporting(&ids, "removals", |id| {
            client.call("leases.delete", json!({ "id": id }))?;
            Ok(())
        }),
        Command::Add { id, kind, resource } => {
            client.call(
                "leases.add_resource",
                json!({"id": id, "resource": {"id": resource, "type": kind}}),
            )?;
            Ok(())
        }
        Command::Gc => {
            let r = client.call("gc.run", json!({}))?;
            crate::output::print_json(&r)?;
            Ok(())
        }
    }
}
