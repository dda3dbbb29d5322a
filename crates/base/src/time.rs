//! Calendar dates and RFC 3339, without a date crate: times in hako are nanoseconds since the
//! Unix epoch (`i64`, UTC), printed and parsed as Docker does.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

const NANOS: i64 = 1_000_000_000;

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Proleptic Gregorian year (may be ≤ 0).
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59.
    pub second: u32,
}

/// The UTC date and time of a Unix time in seconds. Howard Hinnant's `civil_from_days`.
pub fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400) as u32;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    Civil {
        year: yoe + era * 400 + i64::from(month <= 2),
        month,
        day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`days_from_civil`); `month` and `day`
/// are not checked.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Nanoseconds since the Unix epoch now; 0 if the clock is before 1970.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The time `nanos` (since the epoch) as a `SystemTime`.
pub fn system_time(nanos: i64) -> SystemTime {
    if nanos >= 0 {
        UNIX_EPOCH + std::time::Duration::from_nanos(nanos as u64)
    } else {
        UNIX_EPOCH - std::time::Duration::from_nanos(nanos.unsigned_abs())
    }
}

/// Nanoseconds since the epoch of a `SystemTime`, saturating.
pub fn nanos_of(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

struct Rfc3339 {
    nanos: i64,
    trim: bool,
}

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = civil(self.nanos.div_euclid(NANOS));
        let sub = self.nanos.rem_euclid(NANOS);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            c.year, c.month, c.day, c.hour, c.minute, c.second
        )?;
        if !self.trim {
            write!(f, ".{sub:09}")?;
        } else if sub > 0 {
            let mut digits = 9;
            let mut v = sub;
            while v % 10 == 0 {
                v /= 10;
                digits -= 1;
            }
            write!(f, ".{v:0digits$}")?;
        }
        f.write_str("Z")
    }
}

/// RFC 3339 in UTC with all nine digits of the fraction, as Docker prints container times
/// (`2024-05-01T10:00:00.500000000Z`).
pub fn rfc3339(nanos: i64) -> String {
    Rfc3339 { nanos, trim: false }.to_string()
}

/// Go's `time.RFC3339Nano` in UTC: the fraction's trailing zeros dropped, and no fraction at
/// all on a whole second, as Docker writes image configs (`2024-05-01T10:00:00.5Z`).
pub fn rfc3339_trimmed(nanos: i64) -> String {
    Rfc3339 { nanos, trim: true }.to_string()
}

/// Why a string is not a time. Its message names the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    input: String,
    why: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid time {:?}: {}", self.input, self.why)
    }
}

impl std::error::Error for Error {}

/// The parts of a date and time read by [`parse_date_time`].
#[derive(Debug, Default)]
struct Parts {
    secs: i64,
    nanos: i64,
    /// The offset the text gave (seconds east of UTC), `None` for a local time.
    offset: Option<i64>,
}

fn digits(s: &str, n: usize) -> Option<(u32, &str)> {
    let d = s.get(..n)?;
    if !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((d.parse().ok()?, &s[n..]))
}

/// `YYYY-MM-DD`, then optionally a `T` (or `t`, or with `space` a space) and `hh`, `hh:mm` or
/// `hh:mm:ss[.fraction]`, then optionally `Z` or `±hh:mm`. With `full`, the time with seconds
/// and the zone are required (strict RFC 3339).
fn parse_date_time(s: &str, full: bool) -> Result<Parts, &'static str> {
    const SHAPE: &str = "expected YYYY-MM-DD[THH[:MM[:SS[.fraction]]]][Z|±HH:MM]";
    let (year, r) = digits(s, 4).ok_or(SHAPE)?;
    let r = r.strip_prefix('-').ok_or(SHAPE)?;
    let (month, r) = digits(r, 2).ok_or(SHAPE)?;
    let r = r.strip_prefix('-').ok_or(SHAPE)?;
    let (day, mut r) = digits(r, 2).ok_or(SHAPE)?;
    let year = i64::from(year);
    if !(1..=12).contains(&month) {
        return Err("month out of range");
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day out of range");
    }
    let (mut hour, mut minute, mut second, mut nanos) = (0, 0, 0, 0i64);
    let mut has_seconds = false;
    if let Some(t) = r
        .strip_prefix('T')
        .or_else(|| r.strip_prefix('t'))
        .or_else(|| r.strip_prefix(' ').filter(|_| full))
    {
        let (h, t) = digits(t, 2).ok_or(SHAPE)?;
        hour = h;
        r = t;
        if let Some(t) = r.strip_prefix(':') {
            let (m, t) = digits(t, 2).ok_or(SHAPE)?;
            minute = m;
            r = t;
            if let Some(t) = r.strip_prefix(':') {
                let (sec, t) = digits(t, 2).ok_or(SHAPE)?;
                second = sec;
                has_seconds = true;
                r = t;
                if let Some(t) = r.strip_prefix('.') {
                    let n = t.bytes().take_while(u8::is_ascii_digit).count();
                    if n == 0 {
                        return Err(SHAPE);
                    }
                    // Digits past nanoseconds are cut off, as Go does.
                    let kept = &t[..n.min(9)];
                    nanos =
                        kept.parse::<i64>().map_err(|_| SHAPE)? * 10i64.pow(9 - kept.len() as u32);
                    r = &t[n..];
                }
            }
        }
        if hour > 23 {
            return Err("hour out of range");
        }
        if minute > 59 {
            return Err("minute out of range");
        }
        if second > 59 {
            return Err("second out of range");
        }
    }
    let offset = match r {
        "" => None,
        "Z" | "z" => Some(0),
        o if (o.starts_with('+') || o.starts_with('-')) && o.len() == 6 && &o[3..4] == ":" => {
            let (h, _) = digits(&o[1..3], 2).ok_or(SHAPE)?;
            let (m, _) = digits(&o[4..6], 2).ok_or(SHAPE)?;
            if h > 23 || m > 59 {
                return Err("time zone offset out of range");
            }
            let secs = i64::from(h * 3600 + m * 60);
            Some(if o.starts_with('-') { -secs } else { secs })
        }
        _ => return Err(SHAPE),
    };
    if full && (!has_seconds || offset.is_none()) {
        return Err("expected an RFC 3339 time, e.g. 2006-01-02T15:04:05Z");
    }
    let secs = days_from_civil(year, month, day) * 86_400
        + i64::from(hour) * 3600
        + i64::from(minute) * 60
        + i64::from(second);
    Ok(Parts {
        secs,
        nanos,
        offset,
    })
}

/// Parses an RFC 3339 time (`2006-01-02T15:04:05[.fraction](Z|±hh:mm)`, also with a `t` or a
/// space for the `T`), as image configs and Docker's API carry them; nanoseconds since the
/// epoch.
pub fn parse_rfc3339(s: &str) -> Result<i64, Error> {
    let p = parse_date_time(s, true).map_err(|why| Error {
        input: s.to_string(),
        why,
    })?;
    to_nanos(p.secs - p.offset.unwrap_or(0), p.nanos).ok_or_else(|| Error {
        input: s.to_string(),
        why: "out of range",
    })
}

fn to_nanos(secs: i64, nanos: i64) -> Option<i64> {
    secs.checked_mul(NANOS)?.checked_add(nanos)
}

/// Docker's times for `--since`, `--until` and `until=` filters (its `GetTimestamp`), as
/// nanoseconds since the epoch:
/// - a duration in the one grammar ([`crate::duration`]) before `now` (`10m`, `1h30m`, `2d`;
///   a negative one is after `now`);
/// - an RFC 3339 date or time, of which everything after the date is optional
///   (`2006-01-02`, `2006-01-02T15`, `2006-01-02T15:04`, `2006-01-02T15:04:05.5`), in the
///   zone it gives (`Z`, `+01:00`) or else at `local_offset` seconds east of UTC (the
///   caller's time zone, which Docker's client uses);
/// - Unix seconds with an optional fraction (`1700000000`, `1700000000.5`).
pub fn parse_timestamp(value: &str, now: i64, local_offset: i64) -> Result<i64, Error> {
    let err = |why| Error {
        input: value.to_string(),
        why,
    };
    if value != "0" {
        if let Ok(ago) = crate::duration::parse_signed_nanos(value) {
            return now.checked_sub(ago).ok_or_else(|| err("out of range"));
        }
    }
    if value.contains('-') {
        let p = parse_date_time(value, false).map_err(err)?;
        return to_nanos(p.secs - p.offset.unwrap_or(local_offset), p.nanos)
            .ok_or_else(|| err("out of range"));
    }
    let (secs, frac) = value.split_once('.').unwrap_or((value, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if secs.is_empty() || !all_digits(secs) || !all_digits(frac) || value.ends_with('.') {
        return Err(err(
            "not a duration (10m, 1h30m, 2d), an RFC 3339 time (2006-01-02T15:04:05Z) or Unix seconds",
        ));
    }
    let secs: i64 = secs.parse().map_err(|_| err("out of range"))?;
    let kept = &frac[..frac.len().min(9)];
    let nanos = if kept.is_empty() {
        0
    } else {
        kept.parse::<i64>().map_err(|_| err("out of range"))? * 10i64.pow(9 - kept.len() as u32)
    };
    to_nanos(secs, nanos).ok_or_else(|| err("out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        let c = civil(0);
        assert_eq!((c.year, c.month, c.day, c.hour), (1970, 1, 1, 0));
        let c = civil(951_782_400); // 2000-02-29
        assert_eq!((c.year, c.month, c.day), (2000, 2, 29));
        let c = civil(1_700_000_000);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2023, 11, 14, 22, 13, 20)
        );
        let c = civil(-1);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (1969, 12, 31, 23, 59, 59)
        );
        // Every day for 800 years round-trips, leap days and century rules included.
        for days in (-146_097..146_097 * 2).step_by(1) {
            let c = civil(days * 86_400);
            assert_eq!(days_from_civil(c.year, c.month, c.day), days);
            assert!(c.day <= days_in_month(c.year, c.month));
        }
    }

    #[test]
    fn formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_700_000_000 * NANOS + 120_000_000),
            "2023-11-14T22:13:20.120000000Z"
        );
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(rfc3339_trimmed(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_trimmed(1_700_000_000 * NANOS + 120_000_000),
            "2023-11-14T22:13:20.12Z"
        );
        assert_eq!(
            rfc3339_trimmed(951_782_400 * NANOS + 1),
            "2000-02-29T00:00:00.000000001Z"
        );
    }

    #[test]
    fn parses_rfc3339() {
        let t = |s: &str| parse_rfc3339(s).ok();
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            t("2000-03-01T00:00:01.5Z"),
            Some(951_868_801 * NANOS + 500_000_000)
        );
        assert_eq!(t("2000-03-01T09:00:01+09:00"), Some(951_868_801 * NANOS));
        assert_eq!(t("2000-03-01 00:00:01-01:30"), Some(951_874_201 * NANOS));
        assert_eq!(t("1969-12-31T23:59:59z"), Some(-NANOS));
        assert_eq!(
            t("2023-11-14T22:13:20.1234567899Z"),
            Some(1_700_000_000 * NANOS + 123_456_789)
        );
        for s in [0, 1, -1, 1_700_000_000 * NANOS + 120_000_000, 42] {
            assert_eq!(t(&rfc3339(s)), Some(s));
            assert_eq!(t(&rfc3339_trimmed(s)), Some(s));
        }
        for bad in [
            "",
            "not a time",
            "2000-03-01",
            "2000-03-01T00:00Z",
            "2000-03-01T00:00:00",
            "2000-13-01T00:00:00Z",
            "2001-02-29T00:00:00Z",
            "2000-03-01T24:00:00Z",
            "2000-03-01T00:60:00Z",
            "2000-03-01T00:00:60Z",
            "2000-03-01T00:00:00.Z",
            "2000-03-01T00:00:00+0900",
            "2000-03-01T00:00:00Zjunk",
            "2000-3-01T00:00:00Z",
            "+000-03-01T00:00:00Z",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn docker_timestamps() {
        let now = 1_000_000 * NANOS;
        let ts = |v| parse_timestamp(v, now, 0);
        // Durations before now, the one grammar with days.
        assert_eq!(ts("10m"), Ok(now - 600 * NANOS));
        assert_eq!(ts("1h30m"), Ok(now - 5400 * NANOS));
        assert_eq!(ts("1.5h"), Ok(now - 5400 * NANOS));
        assert_eq!(ts("2d"), Ok(now - 2 * 86_400 * NANOS));
        assert_eq!(ts("-10m"), Ok(now + 600 * NANOS));
        // Unix seconds, with a fraction; "0" is the epoch, not a duration.
        assert_eq!(ts("0"), Ok(0));
        assert_eq!(ts("500000"), Ok(500_000 * NANOS));
        assert_eq!(ts("500000.5"), Ok(500_000 * NANOS + 500_000_000));
        assert_eq!(ts("1.000000001"), Ok(NANOS + 1));
        // Dates and times, each part after the date optional.
        assert_eq!(ts("1970-01-02"), Ok(86_400 * NANOS));
        assert_eq!(ts("1970-01-02T01"), Ok(90_000 * NANOS));
        assert_eq!(ts("1970-01-02T01:01"), Ok(90_060 * NANOS));
        assert_eq!(ts("1970-01-02T00:00:00Z"), Ok(86_400 * NANOS));
        assert_eq!(
            ts("1970-01-02T00:00:00.25"),
            Ok(86_400 * NANOS + 250_000_000)
        );
        assert_eq!(ts("1970-01-02Z"), Ok(86_400 * NANOS));
        assert_eq!(ts("1970-01-02T02:00:00+02:00"), Ok(86_400 * NANOS));
        assert_eq!(ts("1970-01-02-01:00"), Ok(90_000 * NANOS));
        // A time without a zone is in the caller's zone.
        assert_eq!(
            parse_timestamp("1970-01-02T02:00:00", now, 7200),
            Ok(86_400 * NANOS)
        );
        assert_eq!(
            parse_timestamp("1970-01-02T02:00:00Z", now, 7200),
            Ok(93_600 * NANOS)
        );
        for bad in [
            "",
            "10x",
            "h",
            "now",
            "1970-01-32",
            "1970-01-02T25",
            "12.",
            ".5",
            "1.2.3",
            "-5",
            "1e9",
            "1970-01-02T00:00:00+0100",
        ] {
            let e = ts(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
        }
    }

    #[test]
    fn system_times() {
        for n in [0, 1, -1, 1_700_000_000 * NANOS + 5] {
            assert_eq!(nanos_of(system_time(n)), n);
        }
        assert!(now_nanos() > 1_600_000_000 * NANOS);
    }
}
