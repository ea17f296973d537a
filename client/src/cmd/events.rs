//! `berth events`: follow the event stream (`events.subscribe`) or page through stored
//! events (`events.list`).

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

use super::{put, Ctx};
use crate::output::Table;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EventsArgs {
    #[command(subcommand)]
    command: Option<Command>,
    /// Replay stored events after this sequence number before following live ones
    #[arg(long, value_name = "SEQ")]
    since: Option<u64>,
    /// Stop after the event with this sequence number (or the first one past it)
    #[arg(long, value_name = "SEQ")]
    until: Option<u64>,
    /// Filters such as topic~=^/containers/ or namespace==default
    filters: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// List stored events, oldest first
    #[command(visible_alias = "list")]
    Ls {
        /// Only events after this sequence number
        #[arg(long, value_name = "SEQ")]
        since: Option<u64>,
        /// At most this many events
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Filters such as topic~=^/containers/ or namespace==default
        filters: Vec<String>,
    },
}

pub fn run(ctx: &Ctx, args: EventsArgs) -> anyhow::Result<()> {
    match args.command {
        None => follow(ctx, &args.filters, args.since, args.until),
        Some(Command::Ls {
            since,
            limit,
            filters,
        }) => {
            let params = params(&filters, since, limit);
            let result = ctx.connect()?.call("events.list", params)?;
            ctx.show(&result, |result| {
                let mut table = Table::new(&["SEQ", "TIMESTAMP", "NAMESPACE", "TOPIC", "EVENT"]);
                for event in result["events"].as_array().into_iter().flatten() {
                    let [timestamp, namespace, topic, payload] = columns(event);
                    table.push(vec![
                        event["seq"].to_string(),
                        timestamp,
                        namespace,
                        topic,
                        payload,
                    ]);
                }
                Ok(table.print()?)
            })
        }
    }
}

/// Prints events as they arrive until interrupted (or past `until`); `--json` prints each
/// whole event on one line so the output stays a stream of JSON lines. When berthd goes
/// away (a restart, a crash, a subscriber it dropped for falling behind) it reconnects with
/// backoff and resumes after the last event it printed: events are stored with their seq,
/// so a restart shows no gap and no duplicate.
fn follow(
    ctx: &Ctx,
    filters: &[String],
    since: Option<u64>,
    until: Option<u64>,
) -> anyhow::Result<()> {
    // Without --since, from now on: the newest stored seq, so nothing committed between
    // this call and the subscription is missed either.
    let mut last = match since {
        Some(s) => s,
        None => ctx.connect()?.call("events.list", json!({"limit": 1}))?["last_seq"]
            .as_u64()
            .unwrap_or(0),
    };
    if until.is_some_and(|u| u <= last) {
        return Ok(());
    }
    let mut lost = false;
    let mut backoff = BACKOFF_MIN;
    loop {
        let subscribed = ctx
            .connect()
            .and_then(|c| c.subscribe("events.subscribe", params(filters, Some(last), None)));
        let subscription = match subscribed {
            Ok(s) => s,
            Err(e) if lost && gone(&e) => {
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if std::mem::take(&mut lost) {
            eprintln!("berth: reconnected to berthd; resuming after seq {last}");
        }
        backoff = BACKOFF_MIN;
        for event in subscription {
            let event = match event {
                Ok(event) => event,
                Err(e) if gone(&e) => break,
                Err(e) => return Err(e.into()),
            };
            let seq = event["seq"].as_u64().unwrap_or(last);
            if until.is_some_and(|u| seq > u) {
                return Ok(());
            }
            if ctx.json {
                println!("{event}");
            } else {
                println!("{}", line(&event));
            }
            last = seq;
            if until == Some(seq) {
                return Ok(());
            }
        }
        eprintln!("berth: lost berthd; reconnecting to resume after seq {last} (Ctrl-C stops)");
        lost = true;
    }
}

pub(super) const BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(100);
pub(super) const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether `e` means the connection to berthd is gone (or the subscription was dropped for
/// falling behind): worth reconnecting, unlike a refused request.
pub(super) fn gone(e: &crate::rpc::RpcError) -> bool {
    use crate::rpc::RpcError;
    match e {
        RpcError::Connect { .. } | RpcError::Io { .. } | RpcError::Closed { .. } => true,
        RpcError::Daemon { kind, .. } => kind.as_deref() == Some("resource_exhausted"),
        RpcError::Protocol { .. } => false,
    }
}

fn params(filters: &[String], since: Option<u64>, limit: Option<u64>) -> Value {
    let mut params = Map::new();
    put(&mut params, "filters", filters.to_vec());
    if let Some(since) = since {
        params.insert("since".into(), since.into());
    }
    if let Some(limit) = limit {
        params.insert("limit".into(), limit.into());
    }
    Value::Object(params)
}

/// `TIMESTAMP  NAMESPACE  TOPIC  EVENT-JSON`, the payload compact on the same line.
fn line(event: &Value) -> String {
    columns(event).join("  ")
}

fn columns(event: &Value) -> [String; 4] {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    [
        text(&event["timestamp"]),
        text(&event["namespace"]),
        text(&event["topic"]),
        event.get("event").unwrap_or(&json!({})).to_string(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        events: EventsArgs,
    }

    fn parse(argv: &[&str]) -> EventsArgs {
        match Harness::try_parse_from(std::iter::once("events").chain(argv.iter().copied())) {
            Ok(h) => h.events,
            Err(e) => panic!("{argv:?} did not parse: {e}"),
        }
    }

    #[test]
    fn ls_is_a_subcommand_and_other_words_are_filters() {
        let follow = parse(&["topic==/x", "--since", "4", "--until", "9"]);
        assert!(follow.command.is_none());
        assert_eq!(follow.filters, ["topic==/x"]);
        assert_eq!((follow.since, follow.until), (Some(4), Some(9)));
        match parse(&["ls", "--limit", "3", "namespace==a"]).command {
            Some(Command::Ls {
                limit,
                filters,
                since,
            }) => {
                assert_eq!((limit, since), (Some(3), None));
                assert_eq!(filters, ["namespace==a"]);
            }
            None => panic!("`events ls` was taken as a filter"),
        }
    }

    #[test]
    fn since_zero_is_sent_and_absent_options_are_not() {
        assert_eq!(params(&[], None, None), json!({}));
        assert_eq!(
            params(&["topic~=^/containers/".into()], Some(0), Some(5)),
            json!({"filters": ["topic~=^/containers/"], "since": 0, "limit": 5})
        );
    }

    #[test]
    fn event_line_has_timestamp_namespace_topic_and_compact_payload() {
        let event = json!({"seq": 3, "timestamp": "2025-01-01T00:00:00.000000001Z",
                           "namespace": "default", "topic": "/containers/create",
                           "event": {"id": "web", "image": "busybox"}});
        assert_eq!(
            line(&event),
            r#"2025-01-01T00:00:00.000000001Z  default  /containers/create  {"id":"web","image":"busybox"}"#
        );
    }
}
