//! Go's `time.ParseDuration` syntax, which runc's flags and Docker's filters and HEALTHCHECK
//! options all take: one or more `<number><unit>` (`1h30m`, `1.5s`, `500ms`), or a bare `0`.

use std::time::Duration;

/// Parses a Go duration; `None` when `s` is not one, or is negative (no caller means "before").
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let number: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_secs = match &rest[..u] {
            "ns" => 1e-9,
            // Go accepts both the micro sign and the Greek mu.
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total = total.checked_add(Duration::try_from_secs_f64(number * unit_secs).ok()?)?;
        rest = &rest[u..];
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration as p;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(p("0"), Some(Duration::ZERO));
        assert_eq!(p("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(p("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(p("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(p("2us"), Some(Duration::from_micros(2)));
        assert_eq!(p("3µs"), Some(Duration::from_micros(3)));
        assert_eq!(p("10ns"), Some(Duration::from_nanos(10)));
        assert_eq!(p("+5m"), Some(Duration::from_secs(300)));
        for bad in ["", "5", "5x", "h", "-1s", "1..2s", "1d"] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
