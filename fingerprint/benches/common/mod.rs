//! Inputs shared by the criterion benchmarks (`benches/distance.rs`) and the instruction-count
//! example (`examples/instructions.rs`), so that both measure exactly the same work.

use std::collections::BTreeMap;

use fingerprint::Store;
use tracer::event::{Event, EventIds, EventKind, Source, Transaction};

/// Interned alphabet size: a few hundred distinct symbols is what real command trails use.
pub const ALPHABET: u32 = 300;

/// A small deterministic generator, so every run benchmarks the same inputs.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    pub fn below(&mut self, bound: u32) -> u32 {
        self.next() % bound
    }
}

pub fn random_trace(rng: &mut Lcg, len: usize) -> Vec<u32> {
    (0..len).map(|_| rng.below(ALPHABET)).collect()
}

/// `base` with about `edits` random substitutions, insertions and deletions.
pub fn mutate(rng: &mut Lcg, base: &[u32], edits: usize) -> Vec<u32> {
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

/// Texts compared with one query in the batch benchmark.
pub const BATCH_TEXTS: usize = 64;

/// A query of `len` symbols and [`BATCH_TEXTS`] texts to compare it with, each a copy carrying
/// about 10 % random edits: the shape of a diagnosis scanning a command's variants.
pub fn comparison_batch(len: usize) -> (Vec<u32>, Vec<Vec<u32>>) {
    let mut rng = Lcg(4242 + len as u64);
    let query = random_trace(&mut rng, len);
    let texts = (0..BATCH_TEXTS)
        .map(|_| mutate(&mut rng, &query, len / 10))
        .collect();
    (query, texts)
}

/// The query of a pairwise comparison of `len` symbols and the text it is compared with: a copy
/// carrying about 10 % random edits.
pub fn comparison_pair(len: usize) -> (Vec<u32>, Vec<u32>) {
    let mut rng = Lcg(42 + len as u64);
    let a = random_trace(&mut rng, len);
    let b = mutate(&mut rng, &a, len / 10);
    (a, b)
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

/// A store with 10 000 variants of one 64-step command (each 1–12 random edits from a base
/// trail, plus the base itself), and three transactions to diagnose against it: the exact base
/// shape, a normal-looking trail 3 edits from the base (within the threshold of many variants),
/// and an unrelated random trail (far from every variant, the worst case of the search).
pub struct DiagnosisInputs {
    /// The store.
    pub store: Store,
    /// The exact shape of a stored variant.
    pub exact: Transaction,
    /// A few edits from the base.
    pub near: Transaction,
    /// Unrelated to every variant.
    pub far: Transaction,
}

pub fn diagnosis_inputs() -> DiagnosisInputs {
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
    let exact = transaction(&base, "req-known");
    let near = transaction(&mutate(&mut rng, &base, 3), "req-near");
    let far = transaction(&random_trace(&mut rng, 64), "req-far");
    DiagnosisInputs {
        store,
        exact,
        near,
        far,
    }
}
