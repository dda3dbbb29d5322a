//! Isolation battery: what a default container must not be able to do, from `run`, from
//! `exec` and from a `RUN` step of `hako build`, each compared with a private dockerd doing the
//! same: hako must refuse at least everything Docker refuses. The probe is a small static C
//! program (`isolation_probe.c`) built here and bound into both engines' containers; busybox
//! alone has no way to call add_key, init_module, unshare or open_by_handle_at.
//!
//! The device probes make the node with mknod (allowed, as in Docker) and then open it: the
//! device cgroup answers EPERM before any driver is asked, so a probe discriminates even for a
//! device the host has no driver for (an open that gets past the cgroup then fails with ENXIO
//! or ENODEV, not EPERM).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::build::{ctx, write};
use common::peers::Docker;
use common::Root;

const PROBE_C: &str = include_str!("isolation_probe.c");

/// The probe binary, built static in a directory of its own (removed on drop).
struct Probe {
    dir: tempfile::TempDir,
}

impl Probe {
    fn build() -> Probe {
        let dir = tempfile::Builder::new()
            .prefix("hako-isolation-")
            .tempdir_in("/var/tmp")
            .unwrap();
        std::fs::write(dir.path().join("probe.c"), PROBE_C).unwrap();
        let out = Command::new(common::peers::need("cc"))
            .args(["-static", "-O1", "-o"])
            .arg(dir.path().join("probe"))
            .arg(dir.path().join("probe.c"))
            .output()
            .expect("run cc");
        assert!(
            out.status.success(),
            "building the probe (needs a C compiler and static glibc, libc6-dev): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Probe { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("probe")
    }

    /// `-v PROBE:/probe:ro`.
    fn volume(&self) -> String {
        format!("{}:/probe:ro", self.path().display())
    }
}

/// The probe's lines, name → result.
fn results(output: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in output.lines() {
        let Some(rest) = line.trim_end_matches('\r').strip_prefix("PROBE ") else {
            continue;
        };
        let (name, result) = rest.split_once(' ').unwrap();
        assert_ne!(result, "unknown-probe", "the probe does not know {name}");
        out.insert(name.to_string(), result.to_string());
    }
    out
}

/// A block device the test itself can open (the root filesystem's disk first, then the first
/// of /sys/block that opens), so that a refusal inside the container is the container's doing:
/// some hosts refuse even root the disk under /. `None` if the host opens none.
fn openable_block_device() -> Option<(u32, u32)> {
    let parse = |s: &str| {
        let (ma, mi) = s.trim().split_once(':')?;
        Some((ma.parse::<u32>().ok()?, mi.parse::<u32>().ok()?))
    };
    let mut candidates = Vec::new();
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    if let Some(line) = mi.lines().find(|l| l.split(' ').nth(4) == Some("/")) {
        candidates.extend(line.split(' ').nth(2).and_then(parse));
    }
    for e in std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Ok(dev) = std::fs::read_to_string(e.path().join("dev")) {
            candidates.extend(parse(&dev));
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("hako-isolation-blk-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let node = dir.path().join("blk");
    for (ma, mi) in candidates {
        if !Path::new(&format!("/sys/dev/block/{ma}:{mi}")).exists() {
            continue;
        }
        let _ = std::fs::remove_file(&node);
        let made = Command::new("mknod")
            .arg(&node)
            .args(["b", &ma.to_string(), &mi.to_string()])
            .status()
            .unwrap();
        if made.success() && std::fs::File::open(&node).is_ok() {
            return Some((ma, mi));
        }
        eprintln!("note: this host refuses root the block device {ma}:{mi} outside any container");
    }
    None
}

/// The devices a default container must not open: (name, type, major, minor, open mode).
fn forbidden_devices() -> Vec<(String, char, u32, u32, &'static str)> {
    let mut d: Vec<(String, char, u32, u32, &str)> = vec![
        ("kvm".into(), 'c', 10, 232, "rw"),
        ("loop-control".into(), 'c', 10, 237, "rw"),
        ("fuse".into(), 'c', 10, 229, "rw"),
        ("hwrng".into(), 'c', 10, 183, "r"),
        ("kmsg-write".into(), 'c', 1, 11, "w"),
        ("tty1".into(), 'c', 4, 1, "rw"),
        ("mem".into(), 'c', 1, 1, "r"),
    ];
    for (name, path) in [
        ("kvm", "/dev/kvm"),
        ("loop-control", "/dev/loop-control"),
        ("fuse", "/dev/fuse"),
        ("hwrng", "/dev/hwrng"),
        ("tty1", "/dev/tty1"),
    ] {
        if !Path::new(path).exists() {
            eprintln!(
                "note: this host has no {path}; the {name} probe still shows the cgroup's EPERM"
            );
        }
    }
    match openable_block_device() {
        Some((ma, mi)) => d.push(("block".into(), 'b', ma, mi, "r")),
        None => eprintln!("skipping the block device probe: this host lets root open none"),
    }
    d
}

/// Probe arguments for the devices and for everything else.
fn probe_args(devices: &[(String, char, u32, u32, &str)]) -> Vec<String> {
    let mut a: Vec<String> = devices
        .iter()
        .map(|(n, t, ma, mi, mode)| format!("dev:{n}:{t}:{ma}:{mi}:{mode}"))
        .collect();
    for p in [
        "add_key",
        "keyctl",
        "init_module",
        "finit_module",
        "mount",
        "unshare",
        "clock",
        "ptrace",
        "kcore",
        "sysctl",
        "sys",
        "cgroup",
        "syslog",
        "bpf",
        "ioperm",
        "swapon",
        "open_by_handle_at",
    ] {
        a.push(p.into());
    }
    a
}

/// A probe result that means the container could not do it.
fn refused(result: &str) -> bool {
    !matches!(result, "ok" | "present")
}

/// What hako must refuse whatever Docker does, with the answer expected.
fn assert_hako_refuses(
    where_: &str,
    hako: &BTreeMap<String, String>,
    devices: &[(String, char, u32, u32, &str)],
) {
    let expect = |name: &str, want: &[&str]| {
        let got = hako
            .get(name)
            .unwrap_or_else(|| panic!("{where_}: no {name} result in {hako:?}"));
        assert!(
            want.contains(&got.as_str()),
            "{where_}: {name} gave {got}, expected one of {want:?}"
        );
    };
    for (name, ..) in devices {
        // As in Docker: the node can be made, not opened.
        expect(&format!("{name}.mknod"), &["ok"]);
        expect(name, &["EPERM"]);
    }
    for name in [
        "add_key",
        "keyctl",
        "init_module",
        "finit_module",
        "mount",
        "unshare-user",
        "unshare-mnt",
        "unshare-net",
        "unshare-pid",
        "unshare-uts",
        "unshare-ipc",
        "unshare-cgroup",
        "clock_settime",
        "syslog",
        "bpf",
        "ioperm",
        "swapon",
        "open_by_handle_at",
    ] {
        expect(name, &["EPERM"]);
    }
    expect("sysctl-write", &["EROFS"]);
    expect("sys-write", &["EROFS", "no-file"]);
    expect("cgroup-mkdir", &["EROFS"]);
    expect("release_agent", &["absent"]);
    if Path::new("/proc/kcore").exists() {
        expect("kcore", &["empty"]);
    } else {
        eprintln!("note: this kernel has no /proc/kcore; the probe only sees ENOENT");
    }
}

/// hako refuses at least what Docker refuses.
fn assert_at_least_docker(
    where_: &str,
    hako: &BTreeMap<String, String>,
    docker: &BTreeMap<String, String>,
) {
    assert!(
        !docker.is_empty(),
        "{where_}: Docker's probe printed nothing"
    );
    for (name, d) in docker {
        let h = hako
            .get(name)
            .unwrap_or_else(|| panic!("{where_}: hako has no {name} result ({hako:?})"));
        if refused(d) {
            assert!(
                refused(h),
                "{where_}: Docker refuses {name} ({d}), hako allows it ({h})"
            );
        }
        if h != d {
            eprintln!("{where_}: {name}: hako {h}, Docker {d}");
        }
    }
}

fn docker_stdout(docker: &Docker, args: &[&str]) -> String {
    docker.ok(args)
}

#[test]
fn default_containers_refuse_what_docker_refuses_in_run_exec_and_build() {
    let probe = Probe::build();
    let devices = forbidden_devices();
    let args = probe_args(&devices);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let docker = Docker::start();
    docker.import_busybox("busybox");
    let r = Root::with_busybox();
    let vol = probe.volume();

    // run
    let mut a = vec![
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &vol,
        "busybox",
        "/probe",
    ];
    a.extend(&args);
    let hako_run = results(&r.ok(&a));
    let docker_run = results(&docker_stdout(&docker, &a));
    assert_hako_refuses("run", &hako_run, &devices);
    assert_at_least_docker("run", &hako_run, &docker_run);

    // exec, into a container started with the probe bound in
    let start = [
        "run",
        "-d",
        "--network",
        "none",
        "-v",
        &vol,
        "busybox",
        "sleep",
        "600",
    ];
    let hako_id = r.ok(&start).trim().to_string();
    let docker_id = docker_stdout(&docker, &start).trim().to_string();
    let mut a = vec!["exec", hako_id.as_str(), "/probe"];
    a.extend(&args);
    let hako_exec = results(&r.ok(&a));
    a[1] = &docker_id;
    let docker_exec = results(&docker_stdout(&docker, &a));
    assert_hako_refuses("exec", &hako_exec, &devices);
    assert_at_least_docker("exec", &hako_exec, &docker_exec);

    // The device cgroup of a container, as the kernel lists it (cgroup v1): hako's is Docker's.
    let list = |out: String| {
        let mut l: Vec<String> = out.lines().map(String::from).collect();
        l.sort();
        l
    };
    let cat = ["exec", "", "cat", "/sys/fs/cgroup/devices/devices.list"];
    if Path::new("/sys/fs/cgroup/devices").is_dir() {
        let mut c = cat;
        c[1] = &hako_id;
        let hako_list = list(r.ok(&c));
        c[1] = &docker_id;
        let docker_list = list(docker_stdout(&docker, &c));
        assert_eq!(hako_list, docker_list, "devices.list: hako against Docker");
        assert!(
            hako_list.contains(&"c 136:* rwm".to_string()),
            "{hako_list:?}"
        );
    } else {
        eprintln!("skipping the devices.list comparison: no cgroup v1 devices hierarchy here");
    }
    r.ok(&["rm", "-f", &hako_id]);
    docker_stdout(&docker, &["rm", "-f", &docker_id]);

    // A RUN step of a build.
    let c = ctx();
    std::fs::copy(probe.path(), c.path().join("probe")).unwrap();
    write(
        c.path(),
        "Dockerfile",
        &format!(
            "FROM busybox\nCOPY probe /probe\nRUN /probe {}\n",
            args.join(" ")
        ),
    );
    let ctx_path = c.path().to_str().unwrap();
    let out = r.hako(&["build", "--no-cache", "-t", "probe-build", ctx_path]);
    assert!(
        out.status.success(),
        "hako build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hako_build = results(&format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ));
    let out = docker
        .cmd(&["build", "--no-cache", "-t", "probe-build", ctx_path])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docker_build = results(&String::from_utf8_lossy(&out.stdout));
    assert_hako_refuses("build RUN", &hako_build, &devices);
    assert_at_least_docker("build RUN", &hako_build, &docker_build);
}

/// A device node the host has, to grant with `--device`: (path, major, minor).
fn grantable_device() -> Option<(&'static str, u32, u32)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    for path in ["/dev/kvm", "/dev/fuse", "/dev/loop-control"] {
        if let Ok(m) = std::fs::metadata(path) {
            if m.file_type().is_char_device() {
                let rdev = m.rdev();
                return Some((path, libc_major(rdev), libc_minor(rdev)));
            }
        }
    }
    None
}

fn libc_major(rdev: u64) -> u32 {
    (((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff)) as u32
}

fn libc_minor(rdev: u64) -> u32 {
    (((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff)) as u32
}

#[test]
fn standard_devices_work_and_granted_devices_open() {
    let probe = Probe::build();
    let r = Root::with_busybox();
    let vol = probe.volume();
    let run = |extra: &[&str], probes: &[&str]| {
        let mut a = vec!["run", "--rm", "--network", "none", "-v", &vol];
        a.extend(extra);
        a.push("busybox");
        a.push("/probe");
        a.extend(probes);
        results(&r.ok(&a))
    };
    let all_ok = |res: &BTreeMap<String, String>| {
        for (n, v) in res {
            assert_eq!(v, "ok", "{n}: {res:?}");
        }
    };

    // Docker's standard nodes and a pseudo-terminal of the container's own devpts.
    let res = run(
        &[],
        &[
            "path:null:/dev/null:rw",
            "path:zero:/dev/zero:rw",
            "path:full:/dev/full:rw",
            "path:random:/dev/random:r",
            "path:urandom:/dev/urandom:rw",
            "ptmx",
            "dev:tun:c:10:200:r",
        ],
    );
    assert_eq!(res.len(), 8, "{res:?}");
    for (n, v) in &res {
        // /dev/net/tun may have no driver here: then the open gets past the cgroup and fails
        // in the driver lookup.
        let fine = v == "ok" || (n == "tun" && (v == "ENODEV" || v == "ENXIO"));
        assert!(fine, "{n}: {v} ({res:?})");
    }
    // /dev/tty with -t: the container's terminal is its controlling terminal.
    all_ok(&run(&["-t"], &["path:tty:/dev/tty:rw"]));

    let Some((dev, major, minor)) = grantable_device() else {
        eprintln!("skipping the --device checks: this host has none of /dev/kvm, /dev/fuse, /dev/loop-control");
        return;
    };
    let node = |mode: &str| format!("dev:granted:c:{major}:{minor}:{mode}");
    let at = |mode: &str| format!("path:granted:{dev}:{mode}");
    // Refused by default, as the battery above checks; granted by each of these.
    assert_eq!(run(&[], &[&node("rw")])["granted"], "EPERM");
    all_ok(&run(&["--device", dev], &[&at("rw")]));
    let res = run(
        &["--device", &format!("{dev}:/dev/other:r")],
        &["path:read:/dev/other:r", "path:write:/dev/other:w"],
    );
    assert_eq!(res["read"], "ok", "{res:?}");
    assert_eq!(
        res["write"], "EPERM",
        "the permissions of --device hold: {res:?}"
    );
    let rule = format!("c {major}:{minor} rw");
    let res = run(&["--device-cgroup-rule", &rule], &[&node("rw")]);
    assert_eq!(res["granted"], "ok", "{res:?}");
    let res = run(
        &["--device-cgroup-rule", &format!("c {major}:* r")],
        &[&node("r"), &node("w").replace("granted", "w")],
    );
    assert_eq!(res["granted"], "ok", "{res:?}");
    assert_eq!(res["w"], "EPERM", "{res:?}");
    let res = run(
        &["--privileged"],
        &[&at("rw"), &node("rw").replace("granted", "made")],
    );
    assert_eq!(res["granted"], "ok", "{res:?}");
    assert_eq!(res["made"], "ok", "{res:?}");

    // Stored with the container: `start` applies them again.
    let id = r.ok(&[
        "create",
        "--network",
        "none",
        "-v",
        &vol,
        "--device-cgroup-rule",
        &rule,
        "--device",
        &format!("{dev}:/dev/granted-too"),
        "busybox",
        "/probe",
        &node("rw"),
        "path:too:/dev/granted-too:rw",
    ]);
    let id = id.trim();
    let res = results(&r.ok(&["start", "-a", id]));
    assert_eq!(res["granted"], "ok", "{res:?}");
    assert_eq!(res["too"], "ok", "{res:?}");
    let res = results(&r.ok(&["start", "-a", id]));
    assert_eq!(res["granted"], "ok", "again: {res:?}");
    let shown = r.ok(&[
        "inspect",
        "-f",
        "{{json .HostConfig.DeviceCgroupRules}} {{json .HostConfig.Devices}}",
        id,
    ]);
    assert!(shown.contains(&format!("[\"{rule}\"]")), "{shown}");
    assert!(
        shown.contains("\"PathInContainer\":\"/dev/granted-too\""),
        "{shown}"
    );
    r.ok(&["rm", id]);

    // exec joins the container's cgroup: what the container may not open, neither may a
    // process exec'd into it, even with --privileged (as in Docker).
    let id = r.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "-v",
        &vol,
        "busybox",
        "sleep",
        "600",
    ]);
    let id = id.trim();
    let res = results(&r.ok(&["exec", "--privileged", id, "/probe", &node("rw")]));
    assert_eq!(res["granted"], "EPERM", "{res:?}");
    r.ok(&["rm", "-f", id]);
}

#[test]
fn bad_device_flags_are_refused_before_anything_is_made() {
    let r = Root::with_busybox();
    for (flag, value, why) in [
        (
            "--device",
            "/dev/null:/dev/null:rwx",
            "bad mode specified: rwx",
        ),
        ("--device", "/dev/null:null", "null is not an absolute path"),
        (
            "--device-cgroup-rule",
            "c 1:3",
            "invalid device cgroup format 'c 1:3'",
        ),
        (
            "--device-cgroup-rule",
            "z *:* rwm",
            "invalid device cgroup format 'z *:* rwm'",
        ),
    ] {
        for cmd in ["run", "create"] {
            let (code, out, err) = r.run(&[cmd, "--rm", flag, value, "busybox", "true"]);
            assert_eq!(code, 125, "{cmd} {flag} {value}: {out}{err}");
            assert_eq!(
                err.trim(),
                format!("hako: invalid argument \"{value}\" for \"{flag}\" flag: {why}"),
            );
        }
    }
    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "--device",
        "/etc/hostname",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(
        err.contains("\"/etc/hostname\": not a device node"),
        "{err}"
    );
    assert_eq!(r.ok(&["ps", "-aq"]), "");
}

/// The script that prints the container's pids.max and memory limit, on cgroup v1 or v2.
const SHOW_LIMITS: &str = "d=/sys/fs/cgroup; \
    if [ -d $d/pids ]; then cat $d/pids/pids.max $d/memory/memory.limit_in_bytes; \
    else cat $d/pids.max $d/memory.max; fi";

/// Tries to change the cgroup from inside; prints what the shell said.
const TRY_WRITES: &str = "d=/sys/fs/cgroup; [ -d $d/pids ] && p=$d/pids || p=$d; \
    mkdir $p/sub 2>&1 && rmdir $p/sub && echo MKDIR-OK; \
    (echo 5 > $p/pids.max) 2>&1 && echo WRITE-OK; \
    grep ' /sys/fs/cgroup ' /proc/self/mountinfo | cut -d' ' -f6 | cut -d, -f1";

#[test]
fn sys_fs_cgroup_shows_the_containers_own_cgroup_read_only() {
    let probe = Probe::build();
    let r = Root::with_busybox();
    let vol = probe.volume();
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--pids-limit",
        "7",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        SHOW_LIMITS,
    ]);
    assert_eq!(out, format!("7\n{}\n", 64u64 << 20));

    // No hierarchy root, so no release_agent, and nothing may be written.
    let res = results(&r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &vol,
        "busybox",
        "/probe",
        "cgroup",
    ]));
    assert_eq!(res["release_agent"], "absent", "{res:?}");
    assert_eq!(res["cgroup-mkdir"], "EROFS", "{res:?}");
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--pids-limit",
        "7",
        "busybox",
        "sh",
        "-c",
        TRY_WRITES,
    ]);
    assert!(!out.contains("-OK"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    assert_eq!(out.lines().last(), Some("ro"), "{out}");
    // Privileged: read-write, as in Docker.
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        TRY_WRITES,
    ]);
    assert!(out.contains("MKDIR-OK"), "{out}");
    assert_eq!(out.lines().last(), Some("rw"), "{out}");

    // exec is in the container's mount namespace: the same view.
    let id = r.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--pids-limit",
        "7",
        "-m",
        "64m",
        "busybox",
        "sleep",
        "600",
    ]);
    let id = id.trim();
    assert_eq!(
        r.ok(&["exec", id, "sh", "-c", SHOW_LIMITS]),
        format!("7\n{}\n", 64u64 << 20)
    );
    r.ok(&["rm", "-f", id]);

    // A RUN step sees its own cgroup too (no limits: pids.max says max), read-only.
    let c = ctx();
    write(
        c.path(),
        "Dockerfile",
        &format!(
            "FROM busybox\nRUN {{ {SHOW_LIMITS}; }} | sed 's/^/LIMIT /'; {{ {TRY_WRITES}; }} | sed 's/^/TRY /'\n"
        ),
    );
    let out = r.hako(&["build", "--no-cache", c.path().to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("LIMIT max"), "{text}");
    assert!(
        !text.contains("TRY MKDIR-OK") && !text.contains("TRY WRITE-OK"),
        "{text}"
    );
    assert!(text.contains("TRY ro"), "{text}");
}
