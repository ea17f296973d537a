//! `berth`: berthd's command-line client, shaped like containerd's `ctr`. This file owns the
//! global flags, the command tree's top level and how a failure becomes an exit status;
//! each command group lives in `cmd/`, the wire in `rpc`, terminal layout in `output`.

mod args;
mod cmd;
mod output;
mod resources;
mod rpc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;

use cmd::{
    attach, call, complete, containers, content, events, images, leases, lifecycle, logs,
    namespaces, networks, ps, run, snapshots, system, tasks, Ctx,
};

const DEFAULT_SOCKET: &str = "/run/berth/berthd.sock";

#[derive(Parser)]
#[command(name = "berth", version, about = "Command-line client for berthd")]
struct Cli {
    /// berthd's socket
    #[arg(long, global = true, env = "BERTH_SOCKET", default_value = DEFAULT_SOCKET,
          value_name = "PATH")]
    socket: PathBuf,
    /// Namespace sent with every call
    #[arg(
        short,
        long,
        global = true,
        env = "BERTH_NAMESPACE",
        default_value = "default",
        value_name = "NS"
    )]
    namespace: String,
    /// Print the daemon's result as JSON
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage namespaces
    #[command(subcommand, visible_alias = "ns")]
    Namespaces(namespaces::Command),
    /// Manage networks: bridges tasks join with `run --network` and `-p`
    #[command(subcommand, visible_alias = "net")]
    Network(networks::Command),
    /// Manage containers (metadata)
    #[command(subcommand, visible_alias = "c")]
    Containers(containers::Command),
    /// Run a container: create it, run its task attached, exit with its status
    Run(Box<run::RunArgs>),
    /// Attach to a running task: its output (a terminal's last screen first), its input,
    /// until it exits or the detach keys (Ctrl-P Ctrl-Q) leave it running
    Attach(attach::AttachArgs),
    /// Start a new task for existing containers (detached and logged; -a to attach)
    Start(lifecycle::StartArgs),
    /// Stop containers' tasks: the image's STOPSIGNAL (or SIGTERM), SIGKILL after -t SECS
    Stop(lifecycle::StopArgs),
    /// Stop, then start again with a new task
    Restart(lifecycle::StopArgs),
    /// Remove containers (-f: kill and delete a running task first)
    Rm(lifecycle::RmArgs),
    /// List containers with their task's status (-a: also those that exited or never ran)
    Ps(ps::PsArgs),
    /// Print a container's log (its output when run detached), or follow it with -f
    Logs(logs::LogsArgs),
    /// Manage tasks (running containers)
    #[command(subcommand, visible_alias = "t")]
    Tasks(tasks::Command),
    /// Import, list, inspect and remove images
    #[command(subcommand, visible_alias = "i")]
    Images(images::Command),
    /// Snapshots: prepare, view, commit, mounts, usage, remove
    Snapshots(snapshots::SnapshotsArgs),
    /// Content blobs
    #[command(subcommand)]
    Content(content::Command),
    /// Leases, and the garbage collector (`leases gc`)
    #[command(subcommand)]
    Leases(leases::Command),
    /// Follow events, or list stored ones with `events ls`
    Events(events::EventsArgs),
    /// Print client and daemon versions
    Version,
    /// Print the daemon's system information
    Info,
    /// Show containers with their task (status, network address, published ports) as JSON
    Inspect {
        /// Container ids
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Call any method with raw JSON params
    Call(call::CallArgs),
    /// Print a shell completion script (bash's also completes ids and names from the
    /// running daemon)
    Completion {
        /// The shell to write the script for
        #[arg(value_enum)]
        shell: Shell,
    },
    /// berth(1), the man page (roff), for `make install`
    #[command(name = "__man", hide = true)]
    Man,
    /// The candidates a completion script offers, one per line; nothing if berthd is down
    #[command(name = "__complete", hide = true)]
    Complete {
        /// What to list: containers, tasks, images, namespaces or networks
        #[arg(value_enum)]
        kind: complete::Kind,
    },
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are not errors; a usage error is berth's own, so 125 as
        // docker's: never mistaken for a container's exit status.
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(BERTH_ERROR);
        }
    };
    let ctx = Ctx {
        socket: cli.socket,
        namespace: cli.namespace,
        json: cli.json,
    };
    let outcome = match cli.command {
        Command::Run(args) => return exit_with(run::run(&ctx, *args)),
        Command::Tasks(command) => return exit_with(tasks::run(&ctx, command)),
        Command::Namespaces(command) => namespaces::run(&ctx, command),
        Command::Network(command) => networks::run(&ctx, command),
        Command::Containers(command) => containers::run(&ctx, command),
        Command::Images(command) => images::run(&ctx, command),
        Command::Snapshots(args) => snapshots::run(&ctx, args),
        Command::Content(command) => content::run(&ctx, command),
        Command::Leases(command) => leases::run(&ctx, command),
        Command::Events(args) => events::run(&ctx, args),
        Command::Logs(args) => logs::run(&ctx, args),
        Command::Ps(args) => ps::run(&ctx, args),
        Command::Start(args) => return exit_with(lifecycle::start(&ctx, args)),
        Command::Attach(args) => return exit_with(attach::run(&ctx, args)),
        Command::Stop(args) => lifecycle::stop(&ctx, args),
        Command::Restart(args) => lifecycle::restart(&ctx, args),
        Command::Rm(args) => lifecycle::rm(&ctx, args),
        Command::Version => system::version(&ctx),
        Command::Info => system::info(&ctx),
        Command::Inspect { ids } => ps::inspect(&ctx, &ids),
        Command::Call(args) => call::run(&ctx, args),
        Command::Completion { shell } => {
            complete::script(shell, &mut Cli::command());
            Ok(())
        }
        Command::Complete { kind } => complete::candidates(&ctx, kind),
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .map_err(Into::into),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The exit status of a failure of berth itself or of berthd (usage, daemon down, image
/// not found, runc failed), as docker's 125: distinct from any status a container's
/// process commonly exits with.
const BERTH_ERROR: u8 = 125;

/// Commands that run a process exit with its status (128+N for a signal), or with
/// [`BERTH_ERROR`] when berth or berthd failed before there was one.
fn exit_with(outcome: anyhow::Result<i32>) -> ExitCode {
    match outcome {
        Ok(status) => ExitCode::from(u8::try_from(status).unwrap_or(255)),
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::from(failure_status(&e))
        }
    }
}

/// docker's statuses for a command that could not run: 127 when it is not found, 126 when
/// it cannot be executed (berthd says which in `data.reason`); otherwise [`BERTH_ERROR`].
fn failure_status(e: &anyhow::Error) -> u8 {
    let reason = e
        .chain()
        .find_map(|c| match c.downcast_ref::<rpc::RpcError>() {
            Some(rpc::RpcError::Daemon { data, .. }) => data["reason"].as_str().map(str::to_owned),
            _ => None,
        });
    match reason.as_deref() {
        Some("command_not_found") => 127,
        Some("command_not_executable") => 126,
        _ => BERTH_ERROR,
    }
}

/// Rust ignores SIGPIPE, which turns `berth c ls | head` into a panic on the next write;
/// a command-line tool should just stop, as ctr does.
fn restore_sigpipe() {
    // SAFETY: called first thing in main, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE and no Rust code relies on SIGPIPE being ignored here.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag and positional of every command says what it is in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && !arg.is_hide_set() && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "berth", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:#?}");
    }

    #[test]
    fn usage_errors_are_caught_by_the_parser() {
        let parse = |argv: &[&str]| Cli::try_parse_from(argv).map(|_| ());
        assert!(parse(&["berth", "c", "update", "web"]).is_err());
        assert!(parse(&["berth", "c", "update", "web", "--image", "b"]).is_ok());
        assert!(parse(&["berth", "-n", "dev", "ns", "rm"]).is_err());
        assert!(parse(&["berth", "c", "label", "web", "nokey"]).is_err());
    }
}
