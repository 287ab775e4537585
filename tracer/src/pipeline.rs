//! The pipeline from records to a trace: number events in arrival order, decode AMQP records,
//! stitch, and write the trace directory (see `docs/tracer.md`, "Trace format"):
//!
//! * `events.jsonl`: one [`Event`] per line, in arrival order, written as they arrive;
//! * `transactions.json`: `{"format": "butterfly-trace", "version": 1, "transactions": [...]}`,
//!   each transaction appended when it closes;
//! * `graphs/<n>-<id>.dot`: one Graphviz graph per user (non-background) transaction;
//! * `trace.json`: the [`TraceSummary`] with format version and every count.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::event::{Event, TRACE_FORMAT_VERSION, Transaction};
use crate::graph::to_dot;
use crate::oslo::{AmqpCounts, AmqpRecord, Decoded, Decoder};
use crate::rest::{RestRecord, RestStart};
use crate::stitch::{StitchConfig, StitchCounts, Stitcher};
use crate::{Error, Result};

/// The `format` value of trace files.
pub const TRACE_FORMAT_NAME: &str = "butterfly-trace";

/// What a trace contains, written as `trace.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSummary {
    /// Always [`TRACE_FORMAT_NAME`].
    pub format: String,
    /// [`TRACE_FORMAT_VERSION`] of the writer.
    pub version: u32,
    /// AMQP decoder counts.
    pub amqp: AmqpCounts,
    /// REST requests recorded by the proxies.
    pub rest_requests: u64,
    /// Events imported from other formats.
    pub imported: u64,
    /// Stitcher counts.
    pub stitch: StitchCounts,
    /// Transactions written (user and background).
    pub transactions: u64,
    /// What the live AMQP capture saw, including broker losses (absent for offline traces).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureStats>,
}

/// What the pipeline did with an event or a transaction, for consumers that follow the trace
/// as it is made (the runner's live detectors); see [`Pipeline::follow`].
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// An event joined the open transaction `transaction`.
    Event {
        /// The id of the transaction it joined.
        transaction: String,
        /// The event, numbered and annotated as written.
        event: Box<Event>,
    },
    /// A REST request of transaction `transaction` reached a proxy and awaits its answer (which
    /// comes as an [`Update::Event`] pairing with it, see [`RestStart::answered_by`]).
    Started {
        /// The id of the transaction it belongs to (its global request id).
        transaction: String,
        /// The request.
        request: Box<RestStart>,
    },
    /// A transaction closed (idle, evicted or at the end).
    Closed(Transaction),
}

/// What a live AMQP capture saw (`tracer::amqp`); kept here so that traces without the
/// `capture` feature read the same summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureStats {
    /// Messages consumed from the firehose or tap queues.
    pub consumed: u64,
    /// Firehose messages whose routing key was neither `publish.` nor `deliver.` (ignored).
    pub foreign: u64,
    /// Times the capture lost the broker (connection or channel closed, consumer cancelled) and
    /// consumed again after reconnecting.
    #[serde(default)]
    pub reconnects: u64,
    /// Time without a consumer after losing the broker, µs: traffic of those gaps is missing.
    #[serde(default)]
    pub gap_us: u64,
}

impl CaptureStats {
    /// Adds another capture's counts (a run with several sources reports their sum).
    pub fn add(&mut self, other: &CaptureStats) {
        self.consumed += other.consumed;
        self.foreign += other.foreign;
        self.reconnects += other.reconnects;
        self.gap_us += other.gap_us;
    }
}

enum Sink {
    Keep(Vec<Transaction>),
    Discard,
    Write(Box<TraceWriter>),
}

/// Numbering, decoding, stitching and output in one place, driven by the capture loops, the
/// importers and the benchmarks.
pub struct Pipeline {
    decoder: Decoder,
    stitcher: Stitcher,
    next_seq: u64,
    rest_requests: u64,
    imported: u64,
    transactions: u64,
    sink: Sink,
    /// Updates not yet taken, when followed; `None` keeps the pipeline free of the copies.
    updates: Option<Vec<Update>>,
    capture: Option<CaptureStats>,
}

/// What a finished pipeline returns.
#[derive(Debug)]
pub struct TraceOutput {
    /// Counts of the whole run.
    pub summary: TraceSummary,
    /// The transactions, when the pipeline kept them in memory.
    pub transactions: Vec<Transaction>,
}

impl Pipeline {
    /// A pipeline that keeps the closed transactions in memory.
    pub fn in_memory(config: StitchConfig) -> Pipeline {
        Pipeline::with_sink(config, Sink::Keep(Vec::new()))
    }

    /// A pipeline that only counts closed transactions (benchmarks).
    pub fn counting(config: StitchConfig) -> Pipeline {
        Pipeline::with_sink(config, Sink::Discard)
    }

    /// A pipeline that writes a trace directory (created if missing).
    pub fn writing(config: StitchConfig, dir: &Path) -> Result<Pipeline> {
        Ok(Pipeline::with_sink(
            config,
            Sink::Write(Box::new(TraceWriter::create(dir)?)),
        ))
    }

    fn with_sink(config: StitchConfig, sink: Sink) -> Pipeline {
        Pipeline {
            decoder: Decoder::new(),
            stitcher: Stitcher::new(config),
            next_seq: 1,
            rest_requests: 0,
            imported: 0,
            transactions: 0,
            sink,
            updates: None,
            capture: None,
        }
    }

    /// From now on, records an [`Update`] for every event that joins a transaction and every
    /// transaction that closes, to be taken with [`Pipeline::take_updates`]. Events that join no
    /// transaction are left out: no detector can place them.
    pub fn follow(&mut self) {
        self.updates.get_or_insert_with(Vec::new);
    }

    /// The updates since the last call, in the order they happened (empty unless followed).
    pub fn take_updates(&mut self) -> Vec<Update> {
        self.updates
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Decodes and stitches one AMQP record.
    pub fn push_amqp(&mut self, record: &AmqpRecord) -> Result<()> {
        match self.decoder.decode(record) {
            Decoded::Event(event) => self.push(*event),
            Decoded::Delivery(delivery) => {
                self.stitcher.deliver(&delivery);
                Ok(())
            }
        }
    }

    /// Stitches one REST exchange.
    pub fn push_rest(&mut self, record: &RestRecord) -> Result<()> {
        self.rest_requests += 1;
        self.push(record.to_event())
    }

    /// Notes a REST request that arrived and is not answered yet. The trace keeps only answered
    /// exchanges ([`Pipeline::push_rest`]); a followed pipeline passes the arrival on to live
    /// detectors, which time the answer.
    pub fn rest_started(&mut self, start: &RestStart) {
        let Some(updates) = &mut self.updates else {
            return;
        };
        if let Some(transaction) = start
            .global_request_id
            .as_deref()
            .filter(|id| !id.is_empty())
        {
            updates.push(Update::Started {
                transaction: transaction.to_owned(),
                request: Box::new(start.clone()),
            });
        }
    }

    /// Stitches one event from another source (an importer); it is renumbered.
    pub fn push_imported(&mut self, event: Event) -> Result<()> {
        self.imported += 1;
        self.push(event)
    }

    fn push(&mut self, mut event: Event) -> Result<()> {
        event.seq = self.next_seq;
        self.next_seq += 1;
        self.stitcher.annotate(&mut event);
        if let Sink::Write(writer) = &mut self.sink {
            writer.event(&event)?;
        }
        let copy = self.updates.is_some().then(|| event.clone());
        let joined = self.stitcher.push(event);
        // Idle transactions are closed inside `push` before the event joins its own, so draining
        // first keeps the updates in the order of the facts.
        self.drain()?;
        if let (Some(transaction), Some(event), Some(updates)) = (joined, copy, &mut self.updates) {
            updates.push(Update::Event {
                transaction,
                event: Box::new(event),
            });
        }
        Ok(())
    }

    /// Closes transactions idle at `now_us` (wall clock in live capture).
    pub fn tick(&mut self, now_us: i64) -> Result<()> {
        self.stitcher.advance(now_us);
        self.drain()
    }

    /// Records what the live capture(s) saw, for the summary (sums over several sources).
    pub fn add_capture(&mut self, stats: &CaptureStats) {
        self.capture
            .get_or_insert_with(CaptureStats::default)
            .add(stats);
    }

    /// Transactions open in the stitcher now.
    pub fn open_transactions(&self) -> usize {
        self.stitcher.open_len()
    }

    /// Current counts.
    pub fn summary(&self) -> TraceSummary {
        TraceSummary {
            format: TRACE_FORMAT_NAME.to_owned(),
            version: TRACE_FORMAT_VERSION,
            amqp: self.decoder.counts(),
            rest_requests: self.rest_requests,
            imported: self.imported,
            stitch: self.stitcher.counts(),
            transactions: self.transactions,
            capture: self.capture,
        }
    }

    fn drain(&mut self) -> Result<()> {
        for transaction in self.stitcher.take_closed() {
            self.transactions += 1;
            if let Some(updates) = &mut self.updates {
                updates.push(Update::Closed(transaction.clone()));
            }
            match &mut self.sink {
                Sink::Keep(kept) => kept.push(transaction),
                Sink::Discard => {}
                Sink::Write(writer) => writer.transaction(&transaction)?,
            }
        }
        Ok(())
    }

    /// Closes every open transaction now (end of the trace), so that their updates can be taken
    /// before [`Pipeline::finish`].
    pub fn flush(&mut self) -> Result<()> {
        self.stitcher.flush();
        self.drain()
    }

    /// Closes every open transaction, finishes the files and returns the counts.
    pub fn finish(mut self) -> Result<TraceOutput> {
        self.flush()?;
        let summary = self.summary();
        let transactions = match self.sink {
            Sink::Keep(kept) => kept,
            Sink::Discard => Vec::new(),
            Sink::Write(writer) => {
                writer.finish(&summary)?;
                Vec::new()
            }
        };
        Ok(TraceOutput {
            summary,
            transactions,
        })
    }
}

/// Writes a trace directory incrementally.
struct TraceWriter {
    dir: PathBuf,
    events: BufWriter<File>,
    transactions: BufWriter<File>,
    written: u64,
    graphs: u64,
}

impl TraceWriter {
    fn create(dir: &Path) -> Result<TraceWriter> {
        std::fs::create_dir_all(dir.join("graphs"))
            .map_err(|error| Error::io(format!("creating {}", dir.display()), error))?;
        let open = |name: &str| {
            let path = dir.join(name);
            File::create(&path)
                .map(BufWriter::new)
                .map_err(|error| Error::io(format!("creating {}", path.display()), error))
        };
        let mut transactions = open("transactions.json")?;
        write!(
            transactions,
            "{{\"format\":\"{TRACE_FORMAT_NAME}\",\"version\":{TRACE_FORMAT_VERSION},\"transactions\":["
        )
        .map_err(|error| Error::io("writing transactions.json", error))?;
        Ok(TraceWriter {
            dir: dir.to_owned(),
            events: open("events.jsonl")?,
            transactions,
            written: 0,
            graphs: 0,
        })
    }

    fn event(&mut self, event: &Event) -> Result<()> {
        serde_json::to_writer(&mut self.events, event)
            .map_err(|error| Error::io("writing events.jsonl", error.into()))?;
        self.events
            .write_all(b"\n")
            .map_err(|error| Error::io("writing events.jsonl", error))
    }

    fn transaction(&mut self, transaction: &Transaction) -> Result<()> {
        if self.written > 0 {
            self.transactions
                .write_all(b",\n")
                .map_err(|error| Error::io("writing transactions.json", error))?;
        }
        serde_json::to_writer(&mut self.transactions, transaction)
            .map_err(|error| Error::io("writing transactions.json", error.into()))?;
        self.written += 1;
        if !transaction.background {
            self.graphs += 1;
            let name: String = transaction
                .id
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .take(80)
                .collect();
            let path = self
                .dir
                .join("graphs")
                .join(format!("{:05}-{name}.dot", self.graphs));
            std::fs::write(&path, to_dot(transaction))
                .map_err(|error| Error::io(format!("writing {}", path.display()), error))?;
        }
        Ok(())
    }

    fn finish(mut self, summary: &TraceSummary) -> Result<()> {
        self.transactions
            .write_all(b"]}\n")
            .and_then(|()| self.transactions.flush())
            .and_then(|()| self.events.flush())
            .map_err(|error| Error::io("finishing the trace files", error))?;
        let path = self.dir.join("trace.json");
        let text = serde_json::to_string_pretty(summary)
            .map_err(|error| Error::Format(format!("summary: {error}")))?;
        std::fs::write(&path, text + "\n")
            .map_err(|error| Error::io(format!("writing {}", path.display()), error))
    }
}
