//! Healthchecks, as Docker runs them, without a daemon.
//!
//! A detached container whose check (its own `--health-*`, else its image's HEALTHCHECK) is not
//! `NONE` gets a helper process next to its monitor: the small `hako-health`, which sleeps
//! between checks and for each runs `hako` with [`HELPER_ARG`] ([`helper_step`]), which runs
//! the check through `hako exec` (the engine's exec path) with its timeout and records the
//! result. The helper dies with the monitor (parent-death signal), so a container without a
//! check costs nothing, and one with a check costs one small sleeping process. Results go to the container's row (`health`, Docker's `State.Health` as JSON),
//! where `inspect`, `ps` and the `health` filter read them; a change of status is a
//! `health_status: …` event.

use crate::config::HealthConfig;
use crate::{Engine, Error, Result};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The hidden first argument of a health helper's step: `hako __health ROOT ID first|probe`.
pub const HELPER_ARG: &str = "__health";

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_START_INTERVAL: Duration = Duration::from_secs(5);
const DEFAULT_RETRIES: u32 = 3;
/// Docker keeps this many results, each output cut to `MAX_OUTPUT` bytes.
const MAX_LOG: usize = 5;
const MAX_OUTPUT: usize = 4096;

/// Docker's `State.Health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    /// Failures in a row (not counting those in the start period).
    pub failing_streak: u32,
    /// The last results, oldest first.
    pub log: Vec<HealthResult>,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthResult {
    /// When it started (RFC 3339).
    pub start: String,
    /// When it ended.
    pub end: String,
    /// The command's status; -1 when it timed out or could not run.
    pub exit_code: i32,
    /// Its output (stdout and stderr), cut at 4 KiB.
    pub output: String,
}

/// A check to run, with Docker's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The command to exec in the container.
    pub argv: Vec<String>,
    /// Between checks.
    pub interval: Duration,
    /// Before a check is abandoned as failed.
    pub timeout: Duration,
    /// After the start, failures do not count until one check succeeds or this passes.
    pub start_period: Duration,
    /// Between checks during the start period.
    pub start_interval: Duration,
    /// Failures in a row that make the container unhealthy.
    pub retries: u32,
}

impl Health {
    /// What a container has when it starts (Docker keeps the log of a previous run).
    pub fn starting(previous: Option<Health>) -> Health {
        Health {
            status: "starting".into(),
            failing_streak: 0,
            log: previous.map(|p| p.log).unwrap_or_default(),
        }
    }

    /// Adds a result as Docker's health monitor does; `in_start_period`: the check began
    /// within the start period. Returns whether the status changed.
    pub fn record(&mut self, r: HealthResult, in_start_period: bool, retries: u32) -> bool {
        let before = self.status.clone();
        if r.exit_code == 0 {
            self.failing_streak = 0;
            self.status = "healthy".into();
        } else if !(self.status == "starting" && in_start_period) {
            self.failing_streak += 1;
            if self.failing_streak >= retries {
                self.status = "unhealthy".into();
            }
        }
        self.log.push(r);
        if self.log.len() > MAX_LOG {
            self.log.drain(..self.log.len() - MAX_LOG);
        }
        self.status != before
    }
}

fn nanos(n: i64) -> Option<Duration> {
    (n > 0).then(|| Duration::from_nanos(n as u64))
}

/// The container's check: its own settings, each one it leaves unset taken from the image's
/// (Docker merges them so at create). None when there is none or it is `NONE`.
pub fn resolve(own: Option<&HealthConfig>, image: Option<&HealthConfig>) -> Option<Check> {
    let pick = |f: fn(&HealthConfig) -> i64| {
        own.and_then(|h| nanos(f(h)))
            .or_else(|| image.and_then(|h| nanos(f(h))))
    };
    let test = own
        .map(|h| &h.test)
        .filter(|t| !t.is_empty())
        .or(image.map(|h| &h.test))?;
    let argv = match test.first().map(String::as_str) {
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => {
            let mut v = vec!["/bin/sh".to_string(), "-c".to_string()];
            v.extend(test[1..].iter().cloned());
            v
        }
        _ => return None,
    };
    if argv.is_empty() {
        return None;
    }
    let retries = own
        .map(|h| h.retries)
        .filter(|r| *r > 0)
        .or(image.map(|h| h.retries).filter(|r| *r > 0))
        .unwrap_or(DEFAULT_RETRIES);
    Some(Check {
        argv,
        interval: pick(|h| h.interval).unwrap_or(DEFAULT_INTERVAL),
        timeout: pick(|h| h.timeout).unwrap_or(DEFAULT_TIMEOUT),
        start_period: pick(|h| h.start_period).unwrap_or_default(),
        start_interval: pick(|h| h.start_interval).unwrap_or(DEFAULT_START_INTERVAL),
        retries,
    })
}

/// The container's check as Docker's daemon stores it in the container's `Config`: the
/// image's, with each field the container sets (a test, a non-zero time or count) replacing
/// the image's; no defaults filled in (those are [`resolve`]'s).
pub fn merge(own: Option<&HealthConfig>, image: Option<&HealthConfig>) -> Option<HealthConfig> {
    let (own, image) = match (own, image) {
        (None, None) => return None,
        (Some(o), None) => return Some(o.clone()),
        (None, Some(i)) => return Some(i.clone()),
        (Some(o), Some(i)) => (o, i),
    };
    let or = |a: i64, b: i64| if a != 0 { a } else { b };
    Some(HealthConfig {
        test: if own.test.is_empty() {
            image.test.clone()
        } else {
            own.test.clone()
        },
        interval: or(own.interval, image.interval),
        timeout: or(own.timeout, image.timeout),
        start_period: or(own.start_period, image.start_period),
        start_interval: or(own.start_interval, image.start_interval),
        retries: if own.retries != 0 {
            own.retries
        } else {
            image.retries
        },
    })
}

/// An image config's `config.Healthcheck` (Docker's extension of the OCI config).
pub fn image_healthcheck(config: &serde_json::Value) -> Option<HealthConfig> {
    let h = config.get("config")?.get("Healthcheck")?;
    let n = |k: &str| h.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
    Some(HealthConfig {
        test: h
            .get("Test")?
            .as_array()?
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        interval: n("Interval"),
        timeout: n("Timeout"),
        start_period: n("StartPeriod"),
        start_interval: n("StartInterval"),
        retries: u32::try_from(n("Retries")).unwrap_or(0),
    })
}

/// Go's `time.Duration` text for the timeout message (`30s`, `1.5s`, `500ms`, `1m0s`).
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = d.as_secs_f64();
    let (m, s) = ((secs / 60.0).floor() as u64, secs % 60.0);
    let s = format!("{s}");
    match m {
        0 => format!("{s}s"),
        m => format!("{m}m{s}s"),
    }
}

impl Engine {
    /// The check of a container about to start: None for most, which then get no helper.
    pub(crate) fn health_check_of(
        &self,
        opts: &crate::ContainerConfig,
        image_id: &str,
    ) -> Option<Check> {
        if opts
            .healthcheck
            .as_ref()
            .is_some_and(|h| h.test.first().map(String::as_str) == Some("NONE"))
        {
            return None;
        }
        let own_complete = opts
            .healthcheck
            .as_ref()
            .is_some_and(|h| !h.test.is_empty());
        // Only a container that does not say it all reads its image's config.
        let image = if own_complete
            && opts.healthcheck.as_ref().is_some_and(|h| {
                h.interval > 0
                    && h.timeout > 0
                    && h.start_period > 0
                    && h.start_interval > 0
                    && h.retries > 0
            }) {
            None
        } else {
            std::fs::read(self.store.blob_path(image_id))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| image_healthcheck(&v))
        };
        resolve(opts.healthcheck.as_ref(), image.as_ref())
    }

    /// Marks a starting container's health `starting` (keeping the previous run's log).
    pub(crate) fn health_reset(&self, id: &str) -> Result<()> {
        let h = Health::starting(self.health(id)?);
        self.store.conn().execute(
            "UPDATE containers SET health = ?2 WHERE id = ?1",
            rusqlite::params![id, serde_json::to_string(&h).expect("plain data")],
        )?;
        Ok(())
    }

    /// A container's `State.Health`, if it has a check.
    pub fn health(&self, id: &str) -> Result<Option<Health>> {
        let v: Option<String> = self
            .store
            .conn()
            .query_row("SELECT health FROM containers WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .map_err(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Error::NoSuchContainer(id.to_string()),
                e => e.into(),
            })?;
        Ok(v.and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// Adds a result to the container's health, if it is still the run the check began in;
    /// says a change of status as an event.
    fn health_record(
        &self,
        id: &str,
        started: i64,
        began: i64,
        r: HealthResult,
        check: &Check,
    ) -> Result<()> {
        let tx = rusqlite::Transaction::new_unchecked(
            self.store.conn(),
            rusqlite::TransactionBehavior::Immediate,
        )?;
        let row: Option<(String, Option<i64>, Option<String>)> = self
            .store
            .conn()
            .query_row(
                "SELECT state, started_at, health FROM containers WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ok();
        let Some((state, Some(at), health)) = row else {
            return Ok(());
        };
        if state != "running" || at != started {
            return Ok(());
        }
        let mut h: Health = health
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_else(|| Health::starting(None));
        let in_start = (began.saturating_sub(started) as u128) < check.start_period.as_nanos();
        let changed = h.record(r, in_start, check.retries);
        self.store.conn().execute(
            "UPDATE containers SET health = ?2 WHERE id = ?1",
            rusqlite::params![id, serde_json::to_string(&h).expect("plain data")],
        )?;
        tx.commit()?;
        if changed {
            self.event(id, &format!("health_status: {}", h.status), &[]);
        }
        Ok(())
    }
}

/// One step of a container's health helper (`hako __health ROOT ID first|probe`, run by the
/// `hako-health` loop): `probe` runs a check and records it first. Returns the container's
/// pid and the wait before the next check, or None once its run is over (or it has no
/// check). `hako` is the binary that runs each check as `hako exec`.
pub fn helper_step(
    root: &std::path::Path,
    id: &str,
    probe_now: bool,
    hako: &std::path::Path,
) -> Result<Option<(i32, Duration)>> {
    // The monitor's starter records the start right after the monitor reports it: the first
    // step waits for it.
    let mut tries = 0;
    let (engine, c, pid) = loop {
        let engine = Engine::open(root)?;
        let c = engine.find(id)?;
        if c.state == crate::State::Running && c.started_at.is_some() {
            if let Some(pid) = engine.live_pid(&c.id)? {
                break (engine, c, pid);
            }
        }
        tries += 1;
        if probe_now || tries > 100 {
            return Ok(None);
        }
        drop(engine);
        std::thread::sleep(Duration::from_millis(50));
    };
    let started = c.started_at.unwrap_or_default();
    let opts = engine.config_of(&c.id)?;
    let Some(check) = engine.health_check_of(&opts, &c.image_id) else {
        return Ok(None);
    };
    if probe_now {
        // No connection is held while the check runs.
        drop(engine);
        let pidfd = pidfd(pid);
        let start = crate::now_nanos();
        let (code, output) = probe(hako, root, &c.id, &check);
        // A check that the container's end cut short says nothing of its health: the exit
        // is recorded as the container's, and the status turns unhealthy then.
        if pidfd.as_ref().is_none_or(exited) {
            return Ok(None);
        }
        let r = HealthResult {
            start: hako_base::time::rfc3339_trimmed(start),
            end: hako_base::time::rfc3339_trimmed(crate::now_nanos()),
            exit_code: code,
            output,
        };
        let engine = Engine::open(root)?;
        engine.health_record(&c.id, started, start, r, &check)?;
        return next_wait(&engine, &c.id, started, pid, &check);
    }
    next_wait(&engine, &c.id, started, pid, &check)
}

/// A pidfd of the container's init: readable once it has exited (a zombie too).
fn pidfd(pid: i32) -> Option<std::os::fd::OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a descriptor just returned to us, owned here alone.
    (fd >= 0).then(|| unsafe { std::os::fd::FromRawFd::from_raw_fd(fd as i32) })
}

fn exited(fd: &std::os::fd::OwnedFd) -> bool {
    let mut p = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(fd),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut p, 1, 0) != 0 }
}

/// During the start period, while the container is still starting, checks come at the start
/// interval; otherwise at the interval.
fn next_wait(
    engine: &Engine,
    id: &str,
    started: i64,
    pid: i32,
    check: &Check,
) -> Result<Option<(i32, Duration)>> {
    let starting = engine.health(id)?.is_none_or(|h| h.status == "starting");
    let since = crate::now_nanos().saturating_sub(started);
    let wait = if starting && (since as u128) < check.start_period.as_nanos() {
        check.start_interval
    } else {
        check.interval
    };
    Ok(Some((pid, wait)))
}

/// Runs one check through `hako exec`, killing it at the timeout (its process in the container
/// dies with it).
fn probe(hako: &std::path::Path, root: &std::path::Path, id: &str, check: &Check) -> (i32, String) {
    use std::io::Read;
    let (mut r, w) = match std::io::pipe() {
        Ok(p) => p,
        Err(e) => return (-1, format!("create a pipe: {e}")),
    };
    let w2 = match w.try_clone() {
        Ok(w) => w,
        Err(e) => return (-1, format!("create a pipe: {e}")),
    };
    let child = std::process::Command::new(hako)
        .arg("exec")
        .arg(id)
        .args(&check.argv)
        .env("HAKO_ROOT", root)
        .stdin(std::process::Stdio::null())
        .stdout(w)
        .stderr(w2)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (-1, format!("run the check: {e}")),
    };
    // The output is read on a thread, so a chatty check cannot fill the pipe and stall.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = (&mut r).take(MAX_OUTPUT as u64).read_to_end(&mut out);
        // The rest is drained and dropped.
        let _ = std::io::copy(&mut r, &mut std::io::sink());
        out
    });
    let deadline = std::time::Instant::now() + check.timeout;
    let code = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st.code(),
            Ok(None) if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let out = reader.join().unwrap_or_default();
    match code {
        Some(c) => (c, String::from_utf8_lossy(&out).into_owned()),
        None => (
            -1,
            format!(
                "Health check exceeded timeout ({})",
                go_duration(check.timeout)
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i32) -> HealthResult {
        HealthResult {
            start: String::new(),
            end: String::new(),
            exit_code: code,
            output: String::new(),
        }
    }

    /// Docker's state machine: failures in the start period do not count while starting; a
    /// success makes it healthy and resets the streak; `retries` failures in a row make it
    /// unhealthy; five results are kept.
    #[test]
    fn merge_fills_what_the_container_leaves_unset_from_the_image() {
        let image = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 5,
            timeout: 7,
            ..Default::default()
        };
        let own = HealthConfig {
            retries: 7,
            interval: 9,
            ..Default::default()
        };
        let m = merge(Some(&own), Some(&image)).unwrap();
        assert_eq!(m.test, ["CMD", "true"]);
        assert_eq!((m.interval, m.timeout, m.retries), (9, 7, 7));
        assert_eq!(merge(None, Some(&image)), Some(image.clone()));
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert_eq!(merge(Some(&none), Some(&image)).unwrap().test, ["NONE"]);
    }

    #[test]
    fn state_machine() {
        let mut h = Health::starting(None);
        assert!(!h.record(result(1), true, 2));
        assert_eq!((h.status.as_str(), h.failing_streak), ("starting", 0));
        assert!(!h.record(result(1), false, 2));
        assert_eq!((h.status.as_str(), h.failing_streak), ("starting", 1));
        assert!(h.record(result(1), false, 2));
        assert_eq!((h.status.as_str(), h.failing_streak), ("unhealthy", 2));
        assert!(h.record(result(0), false, 2));
        assert_eq!((h.status.as_str(), h.failing_streak), ("healthy", 0));
        // Once healthy, the start period no longer excuses a failure.
        assert!(!h.record(result(1), true, 2));
        assert_eq!((h.status.as_str(), h.failing_streak), ("healthy", 1));
        assert!(!h.record(result(0), false, 2));
        assert_eq!(h.log.len(), 5);
        let again = Health::starting(Some(h.clone()));
        assert_eq!((again.status.as_str(), again.log.len()), ("starting", 5));
    }

    #[test]
    fn merge_with_the_image_and_defaults() {
        let image = HealthConfig {
            test: vec!["CMD".into(), "true".into()],
            interval: 2_000_000_000,
            retries: 5,
            ..Default::default()
        };
        let c = resolve(None, Some(&image)).unwrap();
        assert_eq!(c.argv, ["true"]);
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.timeout, DEFAULT_TIMEOUT);
        assert_eq!(c.start_interval, DEFAULT_START_INTERVAL);
        assert_eq!(c.retries, 5);
        let own = HealthConfig {
            test: vec!["CMD-SHELL".into(), "exit 1".into()],
            timeout: 1_000_000_000,
            ..Default::default()
        };
        let c = resolve(Some(&own), Some(&image)).unwrap();
        assert_eq!(c.argv, ["/bin/sh", "-c", "exit 1"]);
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.timeout, Duration::from_secs(1));
        // Timing alone keeps the image's test.
        let timing = HealthConfig {
            interval: 1_000_000_000,
            ..Default::default()
        };
        assert_eq!(resolve(Some(&timing), Some(&image)).unwrap().argv, ["true"]);
        let none = HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
        assert_eq!(resolve(Some(&none), Some(&image)), None);
        assert_eq!(resolve(None, None), None);
        assert_eq!(resolve(Some(&timing), None), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
    }
}
