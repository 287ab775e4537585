//! `synthetic-accuracy RUN_DIR [FAULTS] [SEED]`: scripted faults over a fault-free run's recorded
//! engine inputs, scored as a testbed run; prints a Markdown table per pattern and detector.
//! Run by `bench/synthetic-accuracy`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;

use fingerprint::Store;
use fingerprint::engine::{read_inputs, read_setup};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use synthetic::{Bench, Case, CaseResult, Fault, Pattern};
use tracer::event::EventKind;

const S: i64 = 1_000_000;
/// Fault-free traffic the engine learns from before the first case may begin.
const LEARN_US: i64 = 60 * S;
/// Fault-free traffic scored before each fault.
const BEFORE_US: i64 = 20 * S;
/// Recovery scored after each fault.
const RECOVERY_US: i64 = 30 * S;
/// The scoring grace after a revert, as the testbed campaigns use it.
const GRACE_S: f64 = 30.0;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(run_dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: synthetic-accuracy RUN_DIR [FAULTS] [SEED]");
        std::process::exit(2);
    };
    let total: usize = args
        .next()
        .map_or(2100, |n| n.parse().expect("FAULTS is a number"));
    let seed: u64 = args
        .next()
        .map_or(17, |n| n.parse().expect("SEED is a number"));
    let fail = |what: String| -> ! {
        eprintln!("synthetic-accuracy: {what}");
        std::process::exit(2)
    };
    let setup = read_setup(&run_dir.join("engine.json")).unwrap_or_else(|e| fail(e.to_string()));
    let store =
        Store::load(&run_dir.join("engine-store.json")).unwrap_or_else(|e| fail(e.to_string()));
    let inputs =
        read_inputs(&run_dir.join("engine-input.jsonl")).unwrap_or_else(|e| fail(e.to_string()));
    let recorded = inputs.len();
    let bench = Bench::new(setup.clone(), store.clone(), inputs.clone());
    let (first, last) = bench
        .span_us()
        .unwrap_or_else(|| fail("the recording is empty".into()));

    // The reference: the recording fed once, fault-free, at full speed.
    let began = Instant::now();
    let mut engine = setup
        .engine(store)
        .unwrap_or_else(|| fail("the setup names no detector".into()));
    let mut reference_alarms = 0;
    for input in &inputs {
        reference_alarms += engine.feed(input).len();
    }
    let reference = began.elapsed().as_secs_f64();

    // Targets, from the traffic itself.
    let mut rpc = BTreeSet::new();
    let mut rest = BTreeSet::new();
    let mut hosted = BTreeSet::new();
    for event in bench.events() {
        let Some(service) = &event.service else {
            continue;
        };
        match event.kind {
            EventKind::RpcReply => {
                rpc.insert(service.clone());
            }
            EventKind::RestRequest => {
                rest.insert(service.clone());
            }
            EventKind::RpcCall | EventKind::RpcCast => {
                if let Some(host) = &event.host {
                    hosted.insert((service.clone(), host.clone()));
                }
            }
            _ => {}
        }
    }
    let rpc: Vec<String> = rpc.into_iter().collect();
    let rest: Vec<String> = rest.into_iter().collect();
    let hosted: Vec<(String, String)> = hosted.into_iter().collect();
    let any: Vec<String> = rpc.iter().chain(&rest).cloned().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let kinds = [
        "silent",
        "silent-host",
        "late-replies",
        "rest-5xx",
        "broker-drop",
        "error-replies",
        "overlap",
    ];
    let pattern = |kind: &str, rng: &mut ChaCha8Rng| -> (Pattern, i64) {
        let duration = rng.gen_range(10..=30) * S;
        let pick = |list: &[String], rng: &mut ChaCha8Rng| {
            list.choose(rng).cloned().expect("the traffic has targets")
        };
        let pattern = match kind {
            "silent" => Pattern::Silent {
                service: pick(&any, rng),
                host: None,
            },
            "silent-host" => {
                let (service, host) = hosted.choose(rng).cloned().expect("hosted services");
                Pattern::Silent {
                    service,
                    host: Some(host),
                }
            }
            "late-replies" => Pattern::Late {
                service: pick(&any, rng),
                delay_us: rng.gen_range(3..=15) * S,
            },
            "rest-5xx" => Pattern::RestErrors {
                service: pick(&rest, rng),
                status: *[500u16, 503].choose(rng).expect("statuses"),
            },
            "broker-drop" => return (Pattern::BrokerDrop, rng.gen_range(5..=20) * S),
            _ => Pattern::ErrorReplies {
                service: pick(&rpc, rng),
            },
        };
        (pattern, duration)
    };
    let per_kind = total.div_ceil(kinds.len());
    let mut cases = Vec::new();
    for kind in kinds {
        for _ in 0..per_kind {
            let (mut faults, name) = if kind == "overlap" {
                let single = &kinds[..kinds.len() - 1];
                let (a, b) = loop {
                    let a = *single.choose(&mut rng).expect("kinds");
                    let b = *single.choose(&mut rng).expect("kinds");
                    if a != b {
                        break (a, b);
                    }
                };
                let (first_pattern, first_duration) = pattern(a, &mut rng);
                let (second_pattern, second_duration) = pattern(b, &mut rng);
                let lag = rng.gen_range(0..=10) * S;
                (
                    vec![
                        Fault {
                            pattern: first_pattern,
                            from_us: 0,
                            until_us: first_duration,
                        },
                        Fault {
                            pattern: second_pattern,
                            from_us: lag,
                            until_us: lag + second_duration,
                        },
                    ],
                    "overlap".to_owned(),
                )
            } else {
                let (pattern, duration) = pattern(kind, &mut rng);
                (
                    vec![Fault {
                        pattern,
                        from_us: 0,
                        until_us: duration,
                    }],
                    kind.to_owned(),
                )
            };
            let length = faults.iter().map(|f| f.until_us).max().unwrap_or(0);
            let latest = last - RECOVERY_US - length - BEFORE_US;
            let earliest = first + LEARN_US;
            if latest <= earliest {
                fail("the recording is too short for a case".into());
            }
            let scored_from = rng.gen_range(earliest..latest);
            let from = scored_from + BEFORE_US;
            for fault in &mut faults {
                fault.from_us += from;
                fault.until_us += from;
            }
            cases.push(Case {
                name,
                faults,
                scored_from_us: scored_from,
                scored_until_us: from + length + RECOVERY_US,
            });
        }
    }
    let count = cases.len();
    let began = Instant::now();
    let outcomes = bench.run(cases);
    let took = began.elapsed().as_secs_f64();

    println!(
        "Synthetic accuracy: {count} cases ({per_kind} per pattern, seed {seed}) over {} ({recorded} recorded inputs, {:.0} s of traffic)",
        run_dir.display(),
        (last - first) as f64 / 1e6
    );
    println!(
        "Replayed in {took:.1} s ({:.0} cases/s); reference: the recording fed once fault-free in {reference:.2} s ({reference_alarms} alarm(s)); ratio {:.1}× the reference per case",
        count as f64 / took,
        took / count as f64 / reference
    );
    println!();
    println!(
        "| pattern | detector | faults | detected | top-1 | top-3 | mean TTD (s) | max TTD (s) | false alarms/h |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    let percent = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.0} %", v * 100.0));
    let seconds = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.1}"));
    let mut names: Vec<&str> = kinds.to_vec();
    names.push("all");
    for name in names {
        let chosen: Vec<&CaseResult> = outcomes
            .iter()
            .filter(|o| name == "all" || o.case.name == name)
            .collect();
        for score in bench.score(&chosen, GRACE_S) {
            println!(
                "| {name} | {} | {} | {} ({}) | {} | {} | {} | {} | {} |",
                score.detector,
                score.faults,
                score.detected_faults,
                percent(score.recall),
                percent(score.localization_top1),
                percent(score.localization_top3),
                seconds(score.mean_time_to_detect_s),
                seconds(score.max_time_to_detect_s),
                score
                    .false_alarms_per_hour
                    .map_or("–".to_owned(), |v| format!("{v:.1}")),
            );
        }
    }
}
