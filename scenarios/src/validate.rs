//! From raw, spanned YAML to the checked model, collecting every problem on the way.
//!
//! Each check reports into a `Checker` and carries on with what it has, so that one run shows
//! all problems of a file, not only the first. A section whose own checks failed yields `None`,
//! and checks that depend on it are skipped rather than reporting follow-up noise.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diag::{Diagnostic, Diagnostics, quoted, suggestion};
use crate::fault::{
    Direction, FAULT_KINDS, Fault, FaultKind, FillAmount, FreezeMethod, Peer, Signal,
};
use crate::model::*;
use crate::raw::*;
use crate::safety;
use crate::units::*;

/// Reads a file named by the campaign (the inventory). Injected so that tests can run without a
/// file system; [`crate::load`] reads through the bounded reader.
pub type ReadFile<'a> = dyn Fn(&Path) -> Result<String, userinput::file::Error> + 'a;

/// Collects diagnostics for one file.
pub(crate) struct Checker<'d> {
    file: PathBuf,
    diagnostics: &'d mut Vec<Diagnostic>,
}

impl<'d> Checker<'d> {
    pub(crate) fn new(file: &Path, diagnostics: &'d mut Vec<Diagnostic>) -> Checker<'d> {
        Checker {
            file: file.to_owned(),
            diagnostics,
        }
    }

    pub(crate) fn error(&mut self, at: Pos, message: impl Into<String>) {
        self.diagnostics
            .push(Diagnostic::new(&self.file, at, message));
    }

    pub(crate) fn error_hint(
        &mut self,
        at: Pos,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.diagnostics
            .push(Diagnostic::new(&self.file, at, message).with_hint(hint));
    }

    pub(crate) fn ident(&mut self, value: &Sp<String>, what: &str) -> Option<Ident> {
        match Ident::new(&value.value) {
            Ok(ident) => Some(ident),
            Err(message) => {
                self.error(value.at, format!("{what}: {message}"));
                None
            }
        }
    }

    pub(crate) fn duration(
        &mut self,
        value: &Sp<Scalar>,
        what: &str,
        allow_zero: bool,
    ) -> Option<Duration> {
        match parse_duration(&value.value.0) {
            Ok(duration) if duration.is_zero() && !allow_zero => {
                self.error(
                    value.at,
                    format!("{what} must be positive, got {}", quoted(&value.value.0)),
                );
                None
            }
            Ok(duration) => Some(duration),
            Err(message) => {
                // The parser speaks of "duration"; name the field the author wrote instead.
                let message = message.replacen("duration", what, 1);
                self.error(value.at, message);
                None
            }
        }
    }

    pub(crate) fn integer(
        &mut self,
        value: &Sp<Scalar>,
        what: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Option<i64> {
        match value.value.0.trim().parse::<i64>() {
            Ok(number) if range.contains(&number) => Some(number),
            Ok(number) => {
                self.error(
                    value.at,
                    format!(
                        "{what} {number} is out of range; it must be within {}..={}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
            Err(_) => {
                self.error(
                    value.at,
                    format!(
                        "{what} must be a whole number, got {}",
                        quoted(&value.value.0)
                    ),
                );
                None
            }
        }
    }

    pub(crate) fn number(
        &mut self,
        value: &Sp<Scalar>,
        what: &str,
        range: std::ops::RangeInclusive<f64>,
    ) -> Option<f64> {
        match value.value.0.trim().trim_end_matches('%').parse::<f64>() {
            Ok(number) if number.is_finite() && range.contains(&number) => Some(number),
            Ok(number) => {
                self.error(
                    value.at,
                    format!(
                        "{what} {number} is out of range; it must be within {}..={}",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
            Err(_) => {
                self.error(
                    value.at,
                    format!("{what} must be a number, got {}", quoted(&value.value.0)),
                );
                None
            }
        }
    }

    /// Checks that names in a list are unique, reporting each repetition where it occurs.
    pub(crate) fn unique<'v>(
        &mut self,
        names: impl IntoIterator<Item = &'v Sp<String>>,
        what: &str,
    ) {
        let mut seen = HashSet::new();
        for name in names {
            if !seen.insert(name.value.as_str()) {
                self.error(name.at, format!("duplicate {what} {}", quoted(&name.value)));
            }
        }
    }

    fn path(&self, declared_in: &Path, value: &str) -> PathBuf {
        // `~/` is what people write for SSH keys; resolve it as a shell would.
        if let Some(rest) = value.strip_prefix("~/")
            && let Some(home) = std::env::var_os("HOME")
        {
            return PathBuf::from(home).join(rest);
        }
        let path = PathBuf::from(value);
        if path.is_absolute() {
            path
        } else {
            declared_in.parent().unwrap_or(Path::new(".")).join(path)
        }
    }
}

fn pos_of<T>(value: &Option<Sp<T>>, fallback: Pos) -> Pos {
    value.as_ref().map_or(fallback, |v| v.at)
}

fn is_env_var_name(name: &str) -> bool {
    !name.is_empty()
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Validates a parsed campaign. `read` loads the inventory file when the campaign names one.
pub fn validate_campaign(
    file: &Path,
    raw: RawCampaign,
    read: &ReadFile<'_>,
) -> Result<Campaign, Diagnostics> {
    let mut diagnostics = Vec::new();
    let mut sources = Vec::new();
    let campaign = {
        let mut check = Checker::new(file, &mut diagnostics);
        check_version(&mut check, &raw.version);
        let name = match &raw.name {
            Some(name) => check
                .ident(name, "campaign name")
                .map(|n| n.as_str().to_owned()),
            None => Some(default_name(file)),
        };
        let testbed = check_testbed(&mut check, file, &raw.testbed, read, &mut sources);
        let cloud = raw
            .cloud
            .as_ref()
            .and_then(|cloud| check_cloud(&mut check, file, cloud));
        let tracing = raw
            .tracing
            .as_ref()
            .map(|tracing| check_tracing(&mut check, file, tracing))
            .unwrap_or_default();
        if let (Some(testbed), Some(rest_proxy)) = (
            &testbed,
            raw.tracing
                .as_ref()
                .and_then(|t| t.value.rest_proxy.as_ref()),
        ) {
            check_rest_proxy_service(&mut check, rest_proxy, testbed);
        }
        let workload = raw
            .workload
            .as_ref()
            .map(|workload| check_workload(&mut check, file, workload, read, &mut sources))
            .unwrap_or_default();
        let timing = check_timing(&mut check, raw.campaign.as_ref());
        let experiments = match (&testbed, &timing) {
            (Some(testbed), Some(timing)) => {
                check_experiments(&mut check, &raw.experiments, testbed, timing.seed)
            }
            _ => Vec::new(),
        };
        let experiment_names: Vec<&str> = raw
            .experiments
            .value
            .iter()
            .map(|e| e.value.name.value.as_str())
            .collect();
        let hypotheses = check_hypotheses(
            &mut check,
            raw.hypotheses.as_deref().unwrap_or_default(),
            &experiment_names,
        );
        let guardrails =
            check_guardrails(&mut check, raw.guardrails.as_deref().unwrap_or_default());
        let detectors = check_detectors(
            &mut check,
            file,
            raw.detectors.as_deref().unwrap_or_default(),
        );
        let detector_names: Vec<&str> = raw
            .detectors
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|d| d.value.name.value.as_str())
            .collect();
        let remediation = raw.remediation.as_ref().map(|remediation| {
            crate::remediation::check(
                &mut check,
                remediation,
                testbed.as_ref(),
                &detectors,
                &detector_names,
            )
        });
        let output = check_output(&mut check, file, raw.output.as_ref());
        match (name, testbed, timing, output) {
            (Some(name), Some(testbed), Some(timing), Some(output)) => Some(Campaign {
                source: file.to_owned(),
                name,
                description: raw.description.clone(),
                testbed,
                cloud,
                tracing,
                workload,
                experiments,
                hypotheses,
                guardrails,
                detectors,
                remediation: remediation.flatten(),
                timing,
                output,
            }),
            _ => None,
        }
    };
    let mut diagnostics = Diagnostics(diagnostics);
    if diagnostics.is_empty()
        && let Some(campaign) = campaign
    {
        return Ok(campaign);
    }
    for (path, text) in &sources {
        diagnostics.attach_source(path, text);
    }
    diagnostics.sort();
    Err(diagnostics)
}

fn default_name(file: &Path) -> String {
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("campaign");
    let cleaned: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if cleaned.is_empty() {
        "campaign".into()
    } else {
        cleaned
    }
}

fn check_version(check: &mut Checker<'_>, version: &Sp<Scalar>) {
    if version.value.0.trim() != FORMAT_VERSION.to_string() {
        check.error_hint(
            version.at,
            format!("unsupported format version {}", quoted(&version.value.0)),
            format!("this butterfly reads version {FORMAT_VERSION}"),
        );
    }
}

fn check_testbed(
    check: &mut Checker<'_>,
    file: &Path,
    testbed: &Sp<RawTestbed>,
    read: &ReadFile<'_>,
    sources: &mut Vec<(PathBuf, String)>,
) -> Option<Testbed> {
    let raw = &testbed.value;
    match (&raw.inventory, &raw.hosts) {
        (Some(inventory), None) => {
            if let Some(services) = &raw.services {
                check.error(
                    services.first().map_or(testbed.at, |s| s.at),
                    "`services` cannot be given beside `inventory`; put them in the inventory file",
                );
            }
            let path = check.path(file, &inventory.value);
            let text = match read(&path) {
                Ok(text) => text,
                Err(error) => {
                    check.error(inventory.at, error.to_string());
                    return None;
                }
            };
            let parsed: Result<RawInventory, Diagnostics> = crate::parse_yaml(&path, &text);
            sources.push((path.clone(), text));
            match parsed {
                Ok(inventory_raw) => check_inventory(&path, &inventory_raw, check.diagnostics),
                Err(errors) => {
                    check.diagnostics.extend(errors.0);
                    None
                }
            }
        }
        (None, Some(hosts)) => {
            let (hosts, services) = check_hosts_services(
                check,
                file,
                hosts,
                raw.services.as_deref().unwrap_or_default(),
            )?;
            Some(Testbed {
                inventory: None,
                hosts,
                services,
            })
        }
        (Some(inventory), Some(_)) => {
            check.error(inventory.at, "give either `inventory` or `hosts`, not both");
            None
        }
        (None, None) => {
            check.error_hint(
                testbed.at,
                "the testbed has no hosts",
                "add `inventory: path/to/inventory.yaml` (as `butterfly testbed up` writes) or a `hosts` list",
            );
            None
        }
    }
}

/// Validates a parsed inventory file on its own (as `butterfly validate` does for one).
pub fn validate_inventory(file: &Path, raw: &RawInventory) -> Result<Testbed, Diagnostics> {
    let mut diagnostics = Vec::new();
    match check_inventory(file, raw, &mut diagnostics) {
        Some(testbed) if diagnostics.is_empty() => Ok(testbed),
        _ => Err(Diagnostics(diagnostics)),
    }
}

/// Checks an inventory's version, hosts and services; its diagnostics name its own file.
fn check_inventory(
    file: &Path,
    raw: &RawInventory,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Testbed> {
    let mut check = Checker::new(file, diagnostics);
    check_version(&mut check, &raw.version);
    let (hosts, services) = check_hosts_services(
        &mut check,
        file,
        &raw.hosts,
        raw.services.as_deref().unwrap_or_default(),
    )?;
    Some(Testbed {
        inventory: Some(file.to_owned()),
        hosts,
        services,
    })
}

fn check_hosts_services(
    check: &mut Checker<'_>,
    file: &Path,
    raw_hosts: &[Sp<RawHost>],
    raw_services: &[Sp<RawService>],
) -> Option<(Vec<Host>, Vec<Service>)> {
    let mut ok = true;
    if raw_hosts.is_empty() {
        check.error(Pos::default(), "the host list is empty");
        return None;
    }
    check.unique(raw_hosts.iter().map(|h| &h.value.name), "host name");
    check.unique(raw_services.iter().map(|s| &s.value.name), "service name");
    let mut hosts = Vec::new();
    for raw in raw_hosts {
        let host = &raw.value;
        let name = check.ident(&host.name, "host name");
        let address = host.address.value.trim();
        let address_ok = address.parse::<IpAddr>().is_ok()
            || (!address.is_empty()
                && address.len() <= 253
                && address
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                && !address.starts_with(['-', '.']));
        if !address_ok {
            check.error(
                host.address.at,
                format!(
                    "invalid host address {address}: use an IP address or a DNS name",
                    address = quoted(address)
                ),
            );
        }
        let roles: Vec<Ident> = host
            .roles
            .iter()
            .flatten()
            .filter_map(|role| check.ident(role, "role"))
            .collect();
        let ssh = check_ssh(check, file, host.ssh.as_ref());
        match (name, ssh, address_ok) {
            (Some(name), Some(ssh), true) => hosts.push(Host {
                name,
                address: address.to_owned(),
                roles,
                ssh,
            }),
            _ => ok = false,
        }
    }
    let all_roles: BTreeSet<&str> = raw_hosts
        .iter()
        .flat_map(|h| h.value.roles.iter().flatten().map(|r| r.value.as_str()))
        .collect();
    let host_names: Vec<&str> = raw_hosts
        .iter()
        .map(|h| h.value.name.value.as_str())
        .collect();
    let mut services = Vec::new();
    for raw in raw_services {
        let service = &raw.value;
        let name = check.ident(&service.name, "service name");
        let runtime = check_runtime(check, raw, raw_hosts);
        let vhost = match &service.vhost {
            Some(vhost) => match VhostName::new(&vhost.value) {
                Ok(vhost) => Some(Some(vhost)),
                Err(message) => {
                    check.error(vhost.at, message);
                    None
                }
            },
            None => Some(None),
        };
        let process = match &service.process {
            Some(process) => match ProcessName::new(&process.value) {
                Ok(process) => Some(Some(process)),
                Err(message) => {
                    check.error(process.at, message);
                    None
                }
            },
            None => Some(None),
        };
        let roles = check_refs(
            check,
            service.roles.as_deref(),
            &all_roles.iter().copied().collect::<Vec<_>>(),
            "role",
        );
        let on_hosts = check_refs(check, service.hosts.as_deref(), &host_names, "host");
        let ports = check_ports(check, service.ports.as_deref().unwrap_or_default());
        let function = match &service.function {
            None => Some(None),
            Some(function) => match ServiceFunction::parse(&function.value) {
                Some(known) => Some(Some(known)),
                None => {
                    let names = ServiceFunction::ALL.map(ServiceFunction::as_str);
                    check.error_hint(
                        function.at,
                        format!("unknown service function {}", quoted(&function.value)),
                        suggestion(&function.value, &names),
                    );
                    None
                }
            },
        };
        if service.roles.is_none() && service.hosts.is_none() {
            check.error_hint(
                raw.at,
                format!("service {} runs nowhere", quoted(&service.name.value)),
                "give it `roles` or `hosts`",
            );
            ok = false;
        }
        match (
            name, runtime, vhost, process, roles, on_hosts, ports, function,
        ) {
            (
                Some(name),
                Some(runtime),
                Some(vhost),
                Some(process),
                Some(roles),
                Some(on_hosts),
                Some(ports),
                Some(function),
            ) => services.push(Service {
                name,
                runtime,
                vhost,
                process,
                roles,
                hosts: on_hosts,
                ports,
                function,
            }),
            _ => ok = false,
        }
    }
    ok.then_some((hosts, services))
}

fn check_unit(check: &mut Checker<'_>, unit: &Sp<String>) -> Option<UnitName> {
    match UnitName::new(&unit.value) {
        Ok(unit) => Some(unit),
        Err(message) => {
            check.error(unit.at, message);
            None
        }
    }
}

fn check_container_name(check: &mut Checker<'_>, name: &Sp<String>) -> Option<ContainerName> {
    match ContainerName::new(&name.value) {
        Ok(name) => Some(name),
        Err(message) => {
            check.error(name.at, message);
            None
        }
    }
}

/// How a service runs: exactly one of `unit`, `container` and `lxc`, every name checked, and
/// every LXC container on a host the service runs on.
fn check_runtime(
    check: &mut Checker<'_>,
    raw: &Sp<RawService>,
    raw_hosts: &[Sp<RawHost>],
) -> Option<Runtime> {
    let service = &raw.value;
    let given: Vec<(&str, Pos)> = [
        service.unit.as_ref().map(|u| ("unit", u.at)),
        service.container.as_ref().map(|c| ("container", c.at)),
        service.lxc.as_ref().map(|l| ("lxc", l.at)),
    ]
    .into_iter()
    .flatten()
    .collect();
    match given.as_slice() {
        [] => {
            check.error_hint(
                raw.at,
                format!("service {} says not how it runs", quoted(&service.name.value)),
                "give it one of `unit` (a systemd unit), `container` (docker or podman) or `lxc` (a unit inside LXC containers)",
            );
            return None;
        }
        [_] => {}
        [(first, _), rest @ ..] => {
            for (key, at) in rest {
                check.error_hint(
                    *at,
                    format!(
                        "service {} gives both `{first}` and `{key}`",
                        quoted(&service.name.value)
                    ),
                    "a service runs one way: keep exactly one of `unit`, `container` and `lxc`",
                );
            }
            return None;
        }
    }
    if let Some(unit) = &service.unit {
        return check_unit(check, unit).map(Runtime::Unit);
    }
    if let Some(container) = &service.container {
        let container = &container.value;
        let engine = match Engine::from_name(&container.engine.value) {
            Some(engine) => Some(engine),
            None => {
                let known: Vec<&str> = Engine::ALL.iter().map(|e| e.name()).collect();
                check.error_hint(
                    container.engine.at,
                    format!(
                        "unknown container engine {}",
                        quoted(&container.engine.value)
                    ),
                    format!("use one of {}", known.join(", ")),
                );
                None
            }
        };
        let name = check_container_name(check, &container.name);
        let unit = match &container.unit {
            Some(unit) => check_unit(check, unit).map(Some),
            None => Some(None),
        };
        return Some(Runtime::Container {
            engine: engine?,
            name: name?,
            unit: unit?,
        });
    }
    let lxc = &service.lxc.as_ref()?.value;
    let unit = check_unit(check, &lxc.unit);
    let mut ok = true;
    if lxc.containers.value.is_empty() {
        check.error_hint(
            lxc.containers.at,
            format!(
                "service {} names no LXC container",
                quoted(&service.name.value)
            ),
            "map each physical host to its container: `containers: {infra1: infra1_nova_api_container-1a2b3c4d}`",
        );
        ok = false;
    }
    // The hosts this service runs on, by name or role: an LXC container elsewhere is a typo.
    let runs_on: Vec<&str> = raw_hosts
        .iter()
        .map(|h| &h.value)
        .filter(|h| {
            service
                .hosts
                .iter()
                .flatten()
                .any(|name| name.value == h.name.value)
                || h.roles.iter().flatten().any(|role| {
                    service
                        .roles
                        .iter()
                        .flatten()
                        .any(|r| r.value == role.value)
                })
        })
        .map(|h| h.name.value.as_str())
        .collect();
    let mut containers = Vec::new();
    for (host, name) in &lxc.containers.value {
        let container = check_container_name(check, name);
        if !runs_on.contains(&host.as_str()) {
            let known: Vec<&str> = raw_hosts
                .iter()
                .map(|h| h.value.name.value.as_str())
                .collect();
            let hint = if known.contains(&host.as_str()) {
                format!(
                    "service {} does not run on {}; add it to the service's `hosts` or drop this container",
                    quoted(&service.name.value),
                    quoted(host)
                )
            } else {
                suggestion(host, &runs_on)
            };
            check.error_hint(
                name.at,
                format!(
                    "LXC container {} is on {}, not a host service {} runs on",
                    quoted(&name.value),
                    quoted(host),
                    quoted(&service.name.value)
                ),
                hint,
            );
            ok = false;
            continue;
        }
        match (Ident::new(host), container) {
            (Ok(host), Some(container)) => containers.push((host, container)),
            _ => ok = false,
        }
    }
    if !lxc.containers.value.is_empty() {
        for host in runs_on
            .iter()
            .filter(|host| !lxc.containers.value.contains_key(**host))
        {
            check.error_hint(
                lxc.containers.at,
                format!(
                    "service {} runs on {} but names no LXC container there",
                    quoted(&service.name.value),
                    quoted(host)
                ),
                "add the host's container to `containers`, or narrow the service's `roles`/`hosts`",
            );
            ok = false;
        }
    }
    ok.then_some(Runtime::Lxc {
        unit: unit?,
        containers,
    })
}

/// Resolves a list of names against known ones, with a hint for each unknown name.
fn check_refs(
    check: &mut Checker<'_>,
    names: Option<&[Sp<String>]>,
    known: &[&str],
    what: &str,
) -> Option<Vec<Ident>> {
    let mut ok = true;
    let mut resolved = Vec::new();
    for name in names.unwrap_or_default() {
        if known.contains(&name.value.as_str()) {
            if let Some(ident) = check.ident(name, what) {
                resolved.push(ident);
            }
        } else {
            check.error_hint(
                name.at,
                format!("unknown {what} {}", quoted(&name.value)),
                suggestion(&name.value, known),
            );
            ok = false;
        }
    }
    ok.then_some(resolved)
}

fn check_ports(check: &mut Checker<'_>, ports: &[Sp<Scalar>]) -> Option<Vec<u16>> {
    let mut ok = true;
    let mut out = Vec::new();
    for port in ports {
        match check.integer(port, "port", 1..=65535) {
            Some(port) => out.push(port as u16),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn check_ssh(
    check: &mut Checker<'_>,
    file: &Path,
    ssh: Option<&Sp<RawSsh>>,
) -> Option<SshSettings> {
    let Some(ssh) = ssh else {
        return Some(SshSettings {
            user: "root".into(),
            port: 22,
            identity: None,
            known_hosts: None,
            sudo: false,
        });
    };
    let raw = &ssh.value;
    let user = raw
        .user
        .as_ref()
        .map_or("root", |u| u.value.as_str())
        .to_owned();
    let user_ok = !user.is_empty()
        && user.len() <= 32
        && !user.starts_with('-')
        && user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !user_ok {
        check.error(
            pos_of(&raw.user, ssh.at),
            format!("invalid ssh user {user}", user = quoted(&user)),
        );
    }
    let port = match &raw.port {
        Some(port) => check.integer(port, "ssh port", 1..=65535).map(|p| p as u16),
        None => Some(22),
    };
    Some(SshSettings {
        user,
        port: port?,
        identity: raw.identity.as_ref().map(|p| check.path(file, &p.value)),
        known_hosts: raw.known_hosts.as_ref().map(|p| check.path(file, &p.value)),
        sudo: raw.sudo.as_ref().is_some_and(|s| s.value),
    })
    .filter(|_| user_ok)
}

fn check_cloud(check: &mut Checker<'_>, file: &Path, cloud: &Sp<RawCloud>) -> Option<Cloud> {
    let raw = &cloud.value;
    match (&raw.name, &raw.auth) {
        (Some(name), None) => {
            if name.value.trim().is_empty() {
                check.error(name.at, "the cloud name is empty");
                return None;
            }
            Some(Cloud::CloudsYaml {
                name: name.value.clone(),
                file: raw.clouds_yaml.as_ref().map(|p| check.path(file, &p.value)),
            })
        }
        (None, Some(auth)) => {
            let a = &auth.value;
            if let Some(password) = &a.password {
                check.error_hint(
                    password.at,
                    "passwords must not be stored in campaign files",
                    "name an environment variable instead: `password_env: OS_PASSWORD`",
                );
            }
            let Some(password_env) = &a.password_env else {
                check.error_hint(
                    auth.at,
                    "inline auth needs `password_env`",
                    "e.g. `password_env: OS_PASSWORD`",
                );
                return None;
            };
            if !is_env_var_name(&password_env.value) {
                check.error(
                    password_env.at,
                    format!(
                        "invalid environment variable name {}",
                        quoted(&password_env.value)
                    ),
                );
                return None;
            }
            if !(a.auth_url.value.starts_with("http://")
                || a.auth_url.value.starts_with("https://"))
            {
                check.error(
                    a.auth_url.at,
                    format!(
                        "auth_url must be an http(s) URL, got {}",
                        quoted(&a.auth_url.value)
                    ),
                );
                return None;
            }
            if a.password.is_some() {
                return None;
            }
            Some(Cloud::Inline {
                auth_url: a.auth_url.value.clone(),
                username: a.username.value.clone(),
                password_env: password_env.value.clone(),
                project_name: a.project_name.value.clone(),
                user_domain_name: a
                    .user_domain_name
                    .as_ref()
                    .map_or("Default".into(), |d| d.value.clone()),
                project_domain_name: a
                    .project_domain_name
                    .as_ref()
                    .map_or("Default".into(), |d| d.value.clone()),
                region_name: raw.region_name.as_ref().map(|r| r.value.clone()),
            })
        }
        (Some(name), Some(_)) => {
            check.error(
                name.at,
                "give either a clouds.yaml `name` or inline `auth`, not both",
            );
            None
        }
        (None, None) => {
            check.error_hint(
                cloud.at,
                "the cloud section names no cloud",
                "add `name: <clouds.yaml entry>` or `auth: {…}`",
            );
            None
        }
    }
}

/// A key of a deployer's secrets file: a YAML name as kolla and OSA write them.
fn is_secret_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 255
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn check_tracing(check: &mut Checker<'_>, file: &Path, tracing: &Sp<RawTracing>) -> Tracing {
    let mut amqp = Vec::new();
    for source in tracing.value.amqp.iter().flatten() {
        let raw = &source.value;
        let url = match (&raw.url, &raw.url_file) {
            (Some(url), None) => {
                let text = url.value.trim();
                if !(text.starts_with("amqp://") || text.starts_with("amqps://")) {
                    check.error(
                        url.at,
                        format!(
                            "AMQP URL must start with amqp:// or amqps://, got {text}",
                            text = quoted(text)
                        ),
                    );
                    continue;
                }
                let authority = text
                    .split_once("://")
                    .map_or("", |(_, rest)| rest.split('/').next().unwrap_or(""));
                if let Some((userinfo, _)) = authority.rsplit_once('@')
                    && userinfo.contains(':')
                {
                    check.error_hint(
                        url.at,
                        "the AMQP URL contains a password; passwords must not be stored in campaign files",
                        "remove it from the URL and set `password_env`, or point `url_file` at a protected file",
                    );
                    continue;
                }
                if let Some(env) = &raw.password_env
                    && !is_env_var_name(&env.value)
                {
                    check.error(
                        env.at,
                        format!("invalid environment variable name {}", quoted(&env.value)),
                    );
                    continue;
                }
                match (&raw.password_env, &raw.password_file, &raw.password_key) {
                    (Some(env), Some(_), _) => {
                        check.error_hint(
                            env.at,
                            "give either `password_env` or `password_file`, not both",
                            "`password_file` names the deployer's secrets file",
                        );
                        continue;
                    }
                    (_, Some(path), Some(key)) => {
                        if !is_secret_key(&key.value) {
                            check.error_hint(
                                key.at,
                                format!("invalid secret key {}", quoted(&key.value)),
                                "a key of the secrets file, e.g. `rabbitmq_password`",
                            );
                            continue;
                        }
                        AmqpUrl::WithPasswordFile {
                            url: text.to_owned(),
                            file: check.path(file, &path.value),
                            key: key.value.clone(),
                        }
                    }
                    (_, Some(path), None) => {
                        check.error_hint(
                            path.at,
                            "`password_file` needs `password_key`",
                            "name the key holding the password, e.g. `password_key: rabbitmq_password`",
                        );
                        continue;
                    }
                    (_, None, Some(key)) => {
                        check.error_hint(
                            key.at,
                            "`password_key` needs `password_file`",
                            "name the secrets file, e.g. `password_file: /etc/kolla/passwords.yml`",
                        );
                        continue;
                    }
                    (_, None, None) => AmqpUrl::WithPasswordEnv {
                        url: text.to_owned(),
                        password_env: raw.password_env.as_ref().map(|e| e.value.clone()),
                    },
                }
            }
            (None, Some(path)) => {
                if let Some(env) = &raw.password_env {
                    check.error(
                        env.at,
                        "`password_env` only applies to `url`; `url_file` holds the whole URL",
                    );
                    continue;
                }
                if let Some(secret) = raw.password_file.as_ref().or(raw.password_key.as_ref()) {
                    check.error(
                        secret.at,
                        "`password_file` and `password_key` only apply to `url`; `url_file` holds the whole URL",
                    );
                    continue;
                }
                AmqpUrl::File {
                    path: check.path(file, &path.value),
                }
            }
            (Some(url), Some(_)) => {
                check.error(url.at, "give either `url` or `url_file`, not both");
                continue;
            }
            (None, None) => {
                check.error(source.at, "an AMQP source needs `url` or `url_file`");
                continue;
            }
        };
        let firehose = raw.firehose.as_ref().is_none_or(|f| f.value);
        let mut tap = Vec::new();
        for exchange in raw.tap.iter().flatten() {
            let valid = !exchange.value.is_empty()
                && exchange.value.len() <= 255
                && exchange
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
            if valid {
                tap.push(exchange.value.clone());
            } else {
                check.error(
                    exchange.at,
                    format!("invalid exchange name {}", quoted(&exchange.value)),
                );
            }
        }
        if !firehose && raw.tap.as_ref().is_none_or(|t| t.is_empty()) {
            check.error_hint(
                source.at,
                "with the firehose off, the tracer needs exchanges to tap",
                "add `tap: [nova, neutron]`",
            );
            continue;
        }
        amqp.push(AmqpSource { url, firehose, tap });
    }
    Tracing {
        amqp,
        rest_proxy: tracing.value.rest_proxy.as_ref().is_some_and(|r| r.value),
    }
}

/// `tracing.rest_proxy: true` needs the testbed's `rest-proxy` service with its record stream
/// port: the runner subscribes to that stream before the workload starts, so a missing service
/// would otherwise only show when `butterfly run` is already setting up the testbed. That it runs
/// on some host is already guaranteed by the service checks (its roles and hosts must exist).
fn check_rest_proxy_service(check: &mut Checker<'_>, rest_proxy: &Sp<bool>, testbed: &Testbed) {
    if !rest_proxy.value {
        return;
    }
    let inventory_hint = "`butterfly testbed up` writes it into the inventory it generates";
    match testbed.service(REST_PROXY_SERVICE) {
        None => check.error_hint(
            rest_proxy.at,
            format!(
                "`tracing.rest_proxy` is on but the testbed lists no `{REST_PROXY_SERVICE}` service"
            ),
            format!(
                "add a `{REST_PROXY_SERVICE}` service ({inventory_hint}), or set `rest_proxy: false`"
            ),
        ),
        Some(service) if !service.ports.contains(&REST_PROXY_STREAM_PORT) => check.error_hint(
            rest_proxy.at,
            format!(
                "`tracing.rest_proxy` is on but the `{REST_PROXY_SERVICE}` service does not list \
                 its record stream port {REST_PROXY_STREAM_PORT}"
            ),
            format!(
                "add {REST_PROXY_STREAM_PORT} to the `ports` of `{REST_PROXY_SERVICE}` ({inventory_hint})"
            ),
        ),
        Some(_) => {}
    }
}

fn command_names() -> Vec<&'static str> {
    CommandKind::ALL.iter().map(|c| c.name()).collect()
}

fn check_command_name(check: &mut Checker<'_>, name: &Sp<String>) -> Option<CommandKind> {
    let normalized = name.value.split_whitespace().collect::<Vec<_>>().join(" ");
    let found = CommandKind::ALL
        .iter()
        .copied()
        .find(|c| c.name() == normalized);
    if found.is_none() {
        check.error_hint(
            name.at,
            format!("unknown command {}", quoted(&name.value)),
            suggestion(&normalized, &command_names()),
        );
    }
    found
}

fn check_workload(
    check: &mut Checker<'_>,
    file: &Path,
    workload: &Sp<RawWorkload>,
    read: &ReadFile<'_>,
    sources: &mut Vec<(PathBuf, String)>,
) -> Workload {
    let mut commands: Vec<WorkloadCommand> = workload
        .value
        .commands
        .iter()
        .filter_map(|raw| check_stream(check, raw))
        .collect();
    let rally_streams = workload
        .value
        .rally
        .as_ref()
        .map(|rally| check_rally(check, file, rally, read, sources));
    if workload.value.commands.is_empty() && rally_streams.is_none() {
        check.error_hint(
            workload.at,
            "the workload has no commands",
            "add `commands` or a Rally task (`rally: {task: FILE}`)",
        );
    }
    commands.extend(rally_streams.into_iter().flatten());
    Workload { commands }
}

/// The streams of a Rally task; their problems are located in the task file.
fn check_rally(
    check: &mut Checker<'_>,
    file: &Path,
    rally: &Sp<RawRally>,
    read: &ReadFile<'_>,
    sources: &mut Vec<(PathBuf, String)>,
) -> Vec<WorkloadCommand> {
    let rate = match &rally.value.rate {
        Some(rate) => match parse_command_rate(check, rate) {
            Some(_) => rate.value.0.trim().to_owned(),
            // Reported here once; the streams then use the default.
            None => "1/s".to_owned(),
        },
        None => "1/s".to_owned(),
    };
    let path = check.path(file, &rally.value.task.value);
    let text = match read(&path) {
        Ok(text) => text,
        Err(error) => {
            check.error(rally.value.task.at, error.to_string());
            return Vec::new();
        }
    };
    let streams = match crate::rally::commands(&path, &text, &rate) {
        Ok(streams) => {
            let mut task_check = Checker::new(&path, check.diagnostics);
            streams
                .iter()
                .filter_map(|raw| check_stream(&mut task_check, raw))
                .collect()
        }
        Err(errors) => {
            check.diagnostics.extend(errors.0);
            Vec::new()
        }
    };
    sources.push((path, text));
    streams
}

/// One command stream: its name, rate, concurrency and parameters.
fn check_stream(check: &mut Checker<'_>, raw: &Sp<RawCommand>) -> Option<WorkloadCommand> {
    let stream = &raw.value;
    let command = check_command_name(check, &stream.command)?;
    let rate = match &stream.rate {
        Some(rate) => parse_command_rate(check, rate),
        None => Some(1.0),
    };
    let concurrency = match &stream.concurrency {
        Some(c) => check.integer(c, "concurrency", 1..=64).map(|c| c as u32),
        None => Some(1),
    };
    let mut params = Vec::new();
    let mut params_ok = true;
    if let Some(raw_params) = &stream.params {
        for (key, value) in &raw_params.value {
            if !command.parameters().contains(&key.as_str()) {
                let hint = if command.parameters().is_empty() {
                    format!("{} takes no parameters", quoted(command.name()))
                } else {
                    suggestion(key, command.parameters())
                };
                check.error_hint(
                    value.at,
                    format!(
                        "unknown parameter {key} for command {}",
                        quoted(command.name()),
                        key = quoted(key)
                    ),
                    hint,
                );
                params_ok = false;
                continue;
            }
            let text = value.value.0.trim();
            let valid = match key.as_str() {
                "timeout" => check.duration(value, "timeout", false).is_some(),
                // Volume sizes are whole GiB, as Cinder takes them.
                "size" if command == CommandKind::VolumeCreate => check
                    .integer(value, "volume size (GiB)", 1..=VOLUME_CREATE_MAX_GIB)
                    .is_some(),
                "size" => check_image_size(check, value),
                _ => {
                    let ok = !text.is_empty()
                        && text.len() <= 255
                        && text
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                    if !ok {
                        check.error(
                            value.at,
                            format!(
                                "invalid value {text} for parameter {key}",
                                text = quoted(text),
                                key = quoted(key)
                            ),
                        );
                    }
                    ok
                }
            };
            params_ok &= valid;
            params.push((key.clone(), text.to_owned()));
        }
    }
    match (rate, concurrency, params_ok) {
        (Some(rate_per_second), Some(concurrency), true) => Some(WorkloadCommand {
            command,
            rate_per_second,
            concurrency,
            params,
        }),
        _ => None,
    }
}

/// `image create`'s `size`: the bytes the runner generates and uploads, at least one and at most
/// [`IMAGE_CREATE_MAX_BYTES`].
fn check_image_size(check: &mut Checker<'_>, value: &Sp<Scalar>) -> bool {
    match Bytes::parse(&value.value.0) {
        Ok(Bytes(bytes)) if (1..=IMAGE_CREATE_MAX_BYTES).contains(&bytes) => true,
        Ok(bytes) => {
            check.error_hint(
                value.at,
                format!("image size {bytes} is out of range"),
                format!(
                    "the runner uploads the bytes itself: give 1B..={}",
                    Bytes(IMAGE_CREATE_MAX_BYTES)
                ),
            );
            false
        }
        Err(message) => {
            check.error(value.at, message);
            false
        }
    }
}

fn parse_command_rate(check: &mut Checker<'_>, rate: &Sp<Scalar>) -> Option<f64> {
    let text = rate.value.0.trim();
    let parsed = text.split_once('/').and_then(|(count, unit)| {
        let count: f64 = count.trim().parse().ok()?;
        let per = match unit.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        Some(count / per)
    });
    match parsed {
        Some(per_second) if per_second > 0.0 && per_second <= 100.0 => Some(per_second),
        Some(_) => {
            check.error(
                rate.at,
                format!(
                    "rate {text} is out of range; it must be above 0 and at most 100/s",
                    text = quoted(text)
                ),
            );
            None
        }
        None => {
            check.error_hint(
                rate.at,
                format!("invalid rate {text}", text = quoted(text)),
                "write e.g. 2/s, 30/m or 100/h",
            );
            None
        }
    }
}

fn check_timing(check: &mut Checker<'_>, timing: Option<&Sp<RawTiming>>) -> Option<Timing> {
    let default = |seconds| Some(Duration::from_secs(seconds));
    let Some(timing) = timing else {
        return Some(Timing {
            baseline: Duration::from_secs(30),
            recovery: Duration::from_secs(30),
            cooldown: Duration::from_secs(5),
            seed: 0,
        });
    };
    let raw = &timing.value;
    let baseline = raw
        .baseline
        .as_ref()
        .map_or(default(30), |d| check.duration(d, "baseline", false));
    let recovery = raw
        .recovery
        .as_ref()
        .map_or(default(30), |d| check.duration(d, "recovery", false));
    let cooldown = raw
        .cooldown
        .as_ref()
        .map_or(default(5), |d| check.duration(d, "cooldown", true));
    let seed = match &raw.seed {
        Some(seed) => match seed.value.0.trim().parse::<u64>() {
            Ok(seed) => Some(seed),
            Err(_) => {
                check.error(
                    seed.at,
                    format!(
                        "seed must be a non-negative whole number, got {}",
                        quoted(&seed.value.0)
                    ),
                );
                None
            }
        },
        None => Some(0),
    };
    Some(Timing {
        baseline: baseline?,
        recovery: recovery?,
        cooldown: cooldown?,
        seed: seed?,
    })
}

fn check_experiments(
    check: &mut Checker<'_>,
    experiments: &Sp<Vec<Sp<RawExperiment>>>,
    testbed: &Testbed,
    campaign_seed: u64,
) -> Vec<Experiment> {
    if experiments.value.is_empty() {
        check.error(experiments.at, "the campaign has no experiments");
    }
    check.unique(
        experiments.value.iter().map(|e| &e.value.name),
        "experiment name",
    );
    let mut out = Vec::new();
    for (index, raw) in experiments.value.iter().enumerate() {
        if let Some(experiment) = check_experiment(check, raw, testbed, campaign_seed, index) {
            out.push(experiment);
        }
    }
    out
}

fn check_experiment(
    check: &mut Checker<'_>,
    raw: &Sp<RawExperiment>,
    testbed: &Testbed,
    campaign_seed: u64,
    index: usize,
) -> Option<Experiment> {
    let experiment = &raw.value;
    let name = check.ident(&experiment.name, "experiment name");
    let kind = check_fault_kind(check, &experiment.fault.value.kind);
    let fault = kind.and_then(|kind| check_fault(check, &experiment.fault, kind, testbed));
    let target =
        kind.and_then(|kind| check_target(check, raw, kind, testbed, campaign_seed, index));
    let duration = check.duration(&experiment.duration, "duration", false);
    let repetitions = match &experiment.repetitions {
        Some(r) => check.integer(r, "repetitions", 1..=1000).map(|r| r as u32),
        None => Some(1),
    };
    let allow_destructive = experiment
        .allow_destructive
        .as_ref()
        .is_some_and(|a| a.value);
    let trigger = check_trigger(check, experiment.trigger.as_ref(), testbed);
    let window = match &experiment.window {
        Some(window) => check.duration(window, "window", false),
        None => match (&trigger, duration) {
            (Some(Trigger::After { offset }), Some(duration)) => Some(*offset + duration),
            (Some(Trigger::Observed { within, .. }), Some(duration)) => Some(*within + duration),
            _ => None,
        },
    };
    // An observed trigger without an explicit latest time waits as long as an explicit window
    // allows; without either, it waits the default `within` and the window follows from it.
    let trigger = match (trigger, &experiment.window, window, duration) {
        (Some(Trigger::Observed { point, host, .. }), Some(_), Some(window), Some(duration))
            if experiment
                .trigger
                .as_ref()
                .is_some_and(|t| t.value.within.is_none()) =>
        {
            Some(Trigger::Observed {
                point,
                host,
                within: window.saturating_sub(duration),
            })
        }
        (trigger, ..) => trigger,
    };
    if let (Some(trigger), Some(window), Some(duration)) = (&trigger, window, duration) {
        let (latest, at) = match trigger {
            Trigger::After { offset } => (
                *offset,
                experiment
                    .trigger
                    .as_ref()
                    .and_then(|t| t.value.after.as_ref())
                    .map(|a| a.at),
            ),
            Trigger::Observed { within, .. } => (
                *within,
                experiment
                    .trigger
                    .as_ref()
                    .and_then(|t| t.value.within.as_ref())
                    .map(|w| w.at),
            ),
        };
        if latest + duration > window {
            check.error_hint(
                at.or(experiment.window.as_ref().map(|w| w.at)).unwrap_or(raw.at),
                format!(
                    "the fault does not fit its window: it may start at {} and lasts {}, but the window is {}",
                    format_duration(latest),
                    format_duration(duration),
                    format_duration(window)
                ),
                "make the window longer, the trigger earlier or the duration shorter",
            );
        }
    }
    let fault = match (fault, &target) {
        (Some(fault), Some(target)) => {
            let fault = safety::narrowed_to_service(fault, target.service.as_ref());
            check_destructive(check, raw, &fault, target, testbed, allow_destructive);
            Some(fault)
        }
        (fault, _) => fault,
    };
    Some(Experiment {
        name: name?,
        description: experiment.description.clone(),
        fault: fault?,
        target: target?,
        trigger: trigger?,
        duration: duration?,
        window: window?,
        repetitions: repetitions?,
        allow_destructive,
    })
}

fn fault_kind_names() -> Vec<&'static str> {
    FAULT_KINDS.iter().map(|k| k.name()).collect()
}

fn check_fault_kind(check: &mut Checker<'_>, kind: &Sp<String>) -> Option<FaultKind> {
    let found = FaultKind::from_name(kind.value.trim());
    if found.is_none() {
        check.error_hint(
            kind.at,
            format!("unknown fault kind {}", quoted(&kind.value)),
            suggestion(&kind.value, &fault_kind_names()),
        );
    }
    found
}

fn check_fault(
    check: &mut Checker<'_>,
    fault: &Sp<RawFault>,
    kind: FaultKind,
    testbed: &Testbed,
) -> Option<Fault> {
    let raw = &fault.value;
    let allowed: Vec<&str> = kind.parameters().iter().map(|(name, _)| *name).collect();
    let mut ok = true;
    for (parameter, at) in raw.present_parameters() {
        if !allowed.contains(&parameter) {
            let hint = if allowed.is_empty() {
                "it takes no parameters".to_owned()
            } else {
                format!("it takes: {}", allowed.join(", "))
            };
            check.error_hint(
                at,
                format!(
                    "parameter {parameter} does not apply to fault kind \"{kind}\"",
                    parameter = quoted(parameter)
                ),
                hint,
            );
            ok = false;
        }
    }
    let missing = |check: &mut Checker<'_>, parameter: &str| {
        check.error_hint(
            fault.at,
            format!(
                "fault kind \"{kind}\" needs parameter {parameter}",
                parameter = quoted(parameter)
            ),
            format!("add `{parameter}:` to the fault"),
        );
    };
    let signal = |check: &mut Checker<'_>| -> Option<Signal> {
        match &raw.signal {
            None => Some(Signal::Kill),
            Some(signal) => {
                let parsed = Signal::parse(&signal.value);
                if parsed.is_none() {
                    let names: Vec<&str> = Signal::ALL.iter().map(|s| s.name()).collect();
                    let upper = signal.value.to_ascii_uppercase();
                    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
                    check.error_hint(
                        signal.at,
                        format!("unknown signal {}", quoted(&signal.value)),
                        suggestion(bare, &names),
                    );
                }
                parsed
            }
        }
    };
    let interface = |check: &mut Checker<'_>| -> Option<InterfaceName> {
        match &raw.interface {
            None => InterfaceName::new("eth0").ok(),
            Some(interface) => InterfaceName::new(&interface.value)
                .map_err(|message| check.error(interface.at, message))
                .ok(),
        }
    };
    let direction =
        |check: &mut Checker<'_>, default: Direction, allow_both: bool| -> Option<Direction> {
            let Some(direction) = &raw.direction else {
                return Some(default);
            };
            let parsed = match direction.value.as_str() {
                "egress" => Some(Direction::Egress),
                "ingress" => Some(Direction::Ingress),
                "both" if allow_both => Some(Direction::Both),
                _ => None,
            };
            if parsed.is_none() {
                let known: &[&str] = if allow_both {
                    &["egress", "ingress", "both"]
                } else {
                    &["egress", "ingress"]
                };
                check.error_hint(
                    direction.at,
                    format!("invalid direction {}", quoted(&direction.value)),
                    suggestion(&direction.value, known),
                );
            }
            parsed
        };
    let peers = |check: &mut Checker<'_>| -> Option<Vec<Peer>> {
        check_peers(check, raw.peers.as_ref(), testbed)
    };
    let ports = |check: &mut Checker<'_>| -> Option<Vec<u16>> {
        raw.ports
            .as_ref()
            .map_or(Some(Vec::new()), |ports| check_ports(check, &ports.value))
    };
    let built = match kind {
        FaultKind::ProcessKill => {
            let process = match &raw.process {
                Some(process) => ProcessName::new(&process.value)
                    .map(Some)
                    .map_err(|message| {
                        if process.value.contains('/') {
                            check.error_hint(
                                process.at,
                                message,
                                "name the process as `ps -o comm` shows it, without its directory",
                            )
                        } else {
                            check.error(process.at, message)
                        }
                    })
                    .ok(),
                None => Some(None),
            };
            Some(Fault::ProcessKill {
                signal: signal(check)?,
                process: process?,
            })
        }
        FaultKind::ServiceStop => Some(Fault::ServiceStop),
        FaultKind::ServiceRestart => Some(Fault::ServiceRestart),
        FaultKind::ServiceKill => Some(Fault::ServiceKill {
            signal: signal(check)?,
        }),
        FaultKind::ProcessFreeze => {
            let method = match &raw.method {
                None => Some(FreezeMethod::Cgroup),
                Some(method) => match method.value.as_str() {
                    "cgroup" => Some(FreezeMethod::Cgroup),
                    "sigstop" => Some(FreezeMethod::Sigstop),
                    other => {
                        check.error_hint(
                            method.at,
                            format!("unknown freeze method {other}", other = quoted(other)),
                            suggestion(other, &["cgroup", "sigstop"]),
                        );
                        None
                    }
                },
            };
            Some(Fault::ProcessFreeze { method: method? })
        }
        FaultKind::NetworkDelay => {
            let delay = match &raw.delay {
                Some(delay) => check.duration(delay, "delay", false),
                None => {
                    missing(check, "delay");
                    None
                }
            };
            let jitter = match &raw.jitter {
                Some(jitter) => check.duration(jitter, "jitter", true),
                None => Some(Duration::ZERO),
            };
            if let (Some(delay), Some(jitter), Some(at)) =
                (delay, jitter, raw.jitter.as_ref().map(|j| j.at))
                && jitter > delay
            {
                check.error(at, "jitter must not exceed the delay");
                return None;
            }
            let peers = peers(check)?;
            // The NFQUEUE delayer (the runner's backend) hooks iptables, which is IPv4 only.
            if peers.iter().any(|peer| {
                safety::parse_network(&peer.address).is_some_and(|(ip, _)| ip.is_ipv6())
            }) {
                check.error_hint(
                    raw.peers.as_ref().map_or(fault.at, |peers| peers.at),
                    "network-delay matches IPv4 peers only",
                    "name IPv4 peers, or use network-loss for IPv6 traffic",
                );
                return None;
            }
            Some(Fault::NetworkDelay {
                delay: delay?,
                jitter: jitter?,
                interface: interface(check)?,
                direction: direction(check, Direction::Egress, true)?,
                peers,
                ports: ports(check)?,
            })
        }
        FaultKind::NetworkLoss => {
            let percent = match &raw.percent {
                Some(percent) => check
                    .number(percent, "loss percentage", 0.0..=100.0)
                    .and_then(|p| Percent::new(p).ok()),
                None => {
                    missing(check, "percent");
                    None
                }
            };
            Some(Fault::NetworkLoss {
                percent: percent?,
                direction: direction(check, Direction::Both, true)?,
                peers: peers(check)?,
                ports: ports(check)?,
            })
        }
        FaultKind::NetworkPartition => {
            let peers = peers(check);
            let ports = ports(check);
            if raw.peers.as_ref().is_none_or(|p| p.value.is_empty())
                && raw.ports.as_ref().is_none_or(|p| p.value.is_empty())
            {
                check.error_hint(
                    fault.at,
                    "a partition needs `peers` or `ports`",
                    "e.g. `peers: [controller]` or `ports: [5672]`",
                );
                return None;
            }
            Some(Fault::NetworkPartition {
                peers: peers?,
                ports: ports?,
            })
        }
        FaultKind::NetworkReset => {
            let ports = ports(check);
            if raw.ports.as_ref().is_none_or(|p| p.value.is_empty()) {
                missing(check, "ports");
                return None;
            }
            Some(Fault::NetworkReset {
                ports: ports?,
                peers: peers(check)?,
            })
        }
        FaultKind::NetworkBandwidth => {
            let rate = match &raw.rate {
                Some(rate) => parse_rate(&rate.value)
                    .map_err(|message| check.error(rate.at, message))
                    .ok(),
                None => {
                    missing(check, "rate");
                    None
                }
            };
            let burst = match &raw.burst {
                Some(burst) => Bytes::parse(&burst.value.0)
                    .map_err(|message| check.error(burst.at, message))
                    .ok(),
                None => Some(Bytes(32 * 1024)),
            };
            Some(Fault::NetworkBandwidth {
                rate_bits_per_second: rate?,
                burst: burst?,
                interface: interface(check)?,
                direction: direction(check, Direction::Egress, false)?,
            })
        }
        FaultKind::DiskFill => {
            let path = match &raw.path {
                Some(path) => PathName::new(&path.value)
                    .map_err(|message| check.error(path.at, message))
                    .ok(),
                None => {
                    missing(check, "path");
                    None
                }
            };
            let amount = match (&raw.size, &raw.percent) {
                (Some(size), None) => match Bytes::parse(&size.value.0) {
                    Ok(bytes) if bytes.0 > 0 => Some(FillAmount::Size(bytes)),
                    Ok(_) => {
                        check.error(size.at, "a disk fill size must be positive");
                        None
                    }
                    Err(message) => {
                        check.error(size.at, message);
                        None
                    }
                },
                (None, Some(percent)) => check
                    .number(percent, "fill percentage", 0.0..=100.0)
                    .and_then(|p| Percent::new(p).ok())
                    .map(FillAmount::Percent),
                (Some(size), Some(_)) => {
                    check.error(
                        size.at,
                        "give either `size` or `percent` for a disk fill, not both",
                    );
                    None
                }
                (None, None) => {
                    check.error_hint(
                        fault.at,
                        "a disk fill needs a bounded amount",
                        "add `size: 512MiB` or `percent: 95`",
                    );
                    None
                }
            };
            Some(Fault::DiskFill {
                path: path?,
                amount: amount?,
                force: raw.force.as_ref().is_some_and(|f| f.value),
            })
        }
        FaultKind::CpuStress => {
            let workers = raw.workers.as_ref().map_or(Some(1), |w| {
                check.integer(w, "workers", 1..=256).map(|w| w as u32)
            });
            let load = match &raw.load {
                Some(load) => check
                    .number(load, "load", 1.0..=100.0)
                    .and_then(|l| Percent::new(l).ok()),
                None => Percent::new(100.0).ok(),
            };
            Some(Fault::CpuStress {
                workers: workers?,
                load: load?,
            })
        }
        FaultKind::MemoryStress => {
            let size = match &raw.size {
                Some(size) => match Bytes::parse(&size.value.0) {
                    Ok(bytes) if bytes.0 > 0 => Some(bytes),
                    Ok(_) => {
                        check.error(size.at, "a memory stress size must be positive");
                        None
                    }
                    Err(message) => {
                        check.error(size.at, message);
                        None
                    }
                },
                None => {
                    missing(check, "size");
                    None
                }
            };
            let workers = raw.workers.as_ref().map_or(Some(1), |w| {
                check.integer(w, "workers", 1..=64).map(|w| w as u32)
            });
            Some(Fault::MemoryStress {
                size: size?,
                workers: workers?,
            })
        }
        FaultKind::ClockSkew => {
            let offset = match &raw.offset {
                Some(offset) => match parse_signed_duration(&offset.value.0) {
                    Ok(0) => {
                        check.error(offset.at, "a clock skew of zero changes nothing");
                        None
                    }
                    Ok(seconds) => Some(seconds),
                    Err(message) => {
                        check.error(offset.at, message);
                        None
                    }
                },
                None => {
                    missing(check, "offset");
                    None
                }
            };
            Some(Fault::ClockSkew {
                offset_seconds: offset?,
            })
        }
        FaultKind::RabbitmqCloseConnections => Some(Fault::RabbitmqCloseConnections),
        FaultKind::RabbitmqMemoryAlarm => Some(Fault::RabbitmqMemoryAlarm),
        FaultKind::RabbitmqStopApp => Some(Fault::RabbitmqStopApp),
        FaultKind::MariadbKillConnections => {
            let user = match &raw.user {
                Some(user) => SqlIdent::new(&user.value)
                    .map(Some)
                    .map_err(|message| check.error(user.at, message))
                    .ok(),
                None => Some(None),
            };
            Some(Fault::MariadbKillConnections { user: user? })
        }
        FaultKind::MariadbLockTables => {
            let database = match &raw.database {
                Some(db) => SqlIdent::new(&db.value)
                    .map_err(|message| check.error(db.at, message))
                    .ok(),
                None => {
                    missing(check, "database");
                    None
                }
            };
            let tables = match &raw.tables {
                Some(tables) if tables.value.is_empty() => {
                    check.error(tables.at, "the table list is empty");
                    None
                }
                Some(tables) => {
                    let mut out = Vec::new();
                    let mut tables_ok = true;
                    for table in &tables.value {
                        match SqlIdent::new(&table.value) {
                            Ok(table) => out.push(table),
                            Err(message) => {
                                check.error(table.at, message);
                                tables_ok = false;
                            }
                        }
                    }
                    tables_ok.then_some(out)
                }
                None => {
                    missing(check, "tables");
                    None
                }
            };
            Some(Fault::MariadbLockTables {
                database: database?,
                tables: tables?,
            })
        }
    };
    built.filter(|_| ok)
}

fn check_peers(
    check: &mut Checker<'_>,
    peers: Option<&Sp<Vec<Sp<String>>>>,
    testbed: &Testbed,
) -> Option<Vec<Peer>> {
    let mut out = Vec::new();
    let mut ok = true;
    for peer in peers.map(|p| p.value.as_slice()).unwrap_or_default() {
        let name = peer.value.trim();
        let hosts: Vec<&Host> = match testbed.host(name) {
            Some(host) => vec![host],
            None => testbed.hosts.iter().filter(|h| h.has_role(name)).collect(),
        };
        if !hosts.is_empty() {
            for host in hosts {
                // Network faults match packets by address; a DNS name has none to match.
                if safety::parse_network(&host.address).is_none() {
                    check.error_hint(
                        peer.at,
                        format!(
                            "peer \"{name}\": host {} has the address \"{}\", a DNS name; network faults match IP addresses",
                            host.name, host.address
                        ),
                        "give the host an IP address in the inventory, or name the peer by its IP address",
                    );
                    ok = false;
                    continue;
                }
                out.push(Peer {
                    name: name.to_owned(),
                    address: host.address.clone(),
                });
            }
        } else if safety::parse_network(name).is_some() {
            out.push(Peer {
                name: name.to_owned(),
                address: name.to_owned(),
            });
        } else {
            let mut known: Vec<&str> = testbed.hosts.iter().map(|h| h.name.as_str()).collect();
            known.extend(
                testbed
                    .hosts
                    .iter()
                    .flat_map(|h| h.roles.iter().map(|r| r.as_str())),
            );
            known.sort_unstable();
            known.dedup();
            check.error_hint(
                peer.at,
                format!(
                    "unknown peer {name}: not a host, a role, an IP address or a network",
                    name = quoted(name)
                ),
                suggestion(name, &known),
            );
            ok = false;
        }
    }
    ok.then_some(out)
}

fn check_target(
    check: &mut Checker<'_>,
    experiment: &Sp<RawExperiment>,
    kind: FaultKind,
    testbed: &Testbed,
    campaign_seed: u64,
    index: usize,
) -> Option<Target> {
    let raw = experiment.value.target.as_ref();
    let at = raw.map_or(experiment.at, |t| t.at);
    let service_names: Vec<&str> = testbed.services.iter().map(|s| s.name.as_str()).collect();
    let service = match raw.and_then(|t| t.value.service.as_ref()) {
        Some(name) => match testbed.service(&name.value) {
            Some(service) => Some(Some(service)),
            None => {
                check.error_hint(
                    name.at,
                    format!("unknown service {}", quoted(&name.value)),
                    suggestion(&name.value, &service_names),
                );
                None
            }
        },
        None => Some(None),
    };
    let service = service?;
    let process_given = experiment.value.fault.value.process.is_some();
    if service.is_none()
        && (kind.needs_service() || (kind == FaultKind::ProcessKill && !process_given))
    {
        check.error_hint(
            at,
            format!("fault kind \"{kind}\" acts on a service, but the target names none"),
            "add `target: {service: <name>}`",
        );
        return None;
    }
    let host_names: Vec<&str> = testbed.hosts.iter().map(|h| h.name.as_str()).collect();
    let mut role_names: Vec<&str> = testbed
        .hosts
        .iter()
        .flat_map(|h| h.roles.iter().map(|r| r.as_str()))
        .collect();
    role_names.sort_unstable();
    role_names.dedup();
    let roles = check_refs(
        check,
        raw.and_then(|t| t.value.roles.as_deref()),
        &role_names,
        "role",
    )?;
    let hosts = check_refs(
        check,
        raw.and_then(|t| t.value.hosts.as_deref()),
        &host_names,
        "host",
    )?;
    let candidates: Vec<Ident> = testbed
        .hosts
        .iter()
        .filter(|host| service.is_none_or(|s| s.runs_on(host)))
        .filter(|host| roles.is_empty() || roles.iter().any(|role| host.has_role(role.as_str())))
        .filter(|host| hosts.is_empty() || hosts.contains(&host.name))
        .map(|host| host.name.clone())
        .collect();
    if candidates.is_empty() {
        let mut what = Vec::new();
        if let Some(service) = service {
            let on: Vec<&str> = testbed
                .hosts_of(service)
                .iter()
                .map(|h| h.name.as_str())
                .collect();
            what.push(format!(
                "service \"{}\" runs on [{}]",
                service.name,
                on.join(", ")
            ));
        }
        if !roles.is_empty() {
            what.push(format!(
                "roles [{}]",
                roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if !hosts.is_empty() {
            what.push(format!(
                "hosts [{}]",
                hosts
                    .iter()
                    .map(|h| h.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        check.error(
            at,
            format!("the target selects no host: {}", what.join(" but ")),
        );
        return None;
    }
    let mode_name = raw.and_then(|t| t.value.mode.as_ref());
    let count = raw.and_then(|t| t.value.count.as_ref());
    let percent = raw.and_then(|t| t.value.percent.as_ref());
    let mode = match mode_name.map(|m| m.value.as_str()).unwrap_or("one") {
        "one" => Some(SelectMode::One),
        "all" => Some(SelectMode::All),
        "fixed" => match count {
            Some(count) => {
                let max = candidates.len() as i64;
                match check.integer(count, "count", 1..=i64::MAX) {
                    Some(n) if n > max => {
                        check.error(
                            count.at,
                            format!("count {n} exceeds the {max} candidate host(s) of the target"),
                        );
                        None
                    }
                    other => other.map(|n| SelectMode::Fixed { count: n as u32 }),
                }
            }
            None => {
                check.error_hint(
                    pos_of(&mode_name.cloned(), at),
                    "mode `fixed` needs `count`",
                    "add `count: 2`",
                );
                None
            }
        },
        "percent" => match percent {
            Some(percent) => check
                .number(percent, "target percentage", 0.0..=100.0)
                .filter(|p| {
                    if *p <= 0.0 {
                        check.error(percent.at, "a target percentage of 0 selects no host");
                    }
                    *p > 0.0
                })
                .map(|percent| SelectMode::Percent { percent }),
            None => {
                check.error_hint(
                    pos_of(&mode_name.cloned(), at),
                    "mode `percent` needs `percent`",
                    "add `percent: 50`",
                );
                None
            }
        },
        other => {
            let mode_at = mode_name.map_or(at, |m| m.at);
            check.error_hint(
                mode_at,
                format!("unknown target mode {other}", other = quoted(other)),
                suggestion(other, &["one", "all", "fixed", "percent"]),
            );
            None
        }
    };
    if let Some(count) = count
        && mode_name.is_none_or(|m| m.value != "fixed")
    {
        check.error(count.at, "`count` only applies to mode `fixed`");
        return None;
    }
    if let Some(percent) = percent
        && mode_name.is_none_or(|m| m.value != "percent")
    {
        check.error(percent.at, "`percent` only applies to mode `percent`");
        return None;
    }
    let seed = match raw.and_then(|t| t.value.seed.as_ref()) {
        Some(seed) => match seed.value.0.trim().parse::<u64>() {
            Ok(seed) => Some(seed),
            Err(_) => {
                check.error(
                    seed.at,
                    format!(
                        "seed must be a non-negative whole number, got {}",
                        quoted(&seed.value.0)
                    ),
                );
                None
            }
        },
        None => Some(crate::plan::mix(campaign_seed, index as u64)),
    };
    Some(Target {
        service: service.map(|s| ServiceRef {
            name: s.name.clone(),
            runtime: s.runtime.clone(),
            process: s.process.clone(),
            ports: s.ports.clone(),
        }),
        candidates,
        mode: mode?,
        seed: seed?,
    })
}

fn check_trigger(
    check: &mut Checker<'_>,
    trigger: Option<&Sp<RawTrigger>>,
    testbed: &Testbed,
) -> Option<Trigger> {
    let Some(trigger) = trigger else {
        return Some(Trigger::After {
            offset: Duration::ZERO,
        });
    };
    let raw = &trigger.value;
    let host = match &raw.host {
        Some(host) => {
            let names: Vec<&str> = testbed.hosts.iter().map(|h| h.name.as_str()).collect();
            Some(check_refs(check, Some(std::slice::from_ref(host)), &names, "host")?.pop())
        }
        None => Some(None),
    };
    let given = [raw.after.is_some(), raw.rpc.is_some(), raw.rest.is_some()];
    if given.iter().filter(|g| **g).count() > 1 {
        check.error(
            trigger.at,
            "a trigger is either `after`, `rpc` or `rest`, not several",
        );
        return None;
    }
    if let Some(after) = &raw.after {
        if let Some(host) = &raw.host {
            check.error(host.at, "`host` only applies to `rpc` and `rest` triggers");
            return None;
        }
        if let Some(within) = &raw.within {
            check.error(
                within.at,
                "`within` only applies to `rpc` and `rest` triggers",
            );
            return None;
        }
        return check
            .duration(after, "trigger offset", true)
            .map(|offset| Trigger::After { offset });
    }
    let within = match &raw.within {
        Some(within) => check.duration(within, "within", true),
        None => Some(Duration::from_secs(60)),
    };
    let point = if let Some(rpc) = &raw.rpc {
        let valid = !rpc.value.is_empty()
            && rpc.value.len() <= 200
            && rpc
                .value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'));
        if !valid {
            check.error_hint(
                rpc.at,
                format!("invalid RPC method {}", quoted(&rpc.value)),
                "write `method` or `topic.method`, e.g. scheduler.select_destinations",
            );
            return None;
        }
        ExecutionPoint::Rpc(rpc.value.clone())
    } else if let Some(rest) = &raw.rest {
        let valid = rest.value.split_once(' ').is_some_and(|(method, path)| {
            ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"].contains(&method)
                && path.starts_with('/')
                && !path.contains(char::is_whitespace)
        });
        if !valid {
            check.error_hint(
                rest.at,
                format!("invalid REST call {}", quoted(&rest.value)),
                "write `METHOD /path`, e.g. POST /v2.1/servers",
            );
            return None;
        }
        ExecutionPoint::Rest(rest.value.clone())
    } else {
        check.error_hint(
            trigger.at,
            "the trigger says neither when nor on what",
            "add `after: 10s`, `rpc: <method>` or `rest: <METHOD /path>`",
        );
        return None;
    };
    Some(Trigger::Observed {
        point,
        host: host?,
        within: within?,
    })
}

/// Reports every [`safety::refusals`] of the fault at the part of the experiment it is about; the
/// SSH ports are those of every candidate host, since any of them may be picked.
fn check_destructive(
    check: &mut Checker<'_>,
    experiment: &Sp<RawExperiment>,
    fault: &Fault,
    target: &Target,
    testbed: &Testbed,
    allow: bool,
) {
    let raw = &experiment.value.fault.value;
    let fault_at = experiment.value.fault.at;
    let ssh_ports: Vec<safety::SshPort<'_>> = target
        .candidates
        .iter()
        .filter_map(|name| testbed.host(name.as_str()))
        .map(|host| safety::SshPort {
            host: host.name.as_str(),
            port: host.ssh.port,
        })
        .collect();
    for refusal in safety::refusals(fault, target.service.as_ref(), &ssh_ports, allow) {
        let at = match refusal.subject {
            safety::Subject::Path => pos_of(&raw.path, fault_at),
            safety::Subject::Amount => raw
                .percent
                .as_ref()
                .or(raw.size.as_ref())
                .map_or(fault_at, |amount| amount.at),
            safety::Subject::Process => pos_of(&raw.process, fault_at),
            safety::Subject::Service => experiment
                .value
                .target
                .as_ref()
                .and_then(|t| t.value.service.as_ref())
                .map_or(fault_at, |service| service.at),
            safety::Subject::Peers => raw.peers.as_ref().map_or(fault_at, |peers| peers.at),
            safety::Subject::Ports => raw.ports.as_ref().map_or(fault_at, |ports| ports.at),
            safety::Subject::Fault => fault_at,
        };
        check.error_hint(at, refusal.message.clone(), refusal.hint());
    }
}

fn metric_names() -> &'static [&'static str] {
    &["success-ratio", "latency", "recovery-time", "mttr"]
}

/// Checks the metric, its parameters and its bound; shared by hypotheses and guardrails.
fn check_metric(
    check: &mut Checker<'_>,
    at: Pos,
    metric: &Sp<String>,
    percentile: Option<&Sp<Scalar>>,
    min: Option<&Sp<Scalar>>,
    max: Option<&Sp<Scalar>>,
    allow_recovery_time: bool,
) -> Option<(Metric, Bound)> {
    match metric.value.as_str() {
        "success-ratio" => {
            if let Some(percentile) = percentile {
                check.error(
                    percentile.at,
                    "`percentile` only applies to metric `latency`",
                );
                return None;
            }
            if let Some(max) = max {
                check.error_hint(
                    max.at,
                    "a success ratio takes a lower bound",
                    "use `min: 0.95`",
                );
                return None;
            }
            let Some(min) = min else {
                check.error_hint(at, "metric `success-ratio` needs `min`", "e.g. `min: 0.95`");
                return None;
            };
            let ratio = check.number(min, "success ratio", 0.0..=1.0)?;
            Some((Metric::SuccessRatio, Bound::MinRatio(ratio)))
        }
        "latency" => {
            let percentile = match percentile {
                Some(p) => check.number(p, "percentile", 0.0..=100.0)?,
                None => 95.0,
            };
            if let Some(min) = min {
                check.error_hint(min.at, "a latency takes an upper bound", "use `max: 2s`");
                return None;
            }
            let Some(max) = max else {
                check.error_hint(at, "metric `latency` needs `max`", "e.g. `max: 2s`");
                return None;
            };
            let max = check.duration(max, "latency bound", false)?;
            Some((Metric::Latency { percentile }, Bound::MaxDuration(max)))
        }
        name @ ("recovery-time" | "mttr") if allow_recovery_time => {
            if let Some(percentile) = percentile {
                check.error(
                    percentile.at,
                    "`percentile` only applies to metric `latency`",
                );
                return None;
            }
            if let Some(min) = min {
                check.error_hint(
                    min.at,
                    "a recovery time takes an upper bound",
                    "use `max: 60s`",
                );
                return None;
            }
            let Some(max) = max else {
                check.error_hint(
                    at,
                    format!("metric `{name}` needs `max`"),
                    "e.g. `max: 60s`",
                );
                return None;
            };
            let max = check.duration(max, "recovery bound", false)?;
            let metric = if name == "mttr" {
                Metric::Mttr
            } else {
                Metric::RecoveryTime
            };
            Some((metric, Bound::MaxDuration(max)))
        }
        name @ ("recovery-time" | "mttr") => {
            check.error(
                metric.at,
                format!("a guardrail cannot watch `{name}`; use `success-ratio` or `latency`"),
            );
            None
        }
        other => {
            let known: &[&str] = if allow_recovery_time {
                metric_names()
            } else {
                &["success-ratio", "latency"]
            };
            check.error_hint(
                metric.at,
                format!("unknown metric {other}", other = quoted(other)),
                suggestion(other, known),
            );
            None
        }
    }
}

fn check_hypotheses(
    check: &mut Checker<'_>,
    hypotheses: &[Sp<RawHypothesis>],
    experiments: &[&str],
) -> Vec<Hypothesis> {
    check.unique(hypotheses.iter().map(|h| &h.value.name), "hypothesis name");
    let mut out = Vec::new();
    for raw in hypotheses {
        let h = &raw.value;
        let name = check.ident(&h.name, "hypothesis name");
        let metric = check_metric(
            check,
            raw.at,
            &h.metric,
            h.percentile.as_ref(),
            h.min.as_ref(),
            h.max.as_ref(),
            true,
        );
        let windows = match (&metric, &h.windows) {
            (Some((Metric::RecoveryTime | Metric::Mttr, _)), Some(windows)) => {
                check.error(
                    windows.first().map_or(raw.at, |w| w.at),
                    format!(
                        "`{}` is always measured after the fault; remove `windows`",
                        h.metric.value
                    ),
                );
                None
            }
            (Some((Metric::RecoveryTime, _)), None) => Some(vec![Window::Recovery]),
            (Some((Metric::Mttr, _)), None) => Some(vec![Window::Fault, Window::Recovery]),
            (_, Some(windows)) if windows.is_empty() => {
                check.error(raw.at, "the window list is empty");
                None
            }
            (_, Some(windows)) => {
                let names: Vec<&str> = Window::ALL.iter().map(|w| w.name()).collect();
                let mut out = Vec::new();
                let mut ok = true;
                for window in windows {
                    match Window::ALL.iter().find(|w| w.name() == window.value) {
                        Some(w) => out.push(*w),
                        None => {
                            check.error_hint(
                                window.at,
                                format!("unknown window {}", quoted(&window.value)),
                                suggestion(&window.value, &names),
                            );
                            ok = false;
                        }
                    }
                }
                ok.then_some(out)
            }
            (Some(_), None) => {
                check.error_hint(
                    raw.at,
                    "the hypothesis says no window",
                    "add `windows: [fault]` (baseline, fault, recovery)",
                );
                None
            }
            (None, _) => None,
        };
        let mut commands = Vec::new();
        let mut ok = true;
        for command in h.commands.iter().flatten() {
            match check_command_name(check, command) {
                Some(c) => commands.push(c),
                None => ok = false,
            }
        }
        let experiments = check_refs(check, h.experiments.as_deref(), experiments, "experiment");
        if let (Some(name), Some((metric, bound)), Some(windows), Some(experiments), true) =
            (name, metric, windows, experiments, ok)
        {
            out.push(Hypothesis {
                name,
                metric,
                bound,
                windows,
                commands,
                experiments,
            });
        }
    }
    out
}

fn check_guardrails(check: &mut Checker<'_>, guardrails: &[Sp<RawGuardrail>]) -> Vec<Guardrail> {
    check.unique(guardrails.iter().map(|g| &g.value.name), "guardrail name");
    let mut out = Vec::new();
    for raw in guardrails {
        let g = &raw.value;
        let name = check.ident(&g.name, "guardrail name");
        let metric = check_metric(
            check,
            raw.at,
            &g.metric,
            g.percentile.as_ref(),
            g.min.as_ref(),
            g.max.as_ref(),
            false,
        );
        let over = match &g.over {
            Some(over) => check.duration(over, "guardrail window", false),
            None => Some(Duration::from_secs(30)),
        };
        if let (Some(name), Some((metric, bound)), Some(over)) = (name, metric, over) {
            out.push(Guardrail {
                name,
                metric,
                bound,
                over,
            });
        }
    }
    out
}

fn check_detectors(
    check: &mut Checker<'_>,
    file: &Path,
    detectors: &[Sp<RawDetector>],
) -> Vec<Detector> {
    check.unique(detectors.iter().map(|d| &d.value.name), "detector name");
    let mut out = Vec::new();
    for raw in detectors {
        let d = &raw.value;
        let name = check.ident(&d.name, "detector name");
        let given = [d.builtin.is_some(), d.command.is_some(), d.alarms.is_some()];
        let source = match given.iter().filter(|g| **g).count() {
            0 => {
                check.error_hint(
                    raw.at,
                    format!(
                        "detector {} says neither what nor where",
                        quoted(&d.name.value)
                    ),
                    "add `builtin: fingerprint`, `command: [...]` or `alarms: file.jsonl`",
                );
                None
            }
            1 => {
                if let Some(builtin) = &d.builtin {
                    if BUILTIN_DETECTORS.contains(&builtin.value.as_str()) {
                        Some(DetectorSource::Builtin {
                            builtin: builtin.value.clone(),
                            fingerprints: d
                                .fingerprints
                                .as_ref()
                                .map(|p| check.path(file, &p.value)),
                        })
                    } else {
                        check.error_hint(
                            builtin.at,
                            format!("unknown built-in detector {}", quoted(&builtin.value)),
                            suggestion(&builtin.value, BUILTIN_DETECTORS),
                        );
                        None
                    }
                } else if let Some(fingerprints) = &d.fingerprints {
                    check.error(
                        fingerprints.at,
                        "`fingerprints` only applies to built-in detectors",
                    );
                    None
                } else if let Some(command) = &d.command {
                    if command.value.is_empty() || command.value[0].value.trim().is_empty() {
                        check.error(command.at, "the detector command is empty");
                        None
                    } else {
                        Some(DetectorSource::Command {
                            argv: command.value.iter().map(|a| a.value.clone()).collect(),
                        })
                    }
                } else {
                    d.alarms.as_ref().map(|alarms| DetectorSource::AlarmsFile {
                        path: check.path(file, &alarms.value),
                    })
                }
            }
            _ => {
                check.error(
                    raw.at,
                    format!(
                        "detector {} is either `builtin`, `command` or `alarms`, not several",
                        quoted(&d.name.value)
                    ),
                );
                None
            }
        };
        if let (Some(name), Some(source)) = (name, source) {
            out.push(Detector { name, source });
        }
    }
    out
}

fn check_output(
    check: &mut Checker<'_>,
    file: &Path,
    output: Option<&Sp<RawOutput>>,
) -> Option<Output> {
    let all = vec![Format::Json, Format::Junit, Format::Markdown, Format::Html];
    let Some(output) = output else {
        return Some(Output {
            dir: check.path(file, "runs"),
            formats: all,
            history: None,
            labels: BTreeMap::new(),
        });
    };
    let dir = check.path(
        file,
        output
            .value
            .dir
            .as_ref()
            .map_or("runs", |d| d.value.as_str()),
    );
    let formats = match &output.value.formats {
        None => Some(all),
        Some(formats) => {
            let names = ["json", "junit", "markdown", "html"];
            let mut out = Vec::new();
            let mut ok = true;
            for format in formats {
                let parsed = match format.value.as_str() {
                    "json" => Some(Format::Json),
                    "junit" => Some(Format::Junit),
                    "markdown" => Some(Format::Markdown),
                    "html" => Some(Format::Html),
                    other => {
                        check.error_hint(
                            format.at,
                            format!("unknown output format {other}", other = quoted(other)),
                            suggestion(other, &names),
                        );
                        None
                    }
                };
                match parsed {
                    Some(parsed) if out.contains(&parsed) => {
                        check.error(
                            format.at,
                            format!("duplicate output format {}", quoted(&format.value)),
                        );
                        ok = false;
                    }
                    Some(parsed) => out.push(parsed),
                    None => ok = false,
                }
            }
            // report.json is what every other format is rendered from, so it is always written.
            if !out.contains(&Format::Json) {
                out.insert(0, Format::Json);
            }
            ok.then_some(out)
        }
    };
    let history = check_history(check, file, output.value.history.as_ref());
    let labels = check_labels(check, output.value.labels.as_ref());
    Some(Output {
        dir,
        formats: formats?,
        history: history?,
        labels: labels?,
    })
}

/// `output.history`: a `postgres://` URL, `sqlite:PATH` or a path (relative to the campaign).
fn check_history(
    check: &mut Checker<'_>,
    file: &Path,
    history: Option<&Sp<String>>,
) -> Option<Option<String>> {
    let Some(history) = history else {
        return Some(None);
    };
    match crate::history::parse(&history.value) {
        Some(crate::history::HistoryAt::Postgres(url)) => Some(Some(url)),
        Some(crate::history::HistoryAt::Sqlite(path)) => {
            Some(Some(check.path(file, &path).display().to_string()))
        }
        None => {
            check.error_hint(
                history.at,
                format!(
                    "output.history {} is neither a SQLite file nor a PostgreSQL URL",
                    quoted(&userinput::echo::redact_url(history.value.trim()))
                ),
                "write a path (`runs/history.sqlite`), `sqlite:PATH` or `postgres://user@host/db`",
            );
            None
        }
    }
}

/// `output.labels`: every key and value by the label rule, all problems reported.
fn check_labels(
    check: &mut Checker<'_>,
    labels: Option<&Sp<BTreeMap<String, Sp<Scalar>>>>,
) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, value) in labels.into_iter().flat_map(|l| &l.value) {
        let checked = crate::labels::check_key(key)
            .and_then(|()| crate::labels::check_value(key, &value.value.0));
        match checked {
            Ok(()) => {
                out.insert(key.clone(), value.value.0.clone());
            }
            Err(message) => {
                check.error_hint(
                    value.at,
                    format!("output.labels: {message}"),
                    "e.g. `labels: {release: \"2025.1\", deployer: kolla}`",
                );
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
