//! The runner's wiring of remediation: it follows the run's alarm file (`alarms.jsonl`, where
//! the live detectors write each alarm as it fires, and where alarms of external detectors are
//! appended), answers each alarm with the campaign's runbooks ([`Remediation::select`]) and, per
//! runbook and host, keeps the alarm's streak. In `suggest` mode the first alarm of a streak
//! collects the runbook's evidence and writes the actions it would run; in `auto` mode, once the
//! streak has held for `hold` and the [`Governor`] admits it, the evidence is collected and the
//! actions run through [`Injector::remediate`] (journaled with the faults in effect they restore).
//! Every step goes to `remediation.jsonl` in the run directory and into the report.
//!
//! Following the file rather than the detectors' task keeps the detectors unaware of
//! remediation: whatever writes alarms there is answered the same way.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use injector::remediation::{InEffect, plan_diagnostic};
use injector::{ActionInput, ActionPlan, DiagnosticPlan, HostSpec, Injector};
use jiff::Timestamp;
use reports::model as rm;
use scenarios::fault::FaultKind;
use scenarios::model::{Campaign, Host, Service, Testbed};
use scenarios::remediation::{
    AlarmFacts, AlarmKind, DiagnosticStep, Governor, Mode, NoMatch, Phase, Refusal, Remediation,
    Runbook, acted_on,
};
use tokio::sync::watch;

use super::detect;

/// The file of every remediation step of a run, one JSON object a line.
pub const REMEDIATION_FILE: &str = "remediation.jsonl";
/// How often the alarm file is read.
pub const POLL: Duration = Duration::from_millis(200);
/// A streak ends when no alarm it matches came for this long: the failure stopped.
pub const STREAK_GAP: Duration = Duration::from_secs(15);
/// Alarms of a runbook and host raised this soon after one of its actions succeeded are about
/// transactions the failure already hit (they close, or are judged, late): they start no streak.
pub const AFTER_ACTION_QUIET: Duration = Duration::from_secs(10);
/// The most bytes of alarms read per poll (the rest is read at the next one).
const READ_MAX: u64 = 4 * 1024 * 1024;

/// The faults the runner has injected and not yet reverted, with the service each targets: what
/// an action may restore.
#[derive(Debug, Default)]
pub struct FaultsInEffect(Mutex<Vec<FaultInEffect>>);

#[derive(Debug, Clone)]
struct FaultInEffect {
    id: String,
    kind: FaultKind,
    host: String,
    service: Option<String>,
    injected_ms: u64,
}

impl FaultsInEffect {
    /// A fault was injected (`kind` is the plan's kind name).
    pub fn injected(&self, id: &str, kind: &str, host: &str, service: Option<&str>) {
        let Some(kind) = FaultKind::from_name(kind) else {
            return;
        };
        self.lock().push(FaultInEffect {
            id: id.to_owned(),
            kind,
            host: host.to_owned(),
            service: service.map(str::to_owned),
            injected_ms: injector::journal::now_ms(),
        });
    }

    /// A fault was reverted.
    pub fn reverted(&self, id: &str) {
        self.lock().retain(|fault| fault.id != id);
    }

    fn snapshot(&self) -> Vec<FaultInEffect> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultInEffect>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What a runbook sends for one suspect on one host: its evidence steps and its actions.
#[derive(Debug, Clone)]
pub struct RunbookPlans {
    /// Evidence, in the runbook's order.
    pub diagnostics: Vec<DiagnosticPlan>,
    /// Actions, in the runbook's order.
    pub actions: Vec<ActionPlan>,
}

/// Plans every step of `runbook` for `suspect` on `host`: evidence of the broker or database
/// runs on their host, actions on a named service or a catalog default (the cache, the broker)
/// on that service's host, the rest on `host`. `since_s` is the fault's time (seconds since the
/// epoch) for journals; `next_id` names each action.
pub fn runbook_plans(
    testbed: &Testbed,
    runbook: &Runbook,
    suspect: Option<&Service>,
    host: &Host,
    since_s: u64,
    next_id: &mut dyn FnMut() -> String,
) -> Result<RunbookPlans, String> {
    let spec = HostSpec::from(host);
    let host_of = |service: Option<&Service>| {
        service
            .and_then(|s| testbed.hosts.iter().find(|h| s.runs_on(h)))
            .map(HostSpec::from)
            .unwrap_or_else(|| spec.clone())
    };
    let mut diagnostics = Vec::new();
    for step in &runbook.diagnostics {
        let read = match step {
            DiagnosticStep::Collect(evidence) => evidence
                .reads()
                .and_then(|f| testbed.services.iter().find(|s| s.function == Some(f))),
            DiagnosticStep::Command(_) => None,
        };
        let (on, service) = match read {
            Some(other) => (host_of(Some(other)), Some(other)),
            None => (spec.clone(), suspect),
        };
        diagnostics.push(
            plan_diagnostic(step, &on, service, since_s)
                .map_err(|e| format!("runbook {}: {e}", runbook.name))?,
        );
    }
    let mut actions = Vec::new();
    for action in &runbook.actions {
        let service = acted_on(action, testbed, suspect);
        let on = if action.kind.default_function().is_some() || action.service.is_some() {
            host_of(service)
        } else {
            spec.clone()
        };
        let id = next_id();
        actions.push(
            ActionInput {
                id: &id,
                runbook: runbook.name.as_str(),
                action,
                host: &on,
                service,
            }
            .plan()
            .map_err(|e| format!("runbook {}: {e}", runbook.name))?,
        );
    }
    Ok(RunbookPlans {
        diagnostics,
        actions,
    })
}

/// The facts of `alarm` a runbook matches, or `None` when no detector of the campaign raised it.
pub fn facts<'a>(campaign: &Campaign, alarm: &'a rm::Alarm) -> Option<AlarmFacts<'a>> {
    let detector = campaign
        .detectors
        .iter()
        .find(|d| d.name.as_str() == alarm.detector)?;
    let top = alarm.suspects.first();
    Some(AlarmFacts {
        detector: alarm.detector.as_str(),
        kind: AlarmKind::of(detector),
        service: top.map(|s| s.service.as_str()),
        host: top.and_then(|s| s.host.as_deref()),
        score: alarm.score,
        fault_kind: alarm.fault_kind.as_deref(),
    })
}

/// The guardrails' phase of the run's phase.
pub fn phase_of(phase: detect::Phase) -> Phase {
    match phase.window {
        Some(rm::WindowKind::Baseline) => Phase::Baseline,
        Some(rm::WindowKind::Fault) => Phase::Fault,
        Some(rm::WindowKind::Recovery) => Phase::Recovery,
        None => Phase::Between,
    }
}

/// Alarms of one runbook on one host that keep coming.
#[derive(Debug, Clone)]
struct Streak {
    first_us: i64,
    last_us: i64,
    detector: String,
    service: Option<String>,
    /// `suggest` answers a streak once.
    answered: bool,
}

/// Reads the alarms appended to a JSON Lines file since the last read; a line still being
/// written waits for the next read.
struct Follow {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Follow {
    fn new(path: &Path) -> Follow {
        Follow {
            path: path.to_owned(),
            offset: 0,
            partial: Vec::new(),
        }
    }

    fn read(&mut self) -> Vec<rm::Alarm> {
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        let Ok(read) = file.take(READ_MAX).read_to_end(&mut bytes) else {
            return Vec::new();
        };
        self.offset += read as u64;
        self.partial.extend_from_slice(&bytes);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else {
            // No alarm line is that long (a trace line's limit, 16 MiB): drop what can never
            // become one, so the buffer stays bounded.
            if self.partial.len() > 4 * READ_MAX as usize {
                self.partial.clear();
            }
            return Vec::new();
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        String::from_utf8_lossy(&complete)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }
}

/// What the remediator needs from the run.
pub struct Remediator<'a> {
    /// The campaign.
    pub campaign: &'a Campaign,
    /// Its remediation section.
    pub remediation: &'a Remediation,
    /// The injector the faults go through.
    pub injector: &'a Injector,
    /// Faults in effect.
    pub faults: &'a FaultsInEffect,
    /// The run's phases.
    pub phases: watch::Receiver<detect::Phase>,
    /// The run directory (its alarm file is followed, its remediation file written).
    pub run_dir: &'a Path,
    /// Log lines for the operator.
    pub log: &'a (dyn Fn(&str) + Sync),
}

impl Remediator<'_> {
    /// Answers alarms until `done` turns true; returns every step taken, in time order.
    pub async fn run(self, mut done: watch::Receiver<bool>) -> Vec<rm::RemediationStep> {
        let mut follow = Follow::new(&self.run_dir.join(super::ALARMS_FILE));
        let mut governor = Governor::new(self.remediation);
        let mut streaks: BTreeMap<(String, String), Streak> = BTreeMap::new();
        // Per runbook and host: alarms before this (µs) start no streak.
        let mut quiet_until: BTreeMap<(String, String), i64> = BTreeMap::new();
        let mut steps = Vec::new();
        let mut out = std::fs::File::create(self.run_dir.join(REMEDIATION_FILE)).ok();
        let mut counter = 0u32;
        let run_tag = injector::new_fault_id();
        let mut ticker = tokio::time::interval(POLL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                changed = done.changed() => if changed.is_err() || *done.borrow() { break },
            }
            for alarm in follow.read() {
                self.note(&alarm, &mut streaks, &quiet_until);
            }
            let now_us = Timestamp::now().as_microsecond();
            let phase = phase_of(*self.phases.borrow());
            let keys: Vec<(String, String)> = streaks.keys().cloned().collect();
            for key in keys {
                let streak = streaks[&key].clone();
                if now_us - streak.last_us > STREAK_GAP.as_micros() as i64 {
                    streaks.remove(&key);
                    continue;
                }
                let decision = match self.remediation.mode {
                    Mode::Off => None,
                    Mode::Suggest if streak.answered => None,
                    Mode::Suggest => Some(Err(Refusal::NotAuto(Mode::Suggest))),
                    Mode::Auto => {
                        let at = |us: i64| Duration::from_micros(us.max(0) as u64);
                        match governor.admit(at(now_us), at(streak.first_us), phase) {
                            Err(Refusal::NotHeld { .. }) => None,
                            other => Some(other),
                        }
                    }
                };
                let Some(decision) = decision else { continue };
                let mut next_id = || {
                    counter += 1;
                    format!(
                        "{:08x}",
                        u32::from_str_radix(&run_tag, 16)
                            .unwrap_or(0)
                            .wrapping_add(counter)
                    )
                };
                let step = self.answer(&key, &streak, decision, &mut next_id).await;
                if let Some(file) = out.as_mut()
                    && let Ok(line) = serde_json::to_string(&step)
                {
                    let _ = writeln!(file, "{line}");
                }
                if let Some(done) = step
                    .actions
                    .iter()
                    .filter(|a| a.error.is_none())
                    .filter_map(|a| a.done_at)
                    .max()
                {
                    quiet_until.insert(
                        key.clone(),
                        done.as_microsecond() + AFTER_ACTION_QUIET.as_micros() as i64,
                    );
                }
                steps.push(step);
                match self.remediation.mode {
                    Mode::Suggest => {
                        if let Some(s) = streaks.get_mut(&key) {
                            s.answered = true;
                        }
                    }
                    // After an action or a refusal a failure that goes on must hold again.
                    _ => {
                        streaks.remove(&key);
                    }
                }
            }
        }
        steps
    }

    fn note(
        &self,
        alarm: &rm::Alarm,
        streaks: &mut BTreeMap<(String, String), Streak>,
        quiet_until: &BTreeMap<(String, String), i64>,
    ) {
        let Some(facts) = facts(self.campaign, alarm) else {
            return;
        };
        let selected = match self.remediation.select(&self.campaign.testbed, &facts) {
            Ok(selected) => selected,
            Err(NoMatch::NoRunbook) => return,
            Err(NoMatch::NotOwned { runbook, reason }) => {
                (self.log)(&format!("runbook {runbook} does not act: {reason}"));
                return;
            }
        };
        let Some(host) = selected.host else { return };
        let key = (
            selected.runbook.name.as_str().to_owned(),
            host.name.as_str().to_owned(),
        );
        if quiet_until
            .get(&key)
            .is_some_and(|until| alarm.ts_us < *until)
        {
            return;
        }
        let gap = STREAK_GAP.as_micros() as i64;
        match streaks.get_mut(&key) {
            Some(streak) if alarm.ts_us - streak.last_us <= gap => {
                streak.last_us = streak.last_us.max(alarm.ts_us);
            }
            _ => {
                streaks.insert(
                    key,
                    Streak {
                        first_us: alarm.ts_us,
                        last_us: alarm.ts_us,
                        detector: alarm.detector.clone(),
                        service: facts.service.map(str::to_owned),
                        answered: false,
                    },
                );
            }
        }
    }

    async fn answer(
        &self,
        (runbook_name, host_name): &(String, String),
        streak: &Streak,
        decision: Result<(), Refusal>,
        next_id: &mut dyn FnMut() -> String,
    ) -> rm::RemediationStep {
        let testbed = &self.campaign.testbed;
        let mut step = rm::RemediationStep {
            runbook: runbook_name.clone(),
            mode: self.remediation.mode.as_str().to_owned(),
            detector: streak.detector.clone(),
            host: host_name.clone(),
            service: streak.service.clone(),
            alarm_at: Timestamp::from_microsecond(streak.first_us)
                .unwrap_or_else(|_| Timestamp::now()),
            decided_at: Timestamp::now(),
            refused: None,
            evidence: Vec::new(),
            actions: Vec::new(),
        };
        let runbook = self
            .remediation
            .runbooks
            .iter()
            .find(|r| r.name.as_str() == runbook_name.as_str());
        let host = testbed
            .hosts
            .iter()
            .find(|h| h.name.as_str() == host_name.as_str());
        let (Some(runbook), Some(host)) = (runbook, host) else {
            step.refused = Some("the runbook or host left the campaign".into());
            return step;
        };
        let suspect = streak
            .service
            .as_deref()
            .and_then(|name| testbed.services.iter().find(|s| s.name.as_str() == name));
        let faults = self.faults.snapshot();
        let since_ms = faults
            .iter()
            .filter(|f| f.host == *host_name)
            .map(|f| f.injected_ms)
            .min()
            .unwrap_or((streak.first_us.max(0) / 1000) as u64);
        let plans = match runbook_plans(testbed, runbook, suspect, host, since_ms / 1000, next_id) {
            Ok(plans) => plans,
            Err(error) => {
                step.refused = Some(error);
                return step;
            }
        };
        let acting = match &decision {
            Ok(()) => true,
            Err(Refusal::NotAuto(_)) => false,
            Err(refusal) => {
                step.refused = Some(refusal.to_string());
                false
            }
        };
        // A refused action collects nothing: the guardrail holds back the runbook, not only
        // its repairs.
        if step.refused.is_none() {
            for diagnostic in &plans.diagnostics {
                let collected = self.injector.collect(diagnostic).await;
                step.evidence.push(rm::EvidenceItem {
                    name: diagnostic.name.clone(),
                    host: diagnostic.host.name.clone(),
                    output: collected.as_ref().ok().cloned(),
                    error: collected.err().map(|e| e.to_string()),
                });
            }
        }
        let in_effect: Vec<InEffect<'_>> = faults
            .iter()
            .map(|f| InEffect {
                id: &f.id,
                kind: f.kind,
                host: &f.host,
                service: f.service.as_deref(),
            })
            .collect();
        for plan in &plans.actions {
            let restores = plan.restores(&in_effect);
            let mut outcome = rm::ActionOutcome {
                id: plan.id.clone(),
                action: plan.action.clone(),
                host: plan.host.name.clone(),
                service: plan.service.clone(),
                command: plan.script.clone(),
                restores: restores.clone(),
                started_at: None,
                done_at: None,
                observed: None,
                error: None,
            };
            if acting {
                (self.log)(&format!(
                    "runbook {runbook_name}: {} on {}{}",
                    plan.action,
                    plan.host.name,
                    plan.service
                        .as_deref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                ));
                let ms = |ms: u64| Timestamp::from_millisecond(ms as i64).ok();
                let started = Timestamp::now();
                match self.injector.remediate(plan, &restores).await {
                    Ok(done) => {
                        outcome.started_at = ms(done.started_ms);
                        outcome.done_at = ms(done.done_ms);
                        outcome.observed = done.observed;
                    }
                    Err(error) => {
                        outcome.started_at = Some(started);
                        outcome.done_at = Some(Timestamp::now());
                        outcome.error = Some(error.to_string());
                        (self.log)(&format!(
                            "runbook {runbook_name}: {} failed: {error}",
                            plan.action
                        ));
                    }
                }
            }
            let failed = outcome.error.is_some();
            step.actions.push(outcome);
            if failed {
                // The next action assumed this one worked.
                break;
            }
        }
        if !acting && step.refused.is_none() {
            (self.log)(&format!(
                "runbook {runbook_name} (suggest) on {host_name}: would run {}",
                plans
                    .actions
                    .iter()
                    .map(|a| a.action.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        step
    }
}

/// The end times of the actions of `steps` that succeeded.
pub fn actions_done(steps: &[rm::RemediationStep]) -> Vec<Timestamp> {
    steps
        .iter()
        .flat_map(|s| &s.actions)
        .filter(|a| a.error.is_none())
        .filter_map(|a| a.done_at)
        .collect()
}

/// Gives each repetition of `report` the remediation steps of its alarms and its loop times
/// (measured with remediation off as well: the time to detect and to recover are the reference
/// `auto` is compared with).
pub fn attach(
    report: &mut rm::Report,
    steps: &[rm::RemediationStep],
    records: &[reports::stats::CommandRecord],
) {
    for repetition in report
        .experiments
        .iter_mut()
        .flat_map(|e| e.repetitions.iter_mut())
    {
        let windows = repetition.windows;
        let within = |at: Timestamp| windows.baseline.start <= at && at < windows.recovery.end;
        repetition.remediation = steps
            .iter()
            .filter(|s| within(s.alarm_at))
            .cloned()
            .collect();
        let Some(injected_at) = repetition.faults.iter().map(|f| f.injected_at).min() else {
            continue;
        };
        let alarms: Vec<Timestamp> = repetition.alarms.iter().map(|a| a.timestamp()).collect();
        repetition.loop_times = reports::stats::loop_times(
            &windows,
            injected_at,
            &alarms,
            &actions_done(&repetition.remediation),
            records,
            &repetition.timeline,
            (
                super::evaluate::RECOVERY_SPAN_S,
                super::evaluate::RECOVERY_STEP_S,
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// A campaign (in `dir`) whose runbook restarts `s` on alarms of the timeout detector.
    fn campaign(dir: &Path, mode: &str) -> Campaign {
        let file = dir.join("campaign.yaml");
        std::fs::write(
            &file,
            format!(
                "version: 1\ntestbed:\n  hosts:\n    - name: a\n      address: 127.0.0.1\n      roles: [x]\n  services:\n    - name: s\n      unit: s.service\n      roles: [x]\nexperiments:\n  - name: e\n    fault: {{kind: service-stop}}\n    target: {{service: s}}\n    duration: 1s\ndetectors:\n  - name: timeout\n    builtin: timeout\nremediation:\n  mode: {mode}\n  hold: 1s\n  runbooks:\n    - name: restart-s\n      when: {{service: s}}\n      actions:\n        - action: restart-service\n"
            ),
        )
        .unwrap();
        scenarios::load(&file).expect("the campaign is valid")
    }

    fn alarm_line(ts_us: i64, service: &str) -> String {
        format!(
            "{{\"ts_us\":{ts_us},\"detector\":\"timeout\",\"suspects\":[{{\"service\":\"{service}\",\"host\":\"a\",\"confidence\":1.0}}],\"score\":1.0}}\n"
        )
    }

    fn injector(dir: &Path) -> Injector {
        Injector::new(
            Arc::new(injector::transport::Connections::new(
                injector::transport::TransportSettings::default(),
            )),
            Arc::new(injector::Journal::open(dir).unwrap()),
            injector::EngineSettings::default(),
        )
    }

    /// Runs the remediator over the alarms already in the file, in `window`, for `for_ms`.
    async fn answer(
        dir: &Path,
        campaign: &Campaign,
        window: Option<rm::WindowKind>,
        for_ms: u64,
    ) -> Vec<rm::RemediationStep> {
        let injector = injector(dir);
        let faults = FaultsInEffect::default();
        faults.injected("f1", "service-stop", "a", Some("s"));
        let (_phase_tx, phases) = watch::channel(detect::Phase {
            repetition: 1,
            window,
        });
        let (done_tx, done) = watch::channel(false);
        let log = |_: &str| {};
        let remediator = Remediator {
            campaign,
            remediation: campaign.remediation.as_ref().unwrap(),
            injector: &injector,
            faults: &faults,
            phases,
            run_dir: dir,
            log: &log,
        };
        let (steps, ()) = tokio::join!(remediator.run(done), async {
            tokio::time::sleep(Duration::from_millis(for_ms)).await;
            done_tx.send(true).unwrap();
        });
        steps
    }

    #[test]
    fn the_alarm_file_is_followed_line_by_line_as_it_grows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alarms.jsonl");
        let mut follow = Follow::new(&path);
        assert!(follow.read().is_empty(), "no file yet is no alarm");
        let line = alarm_line(1, "s");
        let (head, tail) = line.split_at(20);
        std::fs::write(&path, format!("{}{head}", alarm_line(0, "s"))).unwrap();
        assert_eq!(follow.read().len(), 1, "a line being written waits");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(tail.as_bytes()).unwrap();
        let read = follow.read();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].ts_us, 1);
        assert!(follow.read().is_empty(), "each alarm is read once");
    }

    #[tokio::test]
    async fn suggest_writes_what_it_would_run_once_per_streak_and_acts_on_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let campaign = campaign(dir.path(), "suggest");
        let now = Timestamp::now().as_microsecond();
        let alarms = [
            alarm_line(now - 2_000_000, "s"),
            alarm_line(now - 1_000_000, "s"),
            // No runbook answers another service.
            alarm_line(now, "other"),
        ];
        std::fs::write(dir.path().join(super::super::ALARMS_FILE), alarms.concat()).unwrap();
        let steps = answer(dir.path(), &campaign, Some(rm::WindowKind::Fault), 600).await;
        assert_eq!(steps.len(), 1, "{steps:?}");
        let step = &steps[0];
        assert_eq!(
            (
                step.runbook.as_str(),
                step.mode.as_str(),
                step.host.as_str()
            ),
            ("restart-s", "suggest", "a")
        );
        assert_eq!(step.refused, None);
        assert_eq!(step.actions.len(), 1);
        let action = &step.actions[0];
        assert_eq!(action.action, "restart-service");
        assert!(action.command.contains("s.service"), "{}", action.command);
        assert_eq!(
            action.restores,
            ["f1"],
            "the fault on s is what it would undo"
        );
        assert_eq!((action.started_at, action.done_at), (None, None));
        let written = std::fs::read_to_string(dir.path().join(REMEDIATION_FILE)).unwrap();
        assert_eq!(written.lines().count(), 1);
        let journal = injector::journal::read(dir.path()).unwrap();
        assert!(journal.is_empty(), "suggest journals nothing: {journal:?}");
    }

    #[tokio::test]
    async fn auto_refuses_to_act_during_a_baseline_and_waits_for_the_hold() {
        let dir = tempfile::tempdir().unwrap();
        let campaign = campaign(dir.path(), "auto");
        let now = Timestamp::now().as_microsecond();
        // Held for 2 s (hold is 1 s), but in a baseline.
        let alarms = [alarm_line(now - 2_000_000, "s"), alarm_line(now, "s")];
        let file = dir.path().join(super::super::ALARMS_FILE);
        std::fs::write(&file, alarms.concat()).unwrap();
        let steps = answer(dir.path(), &campaign, Some(rm::WindowKind::Baseline), 600).await;
        assert_eq!(steps.len(), 1, "{steps:?}");
        assert_eq!(steps[0].refused.as_deref(), Some("never during a baseline"));
        assert!(steps[0].actions.iter().all(|a| a.started_at.is_none()));
        assert!(steps[0].evidence.is_empty());
        // A streak that just began has not held: nothing is decided yet.
        std::fs::write(&file, alarm_line(Timestamp::now().as_microsecond(), "s")).unwrap();
        let steps = answer(dir.path(), &campaign, Some(rm::WindowKind::Fault), 300).await;
        assert!(steps.is_empty(), "{steps:?}");
        assert!(injector::journal::read(dir.path()).unwrap().is_empty());
    }
}
