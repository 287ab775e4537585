//! `butterfly trace import` on foreign spans, through the binary: what it says it detected, and
//! the regression of a failed import that left a half-written trace folder behind.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn butterfly() -> Command {
    Command::cargo_bin("butterfly").unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tracer/tests/fixtures/spans")
        .join(name)
}

/// Everything in `dir`, to show that nothing was left there.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn importing_spans_says_which_format_it_detected_and_writes_the_trace() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rebuilt");
    butterfly()
        .args(["trace", "import"])
        .arg(fixture("zipkin-v1.json"))
        .arg(fixture("osprofiler.json"))
        .arg("--out")
        .arg(&out)
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "zipkin-v1.json: detected zipkin-v1: 12 events from 8 spans",
        ))
        .stderr(predicate::str::contains(
            "osprofiler.json: detected osprofiler:",
        ))
        .stdout(predicate::str::contains("3 transactions"));
    assert_eq!(entries(dir.path()), ["rebuilt"]);
    assert_eq!(
        entries(&out),
        ["events.jsonl", "graphs", "trace.json", "transactions.json"]
    );
}

#[test]
fn a_failed_import_leaves_nothing_behind_and_names_file_and_formats() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rebuilt");
    // The reported case: Zipkin v1 read as v2. The good input before it is not written either.
    butterfly()
        .args(["trace", "import"])
        .arg(fixture("zipkin-v2.json"))
        .arg(fixture("zipkin-v1.json"))
        .args(["--format", "zipkin-v2", "--out"])
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "zipkin-v1.json: read as zipkin-v2, expected Zipkin v2 JSON",
        ))
        .stderr(predicate::str::contains("it looks like Zipkin v1 JSON"));
    assert!(entries(dir.path()).is_empty(), "{:?}", entries(dir.path()));
    // Not JSON at all: the same.
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "[{\"traceId\": \"a\", ").unwrap();
    butterfly()
        .args(["trace", "import"])
        .arg(&broken)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "broken.json: not a trace this tool reads: it is not JSON",
        ));
    assert_eq!(entries(dir.path()), ["broken.json"]);
}

#[test]
fn an_import_never_writes_into_a_directory_that_holds_something() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rebuilt");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("events.jsonl"), "earlier trace\n").unwrap();
    butterfly()
        .args(["trace", "import"])
        .arg(fixture("zipkin-v2.json"))
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("the directory is not empty"));
    assert_eq!(entries(&out), ["events.jsonl"]);
    assert_eq!(
        std::fs::read_to_string(out.join("events.jsonl")).unwrap(),
        "earlier trace\n"
    );
}

#[test]
fn a_bad_tag_map_is_refused_with_its_location_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let tags = dir.path().join("tags.yaml");
    std::fs::write(&tags, "msg_id: [a]\nmsgid: [b]\n").unwrap();
    butterfly()
        .args(["trace", "import"])
        .arg(fixture("otlp.json"))
        .arg("--tag-map")
        .arg(&tags)
        .arg("--out")
        .arg(dir.path().join("rebuilt"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "tags.yaml:2:1: unknown field `msgid`",
        ));
    assert_eq!(entries(dir.path()), ["tags.yaml"]);
}

#[test]
fn fingerprints_learned_from_imported_spans_diagnose_other_formats_of_the_same_request() {
    let dir = tempfile::tempdir().unwrap();
    let import = |input: &str, out: &str| {
        butterfly()
            .args(["trace", "import"])
            .arg(fixture(input))
            .arg("--out")
            .arg(dir.path().join(out))
            .assert()
            .success();
    };
    import("zipkin-v2.json", "v2");
    import("zipkin-v1.json", "v1");
    import("osprofiler.otlp.json", "osprofiler-otlp");
    let store = dir.path().join("fp.json");
    butterfly()
        .args(["fingerprint", "learn", "--traces"])
        .arg(dir.path().join("v2"))
        .arg("--out")
        .arg(&store)
        .assert()
        .success();
    let distances = |trace: &str| -> Vec<f64> {
        let output = butterfly()
            .args(["diagnose", "--json", "--fingerprints"])
            .arg(&store)
            .arg("--traces")
            .arg(dir.path().join(trace))
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                assert_eq!(value["command"], "server create");
                value["distance"].as_f64().unwrap()
            })
            .collect()
    };
    // Zipkin v1 of the same program is the same execution as the v2 it was learned from.
    assert_eq!(distances("v1"), [0.0, 0.0]);
    // OSProfiler's OTLP export has the cast as a call: a different shape, far from it.
    let far = distances("osprofiler-otlp");
    assert_eq!(far.len(), 1);
    assert!(far[0] > 0.15, "{far:?}");
}

#[test]
fn an_input_that_fails_while_writing_removes_the_half_written_trace() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rebuilt");
    // A trace directory is read only once the output is being written; its events.jsonl breaks
    // on line 2, after the spans before it were written.
    let broken = dir.path().join("old-trace");
    std::fs::create_dir(&broken).unwrap();
    std::fs::write(
        broken.join("events.jsonl"),
        "{\"seq\": 1, \"kind\": \"rpc-cast\"}\nnot json\n",
    )
    .unwrap();
    butterfly()
        .args(["trace", "import"])
        .arg(fixture("zipkin-v2.json"))
        .arg(&broken)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("old-trace/events.jsonl:1:"));
    assert_eq!(entries(dir.path()), ["old-trace"]);
}
