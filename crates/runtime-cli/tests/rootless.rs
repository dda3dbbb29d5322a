//! `hako-runtime` run by ordinary users: accounts the tests create (with their own
//! /etc/subuid and /etc/subgid ranges, or none), busybox bundles in their homes, state in their
//! `$XDG_RUNTIME_DIR`. Each test checks that nothing is left: no state directory, no process
//! of the user.

use hako_testkit::user::{SubIds, TestUser};
use serde_json::{json, Value};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn busybox_tar() -> PathBuf {
    let dir = PathBuf::from(
        std::env::var("HAKO_TEST_IMAGES").unwrap_or_else(|_| "/var/cache/hako-test-images".into()),
    );
    let tar = dir.join("busybox.tar");
    assert!(
        tar.is_file(),
        "{} is missing: run scripts/make-test-images.sh --only busybox",
        tar.display()
    );
    tar
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_hako-runtime")
}

/// A test user with a busybox bundle (owned by it) in its home.
struct Rootless {
    user: TestUser,
    bundle: PathBuf,
}

impl Rootless {
    fn new(subids: SubIds) -> Rootless {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests create accounts: run them as root"
        );
        let user = TestUser::with_subids(subids);
        let bundle = user.home.join("bundle");
        let rootfs = bundle.join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        let st = Command::new("tar")
            .arg("-xf")
            .arg(busybox_tar())
            .arg("-C")
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(st.success());
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", user.uid, user.gid))
            .arg(&bundle)
            .status()
            .unwrap();
        assert!(st.success());
        let r = Rootless { user, bundle };
        let out = r.rt(&["spec", "--rootless"]);
        assert!(out.status.success(), "{}", stderr(&out));
        r
    }

    fn cmd(&self, program: &str, args: &[&str]) -> Command {
        let mut c = self.user.command(program);
        c.args(args).current_dir(&self.bundle).stdin(Stdio::null());
        c
    }

    fn rt(&self, args: &[&str]) -> Output {
        output(self.cmd(bin(), args))
    }

    fn state_root(&self) -> PathBuf {
        self.user.runtime_dir().join("hako-runtime")
    }

    fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.bundle.join("config.json")).unwrap()).unwrap()
    }

    fn set_config(&self, v: &Value) {
        let path = self.bundle.join("config.json");
        std::fs::write(&path, v.to_string()).unwrap();
    }

    fn set_args(&self, args: &[&str]) {
        let mut c = self.config();
        c["process"]["args"] = json!(args);
        self.set_config(&c);
    }

    /// The user's range as the container's ids 1..=count, its own ids as 0.
    fn map_subids(&self, count: u64) {
        let start = self.user.subid_start.expect("the user has a range");
        let mut c = self.config();
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": self.user.uid, "size": 1},
            {"containerID": 1, "hostID": start, "size": count}
        ]);
        c["linux"]["gidMappings"] = json!([
            {"containerID": 0, "hostID": self.user.gid, "size": 1},
            {"containerID": 1, "hostID": start, "size": count}
        ]);
        self.set_config(&c);
    }

    fn status(&self, id: &str) -> String {
        let out = self.rt(&["state", id]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["status"].as_str().unwrap().to_owned()
    }

    fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = self.status(id);
            if s == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "status stayed {s}, wanted {want}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The user's processes (none may outlive a test's containers).
    fn processes(&self) -> Vec<String> {
        let out = Command::new("pgrep")
            .args(["-u", &self.user.uid.to_string(), "-a"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Nothing of the user's containers remains: state directories and processes.
    fn assert_clean(&self) {
        let left: Vec<_> = std::fs::read_dir(self.state_root())
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| !n.starts_with('@'))
                    .collect()
            })
            .unwrap_or_default();
        assert!(left.is_empty(), "state left behind: {left:?}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.processes().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            self.processes().is_empty(),
            "processes left: {:?}",
            self.processes()
        );
    }
}

/// Runs `c` with stdout and stderr in files: a detached container inherits them, so pipes
/// would never reach EOF while it lives.
fn output(mut c: Command) -> Output {
    let out = tempfile::tempfile().unwrap();
    let err = tempfile::tempfile().unwrap();
    c.stdout(out.try_clone().unwrap());
    c.stderr(err.try_clone().unwrap());
    let status = c.status().unwrap();
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out),
        stderr: read(err),
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A failure with exit status 1 and one line of error naming `needles`.
fn assert_one_line_error(o: &Output, needles: &[&str]) -> String {
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(o), stderr(o));
    let e = stderr(o);
    assert_eq!(e.trim_end().lines().count(), 1, "not one line: {e}");
    for n in needles {
        assert!(e.contains(n), "{e:?} does not mention {n:?}");
    }
    e
}

/// The warnings about the default spec's ambient capabilities (which the kernel refuses
/// outside the inheritable set, as runc's spec asks) are not what these tests look at.
fn errors_but_ambient(o: &Output) -> String {
    stderr(o)
        .lines()
        .filter(|l| !l.contains("ambient capabilities"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn spec_rootless_has_runcs_shape() {
    let r = Rootless::new(SubIds::None);
    let ours = r.config();
    let linux = &ours["linux"];
    assert_eq!(
        linux["uidMappings"],
        json!([{"containerID": 0, "hostID": r.user.uid, "size": 1}])
    );
    assert_eq!(
        linux["gidMappings"],
        json!([{"containerID": 0, "hostID": r.user.gid, "size": 1}])
    );
    assert!(linux.get("resources").is_none(), "{linux}");
    let runc_dir = r.user.home.join("runc-spec");
    std::fs::create_dir(&runc_dir).unwrap();
    nix::unistd::chown(&runc_dir, Some(r.user.uid.into()), None).unwrap();
    let mut c = r.user.command("runc");
    c.args(["spec", "--rootless"]).current_dir(&runc_dir);
    let Ok(out) = c.output() else {
        eprintln!("skipped the comparison with runc: runc is not installed");
        return;
    };
    assert!(out.status.success(), "{}", stderr(&out));
    let theirs: Value =
        serde_json::from_slice(&std::fs::read(runc_dir.join("config.json")).unwrap()).unwrap();
    // The same mappings, the same mounts (with /sys a read-only rbind and no gid= options),
    // the same namespaces apart from cgroup (which hako's default spec always has and runc's
    // has on pure cgroup v2), no network namespace and no resources.
    assert_eq!(ours["mounts"], theirs["mounts"]);
    for key in ["uidMappings", "gidMappings", "maskedPaths", "readonlyPaths"] {
        assert_eq!(ours["linux"][key], theirs["linux"][key], "{key}");
    }
    let names = |v: &Value| -> Vec<String> {
        v["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_owned())
            .filter(|t| t != "cgroup")
            .collect()
    };
    assert_eq!(names(&ours), names(&theirs));
    let keys =
        |v: &Value| -> Vec<String> { v["linux"].as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&ours), keys(&theirs));
}

#[test]
fn run_as_an_ordinary_user_gives_output_and_exit_code() {
    let r = Rootless::new(SubIds::None);
    r.set_args(&[
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; echo out > /tmp/x && cat /tmp/x; ls /sys/fs/cgroup >/dev/null && echo cg; exit 7",
    ]);
    // The bundle's rootfs is the user's, so it is writable by the container's root.
    let mut c = r.config();
    c["root"]["readonly"] = json!(false);
    r.set_config(&c);
    let out = r.rt(&["run", "c1"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "0");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", &r.user.uid.to_string(), "1"]);
    assert_eq!(&lines[2..], ["out", "cg"]);
    assert_eq!(errors_but_ambient(&out), "");
    // The state root is runc's XDG rule: $XDG_RUNTIME_DIR/hako-runtime, 0700 and sticky.
    let meta = std::fs::metadata(r.state_root()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o1700);
    assert_eq!(meta.uid(), r.user.uid);
    r.assert_clean();
}

#[test]
fn detached_container_lives_in_the_users_runtime_dir() {
    let r = Rootless::new(SubIds::None);
    r.set_args(&["sleep", "300"]);
    let out = r.rt(&["create", "d1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(r.state_root().join("d1/state.json").is_file());
    assert_eq!(r.status("d1"), "created");
    let out = r.rt(&["start", "d1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    r.wait_status("d1", "running");

    let out = r.rt(&["exec", "d1", "sh", "-c", "echo in; id -u; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(stdout(&out), "in\n0\n");

    // No cgroup (cgroup v1 cannot be delegated): ps finds the processes by pid namespace.
    let state: Value = serde_json::from_slice(&r.rt(&["state", "d1"]).stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let out = r.rt(&["ps", "--format", "json", "d1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pids: Vec<i64> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(pids, [pid]);
    let out = r.rt(&["list", "-q"]);
    assert_eq!(stdout(&out), "d1\n");

    // What needs a cgroup says so, in one line.
    for args in [
        &["pause", "d1"][..],
        &["update", "--pids-limit", "10", "d1"],
        &["events", "--stats", "d1"],
    ] {
        let out = r.rt(args);
        assert_one_line_error(&out, &["has no cgroup", "rootless"]);
    }

    let out = r.rt(&["kill", "d1", "KILL"]);
    assert!(out.status.success(), "{}", stderr(&out));
    r.wait_status("d1", "stopped");
    let out = r.rt(&["delete", "d1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    r.assert_clean();
}

#[test]
fn subordinate_ids_are_mapped_through_newuidmap() {
    let r = Rootless::new(SubIds::Count(65536));
    let start = r.user.subid_start.unwrap();
    r.map_subids(65536);
    let vol = r.user.home.join("vol");
    std::fs::create_dir(&vol).unwrap();
    // Writable for the container's uid 1000 (start+999 on the host), which is no one the
    // directory's owner knows.
    std::fs::set_permissions(&vol, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut c = r.config();
    c["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/v", "type": "bind", "source": vol, "options": ["rbind", "rw"]}),
    );
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    c["process"]["args"] = json!([
        "sh",
        "-c",
        "cat /proc/self/uid_map; id -u; echo x > /v/by-1000"
    ]);
    r.set_config(&c);
    let out = r.rt(&["run", "m1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("{start}")) && text.ends_with("1000\n"),
        "{text}"
    );
    let meta = std::fs::metadata(vol.join("by-1000")).unwrap();
    assert_eq!(
        (u64::from(meta.uid()), u64::from(meta.gid())),
        (start + 999, start + 999)
    );

    // The container's root is the user itself: what it writes is the user's on the host.
    let mut c = r.config();
    c["process"]["user"] = json!({"uid": 0, "gid": 0});
    c["process"]["args"] = json!(["sh", "-c", "echo y > /v/by-root"]);
    r.set_config(&c);
    let out = r.rt(&["run", "m2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let meta = std::fs::metadata(vol.join("by-root")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (r.user.uid, r.user.gid));

    // Detached too, with exec joining the mapped namespace.
    let mut c = r.config();
    c["process"]["args"] = json!(["sleep", "300"]);
    r.set_config(&c);
    let out = r.rt(&["run", "-d", "m3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = r.rt(&["exec", "--user", "1000:1000", "m3", "id", "-u"]);
    assert_eq!(stdout(&out), "1000\n", "{}", stderr(&out));
    let out = r.rt(&["delete", "--force", "m3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    r.assert_clean();
}

#[test]
fn refusals_are_one_line_and_leave_nothing() {
    // No grant: the file and the user are named.
    let r = Rootless::new(SubIds::None);
    let mut c = r.config();
    c["linux"]["uidMappings"] = json!([
        {"containerID": 0, "hostID": r.user.uid, "size": 1},
        {"containerID": 1, "hostID": 1_500_000_000u64, "size": 10}
    ]);
    r.set_config(&c);
    let out = r.rt(&["run", "r1"]);
    assert_one_line_error(&out, &["/etc/subuid has no entry for user", &r.user.name]);
    r.assert_clean();

    // newuidmap not in PATH: the package is named.
    let r = Rootless::new(SubIds::Count(65536));
    r.map_subids(65536);
    let out = output({
        let mut c = r.cmd(bin(), &["run", "r2"]);
        c.env("PATH", "/nonexistent");
        c
    });
    assert_one_line_error(&out, &["newuidmap is not installed", "package uidmap"]);
    r.assert_clean();

    // More ids than granted: the grant is named.
    r.map_subids(65537);
    let out = r.rt(&["run", "r3"]);
    let start = r.user.subid_start.unwrap();
    assert_one_line_error(
        &out,
        &[
            "outside what /etc/subuid grants user",
            &format!("{start}:65536"),
        ],
    );
    r.assert_clean();

    // An image user beyond the mapped range (the `USER 65532` of distroless images).
    r.map_subids(1000);
    let mut c = r.config();
    c["process"]["user"] = json!({"uid": 65532, "gid": 65532});
    r.set_config(&c);
    let out = r.rt(&["run", "r5"]);
    assert_one_line_error(
        &out,
        &[
            "process.user uid 65532 is not mapped by linux.uidMappings",
            "0-0, 1-1000",
        ],
    );
    r.assert_clean();

    // Extra groups need setgroups, which a namespace of the user's own ids denies.
    let r = Rootless::new(SubIds::None);
    let mut c = r.config();
    c["process"]["user"]["additionalGids"] = json!([0]);
    r.set_config(&c);
    let out = r.rt(&["run", "r4"]);
    assert_one_line_error(&out, &["additionalGids", "setgroups"]);
    r.assert_clean();
}

#[test]
fn limits_without_a_delegated_cgroup_fail_as_runcs() {
    let r = Rootless::new(SubIds::None);
    let system = hako_cgroups::CgroupSystem::detect().unwrap();
    let driver = system.rootless_driver(r.user.uid);
    if driver.creates_cgroups() {
        eprintln!("skipped: this host delegates cgroups to the test user ({driver})");
        return;
    }
    r.set_args(&["true"]);
    let mut c = r.config();
    c["linux"]["resources"] = json!({"memory": {"limit": 67108864}});
    r.set_config(&c);
    let out = r.rt(&["run", "l1"]);
    let e = assert_one_line_error(
        &out,
        &["cannot set memory limit: container could not join or create cgroup"],
    );
    if system.mode() != hako_cgroups::Mode::V2 {
        assert!(
            e.contains("cgroup v1 cannot be delegated to an ordinary user"),
            "{e}"
        );
    }
    r.assert_clean();
    // runc says the same (and fails the same way), where it is installed.
    if let Ok(out) = output_of(r.cmd("runc", &["run", "l1"])) {
        assert!(!out.status.success());
        assert!(
            stderr(&out)
                .contains("cannot set memory limit: container could not join or create cgroup"),
            "{}",
            stderr(&out)
        );
        let _ = r.cmd("runc", &["delete", "--force", "l1"]).output();
    }

    // Device rules hold without a cgroup (no device node can be made in a user namespace),
    // but a device bound in that they deny cannot be enforced: refused.
    let mut c = r.config();
    c["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    c["mounts"].as_array_mut().unwrap().push(
        json!({"destination": "/kmsg", "type": "bind", "source": "/dev/kmsg", "options": ["bind"]}),
    );
    r.set_config(&c);
    let out = r.rt(&["run", "l2"]);
    assert_one_line_error(
        &out,
        &["/dev/kmsg (c 1:11)", "denied by linux.resources.devices"],
    );
    r.assert_clean();
    let mut c = r.config();
    c["mounts"].as_array_mut().unwrap().pop();
    r.set_config(&c);
    let out = r.rt(&["run", "l3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    r.assert_clean();

    // --rootless false makes a cgroup failure fatal, as with runc.
    let out = r.rt(&["--rootless", "false", "run", "l4"]);
    assert_one_line_error(&out, &["create cgroup", "Permission denied"]);
    r.assert_clean();
}

fn output_of(c: Command) -> std::io::Result<Output> {
    let program = c.get_program().to_owned();
    if std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| d.join(&program).is_file())
    {
        Ok(output(c))
    } else {
        Err(std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

#[test]
fn two_users_do_not_see_each_others_containers() {
    let a = Rootless::new(SubIds::None);
    let b = Rootless::new(SubIds::None);
    for r in [&a, &b] {
        r.set_args(&["sleep", "300"]);
        // The same id for both: each has its own state root.
        let out = r.rt(&["run", "-d", "same"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = a.rt(&["list", "--format", "json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(listed[0]["bundle"]
        .as_str()
        .unwrap()
        .starts_with(a.user.home.to_str().unwrap()));
    // b cannot reach a's state root, even when pointed at it.
    let out = b.rt(&[
        "--root",
        a.state_root().to_str().unwrap(),
        "kill",
        "same",
        "KILL",
    ]);
    assert!(!out.status.success());
    assert_eq!(a.status("same"), "running");
    for r in [&a, &b] {
        let out = r.rt(&["delete", "--force", "same"]);
        assert!(out.status.success(), "{}", stderr(&out));
        r.assert_clean();
    }
}

#[test]
fn no_runtime_dir_names_the_fix() {
    let r = Rootless::new(SubIds::None);
    let out = output({
        let mut c = r.cmd(bin(), &["list"]);
        c.env_remove("XDG_RUNTIME_DIR");
        c
    });
    if Path::new("/run/hako-runtime").exists() {
        eprintln!("skipped: /run/hako-runtime exists on this host");
        return;
    }
    assert_one_line_error(&out, &["set XDG_RUNTIME_DIR or pass --root"]);
}
