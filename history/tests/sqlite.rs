//! The history on a real SQLite file (the default backend).

mod common;

use history::store::Location;
use history::{Filter, Labels, Store};
use proptest::prelude::*;

fn fresh() -> (tempfile::TempDir, Location) {
    let dir = tempfile::tempdir().unwrap();
    let location = Location::beside(dir.path());
    (dir, location)
}

#[test]
fn records_lists_and_shows_a_run() {
    let (_dir, location) = fresh();
    common::records_lists_and_shows_a_run(&location);
}

#[test]
fn recording_a_run_twice_changes_nothing() {
    let (_dir, location) = fresh();
    common::recording_a_run_twice_changes_nothing(&location);
}

#[test]
fn filters_select_runs_by_campaign_label_and_recency() {
    let (_dir, location) = fresh();
    common::filters_select_runs_by_campaign_label_and_recency(&location);
}

#[test]
fn a_slower_run_fails_regression_vs_naming_the_figures() {
    let (_dir, location) = fresh();
    common::a_slower_run_fails_regression_vs_naming_the_figures(&location);
}

#[test]
fn trends_follow_label_order() {
    let (_dir, location) = fresh();
    common::trends_follow_label_order(&location);
}

#[test]
fn an_older_schema_is_migrated_in_place() {
    let (_dir, location) = fresh();
    common::an_older_schema_is_migrated_in_place(&location);
}

#[test]
fn a_newer_schema_is_refused_rather_than_written() {
    let (dir, location) = fresh();
    drop(Store::open(&location).unwrap());
    let raw = rusqlite::Connection::open(dir.path().join("history.sqlite")).unwrap();
    raw.execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    drop(raw);
    let error = Store::open(&location).unwrap_err().to_string();
    assert!(
        error.contains("version 99") && error.contains("newer"),
        "{error}"
    );
}

#[test]
fn the_location_is_a_path_a_sqlite_url_or_a_postgres_url() {
    assert_eq!(
        Location::parse("runs/h.sqlite").unwrap(),
        Location::Sqlite("runs/h.sqlite".into())
    );
    assert_eq!(
        Location::parse("sqlite:/tmp/h.db").unwrap(),
        Location::Sqlite("/tmp/h.db".into())
    );
    assert!(matches!(
        Location::parse("postgresql://u:secret@db/history").unwrap(),
        Location::Postgres(_)
    ));
    let error = Location::parse("mysql://u:secret@db/history")
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("postgres://") && !error.contains("secret"),
        "{error}"
    );
    assert_eq!(
        Location::parse("postgres://u:secret@db/h")
            .unwrap()
            .display(),
        userinput::echo::redact_url("postgres://u:secret@db/h")
    );
}

#[test]
fn two_writers_recording_at_once_both_land() {
    let (_dir, location) = fresh();
    common::two_writers_recording_at_once_both_land(&location);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn importing_in_any_order_any_number_of_times_equals_importing_once(
        order in proptest::collection::vec(0usize..4, 1..12),
    ) {
        let names = ["run", "baseline-run", "recorded-boot-storm", "recorded-boot-storm-rerun"];
        let (_a, once) = fresh();
        let (_b, repeated) = fresh();
        let mut once_store = Store::open(&once).unwrap();
        let mut distinct: Vec<usize> = order.clone();
        distinct.sort();
        distinct.dedup();
        for i in &distinct {
            once_store.import(&common::fixture(names[*i]), &Labels::new(), common::now()).unwrap();
        }
        let mut repeated_store = Store::open(&repeated).unwrap();
        for i in &order {
            repeated_store.import(&common::fixture(names[*i]), &Labels::new(), common::now()).unwrap();
        }
        prop_assert_eq!(common::counts(&mut once_store), common::counts(&mut repeated_store));
        let strip = |runs: Vec<history::RunSummary>| -> Vec<(String, Labels)> {
            runs.into_iter().map(|r| (r.run_id, r.labels)).collect()
        };
        prop_assert_eq!(
            strip(once_store.runs(&Filter::default()).unwrap()),
            strip(repeated_store.runs(&Filter::default()).unwrap())
        );
    }
}
