//! Production mode: the detection [`Engine`] on a cloud's own traffic, with no workload and no
//! windows.
//!
//! In a campaign the workload says which request id is which command and whether it succeeded
//! ([`Labels`]). In production nobody does: a transaction is a user's request, and it is labelled
//! by what it *is*, the entry REST request that opened it. The fingerprint [`Store`] keys its
//! positives by command (`server create`), and every variant of a command starts with the entry
//! step's symbol (`nova-api:POST /v2.1/servers`, see [`crate::symbol`]); [`Routes`] inverts that:
//! the entry route (service, method and templated path, the status left out) → the command it was
//! learned under. That table is the whole mapping, printed by `butterfly watch --routes`.
//!
//! A transaction is labelled by the REST request of its own that a user made (no calling service
//! in its `User-Agent`), whose route is a command's entry, and that started first: a proxy
//! records an exchange once answered, so the requests an API makes while serving the user's
//! arrive before the user's own. The first candidate opens a grace of
//! [`WatchConfig::label_grace_us`]; a candidate that started earlier replaces it meanwhile, and
//! the transaction is labelled when the grace is over (or when it closes). Everything else is
//! not a user transaction and is never judged: RPC-only traffic (periodic tasks, agents'
//! reports, under one request id or many), the stitcher's background transactions, requests to
//! routes no fingerprint starts with. Each is counted ([`Counters`]).
//!
//! Labels often come after the first events (an API casts before it answers, and a proxy records
//! an exchange once answered). Every event reaches the engine at once, since its shared-service
//! rules read all the traffic; the events of a transaction not labelled yet are also held, and
//! handed to the engine again once the label comes, so the engine follows the transaction from
//! its first event. (The engine's global state is idempotent under that replay: answer times and
//! the last RPC are maxima, pending calls are inserted and removed in the same order.)
//!
//! A command's verdict, for learning ([`WatchConfig::learn`]): once its transaction closed, it
//! succeeded when its entry was answered below 400 and no event of it failed (an RPC failure
//! reply, an HTTP 5xx). Learning uses the engine's baseline role, so a transaction is judged
//! against what was learned before it, then learned from.
//!
//! Bounded however long it runs: labels and held events live only while their transaction is
//! open (the stitcher caps those), held events are capped per transaction and in all, and
//! learning stops once the store holds [`WatchConfig::max_variants`] variants. Whatever a cap
//! drops is counted, never silently.

use std::collections::{BTreeMap, HashMap};

use tracer::event::{Event, EventKind, Outcome, Transaction};
use tracer::rest::RestStart;

use crate::alarm::Alarm;
use crate::engine::{Engine, Labels, Phase, WindowKind};
use crate::store::Store;
use crate::symbol::template_rest;

/// The entry route of a REST request: `service:METHOD /templated/path`, as entry symbols start.
pub fn route_key(service: &str, operation: &str) -> String {
    format!("{service}:{}", template_rest(operation))
}

/// The entry routes of a store's commands: which user request each command starts with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// Route → the command labelled by it.
    by_route: BTreeMap<String, String>,
    /// Routes several commands start with: route → every such command, the chosen one first.
    ambiguous: BTreeMap<String, Vec<String>>,
}

impl Routes {
    /// The routes of `store`: each variant's first symbol, its status (` -> 404`) left out. A
    /// route several commands start with labels the command learned from the most runs (then the
    /// first by name); [`Routes::ambiguous`] lists those.
    pub fn of_store(store: &Store) -> Routes {
        let mut candidates: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
        for (command, fingerprint) in &store.commands {
            for variant in &fingerprint.variants {
                let Some(symbol) = variant.symbols.first().and_then(|id| store.symbol(*id)) else {
                    continue;
                };
                // Entry symbols are `service:METHOD path`; other first steps (an RPC-only
                // command) name no route a user requests.
                if symbol.starts_with("rest:") || !symbol.contains(':') || !symbol.contains(' ') {
                    continue;
                }
                let route = match symbol.rsplit_once(" -> ") {
                    Some((route, status)) if status.len() == 3 => route,
                    _ => symbol,
                };
                let commands = candidates.entry(route.to_owned()).or_default();
                if !commands.iter().any(|(_, known)| known == command) {
                    commands.push((fingerprint.runs, command.clone()));
                }
            }
        }
        let mut routes = Routes::default();
        for (route, mut commands) in candidates {
            commands.sort_by(|(a_runs, a), (b_runs, b)| b_runs.cmp(a_runs).then(a.cmp(b)));
            routes.by_route.insert(route.clone(), commands[0].1.clone());
            if commands.len() > 1 {
                routes
                    .ambiguous
                    .insert(route, commands.into_iter().map(|(_, c)| c).collect());
            }
        }
        routes
    }

    /// The command a user's request to `service` (`operation` as events name it: `METHOD
    /// /path?query`) starts, if it starts one.
    pub fn command(&self, service: &str, operation: &str) -> Option<&str> {
        self.by_route
            .get(&route_key(service, operation))
            .map(String::as_str)
    }

    /// Every route with its command, in route order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.by_route.iter().map(|(r, c)| (r.as_str(), c.as_str()))
    }

    /// Routes several commands start with, each with its commands (the one it labels first).
    pub fn ambiguous(&self) -> &BTreeMap<String, Vec<String>> {
        &self.ambiguous
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.by_route.len()
    }

    /// Whether no command starts with a route (the store learned none from REST traces).
    pub fn is_empty(&self) -> bool {
        self.by_route.is_empty()
    }
}

/// Limits and mode of [`Watch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchConfig {
    /// Refine the positives from successful user transactions.
    pub learn: bool,
    /// Events held per transaction not labelled yet; one that shows more without a user's entry
    /// request is not a user transaction (a periodic task, an agent's reports).
    pub max_held_events: usize,
    /// Transactions held (not labelled yet) and labelled open at once; the stitcher's open cap
    /// normally keeps well below it.
    pub max_open: usize,
    /// Learning stops once the store holds this many variants over all commands.
    pub max_variants: usize,
    /// How long after its first candidate entry a transaction is labelled, µs: an enclosing
    /// request (answered later) may still come.
    pub label_grace_us: i64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            learn: false,
            max_held_events: 256,
            max_open: 20_000,
            max_variants: 5_000,
            label_grace_us: 3_000_000,
        }
    }
}

/// What the watch did with the traffic, for its metrics: every transaction is in exactly one of
/// `judged`, `background`, `not_user` and `unknown_route` once it closed, unless the open cap
/// refused it (`refused_inputs`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Events seen (every one reaches the engine).
    pub events: u64,
    /// User transactions labelled with a command and handed to the engine to judge.
    pub judged: u64,
    /// Of those, the ones whose verdict was a success.
    pub succeeded: u64,
    /// Closed transactions the stitcher marked as background traffic.
    pub background: u64,
    /// Closed transactions with no user's REST request (RPC-only: periodic tasks, agents), or
    /// that showed more than [`WatchConfig::max_held_events`] events without one.
    pub not_user: u64,
    /// Closed transactions whose user requests start no command of the store.
    pub unknown_route: u64,
    /// Inputs (events, request arrivals) of transactions not followed because
    /// [`WatchConfig::max_open`] were open already.
    pub refused_inputs: u64,
    /// Held events dropped by the per-transaction cap (their transaction is then not a user's).
    pub dropped_events: u64,
    /// Set once learning stopped at [`WatchConfig::max_variants`].
    pub learning_stopped: bool,
}

/// What the watch knows of a labelled transaction.
#[derive(Debug, Clone)]
struct Label {
    command: String,
    /// The entry's route key, to recognise its answered event.
    entry: String,
    /// The entry's HTTP status, once answered.
    status: Option<u16>,
    /// An event of the transaction failed.
    failed: bool,
    /// The transaction closed: its verdict is final.
    closed: bool,
}

impl Label {
    fn verdict(&self) -> Option<bool> {
        self.closed
            .then(|| !self.failed && self.status.is_some_and(|status| status < 400))
    }
}

/// The labels, as the engine asks for them.
#[derive(Debug, Default)]
struct Table(HashMap<String, Label>);

impl Labels for Table {
    fn command(&self, id: &str) -> Option<String> {
        self.0.get(id).map(|label| label.command.clone())
    }

    fn succeeded(&self, id: &str) -> Option<bool> {
        self.0.get(id).and_then(Label::verdict)
    }
}

/// An input held until its transaction is labelled.
#[derive(Debug, Clone)]
enum Held {
    Started(Box<RestStart>),
    Event(Box<Event>, i64),
}

/// A transaction not labelled yet.
#[derive(Debug, Default)]
struct Pending {
    inputs: Vec<Held>,
    /// It showed too many events without a user's entry: no longer held nor labelled.
    given_up: bool,
    /// It showed a user's REST request whose route starts no command.
    unknown_route: bool,
    /// The best entry so far: the user's request that started first and starts a command.
    candidate: Option<Candidate>,
}

/// A user's request that may be a transaction's entry.
#[derive(Debug, Clone)]
struct Candidate {
    /// When the request started, µs.
    start_us: i64,
    command: String,
    route: String,
    /// When the first candidate was seen (the grace runs from then).
    seen_us: i64,
}

/// An alarm with the command of the transaction it is about, when the watch labelled it.
#[derive(Debug, Clone, PartialEq)]
pub struct Raised {
    /// The engine's alarm, as every detector writes it.
    pub alarm: Alarm,
    /// The command its transaction was labelled with.
    pub command: Option<String>,
}

/// The engine watching a production cloud: labels users' transactions by their entry route and
/// drives the engine with them (see the module documentation).
#[derive(Debug)]
pub struct Watch {
    engine: Engine,
    routes: Routes,
    config: WatchConfig,
    labels: Table,
    pending: HashMap<String, Pending>,
    counters: Counters,
}

/// The phase the engine is kept in: a baseline learns and judges, a fault window only judges.
fn phase(learn: bool) -> Phase {
    Phase {
        repetition: 1,
        window: Some(if learn {
            WindowKind::Baseline
        } else {
            WindowKind::Fault
        }),
    }
}

impl Watch {
    /// Watches with `engine` (its store gives the routes), under `config`.
    pub fn new(mut engine: Engine, config: WatchConfig) -> Watch {
        let routes = Routes::of_store(engine.store());
        let learn = config.learn && engine.store().variant_count() < config.max_variants;
        engine.phase(phase(learn));
        Watch {
            engine,
            routes,
            config,
            labels: Table::default(),
            pending: HashMap::new(),
            counters: Counters {
                learning_stopped: config.learn && !learn,
                ..Counters::default()
            },
        }
    }

    /// The entry routes it labels transactions by.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The counts so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// User transactions followed now (labelled, not closed yet).
    pub fn open_transactions(&self) -> usize {
        self.labels.0.len()
    }

    /// Transactions the engine follows, and RPC calls it waits a reply for.
    pub fn pending_calls(&self) -> (usize, usize) {
        self.engine.open()
    }

    /// Whether it refines the positives now (asked to, and the store is not full).
    pub fn learning(&self) -> bool {
        self.config.learn && !self.counters.learning_stopped
    }

    /// Transactions whose events are held until they are labelled.
    pub fn held_transactions(&self) -> usize {
        self.pending.len()
    }

    /// The fingerprints, with what was learned since the start.
    pub fn store(&self) -> &Store {
        self.engine.store()
    }

    /// The AMQP capture lost the broker (`Some(since_us)`) or consumes again (`None`).
    pub fn broker_link(&mut self, lost_since: Option<i64>, now_us: i64) {
        self.engine.broker_link(lost_since, now_us);
    }

    /// A REST record stream reconnected at `at_us`.
    pub fn rest_stream_resumed(&mut self, at_us: i64) {
        self.engine.rest_stream_resumed(at_us);
    }

    /// The command a REST request of a user (no calling service) starts, if any.
    fn entry_command(&self, service: &str, operation: &str, caller: Option<&str>) -> Option<&str> {
        if caller.is_some() {
            return None;
        }
        self.routes.command(service, operation)
    }

    /// Whether another transaction may be held or labelled; counts a refusal.
    fn room_for(&mut self, transaction: &str) -> bool {
        if self.labels.0.contains_key(transaction) || self.pending.contains_key(transaction) {
            return true;
        }
        if self.labels.0.len() + self.pending.len() >= self.config.max_open {
            self.counters.refused_inputs += 1;
            return false;
        }
        true
    }

    /// Labels `transaction` with `command` (entry `route`) and hands its held inputs to the
    /// engine, in the order they came.
    fn label(&mut self, transaction: &str, command: &str, route: String) {
        self.labels.0.insert(
            transaction.to_owned(),
            Label {
                command: command.to_owned(),
                entry: route,
                status: None,
                failed: false,
                closed: false,
            },
        );
        self.counters.judged += 1;
        let held = self.pending.remove(transaction).unwrap_or_default();
        for input in held.inputs {
            match input {
                Held::Started(request) => self.engine.started(transaction, &request, &self.labels),
                Held::Event(event, now_us) => self.follow(transaction, &event, now_us),
            }
        }
    }

    /// Hands an event of a labelled transaction to the engine, noting its entry's answer.
    fn follow(&mut self, transaction: &str, event: &Event, now_us: i64) {
        self.engine.event(transaction, event, now_us, &self.labels);
        let Some(label) = self.labels.0.get_mut(transaction) else {
            return;
        };
        label.failed |= event.is_error();
        if label.status.is_none()
            && event.kind == EventKind::RestRequest
            && let Some(service) = &event.service
            && route_key(service, &event.operation) == label.entry
        {
            label.status = match event.outcome {
                Some(Outcome::Http { status }) => Some(status),
                _ => Some(0),
            };
            self.engine.entry_answered(transaction);
        }
    }

    /// Holds an input of a transaction not labelled yet; gives the transaction up past the cap.
    fn hold(&mut self, transaction: &str, input: Held) {
        if !self.room_for(transaction) {
            return;
        }
        let cap = self.config.max_held_events;
        let pending = self.pending.entry(transaction.to_owned()).or_default();
        if pending.given_up {
            return;
        }
        if pending.inputs.len() >= cap {
            self.counters.dropped_events += pending.inputs.len() as u64 + 1;
            pending.inputs = Vec::new();
            pending.candidate = None;
            pending.given_up = true;
            return;
        }
        pending.inputs.push(input);
    }

    /// A REST request of `transaction` reached a recording proxy and awaits its answer.
    pub fn started(&mut self, transaction: &str, request: &RestStart, now_us: i64) {
        if self.labels.0.contains_key(transaction) {
            self.engine.started(transaction, request, &self.labels);
            return;
        }
        let operation = request.operation();
        let caller = request.caller();
        let command = self
            .entry_command(&request.service, &operation, caller.as_deref())
            .map(str::to_owned);
        let route = route_key(&request.service, &operation);
        self.hold(transaction, Held::Started(Box::new(request.clone())));
        self.consider(
            transaction,
            command,
            route,
            request.ts_us,
            caller.is_none(),
            now_us,
        );
    }

    /// Notes a user's request (`user`) of a transaction not labelled yet as a candidate entry
    /// when it starts a command (`command`), or as a request to a route no command starts.
    fn consider(
        &mut self,
        transaction: &str,
        command: Option<String>,
        route: String,
        start_us: i64,
        user: bool,
        now_us: i64,
    ) {
        let Some(pending) = self.pending.get_mut(transaction) else {
            return;
        };
        if pending.given_up || !user {
            return;
        }
        let Some(command) = command else {
            pending.unknown_route = true;
            return;
        };
        match &mut pending.candidate {
            Some(best) if best.start_us <= start_us => {}
            Some(best) => {
                best.start_us = start_us;
                best.command = command;
                best.route = route;
            }
            None => {
                pending.candidate = Some(Candidate {
                    start_us,
                    command,
                    route,
                    seen_us: now_us,
                })
            }
        }
    }

    /// An event joined `transaction` at `now_us`.
    pub fn event(&mut self, transaction: &str, event: &Event, now_us: i64) {
        self.counters.events += 1;
        if self.labels.0.contains_key(transaction) {
            self.follow(transaction, event, now_us);
            return;
        }
        // The engine's shared-service rules read every transaction's traffic; the event is
        // handed to it again once its transaction is labelled.
        self.engine.event(transaction, event, now_us, &self.labels);
        self.hold(transaction, Held::Event(Box::new(event.clone()), now_us));
        if event.kind == EventKind::RestRequest
            && let Some(service) = event.service.as_deref()
        {
            let command = self
                .entry_command(service, &event.operation, event.caller.as_deref())
                .map(str::to_owned);
            let route = route_key(service, &event.operation);
            self.consider(
                transaction,
                command,
                route,
                event.ts_us,
                event.caller.is_none(),
                now_us,
            );
        }
    }

    /// Labels the held transactions whose grace is over (all of them with `all`).
    fn label_due(&mut self, now_us: i64, only: Option<&str>) {
        let grace = self.config.label_grace_us;
        let due: Vec<(String, Candidate)> = self
            .pending
            .iter()
            .filter(|(id, _)| only.is_none_or(|only| only == id.as_str()))
            .filter_map(|(id, pending)| {
                let candidate = pending.candidate.as_ref()?;
                (only.is_some() || now_us - candidate.seen_us >= grace)
                    .then(|| (id.clone(), candidate.clone()))
            })
            .collect();
        for (id, candidate) in due {
            self.label(&id, &candidate.command, candidate.route);
        }
    }

    /// `transaction` closed at `now_us`: a labelled one gets its verdict (and is learned from
    /// when learning); any other is counted by why it was not a user transaction.
    pub fn closed(&mut self, transaction: &Transaction, now_us: i64) -> Vec<Raised> {
        let id = transaction.id.as_str();
        self.label_due(now_us, Some(id));
        let pending = self.pending.remove(id);
        let Some(label) = self.labels.0.get_mut(id) else {
            // Unlabelled: the engine still closes what it timed of it.
            let alarms = self.engine.closed(transaction, now_us, &self.labels);
            match pending {
                _ if transaction.background => self.counters.background += 1,
                Some(pending) if pending.unknown_route && !pending.given_up => {
                    self.counters.unknown_route += 1
                }
                Some(_) => self.counters.not_user += 1,
                // Refused by the open cap: counted when it was dropped.
                None => {}
            }
            return alarms
                .into_iter()
                .map(|alarm| Raised {
                    alarm,
                    command: None,
                })
                .collect();
        };
        label.closed = true;
        let command = label.command.clone();
        if label.verdict() == Some(true) {
            self.counters.succeeded += 1;
        }
        let alarms = self.engine.closed(transaction, now_us, &self.labels);
        self.labels.0.remove(id);
        self.check_store_size();
        alarms
            .into_iter()
            .map(|alarm| Raised {
                alarm,
                command: Some(command.clone()),
            })
            .collect()
    }

    /// Advances the clock to `now_us`.
    pub fn tick(&mut self, now_us: i64) -> Vec<Raised> {
        self.label_due(now_us, None);
        let alarms = self.engine.tick(now_us, &self.labels);
        alarms
            .into_iter()
            .map(|alarm| {
                let command = alarm
                    .transaction
                    .as_deref()
                    .and_then(|id| self.labels.0.get(id))
                    .map(|label| label.command.clone());
                Raised { alarm, command }
            })
            .collect()
    }

    /// Stops learning once the store is full.
    fn check_store_size(&mut self) {
        if self.config.learn
            && !self.counters.learning_stopped
            && self.engine.store().variant_count() >= self.config.max_variants
        {
            self.counters.learning_stopped = true;
            self.engine.phase(phase(false));
        }
    }
}

#[cfg(test)]
mod tests;
