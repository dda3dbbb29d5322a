//! `hako cp` in both directions, tar streams, and symlinks that try to leave the container.

mod common;

use common::Root;

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
    assert!(
        !r.ok(&["cp", "box:/tmp/src/sub/b", "-"]).is_empty(),
        "a tar stream"
    );
    let out = host.path().join("out");
    r.ok(&["cp", "box:/tmp/src", out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("sub/b")).unwrap(), "b\n");
    assert_eq!(
        std::fs::read_link(out.join("link")).unwrap(),
        std::path::Path::new("/etc/hostname")
    );
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
    r.ok(&["rm", "-f", "evil"]);
}
