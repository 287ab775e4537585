//! The headline of a run, shared by every renderer: per experiment, its hypothesis verdicts next
//! to the share of commands that succeeded in its fault window, toned by that share.
//!
//! Hypotheses only say what the campaign asked: "9 of 9 held" while a fault window booted one
//! server of five reads green unless the window's own success ratio stands beside it.

use crate::fmt;
use crate::model::{Report, Tally, Verdict, WindowKind};

/// A fault-window success ratio from which the window counts as healthy.
pub const HEALTHY_RATIO: f64 = 0.95;
/// A fault-window success ratio below which most commands failed.
pub const FAILING_RATIO: f64 = 0.5;

/// How a fault window went, by its success ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tone {
    /// At least [`HEALTHY_RATIO`] of the commands succeeded.
    Healthy,
    /// No command ran in the window: nothing to judge.
    Idle,
    /// Some commands failed: from [`FAILING_RATIO`] up to [`HEALTHY_RATIO`].
    Degraded,
    /// Fewer than [`FAILING_RATIO`] succeeded.
    Failing,
}

impl Tone {
    /// The tone of a window's tally.
    pub fn of(tally: Tally) -> Tone {
        match tally.ratio() {
            None => Tone::Idle,
            Some(r) if r + 1e-12 >= HEALTHY_RATIO => Tone::Healthy,
            Some(r) if r + 1e-12 >= FAILING_RATIO => Tone::Degraded,
            Some(_) => Tone::Failing,
        }
    }

    /// The CSS class of the tone (`good`, `idle`, `warn`, `bad`).
    pub fn class(self) -> &'static str {
        match self {
            Tone::Healthy => "good",
            Tone::Idle => "idle",
            Tone::Degraded => "warn",
            Tone::Failing => "bad",
        }
    }

    /// A coloured mark for text formats.
    pub fn icon(self) -> &'static str {
        match self {
            Tone::Healthy => "🟢",
            Tone::Idle => "⚪",
            Tone::Degraded => "🟠",
            Tone::Failing => "🔴",
        }
    }
}

/// One experiment's line of the headline.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentHeadline {
    /// Experiment name.
    pub name: String,
    /// Hypotheses (over all repetitions) that held.
    pub held: usize,
    /// Hypotheses over all repetitions.
    pub hypotheses: usize,
    /// Commands of the fault window, pooled over the repetitions.
    pub fault_window: Tally,
    /// The fault window's tone.
    pub tone: Tone,
}

impl ExperimentHeadline {
    /// `3/3 held`.
    pub fn verdicts(&self) -> String {
        format!("{}/{} held", self.held, self.hypotheses)
    }

    /// `1/5 succeeded (20 %)`, or `no command ran`.
    pub fn fault_ratio(&self) -> String {
        match self.fault_window.ratio() {
            Some(ratio) => format!(
                "{}/{} succeeded ({})",
                self.fault_window.successes,
                self.fault_window.count,
                fmt::percent(ratio)
            ),
            None => "no command ran".to_owned(),
        }
    }
}

/// The headline of every experiment, in campaign order.
pub fn experiments(report: &Report) -> Vec<ExperimentHeadline> {
    report
        .experiments
        .iter()
        .map(|experiment| {
            let hypotheses: Vec<_> = experiment
                .repetitions
                .iter()
                .flat_map(|r| &r.hypotheses)
                .collect();
            let fault_window = experiment.tally(WindowKind::Fault);
            ExperimentHeadline {
                name: experiment.name.clone(),
                held: hypotheses
                    .iter()
                    .filter(|h| h.verdict == Verdict::Pass)
                    .count(),
                hypotheses: hypotheses.len(),
                fault_window,
                tone: Tone::of(fault_window),
            }
        })
        .collect()
}

/// The worst fault-window tone of the run ([`Tone::Healthy`] without experiments).
pub fn worst_tone(headlines: &[ExperimentHeadline]) -> Tone {
    headlines
        .iter()
        .map(|h| h.tone)
        .max()
        .unwrap_or(Tone::Healthy)
}

/// One line per experiment for a terminal: `stop-placement: 3/3 held · fault window 1/5
/// succeeded (20 %)`.
pub fn lines(report: &Report) -> Vec<String> {
    experiments(report)
        .iter()
        .map(|h| {
            format!(
                "{}: {} · fault window {}",
                h.name,
                h.verdicts(),
                h.fault_ratio()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(successes: u64, count: u64) -> Tally {
        Tally { successes, count }
    }

    #[test]
    fn the_tone_follows_the_ratio_not_the_verdicts() {
        assert_eq!(Tone::of(tally(5, 5)), Tone::Healthy);
        assert_eq!(Tone::of(tally(19, 20)), Tone::Healthy);
        assert_eq!(Tone::of(tally(22, 30)), Tone::Degraded);
        assert_eq!(Tone::of(tally(1, 2)), Tone::Degraded);
        assert_eq!(Tone::of(tally(1, 5)), Tone::Failing);
        assert_eq!(Tone::of(tally(0, 0)), Tone::Idle);
        assert!(Tone::Failing > Tone::Degraded && Tone::Degraded > Tone::Idle);
    }

    #[test]
    fn every_experiment_shows_its_verdicts_beside_its_fault_window() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/recorded-boot-storm/report.json"
        ))
        .unwrap();
        let report = Report::from_json(&text).unwrap();
        assert!(report.passed(), "every hypothesis held");
        assert_eq!(
            lines(&report),
            [
                "kill-conductor: 3/3 held · fault window 29/29 succeeded (100 %)",
                "freeze-scheduler: 3/3 held · fault window 22/22 succeeded (100 %)",
                "stop-placement: 3/3 held · fault window 22/30 succeeded (73.3 %)",
            ]
        );
        assert_eq!(worst_tone(&experiments(&report)), Tone::Degraded);
    }
}
