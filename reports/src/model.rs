//! The versioned result model of a campaign run: what `report.json` holds.
//!
//! The runner fills a [`Report`] while it runs and writes it as `report.json` in the run directory;
//! every renderer reads only this model. The JSON Schema generated from these types is published as
//! `reports/report.schema.json`. Compatible additions are optional fields; anything else bumps
//! [`REPORT_FORMAT_VERSION`].
//!
//! Timestamps are RFC 3339 UTC strings (exact instants copied from the injector's journal); offsets
//! inside a repetition are seconds since the start of its baseline window.

use std::collections::BTreeMap;

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Version of the `report.json` format. Readers reject other versions.
pub const REPORT_FORMAT_VERSION: u32 = 1;

fn timestamp_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "string", "format": "date-time" })
}

fn optional_timestamp_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": ["string", "null"], "format": "date-time" })
}

/// One campaign run: the root of `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// Version of this format; always [`REPORT_FORMAT_VERSION`] when written by this build.
    pub format_version: u32,
    /// Unique id of the run (also the run directory's name by default).
    pub run_id: String,
    /// When the run started.
    #[schemars(schema_with = "timestamp_schema")]
    pub started_at: Timestamp,
    /// When the run ended (all faults reverted, results written).
    #[schemars(schema_with = "timestamp_schema")]
    pub finished_at: Timestamp,
    /// How the run ended.
    pub outcome: RunOutcome,
    /// The campaign that was run.
    pub campaign: Campaign,
    /// Where it ran.
    pub environment: Environment,
    /// How alarms were scored against the injected faults.
    pub scoring: ScoringConfig,
    /// Experiments in campaign order.
    pub experiments: Vec<Experiment>,
    /// Detector scores over the whole run, one entry per detector, sorted by name.
    pub detectors: Vec<DetectorScore>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every experiment ran to its end.
    Completed,
    /// An abort guardrail was breached; the runner reverted everything and stopped.
    Aborted,
    /// Ctrl-C or SIGTERM; the runner reverted everything and wrote what it had.
    Interrupted,
}

/// The campaign file that was run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Campaign {
    /// Campaign name from the file.
    pub name: String,
    /// Path of the campaign file as given on the command line.
    pub file: String,
    /// Seed of the random choices (targets, workload order), so a run can be repeated.
    pub seed: u64,
    /// Campaign description, when the file has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// The software and the cloud the run used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Version of the `butterfly` binary that ran the campaign.
    pub butterfly_version: String,
    /// The cloud under test.
    pub testbed: Testbed,
    /// Hosts of the inventory with the services each runs.
    pub hosts: Vec<Host>,
}

/// The cloud under test. Never holds credentials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Testbed {
    /// `local` (the namespaced multi-host testbed) or `devstack`.
    pub kind: String,
    /// The cloud name in `clouds.yaml`.
    pub cloud: String,
    /// Keystone endpoint the workload authenticated against.
    pub auth_url: String,
    /// OpenStack release, when discovered (e.g. `2025.2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openstack_release: Option<String>,
}

/// One host of the inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Inventory name.
    pub name: String,
    /// Address the injector reached it at.
    pub address: String,
    /// Services on the host (inventory names, e.g. `nova-conductor`).
    pub services: Vec<String>,
}

/// Parameters of detector scoring (see `docs/reports.md`, "Scoring").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    /// Seconds after a fault's revert during which its alarms still count as true positives
    /// (effects outlive the fault: retries, queued messages, timeouts firing late).
    pub grace_s: f64,
}

/// One experiment of the campaign and its repetitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Experiment name from the campaign (unique in the campaign).
    pub name: String,
    /// Experiment description, when the campaign has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Repetitions in the order they ran.
    pub repetitions: Vec<Repetition>,
}

/// Commands of a window pooled over an experiment's repetitions: how many ran, how many succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    /// Commands that succeeded.
    pub successes: u64,
    /// Commands issued.
    pub count: u64,
}

impl Tally {
    /// `successes / count`, or `None` when no command ran.
    pub fn ratio(self) -> Option<f64> {
        (self.count > 0).then(|| self.successes as f64 / self.count as f64)
    }
}

impl Experiment {
    /// The commands of `window` pooled over every repetition.
    pub fn tally(&self, window: WindowKind) -> Tally {
        self.repetitions
            .iter()
            .flat_map(|r| &r.workload)
            .filter(|w| w.window == window)
            .fold(Tally::default(), |t, w| Tally {
                successes: t.successes + w.total.successes,
                count: t.count + w.total.count,
            })
    }
}

/// One repetition of an experiment: baseline, fault, recovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Repetition {
    /// Zero-based repetition index.
    pub index: u32,
    /// The three windows of the repetition.
    pub windows: Windows,
    /// Faults injected in this repetition (the ground truth for scoring), in injection order.
    pub faults: Vec<Fault>,
    /// Workload statistics per window.
    pub workload: Vec<WindowStats>,
    /// Workload time series over the whole repetition, for plots.
    pub timeline: Timeline,
    /// Hypotheses with their verdicts.
    pub hypotheses: Vec<HypothesisResult>,
    /// Time from revert until the workload was back to its baseline success ratio.
    pub recovery: Recovery,
    /// Alarms raised by every detector during the repetition, in time order.
    pub alarms: Vec<Alarm>,
    /// Failing transactions next to their nearest normal fingerprint (may be empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failing_transactions: Vec<TransactionDivergence>,
    /// Why the cloud was not back in its steady state when this repetition's baseline began,
    /// after the runner had waited for it: the baseline may hold the previous fault's aftermath.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsteady: Option<String>,
    /// What the remediation runbooks did (or, in `suggest` mode, would have done) on this
    /// repetition's alarms, in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remediation: Vec<RemediationStep>,
    /// The detect → remediate → recover loop, measured from the fault (see
    /// [`crate::stats::loop_times`]).
    #[serde(default, skip_serializing_if = "LoopTimes::is_unmeasured")]
    pub loop_times: LoopTimes,
}

/// Times of the detect → remediate → recover loop of one repetition, in seconds; each is absent
/// when what ends it did not happen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoopTimes {
    /// From the (first) injection to the first alarm after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_detect_s: Option<f64>,
    /// From the first alarm to the end of the first remediation action that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_remediate_s: Option<f64>,
    /// From the injection until the workload is back at its baseline success ratio and every
    /// stretch after it holds that ratio (the same rule as [`Recovery`], measured from the fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_recover_s: Option<f64>,
    /// Seconds of timeline buckets, from the injection on, whose success ratio is below the
    /// baseline's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downtime_s: Option<f64>,
}

impl LoopTimes {
    /// Nothing was measured (no fault, or a report from before these times).
    pub fn is_unmeasured(&self) -> bool {
        *self == LoopTimes::default()
    }
}

/// One runbook answering one alarm streak on one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemediationStep {
    /// The runbook.
    pub runbook: String,
    /// `suggest` (nothing acted on) or `auto`.
    pub mode: String,
    /// The detector of the alarm that started the streak.
    pub detector: String,
    /// The suspect's host the runbook acted on.
    pub host: String,
    /// The suspect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The first alarm of the streak.
    #[schemars(schema_with = "timestamp_schema")]
    pub alarm_at: Timestamp,
    /// When the runner decided (after the hold, in `auto`).
    #[schemars(schema_with = "timestamp_schema")]
    pub decided_at: Timestamp,
    /// Why the guardrails refused to act, when they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Evidence collected, in the runbook's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceItem>,
    /// The actions, run (`auto`) or only planned (`suggest`, or refused).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionOutcome>,
}

/// One piece of evidence a runbook collected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceItem {
    /// What (`unit-journal`, or a command's program).
    pub name: String,
    /// Where it ran.
    pub host: String,
    /// Its output, bounded by the injector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Why it could not be collected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One remediation action, run or planned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionOutcome {
    /// Its journal id.
    pub id: String,
    /// The catalog action (`thaw`, `command`, …).
    pub action: String,
    /// The host.
    pub host: String,
    /// The service acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The script sent (or that would be sent).
    pub command: String,
    /// Faults in effect whose effect it undoes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restores: Vec<String>,
    /// When it was journaled and ran; absent when it was only planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_timestamp_schema")]
    pub started_at: Option<Timestamp>,
    /// When it was done (its check held, or it failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_timestamp_schema")]
    pub done_at: Option<Timestamp>,
    /// What it observed (`removed 3 files`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The windows of a repetition. They are contiguous: baseline, then fault, then recovery.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Windows {
    /// Workload running, no fault.
    pub baseline: Window,
    /// From the start of the fault phase until the revert.
    pub fault: Window,
    /// From the revert until the steady-state check.
    pub recovery: Window,
}

impl Windows {
    /// The window of the given kind.
    pub fn get(&self, kind: WindowKind) -> Window {
        match kind {
            WindowKind::Baseline => self.baseline,
            WindowKind::Fault => self.fault,
            WindowKind::Recovery => self.recovery,
        }
    }
}

/// A half-open interval `[start, end)` of wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Start (inclusive).
    #[schemars(schema_with = "timestamp_schema")]
    pub start: Timestamp,
    /// End (exclusive).
    #[schemars(schema_with = "timestamp_schema")]
    pub end: Timestamp,
}

impl Window {
    /// Length in seconds (zero when the end is not after the start).
    pub fn seconds(&self) -> f64 {
        seconds_between(self.start, self.end).max(0.0)
    }
}

/// Seconds from `from` to `to` (negative when `to` is earlier).
pub fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_microsecond() - from.as_microsecond()) as f64 / 1e6
}

/// Which window of a repetition: the detection engine's phases (`fingerprint::engine`), which
/// reports carry unchanged.
pub use fingerprint::engine::WindowKind;

/// One injected fault with its exact timings from the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    /// Journal id of the fault.
    pub id: String,
    /// Fault kind from the catalog (e.g. `process-kill`, `process-freeze`, `network-delay`).
    pub kind: String,
    /// Fault parameters as given in the campaign, rendered as strings (e.g. `signal: KILL`).
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
    /// Where the fault was applied.
    pub target: FaultTarget,
    /// What triggered the injection.
    pub trigger: Trigger,
    /// When the fault was applied (journal).
    #[schemars(schema_with = "timestamp_schema")]
    pub injected_at: Timestamp,
    /// When the injector verified the fault was in effect, if it could.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_timestamp_schema")]
    pub verified_at: Option<Timestamp>,
    /// When the fault was reverted. Absent only if the run was cut short before the revert
    /// was confirmed (then `butterfly recover` reverts it from the journal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_timestamp_schema")]
    pub reverted_at: Option<Timestamp>,
    /// What the revert found (journal): e.g. `healed by supervisor after 0.4 s` for a killed
    /// container that its supervisor restarted, `stayed down until the revert` for a stop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
}

/// The component a fault was applied to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultTarget {
    /// Service name (inventory), when the fault targets a service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Hosts the fault was applied on.
    pub hosts: Vec<String>,
}

/// What made the runner inject a fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Trigger {
    /// A fixed offset after the start of the fault window.
    Offset {
        /// Seconds after the fault window started.
        after_s: f64,
    },
    /// The tracer saw a named RPC method or REST call.
    ExecutionPoint {
        /// RPC method (`scheduler.select_destinations`) or REST call (`POST /servers`).
        point: String,
        /// Host the call had to be seen on, when constrained.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        host: Option<String>,
    },
}

/// Workload statistics of one window. A command belongs to the window in which it started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowStats {
    /// Which window.
    pub window: WindowKind,
    /// All commands together.
    pub total: CommandStats,
    /// Per user command (e.g. `server create`), sorted by command.
    pub commands: Vec<CommandStats>,
}

/// Outcome and latency statistics of a set of workload commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandStats {
    /// The user command, or `*` for all commands.
    pub command: String,
    /// Commands issued.
    pub count: u64,
    /// Commands that succeeded.
    pub successes: u64,
    /// `successes / count`; absent when `count` is zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_ratio: Option<f64>,
    /// Latency percentiles of all commands in milliseconds; absent when `count` is zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<Percentiles>,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Per-bucket workload series of a repetition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Timeline {
    /// Width of one bucket in seconds.
    pub bucket_s: f64,
    /// Buckets in time order; bucket `i` covers `[i * bucket_s, (i + 1) * bucket_s)` seconds after
    /// the baseline start. Buckets in which no command started may be left out.
    pub buckets: Vec<Bucket>,
}

/// Commands that started in one time bucket, with their eventual outcome and latency.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bucket {
    /// Bucket index (offset = `index * bucket_s` seconds after the baseline start).
    pub index: u32,
    /// Commands that succeeded.
    pub ok: u32,
    /// Commands that failed.
    pub failed: u32,
    /// Median latency of the bucket's commands in milliseconds, when there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency of the bucket's commands in milliseconds, when there were any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p95_ms: Option<f64>,
}

impl Bucket {
    /// `ok / (ok + failed)`, or `None` for an empty bucket.
    pub fn success_ratio(&self) -> Option<f64> {
        let total = self.ok + self.failed;
        (total > 0).then(|| f64::from(self.ok) / f64::from(total))
    }
}

/// A hypothesis of the campaign with its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HypothesisResult {
    /// Hypothesis name from the campaign (unique in the experiment).
    pub name: String,
    /// What was measured: `success_ratio`, `latency_p50`, `latency_p95`, `latency_p99` or
    /// `recovery_time`.
    pub metric: String,
    /// The user command it is about, when it is not about the whole workload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The window the metric was measured in.
    pub window: WindowKind,
    /// How the observed value must compare to the bound.
    pub comparison: Comparison,
    /// The bound from the campaign, in `unit`.
    pub bound: f64,
    /// Unit of `bound` and `observed` (`ratio`, `ms`, `s`).
    pub unit: String,
    /// The measured value, absent when it could not be measured (e.g. no commands completed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
    /// One sentence a person can act on: why it passed or failed.
    pub reason: String,
}

/// How an observed value must compare to its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    /// `observed >= bound`.
    AtLeast,
    /// `observed <= bound`.
    AtMost,
}

impl Comparison {
    /// The operator as shown to people.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::AtLeast => "≥",
            Comparison::AtMost => "≤",
        }
    }
}

/// The verdict of a hypothesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The hypothesis held.
    Pass,
    /// The hypothesis was violated, or could not be measured.
    Fail,
}

/// Recovery after the revert.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recovery {
    /// Success ratio of the baseline window that the workload had to get back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_success_ratio: Option<f64>,
    /// Seconds from the (last) revert until the success ratio was back to baseline; absent when it
    /// did not recover before the recovery window ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_s: Option<f64>,
}

/// Alarms are the `fingerprint` crate's format (`fingerprint::alarm`, JSON Lines version 1): every
/// detector, built-in or external, writes the same shape, and reports carry it unchanged.
pub use fingerprint::alarm::{Alarm, Suspect};

/// Failing transactions as the detection engine aligns them (`fingerprint::alarm`): reports carry
/// them unchanged.
pub use fingerprint::alarm::{AlignOp, Column, TransactionDivergence};

impl From<fingerprint::alarm::AlignmentMismatch> for Error {
    fn from(mismatch: fingerprint::alarm::AlignmentMismatch) -> Error {
        Error::InvalidReport {
            location: format!("failing transaction {}", mismatch.transaction),
            message: fingerprint::alarm::AlignmentMismatch::REASON.to_owned(),
        }
    }
}

/// Scores of one detector against the ground truth (see `docs/reports.md`, "Scoring").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectorScore {
    /// Detector name.
    pub detector: String,
    /// Alarms it raised inside repetitions.
    pub alarms: u64,
    /// Alarms attributed to an injected fault.
    pub true_positives: u64,
    /// Alarms raised in fault-free time.
    pub false_positives: u64,
    /// Faults injected in the run (same for every detector).
    pub faults: u64,
    /// Faults with at least one attributed alarm.
    pub detected_faults: u64,
    /// `true_positives / alarms`; absent when the detector raised no alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// `detected_faults / faults`; absent when no fault was injected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recall: Option<f64>,
    /// Harmonic mean of precision and recall (0 when either is 0 or absent with alarms or faults).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub f1: Option<f64>,
    /// Mean seconds from injection to the first attributed alarm, over detected faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_time_to_detect_s: Option<f64>,
    /// Longest time to detect over detected faults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_time_to_detect_s: Option<f64>,
    /// Share of detected faults whose first attributed alarm names the faulty component first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localization_top1: Option<f64>,
    /// Share of detected faults whose first attributed alarm names it among the first three.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localization_top3: Option<f64>,
    /// Hours of fault-free time observed (baseline, and recovery after the grace period).
    pub fault_free_hours: f64,
    /// `false_positives / fault_free_hours`; absent when there was no fault-free time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub false_alarms_per_hour: Option<f64>,
}

impl Report {
    /// Parses and checks a `report.json` document.
    pub fn from_json(text: &str) -> Result<Report, Error> {
        let report: Report = serde_json::from_str(text).map_err(|source| Error::Json {
            location: format!("line {}, column {}", source.line(), source.column()),
            source,
        })?;
        report.check()?;
        Ok(report)
    }

    /// Serializes as pretty JSON with a trailing newline (the `report.json` layout).
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a report always serializes");
        text.push('\n');
        text
    }

    /// Checks what the types cannot: the version, unique names, window order, alignments.
    pub fn check(&self) -> Result<(), Error> {
        if self.format_version != REPORT_FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: self.format_version,
                supported: REPORT_FORMAT_VERSION,
            });
        }
        let invalid = |location: String, message: &str| Error::InvalidReport {
            location,
            message: message.to_owned(),
        };
        let mut names = std::collections::BTreeSet::new();
        for experiment in &self.experiments {
            if !names.insert(experiment.name.as_str()) {
                return Err(invalid(
                    format!("experiment {}", experiment.name),
                    "duplicate experiment name",
                ));
            }
            for repetition in &experiment.repetitions {
                let location = format!(
                    "experiment {} repetition {}",
                    experiment.name, repetition.index
                );
                let w = &repetition.windows;
                if !(w.baseline.start <= w.baseline.end
                    && w.baseline.end <= w.fault.start
                    && w.fault.start <= w.fault.end
                    && w.fault.end <= w.recovery.start
                    && w.recovery.start <= w.recovery.end)
                {
                    return Err(invalid(
                        location,
                        "windows are not in baseline, fault, recovery order",
                    ));
                }
                if repetition.timeline.bucket_s.is_nan() || repetition.timeline.bucket_s <= 0.0 {
                    return Err(invalid(location, "timeline bucket_s must be positive"));
                }
                for fault in &repetition.faults {
                    if fault.reverted_at.is_some_and(|r| r < fault.injected_at) {
                        return Err(invalid(
                            format!("{location} fault {}", fault.id),
                            "reverted_at is before injected_at",
                        ));
                    }
                }
                for divergence in &repetition.failing_transactions {
                    divergence.columns()?;
                    if divergence.divergence_index > divergence.ops.len() {
                        return Err(invalid(location, "divergence_index is past the alignment"));
                    }
                }
            }
        }
        Ok(())
    }

    /// All hypotheses of the run with their experiment and repetition.
    pub fn hypotheses(
        &self,
    ) -> impl Iterator<Item = (&Experiment, &Repetition, &HypothesisResult)> {
        self.experiments.iter().flat_map(|e| {
            e.repetitions
                .iter()
                .flat_map(move |r| r.hypotheses.iter().map(move |h| (e, r, h)))
        })
    }

    /// True when every hypothesis held and the run completed.
    pub fn passed(&self) -> bool {
        self.outcome == RunOutcome::Completed
            && self
                .hypotheses()
                .all(|(_, _, h)| h.verdict == Verdict::Pass)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn divergence(ops: &[AlignOp], failing: &[&str], normal: &[&str]) -> TransactionDivergence {
        TransactionDivergence {
            transaction: "req-1".into(),
            command: "server create".into(),
            failing: failing.iter().map(|s| (*s).to_owned()).collect(),
            normal: normal.iter().map(|s| (*s).to_owned()).collect(),
            ops: ops.to_vec(),
            divergence_index: 1,
        }
    }

    #[test]
    fn alignment_columns_pair_the_symbols() {
        use AlignOp::*;
        let d = divergence(
            &[Match, Substitute, Delete, Insert],
            &["a", "x", "y"],
            &["a", "b", "c"],
        );
        assert_eq!(
            d.columns().unwrap(),
            vec![
                (Match, Some("a"), Some("a")),
                (Substitute, Some("b"), Some("x")),
                (Delete, Some("c"), None),
                (Insert, None, Some("y")),
            ]
        );
    }

    #[test]
    fn alignments_that_do_not_fit_the_symbols_are_rejected() {
        use AlignOp::*;
        for d in [
            divergence(&[Match], &["a", "b"], &["a"]),
            divergence(&[Match, Delete], &["a"], &["a"]),
            divergence(&[Insert], &[], &[]),
        ] {
            let error = d.columns().unwrap_err().to_string();
            assert!(
                error.contains("req-1") && error.contains("alignment"),
                "{error}"
            );
        }
    }

    #[test]
    fn windows_out_of_order_are_rejected() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/run/report.json"
        ))
        .unwrap();
        let mut report = Report::from_json(&text).unwrap();
        let windows = &mut report.experiments[0].repetitions[0].windows;
        std::mem::swap(&mut windows.baseline, &mut windows.recovery);
        let error = report.check().unwrap_err().to_string();
        assert!(
            error.contains("kill-nova-conductor repetition 0") && error.contains("order"),
            "{error}"
        );
    }
}
