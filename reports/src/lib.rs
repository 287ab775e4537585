//! Reports own the versioned result model of a campaign run (`report.json`), detector scoring
//! against the ground truth, and the renderers: JSON, JUnit, Markdown and self-contained HTML, plus
//! Prometheus metrics.
//!
//! Data comes from the runner's run directory and goes to files for people and CI systems. This
//! crate is synchronous and pure.
//!
//! - [`model`]: [`Report`] and everything in `report.json`; [`schema`] publishes its JSON Schema.
//! - [`scoring`]: precision, recall, F1, time to detect, localization and false alarms per hour.
//! - [`stats`]: window statistics, timeline buckets and recovery time from per-command records,
//!   for the runner to fill a repetition.
//! - [`junit`], [`markdown`], [`html`]: renderers that read only a [`Report`]; [`render_all`]
//!   writes every format into a run directory.
//! - [`headline`]: per experiment, the hypothesis verdicts beside the fault window's success
//!   ratio, which every renderer leads with.
//! - [`compare`]: the reliability difference between two runs and regression gates.
//! - [`metrics`]: the Prometheus registry the runner updates while it runs.
#![warn(missing_docs)]

pub mod compare;
mod fmt;
pub mod headline;
pub mod html;
pub mod junit;
pub mod markdown;
pub mod metrics;
pub mod model;
pub mod scoring;
pub mod stats;

use std::path::{Path, PathBuf};

pub use model::{REPORT_FORMAT_VERSION, Report};

/// Why a report could not be read, checked or written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `report.json` is not valid JSON for the model.
    #[error("report.json is invalid at {location}: {source}")]
    Json {
        /// Line and column.
        location: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// The report has another format version.
    #[error("report.json has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// The report parses but is inconsistent.
    #[error("report.json is inconsistent at {location}: {message}")]
    InvalidReport {
        /// Which experiment, repetition or element.
        location: String,
        /// What is wrong.
        message: String,
    },
    /// A `--gate` rule is malformed.
    #[error("invalid gate rule `{rule}`: {message}")]
    InvalidGate {
        /// The rule as given.
        rule: String,
        /// What is wrong and what is accepted.
        message: String,
    },
    /// A file was refused before reading (not a regular file, over its limit) or is unreadable.
    #[error(transparent)]
    File(#[from] userinput::file::Error),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A renderer failed.
    #[error("rendering {format} failed: {message}")]
    Render {
        /// The output format.
        format: &'static str,
        /// What failed.
        message: String,
    },
}

/// The JSON Schema of `report.json`, generated from [`Report`] (published as
/// `reports/report.schema.json`).
pub fn schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(Report);
    schema.insert(
        "$id".to_owned(),
        serde_json::Value::String(format!(
            "https://example.invalid/butterfly-effect/report.schema.v{REPORT_FORMAT_VERSION}.json"
        )),
    );
    schema.to_value()
}

/// File names written into a run directory by [`render_all`].
pub const OUTPUT_FILES: [&str; 4] = ["report.json", "junit.xml", "summary.md", "report.html"];

/// Reads `report.json` from a run directory.
pub fn read_run(run_dir: &Path) -> Result<Report, Error> {
    let path = run_dir.join("report.json");
    let text = userinput::file::read_to_string(&path, userinput::file::FileKind::REPORT)?;
    Report::from_json(&text).map_err(|error| match error {
        Error::Json { location, source } => Error::Json {
            location: format!("{}:{location}", path.display()),
            source,
        },
        other => other,
    })
}

/// Renders every format from `report` into `dir` (`junit.xml`, `summary.md`, `report.html`) and
/// rewrites `report.json` in its canonical layout. Each file is written atomically.
pub fn render_all(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let path = dir.join("report.json");
    write_atomically(&path, report.to_json().as_bytes())?;
    let mut written = vec![path];
    written.extend(render_views(report, dir)?);
    Ok(written)
}

/// Renders the formats made from `report.json` (`junit.xml`, `summary.md`, `report.html`) into
/// `dir`, leaving `report.json` itself untouched: re-rendering a run never changes its record.
pub fn render_views(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let outputs = [
        ("junit.xml", junit::render(report)?),
        ("summary.md", markdown::render(report)),
        ("report.html", html::render(report)?),
    ];
    outputs
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            write_atomically(&path, text.as_bytes())?;
            Ok(path)
        })
        .collect()
}

/// Writes `bytes` to a temporary file beside `path` and renames it over `path`, so readers (CI
/// artifact uploaders, the node exporter) never see a half-written file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
