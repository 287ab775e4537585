//! REST records: what the recording proxy saw of one HTTP exchange, and how it becomes an
//! [`Event`] with a path template (ids and names replaced by `{id}`). A [`RestStart`] announces an
//! exchange when its request arrives, so that live detectors can time an answer that has not come.

use std::collections::BTreeMap;

use crate::event::{Event, EventIds, EventKind, Outcome, Source};
use crate::services::CANONICAL_SERVICES;

/// One HTTP request and its response as seen by the proxy. Holds no header values other than the
/// request ids and the user agent, so no token can be recorded. Serialized as one JSON object per
/// line on the proxy's record stream ([`crate::records`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestRecord {
    /// When the request arrived, µs since the Unix epoch.
    pub ts_us: i64,
    /// The API served behind the proxy (`nova-api`, `placement-api`, …).
    pub service: String,
    /// The upstream base URL the proxy forwards to.
    pub upstream: String,
    /// The upstream host (for the event's `host`).
    pub upstream_host: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The request path as sent (without the query).
    pub path: String,
    /// The response status (502 when the upstream could not be reached).
    pub status: u16,
    /// Time from request arrival to the response head, µs.
    pub duration_us: u64,
    /// The inbound `X-Openstack-Request-Id`: the caller's global request id.
    pub global_request_id: Option<String>,
    /// The outbound `X-Openstack-Request-Id` (or `X-Compute-Request-Id`) of the response.
    pub request_id: Option<String>,
    /// The `User-Agent`, used to tell which service called.
    pub user_agent: Option<String>,
}

/// A request that reached the proxy, sent before it is forwarded: until its [`RestRecord`]
/// follows, the exchange is in flight. The record of the answer has the same `service`, `ts_us`,
/// `method` and `path`, which is how the two are paired ([`RestStart::answered_by`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RestStart {
    /// When the request arrived, µs since the Unix epoch.
    pub ts_us: i64,
    /// The API served behind the proxy.
    pub service: String,
    /// The upstream host (for the event's `host`).
    pub upstream_host: Option<String>,
    /// The HTTP method.
    pub method: String,
    /// The request path as sent (without the query).
    pub path: String,
    /// The inbound `X-Openstack-Request-Id`: the caller's global request id, which names the
    /// transaction the request belongs to.
    pub global_request_id: Option<String>,
    /// The `User-Agent`, used to tell which service called.
    pub user_agent: Option<String>,
}

impl RestStart {
    /// The operation as events name it: `METHOD /path/{id}`.
    pub fn operation(&self) -> String {
        rest_operation(&self.method, &self.path)
    }

    /// The calling service named in the `User-Agent`, if any.
    pub fn caller(&self) -> Option<String> {
        self.user_agent.as_deref().and_then(caller_from_user_agent)
    }

    /// The arrival of a recorded REST exchange as the proxy announced it (with the templated
    /// path, which pairs all the same), for replaying a trace to live detectors; `None` for
    /// other events.
    pub fn of_event(event: &Event) -> Option<RestStart> {
        if event.kind != EventKind::RestRequest {
            return None;
        }
        let (method, path) = event.operation.split_once(' ')?;
        Some(RestStart {
            ts_us: event.ts_us,
            service: event.service.clone()?,
            upstream_host: event.host.clone(),
            method: method.to_owned(),
            path: path.to_owned(),
            global_request_id: event.ids.global_request_id.clone(),
            user_agent: event.attrs.get("user_agent").cloned(),
        })
    }

    /// True when `event` is the answered exchange this request started.
    pub fn answered_by(&self, event: &Event) -> bool {
        event.kind == EventKind::RestRequest
            && event.ts_us == self.ts_us
            && event.service.as_deref() == Some(self.service.as_str())
            // Events of imported traces may keep the raw path: compare templated.
            && event
                .operation
                .split_once(' ')
                .is_some_and(|(method, path)| rest_operation(method, path) == self.operation())
    }
}

/// What the proxy sends on its record stream: a request as it arrives, an exchange once answered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyRecord {
    /// A request arrived and is being forwarded.
    Started(RestStart),
    /// The exchange was answered (or the upstream could not be reached).
    Answered(RestRecord),
}

/// The operation of a REST exchange as events name it: `METHOD /path/{id}`.
fn rest_operation(method: &str, path: &str) -> String {
    format!("{method} {}", path_template(path))
}

impl RestRecord {
    /// The request as the proxy announced it on arrival.
    pub fn start(&self) -> RestStart {
        RestStart {
            ts_us: self.ts_us,
            service: self.service.clone(),
            upstream_host: self.upstream_host.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            global_request_id: self.global_request_id.clone(),
            user_agent: self.user_agent.clone(),
        }
    }

    /// The event for this exchange (`seq` 0 until the pipeline numbers it).
    pub fn to_event(&self) -> Event {
        let mut attrs = BTreeMap::new();
        if let Some(agent) = &self.user_agent {
            attrs.insert("user_agent".to_owned(), agent.chars().take(120).collect());
        }
        Event {
            seq: 0,
            ts_us: self.ts_us,
            source: Source::Rest,
            kind: EventKind::RestRequest,
            service: Some(self.service.clone()),
            host: self.upstream_host.clone(),
            caller: self.user_agent.as_deref().and_then(caller_from_user_agent),
            operation: rest_operation(&self.method, &self.path),
            target: Some(self.upstream.clone()),
            outcome: Some(Outcome::Http {
                status: self.status,
            }),
            duration_us: Some(self.duration_us),
            ids: EventIds {
                request_id: self.request_id.clone(),
                global_request_id: self.global_request_id.clone(),
                ..EventIds::default()
            },
            attrs,
        }
    }
}

/// The calling service named in a `User-Agent` (`nova-scheduler keystoneauth1/5.0 …`), if any.
pub fn caller_from_user_agent(agent: &str) -> Option<String> {
    let first = agent.split([' ', '/']).next()?;
    CANONICAL_SERVICES
        .iter()
        .find(|service| **service == first)
        .map(|service| (*service).to_owned())
}

/// Words that follow a collection but name a fixed sub-resource or action, not an instance.
const FIXED_WORDS: &[&str] = &[
    "detail",
    "action",
    "auth",
    "tokens",
    "catalog",
    "projects",
    "domains",
    "system",
    "extensions",
    "limits",
    "usages",
    "inventories",
    "allocations",
    "traits",
    "aggregates",
    "file",
    "stage",
    "import",
    "tasks",
    "members",
    "tags",
    "metadata",
    "ips",
    "diagnostics",
    "versions",
];

/// The path with instance ids and names replaced by `{id}` and the query dropped.
///
/// OpenStack paths alternate collection and instance (`/v2.1/servers/{id}/action`), so a segment
/// right after a collection is an instance unless it is a fixed word (`detail`, `os-…`); any
/// segment that looks like an id (UUID, hex of 16+ digits, number, `req-…`) is one wherever it
/// stands. Version segments (`v2.1`) stay.
pub fn path_template(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut out = String::with_capacity(path.len());
    let mut after_collection = false;
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        out.push('/');
        let fixed = FIXED_WORDS.contains(&segment) || segment.starts_with("os-");
        if looks_like_id(segment) || (after_collection && !fixed) {
            out.push_str("{id}");
            after_collection = false;
        } else if is_version(segment) {
            out.push_str(segment);
            after_collection = false;
        } else {
            out.push_str(segment);
            after_collection = segment != "action" && segment != "detail";
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn is_version(segment: &str) -> bool {
    segment.strip_prefix('v').is_some_and(|rest| {
        !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit() || c == '.')
    })
}

/// An id-like segment, or the placeholder that templating put for one: templating a template
/// changes nothing. (It did: Cinder's `/v3/{id}/volumes`, the project id right after the version,
/// became `/v3/{id}/{id}`, so a request's arrival never matched its answered exchange and every
/// cinder-api request looked unanswered to the live detectors.)
fn looks_like_id(segment: &str) -> bool {
    if segment == "{id}" {
        return true;
    }
    let hex_digits = segment.chars().filter(char::is_ascii_hexdigit).count();
    let only_hex_and_dashes = segment.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    (only_hex_and_dashes && hex_digits >= 16)
        || segment.chars().all(|c| c.is_ascii_digit())
        || segment.starts_with("req-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_become_placeholders() {
        let cases = [
            ("/v2.1/servers", "/v2.1/servers"),
            (
                "/v2.1/servers/3cf6d929-3aa8-471b-a066-9c52d409c54f",
                "/v2.1/servers/{id}",
            ),
            (
                "/v2.1/servers/3cf6d929-3aa8-471b-a066-9c52d409c54f/action",
                "/v2.1/servers/{id}/action",
            ),
            ("/v2.1/flavors/m1.tiny", "/v2.1/flavors/{id}"),
            (
                "/v2.1/flavors/detail?is_public=None",
                "/v2.1/flavors/detail",
            ),
            ("/v2/images/fake-img", "/v2/images/{id}"),
            ("/v2/images?name=fake-img", "/v2/images"),
            (
                "/allocations/3cf6d929-3aa8-471b-a066-9c52d409c54f",
                "/allocations/{id}",
            ),
            (
                "/resource_providers/84f15c61-c46e-458f-b535-04bd6bcb2911/allocations",
                "/resource_providers/{id}/allocations",
            ),
            ("/v3/auth/tokens", "/v3/auth/tokens"),
            (
                "/v3/projects/9c5e888f355246c685843ed414be96b7",
                "/v3/projects/{id}",
            ),
            ("/v2.1/os-services", "/v2.1/os-services"),
            ("/", "/"),
            ("/v2.1", "/v2.1"),
            // Cinder's paths begin with the project id.
            (
                "/v3/9c5e888f355246c685843ed414be96b7/volumes",
                "/v3/{id}/volumes",
            ),
            (
                "/v3/9c5e888f355246c685843ed414be96b7/volumes/74ef9713-4472-48c1-9a64-53aa0c7c1e01/action",
                "/v3/{id}/volumes/{id}/action",
            ),
            (
                "/v3/9c5e888f355246c685843ed414be96b7/attachments/3cf6d929-3aa8-471b-a066-9c52d409c54f",
                "/v3/{id}/attachments/{id}",
            ),
            (
                "/v2.0/ports/3cf6d929-3aa8-471b-a066-9c52d409c54f",
                "/v2.0/ports/{id}",
            ),
        ];
        for (path, template) in cases {
            assert_eq!(path_template(path), template, "{path}");
            assert_eq!(
                path_template(template),
                template,
                "templating {template} again"
            );
        }
    }

    /// The live detectors pair a request's arrival with its answered exchange, whose operation
    /// is already templated: a Cinder request (project id in its path) is paired too.
    #[test]
    fn a_cinder_request_is_answered_by_its_exchange() {
        let record = RestRecord {
            ts_us: 5,
            service: "cinder-api".to_owned(),
            upstream: "http://controller:8776".to_owned(),
            upstream_host: Some("controller".to_owned()),
            method: "POST".to_owned(),
            path: "/v3/9c5e888f355246c685843ed414be96b7/volumes".to_owned(),
            status: 202,
            duration_us: 395_000,
            global_request_id: Some("req-g".to_owned()),
            request_id: None,
            user_agent: None,
        };
        let event = record.to_event();
        assert_eq!(event.operation, "POST /v3/{id}/volumes");
        assert!(record.start().answered_by(&event));
        assert!(RestStart::of_event(&event).unwrap().answered_by(&event));
    }

    #[test]
    fn records_become_events_with_ids_and_callers() {
        let record = RestRecord {
            ts_us: 5,
            service: "placement-api".to_owned(),
            upstream: "http://10.0.0.2:8778".to_owned(),
            upstream_host: Some("10.0.0.2".to_owned()),
            method: "PUT".to_owned(),
            path: "/allocations/3cf6d929-3aa8-471b-a066-9c52d409c54f".to_owned(),
            status: 204,
            duration_us: 1200,
            global_request_id: Some("req-g".to_owned()),
            request_id: Some("req-l".to_owned()),
            user_agent: Some("nova-scheduler keystoneauth1/5.11".to_owned()),
        };
        let event = record.to_event();
        assert_eq!(event.operation, "PUT /allocations/{id}");
        assert_eq!(event.caller.as_deref(), Some("nova-scheduler"));
        assert_eq!(event.ids.global_request_id.as_deref(), Some("req-g"));
        assert_eq!(event.outcome, Some(Outcome::Http { status: 204 }));
        let start = record.start();
        assert!(start.answered_by(&event));
        let replayed = RestStart::of_event(&event).unwrap();
        assert!(replayed.answered_by(&event));
        assert_eq!(replayed.global_request_id, start.global_request_id);
        assert_eq!(start.caller().as_deref(), Some("nova-scheduler"));
        let other = RestRecord { ts_us: 6, ..record };
        assert!(!start.answered_by(&other.to_event()));
    }

    #[test]
    fn stream_records_are_tagged_by_kind() {
        let start = RestStart {
            ts_us: 1,
            service: "glance-api".to_owned(),
            upstream_host: None,
            method: "GET".to_owned(),
            path: "/v2/images/x".to_owned(),
            global_request_id: None,
            user_agent: None,
        };
        let line = serde_json::to_string(&ProxyRecord::Started(start.clone())).unwrap();
        assert!(line.starts_with("{\"started\":{"), "{line}");
        assert_eq!(
            serde_json::from_str::<ProxyRecord>(&line).unwrap(),
            ProxyRecord::Started(start)
        );
    }
}
