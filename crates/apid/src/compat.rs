//! What only the service needs besides the shared views of `hako_docker`: its instance ID,
//! the local time zone a filter's zoneless time is read in, the prune filters of its
//! endpoints, and the `/auth` check.

use crate::error::ApiError;

/// A stable ID for this state root (`/info`'s `ID`).
pub(crate) fn instance_id(root: &std::path::Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    root.hash(&mut h);
    let a = h.finish();
    "hako".hash(&mut h);
    let b = h.finish();
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// RFC 3339 (`2026-11-22T18:30:00.5Z`, or with an offset) to nanoseconds.
pub(crate) fn parse_rfc3339(s: &str) -> Option<i64> {
    hako_engine::hako_base::time::parse_rfc3339(s).ok()
}

/// Seconds east of UTC of the service's local time zone (`TZ`, `/etc/localtime`) at Unix time
/// `secs`: dockerd reads a filter's zoneless time (`until=2026-01-02`) in its own zone.
pub(crate) fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; localtime_r is the reentrant variant.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return 0;
    }
    tm.tm_gmtoff
}

/// `POST /auth`: checks the credentials against the registry (the client keeps them).
pub(crate) fn registry_login(server: &str, username: &str, password: &str) -> Result<(), ApiError> {
    if username.is_empty() || password.is_empty() {
        return Err(ApiError::bad_request("username and password are required"));
    }
    let domain = hako_registry::login_domain((!server.is_empty()).then_some(server));
    hako_registry::check_login(
        &domain,
        &hako_registry::Credentials {
            username: username.into(),
            password: password.into(),
        },
    )
    .map_err(|e| {
        ApiError::new(
            hyper::StatusCode::UNAUTHORIZED,
            format!("login attempt to {domain} failed: {e}"),
        )
    })
}

/// The `filters` of a prune endpoint as `image prune --filter` reads them
/// ([`hako_docker::image::PruneFilters`]: `until=`, `label=`, `label!=`), leaving out the keys
/// the endpoint reads itself (`skip`). Any other key is the client's error, as dockerd answers
/// it.
pub(crate) fn prune_filters(
    pairs: &[(String, String)],
    skip: &[&str],
) -> Result<hako_docker::image::PruneFilters, ApiError> {
    let args: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let now = hako_engine::hako_base::time::now_nanos();
    Ok(hako_docker::image::PruneFilters::parse(
        &args,
        now,
        local_offset(now.div_euclid(1_000_000_000)),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn prune_filters_as_dockerd_reads_them() {
        let f = |pairs: &[(&str, &str)]| {
            let v: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            prune_filters(&v, &["all"])
        };
        let labels: BTreeMap<String, String> = [("app", "web"), ("tier", "front")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(f(&[]).unwrap().accepts_object(None, &labels));
        assert!(f(&[("label", "app=web")])
            .unwrap()
            .accepts_object(None, &labels));
        assert!(f(&[("label", "app")])
            .unwrap()
            .accepts_object(None, &labels));
        assert!(!f(&[("label", "app=db")])
            .unwrap()
            .accepts_object(None, &labels));
        assert!(!f(&[("label!", "tier")])
            .unwrap()
            .accepts_object(None, &labels));
        assert!(f(&[("label!", "tier=back")])
            .unwrap()
            .accepts_object(None, &labels));
        let now = hako_engine::hako_base::time::now_nanos();
        let hour = 3_600_000_000_000;
        let until = f(&[("until", "30m")]).unwrap();
        assert!(until.has_until());
        assert!(until.accepts_object(Some(now - hour), &labels));
        assert!(!until.accepts_object(Some(now), &labels));
        assert!(!until.accepts_object(None, &labels));
        assert!(f(&[("all", "true")]).unwrap().is_empty());
        let e = f(&[("until", "soon")]).unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST);
        let e = f(&[("dangling", "true")]).unwrap_err();
        assert!(e.message.contains("dangling"), "{}", e.message);
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:01.5Z"),
            Some(951_868_801_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-03-01T09:00:01+09:00"),
            Some(951_868_801_000_000_000)
        );
        assert_eq!(parse_rfc3339("2000-13-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("not a time at all!!"), None);
    }
}
