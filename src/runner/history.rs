//! Recording a finished run in the run history. Decided before the run starts (a bad `--label`
//! or history URL is invalid input, exit 2, before anything is injected); done after the report
//! is written, so that a history that cannot be reached never costs the run: the run directory
//! is complete and the error says how to import it later.

use std::path::{Path, PathBuf};

use history::store::Location;
use history::{Labels, Recorded, Store};
use scenarios::model::Campaign;

use crate::exit::CliError;

/// Where and how a run is recorded; `None` with `--no-history`.
#[derive(Debug, Clone)]
pub struct Recording {
    location: Location,
    labels: Labels,
}

/// The history a run goes to: `--history`, else the campaign's `output.history`, else
/// `history.sqlite` in the directory that holds the run directory (`--run-dir`'s parent, or
/// `output.dir`), where `report RUN_DIR --gate regression-vs` looks for it; its labels: the
/// campaign's `output.labels`, overridden by `--label`.
pub fn plan(
    campaign: &Campaign,
    run_dir: Option<&Path>,
    history: Option<&str>,
    no_history: bool,
    labels: &[String],
) -> Result<Option<Recording>, CliError> {
    let mut all: Labels = campaign.output.labels.clone();
    all.extend(crate::commands::history::parse_labels(labels)?);
    if no_history {
        return Ok(None);
    }
    let location = match history.or(campaign.output.history.as_deref()) {
        Some(text) => Location::parse(text).map_err(|e| CliError::InvalidInput(e.to_string()))?,
        None => Location::beside(&runs_dir(&campaign.output.dir, run_dir)),
    };
    Ok(Some(Recording {
        location,
        labels: all,
    }))
}

/// The directory that holds the run directory: `--run-dir`'s parent, else `output.dir`.
fn runs_dir(output_dir: &Path, run_dir: Option<&Path>) -> PathBuf {
    match run_dir.map(|dir| dir.parent().unwrap_or(Path::new(""))) {
        Some(parent) if parent.as_os_str().is_empty() => PathBuf::from("."),
        Some(parent) => parent.to_owned(),
        None => output_dir.to_owned(),
    }
}

/// Records the run whose report is in `run_dir`. The sync PostgreSQL client must not run on the
/// async runtime's threads, hence the blocking task. Failures are printed, never returned: the
/// run's own outcome decides the exit code.
pub async fn record(recording: Recording, report: reports::Report, run_dir: PathBuf) {
    let shown = recording.location.display();
    let dir = run_dir.clone();
    let result = tokio::task::spawn_blocking(move || {
        let mut store = Store::open(&recording.location)?;
        store.record(
            &report,
            &recording.labels,
            Some(&run_dir),
            jiff::Timestamp::now(),
        )
    })
    .await;
    match result {
        Ok(Ok(Recorded::Added)) => eprintln!("butterfly: recorded the run in the history {shown}"),
        Ok(Ok(Recorded::AlreadyPresent)) => {
            eprintln!("butterfly: the history {shown} already holds this run")
        }
        Ok(Err(error)) => eprintln!("{}", failed(&shown, &error.to_string(), &dir)),
        Err(error) => eprintln!("{}", failed(&shown, &error.to_string(), &dir)),
    }
}

fn failed(shown: &str, error: &str, run_dir: &Path) -> String {
    format!(
        "butterfly: error: could not record the run in the history {shown}: {error}\n\
         butterfly: the run directory {dir} is complete; record it later with\n  \
         butterfly history import --history {shown} {dir}",
        dir = run_dir.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_history_sits_beside_the_run_directory_actually_used() {
        let output = Path::new("scenarios/examples/runs");
        assert_eq!(runs_dir(output, None), output);
        assert_eq!(
            runs_dir(output, Some(Path::new("runs/ci-smoke-1"))),
            Path::new("runs")
        );
        assert_eq!(
            runs_dir(output, Some(Path::new("ci-smoke-1"))),
            Path::new(".")
        );
        assert_eq!(
            runs_dir(output, Some(Path::new("/srv/runs/x"))),
            Path::new("/srv/runs")
        );
    }

    #[test]
    fn the_failure_message_says_how_to_import_the_run_later() {
        let message = failed(
            &userinput::echo::redact_url("postgres://u:secret@db/h"),
            "connection refused",
            Path::new("runs/x"),
        );
        assert!(!message.contains("secret"), "{message}");
        assert!(
            message.contains("butterfly history import --history postgres://u:")
                && message.ends_with(" runs/x"),
            "{message}"
        );
    }
}
