//! `junit.xml`: one test suite per experiment, one test case per repetition × hypothesis.
//!
//! A failed hypothesis is a `<failure>` whose message is the hypothesis's reason, so Jenkins,
//! Zuul and GitHub show the cause next to the test name. A run that did not complete adds an
//! `<error>` test case, so an aborted or interrupted campaign never looks green. Each suite carries
//! its fault window's successes and commands as properties and in its `system-out`, beside the
//! verdicts (see [`crate::headline`]). Test suites carry
//! the experiment's duration; test cases carry none, since all hypotheses of a repetition are
//! judged on the same windows and their times would add up to more than the run took.

use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use crate::model::{Experiment, HypothesisResult, Repetition, Report, RunOutcome, Verdict};
use crate::{Error, fmt, headline};

/// Renders the JUnit XML document.
pub fn render(report: &Report) -> Result<String, Error> {
    let mut junit = quick_junit::Report::new(format!("butterfly: {}", report.campaign.name));
    let mut total = Duration::ZERO;
    for (experiment, headline) in report.experiments.iter().zip(headline::experiments(report)) {
        let mut suite = TestSuite::new(experiment.name.as_str());
        suite.add_properties([
            Property::new("campaign", report.campaign.name.as_str()),
            Property::new("run_id", report.run_id.as_str()),
            Property::new("seed", report.campaign.seed.to_string()),
            Property::new(
                "fault_window_successes",
                headline.fault_window.successes.to_string(),
            ),
            Property::new(
                "fault_window_commands",
                headline.fault_window.count.to_string(),
            ),
        ]);
        // Test views show a suite's output beside its cases: the window the cases are about.
        suite.set_system_out(format!(
            "{}: hypotheses {}; fault window {}",
            experiment.name,
            headline.verdicts(),
            headline.fault_ratio()
        ));
        let mut suite_time = Duration::ZERO;
        for repetition in &experiment.repetitions {
            let time = Duration::from_secs_f64(
                repetition
                    .windows
                    .baseline
                    .start
                    .duration_until(repetition.windows.recovery.end)
                    .as_secs_f64()
                    .max(0.0),
            );
            suite_time += time;
            for hypothesis in &repetition.hypotheses {
                let mut case = TestCase::new(
                    case_name(experiment, repetition, hypothesis),
                    status(hypothesis),
                );
                case.set_classname(format!("{}.{}", report.campaign.name, experiment.name));
                suite.add_test_case(case);
            }
        }
        suite.set_time(suite_time);
        total += suite_time;
        junit.add_test_suite(suite);
    }
    if report.outcome != RunOutcome::Completed {
        let mut suite = TestSuite::new("campaign");
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status.set_message(match report.outcome {
            RunOutcome::Aborted => "an abort guardrail was breached; the campaign stopped early",
            _ => "the run was interrupted; the campaign stopped early",
        });
        let mut case = TestCase::new("campaign completed", status);
        case.set_classname(report.campaign.name.as_str());
        suite.add_test_case(case);
        junit.add_test_suite(suite);
    }
    junit.set_time(total);
    junit.to_string().map_err(|error| Error::Render {
        format: "junit.xml",
        message: error.to_string(),
    })
}

fn case_name(
    experiment: &Experiment,
    repetition: &Repetition,
    hypothesis: &HypothesisResult,
) -> String {
    if experiment.repetitions.len() > 1 {
        format!("{} (repetition {})", hypothesis.name, repetition.index + 1)
    } else {
        hypothesis.name.clone()
    }
}

fn status(hypothesis: &HypothesisResult) -> TestCaseStatus {
    match hypothesis.verdict {
        Verdict::Pass => TestCaseStatus::success(),
        Verdict::Fail => {
            let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
            status.set_message(hypothesis.reason.as_str());
            status.set_type(hypothesis.metric.as_str());
            status.set_description(format!(
                "{metric}{command} in the {window} window: observed {observed}, required {op} {bound}",
                metric = hypothesis.metric,
                command = hypothesis.command.as_deref().map(|c| format!(" of `{c}`")).unwrap_or_default(),
                window = hypothesis.window.as_str(),
                observed = fmt::opt_value(hypothesis.observed, &hypothesis.unit),
                op = hypothesis.comparison.symbol(),
                bound = fmt::value(hypothesis.bound, &hypothesis.unit),
            ));
            status
        }
    }
}
