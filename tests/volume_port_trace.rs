//! End to end on the local testbed, issue 20: a `volume create`, the `server add volume` that
//! attaches it, and a `port create`, each issued by the workload's own client under its own global
//! request id, are each ONE transaction holding their REST calls (through the recording proxy)
//! and their RPCs (from the broker's firehose), as `rest_trace.rs` checks for a server create.
//!
//! Needs `butterfly testbed up` first; reads the testbed's state directory from
//! `BUTTERFLY_TESTBED_DIR` (default `/var/lib/butterfly/testbed`).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use butterfly::runner::openstack::{Credentials, Session, new_request_id};
use butterfly::runner::resources::Kind;
use butterfly::runner::trace::LiveTrace;
use tracer::event::{EventKind, Source, Transaction};

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
name: volume-port-trace-e2e
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
    - command: volume create
      rate: 1/m
experiments:
  - name: nothing-broken
    fault:
      kind: process-kill
    target:
      service: cinder-volume
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

type Operations<'a> = BTreeSet<(Source, Option<&'a str>, &'a str)>;

/// The one transaction holding `request_id`, and its REST requests and RPC calls and casts.
fn the_transaction<'a>(transactions: &'a [Transaction], request_id: &str) -> Operations<'a> {
    let ours: Vec<&Transaction> = transactions
        .iter()
        .filter(|t| {
            t.events
                .iter()
                .any(|e| e.ids.global_request_id.as_deref() == Some(request_id))
        })
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "{request_id} is spread over {} transactions",
        ours.len()
    );
    ours[0]
        .events
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::RestRequest | EventKind::RpcCall | EventKind::RpcCast
            )
        })
        .map(|e| (e.source, e.service.as_deref(), e.operation.as_str()))
        .collect()
}

fn has(operations: &Operations<'_>, source: Source, service: &str, operation: &str) -> bool {
    operations.contains(&(source, Some(service), operation))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the local testbed with OpenStack (root, minutes); run by scripts/test"]
async fn a_volume_create_its_attach_and_a_port_create_are_one_transaction_each() {
    let dir = tempfile::tempdir().unwrap();
    let campaign = scenarios::load(&campaign_file(dir.path())).expect("the campaign validates");
    let session =
        Session::connect(&Credentials::resolve(campaign.cloud.as_ref().unwrap()).unwrap())
            .await
            .expect("Keystone answers");
    let volume_endpoint = session
        .endpoints
        .volume
        .clone()
        .expect("a block-storage endpoint");
    assert!(
        volume_endpoint.contains(":18776/v3/"),
        "the block-storage endpoint {volume_endpoint} is not the REST proxy"
    );
    let template = session
        .server_template(&[("network".to_owned(), "none".to_owned())])
        .await
        .expect("flavor and image resolve");
    let (server, booted) = session
        .create_server(&template, &new_request_id(), Duration::from_secs(60))
        .await;
    booted.expect("the server became ACTIVE");
    let server = server.unwrap();
    let network = session
        .create_network("bfly-e2e", &new_request_id())
        .await
        .expect("network create");

    let trace_dir = dir.path().join("trace");
    let tracer = LiveTrace::start(&campaign, &trace_dir, false)
        .await
        .expect("the tracers start");
    let create_id = new_request_id();
    let (volume, created) = session
        .create_volume(1, "bfly-e2e", &create_id, Duration::from_secs(60))
        .await;
    let attach_id = new_request_id();
    let attached = match (&volume, &created) {
        (Some(volume), Ok(())) => {
            session
                .attach_volume(&server, volume, &attach_id, Duration::from_secs(60))
                .await
        }
        _ => Err("no volume to attach".to_owned()),
    };
    let port_id = new_request_id();
    let port = session.create_port(&network, "bfly-e2e", &port_id).await;
    // Trailing casts and replies (and the proxy's records) arrive after the last poll.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let transactions = tracer.stop().await.expect("the tracers stop cleanly");

    // Clean up before judging, so that a failed assertion leaves nothing behind.
    let rid = new_request_id();
    if let Some(volume) = &volume {
        let _ = session
            .detach_volume(&server, volume, &rid, Duration::from_secs(60))
            .await;
        let _ = session
            .delete_volume(volume, &rid, Duration::from_secs(60))
            .await;
    }
    let _ = session
        .delete_server(&server, &rid, Duration::from_secs(60))
        .await;
    if let Ok(port) = &port {
        let _ = session
            .delete_network_resource(Kind::Port, port, &rid)
            .await;
    }
    let _ = session
        .delete_network_resource(Kind::Network, &network, &rid)
        .await;
    created.expect("the volume became available");
    attached.expect("the volume became in-use");
    port.expect("port create");

    let create = the_transaction(&transactions, &create_id);
    let shown = format!("{create:?}");
    assert!(
        has(&create, Source::Rest, "cinder-api", "POST /v3/{id}/volumes"),
        "{shown}"
    );
    for rpc in [
        "cinder-scheduler.create_volume",
        "cinder-volume.create_volume",
    ] {
        assert!(
            create
                .iter()
                .any(|(source, _, op)| *source == Source::Amqp && *op == rpc),
            "{rpc} is missing: {shown}"
        );
    }

    let attach = the_transaction(&transactions, &attach_id);
    let shown = format!("{attach:?}");
    assert!(
        has(
            &attach,
            Source::Rest,
            "nova-api",
            "POST /v2.1/servers/{id}/os-volume_attachments"
        ),
        "{shown}"
    );
    // nova-api reserves the volume and nova-compute completes the attachment: Cinder's
    // attachments API, called by nova under the user's request id.
    assert!(
        has(
            &attach,
            Source::Rest,
            "cinder-api",
            "POST /v3/{id}/attachments"
        ),
        "nova's attachment create is missing: {shown}"
    );
    for rpc in ["compute.reserve_block_device_name", "compute.attach_volume"] {
        assert!(
            attach
                .iter()
                .any(|(source, _, op)| *source == Source::Amqp && *op == rpc),
            "{rpc} is missing: {shown}"
        );
    }

    let port = the_transaction(&transactions, &port_id);
    let shown = format!("{port:?}");
    // Without agents (docs/testbed.md) Neutron has no one to cast to: a port create is its REST
    // call alone, measured so on the testbed.
    assert!(
        has(&port, Source::Rest, "neutron-api", "POST /v2.0/ports"),
        "{shown}"
    );
}
