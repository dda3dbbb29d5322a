//! Detailed usage counters, as `runc events` reports them.
//!
//! [`Cgroup::stats`](crate::Cgroup::stats) is the cheap three-number summary `hako stats`
//! needs; this reads every counter the cpu, cpuacct, memory and pids controllers keep, from
//! whichever hierarchy provides each one. A file that does not exist (a controller or a kernel
//! option missing) reads as zero.

use std::io;
use std::path::Path;

use crate::parse::{CPU, CPUACCT, MEMORY, PIDS};
use crate::{Cgroup, Error};

/// CPU time and CFS throttling.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct CpuStats {
    /// Total CPU time, in nanoseconds.
    pub total_ns: u64,
    /// CPU time per CPU, in nanoseconds (v1 only; empty on v2).
    pub percpu_ns: Vec<u64>,
    /// Time in user mode, in nanoseconds.
    pub user_ns: u64,
    /// Time in kernel mode, in nanoseconds.
    pub kernel_ns: u64,
    /// CFS enforcement periods that elapsed.
    pub periods: u64,
    /// Periods in which the cgroup was throttled.
    pub throttled_periods: u64,
    /// Total time throttled, in nanoseconds.
    pub throttled_time_ns: u64,
}

/// One memory counter with its limit.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct MemoryEntry {
    /// Bytes in use.
    pub usage: u64,
    /// Highest usage seen, in bytes (0 where the kernel does not track it).
    pub max: u64,
    /// Limit in bytes; `u64::MAX` when unlimited on v2.
    pub limit: u64,
    /// Times the limit was hit.
    pub failcnt: u64,
}

/// Memory counters.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct MemoryStats {
    /// Memory (v1: without swap).
    pub usage: MemoryEntry,
    /// v1: memory plus swap (`memsw`); v2: swap alone.
    pub swap: MemoryEntry,
    /// Kernel memory (v1 only).
    pub kernel: MemoryEntry,
    /// Kernel TCP buffer memory (v1 only).
    pub kernel_tcp: MemoryEntry,
    /// Page cache in bytes.
    pub cache: u64,
    /// Every `memory.stat` line.
    pub raw: Vec<(String, u64)>,
    /// Processes killed by the OOM killer in this cgroup (0 where the kernel does not count).
    pub oom_kills: u64,
}

/// Task counters.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct PidsStats {
    /// Tasks now.
    pub current: u64,
    /// Task limit; 0 when unlimited.
    pub limit: u64,
}

/// Everything [`Cgroup::resource_stats`] reads.
#[derive(Default, Clone, Debug, PartialEq, Eq)]
pub struct ResourceStats {
    /// cpu and cpuacct.
    pub cpu: CpuStats,
    /// memory.
    pub memory: MemoryStats,
    /// pids.
    pub pids: PidsStats,
}

/// A file's contents; `None` when it does not exist.
fn read_opt(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::Read {
            path: path.to_path_buf(),
            error: source,
        }),
    }
}

/// A single-number file: missing or unparsable is 0, "max" is `max`.
fn num(dir: &Path, file: &str, max: u64) -> Result<u64, Error> {
    Ok(match read_opt(&dir.join(file))? {
        Some(s) if s.trim() == "max" => max,
        Some(s) => s.trim().parse().unwrap_or(0),
        None => 0,
    })
}

/// A flat-keyed file (`key value` per line), e.g. cpu.stat or memory.stat.
fn keyed(dir: &Path, file: &str) -> Result<Vec<(String, u64)>, Error> {
    let Some(s) = read_opt(&dir.join(file))? else {
        return Ok(Vec::new());
    };
    Ok(parse_keyed(&s))
}

pub(crate) fn parse_keyed(s: &str) -> Vec<(String, u64)> {
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_owned(), v.trim().parse().ok()?))
        })
        .collect()
}

fn get(kv: &[(String, u64)], key: &str) -> u64 {
    kv.iter().find(|(k, _)| k == key).map_or(0, |(_, v)| *v)
}

/// Clock ticks per second, the unit of v1 `cpuacct.stat`.
fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a constant of the C library.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).ok().filter(|t| *t > 0).unwrap_or(100)
}

impl Cgroup {
    /// Reads every counter of the cpu, cpuacct, memory and pids controllers.
    pub fn resource_stats(&self) -> Result<ResourceStats, Error> {
        let mut out = ResourceStats::default();
        if let Ok((dir, v2)) = self.controller_dir(CPUACCT, "cpuacct") {
            if v2 {
                let kv = keyed(dir, "cpu.stat")?;
                let c = &mut out.cpu;
                c.total_ns = get(&kv, "usage_usec").saturating_mul(1000);
                c.user_ns = get(&kv, "user_usec").saturating_mul(1000);
                c.kernel_ns = get(&kv, "system_usec").saturating_mul(1000);
                c.periods = get(&kv, "nr_periods");
                c.throttled_periods = get(&kv, "nr_throttled");
                c.throttled_time_ns = get(&kv, "throttled_usec").saturating_mul(1000);
            } else {
                let c = &mut out.cpu;
                c.total_ns = num(dir, "cpuacct.usage", 0)?;
                c.percpu_ns = read_opt(&dir.join("cpuacct.usage_percpu"))?
                    .map(|s| {
                        s.split_whitespace()
                            .filter_map(|v| v.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                let kv = keyed(dir, "cpuacct.stat")?;
                let ns_per_tick = 1_000_000_000 / clock_ticks();
                c.user_ns = get(&kv, "user").saturating_mul(ns_per_tick);
                c.kernel_ns = get(&kv, "system").saturating_mul(ns_per_tick);
            }
        }
        if let Ok((dir, false)) = self.controller_dir(CPU, "cpu") {
            let kv = keyed(dir, "cpu.stat")?;
            let c = &mut out.cpu;
            c.periods = get(&kv, "nr_periods");
            c.throttled_periods = get(&kv, "nr_throttled");
            c.throttled_time_ns = get(&kv, "throttled_time");
        }
        if let Ok((dir, v2)) = self.controller_dir(MEMORY, "memory") {
            let m = &mut out.memory;
            m.raw = keyed(dir, "memory.stat")?;
            if v2 {
                let events = keyed(dir, "memory.events")?;
                m.usage = MemoryEntry {
                    usage: num(dir, "memory.current", 0)?,
                    max: num(dir, "memory.peak", 0)?,
                    limit: num(dir, "memory.max", u64::MAX)?,
                    failcnt: get(&events, "max"),
                };
                m.swap = MemoryEntry {
                    usage: num(dir, "memory.swap.current", 0)?,
                    max: num(dir, "memory.swap.peak", 0)?,
                    limit: num(dir, "memory.swap.max", u64::MAX)?,
                    failcnt: 0,
                };
                m.cache = get(&m.raw, "file");
                m.oom_kills = get(&events, "oom_kill");
            } else {
                let entry = |prefix: &str| -> Result<MemoryEntry, Error> {
                    Ok(MemoryEntry {
                        usage: num(dir, &format!("{prefix}usage_in_bytes"), 0)?,
                        max: num(dir, &format!("{prefix}max_usage_in_bytes"), 0)?,
                        limit: num(dir, &format!("{prefix}limit_in_bytes"), 0)?,
                        failcnt: num(dir, &format!("{prefix}failcnt"), 0)?,
                    })
                };
                m.usage = entry("memory.")?;
                m.swap = entry("memory.memsw.")?;
                m.kernel = entry("memory.kmem.")?;
                m.kernel_tcp = entry("memory.kmem.tcp.")?;
                m.cache = get(&m.raw, "cache");
                // oom_kill appeared in memory.oom_control with Linux 4.13.
                m.oom_kills = get(&keyed(dir, "memory.oom_control")?, "oom_kill");
            }
        }
        if let Ok((dir, _)) = self.controller_dir(PIDS, "pids") {
            out.pids = PidsStats {
                current: num(dir, "pids.current", 0)?,
                limit: num(dir, "pids.max", 0)?,
            };
        }
        Ok(out)
    }
}
