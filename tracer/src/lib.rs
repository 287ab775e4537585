//! The tracer watches what the cloud does: AMQP capture (RabbitMQ firehose or tap queues, decoding
//! oslo.messaging envelopes) and REST capture (a recording reverse proxy). Both feed one event model,
//! which is stitched into per-transaction execution graphs.
//!
//! Data comes from the broker and the proxies (or from recorded trace files) and goes to the
//! `fingerprint` crate and to the run directory as a versioned trace format.
//!
//! * [`event`]: the shared model ([`event::Event`], [`event::Transaction`], …).
//! * [`oslo`]: AMQP records and the oslo.messaging decoder; [`services`]: canonical names.
//! * [`rest`]: REST records and path templates; [`proxy`]: the recording reverse proxy;
//!   [`records`]: the proxy's live record stream (JSON Lines over TCP) and its subscriber.
//! * [`amqp`]: live capture from the firehose or tap queues, and the [`amqp::TraceSwitch`]
//!   (per node: [`amqp::ClusterSwitch`] covers a cluster); [`merge`]: several captures (one per
//!   vhost) merged into one stream in time order.
//! * [`stitch`]: streaming stitching into transactions; [`graph`]: petgraph and DOT.
//! * [`pipeline`]: numbering, stitching and writing a trace directory; [`import`]: reading
//!   traces back (own format, recorded captures, OSProfiler, Zipkin v1/v2, Jaeger and OTLP spans).
#![warn(missing_docs)]

#[cfg(feature = "capture")]
pub mod amqp;
pub mod event;
pub mod graph;
pub mod import;
pub mod merge;
pub mod oslo;
pub mod pipeline;
#[cfg(feature = "capture")]
pub mod proxy;
#[cfg(feature = "capture")]
pub mod records;
pub mod rest;
pub mod secrets;
pub mod services;
pub mod stitch;

/// Why a tracer operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file or socket failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A trace file was refused or unreadable (not a regular file, over its limit, missing).
    #[error(transparent)]
    File(#[from] userinput::file::Error),
    /// Input is not in the expected format (location in the message).
    #[error("{0}")]
    Format(String),
    /// The AMQP broker refused or dropped the connection.
    #[error("AMQP: {0}")]
    Amqp(String),
    /// Switching the firehose on or off failed.
    #[error("trace switch: {0}")]
    Switch(String),
    /// The REST proxy could not start.
    #[error("REST proxy: {0}")]
    Proxy(String),
}

/// Result with the tracer's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
