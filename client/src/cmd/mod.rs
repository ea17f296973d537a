//! One module per command group, as in ctr. Each module owns its clap arguments, the
//! translation of those arguments into method params (pure functions, unit-tested), and
//! printing the results. The connection itself comes from [`Ctx`].

pub mod attach;
pub mod call;
pub mod complete;
pub mod containers;
pub mod content;
pub mod events;
pub mod images;
pub mod leases;
pub mod lifecycle;
pub mod logs;
pub mod namespaces;
pub mod networks;
pub mod process;
pub mod progress;
pub mod ps;
pub mod run;
pub mod snapshots;
pub mod system;
pub mod tasks;

use std::fmt::Display;
use std::path::PathBuf;

use serde_json::Value;

use crate::output;
use crate::rpc::{Client, RpcError};

/// What every command receives from the global flags.
pub struct Ctx {
    pub socket: PathBuf,
    pub namespace: String,
    /// `--json`: print the daemon's result as-is instead of a human view.
    pub json: bool,
}

impl Ctx {
    pub fn connect(&self) -> Result<Client, RpcError> {
        Client::connect(&self.socket, &self.namespace)
    }

    /// Prints `result` pretty under `--json`, otherwise runs the human view.
    pub fn show(
        &self,
        result: &Value,
        human: impl FnOnce(&Value) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        if self.json {
            output::print_json(result)?;
            Ok(())
        } else {
            human(result)
        }
    }
}

/// Runs `each` over every item, like ctr's `rm` of several ids: a failure is reported and
/// the rest still run; the command fails at the end if any item did.
pub fn for_each_reporting<T: Display>(
    items: &[T],
    what: &str,
    mut each: impl FnMut(&T) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut failed = 0;
    for item in items {
        if let Err(e) = each(item) {
            eprintln!("berth: {item}: {e:#}");
            failed += 1;
        }
    }
    match failed {
        0 => Ok(()),
        n => anyhow::bail!("{n} of {} {what} failed", items.len()),
    }
}

/// Adds `key: value` to an object unless the value is empty; keeps params minimal so the
/// daemon's defaults apply to whatever the user did not say.
pub fn put(params: &mut serde_json::Map<String, Value>, key: &str, value: impl Into<Value>) {
    let value = value.into();
    let empty = match &value {
        Value::Null | Value::Bool(false) => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) | Value::Bool(true) => false,
    };
    if !empty {
        params.insert(key.to_owned(), value);
    }
}
