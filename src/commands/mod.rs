//! One module per `butterfly` subcommand. Each has an `Args` (clap) and a `run` function.

pub mod plan;
pub mod schema;
pub mod validate;
