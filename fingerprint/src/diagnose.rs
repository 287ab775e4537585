//! Diagnosis of a finished transaction: anomaly (distance above the learned threshold, an error
//! symbol, or a step later than its learned bound), localization (alignment with the nearest
//! normal variant, first divergence, ranked suspects with evidence) and classification (k nearest
//! negative fingerprints).

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use tracer::event::Transaction;

use crate::alarm::{Alarm, Suspect};
use crate::distance::{EditOp, Pattern, align, normalized};
use crate::store::{FaultLabel, StepProfile, Store, Trace, Variant};
use crate::symbol::Step;
use crate::timing::human_us;

/// Weight of the service that received the last message before a gap or a missing step: it is
/// the one expected to act next.
const WEIGHT_EXPECTED_ACTOR: f64 = 0.6;
/// Weight of the service that should have sent the missing or late step.
const WEIGHT_EXPECTED_SENDER: f64 = 0.25;
/// Weight of the service that should have handled the missing or late step.
const WEIGHT_EXPECTED_HANDLER: f64 = 0.15;
/// Weight of a service that returned a failure.
const WEIGHT_FAILURE: f64 = 1.0;
/// Weight of a service the normal variant expects after the divergence that never appeared.
const WEIGHT_SILENT: f64 = 0.1;
/// Distance added between a trace and a negative fingerprint that departed from normal behaviour
/// at a different step.
const ANCHOR_MISMATCH_PENALTY: f64 = 0.5;

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

/// A suspected component with the evidence for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedSuspect {
    /// Service name.
    pub service: String,
    /// Host, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Share of the total suspicion, `0.0..=1.0`.
    pub confidence: f64,
    /// Why it is suspected.
    pub evidence: Vec<String>,
}

/// The likely fault, from the nearest negative fingerprints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// The fault label that won the vote.
    pub label: FaultLabel,
    /// Confidence in `0.0..=1.0`.
    pub confidence: f64,
    /// Distance to the nearest negative with that label (normalized, plus anchor penalty).
    pub distance: f64,
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
    /// Steps that report a failure.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
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

impl Store {
    /// Diagnoses one transaction.
    pub fn diagnose(&self, transaction: &Transaction) -> Diagnosis {
        self.diagnose_trace(&self.trace(transaction))
    }

    /// Diagnoses an already symbolized trace.
    pub fn diagnose_trace(&self, trace: &Trace) -> Diagnosis {
        let ids = self.lookup(&trace.steps);
        let mut suspicion = Suspicion::default();
        let errors: Vec<(usize, &Step)> = trace
            .steps
            .iter()
            .enumerate()
            .filter(|(_, step)| step.error)
            .collect();
        for &(position, step) in &errors {
            suspicion.add(
                step.service.as_deref(),
                step.host.as_deref(),
                WEIGHT_FAILURE,
                format!("returned `{}` at step {position}", step.symbol),
            );
        }
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
            errors: errors.iter().map(|(_, step)| step.symbol.clone()).collect(),
            anchor: None,
            suspects: Vec::new(),
            classification: None,
            detected_at_us: errors
                .first()
                .map(|(_, step)| step.ts_us)
                .or_else(|| trace.steps.last().map(|step| step.ts_us))
                .unwrap_or(0),
        };
        let nearest = self.commands.get(&trace.command).and_then(|command| {
            let threshold = command.threshold(&self.config);
            let found = command.nearest(&ids)?;
            Some((command, threshold, found))
        });
        if let Some((command, threshold, (index, distance))) = nearest {
            let variant = &command.variants[index];
            let distance = normalized(distance, ids.len(), variant.symbols.len());
            diagnosis.distance = Some(distance);
            diagnosis.threshold = Some(threshold);
            diagnosis.nearest_variant = Some(index);
            diagnosis.score = (0.5 * distance / threshold).min(1.0);
            let ops = align(&ids, &variant.symbols);
            diagnosis.late = self.late_steps(trace, variant, &ops);
            diagnosis.divergence = divergence(self, trace, variant, &ops);
            let sequence_anomaly = distance > threshold;
            if let Some(late) = diagnosis.late.first() {
                let ratio = late.gap_us as f64 / late.bound_us.max(1) as f64;
                diagnosis.score = diagnosis.score.max((0.5 * ratio).min(1.0));
                diagnosis.anchor = Some(late.symbol.clone());
                diagnosis.detected_at_us = trace.steps[late.after_step]
                    .ts_us
                    .saturating_add(late.bound_us as i64);
                suspect_late(&mut suspicion, trace, late);
            }
            if sequence_anomaly && let Some(divergence) = &diagnosis.divergence {
                if diagnosis.anchor.is_none() {
                    diagnosis.anchor = divergence
                        .expected
                        .clone()
                        .or_else(|| divergence.observed.clone());
                }
                suspect_divergence(&mut suspicion, trace, variant, &ops, divergence);
            }
            diagnosis.status = if sequence_anomaly || !diagnosis.late.is_empty() {
                Status::Anomalous
            } else {
                Status::Normal
            };
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
            diagnosis.classification = self.classify(trace, &ids, diagnosis.anchor.as_deref());
        }
        diagnosis
    }

    fn late_steps(&self, trace: &Trace, variant: &Variant, ops: &[EditOp]) -> Vec<LateStep> {
        let mut late = Vec::new();
        let mut previous: Option<(usize, usize)> = None;
        for op in ops {
            let EditOp::Match { a, b } = *op else {
                continue;
            };
            if let Some((previous_a, previous_b)) = previous
                && previous_b + 1 == b
            {
                let latency = &variant.steps[b].latency;
                let gap = trace.steps[a]
                    .ts_us
                    .saturating_sub(trace.steps[previous_a].ts_us);
                let gap = u64::try_from(gap).unwrap_or(0);
                if let Some(bound) = latency.bound(&self.config.timing)
                    && gap > bound
                {
                    late.push(LateStep {
                        trace_step: a,
                        after_step: previous_a,
                        symbol: trace.steps[a].symbol.clone(),
                        after: trace.steps[previous_a].symbol.clone(),
                        gap_us: gap,
                        bound_us: bound,
                        p50_us: latency.p50().unwrap_or(0),
                        p99_us: latency.p99().unwrap_or(0),
                    });
                }
            }
            previous = Some((a, b));
        }
        late
    }

    fn classify(&self, trace: &Trace, ids: &[u32], anchor: Option<&str>) -> Option<Classification> {
        let pattern = Pattern::new(ids);
        let mut neighbours: Vec<(f64, &FaultLabel)> = self
            .negatives
            .iter()
            .filter(|negative| negative.command == trace.command)
            .map(|negative| {
                let raw = pattern.distance(&negative.symbols);
                let mut distance = normalized(raw, ids.len(), negative.symbols.len());
                if negative.anchor.as_deref() != anchor {
                    distance += ANCHOR_MISMATCH_PENALTY;
                }
                (distance, &negative.label)
            })
            .collect();
        if neighbours.is_empty() {
            return None;
        }
        neighbours.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1)));
        neighbours.truncate(self.config.knn.max(1));
        let mut votes: BTreeMap<&FaultLabel, (f64, f64)> = BTreeMap::new();
        for &(distance, label) in &neighbours {
            let vote = votes.entry(label).or_insert((0.0, f64::INFINITY));
            vote.0 += 1.0 / (distance + 0.05);
            vote.1 = vote.1.min(distance);
        }
        let total: f64 = votes.values().map(|vote| vote.0).sum();
        let (label, (weight, distance)) = votes
            .into_iter()
            .max_by(|a, b| a.1.0.total_cmp(&b.1.0).then_with(|| b.0.cmp(a.0)))?;
        Some(Classification {
            label: label.clone(),
            confidence: (weight / total) * (1.0 - distance.min(1.0)),
            distance,
        })
    }
}

fn divergence(
    store: &Store,
    trace: &Trace,
    variant: &Variant,
    ops: &[EditOp],
) -> Option<Divergence> {
    let mut after = None;
    for op in ops {
        let symbol_of = |b: usize| store.symbol(variant.symbols[b]).map(str::to_owned);
        let (kind, variant_step, trace_step) = match *op {
            EditOp::Match { a, .. } => {
                after = Some(trace.steps[a].symbol.clone());
                continue;
            }
            EditOp::Delete { b } => (DivergenceKind::Missing, Some(b), None),
            EditOp::Substitute { a, b } => (DivergenceKind::Substituted, Some(b), Some(a)),
            EditOp::Insert { a } => (DivergenceKind::Unexpected, None, Some(a)),
        };
        return Some(Divergence {
            kind,
            variant_step,
            trace_step,
            expected: variant_step.and_then(symbol_of),
            observed: trace_step.map(|a| trace.steps[a].symbol.clone()),
            after,
        });
    }
    None
}

/// The trace step aligned just before the op at `position` in `ops`.
fn last_matched_before(ops: &[EditOp], position: usize) -> Option<usize> {
    ops[..position].iter().rev().find_map(|op| match *op {
        EditOp::Match { a, .. } => Some(a),
        _ => None,
    })
}

fn suspect_late(suspicion: &mut Suspicion, trace: &Trace, late: &LateStep) {
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
    if let Some(holder) = actor(&trace.steps[..=late.after_step]) {
        suspicion.add(
            holder.service,
            holder.host,
            WEIGHT_EXPECTED_ACTOR,
            format!(
                "{} `{}` and was slow to act: {timing}",
                holder.why, holder.symbol
            ),
        );
    }
    suspicion.add(
        step.caller.as_deref(),
        None,
        WEIGHT_EXPECTED_SENDER,
        format!("sends `{}`, which was late", step.symbol),
    );
    suspicion.add(
        step.service.as_deref(),
        step.host.as_deref(),
        WEIGHT_EXPECTED_HANDLER,
        format!("handles `{}`, which was late", step.symbol),
    );
}

/// The service that should act after the steps seen so far, and why.
pub(crate) struct Actor<'a> {
    pub(crate) service: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
    pub(crate) why: &'static str,
    pub(crate) symbol: &'a str,
}

/// Who holds the transaction after `steps`: the receiver of the last message, except after a REST
/// exchange. A REST step is recorded once the service has answered, so the one to act next is its
/// caller, not the service that answered. When the caller is unknown (the client's `User-Agent`
/// names no service), the answered call says nothing about who is stuck, and the receiver of the
/// message before it still holds the transaction. Blaming the answering service instead made the
/// timeout detector (and diagnosis, for late and missing steps) name neutron-api, whose quick `GET /v2.0/ports` often comes last, for every
/// fault of the control plane once REST calls were traced.
pub(crate) fn actor(steps: &[Step]) -> Option<Actor<'_>> {
    for step in steps.iter().rev() {
        if !step.symbol.starts_with("rest:") {
            return Some(Actor {
                service: step.service.as_deref(),
                host: step.host.as_deref(),
                why: "received",
                symbol: &step.symbol,
            });
        }
        if let Some(caller) = step.caller.as_deref() {
            return Some(Actor {
                service: Some(caller),
                host: None,
                why: "got the answer to",
                symbol: &step.symbol,
            });
        }
    }
    None
}

fn suspect_divergence(
    suspicion: &mut Suspicion,
    trace: &Trace,
    variant: &Variant,
    ops: &[EditOp],
    divergence: &Divergence,
) {
    let position = ops
        .iter()
        .position(|op| !matches!(op, EditOp::Match { .. }))
        .unwrap_or(ops.len());
    let before_index = last_matched_before(ops, position);
    let before = before_index.map(|a| &trace.steps[a]);
    let expected = divergence.variant_step.map(|b| &variant.steps[b]);
    let expected_symbol = divergence.expected.as_deref().unwrap_or("?");
    match divergence.kind {
        DivergenceKind::Missing => {
            if let Some(holder) = before_index.and_then(|a| actor(&trace.steps[..=a])) {
                suspicion.add(
                    holder.service,
                    holder.host,
                    WEIGHT_EXPECTED_ACTOR,
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
                    WEIGHT_EXPECTED_ACTOR,
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
                    WEIGHT_EXPECTED_HANDLER,
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
            WEIGHT_SILENT,
            "expected to act after the divergence, never seen in this transaction".to_owned(),
        );
    }
}

fn suspect_expected(suspicion: &mut Suspicion, expected: &StepProfile, symbol: &str) {
    suspicion.add(
        expected.caller.as_deref(),
        None,
        WEIGHT_EXPECTED_SENDER,
        format!("should have sent `{symbol}`"),
    );
    suspicion.add(
        expected.service.as_deref(),
        expected.host.as_deref(),
        WEIGHT_EXPECTED_HANDLER,
        format!("should have handled `{symbol}`"),
    );
}

/// Accumulates weighted suspicion per service.
#[derive(Debug, Default)]
pub(crate) struct Suspicion {
    entries: Vec<(String, Option<String>, f64, Vec<String>)>,
}

impl Suspicion {
    pub(crate) fn add(
        &mut self,
        service: Option<&str>,
        host: Option<&str>,
        weight: f64,
        evidence: String,
    ) {
        let Some(service) = service else {
            return;
        };
        match self.entries.iter_mut().find(|entry| entry.0 == service) {
            Some(entry) => {
                entry.2 += weight;
                if entry.1.is_none() {
                    entry.1 = host.map(str::to_owned);
                }
                entry.3.push(evidence);
            }
            None => self.entries.push((
                service.to_owned(),
                host.map(str::to_owned),
                weight,
                vec![evidence],
            )),
        }
    }

    pub(crate) fn ranked(self) -> Vec<RankedSuspect> {
        let total: f64 = self.entries.iter().map(|entry| entry.2).sum();
        let mut ranked: Vec<RankedSuspect> = self
            .entries
            .into_iter()
            .map(|(service, host, weight, evidence)| RankedSuspect {
                service,
                host,
                confidence: if total > 0.0 { weight / total } else { 0.0 },
                evidence,
            })
            .collect();
        // Stable: equal confidence keeps the order in which evidence was found.
        ranked.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        ranked
    }
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
        if let Some(classification) = &self.classification {
            evidence.push(format!(
                "nearest known fault: {} (confidence {:.2})",
                label_text(&classification.label),
                classification.confidence
            ));
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
                .map(|classification| classification.label.fault_kind.clone()),
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
        if let Some(divergence) = &self.divergence {
            writeln!(f, "  divergence: {divergence}")?;
        }
        for late in &self.late {
            writeln!(f, "  {late}")?;
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
            writeln!(
                f,
                "  nearest known fault: {} (confidence {:.2}, distance {:.3})",
                label_text(&classification.label),
                classification.confidence,
                classification.distance
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            link: None,
        }
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
}
