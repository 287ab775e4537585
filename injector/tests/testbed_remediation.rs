//! Remediation actions on the testbed's hosts, through the injector's SSH transport and journal:
//! a thaw of an injected freeze, a kill of a hung process, a start of a stopped unit, and a
//! runner SIGKILLed in the middle of an action, after which `recover` settles the host.
//!
//! Needs `butterfly testbed up --hosts-only`; run with
//! `cargo test -p injector --test testbed_remediation -- --ignored --test-threads=1`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use injector::remediation::InEffect;
use injector::transport::{Connections, TransportSettings};
use injector::{ActionInput, EngineSettings};
use scenarios::fault::{Fault, FaultKind, FreezeMethod};
use scenarios::model::{Runtime, Service};
use scenarios::remediation::{Action, ActionKind};
use scenarios::units::{Ident, UnitName};

const RUN_DIR_ENV: &str = "BFLY_REMEDIATION_RUN_DIR";
const UNIT_ENV: &str = "BFLY_REMEDIATION_UNIT";

/// The inventory service of systemd unit `unit` on `host`.
fn service(unit: &str, host: &str) -> Service {
    Service {
        name: Ident::new("testsvc").unwrap(),
        runtime: Runtime::Unit(UnitName::new(unit).unwrap()),
        vhost: None,
        process: None,
        roles: vec![],
        hosts: vec![Ident::new(host).unwrap()],
        ports: vec![],
        function: None,
    }
}

fn service_of(unit: &TestUnit) -> Service {
    service(&format!("{}.service", unit.name), &unit.host)
}

fn action_plan(
    kind: ActionKind,
    host: &injector::HostSpec,
    service: &Service,
) -> injector::ActionPlan {
    let action = Action {
        kind,
        service: None,
    };
    ActionInput {
        id: &injector::new_fault_id(),
        runbook: "test",
        action: &action,
        host,
        service: Some(service),
    }
    .plan()
    .unwrap_or_else(|e| panic!("plan: {e}"))
}

fn in_effect<'a>(active: &'a injector::Active, kind: FaultKind) -> InEffect<'a> {
    InEffect {
        id: &active.plan.id,
        kind,
        host: &active.plan.host.name,
        service: Some("testsvc"),
    }
}

fn is_frozen(unit: &TestUnit) -> bool {
    let (_, out) = observe(
        &unit.host,
        &format!(
            "cat /sys/fs/cgroup/unified$(systemctl show -p ControlGroup --value {}.service)/cgroup.events 2>/dev/null || cat /sys/fs/cgroup$(systemctl show -p ControlGroup --value {}.service)/cgroup.events",
            unit.name, unit.name
        ),
    );
    out.lines().any(|line| line.trim() == "frozen 1")
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn a_thaw_of_an_injected_freeze_is_journaled_and_the_freezes_revert_says_so() {
    let (_serial, compute1, bench) = setup(|| host("compute1"));
    let unit = TestUnit::start("compute1", &tag(), "exec sleep infinity");
    let fault = Fault::ProcessFreeze {
        method: FreezeMethod::Cgroup,
    };
    let plan = plan(
        &fault,
        &compute1,
        Some(&unit.service()),
        Duration::from_secs(60),
    );
    let active = bench.inject(&plan);
    assert!(is_frozen(&unit), "the freeze is not in effect");
    let service = service_of(&unit);
    let thaw = action_plan(ActionKind::Thaw, &compute1, &service);
    let restores = thaw.restores(&[in_effect(&active, FaultKind::ProcessFreeze)]);
    assert_eq!(restores, vec![active.plan.id.clone()]);
    bench
        .runtime
        .block_on(bench.injector.remediate(&thaw, &restores))
        .unwrap_or_else(|e| panic!("thaw: {e}"));
    assert!(!is_frozen(&unit), "the thaw did not thaw the unit");
    let observed = bench
        .runtime
        .block_on(bench.injector.revert(&active, "test"))
        .unwrap();
    assert_eq!(
        observed.as_deref(),
        Some(format!("already restored by thaw {} of runbook test", thaw.id).as_str())
    );
    bench.assert_all_clean(&["compute1"]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn kill_hung_process_replaces_a_frozen_main_process_and_the_unit_runs_again() {
    let (_serial, compute1, bench) = setup(|| host("compute1"));
    let unit = TestUnit::start("compute1", &tag(), "exec sleep infinity");
    let before = unit.main_pid();
    let fault = Fault::ProcessFreeze {
        method: FreezeMethod::Sigstop,
    };
    let plan = plan(
        &fault,
        &compute1,
        Some(&unit.service()),
        Duration::from_secs(60),
    );
    let active = bench.inject(&plan);
    let kill = action_plan(ActionKind::KillHungProcess, &compute1, &service_of(&unit));
    let restores = kill.restores(&[in_effect(&active, FaultKind::ProcessFreeze)]);
    bench
        .runtime
        .block_on(bench.injector.remediate(&kill, &restores))
        .unwrap_or_else(|e| panic!("kill-hung-process: {e}"));
    assert!(unit.is_active());
    assert_ne!(unit.main_pid(), before, "the hung process was not replaced");
    bench.revert(&active);
    bench.assert_all_clean(&["compute1"]);
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn restart_service_starts_a_stopped_unit_before_the_stops_revert() {
    let (_serial, compute1, bench) = setup(|| host("compute1"));
    let unit = TestUnit::start("compute1", &tag(), "exec sleep infinity");
    let plan = plan(
        &Fault::ServiceStop,
        &compute1,
        Some(&unit.service()),
        Duration::from_secs(60),
    );
    let active = bench.inject(&plan);
    assert!(!unit.is_active());
    let restart = action_plan(ActionKind::RestartService, &compute1, &service_of(&unit));
    let restores = restart.restores(&[in_effect(&active, FaultKind::ServiceStop)]);
    let done = bench
        .runtime
        .block_on(bench.injector.remediate(&restart, &restores))
        .unwrap_or_else(|e| panic!("restart-service: {e}"));
    assert!(done.done_ms >= done.started_ms);
    assert!(unit.is_active());
    let observed = bench
        .runtime
        .block_on(bench.injector.revert(&active, "test"))
        .unwrap();
    assert!(
        observed
            .unwrap_or_default()
            .starts_with("already restored by restart-service"),
        "the stop's revert claims to have restored the host"
    );
    bench.assert_all_clean(&["compute1"]);
}

/// Child mode: SIGKILL-and-start a unit over and over until killed. Does nothing unless started
/// by the crash test.
#[test]
#[ignore = "child process of the remediation crash test"]
fn remediation_crash_child() {
    let Some(run_dir) = std::env::var_os(RUN_DIR_ENV).map(PathBuf::from) else {
        return;
    };
    let unit = std::env::var(UNIT_ENV).expect("unit name");
    let compute1 = host("compute1");
    let service = service(&unit, "compute1");
    let (runtime, injector) = child_injector(&run_dir);
    runtime.block_on(async {
        loop {
            let plan = action_plan(ActionKind::KillHungProcess, &compute1, &service);
            injector
                .remediate(&plan, &[])
                .await
                .expect("kill-hung-process");
        }
    });
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn a_runner_killed_mid_action_leaves_nothing_recover_cannot_settle() {
    let _serial = serial();
    let _hosts = hosts();
    let mut settled = 0;
    for round in 0..3u64 {
        // The unit takes a moment to start, so that a kill often lands between the SIGKILL of
        // its process and the start that follows.
        let unit = TestUnit::start("compute1", &tag(), "sleep 0.3; exec sleep infinity");
        let run_dir = tempfile::tempdir().unwrap();
        let journal = run_dir.path().join("faults.jsonl");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "remediation_crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(RUN_DIR_ENV, run_dir.path())
            .env(UNIT_ENV, format!("{}.service", unit.name))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill once an action is journaled and some time into it.
        assert!(
            eventually(Duration::from_secs(30), || {
                std::fs::read_to_string(&journal)
                    .is_ok_and(|text| text.contains("\"event\":\"remediating\""))
            }),
            "the child never started an action"
        );
        std::thread::sleep(Duration::from_millis(100 + 250 * round));
        child.kill().unwrap();
        child.wait().unwrap();
        close_orphaned_masters(&run_dir.path().join("ctl"));
        std::thread::sleep(Duration::from_secs(1));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let connections = Connections::new(TransportSettings::default());
        let settings = EngineSettings::default();
        let records = injector::journal::read(run_dir.path()).unwrap();
        let pending = injector::journal::pending_actions(&records);
        eprintln!("round {round}: {} action(s) left unfinished", pending.len());
        settled += pending.len();
        let report = runtime
            .block_on(injector::recover(run_dir.path(), &connections, &settings))
            .unwrap();
        assert_eq!(report.len(), pending.len(), "round {round}: {report:?}");
        for item in &report {
            assert!(item.outcome.is_ok(), "round {round}: {item:?}");
        }
        let again = runtime
            .block_on(injector::recover(run_dir.path(), &connections, &settings))
            .unwrap();
        assert!(again.is_empty(), "a second recover found work: {again:?}");
        runtime.block_on(connections.close());
        assert!(
            eventually(Duration::from_secs(5), || unit.is_active()),
            "round {round}: the unit is not running after recover"
        );
        assert_host_clean("compute1");
    }
    // Each kill lands inside an action (the child runs one after the other), so recover had
    // actions to settle; a test that never saw one would prove nothing.
    assert!(settled > 0, "no kill landed inside an action");
}
