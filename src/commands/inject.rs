//! `butterfly inject KIND --target SERVICE[@HOST]`: one fault, now, for an operator. The fault is
//! written as a one-experiment campaign in memory and validated like any campaign file (same
//! checks, same located diagnostics), then injected through the same engine: journaled in a run
//! directory, held for its duration, reverted at the end or on Ctrl-C, and left to
//! `butterfly recover RUN_DIR` if this process dies.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use injector::transport::{Connections, TransportSettings};
use injector::{EngineSettings, FaultInput, HostSpec, Injector, Journal, PlanOptions};
use scenarios::model::Campaign;
use userinput::file::FileKind;

use crate::exit::{CliError, Exit};

/// Where `butterfly testbed up` writes its inventory.
const DEFAULT_INVENTORY: &str = "/var/lib/butterfly/testbed/inventory.yaml";

/// How the in-memory campaign is named in diagnostics.
const COMMAND_LINE: &str = "inject (command line)";

/// Inject one fault now, hold it for its duration and revert it.
///
/// The fault is validated exactly as a campaign's would be (its parameters are a campaign
/// fault's keys, `--param K=V` each; V is read as YAML, so `ports=[5672,5671]` is a list). It
/// is journaled in a run directory (printed first): if this process dies, `butterfly recover
/// RUN_DIR` reverts it. Ctrl-C or SIGTERM reverts at once (exit 4). Prints what it did, how long
/// the fault took to be in effect and, for faults a supervisor heals, how long that took.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  butterfly inject process-kill --target nova-conductor --duration 30s\n  butterfly inject process-freeze --target nova-scheduler@controller --param method=sigstop --duration 20s\n  butterfly inject network-loss --target rabbitmq --param percent=30 --param 'ports=[5672]' --duration 1m\n  butterfly inject service-stop --target nova-conductor --inventory kolla-inventory.yaml --dry-run\n  butterfly inject disk-fill --target @compute1 --param path=/srv --param percent=80 --duration 30s"
)]
pub struct Args {
    /// The fault kind (`butterfly faults` lists them).
    #[arg(value_name = "KIND")]
    pub kind: String,
    /// The service, optionally on one host (`nova-conductor@controller`), or `@HOST` for a
    /// fault on a host rather than a service (disk, CPU, memory, network).
    #[arg(long, value_name = "SERVICE[@HOST]")]
    pub target: String,
    /// A fault parameter as a campaign writes it (`signal=TERM`, `percent=30`); repeatable.
    #[arg(long = "param", value_name = "K=V")]
    pub params: Vec<String>,
    /// How long the fault stays in effect.
    #[arg(long, default_value = "30s")]
    pub duration: String,
    /// Print the exact commands instead of running them.
    #[arg(long)]
    pub dry_run: bool,
    /// The inventory naming the hosts and services.
    #[arg(long, value_name = "INV", default_value = DEFAULT_INVENTORY)]
    pub inventory: PathBuf,
    /// The run directory for the journal (default: runs/inject-KIND-TIMESTAMP).
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// Allow targets refused by default (as `allow_destructive: true` on an experiment).
    #[arg(long)]
    pub allow_destructive: bool,
    /// Run the commands on this machine instead of over SSH (the target host is this one).
    #[arg(long)]
    pub local: bool,
}

/// The target as given: a service and/or a host.
#[derive(Debug, PartialEq)]
struct Target<'a> {
    service: Option<&'a str>,
    host: Option<&'a str>,
}

fn parse_target(text: &str) -> Result<Target<'_>, CliError> {
    let (service, host) = match text.split_once('@') {
        Some((service, host)) => (service, Some(host)),
        None => (text, None),
    };
    let target = Target {
        service: Some(service).filter(|s| !s.is_empty()),
        host,
    };
    if target.service.is_none() && target.host.is_none_or(str::is_empty) {
        return Err(CliError::InvalidInput(
            "--target names nothing; write SERVICE, SERVICE@HOST or @HOST".into(),
        ));
    }
    Ok(target)
}

/// The one-experiment campaign, as JSON (which is YAML): every value the operator typed is a
/// JSON string or a YAML-parsed value, never spliced into YAML text.
fn campaign_text(args: &Args, inventory: &Path) -> Result<String, CliError> {
    let target = parse_target(&args.target)?;
    let mut fault = serde_json::Map::new();
    fault.insert("kind".into(), args.kind.clone().into());
    for param in &args.params {
        let Some((key, value)) = param.split_once('=') else {
            return Err(CliError::InvalidInput(format!(
                "--param {} is not K=V",
                userinput::echo::quoted(param)
            )));
        };
        let parsed: serde_json::Value = serde_saphyr::from_str(value)
            .ok()
            .filter(|v: &serde_json::Value| !v.is_object() && !v.is_null())
            .unwrap_or_else(|| value.into());
        fault.insert(key.trim().to_owned(), parsed);
    }
    let mut selector = serde_json::Map::new();
    if let Some(service) = target.service {
        selector.insert("service".into(), service.into());
    }
    if let Some(host) = target.host {
        selector.insert("hosts".into(), serde_json::json!([host]));
    }
    let campaign = serde_json::json!({
        "version": 1,
        "name": format!("inject-{}", args.kind),
        "testbed": { "inventory": inventory.display().to_string() },
        "experiments": [{
            "name": "inject",
            "fault": fault,
            "target": selector,
            "duration": args.duration,
            "allow_destructive": args.allow_destructive,
        }],
    });
    serde_json::to_string_pretty(&campaign)
        .map_err(|e| CliError::Setup(format!("cannot write the campaign: {e}")))
}

/// Validates the in-memory campaign as `butterfly validate` would a file.
fn validated(args: &Args) -> Result<Campaign, CliError> {
    let inventory = std::path::absolute(&args.inventory)
        .map_err(|e| CliError::InvalidInput(format!("{}: {e}", args.inventory.display())))?;
    let text = campaign_text(args, &inventory)?;
    let read = |path: &Path| userinput::file::read_to_string(path, FileKind::INVENTORY);
    // The diagnostics speak of the campaign's keys; here they are flags.
    scenarios::load_bytes(Path::new(COMMAND_LINE), text.as_bytes(), &read).map_err(|diagnostics| {
        CliError::InvalidInput(diagnostics.to_string().replace(
            "set `allow_destructive: true` on the experiment if you really mean it",
            "pass --allow-destructive if you really mean it",
        ))
    })
}

/// The plan of the campaign's one fault on its one host.
fn plan(args: &Args, campaign: &Campaign) -> Result<injector::FaultPlan, CliError> {
    let experiment = &campaign.experiments[0];
    let host = match experiment.target.candidates.as_slice() {
        [host] => host,
        many => {
            return Err(CliError::InvalidInput(format!(
                "{} runs on several hosts ({}); name one: --target {}@HOST",
                args.target,
                many.iter()
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                args.target
            )));
        }
    };
    let host = campaign
        .testbed
        .host(host.as_str())
        .ok_or_else(|| CliError::InvalidInput(format!("host {host} is not in the inventory")))?;
    let spec = if args.local {
        HostSpec::local(host.name.as_str())
    } else {
        HostSpec::from(host)
    };
    let options = PlanOptions {
        allow_destructive: experiment.allow_destructive,
        ..PlanOptions::default()
    };
    FaultInput {
        id: &injector::new_fault_id(),
        fault: &experiment.fault,
        host: &spec,
        service: experiment.target.service.as_ref(),
        duration: experiment.duration,
    }
    .plan(&options)
    .map_err(|error| CliError::InvalidInput(format!("{}: {error}", experiment.fault.kind())))
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let campaign = validated(&args)?;
    let plan = plan(&args, &campaign)?;
    let settings = EngineSettings::default();
    let target = match campaign.experiments[0].target.service.as_ref() {
        Some(service) => format!(
            "{} ({}) on {}",
            service.name,
            service.runtime.describe(),
            plan.host.name
        ),
        None => plan.host.name.clone(),
    };
    if args.dry_run {
        println!("# {} on {target}, for {:?}", plan.kind, plan.duration);
        print!("{}", plan.dry_run(settings.verify_timeout));
        return Ok(Exit::Pass);
    }
    let run_dir = args.run_dir.clone().unwrap_or_else(|| {
        let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ");
        PathBuf::from("runs").join(format!("inject-{}-{stamp}", plan.kind))
    });
    std::fs::create_dir_all(&run_dir)
        .map_err(|e| CliError::Setup(format!("cannot create {}: {e}", run_dir.display())))?;
    let journal = Journal::open(&run_dir).map_err(|e| CliError::Setup(e.to_string()))?;
    println!(
        "journal: {} (if this process dies: butterfly recover {})",
        run_dir.display(),
        run_dir.display()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Setup(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let connections = Arc::new(Connections::new(TransportSettings::default()));
        let injector = Injector::new(connections.clone(), Arc::new(journal), settings);
        let result = hold(&injector, &plan, &target).await;
        connections.close().await;
        result
    })
}

/// Injects, holds until the duration passes or a signal comes, reverts; says what happened.
async fn hold(
    injector: &Injector,
    plan: &injector::FaultPlan,
    target: &str,
) -> Result<Exit, CliError> {
    let interrupted = injector::shutdown_signal();
    tokio::pin!(interrupted);
    let active = tokio::select! {
        active = injector.inject(plan) => active
            .map_err(|e| CliError::Setup(format!("{} on {target}: {e}", plan.kind)))?,
        () = &mut interrupted => {
            // The inject may have been under way: whatever the journal holds is reverted by
            // `recover`, which also knows when nothing was applied.
            return Err(CliError::Interrupted(format!(
                "before {} was in effect; run `butterfly recover` on the journal to be sure nothing remains",
                plan.kind
            )));
        }
    };
    println!(
        "{} on {target}: in effect after {} ms ({})",
        plan.kind,
        active.inject_latency.as_millis(),
        plan.verify.what
    );
    let cancelled = tokio::select! {
        () = tokio::time::sleep(plan.duration) => false,
        () = &mut interrupted => true,
    };
    let reverted = injector
        .revert(&active, "inject")
        .await
        .map_err(|e| CliError::Setup(format!("{e}; `butterfly recover` will retry")))?;
    let how = match &active.verify_reverted {
        Some(check) => format!("reverted ({})", check.what),
        None => "one-shot fault: nothing to revert".to_owned(),
    };
    match reverted {
        Some(observed) => println!("{} on {target}: {how}; {observed}", plan.kind),
        None => println!("{} on {target}: {how}", plan.kind),
    }
    if cancelled {
        return Err(CliError::Interrupted(format!(
            "{} reverted before its {:?} were over",
            plan.kind,
            Duration::from_secs(plan.duration.as_secs())
        )));
    }
    Ok(Exit::Pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_a_service_a_host_or_both() {
        assert_eq!(
            parse_target("nova-conductor@controller").unwrap(),
            Target {
                service: Some("nova-conductor"),
                host: Some("controller")
            }
        );
        assert_eq!(
            parse_target("@compute1").unwrap(),
            Target {
                service: None,
                host: Some("compute1")
            }
        );
        assert!(parse_target("@").is_err());
        assert!(parse_target("").is_err());
    }
}
