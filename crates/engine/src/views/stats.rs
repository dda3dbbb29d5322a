//! `docker stats`: usage rates between two samples of each container's counters (CPU is a
//! rate, so the first row already needs two samples, as Docker's does).

use crate::{ContainerStats, Engine, Result};
use std::time::{Duration, Instant};

/// One container's usage over the last interval.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsRow {
    /// The sample this row ends with (cumulative counters, memory now).
    pub sample: ContainerStats,
    /// CPU use over the interval, in percent of one CPU (200 = two CPUs busy).
    pub cpu_percent: f64,
    /// The memory limit the percentage is of: the container's, else the host's memory.
    pub memory_limit: u64,
    /// Memory in use, in percent of `memory_limit`.
    pub memory_percent: f64,
}

impl StatsRow {
    /// The row for `now`, from `prev` taken `elapsed` before; `host_memory` is the limit of a
    /// container without its own.
    pub fn between(
        prev: &ContainerStats,
        now: &ContainerStats,
        elapsed: Duration,
        host_memory: u64,
    ) -> StatsRow {
        let dt = elapsed.as_nanos() as f64;
        let cpu_percent = match (now.cpu_ns, prev.cpu_ns) {
            (Some(a), Some(b)) if dt > 0.0 => a.saturating_sub(b) as f64 / dt * 100.0,
            _ => 0.0,
        };
        let memory_limit = now.memory_limit.unwrap_or(host_memory);
        let memory_percent = if memory_limit > 0 {
            now.memory.unwrap_or(0) as f64 / memory_limit as f64 * 100.0
        } else {
            0.0
        };
        StatsRow {
            sample: now.clone(),
            cpu_percent,
            memory_limit,
            memory_percent,
        }
    }
}

/// Samples a fixed set of containers, one interval apart.
pub struct StatsSampler<'e> {
    engine: &'e Engine,
    keys: Vec<String>,
    prev: Vec<ContainerStats>,
    at: Instant,
    host_memory: u64,
}

impl Engine {
    /// A sampler of the containers `keys` (empty: those running, or every one with `all`),
    /// with its first sample taken.
    pub fn stats_sampler(&self, keys: &[String], all: bool) -> Result<StatsSampler<'_>> {
        let keys: Vec<String> = if keys.is_empty() {
            self.list(all)?.into_iter().map(|c| c.id).collect()
        } else {
            keys.to_vec()
        };
        let prev = keys.iter().map(|k| self.stats(k)).collect::<Result<_>>()?;
        Ok(StatsSampler {
            engine: self,
            keys,
            prev,
            at: Instant::now(),
            host_memory: hako_base::proc::mem_total(),
        })
    }
}

impl StatsSampler<'_> {
    /// Sleeps `interval`, samples again, and returns each container's row over that time.
    pub fn next(&mut self, interval: Duration) -> Result<Vec<StatsRow>> {
        std::thread::sleep(interval);
        let now: Vec<ContainerStats> = self
            .keys
            .iter()
            .map(|k| self.engine.stats(k))
            .collect::<Result<_>>()?;
        let elapsed = self.at.elapsed();
        self.at = Instant::now();
        let rows = now
            .iter()
            .zip(&self.prev)
            .map(|(n, p)| StatsRow::between(p, n, elapsed, self.host_memory))
            .collect();
        self.prev = now;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(cpu: u64, mem: u64, limit: Option<u64>) -> ContainerStats {
        ContainerStats {
            id: "a".repeat(64),
            name: "n".into(),
            cpu_ns: Some(cpu),
            memory: Some(mem),
            memory_limit: limit,
            pids: Some(1),
            net_rx: 0,
            net_tx: 0,
            block_read: 0,
            block_write: 0,
        }
    }

    #[test]
    fn cpu_is_a_rate_and_memory_a_share_of_the_limit() {
        let r = StatsRow::between(
            &sample(1_000_000_000, 0, None),
            &sample(1_500_000_000, 50, Some(200)),
            Duration::from_secs(1),
            1000,
        );
        assert!((r.cpu_percent - 50.0).abs() < 1e-9);
        assert_eq!(r.memory_limit, 200);
        assert!((r.memory_percent - 25.0).abs() < 1e-9);
        // Without a limit of its own, the host's memory.
        let r = StatsRow::between(
            &sample(0, 0, None),
            &sample(0, 100, None),
            Duration::ZERO,
            1000,
        );
        assert_eq!(r.cpu_percent, 0.0);
        assert_eq!(r.memory_limit, 1000);
        assert!((r.memory_percent - 10.0).abs() < 1e-9);
    }
}
