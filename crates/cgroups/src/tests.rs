//! Tests against a fake cgroup tree in a temporary directory. See `fs.rs`
//! for how the fake tree stands in for kernfs.

use super::*;
use std::fs as stdfs;

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Self {
        Tree {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn file(&self, rel: &str, content: &str) {
        let path = self.p(rel);
        stdfs::create_dir_all(path.parent().unwrap()).unwrap();
        stdfs::write(path, content).unwrap();
    }

    fn read(&self, rel: &str) -> String {
        stdfs::read_to_string(self.p(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    fn mountinfo_line(&self, id: u32, root: &str, mnt: &str, tail: &str) -> String {
        format!(
            "{id} 1 0:{id} {root} {} rw,relatime shared:{id} - {tail}\n",
            self.p(mnt).display()
        )
    }

    /// v1 hierarchies; the caller's memory cgroup is /agent/x, others at /.
    fn v1(&self) -> (String, String) {
        let mut mi = String::from("20 1 0:20 / / rw - ext4 /dev/vda rw\n");
        let mounts = [
            ("cpu,cpuacct", "cpu,cpuacct"),
            ("cpuset", "cpuset"),
            ("memory", "memory"),
            ("pids", "pids"),
            ("freezer", "freezer"),
            ("systemd", "xattr,name=systemd"),
            ("rdma", "rdma"),
        ];
        for (i, (dir, opts)) in mounts.iter().enumerate() {
            stdfs::create_dir_all(self.p(dir)).unwrap();
            mi +=
                &self.mountinfo_line(30 + i as u32, "/", dir, &format!("cgroup cgroup rw,{opts}"));
        }
        self.file("cpuset/cpuset.cpus", "0-3\n");
        self.file("cpuset/cpuset.mems", "0\n");
        stdfs::create_dir_all(self.p("memory/agent/x")).unwrap();
        let cg = "9:rdma:/\n8:name=systemd:/\n7:freezer:/\n6:pids:/\n4:memory:/agent/x\n\
                  3:cpuset:/\n2:cpu,cpuacct:/\n0::/\n"
            .to_owned();
        (mi, cg)
    }

    /// Pure v2; the caller sits in /user.slice/x.
    fn v2(&self) -> (String, String) {
        let all = "cpuset cpu io memory hugetlb pids rdma\n";
        self.file("unified/cgroup.controllers", all);
        self.file("unified/cgroup.subtree_control", "cpu memory\n");
        self.file("unified/user.slice/cgroup.controllers", all);
        self.file("unified/user.slice/cgroup.subtree_control", all);
        self.file("unified/user.slice/x/cgroup.controllers", all);
        self.file("unified/user.slice/x/cgroup.subtree_control", "memory\n");
        let mi = self.mountinfo_line(40, "/", "unified", "cgroup2 cgroup2 rw,nsdelegate");
        (mi, "0::/user.slice/x\n".to_owned())
    }
}

#[test]
fn v1_create_nests_under_caller_and_copies_cpuset() {
    let t = Tree::new();
    let (mi, cg) = t.v1();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    assert_eq!(sys.mode(), Mode::V1);
    // cpu,cpuacct is one hierarchy.
    assert_eq!(sys.mount_points().count(), 7);

    let c = sys.create(None, "c1").unwrap();
    assert_eq!(c.relative_path(), "/agent/x/c1");
    let expect: Vec<PathBuf> = [
        "cpu,cpuacct/c1",
        "cpuset/c1",
        "memory/agent/x/c1",
        "pids/c1",
        "freezer/c1",
        "systemd/c1",
        "rdma/c1",
    ]
    .iter()
    .map(|r| t.p(r))
    .collect();
    assert_eq!(c.paths(), &expect[..]);
    for p in c.paths() {
        assert!(p.is_dir(), "{}", p.display());
    }
    assert_eq!(t.read("cpuset/c1/cpuset.cpus"), "0-3");
    assert_eq!(t.read("cpuset/c1/cpuset.mems"), "0");

    // Idempotent, and existing values are left alone.
    t.file("cpuset/c1/cpuset.cpus", "1\n");
    let again = sys.create(None, "c1").unwrap();
    assert_eq!(again.paths(), c.paths());
    assert_eq!(t.read("cpuset/c1/cpuset.cpus"), "1\n");
}

#[test]
fn v1_parent_creates_levels_and_fills_each_cpuset() {
    let t = Tree::new();
    let (mi, cg) = t.v1();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let c = sys.create(Some("hako/sub"), "c").unwrap();
    assert_eq!(c.relative_path(), "/hako/sub/c");
    assert_eq!(c.paths()[2], t.p("memory/hako/sub/c"));
    for lvl in ["hako", "hako/sub", "hako/sub/c"] {
        assert_eq!(t.read(&format!("cpuset/{lvl}/cpuset.cpus")), "0-3");
        assert_eq!(t.read(&format!("cpuset/{lvl}/cpuset.mems")), "0");
    }
    // An intermediate level someone else left empty gets filled too.
    t.file("cpuset/hako/other/cpuset.cpus", "");
    sys.create(Some("/hako/other"), "d").unwrap();
    assert_eq!(t.read("cpuset/hako/other/cpuset.cpus"), "0-3");
    assert_eq!(t.read("cpuset/hako/other/d/cpuset.cpus"), "0-3");

    c.remove().unwrap();
    assert!(!t.p("memory/hako/sub/c").exists());
    // Shared parents stay.
    assert!(t.p("memory/hako/sub").is_dir());
}

#[test]
fn v1_add_task_apply_and_stats() {
    let t = Tree::new();
    let (mi, cg) = t.v1();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let c = sys.create(None, "c").unwrap();
    c.add_task(4242).unwrap();
    for p in c.paths() {
        assert_eq!(
            stdfs::read_to_string(p.join("cgroup.procs")).unwrap(),
            "4242"
        );
    }

    c.apply(&Resources {
        memory_limit: Some(1 << 20),
        memory_swap: Some(2 << 20),
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpuset_cpus: Some("1-2".into()),
        cpuset_mems: None,
        pids_limit: Some(-1),
        devices: None,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(t.read("memory/agent/x/c/memory.limit_in_bytes"), "1048576");
    assert_eq!(
        t.read("memory/agent/x/c/memory.memsw.limit_in_bytes"),
        "2097152"
    );
    assert_eq!(t.read("cpu,cpuacct/c/cpu.shares"), "512");
    assert_eq!(t.read("cpu,cpuacct/c/cpu.cfs_quota_us"), "50000");
    assert_eq!(t.read("cpu,cpuacct/c/cpu.cfs_period_us"), "100000");
    assert_eq!(t.read("cpuset/c/cpuset.cpus"), "1-2");
    assert_eq!(t.read("pids/c/pids.max"), "max");

    c.apply(&Resources {
        memory_limit: Some(-1),
        cpu_quota: Some(-1),
        pids_limit: Some(10),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(t.read("memory/agent/x/c/memory.limit_in_bytes"), "-1");
    assert_eq!(t.read("cpu,cpuacct/c/cpu.cfs_quota_us"), "-1");
    assert_eq!(t.read("pids/c/pids.max"), "10");

    t.file("memory/agent/x/c/memory.usage_in_bytes", "12345\n");
    t.file("pids/c/pids.current", "3\n");
    t.file("cpu,cpuacct/c/cpuacct.usage", "999\n");
    assert_eq!(
        c.stats().unwrap(),
        Stats {
            memory_usage: Some(12345),
            pids_current: Some(3),
            cpu_usage_ns: Some(999),
        }
    );
}

#[test]
fn swap_needs_memory() {
    let t = Tree::new();
    let (mi, cg) = t.v1();
    let c = CgroupSystem::from_parts(&mi, &cg)
        .unwrap()
        .create(None, "c")
        .unwrap();
    let swap_only = Resources {
        memory_swap: Some(1 << 20),
        ..Default::default()
    };
    assert!(matches!(
        c.apply(&swap_only),
        Err(Error::InvalidResources(_))
    ));
    let too_small = Resources {
        memory_limit: Some(2 << 20),
        memory_swap: Some(1 << 20),
        ..Default::default()
    };
    assert!(matches!(
        c.apply(&too_small),
        Err(Error::InvalidResources(_))
    ));
}

#[test]
fn pids_union_and_remove_with_sub_cgroups() {
    let t = Tree::new();
    let (mi, cg) = t.v1();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let c = sys.create(None, "c").unwrap();
    t.file("memory/agent/x/c/cgroup.procs", "7\n3\n");
    t.file("pids/c/cgroup.procs", "3\n");
    // A sub-cgroup made by the container itself.
    t.file("pids/c/inner/cgroup.procs", "");
    t.file("pids/c/inner/deeper/cgroup.procs", "11\n");
    assert_eq!(c.pids().unwrap(), vec![3, 7, 11]);

    c.remove().unwrap();
    for p in c.paths() {
        assert!(!p.exists(), "{}", p.display());
    }
    assert!(t.p("memory/agent/x").is_dir());
    // Already gone is fine.
    c.remove().unwrap();
    assert_eq!(c.pids().unwrap(), Vec::<i32>::new());
    // Nothing inside: returns at once.
    c.kill_all().unwrap();
}

#[test]
fn failed_create_rolls_back() {
    let t = Tree::new();
    let (mut mi, cg) = t.v1();
    // A blkio hierarchy whose mount point is missing makes mkdir fail late.
    mi += &t.mountinfo_line(60, "/", "blkio", "cgroup cgroup rw,blkio");
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let err = sys.create(Some("hako"), "c").unwrap_err();
    assert!(matches!(err, Error::Create { .. }), "{err}");
    assert!(!t.p("cpuset/hako").exists());
    assert!(!t.p("memory/hako").exists());
    assert!(t.p("memory/agent/x").is_dir());
}

#[test]
fn mount_root_is_stripped() {
    let t = Tree::new();
    stdfs::create_dir_all(t.p("memory/x")).unwrap();
    let mi = t.mountinfo_line(30, "/agent", "memory", "cgroup cgroup rw,memory");
    let sys = CgroupSystem::from_parts(&mi, "4:memory:/agent/x\n").unwrap();
    let c = sys.create(None, "c").unwrap();
    assert_eq!(c.paths(), &[t.p("memory/x/c")][..]);
    assert_eq!(c.relative_path(), "/x/c");
}

#[test]
fn duplicate_mount_prefers_reachable_one() {
    let t = Tree::new();
    let mut mi = t.mountinfo_line(30, "/other", "m1", "cgroup cgroup rw,memory");
    mi += &t.mountinfo_line(31, "/", "m2", "cgroup cgroup rw,memory");
    let sys = CgroupSystem::from_parts(&mi, "4:memory:/agent/x\n").unwrap();
    let c = sys.open(None, "c");
    assert_eq!(c.paths(), &[t.p("m2/agent/x/c")][..]);
}

#[test]
fn hybrid_includes_unified() {
    let t = Tree::new();
    let (mut mi, cg) = t.v1();
    mi += &t.mountinfo_line(50, "/", "unified", "cgroup2 cgroup2 rw");
    t.file("unified/cgroup.controllers", "");
    t.file("unified/cgroup.subtree_control", "");
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    assert_eq!(sys.mode(), Mode::Hybrid);
    let c = sys.create(None, "c").unwrap();
    assert_eq!(c.paths().len(), 8);
    assert!(t.p("unified/c").is_dir());
    assert_eq!(c.relative_path(), "/agent/x/c");
    assert_eq!(c.relative_paths()[6], "/c");
    // Controllers are bound to v1: nothing to enable in cgroup2.
    assert_eq!(t.read("unified/cgroup.subtree_control"), "");
    // Limits go to v1 even though cgroup2 is present.
    c.apply(&Resources {
        pids_limit: Some(5),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(t.read("pids/c/pids.max"), "5");
    assert!(!t.p("unified/c/pids.max").exists());
    c.add_task(9).unwrap();
    assert_eq!(t.read("unified/c/cgroup.procs"), "9");
    c.remove().unwrap();
    assert!(!t.p("unified/c").exists());
}

#[test]
fn v2_enables_missing_controllers_and_applies() {
    let t = Tree::new();
    let (mi, cg) = t.v2();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    assert_eq!(sys.mode(), Mode::V2);
    let c = sys.create(None, "c").unwrap();
    assert_eq!(c.paths(), &[t.p("unified/user.slice/x/c")][..]);
    assert_eq!(c.relative_path(), "/user.slice/x/c");
    assert_eq!(
        t.read("unified/user.slice/x/cgroup.subtree_control"),
        "+cpuset +cpu +io +pids +rdma"
    );

    c.apply(&Resources {
        memory_limit: Some(100 << 20),
        memory_swap: Some(150 << 20),
        cpu_shares: Some(1024),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpuset_cpus: Some("0".into()),
        cpuset_mems: Some("0".into()),
        pids_limit: Some(100),
        devices: None,
        ..Default::default()
    })
    .unwrap();
    let f = |n: &str| t.read(&format!("unified/user.slice/x/c/{n}"));
    assert_eq!(f("memory.max"), (100u64 << 20).to_string());
    assert_eq!(f("memory.swap.max"), (50u64 << 20).to_string());
    assert_eq!(f("cpu.weight"), "39");
    assert_eq!(f("cpu.max"), "50000 100000");
    assert_eq!(f("cpuset.cpus"), "0");
    assert_eq!(f("cpuset.mems"), "0");
    assert_eq!(f("pids.max"), "100");

    c.apply(&Resources {
        memory_limit: Some(-1),
        memory_swap: Some(-1),
        cpu_shares: Some(2),
        cpu_quota: Some(-1),
        cpu_period: Some(100_000),
        pids_limit: Some(0),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(f("memory.max"), "max");
    assert_eq!(f("memory.swap.max"), "max");
    assert_eq!(f("cpu.weight"), "1");
    assert_eq!(f("cpu.max"), "max 100000");
    assert_eq!(f("pids.max"), "max");
    c.apply(&Resources {
        cpu_shares: Some(262_144),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(f("cpu.weight"), "10000");

    t.file("unified/user.slice/x/c/memory.current", "4096\n");
    t.file("unified/user.slice/x/c/pids.current", "2\n");
    t.file(
        "unified/user.slice/x/c/cpu.stat",
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
    );
    assert_eq!(
        c.stats().unwrap(),
        Stats {
            memory_usage: Some(4096),
            pids_current: Some(2),
            cpu_usage_ns: Some(1_500_000),
        }
    );

    c.remove().unwrap();
    assert!(!t.p("unified/user.slice/x/c").exists());
    assert!(t.p("unified/user.slice/x").is_dir());
}

#[test]
fn v2_leaves_enabled_controllers_alone() {
    let t = Tree::new();
    let (mi, _) = t.v2();
    let sys = CgroupSystem::from_parts(&mi, "0::/user.slice/x\n").unwrap();
    sys.create(Some("/user.slice"), "c").unwrap();
    // user.slice already has everything: untouched.
    assert_eq!(
        t.read("unified/user.slice/cgroup.subtree_control"),
        "cpuset cpu io memory hugetlb pids rdma\n"
    );
    // The root had only cpu and memory.
    assert_eq!(
        t.read("unified/cgroup.subtree_control"),
        "+cpuset +io +pids +rdma"
    );
    t.file(
        "unified/cgroup.subtree_control",
        "cpuset cpu io memory pids rdma\n",
    );
    sys.create(Some("/hako"), "c").unwrap();
    assert_eq!(
        t.read("unified/cgroup.subtree_control"),
        "cpuset cpu io memory pids rdma\n"
    );
    assert!(t.p("unified/hako/c").is_dir());
}

#[test]
fn v1_only_systemd_and_v2_is_v2() {
    let t = Tree::new();
    let (mut mi, _) = t.v2();
    stdfs::create_dir_all(t.p("systemd")).unwrap();
    mi += &t.mountinfo_line(41, "/", "systemd", "cgroup cgroup rw,name=systemd");
    let sys = CgroupSystem::from_parts(&mi, "1:name=systemd:/\n0::/user.slice/x\n").unwrap();
    assert_eq!(sys.mode(), Mode::V2);
    assert_eq!(sys.mount_points().count(), 1);
}

#[test]
fn names_are_validated() {
    let t = Tree::new();
    let (mi, cg) = t.v2();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    for (parent, name) in [
        (None, ".."),
        (None, "a/../../b"),
        (None, "a\0b"),
        (None, ""),
        (None, "/"),
        (Some("../x"), "c"),
        (Some("x\0"), "c"),
    ] {
        assert!(
            matches!(sys.create(parent, name), Err(Error::InvalidName(_))),
            "{parent:?} {name:?}"
        );
        assert!(sys.open(parent, name).paths().is_empty());
    }
    assert!(sys.open(None, "..").remove().is_ok());
    assert_eq!(sys.open(Some("/"), "c").paths(), &[t.p("unified/c")][..]);
}

#[test]
fn no_cgroup_fs() {
    let err = CgroupSystem::from_parts("20 1 0:20 / / rw - ext4 /dev/vda rw\n", "").unwrap_err();
    assert!(matches!(err, Error::NoCgroupFs));
}

#[test]
fn unsupported_controller_is_reported() {
    let t = Tree::new();
    stdfs::create_dir_all(t.p("memory")).unwrap();
    let mi = t.mountinfo_line(30, "/", "memory", "cgroup cgroup rw,memory");
    let c = CgroupSystem::from_parts(&mi, "4:memory:/\n")
        .unwrap()
        .create(None, "c")
        .unwrap();
    let err = c
        .apply(&Resources {
            pids_limit: Some(3),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unsupported {
                controller: "pids",
                ..
            }
        ),
        "{err}"
    );
    c.remove().unwrap();
}

#[test]
fn device_rules_in_v1_syntax() {
    let rule = |kind, major, minor| crate::DeviceRule {
        allow: true,
        kind,
        major,
        minor,
        access: "rwm".into(),
    };
    assert_eq!(rule('a', None, None).v1_line(), "a *:* rwm");
    assert_eq!(rule('c', Some(1), Some(3)).v1_line(), "c 1:3 rwm");
    assert_eq!(rule('c', Some(136), None).v1_line(), "c 136:* rwm");
}

#[test]
fn memory_reservation_and_blkio_weight() {
    let t = Tree::new();
    let (mi, cg) = t.v1();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let c = sys.create(None, "c").unwrap();
    c.apply(&Resources {
        memory_reservation: Some(64 << 20),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        t.read("memory/agent/x/c/memory.soft_limit_in_bytes"),
        "67108864"
    );
    // No blkio hierarchy in this tree: a clear refusal, not a silent skip.
    let err = c
        .apply(&Resources {
            blkio_weight: Some(500),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");

    let t = Tree::new();
    let (mi, cg) = t.v2();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let c = sys.create(None, "c").unwrap();
    c.apply(&Resources {
        memory_reservation: Some(-1),
        blkio_weight: Some(300),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(t.read("unified/user.slice/x/c/memory.low"), "max");
    assert_eq!(t.read("unified/user.slice/x/c/io.bfq.weight"), "300");
    let err = c
        .apply(&Resources {
            blkio_weight: Some(5),
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, Error::InvalidResources(_)), "{err}");
}

#[test]
fn resource_stats_v1_and_v2() {
    let t = Tree::new();
    let (mi, cg) = t.v1();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let c = sys.create(None, "c").unwrap();
    t.file("cpu,cpuacct/c/cpuacct.usage", "3000\n");
    t.file("cpu,cpuacct/c/cpuacct.usage_percpu", "1000 2000 \n");
    t.file("cpu,cpuacct/c/cpuacct.stat", "user 2\nsystem 1\n");
    t.file(
        "cpu,cpuacct/c/cpu.stat",
        "nr_periods 10\nnr_throttled 3\nthrottled_time 777\n",
    );
    t.file("memory/agent/x/c/memory.usage_in_bytes", "4096\n");
    t.file("memory/agent/x/c/memory.max_usage_in_bytes", "8192\n");
    t.file("memory/agent/x/c/memory.limit_in_bytes", "1048576\n");
    t.file("memory/agent/x/c/memory.failcnt", "2\n");
    t.file("memory/agent/x/c/memory.memsw.usage_in_bytes", "5000\n");
    t.file("memory/agent/x/c/memory.stat", "cache 123\nrss 456\n");
    t.file(
        "memory/agent/x/c/memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
    );
    t.file("pids/c/pids.current", "3\n");
    t.file("pids/c/pids.max", "max\n");
    let s = c.resource_stats().unwrap();
    assert_eq!(s.cpu.total_ns, 3000);
    assert_eq!(s.cpu.percpu_ns, vec![1000, 2000]);
    let tick = 1_000_000_000 / stats_clock_ticks();
    assert_eq!((s.cpu.user_ns, s.cpu.kernel_ns), (2 * tick, tick));
    assert_eq!(
        (
            s.cpu.periods,
            s.cpu.throttled_periods,
            s.cpu.throttled_time_ns
        ),
        (10, 3, 777)
    );
    assert_eq!(
        s.memory.usage,
        MemoryEntry {
            usage: 4096,
            max: 8192,
            limit: 1 << 20,
            failcnt: 2
        }
    );
    assert_eq!(s.memory.swap.usage, 5000);
    assert_eq!(s.memory.cache, 123);
    assert_eq!(
        s.memory.raw,
        vec![("cache".into(), 123), ("rss".into(), 456)]
    );
    assert_eq!(s.memory.oom_kills, 1);
    assert_eq!(
        s.pids,
        PidsStats {
            current: 3,
            limit: 0
        }
    );

    let t = Tree::new();
    let (mi, cg) = t.v2();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let c = sys.create(None, "c").unwrap();
    let f = |name: &str, v: &str| t.file(&format!("unified/user.slice/x/c/{name}"), v);
    f(
        "cpu.stat",
        "usage_usec 15\nuser_usec 10\nsystem_usec 5\nnr_periods 4\nnr_throttled 1\nthrottled_usec 2\n",
    );
    f("memory.current", "100\n");
    f("memory.max", "max\n");
    f("memory.events", "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n");
    f("memory.stat", "anon 10\nfile 20\n");
    f("pids.current", "1\n");
    f("pids.max", "50\n");
    let s = c.resource_stats().unwrap();
    assert_eq!(
        s.cpu,
        CpuStats {
            total_ns: 15_000,
            percpu_ns: vec![],
            user_ns: 10_000,
            kernel_ns: 5_000,
            periods: 4,
            throttled_periods: 1,
            throttled_time_ns: 2_000,
        }
    );
    assert_eq!(s.memory.usage.usage, 100);
    assert_eq!(s.memory.usage.limit, u64::MAX);
    assert_eq!(s.memory.usage.failcnt, 7);
    assert_eq!(s.memory.cache, 20);
    assert_eq!(s.memory.oom_kills, 1);
    assert_eq!(
        s.pids,
        PidsStats {
            current: 1,
            limit: 50
        }
    );
}

fn stats_clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a constant of the C library.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).unwrap()
}

#[test]
fn views_name_each_hierarchy() {
    let t = Tree::new();
    let (mut mi, cg) = t.v1();
    mi += &t.mountinfo_line(50, "/", "unified", "cgroup2 cgroup2 rw");
    t.file("unified/cgroup.controllers", "");
    t.file("unified/cgroup.subtree_control", "");
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let c = sys.create(None, "c").unwrap();
    let views = c.views();
    let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
    assert!(
        names.contains(&"cpu,cpuacct") && names.contains(&"memory"),
        "{names:?}"
    );
    let mem = views.iter().find(|v| v.name == "memory").unwrap();
    assert_eq!(mem.dir, t.p("memory/agent/x/c"));
    assert!(!mem.unified);
    let uni = views.iter().find(|v| v.name == "unified").unwrap();
    assert!(uni.unified);
    assert_eq!(uni.dir, t.p("unified/c"));
    c.remove().unwrap();
}

#[test]
fn v1_and_v2_specific_knobs() {
    let t = Tree::new();
    let (mi, cg) = t.v1();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let c = sys.create(None, "c").unwrap();
    c.apply(&Resources {
        memory_swappiness: Some(10),
        disable_oom_killer: true,
        cpu_rt_period: Some(1_000_000),
        cpu_rt_runtime: Some(5_000),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(t.read("memory/agent/x/c/memory.swappiness"), "10");
    assert_eq!(t.read("memory/agent/x/c/memory.oom_control"), "1");
    assert_eq!(t.read("cpu,cpuacct/c/cpu.rt_period_us"), "1000000");
    assert_eq!(t.read("cpu,cpuacct/c/cpu.rt_runtime_us"), "5000");
    for res in [
        Resources {
            cpu_idle: Some(1),
            ..Default::default()
        },
        Resources {
            unified: vec![("memory.high".into(), "1M".into())],
            ..Default::default()
        },
        Resources {
            net_class_id: Some(1),
            ..Default::default()
        },
        Resources {
            hugepage_limits: vec![("2MB".into(), 1 << 21)],
            ..Default::default()
        },
    ] {
        let e = c.apply(&res).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    }
    assert!(matches!(
        c.apply(&Resources {
            memory_swappiness: Some(101),
            ..Default::default()
        }),
        Err(Error::InvalidResources(_))
    ));

    let t = Tree::new();
    let (mi, cg) = t.v2();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let c = sys.create(None, "c").unwrap();
    c.apply(&Resources {
        cpu_idle: Some(1),
        blkio_throttle: vec![Throttle {
            kind: ThrottleKind::WriteIops,
            major: 8,
            minor: 0,
            rate: 100,
        }],
        hugepage_limits: vec![("2MB".into(), 4 << 21)],
        unified: vec![("memory.high".into(), "1048576".into())],
        ..Default::default()
    })
    .unwrap();
    let f = |n: &str| t.read(&format!("unified/user.slice/x/c/{n}"));
    assert_eq!(f("cpu.idle"), "1");
    assert_eq!(f("io.max"), "8:0 wiops=100");
    assert_eq!(f("hugetlb.2MB.max"), (4u64 << 21).to_string());
    assert_eq!(f("memory.high"), "1048576");
    for res in [
        Resources {
            memory_swappiness: Some(1),
            ..Default::default()
        },
        Resources {
            disable_oom_killer: true,
            ..Default::default()
        },
        Resources {
            cpu_rt_runtime: Some(1),
            ..Default::default()
        },
    ] {
        let e = c.apply(&res).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    }
    let bad = Resources {
        unified: vec![("../x".into(), "1".into())],
        ..Default::default()
    };
    assert!(matches!(c.apply(&bad), Err(Error::InvalidResources(_))));
}

#[test]
fn blkio_leaf_and_device_weights_and_rdma_v1() {
    let t = Tree::new();
    let (mut mi, cg) = t.v1();
    stdfs::create_dir_all(t.p("blkio")).unwrap();
    mi += &t.mountinfo_line(60, "/", "blkio", "cgroup cgroup rw,blkio");
    let cg = format!("10:blkio:/\n{cg}");
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let c = sys.create(None, "c").unwrap();
    let res = Resources {
        blkio_leaf_weight: Some(300),
        blkio_weight_devices: vec![WeightDevice {
            major: 8,
            minor: 0,
            weight: Some(500),
            leaf_weight: Some(200),
        }],
        rdma: vec![RdmaLimit {
            device: "mlx5_0".into(),
            hca_handles: Some(3),
            hca_objects: None,
        }],
        ..Default::default()
    };
    // A kernel (or I/O scheduler) without the files: named clearly, nothing written.
    let e = c.apply(&res).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("leafWeight"), "{e}");
    assert!(!t.p("blkio/c/blkio.leaf_weight").exists());

    for f in [
        "blkio.leaf_weight",
        "blkio.weight_device",
        "blkio.leaf_weight_device",
    ] {
        t.file(&format!("blkio/c/{f}"), "");
    }
    c.apply(&res).unwrap();
    assert_eq!(t.read("blkio/c/blkio.leaf_weight"), "300");
    assert_eq!(t.read("blkio/c/blkio.weight_device"), "8:0 500");
    assert_eq!(t.read("blkio/c/blkio.leaf_weight_device"), "8:0 200");
    assert_eq!(t.read("rdma/c/rdma.max"), "mlx5_0 hca_handle=3");

    // BFQ's per-device file where CFQ's is missing.
    stdfs::remove_file(t.p("blkio/c/blkio.weight_device")).unwrap();
    t.file("blkio/c/blkio.bfq.weight_device", "");
    c.apply(&Resources {
        blkio_weight_devices: vec![WeightDevice {
            major: 8,
            minor: 16,
            weight: Some(10),
            leaf_weight: None,
        }],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(t.read("blkio/c/blkio.bfq.weight_device"), "8:16 10");

    for bad in [
        Resources {
            blkio_leaf_weight: Some(5),
            ..Default::default()
        },
        Resources {
            rdma: vec![RdmaLimit {
                device: "a b".into(),
                hca_handles: Some(1),
                hca_objects: None,
            }],
            ..Default::default()
        },
    ] {
        assert!(matches!(c.apply(&bad), Err(Error::InvalidResources(_))));
    }

    // Without an rdma hierarchy (and no cgroup2 to fall back to) rdma is refused.
    let t = Tree::new();
    stdfs::create_dir_all(t.p("memory")).unwrap();
    let mi = t.mountinfo_line(30, "/", "memory", "cgroup cgroup rw,memory");
    let sys = CgroupSystem::from_parts(&mi, "4:memory:/\n").unwrap();
    let c = sys.create(None, "c").unwrap();
    let e = c
        .apply(&Resources {
            rdma: res.rdma.clone(),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unsupported {
                controller: "rdma",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn blkio_device_weights_and_rdma_v2() {
    let t = Tree::new();
    let (mi, cg) = t.v2();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let c = sys.create(None, "c").unwrap();
    let dev = |weight, leaf_weight| Resources {
        blkio_weight_devices: vec![WeightDevice {
            major: 259,
            minor: 1,
            weight,
            leaf_weight,
        }],
        ..Default::default()
    };
    let f = |n: &str| t.p(&format!("unified/user.slice/x/c/{n}"));
    // Neither BFQ nor iocost weights on this disk.
    let e = c.apply(&dev(Some(1000), None)).unwrap_err();
    assert!(matches!(e, Error::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("io.bfq.weight"), "{e}");

    stdfs::write(f("io.weight"), "default 100\n").unwrap();
    c.apply(&dev(Some(1000), None)).unwrap();
    assert_eq!(
        stdfs::read_to_string(f("io.weight")).unwrap(),
        "259:1 10000"
    );
    stdfs::write(f("io.bfq.weight"), "default 100\n").unwrap();
    c.apply(&dev(Some(10), None)).unwrap();
    assert_eq!(
        stdfs::read_to_string(f("io.bfq.weight")).unwrap(),
        "259:1 10"
    );

    // Leaf weights are a CFQ (v1) notion.
    for res in [
        dev(None, Some(100)),
        Resources {
            blkio_leaf_weight: Some(100),
            ..Default::default()
        },
    ] {
        let e = c.apply(&res).unwrap_err();
        assert!(matches!(e, Error::Unsupported { .. }), "{e}");
        assert!(e.to_string().contains("cgroup v1 only"), "{e}");
    }

    c.apply(&Resources {
        rdma: vec![
            RdmaLimit {
                device: "mlx4_0".into(),
                hca_handles: Some(2),
                hca_objects: Some(2000),
            },
            RdmaLimit {
                device: "unset".into(),
                hca_handles: None,
                hca_objects: None,
            },
        ],
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        stdfs::read_to_string(f("rdma.max")).unwrap(),
        "mlx4_0 hca_handle=2 hca_object=2000"
    );
}

// ---- device rules: the v1 semantics, the eBPF program generated from them, and which
// hierarchy takes them.

use crate::devices::{self, Canonical, Insn, ACC_MKNOD, ACC_READ, ACC_WRITE, DEV_BLOCK, DEV_CHAR};

fn dev_rule(
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

/// Docker's rules for a container that is not privileged, as runc writes them.
fn docker_rules() -> Vec<DeviceRule> {
    let mut r = vec![
        dev_rule(false, 'a', None, None, "rwm"),
        dev_rule(true, 'c', None, None, "m"),
        dev_rule(true, 'b', None, None, "m"),
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
        r.push(dev_rule(true, 'c', Some(ma), Some(mi), "rwm"));
    }
    r.push(dev_rule(true, 'c', Some(136), None, "rwm"));
    r
}

/// Runs a generated program the way the kernel would, on `struct bpf_cgroup_dev_ctx`. Only
/// the instructions the generator emits are known; anything else, a backward or out-of-range
/// jump, or an exit with r0 unset fails the test (the verifier would refuse those too).
fn run_program(p: &[Insn], typ: u32, major: u32, minor: u32, access: u32) -> bool {
    let ctx = [(access << 16) | typ, major, minor];
    let mut r = [0u64; 11];
    let mut set = [false; 11];
    set[1] = true;
    let mut pc = 0usize;
    loop {
        let i = p
            .get(pc)
            .unwrap_or_else(|| panic!("fell off the program at {pc}"));
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        let jump = |off: i16| {
            assert!(off >= 0, "backward jump at {pc}");
            let to = pc + 1 + off as usize;
            assert!(to < p.len(), "jump out of the program at {pc}");
            to
        };
        let low = |v: u64| v as u32;
        pc = match i.code {
            devices::LDX_MEM_W => {
                assert_eq!(src, 1, "loads come from the context");
                assert!(
                    i.off >= 0 && i.off % 4 == 0 && i.off < 12,
                    "context offset {}",
                    i.off
                );
                r[dst] = u64::from(ctx[i.off as usize / 4]);
                set[dst] = true;
                pc + 1
            }
            devices::ALU32_AND_K => {
                assert!(set[dst]);
                r[dst] = u64::from(low(r[dst]) & i.imm as u32);
                pc + 1
            }
            devices::ALU32_RSH_K => {
                assert!(set[dst]);
                r[dst] = u64::from(low(r[dst]) >> i.imm);
                pc + 1
            }
            devices::ALU32_MOV_X => {
                assert!(set[src]);
                r[dst] = u64::from(low(r[src]));
                set[dst] = true;
                pc + 1
            }
            devices::ALU64_MOV_K => {
                r[dst] = i.imm as i64 as u64;
                set[dst] = true;
                pc + 1
            }
            devices::JMP32_JEQ_K if low(r[dst]) == i.imm as u32 => jump(i.off),
            devices::JMP32_JNE_K if low(r[dst]) != i.imm as u32 => jump(i.off),
            devices::JMP32_JNE_X if low(r[dst]) != low(r[src]) => jump(i.off),
            devices::JMP32_JEQ_K | devices::JMP32_JNE_K | devices::JMP32_JNE_X => pc + 1,
            devices::JMP_EXIT => {
                assert!(set[0], "exit with r0 unset");
                return match r[0] {
                    0 => false,
                    1 => true,
                    v => panic!("program returned {v}"),
                };
            }
            other => panic!("unknown opcode {other:#x} at {pc}"),
        };
    }
}

/// Every access of interest: both types, the numbers the rules name and others, each access.
fn probes() -> Vec<(u32, u32, u32, u32)> {
    let mut out = Vec::new();
    for typ in [DEV_BLOCK, DEV_CHAR] {
        for (ma, mi) in [
            (1, 3),
            (1, 11),
            (5, 1),
            (10, 200),
            (10, 232),
            (136, 7),
            (254, 0),
            (0, 0),
            (4_000_000_000, 7),
        ] {
            for access in 1..=7 {
                out.push((typ, ma, mi, access));
            }
        }
    }
    out
}

#[test]
fn device_rules_reduce_as_v1_does() {
    let c = Canonical::from_rules(&docker_rules()).unwrap();
    assert!(!c.default_allow);
    assert_eq!(c.exceptions.len(), 12);
    let allows = |typ, ma, mi, acc| c.allows(typ, ma, mi, acc);
    assert!(allows(DEV_CHAR, 1, 3, ACC_READ | ACC_WRITE));
    assert!(allows(DEV_CHAR, 136, 42, ACC_READ | ACC_WRITE));
    // mknod of anything, opening of nothing else: /dev/kvm, /dev/kmsg, the disk.
    assert!(allows(DEV_CHAR, 10, 232, ACC_MKNOD));
    assert!(allows(DEV_BLOCK, 254, 0, ACC_MKNOD));
    assert!(!allows(DEV_CHAR, 10, 232, ACC_READ));
    assert!(!allows(DEV_CHAR, 1, 11, ACC_WRITE));
    assert!(!allows(DEV_BLOCK, 254, 0, ACC_READ));
    assert!(!allows(DEV_CHAR, 10, 232, ACC_READ | ACC_MKNOD));

    // An `a` rule starts over, whatever numbers and access it names.
    let mut r = docker_rules();
    r.push(dev_rule(true, 'a', Some(1), Some(3), "r"));
    let c = Canonical::from_rules(&r).unwrap();
    assert!(c.allows_all());
    // No rules: a new cgroup allows everything.
    assert!(Canonical::from_rules(&[]).unwrap().allows_all());

    // Against the default: exceptions merge per device; with it: access is taken away from
    // the exception for exactly that device (a wildcard does not reach 1:3).
    let c = Canonical::from_rules(&[
        dev_rule(false, 'a', None, None, "rwm"),
        dev_rule(true, 'c', Some(1), Some(3), "r"),
        dev_rule(true, 'c', Some(1), Some(3), "w"),
        dev_rule(true, 'c', Some(1), Some(5), "rwm"),
        dev_rule(false, 'c', Some(1), Some(5), "w"),
        dev_rule(false, 'c', Some(1), None, "rwm"),
        dev_rule(true, 'c', Some(2), Some(2), "m"),
        dev_rule(false, 'c', Some(2), Some(2), "m"),
    ])
    .unwrap();
    assert_eq!(
        c.exceptions,
        vec![
            devices::Exception {
                typ: DEV_CHAR,
                major: Some(1),
                minor: Some(3),
                access: ACC_READ | ACC_WRITE
            },
            devices::Exception {
                typ: DEV_CHAR,
                major: Some(1),
                minor: Some(5),
                access: ACC_READ | ACC_MKNOD
            },
        ]
    );
    assert_eq!(
        c.v1_writes(),
        vec![
            ("devices.deny", "a".to_string()),
            ("devices.allow", "c 1:3 rw".to_string()),
            ("devices.allow", "c 1:5 rm".to_string()),
        ]
    );

    // A deny list on an allow default; -1 is "any", as some OCI writers put it.
    let c = Canonical::from_rules(&[
        dev_rule(true, 'a', None, None, "rwm"),
        dev_rule(false, 'b', Some(-1), Some(-1), "rw"),
        dev_rule(false, 'c', Some(10), Some(232), "w"),
    ])
    .unwrap();
    assert_eq!(
        c.v1_writes(),
        vec![
            ("devices.allow", "a".to_string()),
            ("devices.deny", "b *:* rw".to_string()),
            ("devices.deny", "c 10:232 w".to_string()),
        ]
    );
    assert!(c.allows(DEV_BLOCK, 8, 0, ACC_MKNOD));
    assert!(!c.allows(DEV_BLOCK, 8, 0, ACC_READ));
    assert!(c.allows(DEV_CHAR, 10, 232, ACC_READ));
    // Any overlap with a deny exception denies.
    assert!(!c.allows(DEV_CHAR, 10, 232, ACC_READ | ACC_WRITE));

    for bad in [
        dev_rule(true, 'x', None, None, "rwm"),
        dev_rule(true, 'c', None, None, ""),
        dev_rule(true, 'c', None, None, "rwx"),
        dev_rule(true, 'c', Some(1 << 33), None, "r"),
    ] {
        let e = Canonical::from_rules(&[bad]).unwrap_err();
        assert!(matches!(e, Error::InvalidResources(_)), "{e}");
    }
}

#[test]
fn device_program_decides_as_the_v1_kernel() {
    let lists = vec![
        docker_rules(),
        vec![dev_rule(true, 'a', None, None, "rwm")],
        vec![dev_rule(false, 'a', None, None, "rwm")],
        vec![
            dev_rule(false, 'a', None, None, "rwm"),
            dev_rule(true, 'c', Some(10), Some(232), "r"),
            dev_rule(true, 'b', None, Some(0), "rw"),
            dev_rule(true, 'c', Some(4_000_000_000), None, "rwm"),
        ],
        vec![
            dev_rule(false, 'b', None, None, "rw"),
            dev_rule(false, 'c', Some(1), Some(11), "w"),
            dev_rule(false, 'c', Some(136), None, "m"),
        ],
    ];
    for rules in lists {
        let c = Canonical::from_rules(&rules).unwrap();
        let p = devices::program(&c);
        for (typ, ma, mi, acc) in probes() {
            assert_eq!(
                run_program(&p, typ, ma, mi, acc),
                c.allows(typ, ma, mi, acc),
                "type {typ} {ma}:{mi} access {acc} with {rules:?}"
            );
        }
    }
}

/// The fake kernel's program of a directory, decoded.
fn fake_program(dir: &Path) -> Option<Vec<Insn>> {
    let bytes = stdfs::read(dir.join(crate::bpf::FAKE_PROGRAM)).ok()?;
    Some(
        bytes
            .chunks_exact(8)
            .map(|b| Insn {
                code: b[0],
                regs: b[1],
                off: i16::from_le_bytes([b[2], b[3]]),
                imm: i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            })
            .collect(),
    )
}

#[test]
fn v2_devices_become_a_program_that_is_replaced() {
    let t = Tree::new();
    let (mi, cg) = t.v2();
    let c = CgroupSystem::from_parts(&mi, &cg)
        .unwrap()
        .create(None, "c")
        .unwrap();
    let dir = t.p("unified/user.slice/x/c");
    let with = |rules: Vec<DeviceRule>| Resources {
        devices: Some(rules),
        ..Default::default()
    };
    c.apply(&with(docker_rules())).unwrap();
    let p = fake_program(&dir).expect("a device program on the cgroup2 directory");
    assert!(run_program(&p, DEV_CHAR, 1, 3, ACC_READ | ACC_WRITE));
    assert!(!run_program(&p, DEV_CHAR, 10, 232, ACC_READ));

    // Applying again replaces the program (the fake kernel holds one per directory; the real
    // attach is checked in tests/host.rs).
    let mut more = docker_rules();
    more.push(dev_rule(true, 'c', Some(10), Some(232), "rw"));
    c.apply(&with(more)).unwrap();
    let p = fake_program(&dir).unwrap();
    assert!(run_program(&p, DEV_CHAR, 10, 232, ACC_READ | ACC_WRITE));

    // Everything allowed: no program at all.
    c.apply(&with(vec![dev_rule(true, 'a', None, None, "rwm")]))
        .unwrap();
    assert!(fake_program(&dir).is_none());
    // Leaving devices unset leaves the program alone.
    c.apply(&with(docker_rules())).unwrap();
    c.apply(&Resources::default()).unwrap();
    assert!(fake_program(&dir).is_some());
    // Bad rules are refused before anything is written.
    stdfs::remove_file(dir.join(crate::bpf::FAKE_PROGRAM)).unwrap();
    assert!(c
        .apply(&with(vec![dev_rule(true, 'c', None, None, "x")]))
        .is_err());
    assert!(fake_program(&dir).is_none());
    c.remove().unwrap();
}

#[test]
fn hybrid_devices_go_to_v1_unless_unmounted() {
    let t = Tree::new();
    let (mut mi, cg) = t.v1();
    stdfs::create_dir_all(t.p("devices")).unwrap();
    mi += &t.mountinfo_line(49, "/", "devices", "cgroup cgroup rw,devices");
    mi += &t.mountinfo_line(50, "/", "unified", "cgroup2 cgroup2 rw");
    t.file("unified/cgroup.controllers", "");
    t.file("unified/cgroup.subtree_control", "");
    let sys = CgroupSystem::from_parts(&mi, &(cg.clone() + "5:devices:/\n")).unwrap();
    assert_eq!(sys.mode(), Mode::Hybrid);
    let c = sys.create(None, "c").unwrap();
    c.apply(&Resources {
        devices: Some(docker_rules()),
        ..Default::default()
    })
    .unwrap();
    // The fake tree keeps what each open of a file received, the writes run together: the
    // default went to devices.deny, then each exception to devices.allow through one open.
    // The kernel's own list is checked in tests/devices.rs.
    assert_eq!(t.read("devices/c/devices.deny"), "a");
    assert_eq!(
        t.read("devices/c/devices.allow"),
        "c *:* mb *:* mc 1:3 rwmc 1:5 rwmc 1:7 rwmc 1:8 rwmc 1:9 rwmc 5:0 rwmc 5:1 rwmc 5:2 rwm\
         c 10:200 rwmc 136:* rwm"
    );
    assert!(fake_program(&t.p("unified/c")).is_none());
    c.remove().unwrap();

    // The same host without the devices hierarchy: cgroup2's program is the only filter.
    let t = Tree::new();
    let (mut mi, cg) = t.v1();
    mi += &t.mountinfo_line(50, "/", "unified", "cgroup2 cgroup2 rw");
    t.file("unified/cgroup.controllers", "");
    t.file("unified/cgroup.subtree_control", "");
    let c = CgroupSystem::from_parts(&mi, &cg)
        .unwrap()
        .create(None, "c")
        .unwrap();
    c.apply(&Resources {
        devices: Some(docker_rules()),
        ..Default::default()
    })
    .unwrap();
    let p = fake_program(&t.p("unified/c")).expect("program on the cgroup2 directory");
    assert!(!run_program(&p, DEV_BLOCK, 254, 0, ACC_READ));
    c.remove().unwrap();

    // v1 without devices and without cgroup2: refused rather than left open.
    let t = Tree::new();
    let (mi, cg) = t.v1();
    let c = CgroupSystem::from_parts(&mi, &cg)
        .unwrap()
        .create(None, "c")
        .unwrap();
    let e = c
        .apply(&Resources {
            devices: Some(docker_rules()),
            ..Default::default()
        })
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Unsupported {
                controller: "devices",
                ..
            }
        ),
        "{e}"
    );
    c.remove().unwrap();
}

/// The uid the rootless tests pretend to be: the fake tree's owner says who delegated to whom.
const USER: u32 = 4242;

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), None).unwrap();
}

impl Tree {
    /// Pure v2 where /user.slice/x (the caller's cgroup) is handed to `USER` as systemd's
    /// Delegate=yes does: the directory, cgroup.procs and cgroup.subtree_control are its.
    fn v2_delegated(&self, controllers: &str) -> (String, String) {
        let (mi, cg) = self.v2();
        self.file("unified/user.slice/x/cgroup.controllers", controllers);
        self.file("unified/user.slice/x/cgroup.subtree_control", "");
        self.file("unified/user.slice/x/cgroup.procs", "");
        for f in ["", "cgroup.procs", "cgroup.subtree_control"] {
            chown(&self.p(&format!("unified/user.slice/x/{f}")), USER);
        }
        (mi, cg)
    }
}

#[test]
fn rootless_v1_and_hybrid_get_no_cgroup_and_every_limit_is_reported() {
    let t = Tree::new();
    let (mi, cg) = t.v1();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let driver = sys.rootless_driver(USER);
    assert_eq!(driver, rootless::Driver::None(rootless::NoneReason::V1));
    assert!(!driver.creates_cgroups());
    let res = Resources {
        memory_limit: Some(1 << 20),
        memory_swap: Some(2 << 20),
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        pids_limit: Some(10),
        devices: Some(vec![]),
        ..Default::default()
    };
    let dropped = driver.dropped(&res);
    let names: Vec<_> = dropped.iter().map(|d| d.limit).collect();
    // One warning per limit (quota and period are one setting), none for device rules.
    assert_eq!(
        names,
        [
            "memory limit",
            "memory+swap limit",
            "cpu shares",
            "cpu quota",
            "pids limit"
        ]
    );
    assert_eq!(
        dropped[0].to_string(),
        "memory limit not applied: cgroup v1 cannot be delegated to an ordinary user; the container runs without it"
    );
    assert!(driver.dropped(&Resources::default()).is_empty());

    // Hybrid (cgroup2 mounted beside v1, as on the development VM) is v1 for limits.
    let mut mi = mi;
    mi += &t.mountinfo_line(60, "/", "unified", "cgroup2 cgroup2 rw,nsdelegate");
    stdfs::create_dir_all(t.p("unified")).unwrap();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    assert_eq!(sys.mode(), Mode::Hybrid);
    assert_eq!(
        sys.rootless_driver(USER),
        rootless::Driver::None(rootless::NoneReason::V1)
    );
}

#[test]
fn rootless_v2_delegated_nests_under_the_caller_and_applies_limits() {
    let t = Tree::new();
    let (mi, cg) = t.v2_delegated("cpu memory pids\n");
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let driver = sys.rootless_driver(USER);
    let dir = t.p("unified/user.slice/x");
    assert_eq!(
        driver,
        rootless::Driver::Delegated {
            dir: dir.clone(),
            controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
        }
    );
    assert!(driver.creates_cgroups());
    let res = Resources {
        memory_limit: Some(64 << 20),
        pids_limit: Some(20),
        cpu_quota: Some(10_000),
        cpu_period: Some(100_000),
        ..Default::default()
    };
    assert!(
        driver.dropped(&res).is_empty(),
        "{:?}",
        driver.dropped(&res)
    );
    // Exactly as for root: under the caller's (delegated) cgroup, controllers enabled there.
    let c = sys.create(None, "c").unwrap();
    assert_eq!(c.paths(), &[dir.join("c")][..]);
    assert_eq!(
        t.read("unified/user.slice/x/cgroup.subtree_control"),
        "+cpu +memory +pids"
    );
    c.apply(&res).unwrap();
    let f = |n: &str| t.read(&format!("unified/user.slice/x/c/{n}"));
    assert_eq!(f("memory.max"), (64u64 << 20).to_string());
    assert_eq!(f("pids.max"), "20");
    assert_eq!(f("cpu.max"), "10000 100000");
    c.remove().unwrap();
    assert!(!dir.join("c").exists());

    // A controller the delegation does not offer: that limit, and only it, is dropped,
    // naming the file that lacks it. v1-only settings have no v2 counterpart.
    let res = Resources {
        memory_limit: Some(1 << 20),
        cpuset_cpus: Some("0".into()),
        memory_swappiness: Some(10),
        ..Default::default()
    };
    let dropped = driver.dropped(&res);
    assert_eq!(dropped.len(), 2, "{dropped:?}");
    assert_eq!(dropped[0].limit, "memory swappiness");
    assert_eq!(dropped[0].reason, "cgroup v2 has no such setting");
    assert_eq!(dropped[1].limit, "cpuset");
    assert_eq!(
        dropped[1].reason,
        format!(
            "cgroup v2 subtree not delegated: controller cpuset is not in {}",
            dir.join("cgroup.controllers").display()
        )
    );
}

#[test]
fn rootless_v2_delegated_from_the_caller_leaf_creates_below_the_delegated_cgroup_only() {
    let t = Tree::new();
    let (mi, _) = t.v2_delegated("cpu memory pids\n");
    // A later command runs in the leaf an earlier one moved the caller into.
    let leaf = format!("unified/user.slice/x/{}", rootless::CALLER_LEAF);
    t.file(&format!("{leaf}/cgroup.procs"), "");
    let sys = CgroupSystem::from_parts(
        &mi,
        &format!("0::/user.slice/x/{}\n", rootless::CALLER_LEAF),
    )
    .unwrap();
    let dir = t.p("unified/user.slice/x");
    let driver = sys.rootless_driver(USER);
    assert!(
        matches!(&driver, rootless::Driver::Delegated { dir: d, .. } if *d == dir),
        "{driver:?}"
    );
    // Levels above the delegated cgroup are root's: left untouched (user.slice offers more
    // controllers than it enables, which create() would try to enable).
    let above = t.read("unified/user.slice/cgroup.subtree_control");
    let c = sys.create_below(&dir, "hako-c").unwrap();
    assert_eq!(c.paths(), &[dir.join("hako-c")][..]);
    assert_eq!(t.read("unified/user.slice/cgroup.subtree_control"), above);
    assert_eq!(
        t.read("unified/user.slice/x/cgroup.subtree_control"),
        "+cpu +memory +pids"
    );
    assert!(sys.create_below(&t.p("elsewhere"), "hako-c").is_err());

    // What the delegation cannot take, and the device rules, are left out of what is applied.
    let res = Resources {
        memory_limit: Some(1 << 20),
        cpuset_cpus: Some("0".into()),
        cpuset_mems: Some("0".into()),
        memory_swappiness: Some(10),
        pids_limit: Some(7),
        devices: Some(vec![]),
        ..Default::default()
    };
    let applied = rootless::applicable(&driver, &res);
    assert_eq!(
        format!("{applied:?}"),
        format!(
            "{:?}",
            Resources {
                memory_limit: Some(1 << 20),
                pids_limit: Some(7),
                ..Default::default()
            }
        )
    );
    c.apply(&applied).unwrap();
}

#[test]
fn rootless_v2_without_delegation_says_what_is_missing() {
    let t = Tree::new();
    // The caller's cgroup belongs to root (a login scope without Delegate=yes).
    let (mi, cg) = t.v2();
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let dir = t.p("unified/user.slice/x");
    let rootless::Driver::None(rootless::NoneReason::NotDelegated(why)) = sys.rootless_driver(USER)
    else {
        panic!("{:?}", sys.rootless_driver(USER));
    };
    assert_eq!(
        why,
        format!("{} belongs to uid 0, not to uid {USER}", dir.display())
    );
    let d = sys.rootless_driver(USER);
    let dropped = d.dropped(&Resources {
        pids_limit: Some(5),
        ..Default::default()
    });
    assert_eq!(
        dropped[0].to_string(),
        format!("pids limit not applied: cgroup v2 subtree not delegated: {why}; the container runs without it")
    );

    // The directory is the user's but cgroup.procs is not: still not delegated.
    chown(&dir, USER);
    t.file("unified/user.slice/x/cgroup.procs", "");
    let rootless::Driver::None(rootless::NoneReason::NotDelegated(why)) = sys.rootless_driver(USER)
    else {
        panic!("delegated without cgroup.procs");
    };
    assert!(why.contains("cgroup.procs belongs to uid 0"), "{why}");

    // Delegated, but nothing to delegate: no controllers at all.
    let (mi, cg) = t.v2_delegated("");
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let rootless::Driver::None(rootless::NoneReason::NotDelegated(why)) = sys.rootless_driver(USER)
    else {
        panic!("delegated without controllers");
    };
    assert!(why.starts_with("no controllers are available in"), "{why}");
}

#[test]
fn rootless_ignorable_errors_are_runcs() {
    let io = |n| io::Error::from_raw_os_error(n);
    for (errno, ignorable) in [
        (libc::EPERM, true),
        (libc::EACCES, true),
        (libc::EROFS, true),
        (libc::ENOSPC, false),
        (libc::EBUSY, false),
    ] {
        let e = Error::Create {
            path: "/x".into(),
            error: io(errno),
        };
        assert_eq!(rootless::is_rootless_ignorable(&e), ignorable, "{e}");
    }
    assert!(!rootless::is_rootless_ignorable(&Error::InvalidName(
        "x".into()
    )));
}

#[test]
fn device_rules_are_read_as_the_kernel_reads_them() {
    let rule = |allow, kind, major, minor| DeviceRule {
        allow,
        kind,
        major,
        minor,
        access: "rwm".into(),
    };
    let deny_all_but_null = [
        rule(false, 'a', None, None),
        rule(true, 'c', Some(1), Some(3)),
    ];
    assert!(rootless::rules_allow(&deny_all_but_null, 'c', 1, 3).unwrap());
    assert!(!rootless::rules_allow(&deny_all_but_null, 'c', 10, 229).unwrap());
    assert!(!rootless::rules_allow(&deny_all_but_null, 'b', 1, 3).unwrap());
    assert!(rootless::rules_allow(&[], 'b', 8, 0).unwrap());
    let deny_one = [rule(false, 'b', Some(8), None)];
    assert!(!rootless::rules_allow(&deny_one, 'b', 8, 1).unwrap());
    assert!(rootless::rules_allow(&deny_one, 'b', 9, 1).unwrap());
}

#[test]
fn support_follows_the_files_each_hierarchy_offers() {
    // v1 as this project's hybrid test host has it: no blkio mount in the fake tree at first,
    // memory without a soft limit, cpu with CFS.
    let t = Tree::new();
    let (mi, cg) = t.v1();
    t.file("memory/memory.oom_control", "");
    t.file("cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
    t.file("cpu,cpuacct/cpu.cfs_period_us", "100000\n");
    let sys = CgroupSystem::from_parts(&mi, &cg).unwrap();
    let s = sys.support();
    assert!(s.oom_kill_disable && s.cpu_cfs);
    assert!(!s.memory_reservation && !s.blkio_weight && !s.blkio_read_bps);

    // A blkio hierarchy with throttling but no weight file (mq-deadline, no BFQ).
    let mut mi = mi;
    mi += &t.mountinfo_line(60, "/", "blkio", "cgroup cgroup rw,blkio");
    for f in ["read_bps", "write_bps", "read_iops", "write_iops"] {
        t.file(&format!("blkio/blkio.throttle.{f}_device"), "");
    }
    t.file("memory/memory.soft_limit_in_bytes", "");
    let s = CgroupSystem::from_parts(&mi, &cg).unwrap().support();
    assert!(s.memory_reservation && s.blkio_read_bps && s.blkio_write_iops);
    assert!(!s.blkio_weight);
    t.file("blkio/blkio.bfq.weight", "100\n");
    let s = CgroupSystem::from_parts(&mi, &cg).unwrap().support();
    assert!(s.blkio_weight);

    // Pure v2: what the root lists; no OOM-killer switch at all.
    let t = Tree::new();
    let (mi, cg) = t.v2();
    let s = CgroupSystem::from_parts(&mi, &cg).unwrap().support();
    assert!(s.memory_reservation && s.cpu_cfs && s.blkio_read_bps && s.blkio_write_bps);
    assert!(!s.oom_kill_disable);
    // io is listed, but neither iocost nor BFQ is there to weigh it.
    assert!(!s.blkio_weight);
    t.file("unified/io.cost.qos", "");
    assert!(
        CgroupSystem::from_parts(&mi, &cg)
            .unwrap()
            .support()
            .blkio_weight
    );
    t.file("unified/cgroup.controllers", "cpuset memory pids\n");
    let s = CgroupSystem::from_parts(&mi, &cg).unwrap().support();
    assert!(!s.cpu_cfs && !s.blkio_read_bps && !s.blkio_weight);
}
