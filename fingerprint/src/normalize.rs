//! Normalization of a symbolized trace, so that harmless differences between runs of one command
//! cost no edit distance:
//!
//! 1. **Concurrent branches** are put in a deterministic order: events closer than
//!    [`NormalizeConfig::concurrency_window_us`] to their predecessor form one group, every member
//!    takes the group's start time, and members are ordered by (requests before answers, symbol,
//!    service, host, seq) instead of by arrival. Then every RPC reply is moved right behind its
//!    call, so that a call and its answer read as one unit however other work interleaves.
//! 2. **Polling** is collapsed: a block of up to [`NormalizeConfig::max_poll_block`] read-only
//!    requests repeated back to back (e.g. `GET /servers/{id}` while waiting for ACTIVE) keeps its
//!    first occurrence only.
//!
//! Both steps are idempotent, and so is their composition [`normalize`] (a property test checks
//! it): grouping only ever equalizes times and sorts by a total order, and collapsing runs to a
//! fixpoint.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use tracer::event::Transaction;

use crate::symbol::Step;

/// How traces are normalized. Stored with the fingerprints so that learning and diagnosis agree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NormalizeConfig {
    /// Events closer than this to the previous event are treated as concurrent.
    pub concurrency_window_us: i64,
    /// The longest block of read-only requests that is collapsed when repeated.
    pub max_poll_block: usize,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            concurrency_window_us: 5_000,
            max_poll_block: 4,
        }
    }
}

/// The symbolized, normalized steps of one transaction.
pub fn steps_of(transaction: &Transaction, config: &NormalizeConfig) -> Vec<Step> {
    let mut events: Vec<_> = transaction.events.iter().collect();
    events.sort_by_key(|event| (event.ts_us, event.seq));
    let steps = events
        .iter()
        .enumerate()
        .map(|(index, event)| Step::from_event(event, index == 0))
        .collect();
    normalize(steps, config)
}

/// Orders concurrent steps deterministically and collapses polling (see the module docs).
pub fn normalize(mut steps: Vec<Step>, config: &NormalizeConfig) -> Vec<Step> {
    order_concurrent(&mut steps, config.concurrency_window_us);
    let mut steps = attach_answers(steps);
    collapse_polling(&mut steps, config.max_poll_block);
    steps
}

fn order_concurrent(steps: &mut [Step], window_us: i64) {
    steps.sort_by_key(|step| (step.ts_us, step.seq));
    let mut previous: Option<i64> = None;
    let mut group_start = 0;
    for step in steps.iter_mut() {
        let original = step.ts_us;
        match previous {
            Some(before) if original.saturating_sub(before) <= window_us => {}
            _ => group_start = original,
        }
        previous = Some(original);
        step.ts_us = group_start;
    }
    steps.sort_by(|a, b| {
        (a.ts_us, a.answer, &a.symbol, &a.service, &a.host, a.seq)
            .cmp(&(b.ts_us, b.answer, &b.symbol, &b.service, &b.host, b.seq))
    });
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
                // Linked steps are RPC calls with answers attached: never polling.
                let repeated = steps[start..end]
                    .iter()
                    .all(|step| step.read_only && step.link.is_none())
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
        }
    }

    fn symbols(steps: &[Step]) -> Vec<&str> {
        steps.iter().map(|step| step.symbol.as_str()).collect()
    }

    #[test]
    fn concurrent_branches_are_ordered_the_same_way_whatever_their_arrival() {
        let config = NormalizeConfig::default();
        let one = vec![step("rpc.call:b", 0, 1), step("rpc.call:a", 1_000, 2)];
        let other = vec![step("rpc.call:a", 0, 1), step("rpc.call:b", 1_000, 2)];
        assert_eq!(
            symbols(&normalize(one, &config)),
            symbols(&normalize(other, &config))
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
