//! `berth ps`: containers with how their task stands or how it ended, from one
//! `containers.list` with `with_status` (no call per container), as `docker ps [-a]` shows.

use std::time::{Duration, SystemTime};

use clap::Args;
use serde_json::{json, Value};

use super::Ctx;
use crate::output::{human, Table};

#[derive(Args)]
pub struct PsArgs {
    /// Show every container, not only those whose task is created, running or paused
    #[arg(short, long)]
    all: bool,
    /// Print only the ids
    #[arg(short, long)]
    quiet: bool,
    /// Filter the containers (containerd filter grammar, e.g. labels.app==web); repeatable
    #[arg(short, long = "filter", value_name = "FILTER")]
    filters: Vec<String>,
}

/// docker's PORTS cell of a task: `0.0.0.0:8080->80/tcp, ...`.
fn ports_cell(task: &Value) -> String {
    task["network"]["ports"]
        .as_array()
        .map(|ports| {
            ports
                .iter()
                .map(|p| {
                    format!(
                        "{}:{}->{}/{}",
                        p["host_ip"].as_str().unwrap_or_default(),
                        p["host_port"],
                        p["container_port"],
                        p["protocol"].as_str().unwrap_or_default()
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

/// `berth inspect`: each container with its task (`tasks.get`, `null` without one).
pub fn inspect(ctx: &Ctx, ids: &[String]) -> anyhow::Result<()> {
    let mut client = ctx.connect()?;
    let mut shown = Vec::new();
    for id in ids {
        let container = client.call("containers.get", json!({ "id": id }))?["container"].clone();
        let task = match client.call("tasks.get", json!({ "container_id": id })) {
            Ok(t) => t["process"].clone(),
            Err(crate::rpc::RpcError::Daemon { kind, .. })
                if kind.as_deref() == Some("not_found") =>
            {
                Value::Null
            }
            Err(e) => return Err(e.into()),
        };
        shown.push(json!({ "container": container, "task": task }));
    }
    Ok(crate::output::print_json(&Value::Array(shown))?)
}

/// One row, as both the table and `--json` show it.
fn row(c: &Value, now: SystemTime) -> Value {
    let status = &c["status"];
    let state = status["state"].as_str().unwrap_or("none");
    json!({
        "id": c["id"],
        "image": c["image"],
        "command": command(c),
        "created_at": c["created_at"],
        "state": state,
        "status": status_text(status, now),
        "exit_status": status["exit_status"],
        "exit_reason": status["exit_reason"],
        "started_at": status["started_at"],
        "exited_at": status["exited_at"],
        "pid": status["pid"],
    })
}

/// Whether `ps` without `-a` shows the container: its task exists and has not exited.
fn live(state: &str) -> bool {
    matches!(state, "created" | "running" | "paused")
}

pub fn run(ctx: &Ctx, args: PsArgs) -> anyhow::Result<()> {
    let mut client = ctx.connect()?;
    let now = SystemTime::now();
    let params = json!({ "filters": args.filters, "with_status": true });
    let mut rows: Vec<Value> = super::containers::list_all(&mut client, params)?
        .iter()
        .map(|c| row(c, now))
        .filter(|r| args.all || live(r["state"].as_str().unwrap_or("")))
        .collect();
    // Published ports are the tasks': one tasks.list for every row.
    if rows.iter().any(|r| live(r["state"].as_str().unwrap_or(""))) {
        let tasks = client.call("tasks.list", json!({}))?;
        for t in tasks["tasks"].as_array().into_iter().flatten() {
            if let Some(r) = rows.iter_mut().find(|r| r["id"] == t["container_id"]) {
                r["ports"] = json!(ports_cell(t));
                r["network"] = t["network"].clone();
            }
        }
    }
    if args.quiet {
        for r in &rows {
            println!("{}", r["id"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    ctx.show(&json!({ "containers": rows }), |_| {
        let mut table = Table::new(&[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
        ]);
        for r in &rows {
            let created = r["created_at"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                .map(|t| format!("{} ago", human(age(t, now))))
                .unwrap_or_default();
            let image = match r["image"].as_str().unwrap_or_default() {
                "" => "-",
                i => i,
            };
            table.push(vec![
                r["id"].as_str().unwrap_or_default().to_owned(),
                image.to_owned(),
                quoted(r["command"].as_str().unwrap_or_default()),
                created,
                r["status"].as_str().unwrap_or_default().to_owned(),
                r["ports"].as_str().unwrap_or_default().to_owned(),
            ]);
        }
        Ok(table.print()?)
    })
}

/// The process's argv from the stored spec, joined.
fn command(c: &Value) -> String {
    c["spec"]["process"]["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// docker's COMMAND cell: quoted, cut to 20 characters.
fn quoted(cmd: &str) -> String {
    let cut: String = cmd.chars().take(20).collect();
    if cut.len() < cmd.len() {
        format!("\"{cut}…\"")
    } else {
        format!("\"{cut}\"")
    }
}

fn age(t: SystemTime, now: SystemTime) -> Duration {
    now.duration_since(t).unwrap_or_default()
}

/// `Up 3 minutes`, `Exited (3) 10 seconds ago`, `Created`.
fn status_text(status: &Value, now: SystemTime) -> String {
    let at = |field: &str| {
        status[field]
            .as_str()
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .map(|t| human(age(t, now)))
    };
    match status["state"].as_str().unwrap_or("none") {
        "running" => format!("Up {}", at("started_at").unwrap_or_default()),
        "paused" => format!("Up {} (Paused)", at("started_at").unwrap_or_default()),
        "stopped" | "exited" => {
            let code = status["exit_status"].as_i64().unwrap_or(-1);
            let mut text = format!("Exited ({code})");
            if let Some(ago) = at("exited_at") {
                text.push_str(&format!(" {ago} ago"));
            }
            match status["exit_reason"].as_str() {
                Some("lost") => text.push_str(", status lost"),
                Some("host_restarted") => text.push_str(", host restarted"),
                _ => {}
            }
            text
        }
        _ => "Created".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_as_docker_s() {
        let now = humantime::parse_rfc3339("2026-12-03T10:00:00Z").expect("time");
        let s = |v: Value| status_text(&v, now);
        assert_eq!(
            s(json!({"state": "running", "started_at": "2026-12-03T09:57:00Z"})),
            "Up 3 minutes"
        );
        assert_eq!(
            s(
                json!({"state": "exited", "exit_status": 3, "exit_reason": "exited",
                     "exited_at": "2026-12-03T09:59:50Z"})
            ),
            "Exited (3) 10 seconds ago"
        );
        assert_eq!(
            s(
                json!({"state": "stopped", "exit_status": 255, "exit_reason": "lost",
                     "exited_at": "2026-12-03T08:00:00Z"})
            ),
            "Exited (255) 2 hours ago, status lost"
        );
        assert_eq!(s(json!({"state": "none"})), "Created");
        assert_eq!(s(json!({"state": "created"})), "Created");
        assert!(live("paused") && !live("stopped") && !live("exited") && !live("none"));
    }

    #[test]
    fn commands_come_from_the_spec_and_are_cut() {
        let c =
            json!({"spec": {"process": {"args": ["sh", "-c", "while true; do echo tick; done"]}}});
        assert_eq!(command(&c), "sh -c while true; do echo tick; done");
        assert_eq!(quoted(&command(&c)), "\"sh -c while true; do…\"");
        assert_eq!(quoted("true"), "\"true\"");
        assert_eq!(human(Duration::from_secs(90)), "About a minute");
        assert_eq!(human(Duration::from_secs(3 * 86_400)), "3 days");
    }
}
