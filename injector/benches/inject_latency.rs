//! Benchmark (not a test): latency from "inject now" to "verified in effect" on a warm SSH
//! connection, for process-kill and service-stop, against the local testbed (compute1).
//! Prints p50/p99 next to the warm round trip of `true` on the same connection.
//!
//! Run: `cargo bench -p injector --bench inject_latency` (needs `butterfly testbed up --hosts-only`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::*;
use scenarios::fault::{Fault, Signal};

const ROUNDS: usize = 40;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p / 100.0).round() as usize;
    samples[index]
}

/// Prepares (preflight, journal, dead-man: not timed, as a runner does ahead of the trigger),
/// then fires; returns the fire latency and the round trips it took.
fn fire(bench: &Bench, plan: &injector::FaultPlan) -> (injector::Active, u64) {
    let prepared = bench
        .runtime
        .block_on(bench.injector.prepare(plan, Duration::ZERO))
        .expect("prepare");
    let before = bench.injector.connections().commands_run();
    let active = bench
        .runtime
        .block_on(bench.injector.fire(prepared))
        .expect("fire");
    let trips = bench.injector.connections().commands_run() - before;
    (active, trips)
}

fn report(name: &str, samples: &mut [Duration], round_trip: Duration) {
    let p50 = percentile(samples, 50.0);
    let p99 = percentile(samples, 99.0);
    println!(
        "{name:<14} n={:<3} p50 {:>7.2} ms  p99 {:>7.2} ms  (p50 = {:.1} warm round trips)",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        p50.as_secs_f64() / round_trip.as_secs_f64()
    );
}

/// `(round trips, how many times)` pairs.
fn summary(trips: &[u64]) -> Vec<(u64, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for trip in trips {
        *counts.entry(*trip).or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

fn main() {
    if !testbed_dir().join("testbed.json").is_file() {
        eprintln!(
            "inject_latency: the local testbed is not up ({}); nothing measured",
            testbed_dir().display()
        );
        return;
    }
    let host = host("compute1");
    let bench = Bench::new();
    let connections = bench.injector.connections();
    // Warm the connection, then measure bare round trips.
    bench
        .runtime
        .block_on(connections.run(&host, "true"))
        .unwrap();
    let mut trips: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            bench
                .runtime
                .block_on(connections.run(&host, "true"))
                .unwrap();
            start.elapsed()
        })
        .collect();
    let round_trip = percentile(&mut trips, 50.0);
    report("round trip", &mut trips, round_trip);

    let unit = TestUnit::start(&host.name, &tag(), "exec sleep infinity");
    let service = unit.service();
    let mut kills = Vec::new();
    let mut kill_trips = Vec::new();
    for _ in 0..ROUNDS {
        let plan = plan(
            &Fault::ProcessKill {
                signal: Signal::Kill,
                process: None,
            },
            &host,
            Some(&service),
            Duration::from_secs(60),
        );
        let (active, trips) = fire(&bench, &plan);
        kills.push(active.inject_latency);
        kill_trips.push(trips);
        bench.revert(&active);
    }
    report("process-kill", &mut kills, round_trip);
    println!(
        "{:<14} round trips per inject+verify: {:?}",
        "",
        summary(&kill_trips)
    );

    let mut stops = Vec::new();
    let mut stop_trips = Vec::new();
    for _ in 0..ROUNDS {
        let plan = plan(
            &Fault::ServiceStop,
            &host,
            Some(&service),
            Duration::from_secs(60),
        );
        let (active, trips) = fire(&bench, &plan);
        stops.push(active.inject_latency);
        stop_trips.push(trips);
        bench.revert(&active);
    }
    report("service-stop", &mut stops, round_trip);
    println!(
        "{:<14} round trips per inject+verify: {:?}",
        "",
        summary(&stop_trips)
    );
    drop(unit);
    assert_host_clean(&host.name);
}
