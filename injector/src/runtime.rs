//! Faults on containerised services: how each service-targeting fault kind reaches a service that
//! runs in a Docker/Podman container (kolla-ansible) or as a unit inside an LXC container
//! (OpenStack-Ansible), keeping the five phases, the journal and the dead-man switch of
//! `catalog.rs`.
//!
//! - A **container** is acted on through its engine's CLI and its supervising unit: kill signals
//!   the main PID that `inspect` reports, freeze is `pause` (or SIGSTOP of every process of its
//!   PID namespace), stop/restart go through the supervising unit when there is one (an engine
//!   stop would be undone by the unit's restart policy), broker and database clients run
//!   through `exec`. A kill's revert tells a heal by the supervisor (and how long the container
//!   took to come back) from a start by the revert; a stop's revert tells whether it held.
//! - A **unit inside an LXC container** gets the very scripts a host unit gets, run inside the
//!   container with `lxc-attach`; the cgroup freeze is `lxc-freeze` of the container, and network
//!   faults run in the container's own network namespace (`nsenter -n`).
//!
//! Every name was validated by `scenarios` (letters, digits, `_ . -`) and is quoted again here.

use scenarios::fault::{Fault, FreezeMethod, Signal};
use scenarios::model::{Engine, Runtime};

use crate::Error;
use crate::catalog::{
    FaultInput, MYSQL, Phases, PlanOptions, check, is_active, is_lethal, kill_guard, proc_state,
    signal_verify, start_unit, unit_cgroup,
};
use crate::plan::{INJECT_CAPTURE, PREFLIGHT_CAPTURE};
use crate::shell::{join, quote};

/// The prefix of a revert's output line that says what the revert observed (a heal by the
/// supervisor, a stop that held); the engine journals it with the revert.
pub const OBSERVED: &str = "bfly-observed: ";

/// Where a lethal kill's inject stamps the kill time (ms, on the host's clock) for the heal
/// measurement, and the command that does it; the revert removes the file.
pub(crate) fn kill_stamp(fault_id: &str) -> (String, String) {
    let stamp = format!("/run/bfly-killed-{fault_id}");
    let stamped = format!("date +%s%3N > {}", quote(&stamp));
    (stamp, stamped)
}

/// Revert of a lethal kill, for a container or a unit alike. `times` sets `$1` (running:
/// `true`/`false`), `$2` (its main PID), `$3` (when that process started, ms) and `$4` (when the
/// last one exited, ms). Running again with another main PID than `killed` means the supervisor
/// healed it (`killed` is empty in the dead-man switch's copy, armed before the kill: it only
/// needs to know whether to start it), and its start time minus the kill time (the inject's stamp; the last exit time when
/// the stamp is missing) is how long that took; not running, the revert starts it and says so.
pub(crate) fn heal_or_start(times: &str, start: &str, killed: &str, stamp: &str) -> String {
    let stamp = quote(stamp);
    format!(
        "{times}; k=$(cat {stamp} 2>/dev/null); rm -f {stamp}; if [ \"$1\" = true ] && [ \"$2\" != \"{killed}\" ]; then ms=$(($3 - ${{k:-$4}})); [ \"$ms\" -ge 0 ] || ms=0; echo \"{OBSERVED}healed by supervisor after $((ms / 1000)).$((ms % 1000 / 100)) s\"; elif [ \"$1\" != true ]; then {start}; echo '{OBSERVED}not healed by supervisor: started by the revert'; fi"
    )
}

/// Reads the observation a revert printed (the last [`OBSERVED`] line), if any.
pub fn observed_in(output: &str) -> Option<String> {
    output
        .lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix(OBSERVED))
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty())
}

/// Runs `script` in a fresh `/bin/sh` through `prefix` (`lxc-attach -n C --`, `nsenter … --`).
/// `@PRE@` is replaced in the text as usual; `@INJ@`, which a poll loop on the host reads from a
/// shell variable, is passed as the inner shell's arguments.
pub(crate) fn through(prefix: &str, script: &str) -> String {
    if script.contains(INJECT_CAPTURE) {
        let inner = format!(
            "bfly_inj=$*; {}",
            script.replace(INJECT_CAPTURE, "$bfly_inj")
        );
        format!(
            "{prefix} /bin/sh -c {} bfly {INJECT_CAPTURE}",
            quote(&inner)
        )
    } else {
        format!("{prefix} /bin/sh -c {}", quote(script))
    }
}

/// Every script of `phases` run through `prefix`; each check says where it holds.
fn all_through(phases: Phases, prefix: &str, place: &str) -> Phases {
    let wrap_check =
        |c: crate::plan::Check| check(format!("{place}: {}", c.what), through(prefix, &c.script));
    Phases {
        preflight: wrap_check(phases.preflight),
        inject: through(prefix, &phases.inject),
        verify: wrap_check(phases.verify),
        revert: phases.revert.map(|r| through(prefix, &r)),
        verify_reverted: phases.verify_reverted.map(wrap_check),
        deadman: phases.deadman,
    }
}

/// `lxc-attach` into a container with a clean environment and the usual PATH.
fn lxc_attach_argv(container: &str) -> Vec<String> {
    [
        "lxc-attach",
        "-n",
        container,
        "--clear-env",
        "--set-var",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--",
    ]
    .iter()
    .map(|word| (*word).to_owned())
    .collect()
}

pub(crate) fn lxc_attach(container: &str) -> String {
    join(&lxc_attach_argv(container))
}

/// The argv prefix that runs a command where a service of `runtime` runs on `host`: `ENGINE exec
/// -i NAME` for a container, `lxc-attach -n C …` for a unit in the LXC container on that host,
/// nothing for a unit on the host itself. Quote it with [`join`]. (The tracer switches the
/// firehose through it, the injector runs broker and database clients through it.)
pub fn exec_argv(runtime: &Runtime, host: &str) -> Result<Option<Vec<String>>, String> {
    Ok(match runtime {
        Runtime::Unit(_) => None,
        Runtime::Container { engine, name, .. } => Some(
            [engine.name(), "exec", "-i", name.as_str()]
                .iter()
                .map(|word| (*word).to_owned())
                .collect(),
        ),
        Runtime::Lxc { .. } => match runtime.lxc_container_on(host) {
            Some(container) => Some(lxc_attach_argv(container.as_str())),
            None => return Err(format!("no LXC container on host {host}")),
        },
    })
}

/// Shell that sets `bfly_pid` to the init PID of a running LXC container.
fn lxc_init_pid(container: &str) -> String {
    format!(
        "bfly_pid=$({}) && [ \"$bfly_pid\" -gt 0 ]",
        join(&["lxc-info", "-n", container, "-p", "-H"])
    )
}

fn is_network(fault: &Fault) -> bool {
    matches!(
        fault,
        Fault::NetworkDelay { .. }
            | Fault::NetworkLoss { .. }
            | Fault::NetworkPartition { .. }
            | Fault::NetworkReset { .. }
            | Fault::NetworkBandwidth { .. }
    )
}

/// A container's engine and name, for the engine's CLI.
struct Ctr<'a> {
    engine: Engine,
    name: &'a str,
    unit: Option<&'a str>,
}

impl Ctr<'_> {
    fn cli(&self, args: &[&str]) -> String {
        let mut argv = vec![self.engine.name()];
        argv.extend_from_slice(args);
        join(&argv)
    }

    fn inspect(&self, template: &str) -> String {
        self.cli(&["inspect", "-f", template, self.name])
    }

    /// True while the container runs (paused counts as running for the engine).
    fn running(&self) -> String {
        format!(
            "[ \"$({} 2>/dev/null)\" = true ]",
            self.inspect("{{.State.Running}}")
        )
    }

    fn status_is(&self, status: &str) -> String {
        format!(
            "[ \"$({} 2>/dev/null)\" = {status} ]",
            self.inspect("{{.State.Status}}")
        )
    }

    /// Sets `pid` to the container's main PID (0 when it is not running).
    fn main_pid(&self) -> String {
        format!("pid=$({})", self.inspect("{{.State.Pid}}"))
    }

    /// Shell that sets `$1`…`$4` to: running (`true`/`false`), main PID, and the start and
    /// last exit times in milliseconds since the epoch. Podman's times are Go times (with
    /// `UnixMilli`); Docker's are RFC 3339 text, converted by `date`.
    fn times(&self) -> String {
        match self.engine {
            Engine::Podman => format!(
                "set -- $({})",
                self.inspect(
                    "{{.State.Running}} {{.State.Pid}} {{.State.StartedAt.UnixMilli}} {{.State.FinishedAt.UnixMilli}}"
                )
            ),
            Engine::Docker => format!(
                "set -- $({}) && set -- \"$1\" \"$2\" \"$(date -d \"$3\" +%s%3N)\" \"$(date -d \"$4\" +%s%3N)\"",
                self.inspect(
                    "{{.State.Running}} {{.State.Pid}} {{.State.StartedAt}} {{.State.FinishedAt}}"
                )
            ),
        }
    }

    /// Starts the container the way it is supervised: through its unit, else the engine.
    fn start(&self) -> String {
        match self.unit {
            Some(unit) => start_unit(unit),
            None => self.cli(&["start", self.name]),
        }
    }

    /// Is the container (and its unit, when supervised) up?
    fn up(&self) -> String {
        match self.unit {
            Some(unit) => format!("{} && {}", is_active(unit), self.running()),
            None => self.running(),
        }
    }

    fn described(&self) -> String {
        format!("{} container {}", self.engine.name(), self.name)
    }

    /// Revert of a lethal kill of the container (see [`heal_or_start`]).
    fn heal_or_start(&self, stamp: &str) -> String {
        heal_or_start(&self.times(), &self.start(), PREFLIGHT_CAPTURE, stamp)
    }

    /// Sets `pids` to every process of the container's PID namespace (only its main PID when
    /// it shares the host's PID namespace, as some kolla containers do).
    fn namespace_pids(&self) -> String {
        format!(
            "{} && [ \"$pid\" -gt 0 ] && ns=$(readlink \"/proc/$pid/ns/pid\") && pids=$pid && if [ \"$ns\" != \"$(readlink /proc/1/ns/pid)\" ]; then pids=; for d in /proc/[0-9]*; do [ \"$(readlink \"$d/ns/pid\" 2>/dev/null)\" = \"$ns\" ] && pids=\"$pids ${{d#/proc/}}\"; done; fi; [ -n \"$pids\" ]",
            self.main_pid()
        )
    }
}

impl FaultInput<'_> {
    /// The phases of a service fault on a container, or `None` when the fault is not about a
    /// container's lifecycle (then `catalog.rs` builds it, with [`FaultInput::client`] for
    /// broker and database clients).
    pub(crate) fn container_phases(&self) -> Result<Option<Phases>, Error> {
        let Some(Runtime::Container { engine, name, unit }) = self.service.map(|s| &s.runtime)
        else {
            return Ok(None);
        };
        let c = Ctr {
            engine: *engine,
            name: name.as_str(),
            unit: unit.as_ref().map(|u| u.as_str()),
        };
        let what = c.described();
        let phases = match self.fault {
            Fault::ProcessKill {
                signal,
                process: None,
            } => self.container_kill(&c, *signal, None),
            Fault::ServiceKill { signal } => self.container_kill(
                &c,
                *signal,
                Some(c.cli(&["kill", "--signal", signal.name(), c.name])),
            ),
            Fault::ServiceStop => {
                // Through the supervising unit: the engine's own stop would be undone by the
                // unit's restart policy. The revert first looks whether it held.
                let stop = match c.unit {
                    Some(unit) => join(&["systemctl", "stop", unit]),
                    None => c.cli(&["stop", c.name]),
                };
                let down = match c.unit {
                    Some(unit) => format!("! {} && ! {}", is_active(unit), c.running()),
                    None => format!("! {}", c.running()),
                };
                Phases {
                    preflight: check(format!("{what} is up"), c.up()),
                    inject: stop,
                    verify: check(format!("{what} is down"), down),
                    revert: Some(format!(
                        "if {}; then echo '{OBSERVED}came back before the revert (the stop did not hold)'; else echo '{OBSERVED}stayed down until the revert'; fi; {}",
                        c.running(),
                        c.start()
                    )),
                    verify_reverted: Some(check(format!("{what} is up"), c.up())),
                    deadman: true,
                }
            }
            Fault::ServiceRestart => {
                let restart = match c.unit {
                    Some(unit) => join(&["systemctl", "restart", unit]),
                    None => c.cli(&["restart", c.name]),
                };
                Phases {
                    preflight: check(
                        format!("{what} is up with a main process"),
                        format!(
                            "{} && {} && [ \"$pid\" -gt 0 ] && echo \"$pid\"",
                            c.up(),
                            c.main_pid()
                        ),
                    ),
                    inject: restart,
                    verify: check(
                        format!("{what} runs again with a new main process"),
                        format!(
                            "{} && {} && [ \"$pid\" -gt 0 ] && [ \"$pid\" != {PREFLIGHT_CAPTURE} ]",
                            c.up(),
                            c.main_pid()
                        ),
                    ),
                    revert: None,
                    verify_reverted: None,
                    deadman: false,
                }
            }
            Fault::ProcessFreeze {
                method: FreezeMethod::Cgroup,
            } => match c.unit {
                Some(unit) => Self::supervised_freeze(&c, unit),
                None => Phases {
                    // The engine's pause is the container's cgroup freezer; engines running
                    // without cgroups refuse it (then use `method: sigstop`).
                    preflight: check(format!("{what} is running"), c.status_is("running")),
                    inject: c.cli(&["pause", c.name]),
                    verify: check(format!("{what} is paused"), c.status_is("paused")),
                    revert: Some(format!(
                        "{} && {}; true",
                        c.status_is("paused"),
                        c.cli(&["unpause", c.name])
                    )),
                    verify_reverted: Some(check(
                        format!("{what} is running"),
                        c.status_is("running"),
                    )),
                    deadman: true,
                },
            },
            Fault::ProcessFreeze {
                method: FreezeMethod::Sigstop,
            } => {
                let name = format!("name={}", quote(c.name));
                let stopped = format!(
                    "for p in $@; do {}; case $st in T*) ;; *) exit 1;; esac; done",
                    proc_state("$p")
                );
                Phases {
                    preflight: check(
                        format!("{what} runs processes, none the injector's own"),
                        format!(
                            "{} && {} && {name} && {} && echo \"$pid\"",
                            c.status_is("running"),
                            c.namespace_pids(),
                            kill_guard(false)
                        ),
                    ),
                    inject: format!(
                        "{} && {name} && {} && kill -s STOP $pids && echo $pids",
                        c.namespace_pids(),
                        kill_guard(false)
                    ),
                    verify: check(
                        format!("every process of {what} is stopped"),
                        format!("set -- {INJECT_CAPTURE}; {stopped}"),
                    ),
                    // The processes are found again (a revert never reads `@INJ@`); a CONT
                    // to a process that runs is harmless.
                    revert: Some(format!(
                        "if {}; then kill -s CONT $pids; fi; true",
                        c.namespace_pids()
                    )),
                    verify_reverted: Some(check(
                        format!("the main process of {what} runs"),
                        format!(
                            "{} && [ \"$pid\" -gt 0 ] && {}; case $st in T*) false;; *) true;; esac",
                            c.main_pid(),
                            proc_state("$pid")
                        ),
                    )),
                    deadman: true,
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(phases))
    }

    /// The cgroup freeze of a container that a unit supervises. An engine running the container
    /// with cgroups pauses it (its own freezer); one running it without (Podman with
    /// `--cgroups=disabled`, as inside nested hosts) refuses to pause, and then conmon and the
    /// container's processes are in the cgroup of the unit that started them, whose cgroup2
    /// freezer freezes them all. The preflight decides and prints `pause` or that cgroup; the
    /// revert undoes both, whichever was done.
    fn supervised_freeze(c: &Ctr<'_>, unit: &str) -> Phases {
        let what = c.described();
        let lookup = unit_cgroup(unit);
        let no_cgroups = format!(
            "[ \"$({} 2>/dev/null)\" = disabled ]",
            c.inspect("{{.HostConfig.Cgroups}}")
        );
        let frozen = |path: &str| format!("grep -qx 'frozen 1' {path}/cgroup.events");
        let thawed =
            format!("{lookup}; [ -z \"$cg\" ] || ! grep -qx 'frozen 1' \"$cg/cgroup.events\"");
        Phases {
            preflight: check(
                format!("{what} is running, and pausable or in the cgroup2 cgroup of {unit}"),
                format!(
                    "{} && if {no_cgroups}; then {lookup} && [ -n \"$cg\" ] && [ -w \"$cg/cgroup.freeze\" ] && case \"$cg\" in *[!A-Za-z0-9._:/@-]*) false ;; *) echo \"$cg\" ;; esac; else echo pause; fi",
                    c.status_is("running")
                ),
            ),
            inject: format!(
                "case {PREFLIGHT_CAPTURE} in pause) {} >/dev/null ;; /*) echo 1 > {PREFLIGHT_CAPTURE}/cgroup.freeze ;; *) false ;; esac",
                c.cli(&["pause", c.name])
            ),
            verify: check(
                format!("{what} is paused, or every process in the cgroup of {unit} frozen"),
                format!(
                    "case {PREFLIGHT_CAPTURE} in pause) {} ;; *) {} ;; esac",
                    c.status_is("paused"),
                    frozen(PREFLIGHT_CAPTURE)
                ),
            ),
            revert: Some(format!(
                "if {}; then {}; fi; {lookup}; [ -n \"$cg\" ] && [ -w \"$cg/cgroup.freeze\" ] && echo 0 > \"$cg/cgroup.freeze\"; true",
                c.status_is("paused"),
                c.cli(&["unpause", c.name])
            )),
            verify_reverted: Some(check(
                format!("{what} is running and thawed"),
                format!("{} && {thawed}", c.status_is("running")),
            )),
            deadman: true,
        }
    }

    /// A signal to the container's main PID (`engine`: through `kill --signal` instead). A
    /// lethal signal's revert tells a heal by the supervisor from a start by the revert.
    fn container_kill(&self, c: &Ctr<'_>, signal: Signal, engine: Option<String>) -> Phases {
        let what = c.described();
        let sig = signal.name();
        let name = format!("name={}", quote(c.name));
        let guard = kill_guard(false);
        // The kill time, on the host's clock, for the heal measurement (removed by the revert).
        let (stamp, stamped) = kill_stamp(self.id);
        let inject = match engine {
            Some(kill) => format!(
                "{} && [ \"$pid\" -gt 0 ] && {stamped} && {kill} >/dev/null && echo \"$pid\"",
                c.main_pid()
            ),
            None => format!(
                "{} && [ \"$pid\" -gt 0 ] && {name} && pids=$pid && {guard} && {stamped} && kill -s {sig} \"$pid\" && echo \"$pid\"",
                c.main_pid()
            ),
        };
        let (revert, verify_reverted) = if is_lethal(signal) {
            (
                Some(c.heal_or_start(&stamp)),
                Some(check(format!("{what} is up"), c.up())),
            )
        } else {
            (None, None)
        };
        Phases {
            preflight: check(
                format!("{what} runs with a main process, not the injector's own"),
                format!(
                    "{} && {} && [ \"$pid\" -gt 0 ] && {name} && pids=$pid && {guard} && echo \"$pid\"",
                    c.running(),
                    c.main_pid()
                ),
            ),
            inject,
            verify: signal_verify(signal, "$@", INJECT_CAPTURE),
            deadman: revert.is_some(),
            revert,
            verify_reverted,
        }
    }

    /// The LXC container holding the target service on this host, for an LXC service.
    fn lxc_container(&self) -> Result<Option<&str>, Error> {
        let Some(service) = self.service else {
            return Ok(None);
        };
        if !matches!(service.runtime, Runtime::Lxc { .. }) {
            return Ok(None);
        }
        match service.runtime.lxc_container_on(&self.host.name) {
            Some(name) => Ok(Some(name.as_str())),
            None => Err(Error::Invalid(format!(
                "service {} has no LXC container on host {}",
                service.name, self.host.name
            ))),
        }
    }

    /// The phases of `catalog.rs` made to act where the service is: inside its LXC container
    /// (service faults, process kills, clock skew), or in its network namespace (network
    /// faults); `lxc-freeze` for a cgroup freeze. Other runtimes and host-wide faults (disk,
    /// CPU, memory) are returned as they are.
    pub(crate) fn confined(&self, phases: Phases, options: &PlanOptions) -> Result<Phases, Error> {
        let Some(container) = self.lxc_container()? else {
            return Ok(phases);
        };
        let place = format!("in LXC container {container}");
        Ok(match self.fault {
            Fault::ProcessFreeze {
                method: FreezeMethod::Cgroup,
            } => {
                let state = |s: &str| {
                    format!(
                        "[ \"$({} 2>/dev/null)\" = {s} ]",
                        join(&["lxc-info", "-n", container, "-s", "-H"])
                    )
                };
                Phases {
                    preflight: check(
                        format!("LXC container {container} is running"),
                        state("RUNNING"),
                    ),
                    inject: join(&["lxc-freeze", "-n", container]),
                    verify: check(
                        format!("LXC container {container} is frozen"),
                        state("FROZEN"),
                    ),
                    revert: Some(format!(
                        "{} 2>/dev/null; true",
                        join(&["lxc-unfreeze", "-n", container])
                    )),
                    verify_reverted: Some(check(
                        format!("LXC container {container} is running"),
                        state("RUNNING"),
                    )),
                    deadman: true,
                }
            }
            Fault::ProcessKill { .. }
            | Fault::ServiceStop
            | Fault::ServiceRestart
            | Fault::ServiceKill { .. }
            | Fault::ProcessFreeze { .. }
            | Fault::ClockSkew { .. } => all_through(phases, &lxc_attach(container), &place),
            fault if is_network(fault) => {
                let mut phases = phases;
                // The NFQUEUE delayer runs as a transient unit, which systemd starts in the
                // host's network namespace: it joins the container's to read its queue.
                if let Fault::NetworkDelay { .. } = fault {
                    let delayer = format!("{} --queue", quote(&options.delayer_path));
                    phases.inject = phases.inject.replacen(
                        &delayer,
                        &format!("nsenter \"--net=/proc/$bfly_pid/ns/net\" {delayer}"),
                        1,
                    );
                }
                let prefix = format!(
                    "{} && export bfly_pid && nsenter -t \"$bfly_pid\" -n --",
                    lxc_init_pid(container)
                );
                all_through(
                    phases,
                    &prefix,
                    &format!("in the network namespace of LXC container {container}"),
                )
            }
            _ => phases,
        })
    }

    /// How a broker or database client runs for the target service: inside its container
    /// (`engine exec NAME`, `lxc-attach -n C --`) or, with no containerised service, on the host.
    pub(crate) fn client(&self, tool: &str) -> Result<String, Error> {
        Ok(match self.exec_prefix()? {
            Some(prefix) => format!("{prefix} {}", quote(tool)),
            None => quote(tool),
        })
    }

    /// Shell that sets `$m` to the MariaDB client command (`mariadb` or `mysql`), inside the
    /// target service's container when it has one.
    pub(crate) fn mysql(&self) -> Result<String, Error> {
        Ok(match self.exec_prefix()? {
            Some(prefix) => format!(
                "m=$({prefix} /bin/sh -c 'command -v mariadb || command -v mysql') && [ -n \"$m\" ] && m=\"{prefix} $m\""
            ),
            None => MYSQL.to_owned(),
        })
    }

    fn exec_prefix(&self) -> Result<Option<String>, Error> {
        let Some(service) = self.service else {
            return Ok(None);
        };
        // Refused first with the message every other LXC fault gives.
        self.lxc_container()?;
        Ok(exec_argv(&service.runtime, &self.host.name)
            .map_err(|reason| Error::Invalid(format!("service {}: {reason}", service.name)))?
            .map(|argv| join(&argv)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use scenarios::fault::{Direction, FreezeMethod, Signal};
    use scenarios::model::ServiceRef;
    use scenarios::units::{ContainerName, Ident, Percent, SqlIdent, UnitName};

    use super::*;
    use crate::host::{HostSpec, Reach};

    const ID: &str = "0a1b2c3d";

    fn host(name: &str) -> HostSpec {
        HostSpec {
            name: name.into(),
            reach: Reach::Local,
            sudo: false,
        }
    }

    fn service(runtime: Runtime) -> ServiceRef {
        ServiceRef {
            name: Ident::new("nova-conductor").unwrap(),
            runtime,
            process: None,
            ports: vec![5672],
        }
    }

    fn kolla(engine: Engine, unit: Option<&str>) -> ServiceRef {
        service(Runtime::Container {
            engine,
            name: ContainerName::new("nova_conductor").unwrap(),
            unit: unit.map(|u| UnitName::new(u).unwrap()),
        })
    }

    fn osa() -> ServiceRef {
        service(Runtime::Lxc {
            unit: UnitName::new("nova-conductor").unwrap(),
            containers: vec![(
                Ident::new("infra1").unwrap(),
                ContainerName::new("infra1_nova_api_container-1a2b3c4d").unwrap(),
            )],
        })
    }

    fn service_faults() -> Vec<Fault> {
        vec![
            Fault::ProcessKill {
                signal: Signal::Kill,
                process: None,
            },
            Fault::ServiceKill {
                signal: Signal::Term,
            },
            Fault::ServiceStop,
            Fault::ServiceRestart,
            Fault::ProcessFreeze {
                method: FreezeMethod::Cgroup,
            },
            Fault::ProcessFreeze {
                method: FreezeMethod::Sigstop,
            },
            Fault::RabbitmqMemoryAlarm,
            Fault::MariadbLockTables {
                database: SqlIdent::new("nova").unwrap(),
                tables: vec![SqlIdent::new("instances").unwrap()],
            },
            Fault::NetworkLoss {
                percent: Percent::new(30.0).unwrap(),
                direction: Direction::Both,
                peers: vec![],
                ports: vec![5672],
            },
        ]
    }

    fn dry_runs(service: &ServiceRef, on: &str, faults: &[Fault]) -> String {
        let host = host(on);
        let mut text = String::new();
        for fault in faults {
            let plan = FaultInput {
                id: ID,
                fault,
                host: &host,
                service: Some(service),
                duration: Duration::from_secs(30),
            }
            .plan(&PlanOptions::default())
            .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
            text.push_str(&plan.dry_run(Duration::from_secs(15)).to_string());
        }
        text
    }

    #[test]
    fn dry_run_shows_the_exact_commands_on_a_podman_container() {
        insta::assert_snapshot!(dry_runs(
            &kolla(Engine::Podman, None),
            "kolla1",
            &service_faults()
        ));
    }

    #[test]
    fn dry_run_shows_the_exact_commands_on_a_kolla_supervised_docker_container() {
        insta::assert_snapshot!(dry_runs(
            &kolla(
                Engine::Docker,
                Some("kolla-nova_conductor-container.service")
            ),
            "kolla1",
            &service_faults()
        ));
    }

    #[test]
    fn dry_run_shows_the_exact_commands_on_a_unit_inside_an_lxc_container() {
        let mut faults = service_faults();
        faults.push(Fault::ClockSkew {
            offset_seconds: 3600,
        });
        faults.push(Fault::NetworkDelay {
            delay: Duration::from_millis(200),
            jitter: Duration::ZERO,
            interface: scenarios::units::InterfaceName::new("eth0").unwrap(),
            direction: Direction::Egress,
            peers: vec![],
            ports: vec![],
        });
        insta::assert_snapshot!(dry_runs(&osa(), "infra1", &faults));
    }

    #[test]
    fn a_supervised_container_is_stopped_through_its_unit_not_the_engine() {
        let text = dry_runs(
            &kolla(
                Engine::Docker,
                Some("kolla-nova_conductor-container.service"),
            ),
            "kolla1",
            &[Fault::ServiceStop],
        );
        assert!(
            text.contains("systemctl stop kolla-nova_conductor-container.service"),
            "{text}"
        );
        assert!(!text.contains("docker stop"), "{text}");
        let unsupervised = dry_runs(
            &kolla(Engine::Podman, None),
            "kolla1",
            &[Fault::ServiceStop],
        );
        assert!(
            unsupervised.contains("podman stop nova_conductor"),
            "{unsupervised}"
        );
    }

    #[test]
    fn clock_skew_on_a_container_is_refused() {
        let host = host("kolla1");
        let service = kolla(Engine::Podman, None);
        let error = FaultInput {
            id: ID,
            fault: &Fault::ClockSkew { offset_seconds: 60 },
            host: &host,
            service: Some(&service),
            duration: Duration::from_secs(30),
        }
        .plan(&PlanOptions::default())
        .unwrap_err();
        assert!(
            error.to_string().contains("cannot act on service"),
            "{error}"
        );
    }

    #[test]
    fn an_lxc_service_is_not_faulted_on_a_host_without_its_container() {
        let host = host("infra2");
        let service = osa();
        let error = FaultInput {
            id: ID,
            fault: &Fault::ServiceStop,
            host: &host,
            service: Some(&service),
            duration: Duration::from_secs(30),
        }
        .plan(&PlanOptions::default())
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("no LXC container on host infra2"),
            "{error}"
        );
    }

    #[test]
    fn scripts_run_inside_an_lxc_container_keep_the_inject_capture() {
        // The capture reaches the inner shell as its arguments, whatever it holds.
        let inner = "set -- @INJ@; [ \"$#\" = 2 ] && [ \"$2\" = 42 ]";
        let script = through("", inner);
        let ran = |capture: &str| {
            std::process::Command::new("sh")
                .arg("-c")
                .arg(script.replace(INJECT_CAPTURE, capture))
                .status()
                .unwrap()
                .success()
        };
        assert!(ran("7 42"));
        assert!(!ran("7"));
    }

    #[test]
    fn observations_are_read_from_the_last_marked_line() {
        let out = "x\nbfly-observed: healed by supervisor after 2.1 s\nbfly-check: held";
        assert_eq!(
            observed_in(out).as_deref(),
            Some("healed by supervisor after 2.1 s")
        );
        assert_eq!(observed_in("nothing"), None);
    }
}
