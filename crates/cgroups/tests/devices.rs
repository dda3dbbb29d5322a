//! Device rules enforced by the real kernel: the eBPF program on a cgroup2 directory (the path
//! a pure cgroup v2 host takes) and the v1 devices controller. A process is moved into the
//! cgroup and then tries to open device nodes made for the test. They need root; without it
//! they print why and pass.

use std::io::Write as _;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use hako_cgroups::{Cgroup, CgroupSystem, DeviceRule, Mode, Resources};

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipping: cgroup host tests need root");
    false
}

fn unique(tag: &str) -> String {
    let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid").unwrap();
    format!("hako-test-{tag}-{}-{}", std::process::id(), &uuid[..8])
}

fn rule(
    allow: bool,
    kind: char,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> DeviceRule {
    DeviceRule {
        allow,
        kind,
        major,
        minor,
        access: access.into(),
    }
}

/// Docker's rules for a container that is not privileged.
fn docker_rules() -> Vec<DeviceRule> {
    let mut r = vec![
        rule(false, 'a', None, None, "rwm"),
        rule(true, 'c', None, None, "m"),
        rule(true, 'b', None, None, "m"),
    ];
    for (ma, mi) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (10, 200),
    ] {
        r.push(rule(true, 'c', Some(ma), Some(mi), "rwm"));
    }
    r.push(rule(true, 'c', Some(136), None, "rwm"));
    r
}

/// Device nodes made for the test in a directory on a filesystem without `nodev`.
struct Nodes {
    dir: tempfile::TempDir,
    /// (name, block device?, major, minor)
    made: Vec<(&'static str, bool, u32, u32)>,
}

/// A block device this process can open: the root filesystem's disk (from mountinfo) if the
/// host lets even root open it, else the first in /sys/block that opens. A device the host
/// itself refuses could not show what the cgroup refuses.
fn block_device(dir: &Path) -> Option<(u32, u32)> {
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
    let probe = dir.join("probe-block");
    for (ma, mi) in candidates {
        if !Path::new(&format!("/sys/dev/block/{ma}:{mi}")).exists() {
            continue;
        }
        let _ = std::fs::remove_file(&probe);
        nix::sys::stat::mknod(
            &probe,
            nix::sys::stat::SFlag::S_IFBLK,
            nix::sys::stat::Mode::from_bits_truncate(0o600),
            nix::sys::stat::makedev(u64::from(ma), u64::from(mi)),
        )
        .unwrap();
        let opens = std::fs::File::open(&probe).is_ok();
        let _ = std::fs::remove_file(&probe);
        if opens {
            return Some((ma, mi));
        }
        eprintln!("the host refuses to open block device {ma}:{mi} even outside a cgroup");
    }
    None
}

impl Nodes {
    fn new() -> Nodes {
        let dir = tempfile::Builder::new()
            .prefix("hako-devtest-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let mut made = vec![("null", false, 1, 3), ("kmsg", false, 1, 11)];
        if let Some((ma, mi)) = block_device(dir.path()) {
            made.push(("disk", true, ma, mi));
        } else {
            eprintln!("no block device this host lets us open: the block probe is skipped");
        }
        for (name, block, ma, mi) in &made {
            let kind = if *block {
                nix::sys::stat::SFlag::S_IFBLK
            } else {
                nix::sys::stat::SFlag::S_IFCHR
            };
            nix::sys::stat::mknod(
                &dir.path().join(name),
                kind,
                nix::sys::stat::Mode::from_bits_truncate(0o600),
                nix::sys::stat::makedev(u64::from(*ma), u64::from(*mi)),
            )
            .unwrap();
        }
        Nodes { dir, made }
    }

    fn has(&self, name: &str) -> bool {
        self.made.iter().any(|(n, ..)| *n == name)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// A shell that waits for a line on stdin (so it can be moved into the cgroup first), then
/// reports for each argument whether a read-only open succeeds.
fn prober(nodes: &Nodes) -> Child {
    Command::new("sh")
        .arg("-c")
        .arg(
            r#"read _; for f in "$@"; do
                 if err=$( ( : < "$f" ) 2>&1 ); then echo "${f##*/} ok"; else echo "${f##*/} $err"; fi
               done"#,
        )
        .arg("sh")
        .args(nodes.made.iter().map(|(n, ..)| nodes.path(n)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs a prober inside `cg`; (node name, "ok" or the shell's error) for each node.
fn probe(cg: &Cgroup, nodes: &Nodes) -> Vec<(String, String)> {
    let mut child = prober(nodes);
    cg.add_task(child.id() as i32).unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (n, r) = l.split_once(' ').unwrap();
            (n.to_owned(), r.to_owned())
        })
        .collect()
}

fn verdict<'a>(results: &'a [(String, String)], name: &str) -> &'a str {
    results
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, r)| r.as_str())
        .unwrap_or_else(|| panic!("no result for {name}: {results:?}"))
}

fn assert_denied(results: &[(String, String)], name: &str) {
    let v = verdict(results, name);
    assert!(
        v.contains("Operation not permitted"),
        "{name}: {v} ({results:?})"
    );
}

struct Removed(Cgroup);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = self.0.kill_all();
        let _ = self.0.remove();
    }
}

/// What a cgroup v2 host does: the rules as an eBPF program on the container's cgroup2
/// directory, here the hybrid host's unified hierarchy seen alone.
#[test]
fn cgroup2_device_program_is_enforced_and_replaced() {
    if !is_root() {
        return;
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let Some(line) = mountinfo.lines().find(|l| l.contains(" - cgroup2 ")) else {
        eprintln!("skipping: host has no cgroup2 mount");
        return;
    };
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own_v2 = own.lines().find(|l| l.starts_with("0::")).unwrap();
    let sys = CgroupSystem::from_parts(line, own_v2).unwrap();
    assert_eq!(sys.mode(), Mode::V2);
    let nodes = Nodes::new();

    // Without rules, root opens all of them.
    let cg = Removed(sys.create(None, &unique("bpf-open")).unwrap());
    let before = probe(&cg.0, &nodes);
    for (n, r) in &before {
        assert_eq!(r, "ok", "{n} before any rule: {before:?}");
    }
    drop(cg);

    let cg = Removed(sys.create(None, &unique("bpf")).unwrap());
    let with = |rules: Vec<DeviceRule>| Resources {
        devices: Some(rules),
        ..Default::default()
    };
    cg.0.apply(&with(docker_rules())).unwrap();
    let r = probe(&cg.0, &nodes);
    assert_eq!(verdict(&r, "null"), "ok");
    assert_denied(&r, "kmsg");
    if nodes.has("disk") {
        assert_denied(&r, "disk");
    }
    if Path::new("/dev/kvm")
        .metadata()
        .is_ok_and(|m| m.file_type().is_char_device())
    {
        let mut kvm = Command::new("sh")
            .args(["-c", "read _; : < /dev/kvm"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        cg.0.add_task(kvm.id() as i32).unwrap();
        kvm.stdin.take().unwrap().write_all(b"go\n").unwrap();
        let out = kvm.wait_with_output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Operation not permitted"), "{err}");
    } else {
        eprintln!("host has no /dev/kvm: that probe is skipped");
    }

    // Applying again replaces the program: kmsg, allowed now, opens. Were the first program
    // still attached, it would still refuse (every program must allow).
    let mut more = docker_rules();
    more.push(rule(true, 'c', Some(1), Some(11), "r"));
    cg.0.apply(&with(more)).unwrap();
    let r = probe(&cg.0, &nodes);
    assert_eq!(verdict(&r, "kmsg"), "ok", "{r:?}");
    if nodes.has("disk") {
        assert_denied(&r, "disk");
    }
    // Everything allowed detaches the program.
    cg.0.apply(&with(vec![rule(true, 'a', None, None, "rwm")]))
        .unwrap();
    let r = probe(&cg.0, &nodes);
    for (n, v) in &r {
        assert_eq!(v, "ok", "{n} once everything is allowed: {r:?}");
    }
    // And a program again on the same directory.
    cg.0.apply(&with(docker_rules())).unwrap();
    assert_denied(&probe(&cg.0, &nodes), "kmsg");
}

/// The v1 devices controller: the kernel's list is exactly Docker's, and a second rule list
/// replaces the first.
#[test]
fn v1_devices_controller_takes_the_rules() {
    if !is_root() {
        return;
    }
    let sys = CgroupSystem::detect().unwrap();
    let cg = Removed(sys.create(None, &unique("v1dev")).unwrap());
    let Some(dir) =
        cg.0.paths()
            .iter()
            .find(|p| p.join("devices.list").exists())
            .cloned()
    else {
        eprintln!("skipping: host has no cgroup v1 devices hierarchy");
        return;
    };
    let nodes = Nodes::new();
    let with = |rules: Vec<DeviceRule>| Resources {
        devices: Some(rules),
        ..Default::default()
    };
    cg.0.apply(&with(docker_rules())).unwrap();
    let mut list: Vec<String> = std::fs::read_to_string(dir.join("devices.list"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    list.sort();
    let mut want: Vec<String> = [
        "b *:* m",
        "c *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:1 rwm",
        "c 5:2 rwm",
        "c 10:200 rwm",
        "c 136:* rwm",
    ]
    .map(String::from)
    .to_vec();
    want.sort();
    assert_eq!(list, want);
    let r = probe(&cg.0, &nodes);
    assert_eq!(verdict(&r, "null"), "ok");
    assert_denied(&r, "kmsg");

    let mut more = docker_rules();
    more.push(rule(true, 'c', Some(1), Some(11), "r"));
    cg.0.apply(&with(more)).unwrap();
    assert_eq!(verdict(&probe(&cg.0, &nodes), "kmsg"), "ok");
    // A list without a leading `a` rule still replaces: what it does not allow is closed
    // again rather than left from the previous list.
    cg.0.apply(&with(vec![rule(false, 'c', Some(1), Some(11), "rwm")]))
        .unwrap();
    let r = probe(&cg.0, &nodes);
    assert_denied(&r, "kmsg");
    if nodes.has("disk") {
        assert_eq!(verdict(&r, "disk"), "ok", "{r:?}");
    }
}
