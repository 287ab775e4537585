//! Diagnosis of a finished transaction: anomaly (distance above the learned threshold, an error
//! symbol, a step later than its learned bound, or a REST request answered later than its
//! operation's bound), localization (alignment with the nearest
//! normal variant, first divergence, ranked suspects with evidence) and classification (k nearest
//! negative fingerprints).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use tracer::event::Transaction;

use crate::alarm::{Alarm, Suspect};
use crate::answer::{Request, SlowAnswer, first_slow, suspect_holder};
use crate::distance::{EditOp, Pattern, align, normalized};
use crate::normalize::{gaps, latest, observed_until};
use crate::store::{
    CommandFingerprint, FaultLabel, StepProfile, Store, Trace, Variant, negative_distance,
};
pub use crate::suspicion::RankedSuspect;
use crate::suspicion::{Suspicion, WEIGHTS, actor, suspect_failures};
use crate::symbol::Step;
use crate::timing::human_us;

/// The verdict on one transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Within learned normal behaviour.
    Normal,
    /// Outside learned normal behaviour.
    Anomalous,
    /// No positive fingerprint for the command and no error: nothing to compare with.
    Unknown,
    /// The API refused the user's request (HTTP 4xx: over quota, invalid, already gone), nothing
    /// failed and nothing was slow: the command never ran, and the API answering is the API
    /// working. Not compared with normal runs, whose shapes it cannot have.
    Refused,
    /// The command was learned from fewer normal runs than [`crate::store::Config::min_runs`]:
    /// too few to judge its sequence or timing, and nothing else (an error normal runs do not
    /// show, a slow answer) went wrong. No verdict rather than a guess.
    NotEnoughRuns,
}

/// How the trace first departed from its nearest normal variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DivergenceKind {
    /// An expected step never happened.
    Missing,
    /// A different step happened instead of the expected one.
    Substituted,
    /// A step happened that normal runs do not have.
    Unexpected,
}

/// The first departure from the nearest normal variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// What happened.
    pub kind: DivergenceKind,
    /// Position in the normal variant.
    pub variant_step: Option<usize>,
    /// Position in the trace.
    pub trace_step: Option<usize>,
    /// The step the variant expected there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// The step the trace has there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// The last step both agree on before the divergence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

/// A step that came later than its learned bound.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LateStep {
    /// Position in the trace.
    pub trace_step: usize,
    /// Position in the trace of the step before it.
    pub after_step: usize,
    /// The late step.
    pub symbol: String,
    /// The step before it.
    pub after: String,
    /// Observed time since the step before, µs.
    pub gap_us: u64,
    /// Learned bound, µs.
    pub bound_us: u64,
    /// Learned median, µs.
    pub p50_us: u64,
    /// Learned 99th percentile, µs.
    pub p99_us: u64,
}

/// The likely fault, from the nearest negative fingerprints of the command (k-NN, open set).
///
/// Only negatives within their fault's learned bound ([`Store::negative_bound`]) vote; when none
/// is, the answer is "none of the known faults" rather than the nearest label.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum Classification {
    /// A known fault: the label that won the vote.
    Known {
        /// The fault.
        label: FaultLabel,
        /// Confidence in `0.0..=1.0`.
        confidence: f64,
        /// Distance to the nearest negative with that label (normalized, plus anchor penalty).
        distance: f64,
        /// The fault's distance bound.
        bound: f64,
    },
    /// None of the known faults: every negative of the command is farther than its fault's bound,
    /// so the trace most likely shows a fault never learned.
    Unknown {
        /// The nearest known fault all the same, for reference.
        nearest: FaultLabel,
        /// Distance to its nearest negative (normalized, plus anchor penalty).
        distance: f64,
        /// That fault's distance bound, which the distance exceeds.
        bound: f64,
    },
}

impl Classification {
    /// The known fault, unless the trace matched none.
    pub fn label(&self) -> Option<&FaultLabel> {
        match self {
            Classification::Known { label, .. } => Some(label),
            Classification::Unknown { .. } => None,
        }
    }
}

/// Everything the diagnosis found about one transaction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnosis {
    /// The transaction id.
    pub transaction: String,
    /// The command it was compared as.
    pub command: String,
    /// The verdict.
    pub status: Status,
    /// Anomaly score in `0.0..=1.0`; above 0.5 means anomalous.
    pub score: f64,
    /// Number of normalized steps.
    pub steps: usize,
    /// Normalized edit distance to the nearest normal variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distance: Option<f64>,
    /// The command's learned threshold on that distance.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Index of the nearest normal variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nearest_variant: Option<usize>,
    /// The first departure from the nearest variant.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub divergence: Option<Divergence>,
    /// Steps later than their learned bound.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub late: Vec<LateStep>,
    /// The first REST request answered later than its operation's learned bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_answer: Option<SlowAnswer>,
    /// Steps that report a failure normal runs of the command do not usually show.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Steps that report a failure normal runs of the command show too (a `NotFound` during a
    /// delete, [`crate::store::Config::usual_error_rate`]): not evidence of a fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub usual_errors: Vec<String>,
    /// Steps the trace has beyond its nearest variant that are optional (read-only successful
    /// requests, notifications, broadcasts, polls: what another configuration adds) and cost no
    /// distance.
    #[serde(skip_serializing_if = "is_zero")]
    pub optional_steps: usize,
    /// The step where the trace departed from normal behaviour: the late step, or the expected
    /// step at the divergence. Used to compare with negative fingerprints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anchor: Option<String>,
    /// Suspected components, most likely first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub suspects: Vec<RankedSuspect>,
    /// The nearest known fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// When the anomaly became visible (µs since the epoch).
    pub detected_at_us: i64,
}

impl LateStep {
    /// When the step became late: the last activity before it plus its bound.
    fn overrun_at(&self, trace: &Trace) -> i64 {
        trace.steps[self.trace_step]
            .ts_us
            .saturating_sub(i64::try_from(self.gap_us).unwrap_or(i64::MAX))
            .saturating_add(i64::try_from(self.bound_us).unwrap_or(i64::MAX))
    }

    /// The last activity before the late step (µs since the epoch).
    fn waited_since(&self, trace: &Trace) -> i64 {
        trace.steps[self.trace_step]
            .ts_us
            .saturating_sub(i64::try_from(self.gap_us).unwrap_or(i64::MAX))
    }
}

impl Store {
    /// Diagnoses one transaction.
    pub fn diagnose(&self, transaction: &Transaction) -> Diagnosis {
        self.diagnose_trace(&self.trace(transaction))
    }

    /// Diagnoses an already symbolized trace.
    pub fn diagnose_trace(&self, trace: &Trace) -> Diagnosis {
        let ids = self.lookup(&trace.steps);
        let mut suspicion = Suspicion::default();
        type Positioned<'a> = Vec<(usize, &'a Step)>;
        let (errors, usual): (Positioned<'_>, Positioned<'_>) = trace
            .steps
            .iter()
            .enumerate()
            .filter(|(_, step)| step.error)
            .partition(|(_, step)| !self.usual_error(&trace.command, &step.symbol));
        suspect_failures(&mut suspicion, &trace.steps, &errors);
        let mut diagnosis = Diagnosis {
            transaction: trace.transaction.clone(),
            command: trace.command.clone(),
            status: Status::Unknown,
            score: 0.0,
            steps: trace.steps.len(),
            distance: None,
            threshold: None,
            nearest_variant: None,
            divergence: None,
            late: Vec::new(),
            slow_answer: None,
            errors: errors.iter().map(|(_, step)| step.symbol.clone()).collect(),
            usual_errors: usual.iter().map(|(_, step)| step.symbol.clone()).collect(),
            optional_steps: 0,
            anchor: None,
            suspects: Vec::new(),
            classification: None,
            detected_at_us: errors
                .first()
                .map(|(_, step)| step.ts_us)
                .or_else(|| latest(&trace.steps).map(|step| step.ts_us))
                .unwrap_or(0),
        };
        if let Some(judged) = self.judged(trace, &ids) {
            let Judged {
                command,
                threshold,
                variant: index,
                distance,
                optional,
                ops,
            } = judged;
            let variant = &command.variants[index];
            diagnosis.optional_steps = optional;
            diagnosis.distance = Some(distance);
            diagnosis.threshold = Some(threshold);
            diagnosis.nearest_variant = Some(index);
            if !self.enough_runs(&trace.command) {
                diagnosis.status = Status::NotEnoughRuns;
                return self.conclude(trace, &ids, diagnosis, suspicion, &errors);
            }
            diagnosis.score = (0.5 * distance / threshold).min(1.0);
            diagnosis.late = self.late_steps(trace, variant, &ops);
            let diverged = divergence(self, trace, variant, &ops);
            diagnosis.divergence = diverged.as_ref().map(|(_, divergence)| divergence.clone());
            let sequence_anomaly = distance > threshold;
            if let Some(first) = diagnosis.late.first() {
                // Suspects follow the step most overdue, not the first one past its bound: on
                // another machine ordinary steps pass a tight bound by a little, while the fault
                // holds its step many bounds long. The anomaly shows at the first overrun.
                let ratio = |late: &LateStep| late.gap_us as f64 / late.bound_us.max(1) as f64;
                let worst = diagnosis.late.iter().fold(first, |worst, late| {
                    if ratio(late) > ratio(worst) {
                        late
                    } else {
                        worst
                    }
                });
                diagnosis.score = diagnosis.score.max((0.5 * ratio(worst)).min(1.0));
                diagnosis.anchor = Some(worst.symbol.clone());
                diagnosis.detected_at_us = first.overrun_at(trace);
                // The optional extra steps left out of the alignment hold nothing: a token check
                // the API makes while it waits does not make the API the one that is stuck.
                let extras: Vec<u64> = (0..trace.steps.len())
                    .filter(|&a| {
                        !ops.iter().any(|op| match *op {
                            EditOp::Match { a: at, .. }
                            | EditOp::Substitute { a: at, .. }
                            | EditOp::Insert { a: at } => at == a,
                            EditOp::Delete { .. } => false,
                        })
                    })
                    .map(|a| trace.steps[a].seq)
                    .collect();
                suspect_late(&mut suspicion, trace, worst, &extras);
            }
            if sequence_anomaly && let Some((before, divergence)) = &diverged {
                if diagnosis.anchor.is_none() {
                    diagnosis.anchor = divergence
                        .expected
                        .clone()
                        .or_else(|| divergence.observed.clone());
                }
                suspect_divergence(&mut suspicion, trace, variant, *before, divergence);
            }
            diagnosis.status = if sequence_anomaly || !diagnosis.late.is_empty() {
                Status::Anomalous
            } else {
                Status::Normal
            };
        }
        self.conclude(trace, &ids, diagnosis, suspicion, &errors)
    }

    /// What applies to every command, fingerprinted or not: slow answers, refusals, errors, and
    /// then the suspects and the nearest known fault of an anomaly.
    fn conclude(
        &self,
        trace: &Trace,
        ids: &[u32],
        mut diagnosis: Diagnosis,
        mut suspicion: Suspicion,
        errors: &[(usize, &Step)],
    ) -> Diagnosis {
        // Answer times are learned per operation, whatever the command: they apply even to a
        // command without a fingerprint.
        let requests: Vec<Request> = trace.steps.iter().filter_map(Request::of_step).collect();
        if let Some((slow, holder)) = first_slow(self, &requests, i64::MAX) {
            let ratio = slow.took_us as f64 / slow.bound_us.max(1) as f64;
            diagnosis.score = diagnosis.score.max((0.5 * ratio).min(1.0));
            if diagnosis.late.is_empty() || slow.overrun_at_us < diagnosis.detected_at_us {
                diagnosis.detected_at_us = slow.overrun_at_us;
            }
            // Like late steps, the answer most overdue for its bound is what the fault held:
            // an answer a little past a tight bound does not outweigh a step held for minutes.
            let worst_late = diagnosis
                .late
                .iter()
                .map(|late| late.gap_us as f64 / late.bound_us.max(1) as f64)
                .fold(0.0, f64::max);
            if ratio >= worst_late {
                diagnosis.anchor = Some(holder.symbol.clone());
                suspect_holder(&mut suspicion, &slow, holder);
            }
            diagnosis.status = Status::Anomalous;
            diagnosis.slow_answer = Some(slow);
        }
        if errors.is_empty()
            && diagnosis.slow_answer.is_none()
            && trace.steps.first().is_some_and(Step::rejected)
        {
            // Over quota while servers are left over from a fault, say: the workload's command
            // failed, but not the cloud (measured: such refusals were most baseline alarms).
            diagnosis.status = Status::Refused;
            diagnosis.score = 0.0;
            diagnosis.late.clear();
            diagnosis.anchor = None;
            return diagnosis;
        }
        if !errors.is_empty() {
            diagnosis.status = Status::Anomalous;
            diagnosis.score = 1.0;
            if diagnosis.anchor.is_none() {
                diagnosis.anchor = Some(errors[0].1.symbol.clone());
            }
        }
        if diagnosis.status == Status::Anomalous {
            diagnosis.suspects = suspicion.ranked();
            diagnosis.classification = self.classify(trace, ids, diagnosis.anchor.as_deref());
        }
        diagnosis
    }

    /// The nearest normal variant of a trace's command and how far the trace is from it, with
    /// the optional steps it has beyond it tolerated ([`optional_step`]); `None` without a
    /// fingerprint for the command.
    pub(crate) fn judged(&self, trace: &Trace, ids: &[u32]) -> Option<Judged<'_>> {
        let command = self.commands.get(&trace.command)?;
        let threshold = command.threshold(&self.config);
        let (index, distance) = nearest_normalized(command, ids, threshold)?;
        let ops = align(ids, &command.variants[index].symbols);
        let (distance, optional, ops) =
            match tolerate_optional(trace, &command.variants[index], &ops) {
                Some((tolerated, optional, judged)) => (tolerated.min(distance), optional, judged),
                None => (distance, 0, ops),
            };
        Some(Judged {
            command,
            threshold,
            variant: index,
            distance,
            optional,
            ops,
        })
    }

    /// Matched steps that came later than their learned bound after the last activity before
    /// them ([`gaps`]); the first to overrun its bound first.
    fn late_steps(&self, trace: &Trace, variant: &Variant, ops: &[EditOp]) -> Vec<LateStep> {
        let gaps = gaps(&trace.steps);
        let mut late = Vec::new();
        for op in ops {
            let EditOp::Match { a, b } = *op else {
                continue;
            };
            let Some((gap, from)) = gaps[a] else {
                continue;
            };
            let latency = &variant.steps[b].latency;
            if let Some(bound) = self.step_bound(&trace.command, latency)
                && gap > bound
            {
                late.push(LateStep {
                    trace_step: a,
                    after_step: from,
                    symbol: trace.steps[a].symbol.clone(),
                    after: trace.steps[from].symbol.clone(),
                    gap_us: gap,
                    bound_us: bound,
                    p50_us: latency.p50().unwrap_or(0),
                    p99_us: latency.p99().unwrap_or(0),
                });
            }
        }
        late.sort_by_key(|late| (late.overrun_at(trace), late.trace_step));
        late
    }

    fn classify(&self, trace: &Trace, ids: &[u32], anchor: Option<&str>) -> Option<Classification> {
        let pattern = Pattern::new(ids);
        let mut neighbours: Vec<(f64, &FaultLabel)> = self
            .negatives
            .iter()
            .filter(|negative| negative.command == trace.command)
            .map(|negative| {
                let distance = negative_distance(self, &pattern, ids, anchor, negative);
                (distance, &negative.label)
            })
            .collect();
        neighbours.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        let &(nearest_distance, nearest) = neighbours.first()?;
        let bound_of = |label: &FaultLabel| self.negative_bound(&trace.command, label);
        // Open-set k-NN: a negative votes only if the trace is within its fault's bound, so a
        // fault never learned is not forced onto the nearest known label.
        let mut voters = Vec::new();
        for &(distance, label) in &neighbours {
            if voters.len() == self.config.knn.max(1) {
                break;
            }
            if distance <= bound_of(label) {
                voters.push((distance, label));
            }
        }
        if voters.is_empty() {
            return Some(Classification::Unknown {
                nearest: nearest.clone(),
                distance: nearest_distance,
                bound: bound_of(nearest),
            });
        }
        let mut votes: BTreeMap<&FaultLabel, (f64, f64)> = BTreeMap::new();
        for &(distance, label) in &voters {
            let vote = votes.entry(label).or_insert((0.0, f64::INFINITY));
            vote.0 += 1.0 / (distance + 0.05);
            vote.1 = vote.1.min(distance);
        }
        let total: f64 = votes.values().map(|vote| vote.0).sum();
        let (label, (weight, distance)) = votes
            .into_iter()
            .max_by(|a, b| a.1.0.total_cmp(&b.1.0).then_with(|| b.0.cmp(a.0)))?;
        Some(Classification::Known {
            label: label.clone(),
            confidence: (weight / total) * (1.0 - distance.min(1.0)),
            distance,
            bound: bound_of(label),
        })
    }
}

/// A trace set against its command's nearest normal variant (see [`Store::judged`]).
pub(crate) struct Judged<'a> {
    /// The command's fingerprint.
    pub(crate) command: &'a CommandFingerprint,
    /// Its threshold.
    pub(crate) threshold: f64,
    /// The nearest variant's index.
    pub(crate) variant: usize,
    /// Normalized distance, optional steps tolerated.
    pub(crate) distance: f64,
    /// Optional steps tolerated.
    pub(crate) optional: usize,
    /// The alignment (trace `a` against variant `b`) without the tolerated steps.
    pub(crate) ops: Vec<EditOp>,
}

/// Whether an extra step, one the nearest variant lacks, is optional: a read-only request
/// answered without error, a notification, a broadcast or a user's poll. Another configuration
/// of the same cloud adds such steps (a token check, a notification driver, one more placement
/// lookup) without the command going any other way, so they cost no distance. Failed steps,
/// writes, RPC calls and casts always count.
fn optional_step(step: &Step) -> bool {
    if step.error || step.symbol.contains(" -> ") {
        return false;
    }
    step.poll
        || (step.read_only && step.symbol.starts_with("rest:"))
        || step.symbol.starts_with("notify:")
        || step.symbol.starts_with("rpc.fanout:")
}

/// The alignment without the optional extra steps ([`optional_step`]): the normalized distance
/// that is left, how many steps were tolerated, and the alignment to judge by. `None` when the
/// trace has no optional extra step.
fn tolerate_optional(
    trace: &Trace,
    variant: &Variant,
    ops: &[EditOp],
) -> Option<(f64, usize, Vec<EditOp>)> {
    let tolerated =
        |op: &EditOp| matches!(*op, EditOp::Insert { a } if optional_step(&trace.steps[a]));
    let optional = ops.iter().filter(|op| tolerated(op)).count();
    if optional == 0 {
        return None;
    }
    let judged: Vec<EditOp> = ops.iter().filter(|op| !tolerated(op)).copied().collect();
    let edits = judged
        .iter()
        .filter(|op| !matches!(op, EditOp::Match { .. }))
        .count();
    let distance = normalized(edits, trace.steps.len() - optional, variant.symbols.len());
    Some((distance, optional, judged))
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// Commands with at most this many variants have their nearest variant chosen by normalized
/// distance when the nearest by edit count is beyond the threshold (see [`nearest_normalized`]).
const NORMALIZED_SEARCH_MAX_VARIANTS: usize = 64;

/// The variant a trace is diagnosed against, and its normalized distance. The nearest variant
/// by edit count favours short variants for a short trace: a boot diagnosed live two steps in,
/// where its fault stopped it, is two edits from a two-step `DELETE -> 404` run and thirty-five
/// from a whole delete, yet the whole delete is what it was on its way to be. So when the nearest
/// by edit count is beyond the threshold (the trace is anomalous either way), and the command has
/// the few variants real commands have, the variant with the smallest normalized distance is
/// taken instead (ties to the smaller index); stores of thousands of variants keep the nearest by
/// edit count, whose search is indexed.
fn nearest_normalized(
    command: &CommandFingerprint,
    ids: &[u32],
    threshold: f64,
) -> Option<(usize, f64)> {
    let (index, raw) = command.nearest(ids)?;
    let distance = normalized(raw, ids.len(), command.variants[index].symbols.len());
    if distance <= threshold || command.variants.len() > NORMALIZED_SEARCH_MAX_VARIANTS {
        return Some((index, distance));
    }
    let pattern = Pattern::new(ids);
    command
        .variants
        .iter()
        .enumerate()
        .map(|(other, variant)| {
            let raw = pattern.distance(&variant.symbols);
            (normalized(raw, ids.len(), variant.symbols.len()), other)
        })
        .chain([(distance, index)])
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)))
        .map(|(distance, index)| (index, distance))
}

/// A trace aligned with a normal variant, and where it first departed from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alignment {
    /// The alignment of the trace (`a`) against the variant (`b`), in lane-layout order.
    pub ops: Vec<EditOp>,
    /// Index into `ops` of the first departure in causal order (see [`first_divergence`]);
    /// `None` when every step matches.
    pub first_divergence: Option<usize>,
}

impl Store {
    /// Aligns a trace with a variant of its command, and finds its first divergence in causal
    /// order: what a report draws beside the trace.
    pub fn alignment(&self, trace: &Trace, variant: &Variant) -> Alignment {
        let ops = align(&self.lookup(&trace.steps), &variant.symbols);
        let first_divergence = first_divergence(trace, variant, &ops);
        Alignment {
            ops,
            first_divergence,
        }
    }
}

/// The learned median time of each variant step from the first step (`i64::MAX` where none was
/// learned, as for polls).
fn typical_offsets(variant: &Variant) -> Vec<i64> {
    variant
        .steps
        .iter()
        .map(|step| {
            step.offset
                .p50()
                .map_or(i64::MAX, |p50| i64::try_from(p50).unwrap_or(i64::MAX))
        })
        .collect()
}

/// Index into `ops` of the first departure from the variant, in causal order: the lanes are laid
/// out one after the other, so the first edit in sequence order may come from a lane that only
/// felt the trouble later (a conductor that never took its cast: the placement request the
/// scheduler would have made after it is laid out before it, in the REST lane). Each edit is
/// placed at the time it shows: a step the variant expects at its typical offset (learned median
/// time from the first step), an unexpected step at its own; the earliest wins, ties going to the
/// layout order.
pub fn first_divergence(trace: &Trace, variant: &Variant, ops: &[EditOp]) -> Option<usize> {
    // Polls have no offset (they are not part of the command's own timeline), and a poll more
    // or less says nothing about where the command went wrong: their edits come last.
    let typical = typical_offsets(variant);
    let start = trace.steps.first().map_or(0, |step| step.ts_us);
    let shows_at = |op: &EditOp| -> i64 {
        match *op {
            EditOp::Delete { b } | EditOp::Substitute { b, .. } => start.saturating_add(typical[b]),
            EditOp::Insert { a } if trace.steps[a].poll => i64::MAX,
            EditOp::Insert { a } => trace.steps[a].ts_us,
            EditOp::Match { .. } => i64::MAX,
        }
    };
    ops.iter()
        .enumerate()
        .filter(|(_, op)| !matches!(op, EditOp::Match { .. }))
        .min_by_key(|&(position, op)| (shows_at(op), position))
        .map(|(position, _)| position)
}

/// The first departure from the variant in causal order ([`first_divergence`]), with the trace
/// step that happened last before it, in time.
fn divergence(
    store: &Store,
    trace: &Trace,
    variant: &Variant,
    ops: &[EditOp],
) -> Option<(Option<usize>, Divergence)> {
    let typical = typical_offsets(variant);
    let op = &ops[first_divergence(trace, variant, ops)?];
    let (kind, variant_step, trace_step) = match *op {
        EditOp::Delete { b } => (DivergenceKind::Missing, Some(b), None),
        EditOp::Substitute { a, b } => (DivergenceKind::Substituted, Some(b), Some(a)),
        EditOp::Insert { a } => (DivergenceKind::Unexpected, None, Some(a)),
        EditOp::Match { .. } => return None,
    };
    // The step before the divergence: for an expected step, the matched step that typically
    // comes last before it (so that a slower run is judged by its own clock); for an unexpected
    // one, the step observed last before it.
    let before = match variant_step {
        Some(b) => ops
            .iter()
            .filter_map(|op| match *op {
                EditOp::Match { a, b: matched } if typical[matched] <= typical[b] => {
                    Some((typical[matched], trace.steps[a].ts_us, a))
                }
                _ => None,
            })
            .max()
            .map(|(_, _, a)| a),
        None => trace_step.and_then(|a| {
            let until = (trace.steps[a].ts_us, trace.steps[a].seq);
            trace
                .steps
                .iter()
                .enumerate()
                .filter(|(other, step)| *other != a && !step.poll && (step.ts_us, step.seq) < until)
                .max_by_key(|(_, step)| (step.ts_us, step.seq))
                .map(|(other, _)| other)
        }),
    };
    let symbol_of = |b: usize| store.symbol(variant.symbols[b]).map(str::to_owned);
    Some((
        before,
        Divergence {
            kind,
            variant_step,
            trace_step,
            expected: variant_step.and_then(symbol_of),
            observed: trace_step.map(|a| trace.steps[a].symbol.clone()),
            after: before.map(|a| trace.steps[a].symbol.clone()),
        },
    ))
}

/// Suspects each service that returned a failure (`failures`: positions and steps).
///
/// The command's own steps observed up to and including trace step `until`, in time order.
fn up_to(steps: &[Step], until: usize) -> Vec<Step> {
    observed_until(steps, (steps[until].ts_us, steps[until].seq))
}

fn suspect_late(suspicion: &mut Suspicion, trace: &Trace, late: &LateStep, extras: &[u64]) {
    let step = &trace.steps[late.trace_step];
    let timing = format!(
        "`{}` came {} after `{}` (learned p50 {}, p99 {}, bound {})",
        late.symbol,
        human_us(late.gap_us),
        late.after,
        human_us(late.p50_us),
        human_us(late.p99_us),
        human_us(late.bound_us)
    );
    let mut held = observed_until(&trace.steps, (late.waited_since(trace), u64::MAX));
    held.retain(|step| !extras.contains(&step.seq));
    if let Some(holder) = actor(&held) {
        suspicion.add(
            holder.service,
            holder.host,
            WEIGHTS.actor,
            format!(
                "{} `{}` and was slow to act: {timing}",
                holder.why, holder.symbol
            ),
        );
    }
    suspicion.add(
        step.caller.as_deref(),
        None,
        WEIGHTS.sender,
        format!("sends `{}`, which was late", step.symbol),
    );
    suspicion.add(
        step.service.as_deref(),
        step.host.as_deref(),
        WEIGHTS.handler,
        format!("handles `{}`, which was late", step.symbol),
    );
}

fn suspect_divergence(
    suspicion: &mut Suspicion,
    trace: &Trace,
    variant: &Variant,
    before_index: Option<usize>,
    divergence: &Divergence,
) {
    let before = before_index.map(|a| &trace.steps[a]);
    let expected = divergence.variant_step.map(|b| &variant.steps[b]);
    let expected_symbol = divergence.expected.as_deref().unwrap_or("?");
    match divergence.kind {
        DivergenceKind::Missing => {
            let held = before_index.map(|a| up_to(&trace.steps, a));
            if let Some(holder) = held.as_deref().and_then(actor) {
                suspicion.add(
                    holder.service,
                    holder.host,
                    WEIGHTS.actor,
                    format!(
                        "{} `{}` and should have acted next: `{expected_symbol}` never came",
                        holder.why, holder.symbol
                    ),
                );
            }
            if let Some(expected) = expected {
                suspect_expected(suspicion, expected, expected_symbol);
            }
        }
        DivergenceKind::Substituted | DivergenceKind::Unexpected => {
            let observed = divergence.trace_step.map(|a| &trace.steps[a]);
            if let Some(observed) = observed {
                suspicion.add(
                    observed.service.as_deref(),
                    observed.host.as_deref(),
                    WEIGHTS.actor,
                    format!("`{}` is not part of normal runs here", observed.symbol),
                );
            }
            if let Some(expected) = expected {
                suspect_expected(suspicion, expected, expected_symbol);
            }
            if let Some(before) = before {
                suspicion.add(
                    before.service.as_deref(),
                    before.host.as_deref(),
                    WEIGHTS.handler,
                    format!("last normal step was `{}`", before.symbol),
                );
            }
        }
    }
    // Services the normal run still needed after the divergence but that never showed up.
    let seen: std::collections::BTreeSet<&str> = trace
        .steps
        .iter()
        .filter_map(|step| step.service.as_deref())
        .collect();
    let from = divergence.variant_step.unwrap_or(variant.steps.len());
    let mut silent: BTreeMap<&str, &StepProfile> = BTreeMap::new();
    for profile in &variant.steps[from..] {
        if let Some(service) = profile.service.as_deref()
            && !seen.contains(service)
        {
            silent.entry(service).or_insert(profile);
        }
    }
    for (service, profile) in silent {
        suspicion.add(
            Some(service),
            profile.host.as_deref(),
            WEIGHTS.silent,
            "expected to act after the divergence, never seen in this transaction".to_owned(),
        );
    }
}

fn suspect_expected(suspicion: &mut Suspicion, expected: &StepProfile, symbol: &str) {
    suspicion.add(
        expected.caller.as_deref(),
        None,
        WEIGHTS.sender,
        format!("should have sent `{symbol}`"),
    );
    suspicion.add(
        expected.service.as_deref(),
        expected.host.as_deref(),
        WEIGHTS.handler,
        format!("should have handled `{symbol}`"),
    );
}

/// Rounds to three decimals, so that reports and alarms stay readable and stable.
fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

impl Diagnosis {
    /// The alarm for this diagnosis, when it is anomalous.
    pub fn to_alarm(&self) -> Option<Alarm> {
        if self.status != Status::Anomalous {
            return None;
        }
        let mut evidence = Vec::new();
        for error in &self.errors {
            evidence.push(format!("error: `{error}`"));
        }
        if let (Some(distance), Some(threshold)) = (self.distance, self.threshold)
            && distance > threshold
        {
            evidence.push(format!(
                "distance {:.3} to the nearest normal variant exceeds the threshold {:.3}",
                distance, threshold
            ));
        }
        if let Some(divergence) = &self.divergence {
            evidence.push(divergence.to_string());
        }
        for late in &self.late {
            evidence.push(late.to_string());
        }
        if let Some(slow) = &self.slow_answer {
            evidence.push(slow.to_string());
        }
        if let Some(classification) = &self.classification {
            evidence.push(classification.to_string());
        }
        Some(Alarm {
            ts_us: self.detected_at_us,
            detector: "fingerprint".to_owned(),
            suspects: self
                .suspects
                .iter()
                .map(|suspect| Suspect {
                    service: suspect.service.clone(),
                    host: suspect.host.clone(),
                    confidence: round3(suspect.confidence),
                })
                .collect(),
            score: round3(self.score),
            transaction: Some(self.transaction.clone()),
            fault_kind: self
                .classification
                .as_ref()
                .and_then(Classification::label)
                .map(|label| label.fault_kind.clone()),
            evidence,
        })
    }
}

fn label_text(label: &FaultLabel) -> String {
    match &label.host {
        Some(host) => format!("{} of {} on {host}", label.fault_kind, label.service),
        None => format!("{} of {}", label.fault_kind, label.service),
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Classification::Known {
                label,
                confidence,
                distance,
                bound,
            } => write!(
                f,
                "nearest known fault: {} (confidence {confidence:.2}, distance {distance:.3}, bound {bound:.3})",
                label_text(label)
            ),
            Classification::Unknown {
                nearest,
                distance,
                bound,
            } => write!(
                f,
                "unknown fault: none of the known faults is within its bound (nearest: {} at distance {distance:.3}, bound {bound:.3})",
                label_text(nearest)
            ),
        }
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let after = self
            .after
            .as_deref()
            .map(|after| format!(" after `{after}`"))
            .unwrap_or_default();
        let expected = self.expected.as_deref().unwrap_or("?");
        let observed = self.observed.as_deref().unwrap_or("?");
        match self.kind {
            DivergenceKind::Missing => write!(f, "missing step `{expected}`{after}"),
            DivergenceKind::Substituted => {
                write!(f, "`{observed}` instead of `{expected}`{after}")
            }
            DivergenceKind::Unexpected => write!(f, "unexpected step `{observed}`{after}"),
        }
    }
}

impl fmt::Display for LateStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "late step `{}`: {} after `{}`, bound {} (p50 {}, p99 {})",
            self.symbol,
            human_us(self.gap_us),
            self.after,
            human_us(self.bound_us),
            human_us(self.p50_us),
            human_us(self.p99_us)
        )
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            Status::Normal => "normal",
            Status::Anomalous => "ANOMALOUS",
            Status::Unknown => "unknown (no fingerprint for this command)",
            Status::Refused => "refused by the API (a client error; not compared)",
            Status::NotEnoughRuns => "no verdict: not enough normal runs of this command to judge",
        };
        writeln!(
            f,
            "transaction {} [{}]: {status}",
            self.transaction, self.command
        )?;
        write!(f, "  steps {}, score {:.2}", self.steps, self.score)?;
        if let (Some(distance), Some(threshold)) = (self.distance, self.threshold) {
            write!(f, ", distance {distance:.3} (threshold {threshold:.3})")?;
        }
        if let Some(variant) = self.nearest_variant {
            write!(f, ", nearest variant #{variant}")?;
        }
        writeln!(f)?;
        for error in &self.errors {
            writeln!(f, "  error: `{error}`")?;
        }
        for error in &self.usual_errors {
            writeln!(f, "  error normal runs show too: `{error}`")?;
        }
        if self.optional_steps > 0 {
            writeln!(
                f,
                "  {} optional step(s) beyond the nearest variant, tolerated",
                self.optional_steps
            )?;
        }
        if let Some(divergence) = &self.divergence {
            writeln!(f, "  divergence: {divergence}")?;
        }
        for late in &self.late {
            writeln!(f, "  {late}")?;
        }
        if let Some(slow) = &self.slow_answer {
            writeln!(f, "  {slow}")?;
        }
        for (rank, suspect) in self.suspects.iter().enumerate() {
            let host = suspect
                .host
                .as_deref()
                .map(|host| format!(" on {host}"))
                .unwrap_or_default();
            writeln!(
                f,
                "  suspect {}: {}{host} ({:.2})",
                rank + 1,
                suspect.service,
                suspect.confidence
            )?;
            for evidence in &suspect.evidence {
                writeln!(f, "    - {evidence}")?;
            }
        }
        if let Some(classification) = &self.classification {
            writeln!(f, "  {classification}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NegativeFingerprint;

    fn step(symbol: &str, service: &str, caller: Option<&str>) -> Step {
        Step {
            symbol: symbol.to_owned(),
            ts_us: 0,
            seq: 0,
            service: Some(service.to_owned()),
            host: Some("controller".to_owned()),
            caller: caller.map(str::to_owned),
            error: false,
            answer: false,
            read_only: symbol.contains(" GET "),
            ..Step::default()
        }
    }

    fn label(fault_kind: &str, service: &str) -> FaultLabel {
        FaultLabel {
            fault_kind: fault_kind.to_owned(),
            service: service.to_owned(),
            host: None,
        }
    }

    fn negative(
        label: &FaultLabel,
        symbols: Vec<u32>,
        anchor: &str,
        count: u64,
    ) -> NegativeFingerprint {
        NegativeFingerprint {
            command: "server create".to_owned(),
            label: label.clone(),
            symbols,
            anchor: Some(anchor.to_owned()),
            count,
        }
    }

    fn trace() -> Trace {
        Trace {
            transaction: "req-1".to_owned(),
            command: "server create".to_owned(),
            background: false,
            steps: Vec::new(),
        }
    }

    /// Two faults: a frozen conductor learned from two slightly different trails (spread 0.1,
    /// bound 0.15) and a stopped compute learned from one (the single-transaction bound, 0.3).
    fn two_faults() -> (Store, FaultLabel, FaultLabel) {
        let mut store = Store::default();
        let conductor = label("process-freeze", "nova-conductor");
        let compute = label("service-stop", "nova-compute");
        store.negatives = vec![
            negative(&conductor, (1..=10).collect(), "rpc.call:conductor", 1),
            negative(
                &conductor,
                (1..=9).chain([11]).collect(),
                "rpc.call:conductor",
                1,
            ),
            negative(&compute, (20..30).collect(), "rpc.cast:compute", 1),
        ];
        (store, conductor, compute)
    }

    #[test]
    fn fault_bounds_follow_the_spread_of_their_negatives() {
        let (mut store, conductor, compute) = two_faults();
        let config = store.config.clone();
        assert!((store.negative_bound("server create", &conductor) - 0.15).abs() < 1e-9);
        assert_eq!(
            store.negative_bound("server create", &compute),
            config.negative_single_bound
        );
        // The same shape learned twice has no spread: the smallest bound.
        store.negatives[2].count = 2;
        assert_eq!(
            store.negative_bound("server create", &compute),
            config.negative_min_bound
        );
        // Trails departing at different steps are 0.5 apart at least: the largest bound.
        store.negatives[1].anchor = Some("rpc.call:scheduler".to_owned());
        assert_eq!(
            store.negative_bound("server create", &conductor),
            config.negative_max_bound
        );
    }

    #[test]
    fn a_trace_near_a_known_fault_is_classified_as_it() {
        let (store, conductor, _) = two_faults();
        let query: Vec<u32> = (1..=9).chain([12]).collect();
        let classification = store
            .classify(&trace(), &query, Some("rpc.call:conductor"))
            .expect("negatives exist");
        let Classification::Known {
            label,
            distance,
            bound,
            confidence,
        } = &classification
        else {
            panic!("{classification}");
        };
        assert_eq!(*label, conductor);
        assert!(*distance <= *bound, "{classification}");
        assert!(*confidence > 0.5, "{classification}");
        assert_eq!(classification.label(), Some(&conductor));
    }

    #[test]
    fn a_trace_beyond_every_bound_is_none_of_the_known_faults() {
        let (store, conductor, _) = two_faults();
        // The conductor's trail with a third of it changed: 0.3 from its nearest negatives,
        // beyond their bound of 0.15.
        let query: Vec<u32> = (1..=7).chain([40, 41, 42]).collect();
        let classification = store
            .classify(&trace(), &query, Some("rpc.call:conductor"))
            .expect("negatives exist");
        let Classification::Unknown {
            nearest,
            distance,
            bound,
        } = &classification
        else {
            panic!("{classification}");
        };
        assert_eq!(*nearest, conductor);
        assert!((distance - 0.3).abs() < 1e-9, "{classification}");
        assert!((bound - 0.15).abs() < 1e-9, "{classification}");
        assert_eq!(classification.label(), None);
        assert!(
            classification.to_string().starts_with("unknown fault:"),
            "{classification}"
        );
        let json = serde_json::to_value(&classification).unwrap();
        assert_eq!(json["verdict"], "unknown", "{json}");
        assert!(json.get("label").is_none(), "{json}");
        // Departed where no known fault departs: an anchor mismatch alone exceeds every bound.
        let query: Vec<u32> = (20..30).collect();
        let classification = store.classify(&trace(), &query, Some("rest:placement-api"));
        assert!(
            matches!(classification, Some(Classification::Unknown { .. })),
            "{classification:?}"
        );
        // A command without negatives is not classified at all.
        let other = Trace {
            command: "server delete".to_owned(),
            ..trace()
        };
        assert_eq!(store.classify(&other, &query, None), None);
    }

    #[test]
    fn negatives_vote_only_within_their_bound_so_a_farther_known_fault_can_win() {
        let (mut store, _, _) = two_faults();
        let killed = label("process-kill", "nova-conductor");
        store.negatives.push(negative(
            &killed,
            (1..=7).chain([30, 31, 32]).collect(),
            "rpc.call:conductor",
            1,
        ));
        // 0.2 from the frozen conductor's negatives, beyond their bound of 0.15; 0.3 from the
        // killed conductor's single negative, within its bound of 0.3.
        let query: Vec<u32> = (1..=8).chain([30, 40]).collect();
        let classification = store
            .classify(&trace(), &query, Some("rpc.call:conductor"))
            .expect("negatives exist");
        assert_eq!(classification.label(), Some(&killed), "{classification}");
    }

    #[test]
    fn a_trace_cut_short_by_its_fault_matches_the_whole_negative() {
        let (store, conductor, _) = two_faults();
        // The first half of the conductor's trail, as a live detector sees it while the fault
        // still holds the transaction: 0.5 from the whole negative, 0 from its beginning.
        let query: Vec<u32> = (1..=5).collect();
        let classification = store
            .classify(&trace(), &query, Some("rpc.call:conductor"))
            .expect("negatives exist");
        assert_eq!(classification.label(), Some(&conductor), "{classification}");
        let pattern = Pattern::new(&query);
        assert_eq!(
            negative_distance(
                &store,
                &pattern,
                &query,
                Some("rpc.call:conductor"),
                &store.negatives[0]
            ),
            0.0
        );
        // A longer trace is compared whole.
        let longer: Vec<u32> = (1..=12).collect();
        let pattern = Pattern::new(&longer);
        let distance = negative_distance(
            &store,
            &pattern,
            &longer,
            Some("rpc.call:conductor"),
            &store.negatives[0],
        );
        assert!((distance - 2.0 / 12.0).abs() < 1e-9, "{distance}");
    }

    fn arbitrary_negatives() -> impl proptest::strategy::Strategy<Value = Vec<NegativeFingerprint>>
    {
        use proptest::prelude::*;
        let labels = [
            label("process-freeze", "nova-conductor"),
            label("process-kill", "nova-conductor"),
            label("service-stop", "nova-compute"),
        ];
        let negative = (
            0..labels.len(),
            proptest::collection::vec(0u32..6, 1..12),
            prop_oneof![Just("rpc.call:conductor"), Just("rpc.cast:compute")],
            1u64..3,
        )
            .prop_map(move |(which, symbols, anchor, count)| {
                negative(&labels[which], symbols, anchor, count)
            });
        proptest::collection::vec(negative, 1..8)
    }

    proptest::proptest! {
        /// Laws of open-set classification: a learned trail is always a known fault (at distance 0
        /// from itself, within every bound); bounds stay within their limits; a known fault is
        /// within its bound, and "unknown" means no negative was within its own.
        #[test]
        fn classification_laws(
            negatives in arbitrary_negatives(),
            query in proptest::collection::vec(0u32..6, 1..12),
            anchored in proptest::bool::ANY,
        ) {
            let mut store = Store::default();
            store.negatives = negatives;
            let config = store.config.clone();
            for negative in &store.negatives {
                let bound = store.negative_bound("server create", &negative.label);
                proptest::prop_assert!(
                    (config.negative_min_bound..=config.negative_max_bound).contains(&bound)
                );
                let own = store
                    .classify(&trace(), &negative.symbols, negative.anchor.as_deref())
                    .expect("negatives exist");
                proptest::prop_assert!(own.label().is_some(), "{}", own);
            }
            let anchor = anchored.then_some("rpc.call:conductor");
            let pattern = Pattern::new(&query);
            match store.classify(&trace(), &query, anchor).expect("negatives exist") {
                Classification::Known { distance, bound, .. } => {
                    proptest::prop_assert!(distance <= bound);
                }
                Classification::Unknown { distance, bound, .. } => {
                    proptest::prop_assert!(distance > bound);
                    for negative in &store.negatives {
                        let distance = negative_distance(&store, &pattern, &query, anchor, negative);
                        let bound = store.negative_bound("server create", &negative.label);
                        proptest::prop_assert!(distance > bound);
                    }
                }
            }
        }
    }

    /// Regression (issue 6, live fingerprint alarms on deletes blamed nova-api at distance 1.0):
    /// a trace cut short by its fault is diagnosed against the whole shape it was on its way to,
    /// not against a two-step shape that happens to be fewer edits away.
    #[test]
    fn a_short_trace_is_diagnosed_against_the_shape_it_began() {
        let mut store = Store::default();
        let whole: Vec<&str> = vec![
            "nova-api:DELETE /v2.1/servers/{id}",
            "rpc.cast:compute.terminate_instance",
            "rpc.call:conductor.object_class_action_versions",
            "reply:ok",
            "rpc.call:conductor.object_action",
            "reply:ok",
            "notify:instance.delete.start",
            "notify:instance.delete.end",
        ];
        let gone = [
            "nova-api:DELETE /v2.1/servers/{id} -> 404",
            "rest:nova-api GET /v2.1/servers/{id} -> 404",
        ];
        for shape in [&whole[..], &gone[..]] {
            let ids: Vec<u32> = shape.iter().map(|symbol| store.intern(symbol)).collect();
            store.command_mut("server delete").push_variant(ids);
        }
        let steps: Vec<Step> = whole[..3]
            .iter()
            .enumerate()
            .map(|(seq, symbol)| Step {
                symbol: (*symbol).to_owned(),
                seq: seq as u64,
                ts_us: seq as i64 * 1_000,
                ..Step::default()
            })
            .collect();
        let trace = Trace {
            transaction: "req-1".to_owned(),
            command: "server delete".to_owned(),
            background: false,
            steps,
        };
        let diagnosis = store.diagnose_trace(&trace);
        assert_eq!(diagnosis.nearest_variant, Some(0), "{diagnosis}");
        assert_eq!(diagnosis.distance, Some(5.0 / 8.0), "{diagnosis}");
        let divergence = diagnosis.divergence.expect("it diverged");
        assert_eq!(divergence.expected.as_deref(), Some("reply:ok"));
    }

    /// Regression (issue 6, live fingerprint alarms on conductor faults blamed nova-api): a poll
    /// the trace has not seen yet is not where the command went wrong; the step the conductor
    /// never sent is, and the conductor holds the transaction.
    #[test]
    fn a_missing_poll_is_not_the_divergence() {
        let mut store = Store::default();
        let shape = [
            ("nova-api:POST /v2.1/servers", "nova-api", Some(0)),
            ("rest:nova-api GET /v2.1/servers/{id}", "nova-api", None),
            (
                "rpc.cast:conductor.schedule_and_build_instances",
                "nova-conductor",
                Some(100_000),
            ),
            (
                "rpc.call:scheduler.select_destinations",
                "nova-scheduler",
                Some(120_000),
            ),
        ];
        let ids: Vec<u32> = shape
            .iter()
            .map(|(symbol, _, _)| store.intern(symbol))
            .collect();
        let command = store.command_mut("server create");
        command.push_variant(ids);
        for (profile, (_, service, offset)) in command.variants[0].steps.iter_mut().zip(shape) {
            profile.service = Some(service.to_owned());
            if let Some(offset) = offset {
                profile.offset.record(offset);
            }
        }
        let step = |index: usize, ts_us: i64| Step {
            symbol: shape[index].0.to_owned(),
            service: Some(shape[index].1.to_owned()),
            seq: index as u64,
            ts_us,
            ..Step::default()
        };
        let trace = Trace {
            transaction: "req-1".to_owned(),
            command: "server create".to_owned(),
            background: false,
            steps: vec![step(0, 0), step(2, 100_000)],
        };
        let diagnosis = store.diagnose_trace(&trace);
        let divergence = diagnosis.divergence.clone().expect("it diverged");
        assert_eq!(
            divergence.expected.as_deref(),
            Some("rpc.call:scheduler.select_destinations"),
            "{diagnosis}"
        );
        assert_eq!(
            diagnosis.suspects[0].service, "nova-conductor",
            "{diagnosis}"
        );
    }

    /// A conductor killed before it took its cast: the scheduler's placement request, laid out
    /// first with the REST lane, came after the cast in every normal run; the cast is where the
    /// create first departed from them.
    #[test]
    fn the_first_divergence_is_the_earliest_step_in_causal_order_not_in_lane_layout() {
        let mut store = Store::default();
        // Lane layout: the REST lane (entry, placement), then the RPC lane.
        let shape = [
            ("nova-api:POST /v2.1/servers", 0),
            (
                "rest:placement-api GET /allocation_candidates?limit&resources",
                310_000,
            ),
            ("rpc.cast:conductor.schedule_and_build_instances", 40_000),
            ("rpc.call:scheduler.select_destinations", 90_000),
            ("reply:ok", 420_000),
        ];
        let ids: Vec<u32> = shape
            .iter()
            .map(|(symbol, _)| store.intern(symbol))
            .collect();
        let command = store.command_mut("server create");
        command.push_variant(ids);
        for (profile, (_, offset)) in command.variants[0].steps.iter_mut().zip(shape) {
            profile.offset.record(offset);
        }
        let trace = Trace {
            transaction: "req-1".to_owned(),
            command: "server create".to_owned(),
            background: false,
            steps: vec![Step {
                symbol: shape[0].0.to_owned(),
                ..Step::default()
            }],
        };
        let variant = &store.commands["server create"].variants[0];
        let alignment = store.alignment(&trace, variant);
        assert!(matches!(alignment.ops[1], EditOp::Delete { b: 1 }));
        assert_eq!(alignment.first_divergence, Some(2), "{:?}", alignment.ops);
        assert!(matches!(alignment.ops[2], EditOp::Delete { b: 2 }));
        let diagnosis = store.diagnose_trace(&trace);
        let divergence = diagnosis.divergence.expect("it diverged");
        assert_eq!(
            divergence.expected.as_deref(),
            Some("rpc.cast:conductor.schedule_and_build_instances")
        );
        // A trace that matches has no divergence.
        let whole = Trace {
            steps: shape
                .iter()
                .map(|(symbol, offset)| Step {
                    symbol: (*symbol).to_owned(),
                    ts_us: *offset as i64,
                    ..Step::default()
                })
                .collect(),
            ..trace
        };
        assert_eq!(store.alignment(&whole, variant).first_divergence, None);
    }

    /// Regression (detector accuracy with REST tracing, 2026-11-28): an answered REST call with
    /// no known caller must not make the service that answered it the one that holds the
    /// transaction.
    #[test]
    fn an_answered_rest_call_does_not_blame_the_service_that_answered() {
        let cast = step(
            "rpc.cast:conductor.schedule_and_build_instances",
            "nova-conductor",
            None,
        );
        let ports = step("rest:neutron-api GET /v2.0/ports", "neutron-api", None);
        let steps = [cast.clone(), ports.clone()];
        let holder = actor(&steps).unwrap();
        assert_eq!(holder.service, Some("nova-conductor"));
        assert_eq!(holder.why, "received");

        // With the caller known, the caller got the answer and acts next.
        let candidates = step(
            "rest:placement-api GET /allocation_candidates",
            "placement-api",
            Some("nova-scheduler"),
        );
        let steps = [cast.clone(), ports, candidates];
        let holder = actor(&steps).unwrap();
        assert_eq!(holder.service, Some("nova-scheduler"));
        assert_eq!(holder.why, "got the answer to");

        // An RPC message is held by its receiver, as before.
        assert_eq!(actor(&[cast]).unwrap().service, Some("nova-conductor"));
        // Only answered calls of unknown callers: nobody can be named.
        let orphan = step("rest:glance-api GET /v2/images/{id}", "glance-api", None);
        assert!(actor(&[orphan]).is_none());
    }

    /// Regression (issue 6, stop-glance blamed on nova-api): nova-api's `POST /servers -> 500`
    /// failed because its image lookup to glance-api failed inside it; glance-api comes first.
    #[test]
    fn the_innermost_failure_explains_the_ones_around_it() {
        let spanning = |symbol: &str, service: &str, seq: u64, start: i64, end: i64| Step {
            seq,
            ts_us: start,
            end_us: Some(end),
            error: true,
            ..step(symbol, service, None)
        };
        let post = spanning("nova-api:POST /v2.1/servers -> 500", "nova-api", 0, 0, 100);
        let lookup = spanning(
            "rest:glance-api GET /v2/images/{id} -> 502",
            "glance-api",
            1,
            10,
            20,
        );
        let mut suspicion = Suspicion::default();
        suspect_failures(&mut suspicion, &[], &[(0, &post), (1, &lookup)]);
        let ranked = suspicion.ranked();
        assert_eq!(ranked[0].service, "glance-api");
        assert_eq!(ranked[1].service, "nova-api");
        assert!(
            ranked[1].evidence[0].contains("failed inside it"),
            "{ranked:?}"
        );
        // Side by side, neither explains the other.
        let later = spanning(
            "rest:glance-api GET /v2/images/{id} -> 502",
            "glance-api",
            1,
            150,
            160,
        );
        let mut suspicion = Suspicion::default();
        suspect_failures(&mut suspicion, &[], &[(0, &post), (1, &later)]);
        let ranked = suspicion.ranked();
        assert!(
            (ranked[0].confidence - ranked[1].confidence).abs() < 1e-9,
            "{ranked:?}"
        );

        // A reply spans from its call: the scheduler's failure around placement's.
        let call = Step {
            seq: 2,
            ts_us: 0,
            link: Some("m1".to_owned()),
            ..step(
                "rpc.call:scheduler.select_destinations",
                "nova-scheduler",
                None,
            )
        };
        let reply = Step {
            seq: 4,
            ts_us: 100,
            link: Some("m1".to_owned()),
            answer: true,
            error: true,
            ..step("reply:failure:NoValidHost", "nova-scheduler", None)
        };
        let candidates = spanning(
            "rest:placement-api GET /allocation_candidates -> 502",
            "placement-api",
            3,
            10,
            20,
        );
        let steps = [call, candidates.clone(), reply.clone()];
        let mut suspicion = Suspicion::default();
        suspect_failures(&mut suspicion, &steps, &[(1, &candidates), (2, &reply)]);
        let ranked = suspicion.ranked();
        assert_eq!(ranked[0].service, "placement-api", "{ranked:?}");
    }

    /// Regression (issue 6, freeze-conductor blamed on nova-scheduler): a reply is received by
    /// the caller of its call, the service that held the transaction when it made the call, not
    /// by the callee that answered.
    #[test]
    fn a_reply_is_received_by_the_caller_of_its_call() {
        let linked = |symbol: &str, service: &str, link: &str| Step {
            link: Some(link.to_owned()),
            answer: symbol.starts_with("reply:"),
            ..step(symbol, service, None)
        };
        let cast = step(
            "rpc.cast:conductor.schedule_and_build_instances",
            "nova-conductor",
            None,
        );
        let call = linked(
            "rpc.call:scheduler.select_destinations",
            "nova-scheduler",
            "m1",
        );
        let reply = linked("reply:ok", "nova-scheduler", "m1");
        let steps = [cast.clone(), call.clone(), reply.clone()];
        let holder = actor(&steps).unwrap();
        assert_eq!(holder.service, Some("nova-conductor"));
        assert_eq!(holder.why, "got the reply to");
        assert_eq!(holder.symbol, "rpc.call:scheduler.select_destinations");
        // Unanswered, the call is held by the scheduler.
        assert_eq!(actor(&steps[..2]).unwrap().service, Some("nova-scheduler"));
        // A reply whose call is not in view is passed over.
        let unpaired = [cast, reply];
        let holder = actor(&unpaired).unwrap();
        assert_eq!(holder.service, Some("nova-conductor"));
        assert_eq!(holder.why, "received");
    }
}
