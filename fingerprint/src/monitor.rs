//! Dynamic timeouts for live transactions.
//!
//! A live runner feeds every event of every open transaction to a [`Monitor`] and polls it with
//! the current time. The monitor keeps, per transaction, where it stands in the nearest normal
//! variant (the prefix of the variant that the events so far match best) and so which step should
//! come next and by when: the previous step's time plus the next step's learned bound. When the
//! clock passes that deadline, [`Monitor::poll`] raises one alarm naming the service that should
//! have acted — typically seconds after the fault, long before OpenStack's 60 s RPC timeout.
//!
//! The monitor also hears of REST requests as they arrive ([`Monitor::started`]), before they
//! are answered: a request still unanswered past its operation's learned answer bound raises an
//! alarm naming the service that holds it (see [`crate::answer`]), which catches an API that
//! hangs inside the user's request, where no step is ever observed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tracer::event::Event;
use tracer::rest::RestStart;

use crate::alarm::{Alarm, Suspect};
use crate::answer::{Request, first_slow, suspect_holder};
use crate::normalize::{lane_prefixes, lanes_of, last_activity, normalize, observed_until};
use crate::store::Store;
use crate::suspicion::{Suspicion, WEIGHTS, actor, suspect_failures};
use crate::symbol::{Step, answer_key};
use crate::timing::human_us;

/// What an open transaction waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The variant it follows.
    pub variant: usize,
    /// The next step's position in that variant.
    pub step: usize,
    /// The next step's symbol.
    pub symbol: String,
    /// The step is late after this time (µs since the epoch).
    pub deadline_us: i64,
    /// The learned bound the deadline comes from.
    pub bound_us: u64,
    /// The step of the last activity, which the bound counts from.
    pub after: String,
}

/// What an overdue transaction was waiting for when its alarm was raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waiting {
    /// The next step of its nearest normal variant ([`Monitor::expectation`] tells which).
    NextStep,
    /// The answer to a REST request. `entry` is true when it is the user's own request and
    /// nothing else was in flight inside it: the API holds it without calling anyone.
    Answer {
        /// The request holding the transaction.
        symbol: String,
        /// The service serving it.
        service: Option<String>,
        /// Whether it is the transaction's entry request.
        entry: bool,
    },
}

/// A REST request in flight past its answer bound (see [`Monitor::stuck`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stuck {
    /// The transaction it belongs to.
    pub transaction: String,
    /// The request.
    pub symbol: String,
    /// The service serving it.
    pub service: Option<String>,
    /// The host serving it, when known.
    pub host: Option<String>,
    /// When it arrived (µs since the epoch).
    pub since_us: i64,
}

/// How a service holds an overdue transaction (see [`Monitor::holders`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The transaction's next step is overdue and no request of it is in flight within its
    /// bound: the service that received its last message has not acted.
    Step,
    /// The user's request is unanswered past its bound with nothing in flight inside it: the
    /// API serves it without calling anyone the proxies see.
    Entry,
    /// A request one service made to another is unanswered past its bound: the service
    /// serving it holds the caller too.
    Request,
}

/// The service holding an overdue open transaction (see [`Monitor::holders`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The transaction.
    pub transaction: String,
    /// The service holding it.
    pub service: String,
    /// Its host, when known.
    pub host: Option<String>,
    /// What it holds: the request, or the last step it received.
    pub symbol: String,
    /// How.
    pub hold: Hold,
    /// Since when (µs since the epoch): the request's arrival, or the last activity.
    pub since_us: i64,
}

/// An alarm about an overdue transaction, with what it was waiting for and since when.
#[derive(Debug, Clone, PartialEq)]
pub struct Overdue {
    /// The alarm.
    pub alarm: Alarm,
    /// What it was waiting for.
    pub waiting: Waiting,
    /// Since when it has waited (µs since the epoch): its last activity, or when the request
    /// holding it started.
    pub since_us: i64,
}

#[derive(Debug, Clone)]
struct Open {
    command: Option<String>,
    raw: Vec<Step>,
    steps: Vec<Step>,
    expectation: Option<Expectation>,
    alarmed: BTreeSet<(usize, usize)>,
    /// REST requests that arrived and are not answered yet, each marked when it is the
    /// transaction's entry (the first thing seen of it).
    in_flight: Vec<(RestStart, Request, bool)>,
    /// Requests already alarmed about as holding the transaction, by their start.
    alarmed_requests: BTreeSet<(String, i64, String)>,
}

/// Watches open transactions and raises alarms when an expected step is overdue.
#[derive(Debug, Clone)]
pub struct Monitor {
    store: Arc<Store>,
    open: BTreeMap<String, Open>,
}

impl Monitor {
    /// A monitor using the positive fingerprints of `store`.
    pub fn new(store: Arc<Store>) -> Monitor {
        Monitor {
            store,
            open: BTreeMap::new(),
        }
    }

    /// Feeds one event of transaction `transaction`. `command` names the user command when known;
    /// otherwise the first event's symbol is used, as in learning.
    pub fn observe(&mut self, transaction: &str, command: Option<&str>, event: &Event) {
        let open = open_mut(&mut self.open, transaction, command);
        open.in_flight
            .retain(|(start, _, _)| !start.answered_by(event));
        let position = open
            .raw
            .partition_point(|step| (step.ts_us, step.seq) <= (event.ts_us, event.seq));
        open.raw
            .insert(position, Step::from_event(event, position == 0));
        if position == 0 && open.raw.len() > 1 {
            // The entry request arrived late: only the first step is written as the entry.
            let demoted = demote_entry(&open.raw[1].symbol, open.raw[1].service.as_deref());
            open.raw[1].symbol = demoted;
        }
        open.steps = normalize(open.raw.clone(), &self.store.config.normalize);
        open.expectation = expect(&self.store, open);
    }

    /// Notes a REST request of transaction `transaction` that arrived and awaits its answer,
    /// which [`Monitor::observe`] pairs with it ([`RestStart::answered_by`]).
    pub fn started(&mut self, transaction: &str, command: Option<&str>, request: &RestStart) {
        let open = open_mut(&mut self.open, transaction, command);
        let operation = request.operation();
        let entry = open.raw.is_empty() && open.in_flight.is_empty();
        let symbol = if entry {
            format!("{}:{operation}", request.service)
        } else {
            format!("rest:{} {operation}", request.service)
        };
        let pending = Request {
            symbol,
            key: answer_key(&request.service, &operation),
            service: Some(request.service.clone()),
            host: request.upstream_host.clone(),
            caller: request.caller(),
            start_us: request.ts_us,
            end_us: None,
        };
        open.in_flight.push((request.clone(), pending, entry));
    }

    /// Switches to newly learned fingerprints (a live runner learns while it watches). Every open
    /// transaction's expectation is recomputed against them; steps already alarmed stay alarmed.
    pub fn set_store(&mut self, store: Arc<Store>) {
        self.store = store;
        for open in self.open.values_mut() {
            open.steps = normalize(open.raw.clone(), &self.store.config.normalize);
            open.expectation = expect(&self.store, open);
        }
    }

    /// Stops timing the answers of every request in flight that arrived before `arrived_before_us`
    /// (a record stream that dropped and came back lost their answers, which would otherwise
    /// look unanswered). Their transactions wait on their next steps again.
    pub fn forget_requests(&mut self, arrived_before_us: i64) {
        for open in self.open.values_mut() {
            open.in_flight
                .retain(|(_, request, _)| request.start_us >= arrived_before_us);
        }
    }

    /// Forgets a finished transaction.
    pub fn close(&mut self, transaction: &str) {
        self.open.remove(transaction);
    }

    /// Number of open transactions.
    pub fn open_transactions(&self) -> usize {
        self.open.len()
    }

    /// Every REST request in flight past its answer bound at `now_us`, in any open
    /// transaction, longest-waiting first: what is stuck in the cloud right now.
    pub fn stuck(&self, now_us: i64) -> Vec<Stuck> {
        let mut stuck: Vec<Stuck> = self
            .open
            .iter()
            .flat_map(|(id, open)| {
                open.in_flight.iter().filter_map(move |(_, request, _)| {
                    let (_, bound) = self.store.answer_bound(&request.key)?;
                    let waited = now_us.saturating_sub(request.start_us);
                    (waited > i64::try_from(bound).unwrap_or(i64::MAX)).then(|| Stuck {
                        transaction: id.clone(),
                        symbol: request.symbol.clone(),
                        service: request.service.clone(),
                        host: request.host.clone(),
                        since_us: request.start_us,
                    })
                })
            })
            .collect();
        stuck.sort_by_key(|stuck| stuck.since_us);
        stuck
    }

    /// Every overdue open transaction at `now_us` with the service holding it, earliest stall
    /// first: a request unanswered past its bound is held by the service serving the innermost
    /// request in flight (as in [`crate::answer`]), an overdue next step by the service that
    /// received the last message. Several services holding transactions at once, none
    /// waiting on another, point at something they share.
    pub fn holders(&self, now_us: i64) -> Vec<Holder> {
        let mut holders: Vec<Holder> = self
            .open
            .iter()
            .filter_map(|(id, open)| {
                let requests = open.in_flight.iter().map(|(_, request, _)| request);
                if let Some((_, request)) = first_slow(&self.store, requests, now_us) {
                    let entry = open
                        .in_flight
                        .iter()
                        .any(|(_, pending, entry)| *entry && pending == request);
                    return Some(Holder {
                        transaction: id.clone(),
                        service: request.service.clone()?,
                        host: request.host.clone(),
                        symbol: request.symbol.clone(),
                        hold: if entry { Hold::Entry } else { Hold::Request },
                        since_us: request.start_us,
                    });
                }
                let expectation = open.expectation.as_ref()?;
                if now_us <= expectation.deadline_us || answer_due(&self.store, open) {
                    return None;
                }
                let held = observed_until(&open.steps, (i64::MAX, u64::MAX));
                let actor = actor(&held)?;
                Some(Holder {
                    transaction: id.clone(),
                    service: actor.service?.to_owned(),
                    host: actor.host.map(str::to_owned),
                    symbol: actor.symbol.to_owned(),
                    hold: Hold::Step,
                    since_us: expectation
                        .deadline_us
                        .saturating_sub(i64::try_from(expectation.bound_us).unwrap_or(i64::MAX)),
                })
            })
            .collect();
        holders.sort_by_key(|holder| holder.since_us);
        holders
    }

    /// What transaction `transaction` waits for, if it follows a known variant.
    pub fn expectation(&self, transaction: &str) -> Option<&Expectation> {
        self.open.get(transaction)?.expectation.as_ref()
    }

    /// Alarms for every open transaction whose expected step is overdue at `now_us`, or whose
    /// REST request is unanswered past its bound. Each overdue step, and each request found
    /// holding a transaction, alarms once.
    pub fn poll(&mut self, now_us: i64) -> Vec<Overdue> {
        let mut alarms = Vec::new();
        for (id, open) in &mut self.open {
            // While a request of the transaction awaits a timed answer, the transaction waits on
            // that answer, not on a step: if the answer is late, the slow-answer alarm below
            // names who holds it (see `answer_due`).
            if let Some(expectation) = &open.expectation
                && now_us > expectation.deadline_us
                && !answer_due(&self.store, open)
                && open.alarmed.insert((expectation.variant, expectation.step))
            {
                alarms.push(Overdue {
                    alarm: overdue_alarm(&self.store, id, open, expectation, now_us),
                    waiting: Waiting::NextStep,
                    since_us: expectation
                        .deadline_us
                        .saturating_sub(i64::try_from(expectation.bound_us).unwrap_or(i64::MAX)),
                });
            }
            if let Some(overdue) = unanswered_alarm(&self.store, id, open, now_us) {
                alarms.push(overdue);
            }
        }
        alarms
    }
}

/// The open transaction `transaction`, opened now if it is new.
fn open_mut<'a>(
    open: &'a mut BTreeMap<String, Open>,
    transaction: &str,
    command: Option<&str>,
) -> &'a mut Open {
    let open = open.entry(transaction.to_owned()).or_insert_with(|| Open {
        command: command.map(str::to_owned),
        raw: Vec::new(),
        steps: Vec::new(),
        expectation: None,
        alarmed: BTreeSet::new(),
        in_flight: Vec::new(),
        alarmed_requests: BTreeSet::new(),
    });
    if open.command.is_none() {
        open.command = command.map(str::to_owned);
    }
    open
}

/// Rewrites an entry symbol `service:OP` as a nested REST symbol `rest:service OP`.
fn demote_entry(symbol: &str, service: Option<&str>) -> String {
    let service = service.unwrap_or("unknown");
    match symbol.strip_prefix(&format!("{service}:")) {
        Some(operation) if !symbol.starts_with("rest:") => format!("rest:{service} {operation}"),
        _ => symbol.to_owned(),
    }
}

/// Where the open transaction stands: per lane, the prefix of the variant's lane that the lane's
/// steps so far match best; the variant whose lanes match best overall. Of the steps the lanes
/// wait for, the one with the tightest bound is expected: it is due at the last activity so far
/// plus its learned bound (steps are timed from the last activity before them, whatever lane it
/// came from).
fn expect(store: &Store, open: &Open) -> Option<Expectation> {
    let first = open.steps.first()?;
    if first.rejected() {
        // The API refused the user's request (quota, validation): nothing follows it.
        return None;
    }
    let command_key = open.command.clone().unwrap_or_else(|| first.symbol.clone());
    let fingerprint = store.commands.get(&command_key)?;
    let ids = store.lookup(&open.steps);
    let lanes = lanes_of(&open.steps);
    // (edit cost, variant index, per lane: position reached and end); the cheapest wins, then
    // the most frequent variant, then the first.
    let (_, _, index, reached) = fingerprint
        .variants
        .iter()
        .enumerate()
        .map(|(index, variant)| {
            let (cost, reached) =
                lane_prefixes(&ids, &lanes, &variant.symbols, &store.lanes(variant));
            (cost, std::cmp::Reverse(variant.count), index, reached)
        })
        .min_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)))?;
    let variant = &fingerprint.variants[index];
    let (since_us, since) = last_activity(&open.steps)?;
    reached
        .into_iter()
        .filter(|&(position, end)| position < end)
        .filter_map(|(position, _)| {
            let bound_us = store.step_bound(&command_key, &variant.steps[position].latency)?;
            Some(Expectation {
                variant: index,
                step: position,
                symbol: store.symbol(variant.symbols[position])?.to_owned(),
                deadline_us: since_us.saturating_add(bound_us as i64),
                bound_us,
                after: open.steps[since].symbol.clone(),
            })
        })
        .min_by_key(|expectation| (expectation.deadline_us, expectation.step))
}

/// Whether the transaction waits on an answer that is timed: a request of it is in flight with
/// a learned answer bound, within it or past it. Past it, the slow-answer alarm names who holds
/// the request; an overdue step alarm as well would name the service waiting on it, and fire
/// first. (Measured: with placement-api frozen, the scheduler was named for the
/// `select_destinations` it could not answer, in the same poll as the slow answer naming
/// placement-api.)
fn answer_due(store: &Store, open: &Open) -> bool {
    open.in_flight
        .iter()
        .any(|(_, request, _)| store.answer_bound(&request.key).is_some())
}

/// The alarm about a transaction held by a request unanswered past its bound, once per holder.
fn unanswered_alarm(
    store: &Store,
    transaction: &str,
    open: &mut Open,
    now_us: i64,
) -> Option<Overdue> {
    // Polled every 100 ms for every open transaction: borrowed, not copied.
    let requests = open.in_flight.iter().map(|(_, request, _)| request);
    let (slow, holder) = first_slow(store, requests, now_us)?;
    let identity = (
        holder.service.clone().unwrap_or_default(),
        holder.start_us,
        holder.key.clone(),
    );
    if !open.alarmed_requests.insert(identity) {
        return None;
    }
    let entry = open
        .in_flight
        .iter()
        .any(|(_, request, entry)| *entry && request == holder);
    let mut suspicion = Suspicion::default();
    suspect_holder(&mut suspicion, &slow, holder);
    Some(Overdue {
        alarm: timeout_alarm(
            transaction,
            suspicion,
            slow.to_string(),
            slow.took_us as f64 / slow.bound_us.max(1) as f64,
            now_us,
        ),
        waiting: Waiting::Answer {
            symbol: holder.symbol.clone(),
            service: holder.service.clone(),
            entry,
        },
        since_us: holder.start_us,
    })
}

fn overdue_alarm(
    store: &Store,
    transaction: &str,
    open: &Open,
    expectation: &Expectation,
    now_us: i64,
) -> Alarm {
    let fingerprint = open
        .command
        .as_deref()
        .or_else(|| open.steps.first().map(|step| step.symbol.as_str()))
        .and_then(|command| store.commands.get(command));
    let expected = fingerprint
        .and_then(|fingerprint| fingerprint.variants.get(expectation.variant))
        .and_then(|variant| variant.steps.get(expectation.step));
    let since_us = expectation
        .deadline_us
        .saturating_sub(i64::try_from(expectation.bound_us).unwrap_or(i64::MAX));
    let waited = u64::try_from(now_us.saturating_sub(since_us)).unwrap_or(0);
    let mut suspicion = Suspicion::default();
    // A service that already failed the transaction (placement answering 502 to the compute
    // host) explains the stall better than the one left holding it, as in diagnosis.
    let failures: Vec<(usize, &Step)> = open
        .steps
        .iter()
        .enumerate()
        .filter(|(_, step)| step.error && !step.poll)
        .collect();
    suspect_failures(&mut suspicion, &open.steps, &failures);
    let held = observed_until(&open.steps, (i64::MAX, u64::MAX));
    if let Some(actor) = actor(&held) {
        suspicion.add(
            actor.service,
            actor.host,
            WEIGHTS.actor,
            format!(
                "{} `{}` and has not produced `{}`",
                actor.why, actor.symbol, expectation.symbol
            ),
        );
    }
    if let Some(expected) = expected {
        suspicion.add(
            expected.caller.as_deref(),
            None,
            WEIGHTS.sender,
            format!("should send `{}`", expectation.symbol),
        );
        suspicion.add(
            expected.service.as_deref(),
            expected.host.as_deref(),
            WEIGHTS.handler,
            format!("should handle `{}`", expectation.symbol),
        );
    }
    let evidence = format!(
        "expected `{}` within {} after `{}`; {} elapsed",
        expectation.symbol,
        human_us(expectation.bound_us),
        expectation.after,
        human_us(waited)
    );
    let overrun = waited as f64 / expectation.bound_us.max(1) as f64;
    timeout_alarm(transaction, suspicion, evidence, overrun, now_us)
}

/// A timeout alarm: `what` first, then the suspects' evidence; the score grows with how far
/// past its bound the wait is (`overrun`, the wait over the bound) from 0.5 at the bound.
fn timeout_alarm(
    transaction: &str,
    suspicion: Suspicion,
    what: String,
    overrun: f64,
    now_us: i64,
) -> Alarm {
    let suspects = suspicion.ranked();
    let mut evidence = vec![what];
    evidence.extend(
        suspects
            .iter()
            .flat_map(|suspect| suspect.evidence.iter())
            .map(|line| line.to_owned()),
    );
    Alarm {
        ts_us: now_us,
        detector: "timeout".to_owned(),
        suspects: suspects
            .into_iter()
            .map(|suspect| Suspect {
                service: suspect.service,
                host: suspect.host,
                confidence: (suspect.confidence * 1000.0).round() / 1000.0,
            })
            .collect(),
        score: (0.5 * overrun).clamp(0.5, 1.0),
        transaction: Some(transaction.to_owned()),
        fault_kind: None,
        evidence,
    }
}
