//! docker's daily verbs on top of the tasks API: `stop` (the image's STOPSIGNAL or SIGTERM,
//! SIGKILL after a timeout), `start` (a new task for an existing container, detached and
//! logged), `restart`, and `rm [-f]`.

use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::{json, Value};

use super::{for_each_reporting, Ctx};
use crate::rpc::{Client, RpcError};

#[derive(Args)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before SIGKILL
    #[arg(short, long, default_value_t = 10, value_name = "SECS")]
    time: u64,
    /// Containers to stop
    #[arg(required = true)]
    ids: Vec<String>,
}

#[derive(Args)]
pub struct StartArgs {
    /// Attach to the task's output and input and wait for it, as `berth t start` does
    #[arg(short, long)]
    attach: bool,
    /// Containers to start
    #[arg(required = true)]
    ids: Vec<String>,
}

#[derive(Args)]
pub struct RmArgs {
    /// Kill and delete a running task first
    #[arg(short, long)]
    force: bool,
    /// Containers to remove
    #[arg(required = true)]
    ids: Vec<String>,
}

/// The task's status, `None` if the container has no task.
fn task_status(client: &mut Client, id: &str) -> anyhow::Result<Option<String>> {
    match client.call("tasks.get", json!({ "container_id": id })) {
        Ok(v) => Ok(v["process"]["status"].as_str().map(str::to_owned)),
        Err(RpcError::Daemon { kind, .. }) if kind.as_deref() == Some("not_found") => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn running(status: &str) -> bool {
    matches!(status, "created" | "running" | "paused")
}

/// Waits (on its own connection) for the task's exit, at most `limit`; true if it exited.
fn wait_for_exit(ctx: &Ctx, id: &str, limit: Duration) -> anyhow::Result<bool> {
    let mut waiter = ctx.connect()?;
    let (tx, rx) = mpsc::channel();
    let id2 = id.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(waiter.call("tasks.wait", json!({ "container_id": id2 })));
    });
    match rx.recv_timeout(limit) {
        Ok(r) => r.map(|_| true).map_err(Into::into),
        Err(mpsc::RecvTimeoutError::Timeout) => Ok(false),
        Err(mpsc::RecvTimeoutError::Disconnected) => anyhow::bail!("waiting for {id} failed"),
    }
}

/// Stops the task of `id` if it runs: the stop signal, then SIGKILL after `limit`.
fn stop_one(ctx: &Ctx, client: &mut Client, id: &str, limit: Duration) -> anyhow::Result<()> {
    let Some(status) = task_status(client, id)? else {
        // No task: nothing runs (a missing container is reported by the call).
        client.call("containers.get", json!({ "id": id }))?;
        return Ok(());
    };
    if !running(&status) {
        return Ok(());
    }
    let container = client.call("containers.get", json!({ "id": id }))?;
    let signal = container["container"]["labels"][schema::STOP_SIGNAL_LABEL]
        .as_str()
        .unwrap_or("SIGTERM")
        .to_owned();
    if status == "paused" {
        // A frozen process cannot act on a signal; let it handle this one.
        client.call("tasks.resume", json!({ "container_id": id }))?;
    }
    let sent = client.call(
        "tasks.kill",
        json!({ "container_id": id, "signal": signal, "all": true }),
    );
    match sent {
        Ok(_) => {}
        // A stop signal this berthd does not know: SIGTERM, as docker falls back to.
        Err(RpcError::Daemon { kind, .. }) if kind.as_deref() == Some("invalid_argument") => {
            eprintln!("berth: {id}: stop signal {signal:?} refused; sending SIGTERM");
            client.call(
                "tasks.kill",
                json!({ "container_id": id, "signal": "SIGTERM", "all": true }),
            )?;
        }
        Err(e) => return Err(e.into()),
    }
    if !wait_for_exit(ctx, id, limit)? {
        client.call(
            "tasks.kill",
            json!({ "container_id": id, "signal": "SIGKILL", "all": true }),
        )?;
        if !wait_for_exit(ctx, id, Duration::from_secs(30))? {
            anyhow::bail!("the task did not exit 30 s after SIGKILL");
        }
    }
    Ok(())
}

pub fn stop(ctx: &Ctx, args: StopArgs) -> anyhow::Result<()> {
    let mut client = ctx.connect()?;
    let limit = Duration::from_secs(args.time);
    for_each_reporting(&args.ids, "stops", |id| {
        stop_one(ctx, &mut client, id, limit)?;
        println!("{id}");
        Ok(())
    })
}

/// A new task for `id`, detached: an ended task is deleted first, a running one is left.
fn start_one(client: &mut Client, id: &str) -> anyhow::Result<()> {
    match task_status(client, id)? {
        Some(s) if running(&s) && s != "created" => return Ok(()),
        Some(s) if s == "created" => {
            client.call("tasks.start", json!({ "container_id": id }))?;
            return Ok(());
        }
        Some(_) => {
            client.call("tasks.delete", json!({ "container_id": id }))?;
        }
        None => {}
    }
    let container = client.call("containers.get", json!({ "id": id }))?;
    let tty = terminal(&container["container"]["spec"]);
    client.call(
        "tasks.create",
        json!({ "container_id": id, "terminal": tty, "start": true }),
    )?;
    Ok(())
}

/// Whether the container's spec asks for a terminal.
fn terminal(spec: &Value) -> bool {
    spec["process"]["terminal"].as_bool().unwrap_or(false)
}

pub fn start(ctx: &Ctx, args: StartArgs) -> anyhow::Result<i32> {
    let mut client = ctx.connect()?;
    if args.attach {
        let [id] = args.ids.as_slice() else {
            anyhow::bail!("--attach takes one container");
        };
        if let Some(s) = task_status(&mut client, id)? {
            if running(&s) {
                anyhow::bail!("{id} has a task already ({s}); attach with `berth t attach {id}`");
            }
            client.call("tasks.delete", json!({ "container_id": id }))?;
        }
        let container = client.call("containers.get", json!({ "id": id }))?;
        let tty = terminal(&container["container"]["spec"]);
        return super::run::run_task(ctx, &mut client, id, tty, None, false);
    }
    for_each_reporting(&args.ids, "starts", |id| {
        start_one(&mut client, id)?;
        println!("{id}");
        Ok(())
    })?;
    Ok(0)
}

pub fn restart(ctx: &Ctx, args: StopArgs) -> anyhow::Result<()> {
    let mut client = ctx.connect()?;
    let limit = Duration::from_secs(args.time);
    for_each_reporting(&args.ids, "restarts", |id| {
        stop_one(ctx, &mut client, id, limit)?;
        start_one(&mut client, id)?;
        println!("{id}");
        Ok(())
    })
}

pub fn rm(ctx: &Ctx, args: RmArgs) -> anyhow::Result<()> {
    let mut client = ctx.connect()?;
    for_each_reporting(&args.ids, "removals", |id| {
        if let Some(s) = task_status(&mut client, id)? {
            if running(&s) && !args.force {
                anyhow::bail!("its task is {s}: stop it first, or remove it with -f");
            }
            client
                .call("tasks.delete", json!({ "container_id": id, "force": true }))
                .with_context(|| format!("deleting the task of {id}"))?;
        }
        client.call("containers.delete", json!({ "id": id }))?;
        println!("{id}");
        Ok(())
    })
}
