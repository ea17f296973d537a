//! `berth network|net`: create, list, inspect and remove networks (`networks.*`).

use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::{for_each_reporting, put, Ctx};
use crate::args::{labels_object, parse_label};
use crate::output::{labels_cell, Table};

#[derive(Subcommand)]
pub enum Command {
    /// List networks
    #[command(visible_alias = "list")]
    Ls {
        /// Print only the names
        #[arg(short, long)]
        quiet: bool,
    },
    /// Create a bridge network
    Create {
        /// Network name
        name: String,
        /// IPv4 subnet (CIDR); default: the first free 10.90.N.0/24
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway address; default: the subnet's first
        #[arg(long)]
        gateway: Option<String>,
        /// Label the network (repeatable)
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Show networks as JSON (berth0 is created on first use)
    Inspect {
        /// Network names
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks no running task is on
    #[command(visible_aliases = ["remove", "delete"])]
    Rm {
        /// Network names
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub fn run(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    let mut client = ctx.connect()?;
    match command {
        Command::Ls { quiet } => {
            let result = client.call("networks.list", json!({}))?;
            ctx.show(&result, |result| {
                let networks = result["networks"].as_array().cloned().unwrap_or_default();
                if quiet {
                    for n in &networks {
                        println!("{}", n["name"].as_str().unwrap_or_default());
                    }
                    return Ok(());
                }
                let mut table = Table::new(&["NAME", "SUBNET", "GATEWAY", "BRIDGE", "LABELS"]);
                for n in &networks {
                    let cell = |k: &str| n[k].as_str().unwrap_or_default().to_owned();
                    table.push(vec![
                        cell("name"),
                        cell("subnet"),
                        cell("gateway"),
                        cell("bridge"),
                        labels_cell(n.get("labels")),
                    ]);
                }
                Ok(table.print()?)
            })
        }
        Command::Create {
            name,
            subnet,
            gateway,
            labels,
        } => {
            let mut params = Map::new();
            params.insert("name".into(), name.clone().into());
            put(&mut params, "subnet", subnet.map(Value::from));
            put(&mut params, "gateway", gateway.map(Value::from));
            put(&mut params, "labels", labels_object(&labels));
            let result = client.call("networks.create", Value::Object(params))?;
            ctx.show(&result, |_| {
                println!("{name}");
                Ok(())
            })
        }
        Command::Inspect { names } => {
            let mut shown = Vec::new();
            for name in &names {
                shown
                    .push(client.call("networks.get", json!({ "name": name }))?["network"].clone());
            }
            println!("{}", serde_json::to_string_pretty(&shown)?);
            Ok(())
        }
        Command::Rm { names } => for_each_reporting(&names, "removals", |name| {
            let result = client.call("networks.delete", json!({ "name": name }))?;
            ctx.show(&result, |_| {
                println!("{name}");
                Ok(())
            })
        }),
    }
}
