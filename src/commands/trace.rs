//! `butterfly trace`: run the AMQP and REST tracers standalone and write a trace directory, or
//! `butterfly trace import` to rebuild graphs offline from recorded traces and other tools' spans.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Subcommand;
use tokio::sync::{mpsc, watch};
use tracer::amqp::{AmqpCapture, CaptureMode, RabbitmqctlSwitch, TraceSwitch};
use tracer::pipeline::{Pipeline, TraceSummary};
use tracer::proxy::{BoundProxy, ProxySpec};
use tracer::records::{RecordServer, RecordStats};
use tracer::rest::ProxyRecord;
use tracer::secrets::redact_url;
use tracer::stitch::StitchConfig;

use crate::exit::{CliError, Exit};

const TRACE_EXAMPLES: &str = "\
Examples:
  butterfly trace --amqp amqp://openstack@10.77.0.1:5672/%2f --out trace --duration 30s
  BUTTERFLY_AMQP_PASSWORD=secret butterfly trace --amqp amqp://openstack@10.77.0.1/%2f \\
      --tap nova --out trace
  butterfly trace --rest-proxy nova-api=127.0.0.1:18774=http://10.77.0.2:8774 --out trace
  butterfly trace --serve-records 0.0.0.0:19900 \\
      --rest-proxy nova-api=0.0.0.0:18774=http://controller:8774
  butterfly trace import runs/ci-smoke-20261128T100000Z/trace --out rebuilt";
const IMPORT_EXAMPLES: &str = "\
Examples:
  butterfly trace import runs/ci-smoke-20261128T100000Z/trace --out rebuilt --idle-timeout 10s
  butterfly trace import capture/amqp.jsonl --out rebuilt
  butterfly trace import zipkin-spans.json otlp-spans.json --out rebuilt
  osprofiler trace show --json --connection-string redis://127.0.0.1:6379 $ID > trace.json
  butterfly trace import trace.json --out rebuilt
  butterfly trace import dump.json --format zipkin-v1 --tag-map tags.yaml --out rebuilt

The output directory is written beside it under a temporary name and renamed when complete: a
failed import leaves nothing behind.";

/// Arguments of `butterfly trace`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, after_help = TRACE_EXAMPLES)]
pub struct Args {
    /// Rebuild graphs offline instead of capturing.
    #[command(subcommand)]
    pub command: Option<TraceCommand>,
    /// Capture options.
    #[command(flatten)]
    pub capture: CaptureArgs,
}

/// `butterfly trace` subcommands.
#[derive(Debug, Subcommand)]
pub enum TraceCommand {
    /// Read recorded traces (trace directory, events.jsonl, firehose capture JSONL, OSProfiler,
    /// Zipkin v1/v2, Jaeger or OTLP/JSON spans) and write the rebuilt transactions and graphs.
    Import(ImportArgs),
}

/// Arguments of `butterfly trace import`.
#[derive(Debug, clap::Args)]
#[command(after_help = IMPORT_EXAMPLES)]
pub struct ImportArgs {
    /// Input files or trace directories (format detected from the content; web-server access
    /// logs are not read).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output trace directory (must not exist, or be empty).
    #[arg(long)]
    pub out: PathBuf,
    /// Read every input as this format instead of detecting it: events, capture, osprofiler,
    /// zipkin-v1, zipkin-v2, jaeger, otlp.
    #[arg(long, value_parser = |text: &str| text.parse::<tracer::import::InputFormat>())]
    pub format: Option<tracer::import::InputFormat>,
    /// A YAML file mapping roles (request_id, rpc_method, msg_id, …) to span tag names, replacing
    /// the default table's names for the roles it gives (docs/tracer.md, "Tag mapping").
    #[arg(long, value_name = "FILE")]
    pub tag_map: Option<PathBuf>,
    /// Stitching options.
    #[command(flatten)]
    pub stitch: StitchArgs,
}

/// Stitcher limits.
#[derive(Debug, clap::Args)]
pub struct StitchArgs {
    /// A transaction closes after this long without a new event.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// At most this many open transactions; the least recently active is evicted beyond it.
    #[arg(long, default_value_t = 10_000)]
    pub max_open: usize,
}

/// Capture options of `butterfly trace`.
#[derive(Debug, clap::Args)]
pub struct CaptureArgs {
    /// AMQP URL of the broker vhost, e.g. `amqp://openstack@10.77.0.1:5672/%2f`. The password
    /// may be left out and given in BUTTERFLY_AMQP_PASSWORD instead.
    #[arg(long)]
    pub amqp: Option<String>,
    /// How to switch the firehose on: `rabbitmqctl` (runs `rabbitmqctl trace_on` on this machine,
    /// and `trace_off` at the end if it was off) or `none` (already on).
    #[arg(long, default_value = "rabbitmqctl", value_parser = ["rabbitmqctl", "none"])]
    pub firehose_switch: String,
    /// Tap these exchanges with own queues instead of using the firehose (repeatable).
    #[arg(long = "tap", value_name = "EXCHANGE")]
    pub tap: Vec<String>,
    /// A recording REST proxy `SERVICE=LISTEN=UPSTREAM`, e.g.
    /// `nova-api=127.0.0.1:18774=http://10.77.0.2:8774` (repeatable).
    #[arg(long = "rest-proxy", value_name = "SERVICE=LISTEN=UPSTREAM")]
    pub rest_proxy: Vec<String>,
    /// Serve the proxies' records live as JSON Lines to TCP subscribers on this address (e.g.
    /// `0.0.0.0:19900`), as the testbed's `rest-proxy` unit does for `butterfly run`. Records
    /// while nobody subscribes are dropped, not kept.
    #[arg(long, value_name = "ADDR")]
    pub serve_records: Option<std::net::SocketAddr>,
    /// Output trace directory (optional with `--serve-records`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Stop after this long (e.g. `30s`, `5m`); without it, run until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Stitching options.
    #[command(flatten)]
    pub stitch: StitchArgs,
}

impl StitchArgs {
    fn config(&self) -> StitchConfig {
        StitchConfig {
            idle_timeout_us: i64::try_from(self.idle_timeout.as_micros()).unwrap_or(i64::MAX),
            max_open: self.max_open.max(1),
        }
    }
}

/// Runs `butterfly trace`.
pub fn run(args: Args) -> Result<Exit, CliError> {
    match args.command {
        Some(TraceCommand::Import(import)) => run_import(import),
        None => run_capture(args.capture),
    }
}

fn run_import(args: ImportArgs) -> Result<Exit, CliError> {
    // Every input is read and checked before anything is written.
    let mut problems = Vec::new();
    let tags = match &args.tag_map {
        Some(path) => tracer::import::TagMap::read(path).unwrap_or_else(|error| {
            problems.push(error.to_string());
            tracer::import::TagMap::default()
        }),
        None => tracer::import::TagMap::default(),
    };
    let options = tracer::import::ImportOptions {
        format: args.format,
        tags,
    };
    let prepared: Vec<_> = args
        .inputs
        .iter()
        .filter_map(|input| {
            tracer::import::check(input, &options)
                .map_err(|error| problems.push(error.to_string()))
                .ok()
        })
        .collect();
    if let Err(problem) = check_out(&args.out) {
        problems.push(problem);
    }
    if !problems.is_empty() {
        return Err(CliError::InvalidInput(problems.join("\n")));
    }
    let staging = Staging::beside(&args.out).map_err(CliError::Setup)?;
    let mut pipeline = Pipeline::writing(args.stitch.config(), staging.path())
        .map_err(|error| CliError::Setup(error.to_string()))?;
    for (input, prepared) in args.inputs.iter().zip(prepared) {
        let report = tracer::import::import_prepared(input, prepared, &options.tags, &mut pipeline)
            .map_err(|error| CliError::InvalidInput(error.to_string()))?;
        eprintln!("{}: {report}", input.display());
    }
    let output = pipeline
        .finish()
        .map_err(|error| CliError::Setup(error.to_string()))?;
    staging.commit(&args.out).map_err(CliError::Setup)?;
    print_summary(&output.summary, &args.out);
    Ok(Exit::Pass)
}

/// The output directory must be new (or an empty directory): an import never mixes with or
/// replaces an earlier trace.
fn check_out(out: &std::path::Path) -> Result<(), String> {
    match std::fs::read_dir(out).map(|mut entries| entries.next().is_none()) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "--out {}: the directory is not empty; hint: give a new directory",
            out.display()
        )),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(format!("--out {}: {error}", out.display())),
    }
}

/// A trace directory written under a temporary name beside its target, renamed into place when
/// complete and removed otherwise (also on an early return or a panic).
struct Staging {
    path: PathBuf,
    committed: bool,
}

impl Staging {
    fn beside(out: &std::path::Path) -> Result<Staging, String> {
        let name = out
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "trace".to_owned());
        let parent = out
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(parent)
            .map_err(|error| format!("creating {}: {error}", parent.display()))?;
        let path = parent.join(format!(".{name}.importing-{}", std::process::id()));
        Ok(Staging {
            path,
            committed: false,
        })
    }

    fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn commit(mut self, out: &std::path::Path) -> Result<(), String> {
        // `check_out` allowed an empty directory: it gives way to the finished one.
        if out.is_dir() {
            std::fs::remove_dir(out)
                .map_err(|error| format!("replacing {}: {error}", out.display()))?;
        }
        std::fs::rename(&self.path, out).map_err(|error| {
            format!(
                "renaming {} to {}: {error}",
                self.path.display(),
                out.display()
            )
        })?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Puts `password` (from BUTTERFLY_AMQP_PASSWORD) into a URL that has a user but no password.
fn with_password(url: &str, password: Option<String>) -> String {
    let Some(password) = password else {
        return url.to_owned();
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].split_once('@') {
        Some((user, _)) if !user.contains(':') => {
            let encoded: String = password
                .bytes()
                .map(|byte| {
                    if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                        (byte as char).to_string()
                    } else {
                        format!("%{byte:02X}")
                    }
                })
                .collect();
            format!("{scheme}://{user}:{encoded}@{}", &rest[user.len() + 1..])
        }
        _ => url.to_owned(),
    }
}

fn run_capture(args: CaptureArgs) -> Result<Exit, CliError> {
    // Every problem with the flags at once, before anything is bound, connected or written.
    let mut problems = Vec::new();
    if args.out.is_none() && args.serve_records.is_none() {
        problems.push("--out DIR is required (or --serve-records ADDR)".to_owned());
    }
    if args.serve_records.is_some() && args.rest_proxy.is_empty() {
        problems.push("--serve-records needs at least one --rest-proxy".to_owned());
    }
    if args.amqp.is_none() && args.rest_proxy.is_empty() {
        problems.push(
            "nothing to trace: give --amqp URL and/or --rest-proxy SERVICE=LISTEN=UPSTREAM"
                .to_owned(),
        );
    }
    if args.amqp.is_none() && !args.tap.is_empty() {
        problems.push("--tap needs --amqp URL".to_owned());
    }
    let specs: Vec<ProxySpec> = args
        .rest_proxy
        .iter()
        .filter_map(|text| {
            text.parse()
                .map_err(|error| problems.push(format!("--rest-proxy: {error}")))
                .ok()
        })
        .collect();
    if let Some(url) = &args.amqp
        && let Err(error) = check_amqp_url(url)
    {
        problems.push(format!("--amqp: {error}"));
    }
    if !problems.is_empty() {
        return Err(CliError::InvalidInput(problems.join("\n")));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::Setup(format!("starting the async runtime: {error}")))?;
    runtime.block_on(capture(args, specs))
}

/// Checks that `url` is an AMQP URL the capture can connect with: scheme `amqp` or `amqps` and a
/// decodable vhost. The error shows the URL without its password.
fn check_amqp_url(url: &str) -> Result<(), String> {
    tracer::amqp::vhost_of(url).map_err(|error| error.to_string())?;
    url.parse::<lapin::uri::AMQPUri>().map_err(|error| {
        format!(
            "{:?} is not an AMQP URL (amqp://USER@HOST:PORT/VHOST or amqps://…): {}",
            redact_url(url),
            error.replace(url, &redact_url(url))
        )
    })?;
    Ok(())
}

/// Serves the record stream on `addr`; returns where records for it go, its task and its
/// counters.
async fn serve_records(
    addr: std::net::SocketAddr,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> Result<
    (
        mpsc::UnboundedSender<ProxyRecord>,
        tokio::task::JoinHandle<tracer::Result<()>>,
        Arc<RecordStats>,
    ),
    CliError,
> {
    let server = RecordServer::bind(addr)
        .await
        .map_err(|error| CliError::Setup(error.to_string()))?;
    let shown = server
        .local_addr()
        .map_err(|error| CliError::Setup(error.to_string()))?;
    let stats = server.stats();
    let (sender, records) = mpsc::unbounded_channel();
    eprintln!("REST record stream on {shown}");
    Ok((sender, tokio::spawn(server.serve(records, stopped)), stats))
}

async fn capture(args: CaptureArgs, specs: Vec<ProxySpec>) -> Result<Exit, CliError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut receiver: watch::Receiver<bool>| async move {
        let _ = receiver.wait_for(|stop| *stop).await;
    };
    let mut stream = match args.serve_records {
        Some(addr) => Some(serve_records(addr, stopped(stop_rx.clone())).await?),
        None => None,
    };
    let mut logged_stats = String::new();
    let (rest_tx, mut rest_rx) = mpsc::unbounded_channel();
    let mut proxies = Vec::new();
    for spec in specs {
        let shown = format!("{} {} → {}", spec.service, spec.listen, spec.upstream);
        let proxy = BoundProxy::bind(spec, rest_tx.clone())
            .await
            .map_err(|error| CliError::Setup(error.to_string()))?;
        eprintln!("REST proxy {shown}");
        proxies.push(tokio::spawn(proxy.serve(stopped(stop_rx.clone()))));
    }
    drop(rest_tx);
    let (amqp_tx, mut amqp_rx) = mpsc::channel(65_536);
    let mut amqp_task = None;
    if let Some(url) = &args.amqp {
        let mode = if args.tap.is_empty() {
            let switch: Option<Arc<dyn TraceSwitch>> = match args.firehose_switch.as_str() {
                "rabbitmqctl" => Some(Arc::new(RabbitmqctlSwitch::default())),
                _ => None,
            };
            CaptureMode::Firehose { switch }
        } else {
            CaptureMode::Tap {
                exchanges: args.tap.clone(),
            }
        };
        let capture = AmqpCapture {
            url: with_password(url, std::env::var("BUTTERFLY_AMQP_PASSWORD").ok()),
            mode,
            connection_name: tracer::amqp::CONNECTION_NAME.to_owned(),
            link: None,
        };
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(capture.run(amqp_tx, Some(ready_tx), stopped(stop_rx.clone())));
        if ready_rx.await.is_err() {
            let error = match task.await {
                Ok(Err(error)) => error.to_string(),
                _ => "the AMQP capture stopped before it started".to_owned(),
            };
            let _ = stop_tx.send(true);
            return Err(CliError::Setup(error));
        }
        eprintln!("AMQP capture from {}", redact_url(url));
        amqp_task = Some(task);
    } else {
        drop(amqp_tx);
    }
    // The trace directory is created only once every source is up, so a broker that cannot be
    // reached or a port that is taken leaves nothing behind; what arrived meanwhile waits in the
    // channels.
    let mut pipeline = match &args.out {
        Some(out) => match Pipeline::writing(args.stitch.config(), out) {
            Ok(pipeline) => Some(pipeline),
            Err(error) => {
                let _ = stop_tx.send(true);
                return Err(CliError::Setup(error.to_string()));
            }
        },
        None => None,
    };

    let deadline = async {
        match args.duration {
            Some(duration) => tokio::time::sleep(duration).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut terminated = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|error| CliError::Setup(format!("watching for SIGTERM: {error}")))?;
    let mut interrupted = false;
    let mut failure = None;
    let mut amqp_open = amqp_task.is_some();
    loop {
        tokio::select! {
            () = &mut deadline => break,
            _ = tokio::signal::ctrl_c() => {
                interrupted = args.duration.is_some();
                break;
            }
            // systemd stops the testbed's proxy unit with SIGTERM: finish like on Ctrl-C.
            _ = terminated.recv() => {
                interrupted = args.duration.is_some();
                break;
            }
            record = amqp_rx.recv(), if amqp_open => match record {
                Some(record) => {
                    if let Some(pipeline) = &mut pipeline && let Err(error) = pipeline.push_amqp(&record) {
                        failure = Some(error.to_string());
                        break;
                    }
                }
                None => amqp_open = false,
            },
            Some(record) = rest_rx.recv() => {
                if let Some((sender, _, _)) = &stream {
                    let _ = sender.send(record.clone());
                }
                // Arrivals only feed live subscribers; the trace keeps answered exchanges.
                if let (Some(pipeline), ProxyRecord::Answered(record)) = (&mut pipeline, &record)
                    && let Err(error) = pipeline.push_rest(record) {
                    failure = Some(error.to_string());
                    break;
                }
            }
            _ = ticker.tick() => {
                if let Some(pipeline) = &mut pipeline && let Err(error) = pipeline.tick(jiff::Timestamp::now().as_microsecond()) {
                    failure = Some(error.to_string());
                    break;
                }
                if let Some((_, _, stats)) = &stream {
                    log_stream_stats(stats, &mut logged_stats);
                }
            }
        }
    }
    let _ = stop_tx.send(true);
    // Take what the capture still had in flight, so nothing received is dropped: the channel
    // closes when the capture task ends, which it does once its consumer is drained.
    if amqp_open {
        while let Some(record) = amqp_rx.recv().await {
            if let Some(pipeline) = &mut pipeline
                && let Err(error) = pipeline.push_amqp(&record)
            {
                failure = failure.or(Some(error.to_string()));
            }
        }
    }
    if let Some(task) = amqp_task {
        match task.await {
            Ok(Ok(stats)) => {
                if let Some(pipeline) = &mut pipeline {
                    pipeline.add_capture(&stats);
                }
            }
            Ok(Err(error)) => failure = failure.or(Some(error.to_string())),
            Err(error) => failure = failure.or(Some(error.to_string())),
        }
    }
    for proxy in proxies {
        if let Ok(Err(error)) = proxy.await {
            failure = failure.or(Some(error.to_string()));
        }
    }
    if let Some((sender, task, stats)) = stream.take() {
        drop(sender);
        if let Ok(Err(error)) = task.await {
            failure = failure.or(Some(error.to_string()));
        }
        eprintln!("REST record stream: {}", stats.summary());
    }
    if let (Some(pipeline), Some(out)) = (pipeline, &args.out) {
        let mut pipeline = pipeline;
        while let Ok(record) = rest_rx.try_recv() {
            if let ProxyRecord::Answered(record) = record {
                let _ = pipeline.push_rest(&record);
            }
        }
        let output = pipeline
            .finish()
            .map_err(|error| CliError::Setup(error.to_string()))?;
        print_summary(&output.summary, out);
    }
    if let Some(failure) = failure {
        return Err(CliError::Setup(failure));
    }
    if interrupted {
        return Err(CliError::Interrupted(
            "trace stopped before --duration ended; files are complete".to_owned(),
        ));
    }
    Ok(Exit::Pass)
}

/// Logs the record stream's counters when they changed since the last line (a long-running
/// proxy's journal shows its activity without a line per second).
fn log_stream_stats(stats: &RecordStats, last: &mut String) {
    let summary = stats.summary();
    if summary != *last {
        eprintln!("REST record stream: {summary}");
        *last = summary;
    }
}

fn print_summary(summary: &TraceSummary, out: &std::path::Path) {
    println!(
        "trace {}: {} transactions ({} background, {} evicted); AMQP {} received, {} decoded, {} opaque, {} deliveries; {} REST requests; {} imported; {} unattributed",
        out.display(),
        summary.transactions,
        summary.stitch.background,
        summary.stitch.evicted,
        summary.amqp.received,
        summary.amqp.decoded,
        summary.amqp.opaque,
        summary.amqp.delivered,
        summary.rest_requests,
        summary.imported,
        summary.stitch.unattributed,
    );
    if let Some(capture) = summary.capture.filter(|c| c.reconnects > 0) {
        println!(
            "the AMQP capture lost the broker and reconnected {} time(s); {:.1} s of traffic is missing",
            capture.reconnects,
            capture.gap_us as f64 / 1e6
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_fills_a_url_without_one() {
        let password = || Some("p@ss/word".to_owned());
        assert_eq!(
            with_password("amqp://openstack@10.0.0.1:5672/%2f", password()),
            "amqp://openstack:p%40ss%2Fword@10.0.0.1:5672/%2f"
        );
        assert_eq!(
            with_password("amqp://u:given@h/v", password()),
            "amqp://u:given@h/v"
        );
        assert_eq!(with_password("amqp://h/v", password()), "amqp://h/v");
        assert_eq!(with_password("amqp://u@h/v", None), "amqp://u@h/v");
    }

    fn stitch_defaults() -> StitchArgs {
        StitchArgs {
            idle_timeout: Duration::from_secs(30),
            max_open: 10_000,
        }
    }

    #[test]
    fn import_rebuilds_a_recorded_capture_into_a_trace_directory() {
        let out = tempfile::tempdir().unwrap();
        let capture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tracer/tests/fixtures/server-create-delete.amqp.jsonl");
        let args = Args {
            command: Some(TraceCommand::Import(ImportArgs {
                inputs: vec![capture],
                out: out.path().to_owned(),
                format: None,
                tag_map: None,
                stitch: stitch_defaults(),
            })),
            capture: CaptureArgs {
                amqp: None,
                firehose_switch: "rabbitmqctl".to_owned(),
                tap: Vec::new(),
                rest_proxy: Vec::new(),
                serve_records: None,
                out: None,
                duration: None,
                stitch: stitch_defaults(),
            },
        };
        assert_eq!(run(args).unwrap(), Exit::Pass);
        let transactions =
            tracer::import::read_transactions(&out.path().join("transactions.json")).unwrap();
        assert!(
            transactions
                .iter()
                .any(|t| t.command.as_deref() == Some("server create"))
        );
        assert!(out.path().join("trace.json").is_file());
        assert!(
            std::fs::read_dir(out.path().join("graphs"))
                .unwrap()
                .count()
                >= 2
        );
    }

    #[test]
    fn capture_without_sources_or_with_bad_proxies_is_invalid_input() {
        let capture = |amqp: Option<&str>, rest_proxy: Vec<String>| CaptureArgs {
            amqp: amqp.map(str::to_owned),
            firehose_switch: "none".to_owned(),
            tap: Vec::new(),
            rest_proxy,
            serve_records: None,
            out: Some(PathBuf::from("/nonexistent/never-written")),
            duration: None,
            stitch: stitch_defaults(),
        };
        let error = run_capture(capture(None, Vec::new())).unwrap_err();
        assert!(
            matches!(&error, CliError::InvalidInput(message) if message.contains("nothing to trace"))
        );
        let error =
            run_capture(capture(Some("no-scheme"), vec!["nova-api=x=y".to_owned()])).unwrap_err();
        let CliError::InvalidInput(message) = error else {
            panic!("{error}")
        };
        assert!(
            message.contains("--rest-proxy") && message.contains("--amqp"),
            "{message}"
        );
    }

    #[test]
    fn the_record_stream_needs_proxies_and_replaces_the_output_directory() {
        let capture = |rest_proxy: Vec<String>, out: Option<PathBuf>| CaptureArgs {
            amqp: None,
            firehose_switch: "none".to_owned(),
            tap: Vec::new(),
            rest_proxy,
            serve_records: Some("127.0.0.1:0".parse().unwrap()),
            out,
            duration: Some(Duration::from_millis(200)),
            stitch: stitch_defaults(),
        };
        let error = run_capture(capture(Vec::new(), None)).unwrap_err();
        assert!(
            matches!(&error, CliError::InvalidInput(message) if message.contains("--serve-records needs")),
            "{error}"
        );
        let mut without_both = capture(Vec::new(), None);
        without_both.serve_records = None;
        let error = run_capture(without_both).unwrap_err();
        assert!(
            matches!(&error, CliError::InvalidInput(message) if message.contains("--out DIR is required")),
            "{error}"
        );
        // Serving without an output directory runs and writes nothing.
        let proxy = vec!["nova-api=127.0.0.1:0=http://127.0.0.1:9".to_owned()];
        assert_eq!(run_capture(capture(proxy, None)).unwrap(), Exit::Pass);
    }
}
