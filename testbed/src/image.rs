//! The cached images, in layers under the cache directory, each keyed by a hash of what it is
//! built from so that a change to the pins or assets builds a new layer and an unchanged one is
//! reused:
//!
//! * `base-<key>/rootfs`: debootstrap'd Debian bookworm with systemd, sshd and the fault tools
//!   (key: package list, sshd drop-in). Enough for `up --hosts-only`.
//! * `wheels-<key>/`: the pinned OpenStack wheels, downloaded on the machine (whose pip has the CA
//!   and index settings; pip inside a chroot would not), plus `client/`, a venv with the
//!   `openstack` CLI for the runner (key: constraints and package list).
//! * `openstack-<key>/rootfs`: base + MariaDB, RabbitMQ, a venv with OpenStack installed offline
//!   from the wheels, and the rendered configs and units; `secrets.json` beside it (key: both
//!   layers and every asset). Configs name the controller by host name, so one image serves
//!   every instance and number of compute hosts.
//!
//! Each layer is built in a `.partial` directory and renamed when complete, so an interrupted
//! build is never mistaken for a finished one.

use std::path::{Path, PathBuf};

use crate::assets::{self, Secrets};
use crate::error::{Result, io_at, step_failed};
use crate::progress::{Progress, run_step};
use crate::sys::{self, clean_command, run, run_quiet};

/// Debian release of every host.
pub const SUITE: &str = "bookworm";
/// Bumped when a layer's build procedure changes in a way its hashed inputs do not show.
const BASE_RECIPE: &str = "1";
const WHEELS_RECIPE: &str = "1";
const OPENSTACK_RECIPE: &str = "2";
const KOLLA_RECIPE: &str = "1";

/// The Debian mirror for debootstrap (`BUTTERFLY_DEBIAN_MIRROR` overrides it).
fn mirror() -> String {
    std::env::var("BUTTERFLY_DEBIAN_MIRROR")
        .unwrap_or_else(|_| "http://deb.debian.org/debian".to_owned())
}

/// Paths of the built layers a testbed boots from.
#[derive(Debug, Clone)]
pub struct Images {
    /// The rootfs the hosts boot.
    pub rootfs: PathBuf,
    /// The OpenStack layer's secrets (absent in hosts-only mode).
    pub secrets: Option<Secrets>,
    /// The runner-side venv with the `openstack` CLI (absent in hosts-only mode).
    pub client_venv: Option<PathBuf>,
    /// The cache key of the layer booted.
    pub key: String,
}

fn base_key() -> String {
    assets::cache_key(&[
        BASE_RECIPE,
        SUITE,
        &assets::BASE_PACKAGES.join(","),
        assets::SSHD_CONFIG,
    ])
}

fn wheels_key() -> String {
    assets::cache_key(&[
        WHEELS_RECIPE,
        assets::CONSTRAINTS,
        &assets::PIP_PACKAGES.join(","),
    ])
}

fn openstack_key() -> String {
    let mut parts = vec![OPENSTACK_RECIPE.to_owned(), base_key(), wheels_key()];
    parts.push(assets::OPENSTACK_DEBS.join(","));
    parts.extend(assets::all_asset_texts().into_iter().map(str::to_owned));
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    assets::cache_key(&refs)
}

fn openstack_dir(cache: &Path) -> PathBuf {
    cache.join(format!("openstack-{}", openstack_key()))
}

fn kolla_key() -> String {
    let mut parts = vec![KOLLA_RECIPE.to_owned(), openstack_key()];
    parts.extend(crate::kolla::layer_texts());
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    assets::cache_key(&refs)
}

/// Holds the image cache for one builder: two `testbed up` runs (a developer's instance and CI's)
/// that find the same layer missing would otherwise build it into the same `.partial` directory and
/// wreck each other's build. The second one waits, then finds the layer complete and reuses it.
/// The lock is an advisory `flock` on `<cache>/.lock`, released when the returned file is dropped
/// (also when the process dies).
pub fn lock_cache(cache: &Path, progress: &Progress) -> Result<std::fs::File> {
    sys::mkdir(cache)?;
    let path = cache.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_at(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => run_step(
            progress,
            "wait for another process building the image cache",
            |_| {
                file.lock().map_err(io_at(&path))?;
                Ok(())
            },
        )
        .map(|()| file),
        Err(std::fs::TryLockError::Error(error)) => Err(io_at(&path)(error)),
    }
}

/// Ensures the base layer exists and returns its rootfs.
pub fn ensure_base(cache: &Path, progress: &Progress) -> Result<PathBuf> {
    let dir = cache.join(format!("base-{}", base_key()));
    if dir.join("rootfs/lib/systemd/systemd").exists() {
        return Ok(dir.join("rootfs"));
    }
    run_step(
        progress,
        "build the base rootfs (debootstrap, about 1-2 min)",
        |step| {
            let partial = partial_dir(&dir)?;
            let rootfs = partial.join("rootfs");
            let include = format!("--include={}", assets::BASE_PACKAGES.join(","));
            let name = step.name().to_owned();
            run(
                &name,
                clean_command("debootstrap")
                    .args(["--variant=minbase", &include, SUITE])
                    .arg(&rootfs)
                    .arg(mirror()),
            )?;
            step.detail("configuring");
            // nspawn sets the host name with -M; a file would override it.
            let _ = std::fs::remove_file(rootfs.join("etc/hostname"));
            // Host keys come per host from the state directory: remove the shared ones.
            for entry in std::fs::read_dir(rootfs.join("etc/ssh"))
                .map_err(io_at(rootfs.join("etc/ssh")))?
                .flatten()
            {
                if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
            sys::write_file(
                &rootfs.join("etc/ssh/sshd_config.d/butterfly.conf"),
                assets::SSHD_CONFIG,
                0o644,
            )?;
            sys::mkdir(&rootfs.join("root/.ssh"))?;
            std::fs::set_permissions(
                rootfs.join("root/.ssh"),
                std::os::unix::fs::PermissionsExt::from_mode(0o700),
            )
            .map_err(io_at(rootfs.join("root/.ssh")))?;
            run_quiet(
                clean_command("chroot")
                    .arg(&rootfs)
                    .args(["apt-get", "clean"]),
            );
            finish_partial(&partial, &dir)?;
            Ok(dir.join("rootfs"))
        },
    )
}

/// Ensures every layer of the OpenStack image exists.
pub fn ensure_openstack(cache: &Path, progress: &Progress) -> Result<Images> {
    let base = ensure_base(cache, progress)?;
    let wheels_dir = ensure_wheels(cache, progress)?;
    let client = ensure_client(&wheels_dir, progress)?;
    let key = openstack_key();
    let dir = openstack_dir(cache);
    if !dir.join("secrets.json").exists() {
        build_openstack(&dir, &base, &wheels_dir, progress)?;
    }
    Ok(Images {
        rootfs: dir.join("rootfs"),
        secrets: Some(read_secrets(&dir)?),
        client_venv: Some(client),
        key,
    })
}

/// Ensures the kolla layer (`kolla-<key>/rootfs`: the OpenStack layer plus Podman and crun, the
/// `kolla-*-container.service` units and their create scripts, the stack adapter, and masks of
/// the Debian broker and database units) and every layer below it. Its secrets are the OpenStack
/// layer's: the configs are that layer's.
pub fn ensure_kolla(cache: &Path, progress: &Progress) -> Result<Images> {
    let openstack = ensure_openstack(cache, progress)?;
    let key = kolla_key();
    let dir = cache.join(format!("kolla-{key}"));
    // The secrets are copied last: a layer with them is complete.
    if !dir.join("secrets.json").exists() {
        run_step(
            progress,
            "copy the OpenStack rootfs (kolla layer)",
            |step| {
                let partial = partial_dir(&dir)?;
                run(
                    step.name(),
                    clean_command("cp")
                        .args(["-a", "--reflink=auto"])
                        .arg(&openstack.rootfs)
                        .arg(partial.join("rootfs")),
                )
                .map(drop)
            },
        )?;
        let partial = dir.with_extension("partial");
        let rootfs = partial.join("rootfs");
        run_step(
            progress,
            "install Podman and crun in the rootfs (apt)",
            |step| apt_install(&rootfs, crate::kolla::KOLLA_DEBS, step.name()),
        )?;
        run_step(progress, "install the kolla units and scripts", |_| {
            for file in crate::kolla::rootfs_files() {
                sys::write_file(&rootfs.join(&file.path), &file.contents, file.mode)?;
            }
            for unit in crate::kolla::MASKED_UNITS {
                let link = rootfs.join("etc/systemd/system").join(unit);
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink("/dev/null", &link).map_err(io_at(&link))?;
            }
            sys::mkdir(&rootfs.join(crate::kolla::IMAGE_DIR.trim_start_matches('/')))?;
            sys::mkdir(&rootfs.join(crate::kolla::STORAGE_DIR.trim_start_matches('/')))?;
            // Beside the rootfs, where `status` reads the secrets of the image a testbed booted.
            let from = openstack_dir(cache).join("secrets.json");
            let to = partial.join("secrets.json");
            std::fs::copy(&from, &to).map_err(io_at(&to))?;
            std::fs::set_permissions(&to, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .map_err(io_at(&to))?;
            finish_partial(&partial, &dir)
        })?;
    }
    Ok(Images {
        rootfs: dir.join("rootfs"),
        key,
        ..openstack
    })
}

/// Reads the secrets of the OpenStack layer in `dir`.
fn read_secrets(dir: &Path) -> Result<Secrets> {
    let secrets_path = dir.join("secrets.json");
    let text =
        userinput::file::read_to_string(&secrets_path, userinput::file::FileKind::TESTBED_STATE)?;
    // The file holds passwords and serde's message may quote a value: say where, never what.
    let secrets: Secrets = serde_json::from_str(&text).map_err(|e| {
        step_failed(
            "read the image secrets",
            format!(
                "{}:{}:{}: not a valid secrets file",
                secrets_path.display(),
                e.line(),
                e.column()
            ),
        )
    })?;
    Ok(secrets)
}

fn ensure_wheels(cache: &Path, progress: &Progress) -> Result<PathBuf> {
    let dir = cache.join(format!("wheels-{}", wheels_key()));
    if dir.join("wheels/constraints.txt").exists() {
        return Ok(dir);
    }
    run_step(
        progress,
        "download the pinned OpenStack wheels (pip download)",
        |step| {
            let partial = partial_dir(&dir)?;
            let wheels = partial.join("wheels");
            sys::mkdir(&wheels)?;
            let constraints = wheels.join("constraints.txt");
            sys::write_file(&constraints, assets::CONSTRAINTS, 0o644)?;
            // This pip keeps the machine's environment (CA bundle, index settings), which is what makes
            // it work where pip inside the chroot fails TLS; only find-links is dropped, as it points
            // at a directory that may not exist.
            let mut command = std::process::Command::new("/usr/bin/python3");
            command
                .env_remove("PIP_FIND_LINKS")
                .args(["-m", "pip", "download", "-q", "-d"])
                .arg(&wheels)
                .arg("-c")
                .arg(&constraints)
                .args(assets::PIP_PACKAGES)
                .stdin(std::process::Stdio::null());
            run(step.name(), &mut command)?;
            finish_partial(&partial, &dir)?;
            Ok(dir.clone())
        },
    )
}

fn ensure_client(wheels_dir: &Path, progress: &Progress) -> Result<PathBuf> {
    let client = wheels_dir.join("client");
    if client.join(".complete").exists() {
        return Ok(client);
    }
    run_step(
        progress,
        "install the openstack client venv (offline)",
        |step| {
            // A venv records its own path in its scripts, so it is built in place; the marker file
            // tells a finished one from an interrupted one.
            let _ = std::fs::remove_dir_all(&client);
            run(
                step.name(),
                clean_command("/usr/bin/python3")
                    .args(["-m", "venv"])
                    .arg(&client),
            )?;
            let wheels = wheels_dir.join("wheels");
            run(
                step.name(),
                clean_command(client.join("bin/pip"))
                    .args(["install", "-q", "--no-index", "--find-links"])
                    .arg(&wheels)
                    .arg("-c")
                    .arg(wheels.join("constraints.txt"))
                    .args(assets::CLIENT_PIP_PACKAGES),
            )?;
            sys::write_file(&client.join(".complete"), "", 0o644)?;
            Ok(client.clone())
        },
    )
}

fn build_openstack(dir: &Path, base: &Path, wheels_dir: &Path, progress: &Progress) -> Result<()> {
    let partial = partial_dir(dir)?;
    let rootfs = partial.join("rootfs");
    run_step(progress, "copy the base rootfs", |step| {
        run(
            step.name(),
            clean_command("cp")
                .args(["-a", "--reflink=auto"])
                .arg(base)
                .arg(&rootfs),
        )
        .map(drop)
    })?;
    run_step(
        progress,
        "install MariaDB and RabbitMQ in the rootfs (apt)",
        |step| apt_install(&rootfs, assets::OPENSTACK_DEBS, step.name()),
    )?;
    run_step(
        progress,
        "install OpenStack into /opt/openstack (offline pip)",
        |step| {
            let mut mounts = Mounts::default();
            mounts.chroot_basics(&rootfs, step.name())?;
            mounts.bind(
                &wheels_dir.join("wheels"),
                &rootfs.join("mnt/wheels"),
                step.name(),
            )?;
            let script = format!(
                "python3 -m venv /opt/openstack && /opt/openstack/bin/pip install -q --no-index \
             --find-links /mnt/wheels -c /mnt/wheels/constraints.txt {}",
                assets::PIP_PACKAGES
                    .iter()
                    .map(|p| format!("'{p}'"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let result = run(
                step.name(),
                clean_command("chroot")
                    .arg(&rootfs)
                    .args(["sh", "-c", &script]),
            );
            drop(mounts);
            let _ = std::fs::remove_dir(rootfs.join("mnt/wheels"));
            result.map(drop)
        },
    )?;
    run_step(progress, "install configs and devstack@ units", |_| {
        let secrets = Secrets::generate();
        for file in assets::openstack_files(&secrets)? {
            sys::write_file(&rootfs.join(&file.path), &file.contents, file.mode)?;
        }
        // State directories the services expect; nova-compute fails without /var/lib/nova
        // ("Unable to write uuid to /var/lib/nova/compute_id").
        for dir in assets::STATE_DIRS {
            sys::mkdir(&rootfs.join(dir))?;
        }
        let json = serde_json::to_string_pretty(&secrets).expect("secrets serialize");
        sys::write_file(&partial.join("secrets.json"), &json, 0o600)?;
        finish_partial(&partial, dir)
    })
}

/// Installs Debian `packages` into `rootfs` with apt in a chroot, without starting services.
fn apt_install(rootfs: &Path, packages: &[&str], step: &str) -> Result<()> {
    let mut mounts = Mounts::default();
    mounts.chroot_basics(rootfs, step)?;
    // apt needs a resolver and must not start services inside the chroot.
    let resolv = rootfs.join("etc/resolv.conf");
    let _ = std::fs::remove_file(&resolv);
    std::fs::copy("/etc/resolv.conf", &resolv).map_err(io_at(&resolv))?;
    let policy = rootfs.join("usr/sbin/policy-rc.d");
    sys::write_file(&policy, "#!/bin/sh\nexit 101\n", 0o755)?;
    let script = format!(
        "apt-get update -q && apt-get install -y -q --no-install-recommends {} && apt-get clean",
        packages.join(" ")
    );
    let result = run(
        step,
        clean_command("chroot")
            .arg(rootfs)
            .args(["sh", "-c", &script])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    let _ = std::fs::remove_file(&policy);
    let _ = std::fs::remove_file(&resolv);
    drop(mounts);
    result.map(drop)
}

/// Mounts made for a chroot, unmounted in reverse order when dropped (also on error paths).
#[derive(Default)]
struct Mounts(Vec<PathBuf>);

impl Mounts {
    fn chroot_basics(&mut self, rootfs: &Path, step: &str) -> Result<()> {
        self.mount(&["-t", "proc", "proc"], &rootfs.join("proc"), step)?;
        self.mount(&["-t", "sysfs", "sysfs"], &rootfs.join("sys"), step)?;
        self.bind(Path::new("/dev"), &rootfs.join("dev"), step)?;
        self.bind(Path::new("/dev/pts"), &rootfs.join("dev/pts"), step)
    }

    fn bind(&mut self, from: &Path, to: &Path, step: &str) -> Result<()> {
        let from = from.to_string_lossy().into_owned();
        self.mount(&["--bind", &from], to, step)
    }

    fn mount(&mut self, args: &[&str], target: &Path, step: &str) -> Result<()> {
        sys::mkdir(target)?;
        run(step, clean_command("mount").args(args).arg(target))?;
        self.0.push(target.to_path_buf());
        Ok(())
    }
}

impl Drop for Mounts {
    fn drop(&mut self) {
        for target in self.0.iter().rev() {
            if !run_quiet(clean_command("umount").arg(target)) {
                run_quiet(clean_command("umount").arg("-l").arg(target));
            }
        }
    }
}

/// A fresh `.partial` directory beside `dir` (a leftover from an interrupted build is removed).
fn partial_dir(dir: &Path) -> Result<PathBuf> {
    let partial = dir.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(io_at(&partial))?;
    }
    sys::mkdir(&partial)?;
    Ok(partial)
}

fn finish_partial(partial: &Path, dir: &Path) -> Result<()> {
    std::fs::rename(partial, dir).map_err(io_at(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_keys_are_stable_and_distinct() {
        assert_eq!(openstack_key(), openstack_key());
        assert_ne!(openstack_key(), base_key());
        assert_ne!(base_key(), wheels_key());
    }

    /// Regression (CI run of 2026-11-28): a developer's `testbed up` and CI's, building the same
    /// missing layer at once, removed each other's `.partial` directory. The cache lock makes the
    /// second builder wait.
    #[test]
    fn a_second_builder_waits_for_the_cache_lock() {
        let cache = tempfile::tempdir().unwrap();
        let progress = Progress::new(true);
        let held = lock_cache(cache.path(), &progress).unwrap();
        let other = std::fs::File::open(cache.path().join(".lock")).unwrap();
        assert!(matches!(
            other.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(held);
        other
            .try_lock()
            .expect("the lock is free once the first builder is done");
    }
}
