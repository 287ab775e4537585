//! DevStack discovery: the same inventory as `up` writes, built over SSH from a real DevStack. Each
//! host runs one read-only script (its hostname, the `devstack@*`, `mariadb` and
//! `rabbitmq-server` units, the listening TCP sockets and the units owning them, nova's
//! `transport_url`, `/etc/openstack/clouds.yaml`); parsing is pure and unit-tested.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;

use crate::error::{Error, Result, step_failed};
use crate::inventory::{
    CANONICAL_SERVICES, Inventory, InventoryHost, InventoryService, SshAccess, VERSION,
};
use crate::sys;
use crate::topology::Role;

/// Ports a unit listens on that are internal plumbing, not a service endpoint (Erlang
/// distribution of RabbitMQ).
const INTERNAL_PORTS: &[u16] = &[25672];

/// The script each host runs. Read-only; sections are separated by `@@name` lines.
const SCRIPT: &str = r#"echo @@hostname; hostname
echo @@units; systemctl list-units --all --plain --no-legend --no-pager --type=service 'devstack@*' mariadb.service rabbitmq-server.service
echo @@listen; ss -Hltnp 2>/dev/null
echo @@pids; for p in $(ss -Hltnp 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do echo "$p $(grep -o '[^/]*\.service' /proc/$p/cgroup 2>/dev/null | head -n1)"; done
echo @@transport; grep -hE '^[[:space:]]*transport_url[[:space:]]*=' /etc/nova/nova.conf /etc/nova/nova-cpu.conf 2>/dev/null | head -n1
echo @@clouds; cat /etc/openstack/clouds.yaml 2>/dev/null
echo @@end
"#;

/// One `USER@HOST[:PORT]` to log in to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// Login user.
    pub user: String,
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// Parses `USER@HOST[,HOST…]`: the user applies to every host that does not name its own
/// (`USER@H1,OTHER@H2,H3`); a host may end in `:PORT`.
pub fn parse_targets(spec: &str) -> Result<Vec<SshTarget>> {
    let mut targets = Vec::new();
    let mut user: Option<String> = None;
    for (index, item) in spec.split(',').map(str::trim).enumerate() {
        let (item_user, rest) = match item.split_once('@') {
            Some((u, rest)) => (Some(u.to_owned()), rest),
            None => (None, item),
        };
        if let Some(u) = item_user {
            user = Some(u);
        }
        let user = user.clone().ok_or_else(|| {
            Error::Invalid(format!(
                "--ssh item {} `{item}`: no USER@ before it",
                index + 1
            ))
        })?;
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>().map_err(|_| {
                    Error::Invalid(format!("--ssh item {} `{item}`: bad port `{p}`", index + 1))
                })?,
            ),
            None => (rest, 22),
        };
        let user_ok = !user.is_empty()
            && user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        let host_ok = !host.is_empty()
            && !host.starts_with('-')
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-".contains(c));
        if !user_ok || !host_ok {
            return Err(Error::Invalid(format!(
                "--ssh item {} `{item}`: expected USER@HOST with letters, digits, `.`, `-`, `_`",
                index + 1
            )));
        }
        targets.push(SshTarget {
            user,
            host: host.to_owned(),
            port,
        });
    }
    Ok(targets)
}

/// Options of `discover`.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    /// The hosts to log in to.
    pub targets: Vec<SshTarget>,
    /// Private key (`-i`).
    pub identity: Option<PathBuf>,
    /// known_hosts file; host keys are always verified.
    pub known_hosts: Option<PathBuf>,
}

/// What discovery found.
#[derive(Debug, Clone)]
pub struct Discovered {
    /// The inventory.
    pub inventory: Inventory,
    /// The AMQP URL from nova's `transport_url` (holds a password: never log it).
    pub amqp_url: Option<String>,
    /// `/etc/openstack/clouds.yaml` from the first host that has it.
    pub clouds_yaml: Option<String>,
}

/// One host's script output, parsed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// `hostname`.
    pub hostname: String,
    /// Active (or failed, i.e. meant to run) units, without `.service`.
    pub units: BTreeSet<String>,
    /// Listening TCP ports per unit.
    pub ports: BTreeMap<String, BTreeSet<u16>>,
    /// nova's transport_url.
    pub transport_url: Option<String>,
    /// clouds.yaml text.
    pub clouds_yaml: Option<String>,
}

fn sections(output: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in output.lines() {
        if let Some(name) = line.strip_prefix("@@") {
            current = Some(name.trim().to_owned());
            continue;
        }
        if let Some(name) = &current {
            let entry: &mut String = map.entry(name.clone()).or_default();
            entry.push_str(line);
            entry.push('\n');
        }
    }
    map
}

/// Parses the discovery script's output.
pub fn parse_host_facts(output: &str) -> Result<HostFacts> {
    let sections = sections(output);
    if !sections.contains_key("end") && !output.contains("@@end") {
        return Err(Error::Invalid(
            "discovery script output is truncated".to_owned(),
        ));
    }
    let get = |name: &str| sections.get(name).cloned().unwrap_or_default();
    let mut facts = HostFacts {
        hostname: get("hostname").trim().to_owned(),
        ..HostFacts::default()
    };
    for line in get("units").lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [unit, load, active, ..] = fields.as_slice() else {
            continue;
        };
        let running = matches!(
            *active,
            "active" | "activating" | "reloading" | "deactivating" | "failed"
        );
        if *load == "loaded" && running {
            facts
                .units
                .insert(unit.trim_end_matches(".service").to_owned());
        }
    }
    let mut pid_units: BTreeMap<u32, String> = BTreeMap::new();
    for line in get("pids").lines() {
        let mut parts = line.split_whitespace();
        if let (Some(pid), Some(unit)) = (parts.next(), parts.next())
            && let Ok(pid) = pid.parse::<u32>()
        {
            pid_units.insert(pid, unit.trim_end_matches(".service").to_owned());
        }
    }
    for line in get("listen").lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(local) = fields.get(3) else { continue };
        let Some(port) = local.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()) else {
            continue;
        };
        for pid in line.split("pid=").skip(1).filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u32>()
                .ok()
        }) {
            if let Some(unit) = pid_units.get(&pid) {
                facts.ports.entry(unit.clone()).or_default().insert(port);
            }
        }
    }
    facts.transport_url = get("transport").lines().find_map(|line| {
        let (_, value) = line.split_once('=')?;
        let value = value.trim();
        (!value.is_empty()).then(|| value.to_owned())
    });
    let clouds = get("clouds");
    facts.clouds_yaml = (!clouds.trim().is_empty()).then_some(clouds);
    Ok(facts)
}

/// An oslo.messaging `rabbit://` transport URL as an AMQP URL.
pub fn amqp_from_transport(url: &str) -> String {
    let first = url.split(',').next().unwrap_or(url);
    match first.strip_prefix("rabbit://") {
        Some(rest) => format!("amqp://{rest}"),
        None => first.to_owned(),
    }
}

/// Replaces a broker host name that is one of the inventory's hosts by that host's address: the
/// hosts resolve each other through `/etc/hosts`, the runner may not.
pub fn with_host_addresses(url: &str, inventory: &Inventory) -> String {
    let Some((head, rest)) = url.rsplit_once('@') else {
        return url.to_owned();
    };
    let host_end = rest.find([':', '/']).unwrap_or(rest.len());
    let (host, tail) = rest.split_at(host_end);
    match inventory.hosts.iter().find(|h| h.name == host) {
        Some(found) => format!("{head}@{}{tail}", found.address),
        None => url.to_owned(),
    }
}

/// A URL with its password shown as `***`, for logs (the workspace's one redaction).
pub use userinput::echo::redact_url;

/// Builds the inventory from each host's facts (in target order).
pub fn build_inventory(
    hosts: &[(SshTarget, HostFacts)],
    identity: &str,
    known_hosts: &str,
) -> Inventory {
    let role_of = |facts: &HostFacts| {
        let mut roles = Vec::new();
        let has = |role: Role| {
            CANONICAL_SERVICES
                .iter()
                .any(|s| s.role == role && facts.units.contains(s.unit))
        };
        if has(Role::Controller) {
            roles.push(Role::Controller.as_str().to_owned());
        }
        if has(Role::Compute) {
            roles.push(Role::Compute.as_str().to_owned());
        }
        roles
    };
    let inventory_hosts = hosts
        .iter()
        .map(|(target, facts)| InventoryHost {
            name: if facts.hostname.is_empty() {
                target.host.clone()
            } else {
                facts.hostname.clone()
            },
            address: target.host.clone(),
            roles: role_of(facts),
            ssh: SshAccess {
                user: target.user.clone(),
                port: target.port,
                identity: identity.to_owned(),
                known_hosts: known_hosts.to_owned(),
                sudo: target.user != "root",
            },
        })
        .collect();
    let mut services = Vec::new();
    for service in CANONICAL_SERVICES {
        let running: Vec<&HostFacts> = hosts
            .iter()
            .map(|(_, facts)| facts)
            .filter(|facts| facts.units.contains(service.unit))
            .collect();
        if running.is_empty() {
            continue;
        }
        let ports: BTreeSet<u16> = running
            .iter()
            .filter_map(|facts| facts.ports.get(service.unit))
            .flatten()
            .copied()
            .filter(|p| !INTERNAL_PORTS.contains(p))
            .collect();
        services.push(InventoryService {
            function: service.function.map(str::to_owned),
            ..InventoryService::unit(
                service.name,
                service.unit,
                service.process,
                vec![service.role.as_str().to_owned()],
                ports.into_iter().collect(),
            )
        });
    }
    Inventory {
        version: VERSION,
        hosts: inventory_hosts,
        services,
    }
}

/// Logs in to every target and builds the inventory.
pub fn discover(options: &DiscoverOptions) -> Result<Discovered> {
    if options.targets.is_empty() {
        return Err(Error::Invalid("--ssh names no host".to_owned()));
    }
    let mut facts = Vec::new();
    for target in &options.targets {
        facts.push((target.clone(), host_facts(target, options)?));
    }
    let path_text = |p: &Option<PathBuf>, default: &str| {
        p.as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|| default.to_owned())
    };
    let inventory = build_inventory(
        &facts,
        &path_text(&options.identity, "~/.ssh/id_ed25519"),
        &path_text(&options.known_hosts, "~/.ssh/known_hosts"),
    );
    let amqp_url = facts
        .iter()
        .find_map(|(_, f)| f.transport_url.as_deref())
        .map(amqp_from_transport)
        .map(|url| with_host_addresses(&url, &inventory));
    if let Some(url) = &amqp_url {
        tracing::info!(url = %redact_url(url), "AMQP URL from nova's transport_url");
    }
    let clouds_yaml = facts.iter().find_map(|(_, f)| f.clouds_yaml.clone());
    Ok(Discovered {
        inventory,
        amqp_url,
        clouds_yaml,
    })
}

fn host_facts(target: &SshTarget, options: &DiscoverOptions) -> Result<HostFacts> {
    let step = format!("discover {}@{}", target.user, target.host);
    let mut command = sys::clean_command("ssh");
    command.args([
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ControlMaster=no",
        "-o",
        "ControlPath=none",
        "-o",
        "ConnectTimeout=10",
        "-o",
        "LogLevel=ERROR",
        "-p",
        &target.port.to_string(),
    ]);
    if let Some(identity) = &options.identity {
        command
            .arg("-i")
            .arg(identity)
            .args(["-o", "IdentitiesOnly=yes"]);
    }
    if let Some(known_hosts) = &options.known_hosts {
        command
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()));
    }
    // The sockets and cgroups of other users' processes are only visible to root.
    let remote = if target.user == "root" {
        "sh -s"
    } else {
        "sudo -n sh -s"
    };
    command
        .arg(format!("{}@{}", target.user, target.host))
        .arg(remote)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| step_failed(&step, format!("cannot run ssh: {e}")))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(SCRIPT.as_bytes())
        .map_err(|e| step_failed(&step, format!("writing the script: {e}")))?;
    let output = child
        .wait_with_output()
        .map_err(|e| step_failed(&step, format!("ssh: {e}")))?;
    if !output.status.success() {
        return Err(step_failed(&step, sys::failure_text(&command, &output)));
    }
    parse_host_facts(&String::from_utf8_lossy(&output.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTROLLER: &str = "@@hostname\ncontroller\n@@units\n\
devstack@keystone.service loaded active running Devstack devstack@keystone.service\n\
devstack@n-api.service loaded active running Devstack devstack@n-api.service\n\
devstack@n-cpu.service loaded inactive dead Devstack devstack@n-cpu.service\n\
mariadb.service loaded active running MariaDB 10.11.14 database server\n\
rabbitmq-server.service loaded active running RabbitMQ Messaging Server\n\
@@listen\n\
LISTEN 0 2048 0.0.0.0:5000 0.0.0.0:* users:((\"gunicorn\",pid=210,fd=5),(\"gunicorn\",pid=205,fd=5))\n\
LISTEN 0 2048 0.0.0.0:8774 0.0.0.0:* users:((\"gunicorn\",pid=300,fd=5))\n\
LISTEN 0 80 127.0.0.1:3306 0.0.0.0:* users:((\"mariadbd\",pid=90,fd=20))\n\
LISTEN 0 128 [::]:5672 [::]:* users:((\"beam.smp\",pid=120,fd=40))\n\
LISTEN 0 128 0.0.0.0:25672 0.0.0.0:* users:((\"beam.smp\",pid=120,fd=17))\n\
LISTEN 0 128 0.0.0.0:22 0.0.0.0:* users:((\"sshd\",pid=50,fd=3))\n\
@@pids\n50 ssh.service\n90 mariadb.service\n120 rabbitmq-server.service\n205 devstack@keystone.service\n\
210 devstack@keystone.service\n300 devstack@n-api.service\n\
@@transport\ntransport_url = rabbit://openstack:SECRET@10.77.0.2:5672/\n\
@@clouds\nclouds:\n  butterfly: {}\n@@end\n";

    #[test]
    fn host_facts_are_parsed_from_the_script_output() {
        let facts = parse_host_facts(CONTROLLER).unwrap();
        assert_eq!(facts.hostname, "controller");
        assert!(facts.units.contains("devstack@keystone"));
        assert!(
            !facts.units.contains("devstack@n-cpu"),
            "inactive units do not run there"
        );
        assert_eq!(facts.ports["devstack@keystone"], BTreeSet::from([5000]));
        assert_eq!(
            facts.ports["rabbitmq-server"],
            BTreeSet::from([5672, 25672])
        );
        assert_eq!(facts.ports["mariadb"], BTreeSet::from([3306]));
        assert_eq!(
            facts.transport_url.as_deref(),
            Some("rabbit://openstack:SECRET@10.77.0.2:5672/")
        );
        assert!(facts.clouds_yaml.unwrap().contains("butterfly"));
    }

    #[test]
    fn truncated_output_is_an_error() {
        assert!(parse_host_facts("@@hostname\nx\n").is_err());
    }

    #[test]
    fn inventory_takes_roles_and_ports_from_what_runs() {
        let controller = parse_host_facts(CONTROLLER).unwrap();
        let compute = parse_host_facts(
            "@@hostname\ncompute1\n@@units\n\
             devstack@n-cpu.service loaded active running Devstack devstack@n-cpu.service\n\
             mariadb.service loaded inactive dead MariaDB\n@@listen\n@@pids\n@@transport\n@@clouds\n@@end\n",
        )
        .unwrap();
        let target = |host: &str| SshTarget {
            user: "root".into(),
            host: host.into(),
            port: 22,
        };
        let inventory = build_inventory(
            &[
                (target("10.77.0.2"), controller),
                (target("10.77.0.3"), compute),
            ],
            "/id",
            "/kh",
        );
        assert_eq!(inventory.hosts[0].roles, ["controller"]);
        assert_eq!(inventory.hosts[1].roles, ["compute"]);
        assert_eq!(inventory.hosts[1].name, "compute1");
        assert!(!inventory.hosts[1].ssh.sudo);
        let names: Vec<&str> = inventory.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "keystone",
                "nova-api",
                "nova-compute",
                "rabbitmq",
                "mariadb"
            ]
        );
        let rabbit = inventory
            .services
            .iter()
            .find(|s| s.name == "rabbitmq")
            .unwrap();
        assert_eq!(
            rabbit.ports,
            [5672],
            "the Erlang distribution port is not an endpoint"
        );
        assert_eq!(rabbit.process.as_deref(), Some("beam.smp"));
    }

    #[test]
    fn targets_share_the_first_user_and_accept_ports() {
        let targets = parse_targets("stack@10.0.0.1,10.0.0.2:2222,admin@h3").unwrap();
        assert_eq!(
            targets[1],
            SshTarget {
                user: "stack".into(),
                host: "10.0.0.2".into(),
                port: 2222
            }
        );
        assert_eq!(targets[2].user, "admin");
        assert!(parse_targets("10.0.0.1").is_err());
        assert!(parse_targets("root@-oProxyCommand=x").is_err());
        assert!(parse_targets("root@h;rm").is_err());
        assert!(parse_targets("root@h:99999").is_err());
    }

    #[test]
    fn broker_host_names_are_replaced_by_inventory_addresses() {
        let controller = parse_host_facts(CONTROLLER).unwrap();
        let target = SshTarget {
            user: "root".into(),
            host: "10.77.0.2".into(),
            port: 22,
        };
        let inventory = build_inventory(&[(target, controller)], "/id", "/kh");
        assert_eq!(
            with_host_addresses("amqp://u:p@controller:5672/", &inventory),
            "amqp://u:p@10.77.0.2:5672/"
        );
        assert_eq!(
            with_host_addresses("amqp://u:p@elsewhere:5672/", &inventory),
            "amqp://u:p@elsewhere:5672/"
        );
    }

    #[test]
    fn transport_urls_become_amqp_urls_and_are_redacted_for_logs() {
        let url = amqp_from_transport("rabbit://openstack:pw@10.0.0.1:5672/,rabbit://x:y@h2:5672/");
        assert_eq!(url, "amqp://openstack:pw@10.0.0.1:5672/");
        assert_eq!(redact_url(&url), "amqp://openstack:***@10.0.0.1:5672/");
        assert_eq!(redact_url("amqp://h:5672/"), "amqp://h:5672/");
    }
}
