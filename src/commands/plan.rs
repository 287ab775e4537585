//! `butterfly plan FILE`: print the expanded campaign.

use std::path::PathBuf;

use crate::exit::{CliError, Exit};

/// Print the expanded campaign: every experiment and repetition with its resolved target hosts
/// and timeline (baseline, inject, revert, recovery). Deterministic for a given seed.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  butterfly plan scenarios/examples/mixed.yaml\n  butterfly plan --seed 7 --json scenarios/examples/mixed.yaml\n  butterfly plan --dry-run scenarios/examples/ci-smoke.yaml\n  butterfly plan --dry-run --json scenarios/examples/ci-smoke.yaml"
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
    /// With `--json`, each run gets `commands`: `[{host, kind, steps: [{phase, command}]}]`.
    #[arg(long)]
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
    let commands = if args.dry_run {
        Some(dry_runs(&campaign, &plan).map_err(CliError::InvalidInput)?)
    } else {
        None
    };
    if args.json {
        let mut json = serde_json::to_value(&plan)
            .map_err(|error| CliError::Setup(format!("cannot render the plan: {error}")))?;
        if let (Some(commands), Some(runs)) = (&commands, json["runs"].as_array_mut()) {
            for (run, dry_runs) in runs.iter_mut().zip(commands) {
                run["commands"] = dry_runs.iter().map(dry_run_json).collect();
            }
        }
        let text = serde_json::to_string_pretty(&json)
            .map_err(|error| CliError::Setup(format!("cannot render the plan: {error}")))?;
        println!("{text}");
        return Ok(Exit::Pass);
    }
    print!("{}", plan.render());
    if let Some(commands) = &commands {
        print!("{}", render_dry_runs(&plan, commands));
    }
    Ok(Exit::Pass)
}

/// For every run of the plan, the commands each of its hosts would receive; an error when the
/// injector would refuse a fault.
pub fn dry_runs(
    campaign: &scenarios::model::Campaign,
    plan: &scenarios::plan::Plan,
) -> Result<Vec<Vec<injector::DryRun>>, String> {
    let options = injector::PlanOptions::default();
    plan.runs
        .iter()
        .enumerate()
        .map(|(index, run)| {
            let experiment = campaign
                .experiments
                .iter()
                .find(|e| e.name == run.experiment)
                .expect("plans are expanded from the campaign's experiments");
            run.hosts
                .iter()
                .enumerate()
                .map(|(position, host)| {
                    // A fixed id per step keeps the output stable; a real run draws a random one.
                    let id = format!("{:08x}", index * 256 + position);
                    let fault =
                        crate::runner::fault_plan(campaign, experiment, host.as_str(), &id)?;
                    Ok(fault.dry_run(options.grace))
                })
                .collect()
        })
        .collect()
}

/// The commands the injector would send for every repetition and host of `plan`, as
/// `plan --dry-run` prints them; an error when the injector would refuse a fault.
pub fn dry_run(
    campaign: &scenarios::model::Campaign,
    plan: &scenarios::plan::Plan,
) -> Result<String, String> {
    Ok(render_dry_runs(plan, &dry_runs(campaign, plan)?))
}

fn render_dry_runs(plan: &scenarios::plan::Plan, commands: &[Vec<injector::DryRun>]) -> String {
    let mut out = String::new();
    for (run, dry_runs) in plan.runs.iter().zip(commands) {
        out.push_str(&format!("\n## {} #{}\n", run.experiment, run.repetition));
        for dry_run in dry_runs {
            out.push_str(&dry_run.to_string());
        }
    }
    out
}

/// One host's commands as JSON: `{host, kind, steps: [{phase, command}]}`.
fn dry_run_json(dry_run: &injector::DryRun) -> serde_json::Value {
    let steps: Vec<_> = dry_run
        .steps
        .iter()
        .map(|(phase, command)| serde_json::json!({"phase": phase, "command": command}))
        .collect();
    serde_json::json!({"host": dry_run.host, "kind": dry_run.kind, "steps": steps})
}
