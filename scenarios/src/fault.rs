//! The fault catalog as the campaign language sees it: every fault kind with its typed, validated
//! parameters. The `injector` crate turns a [`Fault`] into commands; this module only says what a
//! fault *is*, so that a campaign can be checked without touching a host.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::units::{Bytes, InterfaceName, PathName, Percent, ProcessName, SqlIdent};

/// Every fault kind, in the order `butterfly faults` lists them.
pub const FAULT_KINDS: &[FaultKind] = &[
    FaultKind::ProcessKill,
    FaultKind::ServiceStop,
    FaultKind::ServiceRestart,
    FaultKind::ServiceKill,
    FaultKind::ProcessFreeze,
    FaultKind::NetworkDelay,
    FaultKind::NetworkLoss,
    FaultKind::NetworkPartition,
    FaultKind::NetworkReset,
    FaultKind::NetworkBandwidth,
    FaultKind::DiskFill,
    FaultKind::CpuStress,
    FaultKind::MemoryStress,
    FaultKind::ClockSkew,
    FaultKind::RabbitmqCloseConnections,
    FaultKind::RabbitmqMemoryAlarm,
    FaultKind::RabbitmqStopApp,
    FaultKind::MariadbKillConnections,
    FaultKind::MariadbLockTables,
];

/// The name of a fault kind, as written in a campaign (`kind: process-kill`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Send a signal to a service's main process or to processes with an exact name.
    ProcessKill,
    /// `systemctl stop` the unit; revert starts it again.
    ServiceStop,
    /// `systemctl restart` the unit (a one-shot fault: nothing to revert).
    ServiceRestart,
    /// `systemctl kill -s SIG` the unit; revert starts it if it stayed down.
    ServiceKill,
    /// Freeze the service (cgroup freezer or SIGSTOP); revert thaws it.
    ProcessFreeze,
    /// Delay packets (netem where available, an NFQUEUE delayer otherwise).
    NetworkDelay,
    /// Drop a percentage of packets.
    NetworkLoss,
    /// Drop all traffic to and from peers, or to a port.
    NetworkPartition,
    /// Reset TCP connections on ports.
    NetworkReset,
    /// Limit bandwidth with tbf (egress) or ifb + tbf (ingress).
    NetworkBandwidth,
    /// Fill a filesystem with a file up to a size or a percentage.
    DiskFill,
    /// Load CPUs with stress-ng.
    CpuStress,
    /// Allocate and hold memory with stress-ng.
    MemoryStress,
    /// Run the unit under libfaketime with a clock offset.
    ClockSkew,
    /// Close every client connection of RabbitMQ.
    RabbitmqCloseConnections,
    /// Raise RabbitMQ's memory alarm so that publishers block.
    RabbitmqMemoryAlarm,
    /// Stop the RabbitMQ application (the Erlang node stays up).
    RabbitmqStopApp,
    /// Kill MariaDB client connections.
    MariadbKillConnections,
    /// Hold a read lock on tables for the fault's duration.
    MariadbLockTables,
}

impl FaultKind {
    /// The kind's name as written in campaigns.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::ProcessKill => "process-kill",
            FaultKind::ServiceStop => "service-stop",
            FaultKind::ServiceRestart => "service-restart",
            FaultKind::ServiceKill => "service-kill",
            FaultKind::ProcessFreeze => "process-freeze",
            FaultKind::NetworkDelay => "network-delay",
            FaultKind::NetworkLoss => "network-loss",
            FaultKind::NetworkPartition => "network-partition",
            FaultKind::NetworkReset => "network-reset",
            FaultKind::NetworkBandwidth => "network-bandwidth",
            FaultKind::DiskFill => "disk-fill",
            FaultKind::CpuStress => "cpu-stress",
            FaultKind::MemoryStress => "memory-stress",
            FaultKind::ClockSkew => "clock-skew",
            FaultKind::RabbitmqCloseConnections => "rabbitmq-close-connections",
            FaultKind::RabbitmqMemoryAlarm => "rabbitmq-memory-alarm",
            FaultKind::RabbitmqStopApp => "rabbitmq-stop-app",
            FaultKind::MariadbKillConnections => "mariadb-kill-connections",
            FaultKind::MariadbLockTables => "mariadb-lock-tables",
        }
    }

    /// Looks a kind up by its campaign name.
    pub fn from_name(name: &str) -> Option<FaultKind> {
        FAULT_KINDS.iter().copied().find(|kind| kind.name() == name)
    }

    /// One line saying what the fault does, for `butterfly faults` and the schema.
    pub fn description(self) -> &'static str {
        match self {
            FaultKind::ProcessKill => {
                "send a signal to the service's main PID (systemctl show -p MainPID) or to processes with an exact name"
            }
            FaultKind::ServiceStop => "systemctl stop the service's unit; revert starts it again",
            FaultKind::ServiceRestart => "systemctl restart the service's unit (one-shot)",
            FaultKind::ServiceKill => {
                "systemctl kill -s SIGNAL the unit; revert starts it if it stayed down"
            }
            FaultKind::ProcessFreeze => {
                "freeze the unit's processes (cgroup freezer, or SIGSTOP); revert thaws them"
            }
            FaultKind::NetworkDelay => {
                "delay packets, optionally only to given peers/ports (netem, or an NFQUEUE delayer where netem is missing)"
            }
            FaultKind::NetworkLoss => {
                "drop a percentage of packets to/from given peers/ports (nft numgen)"
            }
            FaultKind::NetworkPartition => {
                "drop all traffic between the target and peers, or to given ports (nft)"
            }
            FaultKind::NetworkReset => {
                "reset TCP connections on given ports (nft reject with tcp reset)"
            }
            FaultKind::NetworkBandwidth => "limit bandwidth (tbf egress; ifb + tbf ingress)",
            FaultKind::DiskFill => {
                "fill the filesystem holding a path up to a size or a percentage (fallocate), within a safety margin"
            }
            FaultKind::CpuStress => "load CPUs with stress-ng, bounded by the fault's duration",
            FaultKind::MemoryStress => "allocate and hold memory with stress-ng, bounded",
            FaultKind::ClockSkew => {
                "restart the unit under libfaketime with a clock offset (systemd drop-in); revert removes it"
            }
            FaultKind::RabbitmqCloseConnections => "close every client connection (rabbitmqctl)",
            FaultKind::RabbitmqMemoryAlarm => {
                "raise the memory alarm so that publishers block (rabbitmqctl set_vm_memory_high_watermark)"
            }
            FaultKind::RabbitmqStopApp => {
                "stop the RabbitMQ application (rabbitmqctl stop_app); revert starts it"
            }
            FaultKind::MariadbKillConnections => "kill client connections, optionally of one user",
            FaultKind::MariadbLockTables => "hold a read lock on tables for the fault's duration",
        }
    }

    /// The parameters this kind accepts, with a short description each.
    pub fn parameters(self) -> &'static [(&'static str, &'static str)] {
        match self {
            FaultKind::ProcessKill => &[
                (
                    "signal",
                    "signal name, default KILL (KILL, TERM, INT, HUP, QUIT, ABRT, USR1, USR2)",
                ),
                (
                    "process",
                    "kill processes with this exact name instead of the unit's main PID",
                ),
            ],
            FaultKind::ServiceStop | FaultKind::ServiceRestart => &[],
            FaultKind::ServiceKill => &[("signal", "signal name, default KILL")],
            FaultKind::ProcessFreeze => &[(
                "method",
                "cgroup (whole unit, default) or sigstop (main PID)",
            )],
            FaultKind::NetworkDelay => &[
                ("delay", "added delay, e.g. 100ms (required)"),
                ("jitter", "random variation, e.g. 10ms (default 0)"),
                ("interface", "network interface, default eth0"),
                ("direction", "egress (default), ingress or both"),
                ("peers", "only towards these hosts, roles or addresses"),
                ("ports", "only these TCP/UDP ports"),
            ],
            FaultKind::NetworkLoss => &[
                ("percent", "share of packets dropped, 0..=100 (required)"),
                ("direction", "egress, ingress or both (default)"),
                ("peers", "only to/from these hosts, roles or addresses"),
                ("ports", "only these ports"),
            ],
            FaultKind::NetworkPartition => &[
                ("peers", "hosts, roles or addresses cut off from the target"),
                ("ports", "ports cut off (all peers) when no peers are given"),
            ],
            FaultKind::NetworkReset => &[
                ("ports", "TCP ports whose connections are reset (required)"),
                ("peers", "only connections with these peers"),
            ],
            FaultKind::NetworkBandwidth => &[
                ("rate", "rate limit, e.g. 1mbit (required)"),
                ("burst", "bucket size, e.g. 32KiB (default 32KiB)"),
                ("interface", "network interface, default eth0"),
                ("direction", "egress (default) or ingress"),
            ],
            FaultKind::DiskFill => &[
                ("path", "a directory on the filesystem to fill (required)"),
                (
                    "size",
                    "bytes to allocate, e.g. 512MiB (size or percent required)",
                ),
                ("percent", "fill the filesystem up to this usage percentage"),
                (
                    "force",
                    "allow filling beyond the safety margin (default false)",
                ),
            ],
            FaultKind::CpuStress => &[
                ("workers", "number of stressor workers, default 1"),
                ("load", "load per worker in percent, default 100"),
            ],
            FaultKind::MemoryStress => &[
                ("size", "memory to hold, e.g. 256MiB (required)"),
                ("workers", "number of stressor workers, default 1"),
            ],
            FaultKind::ClockSkew => &[("offset", "clock offset, e.g. +2h or -30m (required)")],
            FaultKind::RabbitmqCloseConnections
            | FaultKind::RabbitmqMemoryAlarm
            | FaultKind::RabbitmqStopApp => &[],
            FaultKind::MariadbKillConnections => {
                &[("user", "only connections of this database user")]
            }
            FaultKind::MariadbLockTables => &[
                ("database", "database name (required)"),
                ("tables", "table names (required)"),
            ],
        }
    }

    /// True when the fault acts on a service (so the target must name one).
    pub fn needs_service(self) -> bool {
        matches!(
            self,
            FaultKind::ServiceStop
                | FaultKind::ServiceRestart
                | FaultKind::ServiceKill
                | FaultKind::ProcessFreeze
                | FaultKind::ClockSkew
        )
    }

    /// True when the fault has a lasting effect that a revert undoes (false for one-shot faults
    /// such as a restart or a kill that systemd heals by itself).
    pub fn is_reversible(self) -> bool {
        !matches!(
            self,
            FaultKind::ServiceRestart
                | FaultKind::RabbitmqCloseConnections
                | FaultKind::MariadbKillConnections
        )
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A POSIX signal a fault may send. Only signals that make sense against a service are allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Signal {
    /// SIGKILL.
    Kill,
    /// SIGTERM.
    Term,
    /// SIGINT.
    Int,
    /// SIGHUP.
    Hup,
    /// SIGQUIT.
    Quit,
    /// SIGABRT.
    Abrt,
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2.
    Usr2,
}

impl Signal {
    /// Every accepted signal.
    pub const ALL: &'static [Signal] = &[
        Signal::Kill,
        Signal::Term,
        Signal::Int,
        Signal::Hup,
        Signal::Quit,
        Signal::Abrt,
        Signal::Usr1,
        Signal::Usr2,
    ];

    /// The name without the `SIG` prefix, as `kill -s` and `systemctl kill -s` take it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Kill => "KILL",
            Signal::Term => "TERM",
            Signal::Int => "INT",
            Signal::Hup => "HUP",
            Signal::Quit => "QUIT",
            Signal::Abrt => "ABRT",
            Signal::Usr1 => "USR1",
            Signal::Usr2 => "USR2",
        }
    }

    /// Parses `KILL`, `SIGKILL` or `9`-style names (case-insensitive, numbers not accepted).
    pub fn parse(text: &str) -> Option<Signal> {
        let upper = text.trim().to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        Signal::ALL
            .iter()
            .copied()
            .find(|signal| signal.name() == bare)
    }
}

/// How a freeze is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FreezeMethod {
    /// The cgroup freezer for every process of the unit.
    Cgroup,
    /// SIGSTOP to the main PID, SIGCONT to revert.
    Sigstop,
}

/// Which traffic a network fault applies to, seen from the target host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Packets leaving the target.
    Egress,
    /// Packets arriving at the target.
    Ingress,
    /// Both.
    Both,
}

/// A peer of a network fault, resolved to an address during validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// How the campaign named it: a host name, a role, or the address itself.
    pub name: String,
    /// The IPv4/IPv6 address or CIDR network, validated.
    pub address: String,
}

/// How much of a filesystem a disk fill takes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FillAmount {
    /// Allocate this many bytes (capped by the safety margin unless forced).
    Size(Bytes),
    /// Fill until the filesystem's usage reaches this percentage.
    Percent(Percent),
}

/// A validated fault: its kind with typed parameters. Every name in it is checked against a strict
/// pattern, so that the injector can pass it to a remote command as a single quoted argument.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Fault {
    /// See [`FaultKind::ProcessKill`].
    ProcessKill {
        /// The signal to send.
        signal: Signal,
        /// Exact process name to match instead of the unit's main PID.
        process: Option<ProcessName>,
    },
    /// See [`FaultKind::ServiceStop`].
    ServiceStop,
    /// See [`FaultKind::ServiceRestart`].
    ServiceRestart,
    /// See [`FaultKind::ServiceKill`].
    ServiceKill {
        /// The signal to send.
        signal: Signal,
    },
    /// See [`FaultKind::ProcessFreeze`].
    ProcessFreeze {
        /// How to freeze.
        method: FreezeMethod,
    },
    /// See [`FaultKind::NetworkDelay`].
    NetworkDelay {
        /// Added delay.
        #[serde(with = "crate::units::duration_serde")]
        delay: Duration,
        /// Random variation around the delay.
        #[serde(with = "crate::units::duration_serde")]
        jitter: Duration,
        /// The interface to act on.
        interface: InterfaceName,
        /// Which traffic.
        direction: Direction,
        /// Only towards these peers (all when empty).
        peers: Vec<Peer>,
        /// Only these ports (all when empty).
        ports: Vec<u16>,
    },
    /// See [`FaultKind::NetworkLoss`].
    NetworkLoss {
        /// Share of packets dropped.
        percent: Percent,
        /// Which traffic.
        direction: Direction,
        /// Only to/from these peers (all when empty).
        peers: Vec<Peer>,
        /// Only these ports (all when empty).
        ports: Vec<u16>,
    },
    /// See [`FaultKind::NetworkPartition`].
    NetworkPartition {
        /// Peers cut off from the target (all traffic when empty and `ports` is given).
        peers: Vec<Peer>,
        /// Ports cut off.
        ports: Vec<u16>,
    },
    /// See [`FaultKind::NetworkReset`].
    NetworkReset {
        /// Ports whose connections are reset.
        ports: Vec<u16>,
        /// Only connections with these peers (all when empty).
        peers: Vec<Peer>,
    },
    /// See [`FaultKind::NetworkBandwidth`].
    NetworkBandwidth {
        /// Rate limit in bits per second.
        rate_bits_per_second: u64,
        /// Token bucket size.
        burst: Bytes,
        /// The interface to act on.
        interface: InterfaceName,
        /// Egress or ingress (not both).
        direction: Direction,
    },
    /// See [`FaultKind::DiskFill`].
    DiskFill {
        /// A directory on the filesystem to fill.
        path: PathName,
        /// How much to fill.
        amount: FillAmount,
        /// Allow filling beyond the safety margin.
        force: bool,
    },
    /// See [`FaultKind::CpuStress`].
    CpuStress {
        /// Number of workers.
        workers: u32,
        /// Load per worker, percent.
        load: Percent,
    },
    /// See [`FaultKind::MemoryStress`].
    MemoryStress {
        /// Memory to hold.
        size: Bytes,
        /// Number of workers.
        workers: u32,
    },
    /// See [`FaultKind::ClockSkew`].
    ClockSkew {
        /// Offset in whole seconds (negative: the clock runs behind).
        offset_seconds: i64,
    },
    /// See [`FaultKind::RabbitmqCloseConnections`].
    RabbitmqCloseConnections,
    /// See [`FaultKind::RabbitmqMemoryAlarm`].
    RabbitmqMemoryAlarm,
    /// See [`FaultKind::RabbitmqStopApp`].
    RabbitmqStopApp,
    /// See [`FaultKind::MariadbKillConnections`].
    MariadbKillConnections {
        /// Only connections of this user.
        user: Option<SqlIdent>,
    },
    /// See [`FaultKind::MariadbLockTables`].
    MariadbLockTables {
        /// The database.
        database: SqlIdent,
        /// The tables to lock.
        tables: Vec<SqlIdent>,
    },
}

impl Fault {
    /// The kind of this fault.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::ProcessKill { .. } => FaultKind::ProcessKill,
            Fault::ServiceStop => FaultKind::ServiceStop,
            Fault::ServiceRestart => FaultKind::ServiceRestart,
            Fault::ServiceKill { .. } => FaultKind::ServiceKill,
            Fault::ProcessFreeze { .. } => FaultKind::ProcessFreeze,
            Fault::NetworkDelay { .. } => FaultKind::NetworkDelay,
            Fault::NetworkLoss { .. } => FaultKind::NetworkLoss,
            Fault::NetworkPartition { .. } => FaultKind::NetworkPartition,
            Fault::NetworkReset { .. } => FaultKind::NetworkReset,
            Fault::NetworkBandwidth { .. } => FaultKind::NetworkBandwidth,
            Fault::DiskFill { .. } => FaultKind::DiskFill,
            Fault::CpuStress { .. } => FaultKind::CpuStress,
            Fault::MemoryStress { .. } => FaultKind::MemoryStress,
            Fault::ClockSkew { .. } => FaultKind::ClockSkew,
            Fault::RabbitmqCloseConnections => FaultKind::RabbitmqCloseConnections,
            Fault::RabbitmqMemoryAlarm => FaultKind::RabbitmqMemoryAlarm,
            Fault::RabbitmqStopApp => FaultKind::RabbitmqStopApp,
            Fault::MariadbKillConnections { .. } => FaultKind::MariadbKillConnections,
            Fault::MariadbLockTables { .. } => FaultKind::MariadbLockTables,
        }
    }
}
