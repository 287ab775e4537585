//! Number formatting shared by the renderers, so every format shows a value the same way.

/// A value in its unit: ratios as percentages, durations with a readable unit.
pub(crate) fn value(value: f64, unit: &str) -> String {
    match unit {
        "ratio" => percent(value),
        "ms" => millis(value),
        "s" => seconds(value),
        other => format!("{} {other}", trim(value, 2)),
    }
}

/// An optional value in its unit, or an em dash.
pub(crate) fn opt_value(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(|| DASH.to_owned(), |v| value(v, unit))
}

/// Shown where a value is absent.
pub(crate) const DASH: &str = "—";

/// `0.9731` → `97.3 %`; exact 100 % and 0 % without decimals.
pub(crate) fn percent(ratio: f64) -> String {
    let p = ratio * 100.0;
    if p == 100.0 || p == 0.0 {
        format!("{p:.0} %")
    } else {
        format!("{p:.1} %")
    }
}

/// Milliseconds, switching to seconds from 1 s on.
pub(crate) fn millis(ms: f64) -> String {
    if ms >= 1000.0 {
        seconds(ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

/// Seconds with one decimal, or minutes and seconds from 2 minutes on.
pub(crate) fn seconds(s: f64) -> String {
    if s >= 120.0 {
        let whole = s.round() as i64;
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{s:.1} s")
    }
}

/// A score in `0..=1` with two decimals, or an em dash.
pub(crate) fn score(v: Option<f64>) -> String {
    v.map_or_else(|| DASH.to_owned(), |v| format!("{v:.2}"))
}

/// A number with at most `decimals` decimals and no trailing zeros.
pub(crate) fn trim(v: f64, decimals: usize) -> String {
    let text = format!("{v:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// A signed difference in a unit (`+1.2 s`, `−3.4 %`), for comparisons.
pub(crate) fn delta(d: f64, unit: &str) -> String {
    let sign = if d > 0.0 {
        "+"
    } else if d < 0.0 {
        "−"
    } else {
        "±"
    };
    let magnitude = match unit {
        "ratio" => format!("{:.1} pp", d.abs() * 100.0),
        "score" => format!("{:.2}", d.abs()),
        "per_hour" => format!("{:.1}/h", d.abs()),
        _ => value(d.abs(), unit),
    };
    format!("{sign}{magnitude}")
}

/// Where a fault was applied: `nova-conductor on ctl`, or its hosts.
pub fn fault_target(fault: &crate::model::Fault) -> String {
    match &fault.target.service {
        Some(service) => format!("{service} on {}", fault.target.hosts.join(", ")),
        None => fault.target.hosts.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_naturally() {
        assert_eq!(value(0.9731, "ratio"), "97.3 %");
        assert_eq!(value(1.0, "ratio"), "100 %");
        assert_eq!(value(234.4, "ms"), "234 ms");
        assert_eq!(value(1234.4, "ms"), "1.2 s");
        assert_eq!(value(12_500.0, "ms"), "12.5 s");
        assert_eq!(value(185.0, "s"), "3 min 05 s");
        assert_eq!(trim(2.50, 2), "2.5");
        assert_eq!(delta(-0.125, "ratio"), "−12.5 pp");
        assert_eq!(delta(3.0, "s"), "+3.0 s");
    }
}
