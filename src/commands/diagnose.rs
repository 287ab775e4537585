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
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let store = Store::load(&args.fingerprints)
        .map_err(|error| CliError::InvalidInput(error.to_string()))?;
    let mut transactions = Vec::new();
    for path in &args.traces {
        transactions.extend(read_traces(path)?);
    }
    let (mut normal, mut anomalous, mut unknown, mut refused, mut background) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut alarms = Vec::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let write_error = |error: std::io::Error| CliError::Setup(format!("writing output: {error}"));
    for transaction in &transactions {
        if transaction.background && !args.include_background {
            background += 1;
            continue;
        }
        let diagnosis = store.diagnose(transaction);
        match diagnosis.status {
            Status::Normal => normal += 1,
            Status::Anomalous => anomalous += 1,
            Status::Unknown => unknown += 1,
            Status::Refused => refused += 1,
        }
        if args.json {
            let line = serde_json::to_string(&diagnosis).expect("a diagnosis serializes");
            writeln!(out, "{line}").map_err(write_error)?;
        } else {
            write!(out, "{diagnosis}").map_err(write_error)?;
        }
        alarms.extend(diagnosis.to_alarm());
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
        "{} transaction(s): {normal} normal, {anomalous} anomalous, {unknown} without fingerprint, {refused} refused by the API, {background} background skipped; {} alarm(s)",
        normal + anomalous + unknown + refused,
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
    fn missing_store_and_missing_trace_are_invalid_input() {
        let directory = tempfile::tempdir().unwrap();
        let error = run(Args {
            fingerprints: directory.path().join("absent.json"),
            traces: vec![fixture("compute-down")],
            alarms: None,
            include_background: false,
            json: false,
            fail_on_anomaly: false,
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
