//! `hako build` with `ADD` of a git repository, served by a `git daemon` of the test's own on
//! 127.0.0.1 (no internet).

mod common;

use common::build::write;

use common::Root;
use std::path::Path;
use std::process::{Command, Stdio};

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

/// `git daemon` runs `git-daemon` as a child of its own, which a kill of `git` would leave
/// serving forever: start the daemon binary itself, so its pid is the one stopped.
fn git_daemon() -> std::path::PathBuf {
    let out = Command::new("git").arg("--exec-path").output().unwrap();
    assert!(out.status.success(), "git --exec-path");
    Path::new(String::from_utf8_lossy(&out.stdout).trim()).join("git-daemon")
}

/// A `git daemon` serving `base` on a free port of 127.0.0.1, stopped by its pid when dropped.
struct Daemon {
    child: std::process::Child,
    port: u16,
}

impl Daemon {
    fn start(base: &Path) -> Daemon {
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut child = Command::new(git_daemon())
                .arg(format!("--base-path={}", base.display()))
                .args(["--export-all", "--reuseaddr", "--listen=127.0.0.1"])
                .arg(format!("--port={port}"))
                .arg(base)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let up = common::wait_for(5, || {
                std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    || child.try_wait().ok().flatten().is_some()
            });
            if up && child.try_wait().ok().flatten().is_none() {
                return Daemon { child, port };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("git daemon did not start");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ADD of a repository at its HEAD, at a tag with a subdirectory, and with `--keep-git-dir`;
/// the files and their modes arrive without `.git` (unless kept); a rebuild is all cache until
/// the branch gets a new commit; a missing ref or subdirectory and a host without git are
/// clear errors on the line, and nothing is left in the root's tmp/.
#[test]
fn add_a_git_repository() {
    if Command::new("git").arg("--version").output().is_err() {
        eprintln!("SKIPPED add_a_git_repository: git is not installed on this host");
        return;
    }
    let serve = tempfile::Builder::new()
        .prefix("hako-git-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let src = serve.path().join("src");
    std::fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q", "-b", "main"]);
    write(&src, "README", "one\n");
    write(&src, "docs/site/index.html", "page v1\n");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(src.join("README"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-q", "-m", "one"]);
    git(&src, &["tag", "v1"]);
    write(&src, "docs/site/index.html", "page v2\n");
    git(&src, &["commit", "-q", "-am", "two"]);
    let st = Command::new("git")
        .args(["clone", "-q", "--bare"])
        .arg(&src)
        .arg(serve.path().join("repo.git"))
        .status()
        .unwrap();
    assert!(st.success());
    let daemon = Daemon::start(serve.path());
    let url = format!("git://127.0.0.1:{}/repo.git", daemon.port);

    let r = Root::with_busybox();
    let d = tempfile::Builder::new()
        .prefix("hako-build-ctx-")
        .tempdir_in("/var/tmp")
        .unwrap();
    write(
        d.path(),
        "Dockerfile",
        &format!(
            "FROM busybox\n\
             ADD {url} /src\n\
             ADD {url}#v1:docs /docs/\n\
             ADD --keep-git-dir=true {url}#main /kept\n\
             RUN cat /src/README /src/docs/site/index.html /docs/site/index.html && stat -c %a /src/README && test ! -e /src/.git && test ! -e /docs/.git && test -d /kept/.git && echo layout-ok\n"
        ),
    );
    let ctx = d.path().to_str().unwrap();
    let (code, out, err) = r.run(&["build", "-t", "git:1", ctx]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("one\npage v2\npage v1\n755\nlayout-ok\n"),
        "{out}"
    );
    let (code, out, err) = r.run(&["build", "-t", "git:1", ctx]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches(" ---> Using cache").count(), 4, "{out}");

    // A new commit on main.
    write(&src, "README", "three\n");
    git(&src, &["commit", "-q", "-am", "three"]);
    git(
        &src,
        &[
            "push",
            "-q",
            serve.path().join("repo.git").to_str().unwrap(),
            "main",
        ],
    );
    let (code, out, err) = r.run(&["build", "-t", "git:1", ctx]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\nthree\npage v2\npage v1\n"), "{out}");
    // The first ADD's commit changed, so it and every later step run again.
    assert!(!out.contains("Using cache"), "{out}");

    for (line, want) in [
        (
            format!("ADD {url}#nope /x"),
            "couldn't find remote ref nope",
        ),
        (
            format!("ADD {url}#main:nodir /x"),
            "no directory nodir in the repository at ",
        ),
        (
            format!("ADD {url}#main:../../etc /x"),
            "subdirectory \"../../etc\" is outside the repository",
        ),
    ] {
        write(d.path(), "Dockerfile", &format!("FROM busybox\n{line}\n"));
        let (code, out, err) = r.run(&["build", ctx]);
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            err.contains(&format!("line 2: {}: ", line.split(" /x").next().unwrap()))
                && err.contains(want),
            "{err}"
        );
    }
    // A host without git.
    write(
        d.path(),
        "Dockerfile",
        &format!("FROM busybox\nADD {url} /x\n"),
    );
    let o = r
        .cmd(&["build", ctx])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("line 2: ADD git://") && err.contains("git is not installed on this host"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(r.path().join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "nothing left in tmp/: {left:?}");
    drop(daemon);
}
