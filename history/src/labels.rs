//! The labels of a recorded run: what the report says about where it ran, then what the user
//! added. Runs are compared and ordered by them (`label=release=2025.1`, `--order-by release`).

use std::collections::BTreeMap;

use reports::model::Report;

use crate::Error;

/// The OpenStack release (from the report when discovered, else `--label release=…`).
pub const RELEASE: &str = "release";
/// How the cloud was deployed (the report's testbed kind unless given: `local`, `devstack`,
/// `kolla`, …).
pub const DEPLOYER: &str = "deployer";
/// The build or commit of the cloud under test (only from the user: `--label build=…`).
pub const BUILD: &str = "build";
/// The butterfly version that ran the campaign (from the report).
pub const BUTTERFLY: &str = "butterfly";

/// Label key to value, sorted by key.
pub type Labels = BTreeMap<String, String>;

/// Parses `KEY=VALUE` arguments (later ones win) with the campaign's label rule.
pub fn parse_all<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<Labels, Error> {
    let mut labels = Labels::new();
    for text in texts {
        let (key, value) = scenarios::labels::parse(text).map_err(Error::Label)?;
        labels.insert(key, value);
    }
    Ok(labels)
}

/// The labels a run is recorded with: those the report implies, overridden by `given`.
pub fn of_run(report: &Report, given: &Labels) -> Labels {
    let mut labels = Labels::new();
    let testbed = &report.environment.testbed;
    if let Some(release) = &testbed.openstack_release {
        labels.insert(RELEASE.to_owned(), release.clone());
    }
    labels.insert(DEPLOYER.to_owned(), testbed.kind.clone());
    labels.insert(
        BUTTERFLY.to_owned(),
        report.environment.butterfly_version.clone(),
    );
    labels.extend(given.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}
