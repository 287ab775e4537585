//! The alarm format: what every detector (built-in or external) emits, one JSON object per line.
//!
//! External detectors write the same shape, so the runner can score all detectors alike. Add fields
//! only as optional, and bump [`ALARM_FORMAT_VERSION`] on incompatible changes.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of the alarm JSON Lines format.
pub const ALARM_FORMAT_VERSION: u32 = 1;

/// One alarm raised by a detector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alarm {
    /// When the alarm was raised, microseconds since the Unix epoch (UTC).
    pub ts_us: i64,
    /// The detector that raised it (`fingerprint`, `timeout`, or an external detector's name).
    pub detector: String,
    /// Suspected components, most likely first. The first one is the top-1 localization.
    pub suspects: Vec<Suspect>,
    /// Anomaly score in `0.0..=1.0` (1 = certainly anomalous).
    pub score: f64,
    /// The transaction the alarm is about, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction: Option<String>,
    /// The likely fault kind, when the detector classifies (e.g. `process-freeze`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault_kind: Option<String>,
    /// Human-readable evidence: why the detector raised this alarm.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

impl Alarm {
    /// The alarm time as a timestamp (clamped into the representable range).
    pub fn timestamp(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_microsecond(self.ts_us).unwrap_or(if self.ts_us < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        })
    }
}

/// A suspected component: a service, optionally on a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Suspect {
    /// Service name as in the campaign inventory (e.g. `nova-conductor`).
    pub service: String,
    /// Host name as in the campaign inventory, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Relative confidence in `0.0..=1.0`.
    pub confidence: f64,
}

/// A failing transaction's symbol sequence aligned with its nearest normal fingerprint.
///
/// The `fingerprint` crate computes the alignment (`fingerprint::distance::EditOp`, same meaning); `ops` turns `normal` into `failing`, one op per
/// column: `match` and `substitute` consume one symbol of each, `insert` one of `failing` only,
/// `delete` one of `normal` only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransactionDivergence {
    /// Global request id of the failing transaction (`req-…`).
    pub transaction: String,
    /// The user command it belongs to.
    pub command: String,
    /// Symbols of the failing transaction's execution graph.
    pub failing: Vec<String>,
    /// Symbols of the nearest normal fingerprint.
    pub normal: Vec<String>,
    /// Alignment of the two sequences.
    pub ops: Vec<AlignOp>,
    /// Index into `ops` of the first departure in causal order (the earliest differing step in
    /// time, which the lane layout of `ops` may list after others).
    pub divergence_index: usize,
}

/// One column of an alignment: the op, the normal symbol and the failing symbol (absent where
/// that side has none).
pub type Column<'a> = (AlignOp, Option<&'a str>, Option<&'a str>);

/// One op of an alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlignOp {
    /// Same symbol in both.
    Match,
    /// Different symbols.
    Substitute,
    /// A symbol only the failing transaction has.
    Insert,
    /// A symbol only the normal fingerprint has.
    Delete,
}

impl TransactionDivergence {
    /// Pairs of (normal, failing) symbols per column, `None` where a side has no symbol.
    ///
    /// Fails when `ops` does not consume both sequences exactly.
    pub fn columns(&self) -> Result<Vec<Column<'_>>, AlignmentMismatch> {
        let mut normal = self.normal.iter();
        let mut failing = self.failing.iter();
        let mut columns = Vec::with_capacity(self.ops.len());
        let mismatch = || AlignmentMismatch {
            transaction: self.transaction.clone(),
        };
        for op in &self.ops {
            let (n, f) = match op {
                AlignOp::Match | AlignOp::Substitute => (
                    Some(normal.next().ok_or_else(mismatch)?),
                    Some(failing.next().ok_or_else(mismatch)?),
                ),
                AlignOp::Insert => (None, Some(failing.next().ok_or_else(mismatch)?)),
                AlignOp::Delete => (Some(normal.next().ok_or_else(mismatch)?), None),
            };
            columns.push((*op, n.map(String::as_str), f.map(String::as_str)));
        }
        if normal.next().is_some() || failing.next().is_some() {
            return Err(mismatch());
        }
        Ok(columns)
    }
}

/// An alignment whose ops do not consume both symbol sequences exactly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failing transaction {transaction}: {}", AlignmentMismatch::REASON)]
pub struct AlignmentMismatch {
    /// The failing transaction's id.
    pub transaction: String,
}

impl AlignmentMismatch {
    /// What is wrong, without the transaction.
    pub const REASON: &str = "alignment ops do not match the symbol sequences";
}
