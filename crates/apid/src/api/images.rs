//! `/images/…`, `/build`, `/commit`.

use super::{json, streaming, Body, Req};
use crate::error::ApiError;
use bytes::Bytes;
use hako_docker::api as wire;
use hako_docker::image::ImageFilters;
use hako_engine::hako_image::Reference;
use hako_engine::views::image::ImageListOptions;
use hyper::{Method, Response, StatusCode};
use serde_json::{json as j, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// The routes under `/images/NAME…` (names hold slashes): `None` when nothing matches.
pub(super) async fn route(
    m: &Method,
    rest: &str,
    req: Req,
) -> Option<Result<Response<Body>, ApiError>> {
    let name = |suffix: &str| rest.strip_suffix(suffix).map(str::to_string);
    Some(match m.as_str() {
        "GET" => {
            if let Some(n) = name("/json") {
                inspect(req, n).await
            } else if let Some(n) = name("/history") {
                history(req, n).await
            } else if let Some(n) = name("/get") {
                save(req, vec![n]).await
            } else {
                return None;
            }
        }
        "POST" => {
            if let Some(n) = name("/tag") {
                tag(req, n).await
            } else if let Some(n) = name("/push") {
                push(req, n).await
            } else {
                return None;
            }
        }
        "DELETE" => remove(req, rest.to_string()).await,
        _ => return None,
    })
}

/// `GET /images/json?all=&filters=`: the engine's list, filtered as `hako images` does it;
/// with `reference=` filters an image shows the tags that matched, as dockerd answers.
pub(super) async fn list(req: Req) -> Result<Response<Body>, ApiError> {
    let args: Vec<String> = req
        .filters()?
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mut filters = ImageFilters::parse(&args).map_err(ApiError::from)?;
    // API < 1.41's `filter=` parameter: one reference pattern.
    if let Some(r) = req.q("filter").filter(|r| !r.is_empty()) {
        filters.add_reference(r).map_err(ApiError::from)?;
    }
    let all = req.q_bool("all");
    let rows = req
        .state
        .backend
        .engine(move |e| {
            let bounds = filters.bounds(e).map_err(ApiError::from)?;
            let list = e.image_list(&ImageListOptions {
                all,
                // The summary carries them.
                labels: true,
                digests: true,
            })?;
            Ok(list
                .iter()
                .filter_map(|img| {
                    filters
                        .matches(img, bounds)
                        .map(|tags| hako_docker::image::summary_json(img, &tags))
                })
                .collect::<Vec<_>>())
        })
        .await?;
    Ok(json(StatusCode::OK, &rows))
}

/// `GET /images/{name}/json`.
async fn inspect(req: Req, name: String) -> Result<Response<Body>, ApiError> {
    let doc = req
        .state
        .backend
        .engine(move |e| match e.image_inspect(&name) {
            Ok(i) => Ok(hako_docker::image::inspect_json(&i)),
            Err(err) if err.kind() == hako_engine::ErrorKind::NotFound => {
                Err(ApiError::not_found(format!("No such image: {name}")))
            }
            Err(err) => Err(err.into()),
        })
        .await?;
    Ok(json(StatusCode::OK, &doc))
}

/// `GET /images/{name}/history`: the image's layers, newest first.
async fn history(req: Req, name: String) -> Result<Response<Body>, ApiError> {
    let list = req
        .state
        .backend
        .engine(move |e| match e.image_history(&name) {
            Ok(h) => Ok(h),
            Err(err) if err.kind() == hako_engine::ErrorKind::NotFound => {
                Err(ApiError::not_found(format!("No such image: {name}")))
            }
            Err(err) => Err(err.into()),
        })
        .await?;
    let v: Vec<Value> = list.iter().map(hako_docker::image::history_json).collect();
    Ok(json(StatusCode::OK, &v))
}

/// `POST /images/{name}/tag?repo=&tag=`.
async fn tag(req: Req, name: String) -> Result<Response<Body>, ApiError> {
    let repo = req
        .q("repo")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing query parameter repo"))?;
    let full = match req.q("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    let reference = Reference::parse(&full).map_err(|e| ApiError::bad_request(e.to_string()))?;
    req.state
        .backend
        .engine(move |e| {
            let img = e.images().resolve(&name).map_err(|err| match err {
                hako_engine::hako_image::Error::NotFound(_) => {
                    ApiError::not_found(format!("No such image: {name}"))
                }
                other => other.into(),
            })?;
            e.images().tag(&img.id, &reference)?;
            Ok(())
        })
        .await?;
    Ok(super::no_content(StatusCode::CREATED))
}

/// `DELETE /images/{name}?force=`.
async fn remove(req: Req, name: String) -> Result<Response<Body>, ApiError> {
    let force = req.q_bool("force");
    let events = req
        .state
        .backend
        .engine(move |e| {
            e.remove_image(&name, force).map_err(|err| match err {
                hako_engine::Error::Image(hako_engine::hako_image::Error::NotFound(_)) => {
                    ApiError::not_found(format!("No such image: {name}"))
                }
                other => other.into(),
            })
        })
        .await?;
    let v: Vec<Value> = events
        .into_iter()
        .map(|ev| match ev {
            hako_engine::hako_image::RemoveEvent::Untagged(t) => j!({"Untagged": t}),
            hako_engine::hako_image::RemoveEvent::Deleted(d) => j!({"Deleted": d}),
        })
        .collect();
    Ok(json(StatusCode::OK, &v))
}

/// Lines written by the engine's progress output, as Docker's JSON progress messages.
struct ProgressLines {
    tx: mpsc::Sender<Bytes>,
    partial: Vec<u8>,
    key: &'static str,
}

impl ProgressLines {
    /// Sends one of the engine's typed pull or push steps as Docker's JSON message.
    fn progress(&mut self, p: hako_engine::images::Progress) -> std::io::Result<()> {
        self.tx
            .blocking_send(Bytes::from(wire::progress_line(
                &hako_docker::image::progress_json(&p),
            )))
            // A client that went stops the pull or push at its next step.
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went"))
    }
}

impl std::io::Write for ProgressLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &b in buf {
            if b == b'\n' || b == b'\r' {
                let line = String::from_utf8_lossy(&std::mem::take(&mut self.partial)).into_owned();
                if line.trim().is_empty() {
                    continue;
                }
                let msg = if self.key == "stream" {
                    j!({"stream": format!("{line}\n")})
                } else {
                    j!({"status": line})
                };
                // A client that went stops the work at its next write.
                self.tx
                    .blocking_send(Bytes::from(wire::progress_line(&msg)))
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went")
                    })?;
            } else {
                self.partial.push(b);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `work` on the blocking pool with a progress writer feeding the answer. An error
/// before the first message is the answer's status; after it, Docker's error message ends the
/// stream (the clients report it).
async fn progress_stream<F>(req: &Req, work: F) -> Result<Response<Body>, ApiError>
where
    F: FnOnce(&mut ProgressLines) -> Result<(), ApiError> + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    let mut writer = ProgressLines {
        tx: tx.clone(),
        partial: Vec::new(),
        key: "status",
    };
    let state = req.state.clone();
    let task = tokio::task::spawn_blocking(move || {
        let _busy = state.backend.mark_busy();
        work(&mut writer)
    });
    drop(tx);
    let first = rx.recv().await;
    let (out_tx, out_rx) = mpsc::channel::<Bytes>(64);
    match first {
        None => {
            // Finished without a word: its result is the answer.
            task.await
                .map_err(|e| ApiError::internal(format!("task failed: {e}")))??;
        }
        Some(first) => {
            let _ = out_tx.send(first).await;
            tokio::spawn(async move {
                while let Some(b) = rx.recv().await {
                    if out_tx.send(b).await.is_err() {
                        // The client went: the writer's next send fails and ends the work.
                        rx.close();
                    }
                }
                let r = task.await;
                let err = match r {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e.message,
                    Err(e) => e.to_string(),
                };
                let _ = out_tx
                    .send(Bytes::from(wire::progress_line(
                        &j!({"errorDetail": {"message": err}, "error": err}),
                    )))
                    .await;
            });
        }
    }
    Ok(streaming("application/json", out_rx))
}

/// The client's login from `X-Registry-Auth` (base64url JSON, as the docker CLI and the SDKs
/// send it): `None` when it carries none (the clients send `{}` then), so the registry's
/// stored credentials (`hako login`) apply. A token hako cannot use is refused, not ignored.
fn registry_auth(req: &Req) -> Result<Option<hako_registry::Credentials>, ApiError> {
    let Some(h) = req.headers.get("X-Registry-Auth") else {
        return Ok(None);
    };
    decode_registry_auth(h.as_bytes())
}

fn decode_registry_auth(h: &[u8]) -> Result<Option<hako_registry::Credentials>, ApiError> {
    use base64::Engine as _;
    let h = std::str::from_utf8(h).unwrap_or("").trim();
    if h.is_empty() {
        return Ok(None);
    }
    let invalid =
        |why: String| ApiError::bad_request(format!("invalid X-Registry-Auth header: {why}"));
    let decoded = base64::engine::general_purpose::URL_SAFE
        .decode(h)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h))
        .map_err(|e| invalid(e.to_string()))?;
    let v: Value = serde_json::from_slice(&decoded).map_err(|e| invalid(e.to_string()))?;
    let field = |k: &str| v[k].as_str().filter(|s| !s.is_empty());
    for k in ["identitytoken", "registrytoken"] {
        if field(k).is_some() {
            return Err(ApiError::not_implemented(format!(
                "{k} in X-Registry-Auth (send a username and password)"
            )));
        }
    }
    if let (Some(u), Some(p)) = (field("username"), field("password")) {
        return Ok(Some(hako_registry::Credentials {
            username: u.into(),
            password: p.into(),
        }));
    }
    if let Some(auth) = field("auth") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth)
            .map_err(|e| invalid(format!("auth: {e}")))?;
        let raw = String::from_utf8_lossy(&raw);
        let (u, p) = raw
            .split_once(':')
            .ok_or_else(|| invalid("auth is not user:password".into()))?;
        return Ok(Some(hako_registry::Credentials {
            username: u.into(),
            password: p.into(),
        }));
    }
    if field("username").is_some() || field("password").is_some() {
        return Err(invalid("a username needs a password".into()));
    }
    Ok(None)
}

/// `POST /images/create?fromImage=&tag=&platform=`: a pull, with Docker's progress stream.
pub(super) async fn create(req: Req) -> Result<Response<Body>, ApiError> {
    if req.q("fromSrc").is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::not_implemented(
            "image import (/images/create?fromSrc=)",
        ));
    }
    let creds = registry_auth(&req)?;
    let from = req
        .q("fromImage")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing query parameter fromImage"))?
        .to_string();
    let full = match req.q("tag").filter(|t| !t.is_empty()) {
        Some(t) if t.starts_with("sha256:") => format!("{from}@{t}"),
        Some(t) => format!("{from}:{t}"),
        None => from.clone(),
    };
    let reference = Reference::parse(&full).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let platform = req
        .q("platform")
        .filter(|p| !p.is_empty())
        .map(hako_engine::images::Platform::parse)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let root = req.state.backend.root().to_path_buf();
    progress_stream(&req, move |w| {
        let engine = hako_engine::Engine::open(&root)?;
        let opts = hako_engine::images::PullOptions { platform };
        // The pull's own last step says "Downloaded newer image" or "Image is up to date".
        engine.pull_as(&reference, &opts, creds.as_ref(), &mut |p| w.progress(p)).map_err(|e| {
            let msg = e.to_string();
            let lower = msg.to_ascii_lowercase();
            if lower.contains("not found") || lower.contains("unknown") || lower.contains("denied") {
                ApiError::not_found(format!("pull access denied for {}, repository does not exist or may require 'docker login': {msg}", reference.familiar_repository()))
            } else {
                ApiError::internal(msg)
            }
        })?;
        Ok(())
    })
    .await
}

/// `POST /images/{name}/push?tag=`.
async fn push(req: Req, name: String) -> Result<Response<Body>, ApiError> {
    let creds = registry_auth(&req)?;
    let full = match req.q("tag").filter(|t| !t.is_empty()) {
        Some(t) => format!("{name}:{t}"),
        None => name.clone(),
    };
    let reference = Reference::parse(&full).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let root = req.state.backend.root().to_path_buf();
    progress_stream(&req, move |w| {
        let engine = hako_engine::Engine::open(&root)?;
        engine
            .images()
            .resolve(&reference.to_string())
            .map_err(|_| ApiError::not_found(format!("No such image: {}", reference.familiar())))?;
        engine
            .push_as(&reference, creds.as_ref(), &mut |p| w.progress(p))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        Ok(())
    })
    .await
}

/// Streams the lines a `hako` command prints as Docker's `{"stream": …}` messages; its
/// failure ends the stream with Docker's error message. `body` is fed to its stdin.
async fn cli_lines(
    req: &mut Req,
    args: Vec<String>,
    last: Option<fn(&str) -> Option<Value>>,
) -> Result<Response<Body>, ApiError> {
    let body = req.take_body();
    let mut child = req
        .state
        .backend
        .cli_command(&args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| ApiError::internal(format!("start hako: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let state = req.state.clone();
    tokio::spawn(async move {
        let _busy = state.backend.mark_busy();
        let feed = async move {
            if let Some(mut body) = body {
                use http_body_util::BodyExt;
                while let Some(frame) = body.frame().await {
                    // A client that goes mid-upload leaves a truncated archive: the command
                    // fails on it, and is killed below anyway.
                    let Ok(frame) = frame else { return false };
                    if let Some(d) = frame.data_ref() {
                        if stdin.write_all(d).await.is_err() {
                            break;
                        }
                    }
                }
            }
            drop(stdin);
            true
        };
        let err_text = async move {
            let mut s = String::new();
            let mut r = tokio::io::BufReader::new(stderr);
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut r, &mut s).await;
            s
        };
        let out = async {
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            let mut aux = None;
            while let Ok(Some(l)) = lines.next_line().await {
                if let Some(f) = last {
                    if let Some(v) = f(&l) {
                        aux = Some(v);
                    }
                }
                let msg = j!({"stream": format!("{l}\n")});
                if tx
                    .send(Bytes::from(wire::progress_line(&msg)))
                    .await
                    .is_err()
                {
                    return (false, aux);
                }
            }
            (true, aux)
        };
        // A client that goes while the command says nothing (a long RUN step) is seen by
        // its channel closing, not only by the next line failing to go out.
        let (fed, (delivered, aux), err) = tokio::select! {
            r = async { tokio::join!(feed, out, err_text) } => r,
            _ = tx.closed() => (false, (false, None), String::new()),
        };
        if !fed || !delivered {
            // The client went: so does the work. The build's stages and its step's container
            // die with it (parent-death signals); what it leaves in the state root the next
            // reconcile removes, done here at once.
            let _ = child.start_kill();
            let _ = child.wait().await;
            let _ = state.backend.engine(|e| Ok(e.reconcile()?)).await;
            return;
        }
        let status = child.wait().await;
        if status.as_ref().is_ok_and(|s| s.success()) {
            if let Some(aux) = aux {
                let _ = tx
                    .send(Bytes::from(wire::progress_line(&j!({"aux": aux}))))
                    .await;
            }
        } else {
            let e = crate::backend::cli_error(err.as_bytes());
            let _ = tx
                .send(Bytes::from(wire::progress_line(
                    &j!({"errorDetail": {"message": e.message}, "error": e.message}),
                )))
                .await;
        }
    });
    Ok(streaming("application/json", rx))
}

/// `POST /images/load?quiet=`: the body is a `docker save` archive.
pub(super) async fn load(mut req: Req) -> Result<Response<Body>, ApiError> {
    let mut args = vec!["load".to_string()];
    if req.q_bool("quiet") {
        args.push("--quiet".into());
    }
    cli_lines(&mut req, args, None).await
}

async fn save(req: Req, names: Vec<String>) -> Result<Response<Body>, ApiError> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    let mut args = vec!["save".to_string()];
    args.extend(names);
    super::containers_stream_cli(&req, args, "application/x-tar").await
}

/// `GET /images/get?names=…`.
pub(super) async fn get_many(req: Req) -> Result<Response<Body>, ApiError> {
    let names: Vec<String> = req.q_all("names").into_iter().map(str::to_string).collect();
    save(req, names).await
}

/// `POST /images/prune?filters=`: `dangling=false` prunes tagged images too; `until=` and
/// `label=`/`label!=` are `image prune --filter`'s (hako_docker::image::PruneFilters).
pub(super) async fn prune(req: Req) -> Result<Response<Body>, ApiError> {
    let filters = req.filters()?;
    let mut all = false;
    for (k, v) in &filters {
        match (k.as_str(), v.as_str()) {
            ("dangling", "false" | "0") => all = true,
            ("dangling", "true" | "1") => {}
            ("dangling", _) => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter 'dangling={v}'"
                )))
            }
            _ => {}
        }
    }
    let filter = crate::compat::prune_filters(&filters, &["dangling"])?;
    let report = req
        .state
        .backend
        .engine(move |e| Ok(e.image_prune(all, &|img| filter.accepts(img))?))
        .await?;
    let v: Vec<Value> = report
        .events
        .iter()
        .map(hako_docker::image::remove_event_json)
        .collect();
    Ok(json(
        StatusCode::OK,
        &j!({"ImagesDeleted": if v.is_empty() { Value::Null } else { j!(v) }, "SpaceReclaimed": report.space_reclaimed}),
    ))
}

fn built_id(line: &str) -> Option<Value> {
    line.strip_prefix("Successfully built ")
        .map(|id| j!({"ID": format!("sha256:{}", id.trim())}))
}

/// `POST /build`: the body is the context as a tar; the classic builder's output streams.
pub(super) async fn build(mut req: Req) -> Result<Response<Body>, ApiError> {
    let mut args = vec!["build".to_string()];
    for t in req.q_all("t") {
        args.push(format!("--tag={t}"));
    }
    if let Some(f) = req.q("dockerfile").filter(|f| !f.is_empty()) {
        args.push(format!("--file={f}"));
    }
    if req.q("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::not_implemented(
            "builds from a remote context (/build?remote=)",
        ));
    }
    let json_map = |k: &str| -> Result<Vec<(String, Value)>, ApiError> {
        match req.q(k).filter(|v| !v.is_empty()) {
            None => Ok(Vec::new()),
            Some(v) => serde_json::from_str::<serde_json::Map<String, Value>>(v)
                .map(|m| m.into_iter().collect())
                .map_err(|e| ApiError::bad_request(format!("invalid {k}: {e}"))),
        }
    };
    for (k, v) in json_map("buildargs")? {
        match v {
            Value::Null => args.push(format!("--build-arg={k}")),
            Value::String(s) => args.push(format!("--build-arg={k}={s}")),
            other => {
                return Err(ApiError::bad_request(format!(
                    "invalid buildargs value for {k}: {other}"
                )))
            }
        }
    }
    for (k, v) in json_map("labels")? {
        args.push(format!("--label={k}={}", v.as_str().unwrap_or("")));
    }
    if req.q_bool("nocache") {
        args.push("--no-cache".into());
    }
    if req.q_bool("pull") {
        args.push("--pull".into());
    }
    if req.q_bool("q") {
        args.push("--quiet".into());
    }
    if let Some(t) = req.q("target").filter(|t| !t.is_empty()) {
        args.push(format!("--target={t}"));
    }
    if let Some(p) = req.q("platform").filter(|p| !p.is_empty()) {
        args.push(format!("--platform={p}"));
    }
    if let Some(n) = req
        .q("networkmode")
        .filter(|n| !n.is_empty() && *n != "default")
    {
        args.push(format!("--network={n}"));
    }
    if let Some(r) = req.q("rm") {
        args.push(format!("--rm={}", wire::query_bool(Some(r))));
    }
    if req.q_bool("forcerm") {
        args.push("--force-rm".into());
    }
    if let Some(c) = req.q("cachefrom").filter(|c| !c.is_empty() && *c != "[]") {
        let list: Vec<String> = serde_json::from_str(c)
            .map_err(|e| ApiError::bad_request(format!("invalid cachefrom: {e}")))?;
        for c in list {
            args.push(format!("--cache-from={c}"));
        }
    }
    for k in [
        "extrahosts",
        "cpusetcpus",
        "cpushares",
        "memory",
        "memswap",
        "cgroupparent",
        "shmsize",
        "squash",
        "outputs",
    ] {
        if req
            .q(k)
            .is_some_and(|v| !v.is_empty() && v != "0" && v != "false" && v != "[]")
        {
            return Err(ApiError::not_implemented(format!("the build option {k}")));
        }
    }
    if req.q("version").is_some_and(|v| v == "2") {
        return Err(ApiError::not_implemented(
            "BuildKit builds (version=2); hako builds with the classic builder (Builder-Version 1)",
        ));
    }
    args.push("-".into());
    cli_lines(&mut req, args, Some(built_id)).await
}

/// `POST /build/prune`.
pub(super) async fn build_prune(req: Req) -> Result<Response<Body>, ApiError> {
    let mut args = vec!["builder".to_string(), "prune".into(), "--force".into()];
    if req.q_bool("all") {
        args.push("--all".into());
    }
    if !req.filters()?.is_empty() {
        return Err(ApiError::not_implemented("build cache prune filters"));
    }
    let out = req.state.backend.cli(&args, None).await?;
    let text = String::from_utf8_lossy(&out);
    let reclaimed = text
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .and_then(|s| hako_engine::options::parse_size(s.trim().trim_end_matches('B'), "size").ok())
        .unwrap_or(0);
    Ok(json(
        StatusCode::OK,
        &j!({"CachesDeleted": [], "SpaceReclaimed": reclaimed}),
    ))
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&changes=`.
pub(super) async fn commit(mut req: Req) -> Result<Response<Body>, ApiError> {
    let container = req
        .q("container")
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing query parameter container"))?
        .to_string();
    let body: Option<Value> = req.json().await?;
    if body.as_ref().is_some_and(|b| {
        b.as_object()
            .is_some_and(|o| o.values().any(|v| !v.is_null()))
    }) {
        return Err(ApiError::not_implemented(
            "a container configuration in the commit body (use changes=)",
        ));
    }
    let mut args = vec!["commit".to_string()];
    if let Some(a) = req.q("author").filter(|a| !a.is_empty()) {
        args.push(format!("--author={a}"));
    }
    if let Some(m) = req.q("comment").filter(|m| !m.is_empty()) {
        args.push(format!("--message={m}"));
    }
    for c in req.q_all("changes") {
        for line in c.lines().filter(|l| !l.trim().is_empty()) {
            args.push(format!("--change={line}"));
        }
    }
    args.push(container);
    if let Some(r) = req.q("repo").filter(|r| !r.is_empty()) {
        match req.q("tag").filter(|t| !t.is_empty()) {
            Some(t) => args.push(format!("{r}:{t}")),
            None => args.push(r.to_string()),
        }
    }
    let out = req.state.backend.cli(&args, None).await?;
    let id = String::from_utf8_lossy(&out).trim().to_string();
    Ok(json(StatusCode::CREATED, &j!({"Id": id})))
}

/// `GET /distribution/{name}/json`.
pub(super) async fn distribution(_req: Req, _name: String) -> Result<Response<Body>, ApiError> {
    Err(ApiError::not_implemented(
        "registry lookups (/distribution/{name}/json)",
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_auth_headers_as_clients_send_them() {
        use base64::Engine as _;
        let enc = |j: &str| base64::engine::general_purpose::URL_SAFE.encode(j);
        assert_eq!(super::decode_registry_auth(b"").unwrap(), None);
        assert_eq!(
            super::decode_registry_auth(enc("{}").as_bytes()).unwrap(),
            None
        );
        let c = super::decode_registry_auth(
            enc(r#"{"username":"u","password":"p?>","serveraddress":"r"}"#).as_bytes(),
        )
        .unwrap()
        .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p?>"));
        let c = super::decode_registry_auth(enc(r#"{"auth":"dTpwOnE="}"#).as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:q"));
        let e =
            super::decode_registry_auth(enc(r#"{"identitytoken":"t"}"#).as_bytes()).unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::NOT_IMPLEMENTED);
        assert!(e.message.contains("identitytoken"), "{}", e.message);
        let e = super::decode_registry_auth(b"!!!").unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST);
        let e = super::decode_registry_auth(enc(r#"{"username":"u"}"#).as_bytes()).unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::BAD_REQUEST);
    }

    use super::*;

    #[test]
    fn build_output_names_the_image() {
        assert_eq!(
            built_id("Successfully built 0123abcd"),
            Some(j!({"ID": "sha256:0123abcd"}))
        );
        assert_eq!(built_id("Step 1/2"), None);
    }
}
