//! `butterfly history`: the run history — list runs, show one, print trends, import run
//! directories — plus what `run` and `report` share with it: where the history is, how runs
//! are filtered, the trends page and the `regression-vs` gate.

use std::path::{Path, PathBuf};

use history::store::Location;
use history::trends::Trends;
use history::{Filter, Labels, Recorded, Store};
use reports::compare::{GateCheck, GateFailure, GateRule};

use crate::exit::{CliError, Exit};

const HISTORY_EXAMPLES: &str = "\
Examples:
  butterfly history list
  butterfly history show 20261120T140211Z-nova-resilience
  butterfly history trends --campaign nova-resilience --order-by release
  butterfly history import runs/*/ --label build=4f2c1a9
  butterfly history --history postgres://butterfly@db.example/history list --label release=2025.1";

/// The run history: every recorded run, its figures and their trends.
///
/// Each `butterfly run` records itself in the history (SQLite at `<output.dir>/history.sqlite`
/// by default, or PostgreSQL with `--history postgres://…`). Runs are keyed on their id in
/// report.json: importing a run directory twice records it once.
#[derive(Debug, clap::Args)]
#[command(after_help = HISTORY_EXAMPLES)]
pub struct Args {
    /// Where the history is.
    #[command(flatten)]
    pub store: StoreArg,
    /// What to do.
    #[command(subcommand)]
    pub command: HistoryCommand,
}

/// The `--history` option.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct StoreArg {
    /// The run history: a SQLite file (a path or `sqlite:PATH`) or a `postgres://` URL
    /// [default: runs/history.sqlite].
    #[arg(
        long = "history",
        value_name = "URL",
        env = "BUTTERFLY_HISTORY",
        global = true
    )]
    pub history: Option<String>,
}

impl StoreArg {
    /// The location given, else `default`.
    pub fn location_or(&self, default: impl FnOnce() -> Location) -> Result<Location, CliError> {
        match &self.history {
            Some(text) => Location::parse(text).map_err(|e| CliError::InvalidInput(e.to_string())),
            None => Ok(default()),
        }
    }
}

/// Which runs a listing or a trend is about.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only runs of this campaign.
    #[arg(long, value_name = "NAME")]
    pub campaign: Option<String>,
    /// Only this experiment's figures (trends only).
    #[arg(long, value_name = "NAME")]
    pub experiment: Option<String>,
    /// Only runs with this label (repeatable; every one must match).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Only the most recent N matching runs.
    #[arg(long, value_name = "N")]
    pub last: Option<usize>,
    /// Order runs by this label's value instead of their start time.
    #[arg(long, value_name = "LABEL")]
    pub order_by: Option<String>,
}

impl FilterArgs {
    /// Whether any filter was given.
    pub fn any(&self) -> bool {
        self.campaign.is_some()
            || self.experiment.is_some()
            || !self.labels.is_empty()
            || self.last.is_some()
            || self.order_by.is_some()
    }

    fn filter(&self) -> Result<Filter, CliError> {
        Ok(Filter {
            campaign: self.campaign.clone(),
            labels: parse_labels(&self.labels)?,
            last: self.last,
            ..Filter::default()
        })
    }

    fn trends(&self, store: &mut Store) -> Result<Trends, CliError> {
        if let Some(key) = &self.order_by {
            scenarios::labels::check_key(key).map_err(CliError::InvalidInput)?;
        }
        Trends::load(
            store,
            &self.filter()?,
            self.experiment.as_deref(),
            self.order_by.as_deref(),
        )
        .map_err(setup)
    }
}

/// `butterfly history` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum HistoryCommand {
    /// List recorded runs, oldest first.
    #[command(
        after_help = "Examples:\n  butterfly history list\n  butterfly history list --campaign nova-resilience --label release=2025.1 --last 10"
    )]
    List(FilterArgs),
    /// Show one recorded run: labels, repetitions and figures.
    #[command(after_help = "Examples:\n  butterfly history show 20261120T140211Z-nova-resilience")]
    Show {
        /// The run's id (as `history list` prints it).
        run: String,
    },
    /// Print each figure's values across runs (`butterfly report --trends` draws them).
    #[command(
        after_help = "Examples:\n  butterfly history trends --campaign nova-resilience --order-by release\n  butterfly history trends --experiment kill-nova-conductor --last 5"
    )]
    Trends(FilterArgs),
    /// Record existing run directories (idempotent: a run already recorded is left as it is).
    #[command(
        after_help = "Examples:\n  butterfly history import runs/nova-resilience-20261120T140211Z\n  butterfly history import runs/*/ --label release=2025.1 --label build=4f2c1a9"
    )]
    Import {
        /// Run directories holding report.json.
        #[arg(value_name = "RUN_DIR", required = true)]
        run_dirs: Vec<PathBuf>,
        /// Label to record the runs with (repeatable), besides those report.json implies.
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
}

fn setup(error: history::Error) -> CliError {
    CliError::Setup(error.to_string())
}

/// Parses `--label KEY=VALUE` arguments (exit 2 when one is malformed).
pub fn parse_labels(texts: &[String]) -> Result<Labels, CliError> {
    history::labels::parse_all(texts.iter().map(String::as_str))
        .map_err(|e| CliError::InvalidInput(e.to_string()))
}

/// The history of `history` commands without `--history`: `runs/history.sqlite`.
fn default_location() -> Location {
    Location::beside(Path::new("runs"))
}

/// Opens the history; an unreachable or broken one is a setup error (exit 3).
pub fn open(location: &Location) -> Result<Store, CliError> {
    Store::open(location).map_err(setup)
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    match args.command {
        HistoryCommand::Import { run_dirs, labels } => {
            let labels = parse_labels(&labels)?;
            let location = args.store.location_or(|| {
                // Beside the run directories, where `butterfly run` would have recorded them.
                Location::beside(
                    run_dirs[0]
                        .parent()
                        .filter(|p| !p.as_os_str().is_empty())
                        .unwrap_or(Path::new(".")),
                )
            })?;
            let mut store = open(&location)?;
            print!("{}", import(&mut store, &run_dirs, &labels)?);
            Ok(Exit::Pass)
        }
        command => {
            let mut store = open(&args.store.location_or(default_location)?)?;
            print!("{}", render(&mut store, &command)?);
            Ok(Exit::Pass)
        }
    }
}

/// Imports run directories, one line per directory; a directory that cannot be read does not
/// stop the others but makes the command fail (exit 2) once all were tried.
fn import(store: &mut Store, run_dirs: &[PathBuf], labels: &Labels) -> Result<String, CliError> {
    let mut out = String::new();
    let mut failed = Vec::new();
    for dir in run_dirs {
        match store.import(dir, labels, jiff::Timestamp::now()) {
            Ok((run, Recorded::Added)) => out.push_str(&format!("added {run}\n")),
            Ok((run, Recorded::AlreadyPresent)) => {
                out.push_str(&format!("already recorded {run}\n"))
            }
            Err(error @ history::Error::Report(_)) => {
                failed.push(format!("{}: {error}", dir.display()))
            }
            Err(error) => return Err(setup(error)),
        }
    }
    if failed.is_empty() {
        Ok(out)
    } else {
        print!("{out}");
        Err(CliError::InvalidInput(format!(
            "{} run director{} not imported:\n  {}",
            failed.len(),
            if failed.len() == 1 {
                "y was"
            } else {
                "ies were"
            },
            failed.join("\n  ")
        )))
    }
}

/// The output of `list`, `show` and `trends`.
fn render(store: &mut Store, command: &HistoryCommand) -> Result<String, CliError> {
    match command {
        HistoryCommand::List(filters) => {
            if filters.experiment.is_some() {
                return Err(CliError::InvalidInput(
                    "--experiment selects the figures of `history trends`; `history list` lists \
                     whole runs"
                        .into(),
                ));
            }
            let mut runs = store.runs(&filters.filter()?).map_err(setup)?;
            if let Some(key) = &filters.order_by {
                scenarios::labels::check_key(key).map_err(CliError::InvalidInput)?;
                history::trends::sort_by_label(&mut runs, key);
            }
            Ok(list(&runs))
        }
        HistoryCommand::Show { run } => match store.show(run) {
            Ok(detail) => Ok(show(&detail)),
            Err(error @ history::Error::NoSuchRun(_)) => {
                Err(CliError::InvalidInput(error.to_string()))
            }
            Err(error) => Err(setup(error)),
        },
        HistoryCommand::Trends(filters) => Ok(filters.trends(store)?.to_text()),
        HistoryCommand::Import { .. } => unreachable!("imports are not rendered"),
    }
}

fn labels_text(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn list(runs: &[history::RunSummary]) -> String {
    if runs.is_empty() {
        return "no runs recorded\n".to_owned();
    }
    let width = |f: fn(&history::RunSummary) -> usize, header: &str| {
        runs.iter().map(f).max().unwrap_or(0).max(header.len())
    };
    let id = width(|r| r.run_id.len(), "RUN");
    let campaign = width(|r| r.campaign.len(), "CAMPAIGN");
    let mut out = format!(
        "{:id$}  {:campaign$}  {:20}  {:11}  {:10}  LABELS\n",
        "RUN", "CAMPAIGN", "STARTED", "OUTCOME", "HYPOTHESES"
    );
    for r in runs {
        let started = r
            .started_at
            .parse::<jiff::Timestamp>()
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|_| r.started_at.clone());
        let outcome = if r.passed {
            "passed".to_owned()
        } else if r.outcome == "completed" {
            "failed".to_owned()
        } else {
            r.outcome.clone()
        };
        out.push_str(&format!(
            "{:id$}  {:campaign$}  {started:20}  {outcome:11}  {:10}  {}\n",
            r.run_id,
            r.campaign,
            format!("{}/{}", r.hypotheses_held, r.hypotheses),
            labels_text(&r.labels)
        ));
    }
    out
}

fn show(detail: &history::store::RunDetail) -> String {
    let r = &detail.summary;
    let mut out = format!("run {}\n", r.run_id);
    out.push_str(&format!("  campaign: {}\n", r.campaign));
    out.push_str(&format!("  started: {}\n", r.started_at));
    out.push_str(&format!(
        "  outcome: {}, {} of {} hypotheses held\n",
        r.outcome, r.hypotheses_held, r.hypotheses
    ));
    if let Some(dir) = &r.run_dir {
        out.push_str(&format!("  run directory: {dir}\n"));
    }
    out.push_str(&format!("  labels: {}\n", labels_text(&r.labels)));
    out.push_str("repetitions:\n");
    for rep in &detail.repetitions {
        out.push_str(&format!(
            "  {} #{}: {} on {}, {}, {}\n",
            rep.experiment,
            rep.repetition,
            if rep.faults.is_empty() {
                "no fault"
            } else {
                &rep.faults
            },
            if rep.targets.is_empty() {
                "-"
            } else {
                &rep.targets
            },
            rep.verdict,
            rep.recovery_s.map_or_else(
                || "did not recover".to_owned(),
                |s| format!("recovered in {} s", history::stats::number(s))
            )
        ));
    }
    out.push_str("figures:\n");
    let mut experiment = None;
    for f in &detail.figures {
        if experiment != Some(&f.experiment) {
            out.push_str(&format!("  {}\n", f.experiment));
            experiment = Some(&f.experiment);
        }
        out.push_str(&format!(
            "    {} = {} ({} is better)\n",
            f.name,
            history::stats::number(f.value),
            f.better.as_str()
        ));
    }
    out
}

/// `butterfly report --trends FILE [filters]`: writes the trends page; returns its path.
pub fn write_trends(
    store: &StoreArg,
    filters: &FilterArgs,
    output: &Path,
) -> Result<Exit, CliError> {
    let location = store.location_or(default_location)?;
    let mut store = open(&location)?;
    let trends = filters.trends(&mut store)?;
    let title = match &filters.campaign {
        Some(campaign) => format!("Butterfly trends: {campaign}"),
        None => "Butterfly trends".to_owned(),
    };
    reports::write_atomically(output, trends.to_html(&title).as_bytes())
        .map_err(|e| CliError::Setup(e.to_string()))?;
    eprintln!(
        "wrote {} ({} run(s), {} experiment(s))",
        output.display(),
        trends.runs.len(),
        trends.series.len()
    );
    Ok(Exit::Pass)
}

/// Judges the `regression-vs` rules against the history at `location`; every other rule is
/// left to `reports::compare::gate`.
pub fn regression_gates(
    location: &Location,
    report: &reports::Report,
    rules: &[GateRule],
) -> Result<Vec<GateFailure>, CliError> {
    let mut failures = Vec::new();
    let mut store = None;
    for rule in rules {
        let GateCheck::RegressionVs { last, labels } = &rule.check else {
            continue;
        };
        let store = match &mut store {
            Some(store) => store,
            None => store.insert(open(location)?),
        };
        let judged = history::gate::regression_vs(store, report, *last, labels).map_err(setup)?;
        let fail = |message: String| GateFailure {
            rule: rule.text.clone(),
            message,
        };
        // Nothing to compare with is a failure, not a pass: a mistyped label must not wave a
        // release through.
        if judged.compared.is_empty() {
            failures.push(fail(format!(
                "no earlier run of {} in the history {} has {}",
                report.campaign.name,
                location.display(),
                if labels.is_empty() {
                    "been recorded".to_owned()
                } else {
                    format!("the labels {}", labels_text(labels))
                }
            )));
        }
        failures.extend(judged.regressions.iter().map(|r| fail(r.describe())));
    }
    Ok(failures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("reports/tests/fixtures")
            .join(name)
    }

    fn store_with_fixtures() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&Location::beside(dir.path())).unwrap();
        let labels = parse_labels(&["build=4f2c1a9".to_owned()]).unwrap();
        for name in ["baseline-run", "run", "recorded-boot-storm"] {
            let report = reports::read_run(&fixture(name)).unwrap();
            let at = "2026-12-01T00:00:00Z".parse().unwrap();
            // The run directory as `butterfly run` would name it, independent of the checkout.
            let run_dir = PathBuf::from("runs").join(&report.run_id);
            store.record(&report, &labels, Some(&run_dir), at).unwrap();
        }
        (dir, store)
    }

    #[test]
    fn history_list_shows_every_run_with_its_outcome_and_labels() {
        let (_dir, mut store) = store_with_fixtures();
        let listed = render(&mut store, &HistoryCommand::List(FilterArgs::default())).unwrap();
        insta::assert_snapshot!(listed);
        let filtered = render(
            &mut store,
            &HistoryCommand::List(FilterArgs {
                labels: vec!["release=2025.1".into()],
                ..FilterArgs::default()
            }),
        )
        .unwrap();
        assert_eq!(filtered.lines().count(), 2, "{filtered}");
        let by_release = render(
            &mut store,
            &HistoryCommand::List(FilterArgs {
                order_by: Some("release".into()),
                ..FilterArgs::default()
            }),
        )
        .unwrap();
        let ids: Vec<&str> = by_release
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "20261013T094152Z-nova-resilience",
                "20261120T140211Z-nova-resilience",
                "boot-storm-20261128T144121Z"
            ],
            "2025.1, 2025.2, then the run without a release"
        );
        let error = render(
            &mut store,
            &HistoryCommand::List(FilterArgs {
                experiment: Some("kill-nova-conductor".into()),
                ..FilterArgs::default()
            }),
        )
        .unwrap_err();
        assert_eq!(error.code(), 2, "{error}");
    }

    #[test]
    fn history_show_prints_repetitions_and_figures() {
        let (_dir, mut store) = store_with_fixtures();
        let shown = render(
            &mut store,
            &HistoryCommand::Show {
                run: "20261120T140211Z-nova-resilience".into(),
            },
        )
        .unwrap();
        insta::assert_snapshot!(shown);
        let error = render(&mut store, &HistoryCommand::Show { run: "nope".into() }).unwrap_err();
        assert!(error.to_string().contains("no run nope"), "{error}");
    }

    #[test]
    fn history_trends_print_values_in_label_order() {
        let (_dir, mut store) = store_with_fixtures();
        let text = render(
            &mut store,
            &HistoryCommand::Trends(FilterArgs {
                campaign: Some("nova-resilience".into()),
                experiment: Some("kill-nova-conductor".into()),
                order_by: Some("release".into()),
                ..FilterArgs::default()
            }),
        )
        .unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn importing_reports_each_directory_and_fails_on_an_unreadable_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&Location::beside(dir.path())).unwrap();
        let out = import(
            &mut store,
            &[fixture("run"), fixture("run")],
            &Labels::new(),
        )
        .unwrap();
        assert_eq!(
            out,
            "added 20261120T140211Z-nova-resilience\nalready recorded 20261120T140211Z-nova-resilience\n"
        );
        let error = import(
            &mut store,
            &[dir.path().join("missing"), fixture("baseline-run")],
            &Labels::new(),
        )
        .unwrap_err();
        assert_eq!(error.code(), 2);
        assert!(error.to_string().contains("missing"), "{error}");
        assert_eq!(
            store.runs(&Filter::default()).unwrap().len(),
            2,
            "the readable directory was imported"
        );
    }

    #[test]
    fn bad_labels_are_invalid_input() {
        let error = parse_labels(&["Release=1".into()]).unwrap_err();
        assert_eq!(error.code(), 2);
    }

    #[test]
    fn regression_vs_without_comparable_runs_fails_and_says_why() {
        let (dir, _store) = store_with_fixtures();
        let report = reports::read_run(&fixture("run")).unwrap();
        let rules: Vec<GateRule> = ["regression-vs:label=release=1999.1", "min-f1=0.1"]
            .iter()
            .map(|r| r.parse().unwrap())
            .collect();
        let failures = regression_gates(&Location::beside(dir.path()), &report, &rules).unwrap();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].message.contains("release=1999.1"),
            "{}",
            failures[0].message
        );
        // The baseline run is an earlier nova-resilience run: the later run is judged against it.
        let rules: Vec<GateRule> = vec!["regression-vs:last=5".parse().unwrap()];
        let failures = regression_gates(&Location::beside(dir.path()), &report, &rules).unwrap();
        assert!(
            !failures.is_empty(),
            "the later run is worse in several figures"
        );
        assert!(
            failures
                .iter()
                .all(|f| f.message.contains("comparable run")),
            "{failures:?}"
        );
    }
}
