//! A container's processes and usage read from /proc, for containers without a cgroup: rootless
//! ones where the host cannot delegate cgroups (cgroup v1, or v2 without delegation). What a
//! cgroup would count is rebuilt from the processes themselves, so `top` and `stats` show the
//! container's real processes and usage rather than an empty list and zeros.

use std::collections::{HashMap, HashSet};

use procfs::process::Process;

/// Usage summed over a container's live processes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// CPU time in nanoseconds, including children already reaped by one of them (the
    /// kernel adds those to the parent's cutime/cstime), so it only grows while init lives.
    pub cpu_ns: u64,
    /// Proportional set size: shared pages split among the processes sharing them, so the sum
    /// counts each page once, as a cgroup's usage would.
    pub memory: u64,
    /// Bytes the processes caused to be read from and written to storage.
    pub read: u64,
    pub write: u64,
}

fn pid_ns(pid: i32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// The processes of the container whose init is `init`: every process in init's pid
/// namespace, or, when the container shares the caller's (`--pid host`), init and its
/// descendants. Sorted.
pub(crate) fn container_pids(init: i32) -> Vec<i32> {
    let Some(ns) = pid_ns(init) else {
        return Vec::new();
    };
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut out: Vec<i32>;
    if pid_ns(std::process::id() as i32).as_ref() == Some(&ns) {
        let mut parent: HashMap<i32, i32> = HashMap::new();
        for p in all.flatten() {
            if let Ok(s) = p.stat() {
                parent.insert(s.pid, s.ppid);
            }
        }
        let mut ours: HashSet<i32> = HashSet::from([init]);
        // Parents listed after their children (pid wrap-around) need more than one pass.
        loop {
            let before = ours.len();
            for (&pid, ppid) in &parent {
                if ours.contains(ppid) {
                    ours.insert(pid);
                }
            }
            if ours.len() == before {
                break;
            }
        }
        out = ours.into_iter().collect();
    } else {
        out = all
            .flatten()
            .filter(|p| pid_ns(p.pid).as_ref() == Some(&ns))
            .map(|p| p.pid)
            .collect();
    }
    out.sort_unstable();
    out
}

/// Usage of `pids`; a process that ends while it is read is skipped.
pub(crate) fn usage(pids: &[i32]) -> Usage {
    let mut u = Usage::default();
    for &pid in pids {
        let Ok(p) = Process::new(pid) else { continue };
        if let Ok(s) = p.stat() {
            let ticks = s.utime + s.stime + s.cutime.max(0) as u64 + s.cstime.max(0) as u64;
            u.cpu_ns += ticks_to_ns(ticks);
        }
        if let Ok(r) = p.smaps_rollup() {
            let pss: u64 = r
                .memory_map_rollup
                .iter()
                .filter_map(|m| m.extension.map.get("Pss").copied())
                .sum();
            u.memory += pss;
        }
        if let Ok(io) = p.io() {
            u.read += io.read_bytes;
            u.write += io.write_bytes;
        }
    }
    u
}

fn ticks_to_ns(ticks: u64) -> u64 {
    let per_second = procfs::ticks_per_second().max(1);
    ticks.saturating_mul(1_000_000_000) / per_second
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn descendants_when_the_pid_namespace_is_shared() {
        // A shell whose child sleeps: both are listed, nothing else is.
        let mut sh = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let pid = sh.id() as i32;
        let ok = (0..200).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            container_pids(pid).len() == 2
        });
        let pids = container_pids(pid);
        let _ = Command::new("pkill")
            .args(["-P", &pid.to_string()])
            .status();
        let _ = sh.kill();
        let _ = sh.wait();
        assert!(ok, "{pids:?}");
        assert_eq!(pids[0], pid.min(pids[1]));
        assert!(!pids.contains(&(std::process::id() as i32)));
    }

    #[test]
    fn usage_counts_cpu_memory_and_io_of_live_processes() {
        let me = std::process::id() as i32;
        // Some CPU time of our own, so the count cannot be zero.
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let u = usage(&[me, i32::MAX]);
        assert!(u.cpu_ns >= 10_000_000, "{u:?}");
        assert!(u.memory > 1 << 20, "{u:?}");
        assert_eq!(usage(&[]), Usage::default());
    }
}
