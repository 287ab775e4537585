//! The watch on transactions recorded from a real OpenStack, streamed as a proxy and a firehose
//! deliver them: a REST exchange arrives once answered.

use super::*;

use std::path::Path;

use tracer::event::Source;
use tracer::stitch::build_transaction;

use crate::engine::SETTLE_US;

const POLL_US: i64 = 100_000;

fn fixture(name: &str) -> Vec<Transaction> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .join("transactions.json");
    tracer::import::read_transactions(&path).expect("fixture reads")
}

fn command<'a>(transactions: &'a [Transaction], name: &str) -> &'a Transaction {
    transactions
        .iter()
        .find(|t| t.command.as_deref() == Some(name))
        .unwrap()
}

/// Positives learned from the fault-free create and delete.
fn learned() -> Store {
    let mut store = Store::default();
    for transaction in fixture("create-delete") {
        if transaction.command.is_some() && !transaction.background {
            store.learn_positive(&transaction);
        }
    }
    store
}

fn watch(store: Store, config: WatchConfig) -> Watch {
    let engine = Engine::seeded(Some("fp".into()), Some("late".into()), store).unwrap();
    Watch::new(engine, config)
}

/// When an event reaches the watch: a REST exchange when it was answered, a message when sent.
fn arrival(event: &Event) -> i64 {
    match event.kind {
        EventKind::RestRequest => event
            .ts_us
            .saturating_add(i64::try_from(event.duration_us.unwrap_or(0)).unwrap_or(0)),
        _ => event.ts_us,
    }
}

/// Streams every event of `transactions` in arrival order with the command labels the workload
/// gave removed (production has none), ticking every 100 ms, and closes each transaction once
/// idle for the stitcher's timeout; returns the alarms.
fn stream(watch: &mut Watch, transactions: &[Transaction]) -> Vec<Raised> {
    let mut events: Vec<(&str, &Event)> = transactions
        .iter()
        .flat_map(|t| t.events.iter().map(move |e| (t.id.as_str(), e)))
        .collect();
    events.sort_by_key(|(_, e)| (arrival(e), e.seq));
    let last: HashMap<&str, i64> = transactions
        .iter()
        .map(|t| (t.id.as_str(), t.events.iter().map(arrival).max().unwrap()))
        .collect();
    let mut closed: Vec<&str> = Vec::new();
    let mut alarms = Vec::new();
    let mut clock = arrival(events[0].1);
    let idle = 30_000_000;
    let mut close_due = |watch: &mut Watch, clock: i64, alarms: &mut Vec<Raised>| {
        for transaction in transactions {
            let id = transaction.id.as_str();
            if !closed.contains(&id) && clock >= last[id] + idle {
                closed.push(id);
                let mut seen =
                    build_transaction(transaction.id.clone(), transaction.events.clone());
                seen.command = None;
                alarms.extend(watch.closed(&seen, clock));
            }
        }
    };
    for (transaction, event) in events {
        while clock + POLL_US <= arrival(event) {
            clock += POLL_US;
            alarms.extend(watch.tick(clock));
            close_due(watch, clock, &mut alarms);
        }
        watch.event(transaction, event, arrival(event));
    }
    let end = clock + 31_000_000;
    while clock < end {
        clock += POLL_US;
        alarms.extend(watch.tick(clock));
        close_due(watch, clock, &mut alarms);
    }
    alarms
}

#[test]
fn the_store_s_commands_are_labelled_by_their_entry_route_without_its_status() {
    let routes = Routes::of_store(&learned());
    let table: Vec<(&str, &str)> = routes.iter().collect();
    assert_eq!(
        table,
        [
            ("nova-api:DELETE /v2.1/servers/{id}", "server delete"),
            ("nova-api:POST /v2.1/servers", "server create"),
        ]
    );
    assert_eq!(
        routes.command(
            "nova-api",
            "DELETE /v2.1/servers/3cf6d929-3aa8-471b-a066-9c52d409c54f"
        ),
        Some("server delete")
    );
    // Another service's route, or a poll of the server, starts no command.
    assert_eq!(routes.command("glance-api", "POST /v2.1/servers"), None);
    assert_eq!(
        routes.command(
            "nova-api",
            "GET /v2.1/servers/3cf6d929-3aa8-471b-a066-9c52d409c54f"
        ),
        None
    );
    assert!(routes.ambiguous().is_empty());
}

#[test]
fn a_route_two_commands_start_with_labels_the_one_learned_most_and_is_listed() {
    let mut store = learned();
    let mut create = command(&fixture("create-delete"), "server create").clone();
    create.command = Some("server create --wait".into());
    store.learn_positive(&create);
    store.learn_positive(&create);
    let routes = Routes::of_store(&store);
    assert_eq!(
        routes.command("nova-api", "POST /v2.1/servers"),
        Some("server create --wait")
    );
    assert_eq!(
        routes.ambiguous()["nova-api:POST /v2.1/servers"],
        ["server create --wait", "server create"]
    );
}

#[test]
fn normal_traffic_raises_no_alarm_and_only_users_commands_are_judged() {
    let mut watch = watch(learned(), WatchConfig::default());
    let traffic = fixture("create-delete");
    let alarms = stream(&mut watch, &traffic);
    assert!(alarms.is_empty(), "{alarms:?}");
    let counters = watch.counters();
    assert_eq!(counters.judged, 2, "{counters:?}");
    assert_eq!(counters.succeeded, 2, "{counters:?}");
    // Every other transaction is counted by why it is not judged.
    assert_eq!(
        counters.judged + counters.background + counters.not_user + counters.unknown_route,
        traffic.len() as u64,
        "{counters:?}"
    );
    assert!(
        counters.unknown_route > 0,
        "polls and token checks: {counters:?}"
    );
    assert_eq!(watch.open_transactions(), 0);
    assert_eq!(watch.held_transactions(), 0);
}

#[test]
fn a_create_stalled_at_a_stopped_compute_raises_alarms_labelled_with_its_command() {
    let mut watch = watch(learned(), WatchConfig::default());
    let faulty = fixture("compute-down");
    let create = command(&faulty, "server create").clone();
    let alarms = stream(&mut watch, &faulty);
    let about_create: Vec<&Raised> = alarms
        .iter()
        .filter(|r| r.alarm.transaction.as_deref() == Some(create.id.as_str()))
        .collect();
    assert!(!about_create.is_empty(), "{alarms:?}");
    for raised in &about_create {
        assert_eq!(raised.command.as_deref(), Some("server create"));
    }
    let fingerprint = about_create
        .iter()
        .find(|r| r.alarm.detector == "fp")
        .expect("a fingerprint alarm");
    assert_eq!(fingerprint.alarm.suspects[0].service, "nova-compute");
}

#[test]
fn background_traffic_is_never_judged() {
    let mut watch = watch(learned(), WatchConfig::default());
    let idle = fixture("startup-idle");
    let alarms = stream(&mut watch, &idle);
    assert!(alarms.is_empty(), "{alarms:?}");
    let counters = watch.counters();
    assert_eq!(counters.judged, 0, "{counters:?}");
    assert_eq!(
        counters.background + counters.not_user,
        idle.len() as u64,
        "{counters:?}"
    );
}

/// An RPC event of a transaction with no REST request (a periodic task).
fn periodic(id: &str, n: u64) -> Event {
    Event {
        seq: n,
        ts_us: 1_000_000 + n as i64,
        source: Source::Amqp,
        kind: EventKind::RpcCast,
        service: Some("nova-conductor".into()),
        host: None,
        caller: None,
        operation: "conductor.object_class_action_versions".into(),
        target: None,
        outcome: None,
        duration_us: None,
        ids: tracer::event::EventIds {
            request_id: Some(id.into()),
            ..Default::default()
        },
        attrs: Default::default(),
    }
}

#[test]
fn a_transaction_without_a_users_request_is_held_only_up_to_the_cap_and_counted() {
    let config = WatchConfig {
        max_held_events: 10,
        ..WatchConfig::default()
    };
    let mut watch = watch(learned(), config);
    let events: Vec<Event> = (1..=50).map(|n| periodic("req-periodic", n)).collect();
    for event in &events {
        watch.event("req-periodic", event, event.ts_us);
    }
    assert_eq!(watch.counters().dropped_events, 11);
    assert_eq!(watch.held_transactions(), 1);
    let transaction = build_transaction("req-periodic".into(), events);
    assert!(watch.closed(&transaction, 2_000_000).is_empty());
    assert_eq!(watch.held_transactions(), 0);
    // RPC-only, so the stitcher calls it background.
    assert_eq!(watch.counters().background, 1);
    assert_eq!(watch.counters().judged, 0);
}

#[test]
fn transactions_past_the_open_cap_are_refused_and_counted() {
    let config = WatchConfig {
        max_open: 3,
        ..WatchConfig::default()
    };
    let mut watch = watch(learned(), config);
    for n in 0..5 {
        let id = format!("req-{n}");
        watch.event(&id, &periodic(&id, n), 1_000_000);
    }
    assert_eq!(watch.held_transactions(), 3);
    assert_eq!(watch.counters().refused_inputs, 2);
}

/// The create of `create-delete` again, later and under another request id.
fn another_create(shift_us: i64, id: &str) -> Transaction {
    let mut create = command(&fixture("create-delete"), "server create").clone();
    let old = create.id.clone();
    create.id = id.to_owned();
    for event in &mut create.events {
        event.ts_us += shift_us;
        for slot in [&mut event.ids.global_request_id, &mut event.ids.request_id] {
            if slot.as_deref() == Some(old.as_str()) {
                *slot = Some(id.to_owned());
            }
        }
    }
    create
}

#[test]
fn learning_refines_the_positives_from_successful_transactions_only() {
    let store = learned();
    let runs = store.commands["server create"].runs;
    let mut learning = watch(
        store.clone(),
        WatchConfig {
            learn: true,
            ..WatchConfig::default()
        },
    );
    let alarms = stream(&mut learning, &[another_create(3_600_000_000, "req-again")]);
    assert!(alarms.is_empty(), "{alarms:?}");
    assert_eq!(learning.store().commands["server create"].runs, runs + 1);

    // A create that failed (its entry answered 500) is judged but not learned from.
    let mut failed = another_create(7_200_000_000, "req-failed");
    let entry = failed
        .events
        .iter_mut()
        .find(|e| e.operation == "POST /v2.1/servers")
        .unwrap();
    entry.outcome = Some(Outcome::Http { status: 500 });
    stream(&mut learning, &[failed]);
    assert_eq!(learning.counters().judged, 2);
    assert_eq!(learning.counters().succeeded, 1);
    assert_eq!(learning.store().commands["server create"].runs, runs + 1);

    // Without `learn`, nothing is learned.
    let mut watching = watch(store, WatchConfig::default());
    stream(&mut watching, &[another_create(3_600_000_000, "req-again")]);
    assert_eq!(watching.store().commands["server create"].runs, runs);
}

#[test]
fn learning_stops_once_the_store_holds_its_cap_of_variants() {
    let store = learned();
    let config = WatchConfig {
        learn: true,
        max_variants: store.variant_count(),
        ..WatchConfig::default()
    };
    let mut full = watch(store.clone(), config);
    assert!(full.counters().learning_stopped);
    stream(&mut full, &[another_create(3_600_000_000, "req-again")]);
    assert_eq!(
        full.store().commands["server create"].runs,
        store.commands["server create"].runs
    );
}

/// Labels known from the first event, as a workload gives them.
struct Known(String, String);

impl Labels for Known {
    fn command(&self, id: &str) -> Option<String> {
        (id == self.0).then(|| self.1.clone())
    }

    fn succeeded(&self, _: &str) -> Option<bool> {
        None
    }
}

#[test]
fn a_transaction_labelled_late_is_judged_as_if_labelled_from_its_first_event() {
    // The create's cast reaches the watch before its `POST` is answered.
    let create = command(&fixture("compute-down"), "server create").clone();
    let entry = create
        .events
        .iter()
        .find(|e| e.operation == "POST /v2.1/servers")
        .unwrap();
    assert!(
        create
            .events
            .iter()
            .any(|e| e.kind != EventKind::RestRequest && arrival(e) < arrival(entry)),
        "the fixture's create has events before its entry is answered"
    );
    let mut watch = watch(learned(), WatchConfig::default());
    let watched: Vec<Alarm> = stream(&mut watch, std::slice::from_ref(&create))
        .into_iter()
        .map(|r| r.alarm)
        .collect();
    assert!(!watched.is_empty());

    // The engine told the command from the start, fed the same arrivals and clock.
    let mut engine = Engine::seeded(Some("fp".into()), Some("late".into()), learned()).unwrap();
    engine.phase(phase(false));
    let labels = Known(create.id.clone(), "server create".into());
    let mut events: Vec<&Event> = create.events.iter().collect();
    events.sort_by_key(|e| (arrival(e), e.seq));
    let mut clock = arrival(events[0]);
    let mut told = Vec::new();
    for event in events {
        while clock + POLL_US <= arrival(event) {
            clock += POLL_US;
            told.extend(engine.tick(clock, &labels));
        }
        engine.event(&create.id, event, arrival(event), &labels);
        if event.operation == "POST /v2.1/servers" {
            engine.entry_answered(&create.id);
        }
    }
    let settled = clock + SETTLE_US + 1_000_000;
    while clock < settled {
        clock += POLL_US;
        told.extend(engine.tick(clock, &labels));
    }
    // The same alarms, each at most the labelling grace later.
    assert_eq!(watched.len(), told.len(), "{watched:?}\n{told:?}");
    for (watched, told) in watched.iter().zip(&told) {
        assert_eq!(
            (&watched.detector, &watched.transaction, &watched.suspects),
            (&told.detector, &told.transaction, &told.suspects)
        );
        let late = watched.ts_us - told.ts_us;
        assert!(
            (0..=WatchConfig::default().label_grace_us).contains(&late),
            "{late} µs late"
        );
    }
}

#[test]
fn a_request_the_api_makes_while_serving_the_user_does_not_label_the_transaction() {
    // The store also knows `image show`, whose entry is the `GET /v2/images/{id}` nova-api makes
    // while serving a create; that nested request is answered (and arrives) first.
    let mut store = learned();
    let mut show = fixture("create-delete")
        .into_iter()
        .find(|t| {
            t.command.is_none()
                && t.events.len() == 1
                && t.events[0].operation.starts_with("GET /v2/images/")
                && t.events[0].operation.len() > "GET /v2/images/".len() + 30
        })
        .unwrap();
    show.command = Some("image show".into());
    store.learn_positive(&show);
    let routes = Routes::of_store(&store);
    assert_eq!(
        routes.command(
            "glance-api",
            "GET /v2/images/c8ce6502-980c-4972-b757-7780f63306be"
        ),
        Some("image show")
    );
    let create = command(&fixture("compute-down"), "server create").clone();
    let first_rest = create
        .events
        .iter()
        .filter(|e| e.kind == EventKind::RestRequest)
        .min_by_key(|e| arrival(e))
        .unwrap();
    assert!(
        first_rest.operation.starts_with("GET /v2/images/"),
        "{first_rest:?}"
    );
    let mut watch = watch(store, WatchConfig::default());
    let alarms = stream(&mut watch, std::slice::from_ref(&create));
    assert!(!alarms.is_empty());
    for raised in &alarms {
        assert_eq!(
            raised.command.as_deref(),
            Some("server create"),
            "{raised:?}"
        );
    }
    let fingerprint = alarms
        .iter()
        .find(|r| r.alarm.detector == "fp")
        .expect("a fingerprint alarm");
    assert_eq!(fingerprint.alarm.suspects[0].service, "nova-compute");
}
