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
