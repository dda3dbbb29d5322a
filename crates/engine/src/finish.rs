//! The last step of a detached container's monitor: once the container has exited and its
//! status is in the exit file, record it, free the cgroup and the lease, honour `--rm` and the
//! restart policy ([`Engine::finish_detached`]). The monitor execs `hako-finish`, a small
//! binary around [`finish_for_monitor`], under its own pid; the monitor itself links no engine
//! code, which keeps it small while its container runs.

use crate::{Engine, Result};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// Finishes container `id` of the state root `root`, whose init was `pid`. Nobody reads a
/// monitor's stderr, so a failure (a store that stayed locked under a burst of starts, say) is
/// retried, then recorded in ROOT/container-finish.log rather than lost: otherwise a restart
/// policy would silently not apply.
pub fn finish_for_monitor(root: &Path, id: &str, pid: Option<i32>) -> Result<()> {
    let mut last = None;
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(200 << attempt));
        }
        match Engine::open(root).and_then(|e| e.finish_detached(id, pid)) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    let e = last.expect("three attempts");
    let mut why = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        why.push_str(&format!(": {s}"));
        source = s.source();
    }
    let line = format!(
        "{} finish {id}: {why}\n",
        crate::rfc3339(crate::now_nanos())
    );
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join("container-finish.log"))
    {
        let _ = f.write_all(line.as_bytes());
    }
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A root that cannot be opened is retried, then logged with the container's id.
    #[test]
    fn a_failure_is_logged_in_the_root() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the database belongs: every open fails.
        std::fs::create_dir(dir.path().join("hako.db")).unwrap();
        let e = finish_for_monitor(dir.path(), "abc", Some(1));
        assert!(e.is_err());
        let log = std::fs::read_to_string(dir.path().join("container-finish.log")).unwrap();
        assert!(log.contains("finish abc: "), "{log}");
    }
}
