//! `butterfly discover`: the inventory of a real cloud, from a kolla-ansible or OpenStack-Ansible
//! deployment's own files (`--kolla`, `--osa`) or from a DevStack over SSH (`--ssh`, also
//! reachable as `butterfly testbed discover`).

use std::path::{Path, PathBuf};

use testbed::discover::{self as devstack, DiscoverOptions};
use testbed::import::{self, BrokerSource, DeployerFiles, ImportOptions, Imported};

use crate::exit::{CliError, Exit};

const EXAMPLES: &str = "\
Examples:
  butterfly discover --kolla /etc/kolla/multinode --globals /etc/kolla/globals.yml \\
      --passwords /etc/kolla/passwords.yml --out kolla/
  ansible-inventory -i multinode --list > inventory.json
  butterfly discover --kolla inventory.json --globals /etc/kolla/globals.yml
  butterfly discover --osa /etc/openstack_deploy/openstack_inventory.json \\
      --passwords /etc/openstack_deploy/user_secrets.yml --out osa/
  butterfly discover --ssh stack@10.0.0.5,10.0.0.6 --identity ~/.ssh/id_ed25519 --out devstack/";

/// Build the inventory of a kolla-ansible, OpenStack-Ansible or DevStack cloud.
///
/// kolla and OSA are read from their own files (nothing is logged in to); DevStack is discovered
/// over SSH. The inventory is printed, or written with `tracing.yaml` (the campaign's tracing
/// section: one firehose capture per broker vhost) into --out. Secrets stay in the deployer's
/// secrets file: it is only checked to hold the broker password, which is never copied.
#[derive(Debug, clap::Args)]
#[command(
    after_help = EXAMPLES,
    group(clap::ArgGroup::new("layout").required(true).args(["kolla", "osa", "ssh"]))
)]
pub struct Args {
    /// kolla-ansible: its Ansible inventory (INI as shipped, e.g. `multinode`, or the JSON of
    /// `ansible-inventory --list`).
    #[arg(long, value_name = "INVENTORY")]
    pub kolla: Option<PathBuf>,
    /// OpenStack-Ansible: its generated `openstack_inventory.json`.
    #[arg(long, value_name = "INVENTORY.json")]
    pub osa: Option<PathBuf>,
    /// DevStack: USER@HOST[,HOST…] to log in to (a host may end in :PORT; a later USER@ changes
    /// the user).
    #[arg(long, value_name = "USER@HOST[,HOST…]")]
    pub ssh: Option<String>,
    /// kolla's `globals.yml` (engine, vhosts, TLS) or OSA's `user_variables.yml` (quorum
    /// queues, TLS).
    #[arg(long, value_name = "FILE", conflicts_with = "ssh")]
    pub globals: Option<PathBuf>,
    /// kolla's `passwords.yml` or OSA's `user_secrets.yml`: named in tracing.yaml, never copied.
    #[arg(long, value_name = "FILE", conflicts_with = "ssh")]
    pub passwords: Option<PathBuf>,
    /// Private key for the logins (written into the inventory; used by --ssh).
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// known_hosts file with the hosts' keys (written into the inventory; used by --ssh).
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Write the files into this directory instead of printing the inventory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs the command.
pub fn run(args: Args) -> Result<Exit, CliError> {
    if let Some(ssh) = args.ssh {
        return run_devstack(&ssh, args.identity, args.known_hosts, args.out);
    }
    let path_text = |p: &Option<PathBuf>, default: &str| {
        p.as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| default.to_owned())
    };
    let options = ImportOptions {
        identity: path_text(&args.identity, "~/.ssh/id_ed25519"),
        known_hosts: path_text(&args.known_hosts, "~/.ssh/known_hosts"),
    };
    // The campaign is run from elsewhere: the secrets file is named by its absolute path.
    let passwords = args.passwords.map(|p| std::path::absolute(&p).unwrap_or(p));
    let (layout, inventory, imported) = match (args.kolla, args.osa) {
        (Some(inventory), _) => {
            let files = DeployerFiles {
                inventory: inventory.clone(),
                globals: args.globals,
                passwords,
            };
            ("kolla", inventory, import::kolla::import(&files, &options))
        }
        (None, Some(inventory)) => {
            let files = DeployerFiles {
                inventory: inventory.clone(),
                globals: args.globals,
                passwords,
            };
            ("osa", inventory, import::osa::import(&files, &options))
        }
        (None, None) => unreachable!("clap requires one of --kolla, --osa, --ssh"),
    };
    let imported = imported.map_err(input_error)?;
    for note in &imported.notes {
        eprintln!("note: {note}");
    }
    let header = format!(
        "# Imported by `butterfly discover --{layout}` from {}.\n",
        inventory.display()
    );
    let yaml = imported.inventory.to_yaml().map_err(input_error)?;
    let tracing = tracing_yaml(&imported.brokers);
    match args.out {
        Some(dir) => {
            write(&dir, "inventory.yaml", &format!("{header}{yaml}"), 0o644)?;
            write(&dir, "tracing.yaml", &tracing, 0o644)?;
            println!(
                "wrote {} ({} hosts, {} services) and {} ({} broker vhosts)",
                dir.join("inventory.yaml").display(),
                imported.inventory.hosts.len(),
                imported.inventory.services.len(),
                dir.join("tracing.yaml").display(),
                imported.brokers.len()
            );
        }
        None => {
            print!("{header}{yaml}");
            eprint!("{tracing}");
        }
    }
    warn_without_secrets(&imported);
    Ok(Exit::Pass)
}

fn warn_without_secrets(imported: &Imported) {
    if imported
        .brokers
        .iter()
        .any(|broker| broker.password_file.is_none())
    {
        eprintln!(
            "note: no --passwords: tracing.yaml names no secrets file; give the deployer's \
             (kolla passwords.yml, OSA user_secrets.yml) to trace the broker"
        );
    }
}

/// The campaign's tracing section for the brokers: one firehose capture per vhost, each naming
/// the secrets file and key of its password (no password is ever written).
pub fn tracing_yaml(brokers: &[BrokerSource]) -> String {
    let mut text = String::from(
        "# The tracing section for a campaign on this cloud: one firehose capture per broker\n\
         # vhost, merged into one trace. The passwords stay in the deployer's secrets file.\n\
         tracing:\n  amqp:\n",
    );
    if brokers.is_empty() {
        text.push_str("  # no broker found\n  []\n");
    }
    for broker in brokers {
        text.push_str(&format!("  - url: {}\n", yaml_string(&broker.url)));
        if let Some(file) = &broker.password_file {
            text.push_str(&format!(
                "    password_file: {}\n    password_key: {}\n",
                yaml_string(&file.display().to_string()),
                yaml_string(&broker.password_key)
            ));
        }
    }
    text
}

/// A YAML double-quoted string.
fn yaml_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// `discover --ssh` and `testbed discover`: log in to a DevStack and build its inventory.
pub fn run_devstack(
    ssh: &str,
    identity: Option<PathBuf>,
    known_hosts: Option<PathBuf>,
    out: Option<PathBuf>,
) -> Result<Exit, CliError> {
    let targets = devstack::parse_targets(ssh).map_err(input_error)?;
    let found = testbed::discover(&DiscoverOptions {
        targets,
        identity,
        known_hosts,
    })
    .map_err(setup_error)?;
    let yaml = found.inventory.to_yaml().map_err(setup_error)?;
    match out {
        Some(dir) => {
            write(&dir, "inventory.yaml", &yaml, 0o644)?;
            if let Some(url) = &found.amqp_url {
                write(&dir, "amqp-url", &format!("{url}\n"), 0o600)?;
                println!("amqp-url: {}", devstack::redact_url(url));
            }
            if let Some(clouds) = &found.clouds_yaml {
                write(&dir, "clouds.yaml", clouds, 0o600)?;
            }
            println!("wrote {}", dir.join("inventory.yaml").display());
        }
        None => print!("{yaml}"),
    }
    Ok(Exit::Pass)
}

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&path, text))
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)))
        .map_err(|e| CliError::Setup(format!("{}: {e}", path.display())))
}

/// A deployer file that cannot be read or understood is invalid input (exit 2).
fn input_error(error: testbed::Error) -> CliError {
    CliError::InvalidInput(error.to_string())
}

/// Maps a testbed error to the CLI's: invalid input exits 2, everything else is a setup error (3).
pub fn setup_error(error: testbed::Error) -> CliError {
    match error {
        testbed::Error::Invalid(_) | testbed::Error::Located(_) => {
            CliError::InvalidInput(error.to_string())
        }
        other => CliError::Setup(other.to_string()),
    }
}
