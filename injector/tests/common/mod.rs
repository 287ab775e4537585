//! Shared helpers of the testbed integration tests: the hosts of a running `butterfly testbed`,
//! an injector over real SSH, and an *independent* observation channel (the system `ssh` with the
//! testbed's ssh_config, not the injector's transport).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use injector::transport::{Connections, TransportSettings};
use injector::{EngineSettings, HostSpec, Injector, Journal, Reach, SshSpec};

/// The testbed state directory (`BUTTERFLY_TESTBED_DIR`, default `/var/lib/butterfly/testbed`).
pub fn testbed_dir() -> PathBuf {
    std::env::var_os("BUTTERFLY_TESTBED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/butterfly/testbed"))
}

/// The testbed's hosts, failing loudly when it is not up.
pub fn hosts() -> Vec<HostSpec> {
    let dir = testbed_dir();
    let state = std::fs::read_to_string(dir.join("testbed.json")).unwrap_or_else(|e| {
        panic!(
            "the local testbed is not up ({}/testbed.json: {e}); run `butterfly testbed up --hosts-only` first",
            dir.display()
        )
    });
    let state: serde_json::Value = serde_json::from_str(&state).expect("testbed.json is JSON");
    let hosts = state["topology"]["hosts"]
        .as_array()
        .expect("testbed.json lists hosts")
        .iter()
        .map(|host| HostSpec {
            name: host["name"].as_str().expect("host name").to_owned(),
            reach: Reach::Ssh(SshSpec {
                address: host["address"].as_str().expect("host address").to_owned(),
                user: "root".into(),
                port: 22,
                identity: Some(dir.join("ssh/id_ed25519")),
                known_hosts: Some(dir.join("ssh/known_hosts")),
                insecure_accept_any_host_key: false,
            }),
            sudo: false,
        })
        .collect::<Vec<_>>();
    for host in &hosts {
        let output = observe_raw(&host.name, "true");
        assert!(
            output.0,
            "testbed host {} does not answer over ssh: {}",
            host.name, output.2
        );
    }
    hosts
}

/// The host with this name.
pub fn host(name: &str) -> HostSpec {
    hosts()
        .into_iter()
        .find(|host| host.name == name)
        .unwrap_or_else(|| panic!("no testbed host {name}"))
}

/// The address of a host.
pub fn address(host: &HostSpec) -> String {
    match &host.reach {
        Reach::Ssh(ssh) => ssh.address.clone(),
        _ => panic!("testbed hosts are reached over ssh"),
    }
}

fn observe_raw(host: &str, script: &str) -> (bool, String, String) {
    let config = testbed_dir().join("ssh/config");
    let output = Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .arg("-o")
        .arg("BatchMode=yes")
        .arg(host)
        .arg(injector::shell::wrap(script, false))
        .output()
        .expect("ssh runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs a script on a host through the system ssh (independent of the injector); returns
/// `(success, stdout)`.
pub fn observe(host: &str, script: &str) -> (bool, String) {
    let (ok, stdout, _) = observe_raw(host, script);
    (ok, stdout)
}

/// Runs a script that must succeed; returns its trimmed stdout.
pub fn must(host: &str, script: &str) -> String {
    let (ok, stdout, stderr) = observe_raw(host, script);
    assert!(ok, "on {host}: `{script}` failed: {stderr}");
    stdout.trim().to_owned()
}

/// An injector over real SSH with a journal in a fresh temporary run directory.
pub struct Bench {
    pub runtime: tokio::runtime::Runtime,
    pub injector: Injector,
    pub run_dir: tempfile::TempDir,
}

impl Bench {
    pub fn new() -> Bench {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let run_dir = tempfile::tempdir().unwrap();
        let journal = Arc::new(Journal::open(run_dir.path()).unwrap());
        let connections = Arc::new(Connections::new(TransportSettings::default()));
        let settings = EngineSettings {
            delayer_binary: Some(PathBuf::from(env!("CARGO_BIN_EXE_bfly-nfqdelay"))),
            ..EngineSettings::default()
        };
        Bench {
            runtime,
            injector: Injector::new(connections, journal, settings),
            run_dir,
        }
    }

    pub fn inject(&self, plan: &injector::FaultPlan) -> injector::Active {
        self.runtime
            .block_on(self.injector.inject(plan))
            .unwrap_or_else(|e| panic!("inject {}: {e}", plan.kind))
    }

    /// Reverts; returns what the revert observed (a heal by the supervisor), when it says.
    pub fn revert(&self, active: &injector::Active) -> Option<String> {
        self.runtime
            .block_on(self.injector.revert(active, "test"))
            .unwrap_or_else(|e| panic!("revert {}: {e}", active.plan.kind))
    }

    /// The journal has nothing pending.
    pub fn assert_journal_clean(&self) {
        let records = injector::journal::read(self.run_dir.path()).unwrap();
        assert!(
            injector::journal::pending(&records).is_empty(),
            "journal still has pending faults"
        );
    }

    /// The end of every testbed test: the journal has nothing pending and nothing of the
    /// injector's is left on any of `hosts`.
    pub fn assert_all_clean(&self, hosts: &[&str]) {
        self.assert_journal_clean();
        for host in hosts {
            assert_host_clean(host);
        }
    }
}

impl Drop for Bench {
    /// A failed test must not leave its fault behind: recover whatever the journal still holds.
    fn drop(&mut self) {
        let settings = EngineSettings::default();
        let report = self.runtime.block_on(injector::recover(
            self.run_dir.path(),
            self.injector.connections(),
            &settings,
        ));
        if let Ok(report) = report {
            for item in report {
                eprintln!(
                    "cleanup: {} {} on {}: {:?}",
                    item.id, item.kind, item.host, item.outcome
                );
            }
        }
        self.runtime.block_on(self.injector.connections().close());
    }
}

/// A test-owned systemd service on a host, removed again on drop: `/run/systemd/system/NAME.service`
/// running `command` (a shell script) as a copy of `sleep`-like workload.
pub struct TestUnit {
    pub host: String,
    pub name: String,
    pub dir: String,
}

impl TestUnit {
    /// Creates and starts `bfly-test-<tag>.service` running `script` (written to
    /// `/run/bfly-test-<tag>/run.sh`, so that systemd's own quoting never touches it).
    pub fn start(host: &str, tag: &str, script: &str) -> TestUnit {
        TestUnit::start_restarting(host, tag, script, "Restart=no")
    }

    /// As [`TestUnit::start`], with the unit's own `Restart=` policy lines (`restart`).
    pub fn start_restarting(host: &str, tag: &str, script: &str, restart: &str) -> TestUnit {
        let name = format!("bfly-test-{tag}");
        let dir = format!("/run/{name}");
        let unit = format!(
            "[Unit]\nStartLimitIntervalSec=0\n[Service]\nExecStart=/bin/sh {dir}/run.sh\n{restart}\n"
        );
        must(
            host,
            &format!(
                "mkdir -p {dir} && printf '%s\\n' {} > {dir}/run.sh && printf '%s' {} > /run/systemd/system/{name}.service && systemctl daemon-reload && systemctl start {name}",
                injector::shell::quote(script),
                injector::shell::quote(&unit)
            ),
        );
        TestUnit {
            host: host.to_owned(),
            name,
            dir,
        }
    }

    /// The unit's service reference for a plan.
    pub fn service(&self) -> scenarios::model::ServiceRef {
        scenarios::model::ServiceRef {
            name: scenarios::units::Ident::new("testsvc").unwrap(),
            runtime: scenarios::model::Runtime::Unit(
                scenarios::units::UnitName::new(&format!("{}.service", self.name)).unwrap(),
            ),
            process: None,
            ports: vec![],
        }
    }

    pub fn main_pid(&self) -> u32 {
        must(
            &self.host,
            &format!("systemctl show -p MainPID --value {}", self.name),
        )
        .parse()
        .unwrap()
    }

    pub fn is_active(&self) -> bool {
        observe(
            &self.host,
            &format!("systemctl is-active --quiet {}", self.name),
        )
        .0
    }
}

impl Drop for TestUnit {
    fn drop(&mut self) {
        let _ = observe(
            &self.host,
            &format!(
                "systemctl stop {n} 2>/dev/null; rm -rf /run/systemd/system/{n}.service /run/systemd/system/{n}.service.d {d}; systemctl daemon-reload; systemctl reset-failed {n} 2>/dev/null; true",
                n = self.name,
                d = self.dir
            ),
        );
    }
}

/// A fresh short tag for test-owned names.
pub fn tag() -> String {
    injector::new_fault_id()
}

/// Polls `condition` until it holds or `within` passes.
pub fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits (up to 5 s) until something listens on TCP `port` of a host.
pub fn assert_listening(host: &str, port: u16) {
    assert!(
        eventually(Duration::from_secs(5), || observe(
            host,
            &format!("ss -ltn | grep -q ':{port} '")
        )
        .0),
        "nothing listens on {host}:{port}"
    );
}

/// Nothing of the injector's is left on the host: no nft table, qdisc, ifb, iptables chain,
/// fill file, drop-in, transient unit or frozen cgroup.
pub fn assert_host_clean(host: &str) {
    let leftovers = must(
        host,
        "nft list tables | grep bfly_; tc qdisc show | grep -E 'tbf|netem|htb|ingress'; ip -br link | grep bfb; \
         iptables -w -t mangle -S | grep BFLY_; ls -a /srv | grep bfly-fill; ls -d /run/systemd/system/*.d/50-bfly-* 2>/dev/null; \
         systemctl list-units --all --plain --no-legend 'bfly-*' | grep -v bfly-test-; \
         grep -l '^frozen 1' $(find /sys/fs/cgroup/unified -name cgroup.events 2>/dev/null) 2>/dev/null; true",
    );
    assert!(leftovers.is_empty(), "left behind on {host}:\n{leftovers}");
}

/// Testbed tests change shared hosts (network, disks): they run one at a time.
pub static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the testbed lock (ignoring poisoning by an earlier failed test).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The start of every testbed test that injects: the testbed lock first (tests change shared
/// hosts), then the hosts the test needs (looked up, and checked to answer, under the lock), then
/// a fresh injector bench.
pub fn setup<Hosts>(
    hosts: impl FnOnce() -> Hosts,
) -> (std::sync::MutexGuard<'static, ()>, Hosts, Bench) {
    let serial = serial();
    let hosts = hosts();
    (serial, hosts, Bench::new())
}

/// Plans a fault with default options.
pub fn plan(
    fault: &scenarios::fault::Fault,
    host: &HostSpec,
    service: Option<&scenarios::model::ServiceRef>,
    duration: Duration,
) -> injector::FaultPlan {
    let id = injector::new_fault_id();
    injector::FaultInput {
        id: &id,
        fault,
        host,
        service,
        duration,
    }
    .plan(&injector::PlanOptions::default())
    .unwrap_or_else(|e| panic!("plan: {e}"))
}

/// The runtime and injector of a crash test's child process: its SSH masters' sockets under
/// `RUN_DIR/ctl`, so that the test can close them after killing the child
/// ([`close_orphaned_masters`]).
pub fn child_injector(run_dir: &std::path::Path) -> (tokio::runtime::Runtime, Injector) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let journal = Arc::new(Journal::open(run_dir).unwrap());
    let control_dir = run_dir.join("ctl");
    std::fs::create_dir_all(&control_dir).unwrap();
    let settings = TransportSettings {
        control_dir,
        ..TransportSettings::default()
    };
    let injector = Injector::new(
        Arc::new(Connections::new(settings)),
        journal,
        EngineSettings::default(),
    );
    (runtime, injector)
}

/// Asks the SSH masters a killed child left behind to exit (`ssh -O exit`), so that nothing of
/// the test stays on this machine.
pub fn close_orphaned_masters(control_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(control_dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let socket = entry.path().join("master");
        if socket.exists() {
            let _ = Command::new("ssh")
                .arg("-S")
                .arg(&socket)
                .args(["-O", "exit", "orphan"])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}
