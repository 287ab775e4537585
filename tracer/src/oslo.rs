//! AMQP records and the exact decoding of oslo.messaging messages into [`Event`]s.
//!
//! An [`AmqpRecord`] is one message as the broker saw it: from the firehose (`publish.<exchange>`
//! or `deliver.<queue>`), from a tap queue, or from a recorded capture line. The [`Decoder`] reads
//! the oslo.messaging envelope 2.0 (`{"oslo.version": "2.0", "oslo.message": "<JSON string>"}`,
//! see `oslo_messaging/_drivers/common.py` `serialize_msg`) and classifies the inner message:
//!
//! * reply: `{result, failure, ending, _msg_id, _unique_id}` published to the default exchange with
//!   the caller's `reply_<hex>` queue as routing key (`amqpdriver.py` `ReplyWaiter`/`_send_reply`);
//!   `failure` is itself a JSON string with `class`, `module`, `message`, `tb`;
//! * notification: `event_type`, `publisher_id`, `priority`, `payload`, `message_id`, `timestamp`;
//! * RPC: `method`, `args`, optional `namespace`/`version`, `_unique_id` and the flattened request
//!   context `_context_*` (`amqp.py` `pack_context`); a call also has `_msg_id`, `_reply_q` and
//!   `_timeout`; a fanout cast goes to the `<topic>_fanout` exchange (`impl_rabbit.py`
//!   `fanout_send`), other casts and calls to the control exchange with key `topic[.server]`.
//!
//! Only an allow-list of fields is copied out (ids, method, routing, version), so tokens, the
//! service catalog and message arguments never reach an event. Bad input never panics: it becomes
//! an [`EventKind::Opaque`] event and is counted.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use crate::event::{Event, EventIds, EventKind, Outcome, Source};
use crate::services::{service_for_publisher, service_for_topic, split_routing_key};
use crate::{Error, Result};

/// Whether the broker saw the message being published or delivered to a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Published to an exchange (firehose `publish.<exchange>`, or a tap queue's copy).
    Publish,
    /// Delivered from a queue to a consumer (firehose `deliver.<queue>`).
    Deliver,
}

/// One AMQP message as observed, before decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct AmqpRecord {
    /// When it was observed, µs since the Unix epoch.
    pub ts_us: i64,
    /// Publish or deliver.
    pub direction: Direction,
    /// The exchange it was published to (`""` is the default exchange).
    pub exchange: String,
    /// Its (first) routing key.
    pub routing_key: String,
    /// For a delivery: the queue it was delivered from.
    pub queue: Option<String>,
    /// The AMQP `expiration` property (oslo sets it to the call timeout in ms).
    pub expiration: Option<String>,
    /// The message body as published.
    pub body: Vec<u8>,
}

/// The capture-file form of a firehose record (see `docs/tracer.md`, "Recorded AMQP captures").
#[derive(Deserialize)]
struct CaptureLine {
    captured_at: String,
    event: String,
    #[serde(default)]
    trace_routing_key: Option<String>,
    headers: CaptureHeaders,
    body: String,
}

#[derive(Deserialize)]
struct CaptureHeaders {
    exchange_name: String,
    #[serde(default)]
    routing_keys: Vec<String>,
    #[serde(default)]
    properties: CaptureProperties,
}

#[derive(Deserialize, Default)]
struct CaptureProperties {
    #[serde(default)]
    expiration: Option<String>,
}

impl AmqpRecord {
    /// Parses one line of a recorded firehose capture (JSON Lines with `captured_at`, `event`,
    /// `trace_routing_key`, `headers{exchange_name, routing_keys, properties}` and `body`).
    pub fn from_capture_line(line: &str) -> Result<AmqpRecord> {
        let raw: CaptureLine = serde_json::from_str(line)
            .map_err(|error| Error::Format(format!("capture record: {error}")))?;
        let ts_us = parse_rfc3339_us(&raw.captured_at)?;
        let direction = match raw.event.as_str() {
            "publish" => Direction::Publish,
            "deliver" => Direction::Deliver,
            other => {
                return Err(Error::Format(format!(
                    "capture record: unknown event {other:?}"
                )));
            }
        };
        let queue = match direction {
            Direction::Deliver => raw
                .trace_routing_key
                .as_deref()
                .and_then(|key| key.strip_prefix("deliver."))
                .map(str::to_owned),
            Direction::Publish => None,
        };
        Ok(AmqpRecord {
            ts_us,
            direction,
            exchange: raw.headers.exchange_name,
            routing_key: raw
                .headers
                .routing_keys
                .into_iter()
                .next()
                .unwrap_or_default(),
            queue,
            expiration: raw.headers.properties.expiration,
            body: raw.body.into_bytes(),
        })
    }
}

/// Parses an RFC 3339 timestamp into µs since the Unix epoch.
pub fn parse_rfc3339_us(text: &str) -> Result<i64> {
    let ts: jiff::Timestamp = text
        .parse()
        .map_err(|error| Error::Format(format!("timestamp {text:?}: {error}")))?;
    Ok(ts.as_microsecond())
}

/// A firehose delivery: which queue handed a message to a consumer, and when.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// When it was delivered, µs since the Unix epoch.
    pub ts_us: i64,
    /// The queue it was delivered from.
    pub queue: String,
    /// The message's `_unique_id`, which joins it to its publish event.
    pub unique_id: Option<String>,
}

/// What one record decoded into.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A published message (decoded or opaque). Its `seq` is 0 until the pipeline numbers it.
    Event(Box<Event>),
    /// A delivery of an earlier published message.
    Delivery(Delivery),
}

/// Running counts of the decoder; nothing is dropped without being counted here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpCounts {
    /// Every record handed to the decoder.
    pub received: u64,
    /// Records of published messages.
    pub published: u64,
    /// Records of deliveries to a consumer (used for queue wait times, not as events).
    pub delivered: u64,
    /// Published messages decoded as oslo.messaging RPC, reply or notification.
    pub decoded: u64,
    /// Published messages that could not be decoded, kept as opaque events.
    pub opaque: u64,
}

/// Decodes oslo.messaging messages; keeps counts.
#[derive(Debug, Default)]
pub struct Decoder {
    counts: AmqpCounts,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "oslo.version")]
    version: String,
    #[serde(rename = "oslo.message")]
    message: String,
}

/// The allow-listed fields of an inner oslo message. Everything else (args, payload, the other
/// `_context_*` keys such as `_context_auth_token`) is skipped without being stored.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Inner {
    method: Option<String>,
    namespace: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    version: Option<String>,
    #[serde(rename = "_msg_id", deserialize_with = "loose_string")]
    msg_id: Option<String>,
    #[serde(rename = "_reply_q", deserialize_with = "loose_string")]
    reply_q: Option<String>,
    #[serde(rename = "_unique_id", deserialize_with = "loose_string")]
    unique_id: Option<String>,
    #[serde(rename = "_timeout", deserialize_with = "loose_string")]
    timeout: Option<String>,
    #[serde(deserialize_with = "present")]
    result: bool,
    #[serde(deserialize_with = "present_string")]
    failure: (bool, Option<String>),
    #[serde(deserialize_with = "present")]
    ending: bool,
    #[serde(deserialize_with = "loose_string")]
    event_type: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    publisher_id: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    priority: Option<String>,
    #[serde(deserialize_with = "loose_string")]
    message_id: Option<String>,
    #[serde(rename = "_context_request_id", deserialize_with = "loose_string")]
    request_id: Option<String>,
    #[serde(
        rename = "_context_global_request_id",
        deserialize_with = "loose_string"
    )]
    global_request_id: Option<String>,
    #[serde(rename = "_context_user_id", deserialize_with = "loose_string")]
    user_id: Option<String>,
    #[serde(rename = "_context_project_id", deserialize_with = "loose_string")]
    project_id: Option<String>,
    /// oslo.context's own `to_dict()` names the user `user` (nova adds `user_id`).
    #[serde(rename = "_context_user", deserialize_with = "loose_string")]
    user: Option<String>,
    /// oslo.context's own `to_dict()` names the project `project_id`… or `tenant` in older ones.
    #[serde(rename = "_context_tenant", deserialize_with = "loose_string")]
    tenant: Option<String>,
}

/// Accepts any JSON value: strings and numbers become text, everything else `None`.
fn loose_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => Some(text),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    })
}

/// True when the key is present (whatever its value, `null` included).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> std::result::Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer)?;
    Ok(true)
}

/// Presence of the key, and its value when it is a string.
fn present_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<(bool, Option<String>), D::Error> {
    Ok((true, loose_string(deserializer)?))
}

/// The serialized remote exception in a reply's `failure` (`serialize_remote_exception`).
#[derive(Deserialize)]
struct Failure {
    class: String,
}

impl Decoder {
    /// A decoder with zero counts.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Counts so far.
    pub fn counts(&self) -> AmqpCounts {
        self.counts
    }

    /// Decodes one record. Never fails: what cannot be decoded becomes an opaque event.
    pub fn decode(&mut self, record: &AmqpRecord) -> Decoded {
        self.counts.received += 1;
        if record.direction == Direction::Deliver {
            self.counts.delivered += 1;
            let unique_id = scan_unique_id(&record.body).or_else(|| {
                parse_envelope(&record.body)
                    .ok()
                    .and_then(|inner| inner.unique_id)
            });
            return Decoded::Delivery(Delivery {
                ts_us: record.ts_us,
                queue: record
                    .queue
                    .clone()
                    .unwrap_or_else(|| record.routing_key.clone()),
                unique_id,
            });
        }
        self.counts.published += 1;
        let event = match parse_envelope(&record.body) {
            Ok(inner) => match classify(record, inner) {
                Ok(event) => event,
                Err(reason) => opaque(record, reason),
            },
            Err(reason) => opaque(record, reason),
        };
        if event.kind == EventKind::Opaque {
            self.counts.opaque += 1;
        } else {
            self.counts.decoded += 1;
        }
        Decoded::Event(Box::new(event))
    }
}

/// Finds the `_unique_id` of a delivered message without parsing it: deliveries repeat a message
/// already decoded at publish time, and only their id is needed to find it. oslo adds the key
/// after the arguments (`_add_unique_id`), so the last occurrence of the escaped key
/// `\"_unique_id\":` inside the envelope string is taken. A wrong guess is harmless: the id is
/// only looked up among the ids of published messages.
fn scan_unique_id(body: &[u8]) -> Option<String> {
    const KEY: &[u8] = br#"\"_unique_id\""#;
    let at = body.windows(KEY.len()).rposition(|window| window == KEY)?;
    let rest = body[at + KEY.len()..]
        .strip_prefix(b":")?
        .trim_ascii_start();
    let rest = rest.strip_prefix(br#"\""#)?;
    let end = rest
        .iter()
        .position(|byte| !byte.is_ascii_alphanumeric() && *byte != b'-')?;
    (end > 0 && rest[end..].starts_with(br#"\""#))
        .then(|| String::from_utf8_lossy(&rest[..end]).into_owned())
}

fn parse_envelope(body: &[u8]) -> std::result::Result<Inner, String> {
    let envelope: Envelope =
        serde_json::from_slice(body).map_err(|error| format!("not an oslo envelope: {error}"))?;
    // `utils.version_is_compatible("2.0", version)`: same major, minor not newer than ours.
    let compatible = envelope
        .version
        .split_once('.')
        .is_some_and(|(major, minor)| {
            major == "2" && minor.parse::<u32>().is_ok_and(|minor| minor == 0)
        });
    if !compatible {
        return Err(format!("unsupported oslo.version {:?}", envelope.version));
    }
    serde_json::from_str(&envelope.message).map_err(|error| format!("bad oslo.message: {error}"))
}

fn base_event(record: &AmqpRecord, kind: EventKind, operation: String) -> Event {
    Event {
        seq: 0,
        ts_us: record.ts_us,
        source: Source::Amqp,
        kind,
        service: None,
        host: None,
        caller: None,
        operation,
        target: Some(format!("{}/{}", record.exchange, record.routing_key)),
        outcome: None,
        duration_us: None,
        ids: EventIds::default(),
        attrs: BTreeMap::new(),
    }
}

fn opaque(record: &AmqpRecord, reason: String) -> Event {
    let mut event = base_event(record, EventKind::Opaque, "opaque".to_owned());
    // The reason names the parse error's position, never the body (which may hold secrets).
    let reason: String = reason.chars().take(200).collect();
    event.attrs.insert("reason".to_owned(), reason);
    event
        .attrs
        .insert("bytes".to_owned(), record.body.len().to_string());
    event
}

fn classify(record: &AmqpRecord, inner: Inner) -> std::result::Result<Event, String> {
    let is_reply = inner.method.is_none() && (inner.ending || inner.result || inner.failure.0);
    if is_reply {
        let mut event = base_event(record, EventKind::RpcReply, "reply".to_owned());
        let outcome = match inner.failure.1 {
            Some(failure) => {
                let exception = serde_json::from_str::<Failure>(&failure)
                    .map(|failure| failure.class)
                    .unwrap_or_else(|_| "unknown".to_owned());
                Outcome::ReplyFailure { exception }
            }
            None => Outcome::ReplyOk,
        };
        event.outcome = Some(outcome);
        event.ids.msg_id = inner.msg_id;
        event.ids.unique_id = inner.unique_id;
        if inner.ending {
            event.attrs.insert("ending".to_owned(), "true".to_owned());
        }
        return Ok(event);
    }
    if let (Some(event_type), Some(publisher_id)) = (&inner.event_type, &inner.publisher_id) {
        let mut event = base_event(record, EventKind::Notification, event_type.clone());
        let (service, host) = service_for_publisher(publisher_id);
        event.service = Some(service);
        event.host = host;
        event
            .attrs
            .insert("publisher_id".to_owned(), publisher_id.clone());
        if let Some(priority) = &inner.priority {
            event.attrs.insert("priority".to_owned(), priority.clone());
        }
        if let Some(message_id) = &inner.message_id {
            event
                .attrs
                .insert("message_id".to_owned(), message_id.clone());
        }
        fill_context(&mut event, &inner);
        return Ok(event);
    }
    let Some(method) = inner.method.clone() else {
        return Err("neither an RPC request, a reply nor a notification".to_owned());
    };
    let (kind, topic, server) = if let Some(topic) = record.exchange.strip_suffix("_fanout") {
        (EventKind::RpcFanout, topic.to_owned(), None)
    } else {
        let (topic, server) = split_routing_key(&record.routing_key);
        let kind = if inner.msg_id.is_some() {
            EventKind::RpcCall
        } else {
            EventKind::RpcCast
        };
        (kind, topic.to_owned(), server.map(str::to_owned))
    };
    if topic.is_empty() {
        return Err("RPC request without a topic".to_owned());
    }
    let mut event = base_event(record, kind, format!("{topic}.{method}"));
    event.service = Some(service_for_topic(&topic));
    event.host = server;
    event.attrs.insert("method".to_owned(), method);
    event.attrs.insert("topic".to_owned(), topic);
    if let Some(namespace) = &inner.namespace {
        event
            .attrs
            .insert("namespace".to_owned(), namespace.clone());
    }
    if let Some(version) = &inner.version {
        event.attrs.insert("version".to_owned(), version.clone());
    }
    if let Some(timeout) = &inner.timeout {
        event
            .attrs
            .insert("call_monitor_timeout".to_owned(), timeout.clone());
    }
    if let Some(expiration) = &record.expiration {
        event
            .attrs
            .insert("expiration_ms".to_owned(), expiration.clone());
    }
    event.ids.msg_id = inner.msg_id.clone();
    event.ids.reply_queue = inner.reply_q.clone();
    fill_context(&mut event, &inner);
    Ok(event)
}

fn fill_context(event: &mut Event, inner: &Inner) {
    event.ids.request_id = inner.request_id.clone();
    event.ids.global_request_id = inner.global_request_id.clone();
    event.ids.unique_id = inner.unique_id.clone();
    if let Some(user_id) = inner.user_id.as_ref().or(inner.user.as_ref()) {
        event.attrs.insert("user_id".to_owned(), user_id.clone());
    }
    if let Some(project_id) = inner.project_id.as_ref().or(inner.tenant.as_ref()) {
        event
            .attrs
            .insert("project_id".to_owned(), project_id.clone());
    }
}

/// Builds an oslo envelope 2.0 body around an inner message (tests, benchmarks, fixtures).
pub fn envelope(inner: &serde_json::Value) -> Vec<u8> {
    serde_json::json!({"oslo.version": "2.0", "oslo.message": inner.to_string()})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn publish(exchange: &str, routing_key: &str, inner: serde_json::Value) -> AmqpRecord {
        AmqpRecord {
            ts_us: 1,
            direction: Direction::Publish,
            exchange: exchange.to_owned(),
            routing_key: routing_key.to_owned(),
            queue: None,
            expiration: Some("60000".to_owned()),
            body: envelope(&inner),
        }
    }

    fn decode_one(record: &AmqpRecord) -> Event {
        match Decoder::new().decode(record) {
            Decoded::Event(event) => *event,
            Decoded::Delivery(delivery) => panic!("unexpected delivery {delivery:?}"),
        }
    }

    #[test]
    fn a_call_to_a_server_is_decoded_with_its_context() {
        let event = decode_one(&publish(
            "nova",
            "compute.node1.example.org",
            json!({"method": "build_and_run_instance", "args": {"x": 1}, "version": "6.0",
                   "_msg_id": "m1", "_reply_q": "reply_abc", "_unique_id": "u1", "_timeout": null,
                   "_context_request_id": "req-1", "_context_global_request_id": null,
                   "_context_auth_token": "gAAAAsecret", "_context_user_id": "user"}),
        ));
        assert_eq!(event.kind, EventKind::RpcCall);
        assert_eq!(event.operation, "compute.build_and_run_instance");
        assert_eq!(event.service.as_deref(), Some("nova-compute"));
        assert_eq!(event.host.as_deref(), Some("node1.example.org"));
        assert_eq!(event.ids.msg_id.as_deref(), Some("m1"));
        assert_eq!(event.ids.reply_queue.as_deref(), Some("reply_abc"));
        assert_eq!(event.ids.request_id.as_deref(), Some("req-1"));
        assert_eq!(event.ids.global_request_id, None);
        assert_eq!(event.attrs["version"], "6.0");
        assert_eq!(event.attrs["expiration_ms"], "60000");
        assert!(
            !serde_json::to_string(&event)
                .unwrap()
                .contains("gAAAAsecret")
        );
    }

    #[test]
    fn casts_fanouts_replies_and_notifications_are_classified() {
        let cast = decode_one(&publish(
            "nova",
            "conductor",
            json!({"method": "m", "args": {}}),
        ));
        assert_eq!(cast.kind, EventKind::RpcCast);
        assert_eq!(cast.service.as_deref(), Some("nova-conductor"));
        let fanout = decode_one(&publish(
            "scheduler_fanout",
            "",
            json!({"method": "update_instance_info", "args": {}}),
        ));
        assert_eq!(fanout.kind, EventKind::RpcFanout);
        assert_eq!(fanout.operation, "scheduler.update_instance_info");
        assert_eq!(fanout.service.as_deref(), Some("nova-scheduler"));
        let ok = decode_one(&publish(
            "",
            "reply_abc",
            json!({"result": null, "failure": null, "ending": true, "_msg_id": "m1"}),
        ));
        assert_eq!(ok.kind, EventKind::RpcReply);
        assert_eq!(ok.outcome, Some(Outcome::ReplyOk));
        let failure = json!({"class": "NoValidHost", "module": "nova.exception", "message": "x",
                             "tb": [], "args": [], "kwargs": {}})
        .to_string();
        let failed = decode_one(&publish(
            "",
            "reply_abc",
            json!({"result": null, "failure": failure, "ending": true, "_msg_id": "m1"}),
        ));
        assert_eq!(
            failed.outcome,
            Some(Outcome::ReplyFailure {
                exception: "NoValidHost".to_owned()
            })
        );
        assert!(failed.is_error());
        let notification = decode_one(&publish(
            "nova",
            "versioned_notifications.info",
            json!({"event_type": "instance.create.start", "publisher_id": "nova-compute:osbed",
                   "priority": "INFO", "payload": {}, "message_id": "n1",
                   "_context_request_id": "req-2"}),
        ));
        assert_eq!(notification.kind, EventKind::Notification);
        assert_eq!(notification.operation, "instance.create.start");
        assert_eq!(notification.service.as_deref(), Some("nova-compute"));
        assert_eq!(notification.host.as_deref(), Some("osbed"));
        assert_eq!(notification.ids.request_id.as_deref(), Some("req-2"));
    }

    #[test]
    fn bad_bodies_become_counted_opaque_events() {
        let mut decoder = Decoder::new();
        let mut record = publish("nova", "conductor", json!({}));
        for body in [
            &b"not json"[..],
            br#"{"oslo.version": "3.0", "oslo.message": "{}"}"#,
            br#"{"oslo.version": "2.0", "oslo.message": "{\"method\": "}"#,
            br#"{"oslo.version": "2.0", "oslo.message": "{}"}"#,
            b"",
        ] {
            record.body = body.to_vec();
            let Decoded::Event(event) = decoder.decode(&record) else {
                panic!()
            };
            assert_eq!(event.kind, EventKind::Opaque);
            assert!(event.attrs.contains_key("reason"));
        }
        assert_eq!(
            decoder.counts(),
            AmqpCounts {
                received: 5,
                published: 5,
                delivered: 0,
                decoded: 0,
                opaque: 5
            }
        );
    }

    #[test]
    fn deliveries_carry_the_unique_id() {
        let mut record = publish(
            "nova",
            "conductor",
            json!({"method": "m", "_unique_id": "u9"}),
        );
        record.direction = Direction::Deliver;
        record.queue = Some("conductor".to_owned());
        let Decoded::Delivery(delivery) = Decoder::new().decode(&record) else {
            panic!()
        };
        assert_eq!(delivery.unique_id.as_deref(), Some("u9"));
        assert_eq!(delivery.queue, "conductor");
        assert_eq!(scan_unique_id(&record.body).as_deref(), Some("u9"));
        // An id the scan cannot read falls back to the full parse.
        record.body = envelope(&json!({"method": "m", "_unique_id": "u_10"}));
        assert_eq!(scan_unique_id(&record.body), None);
        let Decoded::Delivery(delivery) = Decoder::new().decode(&record) else {
            panic!()
        };
        assert_eq!(delivery.unique_id.as_deref(), Some("u_10"));
        record.body = b"garbage".to_vec();
        let Decoded::Delivery(delivery) = Decoder::new().decode(&record) else {
            panic!()
        };
        assert_eq!(delivery.unique_id, None);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_are_counted(body in proptest::collection::vec(any::<u8>(), 0..300),
                                                       exchange in "[a-z_]{0,12}", key in "[a-z._]{0,16}") {
            let mut decoder = Decoder::new();
            let record = AmqpRecord { ts_us: 0, direction: Direction::Publish, exchange, routing_key: key,
                                      queue: None, expiration: None, body };
            decoder.decode(&record);
            let counts = decoder.counts();
            prop_assert_eq!(counts.received, 1);
            prop_assert_eq!(counts.decoded + counts.opaque, 1);
        }

        #[test]
        fn truncated_real_messages_never_panic(cut in 0usize..400) {
            let body = envelope(&json!({"method": "object_action", "_msg_id": "m", "_context_request_id": "r",
                                        "args": {"objinst": {"a": [1, 2, 3]}}}));
            let cut = cut.min(body.len());
            let mut decoder = Decoder::new();
            let record = AmqpRecord { ts_us: 0, direction: Direction::Publish, exchange: "nova".into(),
                                      routing_key: "conductor".into(), queue: None, expiration: None,
                                      body: body[..cut].to_vec() };
            decoder.decode(&record);
            prop_assert_eq!(decoder.counts().decoded + decoder.counts().opaque, 1);
        }
    }
}
