//! Human-readable quantities (durations, sizes, rates, percentages) and the strictly validated names
//! that may reach a remote command line (units, interfaces, paths, processes, SQL identifiers).
//!
//! Names are validated here, at the edge, against allow-list patterns. The injector still quotes
//! every argument, but a name that passed these checks cannot contain shell metacharacters, option
//! prefixes or path traversal, so even a quoting mistake cannot turn it into a command.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::diag::{excerpt, quoted};

/// Parses a human duration: `30s`, `2m`, `1h30m`, `250ms`, `1.5s`. A bare number is refused
/// because its unit would be a guess.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("empty duration; write e.g. 30s, 2m or 500ms".into());
    }
    if let Some(positive) = trimmed.strip_prefix('-') {
        return Err(format!(
            "invalid duration {}: a duration cannot be negative; write e.g. {}",
            quoted(trimmed),
            excerpt(positive.trim_start())
        ));
    }
    if trimmed.chars().all(|c| c.is_ascii_digit() || c == '.') {
        let number = excerpt(trimmed);
        return Err(format!(
            "duration {} has no unit; write e.g. {number}s or {number}ms",
            quoted(trimmed)
        ));
    }
    let mut total = 0f64;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_end == 0 {
            return Err(format!(
                "invalid duration {trimmed}: expected a number before {rest}",
                trimmed = quoted(trimmed),
                rest = quoted(rest)
            ));
        }
        let number: f64 = rest[..number_end].parse().map_err(|_| {
            format!(
                "invalid duration {trimmed}: bad number {}",
                quoted(&rest[..number_end]),
                trimmed = quoted(trimmed)
            )
        })?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = rest[..unit_end].trim();
        rest = &rest[unit_end..];
        let seconds_per_unit = match unit {
            "ms" => 0.001,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => {
                return Err(format!(
                    "invalid duration {trimmed}: unknown unit {unit}; use ms, s, m, h or d",
                    trimmed = quoted(trimmed),
                    unit = quoted(unit)
                ));
            }
        };
        total += number * seconds_per_unit;
    }
    if !total.is_finite() || total > 366.0 * 86400.0 {
        return Err(format!(
            "duration {trimmed} is too long (more than a year)",
            trimmed = quoted(trimmed)
        ));
    }
    Ok(Duration::from_secs_f64(total))
}

/// Parses a signed offset such as `+2h`, `-30m` or `90s` into whole seconds.
pub fn parse_signed_duration(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    let (sign, body) = match trimmed.strip_prefix('-') {
        Some(body) => (-1, body),
        None => (1, trimmed.strip_prefix('+').unwrap_or(trimmed)),
    };
    let duration = parse_duration(body)?;
    Ok(sign * duration.as_secs() as i64)
}

/// Formats a duration the way campaigns write them (`1m30s`, `250ms`).
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    if !millis.is_multiple_of(1000) {
        return format!("{millis}ms");
    }
    let mut seconds = duration.as_secs();
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60)] {
        if seconds >= size {
            out.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    if seconds > 0 || out.is_empty() {
        out.push_str(&format!("{seconds}s"));
    }
    out
}

/// Serde helpers that write a [`Duration`] in the campaign's human form.
pub mod duration_serde {
    use std::time::Duration;

    use serde::Serializer;

    /// Serializes as e.g. `"1m30s"`.
    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_duration(*duration))
    }
}

/// A byte count, parsed from `512MiB`, `1GB`, `4096` (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Bytes(pub u64);

impl Bytes {
    /// Parses a size with an optional unit (B, K/KB/KiB, M/MB/MiB, G/GB/GiB, T/TB/TiB).
    pub fn parse(text: &str) -> Result<Bytes, String> {
        let trimmed = text.trim();
        let number_end = trimmed
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(trimmed.len());
        if number_end == 0 {
            return Err(format!(
                "invalid size {trimmed}; write e.g. 512MiB or 2GB",
                trimmed = quoted(trimmed)
            ));
        }
        let number: f64 = trimmed[..number_end]
            .parse()
            .map_err(|_| format!("invalid size {trimmed}", trimmed = quoted(trimmed)))?;
        let multiplier: f64 = match trimmed[number_end..].trim() {
            "" | "B" => 1.0,
            "K" | "KiB" => 1024.0,
            "KB" | "kB" => 1000.0,
            "M" | "MiB" => 1024.0 * 1024.0,
            "MB" => 1e6,
            "G" | "GiB" => 1024.0 * 1024.0 * 1024.0,
            "GB" => 1e9,
            "T" | "TiB" => 1024f64.powi(4),
            "TB" => 1e12,
            unit => {
                return Err(format!(
                    "invalid size {trimmed}: unknown unit {unit}; use B, KiB, MiB, GiB, TiB (or KB, MB, GB, TB)",
                    trimmed = quoted(trimmed),
                    unit = quoted(unit)
                ));
            }
        };
        let bytes = number * multiplier;
        if !bytes.is_finite() || bytes >= u64::MAX as f64 {
            return Err(format!(
                "size {trimmed} is too large",
                trimmed = quoted(trimmed)
            ));
        }
        Ok(Bytes(bytes.round() as u64))
    }
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u64); 4] = [
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        for (unit, size) in UNITS {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

/// Parses a network rate such as `1mbit`, `512kbit`, `10mbps` into bits per second (tc's units).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let trimmed = text.trim().to_ascii_lowercase();
    let number_end = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    if number_end == 0 {
        return Err(format!(
            "invalid rate {text}; write e.g. 1mbit or 512kbit",
            text = quoted(text)
        ));
    }
    let number: f64 = trimmed[..number_end]
        .parse()
        .map_err(|_| format!("invalid rate {text}", text = quoted(text)))?;
    let bits_per_unit: f64 = match &trimmed[number_end..] {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        "gbps" => 8e9,
        unit => {
            return Err(format!(
                "invalid rate {text}: unknown unit {unit}; use bit, kbit, mbit, gbit (or bps, kbps, mbps, gbps for bytes)",
                text = quoted(text),
                unit = quoted(unit)
            ));
        }
    };
    let rate = number * bits_per_unit;
    // tc takes rates in whole bytes per second: below 8bit it has no rate at all.
    if !(8.0..1e12).contains(&rate) {
        return Err(format!(
            "rate {text} is out of range (8bit to 1000gbit; tc shapes in whole bytes per second)",
            text = quoted(text)
        ));
    }
    Ok(rate.round() as u64)
}

/// A percentage in `0..=100`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct Percent(f64);

impl Percent {
    /// Checks the range.
    pub fn new(value: f64) -> Result<Percent, String> {
        if value.is_finite() && (0.0..=100.0).contains(&value) {
            Ok(Percent(value))
        } else {
            Err(format!(
                "percentage {value} is out of range; it must be within 0..=100"
            ))
        }
    }

    /// The value in `0..=100`.
    pub fn get(self) -> f64 {
        self.0
    }
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:expr, $rule:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates the name against its allow-list pattern.
            pub fn new(text: &str) -> Result<$name, String> {
                let check: fn(&str) -> bool = $check;
                if check(text) {
                    Ok($name(text.to_owned()))
                } else {
                    Err(format!(concat!("invalid ", $what, " {}: ", $rule), quoted(text)))
                }
            }

            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

validated_name!(
    /// A systemd unit name such as `devstack@n-cond` or `rabbitmq-server.service`.
    UnitName,
    "unit name",
    |s| !s.is_empty()
        && s.len() <= 255
        && !s.starts_with(['-', '.'])
        && s.chars().all(|c| is_name_char(c) || matches!(c, '@' | ':' | '\\')),
    "use letters, digits and _ - . @ : (not starting with - or .)"
);

validated_name!(
    /// A container name (Docker, Podman or LXC), e.g. `nova_conductor` or
    /// `infra1_nova_api_container-1a2b3c4d`.
    ContainerName,
    "container name",
    |s| !s.is_empty()
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(is_name_char),
    "use at most 128 letters, digits and _ . - starting with a letter or digit"
);

validated_name!(
    /// A RabbitMQ virtual host, e.g. `/nova` or `/`.
    VhostName,
    "vhost",
    |s| !s.is_empty()
        && s.len() <= 255
        && !s.starts_with(['-', '.'])
        && s.chars().all(|c| is_name_char(c) || c == '/'),
    "use letters, digits and _ - . / (not starting with - or .)"
);

validated_name!(
    /// A network interface name (at most 15 characters, as the kernel allows).
    InterfaceName,
    "interface name",
    |s| !s.is_empty() && s.len() <= 15 && !s.starts_with(['-', '.']) && s.chars().all(is_name_char),
    "use at most 15 letters, digits, _ - . (not starting with - or .)"
);

validated_name!(
    /// An exact process name (`comm`), as `pgrep -x` matches it.
    ProcessName,
    "process name",
    |s| !s.is_empty()
        && s.len() <= 64
        && !s.starts_with(['-', '.'])
        && s.chars().all(|c| is_name_char(c) || matches!(c, ':' | '@' | '+')),
    "use letters, digits and _ - . : @ + (not starting with - or .)"
);

validated_name!(
    /// An absolute path without `..` components or unusual characters.
    PathName,
    "path",
    |s| s.starts_with('/')
        && s.len() <= 4096
        && s.chars().all(|c| is_name_char(c) || matches!(c, '/' | '@' | '+'))
        && !s.split('/').any(|part| part == ".." || part == "." || part.starts_with('-')),
    "use an absolute path of letters, digits and _ - . / @ + without . or .. components"
);

validated_name!(
    /// A SQL identifier (database, table or user name).
    SqlIdent,
    "SQL identifier",
    |s| !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
    "use at most 64 letters, digits and _"
);

validated_name!(
    /// A name defined in the campaign: host, role, service, experiment, hypothesis, detector.
    Ident,
    "name",
    |s| !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(is_name_char),
    "use at most 64 letters, digits and _ - . starting with a letter or digit"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("30").unwrap_err().contains("no unit"));
        assert!(parse_duration("3 weeks").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn durations_format_back_to_the_campaign_form() {
        for text in ["30s", "2m", "1h30m", "250ms", "1h0m5s"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(parsed)).unwrap(), parsed);
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn signed_offsets_keep_their_sign() {
        assert_eq!(parse_signed_duration("+2h"), Ok(7200));
        assert_eq!(parse_signed_duration("-30m"), Ok(-1800));
        assert_eq!(parse_signed_duration("90s"), Ok(90));
    }

    #[test]
    fn sizes_and_rates_parse() {
        assert_eq!(Bytes::parse("512MiB"), Ok(Bytes(512 << 20)));
        assert_eq!(Bytes::parse("1GB"), Ok(Bytes(1_000_000_000)));
        assert_eq!(Bytes::parse("4096"), Ok(Bytes(4096)));
        assert!(Bytes::parse("lots").is_err());
        assert_eq!(Bytes(512 << 20).to_string(), "512MiB");
        assert_eq!(parse_rate("1mbit"), Ok(1_000_000));
        assert_eq!(parse_rate("2mbps"), Ok(16_000_000));
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_rate("8bit"), Ok(8));
        assert!(parse_rate("1bit").unwrap_err().contains("8bit to 1000gbit"));
    }

    #[test]
    fn names_refuse_injection_strings() {
        for hostile in [
            "a;rm -rf /",
            "$(reboot)",
            "`id`",
            "-rf",
            "a b",
            "x|y",
            "n\nnew",
            "'q'",
        ] {
            assert!(UnitName::new(hostile).is_err(), "{hostile}");
            assert!(InterfaceName::new(hostile).is_err(), "{hostile}");
            assert!(ProcessName::new(hostile).is_err(), "{hostile}");
            assert!(SqlIdent::new(hostile).is_err(), "{hostile}");
            assert!(Ident::new(hostile).is_err(), "{hostile}");
            assert!(ContainerName::new(hostile).is_err(), "{hostile}");
            assert!(VhostName::new(hostile).is_err(), "{hostile}");
        }
        assert!(ContainerName::new("infra1_nova_api_container-1a2b3c4d").is_ok());
        assert!(ContainerName::new("_x").is_err());
        assert!(VhostName::new("/nova").is_ok());
        assert!(PathName::new("/srv/../etc").is_err());
        assert!(PathName::new("relative/path").is_err());
        assert!(PathName::new("/srv/fill").is_ok());
        assert!(UnitName::new("devstack@n-cond").is_ok());
        assert!(InterfaceName::new("eth0").is_ok());
    }
}
