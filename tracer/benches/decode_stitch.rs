//! Offline decode + stitch throughput on a recorded stream of ≥ 1M AMQP messages.
//!
//! The stream replays the real `server create` + `delete` capture (and the idle start-up capture)
//! over and over, perturbing the ids of each replay (request ids, `_msg_id`, `_unique_id`) so
//! that every replay is a new set of transactions, and shifting time forward. Run with
//! `cargo bench -p tracer --bench decode_stitch`.
//!
//! Two environment variables serve load-independent measurement (see BENCHMARKS.md):
//! `DECODE_STITCH_MESSAGES` sets the stream length (default 1,000,000), so that a stream small
//! enough for `valgrind --tool=callgrind` can be counted in instructions per message, and
//! `DECODE_STITCH_ONCE=1` stops after the single timed pass, skipping criterion's samples.

use std::path::Path;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tracer::import::read_capture;
use tracer::oslo::AmqpRecord;
use tracer::pipeline::Pipeline;
use tracer::stitch::StitchConfig;

const DEFAULT_MESSAGES: usize = 1_000_000;

fn stream_length() -> usize {
    std::env::var("DECODE_STITCH_MESSAGES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(DEFAULT_MESSAGES)
}

/// Replays the fixtures with per-replay ids until `count` records exist.
fn recorded_stream(count: usize) -> Vec<AmqpRecord> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut base = read_capture(&fixtures.join("server-create-delete.amqp.jsonl")).unwrap();
    base.extend(read_capture(&fixtures.join("startup-idle.amqp.jsonl")).unwrap());
    let start = base.iter().map(|record| record.ts_us).min().unwrap();
    let span = base.iter().map(|record| record.ts_us).max().unwrap() - start + 1;
    let mut stream = Vec::with_capacity(count);
    let mut replay = 0u64;
    while stream.len() < count {
        // Same-length ids keep the bodies valid JSON: the last 6 hex digits carry the replay number.
        let tag = format!("{:06x}", replay % 0x100_0000);
        for record in &base {
            if stream.len() == count {
                break;
            }
            let body = String::from_utf8_lossy(&record.body);
            let body = perturb(&body, &tag);
            stream.push(AmqpRecord {
                ts_us: record.ts_us + replay as i64 * span,
                body: body.into_bytes(),
                ..record.clone()
            });
        }
        replay += 1;
    }
    stream
}

/// Replaces the last 6 characters of every 32-hex id and every `req-<uuid>` with the tag.
fn perturb(body: &str, tag: &str) -> String {
    let bytes = body.as_bytes();
    let mut out = String::with_capacity(body.len());
    let mut index = 0;
    let mut run_start = 0;
    while index < bytes.len() {
        let c = bytes[index];
        if c.is_ascii_hexdigit() || c == b'-' {
            index += 1;
            continue;
        }
        let run = &body[run_start..index];
        if run.len() >= 32 && run.bytes().filter(u8::is_ascii_hexdigit).count() >= 32 {
            out.push_str(&run[..run.len() - 6]);
            out.push_str(tag);
        } else {
            out.push_str(run);
        }
        out.push(c as char);
        index += 1;
        run_start = index;
    }
    out.push_str(&body[run_start..]);
    out
}

// Never inlined, so that callgrind can attribute the pass (and only the pass, not building the
// stream) to one function: `--toggle-collect=*decode_and_stitch*`.
#[inline(never)]
fn decode_and_stitch(stream: &[AmqpRecord]) -> u64 {
    let mut pipeline = Pipeline::counting(StitchConfig {
        idle_timeout_us: 30_000_000,
        max_open: 10_000,
    });
    for record in stream {
        pipeline.push_amqp(record).unwrap();
    }
    let output = pipeline.finish().unwrap();
    assert_eq!(output.summary.amqp.opaque, 0);
    output.summary.transactions
}

/// CPU time (user + system) of this process so far, from `/proc/self/stat` (Linux, 100 Hz ticks),
/// so that the figure means one core's work even when other builds share the machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| {
        fields
            .get(index)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat (utime, stime) are at 11 and 12 after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

fn bench(c: &mut Criterion) {
    let stream = recorded_stream(stream_length());
    let bytes: usize = stream.iter().map(|record| record.body.len()).sum();
    // One timed pass outside criterion, for the msgs/s figure recorded in BENCHMARKS.md.
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let transactions = decode_and_stitch(&stream);
    let elapsed = started.elapsed();
    let cpu = cpu_seconds() - cpu_started;
    println!(
        "decode+stitch: {} messages ({} MiB), {transactions} transactions in {:.2} s wall = {:.0} msgs/s; \
         {cpu:.2} s CPU = {:.0} msgs per CPU-second",
        stream.len(),
        bytes / (1 << 20),
        elapsed.as_secs_f64(),
        stream.len() as f64 / elapsed.as_secs_f64(),
        stream.len() as f64 / cpu
    );
    if std::env::var_os("DECODE_STITCH_ONCE").is_some() {
        return;
    }
    let mut group = c.benchmark_group("decode_stitch");
    group.sample_size(10);
    group.throughput(Throughput::Elements(stream.len() as u64));
    group.bench_function(format!("{} recorded messages", stream.len()), |b| {
        b.iter(|| decode_and_stitch(&stream))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
