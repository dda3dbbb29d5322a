//! Interop: Docker runs containers through `hako-runtime` (`docker run --runtime hako`). The
//! test starts a private dockerd (own data root, exec root, socket and pidfile, on a private
//! containerd) so no system instance is touched, and stops it by pid.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    name: &'static str,
    child: Child,
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

struct Docker {
    // Dropped in this order: dockerd before the containerd it uses.
    dockerd: Option<Daemon>,
    containerd: Option<Daemon>,
    dir: tempfile::TempDir,
    cgroup_parent: String,
}

fn wait_for(path: &Path, what: &str, log: &Path) {
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

impl Docker {
    fn start() -> Docker {
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
            child: Command::new("containerd")
                .arg("--config")
                .arg(d.join("containerd.toml"))
                .stdout(ctrd_log.try_clone().unwrap())
                .stderr(ctrd_log)
                .spawn()
                .expect("containerd is missing (apt-get install containerd)"),
        };
        wait_for(
            &d.join("ctrd.sock"),
            "containerd",
            &d.join("containerd.log"),
        );

        let cgroup_parent = format!("/hako-test-docker-{}", std::process::id());
        let config = serde_json::json!({
            "runtimes": {"hako": {"path": env!("CARGO_BIN_EXE_hako-runtime")}},
            "cgroup-parent": cgroup_parent,
        });
        std::fs::write(d.join("daemon.json"), config.to_string()).unwrap();
        let dockerd_log = log("dockerd.log");
        let dockerd = Daemon {
            name: "dockerd",
            child: Command::new("dockerd")
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
                .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
                .stdout(dockerd_log.try_clone().unwrap())
                .stderr(dockerd_log)
                .spawn()
                .expect("dockerd is missing (apt-get install docker.io)"),
        };
        let docker = Docker {
            dockerd: Some(dockerd),
            containerd: Some(containerd),
            dir,
            cgroup_parent,
        };
        wait_for(&d.join("docker.sock"), "dockerd", &d.join("dockerd.log"));
        let deadline = Instant::now() + Duration::from_secs(60);
        while !docker.docker(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "dockerd does not answer");
            std::thread::sleep(Duration::from_millis(100));
        }
        let tar = PathBuf::from(
            std::env::var("HAKO_TEST_IMAGES")
                .unwrap_or_else(|_| "/var/cache/hako-test-images".into()),
        )
        .join("busybox.tar");
        let out = docker.docker(&["import", tar.to_str().unwrap(), "busybox:hako"]);
        assert!(out.status.success(), "import: {}", err(&out));
        docker
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("docker.sock").display()
            ))
            .args(args)
            .env("DOCKER_CONFIG", self.dir.path().join("client"))
            .stdin(Stdio::null());
        c
    }

    fn docker(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {}: {}\n{}",
            args.join(" "),
            err(&out),
            self.dockerd_log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn dockerd_log(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// The container's cgroup directory in a v1 hierarchy.
    fn cgroup_dir(&self, controller: &str, id: &str) -> PathBuf {
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(self.cgroup_parent.trim_start_matches('/'))
            .join(id)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let _ = self.docker(&["rm", "-f", "d1"]);
        self.dockerd.take();
        self.containerd.take();
        // The runtime removes each container's cgroup; the parent is Docker's, and ours.
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                let _ =
                    std::fs::remove_dir(e.path().join(self.cgroup_parent.trim_start_matches('/')));
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let d = self.dir.path().display().to_string();
        for line in mounts.lines().rev() {
            if let Some(mp) = line.split(' ').nth(4).filter(|mp| mp.starts_with(&d)) {
                let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn docker_runs_containers_through_hako_runtime() {
    let d = Docker::start();
    let base = ["run", "--runtime", "hako", "--network", "none"];
    let run = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let args = run(&["--rm", "busybox:hako", "sh", "-c", "echo hello; exit 3"]);
    let out = d.docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        err(&out),
        d.dockerd_log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");

    // -d, exec, the limits on the host's cgroup files, stop.
    let args = run(&[
        "-d",
        "--name",
        "d1",
        "--memory",
        "64m",
        "--pids-limit",
        "33",
        "busybox:hako",
        "sleep",
        "1000",
    ]);
    let id = d.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let id = id.trim();
    assert_eq!(d.ok(&["exec", "d1", "echo", "from exec"]), "from exec\n");
    let limit =
        std::fs::read_to_string(d.cgroup_dir("memory", id).join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    let pids = std::fs::read_to_string(d.cgroup_dir("pids", id).join("pids.max")).unwrap();
    assert_eq!(pids.trim(), "33");
    // docker update goes through containerd's shim to `hako-runtime update --resources -`.
    d.ok(&[
        "update",
        "--memory",
        "96m",
        "--memory-swap",
        "128m",
        "--pids-limit",
        "44",
        "d1",
    ]);
    let limit =
        std::fs::read_to_string(d.cgroup_dir("memory", id).join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (96u64 << 20).to_string());
    let pids = std::fs::read_to_string(d.cgroup_dir("pids", id).join("pids.max")).unwrap();
    assert_eq!(pids.trim(), "44");
    d.ok(&["stop", "-t", "1", "d1"]);
    let state = d.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "d1",
    ]);
    assert_eq!(state.trim(), "exited 137");
    d.ok(&["rm", "d1"]);
    assert!(!d.cgroup_dir("memory", id).exists(), "cgroup left behind");

    // -it: a terminal from the container's devpts, through script(1)'s pty.
    let docker_cmd = format!(
        "docker -H unix://{} run -it --rm --runtime hako --network none busybox:hako sh -c 'tty; exit 5'",
        d.dir.path().join("docker.sock").display()
    );
    let mut script = Command::new("script");
    script
        .args(["-qec", &docker_cmd, "/dev/null"])
        .env("DOCKER_CONFIG", d.dir.path().join("client"));
    let out = in_pty(script);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/0"), "{text}\n{}", err(&out));
    assert_eq!(out.status.code(), Some(5), "{text}");
}

/// Runs `script` (script(1), which gives its command a terminal) with a stdin that stays open
/// until it exits: at EOF on its stdin, script would end the session early.
fn in_pty(mut script: Command) -> Output {
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
