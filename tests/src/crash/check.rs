//! The checks after each restart, and the cleanup between rounds: SQLite integrity, every
//! acknowledged write against what the daemon now reports (lost, phantom), exit statuses of
//! tasks that ran across the crash, the event log, and orphans on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use serde_json::{json, Value};

use super::api::Api;
use super::figures::Figures;
use super::ledger::{Kind, Ledger, Start, State};
use super::orphans;
use super::workload::{Setup, KILLED};
use crate::daemon::TestDaemon;

/// How long tasks that ran across the crash get to report their exit after the restart.
const EXIT_LIMIT: Duration = Duration::from_secs(20);
/// How long leftovers get to be cleaned up asynchronously before they count as orphans.
pub const ORPHAN_LIMIT: Duration = Duration::from_secs(10);
/// The same after the round's cleanup (which removes synchronously).
const LEFTOVER_LIMIT: Duration = Duration::from_secs(5);

/// What a clean daemon holds between rounds: the base image and what it brought.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    pub snapshots: BTreeSet<(String, i64)>,
    pub blobs: BTreeSet<String>,
}

impl Baseline {
    pub fn read(d: &TestDaemon) -> Result<Baseline> {
        let rows = orphans::rows(&d.root().join("meta.db"))?;
        Ok(Baseline {
            snapshots: rows.snapshots,
            blobs: rows.blobs,
        })
    }
}

/// The event log as `(seq, topic)`, to check that a later round still starts with it.
pub type EventLog = Vec<(u64, String)>;

/// What one round leaves the next: the event log so far, and the objects cleanup could not
/// remove (counted as leftovers where they stuck, so not as phantoms in later rounds).
#[derive(Debug, Default)]
pub struct History {
    pub events: EventLog,
    pub carried: BTreeSet<(Kind, String)>,
}

/// Runs every check after a restart, adding to `fig`.
/// `killed_at` is when the daemon was killed (exits recorded before it were already safe).
pub fn after_restart(
    d: &TestDaemon,
    setup: &Setup,
    ledger: &Ledger,
    killed_at: SystemTime,
    history: &mut History,
    fig: &mut Figures,
) -> Result<()> {
    match orphans::integrity(&d.root().join("meta.db")) {
        Ok(problems) => fig.integrity.extend(problems),
        Err(e) => fig.integrity.push(format!("{e:#}")),
    }
    let mut api = Api::connect(&setup.socket, &setup.namespace)?;
    objects(&mut api, setup, ledger, &history.carried, fig)?;
    exits(&mut api, ledger, &rfc3339(killed_at), fig)?;
    events(&mut api, ledger, &mut history.events, fig)?;
    for (kind, items) in
        orphans::scan_until_clean(d, &setup.namespace, &setup.fifo_dir, ORPHAN_LIMIT)
    {
        for item in items {
            fig.orphan(kind, item);
        }
    }
    Ok(())
}

/// Lost: an acknowledged state (or the write in flight) is not what the daemon reports.
/// Phantom: an object no client ever wrote.
fn objects(
    api: &mut Api,
    setup: &Setup,
    ledger: &Ledger,
    carried: &BTreeSet<(Kind, String)>,
    fig: &mut Figures,
) -> Result<()> {
    let mut actual: BTreeMap<(Kind, String), State> = BTreeMap::new();
    for c in api.containers()? {
        let id = c["id"].as_str().unwrap_or_default().to_owned();
        // A container's rootfs snapshot goes with it: stored in the same transaction.
        let key = c["snapshot_key"].as_str().unwrap_or_default();
        if !key.is_empty() {
            if let Err(e) = api.call("snapshots.stat", json!({"key": key}))? {
                fig.lost
                    .push(format!("container {id}: its snapshot {key}: {e}"));
            }
        }
        actual.insert((Kind::Container, id), State::Present(c["labels"].clone()));
    }
    for name in api.images()? {
        // An image must still resolve to its manifest and config blobs.
        if let Err(e) = api.call("images.get", json!({"name": name}))? {
            fig.lost.push(format!("image {name}: images.get: {e}"));
        }
        if name != setup.base_image {
            actual.insert((Kind::Image, name), State::Present(Value::Null));
        }
    }
    for id in api.tasks()? {
        actual.insert((Kind::Task, id), State::Present(Value::Null));
    }
    for (key, record) in &ledger.records {
        let got = actual.get(key).cloned().unwrap_or(State::Absent);
        if !record.admits(&got) {
            fig.lost.push(format!(
                "{} {}: acknowledged {:?}, in flight {:?}, found {:?}",
                key.0.name(),
                key.1,
                record.acked,
                record.in_flight,
                got
            ));
        }
    }
    for key in actual.keys() {
        if !ledger.records.contains_key(key) && !carried.contains(key) {
            fig.phantom.push(format!("{} {}", key.0.name(), key.1));
        }
    }
    Ok(())
}

/// Tasks that were started (or whose start was in flight and happened) and still exist
/// must report the exit status their command chose; long sleepers are SIGKILLed now and
/// must report 137.
/// Statuses whose `exited_at` sorts before `killed_at` were recorded before the kill.
fn exits(api: &mut Api, ledger: &Ledger, killed_at: &str, fig: &mut Figures) -> Result<()> {
    let present: BTreeSet<String> = api.tasks()?.into_iter().collect();
    let mut pending: Vec<(&String, i64)> = Vec::new();
    for (id, plan) in &ledger.exits {
        if plan.start == Start::NotSent || !present.contains(id) {
            continue;
        }
        let p = api.ok("tasks.get", json!({"container_id": id}))?["process"].clone();
        if p["status"] == json!("created") {
            if plan.start == Start::Acked {
                fig.lost
                    .push(format!("task {id}: start acknowledged, status created"));
            }
            continue;
        }
        if plan.expected == KILLED && p["status"] != json!("stopped") {
            let kill = json!({"container_id": id, "signal": "SIGKILL"});
            if let Err(e) = api.call("tasks.kill", kill)? {
                fig.errors
                    .push(format!("tasks.kill {id} after restart: {e}"));
            }
        }
        pending.push((id, plan.expected));
    }
    let deadline = Instant::now() + EXIT_LIMIT;
    for (id, expected) in pending {
        let got = loop {
            let p = api.ok("tasks.get", json!({"container_id": id}))?["process"].clone();
            if p["status"] == json!("stopped") || Instant::now() >= deadline {
                break p;
            }
            thread::sleep(Duration::from_millis(50));
        };
        if got["status"] != json!("stopped") {
            fig.crash_wrong.push(format!(
                "{id}: expected {expected}, still {} after {EXIT_LIMIT:?}",
                got["status"]
            ));
            continue;
        }
        let waited = api.ok("tasks.wait", json!({"container_id": id}))?;
        let (a, b) = (got["exit_status"].as_i64(), waited["exit_status"].as_i64());
        let exited_at = got["exited_at"].as_str().unwrap_or_default();
        let (exact, wrong) = if exited_at < killed_at {
            (&mut fig.kept_exact, &mut fig.kept_wrong)
        } else {
            (&mut fig.crash_exact, &mut fig.crash_wrong)
        };
        if a == Some(expected) && b == Some(expected) {
            *exact += 1;
        } else {
            wrong.push(format!(
                "{id}: expected {expected}, tasks.get says {a:?}, tasks.wait says {b:?} \
                 (exited_at {exited_at}, killed at {killed_at})"
            ));
        }
    }
    Ok(())
}

/// Seqs start at 1 and rise by one, the log before the crash is still its prefix, and
/// every acknowledged write left its event.
fn events(api: &mut Api, ledger: &Ledger, log: &mut EventLog, fig: &mut Figures) -> Result<()> {
    let events = api.events()?;
    let now: EventLog = events
        .iter()
        .map(|e| {
            let seq = e["seq"].as_u64().unwrap_or(0);
            (seq, e["topic"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    for (i, (seq, _)) in now.iter().enumerate() {
        if *seq != i as u64 + 1 {
            fig.events.push(format!(
                "event #{} has seq {seq} (expected {}): gap, repeat or reorder",
                i + 1,
                i + 1
            ));
            break;
        }
    }
    if !now.starts_with(log) {
        fig.events
            .push("the event log before the crash is not a prefix of the log after".into());
    }
    *log = now;
    let keys: BTreeSet<(String, String)> = events
        .iter()
        .flat_map(|e| {
            let topic = e["topic"].as_str().unwrap_or_default().to_owned();
            ["id", "name", "container_id"]
                .into_iter()
                .filter_map(|f| e["event"][f].as_str().map(str::to_owned))
                .map(move |k| (topic.clone(), k))
        })
        .collect();
    for (topic, key) in &ledger.events {
        if !keys.contains(&((*topic).to_owned(), key.clone())) {
            fig.events.push(format!(
                "acknowledged write left no {topic} event for {key}"
            ));
        }
    }
    Ok(())
}

/// Removes every task, container and image but the base one, runs `gc.run`, then checks
/// that only the baseline remains and nothing is orphaned.
pub fn clean(
    d: &TestDaemon,
    setup: &Setup,
    base: &Baseline,
    history: &mut History,
    fig: &mut Figures,
) -> Result<()> {
    let mut api = Api::connect(&setup.socket, &setup.namespace)?;
    for id in api.tasks()? {
        let _ = api.call(
            "tasks.kill",
            json!({"container_id": id, "signal": "SIGKILL", "all": true}),
        )?;
        if let Err(e) = api.call("tasks.delete", json!({"container_id": id, "force": true}))? {
            fig.leftovers.push(format!("tasks.delete {id} force: {e}"));
        }
    }
    for c in api.containers()? {
        let id = c["id"].as_str().unwrap_or_default().to_owned();
        if let Err(e) = api.call("containers.delete", json!({"id": id}))? {
            fig.leftovers.push(format!("containers.delete {id}: {e}"));
        }
    }
    for name in api.images()? {
        if name != setup.base_image {
            if let Err(e) = api.call("images.delete", json!({"name": name}))? {
                fig.leftovers.push(format!("images.delete {name}: {e}"));
            }
        }
    }
    api.ok("gc.run", json!({}))?;

    let tasks = api.tasks()?;
    let containers = api.containers()?;
    let images: Vec<String> = api
        .images()?
        .into_iter()
        .filter(|n| *n != setup.base_image)
        .collect();
    fig.leftovers
        .extend(tasks.iter().map(|t| format!("task {t}")));
    fig.leftovers
        .extend(containers.iter().map(|c| format!("container {}", c["id"])));
    fig.leftovers
        .extend(images.iter().map(|i| format!("image {i}")));
    let id = |v: &Value| v["id"].as_str().unwrap_or_default().to_owned();
    history.carried = tasks
        .iter()
        .map(|t| (Kind::Task, t.clone()))
        .chain(containers.iter().map(|c| (Kind::Container, id(c))))
        .chain(images.iter().map(|i| (Kind::Image, i.clone())))
        .collect();
    let now = Baseline::read(d)?;
    for s in now.snapshots.difference(&base.snapshots) {
        fig.leftovers.push(format!("snapshot row {}/{}", s.0, s.1));
    }
    for s in base.snapshots.difference(&now.snapshots) {
        fig.leftovers
            .push(format!("base snapshot row gone {}/{}", s.0, s.1));
    }
    for b in now.blobs.symmetric_difference(&base.blobs) {
        fig.leftovers
            .push(format!("content row differs from baseline: {b}"));
    }
    let left = orphans::scan_until_clean(d, &setup.namespace, &setup.fifo_dir, LEFTOVER_LIMIT);
    if !left.is_empty() {
        // Counted; removed by force so the next round starts clean.
        orphans::sweep(d, &setup.namespace, &setup.fifo_dir);
        api.ok("gc.run", json!({}))?;
    }
    for (kind, items) in left {
        fig.leftovers
            .extend(items.into_iter().map(|i| format!("{kind} {i}")));
    }
    Ok(())
}

/// `t` as the daemon writes times (RFC 3339 UTC with nanoseconds), which sort as text.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, rem) = ((d.as_secs() / 86_400) as i64, d.as_secs() % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_714_566_896, 123_456_789);
        assert_eq!(rfc3339(t), "2024-05-01T12:34:56.123456789Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000000Z");
    }
}
