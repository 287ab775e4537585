//! The engine's rules on transactions recorded from a real OpenStack, streamed with a clock.

use super::*;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// The `User-Agent` the workload of these tests sends.
const USER_AGENT: &str = "butterfly/test (workload)";

/// How often the tests tick the engine, as the runner does.
const POLL_US: i64 = 100_000;

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
        .join("tests/fixtures")
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

fn window(repetition: usize, window: Option<WindowKind>) -> Phase {
    Phase { repetition, window }
}

/// Feeds the transactions' events in time order as if each arrived at its own timestamp,
/// ticking every 100 ms in between; returns the alarms with the clock at the end.
fn stream(
    detectors: &mut Engine,
    labels: &Issued,
    transactions: &[Transaction],
    until_us: i64,
) -> Vec<Alarm> {
    let mut events: Vec<(&str, &Event)> = transactions
        .iter()
        .flat_map(|t| t.events.iter().map(move |e| (t.id.as_str(), e)))
        .collect();
    events.sort_by_key(|(_, e)| (e.ts_us, e.seq));
    let mut alarms = Vec::new();
    let mut clock = events[0].1.ts_us;
    for (transaction, event) in events {
        while clock + POLL_US <= event.ts_us {
            clock += POLL_US;
            alarms.extend(detectors.tick(clock, labels));
        }
        detectors.event(transaction, event, event.ts_us, labels);
    }
    while clock < until_us {
        clock += POLL_US;
        alarms.extend(detectors.tick(clock, labels));
    }
    alarms
}

/// Issues `transaction` and streams it until it has settled (a second after).
fn stream_until_settled(
    detectors: &mut Engine,
    labels: &Issued,
    transaction: &Transaction,
) -> Vec<Alarm> {
    labels.issue(transaction);
    let last = transaction.events.iter().map(|e| e.ts_us).max().unwrap();
    stream(
        detectors,
        labels,
        std::slice::from_ref(transaction),
        last + SETTLE_US + 1_000_000,
    )
}

/// A roles table of `(service, function, host)`.
fn roles(services: &[(&str, Function, &str)]) -> Roles {
    Roles::new(
        services
            .iter()
            .map(|&(service, function, host)| ServiceRole {
                service: service.to_owned(),
                function: Some(function),
                hosts: vec![host.to_owned()],
            })
            .collect(),
    )
}

fn both() -> Engine {
    Engine::new(Some("fp".into()), Some("late".into()))
        .expect("detectors")
        .with_workload_agent(USER_AGENT)
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

    detectors.phase(window(1, Some(WindowKind::Baseline)));
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

    detectors.phase(window(1, Some(WindowKind::Fault)));
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
    let fingerprint: Vec<&Alarm> = alarms.iter().filter(|a| a.detector == "fp").collect();
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
    assert_eq!(columns[cast + 1].0, AlignOp::Delete);
    let first_in_layout = columns.iter().position(|c| c.0 != AlignOp::Match).unwrap();
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
    detectors: &mut Engine,
    during: impl FnOnce(&mut Engine, i64),
) -> Vec<Alarm> {
    let labels = Issued::default();
    let normal = user(fixture("create-delete"));
    normal.iter().for_each(|t| labels.issue(t));
    normal.iter().for_each(|t| labels.finish(&t.id, true));
    detectors.phase(window(1, Some(WindowKind::Baseline)));
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
    detectors: &mut Engine,
    labels: &Issued,
    during: impl FnOnce(&mut Engine, i64),
) -> Vec<Alarm> {
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
    detectors.phase(window(1, Some(WindowKind::Fault)));
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
fn a_stall_during_a_lost_broker_names_the_broker_first() {
    let mut detectors = both().with_roles(roles(&[("rabbitmq", Function::Broker, "controller")]));
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

    let mut detectors = both().with_roles(roles(&[("rabbitmq", Function::Broker, "controller")]));
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
fn learned_with_shared_dependencies(labels: &Issued) -> (Engine, Vec<Transaction>, i64) {
    let normal = user(fixture("create-delete"));
    let mut detectors = both().with_roles(roles(&[
        ("nova-api", Function::Api, "controller"),
        ("glance-api", Function::Api, "controller"),
        ("placement-api", Function::Api, "controller"),
        ("neutron-api", Function::Api, "controller"),
        ("rabbitmq", Function::Broker, "controller"),
        ("mariadb", Function::Database, "controller"),
    ]));
    detectors.phase(window(1, Some(WindowKind::Baseline)));
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
fn an_api_stalled_on_a_request_while_answering_others_names_the_database() {
    let run = |others_answered: bool| -> Vec<Alarm> {
        let labels = Issued::default();
        let (mut detectors, normal, _) = learned_with_shared_dependencies(&labels);

        // The create as seen while nova-api waits inside `POST /servers`: only the calls it
        // made to glance-api came back.
        detectors.phase(window(1, Some(WindowKind::Fault)));
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
fn alarms_for_an_unanswered_create(glance: bool, others: bool) -> Vec<Alarm> {
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
) -> Vec<Alarm> {
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

    detectors.phase(window(1, Some(WindowKind::Fault)));
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
fn requests_whose_answers_a_dropped_stream_lost_are_not_timed() {
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
fn a_request_hanging_inside_the_users_names_the_service_serving_it() {
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
fn an_unanswered_entry_names_the_database_only_while_the_api_answers_others() {
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
fn a_service_stuck_elsewhere_comes_before_the_database() {
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
fn two_services_stalled_at_once_name_the_database() {
    let run = |api_stalled: bool, broker_busy: bool| -> Vec<Alarm> {
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
        let about_the_create: Vec<&Alarm> = alarms
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
fn a_service_with_calls_unanswered_past_their_bound_comes_first() {
    #[derive(Clone, Copy, PartialEq)]
    enum Beside {
        Unanswered,
        Answered,
        UnansweredBesideARestRequest,
    }
    let run = |beside: Beside| -> Vec<Alarm> {
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
    let about_the_create = |alarms: &[Alarm], detector: &str| -> Alarm {
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
fn a_request_unanswered_inside_the_transaction_names_its_service() {
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
    detectors.phase(window(1, Some(WindowKind::Fault)));
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
            .find(|e| e.kind == EventKind::RpcCall && e.operation.contains("select_destinations"))
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
        while clock + POLL_US <= event.ts_us {
            clock += POLL_US;
            alarms.extend(detectors.tick(clock, &labels));
        }
        detectors.event(&create.id, event, event.ts_us, &labels);
    }
    while clock < until {
        clock += POLL_US;
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
    detectors.phase(window(1, Some(WindowKind::Baseline)));
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
    detectors.phase(window(1, Some(WindowKind::Baseline)));
    begun.events = rest;
    stream(&mut detectors, &labels, std::slice::from_ref(&begun), 0);
    assert!(detectors.followed.is_empty(), "followed half-way");
    // Once it has closed, its id is forgotten.
    assert!(detectors.closed(&begun, 0, &labels).is_empty());
    assert!(!detectors.outside.contains(&begun.id));
    detectors.phase(window(1, None));
    // A baseline: unlabelled ones (not issued by the workload) are not followed either.
    detectors.phase(window(2, Some(WindowKind::Baseline)));
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
fn baseline_transactions_are_watched_so_that_false_alarms_can_count() {
    let labels = Issued::default();
    let (mut detectors, _, _) = learned_with_shared_dependencies(&labels);
    let runs = detectors.store.commands["server create"].runs;
    detectors.phase(window(2, Some(WindowKind::Baseline)));
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
    detectors.phase(window(1, Some(WindowKind::Baseline)));
    normal.iter().for_each(|t| labels.issue(t));
    normal.iter().for_each(|t| labels.finish(&t.id, true));
    let end = normal.iter().flat_map(|t| &t.events).map(|e| e.ts_us).max();
    stream(&mut detectors, &labels, &normal, end.unwrap() + SETTLE_US);
    detectors.phase(window(1, Some(WindowKind::Recovery)));
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
        clock += POLL_US;
        alarms.extend(detectors.tick(clock, &labels));
    }
    // Its remaining events, in the next baseline, neither alarm nor teach.
    detectors.phase(window(2, Some(WindowKind::Baseline)));
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

/// What `butterfly fingerprint learn --from-run` makes of a run where nova-compute was
/// stopped: the normal runs as positives, the whole create under the fault as a negative.
fn compute_stop_store() -> Store {
    let mut store = Store::default();
    for transaction in fixture("create-delete") {
        store.learn_positive(&transaction);
    }
    let create = stalled_create();
    let label = crate::FaultLabel {
        fault_kind: "service-stop".to_owned(),
        service: "nova-compute".to_owned(),
        host: Some("osbed".to_owned()),
    };
    store.learn_negative(&create, &label);
    store
}

#[test]
fn a_seeded_store_classifies_a_fault_window_transaction_and_still_learns_the_baseline() {
    let mut detectors =
        Engine::seeded(Some("fp".into()), Some("late".into()), compute_stop_store())
            .expect("detectors");
    assert_eq!(detectors.store.negatives.len(), 1);
    assert_eq!(detectors.store.commands["server create"].runs, 1);

    // Baseline runs add to the seeded positives.
    let labels = Issued::default();
    let normal = user(fixture("create-delete"));
    detectors.phase(window(1, Some(WindowKind::Baseline)));
    normal.iter().for_each(|t| labels.issue(t));
    normal.iter().for_each(|t| labels.finish(&t.id, true));
    let end = normal.iter().flat_map(|t| &t.events).map(|e| e.ts_us).max();
    stream(&mut detectors, &labels, &normal, end.unwrap() + SETTLE_US);
    assert_eq!(detectors.store.commands["server create"].runs, 2);
    assert_eq!(detectors.store.negatives.len(), 1);

    // Under the fault, the create stalls after the cast to nova-compute: it is diagnosed
    // once it goes quiet, cut short, and still recognized as the known fault.
    let create = stalled_create();
    detectors.phase(window(1, Some(WindowKind::Fault)));
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
    let fingerprint: Vec<&Alarm> = alarms.iter().filter(|a| a.detector == "fp").collect();
    assert_eq!(fingerprint.len(), 1, "{alarms:?}");
    assert_eq!(fingerprint[0].fault_kind.as_deref(), Some("service-stop"));
    assert!(
        fingerprint[0]
            .evidence
            .iter()
            .any(|e| e.starts_with("nearest known fault: service-stop of nova-compute on osbed")),
        "{:?}",
        fingerprint[0].evidence
    );
    assert_eq!(fingerprint[0].suspects[0].service, "nova-compute");
}

#[test]
fn an_unseeded_fingerprint_alarm_names_no_fault_kind() {
    // The same stalled create against fingerprints learned from the baseline only: there is
    // no known fault to name.
    let mut detectors = Engine::new(Some("fp".into()), None).expect("detectors");
    assert!(detectors.timeout.is_none());
    let labels = Issued::default();
    let normal = user(fixture("create-delete"));
    detectors.phase(window(1, Some(WindowKind::Baseline)));
    normal.iter().for_each(|t| labels.issue(t));
    normal.iter().for_each(|t| labels.finish(&t.id, true));
    let end = normal.iter().flat_map(|t| &t.events).map(|e| e.ts_us).max();
    stream(&mut detectors, &labels, &normal, end.unwrap() + SETTLE_US);
    let mut create = stalled_create();
    let cast = ts_of(&create, "compute.build_and_run_instance");
    create.events.retain(|e| e.ts_us <= cast);
    detectors.phase(window(1, Some(WindowKind::Fault)));
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

/// A copy of `transaction` under another id, `shift_us` later, issued as `command`.
fn reissued(transaction: &Transaction, id: &str, command: &str, shift_us: i64) -> Transaction {
    let mut copy = transaction.clone();
    copy.id = id.to_owned();
    copy.command = Some(command.to_owned());
    for event in &mut copy.events {
        event.ts_us += shift_us;
    }
    copy
}

/// Each workload command is learned into its own positive fingerprint and judged against it
/// alone: a mixed workload (servers, volumes, ports) must not pass a command because its
/// shape is another command's normal one.
#[test]
fn each_command_is_learned_and_judged_by_its_own_positives() {
    let labels = Issued::default();
    let normal = user(fixture("create-delete"));
    let mut detectors = both();
    detectors.phase(window(1, Some(WindowKind::Baseline)));
    normal.iter().for_each(|t| labels.issue(t));
    let end = normal.iter().flat_map(|t| &t.events).map(|e| e.ts_us).max();
    stream(&mut detectors, &labels, &normal, end.unwrap());
    normal.iter().for_each(|t| labels.finish(&t.id, true));
    detectors.tick(end.unwrap() + SETTLE_US, &labels);
    let store = detectors.store();
    let create = &store.commands["server create"];
    let delete = &store.commands["server delete"];
    assert_eq!((create.runs, delete.runs), (1, 1));
    assert_ne!(create.variants[0].symbols, delete.variants[0].symbols);

    detectors.phase(window(1, Some(WindowKind::Fault)));
    let recorded = normal
        .iter()
        .find(|t| t.command.as_deref() == Some("server delete"))
        .unwrap();
    let hour = 3_600_000_000;
    // The recorded delete, issued as a delete again: normal.
    let as_itself = reissued(recorded, "req-delete-again", "server delete", hour);
    let alarms = stream_until_settled(&mut detectors, &labels, &as_itself);
    assert!(
        alarms.iter().all(|a| a.detector != "fp"),
        "a normal delete alarmed: {alarms:?}"
    );
    // The same shape issued as a create: far from every create the baseline taught.
    let as_create = reissued(recorded, "req-delete-as-create", "server create", 2 * hour);
    let alarms = stream_until_settled(&mut detectors, &labels, &as_create);
    let fingerprint: Vec<&Alarm> = alarms.iter().filter(|a| a.detector == "fp").collect();
    assert_eq!(fingerprint.len(), 1, "{alarms:?}");
    assert_eq!(
        fingerprint[0].transaction.as_deref(),
        Some("req-delete-as-create")
    );
}
