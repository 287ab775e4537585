//! How the injector reaches a host. [`HostSpec`] is the injector's own copy of a campaign host,
//! serializable into the journal so that `butterfly recover` can reach every host without the
//! campaign file.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The way commands reach a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Reach {
    /// Run on the machine the runner is on (`sh -c`).
    Local,
    /// Run over SSH.
    Ssh(SshSpec),
    /// Run on this machine through a fixed command prefix, e.g. `ip netns exec NAME` or
    /// `nsenter -t PID -a` (a namespaced host without SSH).
    Exec {
        /// The prefix argv; `sh -c LINE` is appended.
        prefix: Vec<String>,
    },
}

/// SSH settings of a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SshSpec {
    /// Address (IP or DNS name).
    pub address: String,
    /// Remote user.
    pub user: String,
    /// Remote port.
    pub port: u16,
    /// Private key; the agent or ssh's defaults when absent.
    pub identity: Option<PathBuf>,
    /// known_hosts file; the user's default when absent.
    pub known_hosts: Option<PathBuf>,
    /// Accept any host key (loudly). Off by default; never set from a campaign silently.
    #[serde(default)]
    pub insecure_accept_any_host_key: bool,
}

/// A host as the injector sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSpec {
    /// The host's name in the campaign (used in messages and journal records).
    pub name: String,
    /// How to reach it.
    pub reach: Reach,
    /// Run fault commands through `sudo -n`.
    pub sudo: bool,
}

impl HostSpec {
    /// The local machine, as a host named `name`.
    pub fn local(name: &str) -> HostSpec {
        HostSpec {
            name: name.to_owned(),
            reach: Reach::Local,
            sudo: false,
        }
    }

    /// The SSH port, when reached over SSH (used to keep the control channel out of network faults).
    pub fn ssh_port(&self) -> Option<u16> {
        match &self.reach {
            Reach::Ssh(ssh) => Some(ssh.port),
            Reach::Local | Reach::Exec { .. } => None,
        }
    }
}

impl From<&scenarios::model::Host> for HostSpec {
    fn from(host: &scenarios::model::Host) -> HostSpec {
        HostSpec {
            name: host.name.to_string(),
            reach: Reach::Ssh(SshSpec {
                address: host.address.clone(),
                user: host.ssh.user.clone(),
                port: host.ssh.port,
                identity: host.ssh.identity.clone(),
                known_hosts: host.ssh.known_hosts.clone(),
                insecure_accept_any_host_key: false,
            }),
            sudo: host.ssh.sudo,
        }
    }
}
