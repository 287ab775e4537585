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
    /// A campaign with `remediation:` also gets every command of its runbooks, for each suspect
    /// and host they may act on.
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
    let remediation = if args.dry_run {
        remediation_dry_runs(&campaign).map_err(CliError::InvalidInput)?
    } else {
        Vec::new()
    };
    if args.json {
        let mut json = serde_json::to_value(&plan)
            .map_err(|error| CliError::Setup(format!("cannot render the plan: {error}")))?;
        if let (Some(commands), Some(runs)) = (&commands, json["runs"].as_array_mut()) {
            for (run, dry_runs) in runs.iter_mut().zip(commands) {
                run["commands"] = dry_runs.iter().map(dry_run_json).collect();
            }
        }
        if args.dry_run && campaign.remediation.is_some() {
            json["remediation"] = remediation.iter().map(RemediationDryRun::json).collect();
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
    if !remediation.is_empty() {
        println!("\n## remediation");
        for dry_run in &remediation {
            print!("{}", dry_run.render());
        }
    }
    Ok(Exit::Pass)
}

/// What a runbook would run on one suspect: its evidence steps and its actions.
pub struct RemediationDryRun {
    runbook: String,
    service: Option<String>,
    host: String,
    diagnostics: Vec<injector::DiagnosticPlan>,
    actions: Vec<injector::ActionPlan>,
}

impl RemediationDryRun {
    fn render(&self) -> String {
        let mut out = format!(
            "\nrunbook {} for {} on {}\n",
            self.runbook,
            self.service.as_deref().unwrap_or("any suspect"),
            self.host
        );
        for step in &self.diagnostics {
            out.push_str(&format!(
                "  collect {} on {}: {}\n",
                step.name, step.host.name, step.script
            ));
        }
        for action in &self.actions {
            out.push_str(&action.dry_run());
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let diagnostics: Vec<_> = self
            .diagnostics
            .iter()
            .map(|d| serde_json::json!({"collect": d.name, "host": d.host.name, "command": d.script}))
            .collect();
        let actions: Vec<_> = self
            .actions
            .iter()
            .map(|a| {
                serde_json::json!({"action": a.action, "host": a.host.name, "service": a.service,
                    "command": a.script, "settle": a.settle})
            })
            .collect();
        serde_json::json!({"runbook": self.runbook, "service": self.service, "host": self.host,
            "diagnostics": diagnostics, "actions": actions})
    }
}

/// For every runbook, on every suspect it may answer (the service its `when:` names, the
/// services of the function it names, else the experiments' target services) and every host
/// that suspect runs on: the commands it would send. Alarms are only known at run time, so this
/// is every command a runbook can send in this campaign.
pub fn remediation_dry_runs(
    campaign: &scenarios::model::Campaign,
) -> Result<Vec<RemediationDryRun>, String> {
    let Some(remediation) = &campaign.remediation else {
        return Ok(Vec::new());
    };
    let testbed = &campaign.testbed;
    let targeted: Vec<&str> = campaign
        .experiments
        .iter()
        .filter_map(|e| e.target.service.as_ref().map(|s| s.name.as_str()))
        .collect();
    let mut out = Vec::new();
    let mut counter = 0u32;
    for runbook in &remediation.runbooks {
        let suspects: Vec<&scenarios::model::Service> = testbed
            .services
            .iter()
            .filter(
                |service| match (&runbook.when.service, runbook.when.function) {
                    (Some(name), _) => &service.name == name,
                    (None, Some(function)) => service.function == Some(function),
                    (None, None) => targeted.contains(&service.name.as_str()),
                },
            )
            .collect();
        for suspect in suspects {
            for host in testbed.hosts.iter().filter(|h| suspect.runs_on(h)) {
                let mut next_id = || {
                    counter += 1;
                    format!("{:08x}", 0xa000_0000u32 + counter)
                };
                let crate::runner::remediate::RunbookPlans {
                    diagnostics,
                    actions,
                } = crate::runner::remediate::runbook_plans(
                    testbed,
                    runbook,
                    Some(suspect),
                    host,
                    0,
                    &mut next_id,
                )?;
                out.push(RemediationDryRun {
                    runbook: runbook.name.to_string(),
                    service: Some(suspect.name.to_string()),
                    host: host.name.to_string(),
                    diagnostics,
                    actions,
                });
            }
        }
    }
    Ok(out)
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

/// The commands the injector would send for every repetition and host of `plan`, and those of
/// every runbook, as `plan --dry-run` prints them; an error when the injector would refuse a
/// fault or an action.
pub fn dry_run(
    campaign: &scenarios::model::Campaign,
    plan: &scenarios::plan::Plan,
) -> Result<String, String> {
    let mut out = render_dry_runs(plan, &dry_runs(campaign, plan)?);
    for dry_run in remediation_dry_runs(campaign)? {
        out.push_str(&dry_run.render());
    }
    Ok(out)
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
