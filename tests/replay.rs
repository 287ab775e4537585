//! `butterfly diagnose --replay`: a run recorded on the testbed, fed again through the engine,
//! raises its live alarms; where they differ it says so and exits 1.

use std::path::{Path, PathBuf};
use std::process::Command;

fn butterfly() -> Command {
    Command::new(env!("CARGO_BIN_EXE_butterfly"))
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replay-ci-smoke")
}

/// A copy of the recorded run to tamper with.
fn copy(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    std::fs::create_dir(&run).unwrap();
    for entry in std::fs::read_dir(fixture()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, run.join(path.file_name().unwrap())).unwrap();
    }
    run
}

#[test]
fn a_recorded_run_replays_to_its_live_alarms() {
    let dir = tempfile::tempdir().unwrap();
    let written = dir.path().join("replayed.jsonl");
    let output = butterfly()
        .args(["diagnose", "--speed", "max", "--json", "--replay"])
        .arg(fixture())
        .arg("--alarms")
        .arg(&written)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("the replay raised the run's alarms"),
        "{stderr}"
    );
    assert!(
        stderr.contains("11 alarm(s), the run had 11; 11 matched"),
        "{stderr}"
    );
    let live: Vec<serde_json::Value> = std::fs::read_to_string(fixture().join("alarms.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let replayed: Vec<serde_json::Value> = std::fs::read_to_string(&written)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    // Same run clock: the very same alarms, evidence and all, in the same order.
    assert_eq!(replayed, live);
    // Printed as they fire, one JSON object a line.
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 11);
}

#[test]
fn a_replay_that_differs_from_the_run_says_where_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let run = copy(dir.path());
    let alarms = std::fs::read_to_string(run.join("alarms.jsonl")).unwrap();
    let mut lines: Vec<&str> = alarms.lines().collect();
    let dropped = lines.remove(0);
    // A live alarm the replay cannot raise: another first suspect.
    let mut moved: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    moved["suspects"][0]["service"] = "glance-api".into();
    let moved = moved.to_string();
    lines[0] = &moved;
    std::fs::write(run.join("alarms.jsonl"), lines.join("\n") + "\n").unwrap();
    let output = butterfly()
        .args(["diagnose", "--replay"])
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the replay's alarms differ"), "{stderr}");
    assert_eq!(stderr.matches("only in the run:").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("only in the replay:").count(), 2, "{stderr}");
    let dropped: serde_json::Value = serde_json::from_str(dropped).unwrap();
    assert!(
        stderr.contains(dropped["transaction"].as_str().unwrap()),
        "{stderr}"
    );
    assert!(stderr.contains("glance-api"), "{stderr}");
}

#[test]
fn a_run_without_recorded_inputs_or_a_bad_speed_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let output = butterfly()
        .args(["diagnose", "--replay"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("has no engine-input.jsonl"), "{stderr}");
    let output = butterfly()
        .args(["diagnose", "--speed", "0", "--replay"])
        .arg(fixture())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("is not a speed"), "{stderr}");
    // A recording cut mid-line is located, and its text is not echoed.
    let run = copy(dir.path());
    let inputs = std::fs::read_to_string(run.join("engine-input.jsonl")).unwrap();
    let cut = &inputs[..inputs.len() / 2];
    std::fs::write(run.join("engine-input.jsonl"), cut).unwrap();
    let output = butterfly()
        .args(["diagnose", "--replay"])
        .arg(&run)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let last_line = cut.lines().count();
    assert!(
        stderr.contains(&format!("engine-input.jsonl:{last_line}:")),
        "{stderr}"
    );
    assert!(!stderr.contains("\"input\""), "{stderr}");
}
