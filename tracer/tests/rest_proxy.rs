//! The recording proxy forwards real HTTP on loopback and records templates, ids and status, but
//! never a token. Regression tests for issue 5.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::http::{next_exchange, proxy_spec, response_with_request_id, serve_http, spawn_proxy};
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracer::event::Outcome;
use tracer::proxy::BoundProxy;

const TOKEN: &str = "gAAAAABproxyTokenThatMustNotBeRecorded";

/// An upstream that checks the token arrived, echoes the path and answers with a request id.
async fn upstream() -> SocketAddr {
    serve_http(|request: Request<hyper::body::Incoming>| async move {
        let authorized = request
            .headers()
            .get("x-auth-token")
            .is_some_and(|v| v == TOKEN);
        let body = request.into_body().collect().await.unwrap().to_bytes();
        let mut response =
            response_with_request_id(body, "req-aaaaaaaa-0000-0000-0000-000000000001");
        *response.status_mut() = if authorized {
            StatusCode::ACCEPTED
        } else {
            StatusCode::UNAUTHORIZED
        };
        response
    })
    .await
}

#[tokio::test]
async fn proxy_records_template_ids_and_status_without_tokens() {
    let upstream = upstream().await;
    let (sink, mut records) = mpsc::unbounded_channel();
    let proxy = BoundProxy::bind(proxy_spec("nova-api", upstream), sink)
        .await
        .unwrap();
    let addr = proxy.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(proxy.serve(async {
        let _ = stopped.await;
    }));

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = Request::post(format!(
        "http://{addr}/v2.1/servers/3cf6d929-3aa8-471b-a066-9c52d409c54f/action?x=1"
    ))
    .header("x-auth-token", TOKEN)
    .header(
        "x-openstack-request-id",
        "req-bbbbbbbb-0000-0000-0000-000000000002",
    )
    .header("user-agent", "nova-conductor keystoneauth1/5.11")
    .body(Full::new(Bytes::from_static(b"{\"reboot\": {}}")))
    .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "the token was forwarded"
    );
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        &body[..],
        b"{\"reboot\": {}}",
        "the body was streamed through"
    );

    let (_, record) = next_exchange(&mut records).await;
    let event = record.to_event();
    assert_eq!(event.operation, "POST /v2.1/servers/{id}/action");
    assert_eq!(event.service.as_deref(), Some("nova-api"));
    assert_eq!(event.caller.as_deref(), Some("nova-conductor"));
    assert_eq!(event.outcome, Some(Outcome::Http { status: 202 }));
    assert_eq!(
        event.ids.global_request_id.as_deref(),
        Some("req-bbbbbbbb-0000-0000-0000-000000000002")
    );
    assert_eq!(
        event.ids.request_id.as_deref(),
        Some("req-aaaaaaaa-0000-0000-0000-000000000001")
    );
    assert!(event.duration_us.is_some());
    let serialized = serde_json::to_string(&event).unwrap() + &format!("{record:?}");
    assert!(!serialized.contains(TOKEN));

    let _ = stop.send(());
    served.await.unwrap().unwrap();
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_recorded_502() {
    // Bind and drop a listener to get a port nothing listens on.
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let (sink, mut records) = mpsc::unbounded_channel();
    let addr = spawn_proxy("glance-api", dead, sink).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client
        .request(
            Request::get(format!("http://{addr}/v2/images/fake-img"))
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let event = next_exchange(&mut records).await.1.to_event();
    assert_eq!(event.operation, "GET /v2/images/{id}");
    assert!(event.is_error());
}
