//! Builders for the workload parts of a [`Repetition`](crate::model::Repetition): statistics per
//! window, the per-bucket timeline and the recovery time, from the runner's per-command records.
//!
//! Keeping them here keeps every definition in one pure place: a command belongs to the window and
//! bucket in which it **started**; percentiles are nearest-rank; recovery is measured from the
//! (last) revert until the first moment from which every `span_s`-long stretch of started
//! commands has at least the baseline success ratio.

use jiff::Timestamp;

use crate::model::{
    Bucket, CommandStats, LoopTimes, Percentiles, Recovery, Timeline, Window, WindowKind,
    WindowStats, Windows, seconds_between,
};

/// One workload command as the runner recorded it.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRecord {
    /// The user command (e.g. `server create`).
    pub command: String,
    /// When it was issued.
    pub started_at: Timestamp,
    /// How long it took until it succeeded or failed, in milliseconds.
    pub latency_ms: f64,
    /// Whether it succeeded.
    pub ok: bool,
}

/// Nearest-rank percentile `q` (in `0..=1`) of sorted values; `None` when empty.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.saturating_sub(1).min(sorted.len() - 1)])
}

fn sorted_latencies<'a>(records: impl Iterator<Item = &'a CommandRecord>) -> Vec<f64> {
    let mut latencies: Vec<f64> = records.map(|r| r.latency_ms).collect();
    latencies.sort_by(f64::total_cmp);
    latencies
}

/// Statistics of `records` under the name `command` (`*` for all commands).
pub fn command_stats<'a>(
    command: &str,
    records: impl IntoIterator<Item = &'a CommandRecord>,
) -> CommandStats {
    let records: Vec<&CommandRecord> = records.into_iter().collect();
    let count = records.len() as u64;
    let successes = records.iter().filter(|r| r.ok).count() as u64;
    let latencies = sorted_latencies(records.iter().copied());
    CommandStats {
        command: command.to_owned(),
        count,
        successes,
        success_ratio: (count > 0).then(|| successes as f64 / count as f64),
        latency_ms: match (
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.95),
            percentile(&latencies, 0.99),
        ) {
            (Some(p50), Some(p95), Some(p99)) => Some(Percentiles { p50, p95, p99 }),
            _ => None,
        },
    }
}

/// Statistics of the commands that started in `window`: all together and per command (sorted).
pub fn window_stats(kind: WindowKind, window: Window, records: &[CommandRecord]) -> WindowStats {
    let inside: Vec<&CommandRecord> = records
        .iter()
        .filter(|r| window.start <= r.started_at && r.started_at < window.end)
        .collect();
    let mut names: Vec<&str> = inside.iter().map(|r| r.command.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    WindowStats {
        window: kind,
        total: command_stats("*", inside.iter().copied()),
        commands: names
            .into_iter()
            .map(|name| command_stats(name, inside.iter().copied().filter(|r| r.command == name)))
            .collect(),
    }
}

/// The per-bucket series of the commands that started in `[origin, end)`; empty buckets are left
/// out.
pub fn timeline(
    origin: Timestamp,
    end: Timestamp,
    bucket_s: f64,
    records: &[CommandRecord],
) -> Timeline {
    let bucket_s = if bucket_s > 0.0 { bucket_s } else { 1.0 };
    let mut buckets: std::collections::BTreeMap<u32, Vec<&CommandRecord>> = Default::default();
    for record in records
        .iter()
        .filter(|r| origin <= r.started_at && r.started_at < end)
    {
        let index = (seconds_between(origin, record.started_at) / bucket_s).floor() as u32;
        buckets.entry(index).or_default().push(record);
    }
    Timeline {
        bucket_s,
        buckets: buckets
            .into_iter()
            .map(|(index, records)| {
                let latencies = sorted_latencies(records.iter().copied());
                let ok = records.iter().filter(|r| r.ok).count() as u32;
                Bucket {
                    index,
                    ok,
                    failed: records.len() as u32 - ok,
                    latency_p50_ms: percentile(&latencies, 0.5),
                    latency_p95_ms: percentile(&latencies, 0.95),
                }
            })
            .collect(),
    }
}

/// Recovery after `reverted_at`: the baseline success ratio, and the seconds from the revert until
/// the first instant (stepping by `step_s`) from which every `span_s`-long stretch until the end of
/// the recovery window has at least that ratio. Stretches without commands do not count against
/// it, but at least one command must start at or after the instant; `recovery_s` is absent when no
/// such instant exists.
pub fn recovery(
    baseline: Window,
    recovery_window: Window,
    reverted_at: Timestamp,
    records: &[CommandRecord],
    span_s: f64,
    step_s: f64,
) -> Recovery {
    let base = command_stats(
        "*",
        records
            .iter()
            .filter(|r| baseline.start <= r.started_at && r.started_at < baseline.end),
    );
    let Some(target) = base.success_ratio else {
        return Recovery {
            baseline_success_ratio: None,
            recovery_s: None,
        };
    };
    let (span_s, step_s) = (span_s.max(f64::MIN_POSITIVE), step_s.max(0.001));
    let offset = |r: &CommandRecord| seconds_between(reverted_at, r.started_at);
    let end = seconds_between(reverted_at, recovery_window.end);
    let after: Vec<&CommandRecord> = records
        .iter()
        .filter(|r| offset(r) >= 0.0 && offset(r) < end)
        .collect();
    let holds_from = |from: f64| {
        // An instant after the last command proves nothing: recovery needs evidence.
        if !after.iter().any(|r| offset(r) >= from) {
            return false;
        }
        let mut s = from;
        loop {
            let stretch: Vec<_> = after
                .iter()
                .filter(|r| offset(r) >= s && offset(r) < s + span_s)
                .collect();
            let ok = stretch.iter().filter(|r| r.ok).count();
            if !stretch.is_empty() && (ok as f64) < target * stretch.len() as f64 - 1e-9 {
                return false;
            }
            if s + span_s >= end {
                return true;
            }
            s += step_s;
        }
    };
    let mut from = 0.0;
    while from < end {
        if holds_from(from) {
            return Recovery {
                baseline_success_ratio: Some(target),
                recovery_s: Some(from),
            };
        }
        from += step_s;
    }
    Recovery {
        baseline_success_ratio: Some(target),
        recovery_s: None,
    }
}

/// The detect → remediate → recover loop of one repetition, from its first injection at
/// `injected_at`: the first alarm at or after it, the first successful remediation action after
/// that alarm, the recovery (the [`recovery`] rule measured from the injection over the rest of
/// the repetition) and the downtime (seconds of `timeline` buckets from the injection on whose
/// success ratio is below the baseline's). `rule` is [`recovery`]'s `(span_s, step_s)`. Times
/// need not be sorted.
pub fn loop_times(
    windows: &Windows,
    injected_at: Timestamp,
    alarms: &[Timestamp],
    actions_done: &[Timestamp],
    records: &[CommandRecord],
    timeline: &Timeline,
    rule: (f64, f64),
) -> LoopTimes {
    let (span_s, step_s) = rule;
    let first_alarm = alarms
        .iter()
        .filter(|at| **at >= injected_at)
        .min()
        .copied();
    let remediated = first_alarm.and_then(|alarm| {
        actions_done
            .iter()
            .filter(|at| **at >= alarm)
            .min()
            .map(|done| seconds_between(alarm, *done))
    });
    let after_fault = Window {
        start: injected_at,
        end: windows.recovery.end,
    };
    let recovered = recovery(
        windows.baseline,
        after_fault,
        injected_at,
        records,
        span_s,
        step_s,
    );
    let downtime_s = recovered.baseline_success_ratio.map(|target| {
        let origin = seconds_between(windows.baseline.start, injected_at);
        timeline
            .buckets
            .iter()
            .filter(|b| (f64::from(b.index) + 1.0) * timeline.bucket_s > origin)
            .filter(|b| {
                let total = f64::from(b.ok + b.failed);
                total > 0.0 && f64::from(b.ok) < target * total - 1e-9
            })
            .count() as f64
            * timeline.bucket_s
    });
    LoopTimes {
        time_to_detect_s: first_alarm.map(|at| seconds_between(injected_at, at)),
        time_to_remediate_s: remediated,
        time_to_recover_s: recovered.recovery_s,
        downtime_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: f64) -> Timestamp {
        Timestamp::from_microsecond(1_800_000_000_000_000 + (s * 1e6) as i64).unwrap()
    }

    fn record(command: &str, start: f64, latency_ms: f64, ok: bool) -> CommandRecord {
        CommandRecord {
            command: command.into(),
            started_at: at(start),
            latency_ms,
            ok,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), Some(50.0));
        assert_eq!(percentile(&values, 0.95), Some(95.0));
        assert_eq!(percentile(&values, 0.99), Some(99.0));
        assert_eq!(percentile(&[7.0], 0.99), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn commands_belong_to_the_window_they_started_in() {
        let records = [
            record("server list", 1.0, 200.0, true),
            record("server create", 9.5, 30_000.0, false),
            record("server list", 10.0, 180.0, true),
        ];
        let stats = window_stats(
            WindowKind::Baseline,
            Window {
                start: at(0.0),
                end: at(10.0),
            },
            &records,
        );
        assert_eq!((stats.total.count, stats.total.successes), (2, 1));
        assert_eq!(
            stats
                .commands
                .iter()
                .map(|c| c.command.as_str())
                .collect::<Vec<_>>(),
            ["server create", "server list"]
        );
        let timeline = timeline(at(0.0), at(20.0), 2.0, &records);
        assert_eq!(
            timeline
                .buckets
                .iter()
                .map(|b| (b.index, b.ok, b.failed))
                .collect::<Vec<_>>(),
            [(0, 1, 0), (4, 0, 1), (5, 1, 0)]
        );
    }

    #[test]
    fn the_loop_is_measured_from_the_fault_to_alarm_action_and_recovery() {
        // Baseline 0..60 s all ok; fault at 60 s; commands fail 60..70 s; an alarm before the
        // fault (a false alarm) and one at 63 s; an action done at 66 s and one before the alarm.
        let mut records = vec![];
        for i in 0..120 {
            let t = f64::from(i);
            records.push(record("server list", t, 200.0, !(60.0..70.0).contains(&t)));
        }
        let windows = Windows {
            baseline: Window {
                start: at(0.0),
                end: at(60.0),
            },
            fault: Window {
                start: at(60.0),
                end: at(90.0),
            },
            recovery: Window {
                start: at(90.0),
                end: at(120.0),
            },
        };
        let series = timeline(at(0.0), at(120.0), 2.0, &records);
        let times = loop_times(
            &windows,
            at(60.0),
            &[at(63.0), at(10.0)],
            &[at(62.0), at(66.0)],
            &records,
            &series,
            (10.0, 1.0),
        );
        assert_eq!(times.time_to_detect_s, Some(3.0));
        assert_eq!(times.time_to_remediate_s, Some(3.0));
        assert_eq!(times.time_to_recover_s, Some(10.0));
        assert_eq!(times.downtime_s, Some(10.0));
        // Nothing raised, nothing done: only the recovery is measured.
        let quiet = loop_times(
            &windows,
            at(60.0),
            &[at(10.0)],
            &[],
            &records,
            &series,
            (10.0, 1.0),
        );
        assert_eq!(
            (quiet.time_to_detect_s, quiet.time_to_remediate_s),
            (None, None)
        );
        assert_eq!(quiet.time_to_recover_s, Some(10.0));
    }

    #[test]
    fn recovery_waits_for_the_failures_to_stop() {
        let mut records = vec![];
        for i in 0..60 {
            records.push(record("server list", f64::from(i), 200.0, true));
        }
        // Revert at 100 s; commands fail until 105 s, then succeed.
        for i in 0..60 {
            let t = 100.0 + f64::from(i);
            records.push(record("server list", t, 200.0, t >= 105.0));
        }
        let r = recovery(
            Window {
                start: at(0.0),
                end: at(60.0),
            },
            Window {
                start: at(100.0),
                end: at(160.0),
            },
            at(100.0),
            &records,
            10.0,
            1.0,
        );
        assert_eq!(r.baseline_success_ratio, Some(1.0));
        assert_eq!(r.recovery_s, Some(5.0));
        let never: Vec<_> = records
            .iter()
            .cloned()
            .map(|mut r| {
                if r.started_at >= at(100.0) {
                    r.ok = false;
                }
                r
            })
            .collect();
        let r = recovery(
            Window {
                start: at(0.0),
                end: at(60.0),
            },
            Window {
                start: at(100.0),
                end: at(160.0),
            },
            at(100.0),
            &never,
            10.0,
            1.0,
        );
        assert_eq!(r.recovery_s, None);
    }

    proptest! {
        #[test]
        fn stats_are_consistent(specs in prop::collection::vec((0usize..3, 0.0f64..100.0, 1.0f64..40_000.0, any::<bool>()), 0..80)) {
            let names = ["server create", "server delete", "server list"];
            let records: Vec<CommandRecord> = specs.iter().map(|(c, s, l, ok)| record(names[*c], *s, *l, *ok)).collect();
            let window = Window { start: at(0.0), end: at(100.0) };
            let stats = window_stats(WindowKind::Fault, window, &records);
            prop_assert_eq!(stats.total.count, records.len() as u64);
            prop_assert_eq!(stats.commands.iter().map(|c| c.count).sum::<u64>(), stats.total.count);
            prop_assert_eq!(stats.commands.iter().map(|c| c.successes).sum::<u64>(), stats.total.successes);
            for c in std::iter::once(&stats.total).chain(&stats.commands) {
                if let Some(p) = c.latency_ms {
                    prop_assert!(p.p50 <= p.p95 && p.p95 <= p.p99);
                }
                prop_assert!(c.success_ratio.is_none_or(|r| (0.0..=1.0).contains(&r)));
            }
            let series = timeline(at(0.0), at(100.0), 2.0, &records);
            prop_assert_eq!(series.buckets.iter().map(|b| u64::from(b.ok + b.failed)).sum::<u64>(), stats.total.count);
            prop_assert_eq!(series.buckets.iter().map(|b| u64::from(b.ok)).sum::<u64>(), stats.total.successes);
        }
    }
}
