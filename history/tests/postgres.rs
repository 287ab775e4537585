//! The history on the real local PostgreSQL (127.0.0.1:5432, trust auth; `scripts/setup` starts
//! it). Each test creates its own database and drops it afterwards.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use history::store::Location;
use history::{Filter, Labels, Store};

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

/// A database of its own for one test, dropped (with any connection left) when it goes.
struct Database {
    name: String,
    location: Location,
}

impl Database {
    fn new() -> Database {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "butterfly_history_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = postgres::Client::connect(&format!("{SERVER}/postgres"), postgres::NoTls)
            .expect("PostgreSQL on 127.0.0.1:5432 (run scripts/setup)");
        // One statement each: PostgreSQL runs a multi-statement batch as one transaction, and
        // CREATE DATABASE cannot run in one.
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        let location = Location::parse(&format!("{SERVER}/{name}")).unwrap();
        Database { name, location }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut admin) =
            postgres::Client::connect(&format!("{SERVER}/postgres"), postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

#[test]
fn records_lists_and_shows_a_run() {
    common::records_lists_and_shows_a_run(&Database::new().location);
}

#[test]
fn recording_a_run_twice_changes_nothing() {
    common::recording_a_run_twice_changes_nothing(&Database::new().location);
}

#[test]
fn filters_select_runs_by_campaign_label_and_recency() {
    common::filters_select_runs_by_campaign_label_and_recency(&Database::new().location);
}

#[test]
fn a_slower_run_fails_regression_vs_naming_the_figures() {
    common::a_slower_run_fails_regression_vs_naming_the_figures(&Database::new().location);
}

#[test]
fn trends_follow_label_order() {
    common::trends_follow_label_order(&Database::new().location);
}

#[test]
fn an_older_schema_is_migrated_in_place() {
    common::an_older_schema_is_migrated_in_place(&Database::new().location);
}

#[test]
fn two_writers_migrating_and_recording_at_once_both_land() {
    let db = Database::new();
    let base = common::report("recorded-boot-storm");
    // Both open a database with no schema yet: the migration lock makes one create it.
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let location = db.location.clone();
            let base = base.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&location).unwrap();
                for n in 0..10 {
                    store
                        .record(
                            &common::variant(&base, n, i64::from(n), 1.0),
                            &Labels::new(),
                            None,
                            common::now(),
                        )
                        .unwrap();
                    store
                        .record(
                            &common::variant(&base, 100 + w * 100 + n, 0, 1.0),
                            &Labels::new(),
                            None,
                            common::now(),
                        )
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut store = Store::open(&db.location).unwrap();
    let runs = store.runs(&Filter::default()).unwrap();
    assert_eq!(runs.len(), 30, "10 shared runs once, 10 of each writer");
    let expected = history::figures::of_report(&base).len();
    let ids: Vec<String> = runs.into_iter().map(|r| r.run_id).collect();
    for (id, figures) in store.figures(&ids).unwrap() {
        assert_eq!(figures.len(), expected, "{id} is complete");
    }
}
