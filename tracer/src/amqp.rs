//! Live AMQP capture: RabbitMQ's firehose (`amq.rabbitmq.trace`) or tap queues bound to given
//! exchanges, turned into [`AmqpRecord`]s on a channel.
//!
//! The firehose must be switched on per vhost (`rabbitmqctl trace_on -p VHOST`, which only works
//! on the broker's own machine). A [`TraceSwitch`] does that; the capture switches tracing off again
//! only if it was the one that switched it on, also when it fails or is dropped.
//!
//! Tap mode, for brokers where the firehose is not allowed, binds exclusive server-named queues
//! with key `#` to each given exchange. It sees only messages routed through those exchanges:
//! RPC replies (sent through the default exchange to the caller's `reply_…` queue) and
//! deliveries are not visible there.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use tokio::sync::mpsc;

use crate::oslo::{AmqpRecord, Direction};
use crate::secrets::redact_url;
use crate::{Error, Result};

/// The firehose exchange.
pub const FIREHOSE_EXCHANGE: &str = "amq.rabbitmq.trace";

/// Switches RabbitMQ's firehose on and off for a vhost.
pub trait TraceSwitch: Send + Sync {
    /// Switches tracing on; returns `true` when it was off before (so it must be switched off).
    fn enable(&self, vhost: &str) -> Result<bool>;
    /// Switches tracing off.
    fn disable(&self, vhost: &str) -> Result<()>;
}

/// Runs `rabbitmqctl` on this machine (the broker's own node).
#[derive(Debug, Clone)]
pub struct RabbitmqctlSwitch {
    /// The `rabbitmqctl` program.
    pub program: PathBuf,
    /// `-n NODE`, when not the default node.
    pub node: Option<String>,
}

impl Default for RabbitmqctlSwitch {
    fn default() -> Self {
        RabbitmqctlSwitch {
            program: PathBuf::from("rabbitmqctl"),
            node: None,
        }
    }
}

impl RabbitmqctlSwitch {
    fn run(&self, args: &[&str]) -> Result<String> {
        let mut command = Command::new(&self.program);
        if let Some(node) = &self.node {
            command.args(["-n", node]);
        }
        command.args(["-q"]).args(args);
        let output = command.output().map_err(|error| {
            Error::Switch(format!("running {}: {error}", self.program.display()))
        })?;
        if !output.status.success() {
            return Err(Error::Switch(format!(
                "{} {}: {}",
                self.program.display(),
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Whether tracing is on for the vhost (`rabbitmqctl list_vhosts name tracing`).
    pub fn is_on(&self, vhost: &str) -> Result<bool> {
        let listing = self.run(&["list_vhosts", "name", "tracing"])?;
        Ok(listing.lines().any(|line| {
            let mut columns = line.split('\t');
            columns.next() == Some(vhost) && columns.next().map(str::trim) == Some("true")
        }))
    }
}

impl TraceSwitch for RabbitmqctlSwitch {
    fn enable(&self, vhost: &str) -> Result<bool> {
        if self.is_on(vhost)? {
            return Ok(false);
        }
        self.run(&["trace_on", "-p", vhost])?;
        Ok(true)
    }

    fn disable(&self, vhost: &str) -> Result<()> {
        self.run(&["trace_off", "-p", vhost]).map(|_| ())
    }
}

/// Switches the firehose on every node of a RabbitMQ cluster. Tracing is a per-node, per-vhost
/// setting: a message is copied to `amq.rabbitmq.trace` only by the node it passes through, so a
/// cluster's traffic is seen whole only with tracing on at every node. The copies are routed
/// cluster-wide, so one capture queue per vhost still receives them all.
pub struct ClusterSwitch {
    nodes: Vec<Arc<dyn TraceSwitch>>,
    /// Per vhost, the nodes this switch turned tracing on at (and so turns off again).
    switched: std::sync::Mutex<std::collections::BTreeMap<String, Vec<usize>>>,
}

impl ClusterSwitch {
    /// A switch over one switch per node.
    pub fn new(nodes: Vec<Arc<dyn TraceSwitch>>) -> ClusterSwitch {
        ClusterSwitch {
            nodes,
            switched: std::sync::Mutex::default(),
        }
    }

    fn switched(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Vec<usize>>> {
        // A panic elsewhere cannot leave the map half-written: each update is one insert/remove.
        self.switched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl TraceSwitch for ClusterSwitch {
    fn enable(&self, vhost: &str) -> Result<bool> {
        let mut on = Vec::new();
        for (index, node) in self.nodes.iter().enumerate() {
            match node.enable(vhost) {
                Ok(true) => on.push(index),
                Ok(false) => {}
                Err(error) => {
                    // All or nothing: a half-traced cluster would silently miss messages.
                    for index in on {
                        let _ = self.nodes[index].disable(vhost);
                    }
                    return Err(error);
                }
            }
        }
        let any = !on.is_empty();
        if any {
            self.switched().insert(vhost.to_owned(), on);
        }
        Ok(any)
    }

    fn disable(&self, vhost: &str) -> Result<()> {
        let on = self.switched().remove(vhost).unwrap_or_default();
        let mut first_error = None;
        for index in on {
            if let Err(error) = self.nodes[index].disable(vhost) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Switches the firehose off on drop when this capture switched it on.
struct SwitchGuard {
    switch: Arc<dyn TraceSwitch>,
    vhost: String,
    armed: bool,
}

impl SwitchGuard {
    fn release(&mut self) -> Result<()> {
        if std::mem::take(&mut self.armed) {
            self.switch.disable(&self.vhost)?;
        }
        Ok(())
    }
}

impl Drop for SwitchGuard {
    fn drop(&mut self) {
        if let Err(error) = self.release() {
            tracing::error!(
                "could not switch the firehose off for vhost {:?}: {error}",
                self.vhost
            );
        }
    }
}

/// Where the capture reads from.
#[derive(Clone)]
pub enum CaptureMode {
    /// The firehose; with a switch, tracing is turned on for the vhost (and off again after).
    Firehose {
        /// How to switch tracing; `None` when it is already on (e.g. by the operator).
        switch: Option<Arc<dyn TraceSwitch>>,
    },
    /// Exclusive queues bound with `#` to each exchange.
    Tap {
        /// The exchanges to tap.
        exchanges: Vec<String>,
    },
}

/// A live capture from one broker vhost.
#[derive(Clone)]
pub struct AmqpCapture {
    /// `amqp://user:pass@host:port/vhost` (vhost percent-encoded, `%2f` for `/`).
    pub url: String,
    /// Firehose or tap.
    pub mode: CaptureMode,
    /// The `connection_name` client property, which names the connection in the broker's
    /// management tools (default [`CONNECTION_NAME`]).
    pub connection_name: String,
    /// Where the capture tells live consumers that it lost the broker (`Some(since_us)`) and
    /// that it consumes again (`None`). Losing the broker is itself evidence: a live detector
    /// can name the broker, whose own traffic the trace cannot show.
    pub link: Option<tokio::sync::watch::Sender<Option<i64>>>,
}

/// The vhost named by an AMQP URL (`/` when the path is empty).
pub fn vhost_of(url: &str) -> Result<String> {
    let rest = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .ok_or_else(|| Error::Format(format!("AMQP URL {:?} has no scheme", redact_url(url))))?;
    let path = rest.split_once('/').map_or("", |(_, path)| path);
    let path = path.split('?').next().unwrap_or("");
    if path.is_empty() {
        return Ok("/".to_owned());
    }
    percent_decode(path).ok_or_else(|| {
        Error::Format(format!(
            "AMQP URL {:?}: bad vhost encoding",
            redact_url(url)
        ))
    })
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text.get(index + 1..index + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

fn text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        AMQPValue::ShortString(text) => Some(text.as_str().to_owned()),
        _ => None,
    }
}

/// Converts a firehose message (routing key `publish.<exchange>` / `deliver.<queue>`, headers
/// `exchange_name`, `routing_keys`, `properties`) into a record.
pub fn firehose_record(
    routing_key: &str,
    headers: Option<&FieldTable>,
    body: Vec<u8>,
    ts_us: i64,
) -> Option<AmqpRecord> {
    let (direction, queue) = if routing_key.starts_with("publish.") {
        (Direction::Publish, None)
    } else if let Some(queue) = routing_key.strip_prefix("deliver.") {
        (Direction::Deliver, Some(queue.to_owned()))
    } else {
        return None;
    };
    let headers = headers.map(FieldTable::inner);
    let get = |name: &str| headers.and_then(|headers| headers.get(name));
    let exchange = get("exchange_name").and_then(text).unwrap_or_default();
    let routing_key = match get("routing_keys") {
        Some(AMQPValue::FieldArray(keys)) => {
            keys.as_slice().first().and_then(text).unwrap_or_default()
        }
        _ => String::new(),
    };
    let expiration = match get("properties") {
        Some(AMQPValue::FieldTable(properties)) => {
            properties.inner().get("expiration").and_then(text)
        }
        _ => None,
    };
    Some(AmqpRecord {
        ts_us,
        direction,
        exchange,
        routing_key,
        queue,
        expiration,
        body,
    })
}

/// A consumed message as a record: firehose messages by their trace routing key and headers, tap
/// copies as publishes with their own exchange and routing key.
fn to_record(firehose: bool, delivery: lapin::message::Delivery) -> Option<AmqpRecord> {
    let ts_us = now_us();
    if firehose {
        return firehose_record(
            delivery.routing_key.as_str(),
            delivery.properties.headers().as_ref(),
            delivery.data,
            ts_us,
        );
    }
    Some(AmqpRecord {
        ts_us,
        direction: Direction::Publish,
        exchange: delivery.exchange.as_str().to_owned(),
        routing_key: delivery.routing_key.as_str().to_owned(),
        queue: None,
        expiration: delivery
            .properties
            .expiration()
            .as_ref()
            .map(|expiration| expiration.as_str().to_owned()),
        body: delivery.data,
    })
}

pub use crate::pipeline::CaptureStats;

/// The first wait before reconnecting; it doubles after each failed attempt.
pub const RECONNECT_MIN: Duration = Duration::from_millis(200);
/// The longest wait between reconnection attempts.
pub const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// The connection name the capture gives the broker unless told otherwise.
pub const CONNECTION_NAME: &str = "butterfly-tracer";
const CONSUMER_TAG: &str = "butterfly-tracer";

/// A capture queue being consumed.
struct Subscription {
    connection: Connection,
    channel: lapin::Channel,
    consumer: lapin::Consumer,
}

/// How a subscription ended.
enum Ended {
    /// Asked to stop, or the sink went away: the capture is over.
    Done(Result<()>),
    /// The broker went away; the capture goes on after reconnecting.
    Lost(Error),
}

impl AmqpCapture {
    /// Connects, sets up the queues (and switches the firehose on if asked), then forwards records
    /// to `sink` until `shutdown` resolves. `ready` is signalled once consuming has started, so a
    /// caller can start its traffic without missing any.
    ///
    /// The first connection must succeed. After that, when the broker closes the connection or
    /// the channel (a broker restart, `rabbitmqctl close_connection`), the capture reconnects with
    /// a backoff from [`RECONNECT_MIN`] doubling to [`RECONNECT_MAX`] until it consumes again or
    /// is asked to stop: it declares a new queue, binds it again and switches the firehose on again
    /// if the broker forgot it (a restarted node forgets `trace_on`; `stop_app`/`start_app` does
    /// not, on RabbitMQ 3.10). Reconnections and the time without a consumer are
    /// counted in [`CaptureStats`].
    pub async fn run(
        self,
        sink: mpsc::Sender<AmqpRecord>,
        mut ready: Option<tokio::sync::oneshot::Sender<()>>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<CaptureStats> {
        let vhost = vhost_of(&self.url)?;
        let firehose = matches!(self.mode, CaptureMode::Firehose { .. });
        let mut stats = CaptureStats::default();
        let mut guard: Option<SwitchGuard> = None;
        let mut lost_at: Option<i64> = None;
        let mut delay = RECONNECT_MIN;
        tokio::pin!(shutdown);
        let outcome = loop {
            let subscription = match self.subscribe(&vhost, &mut guard).await {
                Ok(subscription) => subscription,
                Err(error) if lost_at.is_none() => break Err(error),
                Err(error) => {
                    tracing::warn!(
                        "the AMQP capture could not reconnect (next try in {delay:?}): {error}"
                    );
                    tokio::select! {
                        () = &mut shutdown => break Ok(()),
                        () = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(RECONNECT_MAX);
                    continue;
                }
            };
            if let Some(since) = lost_at.take() {
                if let Some(link) = &self.link {
                    link.send_replace(None);
                }
                stats.reconnects += 1;
                stats.gap_us += u64::try_from(now_us() - since).unwrap_or(0);
                tracing::warn!("the AMQP capture consumes again after reconnecting");
                delay = RECONNECT_MIN;
            }
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            match consume(subscription, firehose, &sink, &mut stats, &mut shutdown).await {
                Ended::Done(result) => break result,
                Ended::Lost(error) => {
                    tracing::warn!("the AMQP capture lost the broker, reconnecting: {error}");
                    let since = now_us();
                    lost_at = Some(since);
                    if let Some(link) = &self.link {
                        link.send_replace(Some(since));
                    }
                }
            }
        };
        if let Some(since) = lost_at {
            // Stopped while still disconnected: the gap lasted until now.
            stats.gap_us += u64::try_from(now_us() - since).unwrap_or(0);
        }
        let switched_off = guard.as_mut().map_or(Ok(()), SwitchGuard::release);
        outcome?;
        switched_off?;
        Ok(stats)
    }

    /// Connects, declares and binds a fresh capture queue, switches the firehose on (again) and
    /// starts consuming.
    async fn subscribe(
        &self,
        vhost: &str,
        guard: &mut Option<SwitchGuard>,
    ) -> Result<Subscription> {
        let shown = redact_url(&self.url);
        let properties = ConnectionProperties::default()
            .with_connection_name(self.connection_name.as_str().into());
        let connection = Connection::connect(&self.url, properties)
            .await
            .map_err(|error| Error::Amqp(format!("connecting to {shown}: {error}")))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|error| Error::Amqp(format!("opening a channel: {error}")))?;
        channel
            .basic_qos(10_000, BasicQosOptions::default())
            .await
            .map_err(|error| Error::Amqp(format!("basic.qos: {error}")))?;
        let bindings: Vec<String> = match &self.mode {
            CaptureMode::Firehose { .. } => vec![FIREHOSE_EXCHANGE.to_owned()],
            CaptureMode::Tap { exchanges } => exchanges.clone(),
        };
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|error| Error::Amqp(format!("declaring the capture queue: {error}")))?;
        for exchange in &bindings {
            channel
                .queue_bind(
                    queue.name().clone(),
                    exchange.as_str().into(),
                    "#".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|error| {
                    Error::Amqp(format!("binding to exchange {exchange:?}: {error}"))
                })?;
        }
        // Switch the firehose on only after our queue is bound, so nothing is missed. On a
        // reconnection this switches it on again if the broker forgot it; the capture switches it
        // off at the end if it switched it on at any point.
        if let CaptureMode::Firehose {
            switch: Some(switch),
        } = &self.mode
        {
            let switched_on = switch.enable(vhost)?;
            match guard {
                Some(guard) => guard.armed |= switched_on,
                None => {
                    *guard = Some(SwitchGuard {
                        switch: Arc::clone(switch),
                        vhost: vhost.to_owned(),
                        armed: switched_on,
                    })
                }
            }
        }
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                CONSUMER_TAG.into(),
                BasicConsumeOptions {
                    no_ack: true,
                    exclusive: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|error| Error::Amqp(format!("consuming: {error}")))?;
        Ok(Subscription {
            connection,
            channel,
            consumer,
        })
    }
}

/// Forwards one subscription's messages to `sink` until asked to stop or the broker goes away.
async fn consume(
    subscription: Subscription,
    firehose: bool,
    sink: &mpsc::Sender<AmqpRecord>,
    stats: &mut CaptureStats,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Ended {
    let Subscription {
        connection,
        channel,
        mut consumer,
    } = subscription;
    // After `shutdown`, the consumer is cancelled and what the broker already pushed to it is
    // still taken (until the stream ends or stays empty for a moment), so a record that reached
    // the tracer is never dropped at the end.
    let mut stopping = false;
    let ended = loop {
        let delivery = if stopping {
            match tokio::time::timeout(Duration::from_millis(500), consumer.next()).await {
                Ok(Some(delivery)) => Some(delivery),
                Ok(None) | Err(_) => break Ended::Done(Ok(())),
            }
        } else {
            tokio::select! {
                () = &mut *shutdown => {
                    stopping = true;
                    let _ = channel
                        .basic_cancel(CONSUMER_TAG.into(), BasicCancelOptions::default())
                        .await;
                    continue;
                }
                delivery = consumer.next() => delivery,
            }
        };
        let delivery = match delivery {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) if stopping => {
                break Ended::Done(Err(Error::Amqp(format!("consuming: {error}"))));
            }
            Some(Err(error)) => break Ended::Lost(Error::Amqp(format!("consuming: {error}"))),
            None if stopping => break Ended::Done(Ok(())),
            None => {
                break Ended::Lost(Error::Amqp(
                    "the broker cancelled the capture consumer".to_owned(),
                ));
            }
        };
        stats.consumed += 1;
        match to_record(firehose, delivery) {
            Some(record) => {
                if sink.send(record).await.is_err() {
                    break Ended::Done(Ok(()));
                }
            }
            None => stats.foreign += 1,
        }
    };
    match &ended {
        Ended::Done(_) => {
            if !stopping {
                let _ = channel
                    .basic_cancel(CONSUMER_TAG.into(), BasicCancelOptions::default())
                    .await;
            }
            let _ = connection.close(200, "tracer done".into()).await;
        }
        // The connection may be half-open (only the channel closed, or the consumer cancelled):
        // close it without waiting long for a broker that is going away.
        Ended::Lost(_) => {
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                connection.close(200, "tracer reconnecting".into()),
            )
            .await;
        }
    }
    ended
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use lapin::types::{FieldArray, LongString};

    use super::*;

    #[test]
    fn a_cluster_switch_turns_on_every_node_and_off_only_those_it_turned_on() {
        use std::sync::Mutex;
        struct Node {
            on: Mutex<bool>,
            fails: bool,
            log: Arc<Mutex<Vec<String>>>,
            name: &'static str,
        }
        impl TraceSwitch for Node {
            fn enable(&self, vhost: &str) -> Result<bool> {
                if self.fails {
                    return Err(Error::Switch(format!("{} is down", self.name)));
                }
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("on {} {vhost}", self.name));
                Ok(!std::mem::replace(&mut *self.on.lock().unwrap(), true))
            }
            fn disable(&self, vhost: &str) -> Result<()> {
                self.log
                    .lock()
                    .unwrap()
                    .push(format!("off {} {vhost}", self.name));
                *self.on.lock().unwrap() = false;
                Ok(())
            }
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let node = |name, on, fails| {
            Arc::new(Node {
                on: Mutex::new(on),
                fails,
                log: log.clone(),
                name,
            }) as Arc<dyn TraceSwitch>
        };
        // rabbit2 was already tracing (someone else's): it is left on.
        let cluster = ClusterSwitch::new(vec![
            node("rabbit1", false, false),
            node("rabbit2", true, false),
        ]);
        assert!(cluster.enable("/").unwrap());
        cluster.disable("/").unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            ["on rabbit1 /", "on rabbit2 /", "off rabbit1 /"]
        );
        log.lock().unwrap().clear();
        let cluster = ClusterSwitch::new(vec![
            node("rabbit1", false, false),
            node("rabbit3", false, true),
        ]);
        let error = cluster.enable("nova").unwrap_err().to_string();
        assert!(error.contains("rabbit3 is down"), "{error}");
        assert_eq!(
            *log.lock().unwrap(),
            ["on rabbit1 nova", "off rabbit1 nova"]
        );
    }

    #[test]
    fn vhosts_are_read_from_urls() {
        assert_eq!(
            vhost_of("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap(),
            "/"
        );
        assert_eq!(vhost_of("amqp://guest:guest@127.0.0.1:5672").unwrap(), "/");
        assert_eq!(
            vhost_of("amqp://127.0.0.1/bt-1?heartbeat=10").unwrap(),
            "bt-1"
        );
        assert!(vhost_of("127.0.0.1").is_err());
        assert!(vhost_of("amqp://h/%zz").is_err());
    }

    #[test]
    fn firehose_headers_become_records() {
        let mut properties = BTreeMap::new();
        properties.insert(
            "expiration".into(),
            AMQPValue::LongString(LongString::from("60000")),
        );
        let mut headers = BTreeMap::new();
        headers.insert(
            "exchange_name".into(),
            AMQPValue::LongString(LongString::from("nova")),
        );
        let mut keys = FieldArray::default();
        keys.push(AMQPValue::LongString(LongString::from("compute.host1")));
        headers.insert("routing_keys".into(), AMQPValue::FieldArray(keys));
        headers.insert(
            "properties".into(),
            AMQPValue::FieldTable(properties.into()),
        );
        let headers = FieldTable::from(headers);
        let record = firehose_record("publish.nova", Some(&headers), b"{}".to_vec(), 7).unwrap();
        assert_eq!(record.direction, Direction::Publish);
        assert_eq!(record.exchange, "nova");
        assert_eq!(record.routing_key, "compute.host1");
        assert_eq!(record.expiration.as_deref(), Some("60000"));
        let delivered =
            firehose_record("deliver.compute.host1", Some(&headers), vec![], 8).unwrap();
        assert_eq!(delivered.queue.as_deref(), Some("compute.host1"));
        assert!(firehose_record("other", None, vec![], 0).is_none());
    }
}
