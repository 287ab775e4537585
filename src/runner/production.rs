//! `butterfly watch`: the tracer and the detection engine run continuously on a cloud, injecting
//! nothing (see `docs/watch.md`).
//!
//! Sources feed one pipeline: AMQP captures (the firehose, or taps on named exchanges) that
//! reconnect as in `run`, subscriptions to recording REST proxies' record streams that reconnect
//! as in `run`, or a recorded `events.jsonl` replayed at N× or at full speed (`--from-trace`,
//! for soaks). The pipeline's updates go to [`fingerprint::watch::Watch`], which owns every
//! judgement; this module only wires the sources to it and its alarms to the outputs: JSON Lines,
//! an Alertmanager webhook, Prometheus metrics on `/metrics`, and the store, saved atomically
//! when learning.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fingerprint::alarm::Alarm;
use fingerprint::engine::{Engine, Roles};
use fingerprint::store::Store;
use fingerprint::watch::{Counters, Raised, Watch, WatchConfig};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::{mpsc, oneshot, watch as signal};
use tracer::amqp::{AmqpCapture, CaptureMode, CaptureStats};
use tracer::event::Event;
use tracer::oslo::AmqpRecord;
use tracer::pipeline::{Pipeline, Update};
use tracer::records::RecordSubscription;
use tracer::rest::ProxyRecord;
use tracer::stitch::StitchConfig;
use userinput::file::FileKind;

use super::detect::POLL;

/// How fast a recorded trace is replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// As fast as it can be read: the clock jumps from event to event.
    Max,
    /// N× the recorded pace.
    Times(f64),
}

/// Where the traffic comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The live cloud.
    Live {
        /// AMQP URLs, one capture each.
        amqp: Vec<String>,
        /// Exchanges to tap instead of reading the firehose (empty: the firehose, which the
        /// operator switched on: `rabbitmqctl trace_on -p VHOST`).
        tap: Vec<String>,
        /// Record stream addresses (`host:port`) of recording REST proxies.
        rest_records: Vec<String>,
    },
    /// A recorded `events.jsonl`.
    Trace {
        /// The file.
        path: PathBuf,
        /// The pace.
        speed: Speed,
    },
}

/// What `watch` is asked to do.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// The inventory's services and their functions.
    pub roles: Roles,
    /// The fingerprint store it judges against (and refines with `config.learn`).
    pub store: Store,
    /// Where the store is saved when learning.
    pub store_path: PathBuf,
    /// Where the traffic comes from.
    pub source: Source,
    /// JSON Lines alarms go to this file (appended), else to stdout.
    pub alarms: Option<PathBuf>,
    /// Alertmanager-compatible endpoint (`http://am:9093/api/v2/alerts`).
    pub webhook: Option<String>,
    /// Where `/metrics` is served.
    pub listen: Option<SocketAddr>,
    /// How often the store is saved when learning.
    pub save_every: Duration,
    /// How long an alert stays firing in Alertmanager (its `endsAt` after `startsAt`).
    pub alert_for: Duration,
    /// The back-link alerts carry (`generatorURL`).
    pub generator_url: String,
    /// Limits and learning.
    pub config: WatchConfig,
}

/// What a watch did, printed at its end.
#[derive(Debug, Clone, Default)]
pub struct WatchSummary {
    /// The watch's counts.
    pub counters: Counters,
    /// Alarms raised.
    pub alarms: u64,
    /// Alarms the webhook could not deliver (queue full, or the endpoint refused them).
    pub webhook_dropped: u64,
    /// Transactions the stitcher evicted at its open cap.
    pub evicted: u64,
    /// Events that joined no transaction.
    pub unattributed: u64,
    /// Events handed to the stitcher (every event read or decoded).
    pub stitched: u64,
    /// Events read from a replayed trace.
    pub read: u64,
    /// Event time covered, µs (first to last event).
    pub span_us: i64,
    /// The AMQP captures' counts.
    pub capture: CaptureStats,
    /// Whether a signal ended it (else its source did).
    pub signalled: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlarmLabels {
    detector: String,
    suspect: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

/// The watch's Prometheus metrics.
struct Metrics {
    registry: Registry,
    events: Counter,
    events_per_second: Gauge,
    open: Gauge,
    held: Gauge,
    stitch_open: Gauge,
    pending_calls: Gauge,
    alarms: Family<AlarmLabels, Counter>,
    transactions: Family<KindLabels, Counter>,
    dropped: Family<KindLabels, Counter>,
    store_variants: Gauge,
    store_symbols: Gauge,
    lag_ms: Gauge,
    broker_connected: Gauge,
    learning: Gauge,
    /// What the counters showed at the last update, for the counters' increments.
    last: Mutex<(Counters, u64, u64)>,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("butterfly_watch");
        let metrics = Metrics {
            registry: Registry::default(),
            events: Counter::default(),
            events_per_second: Gauge::default(),
            open: Gauge::default(),
            held: Gauge::default(),
            stitch_open: Gauge::default(),
            pending_calls: Gauge::default(),
            alarms: Family::default(),
            transactions: Family::default(),
            dropped: Family::default(),
            store_variants: Gauge::default(),
            store_symbols: Gauge::default(),
            lag_ms: Gauge::default(),
            broker_connected: Gauge::default(),
            learning: Gauge::default(),
            last: Mutex::new((Counters::default(), 0, 0)),
        };
        registry.register("events", "Events seen", metrics.events.clone());
        registry.register(
            "events_per_second",
            "Events seen over the last second of event time",
            metrics.events_per_second.clone(),
        );
        registry.register(
            "open_transactions",
            "User transactions followed now",
            metrics.open.clone(),
        );
        registry.register(
            "held_transactions",
            "Transactions whose events are held until they are labelled",
            metrics.held.clone(),
        );
        registry.register(
            "stitcher_open_transactions",
            "Transactions open in the stitcher (users' and background)",
            metrics.stitch_open.clone(),
        );
        registry.register(
            "pending_rpc_calls",
            "RPC calls awaiting their reply",
            metrics.pending_calls.clone(),
        );
        registry.register(
            "alarms",
            "Alarms raised, by detector and first suspect",
            metrics.alarms.clone(),
        );
        registry.register(
            "transactions",
            "Closed transactions by what the watch made of them (judged, succeeded, background, not_user, unknown_route)",
            metrics.transactions.clone(),
        );
        registry.register(
            "dropped",
            "What a cap dropped (held_events, refused_inputs, stitch_evicted, webhook)",
            metrics.dropped.clone(),
        );
        registry.register(
            "store_variants",
            "Positive variants in the fingerprint store",
            metrics.store_variants.clone(),
        );
        registry.register(
            "store_symbols",
            "Symbols interned in the fingerprint store",
            metrics.store_symbols.clone(),
        );
        registry.register(
            "lag_milliseconds",
            "How far the newest event processed is behind the clock",
            metrics.lag_ms.clone(),
        );
        registry.register(
            "broker_connected",
            "1 while the AMQP capture consumes, 0 while it lost the broker",
            metrics.broker_connected.clone(),
        );
        registry.register(
            "learning",
            "1 while positives are refined from successful transactions",
            metrics.learning.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    fn alarm(&self, alarm: &Alarm) {
        let suspect = alarm
            .suspects
            .first()
            .map_or_else(|| "none".to_owned(), |s| s.service.clone());
        self.alarms
            .get_or_create(&AlarmLabels {
                detector: alarm.detector.clone(),
                suspect,
            })
            .inc();
    }

    /// Brings the metrics up to date with the watch and the pipeline.
    fn update(&self, watch: &Watch, pipeline: &Pipeline, stitch_open: usize, webhook: u64) {
        let counters = watch.counters();
        let stitch = pipeline.summary().stitch;
        let mut last = self.last.lock().expect("metrics lock");
        let (before, evicted, dropped_hook) = *last;
        self.events.inc_by(counters.events - before.events);
        let kinds = [
            ("judged", counters.judged, before.judged),
            ("succeeded", counters.succeeded, before.succeeded),
            ("background", counters.background, before.background),
            ("not_user", counters.not_user, before.not_user),
            (
                "unknown_route",
                counters.unknown_route,
                before.unknown_route,
            ),
        ];
        for (kind, now, then) in kinds {
            self.transactions
                .get_or_create(&KindLabels { kind: kind.into() })
                .inc_by(now - then);
        }
        let drops = [
            (
                "held_events",
                counters.dropped_events,
                before.dropped_events,
            ),
            (
                "refused_inputs",
                counters.refused_inputs,
                before.refused_inputs,
            ),
            ("stitch_evicted", stitch.evicted, evicted),
            ("webhook", webhook, dropped_hook),
        ];
        for (kind, now, then) in drops {
            self.dropped
                .get_or_create(&KindLabels { kind: kind.into() })
                .inc_by(now - then);
        }
        *last = (counters, stitch.evicted, webhook);
        self.open.set(watch.open_transactions() as i64);
        self.held.set(watch.held_transactions() as i64);
        self.stitch_open.set(stitch_open as i64);
        self.store_variants
            .set(watch.store().variant_count() as i64);
        self.store_symbols.set(watch.store().symbol_count() as i64);
        self.learning.set(i64::from(watch.learning()));
    }
}

/// Serves `/metrics` on `listener` until the process ends.
async fn serve_metrics(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::service::service_fn;
    use hyper::{Response, StatusCode};
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    if request.uri().path() == "/metrics" {
                        Response::builder()
                            .header(
                                "content-type",
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )
                            .body(Full::new(Bytes::from(metrics.encode())))
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::from_static(b"see /metrics\n")))
                    }
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// An alarm as one Alertmanager v2 alert (`POST /api/v2/alerts` takes a list of them).
pub fn alertmanager_alert(
    raised: &Raised,
    alert_for: Duration,
    generator_url: &str,
) -> serde_json::Value {
    let alarm = &raised.alarm;
    let mut labels = BTreeMap::new();
    labels.insert("alertname", "ButterflyAnomaly".to_owned());
    labels.insert("detector", alarm.detector.clone());
    if let Some(first) = alarm.suspects.first() {
        labels.insert("suspect", first.service.clone());
        if let Some(host) = &first.host {
            labels.insert("host", host.clone());
        }
    }
    if let Some(command) = &raised.command {
        labels.insert("command", command.clone());
    }
    if let Some(kind) = &alarm.fault_kind {
        labels.insert("fault_kind", kind.clone());
    }
    if let Some(transaction) = &alarm.transaction {
        labels.insert("transaction", transaction.clone());
    }
    let mut annotations = BTreeMap::new();
    let suspects: Vec<String> = alarm
        .suspects
        .iter()
        .map(|s| format!("{} ({:.2})", s.service, s.confidence))
        .collect();
    annotations.insert(
        "summary",
        format!(
            "{} alarm{}: suspects {}",
            alarm.detector,
            raised
                .command
                .as_deref()
                .map(|c| format!(" on `{c}`"))
                .unwrap_or_default(),
            if suspects.is_empty() {
                "none".to_owned()
            } else {
                suspects.join(", ")
            }
        ),
    );
    annotations.insert("score", format!("{:.3}", alarm.score));
    if !alarm.evidence.is_empty() {
        annotations.insert("description", alarm.evidence.join("\n"));
    }
    let starts = alarm.timestamp();
    let ends = starts
        .checked_add(jiff::SignedDuration::try_from(alert_for).unwrap_or_default())
        .unwrap_or(starts);
    serde_json::json!({
        "labels": labels,
        "annotations": annotations,
        "startsAt": starts.to_string(),
        "endsAt": ends.to_string(),
        "generatorURL": generator_url,
    })
}

/// Posts alert batches to the webhook; what it cannot deliver is counted in `dropped`.
async fn post_alerts(
    url: String,
    mut batches: mpsc::Receiver<Vec<serde_json::Value>>,
    dropped: Arc<AtomicU64>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a default HTTP client builds");
    while let Some(batch) = batches.recv().await {
        let count = batch.len() as u64;
        let mut delivered = false;
        // A few tries with a pause: Alertmanager restarts are short.
        for attempt in 0..3u32 {
            match client.post(&url).json(&batch).send().await {
                Ok(response) if response.status().is_success() => {
                    delivered = true;
                    break;
                }
                Ok(response) => {
                    tracing::warn!("the webhook answered {}", response.status());
                }
                Err(error) => tracing::warn!("posting alerts to the webhook: {error}"),
            }
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt + 1))).await;
        }
        if !delivered {
            dropped.fetch_add(count, Ordering::Relaxed);
        }
    }
}

/// Where alarms go.
struct Outputs {
    jsonl: Box<dyn Write + Send>,
    webhook: Option<mpsc::Sender<Vec<serde_json::Value>>>,
    webhook_dropped: Arc<AtomicU64>,
    alert_for: Duration,
    generator_url: String,
    metrics: Arc<Metrics>,
    alarms: u64,
}

impl Outputs {
    fn raise(&mut self, raised: Vec<Raised>) -> Result<(), String> {
        if raised.is_empty() {
            return Ok(());
        }
        let mut batch = Vec::new();
        for one in &raised {
            self.alarms += 1;
            self.metrics.alarm(&one.alarm);
            serde_json::to_writer(&mut self.jsonl, &one.alarm).map_err(|e| e.to_string())?;
            self.jsonl
                .write_all(b"\n")
                .and_then(|()| self.jsonl.flush())
                .map_err(|e| format!("writing the alarms: {e}"))?;
            if self.webhook.is_some() {
                batch.push(alertmanager_alert(one, self.alert_for, &self.generator_url));
            }
        }
        if let Some(webhook) = &self.webhook
            && let Err(error) = webhook.try_send(batch)
        {
            let lost = match error {
                mpsc::error::TrySendError::Full(batch)
                | mpsc::error::TrySendError::Closed(batch) => batch.len(),
            };
            self.webhook_dropped
                .fetch_add(lost as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// The pipeline, the watch and the outputs, driven by one task.
struct Driver {
    pipeline: Pipeline,
    watch: Watch,
    outputs: Outputs,
    store_path: PathBuf,
    learn: bool,
    first_us: Option<i64>,
    last_us: i64,
    /// Events at the start of the current second of event time, and that second.
    rate: (u64, i64),
    /// Events read from a replayed trace.
    read: u64,
}

impl Driver {
    /// Hands the pipeline's updates to the watch at `now_us`.
    fn dispatch(&mut self, now_us: i64) -> Result<(), String> {
        for update in self.pipeline.take_updates() {
            match update {
                Update::Event { transaction, event } => {
                    self.first_us.get_or_insert(event.ts_us);
                    self.last_us = self.last_us.max(event.ts_us);
                    self.watch.event(&transaction, &event, now_us);
                }
                Update::Started {
                    transaction,
                    request,
                } => self.watch.started(&transaction, &request, now_us),
                Update::Closed(transaction) => {
                    let raised = self.watch.closed(&transaction, now_us);
                    self.outputs.raise(raised)?;
                }
            }
        }
        Ok(())
    }

    fn tick(&mut self, now_us: i64, wall_us: i64) -> Result<(), String> {
        let raised = self.watch.tick(now_us);
        self.outputs.raise(raised)?;
        let events = self.watch.counters().events;
        if now_us - self.rate.1 >= 1_000_000 {
            let seconds = (now_us - self.rate.1) as f64 / 1e6;
            if self.rate.1 != 0 {
                let rate = (events - self.rate.0) as f64 / seconds;
                self.outputs
                    .metrics
                    .events_per_second
                    .set(rate.round() as i64);
            }
            self.rate = (events, now_us);
            self.pipeline.tick(now_us).map_err(|e| e.to_string())?;
            self.dispatch(now_us)?;
        }
        if self.last_us > 0 {
            self.outputs
                .metrics
                .lag_ms
                .set(wall_us.saturating_sub(self.last_us).max(0) / 1000);
        }
        let (_, calls) = self.watch.pending_calls();
        self.outputs.metrics.pending_calls.set(calls as i64);
        let stitch_open = self.pipeline.open_transactions();
        self.outputs.metrics.update(
            &self.watch,
            &self.pipeline,
            stitch_open,
            self.outputs.webhook_dropped.load(Ordering::Relaxed),
        );
        Ok(())
    }

    /// Saves the store atomically (write beside it, then rename) when learning.
    fn save(&self) -> Result<(), String> {
        if !self.learn {
            return Ok(());
        }
        self.watch
            .store()
            .save(&self.store_path)
            .map_err(|e| e.to_string())
    }

    fn summary(&self, capture: CaptureStats, signalled: bool) -> WatchSummary {
        let stitch = self.pipeline.summary().stitch;
        WatchSummary {
            counters: self.watch.counters(),
            alarms: self.outputs.alarms,
            webhook_dropped: self.outputs.webhook_dropped.load(Ordering::Relaxed),
            evicted: stitch.evicted,
            unattributed: stitch.unattributed,
            stitched: stitch.events,
            read: self.read,
            span_us: self.first_us.map_or(0, |first| self.last_us - first),
            capture,
            signalled,
        }
    }
}

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// Runs the watch until `shutdown` resolves (a signal) or its source ends (a replayed trace).
pub async fn watch(
    options: WatchOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<WatchSummary, String> {
    let engine = Engine::seeded(
        Some("fingerprint".to_owned()),
        Some("timeout".to_owned()),
        options.store.clone(),
    )
    .expect("both detectors are named")
    .with_roles(options.roles.clone());
    let watch = Watch::new(engine, options.config);
    if watch.routes().is_empty() {
        return Err(format!(
            "the fingerprint store {} holds no command learned from a REST entry request: the watch could label no user transaction (learn fingerprints from a traced run first)",
            options.store_path.display()
        ));
    }
    for (route, commands) in watch.routes().ambiguous() {
        eprintln!(
            "butterfly: watch: {route} starts {}; it is labelled `{}`",
            commands.join(", "),
            commands[0]
        );
    }
    let metrics = Arc::new(Metrics::new());
    if let Some(addr) = options.listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("listening on {addr} for /metrics: {e}"))?;
        tokio::spawn(serve_metrics(listener, metrics.clone()));
    }
    let jsonl: Box<dyn Write + Send> = match &options.alarms {
        Some(path) => Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("opening {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let webhook_dropped = Arc::new(AtomicU64::new(0));
    let (webhook, poster) = match &options.webhook {
        Some(url) => {
            let (sink, batches) = mpsc::channel(1024);
            let task = tokio::spawn(post_alerts(url.clone(), batches, webhook_dropped.clone()));
            (Some(sink), Some(task))
        }
        None => (None, None),
    };
    let mut pipeline = Pipeline::counting(StitchConfig::default());
    pipeline.follow();
    let mut driver = Driver {
        pipeline,
        watch,
        outputs: Outputs {
            jsonl,
            webhook,
            webhook_dropped,
            alert_for: options.alert_for,
            generator_url: options.generator_url.clone(),
            metrics: metrics.clone(),
            alarms: 0,
        },
        store_path: options.store_path.clone(),
        learn: options.config.learn,
        first_us: None,
        last_us: 0,
        rate: (0, 0),
        read: 0,
    };
    metrics.broker_connected.set(1);
    let result = match options.source.clone() {
        Source::Live {
            amqp,
            tap,
            rest_records,
        } => {
            live(
                &mut driver,
                amqp,
                tap,
                rest_records,
                options.save_every,
                shutdown,
            )
            .await
        }
        Source::Trace { path, speed } => replay(&mut driver, path, speed, shutdown).await,
    };
    let saved = driver.save();
    let (capture, signalled) = result?;
    saved?;
    let summary = driver.summary(capture, signalled);
    // Let the webhook deliver what was raised last.
    drop(driver);
    if let Some(poster) = poster {
        let _ = tokio::time::timeout(Duration::from_secs(15), poster).await;
    }
    Ok(summary)
}

async fn live(
    driver: &mut Driver,
    amqp: Vec<String>,
    tap: Vec<String>,
    rest_records: Vec<String>,
    save_every: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(CaptureStats, bool), String> {
    let (sink, mut records) = mpsc::channel::<AmqpRecord>(16_384);
    let (link, mut broker_link) = signal::channel(None);
    let mut link = Some(link);
    let mut captures: Vec<super::trace::RunningCapture> = Vec::new();
    for url in &amqp {
        let mode = if tap.is_empty() {
            CaptureMode::Firehose { switch: None }
        } else {
            CaptureMode::Tap {
                exchanges: tap.clone(),
            }
        };
        let capture = AmqpCapture {
            url: url.clone(),
            mode,
            connection_name: tracer::amqp::CONNECTION_NAME.to_owned(),
            link: link.take(),
        };
        captures.push(super::trace::start_capture(capture, sink.clone()).await?);
    }
    drop(sink);
    let (rest_sink, mut rest) = mpsc::channel::<ProxyRecord>(16_384);
    let (resumed, mut rest_resumed) = signal::channel(None);
    let mut streams = Vec::new();
    for addr in rest_records {
        let subscription = tokio::time::timeout(
            super::trace::STREAM_CONNECT_TIMEOUT,
            RecordSubscription::connect(&addr),
        )
        .await
        .map_err(|_| format!("the REST record stream {addr} did not answer"))?
        .map_err(|error| format!("starting the REST tracer: {error}"))?;
        let (stop, stopped) = oneshot::channel();
        streams.push((
            stop,
            tokio::spawn(super::trace::follow_stream(
                addr,
                subscription,
                rest_sink.clone(),
                resumed.clone(),
                stopped,
            )),
        ));
    }
    drop(rest_sink);
    let (mut amqp_open, mut rest_open) = (!amqp.is_empty(), !streams.is_empty());
    let (mut link_open, mut resumed_open) = (!amqp.is_empty(), true);
    let mut ticker = tokio::time::interval(POLL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut saver = tokio::time::interval(save_every);
    saver.tick().await;
    tokio::pin!(shutdown);
    let signalled = loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break true,
            changed = broker_link.changed(), if link_open => match changed {
                Ok(()) => {
                    let lost = *broker_link.borrow_and_update();
                    driver.outputs.metrics.broker_connected.set(i64::from(lost.is_none()));
                    driver.watch.broker_link(lost, now_us());
                }
                Err(_) => link_open = false,
            },
            changed = rest_resumed.changed(), if resumed_open => match changed {
                Ok(()) => {
                    if let Some(at) = *rest_resumed.borrow_and_update() {
                        driver.watch.rest_stream_resumed(at);
                    }
                }
                Err(_) => resumed_open = false,
            },
            record = records.recv(), if amqp_open => match record {
                Some(record) => {
                    driver.pipeline.push_amqp(&record).map_err(|e| e.to_string())?;
                    driver.dispatch(now_us())?;
                }
                None => amqp_open = false,
            },
            record = rest.recv(), if rest_open => match record {
                Some(ProxyRecord::Answered(record)) => {
                    driver.pipeline.push_rest(&record).map_err(|e| e.to_string())?;
                    driver.dispatch(now_us())?;
                }
                Some(ProxyRecord::Started(start)) => {
                    driver.pipeline.rest_started(&start);
                    driver.dispatch(now_us())?;
                }
                None => rest_open = false,
            },
            _ = ticker.tick() => {
                let now = now_us();
                driver.tick(now, now)?;
            }
            _ = saver.tick() => {
                if let Err(error) = driver.save() {
                    eprintln!("butterfly: watch: saving the store: {error}");
                }
            }
        }
        if !amqp_open && !rest_open {
            break false;
        }
    };
    for (stop, handle) in streams {
        let _ = stop.send(());
        let _ = handle.await;
    }
    let mut stats = CaptureStats::default();
    for (stop, handle) in captures {
        let _ = stop.send(());
        match handle.await {
            Ok(Ok(capture)) => stats.add(&capture),
            Ok(Err(error)) => eprintln!("butterfly: the AMQP capture ended with an error: {error}"),
            Err(error) => eprintln!("butterfly: the AMQP capture task failed: {error}"),
        }
    }
    Ok((stats, signalled))
}

/// Replays `events.jsonl` with the recorded clock (scaled by `speed`): the clock follows the
/// events, ticking the watch every [`POLL`] of event time in between.
async fn replay(
    driver: &mut Driver,
    path: PathBuf,
    speed: Speed,
    shutdown: impl Future<Output = ()>,
) -> Result<(CaptureStats, bool), String> {
    let lines = userinput::file::lines(&path, FileKind::TRACE).map_err(|e| e.to_string())?;
    let poll_us = i64::try_from(POLL.as_micros()).unwrap_or(100_000);
    let mut clock: Option<i64> = None;
    let started = tokio::time::Instant::now();
    let mut origin = 0;
    tokio::pin!(shutdown);
    let mut read = 0u64;
    for line in lines {
        let (number, line) = line.map_err(|e| e.to_string())?;
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(&line)
            .map_err(|e| format!("{}:{number}: not an event: {e}", path.display()))?;
        let at = event.ts_us;
        let now = *clock.get_or_insert_with(|| {
            origin = at;
            at
        });
        let mut now = now;
        while now + poll_us <= at {
            now += poll_us;
            driver.tick(now, now)?;
        }
        clock = Some(now.max(at));
        if let Speed::Times(times) = speed {
            let due = Duration::from_secs_f64(((at - origin).max(0) as f64 / 1e6) / times);
            tokio::select! {
                () = &mut shutdown => return Ok((CaptureStats::default(), true)),
                () = tokio::time::sleep_until(started + due) => {}
            }
        } else {
            read += 1;
            if read.is_multiple_of(4096) {
                // Let a signal through now and then.
                tokio::select! {
                    biased;
                    () = &mut shutdown => return Ok((CaptureStats::default(), true)),
                    () = tokio::task::yield_now() => {}
                }
            }
        }
        driver.read += 1;
        driver
            .pipeline
            .push_imported(event)
            .map_err(|e| e.to_string())?;
        driver.dispatch(at)?;
    }
    // The end of the recording: every open transaction runs out its idle time.
    if let Some(mut now) = clock {
        let end = now + StitchConfig::default().idle_timeout_us + 2 * poll_us;
        while now < end {
            now += poll_us;
            driver.tick(now, now)?;
        }
    }
    driver.pipeline.flush().map_err(|e| e.to_string())?;
    let at = driver.last_us;
    driver.dispatch(at)?;
    Ok((CaptureStats::default(), false))
}
