//! Waking a follower on the change itself: `logs -f`, `events`, attach and `wait` sleep until
//! a file they depend on changes (inotify), not on a timer.
//!
//! What they follow is written by other processes: the state database by whichever `hako`
//! process acted (its WAL grows with every commit, a change in the root directory), a log by
//! the container's monitor, an attach socket by a starting monitor. A slow backstop re-checks
//! in case a change comes by a path no watch covers (the watch limit reached, a directory
//! made after the watch was placed).

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use std::path::Path;
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// How long a follower sleeps when no change arrives.
pub(crate) const BACKSTOP: Duration = Duration::from_secs(1);

/// Changes in a few directories.
pub(crate) struct Changes {
    fd: Option<AsyncFd<Ino>>,
    /// The watches that wake only for some names in their directory.
    only: Vec<(WatchDescriptor, &'static [&'static str])>,
}

/// tokio registers a descriptor by its number.
struct Ino(Inotify);

impl std::os::fd::AsRawFd for Ino {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsFd::as_fd(&self.0).as_raw_fd()
    }
}

/// The files of the root whose changes are the state's: the database and its WAL. Not its
/// shared-memory index, which a reader's open rebuilds, nor the store's lock file: a
/// follower's own reads would wake it.
const DATABASE: &[&str] = &["hako.db", "hako.db-wal"];

impl Changes {
    /// Watches entries made, written, renamed or removed in each of `dirs` (in the ones
    /// paired with names, only those). Placed before the follower's first read, so nothing
    /// between that read and its first sleep is missed. A directory that cannot be watched is
    /// left to the backstop.
    fn watch(dirs: &[(&Path, Option<&'static [&'static str]>)]) -> Changes {
        let Ok(ino) = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) else {
            return Changes {
                fd: None,
                only: Vec::new(),
            };
        };
        let mask = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_ONLYDIR;
        let mut only = Vec::new();
        for (d, names) in dirs {
            if let (Ok(wd), Some(names)) = (ino.add_watch(*d, mask), names) {
                only.push((wd, *names));
            }
        }
        // SAFETY: `Ino` owns the inotify descriptor, which stays open and the same until the
        // AsyncFd (its only owner) is dropped; as_raw_fd always returns it.
        let fd =
            unsafe { AsyncFd::register_with_interest(Ino(ino), tokio::io::Interest::READABLE) }
                .ok();
        Changes { fd, only }
    }

    /// Everything in `dirs`.
    pub(crate) fn new(dirs: &[&Path]) -> Changes {
        let v: Vec<_> = dirs.iter().map(|d| (*d, None)).collect();
        Changes::watch(&v)
    }

    /// The state root's database (every commit grows its WAL), and everything in `dirs`.
    pub(crate) fn state(root: &Path, dirs: &[&Path]) -> Changes {
        let mut v = vec![(root, Some(DATABASE))];
        v.extend(dirs.iter().map(|d| (*d, None)));
        Changes::watch(&v)
    }

    /// The state root's database.
    pub(crate) fn root(root: &Path) -> Changes {
        Changes::state(root, &[])
    }

    /// Returns after the next change that matters (or the backstop). What arrived meanwhile
    /// is read away, so one burst of writes is one wake.
    pub(crate) async fn next(&self) {
        let Some(fd) = &self.fd else {
            return tokio::time::sleep(BACKSTOP).await;
        };
        let backstop = tokio::time::sleep(BACKSTOP);
        tokio::pin!(backstop);
        loop {
            tokio::select! {
                g = fd.readable() => {
                    let Ok(mut g) = g else { return };
                    let mut woke = false;
                    while let Ok(events) = fd.get_ref().0.read_events() {
                        woke |= events.iter().any(|e| self.matters(e));
                    }
                    g.clear_ready();
                    if woke {
                        return;
                    }
                }
                _ = &mut backstop => return,
            }
        }
    }

    fn matters(&self, e: &InotifyEvent) -> bool {
        match self.only.iter().find(|(wd, _)| *wd == e.wd) {
            None => true,
            Some((_, names)) => e
                .name
                .as_ref()
                .and_then(|n| n.to_str())
                .is_some_and(|n| names.contains(&n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_write_wakes_before_the_backstop() {
        let dir = tempfile::tempdir().unwrap();
        let c = Changes::new(&[dir.path()]);
        let p = dir.path().join("f");
        let t = std::time::Instant::now();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::fs::write(p, "x").unwrap();
        });
        c.next().await;
        writer.await.unwrap();
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(40), "{took:?}");
        assert!(took < BACKSTOP / 2, "woke by the backstop: {took:?}");
        // Read away: a quiet directory sleeps to the backstop.
        let t = std::time::Instant::now();
        c.next().await;
        assert!(t.elapsed() >= BACKSTOP - Duration::from_millis(50));
    }

    #[tokio::test]
    async fn the_root_wakes_for_the_database_only() {
        let dir = tempfile::tempdir().unwrap();
        let c = Changes::root(dir.path());
        let p = dir.path().to_path_buf();
        let t = std::time::Instant::now();
        let writer = tokio::spawn(async move {
            // A reader's open writes the index and closes the lock file: no wake.
            std::fs::write(p.join("hako.db-shm"), "x").unwrap();
            std::fs::write(p.join("store.lock"), "").unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            std::fs::write(p.join("hako.db-wal"), "x").unwrap();
        });
        c.next().await;
        writer.await.unwrap();
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(90), "{took:?}");
        assert!(took < BACKSTOP / 2, "woke by the backstop: {took:?}");
    }
}
