//! Learning and diagnosis on traffic recorded from a real OpenStack (see `tests/fixtures/`, built
//! by `examples/import_capture.rs` from the captures of a `server create` + `server delete`, of a
//! `server create` while nova-compute was stopped, and of an idle cloud).

use std::path::Path;
use std::sync::Arc;

use fingerprint::diagnose::Classification;
use fingerprint::{FaultLabel, Learned, Monitor, Status, Store};
use tracer::event::{Event, EventKind, Transaction};
use tracer::rest::RestStart;

fn fixture(name: &str) -> Vec<Transaction> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    tracer::import::read_transactions(&directory.join("transactions.json")).expect("fixture reads")
}

fn command(transactions: &[Transaction], name: &str) -> Transaction {
    transactions
        .iter()
        .find(|transaction| transaction.command.as_deref() == Some(name))
        .cloned()
        .expect("command present")
}

/// A transaction cut off at `until_us`, as seen by an observer at that moment.
fn cut(transaction: &Transaction, until_us: i64) -> Transaction {
    let mut cut = transaction.clone();
    cut.events.retain(|event| event.ts_us <= until_us);
    let kept: Vec<u64> = cut.events.iter().map(|event| event.seq).collect();
    cut.edges
        .retain(|edge| kept.contains(&edge.from) && kept.contains(&edge.to));
    cut
}

fn ts_of(transaction: &Transaction, operation: &str) -> i64 {
    transaction
        .events
        .iter()
        .find(|event| event.operation == operation)
        .map(|event| event.ts_us)
        .expect("operation present")
}

fn learned_store() -> Store {
    let mut store = Store::default();
    for transaction in fixture("create-delete") {
        store.learn_positive(&transaction);
    }
    store
}

#[test]
fn learning_the_normal_run_makes_one_variant_per_command_and_skips_background() {
    let mut store = Store::default();
    let outcomes: Vec<Learned> = fixture("create-delete")
        .iter()
        .map(|transaction| store.learn_positive(transaction))
        .collect();
    assert!(
        outcomes.contains(&Learned::Skipped),
        "background is skipped"
    );
    for name in ["server create", "server delete"] {
        let fingerprint = &store.commands[name];
        assert_eq!(fingerprint.runs, 1);
        assert_eq!(fingerprint.variants.len(), 1);
        assert!(
            fingerprint.variants[0].symbols.len() > 20,
            "{name} is a real trail"
        );
    }
    let first = store.commands["server create"].variants[0].symbols[0];
    assert_eq!(store.symbol(first), Some("nova-api:POST /v2.1/servers"));
}

#[test]
fn the_normal_run_diagnoses_as_normal() {
    let store = learned_store();
    for name in ["server create", "server delete"] {
        let diagnosis = store.diagnose(&command(&fixture("create-delete"), name));
        assert_eq!(diagnosis.status, Status::Normal, "{diagnosis}");
        assert_eq!(diagnosis.distance, Some(0.0));
        assert!(diagnosis.to_alarm().is_none());
    }
}

#[test]
fn a_fresh_fault_free_delete_is_normal() {
    // The delete of the compute-down capture ran after nova-compute was back: a fresh, fault-free
    // run that differs from the learned one only by the interleaving of concurrent work.
    let store = learned_store();
    let fresh = command(&fixture("compute-down"), "server delete");
    let diagnosis = store.diagnose(&fresh);
    assert_eq!(diagnosis.status, Status::Normal, "{diagnosis}");
    // The two runs interleave their REST and RPC events differently in time; laid out by lane
    // (issue 6), that costs nothing.
    let in_time = |transaction: &Transaction| -> Vec<String> {
        let mut events = transaction.events.clone();
        events.sort_by_key(|event| (event.ts_us, event.seq));
        events.iter().map(|event| event.operation.clone()).collect()
    };
    let learned = command(&fixture("create-delete"), "server delete");
    assert_ne!(in_time(&learned), in_time(&fresh), "the runs do differ");
    assert_eq!(diagnosis.distance, Some(0.0), "{diagnosis}");
}

#[test]
fn create_while_compute_was_down_is_anomalous_with_nova_compute_first() {
    let store = learned_store();
    let diagnosis = store.diagnose(&command(&fixture("compute-down"), "server create"));
    assert_eq!(diagnosis.status, Status::Anomalous, "{diagnosis}");
    let late = diagnosis.late.first().expect("a late step");
    assert_eq!(late.after, "rpc.cast:compute.build_and_run_instance");
    assert!(late.gap_us > 15_000_000, "compute was down for ~19 s");
    assert_eq!(diagnosis.suspects[0].service, "nova-compute");
    assert_eq!(diagnosis.suspects[0].host.as_deref(), Some("osbed"));
    let alarm = diagnosis.to_alarm().expect("anomalous diagnoses alarm");
    assert_eq!(alarm.suspects[0].service, "nova-compute");
    assert!(alarm.score > 0.5);
    insta::assert_snapshot!("compute_down_create_diagnosis", diagnosis.to_string());
    insta::assert_json_snapshot!("compute_down_create_alarm", alarm);
}

#[test]
fn create_observed_while_compute_is_still_down_misses_the_compute_steps() {
    // What diagnosis sees 15 s into the fault: the trail stops at the cast to nova-compute.
    let store = learned_store();
    let create = command(&fixture("compute-down"), "server create");
    let cast = ts_of(&create, "compute.build_and_run_instance");
    let diagnosis = store.diagnose(&cut(&create, cast + 15_000_000));
    assert_eq!(diagnosis.status, Status::Anomalous, "{diagnosis}");
    let divergence = diagnosis.divergence.as_ref().expect("diverges");
    assert_eq!(
        divergence.after.as_deref(),
        Some("rpc.cast:compute.build_and_run_instance")
    );
    assert_eq!(diagnosis.suspects[0].service, "nova-compute", "{diagnosis}");
}

/// The first alarm of the monitor replaying `create` against a clock ticking every 100 ms, as
/// a live runner polls.
fn first_live_alarm(monitor: &mut Monitor, create: &Transaction) -> fingerprint::alarm::Alarm {
    let mut events = create.events.clone();
    events.sort_by_key(|event| (event.ts_us, event.seq));
    let mut alarms = Vec::new();
    let mut next = 0;
    let mut now = events[0].ts_us;
    while next < events.len() && alarms.is_empty() {
        while next < events.len() && events[next].ts_us <= now {
            monitor.observe(&create.id, create.command.as_deref(), &events[next]);
            next += 1;
        }
        alarms.extend(monitor.poll(now).into_iter().map(|overdue| overdue.alarm));
        now += 100_000;
    }
    alarms.into_iter().next().expect("an early alarm")
}

#[test]
fn live_monitor_raises_an_early_timeout_naming_nova_compute() {
    let store = Arc::new(learned_store());
    let create = command(&fixture("compute-down"), "server create");
    let cast = ts_of(&create, "compute.build_and_run_instance");
    let mut monitor = Monitor::new(store);
    let alarm = first_live_alarm(&mut monitor, &create);
    assert_eq!(alarm.detector, "timeout");
    assert_eq!(alarm.suspects[0].service, "nova-compute");
    assert_eq!(alarm.transaction.as_deref(), Some(create.id.as_str()));
    let after_cast = alarm.ts_us - cast;
    // The learned bound of the step after the cast is max(4 × p99, p99 + 1 s) ≈ 1.01 s, and the
    // clock ticks every 100 ms: the alarm comes ~1 s after the cast, not after the 60 s RPC timeout.
    assert!(
        (1_000_000..1_200_000).contains(&after_cast),
        "alarm {after_cast} µs after the cast"
    );
    // The same overdue step does not alarm twice.
    assert!(monitor.poll(alarm.ts_us + 1_000_000).is_empty());
}

/// Regression (issue 6, locked database tables): a create the API refused (`POST /servers ->
/// 403`, over quota while deletes were held up) is over; the monitor expects nothing after it.
#[test]
fn live_monitor_expects_nothing_after_a_refused_request() {
    let store = Arc::new(learned_store());
    let mut create = command(&fixture("create-delete"), "server create");
    create.events.sort_by_key(|event| (event.ts_us, event.seq));
    let mut refused = create.events[0].clone();
    assert_eq!(refused.operation, "POST /v2.1/servers");
    refused.outcome = Some(tracer::event::Outcome::Http { status: 403 });
    let mut monitor = Monitor::new(store.clone());
    monitor.observe(&create.id, create.command.as_deref(), &refused);
    assert!(monitor.expectation(&create.id).is_none());
    assert!(monitor.poll(refused.ts_us + 60_000_000).is_empty());
    // Accepted, the same request is followed by what normally follows it.
    let mut monitor = Monitor::new(store);
    monitor.observe(&create.id, create.command.as_deref(), &create.events[0]);
    assert!(monitor.expectation(&create.id).is_some());
}

#[test]
fn live_monitor_stays_quiet_on_a_fault_free_run() {
    let store = Arc::new(learned_store());
    let delete = command(&fixture("compute-down"), "server delete");
    let mut monitor = Monitor::new(store);
    let mut events = delete.events.clone();
    events.sort_by_key(|event| (event.ts_us, event.seq));
    for event in &events {
        assert!(
            monitor.poll(event.ts_us).is_empty(),
            "no alarm before {}",
            event.seq
        );
        monitor.observe(&delete.id, delete.command.as_deref(), event);
    }
    assert!(
        monitor.expectation(&delete.id).is_none(),
        "the run is complete"
    );
    monitor.close(&delete.id);
    assert_eq!(monitor.open_transactions(), 0);
}

#[test]
fn negatives_classify_the_fault_by_nearest_neighbours() {
    let mut store = learned_store();
    let normal_create = command(&fixture("create-delete"), "server create");
    let faulty_create = command(&fixture("compute-down"), "server create");
    let compute_stop = FaultLabel {
        fault_kind: "service-stop".to_owned(),
        service: "nova-compute".to_owned(),
        host: Some("osbed".to_owned()),
    };
    let scheduler_freeze = FaultLabel {
        fault_kind: "process-freeze".to_owned(),
        service: "nova-scheduler".to_owned(),
        host: None,
    };
    // A scheduler that never answers: the normal trail cut right after the call to it.
    let select = ts_of(&normal_create, "scheduler.select_destinations");
    let frozen_scheduler = cut(&normal_create, select);
    let cast = ts_of(&faulty_create, "compute.build_and_run_instance");
    let compute_down_early = cut(&faulty_create, cast + 15_000_000);
    assert!(matches!(
        store.learn_negative(&compute_down_early, &compute_stop),
        Learned::Negative { .. }
    ));
    store.learn_negative(&frozen_scheduler, &scheduler_freeze);
    store.learn_negative(&compute_down_early, &compute_stop);
    assert_eq!(store.negatives.len(), 2, "identical runs merge");
    assert_eq!(store.negatives[0].count, 2);

    let diagnosis = store.diagnose(&cut(&faulty_create, cast + 10_000_000));
    let classification = diagnosis.classification.expect("classified");
    assert_eq!(
        classification.label(),
        Some(&compute_stop),
        "{classification}"
    );
    let Classification::Known { confidence, .. } = classification else {
        unreachable!("a label means a known fault");
    };
    assert!(confidence > 0.5, "{confidence}");

    let diagnosis = store.diagnose(&frozen_scheduler);
    assert_eq!(
        diagnosis.suspects[0].service, "nova-scheduler",
        "{diagnosis}"
    );
    assert_eq!(
        diagnosis.classification.expect("classified").label(),
        Some(&scheduler_freeze)
    );
}

/// The store `butterfly fingerprint learn --from-run` makes of a run where nova-compute was
/// stopped: positives from the normal run, and the whole create under the fault (late, complete)
/// as the only negative.
fn store_knowing_compute_stop() -> (Store, FaultLabel) {
    let mut store = learned_store();
    let compute_stop = FaultLabel {
        fault_kind: "service-stop".to_owned(),
        service: "nova-compute".to_owned(),
        host: Some("osbed".to_owned()),
    };
    let faulty_create = command(&fixture("compute-down"), "server create");
    store.learn_negative(&faulty_create, &compute_stop);
    (store, compute_stop)
}

#[test]
fn a_seen_fault_is_classified_even_cut_short_and_an_unseen_one_is_none_of_the_known() {
    let (store, compute_stop) = store_knowing_compute_stop();
    assert_eq!(
        store.negative_bound("server create", &compute_stop),
        store.config.negative_single_bound,
        "one transaction: no spread to learn from"
    );
    // The same fault, seen as the live detector sees it: 10 s after the cast to the stopped
    // nova-compute, the trail stops there.
    let faulty_create = command(&fixture("compute-down"), "server create");
    let cast = ts_of(&faulty_create, "compute.build_and_run_instance");
    let diagnosis = store.diagnose(&cut(&faulty_create, cast + 10_000_000));
    let classification = diagnosis.classification.as_ref().expect("classified");
    assert_eq!(classification.label(), Some(&compute_stop), "{diagnosis}");
    let alarm = diagnosis.to_alarm().expect("anomalous");
    assert_eq!(alarm.fault_kind.as_deref(), Some("service-stop"));

    // A fault never learned: a scheduler that never answers (the normal trail cut right after
    // the call to it) departs from normal behaviour at another step.
    let normal_create = command(&fixture("create-delete"), "server create");
    let select = ts_of(&normal_create, "scheduler.select_destinations");
    let diagnosis = store.diagnose(&cut(&normal_create, select));
    assert_eq!(diagnosis.status, Status::Anomalous, "{diagnosis}");
    let classification = diagnosis.classification.as_ref().expect("negatives exist");
    let Classification::Unknown {
        nearest,
        distance,
        bound,
    } = classification
    else {
        panic!("an unseen fault is named: {diagnosis}");
    };
    assert_eq!(*nearest, compute_stop);
    assert!(distance > bound, "{diagnosis}");
    let alarm = diagnosis.to_alarm().expect("anomalous");
    assert_eq!(alarm.fault_kind, None, "{alarm:?}");
    assert!(
        alarm
            .evidence
            .iter()
            .any(|e| e.starts_with("unknown fault:")),
        "{alarm:?}"
    );
    let json = serde_json::to_value(&diagnosis).unwrap();
    assert_eq!(json["classification"]["verdict"], "unknown", "{json}");
    // Only the classification line: the suspects above it belong to localization.
    let line = format!("  {classification}\n");
    assert!(diagnosis.to_string().ends_with(&line), "{diagnosis}");
    insta::assert_snapshot!("unseen_fault_classification", line);
}

#[test]
fn the_store_round_trips_and_learns_incrementally() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("fp.json");
    learned_store().save(&path).unwrap();
    let mut store = Store::load(&path).unwrap();
    let fault = fixture("compute-down");
    let before = store.diagnose(&command(&fault, "server create"));
    assert_eq!(
        before,
        learned_store().diagnose(&command(&fault, "server create"))
    );
    store.learn_positive(&command(&fault, "server delete"));
    store.save(&path).unwrap();
    let store = Store::load(&path).unwrap();
    let delete = &store.commands["server delete"];
    assert_eq!(delete.runs, 2);
    // Same shape (issue 6: interleaving costs nothing), so the one variant learns both runs'
    // timing.
    assert_eq!(delete.variants.len(), 1);
    assert_eq!(delete.variants[0].count, 2);
    assert_eq!(delete.variants[0].steps[1].latency.count, 2);
    assert_eq!(delete.novelty, [0.0]);
    // Answer times are learned per operation, from both runs.
    assert_eq!(store.answers["nova-api DELETE /v2.1/servers/{id}"].count, 2);
    let again = store.diagnose(&command(&fault, "server delete"));
    assert_eq!(again.distance, Some(0.0));
}

#[test]
fn idle_cloud_traffic_is_background_only() {
    let mut store = Store::default();
    for transaction in fixture("startup-idle") {
        let learned = store.learn_positive(&transaction);
        assert!(
            transaction.background == (learned == Learned::Skipped),
            "{}",
            transaction.id
        );
    }
}

#[test]
fn live_monitor_takes_fingerprints_learned_while_it_watches() {
    let create = command(&fixture("compute-down"), "server create");
    let cast = ts_of(&create, "compute.build_and_run_instance");
    // Started before anything was learned: it knows no variant, so it expects nothing.
    let mut monitor = Monitor::new(Arc::new(Store::default()));
    let mut events = create.events.clone();
    events.sort_by_key(|event| (event.ts_us, event.seq));
    for event in events.iter().filter(|event| event.ts_us <= cast) {
        monitor.observe(&create.id, create.command.as_deref(), event);
    }
    assert!(monitor.expectation(&create.id).is_none());
    assert!(monitor.poll(cast + 10_000_000).is_empty());
    // Learned meanwhile: the open transaction is re-aligned and the overdue step alarms.
    monitor.set_store(Arc::new(learned_store()));
    let expectation = monitor.expectation(&create.id).expect("an expected step");
    assert!(expectation.deadline_us > cast);
    let alarms = monitor.poll(expectation.deadline_us + 1);
    assert_eq!(alarms.len(), 1);
    assert_eq!(alarms[0].alarm.suspects[0].service, "nova-compute");
}

/// The create as it goes when glance-api is frozen for `freeze_us` right as nova-api asks it for
/// the image inside `POST /servers`: that lookup and the POST answer that much later, and
/// everything after the lookup happens that much later.
fn create_with_a_frozen_image_lookup(freeze_us: i64) -> Transaction {
    let mut create = command(&fixture("create-delete"), "server create");
    let lookup = create
        .events
        .iter()
        .find(|event| event.service.as_deref() == Some("glance-api"))
        .map(|event| event.ts_us)
        .expect("an image lookup");
    for event in &mut create.events {
        let spans_the_lookup = event.kind == EventKind::RestRequest
            && event.ts_us <= lookup
            && event.ts_us + event.duration_us.unwrap_or(0) as i64 > lookup;
        if spans_the_lookup {
            event.duration_us = event.duration_us.map(|us| us + freeze_us as u64);
        } else if event.ts_us > lookup {
            event.ts_us += freeze_us;
        }
    }
    create
}

/// Regression (issue 6, freeze-glance): a finished create whose image lookup hung shows no late
/// step (timing counts from the last activity, and the lookup's answer is one), but its answer
/// times are far past their bounds; glance-api, which held the POST, comes first.
#[test]
fn a_hung_image_lookup_is_a_slow_answer_held_by_glance() {
    let store = learned_store();
    let create = create_with_a_frozen_image_lookup(20_000_000);
    let diagnosis = store.diagnose(&create);
    assert_eq!(diagnosis.status, Status::Anomalous, "{diagnosis}");
    let slow = diagnosis.slow_answer.as_ref().expect("a slow answer");
    assert!(slow.answered);
    assert!(slow.took_us > 20_000_000, "{slow}");
    let held = slow.held_by.as_deref().unwrap_or(&slow.symbol);
    assert!(
        held.starts_with("rest:glance-api GET /v2/images/"),
        "{slow}"
    );
    assert_eq!(diagnosis.suspects[0].service, "glance-api", "{diagnosis}");
    assert!(diagnosis.to_string().contains("slow answer"), "{diagnosis}");
    // The same create without the freeze is normal.
    assert_eq!(
        store.diagnose(&create_with_a_frozen_image_lookup(0)).status,
        Status::Normal
    );
}

/// Replays a transaction to a monitor as a live runner sees it: each REST request announced on
/// arrival and answered at its end, other events at their time; `answered` says which requests
/// get their answer. Polls every 100 ms; returns the alarms until `until_us`.
fn replay_with_arrivals(
    monitor: &mut Monitor,
    transaction: &Transaction,
    answered: impl Fn(&Event) -> bool,
    until_us: i64,
) -> Vec<fingerprint::monitor::Overdue> {
    enum Seen<'a> {
        Arrival(RestStart),
        Answer(&'a Event),
    }
    let mut timeline: Vec<(i64, Seen<'_>)> = Vec::new();
    for event in &transaction.events {
        match RestStart::of_event(event) {
            Some(start) => {
                timeline.push((event.ts_us, Seen::Arrival(start)));
                if answered(event) {
                    let end = event.ts_us + event.duration_us.unwrap_or(0) as i64;
                    timeline.push((end, Seen::Answer(event)));
                }
            }
            None => timeline.push((event.ts_us, Seen::Answer(event))),
        }
    }
    timeline.sort_by_key(|(at, _)| *at);
    let command = transaction.command.as_deref();
    let mut alarms = Vec::new();
    let mut clock = timeline[0].0;
    for (at, seen) in &timeline {
        while clock + 100_000 <= *at {
            clock += 100_000;
            alarms.extend(monitor.poll(clock));
        }
        match seen {
            Seen::Arrival(start) => monitor.started(&transaction.id, command, start),
            Seen::Answer(event) => monitor.observe(&transaction.id, command, event),
        }
    }
    while clock < until_us {
        clock += 100_000;
        alarms.extend(monitor.poll(clock));
    }
    alarms
}

/// A normal create announced request by request raises nothing; the same create whose image
/// lookup never comes back raises one alarm, naming glance-api, about a minute before
/// anything else would.
#[test]
fn the_monitor_times_answers_that_have_not_come() {
    let store = Arc::new(learned_store());
    let create = command(&fixture("create-delete"), "server create");
    let end = create.events.iter().map(|event| event.ts_us).max().unwrap() + 5_000_000;
    let mut monitor = Monitor::new(Arc::clone(&store));
    let alarms = replay_with_arrivals(&mut monitor, &create, |_| true, end);
    assert!(alarms.is_empty(), "{alarms:?}");

    let lookup = |event: &Event| event.service.as_deref() == Some("glance-api");
    let first_lookup = create.events.iter().find(|event| lookup(event)).unwrap();
    // The lookup, and the POST it is made in, are never answered.
    let held = |event: &Event| {
        event.ts_us <= first_lookup.ts_us
            && event.ts_us + event.duration_us.unwrap_or(0) as i64 > first_lookup.ts_us
    };
    let frozen = Transaction {
        events: create
            .events
            .iter()
            .filter(|event| event.ts_us <= first_lookup.ts_us)
            .cloned()
            .collect(),
        ..create.clone()
    };
    let mut monitor = Monitor::new(store);
    let alarms = replay_with_arrivals(&mut monitor, &frozen, |event| !held(event), end);
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    let overdue = &alarms[0];
    assert_eq!(
        overdue.alarm.suspects[0].service, "glance-api",
        "{overdue:?}"
    );
    assert!(
        overdue.alarm.ts_us - first_lookup.ts_us < 5_000_000,
        "{} µs after the lookup",
        overdue.alarm.ts_us - first_lookup.ts_us
    );
    assert!(matches!(
        &overdue.waiting,
        fingerprint::monitor::Waiting::Answer { entry: false, .. }
    ));
}

/// Regression (issue 6, stop-placement was blamed on the compute host it failed): a service
/// that already answered the transaction with a failure comes before the one left holding it.
#[test]
fn the_monitor_suspects_a_service_that_failed_the_transaction_first() {
    let store = Arc::new(learned_store());
    let mut create = command(&fixture("compute-down"), "server create");
    let cast = ts_of(&create, "compute.build_and_run_instance");
    let placement = create
        .events
        .iter_mut()
        .filter(|event| event.service.as_deref() == Some("placement-api") && event.ts_us < cast)
        .last()
        .expect("a placement call before the cast");
    placement.outcome = Some(tracer::event::Outcome::Http { status: 502 });
    let mut monitor = Monitor::new(store);
    let alarm = first_live_alarm(&mut monitor, &create);
    assert_eq!(alarm.suspects[0].service, "placement-api", "{alarm:?}");
    assert_eq!(alarm.suspects[1].service, "nova-compute", "{alarm:?}");
}

/// Regression (issue 6, most false alarms in the baselines): a create the API refused over
/// quota is a client error, not an anomaly, however unlike a normal create it looks.
#[test]
fn a_refused_create_is_not_an_anomaly() {
    let store = learned_store();
    let mut create = command(&fixture("create-delete"), "server create");
    let entry = create.events.iter().map(|event| event.ts_us).min().unwrap();
    create.events.retain(|event| {
        event.ts_us == entry
            || (event.service.as_deref() == Some("glance-api") && event.ts_us < entry + 50_000)
    });
    let post = create
        .events
        .iter_mut()
        .find(|event| event.ts_us == entry)
        .unwrap();
    post.outcome = Some(tracer::event::Outcome::Http { status: 403 });
    let diagnosis = store.diagnose(&create);
    assert_eq!(diagnosis.status, Status::Refused, "{diagnosis}");
    assert!(diagnosis.to_alarm().is_none());
    assert!(
        diagnosis.to_string().contains("refused by the API"),
        "{diagnosis}"
    );
}

/// Who holds each overdue transaction: the service that received the last message of a create
/// stalled after its cast to nova-compute, the service serving a request hanging inside the
/// user's, the API holding the user's request with nothing in flight inside it; and nobody for
/// a create that ran normally.
#[test]
fn the_monitor_names_who_holds_each_overdue_transaction() {
    use fingerprint::monitor::Hold;
    let store = Arc::new(learned_store());
    let normal = command(&fixture("create-delete"), "server create");
    let end = normal.events.iter().map(|event| event.ts_us).max().unwrap() + 5_000_000;

    let mut monitor = Monitor::new(Arc::clone(&store));
    replay_with_arrivals(&mut monitor, &normal, |_| true, end);
    assert!(monitor.holders(end).is_empty());

    // Stalled after the cast (nova-compute down).
    let stalled = command(&fixture("compute-down"), "server create");
    let cast = ts_of(&stalled, "compute.build_and_run_instance");
    let mut monitor = Monitor::new(Arc::clone(&store));
    let cut_short = cut(&stalled, cast);
    replay_with_arrivals(&mut monitor, &cut_short, |_| true, cast);
    assert!(monitor.holders(cast).is_empty(), "not overdue yet");
    let holders = monitor.holders(cast + 5_000_000);
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert_eq!(holders[0].service, "nova-compute");
    assert_eq!(holders[0].hold, Hold::Step);
    assert!(holders[0].since_us <= cast, "{holders:?}");

    // The image lookup inside `POST /servers` never answered: glance-api holds it; without the
    // lookup, nova-api holds the POST itself.
    let lookup = normal
        .events
        .iter()
        .find(|event| event.service.as_deref() == Some("glance-api"))
        .unwrap()
        .clone();
    let entry = normal
        .events
        .iter()
        .min_by_key(|e| (e.ts_us, e.seq))
        .unwrap();
    for (inside, service, hold) in [
        (Some(&lookup), "glance-api", Hold::Request),
        (None, "nova-api", Hold::Entry),
    ] {
        let mut monitor = Monitor::new(Arc::clone(&store));
        let command = normal.command.as_deref();
        monitor.started(&normal.id, command, &RestStart::of_event(entry).unwrap());
        if let Some(lookup) = inside {
            let mut start = RestStart::of_event(lookup).unwrap();
            start.user_agent = Some("nova-api keystoneauth1/5.11".to_owned());
            monitor.started(&normal.id, command, &start);
        }
        assert!(monitor.holders(entry.ts_us + 100_000).is_empty());
        let holders = monitor.holders(entry.ts_us + 60_000_000);
        assert_eq!(holders.len(), 1, "{holders:?}");
        assert_eq!(
            (holders[0].service.as_str(), holders[0].hold),
            (service, hold)
        );
    }
}

/// RPC calls are timed like REST requests: each call of a fault-free run, paired with its
/// reply by message id, teaches its reply time under `service CALL topic.method`.
#[test]
fn reply_times_of_rpc_calls_are_learned() {
    let store = learned_store();
    let calls: Vec<&String> = store
        .answers
        .keys()
        .filter(|key| key.contains(" CALL "))
        .collect();
    assert!(
        calls
            .iter()
            .any(|key| key.starts_with("nova-scheduler CALL scheduler.select_destinations")),
        "{calls:?}"
    );
    let key = fingerprint::symbol::reply_key("nova-scheduler", "scheduler.select_destinations");
    let (profile, bound) = store.answer_bound(&key).expect("a learned reply bound");
    assert!(
        profile.p50().is_some_and(|p50| p50 > 0 && p50 < bound),
        "{profile:?}"
    );
}

/// Regression (issue 6, freeze-placement blamed on the scheduler): the scheduler's first
/// request to a frozen placement-api inside `select_destinations` never comes back. The
/// transaction waits on that answer: one alarm, the slow answer naming placement-api, and no
/// overdue-step alarm naming the scheduler that waits on it. (The recorded
/// `GET /allocation_candidates` keeps its raw query, which the proxy's arrivals template
/// differently; the `GET /allocations/{id}` after it stands in.)
#[test]
fn a_request_past_its_bound_is_named_not_the_service_waiting_on_it() {
    let store = Arc::new(learned_store());
    let create = command(&fixture("create-delete"), "server create");
    let candidates = create
        .events
        .iter()
        .find(|event| event.operation.starts_with("GET /allocations/"))
        .unwrap()
        .clone();
    let frozen = Transaction {
        events: create
            .events
            .iter()
            .filter(|event| event.ts_us <= candidates.ts_us)
            .cloned()
            .collect(),
        ..create.clone()
    };
    let mut monitor = Monitor::new(store);
    let alarms = replay_with_arrivals(
        &mut monitor,
        &frozen,
        |event| event.seq != candidates.seq,
        candidates.ts_us + 5_000_000,
    );
    assert_eq!(alarms.len(), 1, "{alarms:?}");
    assert_eq!(
        alarms[0].alarm.suspects[0].service, "placement-api",
        "{alarms:?}"
    );
    assert!(matches!(
        alarms[0].waiting,
        fingerprint::monitor::Waiting::Answer { entry: false, .. }
    ));
}
