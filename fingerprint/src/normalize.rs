//! Normalization of a symbolized trace, so that harmless differences between runs of one command
//! cost no edit distance:
//!
//! 1. **The user's polling** is set apart. A user command such as `server create` is the
//!    user's request (the entry) and then, while the cloud works, the user's status polls
//!    (`GET /servers/{id}` every 250 ms until ACTIVE) with the requests the API makes to answer
//!    them (nova-api's `GET /v2.0/ports`). The polls interleave with the command's own steps at
//!    whatever moment the timer fires, so left in place every boot has its own shape. A poll is
//!    a read-only, successful REST request of the same client as the entry (same caller and
//!    `User-Agent`; a client without a `User-Agent` cannot be told from services that send none,
//!    so its polls stay in place) that no other request of that client contains. Each distinct
//!    poll is kept once, right after the entry, with the entry's time, in symbol order, and
//!    marked (`poll`). The requests made within a poll's span by the API that serves it (or by an
//!    unnamed caller) are left out unless they failed: they say nothing about the command's
//!    progress, and vary with the state the poll found.
//! 2. **Other repetition** is collapsed: a block of up to [`NormalizeConfig::max_poll_block`]
//!    read-only requests repeated back to back in time keeps its first occurrence only.
//! 3. **Concurrent branches** are laid out one after the other, by [`Lane`]: the REST requests,
//!    the RPC messages, and the broadcasts (notifications and fanout casts). Each lane keeps its
//!    own order, which is reliable; between lanes the order is not, because each path stamps
//!    events differently: the REST proxy when a request arrives, the AMQP capture when the
//!    firehose delivers its copy (late by the capture's lag, tens of milliseconds under load),
//!    and notifications when the notifier gets to them. On 64 fault-free boots recorded on the
//!    testbed with REST traced, interleaving the lanes by time gave 36 shapes even with polls
//!    set apart; laid out by lane they give 2. The lane of the earliest step comes first, so a
//!    trace still starts where it started; the others follow as REST, RPC, broadcast. A lane
//!    keeps its observed order, except that every RPC reply is moved right behind its call.
//!    (Ordering near-simultaneous events of a lane by symbol, as an earlier version did, made
//!    shapes depend on which side of the window two events fell: 18 shapes instead of 2 on the
//!    same boots.) Every step keeps its observed time, and is timed from the last activity
//!    before it, whatever its lane ([`gaps`]).
//!
//! The steps are idempotent, and so is their composition [`normalize`] (a property test checks
//! it): polls are marked and a marked block is only re-sorted, collapsing runs to
//! a fixpoint, and lanes follow from the symbols and the observed times, which no step changes.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tracer::event::{Event, Transaction};

use std::ops::Range;

use crate::distance::best_prefix;
use crate::symbol::Step;

/// How traces are normalized. Stored with the fingerprints so that learning and diagnosis agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeConfig {
    /// The longest block of read-only requests that is collapsed when repeated.
    pub max_poll_block: usize,
    /// A transaction whose first operation recurs at a steady period at least this long is
    /// periodic background work (see [`periodic`]), not a user command.
    pub min_period_us: u64,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            max_poll_block: 4,
            min_period_us: 5_000_000,
        }
    }
}

/// How many times the first operation must recur for a transaction to be periodic.
const PERIODIC_MIN_REPEATS: usize = 3;

/// Whether a transaction's events are periodic background work rather than a user command: an
/// agent that reports every 30 s under one request id for its whole life (or a trace import that
/// groups a service's periodic task under one trace) is one endless "transaction" whose idle
/// timeout equals its period, and judged as a command its period is one enormous late step.
///
/// Periodic means: the first operation recurs at least 3 times, at a
/// steady period (every interval within a quarter of the median) of at least
/// [`NormalizeConfig::min_period_us`] (the user's status polls, every 250 ms, are far faster and
/// never open a command), and nothing comes more than one period after its last occurrence.
/// Decided on the events themselves, whatever their source (captured or imported).
pub fn periodic(events: &[Event], config: &NormalizeConfig) -> bool {
    let mut order: Vec<&Event> = events.iter().collect();
    order.sort_by_key(|event| (event.ts_us, event.seq));
    let series: Vec<(String, i64)> = order
        .iter()
        .map(|event| (Step::from_event(event, false).symbol, event.ts_us))
        .collect();
    periodic_series(&series, config)
}

/// [`periodic`] over `(symbol, time)` pairs in time order, each symbol written as a step that
/// is not the entry.
fn periodic_series(series: &[(String, i64)], config: &NormalizeConfig) -> bool {
    let (Some((head, _)), Some(&(_, last))) = (series.first(), series.last()) else {
        return false;
    };
    let times: Vec<i64> = series
        .iter()
        .filter(|(symbol, _)| symbol == head)
        .map(|&(_, ts_us)| ts_us)
        .collect();
    if times.len() < PERIODIC_MIN_REPEATS {
        return false;
    }
    let mut intervals: Vec<i64> = times.windows(2).map(|pair| pair[1] - pair[0]).collect();
    intervals.sort_unstable();
    let median = intervals[intervals.len() / 2];
    median >= i64::try_from(config.min_period_us).unwrap_or(i64::MAX)
        && intervals
            .iter()
            .all(|&interval| (interval - median).abs().saturating_mul(4) <= median)
        && last - times[times.len() - 1] <= median
}

/// The symbolized, normalized steps of one transaction.
pub fn steps_of(transaction: &Transaction, config: &NormalizeConfig) -> Vec<Step> {
    steps_of_events(&transaction.events, config)
}

/// When a command last made progress: the last activity of its own steps, the user's polls left
/// out (see [`gaps`]). A stuck command goes on being polled; this stops at the step it is stuck
/// after.
pub fn last_progress_us(events: &[Event], config: &NormalizeConfig) -> Option<i64> {
    last_activity(&steps_of_events(events, config)).map(|(at, _)| at)
}

/// The symbolized, normalized steps of some events of one transaction.
pub fn steps_of_events(events: &[Event], config: &NormalizeConfig) -> Vec<Step> {
    let mut events: Vec<&Event> = events.iter().collect();
    events.sort_by_key(|event| (event.ts_us, event.seq));
    let steps = events
        .iter()
        .enumerate()
        .map(|(index, event)| Step::from_event(event, index == 0))
        .collect();
    normalize(steps, config)
}

/// Sets the user's polling apart, collapses repetition and lays concurrent branches out by lane
/// (see the module docs).
pub fn normalize(steps: Vec<Step>, config: &NormalizeConfig) -> Vec<Step> {
    let (mut steps, polls) = separate_polling(steps);
    // Repetition is collapsed in time order, before the lane layout: a second pass then sees
    // the same survivors in the same order.
    steps.sort_by_key(|step| (step.ts_us, step.seq));
    collapse_polling(&mut steps, config.max_poll_block);
    order_by_lane(&mut steps);
    let mut steps = attach_answers(steps);
    if let Some((entry_seq, polls)) = polls {
        let at = steps
            .iter()
            .position(|step| step.seq == entry_seq)
            .map_or(0, |index| index + 1);
        steps.splice(at..at, polls);
    }
    steps
}

/// The most recent of the steps (by observed time, then `seq`): where a normalized trace stands
/// in time, since normalized order is not time order.
pub fn latest(steps: &[Step]) -> Option<&Step> {
    steps.iter().max_by_key(|step| (step.ts_us, step.seq))
}

/// The lanes of normalized steps, position by position.
pub fn lanes_of(steps: &[Step]) -> Vec<Lane> {
    steps.iter().map(|step| Lane::of(&step.symbol)).collect()
}

/// The command's own steps (polls left out) observed up to and including `until` (by time, then
/// `seq`), in the order they were observed: who holds a transaction at a moment is a question
/// about time, not about the lane layout.
pub fn observed_until(steps: &[Step], until: (i64, u64)) -> Vec<Step> {
    let mut ordered: Vec<Step> = steps
        .iter()
        .filter(|step| !step.poll && (step.ts_us, step.seq) <= until)
        .cloned()
        .collect();
    ordered.sort_by_key(|step| (step.ts_us, step.seq));
    ordered
}

/// Splits the steps into the command's own steps and the distinct polls (marked, with the entry's
/// time, in symbol order), returned with the entry's `seq`; what the API did to answer a poll is
/// dropped. Polls marked by an earlier pass join as they stand, so that a second pass changes
/// nothing.
fn separate_polling(mut steps: Vec<Step>) -> (Vec<Step>, Option<(u64, Vec<Step>)>) {
    let (marked, mut steps): (Vec<Step>, Vec<Step>) = steps.drain(..).partition(|step| step.poll);
    steps.sort_by_key(|step| (step.ts_us, step.seq));
    let Some(entry) = steps
        .first()
        .filter(|entry| entry.end_us.is_some() && entry.agent.is_some())
        .cloned()
    else {
        // Not a user's REST request (background work, a trace that starts with RPC), or a client
        // that does not name itself: a service's own requests could not be told from the user's
        // polls. The earlier pass's polls, if any, stay as they are.
        let marked = (!marked.is_empty()).then_some((u64::MAX, marked));
        return (steps, marked);
    };
    let span = |step: &Step| step.end_us.map(|end| (step.ts_us, end));
    let contains = |outer: &Step, inner: &Step| match (span(outer), span(inner)) {
        (Some((start, end)), Some((inner_start, inner_end))) => {
            outer.seq != inner.seq
                && start <= inner_start
                && inner_end <= end
                && (start, std::cmp::Reverse(end), outer.seq)
                    < (inner_start, std::cmp::Reverse(inner_end), inner.seq)
        }
        _ => false,
    };
    let of_client = |step: &Step| {
        step.end_us.is_some() && step.caller == entry.caller && step.agent == entry.agent
    };
    let heads: Vec<usize> = (0..steps.len())
        .filter(|&index| {
            let step = &steps[index];
            step.seq != entry.seq
                && step.read_only
                && !step.error
                && of_client(step)
                && !steps
                    .iter()
                    .any(|outer| of_client(outer) && contains(outer, step))
        })
        .collect();
    let mut nested = vec![false; steps.len()];
    for (index, step) in steps.iter().enumerate() {
        if heads.contains(&index) || step.seq == entry.seq || step.error {
            continue;
        }
        // What the API did to answer a poll says nothing about the command's progress, and
        // varies with the state the poll found (nova-api asks neutron for ports, or for ports and
        // networks): it is left out, unless it failed, which is evidence.
        nested[index] = heads.iter().any(|&head| {
            let head = &steps[head];
            contains(head, step)
                && (of_client(step) || step.caller.is_none() || step.caller == head.service)
        });
    }
    let mut polls = marked;
    let mut own = Vec::with_capacity(steps.len());
    for (index, step) in steps.into_iter().enumerate() {
        if heads.contains(&index) {
            polls.push(Step {
                poll: true,
                ts_us: entry.ts_us,
                ..step
            });
        } else if !nested[index] {
            own.push(step);
        }
    }
    // Each distinct poll once, in symbol order (the first of each, by `seq`).
    polls.sort_by(|a, b| (&a.symbol, a.seq).cmp(&(&b.symbol, b.seq)));
    polls.dedup_by(|later, earlier| later.symbol == earlier.symbol);
    (own, Some((entry.seq, polls)))
}

/// A branch of a trace whose events keep their relative order from run to run (see the module
/// docs). Derived from the symbol alone, so stored variants have lanes too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lane {
    /// REST requests, as the recording proxy saw them arrive.
    Rest,
    /// RPC calls, casts and replies (and undecodable messages), as the AMQP capture saw them.
    Rpc,
    /// Notifications and fanout casts: published on the side, whenever the sender gets to them.
    Broadcast,
}

impl Lane {
    /// Every lane, in layout order.
    pub const ALL: [Lane; 3] = [Lane::Rest, Lane::Rpc, Lane::Broadcast];

    /// The lane of a step's symbol.
    pub fn of(symbol: &str) -> Lane {
        if symbol.starts_with("notify:") || symbol.starts_with("rpc.fanout:") {
            Lane::Broadcast
        } else if ["rpc.", "reply:", "opaque:"]
            .iter()
            .any(|prefix| symbol.starts_with(prefix))
        {
            Lane::Rpc
        } else {
            Lane::Rest
        }
    }
}

/// For each position of a normalized trace: how long after the last activity before it the step
/// was observed, and the position of the step that activity belongs to (`None` for the first step
/// and for polls). An activity is a step being observed or a REST request being answered, of the
/// command's own steps (polls left out). The lanes are laid out one after the other, so the
/// step before in the sequence says nothing about time; what happened last before a step does,
/// whichever lane it came from: an RPC call that waited for a slow REST answer is timed from that
/// answer.
pub fn gaps(steps: &[Step]) -> Vec<Option<(u64, usize)>> {
    let mut activity: Vec<(i64, u64, usize)> = Vec::with_capacity(2 * steps.len());
    for (position, step) in steps.iter().enumerate() {
        if step.poll {
            continue;
        }
        activity.push((step.ts_us, step.seq, position));
        if let Some(end) = step.end_us.filter(|&end| end > step.ts_us) {
            activity.push((end, step.seq, position));
        }
    }
    activity.sort_unstable();
    steps
        .iter()
        .enumerate()
        .map(|(position, step)| {
            if step.poll {
                return None;
            }
            let seen = activity.partition_point(|&(at, seq, _)| (at, seq) < (step.ts_us, step.seq));
            activity[..seen]
                .iter()
                .rev()
                .find(|&&(_, _, other)| other != position)
                .map(|&(at, _, other)| (u64::try_from(step.ts_us - at).unwrap_or(0), other))
        })
        .collect()
}

/// The last activity among the steps (see [`gaps`]): its time and the position of its step.
pub fn last_activity(steps: &[Step]) -> Option<(i64, usize)> {
    steps
        .iter()
        .enumerate()
        .filter(|(_, step)| !step.poll)
        .map(|(position, step)| (step.end_us.unwrap_or(step.ts_us).max(step.ts_us), position))
        .max()
}

/// Lays the steps out lane by lane (the earliest step's lane first), each lane in observed order.
fn order_by_lane(steps: &mut Vec<Step>) {
    steps.sort_by_key(|step| (step.ts_us, step.seq));
    let Some(first) = steps.first().map(|step| Lane::of(&step.symbol)) else {
        return;
    };
    let mut lanes: Vec<(Lane, Vec<Step>)> =
        Lane::ALL.iter().map(|&lane| (lane, Vec::new())).collect();
    for step in steps.drain(..) {
        let lane = Lane::of(&step.symbol);
        if let Some((_, members)) = lanes.iter_mut().find(|(candidate, _)| *candidate == lane) {
            members.push(step);
        }
    }
    lanes.sort_by_key(|(lane, _)| (*lane != first, *lane));
    steps.extend(lanes.into_iter().flat_map(|(_, members)| members));
}

/// Moves each answer right behind the request it answers (same link), keeping the order of
/// everything else; answers whose request is not in the trace stay where they are.
fn attach_answers(steps: Vec<Step>) -> Vec<Step> {
    let requests: HashSet<&str> = steps
        .iter()
        .filter(|step| !step.answer)
        .filter_map(|step| step.link.as_deref())
        .collect();
    let mut answers: HashMap<String, Vec<Step>> = HashMap::new();
    let mut rest = Vec::with_capacity(steps.len());
    for step in &steps {
        match &step.link {
            Some(link) if step.answer && requests.contains(link.as_str()) => {
                answers.entry(link.clone()).or_default().push(step.clone());
            }
            _ => rest.push(step.clone()),
        }
    }
    let mut ordered = Vec::with_capacity(steps.len());
    for step in rest {
        let link = (!step.answer).then(|| step.link.clone()).flatten();
        ordered.push(step);
        if let Some(found) = link.and_then(|link| answers.remove(&link)) {
            ordered.extend(found);
        }
    }
    ordered
}

fn collapse_polling(steps: &mut Vec<Step>, max_block: usize) {
    loop {
        let mut changed = false;
        let mut start = 0;
        while start < steps.len() {
            let mut removed = false;
            for block in 1..=max_block {
                let end = start + 2 * block;
                if end > steps.len() {
                    break;
                }
                let first = &steps[start..start + block];
                let second = &steps[start + block..end];
                // Linked steps are RPC calls with answers attached: never polling. A failed
                // request is evidence, not repetition; it also keeps what it contains from being
                // taken for a poll in a second pass (normalization stays idempotent).
                let repeated = steps[start..end]
                    .iter()
                    .all(|step| step.read_only && step.link.is_none() && !step.error)
                    && first.iter().zip(second).all(|(a, b)| a.symbol == b.symbol);
                if repeated {
                    steps.drain(start + block..end);
                    removed = true;
                    changed = true;
                    break;
                }
            }
            if !removed {
                start += 1;
            }
        }
        if !changed {
            break;
        }
    }
}

/// The positions of each lane's steps in a normalized sequence (lanes are contiguous).
fn lane_ranges(lanes: &[Lane]) -> Vec<(Lane, Range<usize>)> {
    let mut ranges: Vec<(Lane, Range<usize>)> = Vec::new();
    for (position, &lane) in lanes.iter().enumerate() {
        match ranges.last_mut() {
            Some((current, range)) if *current == lane => range.end = position + 1,
            _ => ranges.push((lane, position..position + 1)),
        }
    }
    ranges
}

/// How far a (possibly unfinished) trace has come along a reference, lane by lane: per lane of
/// the reference, the prefix of that lane the trace's lane matches best. Returns the summed edit
/// cost (steps of lanes the reference lacks count as edits) and, per lane of the reference, the
/// position reached and the end of the lane.
pub(crate) fn lane_prefixes(
    trace: &[u32],
    trace_lanes: &[Lane],
    reference: &[u32],
    reference_lanes: &[Lane],
) -> (usize, Vec<(usize, usize)>) {
    let live = lane_ranges(trace_lanes);
    let live_lane = |lane: Lane| {
        live.iter()
            .find(|(candidate, _)| *candidate == lane)
            .map_or(0..0, |(_, range)| range.clone())
    };
    let mut cost = 0;
    let mut reached = Vec::new();
    let known = lane_ranges(reference_lanes);
    for (lane, range) in &known {
        let (lane_cost, position) =
            best_prefix(&trace[live_lane(*lane)], &reference[range.clone()]);
        cost += lane_cost;
        reached.push((range.start + position, range.end));
    }
    for (lane, range) in &live {
        if !known.iter().any(|(other, _)| other == lane) {
            cost += range.len();
        }
    }
    (cost, reached)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(symbol: &str, ts_us: i64, seq: u64) -> Step {
        Step {
            symbol: symbol.to_owned(),
            ts_us,
            seq,
            service: None,
            host: None,
            caller: None,
            error: false,
            answer: symbol.starts_with("reply:"),
            read_only: symbol.contains(" GET "),
            link: None,
            ..Step::default()
        }
    }

    fn symbols(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|step| step.symbol.as_str()).collect()
    }

    /// Regression (issue 6): the REST proxy, the AMQP capture and the notifier stamp events by
    /// different clocks and paths, so events of different lanes swap places from run to run.
    #[test]
    fn branches_of_different_lanes_give_one_shape_whatever_their_arrival() {
        let config = NormalizeConfig::default();
        let run = |cast: i64, candidates: i64, start: i64| {
            vec![
                step("nova-api:POST /v2.1/servers", 0, 1),
                step("rpc.cast:conductor.schedule_and_build_instances", cast, 2),
                step(
                    "rest:placement-api GET /allocation_candidates",
                    candidates,
                    3,
                ),
                step("notify:scheduler.select_destinations.start", start, 4),
            ]
        };
        let one = normalize(run(10_000, 12_000, 11_000), &config);
        let other = normalize(run(13_000, 9_000, 30_000), &config);
        assert_eq!(symbols(&one), symbols(&other));
        assert_eq!(
            symbols(&one),
            [
                "nova-api:POST /v2.1/servers",
                "rest:placement-api GET /allocation_candidates",
                "rpc.cast:conductor.schedule_and_build_instances",
                "notify:scheduler.select_destinations.start",
            ]
        );
        // A lane's own order is kept.
        let swapped = vec![step("rpc.call:b", 0, 1), step("rpc.call:a", 1_000, 2)];
        assert_eq!(
            symbols(&normalize(swapped, &config)),
            ["rpc.call:b", "rpc.call:a"]
        );
    }

    #[test]
    fn steps_are_timed_from_the_last_activity_before_them_whatever_its_lane() {
        let mut slow = step("rest:neutron-api GET /v2.0/ports", 100_000, 2);
        slow.end_us = Some(1_400_000);
        let steps = vec![
            step("rpc.cast:compute.build_and_run_instance", 0, 1),
            slow,
            step("rpc.call:conductor.object_action", 1_450_000, 3),
        ];
        let normalized = normalize(steps, &NormalizeConfig::default());
        let timing = gaps(&normalized);
        let call = normalized
            .iter()
            .position(|step| step.symbol == "rpc.call:conductor.object_action")
            .unwrap();
        // 50 ms after the slow answer, not 1.45 s after the cast before it in its lane.
        assert_eq!(timing[call].map(|(gap, _)| gap), Some(50_000));
        assert_eq!(
            last_activity(&normalized).map(|(at, _)| at),
            Some(1_450_000)
        );
    }

    #[test]
    fn answers_follow_concurrent_requests() {
        let config = NormalizeConfig::default();
        let steps = vec![step("rpc.call:x", 0, 1), step("reply:ok", 100, 2)];
        assert_eq!(
            symbols(&normalize(steps, &config)),
            ["rpc.call:x", "reply:ok"]
        );
    }

    #[test]
    fn steps_far_apart_keep_their_order() {
        let config = NormalizeConfig::default();
        let steps = vec![step("rpc.call:b", 0, 1), step("rpc.call:a", 1_000_000, 2)];
        assert_eq!(
            symbols(&normalize(steps, &config)),
            ["rpc.call:b", "rpc.call:a"]
        );
    }

    #[test]
    fn polling_collapses_to_one_round() {
        let config = NormalizeConfig::default();
        let mut steps = vec![step("nova-api:POST /v2.1/servers", 0, 0)];
        for round in 0..5u64 {
            let at = 1_000_000 * (round as i64 + 1);
            steps.push(step("rest:neutron-api GET /v2.0/ports", at, 2 * round + 1));
            steps.push(step(
                "rest:nova-api GET /v2.1/servers/{id}",
                at + 10_000,
                2 * round + 2,
            ));
        }
        steps.push(step(
            "rest:nova-api DELETE /v2.1/servers/{id}",
            9_000_000,
            99,
        ));
        assert_eq!(
            symbols(&normalize(steps, &config)),
            [
                "nova-api:POST /v2.1/servers",
                "rest:neutron-api GET /v2.0/ports",
                "rest:nova-api GET /v2.1/servers/{id}",
                "rest:nova-api DELETE /v2.1/servers/{id}",
            ]
        );
    }

    const CLIENT: &str = "butterfly/0.1 (workload)";

    /// A REST step as the proxy records it: `at` ms after the start, `took` ms long.
    fn rest(
        symbol: &str,
        at: i64,
        took: i64,
        seq: u64,
        caller: Option<&str>,
        agent: Option<&str>,
    ) -> Step {
        Step {
            service: symbol
                .split_once(':')
                .map(|(head, rest)| {
                    if head == "rest" {
                        rest.split(' ').next().unwrap_or(head)
                    } else {
                        head
                    }
                })
                .map(str::to_owned),
            caller: caller.map(str::to_owned),
            agent: agent.map(str::to_owned),
            end_us: Some((at + took) * 1_000),
            ..step(symbol, at * 1_000, seq)
        }
    }

    /// One boot as recorded on the testbed: the user's polls (`GET /servers/{id}` and the
    /// `GET /v2.0/ports` nova-api makes to answer it) land at different points of the compute
    /// side's work, depending on when the 250 ms timer fired.
    fn boot(poll_at: &[i64]) -> Vec<Step> {
        let mut steps = vec![
            rest(
                "nova-api:POST /v2.1/servers",
                0,
                200,
                10,
                None,
                Some(CLIENT),
            ),
            rest(
                "rest:glance-api GET /v2/images/{id}",
                20,
                10,
                1,
                None,
                Some("python-glanceclient"),
            ),
            step(
                "rpc.cast:conductor.schedule_and_build_instances",
                200_000,
                11,
            ),
            step("rpc.call:scheduler.select_destinations", 220_000, 12),
            rest(
                "rest:placement-api GET /allocation_candidates",
                230,
                60,
                13,
                Some("nova-scheduler"),
                None,
            ),
            step("reply:ok", 400_000, 14),
            step("rpc.cast:compute.build_and_run_instance", 500_000, 15),
            rest(
                "rest:placement-api GET /allocations/{id}",
                600,
                10,
                16,
                Some("nova-compute"),
                None,
            ),
            step("notify:instance.create.end", 800_000, 17),
        ];
        for (round, &at) in poll_at.iter().enumerate() {
            let seq = 100 + 2 * round as u64;
            steps.push(rest(
                "rest:nova-api GET /v2.1/servers/{id}",
                at,
                90,
                seq + 1,
                None,
                Some(CLIENT),
            ));
            steps.push(rest(
                "rest:neutron-api GET /v2.0/ports",
                at + 40,
                30,
                seq,
                None,
                Some("python-neutronclient"),
            ));
        }
        steps[2].link = Some("call".to_owned());
        steps[3].link = Some("select".to_owned());
        steps[5].link = Some("select".to_owned());
        steps
    }

    /// Regression (issue 6, 96 baseline boots gave 94 variants with REST traced): where the
    /// polls fall does not change the normalized shape.
    #[test]
    fn polls_wherever_they_fall_give_one_shape() {
        let config = NormalizeConfig::default();
        let early = normalize(boot(&[250, 550, 850]), &config);
        let late = normalize(boot(&[450, 700, 950, 1_200]), &config);
        assert_eq!(symbols(&early), symbols(&late));
        // One poll, right after the entry; what nova-api asked neutron to answer it is left out.
        assert_eq!(
            symbols(&early)[..3],
            [
                "nova-api:POST /v2.1/servers",
                "rest:nova-api GET /v2.1/servers/{id}",
                "rest:glance-api GET /v2/images/{id}",
            ]
        );
        assert!(!symbols(&early).contains(&"rest:neutron-api GET /v2.0/ports"));
        // The poll takes the entry's time, the command's own steps keep theirs.
        assert!(early[1].poll && early[1].ts_us == 0);
        assert_eq!(early.iter().filter(|step| step.poll).count(), 1);
        assert_eq!(latest(&early).map(|step| step.seq), Some(17));
        assert_eq!(normalize(early.clone(), &config), early);
    }

    #[test]
    fn a_service_s_own_reads_and_failed_polls_stay_in_place() {
        let config = NormalizeConfig::default();
        let mut steps = boot(&[250]);
        // A failed poll is evidence in its own right: it keeps its time and place.
        let mut failed = rest(
            "rest:nova-api GET /v2.1/servers/{id} -> 503",
            700,
            5,
            200,
            None,
            Some(CLIENT),
        );
        failed.error = true;
        steps.push(failed);
        let normalized = normalize(steps, &config);
        let polled: Vec<_> = normalized.iter().filter(|step| step.poll).collect();
        assert_eq!(polled.len(), 1);
        let kept = |symbol: &str| {
            normalized
                .iter()
                .any(|step| step.symbol == symbol && !step.poll)
        };
        assert!(kept("rest:placement-api GET /allocations/{id}"));
        assert!(kept("rest:glance-api GET /v2/images/{id}"));
        assert!(kept("rest:nova-api GET /v2.1/servers/{id} -> 503"));
    }

    #[test]
    fn a_client_that_does_not_name_itself_keeps_its_polls_in_place() {
        let config = NormalizeConfig::default();
        let mut steps = boot(&[250, 550]);
        for step in &mut steps {
            if step.agent.as_deref() == Some(CLIENT) {
                step.agent = None;
            }
        }
        let normalized = normalize(steps, &config);
        assert!(normalized.iter().all(|step| !step.poll));
    }

    #[test]
    fn repeated_writes_are_not_polling() {
        let config = NormalizeConfig::default();
        let steps = vec![
            step("rpc.call:conductor.object_action", 0, 1),
            step("rpc.call:conductor.object_action", 1_000_000, 2),
        ];
        assert_eq!(normalize(steps, &config).len(), 2);
    }
}
