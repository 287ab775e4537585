//! `summary.md`: a short verdict table for a pull-request comment.

use std::fmt::Write as _;

use crate::fmt;
use crate::headline::{self, Tone};
use crate::model::{Experiment, Repetition, Report, RunOutcome, Verdict};

/// Renders the Markdown summary.
pub fn render(report: &Report) -> String {
    let hypotheses: Vec<_> = report.hypotheses().collect();
    let held = hypotheses
        .iter()
        .filter(|(_, _, h)| h.verdict == Verdict::Pass)
        .count();
    let mut out = String::new();
    let headlines = headline::experiments(report);
    // Held hypotheses over a fault window where commands failed are not a clean pass.
    let icon = match (report.passed(), headline::worst_tone(&headlines)) {
        (false, _) => "❌",
        (true, Tone::Degraded | Tone::Failing) => "⚠️",
        (true, _) => "✅",
    };
    let _ = writeln!(
        out,
        "## {icon} {campaign}: {held} of {total} hypotheses held",
        campaign = cell(&report.campaign.name),
        total = hypotheses.len()
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Run `{}` · seed {} · butterfly {} · {} `{}`",
        report.run_id,
        report.campaign.seed,
        report.environment.butterfly_version,
        report.environment.testbed.kind,
        report.environment.testbed.cloud,
    );
    match report.outcome {
        RunOutcome::Completed => {}
        RunOutcome::Aborted => {
            let _ = writeln!(
                out,
                "\n**The run was aborted by a guardrail; later experiments did not run.**"
            );
        }
        RunOutcome::Interrupted => {
            let _ = writeln!(
                out,
                "\n**The run was interrupted; later experiments did not run.**"
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "| Experiment | Hypotheses | Fault window |");
    let _ = writeln!(out, "|---|---|---|");
    for h in &headlines {
        let _ = writeln!(
            out,
            "| {} | {} {} | {} {} |",
            cell(&h.name),
            if h.held == h.hypotheses { "✅" } else { "❌" },
            h.verdicts(),
            h.tone.icon(),
            h.fault_ratio()
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| Experiment | Hypothesis | Window | Required | Observed | Verdict |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (experiment, repetition, h) in &hypotheses {
        let name = repetition_name(experiment, repetition);
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} {} | {} | {} |",
            cell(&name),
            cell(&h.name),
            h.window.as_str(),
            h.comparison.symbol(),
            fmt::value(h.bound, &h.unit),
            fmt::opt_value(h.observed, &h.unit),
            if h.verdict == Verdict::Pass {
                "✅ pass"
            } else {
                "❌ **fail**"
            },
        );
    }
    let failures: Vec<_> = hypotheses
        .iter()
        .filter(|(_, _, h)| h.verdict == Verdict::Fail)
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\n**Why it failed**\n");
        for (experiment, _, h) in failures {
            let _ = writeln!(
                out,
                "- {} / {}: {}",
                cell(&experiment.name),
                cell(&h.name),
                cell(&h.reason)
            );
        }
    }
    // What the reverts found: a kill its supervisor healed before the revert, a stop that held.
    let observed: Vec<_> = report
        .experiments
        .iter()
        .flat_map(|e| e.repetitions.iter().map(move |r| (e, r)))
        .flat_map(|(e, r)| r.faults.iter().map(move |f| (e, r, f)))
        .filter_map(|(e, r, f)| f.observed.as_ref().map(|o| (e, r, f, o)))
        .collect();
    if !observed.is_empty() {
        let _ = writeln!(out, "\n**What the reverts found**\n");
        for (experiment, repetition, fault, seen) in observed {
            let name = repetition_name(experiment, repetition);
            let _ = writeln!(
                out,
                "- {} / {} of {}: {}",
                cell(&name),
                cell(&fault.kind),
                cell(&fmt::fault_target(fault)),
                cell(seen)
            );
        }
    }
    if !report.detectors.is_empty() {
        let _ = writeln!(
            out,
            "\n| Detector | Precision | Recall | F1 | Mean time to detect | Top-1 | False alarms/h |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|");
        for d in &report.detectors {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                cell(&d.detector),
                fmt::score(d.precision),
                fmt::score(d.recall),
                fmt::score(d.f1),
                fmt::opt_value(d.mean_time_to_detect_s, "s"),
                d.localization_top1
                    .map_or_else(|| fmt::DASH.to_owned(), fmt::percent),
                d.false_alarms_per_hour
                    .map_or_else(|| fmt::DASH.to_owned(), |v| fmt::trim(v, 1)),
            );
        }
    }
    render_loop(report, &mut out);
    let _ = writeln!(out, "\nFull report: `report.html` in the run directory.");
    out
}

/// An experiment's name, with the repetition's number when it has several.
fn repetition_name(experiment: &Experiment, repetition: &Repetition) -> String {
    if experiment.repetitions.len() > 1 {
        format!("{} #{}", experiment.name, repetition.index + 1)
    } else {
        experiment.name.clone()
    }
}

/// The detect → remediate → recover loop per repetition, when it was measured.
fn render_loop(report: &Report, out: &mut String) {
    let rows: Vec<_> = report
        .experiments
        .iter()
        .flat_map(|e| e.repetitions.iter().map(move |r| (e, r)))
        .filter(|(_, r)| !r.loop_times.is_unmeasured() || !r.remediation.is_empty())
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n| Repetition | Time to detect | Time to remediate | Time to recover | Downtime | Actions |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|");
    for (experiment, repetition) in rows {
        let times = &repetition.loop_times;
        let actions: Vec<String> = repetition
            .remediation
            .iter()
            .flat_map(|step| {
                step.actions.iter().map(move |a| {
                    let how = match (&step.refused, &a.error, a.done_at) {
                        (Some(_), _, _) => "refused",
                        (_, Some(_), _) => "failed",
                        (_, None, Some(_)) => "done",
                        _ => "suggested",
                    };
                    format!("{} {} ({how})", step.runbook, a.action)
                })
            })
            .collect();
        let _ = writeln!(
            out,
            "| {} #{} | {} | {} | {} | {} | {} |",
            cell(&experiment.name),
            repetition.index + 1,
            fmt::opt_value(times.time_to_detect_s, "s"),
            fmt::opt_value(times.time_to_remediate_s, "s"),
            fmt::opt_value(times.time_to_recover_s, "s"),
            fmt::opt_value(times.downtime_s, "s"),
            if actions.is_empty() {
                fmt::DASH.to_owned()
            } else {
                cell(&actions.join(", "))
            }
        );
    }
}

/// Makes text safe inside a table cell: no pipes or line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}
