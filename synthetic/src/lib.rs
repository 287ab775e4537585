//! Synthetic evaluation: scripted fault patterns applied to recorded real traffic, each with its
//! ground truth, fed through the one detection engine and scored exactly like a testbed run.
//!
//! A run records the engine's inputs (`engine-input.jsonl`, [`fingerprint::engine::Input`]); a
//! fault-free recording is the traffic. A [`Fault`] is a [`Pattern`] over a time window (a
//! service goes silent, its replies come late, a REST service answers 5xx, the broker drops, a
//! service's replies carry remote errors — the last one a fault the testbed cannot inject) and
//! [`apply`] rewrites the stream as the trace would have shown it; [`Fault::truth`] is the
//! component it hit, as the runner's journal would say. [`Bench`] forks the engine after a
//! shared fault-free prefix, feeds each faulted remainder at full speed and hands the alarms and
//! the truth to `reports::scoring`, the testbed's scoring.
//!
//! A crate of its own, not a module of `fingerprint`: it sits above the engine (it makes the
//! engine's inputs, and nothing inside `fingerprint` imports the engine), and it scores with the
//! `reports` crate, which itself builds on `fingerprint`. Pure and synchronous, as the engine is;
//! the bench binary (`synthetic-accuracy`) reads the recording and prints the table.

use std::collections::{BTreeMap, HashMap, HashSet};

use fingerprint::Store;
use fingerprint::alarm::Alarm;
use fingerprint::engine::{EngineSetup, Function, Input, Phase, WindowKind};
use jiff::Timestamp;
use reports::model::{DetectorScore, Fault as ReportFault, FaultTarget, ScoringConfig, Trigger};
use reports::scoring::{ScoringInput, score};
use tracer::event::{Event, EventKind, Outcome, Transaction};
use tracer::stitch::build_transaction;

/// What a synthetic fault does to the traffic while it is active.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// The service (on `host`, or everywhere) acts on nothing: its RPC calls and casts go
    /// unanswered, its REST requests arrive and are never answered, and the transactions that
    /// wait on it go no further.
    Silent {
        /// The service.
        service: String,
        /// Only its instance on this host, when set.
        host: Option<String>,
    },
    /// The service's RPC replies and REST answers come `delay_us` late, and so does everything
    /// of their transactions after them.
    Late {
        /// The service.
        service: String,
        /// How late, µs.
        delay_us: i64,
    },
    /// The REST service answers `status` (5xx) to every request, and the commands stop there.
    RestErrors {
        /// The service.
        service: String,
        /// The status.
        status: u16,
    },
    /// The broker drops: the capture loses it, no RPC message is carried, and the transactions
    /// that sent one go no further.
    BrokerDrop,
    /// The service's RPC replies carry a remote exception (the testbed has no fault that does
    /// this), and the commands stop there.
    ErrorReplies {
        /// The service.
        service: String,
    },
}

impl Pattern {
    /// The pattern's name in tables.
    pub fn name(&self) -> &'static str {
        match self {
            Pattern::Silent { host: None, .. } => "silent",
            Pattern::Silent { host: Some(_), .. } => "silent-host",
            Pattern::Late { .. } => "late-replies",
            Pattern::RestErrors { .. } => "rest-5xx",
            Pattern::BrokerDrop => "broker-drop",
            Pattern::ErrorReplies { .. } => "error-replies",
        }
    }
}

/// A pattern active over `[from_us, until_us)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// What it does.
    pub pattern: Pattern,
    /// When it starts, µs.
    pub from_us: i64,
    /// When it ends, µs.
    pub until_us: i64,
}

/// The inventory's view the ground truth needs: each service's hosts, and the broker.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    hosts: HashMap<String, Vec<String>>,
    broker: Option<String>,
}

impl Inventory {
    /// From a run's engine setup.
    pub fn of(setup: &EngineSetup) -> Inventory {
        Inventory {
            hosts: setup
                .roles
                .iter()
                .map(|role| (role.service.clone(), role.hosts.clone()))
                .collect(),
            broker: setup
                .roles
                .iter()
                .find(|role| role.function == Some(Function::Broker))
                .map(|role| role.service.clone()),
        }
    }
}

impl Fault {
    /// Whether it is active at `at_us`.
    fn active(&self, at_us: i64) -> bool {
        (self.from_us..self.until_us).contains(&at_us)
    }

    /// The component it hit, as the journal names an injected fault's target.
    pub fn truth(&self, inventory: &Inventory) -> FaultTarget {
        let service = match &self.pattern {
            Pattern::Silent {
                host: Some(host),
                service,
            } => {
                return FaultTarget {
                    service: Some(service.clone()),
                    hosts: vec![host.clone()],
                };
            }
            Pattern::BrokerDrop => inventory.broker.clone(),
            Pattern::Silent { service, .. }
            | Pattern::Late { service, .. }
            | Pattern::RestErrors { service, .. }
            | Pattern::ErrorReplies { service } => Some(service.clone()),
        };
        let hosts = service
            .as_ref()
            .and_then(|service| inventory.hosts.get(service).cloned())
            .unwrap_or_default();
        FaultTarget { service, hosts }
    }

    /// The fault as a report's fault (for scoring), `index` making its id.
    pub fn to_report(&self, index: usize, inventory: &Inventory) -> ReportFault {
        let at = |us: i64| Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH);
        ReportFault {
            id: format!("synthetic-{index}"),
            kind: self.pattern.name().to_owned(),
            parameters: BTreeMap::new(),
            target: self.truth(inventory),
            trigger: Trigger::Offset { after_s: 0.0 },
            injected_at: at(self.from_us),
            verified_at: None,
            reverted_at: Some(at(self.until_us)),
            observed: None,
        }
    }
}

/// What one fault does to one event, active at its time.
enum Effect {
    /// Nothing.
    Keep,
    /// The event is not seen, and its transaction goes no further.
    DropAndStall,
    /// The event is seen, and its transaction goes no further after it.
    KeepAndStall,
    /// The event (and the rest of its transaction) comes this much later.
    Delay(i64),
}

fn is_rpc(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::RpcCall
            | EventKind::RpcCast
            | EventKind::RpcFanout
            | EventKind::RpcReply
            | EventKind::Notification
    )
}

fn effect(pattern: &Pattern, event: &mut Event) -> Effect {
    let serves = |service: &str| event.service.as_deref() == Some(service);
    match pattern {
        Pattern::Silent { service, host } => {
            let here = host
                .as_ref()
                .is_none_or(|host| event.host.as_deref() == Some(host.as_str()));
            if !serves(service) || !here {
                return Effect::Keep;
            }
            match event.kind {
                // The message is on the broker; nobody acts on it.
                EventKind::RpcCall | EventKind::RpcCast | EventKind::RpcFanout => {
                    Effect::KeepAndStall
                }
                // An answered request or a reply is what a silent service never sends.
                _ => Effect::DropAndStall,
            }
        }
        Pattern::Late { service, delay_us } => {
            let answer = matches!(event.kind, EventKind::RpcReply | EventKind::RestRequest);
            if !serves(service) || !answer {
                return Effect::Keep;
            }
            if event.kind == EventKind::RestRequest {
                // The request arrived on time; its answer is what comes late.
                event.duration_us = Some(
                    event
                        .duration_us
                        .unwrap_or(0)
                        .saturating_add(u64::try_from(*delay_us).unwrap_or(0)),
                );
                return Effect::Delay(*delay_us);
            }
            event.ts_us = event.ts_us.saturating_add(*delay_us);
            Effect::Delay(*delay_us)
        }
        Pattern::RestErrors { service, status } => {
            if !serves(service) || event.kind != EventKind::RestRequest {
                return Effect::Keep;
            }
            event.outcome = Some(Outcome::Http { status: *status });
            Effect::KeepAndStall
        }
        Pattern::BrokerDrop => {
            if is_rpc(&event.kind) {
                Effect::DropAndStall
            } else {
                Effect::Keep
            }
        }
        Pattern::ErrorReplies { service } => {
            if !serves(service) || event.kind != EventKind::RpcReply {
                return Effect::Keep;
            }
            event.outcome = Some(Outcome::ReplyFailure {
                exception: "RemoteError".to_owned(),
            });
            Effect::KeepAndStall
        }
    }
}

/// The stream as the trace would have shown it with `faults` active: the recorded inputs
/// rewritten, the broker's losses signalled, the stalled commands finished as failures, and
/// everything in time order again. Phases are left as they are ([`Bench::run`] sets them).
pub fn apply(inputs: &[Input], faults: &[Fault]) -> Vec<Input> {
    // Per transaction: stalled from (nothing of it after), and how late it runs.
    let mut stalled: HashMap<String, i64> = HashMap::new();
    let mut late: HashMap<String, i64> = HashMap::new();
    // Per transaction, the events the rewritten stream showed (for closes recorded bare).
    let mut seen: HashMap<String, Vec<Event>> = HashMap::new();
    let mut out: Vec<Input> = Vec::with_capacity(inputs.len() + 2 * faults.len());
    for fault in faults {
        if fault.pattern == Pattern::BrokerDrop {
            out.push(Input::BrokerLink {
                at_us: fault.from_us,
                lost_since: Some(fault.from_us),
            });
            out.push(Input::BrokerLink {
                at_us: fault.until_us,
                lost_since: None,
            });
        }
    }
    let shifted = |late: &HashMap<String, i64>, id: &str, at_us: i64| {
        at_us.saturating_add(late.get(id).copied().unwrap_or(0))
    };
    for input in inputs {
        match input {
            Input::Event {
                at_us,
                transaction,
                event,
            } => {
                if stalled.contains_key(transaction) {
                    continue;
                }
                let shift = late.get(transaction).copied().unwrap_or(0);
                let mut event = event.clone();
                event.ts_us = event.ts_us.saturating_add(shift);
                let mut at = at_us.saturating_add(shift);
                let mut keep = true;
                let mut stall = false;
                let active: Vec<&Fault> = faults.iter().filter(|fault| fault.active(at)).collect();
                for fault in active {
                    match effect(&fault.pattern, &mut event) {
                        Effect::Keep => {}
                        Effect::DropAndStall => {
                            keep = false;
                            stall = true;
                        }
                        Effect::KeepAndStall => stall = true,
                        Effect::Delay(delay) => {
                            at = at.saturating_add(delay);
                            *late.entry(transaction.clone()).or_insert(0) += delay;
                        }
                    }
                }
                if keep {
                    seen.entry(transaction.clone())
                        .or_default()
                        .push(event.as_ref().clone());
                    out.push(Input::Event {
                        at_us: at,
                        transaction: transaction.clone(),
                        event,
                    });
                }
                if stall {
                    stalled.insert(transaction.clone(), at);
                }
            }
            Input::Started {
                at_us,
                transaction,
                request,
            } => {
                if stalled.contains_key(transaction) {
                    continue;
                }
                let at = shifted(&late, transaction, *at_us);
                let mut request = request.clone();
                request.ts_us = shifted(&late, transaction, request.ts_us);
                // A request reaches a silent service's proxy: it arrived, and waits.
                out.push(Input::Started {
                    at_us: at,
                    transaction: transaction.clone(),
                    request,
                });
            }
            Input::Closed { at_us, transaction } => {
                let at = shifted(&late, &transaction.id, *at_us);
                let emitted = seen.remove(&transaction.id).unwrap_or_default();
                let touched =
                    stalled.contains_key(&transaction.id) || late.contains_key(&transaction.id);
                let transaction = if !touched {
                    transaction.clone()
                } else if transaction.events.is_empty() {
                    // Recorded bare (the live engine had judged it already): it is what the
                    // rewritten stream showed of it.
                    let mut rebuilt = build_transaction(transaction.id.clone(), emitted);
                    rebuilt.command = transaction.command.clone();
                    rebuilt.background = transaction.background;
                    Box::new(rebuilt)
                } else {
                    // The transaction as the rewritten stream showed it.
                    let mut transaction = Transaction::clone(transaction);
                    let shift = late.get(&transaction.id).copied().unwrap_or(0);
                    if let Some(&since) = stalled.get(&transaction.id) {
                        transaction.events.retain(|event| event.ts_us < since);
                    }
                    if shift != 0 {
                        for event in &mut transaction.events {
                            event.ts_us = event.ts_us.saturating_add(shift);
                        }
                    }
                    let seqs: HashSet<u64> = transaction.events.iter().map(|e| e.seq).collect();
                    transaction
                        .edges
                        .retain(|edge| seqs.contains(&edge.from) && seqs.contains(&edge.to));
                    Box::new(transaction)
                };
                out.push(Input::Closed {
                    at_us: at,
                    transaction,
                });
            }
            Input::Finished {
                at_us,
                request_id,
                succeeded,
            } => out.push(Input::Finished {
                at_us: shifted(&late, request_id, *at_us),
                request_id: request_id.clone(),
                // A command whose transaction stalled did not succeed.
                succeeded: *succeeded && !stalled.contains_key(request_id),
            }),
            other => out.push(other.clone()),
        }
    }
    // Stable: inputs of one time keep their recorded order.
    out.sort_by_key(Input::at_us);
    out
}

/// A synthetic case: one or more faults, with the span scored.
#[derive(Debug, Clone)]
pub struct Case {
    /// The pattern's name for the table (`a+b` for overlapping faults).
    pub name: String,
    /// The faults.
    pub faults: Vec<Fault>,
    /// When the scored span begins (fault-free traffic before the first fault), µs.
    pub scored_from_us: i64,
    /// When it ends (the end of recovery), µs.
    pub scored_until_us: i64,
}

/// What one case produced.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// The engine's alarms in the scored span.
    pub alarms: Vec<Alarm>,
}

/// The engine forked after fault-free prefixes, one fork per case.
pub struct Bench {
    setup: EngineSetup,
    store: Store,
    /// The recorded stream, with its phases (replaced per case).
    inputs: Vec<Input>,
    inventory: Inventory,
}

impl Bench {
    /// A bench over a fault-free recording (`inputs`) made by an engine of `setup` from `store`.
    pub fn new(setup: EngineSetup, store: Store, inputs: Vec<Input>) -> Bench {
        let inventory = Inventory::of(&setup);
        let inputs = inputs
            .into_iter()
            .filter(|input| !matches!(input, Input::Phase { .. }))
            .collect();
        Bench {
            setup,
            store,
            inputs,
            inventory,
        }
    }

    /// The inventory the truth is named from.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// The recording's first and last times, µs.
    pub fn span_us(&self) -> Option<(i64, i64)> {
        Some((self.inputs.first()?.at_us(), self.inputs.last()?.at_us()))
    }

    /// The recording's events (for choosing targets).
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.inputs.iter().filter_map(|input| match input {
            Input::Event { event, .. } => Some(event.as_ref()),
            _ => None,
        })
    }

    /// Runs `cases`, each forked from the engine fed the baseline up to its scored start (cases
    /// are grouped by that start so each prefix is fed once).
    pub fn run(&self, cases: Vec<Case>) -> Vec<CaseResult> {
        let mut cases = cases;
        cases.sort_by_key(|case| case.scored_from_us);
        let mut engine = self
            .setup
            .engine(self.store.clone())
            .expect("the setup names a detector");
        let mut fed = 0;
        let mut began = false;
        let mut outcomes = Vec::with_capacity(cases.len());
        for case in cases {
            if !began {
                if let Some(first) = self.inputs.first() {
                    engine.feed(&Input::Phase {
                        at_us: first.at_us(),
                        phase: Phase {
                            repetition: 1,
                            window: Some(WindowKind::Baseline),
                        },
                    });
                }
                began = true;
            }
            // The shared prefix: fault-free baseline up to the case's scored start.
            while fed < self.inputs.len() && self.inputs[fed].at_us() < case.scored_from_us {
                engine.feed(&self.inputs[fed]);
                fed += 1;
            }
            let mut fork = engine.clone();
            let first_fault = case.faults.iter().map(|f| f.from_us).min().unwrap_or(0);
            let last_fault = case.faults.iter().map(|f| f.until_us).max().unwrap_or(0);
            let rest: Vec<Input> = self.inputs[fed..]
                .iter()
                .take_while(|input| input.at_us() < case.scored_until_us)
                .cloned()
                .collect();
            let mut rest = apply(&rest, &case.faults);
            rest.push(Input::Phase {
                at_us: first_fault,
                phase: Phase {
                    repetition: 1,
                    window: Some(WindowKind::Fault),
                },
            });
            rest.push(Input::Phase {
                at_us: last_fault,
                phase: Phase {
                    repetition: 1,
                    window: Some(WindowKind::Recovery),
                },
            });
            rest.sort_by_key(Input::at_us);
            let mut alarms = Vec::new();
            for input in &rest {
                alarms.extend(fork.feed(input));
            }
            alarms
                .retain(|alarm| (case.scored_from_us..case.scored_until_us).contains(&alarm.ts_us));
            outcomes.push(CaseResult { case, alarms });
        }
        outcomes
    }

    /// Scores outcomes as a testbed run's repetitions are scored: one repetition per case.
    pub fn score(&self, outcomes: &[&CaseResult], grace_s: f64) -> Vec<DetectorScore> {
        let faults: Vec<Vec<ReportFault>> = outcomes
            .iter()
            .map(|outcome| {
                outcome
                    .case
                    .faults
                    .iter()
                    .enumerate()
                    .map(|(index, fault)| fault.to_report(index, &self.inventory))
                    .collect()
            })
            .collect();
        let at = |us: i64| Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH);
        let repetitions = outcomes
            .iter()
            .zip(&faults)
            .map(|(outcome, faults)| ScoringInput {
                start: at(outcome.case.scored_from_us),
                end: at(outcome.case.scored_until_us),
                faults,
                alarms: &outcome.alarms,
            });
        score(
            repetitions,
            self.setup.detectors(),
            ScoringConfig { grace_s },
        )
    }
}

#[cfg(test)]
mod tests;
