//! What a run shows while it runs: a progress bar for the campaign with the current experiment
//! and phase (on a terminal; plain log lines otherwise), and Prometheus metrics written as a
//! textfile (`metrics.prom` in the run directory, for the node exporter's textfile collector)
//! every second: faults active, phase, commands by outcome, the current window's success ratio.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;
use reports::metrics::RunMetrics;
use reports::model::{Fault, WindowKind};

use super::workload::Records;

/// The experiment and window in progress, for the success-ratio gauge.
#[derive(Debug, Clone)]
struct Current {
    experiment: String,
    window: WindowKind,
    since: Timestamp,
}

/// Progress display and live metrics of one run.
pub struct Live {
    bar: ProgressBar,
    metrics: Arc<RunMetrics>,
    current: Arc<Mutex<Option<Current>>>,
    writer: tokio::task::JoinHandle<()>,
    path: PathBuf,
    /// The phase for the live detectors: repetitions begun and the current window.
    phases: tokio::sync::watch::Sender<super::detect::Phase>,
}

impl Live {
    /// Starts the display and the metrics writer for a run of `runs` repetitions.
    pub fn start(runs: u64, records: Arc<Records>, path: PathBuf) -> Live {
        let bar = ProgressBar::new(runs);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} repetitions · {msg}",
            )
            .expect("the template is valid"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        let metrics = Arc::new(RunMetrics::new());
        let current: Arc<Mutex<Option<Current>>> = Arc::new(Mutex::new(None));
        let writer = {
            let (metrics, current, path) = (metrics.clone(), current.clone(), path.clone());
            tokio::spawn(async move {
                let mut counted = 0;
                let mut ticker = tokio::time::interval(Duration::from_secs(1));
                loop {
                    ticker.tick().await;
                    let snapshot = records.snapshot();
                    for record in &snapshot[counted.min(snapshot.len())..] {
                        metrics.command_completed(&record.command, record.ok);
                    }
                    counted = snapshot.len();
                    let window = current.lock().expect("current lock").clone();
                    if let Some(window) = window {
                        let started: Vec<_> = snapshot
                            .iter()
                            .filter(|r| r.started_at >= window.since)
                            .collect();
                        if !started.is_empty() {
                            let ok = started.iter().filter(|r| r.ok).count();
                            metrics.set_success_ratio(
                                &window.experiment,
                                window.window,
                                ok as f64 / started.len() as f64,
                            );
                        }
                    }
                    if let Err(error) = metrics.write_textfile(&path) {
                        tracing::warn!("writing {}: {error}", path.display());
                    }
                }
            })
        };
        Live {
            bar,
            metrics,
            current,
            writer,
            path,
            phases: tokio::sync::watch::channel(super::detect::Phase::default()).0,
        }
    }

    /// The metrics, for the live detectors to count their alarms as they fire.
    pub fn metrics(&self) -> Arc<RunMetrics> {
        self.metrics.clone()
    }

    /// Follows the run's phases (for the live detectors).
    pub fn phases(&self) -> tokio::sync::watch::Receiver<super::detect::Phase> {
        self.phases.subscribe()
    }

    /// A log line that does not break the progress bar.
    pub fn log(&self, line: &str) {
        if self.bar.is_hidden() {
            eprintln!("butterfly: {line}");
        } else {
            self.bar.println(format!("butterfly: {line}"));
        }
    }

    /// The experiment entered a phase (one of `reports::metrics::PHASES`).
    pub fn phase(&self, experiment: &str, repetition: u32, phase: &str) {
        self.metrics.set_phase(experiment, phase);
        let window = match phase {
            "baseline" => Some(WindowKind::Baseline),
            "fault" => Some(WindowKind::Fault),
            "recovery" => Some(WindowKind::Recovery),
            _ => None,
        };
        self.phases.send_modify(|current| {
            if window == Some(WindowKind::Baseline) {
                current.repetition += 1;
            }
            current.window = window;
        });
        *self.current.lock().expect("current lock") = window.map(|window| Current {
            experiment: experiment.to_owned(),
            window,
            since: Timestamp::now(),
        });
        self.bar
            .set_message(format!("{experiment} #{repetition}: {phase}"));
    }

    /// A fault was injected.
    pub fn injected(&self, experiment: &str, fault: &Fault) {
        self.metrics.fault_injected(experiment, fault);
    }

    /// A fault was reverted.
    pub fn reverted(&self, experiment: &str, fault: &Fault) {
        self.metrics.fault_reverted(experiment, fault);
    }

    /// A repetition finished.
    pub fn repetition_done(&self) {
        self.bar.inc(1);
    }

    /// Stops the display; the final metrics include the report's end-of-run values and the
    /// alarms of the detectors that run after the run (the live ones were counted as they fired).
    pub fn finish(self, report: &reports::model::Report, after_run: &[reports::model::Alarm]) {
        self.writer.abort();
        self.bar.finish_and_clear();
        for alarm in after_run {
            self.metrics.alarm(alarm);
        }
        self.metrics.observe_report(report);
        if let Err(error) = self.metrics.write_textfile(&self.path) {
            eprintln!("butterfly: writing {}: {error}", self.path.display());
        }
    }
}
