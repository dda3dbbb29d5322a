//! Tests against the real cgroup hierarchies of the host. They need root;
//! without it they print why and pass.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command};

use hako_cgroups::{Cgroup, CgroupSystem, Mode, Resources};

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

/// Kills and removes everything a test made, even when it fails midway.
struct Guard {
    cgroup: Cgroup,
    child: Option<Child>,
    extra_dirs: Vec<std::path::PathBuf>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = self.cgroup.kill_all();
        let _ = self.cgroup.remove();
        for dir in self.extra_dirs.iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn sleeper() -> Child {
    Command::new("sleep").arg("30").spawn().unwrap()
}

/// Checks that /proc/<pid>/cgroup lists the cgroup once per hierarchy.
fn assert_member(pid: u32, cg: &Cgroup) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for rel in cg.relative_paths() {
        let want = cg.relative_paths().iter().filter(|r| *r == rel).count();
        let have = text
            .lines()
            .filter(|l| l.splitn(3, ':').nth(2) == Some(rel.as_str()))
            .count();
        assert!(
            have >= want,
            "{rel} expected in {want} hierarchies, found {have}:\n{text}"
        );
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap()
        .trim()
        .to_owned()
}

/// The directory among `cg.paths()` that has `file`.
fn with_file<'a>(cg: &'a Cgroup, file: &str) -> &'a Path {
    cg.paths()
        .iter()
        .find(|p| p.join(file).exists())
        .unwrap_or_else(|| panic!("no hierarchy has {file}: {:?}", cg.paths()))
}

fn reap_killed(child: &mut Child) {
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
}

#[test]
fn host_lifecycle() {
    if !is_root() {
        return;
    }
    let sys = CgroupSystem::detect().unwrap();
    eprintln!("mode {:?}: {:?}", sys.mode(), sys);
    let name = unique("life");
    let cg = sys.create(None, &name).unwrap();
    let mut g = Guard {
        cgroup: cg.clone(),
        child: Some(sleeper()),
        extra_dirs: Vec::new(),
    };
    assert!(cg.relative_path().ends_with(&name));
    for p in cg.paths() {
        assert!(p.is_dir(), "{}", p.display());
    }
    let pid = g.child.as_ref().unwrap().id();
    cg.add_task(pid as i32).unwrap();
    assert_member(pid, &cg);
    assert_eq!(cg.pids().unwrap(), vec![pid as i32]);

    cg.apply(&Resources {
        memory_limit: Some(64 << 20),
        pids_limit: Some(32),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(read(with_file(&cg, "pids.max"), "pids.max"), "32");
    let mem_file = if sys.mode() == Mode::V2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert_eq!(
        read(with_file(&cg, mem_file), mem_file),
        (64u64 << 20).to_string()
    );

    let stats = cg.stats().unwrap();
    eprintln!("{stats:?}");
    assert_eq!(stats.pids_current, Some(1));
    assert!(stats.memory_usage.is_some());
    assert!(stats.cpu_usage_ns.is_some());

    cg.freeze().unwrap();
    cg.thaw().unwrap();

    cg.kill_all().unwrap();
    reap_killed(g.child.as_mut().unwrap());
    g.child = None;
    assert!(cg.pids().unwrap().is_empty());
    cg.remove().unwrap();
    for p in cg.paths() {
        assert!(!p.exists(), "{}", p.display());
    }
    // A handle from open() after the fact cleans up without complaint.
    sys.open(None, &name).remove().unwrap();
}

/// The v1 hierarchies alone (no cgroup2), so kill_all has to take the
/// freeze + signal path; also exercises a --cgroup-parent style path.
#[test]
fn host_v1_parent_and_freezer_kill() {
    if !is_root() {
        return;
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v1_only: String = mountinfo
        .lines()
        .filter(|l| l.contains(" - cgroup "))
        .map(|l| format!("{l}\n"))
        .collect();
    if v1_only.is_empty() {
        eprintln!("skipping: host has no cgroup v1 hierarchies");
        return;
    }
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let sys = CgroupSystem::from_parts(&v1_only, &own).unwrap();
    assert_eq!(sys.mode(), Mode::V1);

    let parent = unique("parent");
    let cg = sys.create(Some(&parent), "c").unwrap();
    let mut g = Guard {
        cgroup: cg.clone(),
        child: Some(sleeper()),
        extra_dirs: cg
            .paths()
            .iter()
            .map(|p| p.parent().unwrap().to_path_buf())
            .collect(),
    };
    assert_eq!(cg.relative_path(), format!("/{parent}/c"));
    if let Some(cpuset) = cg.paths().iter().find(|p| p.join("cpuset.cpus").exists()) {
        assert!(!read(cpuset, "cpuset.cpus").is_empty());
        assert!(!read(cpuset.parent().unwrap(), "cpuset.mems").is_empty());
    }
    // Idempotent.
    assert_eq!(sys.create(Some(&parent), "c").unwrap().paths(), cg.paths());

    let pid = g.child.as_ref().unwrap().id();
    cg.add_task(pid as i32).unwrap();
    assert_member(pid, &cg);
    cg.kill_all().unwrap();
    reap_killed(g.child.as_mut().unwrap());
    g.child = None;
    cg.remove().unwrap();
    for p in cg.paths() {
        assert!(!p.exists(), "{}", p.display());
        assert!(p.parent().unwrap().is_dir());
    }
}

/// The pure-v2 code path on a real cgroup2 mount: on a hybrid host that is
/// the unified hierarchy, on a v2 host the only one.
#[test]
fn host_pure_v2_path() {
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

    let name = unique("v2");
    let cg = sys.create(None, &name).unwrap();
    let mut g = Guard {
        cgroup: cg.clone(),
        child: Some(sleeper()),
        extra_dirs: Vec::new(),
    };
    assert_eq!(cg.paths().len(), 1);
    let dir = cg.paths()[0].clone();
    let pid = g.child.as_ref().unwrap().id();
    cg.add_task(pid as i32).unwrap();
    assert_member(pid, &cg);
    assert_eq!(cg.pids().unwrap(), vec![pid as i32]);

    cg.freeze().unwrap();
    assert!(read(&dir, "cgroup.events").contains("frozen 1"));
    cg.thaw().unwrap();
    assert_eq!(read(&dir, "cgroup.freeze"), "0");

    let stats = cg.stats().unwrap();
    assert!(stats.cpu_usage_ns.is_some(), "{stats:?}");

    cg.kill_all().unwrap();
    reap_killed(g.child.as_mut().unwrap());
    g.child = None;
    cg.remove().unwrap();
    assert!(!dir.exists());
}

/// A container that made its own sub-cgroups is still killed and removed.
#[test]
fn host_nested_sub_cgroups() {
    if !is_root() {
        return;
    }
    let sys = CgroupSystem::detect().unwrap();
    let name = unique("nest");
    let cg = sys.create(None, &name).unwrap();
    let mut g = Guard {
        cgroup: cg.clone(),
        child: Some(sleeper()),
        extra_dirs: Vec::new(),
    };
    let inner = sys
        .create(None, &format!("{name}/inner"))
        .expect("sub-cgroup");
    let pid = g.child.as_ref().unwrap().id();
    inner.add_task(pid as i32).unwrap();
    assert_eq!(cg.pids().unwrap(), vec![pid as i32]);
    cg.kill_all().unwrap();
    reap_killed(g.child.as_mut().unwrap());
    g.child = None;
    cg.remove().unwrap();
    for p in cg.paths() {
        assert!(!p.exists(), "{}", p.display());
    }
}

/// Start-path cost on this host (printed, not asserted).
#[test]
fn host_start_path_timing() {
    if !is_root() {
        return;
    }
    let t0 = std::time::Instant::now();
    let sys = CgroupSystem::detect().unwrap();
    let t1 = std::time::Instant::now();
    let name = unique("time");
    let cg = sys.create(None, &name).unwrap();
    let mut g = Guard {
        cgroup: cg.clone(),
        child: Some(sleeper()),
        extra_dirs: Vec::new(),
    };
    let t2 = std::time::Instant::now();
    let pid = g.child.as_ref().unwrap().id() as i32;
    cg.add_task(pid).unwrap();
    cg.apply(&Resources {
        memory_limit: Some(64 << 20),
        pids_limit: Some(64),
        cpu_shares: Some(512),
        ..Default::default()
    })
    .unwrap();
    let t3 = std::time::Instant::now();
    cg.kill_all().unwrap();
    let t4 = std::time::Instant::now();
    reap_killed(g.child.as_mut().unwrap());
    g.child = None;
    cg.remove().unwrap();
    let t5 = std::time::Instant::now();
    eprintln!(
        "detect {:?}, create {:?}, add_task+apply {:?}, kill_all {:?}, remove {:?}",
        t1 - t0,
        t2 - t1,
        t3 - t2,
        t4 - t3,
        t5 - t4
    );
}
