//! Trends across runs, like `rally task trends`: for each experiment and figure, its value in
//! every matching run, in label order (`--order-by release`) or start order. [`Trends::load`]
//! reads them from the store; [`Trends::to_text`] and [`Trends::to_html`] render them, the HTML
//! self-contained (inline SVG and CSS, no script, a CSP that forbids fetching anything).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::Error;
use crate::figures::{Better, RUN_WIDE};
use crate::stats::number;
use crate::store::{Filter, RunSummary, Store};

/// One figure across runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Which way is better.
    pub better: Better,
    /// One value per run of [`Trends::runs`], `None` where the run lacks the figure.
    pub values: Vec<Option<f64>>,
}

/// Figures across runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Trends {
    /// The runs, in plot order.
    pub runs: Vec<RunSummary>,
    /// The label runs are ordered and named by, when one was asked for.
    pub order_by: Option<String>,
    /// Series by experiment, then figure.
    pub series: BTreeMap<String, BTreeMap<String, Series>>,
}

impl Trends {
    /// Reads the runs matching `filter` and their figures; keeps one experiment when `experiment`
    /// is given. Runs are ordered by the `order_by` label's value (runs without it last), then by
    /// start time.
    pub fn load(
        store: &mut Store,
        filter: &Filter,
        experiment: Option<&str>,
        order_by: Option<&str>,
    ) -> Result<Trends, Error> {
        let mut runs = store.runs(filter)?;
        if let Some(key) = order_by {
            sort_by_label(&mut runs, key);
        }
        let ids: Vec<String> = runs.iter().map(|r| r.run_id.clone()).collect();
        let figures = store.figures(&ids)?;
        let mut series: BTreeMap<String, BTreeMap<String, Series>> = BTreeMap::new();
        for (i, run) in ids.iter().enumerate() {
            for f in figures.get(run).into_iter().flatten() {
                if experiment.is_some_and(|e| e != f.experiment) {
                    continue;
                }
                let entry = series
                    .entry(f.experiment.clone())
                    .or_default()
                    .entry(f.name.clone())
                    .or_insert_with(|| Series {
                        better: f.better,
                        values: vec![None; ids.len()],
                    });
                entry.values[i] = Some(f.value);
            }
        }
        Ok(Trends {
            runs,
            order_by: order_by.map(str::to_owned),
            series,
        })
    }

    /// The name of a run on an axis: its `order_by` label, else its id.
    pub fn run_name(&self, run: &RunSummary) -> String {
        self.order_by
            .as_ref()
            .and_then(|key| run.labels.get(key))
            .cloned()
            .unwrap_or_else(|| run.run_id.clone())
    }

    /// One line per figure: its values in run order, `-` where a run lacks it.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let names: Vec<String> = self.runs.iter().map(|r| self.run_name(r)).collect();
        let _ = writeln!(out, "runs: {}", names.join(", "));
        for (experiment, figures) in &self.series {
            let _ = writeln!(out, "{}", experiment_title(experiment));
            for (figure, series) in figures {
                let values: Vec<String> = series
                    .values
                    .iter()
                    .map(|v| v.map_or_else(|| "-".to_owned(), number))
                    .collect();
                let _ = writeln!(
                    out,
                    "  {figure} ({} is better): {}",
                    series.better.as_str(),
                    values.join(" ")
                );
            }
        }
        out
    }

    /// The self-contained HTML page: one plot per experiment and figure.
    pub fn to_html(&self, title: &str) -> String {
        let mut out = String::new();
        out.push_str(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
             style-src 'unsafe-inline'; img-src data:\">\n",
        );
        let _ = writeln!(out, "<title>{}</title>", escape(title));
        out.push_str(STYLE);
        out.push_str("</head>\n<body>\n");
        let _ = writeln!(out, "<h1>{}</h1>", escape(title));
        let _ = writeln!(
            out,
            "<p class=\"runs\">{} run(s){}, left to right: {}</p>",
            self.runs.len(),
            self.order_by
                .as_ref()
                .map(|k| format!(" in order of label <code>{}</code>", escape(k)))
                .unwrap_or_else(|| " in start order".to_owned()),
            self.runs
                .iter()
                .map(|r| escape(&self.run_name(r)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if self.series.is_empty() {
            out.push_str("<p class=\"empty\">No recorded figures match.</p>\n");
        }
        for (experiment, figures) in &self.series {
            let _ = writeln!(
                out,
                "<section class=\"experiment\">\n<h2>{}</h2>",
                escape(&experiment_title(experiment))
            );
            for (figure, series) in figures {
                out.push_str(&self.plot(figure, series));
            }
            out.push_str("</section>\n");
        }
        out.push_str("</body>\n</html>\n");
        out
    }

    fn plot(&self, figure: &str, series: &Series) -> String {
        const W: f64 = 560.0;
        const H: f64 = 180.0;
        const LEFT: f64 = 64.0;
        const RIGHT: f64 = 16.0;
        const TOP: f64 = 12.0;
        const BOTTOM: f64 = 40.0;
        let present: Vec<f64> = series.values.iter().flatten().copied().collect();
        let (mut lo, mut hi) = present
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                (lo.min(*v), hi.max(*v))
            });
        if !lo.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        if (hi - lo).abs() < 1e-12 {
            (lo, hi) = (
                lo - 0.5_f64.max(lo.abs() * 0.1),
                hi + 0.5_f64.max(hi.abs() * 0.1),
            );
        }
        let n = series.values.len().max(1);
        let x = |i: usize| {
            if n == 1 {
                LEFT + (W - LEFT - RIGHT) / 2.0
            } else {
                LEFT + (W - LEFT - RIGHT) * i as f64 / (n - 1) as f64
            }
        };
        let y = |v: f64| TOP + (H - TOP - BOTTOM) * (1.0 - (v - lo) / (hi - lo));
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            "<figure class=\"trend\">\n<figcaption>{} <span class=\"better\">({} is better)</span></figcaption>\n\
             <svg class=\"trend-plot\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\">",
            escape(figure),
            series.better.as_str(),
            escape(figure)
        );
        let _ = writeln!(
            svg,
            "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/>\
             <line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\"/>",
            b = H - BOTTOM,
            r = W - RIGHT
        );
        for v in [lo, hi] {
            let _ = writeln!(
                svg,
                "<text class=\"tick\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT - 6.0,
                y(v) + 4.0,
                number(v)
            );
        }
        // A line through consecutive runs that have the figure; a gap where one lacks it.
        let mut d = String::new();
        let mut pen_down = false;
        for (i, v) in series.values.iter().enumerate() {
            match v {
                Some(v) => {
                    let _ = write!(
                        d,
                        "{}{:.1},{:.1} ",
                        if pen_down { "L" } else { "M" },
                        x(i),
                        y(*v)
                    );
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        if !d.is_empty() {
            let _ = writeln!(svg, "<path class=\"series\" d=\"{}\"/>", d.trim_end());
        }
        for (i, (v, run)) in series.values.iter().zip(&self.runs).enumerate() {
            let name = escape(&self.run_name(run));
            if let Some(v) = v {
                let _ = writeln!(
                    svg,
                    "<circle class=\"point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.5\"><title>{name}: {}</title></circle>",
                    x(i),
                    y(*v),
                    number(*v)
                );
            }
            let _ = writeln!(
                svg,
                "<text class=\"run\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                x(i),
                H - BOTTOM + 16.0,
                short(&name)
            );
        }
        svg.push_str("</svg>\n</figure>\n");
        svg
    }
}

/// Orders runs (given in start order) by the value of label `key`; runs without it go last, and
/// runs with equal values stay in start order (the sort is stable).
pub fn sort_by_label(runs: &mut [RunSummary], key: &str) {
    runs.sort_by(|a, b| match (a.labels.get(key), b.labels.get(key)) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
}

fn experiment_title(experiment: &str) -> String {
    if experiment == RUN_WIDE {
        "Detectors (whole run)".to_owned()
    } else {
        format!("Experiment {experiment}")
    }
}

/// Axis labels are cut to fit under their point.
fn short(name: &str) -> String {
    if name.chars().count() > 18 {
        let cut: String = name.chars().take(17).collect();
        format!("{cut}…")
    } else {
        name.to_owned()
    }
}

use reports::html::esc as escape;

const STYLE: &str = "<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1d2330; }
h2 { border-bottom: 1px solid #ccd; padding-bottom: .2rem; }
.experiment { display: flex; flex-wrap: wrap; gap: 1rem; }
.experiment h2 { flex-basis: 100%; }
figure.trend { margin: 0; border: 1px solid #e3e5ea; padding: .5rem; }
figcaption { font-family: ui-monospace, monospace; font-size: .85rem; }
.better { color: #667; }
.axis { stroke: #99a; stroke-width: 1; }
.series { fill: none; stroke: #2a6fdb; stroke-width: 2; }
.point { fill: #2a6fdb; }
.tick, .run { font-size: 10px; fill: #445; }
</style>
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn long_run_names_are_shortened_on_the_axis() {
        assert_eq!(short("2025.1"), "2025.1");
        assert_eq!(short("ci-smoke-20261120T140211Z").chars().count(), 18);
    }
}
