//! Interop: Podman runs containers through `hako-runtime` (`podman --runtime PATH`). Every
//! Podman path (storage, run root, tmp dir, configuration) is private to the test, so no
//! system state is read or touched.

use hako_testkit::{images_dir, in_pty, Podman};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A private podman running containers with hako-runtime, with busybox as
/// `localhost/busybox:hako`.
fn podman() -> Podman {
    let p = Podman::with_runtime(Path::new(env!("CARGO_BIN_EXE_hako-runtime")));
    let tar = images_dir().join("busybox.tar");
    p.ok(&["import", tar.to_str().unwrap(), "localhost/busybox:hako"]);
    p
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
    let p = podman();
    let out = p
        .cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "localhost/busybox:hako",
            "sh",
            "-c",
            "echo hello; exit 3",
        ])
        .output()
        .unwrap();
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
