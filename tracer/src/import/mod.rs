//! Reading traces back: the tracer's own format, recorded firehose captures, and the spans
//! OpenStack deployments already produce — OSProfiler (`osprofiler trace show --json`, and its
//! OTLP export), Zipkin v1 and v2 JSON, Jaeger JSON and OTLP/JSON — all into the one event model,
//! so that graphs, fingerprints and diagnoses can be made offline with the same [`Pipeline`].
//!
//! * [`detect`] tells a file's format by its structure and says what it saw;
//! * [`formats`] reads each span format into [`spans::Span`]s;
//! * [`spans`] turns spans into REST and RPC events with the [`tags::TagMap`].
//!
//! Foreign formats are read leniently (unknown fields are ignored) because they come from other
//! tools' versions; the tracer's own files are read strictly and their version is checked.

pub mod formats;
pub mod spans;
pub mod tags;

use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;
use userinput::file::FileKind;

use crate::event::{Event, TRACE_FORMAT_VERSION, Transaction};
use crate::oslo::AmqpRecord;
use crate::pipeline::{Pipeline, TRACE_FORMAT_NAME};
use crate::{Error, Result};

pub use spans::SpanCounts;
pub use tags::TagMap;

/// The kinds of input `butterfly trace import` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// A trace directory or its `events.jsonl`: events re-stitched.
    Events,
    /// A recorded firehose capture (JSON Lines of broker records): decoded and stitched.
    Capture,
    /// `osprofiler trace show --json`: a tree of trace points.
    Osprofiler,
    /// Zipkin v1 JSON: spans with `annotations`/`binaryAnnotations`, flat or in nested arrays.
    ZipkinV1,
    /// Zipkin v2 JSON: an array of spans with `localEndpoint`, `kind` and `tags`.
    ZipkinV2,
    /// Jaeger JSON (query API, UI export): `{"data": [{traceID, spans, processes}]}`.
    Jaeger,
    /// OpenTelemetry OTLP/JSON: `{"resourceSpans": [...]}` (also OSProfiler's OTLP export).
    Otlp,
}

impl InputFormat {
    /// Every format, for `--format` and the docs.
    pub const ALL: [InputFormat; 7] = [
        InputFormat::Events,
        InputFormat::Capture,
        InputFormat::Osprofiler,
        InputFormat::ZipkinV1,
        InputFormat::ZipkinV2,
        InputFormat::Jaeger,
        InputFormat::Otlp,
    ];

    /// The name given to `--format`.
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Events => "events",
            InputFormat::Capture => "capture",
            InputFormat::Osprofiler => "osprofiler",
            InputFormat::ZipkinV1 => "zipkin-v1",
            InputFormat::ZipkinV2 => "zipkin-v2",
            InputFormat::Jaeger => "jaeger",
            InputFormat::Otlp => "otlp",
        }
    }

    /// What a file of this format looks like, as said in messages.
    pub fn shape(self) -> &'static str {
        match self {
            InputFormat::Events => "trace events (JSON Lines with \"seq\" and \"kind\")",
            InputFormat::Capture => "a firehose capture (JSON Lines with \"headers\" and \"body\")",
            InputFormat::Osprofiler => {
                "an OSProfiler trace (an object with \"info\" and \"children\")"
            }
            InputFormat::ZipkinV1 => {
                "Zipkin v1 JSON (spans with \"annotations\"/\"binaryAnnotations\", flat or in nested arrays)"
            }
            InputFormat::ZipkinV2 => {
                "Zipkin v2 JSON (an array of spans with \"localEndpoint\", \"kind\", \"tags\")"
            }
            InputFormat::Jaeger => {
                "Jaeger JSON (an object with \"data\": [{\"traceID\", \"spans\", \"processes\"}])"
            }
            InputFormat::Otlp => "OTLP/JSON (an object with \"resourceSpans\")",
        }
    }
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for InputFormat {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<InputFormat, String> {
        InputFormat::ALL
            .into_iter()
            .find(|format| format.name() == text)
            .ok_or_else(|| {
                format!(
                    "unknown format {text:?}; one of: {}",
                    InputFormat::ALL.map(InputFormat::name).join(", ")
                )
            })
    }
}

/// Reads a whole trace file through the bounded reader.
fn read(path: &Path) -> Result<String> {
    Ok(userinput::file::read_to_string(path, FileKind::TRACE)?)
}

/// The most bytes of a span document (parsed whole, which takes several times its size in
/// memory); JSON Lines traces may be as large as any trace file.
pub const SPAN_DOCUMENT_LIMIT: usize = 256 * 1024 * 1024;

/// Tells the format of a parsed JSON document by its structure, or describes what it is.
fn shape_of(document: &Value) -> std::result::Result<InputFormat, String> {
    let is_v1 = |span: &Value| {
        span.get("binaryAnnotations").is_some()
            || span
                .get("annotations")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|a| a.get("endpoint").is_some()))
    };
    match document {
        Value::Array(items) => match items.first() {
            None => Ok(InputFormat::ZipkinV2),
            Some(Value::Array(batch)) if batch.iter().all(Value::is_object) => {
                Ok(InputFormat::ZipkinV1)
            }
            Some(Value::Object(_)) if items.iter().any(is_v1) => Ok(InputFormat::ZipkinV1),
            Some(Value::Object(span)) if span.contains_key("traceId") => Ok(InputFormat::ZipkinV2),
            Some(other) => Err(format!("an array of {}", describe(other))),
        },
        Value::Object(object) => {
            if object.contains_key("resourceSpans") {
                Ok(InputFormat::Otlp)
            } else if object.contains_key("info") && object.contains_key("children") {
                Ok(InputFormat::Osprofiler)
            } else if object
                .get("data")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().all(|t| t.get("spans").is_some()))
            {
                Ok(InputFormat::Jaeger)
            } else {
                let keys: Vec<&str> = object.keys().take(5).map(String::as_str).collect();
                Err(format!("an object with keys {keys:?}"))
            }
        }
        other => Err(describe(other)),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(_) => "a boolean".to_owned(),
        Value::Number(_) => "a number".to_owned(),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "arrays".to_owned(),
        Value::Object(object) => {
            let keys: Vec<&str> = object.keys().take(5).map(String::as_str).collect();
            format!("objects with keys {keys:?}")
        }
    }
}

/// What [`detect`] found, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detection {
    /// The format.
    pub format: InputFormat,
    /// The parsed document of a span format (read once, converted once).
    document: Option<Value>,
}

fn not_recognised(path: &Path, saw: &str) -> Error {
    Error::Format(format!(
        "{}: not a trace this tool reads: it is {saw}; expected one of {}; hint: give --format to say which it is",
        path.display(),
        InputFormat::ALL.map(InputFormat::name).join(", ")
    ))
}

/// Guesses the format of a file (or trace directory) from its structure.
pub fn detect(path: &Path) -> Result<InputFormat> {
    Ok(detect_document(path)?.format)
}

fn detect_document(path: &Path) -> Result<Detection> {
    if path.is_dir() {
        return Ok(Detection {
            format: InputFormat::Events,
            document: None,
        });
    }
    let text = read(path)?;
    let Some(first) = text.lines().find(|line| !line.trim().is_empty()) else {
        return Err(not_recognised(path, "empty"));
    };
    // JSON Lines formats are told by their first line.
    if let Ok(Value::Object(line)) = serde_json::from_str::<Value>(first) {
        if line.contains_key("headers") && line.contains_key("body") {
            return Ok(Detection {
                format: InputFormat::Capture,
                document: None,
            });
        }
        if line.contains_key("seq") && line.contains_key("kind") {
            return Ok(Detection {
                format: InputFormat::Events,
                document: None,
            });
        }
    }
    if text.len() > SPAN_DOCUMENT_LIMIT {
        return Err(Error::Format(format!(
            "{}: not JSON Lines, and as one JSON document it is {}, over the {} a span document may hold; hint: split it",
            path.display(),
            userinput::file::size_in_words(text.len() as u64),
            userinput::file::size_in_words(SPAN_DOCUMENT_LIMIT as u64)
        )));
    }
    let document: Value = serde_json::from_str(&text)
        .map_err(|error| not_recognised(path, &format!("not JSON ({error})")))?;
    let format = shape_of(&document).map_err(|saw| not_recognised(path, &saw))?;
    Ok(Detection {
        format,
        document: Some(document),
    })
}

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Read every input as this format instead of detecting it.
    pub format: Option<InputFormat>,
    /// The tag mapping for span formats.
    pub tags: TagMap,
}

/// What one input gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// The format read.
    pub format: InputFormat,
    /// True when the format was detected (not forced with `--format`).
    pub detected: bool,
    /// Events pushed into the pipeline.
    pub events: u64,
    /// What became of the spans (span formats only).
    pub spans: Option<SpanCounts>,
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.detected { "detected" } else { "read as" };
        write!(f, "{how} {}: {} events", self.format, self.events)?;
        if let Some(c) = &self.spans {
            write!(
                f,
                " from {} spans ({} REST, {} RPC calls with {} replies, {} casts, {} receive spans folded into their RPC, {} internal spans not events with {} tags, {} unmapped tags kept as tag.* attributes)",
                c.spans,
                c.rest,
                c.calls,
                c.replies,
                c.casts,
                c.folded,
                c.internal,
                c.internal_tags,
                c.unmapped_tags
            )?;
        }
        Ok(())
    }
}

/// Checks an input without importing it: its format is known (detected, or forced) and, for a
/// span format, its spans read. Returns what [`import_with`] needs.
pub fn check(path: &Path, options: &ImportOptions) -> Result<Prepared> {
    let detection = match detect_document(path) {
        Ok(detection) => Some(detection),
        Err(error) if options.format.is_none() => return Err(error),
        Err(_) => None,
    };
    let format = options
        .format
        .or(detection.as_ref().map(|d| d.format))
        .expect("a format is forced or detected");
    let seen = detection.as_ref().map(|d| d.format);
    let reader: Option<formats::Reader> = match format {
        InputFormat::Events | InputFormat::Capture => None,
        InputFormat::Osprofiler => Some(formats::osprofiler),
        InputFormat::ZipkinV1 => Some(formats::zipkin_v1),
        InputFormat::ZipkinV2 => Some(formats::zipkin_v2),
        InputFormat::Jaeger => Some(formats::jaeger),
        InputFormat::Otlp => Some(formats::otlp),
    };
    let spans = match reader {
        None => None,
        Some(reader) => {
            let document = match detection.and_then(|d| d.document) {
                Some(document) => document,
                None => serde_json::from_str(&read(path)?).map_err(|error| {
                    Error::Format(format!(
                        "{}: not JSON, so not {} ({error})",
                        path.display(),
                        format.shape()
                    ))
                })?,
            };
            let spans = reader(&document).map_err(|problem| {
                let seen = match seen {
                    Some(seen) if seen != format => format!("; it looks like {}", seen.shape()),
                    Some(_) => String::new(),
                    None => String::new(),
                };
                Error::Format(format!(
                    "{}: read as {}, expected {}: {problem}{seen}",
                    path.display(),
                    format.name(),
                    format.shape()
                ))
            })?;
            Some(spans)
        }
    };
    Ok(Prepared {
        format,
        detected: options.format.is_none(),
        spans,
    })
}

/// An input checked by [`check`], ready to import.
#[derive(Debug)]
pub struct Prepared {
    format: InputFormat,
    detected: bool,
    spans: Option<Vec<spans::Span>>,
}

impl Prepared {
    /// The format it will be read as.
    pub fn format(&self) -> InputFormat {
        self.format
    }
}

/// Feeds a checked input into the pipeline.
pub fn import_prepared(
    path: &Path,
    prepared: Prepared,
    tags: &TagMap,
    pipeline: &mut Pipeline,
) -> Result<ImportReport> {
    let mut report = ImportReport {
        format: prepared.format,
        detected: prepared.detected,
        events: 0,
        spans: None,
    };
    match (prepared.format, prepared.spans) {
        (_, Some(spans)) => {
            let (events, counts) = spans::to_events(spans, tags);
            report.events = events.len() as u64;
            report.spans = Some(counts);
            for event in events {
                pipeline.push_imported(event)?;
            }
        }
        (InputFormat::Capture, None) => {
            for record in read_capture(path)? {
                report.events += 1;
                pipeline.push_amqp(&record)?;
            }
        }
        (_, None) => {
            let file = if path.is_dir() {
                path.join("events.jsonl")
            } else {
                path.to_owned()
            };
            for event in read_events(&file)? {
                report.events += 1;
                pipeline.push_imported(event)?;
            }
        }
    }
    Ok(report)
}

/// Checks and imports one input.
pub fn import_with(
    path: &Path,
    options: &ImportOptions,
    pipeline: &mut Pipeline,
) -> Result<ImportReport> {
    let prepared = check(path, options)?;
    import_prepared(path, prepared, &options.tags, pipeline)
}

/// Feeds a file or trace directory of any [`InputFormat`] (detected) into the pipeline.
pub fn import_into(path: &Path, pipeline: &mut Pipeline) -> Result<InputFormat> {
    Ok(import_with(path, &ImportOptions::default(), pipeline)?.format)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EdgeKind, EventKind, Outcome};
    use crate::stitch::StitchConfig;

    fn events_of(format: formats::Reader, text: &str) -> Vec<Event> {
        let spans = format(&serde_json::from_str(text).unwrap()).unwrap();
        spans::to_events(spans, &TagMap::default()).0
    }

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
           "tags": {"rpc.method": "select_destinations", "messaging.operation": "cast",
                    "messaging.destination.name": "scheduler"}}
        ]"#;
        let mut pipeline = Pipeline::in_memory(StitchConfig::default());
        for event in events_of(formats::zipkin_v2, text) {
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
            [
                "POST /v2.1/servers",
                "GET /v2/images/{id}",
                "scheduler.select_destinations"
            ]
        );
        assert_eq!(transaction.events[2].kind, EventKind::RpcCast);
        assert_eq!(
            transaction.events[2].service.as_deref(),
            Some("nova-scheduler")
        );
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
        let events = events_of(formats::otlp, text);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].operation, "GET /allocations/{id}");
        assert_eq!(events[0].service.as_deref(), Some("placement-api"));
        assert_eq!(events[0].ts_us, 2_000);
        assert_eq!(events[0].duration_us, Some(3_000));
        assert_eq!(events[0].outcome, Some(Outcome::Http { status: 500 }));
        assert!(events[0].ids.parent_span_id.is_none());
        let missing = formats::otlp(
            &serde_json::from_str(
                r#"{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]}"#,
            )
            .unwrap(),
        )
        .unwrap_err();
        assert!(
            missing.contains("resourceSpans[0].scopeSpans[0].spans[0]: no \"traceId\""),
            "{missing}"
        );
    }

    #[test]
    fn formats_are_told_by_structure() {
        let shape = |text: &str| shape_of(&serde_json::from_str(text).unwrap());
        assert_eq!(
            shape(r#"[[{"traceId": "t", "id": "a"}]]"#),
            Ok(InputFormat::ZipkinV1)
        );
        assert_eq!(
            shape(r#"[{"traceId": "t", "id": "a", "binaryAnnotations": []}]"#),
            Ok(InputFormat::ZipkinV1)
        );
        assert_eq!(
            shape(r#"[{"traceId": "t", "id": "a", "localEndpoint": {}}]"#),
            Ok(InputFormat::ZipkinV2)
        );
        assert_eq!(
            shape(r#"{"data": [{"traceID": "t", "spans": []}]}"#),
            Ok(InputFormat::Jaeger)
        );
        assert_eq!(
            shape(r#"{"info": {}, "children": []}"#),
            Ok(InputFormat::Osprofiler)
        );
        assert_eq!(shape(r#"{"resourceSpans": []}"#), Ok(InputFormat::Otlp));
        assert_eq!(shape(r#"[1, 2]"#), Err("an array of a number".to_owned()));
        assert_eq!(
            shape(r#"{"spans": []}"#),
            Err("an object with keys [\"spans\"]".to_owned())
        );
        for format in InputFormat::ALL {
            assert_eq!(format.name().parse::<InputFormat>(), Ok(format));
        }
    }
}
