//! `SOURCE_DATE_EPOCH` (reproducible-builds.org): the one time a reproducible build writes.
//!
//! With it, the image's `created`, its new history entries and every file time in its new
//! layers come from this number instead of the clock and the context's checkout, so the same
//! Dockerfile, context and base image give the same image ID in any state root at any time.

/// The build argument (and environment variable) BuildKit and buildx take the epoch from.
pub const NAME: &str = "SOURCE_DATE_EPOCH";

/// The latest epoch an image config can say: `created` is written in nanoseconds as an `i64`.
const MAX: u64 = (i64::MAX / 1_000_000_000) as u64;

/// Reads one value of `SOURCE_DATE_EPOCH`: decimal seconds since 1970-01-01 UTC.
pub fn parse(value: &str, origin: &str) -> Result<u64, String> {
    let v = value.trim();
    let bad = || {
        format!(
            "invalid {origin} {value:?}: expected seconds since 1970-01-01 UTC (an integer from 0 to {MAX})"
        )
    };
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    v.parse::<u64>().ok().filter(|n| *n <= MAX).ok_or_else(bad)
}

/// The epoch of a build, from `--source-date-epoch`, `--build-arg SOURCE_DATE_EPOCH=N` and the
/// `SOURCE_DATE_EPOCH` environment variable, in that order. The flag and the build argument
/// must agree when both are given. An empty build argument or environment variable counts as
/// unset, as BuildKit and reproducible-builds.org's tools take them
/// (`--build-arg SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH` with nothing in it).
pub fn resolve(
    flag: Option<&str>,
    build_arg: Option<&str>,
    env: Option<&str>,
) -> Result<Option<u64>, String> {
    let flag = flag.map(|v| parse(v, "--source-date-epoch")).transpose()?;
    let arg = build_arg
        .filter(|v| !v.is_empty())
        .map(|v| parse(v, "--build-arg SOURCE_DATE_EPOCH"))
        .transpose()?;
    if let (Some(f), Some(a)) = (flag, arg) {
        if f != a {
            return Err(format!(
                "--source-date-epoch {f} and --build-arg SOURCE_DATE_EPOCH={a} disagree: give one"
            ));
        }
    }
    if flag.is_some() || arg.is_some() {
        return Ok(flag.or(arg));
    }
    match env.filter(|v| !v.is_empty()) {
        Some(v) => parse(v, "SOURCE_DATE_EPOCH in the environment").map(Some),
        None => Ok(None),
    }
}

/// `created` for an image config and its history: RFC 3339 in UTC without a fraction, as
/// BuildKit writes it for the epoch.
pub fn created(epoch: u64) -> String {
    hako_base::time::rfc3339_trimmed(epoch as i64 * 1_000_000_000)
}

/// A file time in a new layer: clamped to the epoch when there is one (a file made or
/// changed during the build, or checked out after the epoch, gets the epoch; an older one
/// keeps its time), as it is otherwise.
pub fn clamp(mtime: u64, epoch: Option<u64>) -> u64 {
    match epoch {
        Some(e) => mtime.min(e),
        None => mtime,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_whole_seconds() {
        assert_eq!(parse("1700000000", "x"), Ok(1_700_000_000));
        assert_eq!(parse(" 0\n", "x"), Ok(0));
        for bad in ["", "-1", "1.5", "1e9", "abc", "99999999999999999999"] {
            let e = parse(bad, "--source-date-epoch").unwrap_err();
            assert!(e.starts_with("invalid --source-date-epoch"), "{e}");
        }
        assert!(parse(&MAX.to_string(), "x").is_ok());
        assert!(parse(&(MAX + 1).to_string(), "x").is_err());
    }

    #[test]
    fn flag_then_build_arg_then_environment() {
        assert_eq!(resolve(None, None, None), Ok(None));
        assert_eq!(resolve(None, None, Some("")), Ok(None));
        assert_eq!(resolve(None, None, Some("5")), Ok(Some(5)));
        assert_eq!(resolve(None, Some("6"), Some("5")), Ok(Some(6)));
        assert_eq!(resolve(None, Some(""), Some("5")), Ok(Some(5)));
        assert!(resolve(Some(""), None, None).is_err());
        assert_eq!(resolve(Some("7"), None, Some("5")), Ok(Some(7)));
        assert_eq!(resolve(Some("7"), Some("7"), Some("x")), Ok(Some(7)));
        let e = resolve(Some("7"), Some("8"), None).unwrap_err();
        assert!(e.contains("disagree"), "{e}");
        let e = resolve(None, None, Some("soon")).unwrap_err();
        assert!(e.contains("SOURCE_DATE_EPOCH in the environment"), "{e}");
    }

    #[test]
    fn times() {
        assert_eq!(created(0), "1970-01-01T00:00:00Z");
        assert_eq!(created(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(clamp(10, Some(5)), 5);
        assert_eq!(clamp(3, Some(5)), 3);
        assert_eq!(clamp(10, None), 10);
    }
}
