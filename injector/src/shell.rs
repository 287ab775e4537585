//! POSIX shell quoting: the single function through which every argument reaches a remote shell.
//!
//! Commands are built as argv (`&[&str]`) and turned into one shell line with [`join`]. Only the
//! fixed shell syntax the catalog writes itself (`&&`, `;`, `$(...)`, `[ ... ]`) is unquoted;
//! every value that came from a campaign goes through [`quote`]. The names were validated by the
//! `scenarios` crate already, so this is the second of two independent defences.

/// Quotes one argument for a POSIX shell.
///
/// Arguments made only of characters that no shell treats specially are returned unchanged, so
/// that dry-run output stays readable; everything else is wrapped in single quotes, with each
/// embedded single quote written as `'\''` (close, escaped quote, reopen). An empty argument
/// becomes `''`.
pub fn quote(argument: &str) -> String {
    let is_plain = |c: char| c.is_ascii_alphanumeric() || "_-./=:@%+,".contains(c);
    if !argument.is_empty() && argument.chars().all(is_plain) {
        return argument.to_owned();
    }
    let mut quoted = String::with_capacity(argument.len() + 2);
    quoted.push('\'');
    for c in argument.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// Joins an argv into one shell command line, quoting every argument.
pub fn join<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|argument| quote(argument.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Wraps a script so that it runs under `sh -c`, optionally through `sudo -n` (never prompting).
///
/// Running every script through an explicit `sh -c` makes the remote login shell (bash, zsh,
/// fish) irrelevant: the script is always POSIX sh.
pub fn wrap(script: &str, sudo: bool) -> String {
    if sudo {
        join(&["sudo", "-n", "sh", "-c", script])
    } else {
        join(&["sh", "-c", script])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn echo_through_sh(argument: &str) -> String {
        let line = format!("printf '%s' {}", quote(argument));
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(&line)
            .output()
            .expect("sh runs");
        assert!(output.status.success(), "sh failed for {line:?}");
        String::from_utf8(output.stdout).expect("utf-8")
    }

    #[test]
    fn plain_words_stay_readable() {
        assert_eq!(quote("eth0"), "eth0");
        assert_eq!(quote("devstack@n-cond"), "devstack@n-cond");
        assert_eq!(quote("/srv/.bfly-fill"), "/srv/.bfly-fill");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn hostile_strings_arrive_as_one_literal_argument() {
        for hostile in [
            "a;rm -rf /",
            "$(reboot)",
            "`id`",
            "x|y",
            "n\nnew",
            "'q'",
            "\\",
            "$HOME",
            "*",
            "a'b\"c",
            "-rf",
        ] {
            assert_eq!(echo_through_sh(hostile), hostile);
        }
    }

    #[test]
    fn wrap_runs_the_script_as_one_argument_of_sh() {
        let wrapped = wrap("echo 'a b' && echo $((1+2))", false);
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(&wrapped)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "a b\n3\n");
        assert!(wrap("true", true).starts_with("sudo -n sh -c "));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]
        /// Law: for any string without NUL, the shell sees exactly that string as one argument.
        #[test]
        fn quoting_round_trips_through_a_real_shell(argument in "[^\u{0}]{0,40}") {
            prop_assert_eq!(echo_through_sh(&argument), argument);
        }

        /// Law: joined argv arrives as the same argv.
        #[test]
        fn join_preserves_argument_boundaries(argv in proptest::collection::vec("[^\u{0}]{0,12}", 1..5)) {
            let line = format!("for a in {}; do printf '<%s>' \"$a\"; done", join(&argv));
            let output = std::process::Command::new("sh").arg("-c").arg(&line).output().unwrap();
            let expected: String = argv.iter().map(|a| format!("<{a}>")).collect();
            prop_assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);
        }
    }
}
