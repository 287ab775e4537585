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
}

/// A value captured from a host's output, checked to contain only characters that are harmless
/// inside a shell script (digits, letters, `.`, `_`, `-`, `:`, `/` and single spaces).
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
        let allowed =
            |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '/' | ' ');
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
    /// `(phase, exact command line as sent)`, in order: preflight, deadman, inject, verify,
    /// revert, verify-reverted, disarm.
    pub steps: Vec<(String, String)>,
}

impl FaultPlan {
    /// The exact command lines this plan sends, in order, as the transport sends them (wrapped in
    /// `sh -c`, with `sudo -n` when the host needs it). Captures appear as their placeholders.
    pub fn dry_run(&self, grace: Duration) -> DryRun {
        let sudo = self.host.sudo;
        let mut steps = vec![(
            "preflight".to_owned(),
            shell::wrap(&self.preflight.script, sudo),
        )];
        let armed = self.deadman && self.revert.is_some();
        if let (true, Some(revert)) = (armed, &self.revert) {
            steps.push((
                "deadman".to_owned(),
                shell::wrap(&deadman_arm(&self.id, self.duration + grace, revert), sudo),
            ));
        }
        steps.push(("inject".to_owned(), shell::wrap(&self.inject, sudo)));
        steps.push(("verify".to_owned(), shell::wrap(&self.verify.script, sudo)));
        if let Some(revert) = &self.revert {
            steps.push(("revert".to_owned(), shell::wrap(revert, sudo)));
        }
        if let Some(check) = &self.verify_reverted {
            steps.push((
                "verify-reverted".to_owned(),
                shell::wrap(&check.script, sudo),
            ));
        }
        if armed {
            steps.push((
                "disarm".to_owned(),
                shell::wrap(&deadman_disarm(&self.id), sudo),
            ));
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

    #[test]
    fn substitution_fills_both_placeholders() {
        let pre = Captured::from_output("0.4").unwrap();
        let inj = Captured::from_output("42 43").unwrap();
        assert_eq!(substitute("a @PRE@ b @INJ@", &pre, &inj), "a 0.4 b 42 43");
    }
}
