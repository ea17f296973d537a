//! The figures one round produces and the run adds up: acknowledged ops, lost and phantom
//! objects, orphans by kind, exit statuses exact or wrong, event-log and integrity faults,
//! and what cleanup left. Every list must be empty for the run to pass.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Orphan kinds, in report order. A "row without" kind is the reverse fault: a row whose
/// object is gone.
pub const ORPHAN_KINDS: [&str; 15] = [
    "runc container",
    "mount",
    "cgroup",
    "bundle",
    "fifo",
    "snapshot dir",
    "blob",
    "ingest file",
    "snapshot row without dir",
    "blob row without file",
    "ipam entry",
    "netns pin",
    "veth",
    "iptables rule",
    "scan error",
];

#[derive(Debug, Default)]
pub struct Figures {
    pub rounds: u64,
    pub acked: u64,
    pub lost: Vec<String>,
    pub phantom: Vec<String>,
    pub orphans: BTreeMap<&'static str, Vec<String>>,
    /// Exit statuses replies carried while the daemon was up.
    pub up_exact: u64,
    pub up_wrong: Vec<String>,
    /// Exit statuses recorded before the kill, read again after the restart.
    pub kept_exact: u64,
    pub kept_wrong: Vec<String>,
    /// Exit statuses of tasks still running at the kill (they exited while berthd was down
    /// or after the restart), read after the restart.
    pub crash_exact: u64,
    pub crash_wrong: Vec<String>,
    pub events: Vec<String>,
    pub integrity: Vec<String>,
    /// Errors from a live daemon, and anything the harness could not check.
    pub errors: Vec<String>,
    /// What remained after the round's cleanup.
    pub leftovers: Vec<String>,
}

impl Figures {
    pub fn orphan(&mut self, kind: &'static str, what: String) {
        self.orphans.entry(kind).or_default().push(what);
    }

    pub fn orphan_count(&self) -> usize {
        self.orphans.values().map(Vec::len).sum()
    }

    /// Whether every figure is 0 / exact.
    pub fn clean(&self) -> bool {
        self.lost.is_empty()
            && self.phantom.is_empty()
            && self.orphan_count() == 0
            && self.up_wrong.is_empty()
            && self.kept_wrong.is_empty()
            && self.crash_wrong.is_empty()
            && self.events.is_empty()
            && self.integrity.is_empty()
            && self.errors.is_empty()
            && self.leftovers.is_empty()
    }

    pub fn add(&mut self, round: Figures) {
        self.rounds += round.rounds;
        self.acked += round.acked;
        self.lost.extend(round.lost);
        self.phantom.extend(round.phantom);
        for (k, v) in round.orphans {
            self.orphans.entry(k).or_default().extend(v);
        }
        self.up_exact += round.up_exact;
        self.up_wrong.extend(round.up_wrong);
        self.kept_exact += round.kept_exact;
        self.kept_wrong.extend(round.kept_wrong);
        self.crash_exact += round.crash_exact;
        self.crash_wrong.extend(round.crash_wrong);
        self.events.extend(round.events);
        self.integrity.extend(round.integrity);
        self.errors.extend(round.errors);
        self.leftovers.extend(round.leftovers);
    }

    /// One line per round.
    pub fn line(&self, round: u64, load_ms: u64, down_ms: u64, secs: f64) -> String {
        format!(
            "round {round:>3} ({secs:>4.1} s): load {load_ms:>4} ms, down {down_ms:>3} ms | acked {:>4} lost {} \
             phantom {} orphans {} | exact exits: up {}/{} kept {}/{} crash {}/{} | events {} integrity {} \
             errors {} leftovers {}",
            self.acked,
            self.lost.len(),
            self.phantom.len(),
            self.orphan_count(),
            self.up_exact,
            self.up_exact + self.up_wrong.len() as u64,
            self.kept_exact,
            self.kept_exact + self.kept_wrong.len() as u64,
            self.crash_exact,
            self.crash_exact + self.crash_wrong.len() as u64,
            self.events.len(),
            self.integrity.len(),
            self.errors.len(),
            self.leftovers.len(),
        )
    }

    /// Details of every fault, at most `limit` per list.
    pub fn details(&self, limit: usize) -> String {
        let mut out = String::new();
        let mut list = |name: &str, items: &[String]| {
            for item in items.iter().take(limit) {
                let _ = writeln!(out, "  {name}: {item}");
            }
            if items.len() > limit {
                let _ = writeln!(out, "  {name}: ... {} more", items.len() - limit);
            }
        };
        list("lost", &self.lost);
        list("phantom", &self.phantom);
        for (kind, items) in &self.orphans {
            list(&format!("orphan {kind}"), items);
        }
        list("exit wrong (up)", &self.up_wrong);
        list("exit wrong (kept)", &self.kept_wrong);
        list("exit wrong (crash)", &self.crash_wrong);
        list("events", &self.events);
        list("integrity", &self.integrity);
        list("error", &self.errors);
        list("leftover", &self.leftovers);
        out
    }

    /// The closing table.
    pub fn table(&self) -> String {
        let mut rows: Vec<(String, String)> = vec![
            ("rounds (kill -9)".into(), self.rounds.to_string()),
            ("acknowledged ops".into(), self.acked.to_string()),
            ("lost".into(), self.lost.len().to_string()),
            ("phantom".into(), self.phantom.len().to_string()),
        ];
        for kind in ORPHAN_KINDS {
            let n = self.orphans.get(kind).map_or(0, Vec::len);
            rows.push((format!("orphans: {kind}"), n.to_string()));
        }
        let exits = |exact: u64, wrong: usize| format!("{exact} exact, {wrong} wrong");
        rows.extend([
            (
                "exit codes, replies while up".into(),
                exits(self.up_exact, self.up_wrong.len()),
            ),
            (
                "exit codes, recorded before the kill".into(),
                exits(self.kept_exact, self.kept_wrong.len()),
            ),
            (
                "exit codes, running at the kill".into(),
                exits(self.crash_exact, self.crash_wrong.len()),
            ),
            ("event log faults".into(), self.events.len().to_string()),
            ("integrity faults".into(), self.integrity.len().to_string()),
            ("errors while up".into(), self.errors.len().to_string()),
            (
                "left after cleanup".into(),
                self.leftovers.len().to_string(),
            ),
        ]);
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (k, v) in rows {
            let _ = writeln!(out, "{k:<width$}  {v}");
        }
        let _ = writeln!(
            out,
            "{:<width$}  {}",
            "verdict",
            if self.clean() { "PASS" } else { "FAIL" }
        );
        out
    }
}
