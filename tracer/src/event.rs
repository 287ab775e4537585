//! The one event model shared by the AMQP and REST tracers, the trace format on disk, the importers
//! and the `fingerprint` crate.
//!
//! An [`Event`] is one observed message or request. Events of one user command are grouped into a
//! [`Transaction`] (by global request id / request id) and linked by causal [`Edge`]s. This is the
//! contract between crates: add fields only as `Option` or with `#[serde(default)]`, and bump
//! [`TRACE_FORMAT_VERSION`] on any change that an older reader would misread.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of the on-disk trace format (events JSON Lines, transactions JSON).
pub const TRACE_FORMAT_VERSION: u32 = 1;

/// Where an event was observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// RabbitMQ firehose or tap queue.
    Amqp,
    /// The recording REST proxy.
    Rest,
    /// Imported from another tool's trace (Zipkin, OpenTelemetry-style spans).
    Import,
}

/// What kind of interaction an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// An HTTP request and its response, seen by the REST proxy.
    RestRequest,
    /// An oslo.messaging RPC call (expects a reply).
    RpcCall,
    /// An oslo.messaging RPC cast to one server or topic (no reply).
    RpcCast,
    /// An oslo.messaging fanout cast (to every server of a topic).
    RpcFanout,
    /// A reply to an RPC call.
    RpcReply,
    /// An oslo.messaging notification (`event_type`, `publisher_id`).
    Notification,
    /// A message that could not be decoded; kept so that nothing is dropped silently.
    Opaque,
}

/// Identifiers that join events into transactions and calls to replies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventIds {
    /// The request id of the acting service (`_context_request_id`, `X-Openstack-Request-Id` out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The global request id (`_context_global_request_id`, `X-Openstack-Request-Id` in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_request_id: Option<String>,
    /// oslo.messaging `_msg_id`: pairs a call with its reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg_id: Option<String>,
    /// oslo.messaging `_reply_q` of a call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_queue: Option<String>,
    /// oslo.messaging `_unique_id` (deduplication of redelivered messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_id: Option<String>,
    /// Span id when imported from a tracing system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<String>,
    /// Parent span id when imported from a tracing system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
}

/// How an interaction ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Outcome {
    /// HTTP status code of a REST request.
    Http {
        /// The status code, e.g. 202.
        status: u16,
    },
    /// An RPC reply without failure.
    ReplyOk,
    /// An RPC reply carrying a remote exception.
    ReplyFailure {
        /// The exception class name, e.g. `NoValidHost`.
        exception: String,
    },
}

/// One observed message or request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Position in the trace, in order of arrival (unique within one trace).
    pub seq: u64,
    /// When the event was observed, in microseconds since the Unix epoch (UTC). For a REST request
    /// this is when the request arrived at the proxy.
    pub ts_us: i64,
    /// Where it was observed.
    pub source: Source,
    /// What kind of interaction it is.
    pub kind: EventKind,
    /// The service that acts on the event: for REST the API that serves it (`nova-api`,
    /// `placement-api`), for RPC the target topic's service (`nova-conductor`, `nova-scheduler`,
    /// `nova-compute`), for a reply the service that replied, for a notification the publisher.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The host that acts on the event when known (RPC `topic.host` server, notification publisher
    /// host, REST upstream host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The service that sent it, when known (REST: from the proxy's client side or user agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// The operation: for REST `METHOD /path/template` (ids replaced by `{id}`), for RPC
    /// `topic.method` (e.g. `conductor.schedule_and_build_instances`), for a notification its
    /// `event_type`, for a reply the method it answers when known.
    pub operation: String,
    /// The routing target: RPC `exchange/routing_key`, REST upstream base URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// How it ended, when that is part of the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Duration in microseconds, when the event spans time (a REST request's latency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_us: Option<u64>,
    /// Join identifiers.
    #[serde(default)]
    pub ids: EventIds,
    /// Further decoded, secret-free attributes (RPC version, namespace, timeout, priority, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attrs: BTreeMap<String, String>,
}

impl Event {
    /// True when the event itself reports a failure: a failed RPC reply or an HTTP 5xx.
    pub fn is_error(&self) -> bool {
        match &self.outcome {
            Some(Outcome::ReplyFailure { .. }) => true,
            Some(Outcome::Http { status }) => *status >= 500,
            _ => false,
        }
    }
}

/// Why one event caused or answered another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EdgeKind {
    /// An RPC call and its reply (same `_msg_id`).
    Reply,
    /// A later event of the same request context (request id / global request id).
    Context,
    /// A span and its parent (imported traces).
    Span,
}

/// A causal link between two events of one transaction, by their `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// The `seq` of the causing event.
    pub from: u64,
    /// The `seq` of the caused event.
    pub to: u64,
    /// Why they are linked.
    pub kind: EdgeKind,
}

/// The events of one user command (or of one background activity), with causality.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    /// Stable id: the global request id when there is one, else the first request id.
    pub id: String,
    /// The user command when known (e.g. `server create`), from the workload record or inferred
    /// from the first REST call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// True for background traffic (periodic tasks, heartbeats such as `report_state`).
    #[serde(default)]
    pub background: bool,
    /// Events in `ts_us` then `seq` order.
    pub events: Vec<Event>,
    /// Causal edges between events of this transaction.
    #[serde(default)]
    pub edges: Vec<Edge>,
}
