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

/// The SQL of the Grafana dashboard's run-history panels (and its `campaign` variable) runs
/// against a real history and returns rows, with Grafana's macros expanded as Grafana would.
#[test]
fn the_dashboard_history_panels_query_a_real_history() {
    let db = Database::new();
    let mut store = Store::open(&db.location).unwrap();
    for name in ["recorded-boot-storm", "recorded-boot-storm-rerun"] {
        store
            .record(&common::report(name), &common::labels(&[("build", "4f2c1a9")]), None, common::now())
            .unwrap();
    }
    drop(store);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dashboards/grafana.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            if let Some(sql) = target["rawSql"].as_str() {
                queries.push((panel["title"].as_str().unwrap().to_owned(), sql.to_owned()));
            }
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if variable["datasource"]["type"] == "grafana-postgresql-datasource" {
            queries.push((
                format!("variable {}", variable["name"]),
                variable["definition"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert!(queries.len() >= 7, "{queries:?}");
    let time_filter = expand_time_filter();
    let Location::Postgres(url) = &db.location else {
        unreachable!()
    };
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    for (title, sql) in queries {
        let sql = time_filter(&sql).replace("$campaign", "'boot-storm'");
        let rows = client
            .query(sql.as_str(), &[])
            .unwrap_or_else(|e| panic!("{title}: {e}\n{sql}"));
        assert!(!rows.is_empty(), "{title} returns no rows:\n{sql}");
    }
}

/// Expands `$__timeFilter(EXPR)` to a range of the last 10 years, as Grafana's PostgreSQL
/// source does for the panel's time range.
fn expand_time_filter() -> impl Fn(&str) -> String {
    |sql: &str| {
        let mut out = String::new();
        let mut rest = sql;
        while let Some(start) = rest.find("$__timeFilter(") {
            out.push_str(&rest[..start]);
            let after = &rest[start + "$__timeFilter(".len()..];
            // The argument ends at the parenthesis that closes the macro.
            let mut depth = 1;
            let end = after
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .expect("a closed macro");
            let expr = &after[..end];
            out.push_str(&format!(
                "{expr} BETWEEN '2020-01-01T00:00:00Z' AND '2030-01-01T00:00:00Z'"
            ));
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }
}
