//! The Docker Engine API's wire protocol, apart from any endpoint: API versions and their
//! negotiation, the error body, the 8-byte-header frames of multiplexed streams, the line
//! endings of JSON progress streams, and the `filters` query parameter.

use std::collections::BTreeMap;
use std::fmt;

/// An Engine API version, `MAJOR.MINOR` (only major 1 exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Always 1 so far.
    pub major: u16,
    /// 24 to 47 here.
    pub minor: u16,
}

impl Version {
    /// `1.N`.
    pub const fn new(major: u16, minor: u16) -> Version {
        Version { major, minor }
    }

    /// Parses `1.41` (what follows `/v` in a path, or the `API-Version` header).
    pub fn parse(s: &str) -> Option<Version> {
        let (major, minor) = s.split_once('.')?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return None;
        }
        Some(Version {
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The version the service advertises (`/_ping`'s `API-Version`, `/version`'s `ApiVersion`):
/// Docker 27's. Clients use the lower of this and their own, so the docker CLI 28 speaks 1.47
/// to us and the 20.10 CLI its own 1.41.
pub const API_VERSION: Version = Version::new(1, 47);

/// The oldest version served (`/version`'s `MinAPIVersion`): Docker's own minimum, which
/// docker-compose 1.x's older file formats pin.
pub const MIN_API_VERSION: Version = Version::new(1, 24);

/// Why a request's path names a version the service does not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    /// Newer than [`API_VERSION`].
    #[error("client version {0} is too new. Maximum supported API version is {API_VERSION}")]
    TooNew(Version),
    /// Older than [`MIN_API_VERSION`].
    #[error("client version {0} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version")]
    TooOld(Version),
}

/// Splits `/v1.41/containers/json` into the version and `/containers/json`. A path without a
/// version prefix (`/containers/json`) is served at [`API_VERSION`], as dockerd does; a
/// prefix that is not a version (`/vfoo/…`) is left in the path, which then matches nothing.
pub fn split_version(path: &str) -> Result<(Version, &str), VersionError> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((API_VERSION, path));
    };
    let (v, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let Some(version) = Version::parse(v) else {
        return Ok((API_VERSION, path));
    };
    if version > API_VERSION {
        return Err(VersionError::TooNew(version));
    }
    if version < MIN_API_VERSION {
        return Err(VersionError::TooOld(version));
    }
    Ok((version, tail))
}

/// The body of every error answer: `{"message":"…"}`.
pub fn error_body(message: &str) -> Vec<u8> {
    let mut body = serde_json::to_vec(&serde_json::json!({ "message": message }))
        .expect("a string serializes");
    body.push(b'\n');
    body
}

/// Which stream a multiplexed frame carries (the first byte of its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum StdStream {
    /// Written by the client (never framed by the server).
    Stdin = 0,
    /// The process's standard output.
    Stdout = 1,
    /// The process's standard error.
    Stderr = 2,
    /// An error of the engine's own in the middle of a stream (Docker's `Systemerr`).
    System = 3,
}

/// The largest payload one frame carries: the header's size is a u32, and Docker's own
/// writer never sends more than its 32 KiB buffer at once.
pub const MAX_FRAME: usize = 32 * 1024;

/// One frame of a multiplexed stream (used when the process has no terminal): a header of
/// the stream's number, three zero bytes and the payload's length (u32, big-endian), then the
/// payload. `data` longer than [`MAX_FRAME`] is split into several frames.
pub fn frame(stream: StdStream, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 8 * (1 + data.len() / MAX_FRAME));
    for chunk in data.chunks(MAX_FRAME) {
        out.push(stream as u8);
        out.extend_from_slice(&[0, 0, 0]);
        out.extend_from_slice(&(chunk.len() as u32).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// Reads multiplexed frames back (the clients' side of [`frame`]; tests and tools use it).
#[derive(Debug, Default)]
pub struct Demux {
    buf: Vec<u8>,
}

impl Demux {
    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, if one has arrived: its stream byte and payload.
    pub fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        if self.buf.len() < 8 {
            return None;
        }
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if self.buf.len() < 8 + len {
            return None;
        }
        let stream = self.buf[0];
        let payload = self.buf[8..8 + len].to_vec();
        self.buf.drain(..8 + len);
        Some((stream, payload))
    }

    /// Bytes received that do not make a whole frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

/// One message of a JSON progress stream (pull, push, load, build, import), as Docker's
/// stream formatter writes it: compact JSON ended by `\r\n`.
pub fn progress_line(message: &serde_json::Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).expect("JSON values serialize");
    line.extend_from_slice(b"\r\n");
    line
}

/// One message of the other JSON streams (events, stats): compact JSON ended by `\n`, as Go's
/// `json.Encoder` writes it.
pub fn json_line(message: &serde_json::Value) -> Vec<u8> {
    let mut line = serde_json::to_vec(message).expect("JSON values serialize");
    line.push(b'\n');
    line
}

/// Docker's boolean query values: absent, empty, `0`, `no`, `false` and `none` are false
/// (case-insensitively), anything else true.
pub fn query_bool(value: Option<&str>) -> bool {
    match value {
        None => false,
        Some(v) => !matches!(
            v.to_ascii_lowercase().as_str(),
            "" | "0" | "no" | "false" | "none"
        ),
    }
}

/// Why a `filters` query parameter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter: {0}")]
pub struct FilterError(String);

/// Decodes the `filters` query parameter into the pairs the CLI's `--filter KEY=VALUE` gives,
/// so one matcher serves both. Docker accepts two JSON shapes: `{"label":["a=b","c"]}` and
/// the older `{"label":{"a=b":true}}` (a value mapped to false is left out, as Docker does).
/// An empty parameter is no filter.
pub fn decode_filters(param: &str) -> Result<Vec<(String, String)>, FilterError> {
    if param.trim().is_empty() {
        return Ok(Vec::new());
    }
    let doc: serde_json::Value =
        serde_json::from_str(param).map_err(|e| FilterError(format!("{e}")))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| FilterError("filters must be a JSON object".into()))?;
    let mut out = Vec::new();
    for (key, values) in obj {
        match values {
            serde_json::Value::Array(list) => {
                for v in list {
                    let v = v.as_str().ok_or_else(|| {
                        FilterError(format!("the values of filter '{key}' must be strings"))
                    })?;
                    out.push((key.clone(), v.to_string()));
                }
            }
            serde_json::Value::Object(map) => {
                for (v, on) in map {
                    match on {
                        serde_json::Value::Bool(true) => out.push((key.clone(), v.clone())),
                        serde_json::Value::Bool(false) => {}
                        _ => {
                            return Err(FilterError(format!(
                                "the values of filter '{key}' must map to booleans"
                            )))
                        }
                    }
                }
            }
            _ => {
                return Err(FilterError(format!(
                    "filter '{key}' must be a list of strings"
                )))
            }
        }
    }
    Ok(out)
}

/// The pairs of [`decode_filters`] grouped by key, for matchers that take "any of these
/// values" per key.
pub fn group_filters(pairs: &[(String, String)]) -> BTreeMap<&str, Vec<&str>> {
    let mut map: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in pairs {
        map.entry(k.as_str()).or_default().push(v.as_str());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_in_paths() {
        assert_eq!(
            split_version("/v1.41/containers/json").unwrap(),
            (Version::new(1, 41), "/containers/json")
        );
        assert_eq!(
            split_version("/containers/json").unwrap(),
            (API_VERSION, "/containers/json")
        );
        assert_eq!(split_version("/v1.24/_ping").unwrap().0, MIN_API_VERSION);
        assert_eq!(
            split_version("/v1.99/info").unwrap_err().to_string(),
            "client version 1.99 is too new. Maximum supported API version is 1.47"
        );
        assert_eq!(
            split_version("/v1.12/info").unwrap_err(),
            VersionError::TooOld(Version::new(1, 12))
        );
        // Not a version: left for the router, which finds nothing there.
        assert_eq!(split_version("/vfoo/info").unwrap().1, "/vfoo/info");
        assert_eq!(split_version("/volumes").unwrap().1, "/volumes");
        assert!(Version::new(1, 9) < Version::new(1, 10));
        assert_eq!(Version::parse("1."), None);
        assert_eq!(Version::parse("1.4x"), None);
        assert_eq!(Version::parse("99999.1"), None);
    }

    #[test]
    fn frames_round_trip_and_split_large_payloads() {
        let f = frame(StdStream::Stderr, b"hi\n");
        assert_eq!(f, [2, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']);
        let big = vec![7u8; MAX_FRAME + 5];
        let mut d = Demux::default();
        let framed = frame(StdStream::Stdout, &big);
        // Arriving in pieces.
        d.push(&framed[..3]);
        assert_eq!(d.next_frame(), None);
        d.push(&framed[3..]);
        let (s1, p1) = d.next_frame().unwrap();
        let (s2, p2) = d.next_frame().unwrap();
        assert_eq!((s1, s2, p1.len(), p2.len()), (1, 1, MAX_FRAME, 5));
        assert_eq!(d.next_frame(), None);
        assert_eq!(d.pending(), 0);
        assert!(frame(StdStream::Stdout, b"").is_empty());
    }

    #[test]
    fn error_bodies_and_lines() {
        assert_eq!(
            error_body("No such container: x"),
            b"{\"message\":\"No such container: x\"}\n"
        );
        assert_eq!(
            progress_line(&serde_json::json!({"status": "Pulling"})),
            b"{\"status\":\"Pulling\"}\r\n"
        );
        assert_eq!(json_line(&serde_json::json!({"a": 1})), b"{\"a\":1}\n");
    }

    #[test]
    fn booleans_as_docker_reads_them() {
        for f in [
            None,
            Some(""),
            Some("0"),
            Some("no"),
            Some("FALSE"),
            Some("none"),
        ] {
            assert!(!query_bool(f), "{f:?}");
        }
        for t in [
            Some("1"),
            Some("true"),
            Some("yes"),
            Some("True"),
            Some("anything"),
        ] {
            assert!(query_bool(t), "{t:?}");
        }
    }

    #[test]
    fn filters_in_both_shapes() {
        assert_eq!(
            decode_filters(r#"{"label":["a=b","c"],"status":["running"]}"#).unwrap(),
            [
                ("label".to_string(), "a=b".to_string()),
                ("label".to_string(), "c".to_string()),
                ("status".to_string(), "running".to_string())
            ]
        );
        assert_eq!(
            decode_filters(r#"{"dangling":{"true":true,"false":false}}"#).unwrap(),
            [("dangling".to_string(), "true".to_string())]
        );
        assert!(decode_filters("").unwrap().is_empty());
        assert!(decode_filters("{").is_err());
        assert!(decode_filters(r#"["a"]"#).is_err());
        assert!(decode_filters(r#"{"label":"a"}"#).is_err());
        assert!(decode_filters(r#"{"label":[1]}"#).is_err());
        let pairs = decode_filters(r#"{"label":["a","b"],"name":["x"]}"#).unwrap();
        let g = group_filters(&pairs);
        assert_eq!(g["label"], ["a", "b"]);
        assert_eq!(g["name"], ["x"]);
    }
}
