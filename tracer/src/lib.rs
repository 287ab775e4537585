//! The tracer watches what the cloud does: AMQP capture (RabbitMQ firehose or tap queues, decoding
//! oslo.messaging envelopes) and REST capture (a recording reverse proxy). Both feed one event model,
//! which is stitched into per-transaction execution graphs.
//!
//! Data comes from the broker and the proxies (or from recorded trace files) and goes to the
//! `fingerprint` crate and to the run directory as a versioned trace format.
#![warn(missing_docs)]

pub mod event;
