//! Prometheus metrics of a run: the registry the runner updates while it runs, exported as a
//! node-exporter textfile (`metrics.prom`) that Prometheus scrapes and `dashboards/grafana.json`
//! plots.
//!
//! Metric names (all prefixed `butterfly_`): `faults_active` (gauge per experiment, fault kind,
//! service and host), `faults_injected_total`, `phase` (1 for the current phase of each
//! experiment), `success_ratio` (gauge per experiment and window), `workload_commands_total`
//! (per command and outcome), `alarms_total` (per detector), `hypotheses` (per verdict) and
//! `detector_score` (per detector and score, set when the run is scored).

use std::path::Path;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::model::{Alarm, Fault, Report, Verdict, WindowKind};
use crate::{Error, write_atomically};

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn labels<const N: usize>(pairs: [(&str, &str); N]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The phases of a repetition, as the runner reports them in `butterfly_phase`.
pub const PHASES: [&str; 6] = [
    "health-check",
    "steady-state",
    "baseline",
    "fault",
    "recovery",
    "cool-down",
];

/// Live metrics of one run.
pub struct RunMetrics {
    registry: Registry,
    faults_active: Family<Labels, Gauge>,
    faults_injected: Family<Labels, Counter>,
    phase: Family<Labels, Gauge>,
    success_ratio: Family<Labels, FloatGauge>,
    commands: Family<Labels, Counter>,
    alarms: Family<Labels, Counter>,
    hypotheses: Family<Labels, Gauge>,
    detector_score: Family<Labels, FloatGauge>,
}

impl Default for RunMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RunMetrics {
    /// An empty registry with every metric declared.
    pub fn new() -> RunMetrics {
        let mut registry = Registry::with_prefix("butterfly");
        let metrics = RunMetrics {
            faults_active: Family::default(),
            faults_injected: Family::default(),
            phase: Family::default(),
            success_ratio: Family::default(),
            commands: Family::default(),
            alarms: Family::default(),
            hypotheses: Family::default(),
            detector_score: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "faults_active",
            "Faults currently injected (1 while active)",
            metrics.faults_active.clone(),
        );
        registry.register(
            "faults_injected",
            "Faults injected so far",
            metrics.faults_injected.clone(),
        );
        registry.register(
            "phase",
            "1 for the phase each experiment is in",
            metrics.phase.clone(),
        );
        registry.register(
            "success_ratio",
            "Workload success ratio of the window so far",
            metrics.success_ratio.clone(),
        );
        registry.register(
            "workload_commands",
            "Workload commands completed",
            metrics.commands.clone(),
        );
        registry.register(
            "alarms",
            "Alarms raised by detectors",
            metrics.alarms.clone(),
        );
        registry.register(
            "hypotheses",
            "Hypotheses evaluated so far, by verdict",
            metrics.hypotheses.clone(),
        );
        registry.register(
            "detector_score",
            "Detector scores against the ground truth",
            metrics.detector_score.clone(),
        );
        RunMetrics {
            registry,
            ..metrics
        }
    }

    fn fault_labels(experiment: &str, fault: &Fault) -> Labels {
        labels([
            ("experiment", experiment),
            ("kind", &fault.kind),
            ("service", fault.target.service.as_deref().unwrap_or("")),
            ("host", &fault.target.hosts.join(",")),
        ])
    }

    /// A fault was injected (the journal says so).
    pub fn fault_injected(&self, experiment: &str, fault: &Fault) {
        self.faults_active
            .get_or_create(&Self::fault_labels(experiment, fault))
            .set(1);
        self.faults_injected
            .get_or_create(&labels([("kind", &fault.kind)]))
            .inc();
    }

    /// A fault was reverted.
    pub fn fault_reverted(&self, experiment: &str, fault: &Fault) {
        self.faults_active
            .get_or_create(&Self::fault_labels(experiment, fault))
            .set(0);
    }

    /// The experiment entered `phase` (one of [`PHASES`]); the other phases read 0.
    pub fn set_phase(&self, experiment: &str, phase: &str) {
        for p in PHASES {
            self.phase
                .get_or_create(&labels([("experiment", experiment), ("phase", p)]))
                .set(i64::from(p == phase));
        }
    }

    /// A workload command completed.
    pub fn command_completed(&self, command: &str, ok: bool) {
        self.commands
            .get_or_create(&labels([
                ("command", command),
                ("outcome", if ok { "ok" } else { "failed" }),
            ]))
            .inc();
    }

    /// The success ratio of a window so far.
    pub fn set_success_ratio(&self, experiment: &str, window: WindowKind, ratio: f64) {
        self.success_ratio
            .get_or_create(&labels([
                ("experiment", experiment),
                ("window", window.as_str()),
            ]))
            .set(ratio);
    }

    /// A detector raised an alarm.
    pub fn alarm(&self, alarm: &Alarm) {
        self.alarms
            .get_or_create(&labels([("detector", &alarm.detector)]))
            .inc();
    }

    /// The metrics a finished run leaves behind, rebuilt from its report: every fault injected
    /// and reverted, every command and alarm counted, and the end-of-run values set.
    pub fn from_report(report: &Report) -> RunMetrics {
        let metrics = RunMetrics::new();
        for experiment in &report.experiments {
            for repetition in &experiment.repetitions {
                for fault in &repetition.faults {
                    metrics.fault_injected(&experiment.name, fault);
                    if fault.reverted_at.is_some() {
                        metrics.fault_reverted(&experiment.name, fault);
                    }
                }
                for stats in &repetition.workload {
                    for command in &stats.commands {
                        metrics
                            .commands
                            .get_or_create(&labels([
                                ("command", &command.command),
                                ("outcome", "ok"),
                            ]))
                            .inc_by(command.successes);
                        metrics
                            .commands
                            .get_or_create(&labels([
                                ("command", &command.command),
                                ("outcome", "failed"),
                            ]))
                            .inc_by(command.count.saturating_sub(command.successes));
                    }
                }
                for alarm in &repetition.alarms {
                    metrics.alarm(alarm);
                }
            }
        }
        metrics.observe_report(report);
        metrics
    }

    /// Sets the end-of-run values from a finished report: success ratios, hypothesis verdicts and
    /// detector scores (counters are left as the run counted them).
    pub fn observe_report(&self, report: &Report) {
        for experiment in &report.experiments {
            for window in WindowKind::ALL {
                if let Some(ratio) = experiment.tally(window).ratio() {
                    self.set_success_ratio(&experiment.name, window, ratio);
                }
            }
        }
        for verdict in [Verdict::Pass, Verdict::Fail] {
            let n = report
                .hypotheses()
                .filter(|(_, _, h)| h.verdict == verdict)
                .count();
            let name = if verdict == Verdict::Pass {
                "pass"
            } else {
                "fail"
            };
            self.hypotheses
                .get_or_create(&labels([("verdict", name)]))
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for d in &report.detectors {
            for (score, value) in [
                ("precision", d.precision),
                ("recall", d.recall),
                ("f1", d.f1),
                ("top1", d.localization_top1),
                ("top3", d.localization_top3),
                ("mean_time_to_detect_seconds", d.mean_time_to_detect_s),
                ("false_alarms_per_hour", d.false_alarms_per_hour),
            ] {
                if let Some(value) = value {
                    self.detector_score
                        .get_or_create(&labels([("detector", &d.detector), ("score", score)]))
                        .set(value);
                }
            }
        }
    }

    /// The OpenMetrics text exposition of every metric: families in registration order, the
    /// samples of each family sorted, so that the same run always gives the same file.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        sort_samples(&text)
    }

    /// Writes the exposition to `path` atomically (for the node exporter's textfile collector,
    /// which must never read a half-written file).
    pub fn write_textfile(&self, path: &Path) -> Result<(), Error> {
        write_atomically(path, self.encode().as_bytes())
    }
}

/// Sorts the sample lines of each metric family of an exposition; a family's samples come out of
/// a hash map, in an order that differs from one process to the next.
fn sort_samples(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut samples: Vec<&str> = Vec::new();
    let flush = |samples: &mut Vec<&str>, out: &mut String| {
        samples.sort_unstable();
        for sample in samples.drain(..) {
            out.push_str(sample);
            out.push('\n');
        }
    };
    for line in text.lines() {
        if line.starts_with('#') {
            flush(&mut samples, &mut out);
            out.push_str(line);
            out.push('\n');
        } else {
            samples.push(line);
        }
    }
    flush(&mut samples, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FaultTarget, Trigger};

    fn fault() -> Fault {
        Fault {
            id: "f1".into(),
            kind: "process-kill".into(),
            parameters: Default::default(),
            target: FaultTarget {
                service: Some("nova-conductor".into()),
                hosts: vec!["controller".into()],
            },
            trigger: Trigger::Offset { after_s: 5.0 },
            injected_at: jiff::Timestamp::UNIX_EPOCH,
            verified_at: None,
            reverted_at: None,
            observed: None,
        }
    }

    fn sample(text: &str, prefix: &str) -> Option<String> {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .map(|l| l.rsplit(' ').next().unwrap().to_owned())
    }

    #[test]
    fn faults_go_active_and_back() {
        let metrics = RunMetrics::new();
        metrics.fault_injected("kill-conductor", &fault());
        let active = r#"butterfly_faults_active{experiment="kill-conductor",kind="process-kill",service="nova-conductor",host="controller"}"#;
        assert_eq!(sample(&metrics.encode(), active).as_deref(), Some("1"));
        metrics.fault_reverted("kill-conductor", &fault());
        let text = metrics.encode();
        assert_eq!(sample(&text, active).as_deref(), Some("0"));
        assert_eq!(
            sample(
                &text,
                r#"butterfly_faults_injected_total{kind="process-kill"}"#
            )
            .as_deref(),
            Some("1")
        );
        assert!(text.trim_end().ends_with("# EOF"));
    }

    #[test]
    fn phases_are_exclusive_and_ratios_are_floats() {
        let metrics = RunMetrics::new();
        metrics.set_phase("e", "baseline");
        metrics.set_phase("e", "fault");
        metrics.set_success_ratio("e", WindowKind::Fault, 0.75);
        metrics.command_completed("server create", false);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, r#"butterfly_phase{experiment="e",phase="fault"}"#).as_deref(),
            Some("1")
        );
        assert_eq!(
            sample(&text, r#"butterfly_phase{experiment="e",phase="baseline"}"#).as_deref(),
            Some("0")
        );
        assert_eq!(
            sample(
                &text,
                r#"butterfly_success_ratio{experiment="e",window="fault"}"#
            )
            .as_deref(),
            Some("0.75")
        );
        assert_eq!(
            sample(
                &text,
                r#"butterfly_workload_commands_total{command="server create",outcome="failed"}"#
            )
            .as_deref(),
            Some("1")
        );
    }

    #[test]
    fn a_finished_run_leaves_its_counts() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/run/report.json"
        ))
        .unwrap();
        let report = Report::from_json(&text).unwrap();
        let encoded = RunMetrics::from_report(&report).encode();
        assert_eq!(
            sample(
                &encoded,
                r#"butterfly_faults_injected_total{kind="process-freeze"}"#
            )
            .as_deref(),
            Some("2")
        );
        assert_eq!(
            sample(&encoded, r#"butterfly_alarms_total{detector="timeout"}"#).as_deref(),
            Some("5")
        );
        assert_eq!(
            sample(&encoded, r#"butterfly_hypotheses{verdict="fail"}"#).as_deref(),
            Some("3")
        );
        assert_eq!(
            sample(
                &encoded,
                r#"butterfly_detector_score{detector="timeout",score="recall"}"#
            )
            .as_deref(),
            Some("1.0")
        );
        assert!(!encoded.contains(r#"faults_active{experiment="kill-nova-conductor",kind="process-kill",service="nova-conductor",host="controller"} 1"#));
    }

    #[test]
    fn the_exposition_lists_each_family_sorted_whatever_the_insertion_order() {
        let forward = RunMetrics::new();
        let backward = RunMetrics::new();
        let commands = [
            "server create",
            "server delete",
            "server list",
            "image list",
        ];
        for command in commands {
            forward.command_completed(command, true);
            forward.set_success_ratio(command, WindowKind::Fault, 0.5);
        }
        for command in commands.iter().rev() {
            backward.command_completed(command, true);
            backward.set_success_ratio(command, WindowKind::Fault, 0.5);
        }
        let text = forward.encode();
        assert_eq!(text, backward.encode());
        let samples: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("butterfly_workload_commands_total"))
            .collect();
        let mut sorted = samples.clone();
        sorted.sort_unstable();
        assert_eq!(samples.len(), 4);
        assert_eq!(samples, sorted);
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn textfile_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.prom");
        let metrics = RunMetrics::new();
        metrics.set_phase("e", "recovery");
        metrics.write_textfile(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), metrics.encode());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file is left"
        );
    }
}
