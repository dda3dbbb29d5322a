//! What the engine now does for the CLI's `logs -f`, `ps --filter`, `events` and the monitor's
//! finish, seen from the command line.

mod common;

use common::Root;
use std::io::Read;
use std::process::Stdio;

/// `logs -f` goes on into the new log after a rotation: it used to stay on the renamed file and
/// miss everything written after the first rotation.
#[test]
fn logs_follow_goes_on_across_rotations() {
    let r = Root::with_busybox();
    let id = r.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=20",
        "busybox",
        "sh",
        "-c",
        "sleep 1; i=0; while [ $i -lt 60 ]; do echo line-$i; i=$((i+1)); usleep 20000; done",
    ]);
    let id = id.trim();
    let mut follow = r
        .cmd(&["logs", "-f", id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    follow
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(follow.wait().unwrap().success());
    let want: String = (0..60).map(|i| format!("line-{i}\n")).collect();
    assert_eq!(out, want);
    // It did rotate.
    assert!(r
        .path()
        .join("containers")
        .join(id)
        .join(format!("{id}-json.log.1"))
        .exists());
    r.ok(&["rm", id]);
}

/// Values of one `ps` filter key are alternatives, as Docker's (they were all required, so two
/// states listed nothing).
#[test]
fn ps_filter_values_of_a_key_are_alternatives() {
    let r = Root::with_busybox();
    let up = r.ok(&["run", "-d", "--network", "none", "busybox", "sleep", "100"]);
    let done = r.ok(&["run", "-d", "--network", "none", "busybox", "true"]);
    r.ok(&["wait", done.trim()]);
    let listed = r.ok(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        "status=running",
        "--filter",
        "status=exited",
    ]);
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort();
    let mut want = vec![up.trim(), done.trim()];
    want.sort();
    assert_eq!(listed, want);
    // Keys still all hold.
    let out = r.ok(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        "status=exited",
        "--filter",
        &format!("id={}", &up.trim()[..12]),
    ]);
    assert_eq!(out, "");
    let (code, _, err) = r.run(&["ps", "--filter", "colour=red"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid filter 'colour'"), "{err}");
    r.ok(&["rm", "-f", up.trim(), done.trim()]);
}

/// An `events` filter hako does not know is an error, as Docker's (it was accepted and matched
/// nothing).
#[test]
fn events_refuse_an_unknown_filter() {
    let r = Root::new();
    let (code, _, err) = r.run(&["events", "--filter", "colour=red", "--until", "0s"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid filter 'colour'"), "{err}");
    // Known ones, with values of a key as alternatives.
    r.ok(&[
        "events",
        "--filter",
        "event=start",
        "--filter",
        "event=die",
        "--until",
        "0s",
    ]);
}

/// The monitor's finish (`hako-finish`) records the exit and applies the restart policy without
/// the `hako` binary (the monitor used to exec `hako container-finish`, so a container started
/// from an install whose `hako` was since removed was never restarted).
#[test]
fn the_monitor_finishes_without_the_hako_binary() {
    let r = Root::with_busybox();
    let bin = tempfile::tempdir_in("/var/tmp").unwrap();
    let debug = std::path::Path::new(common::hako_bin()).parent().unwrap();
    for b in [
        "hako",
        "hako-monitor",
        "hako-finish",
        "hako-dns",
        "hako-proxy",
    ] {
        std::fs::copy(debug.join(b), bin.path().join(b)).unwrap();
    }
    let out = std::process::Command::new(bin.path().join("hako"))
        .args([
            "run",
            "-d",
            "--network",
            "none",
            "--restart",
            "on-failure:1",
            "busybox",
            "sh",
            "-c",
            "sleep 1; exit 3",
        ])
        .env("HAKO_ROOT", r.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap();
    let id = id.trim();
    std::fs::remove_file(bin.path().join("hako")).unwrap();
    // The first run exits, is restarted once by its monitor, and the second run exits too.
    assert!(common::wait_for(20, || {
        r.ok(&["inspect", "-f", "{{.RestartCount}} {{.State.Status}}", id]) == "1 exited\n"
    }));
    assert_eq!(r.ok(&["inspect", "-f", "{{.State.ExitCode}}", id]), "3\n");
    assert!(!r.path().join("container-finish.log").exists());
    r.ok(&["rm", id]);
}
