//! A fault turned into shell scripts: the five phases every fault kind has, each one script (one
//! round trip), plus the dead-man switch. Plans are pure data: building one touches no host, so
//! `--dry-run` and the journal show exactly what will run.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::host::HostSpec;
use crate::shell;

/// A placeholder in a script replaced by the preflight's output (validated, see [`Captured`]).
pub const PREFLIGHT_CAPTURE: &str = "@PRE@";
/// A placeholder in a verify script replaced by the inject script's output.
pub const INJECT_CAPTURE: &str = "@INJ@";

/// How long a verify (or verify-reverted) may keep failing before it counts as failed; the
/// host polls it for this long inside the inject round trip.
pub const DEFAULT_VERIFY_TIMEOUT: Duration = Duration::from_secs(15);

/// The last stdout line of [`act_then_poll`] when its check held.
pub const CHECK_HELD: &str = "bfly-check: held";
/// The last stdout line of [`act_then_poll`] when its check still failed at the deadline.
pub const CHECK_TIMED_OUT: &str = "bfly-check: timeout";

/// A condition on the host: the script exits 0 when it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What holds when the script succeeds, for messages ("the unit is inactive").
    pub what: String,
    /// The script.
    pub script: String,
}

/// Everything needed to inject, observe and revert one fault on one host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultPlan {
    /// Unique id of this fault instance (8 lowercase hex digits); names every artefact on the host.
    pub id: String,
    /// The fault kind's campaign name.
    pub kind: String,
    /// The host.
    pub host: HostSpec,
    /// The validated fault, as JSON, for the journal and reports.
    pub fault: serde_json::Value,
    /// How long the fault stays in effect.
    pub duration: Duration,
    /// Can the host do it? Its last stdout line is captured into `@PRE@` (e.g. a previous value).
    pub preflight: Check,
    /// Applies the fault. Its last stdout line is captured into `@INJ@` (e.g. killed PIDs).
    pub inject: String,
    /// The fault is in effect (polled until it holds or the verify timeout passes).
    pub verify: Check,
    /// Undoes the fault. Idempotent: running it twice, or on a host without the fault, is harmless.
    /// May use `@PRE@`; never `@INJ@`, because it is journaled before inject runs.
    pub revert: Option<String>,
    /// The host is back to its prior state.
    pub verify_reverted: Option<Check>,
    /// Arm a transient systemd timer on the host that runs the revert after duration + grace.
    pub deadman: bool,
    /// The path of the NFQUEUE delayer this plan needs on the host (uploaded when missing).
    #[serde(default)]
    pub delayer: Option<String>,
    /// A network fault on a host reached over SSH: once it is in effect, a fresh command over
    /// the connection must still answer within a few warm round trips (the fault leaves the
    /// SSH port out, and this checks that it did).
    #[serde(default)]
    pub checks_control_channel: bool,
}

/// A value captured from a host's output, checked to contain only characters that are harmless
/// inside a shell script (digits, letters, `.`, `_`, `-`, `:`, `/`, `@` and single spaces).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Captured(String);

impl Captured {
    /// Validates the last non-empty line of `output`.
    pub fn from_output(output: &str) -> Result<Captured, String> {
        let line = output
            .lines()
            .rev()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .unwrap_or("");
        let allowed = |c: char| {
            c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | '@' | ' ')
        };
        if line.len() <= 512 && line.chars().all(allowed) {
            Ok(Captured(
                line.split_whitespace().collect::<Vec<_>>().join(" "),
            ))
        } else {
            Err(format!("unexpected output from the host: {line:?}"))
        }
    }

    /// The captured text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Replaces the capture placeholders in a script.
pub fn substitute(script: &str, preflight: &Captured, inject: &Captured) -> String {
    script
        .replace(PREFLIGHT_CAPTURE, preflight.as_str())
        .replace(INJECT_CAPTURE, inject.as_str())
}

/// One script that runs `action` and then polls `check` on the host until it holds or `within`
/// passes, so that acting and verifying cost one round trip. The action's stdout is printed
/// first (its last line is what the engine captures into `@INJ@`); in `check`, `@INJ@` reads
/// the same line on the host, which must hold only the characters [`Captured`] allows (else
/// the check does not run and the engine refuses the capture). The last stdout line is
/// [`CHECK_HELD`] or [`CHECK_TIMED_OUT`] (then the check's last stderr is on stderr); a failing
/// action exits with its own status before the check runs.
pub fn act_then_poll(action: &str, check: &str, within: Duration) -> String {
    // Only shell builtins between the action and the first check (no awk, date or ps): on a
    // loaded host every exec costs milliseconds, and this is the injector's hot path.
    let capture = if check.contains(INJECT_CAPTURE) {
        "set -f; bfly_inj=; IFS='\n'; for bfly_l in $bfly_out; do IFS=' \t'; set -- $bfly_l; [ $# -eq 0 ] || bfly_inj=$*; IFS='\n'; done; unset IFS; set +f\n\
         case $bfly_inj in *[!A-Za-z0-9._:/@\\ -]*) exit 0 ;; esac\n\
         [ ${#bfly_inj} -le 512 ] || exit 0\n"
    } else {
        ""
    };
    let check = check.replace(INJECT_CAPTURE, "$bfly_inj");
    let centis = (within.as_millis() / 10).max(1);
    format!(
        "bfly_out=$( {action}\n) || exit $?\n\
         [ -z \"$bfly_out\" ] || printf '%s\\n' \"$bfly_out\"\n\
         {capture}\
         {NOW}; bfly_end=$((bfly_now + {centis}))\n\
         bfly_pause=0.01\n\
         while :; do\n\
         if bfly_err=$({{ {check}\n}} 2>&1 >/dev/null); then echo '{CHECK_HELD}'; exit 0; fi\n\
         {NOW}; [ \"$bfly_now\" -lt \"$bfly_end\" ] || break\n\
         sleep $bfly_pause\n\
         case $bfly_pause in 0.01) bfly_pause=0.02 ;; 0.02) bfly_pause=0.05 ;; 0.05) bfly_pause=0.1 ;; *) bfly_pause=0.2 ;; esac\n\
         done\n\
         printf '%s\\n' \"$bfly_err\" >&2\n\
         echo '{CHECK_TIMED_OUT}'"
    )
}

/// Shell that sets `bfly_now` to the host's uptime in centiseconds, from `/proc/uptime` (a
/// builtin read; the `1` keeps a fraction such as `08` from reading as octal).
const NOW: &str = "read -r bfly_up bfly_idle < /proc/uptime; bfly_now=$((${bfly_up%.*} * 100 + 1${bfly_up#*.} - 100))";

/// How an [`act_then_poll`] script ended, read from its output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// The check held; the action's output (the marker removed).
    Held(String),
    /// The check still failed at the deadline; the action's output.
    TimedOut(String),
    /// No marker: the action's output was refused on the host before the check ran.
    Unchecked(String),
}

impl Polled {
    /// Splits the marker off the script's stdout.
    pub fn from_stdout(stdout: &str) -> Polled {
        let trimmed = stdout.trim_end();
        let (rest, last) = match trimmed.rsplit_once('\n') {
            Some((rest, last)) => (rest, last),
            None => ("", trimmed),
        };
        match last.trim() {
            CHECK_HELD => Polled::Held(rest.to_owned()),
            CHECK_TIMED_OUT => Polled::TimedOut(rest.to_owned()),
            _ => Polled::Unchecked(stdout.to_owned()),
        }
    }
}

/// The dead-man switch's transient unit name for a fault.
pub fn deadman_unit(id: &str) -> String {
    format!("bfly-deadman-{id}")
}

/// The script that arms the dead-man switch: a transient timer that runs `revert` after `after`.
pub fn deadman_arm(id: &str, after: Duration, revert: &str) -> String {
    let seconds = after.as_secs().max(1);
    shell::join(&[
        "systemd-run".to_owned(),
        "--quiet".to_owned(),
        "--collect".to_owned(),
        format!("--unit={}", deadman_unit(id)),
        format!("--on-active={seconds}s"),
        "--timer-property=AccuracySec=1s".to_owned(),
        "/bin/sh".to_owned(),
        "-c".to_owned(),
        revert.to_owned(),
    ])
}

/// The script that disarms the dead-man switch (harmless when it is not armed).
pub fn deadman_disarm(id: &str) -> String {
    let unit = deadman_unit(id);
    format!(
        "{} >/dev/null 2>&1; true",
        shell::join(&["systemctl", "stop", &format!("{unit}.timer")])
    )
}

/// The commands one fault runs on its host, for `--dry-run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DryRun {
    /// The host's name.
    pub host: String,
    /// The fault kind.
    pub kind: String,
    /// `(phase, exact command line as sent)`, in order: preflight, control-rtt, deadman,
    /// inject+verify, control-check, revert+verify (each only when the plan has it).
    pub steps: Vec<(String, String)>,
}

/// The revert round trip: disarm the dead-man switch (when the plan arms one), `revert`, then
/// `verify_reverted` polled on the host ([`act_then_poll`] when there is a check). `None` when
/// there is nothing to run. `revert` and `verify_reverted` are the journaled ones (captures
/// substituted), so that `recover` sends exactly what the runner would have.
pub fn revert_script(
    plan: &FaultPlan,
    revert: Option<&str>,
    verify_reverted: Option<&Check>,
    within: Duration,
) -> Option<String> {
    let action = revert.map(|revert| {
        if plan.deadman {
            format!("{}; {revert}", deadman_disarm(&plan.id))
        } else {
            revert.to_owned()
        }
    });
    match (action, verify_reverted) {
        (Some(action), Some(check)) => Some(act_then_poll(&action, &check.script, within)),
        (Some(action), None) => Some(action),
        (None, Some(check)) => Some(act_then_poll("true", &check.script, within)),
        (None, None) => None,
    }
}

/// The command that measures, and later checks, the control channel's round trip.
pub const CONTROL_CHANNEL_PROBE: &str = "true";

impl FaultPlan {
    /// The inject round trip: inject, then verify polled on the host for up to `verify_timeout`.
    pub fn inject_script(&self, verify_timeout: Duration) -> String {
        act_then_poll(&self.inject, &self.verify.script, verify_timeout)
    }

    /// The exact command lines this plan sends, in order, as the transport sends them (wrapped in
    /// `sh -c`, with `sudo -n` when the host needs it), for the default verify timeout. Captures
    /// appear as their placeholders.
    pub fn dry_run(&self, grace: Duration) -> DryRun {
        let sudo = self.host.sudo;
        let mut steps = vec![(
            "preflight".to_owned(),
            shell::wrap(&self.preflight.script, sudo),
        )];
        if self.checks_control_channel {
            steps.push((
                "control-rtt".to_owned(),
                shell::wrap(CONTROL_CHANNEL_PROBE, sudo),
            ));
        }
        let armed = self.deadman && self.revert.is_some();
        if let (true, Some(revert)) = (armed, &self.revert) {
            steps.push((
                "deadman".to_owned(),
                shell::wrap(&deadman_arm(&self.id, self.duration + grace, revert), sudo),
            ));
        }
        steps.push((
            "inject+verify".to_owned(),
            shell::wrap(&self.inject_script(DEFAULT_VERIFY_TIMEOUT), sudo),
        ));
        if self.checks_control_channel {
            steps.push((
                "control-check".to_owned(),
                shell::wrap(CONTROL_CHANNEL_PROBE, sudo),
            ));
        }
        if let Some(script) = revert_script(
            self,
            self.revert.as_deref(),
            self.verify_reverted.as_ref(),
            DEFAULT_VERIFY_TIMEOUT,
        ) {
            steps.push(("revert+verify".to_owned(), shell::wrap(&script, sudo)));
        }
        DryRun {
            host: self.host.name.clone(),
            kind: self.kind.clone(),
            steps,
        }
    }
}

impl std::fmt::Display for DryRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "# {} on {}", self.kind, self.host)?;
        for (phase, command) in &self.steps {
            writeln!(f, "{phase:>16}: {command}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_refuse_shell_syntax() {
        assert_eq!(
            Captured::from_output("noise\n 123  456 \n\n")
                .unwrap()
                .as_str(),
            "123 456"
        );
        for hostile in [
            "1; reboot",
            "$(id)",
            "`x`",
            "a|b",
            "a&b",
            "'q'",
            "a\"b",
            "x>y",
        ] {
            assert!(Captured::from_output(hostile).is_err(), "{hostile}");
        }
        assert_eq!(Captured::from_output("").unwrap().as_str(), "");
    }

    fn run_sh(script: &str) -> (Option<i32>, String, String) {
        let output = std::process::Command::new("sh")
            .args(["-c", script])
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    #[test]
    fn one_script_acts_then_polls_its_check_with_the_action_output() {
        let dir = tempfile::tempdir().unwrap();
        let flag = dir.path().join("flag");
        let flag = flag.display();
        // The check holds only once a background writer (started by the action) has written
        // the flag, so it is polled, and it reads the action's last line as @INJ@.
        let action =
            format!("echo noise; (sleep 0.3; echo ok > {flag}) >/dev/null 2>&1 & echo ' 41   42 '");
        let check = format!("[ \"$(cat {flag} 2>/dev/null)\" = ok ] && [ \"@INJ@\" = '41 42' ]");
        let (code, stdout, _) = run_sh(&act_then_poll(&action, &check, Duration::from_secs(5)));
        assert_eq!(code, Some(0));
        let Polled::Held(out) = Polled::from_stdout(&stdout) else {
            panic!("not held: {stdout}");
        };
        assert_eq!(Captured::from_output(&out).unwrap().as_str(), "41 42");
    }

    #[test]
    fn a_failing_action_exits_with_its_status_before_any_check() {
        let (code, stdout, stderr) = run_sh(&act_then_poll(
            "echo partial; echo broken >&2; exit 7",
            "echo checked >&2",
            Duration::from_secs(5),
        ));
        assert_eq!(code, Some(7));
        assert!(!stdout.contains("bfly-check"), "{stdout}");
        assert_eq!(stderr.trim(), "broken");
    }

    #[test]
    fn a_check_that_never_holds_is_polled_until_the_deadline_then_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let tries = dir.path().join("tries");
        let (code, stdout, stderr) = run_sh(&act_then_poll(
            "echo 1",
            &format!(
                "echo try >> {}; echo still-there >&2; false",
                tries.display()
            ),
            Duration::from_secs(1),
        ));
        assert_eq!(code, Some(0));
        assert_eq!(Polled::from_stdout(&stdout), Polled::TimedOut("1".into()));
        assert_eq!(stderr.trim(), "still-there");
        let tries = std::fs::read_to_string(tries).unwrap().lines().count();
        assert!(tries > 1, "the check ran {tries} time(s)");
    }

    #[test]
    fn an_action_output_no_capture_may_hold_never_reaches_the_check() {
        for hostile in ["1; touch /tmp/x", "$(id)", "a|b", "x`y`"] {
            let action = format!("printf '%s\\n' {}", shell::quote(hostile));
            let (code, stdout, stderr) = run_sh(&act_then_poll(
                &action,
                "echo ran @INJ@ >&2",
                Duration::from_secs(1),
            ));
            assert_eq!(code, Some(0));
            assert_eq!(
                Polled::from_stdout(&stdout),
                Polled::Unchecked(format!("{hostile}\n"))
            );
            assert!(stderr.is_empty(), "the check ran: {stderr}");
            assert!(Captured::from_output(hostile).is_err());
        }
    }

    #[test]
    fn substitution_fills_both_placeholders() {
        let pre = Captured::from_output("0.4").unwrap();
        let inj = Captured::from_output("42 43").unwrap();
        assert_eq!(substitute("a @PRE@ b @INJ@", &pre, &inj), "a 0.4 b 42 43");
    }
}
