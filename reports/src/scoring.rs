//! Detector scoring against the ground truth: the faults the injector journaled.
//!
//! The rules (also in `docs/reports.md`, "Scoring"):
//! - Only alarms raised inside a repetition (`[baseline.start, recovery.end)`) are scored.
//! - A fault's *attribution interval* is `[injected_at, reverted_at + grace]` (until the end of the
//!   repetition when the revert was never confirmed).
//! - An alarm inside one or more attribution intervals of its repetition is a **true positive** for
//!   the fault among them it localizes best (the lowest rank at which a suspect names the fault's
//!   target), ties going to the most recently injected fault. Every other scored alarm lies in
//!   fault-free time and is a **false positive**.
//! - A fault is **detected** when at least one alarm is attributed to it. Its **time to detect**
//!   is from `injected_at` to its first attributed alarm (of simultaneous ones, the one localizing
//!   best), and its **localization** is judged on that first alarm: top-1 when the first suspect names the target, top-3 when one of the first three
//!   does. A suspect names a service fault when the service matches and its host, if it has one, is
//!   one of the fault's hosts; it names a host-level fault (no service) when its host is one of the
//!   fault's hosts.
//! - Precision = true positives / alarms; recall = detected faults / faults; F1 is their harmonic
//!   mean; localization shares are over detected faults; false alarms per hour divide the false
//!   positives by the fault-free time (repetition time outside every attribution interval).

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::model::{
    Alarm, DetectorScore, Fault, FaultTarget, Repetition, ScoringConfig, Suspect, seconds_between,
};

/// Ground truth and alarms of one repetition, as scoring needs them.
#[derive(Debug, Clone, Copy)]
pub struct ScoringInput<'a> {
    /// Start of the repetition (the baseline start).
    pub start: Timestamp,
    /// End of the repetition (the recovery end).
    pub end: Timestamp,
    /// Injected faults.
    pub faults: &'a [Fault],
    /// Alarms of all detectors.
    pub alarms: &'a [Alarm],
}

impl<'a> From<&'a Repetition> for ScoringInput<'a> {
    fn from(repetition: &'a Repetition) -> Self {
        ScoringInput {
            start: repetition.windows.baseline.start,
            end: repetition.windows.recovery.end,
            faults: &repetition.faults,
            alarms: &repetition.alarms,
        }
    }
}

/// Whether `suspect` names the component `target` (see the module doc).
pub fn suspect_names(suspect: &Suspect, target: &FaultTarget) -> bool {
    let host_listed = |host: &String| target.hosts.iter().any(|h| h == host);
    match &target.service {
        Some(service) => {
            suspect.service == *service && suspect.host.as_ref().is_none_or(host_listed)
        }
        None => suspect.host.as_ref().is_some_and(host_listed),
    }
}

/// Zero-based rank of the first suspect of `alarm` naming `target`, if any does.
pub fn localization_rank(alarm: &Alarm, target: &FaultTarget) -> Option<usize> {
    alarm
        .suspects
        .iter()
        .position(|suspect| suspect_names(suspect, target))
}

/// Per-detector tallies while scoring.
#[derive(Default)]
struct Tally {
    alarms: u64,
    true_positives: u64,
    false_positives: u64,
    detected: u64,
    ttd_sum_s: f64,
    ttd_max_s: f64,
    top1: u64,
    top3: u64,
}

/// Scores every detector in `detectors` (plus any other detector that raised an alarm) over the
/// given repetitions. The result is sorted by detector name.
pub fn score<'a>(
    repetitions: impl IntoIterator<Item = ScoringInput<'a>>,
    detectors: impl IntoIterator<Item = String>,
    config: ScoringConfig,
) -> Vec<DetectorScore> {
    let grace_us = (config.grace_s.max(0.0) * 1e6) as i64;
    let mut tallies: BTreeMap<String, Tally> = detectors
        .into_iter()
        .map(|d| (d, Tally::default()))
        .collect();
    let mut faults_total = 0u64;
    let mut fault_free_s = 0.0f64;

    for input in repetitions {
        let (start_us, end_us) = (input.start.as_microsecond(), input.end.as_microsecond());
        faults_total += input.faults.len() as u64;
        let intervals: Vec<(i64, i64)> = input
            .faults
            .iter()
            .map(|fault| {
                let from = fault.injected_at.as_microsecond();
                let to = fault
                    .reverted_at
                    .map_or(end_us, |r| r.as_microsecond().saturating_add(grace_us));
                (from, to)
            })
            .collect();
        fault_free_s +=
            (end_us - start_us - union_length(&intervals, start_us, end_us)).max(0) as f64 / 1e6;

        // First attributed alarm per (detector, fault index).
        let mut first: BTreeMap<(&str, usize), &Alarm> = BTreeMap::new();
        for alarm in input.alarms {
            if alarm.ts_us < start_us || alarm.ts_us >= end_us {
                continue;
            }
            let tally = tallies.entry(alarm.detector.clone()).or_default();
            tally.alarms += 1;
            let attributed = intervals
                .iter()
                .enumerate()
                .filter(|(_, (from, to))| (*from..=*to).contains(&alarm.ts_us))
                .min_by_key(|(index, _)| {
                    let fault = &input.faults[*index];
                    let rank = localization_rank(alarm, &fault.target).unwrap_or(usize::MAX);
                    (rank, std::cmp::Reverse(fault.injected_at))
                })
                .map(|(index, _)| index);
            match attributed {
                Some(index) => {
                    tally.true_positives += 1;
                    // Of alarms raised at the same instant, the one that localizes best counts
                    // as the first, so the scores do not depend on the order alarms were logged.
                    let target = &input.faults[index].target;
                    let key =
                        |a: &Alarm| (a.ts_us, localization_rank(a, target).unwrap_or(usize::MAX));
                    first
                        .entry((alarm.detector.as_str(), index))
                        .and_modify(|earliest| {
                            if key(alarm) < key(earliest) {
                                *earliest = alarm;
                            }
                        })
                        .or_insert(alarm);
                }
                None => tally.false_positives += 1,
            }
        }
        for ((detector, index), alarm) in first {
            let fault = &input.faults[index];
            let tally = tallies.get_mut(detector).expect("tallied above");
            tally.detected += 1;
            let ttd = seconds_between(fault.injected_at, alarm.timestamp()).max(0.0);
            tally.ttd_sum_s += ttd;
            tally.ttd_max_s = tally.ttd_max_s.max(ttd);
            match localization_rank(alarm, &fault.target) {
                Some(0) => {
                    tally.top1 += 1;
                    tally.top3 += 1;
                }
                Some(1 | 2) => tally.top3 += 1,
                _ => {}
            }
        }
    }

    let fault_free_hours = fault_free_s / 3600.0;
    tallies
        .into_iter()
        .map(|(detector, t)| {
            let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
            let precision = ratio(t.true_positives, t.alarms);
            let recall = ratio(t.detected, faults_total);
            let f1 = match (precision, recall) {
                (None, None) => None,
                (p, r) => {
                    let (p, r) = (p.unwrap_or(0.0), r.unwrap_or(0.0));
                    Some(if p + r > 0.0 {
                        2.0 * p * r / (p + r)
                    } else {
                        0.0
                    })
                }
            };
            DetectorScore {
                detector,
                alarms: t.alarms,
                true_positives: t.true_positives,
                false_positives: t.false_positives,
                faults: faults_total,
                detected_faults: t.detected,
                precision,
                recall,
                f1,
                mean_time_to_detect_s: ratio(0, t.detected)
                    .map(|_| t.ttd_sum_s / t.detected as f64),
                max_time_to_detect_s: (t.detected > 0).then_some(t.ttd_max_s),
                localization_top1: ratio(t.top1, t.detected),
                localization_top3: ratio(t.top3, t.detected),
                fault_free_hours,
                false_alarms_per_hour: (fault_free_hours > 0.0)
                    .then(|| t.false_positives as f64 / fault_free_hours),
            }
        })
        .collect()
}

/// Length of the union of `intervals` clipped to `[lo, hi]`.
fn union_length(intervals: &[(i64, i64)], lo: i64, hi: i64) -> i64 {
    let mut clipped: Vec<(i64, i64)> = intervals
        .iter()
        .map(|&(a, b)| (a.max(lo), b.min(hi)))
        .filter(|(a, b)| a < b)
        .collect();
    clipped.sort_unstable();
    let mut total = 0;
    let mut current: Option<(i64, i64)> = None;
    for (a, b) in clipped {
        current = match current {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb - ca;
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((ca, cb)) = current {
        total += cb - ca;
    }
    total
}

impl crate::model::Report {
    /// Recomputes the detector scores from the report's own ground truth and alarms. Detectors
    /// already listed in [`Report::detectors`](crate::model::Report::detectors) keep their place
    /// even when they raised no alarm.
    pub fn rescore(&self) -> Vec<DetectorScore> {
        score(
            self.experiments
                .iter()
                .flat_map(|e| e.repetitions.iter().map(ScoringInput::from)),
            self.detectors.iter().map(|d| d.detector.clone()),
            self.scoring,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FaultTarget, Trigger};

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    fn fault(id: &str, service: &str, host: &str, inject: i64, revert: i64) -> Fault {
        Fault {
            id: id.to_owned(),
            kind: "process-kill".to_owned(),
            parameters: BTreeMap::new(),
            target: FaultTarget {
                service: Some(service.to_owned()),
                hosts: vec![host.to_owned()],
            },
            trigger: Trigger::Offset { after_s: 0.0 },
            injected_at: ts(inject),
            verified_at: None,
            reverted_at: Some(ts(revert)),
            observed: None,
        }
    }

    fn alarm(detector: &str, at: i64, suspects: &[(&str, Option<&str>)]) -> Alarm {
        Alarm {
            ts_us: ts(at).as_microsecond(),
            detector: detector.to_owned(),
            suspects: suspects
                .iter()
                .map(|(service, host)| Suspect {
                    service: (*service).to_owned(),
                    host: host.map(str::to_owned),
                    confidence: 0.5,
                })
                .collect(),
            score: 0.9,
            transaction: None,
            fault_kind: None,
            evidence: vec![],
        }
    }

    fn run(faults: &[Fault], alarms: &[Alarm], grace_s: f64) -> Vec<DetectorScore> {
        score(
            [ScoringInput {
                start: ts(0),
                end: ts(3600),
                faults,
                alarms,
            }],
            ["fingerprint".to_owned()],
            ScoringConfig { grace_s },
        )
    }

    #[test]
    fn alarm_in_grace_period_is_a_true_positive_and_after_it_a_false_one() {
        let faults = [fault("f1", "nova-conductor", "controller", 100, 200)];
        let alarms = [
            alarm(
                "fingerprint",
                205,
                &[("nova-conductor", Some("controller"))],
            ),
            alarm("fingerprint", 215, &[("nova-conductor", None)]),
        ];
        let s = &run(&faults, &alarms, 10.0)[0];
        assert_eq!((s.true_positives, s.false_positives), (1, 1));
        assert_eq!(s.precision, Some(0.5));
        assert_eq!(s.recall, Some(1.0));
        assert_eq!(s.mean_time_to_detect_s, Some(105.0));
        assert_eq!(s.localization_top1, Some(1.0));
        // Fault-free time is the hour minus [100, 210].
        assert!((s.fault_free_hours - (3600.0 - 110.0) / 3600.0).abs() < 1e-9);
    }

    #[test]
    fn localization_is_judged_on_the_first_attributed_alarm() {
        let faults = [fault("f1", "nova-scheduler", "controller", 100, 200)];
        let alarms = [
            alarm(
                "fingerprint",
                120,
                &[
                    ("nova-api", None),
                    ("placement-api", None),
                    ("nova-scheduler", None),
                ],
            ),
            alarm("fingerprint", 130, &[("nova-scheduler", None)]),
        ];
        let s = &run(&faults, &alarms, 0.0)[0];
        assert_eq!(s.localization_top1, Some(0.0));
        assert_eq!(s.localization_top3, Some(1.0));
        assert_eq!(s.mean_time_to_detect_s, Some(20.0));
    }

    #[test]
    fn suspect_on_another_host_does_not_name_the_fault() {
        let target = FaultTarget {
            service: Some("nova-compute".into()),
            hosts: vec!["compute1".into()],
        };
        let on = |host: Option<&str>| Suspect {
            service: "nova-compute".into(),
            host: host.map(Into::into),
            confidence: 1.0,
        };
        assert!(suspect_names(&on(Some("compute1")), &target));
        assert!(suspect_names(&on(None), &target));
        assert!(!suspect_names(&on(Some("compute2")), &target));
        let host_fault = FaultTarget {
            service: None,
            hosts: vec!["compute1".into()],
        };
        assert!(suspect_names(&on(Some("compute1")), &host_fault));
        assert!(!suspect_names(&on(None), &host_fault));
    }

    #[test]
    fn overlapping_faults_get_the_alarm_that_localizes_them() {
        let faults = [
            fault("f1", "nova-conductor", "controller", 100, 300),
            fault("f2", "nova-scheduler", "controller", 150, 300),
        ];
        let alarms = [alarm("timeout", 160, &[("nova-conductor", None)])];
        let s = &score(
            [ScoringInput {
                start: ts(0),
                end: ts(600),
                faults: &faults,
                alarms: &alarms,
            }],
            [],
            ScoringConfig { grace_s: 0.0 },
        )[0];
        assert_eq!(s.detector, "timeout");
        assert_eq!(s.detected_faults, 1);
        assert_eq!(s.recall, Some(0.5));
        assert_eq!(s.localization_top1, Some(1.0));
        assert_eq!(s.mean_time_to_detect_s, Some(60.0));
    }

    #[test]
    fn alarms_outside_the_repetition_are_not_scored() {
        let faults = [fault("f1", "nova-conductor", "controller", 100, 200)];
        let alarms = [alarm("fingerprint", 4000, &[("nova-conductor", None)])];
        let s = &run(&faults, &alarms, 0.0)[0];
        assert_eq!(s.alarms, 0);
        assert_eq!(s.precision, None);
        assert_eq!(s.recall, Some(0.0));
        assert_eq!(s.f1, Some(0.0));
    }

    #[test]
    fn union_length_merges_overlaps_and_clips() {
        assert_eq!(union_length(&[(0, 10), (5, 20), (30, 40)], 0, 100), 30);
        assert_eq!(union_length(&[(-10, 10), (90, 200)], 0, 100), 20);
        assert_eq!(union_length(&[], 0, 100), 0);
    }

    mod laws {
        use super::*;
        use proptest::prelude::*;

        const SERVICES: [&str; 4] = [
            "nova-conductor",
            "nova-scheduler",
            "nova-api",
            "neutron-server",
        ];

        fn faults_strategy(min: usize) -> impl Strategy<Value = Vec<Fault>> {
            prop::collection::vec((0usize..4, 0i64..3000, 1i64..600), min..5).prop_map(|specs| {
                specs
                    .into_iter()
                    .enumerate()
                    .map(|(i, (svc, at, len))| {
                        fault(&format!("f{i}"), SERVICES[svc], "controller", at, at + len)
                    })
                    .collect()
            })
        }

        fn alarms_strategy() -> impl Strategy<Value = Vec<Alarm>> {
            prop::collection::vec(
                (
                    0usize..2,
                    -100i64..3700,
                    prop::collection::vec(0usize..4, 0..4),
                ),
                0..20,
            )
            .prop_map(|specs| {
                specs
                    .into_iter()
                    .map(|(det, at, suspects)| {
                        let names: Vec<(&str, Option<&str>)> =
                            suspects.into_iter().map(|s| (SERVICES[s], None)).collect();
                        alarm(["fingerprint", "timeout"][det], at, &names)
                    })
                    .collect()
            })
        }

        fn in_unit(value: Option<f64>) -> bool {
            value.is_none_or(|v| (0.0..=1.0).contains(&v))
        }

        proptest! {
            #[test]
            fn scores_are_bounded_and_consistent(
                faults in faults_strategy(0),
                alarms in alarms_strategy(),
                grace in 0.0f64..120.0,
            ) {
                for s in run(&faults, &alarms, grace) {
                    prop_assert!(in_unit(s.precision) && in_unit(s.recall) && in_unit(s.f1));
                    prop_assert!(in_unit(s.localization_top1) && in_unit(s.localization_top3));
                    prop_assert!(s.localization_top1 <= s.localization_top3);
                    prop_assert_eq!(s.true_positives + s.false_positives, s.alarms);
                    prop_assert!(s.detected_faults <= s.faults.min(s.true_positives));
                    prop_assert!(s.mean_time_to_detect_s.is_none_or(|m| m >= 0.0));
                    prop_assert!(s.mean_time_to_detect_s <= s.max_time_to_detect_s);
                    prop_assert!(s.fault_free_hours <= 1.0 + 1e-9);
                    prop_assert!(s.false_alarms_per_hour.is_none_or(|r| r >= 0.0));
                }
            }

            #[test]
            fn alarm_order_does_not_matter(
                faults in faults_strategy(0),
                mut alarms in alarms_strategy(),
            ) {
                let before = run(&faults, &alarms, 30.0);
                alarms.reverse();
                prop_assert_eq!(before, run(&faults, &alarms, 30.0));
            }

            #[test]
            fn a_perfect_detector_scores_one(faults in faults_strategy(1)) {
                // Two faults on one target injected at the same instant cannot be told apart by
                // any detector; campaigns never do that.
                let mut seen = std::collections::BTreeSet::new();
                prop_assume!(faults.iter().all(|f| seen.insert((f.target.service.clone(), f.injected_at))));
                let alarms: Vec<Alarm> = faults
                    .iter()
                    .map(|f| alarm(
                        "fingerprint",
                        f.injected_at.as_second() - 1_800_000_000,
                        &[(f.target.service.as_deref().unwrap(), Some("controller"))],
                    ))
                    .collect();
                let s = &run(&faults, &alarms, 0.0)[0];
                prop_assert_eq!(s.precision, Some(1.0));
                prop_assert_eq!(s.recall, Some(1.0));
                prop_assert_eq!(s.f1, Some(1.0));
                prop_assert_eq!(s.localization_top1, Some(1.0));
                prop_assert_eq!(s.mean_time_to_detect_s, Some(0.0));
                prop_assert_eq!(s.false_positives, 0);
            }

            #[test]
            fn no_alarms_means_no_recall(faults in faults_strategy(0)) {
                let s = &run(&faults, &[], 10.0)[0];
                prop_assert_eq!(s.alarms, 0);
                prop_assert_eq!(s.precision, None);
                prop_assert_eq!(s.false_alarms_per_hour.unwrap_or(0.0), 0.0);
                if faults.is_empty() {
                    prop_assert_eq!(s.recall, None);
                } else {
                    prop_assert_eq!(s.recall, Some(0.0));
                    prop_assert_eq!(s.f1, Some(0.0));
                }
            }

            #[test]
            fn a_fault_free_alarm_never_raises_precision(alarms in alarms_strategy()) {
                // Without faults every in-repetition alarm lies in fault-free time.
                let before = run(&[], &alarms, 0.0);
                let mut more = alarms.clone();
                more.push(alarm("fingerprint", 1800, &[("nova-api", None)]));
                let after = run(&[], &more, 0.0);
                prop_assert!(after[0].precision.unwrap_or(0.0) <= before[0].precision.unwrap_or(0.0));
                prop_assert_eq!(after[0].false_positives, before[0].false_positives + 1);
            }
        }
    }
}
