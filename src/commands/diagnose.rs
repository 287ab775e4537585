//! `butterfly diagnose`: compare traced transactions with learned fingerprints; print per
//! transaction normal/anomalous, distance, divergence, ranked suspects and nearest known fault
//! (or "unknown fault" when no known fault is within its learned bound); write alarms as JSON
//! Lines.

use std::io::Write;
use std::path::PathBuf;

use fingerprint::{Status, Store};

use crate::commands::fingerprint::read_traces;
use crate::exit::{CliError, Exit};

/// Diagnose traced transactions against learned fingerprints.
///
/// Prints, per transaction: normal or anomalous, the distance to the nearest normal variant and
/// the learned threshold, the first divergence, late steps, ranked suspects with evidence and the
/// nearest known fault, or "unknown fault" when no known fault is within its learned distance
/// bound. Anomalies are written as alarms (one JSON object per line, the format
/// external detectors use) with `--alarms`.
///
/// Exit 0 after diagnosing (1 with `--fail-on-anomaly` when a transaction is anomalous), 2 on
/// unreadable input.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit 0 after diagnosing (1 with --fail-on-anomaly when a transaction is anomalous), 2 on unreadable input.

Examples:
  butterfly diagnose --fingerprints fp.json --traces runs/kill-compute/trace
  butterfly diagnose --fingerprints fp.json --traces trace/ --alarms alarms.jsonl --json")]
pub struct Args {
    /// The fingerprint store (from `butterfly fingerprint learn`).
    #[arg(long, value_name = "FP.json")]
    pub fingerprints: PathBuf,
    /// Trace directories (holding `transactions.json`) or `transactions.json` files.
    #[arg(long, required = true, num_args = 1.., value_name = "DIR")]
    pub traces: Vec<PathBuf>,
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
    let store = Store::load(&args.fingerprints)
        .map_err(|error| CliError::InvalidInput(error.to_string()))?;
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
        let mut text = String::new();
        for alarm in &alarms {
            text.push_str(&serde_json::to_string(alarm).expect("an alarm serializes"));
            text.push('\n');
        }
        std::fs::write(path, text)
            .map_err(|error| CliError::Setup(format!("{}: {error}", path.display())))?;
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use fingerprint::alarm::Alarm;

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
            fingerprints: store,
            traces: vec![fixture("compute-down")],
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
            fingerprints: store,
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
            fingerprints: directory.path().join("absent.json"),
            traces: vec![fixture("compute-down")],
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
