//! The `remediation:` section: runbooks that collect evidence about an alarm's suspect and repair
//! it, and the pure rules that decide which runbook answers an alarm and whether an action may
//! run now.
//!
//! Three parts, in the order data flows:
//! - the raw, spanned types ([`RawRemediation`] and below), which also generate the JSON Schema;
//! - validation (called by the `validate` module), which turns them into the checked
//!   [`Remediation`] while collecting every problem as a located diagnostic;
//! - [`Remediation::select`] (which runbook matches an alarm, on which service and host) and
//!   [`Governor`] (the guardrails: hold time, most actions per window, never during a baseline,
//!   only on hosts the campaign owns). Both are pure: the clock is a parameter.
//!
//! The injector turns a chosen [`Action`] into scripts; this module only says what an action *is*.

use std::collections::VecDeque;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::diag::{quoted, suggestion};
use crate::fault::FaultKind;
use crate::model::{Detector, DetectorSource, Host, Runtime, Service, ServiceFunction, Testbed};
use crate::raw::{Pos, Scalar, Sp};
use crate::safety;
use crate::units::{Ident, PathName};
use crate::validate::Checker;

// ---------------------------------------------------------------------------------------------
// Raw types.

/// Runbooks that diagnose and repair what the detectors alarm about.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRemediation {
    /// `off` (runbooks are checked, nothing runs), `suggest` (collect evidence and write what
    /// would be done, act on nothing; the default) or `auto` (act once an alarm has held for
    /// `hold`).
    #[schemars(extend("enum" = ["off", "suggest", "auto", null]))]
    pub mode: Option<Sp<String>>,
    /// How long an alarm must hold (keep being raised) before `auto` acts, e.g. `5s` (default
    /// `5s`).
    pub hold: Option<Sp<Scalar>>,
    /// The most actions run in any window of `per` (default 3).
    pub max_actions: Option<Sp<Scalar>>,
    /// The sliding window `max_actions` counts over (default `10m`).
    pub per: Option<Sp<Scalar>>,
    /// The runbooks, tried in order: the first whose `when` matches an alarm answers it.
    pub runbooks: Sp<Vec<Sp<RawRunbook>>>,
}

/// One runbook: which alarms it answers, the evidence it collects, the actions it takes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRunbook {
    /// Unique runbook name.
    pub name: Sp<String>,
    /// Which alarms it answers (every alarm when absent).
    pub when: Option<Sp<RawAlarmMatch>>,
    /// Evidence collected on the suspect's host, attached to the report.
    pub diagnostics: Option<Vec<Sp<RawDiagnosticStep>>>,
    /// Repairs, run in order (in `auto` mode).
    pub actions: Option<Vec<Sp<RawAction>>>,
}

/// What an alarm must say for a runbook to answer it. Every condition given must hold.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAlarmMatch {
    /// The top suspect is this service of the inventory.
    pub service: Option<Sp<String>>,
    /// The top suspect's `function:` in the inventory.
    #[schemars(extend("enum" = ["api", "worker", "database", "broker", "cache", "agent", null]))]
    pub function: Option<Sp<String>>,
    /// The alarm comes from this detector of the campaign.
    pub detector: Option<Sp<String>>,
    /// The kind of detector that raised it: `fingerprint`, `timeout` or `external`.
    #[schemars(extend("enum" = ["fingerprint", "timeout", "external", null]))]
    pub alarm: Option<Sp<String>>,
    /// The fault kind the detector classified the failure as, e.g. `process-freeze`.
    pub fault: Option<Sp<String>>,
    /// The lowest alarm score answered, `0..=1` (default 0).
    pub min_score: Option<Sp<Scalar>>,
}

/// One evidence-collecting step: a built-in collection or a command.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDiagnosticStep {
    /// A built-in collection: `unit-journal` (the unit's journal since the fault),
    /// `unit-status`, `process-state`, `disk-usage`, `broker-queues`, `broker-connections` or
    /// `db-processes`.
    #[schemars(extend("enum" = ["unit-journal", "unit-status", "process-state", "disk-usage", "broker-queues", "broker-connections", "db-processes", null]))]
    pub collect: Option<Sp<String>>,
    /// A command (argv, run on the suspect's host without a shell's interpretation: every
    /// argument is quoted).
    pub command: Option<Sp<Vec<Sp<String>>>>,
}

/// One repair: an action of the catalog or a command.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    /// An action of the catalog: `restart-service`, `kill-hung-process`, `thaw`, `free-disk`,
    /// `flush-cache`, `restart-broker-app` or `reboot-host`.
    #[schemars(extend("enum" = ["restart-service", "kill-hung-process", "thaw", "free-disk", "flush-cache", "restart-broker-app", "reboot-host", null]))]
    pub action: Option<Sp<String>>,
    /// A user-defined repair (argv, every argument quoted), run on the suspect's host.
    pub command: Option<Sp<Vec<Sp<String>>>>,
    /// The service acted on (default: the alarm's top suspect; for `flush-cache` the
    /// inventory's cache, for `restart-broker-app` its broker).
    pub service: Option<Sp<String>>,
    /// Directories whose files `free-disk` may remove (allow-list, judged after normalization).
    pub paths: Option<Vec<Sp<String>>>,
    /// The file names `free-disk` removes, a glob of letters, digits, `. _ - * ?` (default `*`).
    pub files: Option<Sp<String>>,
    /// Allow `reboot-host`, which takes every service of the host down for a while.
    pub allow_destructive: Option<Sp<bool>>,
}

// ---------------------------------------------------------------------------------------------
// Checked types.

/// The validated `remediation:` section.
#[derive(Debug, Clone, Serialize)]
pub struct Remediation {
    /// What the runner does with a matched alarm.
    pub mode: Mode,
    /// How long an alarm must hold before `auto` acts.
    #[serde(with = "crate::units::duration_serde")]
    pub hold: Duration,
    /// The most actions in any window of `per`.
    pub max_actions: u32,
    /// The sliding window of `max_actions`.
    #[serde(with = "crate::units::duration_serde")]
    pub per: Duration,
    /// The runbooks, in the order they are tried.
    pub runbooks: Vec<Runbook>,
}

/// What the runner does with an alarm a runbook matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Nothing runs (the runbooks are still checked).
    Off,
    /// Evidence is collected and the actions that would run are written; nothing is repaired.
    Suggest,
    /// Evidence is collected and the actions run once the alarm held for the hold time.
    Auto,
}

impl Mode {
    const NAMES: [&'static str; 3] = ["off", "suggest", "auto"];

    /// Its name in campaigns.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Suggest => "suggest",
            Mode::Auto => "auto",
        }
    }

    fn parse(name: &str) -> Option<Mode> {
        [Mode::Off, Mode::Suggest, Mode::Auto]
            .into_iter()
            .find(|mode| mode.as_str() == name)
    }
}

/// A validated runbook.
#[derive(Debug, Clone, Serialize)]
pub struct Runbook {
    /// Its name, unique in the campaign.
    pub name: Ident,
    /// Which alarms it answers.
    pub when: AlarmMatch,
    /// Evidence it collects.
    pub diagnostics: Vec<DiagnosticStep>,
    /// Repairs it runs, in order.
    pub actions: Vec<Action>,
}

/// The conditions of a runbook's `when:`; absent ones hold for every alarm.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlarmMatch {
    /// The top suspect's service.
    pub service: Option<Ident>,
    /// The top suspect's function in the inventory.
    pub function: Option<ServiceFunction>,
    /// The campaign detector that raised the alarm.
    pub detector: Option<Ident>,
    /// The kind of detector that raised it.
    pub alarm: Option<AlarmKind>,
    /// The classified fault kind.
    pub fault: Option<FaultKind>,
    /// The lowest score answered.
    pub min_score: f64,
}

/// The kind of detector an alarm comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlarmKind {
    /// The built-in fingerprint detector (edit distance to the learned fingerprints).
    Fingerprint,
    /// The built-in timeout detector (a call unanswered for longer than learned).
    Timeout,
    /// An external detector (a command or a file of alarms).
    External,
}

impl AlarmKind {
    const NAMES: [&'static str; 3] = ["fingerprint", "timeout", "external"];

    /// Its name in campaigns.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::Fingerprint => "fingerprint",
            AlarmKind::Timeout => "timeout",
            AlarmKind::External => "external",
        }
    }

    fn parse(name: &str) -> Option<AlarmKind> {
        [
            AlarmKind::Fingerprint,
            AlarmKind::Timeout,
            AlarmKind::External,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }

    /// The kind of the campaign's detector.
    pub fn of(detector: &Detector) -> AlarmKind {
        match &detector.source {
            DetectorSource::Builtin { builtin, .. } if builtin == "timeout" => AlarmKind::Timeout,
            DetectorSource::Builtin { .. } => AlarmKind::Fingerprint,
            DetectorSource::Command { .. } | DetectorSource::AlarmsFile { .. } => {
                AlarmKind::External
            }
        }
    }
}

/// One evidence-collecting step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DiagnosticStep {
    /// A built-in collection.
    Collect(Evidence),
    /// A user command (argv).
    Command(Vec<String>),
}

/// A built-in evidence collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Evidence {
    /// The suspect unit's journal since the fault.
    UnitJournal,
    /// `systemctl status` of the suspect unit.
    UnitStatus,
    /// The state of the suspect's processes.
    ProcessState,
    /// `df` of the host.
    DiskUsage,
    /// The broker's queues with their message and consumer counts.
    BrokerQueues,
    /// The broker's client connections.
    BrokerConnections,
    /// The database's process list.
    DbProcesses,
}

impl Evidence {
    /// Every collection, as campaigns name them.
    pub const ALL: [Evidence; 7] = [
        Evidence::UnitJournal,
        Evidence::UnitStatus,
        Evidence::ProcessState,
        Evidence::DiskUsage,
        Evidence::BrokerQueues,
        Evidence::BrokerConnections,
        Evidence::DbProcesses,
    ];

    /// Its name in campaigns.
    pub fn as_str(self) -> &'static str {
        match self {
            Evidence::UnitJournal => "unit-journal",
            Evidence::UnitStatus => "unit-status",
            Evidence::ProcessState => "process-state",
            Evidence::DiskUsage => "disk-usage",
            Evidence::BrokerQueues => "broker-queues",
            Evidence::BrokerConnections => "broker-connections",
            Evidence::DbProcesses => "db-processes",
        }
    }

    /// The service function whose service the collection reads (the broker, the database), when
    /// it is not the suspect.
    pub fn reads(self) -> Option<ServiceFunction> {
        match self {
            Evidence::BrokerQueues | Evidence::BrokerConnections => Some(ServiceFunction::Broker),
            Evidence::DbProcesses => Some(ServiceFunction::Database),
            _ => None,
        }
    }
}

/// One repair, with the service it acts on when it names one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Action {
    /// What it does.
    pub kind: ActionKind,
    /// The service acted on, when the campaign names it; otherwise the alarm's top suspect, or
    /// (flush-cache, restart-broker-app) the inventory's cache or broker.
    pub service: Option<Ident>,
}

/// The catalog of repairs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "action")]
pub enum ActionKind {
    /// Restart the service's unit (or container).
    RestartService,
    /// SIGKILL the service's frozen or unresponsive main process (thawing its cgroup first, where
    /// new processes would start frozen), then start the unit.
    KillHungProcess,
    /// Undo a freeze: thaw the unit's cgroup and continue its stopped processes.
    Thaw,
    /// Remove files under allow-listed directories.
    FreeDisk {
        /// The directories, normalized.
        paths: Vec<PathName>,
        /// The file-name glob.
        files: String,
    },
    /// Empty the cache service (memcached's `flush_all`).
    FlushCache,
    /// Stop and start the RabbitMQ application (the Erlang node stays up).
    RestartBrokerApp,
    /// Reboot the host.
    RebootHost,
    /// A user-defined repair.
    Command {
        /// argv.
        argv: Vec<String>,
    },
}

impl ActionKind {
    /// Every catalog action, as campaigns name them.
    pub const NAMES: [&'static str; 7] = [
        "restart-service",
        "kill-hung-process",
        "thaw",
        "free-disk",
        "flush-cache",
        "restart-broker-app",
        "reboot-host",
    ];

    /// Its name in campaigns and reports (`command` for a user-defined one).
    pub fn name(&self) -> &'static str {
        match self {
            ActionKind::RestartService => "restart-service",
            ActionKind::KillHungProcess => "kill-hung-process",
            ActionKind::Thaw => "thaw",
            ActionKind::FreeDisk { .. } => "free-disk",
            ActionKind::FlushCache => "flush-cache",
            ActionKind::RestartBrokerApp => "restart-broker-app",
            ActionKind::RebootHost => "reboot-host",
            ActionKind::Command { .. } => "command",
        }
    }

    /// The function of the service the action acts on when the campaign names none and it is not
    /// the suspect.
    pub fn default_function(&self) -> Option<ServiceFunction> {
        match self {
            ActionKind::FlushCache => Some(ServiceFunction::Cache),
            ActionKind::RestartBrokerApp => Some(ServiceFunction::Broker),
            _ => None,
        }
    }

    /// Whether the action acts on a service (and so needs one to resolve).
    pub fn needs_service(&self) -> bool {
        matches!(
            self,
            ActionKind::RestartService
                | ActionKind::KillHungProcess
                | ActionKind::Thaw
                | ActionKind::FlushCache
                | ActionKind::RestartBrokerApp
        )
    }

    /// The fault kinds whose effect this action undoes: when one of them is in effect on the
    /// same service and host, the action restores the host before the fault's revert does, and
    /// the journal says so.
    pub fn undoes(&self) -> &'static [FaultKind] {
        match self {
            ActionKind::Thaw => &[FaultKind::ProcessFreeze],
            ActionKind::KillHungProcess => &[
                FaultKind::ProcessFreeze,
                FaultKind::ServiceStop,
                FaultKind::ServiceKill,
                FaultKind::ProcessKill,
            ],
            ActionKind::RestartService => &[
                FaultKind::ProcessFreeze,
                FaultKind::ServiceStop,
                FaultKind::ServiceKill,
                FaultKind::ProcessKill,
                FaultKind::ClockSkew,
            ],
            ActionKind::FreeDisk { .. } => &[FaultKind::DiskFill],
            ActionKind::RestartBrokerApp => &[FaultKind::RabbitmqStopApp],
            ActionKind::RebootHost => HOST_LOCAL_FAULTS,
            ActionKind::FlushCache | ActionKind::Command { .. } => &[],
        }
    }
}

/// Fault kinds whose effect lives only on the host's processes (a reboot ends them).
const HOST_LOCAL_FAULTS: &[FaultKind] = &[
    FaultKind::ProcessKill,
    FaultKind::ServiceStop,
    FaultKind::ServiceKill,
    FaultKind::ProcessFreeze,
    FaultKind::CpuStress,
    FaultKind::MemoryStress,
    FaultKind::ClockSkew,
];

// ---------------------------------------------------------------------------------------------
// Validation.

/// Default hold time of `auto`.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(5);
/// Default most actions per window.
pub const DEFAULT_MAX_ACTIONS: u32 = 3;
/// Default window of `max_actions`.
pub const DEFAULT_PER: Duration = Duration::from_secs(600);
/// The longest argument of a user command.
const MAX_ARG_CHARS: usize = 4096;
/// The most arguments of a user command.
const MAX_ARGS: usize = 64;

/// Validates the `remediation:` section against the campaign's inventory and detectors.
pub(crate) fn check(
    check: &mut Checker<'_>,
    raw: &Sp<RawRemediation>,
    testbed: Option<&Testbed>,
    detectors: &[Detector],
    detector_names: &[&str],
) -> Option<Remediation> {
    let r = &raw.value;
    let mode = match &r.mode {
        None => Some(Mode::Suggest),
        Some(mode) => Mode::parse(&mode.value).or_else(|| {
            check.error_hint(
                mode.at,
                format!("unknown remediation mode {}", quoted(&mode.value)),
                suggestion(&mode.value, &Mode::NAMES),
            );
            None
        }),
    };
    let hold = r.hold.as_ref().map_or(Some(DEFAULT_HOLD), |hold| {
        check.duration(hold, "hold", true)
    });
    let max_actions = r
        .max_actions
        .as_ref()
        .map_or(Some(DEFAULT_MAX_ACTIONS), |m| {
            check.integer(m, "max_actions", 1..=1000).map(|n| n as u32)
        });
    let per = r
        .per
        .as_ref()
        .map_or(Some(DEFAULT_PER), |per| check.duration(per, "per", false));
    if mode.is_some_and(|mode| mode != Mode::Off) && detector_names.is_empty() {
        check.error_hint(
            pos_of(&r.mode, raw.at),
            "remediation acts on alarms, but the campaign has no detector",
            "add a detector (`detectors: [{name: fingerprint, builtin: fingerprint}]`) or set `mode: off`",
        );
    }
    if r.runbooks.value.is_empty() {
        check.error_hint(
            r.runbooks.at,
            "the remediation has no runbook",
            "add a runbook with `name:`, `when:` and `actions:`",
        );
    }
    check.unique(
        r.runbooks.value.iter().map(|runbook| &runbook.value.name),
        "runbook name",
    );
    let mut runbooks = Vec::new();
    let mut all_ok = true;
    for runbook in &r.runbooks.value {
        match check_runbook(check, runbook, testbed, detectors, detector_names) {
            Some(runbook) => runbooks.push(runbook),
            None => all_ok = false,
        }
    }
    match (mode, hold, max_actions, per, all_ok) {
        (Some(mode), Some(hold), Some(max_actions), Some(per), true) => Some(Remediation {
            mode,
            hold,
            max_actions,
            per,
            runbooks,
        }),
        _ => None,
    }
}

fn pos_of<T>(value: &Option<Sp<T>>, fallback: Pos) -> Pos {
    value.as_ref().map_or(fallback, |v| v.at)
}

fn service_names(testbed: &Testbed) -> Vec<&str> {
    testbed.services.iter().map(|s| s.name.as_str()).collect()
}

/// Looks a service of the inventory up, reporting an unknown name with a did-you-mean.
fn known_service<'t>(
    check: &mut Checker<'_>,
    name: &Sp<String>,
    testbed: Option<&'t Testbed>,
) -> Option<Option<&'t Service>> {
    let ident = check.ident(name, "service name")?;
    let Some(testbed) = testbed else {
        // The inventory failed its own checks: nothing to cross-check against.
        return Some(None);
    };
    match testbed.services.iter().find(|s| s.name == ident) {
        Some(service) => Some(Some(service)),
        None => {
            check.error_hint(
                name.at,
                format!("unknown service {}", quoted(&name.value)),
                suggestion(&name.value, &service_names(testbed)),
            );
            None
        }
    }
}

fn check_runbook(
    check: &mut Checker<'_>,
    raw: &Sp<RawRunbook>,
    testbed: Option<&Testbed>,
    detectors: &[Detector],
    detector_names: &[&str],
) -> Option<Runbook> {
    let b = &raw.value;
    let name = check.ident(&b.name, "runbook name");
    let (when, when_service) = match &b.when {
        Some(when) => check_when(check, when, testbed, detectors, detector_names),
        None => (Some(AlarmMatch::default()), None),
    };
    let diagnostics_raw = b.diagnostics.as_deref().unwrap_or_default();
    let actions_raw = b.actions.as_deref().unwrap_or_default();
    if diagnostics_raw.is_empty() && actions_raw.is_empty() {
        check.error_hint(
            b.name.at,
            format!(
                "runbook {} neither collects evidence nor acts",
                quoted(&b.name.value)
            ),
            "add `diagnostics:` or `actions:`",
        );
    }
    let mut ok = true;
    let mut diagnostics = Vec::new();
    for step in diagnostics_raw {
        match check_step(check, step, testbed) {
            Some(step) => diagnostics.push(step),
            None => ok = false,
        }
    }
    let mut actions = Vec::new();
    for action in actions_raw {
        match check_action(check, action, testbed, when_service) {
            Some(action) => actions.push(action),
            None => ok = false,
        }
    }
    match (name, when, ok) {
        (Some(name), Some(when), true) => Some(Runbook {
            name,
            when,
            diagnostics,
            actions,
        }),
        _ => None,
    }
}

/// Checks a `when:`; also returns the service it names, for the actions' checks.
fn check_when<'t>(
    check: &mut Checker<'_>,
    raw: &Sp<RawAlarmMatch>,
    testbed: Option<&'t Testbed>,
    detectors: &[Detector],
    detector_names: &[&str],
) -> (Option<AlarmMatch>, Option<&'t Service>) {
    let w = &raw.value;
    let mut ok = true;
    let mut service_ref = None;
    let service = match &w.service {
        None => None,
        Some(name) => match known_service(check, name, testbed) {
            Some(found) => {
                service_ref = found;
                Ident::new(&name.value).ok()
            }
            None => {
                ok = false;
                None
            }
        },
    };
    let function = match &w.function {
        None => None,
        Some(function) => match ServiceFunction::parse(&function.value) {
            Some(parsed) => {
                if let Some(service) = service_ref
                    && service.function != Some(parsed)
                {
                    check.error_hint(
                        function.at,
                        format!(
                            "service {} does not have `function: {}` in the inventory, so this runbook matches nothing",
                            quoted(service.name.as_str()),
                            parsed.as_str()
                        ),
                        "drop `function:` or `service:`",
                    );
                    ok = false;
                }
                Some(parsed)
            }
            None => {
                let names: Vec<&str> = ServiceFunction::ALL.iter().map(|f| f.as_str()).collect();
                check.error_hint(
                    function.at,
                    format!("unknown service function {}", quoted(&function.value)),
                    suggestion(&function.value, &names),
                );
                ok = false;
                None
            }
        },
    };
    let mut detector_kind = None;
    let detector = match &w.detector {
        None => None,
        Some(name) => {
            if let Some(found) = detectors.iter().find(|d| d.name.as_str() == name.value) {
                detector_kind = Some(AlarmKind::of(found));
                Some(found.name.clone())
            } else {
                let hint = if detector_names.is_empty() {
                    "the campaign has no `detectors:`".to_owned()
                } else {
                    suggestion(&name.value, detector_names)
                };
                check.error_hint(
                    name.at,
                    format!("unknown detector {}", quoted(&name.value)),
                    hint,
                );
                ok = false;
                None
            }
        }
    };
    let alarm = match &w.alarm {
        None => None,
        Some(kind) => match AlarmKind::parse(&kind.value) {
            Some(parsed) => {
                if let Some(of_detector) = detector_kind
                    && of_detector != parsed
                {
                    check.error_hint(
                        kind.at,
                        format!(
                            "detector {} raises {} alarms, not {}, so this runbook matches nothing",
                            quoted(w.detector.as_ref().map_or("", |d| d.value.as_str())),
                            of_detector.as_str(),
                            parsed.as_str()
                        ),
                        "drop `alarm:` or `detector:`",
                    );
                    ok = false;
                }
                Some(parsed)
            }
            None => {
                check.error_hint(
                    kind.at,
                    format!("unknown alarm kind {}", quoted(&kind.value)),
                    suggestion(&kind.value, &AlarmKind::NAMES),
                );
                ok = false;
                None
            }
        },
    };
    let fault = match &w.fault {
        None => None,
        Some(kind) => match FaultKind::from_name(&kind.value) {
            Some(parsed) => Some(parsed),
            None => {
                let names: Vec<&str> = crate::fault::FAULT_KINDS.iter().map(|k| k.name()).collect();
                check.error_hint(
                    kind.at,
                    format!("unknown fault kind {}", quoted(&kind.value)),
                    suggestion(&kind.value, &names),
                );
                ok = false;
                None
            }
        },
    };
    let min_score = match &w.min_score {
        None => Some(0.0),
        Some(score) => check.number(score, "min_score", 0.0..=1.0),
    };
    let matcher = match (ok, min_score) {
        (true, Some(min_score)) => Some(AlarmMatch {
            service,
            function,
            detector,
            alarm,
            fault,
            min_score,
        }),
        _ => None,
    };
    (matcher, service_ref)
}

fn collect_names() -> Vec<&'static str> {
    Evidence::ALL.iter().map(|e| e.as_str()).collect()
}

fn check_step(
    check: &mut Checker<'_>,
    raw: &Sp<RawDiagnosticStep>,
    testbed: Option<&Testbed>,
) -> Option<DiagnosticStep> {
    let s = &raw.value;
    match (&s.collect, &s.command) {
        (Some(collect), None) => {
            let names = collect_names();
            let Some(evidence) = Evidence::ALL
                .into_iter()
                .find(|e| e.as_str() == collect.value)
            else {
                check.error_hint(
                    collect.at,
                    format!("unknown evidence {}", quoted(&collect.value)),
                    suggestion(&collect.value, &names),
                );
                return None;
            };
            if let (Some(function), Some(testbed)) = (evidence.reads(), testbed)
                && !testbed
                    .services
                    .iter()
                    .any(|s| s.function == Some(function))
            {
                check.error_hint(
                    collect.at,
                    format!(
                        "{} reads the {}, but no service of the inventory has `function: {}`",
                        evidence.as_str(),
                        function.as_str(),
                        function.as_str()
                    ),
                    format!(
                        "give the {} its `function:` in the inventory",
                        function.as_str()
                    ),
                );
                return None;
            }
            Some(DiagnosticStep::Collect(evidence))
        }
        (None, Some(command)) => {
            check_argv(check, command, "diagnostic command").map(DiagnosticStep::Command)
        }
        _ => {
            check.error_hint(
                raw.at,
                "a diagnostic step is either `collect` or `command`, exactly one",
                format!(
                    "e.g. `collect: unit-journal`; known: {}",
                    collect_names().join(", ")
                ),
            );
            None
        }
    }
}

/// A user command's argv: non-empty, bounded, no control characters (a newline or NUL could not
/// survive quoting as the author meant), a program named by a plain name or an absolute path.
fn check_argv(
    check: &mut Checker<'_>,
    raw: &Sp<Vec<Sp<String>>>,
    what: &str,
) -> Option<Vec<String>> {
    let Some(program) = raw.value.first() else {
        check.error(raw.at, format!("the {what} is empty"));
        return None;
    };
    let mut ok = true;
    if raw.value.len() > MAX_ARGS {
        check.error(
            raw.at,
            format!(
                "the {what} has {} arguments; at most {MAX_ARGS}",
                raw.value.len()
            ),
        );
        ok = false;
    }
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+');
    let program_ok = if program.value.starts_with('/') {
        PathName::new(&program.value).is_ok()
    } else {
        !program.value.is_empty()
            && !program.value.starts_with('-')
            && program.value.chars().all(plain)
    };
    if !program_ok {
        check.error_hint(
            program.at,
            format!("the {what}'s program {} is not a plain name or an absolute path", quoted(&program.value)),
            "name a program such as `systemctl` or `/usr/local/bin/repair`; arguments follow as list items",
        );
        ok = false;
    }
    for argument in &raw.value {
        if argument.value.chars().count() > MAX_ARG_CHARS {
            check.error(
                argument.at,
                format!("an argument of the {what} is longer than {MAX_ARG_CHARS} characters"),
            );
            ok = false;
        } else if argument.value.chars().any(char::is_control) {
            check.error_hint(
                argument.at,
                format!("an argument of the {what} holds a control character"),
                "write one argument per list item, without newlines or tabs",
            );
            ok = false;
        }
    }
    ok.then(|| raw.value.iter().map(|a| a.value.clone()).collect())
}

/// The glob `free-disk` matches file names with.
fn is_file_glob(glob: &str) -> bool {
    !glob.is_empty()
        && glob.len() <= 255
        && !glob.starts_with('-')
        && glob != "."
        && glob != ".."
        && glob
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*' | '?'))
}

fn check_action(
    check: &mut Checker<'_>,
    raw: &Sp<RawAction>,
    testbed: Option<&Testbed>,
    when_service: Option<&Service>,
) -> Option<Action> {
    let a = &raw.value;
    let mut ok = true;
    let kind = match (&a.action, &a.command) {
        (Some(action), None) => match action.value.as_str() {
            "restart-service" => Some(ActionKind::RestartService),
            "kill-hung-process" => Some(ActionKind::KillHungProcess),
            "thaw" => Some(ActionKind::Thaw),
            "free-disk" => check_free_disk(check, raw),
            "flush-cache" => Some(ActionKind::FlushCache),
            "restart-broker-app" => Some(ActionKind::RestartBrokerApp),
            "reboot-host" => Some(ActionKind::RebootHost),
            other => {
                check.error_hint(
                    action.at,
                    format!("unknown remediation action {}", quoted(other)),
                    suggestion(other, &ActionKind::NAMES),
                );
                None
            }
        },
        (None, Some(command)) => check_argv(check, command, "remediation command")
            .map(|argv| ActionKind::Command { argv }),
        _ => {
            check.error_hint(
                raw.at,
                "an action is either `action` (from the catalog) or `command`, exactly one",
                format!("known actions: {}", ActionKind::NAMES.join(", ")),
            );
            None
        }
    };
    let kind = kind?;
    // Parameters that only one action takes.
    if !matches!(kind, ActionKind::FreeDisk { .. }) {
        for (present, name) in [
            (
                a.paths.as_ref().map(|p| p.first().map_or(raw.at, |p| p.at)),
                "paths",
            ),
            (a.files.as_ref().map(|f| f.at), "files"),
        ] {
            if let Some(at) = present {
                check.error(at, format!("`{name}` only applies to free-disk"));
                ok = false;
            }
        }
    }
    if let Some(allow) = &a.allow_destructive
        && kind != ActionKind::RebootHost
    {
        check.error(allow.at, "`allow_destructive` only applies to reboot-host");
        ok = false;
    }
    if kind == ActionKind::RebootHost && !a.allow_destructive.as_ref().is_some_and(|a| a.value) {
        check.error_hint(
            pos_of(&a.action, raw.at),
            "reboot-host takes every service of the host down",
            "set `allow_destructive: true` on the action to allow it",
        );
        ok = false;
    }
    let explicit = match &a.service {
        None => None,
        Some(name) => {
            if !kind.needs_service() {
                check.error(
                    name.at,
                    format!("`service` does not apply to {}", kind.name()),
                );
                ok = false;
                None
            } else {
                match known_service(check, name, testbed) {
                    Some(found) => found.map(|s| (s, name.at)),
                    None => {
                        ok = false;
                        None
                    }
                }
            }
        }
    };
    // The service the action will act on, when validation can already tell.
    let acted_on: Option<(&Service, Pos)> = explicit.or_else(|| {
        if let Some(function) = kind.default_function() {
            testbed
                .and_then(|t| t.services.iter().find(|s| s.function == Some(function)))
                .map(|s| (s, pos_of(&a.action, raw.at)))
        } else {
            when_service.map(|s| (s, pos_of(&a.action, raw.at)))
        }
    });
    // Otherwise (no function to look for) the alarm's top suspect, resolved when it arrives.
    if kind.needs_service()
        && acted_on.is_none()
        && testbed.is_some()
        && a.service.is_none()
        && let Some(function) = kind.default_function()
    {
        check.error_hint(
            pos_of(&a.action, raw.at),
            format!(
                "{} acts on the {}, but no service of the inventory has `function: {}`",
                kind.name(),
                function.as_str(),
                function.as_str()
            ),
            "name it with `service:` or give it its `function:` in the inventory",
        );
        ok = false;
    }
    if let Some((service, at)) = acted_on {
        ok &= check_service_for(check, &kind, service, at);
    }
    let service = a
        .service
        .as_ref()
        .and_then(|name| Ident::new(&name.value).ok());
    ok.then_some(Action { kind, service })
}

/// Whether `kind` can act on `service`: its runtime reaches what the action needs, and the
/// service is not one the injector must never stop (sshd and friends).
fn check_service_for(
    check: &mut Checker<'_>,
    kind: &ActionKind,
    service: &Service,
    at: Pos,
) -> bool {
    let name = service.name.as_str();
    if let Some(unit) = service.runtime.host_unit()
        && let Some(guarded) = safety::unit_identity(unit.as_str())
    {
        check.error(
            at,
            format!(
                "{} may not act on {} ({})",
                kind.name(),
                quoted(name),
                guarded.describe()
            ),
        );
        return false;
    }
    match (kind, &service.runtime) {
        (ActionKind::Thaw | ActionKind::KillHungProcess, Runtime::Container { .. }) => {
            check.error_hint(
                at,
                format!(
                    "{} of a container ({}) is not supported",
                    kind.name(),
                    service.runtime.describe()
                ),
                "use `restart-service`, which restarts the container",
            );
            false
        }
        (ActionKind::FlushCache, _) if service.ports.is_empty() => {
            check.error_hint(
                at,
                format!("flush-cache needs the port of {}", quoted(name)),
                "add `ports: [11211]` to the service in the inventory",
            );
            false
        }
        _ => true,
    }
}

fn check_free_disk(check: &mut Checker<'_>, raw: &Sp<RawAction>) -> Option<ActionKind> {
    let a = &raw.value;
    let Some(paths) = a.paths.as_ref().filter(|p| !p.is_empty()) else {
        check.error_hint(
            pos_of(&a.action, raw.at),
            "free-disk needs the directories it may remove files from",
            "add `paths: [/var/lib/glance/images]`",
        );
        return None;
    };
    let mut ok = true;
    let mut checked = Vec::new();
    for path in paths {
        // Judged by the tree the path falls in once normalized, not by how it is spelled.
        if !path.value.starts_with('/') {
            check.error_hint(
                path.at,
                format!("free-disk path {} is not absolute", quoted(&path.value)),
                "write an absolute directory such as /var/lib/glance/images",
            );
            ok = false;
            continue;
        }
        let normalized = safety::normalize_path(&path.value);
        if let Some(tree) = safety::protected_tree(&normalized) {
            check.error_hint(
                path.at,
                format!(
                    "free-disk may not remove files under {} (it is {}, within protected {})",
                    quoted(&path.value),
                    normalized,
                    tree.path
                ),
                "name the service's own store, e.g. /var/lib/glance/images",
            );
            ok = false;
            continue;
        }
        match PathName::new(&normalized) {
            Ok(name) => checked.push(name),
            Err(message) => {
                check.error(path.at, message);
                ok = false;
            }
        }
    }
    let files = match &a.files {
        None => "*".to_owned(),
        Some(glob) if is_file_glob(&glob.value) => glob.value.clone(),
        Some(glob) => {
            check.error_hint(
                glob.at,
                format!("invalid file glob {}", quoted(&glob.value)),
                "use letters, digits and . _ - * ? (a name, not a path)",
            );
            ok = false;
            String::new()
        }
    };
    ok.then_some(ActionKind::FreeDisk {
        paths: checked,
        files,
    })
}

// ---------------------------------------------------------------------------------------------
// Matching.

/// What an alarm says, as the matching rule reads it (the runner converts a detector's alarm).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmFacts<'a> {
    /// The campaign detector that raised it.
    pub detector: &'a str,
    /// The kind of that detector.
    pub kind: AlarmKind,
    /// The top suspect's service, when the alarm localizes.
    pub service: Option<&'a str>,
    /// The top suspect's host, when known.
    pub host: Option<&'a str>,
    /// The alarm's score.
    pub score: f64,
    /// The classified fault kind, when the detector classifies.
    pub fault_kind: Option<&'a str>,
}

/// A runbook chosen for an alarm, with where it acts.
#[derive(Debug, Clone)]
pub struct Selected<'c> {
    /// The runbook.
    pub runbook: &'c Runbook,
    /// The suspect service, when the alarm names one of the inventory.
    pub service: Option<&'c Service>,
    /// The host the runbook acts on: the suspect's, which the campaign owns.
    pub host: Option<&'c Host>,
}

/// Why no runbook acts on an alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoMatch {
    /// No runbook's conditions hold.
    NoRunbook,
    /// A runbook matched, but the suspect is on no host the campaign owns.
    NotOwned {
        /// The runbook.
        runbook: String,
        /// Why.
        reason: String,
    },
}

impl AlarmMatch {
    /// Whether the alarm meets every condition.
    pub fn matches(&self, alarm: &AlarmFacts<'_>, suspect: Option<&Service>) -> bool {
        self.detector
            .as_ref()
            .is_none_or(|d| d.as_str() == alarm.detector)
            && self.alarm.is_none_or(|kind| kind == alarm.kind)
            && self
                .fault
                .is_none_or(|fault| alarm.fault_kind == Some(fault.name()))
            && alarm.score >= self.min_score
            && self
                .service
                .as_ref()
                .is_none_or(|service| alarm.service == Some(service.as_str()))
            && self
                .function
                .is_none_or(|function| suspect.is_some_and(|s| s.function == Some(function)))
    }
}

impl Remediation {
    /// The first runbook that answers `alarm`, with the suspect's service and host. A runbook
    /// that acts needs a host the campaign owns: the alarm's host when the suspect runs there,
    /// else the suspect's only host; an alarm on a host outside the inventory, or a suspect on
    /// several hosts with none named, is refused rather than guessed.
    pub fn select<'c>(
        &'c self,
        testbed: &'c Testbed,
        alarm: &AlarmFacts<'_>,
    ) -> Result<Selected<'c>, NoMatch> {
        let suspect = alarm
            .service
            .and_then(|name| testbed.services.iter().find(|s| s.name.as_str() == name));
        let runbook = self
            .runbooks
            .iter()
            .find(|runbook| runbook.when.matches(alarm, suspect))
            .ok_or(NoMatch::NoRunbook)?;
        let not_owned = |reason: String| NoMatch::NotOwned {
            runbook: runbook.name.to_string(),
            reason,
        };
        let host = match (alarm.host, suspect) {
            (Some(host), _) => {
                let owned = testbed
                    .hosts
                    .iter()
                    .find(|h| h.name.as_str() == host)
                    .ok_or_else(|| not_owned(format!("host {host} is not in the inventory")))?;
                if let Some(service) = suspect
                    && !service.runs_on(owned)
                {
                    return Err(not_owned(format!(
                        "{} does not run on {host}",
                        service.name
                    )));
                }
                Some(owned)
            }
            (None, Some(service)) => {
                let mut on = testbed.hosts.iter().filter(|h| service.runs_on(h));
                match (on.next(), on.next()) {
                    (Some(only), None) => Some(only),
                    (None, _) => {
                        return Err(not_owned(format!(
                            "{} runs on no host of the inventory",
                            service.name
                        )));
                    }
                    (Some(_), Some(_)) => {
                        return Err(not_owned(format!(
                            "{} runs on several hosts and the alarm names none",
                            service.name
                        )));
                    }
                }
            }
            (None, None) => None,
        };
        if host.is_none() && !runbook.actions.is_empty() {
            return Err(not_owned(match alarm.service {
                Some(service) => format!("the suspect {service} is not a service of the inventory"),
                None => "the alarm names no suspect".to_owned(),
            }));
        }
        Ok(Selected {
            runbook,
            service: suspect,
            host,
        })
    }
}

/// The service an action acts on, given the suspect: none for an action on the host (free-disk,
/// reboot-host, a command), else the one it names, else the inventory's cache or broker for the
/// actions that act on them, else the suspect.
pub fn acted_on<'t>(
    action: &Action,
    testbed: &'t Testbed,
    suspect: Option<&'t Service>,
) -> Option<&'t Service> {
    if !action.kind.needs_service() {
        return None;
    }
    if let Some(name) = &action.service {
        return testbed.services.iter().find(|s| &s.name == name);
    }
    match action.kind.default_function() {
        Some(function) => testbed
            .services
            .iter()
            .find(|s| s.function == Some(function)),
        None => suspect,
    }
}

// ---------------------------------------------------------------------------------------------
// Guardrails.

/// Where the run stands when an action is about to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A baseline window: nothing is repaired while the steady state is measured.
    Baseline,
    /// A fault window.
    Fault,
    /// A recovery window.
    Recovery,
    /// Between windows (health checks, cool-downs).
    Between,
}

/// Why an action was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The mode is not `auto`.
    NotAuto(Mode),
    /// The alarm has not held for the hold time yet.
    NotHeld {
        /// How long it has held.
        held: Duration,
        /// How long it must.
        hold: Duration,
    },
    /// A baseline is being measured.
    DuringBaseline,
    /// `max_actions` actions already ran in the last `per`.
    TooMany {
        /// The limit.
        max_actions: u32,
        /// Its window.
        per: Duration,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::units::format_duration as d;
        match self {
            Refusal::NotAuto(mode) => write!(f, "mode is {}: acting on nothing", mode.as_str()),
            Refusal::NotHeld { held, hold } => {
                write!(
                    f,
                    "the alarm held {} of the {} required",
                    d(*held),
                    d(*hold)
                )
            }
            Refusal::DuringBaseline => f.write_str("never during a baseline"),
            Refusal::TooMany { max_actions, per } => write!(
                f,
                "{max_actions} actions already ran in the last {}",
                d(*per)
            ),
        }
    }
}

/// The guardrails of one run: it remembers when actions ran and admits a new one only within
/// the limits. Times are offsets from any fixed origin (the run's start).
#[derive(Debug, Clone)]
pub struct Governor {
    mode: Mode,
    hold: Duration,
    max_actions: u32,
    per: Duration,
    ran: VecDeque<Duration>,
}

impl Governor {
    /// The guardrails of `remediation`.
    pub fn new(remediation: &Remediation) -> Governor {
        Governor {
            mode: remediation.mode,
            hold: remediation.hold,
            max_actions: remediation.max_actions,
            per: remediation.per,
            ran: VecDeque::new(),
        }
    }

    /// Whether an action for an alarm first raised at `since` may run at `now` in `phase`;
    /// admitting it counts it against the window.
    pub fn admit(&mut self, now: Duration, since: Duration, phase: Phase) -> Result<(), Refusal> {
        if self.mode != Mode::Auto {
            return Err(Refusal::NotAuto(self.mode));
        }
        if phase == Phase::Baseline {
            return Err(Refusal::DuringBaseline);
        }
        let held = now.saturating_sub(since);
        if held < self.hold {
            return Err(Refusal::NotHeld {
                held,
                hold: self.hold,
            });
        }
        while self
            .ran
            .front()
            .is_some_and(|at| now.saturating_sub(*at) >= self.per)
        {
            self.ran.pop_front();
        }
        if self.ran.len() >= self.max_actions as usize {
            return Err(Refusal::TooMany {
                max_actions: self.max_actions,
                per: self.per,
            });
        }
        self.ran.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
