//! `/containers/…`.

use super::{json, no_content, streaming, Body, Req};
use crate::compat;
use crate::error::ApiError;
use crate::hijack;
use bytes::Bytes;
use hako_docker::api::{self as wire, StdStream};
use hako_engine::{ContainerInfo, Engine, State};
use hyper::{Response, StatusCode};
use serde_json::{json as j, Value};
use std::io::{BufRead, Seek};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The filter keys `GET /containers/json` knows: the engine's `ps` filters plus `network` and
/// `volume`.
const LIST_FILTERS: [&str; 8] = [
    "id", "name", "label", "status", "exited", "ancestor", "network", "volume",
];

/// The filters the engine's `ps` applies from the container's record alone; the others need
/// its configuration or (`status=paused`) its cgroup, and are applied to the summaries
/// ([`hako_docker::container::Summary::matches`]).
const RECORD_FILTERS: [&str; 4] = ["id", "name", "ancestor", "exited"];

/// `GET /containers/json`: the engine's `ps` rows as Docker's summaries, typed from the engine
/// to the bytes. A running container's networks and mounts come from its inspect view; every
/// other's from its stored options, read for all rows in one query.
pub(super) async fn list(req: Req) -> Result<Response<Body>, ApiError> {
    let filters = req.filters()?;
    for (k, _) in &filters {
        if !LIST_FILTERS.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    let limit = req.q_num::<i64>("limit")?.filter(|l| *l > 0);
    let all = req.q_bool("all")
        || limit.is_some()
        || filters.iter().any(|(k, _)| k == "status" || k == "exited");
    let size = req.q_bool("size");
    let body = req
        .state
        .backend
        .engine(move |e| {
            let list = summaries(e, all, &filters, limit, size)?;
            let mut body = serde_json::to_vec(&list)
                .map_err(|e| ApiError::internal(format!("encode the list: {e}")))?;
            body.push(b'\n');
            Ok(body)
        })
        .await?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(super::full_body(body))
        .expect("static response"))
}

/// The containers `GET /containers/json` lists (and `/system/df`), as Docker's summaries:
/// every one with `all`, those `filters` keep, at most `limit`, with their sizes when `size`.
pub(super) fn summaries(
    e: &Engine,
    all: bool,
    filters: &[(String, String)],
    limit: Option<i64>,
    size: bool,
) -> Result<Vec<hako_docker::container::Summary>, ApiError> {
    use hako_docker::container::Summary;
    let record: Vec<(&str, &str)> = filters
        .iter()
        .filter(|(k, _)| RECORD_FILTERS.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let opts = hako_engine::views::container::PsOptions {
        all,
        last: None,
        filters: hako_engine::views::container::ContainerFilters::new(&record)?,
        size: false,
    };
    let rows = e.ps(&opts)?;
    let mut configs = e.stored_configs(rows.iter().map(|r| r.container.id.as_str()))?;
    let now = hako_engine::now_nanos();
    let mut kept = Vec::new();
    for row in rows {
        let c = &row.container;
        // Removed between the list and now.
        let Some(config) = configs.remove(&c.id) else {
            continue;
        };
        let view = if c.state == State::Running {
            match e.container_inspect(&c.id) {
                Ok(v) => Some(v),
                Err(hako_engine::Error::NoSuchContainer(_)) => continue,
                Err(err) => return Err(err.into()),
            }
        } else {
            None
        };
        let summary = Summary::new(&row, &config, view.as_ref(), now);
        if summary.matches(filters) {
            kept.push((c.clone(), summary));
            if limit.is_some_and(|l| kept.len() as i64 >= l) {
                break;
            }
        }
    }
    if size {
        let cs: Vec<ContainerInfo> = kept.iter().map(|(c, _)| c.clone()).collect();
        for ((_, s), (rw, root)) in kept.iter_mut().zip(e.container_sizes(&cs)?) {
            s.size_rw = Some(rw);
            s.size_root_fs = Some(root);
        }
    }
    Ok(kept.into_iter().map(|(_, s)| s).collect())
}

/// `POST /containers/create?name=`.
pub(super) async fn create(mut req: Req) -> Result<Response<Body>, ApiError> {
    let name = req.q("name").map(str::to_string);
    if let Some(n) = &name {
        let ok = !n.is_empty()
            && n.trim_start_matches('/')
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphanumeric() || (i > 0 && matches!(c, '_' | '.' | '-')));
        if !ok {
            return Err(ApiError::bad_request(format!(
                "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
    }
    let raw: Value = req.json().await?.ok_or_else(|| {
        ApiError::bad_request("config cannot be empty in order to create a container")
    })?;
    if !raw.is_object() {
        return Err(ApiError::bad_request(
            "invalid JSON: the container configuration must be an object",
        ));
    }
    let body: bollard_stubs::models::ContainerCreateBody = serde_json::from_value(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid container configuration: {e}")))?;
    let created = hako_docker::container::from_create_body(&body)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let warnings = created.warnings.clone();
    let name = name.map(|n| n.trim_start_matches('/').to_string());
    let id = req
        .state
        .backend
        .engine(move |e| {
            e.create(name.as_deref(), &created.config)
                .map_err(|err| match err {
                    // Docker's clients pull on a 404 that says "No such image".
                    hako_engine::Error::ImageNotFound(i) => {
                        ApiError::not_found(format!("No such image: {i}"))
                    }
                    hako_engine::Error::Image(hako_engine::hako_image::Error::NotFound(i)) => {
                        ApiError::not_found(format!("No such image: {i}"))
                    }
                    other => other.into(),
                })
        })
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &j!({"Id": id, "Warnings": warnings}),
    ))
}

/// The container, or a 404.
async fn find(req: &Req, id: &str) -> Result<ContainerInfo, ApiError> {
    let id = id.to_string();
    req.state.backend.engine(move |e| Ok(e.find(&id)?)).await
}

/// `GET /containers/{id}/json`.
pub(super) async fn inspect(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let size = req.q_bool("size");
    let mut doc = req
        .state
        .backend
        .engine(move |e| {
            let mut doc = hako_docker::container::inspect_json(&e.container_inspect(&id)?);
            if size {
                let c = e.find(&id)?;
                if let Some((rw, root)) = e.container_sizes(&[c])?.pop() {
                    doc["SizeRw"] = rw.into();
                    doc["SizeRootFs"] = root.into();
                }
            }
            Ok(doc)
        })
        .await?;
    // The exec instances this service made for it (the engine records none).
    let full = doc["Id"].as_str().unwrap_or("");
    let execs = req.state.backend.exec_ids_of(full);
    if !execs.is_empty() {
        doc["ExecIDs"] = execs.into();
    }
    Ok(json(StatusCode::OK, &doc))
}

/// `POST /containers/{id}/start`. The start runs in a helper process (it forks the monitor);
/// an attach waiting for this container makes the monitor wait for it.
pub(super) async fn start(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let c = find(&req, &id).await?;
    if c.state == State::Running {
        return Ok(no_content(StatusCode::NOT_MODIFIED));
    }
    let waiting = req
        .state
        .backend
        .waiting_attach
        .lock()
        .expect("attach lock")
        .get(&c.id)
        .copied()
        .unwrap_or(0)
        > 0;
    let mut args = vec!["start".to_string(), c.id.clone()];
    if waiting {
        args.push("attach".into());
    }
    req.state.backend.helper(&args, None).await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

fn timeout(req: &Req) -> Result<Option<u64>, ApiError> {
    let t: Option<i64> = req.q_num("t")?;
    Ok(t.map(|t| if t < 0 { 3600 * 24 * 365 } else { t as u64 }))
}

/// The container's own stop timeout, or Docker's 10 seconds: from its stored options (the
/// whole inspect document, image and all, is not needed for one number).
fn stop_timeout_of(e: &Engine, id: &str) -> u64 {
    e.stored_config(id)
        .ok()
        .and_then(|o| o.stop_timeout)
        .unwrap_or(10)
}

/// `POST /containers/{id}/stop?t=`.
pub(super) async fn stop(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    if req
        .q("signal")
        .is_some_and(|s| !s.is_empty() && !matches!(s, "SIGTERM" | "TERM" | "15"))
    {
        return Err(ApiError::bad_request(
            "stop with a signal other than SIGTERM is not supported by hako",
        ));
    }
    let t = timeout(&req)?;
    let c = find(&req, &id).await?;
    if c.state != State::Running {
        return Ok(no_content(StatusCode::NOT_MODIFIED));
    }
    req.state
        .backend
        .engine(move |e| {
            let t = t.unwrap_or_else(|| stop_timeout_of(e, &c.id));
            e.stop(&c.id, Duration::from_secs(t))?;
            Ok(())
        })
        .await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/restart?t=`.
pub(super) async fn restart(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let t = timeout(&req)?;
    let c = find(&req, &id).await?;
    let t = match t {
        Some(t) => t,
        None => {
            let cid = c.id.clone();
            req.state
                .backend
                .engine(move |e| Ok(stop_timeout_of(e, &cid)))
                .await?
        }
    };
    req.state
        .backend
        .helper(&["restart".into(), c.id, t.to_string()], None)
        .await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// A signal by name (`SIGHUP`, `HUP`, `RTMIN+3`) or number, from hako's one signal table.
pub(crate) fn signal_number(s: &str) -> Result<i32, ApiError> {
    hako_engine::hako_base::signal::parse(s)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid signal: {s}")))
}

/// `POST /containers/{id}/kill?signal=`.
pub(super) async fn kill(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let sig = match req.q("signal").filter(|s| !s.is_empty()) {
        Some(s) => signal_number(s)?,
        None => libc::SIGKILL,
    };
    req.state
        .backend
        .engine(move |e| {
            e.kill(&id, sig).map_err(|err| match err {
                hako_engine::Error::NotRunning(_) => ApiError::conflict(format!(
                    "Cannot kill container: {id}: Container {id} is not running"
                )),
                other => other.into(),
            })?;
            Ok(())
        })
        .await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/pause` and `unpause`.
pub(super) async fn pause(req: Req, id: String, pause: bool) -> Result<Response<Body>, ApiError> {
    req.state
        .backend
        .engine(move |e| {
            if pause {
                e.pause(&id)?;
            } else {
                e.unpause(&id)?;
            }
            Ok(())
        })
        .await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/wait?condition=not-running|next-exit|removed`.
pub(super) async fn wait(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let condition = hako_engine::wait::WaitCondition::parse(req.q("condition").unwrap_or(""))?;
    let c = find(&req, &id).await?;
    // The answer's head goes out at once (docker's CLI waits for it before it starts the
    // container), the body when the condition is met.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let state = req.state.clone();
    let since = hako_engine::now_nanos();
    // The engine's wait sleeps on the container's owner (pidfd) and directory (inotify) in a
    // blocking thread; dropping `cancel_w` when the client goes ends that thread.
    let (cancel_r, cancel_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ApiError::internal(format!("create a pipe: {e}")))?;
    tokio::spawn(async move {
        let _busy = state.backend.mark_busy();
        let cid = c.id.clone();
        let waiter = state.backend.engine(move |e| {
            use std::os::fd::AsFd;
            let Some(code) = e.wait_for_or_cancel(&cid, condition, Some(cancel_r.as_fd()))? else {
                return Ok(None);
            };
            // Removed (`--rm`, or `removed`): its last exit is in the journal.
            let gone = matches!(e.find(&cid), Err(hako_engine::Error::NoSuchContainer(_)));
            Ok(Some(if gone {
                last_exit(e, &cid, since).unwrap_or(code)
            } else {
                code
            }))
        });
        tokio::pin!(waiter);
        let code = tokio::select! {
            r = &mut waiter => r,
            _ = tx.closed() => {
                drop(cancel_w);
                let _ = waiter.await;
                return;
            }
        };
        let code = match code {
            Ok(Some(code)) => Some(code),
            Ok(None) => return,
            Err(_) => None,
        };
        let body = match code {
            Some(code) => j!({"StatusCode": code, "Error": null}),
            None => {
                j!({"StatusCode": -1, "Error": {"Message": "the container's exit status is unknown"}})
            }
        };
        super::trace_note(|| format!("wait {} answered {body}", &c.id[..12]));
        let _ = tx.send(Bytes::from(wire::json_line(&body))).await;
    });
    Ok(streaming("application/json", rx))
}

/// The exit status of the container's last `die` event since `since`.
fn last_exit(e: &Engine, id: &str, since: i64) -> Option<i32> {
    e.events(0, Some(since), None)
        .ok()?
        .into_iter()
        .rev()
        .find(|ev| ev.kind == "container" && ev.id == id && ev.action == "die")
        .and_then(|ev| ev.attributes.get("exitCode")?.parse().ok())
}

/// `POST /containers/{id}/rename?name=`.
pub(super) async fn rename(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let name = req
        .q("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing query parameter name"))?
        .trim_start_matches('/')
        .to_string();
    req.state
        .backend
        .engine(move |e| Ok(e.rename(&id, &name)?))
        .await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateBody {
    memory: i64,
    memory_swap: i64,
    nano_cpus: i64,
    cpu_shares: i64,
    cpuset_cpus: String,
    pids_limit: Option<i64>,
    restart_policy: Option<RestartBody>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RestartBody {
    name: String,
    maximum_retry_count: i64,
}

/// `POST /containers/{id}/update`.
pub(super) async fn update(mut req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let raw: Value = req.json().await?.unwrap_or_else(|| j!({}));
    for k in [
        "BlkioWeight",
        "CpuPeriod",
        "CpuQuota",
        "CpusetMems",
        "KernelMemory",
        "MemoryReservation",
    ] {
        if raw
            .get(k)
            .is_some_and(|v| v.as_i64().unwrap_or(1) != 0 && !v.is_null() && v.as_str() != Some(""))
        {
            return Err(ApiError::bad_request(format!(
                "updating {k} is not supported by hako"
            )));
        }
    }
    let b: UpdateBody = serde_json::from_value(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid update: {e}")))?;
    let restart_policy = match &b.restart_policy {
        None => None,
        Some(r) => {
            let text = match r.name.as_str() {
                "" => "no".to_string(),
                "on-failure" if r.maximum_retry_count > 0 => {
                    format!("on-failure:{}", r.maximum_retry_count)
                }
                other => other.to_string(),
            };
            Some(
                hako_engine::RestartPolicy::parse(&text)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?,
            )
        }
    };
    let change = hako_engine::config::ContainerUpdate {
        memory: (b.memory > 0).then_some(b.memory),
        memory_swap: (b.memory_swap != 0).then_some(b.memory_swap),
        nano_cpus: (b.nano_cpus > 0).then_some(b.nano_cpus),
        cpu_shares: (b.cpu_shares > 0).then_some(b.cpu_shares as u64),
        cpuset_cpus: Some(b.cpuset_cpus).filter(|s| !s.is_empty()),
        pids_limit: b.pids_limit.filter(|p| *p != 0),
        restart_policy,
    };
    req.state
        .backend
        .engine(move |e| {
            e.update(&id, &change)?;
            Ok(())
        })
        .await?;
    Ok(json(StatusCode::OK, &j!({"Warnings": []})))
}

/// `POST /containers/{id}/resize?h=&w=`: to the terminal of the attach under way.
pub(super) async fn resize(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let h: u16 = req.q_num("h")?.unwrap_or(0);
    let w: u16 = req.q_num("w")?.unwrap_or(0);
    let c = find(&req, &id).await?;
    if c.state != State::Running {
        return Err(ApiError::conflict(format!(
            "Container {} is not running",
            c.id
        )));
    }
    let tx = req
        .state
        .backend
        .resizers
        .lock()
        .expect("resize lock")
        .get(&c.id)
        .cloned();
    match tx {
        Some(tx) => {
            let _ = tx.send((h, w)).await;
            Ok(no_content(StatusCode::OK))
        }
        None => Err(ApiError::conflict(format!(
            "container {} has no terminal attached through this service to resize",
            c.id
        ))),
    }
}

/// What an attach or log stream writes: Docker's 8-byte frames without a terminal, the bytes
/// as they are with one.
pub(crate) fn framed(tty: bool, stream: StdStream, data: &[u8]) -> Vec<u8> {
    if tty {
        data.to_vec()
    } else {
        wire::frame(stream, data)
    }
}

/// Options of a log read.
struct LogRead {
    stdout: bool,
    stderr: bool,
    timestamps: bool,
    tail: Option<usize>,
    since: Option<i64>,
    until: Option<i64>,
    follow: bool,
    tty: bool,
    /// Where in the log file to begin (an attach takes what comes after it).
    from: Option<u64>,
    /// The log, opened before the container started: a `--rm` container's log goes with it
    /// as soon as it ends, and what it wrote is still read here.
    file: Option<std::fs::File>,
}

/// One json-file line, filtered and framed; `None` when it is not wanted.
fn log_line(line: &str, r: &LogRead) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_str(line).ok()?;
    let stream = match v["stream"].as_str() {
        Some("stderr") => StdStream::Stderr,
        _ => StdStream::Stdout,
    };
    if (stream == StdStream::Stderr && !r.stderr) || (stream == StdStream::Stdout && !r.stdout) {
        return None;
    }
    let time = v["time"].as_str().unwrap_or("");
    if r.since.is_some() || r.until.is_some() {
        let t = compat::parse_rfc3339(time).unwrap_or(0);
        if r.since.is_some_and(|s| t < s) || r.until.is_some_and(|u| t >= u) {
            return None;
        }
    }
    let text = v["log"].as_str().unwrap_or("");
    let data = if r.timestamps {
        format!("{time} {text}")
    } else {
        text.to_string()
    };
    Some(framed(r.tty, stream, data.as_bytes()))
}

/// The frames of what the log holds (rotated files first), up to the offset `upto` of the
/// current file when given, the last `tail` of them when asked; and where in the current file
/// they end.
fn backlog(path: &std::path::Path, r: &LogRead, upto: Option<u64>) -> (Vec<Vec<u8>>, u64) {
    let mut lines: Vec<String> = Vec::new();
    for n in (1..100).rev() {
        if let Ok(t) = std::fs::read_to_string(format!("{}.{n}", path.display())) {
            lines.extend(t.lines().map(str::to_string));
        }
    }
    let mut pos = 0;
    if let Ok(t) = std::fs::read_to_string(path) {
        let end = upto.map_or(t.len(), |u| (u as usize).min(t.len()));
        let complete = t[..end].rfind('\n').map_or(0, |i| i + 1);
        lines.extend(t[..complete].lines().map(str::to_string));
        pos = complete as u64;
    }
    let wanted: Vec<Vec<u8>> = lines.iter().filter_map(|l| log_line(l, r)).collect();
    let skip = r.tail.map_or(0, |n| wanted.len().saturating_sub(n));
    (wanted.into_iter().skip(skip).collect(), pos)
}

/// Sends the container's log, and with `follow` what it appends until the container ends.
async fn pump_log(
    state: std::sync::Arc<crate::server::State>,
    id: String,
    path: std::path::PathBuf,
    r: LogRead,
    out: tokio::sync::mpsc::Sender<Bytes>,
) {
    let _busy = state.backend.mark_busy();
    // The backlog (rotated files first), unless the attach starts at the end.
    let mut pos = match r.from {
        Some(p) => p,
        None => {
            let (wanted, pos) = backlog(&path, &r, None);
            for f in wanted {
                if out.send(Bytes::from(f)).await.is_err() {
                    return;
                }
            }
            pos
        }
    };
    if !r.follow {
        return;
    }
    let pinned = r.file.is_some();
    let mut file = r.file.as_ref().and_then(|f| f.try_clone().ok());
    // The monitor appends to the log in the container's directory; the end of the run is a
    // commit to the database in the root.
    let dir = path
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let changes = crate::changes::Changes::state(state.backend.root(), &[&dir]);
    loop {
        let cid = id.clone();
        let running = state
            .backend
            .engine(move |e| match e.is_running(&cid) {
                Ok(r) => Ok(r),
                Err(hako_engine::Error::NoSuchContainer(_)) => Ok(false),
                Err(err) => Err(err.into()),
            })
            .await
            .unwrap_or(false);
        if file.is_none() {
            file = std::fs::File::open(&path).ok();
        }
        if let Some(f) = file.as_mut() {
            // The log rotated: what remains is in the new file, from its start.
            if !pinned && f.metadata().map(|m| m.len()).unwrap_or(0) < pos {
                pos = 0;
                file = std::fs::File::open(&path).ok();
            }
        }
        if let Some(f) = file.as_mut() {
            if f.seek(std::io::SeekFrom::Start(pos)).is_ok() {
                let mut reader = std::io::BufReader::new(f);
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
                    pos += line.len() as u64;
                    if let Some(frame) = log_line(&line, &r) {
                        if out.send(Bytes::from(frame)).await.is_err() {
                            return;
                        }
                    }
                    line.clear();
                }
            }
        }
        if !running || r.until.is_some_and(|u| hako_engine::now_nanos() >= u) {
            return;
        }
        tokio::select! {
            _ = changes.next() => {}
            _ = out.closed() => return,
        }
    }
}

/// Whether the container has a terminal (its frames are then raw).
async fn has_tty(req: &Req, id: &str) -> Result<(String, bool, bool, bool), ApiError> {
    let id = id.to_string();
    req.state
        .backend
        .engine(move |e| {
            let (c, tty, open_stdin, once) = stdio_of(e, &id)?;
            Ok((c.id, tty, open_stdin, once))
        })
        .await
}

/// The container and its `Tty`, `OpenStdin` and `StdinOnce`, from its stored options: an
/// attach (each `docker run`) needs no more than these, not a whole inspect document.
fn stdio_of(e: &Engine, id: &str) -> Result<(ContainerInfo, bool, bool, bool), ApiError> {
    let c = e.find(id)?;
    let o = e.stored_config(&c.id)?;
    Ok((c, o.tty, o.open_stdin, o.stdin_once))
}

/// `GET /containers/{id}/logs`.
pub(super) async fn logs(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let stdout = req.q_bool("stdout");
    let stderr = req.q_bool("stderr");
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let tail = match req.q("tail").unwrap_or("all") {
        "all" | "" | "-1" => None,
        n => Some(
            n.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid tail: {n:?}")))?,
        ),
    };
    let since = req
        .q("since")
        .filter(|s| !s.is_empty() && *s != "0")
        .map(super::system::parse_time)
        .transpose()?;
    let until = req
        .q("until")
        .filter(|s| !s.is_empty() && *s != "0")
        .map(super::system::parse_time)
        .transpose()?;
    let (cid, tty, _, _) = has_tty(&req, &id).await?;
    let opts = hako_engine::logs::LogOptions {
        tail,
        since,
        until,
        follow: req.q_bool("follow"),
    };
    let timestamps = req.q_bool("timestamps");
    let details = req.q_bool("details");
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    // The engine's reader, in a blocking thread, hands each line to a sink that frames it;
    // a follow sleeps there on the log's directory and the container's recorder, and ends
    // when `cancel_w` is dropped because the client went.
    let (cancel_r, cancel_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| ApiError::internal(format!("create a pipe: {e}")))?;
    let state = req.state.clone();
    tokio::spawn(async move {
        let _busy = state.backend.mark_busy();
        let out = tx.clone();
        let reader = state.backend.engine(move |e| {
            use std::os::fd::AsFd;
            let mut sink = |l: &hako_engine::logs::LogLine| {
                let stream = match l.stream {
                    hako_engine::logs::LogStream::Stderr => StdStream::Stderr,
                    _ => StdStream::Stdout,
                };
                if (stream == StdStream::Stderr && !stderr)
                    || (stream == StdStream::Stdout && !stdout)
                {
                    return Ok(());
                }
                let data = hako_docker::logs::text(l, timestamps, details);
                out.blocking_send(Bytes::from(framed(tty, stream, data.as_bytes())))
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            };
            match e.logs_or_cancel(&cid, &opts, Some(cancel_r.as_fd()), &mut sink) {
                // The client went while a line was on its way.
                Err(hako_engine::Error::Io { error, .. })
                    if error.kind() == std::io::ErrorKind::BrokenPipe =>
                {
                    Ok(())
                }
                r => Ok(r?),
            }
        });
        tokio::pin!(reader);
        tokio::select! {
            _ = &mut reader => {}
            _ = tx.closed() => {
                drop(cancel_w);
                let _ = reader.await;
            }
        }
    });
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    Ok(streaming(ct, rx))
}

/// Removes the attach's mark when it ends, however it ends.
struct AttachMark {
    state: std::sync::Arc<crate::server::State>,
    id: String,
    waiting: bool,
    resizer: bool,
}

impl AttachMark {
    fn started(&mut self) {
        if self.waiting {
            self.waiting = false;
            let mut m = self
                .state
                .backend
                .waiting_attach
                .lock()
                .expect("attach lock");
            if let Some(n) = m.get_mut(&self.id) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&self.id);
                }
            }
        }
    }
}

impl Drop for AttachMark {
    fn drop(&mut self) {
        self.started();
        if self.resizer {
            self.state
                .backend
                .resizers
                .lock()
                .expect("resize lock")
                .remove(&self.id);
        }
    }
}

/// `POST /containers/{id}/attach`: hijacks the connection. A container with a terminal or
/// an open stdin is attached through its monitor's socket; the output of one without is
/// followed in its log.
pub(super) async fn attach(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let want_logs = req.q_bool("logs");
    let want_stream = req.q_bool("stream");
    let want_stdin = req.q_bool("stdin");
    let want_stdout = req.q_bool("stdout");
    let want_stderr = req.q_bool("stderr");
    let (c, tty, open_stdin, once, log) = req
        .state
        .backend
        .engine(move |e| {
            let (c, tty, open_stdin, once) = stdio_of(e, &id)?;
            let (_, log) = e.log_file(&c.id)?;
            Ok((c, tty, open_stdin, once, log))
        })
        .await?;
    let cid = c.id.clone();
    let monitor = tty || open_stdin;
    // The log is opened now (made, for a container never started: the monitor appends to
    // it), so its output is read even if the container is gone before the attach looks.
    let log_file = if monitor {
        None
    } else {
        if let Some(dir) = log.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&log)
            .ok()
    };
    // What the log holds now is not this attach's; it takes what comes after.
    let from = log_file
        .as_ref()
        .and_then(|f| f.metadata().ok())
        .map_or(0, |m| m.len());
    let mut mark = AttachMark {
        state: req.state.clone(),
        id: cid.clone(),
        waiting: false,
        resizer: false,
    };
    if c.state != State::Running {
        // The start that comes next makes the monitor wait for this attach.
        *req.state
            .backend
            .waiting_attach
            .lock()
            .expect("attach lock")
            .entry(cid.clone())
            .or_default() += 1;
        mark.waiting = true;
    }
    let ct = if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    };
    // `logs=1`: what the log holds before this attach comes first (all of it for a container
    // attached through its monitor, whose output from here on comes from the monitor).
    let replay = if want_logs {
        let r = LogRead {
            stdout: want_stdout,
            stderr: want_stderr,
            timestamps: false,
            tail: None,
            since: None,
            until: None,
            follow: false,
            tty,
            from: None,
            file: None,
        };
        backlog(&log, &r, (!monitor).then_some(from)).0
    } else {
        Vec::new()
    };
    let rx = req.conn.hijack(req.wants_upgrade(), ct);
    let state = req.state.clone();
    tokio::spawn(async move {
        let Ok(conn) = rx.await else { return };
        let _busy = state.backend.mark_busy();
        let (mut cin, mut cout) = conn.split();
        for f in &replay {
            if cout.write_all(f).await.is_err() {
                return;
            }
        }
        if !want_stream {
            let _ = cout.flush().await;
            let _ = cout.shutdown().await;
            return;
        }
        if monitor {
            let (rtx, rrx) = tokio::sync::mpsc::channel(4);
            state
                .backend
                .resizers
                .lock()
                .expect("resize lock")
                .insert(cid.clone(), rtx);
            mark.resizer = true;
            let sock = log.with_file_name("attach.sock");
            // Until the start (a created container) has the monitor listening: its socket
            // appears in the container's directory.
            let dir = log
                .parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default();
            let changes = crate::changes::Changes::new(&[&dir]);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
            while !sock.exists() {
                if tokio::time::Instant::now() > deadline {
                    return;
                }
                changes.next().await;
            }
            mark.started();
            let _ = crate::monitor_attach::pump(
                &sock,
                &mut cin,
                &mut cout,
                crate::monitor_attach::Streams {
                    tty,
                    stdin: want_stdin && open_stdin,
                    once,
                    stdout: want_stdout,
                    stderr: want_stderr,
                },
                rrx,
            )
            .await;
        } else {
            // Output only: the log from here on, until the container ends. A start still to
            // come is waited for: until then the container is not running.
            let before = c.started_at;
            let mut client_open = true;
            if mark.waiting {
                // The start is a commit to the database in the root.
                let changes = crate::changes::Changes::root(state.backend.root());
                loop {
                    let cid2 = cid.clone();
                    let started = state
                        .backend
                        .engine(move |e| {
                            Ok(e.find(&cid2)
                                .map(|n| n.started_at != before || n.state == State::Running)
                                .unwrap_or(true))
                        })
                        .await
                        .unwrap_or(true);
                    if started {
                        break;
                    }
                    let mut byte = [0u8; 1];
                    tokio::select! {
                        _ = changes.next() => {}
                        // Input for a container without stdin is dropped; the client's
                        // half-close is not its going (its output is still wanted).
                        r = cin.read(&mut byte), if client_open => {
                            client_open = matches!(r, Ok(n) if n > 0);
                        }
                    }
                }
            }
            mark.started();
            let (tx, mut frames) = tokio::sync::mpsc::channel(64);
            let r = LogRead {
                stdout: want_stdout,
                stderr: want_stderr,
                timestamps: false,
                tail: None,
                since: None,
                until: None,
                follow: true,
                tty,
                from: Some(from),
                file: log_file,
            };
            tokio::spawn(pump_log(state.clone(), cid.clone(), log, r, tx));
            while let Some(f) = frames.recv().await {
                if cout.write_all(&f).await.is_err() {
                    return;
                }
            }
        }
        let _ = cout.flush().await;
        let _ = cout.shutdown().await;
        super::trace_note(|| format!("attach {} ended", &cid[..12.min(cid.len())]));
        drop(mark);
    });
    Ok(hijack::placeholder())
}

/// `GET /containers/{id}/top?ps_args=`: the host's `ps` of the container's processes, as
/// dockerd runs it.
pub(super) async fn top(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let ps_args = req
        .q("ps_args")
        .filter(|a| !a.is_empty())
        .unwrap_or("-ef")
        .to_string();
    let pids = req.state.backend.engine(move |e| Ok(e.pids(&id)?)).await?;
    let out = tokio::process::Command::new("ps")
        .args(ps_args.split_whitespace())
        .output()
        .await
        .map_err(|e| ApiError::internal(format!("run ps: {e}")))?;
    if !out.status.success() {
        return Err(ApiError::internal(format!(
            "ps: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let titles: Vec<&str> = header.split_whitespace().collect();
    let pid_col = titles
        .iter()
        .position(|t| *t == "PID")
        .ok_or_else(|| ApiError::internal("Couldn't find PID field in ps output"))?;
    let mut procs = Vec::new();
    for l in lines {
        let f: Vec<&str> = l.split_whitespace().collect();
        let Some(pid) = f.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        // The last column (the command) keeps its spaces.
        let mut row: Vec<String> = f[..titles.len().saturating_sub(1).min(f.len())]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if f.len() >= titles.len() {
            row.push(f[titles.len() - 1..].join(" "));
        }
        procs.push(row);
    }
    Ok(json(
        StatusCode::OK,
        &j!({"Titles": titles, "Processes": procs}),
    ))
}

fn stats_json(s: &hako_engine::ContainerStats, prev: Option<&Value>, ncpu: u64) -> Value {
    let now = hako_engine::rfc3339(hako_engine::now_nanos());
    let system = system_cpu_ns();
    let cpu = j!({
        "cpu_usage": {"total_usage": s.cpu_ns.unwrap_or(0), "usage_in_kernelmode": 0, "usage_in_usermode": 0},
        "system_cpu_usage": system,
        "online_cpus": ncpu,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    });
    let precpu = prev
        .map(|p| p["cpu_stats"].clone())
        .unwrap_or_else(|| j!({"cpu_usage": {"total_usage": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}));
    j!({
        "read": now,
        "preread": prev.map(|p| p["read"].clone()).unwrap_or_else(|| j!("0001-01-01T00:00:00Z")),
        "id": s.id,
        "name": format!("/{}", s.name),
        "pids_stats": {"current": s.pids.unwrap_or(0)},
        "cpu_stats": cpu,
        "precpu_stats": precpu,
        "memory_stats": {"usage": s.memory.unwrap_or(0), "limit": s.memory_limit.unwrap_or_else(hako_base::proc::mem_total), "stats": {}},
        "networks": {"eth0": {"rx_bytes": s.net_rx, "tx_bytes": s.net_tx, "rx_packets": 0, "tx_packets": 0, "rx_errors": 0, "tx_errors": 0, "rx_dropped": 0, "tx_dropped": 0}},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 0, "minor": 0, "op": "read", "value": s.block_read},
            {"major": 0, "minor": 0, "op": "write", "value": s.block_write},
        ]},
        "num_procs": 0,
        "storage_stats": {},
    })
}

/// The host's CPU time in nanoseconds, from /proc/stat, as Docker's `system_cpu_usage`.
fn system_cpu_ns() -> u64 {
    let Ok(s) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let ticks: u64 = s
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(7)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    ticks * 10_000_000
}

/// `GET /containers/{id}/stats?stream=&one-shot=`.
pub(super) async fn stats(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let stream = req.q("stream").is_none_or(|v| wire::query_bool(Some(v)));
    let one_shot = req.q_bool("one-shot");
    let c = find(&req, &id).await?;
    let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let state = req.state.clone();
    tokio::spawn(async move {
        let _busy = state.backend.mark_busy();
        let mut prev: Option<Value> = None;
        let mut first = true;
        loop {
            let cid = c.id.clone();
            let s = state.backend.engine(move |e| Ok(e.stats(&cid)?)).await;
            let doc = match s {
                Ok(s) => stats_json(&s, prev.as_ref(), ncpu),
                Err(_) => return,
            };
            // Without `stream`, docker answers with a second sample so CPU use is known,
            // unless `one-shot`.
            let send = stream || one_shot || !first;
            if send && tx.send(Bytes::from(wire::json_line(&doc))).await.is_err() {
                return;
            }
            if !stream && (one_shot || !first) {
                return;
            }
            prev = Some(doc);
            first = false;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = tx.closed() => return,
            }
        }
    });
    Ok(streaming("application/json", rx))
}

/// `GET /containers/{id}/changes`.
pub(super) async fn changes(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let list = req.state.backend.engine(move |e| Ok(e.diff(&id)?)).await?;
    let v: Vec<Value> = list
        .into_iter()
        .map(|(k, p)| {
            let kind = match k {
                'A' => 1,
                'D' => 2,
                _ => 0,
            };
            j!({"Path": p, "Kind": kind})
        })
        .collect();
    Ok(json(StatusCode::OK, &v))
}

/// Streams a `hako` command's stdout as the answer. Its failure before any output is the
/// answer's error; one after it cuts the stream short (the client sees a broken archive).
pub(super) async fn stream_cli(
    req: &Req,
    args: Vec<String>,
    content_type: &str,
    head: Option<(String, String)>,
) -> Result<Response<Body>, ApiError> {
    let backend = &req.state.backend;
    let mut child = backend
        .cli_command(&args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| ApiError::internal(format!("start hako: {e}")))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut first = vec![0u8; 64 * 1024];
    let n = stdout.read(&mut first).await.unwrap_or(0);
    if n == 0 {
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        if !out.status.success() {
            return Err(crate::backend::cli_error(&out.stderr));
        }
        // An empty output (an empty archive cannot be, but a command may print nothing).
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        return Ok(streaming(content_type, rx));
    }
    first.truncate(n);
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let state = req.state.clone();
    tokio::spawn(async move {
        let _busy = state.backend.mark_busy();
        if n > 0 && tx.send(Bytes::from(first)).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdout.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    if tx.send(Bytes::copy_from_slice(&buf[..k])).await.is_err() {
                        // The client went: the command is killed with its handle.
                        return;
                    }
                }
            }
        }
        let _ = child.wait().await;
    });
    let mut r = streaming(content_type, rx);
    if let Some((k, v)) = head {
        r.headers_mut().insert(
            hyper::header::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            hyper::header::HeaderValue::from_str(&v)
                .map_err(|e| ApiError::internal(e.to_string()))?,
        );
    }
    Ok(r)
}

/// `GET /containers/{id}/export`.
pub(super) async fn export(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let c = find(&req, &id).await?;
    stream_cli(&req, vec!["export".into(), c.id], "application/x-tar", None).await
}

/// The stat of a path in a container, as `X-Docker-Container-Path-Stat` carries it: from the
/// first header of the archive `hako cp` makes of it.
async fn path_stat(req: &Req, id: &str, path: &str) -> Result<Value, ApiError> {
    let mut child = req
        .state
        .backend
        .cli_command(&["cp".into(), format!("{id}:{path}"), "-".into()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| ApiError::internal(format!("start hako: {e}")))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut head = vec![0u8; 512];
    let got = stdout.read_exact(&mut head).await.is_ok();
    drop(stdout);
    if !got {
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let mut e = crate::backend::cli_error(&out.stderr);
        if e.status == StatusCode::INTERNAL_SERVER_ERROR && e.message.contains("o such file") {
            e.status = StatusCode::NOT_FOUND;
        }
        if e.message.to_ascii_lowercase().contains("no such file")
            || e.message.contains("not exist")
        {
            e.status = StatusCode::NOT_FOUND;
        }
        return Err(e);
    }
    let _ = child.kill().await;
    let field = |r: std::ops::Range<usize>| {
        String::from_utf8_lossy(&head[r])
            .trim_matches(|c: char| c == '\0' || c == ' ')
            .to_string()
    };
    let octal = |r: std::ops::Range<usize>| u64::from_str_radix(&field(r), 8).unwrap_or(0);
    let name = field(0..100);
    let mode = octal(100..108) as u32;
    let size = octal(124..136);
    let mtime = octal(136..148);
    let kind = head[156];
    let link = field(157..257);
    // Go's os.FileMode bits for the type.
    let go_mode = mode & 0o777
        | match kind {
            b'5' => 1 << 31,
            b'2' => 1 << 27,
            _ => 0,
        };
    Ok(j!({
        "name": name.trim_end_matches('/').rsplit('/').next().unwrap_or(""),
        "size": size,
        "mode": go_mode,
        "mtime": hako_engine::rfc3339(mtime as i64 * 1_000_000_000),
        "linkTarget": link,
    }))
}

fn stat_header(stat: &Value) -> (String, String) {
    use base64::Engine as _;
    (
        "X-Docker-Container-Path-Stat".into(),
        base64::engine::general_purpose::STANDARD.encode(stat.to_string()),
    )
}

/// `GET|HEAD /containers/{id}/archive?path=`.
pub(super) async fn archive_get(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let path = req
        .q("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing query parameter path"))?
        .to_string();
    let c = find(&req, &id).await?;
    let stat = path_stat(&req, &c.id, &path).await?;
    if req.method == hyper::Method::HEAD {
        let (k, v) = stat_header(&stat);
        return Ok(Response::builder()
            .status(StatusCode::OK)
            .header(k, v)
            .body(super::empty_body())
            .expect("static response"));
    }
    stream_cli(
        &req,
        vec!["cp".into(), format!("{}:{path}", c.id), "-".into()],
        "application/x-tar",
        Some(stat_header(&stat)),
    )
    .await
}

/// `PUT /containers/{id}/archive?path=`: the body is a tar to unpack there.
pub(super) async fn archive_put(mut req: Req, id: String) -> Result<Response<Body>, ApiError> {
    let path = req
        .q("path")
        .filter(|p| !p.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing query parameter path"))?
        .to_string();
    let c = find(&req, &id).await?;
    let body = req.take_body();
    let mut child = req
        .state
        .backend
        .cli_command(&["cp".into(), "-".into(), format!("{}:{path}", c.id)])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| ApiError::internal(format!("start hako: {e}")))?;
    let mut stdin = child.stdin.take().expect("piped");
    if let Some(body) = body {
        use http_body_util::BodyExt;
        let mut body = body;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                // The client went mid-upload: the copy is abandoned.
                let _ = child.kill().await;
                return Err(ApiError::bad_request("the upload ended early"));
            };
            if let Some(d) = frame.data_ref() {
                if stdin.write_all(d).await.is_err() {
                    break;
                }
            }
        }
    }
    drop(stdin);
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if !out.status.success() {
        let mut e = crate::backend::cli_error(&out.stderr);
        if e.message.to_ascii_lowercase().contains("no such file")
            || e.message.contains("not exist")
        {
            e.status = StatusCode::NOT_FOUND;
        }
        return Err(e);
    }
    Ok(no_content(StatusCode::OK))
}

/// `DELETE /containers/{id}?force=&v=`.
pub(super) async fn remove(req: Req, id: String) -> Result<Response<Body>, ApiError> {
    if req.q_bool("link") {
        return Err(ApiError::not_implemented(
            "links (DELETE /containers/{id}?link=1)",
        ));
    }
    let force = req.q_bool("force");
    let volumes = req.q_bool("v");
    req.state
        .backend
        .engine(move |e| {
            e.remove(&id, force, volumes).map_err(|err| match err {
                hako_engine::Error::Running(_) => ApiError::conflict(format!(
                    "cannot remove container \"/{id}\": container is running: stop the container before removing or force remove"
                )),
                other => other.into(),
            })?;
            Ok(())
        })
        .await?;
    Ok(no_content(StatusCode::NO_CONTENT))
}

/// `POST /containers/prune`.
pub(super) async fn prune(req: Req) -> Result<Response<Body>, ApiError> {
    let filter = compat::prune_filters(&req.filters()?, &[])?;
    let gone = req
        .state
        .backend
        .engine(move |e| {
            if filter.is_empty() {
                return Ok(e.prune()?);
            }
            let mut gone = Vec::new();
            for c in e.list(true)? {
                if c.state == State::Running {
                    continue;
                }
                let labels = match e.stored_config(&c.id) {
                    Ok(o) => o.labels,
                    Err(hako_engine::Error::NoSuchContainer(_)) => continue,
                    Err(err) => return Err(err.into()),
                };
                if !filter.accepts_object(Some(c.created), &labels) {
                    continue;
                }
                // Started or removed since the list: not this prune's.
                match e.remove(&c.id, false, false) {
                    Ok(_) => gone.push(c.id),
                    Err(
                        hako_engine::Error::NoSuchContainer(_) | hako_engine::Error::Running(_),
                    ) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            Ok(gone)
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        &j!({"ContainersDeleted": if gone.is_empty() { Value::Null } else { j!(gone) }, "SpaceReclaimed": 0}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(signal_number("SIGHUP").unwrap(), libc::SIGHUP);
        assert_eq!(signal_number("term").unwrap(), libc::SIGTERM);
        assert_eq!(signal_number("9").unwrap(), 9);
        assert_eq!(signal_number("RTMIN+3").unwrap(), libc::SIGRTMIN() + 3);
        assert_eq!(
            signal_number("NOPE").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn log_lines_are_framed_and_filtered() {
        let r = LogRead {
            stdout: true,
            stderr: false,
            timestamps: false,
            tail: None,
            since: None,
            until: None,
            follow: false,
            tty: false,
            from: None,
            file: None,
        };
        let f = log_line(
            r#"{"log":"hi\n","stream":"stdout","time":"2026-01-01T00:00:00Z"}"#,
            &r,
        )
        .unwrap();
        assert_eq!(f, [&[1u8, 0, 0, 0, 0, 0, 0, 3][..], b"hi\n"].concat());
        assert!(log_line(
            r#"{"log":"e\n","stream":"stderr","time":"2026-01-01T00:00:00Z"}"#,
            &r
        )
        .is_none());
    }
}
