//! The proxy's live record stream on real loopback TCP: subscribers get every record after the
//! header, records nobody subscribes to are counted and dropped, a subscriber that stops reading
//! is cut off without holding up the others, and no token reaches the stream. Issue 5.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::http::{response_with_request_id, serve_http, spawn_proxy};
use http_body_util::Full;
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tracer::records::{RecordServer, RecordStats, RecordSubscription, SUBSCRIBER_QUEUE};
use tracer::rest::{ProxyRecord, RestRecord};

const TOKEN: &str = "gAAAAABstreamTokenThatMustNotBeStreamed";

fn record(n: u64) -> ProxyRecord {
    ProxyRecord::Answered(RestRecord {
        ts_us: i64::try_from(n).unwrap(),
        service: "placement-api".to_owned(),
        upstream: "http://controller:8778".to_owned(),
        upstream_host: Some("controller".to_owned()),
        method: "GET".to_owned(),
        path: format!("/resource_providers/{n}"),
        status: 200,
        duration_us: n,
        global_request_id: Some(format!("req-{n:032x}")),
        request_id: None,
        user_agent: Some("nova-scheduler keystoneauth1/5.11".to_owned()),
    })
}

/// A stream server on loopback, fed by the returned sender.
async fn server() -> (
    String,
    mpsc::UnboundedSender<ProxyRecord>,
    std::sync::Arc<RecordStats>,
    oneshot::Sender<()>,
) {
    let server = RecordServer::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap().to_string();
    let stats = server.stats();
    let (sink, records) = mpsc::unbounded_channel();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(server.serve(records, async {
        let _ = stopped.await;
    }));
    (addr, sink, stats, stop)
}

/// Waits (bounded) until `done` holds; the stream works asynchronously of the sender.
async fn eventually(mut done: impl FnMut() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(done(), "condition not reached within 5 s");
}

#[tokio::test]
async fn subscribers_get_every_record_after_the_header_and_none_is_kept_for_nobody() {
    let (addr, sink, stats, _stop) = server().await;
    sink.send(record(1)).unwrap();
    eventually(|| stats.unsubscribed.load(Ordering::Relaxed) == 1).await;

    let mut first = RecordSubscription::connect(&addr).await.unwrap();
    let mut second = RecordSubscription::connect(&addr).await.unwrap();
    for n in 2..=101 {
        sink.send(record(n)).unwrap();
    }
    for subscription in [&mut first, &mut second] {
        for n in 2..=101 {
            assert_eq!(subscription.next().await.unwrap(), Some(record(n)));
        }
    }
    assert_eq!(stats.recorded.load(Ordering::Relaxed), 101);
    assert_eq!(stats.streamed.load(Ordering::Relaxed), 100);
    assert_eq!(stats.unsubscribed.load(Ordering::Relaxed), 1);

    // A subscriber that hangs up is forgotten: records are dropped again, not queued for it.
    drop(first);
    drop(second);
    eventually(|| {
        sink.send(record(0)).unwrap();
        stats.unsubscribed.load(Ordering::Relaxed) > 1
    })
    .await;
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_cut_off_and_holds_up_nobody() {
    let (addr, sink, stats, _stop) = server().await;
    let stalled = RecordSubscription::connect(&addr).await.unwrap();
    let mut reader = RecordSubscription::connect(&addr).await.unwrap();
    // Far more than the queue plus what the kernel's socket buffers can hold for the stalled one.
    let total = (SUBSCRIBER_QUEUE as u64) * 40;
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = std::sync::Arc::clone(&read);
    let reading = tokio::spawn(async move {
        for n in 0..total {
            assert_eq!(reader.next().await.unwrap(), Some(record(n)));
            progress.store(n + 1, Ordering::Relaxed);
        }
    });
    // Paced in batches well below the queue, so the reader keeps up and only the stalled one
    // falls behind.
    let batch = (SUBSCRIBER_QUEUE / 8) as u64;
    for start in (0..total).step_by(batch as usize) {
        for n in start..(start + batch).min(total) {
            sink.send(record(n)).unwrap();
        }
        eventually(|| read.load(Ordering::Relaxed) >= start).await;
    }
    tokio::time::timeout(Duration::from_secs(60), reading)
        .await
        .expect("the reading subscriber got every record although another one stalled")
        .unwrap();
    assert_eq!(stats.slow_subscribers.load(Ordering::Relaxed), 1);
    assert_eq!(stats.streamed.load(Ordering::Relaxed), total);
    drop(stalled);
}

#[tokio::test]
async fn something_that_is_not_a_record_stream_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream
            .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            .await
            .unwrap();
    });
    let error = RecordSubscription::connect(&addr)
        .await
        .err()
        .expect("an HTTP server is not a record stream")
        .to_string();
    assert!(error.contains("not a butterfly record stream"), "{error}");
}

#[tokio::test]
async fn proxied_calls_reach_the_stream_without_their_token() {
    // Upstream: answers every request with a request id.
    let upstream_addr = serve_http(|_request| async {
        response_with_request_id(
            Bytes::from_static(b"{}"),
            "req-cccccccc-0000-0000-0000-000000000003",
        )
    })
    .await;
    let (stream_addr, sink, _stats, _stop) = server().await;
    let proxy_addr = spawn_proxy("glance-api", upstream_addr, sink).await;

    let mut subscription = RecordSubscription::connect(&stream_addr).await.unwrap();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::get(format!(
        "http://{proxy_addr}/v2/images/3cf6d929-3aa8-471b-a066-9c52d409c54f?x-auth-token={TOKEN}"
    ))
    .header("x-auth-token", TOKEN)
    .header(
        "x-openstack-request-id",
        "req-dddddddd-0000-0000-0000-000000000004",
    )
    .header("user-agent", "nova-api keystoneauth1/5.11")
    .body(Full::new(Bytes::new()))
    .unwrap();
    assert_eq!(client.request(request).await.unwrap().status(), 200);

    let Some(ProxyRecord::Started(start)) = subscription.next().await.unwrap() else {
        panic!("the arrival is streamed first");
    };
    let Some(ProxyRecord::Answered(streamed)) = subscription.next().await.unwrap() else {
        panic!("the answer is streamed next");
    };
    assert!(start.answered_by(&streamed.to_event()));
    let text = serde_json::to_string(&start).unwrap();
    assert!(!text.contains(TOKEN), "{text}");
    assert_eq!(streamed.service, "glance-api");
    assert_eq!(
        streamed.global_request_id.as_deref(),
        Some("req-dddddddd-0000-0000-0000-000000000004")
    );
    assert_eq!(
        streamed.to_event().operation,
        "GET /v2/images/{id}",
        "the query is not part of the record"
    );
    let text = serde_json::to_string(&streamed).unwrap();
    assert!(!text.contains(TOKEN), "{text}");
}
