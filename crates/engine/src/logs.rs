//! `docker logs` and the output side of `docker attach`: a detached container's json-file log
//! (its monitor writes it), read back with Docker's `--tail`, `--since` and `--until`, and
//! followed. A follower sleeps until something happens: inotify on the container's directory
//! wakes it when the log grows, rotates or the exit file appears, and a pidfd of the process
//! that records the container's end wakes it when that is done. A slow backstop covers a
//! recorder that leaves no trace (none does).

use crate::{Engine, Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Which of the container's streams a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Its standard output (and everything of a `-t` container).
    Stdout,
    /// Its standard error.
    Stderr,
}

/// One line of a json-file log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The stream it was written to.
    pub stream: LogStream,
    /// When the monitor read it, as the log records it (RFC 3339, nanoseconds).
    pub time: String,
    /// The same time in nanoseconds since the epoch (0 when it does not parse).
    pub time_nanos: i64,
    /// The text, with its newline when it had one.
    pub text: String,
}

impl LogLine {
    /// One line of the log as Docker's json-file driver writes it
    /// (`{"log":"hi\n","stream":"stdout","time":"…"}`); `None` for anything else.
    pub fn parse(line: &str) -> Option<LogLine> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let time = v["time"].as_str().unwrap_or_default().to_string();
        Some(LogLine {
            stream: if v["stream"] == "stderr" {
                LogStream::Stderr
            } else {
                LogStream::Stdout
            },
            time_nanos: hako_base::time::parse_rfc3339(&time).unwrap_or(0),
            time,
            text: v["log"].as_str().unwrap_or_default().to_string(),
        })
    }
}

/// What [`Engine::logs`] reads (Docker's `logs` options; times in nanoseconds since the epoch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only the last this many lines (of those within `since`/`until`).
    pub tail: Option<usize>,
    /// Only lines written at or after this time.
    pub since: Option<i64>,
    /// Only lines written before this time; a follow ends when it passes.
    pub until: Option<i64>,
    /// Go on with what is written until the container stops.
    pub follow: bool,
}

impl LogOptions {
    fn within(&self, line: &LogLine) -> bool {
        self.since.is_none_or(|s| line.time_nanos >= s)
            && self.until.is_none_or(|u| line.time_nanos < u)
    }

    fn past_until(&self) -> bool {
        self.until
            .is_some_and(|u| hako_base::time::now_nanos() >= u)
    }
}

/// `--tail`'s value: `all` (or `-1`) for every line, else a count.
pub fn parse_tail(s: &str) -> Result<Option<usize>> {
    match s {
        "all" | "-1" | "" => Ok(None),
        n => n
            .parse()
            .map(Some)
            .map_err(|_| Error::Invalid(format!("invalid value for --tail: {n}"))),
    }
}

/// How long a follower sleeps at most when nothing wakes it.
const BACKSTOP: Duration = Duration::from_secs(1);

/// Where a [`LogFollower`] starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStart {
    /// The current end: only what is written from now on (`attach`).
    End,
    /// This byte offset of the current log file (`start -a`, which noted the end before the
    /// start).
    Offset(u64),
}

/// Follows a container's log as it is written, across rotations, until it stops.
pub struct LogFollower<'e> {
    engine: &'e Engine,
    id: String,
    path: PathBuf,
    file: Option<File>,
    pos: u64,
    notify: Option<OwnedFd>,
}

impl Engine {
    /// The container's log: the lines `opts` selects, oldest first, each handed to `sink`
    /// (rotated files first, as `docker logs` shows them); with `follow`, then what is written
    /// until the container stops (or `until` passes). A container that ran in the foreground
    /// has no log (its output went to its terminal): nothing, and no error. An error from
    /// `sink` (a reader that went away) ends it with that error.
    pub fn logs(
        &self,
        key: &str,
        opts: &LogOptions,
        sink: &mut dyn FnMut(&LogLine) -> std::io::Result<()>,
    ) -> Result<()> {
        self.logs_or_cancel(key, opts, None, sink)
    }

    /// [`Engine::logs`] whose follow also ends, without an error, once `cancel` is readable
    /// or hung up: a server passes the read end of a pipe whose write end it drops when its
    /// client goes, so no thread stays behind following a log nobody reads.
    pub fn logs_or_cancel(
        &self,
        key: &str,
        opts: &LogOptions,
        cancel: Option<BorrowedFd<'_>>,
        sink: &mut dyn FnMut(&LogLine) -> std::io::Result<()>,
    ) -> Result<()> {
        let (id, path) = self.log_file(key)?;
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(format!("read log {}", path.display()), e)),
        };
        // Watched before the log is read, so nothing written after the read is missed.
        let notify = opts
            .follow
            .then(|| watch(&self.container_dir(&id)))
            .flatten();
        let mut lines: Vec<LogLine> = Vec::new();
        for n in (1..100).rev() {
            if let Ok(text) = std::fs::read_to_string(format!("{}.{n}", path.display())) {
                lines.extend(
                    text.lines()
                        .filter_map(LogLine::parse)
                        .filter(|l| opts.within(l)),
                );
            }
        }
        let pos = read_lines(&mut file, 0, &mut |l| {
            if opts.within(l) {
                lines.push(l.clone());
            }
            Ok(())
        })?;
        let skip = opts.tail.map_or(0, |n| lines.len().saturating_sub(n));
        for l in &lines[skip..] {
            sink(l).map_err(|e| Error::io("write the log", e))?;
        }
        if !opts.follow || opts.past_until() {
            return Ok(());
        }
        let mut f = LogFollower {
            engine: self,
            id,
            path,
            file: Some(file),
            pos,
            notify,
        };
        let mut window = |l: &LogLine| if opts.within(l) { sink(l) } else { Ok(()) };
        loop {
            // Whether it runs is read before the log, so the last lines written before its
            // exit was recorded are read below.
            let running = f.running()?;
            f.read(&mut window)?;
            if !running || opts.past_until() {
                return Ok(());
            }
            let timeout = opts
                .until
                .map(|u| Duration::from_nanos((u - hako_base::time::now_nanos()).max(0) as u64));
            if f.wait_for(cancel, timeout)? {
                return Ok(());
            }
        }
    }

    /// A follower of the container's log from `from`, for `attach`. A container without a
    /// log file (run in the foreground) is an error: there is nothing to attach to.
    pub fn follow_log(&self, key: &str, from: LogStart) -> Result<LogFollower<'_>> {
        let (id, path) = self.log_file(key)?;
        let notify = watch(&self.container_dir(&id));
        let mut file =
            File::open(&path).map_err(|e| Error::io(format!("read log {}", path.display()), e))?;
        let pos = match from {
            LogStart::End => file
                .seek(SeekFrom::End(0))
                .map_err(|e| Error::io("read the log", e))?,
            LogStart::Offset(p) => p,
        };
        Ok(LogFollower {
            engine: self,
            id,
            path,
            file: Some(file),
            pos,
            notify,
        })
    }
}

impl LogFollower<'_> {
    /// The container's full id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Whether the container still runs: until its exit is recorded, which its monitor does
    /// once the last output is in the log.
    pub fn running(&self) -> Result<bool> {
        self.engine.is_running(&self.id)
    }

    /// Hands `sink` every complete line written since the last call. When the log was rotated
    /// meanwhile, the rest of the old file comes first, then the new one from its start.
    pub fn read(&mut self, sink: &mut dyn FnMut(&LogLine) -> std::io::Result<()>) -> Result<()> {
        loop {
            if let Some(file) = &mut self.file {
                self.pos = read_lines(file, self.pos, sink)?;
            }
            // Still the file at the log's path? A rotation renamed it and made a new one.
            let current = std::fs::metadata(&self.path).ok().map(|m| m.ino());
            let ours = self
                .file
                .as_ref()
                .and_then(|f| f.metadata().ok())
                .map(|m| m.ino());
            if current.is_none() || current == ours {
                return Ok(());
            }
            self.file = File::open(&self.path).ok();
            self.pos = 0;
        }
    }

    /// Sleeps until the log or the container may have changed, or `extra` (a caller's own
    /// descriptor, e.g. a signalfd) is readable; returns whether `extra` is.
    pub fn wait(&mut self, extra: Option<BorrowedFd<'_>>) -> Result<bool> {
        self.wait_for(extra, None)
    }

    fn wait_for(&mut self, extra: Option<BorrowedFd<'_>>, limit: Option<Duration>) -> Result<bool> {
        let owner = match self.engine.wait_row(&self.id)? {
            Some(row) if row.running => row.owner,
            _ => (None, None),
        };
        let pid = crate::wait::pidfd(owner);
        let mut fds: Vec<libc::pollfd> = [
            extra.map(|e| e.as_raw_fd()),
            self.notify.as_ref().map(|n| n.as_raw_fd()),
            pid.as_ref().map(|p| p.as_raw_fd()),
        ]
        .into_iter()
        .flatten()
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
        let timeout = limit.map_or(BACKSTOP, |l| l.min(BACKSTOP));
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the duration of the call.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout.as_millis() as i32,
            )
        };
        if let Some(n) = &self.notify {
            drain(n);
        }
        Ok(n > 0 && extra.is_some() && fds[0].revents != 0)
    }
}

/// Reads the complete lines of `file` from `pos` on; returns the offset after the last one (a
/// line still being written is left for the next read).
fn read_lines(
    file: &mut File,
    pos: u64,
    sink: &mut dyn FnMut(&LogLine) -> std::io::Result<()>,
) -> Result<u64> {
    let io = |e| Error::io("read the log", e);
    file.seek(SeekFrom::Start(pos)).map_err(io)?;
    let mut reader = BufReader::new(file.by_ref());
    let mut pos = pos;
    let mut buf = String::new();
    loop {
        buf.clear();
        if reader.read_line(&mut buf).map_err(io)? == 0 || !buf.ends_with('\n') {
            return Ok(pos);
        }
        pos += buf.len() as u64;
        if let Some(l) = LogLine::parse(&buf) {
            sink(&l).map_err(|e| Error::io("write the log", e))?;
        }
    }
}

/// inotify on a container's directory: its log growing (IN_MODIFY of a file in it), a
/// rotation (a new log), the monitor's exit file, the directory's removal.
fn watch(dir: &Path) -> Option<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: inotify_init1 takes flags only; the fd it returns is owned here.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd was just returned by inotify_init1 and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mask = libc::IN_MODIFY
        | libc::IN_CREATE
        | libc::IN_CLOSE_WRITE
        | libc::IN_MOVED_TO
        | libc::IN_DELETE_SELF;
    // SAFETY: a valid inotify fd and a NUL-terminated path.
    if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) } < 0 {
        return None;
    }
    Some(fd)
}

/// Reads away the events that have arrived, so the next poll waits for new ones.
fn drain(fd: &OwnedFd) {
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reads into a buffer of its stated length from an fd owned here.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::log_path;
    use std::io::Write;

    fn line(stream: &str, time: &str, text: &str) -> String {
        format!(
            "{}\n",
            serde_json::json!({"log": text, "stream": stream, "time": time})
        )
    }

    #[test]
    fn json_file_lines_parse() {
        let l =
            LogLine::parse(&line("stderr", "2026-01-02T03:04:05.000000006Z", "oops\n")).unwrap();
        assert_eq!(l.stream, LogStream::Stderr);
        assert_eq!(l.text, "oops\n");
        assert_eq!(l.time_nanos, 1_767_323_045_000_000_006);
        assert!(LogLine::parse("not json").is_none());
    }

    #[test]
    fn tail_values() {
        assert_eq!(parse_tail("all").unwrap(), None);
        assert_eq!(parse_tail("-1").unwrap(), None);
        assert_eq!(parse_tail("3").unwrap(), Some(3));
        let e = parse_tail("x").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Invalid);
        assert!(e.to_string().contains("--tail: x"), "{e}");
    }

    #[test]
    fn the_window_is_since_inclusive_until_exclusive() {
        let o = LogOptions {
            since: Some(10),
            until: Some(20),
            ..Default::default()
        };
        let at = |t| LogLine {
            stream: LogStream::Stdout,
            time: String::new(),
            time_nanos: t,
            text: String::new(),
        };
        assert!(!o.within(&at(9)));
        assert!(o.within(&at(10)));
        assert!(o.within(&at(19)));
        assert!(!o.within(&at(20)));
    }

    /// Only complete lines are read; a partial one waits for its newline, and the offset
    /// returned is where it starts.
    #[test]
    fn partial_lines_wait_for_their_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-json.log");
        let mut w = File::create(&p).unwrap();
        let a = line("stdout", "2026-01-02T03:04:05Z", "a\n");
        w.write_all(a.as_bytes()).unwrap();
        w.write_all(b"{\"log\":\"b").unwrap();
        let mut r = File::open(&p).unwrap();
        let mut got = Vec::new();
        let pos = read_lines(&mut r, 0, &mut |l| {
            got.push(l.text.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(got, ["a\n"]);
        assert_eq!(pos, a.len() as u64);
        w.write_all(b"\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-02T03:04:05Z\"}\n")
            .unwrap();
        read_lines(&mut r, pos, &mut |l| {
            got.push(l.text.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(got, ["a\n", "b\n"]);
    }

    /// The directory watch fires on an append to the log, which is what wakes a follower.
    #[test]
    fn an_append_wakes_the_watch() {
        let dir = tempfile::tempdir().unwrap();
        let p = log_path(dir.path(), "x");
        let mut w = File::create(&p).unwrap();
        let fd = watch(dir.path()).unwrap();
        drain(&fd);
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 0) }, 0);
        w.write_all(b"x").unwrap();
        // SAFETY: one valid pollfd.
        assert_eq!(unsafe { libc::poll(&mut pfd, 1, 1000) }, 1);
    }
}
