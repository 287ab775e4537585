//! Symbolization: one event becomes one symbol such as `nova-api:POST /v2.1/servers`,
//! `rpc.cast:conductor.schedule_and_build_instances`, `rest:placement-api GET
//! /allocation_candidates?limit&resources`, `reply:ok` or `reply:failure:NoValidHost`.
//!
//! Identifiers are templated (`{id}`) so that two runs of the same command produce the same
//! symbols; query strings keep their parameter names, sorted, and lose their values.

use serde::{Deserialize, Serialize};
use tracer::event::{Event, EventKind, Outcome};

/// One symbolized event, with what localization and timing need to know about it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The symbol, e.g. `rpc.call:scheduler.select_destinations`.
    pub symbol: String,
    /// When the event was observed (microseconds since the epoch); normalization gives the user's
    /// polls the entry's time.
    pub ts_us: i64,
    /// The event's `seq` in its trace.
    pub seq: u64,
    /// The service that acts on the event (serves the request, consumes the message, replies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The host that acts on the event, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The service that sent the event, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The event reports a failure (failed RPC reply, HTTP 5xx).
    #[serde(default)]
    pub error: bool,
    /// The event answers an earlier one (an RPC reply); answers sort after requests that are
    /// concurrent with them.
    #[serde(default)]
    pub answer: bool,
    /// The event only reads (REST `GET`/`HEAD`): repeating it is polling.
    #[serde(default)]
    pub read_only: bool,
    /// Pairs an RPC call with its reply (the oslo.messaging `_msg_id` they share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The `User-Agent` of a REST request: with `caller`, it tells the user's own requests from
    /// those a service makes on its behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// When a REST request was answered (µs since the epoch): requests made while it was being
    /// served lie inside `ts_us..=end_us`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_us: Option<i64>,
    /// Set by normalization on the user's status polls, which it moves out of the command's own
    /// steps (see [`crate::normalize`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub poll: bool,
}

impl Step {
    /// True for a REST request the API refused as a client error (HTTP 4xx, written into the
    /// symbol as ` -> 4xx`): for the entry of a command, the command ends there.
    pub fn rejected(&self) -> bool {
        self.end_us.is_some()
            && self
                .symbol
                .rsplit_once(" -> ")
                .is_some_and(|(_, status)| status.len() == 3 && status.starts_with('4'))
    }

    /// Symbolizes one event. `entry` marks the request that opened the transaction: it is written
    /// `service:METHOD path`, every other REST request `rest:service METHOD path`.
    pub fn from_event(event: &Event, entry: bool) -> Step {
        let service = event.service.as_deref().unwrap_or("unknown");
        let mut read_only = false;
        let rest = event.kind == EventKind::RestRequest;
        let symbol = match event.kind {
            EventKind::RestRequest => {
                let operation = template_rest(&event.operation);
                read_only = operation.starts_with("GET ") || operation.starts_with("HEAD ");
                let status = match event.outcome {
                    Some(Outcome::Http { status }) if status >= 400 => format!(" -> {status}"),
                    _ => String::new(),
                };
                if entry {
                    format!("{service}:{operation}{status}")
                } else {
                    format!("rest:{service} {operation}{status}")
                }
            }
            EventKind::RpcCall => format!("rpc.call:{}", template_dotted(&event.operation)),
            EventKind::RpcCast => format!("rpc.cast:{}", template_dotted(&event.operation)),
            EventKind::RpcFanout => format!("rpc.fanout:{}", template_dotted(&event.operation)),
            EventKind::RpcReply => match &event.outcome {
                Some(Outcome::ReplyFailure { exception }) => format!("reply:failure:{exception}"),
                _ => "reply:ok".to_owned(),
            },
            EventKind::Notification => format!("notify:{}", template_dotted(&event.operation)),
            EventKind::Opaque => format!("opaque:{}", template_dotted(&event.operation)),
        };
        Step {
            symbol,
            ts_us: event.ts_us,
            seq: event.seq,
            service: event.service.clone(),
            host: event.host.clone(),
            caller: event.caller.clone(),
            error: event.is_error(),
            answer: event.kind == EventKind::RpcReply,
            read_only,
            link: match event.kind {
                EventKind::RpcCall | EventKind::RpcReply => event.ids.msg_id.clone(),
                _ => None,
            },
            agent: rest
                .then(|| event.attrs.get("user_agent").cloned())
                .flatten(),
            end_us: rest.then(|| {
                let duration = i64::try_from(event.duration_us.unwrap_or(0)).unwrap_or(i64::MAX);
                event.ts_us.saturating_add(duration)
            }),
            poll: false,
        }
    }
}

/// The key under which the answer time of a REST operation is learned: `service METHOD
/// /path/{id}` (the operation templated, without the status, which is not known before the
/// answer). Entry and nested requests of the same operation share it.
pub fn answer_key(service: &str, operation: &str) -> String {
    format!("{service} {}", template_rest(operation))
}

/// The key under which the reply time of an RPC call is learned: `service CALL topic.method`
/// (the service the call goes to, and the method templated as in symbols).
pub fn reply_key(service: &str, operation: &str) -> String {
    format!("{service} CALL {}", template_dotted(operation))
}

/// Templates a REST operation `METHOD /path?query`: id-like path segments become `{id}`, the
/// query keeps its sorted, distinct parameter names.
pub fn template_rest(operation: &str) -> String {
    let (method, target) = match operation.split_once(' ') {
        Some((method, target)) => (Some(method), target),
        None => (None, operation),
    };
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    };
    let mut out = String::with_capacity(operation.len());
    if let Some(method) = method {
        out.push_str(method);
        out.push(' ');
    }
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            if is_identifier(segment) {
                "{id}"
            } else {
                segment
            }
        })
        .collect();
    out.push_str(&segments.join("/"));
    if let Some(query) = query {
        let mut keys: Vec<&str> = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').map_or(pair, |(key, _)| key))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        if !keys.is_empty() {
            out.push('?');
            out.push_str(&keys.join("&"));
        }
    }
    out
}

/// Templates id-like parts of a dotted name such as an RPC `topic.method` or an event type.
pub fn template_dotted(operation: &str) -> String {
    if !operation.split(['.', '/', ':']).any(is_identifier) {
        return operation.to_owned();
    }
    let mut out = String::with_capacity(operation.len());
    let mut part = String::new();
    for character in operation.chars() {
        if matches!(character, '.' | '/' | ':') {
            out.push_str(if is_identifier(&part) { "{id}" } else { &part });
            out.push(character);
            part.clear();
        } else {
            part.push(character);
        }
    }
    out.push_str(if is_identifier(&part) { "{id}" } else { &part });
    out
}

/// True for segments that name one object rather than a kind of object: UUIDs (with or without
/// dashes, optionally `req-` prefixed), long hex strings and plain numbers.
pub fn is_identifier(segment: &str) -> bool {
    let body = segment.strip_prefix("req-").unwrap_or(segment);
    if body.is_empty() {
        return false;
    }
    if body.bytes().all(|byte| byte.is_ascii_digit()) {
        return true;
    }
    let hex_digits = body.bytes().filter(u8::is_ascii_hexdigit).count();
    let dashes = body.bytes().filter(|&byte| byte == b'-').count();
    let only_hex_and_dashes = hex_digits + dashes == body.len();
    let uuid_shape =
        dashes == 4 && body.len() == 36 && body.split('-').map(str::len).eq([8, 4, 4, 4, 12]);
    only_hex_and_dashes
        && (uuid_shape || (dashes == 0 && hex_digits >= 16))
        && body.bytes().any(|byte| byte.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_paths_are_templated_and_queries_keep_sorted_names() {
        assert_eq!(
            template_rest("GET /v2.1/servers/3cf6d929-3aa8-471b-a066-9c52d409c54f"),
            "GET /v2.1/servers/{id}"
        );
        assert_eq!(
            template_rest(
                "GET /allocation_candidates?limit=1000&resources=DISK_GB%3A1&root_required=X"
            ),
            "GET /allocation_candidates?limit&resources&root_required"
        );
        assert_eq!(
            template_rest("GET /v2.0/ports?fields=a&fields=b&device_id=1"),
            "GET /v2.0/ports?device_id&fields"
        );
        assert_eq!(
            template_rest("GET /resource_providers/84f15c61c46e458fb53504bd6bcb2911/traits"),
            "GET /resource_providers/{id}/traits"
        );
        assert_eq!(
            template_rest("GET /v2.1/flavors/m1.tiny"),
            "GET /v2.1/flavors/m1.tiny"
        );
    }

    #[test]
    fn templating_is_idempotent_on_examples() {
        for operation in [
            "DELETE /v2.1/servers/3cf6d929-3aa8-471b-a066-9c52d409c54f",
            "GET /v2/images?name=fake-img",
            "PUT /allocations/{id}",
        ] {
            let once = template_rest(operation);
            assert_eq!(template_rest(&once), once);
        }
    }

    #[test]
    fn dotted_names_keep_words_and_template_ids() {
        assert_eq!(
            template_dotted("conductor.schedule_and_build_instances"),
            "conductor.schedule_and_build_instances"
        );
        assert_eq!(
            template_dotted("reply_9060374d7f294b64b042ac5e13aa42ed.x"),
            "reply_9060374d7f294b64b042ac5e13aa42ed.x"
        );
        assert_eq!(
            template_dotted("compute.3cf6d929-3aa8-471b-a066-9c52d409c54f.start"),
            "compute.{id}.start"
        );
    }

    #[test]
    fn identifiers_are_recognized() {
        assert!(is_identifier("3cf6d929-3aa8-471b-a066-9c52d409c54f"));
        assert!(is_identifier("req-3410b873-3e5f-4237-9429-aa10d0c95921"));
        assert!(is_identifier("9c5e888f355246c685843ed414be96b7"));
        assert!(is_identifier("42"));
        assert!(!is_identifier("servers"));
        assert!(!is_identifier("v2.1"));
        assert!(!is_identifier("deadbeefdeadbeefdeadbeef"));
        assert!(!is_identifier(""));
    }
}
