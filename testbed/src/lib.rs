//! The testbed crate builds and runs a local, DevStack-like OpenStack on one machine, and discovers
//! the same description from a real DevStack.
//!
//! * [`up`] boots N hosts (network namespaces on a private bridge, each a systemd-nspawn machine
//!   with its own loop-mounted `/srv` disk and real sshd) from a cached Debian rootfs ([`image`]),
//!   stacks OpenStack on them with DevStack's unit names ([`openstack`]), waits until it is
//!   healthy and writes the outputs: `inventory.yaml` ([`inventory`]), `clouds.yaml`, the SSH
//!   config with the hosts' real keys, and the tracer's AMQP URL.
//! * [`status`] checks health ([`health`]); [`down`] removes everything and proves it with a
//!   residue scan ([`residue`]).
//! * [`discover()`] builds an [`inventory::Inventory`] from a real DevStack over SSH;
//!   [`import`] builds it from a kolla-ansible or OpenStack-Ansible deployment's own files (their
//!   Ansible inventory, parsed by [`ansible`], and variables), without logging in.
//!
//! Data flows out of this crate as files in the state directory ([`topology::StateDir`]); the
//! runner reads the inventory and hands it to the injector and the tracer.
#![warn(missing_docs)]

pub mod ansible;
pub mod assets;
pub mod discover;
mod error;
pub mod health;
mod hosts;
pub mod image;
pub mod import;
pub mod inventory;
pub mod kolla;
pub mod openstack;
pub mod progress;
pub mod residue;
mod sys;
pub mod topology;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use userinput::file::FileKind;

pub use discover::{DiscoverOptions, discover};
pub use error::{Error, Result};
pub use hosts::{HostRecord, ssh_config};
pub use progress::Progress;
pub use topology::{Role, StateDir, Topology};

use crate::error::io_at;
use crate::inventory::SshDefaults;
use crate::progress::run_step;

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/butterfly/testbed";
/// The default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/butterfly/testbed";

/// What `up` brings up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Hosts with systemd, sshd, the fault tools and disks; no OpenStack.
    HostsOnly,
    /// Hosts plus the OpenStack services.
    OpenStack,
}

/// How the OpenStack services are run and supervised; the image, the configs and the stacking
/// are the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// DevStack's: `devstack@*` units, Debian's `mariadb` and `rabbitmq-server` units.
    #[default]
    Devstack,
    /// kolla-ansible's: Podman containers supervised by `kolla-*-container.service` ([`kolla`]).
    Kolla,
}

impl Layout {
    /// The unit that runs the service which DevStack's layout runs as `devstack_unit` (with
    /// `.service` when given with it).
    pub fn unit(self, devstack_unit: &str) -> String {
        match self {
            Layout::Devstack => devstack_unit.to_owned(),
            Layout::Kolla => {
                kolla::unit_replacing(devstack_unit).unwrap_or_else(|| devstack_unit.to_owned())
            }
        }
    }

    /// The shell command that runs `rabbitmqctl` on the broker's host.
    pub fn rabbitmqctl(self) -> &'static str {
        match self {
            Layout::Devstack => "rabbitmqctl",
            Layout::Kolla => "podman exec rabbitmq rabbitmqctl",
        }
    }
}

/// Options of `up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Where the outputs and per-host files go.
    pub state_dir: PathBuf,
    /// Where the image layers are cached.
    pub cache_dir: PathBuf,
    /// Hosts only, or OpenStack too.
    pub mode: Mode,
    /// Instance number (subnet 10.77.N.0/24).
    pub instance: u8,
    /// Number of compute hosts.
    pub computes: usize,
    /// Size of each host's `/srv` disk in MiB.
    pub disk_mb: u64,
    /// Leave a failed testbed up for inspection instead of rolling it back.
    pub keep_on_failure: bool,
    /// How the services are supervised (OpenStack mode).
    pub layout: Layout,
    /// The `butterfly` binary that runs the recording REST proxy on the controller (bind-mounted
    /// read-only; the controller runs the same Debian release as the host). With it, the Keystone
    /// catalog and nova's glance URL point at the proxy; without it, straight at the services.
    pub rest_proxy_binary: Option<PathBuf>,
}

/// What `up` wrote into the state directory, also used by `status` and `down`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The mode it was brought up in.
    pub mode: Mode,
    /// The hosts.
    pub topology: Topology,
    /// The rootfs the hosts boot.
    pub rootfs: PathBuf,
    /// The cache key of that image.
    pub image_key: String,
    /// What was started per host.
    pub hosts: Vec<HostRecord>,
    /// The runner-side venv with the `openstack` CLI, in OpenStack mode.
    pub client_venv: Option<PathBuf>,
    /// Whether API calls are routed through the recording REST proxy (records written before
    /// the proxy existed have none).
    #[serde(default)]
    pub rest_proxy: bool,
    /// How the services are supervised (records written before layouts existed are DevStack's).
    #[serde(default)]
    pub layout: Layout,
}

impl Record {
    /// The services this testbed runs.
    pub fn services(&self) -> inventory::ServiceSet {
        match (self.mode, self.rest_proxy) {
            (Mode::HostsOnly, _) => inventory::ServiceSet::None,
            (Mode::OpenStack, false) => inventory::ServiceSet::OpenStack,
            (Mode::OpenStack, true) => inventory::ServiceSet::OpenStackWithRestProxy,
        }
    }
}

impl Record {
    /// Reads the record of the testbed in `state`, if any.
    pub fn load(state: &StateDir) -> Result<Option<Self>> {
        let path = state.record();
        match userinput::file::read_to_string(&path, FileKind::TESTBED_STATE) {
            Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
                Error::Invalid(format!(
                    "{}: unreadable testbed record: {e}",
                    path.display()
                ))
            }),
            Err(error) if error.is_not_found() => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    fn save(&self, state: &StateDir) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("record serializes");
        sys::write_file(&state.record(), &text, 0o644)
    }
}

/// What `up` produced.
#[derive(Debug, Clone)]
pub struct UpReport {
    /// True when the testbed was already up and only its status was checked.
    pub already_up: bool,
    /// The record.
    pub record: Record,
    /// The output files (inventory, clouds.yaml, …) with their paths.
    pub outputs: Vec<(String, PathBuf)>,
    /// Health checks (OpenStack mode).
    pub health: Option<health::Health>,
}

/// The tools `up` and `down` run.
const TOOLS: &[&str] = &[
    "ip",
    "systemd-nspawn",
    "nsenter",
    "mount",
    "umount",
    "losetup",
    "mkfs.ext4",
    "ssh",
    "ssh-keygen",
];

/// Brings the testbed up (or reports the status of the one already up).
pub fn up(options: &UpOptions, progress: &Progress) -> Result<UpReport> {
    let mut tools = TOOLS.to_vec();
    tools.push("debootstrap");
    sys::preflight(&tools)?;
    let state = StateDir::new(&options.state_dir);
    let topology = Topology::new(options.instance, options.computes, options.disk_mb)?;
    if let Some(binary) = &options.rest_proxy_binary
        && !binary.is_file()
    {
        return Err(Error::Invalid(format!(
            "the REST proxy binary {} is not a file",
            binary.display()
        )));
    }
    sys::mkdir(state.root())?;
    // Held until `up` returns: a second `up` (or `status`) on the same state directory must not
    // mistake a testbed that is still being stacked for a broken one.
    let _lock = lock_state(&state)?;

    if let Some(record) = Record::load(&state)? {
        if hosts::all_running(&record.hosts) {
            let health = match record.mode {
                Mode::OpenStack => Some(health::check(&record, &state)?),
                Mode::HostsOnly => None,
            };
            let outputs = outputs(&state, record.mode);
            return Ok(UpReport {
                already_up: true,
                record,
                outputs,
                health,
            });
        }
        // A record whose hosts are gone: an interrupted or crashed run. Clear it first.
        let leftovers = hosts::teardown(&record.topology, &state, &record.hosts);
        ensure_clean(&leftovers)?;
    }
    let leftovers = residue::scan(&topology, state.root());
    if !leftovers.is_empty() {
        run_step(progress, "remove leftovers of an earlier run", |_| {
            ensure_clean(&hosts::teardown(&topology, &state, &[]))
        })?;
    }

    let cache = options.cache_dir.clone();
    let cache_lock = image::lock_cache(&cache, progress)?;
    let images = match options.mode {
        Mode::HostsOnly => image::Images {
            rootfs: image::ensure_base(&cache, progress)?,
            secrets: None,
            client_venv: None,
            key: "base".to_owned(),
        },
        Mode::OpenStack => match options.layout {
            Layout::Devstack => image::ensure_openstack(&cache, progress)?,
            Layout::Kolla => image::ensure_kolla(&cache, progress)?,
        },
    };
    let layout = match options.mode {
        Mode::HostsOnly => Layout::Devstack,
        Mode::OpenStack => options.layout,
    };
    // The hosts boot from the layer's rootfs read-only (overlays), so the cache is free again.
    drop(cache_lock);

    sys::mkdir(state.root())?;
    hosts::prepare_ssh(&topology, &state)?;
    let mut record = Record {
        mode: options.mode,
        topology: topology.clone(),
        rootfs: images.rootfs.clone(),
        image_key: images.key.clone(),
        hosts: Vec::new(),
        client_venv: images.client_venv.clone(),
        rest_proxy: images.secrets.is_some() && options.rest_proxy_binary.is_some(),
        layout,
    };
    // The record is written before anything is started, so that `down` finds an interrupted run.
    record.save(&state)?;
    let mut run_files = Vec::new();
    if let Some(secrets) = &images.secrets {
        let dir = state.host_dir(&topology.controller().name).join("run");
        let mut files = assets::controller_run_files(&topology, secrets);
        if let Some(binary) = &options.rest_proxy_binary {
            files.extend(assets::rest_proxy_run_files(secrets)?);
            run_files.push((binary.clone(), assets::PROXY_BINARY.to_owned()));
        }
        for file in files {
            let source = dir.join(file.path.replace('/', "_"));
            sys::write_file(&source, &file.contents, file.mode)?;
            run_files.push((source, format!("/{}", file.path)));
        }
    }
    let booted = run_step(
        progress,
        &format!("boot {} hosts (systemd-nspawn)", topology.hosts.len()),
        |step| {
            hosts::start(
                &topology,
                &state,
                &images.rootfs,
                &run_files,
                &hosts::host_mounts(layout, &images.rootfs),
                step,
            )
        },
    );
    let result = booted.and_then(|records| {
        record.hosts = records;
        record.save(&state)?;
        finish_up(options, &state, &record, &images, progress)
    });
    match result {
        Ok(health) => Ok(UpReport {
            already_up: false,
            outputs: outputs(&state, options.mode),
            record,
            health,
        }),
        Err(error) if options.keep_on_failure => Err(error),
        Err(error) => {
            let step = progress.step("roll back");
            let leftovers = hosts::teardown(&topology, &state, &record.hosts);
            remove_outputs(&state);
            step.done();
            if leftovers.is_empty() {
                Err(error)
            } else {
                Err(Error::Step {
                    step: "roll back".to_owned(),
                    detail: format!(
                        "{error}; and the roll-back left: {}",
                        leftovers
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                })
            }
        }
    }
}

fn finish_up(
    options: &UpOptions,
    state: &StateDir,
    record: &Record,
    images: &image::Images,
    progress: &Progress,
) -> Result<Option<health::Health>> {
    let ssh = SshDefaults {
        identity: state.identity().to_string_lossy().into_owned(),
        known_hosts: state.known_hosts().to_string_lossy().into_owned(),
    };
    let health = match options.mode {
        Mode::HostsOnly => None,
        Mode::OpenStack => {
            let secrets = images
                .secrets
                .as_ref()
                .expect("the OpenStack image has secrets");
            openstack::stack(record, state, progress)?;
            let health = run_step(progress, "wait until healthy", |step| {
                health::wait_healthy(record, state, step)
            })?;
            sys::write_file(
                &state.clouds_yaml(),
                &assets::clouds_yaml(&record.topology, secrets),
                0o600,
            )?;
            sys::write_file(
                &state.amqp_url(),
                &format!("{}\n", assets::tracer_amqp_url(&record.topology, secrets)),
                0o600,
            )?;
            Some(health)
        }
    };
    let inventory = match (record.layout, &images.secrets) {
        (Layout::Kolla, Some(secrets)) => kolla_inventory(record, state, secrets, &ssh)?,
        _ => inventory::generate(&record.topology, &ssh, record.services()),
    };
    sys::write_file(&state.inventory(), &inventory.to_yaml()?, 0o644)?;
    Ok(health)
}

/// Writes kolla-ansible's own files for the testbed into `<state>/kolla/` and imports them as
/// `discover --kolla` does; the REST proxy, the testbed's instrument and not kolla's, is added
/// as the DevStack layout lists it.
fn kolla_inventory(
    record: &Record,
    state: &StateDir,
    secrets: &assets::Secrets,
    ssh: &SshDefaults,
) -> Result<inventory::Inventory> {
    let dir = state.kolla_dir();
    sys::mkdir(&dir)?;
    let files = import::DeployerFiles {
        inventory: dir.join("multinode"),
        globals: Some(dir.join("globals.yml")),
        passwords: Some(dir.join("passwords.yml")),
    };
    sys::write_file(
        &files.inventory,
        &kolla::inventory_ini(&record.topology),
        0o644,
    )?;
    sys::write_file(
        &dir.join("globals.yml"),
        &kolla::globals_yml(&record.topology),
        0o644,
    )?;
    sys::write_file(
        &dir.join("passwords.yml"),
        &kolla::passwords_yml(secrets),
        0o600,
    )?;
    let imported = import::kolla::import(
        &files,
        &import::ImportOptions {
            identity: ssh.identity.clone(),
            known_hosts: ssh.known_hosts.clone(),
        },
    )?;
    let mut inventory = imported.inventory;
    if record.rest_proxy {
        let generated = inventory::generate(&record.topology, ssh, record.services());
        inventory.services.extend(
            generated
                .services
                .into_iter()
                .filter(|s| s.name == inventory::REST_PROXY),
        );
    }
    Ok(inventory)
}

fn outputs(state: &StateDir, mode: Mode) -> Vec<(String, PathBuf)> {
    let mut list = vec![
        ("inventory".to_owned(), state.inventory()),
        ("ssh config".to_owned(), state.ssh_config()),
        ("known_hosts".to_owned(), state.known_hosts()),
        ("identity".to_owned(), state.identity()),
    ];
    if mode == Mode::OpenStack {
        list.push((
            "clouds.yaml (cloud `butterfly`)".to_owned(),
            state.clouds_yaml(),
        ));
        list.push(("tracer AMQP URL (secret)".to_owned(), state.amqp_url()));
    }
    list
}

fn remove_outputs(state: &StateDir) {
    for path in [
        state.inventory(),
        state.clouds_yaml(),
        state.amqp_url(),
        state.record(),
    ] {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_dir_all(state.kolla_dir());
    let _ = std::fs::remove_dir_all(state.ssh_dir());
    // Only removed when empty: the directory may be the user's and hold other files.
    let _ = std::fs::remove_dir(state.root());
}

fn ensure_clean(leftovers: &[residue::Residue]) -> Result<()> {
    if leftovers.is_empty() {
        Ok(())
    } else {
        Err(Error::Residue(
            leftovers.iter().map(ToString::to_string).collect(),
        ))
    }
}

/// Removes the testbed in `state_dir` and everything it created; idempotent. `instance` is used
/// to find leftovers when no record exists (an interrupted first `up`).
pub fn down(state_dir: &Path, instance: u8, progress: &Progress) -> Result<()> {
    sys::preflight(TOOLS)?;
    let state = StateDir::new(state_dir);
    let record = Record::load(&state)?;
    let (topology, records) = match &record {
        Some(record) => (record.topology.clone(), record.hosts.clone()),
        None => (
            Topology::new(instance, topology::MAX_COMPUTES, 64)?,
            Vec::new(),
        ),
    };
    run_step(progress, "stop the hosts and remove everything", |_| {
        let leftovers = hosts::teardown(&topology, &state, &records);
        ensure_clean(&leftovers)?;
        remove_outputs(&state);
        Ok(())
    })
}

/// Takes the state directory's lock, failing at once if another `up` holds it.
fn lock_state(state: &StateDir) -> Result<nix::fcntl::Flock<std::fs::File>> {
    let dir = std::fs::File::open(state.root()).map_err(io_at(state.root()))?;
    nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusiveNonblock).map_err(|_| {
        Error::Environment(format!(
            "another `butterfly testbed up` is running on {}; wait for it or run `down`",
            state.root().display()
        ))
    })
}

/// Checks the health of the testbed in `state_dir`.
pub fn status(state_dir: &Path) -> Result<(Record, Option<health::Health>)> {
    let state = StateDir::new(state_dir);
    if state.root().is_dir() {
        // Released at once: this only asks whether an `up` is still at work.
        lock_state(&state)?;
    }
    let record = Record::load(&state)?.ok_or_else(|| Error::NotUp(state_dir.to_path_buf()))?;
    hosts::check_running(&record.hosts)?;
    let health = match record.mode {
        Mode::OpenStack => {
            let health = health::check(&record, &state)?;
            if !health.healthy() {
                return Err(Error::Unhealthy(health.failures()));
            }
            Some(health)
        }
        Mode::HostsOnly => {
            health::check_hosts(&record, &state)?;
            None
        }
    };
    Ok((record, health))
}

/// Reads a file from the state directory (used by the CLI to print outputs).
pub fn read_output(path: &Path) -> Result<String> {
    Ok(userinput::file::read_to_string(
        path,
        FileKind::TESTBED_STATE,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_up_on_the_same_state_dir_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let first = lock_state(&state).unwrap();
        let error = lock_state(&state).unwrap_err().to_string();
        assert!(error.contains("another `butterfly testbed up`"), "{error}");
        drop(first);
        assert!(lock_state(&state).is_ok());
    }

    #[test]
    fn status_without_a_testbed_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let error = status(dir.path()).unwrap_err();
        assert!(matches!(error, Error::NotUp(_)), "{error}");
    }
}
