//! `hako cp` in both directions, tar streams, and symlinks that try to leave the container.

mod common;

use common::{wait_for, Root};
use std::time::{Duration, Instant};

/// What a tar entry holds.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    File(String),
    Dir,
    Symlink(String),
    Other,
}

/// The entries of a tar stream: path and what it is.
fn entries(tar_bytes: &[u8]) -> Vec<(String, Kind)> {
    use std::io::Read;
    let mut out = Vec::new();
    let mut ar = tar::Archive::new(tar_bytes);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let kind = match e.header().entry_type() {
            tar::EntryType::Regular => {
                let mut s = String::new();
                e.read_to_string(&mut s).unwrap();
                Kind::File(s)
            }
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink(
                e.link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            ),
            _ => Kind::Other,
        };
        out.push((path, kind));
    }
    out
}

#[test]
fn copy_in_and_out_of_running_and_stopped_containers() {
    let r = Root::with_busybox();
    let host = tempfile::tempdir().unwrap();
    let src = host.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a"), "a\n").unwrap();
    std::fs::write(src.join("sub/b"), "b\n").unwrap();
    std::os::unix::fs::symlink("/etc/hostname", src.join("link")).unwrap();

    r.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "100"]);
    r.ok(&["cp", src.to_str().unwrap(), "box:/tmp"]);
    assert_eq!(
        entries(&r.hako(&["cp", "box:/tmp/src/sub/b", "-"]).stdout),
        [("b".into(), Kind::File("b\n".into()))]
    );
    let out = host.path().join("out");
    r.ok(&["cp", "box:/tmp/src", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("sub/b")).unwrap(), "b\n");
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        std::path::Path::new("/etc/hostname")
    );
    // Symlinks named as SRC: copied as links, as Docker's; `-L` copies what they point to.
    let link = src.join("link");
    r.ok(&["cp", link.to_str().unwrap(), "box:/tmp/l1"]);
    r.ok(&[
        "cp",
        "-L",
        src.join("sub/../link").to_str().unwrap(),
        "box:/tmp/l2",
    ]);
    assert_eq!(
        r.ok(&["exec", "box", "readlink", "/tmp/l1"]),
        "/etc/hostname\n"
    );
    let host_name = std::fs::read_to_string("/etc/hostname").unwrap();
    assert_eq!(r.ok(&["exec", "box", "cat", "/tmp/l2"]), host_name);
    r.ok(&["exec", "box", "ln", "-s", "/tmp/src/a", "/tmp/la"]);
    let (la, la_l) = (host.path().join("la"), host.path().join("la-l"));
    r.ok(&["cp", "box:/tmp/la", la.to_str().unwrap()]);
    r.ok(&["cp", "-L", "box:/tmp/la", la_l.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_link(&la).unwrap(),
        std::path::Path::new("/tmp/src/a")
    );
    assert_eq!(std::fs::read_to_string(&la_l).unwrap(), "a\n");
    // The container keeps running after the copy (it was frozen only meanwhile).
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.State.Status}}", "box"]),
        "running\n"
    );
    r.ok(&["stop", "-t", "0", "box"]);

    // A stopped container's filesystem is assembled for the copy.
    let a = host.path().join("a-copy");
    r.ok(&["cp", "box:/tmp/src/a", a.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&a).unwrap(), "a\n");
    let (code, _, err) = r.run(&["cp", "box:/nonexistent", host.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Could not find the file /nonexistent"),
        "{err}"
    );
    r.ok(&["rm", "box"]);
}

#[test]
fn container_symlinks_cannot_reach_the_host() {
    let r = Root::with_busybox();
    r.ok(&[
        "run",
        "-d",
        "--name",
        "evil",
        "busybox",
        "sh",
        "-c",
        "ln -s / /escape; ln -s /etc/passwd /pw; sleep 100",
    ]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let host = tempfile::tempdir().unwrap();
    let marker = format!("hako-cp-escape-{}", std::process::id());
    let file = host.path().join(&marker);
    std::fs::write(&file, "payload\n").unwrap();
    // Writing through /escape lands in the container's /tmp, not the host's.
    r.ok(&["cp", file.to_str().unwrap(), "evil:/escape/tmp/"]);
    assert!(
        !std::path::Path::new("/tmp").join(&marker).exists(),
        "cp followed a container symlink to the host"
    );
    let back = host.path().join("back");
    r.ok(&["cp", &format!("evil:/tmp/{marker}"), back.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&back).unwrap(), "payload\n");
    // Reading through a symlink resolves inside the container too.
    let pw = host.path().join("pw");
    r.ok(&["cp", "evil:/escape/etc/passwd", pw.to_str().unwrap()]);
    assert!(
        std::fs::read_to_string(&pw)
            .unwrap()
            .contains("hako:x:1234"),
        "the container's passwd, not the host's"
    );
    // A destination that is a symlink is followed as Docker's CLI follows it, inside the
    // container: one naming a host path creates that path in the container.
    let victim = host.path().join("victim");
    std::fs::write(&victim, "host\n").unwrap();
    let link = format!("ln -s {} /planted", victim.display());
    r.ok(&["exec", "evil", "sh", "-c", &link]);
    r.ok(&["cp", file.to_str().unwrap(), "evil:/planted"]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host\n");
    let inside = r.ok(&["exec", "evil", "cat", victim.to_str().unwrap()]);
    assert_eq!(inside, "payload\n");
    r.ok(&["rm", "-f", "evil"]);
}

#[test]
fn a_file_copied_to_a_tar_stream_is_its_content() {
    let r = Root::with_busybox();
    r.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /d/sub && echo hi > /d/f && echo deep > /d/sub/g && ln -s / /d/up \
         && ln -s /etc/passwd /d/pw && mkfifo /d/fifo && echo data > /file && touch /ready \
         && sleep 1000",
    ]);
    assert!(wait_for(10, || r
        .run(&["exec", "box", "test", "-e", "/ready"])
        .0
        == 0));
    let dir_entries = || {
        vec![
            ("d".to_string(), Kind::Dir),
            ("d/f".into(), Kind::File("hi\n".into())),
            ("d/fifo".into(), Kind::Other),
            ("d/pw".into(), Kind::Symlink("/etc/passwd".into())),
            ("d/sub".into(), Kind::Dir),
            ("d/sub/g".into(), Kind::File("deep\n".into())),
            ("d/up".into(), Kind::Symlink("/".into())),
        ]
    };
    for state in ["running", "exited"] {
        // A file: one regular entry with its content (not a symlink to /proc/self/fd/N, nor,
        // stopped, to a path of the state root).
        let out = r.hako(&["cp", "box:/file", "-"]);
        assert!(out.status.success(), "{state}");
        assert_eq!(
            entries(&out.stdout),
            [("file".into(), Kind::File("data\n".into()))],
            "{state}"
        );
        // A symlink is copied as the symlink, as Docker's; with -L what it points to,
        // resolved in the container: its passwd, not the host's.
        assert_eq!(
            entries(&r.hako(&["cp", "box:/d/pw", "-"]).stdout),
            [("pw".into(), Kind::Symlink("/etc/passwd".into()))],
            "{state}"
        );
        let pw = entries(&r.hako(&["cp", "-L", "box:/d/pw", "-"]).stdout);
        assert!(
            matches!(&pw[..], [(n, Kind::File(t))] if n == "pw" && t.contains("hako:x:1234")),
            "{state}: {pw:?}"
        );
        // A directory: symlinks stay symlinks, never followed to the host.
        assert_eq!(
            entries(&r.hako(&["cp", "box:/d", "-"]).stdout),
            dir_entries(),
            "{state}"
        );
        let mut contents = entries(&r.hako(&["cp", "box:/d/.", "-"]).stdout);
        assert_eq!(contents.remove(0), (".".into(), Kind::Dir), "{state}");
        assert_eq!(
            contents.len(),
            dir_entries().len() - 1,
            "{state}: {contents:?}"
        );
        if state == "running" {
            r.ok(&["stop", "-t", "0", "box"]);
        }
    }
    r.ok(&["rm", "box"]);
}

/// The freezer state of a container's cgroup (v1), or `cgroup.freeze` on v2.
fn frozen(r: &Root, name: &str) -> bool {
    r.ok(&["inspect", "-f", "{{.State.Status}}", name]) == "paused\n"
}

/// Runs `hako args` and waits at most `secs` for it; a command that hangs (in a frozen
/// container) is killed and reported as `None`.
fn run_within(r: &Root, args: &[&str], secs: u64) -> Option<i32> {
    let mut child = r
        .cmd(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn killing_cp_never_leaves_the_container_frozen() {
    let r = Root::with_busybox();
    r.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/big bs=1M count=48 2>/dev/null && mkdir -p /tree && \
         for i in $(seq 200); do echo $i > /tree/$i; done && touch /ready && sleep 1000",
    ]);
    assert!(wait_for(30, || r
        .run(&["exec", "box", "test", "-e", "/ready"])
        .0
        == 0));
    let host = tempfile::tempdir().unwrap();
    let out = host.path().join("out");
    // kill -9 at points spread over the copy's life, both directions and both sinks.
    for trial in 0..15u64 {
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_file(&out);
        let args: Vec<&str> = match trial % 3 {
            0 => vec!["cp", "box:/big", out.to_str().unwrap()],
            1 => vec!["cp", "box:/tree", "-"],
            _ => vec!["cp", "/etc/services", "box:/tmp/"],
        };
        let mut cp = r
            .cmd(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(15 + trial * 11 % 60));
        let _ = cp.kill();
        cp.wait().unwrap();
        assert!(
            !frozen(&r, "box"),
            "trial {trial}: the container stayed frozen"
        );
        assert_eq!(
            run_within(&r, &["exec", "box", "true"], 10),
            Some(0),
            "trial {trial}: exec hangs"
        );
    }
    // A container the user paused stays paused through a copy.
    r.ok(&["pause", "box"]);
    r.ok(&["cp", "box:/tree/7", out.to_str().unwrap()]);
    assert!(frozen(&r, "box"), "cp thawed a paused container");
    r.ok(&["unpause", "box"]);
    r.ok(&["rm", "-f", "box"]);
}
