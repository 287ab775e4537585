//! What a user hands butterfly is untrusted: a path may name a device, a FIFO or a 50 MB file, and
//! a value may be 10,000 characters long or carry a password. This crate owns the two rules that
//! keep such input from exhausting the machine or leaking into messages:
//!
//! - [`file`](mod@file): every file the tool reads from a user-given path goes through one bounded reader,
//!   which refuses what is not a regular file and anything over its [`file::FileKind`]'s limit
//!   before reading it, and never reads more than the limit even from a growing file.
//! - [`echo`]: a user value shown back in a message is cut to a short excerpt, and a URL is shown
//!   with its password as `***`.
//!
//! It is a crate of its own because campaigns (`scenarios`), fingerprint stores, traces, reports
//! and the binary all read user files and echo user values, and none of them should depend on
//! another for that; it sits below them all and depends on nothing of the workspace.
#![warn(missing_docs)]

pub mod echo;
pub mod file;
