//! `butterfly fingerprint learn`: learn positive (fault-free) or negative (known fault)
//! fingerprints from trace directories into a fingerprint store, incrementally.

use std::path::{Path, PathBuf};

use fingerprint::{FaultLabel, Learned, Store};
use tracer::event::Transaction;

use crate::exit::{CliError, Exit};
use crate::runner::learn::learn_run;
use crate::runner::workload::read_records;

const LEARN_EXAMPLES: &str = "\
Examples:
  butterfly fingerprint learn --traces runs/baseline-1/trace runs/baseline-2/trace --out fp.json
  butterfly fingerprint learn --traces runs/kill-compute/trace --out fp.json \\
      --negative --fault-kind process-kill --service nova-compute --host compute1
  butterfly fingerprint learn --from-run runs/20261128T130335Z-nova-faults --out fp.json";

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
}

/// Learn runs into a fingerprint store.
///
/// Fault-free runs refine the positive fingerprint of each command (its normal variants, their
/// frequencies and per-step timing). With `--negative`, runs recorded under a known fault become
/// negative fingerprints labelled with the fault, used to classify later anomalies.
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
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    match args.command {
        Subcommand::Learn(args) => learn(args),
    }
}

fn learn(args: LearnArgs) -> Result<Exit, CliError> {
    if !args.from_run.is_empty() {
        return learn_runs(&args.from_run, &args.out);
    }
    let label = match (args.negative, args.fault_kind, args.service) {
        (true, Some(fault_kind), Some(service)) => {
            if fault_kind.trim().is_empty() || service.trim().is_empty() {
                return Err(CliError::InvalidInput(
                    "--fault-kind and --service must not be empty".to_owned(),
                ));
            }
            Some(FaultLabel {
                fault_kind,
                service,
                host: args.host,
            })
        }
        _ => None,
    };
    let mut store =
        Store::load_or_new(&args.out).map_err(|error| CliError::InvalidInput(error.to_string()))?;
    let (mut known, mut new, mut negative, mut skipped) = (0u64, 0u64, 0u64, 0u64);
    for path in &args.traces {
        for transaction in read_traces(path)? {
            let learned = match &label {
                Some(label) => store.learn_negative(&transaction, label),
                None => store.learn_positive(&transaction),
            };
            match learned {
                Learned::Skipped => skipped += 1,
                Learned::Known { .. } => known += 1,
                Learned::NewVariant { .. } => new += 1,
                Learned::Negative { .. } => negative += 1,
            }
        }
    }
    store
        .save(&args.out)
        .map_err(|error| CliError::Setup(error.to_string()))?;
    if label.is_some() {
        println!(
            "learned {negative} run(s) as negative fingerprints ({skipped} background skipped)"
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
        if learned.unaffected + learned.ambiguous > 0 {
            println!(
                "  not learned: {} unaffected by the fault, {} under several faults at once",
                learned.unaffected, learned.ambiguous
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
