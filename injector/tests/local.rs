//! Faults through the local transports on this machine, with harmless targets the tests own: a
//! fill file in a temporary directory, a process the test spawns, an nft table in a throwaway
//! network namespace. Also the journal → `recover` path end to end. Needs root (nft, netns).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use injector::transport::{Connections, TransportSettings};
use injector::{EngineSettings, FaultInput, HostSpec, Injector, Journal, PlanOptions, Reach};
use scenarios::fault::{Fault, FillAmount, Peer, Signal};
use scenarios::units::{Bytes, PathName, ProcessName};

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

fn plan(fault: &Fault, host: &HostSpec) -> injector::FaultPlan {
    plan_with(fault, host, &PlanOptions::default())
}

fn plan_with(fault: &Fault, host: &HostSpec, options: &PlanOptions) -> injector::FaultPlan {
    FaultInput {
        id: &injector::new_fault_id(),
        fault,
        host,
        service: None,
        duration: Duration::from_secs(30),
    }
    .plan(options)
    .unwrap()
}

/// A fill in a temporary directory: that lies on this machine's root filesystem, which the
/// preflight protects, so the tests that exercise other things than that refusal allow it.
fn plan_test_owned_fill(fault: &Fault, host: &HostSpec) -> injector::FaultPlan {
    let options = PlanOptions {
        allow_destructive: true,
        ..PlanOptions::default()
    };
    plan_with(fault, host, &options)
}

#[test]
fn a_fault_left_by_a_dead_runner_is_recovered_once() {
    let target = tempfile::tempdir().unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let host = HostSpec::local("here");
    let fault = Fault::DiskFill {
        path: PathName::new(target.path().to_str().unwrap()).unwrap(),
        amount: FillAmount::Size(Bytes(1 << 20)),
        force: false,
    };
    let plan = plan_test_owned_fill(&fault, &host);
    let fill = target.path().join(format!(".bfly-fill-{}", plan.id));
    let rt = runtime();
    {
        let injector = injector(run_dir.path());
        let active = rt.block_on(injector.inject(&plan)).unwrap();
        assert!(!active.armed, "no systemd here, so no dead-man switch");
        let size = std::fs::metadata(&fill).unwrap().len();
        assert_eq!(size, 1 << 20);
        // The runner "dies" here: no revert.
    }
    let connections = Connections::new(TransportSettings::default());
    let settings = EngineSettings::default();
    let report = rt
        .block_on(injector::recover(run_dir.path(), &connections, &settings))
        .unwrap();
    assert_eq!(report.len(), 1);
    assert_eq!(
        report[0].outcome.as_deref(),
        Ok("reverted and verified"),
        "{report:?}"
    );
    assert!(!fill.exists(), "the fill file is still there");
    let again = rt
        .block_on(injector::recover(run_dir.path(), &connections, &settings))
        .unwrap();
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_fill_beyond_the_safety_margin_is_refused_and_leaves_nothing() {
    let target = tempfile::tempdir().unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let host = HostSpec::local("here");
    let fault = Fault::DiskFill {
        path: PathName::new(target.path().to_str().unwrap()).unwrap(),
        amount: FillAmount::Size(Bytes(1 << 60)),
        force: false,
    };
    let plan = plan_test_owned_fill(&fault, &host);
    let error = runtime()
        .block_on(injector(run_dir.path()).inject(&plan))
        .unwrap_err()
        .to_string();
    assert!(error.contains("safety margin"), "{error}");
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);
    let records = injector::journal::read(run_dir.path()).unwrap();
    assert!(injector::journal::pending(&records).is_empty());
}

#[test]
fn a_fill_through_a_symlink_into_etc_is_refused_at_preflight_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("etc-link");
    std::os::unix::fs::symlink("/etc", &link).unwrap();
    let fault = Fault::DiskFill {
        path: PathName::new(link.to_str().unwrap()).unwrap(),
        amount: FillAmount::Size(Bytes(1 << 20)),
        force: false,
    };
    let plan = plan(&fault, &HostSpec::local("here"));
    let error = runtime()
        .block_on(injector(run_dir.path()).inject(&plan))
        .unwrap_err();
    assert!(
        matches!(error, injector::Error::Preflight { .. })
            && error.to_string().contains("it resolves to /etc"),
        "{error}"
    );
    let left = std::fs::read_dir("/etc")
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().contains(&plan.id))
        })
        .count();
    assert_eq!(left, 0, "a fill file was left in /etc");
    let records = injector::journal::read(run_dir.path()).unwrap();
    assert!(records.is_empty(), "a refused preflight journals nothing");
}

#[test]
fn process_kill_by_exact_name_kills_only_that_process() {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("bflyt{}", injector::new_fault_id());
    let binary = dir.path().join(&name);
    std::fs::copy("/bin/sleep", &binary).unwrap();
    let mut victim = std::process::Command::new(&binary)
        .arg("300")
        .spawn()
        .unwrap();
    let mut bystander = std::process::Command::new("/bin/sleep")
        .arg("300")
        .spawn()
        .unwrap();
    let run_dir = tempfile::tempdir().unwrap();
    let fault = Fault::ProcessKill {
        signal: Signal::Kill,
        process: Some(ProcessName::new(&name).unwrap()),
    };
    let host = HostSpec::local("here");
    let plan = plan(&fault, &host);
    let rt = runtime();
    let injector = injector(run_dir.path());
    // The victim is our child, so it stays a zombie until we wait: verify accepts zombies.
    let active = rt.block_on(injector.inject(&plan)).unwrap();
    let status = victim.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(
        bystander.try_wait().unwrap().is_none(),
        "another sleep was killed"
    );
    rt.block_on(injector.revert(&active, "test")).unwrap();
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

/// A throwaway network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let name = format!("bflyt-{}", injector::new_fault_id());
        let ok = std::process::Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .unwrap()
            .success();
        assert!(ok, "ip netns add failed (needs root)");
        let netns = Netns(name);
        assert!(netns.run("ip link set lo up"));
        netns
    }

    fn run(&self, script: &str) -> bool {
        std::process::Command::new("ip")
            .args(["netns", "exec", &self.0, "sh", "-c", script])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    fn host(&self) -> HostSpec {
        HostSpec {
            name: self.0.clone(),
            reach: Reach::Exec {
                prefix: vec!["ip".into(), "netns".into(), "exec".into(), self.0.clone()],
            },
            sudo: false,
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.0])
            .status();
    }
}

#[test]
fn a_partition_in_a_throwaway_namespace_cuts_and_heals() {
    let netns = Netns::new();
    let host = netns.host();
    let run_dir = tempfile::tempdir().unwrap();
    let fault = Fault::NetworkPartition {
        peers: vec![Peer {
            name: "loopback".into(),
            address: "127.0.0.0/8".into(),
        }],
        ports: vec![],
    };
    let plan = plan(&fault, &host);
    let table = format!("bfly_{}", plan.id);
    let ping = "ping -c 1 -W 1 127.0.0.1";
    assert!(netns.run(ping));
    let rt = runtime();
    let injector = injector(run_dir.path());
    let active = rt.block_on(injector.inject(&plan)).unwrap();
    assert!(
        !netns.run(ping),
        "loopback still answers during the partition"
    );
    assert!(netns.run(&format!("nft list table inet {table}")));
    rt.block_on(injector.revert(&active, "test")).unwrap();
    assert!(netns.run(ping));
    assert!(!netns.run(&format!("nft list table inet {table}")));
    // This machine's own ruleset never saw the table.
    let ours = std::process::Command::new("nft")
        .args(["list", "table", "inet", &table])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!ours.success());
}

/// The local MariaDB (`mariadb` client as root over the socket), with a test-owned user whose
/// connections are the only ones the fault may kill.
#[test]
#[ignore = "needs the local MariaDB; run by .ci/run"]
fn mariadb_kill_connections_of_one_user_only() {
    let sql = |statement: &str| {
        let output = std::process::Command::new("mariadb")
            .args(["-N", "-B", "-e", statement])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{statement}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    };
    let user = format!("bfly_t_{}", injector::new_fault_id());
    sql(&format!(
        "CREATE USER '{user}'@'localhost' IDENTIFIED BY 'bfly-test-pw'"
    ));
    let mut victim = std::process::Command::new("mariadb")
        .args([
            "-u",
            &user,
            "-pbfly-test-pw",
            "-h",
            "localhost",
            "-e",
            "SELECT SLEEP(60)",
        ])
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let count = |who: &str| -> u32 {
        sql(&format!(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '{who}'"
        ))
        .parse()
        .unwrap()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while count(&user) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let root_before = count("root");
    let run_dir = tempfile::tempdir().unwrap();
    let fault = Fault::MariadbKillConnections {
        user: Some(scenarios::units::SqlIdent::new(&user).unwrap()),
    };
    let host = HostSpec::local("here");
    let plan = plan(&fault, &host);
    let result = runtime().block_on(injector(run_dir.path()).inject(&plan));
    let status = victim.wait().unwrap();
    let after = count(&user);
    sql(&format!("DROP USER '{user}'@'localhost'"));
    result.unwrap();
    assert!(!status.success(), "the victim's query was not killed");
    assert_eq!(after, 0);
    assert!(
        count("root") >= root_before.saturating_sub(1),
        "root connections were killed"
    );
}
