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
fn recorded_runs_round_trip_validate_and_rescore() {
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
fn recorded_report_json_snapshot() {
    let (report, _) = recorded(RECORDED);
    insta::assert_snapshot!("recorded_report.json", report.to_json());
}

#[test]
fn recorded_run_renders_junit_and_markdown() {
    let (report, _) = recorded(RECORDED);
    let junit = reports::junit::render(&report).unwrap();
    insta::assert_snapshot!("recorded_junit.xml", junit);
    insta::assert_snapshot!("recorded_summary.md", reports::markdown::render(&report));
    let parsed =
        quick_junit::Report::deserialize_from_str(&junit).expect("a JUnit parser reads it");
    let cases: usize = parsed.test_suites.iter().map(|s| s.test_cases.len()).sum();
    assert_eq!(cases, report.hypotheses().count());
    // Every hypothesis held, yet stop-placement's fault window lost 8 commands of 30.
    assert!(
        junit.contains(r#"<property name="fault_window_successes" value="22"/>"#)
            && junit.contains(r#"<property name="fault_window_commands" value="30"/>"#),
        "{junit}"
    );
}

/// An alarm mark: its detector, x and the y of its tip.
type Mark = (String, String, String);
/// An alarm row: its detector, the y of its line and its marks.
type Lane = (String, String, Vec<Mark>);

/// The `<g class="alarm-lane">` groups of each timeline.
fn alarm_lanes(html: &str) -> Vec<Vec<Lane>> {
    let attr = |text: &str, name: &str| -> String {
        let start = text.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
        text[start..start + text[start..].find('"').unwrap()].to_owned()
    };
    html.split("<svg class=\"timeline\"")
        .skip(1)
        .map(|svg| {
            let svg = &svg[..svg.find("</svg>").unwrap()];
            svg.split("<g class=\"alarm-lane\"")
                .skip(1)
                .map(|lane| {
                    let lane = &lane[..lane.find("</g>").unwrap()];
                    let line = &lane[lane.find("<line class=\"lane\"").unwrap()..];
                    let marks = lane
                        .split("<path class=\"alarm\"")
                        .skip(1)
                        .map(|mark| {
                            let d = attr(mark, "d");
                            let mut points = d[1..].split(' ');
                            let x = points.next().unwrap().to_owned();
                            let y = points.next().unwrap().to_owned();
                            (attr(mark, "data-detector"), x, y)
                        })
                        .collect();
                    (attr(lane, "data-detector"), attr(line, "y1"), marks)
                })
                .collect()
        })
        .collect()
}

#[test]
fn alarms_of_each_detector_have_their_own_row() {
    let (report, _) = recorded(RECORDED);
    let html = reports::html::render(&report).unwrap();
    let timelines = alarm_lanes(&html);
    assert_eq!(timelines.len(), 3, "one timeline per repetition");
    let mut summary = String::new();
    for (timeline, experiment) in timelines.iter().zip(&report.experiments) {
        let detectors: Vec<&str> = timeline.iter().map(|(d, _, _)| d.as_str()).collect();
        assert_eq!(
            detectors,
            ["fingerprint", "timeout"],
            "every detector, every time"
        );
        let rows: std::collections::BTreeSet<&str> =
            timeline.iter().map(|(_, y, _)| y.as_str()).collect();
        assert_eq!(rows.len(), timeline.len(), "one row per detector");
        let mut marks = 0;
        for (detector, row, alarms) in timeline {
            summary += &format!("{} / {detector} (row at y {row}):", experiment.name);
            for (of, x, tip_y) in alarms {
                assert_eq!(of, detector, "an alarm is drawn in its detector's row");
                summary += &format!(" {x}");
                // Every mark of a row has its tip at the same height; rows differ.
                assert!(
                    alarms.iter().all(|(_, _, y)| y == tip_y),
                    "{detector}: {alarms:?}"
                );
                marks += 1;
            }
            summary += "\n";
        }
        assert_eq!(
            marks,
            experiment.repetitions[0].alarms.len(),
            "every alarm drawn"
        );
    }
    let tips: Vec<&str> = timelines[0]
        .iter()
        .filter_map(|(_, _, alarms)| alarms.first().map(|(_, _, y)| y.as_str()))
        .collect();
    assert_eq!(tips.len(), 2, "both detectors alarmed in kill-conductor");
    assert_ne!(
        tips[0], tips[1],
        "a timeout mark never hides a fingerprint mark"
    );
    insta::assert_snapshot!("recorded_alarm_rows", summary);
}

#[test]
fn the_headline_shows_each_fault_window_beside_the_verdicts() {
    let (report, _) = recorded(RECORDED);
    assert!(report.passed());
    let html = reports::html::render(&report).unwrap();
    // All held, but not green: stop-placement lost commands in its fault window.
    assert!(
        html.contains(r#"<div class="verdict warn" role="status">"#),
        "the headline is toned by the fault windows"
    );
    assert!(html.contains("All 9 hypotheses held; commands failed in 1 fault window(s)"));
    let stop = &html[html
        .find(r##"<a href="#experiment-3">stop-placement</a>"##)
        .unwrap()..];
    let row = &stop[..stop.find("</tr>").unwrap()];
    assert!(
        row.contains(r#"<span class="pill pass">3/3 held</span>"#)
            && row.contains(r#"<span class="ratio warn">"#)
            && row.contains("22/30 succeeded (73.3 %)"),
        "{row}"
    );
    let summary = reports::markdown::render(&report);
    assert!(summary.starts_with("## ⚠️ boot-storm: 9 of 9 hypotheses held"));
    assert!(summary.contains("| stop-placement | ✅ 3/3 held | 🟠 22/30 succeeded (73.3 %) |"));
}

#[test]
fn comparing_two_recorded_runs_gives_a_difference() {
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
