//! Repeats one kind of work many times so that `valgrind --tool=callgrind` can count its
//! instructions: a figure that, unlike wall time, does not change with the machine's load.
//! The inputs are those of the criterion benchmarks (`benches/common`).
//!
//! ```text
//! cargo build --release -p fingerprint --example instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/instructions WORK SIZE REPEAT
//! ```
//! `WORK` is `setup` (build the inputs only: subtract its count from the others), `pattern`
//! (prepared query), `pair`, `strsim` (comparisons of two `SIZE`-symbol traces), `batch`,
//! `strsim_batch` (one `SIZE`-symbol query against 64 texts: divide by 64 more) or `near`,
//! `far`, `exact` (diagnosis against 10 000 variants; `SIZE` is ignored). Instructions per unit
//! of work are `(count(WORK) − count(setup)) / REPEAT`.

#[path = "../benches/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::process::ExitCode;

use fingerprint::distance::{Pattern, levenshtein};

use common::{comparison_batch, comparison_pair, diagnosis_inputs};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [work, size, repeat] = args.as_slice() else {
        eprintln!("usage: instructions WORK SIZE REPEAT");
        return ExitCode::from(2);
    };
    let (Ok(size), Ok(repeat)) = (size.parse::<usize>(), repeat.parse::<usize>()) else {
        eprintln!("SIZE and REPEAT are numbers");
        return ExitCode::from(2);
    };
    let (a, b) = comparison_pair(size);
    let inputs = diagnosis_inputs();
    let pattern = Pattern::new(&a);
    let (query, batch) = comparison_batch(size);
    let batch_pattern = Pattern::new(&query);
    let texts: Vec<&[u32]> = batch.iter().map(Vec::as_slice).collect();
    let limits = vec![usize::MAX; texts.len()];
    let mut results = vec![None; texts.len()];
    let mut checksum = 0usize;
    for _ in 0..repeat {
        checksum += match work.as_str() {
            "setup" => 0,
            "pattern" => pattern.distance(black_box(&b)),
            "pair" => levenshtein(black_box(&a), black_box(&b)),
            "strsim" => strsim::generic_levenshtein(black_box(&a), black_box(&b)),
            "batch" => {
                batch_pattern.distances_within(black_box(&texts), &limits, &mut results);
                results.iter().flatten().sum()
            }
            "strsim_batch" => batch
                .iter()
                .map(|text| strsim::generic_levenshtein(black_box(&query), black_box(text)))
                .sum(),
            "near" => inputs.store.diagnose(black_box(&inputs.near)).steps,
            "far" => inputs.store.diagnose(black_box(&inputs.far)).steps,
            "exact" => inputs.store.diagnose(black_box(&inputs.exact)).steps,
            other => {
                eprintln!("unknown WORK `{other}`");
                return ExitCode::from(2);
            }
        };
    }
    println!("{work} {size} × {repeat}: checksum {checksum}");
    ExitCode::SUCCESS
}
