//! Interop: Podman runs containers through `hako-runtime` (`podman --runtime PATH`). Every
//! Podman path (storage, run root, tmp dir, configuration) is private to the test, so no
//! system state is read or touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests run rootful podman: run them as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("hako-podman-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let d = dir.path();
        // Podman's default ulimits exceed this host's hard limits; cgroupfs because there is
        // no systemd; file events because there is no journald.
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
        let p = Podman { dir };
        let tar = PathBuf::from(
            std::env::var("HAKO_TEST_IMAGES")
                .unwrap_or_else(|_| "/var/cache/hako-test-images".into()),
        )
        .join("busybox.tar");
        let out = p.podman(&["import", tar.to_str().unwrap(), "localhost/busybox:hako"]);
        assert!(out.status.success(), "import: {}", err(&out));
        p
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .arg("--runtime")
            .arg(env!("CARGO_BIN_EXE_hako-runtime"))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn podman(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman {}: {}",
            args.join(" "),
            err(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn shell_cmd(&self, args: &str) -> String {
        let d = self.dir.path();
        format!(
            "CONTAINERS_CONF={c} CONTAINERS_STORAGE_CONF={s} podman --root {r} --runroot {rr} --tmpdir {t} --runtime {rt} {args}",
            c = d.join("containers.conf").display(),
            s = d.join("storage.conf").display(),
            r = d.join("storage").display(),
            rr = d.join("run").display(),
            t = d.join("tmp").display(),
            rt = env!("CARGO_BIN_EXE_hako-runtime"),
        )
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman(&["rm", "-af", "-t", "0"]);
        // Podman leaves its overlay storage mounted; unmount everything under our dir.
        let _ = self.podman(&["system", "reset", "-f"]);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let d = self.dir.path().display().to_string();
        for line in mounts.lines().rev() {
            if let Some(mp) = line.split(' ').nth(4).filter(|mp| mp.starts_with(&d)) {
                let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        if !std::thread::panicking() {
            let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            assert!(!mounts.contains(&d), "mount left behind under {d}");
        }
    }
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn cgroup_of(pid: &str, controller: &str) -> PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = text
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            ctrl.split(',')
                .any(|c| c == controller)
                .then(|| path.to_owned())
        })
        .unwrap();
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(rel.trim_start_matches('/'))
}

#[test]
fn podman_runs_containers_through_hako_runtime() {
    let p = Podman::new();
    let out = p.podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/busybox:hako",
        "sh",
        "-c",
        "echo hello; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", err(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");

    p.ok(&[
        "run",
        "-d",
        "--name",
        "p1",
        "--network",
        "none",
        "--memory",
        "64m",
        "--pids-limit",
        "33",
        "localhost/busybox:hako",
        "sleep",
        "1000",
    ]);
    let runtime = p.ok(&["inspect", "-f", "{{.OCIRuntime}}", "p1"]);
    assert!(runtime.trim().ends_with("hako-runtime"), "{runtime}");
    assert_eq!(p.ok(&["exec", "p1", "echo", "from exec"]), "from exec\n");
    let pid = p.ok(&["inspect", "-f", "{{.State.Pid}}", "p1"]);
    let pid = pid.trim();
    let mem = cgroup_of(pid, "memory");
    let limit = std::fs::read_to_string(mem.join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    let pids = std::fs::read_to_string(cgroup_of(pid, "pids").join("pids.max")).unwrap();
    assert_eq!(pids.trim(), "33");
    p.ok(&["stop", "-t", "1", "p1"]);
    let state = p.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "p1",
    ]);
    assert_eq!(state.trim(), "exited 137");
    p.ok(&["rm", "p1"]);
    assert!(!mem.exists(), "cgroup left behind");

    // -it: conmon hands the runtime a console socket; script(1) gives podman a terminal.
    let mut script = Command::new("script");
    script.args([
        "-qec",
        &p.shell_cmd("run -it --rm --network none localhost/busybox:hako sh -c 'tty; exit 5'"),
        "/dev/null",
    ]);
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
