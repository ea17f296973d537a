//! What each client thread believes the daemon holds: every write it sent, whether the reply
//! arrived (acknowledged), was an error (refused), or never came because the daemon died
//! (in flight). Objects are owned by one client, so their writes are sequential and the
//! acknowledged state plus the one write in flight bound what may be stored after a crash.

use std::collections::BTreeMap;

use serde_json::Value;

/// The kinds of object the workload writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Container,
    Image,
    Task,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Container => "container",
            Kind::Image => "image",
            Kind::Task => "task",
        }
    }
}

/// One object's stored state as a client sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Absent,
    /// Present; for containers the labels (`Null`: any labels).
    Present(Value),
}

impl State {
    /// Whether `actual` (read back from the daemon) is this state.
    pub fn admits(&self, actual: &State) -> bool {
        match (self, actual) {
            (State::Absent, State::Absent) => true,
            (State::Present(Value::Null), State::Present(_)) => true,
            (State::Present(want), State::Present(got)) => want == got,
            _ => false,
        }
    }
}

/// The write that had no reply when the daemon died.
#[derive(Debug, Clone, PartialEq)]
pub enum InFlight {
    /// It would have left the object in this state.
    To(State),
    /// A multi-step command (`berth run --rm`): any state is possible.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Record {
    pub acked: State,
    pub in_flight: Option<InFlight>,
}

impl Record {
    /// Whether `actual` is what the acknowledged writes, or the one in flight, left.
    pub fn admits(&self, actual: &State) -> bool {
        self.acked.admits(actual)
            || match &self.in_flight {
                Some(InFlight::To(s)) => s.admits(actual),
                Some(InFlight::Unknown) => true,
                None => false,
            }
    }
}

/// Whether a task's start was acknowledged, in flight, or never sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    NotSent,
    InFlight,
    Acked,
}

/// A task whose exit status is known in advance.
#[derive(Debug, Clone)]
pub struct ExitPlan {
    /// `sh -c 'sleep S; exit CODE'`, or 137 for a long sleeper the harness SIGKILLs.
    pub expected: i64,
    pub start: Start,
}

/// An exit status some reply carried, with what it should have been.
#[derive(Debug, Clone)]
pub struct ExitSeen {
    pub id: String,
    pub expected: i64,
    pub got: i64,
    pub how: &'static str,
}

/// An event an acknowledged write must have left: `(topic, id or name)`.
pub type EventKey = (&'static str, String);

/// One client's log.
#[derive(Debug, Default)]
pub struct Ledger {
    pub records: BTreeMap<(Kind, String), Record>,
    pub exits: BTreeMap<String, ExitPlan>,
    /// Exit statuses replies carried while the daemon was up (`tasks.wait`, `tasks.delete`,
    /// `berth run`).
    pub seen: Vec<ExitSeen>,
    pub events: Vec<EventKey>,
    pub acked_ops: u64,
    /// Domain errors and other surprises while the daemon was up.
    pub errors: Vec<String>,
}

impl Ledger {
    /// Notes a write to `(kind, id)` that would leave it `to`.
    pub fn send(&mut self, kind: Kind, id: &str, to: State) {
        self.records
            .entry((kind, id.to_owned()))
            .or_insert(Record {
                acked: State::Absent,
                in_flight: None,
            })
            .in_flight = Some(InFlight::To(to));
    }

    /// Notes a command whose outcome will be unknown unless it finishes.
    pub fn send_unknown(&mut self, kind: Kind, id: &str) {
        self.records
            .entry((kind, id.to_owned()))
            .or_insert(Record {
                acked: State::Absent,
                in_flight: None,
            })
            .in_flight = Some(InFlight::Unknown);
    }

    /// The write in flight on `(kind, id)` was acknowledged.
    pub fn ack(&mut self, kind: Kind, id: &str) {
        if let Some(r) = self.records.get_mut(&(kind, id.to_owned())) {
            if let Some(InFlight::To(s)) = r.in_flight.take() {
                r.acked = s;
            }
        }
        self.acked_ops += 1;
    }

    /// `(kind, id)` is known to be in `state` (a finished `berth run --rm`).
    pub fn settle(&mut self, kind: Kind, id: &str, state: State) {
        if let Some(r) = self.records.get_mut(&(kind, id.to_owned())) {
            r.acked = state;
            r.in_flight = None;
        }
    }

    /// The write in flight on `(kind, id)` was refused: nothing changed.
    pub fn refuse(&mut self, kind: Kind, id: &str, why: String) {
        if let Some(r) = self.records.get_mut(&(kind, id.to_owned())) {
            r.in_flight = None;
        }
        self.errors.push(why);
    }

    /// Folds another client's log into this one.
    pub fn merge(&mut self, other: Ledger) {
        self.records.extend(other.records);
        self.exits.extend(other.exits);
        self.seen.extend(other.seen);
        self.events.extend(other.events);
        self.acked_ops += other.acked_ops;
        self.errors.extend(other.errors);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_write_in_flight_admits_both_outcomes_and_an_ack_only_the_new_one() {
        let mut l = Ledger::default();
        l.send(Kind::Container, "a", State::Present(json!({"v": "1"})));
        let r = &l.records[&(Kind::Container, "a".to_owned())];
        assert!(r.admits(&State::Absent));
        assert!(r.admits(&State::Present(json!({"v": "1"}))));
        assert!(!r.admits(&State::Present(json!({"v": "2"}))));
        l.ack(Kind::Container, "a");
        let r = &l.records[&(Kind::Container, "a".to_owned())];
        assert!(
            !r.admits(&State::Absent),
            "an acknowledged create is never lost"
        );
        assert_eq!(l.acked_ops, 1);
    }

    #[test]
    fn present_null_admits_any_labels_and_unknown_admits_anything() {
        assert!(State::Present(Value::Null).admits(&State::Present(json!({"x": "y"}))));
        let mut l = Ledger::default();
        l.send_unknown(Kind::Container, "r");
        let r = &l.records[&(Kind::Container, "r".to_owned())];
        assert!(r.admits(&State::Absent) && r.admits(&State::Present(json!({}))));
    }
}
