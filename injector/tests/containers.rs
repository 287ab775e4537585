//! Container faults against real containers on this machine, through the local transport:
//! Podman and Docker containers (kolla-ansible's layout: a container per service, host
//! networking) and an LXC container (OpenStack-Ansible's). The containers run a tiny busybox
//! rootfs that `scripts/container-fixture` builds once under /var/cache/butterfly/containers
//! (nothing can be pulled from a registry here). Needs root, `podman` + `runc`, `lxc`,
//! `busybox-static` and a Docker daemon (scripts/setup installs them and starts it); a test
//! skips, saying why, only when its engine cannot run at all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use injector::journal::Record;
use injector::transport::{Connections, TransportSettings};
use injector::{EngineSettings, FaultInput, HostSpec, Injector, Journal, PlanOptions};
use scenarios::fault::{Direction, Fault, FreezeMethod, Signal};
use scenarios::model::{Engine, Runtime, ServiceRef};
use scenarios::units::{ContainerName, Ident, Percent, UnitName};

const IMAGE: &str = "localhost/bfly-busybox:3";

fn sh(script: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The cached busybox rootfs (`scripts/container-fixture` builds it and imports the image).
fn rootfs() -> Result<PathBuf, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/container-fixture");
    match sh(script) {
        (true, out) => Ok(PathBuf::from(out.trim())),
        (false, out) => Err(format!("cannot build the container fixture: {out}")),
    }
}

/// Podman with the settings this machine needs (FINDINGS.md): runc with the cgroupfs manager.
const PODMAN: &str = "podman --cgroup-manager=cgroupfs --runtime runc";

/// Runs a container named `name` (removed first) with `engine`, or says why it cannot run one
/// here. Docker needs a running daemon (`scripts/setup` starts one) and its own copy of the
/// image.
fn engine_container(engine: Engine, name: &str, restart_always: bool) -> Result<Removed, String> {
    let (run, ready) = match engine {
        Engine::Podman => (PODMAN, "command -v podman && command -v runc"),
        Engine::Docker => ("docker", "docker info >/dev/null 2>&1"),
    };
    if !sh(ready).0 {
        return Err(match engine {
            Engine::Podman => "podman or runc is not installed (apt-get install podman runc)",
            Engine::Docker => "no Docker daemon answers (scripts/setup starts one)",
        }
        .into());
    }
    let rootfs = rootfs()?;
    if engine == Engine::Docker && !sh(&format!("docker image inspect {IMAGE} >/dev/null 2>&1")).0 {
        let (ok, out) = sh(&format!(
            "exec 9>{}/.docker-lock; flock 9; docker image inspect {IMAGE} >/dev/null 2>&1 || docker import {} {IMAGE}",
            rootfs.parent().unwrap().display(),
            rootfs.with_extension("tar").display()
        ));
        if !ok {
            return Err(format!("docker import failed: {out}"));
        }
    }
    let removed = Removed(engine, name.to_owned());
    sh(&format!("{} rm -f {name} >/dev/null 2>&1", engine.name()));
    let restart = if restart_always {
        "--restart=always"
    } else {
        ""
    };
    let (ok, out) = sh(&format!(
        "{run} run -d --name {name} {restart} --stop-timeout 1 --ulimit nofile=1024:1024 \
         --ulimit nproc=1024:1024 --network host {IMAGE} /bin/sh -c 'sleep 1000 & sleep 1000 & wait'"
    ));
    if ok {
        Ok(removed)
    } else {
        Err(format!(
            "{} cannot run a container here: {out}",
            engine.name()
        ))
    }
}

fn podman_container(name: &str, restart_always: bool) -> Result<Removed, String> {
    engine_container(Engine::Podman, name, restart_always)
}

/// Removes the container when the test ends, however it ends.
struct Removed(Engine, String);

impl Drop for Removed {
    fn drop(&mut self) {
        sh(&format!(
            "{0} unpause {1} >/dev/null 2>&1; {0} rm -f {1} >/dev/null 2>&1",
            self.0.name(),
            self.1
        ));
    }
}

fn service_in(engine: Engine, name: &str) -> ServiceRef {
    ServiceRef {
        name: Ident::new("nova-conductor").unwrap(),
        runtime: Runtime::Container {
            engine,
            name: ContainerName::new(name).unwrap(),
            unit: None,
        },
        process: None,
        ports: vec![],
    }
}

fn podman_service(name: &str) -> ServiceRef {
    service_in(Engine::Podman, name)
}

fn inspect_in(engine: Engine, name: &str, template: &str) -> String {
    sh(&format!("{} inspect -f '{template}' {name}", engine.name()))
        .1
        .trim()
        .to_owned()
}

fn inspect(name: &str, template: &str) -> String {
    inspect_in(Engine::Podman, name, template)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn injector(run_dir: &Path) -> Injector {
    Injector::new(
        Arc::new(Connections::new(TransportSettings::default())),
        Arc::new(Journal::open(run_dir).unwrap()),
        EngineSettings::default(),
    )
}

fn plan(fault: &Fault, service: &ServiceRef) -> injector::FaultPlan {
    FaultInput {
        id: &injector::new_fault_id(),
        fault,
        host: &HostSpec::local("here"),
        service: Some(service),
        duration: Duration::from_secs(30),
    }
    .plan(&PlanOptions::default())
    .unwrap()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", injector::new_fault_id())
}

/// The value of `$result`, or a skip of the test saying why there is none.
macro_rules! or_skip {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(why) => {
                eprintln!("skipping: {why}");
                return;
            }
        }
    };
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_killed_container_that_its_restart_policy_brings_back_is_reported_healed_with_its_time() {
    let name = unique("bfly_heal");
    let _removed = or_skip!(podman_container(&name, true));
    let service = podman_service(&name);
    let before = inspect(&name, "{{.State.Pid}}");
    let run_dir = tempfile::tempdir().unwrap();
    let injector = injector(run_dir.path());
    let rt = runtime();
    let fault = Fault::ProcessKill {
        signal: Signal::Kill,
        process: None,
    };
    let active = rt
        .block_on(injector.inject(&plan(&fault, &service)))
        .unwrap();
    wait_for("the restart policy to bring the container back", || {
        let now = inspect(&name, "{{.State.Running}} {{.State.Pid}}");
        now.starts_with("true ") && !now.ends_with(&format!(" {before}"))
    });
    let observed = rt.block_on(injector.revert(&active, "test")).unwrap();
    let observed = observed.expect("the revert says what it found");
    assert!(
        observed.starts_with("healed by supervisor after "),
        "{observed}"
    );
    let seconds: f64 = observed
        .trim_start_matches("healed by supervisor after ")
        .trim_end_matches(" s")
        .parse()
        .unwrap();
    assert!((0.0..20.0).contains(&seconds), "{observed}");
    let journal = injector::journal::read(run_dir.path()).unwrap();
    assert!(journal.iter().any(|r| matches!(
        r,
        Record::Reverted { observed: Some(o), .. } if o.starts_with("healed by supervisor")
    )));
}

#[test]
fn a_killed_container_without_a_supervisor_is_started_by_the_revert_and_said_so() {
    let name = unique("bfly_nosup");
    let _removed = or_skip!(podman_container(&name, false));
    let service = podman_service(&name);
    let run_dir = tempfile::tempdir().unwrap();
    let injector = injector(run_dir.path());
    let rt = runtime();
    let fault = Fault::ServiceKill {
        signal: Signal::Kill,
    };
    let active = rt
        .block_on(injector.inject(&plan(&fault, &service)))
        .unwrap();
    assert_eq!(inspect(&name, "{{.State.Running}}"), "false");
    let observed = rt.block_on(injector.revert(&active, "test")).unwrap();
    assert_eq!(
        observed.as_deref(),
        Some("not healed by supervisor: started by the revert")
    );
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
}

#[test]
fn a_paused_container_is_unpaused_by_the_revert() {
    let name = unique("bfly_pause");
    let _removed = or_skip!(podman_container(&name, false));
    let service = podman_service(&name);
    let run_dir = tempfile::tempdir().unwrap();
    let injector = injector(run_dir.path());
    let rt = runtime();
    let fault = Fault::ProcessFreeze {
        method: FreezeMethod::Cgroup,
    };
    let active = rt
        .block_on(injector.inject(&plan(&fault, &service)))
        .unwrap();
    assert_eq!(inspect(&name, "{{.State.Status}}"), "paused");
    rt.block_on(injector.revert(&active, "test")).unwrap();
    assert_eq!(inspect(&name, "{{.State.Status}}"), "running");
}

#[test]
fn sigstop_freezes_every_process_of_the_container_and_the_revert_thaws_them() {
    let name = unique("bfly_stop");
    let _removed = or_skip!(podman_container(&name, false));
    let service = podman_service(&name);
    let run_dir = tempfile::tempdir().unwrap();
    let injector = injector(run_dir.path());
    let rt = runtime();
    let fault = Fault::ProcessFreeze {
        method: FreezeMethod::Sigstop,
    };
    let states = || {
        sh(&format!(
            "pid=$(podman inspect -f '{{{{.State.Pid}}}}' {name}); ns=$(readlink /proc/$pid/ns/pid); \
             for d in /proc/[0-9]*; do [ \"$(readlink $d/ns/pid 2>/dev/null)\" = \"$ns\" ] && awk '{{print $3}}' $d/stat; done | sort | uniq -c"
        ))
        .1
    };
    let active = rt
        .block_on(injector.inject(&plan(&fault, &service)))
        .unwrap();
    let frozen = states();
    assert!(frozen.contains(" T") && !frozen.contains(" S"), "{frozen}");
    // The shell and both sleeps: every process of the container, not only its main one.
    assert!(frozen.trim().starts_with('3'), "{frozen}");
    rt.block_on(injector.revert(&active, "test")).unwrap();
    let thawed = states();
    assert!(!thawed.contains(" T"), "{thawed}");
}

#[test]
fn a_stopped_container_stays_down_for_the_fault_and_the_revert_says_it_held() {
    let name = unique("bfly_svcstop");
    let _removed = or_skip!(podman_container(&name, false));
    let service = podman_service(&name);
    let run_dir = tempfile::tempdir().unwrap();
    let injector = injector(run_dir.path());
    let rt = runtime();
    let active = rt
        .block_on(injector.inject(&plan(&Fault::ServiceStop, &service)))
        .unwrap();
    assert_eq!(inspect(&name, "{{.State.Running}}"), "false");
    std::thread::sleep(Duration::from_secs(1));
    let observed = rt.block_on(injector.revert(&active, "test")).unwrap();
    assert_eq!(observed.as_deref(), Some("stayed down until the revert"));
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
}

#[test]
fn a_restarted_container_runs_with_a_new_main_process() {
    let name = unique("bfly_restart");
    let _removed = or_skip!(podman_container(&name, false));
    let service = podman_service(&name);
    let before = inspect(&name, "{{.State.Pid}}");
    let run_dir = tempfile::tempdir().unwrap();
    let injector = injector(run_dir.path());
    let rt = runtime();
    rt.block_on(injector.inject(&plan(&Fault::ServiceRestart, &service)))
        .unwrap();
    let after = inspect(&name, "{{.State.Pid}}");
    assert_ne!(before, after);
    assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
}

/// An LXC container from the busybox rootfs, with its own (empty) network namespace.
fn lxc_container(name: &str) -> Result<(), String> {
    if !sh("command -v lxc-start && command -v lxc-attach").0 {
        return Err("lxc is not installed (apt-get install lxc)".into());
    }
    let rootfs = rootfs()?;
    let dir = format!("/var/lib/lxc/{name}");
    let config = format!(
        "lxc.uts.name = {name}\nlxc.rootfs.path = dir:{dir}/rootfs\nlxc.net.0.type = empty\n\
         lxc.mount.auto = proc:mixed sys:ro\nlxc.apparmor.profile = unconfined\n\
         lxc.init.cmd = /bin/sleep 1000\n"
    );
    let (ok, out) = sh(&format!(
        "mkdir -p {dir} && cp -a {}/. {dir}/rootfs/ && cat > {dir}/config <<'EOF'\n{config}EOF\nlxc-start -n {name} && lxc-wait -n {name} -s RUNNING -t 10",
        rootfs.display()
    ));
    if ok {
        Ok(())
    } else {
        sh(&format!("rm -rf {dir}"));
        Err(format!("lxc cannot start a container here: {out}"))
    }
}

struct Destroyed(String);

impl Drop for Destroyed {
    fn drop(&mut self) {
        sh(&format!(
            "lxc-unfreeze -n {0} 2>/dev/null; lxc-stop -k -n {0} 2>/dev/null; lxc-destroy -n {0} 2>/dev/null; rm -rf /var/lib/lxc/{0}",
            self.0
        ));
    }
}

fn lxc_service(name: &str) -> ServiceRef {
    ServiceRef {
        name: Ident::new("nova-conductor").unwrap(),
        runtime: Runtime::Lxc {
            unit: UnitName::new("nova-conductor").unwrap(),
            containers: vec![(
                Ident::new("here").unwrap(),
                ContainerName::new(name).unwrap(),
            )],
        },
        process: None,
        ports: vec![],
    }
}

#[test]
fn an_lxc_container_is_frozen_and_thawed() {
    let name = unique("bfly-lxc-freeze");
    or_skip!(lxc_container(&name));
    let _destroyed = Destroyed(name.clone());
    let service = lxc_service(&name);
    let run_dir = tempfile::tempdir().unwrap();
    let injector = injector(run_dir.path());
    let rt = runtime();
    let fault = Fault::ProcessFreeze {
        method: FreezeMethod::Cgroup,
    };
    let active = rt
        .block_on(injector.inject(&plan(&fault, &service)))
        .unwrap();
    assert_eq!(sh(&format!("lxc-info -n {name} -s -H")).1.trim(), "FROZEN");
    rt.block_on(injector.revert(&active, "test")).unwrap();
    assert_eq!(sh(&format!("lxc-info -n {name} -s -H")).1.trim(), "RUNNING");
}

#[test]
fn a_network_fault_on_an_lxc_service_lands_in_the_containers_own_namespace() {
    let name = unique("bfly-lxc-net");
    or_skip!(lxc_container(&name));
    let _destroyed = Destroyed(name.clone());
    let service = lxc_service(&name);
    let run_dir = tempfile::tempdir().unwrap();
    let injector = injector(run_dir.path());
    let rt = runtime();
    let fault = Fault::NetworkLoss {
        percent: Percent::new(100.0).unwrap(),
        direction: Direction::Both,
        peers: vec![],
        ports: vec![5672],
    };
    let plan = plan(&fault, &service);
    let table = format!("bfly_{}", plan.id);
    let active = rt.block_on(injector.inject(&plan)).unwrap();
    let inside = format!(
        "nsenter -t $(lxc-info -n {name} -p -H) -n nft list table inet {table} >/dev/null 2>&1"
    );
    assert!(sh(&inside).0, "the table is in the container's namespace");
    assert!(
        !sh(&format!("nft list table inet {table} >/dev/null 2>&1")).0,
        "and not in the host's"
    );
    rt.block_on(injector.revert(&active, "test")).unwrap();
    assert!(!sh(&inside).0, "the revert removed it");
}

#[test]
fn a_process_kill_on_an_lxc_service_runs_inside_the_container() {
    let name = unique("bfly-lxc-kill");
    or_skip!(lxc_container(&name));
    let _destroyed = Destroyed(name.clone());
    // A process only the container runs: pgrep inside it finds it, the host's would find
    // every `sleep` of the machine.
    // The process's name (`comm`) is its file's, so a link named bflyvictim to busybox run as
    // `sleep` is a process named bflyvictim.
    assert!(sh(&format!("lxc-attach -n {name} -- /bin/sh -c 'ln -sf /bin/busybox /tmp/bflyvictim && (exec -a sleep /tmp/bflyvictim 1000 </dev/null >/dev/null 2>&1 &)'")).0);
    let service = lxc_service(&name);
    let run_dir = tempfile::tempdir().unwrap();
    let injector = injector(run_dir.path());
    let rt = runtime();
    let fault = Fault::ProcessKill {
        signal: Signal::Kill,
        process: Some(scenarios::units::ProcessName::new("bflyvictim").unwrap()),
    };
    let plan = plan(&fault, &service);
    assert!(plan.inject.starts_with("lxc-attach -n "), "{}", plan.inject);
    wait_for("the victim to run", || {
        sh(&format!(
            "lxc-attach -n {name} -- /bin/sh -c 'ps' | grep -q bflyvictim"
        ))
        .0
    });
    rt.block_on(injector.inject(&plan)).unwrap();
    // Dead: gone, or a zombie (the container's init, a plain sleep, reaps nobody).
    let alive = format!(
        "lxc-attach -n {name} -- /bin/sh -c 'for p in $(pgrep -x bflyvictim); do read -r s < /proc/$p/stat; case $s in *\") Z\"*) ;; *) exit 0;; esac; done; exit 1'"
    );
    assert!(!sh(&alive).0, "the victim is dead");
}

// Docker: the same faults through the Docker daemon (its restart policy is the supervisor;
// its times are RFC 3339 text, which the heal measurement converts).

#[test]
fn a_killed_docker_container_healed_by_its_restart_policy_is_reported_with_its_time() {
    let name = unique("bfly_dheal");
    let _removed = or_skip!(engine_container(Engine::Docker, &name, true));
    let service = service_in(Engine::Docker, &name);
    let before = inspect_in(Engine::Docker, &name, "{{.State.Pid}}");
    let run_dir = tempfile::tempdir().unwrap();
    let injector = injector(run_dir.path());
    let rt = runtime();
    let fault = Fault::ProcessKill {
        signal: Signal::Kill,
        process: None,
    };
    let active = rt
        .block_on(injector.inject(&plan(&fault, &service)))
        .unwrap();
    wait_for(
        "Docker's restart policy to bring the container back",
        || {
            let now = inspect_in(Engine::Docker, &name, "{{.State.Running}} {{.State.Pid}}");
            now.starts_with("true ") && !now.ends_with(&format!(" {before}"))
        },
    );
    let observed = rt.block_on(injector.revert(&active, "test")).unwrap();
    let observed = observed.expect("the revert says what it found");
    let seconds: f64 = observed
        .strip_prefix("healed by supervisor after ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .unwrap_or_else(|| panic!("{observed}"))
        .parse()
        .unwrap_or_else(|e| panic!("{observed}: {e}"));
    assert!((0.0..20.0).contains(&seconds), "{observed}");
}

#[test]
fn a_docker_container_is_paused_and_stopped_and_brought_back() {
    let name = unique("bfly_dpause");
    let _removed = or_skip!(engine_container(Engine::Docker, &name, true));
    let service = service_in(Engine::Docker, &name);
    let run_dir = tempfile::tempdir().unwrap();
    let injector = injector(run_dir.path());
    let rt = runtime();
    let freeze = Fault::ProcessFreeze {
        method: FreezeMethod::Cgroup,
    };
    let active = rt
        .block_on(injector.inject(&plan(&freeze, &service)))
        .unwrap();
    assert_eq!(
        inspect_in(Engine::Docker, &name, "{{.State.Status}}"),
        "paused"
    );
    rt.block_on(injector.revert(&active, "test")).unwrap();
    assert_eq!(
        inspect_in(Engine::Docker, &name, "{{.State.Status}}"),
        "running"
    );
    // Docker's restart policy leaves a container stopped by its own CLI down: the stop holds.
    let active = rt
        .block_on(injector.inject(&plan(&Fault::ServiceStop, &service)))
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let observed = rt.block_on(injector.revert(&active, "test")).unwrap();
    assert_eq!(observed.as_deref(), Some("stayed down until the revert"));
    assert_eq!(
        inspect_in(Engine::Docker, &name, "{{.State.Running}}"),
        "true"
    );
}
