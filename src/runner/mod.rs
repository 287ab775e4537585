//! The campaign runner: for each experiment and repetition, a health check, the baseline window,
//! the fault (at an offset or at an execution point seen by the tracer), the fault window, the
//! revert, the recovery window and the cool-down — with the workload running and the tracer
//! recording throughout. At the end, detectors are run and scored, hypotheses are judged, and the
//! run directory receives `report.json` and its renderings.
//!
//! Every fault goes through the injector's journal in the run directory before it is applied, and
//! is reverted at the end of its duration, on Ctrl-C/SIGTERM, on a guardrail breach and on any
//! error; a crash leaves the journal for `butterfly recover`.

pub mod detect;
pub mod evaluate;
pub mod history;
pub mod learn;
pub mod live;
pub mod openstack;
pub mod production;
pub mod remediate;
pub mod replay;
pub mod resources;
pub mod trace;
pub mod workload;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;

use injector::{Active, EngineSettings, FaultInput, HostSpec, Injector, Journal, PlanOptions};
use reports::model as rm;
use scenarios::model::{Campaign, Guardrail, Metric};
use scenarios::plan::{InjectAt, Plan, PlannedRun};

use crate::exit::{CliError, Exit};

use self::openstack::{Credentials, Session};
use self::workload::{CommandRecord, WorkloadHandle};

/// Every alarm of a run, one JSON object a line: the live detectors' as they fire, then the
/// external detectors' after the run.
pub const ALARMS_FILE: &str = "alarms.jsonl";
/// Seconds after a revert during which alarms still count for that fault.
pub const SCORING_GRACE_S: f64 = 30.0;
/// Width of the plot buckets in the report.
pub const BUCKET_S: f64 = 2.0;

/// What `butterfly run` was asked to do.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The campaign file.
    pub campaign: PathBuf,
    /// Run directory; default `<output.dir>/<campaign>-<timestamp>`.
    pub run_dir: Option<PathBuf>,
    /// Skip the health and steady-state checks before each repetition.
    pub skip_health_check: bool,
    /// The run history (`--history`), overriding the campaign's `output.history`.
    pub history: Option<String>,
    /// Do not record the run in the history.
    pub no_history: bool,
    /// `--label KEY=VALUE` to record the run with.
    pub labels: Vec<String>,
}

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq)]
pub enum Stop {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// A guardrail was breached or a fault could not be injected; the reason.
    Guardrail(String),
    /// The cloud did not become healthy again before a repetition (after the first); the
    /// reason. The repetitions done so far are reported, and the run exits 3.
    Unhealthy(String),
}

/// One finished repetition, before scoring.
struct RepetitionResult {
    experiment: usize,
    index: u32,
    windows: rm::Windows,
    faults: Vec<rm::Fault>,
    reverted_at: Timestamp,
    /// Why the cloud was not steady yet when the baseline began.
    unsteady: Option<String>,
}

/// Runs a campaign and returns the exit code's meaning.
pub async fn run(options: RunOptions) -> Result<Exit, CliError> {
    let campaign = scenarios::load(&options.campaign)
        .map_err(|diagnostics| CliError::InvalidInput(diagnostics.to_string()))?;
    // Before anything is created or injected: a fingerprint store the campaign names must load.
    let builtin = detect::engine_of(&campaign).map_err(CliError::InvalidInput)?;
    let recording = history::plan(
        &campaign,
        options.run_dir.as_deref(),
        options.history.as_deref(),
        options.no_history,
        &options.labels,
    )?;
    let plan = scenarios::plan::expand(&campaign);
    let started_at = Timestamp::now();
    let run_dir = options.run_dir.clone().unwrap_or_else(|| {
        campaign.output.dir.join(format!(
            "{}-{}",
            campaign.name,
            started_at.strftime("%Y%m%dT%H%M%SZ")
        ))
    });
    std::fs::create_dir_all(&run_dir).map_err(|e| {
        CliError::Setup(format!(
            "cannot create the run directory {}: {e}",
            run_dir.display()
        ))
    })?;
    eprintln!("butterfly: run directory {}", run_dir.display());
    write_json(&run_dir.join("plan.json"), &plan)?;

    let cloud = campaign.cloud.as_ref().ok_or_else(|| {
        CliError::InvalidInput(
            "the campaign has no `cloud` section; `butterfly run` needs one to drive the workload"
                .into(),
        )
    })?;
    let credentials = Credentials::resolve(cloud).map_err(|e| CliError::Setup(e.to_string()))?;
    let session = Session::connect(&credentials)
        .await
        .map_err(|e| CliError::Setup(e.to_string()))?;

    let (cancel_tx, cancel) = watch::channel(None::<Stop>);
    let signal_tx = cancel_tx.clone();
    let signals = tokio::spawn(async move {
        injector::shutdown_signal().await;
        eprintln!("butterfly: interrupted; reverting every active fault");
        let _ = signal_tx.send(Some(Stop::Interrupted));
    });

    let mut tracer = trace::LiveTrace::start(&campaign, &run_dir.join("trace"), builtin.is_some())
        .await
        .map_err(CliError::Setup)?;
    let journal = Arc::new(Journal::open(&run_dir).map_err(|e| CliError::Setup(e.to_string()))?);
    let connections = Arc::new(injector::transport::Connections::new(
        injector::transport::TransportSettings::default(),
    ));
    let injector = Injector::new(connections.clone(), journal, EngineSettings::default());

    // The workload labels its commands for the live detectors as it issues them.
    let (label_sink, labels) = tokio::sync::mpsc::unbounded_channel();
    let label_sink = builtin.is_some().then_some(label_sink);
    let workload = workload::start(session.clone(), &campaign.workload, label_sink)
        .await
        .map_err(CliError::Setup)?;
    let live = live::Live::start(
        plan.runs.len() as u64,
        workload.records.clone(),
        run_dir.join("metrics.prom"),
    );
    // The built-in detectors run beside the tracer from the first baseline on.
    let detectors = match (builtin, tracer.updates()) {
        (Some(builtin), Some(updates)) => Some(
            detect::LiveDetectors::spawn(
                builtin,
                updates,
                detect::TracerSignals {
                    broker_link: tracer.broker_link(),
                    rest_resumed: tracer.rest_resumed(),
                },
                live.phases(),
                labels,
                &run_dir,
                live.metrics(),
            )
            .map_err(CliError::Setup)?,
        ),
        _ => None,
    };
    let faults_in_effect = remediate::FaultsInEffect::default();
    let context = Context {
        campaign: &campaign,
        session: &session,
        injector: &injector,
        tracer: &tracer,
        live: &live,
        cancel: &cancel,
        faults: &faults_in_effect,
    };
    let (done_tx, done_rx) = watch::channel(false);
    let log = |line: &str| live.log(line);
    let remediator = campaign
        .remediation
        .as_ref()
        .filter(|r| r.mode != scenarios::remediation::Mode::Off)
        .map(|remediation| remediate::Remediator {
            campaign: &campaign,
            remediation,
            injector: &injector,
            faults: &faults_in_effect,
            phases: live.phases(),
            run_dir: &run_dir,
            log: &log,
        });
    let (outcome, remediation_steps) = tokio::join!(
        async {
            let outcome = run_plan(
                &context,
                &plan,
                &workload,
                &cancel_tx,
                options.skip_health_check,
            )
            .await;
            let _ = done_tx.send(true);
            outcome
        },
        async {
            match remediator {
                Some(remediator) => remediator.run(done_rx).await,
                None => Vec::new(),
            }
        }
    );

    // Whatever happened, stop the workload, clean up, stop tracing, then judge.
    let (records, cleanup) = workload.stop().await;
    let leftover = cleanup.run().await;
    for (kind, id, error) in &leftover {
        eprintln!(
            "butterfly: could not delete {} {id} created by the workload: {error}",
            kind.noun()
        );
    }
    connections.close().await;
    signals.abort();
    let transactions = tracer.stop().await.map_err(CliError::Setup)?;
    write_jsonl(&run_dir.join("workload.jsonl"), &records)?;
    let mut detected = match detectors {
        Some(detectors) => detectors
            .finish()
            .await
            .map_err(|e| CliError::Setup(format!("the live detectors failed: {e}")))?,
        None => detect::Detected::default(),
    };
    // External detectors see the finished trace; their alarms join the live ones in the file.
    let external = detect::run_external(&campaign, &transactions);
    append_jsonl(&run_dir.join(ALARMS_FILE), &external)?;
    detected.alarms.extend(external.iter().cloned());
    detected.alarms.sort_by_key(|a| a.ts_us);

    let (mut results, stop) = match outcome {
        Ok((results, stop)) => (results, stop),
        Err(error) => return Err(error),
    };
    let journal = injector::journal::read(&run_dir)
        .map_err(|e| CliError::Setup(format!("reading the fault journal: {e}")))?;
    apply_journal_times(&mut results, &journal);
    let mut report = build_report(
        &campaign,
        &options.campaign,
        &credentials,
        started_at,
        &records,
        &results,
        detected,
        stop.as_ref(),
    );
    remediate::attach(
        &mut report,
        &remediation_steps,
        &evaluate::to_stats(&records),
    );
    live.finish(&report, &external);
    let paths = reports::render_all(&report, &run_dir)
        .map_err(|e| CliError::Setup(format!("writing the report: {e}")))?;
    for path in paths {
        eprintln!("butterfly: wrote {}", path.display());
    }
    if let Some(recording) = recording {
        history::record(recording, report.clone(), run_dir.clone()).await;
    }
    if !leftover.is_empty() {
        return Err(CliError::Setup(format!(
            "{} resource(s) created by the workload could not be deleted",
            leftover.len()
        )));
    }
    match stop {
        Some(Stop::Interrupted) => Err(CliError::Interrupted(format!(
            "results so far are in {}",
            run_dir.display()
        ))),
        Some(Stop::Guardrail(why)) => {
            eprintln!("butterfly: aborted by guardrail: {why}");
            Ok(Exit::GateFailed)
        }
        Some(Stop::Unhealthy(why)) => Err(CliError::Setup(format!(
            "{why}; the repetitions before it are in {}",
            run_dir.display()
        ))),
        None if report.passed() => Ok(Exit::Pass),
        None => Ok(Exit::GateFailed),
    }
}

/// Sleeps until `deadline`, or returns early with the reason the run must stop.
async fn wait_until(
    deadline: tokio::time::Instant,
    cancel: &watch::Receiver<Option<Stop>>,
) -> Option<Stop> {
    let mut cancel = cancel.clone();
    if let Some(stop) = cancel.borrow().clone() {
        return Some(stop);
    }
    tokio::select! {
        _ = tokio::time::sleep_until(deadline) => None,
        _ = cancel.changed() => cancel.borrow().clone(),
    }
}

/// What every step of a run needs.
struct Context<'a> {
    campaign: &'a Campaign,
    session: &'a Session,
    injector: &'a Injector,
    tracer: &'a trace::LiveTrace,
    live: &'a live::Live,
    cancel: &'a watch::Receiver<Option<Stop>>,
    /// What a remediation action may restore.
    faults: &'a remediate::FaultsInEffect,
}

async fn run_plan(
    context: &Context<'_>,
    plan: &Plan,
    workload: &WorkloadHandle,
    cancel_tx: &watch::Sender<Option<Stop>>,
    skip_health_check: bool,
) -> Result<(Vec<RepetitionResult>, Option<Stop>), CliError> {
    let campaign = context.campaign;
    let guardrails = tokio::spawn(watch_guardrails(
        campaign.guardrails.clone(),
        workload.records.clone(),
        cancel_tx.clone(),
    ));
    let mut results = Vec::new();
    let mut stop = None;
    for planned in &plan.runs {
        let experiment_index = campaign
            .experiments
            .iter()
            .position(|e| e.name == planned.experiment)
            .expect("plans are expanded from the campaign's experiments");
        context.live.phase(
            planned.experiment.as_str(),
            planned.repetition,
            "health-check",
        );
        if !skip_health_check {
            // Before the first repetition an unhealthy cloud is a setup error. Later, a fault may
            // take a while to heal (nova-compute reconnecting to a restarted broker reports up
            // again only with its next heartbeat): the run waits for it, and if it does not heal,
            // stops with what it has.
            let wait = if results.is_empty() {
                Duration::ZERO
            } else {
                HEALTH_WAIT
            };
            match wait_healthy(context.session, wait, HEALTH_RETRY, context.cancel).await {
                Ok(()) => {}
                Err(Err(why)) => {
                    stop = Some(why);
                    break;
                }
                Err(Ok(problem)) => {
                    let why = format!(
                        "the cloud is not healthy before {} #{}: {problem}",
                        planned.experiment, planned.repetition
                    );
                    if results.is_empty() {
                        guardrails.abort();
                        return Err(CliError::Setup(why));
                    }
                    stop = Some(Stop::Unhealthy(why));
                    break;
                }
            }
        }
        // After a fault, the services reporting up is not enough: the next baseline waits for
        // the workload to run as it did in the baselines so far.
        let mut unsteady = None;
        if !skip_health_check && !results.is_empty() {
            context.live.phase(
                planned.experiment.as_str(),
                planned.repetition,
                "steady-state",
            );
            match wait_steady(&workload.records, &results, STEADY_WAIT, context.cancel).await {
                Ok(()) => {}
                Err(Err(why)) => {
                    stop = Some(why);
                    break;
                }
                Err(Ok(problem)) => {
                    context.live.log(&format!(
                        "the cloud is not steady before {} #{} after {} s ({problem}); going on, its baseline may hold the previous fault's aftermath",
                        planned.experiment,
                        planned.repetition,
                        STEADY_WAIT.as_secs()
                    ));
                    unsteady = Some(problem);
                }
            }
        }
        let outcome = run_repetition(context, experiment_index, planned).await;
        context.live.repetition_done();
        match outcome {
            Ok(mut result) => {
                result.unsteady = unsteady;
                results.push(result);
            }
            Err((Some(mut result), why)) => {
                result.unsteady = unsteady;
                results.push(result);
                stop = Some(why);
                break;
            }
            Err((None, why)) => {
                stop = Some(why);
                break;
            }
        }
    }
    guardrails.abort();
    Ok((results, stop))
}

/// How long the run waits, between repetitions, for the cloud to be healthy again.
const HEALTH_WAIT: Duration = Duration::from_secs(90);
/// How often it asks meanwhile.
const HEALTH_RETRY: Duration = Duration::from_secs(5);

/// Waits up to `wait` for [`health_check`] to pass, asking every `retry` ([`HEALTH_RETRY`]).
/// Fails with the last problem (`Ok`), or with the reason the run must stop meanwhile (`Err`).
async fn wait_healthy(
    session: &Session,
    wait: Duration,
    retry: Duration,
    cancel: &watch::Receiver<Option<Stop>>,
) -> Result<(), Result<String, Stop>> {
    retry_until(wait, retry, cancel, || health_check(session)).await
}

/// How long the run waits, after the health check, for the workload to be steady again.
const STEADY_WAIT: Duration = Duration::from_secs(90);
/// How often it looks meanwhile: the check reads the workload's records, it sends nothing.
const STEADY_RETRY: Duration = Duration::from_secs(1);

/// Waits up to `wait` for [`evaluate::steady_state`] to hold, judged against the commands that
/// started in the baselines of `done`. Fails as [`wait_healthy`] does.
async fn wait_steady(
    records: &workload::Records,
    done: &[RepetitionResult],
    wait: Duration,
    cancel: &watch::Receiver<Option<Stop>>,
) -> Result<(), Result<String, Stop>> {
    let steady = || {
        let finished = records.snapshot();
        let reference: Vec<CommandRecord> = finished
            .iter()
            .filter(|r| {
                done.iter().any(|d| {
                    d.windows.baseline.start <= r.started_at
                        && r.started_at < d.windows.baseline.end
                })
            })
            .cloned()
            .collect();
        let verdict = evaluate::steady_state(
            &reference,
            &finished,
            &records.in_flight(),
            Timestamp::now(),
        );
        std::future::ready(verdict)
    };
    retry_until(wait, STEADY_RETRY, cancel, steady).await
}

/// Runs `check` every `retry` until it passes or `wait` is over. Fails with its last problem
/// (`Ok`), or with the reason the run must stop meanwhile (`Err`).
async fn retry_until<Check, Verdict>(
    wait: Duration,
    retry: Duration,
    cancel: &watch::Receiver<Option<Stop>>,
    mut check: Check,
) -> Result<(), Result<String, Stop>>
where
    Check: FnMut() -> Verdict,
    Verdict: Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let problem = match check().await {
            Ok(()) => return Ok(()),
            Err(problem) => problem,
        };
        let next = tokio::time::Instant::now() + retry;
        if next > deadline {
            return Err(Ok(problem));
        }
        if let Some(stop) = wait_until(next, cancel).await {
            return Err(Err(stop));
        }
    }
}

/// Cloud health before a repetition: every nova service reports up.
async fn health_check(session: &Session) -> Result<(), String> {
    let url = format!("{}/os-services", session.endpoints.compute);
    let response = session
        .call(
            reqwest::Method::GET,
            &url,
            &openstack::new_request_id(),
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
    if !response.status.is_success() {
        return Err(format!(
            "GET /os-services answered HTTP {}",
            response.status.as_u16()
        ));
    }
    let down: Vec<String> = response
        .body
        .get("services")
        .and_then(|s| s.as_array())
        .into_iter()
        .flatten()
        .filter(|s| s.get("status").and_then(|v| v.as_str()) == Some("enabled"))
        .filter(|s| s.get("state").and_then(|v| v.as_str()) != Some("up"))
        .map(|s| {
            format!(
                "{} on {} is down",
                s.get("binary").and_then(|v| v.as_str()).unwrap_or("?"),
                s.get("host").and_then(|v| v.as_str()).unwrap_or("?")
            )
        })
        .collect();
    if down.is_empty() {
        Ok(())
    } else {
        Err(down.join("; "))
    }
}

type RepetitionError = (Option<RepetitionResult>, Stop);

async fn run_repetition(
    context: &Context<'_>,
    experiment_index: usize,
    planned: &PlannedRun,
) -> Result<RepetitionResult, RepetitionError> {
    let Context {
        campaign,
        injector,
        tracer,
        live,
        cancel,
        ..
    } = *context;
    let experiment = &campaign.experiments[experiment_index];
    let timing = &campaign.timing;
    let origin = tokio::time::Instant::now();
    let baseline_start = Timestamp::now();
    let name = planned.experiment.as_str();
    live.phase(name, planned.repetition, "baseline");
    if let Some(stop) = wait_until(origin + timing.baseline, cancel).await {
        return Err((None, stop));
    }
    let fault_start = Timestamp::now();
    let fault_origin = tokio::time::Instant::now();
    live.phase(name, planned.repetition, "fault");
    let window_deadline = fault_origin + experiment.window;

    // When to inject.
    let trigger = match &planned.timeline.inject {
        InjectAt::At { .. } => {
            let offset = match &experiment.trigger {
                scenarios::model::Trigger::After { offset } => *offset,
                scenarios::model::Trigger::Observed { within, .. } => *within,
            };
            if let Some(stop) = wait_until(fault_origin + offset, cancel).await {
                return Err((None, stop));
            }
            rm::Trigger::Offset {
                after_s: offset.as_secs_f64(),
            }
        }
        InjectAt::Observed { point, host, .. } => {
            let within = match &experiment.trigger {
                scenarios::model::Trigger::Observed { within, .. } => *within,
                scenarios::model::Trigger::After { offset } => *offset,
            };
            let seen = tracer
                .wait_for(
                    point,
                    host.as_ref().map(|h| h.as_str()),
                    fault_origin + within,
                    cancel,
                )
                .await;
            if let Some(stop) = cancel.borrow().clone() {
                return Err((None, stop));
            }
            let label = match point {
                scenarios::model::ExecutionPoint::Rpc(method) => method.clone(),
                scenarios::model::ExecutionPoint::Rest(call) => call.clone(),
            };
            if !seen {
                live.log(&format!(
                    "{label} was not observed in time; injecting at the latest point"
                ));
            }
            rm::Trigger::ExecutionPoint {
                point: label,
                host: host.as_ref().map(|h| h.as_str().to_owned()),
            }
        }
    };

    // Inject on every target host at once.
    let mut faults = Vec::new();
    let mut active: Vec<Active> = Vec::new();
    let service = experiment.target.service.as_ref();
    let mut failure = None;
    // The time spent waiting for the trigger belongs to the plan, not to the framework.
    let trigger_wait = fault_origin.elapsed();
    for host_name in &planned.hosts {
        let plan = match fault_plan(
            campaign,
            experiment,
            host_name.as_str(),
            &injector::new_fault_id(),
        ) {
            Ok(plan) => plan,
            Err(error) => {
                failure = Some(error);
                break;
            }
        };
        live.log(&format!(
            "{name} #{}: injecting {} on {host_name}{}",
            planned.repetition,
            experiment.fault.kind(),
            service
                .map(|s| format!(" ({})", s.name))
                .unwrap_or_default()
        ));
        let injected_at = Timestamp::now();
        match injector.inject(&plan).await {
            Ok(fault) => {
                faults.push(rm::Fault {
                    id: plan.id.clone(),
                    kind: plan.kind.clone(),
                    parameters: fault_parameters(&plan.fault),
                    target: rm::FaultTarget {
                        service: service.map(|s| s.name.as_str().to_owned()),
                        hosts: vec![host_name.as_str().to_owned()],
                    },
                    trigger: trigger.clone(),
                    injected_at,
                    verified_at: Some(
                        Timestamp::from_microsecond(
                            injected_at.as_microsecond() + fault.inject_latency.as_micros() as i64,
                        )
                        .unwrap_or(injected_at),
                    ),
                    reverted_at: None,
                    observed: None,
                });
                live.injected(name, faults.last().expect("just pushed"));
                context.faults.injected(
                    &plan.id,
                    &plan.kind,
                    host_name.as_str(),
                    service.map(|s| s.name.as_str()),
                );
                active.push(fault);
            }
            Err(error) => {
                failure = Some(format!(
                    "injecting {} on {host_name}: {error}",
                    experiment.fault.kind()
                ));
                break;
            }
        }
    }

    // Hold the fault for its duration (unless stopped), then revert everything that is active.
    let hold_until = fault_origin.max(tokio::time::Instant::now()) + experiment.duration;
    let stopped = if failure.is_none() {
        wait_until(hold_until.min(window_deadline), cancel).await
    } else {
        None
    };
    for (fault, report) in active.iter().zip(faults.iter_mut()) {
        match injector.revert(fault, "runner").await {
            Ok(observed) => {
                if let Some(observed) = observed {
                    live.log(&format!(
                        "{} on {}: {observed}",
                        fault.plan.kind, fault.plan.host.name
                    ));
                }
                report.reverted_at = Some(Timestamp::now());
                context.faults.reverted(&fault.plan.id);
                live.reverted(name, report);
            }
            Err(error) => live.log(&format!(
                "reverting {} on {} failed: {error}; `butterfly recover` will retry",
                fault.plan.kind, fault.plan.host.name
            )),
        }
    }
    let reverted_at = Timestamp::now();
    let windows_until = |end: Timestamp| rm::Windows {
        baseline: rm::Window {
            start: baseline_start,
            end: fault_start,
        },
        fault: rm::Window {
            start: fault_start,
            end: reverted_at,
        },
        recovery: rm::Window {
            start: reverted_at,
            end,
        },
    };
    if let Some(error) = failure {
        live.log(&error);
        return Err((
            Some(RepetitionResult {
                experiment: experiment_index,
                index: planned.repetition - 1,
                windows: windows_until(reverted_at),
                faults,
                reverted_at,
                unsteady: None,
            }),
            Stop::Guardrail(error),
        ));
    }
    if let Some(stop) = stopped {
        return Err((
            Some(RepetitionResult {
                experiment: experiment_index,
                index: planned.repetition - 1,
                windows: windows_until(reverted_at),
                faults,
                reverted_at,
                unsteady: None,
            }),
            stop,
        ));
    }
    let recovery_origin = tokio::time::Instant::now();
    live.phase(name, planned.repetition, "recovery");
    let stopped = wait_until(recovery_origin + timing.recovery, cancel).await;
    let result = RepetitionResult {
        experiment: experiment_index,
        index: planned.repetition - 1,
        windows: windows_until(Timestamp::now()),
        faults,
        reverted_at,
        unsteady: None,
    };
    if let Some(stop) = stopped {
        return Err((Some(result), stop));
    }
    live.phase(name, planned.repetition, "cool-down");
    if let Some(stop) = wait_until(tokio::time::Instant::now() + timing.cooldown, cancel).await {
        return Err((Some(result), stop));
    }
    // Framework overhead: everything beyond the configured windows and the trigger wait
    // (injecting, verifying, reverting, health checks are measured separately).
    let configured =
        timing.baseline + trigger_wait + experiment.duration + timing.recovery + timing.cooldown;
    let elapsed = origin.elapsed();
    live.log(&format!(
        "{name} #{} took {:.2}s; framework overhead {:.3}s",
        planned.repetition,
        elapsed.as_secs_f64(),
        elapsed.saturating_sub(configured).as_secs_f64()
    ));
    Ok(result)
}

/// The injector's plan for one experiment's fault on one host: what `butterfly run` injects and
/// what `butterfly plan --dry-run` prints.
pub fn fault_plan(
    campaign: &Campaign,
    experiment: &scenarios::model::Experiment,
    host_name: &str,
    id: &str,
) -> Result<injector::FaultPlan, String> {
    let host = campaign
        .testbed
        .host(host_name)
        .ok_or_else(|| format!("host {host_name} is not in the inventory"))?;
    let spec = HostSpec::from(host);
    let input = FaultInput {
        id,
        fault: &experiment.fault,
        host: &spec,
        service: experiment.target.service.as_ref(),
        duration: experiment.duration,
    };
    let options = PlanOptions {
        allow_destructive: experiment.allow_destructive,
        ..PlanOptions::default()
    };
    input.plan(&options).map_err(|error| {
        format!(
            "planning {} on {host_name}: {error}",
            experiment.fault.kind()
        )
    })
}

/// Takes each fault's exact times from the journal: `injecting` (applied), `injected` (verified in
/// effect) and `reverted`. The journal is the ground truth that detectors are scored against.
fn apply_journal_times(results: &mut [RepetitionResult], journal: &[injector::journal::Record]) {
    use injector::journal::Record;
    let at = |ms: u64| Timestamp::from_millisecond(ms as i64).ok();
    for fault in results.iter_mut().flat_map(|r| r.faults.iter_mut()) {
        for record in journal {
            match record {
                Record::Injecting { at_ms, plan, .. } if plan.id == fault.id => {
                    fault.injected_at = at(*at_ms).unwrap_or(fault.injected_at);
                }
                Record::Injected { at_ms, id } if *id == fault.id => fault.verified_at = at(*at_ms),
                Record::Reverted {
                    at_ms,
                    id,
                    observed,
                    ..
                } if *id == fault.id => {
                    fault.reverted_at = at(*at_ms);
                    fault.observed.clone_from(observed);
                }
                _ => {}
            }
        }
    }
}

/// Fault parameters as strings for the report (the kind is reported on its own).
fn fault_parameters(fault: &serde_json::Value) -> BTreeMap<String, String> {
    fault
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, value)| key.as_str() != "kind" && !value.is_null())
        .map(|(key, value)| {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (key.clone(), text)
        })
        .collect()
}

/// Checks the guardrails every second over their sliding windows and stops the run on a breach.
async fn watch_guardrails(
    guardrails: Vec<Guardrail>,
    records: Arc<workload::Records>,
    cancel: watch::Sender<Option<Stop>>,
) {
    if guardrails.is_empty() {
        return;
    }
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        ticker.tick().await;
        let now = Timestamp::now();
        let snapshot = records.snapshot();
        for guardrail in &guardrails {
            if let Some(why) = guardrail_breach(guardrail, &snapshot, now) {
                eprintln!("butterfly: guardrail {} breached: {why}", guardrail.name);
                let _ = cancel.send(Some(Stop::Guardrail(format!("{}: {why}", guardrail.name))));
                return;
            }
        }
    }
}

/// Whether a guardrail is breached by the commands that ended in its window before `now`. A
/// window needs at least three finished commands, so that one early failure does not abort.
pub fn guardrail_breach(
    guardrail: &Guardrail,
    records: &[CommandRecord],
    now: Timestamp,
) -> Option<String> {
    let from = now.as_microsecond() - guardrail.over.as_micros() as i64;
    let recent: Vec<&CommandRecord> = records
        .iter()
        .filter(|r| r.finished_at.as_microsecond() >= from)
        .collect();
    if recent.len() < 3 {
        return None;
    }
    match (guardrail.metric, guardrail.bound) {
        (Metric::SuccessRatio, scenarios::model::Bound::MinRatio(min)) => {
            let ratio = recent.iter().filter(|r| r.ok).count() as f64 / recent.len() as f64;
            (ratio < min).then(|| {
                format!(
                    "success ratio {:.0}% below {:.0}% over the last {}",
                    ratio * 100.0,
                    min * 100.0,
                    scenarios::units::format_duration(guardrail.over)
                )
            })
        }
        (Metric::Latency { percentile }, scenarios::model::Bound::MaxDuration(max)) => {
            let mut latencies: Vec<f64> = recent.iter().map(|r| r.latency_ms()).collect();
            latencies.sort_by(f64::total_cmp);
            let value = evaluate::percentile(&latencies, percentile)?;
            (value > max.as_secs_f64() * 1000.0).then(|| {
                format!(
                    "p{percentile:.0} latency {value:.0} ms above {} ms",
                    max.as_millis()
                )
            })
        }
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn build_report(
    campaign: &Campaign,
    file: &Path,
    credentials: &Credentials,
    started_at: Timestamp,
    records: &[CommandRecord],
    results: &[RepetitionResult],
    detectors: detect::Detected,
    stop: Option<&Stop>,
) -> rm::Report {
    let scoring = rm::ScoringConfig {
        grace_s: SCORING_GRACE_S,
    };
    let mut experiments: Vec<rm::Experiment> = campaign
        .experiments
        .iter()
        .map(|e| rm::Experiment {
            name: e.name.as_str().to_owned(),
            description: e.description.clone(),
            repetitions: Vec::new(),
        })
        .collect();
    let stats_records = evaluate::to_stats(records);
    for (position, result) in results.iter().enumerate() {
        let experiment = &campaign.experiments[result.experiment];
        let hypotheses = campaign
            .hypotheses
            .iter()
            .filter(|h| evaluate::applies(h, experiment))
            .flat_map(|h| {
                let injected_at = result
                    .faults
                    .iter()
                    .map(|f| f.injected_at)
                    .min()
                    .unwrap_or(result.windows.fault.start);
                evaluate::evaluate(h, records, &result.windows, injected_at, result.reverted_at)
            })
            .collect();
        let alarms: Vec<rm::Alarm> = detectors
            .alarms
            .iter()
            .filter(|a| {
                let ts = a.timestamp();
                ts >= result.windows.baseline.start && ts < result.windows.recovery.end
            })
            .cloned()
            .collect();
        experiments[result.experiment]
            .repetitions
            .push(rm::Repetition {
                index: result.index,
                windows: result.windows,
                faults: result.faults.clone(),
                workload: evaluate::window_stats(&stats_records, &result.windows),
                timeline: evaluate::timeline(&stats_records, &result.windows, BUCKET_S),
                hypotheses,
                recovery: evaluate::recovery(records, &result.windows, result.reverted_at, &|_| {
                    true
                }),
                alarms,
                failing_transactions: detectors
                    .divergences
                    .get(position)
                    .cloned()
                    .unwrap_or_default(),
                unsteady: result.unsteady.clone(),
                // Filled by `remediate::attach` once the report is built.
                remediation: Vec::new(),
                loop_times: rm::LoopTimes::default(),
            });
    }
    let mut names: Vec<String> = campaign
        .detectors
        .iter()
        .map(|d| d.name.as_str().to_owned())
        .collect();
    names.sort();
    let repetitions: Vec<&rm::Repetition> =
        experiments.iter().flat_map(|e| &e.repetitions).collect();
    let scores = reports::scoring::score(
        repetitions
            .iter()
            .map(|r| reports::scoring::ScoringInput::from(*r)),
        names,
        scoring,
    );
    let hosts = campaign
        .testbed
        .hosts
        .iter()
        .map(|h| rm::Host {
            name: h.name.as_str().to_owned(),
            address: h.address.clone(),
            services: campaign
                .testbed
                .services
                .iter()
                .filter(|s| s.runs_on(h))
                .map(|s| s.name.as_str().to_owned())
                .collect(),
        })
        .collect();
    // The local testbed is recognised by its state directory holding the inventory or clouds.yaml.
    let state_dir = Path::new(testbed::DEFAULT_STATE_DIR);
    let local = campaign
        .testbed
        .inventory
        .as_deref()
        .is_some_and(|p| p.starts_with(state_dir))
        || matches!(&campaign.cloud, Some(scenarios::model::Cloud::CloudsYaml { file: Some(file), .. }) if file.starts_with(state_dir));
    rm::Report {
        format_version: rm::REPORT_FORMAT_VERSION,
        run_id: format!(
            "{}-{}",
            campaign.name,
            started_at.strftime("%Y%m%dT%H%M%SZ")
        ),
        started_at,
        finished_at: Timestamp::now(),
        outcome: match stop {
            None => rm::RunOutcome::Completed,
            Some(Stop::Guardrail(_) | Stop::Unhealthy(_)) => rm::RunOutcome::Aborted,
            Some(Stop::Interrupted) => rm::RunOutcome::Interrupted,
        },
        campaign: rm::Campaign {
            name: campaign.name.clone(),
            file: file.display().to_string(),
            seed: campaign.timing.seed,
            description: campaign.description.clone(),
        },
        environment: rm::Environment {
            butterfly_version: env!("CARGO_PKG_VERSION").to_owned(),
            testbed: rm::Testbed {
                kind: if local {
                    "local".into()
                } else {
                    "devstack".into()
                },
                cloud: credentials.cloud_name.clone(),
                auth_url: credentials.auth_url.clone(),
                openstack_release: None,
            },
            hosts,
        },
        scoring,
        experiments,
        detectors: scores,
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Setup(format!("{}: {e}", path.display())))?;
    std::fs::write(path, text + "\n")
        .map_err(|e| CliError::Setup(format!("writing {}: {e}", path.display())))
}

fn write_jsonl<T: serde::Serialize>(path: &Path, items: &[T]) -> Result<(), CliError> {
    std::fs::write(path, jsonl(path, items)?)
        .map_err(|e| CliError::Setup(format!("writing {}: {e}", path.display())))
}

fn append_jsonl<T: serde::Serialize>(path: &Path, items: &[T]) -> Result<(), CliError> {
    use std::io::Write;
    let text = jsonl(path, items)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| CliError::Setup(format!("writing {}: {e}", path.display())))
}

fn jsonl<T: serde::Serialize>(path: &Path, items: &[T]) -> Result<String, CliError> {
    let mut text = String::new();
    for item in items {
        text.push_str(
            &serde_json::to_string(item)
                .map_err(|e| CliError::Setup(format!("{}: {e}", path.display())))?,
        );
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A Nova whose compute service is down for the first `down_for` health checks.
    async fn healing_nova(down_for: usize) -> Session {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let asked = AtomicUsize::new(0);
        let url = openstack::tests::fake_http(move |_| {
            let state = if asked.fetch_add(1, Ordering::SeqCst) < down_for {
                "down"
            } else {
                "up"
            };
            let body = format!(
                r#"{{"services":[{{"binary":"nova-conductor","host":"controller","status":"enabled","state":"up"}},{{"binary":"nova-compute","host":"compute1","status":"enabled","state":"{state}"}}]}}"#
            );
            ("200 OK", body)
        })
        .await;
        openstack::tests::session_at(url)
    }

    /// Regression (detector-accuracy run of 2026-11-28, stopped before broker-stopped #3): after
    /// a fault, the run waits for the cloud to heal instead of stopping at the first check.
    #[tokio::test]
    async fn the_run_waits_for_the_cloud_to_heal_between_repetitions() {
        let (cancel_tx, cancel) = watch::channel(None);
        let retry = Duration::from_millis(10);
        let session = healing_nova(3).await;
        let outcome = wait_healthy(&session, HEALTH_WAIT, retry, &cancel).await;
        assert_eq!(outcome, Ok(()));

        // Not healed in time: the last problem, once the wait is over.
        let session = healing_nova(usize::MAX).await;
        let outcome = wait_healthy(&session, Duration::from_millis(50), retry, &cancel).await;
        let down = "nova-compute on compute1 is down".to_owned();
        assert_eq!(outcome, Err(Ok(down)));
        // Before the first repetition there is no wait.
        let session = healing_nova(1).await;
        let outcome = wait_healthy(&session, Duration::ZERO, retry, &cancel).await;
        assert!(matches!(outcome, Err(Ok(_))), "{outcome:?}");
        // Ctrl-C while waiting stops the wait.
        cancel_tx.send_replace(Some(Stop::Interrupted));
        let session = healing_nova(usize::MAX).await;
        let outcome = wait_healthy(&session, HEALTH_WAIT, retry, &cancel).await;
        assert_eq!(outcome, Err(Err(Stop::Interrupted)));
    }

    fn record(finished_s: i64, ok: bool, ms: i64) -> CommandRecord {
        let finished = Timestamp::from_second(1_800_000_000 + finished_s).unwrap();
        CommandRecord {
            command: "server list".into(),
            request_id: format!("req-{finished_s}"),
            started_at: Timestamp::from_microsecond(finished.as_microsecond() - ms * 1000).unwrap(),
            finished_at: finished,
            ok,
            error: None,
        }
    }

    fn guardrail(metric: Metric, bound: scenarios::model::Bound) -> Guardrail {
        Guardrail {
            name: scenarios::units::Ident::new("g").unwrap(),
            metric,
            bound,
            over: Duration::from_secs(30),
        }
    }

    #[test]
    fn success_ratio_guardrails_need_a_few_commands_and_look_back_only_their_window() {
        let rail = guardrail(Metric::SuccessRatio, scenarios::model::Bound::MinRatio(0.5));
        let now = Timestamp::from_second(1_800_000_100).unwrap();
        let two_failures = vec![record(99, false, 10), record(98, false, 10)];
        assert_eq!(guardrail_breach(&rail, &two_failures, now), None);
        let mut many = vec![
            record(99, false, 10),
            record(98, false, 10),
            record(97, false, 10),
            record(96, true, 10),
        ];
        assert!(
            guardrail_breach(&rail, &many, now)
                .unwrap()
                .contains("success ratio 25%")
        );
        // Old failures outside the 30 s window do not count.
        many.iter_mut().for_each(|r| {
            r.finished_at = Timestamp::from_second(1_800_000_000).unwrap();
        });
        assert_eq!(guardrail_breach(&rail, &many, now), None);
    }

    #[test]
    fn latency_guardrails_compare_the_percentile() {
        let rail = guardrail(
            Metric::Latency { percentile: 50.0 },
            scenarios::model::Bound::MaxDuration(Duration::from_secs(1)),
        );
        let now = Timestamp::from_second(1_800_000_100).unwrap();
        let fast = vec![
            record(99, true, 10),
            record(98, true, 20),
            record(97, true, 30),
        ];
        assert_eq!(guardrail_breach(&rail, &fast, now), None);
        let slow = vec![
            record(99, true, 5000),
            record(98, true, 6000),
            record(97, true, 30),
        ];
        assert!(guardrail_breach(&rail, &slow, now).is_some());
    }

    #[test]
    fn fault_parameters_leave_out_the_kind() {
        let parameters = fault_parameters(
            &serde_json::json!({"kind": "process-kill", "signal": "KILL", "process": null}),
        );
        assert_eq!(parameters.get("signal").map(String::as_str), Some("KILL"));
        assert!(!parameters.contains_key("kind"));
    }
}
