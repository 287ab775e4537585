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
      --gate regressions --gate f1-drop=0.05
  butterfly report runs/ci-smoke-20261120T140211Z --gate 'regression-vs:last=5,label=release=2025.1'
  butterfly report --trends trends.html --campaign ci-smoke --order-by release";

/// Re-render every report format of a run from its report.json, or compare two runs.
///
/// Without --compare, writes junit.xml, summary.md, report.html and metrics.prom into RUN_DIR
/// and exits 1 when a hypothesis failed (or a --gate threshold is breached).
/// With --compare, prints the reliability difference between BASELINE_RUN and RUN_DIR as
/// Markdown and exits 1 only when a --gate rule is breached.
///
/// Gate rules (repeatable): regressions, latency-regressions, success-ratio-drop=R, recovery-increase=S, f1-drop=R,
/// min-precision=R, min-recall=R, min-f1=R, min-top1=R, min-top3=R,
/// max-false-alarms-per-hour=N, max-time-to-detect=S; detector rules may be limited to one
/// detector with a `DETECTOR:` prefix. regression-vs:last=N,label=K=V fails when a figure is
/// worse than the spread of the last N comparable runs in the run history (--history, default
/// the history.sqlite beside RUN_DIR).
///
/// With --trends FILE, writes a self-contained HTML page with one plot per experiment and
/// figure across the runs of the history that match the filters (no RUN_DIR).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, after_help = REPORT_EXAMPLES)]
pub struct Args {
    /// Run directory holding report.json.
    #[arg(required_unless_present = "trends")]
    pub run_dir: Option<PathBuf>,
    /// Write the trends page of the run history to this file instead (filters below).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["run_dir", "compare"])]
    pub trends: Option<PathBuf>,
    /// Which runs the trends page is about.
    #[command(flatten)]
    pub filters: crate::commands::history::FilterArgs,
    /// The run history (for --trends and regression-vs gates).
    #[command(flatten)]
    pub store: crate::commands::history::StoreArg,
    /// Baseline run directory to compare RUN_DIR against.
    #[arg(long, value_name = "BASELINE_RUN")]
    pub compare: Option<PathBuf>,
    /// Gate rule; may be given several times.
    #[arg(long = "gate", value_name = "RULE")]
    pub gates: Vec<String>,
    /// Also write the comparison (Markdown) to this file.
    #[arg(long, value_name = "FILE", requires = "compare")]
    pub output: Option<PathBuf>,
    /// With --compare: a command's p95 or p99 latency regressed when it grew by more than this
    /// ratio (`0.2` or `20%`) and by at least --latency-min-increase.
    #[arg(long, value_name = "RATIO", default_value = "20%", value_parser = ratio, requires = "compare")]
    pub latency_threshold: f64,
    /// With --compare: the smallest latency growth that counts as a regression (`50ms`, `1s`).
    #[arg(long, value_name = "DURATION", default_value = "50ms", value_parser = duration_ms, requires = "compare")]
    pub latency_min_increase: f64,
    /// With --compare: compare runs of different campaigns (or without a common experiment),
    /// which is refused otherwise.
    #[arg(long, requires = "compare")]
    pub allow_unrelated: bool,
}

fn ratio(text: &str) -> Result<f64, String> {
    compare::parse_ratio(text)
        .filter(|v| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("`{text}` is not a non-negative ratio (`0.2` or `20%`)"))
}

fn duration_ms(text: &str) -> Result<f64, String> {
    compare::parse_seconds(text)
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|s| s * 1000.0)
        .ok_or_else(|| format!("`{text}` is not a non-negative duration (`50ms`, `1s`)"))
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    use crate::commands::history;
    if let Some(output) = &args.trends {
        return history::write_trends(&args.store, &args.filters, output);
    }
    if args.filters.any() {
        return Err(CliError::InvalidInput(
            "--campaign, --experiment, --label, --last and --order-by select the runs of \
             --trends; give --trends FILE"
                .into(),
        ));
    }
    let run_dir = args
        .run_dir
        .clone()
        .expect("clap requires RUN_DIR without --trends");
    let rules = args
        .gates
        .iter()
        .map(|rule| rule.parse::<GateRule>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| CliError::InvalidInput(error.to_string()))?;
    let current = read(&run_dir)?;
    let (history_rules, rules): (Vec<GateRule>, Vec<GateRule>) =
        rules.into_iter().partition(GateRule::needs_history);
    let history_failures = if history_rules.is_empty() {
        Vec::new()
    } else {
        let location = args.store.location_or(|| {
            ::history::store::Location::beside(
                run_dir
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new(".")),
            )
        })?;
        history::regression_gates(&location, &current, &history_rules)?
    };
    match &args.compare {
        None => {
            let mut failures = compare::gate(&current, None, &rules)
                .map_err(|e| CliError::InvalidInput(e.to_string()))?;
            failures.extend(history_failures);
            let written = reports::render_views(&current, &run_dir)
                .map_err(|e| CliError::Setup(e.to_string()))?;
            let metrics = reports::metrics::RunMetrics::from_report(&current);
            let metrics_path = run_dir.join("metrics.prom");
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
            for line in reports::headline::lines(&current) {
                println!("  {line}");
            }
            report_failures(&failures);
            Ok(if current.passed() && failures.is_empty() {
                Exit::Pass
            } else {
                Exit::GateFailed
            })
        }
        Some(baseline_dir) => {
            let baseline = read(baseline_dir)?;
            if let Some(why) = compare::unrelated(&baseline, &current)
                && !args.allow_unrelated
            {
                return Err(CliError::InvalidInput(format!(
                    "refusing to compare unrelated runs: {why}; compare runs of the same \
                     campaign, or pass --allow-unrelated to compare them anyway"
                )));
            }
            let mut comparison = compare::compare(&baseline, &current);
            comparison.latency_threshold = compare::LatencyThreshold {
                ratio: args.latency_threshold,
                min_increase_ms: args.latency_min_increase,
            };
            let mut failures = compare::gate(&current, Some(&comparison), &rules)
                .map_err(|e| CliError::InvalidInput(e.to_string()))?;
            failures.extend(history_failures);
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
            run_dir: Some(run_dir.to_owned()),
            trends: None,
            filters: Default::default(),
            store: Default::default(),
            compare: compare.map(Path::to_owned),
            gates: gates.iter().map(|g| (*g).to_owned()).collect(),
            output: None,
            latency_threshold: 0.2,
            latency_min_increase: 50.0,
            allow_unrelated: false,
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
    fn rerendering_leaves_report_json_byte_identical_and_metrics_stable() {
        let run = copy_run("recorded-boot-storm");
        let original = std::fs::read(run.path().join("report.json")).unwrap();
        run_cmd(args(run.path(), None, &[]));
        let first: Vec<Vec<u8>> = ["report.json", "metrics.prom", "report.html", "junit.xml"]
            .iter()
            .map(|name| std::fs::read(run.path().join(name)).unwrap())
            .collect();
        assert!(first[0] == original, "report.json changed");
        run_cmd(args(run.path(), None, &[]));
        for (name, before) in ["report.json", "metrics.prom", "report.html", "junit.xml"]
            .iter()
            .zip(&first)
        {
            let after = std::fs::read(run.path().join(name)).unwrap();
            assert!(after == *before, "{name} changed between two renderings");
        }
    }

    #[test]
    fn a_report_json_in_another_layout_is_left_as_it_is() {
        // Written by hand or by another tool: microseconds spelled out, compact.
        let dir = tempfile::tempdir().unwrap();
        let source = fixture("run").join("report.json");
        let value: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(source).unwrap()).unwrap();
        let compact = serde_json::to_string(&value).unwrap();
        std::fs::write(dir.path().join("report.json"), &compact).unwrap();
        assert_eq!(run_cmd(args(dir.path(), None, &[])), Exit::GateFailed);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("report.json")).unwrap(),
            compact
        );
    }

    #[test]
    fn compare_flags_latency_regressions_and_gates_on_them_when_asked() {
        let (baseline, current) = (
            copy_run("recorded-boot-storm"),
            copy_run("recorded-boot-storm-rerun"),
        );
        let gated = |threshold: f64, min_ms: f64| {
            let mut a = args(
                current.path(),
                Some(baseline.path()),
                &["latency-regressions"],
            );
            a.latency_threshold = threshold;
            a.latency_min_increase = min_ms;
            run_cmd(a)
        };
        // The listing's fault-window p95 went from 147 ms to 345 ms.
        assert_eq!(gated(0.2, 50.0), Exit::GateFailed);
        // Nothing grew tenfold.
        assert_eq!(gated(10.0, 50.0), Exit::Pass);
        // Without the gate, the difference is only reported.
        assert_eq!(
            run_cmd(args(current.path(), Some(baseline.path()), &[])),
            Exit::Pass
        );
    }

    #[test]
    fn runs_of_unrelated_campaigns_are_compared_only_when_allowed() {
        let (other, current) = (copy_run("recorded-boot-storm"), copy_run("run"));
        let error = run(args(current.path(), Some(other.path()), &[])).unwrap_err();
        assert_eq!(error.code(), 2, "{error}");
        let message = error.to_string();
        assert!(
            message.contains("boot-storm")
                && message.contains("nova-resilience")
                && message.contains("--allow-unrelated"),
            "{message}"
        );
        let mut allowed = args(current.path(), Some(other.path()), &[]);
        allowed.allow_unrelated = true;
        assert_eq!(run_cmd(allowed), Exit::Pass);
    }

    #[test]
    fn latency_flags_take_ratios_and_durations() {
        assert_eq!(ratio("20%"), Ok(0.2));
        assert_eq!(ratio("0.5"), Ok(0.5));
        assert!(ratio("fast").unwrap_err().contains("`fast`"));
        assert_eq!(duration_ms("50ms"), Ok(50.0));
        assert_eq!(duration_ms("1.5s"), Ok(1500.0));
        assert!(duration_ms("-1s").is_err());
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
