//! Registry credentials (`~/.docker/config.json`) and `WWW-Authenticate`
//! challenges.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;

use crate::Error;

/// A user name and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The `Authorization: Basic …` header value.
    pub(crate) fn basic(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// The Docker client config directory: `$DOCKER_CONFIG` or `~/.docker`.
pub fn docker_config_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(d));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker"))
}

/// Keys under which `docker login` may have recorded a registry.
pub(crate) fn config_keys(domain: &str) -> Vec<String> {
    if domain == "docker.io" {
        return vec![
            "https://index.docker.io/v1/".into(),
            "index.docker.io".into(),
            "docker.io".into(),
            "https://index.docker.io".into(),
            "registry-1.docker.io".into(),
        ];
    }
    vec![
        domain.to_string(),
        format!("https://{domain}"),
        format!("http://{domain}"),
        format!("https://{domain}/v1/"),
        format!("https://{domain}/v2/"),
    ]
}

/// The server name `docker login` uses as the config key.
pub fn config_key(domain: &str) -> String {
    config_keys(domain).remove(0)
}

fn read_config() -> Result<serde_json::Value, Error> {
    let Some(dir) = docker_config_dir() else {
        return Ok(serde_json::Value::Null);
    };
    let path = dir.join("config.json");
    match std::fs::read(&path) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| Error::Config {
            path: path.clone(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::Value::Null),
        Err(e) => Err(Error::Config {
            path,
            message: e.to_string(),
        }),
    }
}

/// Credentials for `domain`, from a credential helper or the `auths` map.
pub fn lookup(domain: &str) -> Result<Option<Credentials>, Error> {
    let cfg = read_config()?;
    let keys = config_keys(domain);
    let helper = keys
        .iter()
        .find_map(|k| cfg["credHelpers"][k].as_str())
        .or_else(|| cfg["credsStore"].as_str());
    if let Some(h) = helper.filter(|h| !h.is_empty()) {
        if let Some(c) = from_helper(h, &keys[0])? {
            return Ok(Some(c));
        }
    }
    for k in &keys {
        let entry = &cfg["auths"][k];
        if let Some(auth) = entry["auth"].as_str().filter(|a| !a.is_empty()) {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|e| Error::Config {
                    path: PathBuf::from("config.json"),
                    message: format!("auths.{k}.auth is not base64: {e}"),
                })?;
            let raw = String::from_utf8_lossy(&raw).into_owned();
            if let Some((u, p)) = raw.split_once(':') {
                return Ok(Some(Credentials {
                    username: u.to_string(),
                    password: p.to_string(),
                }));
            }
        }
        if let (Some(u), Some(p)) = (entry["username"].as_str(), entry["password"].as_str()) {
            return Ok(Some(Credentials {
                username: u.into(),
                password: p.into(),
            }));
        }
    }
    Ok(None)
}

/// Runs `docker-credential-<helper> get` as the Docker CLI does.
fn from_helper(helper: &str, server: &str) -> Result<Option<Credentials>, Error> {
    let prog = format!("docker-credential-{helper}");
    let child = Command::new(&prog)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return Err(Error::Config {
                path: PathBuf::from(&prog),
                message: format!("cannot run credential helper: {e}"),
            })
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(server.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| Error::Config {
        path: PathBuf::from(&prog),
        message: e.to_string(),
    })?;
    if !out.status.success() {
        // "credentials not found in native keychain": anonymous access.
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| Error::Config {
        path: PathBuf::from(&prog),
        message: format!("unreadable answer: {e}"),
    })?;
    match (v["Username"].as_str(), v["Secret"].as_str()) {
        (Some(u), Some(s)) if !s.is_empty() => Ok(Some(Credentials {
            username: u.into(),
            password: s.into(),
        })),
        _ => Ok(None),
    }
}

/// Records credentials in `config.json` the way `docker login` does
/// (base64 `auth` under `auths`), keeping everything else in the file.
pub fn store(domain: &str, creds: &Credentials) -> Result<PathBuf, Error> {
    edit_config(|cfg| {
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.username, creds.password));
        let obj = cfg
            .as_object_mut()
            .map(|o| o.entry("auths").or_insert_with(|| serde_json::json!({})));
        if let Some(auths) = obj.and_then(|a| a.as_object_mut()) {
            auths.insert(config_key(domain), serde_json::json!({ "auth": auth }));
        }
        true
    })
}

/// Removes stored credentials; `false` if there were none.
pub fn erase(domain: &str) -> Result<bool, Error> {
    let mut found = false;
    edit_config(|cfg| {
        if let Some(auths) = cfg["auths"].as_object_mut() {
            for k in config_keys(domain) {
                found |= auths.remove(&k).is_some();
            }
        }
        found
    })?;
    Ok(found)
}

fn edit_config(f: impl FnOnce(&mut serde_json::Value) -> bool) -> Result<PathBuf, Error> {
    let dir = docker_config_dir().ok_or_else(|| Error::Config {
        path: PathBuf::from("~/.docker"),
        message: "HOME is not set".into(),
    })?;
    let path = dir.join("config.json");
    let mut cfg = read_config()?;
    if !cfg.is_object() {
        cfg = serde_json::json!({});
    }
    if !f(&mut cfg) {
        return Ok(path);
    }
    let cfg_err = |e: std::io::Error| Error::Config {
        path: path.clone(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(&dir).map_err(cfg_err)?;
    let tmp = dir.join(format!("config.json.{}", std::process::id()));
    let body = serde_json::to_vec_pretty(&cfg).map_err(|e| Error::Config {
        path: path.clone(),
        message: e.to_string(),
    })?;
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(cfg_err)?;
        file.write_all(&body).map_err(cfg_err)?;
    }
    std::fs::rename(&tmp, &path).map_err(cfg_err)?;
    Ok(path)
}

/// A parsed `WWW-Authenticate` header: scheme and parameters.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Parses `Bearer realm="…",service="…",scope="a:b:pull,push"`; quoted
/// values may contain commas.
pub(crate) fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = h.split_once(' ').unwrap_or((h, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            val.push(n)
                        }
                    }
                    '"' => break,
                    c => val.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                val.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), val);
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_with_commas_in_scope() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/busybox:pull,push");
        let b = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(b.scheme, "basic");
    }

    #[test]
    fn docker_hub_keys() {
        assert_eq!(config_key("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(config_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
