//! The OCI runtime spec berth gives a container created from an image: the defaults of
//! containerd's 2017 `ctr run` (the seed), the caller's [`SpecOptions`] applied on top,
//! and `--runtime-config`-style whole specs ([`custom_spec`]).
//!
//! Pure data in, data out: no filesystem access and no async. Whatever the builder needs
//! from the image rootfs (`/etc/passwd`, `/etc/group`) the caller reads and passes in as
//! [`EtcFiles`], so the module is shared by the client and the daemon.

mod defaults;
mod mount;
mod privileges;
mod user;

#[cfg(test)]
mod runc_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use oci_spec::runtime::{
    LinuxBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use mount::parse_mount;
pub use privileges::{DeviceOption, ALL_CAPABILITIES, INIT_IN_CONTAINER};

/// `root.path` of every spec berth builds or accepts: the bundle's `rootfs` directory,
/// where the daemon mounts the container's snapshot.
pub const ROOTFS_PATH: &str = "rootfs";

/// The `PATH` every process starts with, before the image's own `Env`.
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Annotation key naming the image a spec was built from (the seed's `annotations["image"]`).
pub const IMAGE_ANNOTATION: &str = "image";

/// What a `containers.create` caller may change in the default spec (the wire
/// `spec_options`). Every field is optional on the wire; unknown fields are rejected so a
/// misspelt option is an error rather than silently ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SpecOptions {
    /// Replaces the image's `Cmd` when non-empty; the image's `Entrypoint` still comes first.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries applied after the image's `Env`, overriding same-named keys.
    pub env: Vec<String>,
    /// Replaces the image's `WorkingDir`; must be absolute.
    pub cwd: Option<String>,
    /// Replaces the image's `User`; same forms (`uid`, `name`, `uid:gid`, `name:group`, ...).
    pub user: Option<String>,
    /// Gives the process a terminal and `TERM=xterm`.
    pub tty: bool,
    /// Shares the host's network namespace instead of creating one.
    pub net_host: bool,
    /// Mounts the rootfs read-only.
    pub readonly: bool,
    /// Extra mounts in `ctr --mount` syntax (see [`parse_mount`]), after the defaults.
    pub mounts: Vec<String>,
    /// Defaults to the container id.
    pub hostname: Option<String>,
    /// Memory limit in bytes (`--memory`); the kernel's OOM killer acts beyond it.
    pub memory_limit: Option<u64>,
    /// CPU limit in billionths of a CPU (`--cpus 1.5` is 1500000000), as docker's NanoCpus.
    pub nano_cpus: Option<u64>,
    /// Every capability, every device allowed, no masked paths, writable /sys.
    pub privileged: bool,
    /// Capabilities added to the default set (`NET_ADMIN` or `CAP_NET_ADMIN`; `ALL`). A
    /// non-root user holds only these (effective, permitted and ambient); root holds the
    /// whole set.
    pub cap_add: Vec<String>,
    /// Capabilities dropped from it (`ALL` drops every one before `cap_add`).
    pub cap_drop: Vec<String>,
    /// Host devices, resolved by the caller.
    pub devices: Vec<DeviceOption>,
    /// Host path of a static init (tini) run as PID 1 before the command: it forwards
    /// signals and reaps zombies.
    pub init: Option<String>,
}

/// Contents of the image rootfs's `/etc/passwd` and `/etc/group`, read by the caller;
/// `None` when the image has no such file. Only consulted when USER names a user or group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcFiles {
    pub passwd: Option<String>,
    pub group: Option<String>,
}

/// Why no spec could be produced; each message names the offending value.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Nothing to run: runc would reject a process without args anyway.
    #[error("container \"{id}\": no command to run: image \"{image}\" has no Entrypoint or Cmd and no args were given")]
    NoArgs { id: String, image: String },
    /// An environment entry the caller gave without `=`.
    #[error("env entry \"{0}\" is not KEY=VALUE")]
    EnvEntry(String),
    /// The runtime spec requires an absolute `process.cwd`.
    #[error("working directory \"{0}\" is not an absolute path")]
    RelativeCwd(String),
    /// A USER value that is malformed or names an unknown user or group.
    #[error("USER \"{value}\": {reason}")]
    User { value: String, reason: String },
    /// A `--mount` value that is malformed.
    #[error("mount \"{value}\": {reason}")]
    Mount { value: String, reason: String },
    /// A `--runtime-config` document that is not a runtime spec.
    #[error("runtime config is not a valid OCI runtime spec: {0}")]
    CustomSpec(#[source] serde_json::Error),
    /// A capability name Linux does not have.
    #[error("capability \"{0}\" does not exist (e.g. NET_ADMIN or CAP_NET_ADMIN)")]
    Capability(String),
    /// A device option that cannot be given.
    #[error("device \"{path}\": {reason}")]
    Device { path: String, reason: String },
    /// A resource limit or the init that cannot be given.
    #[error("{what}: {reason}")]
    Resource { what: &'static str, reason: String },
    /// An oci-spec builder refused a value.
    #[error("building the OCI runtime spec: {0}")]
    Build(#[from] oci_spec::OciSpecError),
}

/// Builds the spec of container `id` from image `image_ref` (whose config is `config`,
/// `None` for an image without one), as the seed's `ctr run` does, with `opts` applied.
///
/// Deliberate differences from the seed, all pinned by tests:
/// - env: `PATH`, then the image's `Env`, then `TERM=xterm` if `tty`, then `opts.env`;
///   a later entry with the same key replaces the earlier one *in place* (Docker's rule),
///   so the caller beats `tty`, which beats the image. The seed appended duplicates.
/// - USER accepts names looked up in `etc` as well as decimal ids (see `user`).
/// - `linux.maskedPaths`/`readonlyPaths` carry oci-spec's defaults (`/proc/kcore`,
///   `/proc/sys`, ...): hardening the seed lacked and runc supports. Nothing else from
///   `Spec::default()` is kept (no cgroup namespace, no explicit `linux.devices`; runc adds
///   its standard device nodes and allow-rules after the seed's deny-all rule itself).
/// - capabilities: the seed's fourteen in bounding, and in effective and permitted for
///   root only; inheritable and ambient empty unless a non-root user is given `cap_add`
///   (see `privileges::capability_sets`). The seed's ambient set let `-u 1000` keep them all.
/// - No `platform` object: runtime-spec 1.0 removed it and oci-spec 0.8 has no such field.
pub fn build(
    id: &str,
    image_ref: &str,
    config: Option<&oci_spec::image::Config>,
    opts: &SpecOptions,
    etc: &EtcFiles,
) -> Result<Spec, SpecError> {
    let image_list = |field: Option<&Vec<String>>| field.cloned().unwrap_or_default();
    let image_str = |field: Option<&String>| field.filter(|s| !s.is_empty()).cloned();

    let mut env = vec![DEFAULT_PATH_ENV.to_owned()];
    env.extend(image_list(config.and_then(|c| c.env().as_ref())));
    if opts.tty {
        env.push("TERM=xterm".to_owned());
    }
    for entry in &opts.env {
        if !entry.contains('=') {
            return Err(SpecError::EnvEntry(entry.clone()));
        }
        env.push(entry.clone());
    }
    let env = merge_env(env);

    let mut args = Vec::new();
    if opts.init.is_some() {
        args.extend([privileges::INIT_IN_CONTAINER.to_owned(), "--".to_owned()]);
    }
    args.extend(image_list(config.and_then(|c| c.entrypoint().as_ref())));
    if opts.args.is_empty() {
        args.extend(image_list(config.and_then(|c| c.cmd().as_ref())));
    } else {
        args.extend(opts.args.iter().cloned());
    }
    if args.len() == usize::from(opts.init.is_some()) * 2 {
        return Err(SpecError::NoArgs {
            id: id.to_owned(),
            image: image_ref.to_owned(),
        });
    }

    let cwd = non_empty(opts.cwd.as_ref())
        .cloned()
        .or_else(|| image_str(config.and_then(|c| c.working_dir().as_ref())))
        .unwrap_or_else(|| "/".to_owned());
    if !cwd.starts_with('/') {
        return Err(SpecError::RelativeCwd(cwd));
    }

    let user = match non_empty(opts.user.as_ref())
        .cloned()
        .or_else(|| image_str(config.and_then(|c| c.user().as_ref())))
    {
        Some(value) => user::resolve(&value, etc)?,
        None => user::root(),
    };

    let caps = privileges::capability_sets(opts, user.uid())?;
    let process = ProcessBuilder::default()
        .terminal(opts.tty)
        .user(user)
        .args(args)
        .env(env)
        .cwd(cwd)
        .no_new_privileges(true)
        .capabilities(caps)
        .rlimits(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .hard(1024u64)
            .soft(1024u64)
            .build()?])
        .build()?;

    let mut mounts = defaults::mounts()?;
    if opts.privileged {
        privileges::writable_sysfs(&mut mounts);
    }
    if let Some(init) = non_empty(opts.init.as_ref()) {
        mounts.push(privileges::init_mount(init)?);
    }
    for flag in &opts.mounts {
        mounts.push(parse_mount(flag)?);
    }

    let (masked, readonly) = if opts.privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            oci_spec::runtime::get_default_maskedpaths(),
            oci_spec::runtime::get_default_readonly_paths(),
        )
    };
    let mut linux = LinuxBuilder::default()
        .resources(privileges::resources(opts)?)
        .namespaces(defaults::namespaces(opts.net_host)?)
        .masked_paths(masked)
        .readonly_paths(readonly);
    let devices = privileges::devices(opts)?;
    if !devices.is_empty() {
        linux = linux.devices(devices);
    }
    let linux = linux.build()?;

    // sethostname(2) refuses more than HOST_NAME_MAX (64) bytes; ids may be 76 chars.
    let hostname = non_empty(opts.hostname.as_ref())
        .map_or_else(|| id.get(..HOST_NAME_MAX).unwrap_or(id), String::as_str);
    let mut spec = SpecBuilder::default()
        .version(oci_spec::runtime::VERSION)
        .root(
            RootBuilder::default()
                .path(ROOTFS_PATH)
                .readonly(opts.readonly)
                .build()?,
        )
        .process(process)
        .mounts(mounts)
        .hostname(hostname)
        .linux(linux)
        .build()?;
    annotate_image(&mut spec, image_ref);
    Ok(spec)
}

/// A USER value (`uid`, `name`, `uid:gid`, `name:group`) as the process user, names
/// looked up in `etc` (`exec --user`, in a running container's files).
pub fn resolve_user(value: &str, etc: &EtcFiles) -> Result<oci_spec::runtime::User, SpecError> {
    user::resolve(value, etc)
}

/// The longest hostname the kernel accepts (`HOST_NAME_MAX`).
const HOST_NAME_MAX: usize = 64;

/// Parses a whole runtime spec (the seed's `--runtime-config`) and points `root.path` at
/// [`ROOTFS_PATH`], because the daemon always mounts the rootfs there; `root.readonly` is
/// kept (absent means writable, as in the seed). Nothing else is checked or changed: the caller took responsibility for the spec.
pub fn custom_spec(json: &str) -> Result<Spec, SpecError> {
    let mut spec: Spec = serde_json::from_str(json).map_err(SpecError::CustomSpec)?;
    // Explicit, because oci-spec's Root builder would fill in `readonly: true`.
    let readonly = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    let root = RootBuilder::default()
        .path(ROOTFS_PATH)
        .readonly(readonly)
        .build()?;
    spec.set_root(Some(root));
    Ok(spec)
}

/// Records the image a spec came from, as the seed does for built and custom specs alike;
/// `containers.list` filters and humans read it back.
pub fn annotate_image(spec: &mut Spec, image_ref: &str) {
    let annotations = spec.annotations_mut().get_or_insert_with(HashMap::new);
    annotations.insert(IMAGE_ANNOTATION.to_owned(), image_ref.to_owned());
}

/// Later entries override earlier ones with the same key, keeping the first one's position.
/// An entry without `=` is its own key (images occasionally carry such entries).
fn merge_env(entries: Vec<String>) -> Vec<String> {
    let mut merged: Vec<String> = Vec::with_capacity(entries.len());
    let mut index: HashMap<String, usize> = HashMap::new();
    for entry in entries {
        let key = entry.split_once('=').map_or(entry.as_str(), |(k, _)| k);
        match index.get(key) {
            Some(&i) => merged[i].clone_from(&entry),
            None => {
                index.insert(key.to_owned(), merged.len());
                merged.push(entry);
            }
        }
    }
    merged
}

/// Empty strings on the wire mean "not given", like absent fields.
fn non_empty(value: Option<&String>) -> Option<&String> {
    value.filter(|s| !s.is_empty())
}
