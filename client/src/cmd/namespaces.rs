//! `berth namespaces|ns`: list, create and remove namespaces (`namespaces.*`).

use clap::Subcommand;
use serde_json::{json, Map, Value};

use super::{for_each_reporting, put, Ctx};
use crate::args::{labels_object, parse_label};
use crate::output::{labels_cell, Table};

#[derive(Subcommand)]
pub enum Command {
    /// List namespaces
    #[command(visible_alias = "list")]
    Ls {
        /// Print only the names
        #[arg(short, long)]
        quiet: bool,
    },
    /// Create a namespace
    Create {
        /// Namespace name
        name: String,
        /// Label the namespace (repeatable)
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
        labels: Vec<(String, String)>,
    },
    /// Remove namespaces; each must be empty
    #[command(visible_aliases = ["remove", "delete"])]
    Rm {
        /// Namespace names
        #[arg(required = true)]
        names: Vec<String>,
    },
}

pub fn run(ctx: &Ctx, command: Command) -> anyhow::Result<()> {
    let mut client = ctx.connect()?;
    match command {
        Command::Ls { quiet } => {
            let result = client.call("namespaces.list", json!({}))?;
            ctx.show(&result, |result| {
                let namespaces = result["namespaces"].as_array().cloned().unwrap_or_default();
                if quiet {
                    for ns in &namespaces {
                        println!("{}", ns["name"].as_str().unwrap_or_default());
                    }
                    return Ok(());
                }
                let mut table = Table::new(&["NAME", "LABELS"]);
                for ns in &namespaces {
                    table.push(vec![
                        ns["name"].as_str().unwrap_or_default().to_owned(),
                        labels_cell(ns.get("labels")),
                    ]);
                }
                Ok(table.print()?)
            })
        }
        Command::Create { name, labels } => {
            let result = client.call("namespaces.create", create_params(&name, &labels))?;
            ctx.show(&result, |_| Ok(()))
        }
        Command::Rm { names } => for_each_reporting(&names, "removals", |name| {
            let result = client.call("namespaces.delete", json!({ "name": name }))?;
            ctx.show(&result, |_| {
                println!("{name}");
                Ok(())
            })
        }),
    }
}

fn create_params(name: &str, labels: &[(String, String)]) -> Value {
    let mut params = Map::new();
    params.insert("name".into(), name.into());
    put(&mut params, "labels", labels_object(labels));
    Value::Object(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_sends_labels_only_when_given() {
        assert_eq!(create_params("dev", &[]), json!({"name": "dev"}));
        let labels = [("team".to_owned(), "a".to_owned())];
        assert_eq!(
            create_params("dev", &labels),
            json!({"name": "dev", "labels": {"team": "a"}})
        );
    }
}
