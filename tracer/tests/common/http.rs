//! Loopback HTTP for the REST proxy tests and the proxy overhead bench: a stand-in OpenStack API
//! upstream and a recording proxy in front of it.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracer::proxy::{BoundProxy, ProxySpec};
use tracer::rest::{ProxyRecord, RestRecord, RestStart};

/// Serves HTTP/1 on a fresh loopback port, answering every request with `handler`, for as long
/// as the runtime lives.
pub async fn serve_http<Handler, Answer>(handler: Handler) -> SocketAddr
where
    Handler: Fn(Request<Incoming>) -> Answer + Clone + Send + 'static,
    Answer: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            // Small keep-alive exchanges must not wait for Nagle's algorithm: the overhead bench
            // measures their latency.
            let _ = stream.set_nodelay(true);
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let answer = handler(request);
                    async move { Ok::<_, Infallible>(answer.await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A 200 response with `body` and the `x-openstack-request-id` an OpenStack API sets.
pub fn response_with_request_id(body: impl Into<Bytes>, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    response
        .headers_mut()
        .insert("x-openstack-request-id", request_id.parse().unwrap());
    response
}

/// A recording proxy for `service` in front of `upstream` on a fresh loopback port, serving for
/// as long as the runtime lives; its records go to `sink`.
pub async fn spawn_proxy(
    service: &str,
    upstream: SocketAddr,
    sink: mpsc::UnboundedSender<ProxyRecord>,
) -> SocketAddr {
    let proxy = BoundProxy::bind(proxy_spec(service, upstream), sink)
        .await
        .unwrap();
    let addr = proxy.local_addr().unwrap();
    tokio::spawn(proxy.serve(std::future::pending()));
    addr
}

/// The spec of a proxy for `service` on a fresh loopback port in front of `upstream`.
pub fn proxy_spec(service: &str, upstream: SocketAddr) -> ProxySpec {
    format!("{service}=127.0.0.1:0=http://{upstream}")
        .parse()
        .unwrap()
}

/// The next exchange a proxy recorded: its arrival, which must come first, and its answer, which
/// must pair with it.
pub async fn next_exchange(
    records: &mut mpsc::UnboundedReceiver<ProxyRecord>,
) -> (RestStart, RestRecord) {
    let Some(ProxyRecord::Started(start)) = records.recv().await else {
        panic!("the proxy did not announce the request first");
    };
    let Some(ProxyRecord::Answered(answer)) = records.recv().await else {
        panic!("the proxy did not record the answer");
    };
    assert!(
        start.answered_by(&answer.to_event()),
        "{start:?} / {answer:?}"
    );
    (start, answer)
}
