//! HTTP to one repository of one registry: scheme choice, authentication
//! on demand, retries of transient failures.

use std::fs::File;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ureq::http::{Request, Response};
use ureq::Body;

use crate::auth::{self, parse_challenge, Credentials};
use crate::Error;

/// What a request sends.
pub(crate) enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// Re-opened for each attempt, so a retried upload starts over.
    File(&'a Path),
}

pub(crate) struct Client {
    agent: ureq::Agent,
    /// `https://host[:port]` or `http://…`, without trailing slash.
    base: String,
    domain: String,
    /// Repository path, e.g. `library/busybox`.
    pub repo: String,
    creds: Option<Credentials>,
    /// Actions asked for in Bearer scopes: `pull` or `pull,push`.
    actions: &'static str,
    /// The `Authorization` value that last worked; shared by the layer
    /// threads.
    auth: Mutex<Option<String>>,
}

/// Docker allows plain HTTP for loopback registries without configuration.
pub(crate) fn is_loopback(domain: &str) -> bool {
    let host = match domain.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => domain.rsplit_once(':').map_or(domain, |(h, _)| h),
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.octets()[0] == 127)
}

fn insecure_from_env(domain: &str) -> bool {
    std::env::var("HAKO_INSECURE_REGISTRIES")
        .map(|v| v.split(',').any(|d| d.trim() == domain))
        .unwrap_or(false)
}

pub(crate) const RETRIES: u32 = 3;

/// How long a registry may keep us waiting for a response, or for the next
/// bytes of one, before the request counts as failed and is retried:
/// `HAKO_REGISTRY_TIMEOUT` seconds, 60 by default.
pub(crate) fn io_timeout() -> Duration {
    std::env::var("HAKO_REGISTRY_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(Duration::from_secs(60), Duration::from_secs_f64)
}

impl Client {
    pub fn new(domain: &str, repo: &str, push: bool) -> Result<Client, Error> {
        let host = if domain == "docker.io" {
            "registry-1.docker.io"
        } else {
            domain
        };
        let insecure = is_loopback(domain)
            || insecure_from_env(domain)
            || crate::config::RegistryConfig::load()?.is_insecure(domain);
        let scheme = if insecure { "http" } else { "https" };
        Self::with_base(domain, format!("{scheme}://{host}"), repo, push)
    }

    /// A client for a Docker Hub mirror (`https://host[:port]`, from the
    /// config file): same repository path, the mirror's own credentials.
    pub fn mirror(url: &str, repo: &str) -> Result<Client, Error> {
        let base = url.trim_end_matches('/').to_string();
        let domain = base
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or("")
            .to_string();
        Self::with_base(&domain, base, repo, false)
    }

    fn with_base(domain: &str, base: String, repo: &str, push: bool) -> Result<Client, Error> {
        // No global or resolve timeout: with either, ureq resolves names on a
        // helper thread that may outlive the call, and `hako run` forks right
        // after a pull, which needs a single-threaded process.
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(io_timeout()))
            // An idle timeout, not a total one: a big layer may take long, a
            // stalled connection must not hang the pull.
            .timeout_per_read(Some(io_timeout()))
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .user_agent(concat!("hako/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            agent: config.into(),
            base,
            domain: domain.to_string(),
            repo: repo.to_string(),
            creds: auth::lookup(domain)?,
            actions: if push { "pull,push" } else { "pull" },
            auth: Mutex::new(None),
        })
    }

    /// Uses these credentials instead of the stored ones (`hako login`).
    pub fn with_credentials(mut self, creds: Credentials) -> Client {
        self.creds = Some(creds);
        self
    }

    /// `https://host[:port]` (or `http://` for an insecure registry).
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `base/v2/<repo>/<rest>`.
    pub fn url(&self, rest: &str) -> String {
        format!("{}/v2/{}/{}", self.base, self.repo, rest)
    }

    /// Resolves a `Location` header against the registry.
    pub fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            format!("{}{}", self.base, location)
        } else {
            format!("{}/{}", self.base, location)
        }
    }

    fn send_once(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: &Payload<'_>,
        auth: Option<&str>,
    ) -> Result<Response<Body>, Error> {
        let mut b = Request::builder().method(method).uri(url);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        if let Some(a) = auth {
            b = b.header("Authorization", a);
        }
        let net = |e: ureq::Error| Error::Network {
            url: url.to_string(),
            message: e.to_string(),
        };
        let build = |e: ureq::http::Error| Error::Network {
            url: url.to_string(),
            message: e.to_string(),
        };
        match payload {
            Payload::Empty => {
                let req = b.body(()).map_err(build)?;
                self.agent.run(req).map_err(net)
            }
            Payload::Bytes(d) => {
                let req = b.body(*d).map_err(build)?;
                self.agent.run(req).map_err(net)
            }
            Payload::File(p) => {
                let f = File::open(p).map_err(|e| Error::Io {
                    path: p.to_path_buf(),
                    error: e,
                })?;
                let req = b.body(f).map_err(build)?;
                self.agent.run(req).map_err(net)
            }
        }
    }

    /// Sends a request, authenticating when challenged, and retrying
    /// connection failures and 5xx answers a few times.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
    ) -> Result<Response<Body>, Error> {
        let mut challenged = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = self.auth.lock().map(|a| a.clone()).unwrap_or(None);
            let res = self.send_once(method, url, headers, &payload, current.as_deref());
            let resp = match res {
                Ok(r) => r,
                Err(e @ Error::Network { .. }) if attempt < RETRIES => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = resp.status().as_u16();
            if status == 401 && !challenged {
                challenged = true;
                let header = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let value = self.authenticate(header.as_deref())?;
                if let Ok(mut a) = self.auth.lock() {
                    *a = Some(value);
                }
                continue;
            }
            if status >= 500 && attempt < RETRIES {
                std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
                continue;
            }
            return Ok(resp);
        }
    }

    /// Answers a challenge: Basic with the stored credentials, or a Bearer
    /// token from the realm (anonymous unless credentials are known).
    fn authenticate(&self, header: Option<&str>) -> Result<String, Error> {
        let unauthorized = |msg: String| Error::Unauthorized {
            registry: self.domain.clone(),
            message: msg,
        };
        let ch = header
            .and_then(parse_challenge)
            .ok_or_else(|| unauthorized("authentication required".into()))?;
        match ch.scheme.as_str() {
            "basic" => self
                .creds
                .as_ref()
                .map(Credentials::basic)
                .ok_or_else(|| unauthorized("no basic auth credentials".into())),
            "bearer" => {
                let realm = ch
                    .params
                    .get("realm")
                    .ok_or_else(|| unauthorized("Bearer challenge without realm".into()))?;
                let mut url = format!("{realm}{}", if realm.contains('?') { '&' } else { '?' });
                if let Some(s) = ch.params.get("service") {
                    url.push_str(&format!("service={}&", encode(s)));
                }
                let scope = format!("repository:{}:{}", self.repo, self.actions);
                url.push_str(&format!("scope={}", encode(&scope)));
                let basic = self.creds.as_ref().map(Credentials::basic);
                let resp = self.send_once(
                    "GET",
                    &url,
                    &[("Accept", "application/json")],
                    &Payload::Empty,
                    basic.as_deref(),
                )?;
                let status = resp.status().as_u16();
                let body = read_small(resp, &url)?;
                token_from_answer(status, &body).map_err(unauthorized)
            }
            other => Err(unauthorized(format!(
                "unsupported authentication scheme {other:?}"
            ))),
        }
    }

    /// Checks the registry answers and the credentials are accepted
    /// (`hako login`).
    pub fn ping(&self) -> Result<(), Error> {
        let url = format!("{}/v2/", self.base);
        let resp = self.send("GET", &url, &[], Payload::Empty)?;
        match resp.status().as_u16() {
            200 => Ok(()),
            401 => Err(Error::Unauthorized {
                registry: self.domain.clone(),
                message: "incorrect username or password".into(),
            }),
            s => Err(status_error(resp, &url, s)),
        }
    }
}

/// The `Authorization` value a token server's answer gives (`token`, or OAuth2's
/// `access_token`), or why it gives none.
pub(crate) fn token_from_answer(status: u16, body: &[u8]) -> Result<String, String> {
    if status != 200 {
        return Err(format!(
            "token server answered {status}: {}",
            String::from_utf8_lossy(body).trim()
        ));
    }
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("unreadable token answer: {e}"))?;
    let token = v["token"]
        .as_str()
        .or_else(|| v["access_token"].as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "token server sent no token".to_string())?;
    let value = format!("Bearer {token}");
    // Sent as is in every later request: one that is not a valid header value would fail
    // each of them as a malformed request, retried and reported as a network error.
    if ureq::http::HeaderValue::from_str(&value).is_err() {
        return Err(format!("token server sent an invalid token: {token:?}"));
    }
    Ok(value)
}

/// Percent-encoding for query values.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The most a manifest, an index or an image config may take, as containerd and Docker allow:
/// they are read into memory whole.
pub(crate) const MAX_DOCUMENT: u64 = 4 << 20;

/// Reads a small response body (errors, tokens), at most [`MAX_DOCUMENT`] bytes of it.
pub(crate) fn read_small(resp: Response<Body>, url: &str) -> Result<Vec<u8>, Error> {
    Ok(
        read_limited(resp, url, MAX_DOCUMENT)?.unwrap_or_else(|mut v| {
            v.truncate(MAX_DOCUMENT as usize);
            v
        }),
    )
}

/// Reads a response body of at most `limit` bytes: `Err` with what arrived (one byte more than
/// `limit`) when there is more, which is not read.
pub(crate) fn read_limited(
    resp: Response<Body>,
    url: &str,
    limit: u64,
) -> Result<Result<Vec<u8>, Vec<u8>>, Error> {
    use std::io::Read as _;
    let mut out = Vec::new();
    resp.into_body()
        .into_reader()
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| Error::Network {
            url: url.to_string(),
            message: e.to_string(),
        })?;
    Ok(if out.len() as u64 > limit {
        Err(out)
    } else {
        Ok(out)
    })
}

/// The registry's own explanation of a failed request, from the
/// distribution spec's `{"errors":[{"code","message"}]}` body.
pub(crate) fn status_error(resp: Response<Body>, url: &str, status: u16) -> Error {
    let body = read_small(resp, url).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let message = match v["errors"].as_array().and_then(|a| a.first()) {
        Some(e) => {
            let code = e["code"].as_str().unwrap_or("").to_ascii_lowercase();
            let msg = e["message"].as_str().unwrap_or("");
            if code.is_empty() {
                msg.to_string()
            } else {
                format!("{}: {msg}", code.replace('_', " "))
            }
        }
        None => String::from_utf8_lossy(&body).trim().to_string(),
    };
    // HEAD answers have no body; say what the status means, as Docker does.
    let message = match (message.is_empty(), status) {
        (true, 401) => "unauthorized: authentication required".to_string(),
        (true, 403) => "denied: requested access to the resource is denied".to_string(),
        (true, _) => format!("HTTP status {status}"),
        (false, _) => message,
    };
    Error::Status {
        url: url.to_string(),
        status,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers() {
        assert_eq!(
            token_from_answer(200, br#"{"token":"abc.def","expires_in":300}"#).unwrap(),
            "Bearer abc.def"
        );
        assert_eq!(
            token_from_answer(200, br#"{"access_token":"gho_x"}"#).unwrap(),
            "Bearer gho_x"
        );
        let e = token_from_answer(401, b"denied\n").unwrap_err();
        assert_eq!(e, "token server answered 401: denied");
        assert!(token_from_answer(200, br#"{"token":""}"#).is_err());
        assert!(token_from_answer(200, b"<html>").is_err());
        // Found by fuzz/fuzz_targets/registry_auth.rs: a control character in the token made
        // every later request fail to build, reported as a network error after retries.
        let e = token_from_answer(200, br#"{"token":"a\nb"}"#).unwrap_err();
        assert!(e.contains("invalid token"), "{e}");
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("127.8.9.1"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("registry.example.com:5000"));
        assert!(!is_loopback("128.0.0.1:5000"));
    }
}
