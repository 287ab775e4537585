//! `butterfly history`, `report --trends` and `--gate regression-vs` as separate processes on
//! the real SQLite and the real local PostgreSQL (127.0.0.1:5432, trust auth; a database of its
//! own per test): two writers at once, and a writer killed with SIGKILL in the middle of its
//! writes, leave a consistent history.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use history::store::Location;
use history::{Filter, Store};
use predicates::prelude::*;

fn butterfly() -> Command {
    Command::cargo_bin("butterfly").unwrap()
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("reports/tests/fixtures")
        .join(name)
}

/// `count` run directories under `dir`, copies of the recorded boot-storm run with their own ids
/// and start times (an hour apart), the last ones `slow`× slower.
fn run_dirs(dir: &Path, count: usize, slow: f64) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(fixture("recorded-boot-storm").join("report.json")).unwrap();
    let base = reports::Report::from_json(&text).unwrap();
    (0..count)
        .map(|n| {
            let mut r = base.clone();
            r.run_id = format!("boot-storm-copy-{n:04}");
            let shift = jiff::SignedDuration::from_hours(n as i64);
            r.started_at = base.started_at.checked_add(shift).unwrap();
            r.finished_at = base.finished_at.checked_add(shift).unwrap();
            if n + 1 == count {
                for e in &mut r.experiments {
                    for rep in &mut e.repetitions {
                        for w in &mut rep.workload {
                            for c in std::iter::once(&mut w.total).chain(&mut w.commands) {
                                if let Some(p) = &mut c.latency_ms {
                                    p.p95 *= slow;
                                }
                            }
                        }
                    }
                }
            }
            let run = dir.join(&r.run_id);
            std::fs::create_dir_all(&run).unwrap();
            std::fs::write(run.join("report.json"), r.to_json()).unwrap();
            run
        })
        .collect()
}

/// Every recorded run is complete: as many figures as its report has.
fn assert_consistent(location: &Location, expected_figures: usize) -> usize {
    let mut store = Store::open(location).unwrap();
    let ids: Vec<String> = store
        .runs(&Filter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.run_id)
        .collect();
    for (id, figures) in store.figures(&ids).unwrap() {
        assert_eq!(figures.len(), expected_figures, "{id} was recorded partly");
    }
    ids.len()
}

fn figures_per_run() -> usize {
    history::figures::of_report(&reports::read_run(&fixture("recorded-boot-storm")).unwrap()).len()
}

#[path = "../history/tests/common/pg.rs"]
mod pg;

/// Two `history import` processes over overlapping run directories, started together.
fn two_importers_at_once(history: &str) {
    let dir = tempfile::tempdir().unwrap();
    let runs = run_dirs(dir.path(), 30, 1.0);
    let spawn = |dirs: &[PathBuf]| {
        std::process::Command::new(assert_cmd::cargo::cargo_bin("butterfly"))
            .args(["history", "--history", history, "import"])
            .args(dirs)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The first 20 and the last 20: 10 runs are imported by both.
    let a = spawn(&runs[..20]);
    let b = spawn(&runs[10..]);
    for child in [a, b] {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let location = Location::parse(history).unwrap();
    assert_eq!(assert_consistent(&location, figures_per_run()), 30);
}

/// A `history import` of many runs killed with SIGKILL once some are recorded, at a moment
/// `writing` saw it inside a write transaction: what is recorded is whole, and importing again
/// completes the history.
fn a_killed_importer(history: &str, mut writing: impl FnMut() -> bool) {
    let dir = tempfile::tempdir().unwrap();
    let runs = run_dirs(dir.path(), 80, 1.0);
    let location = Location::parse(history).unwrap();
    drop(Store::open(&location).unwrap());
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("butterfly"))
        .args(["history", "--history", history, "import"])
        .args(&runs)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut store = Store::open(&location).unwrap();
    loop {
        let recorded = store.runs(&Filter::default()).unwrap().len();
        if recorded >= 5 && writing() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the importer was never seen writing"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Right away: a run's transaction lasts milliseconds, the probe's answer microseconds.
    child.kill().unwrap(); // SIGKILL
    drop(store);
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the importer was killed before it finished"
    );
    let recorded = assert_consistent(&location, figures_per_run());
    assert!(recorded < runs.len(), "killed before the end: {recorded}");
    butterfly()
        .args(["history", "--history", history, "import"])
        .args(&runs)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("already recorded").count(recorded))
        .stdout(predicate::str::contains("added ").count(runs.len() - recorded));
    assert_eq!(assert_consistent(&location, figures_per_run()), runs.len());
}

#[test]
fn two_importers_at_once_on_sqlite_both_land() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.sqlite");
    two_importers_at_once(history.to_str().unwrap());
}

#[test]
fn two_importers_at_once_on_postgres_both_land() {
    let db = pg::Database::new("butterfly_cli_history");
    two_importers_at_once(&db.url);
}

#[test]
fn a_killed_importer_leaves_sqlite_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let history = dir.path().join("history.sqlite");
    drop(Store::open(&Location::Sqlite(history.clone())).unwrap());
    let probe = rusqlite::Connection::open(&history).unwrap();
    probe.busy_timeout(Duration::ZERO).unwrap();
    // A writer holds SQLite's write lock from BEGIN IMMEDIATE to COMMIT: while it does, another
    // BEGIN IMMEDIATE without a busy timeout fails at once.
    let writing = move || match probe.execute_batch("BEGIN IMMEDIATE") {
        Ok(()) => {
            probe.execute_batch("ROLLBACK").unwrap();
            false
        }
        Err(_) => true,
    };
    a_killed_importer(history.to_str().unwrap(), writing);
}

#[test]
fn a_killed_importer_leaves_postgres_consistent() {
    let db = pg::Database::new("butterfly_cli_history");
    let mut probe = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    // Another session in a transaction that has written (it has a transaction id).
    let writing = move || {
        let row = probe
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL",
                &[],
            )
            .unwrap();
        row.get::<_, i64>(0) > 0
    };
    a_killed_importer(&db.url, writing);
}

#[test]
fn report_gates_on_the_history_and_names_the_regressed_figures() {
    let dir = tempfile::tempdir().unwrap();
    let runs = run_dirs(dir.path(), 7, 3.0);
    // The default history is the file beside the run directories.
    butterfly()
        .args(["history", "import"])
        .args(&runs)
        .assert()
        .code(0);
    assert!(dir.path().join("history.sqlite").is_file());
    // The sixth run is like the five before it; the seventh's p95 latencies tripled.
    butterfly()
        .args(["report", "--gate", "regression-vs:last=5"])
        .arg(&runs[5])
        .assert()
        .stderr(predicate::str::contains("regression-vs").not());
    butterfly()
        .args(["report", "--gate", "regression-vs:last=5"])
        .arg(&runs[6])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "gate `regression-vs:last=5` failed: kill-conductor: latency.fault.*.p95_ms is",
        ))
        .stderr(predicate::str::contains(
            "above the last 5 comparable run(s)",
        ))
        .stderr(predicate::str::contains("p50_ms").not());
    butterfly()
        .args(["report", "--gate", "regression-vs:label=release=2025.1"])
        .arg(&runs[6])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("has the labels release=2025.1"));
    butterfly()
        .args(["report", "--gate", "regression-vs:label=Release"])
        .arg(&runs[6])
        .assert()
        .code(2);
}

#[test]
fn report_trends_writes_a_self_contained_page() {
    let dir = tempfile::tempdir().unwrap();
    let runs = run_dirs(dir.path(), 3, 2.0);
    let history = dir.path().join("history.sqlite");
    butterfly()
        .args(["history", "import", "--label", "deployer=kolla"])
        .args(&runs)
        .assert()
        .code(0)
        .stdout(predicate::str::contains("added ").count(3));
    let page = dir.path().join("trends.html");
    butterfly()
        .args(["report", "--trends"])
        .arg(&page)
        .arg("--history")
        .arg(&history)
        .args(["--campaign", "boot-storm", "--label", "deployer=kolla"])
        .assert()
        .code(0)
        .stderr(predicate::str::contains("3 run(s), 4 experiment(s)"));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<svg class=\"trend-plot\""));
    butterfly()
        .args(["report", "--label", "deployer=kolla"])
        .arg(&runs[0])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--trends"));
}

#[test]
fn history_commands_print_their_results_and_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let runs = run_dirs(dir.path(), 2, 1.0);
    let history = dir.path().join("history.sqlite");
    let history = history.to_str().unwrap();
    butterfly()
        .args(["history", "--history", history, "import"])
        .args(&runs)
        .assert()
        .code(0);
    butterfly()
        .args(["history", "--history", history, "list"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("boot-storm-copy-0001"));
    butterfly()
        .args([
            "history",
            "--history",
            history,
            "show",
            "boot-storm-copy-0000",
        ])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("kill-conductor #0"));
    butterfly()
        .args(["history", "--history", history, "trends", "--last", "1"])
        .assert()
        .code(0)
        .stdout(predicate::str::starts_with("runs: boot-storm-copy-0001\n"));
    butterfly()
        .args(["history", "--history", history, "show", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no run nope"));
    butterfly()
        .args(["history", "--history", "mysql://u:hunter2@db/h", "list"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("hunter2").not());
    butterfly()
        .args(["history", "--history", history, "import", "--label", "x"])
        .args(&runs)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("KEY=VALUE"));
    // An unreachable PostgreSQL is a setup error that does not print the password.
    butterfly()
        .args([
            "history",
            "--history",
            "postgres://u:hunter2@127.0.0.1:9/h",
            "list",
        ])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("hunter2").not());
}

#[test]
fn run_refuses_a_bad_label_with_exit_2_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("campaign.yaml");
    std::fs::write(
        &file,
        "version: 1\ntestbed:\n  hosts:\n    - name: a\n      address: 127.0.0.1\n      roles: [x]\n  services:\n    - name: s\n      unit: s.service\n      roles: [x]\nexperiments:\n  - name: e\n    fault: {kind: service-stop}\n    target: {service: s}\n    duration: 1s\n",
    )
    .unwrap();
    butterfly()
        .args(["run", "--label", "Release=2025.1", "--run-dir"])
        .arg(dir.path().join("run"))
        .arg(&file)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("label key \"Release\""));
    assert!(!dir.path().join("run").exists());
}
