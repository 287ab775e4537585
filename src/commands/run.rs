//! `butterfly run CAMPAIGN`: run a campaign against a cloud and write its reliability report.

use std::path::PathBuf;

use crate::exit::{CliError, Exit};
use crate::runner::{self, RunOptions};

/// Run a campaign: workload, tracing, faults at their triggers, hypotheses, detector scores.
///
/// Exit codes: 0 every hypothesis held, 1 one failed (or a guardrail aborted the run), 2 the
/// campaign is invalid, 3 the testbed or cloud is not usable, 4 interrupted (after reverting).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  butterfly run scenarios/examples/ci-smoke.yaml\n  butterfly run --run-dir /tmp/run1 scenarios/examples/kill-conductor.yaml\n  butterfly run --label release=2025.1 --label build=4f2c1a9 scenarios/examples/ci-smoke.yaml\n  butterfly run --history postgres://butterfly@db.example/history scenarios/examples/ci-smoke.yaml"
)]
pub struct Args {
    /// The campaign file.
    #[arg(value_name = "CAMPAIGN")]
    pub campaign: PathBuf,
    /// Where to write results (default: `OUTPUT_DIR/NAME-TIME`, from the campaign).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Do not check, before each repetition, that every nova service is up and (after the
    /// first) that the workload runs as it did in the baselines.
    #[arg(long)]
    pub skip_health_check: bool,
    /// Record the run in this history: a SQLite file (a path or `sqlite:PATH`) or a
    /// `postgres://` URL [default: the campaign's output.history, else
    /// OUTPUT_DIR/history.sqlite].
    #[arg(long, value_name = "URL", env = "BUTTERFLY_HISTORY")]
    pub history: Option<String>,
    /// Do not record the run in the history (wins over --history and output.history).
    #[arg(long)]
    pub no_history: bool,
    /// Label to record the run with (repeatable), e.g. `release=2025.1`, `build=4f2c1a9`; adds
    /// to and overrides the campaign's output.labels.
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|error| CliError::Setup(format!("cannot start the async runtime: {error}")))?;
    runtime.block_on(runner::run(RunOptions {
        campaign: args.campaign,
        run_dir: args.run_dir,
        skip_health_check: args.skip_health_check,
        history: args.history,
        no_history: args.no_history,
        labels: args.labels,
    }))
}
