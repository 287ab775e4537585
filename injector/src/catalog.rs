//! The fault catalog: for every [`Fault`] kind, the scripts of its five phases. Everything a
//! campaign supplies is quoted with [`crate::shell::quote`] (and was validated by `scenarios`); the only
//! unquoted text is shell syntax written here. Values that are only known on the host (a main
//! PID, a cgroup path) are read into shell variables on the host and used double-quoted.

use std::time::Duration;

use scenarios::fault::{Direction, Fault, FillAmount, FreezeMethod, Peer, Signal};
use scenarios::model::{Runtime, ServiceRef};
use scenarios::safety::{self, Extent, PROTECTED_TREES};
use scenarios::units::UnitName;

use crate::Error;
use crate::host::HostSpec;
use crate::plan::{Check, FaultPlan, INJECT_CAPTURE, PREFLIGHT_CAPTURE};
use crate::runtime::{heal_or_start, kill_stamp};
use crate::shell::{join, quote};

/// Where the NFQUEUE delayer is installed on hosts (the engine uploads it when missing).
pub const DEFAULT_DELAYER_PATH: &str = "/usr/local/lib/butterfly/bfly-nfqdelay";

pub use scenarios::safety::DISK_FILL_KEEP_FREE_PERCENT;

/// How a network delay is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DelayBackend {
    /// iptables `NFQUEUE` (xt target) + the `bfly-nfqdelay` helper: any direction, peers and
    /// ports; works on kernels without `sch_netem` (as on this project's CI machine).
    #[default]
    Nfqueue,
    /// `tc netem` on the interface's root (egress only, all traffic of the interface).
    Netem,
}

/// Options that are not part of the fault itself.
#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Allow targets refused by default (filling `/`, touching sshd, cutting the SSH port).
    pub allow_destructive: bool,
    /// Delay mechanism.
    pub delay_backend: DelayBackend,
    /// Path of the delayer on the host.
    pub delayer_path: String,
    /// Added to the duration for self-bounded helpers (stress-ng, lock sessions) and the
    /// dead-man timer, so that the normal revert always comes first.
    pub grace: Duration,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            allow_destructive: false,
            delay_backend: DelayBackend::default(),
            delayer_path: DEFAULT_DELAYER_PATH.to_owned(),
            grace: Duration::from_secs(30),
        }
    }
}

/// One fault to plan: what, where, on which service, for how long.
#[derive(Debug, Clone, Copy)]
pub struct FaultInput<'a> {
    /// Unique id (8 lowercase hex digits), see [`new_fault_id`].
    pub id: &'a str,
    /// The validated fault.
    pub fault: &'a Fault,
    /// The target host.
    pub host: &'a HostSpec,
    /// The service acted on, when any.
    pub service: Option<&'a ServiceRef>,
    /// How long the fault stays in effect.
    pub duration: Duration,
}

/// A fresh fault id: 8 lowercase hex digits, safe in unit, chain, table and file names.
pub fn new_fault_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

pub(crate) fn check(what: impl Into<String>, script: impl Into<String>) -> Check {
    Check {
        what: what.into(),
        script: script.into(),
    }
}

/// `systemctl show -p PROPERTY --value UNIT` as a command substitution.
pub(crate) fn unit_property(unit: &str, property: &str) -> String {
    format!(
        "$({})",
        join(&["systemctl", "show", "-p", property, "--value", unit])
    )
}

pub(crate) fn is_active(unit: &str) -> String {
    join(&["systemctl", "is-active", "--quiet", unit])
}

/// Shell that sets `cg` to the directory of a unit's cgroup that lists its processes (the
/// cgroup2 one: `/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on hybrid hosts; else the v1
/// `name=systemd` one), or to nothing when the unit has none.
pub(crate) fn unit_cgroup(unit: &str) -> String {
    format!(
        "{{ cg=; u={}; [ -z \"$u\" ] || for r in /sys/fs/cgroup /sys/fs/cgroup/unified /sys/fs/cgroup/systemd; do if [ -f \"$r$u/cgroup.procs\" ]; then cg=$r$u; break; fi; done; }}",
        unit_property(unit, "ControlGroup")
    )
}

/// Preflight shell (after [`unit_cgroup`]) that prints `PID CGROUP` for the preflight capture:
/// the unit's main PID and its cgroup directory, or `-` for a directory whose path holds a
/// character no capture may (then the inject asks systemd again). Resolving both here keeps
/// `systemctl` out of the inject.
fn print_main_pid_and_cgroup(unit: &str) -> String {
    format!(
        "pid={} && [ \"$pid\" -gt 0 ] && case \"$cg\" in '' | *[!A-Za-z0-9._:/@-]*) cg=- ;; esac && echo \"$pid $cg\"",
        unit_property(unit, "MainPID")
    )
}

/// Shell true when process `pid` is listed in `cgroup`'s `cgroup.procs` (builtins only).
fn in_cgroup(pid: &str, cgroup: &str) -> String {
    format!(
        "bfly_in=; while read -r q; do [ \"$q\" != \"{pid}\" ] || {{ bfly_in=1; break; }}; done 2>/dev/null < \"{cgroup}/cgroup.procs\"; [ -n \"$bfly_in\" ]"
    )
}

/// Inject shell that sets `pid` to the main PID captured at preflight when it is still a
/// process of the unit's cgroup (a PID is never signalled after it may have been reused), and
/// otherwise asks systemd for the current one.
fn main_pid_from_capture(unit: &str) -> String {
    format!(
        "set -- {PREFLIGHT_CAPTURE} && pid=$1 && if [ \"$2\" = - ] || ! {{ {}; }}; then pid={}; fi && [ \"$pid\" -gt 0 ]",
        in_cgroup("$pid", "$2"),
        unit_property(unit, "MainPID")
    )
}

/// Shell true when the process `$1`-style expression names a process that is gone or a zombie.
pub(crate) fn pids_gone(pids: &str) -> String {
    format!(
        "for p in {pids}; do {}; case $st in '' | Z* | X*) ;; *) exit 1;; esac; done",
        proc_state("$p")
    )
}

/// Shell that sets `st` to the state letter of process `pid` (`R`, `S`, `T`, `Z`, …), or to
/// nothing when it is gone. Builtins only (`/proc/PID/stat`, after the command name, which may
/// itself hold `) `): verifies poll this, and `ps` costs an exec per look.
pub(crate) fn proc_state(pid: &str) -> String {
    format!("st=; {{ read -r st < \"/proc/{pid}/stat\"; }} 2>/dev/null; st=${{st##*\") \"}}")
}

pub(crate) fn pids_alive(pids: &str) -> String {
    format!("for p in {pids}; do [ -d \"/proc/$p\" ] || exit 1; done")
}

/// Signals after which a service process is expected to be gone.
pub(crate) fn is_lethal(signal: Signal) -> bool {
    matches!(
        signal,
        Signal::Kill | Signal::Term | Signal::Int | Signal::Quit | Signal::Abrt
    )
}

/// The signalled processes `pids` (words of `from`, which `set --` splits into `$1`…) are gone,
/// or still run after a non-lethal signal.
pub(crate) fn signal_verify(signal: Signal, pids: &str, from: &str) -> Check {
    let script = if is_lethal(signal) {
        pids_gone(pids)
    } else {
        pids_alive(pids)
    };
    let script = format!("set -- {from}; {script}");
    if is_lethal(signal) {
        check("the signalled processes are gone", script)
    } else {
        check(
            format!(
                "the signalled processes handled SIG{} and still run",
                signal.name()
            ),
            script,
        )
    }
}

/// Revert of faults that may leave a unit down: start it unless it runs (again) by itself.
fn ensure_started(unit: &str) -> (String, Check) {
    (
        format!("{} || {{ {}; }}", is_active(unit), start_unit(unit)),
        check(format!("{unit} is active"), is_active(unit)),
    )
}

/// Sets `$1`–`$4` for [`heal_or_start`] from a unit: active (`true`/`false`), its main PID, when
/// that process started and when the last one exited (ms; 0 when systemd has no such time).
fn unit_times(unit: &str) -> String {
    let ms = |property: &str| {
        format!(
            "$(t=$({}); [ -n \"$t\" ] && date -d \"$t\" +%s%3N 2>/dev/null || echo 0)",
            join(&[
                "systemctl",
                "show",
                "-p",
                property,
                "--timestamp=us+utc",
                "--value",
                unit
            ])
        )
    };
    format!(
        "set -- \"$({} && echo true || echo false)\" \"{}\" \"{}\" \"{}\"",
        is_active(unit),
        unit_property(unit, "MainPID"),
        ms("ExecMainStartTimestamp"),
        ms("ExecMainExitTimestamp")
    )
}

/// Starts a unit, first clearing a start-rate limit that the fault itself may have tripped
/// (repeated kills count against `StartLimitBurst`).
pub(crate) fn start_unit(unit: &str) -> String {
    format!(
        "{} 2>/dev/null; {}",
        join(&["systemctl", "reset-failed", unit]),
        join(&["systemctl", "start", unit])
    )
}

/// The unit a service fault acts on: the host's unit, or the unit inside an LXC container
/// (whose scripts [`FaultInput::confined`] then runs inside the container).
fn service_unit<'a>(input: &FaultInput<'a>) -> Result<&'a UnitName, Error> {
    input
        .service
        .and_then(|service| match &service.runtime {
            Runtime::Unit(unit) | Runtime::Lxc { unit, .. } => Some(unit),
            Runtime::Container { .. } => None,
        })
        .ok_or_else(|| {
            Error::Invalid(format!(
                "{} needs a service (with its systemd unit) as its target",
                input.fault.kind()
            ))
        })
}

/// Every peer address parsed again here (defence in depth), as `(is_ipv6, text)`.
fn peer_addresses(peers: &[Peer]) -> Result<Vec<(bool, String)>, Error> {
    peers
        .iter()
        .map(|peer| {
            let (ip, prefix) = safety::parse_network(&peer.address).ok_or_else(|| {
                Error::Invalid(format!(
                    "peer {} has an invalid address or prefix {:?}",
                    peer.name, peer.address
                ))
            })?;
            Ok((
                ip.is_ipv6(),
                format!(
                    "{ip}{}",
                    prefix.map(|p| format!("/{p}")).unwrap_or_default()
                ),
            ))
        })
        .collect()
}

impl FaultInput<'_> {
    /// Builds the plan for this fault, refusing destructive targets unless allowed.
    pub fn plan(&self, options: &PlanOptions) -> Result<FaultPlan, Error> {
        if !is_safe_id(self.id) {
            return Err(Error::Invalid(format!(
                "fault id {:?} must be 8 lowercase hex digits",
                self.id
            )));
        }
        self.refuse_destructive(options)?;
        if let Some(phases) = self.container_phases()? {
            return self.finish(phases, options);
        }
        let phases = match self.fault {
            Fault::ProcessKill { signal, process } => self.process_kill(
                *signal,
                process.as_ref().map(|p| p.as_str()),
                options.allow_destructive,
            )?,
            Fault::ServiceStop => {
                let unit = service_unit(self)?.as_str();
                // systemd must stop the unit (a kill would trip Restart=); the check reads the
                // unit's cgroup found at preflight instead of asking systemd again.
                Phases {
                    preflight: check(
                        format!("{unit} is active"),
                        format!(
                            "{} && {} && case \"$cg\" in '' | *[!A-Za-z0-9._:/@-]*) cg=- ;; esac && echo \"$cg\"",
                            is_active(unit),
                            unit_cgroup(unit)
                        ),
                    ),
                    inject: join(&["systemctl", "stop", unit]),
                    verify: check(
                        format!("no process of {unit} remains"),
                        format!(
                            "cg={PREFLIGHT_CAPTURE}; if [ \"$cg\" = - ]; then ! {}; else ! {{ read -r q < \"$cg/cgroup.procs\"; }} 2>/dev/null; fi",
                            is_active(unit)
                        ),
                    ),
                    revert: Some(start_unit(unit)),
                    verify_reverted: Some(check(format!("{unit} is active"), is_active(unit))),
                    deadman: true,
                }
            }
            Fault::ServiceRestart => {
                let unit = service_unit(self)?.as_str();
                let main_pid = unit_property(unit, "MainPID");
                Phases {
                    preflight: check(
                        format!("{unit} is active with a main process"),
                        format!(
                            "{} && pid={main_pid} && [ \"$pid\" -gt 0 ] && echo \"$pid\"",
                            is_active(unit)
                        ),
                    ),
                    inject: join(&["systemctl", "restart", unit]),
                    verify: check(
                        format!("{unit} runs again with a new main process"),
                        format!(
                            "{} && pid={main_pid} && [ \"$pid\" -gt 0 ] && [ \"$pid\" != {PREFLIGHT_CAPTURE} ]",
                            is_active(unit)
                        ),
                    ),
                    revert: None,
                    verify_reverted: None,
                    deadman: false,
                }
            }
            Fault::ServiceKill { signal } => {
                let unit = service_unit(self)?.as_str();
                let (revert, verify_reverted) = ensure_started(unit);
                let sig = signal.name();
                Phases {
                    preflight: check(
                        format!("{unit} is active with a main process"),
                        format!(
                            "{} && {} && {}",
                            is_active(unit),
                            unit_cgroup(unit),
                            print_main_pid_and_cgroup(unit)
                        ),
                    ),
                    // What `systemctl kill` does (every process of the unit's cgroup), read
                    // from the cgroup found at preflight; a cgroup with child cgroups (a
                    // delegated unit) or a path no capture may hold is left to systemd.
                    inject: format!(
                        "set -- {PREFLIGHT_CAPTURE} && if [ \"$2\" != - ] && [ -f \"$2/cgroup.procs\" ] && ! {{ for d in \"$2\"/*/; do [ -d \"$d\" ] && break; done; [ -d \"$d\" ]; }}; then pids=; while read -r q; do pids=\"$pids $q\"; done < \"$2/cgroup.procs\"; [ -n \"$pids\" ] && {{ kill -s {sig} $pids 2>/dev/null; true; }}; else {}; fi",
                        join(&["systemctl", "kill", "-s", sig, unit])
                    ),
                    verify: signal_verify(*signal, "$1", PREFLIGHT_CAPTURE),
                    revert: Some(revert),
                    verify_reverted: Some(verify_reverted),
                    deadman: true,
                }
            }
            Fault::ProcessFreeze { method } => self.process_freeze(*method)?,
            Fault::NetworkDelay {
                delay,
                jitter,
                interface,
                direction,
                peers,
                ports,
            } => self.network_delay(
                options,
                *delay,
                *jitter,
                interface.as_str(),
                *direction,
                peers,
                ports,
            )?,
            Fault::NetworkLoss {
                percent,
                direction,
                peers,
                ports,
            } => {
                let peers = peer_addresses(peers)?;
                let threshold = (percent.get() * 100.0).round() as u32;
                // nft's numgen values are 0..=9999: 100 % is a plain drop (`< 10000` is refused).
                let verdict = if threshold >= 10000 {
                    "drop".to_owned()
                } else {
                    format!("numgen random mod 10000 < {threshold} drop")
                };
                let mut rules = Vec::new();
                if matches!(direction, Direction::Egress | Direction::Both) {
                    rules.extend(match_rules(
                        "output",
                        &peers,
                        ports,
                        "daddr",
                        &["dport"],
                        &verdict,
                    ));
                }
                if matches!(direction, Direction::Ingress | Direction::Both) {
                    rules.extend(match_rules(
                        "input",
                        &peers,
                        ports,
                        "saddr",
                        &["sport"],
                        &verdict,
                    ));
                }
                self.nft_phases(rules)
            }
            Fault::NetworkPartition { peers, ports } => {
                let peers = peer_addresses(peers)?;
                let mut rules = match_rules(
                    "output",
                    &peers,
                    ports,
                    "daddr",
                    &["dport", "sport"],
                    "drop",
                );
                rules.extend(match_rules(
                    "input",
                    &peers,
                    ports,
                    "saddr",
                    &["dport", "sport"],
                    "drop",
                ));
                self.nft_phases(rules)
            }
            Fault::NetworkReset { ports, peers } => {
                if ports.is_empty() {
                    return Err(Error::Invalid(
                        "network-reset needs at least one port".into(),
                    ));
                }
                let peers = peer_addresses(peers)?;
                let verdict = "reject with tcp reset";
                let mut rules = tcp_port_rules("output", &peers, ports, "daddr", verdict);
                rules.extend(tcp_port_rules("input", &peers, ports, "saddr", verdict));
                self.nft_phases(rules)
            }
            Fault::NetworkBandwidth {
                rate_bits_per_second,
                burst,
                interface,
                direction,
            } => self.network_bandwidth(
                *rate_bits_per_second,
                burst.0,
                interface.as_str(),
                *direction,
            )?,
            Fault::DiskFill {
                path,
                amount,
                force,
            } => self.disk_fill(path.as_str(), *amount, *force, options.allow_destructive)?,
            Fault::CpuStress { workers, load } => {
                let seconds = (self.duration + options.grace).as_secs().max(1);
                let unit = format!("bfly-cpu-{}", self.id);
                let stress = join(&[
                    "stress-ng".to_owned(),
                    "--cpu".to_owned(),
                    workers.to_string(),
                    "--cpu-load".to_owned(),
                    (load.get().round() as u32).to_string(),
                    "--timeout".to_owned(),
                    format!("{seconds}s"),
                ]);
                self.helper_unit_phases(&unit, &stress, seconds, None)
            }
            Fault::MemoryStress { size, workers } => {
                let seconds = (self.duration + options.grace).as_secs().max(1);
                let unit = format!("bfly-mem-{}", self.id);
                let workers = (*workers).max(1);
                let per_worker = size.0 / u64::from(workers);
                let stress = join(&[
                    "stress-ng".to_owned(),
                    "--vm".to_owned(),
                    workers.to_string(),
                    "--vm-bytes".to_owned(),
                    format!("{per_worker}b"),
                    "--vm-keep".to_owned(),
                    "--timeout".to_owned(),
                    format!("{seconds}s"),
                ]);
                let limit = if options.allow_destructive { 100 } else { 50 };
                let preflight_extra = format!(
                    "avail=$(awk '/^MemAvailable:/ {{printf \"%.0f\\n\", $2 * 1024}}' /proc/meminfo) && [ {} -le $((avail * {limit} / 100)) ]",
                    size.0
                );
                let mut phases =
                    self.helper_unit_phases(&unit, &stress, seconds, Some(preflight_extra));
                let held = size.0 * 7 / 10;
                phases.verify = check(
                    format!("{unit} holds at least 70% of {} bytes", size.0),
                    format!(
                        "{}; [ -n \"$cg\" ] && rss=$(for p in $(cat \"$cg/cgroup.procs\"); do awk '/^VmRSS:/ {{printf \"%.0f\\n\", $2 * 1024}}' \"/proc/$p/status\" 2>/dev/null; done | awk '{{s += $1}} END {{printf \"%.0f\\n\", s}}') && [ \"$rss\" -ge {held} ]",
                        unit_cgroup(&format!("{unit}.service"))
                    ),
                );
                phases
            }
            Fault::ClockSkew { offset_seconds } => self.clock_skew(*offset_seconds)?,
            Fault::RabbitmqCloseConnections => {
                let ctl = self.client("rabbitmqctl")?;
                let connected_at = format!("{ctl} -q list_connections connected_at");
                Phases {
                    preflight: check(
                        "rabbitmqctl reaches the broker",
                        format!("{ctl} -q status >/dev/null"),
                    ),
                    inject: format!(
                        "t=$(date +%s%3N) && {ctl} {} && echo \"$t\"",
                        join(&[
                            "-q",
                            "close_all_connections",
                            &format!("butterfly fault {}", self.id)
                        ])
                    ),
                    verify: check(
                        "no connection opened before the fault remains",
                        format!(
                            "{connected_at} | awk -v t={INJECT_CAPTURE} '$1 ~ /^[0-9]+$/ && $1 < t {{old++}} END {{exit old > 0}}'"
                        ),
                    ),
                    revert: None,
                    verify_reverted: None,
                    deadman: false,
                }
            }
            Fault::RabbitmqMemoryAlarm => {
                let ctl = self.client("rabbitmqctl")?;
                let alarms = format!("{ctl} -q eval 'rabbit_alarm:get_alarms().'");
                Phases {
                    // The watermark is captured in the form `set_vm_memory_high_watermark`
                    // takes back: a fraction, or `absolute BYTES` for the Erlang term
                    // `{absolute,BYTES}` (whose braces no capture may hold, and which the
                    // command would refuse, leaving the alarm raised).
                    preflight: check(
                        "rabbitmqctl reaches the broker and the watermark is a fraction or absolute bytes",
                        format!(
                            "w=$({ctl} -q eval 'vm_memory_monitor:get_vm_memory_high_watermark().') && case \"$w\" in '{{absolute,'*) w=\"absolute $(printf '%s' \"$w\" | tr -cd 0-9)\" ;; esac && printf '%s\\n' \"$w\" | grep -Eqx '(absolute [0-9]+|[0-9]+(\\.[0-9]+)?)' && printf '%s\\n' \"$w\""
                        ),
                    ),
                    inject: format!("{ctl} -q set_vm_memory_high_watermark 0"),
                    verify: check(
                        "the memory alarm is raised",
                        format!("{alarms} | grep -q memory"),
                    ),
                    revert: Some(format!(
                        "{ctl} -q set_vm_memory_high_watermark {PREFLIGHT_CAPTURE}"
                    )),
                    verify_reverted: Some(check(
                        "no memory alarm",
                        format!("! {alarms} | grep -q memory"),
                    )),
                    deadman: true,
                }
            }
            Fault::RabbitmqStopApp => {
                let ctl = self.client("rabbitmqctl")?;
                let running = format!("{ctl} -q eval 'rabbit:is_running().' | grep -qx true");
                Phases {
                    preflight: check("the RabbitMQ application runs", running.clone()),
                    inject: format!("{ctl} -q stop_app"),
                    verify: check(
                        "the RabbitMQ application is stopped",
                        format!("! {running}"),
                    ),
                    revert: Some(format!("{ctl} -q start_app")),
                    verify_reverted: Some(check("the RabbitMQ application runs", running)),
                    deadman: true,
                }
            }
            Fault::MariadbKillConnections { user } => {
                let mysql = self.mysql()?;
                let filter = user
                    .as_ref()
                    .map(|user| format!(" AND USER = '{}'", user.as_str()))
                    .unwrap_or_default();
                let select = format!(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND COMMAND <> 'Daemon' AND USER <> 'system user'{filter}"
                );
                Phases {
                    preflight: check(
                        "a MariaDB client reaches the server",
                        format!("{mysql} && $m -N -B -e 'SELECT 1' >/dev/null"),
                    ),
                    inject: format!(
                        "{mysql} && ids=$($m -N -B -e {}) && for i in $ids; do $m -e \"KILL CONNECTION $i\" 2>/dev/null; done; echo $ids",
                        quote(&select)
                    ),
                    verify: check(
                        "the killed connections are gone",
                        format!(
                            "{mysql} && list=$(echo {INJECT_CAPTURE} | tr ' ' ','); [ -z \"$list\" ] || [ -z \"$($m -N -B -e \"SELECT ID FROM information_schema.PROCESSLIST WHERE ID IN ($list)\")\" ]"
                        ),
                    ),
                    revert: None,
                    verify_reverted: None,
                    deadman: false,
                }
            }
            Fault::MariadbLockTables { database, tables } => {
                if tables.is_empty() {
                    return Err(Error::Invalid(
                        "mariadb-lock-tables needs at least one table".into(),
                    ));
                }
                let mysql = self.mysql()?;
                let seconds = (self.duration + options.grace).as_secs().max(1);
                let unit = format!("bfly-dblock-{}", self.id);
                let locks = tables
                    .iter()
                    .map(|table| format!("`{}`.`{}` READ", database.as_str(), table.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!("LOCK TABLES {locks}; SELECT SLEEP({seconds});");
                let in_use = format!(
                    "SHOW OPEN TABLES FROM `{}` WHERE In_use > 0",
                    database.as_str()
                );
                let count = tables.len();
                Phases {
                    preflight: check(
                        "a MariaDB client reaches the server and systemd-run exists",
                        format!(
                            "command -v systemd-run >/dev/null && {mysql} && $m -N -B -e 'SELECT 1' >/dev/null"
                        ),
                    ),
                    inject: format!(
                        "{mysql} && systemd-run --quiet --collect {} $m -N -B -e {}",
                        quote(&format!("--unit={unit}")),
                        quote(&sql)
                    ),
                    verify: check(
                        format!("{count} table(s) of {} are locked", database.as_str()),
                        format!(
                            "{mysql} && [ \"$($m -N -B -e {} | grep -c .)\" -ge {count} ]",
                            quote(&in_use)
                        ),
                    ),
                    revert: Some(format!(
                        "systemctl stop {} 2>/dev/null; true",
                        quote(&format!("{unit}.service"))
                    )),
                    verify_reverted: Some(check(
                        "no table of the database is locked",
                        format!(
                            "! {} && {mysql} && [ -z \"$($m -N -B -e {})\" ]",
                            is_active(&format!("{unit}.service")),
                            quote(&in_use)
                        ),
                    )),
                    deadman: false,
                }
            }
        };
        let phases = self.confined(phases, options)?;
        self.finish(phases, options)
    }

    fn finish(&self, phases: Phases, options: &PlanOptions) -> Result<FaultPlan, Error> {
        Ok(FaultPlan {
            id: self.id.to_owned(),
            kind: self.fault.kind().name().to_owned(),
            host: self.host.clone(),
            fault: serde_json::to_value(self.fault).map_err(|e| Error::Invalid(e.to_string()))?,
            duration: self.duration,
            preflight: phases.preflight,
            inject: phases.inject,
            verify: phases.verify,
            revert: phases.revert,
            verify_reverted: phases.verify_reverted,
            deadman: phases.deadman,
            delayer: match (self.fault, options.delay_backend) {
                (Fault::NetworkDelay { .. }, DelayBackend::Nfqueue) => {
                    Some(options.delayer_path.clone())
                }
                _ => None,
            },
            checks_control_channel: self.host.ssh_port().is_some()
                && matches!(
                    self.fault,
                    Fault::NetworkDelay { .. }
                        | Fault::NetworkLoss { .. }
                        | Fault::NetworkPartition { .. }
                        | Fault::NetworkReset { .. }
                        | Fault::NetworkBandwidth { .. }
                ),
        })
    }

    /// The campaign's own safety rules ([`safety::refusals`], the ones `validate` reports),
    /// checked again here so that a plan built from an unvalidated fault is refused too.
    fn refuse_destructive(&self, options: &PlanOptions) -> Result<(), Error> {
        let ssh_port = self.host.ssh_port().map(|port| safety::SshPort {
            host: &self.host.name,
            port,
        });
        let refusals = safety::refusals(
            self.fault,
            self.service,
            ssh_port.as_slice(),
            options.allow_destructive,
        );
        match refusals.first() {
            None => Ok(()),
            Some(refusal) => Err(Error::Refused(format!(
                "{} on {}: {}; {}",
                self.fault.kind(),
                self.host.name,
                refusal.message,
                refusal.hint()
            ))),
        }
    }

    fn process_kill(
        &self,
        signal: Signal,
        process: Option<&str>,
        allow_destructive: bool,
    ) -> Result<Phases, Error> {
        let sig = signal.name();
        let guard = kill_guard(allow_destructive);
        let (preflight, inject) = match (process, self.service) {
            (Some(name), _) => {
                let pids = format!(
                    "name={} && pids=$({} | tr '\\n' ' ') && [ -n \"$pids\" ]",
                    quote(name),
                    join(&["pgrep", "-x", name])
                );
                (
                    check(
                        format!(
                            "a process named {name} runs and none is PID 1 or the injector's own"
                        ),
                        format!("{pids} && {guard}"),
                    ),
                    format!("{pids} && {guard} && kill -s {sig} $pids && echo $pids"),
                )
            }
            (None, Some(_)) => {
                let unit = service_unit(self)?.as_str();
                let name = format!("name={}", quote(unit));
                // A lethal kill stamps its time for the revert's heal measurement, after the
                // kill: a fork before it would delay the fault on the hot path.
                let stamped = if is_lethal(signal) {
                    format!(" && {{ {}; true; }}", kill_stamp(self.id).1)
                } else {
                    String::new()
                };
                (
                    check(
                        format!("{unit} has a main process, not PID 1 nor the injector's own"),
                        format!(
                            "{} && {} && {name} && pids=$pid && {guard}",
                            unit_cgroup(unit),
                            print_main_pid_and_cgroup(unit)
                        ),
                    ),
                    format!(
                        "{} && {name} && pids=$pid && {guard} && kill -s {sig} \"$pid\"{stamped} && echo \"$pid\"",
                        main_pid_from_capture(unit)
                    ),
                )
            }
            (None, None) => {
                return Err(Error::Invalid(
                    "process-kill needs a process name or a service as its target".into(),
                ));
            }
        };
        let (revert, verify_reverted) = match self.service {
            Some(_) if process.is_none() && is_lethal(signal) => {
                let unit = service_unit(self)?.as_str();
                // systemd heals what `Restart=` covers (DevStack's units: on-failure): the
                // revert tells that from its own start, as for a supervised container.
                let revert = heal_or_start(
                    &unit_times(unit),
                    &start_unit(unit),
                    INJECT_CAPTURE,
                    &kill_stamp(self.id).0,
                );
                (
                    Some(revert),
                    Some(check(format!("{unit} is active"), is_active(unit))),
                )
            }
            _ => (None, None),
        };
        Ok(Phases {
            preflight,
            inject,
            verify: signal_verify(signal, "$@", INJECT_CAPTURE),
            deadman: revert.is_some(),
            revert,
            verify_reverted,
        })
    }

    fn process_freeze(&self, method: FreezeMethod) -> Result<Phases, Error> {
        let unit = service_unit(self)?.as_str();
        Ok(match method {
            FreezeMethod::Cgroup => {
                let lookup = unit_cgroup(unit);
                // The cgroup found at preflight, or (for a path no capture may hold) again.
                let captured =
                    format!("cg={PREFLIGHT_CAPTURE}; [ \"$cg\" != - ] || {lookup}; [ -n \"$cg\" ]");
                let state = |frozen: u8| {
                    format!("{captured} && grep -qx 'frozen {frozen}' \"$cg/cgroup.events\"")
                };
                Phases {
                    preflight: check(
                        format!("{unit} is active and has a cgroup2 cgroup.freeze"),
                        format!(
                            "{} && {lookup} && [ -w \"$cg/cgroup.freeze\" ] && case \"$cg\" in *[!A-Za-z0-9._:/@-]*) cg=- ;; esac && echo \"$cg\"",
                            is_active(unit)
                        ),
                    ),
                    inject: format!("{captured} && echo 1 > \"$cg/cgroup.freeze\""),
                    verify: check(format!("the cgroup of {unit} is frozen"), state(1)),
                    revert: Some(format!(
                        "{lookup}; [ -n \"$cg\" ] && [ -w \"$cg/cgroup.freeze\" ] && echo 0 > \"$cg/cgroup.freeze\"; true"
                    )),
                    verify_reverted: Some(check(
                        format!("the cgroup of {unit} is thawed"),
                        format!(
                            "{lookup}; [ -n \"$cg\" ] && grep -qx 'frozen 0' \"$cg/cgroup.events\""
                        ),
                    )),
                    deadman: true,
                }
            }
            FreezeMethod::Sigstop => {
                let main_pid = unit_property(unit, "MainPID");
                let stopped = |pid: &str| {
                    format!(
                        "{}; case $st in T*) true;; *) false;; esac",
                        proc_state(pid)
                    )
                };
                Phases {
                    preflight: check(
                        format!("{unit} has a main process"),
                        format!(
                            "{} && {}",
                            unit_cgroup(unit),
                            print_main_pid_and_cgroup(unit)
                        ),
                    ),
                    inject: format!(
                        "{} && kill -s STOP \"$pid\" && echo \"$pid\"",
                        main_pid_from_capture(unit)
                    ),
                    verify: check(
                        format!("the main process of {unit} is stopped"),
                        stopped(INJECT_CAPTURE),
                    ),
                    revert: Some(format!(
                        "pid={main_pid}; [ \"$pid\" -gt 0 ] && kill -s CONT \"$pid\"; true"
                    )),
                    verify_reverted: Some(check(
                        format!("the main process of {unit} runs"),
                        format!(
                            "pid={main_pid}; [ \"$pid\" -gt 0 ] && ! {{ {}; }}",
                            stopped("$pid")
                        ),
                    )),
                    deadman: true,
                }
            }
        })
    }

    fn nft_table(&self) -> String {
        format!("bfly_{}", self.id)
    }

    /// A throwaway nft table with input and output chains holding `rules` (`(chain, rule)`),
    /// loaded atomically with `nft -f -`. TCP to or from the SSH port is accepted before any
    /// fault rule, in both chains, so the injector keeps its control channel whatever peers or
    /// ports the fault names.
    fn nft_phases(&self, rules: Vec<(String, String)>) -> Phases {
        let table = self.nft_table();
        let mut lines = vec![
            format!("add table inet {table}"),
            format!(
                "add chain inet {table} input {{ type filter hook input priority -10 ; policy accept ; }}"
            ),
            format!(
                "add chain inet {table} output {{ type filter hook output priority -10 ; policy accept ; }}"
            ),
        ];
        if let Some(port) = self.host.ssh_port() {
            for chain in ["input", "output"] {
                for field in ["dport", "sport"] {
                    lines.push(format!(
                        "add rule inet {table} {chain} tcp {field} {port} accept"
                    ));
                }
            }
        }
        let count = rules.len();
        lines.extend(
            rules
                .into_iter()
                .map(|(chain, rule)| format!("add rule inet {table} {chain} {rule}")),
        );
        let mut printf = vec!["printf".to_owned(), "%s\\n".to_owned()];
        printf.extend(lines);
        let list = join(&["nft", "list", "table", "inet", &table]);
        Phases {
            preflight: check(
                format!("nft works and table {table} does not exist yet"),
                format!("command -v nft >/dev/null && ! {list} >/dev/null 2>&1"),
            ),
            inject: format!("{} | nft -f -", join(&printf)),
            verify: check(
                format!("table {table} holds its {count} fault rule(s)"),
                format!(
                    "[ \"$({list} | grep -c -E '(^|[[:space:]])(drop|reject)')\" -ge {count} ]"
                ),
            ),
            revert: Some(format!(
                "{} 2>/dev/null; true",
                join(&["nft", "delete", "table", "inet", &table])
            )),
            verify_reverted: Some(check(
                format!("table {table} is gone"),
                format!("! {list} >/dev/null 2>&1"),
            )),
            deadman: true,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn network_delay(
        &self,
        options: &PlanOptions,
        delay: Duration,
        jitter: Duration,
        interface: &str,
        direction: Direction,
        peers: &[Peer],
        ports: &[u16],
    ) -> Result<Phases, Error> {
        let peers = peer_addresses(peers)?;
        let delay_ms = delay.as_millis();
        let jitter_ms = jitter.as_millis();
        match options.delay_backend {
            DelayBackend::Netem => {
                if direction != Direction::Egress || !peers.is_empty() || !ports.is_empty() {
                    return Err(Error::Invalid(
                        "the netem delay backend does egress on the whole interface only; use the nfqueue backend for ingress, peers or ports".into(),
                    ));
                }
                let show = join(&["tc", "qdisc", "show", "dev", interface, "root"]);
                let shaping = self.ssh_exempt_shaping(
                    interface,
                    &[
                        "netem".to_owned(),
                        "delay".to_owned(),
                        format!("{delay_ms}ms"),
                        format!("{jitter_ms}ms"),
                    ],
                );
                let preflight = check(
                    format!("sch_netem is available and {interface} exists"),
                    format!(
                        "{} >/dev/null && (modprobe -q sch_netem 2>/dev/null; [ -d /sys/module/sch_netem ]) && ! {show} | grep -q -E 'netem|tbf|htb'",
                        join(&["ip", "link", "show", "dev", interface])
                    ),
                );
                Ok(shaping.into_phases(preflight, "delays through netem", interface))
            }
            DelayBackend::Nfqueue => {
                if peers.iter().any(|(v6, _)| *v6) {
                    return Err(Error::Invalid(
                        "the nfqueue delay backend takes IPv4 peers only".into(),
                    ));
                }
                let queue = self.queue_number();
                let unit = format!("bfly-delay-{}.service", self.id);
                let chain_out = format!("BFLY_{}_O", self.id.to_ascii_uppercase());
                let chain_in = format!("BFLY_{}_I", self.id.to_ascii_uppercase());
                let ipt = |args: &[&str]| {
                    let mut argv = vec!["iptables", "-w", "-t", "mangle"];
                    argv.extend_from_slice(args);
                    join(&argv)
                };
                let mut inject = vec![join(&[
                    "systemd-run".to_owned(),
                    "--quiet".to_owned(),
                    "--collect".to_owned(),
                    format!("--unit={unit}"),
                    options.delayer_path.clone(),
                    "--queue".to_owned(),
                    queue.to_string(),
                    "--delay-ms".to_owned(),
                    delay_ms.to_string(),
                    "--jitter-ms".to_owned(),
                    jitter_ms.to_string(),
                ])];
                let mut chains: Vec<(&str, &str, &str)> = Vec::new();
                if matches!(direction, Direction::Egress | Direction::Both) {
                    chains.push((&chain_out, "OUTPUT", "-d"));
                }
                if matches!(direction, Direction::Ingress | Direction::Both) {
                    chains.push((&chain_in, "PREROUTING", "-s"));
                }
                let ssh_port = self.host.ssh_port().map(|port| port.to_string());
                let queue_text = queue.to_string();
                for (chain, hook, peer_flag) in &chains {
                    inject.push(ipt(&["-N", chain]));
                    if let Some(port) = &ssh_port {
                        inject.push(ipt(&[
                            "-A", chain, "-p", "tcp", "--sport", port, "-j", "RETURN",
                        ]));
                        inject.push(ipt(&[
                            "-A", chain, "-p", "tcp", "--dport", port, "-j", "RETURN",
                        ]));
                    }
                    let nfqueue = [
                        "-j",
                        "NFQUEUE",
                        "--queue-num",
                        queue_text.as_str(),
                        "--queue-bypass",
                    ];
                    let peer_options: Vec<Vec<&str>> = if peers.is_empty() {
                        vec![vec![]]
                    } else {
                        peers
                            .iter()
                            .map(|(_, address)| vec![*peer_flag, address.as_str()])
                            .collect()
                    };
                    let port_list = ports
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(",");
                    let port_options: Vec<Vec<&str>> = if ports.is_empty() {
                        vec![vec![]]
                    } else {
                        let mut options = Vec::new();
                        for protocol in ["tcp", "udp"] {
                            for flag in ["--dports", "--sports"] {
                                options.push(vec![
                                    "-p",
                                    protocol,
                                    "-m",
                                    "multiport",
                                    flag,
                                    port_list.as_str(),
                                ]);
                            }
                        }
                        options
                    };
                    for peer in &peer_options {
                        for port in &port_options {
                            let mut args = vec!["-A", chain];
                            args.extend(peer.iter().copied());
                            args.extend(port.iter().copied());
                            args.extend(nfqueue);
                            inject.push(ipt(&args));
                        }
                    }
                    inject.push(ipt(&["-A", hook, "-j", chain]));
                }
                let mut verify = vec![is_active(&unit)];
                let mut revert = Vec::new();
                let mut gone = vec![format!("! {}", is_active(&unit))];
                for (chain, hook, _) in &chains {
                    verify.push(ipt(&["-C", hook, "-j", chain]));
                    revert.push(format!("{} 2>/dev/null", ipt(&["-D", hook, "-j", chain])));
                    revert.push(format!("{} 2>/dev/null", ipt(&["-F", chain])));
                    revert.push(format!("{} 2>/dev/null", ipt(&["-X", chain])));
                    gone.push(format!("! {} >/dev/null 2>&1", ipt(&["-S", chain])));
                }
                revert.push(format!("systemctl stop {} 2>/dev/null", quote(&unit)));
                revert.push("true".into());
                let _ = interface;
                Ok(Phases {
                    preflight: check(
                        format!(
                            "iptables, systemd-run and the delayer {} are present",
                            options.delayer_path
                        ),
                        format!(
                            "command -v iptables >/dev/null && command -v systemd-run >/dev/null && [ -x {} ] && ! {} >/dev/null 2>&1",
                            quote(&options.delayer_path),
                            ipt(&["-S", chains[0].0])
                        ),
                    ),
                    inject: inject.join(" && "),
                    verify: check(
                        format!("the delayer {unit} runs and its chains are hooked"),
                        verify.join(" && "),
                    ),
                    revert: Some(revert.join("; ")),
                    verify_reverted: Some(check(
                        "the delayer and its chains are gone",
                        gone.join(" && "),
                    )),
                    deadman: true,
                })
            }
        }
    }

    /// An NFQUEUE number derived from the fault id (1000..=60999), so that faults do not share a queue.
    pub fn queue_number(&self) -> u16 {
        let value = u32::from_str_radix(self.id, 16).unwrap_or(0);
        (1000 + value % 60000) as u16
    }

    fn network_bandwidth(
        &self,
        rate: u64,
        burst: u64,
        interface: &str,
        direction: Direction,
    ) -> Result<Phases, Error> {
        if rate < 8 {
            return Err(Error::Invalid(format!(
                "network-bandwidth rate {rate}bit is below 8bit, the lowest rate tc takes"
            )));
        }
        let tbf = [
            "tbf".to_owned(),
            "rate".into(),
            format!("{rate}bit"),
            "burst".into(),
            burst.to_string(),
            "latency".into(),
            "100ms".into(),
        ];
        let link = |device: &str| join(&["ip", "link", "show", "dev", device]);
        match direction {
            Direction::Egress => {
                let shaping = self.ssh_exempt_shaping(interface, &tbf);
                let show_root = join(&["tc", "qdisc", "show", "dev", interface, "root"]);
                let preflight = check(
                    format!("{interface} exists without a shaping qdisc"),
                    format!(
                        "command -v tc >/dev/null && {} >/dev/null && ! {show_root} | grep -q -E 'tbf|htb|netem'",
                        link(interface)
                    ),
                );
                Ok(shaping.into_phases(preflight, "shapes through tbf", interface))
            }
            Direction::Ingress => {
                let ifb = format!("bfb{}", self.id);
                let shaping = self.ssh_exempt_shaping(&ifb, &tbf);
                let ingress = join(&["tc", "qdisc", "show", "dev", interface, "ingress"]);
                Ok(Phases {
                    preflight: check(
                        format!("{interface} exists without an ingress qdisc"),
                        format!(
                            "command -v tc >/dev/null && {} >/dev/null && ! {ingress} | grep -q ingress",
                            link(interface)
                        ),
                    ),
                    inject: [
                        join(&["ip", "link", "add", &ifb, "type", "ifb"]),
                        join(&["ip", "link", "set", &ifb, "up"]),
                        shaping.inject,
                        join(&[
                            "tc", "qdisc", "add", "dev", interface, "handle", "ffff:", "ingress",
                        ]),
                        join(&[
                            "tc", "filter", "add", "dev", interface, "parent", "ffff:", "protocol",
                            "all", "u32", "match", "u32", "0", "0", "action", "mirred", "egress",
                            "redirect", "dev", &ifb,
                        ]),
                    ]
                    .join(" && "),
                    verify: check(
                        format!(
                            "ingress of {interface} is redirected through {ifb}, which shapes through tbf all but {}",
                            shaping.exempt
                        ),
                        format!(
                            "{} && {} | grep -q {}",
                            shaping.verify,
                            join(&["tc", "filter", "show", "dev", interface, "parent", "ffff:"]),
                            quote(&ifb)
                        ),
                    ),
                    revert: Some(format!(
                        "{ingress} | grep -q ingress && {}; {} >/dev/null 2>&1 && {}; true",
                        join(&["tc", "qdisc", "del", "dev", interface, "ingress"]),
                        link(&ifb),
                        join(&["ip", "link", "del", &ifb])
                    )),
                    verify_reverted: Some(check(
                        format!("no ingress qdisc on {interface} and no {ifb}"),
                        format!(
                            "! {ingress} | grep -q ingress && ! {} >/dev/null 2>&1",
                            link(&ifb)
                        ),
                    )),
                    deadman: true,
                })
            }
            Direction::Both => Err(Error::Invalid(
                "network-bandwidth takes egress or ingress, not both".into(),
            )),
        }
    }

    /// Shaping on `device` that leaves the control channel alone: a root htb whose class 1:2
    /// holds `leaf` (tbf, netem) and takes every IPv4 and IPv6 packet, except TCP to or from the
    /// SSH port and IPv6 neighbour discovery (which SSH over IPv6 needs), which u32 filters at
    /// a higher priority send to class 1:1, as they do everything else (ARP). Neither class
    /// limits (100gbit); only the leaf does.
    fn ssh_exempt_shaping(&self, device: &str, leaf: &[String]) -> Shaping {
        let tc = |args: &[&str]| {
            let mut argv = vec!["tc"];
            argv.extend_from_slice(args);
            join(&argv)
        };
        let filter = |protocol: &str, prio: &str, matches: &[&str], flowid: &str| {
            let mut args = vec![
                "filter", "add", "dev", device, "parent", "1:", "protocol", protocol, "prio", prio,
                "u32",
            ];
            args.extend_from_slice(matches);
            args.extend_from_slice(&["flowid", flowid]);
            tc(&args)
        };
        let class = |id: &str| {
            tc(&[
                "class", "add", "dev", device, "parent", "1:", "classid", id, "htb", "rate",
                "100gbit", "quantum", "60000",
            ])
        };
        let mut leaf_args = vec![
            "qdisc", "add", "dev", device, "parent", "1:2", "handle", "2:",
        ];
        leaf_args.extend(leaf.iter().map(String::as_str));
        let mut commands = vec![
            tc(&[
                "qdisc", "replace", "dev", device, "root", "handle", "1:", "htb", "default", "1",
            ]),
            class("1:1"),
            class("1:2"),
            tc(&leaf_args),
        ];
        let mut exempt = Vec::new();
        if let Some(port) = self.host.ssh_port() {
            let port = port.to_string();
            for (family, protocol, prio) in [("ip", "ip", "1"), ("ip6", "ipv6", "2")] {
                for field in ["sport", "dport"] {
                    commands.push(filter(
                        protocol,
                        prio,
                        &[
                            "match", family, "protocol", "6", "0xff", "match", family, field,
                            &port, "0xffff",
                        ],
                        "1:1",
                    ));
                }
            }
            exempt.push(format!("TCP port {port}"));
        }
        for icmp_type in ["135", "136"] {
            commands.push(filter(
                "ipv6",
                "2",
                &[
                    "match", "ip6", "protocol", "58", "0xff", "match", "u8", icmp_type, "0xff",
                    "at", "40",
                ],
                "1:1",
            ));
        }
        exempt.push("IPv6 neighbour discovery".into());
        let exempt_filters = commands.len() - 4;
        commands.push(filter("ip", "3", &["match", "u32", "0", "0"], "1:2"));
        commands.push(filter("ipv6", "4", &["match", "u32", "0", "0"], "1:2"));
        let show_root = tc(&["qdisc", "show", "dev", device, "root"]);
        let leaf_kind = leaf.first().map(String::as_str).unwrap_or("tbf");
        Shaping {
            inject: commands.join(" && "),
            verify: format!(
                "{show_root} | grep -q 'qdisc htb 1: ' && {} | grep -q 'qdisc {leaf_kind} 2: ' && [ \"$({} | grep -c 'flowid 1:1 ')\" -ge {exempt_filters} ]",
                tc(&["qdisc", "show", "dev", device]),
                tc(&["filter", "show", "dev", device, "parent", "1:"]),
            ),
            revert: format!(
                "{show_root} | grep -q 'qdisc htb 1: ' && {}; true",
                tc(&["qdisc", "del", "dev", device, "root"])
            ),
            gone: format!("! {show_root} | grep -q 'qdisc htb 1: '"),
            exempt: exempt.join(" and "),
        }
    }

    fn disk_fill(
        &self,
        path: &str,
        amount: FillAmount,
        force: bool,
        allow_destructive: bool,
    ) -> Result<Phases, Error> {
        let file = format!("{}/.bfly-fill-{}", path.trim_end_matches('/'), self.id);
        let keep = if force {
            0
        } else {
            DISK_FILL_KEEP_FREE_PERCENT
        };
        // The percentage itself was checked against the margin by `refuse_destructive`.
        let want = match amount {
            FillAmount::Size(size) => size.0.to_string(),
            FillAmount::Percent(percent) => {
                let basis_points = (percent.get() * 100.0).round() as u64;
                format!("$(((used + avail) / 10000 * {basis_points} - used))")
            }
        };
        // The path as the host resolves it: checked at preflight and again right before the fill.
        let guard = if allow_destructive {
            "true".to_owned()
        } else {
            fill_guard(path)
        };
        // Sizes are relative to what df reports (used + available), so that "90%" is what
        // `df` shows afterwards; root-reserved blocks are never counted as fillable.
        let df = format!(
            "set -- $(df -P -B1 {} | awk 'NR == 2 {{print $3, $4}}') && used=$1 avail=$2",
            quote(path)
        );
        let over_limit = if force {
            "want=$room".to_owned()
        } else {
            "echo \"filling $want bytes would leave less than the safety margin ($room bytes may be used); set force\" >&2; exit 1".to_owned()
        };
        let quoted = quote(&file);
        Ok(Phases {
            preflight: check(
                format!("{path} is a directory on an unprotected filesystem and fallocate exists"),
                format!(
                    "[ -d {} ] && command -v fallocate >/dev/null && [ ! -e {quoted} ] && {guard}",
                    quote(path)
                ),
            ),
            inject: format!(
                "{guard} && {df} && want={want} && room=$((avail - (used + avail) / 100 * {keep})) && \
                 if [ \"$want\" -gt \"$room\" ]; then {over_limit}; fi && \
                 [ \"$want\" -gt 0 ] && {{ fallocate -l \"$want\" {quoted} || [ -s {quoted} ]; }} && echo \"$want\""
            ),
            verify: check(
                format!("{file} holds the space"),
                format!(
                    "[ -f {quoted} ] && [ \"$(du -B1 {quoted} | cut -f1)\" -ge $(({INJECT_CAPTURE} / 10 * 9)) ]"
                ),
            ),
            revert: Some(format!("rm -f {quoted}")),
            verify_reverted: Some(check(
                format!("{file} is gone"),
                format!("[ ! -e {quoted} ]"),
            )),
            deadman: true,
        })
    }

    /// Runs `command` as a transient unit bounded by its own timeout (stress-ng, lock sessions).
    fn helper_unit_phases(
        &self,
        unit: &str,
        command: &str,
        seconds: u64,
        preflight_extra: Option<String>,
    ) -> Phases {
        let service = format!("{unit}.service");
        let mut preflight =
            "command -v systemd-run >/dev/null && command -v stress-ng >/dev/null".to_owned();
        if let Some(extra) = preflight_extra {
            preflight = format!("{preflight} && {extra}");
        }
        Phases {
            preflight: check(
                "systemd-run and stress-ng exist and the size is bounded",
                preflight,
            ),
            inject: format!(
                "systemd-run --quiet --collect {} {} {command}",
                quote(&format!("--unit={service}")),
                quote(&format!("--property=RuntimeMaxSec={seconds}"))
            ),
            verify: check(
                format!("{service} runs"),
                format!(
                    "{} && [ {} -gt 0 ]",
                    is_active(&service),
                    unit_property(&service, "MainPID")
                ),
            ),
            revert: Some(format!(
                "systemctl stop {} 2>/dev/null; true",
                quote(&service)
            )),
            verify_reverted: Some(check(
                format!("{service} is gone"),
                format!("! {}", is_active(&service)),
            )),
            deadman: false,
        }
    }

    fn clock_skew(&self, offset_seconds: i64) -> Result<Phases, Error> {
        let unit = service_unit(self)?.as_str();
        let full_unit = if unit.contains('.') {
            unit.to_owned()
        } else {
            format!("{unit}.service")
        };
        let dir = format!("/run/systemd/system/{full_unit}.d");
        let file = format!("{dir}/50-bfly-clock-{}.conf", self.id);
        let faketime = format!("{offset_seconds:+}");
        let main_pid = unit_property(unit, "MainPID");
        let preloaded = "grep -q libfaketime \"/proc/$pid/maps\"";
        let environment = format!(
            "Environment=LD_PRELOAD={PREFLIGHT_CAPTURE} FAKETIME={faketime} FAKETIME_DONT_FAKE_MONOTONIC=1"
        );
        Ok(Phases {
            preflight: check(
                format!("{unit} is active and libfaketime is installed"),
                format!(
                    "{} && lib=$(ls /usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 2>/dev/null | head -n 1) && [ -n \"$lib\" ] && echo \"$lib\"",
                    is_active(unit)
                ),
            ),
            inject: format!(
                "{} && {} > {} && systemctl daemon-reload && {}",
                join(&["mkdir", "-p", &dir]),
                join(&["printf", "%s\\n", "[Service]", &environment]),
                quote(&file),
                join(&["systemctl", "restart", unit])
            ),
            verify: check(
                format!(
                    "the main process of {unit} runs under libfaketime with FAKETIME={faketime}"
                ),
                format!(
                    "pid={main_pid} && [ \"$pid\" -gt 0 ] && {preloaded} && tr '\\0' '\\n' < \"/proc/$pid/environ\" | grep -qx {}",
                    quote(&format!("FAKETIME={faketime}"))
                ),
            ),
            revert: Some(format!(
                "rm -f {}; systemctl daemon-reload; pid={main_pid}; if [ \"$pid\" -gt 0 ] && {preloaded}; then {}; fi; true",
                quote(&file),
                join(&["systemctl", "restart", unit])
            )),
            verify_reverted: Some(check(
                format!("{unit} runs without libfaketime and the drop-in is gone"),
                format!(
                    "[ ! -e {} ] && {} && pid={main_pid} && [ \"$pid\" -gt 0 ] && ! {preloaded}",
                    quote(&file),
                    is_active(unit)
                ),
            )),
            deadman: true,
        })
    }
}

/// Finds the MariaDB client (`mariadb` or `mysql`) into `$m`.
pub(crate) const MYSQL: &str = "m=$(command -v mariadb || command -v mysql)";

/// The scripts of [`FaultInput::ssh_exempt_shaping`] on one device.
struct Shaping {
    inject: String,
    verify: String,
    revert: String,
    gone: String,
    /// What stays unshaped, for messages.
    exempt: String,
}

impl Shaping {
    /// The phases of a fault that is this shaping on `interface` itself (egress); `does` says
    /// what the leaf does ("shapes through tbf").
    fn into_phases(self, preflight: Check, does: &str, interface: &str) -> Phases {
        Phases {
            preflight,
            inject: self.inject,
            verify: check(
                format!("{interface} {does} all but {}", self.exempt),
                self.verify,
            ),
            revert: Some(self.revert),
            verify_reverted: Some(check(
                format!("no shaping of ours on {interface}"),
                self.gone,
            )),
            deadman: true,
        }
    }
}

pub(crate) struct Phases {
    pub(crate) preflight: Check,
    pub(crate) inject: String,
    pub(crate) verify: Check,
    pub(crate) revert: Option<String>,
    pub(crate) verify_reverted: Option<Check>,
    pub(crate) deadman: bool,
}

/// Refuses (exit 1, with the reason on stderr) when `path` resolves into a protected tree or lies
/// on the filesystem of one: a symlink into `/etc`, a bind mount of `/var/log`, or a directory of
/// the root filesystem all fill a system filesystem, however the campaign spelled the path.
fn fill_guard(path: &str) -> String {
    let patterns = PROTECTED_TREES
        .iter()
        .map(|tree| match (tree.extent, tree.path) {
            (Extent::Exact, path) => quote(path),
            (Extent::Subtree, "/") => "/*".to_owned(),
            (Extent::Subtree, path) => format!("{}|{}*", quote(path), quote(&format!("{path}/"))),
        })
        .collect::<Vec<_>>()
        .join("|");
    let roots = PROTECTED_TREES
        .iter()
        .map(|tree| quote(tree.path))
        .collect::<Vec<_>>()
        .join(" ");
    let shown = quote(path);
    format!(
        "command -v findmnt >/dev/null && real=$(realpath -m {shown}) && dev=$(stat -c %d \"$real\") && \
         m=$(findmnt -n -o TARGET,SOURCE,FSTYPE --target \"$real\") && set -- $m && \
         case \"$real\" in {patterns}) printf 'refusing to fill %s: it resolves to %s, a protected tree\\n' {shown} \"$real\" >&2; exit 1;; esac && \
         for t in {roots}; do if [ -e \"$t\" ] && [ \"$(stat -c %d \"$t\")\" = \"$dev\" ]; then \
         printf 'refusing to fill %s: it lies on the filesystem mounted at %s (%s, %s), which holds %s\\n' {shown} \"$1\" \"$2\" \"$3\" \"$t\" >&2; exit 1; fi; done"
    )
}

/// Refuses (exit 1) to signal PID 1, unless destructive faults are allowed, and always refuses
/// to signal a process of the injector's own session (its shell, sudo, sshd): the fault could
/// never be verified or reverted. Reads `$name` and the PIDs in `$pids`.
pub(crate) fn kill_guard(allow_destructive: bool) -> String {
    let init = if allow_destructive {
        String::new()
    } else {
        "[ \"$p\" = 1 ] && { printf 'refusing to kill PID 1 (%s): it is the init of the host\\n' \"$name\" >&2; exit 1; }; ".to_owned()
    };
    format!(
        "own=' '; a=$$; while [ -n \"$a\" ] && [ \"$a\" -gt 1 ]; do own=\"$own$a \"; n=; while read -r k v; do [ \"$k\" = PPid: ] && {{ n=$v; break; }}; done 2>/dev/null < /proc/$a/status; a=$n; done; \
         for p in $pids; do {init}case \"$own\" in *\" $p \"*) printf 'refusing to kill %s (%s): it carries the session of the injector\\n' \"$p\" \"$name\" >&2; exit 1;; esac; done"
    )
}

pub(crate) fn is_safe_id(id: &str) -> bool {
    id.len() == 8
        && id
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

fn family(is_v6: bool) -> &'static str {
    if is_v6 { "ip6" } else { "ip" }
}

/// nft rules in `chain`, one per peer (or one for all), matching `ports` on each of `port_fields`.
fn match_rules(
    chain: &str,
    peers: &[(bool, String)],
    ports: &[u16],
    address_field: &str,
    port_fields: &[&str],
    verdict: &str,
) -> Vec<(String, String)> {
    let peer_matches: Vec<String> = if peers.is_empty() {
        vec![String::new()]
    } else {
        peers
            .iter()
            .map(|(v6, address)| format!("{} {address_field} {address} ", family(*v6)))
            .collect()
    };
    let port_matches: Vec<String> = if ports.is_empty() {
        vec![String::new()]
    } else {
        port_fields
            .iter()
            .map(|field| {
                format!(
                    "meta l4proto {{ tcp, udp }} th {field} {{ {} }} ",
                    port_set(ports)
                )
            })
            .collect()
    };
    let mut rules = Vec::new();
    for peer in &peer_matches {
        for port in &port_matches {
            rules.push((chain.to_owned(), format!("{peer}{port}{verdict}")));
        }
    }
    rules
}

fn tcp_port_rules(
    chain: &str,
    peers: &[(bool, String)],
    ports: &[u16],
    address_field: &str,
    verdict: &str,
) -> Vec<(String, String)> {
    let port_match = format!("tcp dport {{ {} }}", port_set(ports));
    if peers.is_empty() {
        return vec![(chain.to_owned(), format!("{port_match} {verdict}"))];
    }
    peers
        .iter()
        .map(|(v6, address)| {
            (
                chain.to_owned(),
                format!(
                    "{} {address_field} {address} {port_match} {verdict}",
                    family(*v6)
                ),
            )
        })
        .collect()
}

fn port_set(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Reach, SshSpec};
    use crate::plan::{Captured, substitute};
    use scenarios::units::{Bytes, InterfaceName, PathName, Percent, ProcessName, SqlIdent};

    const ID: &str = "0a1b2c3d";

    fn ssh_host() -> HostSpec {
        HostSpec {
            name: "compute1".into(),
            reach: Reach::Ssh(SshSpec {
                address: "10.77.0.3".into(),
                user: "root".into(),
                port: 22,
                identity: None,
                known_hosts: None,
                insecure_accept_any_host_key: false,
            }),
            sudo: false,
        }
    }

    fn service(unit: &str) -> ServiceRef {
        ServiceRef {
            name: scenarios::units::Ident::new("svc").unwrap(),
            runtime: Runtime::Unit(UnitName::new(unit).unwrap()),
            process: None,
            ports: vec![8774],
        }
    }

    fn peer(address: &str) -> Peer {
        Peer {
            name: "controller".into(),
            address: address.into(),
        }
    }

    /// One representative fault per kind, in catalog order.
    fn samples() -> Vec<Fault> {
        vec![
            Fault::ProcessKill {
                signal: Signal::Kill,
                process: None,
            },
            Fault::ProcessKill {
                signal: Signal::Term,
                process: Some(ProcessName::new("nova-conductor").unwrap()),
            },
            Fault::ServiceStop,
            Fault::ServiceRestart,
            Fault::ServiceKill {
                signal: Signal::Kill,
            },
            Fault::ProcessFreeze {
                method: FreezeMethod::Cgroup,
            },
            Fault::ProcessFreeze {
                method: FreezeMethod::Sigstop,
            },
            Fault::NetworkDelay {
                delay: Duration::from_millis(100),
                jitter: Duration::from_millis(10),
                interface: InterfaceName::new("eth0").unwrap(),
                direction: Direction::Both,
                peers: vec![peer("10.77.0.2")],
                ports: vec![5672],
            },
            Fault::NetworkLoss {
                percent: Percent::new(30.0).unwrap(),
                direction: Direction::Both,
                peers: vec![peer("10.77.0.2")],
                ports: vec![],
            },
            Fault::NetworkPartition {
                peers: vec![peer("10.77.0.0/24"), peer("fd00::2")],
                ports: vec![],
            },
            Fault::NetworkReset {
                ports: vec![5672, 3306],
                peers: vec![],
            },
            Fault::NetworkBandwidth {
                rate_bits_per_second: 1_000_000,
                burst: Bytes(32768),
                interface: InterfaceName::new("eth0").unwrap(),
                direction: Direction::Egress,
            },
            Fault::NetworkBandwidth {
                rate_bits_per_second: 1_000_000,
                burst: Bytes(32768),
                interface: InterfaceName::new("eth0").unwrap(),
                direction: Direction::Ingress,
            },
            Fault::DiskFill {
                path: PathName::new("/srv").unwrap(),
                amount: FillAmount::Percent(Percent::new(90.0).unwrap()),
                force: false,
            },
            Fault::DiskFill {
                path: PathName::new("/srv/data").unwrap(),
                amount: FillAmount::Size(Bytes(8 << 20)),
                force: true,
            },
            Fault::CpuStress {
                workers: 2,
                load: Percent::new(80.0).unwrap(),
            },
            Fault::MemoryStress {
                size: Bytes(256 << 20),
                workers: 2,
            },
            Fault::ClockSkew {
                offset_seconds: -1800,
            },
            Fault::RabbitmqCloseConnections,
            Fault::RabbitmqMemoryAlarm,
            Fault::RabbitmqStopApp,
            Fault::MariadbKillConnections {
                user: Some(SqlIdent::new("nova").unwrap()),
            },
            Fault::MariadbLockTables {
                database: SqlIdent::new("nova").unwrap(),
                tables: vec![
                    SqlIdent::new("instances").unwrap(),
                    SqlIdent::new("services").unwrap(),
                ],
            },
        ]
    }

    fn plan_of(fault: &Fault, options: &PlanOptions) -> Result<FaultPlan, Error> {
        let host = ssh_host();
        let service = service("devstack@n-cpu");
        FaultInput {
            id: ID,
            fault,
            host: &host,
            service: Some(&service),
            duration: Duration::from_secs(60),
        }
        .plan(options)
    }

    #[test]
    fn every_fault_kind_has_a_plan() {
        let planned: std::collections::BTreeSet<_> = samples()
            .iter()
            .map(|fault| plan_of(fault, &PlanOptions::default()).unwrap().kind)
            .collect();
        for kind in scenarios::fault::FAULT_KINDS {
            assert!(planned.contains(kind.name()), "no sample for {kind}");
        }
    }

    /// Every generated script is valid POSIX sh (checked with `sh -n`), with captures filled in.
    #[test]
    fn every_script_parses_as_posix_sh() {
        let pre = Captured::from_output("1234").unwrap();
        let inj = Captured::from_output("1234 5678").unwrap();
        for fault in samples() {
            let plan = plan_of(&fault, &PlanOptions::default()).unwrap();
            let mut scripts = vec![
                plan.preflight.script.clone(),
                plan.inject.clone(),
                plan.verify.script.clone(),
            ];
            scripts.extend(plan.revert.clone());
            scripts.extend(
                plan.verify_reverted
                    .as_ref()
                    .map(|check| check.script.clone()),
            );
            if let Some(revert) = &plan.revert {
                scripts.push(crate::plan::deadman_arm(
                    &plan.id,
                    Duration::from_secs(90),
                    revert,
                ));
            }
            scripts.push(plan.inject_script(Duration::from_secs(15)));
            scripts.extend(crate::plan::revert_script(
                &plan,
                plan.revert.as_deref(),
                plan.verify_reverted.as_ref(),
                Duration::from_secs(15),
            ));
            for script in scripts {
                let script = substitute(&script, &pre, &inj);
                let status = std::process::Command::new("sh")
                    .args(["-n", "-c", &script])
                    .status()
                    .unwrap();
                assert!(status.success(), "{}: not valid sh: {script}", plan.kind);
            }
        }
    }

    #[test]
    fn dry_run_shows_the_exact_commands_of_every_kind() {
        let mut text = String::new();
        for fault in samples() {
            let plan = plan_of(&fault, &PlanOptions::default()).unwrap();
            text.push_str(&plan.dry_run(Duration::from_secs(30)).to_string());
        }
        insta::assert_snapshot!(text);
    }

    #[test]
    fn sudo_hosts_get_sudo_n() {
        let mut host = ssh_host();
        host.sudo = true;
        let service = service("devstack@n-cpu");
        let plan = FaultInput {
            id: ID,
            fault: &Fault::ServiceStop,
            host: &host,
            service: Some(&service),
            duration: Duration::from_secs(5),
        }
        .plan(&PlanOptions::default())
        .unwrap();
        let dry = plan.dry_run(Duration::from_secs(30));
        assert!(
            dry.steps
                .iter()
                .all(|(_, line)| line.starts_with("sudo -n sh -c ")),
            "{dry}"
        );
    }

    #[test]
    fn destructive_targets_are_refused_without_the_flag() {
        let host = ssh_host();
        let sshd = service("ssh.service");
        let socket = service("ssh.socket");
        let openssh = service("openssh-server.service");
        let journald = service("systemd-journald.service");
        let cases: Vec<(Fault, Option<&ServiceRef>)> = vec![
            (Fault::ServiceStop, Some(&sshd)),
            (Fault::ServiceStop, Some(&socket)),
            (Fault::ServiceRestart, Some(&openssh)),
            (
                Fault::ProcessKill {
                    signal: Signal::Kill,
                    process: None,
                },
                Some(&journald),
            ),
            (
                Fault::ProcessKill {
                    signal: Signal::Term,
                    process: Some(ProcessName::new("systemd").unwrap()),
                },
                None,
            ),
            (
                Fault::DiskFill {
                    path: PathName::new("//etc/ssl").unwrap(),
                    amount: FillAmount::Size(Bytes(1)),
                    force: true,
                },
                None,
            ),
            (
                Fault::NetworkLoss {
                    percent: Percent::new(100.0).unwrap(),
                    direction: Direction::Both,
                    peers: vec![],
                    ports: vec![22],
                },
                None,
            ),
            (
                Fault::NetworkPartition {
                    peers: vec![peer("::/0")],
                    ports: vec![],
                },
                None,
            ),
            (
                Fault::ProcessKill {
                    signal: Signal::Kill,
                    process: Some(ProcessName::new("sshd").unwrap()),
                },
                None,
            ),
            (
                Fault::DiskFill {
                    path: PathName::new("/").unwrap(),
                    amount: FillAmount::Size(Bytes(1)),
                    force: false,
                },
                None,
            ),
            (
                Fault::NetworkPartition {
                    peers: vec![],
                    ports: vec![],
                },
                None,
            ),
            (
                Fault::NetworkPartition {
                    peers: vec![peer("0.0.0.0/0")],
                    ports: vec![],
                },
                None,
            ),
            (
                Fault::NetworkPartition {
                    peers: vec![],
                    ports: vec![22],
                },
                None,
            ),
            (
                Fault::NetworkReset {
                    peers: vec![],
                    ports: vec![22],
                },
                None,
            ),
        ];
        for (fault, service) in cases {
            let input = FaultInput {
                id: ID,
                fault: &fault,
                host: &host,
                service,
                duration: Duration::from_secs(5),
            };
            let error = input.plan(&PlanOptions::default()).unwrap_err();
            assert!(matches!(error, Error::Refused(_)), "{fault:?}: {error}");
            let allowed = PlanOptions {
                allow_destructive: true,
                ..PlanOptions::default()
            };
            assert!(
                input.plan(&allowed).is_ok(),
                "{fault:?} should pass with allow_destructive"
            );
        }
        let too_full = Fault::DiskFill {
            path: PathName::new("/srv").unwrap(),
            amount: FillAmount::Percent(Percent::new(99.0).unwrap()),
            force: false,
        };
        assert!(matches!(
            plan_of(&too_full, &PlanOptions::default()),
            Err(Error::Refused(_))
        ));
    }

    #[test]
    fn injection_strings_are_refused_in_every_field() {
        let hostile = [
            "a;reboot", "$(id)", "`id`", "x y", "-rf", "a'b", "a\nb", "a|b", "../etc",
        ];
        for text in hostile {
            assert!(UnitName::new(text).is_err(), "unit {text}");
            assert!(ProcessName::new(text).is_err(), "process {text}");
            assert!(InterfaceName::new(text).is_err(), "interface {text}");
            assert!(SqlIdent::new(text).is_err(), "sql {text}");
            assert!(
                PathName::new(&format!("/srv/{text}")).is_err()
                    || !text.contains(['/', ';', '$', '`', ' ', '\'', '\n', '|']),
                "path {text}"
            );
            // Peers carry addresses as text: the catalog parses them again and refuses.
            let fault = Fault::NetworkPartition {
                peers: vec![peer(&format!("10.0.0.1{text}"))],
                ports: vec![],
            };
            assert!(
                matches!(
                    plan_of(&fault, &PlanOptions::default()),
                    Err(Error::Invalid(_))
                ),
                "peer {text}"
            );
        }
        let host = ssh_host();
        for id in ["0a1b2c3d; reboot", "ABCDEF12", "short", ""] {
            let input = FaultInput {
                id,
                fault: &Fault::ServiceStop,
                host: &host,
                service: None,
                duration: Duration::from_secs(1),
            };
            assert!(
                matches!(input.plan(&PlanOptions::default()), Err(Error::Invalid(_))),
                "id {id:?}"
            );
        }
    }

    #[test]
    fn service_faults_without_a_service_are_invalid() {
        let host = ssh_host();
        for fault in [
            Fault::ServiceStop,
            Fault::ClockSkew { offset_seconds: 60 },
            Fault::ProcessKill {
                signal: Signal::Kill,
                process: None,
            },
        ] {
            let input = FaultInput {
                id: ID,
                fault: &fault,
                host: &host,
                service: None,
                duration: Duration::from_secs(1),
            };
            assert!(
                matches!(input.plan(&PlanOptions::default()), Err(Error::Invalid(_))),
                "{fault:?}"
            );
        }
    }

    fn ssh_host_on_port(port: u16) -> HostSpec {
        let mut host = ssh_host();
        if let Reach::Ssh(ssh) = &mut host.reach {
            ssh.port = port;
        }
        host
    }

    fn plan_on(fault: &Fault, host: &HostSpec, options: &PlanOptions) -> FaultPlan {
        FaultInput {
            id: ID,
            fault,
            host,
            service: None,
            duration: Duration::from_secs(60),
        }
        .plan(options)
        .unwrap_or_else(|e| panic!("{fault:?}: {e}"))
    }

    /// The position of `needle` in `script`, which must hold it.
    fn at(script: &str, needle: &str) -> usize {
        script
            .find(needle)
            .unwrap_or_else(|| panic!("no {needle:?} in:\n{script}"))
    }

    /// The tc filters of a shaping inject on `device`, as `(prio, flowid, matches)`.
    fn tc_filters(inject: &str, device: &str) -> Vec<(u32, String, String)> {
        let prefix = format!("tc filter add dev {device} parent 1: protocol ");
        inject
            .split(" && ")
            .filter_map(|command| command.strip_prefix(prefix.as_str()))
            .map(|rest| {
                let prio: u32 = rest
                    .split(" prio ")
                    .nth(1)
                    .and_then(|tail| tail.split(' ').next())
                    .and_then(|prio| prio.parse().ok())
                    .unwrap_or_else(|| panic!("no prio in {rest}"));
                let (matches, flowid) = rest.rsplit_once(" flowid ").expect("a flowid");
                (prio, flowid.to_owned(), matches.to_owned())
            })
            .collect()
    }

    /// Shaping on `device` sends TCP to and from `port` (IPv4 and IPv6) to the unlimited class
    /// 1:1 ahead of the catch-all filters that feed the limiting leaf under class 1:2, and the
    /// leaf is never the root qdisc.
    fn assert_shaping_exempts(inject: &str, device: &str, port: u16, leaf: &str) {
        let filters = tc_filters(inject, device);
        let catch_all: Vec<_> = filters
            .iter()
            .filter(|(_, flow, _)| flow == "1:2")
            .collect();
        assert_eq!(catch_all.len(), 2, "{inject}");
        let first_limited = catch_all.iter().map(|(prio, _, _)| *prio).min().unwrap();
        for family in ["ip", "ip6"] {
            for field in ["sport", "dport"] {
                let exempt =
                    format!("match {family} protocol 6 0xff match {family} {field} {port} 0xffff");
                let (prio, flow, _) = filters
                    .iter()
                    .find(|(_, _, matches)| matches.ends_with(&exempt))
                    .unwrap_or_else(|| panic!("no filter {exempt} on {device}: {inject}"));
                assert_eq!(flow, "1:1", "{exempt}");
                assert!(
                    *prio < first_limited,
                    "{exempt} is consulted after the catch-all"
                );
            }
        }
        assert!(
            inject.contains(&format!(
                "tc qdisc add dev {device} parent 1:2 handle 2: {leaf}"
            )),
            "{inject}"
        );
        assert!(!inject.contains(&format!("root {leaf}")), "{inject}");
        assert!(inject.contains(&format!(
            "tc qdisc replace dev {device} root handle 1: htb default 1"
        )));
    }

    /// In an nft plan, each chain accepts TCP to and from `port` before its first fault rule.
    fn assert_nft_exempts(inject: &str, port: u16) {
        let program = inject
            .strip_prefix("printf '%s\\n' '")
            .and_then(|rest| rest.strip_suffix("' | nft -f -"))
            .unwrap_or_else(|| panic!("not an nft program: {inject}"));
        let lines: Vec<&str> = program.split("' '").collect();
        for chain in ["input", "output"] {
            let prefix = format!("add rule inet bfly_{ID} {chain} ");
            let rules: Vec<&str> = lines
                .iter()
                .filter_map(|line| line.strip_prefix(prefix.as_str()))
                .collect();
            // A chain without fault rules (an ingress-only loss's output) still accepts first.
            let first_fault = rules
                .iter()
                .position(|rule| !rule.ends_with(" accept"))
                .unwrap_or(rules.len());
            for field in ["dport", "sport"] {
                let accept = format!("tcp {field} {port} accept");
                let index = rules
                    .iter()
                    .position(|rule| *rule == accept)
                    .unwrap_or_else(|| panic!("{chain} does not {accept}: {inject}"));
                assert!(index < first_fault, "{chain}: {accept} comes too late");
            }
        }
    }

    /// Every network fault, however it names peers and ports (none, the controller, both IP
    /// families, 100 % loss, the lowest rate tc takes), leaves TCP to and from the host's SSH
    /// port (from its HostSpec, not a fixed 22) before any rule or class that acts on traffic,
    /// and asks the engine to check the control channel once the fault is in effect.
    #[test]
    fn every_network_fault_leaves_the_ssh_port_out() {
        let port = 2222;
        let host = ssh_host_on_port(port);
        let eth0 = || InterfaceName::new("eth0").unwrap();
        let controller = || peer("10.77.0.1");
        let everything = Percent::new(100.0).unwrap();
        let nft_faults = [
            Fault::NetworkLoss {
                percent: everything,
                direction: Direction::Both,
                peers: vec![],
                ports: vec![],
            },
            Fault::NetworkLoss {
                percent: everything,
                direction: Direction::Ingress,
                peers: vec![controller(), peer("fd00::1")],
                ports: vec![],
            },
            Fault::NetworkPartition {
                peers: vec![controller(), peer("fd00::1")],
                ports: vec![],
            },
            Fault::NetworkPartition {
                peers: vec![],
                ports: vec![5672],
            },
            Fault::NetworkReset {
                ports: vec![5672],
                peers: vec![controller()],
            },
        ];
        for fault in &nft_faults {
            let plan = plan_on(fault, &host, &PlanOptions::default());
            assert_nft_exempts(&plan.inject, port);
            assert!(plan.checks_control_channel, "{fault:?}");
        }
        for peers in [vec![], vec![controller()]] {
            let delay = Fault::NetworkDelay {
                delay: Duration::from_millis(100),
                jitter: Duration::ZERO,
                interface: eth0(),
                direction: Direction::Both,
                peers,
                ports: vec![],
            };
            let plan = plan_on(&delay, &host, &PlanOptions::default());
            for chain in [
                format!("BFLY_{}_O", ID.to_uppercase()),
                format!("BFLY_{}_I", ID.to_uppercase()),
            ] {
                let rules: Vec<&str> = plan
                    .inject
                    .split(" && ")
                    .filter_map(|command| {
                        command.strip_prefix(format!("iptables -w -t mangle -A {chain} ").as_str())
                    })
                    .collect();
                let queue = rules
                    .iter()
                    .position(|rule| rule.contains("NFQUEUE"))
                    .unwrap_or_else(|| panic!("{chain} queues nothing: {}", plan.inject));
                for field in ["--sport", "--dport"] {
                    let exempt = format!("-p tcp {field} {port} -j RETURN");
                    let index = rules
                        .iter()
                        .position(|rule| *rule == exempt)
                        .unwrap_or_else(|| panic!("{chain} lacks {exempt}"));
                    assert!(index < queue, "{chain}: {exempt} comes too late");
                }
            }
            assert!(plan.checks_control_channel);
        }
        let netem = PlanOptions {
            delay_backend: DelayBackend::Netem,
            ..PlanOptions::default()
        };
        let egress_delay = Fault::NetworkDelay {
            delay: Duration::from_millis(100),
            jitter: Duration::ZERO,
            interface: eth0(),
            direction: Direction::Egress,
            peers: vec![],
            ports: vec![],
        };
        let plan = plan_on(&egress_delay, &host, &netem);
        assert_shaping_exempts(&plan.inject, "eth0", port, "netem delay 100ms 0ms");
        assert!(plan.checks_control_channel);
        for direction in [Direction::Egress, Direction::Ingress] {
            let bandwidth = Fault::NetworkBandwidth {
                rate_bits_per_second: 8,
                burst: Bytes(1600),
                interface: eth0(),
                direction,
            };
            let plan = plan_on(&bandwidth, &host, &PlanOptions::default());
            let device = if direction == Direction::Egress {
                "eth0".to_owned()
            } else {
                format!("bfb{ID}")
            };
            assert_shaping_exempts(&plan.inject, &device, port, "tbf rate 8bit burst 1600");
            if direction == Direction::Ingress {
                // The redirect into the ifb comes only once the ifb shapes with its exemption.
                let shaped = at(
                    &plan.inject,
                    &format!("tc filter add dev {device} parent 1: protocol ipv6 prio 4"),
                );
                let redirect = at(&plan.inject, "action mirred egress redirect");
                assert!(shaped < redirect, "{}", plan.inject);
            }
            assert!(plan.checks_control_channel);
        }
    }

    #[test]
    fn a_rate_below_what_tc_takes_is_refused() {
        let bandwidth = Fault::NetworkBandwidth {
            rate_bits_per_second: 1,
            burst: Bytes(1600),
            interface: InterfaceName::new("eth0").unwrap(),
            direction: Direction::Egress,
        };
        assert!(matches!(
            plan_of(&bandwidth, &PlanOptions::default()),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn faults_on_a_host_without_ssh_check_no_control_channel() {
        let local = HostSpec::local("here");
        let loss = Fault::NetworkLoss {
            percent: Percent::new(50.0).unwrap(),
            direction: Direction::Both,
            peers: vec![peer("10.0.0.2")],
            ports: vec![],
        };
        let plan = plan_on(&loss, &local, &PlanOptions::default());
        assert!(!plan.checks_control_channel);
        assert!(!plan.inject.contains("tcp dport"), "{}", plan.inject);
        let kill = plan_of(
            &Fault::ProcessKill {
                signal: Signal::Kill,
                process: None,
            },
            &PlanOptions::default(),
        )
        .unwrap();
        assert!(!kill.checks_control_channel);
    }

    #[test]
    fn netem_backend_is_egress_only_and_keeps_the_ssh_port_out_of_nfqueue() {
        let netem = PlanOptions {
            delay_backend: DelayBackend::Netem,
            ..PlanOptions::default()
        };
        let egress = Fault::NetworkDelay {
            delay: Duration::from_millis(50),
            jitter: Duration::ZERO,
            interface: InterfaceName::new("eth0").unwrap(),
            direction: Direction::Egress,
            peers: vec![],
            ports: vec![],
        };
        let plan = plan_of(&egress, &netem).unwrap();
        assert!(
            plan.inject.contains("netem delay 50ms 0ms"),
            "{}",
            plan.inject
        );
        assert_eq!(plan.delayer, None);
        let nfq = plan_of(&egress, &PlanOptions::default()).unwrap();
        assert!(
            nfq.inject.contains("--sport 22 -j RETURN"),
            "{}",
            nfq.inject
        );
        assert_eq!(nfq.delayer.as_deref(), Some(DEFAULT_DELAYER_PATH));
        let ingress = Fault::NetworkDelay {
            delay: Duration::from_millis(50),
            jitter: Duration::ZERO,
            interface: InterfaceName::new("eth0").unwrap(),
            direction: Direction::Ingress,
            peers: vec![],
            ports: vec![],
        };
        assert!(matches!(plan_of(&ingress, &netem), Err(Error::Invalid(_))));
    }
}
