//! Run labels (`release=2025.1`, `deployer=kolla`, `build=abc123`): what makes a key and a value.
//!
//! One rule for the campaign's `output.labels`, `butterfly run --label` and
//! `butterfly history import --label`, because the history compares runs by their labels: a label
//! that one path accepted and another refused could never be matched.

/// Longest label key.
pub const MAX_KEY: usize = 64;
/// Longest label value.
pub const MAX_VALUE: usize = 256;

/// Checks a label key: 1 to 64 of `a-z 0-9 _ . -`, starting with a letter.
pub fn check_key(key: &str) -> Result<(), String> {
    let valid = key.len() <= MAX_KEY
        && key.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "label key {} must be 1 to {MAX_KEY} of a-z, 0-9, `_`, `.`, `-`, starting with a letter",
            crate::diag::quoted(key)
        ))
    }
}

/// Checks a label value: 1 to 256 characters, none of them a control character.
pub fn check_value(key: &str, value: &str) -> Result<(), String> {
    if value.is_empty() || value.chars().count() > MAX_VALUE || value.chars().any(char::is_control)
    {
        Err(format!(
            "the value of label {} must be 1 to {MAX_VALUE} characters without control characters",
            crate::diag::quoted(key)
        ))
    } else {
        Ok(())
    }
}

/// Parses `KEY=VALUE` (the command-line form) and checks both sides.
pub fn parse(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("label {} is not KEY=VALUE", crate::diag::quoted(text)))?;
    check_key(key)?;
    check_value(key, value)?;
    Ok((key.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_labels_parse() {
        assert_eq!(
            parse("release=2025.1").unwrap(),
            ("release".into(), "2025.1".into())
        );
        assert_eq!(
            parse("build=a=b").unwrap(),
            ("build".into(), "a=b".into()),
            "the value may hold `=`"
        );
    }

    #[test]
    fn malformed_labels_are_refused_with_the_rule() {
        for (text, needle) in [
            ("release", "KEY=VALUE"),
            ("=x", "starting with a letter"),
            ("Release=x", "a-z"),
            ("9a=x", "starting with a letter"),
            ("release=", "1 to 256"),
            ("release=a\nb", "control"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.contains(needle), "{text}: {error}");
        }
        assert!(parse(&format!("{}=x", "k".repeat(65))).is_err());
        assert!(parse(&format!("k={}", "v".repeat(257))).is_err());
    }
}
