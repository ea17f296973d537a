//! How a container ended, and the daily commands on top of it: the last task's exit kept on
//! the container after the task is deleted, `containers.list` with every container's status
//! in one call, and `berth ps [-a] [-q]`, against the real berthd and runc.

mod tasks_support;

use berth_tests::{unique_id, TestDaemon};
use serde_json::{json, Value};
use tasks_support::{assert_clean, berth_out, stdout, Cleanup, Rootfs};

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
