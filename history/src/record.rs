//! Writing a run into the history: every row of one run in one transaction, keyed on the run's id
//! from report.json, so that recording a run again (a re-import, two imports racing) changes
//! nothing.

use std::path::Path;

use jiff::Timestamp;
use reports::model::{Report, Verdict};

use crate::labels::{self, Labels};
use crate::store::{Store, Value};
use crate::{Error, figures};

/// What recording a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// The run is new to the history.
    Added,
    /// A run with this id was already there; nothing changed.
    AlreadyPresent,
}

fn real(value: Option<f64>) -> Value {
    Value::Real(value.filter(|v| v.is_finite()))
}

fn verdict(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
    }
}

impl Store {
    /// Records `report` with the labels it implies and `given` ones; `run_dir` is remembered so
    /// that `history show` can point at it. `now` is the recording time.
    pub fn record(
        &mut self,
        report: &Report,
        given: &Labels,
        run_dir: Option<&Path>,
        now: Timestamp,
    ) -> Result<Recorded, Error> {
        let run = report.run_id.as_str();
        let labels = labels::of_run(report, given);
        let figures = figures::of_report(report);
        let mut tx = self.transaction()?;
        let held = report
            .hypotheses()
            .filter(|(_, _, h)| h.verdict == Verdict::Pass)
            .count();
        // The run row goes first: when another writer recorded this run, the conflict leaves
        // zero rows changed and this transaction writes nothing else.
        let inserted = tx.execute(
            "INSERT INTO runs (run_id, campaign, started_at, started_us, finished_at, outcome, \
             passed, hypotheses, hypotheses_held, run_dir, recorded_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
            &[
                Value::text(run),
                Value::text(&report.campaign.name),
                Value::text(report.started_at.to_string()),
                Value::Int(Some(report.started_at.as_microsecond())),
                Value::text(report.finished_at.to_string()),
                Value::text(
                    serde_json::to_value(report.outcome)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                ),
                Value::int(i64::from(report.passed())),
                Value::int(report.hypotheses().count()),
                Value::int(held),
                Value::Text(run_dir.map(|d| d.display().to_string())),
                Value::text(now.to_string()),
            ],
        )?;
        if inserted == 0 {
            return Ok(Recorded::AlreadyPresent);
        }
        for (key, value) in &labels {
            tx.execute(
                "INSERT INTO labels (run_id, key, value) VALUES (?, ?, ?)",
                &[Value::text(run), Value::text(key), Value::text(value)],
            )?;
        }
        for experiment in &report.experiments {
            let e = experiment.name.as_str();
            for repetition in &experiment.repetitions {
                let index = Value::int(repetition.index);
                let faults: Vec<&str> = repetition.faults.iter().map(|f| f.kind.as_str()).collect();
                let targets: Vec<String> = repetition
                    .faults
                    .iter()
                    .map(|f| match &f.target.service {
                        Some(service) => format!("{service}@{}", f.target.hosts.join("+")),
                        None => f.target.hosts.join("+"),
                    })
                    .collect();
                let passed = repetition
                    .hypotheses
                    .iter()
                    .all(|h| h.verdict == Verdict::Pass);
                tx.execute(
                    "INSERT INTO repetitions (run_id, experiment, repetition, faults, targets, \
                     verdict, recovery_s) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    &[
                        Value::text(run),
                        Value::text(e),
                        index.clone(),
                        Value::text(faults.join(",")),
                        Value::text(targets.join(",")),
                        Value::text(if passed { "pass" } else { "fail" }),
                        real(repetition.recovery.recovery_s),
                    ],
                )?;
                for h in &repetition.hypotheses {
                    tx.execute(
                        "INSERT INTO hypotheses (run_id, experiment, repetition, name, metric, \
                         window_kind, observed, verdict) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        &[
                            Value::text(run),
                            Value::text(e),
                            index.clone(),
                            Value::text(&h.name),
                            Value::text(&h.metric),
                            Value::text(h.window.as_str()),
                            real(h.observed),
                            Value::text(verdict(h.verdict)),
                        ],
                    )?;
                }
                for stats in &repetition.workload {
                    for c in std::iter::once(&stats.total).chain(&stats.commands) {
                        let p = c.latency_ms;
                        tx.execute(
                            "INSERT INTO workload (run_id, experiment, repetition, window_kind, \
                             command, count, successes, success_ratio, p50_ms, p95_ms, p99_ms) \
                             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            &[
                                Value::text(run),
                                Value::text(e),
                                index.clone(),
                                Value::text(stats.window.as_str()),
                                Value::text(&c.command),
                                Value::int(c.count),
                                Value::int(c.successes),
                                real(c.success_ratio),
                                real(p.map(|p| p.p50)),
                                real(p.map(|p| p.p95)),
                                real(p.map(|p| p.p99)),
                            ],
                        )?;
                    }
                }
            }
        }
        for d in &report.detectors {
            tx.execute(
                "INSERT INTO detectors (run_id, detector, alarms, true_positives, \
                 false_positives, precision_score, recall_score, f1_score, \
                 mean_time_to_detect_s, max_time_to_detect_s, top1, top3, \
                 false_alarms_per_hour) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                &[
                    Value::text(run),
                    Value::text(&d.detector),
                    Value::int(d.alarms),
                    Value::int(d.true_positives),
                    Value::int(d.false_positives),
                    real(d.precision),
                    real(d.recall),
                    real(d.f1),
                    real(d.mean_time_to_detect_s),
                    real(d.max_time_to_detect_s),
                    real(d.localization_top1),
                    real(d.localization_top3),
                    real(d.false_alarms_per_hour),
                ],
            )?;
        }
        for f in &figures {
            tx.execute(
                "INSERT INTO figures (run_id, experiment, figure, value, better) \
                 VALUES (?, ?, ?, ?, ?)",
                &[
                    Value::text(run),
                    Value::text(&f.experiment),
                    Value::text(&f.name),
                    Value::Real(Some(f.value)),
                    Value::text(f.better.as_str()),
                ],
            )?;
        }
        tx.commit()?;
        Ok(Recorded::Added)
    }

    /// Reads `run_dir/report.json` (bounded) and records it.
    pub fn import(
        &mut self,
        run_dir: &Path,
        given: &Labels,
        now: Timestamp,
    ) -> Result<(String, Recorded), Error> {
        let report = reports::read_run(run_dir)?;
        let recorded = self.record(&report, given, Some(run_dir), now)?;
        Ok((report.run_id, recorded))
    }
}
