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
        None => follow(ctx, &args.filters, args.since),
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

/// Prints events as they arrive until interrupted or berthd goes away; `--json` prints
/// each whole event on one line so the output stays a stream of JSON lines.
fn follow(ctx: &Ctx, filters: &[String], since: Option<u64>) -> anyhow::Result<()> {
    let subscription = ctx
        .connect()?
        .subscribe("events.subscribe", params(filters, since, None))?;
    for event in subscription {
        let event = event?;
        if ctx.json {
            println!("{event}");
        } else {
            println!("{}", line(&event));
        }
    }
    Ok(())
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
        let follow = parse(&["topic==/x", "--since", "4"]);
        assert!(follow.command.is_none());
        assert_eq!(follow.filters, ["topic==/x"]);
        assert_eq!(follow.since, Some(4));
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
