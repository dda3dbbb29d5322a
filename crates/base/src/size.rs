//! Byte sizes as Docker reads and prints them (its `go-units` package).

use std::fmt;

/// Why a string is not a size. Its message names the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    input: String,
    why: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid size {:?}: {}", self.input, self.why)
    }
}

impl std::error::Error for Error {}

/// Docker's `RAMInBytes`: a number (a fraction allowed), an optional space, and an optional
/// unit `b`, `k`, `m`, `g`, `t` or `p` (binary multiples, any case), which may be followed by
/// `b` or `ib`: `512`, `64m`, `1.5g`, `5MiB`, `2 GB`. Negative sizes are refused; callers
/// that take `-1` for "unlimited" check for it first.
pub fn parse_ram(s: &str) -> Result<i64, Error> {
    let err = |why: &str| Error {
        input: s.to_string(),
        why: why.to_string(),
    };
    let num_end = s
        .rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')
        .ok_or_else(|| err("expected a number with an optional unit (b, k, m, g, t, p)"))?;
    // One space may stand between the number and its unit.
    let (num, unit) = if s.as_bytes()[num_end] == b' ' {
        (&s[..num_end], &s[num_end + 1..])
    } else {
        (&s[..=num_end], &s[num_end + 1..])
    };
    // Go's ParseFloat reads the number; Rust's also takes "inf" and "NaN", which hold no digit.
    if !num.bytes().any(|b| b.is_ascii_digit()) {
        return Err(err(
            "expected a number with an optional unit (b, k, m, g, t, p)",
        ));
    }
    let value: f64 = num
        .parse()
        .map_err(|_| err("expected a number with an optional unit (b, k, m, g, t, p)"))?;
    let unit = unit.to_ascii_lowercase();
    let shift = match unit.as_bytes() {
        [] | [b'b'] => 0,
        [u] | [u, b'b'] | [u, b'i', b'b'] => match u {
            b'k' => 10,
            b'm' => 20,
            b'g' => 30,
            b't' => 40,
            b'p' => 50,
            _ => {
                return Err(err(&format!(
                    "unknown unit {unit:?} (use b, k, m, g, t or p)"
                )))
            }
        },
        _ => {
            return Err(err(&format!(
                "unknown unit {unit:?} (use b, k, m, g, t or p)"
            )))
        }
    };
    let bytes = value * (1u64 << shift) as f64;
    if value < 0.0 {
        return Err(err("must not be negative"));
    }
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        return Err(err("too large"));
    }
    Ok(bytes as i64)
}

/// Divides by `base` while the value reaches it (up to the last unit) and prints `precision`
/// significant digits with the trailing zeros of the fraction dropped, like Go's `%.<p>g` at
/// these magnitudes.
fn scaled(bytes: u64, base: f64, units: &[&str], precision: usize) -> String {
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= base && i < units.len() - 1 {
        v /= base;
        i += 1;
    }
    let int_digits = if v < 1.0 {
        1
    } else {
        v.log10().floor() as usize + 1
    };
    let decimals = precision.saturating_sub(int_digits);
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

const DECIMAL: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

/// Docker's `HumanSize`: decimal units, four significant digits (`2.048kB`, `125MB`, `0B`), as
/// `system df`, a build's context and the prune commands' "reclaimed space" print sizes.
pub fn human_size(bytes: u64) -> String {
    human_size_with_precision(bytes, 4)
}

/// Docker's `HumanSizeWithPrecision`: `docker images` and `ps --size` use three digits
/// (`4.26MB`).
pub fn human_size_with_precision(bytes: u64, precision: usize) -> String {
    scaled(bytes, 1000.0, &DECIMAL, precision)
}

/// Docker's `BytesSize`: binary units, four significant digits (`1.5MiB`, `7.63GiB`), as
/// `stats` prints memory.
pub fn bytes_size(bytes: u64) -> String {
    scaled(bytes, 1024.0, &BINARY, 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_in_bytes() {
        let p = |s| parse_ram(s).ok();
        assert_eq!(p("0"), Some(0));
        assert_eq!(p("512"), Some(512));
        assert_eq!(p("512b"), Some(512));
        assert_eq!(p("512B"), Some(512));
        assert_eq!(p("32k"), Some(32 << 10));
        assert_eq!(p("32K"), Some(32 << 10));
        assert_eq!(p("32kb"), Some(32 << 10));
        assert_eq!(p("32KiB"), Some(32 << 10));
        assert_eq!(p("64m"), Some(64 << 20));
        assert_eq!(p("5MiB"), Some(5 << 20));
        assert_eq!(p("5MB"), Some(5 << 20));
        assert_eq!(p("1.5g"), Some(3 << 29));
        assert_eq!(p("2 GB"), Some(2 << 30));
        assert_eq!(p("1t"), Some(1 << 40));
        assert_eq!(p("1p"), Some(1 << 50));
        assert_eq!(p("0.5k"), Some(512));
        assert_eq!(p("1.k"), Some(1024));
        // What Go's ParseFloat reads, and a space after the number.
        assert_eq!(p("1e3"), Some(1000));
        assert_eq!(p("5 "), Some(5));
        for bad in [
            "",
            "k",
            "-1",
            "-5m",
            "5x",
            "5mm",
            "5bb",
            "5kbb",
            "5kib ",
            "5  m",
            "1.2.3k",
            " 5",
            "5m ",
            "99999999999p",
            "inf",
            "NaN",
        ] {
            assert!(parse_ram(bad).is_err(), "{bad:?}");
        }
        let e = parse_ram("5x").unwrap_err().to_string();
        assert!(e.contains("\"5x\"") && e.contains("unknown unit"), "{e}");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(2048), "2.048kB");
        assert_eq!(human_size(4_261_234), "4.261MB");
        assert_eq!(human_size(125_000_000), "125MB");
        assert_eq!(human_size(999_950), "1000kB");
        let h3 = |n| human_size_with_precision(n, 3);
        assert_eq!(h3(0), "0B");
        assert_eq!(h3(4_261_234), "4.26MB");
        assert_eq!(h3(125_000_000), "125MB");
        assert_eq!(h3(1_200_000_000), "1.2GB");
        assert_eq!(h3(12_340), "12.3kB");
        assert_eq!(h3(u64::MAX), "18.4EB");
    }

    #[test]
    fn binary_sizes() {
        assert_eq!(bytes_size(512), "512B");
        assert_eq!(bytes_size(64 << 20), "64MiB");
        assert_eq!(bytes_size(2_462_000), "2.348MiB");
        assert_eq!(bytes_size(3 << 29), "1.5GiB");
        assert_eq!(bytes_size(u64::MAX), "16EiB");
    }
}
