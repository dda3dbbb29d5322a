//! The service's streams that follow something another process writes (`wait`, `logs -f`,
//! `events`, attach): they sleep until the change, and end when their client goes.

mod common;

use common::service::Service;
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
