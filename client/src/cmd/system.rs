//! `berth version` and `berth info`: who the client and the daemon are (`system.*`).

use serde_json::{json, Value};

use super::Ctx;
use crate::output;

pub fn version(ctx: &Ctx) -> anyhow::Result<()> {
    let client_version = env!("CARGO_PKG_VERSION");
    if !ctx.json {
        println!("Client:\n  Version:  {client_version}\n");
    }
    let server = ctx.connect()?.call("system.version", json!({}))?;
    if ctx.json {
        output::print_json(&json!({"client": {"version": client_version}, "server": server}))?;
        return Ok(());
    }
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    println!("Server:");
    println!("  Version:  {}", text(&server["version"]));
    println!("  API:      {}", text(&server["api_version"]));
    println!(
        "  Runtime:  {} {}",
        text(&server["runtime"]["name"]),
        text(&server["runtime"]["version"])
    );
    Ok(())
}

pub fn info(ctx: &Ctx) -> anyhow::Result<()> {
    let result = ctx.connect()?.call("system.info", json!({}))?;
    output::print_json(&result)?;
    Ok(())
}
