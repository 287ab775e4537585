//! `butterfly recover [RUN_DIR]`: revert every fault a run's journal does not record as reverted.

use std::path::{Path, PathBuf};

use injector::journal::{self, JOURNAL_FILE};
use injector::transport::{Connections, TransportSettings};

use crate::exit::{CliError, Exit};

/// Revert every fault of a run that is not recorded as reverted, and report what was done.
///
/// Reads RUN_DIR/faults.jsonl (the latest run under ./runs when RUN_DIR is omitted), connects to
/// each host named there and runs the journaled revert, then checks that the host is back.
/// Running it again is harmless: reverted faults are recorded and skipped.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  butterfly recover runs/ci-smoke-20261128T100000Z\n  butterfly recover --dry-run"
)]
pub struct Args {
    /// The run directory (default: the most recent one under ./runs with a fault journal).
    pub run_dir: Option<PathBuf>,
    /// Print the pending faults and their revert commands without running them.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let run_dir = match args.run_dir {
        Some(dir) => dir,
        None => latest_run(Path::new("runs"))?,
    };
    if !run_dir.join(JOURNAL_FILE).is_file() {
        return Err(CliError::InvalidInput(format!(
            "{} has no fault journal ({JOURNAL_FILE})",
            run_dir.display()
        )));
    }
    let records = journal::read(&run_dir).map_err(|e| CliError::InvalidInput(e.to_string()))?;
    let pending = journal::pending(&records);
    if pending.is_empty() {
        println!("{}: nothing to recover", run_dir.display());
        return Ok(Exit::Pass);
    }
    if args.dry_run {
        for fault in pending.iter().rev() {
            println!(
                "{} {} on {}: {}",
                fault.plan.id,
                fault.plan.kind,
                fault.plan.host.name,
                fault
                    .revert
                    .as_deref()
                    .map(|script| injector::shell::wrap(script, fault.plan.host.sudo))
                    .unwrap_or_else(|| "one-shot, nothing to revert".into())
            );
        }
        return Ok(Exit::Pass);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Setup(format!("cannot start the async runtime: {e}")))?;
    let report = runtime.block_on(async {
        let connections = Connections::new(TransportSettings::default());
        let report =
            injector::recover(&run_dir, &connections, &injector::EngineSettings::default()).await;
        connections.close().await;
        report
    });
    let report = report.map_err(|e| CliError::Setup(e.to_string()))?;
    let mut failed = 0;
    for item in &report {
        match &item.outcome {
            Ok(what) => println!("{} {} on {}: {what}", item.id, item.kind, item.host),
            Err(error) => {
                failed += 1;
                println!(
                    "{} {} on {}: FAILED: {error}",
                    item.id, item.kind, item.host
                );
            }
        }
    }
    if failed > 0 {
        return Err(CliError::Setup(format!(
            "{failed} of {} fault(s) could not be reverted; fix the hosts or run recover again",
            report.len()
        )));
    }
    println!("{}: {} fault(s) recovered", run_dir.display(), report.len());
    Ok(Exit::Pass)
}

/// The most recently modified directory under `runs` that holds a fault journal.
fn latest_run(runs: &Path) -> Result<PathBuf, CliError> {
    let entries = std::fs::read_dir(runs).map_err(|e| {
        CliError::InvalidInput(format!(
            "no RUN_DIR given and cannot read {}: {e}",
            runs.display()
        ))
    })?;
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.join(JOURNAL_FILE).is_file())
        .max_by_key(|path| {
            std::fs::metadata(path.join(JOURNAL_FILE))
                .and_then(|m| m.modified())
                .ok()
        })
        .ok_or_else(|| {
            CliError::InvalidInput(format!(
                "no run with a fault journal under {}",
                runs.display()
            ))
        })
}
