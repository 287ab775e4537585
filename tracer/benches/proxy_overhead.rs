//! Latency the recording REST proxy adds: the same keep-alive GET sent 20,000 times directly to a
//! local upstream and through the proxy; p50/p99 of both and of the difference are printed, and
//! criterion measures the mean. Run with `cargo bench -p tracer --bench proxy_overhead`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::http::{response_with_request_id, serve_http, spawn_proxy};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

const SAMPLES: usize = 20_000;

/// An upstream answering every request like nova's server list.
async fn upstream() -> SocketAddr {
    serve_http(|_request| async {
        response_with_request_id(
            Bytes::from_static(b"{\"servers\": []}"),
            "req-00000000-0000-0000-0000-000000000000",
        )
    })
    .await
}

async fn proxy(upstream: SocketAddr) -> SocketAddr {
    let (sink, mut records) = mpsc::unbounded_channel();
    let addr = spawn_proxy("nova-api", upstream, sink).await;
    // Consume the records as a live trace would.
    tokio::spawn(async move { while records.recv().await.is_some() {} });
    addr
}

async fn get(client: &Client<HttpConnector, Empty<Bytes>>, addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let request = Request::get(format!(
        "http://{addr}/v2.1/servers/3cf6d929-3aa8-471b-a066-9c52d409c54f"
    ))
    .header("x-auth-token", "gAAAAAsecret")
    .body(Empty::new())
    .unwrap();
    let response = client.request(request).await.unwrap();
    response.into_body().collect().await.unwrap();
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn bench(c: &mut Criterion) {
    let runtime = Runtime::new().unwrap();
    let (direct, proxied) = runtime.block_on(async {
        let upstream = upstream().await;
        (upstream, proxy(upstream).await)
    });
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let measure = |addr| {
        runtime.block_on(async {
            for _ in 0..1_000 {
                get(&client, addr).await;
            }
            let mut samples = Vec::with_capacity(SAMPLES);
            for _ in 0..SAMPLES {
                samples.push(get(&client, addr).await);
            }
            samples.sort();
            samples
        })
    };
    let direct_samples = measure(direct);
    let proxied_samples = measure(proxied);
    for p in [0.5, 0.99] {
        let d = percentile(&direct_samples, p);
        let v = percentile(&proxied_samples, p);
        println!(
            "p{:.0}: direct {:.1} µs, via proxy {:.1} µs, overhead {:.1} µs",
            p * 100.0,
            d.as_secs_f64() * 1e6,
            v.as_secs_f64() * 1e6,
            (v.as_secs_f64() - d.as_secs_f64()) * 1e6
        );
    }
    let mut group = c.benchmark_group("proxy_overhead");
    group.bench_function("direct GET", |b| {
        b.iter(|| runtime.block_on(get(&client, direct)))
    });
    group.bench_function("GET via recording proxy", |b| {
        b.iter(|| runtime.block_on(get(&client, proxied)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
