//! The safety rules: what a fault may not touch unless the experiment sets `allow_destructive`
//! (or, for the disk-fill margin, the fault sets `force`). This is the one home of every rule:
//! `validate` reports each [`Refusal`] at its `file:line:col`, and the injector's planner calls
//! the same [`refusals`] again before it builds a plan (defence in depth), so the two can never
//! disagree. Rules that need the host (free space, the real mount point of a path) are checked
//! at preflight by the injector, from the same tables ([`PROTECTED_TREES`]).
//!
//! Targets are judged by what they are, not by how they are spelled: paths by the tree they fall
//! in after normalization, processes by their name without directory, case or the kernel's
//! 15-character truncation, units by their base name, peers by the addresses they cover.

use std::net::IpAddr;

use crate::fault::{Fault, FillAmount, Peer};
use crate::model::{Runtime, ServiceRef};

/// Share of a filesystem a disk fill leaves free unless forced, in percent.
pub const DISK_FILL_KEEP_FREE_PERCENT: u64 = 2;

/// The highest fill percentage allowed without `force`.
pub const DISK_FILL_MAX_PERCENT: f64 = (100 - DISK_FILL_KEEP_FREE_PERCENT) as f64;

/// How far a protected tree reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// Only the directory itself (`/var`: filling it fills whatever `/var` holds).
    Exact,
    /// The directory and everything below it.
    Subtree,
}

/// Why a tree is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeKind {
    /// The host's own files: a full filesystem there breaks logins, logging or boot.
    System,
    /// The data of a stateful backend (database, broker): a full disk can corrupt it beyond
    /// what a revert repairs.
    ServiceData,
}

/// A protected tree of the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtectedTree {
    /// Its absolute, normalized path.
    pub path: &'static str,
    /// How far it reaches.
    pub extent: Extent,
    /// Why it is protected.
    pub kind: TreeKind,
}

impl ProtectedTree {
    /// True when the normalized `path` falls in this tree.
    pub fn contains(&self, path: &str) -> bool {
        match self.extent {
            Extent::Exact => path == self.path,
            Extent::Subtree => {
                path == self.path
                    || (self.path == "/" && path.starts_with('/'))
                    || path
                        .strip_prefix(self.path)
                        .is_some_and(|rest| rest.starts_with('/'))
            }
        }
    }
}

const fn tree(path: &'static str, extent: Extent, kind: TreeKind) -> ProtectedTree {
    ProtectedTree { path, extent, kind }
}

/// Trees a disk fill may not use without `allow_destructive`. `/home`, `/srv`, `/opt`, `/tmp`,
/// `/mnt` and a service's own store under `/var/lib` (e.g. `/var/lib/glance`) are not in it:
/// filling them is what an experiment means to do. Whether such a path still lies on a protected
/// filesystem (the root filesystem of a single-disk host) is decided at preflight.
pub const PROTECTED_TREES: &[ProtectedTree] = &[
    tree("/", Extent::Exact, TreeKind::System),
    tree("/bin", Extent::Subtree, TreeKind::System),
    tree("/boot", Extent::Subtree, TreeKind::System),
    tree("/dev", Extent::Subtree, TreeKind::System),
    tree("/etc", Extent::Subtree, TreeKind::System),
    tree("/lib", Extent::Subtree, TreeKind::System),
    tree("/lib32", Extent::Subtree, TreeKind::System),
    tree("/lib64", Extent::Subtree, TreeKind::System),
    tree("/libx32", Extent::Subtree, TreeKind::System),
    tree("/proc", Extent::Subtree, TreeKind::System),
    tree("/root", Extent::Subtree, TreeKind::System),
    tree("/run", Extent::Subtree, TreeKind::System),
    tree("/sbin", Extent::Subtree, TreeKind::System),
    tree("/sys", Extent::Subtree, TreeKind::System),
    tree("/usr", Extent::Subtree, TreeKind::System),
    tree("/var", Extent::Exact, TreeKind::System),
    tree("/var/lib", Extent::Exact, TreeKind::System),
    tree("/var/lib/apt", Extent::Subtree, TreeKind::System),
    tree("/var/lib/dpkg", Extent::Subtree, TreeKind::System),
    tree("/var/lib/systemd", Extent::Subtree, TreeKind::System),
    tree("/var/lock", Extent::Subtree, TreeKind::System),
    tree("/var/log", Extent::Subtree, TreeKind::System),
    tree("/var/run", Extent::Subtree, TreeKind::System),
    tree("/var/lib/etcd", Extent::Subtree, TreeKind::ServiceData),
    tree("/var/lib/mongodb", Extent::Subtree, TreeKind::ServiceData),
    tree("/var/lib/mysql", Extent::Subtree, TreeKind::ServiceData),
    tree(
        "/var/lib/postgresql",
        Extent::Subtree,
        TreeKind::ServiceData,
    ),
    tree("/var/lib/rabbitmq", Extent::Subtree, TreeKind::ServiceData),
    tree("/var/lib/redis", Extent::Subtree, TreeKind::ServiceData),
];

/// The path with repeated and trailing slashes removed and `.`/`..` resolved lexically
/// (`//etc/` → `/etc`, `/srv/../etc` → `/etc`). Symlinks are the host's to resolve.
pub fn normalize_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The protected tree a path falls in, judged after normalization.
pub fn protected_tree(path: &str) -> Option<&'static ProtectedTree> {
    let path = normalize_path(path);
    PROTECTED_TREES.iter().find(|tree| tree.contains(&path))
}

/// A process or unit the injector must not stop, kill or freeze.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    /// PID 1 (`systemd`, `init`): killing it takes the host down.
    Init,
    /// The SSH server: the runner would lose the host and could not revert the fault.
    SshServer,
    /// `systemd-journald`: every service's logging blocks on it.
    Journal,
}

impl Guarded {
    /// What it is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Guarded::Init => "PID 1, the host's init",
            Guarded::SshServer => "the SSH server the runner reaches the host through",
            Guarded::Journal => "systemd-journald, which every service logs through",
        }
    }
}

/// The kernel keeps this many characters of a process name (`comm`); `pgrep -x` compares them.
const COMM_LENGTH: usize = 15;

/// What a process name is, judged without directory (`/usr/sbin/sshd`), a process-title suffix
/// (`sshd:`), case, or the kernel's truncation (`systemd-journal`).
pub fn process_identity(name: &str) -> Option<Guarded> {
    let name = name.trim();
    let name = name.rsplit('/').next().unwrap_or(name);
    let name = name.split(':').next().unwrap_or(name).to_ascii_lowercase();
    let comm: String = name.chars().take(COMM_LENGTH).collect();
    let is = |full: &str| comm == full.chars().take(COMM_LENGTH).collect::<String>();
    if name == "1" || is("systemd") || is("init") {
        Some(Guarded::Init)
    } else if is("sshd") || is("sshd-session") || is("sshd-auth") {
        Some(Guarded::SshServer)
    } else if is("systemd-journald") {
        Some(Guarded::Journal)
    } else {
        None
    }
}

/// What a systemd unit is, judged by its base name: `ssh.socket`, `openssh-server.service`,
/// `ssh@3-10.0.0.1:22.service` and `sshd` are all the SSH server.
pub fn unit_identity(unit: &str) -> Option<Guarded> {
    let base = unit.trim().to_ascii_lowercase();
    let base = base
        .strip_suffix(".service")
        .or_else(|| base.strip_suffix(".socket"))
        .unwrap_or(&base);
    let base = base.split('@').next().unwrap_or(base);
    match base {
        "ssh" | "sshd" | "openssh-server" | "openssh" => Some(Guarded::SshServer),
        "systemd-journald" => Some(Guarded::Journal),
        "init" | "systemd" => Some(Guarded::Init),
        _ => None,
    }
}

/// A peer's address parsed as an IP address with an optional prefix length (`10.0.0.0/8`).
pub fn parse_network(text: &str) -> Option<(IpAddr, Option<u8>)> {
    match text.split_once('/') {
        Some((address, prefix_text)) => {
            let address: IpAddr = address.parse().ok()?;
            let max = if address.is_ipv4() { 32 } else { 128 };
            let prefix: u8 = prefix_text.parse().ok().filter(|p| *p <= max)?;
            // A prefix is digits only: `+8` and `08` parse as numbers but are not CIDR.
            (prefix.to_string() == prefix_text).then_some((address, Some(prefix)))
        }
        None => text.parse().ok().map(|address| (address, None)),
    }
}

/// True when the peers together cover every IPv4 or every IPv6 address (`0.0.0.0/0`, `::/0`,
/// or pairs such as `0.0.0.0/1` + `128.0.0.0/1`).
pub fn covers_every_address(peers: &[Peer]) -> bool {
    let mut v4: Vec<(u128, u128)> = Vec::new();
    let mut v6: Vec<(u128, u128)> = Vec::new();
    for (address, prefix) in peers.iter().filter_map(|p| parse_network(&p.address)) {
        let (bits, value, ranges) = match address {
            IpAddr::V4(a) => (32u32, u128::from(u32::from(a)), &mut v4),
            IpAddr::V6(a) => (128u32, u128::from(a), &mut v6),
        };
        let prefix = u32::from(prefix.unwrap_or(bits as u8));
        let host_bits = bits - prefix;
        let mask = if host_bits == 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        ranges.push((value & !mask, (value & !mask) | mask));
    }
    let covers = |mut ranges: Vec<(u128, u128)>, max: u128| {
        ranges.sort_unstable();
        let mut next = 0u128;
        for (start, end) in ranges {
            if start > next {
                return false;
            }
            if end >= max {
                return true;
            }
            next = next.max(end + 1);
        }
        false
    };
    covers(v4, u128::from(u32::MAX)) || covers(v6, u128::MAX)
}

/// What lifts a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lift {
    /// `allow_destructive: true` on the experiment.
    AllowDestructive,
    /// `force: true` on the disk fill.
    Force,
    /// Nothing: the fault cannot act on this service the way it runs.
    Never,
}

/// The part of the fault (or its target) a refusal is about, so that `validate` can point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The disk fill's `path`.
    Path,
    /// The disk fill's `percent` or `size`.
    Amount,
    /// The process-kill's `process`.
    Process,
    /// The target's `service`.
    Service,
    /// The network fault's `peers`.
    Peers,
    /// The network fault's `ports`.
    Ports,
    /// The fault as a whole.
    Fault,
}

/// One reason a fault is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What it is about.
    pub subject: Subject,
    /// What would go wrong, in a sentence that starts with "refusing".
    pub message: String,
    /// What lifts it.
    pub lift: Lift,
}

impl Refusal {
    /// How to lift it, as written in a campaign.
    pub fn hint(&self) -> &'static str {
        match self.lift {
            Lift::AllowDestructive => {
                "set `allow_destructive: true` on the experiment if you really mean it"
            }
            Lift::Force => "fill to at most 98%, give a `size`, or set `force: true`",
            Lift::Never => {
                "pick another fault kind for this service, or a service that runs as a systemd unit"
            }
        }
    }
}

/// An SSH port the runner uses: a candidate host's name and the port of its SSH server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshPort<'a> {
    /// The host.
    pub host: &'a str,
    /// Its SSH port.
    pub port: u16,
}

/// The fault as it lands on `service`: a network fault without ports on a container with the
/// host's network is narrowed to the service's own ports (its traffic), as `validate` does.
pub fn narrowed_to_service(fault: Fault, service: Option<&ServiceRef>) -> Fault {
    let Some(service) = service.filter(|s| matches!(s.runtime, Runtime::Container { .. })) else {
        return fault;
    };
    let mut fault = fault;
    if let Fault::NetworkDelay { ports, .. }
    | Fault::NetworkLoss { ports, .. }
    | Fault::NetworkPartition { ports, .. }
    | Fault::NetworkReset { ports, .. } = &mut fault
        && ports.is_empty()
    {
        ports.clone_from(&service.ports);
    }
    fault
}

/// Every reason to refuse `fault` on `service` at hosts reached over `ssh_ports`, lifted ones
/// left out. Needs no host: `validate` and the injector's planner both call it.
pub fn refusals(
    fault: &Fault,
    service: Option<&ServiceRef>,
    ssh_ports: &[SshPort<'_>],
    allow_destructive: bool,
) -> Vec<Refusal> {
    let mut out = Vec::new();
    let destructive = |subject: Subject, message: String| Refusal {
        subject,
        message,
        lift: Lift::AllowDestructive,
    };
    let acts_on_service = matches!(
        fault,
        Fault::ProcessKill { process: None, .. }
            | Fault::ServiceStop
            | Fault::ServiceRestart
            | Fault::ServiceKill { .. }
            | Fault::ProcessFreeze { .. }
            | Fault::ClockSkew { .. }
    );
    if let (true, Some(service)) = (acts_on_service, service) {
        // By meaning, whatever the runtime: the unit systemd runs (on the host or inside an
        // LXC container), a container named after one, or the process.
        let runtime_identity = match &service.runtime {
            Runtime::Unit(unit) => unit_identity(unit.as_str()),
            Runtime::Container { name, unit, .. } => unit
                .as_ref()
                .and_then(|unit| unit_identity(unit.as_str()))
                .or_else(|| unit_identity(name.as_str()))
                .or_else(|| process_identity(name.as_str())),
            Runtime::Lxc { unit, .. } => unit_identity(unit.as_str()),
        };
        let guarded = runtime_identity.or_else(|| {
            service
                .process
                .as_ref()
                .and_then(|p| process_identity(p.as_str()))
        });
        if let Some(guarded) = guarded {
            out.push(destructive(
                Subject::Service,
                format!(
                    "refusing {} on service {} ({}): it is {}",
                    fault.kind(),
                    service.name,
                    service.runtime.describe(),
                    guarded.describe()
                ),
            ));
        }
    }
    if let (Fault::ClockSkew { .. }, Some(service)) = (fault, service)
        && let Runtime::Container { name, .. } = &service.runtime
    {
        out.push(Refusal {
            subject: Subject::Service,
            message: format!(
                "clock-skew cannot act on service {} (container {name}): it restarts a systemd unit with libfaketime preloaded, and a container's environment is fixed when it is created",
                service.name
            ),
            lift: Lift::Never,
        });
    }
    // A container with the host's network shares it with every other service of the host: a
    // network fault on it must say which traffic is the service's (its ports).
    if let (
        Fault::NetworkDelay { ports, .. }
        | Fault::NetworkLoss { ports, .. }
        | Fault::NetworkPartition { ports, .. }
        | Fault::NetworkReset { ports, .. },
        Some(service),
    ) = (fault, service)
        && let Runtime::Container { name, .. } = &service.runtime
        && ports.is_empty()
    {
        out.push(destructive(
            Subject::Ports,
            format!(
                "refusing {} on service {} without ports: container {name} uses the host's network, so the fault would hit every service of the host",
                fault.kind(),
                service.name
            ),
        ));
    }
    match fault {
        Fault::ProcessKill {
            process: Some(process),
            ..
        } => {
            if let Some(guarded) = process_identity(process.as_str()) {
                out.push(destructive(
                    Subject::Process,
                    format!("refusing to kill {process}: it is {}", guarded.describe()),
                ));
            }
        }
        Fault::DiskFill {
            path,
            amount,
            force,
        } => {
            if let Some(tree) = protected_tree(path.as_str()) {
                let what = match tree.kind {
                    TreeKind::System => "the host's system files",
                    TreeKind::ServiceData => "a stateful backend's data",
                };
                let normal = normalize_path(path.as_str());
                let within = if normal != tree.path {
                    format!(" (it lies in {})", tree.path)
                } else if normal != path.as_str() {
                    format!(" (that is {normal})")
                } else {
                    String::new()
                };
                out.push(destructive(
                    Subject::Path,
                    format!("refusing to fill {path}{within}: it holds {what}"),
                ));
            }
            if let (FillAmount::Percent(percent), false) = (amount, force)
                && percent.get() > DISK_FILL_MAX_PERCENT
            {
                out.push(Refusal {
                    subject: Subject::Amount,
                    message: format!(
                        "refusing to fill to {}%: that leaves less than the {DISK_FILL_KEEP_FREE_PERCENT}% safety margin",
                        percent.get()
                    ),
                    lift: Lift::Force,
                });
            }
        }
        _ => {}
    }
    let (peers, ports) = match fault {
        Fault::NetworkDelay { peers, ports, .. }
        | Fault::NetworkLoss { peers, ports, .. }
        | Fault::NetworkPartition { peers, ports }
        | Fault::NetworkReset { ports, peers } => (peers.as_slice(), ports.as_slice()),
        _ => return lifted(out, allow_destructive),
    };
    if let Fault::NetworkPartition { .. } = fault
        && ports.is_empty()
        && (peers.is_empty() || covers_every_address(peers))
    {
        out.push(destructive(
            if peers.is_empty() {
                Subject::Fault
            } else {
                Subject::Peers
            },
            "refusing a partition from every address: it cuts the host from everything".into(),
        ));
    }
    let mut cut: Vec<String> = Vec::new();
    for ssh in ssh_ports.iter().filter(|ssh| ports.contains(&ssh.port)) {
        cut.push(format!("{} of host {}", ssh.port, ssh.host));
    }
    if !cut.is_empty() {
        out.push(destructive(
            Subject::Ports,
            format!(
                "refusing {} on the SSH port ({}): the runner's control channel must stay untouched",
                fault.kind(),
                cut.join(", ")
            ),
        ));
    }
    lifted(out, allow_destructive)
}

fn lifted(mut refusals: Vec<Refusal>, allow_destructive: bool) -> Vec<Refusal> {
    refusals.retain(|refusal| !(allow_destructive && refusal.lift == Lift::AllowDestructive));
    refusals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Signal;
    use crate::units::{Ident, PathName, Percent, ProcessName, UnitName};

    fn fill(path: &str, percent: f64, force: bool) -> Fault {
        Fault::DiskFill {
            path: PathName::new(path).unwrap(),
            amount: FillAmount::Percent(Percent::new(percent).unwrap()),
            force,
        }
    }

    fn peer(address: &str) -> Peer {
        Peer {
            name: address.into(),
            address: address.into(),
        }
    }

    fn service(unit: &str, process: Option<&str>) -> ServiceRef {
        ServiceRef {
            name: Ident::new("svc").unwrap(),
            runtime: Runtime::Unit(UnitName::new(unit).unwrap()),
            process: process.map(|p| ProcessName::new(p).unwrap()),
            ports: vec![],
        }
    }

    #[test]
    fn system_and_service_data_trees_are_protected_by_meaning() {
        for path in [
            "/",
            "//",
            "//etc",
            "/etc/",
            "/etc/ssl",
            "/usr/local",
            "/var",
            "/var/",
            "/var/log",
            "/var/log/nova",
            "/root",
            "/boot/efi",
            "/var/lib",
            "/var/lib/rabbitmq",
            "/var/lib/mysql/nova",
            "/dev/shm",
            "/run",
            "/run/user/0",
            "/var/run",
            "/srv/../etc",
            "/lib64",
        ] {
            assert!(protected_tree(path).is_some(), "{path} must be protected");
        }
        for path in [
            "/srv",
            "/srv/glance",
            "/opt/stack/data",
            "/home/stack",
            "/tmp",
            "/var/lib/glance/images",
            "/var/tmp",
            "/etcetera",
            "/variable",
            "/usrdata",
        ] {
            assert!(
                protected_tree(path).is_none(),
                "{path} must not be protected"
            );
        }
        assert_eq!(
            protected_tree("/var/lib/rabbitmq/mnesia").map(|t| t.kind),
            Some(TreeKind::ServiceData)
        );
    }

    #[test]
    fn paths_normalize_lexically() {
        assert_eq!(normalize_path("//etc//ssl/"), "/etc/ssl");
        assert_eq!(normalize_path("/srv/./a/../b"), "/srv/b");
        assert_eq!(normalize_path("/.."), "/");
        assert_eq!(normalize_path("/"), "/");
    }

    #[test]
    fn processes_are_judged_without_directory_case_or_truncation() {
        for (name, guarded) in [
            ("sshd", Guarded::SshServer),
            ("/usr/sbin/sshd", Guarded::SshServer),
            ("sshd:", Guarded::SshServer),
            ("SSHD", Guarded::SshServer),
            ("sshd-session", Guarded::SshServer),
            ("systemd", Guarded::Init),
            ("init", Guarded::Init),
            ("/sbin/init", Guarded::Init),
            ("1", Guarded::Init),
            ("systemd-journald", Guarded::Journal),
            ("systemd-journal", Guarded::Journal),
        ] {
            assert_eq!(process_identity(name), Some(guarded), "{name}");
        }
        for name in ["ssh", "nova-conductor", "systemd-udevd", "11", "sshdx"] {
            assert_eq!(process_identity(name), None, "{name}");
        }
    }

    #[test]
    fn ssh_units_are_recognised_in_every_spelling() {
        for unit in [
            "ssh",
            "ssh.service",
            "ssh.socket",
            "sshd.service",
            "openssh-server.service",
            "ssh@3-10.0.0.1:22.service",
            "sshd@0.service",
        ] {
            assert_eq!(unit_identity(unit), Some(Guarded::SshServer), "{unit}");
        }
        assert_eq!(
            unit_identity("systemd-journald.socket"),
            Some(Guarded::Journal)
        );
        for unit in ["devstack@n-cond", "ssh-agent.service", "rabbitmq-server"] {
            assert_eq!(unit_identity(unit), None, "{unit}");
        }
    }

    #[test]
    fn peer_coverage_is_computed_over_the_union_of_networks() {
        assert!(covers_every_address(&[peer("0.0.0.0/0")]));
        assert!(covers_every_address(&[peer("::/0")]));
        assert!(covers_every_address(&[peer("10.1.2.3/0")]));
        assert!(covers_every_address(&[
            peer("128.0.0.0/1"),
            peer("0.0.0.0/1")
        ]));
        assert!(!covers_every_address(&[
            peer("0.0.0.0/1"),
            peer("::/1"),
            peer("10.0.0.1")
        ]));
        assert!(!covers_every_address(&[peer("10.0.0.0/8")]));
        assert!(!covers_every_address(&[]));
        assert_eq!(parse_network("10.0.0.0/08"), None);
        assert_eq!(parse_network("10.0.0.0/33"), None);
        assert!(parse_network("fe80::1/64").is_some());
    }

    #[test]
    fn refusals_are_lifted_only_by_their_own_switch() {
        let full = fill("/srv", 100.0, false);
        let found = refusals(&full, None, &[], true);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].lift, Lift::Force);
        assert!(refusals(&fill("/srv", 100.0, true), None, &[], false).is_empty());
        assert!(refusals(&fill("/srv", 98.0, false), None, &[], false).is_empty());
        let etc = fill("/etc/ssl", 100.0, true);
        assert_eq!(refusals(&etc, None, &[], false)[0].subject, Subject::Path);
        assert!(refusals(&etc, None, &[], true).is_empty());
        let stop = Fault::ServiceStop;
        let ssh = service("ssh.socket", None);
        assert_eq!(refusals(&stop, Some(&ssh), &[], false).len(), 1);
        let journald = service("devstack@logs", Some("systemd-journald"));
        let kill = Fault::ProcessKill {
            signal: Signal::Kill,
            process: None,
        };
        assert_eq!(refusals(&kill, Some(&journald), &[], false).len(), 1);
        let loss = Fault::NetworkLoss {
            percent: Percent::new(10.0).unwrap(),
            direction: crate::fault::Direction::Both,
            peers: vec![],
            ports: vec![2222],
        };
        let ports = [SshPort {
            host: "compute1",
            port: 2222,
        }];
        let found = refusals(&loss, None, &ports, false);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("2222 of host compute1"));
        assert!(refusals(&loss, None, &[], false).is_empty());
    }

    #[test]
    fn containerised_services_are_judged_by_what_they_run() {
        use crate::model::Engine;
        use crate::units::ContainerName;
        let stop = Fault::ServiceStop;
        let in_container = |name: &str, unit: Option<&str>| ServiceRef {
            name: Ident::new("svc").unwrap(),
            runtime: Runtime::Container {
                engine: Engine::Podman,
                name: ContainerName::new(name).unwrap(),
                unit: unit.map(|u| UnitName::new(u).unwrap()),
            },
            process: None,
            ports: vec![],
        };
        let sshd = in_container("sshd", None);
        let found = refusals(&stop, Some(&sshd), &[], false);
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("podman container sshd"));
        assert!(refusals(&stop, Some(&sshd), &[], true).is_empty());
        let supervised = in_container("conductor", Some("ssh.service"));
        assert_eq!(refusals(&stop, Some(&supervised), &[], false).len(), 1);
        let nova = in_container(
            "nova_conductor",
            Some("kolla-nova_conductor-container.service"),
        );
        assert!(refusals(&stop, Some(&nova), &[], false).is_empty());
        let lxc = ServiceRef {
            name: Ident::new("svc").unwrap(),
            runtime: Runtime::Lxc {
                unit: UnitName::new("systemd-journald").unwrap(),
                containers: vec![(
                    Ident::new("infra1").unwrap(),
                    ContainerName::new("infra1_utility_container-1a2b3c4d").unwrap(),
                )],
            },
            process: None,
            ports: vec![],
        };
        assert_eq!(refusals(&stop, Some(&lxc), &[], false).len(), 1);
    }
}
