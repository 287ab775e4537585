//! Benchmarks: comparisons per second of the bit-parallel Levenshtein against strsim's
//! `generic_levenshtein` on 64-, 256- and 512-symbol traces, and the latency of diagnosing one
//! trace against a store of 10 000 variants. Figures are recorded in BENCHMARKS.md.
//!
//! `cargo bench -p fingerprint --bench distance`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fingerprint::Store;
use fingerprint::distance::{Pattern, levenshtein};
use tracer::event::{Event, EventIds, EventKind, Source, Transaction};

/// Interned alphabet size: a few hundred distinct symbols is what real command trails use.
const ALPHABET: u32 = 300;

/// A small deterministic generator, so every run benchmarks the same inputs.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    fn below(&mut self, bound: u32) -> u32 {
        self.next() % bound
    }
}

fn random_trace(rng: &mut Lcg, len: usize) -> Vec<u32> {
    (0..len).map(|_| rng.below(ALPHABET)).collect()
}

/// `base` with about `edits` random substitutions, insertions and deletions.
fn mutate(rng: &mut Lcg, base: &[u32], edits: usize) -> Vec<u32> {
    let mut out = base.to_vec();
    for _ in 0..edits {
        let position = rng.below(out.len().max(1) as u32) as usize;
        match rng.below(3) {
            0 if !out.is_empty() => out[position] = rng.below(ALPHABET),
            1 => out.insert(position, rng.below(ALPHABET)),
            _ if !out.is_empty() => {
                out.remove(position);
            }
            _ => {}
        }
    }
    out
}

fn comparisons(c: &mut Criterion) {
    let mut group = c.benchmark_group("levenshtein");
    group.throughput(Throughput::Elements(1));
    let mut rng = Lcg(42);
    for len in [64usize, 256, 512] {
        let a = random_trace(&mut rng, len);
        let b = mutate(&mut rng, &a, len / 10);
        let pattern = Pattern::new(&a);
        group.bench_with_input(BenchmarkId::new("pattern", len), &b, |bench, b| {
            bench.iter(|| pattern.distance(black_box(b)))
        });
        group.bench_with_input(BenchmarkId::new("pair", len), &b, |bench, b| {
            bench.iter(|| levenshtein(black_box(&a), black_box(b)))
        });
        group.bench_with_input(BenchmarkId::new("strsim", len), &b, |bench, b| {
            bench.iter(|| strsim::generic_levenshtein(black_box(&a), black_box(b)))
        });
    }
    group.finish();
}

fn transaction(store_symbols: &[u32], id: &str) -> Transaction {
    let events = store_symbols
        .iter()
        .enumerate()
        .map(|(index, &symbol)| Event {
            seq: index as u64,
            ts_us: 1_000_000 + index as i64 * 10_000,
            source: Source::Amqp,
            kind: EventKind::RpcCall,
            service: Some("nova-conductor".to_owned()),
            host: None,
            caller: None,
            operation: format!("op{symbol}"),
            target: None,
            outcome: None,
            duration_us: None,
            ids: EventIds::default(),
            attrs: BTreeMap::new(),
        })
        .collect();
    Transaction {
        id: id.to_owned(),
        command: Some("server create".to_owned()),
        background: false,
        events,
        edges: Vec::new(),
    }
}

fn diagnosis(c: &mut Criterion) {
    let mut rng = Lcg(7);
    let mut store = Store::default();
    let ids: Vec<u32> = (0..ALPHABET)
        .map(|symbol| store.intern(&format!("rpc.call:op{symbol}")))
        .collect();
    let base = random_trace(&mut rng, 64);
    let command = store.command_mut("server create");
    for _ in 0..10_000 {
        let edits = 1 + rng.below(12) as usize;
        let variant: Vec<u32> = mutate(&mut rng, &base, edits)
            .into_iter()
            .map(|symbol| ids[symbol as usize])
            .collect();
        command.push_variant(variant);
    }
    command.push_variant(base.iter().map(|&symbol| ids[symbol as usize]).collect());
    let known = transaction(&base, "req-known");
    let mut group = c.benchmark_group("diagnose_10k_variants");
    group.throughput(Throughput::Elements(1));
    // A normal-looking trace: a few edits away from many stored variants.
    let near = transaction(&mutate(&mut rng, &base, 3), "req-near");
    group.bench_function("near_64", |bench| {
        bench.iter(|| store.diagnose(black_box(&near)))
    });
    // An anomalous trace: far from everything, so the whole store is scanned.
    let far = transaction(&random_trace(&mut rng, 64), "req-far");
    group.bench_function("far_64", |bench| {
        bench.iter(|| store.diagnose(black_box(&far)))
    });
    group.bench_function("exact_64", |bench| {
        bench.iter(|| store.diagnose(black_box(&known)))
    });
    group.finish();
}

criterion_group!(benches, comparisons, diagnosis);
criterion_main!(benches);
