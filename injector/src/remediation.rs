//! Remediation actions and evidence collection as scripts, run through the same transports and
//! journaled in the same journal as faults.
//!
//! A runbook's [`Action`] on a host and service becomes an [`ActionPlan`] (pure data, like a
//! [`crate::FaultPlan`]): one script that acts and then polls a check on the host, and a
//! `settle` script that `recover` runs when the runner died before the action was recorded as
//! done (restart a unit the action may have left stopped, start an application it may have left
//! stopped). [`Injector::remediate`] journals the action *before* it runs, with the faults in
//! effect that it undoes (a thaw of an injected freeze); the fault's later revert still runs
//! (reverts are idempotent) and is journaled as already restored by that action, so the journal
//! tells which of the two brought the host back. Evidence ([`DiagnosticPlan`]) only reads, so it
//! is not journaled.

use std::time::Duration;

use scenarios::fault::FaultKind;
use scenarios::model::{Runtime, Service};
use scenarios::remediation::{Action, ActionKind, DiagnosticStep, Evidence};
use scenarios::safety;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::catalog::{
    MYSQL, is_active, is_safe_id, proc_state, start_unit, unit_cgroup, unit_property,
};
use crate::engine::Injector;
use crate::host::HostSpec;
use crate::journal::{self, Record, now_ms};
use crate::plan::{self, Check, INJECT_CAPTURE, Polled};
use crate::runtime::{lxc_attach, observed_in, through};
use crate::shell::{join, quote};

/// How long an action's check may keep failing after the action (a restarted nova service takes
/// seconds to be active again).
pub const ACTION_CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// The most bytes of evidence one diagnostic step keeps.
pub const EVIDENCE_MAX_BYTES: usize = 64 * 1024;

/// One remediation action on one host, as scripts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionPlan {
    /// Unique id (8 lowercase hex digits).
    pub id: String,
    /// The runbook it belongs to.
    pub runbook: String,
    /// The action's name (`thaw`, `command`, …).
    pub action: String,
    /// The host.
    pub host: HostSpec,
    /// The service acted on, when any.
    pub service: Option<String>,
    /// Acts, then polls the check (one round trip, see [`plan::act_then_poll`]).
    pub script: String,
    /// What the check verifies, when the action has one.
    pub check: Option<String>,
    /// Run by `recover` when the action was journaled but never recorded done: brings the host
    /// to a settled state (idempotent). `None`: nothing the action does can be left half-done.
    pub settle: Option<String>,
    /// Fault kinds whose effect the action undoes on its service and host.
    pub undoes: Vec<String>,
}

/// What one action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionDone {
    /// The action's id.
    pub id: String,
    /// Milliseconds since the epoch when it was journaled (about to run).
    pub started_ms: u64,
    /// When it was done.
    pub done_ms: u64,
    /// What it observed, when it says (`removed 3 files`).
    pub observed: Option<String>,
}

/// An action to plan: which, where, on which service.
#[derive(Debug, Clone, Copy)]
pub struct ActionInput<'a> {
    /// Unique id, see [`crate::new_fault_id`].
    pub id: &'a str,
    /// The runbook's name.
    pub runbook: &'a str,
    /// The action.
    pub action: &'a Action,
    /// The host it acts on.
    pub host: &'a HostSpec,
    /// The service it acts on (the suspect, or the cache or broker), when it needs one.
    pub service: Option<&'a Service>,
}

/// The unit and where its scripts run (the host, or inside an LXC container).
struct UnitPlace<'a> {
    unit: &'a str,
    lxc: Option<String>,
}

impl UnitPlace<'_> {
    fn wrap(&self, script: String) -> String {
        match &self.lxc {
            Some(prefix) => through(prefix, &script),
            None => script,
        }
    }
}

fn unit_place<'a>(
    service: &'a Service,
    host: &HostSpec,
    action: &str,
) -> Result<UnitPlace<'a>, Error> {
    match &service.runtime {
        Runtime::Unit(unit) => Ok(UnitPlace {
            unit: unit.as_str(),
            lxc: None,
        }),
        Runtime::Lxc { unit, .. } => {
            let container = service
                .runtime
                .lxc_container_on(&host.name)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "{} has no LXC container on {}",
                        service.name, host.name
                    ))
                })?;
            Ok(UnitPlace {
                unit: unit.as_str(),
                lxc: Some(lxc_attach(container.as_str())),
            })
        }
        Runtime::Container { .. } => Err(Error::Invalid(format!(
            "{action} of a container ({}) is not supported",
            service.runtime.describe()
        ))),
    }
}

/// Shell that thaws a unit's cgroup when it is frozen (new processes of a frozen cgroup would
/// start frozen) and continues its stopped processes.
fn thaw_unit(unit: &str) -> String {
    format!(
        "{}; if [ -n \"$cg\" ]; then [ ! -w \"$cg/cgroup.freeze\" ] || echo 0 > \"$cg/cgroup.freeze\"; while read -r q; do kill -s CONT \"$q\" 2>/dev/null; done < \"$cg/cgroup.procs\"; fi; true",
        unit_cgroup(unit)
    )
}

/// The unit runs with a main PID other than the one the action printed last (`@INJ@`).
fn runs_anew(unit: &str) -> String {
    format!(
        "{} && pid={} && [ \"$pid\" -gt 0 ] && [ \"$pid\" != {INJECT_CAPTURE} ]",
        is_active(unit),
        unit_property(unit, "MainPID")
    )
}

impl ActionInput<'_> {
    fn service(&self) -> Result<&Service, Error> {
        self.service.ok_or_else(|| {
            Error::Invalid(format!(
                "{} needs a service to act on",
                self.action.kind.name()
            ))
        })
    }

    /// Builds the plan; refuses what validation refuses too (defence in depth).
    pub fn plan(&self) -> Result<ActionPlan, Error> {
        if !is_safe_id(self.id) {
            return Err(Error::Invalid(format!(
                "action id {:?} must be 8 lowercase hex digits",
                self.id
            )));
        }
        let name = self.action.kind.name();
        // (action, check, settle)
        let (action, check, settle): (String, Option<Check>, Option<String>) = match &self.action.kind {
            ActionKind::RestartService | ActionKind::KillHungProcess => {
                let service = self.service()?;
                if let Some(guarded) = service
                    .runtime
                    .host_unit()
                    .and_then(|unit| safety::unit_identity(unit.as_str()))
                {
                    return Err(Error::Refused(format!(
                        "{name} may not act on {} ({})",
                        service.name,
                        guarded.describe()
                    )));
                }
                if let (ActionKind::RestartService, Runtime::Container { engine, name: ctr, unit }) =
                    (&self.action.kind, &service.runtime)
                {
                    let (act, check) = match unit {
                        Some(unit) => (
                            join(&["systemctl", "restart", unit.as_str()]),
                            is_active(unit.as_str()),
                        ),
                        None => (
                            join(&[engine.name(), "restart", ctr.as_str()]),
                            format!(
                                "[ \"$({})\" = true ]",
                                join(&[engine.name(), "inspect", "-f", "{{.State.Running}}", ctr.as_str()])
                            ),
                        ),
                    };
                    (
                        act,
                        Some(Check {
                            what: format!("{} runs", service.name),
                            script: check,
                        }),
                        None,
                    )
                } else {
                    let place = unit_place(service, self.host, name)?;
                    let unit = place.unit;
                    let old_pid = "echo \"${pid:-0}\"";
                    let act = match self.action.kind {
                        ActionKind::KillHungProcess => format!(
                            "{thaw}; pid={main}; if [ \"$pid\" -gt 0 ]; then kill -s KILL \"$pid\"; n=0; while [ -d \"/proc/$pid\" ] && [ $n -lt 100 ]; do {state}; case $st in Z*) break;; esac; sleep 0.05; n=$((n+1)); done; fi; {start}; {old_pid}",
                            thaw = thaw_unit(unit),
                            main = unit_property(unit, "MainPID"),
                            state = proc_state("$pid"),
                            start = start_unit(unit),
                        ),
                        _ => format!(
                            "{thaw}; pid={main}; {} 2>/dev/null; {} && {old_pid}",
                            join(&["systemctl", "reset-failed", unit]),
                            join(&["systemctl", "restart", unit]),
                            thaw = thaw_unit(unit),
                            main = unit_property(unit, "MainPID"),
                        ),
                    };
                    (
                        place.wrap(act),
                        Some(Check {
                            what: format!("{unit} runs with a new main process"),
                            script: place.wrap(runs_anew(unit)),
                        }),
                        Some(place.wrap(format!(
                            "{}; {} || {{ {}; }}",
                            thaw_unit(unit),
                            is_active(unit),
                            start_unit(unit)
                        ))),
                    )
                }
            }
            ActionKind::Thaw => {
                let service = self.service()?;
                let place = unit_place(service, self.host, name)?;
                let unit = place.unit;
                let thawed = format!(
                    "{}; [ -n \"$cg\" ] && {{ [ ! -f \"$cg/cgroup.events\" ] || grep -qx 'frozen 0' \"$cg/cgroup.events\"; }} && pid={} && [ \"$pid\" -gt 0 ] && {{ {}; case $st in T*) false;; *) true;; esac; }}",
                    unit_cgroup(unit),
                    unit_property(unit, "MainPID"),
                    proc_state("$pid")
                );
                (
                    place.wrap(thaw_unit(unit)),
                    Some(Check {
                        what: format!("{unit} is thawed and its main process runs"),
                        script: place.wrap(thawed),
                    }),
                    Some(place.wrap(thaw_unit(unit))),
                )
            }
            ActionKind::FreeDisk { paths, files } => {
                let mut act = Vec::new();
                let mut left = Vec::new();
                for path in paths {
                    // Judged again here by the tree the path normalizes into.
                    let normalized = safety::normalize_path(path.as_str());
                    if let Some(tree) = safety::protected_tree(&normalized) {
                        return Err(Error::Refused(format!(
                            "free-disk may not remove files under {normalized} (protected {})",
                            tree.path
                        )));
                    }
                    let find = |tail: &[&str]| {
                        let mut argv = vec!["find", normalized.as_str(), "-xdev", "-type", "f", "-name", files.as_str()];
                        argv.extend_from_slice(tail);
                        join(&argv)
                    };
                    act.push(format!(
                        "if [ -d {p} ]; then n=$({} | wc -l); bfly_n=$((bfly_n + n)); fi",
                        find(&["-print", "-delete"]),
                        p = quote(&normalized)
                    ));
                    left.push(format!(
                        "{{ [ ! -d {p} ] || [ -z \"$({})\" ]; }}",
                        find(&["-print", "-quit"]),
                        p = quote(&normalized)
                    ));
                }
                (
                    format!(
                        "bfly_n=0; {}; echo \"{}removed $bfly_n files\"",
                        act.join("; "),
                        crate::runtime::OBSERVED
                    ),
                    Some(Check {
                        what: format!("no file named {files} is left"),
                        script: left.join(" && "),
                    }),
                    None,
                )
            }
            ActionKind::FlushCache => {
                let service = self.service()?;
                let port = service.ports.first().ok_or_else(|| {
                    Error::Invalid(format!("flush-cache needs the port of {}", service.name))
                })?;
                // memcached's text protocol over bash's /dev/tcp: no client to install.
                let talk = format!(
                    "exec 3<>/dev/tcp/127.0.0.1/{port} && printf 'flush_all\\r\\n' >&3 && read -r -t 5 l <&3 && [ \"${{l%$'\\r'}}\" = OK ]"
                );
                (join(&["bash", "-c", &talk]), None, None)
            }
            ActionKind::RestartBrokerApp => (
                "rabbitmqctl -q stop_app && rabbitmqctl -q start_app".to_owned(),
                Some(Check {
                    what: "the RabbitMQ application runs".into(),
                    script: "rabbitmq-diagnostics -q check_running >/dev/null".into(),
                }),
                Some("rabbitmq-diagnostics -q check_running >/dev/null 2>&1 || rabbitmqctl -q start_app".into()),
            ),
            ActionKind::RebootHost => (
                // A timer, so that the command returns before the host (and the SSH session) goes.
                join(&["systemd-run", "--quiet", "--collect", "--on-active=2s", "systemctl", "reboot"]),
                None,
                None,
            ),
            ActionKind::Command { argv } => (join(argv), None, None),
        };
        let script = match &check {
            Some(check) => plan::act_then_poll(&action, &check.script, ACTION_CHECK_TIMEOUT),
            None => action,
        };
        Ok(ActionPlan {
            id: self.id.to_owned(),
            runbook: self.runbook.to_owned(),
            action: name.to_owned(),
            host: self.host.clone(),
            service: self.service.map(|s| s.name.to_string()),
            script,
            check: check.map(|c| c.what),
            settle,
            undoes: self
                .action
                .kind
                .undoes()
                .iter()
                .map(|kind| kind.name().to_owned())
                .collect(),
        })
    }
}

/// A fault in effect, as [`ActionPlan::restores`] reads it.
#[derive(Debug, Clone, Copy)]
pub struct InEffect<'a> {
    /// Fault id.
    pub id: &'a str,
    /// Fault kind.
    pub kind: FaultKind,
    /// Host name.
    pub host: &'a str,
    /// The service it targets, when any.
    pub service: Option<&'a str>,
}

impl ActionPlan {
    /// The faults in effect that this action undoes: the same host, the same service (or none
    /// named, for host-wide faults such as a disk fill), a kind the action undoes.
    pub fn restores(&self, in_effect: &[InEffect<'_>]) -> Vec<String> {
        in_effect
            .iter()
            .filter(|fault| {
                fault.host == self.host.name
                    && self.undoes.iter().any(|kind| kind == fault.kind.name())
                    && (fault.service.is_none()
                        || self.service.is_none()
                        || fault.service == self.service.as_deref())
            })
            .map(|fault| fault.id.to_owned())
            .collect()
    }

    /// What `--dry-run` prints for the action.
    pub fn dry_run(&self) -> String {
        let mut out = format!(
            "action {} ({}) of runbook {} on {}{}\n  run: {}\n",
            self.id,
            self.action,
            self.runbook,
            self.host.name,
            self.service
                .as_deref()
                .map(|s| format!(", service {s}"))
                .unwrap_or_default(),
            self.script.replace('\n', "\n       ")
        );
        if let Some(check) = &self.check {
            out.push_str(&format!("  check: {check}\n"));
        }
        if let Some(settle) = &self.settle {
            out.push_str(&format!("  settle (recover): {settle}\n"));
        }
        out
    }
}

/// One evidence collection on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticPlan {
    /// What it collects (`unit-journal`, or the command's program).
    pub name: String,
    /// The host.
    pub host: HostSpec,
    /// The script; its stdout is the evidence, cut to [`EVIDENCE_MAX_BYTES`].
    pub script: String,
}

/// Plans one diagnostic step on `host`: `service` is the suspect (or, for broker and database
/// collections, the broker or database), `since_s` the fault's time in seconds since the epoch.
pub fn plan_diagnostic(
    step: &DiagnosticStep,
    host: &HostSpec,
    service: Option<&Service>,
    since_s: u64,
) -> Result<DiagnosticPlan, Error> {
    let unit_of = |what: &str| -> Result<UnitPlace<'_>, Error> {
        let service = service.ok_or_else(|| Error::Invalid(format!("{what} needs a service")))?;
        unit_place(service, host, what)
    };
    let (name, script) = match step {
        DiagnosticStep::Command(argv) => (argv.first().cloned().unwrap_or_default(), join(argv)),
        DiagnosticStep::Collect(evidence) => {
            let script = match evidence {
                Evidence::UnitJournal => {
                    let place = unit_of(evidence.as_str())?;
                    place.wrap(join(&[
                        "journalctl",
                        "-u",
                        place.unit,
                        &format!("--since=@{since_s}"),
                        "--no-pager",
                        "-n",
                        "200",
                        "-o",
                        "short-iso",
                    ]))
                }
                Evidence::UnitStatus => {
                    let place = unit_of(evidence.as_str())?;
                    place.wrap(format!(
                        "{}; true",
                        join(&["systemctl", "status", "--no-pager", "-l", "-n", "0", place.unit])
                    ))
                }
                Evidence::ProcessState => {
                    let place = unit_of(evidence.as_str())?;
                    place.wrap(format!(
                        "{}; [ -z \"$cg\" ] || {{ cat \"$cg/cgroup.events\" 2>/dev/null; pids=; while read -r q; do pids=\"$pids,$q\"; done < \"$cg/cgroup.procs\"; [ -z \"$pids\" ] || ps -o pid,stat,wchan:24,etime,comm -p \"${{pids#,}}\"; }}; true",
                        unit_cgroup(place.unit)
                    ))
                }
                Evidence::DiskUsage => "df -h -x tmpfs -x devtmpfs -x overlay; true".to_owned(),
                Evidence::BrokerQueues => {
                    "rabbitmqctl -q list_queues name messages consumers --no-table-headers 2>&1 | sort -k2 -n -r | head -50"
                        .to_owned()
                }
                Evidence::BrokerConnections => {
                    "rabbitmqctl -q list_connections user peer_host state --no-table-headers 2>&1 | head -100"
                        .to_owned()
                }
                Evidence::DbProcesses => format!(
                    "{MYSQL} && \"$m\" -e 'SHOW FULL PROCESSLIST' 2>&1 | head -100"
                ),
            };
            (evidence.as_str().to_owned(), script)
        }
    };
    Ok(DiagnosticPlan {
        name,
        host: host.clone(),
        script: format!("{{ {script}\n}} 2>&1 | head -c {EVIDENCE_MAX_BYTES}"),
    })
}

impl Injector {
    /// Journals the action with the faults in effect it restores, runs it and its check, and
    /// journals the outcome. A runner that dies in between leaves the action pending for
    /// [`crate::recover`], which settles it.
    pub async fn remediate(
        &self,
        plan: &ActionPlan,
        restores: &[String],
    ) -> Result<ActionDone, Error> {
        let started_ms = now_ms();
        self.journal().append(&Record::Remediating {
            at_ms: started_ms,
            action: Box::new(plan.clone()),
            restores: restores.to_vec(),
        })?;
        let result = run_action(self, plan).await;
        let done_ms = now_ms();
        self.journal().append(&Record::Remediated {
            at_ms: done_ms,
            id: plan.id.clone(),
            by: "runner".into(),
            error: result.as_ref().err().map(|e| e.to_string()),
        })?;
        result.map(|observed| ActionDone {
            id: plan.id.clone(),
            started_ms,
            done_ms,
            observed,
        })
    }

    /// Runs a diagnostic step; returns its output (evidence), bounded.
    pub async fn collect(&self, plan: &DiagnosticPlan) -> Result<String, Error> {
        let output = self.connections().run(&plan.host, &plan.script).await?;
        let mut text = output.stdout;
        if text.len() > EVIDENCE_MAX_BYTES {
            let mut cut = EVIDENCE_MAX_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        Ok(text)
    }
}

async fn run_action(injector: &Injector, plan: &ActionPlan) -> Result<Option<String>, Error> {
    let failed = |output: String| Error::Remediation {
        host: plan.host.name.clone(),
        action: plan.action.clone(),
        output,
    };
    let output = injector.connections().run(&plan.host, &plan.script).await?;
    if !output.success() {
        return Err(failed(output.describe()));
    }
    let observed = observed_in(&output.stdout);
    let Some(what) = &plan.check else {
        return Ok(observed);
    };
    match Polled::from_stdout(&output.stdout) {
        Polled::Held(_) => Ok(observed),
        Polled::TimedOut(_) => Err(failed(format!(
            "{what} does not hold after {:?} ({})",
            ACTION_CHECK_TIMEOUT,
            output.describe()
        ))),
        Polled::Unchecked(_) => Err(failed(format!(
            "the host did not report whether {what} ({})",
            output.describe()
        ))),
    }
}

/// What `recover` did for one action left pending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// Action id.
    pub id: String,
    /// Action name.
    pub action: String,
    /// Host name.
    pub host: String,
    /// `Ok(description)` or the error.
    pub outcome: Result<String, String>,
}

/// Settles every action of the journal that was announced and never recorded done: runs its
/// settle script and journals the outcome. Running it again finds nothing left.
pub(crate) async fn settle_pending(
    records: &[Record],
    journal: &journal::Journal,
    connections: &crate::transport::Connections,
) -> Result<Vec<Settled>, Error> {
    let mut report = Vec::new();
    for action in journal::pending_actions(records) {
        let outcome = match &action.settle {
            None => Ok("nothing to settle: the action cannot be left half-done".to_owned()),
            Some(script) => match connections.run(&action.host, script).await {
                Ok(output) if output.success() => Ok("settled".to_owned()),
                Ok(output) => Err(format!("the settle script failed: {}", output.describe())),
                Err(error) => Err(error.to_string()),
            },
        };
        journal.append(&Record::Remediated {
            at_ms: now_ms(),
            id: action.id.clone(),
            by: "recover".into(),
            error: outcome.as_ref().err().cloned(),
        })?;
        report.push(Settled {
            id: action.id.clone(),
            action: action.action.clone(),
            host: action.host.name.clone(),
            outcome,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
