//! Judgement that holds on a cloud the fingerprints were not learned on: errors normal runs show,
//! periodic background work, calibration to a false-alarm rate on held-back runs, no verdict
//! without enough normal runs, suspects that failed rather than returned the error, optional
//! steps of another configuration, and the run-level verdict. On the recorded OpenStack traffic
//! of `tests/fixtures/` (see `recorded.rs`), varied as another machine or configuration would.

use std::path::Path;

use fingerprint::{Status, Store};
use tracer::event::{Event, EventIds, EventKind, Outcome, Source, Transaction};

fn fixture(name: &str) -> Vec<Transaction> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    tracer::import::read_transactions(&directory.join("transactions.json")).expect("fixture reads")
}

fn command(name: &str, fixture_name: &str) -> Transaction {
    fixture(fixture_name)
        .into_iter()
        .find(|transaction| transaction.command.as_deref() == Some(name))
        .expect("command present")
}

/// The transaction as a machine `factor` times slower would show it (the recorded create
/// has gaps of at most 57 ms: a bound of p99 + 1 s is passed from about 20 times slower): every time since the
/// first event, and every duration, stretched.
fn stretched(transaction: &Transaction, factor: f64) -> Transaction {
    let mut slow = transaction.clone();
    let start = slow.events.iter().map(|e| e.ts_us).min().unwrap_or(0);
    for event in &mut slow.events {
        event.ts_us = start + ((event.ts_us - start) as f64 * factor) as i64;
        event.duration_us = event.duration_us.map(|d| (d as f64 * factor) as u64);
    }
    slow
}

/// The delete with one of its conductor replies failed with `NotFound`, as a delete racing a
/// periodic cleanup does on a healthy cloud.
fn delete_with_not_found() -> Transaction {
    let mut delete = command("server delete", "create-delete");
    let reply = delete
        .events
        .iter_mut()
        .find(|event| event.kind == EventKind::RpcReply)
        .expect("a reply");
    reply.outcome = Some(Outcome::ReplyFailure {
        exception: "NotFound".to_owned(),
    });
    delete
}

fn event(seq: u64, ts_us: i64, kind: EventKind, service: &str, operation: &str) -> Event {
    Event {
        seq,
        ts_us,
        source: Source::Import,
        kind,
        service: Some(service.to_owned()),
        host: Some("compute1".to_owned()),
        caller: None,
        operation: operation.to_owned(),
        target: None,
        outcome: None,
        duration_us: None,
        ids: EventIds::default(),
        attrs: Default::default(),
    }
}

/// An agent that reports every `period_us` under one request id, `reports` times, as imported
/// spans show it (source `import`, which the tracer takes for a user's work).
fn reporting_agent(reports: u64, period_us: i64) -> Transaction {
    let mut events = Vec::new();
    for report in 0..reports {
        let at = 1_800_000_000_000_000 + report as i64 * period_us;
        let id = format!("msg{report}");
        let mut call = event(
            report * 2,
            at,
            EventKind::RpcCall,
            "nova-conductor",
            "conductor.object_action",
        );
        call.ids.msg_id = Some(id.clone());
        let mut reply = event(
            report * 2 + 1,
            at + 8_000,
            EventKind::RpcReply,
            "nova-conductor",
            "conductor.object_action",
        );
        reply.ids.msg_id = Some(id);
        reply.outcome = Some(Outcome::ReplyOk);
        events.extend([call, reply]);
    }
    Transaction {
        id: "req-agent".to_owned(),
        command: None,
        background: false,
        events,
        edges: Vec::new(),
    }
}

#[test]
fn an_error_normal_runs_show_is_judged_by_how_often_they_show_it() {
    let delete = command("server delete", "create-delete");
    let racing = delete_with_not_found();
    let mut store = Store::default();
    for _ in 0..6 {
        store.learn_positive(&delete);
    }
    let unseen = store.diagnose(&racing);
    assert_eq!(unseen.status, Status::Anomalous, "{unseen}");
    for _ in 0..4 {
        store.learn_positive(&racing);
    }
    let diagnosis = store.diagnose(&racing);
    assert_eq!(diagnosis.status, Status::Normal, "{diagnosis}");
    assert_eq!(diagnosis.usual_errors, ["reply:failure:NotFound"]);
    assert!(diagnosis.errors.is_empty());
    assert!(diagnosis.to_string().contains("normal runs show too"));
    // Rarer than the usual-error rate (1 run in 20): still evidence.
    let mut rare = Store::default();
    for _ in 0..19 {
        rare.learn_positive(&delete);
    }
    rare.config.min_runs = 2;
    rare.learn_positive(&racing);
    assert_eq!(rare.diagnose(&racing).status, Status::Anomalous);
}

#[test]
fn an_agent_reporting_every_period_under_one_request_id_is_background() {
    let agent = reporting_agent(12, 30_000_000);
    let mut store = Store::default();
    assert!(store.trace(&agent).background);
    assert_eq!(store.learn_positive(&agent), fingerprint::Learned::Skipped);
    assert!(store.diagnose_run(std::slice::from_ref(&agent)).is_empty());
    // Two reports are no period yet, and user polls every 250 ms are no agent.
    assert!(!store.trace(&reporting_agent(2, 30_000_000)).background);
    assert!(!store.trace(&reporting_agent(12, 250_000)).background);
    // Irregular repetitions are not periodic.
    let mut irregular = reporting_agent(6, 30_000_000);
    irregular.events[4].ts_us += 20_000_000;
    irregular.events[5].ts_us += 20_000_000;
    assert!(!store.trace(&irregular).background);
    // A user's command is not taken for one.
    let create = command("server create", "create-delete");
    assert!(!store.trace(&create).background);
}

#[test]
fn calibration_on_held_back_runs_of_a_slower_machine_absorbs_its_gaps_and_keeps_the_fault() {
    let create = command("server create", "create-delete");
    let faulted = command("server create", "compute-down");
    let mut store = Store::default();
    for _ in 0..3 {
        store.learn_positive(&create);
    }
    let other_machine = |k: usize| stretched(&create, 20.0 + (k % 5) as f64);
    let before = store.diagnose(&other_machine(2));
    assert_eq!(before.status, Status::Anomalous, "{before}");
    assert!(!before.late.is_empty(), "{before}");
    let held_back: Vec<Vec<Transaction>> = (0..40).map(|k| vec![other_machine(k)]).collect();
    let calibrated = store.calibrate(&held_back, 0.05);
    let calibration = store.commands["server create"].calibration.clone().unwrap();
    assert_eq!(calibrated.commands.len(), 1);
    assert_eq!(calibration.runs, 40);
    assert!(calibration.timing_scale > 1.0, "{calibration:?}");
    assert!(calibration.attainable_rate < 0.05);
    assert!(store.answer_scale.unwrap() > 1.0);
    let after = store.diagnose(&other_machine(2));
    assert_eq!(after.status, Status::Normal, "{after}");
    let fault = store.diagnose(&faulted);
    assert_eq!(fault.status, Status::Anomalous, "{fault}");
    assert_eq!(fault.suspects[0].service, "nova-compute", "{fault}");
    // The calibration is kept by the store file.
    let reloaded = Store::from_json(&store.to_json(), Path::new("fp.json")).unwrap();
    assert_eq!(
        reloaded.commands["server create"].calibration,
        Some(calibration)
    );
}

#[test]
fn a_command_learned_from_too_few_runs_gets_no_verdict() {
    let create = command("server create", "create-delete");
    let mut store = Store::default();
    store.config.min_runs = 3;
    store.config.min_step_samples = 3;
    store.learn_positive(&create);
    let diagnosis = store.diagnose(&stretched(&create, 25.0));
    assert_eq!(diagnosis.status, Status::NotEnoughRuns, "{diagnosis}");
    assert!(diagnosis.to_alarm().is_none());
    assert!(diagnosis.to_string().contains("not enough normal runs"));
    let json = serde_json::to_value(&diagnosis).unwrap();
    assert_eq!(json["status"], "not-enough-runs");
    // An error normal runs do not show is still judged.
    let mut failed = create.clone();
    failed
        .events
        .iter_mut()
        .find(|event| event.kind == EventKind::RpcReply)
        .unwrap()
        .outcome = Some(Outcome::ReplyFailure {
        exception: "NoValidHost".to_owned(),
    });
    assert_eq!(store.diagnose(&failed).status, Status::Anomalous);
    let verdict = store.run_verdict(&store.diagnose_run(&[stretched(&create, 25.0)]));
    assert_eq!(verdict.not_enough_runs, 1);
    assert!(verdict.to_string().contains("not enough normal runs"));
    for _ in 0..2 {
        store.learn_positive(&create);
    }
    assert_eq!(
        store.diagnose(&stretched(&create, 25.0)).status,
        Status::Anomalous
    );
}

#[test]
fn the_component_that_never_answered_is_suspected_before_the_one_that_returned_the_error() {
    let mut entry = event(
        0,
        0,
        EventKind::RestRequest,
        "nova-api",
        "POST /v2.1/servers",
    );
    entry.source = Source::Rest;
    entry.duration_us = Some(70_000_000);
    entry.outcome = Some(Outcome::Http { status: 500 });
    let mut outer = event(
        1,
        10_000,
        EventKind::RpcCall,
        "nova-conductor",
        "conductor.build_instances",
    );
    outer.ids.msg_id = Some("outer".to_owned());
    let mut inner = event(
        2,
        20_000,
        EventKind::RpcCall,
        "nova-compute",
        "compute.build_and_run_instance",
    );
    inner.ids.msg_id = Some("inner".to_owned());
    let mut failure = event(
        3,
        60_030_000,
        EventKind::RpcReply,
        "nova-conductor",
        "conductor.build_instances",
    );
    failure.ids.msg_id = Some("outer".to_owned());
    failure.outcome = Some(Outcome::ReplyFailure {
        exception: "MessagingTimeout".to_owned(),
    });
    let transaction = Transaction {
        id: "req-timeout".to_owned(),
        command: Some("server create".to_owned()),
        background: false,
        events: vec![entry, outer, inner, failure],
        edges: Vec::new(),
    };
    let diagnosis = Store::default().diagnose(&transaction);
    assert_eq!(diagnosis.status, Status::Anomalous);
    assert_eq!(diagnosis.suspects[0].service, "nova-compute", "{diagnosis}");
    assert!(
        diagnosis.suspects[0].evidence[0].contains("never answered"),
        "{diagnosis}"
    );
}

/// The create with extra steps of the given kind, spread through it.
fn with_extra_steps(
    create: &Transaction,
    extra: impl Fn(usize) -> (EventKind, String, String),
) -> Transaction {
    let mut changed = create.clone();
    let start = changed.events.iter().map(|e| e.ts_us).min().unwrap();
    let next_seq = changed.events.iter().map(|e| e.seq).max().unwrap() + 1;
    for k in 0..8 {
        let (kind, service, operation) = extra(k);
        let mut added = event(
            next_seq + k as u64,
            start + 50_000 + k as i64 * 97_000,
            kind,
            &service,
            &operation,
        );
        added.source = Source::Rest;
        if kind == EventKind::RestRequest {
            added.outcome = Some(Outcome::Http { status: 200 });
            added.duration_us = Some(2_000);
            added.caller = Some("nova-api".to_owned());
        }
        changed.events.push(added);
    }
    changed
}

#[test]
fn optional_steps_another_configuration_adds_cost_no_distance() {
    let create = command("server create", "create-delete");
    let mut store = Store::default();
    for _ in 0..3 {
        store.learn_positive(&create);
    }
    let letters = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let checked = with_extra_steps(&create, |k| {
        if k % 2 == 0 {
            (
                EventKind::RestRequest,
                "keystone".to_owned(),
                format!("GET /v3/{}", letters[k]),
            )
        } else {
            (
                EventKind::Notification,
                "nova-api".to_owned(),
                format!("audit.{}", letters[k]),
            )
        }
    });
    let diagnosis = store.diagnose(&checked);
    assert_eq!(diagnosis.status, Status::Normal, "{diagnosis}");
    assert_eq!(diagnosis.optional_steps, 8);
    assert_eq!(diagnosis.distance, Some(0.0));
    // Writes are not optional.
    let written = with_extra_steps(&create, |k| {
        (
            EventKind::RestRequest,
            "keystone".to_owned(),
            format!("POST /v3/{}", letters[k]),
        )
    });
    let diagnosis = store.diagnose(&written);
    assert_eq!(diagnosis.status, Status::Anomalous, "{diagnosis}");
    assert_eq!(diagnosis.optional_steps, 0);
}

#[test]
fn the_run_verdict_counts_anomalous_transactions_by_a_calibrated_rule() {
    let create = command("server create", "create-delete");
    let delete = command("server delete", "create-delete");
    let faulted = command("server create", "compute-down");
    let mut store = Store::default();
    for _ in 0..3 {
        store.learn_positive(&create);
        store.learn_positive(&delete);
    }
    // Held-back fault-free runs: one in three has an odd transaction.
    let held_back: Vec<Vec<Transaction>> = (0..30)
        .map(|k| {
            let mut run = vec![create.clone(), delete.clone(), create.clone()];
            if k % 3 == 0 {
                run.push(stretched(&create, 25.0));
            }
            run
        })
        .collect();
    let uncalibrated = store.run_verdict(&store.diagnose_run(&held_back[0]));
    assert!(
        uncalibrated.failed,
        "any anomalous transaction: {uncalibrated}"
    );
    let calibrated = store.calibrate(&held_back, 0.1);
    let rule = calibrated.run_rule.expect("a run rule");
    assert_eq!(rule.runs, 30);
    let healthy = store.run_verdict(&store.diagnose_run(&held_back[0]));
    let failed = store.run_verdict(&store.diagnose_run(&[
        faulted.clone(),
        faulted.clone(),
        faulted.clone(),
        create.clone(),
    ]));
    assert!(!healthy.failed, "{healthy}");
    assert!(failed.failed, "{failed}");
    assert!(failed.calibrated);
    assert!(failed.to_string().starts_with("run: FAILED"), "{failed}");
}

#[test]
fn suspects_follow_the_most_overdue_step_not_the_first_past_its_bound() {
    // On a machine 25 times slower, ordinary steps pass their tight bounds by a little before
    // the stopped nova-compute holds its step for minutes.
    let mut store = Store::default();
    for _ in 0..3 {
        store.learn_positive(&command("server create", "create-delete"));
    }
    let diagnosis = store.diagnose(&stretched(&command("server create", "compute-down"), 25.0));
    assert_eq!(diagnosis.status, Status::Anomalous);
    assert!(diagnosis.late.len() > 1, "{diagnosis}");
    assert_eq!(diagnosis.suspects[0].service, "nova-compute", "{diagnosis}");
    assert_eq!(
        diagnosis.anchor.as_deref(),
        Some("rpc.call:conductor.object_class_action_versions")
    );
    // A token check nova-api makes while nova-compute holds the create is an optional step:
    // it holds nothing.
    let mut checked = command("server create", "compute-down");
    let cast = checked
        .events
        .iter()
        .find(|event| event.operation == "compute.build_and_run_instance")
        .unwrap()
        .ts_us;
    let mut check = event(
        10_000,
        cast + 1_000_000,
        EventKind::RestRequest,
        "keystone",
        "GET /v3/auth/tokens",
    );
    check.source = Source::Rest;
    check.caller = Some("nova-api".to_owned());
    check.duration_us = Some(5_000);
    check.outcome = Some(Outcome::Http { status: 200 });
    checked.events.push(check);
    let diagnosis = store.diagnose(&stretched(&checked, 25.0));
    assert_eq!(diagnosis.optional_steps, 1, "{diagnosis}");
    assert_eq!(diagnosis.suspects[0].service, "nova-compute", "{diagnosis}");
}

#[test]
fn too_few_held_back_runs_never_tighten_the_learned_threshold() {
    let create = command("server create", "create-delete");
    let mut store = Store::default();
    store.learn_positive(&create);
    let mut shorter = create.clone();
    shorter.events.truncate(create.events.len() - 8);
    store.learn_positive(&shorter);
    let learned = store.commands["server create"].learned_threshold(&store.config);
    assert!(learned > store.config.min_threshold, "{learned}");
    // Two held-back runs exactly like a learned one: their maximum distance is 0.
    store.calibrate(&[vec![create.clone()], vec![create.clone()]], 0.01);
    let calibration = store.commands["server create"].calibration.clone().unwrap();
    assert!(calibration.attainable_rate > 0.01);
    assert_eq!(calibration.threshold, Some(learned));
}
