//! Crash test: a runner process injecting faults on several testbed hosts is SIGKILLed at random
//! points; `recover` on its journal restores every host, and a second `recover` finds nothing.
//!
//! The "runner" is this test binary re-executed in child mode (`crash_child`), so the test needs
//! no other binary. Run with
//! `cargo test -p injector --test crash -- --ignored --test-threads=1`.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use injector::EngineSettings;
use injector::transport::{Connections, TransportSettings};
use scenarios::fault::{Fault, FillAmount, Peer};
use scenarios::units::{PathName, Percent};

const RUN_DIR_ENV: &str = "BFLY_CRASH_RUN_DIR";
const UNIT_ENV: &str = "BFLY_CRASH_UNIT";

/// Child mode: inject faults one after the other and hold them until killed. Does nothing
/// unless started by the crash test.
#[test]
#[ignore = "child process of the crash test"]
fn crash_child() {
    let Some(run_dir) = std::env::var_os(RUN_DIR_ENV).map(PathBuf::from) else {
        return;
    };
    let unit = std::env::var(UNIT_ENV).expect("unit name");
    let (compute1, compute2) = (host("compute1"), host("compute2"));
    let service = scenarios::model::ServiceRef {
        name: scenarios::units::Ident::new("victim").unwrap(),
        runtime: scenarios::model::Runtime::Unit(scenarios::units::UnitName::new(&unit).unwrap()),
        process: None,
        ports: vec![],
    };
    let faults = [
        (Fault::ServiceStop, compute1.clone(), Some(&service)),
        (
            Fault::DiskFill {
                path: PathName::new("/srv").unwrap(),
                amount: FillAmount::Percent(Percent::new(40.0).unwrap()),
                force: false,
            },
            compute1.clone(),
            None,
        ),
        (
            Fault::NetworkPartition {
                peers: vec![Peer {
                    name: "compute2".into(),
                    address: address(&compute2),
                }],
                ports: vec![],
            },
            compute1.clone(),
            None,
        ),
        (
            Fault::NetworkReset {
                ports: vec![9399],
                peers: vec![],
            },
            compute2.clone(),
            None,
        ),
    ];
    let (runtime, injector) = child_injector(&run_dir);
    runtime.block_on(async {
        for (fault, host, service) in &faults {
            let plan = plan(fault, host, *service, Duration::from_secs(120));
            injector.inject(&plan).await.expect("inject");
            eprintln!("child: injected {}", plan.kind);
        }
        tokio::time::sleep(Duration::from_secs(600)).await;
    });
}

#[test]
#[ignore = "needs the local testbed; run by .ci/run"]
fn sigkill_at_random_points_then_recover_restores_every_host() {
    let _serial = serial();
    let hosts = hosts();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    for round in 0..4 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        // Kill points spread over the whole injection sequence (connects, journal, injects, hold).
        let kill_after = Duration::from_millis(150 + (seed >> 33) % 2500);
        let unit = TestUnit::start("compute1", &tag(), "exec sleep infinity");
        let run_dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(RUN_DIR_ENV, run_dir.path())
            .env(UNIT_ENV, format!("{}.service", unit.name))
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(kill_after);
        child.kill().unwrap();
        child.wait().unwrap();
        close_orphaned_masters(&run_dir.path().join("ctl"));
        // Let commands the dead runner had in flight finish on the hosts before recovering.
        std::thread::sleep(Duration::from_secs(1));
        let injected = std::fs::read_to_string(run_dir.path().join("faults.jsonl"))
            .map(|text| text.matches("\"event\":\"injecting\"").count())
            .unwrap_or(0);
        eprintln!("round {round}: killed after {kill_after:?} with {injected} fault(s) journaled");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let connections = Connections::new(TransportSettings::default());
        let settings = EngineSettings::default();
        if injected > 0 {
            let report = runtime
                .block_on(injector::recover(run_dir.path(), &connections, &settings))
                .unwrap();
            for item in &report {
                assert!(item.outcome.is_ok(), "round {round}: {item:?}");
            }
            let again = runtime
                .block_on(injector::recover(run_dir.path(), &connections, &settings))
                .unwrap();
            assert!(again.is_empty(), "a second recover found work: {again:?}");
        }
        runtime.block_on(connections.close());
        assert!(
            unit.is_active(),
            "round {round}: the stopped unit was not started again"
        );
        for host in &hosts {
            assert_host_clean(&host.name);
        }
        drop(unit);
    }
}
