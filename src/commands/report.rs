//! `butterfly report`: re-render a run's reports from its `report.json`, or compare two runs and
//! gate on regressions.

use std::path::{Path, PathBuf};

use reports::compare::{self, GateFailure, GateRule};

use crate::exit::{CliError, Exit};

const REPORT_EXAMPLES: &str = "\
Examples:
  butterfly report runs/ci-smoke-20261120T140211Z
  butterfly report runs/ci-smoke-20261120T140211Z --gate fingerprint:min-recall=0.9
  butterfly report --compare runs/release-2025.1 runs/ci-smoke-20261120T140211Z \\
      --gate regressions --gate f1-drop=0.05";

/// Re-render every report format of a run from its report.json, or compare two runs.
///
/// Without --compare, writes junit.xml, summary.md, report.html and metrics.prom into RUN_DIR
/// and exits 1 when a hypothesis failed (or a --gate threshold is breached).
/// With --compare, prints the reliability difference between BASELINE_RUN and RUN_DIR as
/// Markdown and exits 1 only when a --gate rule is breached.
///
/// Gate rules (repeatable): regressions, success-ratio-drop=R, recovery-increase=S, f1-drop=R,
/// min-precision=R, min-recall=R, min-f1=R, min-top1=R, min-top3=R,
/// max-false-alarms-per-hour=N, max-time-to-detect=S; detector rules may be limited to one
/// detector with a `DETECTOR:` prefix.
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, after_help = REPORT_EXAMPLES)]
pub struct Args {
    /// Run directory holding report.json.
    pub run_dir: PathBuf,
    /// Baseline run directory to compare RUN_DIR against.
    #[arg(long, value_name = "BASELINE_RUN")]
    pub compare: Option<PathBuf>,
    /// Gate rule; may be given several times.
    #[arg(long = "gate", value_name = "RULE")]
    pub gates: Vec<String>,
    /// Also write the comparison (Markdown) to this file.
    #[arg(long, value_name = "FILE", requires = "compare")]
    pub output: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let rules = args
        .gates
        .iter()
        .map(|rule| rule.parse::<GateRule>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| CliError::InvalidInput(error.to_string()))?;
    let current = read(&args.run_dir)?;
    match &args.compare {
        None => {
            let failures = compare::gate(&current, None, &rules)
                .map_err(|e| CliError::InvalidInput(e.to_string()))?;
            let written = reports::render_all(&current, &args.run_dir)
                .map_err(|e| CliError::Setup(e.to_string()))?;
            let metrics = reports::metrics::RunMetrics::from_report(&current);
            let metrics_path = args.run_dir.join("metrics.prom");
            metrics
                .write_textfile(&metrics_path)
                .map_err(|e| CliError::Setup(e.to_string()))?;
            for path in written.iter().chain(std::iter::once(&metrics_path)) {
                eprintln!("wrote {}", path.display());
            }
            let held = current
                .hypotheses()
                .filter(|(_, _, h)| h.verdict == reports::model::Verdict::Pass)
                .count();
            let total = current.hypotheses().count();
            println!(
                "{}: {held} of {total} hypotheses held",
                current.campaign.name
            );
            report_failures(&failures);
            Ok(if current.passed() && failures.is_empty() {
                Exit::Pass
            } else {
                Exit::GateFailed
            })
        }
        Some(baseline_dir) => {
            let baseline = read(baseline_dir)?;
            let comparison = compare::compare(&baseline, &current);
            let failures = compare::gate(&current, Some(&comparison), &rules)
                .map_err(|e| CliError::InvalidInput(e.to_string()))?;
            let markdown = comparison.to_markdown();
            print!("{markdown}");
            if let Some(output) = &args.output {
                reports::write_atomically(output, markdown.as_bytes())
                    .map_err(|e| CliError::Setup(e.to_string()))?;
            }
            report_failures(&failures);
            Ok(if failures.is_empty() {
                Exit::Pass
            } else {
                Exit::GateFailed
            })
        }
    }
}

fn read(run_dir: &Path) -> Result<reports::Report, CliError> {
    reports::read_run(run_dir).map_err(|error| CliError::InvalidInput(error.to_string()))
}

fn report_failures(failures: &[GateFailure]) {
    for failure in failures {
        eprintln!("gate `{}` failed: {}", failure.rule, failure.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("reports/tests/fixtures")
            .join(name)
    }

    fn copy_run(name: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            fixture(name).join("report.json"),
            dir.path().join("report.json"),
        )
        .unwrap();
        dir
    }

    fn args(run_dir: &Path, compare: Option<&Path>, gates: &[&str]) -> Args {
        Args {
            run_dir: run_dir.to_owned(),
            compare: compare.map(Path::to_owned),
            gates: gates.iter().map(|g| (*g).to_owned()).collect(),
            output: None,
        }
    }

    #[test]
    fn rerendering_a_failed_run_writes_every_format_and_fails_the_gate() {
        let run = copy_run("run");
        assert_eq!(run_cmd(args(run.path(), None, &[])), Exit::GateFailed);
        for name in reports::OUTPUT_FILES.iter().chain(&["metrics.prom"]) {
            assert!(run.path().join(name).is_file(), "{name} was not written");
        }
    }

    #[test]
    fn a_passing_run_passes_unless_a_detector_threshold_is_breached() {
        let run = copy_run("baseline-run");
        assert_eq!(run_cmd(args(run.path(), None, &[])), Exit::Pass);
        assert_eq!(
            run_cmd(args(run.path(), None, &["min-recall=0.9"])),
            Exit::GateFailed
        );
    }

    #[test]
    fn compare_gates_on_regressions_only_when_asked() {
        let (baseline, current) = (copy_run("baseline-run"), copy_run("run"));
        assert_eq!(
            run_cmd(args(current.path(), Some(baseline.path()), &[])),
            Exit::Pass
        );
        assert_eq!(
            run_cmd(args(
                current.path(),
                Some(baseline.path()),
                &["regressions"]
            )),
            Exit::GateFailed
        );
        assert_eq!(
            run_cmd(args(
                baseline.path(),
                Some(baseline.path()),
                &["regressions"]
            )),
            Exit::Pass
        );
    }

    #[test]
    fn bad_input_is_invalid_input() {
        let dir = copy_run("run");
        let error = run(args(dir.path(), None, &["fastest"])).unwrap_err();
        assert_eq!(error.code(), 2, "{error}");
        let error = run(args(dir.path(), None, &["regressions"])).unwrap_err();
        assert!(error.to_string().contains("--compare"), "{error}");
        let empty = tempfile::tempdir().unwrap();
        let error = run(args(empty.path(), None, &[])).unwrap_err();
        assert_eq!(error.code(), 2);
        assert!(error.to_string().contains("report.json"), "{error}");
    }

    fn run_cmd(args: Args) -> Exit {
        run(args).expect("the command runs")
    }
}
