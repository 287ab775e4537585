//! kolla-ansible: one container per service, named as kolla's role defaults name it
//! (`ansible/roles/*/defaults/main.yml`, `container_name`), supervised by the systemd unit
//! `kolla-<container>-container.service` (`ansible/module_utils/kolla_systemd_worker.py`), with
//! host networking. Where each runs is the inventory group kolla's roles deploy it to; the ports
//! are kolla's defaults (`ansible/group_vars/all/*.yml`), or the `*_port` variables of
//! `globals.yml` that move them; the engine is `kolla_container_engine`
//! (default `docker`) and the vhost `om_rpc_vhost` (default `/`) from `globals.yml`.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::import::{
    BrokerSource, DeployerFiles, ImportOptions, Imported, YamlVars, broker_url, check_secret_key,
    host_entry, read_inventory,
};
use crate::inventory::{ContainerRuntime, Inventory, InventoryService, VERSION};

/// One logical service as kolla deploys it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KollaService {
    /// Butterfly's canonical name.
    pub name: &'static str,
    /// The inventory group kolla deploys it to.
    pub group: &'static str,
    /// kolla's container name.
    pub container: &'static str,
    /// kolla's default listen ports.
    pub ports: &'static [u16],
    /// The `globals.yml` variable that moves its port, when kolla has one (`placement_api_port`).
    pub port_var: Option<&'static str>,
    /// Whether it talks RPC over the broker (and so has a vhost).
    pub rpc: bool,
}

/// The logical services and kolla's names for them.
pub const SERVICES: &[KollaService] = &[
    KollaService {
        name: "keystone",
        group: "keystone",
        container: "keystone",
        ports: &[5000],
        port_var: Some("keystone_public_port"),
        rpc: false,
    },
    KollaService {
        name: "placement-api",
        group: "placement-api",
        container: "placement_api",
        ports: &[8780],
        port_var: Some("placement_api_port"),
        rpc: false,
    },
    KollaService {
        name: "glance-api",
        group: "glance-api",
        container: "glance_api",
        ports: &[9292],
        port_var: Some("glance_api_port"),
        rpc: false,
    },
    KollaService {
        name: "neutron-api",
        group: "neutron-server",
        container: "neutron_server",
        ports: &[9696],
        port_var: Some("neutron_server_port"),
        rpc: true,
    },
    KollaService {
        name: "nova-api",
        group: "nova-api",
        container: "nova_api",
        ports: &[8774],
        port_var: Some("nova_api_port"),
        rpc: true,
    },
    KollaService {
        name: "nova-conductor",
        group: "nova-conductor",
        container: "nova_conductor",
        ports: &[],
        port_var: None,
        rpc: true,
    },
    KollaService {
        name: "nova-scheduler",
        group: "nova-scheduler",
        container: "nova_scheduler",
        ports: &[],
        port_var: None,
        rpc: true,
    },
    KollaService {
        // nova-cell's `nova_cell_compute_group`.
        name: "nova-compute",
        group: "compute",
        container: "nova_compute",
        ports: &[],
        port_var: None,
        rpc: true,
    },
    KollaService {
        name: "cinder-api",
        group: "cinder-api",
        container: "cinder_api",
        ports: &[8776],
        port_var: Some("cinder_api_port"),
        rpc: true,
    },
    KollaService {
        name: "cinder-scheduler",
        group: "cinder-scheduler",
        container: "cinder_scheduler",
        ports: &[],
        port_var: None,
        rpc: true,
    },
    KollaService {
        name: "cinder-volume",
        group: "cinder-volume",
        container: "cinder_volume",
        ports: &[],
        port_var: None,
        rpc: true,
    },
    KollaService {
        name: "rabbitmq",
        group: "rabbitmq",
        container: "rabbitmq",
        ports: &[5672],
        port_var: Some("rabbitmq_port"),
        rpc: false,
    },
    KollaService {
        name: "mariadb",
        group: "mariadb",
        container: "mariadb",
        ports: &[3306],
        port_var: Some("database_port"),
        rpc: false,
    },
];

/// kolla's top-level groups and the Butterfly roles they give a host.
const ROLE_GROUPS: &[(&str, &str)] = &[
    ("control", "controller"),
    ("network", "network"),
    ("compute", "compute"),
    ("storage", "storage"),
    ("monitoring", "monitoring"),
];

/// The systemd unit kolla puts around a container.
pub fn supervising_unit(container: &str) -> String {
    format!("kolla-{container}-container.service")
}

/// Imports a kolla-ansible deployment.
pub fn import(files: &DeployerFiles, options: &ImportOptions) -> Result<Imported> {
    let ansible = read_inventory(&files.inventory)?;
    let globals = match &files.globals {
        Some(path) => YamlVars::read(path)?,
        None => YamlVars::default(),
    };
    let engine = globals
        .text("kolla_container_engine")?
        .unwrap_or_else(|| "docker".to_owned());
    if !matches!(engine.as_str(), "docker" | "podman") {
        return Err(globals.located(
            "kolla_container_engine",
            "names an engine kolla does not support",
            "kolla runs `docker` or `podman`",
        ));
    }
    let rpc_vhost = globals
        .text("om_rpc_vhost")?
        .unwrap_or_else(|| "/".to_owned());
    let notify_vhost = globals
        .text("om_notify_vhost")?
        .unwrap_or_else(|| rpc_vhost.clone());
    let user = globals
        .text("om_rpc_user")?
        .or(globals.text("rabbitmq_user")?)
        .unwrap_or_else(|| "openstack".to_owned());
    let tls = globals.flag("rabbitmq_enable_tls")?.unwrap_or(false);
    let mut notes = Vec::new();

    // Hosts: those of the role groups and of every service's group, in inventory order.
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for (group, _) in ROLE_GROUPS {
        wanted.extend(ansible.hosts_of(group));
    }
    for service in SERVICES {
        wanted.extend(ansible.hosts_of(service.group));
    }
    let mut hosts = Vec::new();
    for name in ansible.host_order.iter().filter(|h| wanted.contains(*h)) {
        let roles = ROLE_GROUPS
            .iter()
            .filter(|(group, _)| ansible.hosts_of(group).contains(name))
            .map(|(_, role)| (*role).to_owned())
            .collect();
        hosts.push(host_entry(&ansible, name, None, roles, options)?);
    }
    if hosts.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no host in kolla's groups ({}); is it a kolla-ansible inventory?",
            files.inventory.display(),
            ROLE_GROUPS
                .iter()
                .map(|(g, _)| *g)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }

    let mut services = Vec::new();
    for service in SERVICES {
        let on = ansible.hosts_of(service.group);
        if on.is_empty() {
            notes.push(format!(
                "{}: group `{}` has no host; {} is left out",
                files.inventory.display(),
                service.group,
                service.name
            ));
            continue;
        }
        let mut ports = service.ports.to_vec();
        if let Some(var) = service.port_var
            && let Some(port) = globals.text(var)?
        {
            ports = vec![port.parse::<u16>().map_err(|_| {
                globals.located(var, "is not a TCP port", "give a number from 1 to 65535")
            })?];
        }
        if service.name == "rabbitmq" && tls {
            ports = vec![5671];
        }
        services.push(InventoryService {
            name: service.name.to_owned(),
            unit: None,
            container: Some(ContainerRuntime {
                engine: engine.clone(),
                name: service.container.to_owned(),
                unit: Some(supervising_unit(service.container)),
            }),
            lxc: None,
            process: None,
            function: crate::inventory::function_of(service.name),
            roles: Vec::new(),
            hosts: on,
            ports,
            vhost: service.rpc.then(|| rpc_vhost.clone()),
        });
    }

    let mut brokers = Vec::new();
    let broker_host = services
        .iter()
        .find(|s| s.name == "rabbitmq")
        .and_then(|s| s.hosts.first())
        .and_then(|name| hosts.iter().find(|h| &h.name == name));
    match broker_host {
        Some(host) => {
            if let Some(path) = &files.passwords {
                check_secret_key(path, "rabbitmq_password")?;
            }
            let port = if tls { 5671 } else { 5672 };
            let vhosts: BTreeSet<&String> = [&rpc_vhost, &notify_vhost].into_iter().collect();
            for vhost in vhosts {
                brokers.push(BrokerSource {
                    url: broker_url(tls, &user, &host.address, port, vhost),
                    vhost: vhost.clone(),
                    password_file: files.passwords.clone(),
                    password_key: "rabbitmq_password".to_owned(),
                });
            }
        }
        None => notes.push("no rabbitmq host: nothing to trace".to_owned()),
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
