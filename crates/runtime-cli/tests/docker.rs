//! Interop: Docker runs containers through `hako-runtime` (`docker run --runtime hako`). The
//! test starts a private dockerd (own data root, exec root, socket and pidfile, on a private
//! containerd) so no system instance is touched, and stops it by pid.

use hako_testkit::{in_pty, Docker};
use std::path::Path;
use std::process::{Command, Output};

/// A private dockerd that knows hako-runtime as `--runtime hako`, with busybox as `busybox:hako`.
fn docker() -> Docker {
    let d = Docker::start_with(&[("hako", Path::new(env!("CARGO_BIN_EXE_hako-runtime")))]);
    d.import_busybox("busybox:hako");
    d
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn docker_runs_containers_through_hako_runtime() {
    let d = docker();
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
