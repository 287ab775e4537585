//! Acceptance tests on the recorded-run fixtures (`tests/fixtures/*/report.json`, hand-made until
//! the runner records real runs): round trip, schema, renderers, scores and comparison.

use std::path::{Path, PathBuf};

use reports::compare::{self, GateRule};
use reports::model::Verdict;
use reports::{Report, read_run};

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn current() -> Report {
    read_run(&fixture_dir("run")).expect("the fixture parses")
}

fn baseline() -> Report {
    read_run(&fixture_dir("baseline-run")).expect("the baseline fixture parses")
}

#[test]
fn report_json_round_trips_exactly() {
    let text = std::fs::read_to_string(fixture_dir("run/report.json")).unwrap();
    let report = Report::from_json(&text).unwrap();
    assert_eq!(report.to_json(), text, "re-serializing changes report.json");
    insta::assert_snapshot!("report.json", report.to_json());
}

#[test]
fn published_schema_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("report.schema.json");
    let generated = serde_json::to_string_pretty(&reports::schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == generated,
        "reports/report.schema.json is stale; regenerate it with `UPDATE_SCHEMA=1 cargo test -p reports --test recorded_run published_schema_is_up_to_date`"
    );
}

fn validator() -> jsonschema::Validator {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("report.schema.json"))
            .unwrap();
    let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the published schema compiles")
}

#[test]
fn recorded_runs_validate_against_the_published_schema() {
    let validator = validator();
    for run in ["run", "baseline-run"] {
        let instance: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(fixture_dir(run).join("report.json")).unwrap(),
        )
        .unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{run}: {errors:#?}");
    }
}

#[test]
fn schema_rejects_what_the_model_rejects() {
    let validator = validator();
    let mut instance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir("run/report.json")).unwrap())
            .unwrap();
    instance["experiments"][0]["repetitions"][0]["hypotheses"][0]["verdict"] = "maybe".into();
    assert!(!validator.is_valid(&instance));
    let mut instance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir("run/report.json")).unwrap())
            .unwrap();
    instance["campaign"]["unexpected"] = 1.into();
    assert!(!validator.is_valid(&instance));
    assert!(Report::from_json(&instance.to_string()).is_err());
    let mut instance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir("run/report.json")).unwrap())
            .unwrap();
    instance["started_at"] = "yesterday".into();
    assert!(!validator.is_valid(&instance));
}

#[test]
fn other_format_versions_are_refused_with_a_clear_error() {
    let mut instance: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir("run/report.json")).unwrap())
            .unwrap();
    instance["format_version"] = 2.into();
    let error = Report::from_json(&instance.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("format version 2") && error.contains("version 1"),
        "{error}"
    );
}

#[test]
fn stored_detector_scores_match_the_scoring_rules() {
    for report in [current(), baseline()] {
        assert_eq!(report.detectors, report.rescore(), "{}", report.run_id);
    }
}

#[test]
fn junit_xml_snapshot_and_read_back() {
    let report = current();
    let xml = reports::junit::render(&report).unwrap();
    insta::assert_snapshot!("junit.xml", xml);

    let parsed =
        quick_junit::Report::deserialize_from_str(&xml).expect("a JUnit parser reads junit.xml");
    let cases: Vec<&quick_junit::TestCase> = parsed
        .test_suites
        .iter()
        .flat_map(|s| &s.test_cases)
        .collect();
    let hypotheses: Vec<_> = report.hypotheses().collect();
    assert_eq!(
        cases.len(),
        hypotheses.len(),
        "one test case per repetition × hypothesis"
    );
    assert_eq!(parsed.test_suites.len(), report.experiments.len());
    let failures: Vec<_> = cases
        .iter()
        .filter_map(|c| match &c.status {
            quick_junit::TestCaseStatus::NonSuccess { message, .. } => {
                Some(message.as_ref().map(|m| m.to_string()))
            }
            _ => None,
        })
        .collect();
    let failed: Vec<_> = hypotheses
        .iter()
        .filter(|(_, _, h)| h.verdict == Verdict::Fail)
        .collect();
    assert_eq!(failures.len(), failed.len());
    assert_eq!(parsed.failures, failed.len());
    for (_, _, h) in failed {
        assert!(
            failures.contains(&Some(h.reason.clone())),
            "the failure carries the reason: {}",
            h.reason
        );
    }
}

#[test]
fn an_aborted_run_never_looks_green() {
    let mut report = baseline();
    assert!(report.passed());
    report.outcome = reports::model::RunOutcome::Aborted;
    assert!(!report.passed());
    let xml = reports::junit::render(&report).unwrap();
    let parsed = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    assert_eq!(parsed.errors, 1, "an aborted run adds an error test case");
    assert!(reports::markdown::render(&report).contains("aborted by a guardrail"));
    assert!(
        reports::html::render(&report)
            .unwrap()
            .contains("abort guardrail was breached")
    );
}

#[test]
fn a_baseline_begun_before_the_steady_state_says_so() {
    let mut report = baseline();
    let why = "a `server create` took 9.1 s, longer than 1.5 × the baselines' longest (4.0 s)";
    report.experiments[0].repetitions[0].unsteady = Some(why.to_owned());
    let again = Report::from_json(&report.to_json()).unwrap();
    assert_eq!(again, report, "the note survives report.json");
    let html = reports::html::render(&report).unwrap();
    assert!(
        html.contains(
            "The baseline began before the cloud was steady again (a `server create` took 9.1 s"
        ),
        "{html}"
    );
    assert!(
        !reports::html::render(&baseline())
            .unwrap()
            .contains("before the cloud was steady")
    );
}

#[test]
fn what_a_revert_found_is_shown_in_the_summary_and_the_html() {
    let mut report = baseline();
    let seen = "healed by supervisor after 0.4 s <before the revert>";
    let fault = &mut report.experiments[0].repetitions[0].faults[0];
    fault.observed = Some(seen.to_owned());
    let (kind, service) = (fault.kind.clone(), fault.target.service.clone());
    let summary = reports::markdown::render(&report);
    assert!(summary.contains("**What the reverts found**"), "{summary}");
    let line = summary
        .lines()
        .find(|line| line.contains(seen))
        .expect("the observation is listed");
    assert!(line.contains(&kind), "{line}");
    if let Some(service) = service {
        assert!(line.contains(&service), "{line}");
    }
    let html = reports::html::render(&report).unwrap();
    assert!(
        html.contains("healed by supervisor after 0.4 s &#60;before the revert&#62;"),
        "the observation is in the faults table, escaped"
    );
    // A run whose reverts found nothing to say has no such section.
    assert!(!reports::markdown::render(&baseline()).contains("What the reverts found"));
}

#[test]
fn summary_md_snapshot() {
    let summary = reports::markdown::render(&current());
    assert!(summary.starts_with("## ❌ nova-resilience: 6 of 9 hypotheses held"));
    insta::assert_snapshot!("summary.md", summary);
}

#[test]
fn render_all_writes_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let report = current();
    let written = reports::render_all(&report, dir.path()).unwrap();
    assert_eq!(written.len(), reports::OUTPUT_FILES.len());
    for name in reports::OUTPUT_FILES {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert!(!text.is_empty(), "{name}");
    }
    // Re-rendering from the written report.json gives the same files.
    let again = read_run(dir.path()).unwrap();
    assert_eq!(again, report);
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert_eq!(html, reports::html::render(&again).unwrap());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        reports::OUTPUT_FILES.len(),
        "no temporary files left"
    );
}

#[test]
fn html_is_self_contained() {
    let html = reports::html::render(&current()).unwrap();
    for external in [
        "src=\"http",
        "href=\"http",
        "url(",
        "@import",
        "<script src",
        "<link",
    ] {
        assert!(
            !html.contains(external),
            "report.html references an external asset: {external}"
        );
    }
    let timelines = html.matches("<svg class=\"timeline\"").count();
    assert_eq!(timelines, 3, "one timeline per repetition");
    assert_eq!(html.matches("<svg class=\"divergence\"").count(), 1);
    assert!(html.contains("class=\"alarm\""));
}

#[test]
fn only_transactions_a_detector_flagged_are_aligned() {
    let mut report = current();
    let repetition = &mut report.experiments[0].repetitions[0];
    let aligned = repetition.failing_transactions[0].transaction.clone();
    assert!(
        repetition
            .alarms
            .iter()
            .any(|a| a.transaction.as_deref() == Some(aligned.as_str())),
        "the fixture's aligned transaction is flagged"
    );
    let html = reports::html::render(&report).unwrap();
    assert_eq!(html.matches("<svg class=\"divergence\"").count(), 1);
    assert!(!html.contains("left out: no detector flagged them"));
    for alarm in &mut report.experiments[0].repetitions[0].alarms {
        if alarm.transaction.as_deref() == Some(aligned.as_str()) {
            alarm.transaction = None;
        }
    }
    let html = reports::html::render(&report).unwrap();
    assert_eq!(html.matches("<svg class=\"divergence\"").count(), 0);
    assert!(html.contains("1 other aligned transaction(s) left out: no detector flagged them."));
}

#[test]
fn comparing_two_runs_shows_the_regressions() {
    let comparison = compare::compare(&baseline(), &current());
    let regressions = comparison.regressions();
    assert_eq!(
        regressions,
        vec![
            "kill-nova-conductor / boots keep succeeding".to_owned(),
            "freeze-nova-scheduler / boots stay under 20 s".to_owned()
        ]
    );
    insta::assert_snapshot!("compare.md", comparison.to_markdown());

    let rules: Vec<GateRule> = [
        "regressions",
        "success-ratio-drop=5%",
        "f1-drop=0.05",
        "timeout:min-recall=0.9",
    ]
    .iter()
    .map(|r| r.parse().unwrap())
    .collect();
    let failures = compare::gate(&current(), Some(&comparison), &rules).unwrap();
    let broken: Vec<&str> = failures.iter().map(|f| f.rule.as_str()).collect();
    assert_eq!(
        broken,
        [
            "regressions",
            "regressions",
            "success-ratio-drop=5%",
            "f1-drop=0.05",
            "f1-drop=0.05"
        ]
    );

    // Boots got slower past the latency threshold although no hypothesis on them changed.
    let latency: GateRule = "latency-regressions".parse().unwrap();
    let slower = compare::gate(
        &current(),
        Some(&comparison),
        std::slice::from_ref(&latency),
    )
    .unwrap();
    assert_eq!(slower.len(), 4, "{slower:?}");
    assert!(
        slower[0]
            .message
            .contains("kill-nova-conductor: server create p95 in the recovery window"),
        "{slower:?}"
    );
    let mut lenient = comparison.clone();
    lenient.latency_threshold.ratio = 2.0;
    assert!(
        compare::gate(&current(), Some(&lenient), &[latency])
            .unwrap()
            .is_empty()
    );

    // A run compared with itself has nothing to gate.
    let same = compare::compare(&current(), &current());
    assert!(
        compare::gate(&current(), Some(&same), &rules)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn detector_thresholds_gate_a_single_run() {
    let rules: Vec<GateRule> = ["min-recall=0.9", "fingerprint:max-false-alarms-per-hour=5"]
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
    let failures = compare::gate(&current(), None, &rules).unwrap();
    let messages: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages[0].starts_with("fingerprint: recall is 0.67"),
        "{messages:?}"
    );
    assert!(
        messages[1].starts_with("fingerprint: 10.5 false alarms per hour"),
        "{messages:?}"
    );
    let needs_baseline: GateRule = "regressions".parse().unwrap();
    assert!(compare::gate(&current(), None, &[needs_baseline]).is_err());
}
