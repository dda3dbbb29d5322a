//! `hako build` inputs beyond a context directory: a tar context on stdin, base images pulled
//! from a registry (missing, or `--pull`), `--platform`, `--rm=false`, ADD of URLs.

mod common;

use common::build::{ctx, write};

use common::peers::Registry;
use common::Root;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};

fn with_stdin(r: &Root, args: &[&str], input: &[u8]) -> (i32, String, String) {
    let mut c = r.cmd(args);
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let o = child.wait_with_output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A context as a tar on stdin, with -f naming a Dockerfile inside it.
#[test]
fn tar_context_on_stdin() {
    let r = Root::with_busybox();
    let d = ctx();
    write(
        d.path(),
        "sub/Dockerfile.alt",
        "FROM busybox\nCOPY hello.txt /\n",
    );
    write(d.path(), "hello.txt", "from the tar\n");
    let tar = Command::new("tar")
        .args(["-C", d.path().to_str().unwrap(), "-czf", "-", "."])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let (code, out, err) = with_stdin(
        &r,
        &["build", "-f", "sub/Dockerfile.alt", "-t", "fromtar:1", "-"],
        &tar.stdout,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        r.ok(&["run", "--rm", "fromtar:1", "cat", "/hello.txt"]),
        "from the tar\n"
    );
    // The same tar again: the COPY is cached although the context lives elsewhere now.
    let (code, again, err) = with_stdin(
        &r,
        &["build", "-f", "sub/Dockerfile.alt", "-t", "fromtar:1", "-"],
        &tar.stdout,
    );
    assert_eq!(code, 0, "{again}{err}");
    assert!(again.contains(" ---> Using cache"), "{again}");
    let left: Vec<_> = std::fs::read_dir(r.path().join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "the unpacked context is removed: {left:?}");
    r.ok(&["rmi", "fromtar:1"]);
}

/// A `--platform` that cannot run here is refused (emulated builds are in platform.rs);
/// `--rm=false` keeps the step containers, `--force-rm` does not.
#[test]
fn platform_and_rm() {
    let r = Root::with_busybox();
    let d = ctx();
    write(d.path(), "Dockerfile", "FROM busybox\nRUN echo kept > /k\n");
    let c = d.path().to_str().unwrap();
    // An architecture no emulator can be registered for, whatever the host has.
    let (code, _, err) = r.run(&["build", "--platform", "linux/vax", c]);
    assert_eq!(code, 1);
    assert!(
        err.contains("platform \"linux/vax\": image platform linux/vax cannot run on this host"),
        "{err}"
    );
    write(
        d.path(),
        "Dockerfile",
        "FROM --platform=linux/vax busybox\nRUN true\n",
    );
    let (code, _, err) = r.run(&["build", c]);
    assert_ne!(code, 0);
    assert!(err.contains("line 1"), "{err}");

    write(
        d.path(),
        "Dockerfile",
        "FROM --platform=$BUILDPLATFORM busybox\nRUN echo kept > /k\n",
    );
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let plat = format!("linux/{arch}");
    let (code, out, err) = r.run(&["build", "--platform", &plat, "--rm=false", c]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("Removing intermediate container"), "{out}");
    let kept = r.ok(&["ps", "-aq"]);
    assert_eq!(kept.lines().count(), 1, "{kept}");
    r.ok(&["rm", kept.trim()]);
    let (code, out, err) = r.run(&["build", "--no-cache", "--rm=false", "--force-rm", c]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Removing intermediate container"), "{out}");
    assert_eq!(r.ok(&["ps", "-aq"]), "");
}

/// A FROM image missing locally is pulled; `--pull` pulls one that is present.
#[test]
fn base_images_are_pulled() {
    let reg = Registry::start();
    let base = format!("127.0.0.1:{}/base:1", reg.port);
    {
        let a = Root::with_busybox();
        a.ok(&["tag", "busybox", &base]);
        a.ok(&["push", &base]);
    }
    let r = Root::new();
    let d = ctx();
    write(
        d.path(),
        "Dockerfile",
        &format!("FROM {base}\nRUN echo pulled > /p\n"),
    );
    let c = d.path().to_str().unwrap();
    let (code, out, err) = r.run(&["build", "-t", "pulled:1", c]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Pulling from base"), "{out}");
    assert_eq!(r.ok(&["run", "--rm", "pulled:1", "cat", "/p"]), "pulled\n");
    let (code, out, err) = r.run(&["build", "-t", "pulled:1", c]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !out.contains("Pulling from"),
        "present: not pulled again: {out}"
    );
    let (code, out, err) = r.run(&["build", "--pull", "-t", "pulled:1", c]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Pulling from base"), "{out}");
    assert!(
        out.contains(" ---> Using cache"),
        "same base, same cache: {out}"
    );
    r.ok(&["rmi", "pulled:1"]);
    r.ok(&["rmi", &base]);
}

/// Serves `body` at /file.txt (404 elsewhere) on a loopback port, from a thread of the test.
fn serve(body: &'static str) -> u16 {
    use std::io::{BufRead, BufReader};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let mut s = s;
            let resp = if first.starts_with("GET /dl/file.txt ") {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            };
            let _ = s.write_all(resp.as_bytes());
        }
    });
    port
}

/// ADD of an http URL: the file lands with mode 0600 under the URL's name, is cached by
/// content, and --checksum is verified; a 404 fails on the line.
#[test]
fn add_url_with_checksum() {
    let r = Root::with_busybox();
    let port = serve("remote content\n");
    let d = ctx();
    let c = d.path().to_str().unwrap();
    let url = format!("http://127.0.0.1:{port}/dl/file.txt");
    // sha256 of "remote content\n".
    let sum = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"remote content\n"))
    };
    write(
        d.path(),
        "Dockerfile",
        &format!("FROM busybox\nADD {url} /srv/\nADD --checksum=sha256:{sum} {url} /named.txt\n"),
    );
    let (code, out, err) = r.run(&["build", "-t", "url:1", c]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        r.ok(&["run", "--rm", "url:1", "cat", "/srv/file.txt", "/named.txt"]),
        "remote content\nremote content\n"
    );
    assert_eq!(
        r.ok(&["run", "--rm", "url:1", "stat", "-c", "%a", "/srv/file.txt"]),
        "600\n"
    );
    let (code, again, err) = r.run(&["build", "-t", "url:1", c]);
    assert_eq!(code, 0, "{again}{err}");
    assert_eq!(again.matches(" ---> Using cache").count(), 2, "{again}");

    write(
        d.path(),
        "Dockerfile",
        &format!(
            "FROM busybox\nADD --checksum=sha256:{} {url} /x\n",
            "0".repeat(64)
        ),
    );
    let (code, _, err) = r.run(&["build", c]);
    assert_ne!(code, 0);
    assert!(
        err.contains("line 2") && err.contains("checksum mismatch"),
        "{err}"
    );
    write(
        d.path(),
        "Dockerfile",
        &format!("FROM busybox\nADD http://127.0.0.1:{port}/nope /x\n"),
    );
    let (code, _, err) = r.run(&["build", c]);
    assert_ne!(code, 0);
    assert!(err.contains("line 2") && err.contains("404"), "{err}");
    let left: Vec<_> = std::fs::read_dir(r.path().join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "downloads are removed: {left:?}");
    r.ok(&["rmi", "url:1"]);
}

/// `--cache-from`: with the step cache emptied, an image built from the same Dockerfile
/// stands in for its RUN and COPY steps (nothing runs); a changed step runs again.
#[test]
fn cache_from_an_image() {
    let r = Root::with_busybox();
    let d = ctx();
    write(d.path(), "f.txt", "content\n");
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nRUN echo a > /a\nCOPY f.txt /f\nENV X=1\n",
    );
    let c = d.path().to_str().unwrap();
    let (code, out, err) = r.run(&["build", "-t", "src:1", c]);
    assert_eq!(code, 0, "{out}{err}");
    r.ok(&["builder", "prune", "-af"]);
    let (code, out, err) = r.run(&["build", "--cache-from", "src:1", "-t", "dst:1", c]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("Running in"), "{out}");
    assert_eq!(out.matches(" ---> Using cache").count(), 2, "{out}");
    assert_eq!(
        r.ok(&["run", "--rm", "dst:1", "cat", "/a", "/f"]),
        "a\ncontent\n"
    );
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nRUN echo b > /a\nCOPY f.txt /f\n",
    );
    let (code, out, err) = r.run(&["build", "--cache-from", "src:1", c]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Running in") && !out.contains("Using cache"),
        "{out}"
    );
    let (code, _, err) = r.run(&["build", "--cache-from", "nosuch.invalid/x:1", c]);
    assert_eq!(code, 0, "a missing cache source only warns: {err}");
    assert!(
        err.contains("WARNING: --cache-from nosuch.invalid/x:1"),
        "{err}"
    );
    r.ok(&["rmi", "src:1"]);
    r.ok(&["rmi", "dst:1"]);
}

/// Docker's predefined ARGs: proxy build args reach RUN without an ARG and stay out of the
/// history and the unused-args warning; TARGETARCH and friends are global ARGs. `-t` may be
/// given more than once, `--label` adds labels, `-q` prints only the id.
#[test]
fn predefined_args_tags_labels() {
    let r = Root::with_busybox();
    let d = ctx();
    write(
        d.path(),
        "Dockerfile",
        "ARG TARGETARCH\nFROM busybox\nARG TARGETARCH\nRUN echo \"$HTTP_PROXY $TARGETARCH\" > /seen\n",
    );
    let c = d.path().to_str().unwrap();
    let (code, out, err) = r.run(&[
        "build",
        "--build-arg",
        "HTTP_PROXY=http://proxy.invalid:3128",
        "-t",
        "one:1",
        "-t",
        "two:2",
        "--label",
        "org.example=yes",
        c,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Successfully tagged one:1\nSuccessfully tagged two:2\n"),
        "{out}"
    );
    assert!(!out.contains("were not consumed"), "{out}");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    assert_eq!(
        r.ok(&["run", "--rm", "two:2", "cat", "/seen"]),
        format!("http://proxy.invalid:3128 {arch}\n")
    );
    let history = r.ok(&["history", "--no-trunc", "one:1"]);
    assert!(!history.contains("proxy.invalid"), "{history}");
    let inspect: serde_json::Value =
        serde_json::from_str(&r.ok(&["image", "inspect", "one:1"])).unwrap();
    assert_eq!(
        inspect[0]["Config"]["Labels"]["org.example"], "yes",
        "{inspect}"
    );
    let (code, out, _) = r.run(&["build", "-q", c]);
    assert_eq!(code, 0);
    assert!(
        out.trim().starts_with("sha256:") && out.lines().count() == 1,
        "{out}"
    );
    r.ok(&["rmi", "one:1", "two:2"]);
}
