//! Requests: the version prefix, the route table, the common headers and the error body.
//!
//! Each request is first turned into a [`Req`] (its version, decoded path segments, query
//! pairs) and matched against the table in [`route`]; a path that matches nothing answers
//! 404 as dockerd does, and a known endpoint hako does not implement answers 501 naming it.

mod containers;
mod exec;
mod images;
mod networks;
mod system;
mod volumes;

use crate::error::ApiError;
use crate::hijack::ConnCtx;
use crate::server::State;
use bytes::Bytes;
use hako_docker::api as wire;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::sync::Arc;

pub(crate) use exec::ExecEntry;

/// An attach's or exec's output: framed without a terminal, raw with one.
pub(crate) fn containers_framed(tty: bool, stream: wire::StdStream, data: &[u8]) -> Vec<u8> {
    containers::framed(tty, stream, data)
}

/// A `hako` command's stdout as a streamed answer.
pub(crate) async fn containers_stream_cli(
    req: &Req,
    args: Vec<String>,
    content_type: &str,
) -> Result<Response<Body>, ApiError> {
    containers::stream_cli(req, args, content_type, None).await
}

/// Every response body.
pub(crate) type Body = BoxBody<Bytes, std::io::Error>;

/// The largest JSON body read into memory (create, exec, network and volume bodies are a few
/// KiB; tar bodies are streamed and not limited here).
const MAX_JSON_BODY: usize = 8 << 20;

pub(crate) fn empty_body() -> Body {
    Full::new(Bytes::new()).map_err(|e| match e {}).boxed()
}

pub(crate) fn full_body(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

/// A request as the handlers see it.
pub(crate) struct Req {
    pub(crate) method: Method,
    /// The path after the version prefix, percent-decoded.
    pub(crate) path: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Incoming>,
    pub(crate) state: Arc<State>,
    pub(crate) conn: Arc<ConnCtx>,
}

impl Req {
    /// The last value of query parameter `k`.
    pub(crate) fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated query parameter.
    pub(crate) fn q_all(&self, k: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn q_bool(&self, k: &str) -> bool {
        wire::query_bool(self.q(k))
    }

    /// A numeric query parameter; a malformed one is a 400 naming it.
    pub(crate) fn q_num<T: std::str::FromStr>(&self, k: &str) -> Result<Option<T>, ApiError> {
        match self.q(k) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for query parameter {k}: {v:?}"))
            }),
        }
    }

    /// The `filters` parameter as `key=value` pairs.
    pub(crate) fn filters(&self) -> Result<Vec<(String, String)>, ApiError> {
        wire::decode_filters(self.q("filters").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(e.to_string()))
    }

    /// Reads the whole body (at most [`MAX_JSON_BODY`]).
    pub(crate) async fn bytes(&mut self) -> Result<Bytes, ApiError> {
        let Some(body) = self.body.take() else {
            return Ok(Bytes::new());
        };
        let limited = http_body_util::Limited::new(body, MAX_JSON_BODY);
        match limited.collect().await {
            Ok(c) => Ok(c.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "request body is larger than the {} MiB a JSON body may have",
                    MAX_JSON_BODY >> 20
                ),
            )),
            Err(e) => Err(ApiError::bad_request(format!(
                "reading the request body: {e}"
            ))),
        }
    }

    /// The body as JSON of type `T`; an empty body is `T::default()` where the endpoint allows
    /// none (`None` otherwise). Malformed JSON and wrong types are 400s naming the problem.
    pub(crate) async fn json<T: DeserializeOwned>(&mut self) -> Result<Option<T>, ApiError> {
        let b = self.bytes().await?;
        if b.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        if let Some(ct) = self.headers.get(CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or("");
            if !ct.is_empty()
                && !ct.starts_with("application/json")
                && !ct.starts_with("text/plain")
            {
                return Err(ApiError::bad_request(format!(
                    "unsupported Content-Type header ({ct}): must be 'application/json'"
                )));
            }
        }
        serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
    }

    /// The body as a stream, for tar uploads.
    pub(crate) fn take_body(&mut self) -> Option<Incoming> {
        self.body.take()
    }

    /// Whether the client asked to hijack with `Upgrade: tcp`.
    pub(crate) fn wants_upgrade(&self) -> bool {
        self.headers
            .get(hyper::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
    }
}

/// An answer with a JSON body.
pub(crate) fn json<T: serde::Serialize + ?Sized>(status: StatusCode, v: &T) -> Response<Body> {
    let mut body = serde_json::to_vec(v).expect("values serialize");
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .body(full_body(body))
        .expect("static response")
}

/// 204 or another status without a body.
pub(crate) fn no_content(status: StatusCode) -> Response<Body> {
    Response::builder()
        .status(status)
        .body(empty_body())
        .expect("static response")
}

pub(crate) fn error_response(e: &ApiError) -> Response<Body> {
    Response::builder()
        .status(e.status)
        .header(CONTENT_TYPE, "application/json")
        .body(full_body(wire::error_body(&e.message)))
        .expect("static response")
}

/// A streamed body fed from a channel; the stream ends when every sender is gone.
pub(crate) fn channel_body(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Body {
    struct Rx(tokio::sync::mpsc::Receiver<Bytes>);
    impl hyper::body::Body for Rx {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
            self.0
                .poll_recv(cx)
                .map(|o| o.map(|b| Ok(hyper::body::Frame::data(b))))
        }
    }
    Rx(rx).boxed()
}

/// A streamed answer.
pub(crate) fn streaming(
    content_type: &str,
    rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> Response<Body> {
    Response::builder()
        .status(StatusCode::OK)
        .header(CONTENT_TYPE, content_type)
        .body(channel_body(rx))
        .expect("static response")
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `HAKO_API_TRACE=1`: each request on the service's stderr, for debugging a client or
/// timing one: when it came (ms since the first traced request) and how long its answer's
/// head took (a streamed body goes on after that).
fn trace() -> Option<std::time::Instant> {
    static ON: std::sync::OnceLock<Option<std::time::Instant>> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var_os("HAKO_API_TRACE")
            .is_some_and(|v| v == "1")
            .then(std::time::Instant::now)
    })
}

/// With `HAKO_API_TRACE=1`, a moment of a streamed answer (a wait's body, an attach's end)
/// on the service's stderr, on the requests' clock.
pub(crate) fn trace_note(what: impl FnOnce() -> String) {
    if let Some(epoch) = trace() {
        eprintln!(
            "hako service: {:.1} {}",
            epoch.elapsed().as_secs_f64() * 1e3,
            what()
        );
    }
}

/// Answers one request.
pub(crate) async fn handle(
    state: Arc<State>,
    conn: Arc<ConnCtx>,
    req: Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    let traced = trace().map(|epoch| {
        let now = std::time::Instant::now();
        eprintln!(
            "hako service: {:.1} {} {}",
            (now - epoch).as_secs_f64() * 1e3,
            parts.method,
            parts.uri
        );
        (now, parts.method.clone(), parts.uri.path().to_string())
    });
    let mut resp = match wire::split_version(&raw_path) {
        Err(e) => error_response(&ApiError::bad_request(e.to_string())),
        Ok((_version, path)) => {
            let query = parts
                .uri
                .query()
                .map(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let req = Req {
                method: parts.method,
                path: percent_decode(path),
                query,
                headers: parts.headers,
                body: Some(body),
                state,
                conn,
            };
            match route(req).await {
                Ok(r) => r,
                Err(e) => error_response(&e),
            }
        }
    };
    let h = resp.headers_mut();
    h.insert(
        "Api-Version",
        HeaderValue::from_str(&wire::API_VERSION.to_string()).expect("digits and a dot"),
    );
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        hyper::header::SERVER,
        HeaderValue::from_static(concat!("hako/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    if let Some((start, method, path)) = traced {
        eprintln!(
            "hako service: {method} {path} -> {} in {:.2} ms",
            resp.status().as_u16(),
            start.elapsed().as_secs_f64() * 1e3
        );
    }
    resp
}

async fn route(req: Req) -> Result<Response<Body>, ApiError> {
    let path = req.path.clone();
    let m = req.method.clone();
    // Image names hold slashes, so their routes take the rest of the path.
    let top_level = matches!(
        path.as_str(),
        "/images/json"
            | "/images/create"
            | "/images/load"
            | "/images/get"
            | "/images/prune"
            | "/images/search"
    );
    if let Some(rest) = path.strip_prefix("/images/").filter(|_| !top_level) {
        if let Some(r) = images::route(&m, rest, req).await {
            return r;
        }
        return Err(ApiError::not_found("page not found"));
    }
    if let Some(rest) = path.strip_prefix("/distribution/") {
        if let Some(name) = rest.strip_suffix("/json") {
            if m == Method::GET {
                return images::distribution(req, name.to_string()).await;
            }
        }
        return Err(ApiError::not_found("page not found"));
    }
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let id = |i: usize| segs.get(i).map(|s| s.to_string()).unwrap_or_default();
    match (m.as_str(), segs.as_slice()) {
        ("GET" | "HEAD", ["_ping"]) => system::ping(req),
        ("GET", ["version"]) => system::version(req).await,
        ("GET", ["info"]) => system::info(req).await,
        ("GET", ["events"]) => system::events(req).await,
        ("GET", ["system", "df"]) => system::df(req).await,
        ("POST", ["auth"]) => system::auth(req).await,

        ("GET", ["containers", "json"]) => containers::list(req).await,
        ("POST", ["containers", "create"]) => containers::create(req).await,
        ("POST", ["containers", "prune"]) => containers::prune(req).await,
        ("GET", ["containers", _, "json"]) => containers::inspect(req, id(1)).await,
        ("POST", ["containers", _, "start"]) => containers::start(req, id(1)).await,
        ("POST", ["containers", _, "stop"]) => containers::stop(req, id(1)).await,
        ("POST", ["containers", _, "restart"]) => containers::restart(req, id(1)).await,
        ("POST", ["containers", _, "kill"]) => containers::kill(req, id(1)).await,
        ("POST", ["containers", _, "pause"]) => containers::pause(req, id(1), true).await,
        ("POST", ["containers", _, "unpause"]) => containers::pause(req, id(1), false).await,
        ("POST", ["containers", _, "wait"]) => containers::wait(req, id(1)).await,
        ("POST", ["containers", _, "rename"]) => containers::rename(req, id(1)).await,
        ("POST", ["containers", _, "update"]) => containers::update(req, id(1)).await,
        ("POST", ["containers", _, "resize"]) => containers::resize(req, id(1)).await,
        ("POST", ["containers", _, "attach"]) => containers::attach(req, id(1)).await,
        ("GET", ["containers", _, "attach", "ws"]) => {
            Err(ApiError::not_implemented("attach over a websocket (/containers/{id}/attach/ws)"))
        }
        ("GET", ["containers", _, "logs"]) => containers::logs(req, id(1)).await,
        ("GET", ["containers", _, "top"]) => containers::top(req, id(1)).await,
        ("GET", ["containers", _, "stats"]) => containers::stats(req, id(1)).await,
        ("GET", ["containers", _, "changes"]) => containers::changes(req, id(1)).await,
        ("GET", ["containers", _, "export"]) => containers::export(req, id(1)).await,
        ("GET" | "HEAD", ["containers", _, "archive"]) => containers::archive_get(req, id(1)).await,
        ("PUT", ["containers", _, "archive"]) => containers::archive_put(req, id(1)).await,
        ("DELETE", ["containers", _]) => containers::remove(req, id(1)).await,
        ("POST", ["containers", _, "exec"]) => exec::create(req, id(1)).await,
        ("POST", ["containers", _, "checkpoints"])
        | ("GET", ["containers", _, "checkpoints"])
        | ("DELETE", ["containers", _, "checkpoints", _]) => {
            Err(ApiError::not_implemented("checkpoints (/containers/{id}/checkpoints)"))
        }

        ("POST", ["exec", _, "start"]) => exec::start(req, id(1)).await,
        ("POST", ["exec", _, "resize"]) => exec::resize(req, id(1)).await,
        ("GET", ["exec", _, "json"]) => exec::inspect(req, id(1)).await,

        ("GET", ["images", "json"]) => images::list(req).await,
        ("POST", ["images", "create"]) => images::create(req).await,
        ("POST", ["images", "load"]) => images::load(req).await,
        ("GET", ["images", "get"]) => images::get_many(req).await,
        ("POST", ["images", "prune"]) => images::prune(req).await,
        ("GET", ["images", "search"]) => Err(ApiError::not_implemented(
            "image search (/images/search)",
        )),
        ("POST", ["build"]) => images::build(req).await,
        ("POST", ["build", "prune"]) => images::build_prune(req).await,
        ("POST", ["build", "cancel"]) => Err(ApiError::not_implemented("build cancel")),
        ("POST", ["commit"]) => images::commit(req).await,

        ("GET", ["networks"]) => networks::list(req).await,
        ("POST", ["networks", "create"]) => networks::create(req).await,
        ("POST", ["networks", "prune"]) => networks::prune(req).await,
        ("GET", ["networks", _]) => networks::inspect(req, id(1)).await,
        ("DELETE", ["networks", _]) => networks::remove(req, id(1)).await,
        ("POST", ["networks", _, "connect"]) => networks::connect(req, id(1), true).await,
        ("POST", ["networks", _, "disconnect"]) => networks::connect(req, id(1), false).await,

        ("GET", ["volumes"]) => volumes::list(req).await,
        ("POST", ["volumes", "create"]) => volumes::create(req).await,
        ("POST", ["volumes", "prune"]) => volumes::prune(req).await,
        ("GET", ["volumes", _]) => volumes::inspect(req, id(1)).await,
        ("PUT", ["volumes", _]) => Err(ApiError::not_implemented(
            "volume update (cluster volumes)",
        )),
        ("DELETE", ["volumes", _]) => volumes::remove(req, id(1)).await,

        (_, ["swarm", ..])
        | (_, ["nodes", ..])
        | (_, ["services", ..])
        | (_, ["tasks", ..])
        | (_, ["secrets", ..])
        | (_, ["configs", ..]) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "This node is not a swarm manager. hako does not implement swarm mode.",
        )),
        // hako has no plugins: the list is empty and any one asked for is not found (the
        // docker CLI's `inspect NAME` asks for a plugin last, and says "No such object" on a
        // 404). Installing or changing one is not implemented.
        ("GET", ["plugins"]) => Ok(json(StatusCode::OK, &serde_json::json!([]))),
        ("GET", ["plugins", .., "json"]) => {
            let name = path
                .trim_start_matches("/plugins/")
                .trim_end_matches("/json");
            Err(ApiError::not_found(format!("plugin \"{name}\" not found")))
        }
        (_, ["plugins", ..]) => Err(ApiError::not_implemented("plugins (/plugins)")),
        ("POST", ["session"]) => Err(ApiError::not_implemented(
            "BuildKit sessions (/session); hako builds with the classic builder (Builder-Version 1)",
        )),
        ("POST", ["grpc"]) => Err(ApiError::not_implemented("/grpc")),
        _ => Err(ApiError::not_found("page not found")),
    }
}
