//! `berth logs`: a container's log (`logs.subscribe`), written back to stdout and stderr as
//! the container wrote it, optionally following it until the task's output ends.

use std::io::Write;
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};

use super::Ctx;

#[derive(Args)]
pub struct LogsArgs {
    /// Keep printing new output until the task's output ends
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines
    #[arg(long, value_name = "N")]
    tail: Option<u64>,
    /// Only lines since a time: RFC 3339 (2026-12-03T10:00:00Z) or a duration ago (10m, 1h30m)
    #[arg(long, value_name = "TIME|DUR")]
    since: Option<String>,
    /// Prefix each line with the time berthd read it
    #[arg(short, long)]
    timestamps: bool,
    /// Only stdout or stderr
    #[arg(long, value_name = "STREAM", value_parser = ["stdout", "stderr"])]
    stream: Option<String>,
    /// The container whose log to print
    id: String,
}

/// `10m` ago or an RFC 3339 time, as the RFC 3339 time berthd compares with.
fn since(arg: &str) -> anyhow::Result<String> {
    if humantime::parse_rfc3339_weak(arg).is_ok() {
        return Ok(arg.to_owned());
    }
    let ago = humantime::parse_duration(arg).with_context(|| {
        format!("--since {arg:?} is neither an RFC 3339 time nor a duration like 10m")
    })?;
    let at = SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Ok(humantime::format_rfc3339_nanos(at).to_string())
}

pub fn run(ctx: &Ctx, args: LogsArgs) -> anyhow::Result<()> {
    let mut params = json!({ "id": args.id, "follow": args.follow });
    if let Some(n) = args.tail {
        params["tail"] = json!(n);
    }
    if let Some(s) = &args.since {
        params["since"] = json!(since(s)?);
    }
    if let Some(s) = &args.stream {
        params["stream"] = json!(s);
    }
    let subscription = ctx.connect()?.subscribe("logs.subscribe", params)?;
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for batch in subscription {
        let batch = batch?;
        for entry in batch["entries"].as_array().into_iter().flatten() {
            if ctx.json {
                writeln!(out, "{entry}")?;
                continue;
            }
            let to: &mut dyn Write = if entry["stream"] == "stderr" {
                &mut err
            } else {
                &mut out
            };
            print_entry(to, entry, args.timestamps)?;
        }
        out.flush()?;
        if batch["end"] == Value::Bool(true) {
            break;
        }
    }
    Ok(())
}

fn print_entry(to: &mut dyn Write, entry: &Value, timestamps: bool) -> std::io::Result<()> {
    if timestamps {
        write!(to, "{} ", entry["time"].as_str().unwrap_or(""))?;
    }
    to.write_all(entry["text"].as_str().unwrap_or("").as_bytes())?;
    if entry["partial"] != Value::Bool(true) {
        to.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_duration_ago() {
        assert_eq!(
            since("2026-12-03T10:00:00Z").expect("time"),
            "2026-12-03T10:00:00Z"
        );
        let ago = since("10m").expect("duration");
        let at = humantime::parse_rfc3339(&ago).expect("rfc3339");
        let age = SystemTime::now().duration_since(at).expect("past");
        assert!(age.as_secs() >= 600 && age.as_secs() < 660, "{age:?}");
        assert!(since("yesterday-ish").is_err());
    }

    #[test]
    fn partial_entries_continue_on_the_same_line() {
        let mut buf = Vec::new();
        let e =
            |t: &str, p: bool| json!({"time": "T", "stream": "stdout", "text": t, "partial": p});
        print_entry(&mut buf, &e("ab", true), false).expect("write");
        print_entry(&mut buf, &e("cd", false), false).expect("write");
        print_entry(&mut buf, &e("x", false), true).expect("write");
        assert_eq!(String::from_utf8(buf).expect("utf8"), "abcd\nT x\n");
    }
}
