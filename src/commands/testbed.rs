//! `butterfly testbed up|down|status|discover`: the local DevStack-like testbed.

use std::path::PathBuf;

use testbed::discover;

use super::discover::setup_error;
use testbed::{Mode, Progress, UpOptions};

use crate::exit::{CliError, Exit};

const TESTBED_EXAMPLES: &str = "\
Examples (as root):
  butterfly testbed up                  # controller + compute1 + compute2 with OpenStack
  butterfly testbed up --hosts-only     # hosts with systemd, sshd and fault tools only
  butterfly testbed status
  butterfly testbed down
  butterfly testbed discover --ssh stack@10.0.0.5,10.0.0.6 --identity ~/.ssh/id_ed25519";
const UP_EXAMPLES: &str = "\
Examples (as root):
  butterfly testbed up
  butterfly testbed up --hosts-only --computes 1
  butterfly testbed up --layout kolla    # the services in Podman containers, as kolla-ansible runs them
  butterfly testbed up --instance 3 --state-dir /var/lib/butterfly/testbed-3";
const DOWN_EXAMPLES: &str = "\
Examples (as root):
  butterfly testbed down
  butterfly testbed down --instance 3 --state-dir /var/lib/butterfly/testbed-3";
const STATUS_EXAMPLES: &str = "\
Examples:
  butterfly testbed status
  butterfly testbed status --state-dir /var/lib/butterfly/testbed-3";
const DISCOVER_EXAMPLES: &str = "\
Examples:
  butterfly testbed discover --ssh stack@10.0.0.5,10.0.0.6 --identity ~/.ssh/id_ed25519
  butterfly testbed discover --ssh stack@10.0.0.5:2222 --known-hosts known_hosts --out devstack/";

/// Bring a local DevStack-like OpenStack up or down, check it, or discover a real DevStack.
///
/// Needs root and Linux namespaces. State (outputs, per-host files) lives in --state-dir; built
/// images are cached in --cache-dir.
#[derive(Debug, clap::Args)]
#[command(after_help = TESTBED_EXAMPLES)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by the commands that act on a local testbed.
#[derive(Debug, clap::Args)]
pub struct StateArgs {
    /// Where the testbed's outputs and per-host files live.
    #[arg(long, env = "BUTTERFLY_TESTBED_DIR", default_value = testbed::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Instance number 0-9: subnet 10.77.N.0/24, bridge bflyN (run several testbeds side by side).
    #[arg(long, env = "BUTTERFLY_TESTBED_INSTANCE", default_value_t = 0)]
    pub instance: u8,
}

/// The `testbed` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Boot the hosts (and OpenStack), wait until healthy, write and print the outputs.
    #[command(after_help = UP_EXAMPLES)]
    Up {
        /// State directory and instance.
        #[command(flatten)]
        state: StateArgs,
        /// Where built images (rootfs, wheels) are cached, keyed by a hash of pins and assets.
        #[arg(long, env = "BUTTERFLY_TESTBED_CACHE", default_value = testbed::DEFAULT_CACHE_DIR)]
        cache_dir: PathBuf,
        /// Hosts with systemd, sshd, the fault tools and disks, but no OpenStack (seconds to boot).
        #[arg(long)]
        hosts_only: bool,
        /// Number of compute hosts.
        #[arg(long, default_value_t = 2)]
        computes: usize,
        /// Size of each host's /srv disk in MiB.
        #[arg(long, default_value_t = 64)]
        disk_mb: u64,
        /// On failure, leave what was started for inspection instead of rolling back.
        #[arg(long)]
        keep_on_failure: bool,
        /// How the services run: `devstack` (devstack@ units) or `kolla` (Podman containers named
        /// and supervised as kolla-ansible does it; writes kolla's inventory files too).
        #[arg(long, default_value = "devstack", value_parser = ["devstack", "kolla"])]
        layout: String,
    },
    /// Remove everything the testbed created (idempotent; clears leftovers of interrupted runs).
    #[command(after_help = DOWN_EXAMPLES)]
    Down {
        /// State directory and instance.
        #[command(flatten)]
        state: StateArgs,
    },
    /// Check health: units active, APIs answering, compute services up, hypervisors registered.
    #[command(after_help = STATUS_EXAMPLES)]
    Status {
        /// State directory and instance.
        #[command(flatten)]
        state: StateArgs,
    },
    /// Build the inventory of a real DevStack over SSH (host keys are verified); the same as
    /// `butterfly discover --ssh`.
    #[command(after_help = DISCOVER_EXAMPLES)]
    Discover {
        /// USER@HOST[,HOST…] (a host may end in :PORT; a later USER@ changes the user).
        #[arg(long, value_name = "USER@HOST[,HOST…]")]
        ssh: String,
        /// Private key for the login.
        #[arg(long)]
        identity: Option<PathBuf>,
        /// known_hosts file with the hosts' keys.
        #[arg(long)]
        known_hosts: Option<PathBuf>,
        /// Write inventory.yaml, amqp-url (mode 0600) and clouds.yaml into this directory
        /// instead of printing the inventory.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    match args.command {
        Command::Up {
            state,
            cache_dir,
            hosts_only,
            computes,
            disk_mb,
            keep_on_failure,
            layout,
        } => {
            let options = UpOptions {
                state_dir: state.state_dir,
                cache_dir,
                mode: if hosts_only {
                    Mode::HostsOnly
                } else {
                    Mode::OpenStack
                },
                instance: state.instance,
                computes,
                disk_mb,
                keep_on_failure,
                layout: if layout == "kolla" {
                    testbed::Layout::Kolla
                } else {
                    testbed::Layout::Devstack
                },
                // The proxy on the controller is this very binary.
                rest_proxy_binary: Some(std::env::current_exe().map_err(|error| {
                    CliError::Setup(format!("cannot find the butterfly binary: {error}"))
                })?),
            };
            let progress = Progress::new(false);
            let report = testbed::up(&options, &progress).map_err(setup_error)?;
            if report.already_up {
                println!("testbed already up in {}", options.state_dir.display());
                if report.record.mode == Mode::OpenStack && report.record.layout != options.layout {
                    eprintln!(
                        "warning: it runs the {:?} layout, not the one asked for; \
                         run `butterfly testbed down` first to switch",
                        report.record.layout
                    );
                }
                if report.record.mode != options.mode {
                    eprintln!(
                        "warning: it runs in {:?} mode, not the one asked for; \
                         run `butterfly testbed down` first to switch",
                        report.record.mode
                    );
                }
            } else {
                println!("testbed up in {:.1} s", progress.elapsed().as_secs_f64());
            }
            print_hosts(&report.record);
            if let Some(health) = &report.health {
                if !health.healthy() {
                    return Err(CliError::Setup(format!(
                        "testbed unhealthy: {}",
                        health.failures().join("; ")
                    )));
                }
                println!("health: all {} checks pass", health.checks.len());
            }
            for (what, path) in &report.outputs {
                println!("{what}: {}", path.display());
            }
            let amqp_file = options.state_dir.join("amqp-url");
            if let Ok(url) = testbed::read_output(&amqp_file) {
                println!("tracer AMQP URL: {}", discover::redact_url(url.trim()));
            }
            if let Some(venv) = &report.record.client_venv {
                println!(
                    "openstack CLI: OS_CLIENT_CONFIG_FILE={} OS_CLOUD=butterfly {}/bin/openstack",
                    options_clouds(&report),
                    venv.display()
                );
            }
            Ok(Exit::Pass)
        }
        Command::Down { state } => {
            testbed::down(&state.state_dir, state.instance, &Progress::new(false))
                .map_err(setup_error)?;
            println!("testbed down: nothing left");
            Ok(Exit::Pass)
        }
        Command::Status { state } => {
            let (record, health) = testbed::status(&state.state_dir).map_err(setup_error)?;
            print_hosts(&record);
            match health {
                Some(health) => println!("healthy: all {} checks pass", health.checks.len()),
                None => println!("healthy: hosts-only, every host running with sshd"),
            }
            Ok(Exit::Pass)
        }
        Command::Discover {
            ssh,
            identity,
            known_hosts,
            out,
        } => super::discover::run_devstack(&ssh, identity, known_hosts, out),
    }
}

fn options_clouds(report: &testbed::UpReport) -> String {
    report
        .outputs
        .iter()
        .find(|(what, _)| what.starts_with("clouds.yaml"))
        .map(|(_, path)| path.display().to_string())
        .unwrap_or_default()
}

fn print_hosts(record: &testbed::Record) {
    for host in &record.topology.hosts {
        println!(
            "  {:<12} {:<12} {}",
            host.name,
            host.address,
            host.role.as_str()
        );
    }
}
