//! Shared helpers of the end-to-end tests: a private state root per test, the test images, and
//! leak checks (mounts, cgroups, container directories) run after every test.
#![allow(dead_code)]

pub mod build;
pub mod peers;
pub mod service;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};

/// Container tests run one at a time so the cgroup leak check can compare before and after.
static SERIAL: Mutex<()> = Mutex::new(());

/// Directory with busybox.tar and trixie.tar from scripts/make-test-images.sh.
pub fn images_dir() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("HAKO_TEST_IMAGES").unwrap_or_else(|_| "/var/cache/hako-test-images".into()),
    );
    for name in ["busybox.tar", "trixie.tar"] {
        assert!(
            dir.join(name).is_file(),
            "{} is missing: run scripts/make-test-images.sh first (the test suite needs real images)",
            dir.join(name).display()
        );
    }
    dir
}

/// A private HAKO_ROOT, checked for leaks when dropped.
pub struct Root {
    pub dir: tempfile::TempDir,
    cgroups_before: BTreeSet<PathBuf>,
    veths_before: BTreeSet<String>,
    _serial: MutexGuard<'static, ()>,
}

pub fn hako_bin() -> &'static str {
    env!("CARGO_BIN_EXE_hako")
}

impl Root {
    pub fn new() -> Root {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            nix_is_root(),
            "the end-to-end tests create namespaces, mounts and cgroups: run them as root"
        );
        static SWEPT: std::sync::Once = std::sync::Once::new();
        SWEPT.call_once(sweep_dead_runs_roots);
        let dir = tempfile::Builder::new()
            .prefix(&format!("hako-e2e-{}-", std::process::id()))
            .tempdir_in("/var/tmp")
            .unwrap();
        Root {
            dir,
            cgroups_before: hako_cgroup_dirs(),
            veths_before: hako_bridge_ports(),
            _serial: serial,
        }
    }

    /// A root with busybox imported as `busybox`.
    pub fn with_busybox() -> Root {
        let r = Root::new();
        let out = r.hako(&[
            "import",
            images_dir().join("busybox.tar").to_str().unwrap(),
            "busybox",
        ]);
        assert!(
            out.status.success(),
            "import failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        r
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(hako_bin());
        c.args(args)
            .env("HAKO_ROOT", self.path())
            .stdin(Stdio::null());
        c
    }

    pub fn hako(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run hako")
    }

    /// Runs hako with `answer` piped to its stdin (no terminal), as a prompt's answer;
    /// asserts success and returns its stdout.
    #[allow(dead_code)]
    pub fn answered(&self, args: &[&str], answer: &str) -> String {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run hako");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answer.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "hako {args:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs hako and returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.hako(args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs hako and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "hako {args:?} failed: {err}");
        out
    }

    /// Empty `hako-*` cgroups that appeared during the test and stay.
    ///
    /// Other suites (or other engineers' runs) on the same host create and remove container
    /// cgroups at any moment, so a bare before/after difference blames this test for their
    /// containers. A cgroup that still holds processes belongs to a container that is running;
    /// if it is one of ours, the container check in `check_leaks` lists it. A leaked cgroup is
    /// an empty one that stays: one that is empty but goes away within a few seconds is another
    /// suite's container finishing, or a monitor of ours that is still cleaning up.
    ///
    /// Only this root's containers count: every container gets a `create` event in the same
    /// transaction as its row, before its cgroup exists, so the root's event journal names every
    /// container that could have left one. Without that, a concurrent suite's container that its
    /// own test is about to clean up is blamed on this one.
    fn leaked_cgroups(&self) -> Vec<PathBuf> {
        let ours = self.container_ids_ever();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        loop {
            let empty: Vec<PathBuf> = hako_cgroup_dirs()
                .difference(&self.cgroups_before)
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .and_then(|n| n.strip_prefix("hako-"))
                        .is_some_and(|id| ours.contains(id))
                })
                .filter(|p| cgroup_is_empty(p))
                .cloned()
                .collect();
            if empty.is_empty() || std::time::Instant::now() >= deadline {
                return empty;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Every container this root has had, from its event journal.
    fn container_ids_ever(&self) -> BTreeSet<String> {
        let out = self.hako(&[
            "events",
            "--since",
            "0",
            "--until",
            "0s",
            "--filter",
            "type=container",
            "--format",
            "{{.ID}}",
        ]);
        assert!(
            out.status.success(),
            "events for the leak check: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    }

    fn check_leaks(&self) {
        let root = self.path().to_string_lossy().into_owned();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let leaked: Vec<&str> = mountinfo.lines().filter(|l| l.contains(&root)).collect();
        assert!(
            leaked.is_empty(),
            "mounts left under the state root: {leaked:?}"
        );
        let new = self.leaked_cgroups();
        assert!(new.is_empty(), "cgroups left behind: {new:?}");
        let containers = self.path().join("containers");
        if containers.is_dir() {
            let listed = self.hako(&["ps", "-a", "-q", "--no-trunc"]);
            let ids: BTreeSet<String> = String::from_utf8_lossy(&listed.stdout)
                .lines()
                .map(String::from)
                .collect();
            for e in std::fs::read_dir(&containers).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                assert!(
                    ids.contains(&name),
                    "container directory {name} has no container"
                );
            }
        }
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.check_leaks();
        }
        // A test that failed half-way may leave containers running; they must not outlive
        // their state root (their monitors would keep running with the root deleted).
        if let Ok(out) = self.cmd(&["ps", "-aq", "--no-trunc"]).output() {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(ids.iter().map(String::as_str));
                let _ = self.hako(&args);
            }
        }
        // Each test root has its own default bridge and nft table; take them down.
        let _ = self.hako(&["network", "teardown"]);
        if !std::thread::panicking() {
            // Name servers get SIGTERM when their network empties; give them a moment to go.
            assert!(
                wait_for(5, || self.dns_servers().is_empty()),
                "name servers left running: {:?}",
                self.dns_servers()
            );
        }
    }
}

impl Root {
    /// Pids of the live `hako-dns` processes serving this state root's networks.
    pub fn dns_servers(&self) -> Vec<i32> {
        let db = self.path().join("hako.db").to_string_lossy().into_owned();
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            // A zombie's cmdline is empty, so only live servers match.
            let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if args.first().is_some_and(|a| a.ends_with("hako-dns")) && args.get(1) == Some(&db) {
                out.push(pid);
            }
        }
        out
    }
}

/// Takes down the roots of test processes that were killed before their roots' drop ran (a
/// test run stopped with ^C or by a timeout): their containers, networks and directories.
/// A root's name carries the pid of the test process that made it.
fn sweep_dead_runs_roots() {
    let Ok(rd) = std::fs::read_dir("/var/tmp") else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("hako-e2e-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        let root = e.path();
        let hako = |args: &[&str]| {
            Command::new(hako_bin())
                .args(args)
                .env("HAKO_ROOT", &root)
                .stdin(Stdio::null())
                .output()
        };
        if let Ok(out) = hako(&["ps", "-aq", "--no-trunc"]) {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .map(String::from)
                .collect();
            if !ids.is_empty() {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(ids.iter().map(String::as_str));
                let _ = hako(&args);
            }
        }
        let _ = hako(&["network", "teardown"]);
        hako_testkit::unmount_under(&root);
        let _ = std::fs::remove_dir_all(&root);
    }
}

fn nix_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The Linux bridge of a network from its `network inspect` document: the default network
/// names it in its options (as Docker's does), a user network's is `hk-` and the first 12
/// digits of its ID (as Docker's `br-…`) unless its creator named one with `-o
/// com.docker.network.bridge.name=`.
#[allow(dead_code)]
pub fn bridge_of_doc(net: &serde_json::Value) -> String {
    match net["Options"]["com.docker.network.bridge.name"].as_str() {
        Some(b) => b.to_string(),
        None => format!("hk-{}", &net["Id"].as_str().unwrap_or_default()[..12]),
    }
}

/// Interfaces enslaved to one of hako's bridges (hako0, hk-*).
pub fn hako_bridge_ports() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(rd) = std::fs::read_dir("/sys/class/net") else {
        return out;
    };
    for e in rd.flatten() {
        if let Ok(master) = std::fs::read_link(e.path().join("master")) {
            let m = master
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if m.starts_with("hako") || m.starts_with("hk-") {
                out.insert(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// True if no process is in the cgroup or any cgroup below it (a directory that is already gone
/// counts as empty: it can only be gone because it was removed).
fn cgroup_is_empty(dir: &Path) -> bool {
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    if !procs.trim().is_empty() {
        return false;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return true;
    };
    rd.flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .all(|e| cgroup_is_empty(&e.path()))
}

/// Every `hako-*` directory in every cgroup hierarchy, a few levels deep.
pub fn hako_cgroup_dirs() -> BTreeSet<PathBuf> {
    fn walk(dir: &Path, depth: usize, out: &mut BTreeSet<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy().starts_with("hako-") {
                out.insert(p.clone());
            }
            if depth > 0 {
                walk(&p, depth - 1, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(Path::new("/sys/fs/cgroup"), 5, &mut out);
    out
}

/// Waits until `f` is true, for at most `secs` seconds.
pub fn wait_for(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}
