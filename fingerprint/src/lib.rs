//! Fingerprints turn execution graphs into symbol sequences, learn positive (normal) and negative
//! (known fault) fingerprints, and diagnose new transactions by edit distance and timing: anomaly,
//! localization of the faulty service, classification, and early timeouts.
//!
//! Data comes from the `tracer` crate's event model ([`tracer::event::Transaction`], read from a
//! trace directory with `tracer::import::read_transactions`) and goes out
//! as [`Diagnosis`] reports and [`alarm::Alarm`]s, which the runner scores and the reports render.
//! This crate is synchronous and pure.
//!
//! - [`symbol`]: one event → one symbol, with identifiers templated.
//! - [`timing`]: latency profiles and bounds.
//! - [`distance`]: bit-parallel Levenshtein over symbol ids, with cutoff; alignment.
//! - [`normalize`]: deterministic order of concurrent steps, collapsed polling.
//! - [`store`]: the versioned JSON [`Store`] of positive and negative fingerprints, learning.
//! - [`suspicion`]: the one weight table, and how weighted evidence ranks suspects.
//! - [`answer`]: slow answers of REST requests, and the request holding them.
//! - [`diagnose`]: anomaly, localization, classification of finished transactions.
//! - [`calibrate`]: thresholds, timing scales and the run-level verdict calibrated to a stated
//!   false-alarm rate on held-back fault-free runs.
//! - [`monitor`]: dynamic timeouts for open transactions.
//! - [`engine`]: the detection engine: every live rule over a timestamped stream of events,
//!   closed transactions, tracer signals and run phases, with the inventory's roles; out come
//!   alarms. The runner only wires it.
//! - [`watch`]: production mode: users' transactions labelled by their entry route (from the
//!   store's commands) and judged by the engine, with bounded memory and counters.
//!
//! The modules build on each other in that order: each imports only modules above it in this
//! list, never in a circle (`tests/module_layers.rs`).
#![warn(missing_docs)]

pub mod alarm;
pub mod answer;
pub mod calibrate;
pub mod diagnose;
pub mod distance;
pub mod engine;
mod error;
pub mod monitor;
pub mod normalize;
pub mod store;
pub mod suspicion;
pub mod symbol;
pub mod timing;
pub mod watch;

pub use diagnose::{Diagnosis, Status};
pub use error::Error;
pub use monitor::Monitor;
pub use store::{FaultLabel, Learned, Store};
