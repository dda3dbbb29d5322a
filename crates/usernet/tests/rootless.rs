//! The stacks and the forwarder as ordinary users would run them: each test creates its own
//! accounts, whose processes make the user and network namespaces with `unshare` (the engine
//! does not run rootless yet) and run the `hako-usernet` helper for them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hako_testkit::user::TestUser;
use hako_usernet::Ready;

const HELPER: &str = env!("CARGO_BIN_EXE_hako-usernet");
const PY: &str = "/usr/bin/python3";

/// None when the host cannot run these tests, with the reason printed.
fn ready_host() -> Option<()> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: creating test accounts needs root");
        return None;
    }
    for p in ["slirp4netns", "pasta", "unshare", "nsenter", PY] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {p}")])
            .output()
            .ok()?
            .stdout
            .is_empty()
        {
            eprintln!("skipped: {p} is not installed");
            return None;
        }
    }
    // Distributions' udev makes /dev/net/tun 0666 for user-mode networking; a host without
    // udev (this VM) leaves it 0600. The stacks cannot work otherwise, so the suite sets the
    // distribution's mode.
    let tun = std::path::Path::new("/dev/net/tun");
    if !tun.exists() {
        eprintln!("skipped: /dev/net/tun does not exist");
        return None;
    }
    std::fs::set_permissions(tun, std::fs::Permissions::from_mode(0o666)).ok()?;
    Some(())
}

/// A user's container stand-in: `unshare --user --map-root-user --net sleep`, whose pid holds
/// the namespaces.
struct Ns {
    holder: Child,
}

impl Ns {
    fn new(user: &TestUser) -> Ns {
        let holder = user
            .command("unshare")
            .args(["--user", "--map-root-user", "--net", "sleep", "1000"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
        let path = format!("/proc/{}/ns/user", holder.id());
        let t = Instant::now();
        while std::fs::read_link(&path).ok().as_ref() == Some(&ours)
            || std::fs::read_link(&path).is_err()
        {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "unshare did not make namespaces"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Ns { holder }
    }

    fn pid(&self) -> String {
        self.holder.id().to_string()
    }

    /// Runs `args` inside, as the user.
    fn inside(&self, user: &TestUser, args: &[&str]) -> Command {
        let mut c = user.command("nsenter");
        c.args(["--preserve-credentials", "-U", "-n", "-t", &self.pid()])
            .args(args);
        c
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

/// Starts the helper as `user`; returns it and its ready line.
fn helper(user: &TestUser, ns: &Ns, args: &[&str]) -> (Child, Ready) {
    let mut child = user
        .command(HELPER)
        .args(["--pid", &ns.pid()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    if line.is_empty() {
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        panic!("helper {args:?} failed: {err}");
    }
    (child, serde_json::from_str(&line).unwrap())
}

fn host_ip() -> String {
    let out = Command::new("ip")
        .args(["-4", "route", "get", "1.1.1.1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut w = text.split_whitespace();
    while let Some(x) = w.next() {
        if x == "src" {
            return w.next().unwrap().to_string();
        }
    }
    panic!("no source address in {text:?}");
}

/// The user's processes with one of `names` (by /proc/PID/comm).
fn procs_of(uid: u32, names: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let p = e.path();
        let Ok(status) = std::fs::read_to_string(p.join("status")) else {
            continue;
        };
        let owner = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|u| u.parse::<u32>().ok());
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if owner == Some(uid) && names.iter().any(|n| comm.trim().starts_with(n)) {
            found.push(format!("{} {}", p.display(), comm.trim()));
        }
    }
    found
}

fn wait_gone(uid: u32) {
    let names = ["slirp4netns", "passt", "pasta", "hako-usernet"];
    let t = Instant::now();
    while !procs_of(uid, &names).is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "left behind: {:?}",
            procs_of(uid, &names)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP server inside replying `reply` to each connection.
fn tcp_server(ns: &Ns, user: &TestUser, port: u16, reply: &str) -> Child {
    let code = format!(
        "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',{port}))\ns.listen(8)\nwhile True:\n c,a=s.accept()\n c.sendall(b'{reply}')\n c.close()\n"
    );
    ns.inside(user, &[PY, "-c", &code])
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

fn read_from(addr: SocketAddr) -> String {
    let t = Instant::now();
    loop {
        let got = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).and_then(|mut s| {
            let mut text = String::new();
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.read_to_string(&mut text)?;
            Ok(text)
        });
        match got {
            Ok(t) if !t.is_empty() => return t,
            _ if t.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            other => panic!("nothing from {addr}: {other:?}"),
        }
    }
}

fn port_of(ready: &Ready, i: usize) -> SocketAddr {
    let a = ready.ports[i].1;
    SocketAddr::new("127.0.0.1".parse().unwrap(), a.port())
}

#[test]
fn outbound_tcp_reaches_the_host_through_both_stacks() {
    if ready_host().is_none() {
        return;
    }
    let ip = host_ip();
    let server = TcpListener::bind((ip.as_str(), 0)).unwrap();
    let port = server.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut c in server.incoming().flatten() {
            let _ = c.write_all(b"hello from the host");
        }
    });
    let user = TestUser::create();
    for driver in ["slirp4netns", "pasta"] {
        let ns = Ns::new(&user);
        let (mut h, ready) = helper(&user, &ns, &["--stack", driver]);
        assert!(ready.stack_pid.is_some());
        let code = format!(
            "import socket\ns=socket.create_connection(('{ip}',{port}),timeout=5)\nprint(s.recv(100).decode())"
        );
        let out = ns.inside(&user, &[PY, "-c", &code]).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "hello from the host",
            "{driver}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The Docker-like addressing, by both stacks.
        let addr = ns
            .inside(&user, &["ip", "-4", "-o", "addr", "show", "eth0"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&addr.stdout).contains("10.0.2.100/24"),
            "{driver}"
        );
        let route = ns
            .inside(&user, &["ip", "-4", "route", "show", "default"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&route.stdout).contains("via 10.0.2.2"),
            "{driver}"
        );
        drop(ns);
        // The container's exit ends the helper and its stack.
        let t = Instant::now();
        while h.try_wait().unwrap().is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "{driver}: the helper outlived the container"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        wait_gone(user.uid);
    }
}

#[test]
fn published_ports_reach_servers_inside_over_tcp_and_udp() {
    if ready_host().is_none() {
        return;
    }
    let user = TestUser::create();
    let ns = Ns::new(&user);
    let (_h, ready) = helper(
        &user,
        &ns,
        &["-p", "127.0.0.1::8080", "-p", "127.0.0.1::8081/udp"],
    );
    let mut server = tcp_server(&ns, &user, 8080, "tcp through the forwarder");
    assert_eq!(read_from(port_of(&ready, 0)), "tcp through the forwarder");
    // curl, as a user would.
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "5",
            "--http0.9",
            &format!("http://{}/", port_of(&ready, 0)),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "tcp through the forwarder"
    );
    let _ = server.kill();
    let _ = server.wait();

    let echo = "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',8081))\nwhile True:\n d,a=s.recvfrom(2000)\n s.sendto(b'echo:'+d,a)\n";
    let mut udp_server = ns.inside(&user, &[PY, "-c", echo]).spawn().unwrap();
    let client = UdpSocket::bind("127.0.0.1:0").unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 100];
    let t = Instant::now();
    let n = loop {
        client.send_to(b"ping", port_of(&ready, 1)).unwrap();
        match client.recv(&mut buf) {
            Ok(n) => break n,
            Err(_) if t.elapsed() < Duration::from_secs(10) => continue,
            Err(e) => panic!("no UDP reply: {e}"),
        }
    };
    assert_eq!(&buf[..n], b"echo:ping");
    let _ = udp_server.kill();
    let _ = udp_server.wait();
}

#[test]
fn a_port_below_the_unprivileged_start_is_refused_naming_the_sysctl() {
    if ready_host().is_none() {
        return;
    }
    let start = hako_usernet::unprivileged_port_start();
    if start <= 80 {
        eprintln!("skipped: net.ipv4.ip_unprivileged_port_start is {start}, so port 80 is not privileged here");
        return;
    }
    let user = TestUser::create();
    let ns = Ns::new(&user);
    let out = user
        .command(HELPER)
        .args(["--pid", &ns.pid(), "-p", "80:80"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("net.ipv4.ip_unprivileged_port_start ({start})")),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // Refused before anything started.
    assert!(procs_of(user.uid, &["slirp4netns"]).is_empty());
}

#[test]
fn two_users_publish_at_once_without_colliding() {
    if ready_host().is_none() {
        return;
    }
    let (alice, bob) = (TestUser::create(), TestUser::create());
    let (na, nb) = (Ns::new(&alice), Ns::new(&bob));
    let (_ha, ra) = helper(&alice, &na, &["-p", "127.0.0.1::8080"]);
    let (_hb, rb) = helper(&bob, &nb, &["--stack", "pasta", "-p", "127.0.0.1::8080"]);
    assert_ne!(ra.ports[0].1, rb.ports[0].1);
    let mut sa = tcp_server(&na, &alice, 8080, "alice");
    let mut sb = tcp_server(&nb, &bob, 8080, "bob");
    assert_eq!(read_from(port_of(&ra, 0)), "alice");
    assert_eq!(read_from(port_of(&rb, 0)), "bob");
    // Bob cannot take Alice's port: a one-line conflict, and nothing of his stays.
    let taken = format!("127.0.0.1:{}:8080", ra.ports[0].1.port());
    let out = bob
        .command(HELPER)
        .args(["--pid", &nb.pid(), "--stack", "none", "-p", &taken])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("is already in use"), "{err}");
    for s in [&mut sa, &mut sb] {
        let _ = s.kill();
        let _ = s.wait();
    }
}

#[test]
fn kill_9_leaves_no_stack_forwarder_or_socket() {
    if ready_host().is_none() {
        return;
    }
    let user = TestUser::create();
    let api = user.runtime_dir().join("slirp.sock");
    for driver in ["slirp4netns", "pasta"] {
        // The helper killed: its stack goes with it.
        let ns = Ns::new(&user);
        let mut args = vec!["--stack", driver, "-p", "127.0.0.1::8080"];
        let api_s = api.to_string_lossy().to_string();
        if driver == "slirp4netns" {
            args.extend(["--api-socket", &api_s]);
        }
        let (mut h, _) = helper(&user, &ns, &args);
        if driver == "slirp4netns" {
            assert!(api.exists());
        }
        assert!(!procs_of(
            user.uid,
            &[if driver == "pasta" { "passt" } else { driver }]
        )
        .is_empty());
        h.kill().unwrap();
        h.wait().unwrap();
        wait_gone(user.uid);
        drop(ns);

        // The helper's parent (the `hako` that started it) killed: the helper serves on, as
        // for a detached container, and goes with the container.
        let ns = Ns::new(&user);
        let script = format!(
            "{HELPER} --pid {} --stack {driver} -p 127.0.0.1::8080 & wait",
            ns.pid()
        );
        let mut parent = user
            .command("sh")
            .args(["-c", &script])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(parent.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: Ready = serde_json::from_str(&line).unwrap();
        parent.kill().unwrap();
        parent.wait().unwrap();
        let mut server = tcp_server(&ns, &user, 8080, "still served");
        assert_eq!(read_from(port_of(&ready, 0)), "still served");
        let _ = server.kill();
        let _ = server.wait();
        drop(ns);
        wait_gone(user.uid);
    }
    assert!(!api.exists(), "slirp4netns' API socket left behind");
}
