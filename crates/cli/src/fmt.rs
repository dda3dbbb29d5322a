//! Docker's human-readable formats (`hako_docker::format`), and the times the CLI reads in the
//! user's local zone.

pub use hako_docker::format::{ellipsis, go_quote, human_binary_size, human_duration, human_size};

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
    use std::time::Duration;

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
