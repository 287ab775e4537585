//! OpenStack-Ansible: services run as systemd units inside LXC containers
//! (`<host>-<component>-container-<8 hex>`) on physical hosts, each container with its own
//! address; a service deployed "on metal" (nova-compute) runs on the host itself. The inventory is
//! the `openstack_inventory.json` OSA's generator writes: groups of container (or host) names and
//! `_meta.hostvars` with `physical_host`, `container_name` and the addresses. Unit names, groups
//! and ports are those of OSA's roles (`os_nova` `nova_services`, …); each service has its own
//! RabbitMQ vhost and user (`nova_oslomsg_rpc_vhost`, `nova_oslomsg_rpc_userid`), the vhost `nova`
//! with quorum queues (OSA's default, `oslomsg_rabbit_quorum_queues`) and `/nova` without.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::ansible::AnsibleInventory;
use crate::error::{Error, Result};
use crate::import::{
    BrokerSource, DeployerFiles, ImportOptions, Imported, YamlVars, broker_url, check_secret_key,
    host_entry, read_inventory, safe_name,
};
use crate::inventory::{Inventory, InventoryService, LxcRuntime, VERSION};

/// One logical service as OSA deploys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsaService {
    /// Butterfly's canonical name.
    pub name: &'static str,
    /// The inventory group of the containers (or hosts) it runs in.
    pub group: &'static str,
    /// The systemd unit inside.
    pub unit: &'static str,
    /// OSA's default ports.
    pub ports: &'static [u16],
    /// The OSA project whose vhost and RabbitMQ user it uses, if it talks RPC.
    pub project: Option<&'static str>,
}

/// The logical services and OSA's names for them.
pub const SERVICES: &[OsaService] = &[
    OsaService {
        // keystone_use_uwsgi defaults to false: keystone runs under Apache's mod_wsgi.
        name: "keystone",
        group: "keystone",
        unit: "apache2",
        ports: &[5000],
        project: Some("keystone"),
    },
    OsaService {
        name: "placement-api",
        group: "placement_api",
        unit: "placement-api",
        ports: &[8780],
        project: None,
    },
    OsaService {
        name: "glance-api",
        group: "glance_api",
        unit: "glance-api",
        ports: &[9292],
        project: Some("glance"),
    },
    OsaService {
        name: "neutron-api",
        group: "neutron_server",
        unit: "neutron-server",
        ports: &[9696],
        project: Some("neutron"),
    },
    OsaService {
        name: "nova-api",
        group: "nova_api_os_compute",
        unit: "nova-api-os-compute",
        ports: &[8774],
        project: Some("nova"),
    },
    OsaService {
        name: "nova-conductor",
        group: "nova_conductor",
        unit: "nova-conductor",
        ports: &[],
        project: Some("nova"),
    },
    OsaService {
        name: "nova-scheduler",
        group: "nova_scheduler",
        unit: "nova-scheduler",
        ports: &[],
        project: Some("nova"),
    },
    OsaService {
        name: "nova-compute",
        group: "nova_compute",
        unit: "nova-compute",
        ports: &[],
        project: Some("nova"),
    },
    OsaService {
        name: "rabbitmq",
        group: "rabbitmq",
        unit: "rabbitmq-server",
        ports: &[5672],
        project: None,
    },
    OsaService {
        name: "mariadb",
        group: "galera",
        unit: "mariadb",
        ports: &[3306],
        project: None,
    },
];

/// OSA's host groups and the Butterfly roles they give a physical host.
const ROLE_GROUPS: &[(&str, &str)] = &[
    ("shared_infra_hosts", "controller"),
    ("os_infra_hosts", "controller"),
    ("compute_hosts", "compute"),
    ("network_hosts", "network"),
    ("network_infra_hosts", "network"),
    ("network_agent_hosts", "network"),
    ("network_gateway_hosts", "network"),
    ("storage_hosts", "storage"),
    ("log_hosts", "monitoring"),
];

/// The physical host of an inventory entry (itself for a host or a service on metal).
fn physical_host<'a>(ansible: &'a AnsibleInventory, entry: &'a str) -> &'a str {
    match ansible
        .hostvars
        .get(entry)
        .and_then(|v| v.get("physical_host"))
    {
        Some(Value::String(host)) => host,
        _ => entry,
    }
}

/// The address of an entry: `ansible_host`, else `container_address` (older OSA), else
/// `management_address`.
fn address_of(ansible: &AnsibleInventory, entry: &str) -> Option<String> {
    ["ansible_host", "container_address", "management_address"]
        .iter()
        .find_map(|key| ansible.var_text(entry, key))
}

/// Imports an OpenStack-Ansible deployment.
pub fn import(files: &DeployerFiles, options: &ImportOptions) -> Result<Imported> {
    let ansible = read_inventory(&files.inventory)?;
    let variables = match &files.globals {
        Some(path) => YamlVars::read(path)?,
        None => YamlVars::default(),
    };
    let quorum = match variables.flag("oslomsg_rabbit_quorum_queues")? {
        Some(flag) => flag,
        None => variables
            .flag("rabbitmq_queue_replication")?
            .unwrap_or(true),
    };
    let tls = variables.flag("oslomsg_rpc_use_ssl")?.unwrap_or(false);
    let mut notes = Vec::new();

    // Physical hosts: every host that is its own physical host, in inventory order.
    let physical: Vec<&String> = ansible
        .host_order
        .iter()
        .filter(|entry| {
            ansible
                .hostvars
                .get(*entry)
                .is_some_and(|v| v.contains_key("physical_host"))
                && physical_host(&ansible, entry) == entry.as_str()
        })
        .collect();
    if physical.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no entry has `physical_host`; is it OSA's openstack_inventory.json?",
            files.inventory.display()
        )));
    }
    let mut hosts = Vec::new();
    for name in &physical {
        let roles: Vec<String> = ROLE_GROUPS
            .iter()
            .filter(|(group, _)| ansible.hosts_of(group).contains(*name))
            .map(|(_, role)| (*role).to_owned())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let fallback = ansible.var_text(name, "physical_host_addr");
        hosts.push(host_entry(&ansible, name, fallback, roles, options)?);
    }

    let vhost_of = |project: &str| {
        if quorum {
            project.to_owned()
        } else {
            format!("/{project}")
        }
    };
    let mut services = Vec::new();
    for service in SERVICES {
        let members = ansible.hosts_of(service.group);
        if members.is_empty() {
            notes.push(format!(
                "{}: group `{}` has no member; {} is left out",
                files.inventory.display(),
                service.group,
                service.name
            ));
            continue;
        }
        let mut on_metal = Vec::new();
        let mut containers = BTreeMap::new();
        for member in &members {
            let host = physical_host(&ansible, member);
            if host == member {
                on_metal.push(host.to_owned());
                continue;
            }
            if !safe_name(member) || !safe_name(host) {
                return Err(Error::Invalid(format!(
                    "{}: container {} on {}: names may hold letters, digits, `_`, `.` and `-`",
                    files.inventory.display(),
                    userinput::echo::quoted(member),
                    userinput::echo::quoted(host)
                )));
            }
            if containers.insert(host.to_owned(), member.clone()).is_some() {
                notes.push(format!(
                    "{}: {} has several containers on {host}; the last one is kept",
                    files.inventory.display(),
                    service.name
                ));
            }
        }
        let vhost = service.project.map(vhost_of);
        let ports = service.ports.to_vec();
        let entry = if containers.is_empty() {
            InventoryService {
                vhost,
                hosts: on_metal,
                function: crate::inventory::function_of(service.name),
                ..InventoryService::unit(service.name, service.unit, None, Vec::new(), ports)
            }
        } else {
            if !on_metal.is_empty() {
                notes.push(format!(
                    "{} runs in containers and on metal ({}); only the containers are kept",
                    service.name,
                    on_metal.join(", ")
                ));
            }
            InventoryService {
                name: service.name.to_owned(),
                unit: None,
                container: None,
                hosts: containers.keys().cloned().collect(),
                lxc: Some(LxcRuntime {
                    unit: service.unit.to_owned(),
                    containers,
                }),
                process: None,
                function: crate::inventory::function_of(service.name),
                roles: Vec::new(),
                ports,
                vhost,
            }
        };
        services.push(entry);
    }

    // One source per vhost, with that project's user; the broker is the first rabbitmq member.
    let mut brokers = Vec::new();
    let broker = ansible
        .hosts_of("rabbitmq")
        .first()
        .and_then(|entry| address_of(&ansible, entry));
    match broker {
        Some(address) => {
            let projects: BTreeSet<&str> = services
                .iter()
                .filter_map(|s| SERVICES.iter().find(|o| o.name == s.name)?.project)
                .collect();
            for project in projects {
                let key = format!("{project}_oslomsg_rpc_password");
                if let Some(path) = &files.passwords {
                    check_secret_key(path, &key)?;
                }
                let vhost = vhost_of(project);
                brokers.push(BrokerSource {
                    url: broker_url(
                        tls,
                        project,
                        &address,
                        if tls { 5671 } else { 5672 },
                        &vhost,
                    ),
                    vhost,
                    password_file: files.passwords.clone(),
                    password_key: key,
                });
            }
        }
        None => notes.push("no rabbitmq member with an address: nothing to trace".to_owned()),
    }
    Ok(Imported {
        inventory: Inventory {
            version: VERSION,
            hosts,
            services,
        },
        brokers,
        notes,
    })
}
