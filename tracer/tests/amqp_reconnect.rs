//! The live capture survives the broker dropping it (issue 5): the local RabbitMQ (127.0.0.1:5672,
//! guest/guest, `rabbitmqctl` on this machine) force-closes the capture's connection, as a broker
//! restart would, and the capture must reconnect, switch the firehose on again and go on.
//!
//! The shared broker is never stopped: only this test's connection is closed, in a vhost of its
//! own.

use std::sync::Arc;
use std::time::Duration;

use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use tokio::sync::{mpsc, oneshot};
use tracer::amqp::{AmqpCapture, CaptureMode, RabbitmqctlSwitch};
use tracer::oslo::{AmqpRecord, Direction};

mod common;

use common::rabbitmq::{TestVhost, channel_with_topic_exchange, rabbitmqctl};

/// The broker's pid of the connection named `name` (client property `connection_name`).
fn connection_pid(name: &str) -> Option<String> {
    rabbitmqctl(&["list_connections", "pid", "client_properties"])
        .lines()
        .find(|line| line.contains(&format!("\"{name}\"")))
        .and_then(|line| line.split_whitespace().next())
        .map(str::to_owned)
}

/// Waits for a record whose body starts with `prefix`, publishing `prefix-<n>` every 100 ms.
async fn publish_until_seen(
    channel: &lapin::Channel,
    records: &mut mpsc::Receiver<AmqpRecord>,
    prefix: &str,
) -> AmqpRecord {
    for attempt in 0..200 {
        channel
            .basic_publish(
                "bt-exchange".into(),
                "bt.key".into(),
                BasicPublishOptions::default(),
                format!("{prefix}-{attempt}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("publishes");
        while let Ok(Some(record)) =
            tokio::time::timeout(Duration::from_millis(100), records.recv()).await
        {
            if record.direction == Direction::Publish && record.body.starts_with(prefix.as_bytes())
            {
                return record;
            }
        }
    }
    panic!("no `{prefix}` message was captured within 20 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capture_reconnects_after_the_broker_closes_its_connection() {
    let vhost = TestVhost::new("reconnect");
    let url = vhost.url();
    let switch = RabbitmqctlSwitch::default();
    assert!(!switch.is_on(&vhost.0).unwrap());

    let name = format!("butterfly-reconnect-test-{}", std::process::id());
    let (link, mut link_changes) = tokio::sync::watch::channel(None);
    let before_start = jiff::Timestamp::now().as_microsecond();
    let capture = AmqpCapture {
        url: url.clone(),
        mode: CaptureMode::Firehose {
            switch: Some(Arc::new(switch.clone())),
        },
        connection_name: name.clone(),
        link: Some(link),
    };
    // What a live detector hears about the broker link: lost (since when), then back.
    let heard = tokio::spawn(async move {
        let mut states = Vec::new();
        while link_changes.changed().await.is_ok() {
            states.push(*link_changes.borrow_and_update());
        }
        states
    });
    let (sink, mut records) = mpsc::channel(10_000);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(capture.run(sink, Some(ready_tx), async move {
        let _ = stop_rx.await;
    }));
    ready_rx.await.expect("the capture started");
    assert!(
        switch.is_on(&vhost.0).unwrap(),
        "the capture switched the firehose on"
    );

    let (publisher, channel) = channel_with_topic_exchange(&url, "bt-exchange").await;
    let before = publish_until_seen(&channel, &mut records, "before").await;
    assert_eq!(before.exchange, "bt-exchange");

    // The broker drops the capture and, as after a restart of the node, forgets `trace_on`.
    let pid = connection_pid(&name).expect("the capture's connection is listed by its name");
    rabbitmqctl(&["trace_off", "-p", &vhost.0]);
    rabbitmqctl(&["close_connection", &pid, "butterfly test: broker restart"]);

    let after = publish_until_seen(&channel, &mut records, "after").await;
    assert_eq!(after.routing_key, "bt.key");
    let new_pid = connection_pid(&name).expect("the capture is connected again");
    assert_ne!(new_pid, pid, "a new connection");
    assert!(
        switch.is_on(&vhost.0).unwrap(),
        "the capture switched the firehose on again"
    );

    let _ = stop_tx.send(());
    let stats = task.await.unwrap().expect("the capture ended cleanly");
    assert_eq!(stats.reconnects, 1, "{stats:?}");
    let states = heard.await.unwrap();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(
        states[0].is_some_and(|since| since > before_start),
        "{states:?}"
    );
    assert_eq!(states[1], None, "{states:?}");
    assert!(stats.gap_us > 0, "{stats:?}");
    assert!(stats.consumed >= 2, "{stats:?}");
    // It switched the firehose on, so it switched it off again at the end.
    assert!(!switch.is_on(&vhost.0).unwrap());
    let _ = publisher.close(200, "done".into()).await;
}
