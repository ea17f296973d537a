//! The keeper: the small process that parents every task's processes so that their exits
//! outlive berthd. `server` is the keeper process itself (`berthd keeper --state DIR`),
//! `client` is berthd's connection to it, `proto` what the two say.
//!
//! Why one keeper per host and not one shim per task (containerd's choice): a task costs
//! no process of its own, and the keeper is small and does one thing (spawn, reap, store,
//! hold descriptors), so it rarely needs to change; berthd can crash, restart or be
//! upgraded while tasks run. When the keeper dies, the berthd that started it reaps its
//! orphans and starts a successor at once (`service::tasks::handover`); only the orphans of
//! a keeper an earlier berthd started are beyond reach, reported with reason `lost`, never
//! as a silent 255.
pub mod client;
pub mod proto;
pub mod server;

pub use client::{ExitWait, Keeper, KeeperError, SpawnExit, Spawned, Watched};
pub use proto::{ExitRecord, Held, Identity};
