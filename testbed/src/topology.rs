//! The shape of the testbed: host names, roles, addresses and the names of every kernel object
//! (namespace, bridge, veth, cgroup) it creates. Pure: nothing here touches the machine.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The prefix length of the testbed subnet 10.77.N.0/24 (N = instance).
pub const PREFIX: u8 = 24;
/// The highest instance number: instances let two testbeds (a developer's and CI's, or two
/// helpers') run side by side on one machine with disjoint names and subnets.
pub const MAX_INSTANCE: u8 = 9;
/// The cgroup hierarchies each host joins: freezer, cpu and memory let faults freeze or squeeze a
/// whole host; `systemd` and `unified` are where nspawn creates its payload/supervisor groups.
pub const CGROUP_HIERARCHIES: [&str; 5] = ["freezer", "cpu", "memory", "systemd", "unified"];
/// The most compute hosts `up` accepts (addresses and veth names stay short).
pub const MAX_COMPUTES: usize = 20;

/// What a host is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Runs the control plane, RabbitMQ and MariaDB.
    Controller,
    /// Runs nova-compute with the fake driver.
    Compute,
}

impl Role {
    /// The role's name in the inventory.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Compute => "compute",
        }
    }
}

/// One emulated host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Host {
    /// Host name (also the nspawn machine name and the name in `/etc/hosts`).
    pub name: String,
    /// Its address on the bridge.
    pub address: Ipv4Addr,
    /// Its role.
    pub role: Role,
}

/// The whole set of hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topology {
    /// Instance number (0..=9): selects the subnet 10.77.N.0/24 and the kernel object names.
    pub instance: u8,
    /// Hosts, controller first.
    pub hosts: Vec<Host>,
    /// Size of each host's `/srv` disk in MiB.
    pub disk_mb: u64,
}

impl Topology {
    /// A controller (10.77.N.2) and `computes` compute hosts `compute1..` (10.77.N.3, …) for
    /// instance N.
    pub fn new(instance: u8, computes: usize, disk_mb: u64) -> Result<Self> {
        if instance > MAX_INSTANCE {
            return Err(Error::Invalid(format!(
                "--instance must be between 0 and {MAX_INSTANCE}, got {instance}"
            )));
        }
        if computes == 0 || computes > MAX_COMPUTES {
            return Err(Error::Invalid(format!(
                "--computes must be between 1 and {MAX_COMPUTES}, got {computes}"
            )));
        }
        if !(16..=4096).contains(&disk_mb) {
            return Err(Error::Invalid(format!(
                "--disk-mb must be between 16 and 4096, got {disk_mb}"
            )));
        }
        let mut hosts = vec![Host {
            name: "controller".to_owned(),
            address: host_address(instance, 0),
            role: Role::Controller,
        }];
        for index in 1..=computes {
            hosts.push(Host {
                name: format!("compute{index}"),
                address: host_address(instance, index),
                role: Role::Compute,
            });
        }
        Ok(Self {
            instance,
            hosts,
            disk_mb,
        })
    }

    /// The private bridge in the root namespace (`bfly0` for instance 0). The `bfly` prefix keeps
    /// it apart from Docker, libvirt and the injector's own devices.
    pub fn bridge(&self) -> String {
        format!("bfly{}", self.instance)
    }

    /// The bridge's address: the runner reaches the hosts through it.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.instance, 1)
    }

    /// A host's network namespace, as listed by `ip netns` (`bfly0-controller`).
    pub fn netns(&self, host: &Host) -> String {
        format!("{}{}", self.netns_prefix(), host.name)
    }

    /// The prefix of this instance's network namespaces.
    pub fn netns_prefix(&self) -> String {
        format!("bfly{}-", self.instance)
    }

    /// A host's root-side veth end (`bfv0-compute1`); interface names are at most 15 bytes.
    pub fn veth(&self, host: &Host) -> String {
        format!("{}{}", self.veth_prefix(), host.name)
    }

    /// The prefix of this instance's veth ends.
    pub fn veth_prefix(&self) -> String {
        format!("bfv{}-", self.instance)
    }

    /// The cgroup directory under each hierarchy (`/sys/fs/cgroup/<hierarchy>/butterfly0/<host>`).
    pub fn cgroup_dir(&self) -> String {
        format!("butterfly{}", self.instance)
    }

    /// The controller host.
    pub fn controller(&self) -> &Host {
        &self.hosts[0]
    }

    /// The compute hosts.
    pub fn computes(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.role == Role::Compute)
    }

    /// The `/etc/hosts` each host gets: every host by name, and `gateway` for the runner.
    pub fn etc_hosts(&self) -> String {
        let mut text =
            String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n");
        for host in &self.hosts {
            text.push_str(&format!("{} {}\n", host.address, host.name));
        }
        text.push_str(&format!("{} gateway\n", self.gateway()));
        text
    }
}

fn host_address(instance: u8, index: usize) -> Ipv4Addr {
    let last = u8::try_from(index + 2).expect("host index is bounded by MAX_COMPUTES");
    Ipv4Addr::new(10, 77, instance, last)
}

/// Where a testbed keeps its per-run files. Everything `up` writes outside the cache lives here.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// A state directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The record of what `up` created (`testbed.json`).
    pub fn record(&self) -> PathBuf {
        self.root.join("testbed.json")
    }

    /// The SSH material directory.
    pub fn ssh_dir(&self) -> PathBuf {
        self.root.join("ssh")
    }

    /// The client private key.
    pub fn identity(&self) -> PathBuf {
        self.ssh_dir().join("id_ed25519")
    }

    /// The known_hosts file with the hosts' real keys.
    pub fn known_hosts(&self) -> PathBuf {
        self.ssh_dir().join("known_hosts")
    }

    /// The OpenSSH client configuration (`ssh -F …`).
    pub fn ssh_config(&self) -> PathBuf {
        self.ssh_dir().join("config")
    }

    /// The authorized_keys bind-mounted into every host.
    pub fn authorized_keys(&self) -> PathBuf {
        self.ssh_dir().join("authorized_keys")
    }

    /// The per-host directory (disk image, etc files, host keys, console log).
    pub fn host_dir(&self, host: &str) -> PathBuf {
        self.root.join("hosts").join(host)
    }

    /// The inventory in the campaign format.
    pub fn inventory(&self) -> PathBuf {
        self.root.join("inventory.yaml")
    }

    /// kolla-ansible's files of a kolla-layout testbed (`multinode`, `globals.yml`,
    /// `passwords.yml`).
    pub fn kolla_dir(&self) -> PathBuf {
        self.root.join("kolla")
    }

    /// The clouds.yaml with the `butterfly` cloud.
    pub fn clouds_yaml(&self) -> PathBuf {
        self.root.join("clouds.yaml")
    }

    /// The tracer's AMQP URL (mode 0600: it holds a password).
    pub fn amqp_url(&self) -> PathBuf {
        self.root.join("amqp-url")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_topology_has_a_controller_and_two_computes() {
        let topology = Topology::new(0, 2, 64).unwrap();
        let names: Vec<_> = topology.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["controller", "compute1", "compute2"]);
        assert_eq!(topology.controller().address, Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(topology.hosts[2].address, Ipv4Addr::new(10, 77, 0, 4));
        assert_eq!(topology.computes().count(), 2);
    }

    #[test]
    fn kernel_names_fit_the_interface_name_limit() {
        let topology = Topology::new(9, MAX_COMPUTES, 64).unwrap();
        for host in &topology.hosts {
            assert!(topology.veth(host).len() <= 15, "{}", topology.veth(host));
        }
    }

    #[test]
    fn instances_get_disjoint_subnets_and_names() {
        let a = Topology::new(0, 1, 64).unwrap();
        let b = Topology::new(3, 1, 64).unwrap();
        assert_eq!(b.controller().address, Ipv4Addr::new(10, 77, 3, 2));
        assert_eq!(b.gateway(), Ipv4Addr::new(10, 77, 3, 1));
        assert_ne!(a.bridge(), b.bridge());
        assert_ne!(a.netns(a.controller()), b.netns(b.controller()));
        assert!(Topology::new(MAX_INSTANCE + 1, 1, 64).is_err());
    }

    #[test]
    fn out_of_range_sizes_are_rejected() {
        assert!(Topology::new(0, 0, 64).is_err());
        assert!(Topology::new(0, MAX_COMPUTES + 1, 64).is_err());
        assert!(Topology::new(0, 2, 1).is_err());
    }

    #[test]
    fn etc_hosts_names_every_host_and_the_gateway() {
        let text = Topology::new(0, 1, 64).unwrap().etc_hosts();
        assert!(text.contains("10.77.0.2 controller\n"));
        assert!(text.contains("10.77.0.3 compute1\n"));
        assert!(text.contains("10.77.0.1 gateway\n"));
    }
}
