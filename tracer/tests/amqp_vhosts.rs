//! Several broker vhosts traced at once (OpenStack-Ansible gives each service its own), merged
//! into one trace in time order.
//!
//! Needs: RabbitMQ on 127.0.0.1:5672 with guest/guest and `rabbitmqctl` on this machine. The test
//! creates two vhosts of its own and deletes them afterwards.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::rabbitmq::{TestVhost, channel_with_topic_exchange};
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use tokio::sync::{mpsc, oneshot};
use tracer::amqp::{AmqpCapture, CaptureMode, ClusterSwitch, RabbitmqctlSwitch, TraceSwitch};
use tracer::merge::{MERGE_WINDOW, Merge};
use tracer::oslo::{AmqpRecord, Direction};

const PER_VHOST: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_firehose_of_two_vhosts_is_merged_into_one_ordered_trace() {
    let vhosts = [
        TestVhost::new("vhost-nova"),
        TestVhost::new("vhost-neutron"),
    ];
    let exchanges = ["nova", "neutron"];
    // The cluster switch over the one local node: what the runner builds from every host of the
    // `rabbitmq` service.
    let node = Arc::new(RabbitmqctlSwitch::default());
    let switch: Arc<dyn TraceSwitch> = Arc::new(ClusterSwitch::new(vec![node.clone()]));
    let (sink, mut records) = mpsc::channel::<AmqpRecord>(10_000);
    let mut captures = Vec::new();
    for vhost in &vhosts {
        let capture = AmqpCapture {
            url: vhost.url(),
            mode: CaptureMode::Firehose {
                switch: Some(switch.clone()),
            },
            connection_name: format!("butterfly-test-{}", vhost.0),
            link: None,
        };
        let (ready, is_ready) = oneshot::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(capture.run(sink.clone(), Some(ready), async move {
            let _ = stopped.await;
        }));
        is_ready.await.expect("the capture started");
        assert!(
            node.is_on(&vhost.0).unwrap(),
            "the firehose is on for {}",
            vhost.0
        );
        captures.push((stop, task));
    }
    drop(sink);

    // Publish alternately on both vhosts, each message numbered within its vhost.
    let mut channels = Vec::new();
    for (vhost, exchange) in vhosts.iter().zip(exchanges) {
        channels.push(channel_with_topic_exchange(&vhost.url(), exchange).await);
    }
    for n in 0..PER_VHOST {
        for ((_, channel), exchange) in channels.iter().zip(exchanges) {
            channel
                .basic_publish(
                    exchange.into(),
                    "topic.host".into(),
                    BasicPublishOptions::default(),
                    format!("{exchange}-{n}").as_bytes(),
                    BasicProperties::default(),
                )
                .await
                .expect("publishes")
                .await
                .expect("confirmed");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // Merge while receiving, as the runner does, until both vhosts' messages are in.
    let mut merge = Merge::new(MERGE_WINDOW);
    let mut trace = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let published = |trace: &[AmqpRecord]| {
        trace
            .iter()
            .filter(|r| {
                r.direction == Direction::Publish && exchanges.contains(&r.exchange.as_str())
            })
            .count()
    };
    while published(&trace) + merge.held() < 2 * PER_VHOST && tokio::time::Instant::now() < deadline
    {
        if let Ok(Some(record)) =
            tokio::time::timeout(Duration::from_millis(500), records.recv()).await
        {
            merge.push(record);
        }
        trace.extend(merge.ready(jiff::Timestamp::now().as_microsecond()));
    }
    for (stop, task) in captures {
        let _ = stop.send(());
        task.await.unwrap().expect("the capture ended cleanly");
    }
    while let Some(record) = records.recv().await {
        merge.push(record);
    }
    trace.extend(merge.drain());

    for vhost in &vhosts {
        assert!(
            !node.is_on(&vhost.0).unwrap(),
            "the firehose of {} is off again",
            vhost.0
        );
    }
    let trace: Vec<&AmqpRecord> = trace
        .iter()
        .filter(|r| r.direction == Direction::Publish && exchanges.contains(&r.exchange.as_str()))
        .collect();
    assert_eq!(trace.len(), 2 * PER_VHOST, "every message of both vhosts");
    assert!(
        trace.windows(2).all(|w| w[0].ts_us <= w[1].ts_us),
        "one trace in time order"
    );
    assert_eq!(merge.late(), 0);
    for exchange in exchanges {
        let bodies: Vec<String> = trace
            .iter()
            .filter(|r| r.exchange == exchange)
            .map(|r| String::from_utf8_lossy(&r.body).into_owned())
            .collect();
        let sent: Vec<String> = (0..PER_VHOST).map(|n| format!("{exchange}-{n}")).collect();
        assert_eq!(
            bodies, sent,
            "{exchange}'s messages, each once, in the order sent"
        );
    }
    // Both vhosts interleave in the merged trace (they were published alternately).
    let first_half: Vec<&str> = trace[..PER_VHOST]
        .iter()
        .map(|r| r.exchange.as_str())
        .collect();
    assert!(first_half.contains(&"nova") && first_half.contains(&"neutron"));
}
