//! The reliability difference between two runs (e.g. two releases) and the gates CI applies.
//!
//! Experiments are matched by name and hypotheses by name within their experiment; values of
//! several repetitions are combined (success ratios pooled over all commands, recovery as the
//! slowest repetition, a hypothesis fails when any repetition failed it).
//!
//! Gate rules (`--gate RULE`, repeatable):
//! - `regressions`: no hypothesis may go from pass to fail (needs a baseline run);
//! - `success-ratio-drop=R`: the fault-window success ratio of no experiment may drop by more than
//!   `R` (a ratio, or a percentage like `5%`; needs a baseline run);
//! - `recovery-increase=S`: no experiment's recovery may get slower by more than `S` seconds
//!   (`10`, `10s`; needs a baseline run);
//! - `f1-drop=R`: no detector's F1 may drop by more than `R` (needs a baseline run);
//! - `latency-regressions`: no command's p95 or p99 latency in any window may grow past the
//!   comparison's [`LatencyThreshold`] (needs a baseline run);
//! - `min-precision=R`, `min-recall=R`, `min-f1=R`, `min-top1=R`, `min-top3=R`,
//!   `max-false-alarms-per-hour=N`, `max-time-to-detect=S`: thresholds on the current run's
//!   detector scores, for every detector or, prefixed with `DETECTOR:`, for one
//!   (`fingerprint:min-recall=0.9`).
//! - `regression-vs:last=N,label=K=V,…`: no figure of the run may be worse than the spread of the
//!   last `N` (default 5) comparable runs in the run history (same campaign, every given label).
//!   The rule is parsed here with the others; the `history` crate judges it, since it needs the
//!   history store ([`gate`] refuses it).
//!
//! Runs of different campaigns are not comparable: [`unrelated`] says why, and the CLI refuses
//! them unless told otherwise.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::Error;
use crate::fmt;
use crate::model::{DetectorScore, Experiment, Percentiles, Report, Verdict, WindowKind};

/// A hypothesis in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct HypothesisDiff {
    /// Hypothesis name.
    pub name: String,
    /// Unit of the observed values.
    pub unit: String,
    /// Verdict and mean observed value in the baseline run, if it had the hypothesis.
    pub baseline: Option<(Verdict, Option<f64>)>,
    /// Verdict and mean observed value in the current run, if it has the hypothesis.
    pub current: Option<(Verdict, Option<f64>)>,
}

/// How a hypothesis changed between the runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Passed before, fails now.
    Regressed,
    /// Failed before, passes now.
    Fixed,
    /// Same verdict.
    Unchanged,
    /// Only in the current run.
    Added,
    /// Only in the baseline run.
    Removed,
}

impl HypothesisDiff {
    /// The change of verdict.
    pub fn change(&self) -> Change {
        match (self.baseline, self.current) {
            (Some((Verdict::Pass, _)), Some((Verdict::Fail, _))) => Change::Regressed,
            (Some((Verdict::Fail, _)), Some((Verdict::Pass, _))) => Change::Fixed,
            (Some(_), Some(_)) => Change::Unchanged,
            (None, _) => Change::Added,
            (_, None) => Change::Removed,
        }
    }
}

/// An experiment in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentDiff {
    /// Experiment name.
    pub name: String,
    /// Pooled success ratio per window: (baseline run, current run).
    pub success_ratio: Vec<(WindowKind, Option<f64>, Option<f64>)>,
    /// Slowest recovery in seconds: (baseline run, current run); `None` when a run has no
    /// recovery measured or some repetition did not recover.
    pub recovery_s: (Option<f64>, Option<f64>),
    /// Hypotheses of either run.
    pub hypotheses: Vec<HypothesisDiff>,
    /// p95 and p99 latency of every command measured in a window of both runs.
    pub latency: Vec<LatencyDiff>,
}

/// A latency percentile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Percentile {
    /// 95th percentile.
    P95,
    /// 99th percentile.
    P99,
}

impl Percentile {
    /// `p95` or `p99`.
    pub fn as_str(self) -> &'static str {
        match self {
            Percentile::P95 => "p95",
            Percentile::P99 => "p99",
        }
    }

    fn of(self, p: &Percentiles) -> f64 {
        match self {
            Percentile::P95 => p.p95,
            Percentile::P99 => p.p99,
        }
    }
}

/// A command's latency percentile in one window of both runs (the slowest repetition of each).
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyDiff {
    /// The window.
    pub window: WindowKind,
    /// The user command.
    pub command: String,
    /// Which percentile.
    pub percentile: Percentile,
    /// Milliseconds in the baseline run.
    pub baseline_ms: f64,
    /// Milliseconds in the current run.
    pub current_ms: f64,
}

/// When a latency percentile has regressed: it grew by more than `ratio` of its baseline value
/// and by at least `min_increase_ms`, so that neither a 3 → 5 ms jitter nor a 20 s → 20.3 s
/// timeout reads as a regression.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyThreshold {
    /// Relative growth beyond which a percentile regressed (`0.2`: more than 20 % slower).
    pub ratio: f64,
    /// Smallest growth in milliseconds that counts.
    pub min_increase_ms: f64,
}

impl Default for LatencyThreshold {
    fn default() -> Self {
        LatencyThreshold {
            ratio: 0.2,
            min_increase_ms: 50.0,
        }
    }
}

impl LatencyThreshold {
    /// Whether going from `baseline_ms` to `current_ms` is a regression.
    pub fn regressed(&self, baseline_ms: f64, current_ms: f64) -> bool {
        let increase = current_ms - baseline_ms;
        increase > baseline_ms * self.ratio + 1e-9 && increase + 1e-9 >= self.min_increase_ms
    }

    /// The threshold in words: `more than 20 % and at least 50 ms slower`.
    pub fn describe(&self) -> String {
        format!(
            "more than {} % and at least {} slower",
            fmt::trim(self.ratio * 100.0, 1),
            fmt::millis(self.min_increase_ms)
        )
    }
}

/// A detector in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorDiff {
    /// Detector name.
    pub detector: String,
    /// Its scores in the baseline run.
    pub baseline: Option<DetectorScore>,
    /// Its scores in the current run.
    pub current: Option<DetectorScore>,
}

/// The difference between two runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Run id of the baseline run.
    pub baseline_run: String,
    /// Run id of the current run.
    pub current_run: String,
    /// Experiments of either run, in the current run's order, then those only in the baseline.
    pub experiments: Vec<ExperimentDiff>,
    /// Detectors of either run, sorted by name.
    pub detectors: Vec<DetectorDiff>,
    /// When a latency percentile counts as regressed (the default unless set).
    pub latency_threshold: LatencyThreshold,
}

/// Why two runs are not comparable, if they are not: they ran different campaigns (by name), or
/// share no experiment.
pub fn unrelated(baseline: &Report, current: &Report) -> Option<String> {
    if baseline.campaign.name != current.campaign.name {
        return Some(format!(
            "the baseline run `{}` ran campaign `{}`, the run `{}` ran campaign `{}`",
            baseline.run_id, baseline.campaign.name, current.run_id, current.campaign.name
        ));
    }
    let shared = current
        .experiments
        .iter()
        .any(|c| baseline.experiments.iter().any(|b| b.name == c.name));
    let either_empty = baseline.experiments.is_empty() || current.experiments.is_empty();
    (!shared && !either_empty).then(|| {
        format!(
            "the runs `{}` and `{}` of campaign `{}` have no experiment in common",
            baseline.run_id, current.run_id, current.campaign.name
        )
    })
}

/// Compares `current` against `baseline`.
pub fn compare(baseline: &Report, current: &Report) -> Comparison {
    let mut names: Vec<&str> = current
        .experiments
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    for experiment in &baseline.experiments {
        if !names.contains(&experiment.name.as_str()) {
            names.push(&experiment.name);
        }
    }
    let find = |report: &'_ Report, name: &str| -> Option<Experiment> {
        report.experiments.iter().find(|e| e.name == name).cloned()
    };
    let experiments = names
        .into_iter()
        .map(|name| {
            let (b, c) = (find(baseline, name), find(current, name));
            ExperimentDiff {
                name: name.to_owned(),
                success_ratio: WindowKind::ALL
                    .into_iter()
                    .map(|w| {
                        (
                            w,
                            b.as_ref().and_then(|e| pooled_ratio(e, w)),
                            c.as_ref().and_then(|e| pooled_ratio(e, w)),
                        )
                    })
                    .collect(),
                recovery_s: (
                    b.as_ref().and_then(slowest_recovery),
                    c.as_ref().and_then(slowest_recovery),
                ),
                hypotheses: hypothesis_diffs(b.as_ref(), c.as_ref()),
                latency: match (&b, &c) {
                    (Some(b), Some(c)) => latency_diffs(b, c),
                    _ => Vec::new(),
                },
            }
        })
        .collect();
    let mut detectors: BTreeMap<String, DetectorDiff> = BTreeMap::new();
    for (score, is_current) in baseline
        .detectors
        .iter()
        .map(|d| (d, false))
        .chain(current.detectors.iter().map(|d| (d, true)))
    {
        let entry = detectors
            .entry(score.detector.clone())
            .or_insert_with(|| DetectorDiff {
                detector: score.detector.clone(),
                baseline: None,
                current: None,
            });
        if is_current {
            entry.current = Some(score.clone());
        } else {
            entry.baseline = Some(score.clone());
        }
    }
    Comparison {
        baseline_run: baseline.run_id.clone(),
        current_run: current.run_id.clone(),
        experiments,
        detectors: detectors.into_values().collect(),
        latency_threshold: LatencyThreshold::default(),
    }
}

fn pooled_ratio(experiment: &Experiment, window: WindowKind) -> Option<f64> {
    experiment.tally(window).ratio()
}

/// The slowest repetition's latency percentiles of each command per window.
fn slowest_latency(experiment: &Experiment) -> BTreeMap<(WindowKind, &str), Percentiles> {
    let mut slowest: BTreeMap<(WindowKind, &str), Percentiles> = BTreeMap::new();
    for stats in experiment.repetitions.iter().flat_map(|r| &r.workload) {
        for command in &stats.commands {
            let Some(latency) = command.latency_ms else {
                continue;
            };
            slowest
                .entry((stats.window, command.command.as_str()))
                .and_modify(|p| {
                    p.p50 = p.p50.max(latency.p50);
                    p.p95 = p.p95.max(latency.p95);
                    p.p99 = p.p99.max(latency.p99);
                })
                .or_insert(latency);
        }
    }
    slowest
}

fn latency_diffs(baseline: &Experiment, current: &Experiment) -> Vec<LatencyDiff> {
    let before = slowest_latency(baseline);
    let mut diffs = Vec::new();
    for ((window, command), now) in slowest_latency(current) {
        let Some(then) = before.get(&(window, command)) else {
            continue;
        };
        for percentile in [Percentile::P95, Percentile::P99] {
            diffs.push(LatencyDiff {
                window,
                command: command.to_owned(),
                percentile,
                baseline_ms: percentile.of(then),
                current_ms: percentile.of(&now),
            });
        }
    }
    diffs
}

fn slowest_recovery(experiment: &Experiment) -> Option<f64> {
    let mut slowest: Option<f64> = None;
    for repetition in &experiment.repetitions {
        // A repetition that never recovered makes the experiment's recovery unknown.
        let value = repetition.recovery.recovery_s?;
        slowest = Some(slowest.map_or(value, |s| s.max(value)));
    }
    slowest
}

fn hypothesis_summary(experiment: &Experiment) -> Vec<(String, String, Verdict, Option<f64>)> {
    let mut order: Vec<String> = Vec::new();
    let mut acc: BTreeMap<String, (String, Verdict, f64, usize)> = BTreeMap::new();
    for h in experiment.repetitions.iter().flat_map(|r| &r.hypotheses) {
        if !order.contains(&h.name) {
            order.push(h.name.clone());
        }
        let entry = acc
            .entry(h.name.clone())
            .or_insert_with(|| (h.unit.clone(), Verdict::Pass, 0.0, 0));
        if h.verdict == Verdict::Fail {
            entry.1 = Verdict::Fail;
        }
        if let Some(value) = h.observed {
            entry.2 += value;
            entry.3 += 1;
        }
    }
    order
        .into_iter()
        .map(|name| {
            let (unit, verdict, sum, n) = acc.remove(&name).expect("collected above");
            (name, unit, verdict, (n > 0).then(|| sum / n as f64))
        })
        .collect()
}

fn hypothesis_diffs(
    baseline: Option<&Experiment>,
    current: Option<&Experiment>,
) -> Vec<HypothesisDiff> {
    let b = baseline.map(hypothesis_summary).unwrap_or_default();
    let c = current.map(hypothesis_summary).unwrap_or_default();
    let mut diffs: Vec<HypothesisDiff> = c
        .iter()
        .map(|(name, unit, verdict, observed)| HypothesisDiff {
            name: name.clone(),
            unit: unit.clone(),
            baseline: b.iter().find(|h| h.0 == *name).map(|h| (h.2, h.3)),
            current: Some((*verdict, *observed)),
        })
        .collect();
    for (name, unit, verdict, observed) in b {
        if !c.iter().any(|h| h.0 == name) {
            diffs.push(HypothesisDiff {
                name,
                unit,
                baseline: Some((verdict, observed)),
                current: None,
            });
        }
    }
    diffs
}

impl Comparison {
    /// Hypotheses that went from pass to fail, as `experiment / hypothesis`.
    pub fn regressions(&self) -> Vec<String> {
        self.experiments
            .iter()
            .flat_map(|e| {
                e.hypotheses
                    .iter()
                    .filter(|h| h.change() == Change::Regressed)
                    .map(move |h| format!("{} / {}", e.name, h.name))
            })
            .collect()
    }

    /// Latency percentiles that regressed past [`Comparison::latency_threshold`], with their
    /// experiment's name.
    pub fn latency_regressions(&self) -> Vec<(&str, &LatencyDiff)> {
        self.experiments
            .iter()
            .flat_map(|e| {
                e.latency
                    .iter()
                    .filter(|l| {
                        self.latency_threshold
                            .regressed(l.baseline_ms, l.current_ms)
                    })
                    .map(move |l| (e.name.as_str(), l))
            })
            .collect()
    }

    /// The difference as Markdown, for the terminal and PR comments.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let regressions = self.regressions();
        let slower = self.latency_regressions();
        let fixed = self
            .experiments
            .iter()
            .flat_map(|e| &e.hypotheses)
            .filter(|h| h.change() == Change::Fixed)
            .count();
        let _ = writeln!(
            out,
            "## Reliability difference: `{}` → `{}`\n",
            self.baseline_run, self.current_run
        );
        let _ = writeln!(
            out,
            "{} regression(s), {} fix(es), {} latency regression(s).\n",
            regressions.len(),
            fixed,
            slower.len()
        );
        let _ = writeln!(
            out,
            "| Experiment | Hypothesis | Baseline | Current | Change |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for e in &self.experiments {
            for h in &e.hypotheses {
                let side = |v: Option<(Verdict, Option<f64>)>| match v {
                    Some((verdict, observed)) => format!(
                        "{} {}",
                        if verdict == Verdict::Pass {
                            "✅"
                        } else {
                            "❌"
                        },
                        fmt::opt_value(observed, &h.unit)
                    ),
                    None => fmt::DASH.to_owned(),
                };
                let delta = match (h.baseline.and_then(|b| b.1), h.current.and_then(|c| c.1)) {
                    (Some(b), Some(c)) => format!(" ({})", fmt::delta(c - b, &h.unit)),
                    _ => String::new(),
                };
                let slower_ms = h.unit == "ms"
                    && matches!(
                        (h.baseline.and_then(|b| b.1), h.current.and_then(|c| c.1)),
                        (Some(b), Some(c)) if self.latency_threshold.regressed(b, c)
                    );
                let change = match h.change() {
                    Change::Regressed => "**regressed**",
                    Change::Fixed => "fixed",
                    Change::Unchanged if slower_ms => "**slower**, same verdict",
                    Change::Unchanged => "same verdict",
                    Change::Added => "new",
                    Change::Removed => "removed",
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {}{} | {} |",
                    e.name,
                    h.name,
                    side(h.baseline),
                    side(h.current),
                    delta,
                    change
                );
            }
        }
        let _ = writeln!(
            out,
            "\n| Experiment | Window | Baseline success | Current success | Δ |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|");
        for e in &self.experiments {
            for (window, b, c) in &e.success_ratio {
                let delta = match (b, c) {
                    (Some(b), Some(c)) => fmt::delta(c - b, "ratio"),
                    _ => fmt::DASH.to_owned(),
                };
                let pct = |v: &Option<f64>| v.map_or_else(|| fmt::DASH.to_owned(), fmt::percent);
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    e.name,
                    window.as_str(),
                    pct(b),
                    pct(c),
                    delta
                );
            }
            let (b, c) = e.recovery_s;
            let delta = match (b, c) {
                (Some(b), Some(c)) => fmt::delta(c - b, "s"),
                _ => fmt::DASH.to_owned(),
            };
            let _ = writeln!(
                out,
                "| {} | recovery time | {} | {} | {} |",
                e.name,
                fmt::opt_value(b, "s"),
                fmt::opt_value(c, "s"),
                delta
            );
        }
        if slower.is_empty() {
            let _ = writeln!(
                out,
                "\nNo p95 or p99 latency regressed ({}).",
                self.latency_threshold.describe()
            );
        } else {
            let _ = writeln!(
                out,
                "\n**Latency regressions**: p95 or p99 {} (in bold; slowest repetition).\n",
                self.latency_threshold.describe()
            );
            let _ = writeln!(out, "| Experiment | Window | Command | p95 | p99 |");
            let _ = writeln!(out, "|---|---|---|---|---|");
            let mut listed: Vec<(&str, WindowKind, &str)> = Vec::new();
            for (experiment, l) in &slower {
                let key = (*experiment, l.window, l.command.as_str());
                if listed.contains(&key) {
                    continue;
                }
                listed.push(key);
                let cell = |percentile: Percentile| {
                    let Some(diff) = self
                        .experiments
                        .iter()
                        .filter(|e| e.name == *experiment)
                        .flat_map(|e| &e.latency)
                        .find(|d| {
                            d.window == l.window
                                && d.command == l.command
                                && d.percentile == percentile
                        })
                    else {
                        return fmt::DASH.to_owned();
                    };
                    let text = format!(
                        "{} → {} ({})",
                        fmt::millis(diff.baseline_ms),
                        fmt::millis(diff.current_ms),
                        relative(diff.baseline_ms, diff.current_ms)
                    );
                    if self
                        .latency_threshold
                        .regressed(diff.baseline_ms, diff.current_ms)
                    {
                        format!("**{text}**")
                    } else {
                        text
                    }
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    experiment,
                    l.window.as_str(),
                    l.command,
                    cell(Percentile::P95),
                    cell(Percentile::P99),
                );
            }
        }
        if !self.detectors.is_empty() {
            let _ = writeln!(
                out,
                "\n| Detector | Precision | Recall | F1 | Mean time to detect | Top-1 | False alarms/h |"
            );
            let _ = writeln!(out, "|---|---|---|---|---|---|---|");
            for d in &self.detectors {
                let pair = |pick: fn(&DetectorScore) -> Option<f64>, unit: &str| {
                    let (b, c) = (
                        d.baseline.as_ref().and_then(pick),
                        d.current.as_ref().and_then(pick),
                    );
                    let show = |v: Option<f64>| match unit {
                        "score" => fmt::score(v),
                        "ratio" => v.map_or_else(|| fmt::DASH.to_owned(), fmt::percent),
                        "per_hour" => v.map_or_else(|| fmt::DASH.to_owned(), |v| fmt::trim(v, 1)),
                        unit => fmt::opt_value(v, unit),
                    };
                    match (b, c) {
                        (Some(bv), Some(cv)) => {
                            format!("{} → {} ({})", show(b), show(c), fmt::delta(cv - bv, unit))
                        }
                        _ => format!("{} → {}", show(b), show(c)),
                    }
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    d.detector,
                    pair(|s| s.precision, "score"),
                    pair(|s| s.recall, "score"),
                    pair(|s| s.f1, "score"),
                    pair(|s| s.mean_time_to_detect_s, "s"),
                    pair(|s| s.localization_top1, "ratio"),
                    pair(|s| s.false_alarms_per_hour, "per_hour"),
                );
            }
        }
        out
    }
}

/// Relative change, `+134 %`, or `new` from zero.
fn relative(baseline: f64, current: f64) -> String {
    if baseline > 0.0 {
        let change = (current - baseline) / baseline;
        format!(
            "{}{:.0} %",
            if change >= 0.0 { "+" } else { "−" },
            change.abs() * 100.0
        )
    } else {
        "from 0".to_owned()
    }
}

/// A detector score a threshold applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreMetric {
    /// Precision.
    Precision,
    /// Recall.
    Recall,
    /// F1.
    F1,
    /// Localization top-1.
    Top1,
    /// Localization top-3.
    Top3,
}

impl ScoreMetric {
    fn of(self, score: &DetectorScore) -> Option<f64> {
        match self {
            ScoreMetric::Precision => score.precision,
            ScoreMetric::Recall => score.recall,
            ScoreMetric::F1 => score.f1,
            ScoreMetric::Top1 => score.localization_top1,
            ScoreMetric::Top3 => score.localization_top3,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ScoreMetric::Precision => "precision",
            ScoreMetric::Recall => "recall",
            ScoreMetric::F1 => "F1",
            ScoreMetric::Top1 => "top-1 localization",
            ScoreMetric::Top3 => "top-3 localization",
        }
    }
}

/// What a gate rule checks.
#[derive(Debug, Clone, PartialEq)]
pub enum GateCheck {
    /// No hypothesis goes from pass to fail.
    NoRegressions,
    /// The fault-window success ratio drops by at most this much.
    MaxSuccessRatioDrop(f64),
    /// Recovery gets slower by at most this many seconds.
    MaxRecoveryIncrease(f64),
    /// A detector's F1 drops by at most this much.
    MaxF1Drop(f64),
    /// No command's p95 or p99 latency regresses past the comparison's threshold.
    NoLatencyRegressions,
    /// A detector score is at least this value.
    MinScore(ScoreMetric, f64),
    /// False alarms per hour are at most this value.
    MaxFalseAlarmsPerHour(f64),
    /// Mean time to detect is at most this many seconds.
    MaxTimeToDetect(f64),
    /// No figure is worse than the spread of the last `last` comparable runs of the history
    /// having every one of `labels`.
    RegressionVs {
        /// How many earlier runs make the spread.
        last: usize,
        /// Labels the earlier runs must have (`release=2025.1`).
        labels: BTreeMap<String, String>,
    },
}

/// How many earlier runs `regression-vs` compares with when `last=` is not given.
pub const DEFAULT_REGRESSION_VS_LAST: usize = 5;

/// Parses the parameters of `regression-vs:last=N,label=K=V,…` (after the colon, possibly empty).
fn parse_regression_vs(params: &str) -> Result<GateCheck, String> {
    let mut last = DEFAULT_REGRESSION_VS_LAST;
    let mut labels = BTreeMap::new();
    for param in params.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match param.split_once('=') {
            Some(("last", n)) => {
                last = n
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| format!("`last={n}` is not a number of runs in 1..=1000"))?;
            }
            Some(("label", label)) => {
                let (key, value) = scenarios::labels::parse(label.trim())?;
                labels.insert(key, value);
            }
            _ => {
                return Err(format!(
                    "`{param}` is not `last=N` or `label=KEY=VALUE` \
                     (e.g. `regression-vs:last=5,label=release=2025.1`)"
                ));
            }
        }
    }
    Ok(GateCheck::RegressionVs { last, labels })
}

/// One `--gate` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct GateRule {
    /// The rule as written.
    pub text: String,
    /// The detector it is limited to, for detector thresholds.
    pub detector: Option<String>,
    /// What it checks.
    pub check: GateCheck,
}

/// A breached gate rule.
#[derive(Debug, Clone, PartialEq)]
pub struct GateFailure {
    /// The rule as written.
    pub rule: String,
    /// What breached it.
    pub message: String,
}

impl std::str::FromStr for GateRule {
    type Err = Error;

    fn from_str(text: &str) -> Result<GateRule, Error> {
        let invalid = |message: String| Error::InvalidGate {
            rule: text.to_owned(),
            message,
        };
        if let Some(params) = text.strip_prefix("regression-vs")
            && (params.is_empty() || params.starts_with(':'))
        {
            return Ok(GateRule {
                text: text.to_owned(),
                detector: None,
                check: parse_regression_vs(params.trim_start_matches(':')).map_err(invalid)?,
            });
        }
        let (detector, rest) = match text.split_once(':') {
            Some((detector, rest)) if !detector.is_empty() => (Some(detector.to_owned()), rest),
            Some(_) => return Err(invalid("the detector name before `:` is empty".to_owned())),
            None => (None, text),
        };
        let (key, value) = match rest.split_once('=') {
            Some((key, value)) => (key.trim(), Some(value.trim())),
            None => (rest.trim(), None),
        };
        let number = |parse: fn(&str) -> Option<f64>| -> Result<f64, Error> {
            let value =
                value.ok_or_else(|| invalid(format!("`{key}` needs a value, e.g. `{key}=0.9`")))?;
            parse(value)
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| invalid(format!("`{value}` is not a non-negative number")))
        };
        let check = match key {
            "regressions" if value.is_none() => GateCheck::NoRegressions,
            "latency-regressions" if value.is_none() => GateCheck::NoLatencyRegressions,
            "success-ratio-drop" => GateCheck::MaxSuccessRatioDrop(number(parse_ratio)?),
            "recovery-increase" => GateCheck::MaxRecoveryIncrease(number(parse_seconds)?),
            "f1-drop" => GateCheck::MaxF1Drop(number(parse_ratio)?),
            "min-precision" => GateCheck::MinScore(ScoreMetric::Precision, number(parse_ratio)?),
            "min-recall" => GateCheck::MinScore(ScoreMetric::Recall, number(parse_ratio)?),
            "min-f1" => GateCheck::MinScore(ScoreMetric::F1, number(parse_ratio)?),
            "min-top1" => GateCheck::MinScore(ScoreMetric::Top1, number(parse_ratio)?),
            "min-top3" => GateCheck::MinScore(ScoreMetric::Top3, number(parse_ratio)?),
            "max-false-alarms-per-hour" => {
                GateCheck::MaxFalseAlarmsPerHour(number(|v| v.parse().ok())?)
            }
            "max-time-to-detect" => GateCheck::MaxTimeToDetect(number(parse_seconds)?),
            "regressions" | "latency-regressions" => {
                return Err(invalid(format!(
                    "`{key}` takes no value (set the latency threshold with --latency-threshold)"
                )));
            }
            _ => {
                return Err(invalid(
                    "expected one of regressions, latency-regressions, success-ratio-drop=R, recovery-increase=S, f1-drop=R, \
                     min-precision=R, min-recall=R, min-f1=R, min-top1=R, min-top3=R, \
                     max-false-alarms-per-hour=N, max-time-to-detect=S (detector thresholds may be \
                     prefixed with `DETECTOR:`), regression-vs:last=N,label=K=V"
                        .to_owned(),
                ));
            }
        };
        let detector_rule = matches!(
            check,
            GateCheck::MaxF1Drop(_)
                | GateCheck::MinScore(..)
                | GateCheck::MaxFalseAlarmsPerHour(_)
                | GateCheck::MaxTimeToDetect(_)
        );
        if detector.is_some() && !detector_rule {
            return Err(invalid(
                "only detector rules take a `DETECTOR:` prefix".to_owned(),
            ));
        }
        if let GateCheck::MinScore(_, v)
        | GateCheck::MaxSuccessRatioDrop(v)
        | GateCheck::MaxF1Drop(v) = check
            && v > 1.0
        {
            return Err(invalid(format!("{v} is not a ratio in 0..=1")));
        }
        Ok(GateRule {
            text: text.to_owned(),
            detector,
            check,
        })
    }
}

/// `0.05` or `5%`.
pub fn parse_ratio(value: &str) -> Option<f64> {
    match value.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().ok().map(|p| p / 100.0),
        None => value.parse().ok(),
    }
}

/// `10`, `10s`, `1.5s`, `2m` or `250ms`, in seconds.
pub fn parse_seconds(value: &str) -> Option<f64> {
    if let Some(ms) = value.strip_suffix("ms") {
        return ms.trim().parse::<f64>().ok().map(|v| v / 1000.0);
    }
    if let Some(m) = value.strip_suffix('m') {
        return m.trim().parse::<f64>().ok().map(|v| v * 60.0);
    }
    value.strip_suffix('s').unwrap_or(value).trim().parse().ok()
}

impl GateRule {
    /// Whether the rule compares the run with the run history (the `history` crate judges it).
    pub fn needs_history(&self) -> bool {
        matches!(self.check, GateCheck::RegressionVs { .. })
    }

    /// Whether the rule compares two runs.
    pub fn needs_baseline(&self) -> bool {
        matches!(
            self.check,
            GateCheck::NoRegressions
                | GateCheck::NoLatencyRegressions
                | GateCheck::MaxSuccessRatioDrop(_)
                | GateCheck::MaxRecoveryIncrease(_)
                | GateCheck::MaxF1Drop(_)
        )
    }
}

/// Applies `rules` to `current` (and to its comparison with a baseline run, when given). Returns
/// every breach; an empty list means the gate passed. Rules that need a baseline are an error
/// without one.
pub fn gate(
    current: &Report,
    comparison: Option<&Comparison>,
    rules: &[GateRule],
) -> Result<Vec<GateFailure>, Error> {
    let mut failures = Vec::new();
    for rule in rules {
        let fail = |message: String| GateFailure {
            rule: rule.text.clone(),
            message,
        };
        if rule.needs_history() {
            return Err(Error::InvalidGate {
                rule: rule.text.clone(),
                message: "this rule reads the run history; judge it with the history store"
                    .to_owned(),
            });
        }
        if rule.needs_baseline() && comparison.is_none() {
            return Err(Error::InvalidGate {
                rule: rule.text.clone(),
                message: "this rule compares two runs; use it with --compare BASELINE_RUN"
                    .to_owned(),
            });
        }
        let detectors = current.detectors.iter().filter(|d| {
            rule.detector
                .as_ref()
                .is_none_or(|name| *name == d.detector)
        });
        match (&rule.check, comparison) {
            (GateCheck::NoRegressions, Some(cmp)) => {
                failures.extend(
                    cmp.regressions()
                        .into_iter()
                        .map(|h| fail(format!("{h} passed in the baseline run and fails now"))),
                );
            }
            (GateCheck::NoLatencyRegressions, Some(cmp)) => {
                failures.extend(
                    cmp.latency_regressions()
                        .into_iter()
                        .map(|(experiment, l)| {
                            fail(format!(
                                "{experiment}: {} {} in the {} window went from {} to {}",
                                l.command,
                                l.percentile.as_str(),
                                l.window.as_str(),
                                fmt::millis(l.baseline_ms),
                                fmt::millis(l.current_ms)
                            ))
                        }),
                );
            }
            (GateCheck::MaxSuccessRatioDrop(limit), Some(cmp)) => {
                for e in &cmp.experiments {
                    if let Some((_, Some(b), Some(c))) = e
                        .success_ratio
                        .iter()
                        .find(|(w, _, _)| *w == WindowKind::Fault)
                        && b - c > *limit + 1e-12
                    {
                        failures.push(fail(format!(
                            "{}: fault-window success ratio dropped from {} to {}",
                            e.name,
                            fmt::percent(*b),
                            fmt::percent(*c)
                        )));
                    }
                }
            }
            (GateCheck::MaxRecoveryIncrease(limit), Some(cmp)) => {
                for e in &cmp.experiments {
                    match e.recovery_s {
                        (Some(b), Some(c)) if c - b > *limit + 1e-9 => {
                            failures.push(fail(format!(
                                "{}: recovery took {} instead of {}",
                                e.name,
                                fmt::seconds(c),
                                fmt::seconds(b)
                            )))
                        }
                        (Some(b), None) if current.experiments.iter().any(|x| x.name == e.name) => {
                            failures.push(fail(format!(
                                "{}: recovered in {} before, did not recover now",
                                e.name,
                                fmt::seconds(b)
                            )));
                        }
                        _ => {}
                    }
                }
            }
            (GateCheck::MaxF1Drop(limit), Some(cmp)) => {
                for d in cmp
                    .detectors
                    .iter()
                    .filter(|d| rule.detector.as_ref().is_none_or(|n| *n == d.detector))
                {
                    let b = d.baseline.as_ref().and_then(|s| s.f1);
                    let c = d.current.as_ref().and_then(|s| s.f1);
                    if let (Some(b), Some(c)) = (b, c)
                        && b - c > *limit + 1e-12
                    {
                        failures.push(fail(format!(
                            "{}: F1 dropped from {b:.2} to {c:.2}",
                            d.detector
                        )));
                    }
                }
            }
            (GateCheck::MinScore(metric, min), _) => {
                let mut seen = false;
                for d in detectors {
                    seen = true;
                    match metric.of(d) {
                        Some(v) if v + 1e-12 >= *min => {}
                        value => failures.push(fail(format!(
                            "{}: {} is {}, below {min}",
                            d.detector,
                            metric.name(),
                            fmt::score(value)
                        ))),
                    }
                }
                if !seen {
                    failures.push(fail(missing_detector(rule)));
                }
            }
            (GateCheck::MaxFalseAlarmsPerHour(max), _) => {
                let mut seen = false;
                for d in detectors {
                    seen = true;
                    if let Some(v) = d.false_alarms_per_hour
                        && v > *max + 1e-12
                    {
                        failures.push(fail(format!(
                            "{}: {v:.1} false alarms per hour, above {max}",
                            d.detector
                        )));
                    }
                }
                if !seen {
                    failures.push(fail(missing_detector(rule)));
                }
            }
            (GateCheck::MaxTimeToDetect(max), _) => {
                let mut seen = false;
                for d in detectors {
                    seen = true;
                    match d.mean_time_to_detect_s {
                        Some(v) if v <= *max + 1e-9 => {}
                        Some(v) => failures.push(fail(format!(
                            "{}: mean time to detect {} is above {}",
                            d.detector,
                            fmt::seconds(v),
                            fmt::seconds(*max)
                        ))),
                        None => failures.push(fail(format!("{}: detected no fault", d.detector))),
                    }
                }
                if !seen {
                    failures.push(fail(missing_detector(rule)));
                }
            }
            (GateCheck::RegressionVs { .. }, _) => {
                unreachable!("rules that need the history were rejected above")
            }
            (_, None) => unreachable!("rules that need a baseline were rejected above"),
        }
    }
    Ok(failures)
}

fn missing_detector(rule: &GateRule) -> String {
    match &rule.detector {
        Some(name) => format!("detector `{name}` has no scores in this run"),
        None => "no detector was scored in this run".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_rules_parse() {
        let rule: GateRule = "fingerprint:min-recall=90%".parse().unwrap();
        assert_eq!(rule.detector.as_deref(), Some("fingerprint"));
        assert_eq!(rule.check, GateCheck::MinScore(ScoreMetric::Recall, 0.9));
        assert_eq!(
            "recovery-increase=2m".parse::<GateRule>().unwrap().check,
            GateCheck::MaxRecoveryIncrease(120.0)
        );
        assert_eq!(
            "regressions".parse::<GateRule>().unwrap().check,
            GateCheck::NoRegressions
        );
        assert!("regressions".parse::<GateRule>().unwrap().needs_baseline());
    }

    #[test]
    fn regression_vs_rules_parse_with_their_defaults() {
        let rule: GateRule = "regression-vs:last=3,label=release=2025.1,label=deployer=kolla"
            .parse()
            .unwrap();
        assert!(rule.needs_history() && !rule.needs_baseline());
        assert_eq!(
            rule.check,
            GateCheck::RegressionVs {
                last: 3,
                labels: [("deployer", "kolla"), ("release", "2025.1")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            }
        );
        assert_eq!(
            "regression-vs".parse::<GateRule>().unwrap().check,
            GateCheck::RegressionVs {
                last: DEFAULT_REGRESSION_VS_LAST,
                labels: BTreeMap::new()
            }
        );
        for (rule, expected) in [
            ("regression-vs:last=0", "1..=1000"),
            ("regression-vs:last=x", "1..=1000"),
            ("regression-vs:label=release", "KEY=VALUE"),
            ("regression-vs:label=Bad=x", "a-z"),
            ("regression-vs:since=3", "is not `last=N`"),
        ] {
            let error = rule.parse::<GateRule>().unwrap_err().to_string();
            assert!(error.contains(expected), "{rule}: {error}");
        }
    }

    #[test]
    fn a_latency_regresses_only_past_both_the_ratio_and_the_floor() {
        let threshold = LatencyThreshold::default();
        assert!(threshold.regressed(147.0, 345.0), "+135 %, +198 ms");
        assert!(!threshold.regressed(147.0, 170.0), "+16 % is within 20 %");
        assert!(!threshold.regressed(5.0, 40.0), "+700 % but only 35 ms");
        assert!(!threshold.regressed(20_000.0, 20_300.0), "+300 ms is 1.5 %");
        assert!(!threshold.regressed(345.0, 147.0), "faster");
        let strict = LatencyThreshold {
            ratio: 0.1,
            min_increase_ms: 10.0,
        };
        assert!(strict.regressed(147.0, 170.0));
        assert_eq!(
            threshold.describe(),
            "more than 20 % and at least 50 ms slower"
        );
    }

    #[test]
    fn bad_gate_rules_say_why() {
        for (rule, expected) in [
            ("min-f1", "needs a value"),
            ("min-f1=1.5", "not a ratio"),
            ("min-f1=abc", "not a non-negative number"),
            ("fastest", "expected one of"),
            ("x:regressions", "only detector rules"),
            ("latency-regressions=5%", "--latency-threshold"),
            (":min-f1=0.5", "empty"),
        ] {
            let error = rule.parse::<GateRule>().unwrap_err().to_string();
            assert!(error.contains(expected), "{rule}: {error}");
        }
    }
}
