//! `butterfly validate FILE...`: check campaigns and print every problem with its location.

use std::path::PathBuf;

use scenarios::{Checked, Document};

use crate::exit::{CliError, Exit};

/// Check campaign files and print every problem with its location.
///
/// An inventory among the files (a YAML with `hosts` and no `experiments`, as `butterfly testbed
/// up` writes) is checked as an inventory. Exit 0 when every file is valid, 2 with all diagnostics
/// when one is not.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  butterfly validate scenarios/examples/kill-conductor.yaml\n  butterfly validate scenarios/examples/*.yaml\n  butterfly validate /var/lib/butterfly/testbed/inventory.yaml"
)]
pub struct Args {
    /// Campaign (or inventory) files to check.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let mut problems = Vec::new();
    for file in &args.files {
        let (kind, checked) = scenarios::check_file(file);
        match checked {
            Ok(Checked::Campaign(campaign)) => {
                let repetitions: u32 = campaign.experiments.iter().map(|e| e.repetitions).sum();
                println!(
                    "{}: ok ({} experiment(s), {} run(s), {} host(s))",
                    file.display(),
                    campaign.experiments.len(),
                    repetitions,
                    campaign.testbed.hosts.len()
                );
            }
            Ok(Checked::Inventory(inventory)) => {
                println!(
                    "{}: ok, is an inventory ({} host(s), {} service(s))",
                    file.display(),
                    inventory.hosts.len(),
                    inventory.services.len()
                );
            }
            Err(diagnostics) => {
                problems.push(format!("{diagnostics}"));
                let what = match kind {
                    Document::Campaign => "",
                    Document::Inventory => "is an inventory, ",
                };
                problems.push(format!(
                    "{}: {what}{} problem(s)",
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
