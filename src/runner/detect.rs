//! Detectors over a run's trace: the built-in fingerprint and timeout detectors, external command
//! detectors and alarm files, all producing the same alarm format.
//!
//! The built-in detectors replay the recorded event stream in time order after the run, learning
//! only from what a live detector would have known at that moment: before scoring repetition *k*,
//! positive fingerprints are learned from the baseline windows of repetitions 1..=*k*. The timeout
//! detector is polled at every event and every 100 ms of event time in between, so its alarm times
//! are those at which it would have fired live.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use fingerprint::distance::{EditOp, align};
use fingerprint::monitor::Monitor;
use fingerprint::store::Store;
use reports::model as rm;
use scenarios::model::{Campaign, DetectorSource};
use tracer::event::{Event, Transaction};

use super::workload::CommandRecord;

/// What the detectors found.
#[derive(Debug, Default)]
pub struct Detected {
    /// Every alarm, in time order, named after the campaign's detector.
    pub alarms: Vec<rm::Alarm>,
    /// Per repetition (in run order), failing transactions aligned with their nearest variant.
    pub divergences: Vec<Vec<rm::TransactionDivergence>>,
}

/// How often the replayed timeout detector is polled between events.
const POLL_US: i64 = 100_000;
/// Failing transactions shown per repetition in the report.
const DIVERGENCES_PER_REPETITION: usize = 3;

/// Names an alarm after the campaign's detector (a built-in one calls itself by its kind).
fn named(mut alarm: rm::Alarm, detector: &str) -> rm::Alarm {
    alarm.detector = detector.to_owned();
    alarm
}

/// When a transaction started: its earliest event.
pub fn first_ts(transaction: &Transaction) -> i64 {
    transaction
        .events
        .iter()
        .map(|e| e.ts_us)
        .min()
        .unwrap_or(i64::MAX)
}

/// Whether `ts_us` falls in the half-open `window`.
pub fn within(ts_us: i64, window: rm::Window) -> bool {
    ts_us >= window.start.as_microsecond() && ts_us < window.end.as_microsecond()
}

/// The transactions started by workload commands, each named after its command and paired with
/// whether the command succeeded, in order of start. Background traffic and transactions no
/// workload command started are left out.
pub fn command_transactions(
    records: &[CommandRecord],
    transactions: &[Transaction],
) -> Vec<(Transaction, bool)> {
    let commands: HashMap<&str, (&str, bool)> = records
        .iter()
        .map(|r| (r.request_id.as_str(), (r.command.as_str(), r.ok)))
        .collect();
    let mut labelled: Vec<(Transaction, bool)> = transactions
        .iter()
        .filter(|t| !t.background)
        .filter_map(|t| {
            let (command, ok) = commands.get(t.id.as_str()).copied()?;
            let mut t = t.clone();
            t.command = Some(command.to_owned());
            Some((t, ok))
        })
        .collect();
    labelled.sort_by_key(|(t, _)| first_ts(t));
    labelled
}

/// Runs every detector of the campaign.
pub fn run_detectors(
    campaign: &Campaign,
    records: &[CommandRecord],
    repetitions: &[(rm::Windows, &[rm::Fault])],
    transactions: &[Transaction],
) -> Detected {
    let labelled = command_transactions(records, transactions);

    let mut detected = Detected::default();
    let mut store = Store::default();
    let builtin = |name: &str| {
        campaign.detectors.iter().find_map(|d| match &d.source {
            DetectorSource::Builtin { builtin, .. } if builtin == name => {
                Some(d.name.as_str().to_owned())
            }
            _ => None,
        })
    };
    let fingerprint_name = builtin("fingerprint");
    let timeout_name = builtin("timeout");
    for (windows, _faults) in repetitions {
        for (transaction, ok) in &labelled {
            if *ok && within(first_ts(transaction), windows.baseline) {
                store.learn_positive(transaction);
            }
        }
        let watched: Vec<&Transaction> = labelled
            .iter()
            .map(|(t, _)| t)
            .filter(|t| {
                let start = first_ts(t);
                start >= windows.fault.start.as_microsecond()
                    && start < windows.recovery.end.as_microsecond()
            })
            .collect();
        let mut divergences = Vec::new();
        if let Some(name) = &fingerprint_name {
            for transaction in &watched {
                let diagnosis = store.diagnose(transaction);
                if let Some(alarm) = diagnosis.to_alarm() {
                    if divergences.len() < DIVERGENCES_PER_REPETITION
                        && let Some(divergence) =
                            divergence(&store, transaction, diagnosis.nearest_variant)
                    {
                        divergences.push(divergence);
                    }
                    detected.alarms.push(named(alarm, name));
                }
            }
        }
        if let Some(name) = &timeout_name {
            detected.alarms.extend(
                replay_timeouts(&store, &watched, windows.recovery.end.as_microsecond())
                    .into_iter()
                    .map(|a| named(a, name)),
            );
        }
        detected.divergences.push(divergences);
    }
    for detector in &campaign.detectors {
        let alarms = match &detector.source {
            DetectorSource::Builtin { .. } => continue,
            DetectorSource::Command { argv } => external_command(argv, transactions),
            DetectorSource::AlarmsFile { path } => std::fs::read_to_string(path)
                .map_err(|e| format!("reading {}: {e}", path.display()))
                .map(|text| parse_alarms(&text)),
        };
        match alarms {
            Ok(alarms) => detected
                .alarms
                .extend(alarms.into_iter().map(|a| named(a, detector.name.as_str()))),
            Err(error) => eprintln!("butterfly: detector {}: {error}", detector.name),
        }
    }
    detected.alarms.sort_by_key(|a| a.ts_us);
    detected
}

/// Replays the watched transactions' events through the timeout monitor.
fn replay_timeouts(store: &Store, watched: &[&Transaction], end_us: i64) -> Vec<rm::Alarm> {
    let mut monitor = Monitor::new(Arc::new(store.clone()));
    let mut events: Vec<(&str, Option<&str>, &Event)> = watched
        .iter()
        .flat_map(|t| {
            t.events
                .iter()
                .map(move |e| (t.id.as_str(), t.command.as_deref(), e))
        })
        .collect();
    events.sort_by_key(|(_, _, e)| (e.ts_us, e.seq));
    let mut alarms = Vec::new();
    let mut clock = events.first().map_or(end_us, |(_, _, e)| e.ts_us);
    for (transaction, command, event) in events {
        while clock + POLL_US < event.ts_us {
            clock += POLL_US;
            alarms.extend(monitor.poll(clock));
        }
        clock = clock.max(event.ts_us);
        alarms.extend(monitor.poll(event.ts_us));
        monitor.observe(transaction, command, event);
    }
    while clock < end_us {
        clock += POLL_US;
        alarms.extend(monitor.poll(clock));
    }
    alarms
}

/// Aligns a failing transaction with its nearest normal variant for the report.
fn divergence(
    store: &Store,
    transaction: &Transaction,
    nearest: Option<usize>,
) -> Option<rm::TransactionDivergence> {
    let command = transaction.command.clone()?;
    let variant = store.commands.get(&command)?.variants.get(nearest?)?;
    let trace = store.trace(transaction);
    let failing_ids = store.lookup(&trace.steps);
    let ops: Vec<rm::AlignOp> = align(&failing_ids, &variant.symbols)
        .into_iter()
        .map(|op| match op {
            EditOp::Match { .. } => rm::AlignOp::Match,
            EditOp::Substitute { .. } => rm::AlignOp::Substitute,
            EditOp::Insert { .. } => rm::AlignOp::Insert,
            EditOp::Delete { .. } => rm::AlignOp::Delete,
        })
        .collect();
    let divergence_index = ops.iter().position(|op| *op != rm::AlignOp::Match)?;
    let name = |id: &u32| store.symbol(*id).unwrap_or("?").to_owned();
    Some(rm::TransactionDivergence {
        transaction: transaction.id.clone(),
        command,
        failing: trace.steps.iter().map(|s| s.symbol.clone()).collect(),
        normal: variant.symbols.iter().map(name).collect(),
        ops,
        divergence_index,
    })
}

fn parse_alarms(text: &str) -> Vec<rm::Alarm> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .filter_map(|line| match serde_json::from_str(line) {
            Ok(alarm) => Some(alarm),
            Err(error) => {
                eprintln!("butterfly: skipping an alarm line that does not parse: {error}");
                None
            }
        })
        .collect()
}

/// Runs an external detector: the run's events on stdin (JSON Lines), alarms on stdout.
fn external_command(
    argv: &[String],
    transactions: &[Transaction],
) -> Result<Vec<rm::Alarm>, String> {
    let mut events: Vec<&Event> = transactions.iter().flat_map(|t| &t.events).collect();
    events.sort_by_key(|e| (e.ts_us, e.seq));
    let mut input = Vec::new();
    for event in events {
        serde_json::to_writer(&mut input, event).map_err(|e| e.to_string())?;
        input.push(b'\n');
    }
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", argv[0]))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    if !output.status.success() {
        return Err(format!("{} exited with {}", argv[0], output.status));
    }
    Ok(parse_alarms(&String::from_utf8_lossy(&output.stdout)))
}
