//! Execution graphs: a transaction as a petgraph graph, and rendered as Graphviz DOT.

use std::collections::HashMap;
use std::fmt::Write as _;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::event::{EdgeKind, Event, EventKind, Transaction};

/// The transaction's events as nodes and its edges as causality, node order = event order.
pub fn to_graph(transaction: &Transaction) -> DiGraph<&Event, EdgeKind> {
    let mut graph = DiGraph::with_capacity(transaction.events.len(), transaction.edges.len());
    let mut nodes: HashMap<u64, NodeIndex> = HashMap::with_capacity(transaction.events.len());
    for event in &transaction.events {
        nodes.insert(event.seq, graph.add_node(event));
    }
    for edge in &transaction.edges {
        if let (Some(&from), Some(&to)) = (nodes.get(&edge.from), nodes.get(&edge.to)) {
            graph.add_edge(from, to, edge.kind);
        }
    }
    graph
}

/// Graphviz DOT of one transaction: one node per event (service, operation, outcome), edges
/// styled by kind (reply dashed, span dotted).
pub fn to_dot(transaction: &Transaction) -> String {
    let graph = to_graph(transaction);
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&transaction.id));
    let _ = writeln!(
        out,
        "  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];"
    );
    if let Some(command) = &transaction.command {
        let _ = writeln!(out, "  label={};", quote(command));
    }
    for index in graph.node_indices() {
        let event = graph[index];
        let mut label = format!(
            "#{} {}\\n{}",
            event.seq,
            event.service.as_deref().unwrap_or("?"),
            escape(&event.operation)
        );
        if let Some(host) = &event.host {
            let _ = write!(label, " @{}", escape(host));
        }
        if let Some(outcome) = &event.outcome {
            let text = match outcome {
                crate::event::Outcome::Http { status } => status.to_string(),
                crate::event::Outcome::ReplyOk => "ok".to_owned(),
                crate::event::Outcome::ReplyFailure { exception } => escape(exception),
            };
            let _ = write!(label, "\\n{text}");
        }
        let shape = match event.kind {
            EventKind::RestRequest => "box",
            EventKind::RpcCall | EventKind::RpcReply => "ellipse",
            EventKind::RpcCast | EventKind::RpcFanout => "parallelogram",
            EventKind::Notification => "note",
            EventKind::Opaque => "octagon",
        };
        let color = if event.is_error() { ", color=red" } else { "" };
        let _ = writeln!(
            out,
            "  n{} [label=\"{label}\", shape={shape}{color}];",
            event.seq
        );
    }
    for edge in &transaction.edges {
        let style = match edge.kind {
            EdgeKind::Reply => " [style=dashed]",
            EdgeKind::Span => " [style=dotted]",
            EdgeKind::Context => "",
        };
        let _ = writeln!(out, "  n{} -> n{}{style};", edge.from, edge.to);
    }
    out.push_str("}\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn quote(text: &str) -> String {
    format!("\"{}\"", escape(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Edge, EventIds, Outcome, Source};

    #[test]
    fn graph_and_dot_follow_the_transaction() {
        let event = |seq: u64, kind| Event {
            seq,
            ts_us: seq as i64,
            source: Source::Amqp,
            kind,
            service: Some("nova-conductor".to_owned()),
            host: None,
            caller: None,
            operation: "conductor.\"x\"".to_owned(),
            target: None,
            outcome: Some(Outcome::ReplyFailure {
                exception: "Boom".to_owned(),
            }),
            duration_us: None,
            ids: EventIds::default(),
            attrs: Default::default(),
        };
        let transaction = Transaction {
            id: "req-1".to_owned(),
            command: None,
            background: false,
            events: vec![event(1, EventKind::RpcCall), event(2, EventKind::RpcReply)],
            edges: vec![Edge {
                from: 1,
                to: 2,
                kind: EdgeKind::Reply,
            }],
        };
        let graph = to_graph(&transaction);
        assert_eq!((graph.node_count(), graph.edge_count()), (2, 1));
        let dot = to_dot(&transaction);
        assert!(dot.starts_with("digraph \"req-1\" {"));
        assert!(dot.contains("n1 -> n2 [style=dashed];"));
        assert!(dot.contains("conductor.\\\"x\\\""));
        assert!(dot.contains("color=red"));
    }
}
