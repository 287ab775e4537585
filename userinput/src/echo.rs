//! Showing user values back: short, printable, and with URL passwords as `***`.

/// The most characters of a user value a message shows.
pub const EXCERPT_CHARS: usize = 60;

/// A URL with the password of its user part shown as `***` (`amqp://user:***@host/`), the one way
/// every URL is displayed. A user part without password is shown the same way, so that a message
/// never tells whether a password was given. Text around and between URLs is kept, so this can be
/// applied to a whole line.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(scheme_end) = rest.find("://") {
        let authority_start = scheme_end + 3;
        out.push_str(&rest[..authority_start]);
        let after = &rest[authority_start..];
        let authority_len = after
            .find(|c: char| matches!(c, '/' | '?' | '#' | '"' | '\'' | '`') || c.is_whitespace())
            .unwrap_or(after.len());
        let authority = &after[..authority_len];
        match authority.rsplit_once('@') {
            Some((userinfo, host)) => {
                let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
                out.push_str(user);
                out.push_str(":***@");
                out.push_str(host);
            }
            None => out.push_str(authority),
        }
        rest = &after[authority_len..];
    }
    out.push_str(rest);
    out
}

/// At most [`EXCERPT_CHARS`] characters of `value`, URL passwords redacted and control characters
/// escaped; a cut value ends in `…`.
pub fn excerpt(value: &str) -> String {
    let redacted = redact_url(value);
    let mut out = String::new();
    for (index, c) in redacted.chars().enumerate() {
        if index == EXCERPT_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `value` quoted for a message: `"process-kil"`, or for a long value its excerpt and length,
/// `"aaaa…" (10000 characters)`.
pub fn quoted(value: &str) -> String {
    let length = value.chars().count();
    if length > EXCERPT_CHARS {
        format!("\"{}\" ({length} characters)", excerpt(value))
    } else {
        format!("\"{}\"", excerpt(value))
    }
}

/// A window of at most `width` characters of `line` around the 1-based `column`, URL passwords
/// redacted, with `…` where it was cut. Returns the window and the column within it.
pub fn line_window(line: &str, column: usize, width: usize) -> (String, usize) {
    let column = column.max(1);
    let before: String = line.chars().take(column - 1).collect();
    let redacted_before = redact_url(&before);
    let redacted = redact_url(line);
    let column = redacted_before.chars().count() + 1;
    let chars: Vec<char> = redacted
        .chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect();
    if chars.len() <= width {
        return (chars.into_iter().collect(), column);
    }
    let half = width / 2;
    let start = column
        .saturating_sub(1)
        .saturating_sub(half)
        .min(chars.len() - width);
    let end = (start + width).min(chars.len());
    let mut window = String::new();
    let mut shift = start;
    if start > 0 {
        window.push('…');
        shift = start - 1;
    }
    window.extend(&chars[start..end]);
    if end < chars.len() {
        window.push('…');
    }
    (window, column - shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_password_is_shown_as_stars() {
        assert_eq!(
            redact_url("amqp://butterfly-tracer:S3cretPw@10.0.0.2:5672/"),
            "amqp://butterfly-tracer:***@10.0.0.2:5672/"
        );
        assert_eq!(
            redact_url("url: \"amqps://u:p@h/v\" and postgres://a:b:c@d"),
            "url: \"amqps://u:***@h/v\" and postgres://a:***@d"
        );
    }

    #[test]
    fn a_url_without_user_part_is_kept_and_a_user_part_always_shows_stars() {
        for text in [
            "amqp://10.0.0.2:5672/",
            "http://10.0.0.2:8774/v2.1",
            "no url",
        ] {
            assert_eq!(redact_url(text), text);
        }
        assert_eq!(redact_url("amqp://guest@host/"), "amqp://guest:***@host/");
    }

    #[test]
    fn a_long_value_is_cut_with_its_length() {
        let long = "a".repeat(10_000);
        let shown = quoted(&long);
        assert_eq!(
            shown,
            format!("\"{}…\" (10000 characters)", "a".repeat(EXCERPT_CHARS))
        );
        assert_eq!(quoted("kil"), "\"kil\"");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(excerpt("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
    }

    #[test]
    fn a_long_line_is_windowed_around_the_column() {
        let line = format!("{}X{}", "a".repeat(100), "b".repeat(100));
        let (window, column) = line_window(&line, 101, 40);
        assert_eq!(window.chars().nth(column - 1), Some('X'));
        assert!(window.starts_with('…') && window.ends_with('…'));
        assert!(window.chars().count() <= 42);
        let (short, column) = line_window("kind: kil", 7, 40);
        assert_eq!((short.as_str(), column), ("kind: kil", 7));
    }

    #[test]
    fn a_windowed_line_hides_url_passwords_and_keeps_the_caret_on_its_target() {
        let (window, column) = line_window("url: amqp://u:S3cretPw@h/ x: bad", 30, 80);
        assert!(!window.contains("S3cretPw"));
        assert_eq!(&window[column - 1..], "bad");
    }
}
