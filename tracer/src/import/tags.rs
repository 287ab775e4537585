//! The mapping from span tags (Zipkin tags and binary annotations, Jaeger tags, OTLP attributes,
//! OSProfiler trace point info) to what an event needs: operation, service, request ids and the
//! oslo.messaging message fields. See docs/tracer.md, "Tag mapping".
//!
//! Each [`Role`] lists tag names tried in order; the first present wins and is consumed. A tag
//! no role consumes is kept on the event as attribute `tag.<name>` (a secret-named one with its
//! value replaced), and counted in the import report, so nothing is dropped unseen.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use userinput::file::FileKind;

use crate::{Error, Result};

/// A tag map file: a few lines of YAML.
pub const TAG_MAP_FILE: FileKind = FileKind::whole("a tag map", 64 * 1024);

/// What a tag can say about a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// The acting service (overrides the span's endpoint or resource service).
    Service,
    /// The acting host.
    Host,
    /// The request id of the acting service.
    RequestId,
    /// The global request id: the whole trace's transaction id.
    GlobalRequestId,
    /// HTTP method: with a path it makes the span a REST request.
    HttpMethod,
    /// HTTP path, route or URL (templated: ids become `{id}`).
    HttpPath,
    /// HTTP status code.
    HttpStatus,
    /// RPC method: it makes the span an RPC.
    RpcMethod,
    /// RPC topic (oslo.messaging target topic).
    RpcTopic,
    /// `call`, `cast`, `fanout` or `receive` (the server side of a message).
    RpcOperation,
    /// oslo.messaging `_msg_id`: pairs a call with its reply.
    MsgId,
    /// oslo.messaging `_reply_q`.
    ReplyQueue,
    /// oslo.messaging `_unique_id`.
    UniqueId,
    /// The RPC server (target server / host).
    RpcServer,
    /// An OSProfiler traced function (`package.module.Class.method`): with a span named `rpc`
    /// it gives the RPC method.
    Function,
    /// An error: exception class or message; `true` only says that there was one.
    Error,
}

impl Role {
    /// Every role, with its name in a tag map file.
    pub const ALL: [(Role, &'static str); 16] = [
        (Role::Service, "service"),
        (Role::Host, "host"),
        (Role::RequestId, "request_id"),
        (Role::GlobalRequestId, "global_request_id"),
        (Role::HttpMethod, "http_method"),
        (Role::HttpPath, "http_path"),
        (Role::HttpStatus, "http_status"),
        (Role::RpcMethod, "rpc_method"),
        (Role::RpcTopic, "rpc_topic"),
        (Role::RpcOperation, "rpc_operation"),
        (Role::MsgId, "msg_id"),
        (Role::ReplyQueue, "reply_queue"),
        (Role::UniqueId, "unique_id"),
        (Role::RpcServer, "rpc_server"),
        (Role::Function, "function"),
        (Role::Error, "error"),
    ];
}

/// The default table: OpenTelemetry semantic conventions (old and new HTTP names), what
/// oslo.middleware's and oslo.messaging's tracing set, OSProfiler's trace point info flattened
/// with dots, Zipkin/OpenTracing conventions.
const DEFAULTS: &[(Role, &[&str])] = &[
    (Role::Service, &["peer.service.name"]),
    (Role::Host, &["host.name"]),
    (
        Role::RequestId,
        &[
            "openstack.request_id",
            "request_id",
            "x-openstack-request-id",
        ],
    ),
    (
        Role::GlobalRequestId,
        &["openstack.global_request_id", "global_request_id"],
    ),
    (
        Role::HttpMethod,
        &[
            "http.request.method",
            "http.method",
            "request.method",
            "requests.method",
        ],
    ),
    (
        Role::HttpPath,
        &[
            "http.route",
            "url.path",
            "http.target",
            "http.path",
            "request.path",
            "requests.path",
            "http.url",
            "url.full",
        ],
    ),
    (
        Role::HttpStatus,
        &[
            "http.response.status_code",
            "http.status_code",
            "requests.status_code",
            "status_code",
        ],
    ),
    (Role::RpcMethod, &["rpc.method"]),
    (
        Role::RpcTopic,
        &["messaging.destination.name", "messaging.destination"],
    ),
    (Role::RpcOperation, &["messaging.operation"]),
    (
        Role::MsgId,
        &["messaging.message.id", "messaging.oslo.msg_id", "_msg_id"],
    ),
    (Role::ReplyQueue, &["messaging.oslo.reply_q", "_reply_q"]),
    (Role::UniqueId, &["messaging.oslo.unique_id", "_unique_id"]),
    (Role::RpcServer, &["messaging.oslo.server"]),
    (Role::Function, &["function.name", "name"]),
    (
        Role::Error,
        &[
            "exception.type",
            "error.type",
            "error.kind",
            "etype",
            "error",
            "otel.status_description",
        ],
    ),
];

/// Span tag names per role, in the order they are tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagMap {
    names: BTreeMap<Role, Vec<String>>,
}

impl Default for TagMap {
    fn default() -> TagMap {
        TagMap {
            names: DEFAULTS
                .iter()
                .map(|(role, names)| (*role, names.iter().map(|n| (*n).to_owned()).collect()))
                .collect(),
        }
    }
}

/// A tag map file: each key is a role, its value the tag names to try, replacing the defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TagMapFile {
    #[serde(default)]
    service: Option<Vec<String>>,
    #[serde(default)]
    host: Option<Vec<String>>,
    #[serde(default)]
    request_id: Option<Vec<String>>,
    #[serde(default)]
    global_request_id: Option<Vec<String>>,
    #[serde(default)]
    http_method: Option<Vec<String>>,
    #[serde(default)]
    http_path: Option<Vec<String>>,
    #[serde(default)]
    http_status: Option<Vec<String>>,
    #[serde(default)]
    rpc_method: Option<Vec<String>>,
    #[serde(default)]
    rpc_topic: Option<Vec<String>>,
    #[serde(default)]
    rpc_operation: Option<Vec<String>>,
    #[serde(default)]
    msg_id: Option<Vec<String>>,
    #[serde(default)]
    reply_queue: Option<Vec<String>>,
    #[serde(default)]
    unique_id: Option<Vec<String>>,
    #[serde(default)]
    rpc_server: Option<Vec<String>>,
    #[serde(default)]
    function: Option<Vec<String>>,
    #[serde(default)]
    error: Option<Vec<String>>,
}

impl TagMap {
    /// Reads a tag map file (bounded) over the defaults. Errors name the file, and the line and
    /// column where the YAML parser placed the problem.
    pub fn read(path: &Path) -> Result<TagMap> {
        let text = userinput::file::read_to_string(path, TAG_MAP_FILE)?;
        TagMap::parse(&text).map_err(|error| Error::Format(format!("{}:{error}", path.display())))
    }

    /// Parses a tag map over the defaults; the error starts with `line:column: `.
    pub fn parse(text: &str) -> std::result::Result<TagMap, String> {
        let mut options = serde_saphyr::Options::default();
        options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
        options.with_snippet = false;
        let file: TagMapFile = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("{}:{}: ", l.line(), l.column()))
                .unwrap_or_else(|| " ".to_owned());
            let message = e.to_string();
            // The parser appends its own position; it is given once, in front.
            let message = message.split(" at line ").next().unwrap_or(&message);
            format!("{at}{message}; hint: each key is a role, each value a list of tag names (docs/tracer.md, \"Tag mapping\")")
        })?;
        let mut map = TagMap::default();
        let given = [
            (Role::Service, file.service),
            (Role::Host, file.host),
            (Role::RequestId, file.request_id),
            (Role::GlobalRequestId, file.global_request_id),
            (Role::HttpMethod, file.http_method),
            (Role::HttpPath, file.http_path),
            (Role::HttpStatus, file.http_status),
            (Role::RpcMethod, file.rpc_method),
            (Role::RpcTopic, file.rpc_topic),
            (Role::RpcOperation, file.rpc_operation),
            (Role::MsgId, file.msg_id),
            (Role::ReplyQueue, file.reply_queue),
            (Role::UniqueId, file.unique_id),
            (Role::RpcServer, file.rpc_server),
            (Role::Function, file.function),
            (Role::Error, file.error),
        ];
        for (role, names) in given {
            if let Some(names) = names {
                map.names.insert(role, names);
            }
        }
        Ok(map)
    }

    /// The tag names tried for `role`, in order.
    pub fn names(&self, role: Role) -> &[String] {
        self.names.get(&role).map_or(&[], Vec::as_slice)
    }

    /// Takes the first tag present for `role` out of `tags`; every other tag of the role is
    /// consumed too (they say the same thing under other names).
    pub fn take(&self, role: Role, tags: &mut BTreeMap<String, String>) -> Option<String> {
        self.take_all(role, tags).into_iter().next()
    }

    /// Takes every non-empty tag of `role` out of `tags`, in the order of the role's names.
    pub fn take_all(&self, role: Role, tags: &mut BTreeMap<String, String>) -> Vec<String> {
        self.names(role)
            .iter()
            .filter_map(|name| tags.remove(name))
            .filter(|value| !value.is_empty())
            .collect()
    }
}
