//! `berth call METHOD [JSON]`: any method, raw, for what has no command of its own yet.

use std::io::Read;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

use super::Ctx;
use crate::output;

#[derive(Args)]
pub struct CallArgs {
    /// Method name, e.g. containers.get
    method: String,
    /// Params as a JSON object (or array); `-` reads them from stdin
    #[arg(default_value = "{}")]
    params: String,
}

pub fn run(ctx: &Ctx, args: CallArgs) -> anyhow::Result<()> {
    let text = if args.params == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read params from stdin")?;
        text
    } else {
        args.params
    };
    let params = parse_params(&text)?;
    let result = ctx.connect()?.call(&args.method, params)?;
    output::print_json(&result)?;
    Ok(())
}

fn parse_params(text: &str) -> anyhow::Result<Value> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    let params: Value =
        serde_json::from_str(text).with_context(|| format!("params {text:?} are not JSON"))?;
    match params {
        Value::Object(_) | Value::Array(_) => Ok(params),
        other => anyhow::bail!("params must be a JSON object or array, not {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_must_be_an_object_or_array() {
        assert_eq!(parse_params(r#"{"id":"a"}"#).ok(), Some(json!({"id": "a"})));
        assert_eq!(parse_params("[\"s1\"]").ok(), Some(json!(["s1"])));
        assert_eq!(parse_params("  \n").ok(), Some(json!({})));
        assert!(parse_params("3").is_err());
        assert!(parse_params("{oops").is_err());
    }
}
