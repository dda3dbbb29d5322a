//! `hako images --filter`: Docker's keys (dangling, reference, label, before, since) and its
//! glob syntax for references.

use std::collections::HashMap;

use hako_engine::hako_image::Reference;

/// Parsed `--filter` arguments. Values of one key are ORed, keys are ANDed, as Docker does.
#[derive(Debug, Default)]
pub struct Filters {
    pub dangling: Option<bool>,
    /// `reference=` patterns, compiled.
    pub reference: Vec<regex::Regex>,
    /// `(key, Some(value))` for `label=k=v`, `(key, None)` for `label=k`.
    pub label: Vec<(String, Option<String>)>,
    pub before: Option<String>,
    pub since: Option<String>,
}

impl Filters {
    pub fn parse(args: &[String]) -> anyhow::Result<Filters> {
        let mut f = Filters::default();
        for arg in args {
            let Some((key, value)) = arg.split_once('=') else {
                anyhow::bail!("bad format of filter (expected name=value): {arg}");
            };
            match key {
                "dangling" => {
                    f.dangling = Some(match value.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => anyhow::bail!("invalid filter 'dangling={value}'"),
                    })
                }
                "reference" => f.add_reference(value)?,
                "label" => f.label.push(match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (value.to_string(), None),
                }),
                "before" => f.before = Some(value.to_string()),
                "since" => f.since = Some(value.to_string()),
                _ => anyhow::bail!("invalid filter '{key}'"),
            }
        }
        Ok(f)
    }

    /// Adds a `reference=` pattern; a malformed one is refused now rather than matching nothing.
    pub fn add_reference(&mut self, pattern: &str) -> anyhow::Result<()> {
        self.reference.push(glob(pattern)?);
        Ok(())
    }

    /// Docker's `reference.FamiliarMatch`: the pattern against `name:tag`, then against `name`.
    pub fn reference_matches(&self, r: &Reference) -> bool {
        self.reference.is_empty()
            || self
                .reference
                .iter()
                .any(|p| p.is_match(&r.familiar()) || p.is_match(&r.familiar_repository()))
    }

    /// Every `label=` filter must hold (Docker ANDs label filters).
    pub fn labels_match(&self, labels: &HashMap<String, String>) -> bool {
        self.label.iter().all(|(k, v)| match (labels.get(k), v) {
            (Some(have), Some(want)) => have == want,
            (Some(_), None) => true,
            (None, _) => false,
        })
    }
}

/// Go's `path.Match`: `*` and `?` stop at `/`, `[...]` classes with ranges and `^`, `\` escapes.
/// A malformed pattern is an error, as in Go. Matching takes linear time, whatever the pattern
/// (`hako_build::pattern`).
pub fn glob(pattern: &str) -> anyhow::Result<regex::Regex> {
    hako_build::pattern::compile(pattern, hako_build::pattern::Dialect::FilepathMatch)
        .map_err(|e| anyhow::anyhow!("invalid reference pattern {pattern:?}: {e}"))
}

/// The column titles of `--format "table …"`, as Docker names them.
pub fn headers() -> serde_json::Value {
    serde_json::json!({
        "Containers": "CONTAINERS",
        "CreatedAt": "CREATED AT",
        "CreatedSince": "CREATED",
        "Digest": "DIGEST",
        "ID": "IMAGE ID",
        "Repository": "REPOSITORY",
        "SharedSize": "SHARED SIZE",
        "Size": "SIZE",
        "Tag": "TAG",
        "UniqueSize": "UNIQUE SIZE",
        "VirtualSize": "VIRTUAL SIZE",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob_match(pattern: &str, name: &str) -> anyhow::Result<bool> {
        Ok(glob(pattern)?.is_match(name))
    }

    #[test]
    fn globs_like_go_path_match() {
        let m = |p: &str, n: &str| glob_match(p, n).unwrap();
        assert!(m("busybox", "busybox"));
        assert!(m("busy*", "busybox"));
        assert!(m("*:latest", "busybox:latest"));
        assert!(!m("*", "library/busybox"), "* stops at /");
        assert!(m("*/*", "library/busybox"));
        assert!(m("b?sybox", "busybox"));
        assert!(m("[a-c]usybox", "busybox"));
        assert!(!m("[^a-c]usybox", "busybox"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(!m("busy", "busybox"));
        assert!(glob_match("[abc", "a").is_err());
        assert!(glob_match("ab\\", "ab").is_err());
        // Once exponential backtracking.
        assert!(!m(&format!("{}b", "*a".repeat(30)), &"a".repeat(200)));
    }

    #[test]
    fn filters_parse_and_match() {
        let f = Filters::parse(&[
            "dangling=false".into(),
            "label=a".into(),
            "label=b=2".into(),
            "reference=busy*".into(),
        ])
        .unwrap();
        assert_eq!(f.dangling, Some(false));
        let labels: HashMap<String, String> =
            [("a".into(), "x".into()), ("b".into(), "2".into())].into();
        assert!(f.labels_match(&labels));
        let labels: HashMap<String, String> = [("a".into(), "x".into())].into();
        assert!(!f.labels_match(&labels));
        assert!(f.reference_matches(&Reference::parse("busybox:1").unwrap()));
        assert!(!f.reference_matches(&Reference::parse("alpine").unwrap()));
        assert!(Filters::parse(&["nope=1".into()]).is_err());
        assert!(Filters::parse(&["dangling=maybe".into()]).is_err());
        assert!(Filters::parse(&["dangling".into()]).is_err());
    }
}

/// `image prune --filter`: `until=` (a Go duration before now, a Unix time or RFC 3339) and
/// `label=`/`label!=` (`k` or `k=v`).
#[derive(Debug, Default)]
pub struct PruneFilter {
    until: Option<std::time::SystemTime>,
    label: Vec<(String, Option<String>)>,
    not_label: Vec<(String, Option<String>)>,
}

impl PruneFilter {
    pub fn parse(args: &[String], now: std::time::SystemTime) -> anyhow::Result<PruneFilter> {
        let mut f = PruneFilter::default();
        let kv = |v: &str| match v.split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (v.to_string(), None),
        };
        for arg in args {
            if let Some(v) = arg.strip_prefix("label!=") {
                f.not_label.push(kv(v));
                continue;
            }
            let Some((key, value)) = arg.split_once('=') else {
                anyhow::bail!("bad format of filter (expected name=value): {arg}");
            };
            match key {
                "until" => f.until = Some(parse_until(value, now)?),
                "label" => f.label.push(kv(value)),
                _ => anyhow::bail!("invalid filter '{key}'"),
            }
        }
        Ok(f)
    }

    pub fn accepts(&self, img: &hako_engine::hako_image::Image) -> bool {
        if let Some(until) = self.until {
            let created = img
                .config
                .created()
                .as_deref()
                .and_then(crate::fmt::parse_rfc3339);
            if created.is_none_or(|c| c >= until) {
                return false;
            }
        }
        let labels = img
            .config
            .config()
            .as_ref()
            .and_then(|c| c.labels().clone())
            .unwrap_or_default();
        let has = |(k, v): &(String, Option<String>)| match (labels.get(k), v) {
            (Some(have), Some(want)) => have == want,
            (Some(_), None) => true,
            (None, _) => false,
        };
        self.label.iter().all(has) && !self.not_label.iter().any(has)
    }
}

/// Docker's `until` values, in the grammar of every `until=` and `--since`/`--until`
/// ([`crate::fmt::parse_time`]): `10m`, `2d` (before now), `1700000000[.5]`, or RFC 3339.
fn parse_until(v: &str, now: std::time::SystemTime) -> anyhow::Result<std::time::SystemTime> {
    let t = crate::fmt::parse_time(v, hako_base::time::nanos_of(now))
        .map_err(|e| anyhow::anyhow!("invalid filter 'until={v}': {e}"))?;
    Ok(hako_base::time::system_time(t))
}

#[cfg(test)]
mod prune_tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn until_values_like_docker() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let at = |v: &str| parse_until(v, now).unwrap();
        assert_eq!(at("10m"), now - Duration::from_secs(600));
        assert_eq!(at("1h30m"), now - Duration::from_secs(5400));
        assert_eq!(at("1.5h"), now - Duration::from_secs(5400));
        assert_eq!(at("500000"), UNIX_EPOCH + Duration::from_secs(500_000));
        assert_eq!(
            at("1970-01-02T00:00:00Z"),
            UNIX_EPOCH + Duration::from_secs(86_400)
        );
        // The grammar of `builder prune`, which takes days.
        assert_eq!(at("2d"), now - Duration::from_secs(172_800));
        for bad in ["", "10x", "h", "1.5.3"] {
            assert!(parse_until(bad, now).is_err(), "{bad}");
        }
        assert!(PruneFilter::parse(&["dangling=true".into()], now).is_err());
    }
}
