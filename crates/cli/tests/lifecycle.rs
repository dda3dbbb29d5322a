//! create/start/restart, resource limits, capabilities, ulimits, volumes and other `run` flags.

mod common;

use common::Root;

/// The container's cgroup directory in the v1 pids hierarchy (or the v2 tree).
fn cgroup_file(id: &str, v1_controller: &str, file: &str) -> String {
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let hierarchy = if std::path::Path::new("/sys/fs/cgroup")
        .join(v1_controller)
        .is_dir()
    {
        v1_controller
    } else {
        ""
    };
    let base = mine
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            let matches = if hierarchy.is_empty() {
                ctrl.is_empty()
            } else {
                ctrl.split(',').any(|c| c == v1_controller)
            };
            matches.then(|| path.to_string())
        })
        .unwrap();
    let p = std::path::Path::new("/sys/fs/cgroup")
        .join(hierarchy)
        .join(base.trim_start_matches('/'))
        .join(format!("hako-{id}"))
        .join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn limits_reach_the_cgroup_and_bad_values_are_refused() {
    let r = Root::with_busybox();
    let id = r.ok(&[
        "run",
        "-d",
        "-m",
        "64m",
        "--pids-limit",
        "20",
        "--cpus",
        "0.5",
        "--cpu-shares",
        "512",
        "busybox",
        "sleep",
        "30",
    ]);
    let id = id.trim();
    assert_eq!(
        cgroup_file(id, "memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(cgroup_file(id, "pids", "pids.max"), "20");
    assert_eq!(cgroup_file(id, "cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(cgroup_file(id, "cpu", "cpu.shares"), "512");
    // The pids limit is enforced.
    let (code, out, err) = r.run(&[
        "run",
        "--rm",
        "--pids-limit",
        "5",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6 7 8; do sleep 2 & done; echo spawned",
    ]);
    assert_ne!(code, 0);
    assert_eq!(out, "");
    assert!(err.contains("can't fork"), "{err}");
    r.ok(&["rm", "-f", id]);

    let (code, _, err) = r.run(&["run", "--rm", "-m", "lots", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'"),
        "{err}"
    );
    let (code, _, err) = r.run(&["run", "--rm", "--cap-add", "FLY", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("unknown capability: \"FLY\""), "{err}");
    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "--sysctl",
        "kernel.panic=1",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("not allowed"), "{err}");
}

#[test]
fn capabilities_ulimits_and_security_options() {
    let r = Root::with_busybox();
    let caps = r.ok(&[
        "run",
        "--rm",
        "--cap-add",
        "NET_ADMIN",
        "--cap-drop",
        "CHOWN",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    // Docker's default set (0xa80425fb) plus NET_ADMIN (bit 12) minus CHOWN (bit 0).
    assert!(caps.contains("00000000a80435fa"), "{caps}");
    let caps = r.ok(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "busybox",
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    assert!(caps.contains("0000000000000000"), "{caps}");
    let (code, _, _) = r.run(&[
        "run",
        "--rm",
        "--cap-drop",
        "CHOWN",
        "busybox",
        "chown",
        "1:1",
        "/tmp",
    ]);
    assert_eq!(code, 1, "without CAP_CHOWN chown fails");
    assert_eq!(
        r.ok(&[
            "run",
            "--rm",
            "--ulimit",
            "nofile=100:200",
            "busybox",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn"
        ]),
        "100\n200\n"
    );
    // Above the host's hard limit: clamped with a warning, never a failure.
    let (code, out, err) = r.run(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=1048576:1048576",
        "busybox",
        "sh",
        "-c",
        "ulimit -Hn",
    ]);
    assert_eq!(code, 0, "{err}");
    let host_hard = nix_hard_nofile();
    if host_hard < 1_048_576 {
        assert!(err.contains("WARNING") && err.contains("clamped"), "{err}");
        assert_eq!(out.trim(), host_hard.to_string());
    }
    let nnp = r.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "grep",
        "NoNewPrivs",
        "/proc/self/status",
    ]);
    assert!(nnp.contains('1'), "{nnp}");
    // --privileged: all capabilities, writable /sys, no masked paths.
    let out = r.ok(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "grep CapEff /proc/self/status; grep ' /sys ' /proc/mounts",
    ]);
    let held = std::fs::read_to_string("/proc/self/status").unwrap();
    let held = held
        .lines()
        .find_map(|l| l.strip_prefix("CapPrm:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(
        out.contains(&held) && out.contains("sysfs rw"),
        "{out} (hako holds {held})"
    );
}

fn nix_hard_nofile() -> u64 {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit fills the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) };
    l.rlim_max
}

#[test]
fn volumes_binds_and_tmpfs() {
    let r = Root::with_busybox();
    assert_eq!(r.ok(&["volume", "create", "data"]), "data\n");
    r.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/srv",
        "busybox",
        "sh",
        "-c",
        "echo persisted > /srv/f",
    ]);
    assert_eq!(
        r.ok(&[
            "run",
            "--rm",
            "-v",
            "data:/srv:ro",
            "busybox",
            "cat",
            "/srv/f"
        ]),
        "persisted\n"
    );
    let (code, _, _) = r.run(&[
        "run",
        "--rm",
        "-v",
        "data:/srv:ro",
        "busybox",
        "touch",
        "/srv/g",
    ]);
    assert_eq!(code, 1, "read-only volume");
    // A new named volume is filled with the image's content at its mount point.
    assert!(r
        .ok(&["run", "--rm", "-v", "etcvol:/etc", "busybox", "ls", "/etc"])
        .contains("passwd"));
    let ls = r.ok(&["volume", "ls"]);
    assert!(
        ls.starts_with("DRIVER    VOLUME NAME") && ls.contains("data") && ls.contains("etcvol"),
        "{ls}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&r.ok(&["volume", "inspect", "data"])).unwrap();
    assert_eq!(inspect[0]["Name"], "data");
    assert_eq!(inspect[0]["Driver"], "local");
    assert_eq!(
        r.ok(&[
            "volume",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}}",
            "data",
            "etcvol"
        ]),
        "data local\netcvol local\n"
    );

    // In use → refused; free again after rm.
    r.ok(&[
        "run",
        "--name",
        "user",
        "-v",
        "data:/srv",
        "busybox",
        "true",
    ]);
    let (code, _, err) = r.run(&["volume", "rm", "data"]);
    assert_eq!(code, 1);
    assert!(err.contains("volume is in use"), "{err}");
    r.ok(&["rm", "user"]);
    r.ok(&["volume", "rm", "data", "etcvol"]);

    // Anonymous volume: kept by rm, removed by rm -v and by --rm.
    r.ok(&[
        "run", "--name", "anon", "-v", "/cache", "busybox", "touch", "/cache/x",
    ]);
    assert_eq!(r.ok(&["volume", "ls", "-q"]).lines().count(), 1);
    r.ok(&["rm", "-v", "anon"]);
    assert_eq!(r.ok(&["volume", "ls", "-q"]), "");
    r.ok(&["run", "--rm", "-v", "/cache", "busybox", "true"]);
    assert_eq!(r.ok(&["volume", "ls", "-q"]), "");

    // Bind mounts: a missing host directory is created, as Docker's -v does.
    let host = tempfile::tempdir().unwrap();
    let src = host.path().join("made-by-hako");
    let spec = format!("{}:/b", src.display());
    r.ok(&[
        "run",
        "--rm",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "echo hi > /b/x",
    ]);
    assert_eq!(std::fs::read_to_string(src.join("x")).unwrap(), "hi\n");
    let ro = format!("{}:/b:ro", src.display());
    assert_eq!(
        r.run(&["run", "--rm", "-v", &ro, "busybox", "touch", "/b/y"])
            .0,
        1
    );
    let (code, _, err) = r.run(&["run", "--rm", "-v", "relative/path:/x", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("invalid"), "{err}");

    // --mount: same mounts, but a missing bind source is an error rather than created.
    let m = format!("type=bind,source={},target=/m,readonly", src.display());
    assert_eq!(
        r.ok(&["run", "--rm", "--mount", &m, "busybox", "cat", "/m/x"]),
        "hi\n"
    );
    let missing = format!(
        "type=bind,source={}/absent,target=/m",
        host.path().display()
    );
    let (code, _, err) = r.run(&["run", "--rm", "--mount", &missing, "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("bind source path does not exist"), "{err}");
    let t = r.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,target=/t",
        "busybox",
        "grep",
        " /t ",
        "/proc/mounts",
    ]);
    assert!(t.contains("tmpfs"), "{t}");

    let out = r.ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/scratch:size=1m",
        "busybox",
        "grep",
        "/scratch",
        "/proc/mounts",
    ]);
    assert!(out.contains("tmpfs") && out.contains("size=1024k"), "{out}");
}

#[test]
fn create_start_restart_keep_the_writable_layer() {
    let r = Root::with_busybox();
    let id = r.ok(&[
        "create",
        "--name",
        "job",
        "busybox",
        "sh",
        "-c",
        "echo run >> /runs; cat /runs | wc -l",
    ]);
    assert_eq!(id.trim().len(), 64);
    assert!(r.ok(&["ps", "-a"]).contains("Created"));
    assert_eq!(r.ok(&["start", "job"]), "job\n");
    assert_eq!(r.ok(&["wait", "job"]), "0\n");
    r.ok(&["start", "job"]);
    r.ok(&["wait", "job"]);
    assert_eq!(r.ok(&["logs", "job"]), "1\n2\n");
    r.ok(&["rm", "job"]);

    r.ok(&["run", "-d", "--name", "svc", "busybox", "sleep", "1000"]);
    assert_eq!(r.ok(&["restart", "-t", "0", "svc"]), "svc\n");
    assert!(r.ok(&["ps"]).contains("svc"));
    r.ok(&["rm", "-f", "svc"]);
}

#[test]
fn hosts_dns_env_file_and_group_add() {
    let r = Root::with_busybox();
    let out = r.ok(&[
        "run",
        "--rm",
        "--add-host",
        "db:10.1.2.3",
        "--dns",
        "9.9.9.9",
        "busybox",
        "sh",
        "-c",
        // -w: the container's own line names its hex id, which may contain "db".
        "grep -w db /etc/hosts; grep nameserver /etc/resolv.conf",
    ]);
    assert_eq!(out, "10.1.2.3\tdb\nnameserver 9.9.9.9\n");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("env");
    std::fs::write(&f, "# comment\nA=from-file\nB=from-file\n").unwrap();
    let out = r.ok(&[
        "run",
        "--rm",
        "--env-file",
        f.to_str().unwrap(),
        "-e",
        "B=from-flag",
        "busybox",
        "sh",
        "-c",
        "echo $A $B",
    ]);
    assert_eq!(out, "from-file from-flag\n");
    assert_eq!(
        r.ok(&[
            "run",
            "--rm",
            "-u",
            "hako",
            "--group-add",
            "1234",
            "--group-add",
            "65534",
            "busybox",
            "id",
            "-G"
        ]),
        "1234 65534\n"
    );
    let (code, _, err) = r.run(&["run", "--rm", "--add-host", "bad", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("bad format for add-host"), "{err}");
}

#[test]
fn commit_makes_a_new_layered_image() {
    let r = Root::with_busybox();
    r.ok(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo hello > /greeting; rm /etc/group; mkdir /data",
    ]);
    let id = r.ok(&[
        "commit",
        "-m",
        "add greeting",
        "-a",
        "Lab <lab@example.com>",
        "-c",
        "CMD [\"cat\", \"/greeting\"]",
        "src",
        "mybox:v2",
    ]);
    assert!(id.starts_with("sha256:") && id.trim().len() == 71, "{id}");
    assert!(r.ok(&["images"]).contains("mybox"));
    assert_eq!(r.ok(&["run", "--rm", "mybox:v2"]), "hello\n");
    // The deletion is a whiteout in the new layer.
    assert_eq!(r.run(&["run", "--rm", "mybox:v2", "ls", "/etc/group"]).0, 1);
    assert_eq!(
        r.run(&["run", "--rm", "mybox:v2", "test", "-d", "/data"]).0,
        0
    );
    // hako's own files are not part of the image.
    assert!(
        r.ok(&["run", "--rm", "mybox:v2", "cat", "/etc/hostname"])
            .trim()
            .len()
            == 12
    );
    let inspect: serde_json::Value = serde_json::from_str(&r.ok(&["inspect", "src"])).unwrap();
    assert_eq!(inspect[0]["State"]["Status"], "exited");
    // A running container can be committed too (it is frozen meanwhile).
    r.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo x > /x; sleep 100",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    r.ok(&["commit", "live", "live:snap"]);
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.State.Status}}", "live"]),
        "running\n"
    );
    assert_eq!(r.ok(&["run", "--rm", "live:snap", "cat", "/x"]), "x\n");
    r.ok(&["rm", "-f", "live", "src"]);
}

#[test]
fn pid_ipc_uts_modes() {
    let r = Root::with_busybox();
    // host pid namespace: the host's processes are visible.
    let n: usize = r
        .ok(&[
            "run",
            "--rm",
            "--pid",
            "host",
            "busybox",
            "sh",
            "-c",
            "ls /proc | grep -c '^[0-9]'",
        ])
        .trim()
        .parse()
        .unwrap();
    assert!(n > 10, "{n} processes");
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(
        r.ok(&["run", "--rm", "--uts", "host", "busybox", "hostname"]),
        host_name
    );
    r.ok(&["run", "-d", "--name", "shared", "busybox", "sleep", "100"]);
    let ps = r.ok(&[
        "run",
        "--rm",
        "--pid",
        "container:shared",
        "--ipc",
        "container:shared",
        "busybox",
        "ps",
        "-o",
        "comm",
    ]);
    assert!(ps.contains("sleep"), "{ps}");
    let (code, _, err) = r.run(&["run", "--rm", "--pid", "bogus", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("invalid --pid mode"), "{err}");
    r.ok(&["rm", "-f", "shared"]);
}

#[test]
fn update_and_devices() {
    let r = Root::with_busybox();
    let id = r.ok(&["run", "-d", "--pids-limit", "50", "busybox", "sleep", "100"]);
    let id = id.trim();
    r.ok(&["update", "--pids-limit", "7", "-m", "32m", id]);
    assert_eq!(cgroup_file(id, "pids", "pids.max"), "7");
    assert_eq!(
        cgroup_file(id, "memory", "memory.limit_in_bytes"),
        (32u64 << 20).to_string()
    );
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.HostConfig.PidsLimit}}", id]),
        "7\n"
    );
    let (code, _, err) = r.run(&["update", "-m", "lots", id]);
    assert_eq!(code, 125, "a bad flag value, as Docker's CLI reports it");
    assert!(err.contains("invalid size"), "{err}");
    r.ok(&["rm", "-f", id]);

    // --device recreates a host device node at the given path.
    let out = r.ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/xnull",
        "busybox",
        "sh",
        "-c",
        "test -c /dev/xnull && echo ok > /dev/xnull && echo char",
    ]);
    assert_eq!(out, "char\n");
    let (code, _, err) = r.run(&["run", "--rm", "--device", "/dev/nosuch", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("error gathering device information"), "{err}");
}

#[test]
fn start_a_attaches_from_the_first_line_and_returns_the_exit_code() {
    let r = Root::with_busybox();
    let id = r.ok(&[
        "create",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 6",
    ]);
    let id = id.trim();
    // Twice: a second start attaches to the new run's output only.
    for _ in 0..2 {
        let (code, out, err) = r.run(&["start", "-a", id]);
        assert_eq!(code, 6, "{err}");
        assert_eq!(out, "out\n");
        assert_eq!(err, "err\n");
    }
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", id]),
        "exited 6\n"
    );
    // A -t container is attached through its terminal; a quick exit still reports its status.
    let tid = r.ok(&[
        "create",
        "-t",
        "busybox",
        "sh",
        "-c",
        "echo tty-out; exit 7",
    ]);
    let (code, out, _) = r.run(&["start", "-a", tid.trim()]);
    assert_eq!(code, 7);
    assert!(out.contains("tty-out"), "{out}");
    let (code, _, err) = r.run(&["start", "-a", id, tid.trim()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot start and attach multiple containers"),
        "{err}"
    );
    r.ok(&["rm", id, tid.trim()]);
}

#[test]
fn volume_ls_format_template_and_json() {
    let r = Root::new();
    r.ok(&["volume", "create", "--label", "tier=db", "fmtv"]);
    assert_eq!(
        r.ok(&[
            "volume",
            "ls",
            "--format",
            "{{.Name}} {{.Driver}} {{.Labels}}"
        ]),
        "fmtv local tier=db\n"
    );
    let json = r.ok(&["volume", "ls", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["Name"], "fmtv");
    assert!(
        v["Mountpoint"].as_str().unwrap().ends_with("/fmtv/_data"),
        "{json}"
    );
    r.ok(&["volume", "rm", "fmtv"]);
}

#[test]
fn system_df_and_network_ls_format_template_and_json() {
    let r = Root::with_busybox();
    r.ok(&["create", "--name", "dfc", "busybox", "true"]);
    let types = r.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}:{{.TotalCount}}:{{.Active}}",
    ]);
    assert!(types.starts_with("Images:1:1\nContainers:1:0\n"), "{types}");
    assert!(types.contains("\nBuild Cache:"), "{types}");
    let json = r.ok(&["system", "df", "--format", "json"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "{json}");
    assert_eq!(rows[1]["Type"], "Containers");
    // Docker prints every field as a string, the percentage inside Reclaimable.
    assert_eq!(rows[1]["TotalCount"], "1");
    assert!(
        rows[0]["Reclaimable"].as_str().unwrap().ends_with("%)"),
        "{json}"
    );
    let (code, _, err) = r.run(&["system", "df", "-v", "--format", "json"]);
    assert_ne!(code, 0, "{err}");

    let name = format!("fmtn{}", std::process::id());
    // 100.64.0.0/10, away from the 10.x /16s that test roots' default bridges pick.
    let subnet = format!("100.71.{}.0/24", std::process::id() % 250);
    r.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        &subnet,
        &name,
    ]);
    let nets = r.ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert!(
        nets.lines().any(|l| l == format!("{name} bridge local")),
        "{nets}"
    );
    let json = r.ok(&["network", "ls", "--format", "json"]);
    let bridge: serde_json::Value = json
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["Name"] == name.as_str())
        .unwrap();
    assert_eq!(bridge["Internal"], "true", "{json}");
    assert_eq!(bridge["ID"].as_str().unwrap().len(), 12, "{json}");
    r.ok(&["network", "rm", &name]);

    let id = r.ok(&["images", "-q", "busybox"]);
    let hist = r.ok(&["history", "--format", "{{.ID}} {{.Size}}", "busybox"]);
    assert!(hist.starts_with(&format!("{} ", id.trim())), "{hist}");
    let json = r.ok(&["history", "--format", "json", "busybox"]);
    for l in json.lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(
            v["CreatedBy"].is_string() && v["CreatedSince"].is_string(),
            "{l}"
        );
    }
    // Every other listing takes json too.
    for args in [&["ps", "-a"][..], &["images"][..], &["volume", "ls"][..]] {
        let out = r.ok(&[args, &["--format", "json"]].concat());
        for l in out.lines() {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("{args:?}: {e}: {l}"));
        }
        assert!(!out.is_empty() || args[0] == "volume", "{args:?}");
    }
    r.ok(&["rm", "dfc"]);
}

#[test]
fn prunes_take_their_answer_from_a_pipe_as_docker_does() {
    let r = Root::with_busybox();
    let id = r.ok(&["run", "-d", "-v", "/data", "busybox", "true"]);
    let id = id.trim();
    r.ok(&["wait", id]);
    r.ok(&["network", "create", "answered"]);
    // No (or nothing at all) keeps everything.
    for answer in ["n\n", ""] {
        let out = r.answered(&["container", "prune"], answer);
        assert_eq!(
            out,
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
        );
    }
    assert!(r.ok(&["ps", "-aq", "--no-trunc"]).contains(id));
    let out = r.answered(&["container", "prune"], "y\n");
    assert!(
        out.contains(&format!("Deleted Containers:\n{id}\n")),
        "{out}"
    );
    assert_eq!(r.ok(&["ps", "-aq"]), "");
    // The anonymous volume the container left, then the network.
    let out = r.answered(&["volume", "prune"], "Y\n");
    assert!(
        out.starts_with(
            "WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue? [y/N] Deleted Volumes:\n"
        ),
        "{out}"
    );
    assert_eq!(r.ok(&["volume", "ls", "-q"]), "");
    let out = r.answered(&["network", "prune"], "yes\n");
    assert!(out.contains("Deleted Networks:\nanswered\n"), "{out}");
}

#[test]
fn volumes_exist_from_create_and_anonymous_ones_keep_their_mount_points() {
    let r = Root::with_busybox();
    // As docker: `create` makes the volumes, and prune keeps them for the container.
    let id = r.ok(&[
        "create",
        "-v",
        "keepme:/data",
        "-v",
        "/a",
        "-v",
        "/b",
        "-v",
        "/c",
        "busybox",
        "sh",
        "-c",
        "[ -e /a/f ] && cat /a/f /b/f /c/f; echo A > /a/f; echo B > /b/f; echo C > /c/f",
    ]);
    let id = id.trim();
    let vols = r.ok(&["volume", "ls", "-q"]);
    assert_eq!(vols.lines().count(), 4, "{vols}");
    assert!(vols.lines().any(|v| v == "keepme"), "{vols}");
    r.ok(&["volume", "prune", "-a", "-f"]);
    assert_eq!(r.ok(&["volume", "ls", "-q"]), vols);
    // Each start mounts each anonymous volume where it was (they were handed out in an
    // order that had nothing to do with their mount points, so three of them swapped).
    r.ok(&["start", "-a", id]);
    for _ in 0..3 {
        assert_eq!(r.ok(&["start", "-a", id]), "A\nB\nC\n");
    }
    assert_eq!(r.ok(&["volume", "ls", "-q"]), vols);
    r.ok(&["rm", "-v", id]);
    assert_eq!(r.ok(&["volume", "ls", "-q"]), "keepme\n");
    r.ok(&["volume", "rm", "keepme"]);
}

/// `stop` sends the image's STOPSIGNAL, or `--stop-signal`'s, before SIGKILL (it sent SIGTERM
/// whatever they said, so a server that shuts down on another signal was killed after the
/// timeout instead).
#[test]
fn stop_sends_the_stop_signal_of_the_container_or_its_image() {
    let r = Root::with_busybox();
    // The image's STOPSIGNAL, through commit's --change.
    r.ok(&["create", "--name", "base", "busybox", "true"]);
    r.ok(&["commit", "-c", "STOPSIGNAL SIGUSR1", "base", "usr1-img"]);
    let script = "trap 'echo got-usr1; exit 0' USR1; trap 'echo got-hup; exit 0' HUP; \
                  echo ready; while :; do sleep 0.1; done";
    let ready = |name: &str| {
        assert!(
            common::wait_for(10, || r.ok(&["logs", name]).contains("ready")),
            "{name} did not start"
        );
    };
    r.ok(&[
        "run", "-d", "--name", "img-sig", "usr1-img", "sh", "-c", script,
    ]);
    ready("img-sig");
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.Config.StopSignal}}", "img-sig"]),
        "SIGUSR1\n"
    );
    let t = std::time::Instant::now();
    r.ok(&["stop", "-t", "20", "img-sig"]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(10),
        "waited for SIGKILL"
    );
    assert_eq!(r.ok(&["logs", "img-sig"]), "ready\ngot-usr1\n");
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.State.ExitCode}}", "img-sig"]),
        "0\n"
    );

    // --stop-signal over the image's.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "flag-sig",
        "--stop-signal",
        "HUP",
        "usr1-img",
        "sh",
        "-c",
        script,
    ]);
    ready("flag-sig");
    r.ok(&["stop", "-t", "20", "flag-sig"]);
    assert_eq!(r.ok(&["logs", "flag-sig"]), "ready\ngot-hup\n");
    // A real-time signal, as `--stop-signal` and `kill -s` (refused as "invalid signal: 37").
    r.ok(&[
        "run",
        "-d",
        "--name",
        "rt-sig",
        "--stop-signal",
        "RTMIN+3",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-rt; exit 0' 37; echo ready; while :; do sleep 0.1; done",
    ]);
    ready("rt-sig");
    r.ok(&["stop", "-t", "20", "rt-sig"]);
    assert_eq!(r.ok(&["logs", "rt-sig"]), "ready\ngot-rt\n");
    r.ok(&["start", "rt-sig"]);
    assert!(common::wait_for(10, || r
        .ok(&["logs", "rt-sig"])
        .matches("ready")
        .count()
        == 2));
    r.ok(&["kill", "-s", "RTMIN+3", "rt-sig"]);
    assert!(common::wait_for(10, || r
        .ok(&["logs", "rt-sig"])
        .matches("got-rt")
        .count()
        == 2));
    let (code, _, err) = r.run(&["run", "--stop-signal", "NOPE", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("invalid stop signal: NOPE"), "{err}");
    r.ok(&["rm", "-f", "base", "img-sig", "flag-sig", "rt-sig"]);
}

/// `--dns-search`, `--dns-option`, `--domainname`, `--oom-score-adj` and `--label-file`, which
/// hako did not know (`unknown flag`) and its API refused by name.
#[test]
fn dns_search_options_domainname_oom_score_adj_and_label_files() {
    let r = Root::with_busybox();
    let out = r.ok(&[
        "run", "--rm", "--dns-search", "lab.example", "--dns-search", "example.org",
        "--dns-option", "ndots:2", "--domainname", "lab.example", "--oom-score-adj", "300",
        "busybox", "sh", "-c",
        "grep -E '^(search|options|domain)' /etc/resolv.conf; cat /proc/sys/kernel/domainname /proc/self/oom_score_adj",
    ]);
    assert_eq!(
        out,
        "search lab.example example.org\noptions ndots:2\nlab.example\n300\n"
    );
    // `.` alone: no search domains at all.
    let out = r.ok(&[
        "run",
        "--rm",
        "--dns-search",
        ".",
        "busybox",
        "sh",
        "-c",
        "grep -cE '^(search|domain)' /etc/resolv.conf || true",
    ]);
    assert_eq!(out, "0\n");
    // Below this process's own score needs CAP_SYS_RESOURCE: clamped with a warning where it
    // is missing (as on the development VM), applied where it is there.
    let own: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let (code, out, err) = r.run(&[
        "run",
        "--rm",
        "--oom-score-adj",
        "-500",
        "busybox",
        "cat",
        "/proc/self/oom_score_adj",
    ]);
    assert_eq!(code, 0, "{err}");
    let got: i32 = out.trim().parse().unwrap();
    assert!(
        got == -500 || (got == own && err.contains("clamped")),
        "{got} {err}"
    );
    // A value that would add lines of its own to resolv.conf.
    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "--dns-option",
        "ndots:1\nnameserver 203.0.113.9",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("invalid DNS option"), "{err}");
    let (code, _, err) = r.run(&["run", "--rm", "--oom-score-adj", "1001", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("range for oom score adj is [-1000, 1000]"),
        "{err}"
    );
    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "--uts",
        "host",
        "--domainname",
        "x",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("domainname"), "{err}");

    let labels = r.path().join("labels");
    std::fs::write(&labels, "# lab\nteam=bio\n\nowner=ann\n").unwrap();
    r.ok(&[
        "create",
        "--name",
        "lf",
        "--label-file",
        labels.to_str().unwrap(),
        "-l",
        "owner=bob",
        "busybox",
        "true",
    ]);
    assert_eq!(
        r.ok(&[
            "inspect",
            "-f",
            "{{.Config.Labels.team}} {{.Config.Labels.owner}}",
            "lf"
        ]),
        "bio bob\n"
    );
    assert_eq!(
        r.ok(&["inspect", "-f", "{{json .HostConfig.DnsSearch}}", "lf"]),
        "[]\n"
    );
    r.ok(&["rm", "lf"]);
    r.ok(&[
        "run",
        "--name",
        "ann",
        "--annotation",
        "org.example/tier=gold",
        "busybox",
        "true",
    ]);
    assert_eq!(
        r.ok(&["inspect", "-f", "{{json .HostConfig.Annotations}}", "ann"]),
        "{\"org.example/tier\":\"gold\"}\n"
    );
    r.ok(&["rm", "ann"]);
    let (code, _, err) = r.run(&["run", "--rm", "--annotation", "novalue", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("bad format for annotation: novalue"), "{err}");
}

/// `--cpuset-mems` and `--memory-swappiness` (unknown flags before; the API refused them).
#[test]
fn cpuset_mems_and_memory_swappiness_reach_the_cgroup() {
    let r = Root::with_busybox();
    let (code, id, err) = r.run(&[
        "run",
        "-d",
        "--cpuset-mems",
        "0",
        "--memory-swappiness",
        "10",
        "busybox",
        "sleep",
        "30",
    ]);
    assert_eq!(code, 0, "{err}");
    let id = id.trim();
    if std::path::Path::new("/sys/fs/cgroup/memory").is_dir() {
        assert_eq!(cgroup_file(id, "memory", "memory.swappiness"), "10");
        assert_eq!(cgroup_file(id, "cpuset", "cpuset.mems"), "0");
    } else {
        // cgroup v2 has no swappiness per cgroup: dropped with Docker's warning.
        assert!(err.contains("Memory swappiness discarded"), "{err}");
        assert_eq!(cgroup_file(id, "cpuset", "cpuset.mems"), "0");
    }
    assert_eq!(
        r.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.CpusetMems}} {{.HostConfig.MemorySwappiness}}",
            id
        ]),
        "0 10\n"
    );
    r.ok(&["rm", "-f", id]);
    for (flag, value, said) in [
        (
            "--memory-swappiness",
            "101",
            "valid memory swappiness range is 0-100",
        ),
        ("--cpuset-mems", "0-a", "Invalid value 0-a for cpuset mems"),
    ] {
        let (code, _, err) = r.run(&["run", "--rm", flag, value, "busybox", "true"]);
        assert_eq!(code, 125, "{flag}");
        assert!(err.contains(said), "{err}");
    }
    assert!(r.ok(&["ps", "-aq"]).is_empty());
}

/// `--cgroupns host` keeps the host's cgroup namespace (the container sees its cgroup's full
/// path); `private`, the default, shows its own cgroup as the root.
#[test]
fn cgroupns_host_and_private() {
    let r = Root::with_busybox();
    let out = r.ok(&[
        "run",
        "--name",
        "cgh",
        "--cgroupns",
        "host",
        "busybox",
        "cat",
        "/proc/self/cgroup",
    ]);
    let id = r.ok(&["inspect", "-f", "{{.Id}}", "cgh"]);
    let own = format!("/hako-{}", id.trim());
    assert!(out.lines().any(|l| l.ends_with(&own)), "{out}");
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.HostConfig.CgroupnsMode}}", "cgh"]),
        "host\n"
    );
    let out = r.ok(&[
        "run",
        "--rm",
        "--cgroupns",
        "private",
        "busybox",
        "cat",
        "/proc/self/cgroup",
    ]);
    assert!(out.lines().all(|l| l.ends_with(":/")), "{out}");
    let (code, _, err) = r.run(&["run", "--rm", "--cgroupns", "bogus", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("must be host or private"), "{err}");
    r.ok(&["rm", "cgh"]);
}
