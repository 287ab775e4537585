//! Inventory import against the deployers' own files (tests/fixtures/kolla, tests/fixtures/osa;
//! their README says where each comes from).

use std::path::{Path, PathBuf};

use testbed::import::{DeployerFiles, ImportOptions, Imported, kolla, osa};

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn options() -> ImportOptions {
    ImportOptions {
        identity: "~/.ssh/id_ed25519".into(),
        known_hosts: "~/.ssh/known_hosts".into(),
    }
}

fn files(inventory: &str, globals: Option<&str>, passwords: Option<&str>) -> DeployerFiles {
    DeployerFiles {
        inventory: fixture(inventory),
        globals: globals.map(fixture),
        passwords: passwords.map(fixture),
    }
}

/// The inventory YAML plus the broker sources, as `discover` shows them, with the fixture
/// directory made relative so that the snapshot does not depend on the checkout.
fn rendered(imported: &Imported) -> String {
    let root = fixture("");
    let mut text = imported.inventory.to_yaml().unwrap();
    text.push_str("# brokers\n");
    for broker in &imported.brokers {
        let file = broker
            .password_file
            .as_ref()
            .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
            .unwrap_or_else(|| "-".into());
        text.push_str(&format!(
            "# {} vhost={} password={}:{}\n",
            broker.url, broker.vhost, file, broker.password_key
        ));
    }
    for note in &imported.notes {
        text.push_str(&format!(
            "# note: {}\n",
            note.replace(&root.display().to_string(), "")
        ));
    }
    text
}

#[test]
fn kollas_shipped_multinode_inventory_imports_as_containers() {
    let imported = kolla::import(
        &files(
            "kolla/multinode",
            Some("kolla/globals.yml"),
            Some("kolla/passwords.yml"),
        ),
        &options(),
    )
    .unwrap();
    insta::assert_snapshot!(rendered(&imported));
}

#[test]
fn kollas_all_in_one_inventory_puts_everything_on_localhost() {
    let imported = kolla::import(&files("kolla/all-in-one", None, None), &options()).unwrap();
    let inventory = &imported.inventory;
    assert_eq!(inventory.hosts.len(), 1);
    assert_eq!(inventory.hosts[0].name, "localhost");
    assert_eq!(
        inventory.hosts[0].roles,
        ["controller", "network", "compute", "storage", "monitoring"]
    );
    assert!(
        inventory
            .services
            .iter()
            .all(|s| s.hosts == ["localhost"] && s.container.is_some())
    );
    assert_eq!(imported.brokers[0].password_file, None);
}

#[test]
fn ansible_inventory_list_json_imports_like_the_ini_it_came_from() {
    // JSON keeps no file order: the hosts come in the order of a walk from `all`.
    let sorted = |mut imported: Imported| {
        imported.inventory.hosts.sort_by(|a, b| a.name.cmp(&b.name));
        imported
    };
    let from_ini =
        sorted(kolla::import(&files("kolla/multinode", None, None), &options()).unwrap());
    let from_json =
        sorted(kolla::import(&files("kolla/multinode.json", None, None), &options()).unwrap());
    assert_eq!(
        from_ini.inventory.differences(&from_json.inventory),
        Vec::<String>::new()
    );
    assert_eq!(from_ini.brokers, from_json.brokers);
}

#[test]
fn kolla_globals_choose_the_engine_and_the_vhost() {
    let dir = tempfile::tempdir().unwrap();
    let globals = dir.path().join("globals.yml");
    std::fs::write(
        &globals,
        "---\nkolla_container_engine: podman\nom_rpc_vhost: openstack\nrabbitmq_enable_tls: \"yes\"\n",
    )
    .unwrap();
    let imported = kolla::import(
        &DeployerFiles {
            inventory: fixture("kolla/multinode"),
            globals: Some(globals),
            passwords: None,
        },
        &options(),
    )
    .unwrap();
    let conductor = imported
        .inventory
        .services
        .iter()
        .find(|s| s.name == "nova-conductor")
        .unwrap();
    let container = conductor.container.as_ref().unwrap();
    assert_eq!(container.engine, "podman");
    assert_eq!(
        container.unit.as_deref(),
        Some("kolla-nova_conductor-container.service")
    );
    assert_eq!(conductor.vhost.as_deref(), Some("openstack"));
    let urls: Vec<&str> = imported.brokers.iter().map(|b| b.url.as_str()).collect();
    // The notification vhost follows the RPC one unless set.
    assert_eq!(urls, ["amqps://openstack@control01:5671/openstack"]);
}

#[test]
fn kolla_globals_that_cannot_be_used_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let globals = dir.path().join("globals.yml");
    std::fs::write(
        &globals,
        "---\n# engine\nkolla_container_engine: containerd\n",
    )
    .unwrap();
    let error = kolla::import(
        &DeployerFiles {
            inventory: fixture("kolla/multinode"),
            globals: Some(globals.clone()),
            passwords: None,
        },
        &options(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        error,
        format!(
            "{}:3:1: `kolla_container_engine` names an engine kolla does not support; kolla runs `docker` or `podman`",
            globals.display()
        )
    );
    std::fs::write(&globals, "om_rpc_vhost: \"{{ rabbitmq_vhost }}\"\n").unwrap();
    let error = kolla::import(
        &DeployerFiles {
            inventory: fixture("kolla/multinode"),
            globals: Some(globals.clone()),
            passwords: None,
        },
        &options(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains(":1:1: `om_rpc_vhost` is a Jinja template"),
        "{error}"
    );
}

#[test]
fn a_passwords_file_without_the_broker_password_is_refused_without_echoing_it() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords.yml");
    std::fs::write(
        &passwords,
        "database_password: hunter2\nrabbitmq_password:\n",
    )
    .unwrap();
    let error = kolla::import(
        &DeployerFiles {
            inventory: fixture("kolla/multinode"),
            globals: None,
            passwords: Some(passwords.clone()),
        },
        &options(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains(":2:1: `rabbitmq_password` has no value"),
        "{error}"
    );
    assert!(!error.contains("hunter2"));
}

#[test]
fn the_secrets_are_never_in_the_output() {
    let imported = kolla::import(
        &files(
            "kolla/multinode",
            Some("kolla/globals.yml"),
            Some("kolla/passwords.yml"),
        ),
        &options(),
    )
    .unwrap();
    let secrets = std::fs::read_to_string(fixture("kolla/passwords.yml")).unwrap();
    let password = secrets
        .lines()
        .find_map(|l| l.strip_prefix("rabbitmq_password: "))
        .unwrap()
        .trim();
    assert!(password.len() > 8);
    assert!(!rendered(&imported).contains(password));
    let imported = osa::import(
        &files(
            "osa/openstack_inventory.json",
            None,
            Some("osa/user_secrets.yml"),
        ),
        &options(),
    )
    .unwrap();
    let secrets = std::fs::read_to_string(fixture("osa/user_secrets.yml")).unwrap();
    let password = secrets
        .lines()
        .find_map(|l| l.strip_prefix("nova_oslomsg_rpc_password: "))
        .unwrap()
        .trim();
    assert!(!rendered(&imported).contains(password));
}

#[test]
fn osas_generated_inventory_imports_as_lxc_containers_with_a_vhost_per_service() {
    let imported = osa::import(
        &files(
            "osa/openstack_inventory.json",
            None,
            Some("osa/user_secrets.yml"),
        ),
        &options(),
    )
    .unwrap();
    insta::assert_snapshot!(rendered(&imported));
}

#[test]
fn osa_without_quorum_queues_uses_slash_vhosts() {
    let dir = tempfile::tempdir().unwrap();
    let variables = dir.path().join("user_variables.yml");
    std::fs::write(&variables, "oslomsg_rabbit_quorum_queues: false\n").unwrap();
    let imported = osa::import(
        &DeployerFiles {
            inventory: fixture("osa/openstack_inventory.json"),
            globals: Some(variables),
            passwords: None,
        },
        &options(),
    )
    .unwrap();
    let vhosts: Vec<&str> = imported.brokers.iter().map(|b| b.vhost.as_str()).collect();
    assert_eq!(vhosts, ["/glance", "/keystone", "/neutron", "/nova"]);
    assert!(imported.brokers[3].url.ends_with(":5672/%2fnova"));
}

#[test]
fn an_inventory_that_is_not_a_deployers_is_refused() {
    let error = osa::import(&files("kolla/multinode.json", None, None), &options())
        .unwrap_err()
        .to_string();
    assert!(error.contains("no entry has `physical_host`"), "{error}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hosts");
    std::fs::write(&path, "[web]\nweb1\n").unwrap();
    let error = kolla::import(
        &DeployerFiles {
            inventory: path,
            globals: None,
            passwords: None,
        },
        &options(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("no host in kolla's groups"), "{error}");
}

#[test]
fn a_secrets_file_given_as_the_inventory_is_refused_without_echoing_it() {
    let error = kolla::import(&files("kolla/passwords.yml", None, None), &options())
        .unwrap_err()
        .to_string();
    let secrets = std::fs::read_to_string(fixture("kolla/passwords.yml")).unwrap();
    for value in secrets
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(_, v)| v.trim()))
        .filter(|v| v.len() >= 8)
    {
        assert!(!error.contains(value), "{error}");
    }
    assert!(error.lines().count() <= 21, "{error}");
    assert!(
        error.ends_with("more problems; is it an Ansible inventory?"),
        "{error}"
    );
}
