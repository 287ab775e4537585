//! The crate's one error type.

use std::path::PathBuf;

/// Why a testbed operation failed. Every variant names the step or the part that failed, so the
/// CLI can print it as is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The machine cannot run the testbed (not root, no namespaces, a missing tool).
    #[error("the testbed cannot run here: {0}")]
    Environment(String),
    /// The caller asked for something invalid (a bad host name, a bad `--ssh` target).
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A step of `up` (or of the image build) failed; `detail` holds the reason and last log lines.
    #[error("step `{step}` failed: {detail}")]
    Step {
        /// The step, as shown in the progress output.
        step: String,
        /// What went wrong, with the last lines of the relevant log.
        detail: String,
    },
    /// An input file (an Ansible inventory, a deployer's YAML) holds what cannot be understood:
    /// one `file:line:col: message; hint` per problem, all of them.
    #[error("{}", .0.join("\n"))]
    Located(Vec<String>),
    /// The testbed is not healthy; each entry names a failing part.
    #[error("testbed unhealthy: {}", .0.join("; "))]
    Unhealthy(Vec<String>),
    /// No testbed was found in the state directory.
    #[error("no testbed in {0} (run `butterfly testbed up`)")]
    NotUp(PathBuf),
    /// `down` could not remove everything; each entry is a leftover.
    #[error("leftovers after down: {}", .0.join("; "))]
    Residue(Vec<String>),
    /// A state file was refused before reading (not a regular file, over its limit) or is
    /// unreadable.
    #[error(transparent)]
    File(#[from] userinput::file::Error),
    /// Reading or writing a local file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Wraps an I/O error with the path it concerns.
pub(crate) fn io_at(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

/// Builds a step failure.
pub(crate) fn step_failed(step: &str, detail: impl Into<String>) -> Error {
    Error::Step {
        step: step.to_owned(),
        detail: detail.into(),
    }
}
