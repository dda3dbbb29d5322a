//! `policy.json` (containers-policy.json(5)): which requirements an image must meet, per
//! transport and scope. The parser is strict, as containers/image's: an unknown field, type
//! or transport is an error naming the file and the field, never something skipped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::identity::{ImageRef, SignedIdentity};
use crate::{io_err, Error};

/// The system-wide policy file.
pub const SYSTEM_POLICY: &str = "/etc/containers/policy.json";

/// The transports containers/image knows; their scopes are kept but only `docker` (a
/// registry) applies to hako's pulls.
const TRANSPORTS: &[&str] = &[
    "atomic",
    "containers-storage",
    "dir",
    "docker",
    "docker-archive",
    "docker-daemon",
    "oci",
    "oci-archive",
    "ostree",
    "sif",
    "tarball",
];

/// Where a key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// `keyPath`.
    Path(PathBuf),
    /// `keyPaths` (GPG only).
    Paths(Vec<PathBuf>),
    /// `keyData`, already decoded from base64.
    Data(Vec<u8>),
}

impl KeySource {
    /// The key material, each file read whole.
    pub fn load(&self) -> Result<Vec<Vec<u8>>, Error> {
        let read = |p: &PathBuf| std::fs::read(p).map_err(io_err(p));
        match self {
            KeySource::Path(p) => Ok(vec![read(p)?]),
            KeySource::Paths(ps) => ps.iter().map(read).collect(),
            KeySource::Data(d) => Ok(vec![d.clone()]),
        }
    }

    fn describe(&self) -> String {
        match self {
            KeySource::Path(p) => p.display().to_string(),
            KeySource::Paths(ps) => ps
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(","),
            KeySource::Data(_) => "(keyData)".into(),
        }
    }
}

/// One policy requirement; an image must meet every requirement of its scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// Accepted without any check.
    InsecureAcceptAnything,
    /// Always refused.
    Reject,
    /// A simple signature made by one of these GPG keys.
    SignedBy {
        /// The trusted public keys (keyring files or armored exports).
        keys: KeySource,
        /// Which signed identities are acceptable.
        identity: SignedIdentity,
    },
    /// A sigstore signature made with this public key.
    SigstoreSigned {
        /// The PEM public key.
        key: KeySource,
        /// Which signed identities are acceptable.
        identity: SignedIdentity,
    },
}

impl Requirement {
    /// The policy's name of this requirement type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Requirement::InsecureAcceptAnything => "insecureAcceptAnything",
            Requirement::Reject => "reject",
            Requirement::SignedBy { .. } => "signedBy",
            Requirement::SigstoreSigned { .. } => "sigstoreSigned",
        }
    }
}

/// Where the policy came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicySource {
    /// A policy file.
    File(PathBuf),
    /// No policy file exists: every image is accepted, as Docker does (containers/image
    /// refuses to work without one; hako keeps Docker's behaviour on hosts that never set
    /// one up).
    None,
}

/// The scope a reference fell in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `default`.
    Default,
    /// `transports.docker[""]`.
    TransportDefault,
    /// `transports.docker[name]`.
    Docker(String),
}

impl Scope {
    /// The place of the scope in the file, as it is written there.
    pub fn describe(&self) -> String {
        match self {
            Scope::Default => "default".into(),
            Scope::TransportDefault => "transports.docker[\"\"]".into(),
            Scope::Docker(s) => format!("transports.docker[{s:?}]"),
        }
    }
}

/// A parsed policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The file it was read from.
    pub source: PolicySource,
    /// `default`.
    pub default: Vec<Requirement>,
    /// `transports`: transport → scope → requirements.
    pub transports: BTreeMap<String, BTreeMap<String, Vec<Requirement>>>,
}

fn config_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Config {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

impl Policy {
    /// The policy file in effect: `$HAKO_POLICY`; else `~/.config/containers/policy.json`
    /// when it exists (containers/image reads it first, for root too); else
    /// `/etc/containers/policy.json`; else none.
    pub fn path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("HAKO_POLICY").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        if let Some(user) = crate::home().map(|h| h.join(".config/containers/policy.json")) {
            if user.exists() {
                return Some(user);
            }
        }
        let system = PathBuf::from(SYSTEM_POLICY);
        system.exists().then_some(system)
    }

    /// Reads the policy in effect ([`Policy::path`]). A file `HAKO_POLICY` names must exist.
    pub fn load() -> Result<Policy, Error> {
        match Policy::path() {
            Some(p) => {
                let data = std::fs::read(&p).map_err(io_err(&p))?;
                Policy::parse(&data, &p)
            }
            None => Ok(Policy {
                source: PolicySource::None,
                default: vec![Requirement::InsecureAcceptAnything],
                transports: BTreeMap::new(),
            }),
        }
    }

    /// Parses a policy file's contents; `path` names it in errors. Relative key paths stay
    /// relative to the working directory, as containers/image leaves them.
    pub fn parse(data: &[u8], path: &Path) -> Result<Policy, Error> {
        let v: Value = serde_json::from_slice(data)
            .map_err(|e| config_err(path, format!("invalid JSON: {e}")))?;
        let top = v
            .as_object()
            .ok_or_else(|| config_err(path, "the policy must be a JSON object"))?;
        let p = Parser { path };
        p.only(top, "", &["default", "transports"])?;
        let default = match top.get("default") {
            Some(d) => p.requirements(d, "default")?,
            None => return Err(config_err(path, "\"default\" is missing")),
        };
        let mut transports = BTreeMap::new();
        match top.get("transports") {
            None | Some(Value::Null) => {}
            Some(Value::Object(t)) => {
                for (name, scopes) in t {
                    let field = format!("transports.{name}");
                    if !TRANSPORTS.contains(&name.as_str()) {
                        return Err(config_err(path, format!("{field}: unknown transport")));
                    }
                    let scopes = scopes.as_object().ok_or_else(|| {
                        config_err(path, format!("{field}: must be an object of scopes"))
                    })?;
                    let mut parsed = BTreeMap::new();
                    for (scope, reqs) in scopes {
                        let field = format!("{field}[{scope:?}]");
                        if name == "docker" {
                            validate_docker_scope(scope)
                                .map_err(|m| config_err(path, format!("{field}: {m}")))?;
                        }
                        parsed.insert(scope.clone(), p.requirements(reqs, &field)?);
                    }
                    transports.insert(name.clone(), parsed);
                }
            }
            Some(_) => return Err(config_err(path, "transports: must be an object")),
        }
        Ok(Policy {
            source: PolicySource::File(path.to_path_buf()),
            default,
            transports,
        })
    }

    /// The requirements for an image pulled from a registry as `image`, and the scope they
    /// come from: the most specific `transports.docker` scope (the reference with its tag or
    /// digest, the repository, each enclosing namespace, the registry, then `*.domain`
    /// wildcards from the longest), then `transports.docker[""]`, then `default`.
    pub fn requirements_for(&self, image: &ImageRef) -> (Scope, &[Requirement]) {
        if let Some(docker) = self.transports.get("docker") {
            for candidate in scope_candidates(image) {
                if let Some(r) = docker.get(&candidate) {
                    return (Scope::Docker(candidate), r);
                }
            }
            if let Some(r) = docker.get("") {
                return (Scope::TransportDefault, r);
            }
        }
        (Scope::Default, &self.default)
    }

    /// Whether a pull can skip evaluation: every requirement anywhere is
    /// `insecureAcceptAnything`.
    pub fn accepts_everything(&self) -> bool {
        let all = |r: &[Requirement]| r.iter().all(|r| *r == Requirement::InsecureAcceptAnything);
        all(&self.default)
            && self
                .transports
                .get("docker")
                .is_none_or(|d| d.values().all(|r| all(r)))
    }

    /// The policy as `hako image trust show` prints it: one line per requirement.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match &self.source {
            PolicySource::File(p) => {
                let _ = writeln!(out, "Policy: {}", p.display());
            }
            PolicySource::None => {
                let _ = writeln!(
                    out,
                    "Policy: none (no {SYSTEM_POLICY}): every image is accepted"
                );
            }
        }
        let mut rows = vec![[
            "SCOPE".to_string(),
            "TYPE".into(),
            "KEYS".into(),
            "IDENTITY".into(),
        ]];
        let mut add = |scope: &str, reqs: &[Requirement]| {
            for r in reqs {
                let (keys, identity) = match r {
                    Requirement::SignedBy { keys, identity }
                    | Requirement::SigstoreSigned {
                        key: keys,
                        identity,
                    } => (keys.describe(), describe_identity(identity)),
                    _ => ("-".into(), "-".into()),
                };
                rows.push([scope.to_string(), r.type_name().into(), keys, identity]);
            }
        };
        add("default", &self.default);
        if let Some(docker) = self.transports.get("docker") {
            for (scope, reqs) in docker {
                let name = if scope.is_empty() {
                    "docker (all registries)"
                } else {
                    scope
                };
                add(name, reqs);
            }
        }
        let widths: Vec<usize> = (0..4)
            .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
            .collect();
        for r in &rows {
            let line = format!(
                "{:w0$}  {:w1$}  {:w2$}  {}",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2]
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let others: Vec<&str> = self
            .transports
            .keys()
            .filter(|t| *t != "docker")
            .map(String::as_str)
            .collect();
        if !others.is_empty() {
            let _ = writeln!(
                out,
                "(scopes of other transports, which hako does not pull from: {})",
                others.join(", ")
            );
        }
        out
    }
}

fn describe_identity(id: &SignedIdentity) -> String {
    match id {
        SignedIdentity::ExactReference(r) => format!("exactReference {r}"),
        SignedIdentity::ExactRepository(r) => format!("exactRepository {r}"),
        SignedIdentity::RemapIdentity {
            prefix,
            signed_prefix,
        } => format!("remapIdentity {prefix} -> {signed_prefix}"),
        other => other.name().to_string(),
    }
}

/// The docker scopes an image falls in, most specific first.
fn scope_candidates(image: &ImageRef) -> Vec<String> {
    let mut out = Vec::new();
    let repo = image.repository();
    if let Some(d) = image.digest() {
        out.push(format!("{repo}@{d}"));
    }
    if let Some(t) = image.tag() {
        out.push(format!("{repo}:{t}"));
    }
    let mut name = repo.as_str();
    out.push(name.to_string());
    while let Some(slash) = name.rfind('/') {
        name = &name[..slash];
        out.push(name.to_string());
    }
    // Wildcards match subdomains of a registry without a port.
    let host = image.domain();
    if !host.contains(':') {
        let mut rest = host;
        while let Some(dot) = rest.find('.') {
            out.push(format!("*{}", &rest[dot..]));
            rest = &rest[dot + 1..];
        }
    }
    out
}

/// A docker scope: a registry host, `host/namespace`, a repository, a reference with a tag or
/// digest, or `*.domain`; all written in full (no `busybox` for `docker.io/library/busybox`).
fn validate_docker_scope(scope: &str) -> Result<(), String> {
    if scope.is_empty() {
        return Ok(());
    }
    if let Some(domain) = scope.strip_prefix("*.") {
        let ok = !domain.is_empty()
            && domain.split('.').all(|label| {
                !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        return match ok {
            true => Ok(()),
            false => Err(format!(
                "invalid wildcard scope {scope:?}: expected *.domain"
            )),
        };
    }
    if !scope.contains('/') {
        // A registry alone: a host name, maybe with a port.
        let (host, port) = match scope.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (scope, None),
        };
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
        return match host_ok && port_ok {
            true => Ok(()),
            false => Err(format!("invalid scope {scope:?}: not a registry host")),
        };
    }
    ImageRef::parse_full(scope)
        .map(|_| ())
        .map_err(|e| format!("invalid scope: {e}"))
}

struct Parser<'a> {
    path: &'a Path,
}

impl Parser<'_> {
    fn err(&self, m: impl Into<String>) -> Error {
        config_err(self.path, m)
    }

    /// Refuses any field not in `allowed`.
    fn only(&self, obj: &Map<String, Value>, at: &str, allowed: &[&str]) -> Result<(), Error> {
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                let field = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                return Err(self.err(format!("{field}: unknown field")));
            }
        }
        Ok(())
    }

    fn string<'v>(
        &self,
        obj: &'v Map<String, Value>,
        at: &str,
        k: &str,
    ) -> Result<Option<&'v str>, Error> {
        match obj.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(self.err(format!("{at}.{k}: must be a string"))),
        }
    }

    fn requirements(&self, v: &Value, at: &str) -> Result<Vec<Requirement>, Error> {
        let list = v
            .as_array()
            .ok_or_else(|| self.err(format!("{at}: must be a list of requirements")))?;
        if list.is_empty() {
            return Err(self.err(format!("{at}: the list of requirements is empty")));
        }
        list.iter()
            .enumerate()
            .map(|(i, r)| self.requirement(r, &format!("{at}[{i}]")))
            .collect()
    }

    fn requirement(&self, v: &Value, at: &str) -> Result<Requirement, Error> {
        let obj = v
            .as_object()
            .ok_or_else(|| self.err(format!("{at}: must be an object")))?;
        let ty = self
            .string(obj, at, "type")?
            .ok_or_else(|| self.err(format!("{at}.type: missing")))?;
        match ty {
            "insecureAcceptAnything" => {
                self.only(obj, at, &["type"])?;
                Ok(Requirement::InsecureAcceptAnything)
            }
            "reject" => {
                self.only(obj, at, &["type"])?;
                Ok(Requirement::Reject)
            }
            "signedBy" => {
                self.only(
                    obj,
                    at,
                    &[
                        "type",
                        "keyType",
                        "keyPath",
                        "keyPaths",
                        "keyData",
                        "signedIdentity",
                    ],
                )?;
                match self.string(obj, at, "keyType")? {
                    Some("GPGKeys") => {}
                    Some(other) => {
                        return Err(self.err(format!(
                            "{at}.keyType: {other:?} is not supported (only \"GPGKeys\")"
                        )))
                    }
                    None => return Err(self.err(format!("{at}.keyType: missing"))),
                }
                let keys = self.keys(obj, at, true)?;
                let identity = self.identity(obj.get("signedIdentity"), at)?;
                Ok(Requirement::SignedBy { keys, identity })
            }
            "sigstoreSigned" => {
                for unsupported in ["fulcio", "rekorPublicKeyPath", "rekorPublicKeyData"] {
                    if obj.contains_key(unsupported) {
                        return Err(self.err(format!(
                            "{at}.{unsupported}: Fulcio certificates and Rekor are not supported; use a public key (keyPath or keyData)"
                        )));
                    }
                }
                self.only(obj, at, &["type", "keyPath", "keyData", "signedIdentity"])?;
                let key = self.keys(obj, at, false)?;
                let identity = self.identity(obj.get("signedIdentity"), at)?;
                Ok(Requirement::SigstoreSigned { key, identity })
            }
            other => Err(self.err(format!(
                "{at}.type: unknown policy requirement type {other:?}"
            ))),
        }
    }

    fn keys(&self, obj: &Map<String, Value>, at: &str, many: bool) -> Result<KeySource, Error> {
        let path = self.string(obj, at, "keyPath")?;
        let data = self.string(obj, at, "keyData")?;
        let paths = match obj.get("keyPaths") {
            None => None,
            Some(Value::Array(a)) if !a.is_empty() => Some(
                a.iter()
                    .map(|p| p.as_str().map(PathBuf::from))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| self.err(format!("{at}.keyPaths: must be a list of strings")))?,
            ),
            Some(_) => {
                return Err(self.err(format!(
                    "{at}.keyPaths: must be a non-empty list of strings"
                )))
            }
        };
        let given = [path.is_some(), data.is_some(), paths.is_some()]
            .iter()
            .filter(|g| **g)
            .count();
        let names = if many {
            "keyPath, keyPaths or keyData"
        } else {
            "keyPath or keyData"
        };
        if given != 1 {
            return Err(self.err(format!("{at}: exactly one of {names} must be given")));
        }
        if let Some(p) = path {
            return Ok(KeySource::Path(PathBuf::from(p)));
        }
        if let Some(ps) = paths {
            return Ok(KeySource::Paths(ps));
        }
        use base64::Engine as _;
        let data = data.unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map(KeySource::Data)
            .map_err(|e| self.err(format!("{at}.keyData: not base64: {e}")))
    }

    fn identity(&self, v: Option<&Value>, at: &str) -> Result<SignedIdentity, Error> {
        let Some(v) = v else {
            return Ok(SignedIdentity::MatchRepoDigestOrExact);
        };
        let at = format!("{at}.signedIdentity");
        let obj = v
            .as_object()
            .ok_or_else(|| self.err(format!("{at}: must be an object")))?;
        let ty = self
            .string(obj, &at, "type")?
            .ok_or_else(|| self.err(format!("{at}.type: missing")))?;
        let required = |k: &str| -> Result<&str, Error> {
            self.string(obj, &at, k)?
                .ok_or_else(|| self.err(format!("{at}.{k}: missing")))
        };
        match ty {
            "matchExact" | "matchRepoDigestOrExact" | "matchRepository" => {
                self.only(obj, &at, &["type"])?;
                Ok(match ty {
                    "matchExact" => SignedIdentity::MatchExact,
                    "matchRepoDigestOrExact" => SignedIdentity::MatchRepoDigestOrExact,
                    _ => SignedIdentity::MatchRepository,
                })
            }
            "exactReference" => {
                self.only(obj, &at, &["type", "dockerReference"])?;
                let s = required("dockerReference")?;
                let r = ImageRef::parse_full(s)
                    .map_err(|e| self.err(format!("{at}.dockerReference: {e}")))?;
                let tagged =
                    s.contains('@') || s.rsplit('/').next().is_some_and(|l| l.contains(':'));
                if !tagged {
                    return Err(self.err(format!(
                        "{at}.dockerReference: {s:?} has neither a tag nor a digest"
                    )));
                }
                Ok(SignedIdentity::ExactReference(r))
            }
            "exactRepository" => {
                self.only(obj, &at, &["type", "dockerRepository"])?;
                let s = required("dockerRepository")?;
                let r = ImageRef::parse_full(s)
                    .map_err(|e| self.err(format!("{at}.dockerRepository: {e}")))?;
                if r.repository() != s {
                    return Err(self.err(format!(
                        "{at}.dockerRepository: {s:?} is not a repository name (no tag or digest)"
                    )));
                }
                Ok(SignedIdentity::ExactRepository(s.to_string()))
            }
            "remapIdentity" => {
                self.only(obj, &at, &["type", "prefix", "signedPrefix"])?;
                let prefix = required("prefix")?;
                let signed_prefix = required("signedPrefix")?;
                for (k, v) in [("prefix", prefix), ("signedPrefix", signed_prefix)] {
                    validate_docker_scope(v)
                        .and_then(|_| match v.is_empty() || v.starts_with("*.") {
                            true => {
                                Err(format!("{v:?} is not a registry, namespace or repository"))
                            }
                            false => Ok(()),
                        })
                        .map_err(|m| self.err(format!("{at}.{k}: {m}")))?;
                }
                Ok(SignedIdentity::RemapIdentity {
                    prefix: prefix.to_string(),
                    signed_prefix: signed_prefix.to_string(),
                })
            }
            other => Err(self.err(format!("{at}.type: unknown identity type {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Policy, String> {
        Policy::parse(s.as_bytes(), Path::new("/p.json")).map_err(|e| e.to_string())
    }

    fn r(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn minimal_and_default_scope() {
        let p = parse(r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();
        assert!(p.accepts_everything());
        let (scope, reqs) = p.requirements_for(&r("busybox"));
        assert_eq!(scope, Scope::Default);
        assert_eq!(reqs, &[Requirement::InsecureAcceptAnything]);
    }

    #[test]
    fn strict_errors_name_the_field() {
        let e = parse(r#"{"default":[{"type":"reject","x":1}]}"#).unwrap_err();
        assert_eq!(e, "/p.json: default[0].x: unknown field");
        // Found by fuzzing: a key holding a newline split the error in two lines.
        let e = Policy::parse(
            br#"{"default":[{"type":"reject","x\ny\u001b":1}]}"#,
            Path::new("/p.json"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "/p.json: default[0].x\\ny\\u{1b}: unknown field");
        let e = parse(r#"{"default":[{"type":"nope"}]}"#).unwrap_err();
        assert!(
            e.contains("default[0].type: unknown policy requirement type"),
            "{e}"
        );
        let e = parse(r#"{"default":[]}"#).unwrap_err();
        assert!(
            e.contains("default: the list of requirements is empty"),
            "{e}"
        );
        let e = parse(r#"{"transports":{}}"#).unwrap_err();
        assert!(e.contains("\"default\" is missing"), "{e}");
        let e = parse(r#"{"default":[{"type":"reject"}],"extra":1}"#).unwrap_err();
        assert!(e.contains("extra: unknown field"), "{e}");
        let e = parse(r#"{"default":[{"type":"reject"}],"transports":{"dockr":{}}}"#).unwrap_err();
        assert!(e.contains("transports.dockr: unknown transport"), "{e}");
        let e = parse(r#"{"default":[{"type":"signedBy","keyType":"GPGKeys"}]}"#).unwrap_err();
        assert!(
            e.contains("exactly one of keyPath, keyPaths or keyData"),
            "{e}"
        );
        let e = parse(
            r#"{"default":[{"type":"signedBy","keyType":"X509Certificates","keyPath":"/k"}]}"#,
        )
        .unwrap_err();
        assert!(e.contains("default[0].keyType"), "{e}");
        let e = parse(r#"{"default":[{"type":"sigstoreSigned","keyPath":"/k","fulcio":{}}]}"#)
            .unwrap_err();
        assert!(e.contains("default[0].fulcio"), "{e}");
        let e = parse(
            r#"{"default":[{"type":"sigstoreSigned","keyPath":"/k","signedIdentity":{"type":"exactReference","dockerReference":"busybox:1"}}]}"#,
        )
        .unwrap_err();
        assert!(
            e.contains("default[0].signedIdentity.dockerReference"),
            "{e}"
        );
        let e = parse(
            r#"{"default":[{"type":"reject"}],"transports":{"docker":{"library/busybox":[{"type":"reject"}]}}}"#,
        )
        .unwrap_err();
        assert!(
            e.contains("transports.docker[\"library/busybox\"]: invalid scope"),
            "{e}"
        );
        assert!(!e.contains('\n'));
    }

    #[test]
    fn most_specific_scope_wins() {
        let p = parse(
            r#"{
            "default": [{"type": "reject"}],
            "transports": {
                "docker": {
                    "": [{"type": "insecureAcceptAnything"}],
                    "example.com": [{"type": "reject"}],
                    "example.com/ns": [{"type": "insecureAcceptAnything"}],
                    "example.com/ns/app": [{"type": "sigstoreSigned", "keyPath": "/k.pub"}],
                    "example.com/ns/app:pinned": [{"type": "reject"}],
                    "*.corp.net": [{"type": "reject"}],
                    "*.net": [{"type": "insecureAcceptAnything"}]
                },
                "docker-daemon": {"": [{"type": "insecureAcceptAnything"}]}
            }
        }"#,
        )
        .unwrap();
        let scope = |s: &str| p.requirements_for(&r(s)).0.describe();
        assert_eq!(
            scope("example.com/ns/app:pinned"),
            "transports.docker[\"example.com/ns/app:pinned\"]"
        );
        assert_eq!(
            scope("example.com/ns/app:1"),
            "transports.docker[\"example.com/ns/app\"]"
        );
        assert_eq!(
            scope("example.com/ns/other:1"),
            "transports.docker[\"example.com/ns\"]"
        );
        assert_eq!(
            scope("example.com/nsx/a:1"),
            "transports.docker[\"example.com\"]"
        );
        assert_eq!(
            scope("reg.corp.net/a:1"),
            "transports.docker[\"*.corp.net\"]"
        );
        assert_eq!(scope("a.b.net/a:1"), "transports.docker[\"*.net\"]");
        assert_eq!(scope("busybox"), "transports.docker[\"\"]");
        assert!(!p.accepts_everything());
        let text = p.render();
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>()
                    == [
                        "example.com/ns/app",
                        "sigstoreSigned",
                        "/k.pub",
                        "matchRepoDigestOrExact"
                    ]),
            "{text}"
        );
    }

    #[test]
    fn signed_by_fields() {
        let p = parse(
            r#"{"default":[{"type":"signedBy","keyType":"GPGKeys","keyData":"aGVsbG8=",
                "signedIdentity":{"type":"remapIdentity","prefix":"m.local/ns","signedPrefix":"quay.io/ns"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            p.default[0],
            Requirement::SignedBy {
                keys: KeySource::Data(b"hello".to_vec()),
                identity: SignedIdentity::RemapIdentity {
                    prefix: "m.local/ns".into(),
                    signed_prefix: "quay.io/ns".into()
                }
            }
        );
    }

    #[test]
    fn fuzz_entry_survives_garbage() {
        crate::fuzzing::policy(
            b"{\"default\":[{\"type\":\"reject\"}],\"transports\":{\"docker\":{\"*.\":[]}}}",
        );
        crate::fuzzing::policy(b"\xff\x00");
    }
}
