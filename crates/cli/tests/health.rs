//! Healthchecks end to end: `--health-*` and the image's HEALTHCHECK run beside a detached
//! container by its monitor's helper, with Docker's states in `inspect`, `ps`, the `health`
//! filter and events.

mod common;

use common::build::{ctx, write};
use common::{wait_for, Root};
use serde_json::Value;

fn health(r: &Root, c: &str) -> Value {
    let v: Value = serde_json::from_str(&r.ok(&["inspect", c])).unwrap();
    v[0]["State"]["Health"].clone()
}

fn status(r: &Root, c: &str) -> String {
    health(r, c)["Status"].as_str().unwrap_or("").to_string()
}

/// Helpers of this root still alive (they must end with their container).
fn helpers(r: &Root) -> Vec<String> {
    let root = r.path().to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| {
            c.split(' ')
                .next()
                .is_some_and(|b| b.ends_with("/hako-health"))
        })
        .filter(|c| c.contains(&root))
        .collect()
}

/// A failing check makes the container unhealthy after `--health-retries` failures, a passing
/// one healthy again; inspect keeps Docker's fields, ps shows and filters the status, and each
/// change is an event.
#[test]
fn cmd_flags_drive_the_state_machine() {
    let r = Root::with_busybox();
    let id = r.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "hc-flags",
        "--health-cmd",
        "test -f /ok && echo fine",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "100",
    ]);
    let id = id.trim();
    assert_eq!(status(&r, "hc-flags"), "starting");
    let ps = r.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.trim_end().ends_with("(health: starting)"), "{ps}");
    assert!(
        wait_for(10, || status(&r, "hc-flags") == "unhealthy"),
        "{}",
        health(&r, "hc-flags")
    );
    let h = health(&r, "hc-flags");
    assert!(h["FailingStreak"].as_u64().unwrap() >= 2, "{h}");
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], 1, "{h}");
    assert!(last["Start"].as_str().unwrap().ends_with('Z'), "{h}");
    assert!(last["End"].is_string(), "{h}");
    assert_eq!(last["Output"], "", "{h}");
    let ps = r.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.trim_end().ends_with("(unhealthy)"), "{ps}");
    assert_eq!(
        r.ok(&["ps", "-q", "--filter", "health=unhealthy"]).trim(),
        &id[..12]
    );
    assert_eq!(r.ok(&["ps", "-q", "--filter", "health=healthy"]), "");

    r.ok(&["exec", "hc-flags", "touch", "/ok"]);
    assert!(wait_for(10, || status(&r, "hc-flags") == "healthy"));
    let h = health(&r, "hc-flags");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    let log = h["Log"].as_array().unwrap();
    assert_eq!(log.last().unwrap()["Output"], "fine\n", "{h}");
    assert!(wait_for(10, || health(&r, "hc-flags")["Log"]
        .as_array()
        .unwrap()
        .len()
        == 5));
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(health(&r, "hc-flags")["Log"].as_array().unwrap().len(), 5);
    assert!(r
        .ok(&["ps", "--format", "{{.Status}}"])
        .contains("(healthy)"));

    let ev = r.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "container=hc-flags",
        "--format",
        "{{.Action}}",
    ]);
    let health_events: Vec<&str> = ev
        .lines()
        .filter(|l| l.starts_with("health_status"))
        .collect();
    assert_eq!(
        health_events,
        ["health_status: unhealthy", "health_status: healthy"],
        "{ev}"
    );
    assert_eq!(helpers(&r).len(), 1, "{:?}", helpers(&r));
    // Stopped, it is unhealthy (as Docker shows it), and its helper is gone.
    r.ok(&["stop", "-t", "0", "hc-flags"]);
    assert!(wait_for(5, || helpers(&r).is_empty()), "{:?}", helpers(&r));
    let h = health(&r, "hc-flags");
    assert_eq!(h["Status"], "unhealthy", "{h}");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    r.ok(&["rm", "-f", "hc-flags"]);
    assert!(wait_for(5, || helpers(&r).is_empty()), "{:?}", helpers(&r));
}

/// The image's HEALTHCHECK runs; `--no-healthcheck` turns it off (no Health, the `none`
/// filter); a check that outlives its timeout fails with Docker's message; failures in the
/// start period do not count while it is starting.
#[test]
fn image_check_timeout_and_start_period() {
    let r = Root::with_busybox();
    let d = ctx();
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nHEALTHCHECK --interval=200ms --retries=1 CMD echo from-image\n",
    );
    let (code, out, err) = r.run(&["build", "-t", "hc-image", d.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&r.ok(&["image", "inspect", "hc-image"])).unwrap();
    assert_eq!(
        v[0]["Config"]["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "echo from-image"], "Interval": 200_000_000u64, "Retries": 1})
    );
    let run = |name: &str, extra: &[&str]| {
        let mut a = vec!["run", "-d", "--network", "none", "--name", name];
        a.extend_from_slice(extra);
        a.extend_from_slice(&["hc-image", "sleep", "100"]);
        r.ok(&a);
    };
    run("hc-image-on", &[]);
    run("hc-image-off", &["--no-healthcheck"]);
    // The container's Config shows the image's check merged under its own, as Docker's
    // daemon stores it.
    let configured = |c: &str| -> Value {
        serde_json::from_str(&r.ok(&["inspect", "-f", "{{json .Config.Healthcheck}}", c])).unwrap()
    };
    assert_eq!(
        configured("hc-image-on"),
        serde_json::json!({"Test": ["CMD-SHELL", "echo from-image"], "Interval": 200_000_000u64, "Retries": 1})
    );
    r.ok(&[
        "create",
        "--name",
        "hc-merged",
        "--health-retries",
        "7",
        "hc-image",
        "true",
    ]);
    assert_eq!(
        configured("hc-merged"),
        serde_json::json!({"Test": ["CMD-SHELL", "echo from-image"], "Interval": 200_000_000u64, "Retries": 7})
    );
    r.ok(&["rm", "hc-merged"]);
    assert_eq!(
        configured("hc-image-off")["Test"],
        serde_json::json!(["NONE"])
    );
    run(
        "hc-timeout",
        &["--health-cmd", "sleep 5", "--health-timeout", "300ms"],
    );
    run(
        "hc-starting",
        &[
            "--health-cmd",
            "false",
            "--health-start-period",
            "30s",
            "--health-start-interval",
            "100ms",
        ],
    );
    assert!(wait_for(10, || status(&r, "hc-image-on") == "healthy"));
    let h = health(&r, "hc-image-on");
    assert_eq!(h["Log"][0]["Output"], "from-image\n", "{h}");
    assert!(health(&r, "hc-image-off").is_null());
    assert_eq!(
        r.ok(&["ps", "--format", "{{.Names}}", "--filter", "health=none"])
            .trim(),
        "hc-image-off"
    );
    assert!(wait_for(10, || status(&r, "hc-timeout") == "unhealthy"));
    let h = health(&r, "hc-timeout");
    assert_eq!(h["Log"][0]["ExitCode"], -1, "{h}");
    assert_eq!(
        h["Log"][0]["Output"], "Health check exceeded timeout (300ms)",
        "{h}"
    );
    assert!(wait_for(10, || health(&r, "hc-starting")["Log"]
        .as_array()
        .is_some_and(|l| l.len() >= 3)));
    let h = health(&r, "hc-starting");
    assert_eq!(
        (h["Status"].as_str(), h["FailingStreak"].as_u64()),
        (Some("starting"), Some(0)),
        "{h}"
    );
    r.ok(&[
        "rm",
        "-f",
        "hc-image-on",
        "hc-image-off",
        "hc-timeout",
        "hc-starting",
    ]);
    assert!(wait_for(5, || helpers(&r).is_empty()), "{:?}", helpers(&r));
}

/// A foreground `run` runs its check too (its helper is the `hako run` process's child), and
/// a build step runs none of its base image's.
#[test]
fn foreground_run_and_build_steps() {
    let r = Root::with_busybox();
    let d = ctx();
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nHEALTHCHECK --interval=100ms CMD touch /tmp/checked\n",
    );
    let (code, out, err) = r.run(&["build", "-t", "hc-base", d.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    write(
        d.path(),
        "Dockerfile",
        "FROM hc-base\nRUN sleep 1; test ! -e /tmp/checked\n",
    );
    let (code, out, err) = r.run(&["build", "-t", "hc-child", d.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let mut fg = r
        .cmd(&[
            "run",
            "--name",
            "hc-fg",
            "--network",
            "none",
            "hc-base",
            "sleep",
            "100",
        ])
        .spawn()
        .unwrap();
    assert!(
        wait_for(10, || r.run(&["inspect", "hc-fg"]).0 == 0
            && status(&r, "hc-fg") == "healthy"),
        "{}",
        health(&r, "hc-fg")
    );
    r.ok(&["rm", "-f", "hc-fg"]);
    let _ = fg.wait();
    assert!(wait_for(5, || helpers(&r).is_empty()), "{:?}", helpers(&r));
}

/// Installed without its health helper, hako refuses to start a container with a check
/// rather than start it and never run the check; one without a check still runs.
#[test]
fn a_missing_health_helper_is_an_error_not_a_silent_check() {
    let r = Root::with_busybox();
    let dir = tempfile::tempdir().unwrap();
    let bin = std::path::Path::new(common::hako_bin()).parent().unwrap();
    for b in ["hako", "hako-monitor", "hako-finish"] {
        std::fs::copy(bin.join(b), dir.path().join(b)).unwrap();
    }
    let hako = dir.path().join("hako");
    let run = |args: &[&str]| {
        std::process::Command::new(&hako)
            .args(args)
            .env("HAKO_ROOT", r.path())
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "hc-missing",
        "--health-cmd",
        "true",
        "busybox",
        "sleep",
        "30",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("hako-health is missing"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.State.Status}}", "hc-missing"]),
        "created\n"
    );
    let out = run(&["run", "--rm", "--network", "none", "busybox", "true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    r.ok(&["rm", "hc-missing"]);
}
