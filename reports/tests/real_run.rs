//! A run recorded from the local testbed by `butterfly run scenarios/examples/ci-smoke.yaml`
//! (`tests/fixtures/recorded-ci-smoke/report.json`, copied unchanged from the run directory):
//! the renderers' snapshots on real data, beside the hand-made fixtures that cover failure paths.

use std::path::Path;

use reports::{Report, read_run};

fn recorded() -> (Report, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/recorded-ci-smoke");
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    (
        read_run(&dir).expect("the recorded run parses and checks"),
        text,
    )
}

#[test]
fn issue_8_the_recorded_run_round_trips_and_validates() {
    let (report, text) = recorded();
    assert_eq!(
        report.to_json(),
        text,
        "the runner wrote report.json in its canonical layout"
    );
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("report.schema.json"))
            .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let document: serde_json::Value = serde_json::from_str(&text).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&document)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    // What the run measured, and what its scores must be consistent with.
    assert!(report.passed());
    assert_eq!(report.experiments.len(), 2);
    assert_eq!(
        report.rescore(),
        report.detectors,
        "stored scores are what scoring computes"
    );
}

#[test]
fn issue_8_the_recorded_run_renders_junit_and_markdown() {
    let (report, _) = recorded();
    insta::assert_snapshot!(
        "recorded_junit.xml",
        reports::junit::render(&report).unwrap()
    );
    insta::assert_snapshot!("recorded_summary.md", reports::markdown::render(&report));
    let junit = reports::junit::render(&report).unwrap();
    let suites = quick_junit::Report::deserialize_from_str(&junit);
    assert!(suites.is_ok(), "{suites:?}");
}
