//! `docker wait` with Docker's conditions, woken by the events themselves rather than by
//! polling the database: the exit of the process that records the container's end (its
//! monitor, which execs `hako-finish` to record it, or the `hako run` in the foreground) through a
//! pidfd, and changes of its directory (an exit file, a start, its removal) through inotify.
//! A slow backstop re-reads the row in case neither fires (a process that records nothing and
//! leaves no trace in the directory, which no hako command does).

use crate::{alive, monitor, Engine, Error, Result};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// What [`Engine::wait_for`] waits for (Docker's `condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitCondition {
    /// Until it is not running (at once if it is not).
    #[default]
    NotRunning,
    /// Until the next exit of a run that starts after the call or runs at the time.
    NextExit,
    /// Until it is removed.
    Removed,
}

impl WaitCondition {
    /// Docker's names: `not-running` (also empty), `next-exit`, `removed`.
    pub fn parse(s: &str) -> Result<WaitCondition> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(Error::Invalid(format!(
                "invalid condition: \"{other}\" (not-running, next-exit or removed)"
            ))),
        }
    }
}

/// The part of a container's row that `wait` follows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) running: bool,
    exit_code: Option<i32>,
    started_at: Option<i64>,
    /// The process that records the container's end (pid, start time).
    pub(crate) owner: (Option<i32>, Option<i64>),
}

/// How long a wait sleeps when no event source is armed (no live owner to watch).
const BACKSTOP: Duration = Duration::from_secs(1);

impl Engine {
    pub(crate) fn wait_row(&self, id: &str) -> Result<Option<Row>> {
        use rusqlite::OptionalExtension;
        Ok(self
            .store
            .conn()
            .query_row(
                "SELECT state, exit_code, started_at, owner_pid, owner_start FROM containers \
                 WHERE id = ?1",
                [id],
                |r| {
                    Ok(Row {
                        running: r.get::<_, String>(0)? == "running",
                        exit_code: r.get(1)?,
                        started_at: r.get(2)?,
                        owner: (r.get(3)?, r.get(4)?),
                    })
                },
            )
            .optional()?)
    }

    /// Blocks until `condition` holds for the container `key`; returns its exit status.
    /// Any thread may call it.
    pub fn wait_for(&self, key: &str, condition: WaitCondition) -> Result<i32> {
        Ok(self
            .wait_for_or_cancel(key, condition, None)?
            .expect("no cancel descriptor"))
    }

    /// [`Engine::wait_for`] that also returns, with `None`, once `cancel` is readable or hung
    /// up (a server passes the read end of a pipe whose write end it drops when its client
    /// goes, so no thread stays behind waiting for a container nobody waits for).
    pub fn wait_for_or_cancel(
        &self,
        key: &str,
        condition: WaitCondition,
        cancel: Option<BorrowedFd<'_>>,
    ) -> Result<Option<i32>> {
        let id = self.find(key)?.id;
        let dir = self.container_dir(&id);
        let watch = Watch::new(&self.root.join("containers"), &dir);
        // `NextExit` waits for the end of a run: the one under way at the call, or one that
        // starts later (its start time differs from `base`, the last run's, even when it
        // started and ended between two reads).
        let mut base: Option<Option<i64>> = None;
        let mut running: Option<Option<i64>> = None;
        let mut last_code = None;
        loop {
            let Some(row) = self.wait_row(&id)? else {
                // Removed (by `--rm`, or `rm`): the exit status is the last one seen.
                return Ok(Some(
                    last_code
                        .or_else(|| monitor::read_exit_file(&dir))
                        .unwrap_or(0),
                ));
            };
            if row.running && !alive(row.owner.0, row.owner.1) {
                // Its recorder died: reconcile finishes it, then look again.
                self.reconcile()?;
                if self.wait_row(&id)?.as_ref() != Some(&row) {
                    continue;
                }
            }
            last_code = row.exit_code.or(last_code);
            let base = *base.get_or_insert(row.started_at);
            let exited_since = match running {
                Some(started) => !row.running || row.started_at != started,
                None => !row.running && row.started_at != base,
            };
            if row.running {
                running = Some(row.started_at);
            }
            let done = match condition {
                WaitCondition::NotRunning => !row.running,
                WaitCondition::NextExit => exited_since,
                WaitCondition::Removed => false,
            };
            if done {
                return Ok(Some(row.exit_code.unwrap_or(0)));
            }
            let owner = if row.running { row.owner } else { (None, None) };
            if wait_event(watch.as_ref(), owner, cancel) {
                return Ok(None);
            }
        }
    }
}

/// inotify on the containers directory (removals) and the container's own (exit files, starts).
struct Watch(OwnedFd);

impl Watch {
    fn new(containers: &std::path::Path, dir: &std::path::Path) -> Option<Watch> {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: inotify_init1 takes flags only; the fd it returns is owned here.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: fd was just returned by inotify_init1 and is owned by nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        for (path, mask) in [
            (
                containers,
                libc::IN_DELETE | libc::IN_MOVED_FROM | libc::IN_ONLYDIR,
            ),
            (
                dir,
                libc::IN_CREATE
                    | libc::IN_CLOSE_WRITE
                    | libc::IN_DELETE
                    | libc::IN_MOVED_TO
                    | libc::IN_DELETE_SELF,
            ),
        ] {
            let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
            // SAFETY: a valid inotify fd and a NUL-terminated path; a failure (the directory
            // is gone already) leaves that watch out, and the backstop covers it.
            unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) };
        }
        Some(Watch(fd))
    }

    /// Reads away what has arrived, so the next poll waits for new events.
    fn drain(&self) {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: reads into a buffer of its stated length from an fd owned here.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
        }
    }
}

/// A pidfd of the process `owner` (pid, start time), if it is still that process.
pub(crate) fn pidfd(owner: (Option<i32>, Option<i64>)) -> Option<OwnedFd> {
    let pid = owner.0?;
    // SAFETY: pidfd_open takes a pid and flags; the fd it returns is owned here.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
    if fd < 0 {
        return None;
    }
    // SAFETY: fd was just returned by pidfd_open and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // Checked after opening: the pid may have been reused before the open.
    alive(owner.0, owner.1).then_some(fd)
}

/// Sleeps until the owner exits, the directories change, `cancel` fires or the backstop
/// passes; true when `cancel` fired.
fn wait_event(
    watch: Option<&Watch>,
    owner: (Option<i32>, Option<i64>),
    cancel: Option<BorrowedFd<'_>>,
) -> bool {
    let pid = pidfd(owner);
    // The cancel descriptor first, so its slot is known.
    let mut fds: Vec<libc::pollfd> = cancel
        .map(|c| c.as_raw_fd())
        .into_iter()
        .chain(
            [watch.map(|w| &w.0), pid.as_ref()]
                .into_iter()
                .flatten()
                .map(|fd| fd.as_raw_fd()),
        )
        .map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the duration of the call.
    unsafe {
        libc::poll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            BACKSTOP.as_millis() as i32,
        )
    };
    if let Some(w) = watch {
        w.drain();
    }
    cancel.is_some() && fds[0].revents != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_as_dockers() {
        assert_eq!(WaitCondition::parse("").unwrap(), WaitCondition::NotRunning);
        assert_eq!(
            WaitCondition::parse("next-exit").unwrap(),
            WaitCondition::NextExit
        );
        assert_eq!(
            WaitCondition::parse("removed").unwrap(),
            WaitCondition::Removed
        );
        assert!(WaitCondition::parse("soon").is_err());
    }
}
