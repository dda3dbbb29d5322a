//! The image store's times: RFC 3339 as Docker writes image configs, and Unix seconds for its
//! bookkeeping (both from `hako-base`).

/// Now, as Go's `time.RFC3339Nano` in UTC: what Docker writes into image configs (trailing
/// zeros of the fraction dropped).
pub(crate) fn now_rfc3339() -> String {
    hako_base::time::rfc3339_trimmed(hako_base::time::now_nanos())
}

/// Now, in seconds since the epoch.
pub(crate) fn unix_now() -> i64 {
    hako_base::time::now_nanos().div_euclid(1_000_000_000)
}

/// A key that orders UTC RFC 3339 strings chronologically even when their
/// fractions have different lengths ("05Z" vs "05.1Z").
pub(crate) fn sort_key(ts: &str) -> String {
    let Some(body) = ts.strip_suffix('Z') else {
        return ts.to_string();
    };
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    format!("{whole}.{frac:0<9}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_keys() {
        assert!(now_rfc3339().ends_with('Z'));
        assert!(sort_key("2023-11-14T22:13:20Z") < sort_key("2023-11-14T22:13:20.1Z"));
    }
}
