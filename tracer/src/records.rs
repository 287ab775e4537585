//! The recording proxy's live record stream: [`RecordServer`] serves every [`ProxyRecord`] the
//! proxies make (a request as it arrives, the exchange once answered) to TCP subscribers as JSON
//! Lines, and [`RecordSubscription`] reads them.
//!
//! A subscriber first receives one header line (`{"butterfly_rest_records":1}`), written once it
//! is registered, so a subscriber that has read the header misses no later record. Records are
//! never buffered for subscribers that are not there: a record while nobody subscribes is counted
//! as dropped. Each subscriber has a bounded queue; one that falls [`SUBSCRIBER_QUEUE`] records
//! behind is disconnected and counted, so a slow reader can never hold up the proxies, which keep
//! forwarding whatever happens to the stream.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::rest::ProxyRecord;
use crate::{Error, Result};

/// The record stream's format version, announced in the header line.
/// Version 2 added the arrival records ([`ProxyRecord::Started`]).
pub const STREAM_VERSION: u32 = 2;
/// The port the local testbed serves the record stream on (its `rest-proxy` service).
pub const DEFAULT_PORT: u16 = 19900;
/// The key of the header line.
const HEADER_KEY: &str = "butterfly_rest_records";
/// How many records one subscriber may fall behind before it is disconnected.
pub const SUBSCRIBER_QUEUE: usize = 4096;
/// The longest line a subscriber accepts: a record is a few hundred bytes, so anything longer is
/// not a record stream.
const MAX_LINE: usize = 64 * 1024;

/// Counters of the record stream, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct RecordStats {
    /// Records received from the proxies.
    pub recorded: AtomicU64,
    /// Records handed to at least one subscriber.
    pub streamed: AtomicU64,
    /// Records dropped because nobody was subscribed.
    pub unsubscribed: AtomicU64,
    /// Subscribers disconnected because they fell too far behind.
    pub slow_subscribers: AtomicU64,
    /// Subscribers accepted since the start.
    pub subscribers: AtomicU64,
}

impl RecordStats {
    /// A one-line summary for logs.
    pub fn summary(&self) -> String {
        format!(
            "{} recorded, {} streamed, {} dropped with no subscriber, {} slow subscribers cut off, {} subscribers so far",
            self.recorded.load(Ordering::Relaxed),
            self.streamed.load(Ordering::Relaxed),
            self.unsubscribed.load(Ordering::Relaxed),
            self.slow_subscribers.load(Ordering::Relaxed),
            self.subscribers.load(Ordering::Relaxed),
        )
    }
}

/// A bound record stream listener, not yet serving.
pub struct RecordServer {
    listener: TcpListener,
    stats: Arc<RecordStats>,
}

impl RecordServer {
    /// Binds the stream's listener.
    pub async fn bind(addr: SocketAddr) -> Result<RecordServer> {
        let listener = TcpListener::bind(addr).await.map_err(|error| {
            Error::Proxy(format!("record stream: listening on {addr}: {error}"))
        })?;
        Ok(RecordServer {
            listener,
            stats: Arc::default(),
        })
    }

    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|error| Error::Proxy(format!("record stream: local address: {error}")))
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<RecordStats> {
        Arc::clone(&self.stats)
    }

    /// Streams `records` to subscribers until the channel closes or `shutdown` resolves.
    pub async fn serve(
        self,
        mut records: mpsc::UnboundedReceiver<ProxyRecord>,
        shutdown: impl Future<Output = ()>,
    ) -> Result<()> {
        tokio::pin!(shutdown);
        let header: Arc<str> = Arc::from(format!("{{\"{HEADER_KEY}\":{STREAM_VERSION}}}\n"));
        let mut subscribers: Vec<mpsc::Sender<Arc<str>>> = Vec::new();
        loop {
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(accepted) => accepted,
                        // A failed accept (e.g. out of descriptors) concerns one connection only.
                        Err(error) => {
                            tracing::warn!("record stream: accept: {error}");
                            continue;
                        }
                    };
                    let (queue, lines) = mpsc::channel(SUBSCRIBER_QUEUE);
                    // A fresh queue has room, so the header is always first.
                    let _ = queue.try_send(Arc::clone(&header));
                    subscribers.push(queue);
                    self.stats.subscribers.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("record stream: subscriber {peer} connected");
                    tokio::spawn(write_lines(stream, peer, lines));
                }
                record = records.recv() => {
                    let Some(record) = record else { return Ok(()) };
                    self.publish(&record, &mut subscribers);
                }
            }
        }
    }

    fn publish(&self, record: &ProxyRecord, subscribers: &mut Vec<mpsc::Sender<Arc<str>>>) {
        self.stats.recorded.fetch_add(1, Ordering::Relaxed);
        // Gone subscribers are noticed here, and a record nobody receives is dropped, not kept.
        subscribers.retain(|queue| !queue.is_closed());
        if subscribers.is_empty() {
            self.stats.unsubscribed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let line = match serde_json::to_string(record) {
            Ok(mut line) => {
                line.push('\n');
                Arc::<str>::from(line)
            }
            Err(error) => {
                tracing::warn!("record stream: cannot serialize a record: {error}");
                return;
            }
        };
        let stats = &self.stats;
        subscribers.retain(|queue| match queue.try_send(Arc::clone(&line)) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                stats.slow_subscribers.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "record stream: a subscriber fell {SUBSCRIBER_QUEUE} records behind and is disconnected"
                );
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        if !subscribers.is_empty() {
            stats.streamed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Writes a subscriber's queue to its socket until the queue closes (the subscriber was cut off),
/// the socket fails, or the subscriber hangs up.
async fn write_lines(stream: TcpStream, peer: SocketAddr, mut lines: mpsc::Receiver<Arc<str>>) {
    let _ = stream.set_nodelay(true);
    let (reader, mut writer) = stream.into_split();
    let hung_up = hang_up(reader);
    tokio::pin!(hung_up);
    loop {
        tokio::select! {
            () = &mut hung_up => break,
            line = lines.recv() => {
                let Some(line) = line else { break };
                if let Err(error) = writer.write_all(line.as_bytes()).await {
                    tracing::info!("record stream: subscriber {peer}: {error}");
                    break;
                }
            }
        }
    }
    tracing::info!("record stream: subscriber {peer} disconnected");
}

/// Resolves when the peer closes its side (subscribers send nothing, so any end of input is one).
async fn hang_up(mut reader: OwnedReadHalf) {
    let mut buffer = [0_u8; 256];
    while let Ok(read) = reader.read(&mut buffer).await {
        if read == 0 {
            return;
        }
    }
}

/// A connection to a record stream whose header has been read.
pub struct RecordSubscription {
    lines: BufReader<TcpStream>,
    peer: String,
    line: String,
}

impl RecordSubscription {
    /// Connects to the stream at `addr` (`host:port`) and reads its header: once this returns,
    /// every record the proxies make reaches this subscription.
    pub async fn connect(addr: &str) -> Result<RecordSubscription> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|error| Error::Proxy(format!("record stream {addr}: connecting: {error}")))?;
        let _ = stream.set_nodelay(true);
        let mut subscription = RecordSubscription {
            lines: BufReader::new(stream),
            peer: addr.to_owned(),
            line: String::new(),
        };
        let header = subscription.read_line().await?.ok_or_else(|| {
            Error::Proxy(format!("record stream {addr}: closed before its header"))
        })?;
        let version = serde_json::from_str::<serde_json::Value>(&header)
            .ok()
            .and_then(|value| value.get(HEADER_KEY).and_then(serde_json::Value::as_u64));
        if version != Some(u64::from(STREAM_VERSION)) {
            return Err(Error::Format(format!(
                "record stream {addr}: not a butterfly record stream of version {STREAM_VERSION} (header {:?})",
                header.chars().take(80).collect::<String>()
            )));
        }
        Ok(subscription)
    }

    /// The next record, or `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<ProxyRecord>> {
        let Some(line) = self.read_line().await? else {
            return Ok(None);
        };
        serde_json::from_str(&line).map(Some).map_err(|error| {
            Error::Format(format!("record stream {}: bad record: {error}", self.peer))
        })
    }

    async fn read_line(&mut self) -> Result<Option<String>> {
        self.line.clear();
        let read = (&mut self.lines)
            .take(MAX_LINE as u64)
            .read_line(&mut self.line)
            .await
            .map_err(|error| Error::io(format!("record stream {}", self.peer), error))?;
        if read == 0 {
            return Ok(None);
        }
        if !self.line.ends_with('\n') {
            return Err(Error::Format(format!(
                "record stream {}: a line longer than {MAX_LINE} bytes or cut short",
                self.peer
            )));
        }
        Ok(Some(self.line.trim_end().to_owned()))
    }
}
