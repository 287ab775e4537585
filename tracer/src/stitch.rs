//! Streaming stitching of events into [`Transaction`]s.
//!
//! Events join a transaction by their global request id, else their request id (REST: inbound
//! `X-Openstack-Request-Id`, else the response's; RPC: `_context_global_request_id`, else
//! `_context_request_id`). Replies carry no context, so they join the transaction of the call with
//! the same `_msg_id`. A transaction closes when no event arrived for the idle timeout (in event
//! time), or is evicted (and counted) when more than the cap are open, so memory stays bounded.
//!
//! Edges are built when a transaction closes: call → reply by `_msg_id`, imported span → child by
//! span ids, and otherwise a context edge from the innermost REST request whose time span contains
//! the event, else from the previous event of the transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::event::{Edge, EdgeKind, Event, EventKind, Transaction};
use crate::oslo::Delivery;

/// Operations that are heartbeats or liveness checks wherever they appear.
const HEARTBEAT_METHODS: &[&str] = &["report_state", "ping", "heartbeat"];

/// Stitcher limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StitchConfig {
    /// A transaction closes after this much event time without a new event, µs.
    pub idle_timeout_us: i64,
    /// At most this many transactions are open; the least recently active is evicted beyond it.
    pub max_open: usize,
}

impl Default for StitchConfig {
    fn default() -> Self {
        StitchConfig {
            idle_timeout_us: 30_000_000,
            max_open: 10_000,
        }
    }
}

/// What the stitcher did, for the trace summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StitchCounts {
    /// Events handed to the stitcher.
    pub events: u64,
    /// Events that joined no transaction (no request id, or a reply whose call was not seen).
    pub unattributed: u64,
    /// Transactions closed after the idle timeout or at the end.
    pub closed: u64,
    /// Transactions closed early because the open cap was reached.
    pub evicted: u64,
    /// Closed transactions that are background traffic.
    pub background: u64,
    /// Deliveries matched to their published message (queue wait recorded).
    pub deliveries_matched: u64,
}

#[derive(Debug)]
struct OpenTransaction {
    serial: u64,
    last_ts: i64,
    events: Vec<Event>,
    msg_ids: Vec<String>,
    unique_ids: Vec<String>,
}

/// The streaming stitcher.
#[derive(Debug)]
pub struct Stitcher {
    config: StitchConfig,
    open: HashMap<String, OpenTransaction>,
    by_activity: BTreeSet<(i64, u64)>,
    serial_to_key: HashMap<u64, String>,
    /// `_msg_id` of a call → (transaction key, call operation, service, host).
    calls: HashMap<String, (String, String, Option<String>, Option<String>)>,
    /// `_unique_id` → (transaction key, index of the event).
    published: HashMap<String, (String, usize)>,
    next_serial: u64,
    last_scan_ts: i64,
    closed: Vec<Transaction>,
    counts: StitchCounts,
}

impl Stitcher {
    /// A stitcher with the given limits.
    pub fn new(config: StitchConfig) -> Stitcher {
        Stitcher {
            config,
            open: HashMap::new(),
            by_activity: BTreeSet::new(),
            serial_to_key: HashMap::new(),
            calls: HashMap::new(),
            published: HashMap::new(),
            next_serial: 0,
            last_scan_ts: i64::MIN,
            closed: Vec::new(),
            counts: StitchCounts::default(),
        }
    }

    /// Counts so far.
    pub fn counts(&self) -> StitchCounts {
        self.counts
    }

    /// Number of open transactions.
    pub fn open_len(&self) -> usize {
        self.open.len()
    }

    /// Fills in what the event's own message cannot say (a reply's operation, service and host
    /// from its call) before it is written. Call before [`Stitcher::push`].
    pub fn annotate(&self, event: &mut Event) {
        if event.kind != EventKind::RpcReply {
            return;
        }
        if let Some((_, operation, service, host)) =
            event.ids.msg_id.as_ref().and_then(|id| self.calls.get(id))
        {
            event.operation = format!("{operation}.reply");
            event.service.clone_from(service);
            event.host.clone_from(host);
        }
    }

    /// Adds one event (already numbered). Closes idle transactions as event time advances.
    /// Returns the id of the transaction the event joined, or `None` when it joined none.
    pub fn push(&mut self, event: Event) -> Option<String> {
        self.counts.events += 1;
        self.advance(event.ts_us);
        let key = match transaction_key(&event) {
            Some(key) => key.to_owned(),
            None => match event.ids.msg_id.as_ref().and_then(|id| self.calls.get(id)) {
                Some((key, ..)) if event.kind == EventKind::RpcReply => key.clone(),
                _ => {
                    self.counts.unattributed += 1;
                    return None;
                }
            },
        };
        if !self.open.contains_key(&key) {
            let serial = self.next_serial;
            self.next_serial += 1;
            self.serial_to_key.insert(serial, key.clone());
            self.by_activity.insert((event.ts_us, serial));
            self.open.insert(
                key.clone(),
                OpenTransaction {
                    serial,
                    last_ts: event.ts_us,
                    events: Vec::new(),
                    msg_ids: Vec::new(),
                    unique_ids: Vec::new(),
                },
            );
            while self.open.len() > self.config.max_open {
                let Some(&(_, oldest)) = self.by_activity.iter().next() else {
                    break;
                };
                let oldest_key = self.serial_to_key[&oldest].clone();
                self.counts.evicted += 1;
                self.close(&oldest_key);
            }
        }
        let open = self.open.get_mut(&key)?;
        if event.ts_us > open.last_ts {
            self.by_activity.remove(&(open.last_ts, open.serial));
            open.last_ts = event.ts_us;
            self.by_activity.insert((open.last_ts, open.serial));
        }
        if event.kind == EventKind::RpcCall
            && let Some(msg_id) = &event.ids.msg_id
        {
            let operation = event.operation.clone();
            self.calls.insert(
                msg_id.clone(),
                (
                    key.clone(),
                    operation,
                    event.service.clone(),
                    event.host.clone(),
                ),
            );
            open.msg_ids.push(msg_id.clone());
        }
        if event.source == crate::event::Source::Amqp
            && let Some(unique_id) = &event.ids.unique_id
        {
            self.published
                .insert(unique_id.clone(), (key.clone(), open.events.len()));
            open.unique_ids.push(unique_id.clone());
        }
        open.events.push(event);
        Some(key)
    }

    /// Records the queue wait of a delivered message on its publish event, if still open.
    pub fn deliver(&mut self, delivery: &Delivery) {
        let Some((key, index)) = delivery
            .unique_id
            .as_ref()
            .and_then(|id| self.published.get(id))
        else {
            return;
        };
        let Some(event) = self
            .open
            .get_mut(key)
            .and_then(|open| open.events.get_mut(*index))
        else {
            return;
        };
        if event.attrs.contains_key("queue") {
            return;
        }
        event
            .attrs
            .insert("queue".to_owned(), delivery.queue.clone());
        let wait = (delivery.ts_us - event.ts_us).max(0);
        event
            .attrs
            .insert("queue_wait_us".to_owned(), wait.to_string());
        self.counts.deliveries_matched += 1;
    }

    /// Closes every transaction idle for longer than the timeout at `now_us` (event time or wall
    /// clock in µs). Scans at most four times per timeout, so it is cheap to call per event.
    pub fn advance(&mut self, now_us: i64) {
        if now_us.saturating_sub(self.last_scan_ts) < self.config.idle_timeout_us / 4 {
            return;
        }
        self.last_scan_ts = now_us;
        let deadline = now_us.saturating_sub(self.config.idle_timeout_us);
        while let Some(&(last_ts, serial)) = self.by_activity.iter().next() {
            if last_ts >= deadline {
                break;
            }
            let key = self.serial_to_key[&serial].clone();
            self.close(&key);
        }
    }

    /// Closes every open transaction (end of the trace).
    pub fn flush(&mut self) {
        let mut keys: Vec<(u64, String)> = self
            .open
            .iter()
            .map(|(key, open)| (open.serial, key.clone()))
            .collect();
        keys.sort();
        for (_, key) in keys {
            self.close(&key);
        }
    }

    /// Takes the transactions closed so far.
    pub fn take_closed(&mut self) -> Vec<Transaction> {
        std::mem::take(&mut self.closed)
    }

    fn close(&mut self, key: &str) {
        let Some(open) = self.open.remove(key) else {
            return;
        };
        self.by_activity.remove(&(open.last_ts, open.serial));
        self.serial_to_key.remove(&open.serial);
        for msg_id in &open.msg_ids {
            self.calls.remove(msg_id);
        }
        for unique_id in &open.unique_ids {
            self.published.remove(unique_id);
        }
        let transaction = build_transaction(key.to_owned(), open.events);
        self.counts.closed += 1;
        if transaction.background {
            self.counts.background += 1;
        }
        self.closed.push(transaction);
    }
}

/// The key an event joins a transaction by: its global request id, else its request id.
pub fn transaction_key(event: &Event) -> Option<&str> {
    event
        .ids
        .global_request_id
        .as_deref()
        .or(event.ids.request_id.as_deref())
        .filter(|id| !id.is_empty())
}

/// Sorts the events, builds the edges and classifies one transaction.
pub fn build_transaction(id: String, mut events: Vec<Event>) -> Transaction {
    events.sort_by_key(|event| (event.ts_us, event.seq));
    let edges = build_edges(&events);
    let background = is_background(&events);
    let command = infer_command(&events);
    Transaction {
        id,
        command,
        background,
        events,
        edges,
    }
}

fn build_edges(events: &[Event]) -> Vec<Edge> {
    let mut edges = Vec::new();
    let mut calls: HashMap<&str, u64> = HashMap::new();
    let mut spans: HashMap<&str, u64> = HashMap::new();
    for event in events {
        if let Some(span) = &event.ids.span_id {
            spans.insert(span, event.seq);
        }
    }
    let mut previous: Option<u64> = None;
    // REST requests seen so far, latest last: the candidates for enclosing an event.
    let mut rest_requests: Vec<&Event> = Vec::new();
    for event in events {
        if event.kind == EventKind::RpcCall
            && let Some(msg_id) = &event.ids.msg_id
        {
            calls.insert(msg_id, event.seq);
        }
        if event.kind == EventKind::RpcReply
            && let Some(&call) = event.ids.msg_id.as_deref().and_then(|id| calls.get(id))
        {
            edges.push(Edge {
                from: call,
                to: event.seq,
                kind: EdgeKind::Reply,
            });
            continue;
        }
        if let Some(&parent) = event
            .ids
            .parent_span_id
            .as_deref()
            .and_then(|id| spans.get(id))
        {
            edges.push(Edge {
                from: parent,
                to: event.seq,
                kind: EdgeKind::Span,
            });
            previous = Some(event.seq);
            if event.kind == EventKind::RestRequest {
                rest_requests.push(event);
            }
            continue;
        }
        let enclosing = rest_requests
            .iter()
            .rev()
            .find(|candidate| {
                candidate.ts_us <= event.ts_us
                    && candidate.ts_us + candidate.duration_us.unwrap_or(0) as i64 >= event.ts_us
            })
            .map(|candidate| candidate.seq);
        if let Some(from) = enclosing.or(previous) {
            edges.push(Edge {
                from,
                to: event.seq,
                kind: EdgeKind::Context,
            });
        }
        previous = Some(event.seq);
        if event.kind == EventKind::RestRequest {
            rest_requests.push(event);
        }
    }
    edges
}

/// Background: no REST request and no user in any context (periodic tasks run with an admin
/// context without a user), or nothing but heartbeats.
fn is_background(events: &[Event]) -> bool {
    let has_user_request = events.iter().any(|event| {
        event.kind == EventKind::RestRequest
            || event.source == crate::event::Source::Import
            || event.attrs.contains_key("user_id")
    });
    let only_heartbeats = events.iter().all(|event| {
        event.kind == EventKind::RpcReply
            || event
                .attrs
                .get("method")
                .is_some_and(|method| HEARTBEAT_METHODS.contains(&method.as_str()))
    });
    !has_user_request || only_heartbeats
}

/// The user command, from the first REST request or the first characteristic RPC.
fn infer_command(events: &[Event]) -> Option<String> {
    const COMMANDS: &[(&str, &str)] = &[
        ("POST /v2.1/servers", "server create"),
        ("DELETE /v2.1/servers/{id}", "server delete"),
        ("POST /v2.1/servers/{id}/action", "server action"),
        ("GET /v2.1/servers/{id}", "server show"),
        ("GET /v2.1/servers/detail", "server list"),
        ("POST /v2/images", "image create"),
        ("POST /v2.0/networks", "network create"),
        ("POST /v2.0/ports", "port create"),
        ("conductor.schedule_and_build_instances", "server create"),
        ("compute.terminate_instance", "server delete"),
    ];
    events.iter().find_map(|event| {
        COMMANDS
            .iter()
            .find(|(operation, _)| event.operation == *operation)
            .map(|(_, command)| (*command).to_owned())
    })
}

/// Per-service counts of a transaction's events, handy for summaries and tests.
pub fn services_of(transaction: &Transaction) -> BTreeMap<String, usize> {
    let mut services = BTreeMap::new();
    for event in &transaction.events {
        if let Some(service) = &event.service {
            *services.entry(service.clone()).or_insert(0) += 1;
        }
    }
    services
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::event::{EventIds, Outcome, Source};

    fn event(
        seq: u64,
        ts_us: i64,
        kind: EventKind,
        request_id: Option<&str>,
        msg_id: Option<&str>,
    ) -> Event {
        Event {
            seq,
            ts_us,
            source: Source::Amqp,
            kind,
            service: Some("nova-conductor".to_owned()),
            host: None,
            caller: None,
            operation: "conductor.object_action".to_owned(),
            target: None,
            outcome: (kind == EventKind::RpcReply).then_some(Outcome::ReplyOk),
            duration_us: None,
            ids: EventIds {
                request_id: request_id.map(str::to_owned),
                msg_id: msg_id.map(str::to_owned),
                ..EventIds::default()
            },
            attrs: [("user_id".to_owned(), "u".to_owned())].into(),
        }
    }

    #[test]
    fn replies_join_their_call_and_get_its_operation() {
        let mut stitcher = Stitcher::new(StitchConfig::default());
        stitcher.push(event(1, 10, EventKind::RpcCall, Some("req-a"), Some("m1")));
        let mut reply = event(2, 20, EventKind::RpcReply, None, Some("m1"));
        reply.operation = "reply".to_owned();
        reply.service = None;
        stitcher.annotate(&mut reply);
        assert_eq!(reply.operation, "conductor.object_action.reply");
        assert_eq!(stitcher.push(reply).as_deref(), Some("req-a"));
        assert_eq!(
            stitcher.push(event(3, 30, EventKind::RpcReply, None, Some("unknown"))),
            None
        );
        stitcher.flush();
        let closed = stitcher.take_closed();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].events.len(), 2);
        assert_eq!(
            closed[0].edges,
            vec![Edge {
                from: 1,
                to: 2,
                kind: EdgeKind::Reply
            }]
        );
        assert_eq!(stitcher.counts().unattributed, 1);
    }

    #[test]
    fn idle_transactions_close_and_the_cap_evicts() {
        let config = StitchConfig {
            idle_timeout_us: 1_000,
            max_open: 2,
        };
        let mut stitcher = Stitcher::new(config);
        stitcher.push(event(1, 0, EventKind::RpcCast, Some("req-a"), None));
        stitcher.push(event(2, 10, EventKind::RpcCast, Some("req-b"), None));
        stitcher.push(event(3, 20, EventKind::RpcCast, Some("req-c"), None));
        assert_eq!(stitcher.counts().evicted, 1);
        assert_eq!(stitcher.open_len(), 2);
        assert_eq!(stitcher.take_closed()[0].id, "req-a");
        stitcher.push(event(4, 5_000, EventKind::RpcCast, Some("req-d"), None));
        let closed: Vec<String> = stitcher.take_closed().into_iter().map(|t| t.id).collect();
        assert_eq!(closed, ["req-b", "req-c"]);
        assert_eq!(stitcher.open_len(), 1);
        assert_eq!(stitcher.counts().closed, 3);
    }

    #[test]
    fn events_inside_a_rest_request_hang_off_it_and_background_is_separated() {
        let mut rest = event(1, 100, EventKind::RestRequest, Some("req-a"), None);
        rest.source = Source::Rest;
        rest.duration_us = Some(50);
        let inner = event(2, 120, EventKind::RpcCast, Some("req-a"), None);
        let after = event(3, 500, EventKind::RpcCast, Some("req-a"), None);
        let transaction = build_transaction("req-a".to_owned(), vec![after, inner, rest]);
        assert_eq!(
            transaction.edges,
            vec![
                Edge {
                    from: 1,
                    to: 2,
                    kind: EdgeKind::Context
                },
                Edge {
                    from: 2,
                    to: 3,
                    kind: EdgeKind::Context
                },
            ]
        );
        assert!(!transaction.background);
        let mut periodic = event(4, 0, EventKind::RpcCall, Some("req-p"), Some("m"));
        periodic.attrs.clear();
        assert!(build_transaction("req-p".to_owned(), vec![periodic]).background);
        let mut ping = event(5, 0, EventKind::RpcCall, Some("req-q"), Some("m"));
        ping.attrs
            .insert("method".to_owned(), "report_state".to_owned());
        assert!(build_transaction("req-q".to_owned(), vec![ping]).background);
    }

    proptest! {
        /// Conservation: every event ends in exactly one closed transaction or is counted as
        /// unattributed, however small the cap and timeout; the cap always holds; every edge joins
        /// two events of its own transaction.
        #[test]
        fn every_event_is_kept_once_and_the_cap_holds(
            steps in proptest::collection::vec((0u8..6, 0u8..4, 0i64..2_000), 1..200),
            max_open in 1usize..5,
            idle in 1i64..5_000,
        ) {
            let mut stitcher = Stitcher::new(StitchConfig { idle_timeout_us: idle, max_open });
            let mut ts = 0;
            for (seq, (request, shape, gap)) in steps.iter().enumerate() {
                ts += gap;
                let request_id = format!("req-{request}");
                let msg_id = format!("m{}", seq / 2);
                let (kind, request_id, msg_id) = match shape {
                    0 => (EventKind::RpcCall, Some(request_id.as_str()), Some(msg_id.as_str())),
                    1 => (EventKind::RpcReply, None, Some(msg_id.as_str())),
                    2 => (EventKind::RpcCast, Some(request_id.as_str()), None),
                    _ => (EventKind::Notification, None, None),
                };
                stitcher.push(event(seq as u64 + 1, ts, kind, request_id, msg_id));
                prop_assert!(stitcher.open_len() <= max_open);
            }
            stitcher.flush();
            let closed = stitcher.take_closed();
            let counts = stitcher.counts();
            let kept: usize = closed.iter().map(|t| t.events.len()).sum();
            prop_assert_eq!(kept as u64 + counts.unattributed, steps.len() as u64);
            let mut seen = std::collections::HashSet::new();
            for transaction in &closed {
                let seqs: std::collections::HashSet<u64> =
                    transaction.events.iter().map(|e| e.seq).collect();
                for edge in &transaction.edges {
                    prop_assert!(seqs.contains(&edge.from) && seqs.contains(&edge.to));
                }
                for seq in seqs {
                    prop_assert!(seen.insert(seq), "event {} in two transactions", seq);
                }
            }
            prop_assert_eq!(counts.closed, closed.len() as u64);
        }
    }
}
