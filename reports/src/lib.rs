//! Reports own the versioned result model of a campaign run (`report.json`), detector scoring
//! against the ground truth, and the renderers: JSON, JUnit, Markdown and self-contained HTML, plus
//! Prometheus metrics.
//!
//! Data comes from the runner's run directory and goes to files for people and CI systems. This
//! crate is synchronous and pure.
#![warn(missing_docs)]
