//! Benchmarks: comparisons per second of the bit-parallel Levenshtein against strsim's
//! `generic_levenshtein` on 64-, 256- and 512-symbol traces, and the latency of diagnosing one
//! trace against a store of 10 000 variants. Figures are recorded in BENCHMARKS.md.
//!
//! `cargo bench -p fingerprint --bench distance`

mod common;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fingerprint::distance::{Pattern, levenshtein};

use common::{BATCH_TEXTS, comparison_batch, comparison_pair, diagnosis_inputs};

fn comparisons(c: &mut Criterion) {
    let mut group = c.benchmark_group("levenshtein");
    group.throughput(Throughput::Elements(1));
    for len in [64usize, 256, 512] {
        let (a, b) = comparison_pair(len);
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
    // One query against many texts, as a diagnosis scans variants: per comparison.
    group.throughput(Throughput::Elements(BATCH_TEXTS as u64));
    for len in [64usize, 256, 512] {
        let (query, batch) = comparison_batch(len);
        let pattern = Pattern::new(&query);
        let texts: Vec<&[u32]> = batch.iter().map(Vec::as_slice).collect();
        let limits = vec![usize::MAX; texts.len()];
        let mut results = vec![None; texts.len()];
        group.bench_with_input(BenchmarkId::new("batch", len), &texts, |bench, texts| {
            bench.iter(|| pattern.distances_within(black_box(texts), &limits, &mut results))
        });
        group.bench_with_input(
            BenchmarkId::new("strsim_batch", len),
            &batch,
            |bench, batch| {
                bench.iter(|| {
                    batch
                        .iter()
                        .map(|text| strsim::generic_levenshtein(black_box(&query), black_box(text)))
                        .sum::<usize>()
                })
            },
        );
    }
    group.finish();
}

fn diagnosis(c: &mut Criterion) {
    let inputs = diagnosis_inputs();
    let store = &inputs.store;
    let mut group = c.benchmark_group("diagnose_10k_variants");
    group.throughput(Throughput::Elements(1));
    group.bench_function("near_64", |bench| {
        bench.iter(|| store.diagnose(black_box(&inputs.near)))
    });
    group.bench_function("far_64", |bench| {
        bench.iter(|| store.diagnose(black_box(&inputs.far)))
    });
    group.bench_function("exact_64", |bench| {
        bench.iter(|| store.diagnose(black_box(&inputs.exact)))
    });
    group.finish();
}

criterion_group!(benches, comparisons, diagnosis);
criterion_main!(benches);
