//! The `butterfly` command line and the campaign runner that wires the workspace crates together.
//!
//! `cli` parses arguments (clap) and dispatches to one module per command under `commands`. Each
//! command returns an [`exit::Exit`] or a [`exit::CliError`]; both map to the documented exit codes
//! (0 pass, 1 gate failed, 2 invalid input, 3 testbed/setup error, 4 interrupted).
#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod exit;
pub mod runner;
