//! `butterfly watch`: the tracer and the detection engine on a production cloud, continuously,
//! injecting nothing; alarms as JSON Lines, to an Alertmanager webhook and as Prometheus metrics.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use fingerprint::Store;
use fingerprint::watch::{Routes, WatchConfig};

use crate::exit::{CliError, Exit};
use crate::runner::detect::roles_of_testbed;
use crate::runner::production::{self, Source, Speed, WatchOptions};

/// Watch a production cloud: trace it, judge users' requests against learned fingerprints, alarm.
///
/// Users' transactions are labelled by their entry REST request (service, method, route), which
/// the store's commands start with (`--routes` prints that table); background and periodic
/// traffic is never judged. Alarms go to stdout (or `--alarms`) as JSON Lines, to `--webhook`
/// as Alertmanager v2 alerts, and are counted on `--listen`'s `/metrics`.
///
/// Exit 0 when stopped by SIGINT or SIGTERM (a watch's normal end) or at the end of a replayed
/// trace, 2 on invalid input, 3 when a source cannot be reached at the start.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit 0 when stopped by SIGINT/SIGTERM or at the end of --from-trace, 2 on invalid input, 3 when a source cannot be reached at the start.

Examples:
  butterfly watch --inventory inventory.yaml --fingerprints fp.json \\
      --amqp amqp://butterfly:secret@ctl:5672/%2f --rest-records ctl:9899 \\
      --webhook http://alertmanager:9093/api/v2/alerts --listen 0.0.0.0:9465
  butterfly watch --inventory inventory.yaml --fingerprints fp.json --routes
  butterfly watch --inventory inventory.yaml --fingerprints fp.json \\
      --from-trace day/events.jsonl --speed max --alarms alarms.jsonl")]
pub struct Args {
    /// The cloud's inventory (an inventory file, or a campaign whose testbed is the cloud): which
    /// services are the database, the broker, the APIs.
    #[arg(long, value_name = "INV.yaml")]
    pub inventory: PathBuf,
    /// The fingerprint store to judge against (refined and saved in place with `--learn`).
    #[arg(long, value_name = "FP.json")]
    pub fingerprints: PathBuf,
    /// An AMQP URL to capture (repeatable, one capture each): the firehose, which must be on
    /// (`rabbitmqctl trace_on -p VHOST`), unless `--tap` names exchanges.
    #[arg(
        long,
        value_name = "URL",
        env = "BUTTERFLY_WATCH_AMQP",
        value_delimiter = ','
    )]
    pub amqp: Vec<String>,
    /// Tap these exchanges (a queue bound with `#` to each) instead of reading the firehose.
    #[arg(long, value_name = "EXCHANGE", requires = "amqp")]
    pub tap: Vec<String>,
    /// A recording REST proxy's record stream, `HOST:PORT` (repeatable).
    #[arg(long, value_name = "HOST:PORT")]
    pub rest_records: Vec<String>,
    /// Replay a recorded `events.jsonl` instead of watching a live cloud.
    #[arg(long, value_name = "events.jsonl", conflicts_with_all = ["amqp", "rest_records"])]
    pub from_trace: Option<PathBuf>,
    /// The replay's pace: `max` or N (N× the recorded pace).
    #[arg(long, default_value = "max", requires = "from_trace")]
    pub speed: String,
    /// Append alarms (JSON Lines) to this file instead of printing them.
    #[arg(long, value_name = "FILE")]
    pub alarms: Option<PathBuf>,
    /// Post alarms to this Alertmanager v2 endpoint (`http://HOST:9093/api/v2/alerts`).
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
    /// Serve Prometheus metrics on `ADDR/metrics`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Refine the positives from users' successful transactions, saving the store periodically.
    #[arg(long)]
    pub learn: bool,
    /// How often the store is saved with `--learn` (and at the end).
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub save_every: Duration,
    /// How long an alert fires in Alertmanager (its `endsAt` after the alarm).
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub alert_for: Duration,
    /// The back-link of the alerts (`generatorURL`) [default: the metrics URL, if any].
    #[arg(long, value_name = "URL")]
    pub generator_url: Option<String>,
    /// Learning stops once the store holds this many variants.
    #[arg(long, default_value_t = WatchConfig::default().max_variants)]
    pub max_variants: usize,
    /// Print the route → command table the store gives and exit.
    #[arg(long)]
    pub routes: bool,
}

fn speed_of(text: &str) -> Result<Speed, CliError> {
    if text == "max" {
        return Ok(Speed::Max);
    }
    match text.parse::<f64>() {
        Ok(times) if times.is_finite() && times > 0.0 => Ok(Speed::Times(times)),
        _ => Err(CliError::InvalidInput(format!(
            "--speed {text:?}: expected `max` or a positive number; hint: --speed 60 replays an hour in a minute"
        ))),
    }
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    let testbed = match scenarios::check_file(&args.inventory) {
        (_, Ok(scenarios::Checked::Inventory(testbed))) => testbed,
        (_, Ok(scenarios::Checked::Campaign(campaign))) => campaign.testbed,
        (_, Err(diagnostics)) => return Err(CliError::InvalidInput(diagnostics.to_string())),
    };
    let store = Store::load(&args.fingerprints)
        .map_err(|error| CliError::InvalidInput(error.to_string()))?;
    let routes = Routes::of_store(&store);
    if routes.is_empty() {
        return Err(CliError::InvalidInput(format!(
            "{}: no command of this store starts with a REST request, so no user transaction could be labelled; hint: learn it from traces with the REST proxy's records (`butterfly fingerprint learn`)",
            args.fingerprints.display()
        )));
    }
    if args.routes {
        for (route, command) in routes.iter() {
            let also = routes
                .ambiguous()
                .get(route)
                .map(|all| format!("  (also starts: {})", all[1..].join(", ")))
                .unwrap_or_default();
            println!("{route}\t{command}{also}");
        }
        return Ok(Exit::Pass);
    }
    let source = match &args.from_trace {
        Some(path) => Source::Trace {
            path: path.clone(),
            speed: speed_of(&args.speed)?,
        },
        None if args.amqp.is_empty() && args.rest_records.is_empty() => {
            return Err(CliError::InvalidInput(
                "nothing to watch; hint: give --amqp URL and/or --rest-records HOST:PORT, or --from-trace events.jsonl".into(),
            ));
        }
        None => {
            for url in &args.amqp {
                url.parse::<lapin::uri::AMQPUri>().map_err(|_| {
                    CliError::InvalidInput(
                        "--amqp: not an AMQP URL; hint: amqp://USER:PASSWORD@HOST:5672/VHOST"
                            .into(),
                    )
                })?;
            }
            Source::Live {
                amqp: args.amqp.clone(),
                tap: args.tap.clone(),
                rest_records: args.rest_records.clone(),
            }
        }
    };
    let generator_url = args.generator_url.clone().unwrap_or_else(|| {
        args.listen
            .map(|addr| format!("http://{addr}/metrics"))
            .unwrap_or_default()
    });
    let options = WatchOptions {
        roles: roles_of_testbed(&testbed),
        store,
        store_path: args.fingerprints.clone(),
        source,
        alarms: args.alarms.clone(),
        webhook: args.webhook.clone(),
        listen: args.listen,
        save_every: args.save_every,
        alert_for: args.alert_for,
        generator_url,
        config: WatchConfig {
            learn: args.learn,
            max_variants: args.max_variants,
            ..WatchConfig::default()
        },
    };
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|error| CliError::Setup(format!("cannot start the async runtime: {error}")))?;
    let summary = runtime
        .block_on(production::watch(options, injector::shutdown_signal()))
        .map_err(CliError::Setup)?;
    let c = summary.counters;
    let hours = summary.span_us as f64 / 3.6e9;
    eprintln!(
        "butterfly: watch {}: {} events over {:.2} h of traffic ({} read from the trace, {} stitched, {} in no transaction); {} user transactions judged ({} succeeded), {} background, {} not users', {} to routes no fingerprint starts; {} alarms ({:.2}/h); dropped: {} held events, {} inputs past the open cap, {} evicted by the stitcher, {} alerts the webhook did not take",
        if summary.signalled {
            "stopped by a signal"
        } else {
            "ended"
        },
        c.events,
        hours,
        summary.read,
        summary.stitched,
        summary.unattributed,
        c.judged,
        c.succeeded,
        c.background,
        c.not_user,
        c.unknown_route,
        summary.alarms,
        if hours > 0.0 {
            summary.alarms as f64 / hours
        } else {
            0.0
        },
        c.dropped_events,
        c.refused_inputs,
        summary.evicted,
        summary.webhook_dropped
    );
    Ok(Exit::Pass)
}
