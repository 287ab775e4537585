//! The span formats: each reader turns a parsed JSON document into [`Span`]s, naming where in
//! the document something is missing.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::import::spans::{Span, SpanKind};

type Found<T> = Result<T, String>;

/// A reader of one span format.
pub type Reader = fn(&Value) -> Found<Vec<Span>>;

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn field<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    object.get(name).filter(|v| !v.is_null())
}

fn str_field(object: &Value, name: &str) -> Option<String> {
    field(object, name).map(text).filter(|t| !t.is_empty())
}

fn required(object: &Value, name: &str, at: &str) -> Found<String> {
    str_field(object, name).ok_or_else(|| format!("{at}: no {name:?}"))
}

fn int(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|f| f as i64)),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

fn kind_of(text: &str) -> SpanKind {
    match text.to_ascii_uppercase().trim_start_matches("SPAN_KIND_") {
        "SERVER" | "2" => SpanKind::Server,
        "CLIENT" | "3" => SpanKind::Client,
        "PRODUCER" | "4" => SpanKind::Producer,
        "CONSUMER" | "5" => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

fn array<'a>(value: &'a Value, name: &str, at: &str) -> Found<&'a Vec<Value>> {
    match value.get(name) {
        Some(Value::Array(items)) => Ok(items),
        None | Some(Value::Null) => Err(format!("{at}: no {name:?} array")),
        Some(_) => Err(format!("{at}: {name:?} is not an array")),
    }
}

/// Zipkin v2: `[{traceId, id, parentId, name, kind, timestamp, duration, localEndpoint, tags}]`.
pub fn zipkin_v2(root: &Value) -> Found<Vec<Span>> {
    let spans = root
        .as_array()
        .ok_or("the document is not an array of spans")?;
    spans
        .iter()
        .enumerate()
        .map(|(n, span)| {
            let at = format!("span [{n}]");
            if !span.is_object() {
                return Err(format!("{at}: not a span object"));
            }
            let mut tags = BTreeMap::new();
            match span.get("tags") {
                Some(Value::Object(map)) => {
                    for (key, value) in map {
                        tags.insert(key.clone(), text(value));
                    }
                }
                None | Some(Value::Null) => {}
                Some(_) => return Err(format!("{at}: \"tags\" is not an object")),
            }
            // v2 annotations are timestamped words; they are kept, as one tag.
            if let Some(Value::Array(annotations)) = span.get("annotations") {
                let words: Vec<String> = annotations
                    .iter()
                    .filter_map(|a| str_field(a, "value"))
                    .collect();
                if !words.is_empty() {
                    tags.insert("annotations".to_owned(), words.join(","));
                }
            }
            let endpoint = span.get("localEndpoint");
            Ok(Span {
                trace_id: required(span, "traceId", &at)?,
                span_id: required(span, "id", &at)?,
                parent_id: str_field(span, "parentId"),
                name: str_field(span, "name").unwrap_or_default(),
                kind: str_field(span, "kind").map_or(SpanKind::Internal, |k| kind_of(&k)),
                start_us: int(span.get("timestamp")).unwrap_or(0),
                duration_us: int(span.get("duration")).and_then(|d| u64::try_from(d).ok()),
                service: endpoint.and_then(|e| str_field(e, "serviceName")),
                host: endpoint.and_then(|e| str_field(e, "ipv4").or_else(|| str_field(e, "ipv6"))),
                tags,
                error: None,
            })
        })
        .collect()
}

/// Zipkin v1 lets the client and the server of one RPC report the same span (same trace and span
/// id, `cs`/`cr` from one, `sr`/`ss` from the other): their halves are merged into one span, as
/// one interaction is one event. Returns the spans in first-seen order with their location.
fn merge_shared(flat: Vec<(String, &Value)>) -> Found<Vec<(String, Value)>> {
    let mut order: Vec<(String, Value)> = Vec::new();
    let mut index: std::collections::HashMap<(String, String), usize> =
        std::collections::HashMap::new();
    for (at, span) in flat {
        if !span.is_object() {
            return Err(format!("{at}: not a span object"));
        }
        let key = (required(span, "traceId", &at)?, required(span, "id", &at)?);
        match index.get(&key) {
            None => {
                index.insert(key, order.len());
                order.push((at, span.clone()));
            }
            Some(&first) => {
                let merged = &mut order[first].1;
                for list in ["annotations", "binaryAnnotations"] {
                    let mut items = merged
                        .get(list)
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    items.extend(
                        span.get(list)
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_default(),
                    );
                    merged[list] = Value::Array(items);
                }
                let start = [int(merged.get("timestamp")), int(span.get("timestamp"))]
                    .into_iter()
                    .flatten()
                    .min();
                let duration = [int(merged.get("duration")), int(span.get("duration"))]
                    .into_iter()
                    .flatten()
                    .max();
                if let Some(start) = start {
                    merged["timestamp"] = Value::from(start);
                }
                if let Some(duration) = duration {
                    merged["duration"] = Value::from(duration);
                }
                if merged.get("parentId").is_none_or(Value::is_null) {
                    merged["parentId"] = span.get("parentId").cloned().unwrap_or(Value::Null);
                }
            }
        }
    }
    Ok(order)
}

/// Zipkin v1: spans with `annotations` (`cs`/`cr`/`sr`/`ss`/`ms`/`mr` with endpoints) and
/// `binaryAnnotations`; a file may hold one array of spans or an array of such arrays.
pub fn zipkin_v1(root: &Value) -> Found<Vec<Span>> {
    let outer = root
        .as_array()
        .ok_or("the document is not an array of spans")?;
    let mut flat = Vec::new();
    for (b, item) in outer.iter().enumerate() {
        match item {
            Value::Array(batch) => {
                for (n, span) in batch.iter().enumerate() {
                    flat.push((format!("span [{b}][{n}]"), span));
                }
            }
            span => flat.push((format!("span [{b}]"), span)),
        }
    }
    let merged = merge_shared(flat)?;
    merged
        .iter()
        .map(|(at, span)| {
            let at = at.as_str();
            let mut tags = BTreeMap::new();
            let mut service = None;
            let mut host = None;
            let mut kind = SpanKind::Internal;
            let mut times = Vec::new();
            let mut words = Vec::new();
            if let Some(annotations) = span.get("annotations").filter(|a| !a.is_null()) {
                let annotations = annotations
                    .as_array()
                    .ok_or_else(|| format!("{at}: \"annotations\" is not an array"))?;
                for annotation in annotations {
                    let value = str_field(annotation, "value").unwrap_or_default();
                    if let Some(ts) = int(annotation.get("timestamp")) {
                        times.push(ts);
                    }
                    let core = match value.as_str() {
                        "sr" | "ss" => Some(SpanKind::Server),
                        "cs" | "cr" => Some(SpanKind::Client),
                        "ms" | "ws" => Some(SpanKind::Producer),
                        "mr" | "wr" => Some(SpanKind::Consumer),
                        _ => None,
                    };
                    match core {
                        Some(core) => {
                            // A shared v1 span has both sides: the server's names the service.
                            if kind == SpanKind::Internal || core == SpanKind::Server {
                                kind = core;
                                if let Some(endpoint) = annotation.get("endpoint") {
                                    service = str_field(endpoint, "serviceName").or(service);
                                    host = str_field(endpoint, "ipv4").or(host);
                                }
                            }
                        }
                        None => words.push(value),
                    }
                }
            }
            if !words.is_empty() {
                tags.insert("annotations".to_owned(), words.join(","));
            }
            if let Some(binary) = span.get("binaryAnnotations").filter(|a| !a.is_null()) {
                let binary = binary
                    .as_array()
                    .ok_or_else(|| format!("{at}: \"binaryAnnotations\" is not an array"))?;
                for annotation in binary {
                    let Some(key) = str_field(annotation, "key") else {
                        continue;
                    };
                    let endpoint = annotation.get("endpoint");
                    // `sa`/`ca` are addresses: the value is `true`, the endpoint says whom.
                    let value = match key.as_str() {
                        "sa" | "ca" | "ma" => endpoint
                            .and_then(|e| str_field(e, "serviceName"))
                            .unwrap_or_default(),
                        _ => annotation.get("value").map(text).unwrap_or_default(),
                    };
                    if service.is_none() {
                        service = endpoint.and_then(|e| str_field(e, "serviceName"));
                        host = host.or_else(|| endpoint.and_then(|e| str_field(e, "ipv4")));
                    }
                    tags.insert(key, value);
                }
            }
            let first = times.iter().min().copied();
            let last = times.iter().max().copied();
            Ok(Span {
                trace_id: required(span, "traceId", at)?,
                span_id: required(span, "id", at)?,
                parent_id: str_field(span, "parentId"),
                name: str_field(span, "name").unwrap_or_default(),
                kind,
                start_us: int(span.get("timestamp")).or(first).unwrap_or(0),
                duration_us: int(span.get("duration"))
                    .or_else(|| first.zip(last).map(|(a, b)| b - a))
                    .and_then(|d| u64::try_from(d).ok()),
                service,
                host,
                tags,
                error: None,
            })
        })
        .collect()
}

fn jaeger_tags(tags: Option<&Value>, out: &mut BTreeMap<String, String>) {
    for tag in tags.and_then(Value::as_array).into_iter().flatten() {
        if let Some(key) = str_field(tag, "key") {
            out.insert(key, tag.get("value").map(text).unwrap_or_default());
        }
    }
}

/// Jaeger's query API / UI export: `{"data": [{traceID, spans: [...], processes: {...}}]}`.
pub fn jaeger(root: &Value) -> Found<Vec<Span>> {
    let traces = array(root, "data", "the document")?;
    let mut out = Vec::new();
    for (t, trace) in traces.iter().enumerate() {
        let at_trace = format!("data[{t}]");
        let processes = trace.get("processes").and_then(Value::as_object);
        for (n, span) in array(trace, "spans", &at_trace)?.iter().enumerate() {
            let at = format!("{at_trace}.spans[{n}]");
            let mut tags = BTreeMap::new();
            jaeger_tags(span.get("tags"), &mut tags);
            let process = str_field(span, "processID")
                .and_then(|id| processes.and_then(|p| p.get(&id)))
                .or_else(|| span.get("process"));
            let mut process_tags = BTreeMap::new();
            jaeger_tags(process.and_then(|p| p.get("tags")), &mut process_tags);
            let kind = tags
                .remove("span.kind")
                .map_or(SpanKind::Internal, |k| kind_of(&k));
            let parent_id = span
                .get("references")
                .and_then(Value::as_array)
                .and_then(|refs| {
                    refs.iter()
                        .find(|r| str_field(r, "refType").as_deref() == Some("CHILD_OF"))
                        .or(refs.first())
                })
                .and_then(|r| str_field(r, "spanID"))
                .or_else(|| str_field(span, "parentSpanID"));
            // An exception log says which class failed.
            let error = span
                .get("logs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find_map(|log| {
                    let mut fields = BTreeMap::new();
                    jaeger_tags(log.get("fields"), &mut fields);
                    fields
                        .remove("error.kind")
                        .or(fields.remove("exception.type"))
                });
            out.push(Span {
                trace_id: required(span, "traceID", &at)?,
                span_id: required(span, "spanID", &at)?,
                parent_id,
                name: str_field(span, "operationName").unwrap_or_default(),
                kind,
                start_us: int(span.get("startTime")).unwrap_or(0),
                duration_us: int(span.get("duration")).and_then(|d| u64::try_from(d).ok()),
                service: process.and_then(|p| str_field(p, "serviceName")),
                host: process_tags
                    .remove("hostname")
                    .or(process_tags.remove("ip")),
                tags,
                error,
            });
        }
    }
    Ok(out)
}

/// OTLP attributes `[{"key": k, "value": {"stringValue"|"intValue"|…: v}}]` as text.
fn attributes(value: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for attribute in value.and_then(Value::as_array).into_iter().flatten() {
        let Some(key) = str_field(attribute, "key") else {
            continue;
        };
        let inner = attribute.get("value").and_then(Value::as_object);
        if let Some(value) = inner.and_then(|inner| inner.values().next()) {
            out.insert(key, text(value));
        }
    }
    out
}

/// OpenTelemetry OTLP/JSON: `resourceSpans[].scopeSpans[].spans[]` (also `instrumentationLibrarySpans`
/// of older exporters).
pub fn otlp(root: &Value) -> Found<Vec<Span>> {
    let mut out = Vec::new();
    for (r, resource) in array(root, "resourceSpans", "the document")?
        .iter()
        .enumerate()
    {
        let mut resource_attrs = attributes(resource.pointer("/resource/attributes"));
        let service = resource_attrs.remove("service.name");
        let host = resource_attrs.remove("host.name");
        let scopes = resource
            .get("scopeSpans")
            .or_else(|| resource.get("instrumentationLibrarySpans"))
            .and_then(Value::as_array);
        for (s, scope) in scopes.into_iter().flatten().enumerate() {
            for (n, span) in array(
                scope,
                "spans",
                &format!("resourceSpans[{r}].scopeSpans[{s}]"),
            )?
            .iter()
            .enumerate()
            {
                let at = format!("resourceSpans[{r}].scopeSpans[{s}].spans[{n}]");
                let start = int(span.get("startTimeUnixNano")).unwrap_or(0);
                let end = int(span.get("endTimeUnixNano")).unwrap_or(0);
                let failed = matches!(
                    span.pointer("/status/code"),
                    Some(code) if code == 2 || code == "STATUS_CODE_ERROR"
                );
                // An exception event names the class; the status message may be a traceback.
                let exception = span
                    .get("events")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find_map(|event| {
                        let mut attrs = attributes(event.get("attributes"));
                        attrs
                            .remove("exception.type")
                            .or(attrs.remove("error.kind"))
                    });
                let error = match (failed, exception) {
                    (_, Some(class)) => Some(class),
                    (true, None) => Some(
                        span.pointer("/status/message")
                            .map(text)
                            .unwrap_or_else(|| "error".to_owned()),
                    ),
                    (false, None) => None,
                };
                out.push(Span {
                    trace_id: required(span, "traceId", &at)?,
                    span_id: required(span, "spanId", &at)?,
                    parent_id: str_field(span, "parentSpanId"),
                    name: str_field(span, "name").unwrap_or_default(),
                    kind: field(span, "kind").map_or(SpanKind::Internal, |k| kind_of(&text(k))),
                    start_us: start / 1_000,
                    duration_us: (end >= start && end > 0)
                        .then(|| u64::try_from((end - start) / 1_000).unwrap_or(0)),
                    service: service.clone(),
                    host: host.clone(),
                    tags: attributes(span.get("attributes")),
                    error,
                });
            }
        }
    }
    Ok(out)
}

/// Flattens nested info with dots: `{"request": {"method": "POST"}}` → `request.method`.
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let name = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&name, inner, out);
            }
        }
        Value::Null => {}
        other => {
            out.insert(prefix.to_owned(), text(other));
        }
    }
}

/// OSProfiler's timestamps are UTC without an offset (`2026-12-04T02:54:59.758681`).
fn osprofiler_time(text: &str) -> Option<i64> {
    let civil: jiff::civil::DateTime = text.parse().ok()?;
    jiff::tz::TimeZone::UTC
        .to_timestamp(civil)
        .ok()
        .map(|timestamp| timestamp.as_microsecond())
}

/// `osprofiler trace show --json`: a tree `{info, children: [{info, trace_id, parent_id,
/// children}]}` whose nodes keep the raw start and stop notifications.
pub fn osprofiler(root: &Value) -> Found<Vec<Span>> {
    let mut out = Vec::new();
    let children = array(root, "children", "the document")?;
    let mut stack: Vec<(String, &Value)> = children
        .iter()
        .enumerate()
        .map(|(n, child)| (format!("children[{n}]"), child))
        .collect();
    stack.reverse();
    while let Some((at, node)) = stack.pop() {
        let info = node
            .get("info")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{at}: no \"info\" object"))?;
        let name = info.get("name").map(text).unwrap_or_default();
        let raw = |end: &str| info.get(&format!("meta.raw_payload.{name}-{end}"));
        let start = raw("start").ok_or_else(|| format!("{at}: no {name}-start notification"))?;
        let stop = raw("stop");
        let base_id = required(start, "base_id", &at)?;
        let span_id = required(start, "trace_id", &at)?;
        let parent_id = str_field(start, "parent_id").filter(|p| *p != base_id);
        let started = str_field(start, "timestamp").and_then(|t| osprofiler_time(&t));
        let stopped = stop
            .and_then(|s| str_field(s, "timestamp"))
            .and_then(|t| osprofiler_time(&t));
        let mut tags = BTreeMap::new();
        if let Some(Value::Object(start_info)) = start.get("info") {
            flatten("", &Value::Object(without_host(start_info)), &mut tags);
        }
        let mut error = None;
        if let Some(Value::Object(stop_info)) = stop.and_then(|s| s.get("info")) {
            error = stop_info.get("etype").map(text);
            let mut stop_tags = BTreeMap::new();
            flatten("", &Value::Object(without_host(stop_info)), &mut stop_tags);
            stop_tags.remove("etype");
            if let Some(message) = stop_tags.remove("message") {
                tags.insert("error.message".to_owned(), message);
            }
            for (key, value) in stop_tags {
                tags.entry(key).or_insert(value);
            }
        }
        let project = info.get("project").map(text);
        let service = info.get("service").map(text).map(|service| match &project {
            // `nova` + `conductor` → `nova-conductor`, as OSProfiler's OTLP driver names it.
            Some(project) if !service.starts_with(project.as_str()) => {
                format!("{project}-{service}")
            }
            _ => service,
        });
        out.push(Span {
            trace_id: base_id,
            span_id,
            parent_id,
            name,
            kind: SpanKind::Internal,
            start_us: started.unwrap_or(0),
            duration_us: started
                .zip(stopped)
                .and_then(|(a, b)| u64::try_from(b - a).ok()),
            service,
            host: info.get("host").map(text),
            tags,
            error,
        });
        if let Some(Value::Array(children)) = node.get("children") {
            for (n, child) in children.iter().enumerate().rev() {
                stack.push((format!("{at}.children[{n}]"), child));
            }
        }
    }
    Ok(out)
}

fn without_host(info: &Map<String, Value>) -> Map<String, Value> {
    let mut info = info.clone();
    info.remove("host");
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipkin_v1_halves_of_a_shared_span_are_one_server_span() {
        let endpoint = |name: &str| serde_json::json!({"serviceName": name, "ipv4": "10.0.0.9"});
        let document = serde_json::json!([
            {"traceId": "t", "id": "b", "parentId": "a", "name": "rpc", "timestamp": 100, "duration": 50,
             "annotations": [{"value": "cs", "timestamp": 100, "endpoint": endpoint("nova-api")},
                             {"value": "cr", "timestamp": 150, "endpoint": endpoint("nova-api")}],
             "binaryAnnotations": [{"key": "rpc.method", "value": "build", "endpoint": endpoint("nova-api")}]},
            {"traceId": "t", "id": "b", "name": "rpc", "timestamp": 110, "duration": 30,
             "annotations": [{"value": "sr", "timestamp": 110, "endpoint": endpoint("nova-conductor")},
                             {"value": "ss", "timestamp": 140, "endpoint": endpoint("nova-conductor")}],
             "binaryAnnotations": [{"key": "messaging.message.id", "value": "m1", "endpoint": endpoint("nova-conductor")}]}
        ]);
        let spans = zipkin_v1(&document).unwrap();
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(span.service.as_deref(), Some("nova-conductor"));
        assert_eq!((span.start_us, span.duration_us), (100, Some(50)));
        assert_eq!(span.parent_id.as_deref(), Some("a"));
        assert_eq!(span.tags["rpc.method"], "build");
        assert_eq!(span.tags["messaging.message.id"], "m1");
    }

    #[test]
    fn jaeger_spans_take_their_process_kind_parent_and_exception_log() {
        let document = serde_json::json!({"data": [{"traceID": "t", "processes": {
            "p1": {"serviceName": "nova-conductor", "tags": [{"key": "hostname", "type": "string", "value": "ctl"}]}},
          "spans": [{"traceID": "t", "spanID": "s", "operationName": "conductor.build",
            "references": [{"refType": "CHILD_OF", "traceID": "t", "spanID": "p"}],
            "startTime": 7, "duration": 3, "processID": "p1",
            "tags": [{"key": "span.kind", "type": "string", "value": "producer"},
                     {"key": "rpc.method", "type": "string", "value": "build"}],
            "logs": [{"timestamp": 8, "fields": [{"key": "error.kind", "type": "string", "value": "NoValidHost"}]}]}]}]});
        let spans = jaeger(&document).unwrap();
        assert_eq!(spans.len(), 1);
        let span = &spans[0];
        assert_eq!(span.kind, SpanKind::Producer);
        assert_eq!(span.service.as_deref(), Some("nova-conductor"));
        assert_eq!(span.host.as_deref(), Some("ctl"));
        assert_eq!(span.parent_id.as_deref(), Some("p"));
        assert_eq!(span.error.as_deref(), Some("NoValidHost"));
        assert!(!span.tags.contains_key("span.kind"));
        assert!(
            jaeger(&serde_json::json!({"data": [{"traceID": "t"}]}))
                .unwrap_err()
                .contains("data[0]: no \"spans\" array")
        );
    }
}
