//! The kolla layout (`testbed up --layout kolla`): the same OpenStack as the DevStack layout, on
//! the same image and with the same configs, but every service runs in a Podman container named
//! as kolla-ansible names it (`nova_conductor`, `mariadb`, …) and supervised as kolla-ansible
//! supervises it: a systemd unit `kolla-<name>-container.service` running `podman start -a`,
//! with `Restart=always` and kolla's `RestartSec` (`ansible/module_utils/kolla_systemd_worker.py`:
//! `client_timeout // restart_retries - 1` = 120 // 10 - 1 = 11 s), host networking.
//!
//! What the testbed hosts allow decides the rest (`/work/shared/reference/containers`): crun
//! without cgroups (the v1 hierarchies are read-only inside an nspawn host), no session keyring
//! (nspawn's seccomp filter refuses `keyctl`), ulimits at most the host's hard limits. Without
//! cgroups `podman pause` is refused, and the container's processes stay in its unit's cgroup,
//! which is what a freeze acts on. The containers' root is the image layer's own rootfs,
//! bind-mounted read-only into every host ([`IMAGE_DIR`]) and overlaid per container
//! (`--rootfs …:O`), so no image is imported or copied; the services' config and state
//! directories are the host's, as kolla mounts `/etc/kolla/<service>` and its volumes.
//!
//! The stack script is DevStack's, run through [`stack_adapter`], which gives it kolla's unit
//! names and runs `rabbitmqctl` and `mysql` inside their containers. After `up`, the testbed
//! writes kolla-ansible's own files for itself ([`inventory_ini`], [`globals_yml`],
//! [`passwords_yml`]) and its Butterfly inventory is what `discover --kolla` imports from them.
//! Pure: nothing here touches the machine.

use std::fmt::Write as _;

use injector::shell::quote;

use crate::assets::{self, COMPUTE_HOSTS, CONTROLLER_HOSTS, RootfsFile, Secrets};
use crate::import::kolla::{SERVICES as KOLLA_SERVICES, supervising_unit};
use crate::inventory::ServiceSet;
use crate::topology::Topology;

/// The container engine of the kolla layout.
pub const ENGINE: &str = "podman";
/// Debian packages the kolla layer adds to the OpenStack image.
pub const KOLLA_DEBS: &[&str] = &["podman", "crun"];
/// Where every host sees the image layer's rootfs, read-only: the containers' root.
pub const IMAGE_DIR: &str = "/var/lib/kolla/image";
/// Podman's storage, a tmpfs in each host: an overlay's upper directory cannot be on the host's
/// own overlay root.
pub const STORAGE_DIR: &str = "/var/lib/containers";
/// kolla's `RestartSec`: `client_timeout` (120) `// restart_retries` (10) `- 1`.
pub const RESTART_SEC: u32 = 11;
/// kolla's `StartLimitIntervalSec` (`client_timeout`).
pub const START_LIMIT_INTERVAL_SEC: u32 = 120;
/// kolla's `StartLimitBurst` (`restart_retries`).
pub const START_LIMIT_BURST: u32 = 10;
/// kolla's `docker_graceful_timeout`, the `-t` of the unit's `stop`.
pub const GRACEFUL_TIMEOUT: u32 = 60;
/// The stack script of the kolla layout (in the image).
pub const STACK_SCRIPT: &str = "/usr/local/sbin/butterfly-stack-kolla.sh";
/// Where the containers' create scripts live (in the image).
const CREATE_DIR: &str = "usr/local/lib/butterfly/kolla";

/// One kolla container of the testbed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// kolla's container name (`nova_conductor`).
    pub name: &'static str,
    /// The canonical service it runs (`nova-conductor`).
    pub service: &'static str,
    /// The DevStack layout's unit for the same service (`devstack@n-cond`, `mariadb`), without
    /// `.service`.
    pub replaces: &'static str,
    /// The host-name glob of the hosts it runs on.
    pub condition_host: &'static str,
    /// The command run in the container.
    pub command: String,
    /// `NAME=VALUE` environment entries.
    pub environment: Vec<String>,
    /// A command the unit runs on the host before starting it.
    pub exec_start_pre: Option<String>,
    /// The user it runs as, when not root.
    pub user: Option<&'static str>,
    /// Its working directory, when it matters.
    pub workdir: Option<&'static str>,
    /// `HOST:CONTAINER[:ro]` volumes.
    pub volumes: Vec<String>,
    /// Directories created on the host first, with their owner (`/run/mysqld` for mysql).
    pub host_dirs: Vec<(&'static str, &'static str)>,
}

impl Container {
    /// Its supervising unit, `kolla-<name>-container.service`.
    pub fn unit(&self) -> String {
        supervising_unit(self.name)
    }

    fn create_script_path(&self) -> String {
        format!("/{CREATE_DIR}/create-{}", self.name)
    }
}

/// kolla's container name for a canonical service.
fn kolla_name(service: &str) -> Option<&'static str> {
    KOLLA_SERVICES
        .iter()
        .find(|s| s.name == service)
        .map(|s| s.container)
}

/// Every container of the layout: each OpenStack service, the broker and the database.
pub fn containers() -> Vec<Container> {
    let mut list = Vec::new();
    for service in ServiceSet::OpenStack.services() {
        let name = kolla_name(service.name)
            .unwrap_or_else(|| panic!("kolla names every testbed service ({})", service.name));
        let container = match service.name {
            "mariadb" => Container {
                name,
                service: service.name,
                replaces: service.unit,
                condition_host: CONTROLLER_HOSTS,
                command: "/usr/sbin/mariadbd".to_owned(),
                environment: Vec::new(),
                exec_start_pre: None,
                user: Some("mysql"),
                workdir: None,
                volumes: vec![
                    "/etc/mysql:/etc/mysql:ro".to_owned(),
                    "/var/lib/mysql:/var/lib/mysql".to_owned(),
                    // The socket, so that the host's clients (and `podman exec`) reach it.
                    "/run/mysqld:/run/mysqld".to_owned(),
                ],
                host_dirs: vec![("/run/mysqld", "mysql")],
            },
            "rabbitmq" => Container {
                name,
                service: service.name,
                replaces: service.unit,
                condition_host: CONTROLLER_HOSTS,
                command: "/usr/lib/rabbitmq/bin/rabbitmq-server".to_owned(),
                environment: vec!["HOME=/var/lib/rabbitmq".to_owned()],
                exec_start_pre: None,
                user: Some("rabbitmq"),
                workdir: Some("/var/lib/rabbitmq"),
                volumes: vec![
                    "/etc/rabbitmq:/etc/rabbitmq:ro".to_owned(),
                    "/var/lib/rabbitmq:/var/lib/rabbitmq".to_owned(),
                    "/var/log/rabbitmq:/var/log/rabbitmq".to_owned(),
                ],
                host_dirs: Vec::new(),
            },
            _ => {
                let short = service
                    .unit
                    .strip_prefix("devstack@")
                    .expect("OpenStack services run as devstack@ units");
                let command = assets::service_command(short)
                    .unwrap_or_else(|| panic!("devstack@{short} has a command"));
                // The project's config and state directories, as kolla mounts them.
                let project = service.name.split('-').next().expect("a name");
                let mut volumes = vec![format!("/etc/{project}:/etc/{project}:ro")];
                if assets::STATE_DIRS
                    .iter()
                    .any(|dir| dir.strip_prefix("var/lib/") == Some(project))
                    || project == "glance"
                {
                    volumes.push(format!("/var/lib/{project}:/var/lib/{project}"));
                }
                volumes.push("/var/lib/openstack-locks:/var/lib/openstack-locks".to_owned());
                Container {
                    name,
                    service: service.name,
                    replaces: service.unit,
                    condition_host: if command.condition_host == COMPUTE_HOSTS {
                        COMPUTE_HOSTS
                    } else {
                        CONTROLLER_HOSTS
                    },
                    command: command.exec_start,
                    environment: command.environment,
                    exec_start_pre: command.exec_start_pre,
                    user: None,
                    workdir: None,
                    volumes,
                    host_dirs: Vec::new(),
                }
            }
        };
        list.push(container);
    }
    list
}

/// The unit that runs `devstack_unit`'s service in the kolla layout (with `.service`), or `None`
/// when the layouts share it (the REST proxy, which is the testbed's instrument, not kolla's).
pub fn unit_replacing(devstack_unit: &str) -> Option<String> {
    let bare = devstack_unit
        .strip_suffix(".service")
        .unwrap_or(devstack_unit);
    containers()
        .into_iter()
        .find(|c| c.replaces == bare)
        .map(|c| c.unit())
}

/// The script that creates the container when its unit starts and the container does not exist
/// yet (kolla-ansible creates it once, at deploy time; a testbed host boots from the image every
/// time).
fn create_script(c: &Container) -> String {
    let mut args: Vec<String> = [
        "podman",
        "create",
        "--name",
        c.name,
        "--network",
        "host",
        "--uts",
        "host",
        "--cgroups",
        "disabled",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    if let Some(user) = c.user {
        args.extend(["--user".to_owned(), user.to_owned()]);
    }
    if let Some(dir) = c.workdir {
        args.extend(["--workdir".to_owned(), dir.to_owned()]);
    }
    for env in &c.environment {
        args.extend(["--env".to_owned(), env.clone()]);
    }
    args.extend(["--volume".to_owned(), "/etc/hosts:/etc/hosts:ro".to_owned()]);
    for volume in &c.volumes {
        args.extend(["--volume".to_owned(), volume.clone()]);
    }
    args.extend(["--rootfs".to_owned(), format!("{IMAGE_DIR}:O")]);
    args.extend(c.command.split_whitespace().map(str::to_owned));
    let quoted: Vec<String> = args.iter().map(|a| quote(a)).collect();
    let mut script = format!(
        "#!/bin/bash\n# Creates kolla's container {name} when its unit starts and it does not exist yet.\n\
         set -e\npodman container exists {name} && exit 0\n",
        name = c.name
    );
    for (dir, owner) in &c.host_dirs {
        let _ = writeln!(script, "install -d -o {owner} -g {owner} -m 0755 {dir}");
    }
    // Podman's default ulimits are above what the testbed host may set (no CAP_SYS_RESOURCE):
    // the host's own hard limits are the most the container can have.
    let _ = writeln!(
        script,
        "n=$(ulimit -Hn); u=$(ulimit -Hu)\nexec {} --ulimit \"nofile=$n:$n\" --ulimit \"nproc=$u:$u\" {}",
        quoted[..2].join(" "),
        quoted[2..].join(" ")
    );
    script
}

/// The unit kolla-ansible writes around a container, for Podman.
pub fn unit_file(c: &Container) -> String {
    let pre = c
        .exec_start_pre
        .as_ref()
        .map(|pre| format!("ExecStartPre={pre}\n"))
        .unwrap_or_default();
    format!(
        "# {unit}\n# As kolla-ansible writes it (kolla_systemd_worker.py), for podman; the create\n\
         # script makes the container the first time the host starts it.\n\n\
         [Unit]\nDescription={ENGINE} {unit}\nConditionHost={host}\nAfter=network-online.target\n\
         StartLimitIntervalSec={START_LIMIT_INTERVAL_SEC}\nStartLimitBurst={START_LIMIT_BURST}\n\n\
         [Service]\nExecStartPre={create}\n{pre}ExecStart=/usr/bin/podman start -a {name}\n\
         ExecStop=/usr/bin/podman stop {name} -t {GRACEFUL_TIMEOUT}\nRestart=always\n\
         RestartSec={RESTART_SEC}\nSuccessExitStatus=143\nTimeoutStartSec=300\n\n\
         [Install]\nWantedBy=multi-user.target\n",
        unit = c.unit(),
        host = c.condition_host,
        create = c.create_script_path(),
        name = c.name,
    )
}

/// The stack script of the kolla layout: DevStack's `butterfly-stack.sh`, sourced with kolla's
/// unit names for DevStack's and `rabbitmqctl`/`mysql` run in their containers, after the
/// broker and the database containers are up and answering.
pub fn stack_adapter() -> String {
    let mut cases = String::new();
    for c in containers() {
        let _ = writeln!(
            cases,
            "      {replaces}|{replaces}.service) a={unit} ;;",
            replaces = c.replaces,
            unit = c.unit()
        );
    }
    let unit = |name: &str| {
        containers()
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.unit())
            .expect("the broker and the database are containers")
    };
    format!(
        r#"#!/bin/bash
# The kolla layout's stacking: DevStack's stack script, with every service started through its
# kolla unit and the broker's and database's clients run inside their containers.
set -euo pipefail
systemctl() {{
  local args=() a
  for a in "$@"; do
    case $a in
{cases}    esac
    args+=("$a")
  done
  command systemctl "${{args[@]}}"
}}
rabbitmqctl() {{ podman exec rabbitmq rabbitmqctl "$@"; }}
mysql() {{ podman exec -i mariadb mysql "$@"; }}
command systemctl start {mariadb} {rabbitmq}
for _ in $(seq 1 240); do
  podman exec mariadb mysqladmin --silent ping >/dev/null 2>&1 && break
  sleep 0.5
done
podman exec mariadb mysqladmin --silent ping >/dev/null || {{ echo "stack: mariadb does not answer" >&2; exit 1; }}
for _ in $(seq 1 240); do
  [ "$(podman inspect -f '{{{{.State.Running}}}}' rabbitmq 2>/dev/null)" = true ] && break
  sleep 0.5
done
. /usr/local/sbin/butterfly-stack.sh
"#,
        mariadb = unit("mariadb"),
        rabbitmq = unit("rabbitmq"),
    )
}

/// Podman's configuration in the hosts: no session keyring, no cgroups, crun.
const CONTAINERS_CONF: &str = "# The testbed hosts refuse keyctl and give no writable cgroup v1 hierarchy:\n\
    # no session keyring, no cgroups, crun (runc needs cgroups).\n\
    [containers]\nkeyring = false\ncgroups = \"disabled\"\n\n[engine]\nruntime = \"crun\"\n";

/// The Debian units the kolla layout masks: the broker and the database run in containers.
pub const MASKED_UNITS: &[&str] = &[
    "mariadb.service",
    "mariadb.socket",
    "rabbitmq-server.service",
    "epmd.service",
    "epmd.socket",
];

/// Every file the kolla layer adds to the OpenStack image (besides the masks).
pub fn rootfs_files() -> Vec<RootfsFile> {
    let mut files = vec![
        RootfsFile {
            path: "etc/containers/containers.conf".to_owned(),
            contents: CONTAINERS_CONF.to_owned(),
            mode: 0o644,
        },
        RootfsFile {
            path: STACK_SCRIPT.trim_start_matches('/').to_owned(),
            contents: stack_adapter(),
            mode: 0o755,
        },
    ];
    for c in containers() {
        files.push(RootfsFile {
            path: format!("etc/systemd/system/{}", c.unit()),
            contents: unit_file(&c),
            mode: 0o644,
        });
        files.push(RootfsFile {
            path: c.create_script_path().trim_start_matches('/').to_owned(),
            contents: create_script(&c),
            mode: 0o755,
        });
    }
    files
}

/// The texts the kolla layer's cache key covers.
pub fn layer_texts() -> Vec<String> {
    let mut texts: Vec<String> = rootfs_files()
        .into_iter()
        .flat_map(|f| [f.path, f.contents])
        .collect();
    texts.extend(MASKED_UNITS.iter().map(|u| (*u).to_owned()));
    texts.push(KOLLA_DEBS.join(","));
    texts
}

/// kolla-ansible's inventory for the testbed, in the shape of its shipped `multinode`: the
/// top-level groups, then each service's group as `:children` of its project's group.
pub fn inventory_ini(topology: &Topology) -> String {
    let controller = topology.controller();
    let mut text = String::from(
        "# kolla-ansible inventory of the local testbed (written by `butterfly testbed up --layout kolla`)\n",
    );
    let host_line = |h: &crate::topology::Host| {
        format!("{} ansible_host={} ansible_user=root\n", h.name, h.address)
    };
    for group in ["control", "network", "storage", "monitoring"] {
        let _ = write!(text, "\n[{group}]\n{}", host_line(controller));
    }
    text.push_str("\n[compute]\n");
    for host in topology.computes() {
        text.push_str(&host_line(host));
    }
    text.push_str("\n[deployment]\nlocalhost ansible_connection=local\n");
    text.push_str("\n[baremetal:children]\ncontrol\nnetwork\ncompute\nstorage\nmonitoring\n");
    for (group, parent) in [
        ("common", "compute"),
        ("mariadb", "control"),
        ("rabbitmq", "control"),
        ("keystone", "control"),
        ("glance", "control"),
        ("nova", "control"),
        ("neutron", "network"),
        ("cinder", "control"),
        ("placement", "control"),
    ] {
        let _ = write!(text, "\n[{group}:children]\n{parent}\n");
        if group == "common" {
            text.push_str("control\nnetwork\nstorage\nmonitoring\n");
        }
    }
    for (group, parent) in [
        ("glance-api", "glance"),
        ("nova-api", "nova"),
        ("nova-conductor", "nova"),
        ("nova-scheduler", "nova"),
        ("nova-super-conductor", "nova"),
        ("neutron-server", "control"),
        ("placement-api", "placement"),
        ("cinder-api", "cinder"),
        ("cinder-backup", "storage"),
        ("cinder-scheduler", "cinder"),
        ("cinder-volume", "storage"),
    ] {
        let _ = write!(text, "\n[{group}:children]\n{parent}\n");
    }
    text
}

/// kolla-ansible's `globals.yml` for the testbed: Podman, no HAProxy (one controller), the RPC
/// vhost, and the ports where the testbed's services listen where kolla's defaults differ.
pub fn globals_yml(topology: &Topology) -> String {
    let placement = assets::PROXIED_APIS
        .iter()
        .find(|api| api.service == "placement-api")
        .map_or(8778, |api| api.port);
    format!(
        "---\n# kolla-ansible globals of the local testbed (written by `butterfly testbed up --layout kolla`)\n\
         kolla_base_distro: \"debian\"\nkolla_container_engine: \"{ENGINE}\"\n\
         network_interface: \"eth0\"\nkolla_internal_vip_address: \"{address}\"\n\
         enable_haproxy: \"no\"\nenable_cinder: \"yes\"\nom_rpc_vhost: \"/\"\nom_notify_vhost: \"/\"\n\
         # The testbed's placement listens where DevStack's does (kolla's default is 8780).\n\
         placement_api_port: \"{placement}\"\n",
        address = topology.controller().address,
    )
}

/// kolla-ansible's `passwords.yml` for the testbed (mode 0600): the image's secrets under
/// kolla's keys.
pub fn passwords_yml(secrets: &Secrets) -> String {
    let mut text = String::from("---\n");
    for (key, value) in [
        ("database_password", &secrets.db),
        ("rabbitmq_password", &secrets.rabbit),
        ("keystone_admin_password", &secrets.admin),
        ("nova_keystone_password", &secrets.service),
        ("placement_keystone_password", &secrets.service),
        ("glance_keystone_password", &secrets.service),
        ("neutron_keystone_password", &secrets.service),
        ("cinder_keystone_password", &secrets.service),
    ] {
        let _ = writeln!(text, "{key}: {value}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::{DeployerFiles, ImportOptions};

    #[test]
    fn every_service_of_the_devstack_layout_has_a_kolla_container() {
        let names: Vec<&str> = containers().iter().map(|c| c.name).collect();
        for name in [
            "keystone",
            "placement_api",
            "glance_api",
            "neutron_server",
            "nova_api",
            "nova_conductor",
            "nova_scheduler",
            "nova_compute",
            "cinder_api",
            "cinder_scheduler",
            "cinder_volume",
            "rabbitmq",
            "mariadb",
        ] {
            assert!(names.contains(&name), "{name} missing from {names:?}");
        }
        assert_eq!(
            unit_replacing("devstack@n-cond.service").as_deref(),
            Some("kolla-nova_conductor-container.service")
        );
        assert_eq!(unit_replacing("devstack@rest-proxy"), None);
    }

    #[test]
    fn units_restart_always_after_kollas_restart_sec_and_start_the_container_attached() {
        let c = containers()
            .into_iter()
            .find(|c| c.name == "nova_conductor")
            .unwrap();
        let unit = unit_file(&c);
        for line in [
            "Restart=always",
            "RestartSec=11",
            "StartLimitBurst=10",
            "StartLimitIntervalSec=120",
            "SuccessExitStatus=143",
            "ExecStart=/usr/bin/podman start -a nova_conductor",
            "ExecStop=/usr/bin/podman stop nova_conductor -t 60",
            "ConditionHost=controller",
        ] {
            assert!(unit.lines().any(|l| l == line), "{line} not in\n{unit}");
        }
        let compute = containers()
            .into_iter()
            .find(|c| c.name == "nova_compute")
            .unwrap();
        assert!(unit_file(&compute).contains("ConditionHost=compute*"));
        assert!(
            unit_file(&compute).contains("/dev/tcp/controller/5672"),
            "nova-compute waits for the broker as in the DevStack layout"
        );
    }

    #[test]
    fn containers_run_the_devstack_command_on_host_networking_without_cgroups() {
        let c = containers()
            .into_iter()
            .find(|c| c.name == "nova_api")
            .unwrap();
        let script = create_script(&c);
        for part in [
            "--network host",
            "--cgroups disabled",
            "--rootfs /var/lib/kolla/image:O",
            "--volume /etc/nova:/etc/nova:ro",
            "--volume /var/lib/nova:/var/lib/nova",
            // The environment entry holds a `;`: it must reach podman as one quoted word.
            "--env 'OS_NOVA_CONFIG_FILES=api-paste.ini;nova.conf'",
            "/opt/openstack/bin/gunicorn",
            "nova_api_wsgi:application",
            "--ulimit \"nofile=$n:$n\"",
        ] {
            assert!(script.contains(part), "{part} not in\n{script}");
        }
        let mariadb = containers()
            .into_iter()
            .find(|c| c.name == "mariadb")
            .unwrap();
        assert!(
            create_script(&mariadb).contains("install -d -o mysql -g mysql -m 0755 /run/mysqld")
        );
    }

    #[test]
    fn the_adapter_maps_every_unit_the_stack_script_starts() {
        let stack = assets::stack_script();
        let adapter = stack_adapter();
        let mut started = 0;
        for word in stack.split_whitespace() {
            let word =
                word.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '@' && c != '-');
            if word.starts_with("devstack@") {
                started += 1;
                assert!(
                    adapter.contains(&format!("      {word}|{word}.service) a=kolla-")),
                    "{word} is not mapped"
                );
            }
        }
        assert!(started >= 10, "the stack script starts the control plane");
    }

    #[test]
    fn the_kolla_files_import_into_the_testbed_inventory() {
        let dir = tempfile::tempdir().unwrap();
        let topology = Topology::new(2, 2, 64).unwrap();
        let secrets = Secrets {
            admin: "A".into(),
            service: "S".into(),
            db: "D".into(),
            rabbit: "RABBITSECRET".into(),
            tracer: "T".into(),
        };
        let inventory = dir.path().join("multinode");
        let globals = dir.path().join("globals.yml");
        let passwords = dir.path().join("passwords.yml");
        std::fs::write(&inventory, inventory_ini(&topology)).unwrap();
        std::fs::write(&globals, globals_yml(&topology)).unwrap();
        std::fs::write(&passwords, passwords_yml(&secrets)).unwrap();
        let imported = crate::import::kolla::import(
            &DeployerFiles {
                inventory,
                globals: Some(globals),
                passwords: Some(passwords),
            },
            &ImportOptions {
                identity: "/id".into(),
                known_hosts: "/kh".into(),
            },
        )
        .unwrap();
        let inv = imported.inventory;
        let hosts: Vec<(&str, &str)> = inv
            .hosts
            .iter()
            .map(|h| (h.name.as_str(), h.address.as_str()))
            .collect();
        assert_eq!(
            hosts,
            [
                ("controller", "10.77.2.2"),
                ("compute1", "10.77.2.3"),
                ("compute2", "10.77.2.4")
            ]
        );
        // Every container of the layout is imported where it runs, with its unit and port.
        for c in containers() {
            let service = inv
                .services
                .iter()
                .find(|s| s.name == c.service)
                .unwrap_or_else(|| panic!("{} not imported", c.service));
            let runtime = service.container.as_ref().unwrap();
            assert_eq!(runtime.engine, "podman");
            assert_eq!(runtime.name, c.name);
            assert_eq!(runtime.unit.as_deref(), Some(c.unit().as_str()));
            let expected: Vec<&str> = if c.condition_host == COMPUTE_HOSTS {
                vec!["compute1", "compute2"]
            } else {
                vec!["controller"]
            };
            assert_eq!(service.hosts, expected, "{}", c.service);
            let canonical = crate::inventory::canonical_by_name(c.service).unwrap();
            assert_eq!(service.ports, canonical.ports, "{}", c.service);
        }
        assert!(
            imported
                .brokers
                .iter()
                .all(|b| !b.url.contains("RABBITSECRET"))
        );
    }
}
