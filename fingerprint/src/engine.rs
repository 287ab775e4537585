//! The detection engine: every live rule over a trace stream, synchronous and pure.
//!
//! In go, each stamped with the time it is seen (the clock is a parameter, so the same engine
//! runs live, on a replayed run and on synthetic streams): events with the transaction they
//! joined, REST requests as they arrive, transactions as they close, the tracer's signals (the
//! broker link lost and regained, a REST record stream resumed), the run's [`Phase`]s, and ticks.
//! The engine knows the inventory's shared services (the broker, the database) and starts from a
//! fingerprint [`Store`]. Out come [`Alarm`]s and, per repetition, the failing transactions
//! aligned with their nearest normal variant.
//!
//! Only transactions of workload commands count ([`Labels`] name them by request id); a
//! transaction belongs to the window its first event arrived in. Transactions of a baseline
//! window teach positive fingerprints once their command succeeded; transactions of fault and
//! recovery windows are watched. So before scoring repetition *k* the fingerprints hold the
//! baseline windows of repetitions 1..=*k*, as far as they have been seen by then.
//!
//! * The timeout rule is a [`Monitor`] fed every event of the watched transactions and polled
//!   with the clock; its alarms fire while the transaction is still open.
//! * The fingerprint rule diagnoses a watched transaction once it has *settled* (no progress for
//!   [`SETTLE_US`]: no step of its own, the user's status polls do not count) or closed,
//!   whichever comes first, rather than after the stitcher's much longer idle timeout: a fault
//!   in the window must be seen while it is in the window.
//! * Shared dependencies come first when the trace points at them: the broker while the capture
//!   had lost it, the database when an API stalls on one request while answering others (or two
//!   services stall at once), a service whose calls are unanswered past their bound.
//!
//! A repetition's transactions are watched until its recovery window ends; an alarm after that
//! would fall in a cool-down or the next baseline, about a fault that is no longer there.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracer::event::{Event, EventKind, Transaction};
use tracer::rest::RestStart;
use tracer::stitch::build_transaction;

use crate::alarm::{Alarm, AlignOp, Suspect, TransactionDivergence};
use crate::distance::EditOp;
use crate::monitor::{Hold, Holder, Monitor, Stuck, Waiting};
use crate::normalize::last_progress_us;
use crate::store::Store;
use crate::suspicion::WEIGHTS;
use crate::symbol::{reply_key, template_dotted};
use crate::timing::human_us;

/// Which window of a repetition.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// Before the fault.
    Baseline,
    /// While the fault is active.
    Fault,
    /// After the revert.
    Recovery,
}

impl WindowKind {
    /// All kinds in time order.
    pub const ALL: [WindowKind; 3] = [
        WindowKind::Baseline,
        WindowKind::Fault,
        WindowKind::Recovery,
    ];

    /// The name used in JSON and in rendered output.
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Baseline => "baseline",
            WindowKind::Fault => "fault",
            WindowKind::Recovery => "recovery",
        }
    }
}

/// A watched transaction is diagnosed after this long without a new event, µs.
pub const SETTLE_US: i64 = 5_000_000;

/// Puts a shared dependency first among an alarm's suspects, with its evidence first; the other
/// suspects share what is left of the confidence.
fn put_first(alarm: &mut Alarm, (service, host): &(String, Option<String>), evidence: String) {
    alarm.suspects.retain(|suspect| suspect.service != *service);
    for suspect in &mut alarm.suspects {
        suspect.confidence =
            (suspect.confidence * (1.0 - WEIGHTS.shared) * 1000.0).round() / 1000.0;
    }
    alarm.suspects.insert(
        0,
        Suspect {
            service: service.clone(),
            host: host.clone(),
            confidence: WEIGHTS.shared,
        },
    );
    alarm.evidence.insert(0, evidence);
}

/// Whether a REST request unanswered past its bound is a service stuck serving it, which the
/// services waiting on it cannot help: not a user's request its API holds with nothing in flight
/// inside, nor a request served by such an API (a database lock holds nova-api's polls too).
/// Those are stalls of their own, like the one being explained.
fn stuck_serving(holders: &[Holder], stuck: &Stuck) -> bool {
    !holders.iter().any(|holder| {
        holder.hold == Hold::Entry
            && (holder.transaction == stuck.transaction && holder.symbol == stuck.symbol
                || stuck.service.as_deref() == Some(holder.service.as_str()))
    })
}

/// A time of day (UTC) for evidence.
fn clock(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us)
        .map(|ts| ts.strftime("%H:%M:%S%.3f").to_string())
        .unwrap_or_else(|_| us.to_string())
}
/// Failing transactions shown per repetition in the report.
const DIVERGENCES_PER_REPETITION: usize = 3;

/// What a service does in the cloud, as the inventory says (its `function:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Answers users' REST requests.
    Api,
    /// Works on RPC messages.
    Worker,
    /// The database the services share.
    Database,
    /// The message broker every RPC goes through.
    Broker,
    /// A cache the services share.
    Cache,
    /// An agent on the hosts it manages.
    Agent,
}

/// One service of the inventory, as the engine knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRole {
    /// Its name, as the trace and the fingerprints name it.
    pub service: String,
    /// What it does, when the inventory says.
    pub function: Option<Function>,
    /// The hosts it runs on, in inventory order.
    pub hosts: Vec<String>,
}

/// The inventory's services with their functions: which is the database, the broker, which are
/// the APIs. The rules name no service and no port: the same engine reads a DevStack, a
/// kolla-ansible or an OpenStack-Ansible inventory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    services: Vec<ServiceRole>,
}

impl Roles {
    /// The table of `services`.
    pub fn new(services: Vec<ServiceRole>) -> Roles {
        Roles { services }
    }

    /// The first service with `function`, with its first host.
    pub fn first(&self, function: Function) -> Option<(String, Option<String>)> {
        self.services
            .iter()
            .find(|role| role.function == Some(function))
            .map(|role| (role.service.clone(), role.hosts.first().cloned()))
    }

    /// Whether `service` may serve users' requests: an API of the inventory, or any service when
    /// the inventory names no API (nothing is known then).
    pub fn may_serve_users(&self, service: &str) -> bool {
        let mut apis = self
            .services
            .iter()
            .filter(|role| role.function == Some(Function::Api))
            .peekable();
        apis.peek().is_none() || apis.any(|role| role.service == service)
    }
}

/// What the runner knows about a transaction's workload command.
pub trait Labels {
    /// The command (`server create`) that issued request `id`, from the moment it is issued.
    fn command(&self, id: &str) -> Option<String>;
    /// Whether that command succeeded, once it has finished.
    fn succeeded(&self, id: &str) -> Option<bool>;
}

/// Where the run stands, for the detectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Phase {
    /// Repetitions whose baseline has begun so far (1 for the first repetition).
    pub repetition: usize,
    /// The window in progress, if any (health checks and cool-downs are none).
    pub window: Option<WindowKind>,
}

/// What a transaction is followed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A baseline transaction: watched by the detectors against what was learned before it (the
    /// baseline is fault-free, so their alarms are false alarms), and learned from once its
    /// command succeeded.
    Learn,
    /// A fault or recovery transaction: watched by the detectors.
    Watch,
    /// A watched transaction whose repetition's recovery window is over: no longer watched.
    Ended,
}

#[derive(Debug)]
struct Followed {
    command: String,
    role: Role,
    /// Index of its repetition (for the report's failing transactions).
    repetition: usize,
    events: Vec<Event>,
    /// When the command last made progress (its own steps, polls left out).
    last_progress_us: i64,
    /// The API answered the workload's request (the entry); until then it is serving it.
    entry_answered: bool,
    /// Diagnosed already (a baseline transaction may still wait for its verdict to be learned).
    diagnosed: bool,
    /// Learned from or diagnosed already; later events only feed the timeout monitor.
    done: bool,
}

/// The built-in detectors of a campaign, driven by the trace stream and a clock.
#[derive(Debug)]
pub struct Engine {
    fingerprint: Option<String>,
    timeout: Option<String>,
    store: Store,
    monitor: Monitor,
    phase: Phase,
    /// Transactions of workload commands in a baseline, fault or recovery window, by id.
    followed: HashMap<String, Followed>,
    /// Transactions of workload commands that began outside the windows (a cool-down, a health
    /// check), until they close: never followed, also not once a window begins.
    outside: HashSet<String>,
    divergences: Vec<Vec<TransactionDivergence>>,
    /// The inventory's services and their functions.
    roles: Roles,
    /// The broker's service (and host) in the inventory: named when the AMQP capture loses it.
    broker: Option<(String, Option<String>)>,
    /// The capture's losses of the broker: since when, and until when once it consumes again.
    broker_outages: Vec<(i64, Option<i64>)>,
    /// The database's service (and host) in the inventory.
    database: Option<(String, Option<String>)>,
    /// Per API service, when it last answered a request (of any transaction).
    answered: HashMap<String, i64>,
    /// When the last RPC message of any transaction was sent: the broker carries messages.
    last_rpc_us: i64,
    /// RPC calls of any transaction not replied to yet, by message id.
    calls: HashMap<String, PendingCall>,
    /// The `User-Agent` the workload sends: a request carrying it is the user's, so its answer
    /// is the entry step's.
    workload_agent: Option<String>,
}

/// An RPC call not replied to yet (see [`Engine::blame_stuck_callee`]).
#[derive(Debug, Clone)]
struct PendingCall {
    /// The service it went to, and its host.
    callee: (String, Option<String>),
    symbol: String,
    /// Its reply time's key in the store ([`reply_key`]).
    key: String,
    sent_us: i64,
}

/// How long an RPC call waits for its reply before oslo.messaging gives up on it
/// (`rpc_response_timeout`, 60 s by default): a call unanswered longer is over, not stuck.
const RPC_RESPONSE_TIMEOUT_US: i64 = 60_000_000;

/// Names an alarm after the campaign's detector (a built-in one calls itself by its kind).
fn named(mut alarm: Alarm, detector: &str) -> Alarm {
    alarm.detector = detector.to_owned();
    alarm
}

impl Engine {
    /// Built-in detectors under the given names (`None` leaves one out), starting from nothing.
    pub fn new(fingerprint: Option<String>, timeout: Option<String>) -> Option<Engine> {
        Engine::seeded(fingerprint, timeout, Store::default())
    }

    /// Built-in detectors under the given names, starting from `store`: its positive
    /// fingerprints (to which the baseline windows add), and its negative ones, which classify
    /// the fingerprint detector's alarms.
    pub fn seeded(
        fingerprint: Option<String>,
        timeout: Option<String>,
        store: Store,
    ) -> Option<Engine> {
        if fingerprint.is_none() && timeout.is_none() {
            return None;
        }
        Some(Engine {
            fingerprint,
            timeout,
            monitor: Monitor::new(Arc::new(store.clone())),
            store,
            phase: Phase::default(),
            followed: HashMap::new(),
            outside: HashSet::new(),
            divergences: Vec::new(),
            roles: Roles::default(),
            broker: None,
            broker_outages: Vec::new(),
            database: None,
            answered: HashMap::new(),
            last_rpc_us: i64::MIN,
            calls: HashMap::new(),
            workload_agent: None,
        })
    }

    /// Knows the inventory's `roles`: the services every other one depends on (the broker,
    /// named for alarms raised while the capture had lost it, and the database, named when an
    /// API stalls on a request while it answers others) and the APIs that serve users.
    pub fn with_roles(mut self, roles: Roles) -> Engine {
        self.broker = roles.first(Function::Broker);
        self.database = roles.first(Function::Database);
        self.roles = roles;
        self
    }

    /// Names the `User-Agent` the workload's requests carry, by which the engine knows when the
    /// API answered the user.
    pub fn with_workload_agent(mut self, agent: impl Into<String>) -> Engine {
        self.workload_agent = Some(agent.into());
        self
    }

    /// The AMQP capture lost the broker (`Some(since_us)`) or consumes again (`None`) at `now_us`.
    pub fn broker_link(&mut self, lost_since: Option<i64>, now_us: i64) {
        let ongoing = self
            .broker_outages
            .last_mut()
            .filter(|(_, back)| back.is_none());
        match (lost_since, ongoing) {
            (Some(since), None) => {
                // Replies sent while the capture is away are never seen: the calls in flight
                // cannot be timed any more.
                self.calls.clear();
                self.broker_outages.push((since, None));
            }
            (None, Some((_, back))) => *back = Some(now_us),
            // Still lost, or still connected: nothing changes.
            (Some(_), Some(_)) | (None, None) => {}
        }
    }

    /// A REST record stream reconnected at `at_us`: the answers it recorded while away are lost,
    /// so the requests that arrived before are no longer timed (each would raise a false
    /// slow-answer alarm); their transactions are timed by their steps again.
    pub fn rest_stream_resumed(&mut self, at_us: i64) {
        self.monitor.forget_requests(at_us);
    }

    /// When a transaction stalled during a loss of the broker, the broker comes first: every RPC
    /// waits on it, and nothing in the trace comes from it, so without this the service that waits
    /// is blamed. The capture losing its connection is the evidence (a stopped or killed broker
    /// closes it; a frozen one is only noticed at the heartbeat timeout).
    fn blame_broker(&self, alarm: &mut Alarm, stalled_since_us: i64) -> bool {
        let Some(broker) = &self.broker else {
            return false;
        };
        let Some(&(lost, back)) = self.broker_outages.iter().rev().find(|(lost, back)| {
            *lost <= alarm.ts_us && back.is_none_or(|back| back >= stalled_since_us)
        }) else {
            return false;
        };
        let when = match back {
            Some(back) => format!("from {} to {}", clock(lost), clock(back)),
            None => format!("since {}", clock(lost)),
        };
        put_first(
            alarm,
            broker,
            format!(
                "the AMQP capture lost {} {when}, while this transaction was stalled: every RPC waits on the broker",
                broker.0
            ),
        );
        true
    }

    /// The API serving the user's request of a followed transaction while it has not answered
    /// it (the service of the command's learned entry step), else `None`.
    fn entry_api(&self, followed: &Followed) -> Option<String> {
        if followed.entry_answered {
            return None;
        }
        self.store
            .commands
            .get(&followed.command)
            .and_then(|fingerprint| fingerprint.variants.first())
            .and_then(|variant| variant.steps.first())
            .and_then(|entry| entry.service.clone())
            .filter(|service| self.roles.may_serve_users(service))
    }

    /// Names the database first when what the trace shows of a stall points at something every
    /// service shares and the trace does not show, and the broker is connected:
    ///
    /// * the API serving the user's request (`held`: the API and the request) has not answered
    ///   it since the transaction stalled, yet answered other requests meanwhile: the API is
    ///   alive and waits on something. (Locked tables hold `POST /servers` for as long as the
    ///   lock while nova-api answers every poll.) A frozen or stopped API answers nothing and is
    ///   not taken for the database; an API waiting on a service it calls over REST is held by
    ///   that request, which the caller does not pass here;
    /// * or two services hold transactions at once ([`Monitor::holders`]), neither waiting on
    ///   the other, one of them an API holding a user's request with nothing in flight inside
    ///   it, while the broker carries messages. (Measured: locked `nova_api` tables held
    ///   nova-api's `POST /servers` and `DELETE`s and the conductor's builds at once, and a
    ///   delete whose `DELETE` had been answered before the lock was blamed on the service
    ///   left holding it.) One service stalling alone (a frozen conductor, a stopped compute
    ///   host) is not a shared dependency.
    ///
    /// Before the database comes a service the proxies see stuck: when a request to another
    /// service is unanswered past its bound meanwhile (any transaction's), the stalled services
    /// most likely wait on that service too, before they even call it. (Measured: while
    /// glance-api was frozen, a second `POST /servers` that had not reached glance yet was taken
    /// for a database lock.) Returns whether it named the database.
    fn blame_database(
        &self,
        alarm: &mut Alarm,
        held: Option<(String, String)>,
        stalled_since_us: i64,
    ) -> bool {
        let Some(database) = &self.database else {
            return false;
        };
        let this = alarm.transaction.clone();
        // Who holds this transaction: the API serving the user's request, else the first
        // suspect the detector found.
        let holder = match &held {
            Some((api, _)) => api.clone(),
            None => match alarm.suspects.first() {
                Some(suspect) => suspect.service.clone(),
                None => return false,
            },
        };
        let holders = self.monitor.holders(alarm.ts_us);
        let stuck = self.monitor.stuck(alarm.ts_us);
        match &held {
            Some((api, request)) => {
                if let Some((stuck, service)) = stuck.into_iter().find_map(|stuck| {
                    let service = stuck.service.clone().filter(|service| service != api)?;
                    Some((stuck, service))
                }) {
                    let evidence = format!(
                        "{api} has not answered this {request} since {}, yet answered other requests, while `{}` has been unanswered past its bound since {}: {api} most likely waits on {service} too",
                        clock(stalled_since_us),
                        stuck.symbol,
                        clock(stuck.since_us)
                    );
                    put_first(alarm, &(service, stuck.host), evidence);
                    return false;
                }
            }
            // Without the API holding the user's request, a REST service stuck serving a
            // request (this transaction's or another's) explains the stall better than a shared
            // dependency. (Measured: with placement-api frozen, a create it held was taken for
            // a database stall because nova-api held a `DELETE` meanwhile.)
            None => {
                if stuck.iter().any(|stuck| stuck_serving(&holders, stuck)) {
                    return false;
                }
            }
        }
        if let Some((api, request)) = &held
            && let Some(&answered) = self.answered.get(api).filter(|&&at| at > stalled_since_us)
        {
            put_first(
                alarm,
                database,
                format!(
                    "{api} has not answered this {request} since {}, yet answered other requests (last at {}), and the broker is connected: it waits on the database",
                    clock(stalled_since_us),
                    clock(answered)
                ),
            );
            return true;
        }
        // Another service holding another transaction at the same time; one of the two must be
        // an API holding a user's request by itself.
        let beside = holders.into_iter().find(|other| {
            other.service != holder
                && Some(&other.transaction) != this.as_ref()
                && match other.hold {
                    Hold::Entry => true,
                    Hold::Step => held.is_some(),
                    Hold::Request => false,
                }
        });
        let Some(other) = beside else {
            return false;
        };
        let since = stalled_since_us.max(other.since_us);
        if self.last_rpc_us <= since {
            // Nothing went through the broker since: it may be what both wait on.
            return false;
        }
        let how = |hold: Hold| match hold {
            Hold::Entry => "has not answered",
            Hold::Step | Hold::Request => "has not acted on",
        };
        let this_hold = if held.is_some() {
            Hold::Entry
        } else {
            Hold::Step
        };
        let what = held.as_ref().map_or_else(
            || "this transaction".to_owned(),
            |(_, request)| format!("this {request}"),
        );
        put_first(
            alarm,
            database,
            format!(
                "{holder} {} {what} since {}, while {} {} `{}` of another transaction since {}, and the broker carried messages meanwhile (last at {}): two services stalled at once, neither waiting on the other, wait on what they share, the database",
                how(this_hold),
                clock(stalled_since_us),
                other.service,
                how(other.hold),
                other.symbol,
                clock(other.since_us),
                clock(self.last_rpc_us)
            ),
        );
        true
    }

    /// Names the shared dependency behind a stall, if one is (see [`Engine::blame_broker`] and
    /// [`Engine::blame_database`]).
    fn blame_shared(
        &self,
        alarm: &mut Alarm,
        held: Option<(String, String)>,
        stalled_since_us: i64,
    ) {
        if self.blame_broker(alarm, stalled_since_us) {
            return;
        }
        if self.blame_database(alarm, held, stalled_since_us) {
            return;
        }
        self.blame_stuck_callee(alarm);
    }

    /// Names first the service that has an RPC call unanswered past its learned reply bound
    /// (any transaction's, the longest-waiting one), when the alarm suspects another service
    /// first: the services that call it wait on it, and a stall they cause elsewhere is its
    /// doing. (Measured: with nova-conductor frozen or stopped, a delete whose compute host
    /// never made its next call to the conductor, blocked on calls it had made in other
    /// transactions, was blamed on nova-compute; with nova-scheduler stopped, the delete of a
    /// server stuck in scheduling was blamed on nova-api.) A request to a REST service stuck
    /// past its bound meanwhile comes first and leaves the alarm as it is: an RPC service
    /// waiting on it (the scheduler on a frozen placement) is stuck because of it.
    fn blame_stuck_callee(&self, alarm: &mut Alarm) {
        let Some(first) = alarm.suspects.first().map(|s| s.service.clone()) else {
            return;
        };
        let now = alarm.ts_us;
        // Whatever service it is (the one suspected first included): a REST service stuck
        // serving a request explains the RPC services waiting on it. (Measured: with
        // placement-api frozen, the scheduler's unanswered `select_destinations` was put before
        // placement-api.)
        let holders = self.monitor.holders(now);
        let rest_stuck = self
            .monitor
            .stuck(now)
            .iter()
            .any(|stuck| stuck_serving(&holders, stuck));
        if rest_stuck {
            return;
        }
        let stuck = self
            .calls
            .values()
            .filter(|call| {
                let waited = now.saturating_sub(call.sent_us);
                call.callee.0 != first
                    && waited < RPC_RESPONSE_TIMEOUT_US
                    && self
                        .store
                        .answer_bound(&call.key)
                        .is_some_and(|(_, bound)| waited > i64::try_from(bound).unwrap_or(i64::MAX))
            })
            .min_by_key(|call| call.sent_us);
        let Some(call) = stuck else {
            return;
        };
        let bound = self
            .store
            .answer_bound(&call.key)
            .map_or(0, |(_, bound)| bound);
        put_first(
            alarm,
            &call.callee,
            format!(
                "`{}` to {} has been unanswered since {} (reply bound {}): the services that call it wait on it",
                call.symbol,
                call.callee.0,
                clock(call.sent_us),
                human_us(bound)
            ),
        );
    }

    /// The run entered `phase`.
    pub fn phase(&mut self, phase: Phase) {
        while self.divergences.len() < phase.repetition {
            self.divergences.push(Vec::new());
        }
        let watching =
            |phase: Phase| matches!(phase.window, Some(WindowKind::Fault | WindowKind::Recovery));
        if watching(self.phase) && !(watching(phase) && phase.repetition == self.phase.repetition) {
            // The repetition's recovery window is over: an alarm from now on would land in a
            // cool-down or the next baseline, about a fault that is no longer there. Its
            // transactions are no longer watched (nor learned from, if they go on).
            for (id, followed) in &mut self.followed {
                if followed.role == Role::Watch {
                    followed.role = Role::Ended;
                    followed.done = true;
                    followed.events = Vec::new();
                    self.monitor.close(id);
                }
            }
        }
        self.phase = phase;
    }

    /// How a transaction not followed yet would be: its role in the current window and its
    /// command, or `None` for what no workload command issued and for a transaction that began
    /// outside the windows.
    ///
    /// A transaction belongs to the window its first event arrived in, so one that began outside
    /// the windows stays unfollowed when a window begins. (Measured: a create begun during the
    /// steady-state check was followed from its third RPC on once the baseline began, and raised
    /// a false alarm for the `POST /servers` it was missing.)
    fn role_of_new(&mut self, transaction: &str, labels: &dyn Labels) -> Option<(Role, String)> {
        if self.outside.contains(transaction) {
            return None;
        }
        // Only workload commands have a known normal behaviour to compare with.
        let command = labels.command(transaction)?;
        let role = match self.phase.window {
            Some(WindowKind::Baseline) => Role::Learn,
            Some(WindowKind::Fault | WindowKind::Recovery) => Role::Watch,
            None => {
                self.outside.insert(transaction.to_owned());
                return None;
            }
        };
        Some((role, command))
    }

    /// A REST request of transaction `transaction` arrived at a proxy and awaits its answer: the
    /// timeout detector times the answer. The transaction is not followed on this alone (it
    /// would settle with no step if the request hangs); its first answered event does that.
    pub fn started(&mut self, transaction: &str, request: &RestStart, labels: &dyn Labels) {
        if self.timeout.is_none() {
            return;
        }
        let command = match self.followed.get(transaction) {
            Some(followed) => (followed.role != Role::Ended).then(|| followed.command.clone()),
            None => self
                .role_of_new(transaction, labels)
                .map(|(_, command)| command),
        };
        if let Some(command) = command {
            self.monitor.started(transaction, Some(&command), request);
        }
    }

    /// An event joined transaction `transaction` at `now_us`.
    pub fn event(&mut self, transaction: &str, event: &Event, now_us: i64, labels: &dyn Labels) {
        let from_workload = event.kind == EventKind::RestRequest
            && event.attrs.get("user_agent").map(String::as_str) == self.workload_agent.as_deref();
        if event.kind == EventKind::RestRequest
            && let Some(service) = &event.service
        {
            // Any transaction's answer shows the API is alive.
            let duration = i64::try_from(event.duration_us.unwrap_or(0)).unwrap_or(i64::MAX);
            let answered = self.answered.entry(service.clone()).or_insert(i64::MIN);
            *answered = (*answered).max(event.ts_us.saturating_add(duration));
        }
        if matches!(
            event.kind,
            EventKind::RpcCall | EventKind::RpcCast | EventKind::RpcFanout
        ) {
            self.last_rpc_us = self.last_rpc_us.max(event.ts_us);
        }
        match (&event.kind, &event.ids.msg_id) {
            (EventKind::RpcCall, Some(id)) => {
                if let Some(service) = &event.service {
                    self.calls.insert(
                        id.clone(),
                        PendingCall {
                            callee: (service.clone(), event.host.clone()),
                            symbol: format!("rpc.call:{}", template_dotted(&event.operation)),
                            key: reply_key(service, &event.operation),
                            sent_us: event.ts_us,
                        },
                    );
                }
            }
            (EventKind::RpcReply, Some(id)) => {
                self.calls.remove(id);
            }
            _ => {}
        }
        if !self.followed.contains_key(transaction) {
            let Some((role, command)) = self.role_of_new(transaction, labels) else {
                return;
            };
            self.followed.insert(
                transaction.to_owned(),
                Followed {
                    command,
                    role,
                    repetition: self.phase.repetition.saturating_sub(1),
                    events: Vec::new(),
                    last_progress_us: now_us,
                    entry_answered: false,
                    diagnosed: false,
                    done: false,
                },
            );
        }
        let Some(followed) = self.followed.get_mut(transaction) else {
            return;
        };
        followed.entry_answered |= from_workload;
        if !followed.done {
            followed.events.push(event.clone());
            // The user's status polls go on while a stuck command makes no progress: only the
            // command's own steps keep it from settling, or a stuck boot would be diagnosed only
            // once the workload gives up polling.
            followed.last_progress_us =
                last_progress_us(&followed.events, &self.store.config.normalize)
                    .map_or(now_us, |at| at.min(now_us));
        }
        if followed.role != Role::Ended && self.timeout.is_some() {
            self.monitor
                .observe(transaction, Some(&followed.command), event);
        }
    }

    /// Transaction `transaction` closed at `now_us` (the stitcher's view is complete).
    pub fn closed(
        &mut self,
        transaction: &Transaction,
        now_us: i64,
        labels: &dyn Labels,
    ) -> Vec<Alarm> {
        self.monitor.close(&transaction.id);
        self.outside.remove(&transaction.id);
        let Some(mut followed) = self.followed.remove(&transaction.id) else {
            return Vec::new();
        };
        let mut alarms = Vec::new();
        if !followed.done {
            let mut complete = transaction.clone();
            complete.command = Some(followed.command.clone());
            // A command still running when its transaction closes never gets a verdict: leave
            // its transaction out of the fingerprints.
            let outcome = labels.succeeded(&transaction.id).or(Some(false));
            alarms.extend(self.settle(&mut followed, complete, outcome, now_us));
            self.resync();
        }
        alarms
    }

    /// Advances the clock to `now_us`: settles quiet transactions and polls the timeout monitor.
    pub fn tick(&mut self, now_us: i64, labels: &dyn Labels) -> Vec<Alarm> {
        let mut alarms = Vec::new();
        let quiet: Vec<String> = self
            .followed
            .iter()
            .filter(|(_, f)| !f.done && now_us - f.last_progress_us >= SETTLE_US)
            .map(|(id, _)| id.clone())
            .collect();
        let mut learned = false;
        for id in quiet {
            let Some(mut followed) = self.followed.remove(&id) else {
                continue;
            };
            let outcome = labels.succeeded(&id);
            if followed.diagnosed && outcome.is_none() {
                // Diagnosed; learning waits for the verdict. No snapshot until then: this runs
                // every tick.
                self.followed.insert(id, followed);
                continue;
            }
            let mut snapshot = build_transaction(id.clone(), followed.events.clone());
            snapshot.command = Some(followed.command.clone());
            alarms.extend(self.settle(&mut followed, snapshot, outcome, now_us));
            learned |= followed.role == Role::Learn && followed.done;
            self.followed.insert(id, followed);
        }
        if learned {
            self.resync();
        }
        if let Some(name) = self.timeout.clone() {
            for overdue in self.monitor.poll(now_us) {
                let mut alarm = named(overdue.alarm, &name);
                let followed = alarm
                    .transaction
                    .as_deref()
                    .and_then(|id| self.followed.get(id));
                // Who serves the request the transaction waits on: the API that answers the
                // user, unless a request it made to another service is what hangs.
                let held = match &overdue.waiting {
                    Waiting::NextStep => followed.and_then(|followed| {
                        self.entry_api(followed)
                            .map(|api| (api, format!("`{}`", followed.command)))
                    }),
                    Waiting::Answer {
                        symbol,
                        service: Some(service),
                        entry: true,
                    } => Some((service.clone(), format!("`{symbol}`"))),
                    Waiting::Answer { .. } => None,
                };
                self.blame_shared(&mut alarm, held, overdue.since_us);
                alarms.push(alarm);
            }
        }
        alarms
    }

    /// Diagnoses a transaction once it has settled and, in a baseline, learns from it once its
    /// command's verdict is known (until then it stays open: `settle` is called again).
    ///
    /// Baseline transactions are diagnosed too, against what was learned before them: the
    /// baseline is fault-free, so an alarm there is a false alarm, and the report counts it as
    /// one. Without this the detectors could not be wrong outside the fault windows.
    fn settle(
        &mut self,
        followed: &mut Followed,
        transaction: Transaction,
        outcome: Option<bool>,
        now_us: i64,
    ) -> Option<Alarm> {
        let alarm = if followed.role == Role::Ended || followed.diagnosed {
            None
        } else {
            followed.diagnosed = true;
            self.diagnose_live(followed, &transaction, now_us)
        };
        if followed.role == Role::Learn {
            let Some(succeeded) = outcome else {
                // Learn only from commands known to have succeeded; wait for the verdict.
                return alarm;
            };
            if succeeded {
                self.store.learn_positive(&transaction);
            }
        }
        followed.done = true;
        followed.events = Vec::new();
        alarm
    }

    /// The fingerprint detector's alarm about a settled transaction, if it is anomalous.
    fn diagnose_live(
        &mut self,
        followed: &Followed,
        transaction: &Transaction,
        now_us: i64,
    ) -> Option<Alarm> {
        let name = self.fingerprint.as_ref()?;
        let diagnosis = self.store.diagnose(transaction);
        let mut alarm = diagnosis.to_alarm()?;
        alarm.ts_us = now_us;
        if let Some(shown) = self.divergences.get_mut(followed.repetition)
            && shown.len() < DIVERGENCES_PER_REPETITION
            && let Some(divergence) =
                divergence(&self.store, transaction, diagnosis.nearest_variant)
        {
            shown.push(divergence);
        }
        let mut alarm = named(alarm, name);
        // The live trace holds the requests answered so far; one still unanswered past its
        // bound holds the transaction, as the timeout detector says. (Measured: with
        // placement-api frozen, a create cut short before the scheduler's unanswered request
        // was diagnosed as a misshapen trace and blamed on nova-api.)
        if let Some(holder) = self
            .monitor
            .holders(now_us)
            .into_iter()
            .find(|holder| holder.transaction == transaction.id && holder.hold == Hold::Request)
        {
            let evidence = format!(
                "`{}` has been unanswered past its bound since {}: {} holds this transaction",
                holder.symbol,
                clock(holder.since_us),
                holder.service
            );
            put_first(&mut alarm, &(holder.service, holder.host), evidence);
        }
        let held = self
            .entry_api(followed)
            .map(|api| (api, format!("`{}`", followed.command)));
        self.blame_shared(&mut alarm, held, followed.last_progress_us);
        Some(alarm)
    }

    /// The fingerprints it holds: the store it started from and what it learned since.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Hands the fingerprints learned so far to the timeout monitor.
    fn resync(&mut self) {
        self.monitor.set_store(Arc::new(self.store.clone()));
    }

    /// Per repetition (in run order), failing transactions aligned with their nearest variant.
    pub fn into_divergences(self) -> Vec<Vec<TransactionDivergence>> {
        self.divergences
    }
}

/// Aligns a failing transaction with its nearest normal variant for the report, its first
/// divergence in causal order (not the first edit of the lane layout).
fn divergence(
    store: &Store,
    transaction: &Transaction,
    nearest: Option<usize>,
) -> Option<TransactionDivergence> {
    let command = transaction.command.clone()?;
    let variant = store.commands.get(&command)?.variants.get(nearest?)?;
    let trace = store.trace(transaction);
    let alignment = store.alignment(&trace, variant);
    let divergence_index = alignment.first_divergence?;
    let ops: Vec<AlignOp> = alignment
        .ops
        .into_iter()
        .map(|op| match op {
            EditOp::Match { .. } => AlignOp::Match,
            EditOp::Substitute { .. } => AlignOp::Substitute,
            EditOp::Insert { .. } => AlignOp::Insert,
            EditOp::Delete { .. } => AlignOp::Delete,
        })
        .collect();
    let name = |id: &u32| store.symbol(*id).unwrap_or("?").to_owned();
    Some(TransactionDivergence {
        transaction: transaction.id.clone(),
        command,
        failing: trace.steps.iter().map(|s| s.symbol.clone()).collect(),
        normal: variant.symbols.iter().map(name).collect(),
        ops,
        divergence_index,
    })
}

#[cfg(test)]
mod tests;
