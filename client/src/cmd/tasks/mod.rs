//! `berth tasks|t`: running containers (`tasks.*`), shaped like ctr's `tasks` commands.

pub mod session;

use anyhow::Context;
use clap::Subcommand;
use serde_json::{json, Value};

use super::{for_each_reporting, Ctx};
use crate::output::Table;
use session::{attach_and_wait, Fifos, Target};

#[derive(Subcommand)]
pub enum Command {
    /// List tasks, optionally matching filters (e.g. status==running)
    #[command(visible_alias = "list")]
    Ls {
        /// Print only the container ids
        #[arg(short, long)]
        quiet: bool,
        /// Filters such as status==running (containerd filter grammar); any one may match
        filters: Vec<String>,
    },
    /// Create and start the task of an existing container, attached unless -d
    Start {
        /// Start the task and return at once, printing its id, without attaching
        #[arg(short, long)]
        detach: bool,
        /// Allocate a terminal
        #[arg(short, long)]
        tty: bool,
        /// Container id
        id: String,
    },
    /// Attach to a running task (as `berth attach`): its output, keys, until it exits or
    /// Ctrl-P Ctrl-Q detaches
    Attach(crate::cmd::attach::AttachArgs),
    /// Signal a task (default SIGTERM)
    Kill {
        /// Signal name or number
        #[arg(short, long, default_value = "SIGTERM")]
        signal: String,
        /// Signal every process of the task
        #[arg(short, long)]
        all: bool,
        /// Signal this exec process instead of the task's init process
        #[arg(long, value_name = "ID", default_value = "")]
        exec_id: String,
        /// Container id of the task
        id: String,
    },
    /// Delete tasks
    #[command(visible_aliases = ["delete", "del", "remove"])]
    Rm {
        /// Kill a running task first
        #[arg(short, long)]
        force: bool,
        /// Container ids of the tasks
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Run another process in a running task
    Exec(ExecArgs),
    /// List the processes of a task
    Ps {
        /// Container id of the task
        id: String,
    },
    /// Freeze every process of a task
    Pause {
        /// Container id of the task
        id: String,
    },
    /// Thaw a paused task
    Resume {
        /// Container id of the task
        id: String,
    },
    /// Show a task's cgroup figures (cpu, memory, pids)
    Metrics {
        /// Container id of the task
        id: String,
    },
    /// Wait for a process to exit; prints and exits with its status
    Wait {
        /// Wait for this exec process instead of the task's init process
        #[arg(long, value_name = "ID", default_value = "")]
        exec_id: String,
        /// Container id of the task
        id: String,
    },
}

fn signal_value(s: &str) -> Value {
    s.parse::<i64>().map_or_else(|_| json!(s), |n| json!(n))
}

/// Runs a tasks command; the result is berth's exit status.
pub fn run(ctx: &Ctx, command: Command) -> anyhow::Result<i32> {
    let mut client = ctx.connect()?;
    match command {
        Command::Ls { quiet, filters } => {
            let p = if filters.is_empty() {
                json!({})
            } else {
                json!({ "filters": filters })
            };
            let result = client.call("tasks.list", p)?;
            ctx.show(&result, |r| {
                let tasks = r["tasks"].as_array().cloned().unwrap_or_default();
                if quiet {
                    tasks
                        .iter()
                        .for_each(|t| println!("{}", t["container_id"].as_str().unwrap_or("")));
                    return Ok(());
                }
                let mut table = Table::new(&["TASK", "PID", "STATUS"]);
                for t in &tasks {
                    table.push(vec![
                        t["container_id"].as_str().unwrap_or("").to_owned(),
                        t["pid"].to_string(),
                        t["status"].as_str().unwrap_or("").to_uppercase(),
                    ]);
                }
                Ok(table.print()?)
            })?;
        }
        Command::Start { detach, tty, id } => {
            let detach = detach.then_some(super::run::Detached { auto_remove: false });
            return super::run::run_task(ctx, &mut client, &id, tty, detach, false);
        }
        Command::Attach(args) => {
            drop(client);
            return crate::cmd::attach::run(ctx, args);
        }
        Command::Kill {
            signal,
            all,
            exec_id,
            id,
        } => {
            let mut p = json!({ "container_id": id, "signal": signal_value(&signal), "all": all });
            if !exec_id.is_empty() {
                p["exec_id"] = json!(exec_id);
            }
            client.call("tasks.kill", p)?;
        }
        Command::Rm { force, ids } => for_each_reporting(&ids, "deletions", |id| {
            let r = client.call(
                "tasks.delete",
                json!({ "container_id": id, "force": force }),
            )?;
            ctx.show(&r, |_| Ok(()))
        })?,
        Command::Exec(args) => return exec(ctx, &mut client, args),
        Command::Ps { id } => {
            let r = client.call("tasks.pids", json!({ "container_id": id }))?;
            ctx.show(&r, |r| {
                let mut table = Table::new(&["PID"]);
                for p in r["processes"].as_array().into_iter().flatten() {
                    table.push(vec![p["pid"].to_string()]);
                }
                Ok(table.print()?)
            })?;
        }
        Command::Pause { id } => {
            client.call("tasks.pause", json!({ "container_id": id }))?;
        }
        Command::Resume { id } => {
            client.call("tasks.resume", json!({ "container_id": id }))?;
        }
        Command::Metrics { id } => {
            let r = client.call("tasks.metrics", json!({ "container_id": id }))?;
            ctx.show(&r, |r| {
                let mut table = Table::new(&["ID", "CPU (ns)", "MEMORY (bytes)", "PIDS"]);
                table.push(vec![
                    id.clone(),
                    r["cpu"]["usage"]["total"].to_string(),
                    r["memory"]["usage"]["usage"].to_string(),
                    r["pids"]["current"].to_string(),
                ]);
                Ok(table.print()?)
            })?;
        }
        Command::Wait { exec_id, id } => {
            let mut p = json!({ "container_id": id });
            if !exec_id.is_empty() {
                p["exec_id"] = json!(exec_id);
            }
            let r = client.call("tasks.wait", p)?;
            ctx.show(&r, |r| {
                println!("{}", r["exit_status"]);
                Ok(())
            })?;
            return Ok(r["exit_status"].as_i64().unwrap_or(255) as i32);
        }
    }
    Ok(0)
}

/// ctr's `tasks attach`: the task's own FIFOs, opened from this side; the detach keys end
/// the session and leave the task running.
pub fn attach_fifos(
    ctx: &Ctx,
    client: &mut crate::rpc::Client,
    id: &str,
    keys: Vec<u8>,
) -> anyhow::Result<i32> {
    let p = client.call("tasks.get", json!({ "container_id": id }))?;
    let process = &p["process"];
    let tty = process["terminal"].as_bool().unwrap_or(false);
    let fifos = Fifos::existing(
        process["stdin"].as_str().unwrap_or(""),
        process["stdout"].as_str().unwrap_or(""),
        process["stderr"].as_str().unwrap_or(""),
    );
    let target = Target {
        container_id: id.to_owned(),
        exec_id: String::new(),
    };
    match session::attach_detachable(ctx, client, &target, &fifos, tty, Some(keys), |_| Ok(()))? {
        Some(status) => Ok(status),
        None => {
            eprintln!("berth: detached from {id}; it keeps running");
            Ok(0)
        }
    }
}

#[derive(clap::Args)]
pub struct ExecArgs {
    /// Id of the new process within the task
    #[arg(long, value_name = "ID")]
    exec_id: String,
    /// Allocate a terminal; this terminal goes raw while attached
    #[arg(short, long)]
    tty: bool,
    /// Start the process and return at once, without attaching
    #[arg(short, long)]
    detach: bool,
    /// Working directory of the process (default: the container's)
    #[arg(long, value_name = "DIR")]
    cwd: Option<String>,
    /// Extra environment variable KEY=VALUE (repeatable)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// User of the process: uid, name, uid:gid or name:group (names from the container's
    /// /etc/passwd and /etc/group); default the container's
    #[arg(short, long, value_name = "USER")]
    user: Option<String>,
    /// Container id of the running task
    id: String,
    /// Command and arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// `--user` for an exec: names are looked up in the running container's own files, read
/// through its init's /proc root (the client runs beside berthd, as root).
fn exec_user(client: &mut crate::rpc::Client, id: &str, user: &str) -> anyhow::Result<Value> {
    let task = client.call("tasks.get", json!({ "container_id": id }))?;
    let pid = task["process"]["pid"].as_i64().unwrap_or(0);
    let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/root/etc/{f}")).ok();
    let etc = schema::spec::EtcFiles {
        passwd: read("passwd"),
        group: read("group"),
    };
    let resolved = schema::spec::resolve_user(user, &etc)?;
    Ok(serde_json::to_value(resolved)?)
}

/// ctr's `tasks exec`: the container's process spec with the command replaced.
fn exec(ctx: &Ctx, client: &mut crate::rpc::Client, a: ExecArgs) -> anyhow::Result<i32> {
    let c = client.call("containers.get", json!({ "id": a.id }))?;
    let mut process = c["container"]["spec"]["process"].clone();
    anyhow::ensure!(
        process.is_object(),
        "container {:?} has no process in its spec",
        a.id
    );
    process["args"] = json!(a.command);
    process["terminal"] = json!(a.tty);
    if let Some(cwd) = a.cwd {
        process["cwd"] = json!(cwd);
    }
    if let Some(user) = &a.user {
        process["user"] = exec_user(client, &a.id, user)?;
    }
    if !a.env.is_empty() {
        let mut env: Vec<Value> = process["env"].as_array().cloned().unwrap_or_default();
        env.extend(a.env.iter().map(|e| json!(e)));
        process["env"] = Value::Array(env);
    }
    let target = Target {
        container_id: a.id.clone(),
        exec_id: a.exec_id.clone(),
    };
    let base = json!({ "container_id": a.id, "exec_id": a.exec_id, "process": process,
                       "terminal": a.tty });
    if a.detach {
        client.call("tasks.exec", base)?;
        client.call(
            "tasks.start",
            json!({ "container_id": a.id, "exec_id": a.exec_id }),
        )?;
        return Ok(0);
    }
    let fifos = Fifos::new(&a.exec_id, a.tty)?;
    let mut p = base;
    if let (Some(p), Value::Object(io)) = (p.as_object_mut(), fifos.params()) {
        p.extend(io);
    }
    client.call("tasks.exec", p)?;
    let status = attach_and_wait(ctx, client, &target, &fifos, a.tty, |c| {
        c.call(
            "tasks.start",
            json!({ "container_id": a.id, "exec_id": a.exec_id }),
        )?;
        Ok(())
    });
    let deleted = client
        .call(
            "tasks.delete_process",
            json!({ "container_id": a.id, "exec_id": a.exec_id }),
        )
        .context("deleting the exec process");
    let status = status?;
    deleted?;
    Ok(status)
}

/// For `berth containers rm`: deletes the container's task first when it is stopped,
/// as ctr does; a live task is an error naming it.
pub fn delete_stopped_task(client: &mut crate::rpc::Client, id: &str) -> anyhow::Result<()> {
    let Ok(task) = client.call("tasks.get", json!({ "container_id": id })) else {
        return Ok(());
    };
    let status = task["process"]["status"].as_str().unwrap_or("");
    anyhow::ensure!(
        status == "stopped",
        "container {id:?} has a {status} task; stop it first (berth tasks kill {id}) or \
         delete it with berth tasks rm -f {id}"
    );
    client.call("tasks.delete", json!({ "container_id": id }))?;
    Ok(())
}
