//! The `regression-vs:last=N,label=K=V` gate: the run against the spread of the last N
//! comparable runs in the history (same campaign, the rule's labels, started before it, and
//! completed: an aborted or interrupted run's figures say how far it got, not how the cloud
//! behaves).

use reports::model::Report;

use crate::labels::Labels;
use crate::stats::{self, Regression};
use crate::store::{Filter, Store};
use crate::{Error, figures};

/// What the gate compared and found.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    /// Ids of the earlier runs compared against, oldest first.
    pub compared: Vec<String>,
    /// Figures worse than their spread.
    pub regressions: Vec<Regression>,
}

/// Compares `report` with the last `last` comparable runs of `store` having every one of
/// `labels`.
pub fn regression_vs(
    store: &mut Store,
    report: &Report,
    last: usize,
    labels: &Labels,
) -> Result<Judgement, Error> {
    let filter = Filter {
        campaign: Some(report.campaign.name.clone()),
        labels: labels.clone(),
        last: Some(last),
        before_us: Some(report.started_at.as_microsecond()),
        except_run: Some(report.run_id.clone()),
        completed_only: true,
    };
    let compared: Vec<String> = store.runs(&filter)?.into_iter().map(|r| r.run_id).collect();
    let earlier: Vec<_> = store.figures(&compared)?.into_values().collect();
    let regressions = stats::regressions(&figures::of_report(report), &earlier);
    Ok(Judgement {
        compared,
        regressions,
    })
}
