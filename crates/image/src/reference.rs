//! Image references in the Docker "distribution reference" grammar, with
//! Docker's normalization rules (`busybox` → `docker.io/library/busybox:latest`).

use std::fmt;

use crate::Error;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
/// The distribution grammar caps the whole name (domain + path).
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A fully normalized image reference: `domain/path[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

fn invalid(msg: impl fmt::Display) -> Error {
    Error::InvalidReference(format!("invalid reference format: {msg}"))
}

impl Reference {
    /// Parses and normalizes `s` the way the Docker CLI does.
    ///
    /// A reference without tag or digest gets the tag `latest`; one with only
    /// a digest keeps no tag.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.is_empty() {
            return Err(invalid("reference is empty"));
        }
        if s.len() == 64 && is_lower_hex(s) {
            // Docker refuses these so that an image ID can never be mistaken
            // for a repository name.
            return Err(Error::InvalidReference(format!(
                "invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
            )));
        }

        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                validate_digest(d)?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // The tag separator is a ':' after the last '/', otherwise the ':'
        // belongs to a registry port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&rest[..i], Some(&rest[i + 1..]))
            }
            None => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t)?;
        }
        if name.is_empty() {
            return Err(invalid("repository name is empty"));
        }

        let (domain, path) = split_domain(name);
        validate_domain(&domain, s)?;
        validate_path(&path, s)?;
        if domain.len() + 1 + path.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid(format_args!(
                "repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
            )));
        }

        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some(DEFAULT_TAG.to_string()),
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// Registry host, e.g. `docker.io` or `localhost:5000`.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Repository path within the registry, e.g. `library/busybox`.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest (`algorithm:hex`), if any.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// Full repository name without tag or digest:
    /// `docker.io/library/busybox`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// Returns the same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Result<Self, Error> {
        validate_tag(tag)?;
        Ok(Reference {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: Some(tag.to_string()),
            digest: None,
        })
    }

    /// The short form Docker prints: `busybox:latest`, `localhost:5000/a/b:t`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_repository();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// The short repository name Docker prints: `busybox`, `user/app`.
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(short) if !short.contains('/') => short.to_string(),
                // `docker.io/example.com/app` without its domain would name another
                // registry's `app`. Docker prints it that way anyway; hako keeps the domain
                // so that the name it prints is the image it means.
                _ if self
                    .path
                    .split_once('/')
                    .is_some_and(|(first, _)| is_domain(first)) =>
                {
                    self.repository()
                }
                _ => self.path.clone(),
            }
        } else {
            self.repository()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Reference::parse(s)
    }
}

/// Docker's rule: the first component is a registry only if it looks like a
/// host (has a '.' or ':', or is `localhost`) or contains uppercase letters
/// (which a repository path never may).
fn split_domain(name: &str) -> (String, String) {
    let (domain, path) = match name.split_once('/') {
        Some((first, rest)) if is_domain(first) => (first.to_string(), rest.to_string()),
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    let domain = if domain == LEGACY_DEFAULT_DOMAIN {
        DEFAULT_DOMAIN.to_string()
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_REPO_PREFIX}{path}")
    } else {
        path
    };
    (domain, path)
}

/// Whether the first component of a name is a registry host rather than part of the path.
fn is_domain(first: &str) -> bool {
    first.contains(['.', ':'])
        || first == "localhost"
        || first.chars().any(|c| c.is_ascii_uppercase())
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_alnum_lower(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn validate_tag(tag: &str) -> Result<(), Error> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format_args!(
            "invalid tag {tag:?}: must match [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}}"
        )))
    }
}

fn validate_digest(d: &str) -> Result<(), Error> {
    let Some((algo, encoded)) = d.split_once(':') else {
        return Err(invalid(format_args!(
            "invalid digest {d:?}: expected algorithm:hex"
        )));
    };
    let algo_ok = !algo.is_empty()
        && algo.split(['+', '.', '_', '-']).all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let encoded_ok = match algo {
        "sha256" => encoded.len() == 64 && is_lower_hex(encoded),
        "sha512" => encoded.len() == 128 && is_lower_hex(encoded),
        _ => {
            encoded.len() >= 32
                && encoded
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
        }
    };
    if algo_ok && encoded_ok {
        Ok(())
    } else {
        Err(invalid(format_args!("invalid digest {d:?}")))
    }
}

fn validate_domain(domain: &str, whole: &str) -> Result<(), Error> {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // Bracketed IPv6 literal, optionally followed by a port.
        let Some((ip, after)) = rest.split_once(']') else {
            return Err(invalid(format_args!("invalid registry host in {whole:?}")));
        };
        if ip.is_empty() || !ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(invalid(format_args!("invalid registry host in {whole:?}")));
        }
        let port = match after {
            "" => None,
            p => match p.strip_prefix(':') {
                Some(p) => Some(p),
                None => return Err(invalid(format_args!("invalid registry host in {whole:?}"))),
            },
        };
        (None, port)
    } else {
        match domain.split_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let ok = !host.is_empty()
            && host.split('.').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !c.starts_with('-')
                    && !c.ends_with('-')
            });
        if !ok {
            return Err(invalid(format_args!(
                "invalid registry host {domain:?} in {whole:?}"
            )));
        }
    }
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format_args!(
                "invalid registry port {p:?} in {whole:?}"
            )));
        }
    }
    Ok(())
}

/// path-component := [a-z0-9]+ (separator [a-z0-9]+)*, separator := [_.] | "__" | [-]+
fn validate_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum_lower(b[0]) || !is_alnum_lower(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum_lower(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum_lower(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let valid_sep = sep == "."
            || sep == "_"
            || sep == "__"
            || (!sep.is_empty() && sep.bytes().all(|x| x == b'-'));
        if !valid_sep {
            return false;
        }
    }
    true
}

fn validate_path(path: &str, whole: &str) -> Result<(), Error> {
    if path.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(invalid(format_args!(
            "repository name ({path}) must be lowercase"
        )));
    }
    if path.is_empty() || !path.split('/').all(validate_component) {
        return Err(invalid(format_args!(
            "invalid repository name {path:?} in {whole:?}: components must match [a-z0-9]+([._-][a-z0-9]+)*"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_table() {
        let d = "sha256:".to_string() + &"a".repeat(64);
        // input, domain, path, tag, digest, familiar, familiar repository
        type Case<'a> = (
            String,
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            String,
            &'a str,
        );
        let cases: Vec<Case> = vec![
            (
                "busybox".into(),
                "docker.io",
                "library/busybox",
                Some("latest"),
                None,
                "busybox:latest".into(),
                "busybox",
            ),
            (
                "busybox:1".into(),
                "docker.io",
                "library/busybox",
                Some("1"),
                None,
                "busybox:1".into(),
                "busybox",
            ),
            (
                "docker.io/library/busybox:latest".into(),
                "docker.io",
                "library/busybox",
                Some("latest"),
                None,
                "busybox:latest".into(),
                "busybox",
            ),
            (
                "index.docker.io/busybox".into(),
                "docker.io",
                "library/busybox",
                Some("latest"),
                None,
                "busybox:latest".into(),
                "busybox",
            ),
            (
                "user/app".into(),
                "docker.io",
                "user/app",
                Some("latest"),
                None,
                "user/app:latest".into(),
                "user/app",
            ),
            (
                "localhost:5000/a/b:t".into(),
                "localhost:5000",
                "a/b",
                Some("t"),
                None,
                "localhost:5000/a/b:t".into(),
                "localhost:5000/a/b",
            ),
            (
                "localhost/x".into(),
                "localhost",
                "x",
                Some("latest"),
                None,
                "localhost/x:latest".into(),
                "localhost/x",
            ),
            (
                "quay.io/co-re/my_app__x.y:v1.2-rc_3".into(),
                "quay.io",
                "co-re/my_app__x.y",
                Some("v1.2-rc_3"),
                None,
                "quay.io/co-re/my_app__x.y:v1.2-rc_3".into(),
                "quay.io/co-re/my_app__x.y",
            ),
            (
                format!("busybox@{d}"),
                "docker.io",
                "library/busybox",
                None,
                Some(&d),
                format!("busybox@{d}"),
                "busybox",
            ),
            (
                format!("busybox:1@{d}"),
                "docker.io",
                "library/busybox",
                Some("1"),
                Some(&d),
                format!("busybox:1@{d}"),
                "busybox",
            ),
            (
                "[::1]:5000/img".into(),
                "[::1]:5000",
                "img",
                Some("latest"),
                None,
                "[::1]:5000/img:latest".into(),
                "[::1]:5000/img",
            ),
        ];
        for (input, domain, path, tag, digest, familiar, frepo) in cases {
            let r = Reference::parse(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.domain(), domain, "{input}");
            assert_eq!(r.path(), path, "{input}");
            assert_eq!(r.tag(), tag, "{input}");
            assert_eq!(r.digest(), digest, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(r.familiar_repository(), frepo, "{input}");
            // Display is the full form and re-parses to the same value.
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r, "{input}");
        }
        assert_eq!(
            Reference::parse("busybox").unwrap().to_string(),
            "docker.io/library/busybox:latest"
        );
    }

    /// Found by fuzz/fuzz_targets/reference.rs: the short form of a Docker Hub repository
    /// whose first path component looks like a host named another registry.
    #[test]
    fn familiar_form_names_the_same_image() {
        for s in [
            "docker.io/example.com/app:1",
            "docker.io/localhost/x",
            "index.docker.io/a.b/c/d",
        ] {
            let r = Reference::parse(s).unwrap();
            assert_eq!(r.domain(), "docker.io", "{s}");
            assert!(r.familiar().starts_with("docker.io/"), "{}", r.familiar());
            assert_eq!(Reference::parse(&r.familiar()).unwrap(), r, "{s}");
        }
        assert_eq!(
            Reference::parse("docker.io/user/app").unwrap().familiar(),
            "user/app:latest"
        );
    }

    #[test]
    fn invalid_references() {
        let bad = [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "busybox:a b",
            &format!("busybox:{}", "t".repeat(129)),
            "bu--sy..box",
            "-busybox",
            "busybox-",
            "a//b",
            "a/",
            "/a",
            "busybox@sha256:abc",
            "busybox@sha256",
            "busybox@",
            "localhost:abc/x",
            "-bad.host/x",
            "docker.io/",
            &"a".repeat(64),
            &format!("x/{}", "a".repeat(300)),
            "a b",
        ];
        for s in bad {
            match Reference::parse(s) {
                Err(Error::InvalidReference(msg)) => {
                    assert!(!msg.contains('\n'), "{msg}");
                }
                other => panic!("{s:?} should be invalid, got {other:?}"),
            }
        }
        let Err(Error::InvalidReference(msg)) = Reference::parse("Busybox") else {
            panic!()
        };
        assert!(msg.contains("must be lowercase"), "{msg}");
        // Docker takes an uppercase first component as a registry host.
        assert_eq!(Reference::parse("UPPER/x").unwrap().domain(), "UPPER");
    }
}
