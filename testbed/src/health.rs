//! Health of a running testbed: every unit active, every API answering, every nova and cinder
//! service up, every compute host registered as a hypervisor and consuming its RabbitMQ queue. The
//! OpenStack checks go through the real APIs (Keystone v3 token, then Nova and Cinder), from the
//! runner's side.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, Result, step_failed};
use crate::hosts;
use crate::inventory::ServiceSet;
use crate::progress::Step;
use crate::sys;
use crate::topology::{Role, StateDir, Topology};
use crate::{Layout, Record, assets::Secrets};

/// How long `up` waits for the stack to become healthy.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(300);

/// One health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked (e.g. `compute1: devstack@n-cpu`).
    pub part: String,
    /// Whether it passed.
    pub ok: bool,
    /// What was seen.
    pub detail: String,
}

/// The result of all checks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Every check, in order.
    pub checks: Vec<Check>,
}

impl Health {
    fn add(&mut self, part: impl Into<String>, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            part: part.into(),
            ok,
            detail: detail.into(),
        });
    }

    /// Whether every check passed.
    pub fn healthy(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The failing checks, one line each.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.part, c.detail))
            .collect()
    }
}

/// The units of `services` that must be active on a host of `role`.
pub fn units_for(role: Role, services: ServiceSet, layout: Layout) -> Vec<String> {
    services
        .services()
        .filter(|s| s.role == role)
        .map(|s| layout.unit(&format!("{}.service", s.unit)))
        .collect()
}

/// Parses `systemctl is-active A B …` output against the units asked for.
pub fn parse_is_active(units: &[String], output: &str) -> Vec<(String, String)> {
    let states: Vec<&str> = output.lines().map(str::trim).collect();
    units
        .iter()
        .enumerate()
        .map(|(i, unit)| {
            (
                unit.clone(),
                states.get(i).copied().unwrap_or("unknown").to_owned(),
            )
        })
        .collect()
}

/// Hosts-only health: every host's systemd is running and sshd answers.
pub fn check_hosts(record: &Record, state: &StateDir) -> Result<()> {
    let mut failures = Vec::new();
    for host in &record.topology.hosts {
        let output = sys::output(
            "status",
            &mut hosts::ssh(state, &host.name, "systemctl is-system-running"),
        )?;
        let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        if text != "running" && text != "degraded" {
            failures.push(format!(
                "{}: systemd is `{text}` ({})",
                host.name,
                sys::tail(&String::from_utf8_lossy(&output.stderr), 2)
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Unhealthy(failures))
    }
}

/// The admin password of the image the record booted.
pub fn secrets(record: &Record) -> Result<Secrets> {
    let path = record
        .rootfs
        .parent()
        .map(|p| p.join("secrets.json"))
        .ok_or_else(|| Error::Invalid("the record's rootfs has no parent".to_owned()))?;
    let text = userinput::file::read_to_string(&path, userinput::file::FileKind::TESTBED_STATE)?;
    // serde's message may quote a value, and this file holds passwords: say where, never what.
    serde_json::from_str(&text).map_err(|e| {
        Error::Invalid(format!(
            "{}:{}:{}: not a valid secrets file",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

/// A Keystone v3 session on the testbed.
pub struct Api {
    client: reqwest::blocking::Client,
    controller: String,
}

impl Api {
    /// A client for the testbed's controller.
    pub fn new(topology: &Topology) -> Result<Self> {
        let client = reqwest::blocking::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| Error::Environment(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            controller: topology.controller().address.to_string(),
        })
    }

    fn url(&self, port: u16, path: &str) -> String {
        format!("http://{}:{port}{path}", self.controller)
    }

    /// GETs `path` on `port` and returns the status code.
    pub fn probe(&self, port: u16, path: &str) -> std::result::Result<u16, String> {
        self.client
            .get(self.url(port, path))
            .send()
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    }

    /// Gets an admin token scoped to the `admin` project.
    pub fn token(&self, password: &str) -> std::result::Result<String, String> {
        let body = serde_json::json!({"auth": {
            "identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"name": "Default"}, "password": password}}},
            "scope": {"project": {"name": "admin", "domain": {"name": "Default"}}}}});
        let response = self
            .client
            .post(self.url(5000, "/v3/auth/tokens"))
            .json(&body)
            .send()
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("Keystone answered {}", response.status()));
        }
        response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| "Keystone returned no X-Subject-Token".to_owned())
    }

    /// GETs a Nova path with a token and parses the JSON body.
    pub fn nova(&self, token: &str, path: &str) -> std::result::Result<Value, String> {
        self.get_json("Nova", 8774, &format!("/v2.1{path}"), token, None)
    }

    /// GETs a Cinder v3 path with a token and parses the JSON body. Microversion 3.67 makes the
    /// project id in the URL optional, so the admin token needs no project lookup.
    pub fn cinder(&self, token: &str, path: &str) -> std::result::Result<Value, String> {
        self.get_json(
            "Cinder",
            8776,
            &format!("/v3{path}"),
            token,
            Some(("OpenStack-API-Version", "volume 3.67")),
        )
    }

    fn get_json(
        &self,
        api: &str,
        port: u16,
        path: &str,
        token: &str,
        header: Option<(&str, &str)>,
    ) -> std::result::Result<Value, String> {
        let mut request = self
            .client
            .get(self.url(port, path))
            .header("X-Auth-Token", token);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let response = request.send().map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("{api} answered {} for {path}", response.status()));
        }
        response.json().map_err(|e| e.to_string())
    }
}

/// Checks nova's service list: every compute host's nova-compute and the controller's conductor
/// and scheduler must be `up` and enabled.
pub fn check_services(health: &mut Health, topology: &Topology, services: &Value) {
    let list = services["services"].as_array().cloned().unwrap_or_default();
    let mut expected: Vec<(String, String)> = vec![
        ("nova-conductor".into(), topology.controller().name.clone()),
        ("nova-scheduler".into(), topology.controller().name.clone()),
    ];
    expected.extend(
        topology
            .computes()
            .map(|h| ("nova-compute".to_owned(), h.name.clone())),
    );
    for (binary, host) in expected {
        let found = list
            .iter()
            .find(|s| s["binary"] == binary.as_str() && s["host"] == host.as_str());
        let (ok, detail) = service_state(found, "compute service list");
        health.add(format!("nova service {binary} on {host}"), ok, detail);
    }
}

/// Whether a service of a `… service list` is `up` and enabled, and what was seen.
fn service_state(found: Option<&Value>, list: &str) -> (bool, String) {
    match found {
        Some(s) => {
            let state = s["state"].as_str().unwrap_or("?");
            let status = s["status"].as_str().unwrap_or("?");
            (
                state == "up" && status == "enabled",
                format!("state {state}, {status}"),
            )
        }
        None => (false, format!("not in `{list}`")),
    }
}

/// Checks cinder's service list: the controller's scheduler and its volume service for the fake
/// backend (host `controller@fake`) must be `up` and enabled.
pub fn check_volume_services(health: &mut Health, topology: &Topology, services: &Value) {
    let list = services["services"].as_array().cloned().unwrap_or_default();
    let controller = &topology.controller().name;
    for (binary, host) in [
        ("cinder-scheduler", controller.clone()),
        ("cinder-volume", format!("{controller}@fake")),
    ] {
        let found = list
            .iter()
            .find(|s| s["binary"] == binary && s["host"] == host.as_str());
        let (ok, detail) = service_state(found, "volume service list");
        health.add(format!("cinder service {binary} on {host}"), ok, detail);
    }
}

/// Checks that every compute host is a registered hypervisor.
pub fn check_hypervisors(health: &mut Health, topology: &Topology, hypervisors: &Value) {
    let names: Vec<&str> = hypervisors["hypervisors"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|h| h["hypervisor_hostname"].as_str())
                .collect()
        })
        .unwrap_or_default();
    for host in topology.computes() {
        let ok = names.contains(&host.name.as_str());
        health.add(
            format!("hypervisor {}", host.name),
            ok,
            if ok {
                "registered".to_owned()
            } else {
                format!("not registered (have {names:?})")
            },
        );
    }
}

/// Checks `rabbitmqctl list_queues name consumers` output: each compute host consumes its
/// `compute.<host>` queue (what makes it schedulable after a restart, before its heartbeat).
pub fn check_consumers(health: &mut Health, topology: &Topology, list_queues: &str) {
    for host in topology.computes() {
        let queue = format!("compute.{}", host.name);
        let consumers = list_queues
            .lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                (parts.next()? == queue).then(|| parts.next()?.parse::<u32>().ok())?
            })
            .next();
        let ok = consumers.is_some_and(|c| c > 0);
        health.add(
            format!("RabbitMQ queue {queue}"),
            ok,
            match consumers {
                Some(c) => format!("{c} consumer(s)"),
                None => "queue missing".to_owned(),
            },
        );
    }
}

/// Runs every check once.
pub fn check(record: &Record, state: &StateDir) -> Result<Health> {
    let topology = &record.topology;
    let mut health = Health::default();
    for host in &topology.hosts {
        let units = units_for(host.role, record.services(), record.layout);
        let command = format!("systemctl is-active {}", units.join(" "));
        let output = sys::output("status", &mut hosts::ssh(state, &host.name, &command))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if stdout.trim().is_empty() {
            health.add(
                format!("{}: ssh", host.name),
                false,
                sys::tail(&String::from_utf8_lossy(&output.stderr), 3),
            );
            continue;
        }
        for (unit, active) in parse_is_active(&units, &stdout) {
            health.add(format!("{}: {unit}", host.name), active == "active", active);
        }
    }
    let api = Api::new(topology)?;
    for (name, port, path) in [
        ("keystone", 5000, "/v3"),
        ("placement-api", 8778, "/"),
        ("glance-api", 9292, "/versions"),
        ("neutron-api", 9696, "/"),
        ("nova-api", 8774, "/"),
        ("cinder-api", 8776, "/"),
    ] {
        // Through the proxy as well, which answers 502 while its upstream does not.
        let proxy = crate::assets::proxy_port(port)
            .filter(|_| record.rest_proxy)
            .map(|proxy| (format!("{name} via the REST proxy"), proxy));
        for (name, port) in std::iter::once((name.to_owned(), port)).chain(proxy) {
            match api.probe(port, path) {
                Ok(code) => health.add(
                    format!("API {name} (:{port})"),
                    code < 500,
                    format!("HTTP {code}"),
                ),
                Err(error) => health.add(format!("API {name} (:{port})"), false, error),
            }
        }
    }
    let secrets = secrets(record)?;
    match api.token(&secrets.admin) {
        Ok(token) => {
            match api.nova(&token, "/os-services") {
                Ok(services) => check_services(&mut health, topology, &services),
                Err(error) => health.add("nova service list", false, error),
            }
            match api.nova(&token, "/os-hypervisors") {
                Ok(list) => check_hypervisors(&mut health, topology, &list),
                Err(error) => health.add("hypervisor list", false, error),
            }
            match api.cinder(&token, "/os-services") {
                Ok(services) => check_volume_services(&mut health, topology, &services),
                Err(error) => health.add("cinder service list", false, error),
            }
        }
        Err(error) => health.add("Keystone admin token", false, error),
    }
    let output = sys::output(
        "status",
        &mut hosts::ssh(
            state,
            &topology.controller().name,
            &format!(
                "{} -q list_queues name consumers",
                record.layout.rabbitmqctl()
            ),
        ),
    )?;
    check_consumers(
        &mut health,
        topology,
        &String::from_utf8_lossy(&output.stdout),
    );
    Ok(health)
}

/// Polls [`check`] until healthy; on timeout, fails naming the failing parts with the last log
/// lines of the units concerned.
pub fn wait_healthy(record: &Record, state: &StateDir, step: &Step) -> Result<Health> {
    let deadline = Instant::now() + HEALTH_TIMEOUT;
    loop {
        let health = check(record, state)?;
        if health.healthy() {
            return Ok(health);
        }
        let failures = health.failures();
        step.detail(&format!(
            "{} check(s) failing, e.g. {}",
            failures.len(),
            failures[0]
        ));
        if Instant::now() > deadline {
            let mut detail = format!(
                "not healthy within {} s: {}",
                HEALTH_TIMEOUT.as_secs(),
                failures.join("; ")
            );
            let unit = record.layout.unit("devstack@n-cpu");
            for host in record.topology.computes() {
                if failures.iter().any(|f| f.contains(&host.name)) {
                    detail.push_str(&format!(
                        "\nlast log lines of {unit} on {}:\n{}",
                        host.name,
                        journal_tail(state, &host.name, &unit)
                    ));
                }
            }
            return Err(step_failed(step.name(), detail));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// The last journal lines of `unit` on `host`.
pub(crate) fn journal_tail(state: &StateDir, host: &str, unit: &str) -> String {
    let command = format!(
        "journalctl -u {unit} -n {} --no-pager -o cat",
        sys::TAIL_LINES
    );
    match sys::output("journal", &mut hosts::ssh(state, host, &command)) {
        Ok(output) => sys::tail(&String::from_utf8_lossy(&output.stdout), sys::TAIL_LINES),
        Err(error) => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology::new(0, 2, 64).unwrap()
    }

    #[test]
    fn is_active_output_maps_to_units_in_order() {
        let units = vec![
            "a.service".to_owned(),
            "b.service".to_owned(),
            "c.service".to_owned(),
        ];
        let parsed = parse_is_active(&units, "active\nfailed\n");
        assert_eq!(parsed[0], ("a.service".into(), "active".into()));
        assert_eq!(parsed[1].1, "failed");
        assert_eq!(parsed[2].1, "unknown");
    }

    #[test]
    fn controller_units_include_the_broker_and_database() {
        let units = units_for(Role::Controller, ServiceSet::OpenStack, Layout::Devstack);
        assert!(units.contains(&"rabbitmq-server.service".to_owned()));
        assert!(units.contains(&"devstack@n-api.service".to_owned()));
        assert!(!units.contains(&"devstack@rest-proxy.service".to_owned()));
        assert!(
            units_for(
                Role::Controller,
                ServiceSet::OpenStackWithRestProxy,
                Layout::Devstack
            )
            .contains(&"devstack@rest-proxy.service".to_owned())
        );
        assert_eq!(
            units_for(
                Role::Compute,
                ServiceSet::OpenStackWithRestProxy,
                Layout::Devstack
            ),
            ["devstack@n-cpu.service"]
        );
    }

    #[test]
    fn the_kolla_layout_checks_the_container_units_and_keeps_the_proxy_unit() {
        let units = units_for(
            Role::Controller,
            ServiceSet::OpenStackWithRestProxy,
            Layout::Kolla,
        );
        for unit in [
            "kolla-mariadb-container.service",
            "kolla-rabbitmq-container.service",
            "kolla-nova_conductor-container.service",
            "kolla-cinder_volume-container.service",
            "devstack@rest-proxy.service",
        ] {
            assert!(units.contains(&unit.to_owned()), "{unit} not in {units:?}");
        }
        assert!(!units.iter().any(|u| u == "devstack@n-cond.service"));
        assert_eq!(
            units_for(Role::Compute, ServiceSet::OpenStack, Layout::Kolla),
            ["kolla-nova_compute-container.service"]
        );
    }

    #[test]
    fn a_compute_service_down_is_named() {
        let services = serde_json::json!({"services": [
            {"binary": "nova-conductor", "host": "controller", "state": "up", "status": "enabled"},
            {"binary": "nova-scheduler", "host": "controller", "state": "up", "status": "enabled"},
            {"binary": "nova-compute", "host": "compute1", "state": "up", "status": "enabled"},
            {"binary": "nova-compute", "host": "compute2", "state": "down", "status": "enabled"}
        ]});
        let mut health = Health::default();
        check_services(&mut health, &topology(), &services);
        assert_eq!(
            health.failures(),
            ["nova service nova-compute on compute2: state down, enabled"]
        );
    }

    #[test]
    fn a_volume_service_down_or_missing_is_named() {
        let services = serde_json::json!({"services": [
            {"binary": "cinder-scheduler", "host": "controller", "state": "up", "status": "enabled"},
            {"binary": "cinder-volume", "host": "controller@fake", "state": "down", "status": "enabled"}
        ]});
        let mut health = Health::default();
        check_volume_services(&mut health, &topology(), &services);
        assert_eq!(
            health.failures(),
            ["cinder service cinder-volume on controller@fake: state down, enabled"]
        );
        let mut health = Health::default();
        check_volume_services(
            &mut health,
            &topology(),
            &serde_json::json!({"services": []}),
        );
        assert_eq!(health.failures().len(), 2);
    }

    #[test]
    fn missing_hypervisors_and_consumers_fail() {
        let mut health = Health::default();
        let list =
            serde_json::json!({"hypervisors": [{"hypervisor_hostname": "compute1", "id": 1}]});
        check_hypervisors(&mut health, &topology(), &list);
        check_consumers(
            &mut health,
            &topology(),
            "compute.compute1\t1\ncompute.compute2\t0\nconductor\t1\n",
        );
        let failures = health.failures();
        assert_eq!(failures.len(), 2, "{failures:?}");
        assert!(failures[0].starts_with("hypervisor compute2"));
        assert!(failures[1].starts_with("RabbitMQ queue compute.compute2: 0 consumer"));
    }
}
