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
                if self
                    .followed
                    .get(&transaction.id)
                    .is_none_or(|followed| followed.done) =>
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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::engine::WindowKind;

    const S: i64 = 1_000_000;

    /// Transactions recorded from a real OpenStack (see `fingerprint/tests/fixtures`), the
    /// workload's only.
    fn user(name: &str) -> Vec<Transaction> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
            .join("transactions.json");
        tracer::import::read_transactions(&path)
            .expect("fixture reads")
            .into_iter()
            .filter(|t| t.command.is_some() && !t.background)
            .collect()
    }

    /// The stream a run would feed: labels first, then the transactions' events in time order
    /// with ticks every 100 ms, closes, the verdicts.
    fn inputs_of(transactions: &[Transaction], ok: bool, from_us: i64) -> Vec<Input> {
        let mut inputs = Vec::new();
        for transaction in transactions {
            inputs.push(Input::Issued {
                at_us: from_us,
                request_id: transaction.id.clone(),
                command: transaction.command.clone().expect("labelled fixture"),
            });
        }
        let mut events: Vec<(&str, &Event)> = transactions
            .iter()
            .flat_map(|t| t.events.iter().map(move |e| (t.id.as_str(), e)))
            .collect();
        events.sort_by_key(|(_, e)| (e.ts_us, e.seq));
        let mut clock = from_us;
        for (transaction, event) in events {
            while clock + S / 10 <= event.ts_us {
                clock += S / 10;
                inputs.push(Input::Tick { at_us: clock });
            }
            inputs.push(Input::Event {
                at_us: event.ts_us.max(clock),
                transaction: transaction.to_owned(),
                event: Box::new(event.clone()),
            });
        }
        for transaction in transactions {
            inputs.push(Input::Finished {
                at_us: clock,
                request_id: transaction.id.clone(),
                succeeded: ok,
            });
        }
        for _ in 0..80 {
            clock += S / 10;
            inputs.push(Input::Tick { at_us: clock });
        }
        for transaction in transactions {
            inputs.push(Input::Closed {
                at_us: clock,
                transaction: Box::new(transaction.clone()),
            });
        }
        inputs
    }

    fn phase(at_us: i64, window: Option<WindowKind>) -> Input {
        Input::Phase {
            at_us,
            phase: Phase {
                repetition: 1,
                window,
            },
        }
    }

    fn engine() -> Engine {
        Engine::new(Some("fp".into()), Some("late".into()))
            .expect("detectors")
            .with_workload_agent("butterfly/test (workload)")
    }

    /// A baseline of normal commands, then the create recorded while nova-compute was down.
    fn run() -> Vec<Input> {
        let normal = user("create-delete");
        let stalled: Vec<Transaction> = user("compute-down")
            .into_iter()
            .filter(|t| t.command.as_deref() == Some("server create"))
            .take(1)
            .collect();
        let start = normal[0].events[0].ts_us - S;
        let mut inputs = vec![phase(start, Some(WindowKind::Baseline))];
        inputs.extend(inputs_of(&normal, true, start));
        let fault = stalled[0].events[0].ts_us - S;
        inputs.push(phase(fault, Some(WindowKind::Fault)));
        inputs.extend(inputs_of(&stalled, false, fault));
        inputs
    }

    #[test]
    fn fed_labels_decide_as_labels_asked_at_call_time_did() {
        let inputs = run();
        let mut fed = engine();
        let by_feed: Vec<Alarm> = inputs.iter().flat_map(|i| fed.feed(i)).collect();
        assert!(
            by_feed.iter().any(|a| a.detector == "fp"),
            "the stalled create alarms: {by_feed:#?}"
        );
        // The same stream through the per-kind methods, labels asked of the caller's book.
        let mut asked = engine();
        let mut book = LabelBook::default();
        let mut by_methods = Vec::new();
        for input in &inputs {
            match input {
                Input::Issued {
                    request_id,
                    command,
                    ..
                } => book.issued(request_id, command),
                Input::Finished {
                    at_us,
                    request_id,
                    succeeded,
                } => book.finished(request_id, *succeeded, *at_us),
                Input::Phase { phase, .. } => asked.phase(*phase),
                Input::Event {
                    at_us,
                    transaction,
                    event,
                } => asked.event(transaction, event, *at_us, &book),
                Input::Tick { at_us } => by_methods.extend(asked.tick(*at_us, &book)),
                Input::Closed { at_us, transaction } => {
                    by_methods.extend(asked.closed(transaction, *at_us, &book));
                }
                other => panic!("not in this stream: {other:?}"),
            }
        }
        assert_eq!(by_feed, by_methods);
    }

    #[test]
    fn an_input_stream_round_trips_through_json_lines() {
        let mut inputs = run();
        let request = RestStart {
            ts_us: 5,
            service: "nova-api".into(),
            upstream_host: Some("controller".into()),
            method: "POST".into(),
            path: "/v2.1/servers".into(),
            global_request_id: Some("req-1".into()),
            user_agent: None,
        };
        inputs.extend([
            Input::Started {
                at_us: 6,
                transaction: "req-1".into(),
                request: Box::new(request),
            },
            Input::BrokerLink {
                at_us: 7,
                lost_since: Some(3),
            },
            Input::BrokerLink {
                at_us: 8,
                lost_since: None,
            },
            Input::RestResumed {
                at_us: 9,
                resumed_us: 9,
            },
            Input::Withdrawn {
                at_us: 10,
                request_id: "req-2".into(),
            },
        ]);
        for input in &inputs {
            let line = serde_json::to_string(input).unwrap();
            assert!(!line.contains('\n'));
            let back: Input = serde_json::from_str(&line).unwrap();
            assert_eq!(&back, input, "{line}");
        }
        let line = serde_json::to_string(&Input::Tick { at_us: 1 }).unwrap();
        assert_eq!(line, r#"{"input":"tick","at_us":1}"#);
        assert!(serde_json::from_str::<Input>(r#"{"input":"tick","at_us":1,"x":2}"#).is_err());
    }

    #[test]
    fn finished_labels_are_forgotten_an_hour_later_and_open_ones_kept() {
        let mut book = LabelBook::default();
        book.issued("done", "server create");
        book.issued("open", "server delete");
        book.finished("done", true, 0);
        book.prune(LABEL_KEPT_US - 1);
        assert_eq!(book.succeeded("done"), Some(true));
        book.prune(2 * LABEL_KEPT_US);
        assert_eq!(book.command("done"), None);
        assert_eq!(book.command("open").as_deref(), Some("server delete"));
        assert_eq!(book.len(), 1);
    }

    #[test]
    fn a_replayed_alarm_matches_by_detector_transaction_first_suspect_and_time() {
        let alarm = |ts_us: i64, service: &str| Alarm {
            ts_us,
            detector: "fp".into(),
            suspects: vec![crate::alarm::Suspect {
                service: service.into(),
                host: None,
                confidence: 1.0,
            }],
            score: 1.0,
            transaction: Some("req-1".into()),
            fault_kind: None,
            evidence: Vec::new(),
        };
        let live = [alarm(1_000, "nova-compute"), alarm(5_000_000, "nova-api")];
        let replayed = [alarm(5_050_000, "nova-api"), alarm(1_000, "nova-conductor")];
        let comparison = compare_alarms(&live, &replayed, 100_000);
        assert_eq!(comparison.matched.len(), 1);
        assert_eq!(comparison.max_shift_us, 50_000);
        assert_eq!(comparison.live_only, [live[0].clone()]);
        assert_eq!(comparison.replay_only, [replayed[1].clone()]);
        assert!(!comparison.same());
        assert!(compare_alarms(&live, &live, 0).same());
        // Too far apart in time is another alarm.
        assert!(!compare_alarms(&live[1..], &replayed[..1], 10_000).same());
    }
}
