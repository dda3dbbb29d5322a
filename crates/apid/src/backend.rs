//! The service's one seam to the engine.
//!
//! Two ways in. [`Backend::engine`] runs a closure with a freshly opened engine on tokio's
//! blocking pool: reads, and changes that only touch the database, files and cgroups. Work
//! that forks or enters namespaces (a container's start, exec, cp and export in a private
//! mount namespace, build steps, connecting a running container to a network) must not run
//! in this multi-threaded process: [`Backend::helper`] runs it in `hako api-helper …`, spawned
//! with `Command` (posix_spawn or fork+exec, both safe here), whose single-threaded process
//! calls the same engine (see [`crate::helper`]). Swapping either path for the engine's own
//! process-spawning API happens here only.

use crate::error::ApiError;
use hako_engine::Engine;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use tokio::io::AsyncReadExt;

/// The engine as the handlers reach it.
pub struct Backend {
    root: PathBuf,
    hako: PathBuf,
    /// Helpers and background work under way: the idle timer waits for them.
    busy: AtomicUsize,
    /// Attaches waiting for their container's start, per container id: that start makes the
    /// monitor wait for the attach before it reads a terminal or stdin.
    pub(crate) waiting_attach: Mutex<HashMap<String, usize>>,
    /// Exec instances by id (an exec is created, then started, then inspected).
    pub(crate) execs: Mutex<HashMap<String, std::sync::Arc<crate::api::ExecEntry>>>,
    /// The terminal size changes for the attach under way to each container.
    pub(crate) resizers: Mutex<HashMap<String, tokio::sync::mpsc::Sender<(u16, u16)>>>,
}

/// Counts work under way while alive.
pub(crate) struct Busy<'a>(&'a AtomicUsize);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Backend {
    pub(crate) fn new(root: PathBuf, hako: PathBuf) -> Backend {
        Backend {
            root,
            hako,
            busy: AtomicUsize::new(0),
            waiting_attach: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            resizers: Mutex::new(HashMap::new()),
        }
    }

    /// The state root.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Whether helpers or streams are at work (the idle timer does not end those).
    pub(crate) fn busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst) > 0
    }

    /// The ids of the exec instances made for container `id` (full id).
    pub(crate) fn exec_ids_of(&self, id: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .execs
            .lock()
            .expect("exec lock")
            .values()
            .filter(|e| e.container == id)
            .map(|e| e.id.clone())
            .collect();
        ids.sort();
        ids
    }

    pub(crate) fn mark_busy(&self) -> Busy<'_> {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(&self.busy)
    }

    /// Runs `f` with the engine, on the blocking pool.
    ///
    /// Each blocking thread keeps the engine it opened (see [`with_engine`]): opening one
    /// (directories, the recovery sweep of the store's temporary files, the database and its
    /// settings) cost more than most requests' own work. Holding it loses no freshness: the
    /// engine keeps no state of its own between calls, and each of its statements reads the
    /// database as of that statement (WAL), so a `hako` command's change is seen by the next
    /// request as it is by the next command.
    pub async fn engine<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: FnOnce(&Engine) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || with_engine(&root, f))
            .await
            .map_err(|e| ApiError::internal(format!("engine task failed: {e}")))?
    }

    /// A `hako api-helper ARGS` process whose fd 3 is the write end of the returned status
    /// pipe; stdin, stdout and stderr are the caller's to set.
    pub(crate) fn helper_command(
        &self,
        args: &[String],
    ) -> Result<(tokio::process::Command, StatusPipe), ApiError> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| ApiError::internal(format!("create a pipe: {e}")))?;
        let mut c = tokio::process::Command::new(&self.hako);
        c.arg("--root")
            .arg(&self.root)
            .arg("api-helper")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let raw = std::os::fd::AsRawFd::as_raw_fd(&w);
        // SAFETY: dup2 is async-signal-safe; it runs in the child between fork and exec and
        // touches only the descriptor table. The copy on 3 is not close-on-exec.
        unsafe {
            c.pre_exec(move || {
                let r = if raw == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0)
                } else {
                    libc::dup2(raw, 3)
                };
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok((
            c,
            StatusPipe {
                read: r,
                write: Some(w),
            },
        ))
    }

    /// Runs a helper to the end with `input` on its stdin; its result from its status pipe.
    ///
    /// The helper's stdout is not read: what it starts (a monitor, a network's name server)
    /// may outlive it and inherit its descriptors, so nothing here waits for their end.
    pub(crate) async fn helper(
        &self,
        args: &[String],
        input: Option<Vec<u8>>,
    ) -> Result<serde_json::Value, ApiError> {
        let _busy = self.mark_busy();
        let (mut cmd, mut status) = self.helper_command(args)?;
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| ApiError::internal(format!("start {}: {e}", self.hako.display())))?;
        status.spawned();
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            use tokio::io::AsyncWriteExt;
            // A helper that fails early stops reading; its status says why.
            let _ = stdin.write_all(&input).await;
        }
        let result = status.result().await;
        let _ = child.wait().await;
        result
    }
}

impl Backend {
    /// `hako --root ROOT ARGS…`: a `hako` command run for a request, with stdio null until the
    /// caller sets it. Spawned with `Command`, which is safe in this multi-threaded process;
    /// the command itself is single-threaded and may fork, enter namespaces and mount.
    pub(crate) fn cli_command(&self, args: &[String]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.hako);
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Runs a `hako` command to its end with `input` on its stdin; its stdout, or its error
    /// as the API answers it (see [`cli_error`]).
    pub(crate) async fn cli(
        &self,
        args: &[String],
        input: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, ApiError> {
        let _busy = self.mark_busy();
        let mut cmd = self.cli_command(args);
        cmd.stdout(Stdio::piped());
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| ApiError::internal(format!("start {}: {e}", self.hako.display())))?;
        let writer = match (input, child.stdin.take()) {
            (Some(input), Some(mut stdin)) => Some(tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                // A command that fails early stops reading; its stderr says why.
                let _ = stdin.write_all(&input).await;
            })),
            _ => None,
        };
        // Read while it runs (a full pipe would stop it), but do not wait for the end of
        // file: a daemon it starts (a network's name server) may hold the pipes for good.
        let collect = |r: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| {
            let buf = std::sync::Arc::new(Mutex::new(Vec::new()));
            let b = buf.clone();
            let task = tokio::spawn(async move {
                let Some(mut r) = r else { return };
                let mut chunk = vec![0u8; 16 * 1024];
                while let Ok(n) = r.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    b.lock()
                        .expect("output lock")
                        .extend_from_slice(&chunk[..n]);
                }
            });
            (buf, task)
        };
        let (out_buf, out_task) = collect(child.stdout.take().map(|s| Box::new(s) as _));
        let (err_buf, err_task) = collect(child.stderr.take().map(|s| Box::new(s) as _));
        let status = child
            .wait()
            .await
            .map_err(|e| ApiError::internal(format!("wait for hako: {e}")))?;
        for t in [out_task, err_task] {
            let _ = tokio::time::timeout(std::time::Duration::from_millis(200), t).await;
        }
        if let Some(w) = writer {
            w.abort();
        }
        let out = std::process::Output {
            status,
            stdout: std::mem::take(&mut *out_buf.lock().expect("output lock")),
            stderr: std::mem::take(&mut *err_buf.lock().expect("output lock")),
        };
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(cli_error(&out.stderr))
        }
    }
}

thread_local! {
    /// This thread's open engine and its root (see [`Backend::engine`]). The blocking pool
    /// ends a thread idle for a few seconds, and its engine closes with it.
    static ENGINE: std::cell::RefCell<Option<(PathBuf, Engine)>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with this thread's engine for `root`, opening it the first time. An engine whose
/// work must be made durable now (an image or volume removal), or whose write-ahead log has
/// grown past its bound, is closed after the call, as a `hako` command's is when it exits:
/// closing is what checkpoints.
pub(crate) fn with_engine<T>(
    root: &std::path::Path,
    f: impl FnOnce(&Engine) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    ENGINE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().is_none_or(|(r, _)| r != root) {
            *slot = None;
            *slot = Some((root.to_path_buf(), Engine::open(root)?));
        }
        let (_, engine) = slot.as_ref().expect("opened above");
        let r = f(engine);
        if engine.wants_close() {
            *slot = None;
        }
        r
    })
}

/// A failed `hako` command's error: its last `hako: …` line, with the status its words mean
/// (the command's kind of failure is in its message, as Docker's CLI shows it).
pub(crate) fn cli_error(stderr: &[u8]) -> ApiError {
    let text = String::from_utf8_lossy(stderr);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("the hako command failed without a message");
    let message = line.strip_prefix("hako: ").unwrap_or(line).to_string();
    let lower = message.to_ascii_lowercase();
    let status = if lower.contains("no such") || lower.contains("not found") {
        hyper::StatusCode::NOT_FOUND
    } else if lower.contains("already exists")
        || lower.contains("is in use")
        || lower.contains("conflict")
        || lower.contains("is not running")
        || lower.contains("has active endpoints")
    {
        hyper::StatusCode::CONFLICT
    } else if lower.contains("invalid") || lower.contains("unknown") {
        hyper::StatusCode::BAD_REQUEST
    } else {
        hyper::StatusCode::INTERNAL_SERVER_ERROR
    };
    ApiError::new(status, message)
}

/// The read end of a helper's status pipe (its fd 3).
pub(crate) struct StatusPipe {
    read: std::os::fd::OwnedFd,
    write: Option<std::os::fd::OwnedFd>,
}

impl StatusPipe {
    /// Closes our copy of the write end, once the child has its own: the read end then sees
    /// the end of file when the helper exits.
    pub(crate) fn spawned(&mut self) {
        self.write = None;
    }

    /// The helper's result: `Ok(value)` from `{"ok": value}`, or its error. A helper that died
    /// without a word is an internal error.
    pub(crate) async fn result(self) -> Result<serde_json::Value, ApiError> {
        let file = std::fs::File::from(self.read);
        let f = tokio::fs::File::from_std(file);
        let mut line = Vec::new();
        // One line, written as the helper ends; not the end of file, which waits for every
        // process that inherited the pipe.
        let _ = tokio::io::AsyncBufReadExt::read_until(
            &mut tokio::io::BufReader::new(f),
            b'\n',
            &mut line,
        )
        .await;
        parse_status(&line)
    }
}

/// The last line a helper wrote on its status pipe.
pub(crate) fn parse_status(buf: &[u8]) -> Result<serde_json::Value, ApiError> {
    let text = String::from_utf8_lossy(buf);
    let Some(line) = text.lines().rev().find(|l| !l.trim().is_empty()) else {
        return Err(ApiError::internal(
            "the hako helper process ended without reporting a result",
        ));
    };
    let v: serde_json::Value = serde_json::from_str(line)
        .map_err(|_| ApiError::internal(format!("the hako helper reported: {line}")))?;
    if let Some(ok) = v.get("ok") {
        return Ok(ok.clone());
    }
    let status = v
        .get("status")
        .and_then(|s| s.as_u64())
        .and_then(|s| hyper::StatusCode::from_u16(s as u16).ok())
        .unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let message = v
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("the hako helper failed")
        .to_string();
    Err(ApiError::new(status, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread's engine stays open across calls, and sees what other processes' engines
    /// commit meanwhile (no stale answers); one whose work must be made durable is closed.
    #[test]
    fn a_kept_engine_sees_other_writers_and_closes_when_durable() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let addr = |e: &Engine| e as *const Engine as usize;
        let first = with_engine(root, |e| Ok(addr(e))).unwrap();
        assert_eq!(with_engine(root, |e| Ok(addr(e))).unwrap(), first);
        // Another connection (a `hako volume create`) commits; the kept engine reads it.
        Engine::open(root)
            .unwrap()
            .volume_create(Some("v1"), &[])
            .unwrap();
        let names = with_engine(root, |e| {
            Ok(e.volume_list()?
                .into_iter()
                .map(|v| v.name)
                .collect::<Vec<_>>())
        })
        .unwrap();
        assert_eq!(names, ["v1"]);
        // A removal marks the engine's work for a checkpoint: it is closed after the call,
        // and the next call opens a new one.
        with_engine(root, |e| {
            e.volume_remove("v1")?;
            assert!(e.wants_close());
            Ok(())
        })
        .unwrap();
        let reopened = with_engine(root, |e| Ok(e.wants_close())).unwrap();
        assert!(!reopened);
    }

    #[test]
    fn helper_status_lines() {
        assert_eq!(parse_status(b"{\"ok\":5}\n").unwrap(), serde_json::json!(5));
        let e =
            parse_status(b"{\"status\":404,\"message\":\"No such container: x\"}\n").unwrap_err();
        assert_eq!(e.status, hyper::StatusCode::NOT_FOUND);
        assert_eq!(e.message, "No such container: x");
        assert_eq!(
            parse_status(b"").unwrap_err().status,
            hyper::StatusCode::INTERNAL_SERVER_ERROR
        );
        assert!(parse_status(b"garbage")
            .unwrap_err()
            .message
            .contains("garbage"));
    }

    #[test]
    fn cli_errors_keep_their_kind() {
        let e = cli_error(b"warning\nhako: No such container: abc\n");
        assert_eq!(e.status, hyper::StatusCode::NOT_FOUND);
        assert_eq!(e.message, "No such container: abc");
        let e = cli_error(b"hako: network with name n1 already exists\n");
        assert_eq!(e.status, hyper::StatusCode::CONFLICT);
        assert_eq!(
            cli_error(b"").status,
            hyper::StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
