//! The crash harness (`make crash`, binary `crash`): a mixed workload against a real
//! berthd, `kill -9` at a random moment, restart, then checks that every acknowledged
//! write survived, nothing appeared that no client wrote, tasks that ran across the crash
//! report their exact exit status, the event log has no gap, and nothing on disk or in the
//! OS lacks its row. It drives the daemon only through its socket, its client binary and
//! (read-only) its SQLite file, and never touches a daemon it did not start.

pub mod api;
pub mod check;
pub mod figures;
pub mod ledger;
pub mod netscan;
pub mod orphans;
pub mod rng;
pub mod workload;
