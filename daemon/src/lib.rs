//! berthd: containers as metadata, tasks driven by runc, JSON-RPC 2.0 on one unix socket.
//!
//! Layers (dependencies point down): `api` (transports, thin handlers) -> `service` (the
//! rules) -> `store` (SQLite) and the OS layers `runtime` (runc, reaper, stdio, pty) and
//! `unpack` (layer extraction). `app` wires them; `daemon` runs them.

pub mod api;
pub mod app;
pub mod config;
pub mod content;
pub mod daemon;
pub mod filter;
pub mod keeper;
pub mod layout;
pub mod lock;
pub mod oci;
pub mod preflight;
pub mod registry;
pub mod runtime;
pub mod service;
pub mod snapshot;
pub mod store;
pub mod systemd;
pub mod unpack;

#[cfg(test)]
mod fuzz_support;
