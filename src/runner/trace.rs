//! The tracer during a run: AMQP captures and subscriptions to the recording REST proxy's record
//! streams feeding one pipeline that writes the run's trace directory, and a live feed of observed
//! operations for execution-point triggers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use scenarios::model::{AmqpUrl, Campaign, ExecutionPoint, Host};
use tracer::amqp::{AmqpCapture, CaptureMode, CaptureStats, ClusterSwitch, TraceSwitch};
use tracer::event::{Event, EventKind, Transaction};
use tracer::merge::{MERGE_WINDOW, Merge};
use tracer::oslo::{AmqpRecord, Decoded, Decoder};
use tracer::pipeline::{Pipeline, Update};
use tracer::records::RecordSubscription;
use tracer::rest::{ProxyRecord, RestRecord};
use tracer::stitch::StitchConfig;
use userinput::file::FileKind;

use super::Stop;

/// An operation the tracer saw, for triggers.
#[derive(Debug, Clone)]
pub struct Observed {
    /// `topic.method` for RPC, `METHOD /path/template` for REST.
    pub operation: String,
    /// The acting host, when known.
    pub host: Option<String>,
    /// Whether it was an RPC message (as opposed to a REST request).
    pub rpc: bool,
}

/// A running capture: how to stop it, and its task.
pub(crate) type RunningCapture = (
    oneshot::Sender<()>,
    JoinHandle<tracer::Result<CaptureStats>>,
);

/// A running subscription to a REST record stream: how to stop it, and its task.
type RunningStream = (oneshot::Sender<()>, JoinHandle<()>);

/// The running tracer of a campaign run.
pub struct LiveTrace {
    captures: Vec<RunningCapture>,
    rest_streams: Vec<RunningStream>,
    processor: Option<JoinHandle<Result<(), String>>>,
    observed: broadcast::Sender<Observed>,
    dir: PathBuf,
    /// Hands the captures' counts to the processor for the trace summary.
    capture_stats: Option<oneshot::Sender<CaptureStats>>,
    /// The pipeline's updates for the live detectors, until they are taken.
    updates: Option<mpsc::UnboundedReceiver<Update>>,
    /// The broker link for the live detectors, until it is taken.
    broker_link: Option<watch::Receiver<Option<i64>>>,
    /// When a REST record stream last reconnected, for the live detectors, until it is taken.
    rest_resumed: Option<watch::Receiver<Option<i64>>>,
}

/// Switches the firehose on the broker's host over SSH (`rabbitmqctl trace_on`), verifying the
/// host key like every other connection of the runner.
struct SshRabbitmqctl {
    host: Host,
    /// What runs `rabbitmqctl` where the broker runs on that host: nothing for a unit on the
    /// host, `ENGINE exec -i NAME` for a container (kolla-ansible), `lxc-attach -n C --` for an
    /// LXC container (OpenStack-Ansible).
    exec: Vec<String>,
}

impl SshRabbitmqctl {
    /// The switch for the broker of `runtime` on `host`.
    fn new(host: &Host, runtime: &scenarios::model::Runtime) -> Result<Self, String> {
        let exec = injector::runtime::exec_argv(runtime, host.name.as_str())
            .map_err(|reason| format!("the rabbitmq service on {}: {reason}", host.name))?
            .unwrap_or_default();
        Ok(SshRabbitmqctl {
            host: host.clone(),
            exec,
        })
    }

    /// The remote command line: every word is fixed, a checked vhost, or a container name the
    /// inventory validated, and all are quoted.
    fn line(&self, args: &[&str]) -> String {
        let mut argv: Vec<&str> = self.exec.iter().map(String::as_str).collect();
        argv.extend(["rabbitmqctl", "-q"]);
        argv.extend_from_slice(args);
        injector::shell::join(&argv)
    }
}

impl SshRabbitmqctl {
    fn run(&self, args: &[&str]) -> tracer::Result<String> {
        let mut command = Command::new("ssh");
        command.args([
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "ConnectTimeout=10",
        ]);
        command.args(["-p", &self.host.ssh.port.to_string()]);
        if let Some(identity) = &self.host.ssh.identity {
            command.arg("-i").arg(identity);
        }
        if let Some(known_hosts) = &self.host.ssh.known_hosts {
            command
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", known_hosts.display()));
        }
        command.arg(format!("{}@{}", self.host.ssh.user, self.host.address));
        command.arg(self.line(args));
        let output = command.output().map_err(|e| {
            tracer::Error::Switch(format!("running ssh to {}: {e}", self.host.name))
        })?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(tracer::Error::Switch(format!(
                "rabbitmqctl {} on {}: {}",
                args.join(" "),
                self.host.name,
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }
}

fn check_vhost(vhost: &str) -> tracer::Result<&str> {
    if !vhost.is_empty()
        && vhost
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '-' | '.'))
    {
        Ok(vhost)
    } else {
        Err(tracer::Error::Switch(format!(
            "refusing to pass vhost {vhost:?} to a remote command"
        )))
    }
}

impl TraceSwitch for SshRabbitmqctl {
    fn enable(&self, vhost: &str) -> tracer::Result<bool> {
        let vhost = check_vhost(vhost)?;
        let listing = self.run(&["list_vhosts", "name", "tracing"])?;
        let already = listing
            .lines()
            .any(|line| line.split_whitespace().collect::<Vec<_>>() == [vhost, "true"]);
        if already {
            return Ok(false);
        }
        self.run(&["trace_on", "-p", vhost])?;
        Ok(true)
    }

    fn disable(&self, vhost: &str) -> tracer::Result<()> {
        let vhost = check_vhost(vhost)?;
        self.run(&["trace_off", "-p", vhost]).map(|_| ())
    }
}

/// Reads an AMQP URL file through the bounded reader. The file holds a password, so a message
/// about it names the file and the problem, never its content.
fn read_url_file(path: &Path) -> Result<String, String> {
    let text = userinput::file::read_to_string(path, FileKind::SECRET).map_err(|e| match e {
        // A UTF-8 error names only the line, but say so without a position inside the secret.
        userinput::file::Error::NotUtf8 { .. } => {
            format!("the AMQP URL file {} is not UTF-8 text", path.display())
        }
        other => format!("the AMQP URL file: {other}"),
    })?;
    let url = text.trim();
    if url.is_empty() {
        return Err(format!("the AMQP URL file {} is empty", path.display()));
    }
    if url.lines().count() > 1 {
        return Err(format!(
            "the AMQP URL file {} holds more than one line; it must hold one URL",
            path.display()
        ));
    }
    if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
        return Err(format!(
            "the AMQP URL file {} does not hold an amqp:// or amqps:// URL",
            path.display()
        ));
    }
    Ok(url.to_owned())
}

/// Reads one secret from a deployer's secrets file (kolla `passwords.yml`, OSA
/// `user_secrets.yml`: a YAML mapping of names to values) through the bounded reader. Messages
/// name the file and the key, never a value: the parser's own message could quote the file.
fn read_secret(path: &Path, key: &str) -> Result<String, String> {
    let text = userinput::file::read_to_string(path, FileKind::DEPLOYER_SECRETS)
        .map_err(|e| format!("the AMQP password file: {}", e))?;
    let secrets: std::collections::BTreeMap<String, serde_json::Value> =
        serde_saphyr::from_str(&text).map_err(|_| {
            format!(
                "the AMQP password file {} is not a YAML mapping of names to secrets",
                path.display()
            )
        })?;
    match secrets.get(key) {
        Some(serde_json::Value::String(secret)) if !secret.is_empty() => Ok(secret.clone()),
        Some(serde_json::Value::Number(secret)) => Ok(secret.to_string()),
        Some(_) => Err(format!(
            "`{key}` in the AMQP password file {} is empty or not a string",
            path.display()
        )),
        None => Err(format!(
            "the AMQP password file {} has no `{key}`",
            path.display()
        )),
    }
}

/// An AMQP URL with `password` put into its user part (percent-encoded).
fn with_password(url: &str, password: &str) -> Result<String, String> {
    let (scheme, rest) = url.split_once("://").ok_or("the AMQP URL has no scheme")?;
    let (user, host) = rest.split_once('@').ok_or("the AMQP URL names no user")?;
    let encoded: String = password
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    Ok(format!("{scheme}://{user}:{encoded}@{host}"))
}

/// The complete AMQP URL of a source: the password from `password_env` or the deployer's secrets
/// file put into its user part, or the URL file as it is.
fn resolve_url(url: &AmqpUrl) -> Result<String, String> {
    match url {
        AmqpUrl::File { path } => read_url_file(path),
        AmqpUrl::WithPasswordEnv { url, password_env } => {
            let Some(variable) = password_env else {
                return Ok(url.clone());
            };
            let password = std::env::var(variable)
                .map_err(|_| format!("the AMQP password variable {variable} is not set"))?;
            with_password(url, &password)
        }
        AmqpUrl::WithPasswordFile { url, file, key } => {
            with_password(url, &read_secret(file, key)?)
        }
    }
}

impl LiveTrace {
    /// Starts one capture per AMQP source of the campaign, a subscription to every REST record
    /// stream when `tracing.rest_proxy` is on, and the pipeline writing `dir`. With `follow`, the
    /// pipeline's updates are kept for the live detectors ([`LiveTrace::updates`]).
    pub async fn start(campaign: &Campaign, dir: &Path, follow: bool) -> Result<LiveTrace, String> {
        let (observed, _) = broadcast::channel(1024);
        let (sink, mut records) = mpsc::channel::<AmqpRecord>(16_384);
        let mut captures = Vec::new();
        // The first capture tells the live detectors when it loses the broker.
        let (link, broker_link) = watch::channel(None);
        let mut link = Some(link);
        // The broker's hosts, to switch the firehose on where it runs: on every node of a
        // cluster, since tracing is per node.
        let mut switches: Vec<Arc<dyn TraceSwitch>> = Vec::new();
        if let Some(service) = campaign.testbed.service("rabbitmq") {
            for host in campaign.testbed.hosts_of(service) {
                switches.push(Arc::new(SshRabbitmqctl::new(host, &service.runtime)?));
            }
        }
        let broker: Option<Arc<dyn TraceSwitch>> = match switches.len() {
            0 => None,
            1 => switches.pop(),
            _ => Some(Arc::new(ClusterSwitch::new(switches))),
        };
        // Subscribed first: a stream that cannot be reached fails the start before the firehose is
        // switched on, and dropping a subscription's stop sender ends its task.
        let (rest_sink, mut rest_records) = mpsc::channel::<ProxyRecord>(16_384);
        let (resumed, rest_resumed) = watch::channel(None);
        let rest_streams = if campaign.tracing.rest_proxy {
            subscribe_rest_streams(campaign, rest_sink, resumed).await?
        } else {
            Vec::new()
        };
        for source in &campaign.tracing.amqp {
            let url = resolve_url(&source.url)?;
            let mode = if source.firehose {
                CaptureMode::Firehose {
                    switch: broker.clone(),
                }
            } else {
                CaptureMode::Tap {
                    exchanges: source.tap.clone(),
                }
            };
            let capture = AmqpCapture {
                url,
                mode,
                connection_name: tracer::amqp::CONNECTION_NAME.to_owned(),
                link: link.take(),
            };
            // Start the workload only once the capture consumes, so the baseline is complete.
            captures.push(start_capture(capture, sink.clone()).await?);
        }
        drop(sink);
        let mut pipeline =
            Pipeline::writing(StitchConfig::default(), dir).map_err(|e| e.to_string())?;
        let feed = observed.clone();
        let (updates_sink, updates) = mpsc::unbounded_channel();
        let updates_sink = follow.then(|| {
            pipeline.follow();
            updates_sink
        });
        let (capture_stats, stats) = oneshot::channel::<CaptureStats>();
        // Several captures (one per vhost) are merged into one stream in time order.
        let merging = campaign.tracing.amqp.len() > 1;
        let mut merge = Merge::new(if merging {
            MERGE_WINDOW
        } else {
            std::time::Duration::ZERO
        });
        let processor = tokio::spawn(async move {
            let mut decoder = Decoder::new();
            let mut ticker = tokio::time::interval(std::time::Duration::from_secs(1));
            let mut release = tokio::time::interval(MERGE_WINDOW / 4);
            let (mut amqp_open, mut rest_open) = (true, true);
            while amqp_open || rest_open {
                let mut ready = Vec::new();
                tokio::select! {
                    record = records.recv(), if amqp_open => {
                        match record {
                            Some(record) => merge.push(record),
                            None => amqp_open = false,
                        }
                        let now = if amqp_open { jiff::Timestamp::now().as_microsecond() } else { i64::MAX };
                        ready = merge.ready(now);
                    }
                    _ = release.tick(), if merging && merge.held() > 0 => {
                        ready = merge.ready(jiff::Timestamp::now().as_microsecond());
                    }
                    record = rest_records.recv(), if rest_open => {
                        match record {
                            Some(ProxyRecord::Answered(record)) => push_rest(&mut pipeline, &feed, &record)?,
                            Some(ProxyRecord::Started(start)) => pipeline.rest_started(&start),
                            None => rest_open = false,
                        }
                    }
                    _ = ticker.tick() => {
                        pipeline.tick(jiff::Timestamp::now().as_microsecond()).map_err(|e| e.to_string())?;
                    }
                }
                for record in ready {
                    if let Decoded::Event(event) = decoder.decode(&record) {
                        announce(&feed, &event);
                    }
                    pipeline.push_amqp(&record).map_err(|e| e.to_string())?;
                }
                forward_updates(&mut pipeline, updates_sink.as_ref());
            }
            if merge.late() > 0 {
                tracing::warn!(
                    late = merge.late(),
                    "AMQP records arrived later than the merge window; the trace is not strictly in time order there"
                );
            }
            // The captures have ended (the records channel closed); their counts follow.
            if let Ok(stats) = stats.await {
                pipeline.add_capture(&stats);
            }
            finish_pipeline(pipeline, updates_sink.as_ref())
        });
        Ok(LiveTrace {
            captures,
            rest_streams,
            processor: Some(processor),
            observed,
            dir: dir.to_owned(),
            updates: follow.then_some(updates),
            broker_link: follow.then_some(broker_link),
            rest_resumed: follow.then_some(rest_resumed),
            capture_stats: Some(capture_stats),
        })
    }

    /// The pipeline's updates (every event with its transaction, every closed transaction), for
    /// the live detectors; `None` unless started with `follow`, or once taken.
    pub fn updates(&mut self) -> Option<mpsc::UnboundedReceiver<Update>> {
        self.updates.take()
    }

    /// The first AMQP capture's link to the broker (`Some(since_us)` while lost), for the live
    /// detectors; `None` unless started with `follow`, or once taken.
    pub fn broker_link(&mut self) -> Option<watch::Receiver<Option<i64>>> {
        self.broker_link.take()
    }

    /// When a REST record stream last reconnected (µs since the epoch), for the live detectors:
    /// answers recorded while it was away are lost. `None` unless started with `follow`, or once
    /// taken.
    pub fn rest_resumed(&mut self) -> Option<watch::Receiver<Option<i64>>> {
        self.rest_resumed.take()
    }

    /// Waits until an operation matching `point` (and `host`) is observed, the deadline passes or
    /// the run is stopped. Returns whether it was observed.
    pub async fn wait_for(
        &self,
        point: &ExecutionPoint,
        host: Option<&str>,
        deadline: tokio::time::Instant,
        cancel: &watch::Receiver<Option<Stop>>,
    ) -> bool {
        let mut feed = self.observed.subscribe();
        let mut cancel = cancel.clone();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => return false,
                _ = cancel.changed() => return false,
                received = feed.recv() => match received {
                    Ok(observed) if matches(point, host, &observed) => return true,
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        tokio::time::sleep_until(deadline).await;
                        return false;
                    }
                },
            }
        }
    }

    /// Stops the captures (switching the firehose off if it was switched on), flushes the
    /// pipeline and reads the transactions back.
    pub async fn stop(mut self) -> Result<Vec<Transaction>, String> {
        for (stop, handle) in self.rest_streams.drain(..) {
            let _ = stop.send(());
            if let Err(error) = handle.await {
                eprintln!("butterfly: a REST record stream task failed: {error}");
            }
        }
        let mut stats = CaptureStats::default();
        for (stop, handle) in self.captures.drain(..) {
            let _ = stop.send(());
            match handle.await {
                Ok(Ok(capture)) => {
                    if capture.reconnects > 0 {
                        eprintln!(
                            "butterfly: the AMQP capture lost the broker and reconnected {} time(s); {:.1} s of traffic is missing from the trace",
                            capture.reconnects,
                            capture.gap_us as f64 / 1e6
                        );
                    }
                    stats.add(&capture);
                }
                Ok(Err(error)) => {
                    eprintln!("butterfly: the AMQP capture ended with an error: {error}")
                }
                Err(error) => eprintln!("butterfly: the AMQP capture task failed: {error}"),
            }
        }
        if let Some(sender) = self.capture_stats.take() {
            let _ = sender.send(stats);
        }
        if let Some(processor) = self.processor.take() {
            processor.await.map_err(|e| e.to_string())??;
        }
        let file = self.dir.join("transactions.json");
        if !file.exists() {
            return Ok(Vec::new());
        }
        tracer::import::read_transactions(&file).map_err(|e| e.to_string())
    }
}

/// Starts `capture` feeding `sink` and waits until it consumes (its first connection must
/// succeed); returns how to stop it, and its task.
pub(crate) async fn start_capture(
    capture: AmqpCapture,
    sink: mpsc::Sender<AmqpRecord>,
) -> Result<RunningCapture, String> {
    let (stop, stopped) = oneshot::channel::<()>();
    let (ready, is_ready) = oneshot::channel();
    let handle = tokio::spawn(async move {
        capture
            .run(sink, Some(ready), async {
                let _ = stopped.await;
            })
            .await
    });
    if is_ready.await.is_err() {
        let error = match handle.await {
            Ok(Err(error)) => error.to_string(),
            Ok(Ok(_)) => "the capture ended before it started".into(),
            Err(error) => error.to_string(),
        };
        return Err(format!("starting the AMQP tracer: {error}"));
    }
    Ok((stop, handle))
}

/// Stitches one REST record and announces it to the execution-point feed.
fn push_rest(
    pipeline: &mut Pipeline,
    feed: &broadcast::Sender<Observed>,
    record: &RestRecord,
) -> Result<(), String> {
    announce(feed, &record.to_event());
    pipeline.push_rest(record).map_err(|e| e.to_string())
}

// Validation checks the port campaigns list against the scenarios crate's copy of the tracer's
// record stream port; the two must not drift apart.
const _: () = assert!(scenarios::model::REST_PROXY_STREAM_PORT == tracer::records::DEFAULT_PORT);

/// How long the first connection to a record stream may take before the run gives up.
pub(crate) const STREAM_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest pause between two reconnection attempts of a dropped record stream.
const STREAM_RECONNECT_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// The record streams of the campaign's `rest-proxy` service: one per host it runs on, at the
/// stream's port, which the service must list.
///
/// Validation already refuses a campaign whose testbed lacks the service or its port; these
/// checks remain for testbeds built otherwise.
pub fn rest_stream_addresses(testbed: &scenarios::model::Testbed) -> Result<Vec<String>, String> {
    let service = testbed
        .service(scenarios::model::REST_PROXY_SERVICE)
        .ok_or(
            "`tracing.rest_proxy` is on but the testbed lists no `rest-proxy` service \
         (`butterfly testbed up` writes one into its inventory)",
        )?;
    let port = tracer::records::DEFAULT_PORT;
    if !service.ports.contains(&port) {
        return Err(format!(
            "the `rest-proxy` service does not list its record stream port {port}"
        ));
    }
    let hosts = testbed.hosts_of(service);
    if hosts.is_empty() {
        return Err("the `rest-proxy` service runs on no host of the testbed".to_owned());
    }
    Ok(hosts
        .into_iter()
        .map(|host| {
            if host.address.contains(':') {
                format!("[{}]:{port}", host.address)
            } else {
                format!("{}:{port}", host.address)
            }
        })
        .collect())
}

/// Subscribes to every record stream of the campaign's testbed before the workload starts, so
/// that no REST call of the run is missed, and keeps each subscription alive.
async fn subscribe_rest_streams(
    campaign: &Campaign,
    sink: mpsc::Sender<ProxyRecord>,
    resumed: watch::Sender<Option<i64>>,
) -> Result<Vec<RunningStream>, String> {
    let mut streams = Vec::new();
    for addr in rest_stream_addresses(&campaign.testbed)? {
        let subscription =
            tokio::time::timeout(STREAM_CONNECT_TIMEOUT, RecordSubscription::connect(&addr))
                .await
                .map_err(|_| {
                    format!(
                        "the REST record stream {addr} did not answer within {} s",
                        STREAM_CONNECT_TIMEOUT.as_secs()
                    )
                })?
                .map_err(|error| format!("starting the REST tracer: {error}"))?;
        let (stop, stopped) = oneshot::channel();
        let handle = tokio::spawn(follow_stream(
            addr,
            subscription,
            sink.clone(),
            resumed.clone(),
            stopped,
        ));
        streams.push((stop, handle));
    }
    Ok(streams)
}

/// Forwards a stream's records to `sink` until `stop`, reconnecting when the stream drops (the
/// proxy restarted, or cut this subscriber off for falling behind). Records made while it was
/// disconnected are lost, and it says so, on stderr and to `resumed` (when it reconnected).
pub(crate) async fn follow_stream(
    addr: String,
    mut subscription: RecordSubscription,
    sink: mpsc::Sender<ProxyRecord>,
    resumed: watch::Sender<Option<i64>>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let ended = loop {
            tokio::select! {
                _ = &mut stop => return,
                next = subscription.next() => match next {
                    Ok(Some(record)) => {
                        if sink.send(record).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break "the stream ended".to_owned(),
                    Err(error) => break error.to_string(),
                },
            }
        };
        eprintln!(
            "butterfly: REST record stream {addr}: {ended}; reconnecting (calls until then are not traced)"
        );
        let mut pause = std::time::Duration::from_millis(250);
        subscription = loop {
            tokio::select! {
                _ = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
            match tokio::time::timeout(STREAM_CONNECT_TIMEOUT, RecordSubscription::connect(&addr))
                .await
            {
                Ok(Ok(subscription)) => break subscription,
                Ok(Err(_)) | Err(_) => pause = (pause * 2).min(STREAM_RECONNECT_MAX),
            }
        };
        eprintln!("butterfly: REST record stream {addr}: reconnected");
        resumed.send_replace(Some(jiff::Timestamp::now().as_microsecond()));
    }
}

/// Hands the pipeline's updates to the live detectors. The channel is unbounded so that the
/// trace never waits for the detectors: per event they do a copy and, for watched transactions,
/// one monitor re-alignment, far less than decoding and stitching it cost.
fn forward_updates(pipeline: &mut Pipeline, sink: Option<&mpsc::UnboundedSender<Update>>) {
    let Some(sink) = sink else { return };
    for update in pipeline.take_updates() {
        // The detectors stopping early is their own error to report; the trace goes on.
        let _ = sink.send(update);
    }
}

/// Closes every open transaction, forwards the last updates and writes the trace's summary.
fn finish_pipeline(
    mut pipeline: Pipeline,
    sink: Option<&mpsc::UnboundedSender<Update>>,
) -> Result<(), String> {
    pipeline.flush().map_err(|e| e.to_string())?;
    forward_updates(&mut pipeline, sink);
    pipeline.finish().map(|_| ()).map_err(|e| e.to_string())
}

fn announce(feed: &broadcast::Sender<Observed>, event: &Event) {
    let rpc = matches!(
        event.kind,
        EventKind::RpcCall | EventKind::RpcCast | EventKind::RpcFanout
    );
    if rpc || event.kind == EventKind::RestRequest {
        let _ = feed.send(Observed {
            operation: event.operation.clone(),
            host: event.host.clone(),
            rpc,
        });
    }
}

/// Whether an observed operation is the execution point: RPC `topic.method` or `method` alone,
/// REST `METHOD /path` exactly (paths are templated by the tracer).
pub fn matches(point: &ExecutionPoint, host: Option<&str>, observed: &Observed) -> bool {
    let host_ok = host.is_none_or(|h| observed.host.as_deref() == Some(h));
    let operation_ok = match point {
        ExecutionPoint::Rpc(method) => {
            observed.rpc
                && (observed.operation == *method
                    || observed.operation.rsplit('.').next() == Some(method.as_str()))
        }
        ExecutionPoint::Rest(call) => !observed.rpc && observed.operation == *call,
    };
    host_ok && operation_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_url_file_is_refused_without_showing_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "S3cretPw";
        for (name, content) in [
            (
                "no-scheme",
                format!("butterfly-tracer:{secret}@10.77.0.2:5672/\n"),
            ),
            (
                "two-lines",
                format!("amqp://butterfly-tracer:{secret}@h/\namqp://other:{secret}@h/\n"),
            ),
            (
                "not-utf8",
                format!("amqp://butterfly-tracer:{secret}@h/\u{0}\n"),
            ),
        ] {
            let path = dir.path().join(name);
            let mut bytes = content.into_bytes();
            if name == "not-utf8" {
                bytes.push(0xff);
            }
            std::fs::write(&path, bytes).unwrap();
            let error = resolve_url(&AmqpUrl::File { path: path.clone() }).unwrap_err();
            assert!(error.contains(&path.display().to_string()), "{error}");
            assert!(!error.contains(secret), "{error}");
            assert!(!error.contains("butterfly-tracer"), "{error}");
        }
    }

    #[test]
    fn a_url_file_holding_one_url_gives_that_url() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("url");
        std::fs::write(&path, "  amqp://u:p@h:5672/  \n").unwrap();
        assert_eq!(
            resolve_url(&AmqpUrl::File { path }).unwrap(),
            "amqp://u:p@h:5672/"
        );
    }

    fn seen(operation: &str, host: Option<&str>, rpc: bool) -> Observed {
        Observed {
            operation: operation.into(),
            host: host.map(str::to_owned),
            rpc,
        }
    }

    #[test]
    fn rpc_points_match_with_or_without_topic() {
        let full = ExecutionPoint::Rpc("scheduler.select_destinations".into());
        let bare = ExecutionPoint::Rpc("select_destinations".into());
        let event = seen("scheduler.select_destinations", Some("controller"), true);
        assert!(matches(&full, None, &event));
        assert!(matches(&bare, None, &event));
        assert!(matches(&full, Some("controller"), &event));
        assert!(!matches(&full, Some("compute1"), &event));
        assert!(!matches(
            &full,
            None,
            &seen("scheduler.select_destinations", None, false)
        ));
    }

    #[test]
    fn rest_points_match_exactly() {
        let point = ExecutionPoint::Rest("POST /v2.1/servers".into());
        assert!(matches(
            &point,
            None,
            &seen("POST /v2.1/servers", None, false)
        ));
        assert!(!matches(
            &point,
            None,
            &seen("GET /v2.1/servers", None, false)
        ));
    }

    fn example_testbed() -> scenarios::model::Testbed {
        let campaign = scenarios::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/examples/mixed.yaml"),
        )
        .unwrap();
        assert!(campaign.tracing.rest_proxy);
        campaign.testbed
    }

    #[test]
    fn the_record_stream_is_found_on_the_rest_proxy_hosts() {
        let mut testbed = example_testbed();
        assert_eq!(
            rest_stream_addresses(&testbed).unwrap(),
            ["10.77.0.2:19900"]
        );
        // The testbed serves its stream where the runner looks for it.
        assert_eq!(testbed::assets::RECORDS_PORT, tracer::records::DEFAULT_PORT);
        testbed
            .services
            .retain(|service| service.name.as_str() != "rest-proxy");
        let error = rest_stream_addresses(&testbed).unwrap_err();
        assert!(error.contains("no `rest-proxy` service"), "{error}");
    }

    #[test]
    fn the_firehose_is_switched_inside_the_brokers_container_or_lxc_container() {
        use scenarios::model::{Engine, Runtime};
        use scenarios::units::{ContainerName, Ident, UnitName};
        let testbed = example_testbed();
        let host = testbed.hosts.first().unwrap().clone();
        let switch = |runtime: Runtime| SshRabbitmqctl::new(&host, &runtime);
        let on_host = switch(Runtime::Unit(UnitName::new("rabbitmq-server").unwrap())).unwrap();
        assert_eq!(
            on_host.line(&["trace_on", "-p", "/"]),
            "rabbitmqctl -q trace_on -p /"
        );
        let kolla = switch(Runtime::Container {
            engine: Engine::Podman,
            name: ContainerName::new("rabbitmq").unwrap(),
            unit: Some(UnitName::new("kolla-rabbitmq-container.service").unwrap()),
        })
        .unwrap();
        assert_eq!(
            kolla.line(&["trace_on", "-p", "/"]),
            "podman exec -i rabbitmq rabbitmqctl -q trace_on -p /"
        );
        let lxc = |on: &str| Runtime::Lxc {
            unit: UnitName::new("rabbitmq-server").unwrap(),
            containers: vec![(
                Ident::new(on).unwrap(),
                ContainerName::new("infra1_rabbit_mq_container-1a2b3c4d").unwrap(),
            )],
        };
        let osa = switch(lxc(host.name.as_str())).unwrap();
        let line = osa.line(&["trace_off", "-p", "/nova"]);
        assert!(
            line.starts_with("lxc-attach -n infra1_rabbit_mq_container-1a2b3c4d ")
                && line.ends_with(" -- rabbitmqctl -q trace_off -p /nova"),
            "{line}"
        );
        let error = switch(lxc("elsewhere")).err().unwrap();
        assert!(error.contains("no LXC container on host"), "{error}");
    }

    fn record(n: i64) -> ProxyRecord {
        ProxyRecord::Answered(RestRecord {
            ts_us: n,
            service: "nova-api".to_owned(),
            upstream: "http://controller:8774".to_owned(),
            upstream_host: Some("controller".to_owned()),
            method: "POST".to_owned(),
            path: "/v2.1/servers".to_owned(),
            status: 202,
            duration_us: 10,
            global_request_id: Some(format!("req-{n:032x}")),
            request_id: None,
            user_agent: None,
        })
    }

    /// A record stream on `addr`, fed by the returned sender, stopped by the returned sender.
    async fn stream_server(
        addr: std::net::SocketAddr,
    ) -> (
        std::net::SocketAddr,
        mpsc::UnboundedSender<ProxyRecord>,
        oneshot::Sender<()>,
        JoinHandle<tracer::Result<()>>,
    ) {
        let server = tracer::records::RecordServer::bind(addr).await.unwrap();
        let addr = server.local_addr().unwrap();
        let (sender, records) = mpsc::unbounded_channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(records, async {
            let _ = stopped.await;
        }));
        (addr, sender, stop, task)
    }

    #[tokio::test]
    async fn a_dropped_record_stream_is_followed_again_once_it_is_back() {
        let (addr, sender, stop_server, server) =
            stream_server("127.0.0.1:0".parse().unwrap()).await;
        let subscription = RecordSubscription::connect(&addr.to_string())
            .await
            .unwrap();
        let (sink, mut received) = mpsc::channel(16);
        let (stop, stopped) = oneshot::channel();
        let (resumed, mut reconnected) = watch::channel(None);
        let follower = tokio::spawn(follow_stream(
            addr.to_string(),
            subscription,
            sink,
            resumed,
            stopped,
        ));
        sender.send(record(1)).unwrap();
        assert_eq!(received.recv().await, Some(record(1)));
        assert!(reconnected.borrow_and_update().is_none());

        // The proxy restarts on the same port: the follower reconnects by itself.
        let _ = stop_server.send(());
        server.await.unwrap().unwrap();
        let (_, sender, _stop_server, _server) = stream_server(addr).await;
        let mut n = 2;
        let again = loop {
            sender.send(record(n)).unwrap();
            if let Ok(Some(again)) =
                tokio::time::timeout(std::time::Duration::from_millis(100), received.recv()).await
            {
                break again;
            }
            n += 1;
            assert!(n < 200, "the follower did not reconnect within 20 s");
        };
        let ProxyRecord::Answered(again) = again else {
            panic!("only answers were sent");
        };
        assert_eq!(again.path, "/v2.1/servers");
        // The live detectors hear when it came back.
        assert!(reconnected.has_changed().unwrap());
        assert!(reconnected.borrow_and_update().is_some());
        let _ = stop.send(());
        follower.await.unwrap();
    }

    #[test]
    fn the_password_comes_from_the_deployers_secrets_file_and_is_never_shown() {
        let secrets = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testbed/tests/fixtures/kolla/passwords.yml");
        let text = std::fs::read_to_string(&secrets).unwrap();
        let password = text
            .lines()
            .find_map(|l| l.strip_prefix("rabbitmq_password: "))
            .unwrap()
            .trim()
            .to_owned();
        let url = resolve_url(&AmqpUrl::WithPasswordFile {
            url: "amqp://openstack@control01:5672/%2f".into(),
            file: secrets.clone(),
            key: "rabbitmq_password".into(),
        })
        .unwrap();
        assert_eq!(
            url,
            format!("amqp://openstack:{password}@control01:5672/%2f")
        );
        let error = resolve_url(&AmqpUrl::WithPasswordFile {
            url: "amqp://openstack@control01:5672/%2f".into(),
            file: secrets,
            key: "no_such_password".into(),
        })
        .unwrap_err();
        assert!(error.ends_with("has no `no_such_password`"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let broken = dir.path().join("passwords.yml");
        std::fs::write(&broken, "rabbitmq_password: [hunter2\n").unwrap();
        let error = resolve_url(&AmqpUrl::WithPasswordFile {
            url: "amqp://u@h/".into(),
            file: broken,
            key: "rabbitmq_password".into(),
        })
        .unwrap_err();
        assert!(error.contains("is not a YAML mapping"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn a_missing_password_variable_is_named() {
        // The variable is never set (setting it would need `unsafe` in edition 2024), so this
        // checks the refusal path: a missing password is an error that names the variable.
        let variable = "BUTTERFLY_TEST_AMQP_PASSWORD_RESOLVE";
        let error = resolve_url(&AmqpUrl::WithPasswordEnv {
            url: "amqp://tracer@10.77.0.2:5672/".into(),
            password_env: Some(variable.into()),
        })
        .unwrap_err();
        assert!(error.contains(variable), "{error}");
        assert_eq!(
            resolve_url(&AmqpUrl::WithPasswordEnv {
                url: "amqp://guest@127.0.0.1:5672/".into(),
                password_env: None
            })
            .unwrap(),
            "amqp://guest@127.0.0.1:5672/"
        );
    }
}
