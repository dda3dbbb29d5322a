//! `run`/`create` flags Docker users reach for: `--cidfile`, `-q`, `--expose`, the CFS,
//! soft-memory, OOM-killer and block I/O limits. Each is checked where a user sees it: the
//! container's cgroup files, `inspect`, the warnings and errors printed.

mod common;

use common::Root;
use std::path::Path;

/// The container's cgroup file in the v1 hierarchy of `v1_controller`, or its cgroup2 file
/// `v2_file` on a host without that v1 hierarchy.
fn cgroup_file(id: &str, v1_controller: &str, file: &str) -> String {
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let base = mine
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            ctrl.split(',')
                .any(|c| c == v1_controller)
                .then(|| path.to_string())
        })
        .unwrap_or_default();
    let path = Path::new("/sys/fs/cgroup")
        .join(v1_controller)
        .join(base.trim_start_matches('/'))
        .join(format!("hako-{id}"))
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

fn v1(controller: &str) -> bool {
    Path::new("/sys/fs/cgroup").join(controller).is_dir()
}

fn inspect(r: &Root, id: &str) -> serde_json::Value {
    let out = r.ok(&["inspect", id]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v[0].clone()
}

fn no_containers(r: &Root) {
    assert_eq!(r.ok(&["ps", "-aq"]), "", "a refused run left a container");
}

/// A block device of this host (the disk the tests run on, usually), as /dev/NAME.
fn a_block_device() -> Option<(String, String)> {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram"))
        .collect();
    names.sort();
    names.into_iter().find_map(|n| {
        let dev = std::fs::read_to_string(format!("/sys/block/{n}/dev")).ok()?;
        let path = format!("/dev/{n}");
        Path::new(&path)
            .exists()
            .then(|| (path, dev.trim().to_string()))
    })
}

#[test]
fn cidfile_gets_the_id_and_an_existing_one_stops_the_run() {
    let r = Root::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let cid = dir.path().join("cid");
    let cid_s = cid.to_str().unwrap();
    let id = r.ok(&["run", "-d", "--cidfile", cid_s, "busybox", "sleep", "30"]);
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id.trim());

    // Docker's check: the file is there, so nothing is created and the file is kept.
    let (code, out, err) = r.run(&["run", "-d", "--cidfile", cid_s, "busybox", "true"]);
    assert_eq!(code, 125, "{out}{err}");
    assert_eq!(
        err.trim(),
        format!(
            "hako: container ID file found, make sure the other container isn't running or \
             delete {cid_s}"
        )
    );
    assert_eq!(std::fs::read_to_string(&cid).unwrap(), id.trim());
    assert_eq!(r.ok(&["ps", "-aq", "--no-trunc"]).trim(), id.trim());
    let (code, _, err) = r.run(&["create", "--cidfile", cid_s, "busybox"]);
    assert_eq!(code, 125, "{err}");
    r.ok(&["rm", "-f", id.trim()]);

    // `create` writes it too; one that fails leaves no file behind.
    let cid2 = dir.path().join("cid2");
    let cid2_s = cid2.to_str().unwrap();
    let id = r.ok(&["create", "--cidfile", cid2_s, "busybox", "true"]);
    assert_eq!(std::fs::read_to_string(&cid2).unwrap(), id.trim());
    r.ok(&["rm", id.trim()]);
    let cid3 = dir.path().join("cid3");
    let (code, _, _) = r.run(&[
        "run",
        "--cidfile",
        cid3.to_str().unwrap(),
        "--pull",
        "never",
        "nosuchimage",
    ]);
    assert_eq!(code, 125);
    assert!(!cid3.exists(), "a failed run left its cidfile");
    // A directory that is not there: Docker's words, and nothing created.
    let (code, _, err) = r.run(&[
        "run",
        "--cidfile",
        "/nonexistent/dir/cid",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(
        err.contains("failed to create the container ID file: "),
        "{err}"
    );
    no_containers(&r);
}

#[test]
fn cfs_period_quota_reservation_and_oom_killer_reach_the_cgroup_and_inspect() {
    let r = Root::with_busybox();
    let (code, id, err) = r.run(&[
        "run",
        "-d",
        "-m",
        "64m",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--memory-reservation",
        "32m",
        "--oom-kill-disable",
        "busybox",
        "sleep",
        "30",
    ]);
    assert_eq!(code, 0, "{err}");
    let id = id.trim();
    let h = &inspect(&r, id)["HostConfig"];
    assert_eq!(h["CpuPeriod"], 50000);
    assert_eq!(h["CpuQuota"], 25000);
    assert_eq!(h["MemoryReservation"], 32 << 20);
    assert_eq!(h["OomKillDisable"], true);
    if v1("cpu") {
        assert_eq!(cgroup_file(id, "cpu", "cpu.cfs_period_us"), "50000");
        assert_eq!(cgroup_file(id, "cpu", "cpu.cfs_quota_us"), "25000");
    }
    if v1("memory") {
        assert_eq!(
            cgroup_file(id, "memory", "memory.soft_limit_in_bytes"),
            (32u64 << 20).to_string()
        );
        let oom = cgroup_file(id, "memory", "memory.oom_control");
        assert!(oom.contains("oom_kill_disable 1"), "{oom}");
        assert!(!err.contains("OomKillDisable discarded"), "{err}");
    } else {
        // cgroup2 has no switch for the OOM killer: said, as Docker says it.
        assert!(
            err.contains(
                "WARNING: Your kernel does not support OomKillDisable. OomKillDisable discarded."
            ),
            "{err}"
        );
    }
    r.ok(&["rm", "-f", id]);

    // Not given: inspect shows Docker's zeros.
    let id = r.ok(&["create", "busybox", "true"]);
    let h = &inspect(&r, id.trim())["HostConfig"];
    assert_eq!(h["CpuPeriod"], 0);
    assert_eq!(h["CpuQuota"], 0);
    assert_eq!(h["MemoryReservation"], 0);
    assert_eq!(h["BlkioWeight"], 0);
    assert_eq!(h["BlkioDeviceReadBps"], serde_json::json!([]));
    r.ok(&["rm", id.trim()]);

    // Without a memory limit, turning the OOM killer off is warned about (Docker's words).
    let (code, _, err) = r.run(&["run", "--rm", "--oom-kill-disable", "busybox", "true"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "WARNING: OOM killer is disabled for the container, but no memory limit is set, \
             this can result in the system running out of resources."
        ),
        "{err}"
    );
}

#[test]
fn block_io_weight_and_rates_are_applied_or_dropped_with_a_warning() {
    let r = Root::with_busybox();
    let Some((dev, majmin)) = a_block_device() else {
        eprintln!("skipped: this host has no block device under /sys/block");
        return;
    };
    // Write limits high enough not to slow the container's exit: the last process of the
    // container unmounts its overlay, whose sync goes through the throttle (at 200 write IOPS
    // that took over 2 s here, and `rm -f` gave up).
    let (code, id, err) = r.run(&[
        "run",
        "-d",
        "--blkio-weight",
        "300",
        "--device-read-bps",
        &format!("{dev}:1mb"),
        "--device-write-bps",
        &format!("{dev}:1gb"),
        "--device-read-iops",
        &format!("{dev}:100"),
        "--device-write-iops",
        &format!("{dev}:100000"),
        "busybox",
        "sleep",
        "30",
    ]);
    assert_eq!(code, 0, "{err}");
    let id = id.trim();
    let h = &inspect(&r, id)["HostConfig"];
    assert_eq!(h["BlkioWeight"], 300);
    assert_eq!(
        h["BlkioDeviceReadBps"],
        serde_json::json!([{"Path": dev, "Rate": 1 << 20}])
    );
    assert_eq!(
        h["BlkioDeviceWriteBps"],
        serde_json::json!([{"Path": dev, "Rate": 1u64 << 30}])
    );
    assert_eq!(
        h["BlkioDeviceReadIOps"],
        serde_json::json!([{"Path": dev, "Rate": 100}])
    );
    assert_eq!(
        h["BlkioDeviceWriteIOps"],
        serde_json::json!([{"Path": dev, "Rate": 100000}])
    );
    if v1("blkio") {
        let blkio = Path::new("/sys/fs/cgroup/blkio");
        for (file, rate) in [
            ("blkio.throttle.read_bps_device", 1u64 << 20),
            ("blkio.throttle.write_bps_device", 1 << 30),
            ("blkio.throttle.read_iops_device", 100),
            ("blkio.throttle.write_iops_device", 100000),
        ] {
            assert_eq!(
                cgroup_file(id, "blkio", file),
                format!("{majmin} {rate}"),
                "{file}"
            );
        }
        // Whether a weight can be set depends on the disk's I/O scheduler (CFQ or BFQ);
        // where neither is there, Docker's warning says it was dropped.
        let weighs = blkio.join("blkio.weight").exists() || blkio.join("blkio.bfq.weight").exists();
        let warning = "WARNING: Your kernel does not support Block I/O weight or the cgroup is \
                       not mounted. Weight discarded.";
        assert_eq!(err.contains(warning), !weighs, "{err}");
        if weighs {
            let file = if blkio.join("blkio.weight").exists() {
                "blkio.weight"
            } else {
                "blkio.bfq.weight"
            };
            assert!(cgroup_file(id, "blkio", file).contains("300"));
        }
    }
    r.ok(&["rm", "-f", id]);
}

#[test]
fn bad_limits_are_refused_with_dockers_words_and_nothing_created() {
    let r = Root::with_busybox();
    let dev = a_block_device().map_or("/dev/null".to_string(), |(d, _)| d);
    let cases: Vec<(Vec<String>, String)> =
        vec![
        (
            vec!["--cpu-quota".into(), "500".into()],
            "CPU cfs quota can not be less than 1ms (i.e. 1000)".into(),
        ),
        (
            vec!["--cpu-period".into(), "500".into()],
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
                .into(),
        ),
        (
            vec!["--cpus".into(), "1".into(), "--cpu-period".into(), "50000".into()],
            "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
        ),
        (
            vec!["--cpus".into(), "1".into(), "--cpu-quota".into(), "50000".into()],
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set".into(),
        ),
        (
            vec!["--memory-reservation".into(), "1m".into()],
            "Minimum memory reservation allowed is 6MB".into(),
        ),
        (
            vec![
                "-m".into(),
                "16m".into(),
                "--memory-reservation".into(),
                "32m".into(),
            ],
            "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
        ),
        (
            vec!["--memory-reservation".into(), "lots".into()],
            "invalid argument \"lots\" for \"--memory-reservation\" flag: invalid size: 'lots'"
                .into(),
        ),
        (
            vec!["--blkio-weight".into(), "5".into()],
            "Range of blkio weight is from 10 to 1000".into(),
        ),
        (
            vec!["--device-read-bps".into(), dev.clone()],
            format!("invalid argument \"{dev}\" for \"--device-read-bps\" flag: bad format: {dev}"),
        ),
        (
            vec!["--device-write-bps".into(), "sda:1mb".into()],
            "invalid argument \"sda:1mb\" for \"--device-write-bps\" flag: bad format for \
             device path: sda:1mb"
                .into(),
        ),
        (
            vec!["--device-read-iops".into(), format!("{dev}:1mb")],
            format!(
                "invalid argument \"{dev}:1mb\" for \"--device-read-iops\" flag: invalid rate \
                 for device: {dev}:1mb. The correct format is <device-path>:<number>. Number \
                 must be a positive integer"
            ),
        ),
        (
            vec!["--device-write-iops".into(), "/dev/hako-no-such-disk:10".into()],
            "/dev/hako-no-such-disk: No such file or directory (os error 2)".into(),
        ),
        (
            vec!["--device-read-bps".into(), "/dev/null:1mb".into()],
            "/dev/null is not a block device".into(),
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend(flags.iter().map(String::as_str));
        args.extend(["busybox", "true"]);
        let (code, out, err) = r.run(&args);
        assert_eq!(code, 125, "{flags:?}: {out}{err}");
        assert_eq!(err.trim(), format!("hako: {want}"), "{flags:?}");
        no_containers(&r);
    }
}

#[test]
fn expose_adds_ports_to_the_config_and_to_publish_all() {
    let r = Root::with_busybox();
    let id = r.ok(&[
        "create",
        "--expose",
        "80",
        "--expose",
        "7000-7001/udp",
        "-p",
        "127.0.0.1::9000",
        "busybox",
        "true",
    ]);
    let c = &inspect(&r, id.trim())["Config"];
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"80/tcp": {}, "7000/udp": {}, "7001/udp": {}, "9000/tcp": {}})
    );
    r.ok(&["rm", id.trim()]);
    // A container with nothing exposed has no ExposedPorts, as with Docker.
    let id = r.ok(&["create", "busybox", "true"]);
    assert!(inspect(&r, id.trim())["Config"]
        .get("ExposedPorts")
        .is_none());
    r.ok(&["rm", id.trim()]);

    // -P publishes what --expose adds.
    let id = r.ok(&[
        "run", "-d", "-P", "--expose", "8080", "busybox", "sleep", "30",
    ]);
    let ports = r.ok(&["port", id.trim()]);
    assert!(ports.starts_with("8080/tcp -> "), "{ports}");
    r.ok(&["rm", "-f", id.trim()]);

    for (bad, want) in [
        ("80:80", "invalid port format for --expose: 80:80"),
        (
            "90-80",
            "invalid range format for --expose: 90-80, error: invalid range specified for port: 90-80",
        ),
        (
            "x",
            "invalid range format for --expose: x, error: invalid port number: x",
        ),
    ] {
        let (code, _, err) = r.run(&["run", "--rm", "--expose", bad, "busybox", "true"]);
        assert_eq!(code, 125, "{bad}: {err}");
        assert_eq!(err.trim(), format!("hako: {want}"));
    }
    no_containers(&r);
}

#[test]
fn quiet_suppresses_the_pull_output() {
    if !Path::new("/usr/bin/docker-registry").exists() {
        eprintln!("skipped: needs Debian's docker-registry");
        return;
    }
    let reg = hako_testkit::Registry::start();
    let src = Root::with_busybox();
    let name = format!("127.0.0.1:{}/quiet/busybox:1", reg.port);
    src.ok(&["tag", "busybox", &name]);
    src.ok(&["push", &name]);
    drop(src);

    let r = Root::new();
    let (code, out, err) = r.run(&["run", "--rm", "-q", &name, "echo", "hi"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hi\n");
    assert_eq!(err, "", "-q printed pull output");
    r.ok(&["rmi", &name]);
    // Without -q the same pull is shown.
    let (code, out, err) = r.run(&["run", "--rm", &name, "echo", "hi"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hi\n");
    assert!(err.contains("Unable to find image"), "{err}");
    let id = r.ok(&["create", "--quiet", "--pull", "always", &name, "true"]);
    r.ok(&["rm", id.trim()]);
}

#[test]
fn volumes_from_shares_binds_and_volumes_with_their_modes() {
    let r = Root::with_busybox();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("f"), "from the host\n").unwrap();
    let bind = format!("{}:/hostdir:ro", host.path().display());
    // A named volume, an anonymous one and a read-only bind.
    r.ok(&[
        "run",
        "--name",
        "vf-src",
        "-v",
        "vf-named:/named",
        "-v",
        "/anon",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo named > /named/n && echo anon > /anon/a",
    ]);
    let out = r.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "vf-src",
        "busybox",
        "sh",
        "-c",
        "cat /named/n /anon/a /hostdir/f && echo more >> /anon/a && cat /anon/a \
         && (touch /hostdir/x 2>/dev/null || echo bind-ro)",
    ]);
    assert_eq!(out, "named\nanon\nfrom the host\nanon\nmore\nbind-ro\n");
    // :ro makes all of them read-only; inspect shows what was asked.
    let id = r.ok(&[
        "create",
        "--volumes-from",
        "vf-src:ro",
        "busybox",
        "sh",
        "-c",
        "touch /named/x 2>/dev/null || echo named-ro",
    ]);
    let id = id.trim();
    assert_eq!(
        inspect(&r, id)["HostConfig"]["VolumesFrom"],
        serde_json::json!(["vf-src:ro"])
    );
    r.ok(&["start", id]);
    assert_eq!(r.ok(&["wait", id]).trim(), "0");
    assert_eq!(r.ok(&["logs", id]), "named-ro\n");
    // The source's anonymous volume outlives `rm -v` of the source while another uses it.
    r.ok(&["rm", "-v", "vf-src"]);
    r.ok(&["start", id]);
    assert_eq!(r.ok(&["wait", id]).trim(), "0");
    r.ok(&["rm", "-v", id]);
    r.ok(&["volume", "rm", "vf-named"]);

    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "--volumes-from",
        "vf-none",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert_eq!(err.trim(), "hako: No such container: vf-none");
    r.ok(&["create", "--name", "vf-src2", "busybox", "true"]);
    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "--volumes-from",
        "vf-src2:rx",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert_eq!(err.trim(), "hako: invalid mode: rx");
    r.ok(&["rm", "vf-src2"]);
    assert_eq!(r.ok(&["ps", "-aq"]), "");
    assert_eq!(r.ok(&["volume", "ls", "-q"]), "");
}

#[test]
fn link_names_the_other_container_in_etc_hosts() {
    let r = Root::with_busybox();
    let db = r.ok(&[
        "run",
        "-d",
        "--name",
        "lk-db",
        "--expose",
        "5432",
        "-e",
        "DB_USER=app",
        "busybox",
        "sleep",
        "30",
    ]);
    let db = db.trim();
    let ip = inspect(&r, db)["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!ip.is_empty());
    // Docker's legacy link: alias, host name (the short ID) and name.
    let (code, out, err) = r.run(&[
        "run",
        "--rm",
        "--name",
        "lk-web",
        "--link",
        "lk-db:data",
        "busybox",
        "sh",
        "-c",
        "grep data /etc/hosts && ping -c1 -W2 data >/dev/null && echo reached",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, format!("{ip}\tdata {} lk-db\nreached\n", &db[..12]));
    // Without an alias the name is the alias.
    let out = r.ok(&[
        "run",
        "--rm",
        "--link",
        "lk-db",
        "busybox",
        "grep",
        "lk-db",
        "/etc/hosts",
    ]);
    assert_eq!(out, format!("{ip}\tlk-db {}\n", &db[..12]));
    // On the default bridge, Docker's link variables; the container's own win.
    let out = r.ok(&[
        "run",
        "--rm",
        "--name",
        "lk-env",
        "--link",
        "lk-db:my-db",
        "-e",
        "MY_DB_PORT=mine",
        "busybox",
        "sh",
        "-c",
        "env | grep ^MY_DB_ | sort",
    ]);
    assert_eq!(
        out,
        format!(
            "MY_DB_ENV_DB_USER=app\nMY_DB_NAME=/lk-env/my-db\nMY_DB_PORT=mine\n\
             MY_DB_PORT_5432_TCP=tcp://{ip}:5432\nMY_DB_PORT_5432_TCP_ADDR={ip}\n\
             MY_DB_PORT_5432_TCP_PORT=5432\nMY_DB_PORT_5432_TCP_PROTO=tcp\n"
        )
    );
    let id = r.ok(&[
        "create",
        "--name",
        "lk-c",
        "--link",
        "lk-db:data",
        "busybox",
        "true",
    ]);
    assert_eq!(
        inspect(&r, id.trim())["HostConfig"]["Links"],
        serde_json::json!(["/lk-db:/lk-c/data"])
    );
    r.ok(&["rm", id.trim()]);

    r.ok(&["stop", "-t", "0", db]);
    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "--name",
        "lk-w2",
        "--link",
        "lk-db:data",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125, "{err}");
    assert_eq!(
        err.trim(),
        "hako: Cannot link to a non running container: /lk-db AS /lk-w2/data"
    );
    let (code, _, err) = r.run(&["run", "--rm", "--link", "lk-none", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("could not get container for lk-none"), "{err}");
    let (code, _, err) = r.run(&["run", "--rm", "--link", "a:b:c", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("bad format for links: a:b:c"), "{err}");
    r.ok(&["rm", db]);
    assert_eq!(r.ok(&["ps", "-aq"]), "");
}

#[test]
fn network_container_joins_the_other_containers_network() {
    let r = Root::with_busybox();
    let web = r.ok(&["run", "-d", "--name", "nc-web", "busybox", "sleep", "30"]);
    let web = web.trim();
    let ip = inspect(&r, web)["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    // Same interfaces and address, same host name and /etc files as the other container.
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        "container:nc-web",
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0 | awk '{print $4}'; hostname; grep -c nameserver /etc/resolv.conf >/dev/null && echo resolv; grep \"$(hostname)\" /etc/hosts | cut -f1",
    ]);
    assert_eq!(
        out,
        format!("{ip}/16\n{}\nresolv\n{ip}\n", &web[..12]).replace(
            "/16\n",
            &format!("/{}\n", inspect(&r, web)["NetworkSettings"]["IPPrefixLen"])
        )
    );
    // The very same network namespace.
    let theirs = r.ok(&["exec", web, "readlink", "/proc/self/ns/net"]);
    let mine = r.ok(&[
        "run",
        "--rm",
        "--network",
        "container:nc-web",
        "busybox",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert!(theirs.starts_with("net:["), "{theirs}");
    assert_eq!(mine, theirs);
    let id = r.ok(&["create", "--network", "container:nc-web", "busybox", "true"]);
    assert_eq!(
        inspect(&r, id.trim())["HostConfig"]["NetworkMode"],
        "container:nc-web"
    );
    r.ok(&["rm", id.trim()]);

    for (flags, want) in [
        (
            vec!["-p", "80:80"],
            "conflicting options: port publishing and the container type network mode",
        ),
        (
            vec!["--dns", "1.1.1.1"],
            "conflicting options: dns and the network mode",
        ),
        (
            vec!["-h", "x"],
            "conflicting options: hostname and the network mode",
        ),
        (
            vec!["--add-host", "a:1.2.3.4"],
            "conflicting options: custom host-to-IP mapping and the network mode",
        ),
    ] {
        let mut args = vec!["run", "--rm", "--network", "container:nc-web"];
        args.extend(flags.iter().copied());
        args.extend(["busybox", "true"]);
        let (code, _, err) = r.run(&args);
        assert_eq!(code, 125, "{flags:?}: {err}");
        assert_eq!(err.trim(), format!("hako: {want}"), "{flags:?}");
    }
    // When the other stops, the one that joined keeps running with loopback only (Docker).
    let joiner = r.ok(&[
        "run",
        "-d",
        "--network",
        "container:nc-web",
        "busybox",
        "sleep",
        "30",
    ]);
    let joiner = joiner.trim();
    r.ok(&["stop", "-t", "0", web]);
    let links = r.ok(&["exec", joiner, "ls", "/sys/class/net"]);
    assert_eq!(links, "lo\n");
    r.ok(&["rm", "-f", joiner]);
    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "--network",
        "container:nc-web",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125, "{err}");
    assert_eq!(
        err.trim(),
        "hako: cannot join network of a non running container: nc-web"
    );
    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "--network",
        "container:nc-none",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125, "{err}");
    assert_eq!(err.trim(), "hako: No such container: nc-none");
    r.ok(&["rm", web]);
    assert_eq!(r.ok(&["ps", "-aq"]), "");
}

/// `exec --env-file` reads the file as `run --env-file` does (a bare name takes hako's own
/// value, `-e` wins, a name with a space is refused); `logs --details` puts the (empty)
/// attribute list and its space before each line, after the timestamp, as Docker does.
#[test]
fn exec_env_file_and_logs_details() {
    let r = Root::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("env");
    std::fs::write(&file, "# comment\nA=from-file\n\nB=file\nHAKO_TEST_BARE\n").unwrap();
    let file = file.to_str().unwrap();
    let id = r.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; sleep 60",
    ]);
    let id = id.trim();
    let out = r
        .cmd(&[
            "exec",
            "--env-file",
            file,
            "-e",
            "B=flag",
            id,
            "sh",
            "-c",
            "echo $A $B $HAKO_TEST_BARE",
        ])
        .env("HAKO_TEST_BARE", "bare")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "from-file flag bare\n"
    );
    std::fs::write(dir.path().join("bad"), "A B=1\n").unwrap();
    let (code, _, err) = r.run(&[
        "exec",
        "--env-file",
        dir.path().join("bad").to_str().unwrap(),
        id,
        "true",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("contains whitespaces"), "{err}");

    assert!(common::wait_for(10, || r.ok(&["logs", id]) == "one\n"));
    assert_eq!(r.ok(&["logs", "--details", id]), " one\n");
    let (_, _, err) = r.run(&["logs", "--details", id]);
    assert_eq!(err, " two\n");
    let stamped = r.ok(&["logs", "--details", "-t", id]);
    let (time, rest) = stamped.split_once(' ').unwrap();
    assert!(time.ends_with('Z'), "{stamped}");
    assert_eq!(rest, " one\n");
    r.ok(&["rm", "-f", id]);
}

/// CDI: `--device vendor.com/class=name` takes the device's edits from a specification (the
/// test writes its own, in a directory `HAKO_CDI_SPEC_DIRS` names): its device node (allowed
/// in the device cgroup), variables, bind mounts and createContainer hook, with the
/// specification's own edits; `inspect` shows Docker's DeviceRequests. An unknown device is
/// refused at create; `--gpus` names NVIDIA's CDI devices, and says how to make them when no
/// specification defines any.
#[test]
fn cdi_devices_and_gpus_from_specifications() {
    let r = Root::with_busybox();
    let dir = tempfile::Builder::new()
        .prefix("hako-cdi-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let d = dir.path();
    std::fs::write(d.join("shared.txt"), "from the host\n").unwrap();
    let state = d.join("state.json");
    std::fs::create_dir(d.join("specs")).unwrap();
    std::fs::write(
        d.join("specs/example.yaml"),
        format!(
            r#"cdiVersion: "0.6.0"
kind: example.com/widget
containerEdits:
  env: [WIDGET_SPEC=yes]
devices:
- name: one
  containerEdits:
    env: [WIDGET=one]
    deviceNodes:
    - path: /dev/widget0
      hostPath: /dev/zero
    mounts:
    - hostPath: {shared}
      containerPath: /widget/shared.txt
      options: [ro, nosuid, nodev, bind]
    hooks:
    - hookName: createContainer
      path: /bin/sh
      args: [sh, -c, "cat > {state}"]
"#,
            shared = d.join("shared.txt").display(),
            state = state.display()
        ),
    )
    .unwrap();
    let specs = d.join("specs");
    let hako = |args: &[&str]| {
        let out = r
            .cmd(args)
            .env("HAKO_CDI_SPEC_DIRS", &specs)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = hako(&[
        "run",
        "--name",
        "cdi",
        "--network",
        "none",
        "--device",
        "example.com/widget=one",
        "busybox",
        "sh",
        "-c",
        "test -c /dev/widget0 && head -c 4 /dev/widget0 | wc -c && echo $WIDGET $WIDGET_SPEC && cat /widget/shared.txt && (echo x > /widget/shared.txt) 2>/dev/null || echo read-only",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "4\none yes\nfrom the host\nread-only\n");
    let hooked = std::fs::read_to_string(&state).unwrap();
    let v: serde_json::Value = serde_json::from_str(&hooked).unwrap();
    // Run during the create, in the container's namespaces, with its state on stdin.
    assert_eq!(v["status"], "creating", "{hooked}");
    assert_eq!(v["id"].as_str().map(str::len), Some(64), "{hooked}");
    let (_, doc, _) = hako(&[
        "inspect",
        "-f",
        "{{json .HostConfig.DeviceRequests}}",
        "cdi",
    ]);
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(v[0]["Driver"], "cdi");
    assert_eq!(v[0]["DeviceIDs"][0], "example.com/widget=one");
    r.ok(&["rm", "cdi"]);

    // Refused by the engine, as Docker's daemon refuses: run's 125, create's 1.
    let (code, _, err) = hako(&["run", "--device", "example.com/widget=two", "busybox"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("CDI device example.com/widget=two is not defined"),
        "{err}"
    );
    let (code, _, err) = hako(&["create", "--device", "example.com/widget=two", "busybox"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = hako(&["run", "--gpus", "all", "busybox"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("nvidia-ctk cdi generate"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    std::fs::write(
        specs.join("nvidia.json"),
        r#"{"cdiVersion":"0.5.0","kind":"nvidia.com/gpu","devices":[
            {"name":"0","containerEdits":{"deviceNodes":[{"path":"/dev/nvidia0","hostPath":"/dev/null"}]}},
            {"name":"1","containerEdits":{"deviceNodes":[{"path":"/dev/nvidia1","hostPath":"/dev/null"}]}}],
           "containerEdits":{"env":["NVIDIA_VISIBLE_DEVICES=void"]}}"#,
    )
    .unwrap();
    let (code, out, err) = hako(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--gpus",
        "1",
        "busybox",
        "sh",
        "-c",
        "ls /dev | grep nvidia; echo $NVIDIA_VISIBLE_DEVICES",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "nvidia0\nvoid\n");
    let (code, out, err) = hako(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--gpus",
        "all",
        "busybox",
        "sh",
        "-c",
        "ls /dev | grep nvidia",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "nvidia0\nnvidia1\n");
    let (code, _, err) = hako(&["create", "--gpus", "3", "busybox"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("define 2"), "{err}");
    no_containers(&r);
}

/// `exec --detach-keys`: a malformed sequence is refused as Docker refuses it; a valid one is
/// taken, with a warning that hako's exec sessions do not detach (the keys reach the process).
#[test]
fn exec_detach_keys_are_checked_and_said_not_to_detach() {
    let r = Root::with_busybox();
    let id = r.ok(&["run", "-d", "--network", "none", "busybox", "sleep", "60"]);
    let id = id.trim();
    let (code, _, err) = r.run(&["exec", "--detach-keys", "ctrl-", id, "true"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("Invalid detach keys (ctrl-) provided"),
        "{err}"
    );
    let (code, out, err) = r.run(&["exec", "-i", "--detach-keys", "ctrl-x", id, "echo", "hi"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hi\n");
    assert!(err.contains("do not detach"), "{err}");
    r.ok(&["rm", "-f", id]);
}

/// `--blkio-weight-device` (an unknown flag before; the API refused BlkioWeightDevice): set
/// where the disk's scheduler takes weights, dropped with Docker's warning where not; a weight
/// out of range or a missing device refused.
#[test]
fn blkio_weight_device() {
    let Some((dev, majmin)) = a_block_device() else {
        eprintln!("skipped: no block device under /sys/block");
        return;
    };
    let r = Root::with_busybox();
    let spec = format!("{dev}:300");
    let (code, id, err) = r.run(&[
        "run",
        "-d",
        "--blkio-weight-device",
        &spec,
        "busybox",
        "sleep",
        "30",
    ]);
    assert_eq!(code, 0, "{err}");
    let id = id.trim();
    let h = r.ok(&[
        "inspect",
        "-f",
        "{{json .HostConfig.BlkioWeightDevice}}",
        id,
    ]);
    assert_eq!(h.trim(), format!("[{{\"Path\":\"{dev}\",\"Weight\":300}}]"));
    if v1("blkio") {
        let blkio = Path::new("/sys/fs/cgroup/blkio");
        let file = ["blkio.weight_device", "blkio.bfq.weight_device"]
            .into_iter()
            .find(|f| blkio.join(f).exists());
        let warning = "Your kernel does not support Block I/O weight_device or the cgroup is not \
                       mounted. Weight-device discarded.";
        match file {
            Some(f) => assert!(cgroup_file(id, "blkio", f).contains(&format!("{majmin} 300"))),
            None => assert!(err.contains(warning), "{err}"),
        }
    }
    r.ok(&["rm", "-f", id]);
    for (value, said) in [
        (format!("{dev}:5"), "invalid weight for device"),
        ("/dev/no-such-disk:100".to_string(), "/dev/no-such-disk"),
        ("sda:100".to_string(), "bad format"),
    ] {
        let (code, _, err) = r.run(&[
            "run",
            "--rm",
            "--blkio-weight-device",
            &value,
            "busybox",
            "true",
        ]);
        assert_eq!(code, 125, "{value}");
        assert!(err.contains(said), "{value}: {err}");
    }
    assert!(r.ok(&["ps", "-aq"]).is_empty());
}
