//! What every backend must do, written once; `sqlite.rs` and `postgres.rs` run it against a real
//! SQLite file and a real PostgreSQL database.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use history::store::Location;
use history::{Filter, Labels, Recorded, Store};
use jiff::Timestamp;
use reports::model::Report;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../reports/tests/fixtures")
        .join(name)
}

pub fn report(name: &str) -> Report {
    reports::read_run(&fixture(name)).unwrap()
}

pub fn now() -> Timestamp {
    "2026-12-01T00:00:00Z".parse().unwrap()
}

/// A copy of `base` as another run: its own id, started `hours` later, every command's latency
/// multiplied by `latency`.
pub fn variant(base: &Report, n: u32, hours: i64, latency: f64) -> Report {
    let mut r = base.clone();
    r.run_id = format!("{}-v{n}", base.run_id);
    let shift = jiff::SignedDuration::from_hours(hours);
    r.started_at = base.started_at.checked_add(shift).unwrap();
    r.finished_at = base.finished_at.checked_add(shift).unwrap();
    for e in &mut r.experiments {
        for rep in &mut e.repetitions {
            for w in &mut rep.workload {
                for c in std::iter::once(&mut w.total).chain(&mut w.commands) {
                    if let Some(p) = &mut c.latency_ms {
                        p.p50 *= latency;
                        p.p95 *= latency;
                        p.p99 *= latency;
                    }
                }
            }
        }
    }
    r
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Row counts of every table, the state two histories are compared by.
pub fn counts(store: &mut Store) -> Vec<(String, usize)> {
    let runs = store.runs(&Filter::default()).unwrap();
    let ids: Vec<String> = runs.iter().map(|r| r.run_id.clone()).collect();
    let figures = store.figures(&ids).unwrap();
    let mut out = vec![("runs".to_owned(), runs.len())];
    for (id, f) in figures {
        out.push((id, f.len()));
    }
    out
}

pub fn records_lists_and_shows_a_run(location: &Location) {
    let mut store = Store::open(location).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        history::store::SCHEMA_VERSION
    );
    let run = report("run");
    let added = store
        .record(
            &run,
            &labels(&[("build", "abc123")]),
            Some(Path::new("/runs/x")),
            now(),
        )
        .unwrap();
    assert_eq!(added, Recorded::Added);
    let runs = store.runs(&Filter::default()).unwrap();
    assert_eq!(runs.len(), 1);
    let summary = &runs[0];
    assert_eq!(summary.run_id, run.run_id);
    assert_eq!(summary.campaign, "nova-resilience");
    assert!(!summary.passed);
    assert_eq!(summary.labels["release"], "2025.2", "from the report");
    assert_eq!(summary.labels["deployer"], "local");
    assert_eq!(summary.labels["build"], "abc123");
    let detail = store.show(&run.run_id).unwrap();
    let repetitions: usize = run.experiments.iter().map(|e| e.repetitions.len()).sum();
    assert_eq!(detail.repetitions.len(), repetitions);
    assert!(detail.repetitions.iter().all(|r| !r.faults.is_empty()));
    assert_eq!(detail.figures, history::figures::of_report(&run));
    assert!(
        detail
            .figures
            .iter()
            .any(|f| f.name == "detector.fingerprint.f1"),
        "{:?}",
        detail.figures
    );
    assert!(matches!(
        store.show("no-such-run"),
        Err(history::Error::NoSuchRun(_))
    ));
}

pub fn recording_a_run_twice_changes_nothing(location: &Location) {
    let mut store = Store::open(location).unwrap();
    let run = report("baseline-run");
    assert_eq!(
        store.record(&run, &Labels::new(), None, now()).unwrap(),
        Recorded::Added
    );
    let before = counts(&mut store);
    let again = store
        .record(&run, &labels(&[("release", "other")]), None, now())
        .unwrap();
    assert_eq!(again, Recorded::AlreadyPresent);
    assert_eq!(counts(&mut store), before);
    let runs = store.runs(&Filter::default()).unwrap();
    assert_eq!(
        runs[0].labels["release"], "2025.1",
        "the first recording stands"
    );
}

pub fn filters_select_runs_by_campaign_label_and_recency(location: &Location) {
    let mut store = Store::open(location).unwrap();
    let base = report("baseline-run");
    for n in 0..4 {
        let release = if n % 2 == 0 { "2025.1" } else { "2025.2" };
        store
            .record(
                &variant(&base, n, i64::from(n), 1.0),
                &labels(&[("release", release)]),
                None,
                now(),
            )
            .unwrap();
    }
    store
        .record(&report("recorded-boot-storm"), &Labels::new(), None, now())
        .unwrap();
    let ids = |filter: &Filter, store: &mut Store| -> Vec<String> {
        store
            .runs(filter)
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect()
    };
    let campaign = Filter {
        campaign: Some("nova-resilience".into()),
        ..Filter::default()
    };
    assert_eq!(ids(&campaign, &mut store).len(), 4);
    let release = Filter {
        labels: labels(&[("release", "2025.2")]),
        ..campaign.clone()
    };
    let got = ids(&release, &mut store);
    assert_eq!(
        got,
        vec![format!("{}-v1", base.run_id), format!("{}-v3", base.run_id)]
    );
    let last = Filter {
        last: Some(2),
        ..campaign
    };
    assert_eq!(
        ids(&last, &mut store),
        vec![format!("{}-v2", base.run_id), format!("{}-v3", base.run_id)],
        "the most recent two, oldest first"
    );
}

pub fn a_slower_run_fails_regression_vs_naming_the_figures(location: &Location) {
    let mut store = Store::open(location).unwrap();
    let base = report("baseline-run");
    let release = labels(&[("release", "2025.1")]);
    for (n, factor) in [1.0, 1.05, 0.97, 1.02, 1.01].into_iter().enumerate() {
        store
            .record(
                &variant(&base, n as u32, n as i64, factor),
                &release,
                None,
                now(),
            )
            .unwrap();
    }
    // A run of another release, far slower, must not widen the spread.
    store
        .record(
            &variant(&base, 90, 3, 9.0),
            &labels(&[("release", "2024.2")]),
            None,
            now(),
        )
        .unwrap();
    let same = variant(&base, 10, 10, 1.03);
    let judged = history::gate::regression_vs(&mut store, &same, 5, &release).unwrap();
    assert_eq!(judged.compared.len(), 5);
    assert!(judged.regressions.is_empty(), "{:?}", judged.regressions);

    let slow = variant(&base, 11, 11, 1.5);
    let judged = history::gate::regression_vs(&mut store, &slow, 5, &release).unwrap();
    assert!(!judged.regressions.is_empty());
    assert!(
        judged
            .regressions
            .iter()
            .all(|r| r.figure.starts_with("latency.")),
        "only latencies changed: {:?}",
        judged.regressions
    );
    let message = judged.regressions[0].describe();
    assert!(
        message.contains("above the last 5 comparable run(s)"),
        "{message}"
    );

    let none = history::gate::regression_vs(&mut store, &slow, 5, &labels(&[("release", "1999")]))
        .unwrap();
    assert!(none.compared.is_empty() && none.regressions.is_empty());
}

pub fn trends_follow_label_order(location: &Location) {
    let mut store = Store::open(location).unwrap();
    let base = report("baseline-run");
    // Recorded out of release order: the trend puts 2024.2 first.
    for (n, release, factor) in [(0, "2025.2", 1.2), (1, "2024.2", 1.0), (2, "2025.1", 1.1)] {
        store
            .record(
                &variant(&base, n, i64::from(n), factor),
                &labels(&[("release", release)]),
                None,
                now(),
            )
            .unwrap();
    }
    let trends = history::trends::Trends::load(
        &mut store,
        &Filter::default(),
        Some("kill-nova-conductor"),
        Some("release"),
    )
    .unwrap();
    let names: Vec<String> = trends.runs.iter().map(|r| trends.run_name(r)).collect();
    assert_eq!(names, ["2024.2", "2025.1", "2025.2"]);
    assert_eq!(
        trends.series.keys().collect::<Vec<_>>(),
        ["kill-nova-conductor"]
    );
    let p95 = &trends.series["kill-nova-conductor"]["latency.fault.*.p95_ms"];
    let values: Vec<f64> = p95.values.iter().map(|v| v.unwrap()).collect();
    assert!(values[0] < values[1] && values[1] < values[2], "{values:?}");
}

pub fn an_older_schema_is_migrated_in_place(location: &Location) {
    {
        // A database left by a build that knew only the first migration, with a run in it.
        let mut store = Store::open_at_version(location, 1).unwrap();
        assert_eq!(store.schema_version().unwrap(), 1);
        store
            .record(&report("run"), &Labels::new(), None, now())
            .unwrap();
    }
    let mut store = Store::open(location).unwrap();
    assert_eq!(
        store.schema_version().unwrap(),
        history::store::SCHEMA_VERSION
    );
    let runs = store.runs(&Filter::default()).unwrap();
    assert_eq!(runs.len(), 1, "the run recorded before the upgrade is kept");
    store
        .record(&report("baseline-run"), &Labels::new(), None, now())
        .unwrap();
    assert_eq!(store.runs(&Filter::default()).unwrap().len(), 2);
}

/// Two threads, each with its own connection, record 10 shared runs and 10 of their own.
pub fn two_writers_recording_at_once_both_land(location: &Location) {
    let base = report("recorded-boot-storm");
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let location = location.clone();
            let base = base.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&location).unwrap();
                for n in 0..10 {
                    for run in [
                        variant(&base, n, i64::from(n), 1.0),
                        variant(&base, 100 + w * 100 + n, 0, 1.0),
                    ] {
                        store.record(&run, &Labels::new(), None, now()).unwrap();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut store = Store::open(location).unwrap();
    let runs = store.runs(&Filter::default()).unwrap();
    assert_eq!(runs.len(), 30, "10 shared runs once, 10 of each writer");
    let expected = history::figures::of_report(&base).len();
    let ids: Vec<String> = runs.into_iter().map(|r| r.run_id).collect();
    for (id, figures) in store.figures(&ids).unwrap() {
        assert_eq!(figures.len(), expected, "{id} is complete");
    }
}
