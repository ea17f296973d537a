//! `berth logs`: a container's log (`logs.subscribe`), written back to stdout and stderr as
//! the container wrote it, optionally following it until the task's output ends.

use std::io::Write;
use std::time::SystemTime;

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};

use super::events::{gone, BACKOFF_MAX, BACKOFF_MIN};
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
    if !args.follow {
        let subscription = ctx.connect()?.subscribe("logs.subscribe", params)?;
        for batch in subscription {
            if print_batch(ctx, &batch?, args.timestamps, &mut Resume::default())? {
                break;
            }
        }
        return Ok(());
    }
    follow(ctx, params, args.timestamps)
}

/// Follows the log until the task's output ends. When berthd goes away (a restart, a
/// crash) it reconnects with backoff, as `berth events` does, and resumes after the last
/// entry it printed, so a restart shows no gap and no duplicate.
fn follow(ctx: &Ctx, first: Value, timestamps: bool) -> anyhow::Result<()> {
    // Where to start if berthd goes away before anything is printed (see `Resume::params`).
    let started = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    let mut resume = Resume::default();
    let (mut lost, mut backoff) = (false, BACKOFF_MIN);
    loop {
        let params = if lost {
            resume.params(&first, &started)
        } else {
            first.clone()
        };
        let subscribed = ctx
            .connect()
            .and_then(|c| c.subscribe("logs.subscribe", params));
        let subscription = match subscribed {
            Ok(s) => s,
            Err(e) if lost && gone(&e) => {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if lost {
            eprintln!("berth: reconnected to berthd; resuming the log");
        }
        backoff = BACKOFF_MIN;
        for batch in subscription {
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) if gone(&e) => break,
                Err(e) => return Err(e.into()),
            };
            if print_batch(ctx, &batch, timestamps, &mut resume)? {
                return Ok(());
            }
        }
        eprintln!("berth: lost berthd; reconnecting to resume the log (Ctrl-C stops)");
        lost = true;
    }
}

/// Prints one `logs.subscribe` batch, skipping what `resume` says was printed already;
/// true if it was the last.
fn print_batch(
    ctx: &Ctx,
    batch: &Value,
    timestamps: bool,
    resume: &mut Resume,
) -> anyhow::Result<bool> {
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    for entry in batch["entries"].as_array().into_iter().flatten() {
        if !resume.fresh(entry) {
            continue;
        }
        if ctx.json {
            writeln!(out, "{entry}")?;
            continue;
        }
        let to: &mut dyn Write = if entry["stream"] == "stderr" {
            &mut err
        } else {
            &mut out
        };
        print_entry(to, entry, timestamps)?;
    }
    out.flush()?;
    Ok(batch["end"] == Value::Bool(true))
}

/// The position of a follower in a log, so a new subscription resumes after the last entry
/// printed. Entries carry no sequence number, but their fixed-width times only grow, and
/// the entries of one write share one time: the position is that time and how many
/// entries of it were printed; a resumed subscription asks for entries from that time on
/// and skips that many.
#[derive(Default)]
struct Resume {
    /// The time of the last entry printed, and how many printed entries have it.
    last: Option<(String, usize)>,
    /// Entries of the last time still to skip in the resumed subscription.
    skip: usize,
}

impl Resume {
    /// Params of a resumed subscription: the first ones, from the last printed time, and
    /// without `tail`, which was already applied.
    fn params(&mut self, first: &Value, started: &str) -> Value {
        let mut params = first.clone();
        if let Some(map) = params.as_object_mut() {
            map.remove("tail");
        }
        let from = match &self.last {
            Some((time, printed)) => {
                self.skip = *printed;
                time.clone()
            }
            // Nothing printed: nothing matched when the follower started, so all that
            // matches now is new; except under `--tail 0`, which skipped what was there.
            None if first["tail"].as_u64() != Some(0) => return params,
            None => started.to_owned(),
        };
        params["since"] = json!(from);
        params
    }

    /// Whether `entry` is new (and, if so, records it as printed).
    fn fresh(&mut self, entry: &Value) -> bool {
        let time = entry["time"].as_str().unwrap_or_default();
        match &mut self.last {
            Some((last, printed)) if last == time => {
                if self.skip > 0 {
                    self.skip -= 1;
                    return false;
                }
                *printed += 1;
            }
            _ => {
                self.skip = 0;
                self.last = Some((time.to_owned(), 1));
            }
        }
        true
    }
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
    fn a_resumed_follower_skips_what_it_printed_and_nothing_else() {
        let e = |t: &str, text: &str| json!({"time": t, "stream": "stdout", "text": text});
        let first = json!({"id": "web", "follow": true, "tail": 2});
        let mut r = Resume::default();
        assert_eq!(r.params(&first, "T0"), json!({"id": "web", "follow": true}));
        assert!(r.fresh(&e("T1", "a")) && r.fresh(&e("T2", "b")) && r.fresh(&e("T2", "c")));
        let resumed = r.params(&first, "T0");
        assert_eq!(resumed, json!({"id": "web", "follow": true, "since": "T2"}));
        // The new subscription sends T2's two entries again, then one written meanwhile.
        let again: Vec<bool> = [e("T2", "b"), e("T2", "c"), e("T2", "d"), e("T3", "e")]
            .iter()
            .map(|x| r.fresh(x))
            .collect();
        assert_eq!(again, [false, false, true, true]);
        assert_eq!(r.params(&first, "T0")["since"], "T3");
        assert!(!r.fresh(&e("T3", "e")) && r.fresh(&e("T4", "f")));
        let none_yet = json!({"id": "web", "follow": true, "tail": 0});
        assert_eq!(Resume::default().params(&none_yet, "T0")["since"], "T0");
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
