//! `butterfly validate FILE...`: check campaigns and print every problem with its location.

use std::path::PathBuf;

use crate::exit::{CliError, Exit};

/// Check campaign files and print every problem with its location.
///
/// Exit 0 when every file is valid, 2 with all diagnostics when one is not.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  butterfly validate scenarios/examples/kill-conductor.yaml\n  butterfly validate scenarios/examples/*.yaml"
)]
pub struct Args {
    /// Campaign files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let mut problems = Vec::new();
    for file in &args.files {
        match scenarios::load(file) {
            Ok(campaign) => {
                let repetitions: u32 = campaign.experiments.iter().map(|e| e.repetitions).sum();
                println!(
                    "{}: ok ({} experiment(s), {} run(s), {} host(s))",
                    file.display(),
                    campaign.experiments.len(),
                    repetitions,
                    campaign.testbed.hosts.len()
                );
            }
            Err(diagnostics) => {
                problems.push(format!("{diagnostics}"));
                problems.push(format!(
                    "{}: {} problem(s)",
                    file.display(),
                    diagnostics.len()
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(Exit::Pass)
    } else {
        Err(CliError::InvalidInput(problems.join("\n")))
    }
}
