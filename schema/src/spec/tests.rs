//! Pins every default of the seed and every option of [`SpecOptions`] against the JSON
//! runc reads, written out literally here rather than derived from `defaults.rs`.

use serde_json::{json, Value};

use super::*;

const ID: &str = "web";
const IMAGE: &str = "docker.io/library/busybox:latest";

fn image(config: Value) -> oci_spec::image::Config {
    serde_json::from_value(config).expect("valid image config")
}

fn spec_json(config: Option<&oci_spec::image::Config>, opts: &SpecOptions) -> Value {
    let spec = build(ID, IMAGE, config, opts, &EtcFiles::default()).expect("spec builds");
    serde_json::to_value(&spec).expect("spec serializes")
}

fn busybox() -> oci_spec::image::Config {
    image(json!({"Cmd": ["sh"]}))
}

fn defaults() -> Value {
    spec_json(Some(&busybox()), &SpecOptions::default())
}

fn object_keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

fn build_error(config: Option<&oci_spec::image::Config>, opts: &SpecOptions) -> String {
    match build(ID, IMAGE, config, opts, &EtcFiles::default()) {
        Ok(spec) => panic!("built {spec:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn top_level_fields_are_the_seeds_and_no_more() {
    let spec = defaults();
    assert_eq!(
        object_keys(&spec),
        [
            "annotations",
            "hostname",
            "linux",
            "mounts",
            "ociVersion",
            "process",
            "root"
        ]
    );
    assert_eq!(spec["ociVersion"], "1.0.2");
    assert_eq!(spec["root"], json!({"path": "rootfs", "readonly": false}));
    assert_eq!(spec["hostname"], ID);
    assert_eq!(spec["annotations"], json!({"image": IMAGE}));
}

#[test]
fn process_defaults_match_the_seed() {
    let process = &defaults()["process"];
    assert_eq!(
        object_keys(process),
        [
            "args",
            "capabilities",
            "cwd",
            "env",
            "noNewPrivileges",
            "rlimits",
            "terminal",
            "user"
        ]
    );
    assert_eq!(process["args"], json!(["sh"]));
    assert_eq!(
        process["env"],
        json!(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])
    );
    assert_eq!(process["terminal"], false);
    assert_eq!(process["cwd"], "/");
    assert_eq!(process["noNewPrivileges"], true);
    assert_eq!(process["user"], json!({"uid": 0, "gid": 0}));
    assert_eq!(
        process["rlimits"],
        json!([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}])
    );
}

fn cap_set(caps: &Value, set: &str) -> Vec<String> {
    let mut got: Vec<String> = caps[set]
        .as_array()
        .expect("a capability list")
        .iter()
        .map(|c| c.as_str().expect("a capability name").to_owned())
        .collect();
    got.sort_unstable();
    got
}

fn seeds_fourteen() -> Vec<String> {
    let mut expected: Vec<String> = [
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_FSETID",
        "CAP_FOWNER",
        "CAP_MKNOD",
        "CAP_NET_RAW",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETFCAP",
        "CAP_SETPCAP",
        "CAP_NET_BIND_SERVICE",
        "CAP_SYS_CHROOT",
        "CAP_KILL",
        "CAP_AUDIT_WRITE",
    ]
    .map(str::to_owned)
    .to_vec();
    expected.sort_unstable();
    expected
}

/// Root holds the seed's fourteen in bounding, effective and permitted; the seed's
/// inheritable and ambient copies are gone (ambient kept them for non-root users).
#[test]
fn root_gets_the_seeds_fourteen_without_inheritable_or_ambient() {
    let caps = &defaults()["process"]["capabilities"];
    assert_eq!(
        object_keys(caps),
        [
            "ambient",
            "bounding",
            "effective",
            "inheritable",
            "permitted"
        ]
    );
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(cap_set(caps, set), seeds_fourteen(), "capability set {set}");
    }
    for set in ["ambient", "inheritable"] {
        assert_eq!(
            cap_set(caps, set),
            Vec::<String>::new(),
            "capability set {set}"
        );
    }
}

/// A non-root user keeps the bounding set (for file capabilities) but is granted only what
/// `cap_add` names, through ambient, as podman does; `privileged` grants it nothing more.
#[test]
fn a_non_root_user_is_granted_only_what_cap_add_names() {
    let opts = |v: Value| -> SpecOptions { serde_json::from_value(v).expect("options") };
    let plain = spec_json(Some(&busybox()), &opts(json!({"user": "1000:1000"})));
    let caps = &plain["process"]["capabilities"];
    assert_eq!(cap_set(caps, "bounding"), seeds_fourteen());
    for set in ["effective", "permitted", "inheritable", "ambient"] {
        assert_eq!(
            cap_set(caps, set),
            Vec::<String>::new(),
            "capability set {set}"
        );
    }
    let added = spec_json(
        Some(&busybox()),
        &opts(json!({"user": "1000", "cap_add": ["net_admin", "CAP_CHOWN"], "privileged": true})),
    );
    let caps = &added["process"]["capabilities"];
    assert_eq!(cap_set(caps, "bounding").len(), ALL_CAPABILITIES.len());
    for set in ["effective", "permitted", "inheritable", "ambient"] {
        assert_eq!(
            cap_set(caps, set),
            ["CAP_CHOWN", "CAP_NET_ADMIN"],
            "capability set {set}"
        );
    }
}

#[test]
fn mounts_are_the_seeds_ten_with_exact_options() {
    assert_eq!(
        defaults()["mounts"],
        json!([
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/run", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/etc/resolv.conf", "type": "bind", "source": "/etc/resolv.conf",
             "options": ["rbind", "ro"]},
            {"destination": "/etc/hosts", "type": "bind", "source": "/etc/hosts",
             "options": ["rbind", "ro"]},
            {"destination": "/etc/localtime", "type": "bind", "source": "/etc/localtime",
             "options": ["rbind", "ro"]},
        ])
    );
}

#[test]
fn linux_section_is_the_seeds_plus_oci_spec_masked_and_readonly_paths() {
    let linux = &defaults()["linux"];
    // No cgroup namespace, no explicit devices, no seccomp: only what is pinned below.
    assert_eq!(
        object_keys(linux),
        ["maskedPaths", "namespaces", "readonlyPaths", "resources"]
    );
    assert_eq!(
        linux["resources"],
        json!({"devices": [{"allow": false, "access": "rwm"}]})
    );
    assert_eq!(
        linux["namespaces"],
        json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
               {"type": "network"}])
    );
    assert_eq!(
        linux["maskedPaths"],
        json!([
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi"
        ])
    );
    assert_eq!(
        linux["readonlyPaths"],
        json!([
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ])
    );
}

#[test]
fn net_host_drops_only_the_network_namespace() {
    let opts = SpecOptions {
        net_host: true,
        ..SpecOptions::default()
    };
    assert_eq!(
        spec_json(Some(&busybox()), &opts)["linux"]["namespaces"],
        json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}])
    );
}

#[test]
fn env_is_path_then_image_then_tty_then_caller_with_later_keys_winning_in_place() {
    let config = image(json!({
        "Cmd": ["sh"],
        "Env": ["PATH=/bin", "HOME=/root", "TERM=dumb", "LANG=C"],
    }));
    let plain = SpecOptions {
        env: vec!["LANG=C.UTF-8".into(), "EXTRA=1".into()],
        ..SpecOptions::default()
    };
    assert_eq!(
        spec_json(Some(&config), &plain)["process"]["env"],
        json!([
            "PATH=/bin",
            "HOME=/root",
            "TERM=dumb",
            "LANG=C.UTF-8",
            "EXTRA=1"
        ])
    );

    let tty = SpecOptions {
        tty: true,
        ..SpecOptions::default()
    };
    let process = &spec_json(Some(&config), &tty)["process"];
    assert_eq!(process["terminal"], true);
    assert_eq!(
        process["env"],
        json!(["PATH=/bin", "HOME=/root", "TERM=xterm", "LANG=C"])
    );

    let caller_term = SpecOptions {
        tty: true,
        env: vec!["TERM=vt100".into()],
        ..SpecOptions::default()
    };
    assert_eq!(
        spec_json(Some(&busybox()), &caller_term)["process"]["env"],
        json!([DEFAULT_PATH_ENV, "TERM=vt100"])
    );
}

#[test]
fn tty_appends_term_after_the_image_env() {
    let opts = SpecOptions {
        tty: true,
        ..SpecOptions::default()
    };
    assert_eq!(
        spec_json(Some(&busybox()), &opts)["process"]["env"],
        json!([DEFAULT_PATH_ENV, "TERM=xterm"])
    );
}

#[test]
fn caller_env_entries_must_have_a_value() {
    let opts = SpecOptions {
        env: vec!["FOO".into()],
        ..SpecOptions::default()
    };
    assert_eq!(
        build_error(Some(&busybox()), &opts),
        "env entry \"FOO\" is not KEY=VALUE"
    );
}

#[test]
fn args_are_entrypoint_then_caller_args_or_cmd() {
    let config = image(json!({"Entrypoint": ["/entry", "-v"], "Cmd": ["serve"]}));
    let none = SpecOptions::default();
    assert_eq!(
        spec_json(Some(&config), &none)["process"]["args"],
        json!(["/entry", "-v", "serve"])
    );
    let args = SpecOptions {
        args: vec!["run".into(), "fast".into()],
        ..SpecOptions::default()
    };
    assert_eq!(
        spec_json(Some(&config), &args)["process"]["args"],
        json!(["/entry", "-v", "run", "fast"])
    );
    assert_eq!(
        spec_json(Some(&busybox()), &args)["process"]["args"],
        json!(["run", "fast"])
    );
    assert_eq!(
        spec_json(None, &args)["process"]["args"],
        json!(["run", "fast"])
    );
    let entry_only = image(json!({"Entrypoint": ["/entry"]}));
    assert_eq!(
        spec_json(Some(&entry_only), &none)["process"]["args"],
        json!(["/entry"])
    );
}

#[test]
fn nothing_to_run_is_an_error_naming_container_and_image() {
    let expected = format!(
        "container \"{ID}\": no command to run: image \"{IMAGE}\" has no Entrypoint or Cmd \
         and no args were given"
    );
    assert_eq!(build_error(None, &SpecOptions::default()), expected);
    assert_eq!(
        build_error(Some(&image(json!({"Cmd": []}))), &SpecOptions::default()),
        expected
    );
}

#[test]
fn cwd_is_caller_then_image_then_root() {
    let config = image(json!({"Cmd": ["sh"], "WorkingDir": "/srv"}));
    let cwd = |config: &oci_spec::image::Config, opts: &SpecOptions| {
        spec_json(Some(config), opts)["process"]["cwd"].clone()
    };
    let none = SpecOptions::default();
    let given = SpecOptions {
        cwd: Some("/work".into()),
        ..SpecOptions::default()
    };
    let empty = SpecOptions {
        cwd: Some(String::new()),
        ..SpecOptions::default()
    };
    assert_eq!(cwd(&config, &given), "/work");
    assert_eq!(cwd(&config, &none), "/srv");
    assert_eq!(cwd(&config, &empty), "/srv");
    assert_eq!(cwd(&busybox(), &none), "/");
    assert_eq!(
        cwd(&image(json!({"Cmd": ["sh"], "WorkingDir": ""})), &none),
        "/"
    );
    let relative = SpecOptions {
        cwd: Some("srv".into()),
        ..SpecOptions::default()
    };
    assert_eq!(
        build_error(Some(&busybox()), &relative),
        "working directory \"srv\" is not an absolute path"
    );
}

#[test]
fn readonly_and_hostname_options_apply() {
    let opts = SpecOptions {
        readonly: true,
        hostname: Some("box".into()),
        ..SpecOptions::default()
    };
    let spec = spec_json(Some(&busybox()), &opts);
    assert_eq!(spec["root"], json!({"path": "rootfs", "readonly": true}));
    assert_eq!(spec["hostname"], "box");
    let empty = SpecOptions {
        hostname: Some(String::new()),
        ..SpecOptions::default()
    };
    assert_eq!(spec_json(Some(&busybox()), &empty)["hostname"], ID);
}

#[test]
fn caller_user_overrides_image_user_and_names_are_looked_up() {
    let config = image(json!({"Cmd": ["sh"], "User": "app"}));
    let etc = EtcFiles {
        passwd: Some("app:x:1000:1000::/home/app:/bin/sh\n".into()),
        group: Some("app:x:1000:\nwheel:x:10:app\n".into()),
    };
    let user_of = |opts: &SpecOptions| {
        let spec = build(ID, IMAGE, Some(&config), opts, &etc).expect("spec builds");
        serde_json::to_value(&spec).expect("spec serializes")["process"]["user"].clone()
    };
    assert_eq!(
        user_of(&SpecOptions::default()),
        json!({"uid": 1000, "gid": 1000, "additionalGids": [10]})
    );
    let numeric = SpecOptions {
        user: Some("33:44".into()),
        ..SpecOptions::default()
    };
    assert_eq!(user_of(&numeric), json!({"uid": 33, "gid": 44}));
    let empty = SpecOptions {
        user: Some(String::new()),
        ..SpecOptions::default()
    };
    assert_eq!(user_of(&empty)["uid"], 1000);

    let unknown = SpecOptions {
        user: Some("nobody2".into()),
        ..SpecOptions::default()
    };
    assert_eq!(
        build(ID, IMAGE, Some(&config), &unknown, &etc)
            .expect_err("unknown user")
            .to_string(),
        "USER \"nobody2\": no such user in the image's /etc/passwd"
    );
    // The image's own USER needs /etc/passwd too.
    assert_eq!(
        build_error(Some(&config), &SpecOptions::default()),
        "USER \"app\": the image has no /etc/passwd to look the user up in"
    );
}

#[test]
fn caller_mounts_follow_the_defaults_and_bad_ones_fail() {
    let opts = SpecOptions {
        mounts: vec!["type=bind,src=/data,dst=/data,options=rbind:ro".into()],
        ..SpecOptions::default()
    };
    let mounts = spec_json(Some(&busybox()), &opts)["mounts"].clone();
    assert_eq!(mounts.as_array().map(Vec::len), Some(11));
    assert_eq!(
        mounts[10],
        json!({"destination": "/data", "type": "bind", "source": "/data",
               "options": ["rbind", "ro"]})
    );
    let bad = SpecOptions {
        mounts: vec!["src=/data".into()],
        ..SpecOptions::default()
    };
    assert_eq!(
        build_error(Some(&busybox()), &bad),
        "mount \"src=/data\": no destination (dst=...)"
    );
}

#[test]
fn built_spec_round_trips_through_json() {
    let spec = build(
        ID,
        IMAGE,
        Some(&busybox()),
        &SpecOptions::default(),
        &EtcFiles::default(),
    )
    .expect("spec builds");
    let text = serde_json::to_string(&spec).expect("spec serializes");
    let back: Spec = serde_json::from_str(&text).expect("spec parses back");
    assert_eq!(back, spec);
}

#[test]
fn spec_options_wire_form_defaults_and_rejects_unknown_fields() {
    let opts: SpecOptions = serde_json::from_value(json!({
        "args": ["sh", "-c", "true"], "tty": true, "hostname": "h"
    }))
    .expect("valid spec_options");
    assert_eq!(
        opts,
        SpecOptions {
            args: vec!["sh".into(), "-c".into(), "true".into()],
            tty: true,
            hostname: Some("h".into()),
            ..SpecOptions::default()
        }
    );
    assert_eq!(
        serde_json::from_value::<SpecOptions>(json!({})).expect("empty object"),
        SpecOptions::default()
    );
    let err =
        serde_json::from_value::<SpecOptions>(json!({"netHost": true})).expect_err("unknown field");
    assert!(err.to_string().contains("unknown field `netHost`"), "{err}");
}

#[test]
fn custom_spec_forces_the_rootfs_path_and_keeps_the_rest() {
    let spec = custom_spec(
        r#"{"ociVersion": "1.0.2", "root": {"path": "/elsewhere", "readonly": true},
            "process": {"cwd": "/", "args": ["true"], "user": {"uid": 7, "gid": 8}},
            "hostname": "custom"}"#,
    )
    .expect("valid spec");
    let value = serde_json::to_value(&spec).expect("spec serializes");
    assert_eq!(value["root"], json!({"path": "rootfs", "readonly": true}));
    assert_eq!(value["hostname"], "custom");
    assert_eq!(value["process"]["user"], json!({"uid": 7, "gid": 8}));

    let rootless = custom_spec(r#"{"ociVersion": "1.0.2"}"#).expect("valid spec");
    assert_eq!(
        serde_json::to_value(&rootless).expect("spec serializes")["root"],
        json!({"path": "rootfs", "readonly": false})
    );

    let err = custom_spec("{not json").expect_err("invalid json");
    assert!(
        err.to_string()
            .starts_with("runtime config is not a valid OCI runtime spec: "),
        "{err}"
    );
}

#[test]
fn annotate_image_adds_to_existing_annotations() {
    let mut spec =
        custom_spec(r#"{"ociVersion": "1.0.2", "annotations": {"a": "b"}}"#).expect("valid spec");
    annotate_image(&mut spec, IMAGE);
    assert_eq!(
        serde_json::to_value(&spec).expect("spec serializes")["annotations"],
        json!({"a": "b", "image": IMAGE})
    );
}

#[test]
fn ids_longer_than_a_hostname_get_a_truncated_hostname() {
    let id = "a".repeat(76);
    let spec = build(
        &id,
        IMAGE,
        Some(&busybox()),
        &SpecOptions::default(),
        &EtcFiles::default(),
    )
    .expect("spec builds");
    assert_eq!(spec.hostname().as_deref(), Some(&id[..64]));
}

#[test]
fn bind_mounts_without_options_become_rbind_in_the_spec() {
    let opts = SpecOptions {
        mounts: vec!["type=bind,src=/tmp,dst=/data".into()],
        ..SpecOptions::default()
    };
    let spec = spec_json(Some(&busybox()), &opts);
    let mounts = spec["mounts"].as_array().expect("mounts");
    assert_eq!(
        mounts.last(),
        Some(
            &json!({"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind"]})
        )
    );
}
