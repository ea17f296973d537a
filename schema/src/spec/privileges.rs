//! What `run`'s privilege and resource flags (ctr's and docker's) change in the spec:
//! capabilities added and dropped or all of them (`--privileged`), host devices,
//! memory and CPU limits, and a tiny init as PID 1. Pure data, as the rest of the builder:
//! the caller resolves host paths (a device's numbers, the init binary) and passes them in.

use oci_spec::runtime::{
    Capabilities, Capability, LinuxCapabilities, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType,
    LinuxMemoryBuilder, LinuxResources, LinuxResourcesBuilder, Mount, MountBuilder,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{defaults, SpecError, SpecOptions};

/// Where the init given with `init` is mounted: on the container's /dev tmpfs, so it needs
/// nothing of the image's tree (a read-only rootfs included) and hides nothing in it.
pub const INIT_IN_CONTAINER: &str = "/dev/berth-init";

/// Every capability Linux defines (6.x), for `--privileged` and `--cap-add ALL`.
pub const ALL_CAPABILITIES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A host device given to the container (`--device HOST[:CTR][:PERMS]`), with the numbers
/// the caller read from the host's node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceOption {
    /// Its path in the container.
    pub path: String,
    /// `c` (character) or `b` (block).
    pub kind: String,
    pub major: i64,
    pub minor: i64,
    /// Cgroup access: some of `r`, `w`, `m` (default `rwm`).
    #[serde(default = "rwm")]
    pub access: String,
    /// The node's permission bits (default 0666 as runc's).
    #[serde(default)]
    pub file_mode: Option<u32>,
}

fn rwm() -> String {
    "rwm".to_owned()
}

/// `CAP_NET_ADMIN`, `net_admin` or `NET_ADMIN` as the capability.
fn capability(name: &str) -> Result<Capability, SpecError> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    serde_json::from_value(serde_json::Value::String(full))
        .map_err(|_| SpecError::Capability(name.to_owned()))
}

/// The capability set: the seed's, or every one with `privileged`; then `cap_drop`
/// (`ALL` empties it) and `cap_add` (`ALL` fills it), as docker applies them.
pub(super) fn capabilities(opts: &SpecOptions) -> Result<Capabilities, SpecError> {
    let all = || -> Result<Capabilities, SpecError> {
        ALL_CAPABILITIES.iter().map(|c| capability(c)).collect()
    };
    let mut caps = if opts.privileged {
        all()?
    } else {
        defaults::capabilities()
    };
    for name in &opts.cap_drop {
        if name.eq_ignore_ascii_case("ALL") {
            caps.clear();
        } else {
            caps.remove(&capability(name)?);
        }
    }
    for name in &opts.cap_add {
        if name.eq_ignore_ascii_case("ALL") {
            caps.extend(all()?);
        } else {
            caps.insert(capability(name)?);
        }
    }
    Ok(caps)
}

/// The process's five capability sets for a process running as `uid` (podman's rules):
///
/// - bounding: [`capabilities`], whoever the user is;
/// - root: effective and permitted are the same set; inheritable and ambient are empty;
/// - any other user: effective, permitted, inheritable and ambient hold only what `cap_add`
///   names (all of them with `ALL`), so `-u 1000` alone ends with CapEff 0 and
///   `-u 1000 --cap-add NET_BIND_SERVICE` keeps exactly that one across execve.
///
/// The seed put its whole default set in every set, ambient included, and ambient
/// capabilities survive execve for a non-root user: `-u 1000` kept CAP_CHOWN,
/// CAP_DAC_OVERRIDE, CAP_SETUID and the rest, so it dropped no privilege (issue 31).
/// `privileged` fills the bounding set only; it grants a non-root user nothing.
pub(super) fn capability_sets(
    opts: &SpecOptions,
    uid: u32,
) -> Result<LinuxCapabilities, SpecError> {
    let bounding = capabilities(opts)?;
    let (granted, inherited) = if uid == 0 {
        (bounding.clone(), Capabilities::new())
    } else {
        let mut added = Capabilities::new();
        for name in &opts.cap_add {
            if name.eq_ignore_ascii_case("ALL") {
                for c in ALL_CAPABILITIES {
                    added.insert(capability(c)?);
                }
            } else {
                added.insert(capability(name)?);
            }
        }
        (added.clone(), added)
    };
    Ok(LinuxCapabilitiesBuilder::default()
        .bounding(bounding)
        .effective(granted.clone())
        .permitted(granted)
        .inheritable(inherited.clone())
        .ambient(inherited)
        .build()?)
}

fn device_type(d: &DeviceOption) -> Result<LinuxDeviceType, SpecError> {
    match d.kind.as_str() {
        "c" => Ok(LinuxDeviceType::C),
        "b" => Ok(LinuxDeviceType::B),
        other => Err(SpecError::Device {
            path: d.path.clone(),
            reason: format!("kind {other:?} is neither \"c\" nor \"b\""),
        }),
    }
}

/// The device nodes runc creates in the container.
pub(super) fn devices(opts: &SpecOptions) -> Result<Vec<LinuxDevice>, SpecError> {
    opts.devices
        .iter()
        .map(|d| {
            if !d.path.starts_with('/') || d.path.split('/').any(|c| c == "..") {
                return Err(SpecError::Device {
                    path: d.path.clone(),
                    reason: "the path in the container must be absolute, without ..".into(),
                });
            }
            if d.access.is_empty() || !d.access.chars().all(|c| "rwm".contains(c)) {
                return Err(SpecError::Device {
                    path: d.path.clone(),
                    reason: format!("access {:?} is not made of r, w and m", d.access),
                });
            }
            let mut b = LinuxDeviceBuilder::default()
                .path(d.path.clone())
                .typ(device_type(d)?)
                .major(d.major)
                .minor(d.minor);
            if let Some(mode) = d.file_mode {
                b = b.file_mode(mode);
            }
            Ok(b.build()?)
        })
        .collect()
}

/// The cgroup's device rules (deny all, or allow all when privileged, then each given
/// device), memory limit and CPU quota.
pub(super) fn resources(opts: &SpecOptions) -> Result<LinuxResources, SpecError> {
    let mut rules: Vec<LinuxDeviceCgroup> = vec![if opts.privileged {
        LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rwm")
            .build()?
    } else {
        defaults::deny_all_devices()?
    }];
    for d in &opts.devices {
        rules.push(
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(device_type(d)?)
                .major(d.major)
                .minor(d.minor)
                .access(d.access.clone())
                .build()?,
        );
    }
    let mut b = LinuxResourcesBuilder::default().devices(rules);
    if let Some(bytes) = opts.memory_limit {
        let limit = i64::try_from(bytes).map_err(|_| SpecError::Resource {
            what: "memory_limit",
            reason: format!("{bytes} bytes is too large"),
        })?;
        if limit < 6 << 20 {
            return Err(SpecError::Resource {
                what: "memory_limit",
                reason: format!("{bytes} bytes is below the 6 MiB a container needs"),
            });
        }
        // Swap included (runc's `swap` is memory + swap): the limit is what the task gets.
        let memory = LinuxMemoryBuilder::default()
            .limit(limit)
            .swap(limit)
            .build()?;
        b = b.memory(memory);
    }
    if let Some(nano) = opts.nano_cpus {
        const PERIOD: u64 = 100_000;
        let quota = (u128::from(nano) * u128::from(PERIOD) / 1_000_000_000) as i64;
        if quota < 1000 {
            return Err(SpecError::Resource {
                what: "nano_cpus",
                reason: format!("{nano} is below 0.01 CPU"),
            });
        }
        b = b.cpu(
            LinuxCpuBuilder::default()
                .period(PERIOD)
                .quota(quota)
                .build()?,
        );
    }
    Ok(b.build()?)
}

/// `--privileged` makes /sys and the cgroup filesystem writable, as ctr's does.
pub(super) fn writable_sysfs(mounts: &mut [Mount]) {
    for m in mounts.iter_mut() {
        let sys = m.destination().starts_with("/sys");
        if let (true, Some(options)) = (sys, m.options().clone()) {
            m.set_options(Some(options.into_iter().filter(|o| o != "ro").collect()));
        }
    }
}

/// The init binary at [`INIT_IN_CONTAINER`], read-only.
pub(super) fn init_mount(host: &str) -> Result<Mount, SpecError> {
    if !host.starts_with('/') {
        return Err(SpecError::Resource {
            what: "init",
            reason: format!("{host:?} is not an absolute host path"),
        });
    }
    Ok(MountBuilder::default()
        .destination(INIT_IN_CONTAINER)
        .typ("bind")
        .source(host)
        .options(vec!["rbind".into(), "ro".into(), "nosuid".into()])
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{build, EtcFiles};

    fn spec(opts: serde_json::Value) -> serde_json::Value {
        let mut o: SpecOptions = serde_json::from_value(opts).expect("options");
        if o.args.is_empty() {
            o.args = vec!["sh".into()];
        }
        serde_json::to_value(build("c", "img", None, &o, &EtcFiles::default()).expect("spec"))
            .expect("json")
    }

    fn bounding(s: &serde_json::Value) -> Vec<String> {
        let mut caps: Vec<String> = s["process"]["capabilities"]["bounding"]
            .as_array()
            .expect("caps")
            .iter()
            .map(|c| c.as_str().expect("cap").to_owned())
            .collect();
        caps.sort();
        caps
    }

    #[test]
    fn capabilities_are_added_dropped_and_all_with_privileged() {
        let s = spec(serde_json::json!({"cap_add": ["net_admin"], "cap_drop": ["CAP_CHOWN"]}));
        let caps = bounding(&s);
        assert!(caps.contains(&"CAP_NET_ADMIN".to_owned()), "{caps:?}");
        assert!(!caps.contains(&"CAP_CHOWN".to_owned()), "{caps:?}");
        assert_eq!(caps.len(), 14);
        let s = spec(serde_json::json!({"cap_drop": ["ALL"], "cap_add": ["KILL"]}));
        assert_eq!(bounding(&s), vec!["CAP_KILL"]);
        assert_eq!(
            s["process"]["capabilities"]["effective"],
            serde_json::json!(["CAP_KILL"])
        );
        let s = spec(serde_json::json!({"privileged": true}));
        assert_eq!(bounding(&s).len(), ALL_CAPABILITIES.len());
        assert!(s["linux"]
            .get("maskedPaths")
            .is_none_or(|m| m == &serde_json::json!([])));
        assert_eq!(s["linux"]["resources"]["devices"][0]["allow"], true);
        let sys = s["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["destination"] == "/sys")
            .expect("/sys");
        assert!(!sys["options"]
            .as_array()
            .expect("options")
            .contains(&"ro".into()));
        let o: SpecOptions = serde_json::from_value(serde_json::json!({
            "args": ["sh"], "cap_add": ["NOT_A_CAP"]}))
        .expect("options");
        let err = build("c", "", None, &o, &EtcFiles::default()).expect_err("bad cap");
        assert!(err.to_string().contains("NOT_A_CAP"), "{err}");
    }

    #[test]
    fn limits_devices_and_init_land_where_runc_reads_them() {
        let s = spec(serde_json::json!({
            "memory_limit": 64u64 << 20, "nano_cpus": 1_500_000_000u64,
            "devices": [{"path": "/dev/fuse", "kind": "c", "major": 10, "minor": 229}],
            "init": "/usr/bin/tini-static", "args": ["sleep", "1"]}));
        let r = &s["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["cpu"]["quota"], 150_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["devices"][0]["allow"], false, "deny all first");
        assert_eq!(r["devices"][1]["major"], 10);
        assert_eq!(r["devices"][1]["access"], "rwm");
        assert_eq!(s["linux"]["devices"][0]["path"], "/dev/fuse");
        assert_eq!(s["linux"]["devices"][0]["type"], "c");
        assert_eq!(
            s["process"]["args"],
            serde_json::json!([INIT_IN_CONTAINER, "--", "sleep", "1"])
        );
        let init = s["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["destination"] == INIT_IN_CONTAINER)
            .expect("init mount");
        assert_eq!(init["source"], "/usr/bin/tini-static");
        for (bad, needle) in [
            (
                serde_json::json!({"args": ["sh"], "memory_limit": 1024}),
                "6 MiB",
            ),
            (serde_json::json!({"args": ["sh"], "nano_cpus": 10}), "0.01"),
            (
                serde_json::json!({"args": ["sh"], "devices": [{"path": "dev/x", "kind": "c",
                "major": 1, "minor": 3}]}),
                "absolute",
            ),
            (
                serde_json::json!({"args": ["sh"], "devices": [{"path": "/dev/x", "kind": "c",
                "major": 1, "minor": 3, "access": "rwx"}]}),
                "rwx",
            ),
            (
                serde_json::json!({"args": ["sh"], "init": "tini"}),
                "absolute",
            ),
        ] {
            let o: SpecOptions = serde_json::from_value(bad.clone()).expect("options");
            let err = build("c", "", None, &o, &EtcFiles::default()).expect_err("refused");
            assert!(err.to_string().contains(needle), "{bad}: {err}");
        }
    }
}
