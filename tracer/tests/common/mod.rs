//! Helpers shared by the tracer's integration tests and its benches (which include this file by
//! path): a loopback HTTP upstream and recording proxy, and vhosts of the local RabbitMQ.
#![allow(dead_code)]

pub mod http;
pub mod rabbitmq;
