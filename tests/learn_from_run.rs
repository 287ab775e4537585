//! `butterfly fingerprint learn --from-run` on a run directory assembled from real recorded
//! OpenStack traffic (tests/fixtures/run-compute-down, see its README), then `butterfly diagnose`
//! of fresh traces against what it learned.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::{Value, json};

fn butterfly() -> Command {
    Command::cargo_bin("butterfly").unwrap()
}

fn run_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-compute-down")
}

fn recorded_transactions() -> Value {
    let text = std::fs::read_to_string(run_dir().join("trace/transactions.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn transaction(trace: &Value, id: &str) -> Value {
    trace["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .cloned()
        .expect("transaction present")
}

/// The transaction as an observer saw it at `until_us`, under a fresh id and with its command.
fn fresh(mut transaction: Value, id: &str, command: &str, until_us: i64) -> Value {
    let events = transaction["events"].as_array_mut().unwrap();
    events.retain(|event| event["ts_us"].as_i64().unwrap() <= until_us);
    let kept: Vec<Value> = events.iter().map(|event| event["seq"].clone()).collect();
    transaction["edges"]
        .as_array_mut()
        .unwrap()
        .retain(|edge| kept.contains(&edge["from"]) && kept.contains(&edge["to"]));
    transaction["id"] = json!(id);
    transaction["command"] = json!(command);
    transaction
}

/// When the transaction's first event of `operation` happened.
fn ts_of(transaction: &Value, operation: &str) -> i64 {
    transaction["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|event| event["operation"] == operation)
        .map(|event| event["ts_us"].as_i64().unwrap())
        .expect("operation present")
}

/// Writes a trace directory holding `transactions`, in the format of the recorded trace.
fn write_trace(directory: &Path, recorded: &Value, transactions: Vec<Value>) {
    let trace = json!({
        "format": recorded["format"],
        "version": recorded["version"],
        "transactions": transactions,
    });
    std::fs::create_dir(directory).unwrap();
    std::fs::write(directory.join("transactions.json"), trace.to_string()).unwrap();
}

fn learn(out: &Path) -> String {
    let output = butterfly()
        .args(["fingerprint", "learn", "--from-run"])
        .arg(run_dir())
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_run_directory_teaches_baselines_as_positive_and_faulty_transactions_as_labelled_negatives() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fp.json");
    let stdout = learn(&out);
    assert!(
        stdout.contains("learned 2 baseline run(s) (2 new variant(s)) and 1 negative(s)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("1 under service-stop of nova-compute on osbed"),
        "{stdout}"
    );
    // The delete overlapping the glance-api freeze never reached glance-api: it is not a
    // negative, and not even diagnosed.
    assert!(
        stdout.contains("not learned: 0 unaffected by the fault, 1 away from its service and host"),
        "{stdout}"
    );
    let store: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let negatives = store["negatives"].as_array().unwrap();
    assert_eq!(negatives.len(), 1, "{negatives:?}");
    assert_eq!(negatives[0]["command"], "server create");
    assert_eq!(
        negatives[0]["label"],
        json!({"fault_kind": "service-stop", "service": "nova-compute", "host": "osbed"})
    );
    for command in ["server create", "server delete"] {
        assert_eq!(store["commands"][command]["runs"], 1, "{command}");
    }
}

#[test]
fn a_fresh_faulty_trace_is_classified_with_the_fault_learned_from_the_run_and_a_normal_one_is_not()
{
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fp.json");
    learn(&out);
    let recorded = recorded_transactions();
    // A second known fault, so that classification has to choose: a scheduler that never
    // answers, i.e. the normal create cut right after the call to nova-scheduler.
    let normal_create = transaction(&recorded, "req-3410b873-3e5f-4237-9429-aa10d0c95921");
    let select = ts_of(&normal_create, "scheduler.select_destinations");
    let frozen = dir.path().join("frozen-scheduler");
    write_trace(
        &frozen,
        &recorded,
        vec![fresh(
            normal_create,
            "req-frozen-create",
            "server create",
            select,
        )],
    );
    let output = butterfly()
        .args([
            "fingerprint",
            "learn",
            "--negative",
            "--fault-kind",
            "process-freeze",
        ])
        .args(["--service", "nova-scheduler", "--host", "osbed", "--traces"])
        .arg(&frozen)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let store: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(
        store["negatives"].as_array().unwrap().len(),
        2,
        "two known faults"
    );
    // The create under the fault, as seen 15 s after the cast to the stopped nova-compute: its
    // trail stops there, unlike the complete (late) run that was learned as the negative.
    let faulty = transaction(&recorded, "req-ba441000-3dfe-4008-8d54-838c4972088d");
    let cast = ts_of(&faulty, "compute.build_and_run_instance");
    let normal = transaction(&recorded, "req-12ca6d39-24a5-43dd-b246-c055dcbfc48e");
    let traces = dir.path().join("fresh");
    write_trace(
        &traces,
        &recorded,
        vec![
            fresh(
                faulty,
                "req-fresh-create",
                "server create",
                cast + 15_000_000,
            ),
            fresh(normal, "req-fresh-delete", "server delete", i64::MAX),
        ],
    );
    let output = butterfly()
        .args(["diagnose", "--json", "--fingerprints"])
        .arg(&out)
        .arg("--traces")
        .arg(&traces)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let diagnoses: Vec<Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let create = diagnoses
        .iter()
        .find(|d| d["transaction"] == "req-fresh-create")
        .expect("create diagnosed");
    assert_eq!(create["status"], "anomalous", "{create}");
    let classification = &create["classification"];
    assert_eq!(
        classification["label"],
        json!({"fault_kind": "service-stop", "service": "nova-compute", "host": "osbed"}),
        "{create}"
    );
    assert_eq!(create["suspects"][0]["service"], "nova-compute", "{create}");
    let delete = diagnoses
        .iter()
        .find(|d| d["transaction"] == "req-fresh-delete")
        .expect("delete diagnosed");
    assert_eq!(delete["status"], "normal", "{delete}");
    assert!(delete.get("classification").is_none(), "{delete}");
}

#[test]
fn a_run_directory_without_its_workload_record_is_invalid_input() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::copy(run_dir().join("report.json"), run.join("report.json")).unwrap();
    let output = butterfly()
        .args(["fingerprint", "learn", "--from-run"])
        .arg(&run)
        .arg("--out")
        .arg(dir.path().join("fp.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("workload.jsonl"), "{stderr}");
    assert!(!dir.path().join("fp.json").exists(), "nothing is written");
}
