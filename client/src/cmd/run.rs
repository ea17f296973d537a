//! `berth run [flags] IMAGE|--rootfs DIR ID [COMMAND ARGS...]`: create a container, run
//! its task attached to this terminal, and exit with the task's status, like `ctr run`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::{json, Map, Value};

use super::process::ProcessArgs;
use super::tasks::session::{attach_and_wait, Fifos, Target};
use super::{put, Ctx};
use crate::args::{labels_object, parse_label};

#[derive(Args)]
pub struct RunArgs {
    /// Delete the container (not only the task) when the task exits
    #[arg(long)]
    pub rm: bool,
    /// Start the task and return at once, without attaching
    #[arg(short, long)]
    pub detach: bool,
    /// Keep stdin attached (docker's -i). An attached run always forwards stdin to the
    /// task, so this only lets docker's `-it` mean what it means there
    #[arg(short, long)]
    pub interactive: bool,
    /// Read environment variables from a file (one KEY=VALUE a line)
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Label the container (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// The network to join: a name (`berth network ls`; berth0 is built in), host, or none
    /// (the default: a network namespace with loopback only, unless berthd sets
    /// default_network)
    #[arg(long, value_name = "NAME|host|none")]
    pub network: Option<String>,
    /// Publish a container port on the host: [IP:]HOST:CONTAINER[/tcp|udp] (repeatable;
    /// without --network the task joins berth0)
    #[arg(short = 'p', long = "publish", value_name = "[IP:]HOST:CTR[/PROTO]",
          value_parser = parse_publish)]
    pub publish: Vec<schema::PortMapping>,
    #[command(flatten)]
    pub process: ProcessArgs,
    /// Runtime name (the daemon maps it to a binary; default runc)
    #[arg(long, value_name = "NAME")]
    pub runtime: Option<String>,
    /// A whole OCI runtime spec (JSON) instead of the built one
    #[arg(long, value_name = "FILE")]
    pub runtime_config: Option<PathBuf>,
    /// Use this host directory as the rootfs instead of an image
    #[arg(long, value_name = "DIR")]
    pub rootfs: Option<PathBuf>,
    /// IMAGE ID [COMMAND ARGS...], or with --rootfs: ID [COMMAND ARGS...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE|ID"
    )]
    pub words: Vec<String>,
}

fn parse_publish(s: &str) -> Result<schema::PortMapping, String> {
    schema::parse_port(s)
}

/// The positional words split into image, id and command.
fn split_words(args: &RunArgs) -> anyhow::Result<(String, String, Vec<String>)> {
    // clap hands every word from the first one it does not know to `words`, so an unknown
    // flag before IMAGE would otherwise become the image or the id (`-p 8080:80`).
    if let Some(flag) = args.words.first().filter(|w| w.starts_with('-')) {
        anyhow::bail!(
            "unknown flag {flag:?} for `berth run` (it comes before IMAGE, so it is not \
             the container's); see `berth run --help`"
        );
    }
    let mut words = args.words.iter().cloned();
    let image = match args.rootfs {
        Some(_) => String::new(),
        None => words.next().unwrap_or_default(),
    };
    let id = words
        .next()
        .context("give a container id (berth run IMAGE ID or berth run --rootfs DIR ID)")?;
    Ok((image, id, words.collect()))
}

/// Variables from `--env-file` (one KEY=VALUE a line; blank lines and # comments skipped).
fn env_file(args: &RunArgs) -> anyhow::Result<Vec<String>> {
    let Some(path) = &args.env_file else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read env file {}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect())
}

fn spec_options(args: &RunArgs, command: Vec<String>) -> anyhow::Result<schema::spec::SpecOptions> {
    let mut options = args.process.spec_options(command, env_file(args)?)?;
    if args.network.as_deref() == Some("host") {
        options.net_host = true;
    }
    Ok(options)
}

/// `containers.create` params: a whole spec for --rootfs or --runtime-config, otherwise
/// the image with spec_options for the daemon to build from.
pub fn create_params(args: &RunArgs) -> anyhow::Result<(String, Value)> {
    let (image, id, command) = split_words(args)?;
    let options = spec_options(args, command)?;
    let mut container = Map::new();
    container.insert("id".into(), id.clone().into());
    put(&mut container, "image", image.clone());
    let mut labels = args.labels.clone();
    if let Some(net) = &args.network {
        labels.push((schema::NETWORK_LABEL.to_owned(), net.clone()));
    }
    if !args.publish.is_empty() {
        let ports: Vec<String> = args.publish.iter().map(schema::port_text).collect();
        labels.push((schema::PORTS_LABEL.to_owned(), ports.join(",")));
    }
    put(&mut container, "labels", labels_object(&labels));
    if let Some(name) = &args.runtime {
        container.insert("runtime".into(), json!({ "name": name }));
    }
    let spec = match (&args.runtime_config, &args.rootfs) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read runtime config {}", path.display()))?;
            Some(serde_json::to_value(schema::spec::custom_spec(&text)?)?)
        }
        (None, Some(dir)) => {
            let etc = schema::spec::EtcFiles {
                passwd: std::fs::read_to_string(dir.join("etc/passwd")).ok(),
                group: std::fs::read_to_string(dir.join("etc/group")).ok(),
            };
            Some(serde_json::to_value(schema::spec::build(
                &id, &image, None, &options, &etc,
            )?)?)
        }
        (None, None) => None,
    };
    let mut params = Map::new();
    match spec {
        Some(mut spec) => {
            if let Some(dir) = &args.rootfs {
                let dir = std::fs::canonicalize(dir)
                    .with_context(|| format!("rootfs {}", dir.display()))?;
                spec["root"]["path"] = json!(dir);
            }
            container.insert("spec".into(), spec);
        }
        None => {
            params.insert("spec_options".into(), serde_json::to_value(&options)?);
        }
    }
    params.insert("container".into(), Value::Object(container));
    Ok((id, Value::Object(params)))
}

/// Runs the command; the result is the exit status berth should exit with.
pub fn run(ctx: &Ctx, args: RunArgs) -> anyhow::Result<i32> {
    let (id, params) = create_params(&args)?;
    let mut client = ctx.connect()?;
    client.call("containers.create", params)?;
    let detach = args.detach.then_some(Detached {
        auto_remove: args.rm,
    });
    let status = run_task(ctx, &mut client, &id, args.process.tty, detach, args.rm);
    if args.rm && (!args.detach || status.is_err()) {
        // Detached, berthd removes it once the task exits; a task that never started
        // (or a create that failed) would leave it, so the client does.
        if args.detach {
            let _ = client.call("tasks.delete", json!({ "container_id": id, "force": true }));
        }
        let removed = client.call("containers.delete", json!({ "id": id }));
        if status.is_ok() {
            removed?;
        }
    }
    status
}

/// How a detached task is run.
pub struct Detached {
    /// berthd removes the task and the container once it exits (`--rm -d`).
    pub auto_remove: bool,
}

/// Creates and starts the task of container `id`; attached, waits for it and deletes
/// the task (ctr's `run` and `tasks start`); detached, prints the id and returns.
/// `remove_if_cut_off`: attached, the caller removes the container afterwards (`run --rm`).
pub fn run_task(
    ctx: &Ctx,
    client: &mut crate::rpc::Client,
    id: &str,
    tty: bool,
    detach: Option<Detached>,
    remove_if_cut_off: bool,
) -> anyhow::Result<i32> {
    if let Some(d) = detach {
        // Created and started in one call: one runc execution (`runc run --detach`).
        let mut p = json!({ "container_id": id, "terminal": tty, "start": true });
        if d.auto_remove {
            p["auto_remove"] = json!(true);
        }
        client.call("tasks.create", p)?;
        println!("{id}");
        return Ok(0);
    }
    let fifos = Fifos::new(id, tty)?;
    let mut p = fifos.params();
    p["container_id"] = json!(id);
    p["terminal"] = json!(tty);
    if remove_if_cut_off {
        // This client removes the container once the task ends, or if the create fails;
        // berthd does if a crash cuts the create off (this client then gets no answer).
        p["remove_if_cut_off"] = json!(true);
    }
    // Started by the create: what it writes first waits in the FIFOs (berthd and the keeper
    // hold their other ends) until the session below reads them, and its exit is kept for
    // the wait, so nothing is lost to the missing gap between create and start.
    p["start"] = json!(true);
    client.call("tasks.create", p)?;
    let target = Target {
        container_id: id.to_owned(),
        exec_id: String::new(),
    };
    let status = attach_and_wait(ctx, client, &target, &fifos, tty, |_| Ok(()));
    let deleted = client.call("tasks.delete", json!({ "container_id": id, "force": true }));
    let status = status?;
    deleted?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Harness {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(line: &[&str]) -> RunArgs {
        let argv = std::iter::once("run").chain(line.iter().copied());
        Harness::try_parse_from(argv)
            .map(|h| h.run)
            .expect("parses")
    }

    #[test]
    fn image_form_sends_spec_options() {
        let args = parse(&["--rm", "-e", "A=1", "busybox", "web", "sh", "-c", "exit 3"]);
        let (id, p) = create_params(&args).expect("params");
        assert_eq!(id, "web");
        assert_eq!(p["container"]["image"], "busybox");
        assert_eq!(p["spec_options"]["args"], json!(["sh", "-c", "exit 3"]));
        assert_eq!(p["spec_options"]["env"], json!(["A=1"]));
        assert!(p["container"].get("spec").is_none());
    }

    #[test]
    fn docker_s_it_is_a_terminal_with_stdin_and_an_unknown_flag_is_named() {
        let args = parse(&["--rm", "-it", "busybox", "demo", "sh"]);
        assert!(args.interactive && args.process.tty && args.rm);
        let (image, id, command) = split_words(&args).expect("words");
        assert_eq!((image.as_str(), id.as_str()), ("busybox", "demo"));
        assert_eq!(command, ["sh"]);
        let err = split_words(&parse(&["--rm", "-xt", "busybox", "demo"])).expect_err("-x");
        let msg = err.to_string();
        assert!(
            msg.contains("\"-xt\"") && msg.contains("before IMAGE"),
            "{msg}"
        );
    }

    #[test]
    fn rootfs_form_sends_a_built_spec_rooted_at_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf8");
        let args = parse(&["--rootfs", d, "--readonly", "web", "echo", "-n", "hi"]);
        let (id, p) = create_params(&args).expect("params");
        assert_eq!(id, "web");
        let spec = &p["container"]["spec"];
        assert_eq!(spec["root"]["path"], json!(d));
        assert_eq!(spec["root"]["readonly"], json!(true));
        assert_eq!(spec["process"]["args"], json!(["echo", "-n", "hi"]));
        assert!(p.get("spec_options").is_none());
    }
}
