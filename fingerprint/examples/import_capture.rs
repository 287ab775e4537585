//! Builds the test fixtures of this crate from a recorded capture (RabbitMQ firehose JSON Lines
//! plus the REST access log of the recording proxy), as `transactions.json` in the trace format of
//! the `tracer` crate (see `docs/tracer.md`).
//!
//! The tracer's own stitching produces the same kind of file from live traffic, and `butterfly
//! trace import` from a firehose capture; this small importer exists because the recorded REST
//! side of these captures is an access log (`rest.txt`) that the tracer does not import. Only the
//! event model's fields are kept: message bodies (which hold tokens and passwords) are dropped.
//!
//! ```text
//! cargo run -p fingerprint --example import_capture -- CAPTURE_DIR OUT_DIR
//! ```
//! `CAPTURE_DIR` holds `amqp.jsonl` and optionally `rest.txt`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::Value;
use tracer::event::{
    Edge, EdgeKind, Event, EventIds, EventKind, Outcome, Source, TRACE_FORMAT_VERSION, Transaction,
};
use tracer::pipeline::TRACE_FORMAT_NAME;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let [capture, out] = arguments.as_slice() else {
        return Err("usage: import_capture CAPTURE_DIR OUT_DIR".into());
    };
    let capture = Path::new(capture);
    let mut events = amqp_events(&std::fs::read_to_string(capture.join("amqp.jsonl"))?)?;
    if let Ok(rest) = std::fs::read_to_string(capture.join("rest.txt")) {
        events.extend(rest_events(&rest)?);
    }
    let transactions = stitch(events);
    std::fs::create_dir_all(out)?;
    let path = Path::new(out).join("transactions.json");
    let file = serde_json::json!({
        "format": TRACE_FORMAT_NAME,
        "version": TRACE_FORMAT_VERSION,
        "transactions": transactions,
    });
    std::fs::write(&path, serde_json::to_string_pretty(&file)? + "\n")?;
    println!("{}: {} transactions", path.display(), transactions.len());
    Ok(())
}

/// An event and the key of the transaction it belongs to (`None` for replies, joined by msg id).
struct Keyed {
    key: Option<String>,
    event: Event,
}

fn service_of_topic(topic: &str) -> String {
    match topic {
        "conductor" => "nova-conductor".to_owned(),
        "scheduler" => "nova-scheduler".to_owned(),
        "compute" => "nova-compute".to_owned(),
        other => other.to_owned(),
    }
}

fn service_of_log_name(name: &str) -> String {
    match name {
        "glance" => "glance-api".to_owned(),
        "placement" => "placement-api".to_owned(),
        "neutron" => "neutron-api".to_owned(),
        other => other.to_owned(),
    }
}

fn text(value: &Value, key: &str) -> Option<String> {
    match value.get(key)? {
        Value::String(text) if text != "None" => Some(text.clone()),
        _ => None,
    }
}

fn amqp_events(text_lines: &str) -> Result<Vec<Keyed>, Box<dyn std::error::Error>> {
    let mut events = Vec::new();
    for line in text_lines.lines().filter(|line| !line.trim().is_empty()) {
        let record: Value = serde_json::from_str(line)?;
        // The firehose shows every message twice (publish, deliver); publish is when it was sent.
        if record["event"] != "publish" {
            continue;
        }
        let ts_us = parse_rfc3339_us(record["captured_at"].as_str().unwrap_or_default())?;
        let headers = &record["headers"];
        let exchange = headers["exchange_name"].as_str().unwrap_or_default();
        let routing_key = headers["routing_keys"][0]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let message = &record["oslo_message"];
        let ids = EventIds {
            request_id: text(message, "_context_request_id"),
            global_request_id: text(message, "_context_global_request_id"),
            msg_id: text(message, "_msg_id"),
            reply_queue: text(message, "_reply_q"),
            unique_id: text(message, "_unique_id"),
            ..EventIds::default()
        };
        let key = ids
            .global_request_id
            .clone()
            .or_else(|| ids.request_id.clone());
        let (topic, host) = match (
            exchange.strip_suffix("_fanout"),
            routing_key.split_once('.'),
        ) {
            (Some(topic), _) => (topic.to_owned(), None),
            (None, Some((topic, host))) => (topic.to_owned(), Some(host.to_owned())),
            (None, None) => (routing_key.clone(), None),
        };
        let target = Some(format!("{exchange}/{routing_key}"));
        let event = if let Some(event_type) = text(message, "event_type") {
            let publisher = text(message, "publisher_id").unwrap_or_default();
            let (service, host) = match publisher.split_once(':') {
                Some((service, host)) => (service.to_owned(), Some(host.to_owned())),
                None => (publisher, None),
            };
            Event {
                seq: 0,
                ts_us,
                source: Source::Amqp,
                kind: EventKind::Notification,
                service: Some(service),
                host,
                caller: None,
                operation: event_type,
                target,
                outcome: None,
                duration_us: None,
                ids,
                attrs: BTreeMap::new(),
            }
        } else if let Some(method) = text(message, "method") {
            let kind = if ids.msg_id.is_some() {
                EventKind::RpcCall
            } else if exchange.ends_with("_fanout") {
                EventKind::RpcFanout
            } else {
                EventKind::RpcCast
            };
            Event {
                seq: 0,
                ts_us,
                source: Source::Amqp,
                kind,
                service: Some(service_of_topic(&topic)),
                host,
                caller: None,
                operation: format!("{topic}.{method}"),
                target,
                outcome: None,
                duration_us: None,
                ids,
                attrs: BTreeMap::new(),
            }
        } else {
            let outcome = match text(message, "failure") {
                Some(failure) => {
                    let class = serde_json::from_str::<Value>(&failure)
                        .ok()
                        .and_then(|failure| text(&failure, "class"))
                        .unwrap_or_else(|| "RemoteError".to_owned());
                    Outcome::ReplyFailure { exception: class }
                }
                None => Outcome::ReplyOk,
            };
            Event {
                seq: 0,
                ts_us,
                source: Source::Amqp,
                kind: EventKind::RpcReply,
                service: None,
                host: None,
                caller: None,
                operation: String::new(),
                target,
                outcome: Some(outcome),
                duration_us: None,
                ids,
                attrs: BTreeMap::new(),
            }
        };
        let key = if event.kind == EventKind::RpcReply {
            None
        } else {
            key
        };
        events.push(Keyed { key, event });
    }
    Ok(events)
}

fn rest_events(log: &str) -> Result<Vec<Keyed>, Box<dyn std::error::Error>> {
    let mut events = Vec::new();
    for line in log
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
    {
        let (head, rest) = line.split_once(" \"").ok_or("no request line")?;
        let (request_line, tail) = rest.split_once("\" ").ok_or("unterminated request line")?;
        let mut head_fields = head.split_whitespace();
        let end_us = parse_rfc3339_us(head_fields.next().ok_or("no time")?)?;
        let service = service_of_log_name(head_fields.next().ok_or("no service")?);
        let mut request = request_line.split_whitespace();
        let method = request.next().ok_or("no method")?;
        let target = request.next().ok_or("no target")?;
        let fields: Vec<&str> = tail.split_whitespace().collect();
        let status: u16 = fields.first().ok_or("no status")?.parse()?;
        let duration_ms: f64 = fields
            .get(2)
            .and_then(|field| field.strip_suffix("ms"))
            .ok_or("no duration")?
            .parse()?;
        let field = |name: &str| {
            fields
                .iter()
                .find_map(|field| field.strip_prefix(name))
                .filter(|value| *value != "-")
                .map(str::to_owned)
        };
        let request_id = field("req_id=");
        let global_request_id = field("greq=");
        let duration_us = (duration_ms * 1000.0).round() as u64;
        let key = global_request_id.clone().or_else(|| request_id.clone());
        events.push(Keyed {
            key,
            event: Event {
                seq: 0,
                ts_us: end_us - duration_us as i64,
                source: Source::Rest,
                kind: EventKind::RestRequest,
                service: Some(service),
                host: None,
                caller: None,
                operation: format!("{method} {target}"),
                target: None,
                outcome: Some(Outcome::Http { status }),
                duration_us: Some(duration_us),
                ids: EventIds {
                    request_id,
                    global_request_id,
                    ..EventIds::default()
                },
                attrs: BTreeMap::new(),
            },
        });
    }
    Ok(events)
}

fn stitch(mut events: Vec<Keyed>) -> Vec<Transaction> {
    events.sort_by_key(|keyed| keyed.event.ts_us);
    let mut calls: HashMap<String, (String, u64, Option<String>, String)> = HashMap::new();
    let mut groups: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    let mut edges: BTreeMap<String, Vec<Edge>> = BTreeMap::new();
    for (seq, keyed) in events.into_iter().enumerate() {
        let Keyed { key, mut event } = keyed;
        event.seq = seq as u64;
        let key = match key {
            Some(key) => key,
            None => {
                // A reply belongs to the transaction of its call and comes from the called service.
                let Some((key, call_seq, service, operation)) = event
                    .ids
                    .msg_id
                    .as_ref()
                    .and_then(|id| calls.get(id))
                    .cloned()
                else {
                    continue;
                };
                event.service = service;
                event.operation = operation;
                edges.entry(key.clone()).or_default().push(Edge {
                    from: call_seq,
                    to: event.seq,
                    kind: EdgeKind::Reply,
                });
                key
            }
        };
        if event.kind == EventKind::RpcCall
            && let Some(msg_id) = &event.ids.msg_id
        {
            calls.insert(
                msg_id.clone(),
                (
                    key.clone(),
                    event.seq,
                    event.service.clone(),
                    event.operation.clone(),
                ),
            );
        }
        groups.entry(key).or_default().push(event);
    }
    groups
        .into_iter()
        .map(|(id, events)| {
            let entry = events
                .iter()
                .find(|event| event.kind == EventKind::RestRequest);
            let command = entry.and_then(|entry| {
                let path = entry.operation.split('?').next().unwrap_or_default();
                match (entry.service.as_deref(), path) {
                    (Some("nova-api"), "POST /v2.1/servers") => Some("server create".to_owned()),
                    (Some("nova-api"), path) if path.starts_with("DELETE /v2.1/servers/") => {
                        Some("server delete".to_owned())
                    }
                    _ => None,
                }
            });
            Transaction {
                background: entry.is_none(),
                command,
                edges: edges.remove(&id).unwrap_or_default(),
                id,
                events,
            }
        })
        .collect()
}

/// `2026-11-28T10:19:13.537472+00:00` → microseconds since the epoch (UTC offsets only).
fn parse_rfc3339_us(stamp: &str) -> Result<i64, Box<dyn std::error::Error>> {
    let stamp = stamp
        .strip_suffix("+00:00")
        .or_else(|| stamp.strip_suffix('Z'))
        .ok_or_else(|| format!("not a UTC timestamp: {stamp}"))?;
    let (date, time) = stamp.split_once('T').ok_or("no T in timestamp")?;
    let mut date_parts = date.split('-').map(str::parse::<i64>);
    let (year, month, day) = (
        date_parts.next().ok_or("year")??,
        date_parts.next().ok_or("month")??,
        date_parts.next().ok_or("day")??,
    );
    let (clock, fraction) = time.split_once('.').unwrap_or((time, "0"));
    let mut clock_parts = clock.split(':').map(str::parse::<i64>);
    let (hour, minute, second) = (
        clock_parts.next().ok_or("hour")??,
        clock_parts.next().ok_or("minute")??,
        clock_parts.next().ok_or("second")??,
    );
    let micros: i64 = format!("{fraction:0<6}")[..6].parse()?;
    // Days from civil (Howard Hinnant's algorithm).
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Ok(((days * 24 + hour) * 60 + minute) * 60_000_000 + second * 1_000_000 + micros)
}
