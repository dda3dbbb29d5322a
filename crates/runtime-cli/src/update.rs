//! `update` (change a running container's cgroup limits) and `events` (its statistics, once or
//! as a stream), with runc's flags and runc's event JSON.

use crate::commands::{apply_extras, device_rules, extras, limits, load_spec};
use crate::state::{Container, Status};
use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use hako_cgroups::{MemoryEntry, ResourceStats};
use serde_json::{json, Map, Value};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Args, Clone, Default)]
pub struct UpdateArgs {
    /// JSON file with the new linux.resources ("-" for stdin); flags given as well override it
    #[arg(short, long)]
    pub resources: Option<PathBuf>,
    /// Memory limit in bytes (suffixes k, m, g; -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap limit (suffixes k, m, g; -1 for unlimited swap)
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Soft memory limit (suffixes k, m, g)
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// CPU shares (relative weight)
    #[arg(long, alias = "cpu-share")]
    pub cpu_shares: Option<u64>,
    /// CFS quota in microseconds per period (-1 for none)
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CFS period in microseconds
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPUs to run on, e.g. 0-3,6
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to allocate from
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Maximum number of tasks (-1 or 0 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block I/O weight, 10 to 1000
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// Container ID
    pub id: String,
}

#[derive(Args, Clone)]
pub struct EventsArgs {
    /// Print the statistics once and exit
    #[arg(long)]
    pub stats: bool,
    /// How often to report statistics, e.g. 5s, 500ms, 1m
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// Container ID
    pub id: String,
}

/// A size as runc reads it (Docker's `RAMInBytes`: binary multiples with b, k, m, g, t, p, as
/// `64m` or `5MiB`); -1 means unlimited.
pub fn parse_size(s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    Ok(hako_base::size::parse_ram(t)?)
}

/// An `--interval`, in the one duration grammar (Go's, as runc takes it: 5s, 500ms, 1m30s).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let total = hako_base::duration::parse(s.trim()).context("--interval")?;
    if total.is_zero() {
        bail!("invalid --interval {s:?}: must be greater than zero");
    }
    Ok(total)
}

fn read_resources(path: &Path) -> Result<oci_spec::runtime::LinuxResources> {
    let mut data = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut data)
            .context("read resources from stdin")?;
    } else {
        data = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    }
    serde_json::from_slice(&data).map_err(|e| anyhow!("invalid resources {}: {e}", path.display()))
}

/// The limits `update` applies: the `--resources` document, then each flag on top; and the
/// document, whose device rules need the container's spec.
fn requested(
    args: &UpdateArgs,
) -> Result<(
    hako_cgroups::Resources,
    Option<oci_spec::runtime::LinuxResources>,
)> {
    let doc = args.resources.as_deref().map(read_resources).transpose()?;
    let mut res = match &doc {
        Some(doc) => limits(doc)?,
        None => hako_cgroups::Resources::default(),
    };
    let size = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| parse_size(s).with_context(|| format!("--{flag}")))
            .transpose()
    };
    if let Some(v) = size("memory", &args.memory)? {
        res.memory_limit = Some(v);
    }
    if let Some(v) = size("memory-swap", &args.memory_swap)? {
        res.memory_swap = Some(v);
    }
    if let Some(v) = size("memory-reservation", &args.memory_reservation)? {
        res.memory_reservation = Some(v);
    }
    if args.cpu_shares.is_some() {
        res.cpu_shares = args.cpu_shares;
    }
    if args.cpu_quota.is_some() {
        res.cpu_quota = args.cpu_quota;
    }
    if args.cpu_period.is_some() {
        res.cpu_period = args.cpu_period;
    }
    if args.cpuset_cpus.is_some() {
        res.cpuset_cpus.clone_from(&args.cpuset_cpus);
    }
    if args.cpuset_mems.is_some() {
        res.cpuset_mems.clone_from(&args.cpuset_mems);
    }
    if args.pids_limit.is_some() {
        res.pids_limit = args.pids_limit;
    }
    if args.blkio_weight.is_some() {
        res.blkio_weight = args.blkio_weight;
    }
    Ok((res, doc))
}

pub fn update(root: &Path, args: &UpdateArgs, logger: &crate::Logger) -> Result<()> {
    let (mut res, doc) = requested(args)?;
    let c = Container::load(root, &args.id)?;
    if c.status() == Status::Stopped {
        bail!("cannot update container {}: it is stopped", args.id);
    }
    // New device rules replace the container's (on cgroup v2 its device program is swapped,
    // not added to), completed as `create` completes them: runc's always-allowed devices and
    // the nodes the spec makes.
    if let Some(doc) = doc.as_ref().filter(|d| d.devices().is_some()) {
        let spec = load_spec(&c.saved.bundle)
            .context("the container's bundle, for the devices its new rules must keep")?;
        let nodes = spec
            .linux()
            .as_ref()
            .and_then(|l| l.devices().clone())
            .unwrap_or_default();
        res.devices = device_rules(doc, &nodes);
    }
    let cg = c
        .cgroup()
        .ok_or_else(|| {
            anyhow!(
                "container {} has no cgroup to update (created rootless where cgroups cannot be delegated)",
                args.id
            )
        })?;
    let extra = doc.as_ref().map(extras).unwrap_or_default();
    if let Some(limit) = res
        .memory_limit
        .filter(|l| *l > 0 && extra.check_before_update)
    {
        let usage = cg
            .resource_stats()
            .context("read the container's memory usage")?
            .memory
            .usage
            .usage;
        if usage > limit as u64 {
            bail!("memory limit {limit} is below the container's current usage of {usage} bytes (linux.resources.memory.checkBeforeUpdate)");
        }
    }
    cg.apply(&res).context("update the container's cgroup")?;
    for w in apply_extras(&cg, &extra)? {
        logger.warn(&w);
    }
    Ok(())
}

fn entry(e: &MemoryEntry) -> Value {
    let mut m = Map::new();
    m.insert("limit".into(), e.limit.into());
    if e.usage != 0 {
        m.insert("usage".into(), e.usage.into());
    }
    if e.max != 0 {
        m.insert("max".into(), e.max.into());
    }
    m.insert("failcnt".into(), e.failcnt.into());
    Value::Object(m)
}

/// Inserts `v` unless it is zero or empty, as Go's `omitempty` does in runc's types.
fn put(m: &mut Map<String, Value>, key: &str, v: Value) {
    let empty = match &v {
        Value::Number(n) => n.as_u64() == Some(0),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    };
    if !empty {
        m.insert(key.into(), v);
    }
}

/// runc's `types.Stats` for one sample.
pub fn stats_json(s: &ResourceStats) -> Value {
    let mut usage = Map::new();
    put(&mut usage, "total", s.cpu.total_ns.into());
    put(&mut usage, "percpu", s.cpu.percpu_ns.clone().into());
    usage.insert("kernel".into(), s.cpu.kernel_ns.into());
    usage.insert("user".into(), s.cpu.user_ns.into());
    let mut throttling = Map::new();
    put(&mut throttling, "periods", s.cpu.periods.into());
    put(
        &mut throttling,
        "throttledPeriods",
        s.cpu.throttled_periods.into(),
    );
    put(
        &mut throttling,
        "throttledTime",
        s.cpu.throttled_time_ns.into(),
    );
    let mut memory = Map::new();
    put(&mut memory, "cache", s.memory.cache.into());
    memory.insert("usage".into(), entry(&s.memory.usage));
    memory.insert("swap".into(), entry(&s.memory.swap));
    memory.insert("kernel".into(), entry(&s.memory.kernel));
    memory.insert("kernelTCP".into(), entry(&s.memory.kernel_tcp));
    let raw: Map<String, Value> = s
        .memory
        .raw
        .iter()
        .map(|(k, v)| (k.clone(), (*v).into()))
        .collect();
    put(&mut memory, "raw", Value::Object(raw));
    let mut pids = Map::new();
    put(&mut pids, "current", s.pids.current.into());
    put(&mut pids, "limit", s.pids.limit.into());
    json!({
        "cpu": {"usage": usage, "throttling": throttling},
        "memory": memory,
        "pids": pids,
        "blkio": {},
        "hugetlb": {},
    })
}

fn print_event(kind: &str, id: &str, data: Option<Value>) -> Result<()> {
    let mut ev = json!({"type": kind, "id": id});
    if let Some(d) = data {
        ev["data"] = d;
    }
    // println! goes through a line-buffered stdout: each event reaches a reader as it happens.
    println!("{ev}");
    Ok(())
}

pub fn events(root: &Path, args: &EventsArgs) -> Result<()> {
    let interval = parse_duration(&args.interval)?;
    let c = Container::load(root, &args.id)?;
    if c.status() == Status::Stopped {
        bail!("container {} is not running", args.id);
    }
    let cg = c
        .cgroup()
        .ok_or_else(|| {
            anyhow!(
                "container {} has no cgroup to report on (created rootless where cgroups cannot be delegated)",
                args.id
            )
        })?;
    let sample = || {
        cg.resource_stats()
            .context("read the container's statistics")
    };
    if args.stats {
        return print_event("stats", &args.id, Some(stats_json(&sample()?)));
    }
    // OOM kills are noticed by polling the kernel's counter, at most this late.
    let tick = interval.min(Duration::from_millis(100));
    let mut ooms = sample()?.memory.oom_kills;
    let mut next = Instant::now();
    loop {
        // Status first: a kill that stopped the container is still counted by the sample.
        let stopped = c.status() == Status::Stopped;
        let s = sample()?;
        if s.memory.oom_kills > ooms {
            ooms = s.memory.oom_kills;
            print_event("oom", &args.id, None)?;
        }
        if stopped {
            return Ok(());
        }
        if Instant::now() >= next {
            print_event("stats", &args.id, Some(stats_json(&s)))?;
            next += interval;
        }
        std::thread::sleep(tick.min(next.saturating_duration_since(Instant::now())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("2GB").unwrap(), 2 << 30);
        assert_eq!(parse_size("3k").unwrap(), 3 << 10);
        assert_eq!(parse_size("-1").unwrap(), -1);
        assert!(parse_size("12q").is_err());
        assert!(parse_size("m").is_err());
        assert!(parse_size("-5").is_err());
        assert_eq!(parse_size("5MiB").unwrap(), 5 << 20);
        assert_eq!(parse_size("1.5k").unwrap(), 1536);
        let e = format!("{:#}", parse_size("12q").unwrap_err());
        assert!(e.contains("\"12q\"") && e.contains("unit"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5x").is_err());
        assert_eq!(parse_duration("1d").unwrap(), Duration::from_secs(86_400));
    }

    #[test]
    fn stats_document_follows_runc() {
        let mut s = ResourceStats::default();
        s.cpu.total_ns = 10;
        s.memory.usage.usage = 4096;
        s.memory.usage.limit = 1 << 20;
        s.memory.raw = vec![("cache".into(), 1)];
        s.pids.current = 2;
        let v = stats_json(&s);
        assert_eq!(v["cpu"]["usage"]["total"], 10);
        assert_eq!(v["cpu"]["usage"]["kernel"], 0);
        assert!(v["cpu"]["usage"].get("percpu").is_none());
        assert_eq!(v["memory"]["usage"]["usage"], 4096);
        assert_eq!(v["memory"]["usage"]["limit"], 1 << 20);
        assert_eq!(v["memory"]["raw"]["cache"], 1);
        assert_eq!(v["pids"]["current"], 2);
        assert!(v["pids"].get("limit").is_none());
    }

    #[test]
    fn flags_override_the_resources_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.json");
        std::fs::write(
            &file,
            r#"{"memory": {"limit": 1000000}, "pids": {"limit": 5}}"#,
        )
        .unwrap();
        let args = UpdateArgs {
            resources: Some(file),
            pids_limit: Some(9),
            memory_reservation: Some("1m".into()),
            ..Default::default()
        };
        let (r, _) = requested(&args).unwrap();
        assert_eq!(r.memory_limit, Some(1_000_000));
        assert_eq!(r.pids_limit, Some(9));
        assert_eq!(r.memory_reservation, Some(1 << 20));
    }
}
