//! `butterfly inject`: one ad-hoc fault, validated like a campaign, journaled, reverted at the end,
//! on Ctrl-C, or by `recover` after a crash. The live tests fault a real Podman container on
//! this machine through the local transport (`--local`); they skip, saying why, only when
//! Podman cannot run a container here. Needs root.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

fn butterfly() -> Command {
    Command::cargo_bin("butterfly").unwrap()
}

fn sh(script: &str) -> (bool, String) {
    let out = Process::new("sh").arg("-c").arg(script).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// An inventory with this machine as host `here` and `nova-conductor` in Podman container `name`.
fn inventory(dir: &Path, name: &str) -> String {
    let path = dir.join("inventory.yaml");
    std::fs::write(
        &path,
        format!(
            "version: 1\nhosts:\n  - name: here\n    address: 127.0.0.1\n    roles: [control]\n\
             services:\n  - name: nova-conductor\n    container:\n      engine: podman\n      name: {name}\n    roles: [control]\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

/// Runs container `name` (kolla's restart policy when `supervised`), or says why it cannot.
fn container(name: &str, supervised: bool) -> Result<Removed, String> {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/container-fixture");
    if !sh("command -v podman && command -v runc").0 {
        return Err("podman or runc is not installed (apt-get install podman runc)".into());
    }
    let (ok, out) = sh(fixture);
    if !ok {
        return Err(format!("cannot build the container fixture: {out}"));
    }
    sh(&format!("podman rm -f -t 0 {name} >/dev/null 2>&1"));
    let restart = if supervised { "--restart=always" } else { "" };
    let (ok, out) = sh(&format!(
        "podman --cgroup-manager=cgroupfs --runtime runc run -d --name {name} {restart} --stop-timeout 1 \
         --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 --network host localhost/bfly-busybox:3 /bin/sleep 1000"
    ));
    if ok {
        Ok(Removed(name.to_owned()))
    } else {
        Err(format!("podman cannot run a container here: {out}"))
    }
}

struct Removed(String);

impl Drop for Removed {
    fn drop(&mut self) {
        sh(&format!(
            "podman unpause {0} >/dev/null 2>&1; podman rm -f -t 0 {0} >/dev/null 2>&1",
            self.0
        ));
    }
}

fn status(name: &str) -> String {
    sh(&format!("podman inspect -f '{{{{.State.Status}}}}' {name}"))
        .1
        .trim()
        .to_owned()
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

macro_rules! container_or_skip {
    ($name:expr, $supervised:expr) => {
        match container($name, $supervised) {
            Ok(removed) => removed,
            Err(why) => {
                eprintln!("skipping: {why}");
                return;
            }
        }
    };
}

#[test]
fn inject_dry_run_prints_the_engines_commands_without_touching_anything() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory(dir.path(), "nova_conductor");
    butterfly()
        .args(["inject", "process-freeze", "--target", "nova-conductor"])
        .args(["--inventory", &inventory, "--duration", "20s", "--dry-run"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "# process-freeze on nova-conductor (podman container nova_conductor) on here, for 20s",
        ))
        .stdout(predicate::str::contains("podman pause nova_conductor"))
        .stdout(predicate::str::contains("podman unpause nova_conductor"));
}

#[test]
fn inject_refuses_a_bad_fault_with_located_diagnostics_like_a_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory(dir.path(), "nova_conductor");
    butterfly()
        .args(["inject", "process-freeze", "--target", "nova-conductr"])
        .args(["--param", "method=frost", "--inventory", &inventory])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("inject (command line):"))
        .stderr(predicate::str::contains("did you mean \"nova-conductor\"?"));
    butterfly()
        .args(["inject", "network-loss", "--target", "nova-conductor"])
        .args(["--param", "percent=30", "--inventory", &inventory])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "uses the host's network, so the fault would hit every service of the host; pass --allow-destructive",
        ));
    butterfly()
        .args([
            "inject",
            "process-kill",
            "--target",
            "nova-conductor@elsewhere",
        ])
        .args(["--inventory", &inventory])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown host \"elsewhere\""));
}

#[test]
fn inject_kills_a_real_container_and_reports_the_supervisors_heal() {
    let name = unique("bfly_inject_kill");
    let _removed = container_or_skip!(&name, true);
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory(dir.path(), &name);
    let run_dir = dir.path().join("run");
    butterfly()
        .args(["inject", "process-kill", "--target", "nova-conductor@here"])
        .args(["--inventory", &inventory, "--duration", "3s", "--local"])
        .arg("--run-dir")
        .arg(&run_dir)
        .assert()
        .code(0)
        .stdout(predicate::str::is_match(r"process-kill on nova-conductor \(podman container \w+\) on here: in effect after \d+ ms").unwrap())
        .stdout(predicate::str::is_match(r"healed by supervisor after \d+\.\d s").unwrap());
    let journal = std::fs::read_to_string(run_dir.join("faults.jsonl")).unwrap();
    assert!(
        journal.contains("\"observed\":\"healed by supervisor after "),
        "{journal}"
    );
    assert_eq!(status(&name), "running");
}

/// Starts a 60 s freeze and returns the process once the fault is in effect.
fn freeze_in_background(inventory: &str, run_dir: &Path) -> std::process::Child {
    let mut child = Process::new(env!("CARGO_BIN_EXE_butterfly"))
        .args(["inject", "process-freeze", "--target", "nova-conductor"])
        .args(["--inventory", inventory, "--duration", "60s", "--local"])
        .arg("--run-dir")
        .arg(run_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the freeze never took effect");
        match lines.next() {
            Some(Ok(line)) if line.contains("in effect after") => break,
            Some(Ok(_)) => {}
            _ => panic!("butterfly inject ended before the fault was in effect"),
        }
    }
    // Keep reading, so that what it prints after the revert has somewhere to go.
    std::thread::spawn(move || lines.for_each(drop));
    child
}

#[test]
fn ctrl_c_reverts_the_fault_at_once_and_exits_interrupted() {
    let name = unique("bfly_inject_int");
    let _removed = container_or_skip!(&name, false);
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory(dir.path(), &name);
    let mut child = freeze_in_background(&inventory, &dir.path().join("run"));
    assert_eq!(status(&name), "paused");
    let started = Instant::now();
    sh(&format!("kill -INT {}", child.id()));
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(4), "interrupted");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "not held to the end"
    );
    assert_eq!(status(&name), "running");
}

#[test]
fn a_crashed_inject_is_reverted_by_recover_from_its_journal() {
    let name = unique("bfly_inject_crash");
    let _removed = container_or_skip!(&name, false);
    let dir = tempfile::tempdir().unwrap();
    let inventory = inventory(dir.path(), &name);
    let run_dir = dir.path().join("run");
    let mut child = freeze_in_background(&inventory, &run_dir);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(status(&name), "paused", "a dead process reverts nothing");
    butterfly()
        .arg("recover")
        .arg(&run_dir)
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "process-freeze on here: reverted and verified",
        ));
    assert_eq!(status(&name), "running");
}
