//! The inventory: the campaign format's testbed part (hosts, how to reach them, which services run
//! where). `up` generates it from the topology; `discover` builds it from a real DevStack. The
//! `scenarios` crate parses the same shape and rejects unknown fields, so this module emits exactly
//! that shape.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::topology::{Role, Topology};

/// The inventory format version.
pub const VERSION: u32 = 1;

/// The whole inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inventory {
    /// Format version (1).
    pub version: u32,
    /// The hosts.
    pub hosts: Vec<InventoryHost>,
    /// The services and where they run.
    pub services: Vec<InventoryService>,
}

/// One host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryHost {
    /// Host name.
    pub name: String,
    /// Address the runner connects to.
    pub address: String,
    /// Roles (`controller`, `compute`).
    pub roles: Vec<String>,
    /// How to log in.
    pub ssh: SshAccess,
}

/// SSH access to one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SshAccess {
    /// Login user.
    pub user: String,
    /// TCP port.
    pub port: u16,
    /// Private key file.
    pub identity: String,
    /// known_hosts file holding the host's real key.
    pub known_hosts: String,
    /// Whether privileged commands need `sudo`.
    pub sudo: bool,
}

/// One service. It runs as exactly one of: a systemd `unit` on its hosts (DevStack), a
/// `container` of a container engine (kolla-ansible), or a unit inside an `lxc` container on each
/// of its hosts (OpenStack-Ansible).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryService {
    /// Canonical name (`nova-conductor`, …).
    pub name: String,
    /// The systemd unit (`devstack@n-cond`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The container it runs in (kolla-ansible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerRuntime>,
    /// The LXC containers it runs in, one per physical host (OpenStack-Ansible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lxc: Option<LxcRuntime>,
    /// Exact process name (comm), when it identifies the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
    /// What it does in the cloud (`api`, `worker`, `database`, `broker`, `cache`, `agent`):
    /// the detection engine reads the database, the broker and the APIs from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    /// Roles of the hosts it runs on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Names of the hosts it runs on (instead of, or besides, roles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// TCP ports it listens on.
    pub ports: Vec<u16>,
    /// Its RabbitMQ vhost, when it is not the broker's `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vhost: Option<String>,
}

/// A service in a container of a container engine, with host networking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerRuntime {
    /// `docker` or `podman`.
    pub engine: String,
    /// The container's name (`nova_conductor`).
    pub name: String,
    /// The systemd unit supervising it (`kolla-nova_conductor-container.service`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// A service as a systemd unit inside LXC containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LxcRuntime {
    /// The unit inside the container (`nova-conductor`).
    pub unit: String,
    /// Physical host (inventory host name) -> the LXC container on it.
    pub containers: std::collections::BTreeMap<String, String>,
}

impl InventoryService {
    /// A service run by a systemd unit on the hosts of `roles`.
    pub fn unit(
        name: &str,
        unit: &str,
        process: Option<&str>,
        roles: Vec<String>,
        ports: Vec<u16>,
    ) -> Self {
        InventoryService {
            name: name.to_owned(),
            unit: Some(unit.to_owned()),
            container: None,
            lxc: None,
            process: process.map(str::to_owned),
            function: None,
            roles,
            hosts: Vec::new(),
            ports,
            vhost: None,
        }
    }
}

/// A service the framework knows by a canonical name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanonicalService {
    /// Canonical name, shared with the tracer and the fingerprints.
    pub name: &'static str,
    /// The systemd unit, without `.service`.
    pub unit: &'static str,
    /// The process name (comm, at most 15 bytes) when it is distinctive. oslo.service retitles
    /// its processes (`nova-conductor: …`), so the comm of conductor and scheduler ends in `:`;
    /// the gunicorn-served APIs all show `gunicorn: maste`/`gunicorn: worke` and get none.
    pub process: Option<&'static str>,
    /// What it does in the cloud (the inventory's `function:`), when it is one of the functions.
    pub function: Option<&'static str>,
    /// The role of the hosts it runs on.
    pub role: Role,
    /// The TCP ports it listens on in the testbed.
    pub ports: &'static [u16],
}

/// Every canonical service, in inventory order.
pub const CANONICAL_SERVICES: &[CanonicalService] = &[
    CanonicalService {
        name: "keystone",
        unit: "devstack@keystone",
        process: None,
        function: Some("api"),
        role: Role::Controller,
        ports: &[5000],
    },
    CanonicalService {
        name: "placement-api",
        unit: "devstack@placement-api",
        process: None,
        function: Some("api"),
        role: Role::Controller,
        ports: &[8778],
    },
    CanonicalService {
        name: "glance-api",
        unit: "devstack@g-api",
        process: None,
        function: Some("api"),
        role: Role::Controller,
        ports: &[9292],
    },
    CanonicalService {
        name: "neutron-api",
        unit: "devstack@q-svc",
        process: None,
        function: Some("api"),
        role: Role::Controller,
        ports: &[9696],
    },
    CanonicalService {
        name: "nova-api",
        unit: "devstack@n-api",
        process: None,
        function: Some("api"),
        role: Role::Controller,
        ports: &[8774],
    },
    CanonicalService {
        name: "nova-conductor",
        unit: "devstack@n-cond",
        process: Some("nova-conductor:"),
        function: Some("worker"),
        role: Role::Controller,
        ports: &[],
    },
    CanonicalService {
        name: "nova-scheduler",
        unit: "devstack@n-sch",
        process: Some("nova-scheduler:"),
        function: Some("worker"),
        role: Role::Controller,
        ports: &[],
    },
    CanonicalService {
        name: "nova-compute",
        unit: "devstack@n-cpu",
        process: Some("nova-compute"),
        function: Some("agent"),
        role: Role::Compute,
        ports: &[],
    },
    CanonicalService {
        name: "cinder-api",
        unit: "devstack@c-api",
        process: None,
        function: Some("api"),
        role: Role::Controller,
        ports: &[8776],
    },
    CanonicalService {
        name: "cinder-scheduler",
        unit: "devstack@c-sch",
        // The kernel cuts the comm `cinder-scheduler` to 15 bytes.
        process: Some("cinder-schedule"),
        function: Some("worker"),
        role: Role::Controller,
        ports: &[],
    },
    CanonicalService {
        name: "cinder-volume",
        unit: "devstack@c-vol",
        // A parent and one child per backend, both not retitled.
        process: Some("cinder-volume"),
        function: Some("worker"),
        role: Role::Controller,
        ports: &[],
    },
    CanonicalService {
        name: "rabbitmq",
        unit: "rabbitmq-server",
        process: Some("beam.smp"),
        function: Some("broker"),
        role: Role::Controller,
        ports: &[5672],
    },
    CanonicalService {
        name: "mariadb",
        unit: "mariadb",
        process: Some("mariadbd"),
        function: Some("database"),
        role: Role::Controller,
        ports: &[3306],
    },
    // The recording REST proxy (`butterfly trace`): the APIs' proxy ports
    // (`assets::PROXIED_APIS`) and the live record stream (`assets::RECORDS_PORT`, which
    // `butterfly run` subscribes to), sorted as `discover` lists ports.
    CanonicalService {
        name: REST_PROXY,
        unit: "devstack@rest-proxy",
        process: Some("butterfly"),
        function: None,
        role: Role::Controller,
        ports: &[18774, 18776, 18778, 19292, 19696, 19900],
    },
];

/// The canonical name of the recording REST proxy.
pub const REST_PROXY: &str = "rest-proxy";

/// Which services a testbed runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceSet {
    /// None: hosts only.
    None,
    /// OpenStack, with the API calls straight to the services.
    OpenStack,
    /// OpenStack with its API calls routed through the recording REST proxy.
    OpenStackWithRestProxy,
}

impl ServiceSet {
    /// The canonical services of this set, in inventory order.
    pub fn services(self) -> impl Iterator<Item = &'static CanonicalService> {
        CANONICAL_SERVICES.iter().filter(move |service| match self {
            ServiceSet::None => false,
            ServiceSet::OpenStack => service.name != REST_PROXY,
            ServiceSet::OpenStackWithRestProxy => true,
        })
    }
}

/// The canonical service called `name`: the deployers' importers name their services so, and take
/// its function from here.
pub fn canonical_by_name(name: &str) -> Option<&'static CanonicalService> {
    CANONICAL_SERVICES.iter().find(|s| s.name == name)
}

/// The function of the canonical service called `name`, as the inventory writes it.
pub fn function_of(name: &str) -> Option<String> {
    canonical_by_name(name).and_then(|s| s.function.map(str::to_owned))
}

/// The canonical service run by `unit` (with or without `.service`).
pub fn canonical_by_unit(unit: &str) -> Option<&'static CanonicalService> {
    let unit = unit.strip_suffix(".service").unwrap_or(unit);
    CANONICAL_SERVICES.iter().find(|s| s.unit == unit)
}

/// How the runner logs in to the generated testbed's hosts.
#[derive(Debug, Clone)]
pub struct SshDefaults {
    /// Private key path.
    pub identity: String,
    /// known_hosts path.
    pub known_hosts: String,
}

/// The inventory of a generated testbed running `services`.
pub fn generate(topology: &Topology, ssh: &SshDefaults, services: ServiceSet) -> Inventory {
    let hosts = topology
        .hosts
        .iter()
        .map(|host| InventoryHost {
            name: host.name.clone(),
            address: host.address.to_string(),
            roles: vec![host.role.as_str().to_owned()],
            ssh: SshAccess {
                user: "root".to_owned(),
                port: 22,
                identity: ssh.identity.clone(),
                known_hosts: ssh.known_hosts.clone(),
                sudo: false,
            },
        })
        .collect();
    let services = services.services().map(service_entry).collect();
    Inventory {
        version: VERSION,
        hosts,
        services,
    }
}

/// The inventory entry of a canonical service, with the given ports.
pub(crate) fn service_entry(service: &CanonicalService) -> InventoryService {
    InventoryService {
        function: service.function.map(str::to_owned),
        ..InventoryService::unit(
            service.name,
            service.unit,
            service.process,
            vec![service.role.as_str().to_owned()],
            service.ports.to_vec(),
        )
    }
}

impl Inventory {
    /// The inventory as YAML.
    pub fn to_yaml(&self) -> Result<String> {
        serde_saphyr::to_string(self)
            .map_err(|e| Error::Invalid(format!("cannot render the inventory: {e}")))
    }

    /// Parses an inventory (used to read back a generated one and in tests).
    pub fn from_yaml(text: &str) -> Result<Self> {
        serde_saphyr::from_str(text).map_err(|e| Error::Invalid(format!("inventory: {e}")))
    }

    /// The differences between two inventories, one line each; empty when they describe the same
    /// hosts and services.
    pub fn differences(&self, other: &Inventory) -> Vec<String> {
        let mut diffs = Vec::new();
        let names = |inv: &Inventory| inv.hosts.iter().map(|h| h.name.clone()).collect::<Vec<_>>();
        if names(self) != names(other) {
            diffs.push(format!("hosts {:?} vs {:?}", names(self), names(other)));
        }
        for (a, b) in self.hosts.iter().zip(&other.hosts) {
            if a != b {
                diffs.push(format!("host {}: {a:?} vs {b:?}", a.name));
            }
        }
        let service_names = |inv: &Inventory| {
            inv.services
                .iter()
                .map(|s| s.name.clone())
                .collect::<Vec<_>>()
        };
        if service_names(self) != service_names(other) {
            diffs.push(format!(
                "services {:?} vs {:?}",
                service_names(self),
                service_names(other)
            ));
        }
        for (a, b) in self.services.iter().zip(&other.services) {
            if a != b {
                diffs.push(format!("service {}: {a:?} vs {b:?}", a.name));
            }
        }
        diffs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rest_proxy_lists_every_proxy_port_and_the_record_stream() {
        let proxy = CANONICAL_SERVICES
            .iter()
            .find(|s| s.name == REST_PROXY)
            .unwrap();
        let mut ports: Vec<u16> = crate::assets::PROXIED_APIS
            .iter()
            .map(|api| api.proxy_port)
            .chain([crate::assets::RECORDS_PORT])
            .collect();
        ports.sort_unstable();
        assert_eq!(proxy.ports, ports);
        assert_eq!(
            ServiceSet::OpenStack
                .services()
                .filter(|s| s.name == REST_PROXY)
                .count(),
            0
        );
    }

    fn defaults() -> SshDefaults {
        SshDefaults {
            identity: "/var/lib/butterfly/testbed/ssh/id_ed25519".into(),
            known_hosts: "/var/lib/butterfly/testbed/ssh/known_hosts".into(),
        }
    }

    #[test]
    fn generated_inventory_has_the_campaign_shape() {
        let topology = Topology::new(0, 2, 64).unwrap();
        let yaml = generate(&topology, &defaults(), ServiceSet::OpenStackWithRestProxy)
            .to_yaml()
            .unwrap();
        insta::assert_snapshot!(yaml);
    }

    #[test]
    fn inventory_round_trips_through_yaml() {
        let topology = Topology::new(0, 2, 64).unwrap();
        let inventory = generate(&topology, &defaults(), ServiceSet::OpenStackWithRestProxy);
        let parsed = Inventory::from_yaml(&inventory.to_yaml().unwrap()).unwrap();
        assert_eq!(parsed, inventory);
        assert!(parsed.differences(&inventory).is_empty());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = "version: 1\nhosts: []\nservices: []\nextra: 1\n";
        assert!(Inventory::from_yaml(text).is_err());
    }

    #[test]
    fn hosts_only_inventory_lists_no_services() {
        let topology = Topology::new(0, 1, 64).unwrap();
        let inventory = generate(&topology, &defaults(), ServiceSet::None);
        assert_eq!(inventory.hosts.len(), 2);
        assert!(inventory.services.is_empty());
    }

    #[test]
    fn differences_name_the_changed_service() {
        let topology = Topology::new(0, 1, 64).unwrap();
        let a = generate(&topology, &defaults(), ServiceSet::OpenStackWithRestProxy);
        let mut b = a.clone();
        b.services[0].ports = vec![80];
        let diffs = a.differences(&b);
        assert_eq!(diffs.len(), 1);
        assert!(diffs[0].starts_with("service keystone"), "{diffs:?}");
    }

    #[test]
    fn canonical_lookup_accepts_the_service_suffix() {
        assert_eq!(
            canonical_by_unit("devstack@n-cpu.service").unwrap().name,
            "nova-compute"
        );
        assert_eq!(canonical_by_unit("mariadb").unwrap().name, "mariadb");
        assert_eq!(
            canonical_by_unit("devstack@c-vol").unwrap().name,
            "cinder-volume"
        );
        assert!(canonical_by_unit("devstack@q-dhcp").is_none());
    }
}
