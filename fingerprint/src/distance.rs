//! Levenshtein distance over sequences of interned symbol ids.
//!
//! [`Pattern`] is the one-against-many comparator: it precomputes, for one query sequence, the
//! bit masks of the bit-parallel algorithm of Myers (1999) in its blocked form (Hyyrö's
//! formulation), so that each comparison with a stored sequence costs `O(⌈m/64⌉ · n)` word
//! operations. Because symbol ids are interned into a small dense range, the match table is a
//! plain array indexed by id rather than a hash map; ids beyond [`DENSE_ALPHABET_LIMIT`] fall back
//! to a hash map so that arbitrary `u32` tokens still work.
//!
//! A score cutoff ([`Pattern::distance_within`]) stops as soon as the distance provably exceeds
//! the cutoff, and the length difference is used as a free lower bound before any work is done.
//! [`Pattern::distances_within`] compares one query with many texts, [`BATCH_LANES`] at a time
//! in lock step, which is how a diagnosis scans the variants of a command. A single pair
//! ([`levenshtein`]) strips its common prefix and suffix, and with a query of up to 64 symbols
//! builds its match masks in a reusable per-thread table instead of a [`Pattern`].
//! [`align`] and [`best_prefix`] are the quadratic dynamic programs used for localization and for
//! live transactions; they run once per diagnosed trace, not once per stored variant.

use std::collections::HashMap;

const WORD_BITS: usize = 64;

/// Token ids below this limit get a dense match table (one row of masks per id).
pub const DENSE_ALPHABET_LIMIT: u32 = 1 << 16;

/// A query sequence prepared for many bit-parallel comparisons.
#[derive(Debug, Clone)]
pub struct Pattern {
    len: usize,
    words: usize,
    table: MatchTable,
    zeros: Vec<u64>,
}

#[derive(Debug, Clone)]
enum MatchTable {
    /// `masks[token * words + word]`, for tokens `< alphabet`, then one row of zeros that every
    /// larger token shares (so that a lookup clamps the token instead of branching on it).
    Dense { alphabet: usize, masks: Vec<u64> },
    /// `masks[row * words + word]` with `rows[token] = row`.
    Sparse {
        rows: HashMap<u32, usize>,
        masks: Vec<u64>,
    },
}

impl Pattern {
    /// Prepares `tokens` as the query side of comparisons.
    pub fn new(tokens: &[u32]) -> Self {
        let len = tokens.len();
        let words = len.div_ceil(WORD_BITS).max(1);
        let max_token = tokens.iter().copied().max().unwrap_or(0);
        let table = if max_token < DENSE_ALPHABET_LIMIT {
            let alphabet = max_token as usize + 1;
            let mut masks = vec![0u64; (alphabet + 1) * words];
            for (position, &token) in tokens.iter().enumerate() {
                masks[token as usize * words + position / WORD_BITS] |=
                    1u64 << (position % WORD_BITS);
            }
            MatchTable::Dense { alphabet, masks }
        } else {
            let mut rows: HashMap<u32, usize> = HashMap::new();
            let mut masks = Vec::new();
            for (position, &token) in tokens.iter().enumerate() {
                let next_row = rows.len();
                let row = *rows.entry(token).or_insert_with(|| {
                    masks.extend(std::iter::repeat_n(0u64, words));
                    next_row
                });
                masks[row * words + position / WORD_BITS] |= 1u64 << (position % WORD_BITS);
            }
            MatchTable::Sparse { rows, masks }
        };
        Pattern {
            len,
            words,
            table,
            zeros: vec![0u64; words],
        }
    }

    /// Length of the query sequence.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the query sequence is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn masks(&self, token: u32) -> &[u64] {
        let words = self.words;
        match &self.table {
            MatchTable::Dense { alphabet, masks } => {
                let index = (token as usize).min(*alphabet);
                &masks[index * words..(index + 1) * words]
            }
            MatchTable::Sparse { rows, masks } => match rows.get(&token) {
                Some(&row) => &masks[row * words..(row + 1) * words],
                None => &self.zeros,
            },
        }
    }

    /// The Levenshtein distance between the query and `text`.
    pub fn distance(&self, text: &[u32]) -> usize {
        self.run(text, usize::MAX)
            .expect("an unbounded comparison always finishes")
    }

    /// The Levenshtein distance between the query and `text` if it is at most `max`, else `None`.
    pub fn distance_within(&self, text: &[u32], max: usize) -> Option<usize> {
        if self.len.abs_diff(text.len()) > max {
            return None;
        }
        self.run(text, max)
    }

    fn run(&self, text: &[u32], max: usize) -> Option<usize> {
        let distance = if self.len == 0 {
            text.len()
        } else if text.is_empty() {
            self.len
        } else if self.words == 1 {
            self.run_single_word(text, max)?
        } else {
            self.run_blocks(text, max)?
        };
        (distance <= max).then_some(distance)
    }

    /// The one-word case (query of at most 64 symbols), kept separate because it is the hot path.
    fn run_single_word(&self, text: &[u32], max: usize) -> Option<usize> {
        match &self.table {
            MatchTable::Dense { masks, .. } => {
                single_word(self.len, text, max, |token| dense_mask(masks, token))
            }
            MatchTable::Sparse { .. } => {
                single_word(self.len, text, max, |token| self.masks(token)[0])
            }
        }
    }

    /// The blocked case: the column is split into 64-row words, and the horizontal delta leaving
    /// the top row of one word enters the bottom row of the next (Hyyrö's block step).
    fn run_blocks(&self, text: &[u32], max: usize) -> Option<usize> {
        let words = self.words;
        match &self.table {
            MatchTable::Dense { alphabet, masks } => blocks(self.len, words, text, max, |token| {
                let index = (token as usize).min(*alphabet);
                &masks[index * words..(index + 1) * words]
            }),
            MatchTable::Sparse { .. } => {
                blocks(self.len, words, text, max, |token| self.masks(token))
            }
        }
    }

    /// Compares the query with several texts at once: `results[i]` becomes the distance to
    /// `texts[i]` if it is at most `limits[i]`, else `None` (exactly as
    /// [`Pattern::distance_within`]).
    ///
    /// For a query of at most 64 symbols, [`BATCH_LANES`] texts advance column by column in
    /// lock step: the lanes are independent, so the processor overlaps their dependency chains
    /// (and the compiler uses vector registers), which is what makes scanning thousands of
    /// stored variants for one trace cheap. Columns that all texts of a batch share at their
    /// start are computed once. Longer queries are compared one text at a time.
    pub fn distances_within(
        &self,
        texts: &[&[u32]],
        limits: &[usize],
        results: &mut [Option<usize>],
    ) {
        assert!(
            texts.len() == limits.len() && texts.len() == results.len(),
            "one limit and one result per text"
        );
        let dense = match &self.table {
            MatchTable::Dense { masks, .. } if self.words == 1 && self.len > 0 => Some(masks),
            _ => None,
        };
        let Some(masks) = dense else {
            for ((text, &limit), result) in texts.iter().zip(limits).zip(results.iter_mut()) {
                *result = self.distance_within(text, limit);
            }
            return;
        };
        for ((texts, limits), results) in texts
            .chunks(BATCH_LANES)
            .zip(limits.chunks(BATCH_LANES))
            .zip(results.chunks_mut(BATCH_LANES))
        {
            lanes(self.len, masks, texts, limits, results);
        }
    }
}

/// Hyyrö's blocked algorithm for a query of `len > 64` symbols in `words` words; `masks(token)`
/// gives the query positions equal to `token`, one word per block.
#[inline(always)]
fn blocks<'a>(
    len: usize,
    words: usize,
    text: &[u32],
    max: usize,
    masks: impl Fn(u32) -> &'a [u64],
) -> Option<usize> {
    // Queries of up to STACK_WORDS words (1024 symbols) keep their column state on the stack,
    // so that a comparison allocates nothing.
    let mut stack_state = [(!0u64, 0u64); STACK_WORDS];
    let mut heap_state = Vec::new();
    let state: &mut [(u64, u64)] = if words <= STACK_WORDS {
        &mut stack_state[..words]
    } else {
        heap_state.resize(words, (!0u64, 0u64));
        &mut heap_state
    };
    let (last_state, inner_state) = state.split_last_mut().expect("at least one word");
    let last_shift = ((len - 1) % WORD_BITS) as u32;
    let mut score = len;
    // The distance can drop by at most one per remaining column: past this, give up.
    let give_up = max.saturating_add(text.len());
    for (column, &token) in text.iter().enumerate() {
        let masks = masks(token);
        let (last_mask, inner_masks) = masks.split_last().expect("at least one word");
        // Row 0 of the matrix is 0, 1, 2, …: the delta entering the first word is +1.
        let mut carry = 1i64;
        for (&eq, (vp, vn)) in inner_masks.iter().zip(inner_state.iter_mut()) {
            carry = block_step(eq, vp, vn, carry, (WORD_BITS - 1) as u32);
        }
        carry = block_step(
            *last_mask,
            &mut last_state.0,
            &mut last_state.1,
            carry,
            last_shift,
        );
        score = score.wrapping_add_signed(carry as isize);
        if score + column + 1 > give_up {
            return None;
        }
    }
    Some(score)
}

/// Query words kept on the stack by the blocked comparison.
const STACK_WORDS: usize = 16;

/// Texts compared in lock step by [`Pattern::distances_within`].
pub const BATCH_LANES: usize = 8;

/// One word of one column of Hyyrö's blocked algorithm: updates the vertical deltas `vp`/`vn`
/// of the word from the match mask `eq` and the horizontal delta `carry_in` entering its lowest
/// row, and returns the horizontal delta leaving row `high` of the word (`-1`, `0` or `+1`).
#[inline(always)]
fn block_step(eq: u64, vp: &mut u64, vn: &mut u64, carry_in: i64, high: u32) -> i64 {
    let negative_in = u64::from(carry_in < 0);
    let positive_in = u64::from(carry_in > 0);
    let (pv, mv) = (*vp, *vn);
    let xv = eq | mv;
    let eq = eq | negative_in;
    let xh = ((eq & pv).wrapping_add(pv) ^ pv) | eq;
    let ph = mv | !(xh | pv);
    let mh = pv & xh;
    let carry_out = ((ph >> high) & 1) as i64 - ((mh >> high) & 1) as i64;
    let ph = (ph << 1) | positive_in;
    let mh = (mh << 1) | negative_in;
    *vp = mh | !(xv | ph);
    *vn = ph & xv;
    carry_out
}

/// The match mask of `token` in a one-word table indexed by token whose last entry is zero and
/// stands for every token beyond the table: clamping the index is branch-free, where a bounds
/// test would be a branch that the processor mispredicts whenever texts mix symbols inside and
/// outside the query's alphabet.
#[inline(always)]
fn dense_mask(masks: &[u64], token: u32) -> u64 {
    masks[(token as usize).min(masks.len() - 1)]
}

/// Text columns between two checks of whether a batch can stop early.
const CHUNK_COLUMNS: usize = 16;

/// Runs every lane through columns `from..from + run` of its text (each long enough), looking up
/// the match masks on the fly. Out of line so that the lanes' state lives in (vector) registers
/// for the whole run rather than in the caller's frame.
#[inline(never)]
fn advance_lanes(
    vp: &mut [u64; BATCH_LANES],
    vn: &mut [u64; BATCH_LANES],
    masks: &[u64],
    texts: &[&[u32]; BATCH_LANES],
    from: usize,
    run: usize,
) {
    // Slices of exactly `run` columns, so that the loop below needs no bounds checks on them.
    let columns: [&[u32]; BATCH_LANES] = std::array::from_fn(|lane| &texts[lane][from..][..run]);
    let (mut pv, mut mv) = (*vp, *vn);
    #[expect(
        clippy::needless_range_loop,
        reason = "the column indexes eight slices at once"
    )]
    for column in 0..run {
        let eq: [u64; BATCH_LANES] =
            std::array::from_fn(|lane| dense_mask(masks, columns[lane][column]));
        for lane in 0..BATCH_LANES {
            (pv[lane], mv[lane]) = myers_step(eq[lane], pv[lane], mv[lane]);
        }
    }
    (*vp, *vn) = (pv, mv);
}

/// Myers' single-word algorithm for up to [`BATCH_LANES`] texts against one query of
/// `1..=64` symbols with dense match masks.
///
/// All lanes advance together through runs of columns that end where the next text ends (there
/// its score is read off) or at a chunk boundary (there the batch stops early once every
/// unfinished lane is provably beyond its limit). A lane whose text has ended, or that has no
/// text, is fed the longest text instead: its state is never read again. The lanes do not track
/// the score column by column: the distance after column `j` is `bottom_row(len, j, vp, vn)`.
fn lanes(
    len: usize,
    masks: &[u64],
    texts: &[&[u32]],
    limits: &[usize],
    results: &mut [Option<usize>],
) {
    let used = texts.len();
    let mut finals = [None::<usize>; BATCH_LANES];
    let mut by_length = [0usize; BATCH_LANES];
    for (position, lane) in by_length.iter_mut().enumerate() {
        *lane = position;
    }
    by_length[..used].sort_unstable_by_key(|&lane| texts[lane].len());
    let longest = by_length[..used]
        .last()
        .map_or(&[][..], |&lane| texts[lane]);
    let mut feed = [longest; BATCH_LANES];
    feed[..used].copy_from_slice(texts);
    // Columns that every text has in common (variants visited in sorted order often share a
    // prefix) are computed once, in one lane, and the state copied to all of them.
    let mut column = common_prefix(texts);
    let (mut pv, mut mv) = (!0u64, 0u64);
    for &token in &longest[..column] {
        (pv, mv) = myers_step(dense_mask(masks, token), pv, mv);
    }
    let mut vp = [pv; BATCH_LANES];
    let mut vn = [mv; BATCH_LANES];
    let mut next_end = 0;
    while next_end < used && texts[by_length[next_end]].len() == column {
        let lane = by_length[next_end];
        finals[lane] = Some(bottom_row(len, column, pv, mv));
        feed[lane] = longest;
        next_end += 1;
    }
    while column < longest.len() {
        let chunk_end = (column + CHUNK_COLUMNS).min(longest.len());
        while column < chunk_end {
            let run_end = match by_length[next_end..used].first() {
                Some(&lane) => texts[lane].len().min(chunk_end),
                None => chunk_end,
            };
            advance_lanes(&mut vp, &mut vn, masks, &feed, column, run_end - column);
            column = run_end;
            while next_end < used && texts[by_length[next_end]].len() == column {
                let lane = by_length[next_end];
                finals[lane] = Some(bottom_row(len, column, vp[lane], vn[lane]));
                feed[lane] = longest;
                next_end += 1;
            }
        }
        // The distance can drop by at most one per remaining column.
        let alive = by_length[next_end..used].iter().any(|&lane| {
            let remaining = texts[lane].len() - column;
            bottom_row(len, column, vp[lane], vn[lane]) <= limits[lane].saturating_add(remaining)
        });
        if !alive {
            break;
        }
    }
    for lane in 0..used {
        // A lane cut short (no final score) was beyond its limit.
        results[lane] = finals[lane].filter(|&distance| distance <= limits[lane]);
    }
}

/// The length of the longest common prefix of `texts` (0 for none).
fn common_prefix(texts: &[&[u32]]) -> usize {
    let Some((first, rest)) = texts.split_first() else {
        return 0;
    };
    rest.iter().fold(first.len(), |shared, text| {
        first[..shared]
            .iter()
            .zip(text.iter())
            .take_while(|(a, b)| a == b)
            .count()
    })
}

/// One text column of Myers' single-word algorithm when the bottom row's score is not tracked:
/// the new vertical deltas `(vp, vn)` from the match mask `eq` and the previous ones.
///
/// The textbook step computes `xh = ((eq & vp) + vp) ^ vp | eq`, the horizontal +1 deltas
/// `ph = ((vn | !(xh | vp)) << 1) | 1` (row 0 of the matrix is 0, 1, 2, …: every step to the
/// right adds one there) and then `vp' = mh | !(xv | ph)` and `vn' = ph & xv`. A comparison of
/// one text is a chain of these steps, so what matters is the longest dependency path from
/// `vp`/`vn` to `vp'`/`vn'`; it is shortened from 11 to 7 operations by two identities:
/// `xh | vp = ((eq & vp) + vp) | (eq | vp)` (as `(a ^ b) | b = a | b`), and computing the
/// complement `!ph = (!vn & (xh | vp)) << 1`, which both results use directly through an
/// "and not" (a single instruction on vector registers).
#[inline(always)]
fn myers_step(eq: u64, vp: u64, vn: u64) -> (u64, u64) {
    let xv = eq | vn;
    let sum = (eq & vp).wrapping_add(vp);
    let xh = (sum ^ vp) | eq;
    let not_ph = (!vn & (sum | (eq | vp))) << 1;
    let mh = (vp & xh) << 1;
    (mh | (!xv & not_ph), xv & !not_ph)
}

/// The bottom-row value `D[len][column]` of a query of `1..=64` symbols from the vertical deltas
/// of its column: the top row is `column`, and the deltas of the `len` rows below it sum to the
/// rest.
#[inline(always)]
fn bottom_row(len: usize, column: usize, vp: u64, vn: u64) -> usize {
    let rows = if len == WORD_BITS {
        !0
    } else {
        (1u64 << len) - 1
    };
    column + (vp & rows).count_ones() as usize - (vn & rows).count_ones() as usize
}

/// Myers' algorithm for a query of `len ≤ 64` symbols; `eq(token)` gives the query positions
/// equal to `token` as bits.
#[inline(always)]
fn single_word(len: usize, text: &[u32], max: usize, eq: impl Fn(u32) -> u64) -> Option<usize> {
    if max >= len.max(text.len()) {
        // The distance never exceeds the longer length, so this cutoff cannot bite: skip the
        // score bookkeeping and read the distance off the last column.
        let (mut vp, mut vn) = (!0u64, 0u64);
        for &token in text {
            (vp, vn) = myers_step(eq(token), vp, vn);
        }
        return Some(bottom_row(len, text.len(), vp, vn));
    }
    let last = 1u64 << (len - 1);
    let mut vp = !0u64;
    let mut vn = 0u64;
    let mut score = len;
    // Checking the whole column only pays off when the cutoff band is narrow.
    let checkpoints = max.saturating_mul(2) < len;
    // The distance can drop by at most one per remaining column: past this, give up.
    let give_up = max.saturating_add(text.len());
    for (column, &token) in text.iter().enumerate() {
        let eq = eq(token);
        let xv = eq | vn;
        let xh = ((eq & vp).wrapping_add(vp) ^ vp) | eq;
        let ph = vn | !(xh | vp);
        let mh = vp & xh;
        // Branch-free: which way the bottom row moves is data, not a pattern to predict.
        score += usize::from(ph & last != 0);
        score -= usize::from(mh & last != 0);
        // Row 0 of the matrix is 0, 1, 2, …: every step to the right adds one there.
        let ph = (ph << 1) | 1;
        let mh = mh << 1;
        vp = mh | !(xv | ph);
        vn = ph & xv;
        if score + column + 1 > give_up {
            return None;
        }
        if checkpoints
            && (column + 1) % CHECKPOINT_COLUMNS == 0
            && column_lower_bound(vp, vn, len, column + 1, text.len() - column - 1, max) > max
        {
            return None;
        }
    }
    Some(score)
}

/// How often (in text columns) a cut-off comparison checks the whole column for a lower bound.
const CHECKPOINT_COLUMNS: usize = 8;

/// A lower bound on the final distance from one column of the matrix (one query word): every
/// alignment passes through some row `i` of column `column`, and from there still costs at least
/// the difference between the remaining query and text lengths. Only rows where that difference
/// is within `max` can give a bound `≤ max`, so only that band is rebuilt from the column's
/// vertical deltas (`vp`/`vn` bits, with `D[0][column] = column`). Kept out of line so that the
/// hot loop that calls it now and then keeps its state in registers.
#[inline(never)]
fn column_lower_bound(
    vp: u64,
    vn: u64,
    len: usize,
    column: usize,
    remaining: usize,
    max: usize,
) -> usize {
    let (len_i, remaining_i, max_i) = (len as isize, remaining as isize, max as isize);
    let center = len_i - remaining_i;
    let low = (center - max_i).max(0);
    let high = (center + max_i).min(len_i);
    if low > high {
        return max + 1;
    }
    let below = |row: isize| -> u64 { if row >= 64 { !0 } else { (1u64 << row) - 1 } };
    let mut value = column as isize + (vp & below(low)).count_ones() as isize
        - (vn & below(low)).count_ones() as isize;
    let mut best = value + (len_i - low - remaining_i).abs();
    for row in low + 1..=high {
        let bit = 1u64 << (row - 1);
        if vp & bit != 0 {
            value += 1;
        } else if vn & bit != 0 {
            value -= 1;
        }
        best = best.min(value + (len_i - row - remaining_i).abs());
    }
    best.max(0) as usize
}

/// The Levenshtein distance between two token sequences.
pub fn levenshtein(a: &[u32], b: &[u32]) -> usize {
    pair(a, b, usize::MAX).expect("an unbounded comparison always finishes")
}

/// The Levenshtein distance if it is at most `max`, else `None`.
pub fn levenshtein_within(a: &[u32], b: &[u32], max: usize) -> Option<usize> {
    pair(a, b, max)
}

/// One comparison: the shorter sequence is the query. A common prefix and suffix cost nothing
/// and are stripped first. A query of up to 64 symbols gets its match masks in a reusable
/// per-thread table indexed by symbol id ([`with_scratch_masks`]), or in a small hash table on
/// the stack ([`SmallMasks`]) when its ids are too large for that, because for a single pair
/// building a [`Pattern`] (allocating and clearing a mask per alphabet symbol) would cost as much
/// as the comparison itself.
fn pair(a: &[u32], b: &[u32], max: usize) -> Option<usize> {
    let (a, b) = strip_common_affixes(a, b);
    let (query, text) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if text.len() - query.len() > max {
        return None;
    }
    if query.is_empty() {
        return Some(text.len());
    }
    if query.len() > WORD_BITS {
        return Pattern::new(query).distance_within(text, max);
    }
    let largest = query.iter().copied().max().unwrap_or(0);
    if largest < DENSE_ALPHABET_LIMIT {
        with_scratch_masks(query, largest, |masks| {
            single_word(query.len(), text, max, |token| dense_mask(masks, token))
        })
    } else {
        let masks = SmallMasks::new(query);
        single_word(query.len(), text, max, |token| masks.get(token))
    }
}

/// `a` and `b` without their common prefix and suffix, which an optimal alignment matches at no
/// cost, so that the distance of the rests is the distance of the whole.
fn strip_common_affixes<'a, 'b>(a: &'a [u32], b: &'b [u32]) -> (&'a [u32], &'b [u32]) {
    let prefix = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = common_suffix(a, b);
    (&a[..a.len() - suffix], &b[..b.len() - suffix])
}

/// How many symbols `a` and `b` share at their ends.
fn common_suffix(a: &[u32], b: &[u32]) -> usize {
    a.iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count()
}

thread_local! {
    /// Match masks indexed by symbol id, all zero between uses; see [`with_scratch_masks`].
    static SCRATCH_MASKS: std::cell::RefCell<Vec<u64>> = const {
        std::cell::RefCell::new(Vec::new())
    };
}

/// Runs `compare` with the match masks of `query` (at most 64 symbols, every id at most
/// `largest`) in a table indexed by symbol id for [`dense_mask`]: it reaches past `largest`, so
/// its last entry is zero.
///
/// The table is kept per thread and all zero between uses, so preparing a query costs one write
/// per query symbol (and clearing them again afterwards) instead of allocating and clearing a
/// row per alphabet symbol. It only grows, up to [`DENSE_ALPHABET_LIMIT`] words.
fn with_scratch_masks<R>(query: &[u32], largest: u32, compare: impl FnOnce(&[u64]) -> R) -> R {
    debug_assert!(query.len() <= WORD_BITS && largest < DENSE_ALPHABET_LIMIT);
    /// Clears the query's masks even if `compare` unwinds, so the table stays all zero.
    struct Clear<'a> {
        masks: &'a mut [u64],
        query: &'a [u32],
    }
    impl Drop for Clear<'_> {
        fn drop(&mut self) {
            for &token in self.query {
                self.masks[token as usize] = 0;
            }
        }
    }
    SCRATCH_MASKS.with(|cell| {
        // `compare` only runs the bit-parallel loop, never another pair, so this is not nested.
        let mut masks = cell.borrow_mut();
        if masks.len() < largest as usize + 2 {
            masks.resize(largest as usize + 2, 0);
        }
        let clear = Clear {
            masks: &mut masks,
            query,
        };
        for (position, &token) in query.iter().enumerate() {
            clear.masks[token as usize] |= 1u64 << position;
        }
        compare(clear.masks)
    })
}

/// Slots of a [`SmallMasks`] table: twice the largest number of distinct symbols it holds.
const SMALL_SLOTS: usize = 2 * WORD_BITS;

/// The match masks of a query of at most 64 symbols in an open-addressing hash table (linear
/// probing, at most half full). A slot is empty when its mask is zero, since a stored symbol
/// occurs at least once.
struct SmallMasks {
    tokens: [u32; SMALL_SLOTS],
    masks: [u64; SMALL_SLOTS],
}

impl SmallMasks {
    fn new(query: &[u32]) -> SmallMasks {
        debug_assert!(query.len() <= WORD_BITS);
        let mut table = SmallMasks {
            tokens: [0; SMALL_SLOTS],
            masks: [0; SMALL_SLOTS],
        };
        for (position, &token) in query.iter().enumerate() {
            let slot = table.slot(token);
            table.tokens[slot] = token;
            table.masks[slot] |= 1u64 << position;
        }
        table
    }

    /// The slot holding `token`, or the empty slot where it belongs.
    #[inline(always)]
    fn slot(&self, token: u32) -> usize {
        // Fibonacci hashing: the top bits of the product spread consecutive ids.
        let mut slot =
            (token.wrapping_mul(0x9E37_79B9) >> (32 - SMALL_SLOTS.trailing_zeros())) as usize;
        while self.masks[slot] != 0 && self.tokens[slot] != token {
            slot = (slot + 1) % SMALL_SLOTS;
        }
        slot
    }

    #[inline(always)]
    fn get(&self, token: u32) -> u64 {
        self.masks[self.slot(token)]
    }
}

/// The distance divided by the longer length: `0.0` for equal sequences, `1.0` for disjoint ones.
pub fn normalized(distance: usize, len_a: usize, len_b: usize) -> f64 {
    let longest = len_a.max(len_b);
    if longest == 0 {
        0.0
    } else {
        distance as f64 / longest as f64
    }
}

/// The largest raw distance whose normalized value is at most `threshold`.
pub fn cutoff_for(threshold: f64, len_a: usize, len_b: usize) -> usize {
    let longest = len_a.max(len_b) as f64;
    (threshold * longest).floor().max(0.0) as usize
}

/// One step of an optimal alignment of a trace `a` against a reference `b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOp {
    /// `a[a] == b[b]`.
    Match {
        /// Index in the trace.
        a: usize,
        /// Index in the reference.
        b: usize,
    },
    /// `a[a]` took the place of `b[b]`.
    Substitute {
        /// Index in the trace.
        a: usize,
        /// Index in the reference.
        b: usize,
    },
    /// `a[a]` is extra: the reference has nothing there.
    Insert {
        /// Index in the trace.
        a: usize,
    },
    /// `b[b]` is missing from the trace.
    Delete {
        /// Index in the reference.
        b: usize,
    },
}

/// An optimal alignment of trace `a` against reference `b`, in order.
///
/// Ties prefer matches, then substitutions, then missing reference steps, so that a truncated
/// trace aligns as a common prefix followed by the missing tail.
pub fn align(a: &[u32], b: &[u32]) -> Vec<EditOp> {
    // A common suffix is always matched: where the last symbols are equal, the cost of the cell
    // equals its diagonal predecessor's (neighbouring cells differ by at most one), so the
    // traceback below takes the match. It is left out of the table and appended at the end,
    // which makes aligning a trace with a variant of exactly its shape linear.
    let suffix = common_suffix(a, b);
    let (n, m) = (a.len() - suffix, b.len() - suffix);
    let width = m + 1;
    let mut cost = vec![0u32; (n + 1) * width];
    for (j, cell) in cost[..width].iter_mut().enumerate() {
        *cell = j as u32;
    }
    for i in 1..=n {
        let (done, rest) = cost.split_at_mut(i * width);
        let previous = &done[(i - 1) * width..];
        let row = &mut rest[..width];
        row[0] = i as u32;
        let symbol = a[i - 1];
        for j in 1..=m {
            let diagonal = previous[j - 1] + u32::from(symbol != b[j - 1]);
            let up = previous[j] + 1;
            let left = row[j - 1] + 1;
            row[j] = diagonal.min(up).min(left);
        }
    }
    let mut ops = Vec::with_capacity(a.len().max(b.len()));
    ops.extend((0..suffix).map(|k| EditOp::Match {
        a: a.len() - 1 - k,
        b: b.len() - 1 - k,
    }));
    let (mut i, mut j) = (n, m);
    while i > 0 || j > 0 {
        let here = cost[i * width + j];
        if i > 0 && j > 0 {
            let same = a[i - 1] == b[j - 1];
            let diagonal = cost[(i - 1) * width + j - 1];
            if same && diagonal == here {
                ops.push(EditOp::Match { a: i - 1, b: j - 1 });
                i -= 1;
                j -= 1;
                continue;
            }
            if !same && diagonal + 1 == here {
                ops.push(EditOp::Substitute { a: i - 1, b: j - 1 });
                i -= 1;
                j -= 1;
                continue;
            }
        }
        if j > 0 && cost[i * width + j - 1] + 1 == here {
            ops.push(EditOp::Delete { b: j - 1 });
            j -= 1;
        } else {
            ops.push(EditOp::Insert { a: i - 1 });
            i -= 1;
        }
    }
    ops.reverse();
    ops
}

/// How well a (possibly unfinished) trace `a` matches some prefix of reference `b`: the minimum
/// over `j` of `levenshtein(a, b[..j])`, and the largest `j` that reaches it (the position in the
/// reference that the trace has reached).
pub fn best_prefix(a: &[u32], b: &[u32]) -> (usize, usize) {
    let m = b.len();
    let mut row: Vec<usize> = (0..=m).collect();
    let mut next = vec![0usize; m + 1];
    for (i, &token) in a.iter().enumerate() {
        next[0] = i + 1;
        for j in 1..=m {
            let diagonal = row[j - 1] + usize::from(token != b[j - 1]);
            next[j] = diagonal.min(row[j] + 1).min(next[j - 1] + 1);
        }
        std::mem::swap(&mut row, &mut next);
    }
    let mut best = (row[0], 0);
    for (j, &cost) in row.iter().enumerate() {
        if cost <= best.0 {
            best = (cost, j);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(a: &[u32], b: &[u32]) -> usize {
        strsim::generic_levenshtein(&a.to_vec(), &b.to_vec())
    }

    #[test]
    fn small_cases_agree_with_the_reference() {
        let cases: [(&[u32], &[u32]); 6] = [
            (&[], &[]),
            (&[1, 2, 3], &[]),
            (&[], &[4]),
            (&[1, 2, 3], &[1, 2, 3]),
            (&[1, 2, 3, 4], &[2, 3, 5]),
            (&[7, 7, 7], &[7, 8, 7, 7]),
        ];
        for (a, b) in cases {
            assert_eq!(levenshtein(a, b), reference(a, b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn long_sequences_cross_word_boundaries() {
        let a: Vec<u32> = (0..300).map(|i| (i * 7 % 13) as u32).collect();
        let mut b = a.clone();
        b.remove(64);
        b.insert(130, 99);
        b[200] = 42;
        b.truncate(290);
        assert_eq!(levenshtein(&a, &b), reference(&a, &b));
        assert_eq!(Pattern::new(&b).distance(&a), reference(&a, &b));
    }

    #[test]
    fn large_token_ids_use_the_sparse_table() {
        let a = [u32::MAX, 5, DENSE_ALPHABET_LIMIT + 3, 5];
        let b = [5, DENSE_ALPHABET_LIMIT + 3, u32::MAX];
        assert_eq!(levenshtein(&a, &b), reference(&a, &b));
    }

    #[test]
    fn a_pair_does_not_see_the_masks_of_the_previous_pair() {
        // The per-thread match table must be all zero again after each pair (the pairs share
        // no prefix or suffix, so none is stripped down to nothing).
        let pairs: [(&[u32], &[u32]); 4] = [
            (&[7, 8, 9], &[1, 9, 8, 7]),
            (&[1, 2, 3], &[7, 8, 9, 4]),
            (&[300, 2], &[9, 8, 7]),
            (&[9, 8, 7], &[2, 300, 1]),
        ];
        for (a, b) in pairs {
            assert_eq!(levenshtein(a, b), reference(a, b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn a_batch_sharing_a_prefix_scores_texts_that_end_inside_or_at_it() {
        let query = [1, 2, 4, 9];
        let texts: [&[u32]; 5] = [&[1, 2, 3], &[1, 2, 3], &[1, 2, 3, 4], &[1, 2, 3, 5, 6], &[]];
        let mut results = [None; 5];
        Pattern::new(&query).distances_within(&texts, &[usize::MAX; 5], &mut results);
        let expected = texts.map(|text| Some(reference(&query, text)));
        assert_eq!(results, expected);
    }

    #[test]
    fn cutoff_rejects_by_length_and_by_content() {
        assert_eq!(levenshtein_within(&[1, 2, 3, 4, 5], &[1], 3), None);
        assert_eq!(levenshtein_within(&[1, 2, 3], &[4, 5, 6], 2), None);
        assert_eq!(levenshtein_within(&[1, 2, 3], &[1, 5, 3], 1), Some(1));
    }

    #[test]
    fn alignment_of_a_truncated_trace_is_prefix_then_missing_tail() {
        let ops = align(&[1, 2], &[1, 2, 3, 4]);
        assert_eq!(
            ops,
            vec![
                EditOp::Match { a: 0, b: 0 },
                EditOp::Match { a: 1, b: 1 },
                EditOp::Delete { b: 2 },
                EditOp::Delete { b: 3 },
            ]
        );
    }

    #[test]
    fn best_prefix_finds_the_position_reached() {
        assert_eq!(best_prefix(&[1, 2], &[1, 2, 3, 4]), (0, 2));
        assert_eq!(best_prefix(&[], &[1, 2]), (0, 0));
        assert_eq!(best_prefix(&[1, 9, 3], &[1, 2, 3, 4]), (1, 3));
    }
}
