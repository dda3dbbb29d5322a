//! `hako` run by ordinary users (issue 17): accounts the tests create with their own
//! /etc/subuid and /etc/subgid ranges (or none), state in their XDG directories. Each test
//! checks that nothing is left: no process of the user but its namespace holder, which the
//! account's removal stops.

mod common;

use hako_testkit::user::{SubIds, TestUser};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output, Stdio};

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create accounts: run them as root"
    );
}

fn busybox_tar() -> String {
    let dir =
        std::env::var("HAKO_TEST_IMAGES").unwrap_or_else(|_| "/var/cache/hako-test-images".into());
    format!("{dir}/busybox.tar")
}

struct User {
    u: TestUser,
}

impl User {
    fn new(subids: SubIds) -> User {
        require_root();
        User {
            u: TestUser::with_subids(subids),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.u.command(common::hako_bin());
        c.args(args);
        c
    }

    fn hako(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run hako as the test user")
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.hako(args);
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "hako {args:?} as {}: {err}{out}", self.u.name);
        out
    }

    /// The user's processes, other than its namespace holder: (pid, command line).
    fn processes(&self) -> Vec<(i32, String)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(m) = std::fs::metadata(e.path()) else {
                continue;
            };
            let cmdline = std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
                .unwrap_or_default();
            let ours = m.uid() == self.u.uid
                || self
                    .u
                    .subid_start
                    .is_some_and(|s| (s..s + 65536).contains(&u64::from(m.uid())));
            if ours && !cmdline.contains("__userns-holder") && !cmdline.is_empty() {
                out.push((pid, cmdline));
            }
        }
        out
    }

    /// Nothing of the user runs but its holder (waiting a little for exits under way).
    fn assert_nothing_runs(&self) {
        let ok = common::wait_for(10, || self.processes().is_empty());
        assert!(ok, "left running: {:?}", self.processes());
    }

    fn holders(&self) -> usize {
        let mut n = 0;
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            if let (Ok(m), Ok(c)) = (
                std::fs::metadata(e.path()),
                std::fs::read(e.path().join("cmdline")),
            ) {
                if m.uid() == self.u.uid && String::from_utf8_lossy(&c).contains("__userns-holder")
                {
                    n += 1;
                }
            }
        }
        n
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn an_ordinary_users_journey() {
    let u = User::new(SubIds::Count(65536));
    let tar = busybox_tar();
    u.ok(&["import", &tar, "busybox"]);
    let info = u.ok(&["info"]);
    assert!(info.contains(" Rootless: true"), "{info}");
    assert!(info.contains("Cgroups: none (cgroup v1"), "{info}");
    assert!(info.contains("Ids: newuidmap/newgidmap"), "{info}");
    // State in the user's XDG data directory, owned by it.
    let data = u.u.home.join(".local/share/hako");
    assert_eq!(
        std::fs::metadata(data.join("hako.db")).unwrap().uid(),
        u.u.uid
    );

    // build with RUN, COPY and USER: an image uid (65532) inside a 65536 range, a whiteout.
    u.u.write_file(
        "ctx/Dockerfile",
        b"FROM busybox\nRUN echo nonroot:x:65532:65532::/tmp:/bin/sh >> /etc/passwd && mkdir /data && echo built > /data/f && chown 65532:65532 /data/f && rm -rf /home\nCOPY hello /hello\nUSER nonroot\nCMD [\"sh\",\"-c\",\"id -u; cat /hello /data/f; stat -c %u /data/f; test -e /home || echo no-home\"]\n",
    );
    u.u.write_file("ctx/hello", b"hello\n");
    let ctx = u.u.home.join("ctx");
    u.ok(&["build", "-q", "-t", "b1", ctx.to_str().unwrap()]);
    assert_eq!(
        u.ok(&["run", "--rm", "--network", "none", "b1"]),
        "65532\nhello\nbuilt\n65532\nno-home\n"
    );

    // -d, logs, exec, stop.
    u.ok(&[
        "run",
        "-d",
        "--name",
        "d1",
        "busybox",
        "sh",
        "-c",
        "echo started; sleep 300",
    ]);
    assert!(common::wait_for(10, || u.ok(&["logs", "d1"]) == "started\n"));
    assert_eq!(
        u.ok(&["exec", "d1", "sh", "-c", "echo in; id -u"]),
        "in\n0\n"
    );
    u.ok(&["stop", "-t", "1", "d1"]);
    u.ok(&["rm", "d1"]);

    // A bind mount: what the container's root writes is the user's on the host.
    let dir = u.u.home.join("bind");
    assert!(u.u.run("mkdir", &[dir.to_str().unwrap()]).status.success());
    let spec = format!("{}:/b", dir.display());
    u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "echo x > /b/f",
    ]);
    let m = std::fs::metadata(dir.join("f")).unwrap();
    assert_eq!((m.uid(), m.gid()), (u.u.uid, u.u.gid));

    // keep-id: the user's uid inside, and it writes files as the user too.
    let out = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--userns=keep-id",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "id -u; echo y > /b/g",
    ]);
    assert_eq!(out, format!("{}\n", u.u.uid));
    assert_eq!(std::fs::metadata(dir.join("g")).unwrap().uid(), u.u.uid);
    let (code, _, err) = u.run(&["run", "--rm", "--userns=host", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("--userns=host is not possible rootless"),
        "{err}"
    );

    // A limit cannot apply on cgroup v1: one warning, recorded, and the container runs.
    let (code, out, err) = u.run(&[
        "run",
        "--name",
        "lim",
        "--network",
        "none",
        "-m",
        "64m",
        "busybox",
        "echo",
        "ran",
    ]);
    assert_eq!((code, out.as_str()), (0, "ran\n"), "{err}");
    assert_eq!(
        err.matches("WARNING: memory limit not applied").count(),
        1,
        "{err}"
    );
    let dropped = u.ok(&["inspect", "-f", "{{json .HostConfig.DroppedLimits}}", "lim"]);
    assert!(dropped.contains("memory limit not applied"), "{dropped}");
    u.ok(&["rm", "lim"]);

    // A named volume.
    u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "vol1:/v",
        "busybox",
        "sh",
        "-c",
        "echo kept > /v/f",
    ]);
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            "vol1:/v",
            "busybox",
            "cat",
            "/v/f"
        ]),
        "kept\n"
    );
    u.ok(&["volume", "rm", "vol1"]);

    // -p reachable with curl from the host, through the default (user-mode) network.
    let port = free_port();
    let publish = format!("{port}:80");
    u.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &publish,
        "busybox",
        "sh",
        "-c",
        "mkdir /w; echo hello-web > /w/index.html; exec httpd -f -p 80 -h /w",
    ]);
    let url = format!("http://127.0.0.1:{port}/");
    let got = common::wait_for(10, || curl(&url).as_deref() == Some("hello-web\n"));
    assert!(got, "-p {publish} not reachable");
    u.ok(&["rm", "-f", "web"]);
    let (code, _, err) = u.run(&["run", "--rm", "-p", "80:80", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("net.ipv4.ip_unprivileged_port_start"), "{err}");
    assert!(
        u.ok(&["ps", "-aq"]).is_empty(),
        "a refused run left a container"
    );

    // -it through a terminal.
    let cmd = format!(
        "exec '{}' run --rm -it --network none busybox tty",
        common::hako_bin()
    );
    let out =
        u.u.command("timeout")
            .args(["60", "script", "-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("/dev/pts/0"), "{shown}");
    // And `exec -it` into a running container: the runtime clones the process into the
    // container's pid namespace, after which a rootless process could start no thread, the
    // terminal relay's (it failed with EINVAL from the thread's creation).
    u.ok(&[
        "run",
        "-d",
        "--name",
        "term",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    let cmd = format!(
        "exec '{}' exec -it term sh -c 'tty; echo typed-$(head -n1)'",
        common::hako_bin()
    );
    let mut child =
        u.u.command("timeout")
            .args(["60", "script", "-qec", &cmd, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"abc\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("/dev/pts/"), "{shown}");
    assert!(shown.contains("typed-abc"), "{shown}");
    // Without -t, the output arrives through pipes, and a foreground run's is logged.
    assert_eq!(
        u.ok(&[
            "exec",
            "term",
            "sh",
            "-c",
            "echo piped; readlink /proc/self/fd/1"
        ])
        .lines()
        .next(),
        Some("piped")
    );
    u.ok(&["rm", "-f", "term"]);
    u.ok(&[
        "run",
        "--name",
        "logged",
        "--network",
        "none",
        "busybox",
        "echo",
        "in-the-log",
    ]);
    assert_eq!(u.ok(&["logs", "logged"]), "in-the-log\n");
    u.ok(&["rm", "logged"]);

    // save/load, then prune.
    let saved = u.u.home.join("b1.tar");
    u.ok(&["save", "-o", saved.to_str().unwrap(), "b1"]);
    u.ok(&["rmi", "b1"]);
    u.ok(&["load", "-i", saved.to_str().unwrap()]);
    assert!(u
        .ok(&["run", "--rm", "--network", "none", "b1"])
        .starts_with("65532\n"));
    u.ok(&["rmi", "b1"]);
    u.ok(&["image", "prune", "-a", "-f"]);
    assert!(u.ok(&["images", "-q"]).is_empty());
    u.assert_nothing_runs();
    assert_eq!(u.holders(), 1, "one user namespace holder for all commands");
}

#[test]
fn pull_from_a_local_registry() {
    let reg = hako_testkit::Registry::start();
    let root = common::Root::with_busybox();
    let name = format!("127.0.0.1:{}/bb:latest", reg.port);
    root.ok(&["tag", "busybox", &name]);
    root.ok(&["push", &name]);
    let u = User::new(SubIds::Count(65536));
    u.ok(&["pull", &name]);
    assert_eq!(
        u.ok(&["run", "--rm", "--network", "none", &name, "echo", "pulled"]),
        "pulled\n"
    );
    u.assert_nothing_runs();
}

#[test]
fn two_users_at_once_keep_apart() {
    let a = User::new(SubIds::Count(65536));
    let b = User::new(SubIds::Count(65536));
    let tar = busybox_tar();
    for u in [&a, &b] {
        u.ok(&["import", &tar, "busybox"]);
        u.ok(&[
            "run", "-d", "--name", "same", "-p", "80", "busybox", "sleep", "300",
        ]);
    }
    let mut host_ports = Vec::new();
    for u in [&a, &b] {
        let names = u.ok(&["ps", "--format", "{{.Names}}"]);
        assert_eq!(names, "same\n");
        // The default network's published port shows as for root: ps, port, inspect.
        let port = u.ok(&["port", "same", "80"]);
        let hp: u16 = port
            .lines()
            .next()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("hako port: {port:?}"));
        let ps = u.ok(&["ps", "--format", "{{.Ports}}"]);
        assert!(ps.contains(&format!(":{hp}->80/tcp")), "{ps}");
        let ins = u.ok(&[
            "inspect",
            "-f",
            "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}",
            "same",
        ]);
        assert_eq!(ins.trim(), hp.to_string());
        host_ports.push(hp);
    }
    assert_ne!(host_ports[0], host_ports[1], "two users on one host port");
    a.ok(&["rm", "-f", "same"]);
    assert_eq!(b.ok(&["ps", "--format", "{{.Names}}"]), "same\n");
    b.ok(&["rm", "-f", "same"]);
    a.assert_nothing_runs();
    b.assert_nothing_runs();
}

#[test]
fn missing_mechanisms_are_one_line_errors_and_leave_nothing() {
    let none = User::new(SubIds::None);
    let (code, out, err) = none.run(&["run", "--rm", "busybox", "true"]);
    assert_eq!(code, 125, "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/etc/subuid has no entry for user"), "{err}");
    let (code, _, err) = none.run(&["images"]);
    assert_eq!(code, 1);
    assert!(err.contains("/etc/subuid"), "{err}");
    let info = none.ok(&["info"]);
    assert!(
        info.contains("Ids: none: /etc/subuid has no entry"),
        "{info}"
    );
    assert_eq!(none.holders(), 0);
    none.assert_nothing_runs();

    let u = User::new(SubIds::Count(65536));
    let out = u
        .cmd(&["images"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("install the package uidmap"), "{err}");
    assert_eq!(u.holders(), 0);

    // busybox's /home/hako belongs to uid 1234, beyond a 1000-id range.
    let small = User::new(SubIds::Count(1000));
    let (code, _, err) = small.run(&["import", &busybox_tar(), "busybox"]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("belongs to uid 1234, which is beyond the user namespace (ids 0-1000 exist): ask for a range of at least 1234 subordinate ids in /etc/subuid"),
        "{err}"
    );
    assert!(small.ok(&["images", "-q"]).is_empty());
    let layers = small.u.home.join(".local/share/hako/layers");
    let left = std::fs::read_dir(&layers).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        left,
        0,
        "a failed import left a layer in {}",
        layers.display()
    );
    // An id beyond the range at run time is named with the file and the range.
    let ok = User::new(SubIds::Count(65536));
    ok.ok(&["import", &busybox_tar(), "busybox"]);
    let (code, _, err) = ok.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--user",
        "70000",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("uid 70000 is beyond the user namespace: /etc/subuid grants user")
            && err.contains("(65536 ids)"),
        "{err}"
    );
    assert!(ok.ok(&["ps", "-aq"]).is_empty());
    ok.assert_nothing_runs();
    small.assert_nothing_runs();
}

#[test]
fn kill_9_during_run_then_the_next_command_repairs() {
    let u = User::new(SubIds::Count(65536));
    u.ok(&["import", &busybox_tar(), "busybox"]);
    let mut child = u
        .cmd(&["run", "--name", "kk", "busybox", "sleep", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(common::wait_for(20, || u
        .processes()
        .iter()
        .any(|(_, c)| c.starts_with("sleep 300"))));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    // The container dies with its parent; the next command records it as exited.
    let exited = common::wait_for(10, || {
        u.ok(&["ps", "-a", "--format", "{{.Status}}"])
            .starts_with("Exited")
    });
    assert!(exited, "{}", u.ok(&["ps", "-a"]));
    u.ok(&["rm", "kk"]);
    u.assert_nothing_runs();
}

/// The host's first non-loopback IPv4 address: a container reaches it through the user-mode
/// stack, as any outside address.
fn host_ip() -> String {
    let out = Command::new("hostname").arg("-I").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|a| !a.is_loopback())
        })
        .expect("the host has an IPv4 address")
        .to_string()
}

fn curl(url: &str) -> Option<String> {
    let o = Command::new("curl")
        .args(["-sf", "--max-time", "2", url])
        .output()
        .ok()?;
    o.status
        .success()
        .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
}

impl User {
    /// The user's network namespace holder's pid file, and whether it names a live process.
    fn netns_file(&self) -> std::path::PathBuf {
        self.u.runtime_dir().join("hako/netns.pid")
    }

    /// Starts a web server named `name` on `network` publishing `port`, serving `text`.
    fn web(&self, name: &str, network: &str, port: u16, text: &str) {
        let publish = format!("{port}:80");
        let script = format!("mkdir /w; echo {text} > /w/index.html; exec httpd -f -p 80 -h /w");
        self.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            network,
            "-p",
            &publish,
            "busybox",
            "sh",
            "-c",
            &script,
        ]);
    }
}

#[test]
fn user_networks_by_name_with_published_ports_and_nothing_left() {
    let u = User::new(SubIds::Count(65536));
    u.ok(&["import", &busybox_tar(), "busybox"]);
    let out = u.ok(&["network", "create", "lab"]);
    assert_eq!(out.trim().len(), 64, "{out}");
    let inspect = u.ok(&["network", "inspect", "lab"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    let bridge = common::bridge_of_doc(&v[0]);
    let subnet = v[0]["IPAM"]["Config"][0]["Subnet"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!subnet.is_empty(), "{inspect}");
    assert!(u
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .contains("lab\n"));
    // The bridge is the user's own, never the host's.
    assert!(
        !std::path::Path::new("/sys/class/net")
            .join(&bridge)
            .exists(),
        "bridge {bridge} in the host's namespace"
    );

    let port = free_port();
    u.web("srv", "lab", port, "hello-lab");
    assert!(
        u.netns_file().exists(),
        "no holder of the user's network namespace"
    );
    let procs = u.processes();
    assert!(
        procs.iter().any(|(_, c)| c.starts_with("slirp4netns")),
        "{procs:?}"
    );
    // By name, from another container on the network.
    let got = u.ok(&[
        "run",
        "--rm",
        "--network",
        "lab",
        "busybox",
        "wget",
        "-qO-",
        "http://srv/",
    ]);
    assert_eq!(got, "hello-lab\n");
    // -p from the host.
    let url = format!("http://127.0.0.1:{port}/");
    assert!(
        common::wait_for(10, || curl(&url).as_deref() == Some("hello-lab\n")),
        "-p {port} on a user network not reachable"
    );
    // Outward through the one stack: the host's own address, and the port published there.
    let outward = format!("http://{}:{port}/", host_ip());
    let got = u.ok(&[
        "run",
        "--rm",
        "--network",
        "lab",
        "busybox",
        "wget",
        "-qO-",
        &outward,
    ]);
    assert_eq!(got, "hello-lab\n");
    // Other names through the network's name server, forwarded via the stack to the host's
    // resolver: checked where the host resolves a public name itself.
    let host = Command::new("getent")
        .args(["hosts", "deb.debian.org"])
        .output()
        .unwrap();
    if let Some(addr) = String::from_utf8_lossy(&host.stdout)
        .split_whitespace()
        .next()
    {
        let got = u.ok(&[
            "run",
            "--rm",
            "--network",
            "lab",
            "busybox",
            "nslookup",
            "deb.debian.org",
        ]);
        assert!(got.contains(addr), "{got}");
    }
    // Published ports as for root: ps, port, inspect.
    let ps = u.ok(&["ps", "--format", "{{.Ports}}"]);
    assert!(ps.contains(&format!("0.0.0.0:{port}->80/tcp")), "{ps}");
    let p = u.ok(&["port", "srv", "80"]);
    assert!(p.contains(&format!("0.0.0.0:{port}")), "{p}");
    let hp = u.ok(&[
        "inspect",
        "-f",
        "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}",
        "srv",
    ]);
    assert_eq!(hp.trim(), port.to_string());
    let (code, _, err) = u.run(&["network", "rm", "lab"]);
    assert_eq!(code, 1, "a network in use was removed");
    assert!(
        err.contains("srv") || err.contains("active endpoints"),
        "{err}"
    );

    u.ok(&["rm", "-f", "srv"]);
    assert!(curl(&url).is_none(), "port {port} still served after rm");
    u.ok(&["network", "rm", "lab"]);
    assert!(
        !u.netns_file().exists(),
        "the network namespace's holder is recorded still"
    );
    u.assert_nothing_runs();
}

#[test]
fn two_users_with_same_named_networks_keep_apart() {
    let a = User::new(SubIds::Count(65536));
    let b = User::new(SubIds::Count(65536));
    for u in [&a, &b] {
        u.ok(&["import", &busybox_tar(), "busybox"]);
        u.ok(&["network", "create", "same"]);
    }
    let pa = free_port();
    let pb = loop {
        let p = free_port();
        if p != pa {
            break p;
        }
    };
    a.web("www", "same", pa, "from-a");
    b.web("www", "same", pb, "from-b");
    for (u, text) in [(&a, "from-a\n"), (&b, "from-b\n")] {
        let got = u.ok(&[
            "run",
            "--rm",
            "--network",
            "same",
            "busybox",
            "wget",
            "-qO-",
            "http://www/",
        ]);
        assert_eq!(got, text, "user {}", u.u.name);
    }
    for (p, text) in [(pa, "from-a\n"), (pb, "from-b\n")] {
        let url = format!("http://127.0.0.1:{p}/");
        assert!(common::wait_for(10, || curl(&url).as_deref() == Some(text)));
    }
    // A host port is the host's: the other user cannot take it.
    let taken = format!("{pa}:80");
    let (code, _, err) = b.run(&[
        "run",
        "--rm",
        "--network",
        "same",
        "-p",
        &taken,
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains(&pa.to_string()), "{err}");
    assert_eq!(b.ok(&["ps", "-q"]).lines().count(), 1);
    for u in [&a, &b] {
        u.ok(&["rm", "-f", "www"]);
        u.ok(&["network", "rm", "same"]);
    }
    a.assert_nothing_runs();
    b.assert_nothing_runs();
}

#[test]
fn a_killed_network_namespace_is_made_again_on_next_use() {
    let u = User::new(SubIds::Count(65536));
    u.ok(&["import", &busybox_tar(), "busybox"]);
    u.ok(&["network", "create", "n"]);
    u.ok(&[
        "run",
        "-d",
        "--name",
        "old",
        "--network",
        "n",
        "busybox",
        "sleep",
        "300",
    ]);
    let text = std::fs::read_to_string(u.netns_file()).unwrap();
    let holder: i32 = text.split_whitespace().next().unwrap().parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(holder),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // The stack and the namespace's keeper go with it.
    assert!(common::wait_for(10, || !u.processes().iter().any(
        |(_, c)| c.starts_with("slirp4netns") || c.contains("__usernet-netns")
    )));
    let port = free_port();
    u.web("new", "n", port, "again");
    let got = u.ok(&[
        "run",
        "--rm",
        "--network",
        "n",
        "busybox",
        "wget",
        "-qO-",
        "http://new/",
    ]);
    assert_eq!(got, "again\n");
    let url = format!("http://127.0.0.1:{port}/");
    assert!(common::wait_for(10, || curl(&url).as_deref() == Some("again\n")));
    u.ok(&["rm", "-f", "old", "new"]);
    // The user namespace's holder killed too: the network namespace, owned by the old one,
    // is out of reach, and makes way for a new one.
    let holders: Vec<i32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().parse::<i32>().ok()?;
            let uid = std::fs::metadata(e.path()).ok()?.uid();
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            (uid == u.u.uid && String::from_utf8_lossy(&cmd).contains("__userns-holder"))
                .then_some(pid)
        })
        .collect();
    assert_eq!(holders.len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(holders[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    // SIGKILL takes effect asynchronously: a command that came first would join the old
    // namespace (a race of the user namespace's holder, not of networks).
    let gone = common::wait_for(10, || {
        std::fs::read_to_string(format!("/proc/{}/stat", holders[0]))
            .map_or(true, |s| s.contains(") Z "))
    });
    assert!(gone);
    let port = free_port();
    u.web("newer", "n", port, "third");
    let (code, got, err) = u.run(&[
        "run",
        "--rm",
        "--network",
        "n",
        "busybox",
        "wget",
        "-qO-",
        "http://newer/",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(got, "third\n");
    let url = format!("http://127.0.0.1:{port}/");
    assert!(common::wait_for(10, || curl(&url).as_deref() == Some("third\n")));
    u.ok(&["rm", "-f", "newer"]);
    u.ok(&["network", "rm", "n"]);
    u.assert_nothing_runs();
}

#[test]
fn kill_9_during_pull_then_the_next_command_repairs() {
    let reg = hako_testkit::Registry::start();
    let root = common::Root::with_busybox();
    let name = format!("127.0.0.1:{}/killed:latest", reg.port);
    root.ok(&["tag", "busybox", &name]);
    root.ok(&["push", &name]);
    let u = User::new(SubIds::Count(65536));
    let data = u.u.home.join(".local/share/hako");
    let count = |dir: &str| {
        std::fs::read_dir(data.join(dir))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    // At assorted moments: joining the namespace, the manifest, the layer, the commit.
    for delay in [0u64, 20, 50, 100, 200, 400] {
        let mut child = u
            .cmd(&["pull", "-q", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        // By the pid of the child this test started (rootless hako re-executes in place).
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let _ = child.wait();
        // The next command repairs: a committed image is whole, else nothing is there.
        if u.ok(&["images", "-q"]).is_empty() {
            assert_eq!(
                count("layers"),
                0,
                "a layer without an image (delay {delay})"
            );
        } else {
            assert_eq!(
                u.ok(&["run", "--rm", "--network", "none", &name, "echo", "whole"]),
                "whole\n"
            );
        }
        assert_eq!(count("tmp"), 0, "leftovers in tmp/ (delay {delay})");
        u.ok(&["pull", "-q", &name]);
        u.ok(&["rmi", &name]);
        u.ok(&["image", "prune", "-a", "-f"]);
        assert_eq!(count("layers"), 0);
        u.assert_nothing_runs();
    }
    // No mount of the user's is left in the host's namespace.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let home = u.u.home.to_string_lossy().into_owned();
    assert!(!mounts.contains(&home), "{mounts}");
}

#[test]
fn connect_disconnect_prune_and_kill_9_on_user_networks() {
    let u = User::new(SubIds::Count(65536));
    u.ok(&["import", &busybox_tar(), "busybox"]);
    u.ok(&["network", "create", "--subnet", "10.77.0.0/24", "front"]);
    u.ok(&["network", "create", "back"]);
    u.ok(&[
        "run",
        "-d",
        "--name",
        "app",
        "--network",
        "front",
        "--ip",
        "10.77.0.50",
        "--network-alias",
        "api",
        "busybox",
        "sleep",
        "300",
    ]);
    let got = u.ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        "busybox",
        "nslookup",
        "api",
    ]);
    assert!(got.contains("10.77.0.50"), "{got}");
    let ip = u.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.front.IPAddress}}",
        "app",
    ]);
    assert_eq!(ip.trim(), "10.77.0.50");
    let (code, _, err) = u.run(&["network", "connect", "bridge", "app"]);
    assert_eq!(code, 1);
    assert!(err.contains("user-mode stack"), "{err}");
    u.ok(&["network", "connect", "back", "app"]);
    assert!(u.ok(&["exec", "app", "ip", "-4", "addr"]).contains("eth1"));
    let got = u.ok(&[
        "run",
        "--rm",
        "--network",
        "back",
        "busybox",
        "ping",
        "-c1",
        "-W2",
        "app",
    ]);
    assert!(got.contains("1 packets received"), "{got}");
    let ins = u.ok(&["network", "inspect", "back"]);
    assert!(ins.contains("\"Name\": \"app\""), "{ins}");
    u.ok(&["network", "disconnect", "back", "app"]);
    assert!(!u.ok(&["exec", "app", "ip", "-4", "addr"]).contains("eth1"));
    // back is unused now; front is app's.
    assert!(u.ok(&["network", "prune", "-f"]).contains("back"));
    assert_eq!(u.ok(&["network", "ls", "-q", "--filter", "name=back"]), "");

    // kill -9 of a foreground run on the network: the next command releases its address,
    // veth and name server.
    let mut child = u
        .cmd(&[
            "run",
            "--name",
            "kk",
            "--network",
            "front",
            "busybox",
            "sleep",
            "300",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(common::wait_for(20, || u
        .ok(&["ps", "--format", "{{.Names}}"])
        .contains("kk")));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    assert!(common::wait_for(10, || u
        .ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
        .contains("kk Exited")));
    u.ok(&["rm", "kk"]);
    let eps = u.ok(&["network", "inspect", "-f", "{{len .Containers}}", "front"]);
    assert_eq!(eps.trim(), "1", "kk's endpoint is left");
    u.ok(&["rm", "-f", "app"]);
    assert!(u.ok(&["network", "prune", "-f"]).contains("front"));
    assert!(!u.netns_file().exists());
    u.assert_nothing_runs();
}

#[test]
fn kill_9_during_network_create_leaves_no_namespace_behind() {
    let u = User::new(SubIds::Count(65536));
    for (i, delay) in [0u64, 20, 50, 100, 200, 400].into_iter().enumerate() {
        let name = format!("k{i}");
        let mut child = u
            .cmd(&["network", "create", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay));
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let _ = child.wait();
        u.ok(&["network", "prune", "-f"]);
        assert_eq!(
            u.ok(&["network", "ls", "-q", "--filter", "type=custom"]),
            "",
            "delay {delay}"
        );
        u.assert_nothing_runs();
    }
    u.ok(&["network", "create", "after"]);
    u.ok(&["network", "rm", "after"]);
    u.assert_nothing_runs();
}

#[test]
fn a_user_network_without_its_stack_is_one_line_and_leaves_nothing() {
    let u = User::new(SubIds::Count(65536));
    u.ok(&["import", &busybox_tar(), "busybox"]);
    // The user namespace exists already: only slirp4netns is missing from $PATH.
    let out = u
        .cmd(&["network", "create", "nostack"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        err.trim(),
        "hako: the user's network namespace: slirp4netns not found: install the package slirp4netns"
    );
    assert_eq!(
        u.ok(&["network", "ls", "-q", "--filter", "type=custom"]),
        ""
    );
    assert!(!u.netns_file().exists());
    u.assert_nothing_runs();
    // A network whose namespace is gone (a reboot): run cannot make it again without the
    // stack, says so, and leaves no container.
    u.ok(&["network", "create", "nostack"]);
    let text = std::fs::read_to_string(u.netns_file()).unwrap();
    let holder: i32 = text.split_whitespace().next().unwrap().parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(holder),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    u.assert_nothing_runs();
    let out = u
        .cmd(&["run", "--rm", "--network", "nostack", "busybox", "true"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("install the package slirp4netns"), "{err}");
    assert_eq!(u.ok(&["ps", "-aq"]), "");
    u.ok(&["network", "rm", "nostack"]);
    u.assert_nothing_runs();
}

/// A user namespace may not make device nodes, and images carry some (Debian's rootfs has
/// /dev/console): the layer unpacks without them, as with Docker and Podman rootless.
#[test]
fn device_nodes_in_a_layer_are_left_out_rootless() {
    let u = User::new(SubIds::Count(65536));
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let path = dir.path().join("devices.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Char);
        h.set_device_major(5).unwrap();
        h.set_device_minor(1).unwrap();
        h.set_mode(0o600);
        h.set_size(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, "dev/console", std::io::empty())
            .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(3);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, "hello", &b"hi\n"[..]).unwrap();
        b.finish().unwrap();
    }
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    u.ok(&["import", path.to_str().unwrap(), "devices"]);
    let layers = u.ok(&[
        "image",
        "inspect",
        "-f",
        "{{len .RootFS.Layers}}",
        "devices",
    ]);
    assert_eq!(layers.trim(), "1");
    u.ok(&["rmi", "devices"]);
    u.assert_nothing_runs();
}

/// The commands the journey does not use, as an ordinary user on a host that cannot delegate
/// cgroups: what needs a cgroup is read from the container's processes (top, stats) or refused
/// naming why (pause, limit updates); the rest behaves as for root.
#[test]
fn every_other_command_works_rootless() {
    let reg = hako_testkit::Registry::start();
    let u = User::new(SubIds::Count(65536));
    u.ok(&["import", &busybox_tar(), "busybox"]);

    // push, login and logout against the local registry, and a pull back.
    let name = format!("127.0.0.1:{}/rootless/bb:1", reg.port);
    u.ok(&["tag", "busybox", &name]);
    u.ok(&["push", &name]);
    u.ok(&["rmi", &name]);
    let server = format!("127.0.0.1:{}", reg.port);
    let login = u.ok(&["login", "-u", "someone", "-p", "pw", &server]);
    assert!(login.contains("Login Succeeded"), "{login}");
    let config = std::fs::read_to_string(u.u.home.join(".docker/config.json")).unwrap();
    assert!(config.contains(&server), "{config}");
    u.ok(&["pull", "-q", &name]);
    u.ok(&["logout", &server]);
    u.ok(&["rmi", &name]);

    // events while the rest happens.
    let events = u
        .cmd(&[
            "events",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    // A --tmpfs mount, top and stats from the container's processes.
    u.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "--network",
        "none",
        "--tmpfs",
        "/scratch:size=1m",
        "busybox",
        "sh",
        "-c",
        "echo in-tmpfs > /scratch/f; dd if=/dev/zero of=/big bs=1M count=8 2>/dev/null; while :; do :; done",
    ]);
    assert!(common::wait_for(10, || u
        .run(&["exec", "busy", "cat", "/scratch/f"])
        .1
        == "in-tmpfs\n"));
    let mounts = u.ok(&["exec", "busy", "grep", " /scratch ", "/proc/mounts"]);
    assert!(
        mounts.contains("tmpfs") && mounts.contains("size=1024k"),
        "{mounts}"
    );
    let top = u.ok(&["top", "busy", "-o", "pid,comm"]);
    assert!(top.lines().count() >= 2 && top.contains("sh"), "{top}");
    let sample = || {
        u.ok(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}|{{.BlockIO}}",
            "busy",
        ])
    };
    let cpu = |s: &str| -> f64 { s.split('%').next().unwrap().parse().unwrap() };
    // The loop starts once dd is done.
    let mut stats = sample();
    for _ in 0..10 {
        if cpu(&stats) > 20.0 {
            break;
        }
        stats = sample();
    }
    assert!(cpu(&stats) > 20.0, "a busy loop shows its CPU: {stats}");
    let f: Vec<&str> = stats.trim().split('|').collect();
    assert!(!f[1].starts_with("0B"), "memory in use: {stats}");
    assert_ne!(f[2], "0", "processes: {stats}");
    assert!(!f[3].ends_with("/ 0B"), "the 8 MB written: {stats}");

    // What needs a cgroup is refused with the reason, and changes nothing.
    let (code, _, err) = u.run(&["pause", "busy"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot pause container busy: it has no cgroup to freeze")
            && err.contains("cgroup v1 cannot be delegated")
            && err.lines().count() == 1,
        "{err}"
    );
    let (code, _, err) = u.run(&["update", "--memory", "64m", "busy"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot update container busy"), "{err}");
    assert_eq!(
        u.ok(&["inspect", "-f", "{{.HostConfig.Memory}}", "busy"]),
        "0\n"
    );
    u.ok(&["update", "--restart", "unless-stopped", "busy"]);
    assert_eq!(
        u.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.RestartPolicy.Name}}",
            "busy"
        ]),
        "unless-stopped\n"
    );

    // cp both ways, diff, commit and its history, export.
    let inside = u.u.home.join("to-container");
    u.u.write_file("to-container", b"copied in\n");
    u.ok(&["cp", inside.to_str().unwrap(), "busy:/root/in"]);
    assert_eq!(u.ok(&["exec", "busy", "cat", "/root/in"]), "copied in\n");
    let out = u.u.home.join("from-container");
    u.ok(&["cp", "busy:/root/in", out.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&out).unwrap().uid(), u.u.uid);
    let diff = u.ok(&["diff", "busy"]);
    assert!(
        diff.contains("A /root/in") && diff.contains("A /big"),
        "{diff}"
    );
    u.ok(&["commit", "busy", "snap"]);
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "snap",
            "cat",
            "/root/in"
        ]),
        "copied in\n"
    );
    assert!(u.ok(&["history", "-q", "snap"]).lines().count() >= 2);
    let tar = u.u.home.join("busy.tar");
    u.ok(&["export", "-o", tar.to_str().unwrap(), "busy"]);
    let listing = Command::new("tar").arg("-tf").arg(&tar).output().unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout).contains("root/in"));

    // rename, restart, kill and wait's status, attach to a running container.
    u.ok(&["rename", "busy", "busy2"]);
    u.ok(&["restart", "-t", "1", "busy2"]);
    assert_eq!(
        u.ok(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.RestartCount}}",
            "busy2"
        ]),
        "true 0\n"
    );
    u.ok(&["kill", "busy2"]);
    assert_eq!(u.ok(&["wait", "busy2"]), "137\n");
    u.ok(&[
        "run",
        "-d",
        "--name",
        "talk",
        "--network",
        "none",
        "busybox",
        "sh",
        "-c",
        "sleep 1; echo one; echo two",
    ]);
    let attached =
        u.u.command("timeout")
            .args(["20", common::hako_bin(), "attach", "talk"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
    assert!(
        String::from_utf8_lossy(&attached.stdout).contains("two"),
        "{attached:?}"
    );
    let df = u.ok(&["system", "df"]);
    assert!(df.contains("Containers"), "{df}");
    u.ok(&["rm", "-f", "busy2", "talk"]);
    u.ok(&["rmi", "snap"]);

    let _ = Command::new("kill").arg(events.id().to_string()).status();
    let seen = events.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&seen.stdout);
    for want in [
        "container start busy",
        "container rename busy2",
        "image tag snap",
        "container kill busy2",
        "container die talk",
        "container destroy talk",
    ] {
        assert!(seen.contains(want), "{want:?} not in events:\n{seen}");
    }
    u.assert_nothing_runs();
}

/// Docker's API for an ordinary user: `hako system service` listens in the user's runtime
/// directory (root's /run/hako is not the user's), and the docker CLI drives it there.
#[test]
fn the_docker_api_rootless() {
    let docker = ["/usr/local/bin/docker", "/usr/bin/docker"]
        .into_iter()
        .find(|d| std::path::Path::new(d).exists());
    let Some(docker) = docker else {
        eprintln!("skipped: no docker CLI is installed");
        return;
    };
    let u = User::new(SubIds::Count(65536));
    u.ok(&["import", &busybox_tar(), "busybox"]);
    let sock = u.u.runtime_dir().join("hako/docker.sock");
    let mut service = u
        .cmd(&["system", "service", "--time", "0"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        common::wait_for(20, || sock.exists()),
        "no socket at {sock:?}"
    );
    let host = format!("unix://{}", sock.display());
    let d = |args: &[&str]| {
        let o =
            u.u.command(docker)
                .env("DOCKER_HOST", &host)
                .args(args)
                .output()
                .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = d(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "echo",
        "via-api",
    ]);
    assert_eq!((code, out.as_str()), (0, "via-api\n"), "{err}");
    let (_, out, err) = d(&[
        "info",
        "--format",
        "{{json .SecurityOptions}} {{.CgroupDriver}}",
    ]);
    assert!(
        out.contains("name=rootless") && out.contains(" none"),
        "{out}{err}"
    );
    let (code, _, err) = d(&[
        "run",
        "-d",
        "--name",
        "api1",
        "--network",
        "none",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, out, err) = d(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.MemUsage}} {{.PIDs}}",
        "api1",
    ]);
    assert!(
        !out.contains("/ 0B") && !out.ends_with(" 0\n"),
        "{out}{err}"
    );
    let (_, out, _) = d(&["top", "api1"]);
    assert!(out.contains("sleep 60"), "{out}");
    let (code, _, err) = d(&["rm", "-f", "api1"]);
    assert_eq!(code, 0, "{err}");
    let _ = Command::new("kill").arg(service.id().to_string()).status();
    let _ = service.wait();
    u.assert_nothing_runs();
}

/// The host's cgroup2 mount point and the controllers its root offers, from mountinfo.
fn cgroup2_mount() -> Option<std::path::PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        (post.split_whitespace().next()? == "cgroup2")
            .then(|| pre.split_whitespace().nth(4).map(std::path::PathBuf::from))?
    })
}

/// The leaf hako moves a delegated cgroup's own processes into (hako_cgroups::rootless).
const CALLER_LEAF: &str = "hako-caller";

/// Undoes the delegation set-up of the test below, whatever happens in it.
struct Delegation {
    dirs: Vec<std::path::PathBuf>,
    enabled: Option<(std::path::PathBuf, String)>,
}

/// Kills whatever runs in cgroup `dir` and below (a test that failed half-way leaves its
/// container there), then removes it, deepest first.
fn remove_cgroup_tree(dir: &std::path::Path) {
    let _ = std::fs::write(dir.join("cgroup.kill"), "1");
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    common::wait_for(5, || std::fs::remove_dir(dir).is_ok() || !dir.exists());
}

impl Drop for Delegation {
    fn drop(&mut self) {
        for d in &self.dirs {
            remove_cgroup_tree(d);
        }
        if let Some((file, ctl)) = &self.enabled {
            let _ = std::fs::write(file, format!("-{ctl}"));
        }
    }
}

/// cgroup v2 delegation on the real kernel rather than a fake tree: a private mount namespace
/// where /sys/fs/cgroup is the host's cgroup2 hierarchy alone (as on a cgroup v2 host), a
/// cgroup delegated to the user as systemd's Delegate=yes does (directory and interface files
/// owned by it), and each command started inside it as `systemd-run --user --scope` would.
/// Containers nest in it, the caller is moved into a leaf so controllers can be enabled,
/// pause freezes for real, limits of controllers not delegated are dropped with the reason,
/// and a command from another cgroup still finds and removes the container's cgroup.
#[test]
fn a_delegated_cgroup_v2_subtree_on_the_real_kernel() {
    require_root();
    let Some(mount) = cgroup2_mount() else {
        eprintln!("skipped: this host has no cgroup2 hierarchy");
        return;
    };
    let offered = std::fs::read_to_string(mount.join("cgroup.controllers")).unwrap_or_default();
    let enabled = std::fs::read_to_string(mount.join("cgroup.subtree_control")).unwrap_or_default();
    let Some(first) = offered.split_whitespace().next() else {
        eprintln!(
            "skipped: the cgroup2 hierarchy has no controller to delegate (all are in cgroup v1)"
        );
        return;
    };
    let u = User::new(SubIds::Count(65536));
    u.ok(&["import", &busybox_tar(), "busybox"]);
    let name = format!("deleg-{}", std::process::id());
    let host_dir = mount.join(&name);
    let elsewhere = format!("{name}-other");
    let mut guard = Delegation {
        dirs: vec![host_dir.clone(), mount.join(&elsewhere)],
        enabled: None,
    };
    // A delegated cgroup needs a controller its parent enables for it.
    if enabled.split_whitespace().next().is_none() {
        std::fs::write(mount.join("cgroup.subtree_control"), format!("+{first}")).unwrap();
        guard.enabled = Some((mount.join("cgroup.subtree_control"), first.to_string()));
    }
    std::fs::create_dir(&host_dir).unwrap();
    for f in [
        "",
        "cgroup.procs",
        "cgroup.subtree_control",
        "cgroup.threads",
    ] {
        nix::unistd::chown(
            &host_dir.join(f),
            Some(u.u.uid.into()),
            Some(u.u.gid.into()),
        )
        .unwrap();
    }
    let delegated = std::fs::read_to_string(host_dir.join("cgroup.controllers")).unwrap();
    // Each command: the private cgroup v2 view, then the cgroup it is started in (the
    // delegated one, or `elsewhere`, a root-owned one), then the user.
    std::fs::create_dir(mount.join(&elsewhere)).unwrap();
    let in_cgroup = |cgroup: &str, args: &[&str]| -> (i32, String, String) {
        let script = format!(
            "set -e; umount -l /sys/fs/cgroup; mount -t cgroup2 none /sys/fs/cgroup; \
             echo $$ > /sys/fs/cgroup/{cgroup}/cgroup.procs; \
             exec setpriv --reuid={} --regid={} --init-groups -- \"$@\"",
            u.u.uid, u.u.gid
        );
        // The user's environment, but started as root: unshare and mount need it, and the
        // script switches to the user itself.
        let mut c = Command::new("unshare");
        let login = u.u.command("true");
        c.env_clear()
            .envs(login.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .current_dir(&u.u.home);
        c.args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
            .arg(common::hako_bin())
            .args(args);
        let o = c.output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let ok = |cgroup: &str, args: &[&str]| {
        let (code, out, err) = in_cgroup(cgroup, args);
        assert_eq!(code, 0, "hako {args:?} in {cgroup}: {err}{out}");
        (out, err)
    };

    let (info, _) = ok(&name, &["info"]);
    assert!(
        info.contains(&format!(
            "Cgroups: cgroupfs (v2, delegated /sys/fs/cgroup/{name}"
        )),
        "{info}"
    );
    let (id, _) = ok(
        &name,
        &[
            "run",
            "-d",
            "--name",
            "p1",
            "--network",
            "none",
            "busybox",
            "sleep",
            "300",
        ],
    );
    let cg = host_dir.join(format!("hako-{}", id.trim()));
    let procs = std::fs::read_to_string(cg.join("cgroup.procs")).unwrap();
    assert!(
        !procs.trim().is_empty(),
        "the container's processes are in {cg:?}"
    );
    assert!(
        host_dir.join(CALLER_LEAF).is_dir(),
        "the caller was moved out of the delegated cgroup"
    );
    assert_eq!(
        std::fs::read_to_string(host_dir.join("cgroup.procs")).unwrap(),
        "",
        "no process left in the delegated cgroup itself"
    );
    ok(&name, &["pause", "p1"]);
    assert_eq!(
        std::fs::read_to_string(cg.join("cgroup.freeze")).unwrap(),
        "1\n"
    );
    let (ps, _) = ok(&name, &["ps", "--format", "{{.Status}}"]);
    assert!(ps.contains("(Paused)"), "{ps}");
    ok(&name, &["unpause", "p1"]);
    assert_eq!(
        std::fs::read_to_string(cg.join("cgroup.freeze")).unwrap(),
        "0\n"
    );
    let (top, _) = ok(&name, &["top", "p1"]);
    assert!(top.contains("sleep 300"), "{top}");
    // An update of a limit whose controller is not delegated is refused naming why.
    if !delegated.split_whitespace().any(|c| c == "memory") {
        let (code, _, err) = in_cgroup(&name, &["update", "--memory", "64m", "p1"]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("cannot update container p1: memory limit cannot apply"),
            "{err}"
        );
    }

    // A memory limit: applied where the memory controller is delegated, dropped with the
    // reason where it is not.
    let (out, err) = ok(
        &name,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "-m",
            "64m",
            "busybox",
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory.max 2>/dev/null || echo no memory.max",
        ],
    );
    if delegated.split_whitespace().any(|c| c == "memory") {
        assert_eq!(out, "67108864\n", "{err}");
    } else {
        assert!(
            err.contains("memory limit not applied: cgroup v2 subtree not delegated: controller memory is not in"),
            "{err}"
        );
    }

    // From another cgroup (another login session), the container's cgroup is still found.
    ok(&elsewhere, &["rm", "-f", "p1"]);
    assert!(!cg.exists(), "{cg:?} left behind");
    u.assert_nothing_runs();
    drop(guard);
    assert!(
        !host_dir.exists(),
        "the delegated cgroup could not be removed"
    );
}

/// `--pid host`, `--network host` and `--ipc host` rootless: a user namespace may not mount a
/// fresh proc, sysfs or mqueue for the host's namespaces, so the host's own are bound (they
/// failed with "mount proc on /proc: operation not permitted" before).
#[test]
fn host_namespaces_rootless() {
    let u = User::new(SubIds::Count(65536));
    u.ok(&["import", &busybox_tar(), "busybox"]);
    let me = std::process::id().to_string();
    let out = u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--pid",
        "host",
        "busybox",
        "sh",
        "-c",
        &format!(
            "test -d /proc/{me} && echo sees-the-host; test -e /proc/kcore || echo kcore-masked"
        ),
    ]);
    assert_eq!(out, "sees-the-host\nkcore-masked\n");
    let host_ifaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let out = u.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "sh",
        "-c",
        "ls /sys/class/net; touch /sys/x 2>/dev/null || echo sys-read-only",
    ]);
    for i in &host_ifaces {
        assert!(out.lines().any(|l| l == i), "{i} not in {out}");
    }
    assert!(out.ends_with("sys-read-only\n"), "{out}");
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--ipc",
            "host",
            "busybox",
            "echo",
            "ipc"
        ]),
        "ipc\n"
    );
    // Privileged inside the user namespace: mounts of its own work.
    assert_eq!(
        u.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--privileged",
            "busybox",
            "sh",
            "-c",
            "mount -t tmpfs t /tmp && echo mounted",
        ]),
        "mounted\n"
    );
    u.assert_nothing_runs();
}

/// Files a container's non-root user leaves in a bind mount belong to a subordinate id, which
/// the user cannot remove on the host; `hako unshare` runs a command where those ids are
/// mapped (Podman's `unshare`).
#[test]
fn unshare_removes_what_a_containers_user_left_in_a_bind_mount() {
    let u = User::new(SubIds::Count(65536));
    u.ok(&["import", &busybox_tar(), "busybox"]);
    let dir = u.u.home.join("shared");
    assert!(u
        .u
        .run("mkdir", &["-m", "777", dir.to_str().unwrap()])
        .status
        .success());
    let spec = format!("{}:/b", dir.display());
    u.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-u",
        "1000:1000",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "mkdir /b/sub && touch /b/sub/f",
    ]);
    let sub = dir.join("sub");
    let owner = std::fs::metadata(&sub).unwrap().uid();
    assert_eq!(u64::from(owner), u.u.subid_start.unwrap() + 999);
    let plain = u.u.run("rm", &["-rf", sub.to_str().unwrap()]);
    assert!(
        !plain.status.success(),
        "the user could remove it without unshare"
    );
    assert_eq!(
        u.ok(&["unshare", "stat", "-c", "%u", sub.to_str().unwrap()]),
        "1000\n"
    );
    u.ok(&["unshare", "rm", "-rf", sub.to_str().unwrap()]);
    assert!(!sub.exists());
    // The command's status is hako's; a missing one is 127.
    assert_eq!(u.run(&["unshare", "sh", "-c", "exit 7"]).0, 7);
    assert_eq!(u.run(&["unshare", "no-such-command"]).0, 127);
    u.assert_nothing_runs();
}

/// docker-compose as an ordinary user (`hako compose`, a private service of the user's): two
/// services on a project network finding each other by name, a published port, a named volume,
/// and `down` leaving nothing.
#[test]
fn compose_rootless() {
    if !common::service::have("docker-compose") {
        eprintln!("skipped: docker-compose is not installed (apt-get install docker-compose)");
        return;
    }
    let u = User::new(SubIds::Count(65536));
    u.ok(&["import", &busybox_tar(), "busybox"]);
    let port = free_port();
    u.u.write_file(
        "proj/docker-compose.yml",
        format!(
            r#"version: "3.7"
services:
  db:
    image: busybox
    command: ["sh", "-c", "echo db-ready > /data/state; exec httpd -f -p 8080 -h /data"]
    volumes: [dbdata:/data]
  web:
    image: busybox
    command: ["sh", "-c", "mkdir -p /www; until wget -qO /www/index.html http://db:8080/state; do sleep 0.1; done; exec httpd -f -p 80 -h /www"]
    depends_on: [db]
    ports: ["{port}:80"]
volumes:
  dbdata:
"#
        )
        .as_bytes(),
    );
    let compose = |args: &[&str]| {
        let mut c = u.cmd(&["compose", "-p", "rl"]);
        c.args(args).current_dir(u.u.home.join("proj"));
        let o = c.output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, out, err) = compose(&["up", "-d"]);
    assert_eq!(code, 0, "{out}{err}");
    let url = format!("http://127.0.0.1:{port}/");
    let page = common::wait_for(30, || curl(&url).as_deref() == Some("db-ready\n"));
    assert!(page, "web did not serve db's page through -p");
    let (code, out, err) = compose(&["down", "-v"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(u.ok(&["ps", "-aq"]).is_empty());
    assert!(u.ok(&["volume", "ls", "-q"]).is_empty());
    assert_eq!(
        u.ok(&["network", "ls", "-q", "--filter", "type=custom"]),
        ""
    );
    u.assert_nothing_runs();
}

/// The user's service socket-activated, as the user units in docs/systemd/user start it: the
/// socket on fd 3 with LISTEN_PID/LISTEN_FDS, kept across the join of the user namespace and
/// the re-execution every rootless command does.
#[test]
fn socket_activated_user_service() {
    use std::io::{Read, Write};
    let u = User::new(SubIds::Count(65536));
    // As the unit's DirectoryMode=0700 makes it: hako keeps only a private directory there.
    let dir = u.u.runtime_dir().join("hako");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let path = dir.join("docker.sock");
    let l = std::os::unix::net::UnixListener::bind(&path).unwrap();
    for p in [&dir, &path] {
        nix::unistd::chown(p.as_path(), Some(u.u.uid.into()), Some(u.u.gid.into())).unwrap();
    }
    let mut c = u.u.command("sh");
    c.args([
        "-c",
        "LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" system service --time 0",
        common::hako_bin(),
    ])
    .stdout(Stdio::null());
    common::service::pass_as_fd3(&mut c, &l);
    let mut svc = c.spawn().unwrap();
    let mut s = std::os::unix::net::UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    s.write_all(b"GET /info HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("name=rootless"), "{out}");
    let _ = Command::new("kill").arg(svc.id().to_string()).status();
    let _ = svc.wait();
    drop(l);
    u.assert_nothing_runs();
}
