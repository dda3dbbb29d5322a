//! `hako build` where it differed from Docker's builder: the default PATH of a stage whose base
//! has none, ADD of compressed files that are not archives, and an interrupted build.

mod common;

use common::build::{ctx, write};
use common::{wait_for, Root};
use std::path::Path;
use std::process::Command;

fn build(r: &Root, ctx: &Path, args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    a.push(ctx.to_str().unwrap());
    r.run(&a)
}

fn env_of(r: &Root, image: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(&r.ok(&["image", "inspect", image])).unwrap();
    v[0]["Config"]["Env"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

const DOCKER_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's builders give every stage whose base has no PATH the default one, before the
/// stage's own ENV: `FROM scratch` images carry it; a base's own PATH is kept as it is.
#[test]
fn stage_without_path_gets_dockers_default() {
    let r = Root::with_busybox();
    let d = ctx();
    write(d.path(), "f", "x\n");
    write(d.path(), "Dockerfile", "FROM scratch\nENV A=1\nCOPY f /f\n");
    let (code, out, err) = build(&r, d.path(), &["-t", "parity-scratch"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(env_of(&r, "parity-scratch"), [DOCKER_PATH, "A=1"]);

    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nENV PATH=/opt/bin\nLABEL a=b\n",
    );
    let (code, out, err) = build(&r, d.path(), &["-t", "parity-own-path"]);
    assert_eq!(code, 0, "{out}{err}");
    write(d.path(), "Dockerfile", "FROM parity-own-path\nLABEL c=d\n");
    let (code, out, err) = build(&r, d.path(), &["-t", "parity-child"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(env_of(&r, "parity-child"), ["PATH=/opt/bin"]);
}

fn gzip(path: &Path) {
    let st = Command::new("gzip").arg("-nf").arg(path).status().unwrap();
    assert!(st.success());
}

/// `ADD notes.gz /dir/` copies a gzip file that holds no tar as it is (it failed with "failed
/// to read entire block"); a gzipped tar is still extracted, and a broken one fails naming
/// the Dockerfile line and the file.
#[test]
fn add_copies_compressed_non_archives() {
    let r = Root::with_busybox();
    let d = ctx();
    write(d.path(), "notes", &"plain notes\n".repeat(50));
    gzip(&d.path().join("notes"));
    write(d.path(), "t/inner.txt", "inside\n");
    let st = Command::new("tar")
        .args(["-czf", "a.tar.gz", "-C", "t", "inner.txt"])
        .current_dir(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    // Docker's other compressions: bzip2 and xz.
    for (flag, name) in [("-cjf", "b.tar.bz2"), ("-cJf", "c.tar.xz")] {
        let st = Command::new("tar")
            .args([flag, name, "-C", "t", "inner.txt"])
            .current_dir(d.path())
            .status()
            .unwrap();
        assert!(st.success(), "tar {flag}");
    }
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nADD notes.gz /dir/\nADD a.tar.gz /x/\nADD b.tar.bz2 /b/\nADD c.tar.xz /c/\n",
    );
    let (code, out, err) = build(&r, d.path(), &["-t", "parity-add"]);
    assert_eq!(code, 0, "{out}{err}");
    let got = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "parity-add",
        "sh",
        "-c",
        "gunzip -c /dir/notes.gz | wc -l; cat /x/inner.txt /b/inner.txt /c/inner.txt",
    ]);
    assert_eq!(
        got.split_whitespace().collect::<Vec<_>>(),
        ["50", "inside", "inside", "inside"]
    );

    // A tar whose only file is cut short, gzipped: an archive, but a broken one.
    let big = d.path().join("big");
    std::fs::write(&big, vec![b'a'; 20_000]).unwrap();
    let st = Command::new("tar")
        .args(["-cf", "bad.tar", "big"])
        .current_dir(d.path())
        .status()
        .unwrap();
    assert!(st.success());
    let tar = std::fs::read(d.path().join("bad.tar")).unwrap();
    std::fs::write(d.path().join("bad.tar"), &tar[..2048]).unwrap();
    gzip(&d.path().join("bad.tar"));
    write(d.path(), "Dockerfile", "FROM busybox\nADD bad.tar.gz /y/\n");
    let (code, out, err) = build(&r, d.path(), &["-t", "parity-bad"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("Dockerfile line 2: ADD bad.tar.gz: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

/// Ctrl-C during a RUN step stops the step at once (it ran out the 10 s stop timeout and then
/// reported `returned a non-zero code: 137`), removes its container, and ends the build as
/// Docker's CLI does: silently, with 130.
#[test]
fn interrupted_run_step_stops_at_once() {
    use std::io::Read;
    let r = Root::with_busybox();
    let d = ctx();
    write(d.path(), "Dockerfile", "FROM busybox\nRUN sleep 100\n");
    let mut child = r
        .cmd(&[
            "build",
            "-t",
            "parity-interrupted",
            d.path().to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_for(20, || !r.ok(&["ps", "-q"]).trim().is_empty()),
        "the step never started"
    );
    // Let the step's command get going, as a user's Ctrl-C would find it.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = child.wait().unwrap();
    let took = sent.elapsed();
    let (mut out, mut err) = (String::new(), String::new());
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    assert_eq!(status.code(), Some(130), "{out}{err}");
    assert!(out.contains("Running in "), "{out}");
    assert_eq!(err, "", "{out}");
    assert_eq!(r.ok(&["ps", "-aq"]), "");
    let (code, _, _) = r.run(&["image", "inspect", "parity-interrupted"]);
    assert_eq!(code, 1);
    // No half-written layer or scratch directory stays for the next command to sweep.
    let left: Vec<_> = std::fs::read_dir(r.path().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}
