//! Calibration on held-back fault-free runs: each command's distance threshold, its timing scale
//! and the run-level rule are set so that fault-free runs raise false alarms at a stated rate
//! ([`crate::store::Config::false_alarm_rate`]), instead of at whatever the maximum of the learned
//! runs happened to allow. Runs recorded on the cloud being watched (another machine, layout or
//! release than the one learned on) show its ordinary gaps and shapes; calibrating on them is what
//! makes fingerprints hold on a cloud they were not learned on.
//!
//! Each threshold is a split-conformal quantile of the held-back scores: with `n` scores and
//! target rate `α`, the `⌈(n + 1)(1 − α)⌉`-th smallest. A new fault-free score exchangeable with
//! the held-back ones exceeds it with probability at most `α`. With fewer than `1/α − 1` scores no
//! such rank exists: the threshold is then their maximum, and the rate they can vouch for,
//! `1 / (n + 1)`, is reported beside the target.
//!
//! The run-level verdict ([`RunVerdict`]) counts a run's anomalous transactions: one odd
//! transaction in a long fault-free run is noise, several are a failed run. The count a run may
//! have is calibrated the same way, on the held-back runs.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use tracer::event::{EventKind, Transaction};

use crate::diagnose::{Diagnosis, Status};
use crate::distance::EditOp;
use crate::normalize::gaps;
use crate::store::{Calibration, RunRule, Store};
use crate::symbol::answer_key;

/// The split-conformal threshold of `scores` at false-alarm rate `rate`, and whether the scores
/// were enough to vouch for that rate (else the threshold is their maximum). `None` without
/// scores.
pub fn conformal_threshold(scores: &[f64], rate: f64) -> Option<(f64, bool)> {
    let mut sorted: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let rank = ((n + 1) as f64 * (1.0 - rate.clamp(0.0, 1.0))).ceil() as usize;
    if (1..=n).contains(&rank) {
        Some((sorted[rank - 1], true))
    } else {
        Some((sorted[n - 1], rank == 0))
    }
}

/// What calibration set for one command.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandCalibrated {
    /// The command.
    pub command: String,
    /// Its held-back runs.
    pub runs: u64,
    /// Threshold learned from the learned runs alone.
    pub learned_threshold: f64,
    /// The calibration now in the store.
    pub calibration: Calibration,
}

/// What [`Store::calibrate`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibrated {
    /// Per command calibrated.
    pub commands: Vec<CommandCalibrated>,
    /// Held-back transactions of commands with too few learned runs (or none): not used.
    pub not_judged: u64,
    /// The run-level rule.
    pub run_rule: Option<RunRule>,
}

/// The verdict on a whole run (its transactions' diagnoses).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunVerdict {
    /// Transactions diagnosed.
    pub transactions: usize,
    /// Of them anomalous.
    pub anomalous: usize,
    /// Of them without a verdict: not enough normal runs of their command.
    pub not_enough_runs: usize,
    /// A run with more anomalous transactions than this is failed.
    pub max_anomalous: u64,
    /// Whether that limit was calibrated on held-back runs (else it is 0: any anomalous
    /// transaction fails the run).
    pub calibrated: bool,
    /// The verdict.
    pub failed: bool,
}

impl fmt::Display for RunVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = if self.failed { "FAILED" } else { "healthy" };
        let rule = if self.calibrated {
            format!(
                "more than {} anomalous is failed (calibrated on held-back fault-free runs)",
                self.max_anomalous
            )
        } else {
            "any anomalous transaction fails it (no calibrated run rule)".to_owned()
        };
        write!(
            f,
            "run: {verdict}: {} of {} transaction(s) anomalous; {rule}",
            self.anomalous, self.transactions
        )?;
        if self.not_enough_runs > 0 {
            write!(
                f,
                "; {} without a verdict (not enough normal runs)",
                self.not_enough_runs
            )?;
        }
        Ok(())
    }
}

impl Store {
    /// Calibrates thresholds, timing scales, the answer-time scale and the run-level rule on held-back fault-free runs
    /// (`runs`: each run's transactions) at false-alarm rate `rate`, replacing earlier
    /// calibrations. The rate is kept in the config ([`crate::store::Config::false_alarm_rate`]).
    ///
    /// Per command with enough learned runs, each held-back transaction scores its distance to
    /// the nearest variant (optional steps tolerated) and the largest ratio of a step's gap to
    /// its learned bound; the threshold and the timing scale (at least 1) are the conformal
    /// thresholds of those. Held-back runs too few to vouch for the rate never lower the
    /// learned threshold. Answer times likewise: each transaction scores the largest ratio of
    /// an answer time to its bound, and every answer bound is scaled by their conformal
    /// threshold (at least 1). Then each held-back run is diagnosed with them, and the run rule is
    /// the conformal threshold of the runs' counts of anomalous transactions.
    pub fn calibrate(&mut self, runs: &[Vec<Transaction>], rate: f64) -> Calibrated {
        self.config.false_alarm_rate = rate;
        for command in self.commands.values_mut() {
            command.calibration = None;
        }
        self.run_rule = None;
        self.answer_scale = None;
        let answers: Vec<f64> = runs
            .iter()
            .flatten()
            .filter(|transaction| !self.trace(transaction).background)
            .map(|transaction| self.answer_ratio(transaction))
            .collect();
        let answer_scale = conformal_threshold(&answers, rate).map(|(t, _)| t.max(1.0));
        let mut scores: BTreeMap<String, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        let mut not_judged = 0;
        for transaction in runs.iter().flatten() {
            let trace = self.trace(transaction);
            if trace.background || trace.steps.is_empty() {
                continue;
            }
            if !self.enough_runs(&trace.command) {
                not_judged += 1;
                continue;
            }
            let ids = self.lookup(&trace.steps);
            let Some(judged) = self.judged(&trace, &ids) else {
                continue;
            };
            let variant = &judged.command.variants[judged.variant];
            let gaps = gaps(&trace.steps);
            let timing = judged
                .ops
                .iter()
                .filter_map(|op| match *op {
                    EditOp::Match { a, b } => {
                        let (gap, _) = gaps[a]?;
                        let bound = self.step_bound(&trace.command, &variant.steps[b].latency)?;
                        Some(gap as f64 / bound.max(1) as f64)
                    }
                    _ => None,
                })
                .fold(0.0, f64::max);
            let entry = scores.entry(trace.command.clone()).or_default();
            entry.0.push(judged.distance);
            entry.1.push(timing);
        }
        let mut commands = Vec::new();
        for (command, (distances, timings)) in scores {
            let n = distances.len();
            let attainable_rate = 1.0 / (n as f64 + 1.0);
            let learned_threshold = self.commands[&command].learned_threshold(&self.config);
            // Too few held-back runs to vouch for the rate can only loosen the threshold: their
            // maximum says less about the spread than the learned runs did.
            let threshold = conformal_threshold(&distances, rate).map(|(t, vouched)| {
                if vouched { t } else { t.max(learned_threshold) }
            });
            let timing_scale = conformal_threshold(&timings, rate).map_or(1.0, |(t, _)| t.max(1.0));
            let calibration = Calibration {
                target_rate: rate,
                runs: n as u64,
                threshold,
                timing_scale,
                attainable_rate,
            };
            let fingerprint = self
                .commands
                .get_mut(&command)
                .expect("scored commands exist");
            fingerprint.calibration = Some(calibration.clone());
            commands.push(CommandCalibrated {
                command,
                runs: n as u64,
                learned_threshold,
                calibration,
            });
        }
        self.answer_scale = answer_scale;
        let counts: Vec<f64> = runs
            .iter()
            .map(|run| self.run_verdict(&self.diagnose_run(run)).anomalous as f64)
            .collect();
        self.run_rule = conformal_threshold(&counts, rate).map(|(max, _)| RunRule {
            max_anomalous: max as u64,
            target_rate: rate,
            runs: counts.len() as u64,
            attainable_rate: 1.0 / (counts.len() as f64 + 1.0),
        });
        Calibrated {
            commands,
            not_judged,
            run_rule: self.run_rule.clone(),
        }
    }

    /// The largest ratio of a REST request's answer time to its operation's bound in a
    /// transaction (0 without a timed request).
    fn answer_ratio(&self, transaction: &Transaction) -> f64 {
        transaction
            .events
            .iter()
            .filter(|event| event.kind == EventKind::RestRequest)
            .filter_map(|event| {
                let key = answer_key(event.service.as_deref()?, &event.operation);
                let (_, bound) = self.answer_bound(&key)?;
                Some(event.duration_us? as f64 / bound.max(1) as f64)
            })
            .fold(0.0, f64::max)
    }

    /// Diagnoses every transaction of a run but background traffic.
    pub fn diagnose_run(&self, transactions: &[Transaction]) -> Vec<Diagnosis> {
        transactions
            .iter()
            .map(|transaction| self.trace(transaction))
            .filter(|trace| !trace.background && !trace.steps.is_empty())
            .map(|trace| self.diagnose_trace(&trace))
            .collect()
    }

    /// The run-level verdict on a run's diagnoses, by the calibrated run rule (any anomalous
    /// transaction without one).
    pub fn run_verdict(&self, diagnoses: &[Diagnosis]) -> RunVerdict {
        let count = |status: Status| diagnoses.iter().filter(|d| d.status == status).count();
        let anomalous = count(Status::Anomalous);
        let max_anomalous = self.run_rule.as_ref().map_or(0, |rule| rule.max_anomalous);
        RunVerdict {
            transactions: diagnoses.len(),
            anomalous,
            not_enough_runs: count(Status::NotEnoughRuns),
            max_anomalous,
            calibrated: self.run_rule.is_some(),
            failed: anomalous as u64 > max_anomalous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conformal_threshold_is_a_rank_not_the_maximum() {
        let scores: Vec<f64> = (1..=199).map(f64::from).collect();
        // 200 × 0.99 = 198: the 198th smallest of 199, below the maximum.
        assert_eq!(conformal_threshold(&scores, 0.01), Some((198.0, true)));
        assert_eq!(conformal_threshold(&scores, 0.1), Some((180.0, true)));
        // Too few to vouch for 1 %: their maximum, flagged.
        assert_eq!(
            conformal_threshold(&[0.1, 0.3, 0.2], 0.01),
            Some((0.3, false))
        );
        assert_eq!(conformal_threshold(&[], 0.01), None);
    }
}
