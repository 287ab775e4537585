//! From workload records and window boundaries to hypothesis verdicts. Pure functions, so that
//! every rule here is tested without a cloud. Window statistics, the timeline and the recovery time
//! come from `reports::stats`, which owns those definitions (a command belongs to the window it
//! started in; percentiles are nearest-rank; recovery is measured from the revert).

use jiff::Timestamp;

use reports::model::{
    Comparison, HypothesisResult, Recovery, Timeline, Verdict, Window, WindowKind, WindowStats,
    Windows,
};
use reports::stats;
use scenarios::model::{
    Bound, CommandKind, Experiment, Hypothesis, Metric, Window as CampaignWindow,
};

use super::workload::CommandRecord;

/// Recovery is judged over stretches of this many seconds of started commands.
pub const RECOVERY_SPAN_S: f64 = 10.0;
/// The recovery instant is searched in steps of this many seconds.
pub const RECOVERY_STEP_S: f64 = 0.5;

/// The records as `reports::stats` takes them.
pub fn to_stats(records: &[CommandRecord]) -> Vec<stats::CommandRecord> {
    records
        .iter()
        .map(|r| stats::CommandRecord {
            command: r.command.clone(),
            started_at: r.started_at,
            latency_ms: r.latency_ms(),
            ok: r.ok,
        })
        .collect()
}

fn in_window(records: &[CommandRecord], window: Window) -> impl Iterator<Item = &CommandRecord> {
    records
        .iter()
        .filter(move |r| r.started_at >= window.start && r.started_at < window.end)
}

/// Nearest-rank percentile `p` (in `0..=100`) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    stats::percentile(sorted, p / 100.0)
}

/// Statistics of each window, overall and per command.
pub fn window_stats(records: &[stats::CommandRecord], windows: &Windows) -> Vec<WindowStats> {
    WindowKind::ALL
        .iter()
        .map(|kind| stats::window_stats(*kind, windows.get(*kind), records))
        .collect()
}

/// Per-bucket series over the whole repetition.
pub fn timeline(records: &[stats::CommandRecord], windows: &Windows, bucket_s: f64) -> Timeline {
    stats::timeline(
        windows.baseline.start,
        windows.recovery.end,
        bucket_s,
        records,
    )
}

/// Recovery after the revert, over the commands `filter` keeps.
pub fn recovery(
    records: &[CommandRecord],
    windows: &Windows,
    reverted_at: Timestamp,
    filter: &dyn Fn(&CommandRecord) -> bool,
) -> Recovery {
    let kept: Vec<CommandRecord> = records.iter().filter(|r| filter(r)).cloned().collect();
    stats::recovery(
        windows.baseline,
        windows.recovery,
        reverted_at,
        &to_stats(&kept),
        RECOVERY_SPAN_S,
        RECOVERY_STEP_S,
    )
}

fn ratio<'r>(records: impl Iterator<Item = &'r CommandRecord>) -> Option<f64> {
    let (ok, total) = records.fold((0usize, 0usize), |(ok, total), r| {
        (ok + usize::from(r.ok), total + 1)
    });
    (total > 0).then(|| ok as f64 / total as f64)
}

fn window_kind(window: CampaignWindow) -> WindowKind {
    match window {
        CampaignWindow::Baseline => WindowKind::Baseline,
        CampaignWindow::Fault => WindowKind::Fault,
        CampaignWindow::Recovery => WindowKind::Recovery,
    }
}

/// Whether a hypothesis applies to an experiment.
pub fn applies(hypothesis: &Hypothesis, experiment: &Experiment) -> bool {
    hypothesis.experiments.is_empty() || hypothesis.experiments.contains(&experiment.name)
}

fn command_label(commands: &[CommandKind]) -> Option<String> {
    (!commands.is_empty()).then(|| {
        commands
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(", ")
    })
}

/// The verdict of a `recovery-time` (from the revert) or `mttr` (`from_fault`) hypothesis.
fn recovery_result(
    hypothesis: &Hypothesis,
    command: Option<String>,
    scope: &str,
    recovery: Recovery,
    max: std::time::Duration,
    from_fault: bool,
) -> HypothesisResult {
    let bound = max.as_secs_f64();
    let from = if from_fault {
        "the fault"
    } else {
        "the revert"
    };
    let (verdict, reason) = match (recovery.recovery_s, recovery.baseline_success_ratio) {
        (_, None) => (
            Verdict::Fail,
            format!("no command{scope} ran in the baseline window, so recovery cannot be measured"),
        ),
        (None, Some(base)) => (
            Verdict::Fail,
            format!(
                "the success ratio{scope} did not get back to the baseline's {:.0}% before the recovery window ended",
                base * 100.0
            ),
        ),
        (Some(seconds), _) if seconds <= bound => (
            Verdict::Pass,
            format!("back to baseline {seconds:.1}s after {from} (bound {bound:.0}s)"),
        ),
        (Some(seconds), _) => (
            Verdict::Fail,
            format!(
                "back to baseline only {seconds:.1}s after {from}, above the bound of {bound:.0}s"
            ),
        ),
    };
    HypothesisResult {
        name: hypothesis.name.as_str().to_owned(),
        metric: if from_fault { "mttr" } else { "recovery_time" }.into(),
        command,
        window: if from_fault {
            WindowKind::Fault
        } else {
            WindowKind::Recovery
        },
        comparison: Comparison::AtMost,
        bound,
        unit: "s".into(),
        observed: recovery.recovery_s,
        verdict,
        reason,
    }
}

/// Evaluates one hypothesis over one repetition whose (first) fault was injected at
/// `injected_at` and (last) reverted at `reverted_at`.
pub fn evaluate(
    hypothesis: &Hypothesis,
    records: &[CommandRecord],
    windows: &Windows,
    injected_at: Timestamp,
    reverted_at: Timestamp,
) -> Vec<HypothesisResult> {
    let filter = |r: &CommandRecord| {
        hypothesis.commands.is_empty() || hypothesis.commands.iter().any(|c| c.name() == r.command)
    };
    let command = command_label(&hypothesis.commands);
    let scope = command
        .as_deref()
        .map(|c| format!(" of `{c}`"))
        .unwrap_or_default();
    match (hypothesis.metric, hypothesis.bound) {
        (Metric::RecoveryTime, Bound::MaxDuration(max)) => {
            let recovery = recovery(records, windows, reverted_at, &filter);
            vec![recovery_result(
                hypothesis, command, &scope, recovery, max, false,
            )]
        }
        (Metric::Mttr, Bound::MaxDuration(max)) => {
            let kept: Vec<CommandRecord> = records.iter().filter(|r| filter(r)).cloned().collect();
            let after_fault = Window {
                start: injected_at,
                end: windows.recovery.end,
            };
            let recovery = stats::recovery(
                windows.baseline,
                after_fault,
                injected_at,
                &to_stats(&kept),
                RECOVERY_SPAN_S,
                RECOVERY_STEP_S,
            );
            vec![recovery_result(
                hypothesis, command, &scope, recovery, max, true,
            )]
        }
        (metric, bound) => hypothesis
            .windows
            .iter()
            .map(|window| {
                let kind = window_kind(*window);
                let selected: Vec<&CommandRecord> = in_window(records, windows.get(kind))
                    .filter(|r| filter(r))
                    .collect();
                let (metric_name, comparison, bound_value, unit, observed) = match (metric, bound) {
                    (Metric::SuccessRatio, Bound::MinRatio(min)) => (
                        "success_ratio".to_owned(),
                        Comparison::AtLeast,
                        min,
                        "ratio",
                        ratio(selected.iter().copied()),
                    ),
                    (Metric::Latency { percentile: p }, Bound::MaxDuration(max)) => {
                        let mut latencies: Vec<f64> =
                            selected.iter().map(|r| r.latency_ms()).collect();
                        latencies.sort_by(f64::total_cmp);
                        (
                            format!("latency_p{}", p.round() as u32),
                            Comparison::AtMost,
                            max.as_secs_f64() * 1000.0,
                            "ms",
                            percentile(&latencies, p),
                        )
                    }
                    // The validator only builds the pairs above; anything else is a bug upstream.
                    _ => ("unsupported".into(), Comparison::AtLeast, 0.0, "", None),
                };
                let (verdict, reason) = match observed {
                    None => (
                        Verdict::Fail,
                        format!(
                            "no command{scope} started in the {} window, so nothing was measured",
                            kind.as_str()
                        ),
                    ),
                    Some(value) => {
                        let holds = match comparison {
                            Comparison::AtLeast => value + 1e-9 >= bound_value,
                            Comparison::AtMost => value <= bound_value + 1e-9,
                        };
                        let shown = |v: f64| {
                            if unit == "ratio" {
                                format!("{:.1}%", v * 100.0)
                            } else {
                                format!("{v:.0} {unit}")
                            }
                        };
                        let verdict = if holds { Verdict::Pass } else { Verdict::Fail };
                        (
                            verdict,
                            format!(
                                "{} {} in the {} window over {} command(s){scope}: {} {} {}",
                                metric_name.replace('_', " "),
                                if holds { "held" } else { "violated" },
                                kind.as_str(),
                                selected.len(),
                                shown(value),
                                comparison.symbol(),
                                shown(bound_value)
                            ),
                        )
                    }
                };
                HypothesisResult {
                    name: hypothesis.name.as_str().to_owned(),
                    metric: metric_name,
                    command: command.clone(),
                    window: kind,
                    comparison,
                    bound: bound_value,
                    unit: unit.into(),
                    observed,
                    verdict,
                    reason,
                }
            })
            .collect(),
    }
}

/// The cloud is back in its steady state when the commands that finished over the last this many
/// seconds look like the baselines' (see [`steady_state`]).
pub const STEADY_SPAN_S: f64 = 10.0;
/// A command is as fast as in the baselines when it took at most this many times the longest
/// the same command took there; room for ordinary variation, not for a backlog.
pub const STEADY_LATENCY_FACTOR: f64 = 1.5;

/// Whether the workload is back in its steady state at `now`, judged against `reference`, the
/// commands that ran in fault-free baselines: the commands that finished over the last
/// [`STEADY_SPAN_S`] seconds (at least one) succeed at least as often as there, none took more
/// than [`STEADY_LATENCY_FACTOR`] times the longest of its kind there, and no command in flight
/// has been running longer than that. `Err` says what is not steady yet.
///
/// The nova services reporting up is not enough: a fault's effects outlive it (a conductor's
/// backlog, a compute host re-registering with placement, a scheduler that still finds no
/// host), and a baseline that starts among them is not fault-free.
pub fn steady_state(
    reference: &[CommandRecord],
    finished: &[CommandRecord],
    in_flight: &[(&str, Timestamp)],
    now: Timestamp,
) -> Result<(), String> {
    let Some(target) = ratio(reference.iter()) else {
        // Nothing to compare with: no baseline ran a command.
        return Ok(());
    };
    let longest = |command: &str| {
        reference
            .iter()
            .filter(|r| r.ok && r.command == command)
            .map(CommandRecord::latency_ms)
            .max_by(f64::total_cmp)
            .map(|ms| ms * STEADY_LATENCY_FACTOR)
    };
    let since = now.as_microsecond() - (STEADY_SPAN_S * 1e6) as i64;
    let recent: Vec<&CommandRecord> = finished
        .iter()
        .filter(|r| r.finished_at.as_microsecond() >= since && r.finished_at <= now)
        .collect();
    for &(command, started_at) in in_flight {
        let running_ms = (now.as_microsecond() - started_at.as_microsecond()) as f64 / 1000.0;
        if let Some(bound) = longest(command).filter(|bound| running_ms > *bound) {
            return Err(format!(
                "a `{command}` has been running for {:.1} s, longer than {STEADY_LATENCY_FACTOR} × the baselines' longest ({:.1} s)",
                running_ms / 1000.0,
                bound / 1000.0
            ));
        }
    }
    if recent.is_empty() {
        return Err(format!(
            "no command finished in the last {STEADY_SPAN_S:.0} s"
        ));
    }
    let ok = recent.iter().filter(|r| r.ok).count();
    if (ok as f64) < target * recent.len() as f64 - 1e-9 {
        let failure = recent
            .iter()
            .find(|r| !r.ok)
            .map(|r| {
                format!(
                    " (`{}`: {})",
                    r.command,
                    r.error.as_deref().unwrap_or("failed")
                )
            })
            .unwrap_or_default();
        return Err(format!(
            "{} of {} command(s) in the last {STEADY_SPAN_S:.0} s failed{failure}, against {:.0}% success in the baselines",
            recent.len() - ok,
            recent.len(),
            target * 100.0
        ));
    }
    for record in &recent {
        if let Some(bound) = longest(&record.command).filter(|b| record.latency_ms() > *b) {
            return Err(format!(
                "a `{}` took {:.1} s, longer than {STEADY_LATENCY_FACTOR} × the baselines' longest ({:.1} s)",
                record.command,
                record.latency_ms() / 1000.0,
                bound / 1000.0
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn record(command: &str, start: i64, ms: i64, ok: bool) -> CommandRecord {
        CommandRecord {
            command: command.into(),
            request_id: format!("req-{start}"),
            started_at: at(start),
            finished_at: Timestamp::from_microsecond(at(start).as_microsecond() + ms * 1000)
                .unwrap(),
            ok,
            error: (!ok).then(|| "boom".into()),
        }
    }

    fn windows() -> Windows {
        Windows {
            baseline: Window {
                start: at(0),
                end: at(10),
            },
            fault: Window {
                start: at(10),
                end: at(20),
            },
            recovery: Window {
                start: at(20),
                end: at(40),
            },
        }
    }

    #[test]
    fn percentiles_take_campaign_percent_values() {
        let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(percentile(&values, 50.0), Some(5.0));
        assert_eq!(percentile(&values, 95.0), Some(10.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn commands_belong_to_the_window_they_started_in() {
        let records = vec![
            record("server list", 9, 5000, true),
            record("server list", 10, 10, false),
        ];
        let stats = window_stats(&to_stats(&records), &windows());
        assert_eq!(stats[0].total.count, 1);
        assert_eq!(stats[1].total.count, 1);
        assert_eq!(stats[1].total.success_ratio, Some(0.0));
        assert_eq!(stats[2].total.count, 0);
        assert_eq!(stats[2].total.success_ratio, None);
    }

    #[test]
    fn recovery_is_measured_from_the_revert_and_respects_the_filter() {
        let mut records: Vec<CommandRecord> = (0..10)
            .map(|s| record("server create", s, 100, true))
            .collect();
        records.push(record("server create", 21, 100, false));
        records.push(record("server create", 23, 100, false));
        records.extend((25..40).map(|s| record("server create", s, 100, true)));
        records.push(record("server list", 38, 100, false));
        let result = recovery(&records, &windows(), at(20), &|r| {
            r.command == "server create"
        });
        assert_eq!(result.baseline_success_ratio, Some(1.0));
        assert_eq!(result.recovery_s, Some(3.5));
        // Counting the list that failed late, the workload recovered only after it.
        assert_eq!(
            recovery(&records, &windows(), at(20), &|_| true).recovery_s,
            Some(18.5)
        );
    }

    #[test]
    fn hypotheses_judge_each_window_and_explain_why() {
        let records: Vec<CommandRecord> = (0..40)
            .map(|s| record("server create", s, 100, !(10..20).contains(&s)))
            .collect();
        let hypothesis = Hypothesis {
            name: scenarios::units::Ident::new("h").unwrap(),
            metric: Metric::SuccessRatio,
            bound: Bound::MinRatio(0.9),
            windows: vec![CampaignWindow::Baseline, CampaignWindow::Fault],
            commands: vec![CommandKind::ServerCreate],
            experiments: vec![],
        };
        let results = evaluate(&hypothesis, &records, &windows(), at(10), at(20));
        assert_eq!(results.len(), 2);
        assert_eq!(results[0].verdict, Verdict::Pass);
        assert_eq!(results[1].verdict, Verdict::Fail);
        assert_eq!(results[1].observed, Some(0.0));
        assert!(
            results[1].reason.contains("violated in the fault window"),
            "{}",
            results[1].reason
        );
        let recovery_time = Hypothesis {
            metric: Metric::RecoveryTime,
            bound: Bound::MaxDuration(std::time::Duration::from_secs(5)),
            windows: vec![CampaignWindow::Recovery],
            ..hypothesis
        };
        let results = evaluate(&recovery_time, &records, &windows(), at(10), at(20));
        assert_eq!(results[0].verdict, Verdict::Pass, "{}", results[0].reason);
        assert_eq!(results[0].observed, Some(0.0));
    }

    #[test]
    fn mttr_is_measured_from_the_fault_whoever_repaired_it() {
        // Fault injected at 12 s; failures until 15 s (a remediation before the revert at 20 s).
        let records: Vec<CommandRecord> = (0..40)
            .map(|s| record("server create", s, 100, !(12..15).contains(&s)))
            .collect();
        let mttr = |max_s: u64| Hypothesis {
            name: scenarios::units::Ident::new("m").unwrap(),
            metric: Metric::Mttr,
            bound: Bound::MaxDuration(std::time::Duration::from_secs(max_s)),
            windows: vec![CampaignWindow::Fault, CampaignWindow::Recovery],
            commands: vec![],
            experiments: vec![],
        };
        let results = evaluate(&mttr(5), &records, &windows(), at(12), at(20));
        assert_eq!(results.len(), 1);
        // The last failure started at 14 s: from 14.5 s (the next step) on, every stretch holds.
        assert_eq!(
            (results[0].metric.as_str(), results[0].observed),
            ("mttr", Some(2.5))
        );
        assert_eq!(results[0].verdict, Verdict::Pass, "{}", results[0].reason);
        let results = evaluate(&mttr(2), &records, &windows(), at(12), at(20));
        assert_eq!(results[0].verdict, Verdict::Fail);
        assert!(
            results[0].reason.contains("after the fault"),
            "{}",
            results[0].reason
        );
    }

    #[test]
    fn no_recovery_when_failures_last_to_the_end() {
        let mut records: Vec<CommandRecord> = (0..10).map(|s| record("x", s, 100, true)).collect();
        records.extend((20..40).map(|s| record("x", s, 100, s % 3 != 0)));
        assert_eq!(
            recovery(&records, &windows(), at(20), &|_| true).recovery_s,
            None
        );
    }

    #[test]
    fn timeline_buckets_count_outcomes() {
        let records = vec![
            record("x", 0, 100, true),
            record("x", 0, 300, false),
            record("x", 35, 100, true),
        ];
        let series = timeline(&to_stats(&records), &windows(), 5.0);
        assert_eq!(series.buckets.len(), 2);
        assert_eq!((series.buckets[0].ok, series.buckets[0].failed), (1, 1));
        assert_eq!(series.buckets[1].index, 7);
    }

    #[test]
    fn steady_state_needs_recent_commands_like_the_baselines() {
        // Baseline: creates of 1–2 s, all succeeding; the bound is 1.5 × 2 s = 3 s.
        let reference = vec![
            record("server create", 0, 1000, true),
            record("server create", 5, 2000, true),
        ];
        let now = at(100);
        // Nothing finished lately: no evidence of a steady state.
        let err = steady_state(
            &reference,
            &[record("server create", 50, 1000, true)],
            &[],
            now,
        )
        .unwrap_err();
        assert!(err.contains("no command finished"), "{err}");
        // A recent failure.
        let err = steady_state(
            &reference,
            &[record("server create", 95, 1000, false)],
            &[],
            now,
        )
        .unwrap_err();
        assert!(
            err.contains("1 of 1 command(s)") && err.contains("boom"),
            "{err}"
        );
        // A recent command slower than the bound.
        let err = steady_state(
            &reference,
            &[record("server create", 92, 3500, true)],
            &[],
            now,
        )
        .unwrap_err();
        assert!(
            err.contains("took 3.5 s") && err.contains("(3.0 s)"),
            "{err}"
        );
        // A command hung in flight, although the finished ones look fine.
        let fine = [record("server create", 95, 1500, true)];
        let err = steady_state(&reference, &fine, &[("server create", at(96))], now).unwrap_err();
        assert!(err.contains("running for 4.0 s"), "{err}");
        // Steady: a recent success within the bound, a command in flight for less than it, and a
        // command of a kind the baselines did not run (no bound to hold it to).
        assert_eq!(
            steady_state(
                &reference,
                &fine,
                &[("server create", at(98)), ("server list", at(0))],
                now
            ),
            Ok(())
        );
        // No baseline command: nothing to judge by.
        assert_eq!(steady_state(&[], &[], &[], now), Ok(()));
    }

    #[test]
    fn steady_state_allows_the_failures_the_baselines_had() {
        let reference = vec![record("x", 0, 100, true), record("x", 1, 100, false)];
        let recent = [record("x", 95, 100, true), record("x", 96, 100, false)];
        assert_eq!(steady_state(&reference, &recent, &[], at(100)), Ok(()));
        let worse = [record("x", 95, 100, false), record("x", 96, 100, false)];
        assert!(steady_state(&reference, &worse, &[], at(100)).is_err());
    }
}
