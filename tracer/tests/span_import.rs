//! Importing the spans OpenStack deployments already produce: each format's fixture (made by the
//! real producer, see `fixtures/spans/generate.py`) becomes the same `server create`
//! transaction as a capture would: a REST request, RPC calls paired with their replies by
//! `_msg_id`, a cast, a failed reply.

use std::path::{Path, PathBuf};

use tracer::event::{EdgeKind, Event, EventKind, Outcome, Transaction};
use tracer::import::{self, ImportOptions, InputFormat, TagMap};
use tracer::pipeline::Pipeline;
use tracer::stitch::StitchConfig;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/spans")
        .join(name)
}

fn import(name: &str, options: &ImportOptions) -> (import::ImportReport, Vec<Transaction>) {
    let mut pipeline = Pipeline::in_memory(StitchConfig::default());
    let report = import::import_with(&fixture(name), options, &mut pipeline).unwrap();
    (report, pipeline.finish().unwrap().transactions)
}

fn find<'a>(transaction: &'a Transaction, kind: EventKind, operation: &str) -> &'a Event {
    transaction
        .events
        .iter()
        .find(|e| e.kind == kind && e.operation == operation)
        .unwrap_or_else(|| panic!("no {kind:?} {operation} in {:#?}", transaction.events))
}

fn replied(transaction: &Transaction, call: &Event) -> Option<Outcome> {
    let edge = transaction
        .edges
        .iter()
        .find(|e| e.kind == EdgeKind::Reply && e.from == call.seq)?;
    let reply = transaction.events.iter().find(|e| e.seq == edge.to)?;
    assert_eq!(reply.ids.msg_id, call.ids.msg_id);
    assert_eq!(reply.operation, format!("{}.reply", call.operation));
    reply.outcome.clone()
}

/// The request every fixture records, checked the same way for every format.
fn assert_server_create(transaction: &Transaction, cast: bool, failure: &str) {
    assert_eq!(transaction.command.as_deref(), Some("server create"));
    let rest = find(transaction, EventKind::RestRequest, "POST /v2.1/servers");
    assert_eq!(rest.service.as_deref(), Some("nova-api"));
    let build = find(transaction, EventKind::RpcCall, "conductor.build_instances");
    assert_eq!(build.service.as_deref(), Some("nova-conductor"));
    assert_eq!(replied(transaction, build), Some(Outcome::ReplyOk));
    let fail = find(transaction, EventKind::RpcCall, "conductor.fail_build");
    assert_eq!(
        replied(transaction, fail),
        Some(Outcome::ReplyFailure {
            exception: failure.to_owned()
        })
    );
    if cast {
        let schedule = find(transaction, EventKind::RpcCast, "conductor.schedule");
        assert!(schedule.ids.msg_id.is_none());
    }
    // The RPCs hang from the REST request (span edges through any dropped span).
    assert!(
        transaction
            .edges
            .iter()
            .any(|e| e.kind == EdgeKind::Span && e.from == rest.seq && e.to == build.seq),
        "{:?}",
        transaction.edges
    );
}

#[test]
fn osprofiler_trace_show_json_becomes_rest_and_paired_rpc_events() {
    let (report, transactions) = import("osprofiler.json", &ImportOptions::default());
    assert_eq!(report.format, InputFormat::Osprofiler);
    assert!(report.detected);
    assert_eq!(transactions.len(), 1);
    assert_server_create(&transactions[0], true, "ValueError");
    // The oslo.messaging message's own ids, not made-up ones.
    let build = find(
        &transactions[0],
        EventKind::RpcCall,
        "conductor.build_instances",
    );
    let msg_id = build.ids.msg_id.as_deref().unwrap();
    assert!(msg_id.len() == 32 && msg_id.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        build
            .ids
            .reply_queue
            .as_deref()
            .unwrap()
            .starts_with("reply_")
    );
    assert!(build.ids.request_id.as_deref().unwrap().starts_with("req-"));
}

#[test]
fn osprofiler_otlp_export_keeps_only_functions_so_rpcs_are_calls() {
    let (report, transactions) = import("osprofiler.otlp.json", &ImportOptions::default());
    assert_eq!(report.format, InputFormat::Otlp);
    assert_eq!(transactions.len(), 1);
    // OSProfiler's OTLP driver drops the message; every `rpc` trace point is taken as a call.
    assert_server_create(&transactions[0], false, "ValueError");
    let schedule = find(&transactions[0], EventKind::RpcCall, "conductor.schedule");
    assert!(schedule.ids.msg_id.as_deref().unwrap().starts_with("span-"));
}

#[test]
fn oslo_messaging_otel_tracing_folds_receive_spans_into_their_calls() {
    let (report, transactions) = import("otlp.json", &ImportOptions::default());
    let spans = report.spans.unwrap();
    assert_eq!(spans.folded, 3, "{report}");
    assert_eq!((spans.calls, spans.casts, spans.replies), (2, 1, 2));
    assert_eq!(transactions.len(), 1);
    assert_server_create(&transactions[0], true, "ValueError");
    let build = find(
        &transactions[0],
        EventKind::RpcCall,
        "conductor.build_instances",
    );
    // The `_msg_id` is the one oslo.messaging's receive span saw.
    assert!(!build.ids.msg_id.as_deref().unwrap().starts_with("span-"));
    assert!(build.attrs.contains_key("queue_wait_us"));
    // The transaction is the request's global request id, as a capture's would be.
    assert!(transactions[0].id.starts_with("req-"));
}

#[test]
fn zipkin_v1_nested_and_flat_read_alike_with_their_annotations() {
    let (nested, nested_transactions) = import("zipkin-v1.json", &ImportOptions::default());
    let (flat, flat_transactions) = import("zipkin-v1-flat.json", &ImportOptions::default());
    assert_eq!(nested.format, InputFormat::ZipkinV1);
    assert_eq!(flat.format, InputFormat::ZipkinV1);
    assert_eq!(nested.spans, flat.spans);
    assert_eq!(nested_transactions, flat_transactions);
    // Two requests, each a transaction of its own (by trace).
    assert_eq!(nested_transactions.len(), 2);
    for transaction in &nested_transactions {
        assert_server_create(transaction, true, "NoValidHost");
    }
    // Operations come from the tags, never a generic `call`.
    assert!(
        nested_transactions
            .iter()
            .flat_map(|t| &t.events)
            .all(|e| e.operation != "call")
    );
}

#[test]
fn zipkin_v2_reads_the_same_request() {
    let (report, transactions) = import("zipkin-v2.json", &ImportOptions::default());
    assert_eq!(report.format, InputFormat::ZipkinV2);
    assert_eq!(transactions.len(), 1);
    assert_server_create(&transactions[0], true, "NoValidHost");
}

#[test]
fn unmapped_tags_are_kept_on_events_and_counted() {
    let (report, transactions) = import("osprofiler.json", &ImportOptions::default());
    let kept: usize = transactions[0]
        .events
        .iter()
        .map(|e| e.attrs.keys().filter(|k| k.starts_with("tag.")).count())
        .sum();
    assert!(kept > 0);
    assert_eq!(kept as u64, report.spans.unwrap().unmapped_tags);
    let build = find(
        &transactions[0],
        EventKind::RpcCall,
        "conductor.build_instances",
    );
    assert_eq!(build.attrs["tag.messaging.system"], "rabbitmq");
}

#[test]
fn a_tag_map_file_renames_a_role_and_unmaps_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tags.yaml");
    // This deployment's RPC method tag is another one: the default `rpc.method` is then unmapped.
    std::fs::write(
        &path,
        "rpc_method: [nothing.here]\nrequest_id: [messaging.system]\n",
    )
    .unwrap();
    let options = ImportOptions {
        format: None,
        tags: TagMap::read(&path).unwrap(),
    };
    let (report, transactions) = import("zipkin-v2.json", &options);
    let spans = report.spans.unwrap();
    assert_eq!(
        (spans.calls, spans.casts, spans.rest),
        (0, 0, 1),
        "{report}"
    );
    assert_eq!(spans.internal, 3);
    assert_eq!(transactions[0].events.len(), 1);
}

#[test]
fn forcing_the_wrong_format_says_what_the_file_looks_like() {
    let mut pipeline = Pipeline::in_memory(StitchConfig::default());
    let options = ImportOptions {
        format: Some(InputFormat::ZipkinV2),
        tags: TagMap::default(),
    };
    let error = import::import_with(&fixture("zipkin-v1.json"), &options, &mut pipeline)
        .unwrap_err()
        .to_string();
    insta::assert_snapshot!(
        "forced_zipkin_v2_on_v1",
        error.replace(env!("CARGO_MANIFEST_DIR"), "$TRACER")
    );
}

#[test]
fn an_unrecognised_document_names_the_file_what_it_saw_and_what_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spans.json");
    std::fs::write(&path, r#"{"traces": [{"spans": []}]}"#).unwrap();
    let error = import::detect(&path).unwrap_err().to_string();
    insta::assert_snapshot!(
        "unrecognised_document",
        error.replace(&dir.path().display().to_string(), "$DIR")
    );
    std::fs::write(&path, "[{\"traceId\": ").unwrap();
    let error = import::detect(&path).unwrap_err().to_string();
    insta::assert_snapshot!(
        "not_json",
        error.replace(&dir.path().display().to_string(), "$DIR")
    );
}

#[test]
fn a_tag_map_with_an_unknown_role_is_refused_with_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tags.yaml");
    std::fs::write(&path, "request_id: [x-request-id]\nrequest_ids: [y]\n").unwrap();
    let error = TagMap::read(&path).unwrap_err().to_string();
    insta::assert_snapshot!(
        "tag_map_unknown_role",
        error.replace(&dir.path().display().to_string(), "$DIR")
    );
    std::fs::write(&path, "request_id: x-request-id\n").unwrap();
    let error = TagMap::read(&path).unwrap_err().to_string();
    insta::assert_snapshot!(
        "tag_map_not_a_list",
        error.replace(&dir.path().display().to_string(), "$DIR")
    );
}

#[test]
fn jaeger_json_reads_like_the_otlp_it_was_stored_from() {
    let (report, transactions) = import("jaeger.json", &ImportOptions::default());
    assert_eq!(report.format, InputFormat::Jaeger);
    assert_eq!(report.spans.unwrap().folded, 3, "{report}");
    assert_eq!(transactions.len(), 1);
    assert_server_create(&transactions[0], true, "ValueError");
    let (_, otlp) = import("otlp.json", &ImportOptions::default());
    let shape = |t: &Transaction| -> Vec<(EventKind, String)> {
        t.events
            .iter()
            .map(|e| (e.kind, e.operation.clone()))
            .collect()
    };
    assert_eq!(shape(&transactions[0]), shape(&otlp[0]));
}
