//! The one duration grammar: Go's `time.ParseDuration` (what Docker's and runc's flags and
//! filters take) plus `d` for days, which `builder prune --filter until=2d` users write.
//!
//! A duration is `0`, or an optional sign and one or more `<number><unit>`: `1h30m`, `1.5s`,
//! `500ms`, `2d12h`. Units: `ns`, `us` (also `µs`, `μs`), `ms`, `s`, `m`, `h`, `d`. A number
//! has digits before or after its `.` (or both). As in Go, the total must fit in a signed
//! 64-bit count of nanoseconds (about 292 years), and fractions finer than a nanosecond are
//! cut off.

use std::fmt;
use std::time::Duration;

/// Why a string is not a duration. Its message names the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    input: String,
    why: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid duration {:?}: {}", self.input, self.why)
    }
}

impl std::error::Error for Error {}

const UNITS: &str = "use a number and a unit: ns, us, ms, s, m, h or d, e.g. 90s, 1h30m, 2d";

fn unit_nanos(unit: &str) -> Option<u128> {
    Some(match unit {
        "ns" => 1,
        // Go accepts both the micro sign (U+00B5) and the Greek mu (U+03BC).
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return None,
    })
}

/// Parses a duration that may be negative, in nanoseconds: timestamps take `-10m` as ten
/// minutes from now, as Docker's do.
pub fn parse_signed_nanos(s: &str) -> Result<i64, Error> {
    let err = |why| Error {
        input: s.to_string(),
        why,
    };
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(err(UNITS));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(f) => {
                let n = f.bytes().take_while(u8::is_ascii_digit).count();
                f.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(err(UNITS));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(err("missing unit (ns, us, ms, s, m, h or d)"));
        }
        let per =
            unit_nanos(unit).ok_or_else(|| err("unknown unit (use ns, us, ms, s, m, h or d)"))?;
        // The whole part, checked; then the fraction, of which at most 18 digits can matter
        // (a day is under 10^14 ns), cut off below a nanosecond.
        let whole = int
            .bytes()
            .try_fold(0u128, |n, d| {
                n.checked_mul(10)?.checked_add(u128::from(d - b'0'))
            })
            .and_then(|n| n.checked_mul(per))
            .ok_or_else(|| err("too large"))?;
        let digits = &frac[..frac.len().min(18)];
        let f = digits
            .bytes()
            .fold(0u128, |n, d| n * 10 + u128::from(d - b'0'));
        let part = whole + f * per / 10u128.pow(digits.len() as u32);
        total = total.checked_add(part).ok_or_else(|| err("too large"))?;
        if total > i64::MAX as u128 + u128::from(negative) {
            return Err(err("too large (at most 292 years)"));
        }
        rest = after;
    }
    Ok(if negative {
        (total as i128).wrapping_neg() as i64
    } else {
        total as i64
    })
}

/// Parses a duration that may not be negative (a timeout, an interval, an age).
pub fn parse(s: &str) -> Result<Duration, Error> {
    let n = parse_signed_nanos(s)?;
    if n < 0 {
        return Err(Error {
            input: s.to_string(),
            why: "must not be negative",
        });
    }
    Ok(Duration::from_nanos(n as u64))
}

/// Formats like Go's `Duration.String`: `1h30m0s`, `1.5s`, `250ms`, `0s`. Docker prints
/// healthcheck intervals this way.
pub fn format(d: Duration) -> String {
    let n = d.as_nanos();
    if n == 0 {
        return "0s".into();
    }
    if n < 1_000_000_000 {
        // Below a second: the largest unit that keeps an integer part.
        let (unit, per) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("\u{b5}s", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", decimal(n, per));
    }
    let secs = n / 1_000_000_000;
    let (h, m) = (secs / 3600, secs % 3600 / 60);
    let s = decimal(n % 60_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// `n / per` with the fraction's trailing zeros dropped.
fn decimal(n: u128, per: u128) -> String {
    let (int, frac) = (n / per, n % per);
    if frac == 0 {
        return int.to_string();
    }
    let width = per.ilog10() as usize;
    let f = format!("{frac:0width$}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<Duration> {
        parse(s).ok()
    }

    #[test]
    fn go_durations() {
        assert_eq!(p("0"), Some(Duration::ZERO));
        assert_eq!(p("+0"), Some(Duration::ZERO));
        assert_eq!(p("0s"), Some(Duration::ZERO));
        assert_eq!(p("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(p("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(p("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(p(".5s"), Some(Duration::from_millis(500)));
        assert_eq!(p("1.s"), Some(Duration::from_secs(1)));
        assert_eq!(p("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(p("2us"), Some(Duration::from_micros(2)));
        assert_eq!(p("3\u{b5}s"), Some(Duration::from_micros(3)));
        assert_eq!(p("4\u{3bc}s"), Some(Duration::from_micros(4)));
        assert_eq!(p("10ns"), Some(Duration::from_nanos(10)));
        assert_eq!(p("+5m"), Some(Duration::from_secs(300)));
        assert_eq!(p("1h1m1s1ms1us1ns"), Some(Duration::new(3661, 1_001_001)));
        // Exact, where floating point would round.
        assert_eq!(p("1.000000001s"), Some(Duration::new(1, 1)));
        assert_eq!(p("0.1234567891s"), Some(Duration::new(0, 123_456_789)));
    }

    #[test]
    fn days() {
        assert_eq!(p("2d"), Some(Duration::from_secs(2 * 86_400)));
        assert_eq!(p("1d12h"), Some(Duration::from_secs(36 * 3600)));
        assert_eq!(p("0.5d"), Some(Duration::from_secs(43_200)));
    }

    #[test]
    fn refused() {
        for bad in [
            "", "5", "5x", "h", "1..2s", ".s", "s5", "1 s", " 1s", "1s ", "-", "+", "1e3s", "--1s",
            "5S", "1H",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert!(parse("-1s").is_err());
        let e = parse("2x").unwrap_err().to_string();
        assert!(e.contains("\"2x\"") && e.contains("unknown unit"), "{e}");
        assert!(parse("5").unwrap_err().to_string().contains("missing unit"));
    }

    #[test]
    fn limits_like_go() {
        // 2^63 - 1 ns is the most; 106752d is over it.
        assert!(parse_signed_nanos("2562047h47m16.854775807s").is_ok());
        assert!(parse_signed_nanos("2562047h47m16.854775808s").is_err());
        assert_eq!(
            parse_signed_nanos("-2562047h47m16.854775808s"),
            Ok(i64::MIN)
        );
        assert!(parse("106752d").is_err());
        assert!(parse("99999999999999999999999999999999999999999s").is_err());
        // Fraction digits past a nanosecond's are cut off, however many.
        let long = format!("1.{}s", "9".repeat(60));
        assert_eq!(p(&long), Some(Duration::new(1, 999_999_999)));
    }

    #[test]
    fn signed() {
        assert_eq!(parse_signed_nanos("-10m"), Ok(-600_000_000_000));
        assert_eq!(parse_signed_nanos("-0"), Ok(0));
        assert_eq!(parse_signed_nanos("1ns"), Ok(1));
    }

    #[test]
    fn formats_like_go() {
        let f = |n| format(Duration::from_nanos(n));
        assert_eq!(f(0), "0s");
        assert_eq!(f(1), "1ns");
        assert_eq!(f(1_500), "1.5\u{b5}s");
        assert_eq!(f(250_000_000), "250ms");
        assert_eq!(f(1_500_000_000), "1.5s");
        assert_eq!(f(30_000_000_000), "30s");
        assert_eq!(f(90_000_000_000), "1m30s");
        assert_eq!(f(3_600_000_000_000), "1h0m0s");
        assert_eq!(f(5_400_500_000_000), "1h30m0.5s");
        for n in [1, 1_500, 250_000_000, 90_000_000_000, 5_400_500_000_000] {
            assert_eq!(p(&f(n)), Some(Duration::from_nanos(n)), "{}", f(n));
        }
    }
}
