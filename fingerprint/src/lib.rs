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
//! - [`normalize`]: deterministic order of concurrent steps, collapsed polling.
//! - [`distance`]: bit-parallel Levenshtein over symbol ids, with cutoff; alignment.
//! - [`store`]: the versioned JSON [`Store`] of positive and negative fingerprints, learning.
//! - [`diagnose`]: anomaly, localization, classification of finished transactions.
//! - [`answer`]: slow answers of REST requests, and the request holding them.
//! - [`monitor`]: dynamic timeouts for open transactions.
#![warn(missing_docs)]

pub mod alarm;
pub mod answer;
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

pub use diagnose::{Diagnosis, Status};
pub use error::Error;
pub use monitor::Monitor;
pub use store::{FaultLabel, Learned, Store};
