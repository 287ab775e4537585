//! Detectors over a run's trace: the built-in fingerprint and timeout detectors run live on the
//! trace stream, external command detectors and alarm files after the run; all produce the same
//! alarm format.
//!
//! The built-in detectors ([`Builtin`]) are fed by the tracer's pipeline as it stitches: every
//! event with the transaction it joined, and every transaction as it closes. Only transactions of
//! workload commands count (they are labelled by their request id); a transaction belongs to the
//! window its first event arrived in. Transactions of a baseline window teach positive
//! fingerprints once their command succeeded; transactions of fault and recovery windows are
//! watched. So before scoring repetition *k* the fingerprints hold the baseline windows of
//! repetitions 1..=*k*, as far as they have been seen by then.
//!
//! * The timeout detector is a [`Monitor`] fed every event of the watched transactions and polled
//!   with the wall clock; its alarms fire while the transaction is still open.
//! * The fingerprint detector diagnoses a watched transaction once it has *settled* (no progress
//!   for [`SETTLE_US`]: no step of its own, the user's status polls do not count) or closed,
//!   whichever comes first, rather than after the stitcher's much longer
//!   idle timeout: a fault in the window must be seen while it is in the window.
//!
//! A repetition's transactions are watched until its recovery window ends; an alarm after that
//! would fall in a cool-down or the next baseline, about a fault that is no longer there.
//!
//! Every alarm is stamped with the (wall-clock) time it fires. The clock is a parameter, so the
//! same code runs on synthetic streams in tests.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::openstack::USER_AGENT;
use fingerprint::distance::EditOp;
use fingerprint::monitor::{Hold, Holder, Monitor, Stuck, Waiting};
use fingerprint::normalize::last_progress_us;
use fingerprint::store::Store;
use fingerprint::symbol::{reply_key, template_dotted};
use fingerprint::timing::human_us;
use reports::metrics::RunMetrics;
use reports::model as rm;
use scenarios::model::{Campaign, DetectorSource};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracer::event::{Event, EventKind, Transaction};
use tracer::pipeline::Update;
use tracer::rest::RestStart;
use tracer::stitch::build_transaction;
use userinput::file::FileKind;

/// How often the live timeout detector is polled.
pub const POLL: Duration = Duration::from_millis(100);
/// A watched transaction is diagnosed after this long without a new event, µs.
pub const SETTLE_US: i64 = 5_000_000;

/// The database ports (MySQL/MariaDB, PostgreSQL) by which the inventory's database is recognized.
const DATABASE_PORTS: [u16; 2] = [3306, 5432];

/// The AMQP ports (plain and TLS) by which the inventory's broker service is recognized.
const AMQP_PORTS: [u16; 2] = [5672, 5671];

/// The share of suspicion a shared dependency (broker, database) takes when it is named.
const SHARED_CONFIDENCE: f64 = 0.7;

/// Puts a shared dependency first among an alarm's suspects, with its evidence first; the other
/// suspects share what is left of the confidence.
fn put_first(alarm: &mut rm::Alarm, (service, host): &(String, Option<String>), evidence: String) {
    alarm.suspects.retain(|suspect| suspect.service != *service);
    for suspect in &mut alarm.suspects {
        suspect.confidence =
            (suspect.confidence * (1.0 - SHARED_CONFIDENCE) * 1000.0).round() / 1000.0;
    }
    alarm.suspects.insert(
        0,
        rm::Suspect {
            service: service.clone(),
            host: host.clone(),
            confidence: SHARED_CONFIDENCE,
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
    pub window: Option<rm::WindowKind>,
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
pub struct Builtin {
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
    divergences: Vec<Vec<rm::TransactionDivergence>>,
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
}

/// An RPC call not replied to yet (see [`Builtin::blame_stuck_callee`]).
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
fn named(mut alarm: rm::Alarm, detector: &str) -> rm::Alarm {
    alarm.detector = detector.to_owned();
    alarm
}

impl Builtin {
    /// The campaign's built-in detectors, or `None` when it has none, starting from the
    /// fingerprint store a built-in detector names (`fingerprints:`, already resolved against the
    /// campaign file), else from an empty one.
    ///
    /// The two built-in detectors share one store, so they may not name different files. A store
    /// that cannot be loaded is an error naming its path: the run must not start (nor inject a
    /// fault) with detectors that silently know less than the campaign says.
    pub fn of(campaign: &Campaign) -> Result<Option<Builtin>, String> {
        let builtin = |kind: &str| {
            campaign.detectors.iter().find_map(|d| match &d.source {
                DetectorSource::Builtin {
                    builtin,
                    fingerprints,
                } if builtin == kind => Some((d.name.as_str(), fingerprints.as_deref())),
                _ => None,
            })
        };
        let (fingerprint, timeout) = (builtin("fingerprint"), builtin("timeout"));
        let mut stores = [fingerprint, timeout]
            .into_iter()
            .flatten()
            .filter_map(|(name, path)| Some((name, path?)));
        let store = match (stores.next(), stores.next()) {
            (Some((first, one)), Some((second, other))) if one != other => {
                return Err(format!(
                    "the built-in detectors \"{first}\" and \"{second}\" name different fingerprint stores ({} and {}); they share one",
                    one.display(),
                    other.display()
                ));
            }
            (Some((name, path)), _) => Store::load(path).map_err(|error| {
                format!("detector \"{name}\": cannot use its fingerprint store: {error}")
            })?,
            (None, _) => Store::default(),
        };
        let name = |detector: Option<(&str, _)>| detector.map(|(name, _)| name.to_owned());
        let listening_on = |ports: &[u16]| {
            campaign
                .testbed
                .services
                .iter()
                .find(|service| service.ports.iter().any(|port| ports.contains(port)))
                .map(|service| {
                    let host = campaign
                        .testbed
                        .hosts_of(service)
                        .first()
                        .map(|host| host.name.to_string());
                    (service.name.to_string(), host)
                })
        };
        Ok(
            Builtin::seeded(name(fingerprint), name(timeout), store).map(|builtin| {
                builtin.with_shared(listening_on(&AMQP_PORTS), listening_on(&DATABASE_PORTS))
            }),
        )
    }

    /// Built-in detectors under the given names (`None` leaves one out), starting from nothing.
    pub fn new(fingerprint: Option<String>, timeout: Option<String>) -> Option<Builtin> {
        Builtin::seeded(fingerprint, timeout, Store::default())
    }

    /// Built-in detectors under the given names, starting from `store`: its positive
    /// fingerprints (to which the baseline windows add), and its negative ones, which classify
    /// the fingerprint detector's alarms.
    pub fn seeded(
        fingerprint: Option<String>,
        timeout: Option<String>,
        store: Store,
    ) -> Option<Builtin> {
        if fingerprint.is_none() && timeout.is_none() {
            return None;
        }
        Some(Builtin {
            fingerprint,
            timeout,
            monitor: Monitor::new(Arc::new(store.clone())),
            store,
            phase: Phase::default(),
            followed: HashMap::new(),
            outside: HashSet::new(),
            divergences: Vec::new(),
            broker: None,
            broker_outages: Vec::new(),
            database: None,
            answered: HashMap::new(),
            last_rpc_us: i64::MIN,
            calls: HashMap::new(),
        })
    }

    /// Names the services (and hosts) every other one depends on: the broker, named for alarms
    /// raised while the capture had lost it, and the database, named when an API stalls on a
    /// request while it answers others.
    pub fn with_shared(
        mut self,
        broker: Option<(String, Option<String>)>,
        database: Option<(String, Option<String>)>,
    ) -> Builtin {
        self.broker = broker;
        self.database = database;
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
    fn blame_broker(&self, alarm: &mut rm::Alarm, stalled_since_us: i64) -> bool {
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
        alarm: &mut rm::Alarm,
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

    /// Names the shared dependency behind a stall, if one is (see [`Builtin::blame_broker`] and
    /// [`Builtin::blame_database`]).
    fn blame_shared(
        &self,
        alarm: &mut rm::Alarm,
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
    fn blame_stuck_callee(&self, alarm: &mut rm::Alarm) {
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
        let watching = |phase: Phase| {
            matches!(
                phase.window,
                Some(rm::WindowKind::Fault | rm::WindowKind::Recovery)
            )
        };
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
            Some(rm::WindowKind::Baseline) => Role::Learn,
            Some(rm::WindowKind::Fault | rm::WindowKind::Recovery) => Role::Watch,
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
            && event.attrs.get("user_agent").map(String::as_str) == Some(USER_AGENT);
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
    ) -> Vec<rm::Alarm> {
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
    pub fn tick(&mut self, now_us: i64, labels: &dyn Labels) -> Vec<rm::Alarm> {
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
    ) -> Option<rm::Alarm> {
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
    ) -> Option<rm::Alarm> {
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

    /// Hands the fingerprints learned so far to the timeout monitor.
    fn resync(&mut self) {
        self.monitor.set_store(Arc::new(self.store.clone()));
    }

    /// Per repetition (in run order), failing transactions aligned with their nearest variant.
    pub fn into_divergences(self) -> Vec<Vec<rm::TransactionDivergence>> {
        self.divergences
    }
}

/// What the live detectors produced over a run.
#[derive(Debug, Default)]
pub struct Detected {
    /// Every alarm, in time order, named after the campaign's detector.
    pub alarms: Vec<rm::Alarm>,
    /// Per repetition (in run order), failing transactions aligned with their nearest variant.
    pub divergences: Vec<Vec<rm::TransactionDivergence>>,
}

/// What the tracer tells the live detectors besides its updates.
#[derive(Debug, Default)]
pub struct TracerSignals {
    /// The AMQP capture's link to the broker (`Some(since_us)` while lost).
    pub broker_link: Option<watch::Receiver<Option<i64>>>,
    /// When a REST record stream last reconnected (µs since the epoch).
    pub rest_resumed: Option<watch::Receiver<Option<i64>>>,
}

/// The built-in detectors running beside the tracer.
pub struct LiveDetectors {
    task: JoinHandle<Result<Detected, String>>,
}

impl LiveDetectors {
    /// Runs `builtin` on the pipeline's `updates` until they end (when the tracer stops),
    /// appending each alarm to `alarms_file` as it fires and counting it in `metrics`.
    pub fn spawn(
        mut builtin: Builtin,
        mut updates: mpsc::UnboundedReceiver<Update>,
        signals: TracerSignals,
        mut phases: watch::Receiver<Phase>,
        labels: Arc<dyn Labels + Send + Sync>,
        alarms_file: &Path,
        metrics: Arc<RunMetrics>,
    ) -> Result<LiveDetectors, String> {
        let mut file = File::create(alarms_file)
            .map(BufWriter::new)
            .map_err(|e| format!("creating {}: {e}", alarms_file.display()))?;
        let path = alarms_file.to_owned();
        let task = tokio::spawn(async move {
            let mut detected = Detected::default();
            let mut fired = |alarms: Vec<rm::Alarm>| -> Result<(), String> {
                for alarm in alarms {
                    metrics.alarm(&alarm);
                    serde_json::to_writer(&mut file, &alarm).map_err(|e| e.to_string())?;
                    file.write_all(b"\n")
                        .and_then(|()| file.flush())
                        .map_err(|e| format!("writing {}: {e}", path.display()))?;
                    detected.alarms.push(alarm);
                }
                Ok(())
            };
            let now = || jiff::Timestamp::now().as_microsecond();
            builtin.phase(*phases.borrow_and_update());
            let mut phases_open = true;
            let TracerSignals {
                broker_link,
                rest_resumed,
            } = signals;
            let mut link_open = broker_link.is_some();
            // A receiver that never changes stands in when there is no link to follow.
            let (_no_link, unlinked) = watch::channel(None);
            let mut broker_link = broker_link.unwrap_or(unlinked.clone());
            let mut resumed_open = rest_resumed.is_some();
            let mut rest_resumed = rest_resumed.unwrap_or(unlinked);
            let mut ticker = tokio::time::interval(POLL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    // A phase change applies before the updates that arrive after it.
                    biased;
                    changed = phases.changed(), if phases_open => match changed {
                        Ok(()) => builtin.phase(*phases.borrow_and_update()),
                        // The run is over; the last transactions still close.
                        Err(_) => phases_open = false,
                    },
                    changed = broker_link.changed(), if link_open => match changed {
                        Ok(()) => builtin.broker_link(*broker_link.borrow_and_update(), now()),
                        Err(_) => link_open = false,
                    },
                    changed = rest_resumed.changed(), if resumed_open => match changed {
                        Ok(()) => {
                            if let Some(at) = *rest_resumed.borrow_and_update() {
                                builtin.rest_stream_resumed(at);
                            }
                        }
                        Err(_) => resumed_open = false,
                    },
                    update = updates.recv() => match update {
                        Some(Update::Event { transaction, event }) => {
                            builtin.event(&transaction, &event, now(), labels.as_ref());
                        }
                        Some(Update::Started { transaction, request }) => {
                            builtin.started(&transaction, &request, labels.as_ref());
                        }
                        Some(Update::Closed(transaction)) => {
                            fired(builtin.closed(&transaction, now(), labels.as_ref()))?;
                        }
                        None => break,
                    },
                    _ = ticker.tick() => fired(builtin.tick(now(), labels.as_ref()))?,
                }
            }
            detected.divergences = builtin.into_divergences();
            Ok(detected)
        });
        Ok(LiveDetectors { task })
    }

    /// Waits for the detectors to see the end of the trace (stop the tracer first).
    pub async fn finish(self) -> Result<Detected, String> {
        self.task.await.map_err(|e| e.to_string())?
    }
}

/// Runs the campaign's external detectors (commands and alarm files) over the finished trace.
pub fn run_external(campaign: &Campaign, transactions: &[Transaction]) -> Vec<rm::Alarm> {
    let mut alarms = Vec::new();
    for detector in &campaign.detectors {
        let found = match &detector.source {
            DetectorSource::Builtin { .. } => continue,
            DetectorSource::Command { argv } => external_command(argv, transactions),
            DetectorSource::AlarmsFile { path } => read_alarms_file(path),
        };
        match found {
            Ok(found) => alarms.extend(found.into_iter().map(|a| named(a, detector.name.as_str()))),
            Err(error) => eprintln!("butterfly: detector {}: {error}", detector.name),
        }
    }
    alarms
}

/// Aligns a failing transaction with its nearest normal variant for the report, its first
/// divergence in causal order (not the first edit of the lane layout).
fn divergence(
    store: &Store,
    transaction: &Transaction,
    nearest: Option<usize>,
) -> Option<rm::TransactionDivergence> {
    let command = transaction.command.clone()?;
    let variant = store.commands.get(&command)?.variants.get(nearest?)?;
    let trace = store.trace(transaction);
    let alignment = store.alignment(&trace, variant);
    let divergence_index = alignment.first_divergence?;
    let ops: Vec<rm::AlignOp> = alignment
        .ops
        .into_iter()
        .map(|op| match op {
            EditOp::Match { .. } => rm::AlignOp::Match,
            EditOp::Substitute { .. } => rm::AlignOp::Substitute,
            EditOp::Insert { .. } => rm::AlignOp::Insert,
            EditOp::Delete { .. } => rm::AlignOp::Delete,
        })
        .collect();
    let name = |id: &u32| store.symbol(*id).unwrap_or("?").to_owned();
    Some(rm::TransactionDivergence {
        transaction: transaction.id.clone(),
        command,
        failing: trace.steps.iter().map(|s| s.symbol.clone()).collect(),
        normal: variant.symbols.iter().map(name).collect(),
        ops,
        divergence_index,
    })
}

fn parse_alarms(text: &str) -> Vec<rm::Alarm> {
    text.lines().filter_map(parse_alarm_line).collect()
}

/// One alarm of a JSON Lines alarm stream; a blank line is none, and a line that does not parse
/// is skipped with a warning that names the parser's complaint, not the line.
fn parse_alarm_line(line: &str) -> Option<rm::Alarm> {
    if line.trim().is_empty() {
        return None;
    }
    match serde_json::from_str(line) {
        Ok(alarm) => Some(alarm),
        Err(error) => {
            eprintln!("butterfly: skipping an alarm line that does not parse: {error}");
            None
        }
    }
}

/// Reads an alarm file line by line through the bounded reader.
fn read_alarms_file(path: &Path) -> Result<Vec<rm::Alarm>, String> {
    let mut alarms = Vec::new();
    for line in userinput::file::lines(path, FileKind::ALARMS).map_err(|e| e.to_string())? {
        let (_, line) = line.map_err(|e| e.to_string())?;
        alarms.extend(parse_alarm_line(&line));
    }
    Ok(alarms)
}

/// Runs an external detector: the run's events on stdin (JSON Lines), alarms on stdout.
fn external_command(
    argv: &[String],
    transactions: &[Transaction],
) -> Result<Vec<rm::Alarm>, String> {
    let mut events: Vec<&Event> = transactions.iter().flat_map(|t| &t.events).collect();
    events.sort_by_key(|e| (e.ts_us, e.seq));
    let mut input = Vec::new();
    for event in events {
        serde_json::to_writer(&mut input, event).map_err(|e| e.to_string())?;
        input.push(b'\n');
    }
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", argv[0]))?;
    let mut stdin = child.stdin.take().ok_or("no stdin")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    // A detector's answer is held to the alarm files' limit, as a file of alarms would be: a
    // runaway command cannot grow the runner's memory.
    let limit = FileKind::ALARMS.limit;
    let mut alarms = Vec::new();
    let read = stdout.take(limit + 1).read_to_end(&mut alarms);
    if read.is_err() || alarms.len() as u64 > limit {
        let _ = child.kill();
        let _ = child.wait();
        let _ = writer.join();
        return Err(match read {
            Err(error) => format!("reading what {} wrote: {error}", argv[0]),
            Ok(_) => format!(
                "{} wrote more than {} of alarms",
                argv[0],
                userinput::file::size_in_words(limit)
            ),
        });
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    let _ = writer.join();
    if !status.success() {
        return Err(format!("{} exited with {status}", argv[0]));
    }
    Ok(parse_alarms(&String::from_utf8_lossy(&alarms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;
    use std::sync::Mutex;

    /// When `transaction` first shows `operation`.
    fn ts_of(transaction: &Transaction, operation: &str) -> i64 {
        transaction
            .events
            .iter()
            .find(|e| e.operation == operation)
            .unwrap()
            .ts_us
    }

    /// Labels as the workload gives them: the command from the start, the verdict at the end.
    #[derive(Default)]
    struct Issued(Mutex<HashMap<String, (String, Option<bool>)>>);

    impl Issued {
        fn issue(&self, transaction: &Transaction) {
            let command = transaction.command.clone().expect("labelled fixture");
            self.0
                .lock()
                .unwrap()
                .insert(transaction.id.clone(), (command, None));
        }

        fn finish(&self, id: &str, ok: bool) {
            self.0.lock().unwrap().get_mut(id).unwrap().1 = Some(ok);
        }
    }

    impl Labels for Issued {
        fn command(&self, id: &str) -> Option<String> {
            self.0.lock().unwrap().get(id).map(|(c, _)| c.clone())
        }

        fn succeeded(&self, id: &str) -> Option<bool> {
            self.0.lock().unwrap().get(id)?.1
        }
    }

    /// Transactions recorded from a real OpenStack (see `fingerprint/tests/fixtures`).
    fn fixture(name: &str) -> Vec<Transaction> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fingerprint/tests/fixtures")
            .join(name)
            .join("transactions.json");
        tracer::import::read_transactions(&path).expect("fixture reads")
    }

    fn user(transactions: Vec<Transaction>) -> Vec<Transaction> {
        transactions
            .into_iter()
            .filter(|t| t.command.is_some() && !t.background)
            .collect()
    }

    fn window(repetition: usize, window: Option<rm::WindowKind>) -> Phase {
        Phase { repetition, window }
    }

    /// Feeds the transactions' events in time order as if each arrived at its own timestamp,
    /// ticking every 100 ms in between; returns the alarms with the clock at the end.
    fn stream(
        detectors: &mut Builtin,
        labels: &Issued,
        transactions: &[Transaction],
        until_us: i64,
    ) -> Vec<rm::Alarm> {
        let mut events: Vec<(&str, &Event)> = transactions
            .iter()
            .flat_map(|t| t.events.iter().map(move |e| (t.id.as_str(), e)))
            .collect();
        events.sort_by_key(|(_, e)| (e.ts_us, e.seq));
        let mut alarms = Vec::new();
        let mut clock = events[0].1.ts_us;
        for (transaction, event) in events {
            while clock + POLL.as_micros() as i64 <= event.ts_us {
                clock += POLL.as_micros() as i64;
                alarms.extend(detectors.tick(clock, labels));
            }
            detectors.event(transaction, event, event.ts_us, labels);
        }
        while clock < until_us {
            clock += POLL.as_micros() as i64;
            alarms.extend(detectors.tick(clock, labels));
        }
        alarms
    }

    /// Issues `transaction` and streams it until it has settled (a second after).
    fn stream_until_settled(
        detectors: &mut Builtin,
        labels: &Issued,
        transaction: &Transaction,
    ) -> Vec<rm::Alarm> {
        labels.issue(transaction);
        let last = transaction.events.iter().map(|e| e.ts_us).max().unwrap();
        stream(
            detectors,
            labels,
            std::slice::from_ref(transaction),
            last + SETTLE_US + 1_000_000,
        )
    }

    fn both() -> Builtin {
        Builtin::new(Some("fp".into()), Some("late".into())).expect("detectors")
    }

    #[test]
    fn a_fault_window_transaction_alarms_live_after_learning_from_the_baseline() {
        let labels = Issued::default();
        let normal = user(fixture("create-delete"));
        let faulty = user(fixture("compute-down"));
        let create = faulty
            .iter()
            .find(|t| t.command.as_deref() == Some("server create"))
            .unwrap()
            .clone();
        let mut detectors = both();

        detectors.phase(window(1, Some(rm::WindowKind::Baseline)));
        normal.iter().for_each(|t| labels.issue(t));
        let baseline_end = normal.iter().flat_map(|t| &t.events).map(|e| e.ts_us).max();
        let alarms = stream(&mut detectors, &labels, &normal, baseline_end.unwrap());
        assert!(alarms.is_empty(), "{alarms:?}");
        // Nothing is learned before the commands are known to have succeeded.
        assert!(detectors.store.commands.is_empty());
        normal.iter().for_each(|t| labels.finish(&t.id, true));
        let quiet = baseline_end.unwrap() + SETTLE_US;
        assert!(detectors.tick(quiet, &labels).is_empty());
        assert_eq!(detectors.store.commands.len(), 2, "both commands learned");

        detectors.phase(window(1, Some(rm::WindowKind::Fault)));
        let cast = ts_of(&create, "compute.build_and_run_instance");
        let alarms = stream_until_settled(&mut detectors, &labels, &create);
        let timeout = alarms
            .iter()
            .find(|a| a.detector == "late")
            .expect("a timeout");
        // The step after the cast is due within its learned bound (~1 s) and the clock ticks
        // every 100 ms: the monitor fires then, long before the 60 s RPC timeout.
        assert!(
            (1_000_000..1_200_000).contains(&(timeout.ts_us - cast)),
            "timeout {} µs after the cast",
            timeout.ts_us - cast
        );
        assert_eq!(timeout.suspects[0].service, "nova-compute");
        assert_eq!(timeout.transaction.as_deref(), Some(create.id.as_str()));

        // The transaction goes quiet after the cast (nova-compute is down): it is diagnosed once
        // it has settled, stamped with that moment, not with the time of its last event.
        let fingerprint: Vec<&rm::Alarm> = alarms.iter().filter(|a| a.detector == "fp").collect();
        assert_eq!(fingerprint.len(), 1, "{fingerprint:?}");
        let settled = fingerprint[0].ts_us;
        let gap_start = create
            .events
            .iter()
            .map(|e| e.ts_us)
            .filter(|ts| *ts <= settled - SETTLE_US)
            .max()
            .unwrap();
        assert!(
            (SETTLE_US..SETTLE_US + 200_000).contains(&(settled - gap_start)),
            "diagnosed {} µs after the last event before it",
            settled - gap_start
        );
        assert_eq!(fingerprint[0].suspects[0].service, "nova-compute");
        let divergences = detectors.into_divergences();
        assert_eq!(divergences.len(), 1);
        assert_eq!(divergences[0].len(), 1);
        assert_eq!(divergences[0][0].transaction, create.id);
        // nova-compute never took its cast: the first divergence is the step it would have made
        // next, not the placement request it would have made later, which the REST lane lists
        // first.
        let shown = &divergences[0][0];
        let columns = shown.columns().unwrap();
        let cast = columns
            .iter()
            .position(|c| c.1 == Some("rpc.cast:compute.build_and_run_instance"))
            .expect("the cast is aligned");
        assert_eq!(shown.divergence_index, cast + 1, "{columns:#?}");
        assert_eq!(columns[cast + 1].0, rm::AlignOp::Delete);
        let first_in_layout = columns
            .iter()
            .position(|c| c.0 != rm::AlignOp::Match)
            .unwrap();
        assert!(
            first_in_layout < cast
                && columns[first_in_layout]
                    .1
                    .is_some_and(|s| s.starts_with("rest:placement-api")),
            "{columns:#?}"
        );
    }

    /// Learns the normal runs in a baseline, then streams the create recorded while nova-compute
    /// was down in a fault window; `during` runs once the cast to nova-compute is known.
    fn alarms_for_the_stalled_create(
        detectors: &mut Builtin,
        during: impl FnOnce(&mut Builtin, i64),
    ) -> Vec<rm::Alarm> {
        let labels = Issued::default();
        let normal = user(fixture("create-delete"));
        normal.iter().for_each(|t| labels.issue(t));
        normal.iter().for_each(|t| labels.finish(&t.id, true));
        detectors.phase(window(1, Some(rm::WindowKind::Baseline)));
        let baseline_end = normal.iter().flat_map(|t| &t.events).map(|e| e.ts_us).max();
        stream(
            detectors,
            &labels,
            &normal,
            baseline_end.unwrap() + SETTLE_US,
        );
        alarms_for_the_stalled_create_after(detectors, &labels, during)
    }

    /// As [`alarms_for_the_stalled_create`], with the baseline learned already.
    fn alarms_for_the_stalled_create_after(
        detectors: &mut Builtin,
        labels: &Issued,
        during: impl FnOnce(&mut Builtin, i64),
    ) -> Vec<rm::Alarm> {
        let mut create = stalled_create();
        // The fixture predates recorded user agents; the workload's names itself, which tells
        // the detectors that nova-api answered the user.
        let entry = create
            .events
            .iter_mut()
            .min_by_key(|e| (e.ts_us, e.seq))
            .unwrap();
        entry
            .attrs
            .insert("user_agent".to_owned(), USER_AGENT.to_owned());
        detectors.phase(window(1, Some(rm::WindowKind::Fault)));
        labels.issue(&create);
        during(detectors, ts_of(&create, "compute.build_and_run_instance"));
        let last = create.events.iter().map(|e| e.ts_us).max().unwrap();
        stream(
            detectors,
            labels,
            std::slice::from_ref(&create),
            last + SETTLE_US + 1_000_000,
        )
    }

    /// Regression (issue 6, broker faults were blamed on the nova service that waits): an alarm
    /// about a transaction that stalled while the capture had lost the broker names the broker
    /// first; an outage over before the stall changes nothing.
    #[test]
    fn issue_6_a_stall_during_a_lost_broker_names_the_broker_first() {
        let broker = Some(("rabbitmq".to_owned(), Some("controller".to_owned())));
        let mut detectors = both().with_shared(broker.clone(), None);
        let alarms = alarms_for_the_stalled_create(&mut detectors, |detectors, cast| {
            detectors.broker_link(Some(cast + 50_000), cast + 50_000);
        });
        for detector in ["late", "fp"] {
            let alarm = alarms
                .iter()
                .find(|alarm| alarm.detector == detector)
                .unwrap_or_else(|| panic!("a {detector} alarm in {alarms:?}"));
            assert_eq!(alarm.suspects[0].service, "rabbitmq", "{alarm:?}");
            assert_eq!(alarm.suspects[0].host.as_deref(), Some("controller"));
            assert_eq!(alarm.suspects[1].service, "nova-compute", "{alarm:?}");
            assert!(
                alarm.evidence[0].starts_with("the AMQP capture lost rabbitmq since "),
                "{alarm:?}"
            );
            let total: f64 = alarm.suspects.iter().map(|s| s.confidence).sum();
            assert!((total - 1.0).abs() < 0.01, "{alarm:?}");
        }

        let mut detectors = both().with_shared(broker, None);
        let alarms = alarms_for_the_stalled_create(&mut detectors, |detectors, cast| {
            detectors.broker_link(Some(cast - 3_000_000), cast - 3_000_000);
            detectors.broker_link(None, cast - 2_000_000);
        });
        assert!(!alarms.is_empty());
        assert!(
            alarms
                .iter()
                .all(|alarm| alarm.suspects[0].service == "nova-compute"),
            "{alarms:?}"
        );
    }

    /// The create recorded while nova-compute was down: it stalls after its cast to
    /// nova-compute.
    fn stalled_create() -> Transaction {
        user(fixture("compute-down"))
            .into_iter()
            .find(|t| t.command.as_deref() == Some("server create"))
            .unwrap()
    }

    /// The recorded normal create of `transactions`, under another id.
    fn create_as(transactions: &[Transaction], id: &str) -> Transaction {
        let mut create = transactions
            .iter()
            .find(|t| t.command.as_deref() == Some("server create"))
            .unwrap()
            .clone();
        create.id = id.to_owned();
        create
    }

    /// Both detectors, knowing the broker and the database, after a baseline of the recorded
    /// normal runs (returned, with the time the baseline ended).
    fn learned_with_shared_dependencies(labels: &Issued) -> (Builtin, Vec<Transaction>, i64) {
        let normal = user(fixture("create-delete"));
        let mut detectors = both().with_shared(
            Some(("rabbitmq".to_owned(), None)),
            Some(("mariadb".to_owned(), Some("controller".to_owned()))),
        );
        detectors.phase(window(1, Some(rm::WindowKind::Baseline)));
        normal.iter().for_each(|t| labels.issue(t));
        normal.iter().for_each(|t| labels.finish(&t.id, true));
        let end = normal.iter().flat_map(|t| &t.events).map(|e| e.ts_us).max();
        let end = end.unwrap() + SETTLE_US;
        stream(&mut detectors, labels, &normal, end);
        (detectors, normal, end)
    }

    /// Regression (issue 6, locked database tables were blamed on the nova service that waits):
    /// a create whose `POST /servers` nova-api has not answered since it got its answers from
    /// glance, while nova-api answers other requests, names the database first; without those
    /// other answers (nova-api itself stuck) it does not.
    #[test]
    fn issue_6_an_api_stalled_on_a_request_while_answering_others_names_the_database() {
        let run = |others_answered: bool| -> Vec<rm::Alarm> {
            let labels = Issued::default();
            let (mut detectors, normal, _) = learned_with_shared_dependencies(&labels);

            // The create as seen while nova-api waits inside `POST /servers`: only the calls it
            // made to glance-api came back.
            detectors.phase(window(1, Some(rm::WindowKind::Fault)));
            let mut stalled = create_as(&normal, "req-stalled");
            // A minute after the baseline, whose own answers are then long past.
            for event in &mut stalled.events {
                event.ts_us += 60_000_000;
            }
            let schema = ts_of(&stalled, "GET /v2/schemas/image");
            stalled
                .events
                .retain(|e| e.operation.contains("/v2/") && e.ts_us <= schema);
            assert_eq!(stalled.events.len(), 2, "{:?}", stalled.events);
            labels.issue(&stalled);
            let mut other = stalled.events[0].clone();
            other.service = Some("nova-api".to_owned());
            other.operation = "GET /v2.1/servers/{id}".to_owned();
            other.ts_us = schema + 500_000;
            other.duration_us = Some(50_000);
            let mut clock = schema;
            let mut alarms = Vec::new();
            for event in &stalled.events {
                detectors.event(&stalled.id, event, event.ts_us, &labels);
            }
            while clock < schema + 3_000_000 {
                clock += 100_000;
                if others_answered && clock == other.ts_us {
                    detectors.event("req-someone-else", &other, clock, &labels);
                }
                alarms.extend(detectors.tick(clock, &labels));
            }
            alarms
        };
        let alarms = run(true);
        let timeout = alarms
            .iter()
            .find(|a| a.detector == "late")
            .expect("a timeout");
        assert_eq!(timeout.suspects[0].service, "mariadb", "{timeout:?}");
        assert!(
            timeout.evidence[0].starts_with("nova-api has not answered this `server create`"),
            "{timeout:?}"
        );
        let alarms = run(false);
        let timeout = alarms
            .iter()
            .find(|a| a.detector == "late")
            .expect("a timeout");
        assert_ne!(timeout.suspects[0].service, "mariadb", "{timeout:?}");
    }

    /// The arrival of a recorded request as the proxy announces it, at `ts_us` in `transaction`.
    fn arrival(event: &Event, transaction: &str, ts_us: i64) -> RestStart {
        RestStart {
            ts_us,
            global_request_id: Some(transaction.to_owned()),
            ..RestStart::of_event(event).unwrap()
        }
    }

    /// Learns the recorded normal runs in a baseline, then, in a fault window, announces the
    /// arrival of a create's `POST /servers` (and, with `glance`, of the image lookup nova-api
    /// makes inside it) that is never answered; with `others`, nova-api answers someone else's
    /// request meanwhile. Returns the alarms of the next 5 s.
    fn alarms_for_an_unanswered_create(glance: bool, others: bool) -> Vec<rm::Alarm> {
        alarms_for_an_unanswered_create_beside(glance, others, false, None)
    }

    /// As [`alarms_for_an_unanswered_create`]; with `stuck_beside`, the image lookup of another
    /// create, issued 2 s earlier, is stuck meanwhile; with `resumed`, the record stream
    /// reconnects that long after the create arrived. Returns the alarms about the first create.
    fn alarms_for_an_unanswered_create_beside(
        glance: bool,
        others: bool,
        stuck_beside: bool,
        resumed: Option<i64>,
    ) -> Vec<rm::Alarm> {
        let labels = Issued::default();
        let (mut detectors, normal, end) = learned_with_shared_dependencies(&labels);
        assert!(
            detectors
                .store
                .answers
                .contains_key("glance-api GET /v2/images/{id}"),
            "{:?}",
            detectors.store.answers.keys()
        );

        detectors.phase(window(1, Some(rm::WindowKind::Fault)));
        let frozen = create_as(&normal, "req-frozen");
        labels.issue(&frozen);
        let entry = &frozen.events[0];
        let image = frozen
            .events
            .iter()
            .find(|e| e.service.as_deref() == Some("glance-api"))
            .unwrap();
        let start = end + 60_000_000;
        if stuck_beside {
            let earlier = create_as(&normal, "req-earlier");
            labels.issue(&earlier);
            let lookup = arrival(image, &earlier.id, start - 2_000_000);
            detectors.started(&earlier.id, &lookup, &labels);
        }
        detectors.started(&frozen.id, &arrival(entry, &frozen.id, start), &labels);
        if glance {
            let mut inside = arrival(image, &frozen.id, start + 50_000);
            // The fixture predates recorded user agents; nova-api's keystoneauth names it.
            inside.user_agent = Some("nova-api keystoneauth1/5.11".to_owned());
            detectors.started(&frozen.id, &inside, &labels);
        }
        let mut other = entry.clone();
        other.operation = "GET /v2.1/servers/{id}".to_owned();
        other.ts_us = start + 300_000;
        other.duration_us = Some(50_000);
        let mut alarms = Vec::new();
        let mut clock = start;
        while clock < start + 5_000_000 {
            clock += 100_000;
            if others && clock == other.ts_us {
                detectors.event("req-someone-else", &other, clock, &labels);
            }
            if resumed.is_some_and(|after| clock == start + after) {
                detectors.rest_stream_resumed(clock);
            }
            alarms.extend(detectors.tick(clock, &labels));
        }
        alarms.retain(|alarm| alarm.transaction.as_deref() == Some(frozen.id.as_str()));
        alarms
    }

    /// Regression (issue 6, answer records lost when a record stream dropped left their requests
    /// in flight, each raising a false slow-answer alarm): once the stream has reconnected, the
    /// requests that arrived before are not timed any more; before it, they are.
    #[test]
    fn issue_6_requests_whose_answers_a_dropped_stream_lost_are_not_timed() {
        let alarms = alarms_for_an_unanswered_create_beside(true, false, false, Some(500_000));
        assert!(alarms.is_empty(), "{alarms:?}");
        let alarms = alarms_for_an_unanswered_create_beside(true, false, false, Some(4_000_000));
        assert_eq!(alarms.len(), 1, "{alarms:?}");
    }

    /// Regression (issue 6, freeze-glance went unnoticed): nova-api's image lookup inside the
    /// user's `POST /servers` never comes back, so no step of the create is ever observed. The
    /// answer times learned from the baseline time it out, and glance-api, which holds it, is
    /// named, even though nova-api answers other requests meanwhile.
    #[test]
    fn issue_6_a_request_hanging_inside_the_users_names_the_service_serving_it() {
        let alarms = alarms_for_an_unanswered_create(true, true);
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        let alarm = &alarms[0];
        assert_eq!(alarm.detector, "late");
        assert_eq!(alarm.transaction.as_deref(), Some("req-frozen"));
        assert_eq!(alarm.suspects[0].service, "glance-api", "{alarm:?}");
        assert_eq!(alarm.suspects[1].service, "nova-api", "{alarm:?}");
        assert!(
            alarm.evidence[0].starts_with("slow answer `")
                && alarm.evidence[0].contains("not answered after"),
            "{alarm:?}"
        );
    }

    /// The user's own request unanswered with nothing in flight inside it: nova-api holds it.
    /// While nova-api answers others it is alive and waits on the database; otherwise it is
    /// nova-api itself.
    #[test]
    fn issue_6_an_unanswered_entry_names_the_database_only_while_the_api_answers_others() {
        let alarms = alarms_for_an_unanswered_create(false, true);
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert_eq!(alarms[0].suspects[0].service, "mariadb", "{alarms:?}");
        assert!(
            alarms[0].evidence[0]
                .starts_with("nova-api has not answered this `nova-api:POST /v2.1/servers`"),
            "{alarms:?}"
        );
        let alarms = alarms_for_an_unanswered_create(false, false);
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert_eq!(alarms[0].suspects[0].service, "nova-api", "{alarms:?}");
    }

    /// Regression (issue 6, a glance freeze taken for a database lock): while another request
    /// to glance-api is stuck, nova-api holding the user's request with nothing in flight inside
    /// most likely waits on glance-api too, not on the database.
    #[test]
    fn issue_6_a_service_stuck_elsewhere_comes_before_the_database() {
        let alarms = alarms_for_an_unanswered_create_beside(false, true, true, None);
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert_eq!(alarms[0].suspects[0].service, "glance-api", "{alarms:?}");
        assert!(
            alarms[0].evidence[0].contains("most likely waits on glance-api"),
            "{alarms:?}"
        );
    }

    /// Regression (issue 6, locked database tables were blamed on the service left holding a
    /// transaction): a create stalled after its cast to nova-compute while nova-api holds
    /// another user's `POST /servers` with nothing in flight inside it, and the broker carries
    /// messages, names the database first, for both detectors. nova-compute stalling alone, or
    /// with the broker silent since, does not.
    #[test]
    fn issue_6_two_services_stalled_at_once_name_the_database() {
        let run = |api_stalled: bool, broker_busy: bool| -> Vec<rm::Alarm> {
            let labels = Issued::default();
            let (mut detectors, normal, _) = learned_with_shared_dependencies(&labels);
            let entry = normal
                .iter()
                .find(|t| t.command.as_deref() == Some("server create"))
                .map(|t| {
                    t.events
                        .iter()
                        .min_by_key(|e| (e.ts_us, e.seq))
                        .unwrap()
                        .clone()
                })
                .unwrap();
            let rpc = normal
                .iter()
                .flat_map(|t| &t.events)
                .find(|e| e.kind == EventKind::RpcCast)
                .unwrap()
                .clone();
            let other = create_as(&normal, "req-other");
            labels.issue(&other);
            alarms_for_the_stalled_create_after(&mut detectors, &labels, |detectors, cast| {
                if api_stalled {
                    let start = arrival(&entry, &other.id, cast - 10_000_000);
                    detectors.started(&other.id, &start, &labels);
                }
                if broker_busy {
                    let mut periodic = rpc.clone();
                    periodic.ts_us = cast + 500_000;
                    detectors.event("req-periodic", &periodic, periodic.ts_us, &labels);
                }
            })
        };
        let alarms = run(true, true);
        for detector in ["late", "fp"] {
            let alarm = alarms
                .iter()
                .find(|alarm| {
                    alarm.detector == detector && alarm.transaction.as_deref() != Some("req-other")
                })
                .unwrap_or_else(|| panic!("a {detector} alarm in {alarms:?}"));
            assert_eq!(alarm.suspects[0].service, "mariadb", "{alarm:?}");
            assert_eq!(alarm.suspects[1].service, "nova-compute", "{alarm:?}");
            assert!(
                alarm.evidence[0].starts_with("nova-compute has not acted on this transaction")
                    && alarm.evidence[0]
                        .contains("while nova-api has not answered `nova-api:POST /v2.1/servers`"),
                "{alarm:?}"
            );
        }
        for (api_stalled, broker_busy) in [(false, true), (true, false)] {
            let alarms = run(api_stalled, broker_busy);
            let about_the_create: Vec<&rm::Alarm> = alarms
                .iter()
                .filter(|alarm| alarm.transaction.as_deref() != Some("req-other"))
                .collect();
            assert!(!about_the_create.is_empty());
            assert!(
                about_the_create
                    .iter()
                    .all(|alarm| alarm.suspects[0].service == "nova-compute"),
                "{about_the_create:?}"
            );
        }
    }

    /// Regression (issue 6, freeze and stop of nova-conductor blamed on the compute host that
    /// waited on it): a create stalled after its cast to nova-compute while an RPC call to
    /// nova-conductor (of another transaction) has been unanswered past its learned reply bound
    /// names nova-conductor first, for both detectors; the call answered, or a REST request
    /// stuck elsewhere meanwhile, leaves nova-compute first.
    #[test]
    fn issue_6_a_service_with_calls_unanswered_past_their_bound_comes_first() {
        #[derive(Clone, Copy, PartialEq)]
        enum Beside {
            Unanswered,
            Answered,
            UnansweredBesideARestRequest,
        }
        let run = |beside: Beside| -> Vec<rm::Alarm> {
            let labels = Issued::default();
            let (mut detectors, normal, _) = learned_with_shared_dependencies(&labels);
            let events: Vec<&Event> = normal.iter().flat_map(|t| &t.events).collect();
            let call = events
                .iter()
                .find(|e| {
                    e.kind == EventKind::RpcCall
                        && e.service.as_deref() == Some("nova-conductor")
                        && e.ids.msg_id.is_some()
                })
                .map(|e| (*e).clone())
                .expect("a call to the conductor");
            let key = reply_key("nova-conductor", &call.operation);
            assert!(detectors.store.answer_bound(&key).is_some(), "{key}");
            let reply = events
                .iter()
                .find(|e| e.kind == EventKind::RpcReply && e.ids.msg_id == call.ids.msg_id)
                .map(|e| (*e).clone())
                .unwrap();
            let lookup = events
                .iter()
                .find(|e| e.service.as_deref() == Some("glance-api"))
                .map(|e| (*e).clone())
                .unwrap();
            let other = create_as(&normal, "req-other");
            labels.issue(&other);
            alarms_for_the_stalled_create_after(&mut detectors, &labels, |detectors, cast| {
                let mut pending = call.clone();
                pending.ts_us = cast - 500_000;
                detectors.event("req-periodic", &pending, pending.ts_us, &labels);
                if beside == Beside::Answered {
                    let mut answered = reply.clone();
                    answered.ts_us = cast - 400_000;
                    detectors.event("req-periodic", &answered, answered.ts_us, &labels);
                }
                if beside == Beside::UnansweredBesideARestRequest {
                    // Another create's image lookup, inside its `POST /servers`.
                    let post = arrival(&other.events[0], &other.id, cast - 10_000_000);
                    detectors.started(&other.id, &post, &labels);
                    let mut inside = arrival(&lookup, &other.id, cast - 9_950_000);
                    inside.user_agent = Some("nova-api keystoneauth1/5.11".to_owned());
                    detectors.started(&other.id, &inside, &labels);
                }
            })
        };
        let about_the_create = |alarms: &[rm::Alarm], detector: &str| -> rm::Alarm {
            alarms
                .iter()
                .find(|alarm| {
                    alarm.detector == detector && alarm.transaction.as_deref() != Some("req-other")
                })
                .cloned()
                .unwrap_or_else(|| panic!("a {detector} alarm in {alarms:?}"))
        };
        let alarms = run(Beside::Unanswered);
        for detector in ["late", "fp"] {
            let alarm = about_the_create(&alarms, detector);
            assert_eq!(alarm.suspects[0].service, "nova-conductor", "{alarm:?}");
            assert_eq!(alarm.suspects[1].service, "nova-compute", "{alarm:?}");
            assert!(
                alarm.evidence[0].starts_with("`rpc.call:conductor.")
                    && alarm.evidence[0].contains("to nova-conductor has been unanswered since"),
                "{alarm:?}"
            );
        }
        for beside in [Beside::Answered, Beside::UnansweredBesideARestRequest] {
            let alarms = run(beside);
            for detector in ["late", "fp"] {
                let alarm = about_the_create(&alarms, detector);
                assert_eq!(alarm.suspects[0].service, "nova-compute", "{alarm:?}");
            }
        }
    }

    /// Regression (issue 6, freeze-placement blamed on nova-api and the scheduler): a create
    /// stalled while a request it made to placement-api is unanswered past its bound names
    /// placement-api first, for both detectors: the timeout detector by the slow answer alone
    /// (no overdue-step alarm about the service waiting on it), the fingerprint detector,
    /// which sees only answered requests, by the monitor's holder.
    #[test]
    fn issue_6_a_request_unanswered_inside_the_transaction_names_its_service() {
        unanswered_inside_the_transaction(false);
        unanswered_inside_the_transaction(true);
    }

    /// With `waiters`, the scheduler has a call unanswered past its bound meanwhile (it waits on
    /// placement-api too), nova-api holds another user's request, and the broker carries
    /// messages: placement-api still comes first, neither the scheduler nor the database.
    /// (Measured with placement-api frozen, before both were ruled out.)
    fn unanswered_inside_the_transaction(waiters: bool) {
        let labels = Issued::default();
        let (mut detectors, normal, _) = learned_with_shared_dependencies(&labels);
        let allocations = normal
            .iter()
            .flat_map(|t| &t.events)
            .find(|e| e.operation.starts_with("GET /allocations/"))
            .cloned()
            .unwrap();
        // The recorded create stalled after its cast to nova-compute, whose first request to
        // placement-api after the cast gets no answer.
        let create = stalled_create();
        detectors.phase(window(1, Some(rm::WindowKind::Fault)));
        labels.issue(&create);
        let cast = ts_of(&create, "compute.build_and_run_instance");
        let (before, after): (Vec<Event>, Vec<Event>) =
            create.events.iter().cloned().partition(|e| e.ts_us <= cast);
        let first_part = Transaction {
            events: before,
            ..create.clone()
        };
        let mut alarms = stream(&mut detectors, &labels, &[first_part], cast + 50_000);
        let start = arrival(&allocations, &create.id, cast + 100_000);
        detectors.started(&create.id, &start, &labels);
        if waiters {
            let events: Vec<&Event> = normal.iter().flat_map(|t| &t.events).collect();
            let mut call = events
                .iter()
                .find(|e| {
                    e.kind == EventKind::RpcCall && e.operation.contains("select_destinations")
                })
                .map(|e| (*e).clone())
                .unwrap();
            call.ts_us = cast + 150_000;
            detectors.event("req-another", &call, call.ts_us, &labels);
            let other = create_as(&normal, "req-other");
            labels.issue(&other);
            let post = arrival(&other.events[0], &other.id, cast - 10_000_000);
            detectors.started(&other.id, &post, &labels);
            let mut periodic = events
                .iter()
                .find(|e| e.kind == EventKind::RpcCast)
                .map(|e| (*e).clone())
                .unwrap();
            periodic.ts_us = cast + 2_000_000;
            detectors.event("req-periodic", &periodic, periodic.ts_us, &labels);
        }
        let mut after = after;
        after.sort_by_key(|e| (e.ts_us, e.seq));
        let until = after.last().map_or(cast, |e| e.ts_us) + SETTLE_US + 1_000_000;
        let mut clock = cast + 100_000;
        for event in &after {
            while clock + POLL.as_micros() as i64 <= event.ts_us {
                clock += POLL.as_micros() as i64;
                alarms.extend(detectors.tick(clock, &labels));
            }
            detectors.event(&create.id, event, event.ts_us, &labels);
        }
        while clock < until {
            clock += POLL.as_micros() as i64;
            alarms.extend(detectors.tick(clock, &labels));
        }
        alarms.retain(|alarm| alarm.transaction.as_deref() == Some(create.id.as_str()));
        for detector in ["late", "fp"] {
            let first = alarms
                .iter()
                .find(|alarm| alarm.detector == detector)
                .unwrap_or_else(|| panic!("a {detector} alarm in {alarms:?}"));
            assert_eq!(first.suspects[0].service, "placement-api", "{first:?}");
        }
        assert!(
            alarms
                .iter()
                .filter(|alarm| alarm.detector == "late")
                .all(|alarm| alarm.suspects[0].service == "placement-api"),
            "{alarms:?}"
        );
    }

    #[test]
    fn baseline_transactions_of_failed_commands_teach_nothing() {
        let labels = Issued::default();
        let normal = user(fixture("create-delete"));
        let mut detectors = both();
        detectors.phase(window(1, Some(rm::WindowKind::Baseline)));
        normal.iter().for_each(|t| labels.issue(t));
        normal.iter().for_each(|t| labels.finish(&t.id, false));
        let end = normal.iter().flat_map(|t| &t.events).map(|e| e.ts_us).max();
        stream(&mut detectors, &labels, &normal, end.unwrap() + SETTLE_US);
        assert!(detectors.store.commands.is_empty());
    }

    #[test]
    fn only_workload_transactions_inside_windows_are_followed() {
        let labels = Issued::default();
        let normal = user(fixture("create-delete"));
        let mut detectors = both();
        // A cool-down: labelled transactions are not followed.
        normal.iter().for_each(|t| labels.issue(t));
        detectors.phase(window(1, None));
        stream(&mut detectors, &labels, &normal[..1], 0);
        assert!(detectors.followed.is_empty());
        // Nor once a window begins, if they began outside it: the first event decides.
        let mut begun = normal[1].clone();
        begun.events.sort_by_key(|e| (e.ts_us, e.seq));
        let rest = begun.events.split_off(1);
        stream(&mut detectors, &labels, std::slice::from_ref(&begun), 0);
        detectors.phase(window(1, Some(rm::WindowKind::Baseline)));
        begun.events = rest;
        stream(&mut detectors, &labels, std::slice::from_ref(&begun), 0);
        assert!(detectors.followed.is_empty(), "followed half-way");
        // Once it has closed, its id is forgotten.
        assert!(detectors.closed(&begun, 0, &labels).is_empty());
        assert!(!detectors.outside.contains(&begun.id));
        detectors.phase(window(1, None));
        // A baseline: unlabelled ones (not issued by the workload) are not followed either.
        detectors.phase(window(2, Some(rm::WindowKind::Baseline)));
        let background = user(fixture("compute-down"));
        stream(&mut detectors, &labels, &background, 0);
        assert!(detectors.followed.is_empty());
        stream(&mut detectors, &labels, &normal[1..], 0);
        assert_eq!(detectors.followed.len(), 1);
        // The stitcher closing it settles it (its command never finished: nothing learned).
        assert_eq!(detectors.followed[&normal[1].id].role, Role::Learn);
        let alarms = detectors.closed(&normal[1], 0, &labels);
        assert!(alarms.is_empty());
        assert!(detectors.followed.is_empty());
        assert!(detectors.store.commands.is_empty());
        assert_eq!(detectors.into_divergences().len(), 2);
    }

    /// Regression (issue 6, the accuracy bench counted no false alarm because the detectors never
    /// watched the baselines): a baseline transaction is diagnosed and timed against what was
    /// learned before it, so an anomalous one alarms there (a false alarm, since no fault is
    /// injected); it is still learned from only if its command succeeded.
    #[test]
    fn issue_6_baseline_transactions_are_watched_so_that_false_alarms_can_count() {
        let labels = Issued::default();
        let (mut detectors, _, _) = learned_with_shared_dependencies(&labels);
        let runs = detectors.store.commands["server create"].runs;
        detectors.phase(window(2, Some(rm::WindowKind::Baseline)));
        let create = stalled_create();
        let alarms = stream_until_settled(&mut detectors, &labels, &create);
        let last = create.events.iter().map(|e| e.ts_us).max().unwrap();
        for detector in ["fp", "late"] {
            let alarm = alarms
                .iter()
                .find(|alarm| alarm.detector == detector)
                .unwrap_or_else(|| panic!("a {detector} alarm in {alarms:?}"));
            assert_eq!(alarm.suspects[0].service, "nova-compute", "{alarm:?}");
        }
        // Its command failed: nothing is learned from it.
        labels.finish(&create.id, false);
        detectors.tick(last + 2 * SETTLE_US, &labels);
        assert!(detectors.followed[&create.id].done);
        assert_eq!(detectors.store.commands["server create"].runs, runs);
    }

    #[test]
    fn watching_ends_with_the_recovery_window() {
        let labels = Issued::default();
        let normal = user(fixture("create-delete"));
        let create = stalled_create();
        let mut detectors = both();
        detectors.phase(window(1, Some(rm::WindowKind::Baseline)));
        normal.iter().for_each(|t| labels.issue(t));
        normal.iter().for_each(|t| labels.finish(&t.id, true));
        let end = normal.iter().flat_map(|t| &t.events).map(|e| e.ts_us).max();
        stream(&mut detectors, &labels, &normal, end.unwrap() + SETTLE_US);
        detectors.phase(window(1, Some(rm::WindowKind::Recovery)));
        labels.issue(&create);
        let cast = ts_of(&create, "compute.build_and_run_instance");
        let mut until_cast = create.clone();
        until_cast.events.retain(|e| e.ts_us <= cast);
        // Stuck after the cast, the transaction is overdue ~1 s later and unsettled until 5 s:
        // the window ends half a second after the cast, before either alarm.
        stream(
            &mut detectors,
            &labels,
            std::slice::from_ref(&until_cast),
            cast + 500_000,
        );
        assert!(detectors.monitor.expectation(&create.id).is_some());
        let open = detectors.monitor.open_transactions();
        detectors.phase(window(1, None));
        // The watched create is closed; the baseline's own stay until the stitcher closes them.
        assert_eq!(detectors.monitor.open_transactions(), open - 1);
        assert!(detectors.monitor.expectation(&create.id).is_none());
        let mut alarms = Vec::new();
        let mut clock = cast + 500_000;
        while clock < cast + 2 * SETTLE_US {
            clock += POLL.as_micros() as i64;
            alarms.extend(detectors.tick(clock, &labels));
        }
        // Its remaining events, in the next baseline, neither alarm nor teach.
        detectors.phase(window(2, Some(rm::WindowKind::Baseline)));
        let learned = detectors.store.commands["server create"].runs;
        stream(
            &mut detectors,
            &labels,
            std::slice::from_ref(&create),
            clock,
        );
        detectors.closed(&create, clock, &labels);
        assert!(alarms.is_empty(), "{alarms:?}");
        assert_eq!(detectors.store.commands["server create"].runs, learned);
        assert!(detectors.into_divergences().iter().all(Vec::is_empty));
    }

    /// A campaign (written to `dir/campaign.yaml`) with the given `detectors:` entries.
    fn campaign_with(dir: &Path, detectors: &str) -> Campaign {
        let file = dir.join("campaign.yaml");
        std::fs::write(
            &file,
            format!(
                "version: 1\ntestbed:\n  hosts:\n    - name: a\n      address: 127.0.0.1\n      roles: [x]\n  services:\n    - name: s\n      unit: s.service\n      roles: [x]\nexperiments:\n  - name: e\n    fault: {{kind: service-stop}}\n    target: {{service: s}}\n    duration: 1s\ndetectors:\n{detectors}"
            ),
        )
        .unwrap();
        scenarios::load(&file).expect("the campaign is valid")
    }

    /// What `butterfly fingerprint learn --from-run` makes of a run where nova-compute was
    /// stopped: the normal runs as positives, the whole create under the fault as a negative.
    fn compute_stop_store() -> Store {
        let mut store = Store::default();
        for transaction in fixture("create-delete") {
            store.learn_positive(&transaction);
        }
        let create = stalled_create();
        let label = fingerprint::FaultLabel {
            fault_kind: "service-stop".to_owned(),
            service: "nova-compute".to_owned(),
            host: Some("osbed".to_owned()),
        };
        store.learn_negative(&create, &label);
        store
    }

    #[test]
    fn a_seeded_store_classifies_a_fault_window_transaction_and_still_learns_the_baseline() {
        let dir = tempfile::tempdir().unwrap();
        compute_stop_store()
            .save(&dir.path().join("fp.json"))
            .unwrap();
        // The store's path is relative to the campaign file, not to the working directory.
        let campaign = campaign_with(
            dir.path(),
            "  - name: fp\n    builtin: fingerprint\n    fingerprints: fp.json\n  - name: late\n    builtin: timeout\n",
        );
        let mut detectors = Builtin::of(&campaign).unwrap().expect("detectors");
        assert_eq!(detectors.store.negatives.len(), 1);
        assert_eq!(detectors.store.commands["server create"].runs, 1);

        // Baseline runs add to the seeded positives.
        let labels = Issued::default();
        let normal = user(fixture("create-delete"));
        detectors.phase(window(1, Some(rm::WindowKind::Baseline)));
        normal.iter().for_each(|t| labels.issue(t));
        normal.iter().for_each(|t| labels.finish(&t.id, true));
        let end = normal.iter().flat_map(|t| &t.events).map(|e| e.ts_us).max();
        stream(&mut detectors, &labels, &normal, end.unwrap() + SETTLE_US);
        assert_eq!(detectors.store.commands["server create"].runs, 2);
        assert_eq!(detectors.store.negatives.len(), 1);

        // Under the fault, the create stalls after the cast to nova-compute: it is diagnosed
        // once it goes quiet, cut short, and still recognized as the known fault.
        let create = stalled_create();
        detectors.phase(window(1, Some(rm::WindowKind::Fault)));
        labels.issue(&create);
        let cast = ts_of(&create, "compute.build_and_run_instance");
        let mut until_cast = create.clone();
        until_cast.events.retain(|e| e.ts_us <= cast);
        let alarms = stream(
            &mut detectors,
            &labels,
            std::slice::from_ref(&until_cast),
            cast + SETTLE_US + 1_000_000,
        );
        let fingerprint: Vec<&rm::Alarm> = alarms.iter().filter(|a| a.detector == "fp").collect();
        assert_eq!(fingerprint.len(), 1, "{alarms:?}");
        assert_eq!(fingerprint[0].fault_kind.as_deref(), Some("service-stop"));
        assert!(
            fingerprint[0].evidence.iter().any(
                |e| e.starts_with("nearest known fault: service-stop of nova-compute on osbed")
            ),
            "{:?}",
            fingerprint[0].evidence
        );
        assert_eq!(fingerprint[0].suspects[0].service, "nova-compute");
    }

    #[test]
    fn an_unseeded_fingerprint_alarm_names_no_fault_kind() {
        // The same stalled create against fingerprints learned from the baseline only: there is
        // no known fault to name.
        let dir = tempfile::tempdir().unwrap();
        let campaign = campaign_with(dir.path(), "  - name: fp\n    builtin: fingerprint\n");
        let mut detectors = Builtin::of(&campaign).unwrap().expect("detectors");
        assert!(detectors.timeout.is_none());
        let labels = Issued::default();
        let normal = user(fixture("create-delete"));
        detectors.phase(window(1, Some(rm::WindowKind::Baseline)));
        normal.iter().for_each(|t| labels.issue(t));
        normal.iter().for_each(|t| labels.finish(&t.id, true));
        let end = normal.iter().flat_map(|t| &t.events).map(|e| e.ts_us).max();
        stream(&mut detectors, &labels, &normal, end.unwrap() + SETTLE_US);
        let mut create = stalled_create();
        let cast = ts_of(&create, "compute.build_and_run_instance");
        create.events.retain(|e| e.ts_us <= cast);
        detectors.phase(window(1, Some(rm::WindowKind::Fault)));
        labels.issue(&create);
        let alarms = stream(
            &mut detectors,
            &labels,
            std::slice::from_ref(&create),
            cast + SETTLE_US + 1_000_000,
        );
        assert_eq!(alarms.len(), 1, "{alarms:?}");
        assert_eq!(alarms[0].fault_kind, None);
    }

    #[test]
    fn a_missing_or_invalid_store_is_an_error_naming_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let campaign = campaign_with(
            dir.path(),
            "  - name: fp\n    builtin: fingerprint\n    fingerprints: absent.json\n",
        );
        let error = Builtin::of(&campaign).unwrap_err();
        let path = dir.path().join("absent.json");
        assert!(
            error.starts_with(&format!(
                "detector \"fp\": cannot use its fingerprint store: cannot read {}: ",
                path.display()
            )),
            "{error}"
        );
        std::fs::write(dir.path().join("broken.json"), "{\"format\": ").unwrap();
        let campaign = campaign_with(
            dir.path(),
            "  - name: late\n    builtin: timeout\n    fingerprints: broken.json\n",
        );
        let error = Builtin::of(&campaign).unwrap_err();
        assert!(
            error.contains(&format!("{}:1:", dir.path().join("broken.json").display())),
            "{error}"
        );
    }

    #[test]
    fn an_external_command_s_alarms_are_read_from_its_output() {
        let alarm = r#"{"ts_us":1,"detector":"ext","suspects":[{"service":"nova-conductor","confidence":1.0}],"score":1.0,"transaction":"req-1"}"#;
        let argv = [
            "sh".to_owned(),
            "-c".to_owned(),
            format!("cat >/dev/null; echo '{alarm}'"),
        ];
        let alarms = external_command(&argv, &[]).unwrap();
        assert_eq!(alarms.len(), 1, "{alarms:?}");
    }

    #[test]
    fn an_external_command_that_writes_without_end_is_cut_off_at_the_alarm_limit() {
        let argv = ["sh".to_owned(), "-c".to_owned(), "exec yes '{}'".to_owned()];
        let error = external_command(&argv, &[]).unwrap_err();
        assert!(error.contains("wrote more than 64 MiB"), "{error}");
    }

    #[test]
    fn the_built_in_detectors_share_one_store() {
        let dir = tempfile::tempdir().unwrap();
        compute_stop_store()
            .save(&dir.path().join("a.json"))
            .unwrap();
        compute_stop_store()
            .save(&dir.path().join("b.json"))
            .unwrap();
        let campaign = campaign_with(
            dir.path(),
            "  - name: fp\n    builtin: fingerprint\n    fingerprints: a.json\n  - name: late\n    builtin: timeout\n    fingerprints: b.json\n",
        );
        let error = Builtin::of(&campaign).unwrap_err();
        assert!(
            error.contains("name different fingerprint stores"),
            "{error}"
        );
        // The same store named twice, or by the timeout detector alone, seeds both.
        let campaign = campaign_with(
            dir.path(),
            "  - name: fp\n    builtin: fingerprint\n  - name: late\n    builtin: timeout\n    fingerprints: b.json\n",
        );
        let detectors = Builtin::of(&campaign).unwrap().expect("detectors");
        assert_eq!(detectors.store.negatives.len(), 1);
        let campaign = campaign_with(dir.path(), "  - name: external\n    alarms: x.jsonl\n");
        assert!(Builtin::of(&campaign).unwrap().is_none());
    }

    fn event_updates(transactions: &[Transaction]) -> Vec<Update> {
        let mut events: Vec<(&str, &Event)> = transactions
            .iter()
            .flat_map(|t| t.events.iter().map(move |e| (t.id.as_str(), e)))
            .collect();
        events.sort_by_key(|(_, e)| (e.ts_us, e.seq));
        events
            .into_iter()
            .map(|(id, event)| Update::Event {
                transaction: id.to_owned(),
                event: Box::new(event.clone()),
            })
            .collect()
    }

    /// Lets the detector task (on this single-threaded runtime) take everything sent so far.
    async fn let_it_run() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn the_live_task_writes_and_counts_alarms_as_they_fire() {
        let dir = tempfile::tempdir().unwrap();
        let labels = Arc::new(Issued::default());
        let normal = user(fixture("create-delete"));
        let create = stalled_create();
        let (phase, phases) = watch::channel(window(1, Some(rm::WindowKind::Baseline)));
        let (sink, updates) = mpsc::unbounded_channel();
        let metrics = Arc::new(RunMetrics::new());
        let alarms_file = dir.path().join("alarms.jsonl");
        let live = LiveDetectors::spawn(
            both(),
            updates,
            TracerSignals::default(),
            phases,
            labels.clone(),
            &alarms_file,
            metrics.clone(),
        )
        .unwrap();
        normal.iter().for_each(|t| labels.issue(t));
        normal.iter().for_each(|t| labels.finish(&t.id, true));
        for update in event_updates(&normal) {
            sink.send(update).unwrap();
        }
        for transaction in &normal {
            sink.send(Update::Closed(transaction.clone())).unwrap();
        }
        let_it_run().await;
        phase.send(window(1, Some(rm::WindowKind::Fault))).unwrap();
        labels.issue(&create);
        for update in event_updates(std::slice::from_ref(&create)) {
            sink.send(update).unwrap();
        }
        let_it_run().await;
        // The fingerprint alarm fires when the transaction closes; the file has it already.
        sink.send(Update::Closed(create.clone())).unwrap();
        let_it_run().await;
        let written = std::fs::read_to_string(&alarms_file).unwrap();
        assert!(
            written
                .lines()
                .map(|line| serde_json::from_str::<rm::Alarm>(line).unwrap())
                .any(|alarm| alarm.detector == "fp"
                    && alarm.transaction.as_deref() == Some(create.id.as_str())),
            "{written}"
        );
        drop(sink);
        let detected = live.finish().await.unwrap();
        let written = std::fs::read_to_string(&alarms_file).unwrap();
        assert_eq!(written.lines().count(), detected.alarms.len());
        let textfile = dir.path().join("metrics.prom");
        metrics.write_textfile(&textfile).unwrap();
        let text = std::fs::read_to_string(textfile).unwrap();
        let fingerprint_alarms = detected
            .alarms
            .iter()
            .filter(|a| a.detector == "fp")
            .count();
        assert!(
            text.contains(&format!(
                "butterfly_alarms_total{{detector=\"fp\"}} {fingerprint_alarms}"
            )),
            "{text}"
        );
        assert_eq!(detected.divergences.len(), 1);
    }
}
