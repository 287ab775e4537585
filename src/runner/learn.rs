//! Learning fingerprints from a finished run directory: positive fingerprints from the
//! transactions of the baseline windows, negative fingerprints from the transactions that were
//! anomalous while a fault was active, labelled with that fault's kind, service and host (the
//! ground truth of the run's report, copied from the injector's journal).

use std::collections::{BTreeMap, HashMap};

use fingerprint::{FaultLabel, Learned, Status, Store};
use reports::model as rm;
use tracer::event::{Event, Transaction};

use super::workload::CommandRecord;

/// When a transaction started: its earliest event.
fn first_ts(transaction: &Transaction) -> i64 {
    transaction
        .events
        .iter()
        .map(|e| e.ts_us)
        .min()
        .unwrap_or(i64::MAX)
}

/// Whether `ts_us` falls in the half-open `window`.
fn within(ts_us: i64, window: rm::Window) -> bool {
    ts_us >= window.start.as_microsecond() && ts_us < window.end.as_microsecond()
}

/// The transactions started by workload commands, each named after its command and paired with
/// whether the command succeeded, in order of start. Background traffic and transactions no
/// workload command started are left out.
fn command_transactions(
    records: &[CommandRecord],
    transactions: &[Transaction],
) -> Vec<(Transaction, bool)> {
    let commands: HashMap<&str, (&str, bool)> = records
        .iter()
        .map(|r| (r.request_id.as_str(), (r.command.as_str(), r.ok)))
        .collect();
    let mut labelled: Vec<(Transaction, bool)> = transactions
        .iter()
        .filter(|t| !t.background)
        .filter_map(|t| {
            let (command, ok) = commands.get(t.id.as_str()).copied()?;
            let mut t = t.clone();
            t.command = Some(command.to_owned());
            Some((t, ok))
        })
        .collect();
    labelled.sort_by_key(|(t, _)| first_ts(t));
    labelled
}

/// What learning one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunLearned {
    /// Baseline runs that matched a known variant.
    pub known: u64,
    /// Baseline runs that added a variant.
    pub new_variants: u64,
    /// Transactions learned as negative fingerprints, per fault label.
    pub negatives: BTreeMap<FaultLabel, u64>,
    /// Transactions active under a fault that diagnosed normal and succeeded: not learned, since
    /// the fault did not touch them.
    pub unaffected: u64,
    /// Transactions active under a fault that never reached the faulty service or host: not
    /// learned, since whatever happened to them was not that fault.
    pub untouched: u64,
    /// Transactions active under several faults at once: not learned, since the label would be
    /// a guess.
    pub ambiguous: u64,
}

/// The label of a fault as a negative fingerprint records it. A fault without a service (a
/// whole-host fault) is labelled with its hosts.
pub fn fault_label(fault: &rm::Fault) -> FaultLabel {
    FaultLabel {
        fault_kind: fault.kind.clone(),
        service: fault
            .target
            .service
            .clone()
            .unwrap_or_else(|| fault.target.hosts.join(",")),
        host: match fault.target.hosts.as_slice() {
            [host] => Some(host.clone()),
            _ => None,
        },
    }
}

/// When a fault was in effect: from its injection until its revert (or the end of the fault
/// window, when the run ended before reverting it).
fn active_window(fault: &rm::Fault, windows: &rm::Windows) -> rm::Window {
    rm::Window {
        start: fault.injected_at,
        end: fault.reverted_at.unwrap_or(windows.fault.end),
    }
}

/// Whether the transaction had events while `window` lasted (it may have started earlier).
pub(crate) fn overlaps(transaction: &Transaction, window: rm::Window) -> bool {
    let last = transaction
        .events
        .iter()
        .map(|e| e.ts_us)
        .max()
        .unwrap_or(i64::MIN);
    first_ts(transaction) < window.end.as_microsecond() && last >= window.start.as_microsecond()
}

/// What a fault was aimed at, and which transactions of a trace it can be said to have touched.
///
/// A transaction is touched when one of its events ran in the faulty service on a faulty host (or,
/// for a whole-host fault, on a faulty host). Only what the trace shows at all is asked for: a
/// service no event names (the broker, the database) and hosts the trace names otherwise (a
/// DevStack whose nova hosts are not named as in the inventory) say nothing, and a fault aimed
/// only at such things may have touched any transaction, so there its window alone decides.
#[derive(Debug, Clone)]
pub struct Touch {
    service: Option<String>,
    hosts: Vec<String>,
}

impl Touch {
    /// The fault's aim as seen in `transactions`: the service (`None` for a whole-host fault)
    /// and its hosts (empty: any host), each kept only if some event of the trace names it.
    pub fn new(service: Option<&str>, hosts: &[String], transactions: &[Transaction]) -> Touch {
        let events = || transactions.iter().flat_map(|t| &t.events);
        let anything = Touch {
            service: None,
            hosts: Vec::new(),
        };
        if let Some(service) = service
            && !events().any(|e| e.service.as_deref() == Some(service))
        {
            // Whatever runs on the hosts of a service the trace never shows, the service itself
            // (the broker, the database) may have held up any transaction.
            return anything;
        }
        let service = service.map(str::to_owned);
        let hosts = if events().any(|e| e.host.as_ref().is_some_and(|h| hosts.contains(h))) {
            hosts.to_vec()
        } else {
            Vec::new()
        };
        Touch { service, hosts }
    }

    fn involves(&self, event: &Event) -> bool {
        let on_faulty_host = self.hosts.is_empty()
            || event
                .host
                .as_ref()
                .is_none_or(|host| self.hosts.contains(host));
        match &self.service {
            Some(service) => event.service.as_ref() == Some(service) && on_faulty_host,
            None => event.host.is_some() && on_faulty_host,
        }
    }

    /// Whether the fault touched `transaction` (which is assumed to overlap its window).
    pub fn touched(&self, transaction: &Transaction) -> bool {
        if self.service.is_none() && self.hosts.is_empty() {
            return true;
        }
        transaction.events.iter().any(|event| self.involves(event))
    }
}

/// Learns one run into `store`: first every successful transaction that started in a baseline
/// window (of any repetition) as positive, then every transaction active under exactly one
/// fault, touched by it (see [`Touch`]), that failed or diagnoses anomalous against those
/// positives as negative, labelled with that fault.
pub fn learn_run(
    store: &mut Store,
    report: &rm::Report,
    records: &[CommandRecord],
    transactions: &[Transaction],
) -> RunLearned {
    let labelled = command_transactions(records, transactions);
    let repetitions: Vec<&rm::Repetition> = report
        .experiments
        .iter()
        .flat_map(|experiment| &experiment.repetitions)
        .collect();
    let touches: HashMap<&str, Touch> = repetitions
        .iter()
        .flat_map(|repetition| &repetition.faults)
        .map(|fault| {
            let touch = Touch::new(
                fault.target.service.as_deref(),
                &fault.target.hosts,
                transactions,
            );
            (fault.id.as_str(), touch)
        })
        .collect();
    let mut learned = RunLearned::default();
    for (transaction, ok) in &labelled {
        let start = first_ts(transaction);
        if *ok
            && repetitions
                .iter()
                .any(|repetition| within(start, repetition.windows.baseline))
        {
            match store.learn_positive(transaction) {
                Learned::Known { .. } => learned.known += 1,
                Learned::NewVariant { .. } => learned.new_variants += 1,
                Learned::Skipped | Learned::Negative { .. } => {}
            }
        }
    }
    for (transaction, ok) in &labelled {
        let active: Vec<&rm::Fault> = repetitions
            .iter()
            .flat_map(|repetition| {
                repetition.faults.iter().filter(|fault| {
                    overlaps(transaction, active_window(fault, &repetition.windows))
                })
            })
            .collect();
        let fault = match active.as_slice() {
            [] => continue,
            [fault] => fault,
            _ => {
                learned.ambiguous += 1;
                continue;
            }
        };
        if !touches[fault.id.as_str()].touched(transaction) {
            learned.untouched += 1;
            continue;
        }
        let faulty = !ok || store.diagnose(transaction).status == Status::Anomalous;
        if !faulty {
            learned.unaffected += 1;
            continue;
        }
        let label = fault_label(fault);
        if let Learned::Negative { .. } = store.learn_negative(transaction, &label) {
            *learned.negatives.entry(label).or_default() += 1;
        }
    }
    learned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(service: Option<&str>, hosts: &[&str]) -> rm::Fault {
        let at: jiff::Timestamp = "2026-11-28T13:03:59Z".parse().unwrap();
        rm::Fault {
            id: "f1".to_owned(),
            kind: "process-kill".to_owned(),
            parameters: BTreeMap::new(),
            target: rm::FaultTarget {
                service: service.map(str::to_owned),
                hosts: hosts.iter().map(|host| (*host).to_owned()).collect(),
            },
            trigger: rm::Trigger::Offset { after_s: 1.0 },
            injected_at: at,
            verified_at: None,
            reverted_at: None,
            observed: None,
        }
    }

    #[test]
    fn labels_name_the_service_and_a_single_host() {
        let label = fault_label(&fault(Some("nova-compute"), &["compute1"]));
        assert_eq!(label.service, "nova-compute");
        assert_eq!(label.host.as_deref(), Some("compute1"));
        let label = fault_label(&fault(Some("nova-compute"), &["compute1", "compute2"]));
        assert_eq!(
            label.host, None,
            "a fault on several hosts has no single host"
        );
        let label = fault_label(&fault(None, &["compute1", "compute2"]));
        assert_eq!(
            label.service, "compute1,compute2",
            "a host fault names its hosts"
        );
    }

    /// A transaction with one event per `(service, host)`.
    fn transaction(id: &str, events: &[(&str, Option<&str>)]) -> Transaction {
        Transaction {
            id: id.to_owned(),
            command: None,
            background: false,
            events: events
                .iter()
                .map(|(service, host)| Event {
                    seq: 0,
                    ts_us: 0,
                    source: tracer::event::Source::Amqp,
                    kind: tracer::event::EventKind::RpcCast,
                    service: Some((*service).to_owned()),
                    host: host.map(str::to_owned),
                    caller: None,
                    operation: String::new(),
                    target: None,
                    outcome: None,
                    duration_us: None,
                    ids: Default::default(),
                    attrs: BTreeMap::new(),
                })
                .collect(),
            edges: Vec::new(),
        }
    }

    #[test]
    fn a_fault_touches_the_transactions_that_reach_its_service_on_its_host() {
        let trace = vec![
            transaction(
                "a",
                &[("nova-api", None), ("nova-compute", Some("compute1"))],
            ),
            transaction(
                "b",
                &[("nova-api", None), ("nova-compute", Some("compute2"))],
            ),
            transaction("c", &[("nova-api", None), ("placement-api", None)]),
        ];
        let compute1 = ["compute1".to_owned()];
        let touch = Touch::new(Some("nova-compute"), &compute1, &trace);
        let touched: Vec<bool> = trace.iter().map(|t| touch.touched(t)).collect();
        assert_eq!(touched, [true, false, false]);
        // Every host of the service.
        let touch = Touch::new(Some("nova-compute"), &[], &trace);
        let touched: Vec<bool> = trace.iter().map(|t| touch.touched(t)).collect();
        assert_eq!(touched, [true, true, false]);
        // A whole-host fault.
        let touch = Touch::new(None, &compute1, &trace);
        let touched: Vec<bool> = trace.iter().map(|t| touch.touched(t)).collect();
        assert_eq!(touched, [true, false, false]);
    }

    #[test]
    fn what_the_trace_never_names_leaves_the_window_alone_to_decide() {
        let trace = vec![
            transaction("a", &[("nova-api", None), ("nova-compute", Some("osbed"))]),
            transaction("b", &[("nova-api", None)]),
        ];
        // The broker is in no event: every transaction may have been touched, also those that
        // never reached its host.
        let touch = Touch::new(Some("rabbitmq"), &["osbed".to_owned()], &trace);
        assert!(trace.iter().all(|t| touch.touched(t)));
        // The inventory's host name is not nova's: only the service decides.
        let touch = Touch::new(Some("nova-compute"), &["compute1".to_owned()], &trace);
        let touched: Vec<bool> = trace.iter().map(|t| touch.touched(t)).collect();
        assert_eq!(touched, [true, false]);
    }
}
