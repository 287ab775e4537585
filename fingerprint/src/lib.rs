//! Fingerprints turn execution graphs into symbol sequences, learn positive (normal) and negative
//! (known fault) fingerprints, and diagnose new transactions by edit distance and timing: anomaly,
//! localization of the faulty service, classification, and early timeouts.
//!
//! Data comes from the `tracer` crate's event model and goes out as alarms and diagnoses, which the
//! runner scores and the reports render. This crate is synchronous and pure.
#![warn(missing_docs)]

pub mod alarm;
