//! Reading traces back: the tracer's own format, recorded firehose captures, Zipkin v2 JSON and
//! OpenTelemetry-style (OTLP/JSON) span files, all into the one event model so that graphs can be
//! rebuilt offline with the same [`Pipeline`].
//!
//! Foreign formats are read leniently (unknown fields are ignored) because they come from other
//! tools' versions; the tracer's own files are read strictly and their version is checked.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use crate::event::{
    Event, EventIds, EventKind, Outcome, Source, TRACE_FORMAT_VERSION, Transaction,
};
use crate::oslo::AmqpRecord;
use crate::pipeline::{Pipeline, TRACE_FORMAT_NAME};
use crate::rest::path_template;
use crate::{Error, Result};

/// The kinds of input `butterfly trace import` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// A trace directory or its `events.jsonl`: events re-stitched.
    Events,
    /// A recorded firehose capture (JSON Lines of broker records): decoded and stitched.
    Capture,
    /// Zipkin v2 JSON: an array of spans.
    Zipkin,
    /// OpenTelemetry OTLP/JSON: `{"resourceSpans": [...]}`.
    Otel,
}

use userinput::file::FileKind;

/// Reads a whole trace file through the bounded reader.
fn read(path: &Path) -> Result<String> {
    Ok(userinput::file::read_to_string(path, FileKind::TRACE)?)
}

/// Guesses the format of a file (or trace directory) from its content.
pub fn detect(path: &Path) -> Result<InputFormat> {
    if path.is_dir() {
        return Ok(InputFormat::Events);
    }
    let text = read(path)?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return Ok(InputFormat::Zipkin);
    }
    let first_line = trimmed.lines().next().unwrap_or("");
    let first: Value = serde_json::from_str(first_line)
        .or_else(|_| serde_json::from_str(trimmed))
        .map_err(|error| Error::Format(format!("{}: not JSON: {error}", path.display())))?;
    if first.get("resourceSpans").is_some() {
        Ok(InputFormat::Otel)
    } else if first.get("headers").is_some() && first.get("body").is_some() {
        Ok(InputFormat::Capture)
    } else if first.get("seq").is_some() && first.get("kind").is_some() {
        Ok(InputFormat::Events)
    } else {
        Err(Error::Format(format!(
            "{}: neither trace events, a firehose capture, Zipkin v2 nor OTLP/JSON",
            path.display()
        )))
    }
}

/// Feeds a file or trace directory of any [`InputFormat`] into the pipeline.
pub fn import_into(path: &Path, pipeline: &mut Pipeline) -> Result<InputFormat> {
    let format = detect(path)?;
    match format {
        InputFormat::Events => {
            let file = if path.is_dir() {
                path.join("events.jsonl")
            } else {
                path.to_owned()
            };
            for event in read_events(&file)? {
                pipeline.push_imported(event)?;
            }
        }
        InputFormat::Capture => {
            for record in read_capture(path)? {
                pipeline.push_amqp(&record)?;
            }
        }
        InputFormat::Zipkin => {
            for event in zipkin_events(&read(path)?)? {
                pipeline.push_imported(event)?;
            }
        }
        InputFormat::Otel => {
            for event in otel_events(&read(path)?)? {
                pipeline.push_imported(event)?;
            }
        }
    }
    Ok(format)
}

/// Reads `events.jsonl`; errors name the line.
pub fn read_events(path: &Path) -> Result<Vec<Event>> {
    read_lines(path, |line| {
        serde_json::from_str(line).map_err(|e| e.to_string())
    })
}

/// Parses each non-blank line of a JSON Lines trace file, read line by line within the trace
/// file's limits; errors name the line.
fn read_lines<T>(
    path: &Path,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Vec<T>> {
    let mut parsed = Vec::new();
    for line in userinput::file::lines(path, FileKind::TRACE)? {
        let (number, line) = line?;
        if line.trim().is_empty() {
            continue;
        }
        parsed.push(
            parse(&line)
                .map_err(|error| Error::Format(format!("{}:{number}: {error}", path.display())))?,
        );
    }
    Ok(parsed)
}

/// Reads a recorded firehose capture; errors name the line.
pub fn read_capture(path: &Path) -> Result<Vec<AmqpRecord>> {
    read_lines(path, |line| {
        AmqpRecord::from_capture_line(line).map_err(|e| e.to_string())
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransactionsFile {
    format: String,
    version: u32,
    transactions: Vec<Transaction>,
}

/// Reads `transactions.json`, checking its format name and version.
pub fn read_transactions(path: &Path) -> Result<Vec<Transaction>> {
    let file: TransactionsFile = serde_json::from_str(&read(path)?)
        .map_err(|error| Error::Format(format!("{}: {error}", path.display())))?;
    if file.format != TRACE_FORMAT_NAME || file.version > TRACE_FORMAT_VERSION {
        return Err(Error::Format(format!(
            "{}: format {} version {} is not readable by this build (reads {TRACE_FORMAT_NAME} ≤ {TRACE_FORMAT_VERSION})",
            path.display(),
            file.format,
            file.version
        )));
    }
    Ok(file.transactions)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinSpan {
    trace_id: String,
    id: String,
    #[serde(default)]
    parent_id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    duration: Option<u64>,
    #[serde(default)]
    local_endpoint: Option<ZipkinEndpoint>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ZipkinEndpoint {
    #[serde(default)]
    service_name: Option<String>,
    #[serde(default)]
    ipv4: Option<String>,
}

/// Converts Zipkin v2 JSON (an array of spans) into events; the trace id is the global request id.
pub fn zipkin_events(text: &str) -> Result<Vec<Event>> {
    let spans: Vec<ZipkinSpan> = serde_json::from_str(text)
        .map_err(|error| Error::Format(format!("Zipkin v2 JSON: {error}")))?;
    Ok(spans
        .into_iter()
        .map(|span| {
            let (service, host) = span
                .local_endpoint
                .map(|endpoint| (endpoint.service_name, endpoint.ipv4))
                .unwrap_or_default();
            span_event(SpanParts {
                trace_id: span.trace_id,
                span_id: span.id,
                parent_id: span.parent_id,
                name: span.name.unwrap_or_default(),
                messaging: matches!(span.kind.as_deref(), Some("PRODUCER" | "CONSUMER")),
                ts_us: span.timestamp.unwrap_or(0),
                duration_us: span.duration,
                service,
                host,
                tags: span.tags,
                error: None,
            })
        })
        .collect())
}

/// Converts OpenTelemetry OTLP/JSON (`resourceSpans[].scopeSpans[].spans[]`) into events.
pub fn otel_events(text: &str) -> Result<Vec<Event>> {
    let root: Value =
        serde_json::from_str(text).map_err(|error| Error::Format(format!("OTLP/JSON: {error}")))?;
    let resource_spans = root
        .get("resourceSpans")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::Format("OTLP/JSON: no resourceSpans array".to_owned()))?;
    let mut events = Vec::new();
    for (r, resource) in resource_spans.iter().enumerate() {
        let resource_attrs = attributes(resource.pointer("/resource/attributes"));
        let service = resource_attrs.get("service.name").cloned();
        let host = resource_attrs.get("host.name").cloned();
        let scopes = resource.get("scopeSpans").and_then(Value::as_array);
        for (s, scope) in scopes.into_iter().flatten().enumerate() {
            let spans = scope.get("spans").and_then(Value::as_array);
            for (n, span) in spans.into_iter().flatten().enumerate() {
                let at = format!("resourceSpans[{r}].scopeSpans[{s}].spans[{n}]");
                let text_field =
                    |name: &str| span.get(name).and_then(Value::as_str).map(str::to_owned);
                let trace_id = text_field("traceId")
                    .ok_or_else(|| Error::Format(format!("OTLP/JSON {at}: no traceId")))?;
                let span_id = text_field("spanId")
                    .ok_or_else(|| Error::Format(format!("OTLP/JSON {at}: no spanId")))?;
                let start = nanos(span.get("startTimeUnixNano"));
                let end = nanos(span.get("endTimeUnixNano"));
                let kind = span
                    .get("kind")
                    .map(|kind| kind.to_string())
                    .unwrap_or_default();
                let error = match span.pointer("/status/code") {
                    Some(code) if code == 2 || code == "STATUS_CODE_ERROR" => Some(
                        span.pointer("/status/message")
                            .and_then(Value::as_str)
                            .unwrap_or("error")
                            .to_owned(),
                    ),
                    _ => None,
                };
                events.push(span_event(SpanParts {
                    trace_id,
                    span_id,
                    parent_id: text_field("parentSpanId").filter(|id| !id.is_empty()),
                    name: text_field("name").unwrap_or_default(),
                    messaging: kind.contains('4')
                        || kind.contains('5')
                        || kind.contains("PRODUCER")
                        || kind.contains("CONSUMER"),
                    ts_us: start / 1_000,
                    duration_us: u64::try_from((end - start) / 1_000)
                        .ok()
                        .filter(|_| end > 0),
                    service: service.clone(),
                    host: host.clone(),
                    tags: attributes(span.get("attributes")),
                    error,
                }));
            }
        }
    }
    Ok(events)
}

fn nanos(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::String(text)) => text.parse().unwrap_or(0),
        Some(Value::Number(number)) => number.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// OTLP attributes `[{"key": k, "value": {"stringValue"|"intValue"|…: v}}]` as text.
fn attributes(value: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for attribute in value.and_then(Value::as_array).into_iter().flatten() {
        let Some(key) = attribute.get("key").and_then(Value::as_str) else {
            continue;
        };
        let Some(inner) = attribute.get("value").and_then(Value::as_object) else {
            continue;
        };
        if let Some(value) = inner.values().next() {
            let text = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            out.insert(key.to_owned(), text);
        }
    }
    out
}

struct SpanParts {
    trace_id: String,
    span_id: String,
    parent_id: Option<String>,
    name: String,
    messaging: bool,
    ts_us: i64,
    duration_us: Option<u64>,
    service: Option<String>,
    host: Option<String>,
    tags: BTreeMap<String, String>,
    error: Option<String>,
}

/// One span as an event: HTTP spans become REST requests with a path template; others RPC.
fn span_event(span: SpanParts) -> Event {
    let tag = |names: &[&str]| names.iter().find_map(|name| span.tags.get(*name).cloned());
    let method = tag(&["http.request.method", "http.method"]);
    let path = tag(&[
        "http.route",
        "url.path",
        "http.target",
        "http.path",
        "http.url",
    ]);
    let status =
        tag(&["http.response.status_code", "http.status_code"]).and_then(|s| s.parse().ok());
    let (kind, operation) = match (&method, &path) {
        (Some(method), Some(path)) => {
            let path = path.split_once("://").map_or(path.as_str(), |(_, rest)| {
                rest.find('/').map_or("/", |slash| &rest[slash..])
            });
            (
                EventKind::RestRequest,
                format!("{method} {}", path_template(path)),
            )
        }
        (Some(method), None) => (EventKind::RestRequest, format!("{method} {}", span.name)),
        _ if span.messaging => (EventKind::RpcCast, span.name.clone()),
        _ => (EventKind::RpcCall, span.name.clone()),
    };
    let outcome = match (status, span.error.clone().or_else(|| tag(&["error"]))) {
        (Some(status), _) => Some(Outcome::Http { status }),
        (None, Some(exception)) => Some(Outcome::ReplyFailure { exception }),
        (None, None) => None,
    };
    let request_id = tag(&["openstack.request_id", "request_id"]);
    Event {
        seq: 0,
        ts_us: span.ts_us,
        source: Source::Import,
        kind,
        service: span.service,
        host: span.host,
        caller: None,
        operation,
        target: None,
        outcome,
        duration_us: span.duration_us,
        ids: EventIds {
            request_id,
            global_request_id: Some(span.trace_id),
            span_id: Some(span.span_id),
            parent_span_id: span.parent_id,
            ..EventIds::default()
        },
        attrs: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EdgeKind;
    use crate::stitch::StitchConfig;

    #[test]
    fn zipkin_spans_become_one_transaction_with_span_edges() {
        let text = r#"[
          {"traceId": "t1", "id": "a", "name": "post /servers", "kind": "SERVER", "timestamp": 1000,
           "duration": 500, "localEndpoint": {"serviceName": "nova-api"},
           "tags": {"http.method": "POST", "http.path": "/v2.1/servers", "http.status_code": "202"}},
          {"traceId": "t1", "id": "b", "parentId": "a", "name": "get", "kind": "CLIENT", "timestamp": 1100,
           "duration": 100, "localEndpoint": {"serviceName": "glance-api"},
           "tags": {"http.method": "GET", "http.url": "http://g:9292/v2/images/c8ce6502-980c-4972-b757-7780f63306be"}},
          {"traceId": "t1", "id": "c", "parentId": "a", "name": "schedule", "kind": "PRODUCER", "timestamp": 1200,
           "tags": {"error": "NoValidHost"}}
        ]"#;
        let mut pipeline = Pipeline::in_memory(StitchConfig::default());
        for event in zipkin_events(text).unwrap() {
            pipeline.push_imported(event).unwrap();
        }
        let output = pipeline.finish().unwrap();
        assert_eq!(output.transactions.len(), 1);
        let transaction = &output.transactions[0];
        assert_eq!(transaction.command.as_deref(), Some("server create"));
        let operations: Vec<&str> = transaction
            .events
            .iter()
            .map(|e| e.operation.as_str())
            .collect();
        assert_eq!(
            operations,
            ["POST /v2.1/servers", "GET /v2/images/{id}", "schedule"]
        );
        assert_eq!(transaction.events[2].kind, EventKind::RpcCast);
        assert!(transaction.events[2].is_error());
        assert!(
            transaction
                .edges
                .iter()
                .all(|edge| edge.kind == EdgeKind::Span && edge.from == 1)
        );
        assert_eq!(transaction.edges.len(), 2);
    }

    #[test]
    fn otel_spans_are_read_with_resources_and_status() {
        let text = r#"{"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "placement-api"}}]},
          "scopeSpans": [{"spans": [
            {"traceId": "t2", "spanId": "s1", "parentSpanId": "", "name": "GET", "kind": 2,
             "startTimeUnixNano": "2000000", "endTimeUnixNano": "5000000",
             "attributes": [{"key": "http.request.method", "value": {"stringValue": "GET"}},
                            {"key": "url.path", "value": {"stringValue": "/allocations/3cf6d929-3aa8-471b-a066-9c52d409c54f"}},
                            {"key": "http.response.status_code", "value": {"intValue": "500"}}],
             "status": {"code": 2, "message": "boom"}}]}]}]}"#;
        let events = otel_events(text).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].operation, "GET /allocations/{id}");
        assert_eq!(events[0].service.as_deref(), Some("placement-api"));
        assert_eq!(events[0].ts_us, 2_000);
        assert_eq!(events[0].duration_us, Some(3_000));
        assert_eq!(events[0].outcome, Some(Outcome::Http { status: 500 }));
        assert!(events[0].ids.parent_span_id.is_none());
        assert!(
            otel_events(r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]}"#)
                .unwrap_err()
                .to_string()
                .contains("resourceSpans[0].scopeSpans[0].spans[0]: no traceId")
        );
    }
}
