//! Is a run worse than the runs before it? The law of the `regression-vs` gate, pure.
//!
//! For each figure, the spread of the comparable earlier runs is the range `[min, max]` of their
//! values. A figure regressed when it lies beyond the worse end of that range: a success ratio
//! below every earlier one, a latency above every earlier one. The range, rather than a mean and
//! a multiple of the deviation, because a gate over five runs must be explainable in one sentence
//! ("p95 was 812 ms, the last 5 runs were 640–790 ms") and must not fire on noise those runs
//! already showed. Figures the current run lacks, or that no earlier run has, are not judged.

use std::collections::BTreeMap;

use crate::figures::{Better, Figure};

/// Values equal up to this are equal (floating-point sums of the same commands).
const EPSILON: f64 = 1e-9;

/// The spread of a figure over earlier runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// Smallest earlier value.
    pub min: f64,
    /// Largest earlier value.
    pub max: f64,
    /// How many earlier runs had the figure.
    pub runs: usize,
}

impl Spread {
    /// The spread of `values`, `None` when there are none.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        values
            .into_iter()
            .filter(|v| v.is_finite())
            .fold(None, |spread, v| {
                Some(match spread {
                    None => Spread {
                        min: v,
                        max: v,
                        runs: 1,
                    },
                    Some(s) => Spread {
                        min: s.min.min(v),
                        max: s.max.max(v),
                        runs: s.runs + 1,
                    },
                })
            })
    }

    /// Whether `value` is worse than every earlier value.
    pub fn is_worse(&self, value: f64, better: Better) -> bool {
        match better {
            Better::Higher => value < self.min - EPSILON,
            Better::Lower => value > self.max + EPSILON,
        }
    }
}

/// A figure worse than the spread of the earlier runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Regression {
    /// Experiment name (or [`crate::figures::RUN_WIDE`]).
    pub experiment: String,
    /// Figure name.
    pub figure: String,
    /// The current value.
    pub value: f64,
    /// The earlier runs' spread.
    pub spread: Spread,
    /// Which way is better.
    pub better: Better,
}

impl Regression {
    /// One sentence naming the figure, its value and the spread it left.
    pub fn describe(&self) -> String {
        let (direction, bound) = match self.better {
            Better::Higher => ("below", self.spread.min),
            Better::Lower => ("above", self.spread.max),
        };
        format!(
            "{}: {} is {}, {direction} the last {} comparable run(s) ({} to {}, worst {})",
            self.experiment,
            self.figure,
            number(self.value),
            self.spread.runs,
            number(self.spread.min),
            number(self.spread.max),
            number(bound)
        )
    }
}

/// A figure's value as shown: at most four significant decimals, no trailing zeros.
pub fn number(value: f64) -> String {
    let text = format!("{value:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// The figures of `current` worse than the spread of the same figure over `earlier` runs.
pub fn regressions(current: &[Figure], earlier: &[Vec<Figure>]) -> Vec<Regression> {
    let mut history: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
    for run in earlier {
        for f in run {
            history
                .entry((f.experiment.as_str(), f.name.as_str()))
                .or_default()
                .push(f.value);
        }
    }
    current
        .iter()
        .filter_map(|f| {
            let spread = Spread::of(
                history
                    .get(&(f.experiment.as_str(), f.name.as_str()))?
                    .iter()
                    .copied(),
            )?;
            spread.is_worse(f.value, f.better).then(|| Regression {
                experiment: f.experiment.clone(),
                figure: f.name.clone(),
                value: f.value,
                spread,
                better: f.better,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn figure(name: &str, value: f64, better: Better) -> Figure {
        Figure {
            experiment: "kill".into(),
            name: name.into(),
            value,
            better,
        }
    }

    #[test]
    fn a_figure_beyond_the_worse_end_of_the_spread_regresses() {
        let earlier: Vec<Vec<Figure>> = [0.9, 0.95, 0.92]
            .iter()
            .map(|v| {
                vec![
                    figure("success_ratio.fault", *v, Better::Higher),
                    figure("recovery_s", v * 10.0, Better::Lower),
                ]
            })
            .collect();
        let current = [
            figure("success_ratio.fault", 0.85, Better::Higher),
            figure("recovery_s", 9.4, Better::Lower),
            figure("new_figure", 1.0, Better::Lower),
        ];
        let found = regressions(&current, &earlier);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].figure, "success_ratio.fault");
        assert_eq!(
            found[0].describe(),
            "kill: success_ratio.fault is 0.85, below the last 3 comparable run(s) (0.9 to 0.95, worst 0.9)"
        );
    }

    #[test]
    fn a_figure_inside_or_better_than_the_spread_does_not_regress() {
        let earlier = vec![
            vec![figure("p95", 100.0, Better::Lower)],
            vec![figure("p95", 140.0, Better::Lower)],
        ];
        for value in [90.0, 100.0, 120.0, 140.0] {
            assert!(regressions(&[figure("p95", value, Better::Lower)], &earlier).is_empty());
        }
        assert_eq!(
            regressions(&[figure("p95", 141.0, Better::Lower)], &earlier).len(),
            1
        );
    }

    proptest! {
        #[test]
        fn no_earlier_value_is_worse_than_the_spread_it_belongs_to(
            values in proptest::collection::vec(-1e6f64..1e6, 1..20),
            higher in any::<bool>(),
        ) {
            let better = if higher { Better::Higher } else { Better::Lower };
            let spread = Spread::of(values.iter().copied()).unwrap();
            prop_assert_eq!(spread.runs, values.len());
            for v in &values {
                prop_assert!(!spread.is_worse(*v, better));
            }
        }
    }
}
