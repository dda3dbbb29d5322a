//! The docker CLI (the 28.x client at /usr/local/bin/docker and Debian's 20.10 at
//! /usr/bin/docker) against `hako system service`, as a user drives it with DOCKER_HOST.

mod common;

use common::service::{have, split, Service};
use common::{wait_for, Root};
use std::process::Command;

const DOCKER28: &str = "/usr/local/bin/docker";
const DOCKER20: &str = "/usr/bin/docker";

fn need(bin: &str) -> bool {
    if std::path::Path::new(bin).exists() {
        return true;
    }
    eprintln!("skipped: {bin} is not installed");
    false
}

/// `docker ARGS` on a terminal made by script(1).
fn docker_tty(svc: &Service, docker: &str, args: &str) -> (i32, String, String) {
    let mut c = svc.client("timeout");
    c.args([
        "60",
        "script",
        "-qec",
        &format!("{docker} {args}"),
        "/dev/null",
    ]);
    split(hako_testkit::in_pty(c))
}

#[test]
fn docker_28_runs_execs_and_copies() {
    if need(DOCKER28) {
        runs_execs_and_copies(DOCKER28);
    }
}

#[test]
fn docker_20_10_runs_execs_and_copies() {
    if need(DOCKER20) {
        runs_execs_and_copies(DOCKER20);
    }
}

/// What a user does with the docker CLI, with client `d`.
fn runs_execs_and_copies(d: &str) {
    let root = Root::with_busybox();
    let svc = Service::start(&root);

    let v = svc.ok(
        d,
        &[
            "version",
            "--format",
            "{{.Server.Platform.Name}} {{.Server.APIVersion}} {{.Client.APIVersion}}",
        ],
    );
    assert!(v.starts_with("hako 1.4"), "{v}");

    // run --rm: the output of both streams, the exit status, nothing left.
    let (code, out, err) = svc.run(
        d,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!((code, out.as_str(), err.as_str()), (3, "out\n", "err\n"));
    assert_eq!(svc.ok(d, &["ps", "-aq"]), "");
    // Input through -i.
    let mut c = svc.client(d);
    c.args(["run", "--rm", "-i", "busybox", "tr", "a-z", "A-Z"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "HELLO\n");
    // A command that does not exist: Docker's 127.
    let (code, _, err) = svc.run(d, &["run", "--rm", "busybox", "/nonexistent"]);
    assert_eq!(code, 127, "{err}");

    // run -d, logs -f, ps, inspect, exec.
    let id = svc.ok(
        d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "-l",
            "app=t",
            "busybox",
            "sh",
            "-c",
            "echo started; sleep 300",
        ],
    );
    let id = id.trim();
    assert_eq!(id.len(), 64);
    assert!(wait_for(10, || svc.ok(d, &["logs", "web"]) == "started\n"));
    let ps = svc.ok(
        d,
        &[
            "ps",
            "--filter",
            "label=app=t",
            "--format",
            "{{.Names}} {{.State}} {{.Status}}",
        ],
    );
    assert!(ps.starts_with("web running Up"), "{ps}");
    assert_eq!(
        svc.ok(
            d,
            &[
                "inspect",
                "-f",
                "{{.State.Running}} {{.Name}} {{.Config.Labels.app}}",
                "web"
            ]
        ),
        "true /web t\n"
    );
    let (code, out, _) = svc.run(d, &["exec", "web", "sh", "-c", "echo in; exit 5"]);
    assert_eq!((code, out.as_str()), (5, "in\n"));
    let (code, out, err) = docker_tty(&svc, d, "exec -it web sh -c 'tty; echo ok'");
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("/dev/pts/") && out.contains("ok"), "{out:?}");

    // cp both ways.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("in.txt"), "copied in\n").unwrap();
    svc.ok(
        d,
        &[
            "cp",
            tmp.path().join("in.txt").to_str().unwrap(),
            "web:/tmp/in.txt",
        ],
    );
    assert_eq!(
        svc.ok(d, &["exec", "web", "cat", "/tmp/in.txt"]),
        "copied in\n"
    );
    svc.ok(
        d,
        &[
            "exec",
            "web",
            "sh",
            "-c",
            "mkdir /tmp/d && echo x > /tmp/d/f && ln -s /tmp/d/f /tmp/lf",
        ],
    );
    // The archive endpoint reports a symlink as one, so docker's -L works: without it the
    // link comes out, with it what the link names in the container.
    let (lf, lf_l) = (tmp.path().join("lf"), tmp.path().join("lf-l"));
    svc.ok(d, &["cp", "web:/tmp/lf", lf.to_str().unwrap()]);
    svc.ok(d, &["cp", "-L", "web:/tmp/lf", lf_l.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_link(&lf).unwrap(),
        std::path::Path::new("/tmp/d/f")
    );
    assert_eq!(std::fs::read_to_string(&lf_l).unwrap(), "x\n");
    svc.ok(
        d,
        &["cp", "web:/tmp/d", tmp.path().join("out").to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("out/f")).unwrap(),
        "x\n"
    );
    let (code, _, err) = svc.run(d, &["cp", "web:/nonexistent", tmp.path().to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        err.contains("No such") || err.contains("no such") || err.contains("not find"),
        "{err}"
    );

    // logs -f follows until the container ends.
    svc.ok(
        d,
        &[
            "run",
            "-d",
            "--name",
            "short",
            "busybox",
            "sh",
            "-c",
            "echo a; sleep 1; echo b",
        ],
    );
    assert_eq!(svc.ok(d, &["logs", "-f", "short"]), "a\nb\n");
    assert_eq!(svc.ok(d, &["wait", "short"]), "0\n");

    // run -it through a terminal.
    let (code, out, err) = docker_tty(&svc, d, "run --rm -it busybox sh -c 'tty; exit 2'");
    assert_eq!(code, 2, "{out} {err}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    // A terminal's output is raw: no 8-byte frame headers in it.
    assert!(!out.contains('\u{1}') && !out.contains('\0'), "{out:?}");
    assert_eq!(
        svc.ok(d, &["inspect", "-f", "{{.Config.Tty}}", "web"]),
        "false\n"
    );

    // Images, networks and volumes.
    let images = svc.ok(d, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(images, "busybox:latest\n");
    let fmt = [
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.CreatedBy}}",
        "busybox",
    ];
    let history = svc.ok(d, &fmt);
    assert!(!history.is_empty());
    assert_eq!(history, root.ok(&fmt));
    let (code, _, err) = svc.run(d, &["history", "nosuchimage"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such image"), "{err}");
    svc.ok(d, &["tag", "busybox", "mybox:1"]);
    assert!(svc.ok(d, &["images"]).contains("mybox"));
    assert!(svc.ok(d, &["rmi", "mybox:1"]).contains("Untagged: mybox:1"));
    svc.ok(d, &["network", "create", "apinet"]);
    assert!(svc
        .ok(d, &["network", "ls", "--format", "{{.Name}}"])
        .contains("apinet\n"));
    svc.ok(d, &["volume", "create", "apivol"]);
    let out = svc.ok(
        d,
        &[
            "run",
            "--rm",
            "--network",
            "apinet",
            "-v",
            "apivol:/data",
            "busybox",
            "sh",
            "-c",
            "echo kept > /data/f; ip -4 addr show eth0 | grep -c inet",
        ],
    );
    assert_eq!(out, "1\n");
    assert_eq!(
        svc.ok(
            d,
            &[
                "run",
                "--rm",
                "-v",
                "apivol:/data",
                "busybox",
                "cat",
                "/data/f"
            ]
        ),
        "kept\n"
    );
    assert_eq!(svc.ok(d, &["volume", "ls", "-q"]), "apivol\n");
    let (code, _, err) = svc.run(d, &["network", "inspect", "nosuchnet"]);
    assert_eq!(code, 1);
    assert!(err.contains("nosuchnet"), "{err}");
    svc.ok(d, &["network", "rm", "apinet"]);
    svc.ok(d, &["volume", "rm", "apivol"]);

    // Events from the journal, system df.
    let ev = svc.ok(
        d,
        &[
            "events",
            "--since",
            "0",
            "--until",
            "0s",
            "--filter",
            "container=web",
            "--format",
            "{{.Action}}",
        ],
    );
    assert!(ev.contains("create\n") && ev.contains("start\n"), "{ev}");
    let df = svc.ok(
        d,
        &["system", "df", "--format", "{{.Type}} {{.TotalCount}}"],
    );
    assert!(
        df.contains("Images 1") && df.contains("Containers 2"),
        "{df}"
    );

    svc.ok(d, &["rm", "-f", "web", "short"]);
    assert_eq!(svc.ok(d, &["ps", "-aq"]), "");
}

#[test]
fn docker_20_10_client_negotiates_its_version() {
    if !need(DOCKER20) {
        return;
    }
    let root = Root::with_busybox();
    let svc = Service::start(&root);
    let d = DOCKER20;
    let v = svc.ok(d, &["version", "--format", "{{.Client.APIVersion}}"]);
    assert_eq!(v, "1.41\n");
    let (code, out, _) = svc.run(
        d,
        &["run", "--rm", "busybox", "sh", "-c", "echo hi; exit 4"],
    );
    assert_eq!((code, out.as_str()), (4, "hi\n"));
    svc.ok(d, &["run", "-d", "--name", "c1", "busybox", "sleep", "300"]);
    assert_eq!(svc.ok(d, &["ps", "--format", "{{.Names}}"]), "c1\n");
    assert_eq!(svc.ok(d, &["exec", "c1", "echo", "x"]), "x\n");
    svc.ok(d, &["stop", "-t", "1", "c1"]);
    assert!(svc
        .ok(d, &["ps", "-a", "--format", "{{.Status}}"])
        .starts_with("Exited"));
    svc.ok(d, &["rm", "c1"]);
}

#[test]
fn docker_28_builds_and_goes_through_a_registry() {
    builds_and_goes_through_a_registry(DOCKER28);
}

#[test]
fn docker_20_10_builds_and_goes_through_a_registry() {
    builds_and_goes_through_a_registry(DOCKER20);
}

fn builds_and_goes_through_a_registry(d: &str) {
    if !need(d) || !have("docker-registry") {
        eprintln!("skipped: needs {d} and docker-registry");
        return;
    }
    let root = Root::with_busybox();
    let svc = Service::start(&root);
    let reg = hako_testkit::Registry::start();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nCOPY msg /msg\nRUN echo built >> /msg\nCMD [\"cat\", \"/msg\"]\n",
    )
    .unwrap();
    std::fs::write(ctx.path().join("msg"), "hello\n").unwrap();
    let tag = format!("127.0.0.1:{}/apitest:1", reg.port);
    // The classic builder (the service says Builder-Version 1).
    let mut c = svc.client(d);
    c.env("DOCKER_BUILDKIT", "0")
        .args(["build", "-t", &tag, ctx.path().to_str().unwrap()]);
    let (code, out, err) = split(c.output().unwrap());
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Successfully built"), "{out}");
    assert_eq!(svc.ok(d, &["run", "--rm", &tag]), "hello\nbuilt\n");
    let out = svc.ok(d, &["push", &tag]);
    assert!(
        out.contains("digest: sha256:") || out.contains("Pushed") || out.contains(&tag),
        "{out}"
    );
    svc.ok(d, &["rmi", &tag]);
    let (code, _, _) = svc.run(d, &["image", "inspect", &tag]);
    assert_eq!(code, 1);
    svc.ok(d, &["pull", &tag]);
    assert_eq!(svc.ok(d, &["run", "--rm", &tag]), "hello\nbuilt\n");
    // A failing build: the error and a non-zero exit, no image.
    std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nRUN exit 9\n").unwrap();
    let mut c = svc.client(d);
    c.env("DOCKER_BUILDKIT", "0")
        .args(["build", "-t", "broken", ctx.path().to_str().unwrap()]);
    let (code, out, err) = split(c.output().unwrap());
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("9") || out.contains("9"), "{out}{err}");
    assert_eq!(svc.run(d, &["image", "inspect", "broken"]).0, 1);
    // Pulling what is not there is the registry's not-found.
    let (code, _, err) = svc.run(
        d,
        &["pull", &format!("127.0.0.1:{}/nothing:here", reg.port)],
    );
    assert_ne!(code, 0);
    assert!(!err.is_empty());
    assert_eq!(svc.ok(d, &["ps", "-aq"]), "");
}

#[test]
fn bad_requests_get_docker_errors_and_leave_nothing() {
    let root = Root::with_busybox();
    let svc = Service::start(&root);
    let (s, b) = svc.request("POST", "/v1.47/containers/create", Some(b"{not json"));
    assert_eq!(s, 400, "{b}");
    assert!(
        b.contains("\"message\"") && b.contains("invalid JSON"),
        "{b}"
    );
    let (s, b) = svc.request(
        "POST",
        "/containers/create",
        Some(br#"{"Image":"busybox","Cmd":7}"#),
    );
    assert_eq!(s, 400, "{b}");
    let (s, b) = svc.request(
        "POST",
        "/containers/create",
        Some(br#"{"Image":"busybox","HostConfig":{"CpuRealtimeRuntime":1000}}"#),
    );
    assert_eq!(s, 400);
    assert!(b.contains("CpuRealtimeRuntime"), "{b}");
    let (s, b) = svc.request(
        "POST",
        "/containers/create",
        Some(br#"{"Image":"nosuchimage"}"#),
    );
    assert_eq!(s, 404);
    assert!(b.contains("No such image"), "{b}");
    // Fields dockerd does not know are ignored, as its decoder does (newer clients send
    // fields older daemons lack); a known field of the wrong type is not.
    let (s, b) = svc.request(
        "POST",
        "/containers/create?name=extra",
        Some(br#"{"Image":"busybox","Cmd":["true"],"NoSuchField":{"x":1},"HostConfig":{"Unknown":true}}"#),
    );
    assert_eq!(s, 201, "{b}");
    root.ok(&["rm", "extra"]);
    let (s, b) = svc.request(
        "POST",
        "/containers/create",
        Some(br#"{"Image":"busybox","HostConfig":{"Memory":"lots"}}"#),
    );
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("\"message\""), "{b}");
    let (s, b) = svc.request("POST", "/containers/create", Some(b"[1,2]"));
    assert_eq!(s, 400, "{b}");
    let (s, b) = svc.request("POST", "/networks/create", Some(br#"{"Name":7}"#));
    assert_eq!(s, 400, "{b}");
    let (s, b) = svc.request("POST", "/volumes/create", Some(b"{"));
    assert_eq!(s, 400, "{b}");
    let (s, b) = svc.request("GET", "/containers/json?filters=%7Bnot", None);
    assert_eq!(s, 400, "{b}");
    let (s, b) = svc.request("GET", "/containers/json?limit=many", None);
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("limit"), "{b}");
    let (s, b) = svc.request("POST", "/containers/nosuch/wait?condition=soon", None);
    assert!(s == 400 || s == 404, "{s} {b}");
    let huge = vec![b' '; 9 << 20];
    let (s, b) = svc.request("POST", "/containers/create", Some(&huge));
    assert_eq!(s, 413, "{b}");
    let (s, _) = svc.request("GET", "/containers/nosuch/json", None);
    assert_eq!(s, 404);
    let (s, b) = svc.request("GET", "/v1.99/containers/json", None);
    assert_eq!(s, 400);
    assert!(b.contains("too new"), "{b}");
    let (s, b) = svc.request("GET", "/v1.12/containers/json", None);
    assert_eq!(s, 400);
    assert!(b.contains("too old"), "{b}");
    let (s, b) = svc.request("POST", "/containers/x/checkpoints", None);
    assert_eq!(s, 501);
    assert!(b.contains("checkpoints"), "{b}");
    let (s, _) = svc.request("GET", "/nothing/here", None);
    assert_eq!(s, 404);
    // A client that goes mid-request: the others are served.
    {
        use std::io::Write;
        let mut c = std::os::unix::net::UnixStream::connect(&svc.socket).unwrap();
        c.write_all(
            b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: 1000\r\n\r\n{\"Ima",
        )
        .unwrap();
    }
    let (s, b) = svc.request("GET", "/_ping", None);
    assert_eq!((s, b.as_str()), (200, "OK"));
    let (s, b) = svc.request("GET", "/containers/json?all=1", None);
    assert_eq!((s, b.trim()), (200, "[]"));
    assert_eq!(root.ok(&["ps", "-aq"]), "");
}

/// The `filters` query parameter as clients send it: JSON, percent-encoded.
fn filters_query(json: &str) -> String {
    json.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn container_list_filters_before_its_limit() {
    let root = Root::with_busybox();
    for (name, label) in [("wa", "tier=web"), ("db", "tier=db"), ("wc", "tier=web")] {
        root.ok(&["create", "--name", name, "-l", label, "busybox", "true"]);
    }
    let svc = Service::start(&root);
    let names = |query: &str| -> Vec<String> {
        let (s, b) = svc.request("GET", &format!("/containers/json?{query}"), None);
        assert_eq!(s, 200, "{b}");
        let rows: serde_json::Value = serde_json::from_str(&b).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r["State"], "created", "{r}");
                assert_eq!(r["Status"], "Created", "{r}");
                r["Names"][0].as_str().unwrap().to_string()
            })
            .collect()
    };
    let web = filters_query(r#"{"label":["tier=web"]}"#);
    // As dockerd: the limit counts the rows the filters keep, newest first.
    assert_eq!(names(&format!("limit=2&filters={web}")), ["/wc", "/wa"]);
    assert_eq!(names(&format!("limit=1&filters={web}")), ["/wc"]);
    assert_eq!(names("all=1"), ["/wc", "/db", "/wa"]);
    assert_eq!(names("limit=2"), ["/wc", "/db"]);
    let db = filters_query(r#"{"label":["tier=db"],"status":["created"],"name":["db"]}"#);
    assert_eq!(names(&format!("filters={db}")), ["/db"]);
    let (_, b) = svc.request("GET", &format!("/containers/json?all=1&filters={db}"), None);
    let rows: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(rows[0]["Labels"]["tier"], "db", "{b}");
    // Only running ones without `all`: none.
    assert!(names("").is_empty());
    root.ok(&["rm", "wa", "db", "wc"]);
}

#[test]
fn stop_without_a_timeout_takes_the_containers_own() {
    let root = Root::with_busybox();
    // PID 1 without a handler ignores SIGTERM: the stop lasts its timeout, then kills.
    let id = root.ok(&[
        "run",
        "-d",
        "--stop-timeout",
        "1",
        "busybox",
        "sleep",
        "100",
    ]);
    let id = id.trim();
    let svc = Service::start(&root);
    let t = std::time::Instant::now();
    let (s, b) = svc.request("POST", &format!("/containers/{id}/stop"), None);
    assert_eq!(s, 204, "{b}");
    let took = t.elapsed();
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(8),
        "stop took {took:?}, not the container's 1 s"
    );
    root.ok(&["rm", id]);
}

#[test]
fn image_prune_takes_until_and_label_filters() {
    let root = Root::with_busybox();
    let tar = common::images_dir().join("busybox.tar");
    root.ok(&[
        "import",
        "-c",
        "LABEL app=web",
        tar.to_str().unwrap(),
        "web:1",
    ]);
    let svc = Service::start(&root);
    let prune = |filters: &str| {
        svc.request(
            "POST",
            &format!("/v1.47/images/prune?filters={}", filters_query(filters)),
            None,
        )
    };
    // Every image is newer than two days ago: nothing goes, however `until` is written.
    for until in ["2d", "1h30m", "1970-01-02T00:00:00Z"] {
        let (s, b) = prune(&format!(r#"{{"dangling":["false"],"until":["{until}"]}}"#));
        assert_eq!(s, 200, "{until}: {b}");
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["ImagesDeleted"], serde_json::Value::Null, "{until}: {b}");
    }
    // Tagged images that carry the label go; the others stay.
    let (s, b) = prune(r#"{"dangling":["false"],"label":["app=web"]}"#);
    assert_eq!(s, 200, "{b}");
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["ImagesDeleted"][0]["Untagged"], "web:1", "{b}");
    assert!(v["SpaceReclaimed"].is_u64(), "{b}");
    assert_eq!(root.run(&["image", "inspect", "web:1"]).0, 1);
    root.ok(&["image", "inspect", "busybox"]);
    // A filter prune does not know, or a time it cannot read, is the client's error.
    let (s, b) = prune(r#"{"until":["soon"]}"#);
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("until=soon"), "{b}");
    let (s, b) = prune(r#"{"reference":["busybox"]}"#);
    assert_eq!(s, 400, "{b}");
    assert!(b.contains("reference"), "{b}");
}

#[test]
fn the_service_exits_when_idle_and_serves_beside_hako() {
    let root = Root::with_busybox();
    let socket = root.path().join("idle.sock");
    let mut child = Command::new(common::hako_bin())
        .args(["system", "service", "--time", "1"])
        .arg(format!("unix://{}", socket.display()))
        .env("HAKO_ROOT", root.path())
        .spawn()
        .unwrap();
    assert!(wait_for(10, || std::os::unix::net::UnixStream::connect(
        &socket
    )
    .is_ok()));
    // hako and the service on the same root at once.
    root.ok(&["create", "--name", "both", "busybox", "true"]);
    let svc_view = {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        s.write_all(b"GET /containers/json?all=1 HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    };
    assert!(svc_view.contains("\"/both\""), "{svc_view}");
    root.ok(&["rm", "both"]);
    let t = std::time::Instant::now();
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    assert!(!socket.exists(), "the socket is removed at exit");
    // An endpoint it refuses.
    let out = root.hako(&["system", "service", "tcp://0.0.0.0:2375"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
}

#[test]
fn docker_login_credentials_reach_the_registry() {
    if !need(DOCKER28) || !have("docker-registry") || !have("htpasswd") {
        eprintln!("skipped: needs {DOCKER28}, docker-registry and htpasswd");
        return;
    }
    let root = Root::with_busybox();
    let svc = Service::start(&root);
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let out = Command::new("htpasswd")
        .args(["-Bbn", "apiuser", "s3cret"])
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::write(&htpasswd, out.stdout).unwrap();
    let reg = hako_testkit::Registry::start_with(&format!(
        "auth:\n  htpasswd:\n    realm: hako-test\n    path: {}\n",
        htpasswd.display()
    ));
    let server = format!("127.0.0.1:{}", reg.port);
    let d = DOCKER28;
    let login = |password: &str| {
        let mut c = svc.client(d);
        c.args(["login", "-u", "apiuser", "--password-stdin", &server])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), password.as_bytes()).unwrap();
        split(child.wait_with_output().unwrap())
    };
    // /auth checks the password against the registry.
    let (code, _, err) = login("wrong");
    assert_ne!(code, 0);
    assert!(err.contains("401") || err.contains("nauthorized"), "{err}");
    let (code, out, err) = login("s3cret");
    assert_eq!(code, 0, "{out}{err}");
    // The client's login travels in X-Registry-Auth with the push and the pull.
    let tag = format!("{server}/authed:1");
    svc.ok(d, &["tag", "busybox", &tag]);
    let (code, out, err) = svc.run(d, &["push", &tag]);
    assert_eq!(code, 0, "{out}{err}");
    svc.ok(d, &["rmi", &tag]);
    let (code, out, err) = svc.run(d, &["pull", &tag]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        svc.ok(d, &["run", "--rm", &tag, "echo", "pulled"]),
        "pulled\n"
    );
    // Without the login the registry refuses, and the client hears it.
    svc.ok(d, &["logout", &server]);
    svc.ok(d, &["rmi", &tag]);
    let (code, _, err) = svc.run(d, &["pull", &tag]);
    assert_ne!(code, 0);
    assert!(!err.is_empty());
}

/// `--link`, `--volumes-from` and the CFS and memory-reservation flags go through the API's
/// HostConfig into the same container the `hako` flags make (compose sends them for `links:`,
/// `volumes_from:`, `cpu_quota:`).
#[test]
fn links_volumes_from_and_cfs_limits_go_through_the_api() {
    if !need(DOCKER28) {
        return;
    }
    let root = Root::with_busybox();
    let svc = Service::start(&root);
    let d = DOCKER28;
    svc.ok(
        d,
        &[
            "run",
            "-d",
            "--name",
            "db",
            "-v",
            "/store",
            "busybox",
            "sh",
            "-c",
            "echo kept > /store/f; sleep 60",
        ],
    );
    let out = svc.ok(
        d,
        &[
            "run",
            "--rm",
            "--name",
            "web",
            "--link",
            "db:data",
            "--volumes-from",
            "db:ro",
            "--cpu-period",
            "50000",
            "--cpu-quota",
            "25000",
            "--memory-reservation",
            "32m",
            "busybox",
            "sh",
            "-c",
            "grep -w data /etc/hosts | wc -l; cat /store/f; touch /store/g 2>/dev/null || echo ro",
        ],
    );
    assert_eq!(out, "1\nkept\nro\n");
    svc.ok(
        d,
        &[
            "create",
            "--name",
            "shown",
            "--link",
            "db:data",
            "--volumes-from",
            "db",
            "--cpu-quota",
            "25000",
            "--blkio-weight",
            "300",
            "busybox",
            "true",
        ],
    );
    let shown = svc.ok(
        d,
        &[
            "inspect",
            "-f",
            "{{.HostConfig.Links}} {{.HostConfig.VolumesFrom}} {{.HostConfig.CpuQuota}} {{.HostConfig.BlkioWeight}}",
            "shown",
        ],
    );
    assert_eq!(shown, "[/db:/shown/data] [db] 25000 300\n");
    svc.ok(d, &["rm", "-f", "-v", "db", "shown"]);
}

#[test]
fn container_network_and_volume_prune_take_filters() {
    if !need(DOCKER28) {
        return;
    }
    let root = Root::with_busybox();
    let svc = Service::start(&root);
    let d = DOCKER28;
    for (name, label) in [("keep", "app=db"), ("go", "app=web")] {
        svc.ok(
            d,
            &["create", "--name", name, "-l", label, "busybox", "true"],
        );
        svc.ok(
            d,
            &[
                "network",
                "create",
                "--label",
                label,
                &format!("net-{name}"),
            ],
        );
        svc.ok(
            d,
            &["volume", "create", "--label", label, &format!("vol-{name}")],
        );
    }
    // Everything is newer than an hour ago: an `until` prune takes nothing.
    let out = svc.ok(d, &["container", "prune", "-f", "--filter", "until=1h"]);
    assert!(!out.contains("keep") && !out.contains("go"), "{out}");
    let out = svc.ok(d, &["network", "prune", "-f", "--filter", "until=1h"]);
    assert!(!out.contains("net-"), "{out}");
    assert_eq!(svc.ok(d, &["ps", "-aq"]).lines().count(), 2);
    // label= takes the matching ones only; label!= the others.
    let out = svc.ok(
        d,
        &["container", "prune", "-f", "--filter", "label=app=web"],
    );
    assert_eq!(out.lines().filter(|l| l.len() == 64).count(), 1, "{out}");
    assert_eq!(svc.ok(d, &["ps", "-a", "--format", "{{.Names}}"]), "keep\n");
    let out = svc.ok(d, &["network", "prune", "-f", "--filter", "label!=app=db"]);
    assert!(out.contains("net-go") && !out.contains("net-keep"), "{out}");
    let out = svc.ok(
        d,
        &["volume", "prune", "-a", "-f", "--filter", "label=app=web"],
    );
    assert!(out.contains("vol-go") && !out.contains("vol-keep"), "{out}");
    assert_eq!(svc.ok(d, &["volume", "ls", "-q"]), "vol-keep\n");
    assert_eq!(
        svc.ok(d, &["network", "ls", "-q", "--filter", "name=net-"])
            .lines()
            .count(),
        1
    );
    // Volumes have no `until`, as dockerd says.
    let (code, _, err) = svc.run(d, &["volume", "prune", "-f", "--filter", "until=1h"]);
    assert_eq!(code, 1);
    assert!(err.contains("until"), "{err}");
    svc.ok(d, &["rm", "keep"]);
    svc.ok(d, &["network", "rm", "net-keep"]);
    svc.ok(d, &["volume", "rm", "vol-keep"]);
}

#[test]
fn ping_headers_and_every_version_from_1_24() {
    use std::io::{Read, Write};
    let root = Root::new();
    let svc = Service::start(&root);
    for method in ["GET", "HEAD"] {
        let mut s = std::os::unix::net::UnixStream::connect(&svc.socket).unwrap();
        write!(
            s,
            "{method} /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let head = out.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{out}");
        for h in [
            "api-version: 1.",
            "builder-version: 1",
            "ostype: linux",
            "cache-control: no-cache",
        ] {
            assert!(head.contains(h), "{method}: no {h}: {out}");
        }
        assert_eq!(out.ends_with("\r\n\r\nOK"), method == "GET", "{out}");
    }
    let current: String = {
        let (_, b) = svc.request("GET", "/version", None);
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["MinAPIVersion"], "1.24", "{b}");
        v["ApiVersion"].as_str().unwrap().to_string()
    };
    let minor: u32 = current.strip_prefix("1.").unwrap().parse().unwrap();
    assert!(minor >= 44, "{current}");
    for m in 24..=minor {
        let (s, b) = svc.request("GET", &format!("/v1.{m}/containers/json"), None);
        assert_eq!((s, b.trim()), (200, "[]"), "v1.{m}");
    }
    let (s, _) = svc.request("GET", "/v1.23/containers/json", None);
    assert_eq!(s, 400);
    let (s, _) = svc.request("GET", &format!("/v1.{}/containers/json", minor + 1), None);
    assert_eq!(s, 400);
}

/// `hako system service` as systemd's socket unit starts it: `LISTEN_PID`/`LISTEN_FDS`, the
/// socket on fd 3 (when `socket` is given).
fn activated(
    root: &Root,
    socket: Option<&std::os::unix::net::UnixListener>,
) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new("sh");
    c.args([
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" system service --time 0",
        common::hako_bin(),
    ])
    .env("HAKO_ROOT", root.path())
    .stderr(std::process::Stdio::piped());
    if socket.is_none() {
        // SAFETY: close is async-signal-safe; fd 3 (the test harness may have one open) is
        // the child's to drop, so the service's first own descriptor takes that number.
        unsafe {
            c.pre_exec(|| {
                libc::close(3);
                Ok(())
            });
        }
    }
    if let Some(l) = socket {
        common::service::pass_as_fd3(&mut c, l);
    }
    c.spawn().unwrap()
}

#[test]
fn socket_activation_answers_the_waiting_client() {
    use std::io::{Read, Write};
    let root = Root::new();
    let path = root.path().join("activated.sock");
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    // The client is already waiting in the socket when the service starts.
    let mut c = std::os::unix::net::UnixStream::connect(&path).unwrap();
    c.write_all(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut svc = activated(&root, Some(&l));
    c.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(
        out.starts_with("HTTP/1.1 200") && out.ends_with("OK"),
        "{out}"
    );
    // SAFETY: signalling our own child, not yet reaped.
    unsafe { libc::kill(svc.id() as i32, libc::SIGTERM) };
    assert!(svc.wait().unwrap().success());

    // A socket promised but not passed is an error naming it, not a crash of the runtime
    // whose own descriptor got that number.
    let svc = activated(&root, None);
    let out = svc.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("socket-activation descriptor 3"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
