//! Real peers for hako's interop tests, each private to the test that starts it: Debian's
//! `docker-registry` on a free loopback port, a dockerd on its own containerd, data root, exec
//! root and socket, and a podman whose storage, run root and configuration live in a temp dir.
//! Every process is stopped by pid on drop and every directory removed.
//!
//! Both the CLI's and the runtime's integration tests start these peers; one copy keeps their
//! isolation rules (private sockets, cgroup parents outside `hako-*`, unmounting what a peer
//! leaves) the same everywhere.

pub mod user;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The directory of the test images `scripts/make-test-images.sh` makes.
pub fn images_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("HAKO_TEST_IMAGES").unwrap_or_else(|_| "/var/cache/hako-test-images".into()),
    )
}

/// The path of a host program the suite installs with apt.
pub fn need(bin: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin"] {
        let p = Path::new(dir).join(bin);
        if p.is_file() {
            return p;
        }
    }
    panic!("{bin} is missing: scripts/test.sh installs it with apt");
}

/// A loopback TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A child stopped with SIGTERM (SIGKILL after 20 s) on drop.
pub struct Daemon {
    /// For the message when it has to be killed.
    pub name: &'static str,
    /// The process.
    pub child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                eprintln!("{} did not stop on SIGTERM; killing it", self.name);
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Unmounts whatever a peer left mounted under `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let d = dir.display().to_string();
    for line in mounts.lines().rev() {
        if let Some(mp) = line.split(' ').nth(4).filter(|mp| mp.starts_with(&d)) {
            let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

/// A private registry on a free loopback port.
pub struct Registry {
    // Declared first so the process stops before its storage is removed.
    _daemon: Daemon,
    /// The registry's filesystem storage.
    pub storage: tempfile::TempDir,
    config: tempfile::TempDir,
    /// Where it listens on 127.0.0.1.
    pub port: u16,
}

impl Registry {
    /// A registry without authentication.
    pub fn start() -> Registry {
        Registry::start_with("")
    }

    /// `extra` is appended to the config, e.g. an `auth:` section.
    pub fn start_with(extra: &str) -> Registry {
        let bin = need("docker-registry");
        let storage = tempfile::tempdir().unwrap();
        let config = tempfile::tempdir().unwrap();
        let port = free_port();
        let yml = config.path().join("config.yml");
        std::fs::write(
            &yml,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{extra}",
                storage.path().display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(config.path().join("registry.log")).unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&yml)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = Registry {
            _daemon: Daemon {
                name: "docker-registry",
                child,
            },
            storage,
            config,
            port,
        };
        assert!(
            wait_until(10, || std::net::TcpStream::connect(("127.0.0.1", port))
                .is_ok()),
            "docker-registry did not listen on {port}: {}",
            reg.log()
        );
        reg
    }

    /// What the registry printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.config.path().join("registry.log")).unwrap_or_default()
    }

    /// `repo` in this registry, as a reference.
    pub fn name(&self, repo: &str) -> String {
        format!("127.0.0.1:{}/{repo}", self.port)
    }

    /// Copies an OCI layout into the registry with skopeo.
    pub fn skopeo_push(&self, layout: &Path, tag_in_layout: &str, dest: &str, extra: &[&str]) {
        let out = Command::new(need("skopeo"))
            .args(["copy", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("oci:{}:{tag_in_layout}", layout.display()))
            .arg(format!("docker://{}", self.name(dest)))
            .output()
            .unwrap();
        assert!(out.status.success(), "skopeo copy failed: {}", stderr(&out));
    }

    /// The stored data of a blob, as the registry serves it.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .path()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

fn wait_path(path: &Path, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private dockerd on a private containerd; containers run under a cgroup parent named for
/// this test process.
pub struct Docker {
    // Dropped in this order: dockerd before the containerd it uses.
    dockerd: Option<Daemon>,
    containerd: Option<Daemon>,
    /// Sockets, roots, logs and the client's config.
    pub dir: tempfile::TempDir,
    cgroup_parent: String,
    /// The daemon's own default bridge, deleted after it stops.
    bridge: String,
}

impl Docker {
    /// A dockerd with its default runtime (runc).
    pub fn start() -> Docker {
        Docker::start_with(&[])
    }

    /// A dockerd that also knows `runtimes` (name, path), as `daemon.json`'s `runtimes`.
    pub fn start_with(runtimes: &[(&str, &Path)]) -> Docker {
        assert!(
            nix::unistd::geteuid().is_root(),
            "dockerd needs root: run this test as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("hako-docker-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let d = dir.path().to_path_buf();
        let ctrd_config = format!(
            "version = 2\nroot = \"{r}/ctrd-root\"\nstate = \"{r}/ctrd-state\"\n[grpc]\n  address = \"{r}/ctrd.sock\"\n[ttrpc]\n  address = \"{r}/ctrd.sock.ttrpc\"\n[debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_cgroup = true\n",
            r = d.display()
        );
        std::fs::write(d.join("containerd.toml"), ctrd_config).unwrap();
        let log = |name: &str| std::fs::File::create(d.join(name)).unwrap();
        let ctrd_log = log("containerd.log");
        let containerd = Daemon {
            name: "containerd",
            child: Command::new(need("containerd"))
                .arg("--config")
                .arg(d.join("containerd.toml"))
                .stdout(ctrd_log.try_clone().unwrap())
                .stderr(ctrd_log)
                .spawn()
                .expect("start containerd"),
        };
        wait_path(
            &d.join("ctrd.sock"),
            "containerd",
            &d.join("containerd.log"),
        );
        // Not `hako-*`: the CLI tests' leak check scans those.
        let cgroup_parent = format!("/interop-docker-{}", std::process::id());
        let runtimes: serde_json::Map<String, serde_json::Value> = runtimes
            .iter()
            .map(|(name, path)| (name.to_string(), serde_json::json!({ "path": path })))
            .collect();
        let config = serde_json::json!({ "cgroup-parent": cgroup_parent, "runtimes": runtimes });
        std::fs::write(d.join("daemon.json"), config.to_string()).unwrap();
        // A bridge of its own: with `--bridge=none` dockerd deletes the host's `docker0` at
        // start, which cut the networking of a Docker the machine runs (seen here: the
        // benchmarks' dockerd lost its bridge after every test run).
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let bridge = format!("idk{}x{n}", std::process::id());
        // Bridges of killed test processes (their pid is in the name, and gone) stay for good
        // otherwise; one with our own pid would make `add` fail.
        let mine = std::process::id().to_string();
        for e in std::fs::read_dir("/sys/class/net")
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.strip_prefix("idk").and_then(|r| r.split('x').next()) else {
                continue;
            };
            if pid.parse::<u32>().is_ok()
                && (name == bridge || (pid != mine && !Path::new("/proc").join(pid).exists()))
            {
                let _ = Command::new(need("ip"))
                    .args(["link", "del", &name])
                    .stderr(Stdio::null())
                    .status();
            }
        }
        let made = Command::new(need("ip"))
            .args(["link", "add", &bridge, "type", "bridge"])
            .status()
            .expect("run ip");
        assert!(made.success(), "cannot create bridge {bridge} for dockerd");
        let dockerd_log = log("dockerd.log");
        let dockerd = Daemon {
            name: "dockerd",
            child: Command::new(need("dockerd"))
                .arg("--config-file")
                .arg(d.join("daemon.json"))
                .arg("--data-root")
                .arg(d.join("data"))
                .arg("--exec-root")
                .arg(d.join("exec"))
                .arg("-H")
                .arg(format!("unix://{}", d.join("docker.sock").display()))
                .arg("--pidfile")
                .arg(d.join("docker.pid"))
                .arg("--containerd")
                .arg(d.join("ctrd.sock"))
                .args(["--iptables=false", "--ip6tables=false", "--ip-masq=false"])
                .arg(format!("--bridge={bridge}"))
                .stdout(dockerd_log.try_clone().unwrap())
                .stderr(dockerd_log)
                .spawn()
                .expect("start dockerd"),
        };
        let docker = Docker {
            dockerd: Some(dockerd),
            containerd: Some(containerd),
            dir,
            cgroup_parent,
            bridge,
        };
        wait_path(&d.join("docker.sock"), "dockerd", &d.join("dockerd.log"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !docker.docker(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "dockerd does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        docker
    }

    /// The path of the daemon's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("docker.sock")
    }

    /// A `docker` client command on this daemon.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(need("docker"));
        c.arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            .stdin(Stdio::null());
        c
    }

    /// Runs a client command.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs a client command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {}: {}\n{}",
            args.join(" "),
            stderr(&out),
            self.dockerd_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The last lines dockerd logged, for failure messages.
    pub fn dockerd_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// Imports the busybox test rootfs as `tag`.
    pub fn import_busybox(&self, tag: &str) {
        let tar = images_dir().join("busybox.tar");
        self.ok(&["import", tar.to_str().unwrap(), tag]);
    }

    /// A container's cgroup directory in a v1 hierarchy.
    pub fn cgroup_dir(&self, controller: &str, id: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(self.cgroup_parent.trim_start_matches('/'))
            .join(id)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        if let Ok(out) = self.cmd(&["ps", "-aq"]).output() {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
        }
        self.dockerd.take();
        self.containerd.take();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
        // The parent is the test's own; a container's cgroup that dockerd did not remove
        // before it stopped is below it (seen in the unified hierarchy), so deepest first.
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                remove_cgroup_tree(&e.path().join(self.cgroup_parent.trim_start_matches('/')));
            }
        }
        unmount_under(self.dir.path());
    }
}

/// Removes an empty cgroup and its empty sub-cgroups (rmdir fails on any that still has a
/// process, which is then left).
fn remove_cgroup_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Rootful podman with every path private to the test. runc by default, because crun 1.8
/// refuses this host's hybrid cgroup mount; no default ulimits, because podman's exceed the
/// hard limits here; cgroupfs and file events, because there is no systemd or journald.
pub struct Podman {
    /// Storage, run root, tmp dir and configuration.
    pub dir: tempfile::TempDir,
    runtime: PathBuf,
}

impl Podman {
    /// A podman that runs containers with runc.
    pub fn new() -> Podman {
        Podman::with_runtime(&need("runc"))
    }

    /// A podman that runs containers with the OCI runtime at `runtime`.
    pub fn with_runtime(runtime: &Path) -> Podman {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests run rootful podman: run them as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("hako-podman-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = \"{}/events.log\"\n",
                d.display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{r}/storage\"\nrunroot = \"{r}/run\"\n",
                r = d.display()
            ),
        )
        .unwrap();
        std::fs::write(
            d.join("registries.conf"),
            "unqualified-search-registries = []\n",
        )
        .unwrap();
        std::fs::write(d.join("auth.json"), "{}\n").unwrap();
        Podman {
            dir,
            runtime: runtime.to_path_buf(),
        }
    }

    fn env(&self) -> [(&'static str, PathBuf); 4] {
        let d = self.dir.path();
        [
            ("CONTAINERS_CONF", d.join("containers.conf")),
            ("CONTAINERS_STORAGE_CONF", d.join("storage.conf")),
            ("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf")),
            ("REGISTRY_AUTH_FILE", d.join("auth.json")),
        ]
    }

    fn global_args(&self) -> Vec<PathBuf> {
        let d = self.dir.path();
        vec![
            "--root".into(),
            d.join("storage"),
            "--runroot".into(),
            d.join("run"),
            "--tmpdir".into(),
            d.join("tmp"),
            "--runtime".into(),
            self.runtime.clone(),
        ]
    }

    /// A `podman` command on this private setup.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(need("podman"));
        c.envs(self.env())
            .args(self.global_args())
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs a command that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(
            out.status.success(),
            "podman {}: {}",
            args.join(" "),
            stderr(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The same command as one shell line, for script(1).
    pub fn shell_cmd(&self, args: &str) -> String {
        let mut line: Vec<String> = self
            .env()
            .iter()
            .map(|(k, v)| format!("{k}={}", v.display()))
            .collect();
        line.push(need("podman").display().to_string());
        line.extend(self.global_args().iter().map(|a| a.display().to_string()));
        line.push(args.to_string());
        line.join(" ")
    }
}

impl Default for Podman {
    fn default() -> Self {
        Podman::new()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.cmd(&["rm", "-af", "-t", "0"]).output();
        // Podman leaves its overlay storage mounted.
        let _ = self.cmd(&["system", "reset", "-f"]).output();
        unmount_under(self.dir.path());
        if !std::thread::panicking() {
            let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            let d = self.dir.path().display().to_string();
            assert!(!mounts.contains(&d), "mount left behind under {d}");
        }
    }
}

/// Runs `script` (script(1), which gives its command a terminal) with a stdin that stays open
/// until it exits: at EOF on its stdin, script would end the session early.
pub fn in_pty(mut script: Command) -> Output {
    use std::io::Read;
    let mut child = script
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script(1) is missing (util-linux)");
    let stdin = child.stdin.take();
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut stdout)
        .unwrap();
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    drop(stdin);
    Output {
        status,
        stdout,
        stderr,
    }
}
