//! The history on the real local PostgreSQL (127.0.0.1:5432, trust auth; `scripts/setup` starts
//! it). Each test creates its own database and drops it afterwards.

mod common;

use history::Store;
use history::store::Location;

#[path = "common/pg.rs"]
mod pg;

/// A database of its own and its location.
struct Database {
    _db: pg::Database,
    location: Location,
}

impl Database {
    fn new() -> Database {
        let db = pg::Database::new("butterfly_history_test");
        let location = Location::parse(&db.url).unwrap();
        Database { _db: db, location }
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
    // Both open a database with no schema yet: the migration lock makes one create it.
    common::two_writers_recording_at_once_both_land(&Database::new().location);
}

/// The SQL of the Grafana dashboard's run-history panels (and its `campaign` variable) runs
/// against a real history and returns rows, with Grafana's macros expanded as Grafana would.
#[test]
fn the_dashboard_history_panels_query_a_real_history() {
    let db = Database::new();
    let mut store = Store::open(&db.location).unwrap();
    for name in ["recorded-boot-storm", "recorded-boot-storm-rerun"] {
        store
            .record(
                &common::report(name),
                &common::labels(&[("build", "4f2c1a9")]),
                None,
                common::now(),
            )
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
