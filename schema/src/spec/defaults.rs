//! The seed's fixed defaults: capabilities, mounts, namespaces and the device rule. Kept
//! apart from the builder so a reviewer can hold them against the seed line by line.

use oci_spec::runtime::{
    Capabilities, Capability, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxNamespace,
    LinuxNamespaceBuilder, LinuxNamespaceType, Mount, MountBuilder,
};

use super::SpecError;

/// The seed's 14 capabilities (Docker's 2017 default set), given in all five sets.
pub(super) const CAPABILITIES: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

pub(super) fn capabilities() -> Capabilities {
    CAPABILITIES.into_iter().collect()
}

/// `(destination, type, source, options)` of the seed's mounts, in the seed's order.
pub(super) const MOUNTS: [(&str, &str, &str, &[&str]); 10] = [
    ("/proc", "proc", "proc", &[]),
    (
        "/dev",
        "tmpfs",
        "tmpfs",
        &["nosuid", "strictatime", "mode=755", "size=65536k"],
    ),
    (
        "/dev/pts",
        "devpts",
        "devpts",
        &[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ],
    ),
    (
        "/dev/shm",
        "tmpfs",
        "shm",
        &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    ),
    (
        "/dev/mqueue",
        "mqueue",
        "mqueue",
        &["nosuid", "noexec", "nodev"],
    ),
    (
        "/sys",
        "sysfs",
        "sysfs",
        &["nosuid", "noexec", "nodev", "ro"],
    ),
    (
        "/run",
        "tmpfs",
        "tmpfs",
        &["nosuid", "strictatime", "mode=755", "size=65536k"],
    ),
    (
        "/etc/resolv.conf",
        "bind",
        "/etc/resolv.conf",
        &["rbind", "ro"],
    ),
    ("/etc/hosts", "bind", "/etc/hosts", &["rbind", "ro"]),
    ("/etc/localtime", "bind", "/etc/localtime", &["rbind", "ro"]),
];

pub(super) fn mounts() -> Result<Vec<Mount>, SpecError> {
    MOUNTS
        .iter()
        .map(|&(destination, typ, source, options)| {
            let mut mount = MountBuilder::default()
                .destination(destination)
                .typ(typ)
                .source(source);
            // The seed's /proc mount has no options at all, not an empty list.
            if !options.is_empty() {
                mount = mount.options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>());
            }
            Ok(mount.build()?)
        })
        .collect()
}

/// The seed's namespaces, in its order; `network` last and only without `net_host`.
pub(super) fn namespaces(net_host: bool) -> Result<Vec<LinuxNamespace>, SpecError> {
    let mut types = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    if !net_host {
        types.push(LinuxNamespaceType::Network);
    }
    types
        .into_iter()
        .map(|typ| Ok(LinuxNamespaceBuilder::default().typ(typ).build()?))
        .collect()
}

/// Deny every device access (`rwm`); runc appends its standard allow-rules after it.
pub(super) fn deny_all_devices() -> Result<LinuxDeviceCgroup, SpecError> {
    Ok(LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?)
}
