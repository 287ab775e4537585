//! The raw campaign: what the YAML says, with the source location of every value that a later
//! check may need to point at. Nothing here is checked beyond YAML types and unknown fields; the
//! `validate` module turns these into `model` types.
//!
//! These types also generate the JSON Schema of the format (`butterfly schema`), so their doc
//! comments are the schema's descriptions: write them for campaign authors.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

/// A value with the line and column (1-based) where it appears in its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Sp<T> {
    /// The value.
    pub value: T,
    /// Where it appears.
    pub at: Pos,
}

/// A 1-based line and column in a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// Line, 1-based.
    pub line: u32,
    /// Column, 1-based, in characters.
    pub column: u32,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Sp<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = serde_saphyr::Spanned::<T>::deserialize(deserializer)?;
        Ok(Sp {
            value: spanned.value,
            at: Pos {
                line: u32::try_from(spanned.referenced.line()).unwrap_or(u32::MAX),
                column: u32::try_from(spanned.referenced.column()).unwrap_or(u32::MAX),
            },
        })
    }
}

// The schema of a spanned value is the schema of the value: spans are a parsing detail.
impl<T: JsonSchema> JsonSchema for Sp<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        T::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        T::json_schema(generator)
    }
}

/// A YAML scalar read as text whatever it looks like (`5`, `0.5`, `true`, `30s`), so that the
/// validator can say what is wrong with it instead of a type error.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;
        impl serde::de::Visitor<'_> for ScalarVisitor {
            type Value = Scalar;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a scalar (text or number)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        deserializer.deserialize_any(ScalarVisitor)
    }
}

impl JsonSchema for Scalar {
    fn schema_name() -> Cow<'static, str> {
        "Scalar".into()
    }

    fn json_schema(_generator: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({ "type": ["string", "number", "boolean"] })
    }
}

/// A Butterfly Effect fault campaign.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCampaign {
    /// Version of the campaign format; currently 1.
    pub version: Sp<Scalar>,
    /// Campaign name (defaults to the file name).
    pub name: Option<Sp<String>>,
    /// Free text describing the campaign.
    pub description: Option<String>,
    /// The hosts and services: inline, or a path to an inventory file (as `butterfly testbed up`
    /// writes one).
    pub testbed: Sp<RawTestbed>,
    /// How the runner reaches the OpenStack APIs.
    pub cloud: Option<Sp<RawCloud>>,
    /// What the tracer captures.
    pub tracing: Option<Sp<RawTracing>>,
    /// User commands issued during every window.
    pub workload: Option<Sp<RawWorkload>>,
    /// The experiments: a fault, a target, a trigger, a duration.
    pub experiments: Sp<Vec<Sp<RawExperiment>>>,
    /// Steady-state checks and SLOs.
    pub hypotheses: Option<Vec<Sp<RawHypothesis>>>,
    /// Conditions that stop the campaign and revert everything.
    pub guardrails: Option<Vec<Sp<RawGuardrail>>>,
    /// Detectors to score against the ground truth.
    pub detectors: Option<Vec<Sp<RawDetector>>>,
    /// Runbooks that collect evidence about an alarm's suspect and repair it.
    pub remediation: Option<Sp<crate::remediation::RawRemediation>>,
    /// Window lengths and the seed.
    pub campaign: Option<Sp<RawTiming>>,
    /// Where and how results are written.
    pub output: Option<Sp<RawOutput>>,
}

/// Hosts and services, inline or from an inventory file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTestbed {
    /// Path of an inventory file (relative to the campaign file). Exclusive with `hosts`.
    pub inventory: Option<Sp<String>>,
    /// Hosts, when given inline.
    pub hosts: Option<Vec<Sp<RawHost>>>,
    /// Services, when given inline.
    pub services: Option<Vec<Sp<RawService>>>,
}

/// An inventory file: hosts and services of one cloud.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInventory {
    /// Version of the inventory format; currently 1.
    pub version: Sp<Scalar>,
    /// Hosts.
    pub hosts: Vec<Sp<RawHost>>,
    /// Services.
    pub services: Option<Vec<Sp<RawService>>>,
}

/// A host of the testbed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// Unique host name, e.g. `controller`.
    pub name: Sp<String>,
    /// IP address or DNS name used to reach it.
    pub address: Sp<String>,
    /// Roles, e.g. `[controller]` or `[compute]`.
    pub roles: Option<Vec<Sp<String>>>,
    /// SSH settings.
    pub ssh: Option<Sp<RawSsh>>,
}

/// How to reach a host over SSH.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    /// Remote user (default `root`).
    pub user: Option<Sp<String>>,
    /// Remote port (default 22).
    pub port: Option<Sp<Scalar>>,
    /// Private key file (relative paths are relative to the file that names them).
    pub identity: Option<Sp<String>>,
    /// known_hosts file to verify host keys against (default: the user's).
    pub known_hosts: Option<Sp<String>>,
    /// Run fault commands through `sudo -n` (default false).
    pub sudo: Option<Sp<bool>>,
}

/// A service on some hosts: a systemd unit (`unit`), a container (`container`) or a unit inside
/// LXC containers (`lxc`) — exactly one of the three.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    /// Canonical name, e.g. `nova-conductor`.
    pub name: Sp<String>,
    /// systemd unit on the host, e.g. `devstack@n-cond` (DevStack).
    pub unit: Option<Sp<String>>,
    /// A container of a container engine with host networking (kolla-ansible).
    pub container: Option<Sp<RawContainer>>,
    /// A systemd unit inside an LXC container on each physical host (OpenStack-Ansible).
    pub lxc: Option<Sp<RawLxc>>,
    /// Its RabbitMQ virtual host, e.g. `/nova` (OpenStack-Ansible gives each service one).
    pub vhost: Option<Sp<String>>,
    /// Exact process name (as `pgrep -x` matches), e.g. `nova-conductor`.
    pub process: Option<Sp<String>>,
    /// Roles of the hosts it runs on.
    pub roles: Option<Vec<Sp<String>>>,
    /// Names of the hosts it runs on.
    pub hosts: Option<Vec<Sp<String>>>,
    /// TCP ports it listens on.
    pub ports: Option<Vec<Sp<Scalar>>>,
    /// What it does in the cloud, for the detection engine: `api`, `worker`, `database`,
    /// `broker`, `cache` or `agent`.
    #[schemars(extend("enum" = ["api", "worker", "database", "broker", "cache", "agent", null]))]
    pub function: Option<Sp<String>>,
}

/// A service running in a Docker or Podman container.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawContainer {
    /// The container engine: `docker` or `podman`.
    pub engine: Sp<String>,
    /// The container's name, e.g. `nova_conductor`.
    pub name: Sp<String>,
    /// The systemd unit supervising the container, e.g.
    /// `kolla-nova_conductor-container.service`; stops and starts go through it.
    pub unit: Option<Sp<String>>,
}

/// A service running as a systemd unit inside LXC containers.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLxc {
    /// The unit inside the container, e.g. `nova-conductor`.
    pub unit: Sp<String>,
    /// Physical host (a host of the inventory) -> the LXC container on it.
    pub containers: Sp<BTreeMap<String, Sp<String>>>,
}

/// The OpenStack cloud: a clouds.yaml entry, or inline Keystone v3 password auth.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCloud {
    /// clouds.yaml entry name (as `OS_CLOUD`).
    pub name: Option<Sp<String>>,
    /// clouds.yaml path (default: `OS_CLIENT_CONFIG_FILE`, `./clouds.yaml`,
    /// `~/.config/openstack/clouds.yaml`, `/etc/openstack/clouds.yaml`).
    pub clouds_yaml: Option<Sp<String>>,
    /// Inline auth (instead of `name`).
    pub auth: Option<Sp<RawAuth>>,
    /// Region name.
    pub region_name: Option<Sp<String>>,
}

/// Inline Keystone v3 password auth. The password itself is never written in the campaign.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Keystone URL, e.g. `http://10.77.0.2:5000/v3`.
    pub auth_url: Sp<String>,
    /// User name.
    pub username: Sp<String>,
    /// Environment variable holding the password, e.g. `OS_PASSWORD`.
    pub password_env: Option<Sp<String>>,
    /// Refused: passwords do not belong in campaign files; use `password_env`.
    pub password: Option<Sp<Scalar>>,
    /// Project name.
    pub project_name: Sp<String>,
    /// User domain name (default `Default`).
    pub user_domain_name: Option<Sp<String>>,
    /// Project domain name (default `Default`).
    pub project_domain_name: Option<Sp<String>>,
}

/// What the tracer captures.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    /// AMQP brokers to watch.
    pub amqp: Option<Vec<Sp<RawAmqp>>>,
    /// Route API calls through the recording REST proxy (default false).
    pub rest_proxy: Option<Sp<bool>>,
}

/// One AMQP broker to watch.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAmqp {
    /// `amqp://user@host:5672/vhost`, without password.
    pub url: Option<Sp<String>>,
    /// Environment variable holding the password for `url`.
    pub password_env: Option<Sp<String>>,
    /// A file holding the whole URL (as `butterfly testbed up` writes `amqp-url`).
    pub url_file: Option<Sp<String>>,
    /// The deployer's secrets file holding the password for `url` (kolla `passwords.yml`, OSA
    /// `user_secrets.yml`), as `butterfly discover` writes it into `tracing.yaml`.
    pub password_file: Option<Sp<String>>,
    /// The key of the password in `password_file` (`rabbitmq_password`,
    /// `nova_oslomsg_rpc_password`).
    pub password_key: Option<Sp<String>>,
    /// Use the RabbitMQ firehose (default true).
    pub firehose: Option<Sp<bool>>,
    /// Exchanges to tap when the firehose is off.
    pub tap: Option<Vec<Sp<String>>>,
}

/// The workload: streams of OpenStack user commands.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWorkload {
    /// Command streams.
    #[serde(default)]
    pub commands: Vec<Sp<RawCommand>>,
    /// A Rally task whose scenarios become command streams too.
    pub rally: Option<Sp<RawRally>>,
}

/// A Rally task as a workload.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRally {
    /// The task file (JSON or YAML, Rally format 1 or 2), relative to the campaign file.
    pub task: Sp<String>,
    /// Start rate of the streams whose Rally runner has none (`constant`, `serial`,
    /// `constant_for_duration`); an `rps` runner's rate is its own. Default `1/s`.
    pub rate: Option<Sp<Scalar>>,
}

/// One stream of user commands.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCommand {
    /// The command, e.g. `server create`, `volume create`, `server add volume`, `port create`,
    /// `image create` or `token issue` (`butterfly validate` lists them all).
    pub command: Sp<String>,
    /// Start rate: `2/s`, `30/m` or `100/h` (default `1/s`).
    pub rate: Option<Sp<Scalar>>,
    /// Commands in flight at most (default 1).
    pub concurrency: Option<Sp<Scalar>>,
    /// Command parameters, e.g. `{flavor: m1.tiny, image: fake-img, network: none}`.
    pub params: Option<Sp<BTreeMap<String, Sp<Scalar>>>>,
}

/// One experiment.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    /// Unique experiment name.
    pub name: Sp<String>,
    /// Free text.
    pub description: Option<String>,
    /// The fault: `kind` plus that kind's parameters (see `butterfly faults`).
    pub fault: Sp<RawFault>,
    /// Where the fault lands.
    pub target: Option<Sp<RawTarget>>,
    /// When the fault lands (default: right at the start of the fault window).
    pub trigger: Option<Sp<RawTrigger>>,
    /// How long the fault stays in effect, e.g. `20s`.
    pub duration: Sp<Scalar>,
    /// Length of the fault window (default: trigger offset + duration).
    pub window: Option<Sp<Scalar>>,
    /// How often the experiment runs (default 1).
    pub repetitions: Option<Sp<Scalar>>,
    /// Allow targets refused by default (filling `/`, stopping sshd, partitioning every host).
    pub allow_destructive: Option<Sp<bool>>,
}

/// A fault: its kind and parameters. Which parameters apply depends on the kind.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFault {
    /// The fault kind, e.g. `process-kill` (see `butterfly faults`).
    pub kind: Sp<String>,
    /// Signal name (process-kill, service-kill), e.g. `KILL`.
    pub signal: Option<Sp<String>>,
    /// Exact process name (process-kill).
    pub process: Option<Sp<String>>,
    /// `cgroup` or `sigstop` (process-freeze).
    pub method: Option<Sp<String>>,
    /// Added delay (network-delay), e.g. `100ms`.
    pub delay: Option<Sp<Scalar>>,
    /// Delay variation (network-delay), e.g. `10ms`.
    pub jitter: Option<Sp<Scalar>>,
    /// Network interface (network-delay, network-bandwidth), default `eth0`.
    pub interface: Option<Sp<String>>,
    /// `egress`, `ingress` or `both` (network faults).
    pub direction: Option<Sp<String>>,
    /// Hosts, roles or addresses (network faults).
    pub peers: Option<Sp<Vec<Sp<String>>>>,
    /// Ports (network faults).
    pub ports: Option<Sp<Vec<Sp<Scalar>>>>,
    /// Percentage (network-loss: packets dropped; disk-fill: target usage).
    pub percent: Option<Sp<Scalar>>,
    /// Rate limit (network-bandwidth), e.g. `1mbit`.
    pub rate: Option<Sp<String>>,
    /// Bucket size (network-bandwidth), e.g. `32KiB`.
    pub burst: Option<Sp<Scalar>>,
    /// A directory on the filesystem to fill (disk-fill).
    pub path: Option<Sp<String>>,
    /// Size (disk-fill: bytes to allocate; memory-stress: memory to hold), e.g. `512MiB`.
    pub size: Option<Sp<Scalar>>,
    /// Allow a disk fill beyond the safety margin.
    pub force: Option<Sp<bool>>,
    /// Stressor workers (cpu-stress, memory-stress).
    pub workers: Option<Sp<Scalar>>,
    /// Load per worker in percent (cpu-stress).
    pub load: Option<Sp<Scalar>>,
    /// Clock offset (clock-skew), e.g. `+2h` or `-30m`.
    pub offset: Option<Sp<Scalar>>,
    /// Database user (mariadb-kill-connections).
    pub user: Option<Sp<String>>,
    /// Database (mariadb-lock-tables).
    pub database: Option<Sp<String>>,
    /// Tables (mariadb-lock-tables).
    pub tables: Option<Sp<Vec<Sp<String>>>>,
}

impl RawFault {
    /// The parameters present in the YAML, with their locations, for per-kind checks.
    pub fn present_parameters(&self) -> Vec<(&'static str, Pos)> {
        let mut present = Vec::new();
        macro_rules! check {
            ($($field:ident),*) => {
                $(if let Some(value) = &self.$field {
                    present.push((stringify!($field), value.at));
                })*
            };
        }
        check!(
            signal, process, method, delay, jitter, interface, direction, peers, ports, percent,
            rate, burst, path, size, force, workers, load, offset, user, database, tables
        );
        present
    }
}

/// Which hosts a fault lands on.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    /// The service acted on; candidates are the hosts it runs on.
    pub service: Option<Sp<String>>,
    /// Only hosts with one of these roles.
    pub roles: Option<Vec<Sp<String>>>,
    /// Only these hosts.
    pub hosts: Option<Vec<Sp<String>>>,
    /// `one` (default), `all`, `fixed` (with `count`) or `percent` (with `percent`).
    pub mode: Option<Sp<String>>,
    /// Number of hosts for mode `fixed`.
    pub count: Option<Sp<Scalar>>,
    /// Share of hosts for mode `percent`, 0..=100.
    pub percent: Option<Sp<Scalar>>,
    /// Seed of the random pick (default: derived from the campaign seed).
    pub seed: Option<Sp<Scalar>>,
}

/// When the fault lands: `after` an offset, or when an RPC method or REST call is observed.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTrigger {
    /// Offset from the start of the fault window, e.g. `10s`.
    pub after: Option<Sp<Scalar>>,
    /// Inject when this RPC method is observed, e.g. `scheduler.select_destinations`.
    pub rpc: Option<Sp<String>>,
    /// Inject when this REST call is observed, e.g. `POST /v2.1/servers`.
    pub rest: Option<Sp<String>>,
    /// Only when observed on this host.
    pub host: Option<Sp<String>>,
    /// Inject at this offset at the latest if the point is not observed (default: the window
    /// minus the duration).
    pub within: Option<Sp<Scalar>>,
}

/// A steady-state check or SLO.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHypothesis {
    /// Unique name.
    pub name: Sp<String>,
    /// `success-ratio`, `latency` or `recovery-time`.
    pub metric: Sp<String>,
    /// Latency percentile, 0..=100 (metric `latency`), e.g. 95.
    pub percentile: Option<Sp<Scalar>>,
    /// Lower bound of a success ratio, 0..=1.
    pub min: Option<Sp<Scalar>>,
    /// Upper bound: a duration for `latency` and `recovery-time`.
    pub max: Option<Sp<Scalar>>,
    /// Windows it applies to: `baseline`, `fault`, `recovery` (not for `recovery-time`).
    pub windows: Option<Vec<Sp<String>>>,
    /// Only these workload commands.
    pub commands: Option<Vec<Sp<String>>>,
    /// Only these experiments.
    pub experiments: Option<Vec<Sp<String>>>,
}

/// An abort guardrail: when breached, the campaign stops and every fault is reverted.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGuardrail {
    /// Unique name.
    pub name: Sp<String>,
    /// `success-ratio` or `latency`.
    pub metric: Sp<String>,
    /// Latency percentile (metric `latency`).
    pub percentile: Option<Sp<Scalar>>,
    /// Abort when the success ratio falls below this.
    pub min: Option<Sp<Scalar>>,
    /// Abort when the latency exceeds this duration.
    pub max: Option<Sp<Scalar>>,
    /// Sliding window the metric is computed over (default `30s`).
    pub over: Option<Sp<Scalar>>,
}

/// A detector to score: built-in, an external command, or a file of alarms.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDetector {
    /// Unique name in reports.
    pub name: Sp<String>,
    /// A built-in detector: `fingerprint` or `timeout`.
    pub builtin: Option<Sp<String>>,
    /// Fingerprint store for the built-in detectors.
    pub fingerprints: Option<Sp<String>>,
    /// External command (argv, no shell): events on stdin, alarms on stdout, JSON Lines.
    pub command: Option<Sp<Vec<Sp<String>>>>,
    /// A JSON Lines file of alarms.
    pub alarms: Option<Sp<String>>,
}

/// Campaign timing.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTiming {
    /// Baseline window before each fault window (default `30s`).
    pub baseline: Option<Sp<Scalar>>,
    /// Recovery window after each revert (default `30s`).
    pub recovery: Option<Sp<Scalar>>,
    /// Pause between repetitions (default `5s`).
    pub cooldown: Option<Sp<Scalar>>,
    /// Campaign seed (default 0).
    pub seed: Option<Sp<Scalar>>,
}

/// Output settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOutput {
    /// Parent directory of run directories (default `runs`, relative to the campaign file).
    pub dir: Option<Sp<String>>,
    /// Formats: `json`, `junit`, `markdown`, `html` (default all).
    pub formats: Option<Vec<Sp<String>>>,
    /// Run history each run is recorded in: a SQLite file (a path relative to the campaign, or
    /// `sqlite:PATH`) or a `postgres://` URL (default `<dir>/history.sqlite`).
    pub history: Option<Sp<String>>,
    /// Labels each run is recorded with, e.g. `{release: "2025.1", deployer: kolla}`. Keys are
    /// `a-z 0-9 _ . -` starting with a letter; quote versions so that YAML keeps them as written.
    pub labels: Option<Sp<BTreeMap<String, Sp<Scalar>>>>,
}
