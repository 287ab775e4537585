//! Inventory import from a deployer's own files: kolla-ansible ([`kolla`]: its Ansible INI or
//! `ansible-inventory --list` JSON, `globals.yml`, `passwords.yml`) and OpenStack-Ansible
//! ([`osa`]: `openstack_inventory.json`, `user_variables.yml`, `user_secrets.yml`). Nothing is
//! logged in to: the files say where each service runs and how. Secrets are never copied: a
//! [`BrokerSource`] names the secrets file and the key that holds the broker password.

pub mod kolla;
pub mod osa;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use userinput::file::FileKind;

use crate::ansible::AnsibleInventory;
use crate::error::{Error, Result};
use crate::inventory::{Inventory, InventoryHost, SshAccess};

/// How the runner will log in to the imported hosts.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Private key path written into every host's `ssh.identity`.
    pub identity: String,
    /// known_hosts path written into every host's `ssh.known_hosts`.
    pub known_hosts: String,
}

/// The deployer's files to import.
#[derive(Debug, Clone)]
pub struct DeployerFiles {
    /// The Ansible inventory (INI or JSON).
    pub inventory: PathBuf,
    /// kolla's `globals.yml`, or OSA's `user_variables.yml`.
    pub globals: Option<PathBuf>,
    /// kolla's `passwords.yml`, or OSA's `user_secrets.yml`.
    pub passwords: Option<PathBuf>,
}

/// One vhost of the broker to trace, without its password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSource {
    /// `amqp://USER@HOST:PORT/VHOST` (vhost percent-encoded), no password.
    pub url: String,
    /// The vhost.
    pub vhost: String,
    /// The secrets file that holds the password, when given.
    pub password_file: Option<PathBuf>,
    /// The key in that file.
    pub password_key: String,
}

/// What an import produced.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The Butterfly inventory.
    pub inventory: Inventory,
    /// The broker vhosts to trace (one per vhost; the firehose is switched on on every node of
    /// the `rabbitmq` service).
    pub brokers: Vec<BrokerSource>,
    /// What the import could not map, one sentence each (printed as warnings).
    pub notes: Vec<String>,
}

/// Reads an Ansible inventory through the bounded reader.
pub(crate) fn read_inventory(path: &Path) -> Result<AnsibleInventory> {
    let text = userinput::file::read_to_string(path, FileKind::INVENTORY)?;
    AnsibleInventory::parse(path, &text)
}

/// A deployer's YAML variables file (`globals.yml`, `user_variables.yml`): its top-level keys.
/// An empty file (kolla ships `globals.yml` all commented out) has none.
#[derive(Debug, Clone, Default)]
pub(crate) struct YamlVars {
    path: PathBuf,
    text: String,
    vars: BTreeMap<String, Value>,
}

impl YamlVars {
    pub(crate) fn read(path: &Path) -> Result<YamlVars> {
        let text = userinput::file::read_to_string(path, FileKind::DEPLOYER_VARS)?;
        let parsed: Option<Value> = serde_saphyr::from_str(&text).map_err(|e| {
            // The parser's own message can quote the document; only its first line is kept.
            let reason = e.to_string();
            let reason = reason.lines().next().unwrap_or("not YAML").to_owned();
            Error::Located(vec![format!(
                "{}: not valid YAML: {reason}",
                path.display()
            )])
        })?;
        let vars = match parsed {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map.into_iter().collect(),
            Some(_) => {
                return Err(Error::Located(vec![format!(
                    "{}:1:1: the file is not a mapping of variables; expected `name: value` lines",
                    path.display()
                )]));
            }
        };
        Ok(YamlVars {
            path: path.to_owned(),
            text,
            vars,
        })
    }

    /// A variable as text; a Jinja template (`{{ … }}`) cannot be evaluated here and is an error
    /// located at its line.
    pub(crate) fn text(&self, name: &str) -> Result<Option<String>> {
        let value = match self.vars.get(name) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                return Err(self.located(name, "is not a plain value", "give it a string"));
            }
        };
        if value.contains("{{") || value.contains("{%") {
            return Err(self.located(
                name,
                "is a Jinja template, which discovery does not evaluate",
                "set it to its plain value",
            ));
        }
        Ok(Some(value))
    }

    /// A boolean variable as Ansible reads `yes`/`true`/`1`.
    pub(crate) fn flag(&self, name: &str) -> Result<Option<bool>> {
        Ok(self
            .text(name)?
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "yes" | "on" | "1")))
    }

    pub(crate) fn located(&self, name: &str, message: &str, hint: &str) -> Error {
        let line = top_level_line(&self.text, name).unwrap_or(1);
        Error::Located(vec![format!(
            "{}:{line}:1: `{name}` {message}; {hint}",
            self.path.display()
        )])
    }
}

/// The 1-based line where a top-level key is defined.
fn top_level_line(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
        })
        .map(|index| index + 1)
}

/// Checks that a secrets file defines `key` with a value, without parsing or keeping any value:
/// the file is scanned for the top-level `key:` line only.
pub(crate) fn check_secret_key(path: &Path, key: &str) -> Result<()> {
    let text = userinput::file::read_to_string(path, FileKind::DEPLOYER_SECRETS)?;
    let line = text.lines().enumerate().find_map(|(index, line)| {
        let rest = line.strip_prefix(key)?.trim_start().strip_prefix(':')?;
        Some((index + 1, !rest.trim().is_empty()))
    });
    match line {
        Some((_, true)) => Ok(()),
        Some((line, false)) => Err(Error::Located(vec![format!(
            "{}:{line}:1: `{key}` has no value; generate the secrets first (kolla-genpwd, or OSA's scripts/pw-token-gen.py)",
            path.display()
        )])),
        None => Err(Error::Located(vec![format!(
            "{}: defines no `{key}`; give the deployer's secrets file",
            path.display()
        )])),
    }
}

/// The host entry of an Ansible host: `ansible_host` (else `fallback_address`, else its name),
/// `ansible_user` (default root) and `ansible_port` (default 22).
pub(crate) fn host_entry(
    ansible: &AnsibleInventory,
    name: &str,
    fallback_address: Option<String>,
    roles: Vec<String>,
    options: &ImportOptions,
) -> Result<InventoryHost> {
    let address = ansible
        .var_text(name, "ansible_host")
        .or(fallback_address)
        .unwrap_or_else(|| name.to_owned());
    let user = ansible
        .var_text(name, "ansible_user")
        .unwrap_or_else(|| "root".to_owned());
    let port = match ansible.var_text(name, "ansible_port") {
        Some(port) => port.parse::<u16>().map_err(|_| {
            Error::Invalid(format!(
                "host {name}: ansible_port {} is not a TCP port",
                userinput::echo::quoted(&port)
            ))
        })?,
        None => 22,
    };
    Ok(InventoryHost {
        name: name.to_owned(),
        address,
        roles,
        ssh: SshAccess {
            sudo: user != "root",
            user,
            port,
            identity: options.identity.clone(),
            known_hosts: options.known_hosts.clone(),
        },
    })
}

/// A name that may be interpolated into a remote command (container and unit names).
pub(crate) fn safe_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-@".contains(c))
}

/// `amqp[s]://USER@HOST:PORT/VHOST` with the vhost percent-encoded (`/` is `%2f`).
pub(crate) fn broker_url(tls: bool, user: &str, host: &str, port: u16, vhost: &str) -> String {
    let encoded: String = vhost
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect();
    let scheme = if tls { "amqps" } else { "amqp" };
    format!("{scheme}://{user}@{host}:{port}/{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_encode_the_vhost() {
        assert_eq!(
            broker_url(false, "openstack", "10.0.0.1", 5672, "/"),
            "amqp://openstack@10.0.0.1:5672/%2f"
        );
        assert_eq!(
            broker_url(true, "nova", "h", 5671, "nova"),
            "amqps://nova@h:5671/nova"
        );
    }

    #[test]
    fn names_with_shell_metacharacters_are_not_safe() {
        assert!(safe_name("infra1-nova-api-container-aa0534db"));
        assert!(safe_name("kolla-nova_api-container.service"));
        assert!(!safe_name("x;rm"));
        assert!(!safe_name("-x"));
        assert!(!safe_name(""));
    }
}
