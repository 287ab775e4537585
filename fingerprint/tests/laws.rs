//! Property tests: the distance is a metric and agrees with the reference implementation (strsim),
//! the cutoff version agrees with the full one, and normalization and templating are idempotent.

use fingerprint::Store;
use fingerprint::distance::DENSE_ALPHABET_LIMIT;
use fingerprint::distance::{EditOp, Pattern, align, best_prefix, levenshtein, levenshtein_within};
use fingerprint::normalize::{NormalizeConfig, normalize};
use fingerprint::store::CommandFingerprint;
use fingerprint::symbol::{Step, template_rest};
use proptest::prelude::*;

fn reference(a: &[u32], b: &[u32]) -> usize {
    strsim::generic_levenshtein(&a.to_vec(), &b.to_vec())
}

/// Sequences over a small alphabet (so that matches are frequent), long enough to cross one or
/// several 64-symbol words.
fn sequence() -> impl Strategy<Value = Vec<u32>> {
    prop_oneof![
        prop::collection::vec(0u32..6, 0..80),
        prop::collection::vec(0u32..40, 60..200),
    ]
}

/// Two sequences that share a prefix and a suffix of random lengths (which single comparisons
/// strip), with a middle over an alphabet that sometimes holds ids too large for a dense table.
fn affixed_pair() -> impl Strategy<Value = (Vec<u32>, Vec<u32>)> {
    let symbol = prop_oneof![
        4 => 0u32..8,
        1 => (DENSE_ALPHABET_LIMIT - 2)..(DENSE_ALPHABET_LIMIT + 2),
        1 => Just(u32::MAX),
    ];
    let part = move |max: usize| prop::collection::vec(symbol.clone(), 0..max);
    (part(40), part(40), part(80), part(80)).prop_map(|(prefix, suffix, middle_a, middle_b)| {
        let join = |middle: Vec<u32>| [prefix.clone(), middle, suffix.clone()].concat();
        (join(middle_a), join(middle_b))
    })
}

/// A query and texts that are mostly a few edits of it or of each other, sorted, so that
/// neighbouring texts share prefixes (as variants in the store's search order do), with symbols
/// both inside and beyond the query's alphabet.
fn query_and_related_texts() -> impl Strategy<Value = (Vec<u32>, Vec<Vec<u32>>)> {
    prop::collection::vec(0u32..20, 0..70).prop_flat_map(|query| {
        let texts = prop::collection::vec(
            prop_oneof![
                3 => edits_of(query.clone()),
                1 => prop::collection::vec(0u32..40, 0..70),
            ],
            0..20,
        )
        .prop_map(|mut texts| {
            texts.sort();
            texts
        });
        (Just(query), texts)
    })
}

/// A set of stored variants and a query, most of them edits of one base trail (so that many
/// variants are near the query and ties are common), over an alphabet wider than the histogram's
/// buckets, with lengths on both sides of one 64-symbol word.
fn variants_and_query() -> impl Strategy<Value = (Vec<Vec<u32>>, Vec<u32>)> {
    let base = prop::collection::vec(0u32..150, 0..90);
    base.prop_flat_map(|base| {
        (
            prop::collection::vec(
                prop_oneof![3 => edits_of(base.clone()), 1 => prop::collection::vec(0u32..150, 0..90)],
                0..40,
            ),
            prop_oneof![3 => edits_of(base), 1 => prop::collection::vec(0u32..150, 0..90)],
        )
    })
}

/// `base` with a few random substitutions, insertions and deletions.
fn edits_of(base: Vec<u32>) -> impl Strategy<Value = Vec<u32>> + Clone {
    prop::collection::vec((0usize..100, 0u32..3, 0u32..150), 0..6).prop_map(move |edits| {
        let mut edited = base.clone();
        for (position, kind, symbol) in edits {
            let position = position % (edited.len() + 1);
            match kind {
                0 if position < edited.len() => edited[position] = symbol,
                1 => edited.insert(position, symbol),
                _ if position < edited.len() => {
                    edited.remove(position);
                }
                _ => {}
            }
        }
        edited
    })
}

/// The full dynamic program and traceback of [`align`], without its shortcuts: what `align`
/// must return exactly (the tie-breaking decides where a diagnosis localizes a divergence).
fn reference_alignment(a: &[u32], b: &[u32]) -> Vec<EditOp> {
    let (n, m) = (a.len(), b.len());
    let width = m + 1;
    let mut cost = vec![0u32; (n + 1) * width];
    for (j, cell) in cost.iter_mut().enumerate().take(m + 1) {
        *cell = j as u32;
    }
    for i in 1..=n {
        cost[i * width] = i as u32;
        for j in 1..=m {
            let diagonal = cost[(i - 1) * width + j - 1] + u32::from(a[i - 1] != b[j - 1]);
            let up = cost[(i - 1) * width + j] + 1;
            let left = cost[i * width + j - 1] + 1;
            cost[i * width + j] = diagonal.min(up).min(left);
        }
    }
    let mut ops = Vec::new();
    let (mut i, mut j) = (n, m);
    while i > 0 || j > 0 {
        let here = cost[i * width + j];
        if i > 0 && j > 0 {
            let same = a[i - 1] == b[j - 1];
            let diagonal = cost[(i - 1) * width + j - 1];
            if (same && diagonal == here) || (!same && diagonal + 1 == here) {
                ops.push(if same {
                    EditOp::Match { a: i - 1, b: j - 1 }
                } else {
                    EditOp::Substitute { a: i - 1, b: j - 1 }
                });
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

fn step() -> impl Strategy<Value = Step> {
    (
        prop::sample::select(vec![
            "nova-api:POST /v2.1/servers",
            "rest:nova-api GET /v2.1/servers/{id}",
            "rest:neutron-api GET /v2.0/ports?device_id",
            "rest:placement-api PUT /allocations/{id}",
            "rpc.call:conductor.object_action",
            "rpc.cast:compute.build_and_run_instance",
            "reply:ok",
        ]),
        0i64..50_000,
        prop::option::of(0u8..4),
        (0i64..20_000, 0u8..3, 0u8..2, any::<bool>()),
    )
        .prop_map(|(symbol, ts_us, link, (duration, caller, agent, error))| {
            let rest = !symbol.starts_with("rpc.") && !symbol.starts_with("reply:");
            Step {
                symbol: symbol.to_owned(),
                ts_us,
                service: rest.then(|| "nova-api".to_owned()),
                caller: match caller {
                    0 => None,
                    1 => Some("nova-api".to_owned()),
                    _ => Some("nova-compute".to_owned()),
                },
                agent: (rest && agent == 1).then(|| "python-neutronclient".to_owned()),
                end_us: rest.then_some(ts_us + duration),
                error: error && rest,
                answer: symbol.starts_with("reply:"),
                read_only: symbol.contains(" GET "),
                link: link.map(|link| link.to_string()),
                ..Step::default()
            }
        })
}

/// Steps of one trace: `seq` is unique, as in a recorded trace.
fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 0..40).prop_map(|mut steps| {
        for (seq, step) in steps.iter_mut().enumerate() {
            step.seq = seq as u64;
        }
        steps
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn distance_agrees_with_the_reference(a in sequence(), b in sequence()) {
        prop_assert_eq!(levenshtein(&a, &b), reference(&a, &b));
        prop_assert_eq!(Pattern::new(&a).distance(&b), reference(&a, &b));
    }

    #[test]
    fn pairs_with_common_affixes_agree_with_the_reference((a, b) in affixed_pair(),
                                                          max in 0usize..100) {
        let expected = reference(&a, &b);
        prop_assert_eq!(levenshtein(&a, &b), expected);
        prop_assert_eq!(levenshtein(&b, &a), expected);
        prop_assert_eq!(levenshtein_within(&a, &b, max), (expected <= max).then_some(expected));
        prop_assert_eq!(Pattern::new(&a).distance(&b), expected);
    }

    #[test]
    fn distance_is_a_metric(a in sequence(), b in sequence(), c in sequence()) {
        prop_assert_eq!(levenshtein(&a, &a), 0);
        prop_assert_eq!(levenshtein(&a, &b) == 0, a == b);
        prop_assert_eq!(levenshtein(&a, &b), levenshtein(&b, &a));
        prop_assert!(levenshtein(&a, &c) <= levenshtein(&a, &b) + levenshtein(&b, &c));
    }

    #[test]
    fn cutoff_agrees_with_the_full_distance(a in sequence(), b in sequence(), max in 0usize..120) {
        let full = levenshtein(&a, &b);
        let expected = (full <= max).then_some(full);
        prop_assert_eq!(levenshtein_within(&a, &b, max), expected);
        prop_assert_eq!(Pattern::new(&a).distance_within(&b, max), expected);
    }

    #[test]
    fn indexed_nearest_is_the_brute_force_nearest((variants, query) in variants_and_query(),
                                                   max in 0usize..40) {
        let mut command = CommandFingerprint::default();
        for variant in variants {
            command.push_variant(variant);
        }
        let expected = command.nearest_brute_force(&query);
        prop_assert_eq!(command.nearest(&query), expected);
        let within = expected.filter(|&(_, distance)| distance <= max);
        prop_assert_eq!(command.nearest_within(&query, max), within);
    }

    #[test]
    fn indexes_rebuilt_from_a_saved_store_find_the_same_nearest(
        (variants, query) in variants_and_query(),
        duplicates in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let mut store = Store::default();
        // A saved store only refers to interned symbols: intern every id the variants use.
        for symbol in 0..150 {
            prop_assert_eq!(store.intern(&format!("rpc.call:op{symbol}")), symbol);
        }
        let command = store.command_mut("server create");
        for variant in &variants {
            command.push_variant(variant.clone());
        }
        // Copies of stored shapes are never the nearest (ties go to the smallest index).
        for duplicate in duplicates.iter().filter(|_| !variants.is_empty()) {
            command.push_variant(duplicate.get(&variants).clone());
        }
        let expected = command.nearest_brute_force(&query);
        prop_assert_eq!(command.nearest(&query), expected);
        let reloaded = Store::from_json(&store.to_json(), std::path::Path::new("fp.json")).unwrap();
        prop_assert_eq!(reloaded.commands["server create"].nearest(&query), expected);
    }

    #[test]
    fn batches_of_related_texts_agree_with_single_comparisons(
        (query, texts) in query_and_related_texts(),
        limits in prop::collection::vec(0usize..80, 20),
    ) {
        let pattern = Pattern::new(&query);
        let texts: Vec<&[u32]> = texts.iter().map(Vec::as_slice).collect();
        let limits = &limits[..texts.len()];
        let mut results = vec![None; texts.len()];
        pattern.distances_within(&texts, limits, &mut results);
        for ((text, &limit), result) in texts.iter().zip(limits).zip(results) {
            let full = reference(&query, text);
            prop_assert_eq!(result, (full <= limit).then_some(full));
        }
        let unlimited = vec![usize::MAX; texts.len()];
        let mut results = vec![None; texts.len()];
        pattern.distances_within(&texts, &unlimited, &mut results);
        for (text, result) in texts.iter().zip(results) {
            prop_assert_eq!(result, Some(reference(&query, text)));
        }
    }

    #[test]
    fn batched_comparisons_agree_with_single_ones(a in sequence(),
                                                  texts in prop::collection::vec(sequence(), 0..20),
                                                  limits in prop::collection::vec(0usize..120, 20)) {
        let pattern = Pattern::new(&a);
        let texts: Vec<&[u32]> = texts.iter().map(Vec::as_slice).collect();
        let limits = &limits[..texts.len()];
        let mut results = vec![None; texts.len()];
        pattern.distances_within(&texts, limits, &mut results);
        for ((text, &limit), result) in texts.iter().zip(limits).zip(results) {
            prop_assert_eq!(result, pattern.distance_within(text, limit));
        }
    }

    #[test]
    fn alignment_costs_the_distance(a in prop::collection::vec(0u32..5, 0..40),
                                    b in prop::collection::vec(0u32..5, 0..40)) {
        let ops = align(&a, &b);
        let cost = ops.iter().filter(|op| !matches!(op, EditOp::Match { .. })).count();
        prop_assert_eq!(cost, reference(&a, &b));
        let (prefix_cost, reached) = best_prefix(&a, &b);
        prop_assert_eq!(prefix_cost, reference(&a, &b[..reached]));
    }

    #[test]
    fn alignment_is_the_plain_dynamic_program((a, b) in affixed_pair()) {
        prop_assert_eq!(align(&a, &b), reference_alignment(&a, &b));
        prop_assert_eq!(align(&a, &a), reference_alignment(&a, &a));
    }

    #[test]
    fn normalization_is_idempotent(steps in steps(), max_poll_block in 1usize..5) {
        let config = NormalizeConfig {
            max_poll_block,
            ..NormalizeConfig::default()
        };
        let once = normalize(steps, &config);
        let twice = normalize(once.clone(), &config);
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn templating_is_idempotent(path in "(/(servers|[0-9]{1,4}|[0-9a-f]{32}|v2\\.1|req-[0-9a-f]{8}))*",
                                query in "(\\?([a-z]{1,3}=[0-9a-z]{0,3}&?){0,3})?") {
        let operation = format!("GET {path}{query}");
        let once = template_rest(&operation);
        prop_assert_eq!(template_rest(&once), once);
    }
}
