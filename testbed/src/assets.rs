//! The files the testbed installs into its rootfs, embedded in the binary, and their rendering.
//!
//! Templates use `{{name}}` placeholders; rendering fails if a placeholder is left unfilled, so a
//! typo cannot ship a config with a literal `{{…}}` in it. Pure: nothing here touches the machine.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::topology::Topology;

/// The pinned OpenStack package versions (pip constraints).
pub const CONSTRAINTS: &str = include_str!("../assets/constraints.txt");

/// Packages debootstrap installs into the base rootfs: systemd as PID 1, sshd, and the tools the
/// fault injector runs on a host.
pub const BASE_PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "procps",
    "nftables",
    "iptables",
    "stress-ng",
    "faketime",
    "iputils-ping",
    "socat",
    "psmisc",
    "kmod",
    "curl",
    "ca-certificates",
];

/// Debian packages added to the OpenStack rootfs.
pub const OPENSTACK_DEBS: &[&str] = &[
    "rabbitmq-server",
    "mariadb-server",
    "python3-venv",
    "python3-pip",
];

/// Python distributions installed in `/opt/openstack`. `async-timeout` is needed by `redis` on the
/// rootfs's Python 3.11.2 (marker `python_full_version < "3.11.3"`) and is not in the constraints.
pub const PIP_PACKAGES: &[&str] = &[
    "keystone",
    "nova",
    "openstack-placement",
    "glance",
    "neutron",
    "cinder",
    "python-openstackclient",
    "gunicorn",
    "pymysql",
    "osprofiler",
    "pika",
    "kombu",
    "async-timeout>=4.0.3",
];

/// The client side: what the runner's `openstack` CLI venv needs.
pub const CLIENT_PIP_PACKAGES: &[&str] = &["python-openstackclient"];

/// Directories the services keep state in, created in the image.
pub const STATE_DIRS: &[&str] = &[
    "var/lib/nova",
    "var/lib/neutron",
    "var/lib/cinder",
    "var/lib/openstack-locks",
    "var/lib/glance/images",
    "var/lib/glance/staging",
    "var/lib/glance/tasks",
];

/// The sshd drop-in of every host.
pub const SSHD_CONFIG: &str = include_str!("../assets/sshd_config");

const UNIT_TEMPLATE: &str = include_str!("../assets/units/devstack.service");
const STACK_SH: &str = include_str!("../assets/stack.sh");
const CATALOG_PY: &str = include_str!("../assets/catalog.py");
const GUNICORN: &str = include_str!("../assets/gunicorn-devstack.py");
const ROUTE_CATALOG_PY: &str = include_str!("../assets/route_catalog.py");

/// Config files, by their path in the rootfs.
const CONFIGS: &[(&str, &str)] = &[
    (
        "etc/keystone/keystone.conf",
        include_str!("../assets/etc/keystone/keystone.conf"),
    ),
    (
        "etc/placement/placement.conf",
        include_str!("../assets/etc/placement/placement.conf"),
    ),
    (
        "etc/glance/glance-api.conf",
        include_str!("../assets/etc/glance/glance-api.conf"),
    ),
    (
        "etc/glance/glance-api-paste.ini",
        include_str!("../assets/etc/glance/glance-api-paste.ini"),
    ),
    (
        "etc/neutron/neutron.conf",
        include_str!("../assets/etc/neutron/neutron.conf"),
    ),
    (
        "etc/neutron/api-paste.ini",
        include_str!("../assets/etc/neutron/api-paste.ini"),
    ),
    (
        "etc/neutron/plugins/ml2/ml2_conf.ini",
        include_str!("../assets/etc/neutron/plugins/ml2/ml2_conf.ini"),
    ),
    (
        "etc/nova/nova.conf",
        include_str!("../assets/etc/nova/nova.conf"),
    ),
    (
        "etc/nova/api-paste.ini",
        include_str!("../assets/etc/nova/api-paste.ini"),
    ),
    (
        "etc/cinder/cinder.conf",
        include_str!("../assets/etc/cinder/cinder.conf"),
    ),
];

/// WSGI entry points gunicorn loads (oslo.config must not see gunicorn's arguments).
const WSGI: &[(&str, &str)] = &[
    (
        "keystone_wsgi.py",
        include_str!("../assets/wsgi/keystone_wsgi.py"),
    ),
    (
        "placement_wsgi.py",
        include_str!("../assets/wsgi/placement_wsgi.py"),
    ),
    (
        "glance_wsgi.py",
        include_str!("../assets/wsgi/glance_wsgi.py"),
    ),
    (
        "neutron_wsgi.py",
        include_str!("../assets/wsgi/neutron_wsgi.py"),
    ),
    (
        "nova_api_wsgi.py",
        include_str!("../assets/wsgi/nova_api_wsgi.py"),
    ),
    (
        "cinder_wsgi.py",
        include_str!("../assets/wsgi/cinder_wsgi.py"),
    ),
];

/// Debian units that must run on the controller only. Their postinst enables them in the shared
/// image, so each gets a `ConditionHost=controller` drop-in.
pub const CONTROLLER_ONLY_DEBIAN_UNITS: &[&str] = &[
    "mariadb.service",
    "mariadb.socket",
    "rabbitmq-server.service",
    "epmd.service",
    "epmd.socket",
];

/// `ConditionHost=` glob for controller units.
pub(crate) const CONTROLLER_HOSTS: &str = "controller";
/// `ConditionHost=` glob for compute units: one image serves every `computeN`.
pub(crate) const COMPUTE_HOSTS: &str = "compute*";

/// One `devstack@` unit: its DevStack short name and how it runs.
struct DevstackUnit {
    short: &'static str,
    condition_host: &'static str,
    environment: &'static [&'static str],
    exec_start: Exec,
}

enum Exec {
    /// A gunicorn WSGI server on a port.
    Wsgi { port: u16, module: &'static str },
    /// A console script from the venv with its config file.
    Console {
        program: &'static str,
        config: &'static str,
    },
}

const UNITS: &[DevstackUnit] = &[
    DevstackUnit {
        short: "keystone",
        condition_host: CONTROLLER_HOSTS,
        environment: &["OS_KEYSTONE_CONFIG_FILES=/etc/keystone/keystone.conf"],
        exec_start: Exec::Wsgi {
            port: 5000,
            module: "keystone_wsgi",
        },
    },
    DevstackUnit {
        short: "placement-api",
        condition_host: CONTROLLER_HOSTS,
        environment: &["OS_PLACEMENT_CONFIG_DIR=/etc/placement"],
        exec_start: Exec::Wsgi {
            port: 8778,
            module: "placement_wsgi",
        },
    },
    DevstackUnit {
        short: "g-api",
        condition_host: CONTROLLER_HOSTS,
        environment: &["OS_GLANCE_CONFIG_DIR=/etc/glance"],
        exec_start: Exec::Wsgi {
            port: 9292,
            module: "glance_wsgi",
        },
    },
    DevstackUnit {
        short: "q-svc",
        condition_host: CONTROLLER_HOSTS,
        environment: &["OS_NEUTRON_CONFIG_DIR=/etc/neutron"],
        exec_start: Exec::Wsgi {
            port: 9696,
            module: "neutron_wsgi",
        },
    },
    DevstackUnit {
        short: "n-api",
        condition_host: CONTROLLER_HOSTS,
        environment: &[
            "OS_NOVA_CONFIG_DIR=/etc/nova",
            "\"OS_NOVA_CONFIG_FILES=api-paste.ini;nova.conf\"",
        ],
        exec_start: Exec::Wsgi {
            port: 8774,
            module: "nova_api_wsgi",
        },
    },
    DevstackUnit {
        short: "n-cond",
        condition_host: CONTROLLER_HOSTS,
        environment: &[],
        exec_start: Exec::Console {
            program: "nova-conductor",
            config: "/etc/nova/nova.conf",
        },
    },
    DevstackUnit {
        short: "n-sch",
        condition_host: CONTROLLER_HOSTS,
        environment: &[],
        exec_start: Exec::Console {
            program: "nova-scheduler",
            config: "/etc/nova/nova.conf",
        },
    },
    DevstackUnit {
        short: "c-api",
        condition_host: CONTROLLER_HOSTS,
        environment: &[],
        exec_start: Exec::Wsgi {
            port: 8776,
            module: "cinder_wsgi",
        },
    },
    DevstackUnit {
        short: "c-sch",
        condition_host: CONTROLLER_HOSTS,
        environment: &[],
        exec_start: Exec::Console {
            program: "cinder-scheduler",
            config: "/etc/cinder/cinder.conf",
        },
    },
    // On the controller, as in DevStack's default layout: the volume service's backend is the
    // fake driver, so it needs no disk of its own.
    DevstackUnit {
        short: "c-vol",
        condition_host: CONTROLLER_HOSTS,
        environment: &[],
        exec_start: Exec::Console {
            program: "cinder-volume",
            config: "/etc/cinder/cinder.conf",
        },
    },
    DevstackUnit {
        short: "n-cpu",
        condition_host: COMPUTE_HOSTS,
        environment: &[],
        exec_start: Exec::Console {
            program: "nova-compute",
            config: "/etc/nova/nova-cpu.conf",
        },
    },
];

/// The secrets baked into one image. Generated at build time, kept in the cache (mode 0600).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Secrets {
    /// Keystone `admin` password.
    pub admin: String,
    /// Password of the service users (nova, placement, glance, neutron, cinder).
    pub service: String,
    /// MariaDB `os` user password.
    pub db: String,
    /// RabbitMQ `openstack` user password.
    pub rabbit: String,
    /// RabbitMQ `butterfly-tracer` user password.
    pub tracer: String,
}

impl Secrets {
    /// Fresh random secrets (alphanumeric, so they need no quoting in URLs or configs).
    pub fn generate() -> Self {
        use rand::Rng;
        let one = || -> String {
            rand::thread_rng()
                .sample_iter(&rand::distributions::Alphanumeric)
                .take(24)
                .map(char::from)
                .collect()
        };
        Self {
            admin: one(),
            service: one(),
            db: one(),
            rabbit: one(),
            tracer: one(),
        }
    }
}

/// One file to install into the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootfsFile {
    /// Path relative to the rootfs root.
    pub path: String,
    /// Contents.
    pub contents: String,
    /// Unix mode.
    pub mode: u32,
}

fn file(path: impl Into<String>, contents: impl Into<String>, mode: u32) -> RootfsFile {
    RootfsFile {
        path: path.into(),
        contents: contents.into(),
        mode,
    }
}

/// Replaces every `{{name}}` in `template` with its value; an unknown or unfilled placeholder is an
/// error naming the template.
pub fn render(name: &str, template: &str, values: &BTreeMap<&str, String>) -> Result<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| Error::Invalid(format!("{name}: unterminated `{{{{` placeholder")))?;
        let key = &after[..end];
        let value = values
            .get(key)
            .ok_or_else(|| Error::Invalid(format!("{name}: no value for placeholder `{key}`")))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The placeholder values shared by every template.
///
/// Configs name the controller by host name (every host's `/etc/hosts` resolves it), so one image
/// serves every instance and subnet; only the per-run files below carry addresses.
fn values(secrets: &Secrets) -> BTreeMap<&'static str, String> {
    BTreeMap::from([
        ("controller_host", CONTROLLER_HOSTS.to_owned()),
        ("rabbit_password", secrets.rabbit.clone()),
        ("db_password", secrets.db.clone()),
        ("service_password", secrets.service.clone()),
    ])
}

/// How one OpenStack service is started, whatever supervises it: a `devstack@` unit on the
/// host, or a kolla container (`crate::kolla`) running the same command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceCommand {
    /// The command line (words without quoting).
    pub exec_start: String,
    /// `NAME=VALUE` environment entries (unquoted).
    pub environment: Vec<String>,
    /// A command run first on the host (a wait for the broker), when there is one.
    pub exec_start_pre: Option<String>,
    /// The host-name glob of the hosts it runs on.
    pub condition_host: &'static str,
}

/// The command of the service whose `devstack@` short name is `short` (`n-cond`, `g-api`, …).
pub fn service_command(short: &str) -> Option<ServiceCommand> {
    UNITS
        .iter()
        .find(|unit| unit.short == short)
        .map(command_of)
}

fn command_of(unit: &DevstackUnit) -> ServiceCommand {
    let exec_start = match &unit.exec_start {
        Exec::Wsgi { port, module } => format!(
            "/opt/openstack/bin/gunicorn -c /etc/gunicorn-devstack.py --bind 0.0.0.0:{port} \
             --control-socket /run/gunicorn-{short}.ctl --name {short} {module}:application",
            short = unit.short
        ),
        Exec::Console { program, config } => {
            format!("/opt/openstack/bin/{program} --config-file {config}")
        }
    };
    // nova-compute runs on another host than RabbitMQ: systemd cannot order across hosts, so the
    // unit waits for the broker's port itself instead of burning oslo.messaging's back-off.
    let exec_start_pre = (unit.short == "n-cpu").then(|| {
        format!(
            "/bin/bash -c 'until (exec 3<>/dev/tcp/{CONTROLLER_HOSTS}/5672) 2>/dev/null; do sleep 0.5; done'"
        )
    });
    ServiceCommand {
        exec_start,
        environment: unit
            .environment
            .iter()
            .map(|e| e.trim_matches('"').to_owned())
            .collect(),
        exec_start_pre,
        condition_host: unit.condition_host,
    }
}

/// Renders one `devstack@` unit file.
fn render_unit(unit: &DevstackUnit) -> Result<String> {
    let command = command_of(unit);
    let exec_start = command.exec_start;
    let environment: String = unit
        .environment
        .iter()
        .map(|e| format!("Environment={e}\n"))
        .collect();
    let exec_start_pre = command
        .exec_start_pre
        .map(|pre| format!("ExecStartPre={pre}\n"))
        .unwrap_or_default();
    let values = BTreeMap::from([
        ("condition_host", unit.condition_host.to_owned()),
        ("unit", unit.short.to_owned()),
        ("environment", environment),
        ("exec_start_pre", exec_start_pre),
        ("exec_start", exec_start),
    ]);
    render(
        &format!("devstack@{}.service", unit.short),
        UNIT_TEMPLATE,
        &values,
    )
}

/// nova-compute's config: nova.conf without database connections (DevStack's `nova-cpu.conf`),
/// so a compute host cannot reach the database directly, as in a real deployment.
fn nova_cpu_conf(nova_conf: &str) -> String {
    nova_conf
        .lines()
        .filter(|line| !line.trim_start().starts_with("connection"))
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The clouds.yaml for the `butterfly` cloud (admin credentials).
pub fn clouds_yaml(topology: &Topology, secrets: &Secrets) -> String {
    format!(
        "clouds:\n  butterfly:\n    auth:\n      auth_url: http://{ip}:5000/v3\n      username: admin\n      \
         password: {password}\n      project_name: admin\n      user_domain_name: Default\n      \
         project_domain_name: Default\n    region_name: RegionOne\n    identity_api_version: 3\n",
        ip = topology.controller().address,
        password = secrets.admin,
    )
}

/// The tracer's AMQP URL.
pub fn tracer_amqp_url(topology: &Topology, secrets: &Secrets) -> String {
    format!(
        "amqp://butterfly-tracer:{}@{}:5672/%2F",
        secrets.tracer,
        topology.controller().address
    )
}

/// Every file the OpenStack layer adds to the rootfs. Independent of the topology: the image is
/// shared by every instance.
pub fn openstack_files(secrets: &Secrets) -> Result<Vec<RootfsFile>> {
    let values = values(secrets);
    let mut files = Vec::new();
    for (path, template) in CONFIGS {
        let rendered = render(path, template, &values)?;
        if *path == "etc/nova/nova.conf" {
            files.push(file(
                "etc/nova/nova-cpu.conf",
                nova_cpu_conf(&rendered),
                0o640,
            ));
        }
        files.push(file(*path, rendered, 0o640));
    }
    for (name, contents) in WSGI {
        files.push(file(format!("opt/devstack-wsgi/{name}"), *contents, 0o644));
    }
    files.push(file("etc/gunicorn-devstack.py", GUNICORN, 0o644));
    for unit in UNITS {
        files.push(file(
            format!("etc/systemd/system/devstack@{}.service", unit.short),
            render_unit(unit)?,
            0o644,
        ));
    }
    for unit in CONTROLLER_ONLY_DEBIAN_UNITS {
        files.push(file(
            format!("etc/systemd/system/{unit}.d/butterfly-role.conf"),
            format!("[Unit]\nConditionHost={CONTROLLER_HOSTS}\n"),
            0o644,
        ));
    }
    files.push(file("usr/local/sbin/butterfly-stack.sh", STACK_SH, 0o755));
    files.push(file(
        "usr/local/lib/butterfly/catalog.py",
        CATALOG_PY,
        0o644,
    ));
    Ok(files)
}

/// The per-run files bind-mounted into the controller (they carry the instance's addresses):
/// the stack script's environment and `/etc/openstack/clouds.yaml`, as on a DevStack.
pub fn controller_run_files(topology: &Topology, secrets: &Secrets) -> Vec<RootfsFile> {
    vec![
        file(
            "etc/butterfly/stack.env",
            format!(
                "BFLY_CONTROLLER_IP={}\nBFLY_ADMIN_PASSWORD={}\nBFLY_SERVICE_PASSWORD={}\n\
                 BFLY_DB_PASSWORD={}\nBFLY_RABBIT_PASSWORD={}\nBFLY_TRACER_PASSWORD={}\n",
                topology.controller().address,
                secrets.admin,
                secrets.service,
                secrets.db,
                secrets.rabbit,
                secrets.tracer
            ),
            0o600,
        ),
        file(
            "etc/openstack/clouds.yaml",
            clouds_yaml(topology, secrets),
            0o600,
        ),
    ]
}

/// One API the controller's recording REST proxy fronts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxiedApi {
    /// Canonical service name, as the proxy records it.
    pub service: &'static str,
    /// The port the service itself listens on.
    pub port: u16,
    /// The port its proxy listens on (what the Keystone catalog names).
    pub proxy_port: u16,
}

/// The APIs whose calls the testbed routes through the recording proxy. Keystone is left out:
/// its calls carry no global request id, and every token request would pass the proxy.
pub const PROXIED_APIS: &[ProxiedApi] = &[
    ProxiedApi {
        service: "placement-api",
        port: 8778,
        proxy_port: 18778,
    },
    ProxiedApi {
        service: "glance-api",
        port: 9292,
        proxy_port: 19292,
    },
    ProxiedApi {
        service: "neutron-api",
        port: 9696,
        proxy_port: 19696,
    },
    ProxiedApi {
        service: "nova-api",
        port: 8774,
        proxy_port: 18774,
    },
    ProxiedApi {
        service: "cinder-api",
        port: 8776,
        proxy_port: 18776,
    },
];

/// The port of the proxy's live record stream (`butterfly trace --serve-records`).
pub const RECORDS_PORT: u16 = 19900;

/// Where the `butterfly` binary that runs the proxies is bind-mounted in the controller.
pub const PROXY_BINARY: &str = "/usr/local/bin/butterfly";

/// The proxy port in front of a service port, if the service is proxied.
pub fn proxy_port(port: u16) -> Option<u16> {
    PROXIED_APIS
        .iter()
        .find(|api| api.port == port)
        .map(|api| api.proxy_port)
}

/// The `devstack@rest-proxy` unit: every proxied API plus the record stream, in one supervised
/// `butterfly trace` process that keeps no trace directory of its own.
fn rest_proxy_unit() -> Result<String> {
    let mut exec_start = format!("{PROXY_BINARY} trace --serve-records 0.0.0.0:{RECORDS_PORT}");
    for api in PROXIED_APIS {
        // The upstream is named by host name so that the records' host is the controller's.
        exec_start.push_str(&format!(
            " --rest-proxy {}=0.0.0.0:{}=http://{CONTROLLER_HOSTS}:{}",
            api.service, api.proxy_port, api.port
        ));
    }
    let values = BTreeMap::from([
        ("condition_host", CONTROLLER_HOSTS.to_owned()),
        ("unit", "rest-proxy".to_owned()),
        ("environment", String::new()),
        ("exec_start_pre", String::new()),
        ("exec_start", exec_start),
    ]);
    render("devstack@rest-proxy.service", UNIT_TEMPLATE, &values)
}

/// nova.conf with `[glance] api_servers` at the glance proxy: nova names glance by this option,
/// not by the catalog, so rerouting the catalog alone would leave nova → glance unrecorded.
fn nova_conf_through_proxy(nova_conf: &str) -> Result<String> {
    let glance = PROXIED_APIS
        .iter()
        .find(|api| api.service == "glance-api")
        .expect("glance is proxied");
    let direct = format!("api_servers = http://{CONTROLLER_HOSTS}:{}", glance.port);
    if !nova_conf.contains(&direct) {
        return Err(Error::Invalid(format!(
            "etc/nova/nova.conf: no `{direct}` line to route through the proxy"
        )));
    }
    Ok(nova_conf.replace(
        &direct,
        &format!(
            "api_servers = http://{CONTROLLER_HOSTS}:{}",
            glance.proxy_port
        ),
    ))
}

/// The per-run controller files of the recording REST proxy, bind-mounted over the image: its
/// unit, nova.conf routed through it, and the script that moves the catalog onto it (run by
/// [`route_command`] once the stack is up). Kept out of the image so that the image layer is the
/// same with and without the proxy.
pub fn rest_proxy_run_files(secrets: &Secrets) -> Result<Vec<RootfsFile>> {
    let nova = CONFIGS
        .iter()
        .find(|(path, _)| *path == "etc/nova/nova.conf")
        .map(|(path, template)| render(path, template, &values(secrets)))
        .expect("nova.conf is a config")?;
    Ok(vec![
        file(
            "etc/systemd/system/devstack@rest-proxy.service",
            rest_proxy_unit()?,
            0o644,
        ),
        file("etc/nova/nova.conf", nova_conf_through_proxy(&nova)?, 0o640),
        file("etc/butterfly/route_catalog.py", ROUTE_CATALOG_PY, 0o644),
    ])
}

/// The controller command that starts the proxy, moves the catalog onto it and restarts the nova
/// services that already hold a catalog (their keystoneauth sessions cache it with their token).
pub fn route_command(layout: crate::Layout) -> String {
    let pairs: Vec<String> = PROXIED_APIS
        .iter()
        .map(|api| format!("{}={}", api.port, api.proxy_port))
        .collect();
    let restart: Vec<String> = ["devstack@n-api", "devstack@n-cond", "devstack@n-sch"]
        .iter()
        .map(|unit| layout.unit(unit))
        .collect();
    format!(
        "set -e; systemctl start devstack@rest-proxy; set -a; . /etc/butterfly/stack.env; set +a; \
         /opt/openstack/bin/python /etc/butterfly/route_catalog.py {}; \
         systemctl restart {}",
        pairs.join(" "),
        restart.join(" ")
    )
}

/// A short, stable hash of some parts: the cache key of one image layer.
pub fn cache_key(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// DevStack's stack script, which the kolla layout runs too (`crate::kolla::stack_adapter`).
pub fn stack_script() -> &'static str {
    STACK_SH
}

/// Every embedded asset, for the OpenStack layer's cache key.
pub fn all_asset_texts() -> Vec<&'static str> {
    let mut texts = vec![
        UNIT_TEMPLATE,
        STACK_SH,
        CATALOG_PY,
        GUNICORN,
        SSHD_CONFIG,
        CONSTRAINTS,
    ];
    texts.extend(CONFIGS.iter().flat_map(|(path, text)| [*path, *text]));
    texts.extend(WSGI.iter().map(|(_, text)| *text));
    texts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets {
            admin: "ADMINPW".into(),
            service: "SERVICEPW".into(),
            db: "DBPW".into(),
            rabbit: "RABBITPW".into(),
            tracer: "TRACERPW".into(),
        }
    }

    #[test]
    fn render_fills_placeholders_and_rejects_unknown_ones() {
        let values = BTreeMap::from([("a", "1".to_owned())]);
        assert_eq!(render("t", "x={{a}} y={{a}}", &values).unwrap(), "x=1 y=1");
        let error = render("t", "{{b}}", &values).unwrap_err().to_string();
        assert!(error.contains("placeholder `b`"), "{error}");
        assert!(render("t", "{{a", &values).is_err());
    }

    #[test]
    fn every_openstack_file_renders_without_leftover_placeholders() {
        let files = openstack_files(&secrets()).unwrap();
        for f in &files {
            assert!(!f.contents.contains("{{"), "{} keeps a placeholder", f.path);
            assert!(
                !f.contents.contains("10.99.0"),
                "{} keeps the prototype subnet",
                f.path
            );
        }
        let nova = files
            .iter()
            .find(|f| f.path == "etc/nova/nova.conf")
            .unwrap();
        assert!(
            nova.contents
                .contains("transport_url = rabbit://openstack:RABBITPW@controller:5672/")
        );
        assert!(nova.contents.contains("os:DBPW@127.0.0.1/nova"));
        let cpu = files
            .iter()
            .find(|f| f.path == "etc/nova/nova-cpu.conf")
            .unwrap();
        assert!(!cpu.contents.contains("connection"));
        assert!(cpu.contents.contains("FakeDriverWithoutFakeNodes"));
    }

    #[test]
    fn units_take_their_role_from_the_host_name() {
        let files = openstack_files(&secrets()).unwrap();
        let unit = |name: &str| {
            files
                .iter()
                .find(|f| f.path == format!("etc/systemd/system/devstack@{name}.service"))
                .unwrap()
                .contents
                .clone()
        };
        let cpu = unit("n-cpu");
        assert!(cpu.contains("ConditionHost=compute*\n"));
        assert!(cpu.contains("/dev/tcp/controller/5672"));
        assert!(cpu.contains(
            "ExecStart=/opt/openstack/bin/nova-compute --config-file /etc/nova/nova-cpu.conf\n"
        ));
        let api = unit("n-api");
        assert!(api.contains("ConditionHost=controller\n"));
        assert!(api.contains("--bind 0.0.0.0:8774"));
        assert!(api.contains("Environment=\"OS_NOVA_CONFIG_FILES=api-paste.ini;nova.conf\"\n"));
        assert!(!api.contains("ExecStartPre"));
        let dropin = files
            .iter()
            .find(|f| f.path == "etc/systemd/system/rabbitmq-server.service.d/butterfly-role.conf")
            .unwrap();
        assert_eq!(dropin.contents, "[Unit]\nConditionHost=controller\n");
    }

    #[test]
    fn secrets_stay_in_files_with_private_modes() {
        let topology = Topology::new(0, 1, 64).unwrap();
        let mut files = openstack_files(&secrets()).unwrap();
        files.extend(controller_run_files(&topology, &secrets()));
        for f in files {
            if f.contents.contains("ADMINPW") || f.contents.contains("TRACERPW") {
                assert_eq!(f.mode & 0o077, 0, "{} holds a secret", f.path);
            }
        }
    }

    #[test]
    fn generated_secrets_are_long_alphanumeric_and_distinct() {
        let s = Secrets::generate();
        assert_eq!(s.admin.len(), 24);
        assert!(s.admin.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(s.admin, s.service);
    }

    #[test]
    fn cache_key_depends_on_every_part_and_their_boundaries() {
        assert_eq!(cache_key(&["a", "b"]), cache_key(&["a", "b"]));
        assert_ne!(cache_key(&["a", "b"]), cache_key(&["ab"]));
        assert_ne!(cache_key(&["a", "b"]), cache_key(&["a", "c"]));
        assert_eq!(cache_key(&["x"]).len(), 16);
    }

    #[test]
    fn the_proxy_unit_fronts_every_proxied_api_and_nova_reaches_glance_through_it() {
        let files = rest_proxy_run_files(&secrets()).unwrap();
        let unit = &files
            .iter()
            .find(|f| f.path == "etc/systemd/system/devstack@rest-proxy.service")
            .unwrap()
            .contents;
        assert!(unit.contains("ConditionHost=controller\n"));
        assert!(unit.contains("Restart=on-failure"));
        assert!(unit.contains(
            "ExecStart=/usr/local/bin/butterfly trace --serve-records 0.0.0.0:19900 \
             --rest-proxy placement-api=0.0.0.0:18778=http://controller:8778 \
             --rest-proxy glance-api=0.0.0.0:19292=http://controller:9292 \
             --rest-proxy neutron-api=0.0.0.0:19696=http://controller:9696 \
             --rest-proxy nova-api=0.0.0.0:18774=http://controller:8774 \
             --rest-proxy cinder-api=0.0.0.0:18776=http://controller:8776\n"
        ));
        let nova = files
            .iter()
            .find(|f| f.path == "etc/nova/nova.conf")
            .unwrap();
        assert!(
            nova.contents
                .contains("api_servers = http://controller:19292\n")
        );
        assert!(!nova.contents.contains(":9292"));
        assert_eq!(nova.mode & 0o077, 0o040, "nova.conf holds secrets");
        assert!(nova.contents.contains("os:DBPW@127.0.0.1/nova"));
        assert!(
            route_command(crate::Layout::Devstack).contains(
                "route_catalog.py 8778=18778 9292=19292 9696=19696 8774=18774 8776=18776;"
            )
        );
        assert_eq!(proxy_port(8774), Some(18774));
        assert_eq!(proxy_port(5000), None);
    }

    #[test]
    fn the_proxy_files_stay_out_of_the_image_layer() {
        let texts = all_asset_texts();
        assert!(!texts.contains(&ROUTE_CATALOG_PY));
        let image = openstack_files(&secrets()).unwrap();
        assert!(image.iter().all(|f| !f.path.contains("rest-proxy")));
    }

    #[test]
    fn clouds_yaml_and_amqp_url_point_at_the_controller() {
        let topology = Topology::new(0, 1, 64).unwrap();
        let clouds = clouds_yaml(&topology, &secrets());
        assert!(clouds.contains("  butterfly:\n"));
        assert!(clouds.contains("auth_url: http://10.77.0.2:5000/v3"));
        assert_eq!(
            tracer_amqp_url(&topology, &secrets()),
            "amqp://butterfly-tracer:TRACERPW@10.77.0.2:5672/%2F"
        );
    }
}
