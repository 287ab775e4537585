//! Exit codes and the error type every command returns.
//!
//! The codes are part of the interface: CI systems gate releases on them, so each has one meaning.

use std::process::ExitCode;

/// The outcome of a command that ran to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything passed (exit 0).
    Pass,
    /// The command ran, but a gate failed: a hypothesis, a threshold, a check (exit 1).
    GateFailed,
}

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum CliError {
    /// The input (campaign, flags, files) is invalid (exit 2). The message holds every diagnostic.
    #[error("{0}")]
    InvalidInput(String),
    /// The testbed or the environment is not usable (exit 3).
    #[error("{0}")]
    Setup(String),
    /// The run was interrupted by Ctrl-C or SIGTERM after cleaning up (exit 4).
    #[error("interrupted: {0}")]
    Interrupted(String),
}

impl CliError {
    /// The process exit code for this error.
    pub fn code(&self) -> u8 {
        match self {
            CliError::InvalidInput(_) => 2,
            CliError::Setup(_) => 3,
            CliError::Interrupted(_) => 4,
        }
    }
}

impl Exit {
    /// The process exit code for this outcome.
    pub fn code(self) -> u8 {
        match self {
            Exit::Pass => 0,
            Exit::GateFailed => 1,
        }
    }
}

/// Converts a command result into the process exit code, printing the error on stderr.
pub fn finish(result: Result<Exit, CliError>) -> ExitCode {
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(error) => {
            let code = error.code();
            eprintln!("error: {error}");
            ExitCode::from(code)
        }
    }
}
