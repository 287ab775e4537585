//! The crate's error type.

use std::path::PathBuf;

/// Why a fingerprint store could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file was refused before reading (not a regular file, over its limit) or is unreadable.
    #[error(transparent)]
    File(#[from] userinput::file::Error),
    /// A file is not valid JSON or does not have the expected shape.
    #[error("{path}:{line}:{column}: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Line, 1-based.
        line: usize,
        /// Column, 1-based.
        column: usize,
        /// The parser's message.
        source: serde_json::Error,
    },
    /// A store file of another format or version.
    #[error("{path}: not a usable fingerprint store: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}
