//! Suspicion: the one weight table and how weighted evidence ranks the suspected services.
//!
//! Every rule that names suspects (diagnosis of finished transactions, slow answers, the timeout
//! monitor, the engine's shared dependencies) weighs its evidence from [`WEIGHTS`], accumulates
//! it in a `Suspicion`, and ranks it into [`RankedSuspect`]s. This module depends only on the
//! step model, so the rules above it import it and not each other.

use serde::Serialize;

use crate::symbol::Step;

/// How much suspicion each kind of evidence adds to a service (shares are relative: the ranking
/// divides by the total).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// The service that holds the transaction (received the last message before a gap or a
    /// missing step, see `actor`): the one expected to act next.
    pub actor: f64,
    /// The service that should have sent the missing or late step.
    pub sender: f64,
    /// The service that should have handled the missing or late step.
    pub handler: f64,
    /// A service that returned a failure.
    pub failure: f64,
    /// Share of [`Weights::failure`] for a failure around another one, which explains it.
    pub failed_around: f64,
    /// A service the normal variant expects after the divergence that never appeared.
    pub silent: f64,
    /// The service serving the request that holds a slow answer.
    pub holder: f64,
    /// The caller of that request.
    pub holder_caller: f64,
    /// The share of the confidence a shared dependency (broker, database) or a stuck service
    /// takes when the engine puts it first; the others share the rest.
    pub shared: f64,
}

/// The weight table.
pub const WEIGHTS: Weights = Weights {
    actor: 0.6,
    sender: 0.25,
    handler: 0.15,
    failure: 1.0,
    failed_around: 0.3,
    silent: 0.1,
    holder: 0.7,
    holder_caller: 0.3,
    shared: 0.7,
};

/// A suspected component with the evidence for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RankedSuspect {
    /// Service name.
    pub service: String,
    /// Host, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Share of the total suspicion, `0.0..=1.0`.
    pub confidence: f64,
    /// Why it is suspected.
    pub evidence: Vec<String>,
}

/// Accumulates weighted suspicion per service.
#[derive(Debug, Default)]
pub(crate) struct Suspicion {
    entries: Vec<(String, Option<String>, f64, Vec<String>)>,
}

impl Suspicion {
    pub(crate) fn add(
        &mut self,
        service: Option<&str>,
        host: Option<&str>,
        weight: f64,
        evidence: String,
    ) {
        let Some(service) = service else {
            return;
        };
        match self.entries.iter_mut().find(|entry| entry.0 == service) {
            Some(entry) => {
                entry.2 += weight;
                if entry.1.is_none() {
                    entry.1 = host.map(str::to_owned);
                }
                entry.3.push(evidence);
            }
            None => self.entries.push((
                service.to_owned(),
                host.map(str::to_owned),
                weight,
                vec![evidence],
            )),
        }
    }

    pub(crate) fn ranked(self) -> Vec<RankedSuspect> {
        let total: f64 = self.entries.iter().map(|entry| entry.2).sum();
        let mut ranked: Vec<RankedSuspect> = self
            .entries
            .into_iter()
            .map(|(service, host, weight, evidence)| RankedSuspect {
                service,
                host,
                confidence: if total > 0.0 { weight / total } else { 0.0 },
                evidence,
            })
            .collect();
        // Stable: equal confidence keeps the order in which evidence was found.
        ranked.sort_by(|a, b| b.confidence.total_cmp(&a.confidence));
        ranked
    }
}

/// The service that should act after the steps seen so far, and why.
pub(crate) struct Actor<'a> {
    pub(crate) service: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
    pub(crate) why: &'static str,
    pub(crate) symbol: &'a str,
}

/// Who holds the transaction after `steps`: the receiver of the last message, except after an
/// answer. A REST step is recorded once the service has answered, so the one to act next is its
/// caller, not the service that answered. When the caller is unknown (the client's `User-Agent`
/// names no service), the answered call says nothing about who is stuck, and the receiver of the
/// message before it still holds the transaction. Blaming the answering service instead made the
/// timeout detector (and diagnosis, for late and missing steps) name neutron-api, whose quick
/// `GET /v2.0/ports` often comes last, for every fault of the control plane once REST calls were
/// traced.
///
/// An RPC reply, likewise, is received by the caller of its call, which held the transaction
/// when it made the call: the reply's own service is the callee that answered. (Measured: with
/// nova-conductor frozen, a create whose `select_destinations` the scheduler had answered was
/// blamed on nova-scheduler.) A reply whose call is not among `steps` is passed over.
pub(crate) fn actor(steps: &[Step]) -> Option<Actor<'_>> {
    let mut index = steps.len();
    while index > 0 {
        index -= 1;
        let step = &steps[index];
        if step.answer {
            let call = step.link.as_deref().and_then(|link| {
                steps[..index]
                    .iter()
                    .rposition(|call| !call.answer && call.link.as_deref() == Some(link))
            });
            if let Some(call) = call
                && let Some(caller) = actor(&steps[..call])
            {
                return Some(Actor {
                    why: "got the reply to",
                    symbol: &steps[call].symbol,
                    ..caller
                });
            }
            continue;
        }
        if !step.symbol.starts_with("rest:") {
            return Some(Actor {
                service: step.service.as_deref(),
                host: step.host.as_deref(),
                why: "received",
                symbol: &step.symbol,
            });
        }
        if let Some(caller) = step.caller.as_deref() {
            return Some(Actor {
                service: Some(caller),
                host: None,
                why: "got the answer to",
                symbol: &step.symbol,
            });
        }
    }
    None
}

/// A request that failed while a request it made failed inside it (nova-api's `POST /servers
/// -> 500` around its `GET /v2/images/{id} -> 502` to a stopped glance-api) failed because of
/// it: the innermost failure keeps the full weight, the one around it a share
/// ([`Weights::failed_around`]). (Measured: with glance-api stopped, both weighed the same and
/// nova-api, which also held the transaction, came first.)
///
/// An RPC reply spans from its call (among `steps`, paired by message id) to itself: the
/// scheduler's `reply:failure:NoValidHost` around placement's `GET /allocation_candidates -> 502`
/// failed because of it.
pub(crate) fn suspect_failures(
    suspicion: &mut Suspicion,
    steps: &[Step],
    failures: &[(usize, &Step)],
) {
    let span = |step: &Step| match step.end_us {
        Some(end) => Some((step.ts_us, end)),
        None if step.answer => {
            let link = step.link.as_deref()?;
            let call = steps
                .iter()
                .find(|call| !call.answer && call.link.as_deref() == Some(link))?;
            Some((call.ts_us, step.ts_us))
        }
        None => None,
    };
    for &(position, step) in failures {
        let inside = failures.iter().find_map(|&(_, other)| {
            let ((start, end), (inner_start, inner_end)) = (span(step)?, span(other)?);
            (other.seq != step.seq && start <= inner_start && inner_end <= end).then_some(other)
        });
        let unanswered = inside
            .is_none()
            .then(|| unanswered_inside(steps, span(step)?))
            .flatten();
        if let Some(call) = unanswered {
            // The component that failed is the one that never answered: a conductor replying
            // `MessagingTimeout` returned the error, but its call to nova-compute is what failed.
            suspicion.add(
                call.service.as_deref(),
                call.host.as_deref(),
                WEIGHTS.failure,
                format!(
                    "never answered `{}`, inside `{}` that failed at step {position}",
                    call.symbol, step.symbol
                ),
            );
            suspicion.add(
                step.service.as_deref(),
                step.host.as_deref(),
                WEIGHTS.failure * WEIGHTS.failed_around,
                format!(
                    "returned `{}` at step {position}, after `{}` went unanswered inside it",
                    step.symbol, call.symbol
                ),
            );
            continue;
        }
        match inside {
            Some(inner) => suspicion.add(
                step.service.as_deref(),
                step.host.as_deref(),
                WEIGHTS.failure * WEIGHTS.failed_around,
                format!(
                    "returned `{}` at step {position}, after `{}` failed inside it",
                    step.symbol, inner.symbol
                ),
            ),
            None => suspicion.add(
                step.service.as_deref(),
                step.host.as_deref(),
                WEIGHTS.failure,
                format!("returned `{}` at step {position}", step.symbol),
            ),
        }
    }
}

/// The first RPC call made within `(start, end)` that never got a reply among `steps`.
fn unanswered_inside(steps: &[Step], (start, end): (i64, i64)) -> Option<&Step> {
    steps.iter().find(|call| {
        call.symbol.starts_with("rpc.call:")
            && start < call.ts_us
            && call.ts_us < end
            && call.link.as_deref().is_some_and(|link| {
                !steps
                    .iter()
                    .any(|reply| reply.answer && reply.link.as_deref() == Some(link))
            })
    })
}
