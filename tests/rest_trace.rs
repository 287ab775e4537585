//! End to end on the local testbed, issue 5: one `server create` through the real API, traced by
//! the runner's tracer from the broker's firehose and the controller's REST record stream, is ONE
//! transaction under its global request id, holding the nova-api call, the conductor, scheduler
//! and compute RPCs and nova's calls to placement and glance, all recorded by the proxy that the
//! Keystone catalog and nova's glance URL point at.
//!
//! Needs `butterfly testbed up` first; reads the testbed's state directory from
//! `BUTTERFLY_TESTBED_DIR` (default `/var/lib/butterfly/testbed`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use butterfly::runner::openstack::{Credentials, Session, new_request_id};
use butterfly::runner::trace::LiveTrace;
use tracer::event::{EventKind, Source};

fn state_dir() -> PathBuf {
    std::env::var_os("BUTTERFLY_TESTBED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/butterfly/testbed"))
}

/// A campaign naming the running testbed's own outputs, with both tracers on.
fn campaign_file(dir: &std::path::Path) -> PathBuf {
    let state = state_dir();
    let yaml = format!(
        "version: 1
name: rest-trace-e2e
testbed:
  inventory: {inventory}
cloud:
  name: butterfly
  clouds_yaml: {clouds}
tracing:
  amqp:
    - url_file: {amqp}
      firehose: true
  rest_proxy: true
workload:
  commands:
    - command: server create
      rate: 1/m
      params: {{flavor: m1.tiny, image: fake-img, network: none}}
experiments:
  - name: nothing-broken
    fault:
      kind: process-kill
    target:
      service: nova-conductor
    trigger:
      after: 1s
    duration: 1s
",
        inventory = state.join("inventory.yaml").display(),
        clouds = state.join("clouds.yaml").display(),
        amqp = state.join("amqp-url").display(),
    );
    let path = dir.join("campaign.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local testbed with OpenStack (root, minutes); run by scripts/test"]
async fn one_server_create_is_one_transaction_with_its_rest_and_rpc_calls() {
    let dir = tempfile::tempdir().unwrap();
    let campaign = scenarios::load(&campaign_file(dir.path())).expect("the campaign validates");
    let cloud = campaign.cloud.as_ref().unwrap();
    let session = Session::connect(&Credentials::resolve(cloud).unwrap())
        .await
        .expect("Keystone answers");
    // The catalog the user sees names the proxy, not nova-api itself.
    assert!(
        session.endpoints.compute.contains(":18774/"),
        "the compute endpoint {} is not the REST proxy",
        session.endpoints.compute
    );
    let template = session
        .server_template(&[("network".to_owned(), "none".to_owned())])
        .await
        .expect("flavor and image resolve");

    let trace_dir = dir.path().join("trace");
    let tracer = LiveTrace::start(&campaign, &trace_dir, false)
        .await
        .expect("the tracers start");
    let request_id = new_request_id();
    let (server, created) = session
        .create_server(&template, &request_id, Duration::from_secs(60))
        .await;
    // Trailing casts and replies (and the proxy's records) arrive after ACTIVE.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let transactions = tracer.stop().await.expect("the tracers stop cleanly");
    if let Some(server) = &server {
        let _ = session
            .delete_server(server, &new_request_id(), Duration::from_secs(60))
            .await;
    }
    created.expect("the server became ACTIVE");

    let ours: Vec<_> = transactions
        .iter()
        .filter(|t| {
            t.events
                .iter()
                .any(|e| e.ids.global_request_id.as_deref() == Some(request_id.as_str()))
        })
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "the create is spread over {} transactions",
        ours.len()
    );
    let transaction = ours[0];
    let operations: BTreeSet<(Source, Option<&str>, &str)> = transaction
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::RestRequest | EventKind::RpcCall | EventKind::RpcCast
            )
        })
        .map(|e| (e.source, e.service.as_deref(), e.operation.as_str()))
        .collect();
    let has = |source: Source, service: &str, operation: &str| {
        operations.contains(&(source, Some(service), operation))
    };
    let shown = format!("{operations:?}");
    assert!(
        has(Source::Rest, "nova-api", "POST /v2.1/servers"),
        "{shown}"
    );
    assert!(
        has(Source::Rest, "glance-api", "GET /v2/images/{id}"),
        "nova-api's image lookup is missing: {shown}"
    );
    assert!(
        has(Source::Rest, "placement-api", "GET /allocation_candidates"),
        "the scheduler's placement query is missing: {shown}"
    );
    // Nova hands the global request id on to placement itself (keystoneauth's
    // X-OpenStack-Request-ID), so the proxy recorded it there, not only the stitcher's guess.
    assert!(
        transaction.events.iter().any(|e| e.source == Source::Rest
            && e.service.as_deref() == Some("placement-api")
            && e.ids.global_request_id.as_deref() == Some(request_id.as_str())),
        "no placement call carried the global request id: {shown}"
    );
    for rpc in [
        "conductor.schedule_and_build_instances",
        "scheduler.select_destinations",
        "compute.build_and_run_instance",
    ] {
        assert!(
            operations
                .iter()
                .any(|(source, _, operation)| *source == Source::Amqp && *operation == rpc),
            "{rpc} is missing: {shown}"
        );
    }

    // Nothing the tracer wrote holds the session's token or a password.
    let token_free = |text: &str| {
        !text.contains("gAAAAA")
            && !text.to_ascii_lowercase().contains("x-auth-token")
            && !text.contains("_context_auth_token\":\"")
    };
    for entry in std::fs::read_dir(&trace_dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(token_free(&text), "{} holds a token", path.display());
        }
    }
}
