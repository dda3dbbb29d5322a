//! `hako build` with `ADD` of a git repository, served by a `git daemon` of the test's own on
//! 127.0.0.1 (no internet).

mod common;

use common::build::{git, write, GitDaemon as Daemon};

use common::Root;
use std::process::Command;

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
