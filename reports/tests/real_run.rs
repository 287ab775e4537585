//! Two runs recorded on the local testbed by `butterfly run scenarios/examples/boot-storm.yaml`
//! (`tests/fixtures/recorded-boot-storm*/report.json`, copied unchanged from their run
//! directories): snapshots of every rendered file and of the comparison on real data, beside the
//! hand-made fixtures (`run/`, `baseline-run/`) that cover the failure paths a healthy run never
//! takes (failed hypotheses, regressions, gates).

use std::path::{Path, PathBuf};

use reports::{Report, read_run};

/// The first recorded run, and the one compared with it.
const RECORDED: &str = "recorded-boot-storm";
const RERUN: &str = "recorded-boot-storm-rerun";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn recorded(name: &str) -> (Report, String) {
    let dir = fixture(name);
    let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
    (
        read_run(&dir).expect("the recorded run parses and checks"),
        text,
    )
}

fn validator() -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("report.schema.json"))
            .unwrap(),
    )
    .unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

#[test]
fn issue_8_recorded_runs_round_trip_validate_and_rescore() {
    let validator = validator();
    for name in [RECORDED, RERUN] {
        let (report, text) = recorded(name);
        assert_eq!(
            report.to_json(),
            text,
            "{name}: the runner wrote report.json in its canonical layout"
        );
        let document: serde_json::Value = serde_json::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&document)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}: {errors:?}");
        assert_eq!(
            report.rescore(),
            report.detectors,
            "{name}: stored scores are what scoring computes"
        );
        // What the campaign asked for is what the run did: three experiments, one repetition
        // each, every fault reverted inside its repetition.
        assert_eq!(report.experiments.len(), 3, "{name}");
        for experiment in &report.experiments {
            assert_eq!(experiment.repetitions.len(), 1, "{name}");
            for repetition in &experiment.repetitions {
                assert_eq!(repetition.faults.len(), 1, "{name}");
            }
        }
    }
}

#[test]
fn issue_8_recorded_report_json_snapshot() {
    let (report, _) = recorded(RECORDED);
    insta::assert_snapshot!("recorded_report.json", report.to_json());
}

#[test]
fn issue_8_recorded_run_renders_junit_and_markdown() {
    let (report, _) = recorded(RECORDED);
    let junit = reports::junit::render(&report).unwrap();
    insta::assert_snapshot!("recorded_junit.xml", junit);
    insta::assert_snapshot!("recorded_summary.md", reports::markdown::render(&report));
    let parsed =
        quick_junit::Report::deserialize_from_str(&junit).expect("a JUnit parser reads it");
    let cases: usize = parsed.test_suites.iter().map(|s| s.test_cases.len()).sum();
    assert_eq!(cases, report.hypotheses().count());
}

#[test]
fn issue_8_comparing_two_recorded_runs_gives_a_difference() {
    let (baseline, _) = recorded(RECORDED);
    let (current, _) = recorded(RERUN);
    let comparison = reports::compare::compare(&baseline, &current);
    let markdown = comparison.to_markdown();
    assert!(
        markdown.contains(&baseline.run_id) && markdown.contains(&current.run_id),
        "{markdown}"
    );
    // Two real runs never measure the same latencies: the difference is not empty.
    assert!(
        markdown.contains("ms (+") || markdown.contains("ms (−"),
        "{markdown}"
    );
    insta::assert_snapshot!("recorded_compare.md", markdown);
}
