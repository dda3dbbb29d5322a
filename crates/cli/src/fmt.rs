//! Docker's human-readable formats, so `hako images` and `hako ps` read like `docker`'s.

use std::time::Duration;

/// Docker's `HumanDuration` ("Less than a second", "About a minute", "3 weeks").
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if d.as_secs_f64() < 1.0 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (d.as_secs_f64() / 3600.0).round() as u64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", seconds / 3600 / 24 / 365)
}

/// Docker's decimal `HumanSize` with three significant digits ("4.26MB", "125MB", "0B"), as
/// `images` and `ps --size` print sizes.
pub fn human_size(bytes: u64) -> String {
    hako_base::size::human_size_with_precision(bytes, 3)
}

/// Docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    let mut out: String = chars[..max - 1].iter().collect();
    out.push('…');
    out
}

/// Go's `strconv.Quote` for the printable strings container commands usually are.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_docker() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(5)), "5 seconds");
        assert_eq!(human_duration(s(61)), "About a minute");
        assert_eq!(human_duration(s(150)), "2 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86400)), "3 days");
        assert_eq!(human_duration(s(21 * 86400)), "3 weeks");
        assert_eq!(human_duration(s(90 * 86400)), "3 months");
        assert_eq!(human_duration(s(800 * 86400)), "2 years");
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_234), "4.26MB");
        assert_eq!(human_size(125_000_000), "125MB");
        assert_eq!(human_size(1_200_000_000), "1.2GB");
        assert_eq!(human_size(12_340), "12.3kB");
        assert_eq!(human_binary_size(64 << 20), "64MiB");
        assert_eq!(human_binary_size(2_462_000), "2.348MiB");
        assert_eq!(human_binary_size(512), "512B");
    }

    #[test]
    fn commands_like_docker() {
        assert_eq!(ellipsis("sh -c 'exit 3'", 20), "sh -c 'exit 3'");
        assert_eq!(
            ellipsis("sh -c 'sleep 1000 && echo done'", 20),
            "sh -c 'sleep 1000 &…"
        );
        assert_eq!(go_quote("sh -c \"x\""), "\"sh -c \\\"x\\\"\"");
    }
}

/// Docker's `--since`/`--until`/`until=` times ([`hako_base::time::parse_timestamp`]), in
/// nanoseconds since the epoch; a time without a zone is the user's local time, as Docker's
/// client reads it.
pub fn parse_time(s: &str, now: i64) -> Result<i64, hako_base::time::Error> {
    hako_base::time::parse_timestamp(s, now, local_offset(now.div_euclid(1_000_000_000)))
}

/// Seconds east of UTC of the local time zone (`TZ`, `/etc/localtime`) at Unix time `secs`.
pub fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; localtime_r is the reentrant variant.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return 0;
    }
    tm.tm_gmtoff
}

/// Parses the RFC 3339 UTC timestamps image configs carry (`2026-11-22T18:30:00.5Z`, or with a
/// `+hh:mm` offset). Returns `None` for anything else rather than guessing.
pub fn parse_rfc3339(s: &str) -> Option<std::time::SystemTime> {
    // Times before the epoch are not an image's.
    let nanos = hako_base::time::parse_rfc3339(s).ok().filter(|n| *n >= 0)?;
    Some(hako_base::time::system_time(nanos))
}

#[cfg(test)]
mod rfc3339_tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets() {
        let t = |s| parse_rfc3339(s).map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap());
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(Duration::ZERO));
        assert_eq!(
            t("2000-03-01T00:00:01.5Z"),
            Some(Duration::new(951_868_801, 500_000_000))
        );
        assert_eq!(
            t("2000-03-01T09:00:01+09:00"),
            Some(Duration::new(951_868_801, 0))
        );
        assert_eq!(t("not a time"), None);
    }
}

/// Docker's `BytesSize` (binary units) used by `stats`: "1.5MiB", "7.63GiB".
pub fn human_binary_size(bytes: u64) -> String {
    hako_base::size::bytes_size(bytes)
}
