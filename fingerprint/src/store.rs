//! The fingerprint store: interned symbols, positive fingerprints per command (variants with
//! frequencies and per-step timing), how long each REST operation takes to answer, negative
//! fingerprints labelled with a fault, saved as versioned JSON and refined incrementally by every
//! `learn`.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tracer::event::{EventKind, Transaction};

use crate::Error;
use crate::distance::{BATCH_LANES, Pattern, normalized};
use crate::normalize::{Lane, NormalizeConfig, gaps, lane_prefixes, periodic, steps_of};
use crate::symbol::{Step, answer_key, reply_key};
use crate::timing::{LatencyProfile, TimingPolicy};

/// The `format` field of every store file.
pub const STORE_FORMAT: &str = "butterfly-fingerprints";
/// The store version this crate writes. Version 4 adds what calibration needs (errors of normal
/// runs, calibrations, the run-level rule); a version 3 store reads as one without them.
pub const STORE_VERSION: u32 = 4;
/// The oldest store version this crate reads.
pub const STORE_OLDEST_READABLE: u32 = 3;
/// How many learning distances a command keeps to estimate its threshold.
const NOVELTY_HISTORY: usize = 1_000;

/// Learning and diagnosis settings, stored with the fingerprints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How traces are normalized.
    pub normalize: NormalizeConfig,
    /// How step time bounds follow from learned latencies.
    pub timing: TimingPolicy,
    /// The anomaly threshold on normalized distance is never below this.
    pub min_threshold: f64,
    /// The threshold is this multiple of the 99th percentile of distances seen while learning.
    pub threshold_margin: f64,
    /// The threshold is never above this.
    pub max_threshold: f64,
    /// Neighbours consulted when classifying against negative fingerprints.
    pub knn: usize,
    /// The distance bound of a known fault (see [`Store::negative_bound`]) is never below this.
    pub negative_min_bound: f64,
    /// The bound is this multiple of the 99th percentile of the distances between each learned
    /// transaction of the fault and its nearest other one.
    pub negative_bound_margin: f64,
    /// The bound is never above this. Below the anchor mismatch penalty (0.5), so that a trace
    /// that departed from normal behaviour at another step than every negative of a fault is never
    /// that fault, however alike the rest of the trail.
    pub negative_max_bound: f64,
    /// The bound of a fault learned from a single transaction, which has no spread to learn from.
    pub negative_single_bound: f64,
    /// A command learned from fewer normal runs gets no verdict on its sequence or timing ("not
    /// enough normal runs"): one run says nothing about how much the command varies. 1 by
    /// default, so that a store learned from a single baseline judges as before; calibration
    /// for a cloud (`butterfly fingerprint calibrate`, default 3) raises it.
    pub min_runs: u64,
    /// A step, REST operation or RPC call timed fewer times gets no timing verdict (1 by
    /// default, raised by calibration like [`Config::min_runs`]).
    pub min_step_samples: u64,
    /// An error that at least this share of a command's normal runs show (a `NotFound` during a
    /// delete) is part of normal behaviour, not evidence of a fault.
    pub usual_error_rate: f64,
    /// The false-alarm rate per fault-free transaction (and per fault-free run, for the run-level
    /// rule) that calibration on held-back runs aims at (see [`crate::calibrate`]).
    pub false_alarm_rate: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            normalize: NormalizeConfig::default(),
            timing: TimingPolicy::default(),
            min_threshold: 0.15,
            threshold_margin: 1.5,
            max_threshold: 0.5,
            knn: 3,
            negative_min_bound: 0.15,
            negative_bound_margin: 1.5,
            negative_max_bound: 0.45,
            negative_single_bound: 0.3,
            min_runs: 1,
            min_step_samples: 1,
            usual_error_rate: 0.1,
            false_alarm_rate: 0.01,
        }
    }
}

/// What a step of a variant is known to involve, and when it comes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepProfile {
    /// The service that acts on the step, as last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The host that acts on the step, as last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The service that sends the step, as last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// Time from the last activity before it (see [`crate::normalize::gaps`]; empty for the first
    /// step and for polls).
    pub latency: LatencyProfile,
    /// Time from the trace's first step: where the step typically falls in the run, which the
    /// lane layout of the sequence does not tell.
    #[serde(default)]
    pub offset: LatencyProfile,
}

/// One normal shape of a command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Symbol ids, in order.
    pub symbols: Vec<u32>,
    /// How many learned runs had exactly this shape.
    pub count: u64,
    /// One profile per symbol.
    pub steps: Vec<StepProfile>,
}

/// The positive fingerprint of one command.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandFingerprint {
    /// Runs learned.
    pub runs: u64,
    /// Distinct normal shapes. Add them by learning or [`CommandFingerprint::push_variant`]: the
    /// search indexes are built from them.
    pub variants: Vec<Variant>,
    /// Normalized distance of each learned run (after the first) to the nearest variant known
    /// before it: the spread of normal behaviour, from which the threshold is derived.
    pub novelty: Vec<f64>,
    /// How many of the learned runs showed each error symbol (a failed reply, an HTTP 5xx): an
    /// error that normal runs show often enough is judged normal ([`Config::usual_error_rate`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub error_runs: BTreeMap<String, u64>,
    /// Threshold and timing scale calibrated on held-back fault-free runs, when calibrated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<Calibration>,
    #[serde(skip)]
    exact: HashMap<Vec<u32>, usize>,
    /// `(length, variant index)` of the first variant of each distinct shape, sorted by length
    /// and then by symbols (so that neighbours share prefixes, which a batch of comparisons
    /// computes once): the search order. A later copy of a shape can never be the nearest (ties
    /// go to the smallest index), so it is not indexed.
    #[serde(skip)]
    by_length: Vec<(usize, usize)>,
    /// The indexed variants' symbols back to back in `by_length` order, so that the search,
    /// which walks `by_length` outwards from the query's length, reads memory in order instead
    /// of jumping between variants of other lengths.
    #[serde(skip)]
    arena: Vec<u32>,
    /// Start in `arena` of the symbols at each position of `by_length`.
    #[serde(skip)]
    starts: Vec<usize>,
    /// Symbol histogram at each position of `by_length`, for the bag-distance lower bound.
    #[serde(skip)]
    histograms: Vec<Histogram>,
}

/// Buckets of a [`Histogram`]: 64 one-byte counts are one cache line per variant.
const HISTOGRAM_BUCKETS: usize = 64;

/// How often each symbol (folded into [`HISTOGRAM_BUCKETS`] buckets by id) occurs in a sequence,
/// saturating at 255, and the sum of those counts.
///
/// The bag distance between two histograms (the larger of "occurrences in `a` that `b` lacks"
/// and the converse) is a lower bound of the Levenshtein distance: every edit changes at most
/// one occurrence on each side. Folding symbols into buckets and saturating counts can only make
/// the two histograms more alike, so the bound stays a lower bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Histogram {
    counts: [u8; HISTOGRAM_BUCKETS],
    total: u32,
}

impl Histogram {
    fn of(symbols: &[u32]) -> Histogram {
        let mut counts = [0u8; HISTOGRAM_BUCKETS];
        for &symbol in symbols {
            let bucket = &mut counts[symbol as usize % HISTOGRAM_BUCKETS];
            *bucket = bucket.saturating_add(1);
        }
        let total = counts.iter().map(|&count| u32::from(count)).sum();
        Histogram { counts, total }
    }

    /// The bag distance to `other`, a lower bound of the edit distance of the sequences.
    ///
    /// With `surplus` and `deficit` the occurrences on each side that the other lacks,
    /// `surplus + deficit` is the sum of absolute count differences (one "sum of absolute
    /// differences" instruction per 16 buckets on x86) and `surplus − deficit` is the difference
    /// of the totals, so the larger of the two is their half-sum.
    fn bag_distance(&self, other: &Histogram) -> usize {
        let differences: u32 = self
            .counts
            .chunks_exact(16)
            .zip(other.counts.chunks_exact(16))
            .map(|(mine, theirs)| {
                let mine: &[u8; 16] = mine.try_into().expect("16 buckets");
                let theirs: &[u8; 16] = theirs.try_into().expect("16 buckets");
                (0..16)
                    .map(|bucket| u32::from(mine[bucket].abs_diff(theirs[bucket])))
                    .sum::<u32>()
            })
            .sum();
        ((differences + self.total.abs_diff(other.total)) / 2) as usize
    }
}

impl CommandFingerprint {
    fn reindex(&mut self) {
        self.exact.clear();
        self.by_length.clear();
        for (index, variant) in self.variants.iter().enumerate() {
            // The first of identical variants is the one every search reports.
            if let Entry::Vacant(entry) = self.exact.entry(variant.symbols.clone()) {
                entry.insert(index);
                self.by_length.push((variant.symbols.len(), index));
            }
        }
        let variants = &self.variants;
        self.by_length.sort_unstable_by(|&(len_a, a), &(len_b, b)| {
            (len_a, &variants[a].symbols).cmp(&(len_b, &variants[b].symbols))
        });
        self.arena.clear();
        self.starts.clear();
        self.histograms.clear();
        for &(_, index) in &self.by_length {
            let symbols = &self.variants[index].symbols;
            self.starts.push(self.arena.len());
            self.arena.extend_from_slice(symbols);
            self.histograms.push(Histogram::of(symbols));
        }
    }

    /// The anomaly threshold on normalized distance: calibrated on held-back runs when it was
    /// (never below [`Config::min_threshold`]), else learned from the spread of the learned runs.
    pub fn threshold(&self, config: &Config) -> f64 {
        if let Some(threshold) = self.calibration.as_ref().and_then(|c| c.threshold) {
            return threshold.max(config.min_threshold);
        }
        self.learned_threshold(config)
    }

    /// The threshold learned from the learned runs alone (before calibration).
    pub fn learned_threshold(&self, config: &Config) -> f64 {
        let p99 = percentile99(self.novelty.iter().map(|&distance| (distance, 1)));
        (p99 * config.threshold_margin).clamp(config.min_threshold, config.max_threshold)
    }

    /// The nearest variant to `query` by edit distance: `(variant index, distance)`; of several
    /// equally near variants, the one with the smallest index. The result is exactly that of
    /// comparing the query with every variant.
    ///
    /// Exact shapes are found by hash. Otherwise the distinct shapes are visited in order of
    /// length difference from the query, and the scan stops once the length difference alone
    /// exceeds the best distance so far. A variant is compared only if the bag distance of the symbol
    /// histograms (a lower bound) does not rule it out, and then with the best distance so far as
    /// the cutoff; survivors are compared [`BATCH_LANES`] at a time.
    pub fn nearest(&self, query: &[u32]) -> Option<(usize, usize)> {
        self.nearest_within(query, usize::MAX)
    }

    /// The nearest variant (as [`CommandFingerprint::nearest`]) if its distance is at most `max`.
    pub fn nearest_within(&self, query: &[u32], max: usize) -> Option<(usize, usize)> {
        if let Some(&index) = self.exact.get(query) {
            return Some((index, 0));
        }
        let mut search = Search {
            fingerprint: self,
            pattern: Pattern::new(query),
            histogram: Histogram::of(query),
            max,
            best: None,
            pending: Vec::with_capacity(BATCH_LANES),
        };
        let length = query.len();
        let start = self.by_length.partition_point(|&(len, _)| len < length);
        let (mut below, mut above) = (start, start);
        loop {
            let below_gap = (below > 0).then(|| length - self.by_length[below - 1].0);
            let above_gap =
                (above < self.by_length.len()).then(|| self.by_length[above].0 - length);
            let (gap, position) = match (below_gap, above_gap) {
                (Some(b), Some(a)) if b <= a => (b, below - 1),
                (_, Some(a)) => (a, above),
                (Some(b), None) => (b, below - 1),
                (None, None) => break,
            };
            if gap > search.bound() {
                break;
            }
            if position < start {
                below -= 1;
            } else {
                above += 1;
            }
            search.offer(position);
        }
        search.flush();
        search.best.map(|(distance, index)| (index, distance))
    }

    /// Compares `query` with every variant: the reference that [`CommandFingerprint::nearest`]
    /// must agree with (same distance, same variant).
    pub fn nearest_brute_force(&self, query: &[u32]) -> Option<(usize, usize)> {
        let pattern = Pattern::new(query);
        self.variants
            .iter()
            .enumerate()
            .map(|(index, variant)| (pattern.distance(&variant.symbols), index))
            .min()
            .map(|(distance, index)| (index, distance))
    }

    /// The symbols at `position` of the search order.
    fn symbols_at(&self, position: usize) -> &[u32] {
        let start = self.starts[position];
        &self.arena[start..start + self.by_length[position].0]
    }

    /// Adds a variant without learning from a trace (benchmarks and tests build large stores so).
    pub fn push_variant(&mut self, symbols: Vec<u32>) {
        let steps = vec![StepProfile::default(); symbols.len()];
        self.add_variant(Variant {
            symbols,
            count: 1,
            steps,
        });
    }

    /// Appends a variant and updates the indexes incrementally: a new shape is inserted at its
    /// place in the search order (moving the symbols after it along the arena, linear in the
    /// store's size and small next to the search that precedes every learned variant).
    fn add_variant(&mut self, variant: Variant) -> usize {
        let index = self.variants.len();
        let symbols = &variant.symbols;
        if let Entry::Vacant(entry) = self.exact.entry(symbols.clone()) {
            entry.insert(index);
            let variants = &self.variants;
            let position = self.by_length.partition_point(|&(len, other)| {
                (len, &variants[other].symbols) < (symbols.len(), symbols)
            });
            let start = self
                .starts
                .get(position)
                .copied()
                .unwrap_or(self.arena.len());
            self.by_length.insert(position, (symbols.len(), index));
            self.arena.splice(start..start, symbols.iter().copied());
            self.starts.insert(position, start);
            for later in &mut self.starts[position + 1..] {
                *later += symbols.len();
            }
            self.histograms.insert(position, Histogram::of(symbols));
        }
        self.variants.push(variant);
        index
    }
}

/// What calibration on held-back fault-free runs set for one command (see [`crate::calibrate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// The false-alarm rate aimed at.
    pub target_rate: f64,
    /// Held-back runs it was calibrated on.
    pub runs: u64,
    /// The distance threshold; `None` when no held-back run was comparable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Every learned step bound is multiplied by this (at least 1): the ordinary gaps of the
    /// held-back runs' machine.
    pub timing_scale: f64,
    /// The smallest false-alarm rate the held-back runs can vouch for, `1 / (runs + 1)`: above
    /// the target when there were too few of them, and the threshold is then their maximum.
    pub attainable_rate: f64,
}

/// The run-level rule: a run is failed when more of its transactions are anomalous than this,
/// calibrated on held-back fault-free runs (see [`crate::calibrate`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRule {
    /// A run with more anomalous transactions than this is failed.
    pub max_anomalous: u64,
    /// The false-alarm rate per run aimed at.
    pub target_rate: f64,
    /// Held-back runs it was calibrated on.
    pub runs: u64,
    /// The smallest false-alarm rate those runs can vouch for, `1 / (runs + 1)`.
    pub attainable_rate: f64,
}

/// The 99th percentile of `values`, each given with its weight (how many times it occurs); 0 when
/// there are none.
fn percentile99(values: impl IntoIterator<Item = (f64, u64)>) -> f64 {
    let mut sorted: Vec<(f64, u64)> = values
        .into_iter()
        .filter(|&(_, weight)| weight > 0)
        .collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: u64 = sorted.iter().map(|&(_, weight)| weight).sum();
    if total == 0 {
        return 0.0;
    }
    let rank = ((0.99 * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for &(value, weight) in &sorted {
        seen += weight;
        if seen >= rank {
            return value;
        }
    }
    sorted.last().map_or(0.0, |&(value, _)| value)
}

/// The state of one nearest-variant search: the best `(distance, index)` so far and the
/// candidates waiting to be compared in one batch.
struct Search<'a> {
    fingerprint: &'a CommandFingerprint,
    pattern: Pattern,
    histogram: Histogram,
    max: usize,
    best: Option<(usize, usize)>,
    /// `(position in the search order, lower bound)`.
    pending: Vec<(usize, usize)>,
}

impl Search<'_> {
    /// The largest distance a variant may have and still become the result.
    fn bound(&self) -> usize {
        self.best.map_or(self.max, |(distance, _)| distance)
    }

    /// The cutoff for comparing variant `index`: a later variant must be strictly nearer than
    /// the best so far, an earlier one may tie (ties go to the smallest index).
    fn limit(&self, index: usize) -> Option<usize> {
        match self.best {
            None => Some(self.max),
            Some((distance, best_index)) if index < best_index => Some(distance),
            Some((distance, _)) => distance.checked_sub(1),
        }
    }

    /// Queues the variant at `position` of the search order unless its lower bound rules it out.
    fn offer(&mut self, position: usize) {
        let Some(limit) = self.limit(self.fingerprint.by_length[position].1) else {
            return;
        };
        let lower_bound = self
            .histogram
            .bag_distance(&self.fingerprint.histograms[position]);
        if lower_bound > limit {
            return;
        }
        self.pending.push((position, lower_bound));
        if self.pending.len() == BATCH_LANES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        let mut texts: [&[u32]; BATCH_LANES] = [&[]; BATCH_LANES];
        let mut limits = [0usize; BATCH_LANES];
        let mut indexes = [0usize; BATCH_LANES];
        let mut used = 0;
        // The best distance may have dropped since a candidate was queued: filter again.
        for &(position, lower_bound) in &self.pending {
            let index = self.fingerprint.by_length[position].1;
            if let Some(limit) = self.limit(index)
                && lower_bound <= limit
            {
                texts[used] = self.fingerprint.symbols_at(position);
                limits[used] = limit;
                indexes[used] = index;
                used += 1;
            }
        }
        self.pending.clear();
        let mut results = [None; BATCH_LANES];
        self.pattern
            .distances_within(&texts[..used], &limits[..used], &mut results[..used]);
        for (&index, result) in indexes[..used].iter().zip(results) {
            if let Some(distance) = result
                && self.best.is_none_or(|best| (distance, index) < best)
            {
                self.best = Some((distance, index));
            }
        }
    }
}

/// The fault a negative fingerprint was recorded under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultLabel {
    /// The fault kind, as in the campaign (e.g. `process-kill`, `service-stop`).
    pub fault_kind: String,
    /// The faulty service.
    pub service: String,
    /// The faulty host, when the fault was host-specific.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// A trace shape recorded under a known fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NegativeFingerprint {
    /// The command it belongs to.
    pub command: String,
    /// The fault it was recorded under.
    pub label: FaultLabel,
    /// Symbol ids, in order.
    pub symbols: Vec<u32>,
    /// The step at which it departed from normal behaviour (see [`crate::Diagnosis::anchor`]),
    /// when positive fingerprints existed at learning time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<String>,
    /// How many learned runs had this shape, label and anchor.
    pub count: u64,
}

/// What learning one transaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Learned {
    /// Background traffic is not learned.
    Skipped,
    /// The run matched an existing variant of the command.
    Known {
        /// The command.
        command: String,
    },
    /// The run added a variant to the command.
    NewVariant {
        /// The command.
        command: String,
    },
    /// The run was stored as (or merged into) a negative fingerprint.
    Negative {
        /// The command.
        command: String,
    },
}

/// A symbolized, normalized transaction, ready for learning or diagnosis.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// The transaction id.
    pub transaction: String,
    /// The command: the transaction's own, else the symbol of its first step.
    pub command: String,
    /// Background traffic.
    pub background: bool,
    /// Normalized steps.
    pub steps: Vec<Step>,
}

impl Trace {
    /// Symbolizes and normalizes a transaction.
    pub fn new(transaction: &Transaction, config: &NormalizeConfig) -> Trace {
        let steps = steps_of(transaction, config);
        let command = transaction
            .command
            .clone()
            .or_else(|| steps.first().map(|step| step.symbol.clone()))
            .unwrap_or_else(|| "unknown".to_owned());
        Trace {
            transaction: transaction.id.clone(),
            command,
            background: transaction.background || periodic(&transaction.events, config),
            steps,
        }
    }
}

/// The fingerprint store.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// Always [`STORE_FORMAT`].
    pub format: String,
    /// The store version, [`STORE_VERSION`].
    pub version: u32,
    /// Settings used for learning and diagnosis.
    #[serde(default)]
    pub config: Config,
    /// Interned symbols: id `i` is `symbols[i]`.
    symbols: Vec<String>,
    /// Positive fingerprints by command.
    pub commands: BTreeMap<String, CommandFingerprint>,
    /// How long each REST operation (`service METHOD /path/{id}`, see [`answer_key`]) took to
    /// answer in fault-free runs, whichever command made the request, and each RPC call to be
    /// replied to (`service CALL topic.method`, see [`reply_key`]): an answer later than its
    /// bound is slow, even while it has not come.
    pub answers: BTreeMap<String, LatencyProfile>,
    /// Negative fingerprints. Add them with [`Store::learn_negative`]: the distance bound of each
    /// fault is derived from them then (and when the store is loaded).
    pub negatives: Vec<NegativeFingerprint>,
    /// The run-level rule, once calibrated; without it a run is failed by any anomalous
    /// transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_rule: Option<RunRule>,
    /// Every answer bound is multiplied by this, once calibrated on held-back runs (at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_scale: Option<f64>,
    #[serde(skip)]
    index: HashMap<String, u32>,
    /// The spread of each known fault by command (see [`Store::negative_bound`]), derived from
    /// `negatives`; `None` for a fault learned from a single transaction.
    #[serde(skip)]
    spreads: BTreeMap<String, BTreeMap<FaultLabel, Option<f64>>>,
}

impl Default for Store {
    fn default() -> Self {
        Store::new(Config::default())
    }
}

impl Store {
    /// An empty store.
    pub fn new(config: Config) -> Store {
        Store {
            format: STORE_FORMAT.to_owned(),
            version: STORE_VERSION,
            config,
            symbols: Vec::new(),
            commands: BTreeMap::new(),
            answers: BTreeMap::new(),
            negatives: Vec::new(),
            run_rule: None,
            answer_scale: None,
            index: HashMap::new(),
            spreads: BTreeMap::new(),
        }
    }

    /// Parses a store from JSON; `origin` names the source in errors.
    pub fn from_json(text: &str, origin: &Path) -> Result<Store, Error> {
        let json_error = |source: serde_json::Error| Error::Json {
            path: origin.to_owned(),
            line: source.line(),
            column: source.column(),
            source,
        };
        // Format and version first, from a header that ignores everything else: a store of
        // another version may have other fields, and deserves a clearer error than an unknown
        // field.
        #[derive(Deserialize)]
        struct Header {
            format: String,
            version: u32,
        }
        let header: Header = serde_json::from_str(text).map_err(json_error)?;
        if header.format != STORE_FORMAT {
            return Err(Error::Format {
                path: origin.to_owned(),
                reason: format!("format is `{}`, expected `{STORE_FORMAT}`", header.format),
            });
        }
        if !(STORE_OLDEST_READABLE..=STORE_VERSION).contains(&header.version) {
            let why = match header.version {
                1 => {
                    "; it was learned with an earlier normalization of traces (version 2 lays \
                     concurrent branches out by lane and sets the user's polls apart), so its \
                     variants do not compare with today's traces: learn it again with \
                     `butterfly fingerprint learn`"
                }
                2 => {
                    "; it lacks the answer times of REST requests that version 3 learns, \
                     without which a request that is never answered goes unnoticed: learn it \
                     again with `butterfly fingerprint learn`"
                }
                _ => "",
            };
            return Err(Error::Format {
                path: origin.to_owned(),
                reason: format!(
                    "version {} is not supported (this build reads versions \
                     {STORE_OLDEST_READABLE} to {STORE_VERSION}){why}",
                    header.version
                ),
            });
        }
        let mut store: Store = serde_json::from_str(text).map_err(json_error)?;
        // An older readable version lacks only what this one added; it is written back as this one.
        store.version = STORE_VERSION;
        // Limits the wrong way round would make every diagnosis panic (`f64::clamp`): refuse them
        // here, with the file's name.
        let config = &store.config;
        for (what, min, max) in [
            ("threshold", config.min_threshold, config.max_threshold),
            (
                "negative bound",
                config.negative_min_bound,
                config.negative_max_bound,
            ),
        ] {
            if min.partial_cmp(&max).is_none_or(std::cmp::Ordering::is_gt) {
                return Err(Error::Format {
                    path: origin.to_owned(),
                    reason: format!(
                        "the {what} limits are {min}..{max}: the minimum must not exceed the maximum"
                    ),
                });
            }
        }
        let symbol_count = store.symbols.len();
        let bad_id = store
            .commands
            .values()
            .flat_map(|command| command.variants.iter().map(|variant| &variant.symbols))
            .chain(store.negatives.iter().map(|negative| &negative.symbols))
            .flatten()
            .find(|&&id| id as usize >= symbol_count);
        if let Some(id) = bad_id {
            return Err(Error::Format {
                path: origin.to_owned(),
                reason: format!("symbol id {id} is out of range ({symbol_count} symbols)"),
            });
        }
        store.reindex();
        Ok(store)
    }

    /// Reads a store file through the bounded reader.
    pub fn load(path: &Path) -> Result<Store, Error> {
        let text =
            userinput::file::read_to_string(path, userinput::file::FileKind::FINGERPRINT_STORE)?;
        Store::from_json(&text, path)
    }

    /// Reads a store file, or starts an empty store when the file does not exist.
    pub fn load_or_new(path: &Path) -> Result<Store, Error> {
        if path.exists() {
            Store::load(path)
        } else {
            Ok(Store::default())
        }
    }

    /// The store as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a store always serializes")
    }

    /// Writes the store atomically (a temporary file renamed over the target).
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let io_error = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = std::path::PathBuf::from(temporary);
        std::fs::write(&temporary, self.to_json() + "\n").map_err(io_error)?;
        std::fs::rename(&temporary, path).map_err(io_error)
    }

    fn reindex(&mut self) {
        self.index = self
            .symbols
            .iter()
            .enumerate()
            .map(|(id, symbol)| (symbol.clone(), id as u32))
            .collect();
        for command in self.commands.values_mut() {
            command.reindex();
        }
        self.spreads.clear();
        let faults: std::collections::BTreeSet<(String, FaultLabel)> = self
            .negatives
            .iter()
            .map(|negative| (negative.command.clone(), negative.label.clone()))
            .collect();
        for (command, label) in faults {
            self.refresh_spread(&command, &label);
        }
    }

    /// The distance bound of a known fault for a command: a trace farther than this from every
    /// negative of the fault is not classified as that fault.
    ///
    /// Learned like the anomaly threshold of positive fingerprints: the 99th percentile of the
    /// distances between each transaction learned under the fault and its nearest other one
    /// (0 for a shape learned more than once), times
    /// [`Config::negative_bound_margin`], within [`Config::negative_min_bound`] and
    /// [`Config::negative_max_bound`]. A fault learned from one transaction has no spread and
    /// gets [`Config::negative_single_bound`] (within the same limits).
    pub fn negative_bound(&self, command: &str, label: &FaultLabel) -> f64 {
        let spread = match self
            .spreads
            .get(command)
            .and_then(|faults| faults.get(label))
        {
            Some(&spread) => spread,
            None => self.spread_of(command, label),
        };
        let config = &self.config;
        let bound = spread.map_or(config.negative_single_bound, |spread| {
            spread * config.negative_bound_margin
        });
        bound.clamp(config.negative_min_bound, config.negative_max_bound)
    }

    /// The 99th percentile of the distances between each negative of a fault and its nearest
    /// other one, weighted by how many transactions had each shape; `None` below two transactions.
    fn spread_of(&self, command: &str, label: &FaultLabel) -> Option<f64> {
        let members: Vec<&NegativeFingerprint> = self
            .negatives
            .iter()
            .filter(|negative| negative.command == command && negative.label == *label)
            .collect();
        if members.iter().map(|negative| negative.count).sum::<u64>() < 2 {
            return None;
        }
        let nearest = members.iter().enumerate().map(|(index, member)| {
            if member.count > 1 {
                // Every copy of the shape has an identical twin.
                return (0.0, member.count);
            }
            let pattern = Pattern::new(&member.symbols);
            let distance = members
                .iter()
                .enumerate()
                .filter(|&(other, _)| other != index)
                .map(|(_, other)| {
                    negative_distance(
                        self,
                        &pattern,
                        &member.symbols,
                        member.anchor.as_deref(),
                        other,
                    )
                })
                .fold(f64::INFINITY, f64::min);
            (distance, 1)
        });
        Some(percentile99(nearest))
    }

    fn refresh_spread(&mut self, command: &str, label: &FaultLabel) {
        let spread = self.spread_of(command, label);
        self.spreads
            .entry(command.to_owned())
            .or_default()
            .insert(label.clone(), spread);
    }

    /// The symbol with id `id`.
    pub fn symbol(&self, id: u32) -> Option<&str> {
        self.symbols.get(id as usize).map(String::as_str)
    }

    /// Number of interned symbols.
    pub fn symbol_count(&self) -> usize {
        self.symbols.len()
    }

    /// Number of positive variants over all commands (what learning grows).
    pub fn variant_count(&self) -> usize {
        self.commands.values().map(|c| c.variants.len()).sum()
    }

    /// The id of `symbol`, interning it if new.
    pub fn intern(&mut self, symbol: &str) -> u32 {
        if let Some(&id) = self.index.get(symbol) {
            return id;
        }
        let id = u32::try_from(self.symbols.len()).expect("fewer than 2^32 symbols");
        self.symbols.push(symbol.to_owned());
        self.index.insert(symbol.to_owned(), id);
        id
    }

    /// Ids for the steps of a trace without changing the store: unknown symbols get fresh ids past
    /// the interned range (the same id for the same unknown symbol), which match nothing stored.
    pub fn lookup(&self, steps: &[Step]) -> Vec<u32> {
        let mut unknown: HashMap<&str, u32> = HashMap::new();
        let first_free = self.symbols.len() as u32;
        steps
            .iter()
            .map(|step| match self.index.get(&step.symbol) {
                Some(&id) => id,
                None => {
                    let next = first_free + unknown.len() as u32;
                    *unknown.entry(step.symbol.as_str()).or_insert(next)
                }
            })
            .collect()
    }

    /// The lanes of a variant's steps (see [`crate::normalize::Lane`]).
    pub fn lanes(&self, variant: &Variant) -> Vec<Lane> {
        self.lanes_of_ids(&variant.symbols)
    }

    /// The lanes of interned symbols.
    pub fn lanes_of_ids(&self, ids: &[u32]) -> Vec<Lane> {
        ids.iter()
            .map(|&id| Lane::of(self.symbol(id).unwrap_or("")))
            .collect()
    }

    /// Symbolizes and normalizes a transaction with this store's settings.
    pub fn trace(&self, transaction: &Transaction) -> Trace {
        Trace::new(transaction, &self.config.normalize)
    }

    /// The positive fingerprint of a command, mutable (created when missing).
    pub fn command_mut(&mut self, command: &str) -> &mut CommandFingerprint {
        self.commands.entry(command.to_owned()).or_default()
    }

    /// Learns a fault-free run into the positive fingerprint of its command, and the answer
    /// times of its REST requests.
    pub fn learn_positive(&mut self, transaction: &Transaction) -> Learned {
        let trace = self.trace(transaction);
        if trace.background || trace.steps.is_empty() {
            return Learned::Skipped;
        }
        self.learn_answers(transaction);
        let ids: Vec<u32> = trace
            .steps
            .iter()
            .map(|step| self.intern(&step.symbol))
            .collect();
        let fingerprint = self.commands.entry(trace.command.clone()).or_default();
        fingerprint.runs += 1;
        let shown: std::collections::BTreeSet<&str> = trace
            .steps
            .iter()
            .filter(|step| step.error)
            .map(|step| step.symbol.as_str())
            .collect();
        for symbol in shown {
            *fingerprint.error_runs.entry(symbol.to_owned()).or_default() += 1;
        }
        let nearest = fingerprint.nearest(&ids);
        if let Some((index, distance)) = nearest {
            let variant_len = fingerprint.variants[index].symbols.len();
            fingerprint
                .novelty
                .push(normalized(distance, ids.len(), variant_len));
            if fingerprint.novelty.len() > NOVELTY_HISTORY {
                fingerprint.novelty.remove(0);
            }
        }
        let (index, learned) = match nearest {
            Some((index, 0)) => (
                index,
                Learned::Known {
                    command: trace.command.clone(),
                },
            ),
            _ => {
                let index = fingerprint.add_variant(Variant {
                    symbols: ids.clone(),
                    count: 0,
                    steps: vec![StepProfile::default(); ids.len()],
                });
                (
                    index,
                    Learned::NewVariant {
                        command: trace.command.clone(),
                    },
                )
            }
        };
        let variant = &mut fingerprint.variants[index];
        variant.count += 1;
        let gaps = gaps(&trace.steps);
        let start = trace.steps.first().map_or(0, |step| step.ts_us);
        for (position, step) in trace.steps.iter().enumerate() {
            let profile = &mut variant.steps[position];
            if step.service.is_some() {
                profile.service.clone_from(&step.service);
            }
            if step.host.is_some() {
                profile.host.clone_from(&step.host);
            }
            if step.caller.is_some() {
                profile.caller.clone_from(&step.caller);
            }
            if let Some((gap, _)) = gaps[position] {
                profile.latency.record(gap);
            }
            if !step.poll {
                profile
                    .offset
                    .record(u64::try_from(step.ts_us.saturating_sub(start)).unwrap_or(0));
            }
        }
        learned
    }

    /// Records how long each REST request of a fault-free transaction took to answer, and each
    /// RPC call to be replied to (the reply paired with its call by message id). Every request
    /// counts, polls and repetitions included, which normalization would fold.
    fn learn_answers(&mut self, transaction: &Transaction) {
        let mut calls: HashMap<&str, (&str, &str, i64)> = HashMap::new();
        for event in &transaction.events {
            match event.kind {
                EventKind::RestRequest => {
                    let (Some(service), Some(duration)) = (&event.service, event.duration_us)
                    else {
                        continue;
                    };
                    self.answers
                        .entry(answer_key(service, &event.operation))
                        .or_default()
                        .record(duration);
                }
                EventKind::RpcCall => {
                    if let (Some(service), Some(id)) = (&event.service, &event.ids.msg_id) {
                        calls.insert(id, (service, &event.operation, event.ts_us));
                    }
                }
                _ => {}
            }
        }
        for event in &transaction.events {
            if event.kind != EventKind::RpcReply {
                continue;
            }
            let Some(&(service, operation, called)) =
                event.ids.msg_id.as_deref().and_then(|id| calls.get(id))
            else {
                continue;
            };
            self.answers
                .entry(reply_key(service, operation))
                .or_default()
                .record(u64::try_from(event.ts_us.saturating_sub(called)).unwrap_or(0));
        }
    }

    /// The learned answer time of REST operation `key` and the bound beyond which an answer is
    /// slow, when it has been learned.
    /// `None` too when it was timed fewer than [`Config::min_step_samples`] times.
    pub fn answer_bound(&self, key: &str) -> Option<(&LatencyProfile, u64)> {
        let profile = self.answers.get(key)?;
        if profile.count < self.config.min_step_samples {
            return None;
        }
        let bound = profile.bound(&self.config.timing)?;
        let scale = self.answer_scale.unwrap_or(1.0).max(1.0);
        Some((profile, (bound as f64 * scale).ceil() as u64))
    }

    /// The time after which a step of `command` with latency `profile` is late: the learned
    /// bound times the command's calibrated timing scale. `None` for a step timed fewer than
    /// [`Config::min_step_samples`] times, too few to judge.
    pub fn step_bound(&self, command: &str, profile: &LatencyProfile) -> Option<u64> {
        if profile.count < self.config.min_step_samples {
            return None;
        }
        let bound = profile.bound(&self.config.timing)?;
        let scale = self
            .commands
            .get(command)
            .and_then(|fingerprint| fingerprint.calibration.as_ref())
            .map_or(1.0, |calibration| calibration.timing_scale.max(1.0));
        Some((bound as f64 * scale).ceil() as u64)
    }

    /// Whether `command` was learned from enough normal runs to judge its sequence and timing
    /// ([`Config::min_runs`]).
    pub fn enough_runs(&self, command: &str) -> bool {
        self.commands.get(command).is_some_and(|fingerprint| {
            self.config.min_runs <= 1 || fingerprint.runs >= self.config.min_runs
        })
    }

    /// Whether error `symbol` is part of normal runs of `command`: at least
    /// [`Config::usual_error_rate`] of them showed it, and at least [`Config::min_runs`] did.
    pub fn usual_error(&self, command: &str, symbol: &str) -> bool {
        let Some(fingerprint) = self.commands.get(command) else {
            return false;
        };
        let shown = fingerprint.error_runs.get(symbol).copied().unwrap_or(0);
        shown >= self.config.min_runs.max(1)
            && shown as f64 >= self.config.usual_error_rate * fingerprint.runs as f64
    }

    /// Learns a run recorded under a known fault as a negative fingerprint.
    pub fn learn_negative(&mut self, transaction: &Transaction, label: &FaultLabel) -> Learned {
        let trace = self.trace(transaction);
        if trace.background || trace.steps.is_empty() {
            return Learned::Skipped;
        }
        let anchor = self.diagnose_trace(&trace).anchor;
        let ids: Vec<u32> = trace
            .steps
            .iter()
            .map(|step| self.intern(&step.symbol))
            .collect();
        let existing = self.negatives.iter_mut().find(|negative| {
            negative.command == trace.command
                && negative.label == *label
                && negative.symbols == ids
                && negative.anchor == anchor
        });
        match existing {
            Some(negative) => negative.count += 1,
            None => self.negatives.push(NegativeFingerprint {
                command: trace.command.clone(),
                label: label.clone(),
                symbols: ids,
                anchor,
                count: 1,
            }),
        }
        self.refresh_spread(&trace.command, label);
        Learned::Negative {
            command: trace.command,
        }
    }
}

/// Distance added between a trace and a negative fingerprint that departed from normal behaviour
/// at a different step.
const ANCHOR_MISMATCH_PENALTY: f64 = 0.5;

/// The distance between a trace (`query`, `query_len` symbols, departed from normal behaviour at
/// `anchor`) and a negative fingerprint: the normalized edit distance, plus
/// [`ANCHOR_MISMATCH_PENALTY`] when the two departed at different steps.
///
/// A trace shorter than the negative is also compared with the negative's beginning of the same
/// length, and the smaller distance counts. A transaction diagnosed while its fault still holds it
/// (the live detector diagnoses it once it goes quiet) stops where the fault stopped it, while
/// negatives learned from a finished run hold the whole, late transaction: the same fault caught
/// earlier must not look like another one.
pub(crate) fn negative_distance(
    store: &Store,
    query: &Pattern,
    query_ids: &[u32],
    anchor: Option<&str>,
    negative: &NegativeFingerprint,
) -> f64 {
    let symbols = &negative.symbols;
    let query_len = query_ids.len();
    let mut distance = normalized(query.distance(symbols), query_len, symbols.len());
    if query_len < symbols.len() {
        // The beginning of a run is a prefix of each lane, not of the lane layout.
        let (cost, _) = lane_prefixes(
            query_ids,
            &store.lanes_of_ids(query_ids),
            symbols,
            &store.lanes_of_ids(symbols),
        );
        distance = distance.min(normalized(cost, query_len, query_len));
    }
    if negative.anchor.as_deref() != anchor {
        distance += ANCHOR_MISMATCH_PENALTY;
    }
    distance
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_prefers_exact_then_smallest_distance() {
        let mut command = CommandFingerprint::default();
        command.push_variant(vec![1, 2, 3, 4]);
        command.push_variant(vec![1, 2, 3, 4, 5, 6, 7, 8]);
        command.push_variant(vec![9, 9]);
        assert_eq!(command.nearest(&[1, 2, 3, 4]), Some((0, 0)));
        assert_eq!(command.nearest(&[1, 2, 3, 4, 5, 6, 7]), Some((1, 1)));
        assert_eq!(command.nearest(&[9]), Some((2, 1)));
        assert_eq!(CommandFingerprint::default().nearest(&[1]), None);
    }

    #[test]
    fn a_repeated_shape_is_found_at_its_first_index() {
        let mut command = CommandFingerprint::default();
        command.push_variant(vec![1, 2, 3, 4]);
        command.push_variant(vec![5, 6, 7]);
        command.push_variant(vec![1, 2, 3, 4]);
        command.push_variant(vec![5, 6, 7]);
        assert_eq!(command.by_length.len(), 2, "copies are not indexed");
        assert_eq!(command.nearest(&[5, 6, 7]), Some((1, 0)));
        assert_eq!(command.nearest(&[1, 2, 3]), Some((0, 1)));
        assert_eq!(command.nearest(&[5, 6, 7, 8]), Some((1, 1)));
    }

    #[test]
    fn bounded_searches() {
        let mut command = CommandFingerprint::default();
        command.push_variant(vec![1, 2, 3, 4]);
        command.push_variant(vec![5, 6, 7, 8, 9, 10]);
        assert_eq!(command.nearest_within(&[1, 2, 3, 9], 1), Some((0, 1)));
        assert_eq!(command.nearest_within(&[9, 9, 9, 9], 2), None);
        assert_eq!(
            command.nearest_within(&[5, 6, 7, 8, 9, 10, 11], 1),
            Some((1, 1))
        );
    }

    #[test]
    fn threshold_follows_learned_spread_within_limits() {
        let config = Config::default();
        let mut command = CommandFingerprint::default();
        assert_eq!(command.threshold(&config), config.min_threshold);
        command.novelty = vec![0.0, 0.2, 0.1];
        assert!((command.threshold(&config) - 0.3).abs() < 1e-9);
        command.novelty = vec![0.9];
        assert_eq!(command.threshold(&config), config.max_threshold);
    }

    /// Regression: stores written before faults had distance bounds (no `negative_*` settings in
    /// their config) still load, with the default bounds.
    #[test]
    fn stores_without_fault_bound_settings_load_with_the_defaults() {
        let mut json: serde_json::Value =
            serde_json::from_str(&Store::default().to_json()).unwrap();
        let config = json["config"].as_object_mut().unwrap();
        config.retain(|key, _| !key.starts_with("negative_"));
        assert!(config.contains_key("knn"));
        let store = Store::from_json(&json.to_string(), Path::new("old.json")).unwrap();
        assert_eq!(store.config, Config::default());
    }

    #[test]
    fn limits_the_wrong_way_round_are_refused() {
        let mut store = Store::default();
        store.config.negative_min_bound = 0.6;
        let error = Store::from_json(&store.to_json(), Path::new("fp.json")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("negative bound limits are 0.6..0.45"),
            "{error}"
        );
    }

    #[test]
    fn percentile99_weighs_each_value_by_its_count() {
        assert_eq!(percentile99([]), 0.0);
        assert_eq!(percentile99([(0.4, 1)]), 0.4);
        // 99 zeros and one 0.4: the 99th percentile is 0.
        assert_eq!(percentile99([(0.4, 1), (0.0, 99)]), 0.0);
        assert_eq!(percentile99([(0.4, 2), (0.0, 98)]), 0.4);
    }

    #[test]
    fn stores_of_another_format_or_version_are_refused() {
        let origin = Path::new("fp.json");
        let store = Store {
            version: 99,
            ..Store::default()
        };
        let error = Store::from_json(&store.to_json(), origin).unwrap_err();
        assert!(error.to_string().contains("version 99"), "{error}");
        let error = Store::from_json("{\"format\": 1}", origin).unwrap_err();
        assert!(error.to_string().starts_with("fp.json:1:"), "{error}");
    }

    /// A version 3 store (before calibration) loads as version 4 without calibrations, and
    /// judges as it did: nothing it holds changed meaning.
    #[test]
    fn version_3_stores_load_without_calibration() {
        let mut json: serde_json::Value =
            serde_json::from_str(&Store::default().to_json()).unwrap();
        json["version"] = 3.into();
        let config = json["config"].as_object_mut().unwrap();
        for added in [
            "min_runs",
            "min_step_samples",
            "usual_error_rate",
            "false_alarm_rate",
        ] {
            config.remove(added);
        }
        json["config"]["normalize"]
            .as_object_mut()
            .unwrap()
            .remove("min_period_us");
        let store = Store::from_json(&json.to_string(), Path::new("fp.json")).unwrap();
        assert_eq!(store.version, STORE_VERSION);
        assert_eq!(store.config, Config::default());
        assert!(store.run_rule.is_none() && store.answer_scale.is_none());
    }

    /// Regression (issue 6, lane layout): a store learned with the earlier normalization has a
    /// field today's config lacks; it is refused for its version, with what to do about it.
    #[test]
    fn older_stores_are_refused_with_a_hint_to_learn_them_again() {
        // Version 2 stores lack the answer times (the slow-answer fix of issue 6).
        let mut json: serde_json::Value =
            serde_json::from_str(&Store::default().to_json()).unwrap();
        json["version"] = 2.into();
        json.as_object_mut().unwrap().remove("answers");
        let message = Store::from_json(&json.to_string(), Path::new("fp.json"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("answer times"), "{message}");
        assert!(message.contains("butterfly fingerprint learn"), "{message}");

        let mut json: serde_json::Value =
            serde_json::from_str(&Store::default().to_json()).unwrap();
        json["version"] = 1.into();
        json["config"]["normalize"]["concurrency_window_us"] = 5_000.into();
        let error = Store::from_json(&json.to_string(), Path::new("fp.json")).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("version 1 is not supported"), "{message}");
        assert!(message.contains("butterfly fingerprint learn"), "{message}");
    }
}
