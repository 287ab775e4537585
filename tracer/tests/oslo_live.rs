//! Real oslo.messaging traffic through the local RabbitMQ, captured from the firehose.
//!
//! Needs: RabbitMQ on 127.0.0.1:5672 with guest/guest, `rabbitmqctl` on this machine, and a Python
//! with oslo.messaging (`BUTTERFLY_OSLO_PYTHON`, default `/var/cache/butterfly/venv-oslo/bin/python`;
//! see docs/tracer.md). Each test uses its own vhost, so tests can run in parallel.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::rabbitmq::{TestVhost, amqp_url, channel_with_topic_exchange};
use tokio::sync::{mpsc, oneshot};
use tracer::amqp::{AmqpCapture, CaptureMode, RabbitmqctlSwitch};
use tracer::event::{EdgeKind, EventKind, Outcome};
use tracer::oslo::AmqpRecord;
use tracer::pipeline::{Pipeline, TraceOutput};
use tracer::stitch::StitchConfig;

const DEFAULT_PYTHON: &str = "/var/cache/butterfly/venv-oslo/bin/python";
const SECRET: &str = "gAAAAABbutterflyTopSecretTokenValue0123456789";

fn oslo_python() -> PathBuf {
    let python = std::env::var_os("BUTTERFLY_OSLO_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PYTHON));
    assert!(
        python.exists(),
        "no Python with oslo.messaging at {} — create it with\n  python3 -m venv /var/cache/butterfly/venv-oslo && \
         /var/cache/butterfly/venv-oslo/bin/pip install oslo.messaging\nor set BUTTERFLY_OSLO_PYTHON",
        python.display()
    );
    python
}

/// Decodes and stitches captured records in memory, as `butterfly trace` does live.
fn stitch(records: &[AmqpRecord]) -> TraceOutput {
    let mut pipeline = Pipeline::in_memory(StitchConfig::default());
    for record in records {
        pipeline.push_amqp(record).unwrap();
    }
    pipeline.finish().unwrap()
}

fn driver() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oslo/driver.py")
}

/// Captures everything the driver sends through `vhost`, until the broker has been quiet a while.
async fn capture_driver_traffic(
    vhost: &str,
    mode: CaptureMode,
) -> (Vec<AmqpRecord>, serde_json::Value) {
    let python = oslo_python();
    let capture = AmqpCapture {
        url: amqp_url(vhost),
        mode,
        connection_name: format!("butterfly-test-{vhost}"),
        link: None,
    };
    let (sink, mut records) = mpsc::channel(100_000);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(capture.run(sink, Some(ready_tx), async move {
        let _ = stop_rx.await;
    }));
    ready_rx.await.expect("the capture started");
    let output = tokio::process::Command::new(&python)
        .arg(driver())
        .args([
            "--url",
            &format!("rabbit://guest:guest@127.0.0.1:5672/{vhost}"),
        ])
        .args([
            "--exchange",
            "bexchange",
            "--topic",
            "btopic",
            "--server",
            "hosta",
        ])
        .args(["--secret", SECRET])
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "the oslo.messaging driver failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let sent: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    // Drain until the broker has been quiet for two seconds: the driver has exited, so nothing
    // new is coming, and the firehose has handed over what it traced.
    let mut collected = Vec::new();
    while let Ok(Some(record)) = tokio::time::timeout(Duration::from_secs(2), records.recv()).await
    {
        collected.push(record);
    }
    let _ = stop_tx.send(());
    task.await.unwrap().expect("the capture ended cleanly");
    (collected, sent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_oslo_messaging_traffic_is_decoded_paired_and_secret_free() {
    let vhost = TestVhost::new("firehose");
    let switch = Arc::new(RabbitmqctlSwitch::default());
    let mode = CaptureMode::Firehose {
        switch: Some(switch.clone()),
    };
    let (records, sent) = capture_driver_traffic(&vhost.0, mode).await;
    assert!(
        !switch.is_on(&vhost.0).unwrap(),
        "the firehose was switched off again"
    );

    let output = stitch(&records);
    let counts = output.summary.amqp;
    assert!(counts.published > 0 && counts.delivered > 0, "{counts:?}");
    assert_eq!(counts.opaque, 0, "every message decoded: {counts:?}");
    assert_eq!(counts.decoded, counts.published);
    let mut decoder = tracer::oslo::Decoder::new();
    let unattributed: Vec<_> = records
        .iter()
        .filter_map(|record| match decoder.decode(record) {
            tracer::oslo::Decoded::Event(event)
                if tracer::stitch::transaction_key(&event).is_none()
                    && event.kind != EventKind::RpcReply =>
            {
                Some(event)
            }
            _ => None,
        })
        .collect();
    assert_eq!(output.summary.stitch.unattributed, 0, "{unattributed:#?}");

    // All the driver's traffic shares one context, so it is one transaction keyed by the global id.
    assert_eq!(output.transactions.len(), 1, "{:#?}", output.transactions);
    let transaction = &output.transactions[0];
    assert_eq!(transaction.id, "req-99999999-8888-7777-6666-555555555555");
    assert!(!transaction.background);
    let of_kind = |kind: EventKind| {
        transaction
            .events
            .iter()
            .filter(move |event| event.kind == kind)
    };
    let calls: Vec<_> = of_kind(EventKind::RpcCall).collect();
    assert_eq!(calls.len() as u64, sent["calls"].as_u64().unwrap());
    assert!(
        calls
            .iter()
            .all(|call| call.service.as_deref() == Some("btopic")
                && call.attrs["namespace"] == "butterfly"
                && call.attrs["version"] == "1.3"
                && call.ids.request_id.as_deref()
                    == Some("req-11111111-2222-3333-4444-555555555555"))
    );
    // Every call is paired with exactly one reply.
    for call in &calls {
        let replies = transaction
            .edges
            .iter()
            .filter(|edge| edge.kind == EdgeKind::Reply && edge.from == call.seq)
            .count();
        assert_eq!(
            replies, 1,
            "call {} ({}) has {replies} replies",
            call.seq, call.operation
        );
    }
    assert_eq!(of_kind(EventKind::RpcReply).count(), calls.len());
    // The failing remote method is recognized, with its exception class.
    let failures: Vec<_> = of_kind(EventKind::RpcReply)
        .filter(|reply| reply.is_error())
        .collect();
    assert_eq!(failures.len() as u64, sent["failures"].as_u64().unwrap());
    assert_eq!(
        failures[0].outcome,
        Some(Outcome::ReplyFailure {
            exception: "ValueError".to_owned()
        })
    );
    assert_eq!(failures[0].operation, "btopic.fail.reply");
    let casts: Vec<_> = of_kind(EventKind::RpcCast).collect();
    assert_eq!(casts.len() as u64, sent["casts"].as_u64().unwrap());
    assert_eq!(
        casts
            .iter()
            .filter(|cast| cast.host.as_deref() == Some("hosta"))
            .count(),
        1
    );
    let fanouts: Vec<_> = of_kind(EventKind::RpcFanout).collect();
    assert_eq!(fanouts.len() as u64, sent["fanouts"].as_u64().unwrap());
    assert_eq!(fanouts[0].operation, "btopic.refresh");
    let notifications: Vec<_> = of_kind(EventKind::Notification).collect();
    assert_eq!(
        notifications.len() as u64,
        sent["notifications"].as_u64().unwrap()
    );
    assert!(notifications.iter().all(
        |n| n.service.as_deref() == Some("nova-compute") && n.host.as_deref() == Some("hosta")
    ));
    let priorities: Vec<&str> = notifications
        .iter()
        .map(|n| n.attrs["priority"].as_str())
        .collect();
    assert_eq!(priorities, ["INFO", "ERROR"]);
    // Deliveries were matched to their messages (queue waits recorded).
    assert!(output.summary.stitch.deliveries_matched > 0);

    let serialized = serde_json::to_string(&output.transactions).unwrap();
    assert!(
        !serialized.contains(SECRET),
        "the auth token leaked into the output"
    );
    assert!(!serialized.contains("auth_token") && !serialized.contains("password"));
}

/// Declares the exchanges the driver's oslo.messaging will use, with oslo's own parameters
/// (`impl_rabbit.py`: topic exchange non-durable, fanout exchange auto-delete), so the tap can
/// bind before the first message.
async fn declare_oslo_exchanges(vhost: &str) {
    use lapin::ExchangeKind;
    use lapin::options::ExchangeDeclareOptions;
    use lapin::types::FieldTable;
    let (connection, channel) = channel_with_topic_exchange(&amqp_url(vhost), "bexchange").await;
    channel
        .exchange_declare(
            "btopic_fanout".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    connection.close(200, "declared".into()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_mode_sees_requests_and_notifications_without_the_firehose() {
    let vhost = TestVhost::new("tap");
    declare_oslo_exchanges(&vhost.0).await;
    let mode = CaptureMode::Tap {
        exchanges: vec!["bexchange".to_owned(), "btopic_fanout".to_owned()],
    };
    let (records, sent) = capture_driver_traffic(&vhost.0, mode).await;
    assert!(
        !RabbitmqctlSwitch::default().is_on(&vhost.0).unwrap(),
        "tap mode never turns the firehose on"
    );
    let output = stitch(&records);
    let counts = output.summary.amqp;
    assert_eq!(counts.opaque, 0, "{counts:?}");
    assert_eq!(counts.delivered, 0, "a tap sees no deliveries");
    assert_eq!(output.transactions.len(), 1);
    let events = &output.transactions[0].events;
    let count = |kind: EventKind| events.iter().filter(|event| event.kind == kind).count() as u64;
    assert_eq!(count(EventKind::RpcCall), sent["calls"].as_u64().unwrap());
    assert_eq!(count(EventKind::RpcCast), sent["casts"].as_u64().unwrap());
    assert_eq!(
        count(EventKind::RpcFanout),
        sent["fanouts"].as_u64().unwrap()
    );
    assert_eq!(
        count(EventKind::Notification),
        sent["notifications"].as_u64().unwrap()
    );
    // Replies travel through the default exchange, which cannot be tapped (documented limitation).
    assert_eq!(count(EventKind::RpcReply), 0);
    assert!(
        !serde_json::to_string(&output.transactions)
            .unwrap()
            .contains(SECRET)
    );
}
