//! The validated campaign: what `validate` produces from the raw YAML once every check passed.
//! Everything here is resolved (inventory loaded, names cross-checked, durations positive), so the
//! runner never re-checks.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::fault::Fault;
use crate::units::{ContainerName, Ident, ProcessName, UnitName, VhostName};

/// The current version of the campaign format.
pub const FORMAT_VERSION: u32 = 1;

/// A validated campaign.
#[derive(Debug, Clone, Serialize)]
pub struct Campaign {
    /// The file it was read from.
    pub source: PathBuf,
    /// Campaign name (defaults to the file stem).
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Hosts and services.
    pub testbed: Testbed,
    /// How the runner reaches the OpenStack APIs.
    pub cloud: Option<Cloud>,
    /// What the tracer captures.
    pub tracing: Tracing,
    /// The user commands issued during every window.
    pub workload: Workload,
    /// The experiments, in file order.
    pub experiments: Vec<Experiment>,
    /// Steady-state checks and SLOs.
    pub hypotheses: Vec<Hypothesis>,
    /// Conditions that abort the campaign and revert everything.
    pub guardrails: Vec<Guardrail>,
    /// Detectors to score.
    pub detectors: Vec<Detector>,
    /// Runbooks answering the detectors' alarms (none: nothing is remediated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<crate::remediation::Remediation>,
    /// Window lengths and the campaign seed.
    pub timing: Timing,
    /// Where results go.
    pub output: Output,
}

/// The hosts and services a campaign targets.
#[derive(Debug, Clone, Serialize)]
pub struct Testbed {
    /// The inventory file the hosts and services came from, if any.
    pub inventory: Option<PathBuf>,
    /// Hosts, in file order.
    pub hosts: Vec<Host>,
    /// Services, in file order.
    pub services: Vec<Service>,
}

impl Testbed {
    /// Looks a host up by name.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|host| host.name.as_str() == name)
    }

    /// Looks a service up by name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|service| service.name.as_str() == name)
    }

    /// The hosts a service runs on, in inventory order.
    pub fn hosts_of(&self, service: &Service) -> Vec<&Host> {
        self.hosts
            .iter()
            .filter(|host| service.runs_on(host))
            .collect()
    }
}

/// One machine of the testbed.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    /// Its name in the campaign.
    pub name: Ident,
    /// IP address or DNS name used to reach it.
    pub address: String,
    /// Roles such as `controller` or `compute`.
    pub roles: Vec<Ident>,
    /// How to reach it over SSH.
    pub ssh: SshSettings,
}

impl Host {
    /// True when the host has the role.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.as_str() == role)
    }
}

/// SSH settings of a host.
#[derive(Debug, Clone, Serialize)]
pub struct SshSettings {
    /// Remote user.
    pub user: String,
    /// Remote port.
    pub port: u16,
    /// Private key file, if not the agent's or the default.
    pub identity: Option<PathBuf>,
    /// known_hosts file to verify the host key against (the user's default when absent).
    pub known_hosts: Option<PathBuf>,
    /// Run fault commands through `sudo -n`.
    pub sudo: bool,
}

/// A service of the cloud: a systemd unit, a container or a unit inside an LXC container, on
/// some hosts.
#[derive(Debug, Clone, Serialize)]
pub struct Service {
    /// Canonical name, e.g. `nova-conductor`.
    pub name: Ident,
    /// How it runs: what a fault acts on.
    pub runtime: Runtime,
    /// Its RabbitMQ virtual host, when the deployment gives each service its own (OSA).
    pub vhost: Option<VhostName>,
    /// Exact process name, when known.
    pub process: Option<ProcessName>,
    /// Roles it runs on (any host with one of them).
    pub roles: Vec<Ident>,
    /// Hosts it runs on, by name (in addition to roles).
    pub hosts: Vec<Ident>,
    /// TCP ports it listens on.
    pub ports: Vec<u16>,
    /// What it does in the cloud, when the inventory says: the detection engine reads which
    /// services are the database, the broker and the APIs from it.
    pub function: Option<ServiceFunction>,
}

/// What a service does in the cloud (`function:` in the inventory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceFunction {
    /// Answers users' REST requests (nova-api, keystone, …).
    Api,
    /// Works on RPC messages (nova-conductor, nova-scheduler, …).
    Worker,
    /// The database every service shares (MariaDB, PostgreSQL).
    Database,
    /// The message broker every RPC goes through (RabbitMQ).
    Broker,
    /// A cache the services share (memcached, Redis).
    Cache,
    /// An agent on the hosts it manages (nova-compute, neutron agents).
    Agent,
}

impl ServiceFunction {
    /// Every function, in the order the documentation lists them.
    pub const ALL: [ServiceFunction; 6] = [
        ServiceFunction::Api,
        ServiceFunction::Worker,
        ServiceFunction::Database,
        ServiceFunction::Broker,
        ServiceFunction::Cache,
        ServiceFunction::Agent,
    ];

    /// Its name in the inventory.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceFunction::Api => "api",
            ServiceFunction::Worker => "worker",
            ServiceFunction::Database => "database",
            ServiceFunction::Broker => "broker",
            ServiceFunction::Cache => "cache",
            ServiceFunction::Agent => "agent",
        }
    }

    /// The function of that name.
    pub fn parse(name: &str) -> Option<ServiceFunction> {
        ServiceFunction::ALL
            .into_iter()
            .find(|function| function.as_str() == name)
    }
}

/// How a service runs on its hosts, which decides how a fault reaches it.
/// Serialized as the inventory writes it: `{"unit": …}`, `{"container": {…}}`, `{"lxc": {…}}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Runtime {
    /// A systemd unit on the host itself (DevStack), e.g. `devstack@n-cond`.
    Unit(UnitName),
    /// A container of a container engine, with the host's network (kolla-ansible).
    Container {
        /// The engine whose CLI reaches it.
        engine: Engine,
        /// The container's name, e.g. `nova_conductor`.
        name: ContainerName,
        /// The systemd unit that supervises it (`kolla-nova_conductor-container.service`), when
        /// there is one: stops go through it, since its restart policy would undo an engine stop.
        unit: Option<UnitName>,
    },
    /// A systemd unit inside an LXC container, one container per physical host
    /// (OpenStack-Ansible).
    Lxc {
        /// The unit inside the container, e.g. `nova-conductor`.
        unit: UnitName,
        /// Physical host name -> the LXC container on it.
        containers: Vec<(Ident, ContainerName)>,
    },
}

/// A container engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// Docker (`docker`).
    Docker,
    /// Podman (`podman`).
    Podman,
}

impl Engine {
    /// Every engine, as campaigns name them.
    pub const ALL: [Engine; 2] = [Engine::Docker, Engine::Podman];

    /// The engine's name, which is also its CLI command.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }

    /// Looks an engine up by name.
    pub fn from_name(name: &str) -> Option<Engine> {
        Engine::ALL.into_iter().find(|e| e.name() == name)
    }
}

impl Runtime {
    /// The systemd unit on the host that starts and stops the service: the unit itself, or a
    /// container's supervising unit; none for a unit inside an LXC container.
    pub fn host_unit(&self) -> Option<&UnitName> {
        match self {
            Runtime::Unit(unit) => Some(unit),
            Runtime::Container { unit, .. } => unit.as_ref(),
            Runtime::Lxc { .. } => None,
        }
    }

    /// The LXC container holding the service on `host`, for an LXC service.
    pub fn lxc_container_on(&self, host: &str) -> Option<&ContainerName> {
        match self {
            Runtime::Lxc { containers, .. } => containers
                .iter()
                .find(|(h, _)| h.as_str() == host)
                .map(|(_, name)| name),
            _ => None,
        }
    }

    /// A short description for messages: `unit devstack@n-cond`, `podman container
    /// nova_conductor`, `unit nova-conductor in an LXC container`.
    pub fn describe(&self) -> String {
        match self {
            Runtime::Unit(unit) => format!("unit {unit}"),
            Runtime::Container {
                engine,
                name,
                unit: Some(unit),
            } => format!("{} container {name} (unit {unit})", engine.name()),
            Runtime::Container { engine, name, .. } => {
                format!("{} container {name}", engine.name())
            }
            Runtime::Lxc { unit, .. } => format!("unit {unit} in an LXC container"),
        }
    }
}

impl Service {
    /// True when the service runs on the host.
    pub fn runs_on(&self, host: &Host) -> bool {
        self.hosts.iter().any(|name| name == &host.name)
            || self.roles.iter().any(|role| host.has_role(role.as_str()))
    }
}

/// How the runner authenticates to the cloud.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Cloud {
    /// An entry of a `clouds.yaml` (python-openstackclient conventions).
    CloudsYaml {
        /// Entry name (`OS_CLOUD`).
        name: String,
        /// Explicit clouds.yaml path; otherwise the usual search order applies.
        file: Option<PathBuf>,
    },
    /// Inline Keystone v3 password auth; the password comes from an environment variable.
    Inline {
        /// Keystone URL, e.g. `http://10.77.0.2:5000/v3`.
        auth_url: String,
        /// User name.
        username: String,
        /// Name of the environment variable holding the password.
        password_env: String,
        /// Project name.
        project_name: String,
        /// User domain name.
        user_domain_name: String,
        /// Project domain name.
        project_domain_name: String,
        /// Region.
        region_name: Option<String>,
    },
}

/// The testbed service whose record stream `tracing.rest_proxy` subscribes to.
pub const REST_PROXY_SERVICE: &str = "rest-proxy";

/// The port the `rest-proxy` service serves its record stream on. It is the tracer's default
/// record stream port; the runner asserts at compile time that the two agree.
pub const REST_PROXY_STREAM_PORT: u16 = 19900;

/// What the tracer captures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tracing {
    /// AMQP brokers to watch.
    pub amqp: Vec<AmqpSource>,
    /// Route API calls through the recording REST proxy.
    pub rest_proxy: bool,
}

/// One AMQP broker to watch.
#[derive(Debug, Clone, Serialize)]
pub struct AmqpSource {
    /// Where the URL comes from (never with a password in the campaign).
    pub url: AmqpUrl,
    /// Use the firehose (`amq.rabbitmq.trace`); otherwise tap the listed exchanges.
    pub firehose: bool,
    /// Exchanges to tap when the firehose is off.
    pub tap: Vec<String>,
}

/// An AMQP URL whose secret is kept out of the campaign file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum AmqpUrl {
    /// A URL without password plus the environment variable that holds the password.
    WithPasswordEnv {
        /// `amqp://user@host:port/vhost`.
        url: String,
        /// The variable holding the password.
        password_env: Option<String>,
    },
    /// A URL without password plus the deployer's secrets file and the key holding the password.
    WithPasswordFile {
        /// `amqp://user@host:port/vhost`.
        url: String,
        /// The secrets file (a YAML mapping of names to secrets).
        file: PathBuf,
        /// The key of the password in it.
        key: String,
    },
    /// A file holding the complete URL (as `butterfly testbed up` writes it).
    File {
        /// The file.
        path: PathBuf,
    },
}

/// The user commands a campaign issues.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Workload {
    /// Command streams, each with its own rate.
    pub commands: Vec<WorkloadCommand>,
}

/// The OpenStack user commands the workload can issue. Each one runs under its own global
/// request id, also for the status polls it makes, so that the tracer stitches its whole
/// transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CommandKind {
    /// `server create` (then waits for ACTIVE or ERROR).
    ServerCreate,
    /// `server delete` of a server the workload created.
    ServerDelete,
    /// `server list`.
    ServerList,
    /// `image list`.
    ImageList,
    /// `flavor list`.
    FlavorList,
    /// `network list`.
    NetworkList,
    /// `volume create` (then waits for `available`).
    VolumeCreate,
    /// `volume delete` of an unattached volume the workload created (then waits until gone).
    VolumeDelete,
    /// `server add volume`: attaches a workload volume to a workload server (waits for `in-use`).
    ServerAddVolume,
    /// `server remove volume`: detaches a volume the workload attached (waits for `available`).
    ServerRemoveVolume,
    /// `volume snapshot create` of a workload volume (then waits for `available`).
    VolumeSnapshotCreate,
    /// `volume snapshot delete` of a workload snapshot (then waits until gone).
    VolumeSnapshotDelete,
    /// `network create`.
    NetworkCreate,
    /// `network delete` of a workload network without subnets or ports.
    NetworkDelete,
    /// `subnet create` in a workload network (each with its own /24 of 10.128.0.0/9).
    SubnetCreate,
    /// `subnet delete` of a workload subnet not on a router.
    SubnetDelete,
    /// `port create` in a named network or a workload network.
    PortCreate,
    /// `port delete` of a workload port.
    PortDelete,
    /// `router create`.
    RouterCreate,
    /// `router delete` of a workload router (its subnets are removed first).
    RouterDelete,
    /// `router add subnet`: a workload subnet onto a workload router.
    RouterAddSubnet,
    /// `floating ip create` on an external network.
    FloatingIpCreate,
    /// `floating ip delete` of a workload floating IP.
    FloatingIpDelete,
    /// `image create`: creates an image and uploads its bytes (then waits for `active`).
    ImageCreate,
    /// `image delete` of a workload image.
    ImageDelete,
    /// `token issue`: a Keystone password authentication.
    TokenIssue,
    /// `security group rule create` in a named security group.
    SecurityGroupRuleCreate,
}

impl CommandKind {
    /// Every command, as written in campaigns.
    pub const ALL: &'static [CommandKind] = &[
        CommandKind::ServerCreate,
        CommandKind::ServerDelete,
        CommandKind::ServerList,
        CommandKind::ImageList,
        CommandKind::FlavorList,
        CommandKind::NetworkList,
        CommandKind::VolumeCreate,
        CommandKind::VolumeDelete,
        CommandKind::ServerAddVolume,
        CommandKind::ServerRemoveVolume,
        CommandKind::VolumeSnapshotCreate,
        CommandKind::VolumeSnapshotDelete,
        CommandKind::NetworkCreate,
        CommandKind::NetworkDelete,
        CommandKind::SubnetCreate,
        CommandKind::SubnetDelete,
        CommandKind::PortCreate,
        CommandKind::PortDelete,
        CommandKind::RouterCreate,
        CommandKind::RouterDelete,
        CommandKind::RouterAddSubnet,
        CommandKind::FloatingIpCreate,
        CommandKind::FloatingIpDelete,
        CommandKind::ImageCreate,
        CommandKind::ImageDelete,
        CommandKind::TokenIssue,
        CommandKind::SecurityGroupRuleCreate,
    ];

    /// The command as written in campaigns (`server create`).
    pub fn name(self) -> &'static str {
        match self {
            CommandKind::ServerCreate => "server create",
            CommandKind::ServerDelete => "server delete",
            CommandKind::ServerList => "server list",
            CommandKind::ImageList => "image list",
            CommandKind::FlavorList => "flavor list",
            CommandKind::NetworkList => "network list",
            CommandKind::VolumeCreate => "volume create",
            CommandKind::VolumeDelete => "volume delete",
            CommandKind::ServerAddVolume => "server add volume",
            CommandKind::ServerRemoveVolume => "server remove volume",
            CommandKind::VolumeSnapshotCreate => "volume snapshot create",
            CommandKind::VolumeSnapshotDelete => "volume snapshot delete",
            CommandKind::NetworkCreate => "network create",
            CommandKind::NetworkDelete => "network delete",
            CommandKind::SubnetCreate => "subnet create",
            CommandKind::SubnetDelete => "subnet delete",
            CommandKind::PortCreate => "port create",
            CommandKind::PortDelete => "port delete",
            CommandKind::RouterCreate => "router create",
            CommandKind::RouterDelete => "router delete",
            CommandKind::RouterAddSubnet => "router add subnet",
            CommandKind::FloatingIpCreate => "floating ip create",
            CommandKind::FloatingIpDelete => "floating ip delete",
            CommandKind::ImageCreate => "image create",
            CommandKind::ImageDelete => "image delete",
            CommandKind::TokenIssue => "token issue",
            CommandKind::SecurityGroupRuleCreate => "security group rule create",
        }
    }

    /// The parameters the command accepts.
    pub fn parameters(self) -> &'static [&'static str] {
        match self {
            CommandKind::ServerCreate => &["flavor", "image", "network", "name_prefix", "timeout"],
            CommandKind::ServerDelete
            | CommandKind::VolumeDelete
            | CommandKind::ServerAddVolume
            | CommandKind::ServerRemoveVolume
            | CommandKind::VolumeSnapshotDelete => &["timeout"],
            CommandKind::VolumeCreate => &["size", "name_prefix", "timeout"],
            CommandKind::ImageCreate => &[
                "size",
                "disk_format",
                "container_format",
                "name_prefix",
                "timeout",
            ],
            CommandKind::VolumeSnapshotCreate => &["name_prefix", "timeout"],
            CommandKind::NetworkCreate | CommandKind::SubnetCreate | CommandKind::RouterCreate => {
                &["name_prefix"]
            }
            CommandKind::PortCreate => &["network", "name_prefix"],
            CommandKind::FloatingIpCreate => &["network"],
            CommandKind::SecurityGroupRuleCreate => &["security_group"],
            CommandKind::ServerList
            | CommandKind::ImageList
            | CommandKind::FlavorList
            | CommandKind::NetworkList
            | CommandKind::NetworkDelete
            | CommandKind::SubnetDelete
            | CommandKind::PortDelete
            | CommandKind::RouterDelete
            | CommandKind::RouterAddSubnet
            | CommandKind::FloatingIpDelete
            | CommandKind::ImageDelete
            | CommandKind::TokenIssue => &[],
        }
    }
}

/// The largest `size` of `image create`: the bytes are generated and sent by the runner.
pub const IMAGE_CREATE_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// The largest `size` of `volume create`, in GiB.
pub const VOLUME_CREATE_MAX_GIB: i64 = 1024;

/// One stream of user commands.
#[derive(Debug, Clone, Serialize)]
pub struct WorkloadCommand {
    /// The command.
    pub command: CommandKind,
    /// Commands started per second.
    pub rate_per_second: f64,
    /// Commands in flight at most.
    pub concurrency: u32,
    /// Command parameters (validated per command).
    pub params: Vec<(String, String)>,
}

/// One experiment: a fault on a target, triggered once per repetition.
#[derive(Debug, Clone, Serialize)]
pub struct Experiment {
    /// Its name, unique in the campaign.
    pub name: Ident,
    /// Free text.
    pub description: Option<String>,
    /// The fault.
    pub fault: Fault,
    /// Where the fault lands.
    pub target: Target,
    /// When the fault lands.
    pub trigger: Trigger,
    /// How long the fault stays in effect.
    #[serde(with = "crate::units::duration_serde")]
    pub duration: Duration,
    /// Length of the fault window (from its start to the revert deadline).
    #[serde(with = "crate::units::duration_serde")]
    pub window: Duration,
    /// How often the experiment runs.
    pub repetitions: u32,
    /// Allow targets that are refused by default (e.g. filling `/`, stopping sshd).
    pub allow_destructive: bool,
}

/// Which hosts (and service) a fault lands on.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// The service acted on, when the fault is about a service.
    pub service: Option<ServiceRef>,
    /// The candidate hosts after role/host filtering, in inventory order.
    pub candidates: Vec<Ident>,
    /// How many of the candidates are picked.
    pub mode: SelectMode,
    /// Seed for the pick (the campaign seed when not given).
    pub seed: u64,
}

/// A resolved reference to a service of the testbed.
#[derive(Debug, Clone, Serialize)]
pub struct ServiceRef {
    /// Canonical name.
    pub name: Ident,
    /// How it runs.
    pub runtime: Runtime,
    /// Exact process name, when known.
    pub process: Option<ProcessName>,
    /// Its ports.
    pub ports: Vec<u16>,
}

/// How many candidate hosts a selector picks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum SelectMode {
    /// One host, picked at random (seeded).
    One,
    /// Every candidate.
    All,
    /// Exactly N hosts, picked at random (seeded).
    Fixed {
        /// N.
        count: u32,
    },
    /// This share of the candidates, rounded up, at least one.
    Percent {
        /// The share, 0..=100.
        percent: f64,
    },
}

/// When a fault lands inside its window.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Trigger {
    /// At a fixed offset after the window starts.
    After {
        /// The offset.
        #[serde(with = "crate::units::duration_serde")]
        offset: Duration,
    },
    /// When the tracer observes an operation (an execution point), at most `within` after the
    /// window starts; if it is not seen by then, the fault lands at `within`.
    Observed {
        /// What to wait for.
        point: ExecutionPoint,
        /// Only when observed on this host.
        host: Option<Ident>,
        /// Latest inject time.
        #[serde(with = "crate::units::duration_serde")]
        within: Duration,
    },
}

/// An operation the tracer can observe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "operation")]
pub enum ExecutionPoint {
    /// An RPC method, `topic.method` (e.g. `scheduler.select_destinations`) or just `method`.
    Rpc(String),
    /// A REST call, `METHOD /path/template` (e.g. `POST /v2.1/servers`).
    Rest(String),
}

/// The windows of an experiment a check applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Window {
    /// Before the fault.
    Baseline,
    /// While the fault is in effect.
    Fault,
    /// After the revert.
    Recovery,
}

impl Window {
    /// Every window, in time order.
    pub const ALL: &'static [Window] = &[Window::Baseline, Window::Fault, Window::Recovery];

    /// The name as written in campaigns.
    pub fn name(self) -> &'static str {
        match self {
            Window::Baseline => "baseline",
            Window::Fault => "fault",
            Window::Recovery => "recovery",
        }
    }
}

/// A measurable property of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "metric")]
pub enum Metric {
    /// Share of commands that succeeded, `0.0..=1.0`.
    SuccessRatio,
    /// A latency percentile of successful commands.
    Latency {
        /// Percentile in `0..=100`, e.g. 95.
        percentile: f64,
    },
    /// Time from the revert until the success ratio is back to its baseline level.
    RecoveryTime,
    /// Time from the fault until the workload is back at its baseline success ratio, whoever
    /// repaired it (a remediation action or the revert): the loop's time to recover.
    Mttr,
}

/// A bound a metric must respect.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bound {
    /// At least this ratio.
    MinRatio(f64),
    /// At most this ratio.
    MaxRatio(f64),
    /// At most this long.
    #[serde(with = "crate::units::duration_serde")]
    MaxDuration(Duration),
}

/// A steady-state check or SLO.
#[derive(Debug, Clone, Serialize)]
pub struct Hypothesis {
    /// Its name, unique in the campaign.
    pub name: Ident,
    /// What is measured.
    pub metric: Metric,
    /// The bound it must respect.
    pub bound: Bound,
    /// Windows it applies to (recovery-time: always recovery).
    pub windows: Vec<Window>,
    /// Only these workload commands (all when empty).
    pub commands: Vec<CommandKind>,
    /// Only these experiments (all when empty).
    pub experiments: Vec<Ident>,
}

/// A condition that aborts the campaign.
#[derive(Debug, Clone, Serialize)]
pub struct Guardrail {
    /// Its name.
    pub name: Ident,
    /// What is measured, continuously over a sliding window.
    pub metric: Metric,
    /// The bound whose breach aborts.
    pub bound: Bound,
    /// Sliding window length.
    #[serde(with = "crate::units::duration_serde")]
    pub over: Duration,
}

/// A detector to score.
#[derive(Debug, Clone, Serialize)]
pub struct Detector {
    /// Its name in reports.
    pub name: Ident,
    /// What it is.
    pub source: DetectorSource,
}

/// The built-in detectors.
pub const BUILTIN_DETECTORS: &[&str] = &["fingerprint", "timeout"];

/// Where a detector's alarms come from.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum DetectorSource {
    /// A built-in detector (`fingerprint`, `timeout`), with an optional fingerprint store.
    Builtin {
        /// Which one.
        builtin: String,
        /// Fingerprint store to use (learned from the baseline windows when absent).
        fingerprints: Option<PathBuf>,
    },
    /// An external command: events in on stdin, alarms out on stdout, JSON Lines.
    Command {
        /// argv; run without a shell.
        argv: Vec<String>,
    },
    /// A file of alarms (JSON Lines) written by another tool.
    AlarmsFile {
        /// The file.
        path: PathBuf,
    },
}

/// Window lengths and seed.
#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    /// Workload without faults before each experiment's fault window.
    #[serde(with = "crate::units::duration_serde")]
    pub baseline: Duration,
    /// Workload after the revert.
    #[serde(with = "crate::units::duration_serde")]
    pub recovery: Duration,
    /// Pause between repetitions, without measurement.
    #[serde(with = "crate::units::duration_serde")]
    pub cooldown: Duration,
    /// Campaign seed: target picks derive from it.
    pub seed: u64,
}

/// Result formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `report.json`.
    Json,
    /// `junit.xml`.
    Junit,
    /// `summary.md`.
    Markdown,
    /// `report.html`.
    Html,
}

/// Where and how results are written.
#[derive(Debug, Clone, Serialize)]
pub struct Output {
    /// Parent directory of run directories.
    pub dir: PathBuf,
    /// Formats to write.
    pub formats: Vec<Format>,
    /// The run history the run is recorded in, when the campaign names one: a `postgres://` URL
    /// or a SQLite file (resolved against the campaign's directory). Absent: the default
    /// `<dir>/history.sqlite`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
    /// Labels the run is recorded with (`release: "2025.1"`), checked by [`crate::labels`].
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}
