//! `report.html`: one self-contained page (inline CSS and SVG, no scripts, no external assets)
//! that reads well offline and in a CI artifact viewer.
//!
//! The page shows the verdict, a timeline per repetition (windows, fault interval, success ratio,
//! latency, alarms), hypotheses, workload statistics, detector scores and each failing
//! transaction aligned with its nearest normal fingerprint. The template is
//! `reports/templates/report.html`; the charts are built here as SVG markup.

use std::fmt::Write as _;

use askama::Template;

use crate::headline::{self, Tone};
use crate::model::{
    Alarm, AlignOp, Column, Repetition, Report, RunOutcome, TransactionDivergence, Trigger,
    Verdict, WindowKind, seconds_between,
};
use crate::{Error, fmt};

/// Renders the HTML report.
pub fn render(report: &Report) -> Result<String, Error> {
    let page = Page::new(report)?;
    page.render().map_err(|error| Error::Render {
        format: "report.html",
        message: error.to_string(),
    })
}

/// Colors of detectors, in order of first appearance (Okabe–Ito, readable by colour-blind people).
const DETECTOR_COLORS: [&str; 6] = [
    "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
];

#[derive(Template)]
#[template(path = "report.html")]
struct Page {
    title: String,
    /// `pass`, `warn` (every hypothesis held, but commands failed in a fault window) or `fail`.
    verdict_class: &'static str,
    verdict: String,
    headline: Vec<HeadlineRow>,
    outcome_note: Option<String>,
    facts: Vec<(String, String)>,
    stats: Vec<(String, String)>,
    hosts: Vec<(String, String, String)>,
    experiments: Vec<ExperimentView>,
    detectors: Vec<DetectorRow>,
    legend: Vec<(String, String)>,
    footer: String,
}

/// One experiment at a glance: its verdicts beside its fault window, each in its own colour.
struct HeadlineRow {
    anchor: String,
    name: String,
    passed: bool,
    verdicts: String,
    tone: &'static str,
    fault_ratio: String,
    /// Width of the ratio bar in percent.
    bar: String,
}

struct ExperimentView {
    anchor: String,
    name: String,
    description: Option<String>,
    passed: bool,
    fault_tone: &'static str,
    fault_ratio: String,
    repetitions: Vec<RepetitionView>,
}

struct RepetitionView {
    title: String,
    faults: Vec<FaultRow>,
    timeline_svg: String,
    hypotheses: Vec<HypothesisRow>,
    workload: Vec<WorkloadRow>,
    recovery: String,
    /// Why the baseline began before the cloud was steady again, if it did.
    unsteady: Option<String>,
    alarm_count: usize,
    divergences: Vec<DivergenceView>,
    /// Aligned transactions that no detector flagged, left out.
    unflagged_divergences: usize,
}

struct FaultRow {
    kind: String,
    target: String,
    trigger: String,
    parameters: String,
    injected: String,
    verified: String,
    reverted: String,
    /// What the revert found (a kill healed by its supervisor, a stop that held).
    observed: Option<String>,
}

struct HypothesisRow {
    name: String,
    passed: bool,
    metric: String,
    window: String,
    required: String,
    observed: String,
    reason: String,
}

struct WorkloadRow {
    window: String,
    command: String,
    is_total: bool,
    count: u64,
    successes: u64,
    ratio: String,
    p50: String,
    p95: String,
    p99: String,
}

struct DetectorRow {
    color: String,
    name: String,
    alarms: u64,
    tp_fp: String,
    precision: String,
    recall: String,
    f1: String,
    ttd: String,
    top1: String,
    top3: String,
    false_per_hour: String,
}

struct DivergenceView {
    command: String,
    transaction: String,
    summary: String,
    svg: String,
}

impl Page {
    fn new(report: &Report) -> Result<Page, Error> {
        let detector_names = detector_order(report);
        let color_of = |name: &str| {
            let index = detector_names.iter().position(|d| d == name).unwrap_or(0);
            DETECTOR_COLORS[index % DETECTOR_COLORS.len()]
        };
        let hypotheses: Vec<_> = report.hypotheses().collect();
        let held = hypotheses
            .iter()
            .filter(|(_, _, h)| h.verdict == Verdict::Pass)
            .count();
        let faults: usize = report
            .experiments
            .iter()
            .flat_map(|e| &e.repetitions)
            .map(|r| r.faults.len())
            .sum();
        let recoveries: Vec<f64> = report
            .experiments
            .iter()
            .flat_map(|e| &e.repetitions)
            .filter_map(|r| r.recovery.recovery_s)
            .collect();
        let slowest = recoveries
            .iter()
            .copied()
            .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
        let duration = seconds_between(report.started_at, report.finished_at);

        let headlines = headline::experiments(report);
        let worst = headline::worst_tone(&headlines);
        let mut experiments = Vec::new();
        for ((index, experiment), head) in report.experiments.iter().enumerate().zip(&headlines) {
            let mut repetitions = Vec::new();
            for repetition in &experiment.repetitions {
                repetitions.push(repetition_view(
                    experiment.repetitions.len(),
                    repetition,
                    &detector_names,
                    &color_of,
                )?);
            }
            experiments.push(ExperimentView {
                anchor: format!("experiment-{}", index + 1),
                name: experiment.name.clone(),
                description: experiment.description.clone(),
                passed: experiment
                    .repetitions
                    .iter()
                    .flat_map(|r| &r.hypotheses)
                    .all(|h| h.verdict == Verdict::Pass),
                fault_tone: head.tone.class(),
                fault_ratio: format!("fault window: {}", head.fault_ratio()),
                repetitions,
            });
        }

        Ok(Page {
            title: report.campaign.name.clone(),
            verdict_class: match (report.passed(), worst) {
                (false, _) => "fail",
                (true, Tone::Degraded | Tone::Failing) => "warn",
                (true, _) => "pass",
            },
            verdict: if report.passed() {
                let troubled = headlines
                    .iter()
                    .filter(|h| matches!(h.tone, Tone::Degraded | Tone::Failing))
                    .count();
                match troubled {
                    0 => format!("All {} hypotheses held", hypotheses.len()),
                    n => format!(
                        "All {} hypotheses held; commands failed in {n} fault window(s)",
                        hypotheses.len()
                    ),
                }
            } else {
                format!("{} of {} hypotheses failed", hypotheses.len() - held, hypotheses.len())
            },
            headline: headlines
                .iter()
                .enumerate()
                .map(|(index, h)| HeadlineRow {
                    anchor: format!("experiment-{}", index + 1),
                    name: h.name.clone(),
                    passed: h.held == h.hypotheses,
                    verdicts: h.verdicts(),
                    tone: h.tone.class(),
                    fault_ratio: h.fault_ratio(),
                    bar: fmt::trim(h.fault_window.ratio().unwrap_or(0.0) * 100.0, 1),
                })
                .collect(),
            outcome_note: match report.outcome {
                RunOutcome::Completed => None,
                RunOutcome::Aborted => Some("An abort guardrail was breached: the runner reverted every fault and stopped; later experiments did not run.".to_owned()),
                RunOutcome::Interrupted => Some("The run was interrupted: the runner reverted every fault and wrote what it had gathered.".to_owned()),
            },
            facts: vec![
                ("Run".to_owned(), report.run_id.clone()),
                ("Started".to_owned(), format_time(report.started_at)),
                ("Duration".to_owned(), fmt::seconds(duration)),
                ("Campaign file".to_owned(), report.campaign.file.clone()),
                ("Seed".to_owned(), report.campaign.seed.to_string()),
                (
                    "Cloud".to_owned(),
                    format!(
                        "{} ({}{})",
                        report.environment.testbed.cloud,
                        report.environment.testbed.kind,
                        report
                            .environment
                            .testbed
                            .openstack_release
                            .as_deref()
                            .map(|r| format!(", OpenStack {r}"))
                            .unwrap_or_default()
                    ),
                ),
                ("Butterfly".to_owned(), report.environment.butterfly_version.clone()),
            ],
            stats: vec![
                (format!("{held}/{}", hypotheses.len()), "hypotheses held".to_owned()),
                (report.experiments.len().to_string(), "experiments".to_owned()),
                (faults.to_string(), "faults injected".to_owned()),
                (
                    slowest.map_or_else(|| fmt::DASH.to_owned(), fmt::seconds),
                    "slowest recovery".to_owned(),
                ),
            ],
            hosts: report
                .environment
                .hosts
                .iter()
                .map(|h| (h.name.clone(), h.address.clone(), h.services.join(", ")))
                .collect(),
            experiments,
            detectors: report
                .detectors
                .iter()
                .map(|d| DetectorRow {
                    color: color_of(&d.detector).to_owned(),
                    name: d.detector.clone(),
                    alarms: d.alarms,
                    tp_fp: format!("{} / {}", d.true_positives, d.false_positives),
                    precision: fmt::score(d.precision),
                    recall: fmt::score(d.recall),
                    f1: fmt::score(d.f1),
                    ttd: match (d.mean_time_to_detect_s, d.max_time_to_detect_s) {
                        (Some(mean), Some(max)) => format!("{} (max {})", fmt::seconds(mean), fmt::seconds(max)),
                        _ => fmt::DASH.to_owned(),
                    },
                    top1: d.localization_top1.map_or_else(|| fmt::DASH.to_owned(), fmt::percent),
                    top3: d.localization_top3.map_or_else(|| fmt::DASH.to_owned(), fmt::percent),
                    false_per_hour: d
                        .false_alarms_per_hour
                        .map_or_else(|| fmt::DASH.to_owned(), |v| fmt::trim(v, 1)),
                })
                .collect(),
            legend: detector_names
                .iter()
                .map(|d| (color_of(d).to_owned(), d.clone()))
                .collect(),
            footer: format!(
                "Generated by butterfly {} from report.json (format version {}). Grace period for alarms: {}.",
                report.environment.butterfly_version,
                report.format_version,
                fmt::seconds(report.scoring.grace_s)
            ),
        })
    }
}

/// Detector names: the scored ones first, then any other that raised an alarm.
fn detector_order(report: &Report) -> Vec<String> {
    let mut names: Vec<String> = report
        .detectors
        .iter()
        .map(|d| d.detector.clone())
        .collect();
    for alarm in report
        .experiments
        .iter()
        .flat_map(|e| &e.repetitions)
        .flat_map(|r| &r.alarms)
    {
        if !names.contains(&alarm.detector) {
            names.push(alarm.detector.clone());
        }
    }
    names
}

fn format_time(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn repetition_view(
    repetitions: usize,
    repetition: &Repetition,
    detectors: &[String],
    color_of: &dyn Fn(&str) -> &'static str,
) -> Result<RepetitionView, Error> {
    let origin = repetition.windows.baseline.start;
    let offset = |ts: jiff::Timestamp| format!("+{}", fmt::seconds(seconds_between(origin, ts)));
    let faults = repetition
        .faults
        .iter()
        .map(|f| FaultRow {
            kind: f.kind.clone(),
            target: fmt::fault_target(f),
            trigger: match &f.trigger {
                Trigger::Offset { after_s } => {
                    format!("{} into the fault window", fmt::seconds(*after_s))
                }
                Trigger::ExecutionPoint { point, host } => match host {
                    Some(host) => format!("on {point} at {host}"),
                    None => format!("on {point}"),
                },
            },
            parameters: f
                .parameters
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            injected: offset(f.injected_at),
            verified: f.verified_at.map_or_else(|| fmt::DASH.to_owned(), offset),
            reverted: f
                .reverted_at
                .map_or_else(|| "not confirmed".to_owned(), offset),
            observed: f.observed.clone(),
        })
        .collect();
    let hypotheses = repetition
        .hypotheses
        .iter()
        .map(|h| HypothesisRow {
            name: h.name.clone(),
            passed: h.verdict == Verdict::Pass,
            metric: match &h.command {
                Some(command) => format!("{} of {command}", h.metric.replace('_', " ")),
                None => h.metric.replace('_', " "),
            },
            window: h.window.as_str().to_owned(),
            required: format!("{} {}", h.comparison.symbol(), fmt::value(h.bound, &h.unit)),
            observed: fmt::opt_value(h.observed, &h.unit),
            reason: h.reason.clone(),
        })
        .collect();
    let mut workload = Vec::new();
    for stats in &repetition.workload {
        for (i, c) in std::iter::once(&stats.total)
            .chain(&stats.commands)
            .enumerate()
        {
            let latency = |pick: fn(&crate::model::Percentiles) -> f64| {
                c.latency_ms
                    .as_ref()
                    .map_or_else(|| fmt::DASH.to_owned(), |p| fmt::millis(pick(p)))
            };
            workload.push(WorkloadRow {
                window: if i == 0 {
                    stats.window.as_str().to_owned()
                } else {
                    String::new()
                },
                command: if i == 0 {
                    "all commands".to_owned()
                } else {
                    c.command.clone()
                },
                is_total: i == 0,
                count: c.count,
                successes: c.successes,
                ratio: c
                    .success_ratio
                    .map_or_else(|| fmt::DASH.to_owned(), fmt::percent),
                p50: latency(|p| p.p50),
                p95: latency(|p| p.p95),
                p99: latency(|p| p.p99),
            });
        }
    }
    let recovery = match (
        repetition.recovery.recovery_s,
        repetition.recovery.baseline_success_ratio,
    ) {
        (Some(s), Some(base)) if s <= 0.0 => format!(
            "the success ratio was at its baseline ({}) right after the revert",
            fmt::percent(base)
        ),
        (Some(s), Some(base)) => format!(
            "back to the baseline success ratio ({}) {} after the revert",
            fmt::percent(base),
            fmt::seconds(s)
        ),
        (Some(s), None) => format!("recovered {} after the revert", fmt::seconds(s)),
        (None, _) => "did not recover before the recovery window ended".to_owned(),
    };
    // Only the transactions a detector flagged (failed or anomalous) are worth a reader's time;
    // the others are counted.
    let flagged: Vec<&str> = repetition
        .alarms
        .iter()
        .filter_map(|a| a.transaction.as_deref())
        .collect();
    let (shown, unflagged): (Vec<_>, Vec<_>) = repetition
        .failing_transactions
        .iter()
        .partition(|d| flagged.contains(&d.transaction.as_str()));
    let divergences = shown
        .into_iter()
        .map(divergence_view)
        .collect::<Result<_, _>>()?;
    Ok(RepetitionView {
        title: if repetitions > 1 {
            format!("Repetition {}", repetition.index + 1)
        } else {
            String::new()
        },
        faults,
        timeline_svg: timeline_svg(repetition, detectors, color_of),
        hypotheses,
        workload,
        recovery,
        unsteady: repetition.unsteady.clone(),
        alarm_count: repetition.alarms.len(),
        divergences,
        unflagged_divergences: unflagged.len(),
    })
}

/// Escapes text for SVG/HTML content and attributes (also the history's trends page).
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" axis step (1, 2, 5 × 10ⁿ) giving about `target` ticks over `span`.
fn nice_step(span: f64, target: f64) -> f64 {
    let raw = (span / target).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let nice = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

const WIDTH: f64 = 960.0;

/// Label of the latency tick at 10^decade milliseconds.
fn decade_label(decade: i32) -> String {
    match decade {
        i32::MIN..=2 => format!("{} ms", 10f64.powi(decade.max(0))),
        _ => format!("{} s", 10f64.powi(decade - 3)),
    }
}
/// Room on the left for the y labels and the detector names of the alarm lanes.
const LEFT: f64 = 104.0;
/// Height of one detector's alarm lane.
const ALARM_LANE_H: f64 = 22.0;
/// Top of the window bands; the band labels sit above it.
const BAND_TOP: f64 = 22.0;
const RIGHT: f64 = 20.0;

/// The timeline of a repetition: window bands, fault interval, success ratio, latency, alarms.
fn timeline_svg(
    repetition: &Repetition,
    detectors: &[String],
    color_of: &dyn Fn(&str) -> &'static str,
) -> String {
    let windows = &repetition.windows;
    let origin = windows.baseline.start;
    let span = seconds_between(origin, windows.recovery.end).max(1.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |s: f64| LEFT + (s.clamp(0.0, span) / span) * plot_w;
    let t = |ts: jiff::Timestamp| seconds_between(origin, ts);

    // Vertical layout: header lane for labels, success panel, latency panel, one alarm lane per
    // detector (so that one detector's marks never hide another's), axis.
    let (ratio_top, ratio_h) = (50.0, 120.0);
    let (lat_top, lat_h) = (ratio_top + ratio_h + 34.0, 110.0);
    let alarm_top = lat_top + lat_h + 14.0;
    let lanes: Vec<&str> = if detectors.is_empty() {
        vec![""]
    } else {
        detectors.iter().map(String::as_str).collect()
    };
    let alarm_h = ALARM_LANE_H * lanes.len() as f64;
    let axis_y = alarm_top + alarm_h;
    let height = axis_y + 28.0;

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="timeline" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="Timeline: success ratio, latency and alarms over the repetition" xmlns="http://www.w3.org/2000/svg">"#
    );

    // Window bands across all panels.
    for kind in WindowKind::ALL {
        let w = windows.get(kind);
        let (x0, x1) = (x(t(w.start)), x(t(w.end)));
        let _ = write!(
            s,
            r#"<rect class="band band-{k}" x="{x0:.1}" y="{top}" width="{w:.1}" height="{h}"/><text class="band-label" x="{lx:.1}" y="14">{k}</text>"#,
            k = kind.as_str(),
            top = BAND_TOP,
            w = (x1 - x0).max(0.0),
            h = axis_y - BAND_TOP,
            lx = x0 + 6.0,
        );
    }
    // Fault intervals: inject → revert (or the end when never confirmed).
    for fault in &repetition.faults {
        let x0 = x(t(fault.injected_at));
        let x1 = x(fault.reverted_at.map_or(span, t));
        let _ = write!(
            s,
            r#"<rect class="fault-span" x="{x0:.1}" y="{top}" width="{w:.1}" height="{h}"><title>{title}</title></rect><line class="inject" x1="{x0:.1}" x2="{x0:.1}" y1="{top}" y2="{axis_y}"/><line class="revert" x1="{x1:.1}" x2="{x1:.1}" y1="{top}" y2="{axis_y}"/><text class="fault-label" x="{lx:.1}" y="{ly}">⚡ {label}</text>"#,
            top = BAND_TOP,
            w = (x1 - x0).max(1.5),
            h = axis_y - BAND_TOP,
            title = esc(&format!(
                "{} {} — injected +{:.1} s, reverted {}",
                fault.kind,
                fmt::fault_target(fault),
                t(fault.injected_at),
                fault.reverted_at.map_or_else(
                    || "never confirmed".to_owned(),
                    |r| format!("+{:.1} s", t(r))
                )
            )),
            lx = x0 + 4.0,
            ly = BAND_TOP + 16.0,
            label = esc(&format!(
                "{} {}",
                fault.kind,
                fault.target.service.as_deref().unwrap_or("")
            )),
        );
    }

    // Success ratio panel.
    panel_frame(
        &mut s,
        ratio_top,
        ratio_h,
        "success ratio",
        &[(0.0, "0 %"), (0.5, "50 %"), (1.0, "100 %")],
    );
    let bucket_s = repetition.timeline.bucket_s;
    let ratio_y = |r: f64| ratio_top + ratio_h - r.clamp(0.0, 1.0) * ratio_h;
    let ratio_points: Vec<Option<(f64, f64)>> = series(repetition, |b| b.success_ratio())
        .map(|p| p.map(|(i, r)| (x((f64::from(i) + 0.5) * bucket_s), ratio_y(r))))
        .collect();
    let ratio_path = path_of(&ratio_points);
    let _ = write!(
        s,
        r#"<path class="series series-success" d="{ratio_path}"/>"#
    );
    // Failed commands as small ticks along the bottom of the success panel.
    for b in &repetition.timeline.buckets {
        if b.failed > 0 {
            let cx = x((f64::from(b.index) + 0.5) * bucket_s);
            let _ = write!(
                s,
                r#"<rect class="failed-tick" x="{:.1}" y="{:.1}" width="3" height="{:.1}"><title>+{} s: {} failed, {} ok</title></rect>"#,
                cx - 1.5,
                ratio_top + ratio_h - (f64::from(b.failed).min(6.0) * 6.0),
                f64::from(b.failed).min(6.0) * 6.0,
                fmt::trim(f64::from(b.index) * bucket_s, 1),
                b.failed,
                b.ok,
            );
        }
    }

    // Latency panel: one bar per bucket from p50 to p95 on a log scale, so a 200 ms listing and
    // a 30 s boot timeout are both readable; buckets with failed commands are drawn in red.
    let max_latency = repetition
        .timeline
        .buckets
        .iter()
        .filter_map(|b| b.latency_p95_ms.or(b.latency_p50_ms))
        .fold(1.0f64, f64::max);
    let min_latency = repetition
        .timeline
        .buckets
        .iter()
        .filter_map(|b| b.latency_p50_ms)
        .fold(f64::INFINITY, f64::min);
    let decade_min = if min_latency.is_finite() {
        min_latency.max(1.0).log10().floor()
    } else {
        1.0
    };
    let decade_max = max_latency.log10().ceil().max(decade_min + 1.0);
    let decades = decade_max - decade_min;
    let lat_ticks: Vec<(f64, String)> = (0..=(decades as usize))
        .map(|i| {
            (
                i as f64 / decades,
                decade_label(decade_min as i32 + i as i32),
            )
        })
        .collect();
    let tick_refs: Vec<(f64, &str)> = lat_ticks.iter().map(|(f, l)| (*f, l.as_str())).collect();
    panel_frame(&mut s, lat_top, lat_h, "latency", &tick_refs);
    let lat_y = |v: f64| {
        let fraction = (v.max(1e-9).log10() - decade_min) / decades;
        lat_top + lat_h - fraction.clamp(0.0, 1.0) * lat_h
    };
    let bar_w = (plot_w * bucket_s / span - 1.5).max(1.0);
    for b in &repetition.timeline.buckets {
        let (Some(p50), Some(p95)) = (b.latency_p50_ms, b.latency_p95_ms.or(b.latency_p50_ms))
        else {
            continue;
        };
        let bx = x(f64::from(b.index) * bucket_s) + 0.75;
        let (top, bottom) = (lat_y(p95.max(p50)), lat_y(p50));
        let _ = write!(
            s,
            r#"<rect class="latency-bar{failed}" x="{bx:.1}" y="{top:.1}" width="{bar_w:.1}" height="{h:.1}" rx="1"><title>+{t} s: p50 {p50}, p95 {p95}</title></rect><rect class="latency-p50" x="{bx:.1}" y="{y50:.1}" width="{bar_w:.1}" height="2"/>"#,
            failed = if b.failed > 0 { " has-failures" } else { "" },
            h = (bottom - top).max(2.0),
            y50 = bottom - 1.0,
            t = fmt::trim(f64::from(b.index) * bucket_s, 1),
            p50 = fmt::millis(p50),
            p95 = fmt::millis(p95),
        );
    }

    // Alarm lanes: one row per detector.
    for (row, detector) in lanes.iter().enumerate() {
        let mid = alarm_top + (row as f64 + 0.5) * ALARM_LANE_H;
        let label = if detector.is_empty() {
            "alarms".to_owned()
        } else {
            elide(detector, 14)
        };
        let _ = write!(
            s,
            r#"<g class="alarm-lane" data-detector="{name}"><text class="axis-label" x="{lx}" y="{ly:.1}" text-anchor="end">{label}<title>{name} alarms</title></text><line class="lane" x1="{LEFT}" x2="{x2}" y1="{mid:.1}" y2="{mid:.1}"/>"#,
            name = esc(detector),
            label = esc(&label),
            lx = LEFT - 8.0,
            ly = mid + 4.0,
            x2 = WIDTH - RIGHT,
        );
        for alarm in repetition.alarms.iter().filter(|a| a.detector == *detector) {
            let ax = x(t(alarm.timestamp()));
            let _ = write!(
                s,
                r#"<path class="alarm" fill="{color}" data-detector="{name}" d="M{ax:.1} {top:.1} L{r:.1} {mid:.1} L{ax:.1} {bottom:.1} L{l:.1} {mid:.1} Z"><title>{title}</title></path>"#,
                color = color_of(&alarm.detector),
                name = esc(&alarm.detector),
                top = mid - 7.0,
                bottom = mid + 7.0,
                r = ax + 5.0,
                l = ax - 5.0,
                title = esc(&alarm_title(alarm, t(alarm.timestamp()))),
            );
        }
        s.push_str("</g>");
    }

    // Time axis.
    let step = nice_step(span, 8.0);
    let _ = write!(
        s,
        r#"<line class="axis" x1="{LEFT}" x2="{}" y1="{axis_y}" y2="{axis_y}"/>"#,
        WIDTH - RIGHT
    );
    let mut tick = 0.0;
    while tick <= span + 1e-9 {
        let tx = x(tick);
        let _ = write!(
            s,
            r#"<line class="axis" x1="{tx:.1}" x2="{tx:.1}" y1="{axis_y}" y2="{y2}"/><text class="tick" x="{tx:.1}" y="{ty}" text-anchor="middle">{label}</text>"#,
            y2 = axis_y + 4.0,
            ty = axis_y + 18.0,
            label = fmt::trim(tick, 1) + " s",
        );
        tick += step;
    }
    s.push_str("</svg>");
    s
}

fn alarm_title(alarm: &Alarm, offset_s: f64) -> String {
    let suspects: Vec<String> = alarm
        .suspects
        .iter()
        .take(3)
        .map(|s| match &s.host {
            Some(host) => format!("{}@{host}", s.service),
            None => s.service.clone(),
        })
        .collect();
    let mut title = format!(
        "{} at +{:.1} s (score {:.2}) — suspects: {}",
        alarm.detector,
        offset_s,
        alarm.score,
        if suspects.is_empty() {
            "none".to_owned()
        } else {
            suspects.join(", ")
        }
    );
    if let Some(kind) = &alarm.fault_kind {
        let _ = write!(title, " — looks like {kind}");
    }
    for line in &alarm.evidence {
        let _ = write!(title, "\n{line}");
    }
    title
}

/// Points of a per-bucket series; `None` marks a gap (an absent or empty bucket).
fn series<'a>(
    repetition: &'a Repetition,
    pick: impl Fn(&crate::model::Bucket) -> Option<f64> + 'a,
) -> impl Iterator<Item = Option<(u32, f64)>> + 'a {
    let mut previous: Option<u32> = None;
    repetition.timeline.buckets.iter().flat_map(move |b| {
        let gap = previous.is_some_and(|p| b.index > p + 1);
        previous = Some(b.index);
        let point = pick(b).map(|v| (b.index, v));
        gap.then_some(None)
            .into_iter()
            .chain(std::iter::once(point))
    })
}

/// An SVG path through the points, broken at gaps.
fn path_of(points: &[Option<(f64, f64)>]) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for point in points {
        match point {
            Some((px, py)) => {
                let _ = write!(d, "{}{px:.1} {py:.1} ", if pen_down { "L" } else { "M" });
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d.trim_end().to_owned()
}

/// Grid lines and y labels of a panel; `ticks` are (fraction of height, label).
fn panel_frame(s: &mut String, top: f64, height: f64, name: &str, ticks: &[(f64, &str)]) {
    for (fraction, label) in ticks {
        let y = top + height - fraction * height;
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}"/><text class="tick" x="{lx}" y="{ty:.1}" text-anchor="end">{label}</text>"#,
            x2 = WIDTH - RIGHT,
            lx = LEFT - 8.0,
            ty = y + 4.0,
            label = esc(label),
        );
    }
    let _ = write!(
        s,
        r#"<text class="axis-label" x="{x}" y="{y:.1}" text-anchor="middle" transform="rotate(-90 {x} {y:.1})">{title}</text>"#,
        x = 14.0,
        y = top + height / 2.0,
        title = name,
    );
}

fn divergence_view(d: &TransactionDivergence) -> Result<DivergenceView, Error> {
    let columns = d.columns()?;
    let changed = columns
        .iter()
        .filter(|(op, _, _)| *op != AlignOp::Match)
        .count();
    let rows = collapse(&columns);
    let collapsed = rows.iter().any(|r| r.repeat > 1);
    let first = columns
        .get(d.divergence_index)
        .map(|(op, normal, failing)| match op {
            AlignOp::Delete => format!("`{}` never happened", normal.unwrap_or("?")),
            AlignOp::Insert => format!("`{}` is absent in normal runs", failing.unwrap_or("?")),
            AlignOp::Substitute => format!(
                "`{}` instead of `{}`",
                failing.unwrap_or("?"),
                normal.unwrap_or("?")
            ),
            AlignOp::Match => String::new(),
        });
    let summary = format!(
        "{changed} of {} steps differ; the first divergence, earliest in causal order, is step {}{}.{}",
        columns.len(),
        d.divergence_index + 1,
        first
            .filter(|f| !f.is_empty())
            .map(|f| format!(": {f}"))
            .unwrap_or_default(),
        if collapsed {
            " Runs of identical missing or extra steps are shown once, with their count."
        } else {
            ""
        }
    );
    Ok(DivergenceView {
        command: d.command.clone(),
        transaction: d.transaction.clone(),
        summary,
        svg: divergence_svg(&rows, d.divergence_index),
    })
}

/// A row of the drawn alignment: a column, or a block of columns repeated `repeat` times.
#[derive(Debug, Clone, PartialEq)]
struct Row<'a> {
    column: Column<'a>,
    /// Index of the column in the alignment (its first occurrence).
    index: usize,
    /// How many times the block this row belongs to repeats (1: not collapsed).
    repeat: usize,
    /// Length of that block, and this row's place in it.
    block: (usize, usize),
}

/// The longest block of steps collapsed when it repeats back to back (a call and its reply, say).
const MAX_COLLAPSED_BLOCK: usize = 4;

/// Collapses runs of identical missing (or extra) steps: a block of up to
/// [`MAX_COLLAPSED_BLOCK`] deletes (or inserts) repeated back to back is drawn once, with its
/// count. Matches and substitutions are drawn as they are.
fn collapse<'a>(columns: &[Column<'a>]) -> Vec<Row<'a>> {
    let mut rows = Vec::new();
    let mut i = 0;
    while i < columns.len() {
        let op = columns[i].0;
        let mut best = (1, 1);
        if matches!(op, AlignOp::Delete | AlignOp::Insert) {
            for k in 1..=MAX_COLLAPSED_BLOCK {
                let Some(block) = columns.get(i..i + k) else {
                    break;
                };
                if block.iter().any(|c| c.0 != op) {
                    break;
                }
                let mut repeat = 1;
                while columns.get(i + repeat * k..i + (repeat + 1) * k) == Some(block) {
                    repeat += 1;
                }
                if repeat > 1 && k * repeat > best.0 * best.1 {
                    best = (k, repeat);
                }
            }
        }
        let (k, repeat) = best;
        for offset in 0..k {
            rows.push(Row {
                column: columns[i + offset],
                index: i + offset,
                repeat,
                block: (k, offset),
            });
        }
        i += k * repeat;
    }
    rows
}

/// The row that shows column `index` of the alignment.
fn row_of(rows: &[Row<'_>], index: usize) -> Option<usize> {
    rows.iter().position(|row| {
        let (k, offset) = row.block;
        let start = row.index - offset;
        (start..start + k * row.repeat).contains(&index) && (index - start) % k == offset
    })
}

/// Two execution sequences side by side: the normal fingerprint on the left, the failing
/// transaction on the right, aligned row by row; differing rows are highlighted, repeated blocks
/// carry their count and the first divergence is marked.
fn divergence_svg(rows: &[Row<'_>], divergence: usize) -> String {
    let divergence = row_of(rows, divergence);
    let row_h = 34.0;
    let box_h = 24.0;
    let (col_w, gap, top) = (380.0, 120.0, 36.0);
    let left_x = 40.0;
    let right_x = left_x + col_w + gap;
    let width = right_x + col_w + 190.0;
    let height = top + rows.len() as f64 * row_h + 10.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="divergence" viewBox="0 0 {width} {height}" role="img" aria-label="Failing transaction aligned with its normal fingerprint" xmlns="http://www.w3.org/2000/svg"><text class="col-title" x="{lx}" y="20">Normal fingerprint</text><text class="col-title" x="{rx}" y="20">Failing transaction</text>"#,
        lx = left_x,
        rx = right_x,
    );
    for (side_x, failing_side) in [(left_x, false), (right_x, true)] {
        // Edges between consecutive present nodes of this side.
        let mut previous: Option<f64> = None;
        for (row, r) in rows.iter().enumerate() {
            if (if failing_side { r.column.2 } else { r.column.1 }).is_some() {
                let y = top + row as f64 * row_h;
                if let Some(py) = previous {
                    let cx = side_x + 18.0;
                    let _ = write!(
                        s,
                        r#"<line class="edge" x1="{cx}" x2="{cx}" y1="{:.1}" y2="{:.1}"/>"#,
                        py + box_h,
                        y
                    );
                }
                previous = Some(y);
            }
        }
    }
    for (row, r) in rows.iter().enumerate() {
        let (op, normal, failing) = r.column;
        let y = top + row as f64 * row_h;
        let class = match op {
            AlignOp::Match => "match",
            AlignOp::Substitute => "substitute",
            AlignOp::Insert => "insert",
            AlignOp::Delete => "delete",
        };
        if Some(row) == divergence {
            let _ = write!(
                s,
                r#"<rect class="divergence-row" x="{x}" y="{y:.1}" width="{w}" height="{h}" rx="6"/><text class="divergence-label" x="{tx}" y="{ty:.1}">◀ first divergence</text>"#,
                x = left_x - 12.0,
                y = y - 5.0,
                w = right_x + col_w + 24.0 - left_x,
                h = row_h,
                tx = right_x + col_w + 20.0,
                ty = y + box_h / 2.0 + 4.0,
            );
        }
        for (side_x, symbol) in [(left_x, normal), (right_x, failing)] {
            match symbol {
                Some(symbol) => {
                    let _ = write!(
                        s,
                        r#"<g class="node node-{class}"><rect x="{side_x}" y="{y:.1}" width="{col_w}" height="{box_h}" rx="5"/><text x="{tx}" y="{ty:.1}">{label}</text></g>"#,
                        tx = side_x + 10.0,
                        ty = y + box_h / 2.0 + 4.5,
                        label = esc(&elide(symbol, 52)),
                    );
                }
                None => {
                    let _ = write!(
                        s,
                        r#"<g class="node node-missing"><rect x="{side_x}" y="{y:.1}" width="{col_w}" height="{box_h}" rx="5"/><text x="{tx}" y="{ty:.1}">{label}</text></g>"#,
                        tx = side_x + 10.0,
                        ty = y + box_h / 2.0 + 4.5,
                        label = if op == AlignOp::Delete {
                            "missing"
                        } else {
                            "absent in normal runs"
                        },
                    );
                }
            }
        }
        if op != AlignOp::Match {
            let label = if r.repeat > 1 {
                format!("{class} × {}", r.repeat)
            } else {
                class.to_owned()
            };
            let _ = write!(
                s,
                r#"<text class="op op-{class}" x="{x}" y="{ty:.1}" text-anchor="middle">{label}</text>"#,
                x = left_x + col_w + gap / 2.0,
                ty = y + box_h / 2.0 + 4.0,
            );
        }
    }
    s.push_str("</svg>");
    s
}

fn elide(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut short: String = text.chars().take(max - 1).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_identical_missing_steps_are_collapsed_with_their_count() {
        use AlignOp::*;
        let call = "rpc.call:conductor.object_action";
        let columns: Vec<Column<'_>> = vec![
            (Match, Some("a"), Some("a")),
            (Delete, Some("rpc.cast:conductor.build_instances"), None),
            (Delete, Some(call), None),
            (Delete, Some("reply:ok"), None),
            (Delete, Some(call), None),
            (Delete, Some("reply:ok"), None),
            (Delete, Some(call), None),
            (Delete, Some("reply:ok"), None),
            (Delete, Some("notify:x"), None),
            (Delete, Some("notify:x"), None),
            (Insert, None, Some("y")),
            (Match, Some("b"), Some("b")),
        ];
        let rows = collapse(&columns);
        let drawn: Vec<(usize, usize)> = rows.iter().map(|r| (r.index, r.repeat)).collect();
        // The missing cast, the call/reply pair × 3, the notification × 2, then as they are.
        assert_eq!(
            drawn,
            [(0, 1), (1, 1), (2, 3), (3, 3), (8, 2), (10, 1), (11, 1)]
        );
        // Every column is still found in the rows that draw it.
        assert_eq!(row_of(&rows, 1), Some(1));
        assert_eq!(row_of(&rows, 6), Some(2));
        assert_eq!(row_of(&rows, 7), Some(3));
        assert_eq!(row_of(&rows, 9), Some(4));
        assert_eq!(row_of(&rows, 11), Some(6));
        let svg = divergence_svg(&rows, 2);
        assert!(svg.contains(">delete × 3<"), "{svg}");
        assert!(svg.contains(">delete × 2<"), "{svg}");
        assert_eq!(svg.matches("first divergence").count(), 1);
        // Matches are never collapsed.
        let same = vec![(Match, Some("a"), Some("a")); 3];
        assert_eq!(collapse(&same).len(), 3);
    }

    #[test]
    fn nice_steps_are_round() {
        assert_eq!(nice_step(180.0, 8.0), 50.0);
        assert_eq!(nice_step(60.0, 8.0), 10.0);
        assert_eq!(nice_step(2400.0, 3.0), 1000.0);
    }

    #[test]
    fn paths_break_at_gaps() {
        let points = [Some((1.0, 2.0)), Some((3.0, 4.0)), None, Some((5.0, 6.0))];
        assert_eq!(path_of(&points), "M1.0 2.0 L3.0 4.0 M5.0 6.0");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
