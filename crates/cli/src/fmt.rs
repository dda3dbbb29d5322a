//! Docker's human-readable formats (`hako_docker::format`), and the times the CLI reads in the
//! user's local zone.

pub use hako_docker::format::{command_text, ellipsis, go_quote, human_binary_size, human_size};

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
