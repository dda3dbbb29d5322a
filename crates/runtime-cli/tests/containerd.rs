//! Interop: containerd's runc shim drives `hako-runtime` (`ctr run --runc-binary`), on a
//! private containerd (own socket, root and state), so no system instance is touched.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

struct Containerd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("hako-ctrd-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let d = dir.path();
        let config = format!(
            "version = 2\nroot = \"{r}/root\"\nstate = \"{r}/state\"\n[grpc]\n  address = \"{r}/sock\"\n[ttrpc]\n  address = \"{r}/sock.ttrpc\"\n[debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n[plugins.\"io.containerd.grpc.v1.cri\"]\n  disable_cgroup = true\n",
            r = d.display()
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd { child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.sock().exists() {
            assert!(Instant::now() < deadline, "containerd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        c
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("sock")
    }

    fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(self.sock());
        c
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        // containerd leaves its root's mounts (none here: --rootfs) and state dirs behind.
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn ctr_run_uses_hako_runtime_and_returns_the_exit_code() {
    if which("containerd").is_none() || which("ctr").is_none() {
        eprintln!(
            "NOTE: containerd/ctr not installed (apt-get install containerd); interop not tested"
        );
        return;
    }
    assert!(nix::unistd::geteuid().is_root(), "run as root");
    let tar = PathBuf::from(
        std::env::var("HAKO_TEST_IMAGES").unwrap_or_else(|_| "/var/cache/hako-test-images".into()),
    )
    .join("busybox.tar");
    assert!(tar.is_file(), "{} is missing", tar.display());
    let ctrd = Containerd::start();
    let rootfs = ctrd.dir.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    assert!(Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&rootfs)
        .status()
        .unwrap()
        .success());

    let id = format!("hako-ctr-{}", std::process::id());
    // A relative cgroup path nests under our own cgroup instead of containerd's
    // /<namespace>/<id> at the top of every hierarchy.
    let cgroup = format!("hako-ctr-test/{id}");
    let out = ctrd
        .ctr()
        .args(["run", "--rm", "--cgroup", &cgroup, "--runc-binary"])
        .arg(env!("CARGO_BIN_EXE_hako-runtime"))
        .arg("--rootfs")
        .arg(&rootfs)
        .arg(&id)
        .args(["sh", "-c", "echo hello from containerd; exit 3"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = std::fs::read_to_string(ctrd.dir.path().join("log")).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(3),
        "stderr: {}\ncontainerd log tail: {}",
        String::from_utf8_lossy(&out.stderr),
        log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from containerd\n"
    );

    // A long-running task, then `ctr task exec` into it.
    let id2 = format!("{id}-x");
    let cgroup2 = format!("hako-ctr-test/{id2}");
    let out = ctrd
        .ctr()
        .args(["run", "-d", "--cgroup", &cgroup2, "--runc-binary"])
        .arg(env!("CARGO_BIN_EXE_hako-runtime"))
        .arg("--rootfs")
        .arg(&rootfs)
        .arg(&id2)
        .args(["sleep", "100"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ctrd
        .ctr()
        .args([
            "task",
            "exec",
            "--exec-id",
            "e1",
            &id2,
            "sh",
            "-c",
            "echo exec $$; exit 6",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("exec "));
    let out = ctrd
        .ctr()
        .args(["task", "kill", "-s", "SIGKILL", &id2])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ctrd.ctr().args(["task", "delete", &id2]).output().unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "task delete: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ctrd
        .ctr()
        .args(["container", "delete", &id2])
        .status()
        .unwrap()
        .success());

    // The runtime removed the containers' cgroups; their parent is the test's to remove.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrl, path) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let mount = if ctrl.is_empty() {
            "unified".to_owned()
        } else {
            ctrl.trim_start_matches("name=").to_owned()
        };
        let parent = Path::new("/sys/fs/cgroup")
            .join(&mount)
            .join(path.trim_start_matches('/'))
            .join("hako-ctr-test");
        for leaf in [&id, &id2] {
            assert!(
                !parent.join(leaf).exists(),
                "cgroup {} left behind",
                parent.join(leaf).display()
            );
        }
        let _ = std::fs::remove_dir(&parent);
    }
}
