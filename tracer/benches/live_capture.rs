//! Live capture under a flood: a publisher sends oslo-style casts to the local RabbitMQ as fast as
//! it can while the tracer captures the firehose of the same (own) vhost; afterwards every
//! published message must have been captured and decoded (zero loss). Prints the publish rate, the
//! capture rate and the counts. Needs the local RabbitMQ (guest/guest) and `rabbitmqctl`.
//! Run with `cargo bench -p tracer --bench live_capture` (optional argument: message count).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::rabbitmq::{TestVhost, channel_with_topic_exchange};
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use tokio::sync::{mpsc, oneshot};
use tracer::amqp::{AmqpCapture, CaptureMode, RabbitmqctlSwitch};
use tracer::oslo::envelope;
use tracer::pipeline::Pipeline;
use tracer::stitch::StitchConfig;

#[tokio::main]
async fn main() {
    let count: u64 = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(200_000);
    let vhost = TestVhost::new("flood");
    let url = vhost.url();

    let (sink, mut records) = mpsc::channel(65_536);
    let (ready_tx, ready_rx) = oneshot::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let capture = AmqpCapture {
        url: url.clone(),
        mode: CaptureMode::Firehose {
            switch: Some(Arc::new(RabbitmqctlSwitch::default())),
        },
        connection_name: tracer::amqp::CONNECTION_NAME.to_owned(),
        link: None,
    };
    let capture = tokio::spawn(capture.run(sink, Some(ready_tx), async {
        let _ = stop_rx.await;
    }));
    ready_rx.await.expect("capture started");

    // The consumer side: decode and stitch as records arrive, like `butterfly trace`.
    let progress = Arc::new(AtomicU64::new(0));
    let seen_by_consumer = Arc::clone(&progress);
    let consumer = tokio::spawn(async move {
        let mut pipeline = Pipeline::counting(StitchConfig::default());
        let mut first = None;
        let mut last = Instant::now();
        while let Some(record) = records.recv().await {
            first.get_or_insert_with(Instant::now);
            pipeline.push_amqp(&record).unwrap();
            seen_by_consumer.fetch_add(1, Ordering::Relaxed);
            last = Instant::now();
        }
        let elapsed = first.map_or(Duration::ZERO, |first| last - first);
        (pipeline.finish().unwrap().summary, elapsed)
    });

    let (connection, channel) = channel_with_topic_exchange(&url, "nova").await;
    let started = Instant::now();
    for n in 0..count {
        let body = envelope(&serde_json::json!({
            "method": "object_action", "args": {"objmethod": "save", "n": n}, "version": "3.0",
            "_unique_id": format!("{n:032x}"), "_context_request_id": format!("req-{:08x}", n / 20),
            "_context_auth_token": "gAAAAAfloodsecret", "_context_user_id": "u"}));
        // Unconfirmed publishes: the publisher's fastest mode. Nothing consumes `conductor`, so the
        // firehose's publish trace is the only copy.
        let confirm = channel
            .basic_publish(
                "nova".into(),
                "conductor".into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default(),
            )
            .await
            .unwrap();
        // Confirms are off, so there is nothing to wait for.
        drop(confirm);
    }
    let publish_elapsed = started.elapsed();
    connection.close(200, "done".into()).await.unwrap();

    // Wait until the capture has been quiet for 3 s, then stop it.
    let mut seen = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let now = progress.load(Ordering::Relaxed);
        if now == seen || capture.is_finished() {
            break;
        }
        seen = now;
    }
    let _ = stop_tx.send(());
    capture.await.unwrap().unwrap();
    let (summary, capture_elapsed) = consumer.await.unwrap();
    drop(vhost);

    println!(
        "published {count} messages in {:.2} s = {:.0} msgs/s",
        publish_elapsed.as_secs_f64(),
        count as f64 / publish_elapsed.as_secs_f64()
    );
    println!(
        "captured {} publish records ({} decoded, {} opaque) in {:.2} s = {:.0} msgs/s; lost {}",
        summary.amqp.published,
        summary.amqp.decoded,
        summary.amqp.opaque,
        capture_elapsed.as_secs_f64(),
        summary.amqp.published as f64 / capture_elapsed.as_secs_f64().max(1e-9),
        count.saturating_sub(summary.amqp.published)
    );
    assert_eq!(summary.amqp.published, count, "zero loss");
    assert_eq!(summary.amqp.decoded, count);
}
