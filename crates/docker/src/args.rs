//! Docker's `--filter key=value` arguments of the `ls` and `prune` commands of networks and
//! volumes: keys checked against the command's own (Docker's daemon refuses an unknown key),
//! values of one key ORed, keys ANDed.

use std::collections::BTreeMap;

/// A malformed filter, or one the command does not know (status 1 in the CLI, 400 from the
/// API).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidFilter(pub String);

/// Parsed filter arguments: key → values.
#[derive(Debug, Default, Clone)]
pub struct FilterArgs(BTreeMap<String, Vec<String>>);

impl FilterArgs {
    /// Parses `key=value` arguments, refusing keys not in `known`.
    pub fn parse(args: &[String], known: &[&str]) -> Result<FilterArgs, InvalidFilter> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in args {
            let (k, v) = a.split_once('=').ok_or_else(|| {
                InvalidFilter("bad format of filter (expected name=value)".into())
            })?;
            if !known.contains(&k) {
                return Err(InvalidFilter(format!("invalid filter '{k}'")));
            }
            out.entry(k.to_string()).or_default().push(v.to_string());
        }
        Ok(FilterArgs(out))
    }

    /// The values given for `key`.
    pub fn get(&self, key: &str) -> Option<&Vec<String>> {
        self.0.get(key)
    }

    /// The last boolean given for `key` (`dangling=true`), if any.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, InvalidFilter> {
        match self.0.get(key).and_then(|v| v.last()) {
            None => Ok(None),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(InvalidFilter(format!("invalid filter '{key}={v}'"))),
            },
        }
    }

    /// Whether every `label=k` / `label=k=v` holds for `labels`.
    pub fn labels_hold(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.get("label").is_none_or(|w| {
            w.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
                None => labels.contains_key(l),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_checks_keys() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = FilterArgs::parse(
            &a(&["name=x", "name=y", "label=a=1", "dangling=1"]),
            &["name", "label", "dangling"],
        )
        .unwrap();
        assert_eq!(f.get("name").unwrap(), &["x", "y"]);
        assert_eq!(f.bool("dangling").unwrap(), Some(true));
        let labels: BTreeMap<String, String> = [("a".into(), "1".into())].into();
        assert!(f.labels_hold(&labels));
        assert!(!f.labels_hold(&BTreeMap::new()));
        assert!(FilterArgs::parse(&a(&["nope=1"]), &["name"]).is_err());
        assert!(FilterArgs::parse(&a(&["name"]), &["name"]).is_err());
        let f = FilterArgs::parse(&a(&["dangling=maybe"]), &["dangling"]).unwrap();
        assert!(f.bool("dangling").is_err());
    }
}
