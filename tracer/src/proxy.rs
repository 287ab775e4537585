//! The recording REST reverse proxy: one listener per API endpoint, forwarding to the real service
//! and recording a [`RestRecord`] per exchange.
//!
//! Requests and responses are streamed through unchanged (headers included, so authentication
//! works); the record keeps only method, path, status, latency, request ids and the user agent,
//! never a header such as `X-Auth-Token`. Pointing the Keystone catalog at the proxies routes
//! every API call (user → API and service → service) through them.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, USER_AGENT};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::rest::{ProxyRecord, RestRecord, RestStart};
use crate::{Error, Result};

/// The request id header of OpenStack services (in: the caller's global id; out: the service's).
pub const REQUEST_ID_HEADER: &str = "x-openstack-request-id";
/// Nova's older response header for its request id.
pub const COMPUTE_REQUEST_ID_HEADER: &str = "x-compute-request-id";

/// One proxy: `SERVICE=LISTEN=UPSTREAM`, e.g. `nova-api=127.0.0.1:18774=http://10.77.0.2:8774`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxySpec {
    /// The service behind it (`nova-api`, `placement-api`, …).
    pub service: String,
    /// Where the proxy listens.
    pub listen: SocketAddr,
    /// The upstream base URL (`http://host:port`, optionally with a path prefix).
    pub upstream: String,
}

impl FromStr for ProxySpec {
    type Err = Error;

    fn from_str(text: &str) -> Result<ProxySpec> {
        let usage = || {
            Error::Format(format!(
                "REST proxy {text:?}: expected SERVICE=LISTEN=UPSTREAM, e.g. nova-api=127.0.0.1:18774=http://10.77.0.2:8774"
            ))
        };
        let mut parts = text.splitn(3, '=');
        let (Some(service), Some(listen), Some(upstream)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(usage());
        };
        if service.is_empty()
            || !service
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Error::Format(format!(
                "REST proxy {text:?}: bad service name {service:?}"
            )));
        }
        let listen: SocketAddr = listen.parse().map_err(|error| {
            Error::Format(format!(
                "REST proxy {text:?}: listen address {listen:?}: {error}"
            ))
        })?;
        let uri: Uri = upstream.parse().map_err(|error| {
            Error::Format(format!(
                "REST proxy {text:?}: upstream {upstream:?}: {error}"
            ))
        })?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(Error::Format(format!(
                "REST proxy {text:?}: upstream must be an http://host:port URL (TLS upstreams are not supported)"
            )));
        }
        Ok(ProxySpec {
            service: service.to_owned(),
            listen,
            upstream: upstream.trim_end_matches('/').to_owned(),
        })
    }
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

struct Shared {
    spec: ProxySpec,
    upstream_host: Option<String>,
    client: Client<HttpConnector, Incoming>,
    sink: mpsc::UnboundedSender<ProxyRecord>,
}

/// A proxy whose listener is bound (so its address is known) but not yet serving.
pub struct BoundProxy {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl BoundProxy {
    /// Binds the listener of `spec`; records go to `sink`.
    pub async fn bind(
        spec: ProxySpec,
        sink: mpsc::UnboundedSender<ProxyRecord>,
    ) -> Result<BoundProxy> {
        let listener = TcpListener::bind(spec.listen).await.map_err(|error| {
            Error::Proxy(format!(
                "{}: listening on {}: {error}",
                spec.service, spec.listen
            ))
        })?;
        let upstream_host = spec
            .upstream
            .parse::<Uri>()
            .ok()
            .and_then(|uri| uri.host().map(str::to_owned));
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        Ok(BoundProxy {
            listener,
            shared: Arc::new(Shared {
                spec,
                upstream_host,
                client,
                sink,
            }),
        })
    }

    /// The address the proxy listens on (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|error| Error::Proxy(format!("local address: {error}")))
    }

    /// Serves until `shutdown` resolves. Connections already accepted finish on their own.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        tokio::pin!(shutdown);
        loop {
            let (stream, _) = tokio::select! {
                () = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => accepted
                    .map_err(|error| Error::Proxy(format!("{}: accept: {error}", self.shared.spec.service)))?,
            };
            let _ = stream.set_nodelay(true);
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let shared = Arc::clone(&shared);
                    async move { Ok::<_, Infallible>(forward(&shared, request).await) }
                });
                if let Err(error) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!("proxy connection ended: {error}");
                }
            });
        }
    }
}

fn header_text(headers: &HeaderMap<HeaderValue>, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

async fn forward(shared: &Shared, mut request: Request<Incoming>) -> Response<ProxyBody> {
    let started = Instant::now();
    let ts_us = jiff::Timestamp::now().as_microsecond();
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let global_request_id = header_text(request.headers(), REQUEST_ID_HEADER);
    let user_agent = header_text(request.headers(), USER_AGENT.as_str());
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    let start = RestStart {
        ts_us,
        service: shared.spec.service.clone(),
        upstream_host: shared.upstream_host.clone(),
        method,
        path,
        global_request_id,
        user_agent,
    };
    // Announced before forwarding, so that a request the upstream never answers is still seen.
    let _ = shared.sink.send(ProxyRecord::Started(start.clone()));
    let RestStart {
        method,
        path,
        global_request_id,
        user_agent,
        ..
    } = start;
    let target = format!("{}{path_and_query}", shared.spec.upstream);
    let response = match target.parse::<Uri>() {
        Ok(uri) => {
            *request.uri_mut() = uri;
            shared
                .client
                .request(request)
                .await
                .map_err(|error| error.to_string())
        }
        Err(error) => Err(error.to_string()),
    };
    let response = match response {
        Ok(response) => response.map(BodyExt::boxed),
        Err(error) => {
            tracing::warn!(
                "{}: upstream {}: {error}",
                shared.spec.service,
                shared.spec.upstream
            );
            let mut response = Response::new(
                Full::new(Bytes::from_static(
                    b"butterfly tracer proxy: upstream unreachable\n",
                ))
                .map_err(|never| match never {})
                .boxed(),
            );
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    };
    let request_id = header_text(response.headers(), REQUEST_ID_HEADER)
        .or_else(|| header_text(response.headers(), COMPUTE_REQUEST_ID_HEADER));
    let record = RestRecord {
        ts_us,
        service: shared.spec.service.clone(),
        upstream: shared.spec.upstream.clone(),
        upstream_host: shared.upstream_host.clone(),
        method,
        path,
        status: response.status().as_u16(),
        duration_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        global_request_id,
        request_id,
        user_agent,
    };
    // The receiver only goes away when the trace is finishing; a late record is then moot.
    let _ = shared.sink.send(ProxyRecord::Answered(record));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_say_why() {
        let spec: ProxySpec = "nova-api=127.0.0.1:18774=http://10.77.0.2:8774/"
            .parse()
            .unwrap();
        assert_eq!(spec.service, "nova-api");
        assert_eq!(spec.listen, "127.0.0.1:18774".parse().unwrap());
        assert_eq!(spec.upstream, "http://10.77.0.2:8774");
        for (bad, why) in [
            ("nova-api=127.0.0.1:1", "expected SERVICE=LISTEN=UPSTREAM"),
            ("nova api=127.0.0.1:1=http://h:1", "bad service name"),
            ("nova-api=localhost=http://h:1", "listen address"),
            ("nova-api=127.0.0.1:1=https://h:1", "must be an http://"),
        ] {
            let error = bad.parse::<ProxySpec>().unwrap_err().to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
