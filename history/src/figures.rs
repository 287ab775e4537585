//! The figures of a run: one number per experiment and measure, each knowing which way is worse.
//!
//! Trends plot them across runs and the `regression-vs` gate compares them with earlier runs, so
//! both read the same list, computed once from the report when a run is recorded. Names are
//! stable strings (`success_ratio.fault`, `latency.fault.server create.p95_ms`, `recovery_s`,
//! `detector.fingerprint.f1`): they are the history's columns in all but name.

use std::collections::BTreeMap;

use reports::model::{Report, Verdict, WindowKind};

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Better {
    /// Success ratios and detector scores.
    Higher,
    /// Latencies, recovery and detection times, failures, false alarms.
    Lower,
}

impl Better {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Better::Higher => "higher",
            Better::Lower => "lower",
        }
    }

    /// Parses the stored name.
    pub fn parse(text: &str) -> Option<Better> {
        match text {
            "higher" => Some(Better::Higher),
            "lower" => Some(Better::Lower),
            _ => None,
        }
    }
}

/// Experiment name of the run-wide figures (detector scores are computed over the whole run).
pub const RUN_WIDE: &str = "*";

/// One figure of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Experiment name, or [`RUN_WIDE`].
    pub experiment: String,
    /// Figure name.
    pub name: String,
    /// Value.
    pub value: f64,
    /// Which way it improves.
    pub better: Better,
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Every figure of `report`, sorted by experiment and name. Values that could not be measured
/// (no command in a window, no recovery, a detector without alarms) are left out rather than
/// stored as zero, so that they neither draw a false dip nor pass a gate.
pub fn of_report(report: &Report) -> Vec<Figure> {
    let mut figures = Vec::new();
    let mut push = |experiment: &str, name: String, value: Option<f64>, better: Better| {
        if let Some(value) = value.filter(|v| v.is_finite()) {
            figures.push(Figure {
                experiment: experiment.to_owned(),
                name,
                value,
                better,
            });
        }
    };
    for experiment in &report.experiments {
        let e = experiment.name.as_str();
        for window in WindowKind::ALL {
            push(
                e,
                format!("success_ratio.{}", window.as_str()),
                experiment.tally(window).ratio(),
                Better::Higher,
            );
        }
        // Latency percentiles: the mean over repetitions of each repetition's percentile.
        let mut latency: BTreeMap<(WindowKind, &str, &str), Vec<f64>> = BTreeMap::new();
        for repetition in &experiment.repetitions {
            for stats in &repetition.workload {
                for command in std::iter::once(&stats.total).chain(&stats.commands) {
                    if let Some(p) = command.latency_ms {
                        for (name, value) in [("p50", p.p50), ("p95", p.p95), ("p99", p.p99)] {
                            latency
                                .entry((stats.window, command.command.as_str(), name))
                                .or_default()
                                .push(value);
                        }
                    }
                }
            }
        }
        for ((window, command, percentile), values) in latency {
            push(
                e,
                format!("latency.{}.{command}.{percentile}_ms", window.as_str()),
                mean(&values),
                Better::Lower,
            );
        }
        let recoveries: Vec<f64> = experiment
            .repetitions
            .iter()
            .filter_map(|r| r.recovery.recovery_s)
            .collect();
        push(e, "recovery_s".to_owned(), mean(&recoveries), Better::Lower);
        push(
            e,
            "unrecovered_repetitions".to_owned(),
            Some(
                experiment
                    .repetitions
                    .iter()
                    .filter(|r| r.recovery.recovery_s.is_none())
                    .count() as f64,
            ),
            Better::Lower,
        );
        push(
            e,
            "failed_hypotheses".to_owned(),
            Some(
                experiment
                    .repetitions
                    .iter()
                    .flat_map(|r| &r.hypotheses)
                    .filter(|h| h.verdict == Verdict::Fail)
                    .count() as f64,
            ),
            Better::Lower,
        );
    }
    for d in &report.detectors {
        let name = |measure: &str| format!("detector.{}.{measure}", d.detector);
        push(RUN_WIDE, name("precision"), d.precision, Better::Higher);
        push(RUN_WIDE, name("recall"), d.recall, Better::Higher);
        push(RUN_WIDE, name("f1"), d.f1, Better::Higher);
        push(RUN_WIDE, name("top1"), d.localization_top1, Better::Higher);
        push(RUN_WIDE, name("top3"), d.localization_top3, Better::Higher);
        push(
            RUN_WIDE,
            name("mean_time_to_detect_s"),
            d.mean_time_to_detect_s,
            Better::Lower,
        );
        push(
            RUN_WIDE,
            name("false_alarms_per_hour"),
            d.false_alarms_per_hour,
            Better::Lower,
        );
    }
    figures.sort_by(|a, b| (&a.experiment, &a.name).cmp(&(&b.experiment, &b.name)));
    figures
}
