//! The patterns' laws on traffic recorded on the testbed (`tests/fixtures/replay-ci-smoke`), and
//! the bench end to end on it.

use super::*;

use std::path::Path;

use fingerprint::engine::{read_inputs, read_setup};

const S: i64 = 1_000_000;

fn recorded() -> (EngineSetup, Store, Vec<Input>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/replay-ci-smoke");
    (
        read_setup(&dir.join("engine.json")).unwrap(),
        Store::load(&dir.join("engine-store.json")).unwrap(),
        read_inputs(&dir.join("engine-input.jsonl")).unwrap(),
    )
}

fn events(inputs: &[Input]) -> Vec<(i64, &str, &Event)> {
    inputs
        .iter()
        .filter_map(|input| match input {
            Input::Event {
                at_us,
                transaction,
                event,
            } => Some((*at_us, transaction.as_str(), event.as_ref())),
            _ => None,
        })
        .collect()
}

/// A window in the middle of the recording.
fn window(inputs: &[Input], seconds: i64) -> (i64, i64) {
    let first = inputs.first().unwrap().at_us();
    (first + 30 * S, first + (30 + seconds) * S)
}

fn fault(pattern: Pattern, (from_us, until_us): (i64, i64)) -> Fault {
    Fault {
        pattern,
        from_us,
        until_us,
    }
}

fn sorted(inputs: &[Input]) -> bool {
    inputs
        .windows(2)
        .all(|pair| pair[0].at_us() <= pair[1].at_us())
}

#[test]
fn without_faults_the_stream_is_unchanged() {
    let (_, _, inputs) = recorded();
    assert_eq!(apply(&inputs, &[]), inputs);
}

#[test]
fn a_silent_service_answers_nothing_and_its_callers_go_no_further() {
    let (_, _, inputs) = recorded();
    let span = window(&inputs, 20);
    let service = "nova-conductor";
    let before = events(&inputs);
    assert!(
        before.iter().any(|(at, _, e)| span.0 <= *at
            && *at < span.1
            && e.kind == EventKind::RpcReply
            && e.service.as_deref() == Some(service)),
        "the window holds replies of {service}"
    );
    let out = apply(
        &inputs,
        &[fault(
            Pattern::Silent {
                service: service.into(),
                host: None,
            },
            span,
        )],
    );
    assert!(sorted(&out));
    let after = events(&out);
    assert!(after.len() < before.len());
    for (at, transaction, event) in &after {
        let inside = span.0 <= *at && *at < span.1;
        assert!(
            !(inside
                && event.service.as_deref() == Some(service)
                && event.kind == EventKind::RpcReply),
            "a reply of the silent service survived"
        );
        // Whoever asked it something inside the window shows nothing after.
        let asked = after.iter().find(|(at, t, e)| {
            t == transaction
                && span.0 <= *at
                && *at < span.1
                && e.service.as_deref() == Some(service)
        });
        if let Some((asked_at, _, _)) = asked {
            assert!(
                at <= asked_at,
                "{transaction} went on after asking {service}"
            );
        }
    }
    // Their commands did not succeed.
    let stalled: HashSet<&str> = before
        .iter()
        .filter(|(at, _, e)| span.0 <= *at && *at < span.1 && e.service.as_deref() == Some(service))
        .map(|(_, t, _)| *t)
        .collect();
    for input in &out {
        if let Input::Finished {
            request_id,
            succeeded,
            ..
        } = input
            && stalled.contains(request_id.as_str())
        {
            assert!(!succeeded, "{request_id}");
        }
    }
}

#[test]
fn late_replies_come_late_and_delay_the_rest_of_their_transaction() {
    let (_, _, inputs) = recorded();
    let first = inputs.first().unwrap().at_us();
    // Where the recording's boots are scheduled.
    let span = (first + 45 * S, first + 75 * S);
    let service = "nova-scheduler";
    let delay = 7 * S;
    let out = apply(
        &inputs,
        &[fault(
            Pattern::Late {
                service: service.into(),
                delay_us: delay,
            },
            span,
        )],
    );
    assert!(sorted(&out));
    let before = events(&inputs);
    let after = events(&out);
    assert_eq!(before.len(), after.len(), "nothing is lost, only late");
    let late: Vec<_> = before
        .iter()
        .filter(|(at, _, e)| {
            span.0 <= *at
                && *at < span.1
                && e.kind == EventKind::RpcReply
                && e.service.as_deref() == Some(service)
        })
        .collect();
    assert!(!late.is_empty());
    for (_, transaction, event) in late {
        let (_, _, shifted) = after
            .iter()
            .find(|(_, t, e)| t == transaction && e.seq == event.seq)
            .unwrap();
        assert!(shifted.ts_us >= event.ts_us + delay);
    }
}

#[test]
fn a_broker_drop_is_signalled_and_carries_no_rpc() {
    let (setup, _, inputs) = recorded();
    let span = window(&inputs, 10);
    let dropped = fault(Pattern::BrokerDrop, span);
    let out = apply(&inputs, std::slice::from_ref(&dropped));
    assert!(sorted(&out));
    let signals: Vec<&Input> = out
        .iter()
        .filter(|input| matches!(input, Input::BrokerLink { .. }))
        .collect();
    assert_eq!(
        signals,
        [
            &Input::BrokerLink {
                at_us: span.0,
                lost_since: Some(span.0)
            },
            &Input::BrokerLink {
                at_us: span.1,
                lost_since: None
            }
        ]
    );
    assert!(
        events(&out)
            .iter()
            .all(|(at, _, e)| !(span.0 <= *at && *at < span.1 && is_rpc(&e.kind)))
    );
    let truth = dropped.truth(&Inventory::of(&setup));
    assert_eq!(truth.service.as_deref(), Some("rabbitmq"));
    assert_eq!(truth.hosts, ["controller"]);
}

#[test]
fn error_patterns_rewrite_the_outcome_of_what_the_service_answers() {
    let (_, _, inputs) = recorded();
    let span = window(&inputs, 20);
    let out = apply(
        &inputs,
        &[
            fault(
                Pattern::RestErrors {
                    service: "nova-api".into(),
                    status: 503,
                },
                span,
            ),
            fault(
                Pattern::ErrorReplies {
                    service: "nova-scheduler".into(),
                },
                span,
            ),
        ],
    );
    let inside: Vec<_> = events(&out)
        .into_iter()
        .filter(|(at, _, _)| span.0 <= *at && *at < span.1)
        .collect();
    let rest: Vec<_> = inside
        .iter()
        .filter(|(_, _, e)| {
            e.kind == EventKind::RestRequest && e.service.as_deref() == Some("nova-api")
        })
        .collect();
    assert!(!rest.is_empty());
    assert!(
        rest.iter()
            .all(|(_, _, e)| e.outcome == Some(Outcome::Http { status: 503 }))
    );
    assert!(
        inside
            .iter()
            .filter(|(_, _, e)| e.kind == EventKind::RpcReply
                && e.service.as_deref() == Some("nova-scheduler"))
            .all(|(_, _, e)| matches!(e.outcome, Some(Outcome::ReplyFailure { .. })))
    );
}

#[test]
fn the_bench_scores_a_silent_conductor_like_a_testbed_run() {
    let (setup, store, inputs) = recorded();
    let bench = Bench::new(setup, store, inputs.clone());
    let (first, _) = bench.span_us().unwrap();
    // Fault-free traffic to learn from, then nova-conductor silent for 15 s.
    let from = first + 40 * S;
    let case = Case {
        name: "silent".into(),
        faults: vec![fault(
            Pattern::Silent {
                service: "nova-conductor".into(),
                host: None,
            },
            (from, from + 15 * S),
        )],
        scored_from_us: from - 10 * S,
        scored_until_us: from + 45 * S,
    };
    let outcomes = bench.run(vec![case]);
    assert_eq!(outcomes.len(), 1);
    let scores = bench.score(&outcomes.iter().collect::<Vec<_>>(), 30.0);
    let names: Vec<&str> = scores.iter().map(|s| s.detector.as_str()).collect();
    assert_eq!(names, ["fingerprint", "timeout"]);
    for score in &scores {
        assert_eq!(score.faults, 1);
    }
    assert!(
        scores.iter().any(|s| s.detected_faults == 1),
        "{scores:#?}\n{:#?}",
        outcomes[0].alarms
    );
}
