//! `butterfly diagnose`: compare traced transactions with learned fingerprints; print per
//! transaction normal/anomalous, distance, divergence, ranked suspects and nearest known fault
//! (or "unknown fault" when no known fault is within its learned bound); write alarms as JSON
//! Lines. With `--replay RUN_DIR`, feeds a recorded run's engine inputs through the same
//! detection engine again and compares its alarms with the run's live ones.

use std::io::Write;
use std::path::{Path, PathBuf};

use fingerprint::alarm::Alarm;
use fingerprint::{Status, Store};

use crate::commands::fingerprint::read_traces;
use crate::exit::{CliError, Exit};
use crate::runner::replay::{self, Speed};

/// Diagnose traced transactions against learned fingerprints.
///
/// Prints, per transaction: normal or anomalous, the distance to the nearest normal variant and
/// the learned threshold, the first divergence, late steps, ranked suspects with evidence and the
/// nearest known fault, or "unknown fault" when no known fault is within its learned distance
/// bound. Anomalies are written as alarms (one JSON object per line, the format
/// external detectors use) with `--alarms`.
///
/// With `--replay RUN_DIR`: replays the run's recorded engine inputs (`engine-input.jsonl`)
/// through the same detection engine, rebuilt as the run built it, with the run's own clock;
/// prints each alarm and how the replay's alarms compare with the run's `alarms.jsonl`.
///
/// Exit 0 after diagnosing (1 with `--fail-on-anomaly` when a transaction is anomalous, or when
/// a replay's alarms differ from the live ones), 2 on unreadable input.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit 0 after diagnosing (1 with --fail-on-anomaly when a transaction is anomalous, or when a replay's alarms differ from the run's), 2 on unreadable input.

Examples:
  butterfly diagnose --fingerprints fp.json --traces runs/kill-compute/trace
  butterfly diagnose --fingerprints fp.json --traces trace/ --alarms alarms.jsonl --json
  butterfly diagnose --replay runs/ci-smoke-20261204T190000Z --speed max")]
pub struct Args {
    /// The fingerprint store (from `butterfly fingerprint learn`).
    #[arg(long, value_name = "FP.json", required_unless_present = "replay")]
    pub fingerprints: Option<PathBuf>,
    /// Trace directories (holding `transactions.json`) or `transactions.json` files.
    #[arg(long, required_unless_present = "replay", num_args = 1.., value_name = "DIR")]
    pub traces: Vec<PathBuf>,
    /// Replay a recorded run's engine inputs instead (its own store and setup).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["fingerprints", "traces", "include_background", "fail_on_anomaly"])]
    pub replay: Option<PathBuf>,
    /// The replay's pace: N times the run's (`1` is the run's own) or `max`.
    #[arg(long, value_name = "N|max", default_value = "max", requires = "replay")]
    pub speed: Speed,
    /// Write alarms for anomalous transactions to this JSON Lines file.
    #[arg(long, value_name = "OUT.jsonl")]
    pub alarms: Option<PathBuf>,
    /// Also diagnose background transactions (periodic tasks, heartbeats).
    #[arg(long)]
    pub include_background: bool,
    /// Print each diagnosis as one JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when any transaction is anomalous.
    #[arg(long)]
    pub fail_on_anomaly: bool,
    /// Write the run-level verdict of each trace (one JSON object per line: `trace`, `verdict`)
    /// to this file.
    #[arg(long, value_name = "OUT.jsonl")]
    pub verdicts: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    if let Some(run_dir) = &args.replay {
        return run_replay(run_dir, &args);
    }
    let Some(fingerprints) = &args.fingerprints else {
        return Err(CliError::InvalidInput(
            "--fingerprints is needed without --replay".into(),
        ));
    };
    let store =
        Store::load(fingerprints).map_err(|error| CliError::InvalidInput(error.to_string()))?;
    let mut runs = Vec::new();
    for path in &args.traces {
        runs.push((path, read_traces(path)?));
    }
    let (mut normal, mut anomalous, mut unknown, mut refused, mut background, mut too_few) =
        (0u64, 0u64, 0u64, 0u64, 0u64, 0u64);
    let mut verdicts = String::new();
    let mut alarms = Vec::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let write_error = |error: std::io::Error| CliError::Setup(format!("writing output: {error}"));
    for (path, transactions) in &runs {
        let mut diagnoses = Vec::new();
        for transaction in transactions {
            let trace = store.trace(transaction);
            // The store's judgement of background (periodic agents included), not just the tracer's.
            if trace.background && !args.include_background {
                background += 1;
                continue;
            }
            let diagnosis = store.diagnose_trace(&trace);
            match diagnosis.status {
                Status::Normal => normal += 1,
                Status::Anomalous => anomalous += 1,
                Status::Unknown => unknown += 1,
                Status::Refused => refused += 1,
                Status::NotEnoughRuns => too_few += 1,
            }
            if args.json {
                let line = serde_json::to_string(&diagnosis).expect("a diagnosis serializes");
                writeln!(out, "{line}").map_err(write_error)?;
            } else {
                write!(out, "{diagnosis}").map_err(write_error)?;
            }
            alarms.extend(diagnosis.to_alarm());
            diagnoses.push(diagnosis);
        }
        let verdict = store.run_verdict(&diagnoses);
        if args.json {
            eprintln!("{}: {verdict}", path.display());
        } else {
            writeln!(out, "{}: {verdict}", path.display()).map_err(write_error)?;
        }
        let line = serde_json::json!({"trace": path, "verdict": verdict});
        verdicts.push_str(&line.to_string());
        verdicts.push('\n');
    }
    if let Some(path) = &args.verdicts {
        std::fs::write(path, &verdicts)
            .map_err(|error| CliError::Setup(format!("{}: {error}", path.display())))?;
    }
    if let Some(path) = &args.alarms {
        write_alarms(path, &alarms)?;
    }
    let summary = format!(
        "{} transaction(s): {normal} normal, {anomalous} anomalous, {unknown} without fingerprint, {too_few} without a verdict (not enough normal runs), {refused} refused by the API, {background} background skipped; {} alarm(s)",
        normal + anomalous + unknown + refused + too_few,
        alarms.len()
    );
    if args.json {
        eprintln!("{summary}");
    } else {
        writeln!(out, "{summary}").map_err(write_error)?;
    }
    if args.fail_on_anomaly && anomalous > 0 {
        Ok(Exit::GateFailed)
    } else {
        Ok(Exit::Pass)
    }
}

fn write_alarms(path: &Path, alarms: &[Alarm]) -> Result<(), CliError> {
    let mut text = String::new();
    for alarm in alarms {
        text.push_str(&serde_json::to_string(alarm).expect("an alarm serializes"));
        text.push('\n');
    }
    std::fs::write(path, text)
        .map_err(|error| CliError::Setup(format!("{}: {error}", path.display())))
}

/// One alarm on a line: when, detector, transaction, suspects.
fn alarm_line(alarm: &Alarm) -> String {
    let when = alarm.timestamp().strftime("%H:%M:%S%.3f");
    let suspects: Vec<String> = alarm
        .suspects
        .iter()
        .take(3)
        .map(|s| match &s.host {
            Some(host) => format!("{}@{host} {:.2}", s.service, s.confidence),
            None => format!("{} {:.2}", s.service, s.confidence),
        })
        .collect();
    format!(
        "{when} {} {}: {}",
        alarm.detector,
        alarm.transaction.as_deref().unwrap_or("-"),
        suspects.join(", ")
    )
}

/// `diagnose --replay`.
fn run_replay(run_dir: &Path, args: &Args) -> Result<Exit, CliError> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = None;
    let replayed = replay::replay(run_dir, args.speed, |alarm| {
        let line = if args.json {
            serde_json::to_string(alarm).expect("an alarm serializes")
        } else {
            alarm_line(alarm)
        };
        if let Err(error) = writeln!(out, "{line}")
            && failed.is_none()
        {
            failed = Some(error);
        }
    })
    .map_err(CliError::InvalidInput)?;
    if let Some(error) = failed {
        return Err(CliError::Setup(format!("writing output: {error}")));
    }
    if let Some(path) = &args.alarms {
        write_alarms(path, &replayed.alarms)?;
    }
    let comparison = &replayed.comparison;
    let span = replayed
        .span_us
        .map_or(0.0, |(first, last)| (last - first) as f64 / 1e6);
    let mut summary = format!(
        "replayed {} input(s) over {span:.1} s of the run in {:.2} s: {} alarm(s), the run had {}; {} matched (same detector, transaction and first suspect, at most {} ms apart; largest shift {} ms)",
        replayed.inputs,
        replayed.took.as_secs_f64(),
        replayed.alarms.len(),
        replayed.live.len(),
        comparison.matched.len(),
        replay::RESOLUTION_US / 1000,
        comparison.max_shift_us / 1000,
    );
    for alarm in &comparison.live_only {
        summary.push_str(&format!("\n  only in the run:    {}", alarm_line(alarm)));
    }
    for alarm in &comparison.replay_only {
        summary.push_str(&format!("\n  only in the replay: {}", alarm_line(alarm)));
    }
    summary.push_str(if comparison.same() {
        "\nthe replay raised the run's alarms"
    } else {
        "\nthe replay's alarms differ from the run's"
    });
    eprintln!("{summary}");
    Ok(if comparison.same() {
        Exit::Pass
    } else {
        Exit::GateFailed
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::commands::fingerprint::{self as learn, LearnArgs, Subcommand};

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fingerprint/tests/fixtures")
            .join(name)
    }

    fn learn_args(traces: Vec<PathBuf>, out: PathBuf) -> LearnArgs {
        LearnArgs {
            traces,
            from_run: Vec::new(),
            out,
            negative: false,
            fault_kind: None,
            service: None,
            host: None,
            inventory: None,
            since: None,
            until: None,
        }
    }

    #[test]
    fn learn_then_diagnose_writes_alarms_naming_nova_compute() {
        let directory = tempfile::tempdir().unwrap();
        let store = directory.path().join("fp.json");
        let alarms = directory.path().join("alarms.jsonl");
        let learned = learn::run(learn::Args {
            command: Subcommand::Learn(learn_args(vec![fixture("create-delete")], store.clone())),
        });
        assert_eq!(learned.unwrap(), Exit::Pass);
        let diagnosed = run(Args {
            fingerprints: Some(store),
            traces: vec![fixture("compute-down")],
            replay: None,
            speed: Speed::Max,
            alarms: Some(alarms.clone()),
            include_background: false,
            json: true,
            fail_on_anomaly: true,
            verdicts: None,
        });
        assert_eq!(diagnosed.unwrap(), Exit::GateFailed);
        let text = std::fs::read_to_string(alarms).unwrap();
        let alarms: Vec<Alarm> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let create = alarms
            .iter()
            .find(|alarm| {
                alarm.transaction.as_deref() == Some("req-ba441000-3dfe-4008-8d54-838c4972088d")
            })
            .expect("the create alarms");
        assert_eq!(create.suspects[0].service, "nova-compute");
    }

    #[test]
    fn a_calibrated_store_gives_each_trace_a_run_verdict() {
        let directory = tempfile::tempdir().unwrap();
        let store = directory.path().join("fp.json");
        let verdicts = directory.path().join("verdicts.jsonl");
        let normal = fixture("create-delete");
        let learned = learn::run(learn::Args {
            command: Subcommand::Learn(learn_args(vec![normal.clone(); 3], store.clone())),
        });
        assert_eq!(learned.unwrap(), Exit::Pass);
        let calibrate = |rate: f64| {
            learn::run(learn::Args {
                command: Subcommand::Calibrate(learn::CalibrateArgs {
                    store: store.clone(),
                    held_back: vec![normal.clone(); 4],
                    rate,
                    min_runs: 3,
                    min_step_samples: 3,
                }),
            })
        };
        assert_eq!(calibrate(1.5).unwrap_err().code(), 2);
        assert_eq!(calibrate(0.05).unwrap(), Exit::Pass);
        let calibrated = Store::load(&store).unwrap();
        assert!(calibrated.run_rule.is_some());
        assert!(calibrated.commands["server create"].calibration.is_some());
        let diagnosed = run(Args {
            replay: None,
            speed: Speed::Max,
            fingerprints: Some(store),
            traces: vec![normal, fixture("compute-down")],
            alarms: None,
            include_background: false,
            json: true,
            fail_on_anomaly: false,
            verdicts: Some(verdicts.clone()),
        });
        assert_eq!(diagnosed.unwrap(), Exit::Pass);
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(verdicts)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["verdict"]["failed"], false, "{lines:?}");
        assert_eq!(lines[1]["verdict"]["failed"], true, "{lines:?}");
        assert_eq!(lines[1]["verdict"]["calibrated"], true);
    }

    #[test]
    fn missing_store_and_missing_trace_are_invalid_input() {
        let directory = tempfile::tempdir().unwrap();
        let error = run(Args {
            fingerprints: Some(directory.path().join("absent.json")),
            traces: vec![fixture("compute-down")],
            replay: None,
            speed: Speed::Max,
            alarms: None,
            include_background: false,
            json: false,
            fail_on_anomaly: false,
            verdicts: None,
        })
        .unwrap_err();
        assert_eq!(error.code(), 2, "{error}");
        let error = learn::run(learn::Args {
            command: Subcommand::Learn(learn_args(
                vec![directory.path().join("nothing-here")],
                directory.path().join("fp.json"),
            )),
        })
        .unwrap_err();
        assert_eq!(error.code(), 2, "{error}");
        assert!(error.to_string().contains("nothing-here"), "{error}");
    }
}
