//! ctr's and docker's `run` flags that dev machines use, each checked in the spec runc
//! receives (the bundle's config.json) and, where it shows, in a real task: a memory limit
//! the cgroup enforces (an OOM kill recorded as `oom`), a CPU quota, capabilities added and
//! dropped (a dropped one refused), a host device, --privileged, --init forwarding signals,
//! and `exec --user`.

mod tasks_support;

use std::os::unix::fs::MetadataExt;

use berth_tests::{unique_id, TestDaemon};
use serde_json::{json, Value};
use tasks_support::{assert_clean, berth_out, stdout, Cleanup, Rootfs};

fn config(d: &TestDaemon, id: &str) -> Value {
    let path = d.state().join("tasks/default").join(id).join("config.json");
    serde_json::from_slice(&std::fs::read(&path).expect("config.json")).expect("json")
}

fn caps(spec: &Value) -> Vec<String> {
    spec["process"]["capabilities"]["effective"]
        .as_array()
        .expect("caps")
        .iter()
        .map(|c| c.as_str().expect("cap").to_owned())
        .collect()
}

/// The task's cgroup v1 file `controller/file`, if this host has that layout.
fn cgroup_v1(id: &str, controller: &str, file: &str) -> Option<String> {
    let p = format!("/sys/fs/cgroup/{controller}/berth/default/{id}/{file}");
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

fn cgroup_v2(id: &str, file: &str) -> Option<String> {
    let p = format!("/sys/fs/cgroup/berth/default/{id}/{file}");
    std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned())
}

fn remove(d: &TestDaemon, id: &str) {
    let _ = d.rpc("tasks.delete", json!({ "container_id": id, "force": true }));
    d.rpc_ok("containers.delete", json!({ "id": id }));
}

#[test]
fn limits_capabilities_and_devices_reach_runc_and_the_kernel() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("flags");
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let r = rootfs.arg();
    let out = berth_out(
        &d,
        &[
            "run",
            "-d",
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--cap-add",
            "NET_ADMIN",
            "--cap-drop",
            "CHOWN",
            "--device",
            "/dev/null:/dev/mynull:rw",
            "--rootfs",
            &r,
            &id,
            "sleep",
            "600",
        ],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let spec = config(&d, &id);
    let res = &spec["linux"]["resources"];
    assert_eq!(res["memory"]["limit"], 64 << 20);
    assert_eq!(res["cpu"]["quota"], 50_000);
    let c = caps(&spec);
    assert!(
        c.contains(&"CAP_NET_ADMIN".into()) && !c.contains(&"CAP_CHOWN".into()),
        "{c:?}"
    );
    assert_eq!(spec["linux"]["devices"][0]["path"], "/dev/mynull");
    // The kernel got them.
    let limit = cgroup_v1(&id, "memory", "memory.limit_in_bytes")
        .or_else(|| cgroup_v2(&id, "memory.max"))
        .expect("a memory cgroup for the task");
    assert_eq!(limit, (64u64 << 20).to_string());
    let quota = cgroup_v1(&id, "cpu", "cpu.cfs_quota_us")
        .or_else(|| cgroup_v2(&id, "cpu.max").map(|m| m.split(' ').next().unwrap_or("").into()))
        .expect("a cpu cgroup for the task");
    assert_eq!(quota, "50000");
    let exec = |args: &[&str]| {
        let mut argv = vec!["t", "exec", "--exec-id", "probe", &id];
        argv.extend_from_slice(args);
        berth_out(&d, &argv, b"")
    };
    let out = exec(&["sh", "-c", "touch /tmp/f && chown 1:1 /tmp/f"]);
    assert_ne!(
        out.status.code(),
        Some(0),
        "a dropped CAP_CHOWN refuses chown: {out:?}"
    );
    let out = exec(&["sh", "-c", "test -c /dev/mynull && echo dev ok"]);
    assert_eq!(stdout(&out), "dev ok\n", "{out:?}");
    remove(&d, &id);
    assert_clean(&d, &[id]);
}

#[test]
fn a_task_over_its_memory_limit_is_recorded_as_oom() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("oom");
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let r = rootfs.arg();
    // A string that doubles until the 16 MiB limit stops it.
    let hog = "x=0123456789abcdef; while true; do x=$x$x; done";
    let out = berth_out(
        &d,
        &[
            "run", "--memory", "16m", "--rootfs", &r, &id, "sh", "-c", hog,
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    let list = d.rpc_ok("containers.list", json!({ "with_status": true }));
    let status = &list["containers"][0]["status"];
    assert_eq!(status["exit_reason"], "oom", "{status}");
    let ps = stdout(&berth_out(&d, &["ps", "-a"], b""));
    assert!(ps.contains("Exited (137)"), "{ps}");
    remove(&d, &id);
    assert_clean(&d, &[id]);
}

fn status_caps(d: &TestDaemon, rootfs: &Rootfs, flags: &[&str], id: &str) -> String {
    let r = rootfs.arg();
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--rootfs", &r, id, "grep", "CapEff", "/proc/self/status"]);
    let out = berth_out(d, &args, b"");
    assert!(out.status.success(), "{out:?}");
    stdout(&out)
}

#[test]
fn privileged_gets_every_capability_and_init_forwards_signals() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let (a, b, c) = (unique_id("priv"), unique_id("unpriv"), unique_id("init"));
    let _c = Cleanup {
        d: &d,
        ids: vec![a.clone(), b.clone(), c.clone()],
    };
    let full = status_caps(&d, &rootfs, &["--privileged"], &a);
    let plain = status_caps(&d, &rootfs, &[], &b);
    let bits = |line: &str| {
        u64::from_str_radix(line.split_whitespace().nth(1).expect("CapEff value"), 16).expect("hex")
    };
    assert!(bits(&full).count_ones() >= 40, "{full}");
    assert_eq!(bits(&plain).count_ones(), 14, "{plain}");

    let tini = ["/usr/bin/tini-static"];
    assert!(
        std::path::Path::new(tini[0]).is_file(),
        "--init needs Debian's tini (install-deps installs it)"
    );
    let r = rootfs.arg();
    let out = berth_out(
        &d,
        &["run", "-d", "--init", "--rootfs", &r, &c, "sleep", "600"],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let spec = config(&d, &c);
    assert_eq!(spec["process"]["args"][0], "/dev/berth-init");
    // sleep as PID 1 would ignore SIGTERM (and be killed at the timeout: 137); under the
    // init it gets the signal and dies of it: 143.
    let out = berth_out(&d, &["stop", "-t", "60", &c], b"");
    assert!(out.status.success(), "{out:?}");
    let exit = d.rpc_ok("tasks.wait", json!({ "container_id": c }));
    assert_eq!(exit["exit_status"], 143, "{exit}");
    remove(&d, &c);
    assert_clean(&d, &[a, b, c]);
}

#[test]
fn exec_runs_as_the_user_asked_for_by_id_or_by_name() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    std::fs::write(
        rootfs.path().join("etc/passwd"),
        "root:x:0:0::/:/bin/sh\nbuilder:x:1234:4321::/:/bin/sh\n",
    )
    .expect("passwd");
    let id = unique_id("execuser");
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let r = rootfs.arg();
    let out = berth_out(&d, &["run", "-d", "--rootfs", &r, &id, "sleep", "600"], b"");
    assert!(out.status.success(), "{out:?}");
    for (user, want) in [("1000:1001", "1000 1001\n"), ("builder", "1234 4321\n")] {
        let out = berth_out(
            &d,
            &[
                "t",
                "exec",
                "--exec-id",
                "u",
                "-u",
                user,
                &id,
                "sh",
                "-c",
                "echo $(id -u) $(id -g)",
            ],
            b"",
        );
        assert_eq!(stdout(&out), want, "{user}: {out:?}");
    }
    let out = berth_out(
        &d,
        &["t", "exec", "--exec-id", "u", "-u", "nobody", &id, "true"],
        b"",
    );
    assert_eq!(
        out.status.code(),
        Some(125),
        "an unknown user is refused: {out:?}"
    );
    remove(&d, &id);
    assert_clean(&d, &[id]);
}

/// The `Cap*:` lines of /proc/self/status printed by a task, as numbers by set name.
fn cap_sets(out: &str) -> std::collections::HashMap<String, u64> {
    out.lines()
        .filter_map(|l| {
            let (name, hex) = l.split_once(':')?;
            let name = name.strip_prefix("Cap")?;
            Some((name.to_owned(), u64::from_str_radix(hex.trim(), 16).ok()?))
        })
        .collect()
}

/// Issue 31: the seed put its default capabilities in the ambient set too, so `-u 1000`
/// kept them all across execve (CapEff a80425fb) and could chown a root-owned file. Now a
/// non-root user holds none unless `--cap-add` names it (then exactly that, via ambient),
/// and root still gets the seed's fourteen, plus what `--cap-add` names.
#[test]
fn a_non_root_user_holds_no_capability_unless_cap_add_names_it() {
    const SEEDS_FOURTEEN: u64 = 0xa804_25fb;
    const NET_ADMIN: u64 = 1 << 12;
    const NET_BIND_SERVICE: u64 = 1 << 10;
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let passwd = rootfs.path().join("etc/passwd");
    std::fs::write(&passwd, "root:x:0:0::/:/bin/sh\n").expect("passwd");
    let ids: Vec<String> = ["uid", "root", "netadmin", "uidadd", "exec"]
        .iter()
        .map(|p| unique_id(p))
        .collect();
    let _c = Cleanup {
        d: &d,
        ids: ids.clone(),
    };
    let r = rootfs.arg();
    let probe = "grep Cap /proc/self/status; chown 1000 /etc/passwd 2>/dev/null && echo chowned; \
                 exit 0";
    let run = |flags: &[&str], id: &str| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--rootfs", &r, id, "sh", "-c", probe]);
        let out = berth_out(&d, &args, b"");
        assert!(out.status.success(), "{flags:?}: {out:?}");
        let text = stdout(&out);
        let owner = std::fs::metadata(&passwd).expect("passwd").uid();
        assert_eq!(
            owner != 0,
            text.contains("chowned"),
            "{flags:?}: owner {owner}, output\n{text}"
        );
        std::os::unix::fs::chown(&passwd, Some(0), Some(0)).expect("chown back");
        (cap_sets(&text), text)
    };

    let (sets, text) = run(&["-u", "1000:1000"], &ids[0]);
    for set in ["Inh", "Prm", "Eff", "Amb"] {
        assert_eq!(sets.get(set), Some(&0), "-u 1000: Cap{set} in\n{text}");
    }
    assert_eq!(sets.get("Bnd"), Some(&SEEDS_FOURTEEN), "{text}");
    assert!(
        !text.contains("chowned"),
        "-u 1000 chowned /etc/passwd:\n{text}"
    );

    let (sets, text) = run(&[], &ids[1]);
    for (set, want) in [
        ("Bnd", SEEDS_FOURTEEN),
        ("Prm", SEEDS_FOURTEEN),
        ("Eff", SEEDS_FOURTEEN),
        ("Inh", 0),
        ("Amb", 0),
    ] {
        assert_eq!(sets.get(set), Some(&want), "root: Cap{set} in\n{text}");
    }
    assert!(text.contains("chowned"), "root keeps CAP_CHOWN:\n{text}");

    let (sets, text) = run(&["--cap-add", "NET_ADMIN"], &ids[2]);
    for set in ["Bnd", "Prm", "Eff"] {
        assert_eq!(
            sets.get(set),
            Some(&(SEEDS_FOURTEEN | NET_ADMIN)),
            "root --cap-add NET_ADMIN: Cap{set} in\n{text}"
        );
    }

    let (sets, text) = run(&["-u", "1000", "--cap-add", "NET_BIND_SERVICE"], &ids[3]);
    for set in ["Inh", "Prm", "Eff", "Amb"] {
        assert_eq!(
            sets.get(set),
            Some(&NET_BIND_SERVICE),
            "-u 1000 --cap-add NET_BIND_SERVICE: Cap{set} in\n{text}"
        );
    }
    assert!(!text.contains("chowned"), "{text}");

    // An exec as another user in a root container reuses its sets: none survive execve.
    let out = berth_out(
        &d,
        &["run", "-d", "--rootfs", &r, &ids[4], "sleep", "600"],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    let out = berth_out(
        &d,
        &[
            "t",
            "exec",
            "--exec-id",
            "caps",
            "-u",
            "1000",
            &ids[4],
            "sh",
            "-c",
            probe,
        ],
        b"",
    );
    let text = stdout(&out);
    let sets = cap_sets(&text);
    for set in ["Inh", "Prm", "Eff", "Amb"] {
        assert_eq!(sets.get(set), Some(&0), "exec -u 1000: Cap{set} in\n{text}");
    }
    assert!(!text.contains("chowned"), "{text}");
    remove(&d, &ids[4]);
    assert_clean(&d, &ids);
}

/// Docker users type `run --rm -it IMAGE ...` (issue 31, item 18): `-i` is accepted, and
/// the shell reads what is typed, with a terminal; a flag berth lacks is named as unknown
/// before IMAGE, not blamed on coming after it.
#[test]
fn run_accepts_docker_s_it_and_names_an_unknown_flag() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let id = unique_id("it");
    let _c = Cleanup {
        d: &d,
        ids: vec![id.clone()],
    };
    let r = rootfs.arg();
    let out = berth_out(
        &d,
        &["run", "--rm", "-it", "--rootfs", &r, &id, "sh"],
        b"[ -t 0 ] && echo typed-on-a-tty; exit 3\n",
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(stdout(&out).contains("typed-on-a-tty"), "{out:?}");
    let out = berth_out(&d, &["run", "--rm", "-x", "--rootfs", &r, &id, "true"], b"");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        err.contains("unknown flag \"-x\"") && err.contains("before IMAGE"),
        "{err}"
    );
    assert_clean(&d, &[id]);
}
