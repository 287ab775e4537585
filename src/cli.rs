//! Argument parsing and dispatch. Each subcommand lives in its own module under `commands`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands;
use crate::exit::{self, CliError, Exit};

/// Butterfly Effect: fault-injection campaigns for OpenStack that explain each failure they cause.
///
/// Exit codes: 0 pass, 1 gate failed, 2 invalid input, 3 testbed/setup error, 4 interrupted.
#[derive(Debug, Parser)]
#[command(
    name = "butterfly",
    version,
    about,
    long_about = None,
    propagate_version = true,
    after_help = "Examples:\n  butterfly validate scenarios/examples/*.yaml\n  butterfly plan --dry-run scenarios/examples/ci-smoke.yaml\n  butterfly run scenarios/examples/ci-smoke.yaml\n  butterfly help testbed up"
)]
pub struct Cli {
    /// Log filter (tracing syntax), e.g. `info` or `butterfly=debug`.
    // lapin is off by default: when the broker drops the tracer (a `rabbitmq-stop-app` fault),
    // lapin logs the broker's close frame as ERROR lines, while the tracer itself already reports
    // the loss, each reconnection attempt and the recovery.
    #[arg(
        long,
        global = true,
        env = "BUTTERFLY_LOG",
        default_value = "warn,lapin=off"
    )]
    pub log: String,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Every `butterfly` subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check campaign files and print every problem with its location.
    Validate(commands::validate::Args),
    /// Print the JSON Schema of the campaign format.
    Schema(commands::schema::Args),
    /// Print the expanded campaign: experiments, repetitions, targets and timelines.
    Plan(commands::plan::Args),
    /// Run a campaign: workload, tracing, faults, hypotheses and detector scores, then the report.
    Run(commands::run::Args),
    /// Build the inventory of a kolla-ansible, OpenStack-Ansible or DevStack cloud.
    Discover(commands::discover::Args),
    /// Bring the local DevStack-like testbed up or down, check it, or discover a real DevStack.
    Testbed(commands::testbed::Args),
    /// Trace AMQP and REST traffic into execution graphs, or rebuild them from recorded traces.
    Trace(commands::trace::Args),
    /// List every fault kind with its parameters and a one-line description.
    Faults(commands::faults::Args),
    /// Revert every fault of a run that its journal does not record as reverted.
    Recover(commands::recover::Args),
    /// Inject one fault now (validated like a campaign, journaled), hold it and revert it.
    Inject(commands::inject::Args),
    /// Re-render a run's reports from report.json, or compare two runs and gate on regressions.
    Report(commands::report::Args),
    /// Learn fingerprints of user commands from traced runs (positive or, with a fault, negative).
    Fingerprint(commands::fingerprint::Args),
    /// Diagnose traced transactions against learned fingerprints and write alarms.
    Diagnose(commands::diagnose::Args),
    /// The run history: list recorded runs, show one, print trends, import run directories.
    History(commands::history::Args),
    /// Watch a production cloud: trace it, judge users' requests, alarm (injects nothing).
    Watch(commands::watch::Args),
    // Further commands are added here, one line each, by the module that implements them.
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log);
    exit::finish(dispatch(cli.command))
}

fn dispatch(command: Command) -> Result<Exit, CliError> {
    match command {
        Command::Validate(args) => commands::validate::run(args),
        Command::Schema(args) => commands::schema::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Discover(args) => commands::discover::run(args),
        Command::Testbed(args) => commands::testbed::run(args),
        Command::Trace(args) => commands::trace::run(args),
        Command::Faults(args) => commands::faults::run(args),
        Command::Recover(args) => commands::recover::run(args),
        Command::Inject(args) => commands::inject::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Fingerprint(args) => commands::fingerprint::run(args),
        Command::Diagnose(args) => commands::diagnose::run(args),
        Command::History(args) => commands::history::run(args),
        Command::Watch(args) => commands::watch::run(args),
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
