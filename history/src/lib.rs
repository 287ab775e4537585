//! The run history: every run's figures kept in a database, listed, drawn as trends across runs
//! and gated on ("is this run worse than the spread of the last five comparable ones?").
//!
//! A run directory's `report.json` (the [`reports::model::Report`]) is the only input. [`record`]
//! turns it into rows — the run with its labels (OpenStack release, deployer, build, free
//! `--label k=v`), one row per repetition (faults, targets, verdict, recovery time), per
//! hypothesis, per window and command (success ratio, p50/p95/p99), per detector (precision,
//! recall, F1, time to detect, top-1/top-3) — and the run's [`figures`]: the numbers a trend
//! plots and a gate compares, each with the direction in which it gets worse. [`Store`] holds them
//! in SQLite (embedded, a file beside the run directories: nothing to start) or PostgreSQL (for a
//! team, and for Grafana), behind one type so that the runner, `butterfly history` and
//! `butterfly report --trends` share one implementation. [`stats`] decides regressions and
//! [`trends`] renders the self-contained HTML page; both are pure.
//!
//! Why a crate of its own: the runner records, the `history` and `report` commands read and
//! import, and the SQL drivers (rusqlite with its bundled SQLite, the `postgres` client) should
//! not weigh on the pure `reports` crate that every renderer uses.
//!
//! The store is synchronous. The `postgres` client runs its own runtime and panics inside
//! another one: async callers (the runner) use it from `spawn_blocking`.

pub mod figures;
pub mod gate;
pub mod labels;
pub mod record;
pub mod stats;
pub mod store;
pub mod trends;

pub use figures::{Better, Figure};
pub use labels::Labels;
pub use record::Recorded;
pub use store::{Filter, RunSummary, Store};

/// Why the history could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The history location is neither a path nor a `sqlite:`/`postgres://` URL.
    #[error("{0}")]
    Location(String),
    /// SQLite failed.
    #[error("SQLite history {path}: {source}")]
    Sqlite {
        /// The database file.
        path: String,
        /// The driver's error.
        #[source]
        source: rusqlite::Error,
    },
    /// PostgreSQL failed.
    #[error("PostgreSQL history {url}: {source}")]
    Postgres {
        /// The URL, without its password.
        url: String,
        /// The driver's error.
        #[source]
        source: postgres::Error,
    },
    /// The database holds a newer schema than this build knows.
    #[error(
        "the history schema is at version {found}, newer than this butterfly's {supported}; use a newer butterfly"
    )]
    NewerSchema {
        /// Version in the database.
        found: i64,
        /// Latest version this build migrates to.
        supported: i64,
    },
    /// No run with this id.
    #[error("no run {0} in the history")]
    NoSuchRun(String),
    /// A label is malformed.
    #[error("{0}")]
    Label(String),
    /// A run directory's report could not be read.
    #[error(transparent)]
    Report(#[from] reports::Error),
}
