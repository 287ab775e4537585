//! How long rendering and scoring take for the recorded run (3 repetitions, 9 hypotheses, 10
//! alarms): `cargo bench -p reports --bench render`.

use criterion::{Criterion, criterion_group, criterion_main};

fn recorded_run() -> reports::Report {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/run/report.json"
    ))
    .expect("fixture");
    reports::Report::from_json(&text).expect("valid fixture")
}

fn benches(c: &mut Criterion) {
    let report = recorded_run();
    let text = report.to_json();
    c.bench_function("parse_and_check_report_json", |b| {
        b.iter(|| reports::Report::from_json(&text).unwrap())
    });
    c.bench_function("render_html", |b| {
        b.iter(|| reports::html::render(&report).unwrap())
    });
    c.bench_function("render_junit", |b| {
        b.iter(|| reports::junit::render(&report).unwrap())
    });
    c.bench_function("render_markdown", |b| {
        b.iter(|| reports::markdown::render(&report))
    });
    c.bench_function("rescore", |b| b.iter(|| report.rescore()));
}

criterion_group!(render, benches);
criterion_main!(render);
