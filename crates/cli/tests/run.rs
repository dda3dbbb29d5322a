//! `hako run` end to end: real namespaces, overlay mounts and cgroups, checked as a user sees
//! them (output, exit codes, files on the host).

mod common;

use common::{images_dir, wait_for, Root};
use std::process::Stdio;
use std::time::Duration;

#[test]
fn trixie_runs_on_the_bookworm_host_with_the_host_kernel() {
    let r = Root::new();
    r.ok(&[
        "import",
        images_dir().join("trixie.tar").to_str().unwrap(),
        "trixie",
    ]);
    let os = r.ok(&["run", "--rm", "trixie", "cat", "/etc/os-release"]);
    assert!(os.contains("VERSION_ID=\"13\""), "not Debian 13: {os}");
    assert!(os.contains("trixie"), "{os}");
    let host = std::fs::read_to_string("/etc/os-release").unwrap();
    assert!(
        host.contains("VERSION_ID=\"12\""),
        "the host is expected to be Debian 12"
    );
    let kernel = r.ok(&["run", "--rm", "trixie", "uname", "-r"]);
    let host_kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(kernel.trim(), host_kernel.trim());
    // A glibc userland from another Debian release works too, not just static busybox.
    let ls = r.ok(&[
        "run",
        "--rm",
        "trixie",
        "sh",
        "-c",
        "ls /usr/bin/apt && id -un",
    ]);
    assert_eq!(ls, "/usr/bin/apt\nroot\n");
}

#[test]
fn exit_codes_follow_docker() {
    let r = Root::with_busybox();
    assert_eq!(r.run(&["run", "--rm", "busybox", "true"]).0, 0);
    assert_eq!(
        r.run(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]).0,
        3
    );

    let (code, _, err) = r.run(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(code, 126);
    assert!(
        err.contains("exec: \"/etc/passwd\": permission denied"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one-line error: {err}");

    let (code, _, err) = r.run(&["run", "--rm", "busybox", "nosuchcommand"]);
    assert_eq!(code, 127);
    assert!(
        err.contains("exec: \"nosuchcommand\": executable file not found in $PATH"),
        "{err}"
    );
    let (code, _, err) = r.run(&["run", "--rm", "busybox", "/no/such/file"]);
    assert_eq!(code, 127);
    assert!(err.contains("no such file or directory"), "{err}");

    // PID 1 ignores signals it has no handler for, even from itself, so a child shell dies.
    let (code, _, _) = r.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "sh -c 'kill -SEGV $$'; exit $?",
    ]);
    assert_eq!(code, 139);
    // ...and a PID 1 killed with SIGKILL from the host gives 128+9 (see the kill test below).
}

#[test]
fn pid_one_hostname_and_process_isolation() {
    let r = Root::with_busybox();
    assert_eq!(
        r.ok(&["run", "--rm", "busybox", "sh", "-c", "echo $$"]),
        "1\n"
    );
    assert_eq!(
        r.ok(&["run", "--rm", "--hostname", "box1", "busybox", "hostname"]),
        "box1\n"
    );
    assert_eq!(
        r.ok(&[
            "run",
            "--rm",
            "-h",
            "box2",
            "busybox",
            "cat",
            "/etc/hostname"
        ]),
        "box2\n"
    );
    // By default the hostname is the short container id.
    r.ok(&[
        "run",
        "--name",
        "named",
        "busybox",
        "sh",
        "-c",
        "hostname > /hn",
    ]);
    let id = r.ok(&["ps", "-a", "-q", "--no-trunc"]).trim().to_string();
    assert_eq!(id.len(), 64);
    let upper = r.path().join("containers").join(&id).join("upper/hn");
    assert_eq!(std::fs::read_to_string(upper).unwrap().trim(), &id[..12]);
    r.ok(&["rm", "named"]);

    let ps = r.ok(&["run", "--rm", "busybox", "ps", "-o", "pid,comm"]);
    let lines: Vec<&str> = ps.lines().skip(1).collect();
    assert_eq!(lines.len(), 1, "only ps itself is visible: {ps}");
    assert!(lines[0].trim().starts_with("1 "), "{ps}");
    let ps = r.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "sleep 5 & ps -o pid,comm; kill %1",
    ]);
    assert_eq!(ps.lines().count(), 4, "sh, sleep and ps only: {ps}");
}

#[test]
fn standard_streams_pass_through() {
    let r = Root::with_busybox();
    let (code, out, err) = r.run(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 5",
    ]);
    assert_eq!((code, out.as_str(), err.as_str()), (5, "out\n", "err\n"));
    // Without -i the container's stdin is /dev/null; with -i it is ours.
    let mut child = r
        .cmd(&["run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO\n");
    assert_eq!(r.ok(&["run", "--rm", "busybox", "cat"]), "");
}

#[test]
fn image_config_precedence_like_docker() {
    let r = Root::new();
    let tar = images_dir().join("busybox.tar");
    r.ok(&[
        "import",
        "-c",
        "ENV GREETING=hello PATH=/bin:/usr/bin",
        "-c",
        "WORKDIR /srv/app",
        "-c",
        "USER hako",
        "-c",
        "ENTRYPOINT [\"echo\", \"ep\"]",
        "-c",
        "CMD [\"default\"]",
        tar.to_str().unwrap(),
        "cfg:1",
    ]);
    assert_eq!(r.ok(&["run", "--rm", "cfg:1"]), "ep default\n");
    assert_eq!(r.ok(&["run", "--rm", "cfg:1", "given"]), "ep given\n");
    // --entrypoint drops the image's Cmd as well.
    assert_eq!(
        r.ok(&["run", "--rm", "--entrypoint", "pwd", "cfg:1"]),
        "/srv/app\n"
    );
    assert_eq!(
        r.ok(&["run", "--rm", "--entrypoint", "", "cfg:1", "id", "-u"]),
        "1234\n"
    );
    let env = r.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=bye",
        "-e",
        "EXTRA=1",
        "--entrypoint",
        "env",
        "cfg:1",
    ]);
    assert!(
        env.contains("GREETING=bye\n") && env.contains("EXTRA=1\n"),
        "{env}"
    );
    assert!(
        env.contains("PATH=/bin:/usr/bin\n") && env.contains("HOME=/home/hako\n"),
        "{env}"
    );
    assert!(env.contains("HOSTNAME="), "{env}");
    assert_eq!(
        r.ok(&[
            "run",
            "--rm",
            "-w",
            "/tmp",
            "-u",
            "0",
            "--entrypoint",
            "sh",
            "cfg:1",
            "-c",
            "pwd; id -u"
        ]),
        "/tmp\n0\n"
    );
    // USER name:group and an unknown user.
    assert_eq!(
        r.ok(&[
            "run",
            "--rm",
            "-u",
            "hako:root",
            "--entrypoint",
            "id",
            "cfg:1",
            "-g"
        ]),
        "0\n"
    );
    let (code, _, err) = r.run(&["run", "--rm", "-u", "ghost", "cfg:1"]);
    assert_eq!(code, 125);
    assert!(err.contains("unable to find user ghost"), "{err}");
    let (code, _, err) = r.run(&["run", "--rm", "-w", "relative", "cfg:1"]);
    assert_eq!(code, 125);
    assert!(err.contains("absolute path"), "{err}");
    // No command anywhere.
    r.ok(&["import", tar.to_str().unwrap(), "nocmd"]);
    let (code, _, err) = r.run(&["run", "--rm", "nocmd"]);
    assert_eq!(code, 125);
    assert!(err.contains("No command specified"), "{err}");
}

#[test]
fn container_filesystem_is_isolated_and_docker_shaped() {
    let r = Root::with_busybox();
    let script = "set -e; \
        test -c /dev/null && test -c /dev/zero && test -c /dev/urandom && test -c /dev/tty; \
        test -d /dev/pts && test -d /dev/shm && test -d /dev/mqueue; \
        test -L /dev/fd && test -L /dev/ptmx; \
        grep -q ' /sys sysfs ro' /proc/mounts; \
        grep -q ' /proc proc rw' /proc/mounts; \
        test ! -s /proc/kcore; \
        ! touch /proc/sys/kernel/hostname 2>/dev/null; \
        test -s /etc/resolv.conf; grep -q localhost /etc/hosts; \
        grep CapBnd /proc/self/status; \
        ip link 2>/dev/null | grep -c 'state' || true; \
        echo written > /created-in-container";
    let out = r.ok(&["run", "--name", "fs", "busybox", "sh", "-c", script]);
    assert!(
        out.contains("00000000a80425fb"),
        "Docker's default capabilities: {out}"
    );
    // The write went to the container's upper layer, not to the image.
    let id = r.ok(&["ps", "-a", "-q", "--no-trunc"]).trim().to_string();
    assert!(r
        .path()
        .join("containers")
        .join(&id)
        .join("upper/created-in-container")
        .exists());
    let (code, _, _) = r.run(&[
        "run",
        "--rm",
        "busybox",
        "test",
        "-e",
        "/created-in-container",
    ]);
    assert_eq!(code, 1);
    // --network none: only loopback, and it is up.
    let links = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "cat",
        "/proc/net/dev",
    ]);
    assert_eq!(links.lines().count(), 3, "{links}");
    let ping = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        "127.0.0.1",
    ]);
    assert!(ping.contains("1 packets received"), "{ping}");
    // --read-only makes the root filesystem read-only.
    let (code, _, _) = r.run(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert_eq!(code, 1);
    r.ok(&["rm", "fs"]);
    assert!(
        !r.path().join("containers").join(&id).exists(),
        "rm removes the upper dir"
    );
}

#[test]
fn exited_containers_are_listed_and_removed_like_docker() {
    let r = Root::with_busybox();
    assert_eq!(r.run(&["run", "busybox", "sh", "-c", "exit 3"]).0, 3);
    r.ok(&["run", "--name", "second", "busybox", "true"]);
    let ps = r.ok(&["ps", "-a"]);
    let lines: Vec<&str> = ps.lines().collect();
    assert!(lines[0].starts_with("CONTAINER ID   IMAGE"), "{ps}");
    for col in ["COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"] {
        assert!(lines[0].contains(col), "{ps}");
    }
    assert_eq!(lines.len(), 3, "{ps}");
    assert!(
        lines[1].contains("second") && lines[1].contains("Exited (0)"),
        "{ps}"
    );
    assert!(
        lines[2].contains("Exited (3)") && lines[2].contains("ago"),
        "{ps}"
    );
    assert!(lines[2].contains("\"sh -c 'exit 3'\""), "{ps}");
    let generated = lines[2].split_whitespace().last().unwrap();
    let (adj, noun) = generated.split_once('_').expect("adjective_noun name");
    assert!(!adj.is_empty() && !noun.is_empty());
    // Running containers only by default.
    assert_eq!(r.ok(&["ps"]).lines().count(), 1);
    // Name conflicts are refused with Docker's message.
    let (code, _, err) = r.run(&["run", "--name", "second", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("is already in use by container"), "{err}");
    let (code, _, err) = r.run(&["rm", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such container: nosuch"), "{err}");
    r.ok(&["rm", "second", generated]);
    assert_eq!(r.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn bad_input_fails_cleanly() {
    let r = Root::with_busybox();
    let (code, _, err) = r.run(&["run", "--rm", "nosuchimage"]);
    assert_eq!(code, 125);
    assert!(
        err.starts_with("Unable to find image 'nosuchimage:latest' locally\n"),
        "{err}"
    );
    assert!(err.contains("registry"), "says why: {err}");
    let (code, _, err) = r.run(&["run", "--rm", "--network", "bogus", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("network bogus not found"), "{err}");
    for cmd in ["run", "create"] {
        let (code, _, err) = r.run(&[cmd, "--rm", "--bogus-flag", "busybox", "true"]);
        assert_eq!(code, 125);
        assert_eq!(err, "hako: unknown flag: --bogus-flag\n", "{cmd}");
    }
    let (code, _, err) = r.run(&["run", "--name", "bad/name", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("Invalid container name"), "{err}");
    // Failed starts leave nothing running and nothing mounted (checked on drop), and a failed
    // start without --rm stays "Created" like Docker's.
    assert_eq!(
        r.run(&["run", "--name", "broken", "busybox", "nosuch"]).0,
        127
    );
    assert!(r.ok(&["ps", "-a"]).contains("Created"));
    r.ok(&["rm", "broken"]);
}

/// Containers with a lease on the default network, read without running reconcile.
fn bridge_endpoints(r: &Root) -> usize {
    let (code, out, _) = r.run(&["network", "inspect", "bridge"]);
    if code != 0 {
        return 0; // not made yet
    }
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0]["Containers"].as_object().map_or(0, |m| m.len())
}

/// Every container this root has created, removed ones included (from its event log).
fn created_ids(r: &Root) -> Vec<String> {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    r.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until.to_string(),
        "--filter",
        "event=create",
        "--format",
        "{{.ID}}",
    ])
    .lines()
    .map(String::from)
    .collect()
}

/// The cgroups of this root's containers that exist (other suites' containers on the host
/// come and go meanwhile).
fn cgroups_of(r: &Root) -> Vec<String> {
    let ids = created_ids(r);
    common::hako_cgroup_dirs()
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            ids.iter().any(|id| name == format!("hako-{id}"))
        })
        .map(|p| p.display().to_string())
        .collect()
}

#[test]
fn set_up_failures_exit_125_with_the_reason_and_leave_nothing() {
    let r = Root::with_busybox();
    let empty = tempfile::tempdir().unwrap();
    let over_proc = format!("{}:/proc", empty.path().display());
    let cases: [(&[&str], &str); 3] = [
        (&["--tmpfs", "/x:bogus"], "mount tmpfs on /x"),
        // A directory bound onto a file.
        (&["-v", "/tmp:/etc/hosts"], "/etc/hosts"),
        (&["-v", &over_proc], "container setup failed"),
    ];
    let modes: [&[&str]; 4] = [&["--rm"], &[], &["-d"], &["-d", "--rm"]];
    for (flags, reason) in cases {
        for mode in modes {
            let mut args = vec!["run", "--name", "broken"];
            args.extend(mode);
            args.extend(flags);
            args.extend(["busybox", "true"]);
            // Each case ended with status 141 (SIGPIPE) and no message, at random.
            for _ in 0..3 {
                let (code, out, err) = r.run(&args);
                assert_eq!(code, 125, "{args:?}: {err}");
                assert!(out.is_empty(), "{args:?}: {out}");
                assert!(
                    err.starts_with("hako: ") && err.lines().count() == 1 && err.contains(reason),
                    "{args:?}: {err:?}"
                );
                // Undone at once, not by the next command's reconcile: cgroup, lease and,
                // with --rm, the row and directory. Without --rm the container stays
                // "Created", as Docker's does.
                assert_eq!(cgroups_of(&r), Vec::<String>::new(), "{args:?}");
                assert_eq!(bridge_endpoints(&r), 0, "{args:?}: a lease is left");
                let dirs = std::fs::read_dir(r.path().join("containers"))
                    .unwrap()
                    .count();
                if mode.contains(&"--rm") {
                    assert_eq!(dirs, 0, "{args:?}: a container directory is left");
                    assert_eq!(r.run(&["inspect", "broken"]).0, 1, "{args:?}");
                } else {
                    assert_eq!(dirs, 1, "{args:?}");
                    assert_eq!(
                        r.ok(&["inspect", "-f", "{{.State.Status}}", "broken"]),
                        "created\n"
                    );
                    r.ok(&["rm", "broken"]);
                }
            }
        }
        // create + start: `start` fails with the reason (Docker's status 1 for `start`).
        let mut create = vec!["create", "--name", "broken", "-p", "8080"];
        create.extend(flags);
        create.extend(["busybox", "true"]);
        r.ok(&create);
        let (code, _, err) = r.run(&["start", "broken"]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.lines().count() == 1 && err.contains(reason),
            "{flags:?}: {err:?}"
        );
        assert_eq!(cgroups_of(&r), Vec::<String>::new());
        assert_eq!(bridge_endpoints(&r), 0, "{flags:?}: a lease is left");
        assert_eq!(
            r.ok(&["inspect", "-f", "{{.State.Status}}", "broken"]),
            "created\n"
        );
        r.ok(&["rm", "broken"]);
    }
}

#[test]
fn a_run_or_exec_whose_output_reader_goes_away_ends() {
    let r = Root::with_busybox();
    r.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    // hako holds SIGPIPE blocked while it starts a container (set-up failures must not end
    // it by SIGPIPE), but not after: it relays the output itself (from a terminal with -t,
    // from pipes without), and a reader that has gone must end it, and the container or
    // process with it.
    for cmd in [
        "run --rm -t --network none busybox yes",
        "exec -t box yes",
        "run --rm --network none busybox yes",
        "exec box yes",
    ] {
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{} {cmd} | head -1", common::hako_bin()))
            .env("HAKO_ROOT", r.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let done = wait_for(20, || child.try_wait().unwrap().is_some());
        if !done {
            let _ = child.kill();
        }
        let out = child.wait_with_output().unwrap();
        assert!(done, "{cmd} | head -1 did not end");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "y", "{cmd}");
    }
    assert!(
        wait_for(10, || r.ok(&["ps", "-q"]).lines().count() == 1),
        "only box runs: {}",
        r.ok(&["ps"])
    );
    r.ok(&["rm", "-f", "box"]);
}

#[test]
fn cgroup_is_nested_under_the_caller_and_removed() {
    let r = Root::with_busybox();
    let out = r.ok(&["run", "--rm", "busybox", "cat", "/proc/self/cgroup"]);
    // The cgroup namespace hides the host path from the container.
    assert!(out.lines().all(|l| l.ends_with(":/")), "{out}");

    let mut child = r
        .cmd(&["run", "--rm", "busybox", "sleep", "30"])
        .spawn()
        .unwrap();
    let pid = wait_for_container_pid(&r, "sleep 30");
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    for line in mine.lines() {
        let (prefix, path) = line.rsplit_once(':').unwrap();
        let theirs = host_view
            .lines()
            .find(|l| l.starts_with(&format!("{prefix}:")))
            .unwrap();
        let expected = format!("{}/hako-", path.trim_end_matches('/'));
        assert!(
            theirs.contains(&expected),
            "{theirs} is not nested under {path}"
        );
    }
    nix_kill(pid, libc::SIGKILL);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137));
}

/// Finds the host pid of a process of one of `r`'s containers by its command line (other
/// suites on the host run `sleep 1000` in their containers too).
fn wait_for_container_pid(r: &Root, cmdline: &str) -> i32 {
    let mut found = 0;
    let ok = wait_for(10, || {
        let cgroups: Vec<String> = created_ids(r)
            .iter()
            .map(|id| format!("/hako-{id}\n"))
            .collect();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cl) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let cl = String::from_utf8_lossy(&cl).replace('\0', " ");
            let ours = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .is_ok_and(|c| cgroups.iter().any(|g| c.contains(g.as_str())));
            if cl.trim_end() == cmdline && ours {
                found = pid;
                return true;
            }
        }
        false
    });
    assert!(ok, "container process {cmdline:?} did not appear");
    found
}

fn nix_kill(pid: i32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) };
}

#[test]
fn signals_are_forwarded_and_ctrl_c_stops_the_container() {
    let r = Root::with_busybox();
    // SIGTERM reaches a PID 1 that handles it.
    let mut child = r
        .cmd(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'exit 42' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 6];
    use std::io::Read;
    stdout.read_exact(&mut buf).unwrap();
    nix_kill(child.id() as i32, libc::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(42));

    // A PID 1 without a handler ignores SIGINT; a second Ctrl-C kills it, and hako cleans up.
    let mut child = r
        .cmd(&["run", "--name", "sleeper", "busybox", "sleep", "1000"])
        .spawn()
        .unwrap();
    wait_for_container_pid(&r, "sleep 1000");
    assert!(r.ok(&["ps"]).contains("sleeper"));
    nix_kill(child.id() as i32, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(200));
    nix_kill(child.id() as i32, libc::SIGINT);
    assert_eq!(
        child.wait().unwrap().code(),
        Some(130 + 7),
        "killed: 128+SIGKILL"
    );
    assert!(r.ok(&["ps", "-a"]).contains("Exited (137)"));
    r.ok(&["rm", "sleeper"]);

    // --stop-timeout bounds the grace period after a single signal.
    let mut child = r
        .cmd(&[
            "run",
            "--rm",
            "--stop-timeout",
            "1",
            "busybox",
            "sleep",
            "1000",
        ])
        .spawn()
        .unwrap();
    wait_for_container_pid(&r, "sleep 1000");
    let t = std::time::Instant::now();
    nix_kill(child.id() as i32, libc::SIGTERM);
    assert_eq!(child.wait().unwrap().code(), Some(137));
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[test]
fn killing_hako_kills_the_container_and_state_recovers() {
    let r = Root::with_busybox();
    let mut child = r
        .cmd(&["run", "--name", "orphan", "busybox", "sleep", "1000"])
        .spawn()
        .unwrap();
    let pid = wait_for_container_pid(&r, "sleep 1000");
    nix_kill(child.id() as i32, libc::SIGKILL);
    child.wait().unwrap();
    assert!(
        wait_for(5, || !std::path::Path::new(&format!("/proc/{pid}"))
            .exists()),
        "container outlived hako"
    );
    // The next command notices the dead run, records it and removes its cgroup.
    let ps = r.ok(&["ps", "-a"]);
    assert!(ps.contains("orphan") && ps.contains("Exited (255)"), "{ps}");
    r.ok(&["rm", "orphan"]);

    // Same with --rm: the container disappears entirely.
    let mut child = r
        .cmd(&["run", "--rm", "busybox", "sleep", "1000"])
        .spawn()
        .unwrap();
    wait_for_container_pid(&r, "sleep 1000");
    nix_kill(child.id() as i32, libc::SIGKILL);
    child.wait().unwrap();
    assert!(wait_for(5, || r.ok(&["ps", "-a", "-q"]).is_empty()));
}

/// The state letter of /proc/PID/stat (`R`, `S`, `Z`, ...), if the process exists.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// The children of `parent` (by /proc/PID/stat's ppid).
fn children_of(parent: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let ppid = stat[close + 1..].split_whitespace().nth(1);
        if ppid.and_then(|p| p.parse::<i32>().ok()) == Some(parent) {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_container_whose_init_is_a_zombie_counts_as_exited() {
    use std::os::unix::process::CommandExt;
    let r = Root::with_busybox();
    // A parent that never reaps: a child subreaper that starts `hako run` in the background
    // and then becomes `sleep`. When that `hako` is killed, the container's init (killed by
    // its parent-death signal) is reparented to the keeper and stays a zombie, as under an
    // init that reaps lazily or a stopped parent.
    let mut keeper = std::process::Command::new("sh");
    keeper
        .arg("-c")
        .arg(format!(
            "{} run --name undead busybox sleep 1001 & exec sleep 3600",
            common::hako_bin()
        ))
        .env("HAKO_ROOT", r.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl only sets an attribute of the forked child before it execs.
    unsafe {
        keeper.pre_exec(|| {
            if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    /// Kills the keeper (and so lets its zombies be reaped) however the test ends.
    struct Keeper(std::process::Child);
    impl Drop for Keeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let keeper = Keeper(keeper.spawn().unwrap());
    let init = wait_for_container_pid(&r, "sleep 1001");
    let keeper_pid = keeper.0.id() as i32;
    let hako: Vec<i32> = children_of(keeper_pid)
        .into_iter()
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "hako")
        })
        .collect();
    assert_eq!(hako.len(), 1, "the keeper's hako run: {hako:?}");
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.State.Status}}", "undead"]),
        "running\n"
    );
    nix_kill(hako[0], libc::SIGKILL);
    assert!(
        wait_for(10, || proc_state(init) == Some('Z')
            && proc_state(hako[0]) == Some('Z')),
        "the container's init and its hako stay unreaped: {:?} {:?}",
        proc_state(init),
        proc_state(hako[0])
    );
    // Both are dead, though /proc still lists them: the container exited.
    let ps = r.ok(&["ps", "-a"]);
    assert!(ps.contains("undead") && ps.contains("Exited (255)"), "{ps}");
    assert_eq!(r.ok(&["ps", "-q"]), "", "not running");
    r.ok(&["rm", "undead"]);
    drop(keeper);
}

#[test]
fn rm_force_kills_a_running_container() {
    let r = Root::with_busybox();
    let mut child = r
        .cmd(&["run", "--name", "victim", "busybox", "sleep", "1000"])
        .spawn()
        .unwrap();
    wait_for_container_pid(&r, "sleep 1000");
    let (code, _, err) = r.run(&["rm", "victim"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("You cannot remove a running container"),
        "{err}"
    );
    r.ok(&["rm", "-f", "victim"]);
    assert_eq!(child.wait().unwrap().code(), Some(137));
    assert_eq!(r.ok(&["ps", "-a", "-q"]), "");
}

#[test]
fn image_symlinks_cannot_redirect_mounts_or_workdir_to_the_host() {
    let r = Root::new();
    let staging = tempfile::tempdir().unwrap();
    let rootfs = staging.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    let st = std::process::Command::new("tar")
        .args([
            "-xf",
            images_dir().join("busybox.tar").to_str().unwrap(),
            "-C",
            rootfs.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success());
    // /etc/hosts and /dev point at host paths; mounting through them must stay in the rootfs.
    let marker = format!("/var/tmp/hako-escape-{}", std::process::id());
    std::os::unix::fs::symlink(&marker, rootfs.join("etc/hosts")).unwrap();
    std::fs::remove_dir(rootfs.join("dev")).unwrap();
    std::os::unix::fs::symlink(format!("{marker}-dev"), rootfs.join("dev")).unwrap();
    let tar = staging.path().join("evil.tar");
    let st = std::process::Command::new("tar")
        .args([
            "-cf",
            tar.to_str().unwrap(),
            "-C",
            rootfs.to_str().unwrap(),
            ".",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    r.ok(&["import", tar.to_str().unwrap(), "evil"]);
    let out = r.ok(&[
        "run",
        "--rm",
        "evil",
        "sh",
        "-c",
        "cat /etc/hosts | head -1; test -c /dev/null && echo dev-ok",
    ]);
    assert!(out.contains("localhost") && out.contains("dev-ok"), "{out}");
    assert!(
        !std::path::Path::new(&marker).exists(),
        "a mount followed an image symlink to the host"
    );
    assert!(!std::path::Path::new(&format!("{marker}-dev")).exists());
    // CVE-2024-21626: a working directory through /proc/self/fd must be refused.
    // Whatever descriptor number it names, open or not, it never becomes the working directory.
    for fd in 3..12 {
        let dir = format!("/proc/self/fd/{fd}");
        let (code, _, err) = r.run(&["run", "--rm", "-w", &dir, "evil", "pwd"]);
        assert_eq!(code, 125, "{dir}: {err}");
        assert!(err.contains("working directory"), "{err}");
    }
}

#[test]
fn init_is_pid_1_reaps_orphans_forwards_signals_and_keeps_exit_codes() {
    let r = Root::with_busybox();
    // The inner sh exits at once, so its background sleep is reparented to PID 1 and dies as
    // an orphan: only a reaping PID 1 keeps it from staying a zombie until the container ends.
    let ps = r.ok(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "sh -c 'sleep 0.1 &'; sleep 1; ps -o pid,stat,args",
    ]);
    let pid1 = ps
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap();
    assert!(pid1.contains("/dev/init -- sh -c"), "{ps}");
    assert!(
        !ps.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(1) == Some("Z")),
        "a zombie was left: {ps}"
    );
    assert!(
        !ps.lines()
            .any(|l| l.split_whitespace().nth(2) == Some("sleep")),
        "the orphan still runs: {ps}"
    );

    assert_eq!(
        r.run(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 3"])
            .0,
        3
    );
    assert_eq!(
        r.run(&["run", "--rm", "--init", "busybox", "sh", "-c", "kill -9 $$"])
            .0,
        137
    );
    let (code, _, err) = r.run(&["run", "--rm", "--init", "busybox", "nosuchcommand"]);
    assert_eq!(code, 127);
    assert!(
        err.contains("\"nosuchcommand\": no such file or directory"),
        "{err}"
    );

    // stop's SIGTERM goes to PID 1, the init, which must hand it to the shell's trap.
    let id = r.ok(&[
        "run",
        "-d",
        "--init",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.1; done",
    ]);
    let id = id.trim();
    assert!(wait_for(10, || r.ok(&["logs", id]).contains("ready")));
    r.ok(&["stop", id]);
    assert_eq!(r.ok(&["logs", id]), "ready\ngot TERM\n");
    assert_eq!(
        r.ok(&[
            "inspect",
            "-f",
            "{{.State.ExitCode}} {{.HostConfig.Init}}",
            id
        ]),
        "7 true\n"
    );
    // The command shown is the user's, as in docker; the init is an implementation detail.
    let ps = r.ok(&["ps", "-a", "--no-trunc", "--format", "{{.Command}}"]);
    assert!(!ps.contains("/dev/init"), "{ps}");
    r.ok(&["rm", id]);
    // Nothing of the init lands in the container's writable layer.
    let id = r.ok(&["create", "--init", "busybox", "true"]);
    r.ok(&["start", id.trim()]);
    assert_eq!(r.ok(&["wait", id.trim()]), "0\n");
    let diff = r.ok(&["diff", id.trim()]);
    assert!(!diff.contains("/dev"), "{diff}");
    r.ok(&["rm", id.trim()]);
}

#[test]
fn seccomp_default_profile_unconfined_and_custom_files() {
    let r = Root::with_busybox();
    r.ok(&[
        "import",
        images_dir().join("trixie.tar").to_str().unwrap(),
        "trixie",
    ]);
    let mode = |extra: &[&str]| {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["busybox", "grep", "^Seccomp:", "/proc/self/status"]);
        r.ok(&a).split_whitespace().nth(1).unwrap().to_string()
    };
    assert_eq!(mode(&[]), "2", "the default profile filters");
    assert_eq!(mode(&["--security-opt", "seccomp=unconfined"]), "0");
    assert_eq!(mode(&["--privileged"]), "0");

    // kexec_load (246) is denied with EPERM; a number past every syscall the profile knows
    // answers ENOSYS, so libc falls back to an older call; unshare(CLONE_NEWNS) needs
    // CAP_SYS_ADMIN, and with it the profile lets it through.
    let errnos = "$! = 0; syscall(246, 0, 0, 0, 0); print $!+0, q( ); $! = 0; syscall(470);\
                  print $!+0, q( ); $! = 0; syscall(272, 0x20000); print $!+0, qq(\\n)";
    assert_eq!(
        r.ok(&["run", "--rm", "trixie", "perl", "-e", errnos]),
        "1 38 1\n"
    );
    assert_eq!(
        r.ok(&[
            "run",
            "--rm",
            "--cap-add",
            "SYS_ADMIN",
            "trixie",
            "perl",
            "-e",
            errnos
        ]),
        "1 38 0\n"
    );

    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/x",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("Operation not permitted"), "{err}");
    // The profile is read at create time and kept: a later start does not reread the file.
    let id = r.ok(&["create", "--security-opt", &opt, "busybox", "mkdir", "/y"]);
    std::fs::remove_file(&profile).unwrap();
    r.ok(&["start", id.trim()]);
    assert_eq!(r.ok(&["wait", id.trim()]), "1\n");
    let so = r.ok(&[
        "inspect",
        "-f",
        "{{json .HostConfig.SecurityOpt}}",
        id.trim(),
    ]);
    assert!(so.contains("seccomp="), "{so}");
    r.ok(&["rm", id.trim()]);

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"defaultAction\": ").unwrap();
    let opt = format!("seccomp={}", bad.display());
    for sub in ["run", "create"] {
        let (code, _, err) = r.run(&[sub, "--name", "nope", "--security-opt", &opt, "busybox"]);
        assert_eq!(code, 125);
        assert!(err.contains("decoding seccomp profile failed"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let (code, _, err) = r.run(&["run", "--security-opt", "seccomp=/no/such.json", "busybox"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("opening seccomp profile (/no/such.json) failed"),
        "{err}"
    );
    assert_eq!(
        r.ok(&["ps", "-aq"]),
        "",
        "nothing is created for a bad profile"
    );

    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "--security-opt",
        "bogus=1",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("Invalid --security-opt"), "{err}");
    // No LSM is active on the hosts these tests run on (checked, as hako does): a warning.
    let lsm_active = std::fs::read_to_string("/sys/kernel/security/lsm")
        .is_ok_and(|l| l.contains("apparmor") || l.contains("selinux"))
        || std::path::Path::new("/sys/module/apparmor/parameters/enabled").exists();
    if !lsm_active {
        let (code, _, err) = r.run(&[
            "run",
            "--rm",
            "--security-opt",
            "apparmor=x",
            "busybox",
            "true",
        ]);
        assert_eq!(code, 0);
        assert!(err.contains("WARNING: apparmor is not enabled"), "{err}");
    }
    // exec'd processes live under the container's filter too.
    let id = r.ok(&["run", "-d", "busybox", "sleep", "30"]);
    let st = r.ok(&["exec", id.trim(), "grep", "^Seccomp:", "/proc/self/status"]);
    assert!(st.contains('2'), "{st}");
    r.ok(&["rm", "-f", id.trim()]);
}

#[test]
fn a_foreground_runs_output_is_copied_logged_and_kept_apart_by_stream() {
    let r = Root::with_busybox();
    let script = "echo out; echo err >&2; printf 'no newline'";
    let (code, out, err) = r.run(&["run", "--name", "fg", "busybox", "sh", "-c", script]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "out\nno newline");
    assert_eq!(err, "err\n");
    // `docker logs` of a container that ran in the foreground shows its output, each line on
    // the stream it was written to.
    let (code, out, err) = r.run(&["logs", "fg"]);
    assert_eq!(code, 0, "{err}");
    // An unended line is logged as it was written, as Docker's json-file does.
    assert_eq!(out, "out\nno newline");
    assert_eq!(err, "err\n");
    // A later start (detached: its monitor writes) appends to the same log.
    r.ok(&["start", "fg"]);
    r.ok(&["wait", "fg"]);
    assert_eq!(r.ok(&["logs", "fg"]), "out\nno newlineout\nno newline");
    r.ok(&["rm", "fg"]);
}

#[test]
fn input_the_container_never_reads_does_not_stall_a_foreground_run() {
    let r = Root::with_busybox();
    // `yes` fills the container's stdin pipe at once; the container ends without reading it.
    let child = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "yes | {} run --rm -i --network none busybox sh -c 'echo done'",
            common::hako_bin()
        ))
        .env("HAKO_ROOT", r.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    let done = wait_for(20, || waiter.is_finished());
    if !done {
        // The shell and what it started, by the pids we made.
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-P", &pid.to_string()])
            .status();
    }
    let out = waiter.join().unwrap();
    assert!(done, "run -i with unread input did not end");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "done\n");
    // A command that closes its outputs first still gets its input.
    let mut child = r
        .cmd(&[
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "exec >&- 2>&-; read x; test \"$x\" = hello",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // Typed well after the outputs have closed.
        std::thread::sleep(Duration::from_millis(1000));
        stdin.write_all(b"hello\n").unwrap();
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // And input it reads arrives whole, then its end.
    let mut child = r
        .cmd(&[
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            "busybox",
            "wc",
            "-c",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(&vec![b'x'; 1 << 20]).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1048576");
}

#[test]
fn run_a_shows_only_the_attached_streams_and_logs_all() {
    let r = Root::with_busybox();
    let script = "echo out; echo err >&2";
    let (code, out, err) = r.run(&[
        "run", "--name", "a1", "-a", "stdout", "busybox", "sh", "-c", script,
    ]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "out\n", ""));
    let (code, out, err) = r.run(&["run", "--rm", "-a", "STDERR", "busybox", "sh", "-c", script]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", "err\n"));
    let (code, out, err) = r.run(&[
        "run", "--rm", "-a", "stdout", "-a", "stderr", "busybox", "sh", "-c", script,
    ]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "out\n", "err\n"));
    // What is not shown is still logged.
    let (_, out, err) = r.run(&["logs", "a1"]);
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    // inspect records the attached streams as Docker's Config does.
    let streams = "{{.Config.AttachStdin}} {{.Config.AttachStdout}} {{.Config.AttachStderr}}";
    assert_eq!(
        r.ok(&["inspect", "-f", streams, "a1"]).trim(),
        "false true false"
    );
    r.ok(&["create", "--name", "a2", "-i", "busybox", "true"]);
    r.ok(&["run", "-d", "-i", "--name", "a3", "busybox", "true"]);
    assert_eq!(
        r.ok(&["inspect", "-f", streams, "a2"]).trim(),
        "true true true"
    );
    assert_eq!(
        r.ok(&["inspect", "-f", streams, "a3"]).trim(),
        "false false false"
    );
    r.ok(&["rm", "-f", "a2", "a3"]);
    // -t without -i: the terminal's output is stdout.
    let (code, out, _) = r.run(&[
        "run", "--rm", "-t", "-a", "stderr", "busybox", "echo", "hidden",
    ]);
    assert_eq!((code, out.as_str()), (0, ""));
    // Docker's refusals, and nothing made.
    for (args, msg) in [
        (vec!["run", "-d", "-a", "stdout", "busybox", "true"], "Conflicting options: -a and -d"),
        (
            vec!["run", "-a", "stdot", "busybox", "true"],
            "invalid argument \"stdot\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR",
        ),
        (vec!["create", "-a", "stdout", "busybox", "true"], "-a/--attach applies to `run`"),
    ] {
        let (code, _, err) = r.run(&args);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    assert_eq!(r.ok(&["ps", "-aq"]).lines().count(), 1);
    r.ok(&["rm", "a1"]);
}
