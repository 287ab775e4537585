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
        "engine-input.jsonl",
        "engine.json",
        "engine-store.json",
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

    // Offline gives what live gave: the recorded engine inputs, replayed through the same
    // engine with the run's clock, raise the run's alarms.
    let replay = butterfly()
        .args(["diagnose", "--speed", "max", "--replay"])
        .arg(dir)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&replay.stderr);
    assert_eq!(replay.status.code(), Some(0), "{said}");
    assert!(
        said.contains("the replay raised the run's alarms"),
        "{said}"
    );

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

/// The kolla-layout testbed under test: its record must say so (these tests mean nothing on the
/// DevStack layout, and scripts/test runs them after `testbed up --layout kolla`).
fn kolla_state_dir() -> PathBuf {
    let state = state_dir();
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.join("testbed.json")).expect("the testbed is up"),
    )
    .unwrap();
    assert_eq!(
        record["layout"],
        "kolla",
        "the testbed in {} is not the kolla layout; bring it up with `testbed up --layout kolla`",
        state.display()
    );
    state
}

fn read_yaml(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap()
}

#[test]
#[ignore = "needs the local testbed up with `--layout kolla`; run by scripts/test"]
fn kolla_layout_inventory_is_what_discover_kolla_imports_from_its_kolla_files() {
    let state = kolla_state_dir();
    let kolla = state.join("kolla");
    let out = tempfile::tempdir().unwrap();
    let status = butterfly()
        .arg("discover")
        .arg("--kolla")
        .arg(kolla.join("multinode"))
        .arg("--globals")
        .arg(kolla.join("globals.yml"))
        .arg("--passwords")
        .arg(kolla.join("passwords.yml"))
        .arg("--identity")
        .arg(state.join("ssh/id_ed25519"))
        .arg("--known-hosts")
        .arg(state.join("ssh/known_hosts"))
        .arg("--out")
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let imported = read_yaml(&out.path().join("inventory.yaml"));
    let mut testbed = read_yaml(&state.join("inventory.yaml"));
    // The testbed adds its own REST proxy, which is not kolla's.
    testbed["services"]
        .as_array_mut()
        .unwrap()
        .retain(|s| s["name"] != "rest-proxy");
    assert_eq!(imported, testbed);
    let conductor = testbed["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "nova-conductor")
        .unwrap();
    assert_eq!(conductor["container"]["engine"], "podman");
    assert_eq!(
        conductor["container"]["unit"],
        "kolla-nova_conductor-container.service"
    );
    // The password stays in passwords.yml.
    let secret = std::fs::read_to_string(kolla.join("passwords.yml")).unwrap();
    let password = secret
        .lines()
        .find_map(|l| l.strip_prefix("rabbitmq_password: "))
        .unwrap();
    for file in std::fs::read_dir(out.path()).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        assert!(
            !text.contains(password),
            "a discovered file holds the password"
        );
    }
}

/// An HTTP GET of `/` on `address:port` answered within two seconds: its status line.
fn http_status(address: &str, port: u16) -> Result<String, String> {
    use std::io::{Read, Write};
    let timeout = std::time::Duration::from_secs(2);
    let socket = format!("{address}:{port}").parse().unwrap();
    let mut stream =
        std::net::TcpStream::connect_timeout(&socket, timeout).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(timeout)).unwrap();
    stream
        .write_all(format!("GET / HTTP/1.0\r\nHost: {address}\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let read = stream.read(&mut head).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&head[..read]).into_owned();
    text.lines()
        .next()
        .filter(|line| line.starts_with("HTTP/"))
        .map(str::to_owned)
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))
}

#[test]
#[ignore = "needs the local testbed up with `--layout kolla`; run by scripts/test"]
fn kolla_layout_freeze_stops_a_container_answering_and_the_revert_thaws_it() {
    use std::io::{BufRead, BufReader};
    let state = kolla_state_dir();
    let inventory = state.join("inventory.yaml");
    let controller = read_yaml(&inventory)["hosts"][0]["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = 8774;
    http_status(&controller, port).expect("nova-api answers before the freeze");
    let run_dir = tempfile::tempdir().unwrap();
    let mut child = butterfly()
        .args(["inject", "process-freeze", "--target", "nova-api"])
        .arg("--inventory")
        .arg(&inventory)
        .args(["--duration", "8s", "--run-dir"])
        .arg(run_dir.path().join("run"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    loop {
        let line = lines
            .next()
            .expect("inject ended before the freeze took effect")
            .unwrap();
        printed.push(line.clone());
        if line.contains("in effect after") {
            break;
        }
    }
    // Podman runs without cgroups in these hosts: the freeze is that of the unit's cgroup, and
    // what it freezes no longer answers.
    let frozen = http_status(&controller, port);
    assert!(
        frozen.is_err(),
        "nova-api answered while frozen: {frozen:?}"
    );
    let remaining: Vec<String> = lines.map_while(Result::ok).collect();
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(0), "{printed:?} {remaining:?}");
    http_status(&controller, port).expect("nova-api answers again after the revert");
}

#[test]
#[ignore = "needs the local testbed up with `--layout kolla`; run by scripts/test"]
fn kolla_layout_runs_the_ci_campaign_with_only_the_inventory_changed() {
    kolla_state_dir();
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("kolla");
    let code = run_campaign(&dir);
    check_run(&dir, code);
    assert_eq!(
        code, 0,
        "the CI campaign's hypotheses fail on the kolla layout"
    );
    // The faults went through kolla's containers and units.
    let journal = std::fs::read_to_string(dir.join("faults.jsonl")).unwrap();
    assert!(journal.contains("nova_conductor"), "{journal}");
    assert!(
        journal.contains("kolla-nova_scheduler-container.service"),
        "{journal}"
    );
    if let Some(keep) = std::env::var_os("BUTTERFLY_KEEP_RUNS") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        let _ = Command::new("cp")
            .arg("-r")
            .arg(&dir)
            .arg(keep.join("kolla"))
            .status();
    }
}
