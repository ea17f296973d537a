//! `berth containers|c`: container metadata (`containers.*`): create, list, inspect, label,
//! update and delete. Tasks (running them) live in their own command group.

mod params;

use super::process::ProcessArgs;

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Value};

use super::{for_each_reporting, Ctx};
use crate::args::parse_label;
use crate::output::{self, Table};

#[derive(Subcommand)]
pub enum Command {
    /// Create a container from an image (or a whole OCI spec)
    Create(Box<CreateArgs>),
    /// List containers, optionally matching filters (e.g. labels.env==prod,image~=^busy)
    #[command(visible_alias = "list")]
    Ls {
        /// Print only the ids
        #[arg(short, long)]
        quiet: bool,
        /// Filters such as labels.env==prod (containerd filter grammar); any one may match
        filters: Vec<String>,
    },
    /// Show a container as JSON
    Info {
        /// Container id
        id: String,
    },
    /// Set labels (KEY=VALUE) or delete them (KEY=); with none, print the labels
    Label {
        /// Container id
        id: String,
        /// Labels to set (KEY=VALUE) or delete (KEY=)
        #[arg(value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Replace a container's image, spec or snapshot key
    #[command(group = ArgGroup::new("fields").required(true).multiple(true))]
    Update {
        /// Container id
        id: String,
        /// New image reference
        #[arg(long, group = "fields")]
        image: Option<String>,
        /// A whole OCI runtime spec (JSON)
        #[arg(long, value_name = "FILE", group = "fields")]
        spec_file: Option<PathBuf>,
        /// New rootfs snapshot key
        #[arg(long, value_name = "KEY", group = "fields")]
        snapshot_key: Option<String>,
    },
    /// Delete containers
    #[command(visible_aliases = ["delete", "del", "remove"])]
    Rm {
        /// Container ids
        #[arg(required = true)]
        ids: Vec<String>,
        /// Leave the container's rootfs snapshot in place
        #[arg(long)]
        keep_snapshot: bool,
    },
}

#[derive(Args)]
pub struct CreateArgs {
    /// Label the container (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Runtime name (the daemon's default is runc)
    #[arg(long, value_name = "NAME")]
    pub runtime: Option<String>,
    /// Use this existing snapshot as the rootfs instead of preparing one from the image
    #[arg(long, value_name = "KEY")]
    pub snapshot_key: Option<String>,
    /// A whole OCI runtime spec (JSON); the options below are then not sent
    #[arg(long, value_name = "FILE")]
    pub spec_file: Option<PathBuf>,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Image reference; may be "" with --spec-file
    pub image: String,
    /// Container id
    pub id: String,
    /// Command and arguments, replacing the image's default
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    pub args: Vec<String>,
}

/// Every container `containers.list` answers for `params`, following `next` page by page
/// (a page ends at `limit` or at berthd's reply cap).
pub fn list_all(client: &mut crate::rpc::Client, params: Value) -> anyhow::Result<Vec<Value>> {
    let mut containers = Vec::new();
    let mut params = params;
    loop {
        let page = client.call("containers.list", params.clone())?;
        if let Some(items) = page["containers"].as_array() {
            containers.extend(items.iter().cloned());
        }
        match page.get("next").and_then(Value::as_str) {
            Some(next) if !next.is_empty() => params["after"] = json!(next),
            _ => return Ok(containers),
        }
    }
}

pub fn run(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    let mut client = ctx.connect()?;
    match command {
        Command::Create(args) => {
            let spec = args.spec_file.as_deref().map(read_spec).transpose()?;
            let result = client.call("containers.create", params::create(&args, spec))?;
            ctx.show(&result, |_| Ok(()))
        }
        Command::Ls { quiet, filters } => {
            let containers = list_all(&mut client, params::list(&filters, None))?;
            ctx.show(&json!({ "containers": containers }), |_| {
                if quiet {
                    for c in &containers {
                        println!("{}", c["id"].as_str().unwrap_or_default());
                    }
                    return Ok(());
                }
                Ok(list_table(&containers).print()?)
            })
        }
        Command::Info { id } => {
            let result = client.call("containers.get", json!({ "id": id }))?;
            ctx.show(&result, |result| {
                Ok(output::print_json(&result["container"])?)
            })
        }
        Command::Label { id, labels } => {
            let result = if labels.is_empty() {
                client.call("containers.get", json!({ "id": id }))?
            } else {
                client.call("containers.update", params::label(&id, &labels))?
            };
            ctx.show(&result, |result| {
                let cell = output::labels_cell(result["container"].get("labels"));
                for pair in cell.split(',').filter(|p| !p.is_empty()) {
                    println!("{pair}");
                }
                Ok(())
            })
        }
        Command::Update {
            id,
            image,
            spec_file,
            snapshot_key,
        } => {
            let spec = spec_file.as_deref().map(read_spec).transpose()?;
            let update = params::Update {
                image,
                spec,
                snapshot_key,
            };
            let result = client.call("containers.update", params::update(&id, update))?;
            ctx.show(&result, |_| Ok(()))
        }
        Command::Rm { ids, keep_snapshot } => for_each_reporting(&ids, "deletions", |id| {
            super::tasks::delete_stopped_task(&mut client, id)?;
            let result = client.call("containers.delete", params::delete(id, keep_snapshot))?;
            ctx.show(&result, |_| Ok(()))
        }),
    }
}

/// ctr's listing: an empty image shows as `-`.
fn list_table(containers: &[Value]) -> Table {
    let mut table = Table::new(&["CONTAINER", "IMAGE", "RUNTIME"]);
    for c in containers {
        let image = match c["image"].as_str().unwrap_or_default() {
            "" => "-",
            image => image,
        };
        table.push(vec![
            c["id"].as_str().unwrap_or_default().to_owned(),
            image.to_owned(),
            c["runtime"]["name"].as_str().unwrap_or_default().to_owned(),
        ]);
    }
    table
}

fn read_spec(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read spec file {}", path.display()))?;
    let spec: Value = serde_json::from_str(&text)
        .with_context(|| format!("spec file {} is not valid JSON", path.display()))?;
    anyhow::ensure!(
        spec.is_object(),
        "spec file {} does not hold a JSON object (an OCI runtime spec)",
        path.display()
    );
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_shows_dash_for_an_empty_image() {
        let containers = [
            json!({"id": "web", "image": "busybox", "runtime": {"name": "runc"}}),
            json!({"id": "raw", "image": "", "runtime": {"name": "runc"}}),
        ];
        assert_eq!(
            list_table(&containers).render(),
            "CONTAINER   IMAGE     RUNTIME\nweb         busybox   runc\nraw         -         runc\n"
        );
    }
}
