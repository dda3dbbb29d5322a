//! `kill -9` at random points of `pull`, `build`, `run` (foreground, `-d`, and its monitor),
//! `rm`, `rmi`, `load`, `cp` and `prune`, then the next ordinary command must succeed and see
//! a consistent store: nothing mounted, frozen, leaked or half-made, and the killed command,
//! run again, succeeds.
//!
//! The kill points are drawn from a seeded PRNG over the command's own duration, measured by
//! unkilled runs first, so they cover its start, middle and end (and a little past it). A
//! failing run prints the seed; `HAKO_FAULT_SEED=N` replays the same kill points and
//! `HAKO_FAULT_TRIALS=N` runs N trials per command instead of the default (sized so the whole
//! file takes about three minutes here). Every trial is checked in full and every
//! inconsistency is collected, so one run reports all the kinds it met, each with the trials
//! that met it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::peers::Registry;
use common::{images_dir, Root};
use sha2::{Digest, Sha256};

/// How long an ordinary command may take before it counts as hung (a frozen container makes
/// some commands wait for ever).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the processes a killed command left behind (a monitor finishing its container, a
/// forked `run -d` child) may take to finish their work.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

/// The base seed: `HAKO_FAULT_SEED`, or fresh from the clock.
fn base_seed() -> u64 {
    match std::env::var("HAKO_FAULT_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("HAKO_FAULT_SEED={s:?} is not a number"))
        }
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    }
}

/// `HAKO_FAULT_TRIALS`, or `default`.
fn trials(default: usize) -> usize {
    match std::env::var("HAKO_FAULT_TRIALS") {
        Ok(s) => s
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("HAKO_FAULT_TRIALS={s:?} is not a number")),
        Err(_) => default,
    }
}

/// How a command ended and what it printed.
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A process that belongs to the state root under test.
#[derive(Debug)]
struct Proc {
    pid: i32,
    argv: Vec<String>,
}

impl Proc {
    fn is(&self, bin: &str) -> bool {
        self.argv
            .first()
            .is_some_and(|a| Path::new(a).file_name().is_some_and(|n| n == bin))
    }
}

fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z" && st != "X"),
        Err(_) => false,
    }
}

/// Every live process started for `root`: `hako` commands (HAKO_ROOT in their environment or
/// `--root` on their command line), the monitors and name servers (the root or its database
/// on their command line).
fn processes_of(root: &Path) -> Vec<Proc> {
    let root = root.to_string_lossy().into_owned();
    let env = format!("HAKO_ROOT={root}");
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if cmd.is_empty() {
            continue;
        }
        let argv: Vec<String> = cmd
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let by_args = argv.iter().any(|a| a.starts_with(&root));
        let by_env = !by_args
            && std::fs::read(e.path().join("environ"))
                .map(|env_bytes| env_bytes.split(|b| *b == 0).any(|v| v == env.as_bytes()))
                .unwrap_or(false);
        if by_args || by_env {
            out.push(Proc { pid, argv });
        }
    }
    out
}

/// A listed container, from `inspect`.
#[derive(Debug, Clone)]
struct Ctr {
    id: String,
    name: String,
    status: String,
    running: bool,
    pid: i32,
    auto_remove: bool,
    image: String,
    /// Names of the volumes it mounts.
    volumes: Vec<String>,
}

/// A listed image, from `image inspect`.
#[derive(Debug, Clone)]
struct Img {
    id: String,
    tags: Vec<String>,
    diff_ids: Vec<String>,
    size: u64,
}

fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The OCI chain IDs of a layer stack, bottom first.
fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(parent) => format!("sha256:{}", sha_hex(format!("{parent} {d}").as_bytes())),
        };
        out.push(next);
    }
    out
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// Docker's human sizes ("2.13MB", "4.1kB", "0B"), back to bytes.
fn parse_size(s: &str) -> Option<f64> {
    let s = s.split_whitespace().next()?;
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let mult = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    num.parse::<f64>().ok().map(|n| n * mult)
}

/// Sum of the regular file sizes under `p`.
fn tree_size(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if m.is_file() {
        return m.len();
    }
    if !m.is_dir() {
        return 0;
    }
    std::fs::read_dir(p)
        .map(|d| d.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Whether a cgroup directory is frozen (v1 freezer or v2 `cgroup.freeze`).
fn frozen(dir: &Path) -> bool {
    let v1 = std::fs::read_to_string(dir.join("freezer.state"))
        .map(|s| matches!(s.trim(), "FROZEN" | "FREEZING"))
        .unwrap_or(false);
    let v2 = std::fs::read_to_string(dir.join("cgroup.freeze"))
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    v1 || v2
}

fn thaw(dir: &Path) {
    let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
    let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
}

/// How a trial's killed command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// It had exited by itself with this code before the kill.
    Exited(i32),
    /// SIGKILL ended it.
    Killed,
}

/// One command's fault-injection campaign on one state root.
struct Campaign<'r> {
    r: &'r Root,
    command: &'static str,
    seed: u64,
    rng: fastrand::Rng,
    /// What the current trial did, for the failure messages.
    trial: String,
    /// Every container ID this root is known to have had: a leaked cgroup or monitor can only
    /// be told apart from another suite's by its ID.
    known: BTreeSet<String>,
    /// Bridges this root's networks have had.
    bridges: BTreeSet<String>,
    /// Detached containers whose monitor this test killed: they may run on unsupervised.
    unmonitored: BTreeSet<String>,
    /// check name → the trials that failed it, with what was found.
    failures: BTreeMap<&'static str, Vec<String>>,
    trials_run: usize,
    killed: usize,
    /// Extra files of the campaign (build context, archives), removed on drop.
    scratch: tempfile::TempDir,
}

impl<'r> Campaign<'r> {
    fn new(r: &'r Root, command: &'static str) -> Campaign<'r> {
        let base = base_seed();
        // One base seed reproduces every command's campaign; each still gets its own stream.
        let seed =
            base ^ u64::from_le_bytes(Sha256::digest(command.as_bytes())[..8].try_into().unwrap());
        eprintln!("faults/{command}: HAKO_FAULT_SEED={base}");
        Campaign {
            r,
            command,
            seed: base,
            rng: fastrand::Rng::with_seed(seed),
            trial: String::new(),
            known: BTreeSet::new(),
            unmonitored: BTreeSet::new(),
            bridges: BTreeSet::new(),
            failures: BTreeMap::new(),
            trials_run: 0,
            killed: 0,
            scratch: tempfile::Builder::new()
                .prefix("hako-faults-")
                .tempdir_in("/var/tmp")
                .unwrap(),
        }
    }

    fn root(&self) -> &Path {
        self.r.path()
    }

    fn fail(&mut self, check: &'static str, detail: impl Into<String>) {
        let line = format!("{} — {}", self.trial, detail.into());
        let seen = self.failures.entry(check).or_default();
        // A later check of the same trial finds the same thing again.
        if !seen.contains(&line) {
            eprintln!("faults/{}: [{check}] {line}", self.command);
            seen.push(line);
        }
    }

    /// Kill delays for `n` trials of a command that takes `measured` unkilled: one in each of
    /// `n` equal slices of [0, 1.25 × measured], in random order, so the start, the middle,
    /// the end and just past it are all hit.
    fn delays(&mut self, measured: Duration, n: usize) -> Vec<Duration> {
        let window = measured.mul_f64(1.25);
        let mut v: Vec<Duration> = (0..n)
            .map(|i| window.mul_f64((i as f64 + self.rng.f64()) / n as f64))
            .collect();
        self.rng.shuffle(&mut v);
        v
    }

    /// Runs a command with a time limit; a hung one is killed and reported.
    fn exec(&mut self, args: &[&str]) -> Option<Out> {
        let child = self
            .r
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn hako");
        let pid = child.id() as i32;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        match rx.recv_timeout(COMMAND_TIMEOUT) {
            Ok(Ok(o)) => Some(Out {
                code: o.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            }),
            Ok(Err(e)) => panic!("wait for hako {args:?}: {e}"),
            Err(_) => {
                // Our own child, by pid; the waiting thread reaps it.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                let _ = rx.recv();
                self.fail(
                    "hung",
                    format!("hako {args:?} did not finish in {COMMAND_TIMEOUT:?}"),
                );
                None
            }
        }
    }

    /// Runs a command that must succeed; returns its stdout.
    fn must(&mut self, check: &'static str, args: &[&str]) -> Option<String> {
        let o = self.exec(args)?;
        if o.code != 0 {
            self.fail(
                check,
                format!("hako {args:?} exited {}: {}", o.code, o.stderr.trim()),
            );
            return None;
        }
        Some(o.stdout)
    }

    /// Setup steps: they run on a consistent root, so a failure is a plain test failure.
    fn ok(&mut self, args: &[&str]) -> String {
        let o = self
            .exec(args)
            .unwrap_or_else(|| panic!("hako {args:?} hung"));
        assert_eq!(
            o.code, 0,
            "{}: setup step hako {args:?} failed: {}",
            self.trial, o.stderr
        );
        o.stdout
    }

    /// Wall time of an unkilled run of `args` (the median of three, `reset` before each).
    fn measure(&mut self, args: &[&str], reset: &mut dyn FnMut(&mut Self)) -> Duration {
        let mut times = Vec::new();
        for _ in 0..3 {
            reset(self);
            let t = Instant::now();
            self.ok(args);
            times.push(t.elapsed());
        }
        times.sort();
        eprintln!(
            "faults/{}: hako {args:?} takes {:?}",
            self.command, times[1]
        );
        times[1]
    }

    /// Starts `args`, SIGKILLs it `delay` after the start unless it has exited by then.
    fn kill_after(&mut self, args: &[&str], delay: Duration) -> Ended {
        self.trials_run += 1;
        let mut child = self
            .r
            .cmd(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hako");
        let t = Instant::now();
        if let Some(left) = delay.checked_sub(t.elapsed()) {
            std::thread::sleep(left);
        }
        // std's kill is SIGKILL, sent to this child by its pid.
        let ended = match child.try_wait().unwrap() {
            Some(st) => Ended::Exited(st.code().unwrap_or(-1)),
            None => {
                let _ = child.kill();
                match child.wait().unwrap().code() {
                    Some(c) => Ended::Exited(c),
                    None => Ended::Killed,
                }
            }
        };
        if ended == Ended::Killed {
            self.killed += 1;
        }
        ended
    }

    /// Names the container directories present now: a command killed after making one may
    /// have made the container's cgroup too, and that ID is how a leak of it is recognised.
    fn note_container_dirs(&mut self) {
        for id in entries(&self.root().join("containers")) {
            self.known.insert(id);
        }
    }

    /// The containers the root lists, inspected.
    fn containers(&mut self) -> Option<Vec<Ctr>> {
        let mut attempt = 0;
        let out = loop {
            let ids = self.must("next command", &["ps", "-a", "-q", "--no-trunc"])?;
            let ids: Vec<String> = ids.split_whitespace().map(String::from).collect();
            self.known.extend(ids.iter().cloned());
            if ids.is_empty() {
                return Some(Vec::new());
            }
            let mut args = vec!["inspect"];
            args.extend(ids.iter().map(String::as_str));
            let o = self.exec(&args)?;
            attempt += 1;
            match o.code {
                0 => break o.stdout,
                // A container listed by `ps` can be finished and removed (--rm) before
                // `inspect` looks: by its monitor, or by the reconcile `inspect` itself runs
                // when it finds the container's process dead.
                _ if o.stderr.contains("No such object") && attempt < 5 => continue,
                _ => {
                    self.fail(
                        "inspect",
                        format!("hako {args:?} exited {}: {}", o.code, o.stderr.trim()),
                    );
                    return None;
                }
            }
        };
        let docs: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        Some(
            docs.iter()
                .map(|d| Ctr {
                    id: d["Id"].as_str().unwrap_or_default().to_string(),
                    name: d["Name"]
                        .as_str()
                        .unwrap_or_default()
                        .trim_start_matches('/')
                        .to_string(),
                    status: d["State"]["Status"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    running: d["State"]["Running"].as_bool().unwrap_or(false),
                    pid: d["State"]["Pid"].as_i64().unwrap_or(0) as i32,
                    auto_remove: d["HostConfig"]["AutoRemove"].as_bool().unwrap_or(false),
                    image: d["Image"].as_str().unwrap_or_default().to_string(),
                    volumes: d["Mounts"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|m| m["Type"] == "volume")
                        .filter_map(|m| m["Name"].as_str().map(String::from))
                        .collect(),
                })
                .collect(),
        )
    }

    /// The images the root lists, inspected.
    fn images(&mut self) -> Option<Vec<Img>> {
        let ids = self.must("next command", &["images", "-a", "-q", "--no-trunc"])?;
        let ids: BTreeSet<String> = ids.split_whitespace().map(String::from).collect();
        if ids.is_empty() {
            return Some(Vec::new());
        }
        let mut args = vec!["image", "inspect"];
        args.extend(ids.iter().map(String::as_str));
        let out = match self.exec(&args)? {
            o if o.code == 0 => o.stdout,
            o => {
                self.fail(
                    "image broken",
                    format!("a listed image cannot be inspected: {}", o.stderr.trim()),
                );
                return None;
            }
        };
        let docs: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        Some(
            docs.iter()
                .map(|d| Img {
                    id: d["Id"].as_str().unwrap_or_default().to_string(),
                    tags: d["RepoTags"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|t| t.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                    diff_ids: d["RootFS"]["Layers"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|t| t.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                    size: d["Size"].as_u64().unwrap_or(0),
                })
                .collect(),
        )
    }

    /// Waits for what the killed command left running to finish its work: a forked `run -d`
    /// child starting its container, a monitor recording an exit. Monitors of running
    /// containers and name servers stay.
    fn settle(&mut self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let busy: Vec<Proc> = processes_of(self.root())
                .into_iter()
                .filter(|p| {
                    !(p.is("hako-dns")
                        || p.is("hako-proxy")
                        || (p.is("hako-monitor")
                            && p.argv
                                .get(2)
                                .and_then(|c| c.parse::<i32>().ok())
                                .is_some_and(pid_alive)))
                })
                .collect();
            if busy.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                self.fail(
                    "hung",
                    format!("processes still busy after {SETTLE_TIMEOUT:?}: {busy:?}"),
                );
                for p in busy {
                    // Started for this root (by the killed command), by pid.
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p.pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// After a kill: the next ordinary commands must succeed, then, once what the killed
    /// command left behind has finished, the whole root must be consistent. Returns the
    /// containers and images it lists.
    fn after_kill(&mut self) -> (Vec<Ctr>, Vec<Img>) {
        self.note_container_dirs();
        // The next ordinary commands, while anything the killed command left is still there.
        let _ = self.must("next command", &["ps", "-a"]);
        let _ = self.must("next command", &["images"]);
        let _ = self.must("next command", &["system", "df"]);
        self.settle();
        self.check()
    }

    /// Every consistency check on a settled root.
    fn check(&mut self) -> (Vec<Ctr>, Vec<Img>) {
        let containers = self.containers().unwrap_or_default();
        let images = self.images().unwrap_or_default();
        self.check_mounts();
        self.check_tmp();
        self.check_containers(&containers);
        self.check_cgroups(&containers);
        self.check_network(&containers);
        self.check_images(&images);
        self.check_orphans_visible(&containers, &images);
        self.check_volume_dirs();
        (containers, images)
    }

    /// No volume outside those listed containers use: for campaigns whose containers' anonymous
    /// volumes all go with them (`--rm`, `rm -v`).
    fn check_no_dangling_volumes(&mut self, containers: &[Ctr]) {
        let Some(out) = self.must("next command", &["volume", "ls", "-q"]) else {
            return;
        };
        let used: BTreeSet<&str> = containers
            .iter()
            .flat_map(|c| c.volumes.iter().map(String::as_str))
            .collect();
        let dangling: Vec<&str> = out
            .split_whitespace()
            .filter(|v| !used.contains(v))
            .collect();
        if !dangling.is_empty() {
            let msg = format!("volumes no container uses are left: {dangling:?}");
            self.fail("volume leak", msg);
        }
    }

    /// Every directory under `volumes/` is a volume `volume ls` lists.
    fn check_volume_dirs(&mut self) {
        let Some(out) = self.must("next command", &["volume", "ls", "-q"]) else {
            return;
        };
        let listed: BTreeSet<&str> = out.split_whitespace().collect();
        let unlisted: Vec<String> = entries(&self.root().join("volumes"))
            .into_iter()
            .filter(|d| !listed.contains(d.as_str()))
            .collect();
        if !unlisted.is_empty() {
            self.fail(
                "volume leak",
                format!("volumes/ holds directories of no volume: {unlisted:?}"),
            );
        }
    }

    fn check_mounts(&mut self) {
        let root = self.root().to_string_lossy().into_owned();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let left: Vec<String> = mountinfo
            .lines()
            .filter(|l| l.contains(&root))
            .map(String::from)
            .collect();
        if !left.is_empty() {
            self.fail("mounts", format!("left under the root: {left:?}"));
            for l in left {
                if let Some(mp) = l.split(' ').nth(4) {
                    let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
                }
            }
        }
    }

    /// `tmp/` entries are `<pid>-…` and swept by the next store open once that pid is dead.
    fn check_tmp(&mut self) {
        let tmp = self.root().join("tmp");
        let left: Vec<String> = entries(&tmp)
            .into_iter()
            .filter(|name| {
                let pid = name
                    .split_once('-')
                    .and_then(|(p, _)| p.parse::<i32>().ok());
                !pid.is_some_and(|p| p > 0 && pid_alive(p))
            })
            .collect();
        if !left.is_empty() {
            self.fail(
                "tmp leftovers",
                format!("tmp/ entries of dead processes after a command ran: {left:?}"),
            );
        }
    }

    fn check_containers(&mut self, containers: &[Ctr]) {
        // The container of a killed foreground `run` is still dying (unmounting, in state D)
        // for a moment after its parent-death signal: wait for it before calling it a survivor.
        let monitored = |id: &str| {
            processes_of(self.root())
                .iter()
                .any(|p| p.is("hako-monitor") && p.argv.get(1).map(String::as_str) == Some(id))
        };
        let dying: Vec<i32> = containers
            .iter()
            .filter(|c| c.running && !monitored(&c.id) && !self.unmonitored.contains(&c.id))
            .map(|c| c.pid)
            .collect();
        common::wait_for(5, || dying.iter().all(|p| !pid_alive(*p)));
        // Only a listing made after a container's process was seen dead is judged by that
        // death: one that dies after the listing (or while its monitor, still alive, is
        // finishing it) is listed running rightly. So the dead are noted first, then what is
        // finishing them settles, then the root is listed again.
        let dead: BTreeSet<i32> = containers
            .iter()
            .filter(|c| c.running && !pid_alive(c.pid))
            .map(|c| c.pid)
            .collect();
        let relisted;
        let containers = if dead.is_empty() {
            containers
        } else {
            self.settle();
            relisted = self.containers().unwrap_or_default();
            &relisted[..]
        };
        let listed: BTreeSet<&str> = containers.iter().map(|c| c.id.as_str()).collect();
        for d in entries(&self.root().join("containers")) {
            if !listed.contains(d.as_str()) {
                self.fail("container dirs", format!("containers/{d} has no container"));
            }
        }
        let procs = processes_of(self.root());
        let monitors: Vec<&Proc> = procs.iter().filter(|p| p.is("hako-monitor")).collect();
        for c in containers {
            let monitored = monitors.iter().any(|m| m.argv.get(1) == Some(&c.id));
            if c.running {
                if dead.contains(&c.pid) && !pid_alive(c.pid) {
                    self.fail(
                        "container state",
                        format!(
                            "{} ({}) is listed running, its pid {} is dead",
                            c.name, c.id, c.pid
                        ),
                    );
                } else if !pid_alive(c.pid) {
                    // It died after it was listed: the next look judges it. (Its monitor,
                    // gone from `procs` once it has exec'd `container-finish`, proves nothing
                    // either.)
                } else if !monitored && !self.unmonitored.contains(&c.id) {
                    self.fail(
                        "container state",
                        format!("{} ({}) is listed running without a monitor", c.name, c.id),
                    );
                }
            } else if c.auto_remove {
                self.fail(
                    "--rm container left",
                    format!(
                        "{} ({}) was started with --rm and is listed {}",
                        c.name, c.id, c.status
                    ),
                );
            }
        }
        for m in monitors {
            let id = m.argv.get(1).cloned().unwrap_or_default();
            if !containers.iter().any(|c| c.id == id && c.running) {
                self.fail(
                    "stray process",
                    format!(
                        "monitor {} of {id} runs, the container is not listed running: {:?}",
                        m.pid, m.argv
                    ),
                );
            }
        }
    }

    fn check_cgroups(&mut self, containers: &[Ctr]) {
        let running: BTreeSet<&str> = containers
            .iter()
            .filter(|c| c.running)
            .map(|c| c.id.as_str())
            .collect();
        for dir in common::hako_cgroup_dirs() {
            let name = dir.file_name().unwrap().to_string_lossy().into_owned();
            let Some(id) = name.strip_prefix("hako-") else {
                continue;
            };
            if !self.known.contains(id) {
                // Another suite's container.
                continue;
            }
            if frozen(&dir) {
                self.fail(
                    "frozen",
                    format!("cgroup {} is frozen; nothing here paused it", dir.display()),
                );
                thaw(&dir);
            }
            if !running.contains(id) {
                let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                self.fail(
                    "cgroup leak",
                    format!(
                        "{} is left, its container is not running (processes: {:?})",
                        dir.display(),
                        procs.split_whitespace().collect::<Vec<_>>()
                    ),
                );
            }
        }
    }

    /// Every network of the root: its endpoints, bridge ports, the root's nft table (bridges,
    /// subnets, forwarded ports) and its name server must hold only what running containers
    /// use, and the bridges of removed networks must be gone.
    fn check_network(&mut self, containers: &[Ctr]) {
        let Some(ids) = self.must("next command", &["network", "ls", "-q"]) else {
            return;
        };
        let ids: Vec<&str> = ids.split_whitespace().collect();
        let nets: Vec<serde_json::Value> = if ids.is_empty() {
            Vec::new()
        } else {
            let mut args = vec!["network", "inspect"];
            args.extend(ids.iter().copied());
            let Some(out) = self.must("next command", &args) else {
                return;
            };
            serde_json::from_str(&out).unwrap()
        };
        let running: BTreeSet<&str> = containers
            .iter()
            .filter(|c| c.running)
            .map(|c| c.id.as_str())
            .collect();
        let mut live_ips = BTreeSet::new();
        let mut bridges = BTreeSet::new();
        let mut subnets = BTreeSet::new();
        let mut busy_nets = BTreeSet::new();
        for net in &nets {
            let name = net["Name"].as_str().unwrap_or_default().to_string();
            let eps = net["Containers"].as_object().cloned().unwrap_or_default();
            for (id, ep) in &eps {
                if running.contains(id.as_str()) {
                    busy_nets.insert(name.clone());
                    if let Some(ip) = ep["IPv4Address"].as_str().and_then(|a| a.split('/').next()) {
                        live_ips.insert(ip.to_string());
                    }
                } else {
                    self.fail(
                        "network leak",
                        format!("network {name} still has an endpoint of {id}, which is not running: {ep}"),
                    );
                }
            }
            for cfg in net["IPAM"]["Config"].as_array().into_iter().flatten() {
                if let Some(sub) = cfg["Subnet"].as_str() {
                    subnets.insert(sub.to_string());
                }
            }
            // host and none have no bridge (and no addresses).
            if net["IPAM"]["Config"]
                .as_array()
                .is_none_or(|c| c.is_empty())
            {
                continue;
            }
            let bridge = common::bridge_of_doc(net);
            let bridge = bridge.as_str();
            bridges.insert(bridge.to_string());
            self.bridges.insert(bridge.to_string());
            let ports = entries(&Path::new("/sys/class/net").join(bridge).join("brif"));
            if ports.len() > eps.len() {
                self.fail(
                    "network leak",
                    format!(
                        "bridge {bridge} of {name} has ports {ports:?} for {} endpoints",
                        eps.len()
                    ),
                );
            }
        }
        // Bridges of this root's networks that were removed.
        let gone: Vec<String> = self
            .bridges
            .iter()
            .filter(|b| !bridges.contains(*b) && Path::new("/sys/class/net").join(b).exists())
            .cloned()
            .collect();
        for b in gone {
            self.fail(
                "network leak",
                format!("bridge {b} is left, its network is gone"),
            );
        }
        self.check_nft(&bridges, &subnets, &live_ips);
        // A name server exits within a second or so of its network's last lease going.
        let idle = |r: &Root| -> Vec<i32> {
            let servers = r.dns_servers();
            servers
                .into_iter()
                .filter(|pid| {
                    let net = std::fs::read(format!("/proc/{pid}/cmdline"))
                        .map(|c| {
                            c.split(|b| *b == 0)
                                .nth(2)
                                .map(|n| String::from_utf8_lossy(n).into_owned())
                                .unwrap_or_default()
                        })
                        .unwrap_or_default();
                    !busy_nets.contains(&net)
                })
                .collect()
        };
        if !common::wait_for(5, || idle(self.r).is_empty()) {
            let left = idle(self.r);
            self.fail(
                "stray process",
                format!("name servers {left:?} run for networks without a running container"),
            );
        }
    }

    /// The root's nft table lists only bridges and subnets of its networks, and forwards ports
    /// only to running containers.
    fn check_nft(
        &mut self,
        bridges: &BTreeSet<String>,
        subnets: &BTreeSet<String>,
        live_ips: &BTreeSet<String>,
    ) {
        // A private root's table is named from a hash of its path (netwire::config_for).
        let Ok(canonical) = std::fs::canonicalize(self.root()) else {
            return;
        };
        let table = format!(
            "hako_{}",
            &sha_hex(canonical.as_os_str().as_encoded_bytes())[..6]
        );
        let Ok(out) = Command::new("nft")
            .args(["-j", "list", "table", "inet", &table])
            .output()
        else {
            return;
        };
        if !out.status.success() {
            return;
        }
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        for item in doc["nftables"].as_array().into_iter().flatten() {
            if let Some(set) = item.get("set") {
                let name = set["name"].as_str().unwrap_or_default();
                for elem in set["elem"].as_array().into_iter().flatten() {
                    let stale = match name {
                        "bridges" | "internal" => {
                            !bridges.contains(elem.as_str().unwrap_or_default())
                        }
                        "nets" | "natnets" => {
                            let p = &elem["prefix"];
                            let sub =
                                format!("{}/{}", p["addr"].as_str().unwrap_or_default(), p["len"]);
                            !subnets.contains(&sub)
                        }
                        _ => false,
                    };
                    if stale {
                        self.fail(
                            "network leak",
                            format!("nft set {table}/{name} still holds {elem}, of no network"),
                        );
                    }
                }
            }
            let Some(map) = item.get("map") else { continue };
            let name = map["name"].as_str().unwrap_or_default();
            if !matches!(name, "pany" | "pip") {
                continue;
            }
            for elem in map["elem"].as_array().into_iter().flatten() {
                // [key, {"concat": [ip, port]}]
                let target = elem[1]["concat"][0].as_str().unwrap_or_default();
                if !live_ips.contains(target) {
                    self.fail(
                        "network leak",
                        format!("nft map {table}/{name} still forwards to {target}, no running container has it: {elem}"),
                    );
                }
            }
        }
    }

    /// Every listed image can be inspected (done by `images`) and has its config and layers.
    fn check_images(&mut self, images: &[Img]) {
        for img in images {
            let cfg = self.root().join("blobs/sha256").join(hex_of(&img.id));
            if !cfg.is_file() {
                self.fail(
                    "image broken",
                    format!("{} {:?}: config blob missing", img.id, img.tags),
                );
            }
            for chain in chain_ids(&img.diff_ids) {
                let dir = self.root().join("layers").join(hex_of(&chain)).join("diff");
                if !dir.is_dir() {
                    self.fail(
                        "image broken",
                        format!("{} {:?}: layer {chain} missing", img.id, img.tags),
                    );
                }
            }
        }
    }

    /// Blobs and layer directories no image references, with their sizes. What the store
    /// references is its own record: read it (read-only) with the query its `gc` uses.
    fn orphans(&self) -> Vec<(String, u64)> {
        let db = self.root().join("hako.db");
        let conn =
            rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let col = |sql: &str| -> BTreeSet<String> {
            let mut st = conn.prepare(sql).unwrap();
            st.query_map([], |r| r.get::<_, String>(0))
                .unwrap()
                .map(|d| hex_of(&d.unwrap()).to_string())
                .collect()
        };
        let blobs = col(
            "SELECT config_digest FROM images UNION SELECT manifest_digest FROM images
             UNION SELECT blob_digest FROM layers",
        );
        let layers = col("SELECT chain_id FROM layers");
        let mut out = Vec::new();
        for b in entries(&self.root().join("blobs/sha256")) {
            if !blobs.contains(&b) {
                let p = self.root().join("blobs/sha256").join(&b);
                out.push((format!("blobs/sha256/{b}"), tree_size(&p)));
            }
        }
        for l in entries(&self.root().join("layers")) {
            if !layers.contains(&l) {
                let p = self.root().join("layers").join(&l);
                out.push((format!("layers/{l}"), tree_size(&p)));
            }
        }
        out
    }

    /// Files no image references may stay after a kill only if `system df` shows them: more
    /// reclaimable image space than the listed unused images account for.
    fn check_orphans_visible(&mut self, containers: &[Ctr], images: &[Img]) {
        let orphans = self.orphans();
        if orphans.is_empty() {
            return;
        }
        let bytes: u64 = orphans.iter().map(|(_, s)| s).sum();
        let used: BTreeSet<&str> = containers.iter().map(|c| c.image.as_str()).collect();
        let explained: u64 = images
            .iter()
            .filter(|i| !used.contains(i.id.as_str()))
            .map(|i| i.size)
            .sum();
        let Some(df) = self.must("next command", &["system", "df", "--format", "{{json .}}"])
        else {
            return;
        };
        let shown: f64 = df
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| {
                !matches!(
                    v["Type"].as_str(),
                    Some("Containers" | "Local Volumes" | "Build Cache")
                )
            })
            .filter_map(|v| v["Reclaimable"].as_str().and_then(parse_size))
            .sum();
        // df rounds to three digits.
        if shown <= explained as f64 * 1.005 + 1000.0 {
            self.fail(
                "orphans invisible",
                format!(
                    "{bytes} bytes no image references stay after the next command, and `system df` does not count them (reclaimable {shown:.0} B, unused images {explained} B): {orphans:?}"
                ),
            );
        }
    }

    /// `image prune` collects what no image references.
    fn prune_and_check_orphans(&mut self) {
        if self.must("prune", &["image", "prune", "-f"]).is_none() {
            return;
        }
        let orphans = self.orphans();
        if !orphans.is_empty() {
            self.fail(
                "orphans after prune",
                format!("`image prune` left files no image references: {orphans:?}"),
            );
        }
    }

    /// `hako run --rm --network none IMAGE ARGS` must print `want`.
    fn runs(&mut self, image: &str, args: &[&str], want: &str) {
        let mut a = vec!["run", "--rm", "--network", "none", image];
        a.extend_from_slice(args);
        if let Some(out) = self.must("image broken", &a) {
            if out != want {
                self.fail(
                    "image broken",
                    format!("hako {a:?} printed {out:?}, want {want:?}"),
                );
            }
        }
    }

    /// Removes every container but those named in `keep`.
    fn remove_containers_but(&mut self, keep: &[&str]) {
        let Some(cs) = self.containers() else { return };
        let doomed: Vec<String> = cs
            .into_iter()
            .filter(|c| !keep.contains(&c.name.as_str()))
            .map(|c| c.id)
            .collect();
        if !doomed.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(doomed.iter().map(String::as_str));
            let _ = self.must("cleanup", &args);
        }
    }

    /// Fails the test with every inconsistency met, grouped by check.
    fn finish(self) {
        eprintln!(
            "faults/{}: {} trials, {} killed before they finished",
            self.command, self.trials_run, self.killed
        );
        if self.failures.is_empty() {
            return;
        }
        let mut msg = format!(
            "kill -9 of `{}` left inconsistencies (replay with HAKO_FAULT_SEED={}):\n",
            self.command, self.seed
        );
        for (check, list) in &self.failures {
            let trials: BTreeSet<&str> =
                list.iter().filter_map(|l| l.split(" — ").next()).collect();
            msg.push_str(&format!(
                "  [{check}] in {} of {} trials, e.g.:\n",
                trials.len(),
                self.trials_run
            ));
            for l in list.iter().take(3) {
                msg.push_str(&format!("    {l}\n"));
            }
        }
        panic!("{msg}");
    }
}

/// A Dockerfile whose image has three layers on busybox (one of 512 KiB), and a host file.
const DOCKERFILE: &str = "FROM busybox
RUN dd if=/dev/urandom of=/big bs=1k count=512 2>/dev/null
COPY f /f
RUN echo built > /built
";

/// Two independent stages, which the builder runs at the same time, and one from both.
const MULTI_STAGE: &str = "FROM busybox AS a
RUN dd if=/dev/urandom of=/a bs=1k count=256 2>/dev/null
FROM busybox AS b
RUN dd if=/dev/urandom of=/b bs=1k count=256 2>/dev/null
FROM busybox
COPY --from=a /a /a
COPY --from=b /b /b
RUN echo built > /built
";

/// Imports busybox, builds `bb2` (busybox + three layers) and saves it to `bb2.tar` in the
/// campaign's scratch directory. Returns the build context.
fn fixture(c: &mut Campaign<'_>) -> PathBuf {
    c.trial = "setup".into();
    let tar = images_dir().join("busybox.tar");
    c.ok(&["import", tar.to_str().unwrap(), "busybox"]);
    let ctx = c.scratch.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.join("f"), "file\n").unwrap();
    c.ok(&["build", "-q", "-t", "bb2", ctx.to_str().unwrap()]);
    let archive = c.scratch.path().join("bb2.tar");
    c.ok(&["save", "-o", archive.to_str().unwrap(), "bb2"]);
    ctx
}

#[test]
fn kill_9_pull() {
    let reg = Registry::start();
    let r = Root::new();
    let mut c = Campaign::new(&r, "pull");
    fixture(&mut c);
    let bb2 = reg.name("bb2");
    let bb = reg.name("bb");
    c.ok(&["tag", "busybox", &bb]);
    c.ok(&["tag", "bb2", &bb2]);
    c.ok(&["push", &bb]);
    c.ok(&["push", &bb2]);
    // From here the root starts each trial without images.
    let empty = |c: &mut Campaign<'_>| {
        c.remove_containers_but(&[]);
        let ids = c.ok(&["images", "-a", "-q"]);
        if !ids.trim().is_empty() {
            c.ok(&["image", "prune", "-a", "-f"]);
        }
    };
    // Half the trials pull onto a store that has the base layer already.
    let prepare = |c: &mut Campaign<'_>, with_base: bool| {
        empty(c);
        if with_base {
            c.ok(&["pull", "-q", &bb]);
        }
    };
    let n = trials(16);
    let mut plan = Vec::new();
    for with_base in [false, true] {
        let measured = c.measure(&["pull", "-q", &bb2], &mut |c| prepare(c, with_base));
        for d in c.delays(measured, n / 2) {
            plan.push((with_base, d));
        }
    }
    c.rng.shuffle(&mut plan);
    for (i, (with_base, delay)) in plan.into_iter().enumerate() {
        prepare(&mut c, with_base);
        c.trial = format!("trial {i}: pull (base present: {with_base}) killed after {delay:?}");
        let ended = c.kill_after(&["pull", "-q", &bb2], delay);
        c.trial.push_str(&format!(" ({ended:?})"));
        let (_, images) = c.after_kill();
        if images
            .iter()
            .any(|i| i.tags.iter().any(|t| t.contains("/bb2")))
        {
            c.runs(&bb2, &["cat", "/built"], "built\n");
        }
        if c.must("rerun", &["pull", "-q", &bb2]).is_some() {
            c.runs(&bb2, &["cat", "/built"], "built\n");
        }
        c.prune_and_check_orphans();
    }
    drop(reg);
    c.finish();
}

#[test]
fn kill_9_load() {
    let r = Root::new();
    let mut c = Campaign::new(&r, "load");
    fixture(&mut c);
    let archive = c.scratch.path().join("bb2.tar");
    let archive = archive.to_str().unwrap().to_string();
    // busybox stays, pinned by a container, so some loads find their base layer present.
    c.ok(&["create", "--name", "keep", "busybox", "true"]);
    let reset = |c: &mut Campaign<'_>| {
        c.remove_containers_but(&["keep"]);
        c.ok(&["image", "prune", "-a", "-f"]);
    };
    let measured = c.measure(&["load", "-q", "-i", &archive], &mut |c| reset(c));
    let n = trials(14);
    for (i, delay) in c.delays(measured, n).into_iter().enumerate() {
        reset(&mut c);
        c.trial = format!("trial {i}: load killed after {delay:?}");
        let ended = c.kill_after(&["load", "-q", "-i", &archive], delay);
        c.trial.push_str(&format!(" ({ended:?})"));
        let (_, images) = c.after_kill();
        if images
            .iter()
            .any(|i| i.tags.iter().any(|t| t == "bb2:latest"))
        {
            c.runs("bb2", &["cat", "/built"], "built\n");
        }
        if c.must("rerun", &["load", "-q", "-i", &archive]).is_some() {
            c.runs("bb2", &["cat", "/built"], "built\n");
        }
        c.prune_and_check_orphans();
    }
    c.finish();
}

/// `build`: uncached, with its first steps cached, and with stages built in parallel (in
/// forked children).
#[test]
fn kill_9_build() {
    let r = Root::new();
    let mut c = Campaign::new(&r, "build");
    let ctx = fixture(&mut c);
    let ctx = ctx.to_str().unwrap().to_string();
    c.ok(&["create", "--name", "keep", "busybox", "true"]);
    // Two stages built at once (one in a forked child), then a third from both.
    let multi = c.scratch.path().join("multi");
    std::fs::create_dir_all(&multi).unwrap();
    std::fs::write(multi.join("Dockerfile"), MULTI_STAGE).unwrap();
    let multi = multi.to_str().unwrap().to_string();
    let reset = |c: &mut Campaign<'_>| {
        c.remove_containers_but(&["keep"]);
        let _ = c.exec(&["rmi", "bb2"]);
        let _ = c.exec(&["rmi", "bb3"]);
        c.ok(&["builder", "prune", "-a", "-f"]);
        c.ok(&["image", "prune", "-a", "-f"]);
    };
    // (label, args, tag, warm: a build of an older context first, so the first steps are cached)
    let variants: Vec<(&str, Vec<&str>, &str, bool)> = vec![
        (
            "build",
            vec!["build", "-q", "--no-cache", "-t", "bb2", &ctx],
            "bb2",
            false,
        ),
        (
            "build (cache warm)",
            vec!["build", "-q", "-t", "bb2", &ctx],
            "bb2",
            true,
        ),
        (
            "multi-stage build",
            vec!["build", "-q", "--no-cache", "-t", "bb3", &multi],
            "bb3",
            false,
        ),
    ];
    let warm_up = |c: &mut Campaign<'_>, i: usize| {
        std::fs::write(Path::new(&ctx).join("f"), "file\n").unwrap();
        c.ok(&["build", "-q", "-t", "bb2", &ctx]);
        c.ok(&["rmi", "bb2"]);
        std::fs::write(Path::new(&ctx).join("f"), format!("file {i}\n")).unwrap();
    };
    let n = trials(15);
    let mut plan = Vec::new();
    for (label, args, tag, warm) in &variants {
        let measured = c.measure(args, &mut |c| {
            reset(c);
            if *warm {
                warm_up(c, 0);
            }
        });
        for d in c.delays(measured, n / variants.len()) {
            plan.push((*label, args.clone(), *tag, *warm, d));
        }
    }
    c.rng.shuffle(&mut plan);
    for (i, (label, args, tag, warm, delay)) in plan.into_iter().enumerate() {
        reset(&mut c);
        if warm {
            warm_up(&mut c, i + 1);
        }
        c.trial = format!("trial {i}: {label} killed after {delay:?}");
        let ended = c.kill_after(&args, delay);
        c.trial.push_str(&format!(" ({ended:?})"));
        let (containers, images) = c.after_kill();
        // The build's step containers are --rm; only `keep` may be left.
        for ctr in containers.iter().filter(|ctr| ctr.name != "keep") {
            c.fail(
                "build container left",
                format!("{} ({}) is listed {}", ctr.name, ctr.id, ctr.status),
            );
        }
        let tagged = format!("{tag}:latest");
        if images.iter().any(|i| i.tags.contains(&tagged)) {
            c.runs(tag, &["cat", "/built"], "built\n");
        }
        if c.must("rerun", &args).is_some() {
            c.runs(tag, &["cat", "/built"], "built\n");
        }
        let _ = c.must("builder prune", &["builder", "prune", "-a", "-f"]);
        c.prune_and_check_orphans();
    }
    std::fs::write(Path::new(&ctx).join("f"), "file\n").unwrap();
    c.finish();
}

/// Foreground `run`, with and without `--rm`, bridged with a published port or without a
/// network, and with an anonymous volume (which `--rm` removes).
#[test]
fn kill_9_run_foreground() {
    let r = Root::new();
    let mut c = Campaign::new(&r, "run");
    c.trial = "setup".into();
    let tar = images_dir().join("busybox.tar");
    c.ok(&["import", tar.to_str().unwrap(), "busybox"]);
    let port = hako_testkit::free_port().to_string();
    let publish = format!("{port}:80");
    let variants: Vec<(&str, Vec<&str>)> = vec![
        (
            "run --rm -p",
            vec![
                "run",
                "--rm",
                "-p",
                &publish,
                "busybox",
                "sh",
                "-c",
                "sleep 0.1",
            ],
        ),
        (
            "run (kept)",
            vec!["run", "busybox", "sh", "-c", "sleep 0.1"],
        ),
        (
            "run --rm --network none",
            vec!["run", "--rm", "--network", "none", "busybox", "true"],
        ),
        (
            "run --rm with an anonymous volume",
            vec![
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                "/data",
                "busybox",
                "true",
            ],
        ),
    ];
    let reset = |c: &mut Campaign<'_>| c.remove_containers_but(&[]);
    let n = trials(24);
    let mut plan = Vec::new();
    for (k, (label, args)) in variants.iter().enumerate() {
        let measured = c.measure(args, &mut |c| reset(c));
        let per = n / variants.len() + usize::from(k < n % variants.len());
        for d in c.delays(measured, per) {
            plan.push((*label, args.clone(), d));
        }
    }
    c.rng.shuffle(&mut plan);
    for (i, (label, args, delay)) in plan.into_iter().enumerate() {
        reset(&mut c);
        c.trial = format!("trial {i}: {label} killed after {delay:?}");
        let ended = c.kill_after(&args, delay);
        c.trial.push_str(&format!(" ({ended:?})"));
        let (containers, _) = c.after_kill();
        c.check_no_dangling_volumes(&containers);
        let _ = c.must("rerun", &args);
        let (containers, _) = c.check();
        c.check_no_dangling_volumes(&containers);
    }
    reset(&mut c);
    c.finish();
}

/// `run -d`: SIGKILL to the `hako run -d` process while it starts the container, and,
/// separately, to the container's monitor while the container runs or while the monitor
/// records its exit.
#[test]
fn kill_9_run_detached() {
    let r = Root::new();
    let mut c = Campaign::new(&r, "run -d");
    c.trial = "setup".into();
    let tar = images_dir().join("busybox.tar");
    c.ok(&["import", tar.to_str().unwrap(), "busybox"]);
    // A user-defined network has a name server, which the first container starts.
    c.ok(&["network", "create", "fnet"]);
    let port = hako_testkit::free_port().to_string();
    let publish = format!("{port}:80");
    let reset = |c: &mut Campaign<'_>| c.remove_containers_but(&[]);
    let n = trials(30);

    // The starting `hako run -d`.
    let starts: Vec<(&str, Vec<&str>)> = vec![
        (
            "run -d --rm",
            vec!["run", "-d", "--rm", "busybox", "sh", "-c", "sleep 0.3"],
        ),
        (
            "run -d",
            vec!["run", "-d", "busybox", "sh", "-c", "sleep 0.3"],
        ),
        (
            "run -d --rm -p on a user network",
            vec![
                "run",
                "-d",
                "--rm",
                "--network",
                "fnet",
                "-p",
                &publish,
                "busybox",
                "sh",
                "-c",
                "sleep 0.3",
            ],
        ),
    ];
    let mut plan = Vec::new();
    for (label, args) in &starts {
        let measured = c.measure(args, &mut |c| {
            c.settle_containers();
            reset(c)
        });
        for d in c.delays(measured, n / 6) {
            plan.push((*label, args.clone(), d));
        }
    }
    c.rng.shuffle(&mut plan);
    for (i, (label, args, delay)) in plan.into_iter().enumerate() {
        reset(&mut c);
        c.trial = format!("trial {i}: {label} killed after {delay:?}");
        let ended = c.kill_after(&args, delay);
        c.trial.push_str(&format!(" ({ended:?})"));
        c.after_kill();
        // The killed command's container may run on with the port: let it finish first.
        c.settle_containers();
        let _ = c.must("rerun", &args);
        // Let the re-run's container finish, then everything must be tidy again.
        c.settle_containers();
        c.check();
    }

    // The monitor: its life runs from `run -d` returning to the end of `container-finish`.
    let monitored: Vec<(&str, Vec<&str>)> = vec![
        (
            "monitor of run -d --rm",
            vec!["run", "-d", "--rm", "busybox", "sh", "-c", "sleep 0.2"],
        ),
        (
            "monitor of run -d",
            vec!["run", "-d", "busybox", "sh", "-c", "sleep 0.2"],
        ),
        (
            "monitor of run -d on a user network",
            vec![
                "run",
                "-d",
                "--network",
                "fnet",
                "busybox",
                "sh",
                "-c",
                "sleep 0.2",
            ],
        ),
    ];
    let mut plan = Vec::new();
    for (label, args) in &monitored {
        let mut lives = Vec::new();
        for _ in 0..3 {
            reset(&mut c);
            let (_, life) = c.start_monitored(args);
            lives.push(life.unwrap_or_default());
        }
        lives.sort();
        eprintln!("faults/run -d: a monitor of {args:?} lives {:?}", lives[1]);
        for d in c.delays(lives[1], n / 6) {
            plan.push((*label, args.clone(), d));
        }
    }
    c.rng.shuffle(&mut plan);
    for (i, (label, args, delay)) in plan.into_iter().enumerate() {
        reset(&mut c);
        c.trial = format!("trial {i}: {label}, monitor killed after {delay:?}");
        c.trials_run += 1;
        let Some(id) = c.start_detached(&args) else {
            continue;
        };
        let Some(monitor) = c.monitor_of(&id) else {
            // The container has exited already, and its monitor is finishing it.
            c.trial.push_str(" (exited before the kill)");
            c.after_kill();
            continue;
        };
        let t = Instant::now();
        if let Some(left) = delay.checked_sub(t.elapsed()) {
            std::thread::sleep(left);
        }
        if pid_alive(monitor) {
            // The monitor of a container this test started, by pid.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(monitor),
                nix::sys::signal::Signal::SIGKILL,
            );
            c.killed += 1;
            c.unmonitored.insert(id.clone());
            c.trial.push_str(" (killed)");
        } else {
            c.trial.push_str(" (had finished)");
        }
        c.after_kill();
        let _ = c.must("rerun", &args);
        c.settle_containers();
        c.check();
    }
    reset(&mut c);
    c.finish();
}

impl Campaign<'_> {
    /// `run -d ARGS`; the new container's ID.
    fn start_detached(&mut self, args: &[&str]) -> Option<String> {
        let id = self.must("rerun", args)?.trim().to_string();
        self.known.insert(id.clone());
        Some(id)
    }

    /// The pid of the monitor of container `id`: its init's parent (which may not have
    /// exec'd `hako-monitor` yet when `run -d` returns).
    fn monitor_of(&mut self, id: &str) -> Option<i32> {
        // Gone already (a quick --rm container) is no monitor either.
        let out = self.exec(&["inspect", "--format", "{{.State.Pid}}", id])?;
        let pid: i32 = out.stdout.trim().parse().ok().filter(|p| *p > 0)?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
        ppid.parse().ok()
    }

    /// Starts `run -d ARGS` and measures how long its monitor lives after `run -d` returned.
    fn start_monitored(&mut self, args: &[&str]) -> (Option<String>, Option<Duration>) {
        let Some(id) = self.start_detached(args) else {
            return (None, None);
        };
        let t = Instant::now();
        let Some(pid) = self.monitor_of(&id) else {
            return (Some(id), Some(t.elapsed()));
        };
        while pid_alive(pid) && t.elapsed() < SETTLE_TIMEOUT {
            std::thread::sleep(Duration::from_millis(1));
        }
        (Some(id), Some(t.elapsed()))
    }

    /// Waits until no container of the root is running (the trials' containers are short).
    fn settle_containers(&mut self) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while Instant::now() < deadline {
            if processes_of(self.root()).is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.settle();
    }
}

/// `rm -f` of a running container with a published port and an anonymous volume, on the default
/// bridge or on a user-defined network (whose name server then stops), and `rm -v` of a stopped
/// one.
#[test]
fn kill_9_rm() {
    let r = Root::new();
    let mut c = Campaign::new(&r, "rm");
    c.trial = "setup".into();
    let tar = images_dir().join("busybox.tar");
    c.ok(&["import", tar.to_str().unwrap(), "busybox"]);
    let port = hako_testkit::free_port().to_string();
    let publish = format!("{port}:80");
    c.ok(&["network", "create", "fnet"]);
    // (running, network)
    let volumes = |c: &mut Campaign<'_>| -> BTreeSet<String> {
        let out = c.ok(&["volume", "ls", "-q"]);
        out.split_whitespace().map(String::from).collect()
    };
    // The victim's own volumes: a volume an earlier trial leaked is reported there.
    let victim = |c: &mut Campaign<'_>, (running, net): (bool, &str)| {
        c.remove_containers_but(&[]);
        let before = volumes(c);
        if running {
            let id = c.ok(&[
                "run",
                "-d",
                "--name",
                "victim",
                "--network",
                net,
                "-p",
                &publish,
                "-v",
                "/data",
                "busybox",
                "sleep",
                "1000",
            ]);
            c.known.insert(id.trim().to_string());
        } else {
            c.ok(&["run", "--name", "victim", "-v", "/data", "busybox", "true"]);
        }
        volumes(c).difference(&before).cloned().collect::<Vec<_>>()
    };
    let variants: Vec<(&str, (bool, &str), Vec<&str>)> = vec![
        (
            "rm -f -v of a running container",
            (true, "bridge"),
            vec!["rm", "-f", "-v", "victim"],
        ),
        (
            "rm -f -v of a running container on a user network",
            (true, "fnet"),
            vec!["rm", "-f", "-v", "victim"],
        ),
        (
            "rm -v of a stopped container",
            (false, ""),
            vec!["rm", "-v", "victim"],
        ),
    ];
    let n = trials(18);
    let mut plan = Vec::new();
    for (label, running, args) in &variants {
        let measured = c.measure(args, &mut |c| {
            victim(c, *running);
        });
        for d in c.delays(measured, n / variants.len()) {
            plan.push((*label, *running, args.clone(), d));
        }
    }
    c.rng.shuffle(&mut plan);
    for (i, (label, running, args, delay)) in plan.into_iter().enumerate() {
        let own = victim(&mut c, running);
        c.trial = format!("trial {i}: {label} killed after {delay:?}");
        let ended = c.kill_after(&args, delay);
        c.trial.push_str(&format!(" ({ended:?})"));
        let (containers, _) = c.after_kill();
        let listed = containers.iter().any(|ctr| ctr.name == "victim");
        let left = c.ok(&["volume", "ls", "-q"]);
        if !listed {
            // Removed with -v: its anonymous volume goes with it.
            for v in &own {
                if left.split_whitespace().any(|l| l == v) {
                    c.fail(
                        "volume leak",
                        format!("volume {v} of the removed container is left"),
                    );
                }
            }
        }
        match c.exec(&args) {
            Some(o) if o.code == 0 => {}
            Some(o) if !listed && o.stderr.contains("No such container") => {}
            Some(o) => c.fail(
                "rerun",
                format!("hako {args:?} exited {}: {}", o.code, o.stderr.trim()),
            ),
            None => {}
        }
        let (containers, _) = c.check();
        if containers.iter().any(|ctr| ctr.name == "victim") {
            c.fail("rerun", "victim is still listed after the re-run");
        }
        let left = c.ok(&["volume", "ls", "-q"]);
        for v in &own {
            if left.split_whitespace().any(|l| l == v) {
                c.fail(
                    "volume leak",
                    format!("volume {v} of the removed container is left after the re-run"),
                );
            }
        }
    }
    c.finish();
}

/// `rmi` by tag (the last one, and one of two), `rmi -f` by ID of an image with two tags, and
/// `rmi -f` of an image a container uses (which only untags it).
#[test]
fn kill_9_rmi() {
    let r = Root::new();
    let mut c = Campaign::new(&r, "rmi");
    fixture(&mut c);
    let archive = c.scratch.path().join("bb2.tar");
    let archive = archive.to_str().unwrap().to_string();
    c.ok(&["create", "--name", "keep", "busybox", "true"]);
    let id = c
        .ok(&["images", "-q", "--no-trunc", "bb2"])
        .trim()
        .to_string();
    // A tag `user` stands for a container of the image rather than a tag.
    let reset = |c: &mut Campaign<'_>, tags: &[&str]| {
        c.remove_containers_but(&["keep"]);
        c.ok(&["image", "prune", "-a", "-f"]);
        c.ok(&["load", "-q", "-i", &archive]);
        for t in tags {
            if *t == "user" {
                c.ok(&["create", "--name", "user", "bb2", "true"]);
            } else {
                c.ok(&["tag", "bb2", t]);
            }
        }
    };
    let variants: Vec<(&str, Vec<&str>, Vec<&str>)> = vec![
        ("rmi of the last tag", vec![], vec!["rmi", "bb2"]),
        (
            "rmi of one of two tags",
            vec!["bb2:two"],
            vec!["rmi", "bb2"],
        ),
        ("rmi -f by ID", vec!["other:two"], vec!["rmi", "-f", &id]),
        (
            "rmi -f of an image in use",
            vec!["user"],
            vec!["rmi", "-f", "bb2"],
        ),
    ];
    let n = trials(24);
    let mut plan = Vec::new();
    for (label, tags, args) in &variants {
        let measured = c.measure(args, &mut |c| reset(c, tags));
        for d in c.delays(measured, n / variants.len()) {
            plan.push((*label, tags.clone(), args.clone(), d));
        }
    }
    c.rng.shuffle(&mut plan);
    for (i, (label, tags, args, delay)) in plan.into_iter().enumerate() {
        reset(&mut c, &tags);
        c.trial = format!("trial {i}: {label} killed after {delay:?}");
        let ended = c.kill_after(&args, delay);
        c.trial.push_str(&format!(" ({ended:?})"));
        let (_, images) = c.after_kill();
        let listed = images.iter().any(|i| i.id == id);
        if listed {
            c.runs(&id, &["cat", "/built"], "built\n");
        }
        match c.exec(&args) {
            Some(o) if o.code == 0 => {}
            Some(o) if o.stderr.contains("No such image") => {}
            Some(o) => c.fail(
                "rerun",
                format!("hako {args:?} exited {}: {}", o.code, o.stderr.trim()),
            ),
            None => {}
        }
        c.check();
        c.prune_and_check_orphans();
    }
    c.finish();
}

/// `image prune -a`, `container prune`, `system prune -a` (containers, images, an unused
/// network, the build cache) and `network prune`.
#[test]
fn kill_9_prune() {
    let r = Root::new();
    let mut c = Campaign::new(&r, "prune");
    fixture(&mut c);
    let archive = c.scratch.path().join("bb2.tar");
    let archive = archive.to_str().unwrap().to_string();
    c.ok(&["create", "--name", "keep", "busybox", "true"]);
    let reset = |c: &mut Campaign<'_>| {
        c.remove_containers_but(&["keep"]);
        // `system prune` removes `keep` and then busybox too.
        if c.exec(&["inspect", "keep"]).is_some_and(|o| o.code != 0) {
            let tar = images_dir().join("busybox.tar");
            c.ok(&["import", tar.to_str().unwrap(), "busybox"]);
            c.ok(&["create", "--name", "keep", "busybox", "true"]);
        }
        c.ok(&["image", "prune", "-a", "-f"]);
        c.ok(&["load", "-q", "-i", &archive]);
        // An unused network for `system prune` and `network prune`.
        if c.exec(&["network", "inspect", "pnet"])
            .is_some_and(|o| o.code != 0)
        {
            c.ok(&["network", "create", "pnet"]);
        }
        for _ in 0..3 {
            let id = c.ok(&["run", "-d", "bb2", "true"]);
            c.known.insert(id.trim().to_string());
        }
        c.settle_containers();
    };
    let variants: Vec<(&str, Vec<&str>)> = vec![
        ("image prune -a", vec!["image", "prune", "-a", "-f"]),
        ("container prune", vec!["container", "prune", "-f"]),
        ("system prune -a", vec!["system", "prune", "-a", "-f"]),
        ("network prune", vec!["network", "prune", "-f"]),
    ];
    let n = trials(20);
    let mut plan = Vec::new();
    for (label, args) in &variants {
        let measured = c.measure(args, &mut |c| reset(c));
        for d in c.delays(measured, n / variants.len()) {
            plan.push((*label, args.clone(), d));
        }
    }
    c.rng.shuffle(&mut plan);
    for (i, (label, args, delay)) in plan.into_iter().enumerate() {
        reset(&mut c);
        c.trial = format!("trial {i}: {label} killed after {delay:?}");
        let ended = c.kill_after(&args, delay);
        c.trial.push_str(&format!(" ({ended:?})"));
        let (_, images) = c.after_kill();
        if images
            .iter()
            .any(|i| i.tags.iter().any(|t| t == "bb2:latest"))
        {
            c.runs("bb2", &["cat", "/built"], "built\n");
        }
        let _ = c.must("rerun", &args);
        c.check();
        c.prune_and_check_orphans();
    }
    c.finish();
}

/// `cp` into and out of a running container (which it freezes meanwhile) and into a stopped
/// one (whose filesystem it mounts in a namespace of its own).
#[test]
fn kill_9_cp() {
    let r = Root::new();
    let mut c = Campaign::new(&r, "cp");
    c.trial = "setup".into();
    let tar = images_dir().join("busybox.tar");
    c.ok(&["import", tar.to_str().unwrap(), "busybox"]);
    let id = c.ok(&["run", "-d", "--name", "cpt", "busybox", "sleep", "100000"]);
    c.known.insert(id.trim().to_string());
    let id = c.ok(&["run", "--name", "cps", "busybox", "true"]);
    c.known.insert(id.trim().to_string());
    // Big enough that the copy itself takes a while.
    let src = c.scratch.path().join("payload");
    let mut data = vec![0u8; 4 << 20];
    c.rng.fill(&mut data);
    std::fs::write(&src, &data).unwrap();
    let src = src.to_str().unwrap().to_string();
    let out = c.scratch.path().join("out");
    let out_s = out.to_str().unwrap().to_string();
    // (label, args, where the copy lands: a container path or the host file `out`)
    let variants: Vec<(&str, Vec<&str>, Option<&str>)> = vec![
        (
            "cp into a running container",
            vec!["cp", &src, "cpt:/tmp/payload"],
            Some("cpt:/tmp/payload"),
        ),
        (
            "cp out of a running container",
            vec!["cp", "cpt:/bin/busybox", &out_s],
            None,
        ),
        (
            "cp into a stopped container",
            vec!["cp", &src, "cps:/tmp/payload"],
            Some("cps:/tmp/payload"),
        ),
    ];
    let reference = c.scratch.path().join("busybox");
    c.ok(&["cp", "cpt:/bin/busybox", reference.to_str().unwrap()]);
    let busybox = std::fs::read(&reference).unwrap();
    let reset = |_: &mut Campaign<'_>| {
        let _ = std::fs::remove_file(&out);
    };
    let n = trials(24);
    let mut plan = Vec::new();
    for (label, args, landing) in &variants {
        let measured = c.measure(args, &mut |c| reset(c));
        for d in c.delays(measured, n / variants.len()) {
            plan.push((*label, args.clone(), *landing, d));
        }
    }
    c.rng.shuffle(&mut plan);
    for (i, (label, args, landing, delay)) in plan.into_iter().enumerate() {
        reset(&mut c);
        c.trial = format!("trial {i}: {label} killed after {delay:?}");
        let ended = c.kill_after(&args, delay);
        c.trial.push_str(&format!(" ({ended:?})"));
        let (containers, _) = c.after_kill();
        if !containers
            .iter()
            .any(|ctr| ctr.name == "cpt" && ctr.running)
        {
            c.fail("container state", "cpt is no longer running");
        }
        // A container left frozen does not run even `true`.
        let _ = c.must("frozen", &["exec", "cpt", "true"]);
        if c.must("rerun", &args).is_some() {
            // What was copied is whole.
            let whole = match landing {
                Some(inside) => {
                    let back = c.scratch.path().join("back");
                    let _ = std::fs::remove_file(&back);
                    let _ = c.must("rerun", &["cp", inside, back.to_str().unwrap()]);
                    std::fs::read(&back).is_ok_and(|b| b == data)
                }
                None => std::fs::read(&out).is_ok_and(|b| b == busybox),
            };
            if !whole {
                c.fail(
                    "rerun",
                    format!("hako {args:?} did not copy the whole file"),
                );
            }
        }
        c.check();
    }
    c.finish();
}

/// A regression the build campaign found: kill -9 of a build stops the stages it builds in
/// forked children at once. They got SIGTERM, which their step relayed to its command, and
/// a command that ignores it (as PID 1 does without a handler) ran on for the stop timeout,
/// after which the stage went on unobserved.
#[test]
fn a_killed_build_stops_its_parallel_stages_at_once() {
    let r = Root::with_busybox();
    let ctx = tempfile::Builder::new()
        .prefix("hako-faults-ctx-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox AS a\nRUN sleep 30\nFROM busybox AS b\nRUN sleep 30\n\
         FROM busybox\nCOPY --from=a /etc/hostname /a\nCOPY --from=b /etc/hostname /b\n",
    )
    .unwrap();
    let mut build = r
        .cmd(&["build", "-q", "--no-cache", ctx.path().to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = || r.ok(&["ps", "-q"]).lines().count();
    assert!(
        common::wait_for(30, || running() == 2),
        "both stages run a step"
    );
    // The build this test started, by pid.
    build.kill().unwrap();
    build.wait().unwrap();
    let busy = || {
        processes_of(r.path())
            .into_iter()
            .filter(|p| p.is("hako"))
            .map(|p| p.argv)
            .collect::<Vec<_>>()
    };
    assert!(
        common::wait_for(3, || running() == 0 && busy().is_empty()),
        "steps still running: {}, hako processes: {:?}",
        running(),
        busy()
    );
    assert_eq!(
        r.ok(&["ps", "-aq"]),
        "",
        "the steps' containers are removed"
    );
}

/// The children of process `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A regression the `run -d` campaign found: kill -9 of `run -d` while its forked child (the
/// future monitor) wired the container's network. That child used SQLite in a process forked
/// from one with the database open: SQLite's per-process lock records, inherited, said it held
/// the shared-memory index's locks while the kernel had given them to the parent alone. With
/// the parent gone, the next process to open or close the database took itself for the last
/// one: it reset the index (the next commands failed with "locking protocol" after ten
/// seconds) or deleted the WAL the child was still writing, whose lease then never reached the
/// database while its veth and port rule stayed in the kernel. Here the test holds the
/// database's write lock so that `run -d` is killed, deterministically, while the network is
/// being attached.
#[test]
fn run_d_killed_while_it_wires_the_network_leaves_a_working_database() {
    let r = Root::with_busybox();
    let mut c = Campaign::new(&r, "run -d killed while it wires the network");
    c.trial = "setup".into();
    c.ok(&["network", "create", "fnet"]);
    let port = hako_testkit::free_port().to_string();
    let publish = format!("{port}:80");
    let args = [
        "run",
        "-d",
        "--rm",
        "--network",
        "fnet",
        "-p",
        &publish,
        "busybox",
        "sleep",
        "2",
    ];
    let mut attempts = 0;
    loop {
        attempts += 1;
        assert!(
            attempts <= 10,
            "never caught run -d before it wired the network"
        );
        c.trial = format!("attempt {attempts}");
        let mut run = r
            .cmd(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The fork comes after the container is recorded; the network is wired later, from
        // the runtime's start hook.
        let forked = common::wait_for(10, || !children_of(run.id()).is_empty());
        let db = rusqlite::Connection::open(r.path().join("hako.db")).unwrap();
        db.busy_timeout(Duration::from_secs(10)).unwrap();
        db.execute_batch("BEGIN IMMEDIATE").unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let waiting = forked && run.try_wait().unwrap().is_none();
        // The `run -d` this test started, by pid.
        run.kill().unwrap();
        run.wait().unwrap();
        db.execute_batch("ROLLBACK").unwrap();
        drop(db);
        if waiting {
            break;
        }
        // It had started the container before the lock was taken: again.
        c.settle_containers();
        c.remove_containers_but(&[]);
    }
    c.trials_run = 1;
    c.killed = 1;
    c.trial = format!("killed while wiring (attempt {attempts})");
    c.after_kill();
    c.settle_containers();
    c.check();
    // The port is free again.
    let again: Vec<&str> = args
        .iter()
        .map(|a| if *a == "2" { "0" } else { a })
        .collect();
    c.must("rerun", &again);
    c.settle_containers();
    c.check();
    c.finish();
}

/// The checks find what they look for: each fault planted by hand is reported, and nothing
/// else.
#[test]
fn the_checks_catch_planted_faults() {
    let r = Root::new();
    let mut c = Campaign::new(&r, "planted");
    c.trial = "setup".into();
    let tar = images_dir().join("busybox.tar");
    c.ok(&["import", tar.to_str().unwrap(), "busybox"]);
    let port = hako_testkit::free_port().to_string();
    let publish = format!("{port}:80");
    let web = c.ok(&[
        "run", "-d", "--name", "web", "-p", &publish, "busybox", "sleep", "1000",
    ]);
    let web = web.trim().to_string();
    c.known.insert(web.clone());
    c.trial = "clean root".into();
    c.check();
    assert!(
        c.failures.is_empty(),
        "a clean root passes: {:?}",
        c.failures
    );

    c.trial = "planted".into();
    // A frozen container (the checker thaws it).
    let freezer = common::hako_cgroup_dirs()
        .into_iter()
        .find(|d| d.ends_with(format!("hako-{web}")) && d.join("freezer.state").exists())
        .expect("the container's freezer cgroup");
    std::fs::write(freezer.join("freezer.state"), "FROZEN").unwrap();
    // A cgroup of a container that does not exist (a random ID: other roots on the host run
    // this test too, and one that failed half-way may have left its ghost).
    let ghost: String = (0..64)
        .map(|_| char::from_digit(c.rng.u32(0..16), 16).unwrap())
        .collect();
    c.known.insert(ghost.clone());
    let leaked = freezer.with_file_name(format!("hako-{ghost}"));
    std::fs::create_dir(&leaked).unwrap();
    // A port forwarded to an address no container has.
    let bridge: serde_json::Value =
        serde_json::from_str(&c.ok(&["network", "inspect", "bridge"])).unwrap();
    let table = bridge[0]["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap()
        .replacen("hako", "hako_", 1);
    let elem = "{ tcp . 1 : 192.0.2.1 . 80 }";
    let nft = |verb: &str| {
        let st = Command::new("nft")
            .args([verb, "element", "inet", &table, "pany", elem])
            .status()
            .unwrap();
        assert!(st.success(), "nft {verb} element");
    };
    nft("add");
    // A mount under the root.
    let mnt = r.path().join("planted-mount");
    std::fs::create_dir(&mnt).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &mnt,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    // A layer of a listed image gone.
    let img: serde_json::Value =
        serde_json::from_str(&c.ok(&["image", "inspect", "busybox"])).unwrap();
    let diff: Vec<String> = vec![img[0]["RootFS"]["Layers"][0].as_str().unwrap().into()];
    let layer = r.path().join("layers").join(hex_of(&chain_ids(&diff)[0]));
    let aside = r.path().join("layer-aside");
    std::fs::rename(&layer, &aside).unwrap();

    c.check();
    // A temporary file of a dead process, and a blob nothing references (planted after the
    // commands, which would sweep the first).
    let tmp = r.path().join("tmp/2147483646-planted");
    std::fs::write(&tmp, "x").unwrap();
    c.check_tmp();
    // A volume no container uses, where the campaign expects none. (The commands sweep the
    // planted tmp/ file.)
    c.ok(&["volume", "create", "planted"]);
    let (containers, _) = c.check();
    c.check_no_dangling_volumes(&containers);
    c.ok(&["volume", "rm", "planted"]);
    let blob = r.path().join("blobs/sha256").join("0".repeat(64));
    std::fs::write(&blob, "x").unwrap();
    let orphans = c.orphans();

    // Put everything back before the root's own leak checks.
    nft("delete");
    std::fs::remove_dir(&leaked).unwrap();
    std::fs::rename(&aside, &layer).unwrap();
    let _ = std::fs::remove_file(&tmp);
    std::fs::remove_file(&blob).unwrap();
    let _ = std::fs::remove_dir(&mnt);

    assert_eq!(
        orphans,
        vec![(format!("blobs/sha256/{}", "0".repeat(64)), 1)],
        "the planted blob is an orphan"
    );
    let found: Vec<&str> = c.failures.keys().copied().collect();
    assert_eq!(
        found,
        [
            "cgroup leak",
            "frozen",
            "image broken",
            "mounts",
            "network leak",
            "tmp leftovers",
            "volume leak"
        ],
        "{:#?}",
        c.failures
    );
    assert!(!frozen(&freezer), "the checker thawed the container");
    c.failures.clear();
    c.remove_containers_but(&[]);
    c.finish();
}

/// Field 22 of /proc/PID/stat: what tells a process from a later one with its pid.
fn start_time(pid: i32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// A container that dies while the checks look is rightly listed running by a listing made
/// before its death, and by one made while its monitor, alive, has yet to finish it: neither
/// is a fault (a run -d campaign once reported one whose process ended between `inspect` and
/// the look at its pid). One listed running after its death with nothing left to finish it
/// still is.
#[test]
fn the_checks_judge_a_death_by_a_later_listing() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let r = Root::new();
    let mut c = Campaign::new(&r, "dying");
    c.trial = "setup".into();
    let tar = images_dir().join("busybox.tar");
    c.ok(&["import", tar.to_str().unwrap(), "busybox"]);
    let id = c.ok(&["run", "-d", "busybox", "sleep", "1000"]);
    let id = id.trim().to_string();
    c.known.insert(id.clone());
    let listed = c.containers().unwrap();
    assert!(listed[0].running, "{listed:?}");
    let pid = listed[0].pid;
    let monitor = c.monitor_of(&id).expect("the container's monitor");

    // The container dies after the listing, and its monitor cannot finish it for a second:
    // until then every listing rightly shows it running, its pid dead.
    c.trial = "died after the listing".into();
    // The monitor and the container this test started, by pid.
    kill(Pid::from_raw(monitor), Signal::SIGSTOP).unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    assert!(
        common::wait_for(5, || !pid_alive(pid)),
        "the container died"
    );
    let resume = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(1));
        kill(Pid::from_raw(monitor), Signal::SIGCONT).unwrap();
    });
    c.check_containers(&listed);
    resume.join().unwrap();
    assert!(
        c.failures.is_empty(),
        "a death after the listing is no fault: {:#?}",
        c.failures
    );
    let after = c.containers().unwrap();
    assert!(!after[0].running, "its monitor finished it: {after:?}");

    // Planted: a container whose process is dead stays listed running, as a live owner
    // (this test) that never finishes it makes reconcile leave it.
    c.trial = "planted".into();
    let id = c.ok(&["run", "-d", "busybox", "sleep", "1000"]);
    let id = id.trim().to_string();
    c.known.insert(id.clone());
    let listed = c.containers().unwrap();
    let pid = listed.iter().find(|x| x.id == id).unwrap().pid;
    let monitor = c.monitor_of(&id).expect("the container's monitor");
    kill(Pid::from_raw(monitor), Signal::SIGKILL).unwrap();
    c.unmonitored.insert(id.clone());
    let me = std::process::id() as i32;
    let db = rusqlite::Connection::open(r.path().join("hako.db")).unwrap();
    db.busy_timeout(Duration::from_secs(10)).unwrap();
    db.execute(
        "UPDATE containers SET owner_pid = ?2, owner_start = ?3 WHERE id = ?1",
        rusqlite::params![id, me, start_time(me)],
    )
    .unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    assert!(
        common::wait_for(5, || !pid_alive(pid)),
        "the container died"
    );
    c.check_containers(&listed);
    let found: Vec<&str> = c.failures.keys().copied().collect();
    assert_eq!(found, ["container state"], "{:#?}", c.failures);
    assert!(
        c.failures["container state"][0].contains("is listed running, its pid"),
        "{:#?}",
        c.failures
    );

    // Ownerless again, it is finished by the next command.
    db.execute(
        "UPDATE containers SET owner_pid = NULL, owner_start = NULL WHERE id = ?1",
        [&id],
    )
    .unwrap();
    drop(db);
    c.failures.clear();
    c.remove_containers_but(&[]);
    c.finish();
}

/// The guarantee the `run -d` campaign checks at random points, at a chosen one: a container on
/// a user network whose monitor was killed runs on unsupervised, and the first command that
/// looks after its process died sees it exited (status lost: 255) with its cgroup, lease and
/// name server released.
#[test]
fn a_container_whose_monitor_was_killed_is_exited_at_the_next_look_after_its_death() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let r = Root::new();
    let mut c = Campaign::new(&r, "unmonitored");
    c.trial = "setup".into();
    let tar = images_dir().join("busybox.tar");
    c.ok(&["import", tar.to_str().unwrap(), "busybox"]);
    c.ok(&["network", "create", "fnet"]);
    let id = c.ok(&["run", "-d", "--network", "fnet", "busybox", "sleep", "1000"]);
    let id = id.trim().to_string();
    c.known.insert(id.clone());
    let monitor = c.monitor_of(&id).expect("the container's monitor");
    c.trial = "monitor killed".into();
    // The monitor and, below, the container this test started, by pid.
    kill(Pid::from_raw(monitor), Signal::SIGKILL).unwrap();
    c.unmonitored.insert(id.clone());
    assert!(
        common::wait_for(5, || !pid_alive(monitor)),
        "the monitor died"
    );
    let listed = c.containers().unwrap();
    assert!(listed[0].running, "it runs on: {listed:?}");
    c.check();
    c.trial = "container died".into();
    kill(Pid::from_raw(listed[0].pid), Signal::SIGKILL).unwrap();
    assert!(
        common::wait_for(5, || !pid_alive(listed[0].pid)),
        "the container died"
    );
    let state = c.ok(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}} {{.State.Pid}}",
        &id,
    ]);
    assert_eq!(state.trim(), "exited false 255 0");
    c.check();
    c.remove_containers_but(&[]);
    c.ok(&["network", "rm", "fnet"]);
    c.finish();
}

/// The pieces the checks stand on: chain IDs as the OCI spec defines them, and Docker's size
/// strings.
#[test]
fn checker_helpers() {
    let a = format!("sha256:{}", "a".repeat(64));
    let b = format!("sha256:{}", "b".repeat(64));
    let ids = chain_ids(&[a.clone(), b.clone()]);
    assert_eq!(ids[0], a);
    assert_eq!(
        ids[1],
        format!("sha256:{}", sha_hex(format!("{a} {b}").as_bytes()))
    );
    assert_eq!(parse_size("2.13MB (100%)"), Some(2.13e6));
    assert_eq!(parse_size("0B (0%)"), Some(0.0));
    assert_eq!(parse_size("4.1kB"), Some(4100.0));
    assert_eq!(parse_size("n/a"), None);
}
