//! End to end on the local testbed: the CI campaign runs for real (workload through the APIs,
//! faults over SSH, the tracer on the broker), and its results are checked against the journal.
//!
//! Needs `butterfly testbed up` first (scripts/test does it); reads the testbed's state directory
//! from `BUTTERFLY_TESTBED_DIR` (default `/var/lib/butterfly/testbed`).

use std::path::{Path, PathBuf};
use std::process::Command;

use injector::journal::Record;

fn butterfly() -> Command {
    Command::new(env!("CARGO_BIN_EXE_butterfly"))
}

/// The testbed's state directory, as the CLI finds it.
fn state_dir() -> PathBuf {
    std::env::var_os("BUTTERFLY_TESTBED_DIR").map_or_else(
        || PathBuf::from("/var/lib/butterfly/testbed"),
        PathBuf::from,
    )
}

/// A shipped campaign's text pointed at the testbed instance under test.
fn at_testbed(text: &str) -> String {
    let state = state_dir();
    let state = state.to_str().expect("the state directory is UTF-8");
    text.replace(
        "inventory: testbed-inventory.yaml",
        &format!("inventory: {state}/inventory.yaml"),
    )
    .replace("/var/lib/butterfly/testbed/", &format!("{state}/"))
}

/// The CI campaign, pointed at the testbed instance under test: the shipped file names the
/// default instance's state directory and its inventory, another instance has its own.
fn campaign(dir: &Path) -> PathBuf {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/examples/ci-smoke.yaml");
    let text = at_testbed(&std::fs::read_to_string(shipped).expect("the CI campaign reads"));
    let path = dir.join("ci-smoke.yaml");
    std::fs::write(&path, text).expect("the campaign copy is written");
    path
}

/// The self-healing example pointed at the testbed under test, cut to its frozen-conductor
/// experiment with one repetition (the whole example is the MTTR benchmark, not a CI test).
fn self_healing(dir: &Path) -> PathBuf {
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/examples/self-healing.yaml");
    let text = at_testbed(&std::fs::read_to_string(shipped).expect("the example reads"))
        .replace("    repetitions: 3\n", "    repetitions: 1\n");
    let start = text
        .find("  - name: stop-scheduler")
        .expect("the example has it");
    let end = text
        .find("hypotheses:")
        .expect("the example has hypotheses");
    let text = format!("{}{}", &text[..start], &text[end..]);
    let path = dir.join("self-healing.yaml");
    std::fs::write(&path, text).expect("the campaign copy is written");
    path
}

/// Runs the CI campaign into `dir`, returns the exit code.
fn run_campaign(dir: &Path) -> i32 {
    let campaign_dir = tempfile::tempdir().unwrap();
    // Recorded beside the run directory, where `report RUN_DIR --gate regression-vs` looks.
    let history = dir
        .parent()
        .expect("a run directory has a parent")
        .join("history.sqlite");
    let status = butterfly()
        .args(["run", "--label", "build=e2e", "--history"])
        .arg(&history)
        .arg("--run-dir")
        .arg(dir)
        .arg(campaign(campaign_dir.path()))
        .status()
        .expect("butterfly runs");
    status.code().expect("butterfly exits normally")
}

fn check_run(dir: &Path, code: i32) {
    assert!(
        matches!(code, 0 | 1),
        "butterfly run exited {code}; see {}",
        dir.display()
    );
    let report = reports::read_run(dir).expect("report.json parses and checks");
    assert_eq!(report.outcome, reports::model::RunOutcome::Completed);
    // The exit code is the hypotheses' verdict.
    assert_eq!(
        code == 0,
        report.passed(),
        "exit {code} disagrees with the report's verdict"
    );
    for file in reports::OUTPUT_FILES.iter().chain(&[
        "metrics.prom",
        "workload.jsonl",
        "alarms.jsonl",
        "plan.json",
        "trace/transactions.json",
    ]) {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    let metrics = std::fs::read_to_string(dir.join("metrics.prom")).unwrap();
    assert!(
        metrics.contains("butterfly_faults_injected_total"),
        "{metrics}"
    );
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/report.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    assert!(
        validator.is_valid(&document),
        "report.json does not match its schema"
    );

    let journal = injector::journal::read(dir).expect("the journal reads");
    assert_eq!(report.experiments.len(), 2);
    let mut recovered = 0;
    for experiment in &report.experiments {
        assert_eq!(experiment.repetitions.len(), 1, "{}", experiment.name);
        for repetition in &experiment.repetitions {
            assert!(
                !repetition.faults.is_empty(),
                "{} injected nothing",
                experiment.name
            );
            assert!(
                repetition.workload.iter().any(|w| w.total.count > 0),
                "no workload in {}",
                experiment.name
            );
            for fault in &repetition.faults {
                // The fault landed where the journal says, inside its fault window, and was reverted.
                let planned = journal.iter().find_map(|record| match record {
                    Record::Injecting { plan, .. } if plan.id == fault.id => Some(plan),
                    _ => None,
                });
                let planned =
                    planned.unwrap_or_else(|| panic!("fault {} is not in the journal", fault.id));
                assert_eq!(fault.target.hosts, vec![planned.host.name.clone()]);
                assert!(
                    journal
                        .iter()
                        .any(|r| matches!(r, Record::Reverted { id, .. } if *id == fault.id)),
                    "fault {} was not reverted",
                    fault.id
                );
                let window = repetition.windows.fault;
                assert!(
                    fault.injected_at >= window.start && fault.injected_at <= window.end,
                    "fault {} landed outside its window",
                    fault.id
                );
                assert!(fault.reverted_at.is_some());
            }
            if let Some(seconds) = repetition.recovery.recovery_s {
                assert!((0.0..=repetition.windows.recovery.seconds() + 1.0).contains(&seconds));
                recovered += 1;
            }
        }
    }
    assert!(recovered > 0, "no repetition measured a recovery time");
    let names: Vec<&str> = report
        .detectors
        .iter()
        .map(|d| d.detector.as_str())
        .collect();
    assert_eq!(names, ["fingerprint", "timeout"]);
    for score in &report.detectors {
        assert_eq!(score.faults, 2);
        // The built-in detectors run live: each fault must have raised an alarm between its
        // injection and the end of the scoring grace after its revert.
        assert_eq!(
            score.detected_faults, 2,
            "{} missed a fault: {score:?}",
            score.detector
        );
        for value in [
            score.precision,
            score.recall,
            score.f1,
            score.localization_top1,
            score.localization_top3,
        ]
        .into_iter()
        .flatten()
        {
            assert!((0.0..=1.0).contains(&value), "{score:?}");
        }
    }

    // Nothing is left behind: recovery finds nothing to revert.
    let recover = butterfly().arg("recover").arg(dir).output().unwrap();
    assert!(
        recover.status.success(),
        "{}",
        String::from_utf8_lossy(&recover.stderr)
    );
}

#[test]
#[ignore = "needs the local testbed with OpenStack (root, minutes); run by scripts/test"]
fn ci_campaign_runs_end_to_end_and_reports_compare() {
    let base = tempfile::tempdir().unwrap();
    let first = base.path().join("first");
    let code = run_campaign(&first);
    check_run(&first, code);
    let second = base.path().join("second");
    let code = run_campaign(&second);
    check_run(&second, code);

    let compare = butterfly()
        .args(["report", "--compare"])
        .arg(&first)
        .arg(&second)
        .output()
        .unwrap();
    assert!(
        compare.status.success(),
        "{}",
        String::from_utf8_lossy(&compare.stderr)
    );
    let difference = String::from_utf8_lossy(&compare.stdout);
    assert!(
        difference.lines().count() > 3,
        "the comparison is empty:\n{difference}"
    );
    // Both runs are in the history, and the second is judged against the first.
    let listed = butterfly()
        .args(["history", "--history"])
        .arg(base.path().join("history.sqlite"))
        .arg("list")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    for dir in [&first, &second] {
        let run_id = reports::read_run(dir).unwrap().run_id;
        assert!(
            listed.contains(&run_id),
            "{run_id} is not recorded:\n{listed}"
        );
    }
    assert!(listed.contains("build=e2e"), "{listed}");
    let gate = butterfly()
        .args(["report", "--gate", "regression-vs:last=1"])
        .arg(&second)
        .output()
        .unwrap();
    assert!(
        matches!(gate.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&gate.stderr)
    );
    // Keep the runs for CI artifacts when asked.
    if let Some(keep) = std::env::var_os("BUTTERFLY_KEEP_RUNS") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        for (name, dir) in [("first", &first), ("second", &second)] {
            let _ = Command::new("cp")
                .arg("-r")
                .arg(dir)
                .arg(keep.join(name))
                .status();
        }
    }
}

#[test]
#[ignore = "needs the local testbed with OpenStack (root, minutes); run by scripts/test"]
fn a_frozen_conductor_is_thawed_by_its_runbook_and_the_loop_is_measured() {
    let base = tempfile::tempdir().unwrap();
    let run_dir = base.path().join("run");
    let status = butterfly()
        .args(["run", "--no-history", "--run-dir"])
        .arg(&run_dir)
        .arg(self_healing(base.path()))
        .status()
        .expect("butterfly runs");
    assert!(
        matches!(status.code(), Some(0 | 1)),
        "butterfly run exited {status}; see {}",
        run_dir.display()
    );
    let report = reports::read_run(&run_dir).expect("report.json parses and checks");
    let repetition = &report.experiments[0].repetitions[0];
    let fault = &repetition.faults[0];
    let thaws: Vec<_> = repetition
        .remediation
        .iter()
        .flat_map(|step| &step.actions)
        .filter(|a| a.action == "thaw" && a.error.is_none() && a.done_at.is_some())
        .collect();
    assert!(
        !thaws.is_empty(),
        "no thaw ran: {:?}",
        repetition.remediation
    );
    assert_eq!(thaws[0].restores, std::slice::from_ref(&fault.id));
    // Repaired before the fault's own revert, which the journal says it found restored.
    assert!(thaws[0].done_at < fault.reverted_at);
    let journal = injector::journal::read(&run_dir).unwrap();
    assert_eq!(
        injector::journal::restored_by(&journal, &fault.id).map(|(id, _)| id),
        Some(thaws[0].id.clone())
    );
    let times = repetition.loop_times;
    let (detect, remediate) = (
        times.time_to_detect_s.expect("an alarm after the fault"),
        times
            .time_to_remediate_s
            .expect("an action after the alarm"),
    );
    assert!(detect >= 0.0 && remediate >= 0.0, "{times:?}");
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(summary.contains("thaw-conductor thaw (done)"), "{summary}");
}

#[test]
#[ignore = "needs the local testbed with OpenStack; run by scripts/test"]
fn the_shipped_example_inventory_is_what_the_testbed_generates() {
    let state = state_dir();
    let read = |path: &Path| -> serde_json::Value {
        let text =
            std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_saphyr::from_str(&text).unwrap()
    };
    let generated = read(&state.join("inventory.yaml"));
    let shipped = read(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/examples/testbed-inventory.yaml"),
    );
    assert_eq!(
        generated, shipped,
        "scenarios/examples/testbed-inventory.yaml no longer matches what `butterfly testbed up` writes"
    );
}
