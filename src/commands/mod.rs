//! One module per `butterfly` subcommand. Each has an `Args` (clap) and a `run` function.

pub mod diagnose;
pub mod discover;
pub mod faults;
pub mod fingerprint;
pub mod history;
pub mod inject;
pub mod plan;
pub mod recover;
pub mod report;
pub mod run;
pub mod schema;
pub mod testbed;
pub mod trace;
pub mod validate;
pub mod watch;
