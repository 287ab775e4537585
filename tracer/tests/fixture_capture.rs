//! Offline stitching of the real captures in `tests/fixtures/` (a DevStack-like control plane's
//! firehose during `server create` + `server delete`, its REST log, an idle start-up and a create
//! while nova-compute was down). Regression tests for issue 5.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use tracer::event::{EdgeKind, EventKind, Transaction};
use tracer::import::{self, read_capture};
use tracer::oslo::parse_rfc3339_us;
use tracer::pipeline::{Pipeline, TraceOutput, Update};
use tracer::rest::RestRecord;
use tracer::stitch::StitchConfig;

const CREATE_REQUEST: &str = "req-3410b873-3e5f-4237-9429-aa10d0c95921";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Parses the capture's REST log (`end_ts service client "METHOD path HTTP/1.1" status bytes
/// duration req_id=… compute_req_id=… greq=…`) into proxy records.
fn rest_records(name: &str) -> Vec<RestRecord> {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    let mut records = Vec::new();
    for line in text
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
    {
        let (head, rest) = line.split_once(" \"").unwrap();
        let (request_line, tail) = rest.split_once("\" ").unwrap();
        let mut head = head.split(' ');
        let end_us = parse_rfc3339_us(head.next().unwrap()).unwrap();
        let service = match head.next().unwrap() {
            "glance" => "glance-api",
            "placement" => "placement-api",
            other => other,
        };
        let mut request = request_line.split(' ');
        let method = request.next().unwrap();
        let path = request.next().unwrap().split('?').next().unwrap();
        let mut tail = tail.split(' ');
        let status: u16 = tail.next().unwrap().parse().unwrap();
        tail.next();
        let duration_ms: f64 = tail.next().unwrap().trim_end_matches("ms").parse().unwrap();
        let field = |prefix: &str| {
            line.split(' ')
                .find_map(|part| part.strip_prefix(prefix))
                .filter(|value| *value != "-")
                .map(str::to_owned)
        };
        let duration_us = (duration_ms * 1000.0) as u64;
        records.push(RestRecord {
            ts_us: end_us - duration_us as i64,
            service: service.to_owned(),
            upstream: format!("http://127.0.0.1/{service}"),
            upstream_host: Some("127.0.0.1".to_owned()),
            method: method.to_owned(),
            path: path.to_owned(),
            status,
            duration_us,
            global_request_id: field("greq="),
            request_id: field("req_id="),
            user_agent: None,
        });
    }
    records.sort_by_key(|record| record.ts_us);
    records
}

/// Feeds AMQP records and REST records in time order, as a live capture would see them.
fn stitch(amqp: &str, rest: Option<&str>) -> TraceOutput {
    let mut pipeline = Pipeline::in_memory(StitchConfig::default());
    let mut records = read_capture(&fixture(amqp)).unwrap().into_iter().peekable();
    let mut rest = rest
        .map(rest_records)
        .unwrap_or_default()
        .into_iter()
        .peekable();
    loop {
        let amqp_first = match (records.peek(), rest.peek()) {
            (Some(record), Some(request)) => record.ts_us <= request.ts_us,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if amqp_first {
            pipeline.push_amqp(&records.next().unwrap()).unwrap();
        } else {
            pipeline.push_rest(&rest.next().unwrap()).unwrap();
        }
    }
    pipeline.finish().unwrap()
}

fn operations(transaction: &Transaction) -> BTreeSet<String> {
    transaction
        .events
        .iter()
        .map(|event| {
            format!(
                "{} {}",
                event.service.as_deref().unwrap_or("?"),
                event.operation
            )
        })
        .collect()
}

#[test]
fn every_recorded_message_is_decoded_and_counted() {
    let output = stitch("server-create-delete.amqp.jsonl", None);
    let amqp = output.summary.amqp;
    assert_eq!(
        (amqp.received, amqp.published, amqp.delivered),
        (128, 68, 60)
    );
    assert_eq!((amqp.decoded, amqp.opaque), (68, 0));
    // Every reply found its call; nothing was left over.
    assert_eq!(output.summary.stitch.unattributed, 0);
    let replies: usize = output
        .transactions
        .iter()
        .flat_map(|transaction| &transaction.events)
        .filter(|event| event.kind == EventKind::RpcReply)
        .count();
    let reply_edges: usize = output
        .transactions
        .iter()
        .flat_map(|transaction| &transaction.edges)
        .filter(|edge| edge.kind == EdgeKind::Reply)
        .count();
    assert_eq!(replies, 27);
    assert_eq!(reply_edges, replies);
    assert!(output.transactions.iter().all(|transaction| {
        transaction
            .events
            .iter()
            .filter(|e| e.kind == EventKind::RpcReply)
            .all(|reply| reply.service.is_some() && reply.operation.ends_with(".reply"))
    }));
}

#[test]
fn server_create_is_one_transaction_with_rest_and_rpc() {
    let output = stitch(
        "server-create-delete.amqp.jsonl",
        Some("server-create-delete.rest.txt"),
    );
    let create = output
        .transactions
        .iter()
        .find(|transaction| transaction.id == CREATE_REQUEST)
        .expect("the server create transaction");
    assert_eq!(create.command.as_deref(), Some("server create"));
    assert!(!create.background);
    let create_operations = operations(create);
    for expected in [
        "nova-api POST /v2.1/servers",
        "glance-api GET /v2/images/{id}",
        "placement-api GET /allocation_candidates",
        "placement-api PUT /allocations/{id}",
        "nova-conductor conductor.schedule_and_build_instances",
        "nova-scheduler scheduler.select_destinations",
        "nova-scheduler scheduler.select_destinations.reply",
        "nova-compute compute.build_and_run_instance",
        "nova-compute instance.create.start",
        "nova-compute instance.create.end",
        "nova-scheduler scheduler.update_instance_info",
    ] {
        assert!(
            create_operations.contains(expected),
            "missing {expected} in {create_operations:#?}"
        );
    }
    // Every event but the first has a cause: the graph is connected.
    let caused: BTreeSet<u64> = create.edges.iter().map(|edge| edge.to).collect();
    assert_eq!(caused.len(), create.events.len() - 1);
    let graph = tracer::graph::to_graph(create);
    assert_eq!(petgraph::algo::connected_components(&graph), 1);
    assert!(!petgraph::algo::is_cyclic_directed(&graph));
    // The compute host was taken from the routing key.
    let build = create
        .events
        .iter()
        .find(|event| event.operation == "compute.build_and_run_instance")
        .unwrap();
    assert_eq!(build.host.as_deref(), Some("osbed"));
    assert_eq!(build.kind, EventKind::RpcCast);

    let delete = output
        .transactions
        .iter()
        .find(|transaction| {
            operations(transaction).contains("nova-compute compute.terminate_instance")
        })
        .unwrap();
    assert_eq!(delete.command.as_deref(), Some("server delete"));
    assert_ne!(delete.id, create.id);
}

#[test]
fn idle_startup_traffic_is_background() {
    let output = stitch("startup-idle.amqp.jsonl", None);
    assert!(!output.transactions.is_empty());
    assert!(
        output
            .transactions
            .iter()
            .all(|transaction| transaction.background)
    );
    assert_eq!(
        output.summary.stitch.background,
        output.transactions.len() as u64
    );
    assert_eq!(output.summary.amqp.opaque, 0);
}

#[test]
fn queue_wait_shows_the_cast_stuck_while_compute_was_down() {
    let output = stitch("fault-compute-down.amqp.jsonl", None);
    let build = output
        .transactions
        .iter()
        .flat_map(|transaction| &transaction.events)
        .find(|event| event.operation == "compute.build_and_run_instance")
        .unwrap();
    assert_eq!(build.attrs["queue"], "compute.osbed");
    let wait: i64 = build.attrs["queue_wait_us"].parse().unwrap();
    // nova-compute was stopped for about 20 s around the create (timeline.txt).
    assert!(wait > 10_000_000, "queue wait {wait} µs");
}

#[test]
fn secrets_never_reach_the_trace_files() {
    let capture = fixture("server-create-delete.amqp.jsonl");
    let mut secrets = BTreeSet::new();
    for line in std::fs::read_to_string(&capture).unwrap().lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let body: serde_json::Value =
            serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
        let inner: serde_json::Value =
            serde_json::from_str(body["oslo.message"].as_str().unwrap()).unwrap();
        if let Some(token) = inner["_context_auth_token"].as_str() {
            secrets.insert(token.to_owned());
        }
    }
    assert!(!secrets.is_empty(), "the fixture has tokens to look for");
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = Pipeline::writing(StitchConfig::default(), dir.path()).unwrap();
    import::import_into(&capture, &mut pipeline).unwrap();
    let summary = pipeline.finish().unwrap().summary;
    assert_eq!(summary.amqp.decoded, 68);
    let mut files = 0;
    let mut stack = vec![dir.path().to_owned()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            );
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a token leaked into {}",
                path.display()
            );
            assert!(
                !text.contains(&secret[..20]),
                "a token prefix leaked into {}",
                path.display()
            );
        }
        assert!(!text.contains("auth_token") && !text.contains("service_catalog"));
    }
    assert!(
        files >= 4,
        "events, transactions, summary and graphs are written"
    );
}

#[test]
fn a_written_trace_reads_back_into_the_same_transactions() {
    let capture = fixture("server-create-delete.amqp.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let mut pipeline = Pipeline::writing(StitchConfig::default(), dir.path()).unwrap();
    import::import_into(&capture, &mut pipeline).unwrap();
    pipeline.finish().unwrap();
    let written = import::read_transactions(&dir.path().join("transactions.json")).unwrap();
    let mut rebuilt = Pipeline::in_memory(StitchConfig::default());
    assert_eq!(
        import::import_into(dir.path(), &mut rebuilt).unwrap(),
        import::InputFormat::Events
    );
    let rebuilt = rebuilt.finish().unwrap().transactions;
    let shape = |transactions: &[Transaction]| {
        let mut shape: Vec<(String, Vec<String>, usize)> = transactions
            .iter()
            .map(|t| {
                (
                    t.id.clone(),
                    t.events.iter().map(|e| e.operation.clone()).collect(),
                    t.edges.len(),
                )
            })
            .collect();
        shape.sort();
        shape
    };
    assert_eq!(shape(&written), shape(&rebuilt));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("trace.json")).unwrap())
            .unwrap();
    assert_eq!(summary["format"], "butterfly-trace");
    assert_eq!(summary["version"], tracer::event::TRACE_FORMAT_VERSION);
}

#[test]
fn a_followed_pipeline_reports_each_event_with_its_transaction_then_the_closed_ones() {
    let mut pipeline = Pipeline::in_memory(StitchConfig::default());
    pipeline.follow();
    let mut updates = Vec::new();
    for record in read_capture(&fixture("server-create-delete.amqp.jsonl")).unwrap() {
        pipeline.push_amqp(&record).unwrap();
        updates.extend(pipeline.take_updates());
    }
    pipeline.flush().unwrap();
    updates.extend(pipeline.take_updates());
    let output = pipeline.finish().unwrap();
    let closed: Vec<&Transaction> = updates
        .iter()
        .filter_map(|update| match update {
            Update::Closed(transaction) => Some(transaction),
            Update::Event { .. } | Update::Started { .. } => None,
        })
        .collect();
    // Every transaction closes exactly once, as kept in memory.
    assert_eq!(closed.len(), output.transactions.len());
    for transaction in &closed {
        // Its events were each reported before it closed, under its id and in arrival order.
        let position = updates
            .iter()
            .position(|u| matches!(u, Update::Closed(t) if t.id == transaction.id))
            .unwrap();
        let mut reported: Vec<u64> = updates[..position]
            .iter()
            .filter_map(|update| match update {
                Update::Event {
                    transaction: id,
                    event,
                } if *id == transaction.id => Some(event.seq),
                _ => None,
            })
            .collect();
        let arrival = reported.clone();
        reported.sort_unstable();
        assert_eq!(arrival, reported, "{}", transaction.id);
        let mut closed_seqs: Vec<u64> = transaction.events.iter().map(|e| e.seq).collect();
        closed_seqs.sort_unstable();
        assert_eq!(reported, closed_seqs, "{}", transaction.id);
    }
    assert!(closed.iter().any(|t| t.id == CREATE_REQUEST));
    // Unattributed events are not reported: no transaction to place them in.
    let events = updates
        .iter()
        .filter(|u| matches!(u, Update::Event { .. }))
        .count() as u64;
    assert_eq!(
        events,
        output.summary.stitch.events - output.summary.stitch.unattributed
    );
    // Without `follow` nothing is kept.
    let mut quiet = Pipeline::counting(StitchConfig::default());
    for record in read_capture(&fixture("server-create-delete.amqp.jsonl")).unwrap() {
        quiet.push_amqp(&record).unwrap();
    }
    assert!(quiet.take_updates().is_empty());
}

/// Regression (issue 6, freeze-glance): a request that never comes back must still reach the
/// live detectors, under the transaction its global request id names, without entering the trace.
#[test]
fn a_followed_pipeline_passes_arrivals_on_under_their_transaction() {
    let start = |global: Option<&str>| tracer::rest::RestStart {
        ts_us: 1_000,
        service: "glance-api".to_owned(),
        upstream_host: Some("10.0.0.2".to_owned()),
        method: "GET".to_owned(),
        path: "/v2/images/3cf6d929-3aa8-471b-a066-9c52d409c54f".to_owned(),
        global_request_id: global.map(str::to_owned),
        user_agent: Some("nova-api keystoneauth1/5.11".to_owned()),
    };
    let mut unfollowed = Pipeline::in_memory(StitchConfig::default());
    unfollowed.rest_started(&start(Some("req-g")));
    assert!(unfollowed.take_updates().is_empty());

    let mut pipeline = Pipeline::in_memory(StitchConfig::default());
    pipeline.follow();
    pipeline.rest_started(&start(None));
    pipeline.rest_started(&start(Some("req-g")));
    let updates = pipeline.take_updates();
    assert_eq!(updates.len(), 1, "a request of no transaction is left out");
    let Update::Started {
        transaction,
        request,
    } = &updates[0]
    else {
        panic!("{:?}", updates[0]);
    };
    assert_eq!(transaction, "req-g");
    assert_eq!(request.service, "glance-api");
    assert!(pipeline.finish().unwrap().transactions.is_empty());
}
