//! The process flags `berth run` and `berth containers create` share: they become the
//! `spec_options` the daemon (or, for `run --rootfs`, the client) builds the OCI spec from.

use clap::Args;

use crate::args::{parse_mount, parse_tmpfs, parse_volume};

#[derive(Args, Debug, Clone, Default)]
pub struct ProcessArgs {
    /// Environment variable KEY=VALUE for the process (repeatable)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory of the process
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// User (name, uid or uid:gid) of the process
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Allocate a terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Share the host's network namespace
    #[arg(long)]
    pub net_host: bool,
    /// Mount the rootfs read-only
    #[arg(long)]
    pub readonly: bool,
    /// Extra mount: type=bind,src=/a,dst=/b,options=rbind:ro (repeatable)
    #[arg(long = "mount", value_name = "SPEC", value_parser = parse_mount)]
    pub mounts: Vec<String>,
    /// Bind mount HOST:CTR[:ro|rw]; a relative HOST is taken from the current directory (repeatable)
    #[arg(short = 'v', long = "volume", value_name = "HOST:CTR[:ro|rw]", value_parser = parse_volume)]
    pub volumes: Vec<String>,
    /// Mount a tmpfs at CTR, with comma-separated mount options (repeatable)
    #[arg(long, value_name = "CTR[:OPTS]", value_parser = parse_tmpfs)]
    pub tmpfs: Vec<String>,
    /// Hostname inside the container
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
}

impl ProcessArgs {
    /// `--mount`, `-v` and `--tmpfs` flags, all in `--mount` syntax, in that order.
    pub fn all_mounts(&self) -> Vec<String> {
        let mut all = self.mounts.clone();
        all.extend(self.volumes.iter().cloned());
        all.extend(self.tmpfs.iter().cloned());
        all
    }

    /// The spec options for `command`, with `env_first` (e.g. an env file) before `--env`.
    pub fn spec_options(
        &self,
        command: Vec<String>,
        env_first: Vec<String>,
    ) -> schema::spec::SpecOptions {
        let mut env = env_first;
        env.extend(self.env.iter().cloned());
        schema::spec::SpecOptions {
            args: command,
            env,
            cwd: self.cwd.clone(),
            user: self.user.clone(),
            tty: self.tty,
            net_host: self.net_host,
            readonly: self.readonly,
            mounts: self.all_mounts(),
            hostname: self.hostname.clone(),
        }
    }
}
