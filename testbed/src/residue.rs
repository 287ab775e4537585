//! Finding what a testbed instance left on the machine: links, namespaces, mounts, loop devices,
//! cgroups and nspawn processes. `down` uses it to finish its work and to prove it is done; `up`
//! uses it to clear an interrupted run. The parsers are pure; `scan` reads the machine.

use std::path::Path;
use std::process::Command;

use crate::topology::{CGROUP_HIERARCHIES, Topology};

/// One thing left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Residue {
    /// A network interface (bridge or veth end) in the root namespace.
    Link(String),
    /// A named network namespace.
    Netns(String),
    /// A mount point.
    Mount(String),
    /// A loop device and its backing file.
    Loop {
        /// The device, e.g. `/dev/loop3`.
        device: String,
        /// The backing file.
        file: String,
    },
    /// A cgroup directory.
    Cgroup(String),
    /// A process (pid and command line).
    Process {
        /// Its pid.
        pid: i32,
        /// Its command line, for the message.
        cmdline: String,
    },
}

impl std::fmt::Display for Residue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Residue::Link(name) => write!(f, "network interface {name}"),
            Residue::Netns(name) => write!(f, "network namespace {name}"),
            Residue::Mount(path) => write!(f, "mount {path}"),
            Residue::Loop { device, file } => write!(f, "loop device {device} ({file})"),
            Residue::Cgroup(path) => write!(f, "cgroup {path}"),
            Residue::Process { pid, cmdline } => write!(f, "process {pid} ({cmdline})"),
        }
    }
}

/// Interface names from `ip -o link show` that belong to the instance.
pub fn parse_links(text: &str, bridge: &str, veth_prefix: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split(':').nth(1))
        .map(|name| name.trim().split('@').next().unwrap_or("").to_owned())
        .filter(|name| name == bridge || name.starts_with(veth_prefix))
        .collect()
}

/// Namespace names from `ip netns list` with the instance's prefix.
pub fn parse_netns(text: &str, prefix: &str) -> Vec<String> {
    text.lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Mount points from `/proc/self/mountinfo` under `root` or on one of the instance's
/// `/run/netns` files, deepest first (the order to unmount them in).
pub fn parse_mounts(mountinfo: &str, root: &Path, netns_prefix: &str) -> Vec<String> {
    let netns_dir = format!("/run/netns/{netns_prefix}");
    let root = root.to_string_lossy();
    let root_slash = format!("{}/", root.trim_end_matches('/'));
    let mut found: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(unescape_mountinfo)
        .filter(|point| point.starts_with(&root_slash) || point.starts_with(&netns_dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.len()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(field: &str) -> String {
    field
        .replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Loop devices from `losetup -l -n -O NAME,BACK-FILE` whose backing file lies under `root`.
pub fn parse_loops(text: &str, root: &Path) -> Vec<(String, String)> {
    let root_slash = format!("{}/", root.to_string_lossy().trim_end_matches('/'));
    text.lines()
        .filter_map(|line| {
            let mut parts = line.split_whitespace();
            let device = parts.next()?;
            let file = parts.collect::<Vec<_>>().join(" ");
            let file = file.trim_end_matches(" (deleted)").to_owned();
            file.starts_with(&root_slash)
                .then(|| (device.to_owned(), file))
        })
        .collect()
}

/// Whether a command line (NUL-separated, as in `/proc/PID/cmdline`) is one of the instance's
/// nspawn supervisors.
pub fn is_instance_nspawn(cmdline: &[u8], netns_prefix: &str) -> bool {
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_nspawn = args.first().is_some_and(|a| a.ends_with(b"systemd-nspawn"));
    let marker = format!("--network-namespace-path=/run/netns/{netns_prefix}");
    is_nspawn && args.iter().any(|a| a.starts_with(marker.as_bytes()))
}

/// The instance's nspawn supervisor processes, found in `/proc`.
pub fn nspawn_processes(topology: &Topology) -> Vec<(i32, String)> {
    nspawn_processes_with_prefix(&topology.netns_prefix())
}

/// nspawn supervisors whose network namespace name starts with `prefix` (`bfly` matches every
/// instance).
pub fn nspawn_processes_with_prefix(prefix: &str) -> Vec<(i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            is_instance_nspawn(&cmdline, prefix).then(|| {
                let shown = String::from_utf8_lossy(&cmdline).replace('\0', " ");
                (pid, shown.trim().to_owned())
            })
        })
        .collect()
}

/// The instance's cgroup directories that still exist (the per-instance parents).
pub fn cgroups(topology: &Topology) -> Vec<String> {
    CGROUP_HIERARCHIES
        .iter()
        .map(|h| format!("/sys/fs/cgroup/{h}/{}", topology.cgroup_dir()))
        .filter(|p| Path::new(p).exists())
        .collect()
}

fn command_text(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// Everything of the instance (`topology`) and its state directory (`state_root`) still present.
pub fn scan(topology: &Topology, state_root: &Path) -> Vec<Residue> {
    let mut found = Vec::new();
    for (pid, cmdline) in nspawn_processes(topology) {
        found.push(Residue::Process { pid, cmdline });
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for mount in parse_mounts(&mountinfo, state_root, &topology.netns_prefix()) {
        found.push(Residue::Mount(mount));
    }
    let loops = command_text("losetup", &["-l", "-n", "-O", "NAME,BACK-FILE"]);
    for (device, file) in parse_loops(&loops, state_root) {
        found.push(Residue::Loop { device, file });
    }
    let links = command_text("ip", &["-o", "link", "show"]);
    for link in parse_links(&links, &topology.bridge(), &topology.veth_prefix()) {
        found.push(Residue::Link(link));
    }
    let netns = command_text("ip", &["netns", "list"]);
    for ns in parse_netns(&netns, &topology.netns_prefix()) {
        found.push(Residue::Netns(ns));
    }
    for cgroup in cgroups(topology) {
        found.push(Residue::Cgroup(cgroup));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_of_the_instance_are_found() {
        let text = "1: lo: <LOOPBACK,UP> mtu 65536\n\
                    5: bfly0: <BROADCAST,MULTICAST,UP> mtu 1500\n\
                    6: bfv0-controller@if2: <BROADCAST> mtu 1500 master bfly0\n\
                    7: bfv1-controller@if2: <BROADCAST> mtu 1500 master bfly1\n\
                    8: eth0: <BROADCAST> mtu 1500\n";
        assert_eq!(
            parse_links(text, "bfly0", "bfv0-"),
            ["bfly0", "bfv0-controller"]
        );
    }

    #[test]
    fn netns_listing_with_ids_is_parsed() {
        let text = "bfly0-compute1 (id: 1)\nbfly0-controller (id: 0)\nother\n";
        assert_eq!(
            parse_netns(text, "bfly0-"),
            ["bfly0-compute1", "bfly0-controller"]
        );
    }

    #[test]
    fn mounts_under_the_state_dir_come_deepest_first() {
        let text = "36 25 0:32 / /run/netns/bfly0-controller rw shared:5 - nsfs nsfs rw\n\
                    37 25 7:0 / /var/lib/butterfly/testbed/hosts/controller/srv rw - ext4 /dev/loop0 rw\n\
                    38 25 7:1 / /var/lib/butterfly/testbed-other/x rw - ext4 /dev/loop1 rw\n\
                    39 25 0:5 / /var/lib/butterfly/testbed/hosts/a\\040b rw - tmpfs tmpfs rw\n\
                    40 25 0:5 / /var/lib/butterfly/testbed/hosts rw - tmpfs tmpfs rw\n";
        let found = parse_mounts(text, Path::new("/var/lib/butterfly/testbed"), "bfly0-");
        assert_eq!(
            found,
            [
                "/var/lib/butterfly/testbed/hosts/controller/srv",
                "/var/lib/butterfly/testbed/hosts/a b",
                "/var/lib/butterfly/testbed/hosts",
                "/run/netns/bfly0-controller",
            ]
        );
    }

    #[test]
    fn loops_backed_by_state_files_are_found_even_when_deleted() {
        let text = "/dev/loop0 /var/lib/butterfly/testbed/hosts/controller/disk.img\n\
                    /dev/loop1 /srv/other.img\n\
                    /dev/loop2 /var/lib/butterfly/testbed/hosts/compute1/disk.img (deleted)\n";
        let found = parse_loops(text, Path::new("/var/lib/butterfly/testbed"));
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[1].1,
            "/var/lib/butterfly/testbed/hosts/compute1/disk.img"
        );
    }

    #[test]
    fn only_the_instances_nspawn_processes_match() {
        let ours = b"/usr/bin/systemd-nspawn\0-D\0/r\0--network-namespace-path=/run/netns/bfly0-controller\0";
        let other = b"/usr/bin/systemd-nspawn\0-D\0/r\0--network-namespace-path=/run/netns/bfly1-controller\0";
        let shell = b"/bin/sh\0-c\0--network-namespace-path=/run/netns/bfly0-controller\0";
        assert!(is_instance_nspawn(ours, "bfly0-"));
        assert!(!is_instance_nspawn(other, "bfly0-"));
        assert!(!is_instance_nspawn(shell, "bfly0-"));
    }
}
