//! Slow answers: a REST request answered later than the learned bound of its operation, or not
//! answered by then.
//!
//! Step timing ([`crate::normalize::gaps`]) counts from the last activity, and a request that
//! hangs is an activity only once answered: a frozen API called inside another request shows up
//! as nothing at all until it thaws. Answer times close that gap. The store learns how long each
//! operation takes to answer ([`Store::answer_bound`]); a request past its bound is slow, and the
//! request that *held* it is the innermost one in flight when it became slow: `POST /servers` is
//! slow because the `GET /v2/images/{id}` it made to a frozen glance-api has not come back. Both
//! the diagnosis of finished transactions and the live [`crate::Monitor`] (which sees a request
//! when it arrives at the proxy) use this module.

use std::fmt;

use serde::Serialize;

use crate::store::Store;
use crate::suspicion::{Suspicion, WEIGHTS};
use crate::symbol::{Step, answer_key};
use crate::timing::human_us;

/// One REST request of a transaction, answered or still in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// Its symbol as in traces (`nova-api:POST /v2.1/servers`, `rest:glance-api GET …`).
    pub(crate) symbol: String,
    /// Its operation's key in the store's answer times ([`answer_key`]).
    pub(crate) key: String,
    pub(crate) service: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) caller: Option<String>,
    /// When it arrived (µs since the epoch).
    pub(crate) start_us: i64,
    /// When it was answered; `None` while in flight.
    pub(crate) end_us: Option<i64>,
}

impl Request {
    /// The request of a REST step (`None` for other steps and for the user's polls, which
    /// normalization moves to the entry's time).
    pub(crate) fn of_step(step: &Step) -> Option<Request> {
        let end_us = step.end_us?;
        if step.poll {
            return None;
        }
        let service = step.service.as_deref()?;
        let operation = step
            .symbol
            .strip_prefix("rest:")
            .and_then(|rest| rest.strip_prefix(service))
            .or_else(|| step.symbol.strip_prefix(service)?.strip_prefix(':'))?
            .trim_start();
        let operation = operation
            .rsplit_once(" -> ")
            .map_or(operation, |(operation, _)| operation);
        Some(Request {
            symbol: step.symbol.clone(),
            key: answer_key(service, operation),
            service: step.service.clone(),
            host: step.host.clone(),
            caller: step.caller.clone(),
            start_us: step.ts_us,
            end_us: Some(end_us),
        })
    }

    /// Whether it was still waiting for its answer at `at_us`.
    fn in_flight_at(&self, at_us: i64) -> bool {
        self.start_us <= at_us && self.end_us.is_none_or(|end| end > at_us)
    }
}

/// A REST request answered later than its operation's learned bound, or not answered by then.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlowAnswer {
    /// The slow request.
    pub symbol: String,
    /// How long it took to answer, or has waited so far, µs.
    pub took_us: u64,
    /// Whether the answer has come.
    pub answered: bool,
    /// When it passed its bound (µs since the epoch).
    pub overrun_at_us: i64,
    /// Learned bound, µs.
    pub bound_us: u64,
    /// Learned median, µs.
    pub p50_us: u64,
    /// Learned 99th percentile, µs.
    pub p99_us: u64,
    /// The innermost request in flight when it passed its bound, when that is another one: the
    /// request it was waiting on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
}

/// The first request (of `requests`, in flight or answered) to pass its answer bound by
/// `now_us`, and the request that held it then: the innermost request in flight at that moment
/// (the latest to have started since the slow one did; the slow one itself when nothing else was
/// in flight).
pub(crate) fn first_slow<'a>(
    store: &Store,
    requests: impl IntoIterator<Item = &'a Request, IntoIter: Clone>,
    now_us: i64,
) -> Option<(SlowAnswer, &'a Request)> {
    let requests = requests.into_iter();
    let (slow, profile, bound_us, overrun_at_us) = requests
        .clone()
        .filter_map(|request| {
            let (profile, bound_us) = store.answer_bound(&request.key)?;
            let took = request
                .end_us
                .unwrap_or(now_us)
                .saturating_sub(request.start_us);
            let bound = i64::try_from(bound_us).unwrap_or(i64::MAX);
            (took > bound).then(|| {
                (
                    request,
                    profile,
                    bound_us,
                    request.start_us.saturating_add(bound),
                )
            })
        })
        .min_by_key(|(request, _, _, overrun)| (*overrun, request.start_us))?;
    let holder = requests
        .filter(|other| other.start_us >= slow.start_us && other.in_flight_at(overrun_at_us))
        .max_by_key(|other| other.start_us)
        .unwrap_or(slow);
    let took_us = slow.end_us.unwrap_or(now_us).saturating_sub(slow.start_us);
    let answer = SlowAnswer {
        symbol: slow.symbol.clone(),
        took_us: u64::try_from(took_us).unwrap_or(0),
        answered: slow.end_us.is_some(),
        overrun_at_us,
        bound_us,
        p50_us: profile.p50().unwrap_or(0),
        p99_us: profile.p99().unwrap_or(0),
        held_by: (holder != slow).then(|| holder.symbol.clone()),
    };
    Some((answer, holder))
}

/// Suspects the service serving the request that held a slow answer, and the one that sent it.
pub(crate) fn suspect_holder(suspicion: &mut Suspicion, slow: &SlowAnswer, holder: &Request) {
    let why = if slow.held_by.is_some() {
        format!(
            "serves `{}`, which was in flight inside the slow `{}`",
            holder.symbol, slow.symbol
        )
    } else if slow.answered {
        format!("serves `{}`, answered only after its bound", holder.symbol)
    } else {
        format!("serves `{}`, unanswered past its bound", holder.symbol)
    };
    suspicion.add(
        holder.service.as_deref(),
        holder.host.as_deref(),
        WEIGHTS.holder,
        why,
    );
    suspicion.add(
        holder.caller.as_deref(),
        None,
        WEIGHTS.holder_caller,
        format!("sent `{}` and waits on it", holder.symbol),
    );
}

impl fmt::Display for SlowAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let took = if self.answered {
            format!("answered after {}", human_us(self.took_us))
        } else {
            format!("not answered after {}", human_us(self.took_us))
        };
        write!(
            f,
            "slow answer `{}`: {took}, bound {} (p50 {}, p99 {})",
            self.symbol,
            human_us(self.bound_us),
            human_us(self.p50_us),
            human_us(self.p99_us)
        )?;
        if let Some(holder) = &self.held_by {
            write!(f, ", held by `{holder}`")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timing::LatencyProfile;

    fn store() -> Store {
        let mut store = Store::default();
        for (key, us) in [
            ("nova-api POST /v2.1/servers", 100_000),
            ("glance-api GET /v2/images/{id}", 20_000),
            ("keystone GET /v3/auth/tokens", 5_000),
        ] {
            let mut profile = LatencyProfile::default();
            for _ in 0..20 {
                profile.record(us);
            }
            store.answers.insert(key.to_owned(), profile);
        }
        store
    }

    fn request(
        symbol: &str,
        key: &str,
        service: &str,
        start_us: i64,
        end_us: Option<i64>,
    ) -> Request {
        Request {
            symbol: symbol.to_owned(),
            key: key.to_owned(),
            service: Some(service.to_owned()),
            host: Some("controller".to_owned()),
            caller: None,
            start_us,
            end_us,
        }
    }

    #[test]
    fn rest_steps_give_their_operation_key() {
        let entry = Step {
            symbol: "nova-api:POST /v2.1/servers -> 403".to_owned(),
            service: Some("nova-api".to_owned()),
            end_us: Some(10),
            ..Step::default()
        };
        assert_eq!(
            Request::of_step(&entry).unwrap().key,
            "nova-api POST /v2.1/servers"
        );
        let nested = Step {
            symbol: "rest:glance-api GET /v2/images/{id}".to_owned(),
            service: Some("glance-api".to_owned()),
            end_us: Some(10),
            ..Step::default()
        };
        assert_eq!(
            Request::of_step(&nested).unwrap().key,
            "glance-api GET /v2/images/{id}"
        );
        let poll = Step {
            poll: true,
            ..nested.clone()
        };
        assert_eq!(Request::of_step(&poll), None);
        let rpc = Step {
            symbol: "rpc.cast:conductor.build_instances".to_owned(),
            service: Some("nova-conductor".to_owned()),
            ..Step::default()
        };
        assert_eq!(Request::of_step(&rpc), None);
    }

    /// Regression (issue 6, freeze-glance): the user's request is slow because the glance call
    /// inside it hangs; glance is to blame, live and afterwards.
    #[test]
    fn the_innermost_request_in_flight_holds_a_slow_answer() {
        let store = store();
        let post = |end| {
            request(
                "nova-api:POST /v2.1/servers",
                "nova-api POST /v2.1/servers",
                "nova-api",
                0,
                end,
            )
        };
        let token = request(
            "rest:keystone GET /v3/auth/tokens",
            "keystone GET /v3/auth/tokens",
            "keystone",
            10_000,
            Some(15_000),
        );
        let image = |end| {
            request(
                "rest:glance-api GET /v2/images/{id}",
                "glance-api GET /v2/images/{id}",
                "glance-api",
                200_000,
                end,
            )
        };
        // Live: both in flight; the POST's bound (1.1 s) passes before the lookup's (1.02 s
        // after it started at 0.2 s), and the lookup holds it.
        let live = [post(None), image(None)];
        assert_eq!(first_slow(&store, &live, 1_000_000), None);
        let (slow, holder) = first_slow(&store, &live, 1_150_000).unwrap();
        assert_eq!(slow.symbol, "nova-api:POST /v2.1/servers");
        assert!(!slow.answered);
        assert_eq!(slow.took_us, 1_150_000);
        assert_eq!(holder.service.as_deref(), Some("glance-api"));
        // Later the lookup is slow too; the POST still passed its bound first.
        let (slow, holder) = first_slow(&store, &live, 3_000_000).unwrap();
        assert_eq!(slow.symbol, "nova-api:POST /v2.1/servers");
        assert_eq!(holder.service.as_deref(), Some("glance-api"));
        // Afterwards: the same, read from answer times; the quick token check held nothing.
        let done = [post(Some(20_000_000)), token, image(Some(19_900_000))];
        let (slow, holder) = first_slow(&store, &done, 30_000_000).unwrap();
        assert!(slow.answered);
        assert_eq!(
            slow.held_by.as_deref(),
            Some("rest:glance-api GET /v2/images/{id}")
        );
        assert_eq!(holder.service.as_deref(), Some("glance-api"));
        assert!(slow.to_string().contains("held by"), "{slow}");
    }

    #[test]
    fn a_request_with_nothing_in_flight_inside_holds_itself() {
        let store = store();
        let post = request(
            "nova-api:POST /v2.1/servers",
            "nova-api POST /v2.1/servers",
            "nova-api",
            0,
            None,
        );
        let (slow, holder) = first_slow(&store, std::slice::from_ref(&post), 5_000_000).unwrap();
        assert_eq!(slow.held_by, None);
        assert_eq!(holder, &post);
        // Unknown operations are never slow: there is nothing to compare with.
        let unknown = request(
            "rest:cinder-api GET /v3/volumes",
            "cinder-api GET /v3/volumes",
            "cinder-api",
            0,
            None,
        );
        assert_eq!(first_slow(&store, &[unknown], 500_000_000), None);
    }
}
