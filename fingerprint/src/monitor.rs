//! Dynamic timeouts for live transactions.
//!
//! A live runner feeds every event of every open transaction to a [`Monitor`] and polls it with
//! the current time. The monitor keeps, per transaction, where it stands in the nearest normal
//! variant (the prefix of the variant that the events so far match best) and so which step should
//! come next and by when: the previous step's time plus the next step's learned bound. When the
//! clock passes that deadline, [`Monitor::poll`] raises one alarm naming the service that should
//! have acted — typically seconds after the fault, long before OpenStack's 60 s RPC timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tracer::event::Event;

use crate::alarm::{Alarm, Suspect};
use crate::diagnose::{Suspicion, actor};
use crate::distance::best_prefix;
use crate::normalize::normalize;
use crate::store::Store;
use crate::symbol::Step;
use crate::timing::human_us;

/// Weights as in diagnosis: the service that holds the transaction (see [`actor`]) acts next.
const WEIGHT_ACTOR: f64 = 0.6;
const WEIGHT_SENDER: f64 = 0.25;
const WEIGHT_HANDLER: f64 = 0.15;

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
}

#[derive(Debug)]
struct Open {
    command: Option<String>,
    raw: Vec<Step>,
    steps: Vec<Step>,
    expectation: Option<Expectation>,
    alarmed: BTreeSet<(usize, usize)>,
}

/// Watches open transactions and raises alarms when an expected step is overdue.
#[derive(Debug)]
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
        let open = self
            .open
            .entry(transaction.to_owned())
            .or_insert_with(|| Open {
                command: command.map(str::to_owned),
                raw: Vec::new(),
                steps: Vec::new(),
                expectation: None,
                alarmed: BTreeSet::new(),
            });
        if open.command.is_none() {
            open.command = command.map(str::to_owned);
        }
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

    /// Switches to newly learned fingerprints (a live runner learns while it watches). Every open
    /// transaction's expectation is recomputed against them; steps already alarmed stay alarmed.
    pub fn set_store(&mut self, store: Arc<Store>) {
        self.store = store;
        for open in self.open.values_mut() {
            open.steps = normalize(open.raw.clone(), &self.store.config.normalize);
            open.expectation = expect(&self.store, open);
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

    /// What transaction `transaction` waits for, if it follows a known variant.
    pub fn expectation(&self, transaction: &str) -> Option<&Expectation> {
        self.open.get(transaction)?.expectation.as_ref()
    }

    /// Alarms for every open transaction whose expected step is overdue at `now_us`. Each
    /// overdue step alarms once.
    pub fn poll(&mut self, now_us: i64) -> Vec<Alarm> {
        let mut alarms = Vec::new();
        for (id, open) in &mut self.open {
            let Some(expectation) = &open.expectation else {
                continue;
            };
            if now_us <= expectation.deadline_us
                || !open.alarmed.insert((expectation.variant, expectation.step))
            {
                continue;
            }
            alarms.push(overdue_alarm(&self.store, id, open, expectation, now_us));
        }
        alarms
    }
}

/// Rewrites an entry symbol `service:OP` as a nested REST symbol `rest:service OP`.
fn demote_entry(symbol: &str, service: Option<&str>) -> String {
    let service = service.unwrap_or("unknown");
    match symbol.strip_prefix(&format!("{service}:")) {
        Some(operation) if !symbol.starts_with("rest:") => format!("rest:{service} {operation}"),
        _ => symbol.to_owned(),
    }
}

fn expect(store: &Store, open: &Open) -> Option<Expectation> {
    let last = open.steps.last()?;
    let command_key = open
        .command
        .clone()
        .or_else(|| open.steps.first().map(|step| step.symbol.clone()))?;
    let fingerprint = store.commands.get(&command_key)?;
    let ids = store.lookup(&open.steps);
    let mut best: Option<(usize, u64, usize, usize)> = None;
    for (index, variant) in fingerprint.variants.iter().enumerate() {
        let (cost, position) = best_prefix(&ids, &variant.symbols);
        let better = match best {
            None => true,
            Some((best_cost, best_count, _, _)) => {
                cost < best_cost || (cost == best_cost && variant.count > best_count)
            }
        };
        if better {
            best = Some((cost, variant.count, index, position));
        }
    }
    let (_, _, index, position) = best?;
    let variant = &fingerprint.variants[index];
    let next = variant.steps.get(position)?;
    let bound_us = next.latency.bound(&store.config.timing)?;
    Some(Expectation {
        variant: index,
        step: position,
        symbol: store.symbol(variant.symbols[position])?.to_owned(),
        deadline_us: last.ts_us.saturating_add(bound_us as i64),
        bound_us,
    })
}

fn overdue_alarm(
    store: &Store,
    transaction: &str,
    open: &Open,
    expectation: &Expectation,
    now_us: i64,
) -> Alarm {
    let last = open.steps.last().expect("an expectation follows a step");
    let fingerprint = open
        .command
        .as_deref()
        .or_else(|| open.steps.first().map(|step| step.symbol.as_str()))
        .and_then(|command| store.commands.get(command));
    let expected = fingerprint
        .and_then(|fingerprint| fingerprint.variants.get(expectation.variant))
        .and_then(|variant| variant.steps.get(expectation.step));
    let waited = u64::try_from(now_us.saturating_sub(last.ts_us)).unwrap_or(0);
    let mut suspicion = Suspicion::default();
    if let Some(actor) = actor(&open.steps) {
        suspicion.add(
            actor.service,
            actor.host,
            WEIGHT_ACTOR,
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
            WEIGHT_SENDER,
            format!("should send `{}`", expectation.symbol),
        );
        suspicion.add(
            expected.service.as_deref(),
            expected.host.as_deref(),
            WEIGHT_HANDLER,
            format!("should handle `{}`", expectation.symbol),
        );
    }
    let suspects = suspicion.ranked();
    let mut evidence = vec![format!(
        "expected `{}` within {} after `{}`; {} elapsed",
        expectation.symbol,
        human_us(expectation.bound_us),
        last.symbol,
        human_us(waited)
    )];
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
        score: (0.5 * waited as f64 / expectation.bound_us.max(1) as f64).clamp(0.5, 1.0),
        transaction: Some(transaction.to_owned()),
        fault_kind: None,
        evidence,
    }
}
