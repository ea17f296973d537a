//! The process flags `berth run` and `berth containers create` share: they become the
//! `spec_options` the daemon (or, for `run --rootfs`, the client) builds the OCI spec from.

use clap::Args;

use crate::args::{parse_mount, parse_tmpfs, parse_volume};
use crate::resources::{parse_cpus, parse_device, parse_size};

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
    /// Memory limit: bytes or 512k, 64m, 1g; the OOM killer acts beyond it
    #[arg(long = "memory", visible_alias = "memory-limit", short_alias = 'm', value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
    /// CPU limit in CPUs, e.g. 0.5 or 2
    #[arg(long, value_name = "N", value_parser = parse_cpus)]
    pub cpus: Option<u64>,
    /// Every capability, every device allowed, no masked paths, a writable /sys
    #[arg(long)]
    pub privileged: bool,
    /// Add a capability (NET_ADMIN, CAP_SYS_PTRACE, ALL; repeatable)
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability (CHOWN, ALL; repeatable)
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Give a host device: HOST[:CTR][:PERMS], PERMS of rwm (repeatable)
    #[arg(long = "device", value_name = "HOST[:CTR][:PERMS]", value_parser = parse_device)]
    pub devices: Vec<schema::spec::DeviceOption>,
    /// Run a tiny init (tini) as PID 1 that forwards signals and reaps zombies
    #[arg(long)]
    pub init: bool,
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
    ) -> anyhow::Result<schema::spec::SpecOptions> {
        let mut env = env_first;
        env.extend(self.env.iter().cloned());
        let init = match self.init {
            true => Some(crate::resources::init_binary()?),
            false => None,
        };
        Ok(schema::spec::SpecOptions {
            args: command,
            env,
            cwd: self.cwd.clone(),
            user: self.user.clone(),
            tty: self.tty,
            net_host: self.net_host,
            readonly: self.readonly,
            mounts: self.all_mounts(),
            hostname: self.hostname.clone(),
            memory_limit: self.memory,
            nano_cpus: self.cpus,
            privileged: self.privileged,
            cap_add: self.cap_add.clone(),
            cap_drop: self.cap_drop.clone(),
            devices: self.devices.clone(),
            init,
        })
    }
}
