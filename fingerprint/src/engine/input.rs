//! The engine's input as a stream: everything it is fed, one serialisable [`Input`] each, so a
//! run's inputs can be recorded (JSON Lines, one input a line) and fed again, to the same engine,
//! offline (`butterfly diagnose --replay`) or rewritten by a synthetic fault pattern.
//!
//! Every input carries the time it was fed (`at_us`, µs since the epoch): the engine's clock.
//! The workload's labels are inputs too ([`Input::Issued`], [`Input::Finished`]): the engine
//! keeps the facts they state (request id → command, and its outcome) in a [`LabelBook`] of its
//! own, instead of asking the workload at call time, so a recorded stream holds all it decides on.
//! [`EngineSetup`] is what the stream does not say: the detectors' names, the inventory's roles,
//! the workload's `User-Agent`; with the store it started from, it rebuilds the engine.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tracer::event::{Event, Transaction};
use tracer::rest::RestStart;

use super::{Engine, Function, Labels, Phase, Roles, ServiceRole};
use crate::alarm::Alarm;
use crate::error::Error;
use crate::store::Store;

/// One thing the engine is fed, at the time `at_us` it was fed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "input", rename_all = "snake_case", deny_unknown_fields)]
pub enum Input {
    /// The run entered a phase.
    Phase {
        /// When.
        at_us: i64,
        /// Repetitions begun and the window in progress.
        phase: Phase,
    },
    /// The workload issued request `request_id` for `command` (before any of its events).
    Issued {
        /// When.
        at_us: i64,
        /// The global request id, which names the transaction.
        request_id: String,
        /// The command, as campaigns write it (`server create`).
        command: String,
    },
    /// The workload withdrew a command it had not issued after all.
    Withdrawn {
        /// When.
        at_us: i64,
        /// Its request id.
        request_id: String,
    },
    /// The workload's command of `request_id` finished.
    Finished {
        /// When.
        at_us: i64,
        /// Its request id.
        request_id: String,
        /// Whether it succeeded.
        succeeded: bool,
    },
    /// A REST request of `transaction` reached a proxy and awaits its answer.
    Started {
        /// When.
        at_us: i64,
        /// The transaction it belongs to.
        transaction: String,
        /// The request.
        request: Box<RestStart>,
    },
    /// An event joined transaction `transaction`.
    Event {
        /// When.
        at_us: i64,
        /// The transaction it joined.
        transaction: String,
        /// The event.
        event: Box<Event>,
    },
    /// A transaction closed (the stitcher's view is complete).
    Closed {
        /// When.
        at_us: i64,
        /// The transaction.
        transaction: Box<Transaction>,
    },
    /// The AMQP capture lost the broker (`lost_since`) or consumes again (`None`).
    BrokerLink {
        /// When.
        at_us: i64,
        /// Since when it is lost, while it is.
        lost_since: Option<i64>,
    },
    /// A REST record stream reconnected at `resumed_us`.
    RestResumed {
        /// When it was fed.
        at_us: i64,
        /// When the stream reconnected.
        resumed_us: i64,
    },
    /// The clock advanced.
    Tick {
        /// The time.
        at_us: i64,
    },
}

impl Input {
    /// When it was fed: the engine's clock.
    pub fn at_us(&self) -> i64 {
        match self {
            Input::Phase { at_us, .. }
            | Input::Issued { at_us, .. }
            | Input::Withdrawn { at_us, .. }
            | Input::Finished { at_us, .. }
            | Input::Started { at_us, .. }
            | Input::Event { at_us, .. }
            | Input::Closed { at_us, .. }
            | Input::BrokerLink { at_us, .. }
            | Input::RestResumed { at_us, .. }
            | Input::Tick { at_us } => *at_us,
        }
    }

    /// The same input fed at `at_us` instead.
    pub fn at(mut self, at: i64) -> Input {
        match &mut self {
            Input::Phase { at_us, .. }
            | Input::Issued { at_us, .. }
            | Input::Withdrawn { at_us, .. }
            | Input::Finished { at_us, .. }
            | Input::Started { at_us, .. }
            | Input::Event { at_us, .. }
            | Input::Closed { at_us, .. }
            | Input::BrokerLink { at_us, .. }
            | Input::RestResumed { at_us, .. }
            | Input::Tick { at_us } => *at_us = at,
        }
        self
    }
}

/// How long the book keeps a finished command's label: far longer than any transaction stays
/// open after its command finished (the stitcher's idle timeout is seconds), so the book stays
/// bounded on a long run without forgetting a label still asked for.
const LABEL_KEPT_US: i64 = 3_600_000_000;

/// The workload's labels as the engine was told them: request id → command and outcome.
#[derive(Debug, Clone, Default)]
pub struct LabelBook {
    labels: HashMap<String, Label>,
    /// When finished labels were last forgotten.
    pruned_us: i64,
}

#[derive(Debug, Clone)]
struct Label {
    command: String,
    /// When it finished and whether it succeeded.
    finished: Option<(i64, bool)>,
}

impl LabelBook {
    /// Request `id` was issued for `command`.
    pub fn issued(&mut self, id: &str, command: &str) {
        self.labels.insert(
            id.to_owned(),
            Label {
                command: command.to_owned(),
                finished: None,
            },
        );
    }

    /// Request `id` was withdrawn.
    pub fn withdrawn(&mut self, id: &str) {
        self.labels.remove(id);
    }

    /// Request `id`'s command finished at `at_us`.
    pub fn finished(&mut self, id: &str, succeeded: bool, at_us: i64) {
        if let Some(label) = self.labels.get_mut(id) {
            label.finished = Some((at_us, succeeded));
        }
    }

    /// Forgets the labels of commands finished long before `now_us` (once a minute at most).
    pub fn prune(&mut self, now_us: i64) {
        if now_us.saturating_sub(self.pruned_us) < 60_000_000 {
            return;
        }
        self.pruned_us = now_us;
        self.labels.retain(|_, label| {
            label
                .finished
                .is_none_or(|(at, _)| now_us.saturating_sub(at) < LABEL_KEPT_US)
        });
    }

    /// How many labels it holds.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

impl Labels for LabelBook {
    fn command(&self, id: &str) -> Option<String> {
        self.labels.get(id).map(|label| label.command.clone())
    }

    fn succeeded(&self, id: &str) -> Option<bool> {
        self.labels.get(id)?.finished.map(|(_, ok)| ok)
    }
}

/// Labels that know nothing: the engine's own book is all a fed stream says.
pub(super) struct NoLabels;

impl Labels for NoLabels {
    fn command(&self, _: &str) -> Option<String> {
        None
    }

    fn succeeded(&self, _: &str) -> Option<bool> {
        None
    }
}

impl Engine {
    /// Feeds one input at its time; returns the alarms it raised. Labels come from the stream
    /// ([`Input::Issued`], [`Input::Finished`]) only.
    pub fn feed(&mut self, input: &Input) -> Vec<Alarm> {
        match input {
            Input::Phase { phase, .. } => {
                self.phase(*phase);
                Vec::new()
            }
            Input::Issued {
                request_id,
                command,
                ..
            } => {
                self.book.issued(request_id, command);
                Vec::new()
            }
            Input::Withdrawn { request_id, .. } => {
                self.book.withdrawn(request_id);
                Vec::new()
            }
            Input::Finished {
                at_us,
                request_id,
                succeeded,
            } => {
                self.book.finished(request_id, *succeeded, *at_us);
                Vec::new()
            }
            Input::Started {
                transaction,
                request,
                ..
            } => {
                self.started(transaction, request, &NoLabels);
                Vec::new()
            }
            Input::Event {
                at_us,
                transaction,
                event,
            } => {
                self.event(transaction, event, *at_us, &NoLabels);
                Vec::new()
            }
            Input::Closed { at_us, transaction } => self.closed(transaction, *at_us, &NoLabels),
            Input::BrokerLink { at_us, lost_since } => {
                self.broker_link(*lost_since, *at_us);
                Vec::new()
            }
            Input::RestResumed { resumed_us, .. } => {
                self.rest_stream_resumed(*resumed_us);
                Vec::new()
            }
            Input::Tick { at_us } => {
                self.book.prune(*at_us);
                self.tick(*at_us, &NoLabels)
            }
        }
    }

    /// `input` as a recording needs it to feed this engine again, before it is fed: a closed
    /// transaction's events (all fed already, one by one) only when the engine will still judge
    /// it, which is what it reads them for. Halves a run's recording.
    pub fn to_record(&self, input: &Input) -> Option<Input> {
        match input {
            Input::Closed { at_us, transaction }
                if !self
                    .followed
                    .get(&transaction.id)
                    .is_some_and(|followed| !followed.done) =>
            {
                Some(Input::Closed {
                    at_us: *at_us,
                    transaction: Box::new(Transaction {
                        id: transaction.id.clone(),
                        command: transaction.command.clone(),
                        background: transaction.background,
                        events: Vec::new(),
                        edges: Vec::new(),
                    }),
                })
            }
            _ => None,
        }
    }

    /// What rebuilds this engine with the store it started from (see [`EngineSetup::engine`]).
    pub fn setup(&self) -> EngineSetup {
        EngineSetup {
            fingerprint: self.fingerprint.clone(),
            timeout: self.timeout.clone(),
            workload_agent: self.workload_agent.clone(),
            roles: self
                .roles
                .services
                .iter()
                .map(|role| RoleSetup {
                    service: role.service.clone(),
                    function: role.function,
                    hosts: role.hosts.clone(),
                })
                .collect(),
        }
    }
}

/// What an engine is built with besides its store: the detectors' names, the workload's
/// `User-Agent` and the inventory's roles. A run writes it beside its recorded inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSetup {
    /// The fingerprint detector's name, if the campaign has one.
    pub fingerprint: Option<String>,
    /// The timeout detector's name, if the campaign has one.
    pub timeout: Option<String>,
    /// The `User-Agent` of the workload's requests.
    pub workload_agent: Option<String>,
    /// The inventory's services with their functions and hosts.
    pub roles: Vec<RoleSetup>,
}

/// One service of [`EngineSetup::roles`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSetup {
    /// Its name.
    pub service: String,
    /// What it does.
    pub function: Option<Function>,
    /// Its hosts.
    pub hosts: Vec<String>,
}

impl EngineSetup {
    /// The engine this setup describes, starting from `store`; `None` when it names no detector.
    pub fn engine(&self, store: Store) -> Option<Engine> {
        let roles = Roles::new(
            self.roles
                .iter()
                .map(|role| ServiceRole {
                    service: role.service.clone(),
                    function: role.function,
                    hosts: role.hosts.clone(),
                })
                .collect(),
        );
        let engine = Engine::seeded(self.fingerprint.clone(), self.timeout.clone(), store)?
            .with_roles(roles);
        Some(match &self.workload_agent {
            Some(agent) => engine.with_workload_agent(agent.clone()),
            None => engine,
        })
    }

    /// The detector names the engine raises alarms under.
    pub fn detectors(&self) -> Vec<String> {
        self.fingerprint
            .iter()
            .chain(&self.timeout)
            .cloned()
            .collect()
    }
}

/// How a replay's alarms compare with the live ones.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AlarmComparison {
    /// Pairs that agree: same detector, transaction and first suspect, times within the
    /// resolution. (live, replayed)
    pub matched: Vec<(Alarm, Alarm)>,
    /// Live alarms the replay did not raise.
    pub live_only: Vec<Alarm>,
    /// Alarms the replay raised that the run did not.
    pub replay_only: Vec<Alarm>,
    /// The largest time difference of a matched pair, µs.
    pub max_shift_us: i64,
}

impl AlarmComparison {
    /// Whether the replay raised exactly the live alarms.
    pub fn same(&self) -> bool {
        self.live_only.is_empty() && self.replay_only.is_empty()
    }
}

/// Pairs `live` and `replayed` alarms: same detector, same transaction, same first suspect
/// (service and host), raised within `resolution_us` of each other. Each alarm pairs at most once,
/// with the nearest in time.
pub fn compare_alarms(live: &[Alarm], replayed: &[Alarm], resolution_us: i64) -> AlarmComparison {
    let key = |alarm: &Alarm| {
        (
            alarm.detector.clone(),
            alarm.transaction.clone(),
            alarm
                .suspects
                .first()
                .map(|suspect| (suspect.service.clone(), suspect.host.clone())),
        )
    };
    let mut left: Vec<Option<&Alarm>> = replayed.iter().map(Some).collect();
    let mut comparison = AlarmComparison::default();
    for alarm in live {
        let wanted = key(alarm);
        let nearest = left
            .iter()
            .enumerate()
            .filter_map(|(index, candidate)| Some((index, (*candidate)?)))
            .filter(|(_, candidate)| {
                (candidate.ts_us - alarm.ts_us).abs() <= resolution_us && key(candidate) == wanted
            })
            .min_by_key(|(_, candidate)| (candidate.ts_us - alarm.ts_us).abs())
            .map(|(index, _)| index);
        match nearest {
            Some(index) => {
                let replayed = left[index].take().expect("still left");
                comparison.max_shift_us = comparison
                    .max_shift_us
                    .max((replayed.ts_us - alarm.ts_us).abs());
                comparison.matched.push((alarm.clone(), replayed.clone()));
            }
            None => comparison.live_only.push(alarm.clone()),
        }
    }
    comparison.replay_only = left.into_iter().flatten().cloned().collect();
    comparison
}

/// Reads a recorded input stream (one [`Input`] a line, as the runner writes it), bounded as a
/// trace file. Blank lines are none; a line that does not parse is an error at its line.
pub fn read_inputs(path: &Path) -> Result<Vec<Input>, Error> {
    let kind = userinput::file::FileKind::TRACE;
    let mut inputs = Vec::new();
    for line in userinput::file::lines(path, kind)? {
        let (number, line) = line?;
        if line.trim().is_empty() {
            continue;
        }
        let input = serde_json::from_str(&line).map_err(|source| Error::Json {
            path: path.to_owned(),
            line: number,
            column: source.column(),
            source,
        })?;
        inputs.push(input);
    }
    Ok(inputs)
}

/// Reads a run's engine setup (`engine.json`).
pub fn read_setup(path: &Path) -> Result<EngineSetup, Error> {
    let text = userinput::file::read_to_string(path, userinput::file::FileKind::ENGINE_SETUP)?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_owned(),
        line: source.line(),
        column: source.column(),
        source,
    })
}
