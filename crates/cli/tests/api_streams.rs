//! The service's streams that follow something another process writes (`wait`, `logs -f`,
//! `events`, attach): they sleep until the change, and end when their client goes.

mod common;

use common::service::{request_on, Service};
use common::{wait_for, Root};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

const DOCKER: &str = "/usr/local/bin/docker";

fn spawn(svc: &Service, args: &[&str]) -> Child {
    svc.client(DOCKER)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn output(c: Child) -> String {
    let out = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn followers_sleep_until_the_change() {
    if !std::path::Path::new(DOCKER).exists() {
        eprintln!("skipped: {DOCKER} is not installed");
        return;
    }
    let root = Root::with_busybox();
    let svc = Service::start(&root);
    svc.ok(
        DOCKER,
        &[
            "run",
            "-d",
            "--name",
            "quiet",
            "busybox",
            "sh",
            "-c",
            "echo hi; sleep 300",
        ],
    );
    assert!(wait_for(10, || svc.ok(DOCKER, &["logs", "quiet"]) == "hi\n"));
    let wait = spawn(&svc, &["wait", "quiet"]);
    let logs = spawn(&svc, &["logs", "-f", "quiet"]);
    let events = spawn(&svc, &["events", "--format", "{{.Action}}"]);
    let attach = spawn(&svc, &["attach", "--no-stdin", "quiet"]);
    std::thread::sleep(Duration::from_secs(1));
    // Four followers of a container that does nothing: the service sleeps. Looking every
    // 25 ms (a database open and a query each time) cost it several hundred ms in 3 s.
    let before = svc.cpu_ms();
    std::thread::sleep(Duration::from_secs(3));
    let used = svc.cpu_ms() - before;
    assert!(used <= 60, "the idle service used {used} ms of CPU in 3 s");

    // Each wakes on its event.
    let t = Instant::now();
    svc.ok(DOCKER, &["kill", "quiet"]);
    assert_eq!(output(wait), "137\n");
    assert_eq!(output(logs), "hi\n");
    assert_eq!(output(attach), "");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    // The journal's events reach the follower (at the latest by its backstop).
    std::thread::sleep(Duration::from_millis(1500));
    // SAFETY: signalling our own child, not yet reaped.
    unsafe { libc::kill(events.id() as i32, libc::SIGTERM) };
    let ev = output(events);
    assert!(ev.contains("kill\n") && ev.contains("die\n"), "{ev}");
    svc.ok(DOCKER, &["rm", "quiet"]);
}

/// Docker's 8-byte frames of a multiplexed stream: (stream, payload) each.
fn frames(mut b: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    while b.len() >= 8 {
        let n = u32::from_be_bytes([b[4], b[5], b[6], b[7]]) as usize;
        let end = (8 + n).min(b.len());
        out.push((b[0], String::from_utf8_lossy(&b[8..end]).into_owned()));
        b = &b[end..];
    }
    out
}

/// `attach?logs=1` (compose's `up` and docker-py's `attach(logs=True)` ask for it) replays what
/// the container wrote before the attach, then streams on; websocket attach is a 501 naming it.
#[test]
fn attach_with_logs_replays_the_log_first() {
    let root = Root::with_busybox();
    let svc = Service::start(&root);
    root.ok(&[
        "run",
        "-d",
        "--name",
        "replay",
        "busybox",
        "sh",
        "-c",
        "echo one; echo eins >&2; sleep 2; echo two",
    ]);
    assert!(wait_for(10, || root
        .ok(&["logs", "replay"])
        .contains("one")));
    // Without `stream`: the log so far, then the end.
    let (status, body) = request_on(
        &svc.socket,
        "POST",
        "/containers/replay/attach?logs=1&stdout=1&stderr=1",
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        frames(body.as_bytes()),
        [(1, "one\n".to_string()), (2, "eins\n".to_string())]
    );
    // With it: the log so far, then what comes, until the container ends.
    let (status, body) = request_on(
        &svc.socket,
        "POST",
        "/containers/replay/attach?logs=1&stream=1&stdout=1",
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        frames(body.as_bytes()),
        [(1, "one\n".to_string()), (1, "two\n".to_string())]
    );
    let (status, body) = svc.request("GET", "/containers/replay/attach/ws?stream=1", None);
    assert_eq!(status, 501, "{body}");
    assert!(body.contains("websocket"), "{body}");
    root.ok(&["rm", "replay"]);
}

#[test]
fn a_wait_whose_client_went_does_not_hold_the_service() {
    if !std::path::Path::new(DOCKER).exists() {
        eprintln!("skipped: {DOCKER} is not installed");
        return;
    }
    let root = Root::with_busybox();
    root.ok(&["run", "-d", "--name", "long", "busybox", "sleep", "300"]);
    let socket = root.path().join("idle.sock");
    let mut svc = std::process::Command::new(common::hako_bin())
        .args(["system", "service", "--time", "1"])
        .arg(format!("unix://{}", socket.display()))
        .env("HAKO_ROOT", root.path())
        .spawn()
        .unwrap();
    assert!(wait_for(10, || std::os::unix::net::UnixStream::connect(
        &socket
    )
    .is_ok()));
    let mut wait = std::process::Command::new(DOCKER)
        .args([
            "-H",
            &format!("unix://{}", socket.display()),
            "wait",
            "long",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    assert!(wait.try_wait().unwrap().is_none(), "the wait ended early");
    wait.kill().unwrap();
    let _ = wait.wait();
    // The engine's wait in the service ends with its client, so the idle timer runs out.
    let t = Instant::now();
    assert!(
        wait_for(15, || svc.try_wait().unwrap().is_some()),
        "the service still runs {:?} after its last client went",
        t.elapsed()
    );
    assert!(root.ok(&["ps", "-q"]).trim().len() == 12);
    root.ok(&["rm", "-f", "long"]);
}

/// The processes whose command line holds `needle`, with this root's path too.
fn processes_with(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().parse::<u32>().is_err() {
            continue;
        }
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                out.push(format!("{}: {c}", e.file_name().to_string_lossy()));
            }
        }
    }
    out
}

#[test]
fn a_build_whose_client_goes_leaves_nothing() {
    use std::io::{Read, Write};
    let root = Root::with_busybox();
    let svc = Service::start(&root);
    // The context: a Dockerfile whose RUN step outlasts the client.
    let mut ctx = tar::Builder::new(Vec::new());
    let dockerfile = b"FROM busybox\nRUN echo stepping; sleep 47.25\nRUN echo never\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(dockerfile.len() as u64);
    h.set_mode(0o644);
    ctx.append_data(&mut h, "Dockerfile", &dockerfile[..])
        .unwrap();
    let ctx = ctx.into_inner().unwrap();
    let mut s = std::os::unix::net::UnixStream::connect(&svc.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST /v1.41/build?t=gone:1 HTTP/1.1\r\nHost: d\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\n\r\n",
        ctx.len()
    )
    .unwrap();
    s.write_all(&ctx).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // The step's own output (not the "Step 2/3 : RUN echo stepping…" line).
    while !String::from_utf8_lossy(&seen).contains(r#""stepping\n""#) {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(wait_for(10, || !processes_with("sleep 47.25").is_empty()));
    drop(s);
    // The build and its step end with the client, and leave no mount, container or image.
    assert!(
        wait_for(20, || processes_with("sleep 47.25").is_empty()),
        "{:?}",
        processes_with("sleep 47.25")
    );
    let root_path = root.path().to_string_lossy().into_owned();
    assert!(
        wait_for(20, || processes_with(&root_path)
            .iter()
            .all(|p| p.contains("system service"))),
        "{:?}",
        processes_with(&root_path)
    );
    assert_eq!(root.run(&["image", "inspect", "gone:1"]).0, 1);
    assert_eq!(root.ok(&["ps", "-aq"]), "");
    assert_eq!(root.ok(&["images", "-q", "--filter", "dangling=true"]), "");
    // The service goes on serving.
    let (s, b) = svc.request("GET", "/_ping", None);
    assert_eq!((s, b.as_str()), (200, "OK"));
    let tmp: Vec<_> = std::fs::read_dir(root.path().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(tmp.is_empty(), "left in the root's tmp: {tmp:?}");
}
