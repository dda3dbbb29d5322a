//! End-to-end tests of the `hako-runtime` binary: real containers from the busybox test image,
//! each under a private `--root`, each checked for leftovers (state dirs, cgroups, mounts).

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

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

/// A bundle with a busybox rootfs and a private state root, checked for leaks on drop.
struct Bundle {
    dir: tempfile::TempDir,
    root: PathBuf,
    id: String,
}

impl Bundle {
    fn new() -> Bundle {
        Bundle::new_in(Path::new("/var/tmp"))
    }

    /// A bundle in a directory of `parent`, e.g. on a mount of the test's own.
    fn new_in(parent: &Path) -> Bundle {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests create namespaces, mounts and cgroups: run them as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("hako-runtime-test-")
            .tempdir_in(parent)
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir(&rootfs).unwrap();
        let st = Command::new("tar")
            .arg("-xf")
            .arg(busybox_tar())
            .arg("-C")
            .arg(&rootfs)
            .status()
            .unwrap();
        assert!(st.success());
        let id = format!(
            "t{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let b = Bundle {
            root: dir.path().join("state"),
            dir,
            id,
        };
        let out = b.rt(&["spec", "--bundle", b.path().to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        b
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.path().join("config.json")).unwrap()).unwrap()
    }

    fn set_config(&self, v: &Value) {
        std::fs::write(self.path().join("config.json"), v.to_string()).unwrap();
    }

    fn set_args(&self, args: &[&str]) {
        let mut c = self.config();
        c["process"]["args"] = json!(args);
        self.set_config(&c);
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hako-runtime"));
        c.arg("--root").arg(&self.root).args(args);
        c.current_dir(self.path());
        c.stdin(Stdio::null());
        c
    }

    fn rt(&self, args: &[&str]) -> Output {
        output(self.cmd(args))
    }

    fn create(&self) -> Output {
        self.rt(&[
            "create",
            "--bundle",
            self.path().to_str().unwrap(),
            &self.id,
        ])
    }

    fn status(&self) -> String {
        let out = self.rt(&["state", &self.id]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["status"].as_str().unwrap().to_owned()
    }

    fn wait_status(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = self.status();
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

    /// The container's cgroup directory in the memory hierarchy (nested under ours).
    fn memory_cgroup(&self) -> PathBuf {
        self.cgroup_dir("memory")
    }

    /// The container's cgroup directory in the v1 hierarchy of `controller`.
    fn cgroup_dir(&self, controller: &str) -> PathBuf {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let rel = own
            .lines()
            .find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
                ctrl.split(',')
                    .any(|c| c == controller)
                    .then(|| path.to_owned())
            })
            .unwrap_or_default();
        Path::new("/sys/fs/cgroup")
            .join(controller)
            .join(rel.trim_start_matches('/'))
            .join(&self.id)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = self.rt(&["delete", "--force", &self.id]);
        if std::thread::panicking() {
            return;
        }
        assert!(
            !self.root.join(&self.id).exists(),
            "state directory left behind"
        );
        assert!(!self.memory_cgroup().exists(), "cgroup left behind");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mounts.contains(self.path().to_str().unwrap()),
            "mount left behind"
        );
    }
}

/// Runs `c` with its stdout and stderr in files: a created or detached container inherits
/// them, so pipes would never reach EOF while it lives.
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

/// A clear one-line error naming what is wrong, a non-zero exit, and no state left.
fn assert_one_line_error(b: &Bundle, o: &Output, needle: &str) {
    assert!(!o.status.success(), "unexpected success: {}", stdout(o));
    let e = stderr(o);
    assert_eq!(e.trim_end().lines().count(), 1, "not one line: {e}");
    assert!(e.contains(needle), "{e:?} does not mention {needle:?}");
    assert!(!b.root.join(&b.id).exists(), "state directory left behind");
}

#[test]
fn run_returns_the_exit_code_and_output() {
    let b = Bundle::new();
    b.set_args(&["sh", "-c", "echo hello from $(hostname); exit 7"]);
    let out = b.rt(&["run", &b.id]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello from hako\n");
}

#[test]
fn create_start_state_kill_delete() {
    let b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let pid_file = b.path().join("pid");
    let out = b.rt(&[
        "create",
        "--pid-file",
        pid_file.to_str().unwrap(),
        "--bundle",
        b.path().to_str().unwrap(),
        &b.id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let state: Value = serde_json::from_slice(&b.rt(&["state", &b.id]).stdout).unwrap();
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], b.id.as_str());
    assert_eq!(state["ociVersion"], "1.2.0");
    assert_eq!(state["bundle"], b.path().to_str().unwrap());
    let pid = state["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    // Blocked before execve: still our binary, not sleep.
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.to_string_lossy().contains("hako-runtime"), "{exe:?}");
    assert!(b.memory_cgroup().exists());

    let list = stdout(&b.rt(&["list"]));
    assert!(list.contains(&b.id) && list.contains("created"), "{list}");

    let out = b.rt(&["start", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.status(), "running");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(exe.ends_with("busybox"), "{exe:?}");

    let out = b.rt(&["start", &b.id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));

    let ps: Vec<i64> =
        serde_json::from_slice(&b.rt(&["ps", "--format", "json", &b.id]).stdout).unwrap();
    assert_eq!(ps, vec![pid]);

    let out = b.rt(&["pause", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.status(), "paused");
    let out = b.rt(&["resume", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.status(), "running");

    let out = b.rt(&["delete", &b.id]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(e.contains("not stopped") && e.contains("running"), "{e}");

    let out = b.rt(&["kill", &b.id, "KILL"]);
    assert!(out.status.success(), "{}", stderr(&out));
    b.wait_status("stopped");
    let out = b.rt(&["delete", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!b.root.join(&b.id).exists());
    assert!(!b.memory_cgroup().exists());
    let out = b.rt(&["state", &b.id]);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
}

#[test]
fn delete_force_kills_a_running_container() {
    let b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let out = b.create();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(b.rt(&["start", &b.id]).status.success());
    let out = b.rt(&["delete", "--force", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!b.root.join(&b.id).exists());
}

#[test]
fn created_container_can_be_deleted_without_running() {
    let b = Bundle::new();
    b.set_args(&["sh", "-c", "touch /tmp/ran"]);
    assert!(b.create().status.success());
    let out = b.rt(&["delete", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn run_detached_then_kill_by_number() {
    let b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let out = b.rt(&["run", "-d", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.status(), "running");
    assert!(b.rt(&["kill", &b.id, "9"]).status.success());
    b.wait_status("stopped");
    assert!(b.rt(&["delete", &b.id]).status.success());
}

#[test]
fn exec_joins_the_running_container() {
    let b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    assert!(b.rt(&["run", "-d", &b.id]).status.success());
    let out = b.rt(&[
        "exec",
        "--env",
        "EXTRA=1",
        &b.id,
        "sh",
        "-c",
        "echo $$ $(hostname) $EXTRA; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // pid 1 is the container's init, so the exec'd shell is 2 in its pid namespace.
    assert_eq!(stdout(&out), "2 hako 1\n");

    let pid_file = b.path().join("exec.pid");
    let out = b.rt(&[
        "exec",
        "-d",
        "--pid-file",
        pid_file.to_str().unwrap(),
        &b.id,
        "sleep",
        "100",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid: i64 = std::fs::read_to_string(&pid_file).unwrap().parse().unwrap();
    let ps: Vec<i64> =
        serde_json::from_slice(&b.rt(&["ps", "--format", "json", &b.id]).stdout).unwrap();
    assert!(ps.contains(&pid) && ps.len() == 2, "{ps:?}");

    let out = b.rt(&["exec", &b.id, "/no/such"]);
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    // delete --force kills the exec'd process with the rest of the cgroup.
    assert!(b.rt(&["delete", "--force", &b.id]).status.success());
}

#[test]
fn exec_failure_is_reported_by_start() {
    let b = Bundle::new();
    b.set_args(&["/no/such/binary"]);
    let out = b.rt(&["run", &b.id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/no/such/binary"), "{}", stderr(&out));
    assert!(!b.root.join(&b.id).exists());
}

#[test]
fn invalid_config_is_refused() {
    let b = Bundle::new();
    std::fs::write(b.path().join("config.json"), "{ not json").unwrap();
    let out = b.create();
    assert_one_line_error(&b, &out, "config.json");
}

#[test]
fn unsupported_oci_version_is_refused() {
    let b = Bundle::new();
    let mut c = b.config();
    c["ociVersion"] = json!("2.0.0");
    b.set_config(&c);
    assert_one_line_error(&b, &b.create(), "ociVersion");
}

#[test]
fn missing_rootfs_is_refused() {
    let b = Bundle::new();
    std::fs::remove_dir_all(b.path().join("rootfs")).unwrap();
    assert_one_line_error(&b, &b.create(), "root.path");
}

#[test]
fn missing_namespace_path_is_refused() {
    let b = Bundle::new();
    let mut c = b.config();
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "ipc", "path": "/proc/self/ns/nonexistent"}));
    c["linux"]["namespaces"] = json!(c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| *n != &json!({"type": "ipc"}))
        .cloned()
        .collect::<Vec<_>>());
    b.set_config(&c);
    let out = b.create();
    assert_one_line_error(&b, &out, "/proc/self/ns/nonexistent");
    // The cause once, not again from the error's source.
    assert_eq!(
        stderr(&out).matches("No such file or directory").count(),
        1,
        "{}",
        stderr(&out)
    );
}

#[test]
fn systemd_cgroups_path_is_refused() {
    let b = Bundle::new();
    let mut c = b.config();
    c["linux"]["cgroupsPath"] = json!("system.slice:hako:x");
    b.set_config(&c);
    assert_one_line_error(&b, &b.create(), "cgroupsPath");
}

#[test]
fn duplicate_id_is_refused() {
    let b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    assert!(b.create().status.success());
    let out = b.create();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    // The first container is untouched.
    assert_eq!(b.status(), "created");
}

#[test]
fn unknown_signal_is_refused() {
    let b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    assert!(b.create().status.success());
    let out = b.rt(&["kill", &b.id, "SIGNOPE"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown signal"), "{}", stderr(&out));
    assert_eq!(b.status(), "created");
}

#[test]
fn relative_cgroups_path_nests_under_the_caller_and_limits_apply() {
    let b = Bundle::new();
    let mut c = b.config();
    c["linux"]["cgroupsPath"] = json!(b.id);
    c["linux"]["resources"]["memory"] = json!({"limit": 64 << 20});
    c["linux"]["resources"]["pids"] = json!({"limit": 50});
    c["process"]["args"] = json!(["sleep", "100"]);
    b.set_config(&c);
    assert!(b.create().status.success());
    let limit = std::fs::read_to_string(b.memory_cgroup().join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
}

#[test]
fn device_cgroup_denies_other_devices() {
    let b = Bundle::new();
    // /dev/sda-like block device: denied by the spec's default deny-all rule even with
    // CAP_MKNOD.
    let mut c = b.config();
    c["process"]["capabilities"]["bounding"] = json!(["CAP_MKNOD"]);
    c["process"]["capabilities"]["effective"] = json!(["CAP_MKNOD"]);
    c["process"]["capabilities"]["permitted"] = json!(["CAP_MKNOD"]);
    c["process"]["capabilities"]["ambient"] = json!([]);
    c["root"]["readonly"] = json!(false);
    c["process"]["args"] = json!([
        "sh",
        "-c",
        "mknod /tmp/disk b 8 0 && head -c1 /tmp/disk >/dev/null && echo READ; cat /dev/null && echo NULL_OK"
    ]);
    b.set_config(&c);
    let out = b.rt(&["run", &b.id]);
    let o = stdout(&out);
    assert!(!o.contains("READ"), "{o}");
    assert!(o.contains("NULL_OK"), "{o} {}", stderr(&out));
}

#[test]
fn cwd_through_proc_self_fd_is_refused() {
    // CVE-2024-21626: a leaked host directory fd as working directory.
    let b = Bundle::new();
    let mut c = b.config();
    c["process"]["cwd"] = json!("/proc/self/fd/3");
    c["process"]["args"] = json!(["pwd"]);
    b.set_config(&c);
    let out = b.rt(&["run", &b.id]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("working directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn host_fds_do_not_leak_unless_preserved() {
    use std::os::unix::process::CommandExt;
    let b = Bundle::new();
    b.set_args(&[
        "sh",
        "-c",
        "[ -e /proc/self/fd/5 ] && echo LEAKED || echo CLEAN",
    ]);
    let run = |extra: &[&str]| {
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.push(&b.id);
        let mut c = b.cmd(&args);
        let file = std::fs::File::open("/etc/hostname").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        // SAFETY: dup2 and fcntl on descriptors of the forked child, before exec; both are
        // async-signal-safe.
        unsafe {
            c.pre_exec(move || {
                // dup2 onto itself keeps close-on-exec, so clear it explicitly.
                if libc::dup2(fd, 5) < 0 || libc::fcntl(5, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
        let out = output(c);
        drop(file);
        out
    };
    let out = run(&[]);
    assert_eq!(stdout(&out), "CLEAN\n", "{}", stderr(&out));
    let out = run(&["--preserve-fds", "3"]);
    assert_eq!(stdout(&out), "LEAKED\n", "{}", stderr(&out));
}

#[test]
fn dev_symlink_in_the_image_cannot_redirect_mounts() {
    let b = Bundle::new();
    let host_dir = b.path().join("host-target");
    std::fs::create_dir(&host_dir).unwrap();
    let dev = b.path().join("rootfs/dev");
    let _ = std::fs::remove_dir_all(&dev);
    std::os::unix::fs::symlink(&host_dir, &dev).unwrap();
    b.set_args(&["sh", "-c", "ls /dev/null >/dev/null && echo OK"]);
    let out = b.rt(&["run", &b.id]);
    // Whatever happens inside, nothing lands in the host directory the link points at.
    assert_eq!(
        std::fs::read_dir(&host_dir).unwrap().count(),
        0,
        "{}",
        stderr(&out)
    );
}

#[test]
fn masked_paths_need_a_real_dev_null() {
    // CVE-2025-31133: without a /dev tmpfs, the image's /dev/null is a symlink to a file the
    // mask would expose; the runtime must refuse instead of binding it.
    let b = Bundle::new();
    let mut c = b.config();
    let mounts: Vec<Value> = c["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !m["destination"].as_str().unwrap().starts_with("/dev"))
        .cloned()
        .collect();
    c["mounts"] = json!(mounts);
    c["process"]["args"] = json!(["true"]);
    b.set_config(&c);
    let dev = b.path().join("rootfs/dev");
    std::fs::create_dir_all(&dev).unwrap();
    let _ = std::fs::remove_file(dev.join("null"));
    std::os::unix::fs::symlink("/etc/passwd", dev.join("null")).unwrap();
    let out = b.rt(&["run", &b.id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("/dev/null"), "{}", stderr(&out));
}

#[test]
fn spec_and_features() {
    let b = Bundle::new();
    let out = b.rt(&["spec", "--bundle", b.path().to_str().unwrap()]);
    assert!(!out.status.success(), "spec must not overwrite config.json");
    let out = b.rt(&["features"]);
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ociVersionMax"], "1.2.0");
    assert_eq!(v["linux"]["netDevices"]["enabled"], true);
    assert_eq!(v["linux"]["intelRdt"]["enabled"], false);
    assert!(v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .contains(&json!("pid")));
}

#[test]
fn unsupported_modes_fail_clearly() {
    let b = Bundle::new();
    let out = b.rt(&["--systemd-cgroup", "list"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("systemd"));
    let mut c = b.config();
    c["process"]["terminal"] = json!(true);
    b.set_config(&c);
    assert_one_line_error(&b, &b.create(), "console-socket");
}

#[test]
fn terminal_is_handed_over_the_console_socket() {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd};
    let b = Bundle::new();
    let mut c = b.config();
    c["process"]["terminal"] = json!(true);
    c["process"]["consoleSize"] = json!({"height": 33, "width": 111});
    c["process"]["args"] = json!(["sh", "-c", "stty size; [ -t 0 ] && echo TTY; echo done"]);
    b.set_config(&c);
    let sock = b.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let out = b.rt(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "--bundle",
        b.path().to_str().unwrap(),
        &b.id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (conn, _) = listener.accept().unwrap();
    let mut name = [0u8; 64];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .unwrap();
    let fd = msg
        .cmsgs()
        .unwrap()
        .find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        })
        .expect("no descriptor received");
    // SAFETY: the descriptor was just received over SCM_RIGHTS and belongs to nobody else.
    let mut master = unsafe { std::fs::File::from_raw_fd(fd) };
    assert!(b.rt(&["start", &b.id]).status.success());
    let mut text = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&text).contains("done") {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains("33 111"), "{text}");
    assert!(text.contains("TTY"), "{text}");
}

#[test]
fn seccomp_denies_with_eperm_and_answers_enosys_for_newer_syscalls() {
    let b = Bundle::new();
    // perl's syscall() reaches any syscall number; the Debian image has perl-base.
    let trixie = busybox_tar().with_file_name("trixie.tar");
    assert!(trixie.is_file(), "{} is missing", trixie.display());
    let rootfs = b.path().join("rootfs");
    std::fs::remove_dir_all(&rootfs).unwrap();
    std::fs::create_dir(&rootfs).unwrap();
    assert!(Command::new("tar")
        .arg("-xf")
        .arg(&trixie)
        .arg("-C")
        .arg(&rootfs)
        .status()
        .unwrap()
        .success());
    // A profile that "knows" syscalls up to rseq (334): it allows all of them but mkdir and
    // mkdirat. clone3 (435) is newer than the profile, so it must answer ENOSYS (38).
    let header = std::fs::read_to_string("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")
        .expect("linux-libc-dev's unistd_64.h");
    let names: Vec<String> = header
        .lines()
        .filter_map(|l| {
            let mut f = l.strip_prefix("#define __NR_")?.split_whitespace();
            let (name, nr) = (f.next()?, f.next()?.parse::<u32>().ok()?);
            (nr <= 334 && name != "mkdir" && name != "mkdirat").then(|| name.to_owned())
        })
        .collect();
    assert!(names.len() > 300);
    let mut c = b.config();
    c["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    });
    c["root"]["readonly"] = json!(false);
    c["process"]["args"] = json!([
        "perl",
        "-e",
        "syscall(435, 0, 0); print $!+0, \" \"; mkdir(\"/tmp/x\") or print $!+0; print \"\\n\""
    ]);
    b.set_config(&c);
    let out = b.rt(&["run", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "38 1\n", "{}", stderr(&out));
}

#[test]
fn user_namespace_with_id_mappings() {
    let b = Bundle::new();
    let st = Command::new("chown")
        .args(["-R", "200000:200000"])
        .arg(b.path().join("rootfs"))
        .status()
        .unwrap();
    assert!(st.success());
    let mut c = b.config();
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    c["root"]["readonly"] = json!(false);
    c["process"]["args"] = json!([
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; echo x > /dev/null && touch /tmp/f && stat -c %u /tmp/f"
    ]);
    b.set_config(&c);
    let out = b.rt(&["create", "--bundle", b.path().to_str().unwrap(), &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state: Value = serde_json::from_slice(&b.rt(&["state", &b.id]).stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let host_map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    assert_eq!(
        host_map.split_whitespace().collect::<Vec<_>>(),
        ["0", "200000", "65536"]
    );
    assert!(b.rt(&["start", &b.id]).status.success());
    b.wait_status("stopped");
    // Files the container's root creates belong to the mapped host uid.
    let meta = std::fs::metadata(b.path().join("rootfs/tmp/f")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 200000);
    assert!(b.rt(&["delete", &b.id]).status.success());
}

#[test]
fn runtime_process_in_the_container_is_not_dumpable() {
    // CVE-2019-5736: while it waits for `start`, the container's init still runs the runtime's
    // binary. Without CAP_SYS_PTRACE (which containers do not get) nobody may open its
    // /proc/PID/exe, even as the same uid.
    let b = Bundle::new();
    b.set_args(&["true"]);
    assert!(b.create().status.success());
    let state: Value = serde_json::from_slice(&b.rt(&["state", &b.id]).stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let out = Command::new("setpriv")
        .args(["--bounding-set", "-all", "--inh-caps", "-all", "readlink"])
        .arg(format!("/proc/{pid}/exe"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "readable: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The same reader can see an ordinary (dumpable) root process's executable.
    let out = Command::new("setpriv")
        .args([
            "--bounding-set",
            "-all",
            "--inh-caps",
            "-all",
            "readlink",
            "/proc/self/exe",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn hooks_receive_the_state() {
    let b = Bundle::new();
    let log = b.path().join("hooks.log");
    let mut c = b.config();
    let hook = |name: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("echo {name} $(cat) >> {}", log.display())]});
    c["hooks"] = json!({
        "createRuntime": [hook("createRuntime")],
        "poststart": [hook("poststart")],
        "poststop": [hook("poststop")]
    });
    c["process"]["args"] = json!(["true"]);
    b.set_config(&c);
    let out = b.rt(&["run", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("createRuntime {") && lines[0].contains("\"creating\""));
    assert!(lines[1].starts_with("poststart {") && lines[1].contains(&b.id));
    assert!(lines[2].starts_with("poststop {") && lines[2].contains("\"stopped\""));
}

fn cgroup_file(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
        .trim()
        .to_owned()
}

#[test]
fn update_changes_the_limits_of_a_running_container() {
    let b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let out = b.rt(&["run", "-d", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = b.rt(&[
        "update",
        "--memory",
        "32m",
        "--memory-reservation",
        "16m",
        "--pids-limit",
        "20",
        "--cpu-shares",
        "512",
        "--cpu-period",
        "100000",
        "--cpu-quota",
        "20000",
        "--cpuset-cpus",
        "0",
        &b.id,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mem = b.memory_cgroup();
    assert_eq!(
        cgroup_file(&mem, "memory.limit_in_bytes"),
        (32u64 << 20).to_string()
    );
    assert_eq!(
        cgroup_file(&mem, "memory.soft_limit_in_bytes"),
        (16u64 << 20).to_string()
    );
    assert_eq!(cgroup_file(&b.cgroup_dir("pids"), "pids.max"), "20");
    let cpu = b.cgroup_dir("cpu");
    assert_eq!(cgroup_file(&cpu, "cpu.shares"), "512");
    assert_eq!(cgroup_file(&cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(cgroup_file(&cpu, "cpu.cfs_quota_us"), "20000");
    assert_eq!(cgroup_file(&b.cgroup_dir("cpuset"), "cpuset.cpus"), "0");

    // containerd's shim sends the whole linux.resources on stdin.
    let mut cmd = b.cmd(&["update", "--resources", "-", &b.id]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(br#"{"memory": {"limit": 50331648, "swap": 67108864}, "pids": {"limit": 7}, "cpu": {"quota": -1}}"#)
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(cgroup_file(&mem, "memory.limit_in_bytes"), "50331648");
    if mem.join("memory.memsw.limit_in_bytes").exists() {
        assert_eq!(cgroup_file(&mem, "memory.memsw.limit_in_bytes"), "67108864");
    }
    assert_eq!(cgroup_file(&b.cgroup_dir("pids"), "pids.max"), "7");
    assert_eq!(cgroup_file(&cpu, "cpu.cfs_quota_us"), "-1");

    // Weights exist only under an I/O scheduler that has them (BFQ); otherwise the refusal
    // must say so.
    let out = b.rt(&["update", "--blkio-weight", "300", &b.id]);
    let blkio = b.cgroup_dir("blkio");
    if out.status.success() {
        let file = ["blkio.weight", "blkio.bfq.weight"]
            .into_iter()
            .find(|f| blkio.join(f).exists())
            .expect("update succeeded without a weight file");
        assert!(cgroup_file(&blkio, file).contains("300"));
    } else {
        let e = stderr(&out);
        assert_eq!(e.trim_end().lines().count(), 1, "{e}");
        assert!(e.contains("blkio weight"), "{e}");
    }

    let out = b.rt(&["update", "--memory", "12q", &b.id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--memory"), "{}", stderr(&out));

    assert!(b.rt(&["kill", &b.id, "KILL"]).status.success());
    b.wait_status("stopped");
    let out = b.rt(&["update", "--pids-limit", "5", &b.id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("stopped"), "{}", stderr(&out));
}

/// `update --resources` with device rules replaces the container's rules (on cgroup v2 its
/// device program), keeping the devices the spec made usable.
#[test]
fn update_replaces_the_device_rules() {
    let b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let out = b.rt(&["run", "-d", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = b.cgroup_dir("devices");
    if !dir.join("devices.list").exists() {
        eprintln!("skipping: no cgroup v1 devices hierarchy here (the v2 program is tested in hako-cgroups)");
        assert!(b.rt(&["kill", &b.id, "KILL"]).status.success());
        return;
    }
    let list = || cgroup_file(&dir, "devices.list");
    assert!(!list().contains("c 10:232"), "{}", list());
    let update = |doc: &str| {
        let file = b.path().join("resources.json");
        std::fs::write(&file, doc).unwrap();
        let out = b.rt(&["update", "--resources", file.to_str().unwrap(), &b.id]);
        assert!(out.status.success(), "{}", stderr(&out));
    };
    update(
        r#"{"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 10, "minor": 232, "access": "r"}]}"#,
    );
    assert!(list().lines().any(|l| l == "c 10:232 r"), "{}", list());
    assert!(list().lines().any(|l| l == "c 1:3 rwm"), "{}", list());
    update(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#);
    assert!(
        !list().contains("c 10:232"),
        "replaced, not added to: {}",
        list()
    );
    assert!(list().lines().any(|l| l == "c 1:3 rwm"), "{}", list());
    // Limits without devices leave the rules alone.
    update(r#"{"pids": {"limit": 9}}"#);
    assert!(list().lines().any(|l| l == "c 1:3 rwm"), "{}", list());
    assert!(b.rt(&["kill", &b.id, "KILL"]).status.success());
}

#[test]
fn events_reports_stats_once_and_as_a_stream_with_oom() {
    use std::io::BufRead;
    let b = Bundle::new();
    let mut c = b.config();
    c["linux"]["resources"]["memory"] = json!({"limit": 16 << 20, "swap": 16 << 20});
    c["linux"]["resources"]["pids"] = json!({"limit": 30});
    // Waits for a line on its stdin (a fifo) before it exhausts its memory, so the test
    // decides when the OOM happens.
    c["process"]["args"] = json!(["sh", "-c", "read go < /go; tail /dev/zero"]);
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/go", "type": "bind", "source": b.path().join("go"), "options": ["bind"]
    }));
    b.set_config(&c);
    nix::unistd::mkfifo(
        &b.path().join("go"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    let out = b.rt(&["run", "-d", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = b.rt(&["events", "--stats", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ev: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], b.id.as_str());
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], 16 << 20);
    assert!(ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert!(ev["data"]["pids"]["current"].as_u64().unwrap() >= 1);
    assert_eq!(ev["data"]["pids"]["limit"], 30);
    assert!(ev["data"]["cpu"]["usage"]["total"].as_u64().is_some());

    let mut cmd = b.cmd(&["events", "--interval", "100ms", &b.id]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    for _ in 0..2 {
        let ev: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        assert_eq!(ev["type"], "stats");
    }
    // Without swap accounting the 16 MB limit would not stop the container from swapping.
    let swap_on = std::fs::read_to_string("/proc/swaps")
        .map(|s| s.lines().count() > 1)
        .unwrap_or(false);
    if swap_on
        && !b
            .memory_cgroup()
            .join("memory.memsw.limit_in_bytes")
            .exists()
    {
        eprintln!("skipping the OOM part: swap is on and the kernel has no swap accounting");
        assert!(b.rt(&["kill", &b.id, "KILL"]).status.success());
        assert!(child.wait().unwrap().success());
        return;
    }
    // The container runs out of memory and is killed: an oom event, then the stream ends.
    std::fs::write(b.path().join("go"), "go\n").unwrap();
    let mut saw_oom = false;
    for line in lines {
        let ev: Value = serde_json::from_str(&line.unwrap()).unwrap();
        saw_oom |= ev["type"] == "oom";
    }
    assert!(child.wait().unwrap().success());
    assert!(saw_oom, "no oom event");
    let out = b.rt(&["events", "--stats", &b.id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not running"), "{}", stderr(&out));
}

#[test]
fn container_hooks_run_in_the_container_at_their_moments() {
    let b = Bundle::new();
    let log = b.path().join("hooks.log");
    let mut c = b.config();
    let host = |script: String| json!({"path": "/bin/sh", "args": ["sh", "-c", script]});
    c["hooks"] = json!({
        "createRuntime": [host(format!("echo createRuntime >> {}", log.display()))],
        // Resolved in the runtime's filesystem, run in the container's namespaces.
        "createContainer": [host(format!(
            "echo createContainer $(readlink /proc/self/ns/mnt) $(cat) >> {}",
            log.display()
        ))],
        // Resolved in the container's root: the image's busybox sh.
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/start.state"], "timeout": 10}]
    });
    c["process"]["args"] = json!([
        "sh",
        "-c",
        "cat /tmp/start.state > /tmp/seen; echo >> /tmp/seen; readlink /proc/self/ns/mnt >> /tmp/seen"
    ]);
    c["root"]["readonly"] = json!(false);
    b.set_config(&c);
    let out = b.create();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], "createRuntime");
    let fields: Vec<&str> = lines[1].splitn(3, ' ').collect();
    assert_eq!(fields[0], "createContainer");
    let host_mnt = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    assert_ne!(
        fields[1],
        host_mnt.to_str().unwrap(),
        "ran in the host's mount namespace"
    );
    let state: Value = serde_json::from_str(fields[2]).unwrap();
    assert_eq!(state["status"], "creating");
    assert_eq!(state["id"], b.id.as_str());
    let pid = state["pid"].as_i64().unwrap();
    let st: Value = serde_json::from_slice(&b.rt(&["state", &b.id]).stdout).unwrap();
    assert_eq!(
        st["pid"].as_i64().unwrap(),
        pid,
        "state pid is not the host pid"
    );
    // startContainer waits for start.
    let rootfs = b.path().join("rootfs");
    assert!(!rootfs.join("tmp/start.state").exists());

    let out = b.rt(&["start", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    b.wait_status("stopped");
    let seen = std::fs::read_to_string(rootfs.join("tmp/seen")).unwrap();
    let (state, mnt) = seen.split_once('\n').unwrap();
    let state: Value = serde_json::from_str(state).unwrap();
    assert_eq!(state["status"], "created");
    assert_eq!(state["pid"].as_i64().unwrap(), pid);
    assert_eq!(
        mnt.trim(),
        fields[1],
        "createContainer ran outside the container's mount namespace"
    );
    assert!(b.rt(&["delete", &b.id]).status.success());
}

#[test]
fn failing_or_slow_container_hooks_stop_the_container() {
    let b = Bundle::new();
    let mut c = b.config();
    c["hooks"] = json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 4"]}]});
    b.set_config(&c);
    let out = b.create();
    assert_one_line_error(
        &b,
        &out,
        "createContainer hook /bin/sh: exited with status 4",
    );

    c["hooks"] = json!({"poststop": [{"path": "/bin/true", "timeout": 0}]});
    b.set_config(&c);
    let out = b.create();
    assert_one_line_error(
        &b,
        &out,
        "hooks.poststop /bin/true: timeout must be greater than zero",
    );

    c["hooks"] =
        json!({"startContainer": [{"path": "/bin/sleep", "args": ["sleep", "30"], "timeout": 1}]});
    b.set_config(&c);
    let out = b.create();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = b.rt(&["start", &b.id]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(
        e.contains("startContainer hook /bin/sleep: timed out after 1 s"),
        "{e}"
    );
    b.wait_status("stopped");
    assert!(b.rt(&["delete", &b.id]).status.success());
}

/// CVE-2021-30465: a mount target that is swapped for a symlink while the runtime sets up
/// mounts must not redirect the mount out of the rootfs. A thread keeps exchanging the target
/// directory with a symlink to a host directory; a createContainer hook (which runs in the
/// container's mount namespace before pivot_root, where an escaped mount would still be
/// visible) records whether anything got mounted on the host directory.
#[test]
fn mount_target_swapped_for_a_symlink_stays_in_the_rootfs() {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;
    let b = Bundle::new();
    let rootfs = b.path().join("rootfs");
    let outside = b.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let race = rootfs.join("race");
    std::fs::create_dir_all(race.join("t")).unwrap();
    std::os::unix::fs::symlink(&outside, race.join("l")).unwrap();
    let log = b.path().join("escapes.log");
    let mut c = b.config();
    let mounts = c["mounts"].as_array_mut().unwrap();
    for i in 0..20 {
        mounts.push(json!({"destination": format!("/race/t/m{i}"), "type": "tmpfs", "source": "tmpfs", "options": ["size=64k"]}));
    }
    c["hooks"] = json!({"createContainer": [{"path": "/bin/sh", "args": ["sh", "-c", format!(
        "awk -v o={0} '$5 == o || index($5, o \"/\") == 1' /proc/self/mountinfo >> {1}",
        outside.display(), log.display()
    )]}]});
    c["process"]["args"] = json!(["true"]);
    b.set_config(&c);

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let (t, l) = (race.join("t"), race.join("l"));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = renameat2(AT_FDCWD, &t, AT_FDCWD, &l, RenameFlags::RENAME_EXCHANGE);
            }
        })
    };
    let mut outcomes = (0, 0);
    for _ in 0..30 {
        let out = b.rt(&["run", &b.id]);
        if out.status.success() {
            outcomes.0 += 1;
        } else {
            // Refusing a target that is a symlink at the wrong moment is fine; escaping is not.
            outcomes.1 += 1;
            let _ = b.rt(&["delete", "--force", &b.id]);
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    let escapes = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(escapes.is_empty(), "mounts escaped the rootfs: {escapes}");
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    assert_eq!(outcomes.0 + outcomes.1, 30);
}

/// CVE-2022-0492: the container must reach no writable cgroup v1 release_agent, neither in
/// its cgroup mount nor by mounting a cgroup hierarchy itself (directly, or after unsharing a
/// user and mount namespace, which the default capabilities must not allow to succeed).
#[test]
fn no_writable_release_agent_is_reachable() {
    let b = Bundle::new();
    let mut c = b.config();
    c["root"]["readonly"] = json!(false);
    c["process"]["args"] = json!([
        "sh",
        "-c",
        r#"
        for f in $(find /sys/fs/cgroup -name release_agent 2>/dev/null); do
            echo /bin/true 2>/dev/null > "$f" && echo "WROTE $f"
        done
        mkdir -p /tmp/cg /tmp/cg2
        mount -t cgroup -o memory cgroup /tmp/cg 2>/dev/null && echo MOUNTED
        unshare -Urm sh -c 'mount -t cgroup -o memory cgroup /tmp/cg2 && echo /bin/true > /tmp/cg2/release_agent && echo ESCAPED' 2>/dev/null
        echo done
    "#
    ]);
    b.set_config(&c);
    let out = b.rt(&["run", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "done\n", "{}", stderr(&out));
}

/// Fork safety: a container that exits at once is never missed. Many `run`s of `/bin/true`
/// in a row must each return promptly with its status and leave nothing behind (bench/
/// runtime-loop.sh does the same 1000 times).
#[test]
fn many_immediately_exiting_runs_never_hang_or_leak() {
    let b = Bundle::new();
    b.set_args(&["true"]);
    for i in 0..200 {
        let mut child = b
            .cmd(&["run", &b.id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // A generous bound that only a hang exceeds, not a timing assertion.
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("run {i} hung");
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        assert!(status.success(), "run {i} failed: {status}");
        assert!(!b.root.join(&b.id).exists(), "run {i} left its state");
        assert!(!b.memory_cgroup().exists(), "run {i} left its cgroup");
    }
}

#[test]
fn cgroup_mount_shows_the_containers_own_cgroup_read_only() {
    let b = Bundle::new();
    let mut c = b.config();
    c["linux"]["resources"]["memory"] = json!({"limit": 48 << 20});
    c["linux"]["resources"]["pids"] = json!({"limit": 40});
    c["process"]["args"] = json!(["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; test -e /sys/fs/cgroup/cpu/cpu.shares && echo cpu; grep -q \"^$$\\$\" /sys/fs/cgroup/memory/cgroup.procs && echo own; mkdir /sys/fs/cgroup/memory/x 2>/dev/null || echo ro"]);
    b.set_config(&c);
    let out = b.rt(&["run", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("{}\n40\ncpu\nown\nro\n", 48u64 << 20),
        "{}",
        stderr(&out)
    );
}

#[test]
fn process_attributes_and_time_namespace_apply() {
    let b = Bundle::new();
    let mut c = b.config();
    c["domainname"] = json!("example.org");
    c["linux"]["personality"] = json!({"domain": "LINUX32"});
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "time"}));
    c["linux"]["timeOffsets"] = json!({"boottime": {"secs": 5_000_000}});
    c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6});
    c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7});
    c["process"]["execCPUAffinity"] = json!({"final": "0"});
    c["process"]["args"] = json!(["sh", "-c", "cat /proc/sys/kernel/domainname; uname -m; ionice; grep Cpus_allowed_list /proc/self/status | tr -d '\\t'; cut -d' ' -f1 /proc/uptime | cut -d. -f1; cut -d' ' -f19,41 /proc/self/stat; sleep 100"]);
    b.set_config(&c);
    let out = b.rt(&["run", "-d", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let st: Value = serde_json::from_slice(&b.rt(&["state", &b.id]).stdout).unwrap();
    let pid = st["pid"].as_i64().unwrap();
    let ours = std::fs::read_link("/proc/self/ns/time").unwrap();
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/time")).unwrap();
    assert_ne!(ours, theirs, "no time namespace");
    // exec joins the time namespace and sees the same clocks.
    let out = b.rt(&["exec", &b.id, "sh", "-c", "cat /proc/sys/kernel/domainname; cut -d' ' -f1 /proc/uptime | cut -d. -f1; readlink /proc/self/ns/time"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "example.org");
    assert!(lines[1].parse::<u64>().unwrap() >= 5_000_000, "{text}");
    assert_eq!(lines[2], theirs.to_str().unwrap());
    assert!(b.rt(&["kill", &b.id, "KILL"]).status.success());
    b.wait_status("stopped");

    // The same in the foreground, where the output is ours to read.
    c["process"]["args"][2] = json!(c["process"]["args"][2]
        .as_str()
        .unwrap()
        .replace("; sleep 100", ""));
    b.set_config(&c);
    assert!(b.rt(&["delete", &b.id]).status.success());
    let out = b.rt(&["run", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert_eq!(lines[0], "example.org");
    assert!(
        lines[1] == "i686" || !cfg!(target_arch = "x86_64"),
        "{text}"
    );
    assert_eq!(lines[2], "best-effort: prio 6");
    assert_eq!(lines[3], "Cpus_allowed_list:0");
    assert!(lines[4].parse::<u64>().unwrap() >= 5_000_000, "{text}");
    // nice 7, policy 3 (SCHED_BATCH)
    assert_eq!(lines[5], "7 3");
}

#[test]
fn unsupported_attributes_are_refused_clearly() {
    let b = Bundle::new();
    let mut c = b.config();
    c["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 1}});
    b.set_config(&c);
    let out = b.create();
    assert_one_line_error(&b, &out, "linux.timeOffsets needs a new time namespace");
    let mut c = b.config();
    c["linux"].as_object_mut().unwrap().remove("timeOffsets");
    c["process"]["scheduler"] = json!({"policy": "SCHED_ISO"});
    b.set_config(&c);
    let out = b.create();
    assert_one_line_error(&b, &out, "SCHED_ISO");
}

/// A seccomp agent (a thread): takes one listener from `listener`, answers getppid with 4242
/// and lets every other notified call go on. Returns the state it got and how many getppid
/// calls it answered.
fn seccomp_agent(
    listener: std::os::unix::net::UnixListener,
) -> std::thread::JoinHandle<(Value, usize)> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 8192];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        let mut fd = None;
        for cmsg in msg.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = cmsg {
                // SAFETY: SCM_RIGHTS gave us this new descriptor.
                fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
            }
        }
        let n = msg.bytes;
        let state: Value = serde_json::from_slice(&buf[..n]).unwrap();
        let fd = fd.expect("no descriptor with the state");
        // struct seccomp_notif (80 bytes) and seccomp_notif_resp (24 bytes).
        const RECV: libc::c_ulong = 0xC050_2100;
        const SEND: libc::c_ulong = 0xC018_2101;
        const CONTINUE: u32 = 1; // SECCOMP_USER_NOTIF_FLAG_CONTINUE
        let mut answered = 0;
        loop {
            let mut req = [0u8; 80];
            // SAFETY: the buffer has the size of struct seccomp_notif.
            if unsafe { libc::ioctl(fd.as_raw_fd(), RECV, req.as_mut_ptr()) } != 0 {
                break; // the container is gone
            }
            let nr = i32::from_ne_bytes(req[16..20].try_into().unwrap());
            let mut resp = [0u8; 24];
            resp[..8].copy_from_slice(&req[..8]); // id
            if i64::from(nr) == libc::SYS_getppid {
                resp[8..16].copy_from_slice(&4242i64.to_ne_bytes()); // val
                answered += 1;
            } else {
                resp[20..24].copy_from_slice(&CONTINUE.to_ne_bytes()); // flags
            }
            // SAFETY: the buffer has the size of struct seccomp_notif_resp.
            unsafe { libc::ioctl(fd.as_raw_fd(), SEND, resp.as_mut_ptr()) };
        }
        (state, answered)
    })
}

/// SCMP_ACT_NOTIFY: the runtime sends the listener descriptor and the container process state
/// to listenerPath; the agent then answers the container's getppid calls. The runtime takes the
/// listener from outside the filter, so a profile that also notifies on the calls a hand-over
/// from inside would make (sendmsg, write, read, close...) neither hangs nor loses the listener,
/// for `run` (create + start) and for `exec`.
#[test]
fn seccomp_notify_hands_the_listener_to_the_agent() {
    let b = Bundle::new();
    let sock = b.path().join("agent.sock");
    for extra in [
        json!([]),
        json!(["sendmsg", "sendto", "write", "writev", "read", "close", "poll", "ppoll"]),
    ] {
        let _ = std::fs::remove_file(&sock);
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let mut c = b.config();
        let mut names = vec![json!("getppid")];
        names.extend(extra.as_array().unwrap().iter().cloned());
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "listenerMetadata": "hello agent",
            "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}]
        });
        c["process"]["args"] = json!(["sh", "-c", "echo $PPID"]);
        b.set_config(&c);

        let agent = seccomp_agent(listener);
        let out = b.rt(&["run", &b.id]);
        assert!(out.status.success(), "{extra}: {}", stderr(&out));
        assert_eq!(stdout(&out), "4242\n", "{extra}");
        let (state, answered) = agent.join().unwrap();
        assert!(answered >= 1);
        assert_eq!(state["fds"], json!(["seccompFd"]));
        assert_eq!(state["metadata"], "hello agent");
        assert_eq!(state["state"]["id"], b.id.as_str());
        assert!(state["pid"].as_i64().unwrap() > 1);
        assert_eq!(state["pid"], state["state"]["pid"]);
    }

    // exec hands over a listener of its own, from the spawning runtime.
    let _ = std::fs::remove_file(&sock);
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let mut c = b.config();
    c["process"]["args"] = json!(["sleep", "30"]);
    c["linux"]["seccomp"]["syscalls"][0]["names"] = json!(["getppid", "write", "sendmsg", "read"]);
    b.set_config(&c);
    let first = seccomp_agent(listener);
    let out = b.create();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = b.rt(&["start", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_file(&sock).unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let second = seccomp_agent(listener);
    let out = b.rt(&["exec", &b.id, "sh", "-c", "echo $PPID"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "4242\n");
    let (state, answered) = second.join().unwrap();
    assert!(answered >= 1);
    assert_eq!(state["fds"], json!(["seccompFd"]));
    // The agent learns which container the exec'd process joined, and that it runs.
    assert_eq!(state["state"]["id"], b.id.as_str());
    assert_eq!(state["state"]["status"], "running");
    assert!(state["state"]["pid"].as_i64().unwrap() > 1);
    assert_ne!(state["pid"], state["state"]["pid"]);
    // The container's own agent lives as long as the container.
    let out = b.rt(&["kill", &b.id, "KILL"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (state, _) = first.join().unwrap();
    assert_eq!(state["state"]["id"], b.id.as_str());
    let _ = b.rt(&["delete", "--force", &b.id]);

    c["linux"]["seccomp"]
        .as_object_mut()
        .unwrap()
        .remove("listenerPath");
    b.set_config(&c);
    let out = b.create();
    assert_one_line_error(&b, &out, "SCMP_ACT_NOTIFY needs a listenerPath");
}

#[test]
fn idmapped_bind_mount_shows_mapped_owners() {
    use std::os::unix::fs::chown;
    let b = Bundle::new();
    let data = b.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("a"), "a").unwrap();
    std::fs::write(data.join("b"), "b").unwrap();
    chown(data.join("b"), Some(1234), Some(1234)).unwrap();
    let mut c = b.config();
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": data, "options": ["bind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]
    }));
    c["process"]["args"] = json!(["stat", "-c", "%u:%g", "/data/a", "/data/b"]);
    b.set_config(&c);
    let out = b.rt(&["run", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "100000:100000\n101234:101234\n");
    // The host's view is unchanged.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(data.join("b")).unwrap().uid(), 1234);

    let mut c = b.config();
    c["mounts"]
        .as_array_mut()
        .unwrap()
        .last_mut()
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove("gidMappings");
    b.set_config(&c);
    let out = b.create();
    assert_one_line_error(&b, &out, "needs both uidMappings and gidMappings");
}

#[test]
fn more_v1_limits_reach_the_cgroup_files() {
    let b = Bundle::new();
    let mut c = b.config();
    c["linux"]["resources"]["memory"] =
        json!({"limit": 64 << 20, "swappiness": 20, "disableOOMKiller": true});
    // A whole disk of this host (throttling takes disks, not partitions).
    let disk = std::fs::read_dir("/sys/block")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            !name.starts_with("loop") && !name.starts_with("zram") && !name.starts_with("ram")
        })
        .and_then(|p| std::fs::read_to_string(p.join("dev")).ok());
    if let Some(dev) = &disk {
        let (maj, min) = dev.trim().split_once(':').unwrap();
        c["linux"]["resources"]["blockIO"] = json!({"throttleReadBpsDevice": [
            {"major": maj.parse::<i64>().unwrap(), "minor": min.parse::<i64>().unwrap(), "rate": 1048576}
        ]});
    }
    c["process"]["args"] = json!(["sleep", "100"]);
    b.set_config(&c);
    let out = b.create();
    assert!(out.status.success(), "{}", stderr(&out));
    let mem = b.memory_cgroup();
    assert_eq!(cgroup_file(&mem, "memory.swappiness"), "20");
    assert!(cgroup_file(&mem, "memory.oom_control").contains("oom_kill_disable 1"));
    match &disk {
        Some(dev) => assert_eq!(
            cgroup_file(&b.cgroup_dir("blkio"), "blkio.throttle.read_bps_device"),
            format!("{} 1048576", dev.trim())
        ),
        None => eprintln!("no disk in /sys/block: throttling not checked"),
    }
    assert!(b.rt(&["delete", &b.id]).status.success());

    // cgroup v2 only: refused clearly where cpu is a v1 controller.
    if !Path::new("/sys/fs/cgroup/cpu/cpu.shares").exists() {
        return;
    }
    let mut c = b.config();
    c["linux"]["resources"] = json!({"cpu": {"idle": 1}});
    b.set_config(&c);
    let out = b.create();
    assert_one_line_error(&b, &out, "cpu.idle (cgroup v2 only)");
}

/// A tmpfs of the test's own, made a shared mount as on hosts where systemd makes `/`
/// shared: mounts below a shared mount propagate to the host's mount namespace unless the
/// runtime stops them. Unmounted on drop.
struct SharedMount(tempfile::TempDir);

impl SharedMount {
    fn new() -> SharedMount {
        let dir = tempfile::Builder::new()
            .prefix("hako-shared-")
            .tempdir_in("/var/tmp")
            .unwrap();
        use nix::mount::{mount, MsFlags};
        mount(
            Some("tmpfs"),
            dir.path(),
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=64m"),
        )
        .unwrap();
        mount(
            None::<&str>,
            dir.path(),
            None::<&str>,
            MsFlags::MS_SHARED,
            None::<&str>,
        )
        .unwrap();
        SharedMount(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.0.path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The optional fields (propagation) of the mount at `/`, as the container's mountinfo
/// shows them: `shared:N`, `master:N`, `unbindable`, or nothing for a private mount.
const ROOT_PROPAGATION: &str =
    "awk '$5 == \"/\" { o = \"\"; for (i = 7; $i != \"-\"; i++) o = o \" \" $i; print \"tags:\" o }' /proc/self/mountinfo";

/// Lines of the host's mountinfo that mention `path`.
fn host_mounts_under(path: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(path.to_str().unwrap()))
        .map(str::to_owned)
        .collect()
}

/// Every rootfsPropagation value of the spec is taken, and `/` in the container ends up
/// with it (as runc gives it). The root sits on a shared mount, which pivot_root refuses as
/// the new root's parent: the runtime makes that parent private (a slave for `slave`) first,
/// so nothing the container mounts reaches the host, and unmounting the old root cannot
/// propagate back to the host's mounts either.
#[test]
fn every_rootfs_propagation_applies_and_nothing_reaches_the_host() {
    let shared = SharedMount::new();
    let before = host_mounts_under(shared.path());
    for (value, want) in [
        ("shared", "shared:"),
        ("rshared", "shared:"),
        ("slave", "master:"),
        ("rslave", "master:"),
        ("private", ""),
        ("rprivate", ""),
        ("unbindable", "unbindable"),
        ("runbindable", "unbindable"),
    ] {
        let b = Bundle::new_in(shared.path());
        b.set_args(&["sh", "-c", &format!("{ROOT_PROPAGATION} > /tags")]);
        let mut c = b.config();
        c["linux"]["rootfsPropagation"] = json!(value);
        c["root"]["readonly"] = json!(false);
        b.set_config(&c);
        let out = b.create();
        assert!(out.status.success(), "{value}: {}", stderr(&out));
        // The container's root is assembled and waits for start: none of it is on the host.
        assert_eq!(host_mounts_under(shared.path()), before, "{value}");
        let out = b.rt(&["start", &b.id]);
        assert!(out.status.success(), "{value}: {}", stderr(&out));
        b.wait_status("stopped");
        let tags = std::fs::read_to_string(b.path().join("rootfs/tags")).unwrap();
        let tags = tags
            .trim()
            .strip_prefix("tags:")
            .unwrap_or_else(|| panic!("{value}: {tags:?}"));
        if want.is_empty() {
            assert_eq!(tags.trim(), "", "{value}");
        } else {
            assert!(tags.contains(want), "{value}: {tags:?} lacks {want}");
        }
        drop(b);
        assert_eq!(host_mounts_under(shared.path()), before, "{value}");
    }
}

fn ns_of(pid: &str, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Without a `mount` entry in linux.namespaces the container inherits the runtime's mount
/// namespace (and with no entry at all, every namespace), as the spec says and runc and crun
/// allow. Its root is a chroot; the spec's mounts, masks and read-only paths are made on it in
/// the runtime's namespace, `exec` lands in the same root, and `delete` takes every one of
/// those mounts away (the Bundle's drop checks that none is left).
#[test]
fn a_container_without_a_mount_namespace_shares_the_runtimes() {
    let b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let mut c = b.config();
    let ns: Vec<Value> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "mount")
        .cloned()
        .collect();
    c["linux"]["namespaces"] = json!(ns);
    b.set_config(&c);
    let out = b.rt(&["run", "-d", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state: Value = serde_json::from_slice(&b.rt(&["state", &b.id]).stdout).unwrap();
    let pid = state["pid"].to_string();
    assert_eq!(ns_of(&pid, "mnt"), ns_of("self", "mnt"));
    assert_ne!(ns_of(&pid, "pid"), ns_of("self", "pid"));
    // Its mounts are visible here, on its root.
    let rootfs = b.path().join("rootfs");
    let mounts = host_mounts_under(&rootfs);
    assert!(
        mounts.iter().any(|l| l.contains(" - proc ")),
        "no proc on the root: {mounts:?}"
    );
    let out = b.rt(&[
        "exec",
        &b.id,
        "sh",
        "-c",
        "test -e /bin/busybox && cat /proc/kcore | wc -c && echo x > /proc/sys/vm/overcommit_memory || echo denied",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // /proc/kcore is masked (empty), /proc/sys read-only.
    assert_eq!(stdout(&out), "0\ndenied\n", "{}", stderr(&out));
    let out = b.rt(&["delete", "--force", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(host_mounts_under(&rootfs), Vec::<String>::new());

    // No namespace at all, as runtime-tools' linux_ns_itype asks: every one is ours.
    let mut c = b.config();
    c["linux"]["namespaces"] = json!([]);
    c.as_object_mut().unwrap().remove("hostname");
    b.set_config(&c);
    assert!(b.create().status.success());
    let state: Value = serde_json::from_slice(&b.rt(&["state", &b.id]).stdout).unwrap();
    let pid = state["pid"].to_string();
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"] {
        assert_eq!(ns_of(&pid, ns), ns_of("self", ns), "{ns}");
    }
    let out = b.rt(&["delete", "--force", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(host_mounts_under(&rootfs), Vec::<String>::new());

    // Changing the propagation of the runtime's own `/` is refused.
    let mut c = b.config();
    c["linux"]["rootfsPropagation"] = json!("shared");
    b.set_config(&c);
    assert_one_line_error(&b, &b.create(), "rootfsPropagation needs a mount namespace");
}

/// A UTS namespace joined by path, with a hostname: the hostname is set in the joined
/// namespace (containerd's CRI asks exactly this for every container of a pod), as runc does.
#[test]
fn hostname_is_set_in_a_joined_uts_namespace() {
    let pod = Bundle::new();
    pod.set_args(&["sleep", "100"]);
    let out = pod.rt(&["run", "-d", &pod.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let state: Value = serde_json::from_slice(&pod.rt(&["state", &pod.id]).stdout).unwrap();
    let pod_pid = state["pid"].as_i64().unwrap();

    let b = Bundle::new();
    b.set_args(&["hostname"]);
    let mut c = b.config();
    for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "uts" {
            n["path"] = json!(format!("/proc/{pod_pid}/ns/uts"));
        }
    }
    c["hostname"] = json!("joined-pod");
    b.set_config(&c);
    let out = b.rt(&["run", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "joined-pod\n");
    // The namespace is the pod's: its init sees the name too.
    let out = pod.rt(&["exec", &pod.id, "hostname"]);
    assert_eq!(stdout(&out), "joined-pod\n", "{}", stderr(&out));

    // Without any UTS namespace a hostname stays refused (it would rename the host).
    let mut c = b.config();
    let ns: Vec<Value> = c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "uts")
        .cloned()
        .collect();
    c["linux"]["namespaces"] = json!(ns);
    b.set_config(&c);
    assert_one_line_error(&b, &b.create(), "a hostname needs a UTS namespace");
}

/// memory.kernel and memory.kernelTCP no longer fail the create: kernelTCP is applied where
/// the kernel enforces it (v1 memory.kmem.tcp.limit_in_bytes), and a setting this kernel
/// ignores is reported as a warning, as runc warns — on stderr, or in the --log file when
/// one is given (under containerd's shim, stderr is the container's own).
#[test]
fn kernel_memory_settings_warn_or_apply_instead_of_failing() {
    let b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let mut c = b.config();
    c["linux"]["resources"]["memory"] =
        json!({"kernel": 1_000_000_000i64, "kernelTCP": 100_000_000i64});
    b.set_config(&c);
    let out = b.rt(&["run", "-d", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let tcp = b.memory_cgroup().join("memory.kmem.tcp.limit_in_bytes");
    let kmem = b.memory_cgroup().join("memory.kmem.limit_in_bytes");
    let e = stderr(&out);
    if tcp.exists() {
        // Rounded down to whole pages.
        assert_eq!(
            cgroup_file(&b.memory_cgroup(), "memory.kmem.tcp.limit_in_bytes"),
            "99999744"
        );
        assert!(!e.contains("kernelTCP"), "{e}");
    } else {
        assert!(e.contains("memory.kernelTCP is ignored"), "{e}");
    }
    let kmem_applied = kmem.exists()
        && cgroup_file(&b.memory_cgroup(), "memory.kmem.limit_in_bytes") == "999997440";
    assert_eq!(!kmem_applied, e.contains("memory.kernel is ignored"), "{e}");
    assert!(b.rt(&["delete", "--force", &b.id]).status.success());

    // With --log the warning goes to the log, and stderr (the container's) stays clean.
    let log = b.path().join("log.json");
    let mut cmd = b.cmd(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "run",
        "-d",
        &b.id,
    ]);
    cmd.current_dir(b.path());
    let out = output(cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
    if !kmem_applied {
        let text = std::fs::read_to_string(&log).unwrap();
        let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["level"], "warning", "{text}");
        assert!(
            line["msg"]
                .as_str()
                .unwrap()
                .contains("memory.kernel is ignored"),
            "{text}"
        );
    }
}

/// SELinux and AppArmor labels are applied where the host runs that module; where it does
/// not, a process label fails the create (as runc fails) with a message that says why, and a
/// mount label is ignored with a warning (runc ignores it silently).
#[test]
fn lsm_labels_apply_or_say_why_not() {
    let apparmor = Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.starts_with('Y'));
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    let b = Bundle::new();
    b.set_args(&["cat", "/proc/self/attr/current"]);
    let mut c = b.config();
    c["process"]["apparmorProfile"] = json!("unconfined");
    b.set_config(&c);
    if apparmor {
        let out = b.rt(&["run", &b.id]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).starts_with("unconfined"), "{}", stdout(&out));
    } else {
        assert_one_line_error(&b, &b.create(), "AppArmor is not enabled on this host");
    }

    let own = std::fs::read_to_string("/proc/self/attr/current").unwrap_or_default();
    let mut c = b.config();
    c["process"]
        .as_object_mut()
        .unwrap()
        .remove("apparmorProfile");
    c["process"]["selinuxLabel"] = json!(if selinux {
        own.trim_end_matches('\0').trim()
    } else {
        "system_u:system_r:container_t:s0"
    });
    b.set_config(&c);
    if selinux {
        let out = b.rt(&["run", &b.id]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            stdout(&out).trim_end_matches('\0'),
            own.trim_end_matches('\0')
        );
    } else {
        assert_one_line_error(&b, &b.create(), "SELinux is not enabled on this host");
    }

    let mut c = b.config();
    c["process"].as_object_mut().unwrap().remove("selinuxLabel");
    c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0");
    b.set_args(&["true"]);
    let args = b.config()["process"]["args"].clone();
    c["process"]["args"] = args;
    b.set_config(&c);
    let out = b.rt(&["run", &b.id]);
    if selinux {
        assert!(out.status.success(), "{}", stderr(&out));
    } else {
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("linux.mountLabel \"system_u:object_r:container_file_t:s0\" is ignored: SELinux is not enabled"),
            "{}",
            stderr(&out)
        );
    }
}

/// What containerd's shim relies on: `kill --all` of a container that has stopped succeeds
/// (the shim sends it when a pod's containers go), a plain `kill` fails with runc's
/// "container not running" (which the shim maps to NotFound), and checkpoint is refused
/// with a clear message.
#[test]
fn kill_answers_as_runc_for_a_stopped_container() {
    let b = Bundle::new();
    b.set_args(&["true"]);
    assert!(b.rt(&["run", "-d", &b.id]).status.success());
    b.wait_status("stopped");
    let out = b.rt(&["kill", "--all", &b.id, "9"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = b.rt(&["kill", &b.id, "9"]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(e.contains("container not running"), "{e}");
    // go-runc puts --criu before every command when containerd is given a CriuPath.
    let out = b.rt(&["--criu", "/usr/sbin/criu", "state", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = b.rt(&["checkpoint", "--image-path", "/tmp/x", &b.id]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(e.contains("checkpoint/restore is not supported"), "{e}");
    assert!(b.rt(&["delete", &b.id]).status.success());
}

/// The recursive mount options (runc's and crun's `rro`, `rnosuid`, ...) apply to a bind
/// mount and every mount below it; `nosymfollow` is a flag of its own. Before, they went to
/// the kernel as filesystem data, which bind mounts ignore: `rro` left submounts writable.
#[test]
fn recursive_mount_options_reach_submounts() {
    let b = Bundle::new();
    // A host directory with a tmpfs mounted inside it, bound into the container.
    let host = b.path().join("vol");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    mount(
        Some("tmpfs"),
        &host.join("sub"),
        Some("tmpfs"),
        MsFlags::empty(),
        Some("size=1m"),
    )
    .unwrap();
    let mut c = b.config();
    c["mounts"].as_array_mut().unwrap().extend([
        json!({"destination": "/vol", "type": "bind", "source": host,
               "options": ["rbind", "rro", "rnosuid"]}),
        json!({"destination": "/nsf", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosymfollow"]}),
    ]);
    c["root"]["readonly"] = json!(false);
    b.set_config(&c);
    b.set_args(&[
        "sh",
        "-c",
        "touch /vol/x 2>/dev/null && echo top-writable; touch /vol/sub/x 2>/dev/null && echo sub-writable; \
         grep ' /vol/sub ' /proc/self/mountinfo | grep -c 'ro,nosuid'; \
         echo hi > /nsf/f && ln -s /nsf/f /nsf/l && cat /nsf/l 2>/dev/null || echo no-follow",
    ]);
    let out = b.rt(&["run", &b.id]);
    let _ = umount2(&host.join("sub"), MntFlags::MNT_DETACH);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "1\nno-follow\n", "{}", stderr(&out));
}

/// linux.memoryPolicy reaches set_mempolicy(2): a policy on an existing node runs, one on a
/// node this host lacks fails the create with the kernel's answer, and a mode that takes no
/// nodes refuses them before anything is made.
#[test]
fn memory_policy_is_applied() {
    let b = Bundle::new();
    b.set_args(&["true"]);
    let mut c = b.config();
    c["process"]["capabilities"]
        .as_object_mut()
        .unwrap()
        .remove("ambient");
    c["linux"]["memoryPolicy"] =
        json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]});
    b.set_config(&c);
    let out = b.rt(&["run", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Set right before the command, so `run` (not `create`) meets the kernel's refusal.
    c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "63"});
    b.set_config(&c);
    let out = b.rt(&["run", &b.id]);
    assert_one_line_error(
        &b,
        &out,
        "set the memory policy (linux.memoryPolicy): invalid argument",
    );

    c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_LOCAL", "nodes": "0"});
    b.set_config(&c);
    assert_one_line_error(&b, &b.create(), "MPOL_LOCAL takes no nodes");
}

/// What hako-runtime cannot do is refused with a reason, never accepted and ignored.
#[test]
fn intel_rdt_is_refused_clearly() {
    let b = Bundle::new();
    let mut c = b.config();
    c["linux"]["intelRdt"] = json!({"closID": "guaranteed"});
    b.set_config(&c);
    assert_one_line_error(&b, &b.create(), "linux.intelRdt is not supported");
}

/// `ip` run on the host, for what the tests set up and look at (the runtime itself uses
/// netlink).
fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().unwrap()
}

fn ip_ok(args: &[&str]) -> String {
    let out = ip(args);
    assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
    stdout(&out)
}

fn host_has_link(name: &str) -> bool {
    ip(&["link", "show", "dev", name]).status.success()
}

/// A veth pair on the host with names of its own (the end to move, and `<name>p`), deleted
/// when dropped, whatever became of it.
struct Veth(String);

impl Veth {
    fn new(tag: &str) -> Veth {
        // IFNAMSIZ leaves 15 bytes, the peer's `p` included.
        let name = format!("hk{tag}{}", std::process::id() % 100_000);
        let v = Veth(name);
        ip_ok(&[
            "link",
            "add",
            &v.0,
            "type",
            "veth",
            "peer",
            "name",
            &v.peer(),
        ]);
        v
    }

    fn peer(&self) -> String {
        format!("{}p", self.0)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Deleting one end takes the other; either may be gone already.
        let _ = ip(&["link", "del", &self.0]);
        let _ = ip(&["link", "del", &self.peer()]);
    }
}

/// A named network namespace (`ip netns`), deleted when dropped.
struct NetNs(String);

impl NetNs {
    fn new(tag: &str) -> NetNs {
        let ns = NetNs(format!("hako-test-{tag}-{}", std::process::id()));
        ip_ok(&["netns", "add", &ns.0]);
        ns
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.0)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

/// runtime-spec 1.2 `linux.netDevices`: each host interface moves into the container's new
/// network namespace under its new name (a `%d` template completed by the kernel), keeps its
/// permanent global addresses (not the others), comes up, and is gone from the host; a
/// virtual device dies with the namespace at delete, as the kernel does it.
#[test]
fn net_devices_move_in_renamed_with_their_addresses_and_up() {
    let a = Veth::new("nda");
    let t = Veth::new("ndt");
    ip_ok(&["addr", "add", "198.18.77.10/24", "dev", &a.0]);
    ip_ok(&["addr", "add", "2001:db8:10::10/64", "nodad", "dev", &a.0]);
    // Not permanent (a lifetime), not global (link scope): both stay behind.
    ip_ok(&[
        "addr",
        "add",
        "198.51.100.10/24",
        "valid_lft",
        "300",
        "preferred_lft",
        "300",
        "dev",
        &a.0,
    ]);
    ip_ok(&[
        "addr",
        "add",
        "169.254.10.10/16",
        "scope",
        "link",
        "dev",
        &a.0,
    ]);

    let b = Bundle::new();
    let mut c = b.config();
    c["process"]["args"] = json!(["sleep", "100"]);
    c["linux"]["netDevices"] = json!({ &a.0: {"name": "ctr0"}, &t.0: {"name": "eth%d"} });
    b.set_config(&c);
    let out = b.create();
    assert!(out.status.success(), "{}", stderr(&out));
    // Moved at create, before the container's command runs.
    assert!(!host_has_link(&a.0) && !host_has_link(&t.0));
    assert!(host_has_link(&a.peer()) && host_has_link(&t.peer()));
    assert!(b.rt(&["start", &b.id]).status.success());

    let inside = |cmd: &str| {
        let out = b.rt(&["exec", &b.id, "sh", "-c", cmd]);
        assert!(out.status.success(), "{cmd}: {}", stderr(&out));
        stdout(&out)
    };
    let names = inside("ls /sys/class/net");
    let mut names: Vec<&str> = names.split_whitespace().collect();
    names.sort();
    assert_eq!(names, ["ctr0", "eth0", "lo"]);
    for dev in ["ctr0", "eth0"] {
        let flags = inside(&format!("cat /sys/class/net/{dev}/flags"));
        let flags = u32::from_str_radix(flags.trim().trim_start_matches("0x"), 16).unwrap();
        assert_eq!(flags & 1, 1, "{dev} is not up: {flags:#x}");
    }
    let addrs = inside("ip -o addr show dev ctr0");
    assert!(
        addrs.contains("inet 198.18.77.10/24") && addrs.contains("global ctr0"),
        "{addrs}"
    );
    assert!(addrs.contains("inet6 2001:db8:10::10/64"), "{addrs}");
    assert!(
        !addrs.contains("198.51.100.10") && !addrs.contains("169.254.10.10"),
        "{addrs}"
    );
    // Reachable through the moved end: its host peer answers once up with an address.
    ip_ok(&["addr", "add", "198.18.77.11/24", "dev", &a.peer()]);
    ip_ok(&["link", "set", &a.peer(), "up"]);
    let out = b.rt(&[
        "exec",
        "--cap",
        "CAP_NET_RAW",
        &b.id,
        "ping",
        "-c",
        "1",
        "-W",
        "5",
        "198.18.77.11",
    ]);
    assert!(
        out.status.success(),
        "ping: {}{}",
        stdout(&out),
        stderr(&out)
    );

    let out = b.rt(&["delete", "--force", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The namespace died with the container: a veth is destroyed, its host peer with it
    // (physical devices go back to the host's namespace instead). The kernel frees the
    // namespace asynchronously.
    let deadline = Instant::now() + Duration::from_secs(10);
    while host_has_link(&a.peer()) || host_has_link(&t.peer()) {
        assert!(
            Instant::now() < deadline,
            "the veth peers outlived the container"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!host_has_link(&a.0) && !host_has_link(&t.0));
}

/// Into a network namespace joined by path, which outlives the container: the device stays
/// there after delete, under its new name (the spec forbids moving it back).
#[test]
fn net_devices_move_into_a_joined_namespace_and_stay_there() {
    let v = Veth::new("ndj");
    let ns = NetNs::new("ndj");
    ip_ok(&["addr", "add", "198.18.78.20/24", "dev", &v.0]);
    let b = Bundle::new();
    let mut c = b.config();
    c["process"]["args"] = json!(["sh", "-c", "ip -o addr show dev moved0"]);
    for n in c["linux"]["namespaces"].as_array_mut().unwrap() {
        if n["type"] == "network" {
            n["path"] = json!(ns.path());
        }
    }
    c["linux"]["netDevices"] = json!({ &v.0: {"name": "moved0"} });
    b.set_config(&c);
    let out = b.rt(&["run", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("inet 198.18.78.20/24"),
        "{}",
        stdout(&out)
    );
    assert!(!host_has_link(&v.0));
    let there = ip_ok(&["-n", &ns.0, "-o", "addr", "show", "dev", "moved0"]);
    assert!(there.contains("198.18.78.20/24"), "{there}");
}

/// A container in a user namespace of its own: its network namespace belongs to that user
/// namespace, and the runtime (root in the host's) still moves the device in.
#[test]
fn net_devices_move_into_a_container_with_its_own_user_namespace() {
    let v = Veth::new("ndu");
    ip_ok(&["addr", "add", "198.18.80.1/24", "dev", &v.0]);
    let b = Bundle::new();
    let st = Command::new("chown")
        .args(["-R", "200000:200000"])
        .arg(b.path().join("rootfs"))
        .status()
        .unwrap();
    assert!(st.success());
    let mut c = b.config();
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 200000, "size": 65536}]);
    c["linux"]["netDevices"] = json!({ &v.0: {"name": "in0"} });
    c["process"]["args"] = json!(["sh", "-c", "ip -o -4 addr show dev in0"]);
    b.set_config(&c);
    let out = b.rt(&["run", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("inet 198.18.80.1/24"),
        "{}",
        stdout(&out)
    );
    assert!(!host_has_link(&v.0));
}

/// Bad `linux.netDevices` fail `create` with one line naming the problem, before any device
/// has moved and with nothing left behind.
#[test]
fn bad_net_devices_are_refused_and_nothing_moves() {
    let v = Veth::new("ndb");
    let w = Veth::new("ndc");
    let b = Bundle::new();
    let base = b.config();
    let with = |devices: Value| {
        let mut c = base.clone();
        c["linux"]["netDevices"] = devices;
        b.set_config(&c);
    };

    with(json!({"hknosuchdev": {}}));
    assert_one_line_error(
        &b,
        &b.create(),
        "network device \"hknosuchdev\" does not exist in the runtime's network namespace",
    );

    with(json!({ &v.0: {"name": "x0"}, &w.0: {"name": "x0"} }));
    assert_one_line_error(&b, &b.create(), "would both be named \"x0\"");

    with(json!({ &v.0: {"name": "a/b"} }));
    assert_one_line_error(&b, &b.create(), "invalid network device name \"a/b\"");
    with(json!({ &v.0: {"name": "sixteen_chars_16"} }));
    assert_one_line_error(&b, &b.create(), "invalid network device name");

    // Taken inside: checked before anything moves, so the other device stays too.
    with(json!({ &v.0: {"name": "lo"}, &w.0: {} }));
    assert_one_line_error(
        &b,
        &b.create(),
        "a network device named \"lo\" already exists in the container's network namespace",
    );

    // Refused by the kernel once the container exists: its words reach the one line, and
    // the container is gone.
    with(json!({"lo": {"name": "lo2"}}));
    let out = b.create();
    assert_one_line_error(
        &b,
        &out,
        "move lo: Invalid argument (os error 22): The interface netns is immutable",
    );
    assert_eq!(
        stderr(&out).matches("immutable").count(),
        1,
        "{}",
        stderr(&out)
    );

    // The host's own namespace: by leaving the network namespace out, or by joining it.
    let mut c = base.clone();
    c["linux"]["netDevices"] = json!({ &v.0: {} });
    c["linux"]["namespaces"] = json!(c["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "network")
        .cloned()
        .collect::<Vec<_>>());
    b.set_config(&c);
    assert_one_line_error(
        &b,
        &b.create(),
        "moving network devices needs a network namespace",
    );
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "network", "path": "/proc/self/ns/net"}));
    b.set_config(&c);
    assert_one_line_error(&b, &b.create(), "is the runtime's own");

    assert!(host_has_link(&v.0) && host_has_link(&w.0));
}

/// containerd's shim passes `--log FILE --log-format json` and, when a command fails, reports
/// the last `"level":"error"` line's `msg` as the reason (e.g. "OCI runtime create failed:
/// ..."): a failure must land there, whole.
#[test]
fn errors_reach_the_json_log_as_the_shim_reads_them() {
    let b = Bundle::new();
    let mut c = b.config();
    c["linux"]["rootfsPropagation"] = json!("sideways");
    b.set_config(&c);
    let log = b.path().join("log.json");
    let out = b.rt(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--bundle",
        b.path().to_str().unwrap(),
        &b.id,
    ]);
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error", "{text}");
    assert!(
        last["msg"]
            .as_str()
            .unwrap()
            .contains("rootfsPropagation \"sideways\""),
        "{text}"
    );
    assert!(
        last["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{text}"
    );
}

/// linux.resources settings that hako-cgroups' limits do not carry reach the container's
/// cgroup files: cpu.burst, memory.useHierarchy (whose `false` this kernel refuses, said as
/// such), and memory.checkBeforeUpdate, with which `update` refuses a limit below the usage.
#[test]
fn burst_hierarchy_and_check_before_update() {
    let b = Bundle::new();
    b.set_args(&["sleep", "100"]);
    let mut c = b.config();
    c["linux"]["resources"]["cpu"] = json!({"quota": 100000, "period": 100000, "burst": 50000});
    c["linux"]["resources"]["memory"] = json!({"useHierarchy": true});
    b.set_config(&c);
    let out = b.rt(&["run", "-d", &b.id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        cgroup_file(&b.cgroup_dir("cpu"), "cpu.cfs_burst_us"),
        "50000"
    );
    assert_eq!(cgroup_file(&b.memory_cgroup(), "memory.use_hierarchy"), "1");

    let before = cgroup_file(&b.memory_cgroup(), "memory.limit_in_bytes");
    let doc = b.path().join("update.json");
    std::fs::write(
        &doc,
        r#"{"memory": {"limit": 4096, "checkBeforeUpdate": true}}"#,
    )
    .unwrap();
    let out = b.rt(&["update", "--resources", doc.to_str().unwrap(), &b.id]);
    assert!(!out.status.success());
    let e = stderr(&out);
    assert_eq!(e.trim_end().lines().count(), 1, "{e}");
    assert!(
        e.contains("below the container's current usage") && e.contains("checkBeforeUpdate"),
        "{e}"
    );
    assert_eq!(
        cgroup_file(&b.memory_cgroup(), "memory.limit_in_bytes"),
        before
    );
    assert!(b.rt(&["delete", "--force", &b.id]).status.success());

    c["linux"]["resources"]["memory"] = json!({"useHierarchy": false});
    b.set_config(&c);
    assert_one_line_error(&b, &b.create(), "linux.resources.memory.useHierarchy false");
}
