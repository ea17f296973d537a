//! 200 short-lived containers must leave no zombie and no open fd behind. Its
//! own test binary (one process, one test) so no other test's fds or children
//! blur the counts.

mod common;

use std::time::{Duration, Instant};

use berthd::runtime::runc::Runc;
use common::{create_and_start, within, Bundle};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Children of this process in state Z.
fn zombies() -> Vec<i32> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) S ppid ...": comm may hold spaces, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        if let (Some("Z"), Some(ppid)) = (fields.next(), fields.next()) {
            if ppid == me {
                found.push(pid);
            }
        }
    }
    found
}

async fn run_once(bundle: &Bundle, runc: &Runc) {
    let id = bundle.new_id("churn");
    let (pid, mut exits) = create_and_start(bundle, runc, &id).await;
    let exit = exits.wait_for(pid).await.expect("exit");
    assert_eq!(exit.status, 0);
    runc.delete(&id, false).await.expect("delete");
    std::fs::remove_file(bundle.pid_file(&id)).expect("pid file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_containers_leave_no_zombie_and_no_fd() {
    let bundle = Bundle::new(&["true"], false);
    let runc = bundle.runc();
    // Warm up once so lazily created runtime fds (signal pipe, epoll) are counted.
    within(30, "warm-up", run_once(&bundle, &runc)).await;
    let fds_before = open_fds();
    let started = Instant::now();
    within(600, "200 containers", async {
        for _ in 0..200 {
            run_once(&bundle, &runc).await;
        }
    })
    .await;
    eprintln!("200 containers in {:?}", started.elapsed());
    // Reaping is asynchronous: give stray orphans a moment to be collected.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !zombies().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(zombies(), Vec::<i32>::new(), "zombie children left");
    assert_eq!(open_fds(), fds_before, "fd count changed");
}
