//! `butterfly discover --kolla|--osa`: the files it writes from the deployers' own files, its exit
//! codes, and that no secret reaches its output.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn butterfly() -> Command {
    Command::cargo_bin("butterfly").unwrap()
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testbed/tests/fixtures")
        .join(path)
}

fn secret(file: &str, key: &str) -> String {
    std::fs::read_to_string(fixture(file))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")).map(str::to_owned))
        .unwrap()
}

#[test]
fn discover_kolla_writes_the_inventory_and_a_tracing_section_that_names_the_secrets_file() {
    let dir = tempfile::tempdir().unwrap();
    let output = butterfly()
        .args(["discover", "--kolla"])
        .arg(fixture("kolla/multinode"))
        .arg("--globals")
        .arg(fixture("kolla/globals.yml"))
        .arg("--passwords")
        .arg(fixture("kolla/passwords.yml"))
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let inventory = std::fs::read_to_string(dir.path().join("inventory.yaml")).unwrap();
    let tracing = std::fs::read_to_string(dir.path().join("tracing.yaml")).unwrap();
    assert!(inventory.contains("unit: kolla-nova_conductor-container.service"));
    assert!(tracing.contains("url: \"amqp://openstack@control01:5672/%2f\""));
    assert!(tracing.contains("password_key: \"rabbitmq_password\""));
    assert!(tracing.contains(&format!(
        "password_file: \"{}\"",
        fixture("kolla/passwords.yml").display()
    )));
    let password = secret("kolla/passwords.yml", "rabbitmq_password");
    for text in [
        &inventory,
        &tracing,
        &String::from_utf8_lossy(&output.stdout).into_owned(),
        &String::from_utf8_lossy(&output.stderr).into_owned(),
    ] {
        assert!(!text.contains(&password));
    }
}

#[test]
fn discover_osa_prints_the_inventory_and_one_vhost_per_service() {
    let password = secret("osa/user_secrets.yml", "nova_oslomsg_rpc_password");
    butterfly()
        .args(["discover", "--osa"])
        .arg(fixture("osa/openstack_inventory.json"))
        .arg("--passwords")
        .arg(fixture("osa/user_secrets.yml"))
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "infra1: infra1-nova-api-container-aa0534db",
        ))
        .stdout(predicate::str::contains(&password).not())
        .stderr(predicate::str::contains(
            "url: \"amqp://nova@172.29.236.234:5672/nova\"",
        ))
        .stderr(predicate::str::contains(
            "password_key: \"nova_oslomsg_rpc_password\"",
        ))
        .stderr(predicate::str::contains(&password).not());
}

#[test]
fn discover_refuses_what_it_cannot_understand_with_exit_2_and_the_location() {
    let dir = tempfile::tempdir().unwrap();
    let inventory = dir.path().join("hosts");
    std::fs::write(&inventory, "[control]\ncontrol[03:01]\n").unwrap();
    butterfly()
        .args(["discover", "--kolla"])
        .arg(&inventory)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(format!(
            "{}:2:8: range `[03:01]` ends before it starts",
            inventory.display()
        )));
    butterfly()
        .args(["discover", "--osa", "/dev/null"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a regular file"));
    butterfly()
        .args(["discover", "--kolla"])
        .arg(fixture("kolla/multinode"))
        .args(["--ssh", "root@h"])
        .assert()
        .code(2);
}

#[test]
fn the_tracing_section_discover_writes_validates_in_a_campaign() {
    let dir = tempfile::tempdir().unwrap();
    for (layout, inventory) in [
        ("--kolla", "kolla/multinode"),
        ("--osa", "osa/openstack_inventory.json"),
    ] {
        let passwords = if layout == "--kolla" {
            "kolla/passwords.yml"
        } else {
            "osa/user_secrets.yml"
        };
        let out = dir.path().join(&layout[2..]);
        butterfly()
            .args(["discover", layout])
            .arg(fixture(inventory))
            .arg("--passwords")
            .arg(fixture(passwords))
            .arg("--out")
            .arg(&out)
            .assert()
            .code(0);
        let tracing = std::fs::read_to_string(out.join("tracing.yaml")).unwrap();
        let campaign = out.join("campaign.yaml");
        std::fs::write(
            &campaign,
            format!(
                "version: 1\nname: traced\ntestbed:\n  inventory: {}\n{tracing}\
                 experiments:\n  - name: e1\n    fault:\n      kind: process-kill\n    \
                 target:\n      service: nova-conductor\n    duration: 10s\n",
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("scenarios/examples/testbed-inventory.yaml")
                    .display()
            ),
        )
        .unwrap();
        butterfly().arg("validate").arg(&campaign).assert().code(0);
    }
}

#[test]
fn every_discovered_inventory_validates_and_plans() {
    for (layout, inventory) in [
        ("--kolla", "kolla/multinode"),
        ("--kolla", "kolla/all-in-one"),
        ("--kolla", "kolla/multinode.json"),
        ("--osa", "osa/openstack_inventory.json"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        butterfly()
            .args(["discover", layout])
            .arg(fixture(inventory))
            .arg("--out")
            .arg(dir.path())
            .assert()
            .code(0);
        let written = dir.path().join("inventory.yaml");
        let output = butterfly().arg("validate").arg(&written).output().unwrap();
        assert!(
            output.status.success(),
            "{inventory}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // A campaign on that inventory freezes nova-conductor: it must plan with the layout's
        // own commands (a container's pause, or lxc-attach/lxc-freeze for OSA).
        let campaign = dir.path().join("campaign.yaml");
        std::fs::write(
            &campaign,
            format!(
                "version: 1\ntestbed:\n  inventory: {}\nexperiments:\n  - name: freeze-conductor\n    fault: {{kind: process-freeze}}\n    target: {{service: nova-conductor}}\n    duration: 10s\n",
                written.display()
            ),
        )
        .unwrap();
        let output = butterfly()
            .args(["plan", "--dry-run"])
            .arg(&campaign)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{inventory}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let plan = String::from_utf8_lossy(&output.stdout);
        let expected = if layout == "--osa" { "lxc-" } else { "pause" };
        assert!(plan.contains(expected), "{inventory}: {plan}");
    }
}
