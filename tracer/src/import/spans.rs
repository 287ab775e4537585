//! Spans of any tracing format as events, exactly like captured ones.
//!
//! Every reader ([`super::formats`]) yields [`Span`]s; [`to_events`] turns the spans of one file
//! into events with the [`TagMap`]:
//!
//! * a span with an HTTP method is a REST request (`METHOD /path/{id}`);
//! * a span with an RPC method (or OSProfiler's `rpc` trace point with a function name) is an
//!   oslo.messaging RPC: a call (`messaging.operation` `call`, or a `_msg_id`) becomes an
//!   [`EventKind::RpcCall`] at its start and an [`EventKind::RpcReply`] with the same `_msg_id`
//!   when it ends, a cast an [`EventKind::RpcCast`], a fanout an [`EventKind::RpcFanout`];
//! * a `receive` span (the server side, as oslo.messaging's tracing records it) under its
//!   producer span is folded into it: it gives the call its `_msg_id`, its reply time and outcome;
//! * any other span (database, internal function) is no interaction between services: it is
//!   counted, not made an event, and its children hang from its nearest kept ancestor.
//!
//! All spans of one trace form one transaction: its key is the global request id when a span
//! names one, else the trace id.

use std::collections::{BTreeMap, HashMap};

use crate::event::{Event, EventIds, EventKind, Outcome, Source};
use crate::import::tags::{Role, TagMap};
use crate::rest::path_template;
use crate::secrets::is_secret_name;
use crate::services::service_for_topic;

/// How a span relates to its peer, in the format's own terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    /// Serves a request (`SERVER`, Zipkin v1 `sr`/`ss`).
    Server,
    /// Makes a request (`CLIENT`, `cs`/`cr`).
    Client,
    /// Sends a message (`PRODUCER`, `ms`).
    Producer,
    /// Receives a message (`CONSUMER`, `mr`).
    Consumer,
    /// Internal or not said.
    Internal,
}

/// One span, read from any format.
#[derive(Debug, Clone)]
pub struct Span {
    /// The trace it belongs to.
    pub trace_id: String,
    /// Its own id.
    pub span_id: String,
    /// Its parent's id.
    pub parent_id: Option<String>,
    /// The span name.
    pub name: String,
    /// Its kind.
    pub kind: SpanKind,
    /// Start, µs since the Unix epoch.
    pub start_us: i64,
    /// Duration, µs.
    pub duration_us: Option<u64>,
    /// Service of its endpoint, process or resource.
    pub service: Option<String>,
    /// Host or address of its endpoint, process or resource.
    pub host: Option<String>,
    /// Tags, attributes, binary annotations, flattened info; values as text.
    pub tags: BTreeMap<String, String>,
    /// An error the format itself states (OTLP status, an exception event), beside tags.
    pub error: Option<String>,
}

/// What the conversion did with the spans, for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpanCounts {
    /// Spans read.
    pub spans: u64,
    /// REST requests made.
    pub rest: u64,
    /// RPC calls made (each with its reply).
    pub calls: u64,
    /// RPC casts and fanouts made.
    pub casts: u64,
    /// Replies made.
    pub replies: u64,
    /// `receive` spans folded into their producer's call or cast.
    pub folded: u64,
    /// Spans that are no interaction between services (database, internal), not made events.
    pub internal: u64,
    /// Tags no role consumed, kept on events as `tag.<name>`.
    pub unmapped_tags: u64,
    /// Tags of internal spans, counted with them.
    pub internal_tags: u64,
}

impl SpanCounts {
    /// Adds another file's counts.
    pub fn add(&mut self, other: &SpanCounts) {
        self.spans += other.spans;
        self.rest += other.rest;
        self.calls += other.calls;
        self.casts += other.casts;
        self.replies += other.replies;
        self.folded += other.folded;
        self.internal += other.internal;
        self.unmapped_tags += other.unmapped_tags;
        self.internal_tags += other.internal_tags;
    }
}

/// The longest tag value kept on an event.
const TAG_VALUE_CHARS: usize = 200;

/// What a span is, once its tags are read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    Rest {
        method: String,
        path: Option<String>,
        status: Option<u16>,
    },
    Rpc(Rpc),
    Internal,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rpc {
    topic: String,
    method: String,
    operation: Option<String>,
    msg_id: Option<String>,
    reply_queue: Option<String>,
    unique_id: Option<String>,
    server: Option<String>,
}

/// What a folded receive span tells its producer.
#[derive(Clone)]
struct Received {
    /// When the server finished (the reply's time).
    end: Option<i64>,
    error: Option<String>,
    msg_id: Option<String>,
    /// When the server received the message.
    start: i64,
}

struct Read {
    span: Span,
    role: Shape,
    service: Option<String>,
    host: Option<String>,
    request_id: Option<String>,
    global_request_id: Option<String>,
    error: Option<String>,
    attrs: BTreeMap<String, String>,
}

/// The exception class in an error text: `ValueError: no host` → `ValueError`; a bare `true`
/// says only that there was an error.
fn exception_class(text: &str) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    let head = first.split(':').next().unwrap_or("").trim();
    if head.is_empty() || head.eq_ignore_ascii_case("true") {
        "error".to_owned()
    } else if head.contains(char::is_whitespace) {
        first.chars().take(80).collect()
    } else {
        head.to_owned()
    }
}

fn read_span(mut span: Span, map: &TagMap) -> Read {
    let mut tags = std::mem::take(&mut span.tags);
    let service = map.take(Role::Service, &mut tags).or(span.service.clone());
    let host = map.take(Role::Host, &mut tags).or(span.host.clone());
    let request_id = map.take(Role::RequestId, &mut tags);
    let global_request_id = map.take(Role::GlobalRequestId, &mut tags);
    // `error: true` only flags an error; a class or message under another name says more.
    let errors = map.take_all(Role::Error, &mut tags);
    let is_flag = |e: &String| e.eq_ignore_ascii_case("true") || e.eq_ignore_ascii_case("false");
    let tag_error = errors.iter().find(|e| !is_flag(e)).cloned().or_else(|| {
        errors
            .iter()
            .any(|e| e.eq_ignore_ascii_case("true"))
            .then(|| "true".to_owned())
    });
    let error = match (span.error.clone(), tag_error) {
        // A class from the tags beats a bare flag or a message from the status.
        (_, Some(tag)) if !tag.eq_ignore_ascii_case("true") => Some(tag),
        (Some(status), _) => Some(status),
        (None, tag) => tag,
    };
    let http_method = map.take(Role::HttpMethod, &mut tags);
    let http_path = map.take(Role::HttpPath, &mut tags);
    let http_status = map
        .take(Role::HttpStatus, &mut tags)
        .and_then(|s| s.parse().ok());
    let rpc_method = map.take(Role::RpcMethod, &mut tags);
    let function = map.take(Role::Function, &mut tags);
    let topic = map.take(Role::RpcTopic, &mut tags);
    let rpc = Rpc {
        topic: String::new(),
        method: String::new(),
        operation: map.take(Role::RpcOperation, &mut tags),
        msg_id: map.take(Role::MsgId, &mut tags),
        reply_queue: map.take(Role::ReplyQueue, &mut tags),
        unique_id: map.take(Role::UniqueId, &mut tags),
        server: map.take(Role::RpcServer, &mut tags),
    };
    // OSProfiler names its RPC trace point `rpc` and the handling function in `function.name`.
    let method = rpc_method.or_else(|| {
        (span.name == "rpc")
            .then(|| {
                function
                    .as_deref()
                    .and_then(|f| f.rsplit('.').next())
                    .map(str::to_owned)
            })
            .flatten()
    });
    let role = if let Some(method) = http_method {
        Shape::Rest {
            method: method.to_uppercase(),
            path: http_path,
            status: http_status,
        }
    } else if let Some(method) = method {
        // The topic: the destination, else the service that serves it (`nova-conductor`).
        let topic = topic
            .map(|t| t.rsplit('/').next().unwrap_or(&t).to_owned())
            .or_else(|| {
                service
                    .as_deref()
                    .map(|s| s.split_once('-').map_or(s, |(_, rest)| rest).to_owned())
            })
            .unwrap_or_default();
        let topic = topic.split('.').next().unwrap_or("").to_owned();
        Shape::Rpc(Rpc {
            topic,
            method,
            ..rpc
        })
    } else {
        Shape::Internal
    };
    if let Some(function) = function
        && role != Shape::Internal
    {
        tags.insert("function.name".to_owned(), function);
    }
    let attrs = tags
        .into_iter()
        .map(|(key, value)| {
            let value = if is_secret_name(&key) {
                "<redacted>".to_owned()
            } else {
                value.chars().take(TAG_VALUE_CHARS).collect()
            };
            (format!("tag.{key}"), value)
        })
        .collect();
    Read {
        span,
        role,
        service,
        host,
        request_id,
        global_request_id,
        error,
        attrs,
    }
}

fn base_event(read: &Read, kind: EventKind, operation: String, ts_us: i64) -> Event {
    Event {
        seq: 0,
        ts_us,
        source: Source::Import,
        kind,
        service: read.service.clone(),
        host: read.host.clone(),
        caller: None,
        operation,
        target: None,
        outcome: None,
        duration_us: None,
        ids: EventIds {
            request_id: read.request_id.clone(),
            span_id: Some(read.span.span_id.clone()),
            ..EventIds::default()
        },
        attrs: read.attrs.clone(),
    }
}

/// Converts the spans of one file into events (in start order, replies at their time).
pub fn to_events(spans: Vec<Span>, map: &TagMap) -> (Vec<Event>, SpanCounts) {
    let mut counts = SpanCounts {
        spans: spans.len() as u64,
        ..SpanCounts::default()
    };
    let mut reads: Vec<Read> = spans.into_iter().map(|s| read_span(s, map)).collect();
    let index: HashMap<(String, String), usize> = reads
        .iter()
        .enumerate()
        .map(|(i, r)| ((r.span.trace_id.clone(), r.span.span_id.clone()), i))
        .collect();
    let parent_of = |reads: &[Read], i: usize| {
        reads[i]
            .span
            .parent_id
            .as_ref()
            .and_then(|p| index.get(&(reads[i].span.trace_id.clone(), p.clone())))
            .copied()
    };
    // Fold receive spans into their producer: (producer index) → (end, error, msg_id, start).
    let mut folded_into: HashMap<usize, usize> = HashMap::new();
    for i in 0..reads.len() {
        let Shape::Rpc(rpc) = &reads[i].role else {
            continue;
        };
        if rpc.operation.as_deref() != Some("receive") {
            continue;
        }
        let Some(parent) = parent_of(&reads, i) else {
            continue;
        };
        if let Shape::Rpc(producer) = &reads[parent].role
            && producer.operation.as_deref() != Some("receive")
        {
            folded_into.insert(i, parent);
        }
    }
    // Global request id of each trace: the first a span names.
    let mut trace_key: HashMap<String, String> = HashMap::new();
    for read in &reads {
        if let Some(id) = &read.global_request_id {
            trace_key
                .entry(read.span.trace_id.clone())
                .or_insert_with(|| id.clone());
        }
    }
    // What a receive span tells its producer.
    let mut from_receive: HashMap<usize, Received> = HashMap::new();
    for (&receive, &producer) in &folded_into {
        let read = &reads[receive];
        let Shape::Rpc(rpc) = &read.role else {
            continue;
        };
        let end = read
            .span
            .duration_us
            .map(|d| read.span.start_us + i64::try_from(d).unwrap_or(0));
        from_receive.insert(
            producer,
            Received {
                end,
                error: read.error.clone(),
                msg_id: rpc.msg_id.clone(),
                start: read.span.start_us,
            },
        );
    }
    counts.folded = folded_into.len() as u64;
    // Children of dropped spans hang from the nearest kept ancestor.
    let kept = |reads: &[Read], i: usize| {
        !folded_into.contains_key(&i) && reads[i].role != Shape::Internal
    };
    let mut events = Vec::new();
    for i in 0..reads.len() {
        if folded_into.contains_key(&i) {
            continue;
        }
        if reads[i].role == Shape::Internal {
            counts.internal += 1;
            counts.internal_tags += reads[i].attrs.len() as u64;
            continue;
        }
        let mut parent = parent_of(&reads, i);
        let mut hops = 0;
        while let Some(p) = parent {
            if kept(&reads, p) || hops > reads.len() {
                break;
            }
            parent = folded_into
                .get(&p)
                .copied()
                .or_else(|| parent_of(&reads, p));
            hops += 1;
        }
        let parent_span = parent
            .filter(|p| kept(&reads, *p))
            .map(|p| reads[p].span.span_id.clone());
        let read = &mut reads[i];
        counts.unmapped_tags += read.attrs.len() as u64;
        let global = trace_key
            .get(&read.span.trace_id)
            .cloned()
            .unwrap_or_else(|| read.span.trace_id.clone());
        let start = read.span.start_us;
        let end = read
            .span
            .duration_us
            .map(|d| start + i64::try_from(d).unwrap_or(0));
        match read.role.clone() {
            Shape::Rest {
                method,
                path,
                status,
            } => {
                counts.rest += 1;
                let path = path.map(|path| {
                    let path = path.split_once("://").map_or(path.as_str(), |(_, rest)| {
                        rest.find('/').map_or("/", |slash| &rest[slash..])
                    });
                    let path = path.split('?').next().unwrap_or(path);
                    path_template(path)
                });
                let operation = format!(
                    "{method} {}",
                    path.unwrap_or_else(|| read.span.name.clone())
                );
                let mut event = base_event(read, EventKind::RestRequest, operation, start);
                event.outcome = match (status, &read.error) {
                    (Some(status), _) => Some(Outcome::Http { status }),
                    (None, Some(error)) => Some(Outcome::ReplyFailure {
                        exception: exception_class(error),
                    }),
                    (None, None) => None,
                };
                event.duration_us = read.span.duration_us;
                event.ids.global_request_id = Some(global);
                event.ids.parent_span_id = parent_span;
                events.push(event);
            }
            Shape::Rpc(mut rpc) => {
                let received = from_receive.get(&i).cloned();
                if let Some(received) = &received
                    && rpc.operation.as_deref() == Some("call")
                {
                    rpc.msg_id = rpc.msg_id.clone().or(received.msg_id.clone());
                }
                let kind = match rpc.operation.as_deref() {
                    Some("fanout") => EventKind::RpcFanout,
                    Some("cast") => EventKind::RpcCast,
                    Some("call") => EventKind::RpcCall,
                    // A span that covers a message's handling without saying which it was is
                    // taken as a call when it has a `_msg_id` or no operation at all (OSProfiler
                    // exports keep only the function).
                    Some(_) if rpc.msg_id.is_none() => EventKind::RpcCast,
                    _ => EventKind::RpcCall,
                };
                let operation = if rpc.topic.is_empty() {
                    rpc.method.clone()
                } else {
                    format!("{}.{}", rpc.topic, rpc.method)
                };
                let mut event = base_event(read, kind, operation, start);
                if !rpc.topic.is_empty() {
                    event.service = Some(service_for_topic(&rpc.topic));
                    event.target = Some(rpc.topic.clone());
                    event.attrs.insert("topic".to_owned(), rpc.topic.clone());
                }
                event.host = rpc.server.clone().or(event.host);
                event.attrs.insert("method".to_owned(), rpc.method.clone());
                event.attrs.insert(
                    "span_service".to_owned(),
                    read.service.clone().unwrap_or_default(),
                );
                if event.attrs["span_service"].is_empty() {
                    event.attrs.remove("span_service");
                }
                if let Some(received) = &received {
                    event.attrs.insert(
                        "queue_wait_us".to_owned(),
                        (received.start - start).max(0).to_string(),
                    );
                }
                event.ids.global_request_id = Some(global.clone());
                event.ids.parent_span_id = parent_span;
                event.ids.reply_queue = rpc.reply_queue.clone();
                event.ids.unique_id = rpc.unique_id.clone();
                if kind == EventKind::RpcCall {
                    counts.calls += 1;
                    // Without the message's `_msg_id` the span itself pairs call and reply.
                    let msg_id = rpc
                        .msg_id
                        .clone()
                        .unwrap_or_else(|| format!("span-{}", read.span.span_id));
                    event.ids.msg_id = Some(msg_id.clone());
                    let (reply_at, error) = match &received {
                        Some(received) => (
                            received.end.or(end),
                            received.error.clone().or(read.error.clone()),
                        ),
                        None => (end, read.error.clone()),
                    };
                    event.duration_us = reply_at.map(|at| u64::try_from(at - start).unwrap_or(0));
                    // Clocks of two hosts may disagree: a reply never comes before its call.
                    let reply_ts = reply_at.unwrap_or(start).max(start);
                    let mut reply = Event {
                        seq: 0,
                        ts_us: reply_ts,
                        source: Source::Import,
                        kind: EventKind::RpcReply,
                        service: None,
                        host: None,
                        caller: None,
                        operation: "reply".to_owned(),
                        target: rpc.reply_queue.clone(),
                        outcome: Some(match error {
                            Some(error) => Outcome::ReplyFailure {
                                exception: exception_class(&error),
                            },
                            None => Outcome::ReplyOk,
                        }),
                        duration_us: None,
                        ids: EventIds {
                            msg_id: Some(msg_id),
                            ..EventIds::default()
                        },
                        attrs: BTreeMap::new(),
                    };
                    reply.attrs.insert("ending".to_owned(), "true".to_owned());
                    counts.replies += 1;
                    events.push(event);
                    events.push(reply);
                } else {
                    counts.casts += 1;
                    event.duration_us = read.span.duration_us;
                    events.push(event);
                }
            }
            Shape::Internal => {}
        }
    }
    // Arrival order: replies after the calls they answer, everything by time.
    events.sort_by_key(|event| event.ts_us);
    (events, counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A span tree of one trace: REST, calls, casts, receive spans and internal spans, each with
    /// a few tags of its own.
    fn arbitrary_spans() -> impl Strategy<Value = Vec<Span>> {
        let span = (
            0u8..5,
            0usize..64,
            prop::collection::btree_map("[a-z]{1,3}\\.[a-z]{1,3}", "[a-z0-9]{0,6}", 0..4),
            any::<bool>(),
            0i64..1_000,
            0u64..500,
        );
        prop::collection::vec(span, 1..24).prop_map(|specs| {
            specs
                .into_iter()
                .enumerate()
                .map(|(n, (shape, parent, mut tags, error, start, duration))| {
                    match shape {
                        0 => {
                            tags.insert("http.method".into(), "GET".into());
                            tags.insert("url.path".into(), "/servers".into());
                        }
                        1 | 2 => {
                            tags.insert("rpc.method".into(), format!("m{n}"));
                            tags.insert("messaging.destination.name".into(), "conductor".into());
                            let op = if shape == 1 { "call" } else { "cast" };
                            tags.insert("messaging.operation".into(), op.into());
                        }
                        3 => {
                            tags.insert("rpc.method".into(), format!("m{n}"));
                            tags.insert("messaging.operation".into(), "receive".into());
                            tags.insert("messaging.message.id".into(), format!("id{n}"));
                        }
                        _ => {}
                    }
                    Span {
                        trace_id: "t".into(),
                        span_id: format!("s{n}"),
                        // Parents come before children, so the spans form a tree.
                        parent_id: (n > 0).then(|| format!("s{}", parent % n)),
                        name: "span".into(),
                        kind: SpanKind::Internal,
                        start_us: start,
                        duration_us: Some(duration),
                        service: Some("nova-api".into()),
                        host: None,
                        tags,
                        error: error.then(|| "ValueError: boom".into()),
                    }
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn every_call_has_one_reply_with_its_msg_id_and_no_span_is_lost(spans in arbitrary_spans()) {
            let count = spans.len() as u64;
            let (events, counts) = to_events(spans, &TagMap::default());
            let calls: Vec<&Event> = events.iter().filter(|e| e.kind == EventKind::RpcCall).collect();
            let replies: Vec<&Event> = events.iter().filter(|e| e.kind == EventKind::RpcReply).collect();
            prop_assert_eq!(calls.len(), replies.len());
            for call in &calls {
                let answering: Vec<_> = replies.iter().filter(|r| r.ids.msg_id == call.ids.msg_id).collect();
                prop_assert_eq!(answering.len(), 1);
                prop_assert!(answering[0].ts_us >= call.ts_us);
            }
            // Every span is an event, folded into one, or counted as internal.
            prop_assert_eq!(counts.rest + counts.calls + counts.casts + counts.folded + counts.internal, count);
            // Every kept tag is on an event, and counted.
            let kept: usize = events.iter().map(|e| e.attrs.keys().filter(|k| k.starts_with("tag.")).count()).sum();
            prop_assert_eq!(kept as u64, counts.unmapped_tags);
            // Span edges only point at events that exist.
            for event in &events {
                if let Some(parent) = &event.ids.parent_span_id {
                    prop_assert!(events.iter().any(|e| e.ids.span_id.as_ref() == Some(parent)));
                }
            }
        }
    }
}
