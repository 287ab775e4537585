//! Runs plans: preflight → journal → dead-man → (inject + verify, one round trip) → control
//! channel check (network faults) → … → (disarm + revert + verify-reverted, one round trip) →
//! journal. Any failure after the journal record reverts at once. `recover` replays the journal
//! and reverts what is still pending.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Error;
use crate::host::HostSpec;
use crate::journal::{self, Journal, Record, now_ms};
use crate::plan::{self, Captured, Check, FaultPlan};
use crate::transport::{Connections, Output};

/// Timing of the engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// How long a verify (or verify-reverted) may keep failing before it counts as failed (the
    /// host polls it inside the inject or revert round trip).
    pub verify_timeout: Duration,
    /// A network fault's control-channel check: a fresh command must answer within this many
    /// warm round trips (measured at prepare) plus [`EngineSettings::control_channel_slack`].
    pub control_channel_factor: u32,
    /// Added to the control channel's allowance, for a loaded machine's scheduling noise.
    pub control_channel_slack: Duration,
    /// Added to a fault's duration for the dead-man timer.
    pub grace: Duration,
    /// The `bfly-nfqdelay` binary on this machine, uploaded to hosts that lack it.
    pub delayer_binary: Option<PathBuf>,
}

impl Default for EngineSettings {
    fn default() -> EngineSettings {
        EngineSettings {
            verify_timeout: plan::DEFAULT_VERIFY_TIMEOUT,
            control_channel_factor: 4,
            control_channel_slack: Duration::from_millis(100),
            grace: Duration::from_secs(30),
            delayer_binary: default_delayer_binary(),
        }
    }
}

/// `bfly-nfqdelay` next to the running executable (where cargo and installs put it), or the
/// path in `BUTTERFLY_NFQDELAY`.
pub fn default_delayer_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BUTTERFLY_NFQDELAY") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join("bfly-nfqdelay"), dir.join("../bfly-nfqdelay")]
        .into_iter()
        .find(|path| path.is_file())
}

/// A fault in effect.
#[derive(Debug, Clone)]
pub struct Active {
    /// The plan.
    pub plan: FaultPlan,
    /// The revert as it runs (captures substituted).
    pub revert: Option<String>,
    /// The check that the host is back.
    pub verify_reverted: Option<Check>,
    /// Whether a dead-man timer is armed on the host.
    pub armed: bool,
    /// From "inject now" to "verified in effect".
    pub inject_latency: Duration,
}

/// A fault that passed its preflight, is journaled and has its dead-man switch armed, but is not
/// injected yet.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The plan.
    pub plan: FaultPlan,
    /// The preflight's captured output.
    pub pre: Captured,
    /// The revert as it will run.
    pub revert: Option<String>,
    /// The check that the host is back.
    pub verify_reverted: Option<Check>,
    /// Whether a dead-man timer is armed on the host.
    pub armed: bool,
    /// The warm round trip of the control channel before the fault, for plans that check it.
    pub control_round_trip: Option<Duration>,
}

/// The injector: a connection pool and a journal.
#[derive(Debug)]
pub struct Injector {
    connections: Arc<Connections>,
    journal: Arc<Journal>,
    settings: EngineSettings,
}

impl Injector {
    /// An injector writing to `journal`.
    pub fn new(
        connections: Arc<Connections>,
        journal: Arc<Journal>,
        settings: EngineSettings,
    ) -> Injector {
        Injector {
            connections,
            journal,
            settings,
        }
    }

    /// The connection pool.
    pub fn connections(&self) -> &Connections {
        &self.connections
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Preflight, journal, inject and verify ([`Injector::prepare`] then [`Injector::fire`]).
    /// On any failure after the journal record the fault is reverted before the error is
    /// returned.
    pub async fn inject(&self, plan: &FaultPlan) -> Result<Active, Error> {
        let prepared = self.prepare(plan, Duration::ZERO).await?;
        self.fire(prepared).await
    }

    /// Everything before the fault itself: upload the delayer if needed, preflight, journal the
    /// fault with its exact revert, and arm the dead-man switch for `fire_within` + duration +
    /// grace. A runner prepares ahead of a trigger so that [`Injector::fire`] costs only the
    /// inject-and-verify round trip. A prepared fault that is never fired is still pending in
    /// the journal; reverting it is harmless.
    pub async fn prepare(
        &self,
        plan: &FaultPlan,
        fire_within: Duration,
    ) -> Result<Prepared, Error> {
        let host = &plan.host;
        self.ensure_delayer(plan).await?;
        let preflight = self.connections.run(host, &plan.preflight.script).await?;
        let preflight_error = |output: String| Error::Preflight {
            host: host.name.clone(),
            kind: plan.kind.clone(),
            what: plan.preflight.what.clone(),
            output,
        };
        if !preflight.success() {
            return Err(preflight_error(preflight.describe()));
        }
        let pre = Captured::from_output(&preflight.stdout).map_err(preflight_error)?;
        let control_round_trip = if plan.checks_control_channel {
            Some(self.control_round_trip(host).await?)
        } else {
            None
        };
        let none = Captured::default();
        let revert = plan
            .revert
            .as_deref()
            .map(|s| plan::substitute(s, &pre, &none));
        let verify_reverted = plan.verify_reverted.as_ref().map(|check| Check {
            what: check.what.clone(),
            script: plan::substitute(&check.script, &pre, &none),
        });
        self.journal.append(&Record::Injecting {
            at_ms: now_ms(),
            plan: Box::new(plan.clone()),
            revert: revert.clone(),
            verify_reverted: verify_reverted.clone(),
        })?;
        let mut armed = false;
        if let (Some(revert), true) = (&revert, plan.deadman) {
            let after = fire_within + plan.duration + self.settings.grace;
            match self
                .connections
                .run(host, &plan::deadman_arm(&plan.id, after, revert))
                .await
            {
                Ok(output) if output.success() => armed = true,
                Ok(output) => tracing::warn!(
                    host = %host.name,
                    "no dead-man switch (systemd-run failed: {}); the journal and `butterfly recover` remain",
                    output.describe()
                ),
                Err(error) => {
                    let prepared = Prepared {
                        plan: plan.clone(),
                        pre,
                        revert: Some(revert.clone()),
                        verify_reverted,
                        armed: true,
                        control_round_trip,
                    };
                    self.undo(&prepared).await;
                    return Err(error);
                }
            }
        }
        Ok(Prepared {
            plan: plan.clone(),
            pre,
            revert,
            verify_reverted,
            armed,
            control_round_trip,
        })
    }

    /// Injects a prepared fault and verifies it in one round trip (the host polls the verify
    /// right after the inject); a network fault then checks that the control channel still
    /// answers. On failure the fault is reverted before the error is returned.
    pub async fn fire(&self, prepared: Prepared) -> Result<Active, Error> {
        let plan = &prepared.plan;
        let host = &plan.host;
        let none = Captured::default();
        let script = plan::substitute(
            &plan.inject_script(self.settings.verify_timeout),
            &prepared.pre,
            &none,
        );
        let started = Instant::now();
        let result = match self.connections.run(host, &script).await {
            Ok(output) if output.success() => self.judge_inject(plan, &output),
            Ok(output) => Err(Error::Inject {
                host: host.name.clone(),
                kind: plan.kind.clone(),
                output: output.describe(),
            }),
            Err(error) => Err(error),
        };
        let inject_latency = started.elapsed();
        let result = match (result, prepared.control_round_trip) {
            (Ok(()), Some(before)) => self.check_control_channel(plan, before).await,
            (result, _) => result,
        };
        match result {
            Ok(()) => {
                self.journal.append(&Record::Injected {
                    at_ms: now_ms(),
                    id: plan.id.clone(),
                })?;
                Ok(Active {
                    plan: prepared.plan,
                    revert: prepared.revert,
                    verify_reverted: prepared.verify_reverted,
                    armed: prepared.armed,
                    inject_latency,
                })
            }
            Err(error) => {
                // The fault may be half applied: undo whatever is there before reporting.
                self.undo(&prepared).await;
                Err(error)
            }
        }
    }

    /// Reads the outcome of a successful inject-and-verify round trip.
    fn judge_inject(&self, plan: &FaultPlan, output: &Output) -> Result<(), Error> {
        let inject_error = |output: String| Error::Inject {
            host: plan.host.name.clone(),
            kind: plan.kind.clone(),
            output,
        };
        match plan::Polled::from_stdout(&output.stdout) {
            plan::Polled::Held(_) => Ok(()),
            plan::Polled::TimedOut(_) => Err(Error::Verify {
                host: plan.host.name.clone(),
                kind: plan.kind.clone(),
                what: plan.verify.what.clone(),
                output: format!(
                    "still false after {:?} ({})",
                    self.settings.verify_timeout,
                    output.describe()
                ),
            }),
            // The host refused the inject's output before verifying: say why, as a capture.
            plan::Polled::Unchecked(stdout) => match Captured::from_output(&stdout) {
                Err(error) => Err(inject_error(error)),
                Ok(_) => Err(inject_error(format!(
                    "the host did not report its verify ({})",
                    output.describe()
                ))),
            },
        }
    }

    /// The warm round trip of the probe over the control channel (the best of three, so that
    /// one scheduling hiccup does not set a loose allowance).
    async fn control_round_trip(&self, host: &HostSpec) -> Result<Duration, Error> {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            let output = self
                .connections
                .run(host, plan::CONTROL_CHANNEL_PROBE)
                .await?;
            if !output.success() {
                return Err(Error::Transport(format!(
                    "{}: the control-channel probe failed: {}",
                    host.name,
                    output.describe()
                )));
            }
            best = best.min(started.elapsed());
        }
        Ok(best)
    }

    /// A fresh command over the control channel answers within the allowance derived from the
    /// round trip measured before the fault (three tries, so that noise alone does not fail
    /// it; a cut or throttled channel fails every one).
    async fn check_control_channel(&self, plan: &FaultPlan, before: Duration) -> Result<(), Error> {
        let allowance =
            before * self.settings.control_channel_factor + self.settings.control_channel_slack;
        let mut last = String::new();
        for _ in 0..3 {
            let started = Instant::now();
            match tokio::time::timeout(
                allowance,
                self.connections
                    .run(&plan.host, plan::CONTROL_CHANNEL_PROBE),
            )
            .await
            {
                Ok(Ok(output)) if output.success() => {
                    let took = started.elapsed();
                    if took <= allowance {
                        return Ok(());
                    }
                    last = format!("a fresh command took {took:?}");
                }
                Ok(Ok(output)) => last = format!("a fresh command failed: {}", output.describe()),
                Ok(Err(error)) => last = error.to_string(),
                Err(_) => last = format!("a fresh command got no answer within {allowance:?}"),
            }
        }
        Err(Error::Verify {
            host: plan.host.name.clone(),
            kind: plan.kind.clone(),
            what: format!(
                "the SSH control channel still answers within {allowance:?} ({}× its round trip of {before:?} before the fault, plus {:?})",
                self.settings.control_channel_factor, self.settings.control_channel_slack
            ),
            output: last,
        })
    }

    async fn undo(&self, prepared: &Prepared) {
        let active = Active {
            plan: prepared.plan.clone(),
            revert: prepared.revert.clone(),
            verify_reverted: prepared.verify_reverted.clone(),
            armed: prepared.armed,
            inject_latency: Duration::ZERO,
        };
        if let Err(error) = self.revert(&active, "runner").await {
            tracing::error!(host = %prepared.plan.host.name, "revert after a failed inject failed too: {error}");
        }
    }

    /// Disarms the dead-man switch, reverts and verifies that the host is back; journals the
    /// outcome. Idempotent. Returns what the revert observed, when it says (a heal by the
    /// supervisor and how long it took, see [`crate::runtime`]).
    pub async fn revert(&self, active: &Active, by: &str) -> Result<Option<String>, Error> {
        revert_on(
            &self.connections,
            &self.journal,
            &self.settings,
            &active.plan,
            active.revert.as_deref(),
            active.verify_reverted.as_ref(),
            by,
        )
        .await
    }

    /// Injects, holds the fault for its duration (or until `cancel` resolves) and reverts.
    /// Returns the active fault (for its latency) and whether it was cancelled.
    pub async fn run_for_duration(
        &self,
        plan: &FaultPlan,
        cancel: impl Future<Output = ()>,
    ) -> Result<(Active, bool), Error> {
        let active = self.inject(plan).await?;
        let cancelled = tokio::select! {
            () = tokio::time::sleep(plan.duration) => false,
            () = cancel => true,
        };
        self.revert(&active, "runner").await?;
        Ok((active, cancelled))
    }

    async fn ensure_delayer(&self, plan: &FaultPlan) -> Result<(), Error> {
        let Some(remote) = plan.delayer.clone() else {
            return Ok(());
        };
        let present = self
            .connections
            .run(
                &plan.host,
                &format!("[ -x {} ]", crate::shell::quote(&remote)),
            )
            .await?;
        if present.success() {
            return Ok(());
        }
        let Some(local) = &self.settings.delayer_binary else {
            return Err(Error::Preflight {
                host: plan.host.name.clone(),
                kind: plan.kind.clone(),
                what: format!("the delayer {remote} is installed"),
                output: "missing, and no local bfly-nfqdelay to upload (set BUTTERFLY_NFQDELAY)"
                    .into(),
            });
        };
        let binary = std::fs::read(local)
            .map_err(|e| Error::Transport(format!("cannot read {}: {e}", local.display())))?;
        let tmp = format!("{remote}.tmp");
        let dir = Path::new(&remote)
            .parent()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/".into());
        let script = format!(
            "{} && cat > {} && chmod 755 {} && {}",
            crate::shell::join(&["mkdir", "-p", &dir]),
            crate::shell::quote(&tmp),
            crate::shell::quote(&tmp),
            crate::shell::join(&["mv", &tmp, &remote])
        );
        let output = self
            .connections
            .run_with_stdin(&plan.host, &script, Some(&binary))
            .await?;
        if output.success() {
            tracing::info!(host = %plan.host.name, "uploaded the delayer to {remote}");
            Ok(())
        } else {
            Err(Error::Transport(format!(
                "{}: cannot upload the delayer: {}",
                plan.host.name,
                output.describe()
            )))
        }
    }
}

async fn revert_on(
    connections: &Connections,
    journal: &Journal,
    settings: &EngineSettings,
    plan: &FaultPlan,
    revert: Option<&str>,
    verify_reverted: Option<&Check>,
    by: &str,
) -> Result<Option<String>, Error> {
    let host = &plan.host;
    let revert_error = |output: String| Error::Revert {
        host: host.name.clone(),
        kind: plan.kind.clone(),
        output,
    };
    let result = async {
        let Some(script) =
            plan::revert_script(plan, revert, verify_reverted, settings.verify_timeout)
        else {
            return Ok(None);
        };
        let output = connections.run(host, &script).await?;
        if !output.success() {
            return Err(revert_error(output.describe()));
        }
        let observed = crate::runtime::observed_in(&output.stdout);
        let Some(check) = verify_reverted else {
            return Ok(observed);
        };
        match plan::Polled::from_stdout(&output.stdout) {
            plan::Polled::Held(_) => Ok(observed),
            plan::Polled::TimedOut(_) => Err(revert_error(format!(
                "{} does not hold: still false after {:?} ({})",
                check.what,
                settings.verify_timeout,
                output.describe()
            ))),
            plan::Polled::Unchecked(_) => Err(revert_error(format!(
                "the host did not report whether {} ({})",
                check.what,
                output.describe()
            ))),
        }
    }
    .await;
    match result {
        Ok(observed) => {
            // The revert ran anyway (reverts are idempotent); when a remediation had already
            // restored the host, the record says so rather than claiming the revert did.
            let restored = journal
                .records()
                .ok()
                .and_then(|records| journal::restored_by(&records, &plan.id));
            let observed = match (&restored, observed) {
                (Some((_, action)), Some(observed)) => {
                    Some(format!("already restored by {action}; {observed}"))
                }
                (Some((_, action)), None) => Some(format!("already restored by {action}")),
                (None, observed) => observed,
            };
            journal.append(&Record::Reverted {
                at_ms: now_ms(),
                id: plan.id.clone(),
                by: by.to_owned(),
                observed: observed.clone(),
                restored_by: restored.map(|(id, _)| id),
            })?;
            Ok(observed)
        }
        Err(error) => {
            journal.append(&Record::RevertFailed {
                at_ms: now_ms(),
                id: plan.id.clone(),
                error: error.to_string(),
            })?;
            Err(error)
        }
    }
}

/// What `recover` did for one fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// Fault id.
    pub id: String,
    /// Fault kind.
    pub kind: String,
    /// Host name.
    pub host: String,
    /// `Ok(description)` or the error.
    pub outcome: Result<String, String>,
}

/// Reverts every fault of a run directory's journal that is not recorded as reverted, in
/// reverse journal order (last injected, first reverted), and journals each outcome. Running it
/// again finds nothing left to do.
pub async fn recover(
    run_dir: &Path,
    connections: &Connections,
    settings: &EngineSettings,
) -> Result<Vec<Recovered>, Error> {
    let records = journal::read(run_dir)?;
    let journal = Journal::open(run_dir)?;
    let mut report = Vec::new();
    // Actions first: a unit an interrupted restart left stopped is started before the faults'
    // reverts check that their hosts are back.
    for settled in crate::remediation::settle_pending(&records, &journal, connections).await? {
        report.push(Recovered {
            id: settled.id,
            kind: format!("remediation {}", settled.action),
            host: settled.host,
            outcome: settled.outcome,
        });
    }
    for pending in journal::pending(&records).into_iter().rev() {
        let plan = &pending.plan;
        let outcome = revert_on(
            connections,
            &journal,
            settings,
            plan,
            pending.revert.as_deref(),
            pending.verify_reverted.as_ref(),
            "recover",
        )
        .await
        .map(|observed| {
            let done = match (&pending.revert, pending.confirmed) {
                (None, _) => "one-shot fault: nothing to revert".to_owned(),
                (Some(_), true) => "reverted and verified".to_owned(),
                (Some(_), false) => {
                    "reverted and verified (the inject had not been confirmed)".to_owned()
                }
            };
            match observed {
                Some(observed) => format!("{done}; {observed}"),
                None => done,
            }
        })
        .map_err(|error| error.to_string());
        report.push(Recovered {
            id: plan.id.clone(),
            kind: plan.kind.clone(),
            host: plan.host.name.clone(),
            outcome,
        });
    }
    Ok(report)
}

/// Resolves on the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(stream) => stream,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
