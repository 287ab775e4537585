//! `butterfly fingerprint learn`: learn positive (fault-free) or negative (known fault)
//! fingerprints from trace directories into a fingerprint store, incrementally.
//! `butterfly fingerprint calibrate`: calibrate a store's thresholds, timing and run-level rule to
//! a false-alarm rate on held-back fault-free runs of the cloud it will watch.

use std::path::{Path, PathBuf};

use fingerprint::{FaultLabel, Learned, Store};
use reports::model::Window;
use scenarios::fault::{FAULT_KINDS, FaultKind};
use tracer::event::Transaction;

use crate::exit::{CliError, Exit};
use crate::runner::learn::{Touch, learn_run, overlaps};
use crate::runner::workload::read_records;

const LEARN_EXAMPLES: &str = "\
Examples:
  butterfly fingerprint learn --traces runs/baseline-1/trace runs/baseline-2/trace --out fp.json
  butterfly fingerprint learn --traces runs/kill-compute/trace --out fp.json \\
      --negative --fault-kind process-kill --service nova-compute --host compute1 \\
      --inventory /var/lib/butterfly/testbed/inventory.yaml \\
      --since 2026-11-28T13:04:00Z --until 2026-11-28T13:04:30Z
  butterfly fingerprint learn --from-run runs/20261128T130335Z-nova-faults --out fp.json
  butterfly fingerprint calibrate --store fp.json --held-back runs/b1/trace runs/b2/trace --rate 0.01";

/// Learn fingerprints of user commands from traced runs.
#[derive(Debug, clap::Args)]
#[command(after_help = LEARN_EXAMPLES)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Subcommand,
}

/// `butterfly fingerprint` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Subcommand {
    /// Learn runs into a fingerprint store (created if missing, refined if it exists).
    Learn(LearnArgs),
    /// Calibrate a store to a false-alarm rate on held-back fault-free runs.
    Calibrate(CalibrateArgs),
}

/// Calibrate a store on held-back fault-free runs.
///
/// Each held-back trace is one fault-free run of the cloud the store will judge (not learned
/// from). Per command, the distance threshold and a scale of the learned step bounds are set so
/// that such runs raise false alarms at `--rate` per transaction (a split-conformal quantile of
/// their scores, not the maximum of the learned runs), answer bounds likewise, and the run-level
/// rule (how many anomalous transactions a healthy run may have) at `--rate` per run. Commands
/// learned from fewer than `--min-runs` runs, and steps timed fewer than `--min-step-samples`
/// times, get no verdict afterwards ("not enough normal runs"). Replaces an earlier calibration.
#[derive(Debug, clap::Args)]
#[command(after_help = LEARN_EXAMPLES)]
pub struct CalibrateArgs {
    /// The fingerprint store to calibrate (rewritten in place).
    #[arg(long, value_name = "FP.json")]
    pub store: PathBuf,
    /// Held-back fault-free runs: trace directories or `transactions.json` files, one per run.
    #[arg(long, required = true, num_args = 1.., value_name = "DIR")]
    pub held_back: Vec<PathBuf>,
    /// The false-alarm rate to aim at, per fault-free transaction and per fault-free run.
    #[arg(long, default_value_t = 0.01, value_name = "RATE")]
    pub rate: f64,
    /// Commands learned from fewer normal runs get no verdict.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub min_runs: u64,
    /// Steps, REST operations and RPC calls timed fewer times get no timing verdict.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub min_step_samples: u64,
}

/// Learn runs into a fingerprint store.
///
/// Fault-free runs refine the positive fingerprint of each command (its normal variants, their
/// frequencies and per-step timing). With `--negative`, runs recorded under a known fault become
/// negative fingerprints labelled with the fault, used to classify later anomalies: only those
/// with events in the fault's window (`--since`/`--until`, the whole trace without them) that
/// reached the faulty service (on the faulty host), as far as the trace names them. The fault kind
/// must be one of `butterfly faults`; with `--inventory`, the service and host must be its own.
///
/// With `--from-run`, a campaign's run directory is learned whole: transactions of the baseline
/// windows as positive, and transactions that failed or were anomalous while a fault was active
/// as negative, each labelled with that fault's kind, service and host from the run's report.
#[derive(Debug, clap::Args)]
#[command(after_help = LEARN_EXAMPLES)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["traces", "from_run"]))]
pub struct LearnArgs {
    /// Trace directories (holding `transactions.json`) or `transactions.json` files.
    #[arg(long, num_args = 1.., value_name = "DIR")]
    pub traces: Vec<PathBuf>,
    /// Campaign run directories (holding `report.json`, `workload.jsonl` and `trace/`).
    #[arg(long, num_args = 1.., value_name = "RUN_DIR", conflicts_with_all = ["traces", "negative"])]
    pub from_run: Vec<PathBuf>,
    /// The fingerprint store to create or refine.
    #[arg(long, value_name = "FP.json")]
    pub out: PathBuf,
    /// Learn the runs as negative fingerprints (recorded under a known fault).
    #[arg(long, requires_all = ["fault_kind", "service"])]
    pub negative: bool,
    /// The injected fault kind, e.g. `process-kill` (with `--negative`).
    #[arg(long, requires = "negative", value_name = "KIND")]
    pub fault_kind: Option<String>,
    /// The faulty service, e.g. `nova-compute` (with `--negative`).
    #[arg(long, requires = "negative", value_name = "SERVICE")]
    pub service: Option<String>,
    /// The faulty host, when the fault was host-specific (with `--negative`).
    #[arg(long, requires = "negative", value_name = "HOST")]
    pub host: Option<String>,
    /// An inventory (or a campaign) that the service and host must belong to (with `--negative`).
    #[arg(long, requires = "negative", value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// When the fault was injected, e.g. `2026-11-28T13:04:00Z` (with `--negative`).
    #[arg(long, requires = "negative", value_name = "TIME")]
    pub since: Option<jiff::Timestamp>,
    /// When the fault was reverted (with `--negative`).
    #[arg(long, requires = "negative", value_name = "TIME")]
    pub until: Option<jiff::Timestamp>,
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    match args.command {
        Subcommand::Learn(args) => learn(args),
        Subcommand::Calibrate(args) => calibrate(args),
    }
}

fn calibrate(args: CalibrateArgs) -> Result<Exit, CliError> {
    if !(args.rate > 0.0 && args.rate < 1.0) {
        return Err(CliError::InvalidInput(format!(
            "--rate {}: must be between 0 and 1 (exclusive), e.g. 0.01",
            args.rate
        )));
    }
    let mut store =
        Store::load(&args.store).map_err(|error| CliError::InvalidInput(error.to_string()))?;
    let mut runs = Vec::new();
    for path in &args.held_back {
        runs.push(read_traces(path)?);
    }
    store.config.min_runs = args.min_runs;
    store.config.min_step_samples = args.min_step_samples;
    let calibrated = store.calibrate(&runs, args.rate);
    store
        .save(&args.store)
        .map_err(|error| CliError::Setup(error.to_string()))?;
    println!(
        "calibrated on {} held-back run(s) at a false-alarm rate of {}",
        runs.len(),
        args.rate
    );
    for command in &calibrated.commands {
        let calibration = &command.calibration;
        let threshold = calibration.threshold.map_or_else(
            || "none".to_owned(),
            |t| format!("{:.3}", t.max(store.config.min_threshold)),
        );
        let vouched = if calibration.attainable_rate > args.rate {
            format!(
                " (too few runs to vouch for {}: at best {:.3}; the threshold is their maximum)",
                args.rate, calibration.attainable_rate
            )
        } else {
            String::new()
        };
        println!(
            "  {}: {} run(s), threshold {threshold} (learned {:.3}), timing scale {:.2}{vouched}",
            command.command, command.runs, command.learned_threshold, calibration.timing_scale
        );
    }
    if let Some(scale) = store.answer_scale {
        println!("  answer times: scale {scale:.2}");
    }
    if calibrated.not_judged > 0 {
        println!(
            "  {} held-back transaction(s) of commands with fewer than {} learned run(s): no verdict on those commands",
            calibrated.not_judged, args.min_runs
        );
    }
    if let Some(rule) = &calibrated.run_rule {
        println!(
            "  run rule: a run with more than {} anomalous transaction(s) is failed ({} run(s))",
            rule.max_anomalous, rule.runs
        );
    }
    print_store_summary(&store, &args.store);
    Ok(Exit::Pass)
}

fn learn(args: LearnArgs) -> Result<Exit, CliError> {
    if !args.from_run.is_empty() {
        return learn_runs(&args.from_run, &args.out);
    }
    let label = match (args.negative, &args.fault_kind, &args.service) {
        (true, Some(fault_kind), Some(service)) => Some(check_label(
            fault_kind,
            service,
            args.host.as_deref(),
            args.inventory.as_deref(),
        )?),
        _ => None,
    };
    let window = Window {
        start: args.since.unwrap_or(jiff::Timestamp::MIN),
        end: args.until.unwrap_or(jiff::Timestamp::MAX),
    };
    if window.start >= window.end {
        return Err(CliError::InvalidInput(
            "--since must be before --until".to_owned(),
        ));
    }
    let mut store =
        Store::load_or_new(&args.out).map_err(|error| CliError::InvalidInput(error.to_string()))?;
    let mut transactions = Vec::new();
    for path in &args.traces {
        transactions.extend(read_traces(path)?);
    }
    let touch = label.as_ref().map(|label| {
        let hosts: Vec<String> = label.host.iter().cloned().collect();
        Touch::new(Some(&label.service), &hosts, &transactions)
    });
    let (mut known, mut new, mut negative, mut skipped, mut untouched) = (0u64, 0, 0, 0, 0);
    for transaction in &transactions {
        let learned = match (&label, &touch) {
            (Some(label), Some(touch)) => {
                // Background traffic goes on to be counted as skipped.
                let touched = overlaps(transaction, window) && touch.touched(transaction);
                if !transaction.background && !touched {
                    untouched += 1;
                    continue;
                }
                store.learn_negative(transaction, label)
            }
            _ => store.learn_positive(transaction),
        };
        match learned {
            Learned::Skipped => skipped += 1,
            Learned::Known { .. } => known += 1,
            Learned::NewVariant { .. } => new += 1,
            Learned::Negative { .. } => negative += 1,
        }
    }
    store
        .save(&args.out)
        .map_err(|error| CliError::Setup(error.to_string()))?;
    if label.is_some() {
        println!(
            "learned {negative} run(s) as negative fingerprints ({untouched} outside the fault's window or away from its service and host, {skipped} background skipped)"
        );
    } else {
        println!(
            "learned {} run(s): {new} new variant(s), {known} matching a known variant ({skipped} background skipped)",
            new + known
        );
    }
    print_store_summary(&store, &args.out);
    Ok(Exit::Pass)
}

/// The label of `--negative`, checked: the kind against the fault catalog, and the service and
/// host against the inventory when one is given. Every problem is reported at once.
fn check_label(
    fault_kind: &str,
    service: &str,
    host: Option<&str>,
    inventory: Option<&Path>,
) -> Result<FaultLabel, CliError> {
    let mut problems = Vec::new();
    let kind = FaultKind::from_name(fault_kind);
    if kind.is_none() {
        let known: Vec<&str> = FAULT_KINDS.iter().map(|kind| kind.name()).collect();
        problems.push(format!(
            "--fault-kind {fault_kind:?} is not a fault kind; {}",
            scenarios::diag::suggestion(fault_kind, &known)
        ));
    }
    if service.trim().is_empty() {
        problems.push("--service must not be empty".to_owned());
    }
    if let Some(path) = inventory {
        let testbed = match scenarios::check_file(path).1 {
            Ok(scenarios::Checked::Inventory(testbed)) => testbed,
            Ok(scenarios::Checked::Campaign(campaign)) => campaign.testbed,
            Err(diagnostics) => {
                return Err(CliError::InvalidInput(format!(
                    "{diagnostics}\n--inventory {}: not a valid inventory or campaign",
                    path.display()
                )));
            }
        };
        let hosts: Vec<&str> = testbed.hosts.iter().map(|h| h.name.as_str()).collect();
        let services: Vec<&str> = testbed.services.iter().map(|s| s.name.as_str()).collect();
        // A whole-host fault is labelled with its hosts, comma-separated, instead of a service.
        let names_hosts = kind.is_some_and(|kind| !kind.needs_service())
            && service.split(',').all(|name| hosts.contains(&name));
        let known_service = testbed.service(service);
        if known_service.is_none() && !names_hosts && !service.trim().is_empty() {
            problems.push(format!(
                "--service {service:?} is not a service of {}; {}",
                path.display(),
                scenarios::diag::suggestion(service, &services)
            ));
        }
        if let Some(name) = host {
            match testbed.host(name) {
                None => problems.push(format!(
                    "--host {name:?} is not a host of {}; {}",
                    path.display(),
                    scenarios::diag::suggestion(name, &hosts)
                )),
                Some(host) => {
                    if let Some(known) = known_service
                        && !known.runs_on(host)
                    {
                        problems.push(format!(
                            "--host {name:?}: {service} does not run there according to {}",
                            path.display()
                        ));
                    }
                }
            }
        }
    }
    if !problems.is_empty() {
        return Err(CliError::InvalidInput(problems.join("\n")));
    }
    Ok(FaultLabel {
        fault_kind: fault_kind.to_owned(),
        service: service.to_owned(),
        host: host.map(str::to_owned),
    })
}

fn print_store_summary(store: &Store, path: &Path) {
    let variants: usize = store
        .commands
        .values()
        .map(|command| command.variants.len())
        .sum();
    println!(
        "{}: {} command(s), {variants} variant(s), {} negative fingerprint(s)",
        path.display(),
        store.commands.len(),
        store.negatives.len()
    );
}

/// Learns campaign run directories: baselines as positive, faulty transactions as negative.
fn learn_runs(run_dirs: &[PathBuf], out: &Path) -> Result<Exit, CliError> {
    let mut store =
        Store::load_or_new(out).map_err(|error| CliError::InvalidInput(error.to_string()))?;
    for run_dir in run_dirs {
        let report = reports::read_run(run_dir)
            .map_err(|error| CliError::InvalidInput(error.to_string()))?;
        let records =
            read_records(&run_dir.join("workload.jsonl")).map_err(CliError::InvalidInput)?;
        let transactions = read_traces(&run_dir.join("trace"))?;
        let learned = learn_run(&mut store, &report, &records, &transactions);
        println!(
            "{}: learned {} baseline run(s) ({} new variant(s)) and {} negative(s)",
            run_dir.display(),
            learned.known + learned.new_variants,
            learned.new_variants,
            learned.negatives.values().sum::<u64>()
        );
        for (label, count) in &learned.negatives {
            let host = label
                .host
                .as_deref()
                .map(|host| format!(" on {host}"))
                .unwrap_or_default();
            println!(
                "  {count} under {} of {}{host}",
                label.fault_kind, label.service
            );
        }
        if learned.unaffected + learned.untouched + learned.ambiguous > 0 {
            println!(
                "  not learned: {} unaffected by the fault, {} away from its service and host, {} under several faults at once",
                learned.unaffected, learned.untouched, learned.ambiguous
            );
        }
    }
    store
        .save(out)
        .map_err(|error| CliError::Setup(error.to_string()))?;
    print_store_summary(&store, out);
    Ok(Exit::Pass)
}

/// Reads the transactions of a trace directory (its `transactions.json`) or of a
/// `transactions.json` file, with the tracer's reader.
pub(crate) fn read_traces(path: &Path) -> Result<Vec<Transaction>, CliError> {
    let file = if path.is_dir() {
        path.join("transactions.json")
    } else {
        path.to_owned()
    };
    // A path that exists but is no regular file is left to the bounded reader, which says what
    // it is.
    if !file.exists() {
        return Err(CliError::InvalidInput(format!(
            "{}: no such trace (expected a trace directory with transactions.json)",
            file.display()
        )));
    }
    tracer::import::read_transactions(&file)
        .map_err(|error| CliError::InvalidInput(error.to_string()))
}
