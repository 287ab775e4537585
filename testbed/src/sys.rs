//! Running local tools (`ip`, `mount`, `systemd-nspawn`, `ssh`, …) with errors that carry their output.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result, io_at, step_failed};

/// How many trailing output lines a failure message quotes.
pub(crate) const TAIL_LINES: usize = 15;

/// The last `n` non-empty lines of `text`, joined with newlines.
pub(crate) fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A `Command` with a small, explicit environment. The machine's own settings (pip's find-links
/// and CA bundle variables, pyenv, proxies for other tools) must not leak into chroots and hosts.
pub(crate) fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    command
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LANG", "C.UTF-8")
        .env("HOME", "/root")
        .stdin(Stdio::null());
    command
}

/// Runs `command` to completion and returns its stdout; a non-zero exit becomes a step error
/// quoting the last lines of its stderr and stdout.
pub(crate) fn run(step: &str, command: &mut Command) -> Result<String> {
    let output = output(step, command)?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    Err(step_failed(step, failure_text(command, &output)))
}

/// Runs `command` and returns its output whatever the exit status (only a spawn failure is an error).
pub(crate) fn output(step: &str, command: &mut Command) -> Result<Output> {
    command.output().map_err(|error| {
        step_failed(
            step,
            format!("cannot run {}: {error}", program_name(command)),
        )
    })
}

/// Like [`output`], but calls `on_line` with each stdout line as it arrives (for progress).
pub(crate) fn output_with_lines(
    step: &str,
    command: &mut Command,
    mut on_line: impl FnMut(&str),
) -> Result<Output> {
    use std::io::{BufRead, Read};
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| {
            step_failed(
                step,
                format!("cannot run {}: {error}", program_name(command)),
            )
        })?;
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    // stderr is drained on its own thread so that a chatty stderr cannot block the child.
    let stderr_reader = std::thread::spawn(move || {
        let mut buffer = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buffer);
        buffer
    });
    let mut stdout = Vec::new();
    let reader = std::io::BufReader::new(child.stdout.take().expect("stdout is piped"));
    for line in reader.split(b'\n').map_while(std::result::Result::ok) {
        on_line(&String::from_utf8_lossy(&line));
        stdout.extend_from_slice(&line);
        stdout.push(b'\n');
    }
    let status = child.wait().map_err(|error| {
        step_failed(
            step,
            format!("waiting for {}: {error}", program_name(command)),
        )
    })?;
    let stderr = stderr_reader.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout,
        stderr,
    })
}

/// Runs `command`, ignoring its exit status; used by tear-down, which must go on after a failure.
pub(crate) fn run_quiet(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

/// Describes a failed command: its program, exit status and the tail of what it printed.
pub(crate) fn failure_text(command: &Command, output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut text = format!("{} exited with {}", program_name(command), output.status);
    let err_tail = tail(&stderr, TAIL_LINES);
    let out_tail = tail(&stdout, TAIL_LINES.saturating_sub(err_tail.lines().count()));
    for part in [out_tail, err_tail] {
        if !part.is_empty() {
            text.push_str("; last lines:\n");
            text.push_str(&part);
        }
    }
    text
}

fn program_name(command: &Command) -> String {
    command.get_program().to_string_lossy().into_owned()
}

/// Whether `program` is found on the clean PATH.
pub(crate) fn has_program(program: &str) -> bool {
    [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .iter()
    .any(|dir| Path::new(dir).join(program).is_file())
}

/// Writes `contents` to `path` with `mode`, creating parent directories.
pub(crate) fn write_file(path: &Path, contents: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_at(parent))?;
    }
    std::fs::write(path, contents).map_err(io_at(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_at(path))
}

/// Creates a directory and its parents.
pub(crate) fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(io_at(path))
}

/// Whether a process with this pid is running. A zombie counts as gone: when `up` ran in this
/// same process (tests, a library caller), the hosts' nspawn supervisors are our children and
/// stay zombies until reaped, so this also reaps them when it can.
pub(crate) fn pid_alive(pid: i32) -> bool {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let _ = waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG));
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => process_state(&stat) != Some('Z'),
        Err(_) => false,
    }
}

/// The state letter from a `/proc/PID/stat` line (after the parenthesised command name, which
/// may itself contain spaces and parentheses).
fn process_state(stat: &str) -> Option<char> {
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Sends `signal` to `pid`, ignoring a process that is already gone.
pub(crate) fn signal(pid: i32, signal: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal);
}

/// The direct children of `pid` (from `/proc/PID/task/*/children`).
pub(crate) fn children(pid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return found;
    };
    for task in tasks.flatten() {
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            found.extend(
                text.split_whitespace()
                    .filter_map(|p| p.parse::<i32>().ok()),
            );
        }
    }
    found
}

/// Checks that we are root and that Linux namespaces are available, with one message naming
/// everything that is missing.
pub(crate) fn preflight(tools: &[&str]) -> Result<()> {
    let mut missing = Vec::new();
    if !nix::unistd::Uid::effective().is_root() {
        missing.push("root privileges (run as root, e.g. with sudo)".to_owned());
    }
    for ns in ["net", "pid", "mnt", "uts"] {
        if !Path::new(&format!("/proc/self/ns/{ns}")).exists() {
            missing.push(format!("Linux {ns} namespaces (/proc/self/ns/{ns})"));
        }
    }
    for tool in tools {
        if !has_program(tool) {
            missing.push(format!("the `{tool}` program ({})", package_of(tool)));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Error::Environment(format!(
            "missing {}",
            missing.join(", ")
        )))
    }
}

/// The Debian package that ships `tool`, for the error message.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "systemd-nspawn" => "apt-get install systemd-container",
        "debootstrap" => "apt-get install debootstrap",
        "ssh" | "ssh-keygen" => "apt-get install openssh-client",
        "mkfs.ext4" => "apt-get install e2fsprogs",
        "ip" => "apt-get install iproute2",
        "losetup" | "mount" | "umount" | "nsenter" => "apt-get install util-linux mount",
        "python3" => "apt-get install python3 python3-venv python3-pip",
        _ => "install it with apt-get",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_streamed_and_both_outputs_kept() {
        let mut seen = Vec::new();
        let mut command = clean_command("/bin/sh");
        command.args(["-c", "echo one; echo oops >&2; echo two; exit 3"]);
        let output = output_with_lines("t", &mut command, |l| seen.push(l.to_owned())).unwrap();
        assert_eq!(seen, ["one", "two"]);
        assert_eq!(output.stdout, b"one\ntwo\n");
        assert_eq!(output.stderr, b"oops\n");
        assert_eq!(output.status.code(), Some(3));
        assert!(failure_text(&command, &output).contains("oops"));
    }

    #[test]
    fn process_state_is_read_after_the_command_name() {
        assert_eq!(process_state("42 (sd (x) y) Z 1 42"), Some('Z'));
        assert_eq!(process_state("7 (bash) S 1 7 7"), Some('S'));
        assert_eq!(process_state("garbage"), None);
    }

    #[test]
    fn our_own_process_is_alive_and_a_reaped_child_is_not() {
        assert!(pid_alive(std::process::id() as i32));
        let mut child = Command::new("/bin/true").spawn().unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(200));
        // The exited child is a zombie until reaped: it must not count as running.
        assert!(!pid_alive(pid));
        // pid_alive reaped it already; this wait only finds that out.
        let _ = child.wait();
    }

    #[test]
    fn tail_keeps_the_last_non_empty_lines() {
        assert_eq!(tail("a\n\nb\nc\n\n", 2), "b\nc");
        assert_eq!(tail("only", 5), "only");
        assert_eq!(tail("", 3), "");
    }
}
