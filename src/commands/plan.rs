//! `butterfly plan FILE`: print the expanded campaign.

use std::path::PathBuf;

use crate::exit::{CliError, Exit};

/// Print the expanded campaign: every experiment and repetition with its resolved target hosts
/// and timeline (baseline, inject, revert, recovery). Deterministic for a given seed.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  butterfly plan scenarios/examples/mixed.yaml\n  butterfly plan --seed 7 --json scenarios/examples/mixed.yaml\n  butterfly plan --dry-run scenarios/examples/ci-smoke.yaml"
)]
pub struct Args {
    /// The campaign file.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Override the campaign seed (target picks derive from it).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also print, for every repetition and host, the exact commands the injector would send:
    /// preflight, dead-man timer, inject, verify, revert, verify-reverted.
    #[arg(long, conflicts_with = "json")]
    pub dry_run: bool,
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let mut campaign = scenarios::load(&args.file)
        .map_err(|diagnostics| CliError::InvalidInput(diagnostics.to_string()))?;
    if let Some(seed) = args.seed {
        campaign.timing.seed = seed;
        for (index, experiment) in campaign.experiments.iter_mut().enumerate() {
            experiment.target.seed = scenarios::plan::mix(seed, index as u64);
        }
    }
    let plan = scenarios::plan::expand(&campaign);
    if args.json {
        let text = serde_json::to_string_pretty(&plan)
            .map_err(|error| CliError::Setup(format!("cannot render the plan: {error}")))?;
        println!("{text}");
    } else {
        print!("{}", plan.render());
    }
    if args.dry_run {
        print!(
            "{}",
            dry_run(&campaign, &plan).map_err(CliError::InvalidInput)?
        );
    }
    Ok(Exit::Pass)
}

/// The commands the injector would send for every repetition and host of `plan`, as
/// `plan --dry-run` prints them; an error when the injector would refuse a fault.
pub fn dry_run(
    campaign: &scenarios::model::Campaign,
    plan: &scenarios::plan::Plan,
) -> Result<String, String> {
    let grace = injector::PlanOptions::default().grace;
    let mut out = String::new();
    for (index, run) in plan.runs.iter().enumerate() {
        let experiment = campaign
            .experiments
            .iter()
            .find(|e| e.name == run.experiment)
            .expect("plans are expanded from the campaign's experiments");
        out.push_str(&format!("\n## {} #{}\n", run.experiment, run.repetition));
        for (position, host) in run.hosts.iter().enumerate() {
            // A fixed id per step keeps the output stable; a real run draws a random one.
            let id = format!("{:08x}", index * 256 + position);
            let fault = crate::runner::fault_plan(campaign, experiment, host.as_str(), &id)?;
            out.push_str(&fault.dry_run(grace).to_string());
        }
    }
    Ok(out)
}
