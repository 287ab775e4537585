//! Plan expansion: every experiment × repetition with its resolved target hosts and timeline.
//!
//! The expansion is deterministic for a given campaign seed. Host picks use SplitMix64 and a
//! partial Fisher–Yates shuffle written here rather than a `rand` algorithm, so that a seed gives
//! the same hosts across releases of this tool and of its dependencies.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::fault::Fault;
use crate::model::{Campaign, ExecutionPoint, SelectMode, Target, Trigger};
use crate::units::{Ident, format_duration};

/// Mixes two numbers into a well-distributed seed (SplitMix64 finalizer).
pub fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0, 0)
    }

    /// A uniform number in `0..bound` (bound > 0), without modulo bias.
    fn below(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - (u64::MAX % bound);
        loop {
            let value = self.next();
            if value < zone {
                return value % bound;
            }
        }
    }
}

/// Picks the target hosts of one repetition.
pub fn pick_hosts(target: &Target, repetition: u32) -> Vec<Ident> {
    let total = target.candidates.len();
    let wanted = match target.mode {
        SelectMode::All => total,
        SelectMode::One => 1,
        SelectMode::Fixed { count } => (count as usize).min(total),
        SelectMode::Percent { percent } => {
            (((total as f64) * percent / 100.0).ceil() as usize).clamp(1, total)
        }
    };
    if wanted >= total {
        return target.candidates.clone();
    }
    let mut rng = SplitMix64(mix(target.seed, u64::from(repetition)));
    let mut indices: Vec<usize> = (0..total).collect();
    for i in 0..wanted {
        let j = i + rng.below((total - i) as u64) as usize;
        indices.swap(i, j);
    }
    let mut chosen: Vec<usize> = indices[..wanted].to_vec();
    // Inventory order keeps plans readable and stable to compare.
    chosen.sort_unstable();
    chosen
        .into_iter()
        .map(|i| target.candidates[i].clone())
        .collect()
}

/// When a fault is injected, relative to the campaign start.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum InjectAt {
    /// At a fixed time.
    At {
        /// Offset from the campaign start.
        #[serde(with = "crate::units::duration_serde")]
        offset: Duration,
    },
    /// When an execution point is observed, between `from` and `latest`.
    Observed {
        /// What to wait for.
        point: ExecutionPoint,
        /// Only on this host.
        host: Option<Ident>,
        /// Start of the wait (the fault window's start).
        #[serde(with = "crate::units::duration_serde")]
        from: Duration,
        /// Inject at this time if the point was not observed.
        #[serde(with = "crate::units::duration_serde")]
        latest: Duration,
    },
}

/// The timeline of one repetition, as offsets from the campaign start. The runner may stretch it
/// (health checks, waiting for an execution point), never shrink it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// Baseline window start.
    #[serde(with = "crate::units::duration_serde")]
    pub baseline_start: Duration,
    /// Fault window start (= baseline end).
    #[serde(with = "crate::units::duration_serde")]
    pub fault_window_start: Duration,
    /// When the fault lands.
    pub inject: InjectAt,
    /// Latest revert (the end of the fault window).
    #[serde(with = "crate::units::duration_serde")]
    pub revert_by: Duration,
    /// Recovery window end.
    #[serde(with = "crate::units::duration_serde")]
    pub recovery_end: Duration,
    /// Cool-down end: the next repetition starts here.
    #[serde(with = "crate::units::duration_serde")]
    pub cooldown_end: Duration,
}

/// One planned repetition of one experiment.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedRun {
    /// The experiment's name.
    pub experiment: Ident,
    /// 1-based repetition number.
    pub repetition: u32,
    /// The fault.
    pub fault: Fault,
    /// The service acted on, if any.
    pub service: Option<Ident>,
    /// The hosts the fault lands on.
    pub hosts: Vec<Ident>,
    /// How long the fault stays.
    #[serde(with = "crate::units::duration_serde")]
    pub duration: Duration,
    /// When everything happens.
    pub timeline: Timeline,
}

/// The whole expanded campaign.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Campaign name.
    pub campaign: String,
    /// Campaign seed.
    pub seed: u64,
    /// Every repetition of every experiment, in execution order.
    pub runs: Vec<PlannedRun>,
    /// Planned total length (without health checks and other overhead).
    #[serde(with = "crate::units::duration_serde")]
    pub total: Duration,
}

/// Expands a campaign into its plan.
pub fn expand(campaign: &Campaign) -> Plan {
    let timing = &campaign.timing;
    let mut clock = Duration::ZERO;
    let mut runs = Vec::new();
    for experiment in &campaign.experiments {
        for repetition in 1..=experiment.repetitions {
            let baseline_start = clock;
            let fault_window_start = baseline_start + timing.baseline;
            let inject = match &experiment.trigger {
                Trigger::After { offset } => InjectAt::At {
                    offset: fault_window_start + *offset,
                },
                Trigger::Observed {
                    point,
                    host,
                    within,
                } => InjectAt::Observed {
                    point: point.clone(),
                    host: host.clone(),
                    from: fault_window_start,
                    latest: fault_window_start + *within,
                },
            };
            let revert_by = fault_window_start + experiment.window;
            let recovery_end = revert_by + timing.recovery;
            let cooldown_end = recovery_end + timing.cooldown;
            runs.push(PlannedRun {
                experiment: experiment.name.clone(),
                repetition,
                fault: experiment.fault.clone(),
                service: experiment.target.service.as_ref().map(|s| s.name.clone()),
                hosts: pick_hosts(&experiment.target, repetition),
                duration: experiment.duration,
                timeline: Timeline {
                    baseline_start,
                    fault_window_start,
                    inject,
                    revert_by,
                    recovery_end,
                    cooldown_end,
                },
            });
            clock = cooldown_end;
        }
    }
    Plan {
        campaign: campaign.name.clone(),
        seed: timing.seed,
        runs,
        total: clock,
    }
}

impl Plan {
    /// A human-readable rendering, one block per repetition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "campaign {} (seed {}): {} run(s), about {} in all",
            self.campaign,
            self.seed,
            self.runs.len(),
            format_duration(self.total)
        );
        for run in &self.runs {
            let hosts: Vec<&str> = run.hosts.iter().map(|h| h.as_str()).collect();
            let service = run
                .service
                .as_ref()
                .map(|s| format!(" {s}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "\n{} #{}: {}{} on {}",
                run.experiment,
                run.repetition,
                run.fault.kind(),
                service,
                hosts.join(", ")
            );
            let t = &run.timeline;
            let _ = writeln!(out, "  {:>8}  baseline", format_duration(t.baseline_start));
            let _ = writeln!(
                out,
                "  {:>8}  fault window opens",
                format_duration(t.fault_window_start)
            );
            match &t.inject {
                InjectAt::At { offset } => {
                    let _ = writeln!(
                        out,
                        "  {:>8}  inject for {}",
                        format_duration(*offset),
                        format_duration(run.duration)
                    );
                }
                InjectAt::Observed {
                    point,
                    host,
                    latest,
                    ..
                } => {
                    let what = match point {
                        ExecutionPoint::Rpc(method) => format!("RPC {method}"),
                        ExecutionPoint::Rest(call) => format!("REST {call}"),
                    };
                    let on = host
                        .as_ref()
                        .map(|h| format!(" on {h}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "  {:>8}  inject for {} when {what} is observed{on} (at {} at the latest)",
                        "",
                        format_duration(run.duration),
                        format_duration(*latest)
                    );
                }
            }
            let _ = writeln!(
                out,
                "  {:>8}  revert (at the latest)",
                format_duration(t.revert_by)
            );
            let _ = writeln!(
                out,
                "  {:>8}  recovery ends",
                format_duration(t.recovery_end)
            );
            let _ = writeln!(
                out,
                "  {:>8}  cool-down ends",
                format_duration(t.cooldown_end)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(candidates: &[&str], mode: SelectMode, seed: u64) -> Target {
        Target {
            service: None,
            candidates: candidates.iter().map(|c| Ident::new(c).unwrap()).collect(),
            mode,
            seed,
        }
    }

    #[test]
    fn picks_are_deterministic_for_a_seed() {
        let t = target(
            &["a", "b", "c", "d", "e"],
            SelectMode::Fixed { count: 2 },
            42,
        );
        assert_eq!(pick_hosts(&t, 1), pick_hosts(&t, 1));
        assert_eq!(pick_hosts(&t, 1).len(), 2);
    }

    #[test]
    fn picks_vary_across_seeds_and_cover_every_candidate() {
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..200 {
            let t = target(&["a", "b", "c"], SelectMode::One, seed);
            seen.extend(pick_hosts(&t, 1));
        }
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn percent_rounds_up_and_all_takes_all() {
        let t = target(&["a", "b", "c"], SelectMode::Percent { percent: 34.0 }, 1);
        assert_eq!(pick_hosts(&t, 1).len(), 2);
        let t = target(&["a", "b", "c"], SelectMode::All, 1);
        assert_eq!(pick_hosts(&t, 1).len(), 3);
    }
}
