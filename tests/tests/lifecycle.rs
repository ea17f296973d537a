//! How a container ended, and the daily commands on top of it: the last task's exit kept on
//! the container after the task is deleted, `containers.list` with every container's status
//! in one call, and `berth ps [-a] [-q]`, against the real berthd and runc.

mod tasks_support;

use berth_tests::{unique_id, TestDaemon};
use serde_json::{json, Value};
use tasks_support::{assert_clean, berth_out, stdout, until, Cleanup, Rootfs};

fn statuses(d: &TestDaemon) -> std::collections::HashMap<String, Value> {
    let list = d.rpc_ok("containers.list", json!({ "with_status": true }));
    list["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().expect("id").to_owned(),
                c["status"].clone(),
            )
        })
        .collect()
}

#[test]
fn the_last_exit_stays_on_the_container_and_ps_shows_it() {
    let (mut d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let (ended, up, idle) = (unique_id("ended"), unique_id("up"), unique_id("idle"));
    let r = rootfs.arg();
    let out = berth_out(
        &d,
        &["run", "--rootfs", &r, &ended, "sh", "-c", "exit 3"],
        b"",
    );
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let out = berth_out(&d, &["run", "-d", "--rootfs", &r, &up, "sleep", "600"], b"");
    assert!(out.status.success(), "{out:?}");
    d.rpc_ok(
        "containers.create",
        json!({ "container": berth_tests::container(&idle) }),
    );
    // Durable: everything below is read after a daemon restart.
    d.stop();
    d.restart();
    let _c = Cleanup {
        d: &d,
        ids: vec![ended.clone(), up.clone(), idle.clone()],
    };

    let all = statuses(&d);
    let e = &all[&ended];
    assert_eq!(e["state"], "exited", "{e}");
    assert_eq!(e["exit_status"], 3);
    assert_eq!(e["exit_reason"], "exited");
    for t in ["started_at", "exited_at"] {
        assert!(
            berth_tests::is_rfc3339_nanos(e[t].as_str().unwrap_or("")),
            "{t}: {e}"
        );
    }
    assert!(e["started_at"].as_str() <= e["exited_at"].as_str(), "{e}");
    assert_eq!(all[&up]["state"], "running", "{}", all[&up]);
    assert!(all[&up]["pid"].as_i64().unwrap_or(0) > 0);
    let task = d.rpc_ok("tasks.get", json!({ "container_id": up }));
    assert_eq!(
        task["process"]["started_at"], all[&up]["started_at"],
        "{task}"
    );
    assert_eq!(all[&idle]["state"], "none");
    // Without with_status, the listing is as before.
    let plain = d.rpc_ok("containers.list", json!({}));
    assert!(plain["containers"][0].get("status").is_none());

    let ps = stdout(&berth_out(&d, &["ps"], b""));
    assert!(ps.contains(&up) && ps.contains("Up "), "{ps}");
    assert!(
        !ps.contains(&ended) && !ps.contains(&idle),
        "ps hides ended ones: {ps}"
    );
    let ps_a = stdout(&berth_out(&d, &["ps", "-a"], b""));
    let line = ps_a
        .lines()
        .find(|l| l.starts_with(&ended))
        .expect("ended in ps -a");
    assert!(
        line.contains("Exited (3)") && line.contains("ago"),
        "{line}"
    );
    assert!(line.contains("\"sh -c exit 3\""), "{line}");
    let idle_line = ps_a
        .lines()
        .find(|l| l.starts_with(&idle))
        .expect("idle in ps -a");
    assert!(idle_line.ends_with("Created"), "{idle_line}");
    let quiet = stdout(&berth_out(&d, &["ps", "-a", "-q"], b""));
    let mut ids: Vec<&str> = quiet.lines().collect();
    ids.sort();
    let mut want = vec![ended.as_str(), up.as_str(), idle.as_str()];
    want.sort();
    assert_eq!(ids, want);
    let json_out = berth_out(&d, &["ps", "-a", "--json"], b"");
    let v: Value = serde_json::from_slice(&json_out.stdout).expect("ps --json");
    let row = v["containers"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|c| c["id"] == ended.as_str())
        .expect("row");
    assert_eq!(row["exit_status"], 3);
    assert!(row["status"]
        .as_str()
        .expect("status")
        .starts_with("Exited (3)"));

    // The last exit goes with the container.
    d.rpc_ok("containers.delete", json!({ "id": ended }));
    d.rpc_ok(
        "containers.create",
        json!({ "container": berth_tests::container(&ended) }),
    );
    assert_eq!(
        statuses(&d)[&ended]["state"],
        "none",
        "a new container starts afresh"
    );
    d.rpc_ok(
        "tasks.kill",
        json!({ "container_id": up, "signal": "SIGKILL" }),
    );
    d.rpc_ok("tasks.wait", json!({ "container_id": up }));
    assert_eq!(statuses(&d)[&up]["state"], "stopped");
    assert_eq!(statuses(&d)[&up]["exit_status"], 137);
    for id in [&ended, &up, &idle] {
        let _ = d.rpc("tasks.delete", json!({ "container_id": id }));
        d.rpc_ok("containers.delete", json!({ "id": id }));
    }
    assert_clean(&d, &[ended, up, idle]);
}

fn state(d: &TestDaemon, id: &str) -> Value {
    statuses(d).remove(id).unwrap_or(Value::Null)
}

fn log_text(d: &TestDaemon, id: &str) -> String {
    stdout(&berth_out(d, &["logs", id], b""))
}

/// A shell loop that says when it is ready and reacts to signals only as told.
fn looping(on_term: &str) -> String {
    format!("trap '{on_term}' TERM; trap 'echo got USR1; exit 7' USR1; echo ready; while true; do sleep 0.1; done")
}

#[test]
fn stop_start_restart_and_rm_work_as_docker_s() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let (polite, stubborn, labelled) =
        (unique_id("polite"), unique_id("stubborn"), unique_id("sig"));
    let _c = Cleanup {
        d: &d,
        ids: vec![polite.clone(), stubborn.clone(), labelled.clone()],
    };
    let r = rootfs.arg();
    let label = format!("{}=SIGUSR1", schema_label());
    for (id, script, extra) in [
        (&polite, looping("echo got TERM; exit 0"), None),
        (&stubborn, looping(""), None),
        (&labelled, looping(""), Some(label.as_str())),
    ] {
        let mut args = vec!["run", "-d"];
        if let Some(l) = extra {
            args.extend(["--label", l]);
        }
        args.extend(["--rootfs", &r, id, "sh", "-c", &script]);
        let out = berth_out(&d, &args, b"");
        assert!(out.status.success(), "{out:?}");
        until("the loop is ready", || log_text(&d, id).contains("ready"));
    }

    let out = berth_out(&d, &["stop", "-t", "30", &polite], b"");
    assert_eq!(stdout(&out), format!("{polite}\n"), "{out:?}");
    assert_eq!(state(&d, &polite)["exit_status"], 0, "SIGTERM was handled");
    assert!(log_text(&d, &polite).contains("got TERM"));
    // SIGTERM ignored: SIGKILL after the timeout.
    let out = berth_out(&d, &["stop", "-t", "1", &stubborn], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(state(&d, &stubborn)["exit_status"], 137);
    // The image's STOPSIGNAL label wins over SIGTERM.
    let out = berth_out(&d, &["stop", "-t", "30", &labelled], b"");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(state(&d, &labelled)["exit_status"], 7);
    assert!(log_text(&d, &labelled).contains("got USR1"));
    // Stopping what is stopped is fine, as docker's.
    assert!(berth_out(&d, &["stop", &polite], b"").status.success());

    // start: a new task on the same container, its output appended to the same log.
    let out = berth_out(&d, &["start", &polite], b"");
    assert_eq!(stdout(&out), format!("{polite}\n"), "{out:?}");
    assert_eq!(state(&d, &polite)["state"], "running");
    until("the second task is ready", || {
        log_text(&d, &polite).matches("ready").count() == 2
    });
    let pid = state(&d, &polite)["pid"].clone();
    let out = berth_out(&d, &["restart", "-t", "30", &polite], b"");
    assert!(out.status.success(), "{out:?}");
    let now = state(&d, &polite);
    assert_eq!(now["state"], "running");
    assert_ne!(now["pid"], pid, "a new task");

    // rm refuses a running task without -f, naming the way out; -f removes it.
    let out = berth_out(&d, &["rm", &polite], b"");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-f"),
        "{out:?}"
    );
    assert_eq!(state(&d, &polite)["state"], "running");
    let out = berth_out(&d, &["rm", "-f", &polite, &stubborn, &labelled], b"");
    assert!(out.status.success(), "{out:?}");
    let left = statuses(&d);
    for id in [&polite, &stubborn, &labelled] {
        assert!(!left.contains_key(id.as_str()), "{id} removed");
    }
    assert_clean(&d, &[polite.clone(), stubborn.clone(), labelled.clone()]);
}

fn schema_label() -> &'static str {
    "io.containerd.image.config.stop-signal"
}

#[test]
fn run_rm_detached_is_removed_by_berthd_even_when_it_exits_during_a_crash() {
    let (mut d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let (quick, gated) = (unique_id("rmd"), unique_id("rmcrash"));
    let gate = tempfile::Builder::new()
        .prefix("berth-gate-")
        .tempdir_in("/tmp")
        .expect("gate");
    let r = rootfs.arg();
    let out = berth_out(
        &d,
        &["run", "--rm", "-d", "--rootfs", &r, &quick, "echo", "bye"],
        b"",
    );
    assert_eq!(stdout(&out), format!("{quick}\n"), "{out:?}");
    until("the exited --rm -d container is removed", || {
        !statuses(&d).contains_key(quick.as_str())
    });
    assert!(!d.root().join("logs/default").join(&quick).exists());

    let volume = format!("{}:/data", gate.path().display());
    let script = "while [ ! -e /data/go ]; do sleep 0.05; done";
    let out = berth_out(
        &d,
        &[
            "run", "--rm", "-d", "-v", &volume, "--rootfs", &r, &gated, "sh", "-c", script,
        ],
        b"",
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(state(&d, &gated)["state"], "running");
    d.kill9();
    std::fs::write(gate.path().join("go"), "").expect("open the gate");
    d.restart();
    let _c = Cleanup {
        d: &d,
        ids: vec![gated.clone()],
    };
    until(
        "the container whose task exited during the crash is removed",
        || !statuses(&d).contains_key(gated.as_str()),
    );
    assert_clean(&d, &[quick, gated]);
}

#[test]
fn a_command_that_cannot_run_exits_127_or_126_as_docker_s() {
    let (d, rootfs) = (TestDaemon::start(), Rootfs::new());
    let r = rootfs.arg();
    let (missing, notexec) = (unique_id("nocmd"), unique_id("noexec"));
    let out = berth_out(
        &d,
        &["run", "--rm", "--rootfs", &r, &missing, "nosuch"],
        b"",
    );
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nosuch"),
        "{out:?}"
    );
    let out = berth_out(&d, &["run", "--rm", "--rootfs", &r, &notexec, "/etc"], b"");
    assert_eq!(out.status.code(), Some(126), "{out:?}");
    // berth's own failures stay 125.
    let out = berth_out(
        &d,
        &["run", "--rm", "--rootfs", "/nonexistent-dir", "x", "true"],
        b"",
    );
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert!(statuses(&d).is_empty(), "--rm left nothing behind");
    // The API says why in data.reason.
    let opts: schema::spec::SpecOptions =
        serde_json::from_value(json!({ "args": ["nosuch"] })).expect("options");
    let spec = schema::spec::build(&missing, "", None, &opts, &Default::default()).expect("spec");
    let mut spec = serde_json::to_value(spec).expect("json");
    spec["root"]["path"] = json!(r);
    d.rpc_ok(
        "containers.create",
        json!({ "container": { "id": missing, "spec": spec } }),
    );
    let err = d
        .rpc("tasks.create", json!({ "container_id": missing }))
        .expect_err("cannot exec");
    assert_eq!(err["data"]["kind"], "failed_precondition", "{err}");
    assert_eq!(err["data"]["reason"], "command_not_found", "{err}");
    d.rpc_ok("containers.delete", json!({ "id": missing }));
    assert_clean(&d, &[missing, notexec]);
}
