//! End-to-end tests of the real testbed: they need root, namespaces, systemd-nspawn, debootstrap
//! and network access to the Debian and PyPI mirrors (first run), and take minutes. Run them with
//! `cargo nextest run -p testbed --run-ignored only` (CI: `.ci/run`).
//!
//! Each test uses its own instance number and state directory, so they can run beside a
//! developer's testbed (instance 0).

use std::path::{Path, PathBuf};
use std::process::Command;

use testbed::discover::{DiscoverOptions, SshTarget};
use testbed::inventory::Inventory;
use testbed::{Mode, Progress, StateDir, UpOptions};

fn cache_dir() -> PathBuf {
    std::env::var_os("BUTTERFLY_TESTBED_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(testbed::DEFAULT_CACHE_DIR))
}

fn options(state: &Path, mode: Mode, instance: u8) -> UpOptions {
    UpOptions {
        state_dir: state.to_path_buf(),
        cache_dir: cache_dir(),
        mode,
        instance,
        computes: 2,
        disk_mb: 64,
        keep_on_failure: false,
        layout: testbed::Layout::Devstack,
        rest_proxy_binary: None,
    }
}

/// Brings the testbed down when the test ends, also when it panics half-way.
struct DownOnDrop {
    state: PathBuf,
    instance: u8,
}

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = testbed::down(&self.state, self.instance, &Progress::new(true));
    }
}

fn ssh(state: &StateDir, host: &str, command: &str) -> std::process::Output {
    Command::new("ssh")
        .arg("-F")
        .arg(state.ssh_config())
        .args([
            "-o",
            "ControlMaster=no",
            "-o",
            "ControlPath=none",
            host,
            command,
        ])
        .output()
        .expect("ssh runs")
}

fn assert_no_residue(state_dir: &Path, instance: u8) {
    let topology = testbed::Topology::new(instance, testbed::topology::MAX_COMPUTES, 64).unwrap();
    let residue = testbed::residue::scan(&topology, state_dir);
    assert!(residue.is_empty(), "left behind: {residue:?}");
    assert!(
        !state_dir.exists(),
        "state dir {} remains",
        state_dir.display()
    );
}

/// Brings a testbed up in a fresh state directory, with a guard that brings it down again.
fn start(mode: Mode, instance: u8) -> (tempfile::TempDir, PathBuf, DownOnDrop, testbed::UpReport) {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let guard = DownOnDrop {
        state: state_dir.clone(),
        instance,
    };
    let report = testbed::up(&options(&state_dir, mode, instance), &Progress::new(false))
        .unwrap_or_else(|error| panic!("up ({mode:?}): {error}"));
    (dir, state_dir, guard, report)
}

#[test]
#[ignore = "needs root and the local testbed; run by .ci/run"]
fn hosts_only_testbed_boots_isolated_hosts_and_leaves_nothing() {
    let instance = 8;
    let (_dir, state_dir, guard, report) = start(Mode::HostsOnly, instance);
    let state = StateDir::new(&state_dir);
    for host in &report.record.topology.hosts {
        let out = ssh(&state, &host.name, "hostname; ip -4 -o addr show eth0");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            host.name,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with(&format!("{}\n", host.name)), "{text}");
        assert!(text.contains(&format!("{}/24", host.address)), "{text}");
    }
    // A disk fill on one host's /srv leaves the other hosts' disks empty.
    let fill = ssh(
        &state,
        "compute1",
        "fallocate -l 40M /srv/fill && df --output=pcent /srv | tail -1",
    );
    assert!(
        fill.status.success(),
        "{}",
        String::from_utf8_lossy(&fill.stderr)
    );
    let other = ssh(&state, "compute2", "df --output=used -B1M /srv | tail -1");
    let used: u64 = String::from_utf8_lossy(&other.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(used < 5, "compute2's /srv shows {used} MiB used");
    // `up` again reports the running testbed instead of starting a second one.
    let again = testbed::up(
        &options(&state_dir, Mode::HostsOnly, instance),
        &Progress::new(true),
    )
    .unwrap();
    assert!(again.already_up);
    testbed::status(&state_dir).expect("status of a running testbed");
    testbed::down(&state_dir, instance, &Progress::new(false)).expect("down");
    drop(guard);
    assert_no_residue(&state_dir, instance);
    // Down is idempotent.
    testbed::down(&state_dir, instance, &Progress::new(true)).expect("second down");
    assert!(matches!(
        testbed::status(&state_dir),
        Err(testbed::Error::NotUp(_))
    ));
}

fn openstack(venv: &Path, state: &StateDir, args: &[&str]) -> String {
    let output = Command::new(venv.join("bin/openstack"))
        .env("OS_CLIENT_CONFIG_FILE", state.clouds_yaml())
        .env("OS_CLOUD", "butterfly")
        .env_remove("OS_AUTH_URL")
        .args(args)
        .output()
        .expect("openstack CLI runs");
    assert!(
        output.status.success(),
        "openstack {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
#[ignore = "needs root and the local testbed; run by .ci/run"]
fn openstack_testbed_boots_a_server_and_discovery_matches_the_inventory() {
    let instance = 9;
    let (_dir, state_dir, guard, report) = start(Mode::OpenStack, instance);
    let health = report
        .health
        .as_ref()
        .expect("OpenStack mode checks health");
    assert!(health.healthy(), "{:?}", health.failures());
    let state = StateDir::new(&state_dir);
    let venv = report.record.client_venv.clone().expect("client venv");

    // A server through the real client and the generated clouds.yaml.
    let created = openstack(
        &venv,
        &state,
        &[
            "--os-compute-api-version",
            "2.37",
            "server",
            "create",
            "--flavor",
            "m1.tiny",
            "--image",
            "fake-img",
            "--nic",
            "none",
            "--wait",
            "vm1",
            "-f",
            "value",
            "-c",
            "status",
            "-c",
            "OS-EXT-SRV-ATTR:host",
        ],
    );
    assert!(created.contains("ACTIVE"), "server create: {created}");
    assert!(
        created.contains("compute"),
        "scheduled on a compute host: {created}"
    );
    openstack(&venv, &state, &["server", "delete", "--wait", "vm1"]);
    let list = openstack(
        &venv,
        &state,
        &["server", "list", "-f", "value", "-c", "Name"],
    );
    assert!(!list.contains("vm1"), "vm1 still listed: {list}");

    // Discovery over ssh builds the same inventory as the one generated.
    let generated =
        Inventory::from_yaml(&std::fs::read_to_string(state.inventory()).unwrap()).unwrap();
    let targets = report
        .record
        .topology
        .hosts
        .iter()
        .map(|h| SshTarget {
            user: "root".into(),
            host: h.address.to_string(),
            port: 22,
        })
        .collect();
    let found = testbed::discover(&DiscoverOptions {
        targets,
        identity: Some(state.identity()),
        known_hosts: Some(state.known_hosts()),
    })
    .expect("discover");
    let diffs = generated.differences(&found.inventory);
    assert!(diffs.is_empty(), "generated vs discovered: {diffs:#?}");
    let amqp = found.amqp_url.expect("transport_url found");
    assert!(
        amqp.starts_with("amqp://openstack:"),
        "{}",
        testbed::discover::redact_url(&amqp)
    );
    assert!(
        found
            .clouds_yaml
            .expect("clouds.yaml found")
            .contains("butterfly")
    );

    // A stopped unit makes status fail and name it.
    let stop = ssh(&state, "compute2", "systemctl stop devstack@n-cpu");
    assert!(stop.status.success());
    let error = testbed::status(&state_dir).unwrap_err().to_string();
    assert!(
        error.contains("compute2: devstack@n-cpu.service"),
        "{error}"
    );

    testbed::down(&state_dir, instance, &Progress::new(false)).expect("down");
    drop(guard);
    assert_no_residue(&state_dir, instance);
}
