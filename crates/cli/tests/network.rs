//! Networking as a user sees it: the default bridge with NAT, published ports, user networks,
//! `--network none|host`, and nothing left behind.

mod common;

use common::{images_dir, wait_for, Root};

#[test]
fn default_bridge_gives_an_address_a_route_and_hosts_entry() {
    let r = Root::with_busybox();
    let out = r.ok(&[
        "run",
        "--rm",
        "--hostname",
        "box",
        "busybox",
        "sh",
        "-c",
        "ip -4 addr show eth0 | grep inet; ip route | grep default; grep box /etc/hosts",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let ip = lines[0]
        .split_whitespace()
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(lines[1].starts_with("default via "), "{out}");
    assert_eq!(lines[2], format!("{ip}\tbox"), "{out}");
    // none: loopback only; host: the host's interfaces.
    let none = r.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(none.split_whitespace().collect::<Vec<_>>(), vec!["lo"]);
    let host = r.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert!(host.split_whitespace().count() > 1, "{host}");
    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-p",
        "8080:80",
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(err.contains("published ports are discarded"), "{err}");
}

#[test]
fn published_ports_are_reachable_from_the_host() {
    let r = Root::with_busybox();
    let port = 18000 + (std::process::id() % 1000) as u16;
    let spec = format!("{port}:80");
    r.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &spec,
        "busybox",
        "sh",
        "-c",
        "mkdir /www; echo hello-from-hako > /www/index.html; exec httpd -f -p 80 -h /www",
    ]);
    let url = format!("http://127.0.0.1:{port}/");
    let mut body = String::new();
    assert!(
        wait_for(5, || {
            body = std::process::Command::new("wget")
                .args(["-q", "-O", "-", "-T", "2", &url])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            body == "hello-from-hako\n"
        }),
        "GET {url} gave {body:?}"
    );
    assert!(r.ok(&["ps"]).contains(&format!("0.0.0.0:{port}->80/tcp")));
    assert_eq!(
        r.ok(&["port", "web"]),
        format!("80/tcp -> 0.0.0.0:{port}\n")
    );
    // The same host port cannot be published twice.
    let (code, _, err) = r.run(&["run", "--rm", "-p", &spec, "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("port is already allocated"), "{err}");
    let (code, _, err) = r.run(&["run", "--rm", "-p", "notaport", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(!err.is_empty());
    r.ok(&["rm", "-f", "web"]);
}

#[test]
fn user_networks_connect_containers() {
    let r = Root::with_busybox();
    let name = format!("hn{}", std::process::id());
    // 100.64.0.0/10, away from the 10.x /16s that test roots' default bridges pick.
    let subnet = format!("100.70.{}.0/24", std::process::id() % 250);
    r.ok(&["network", "create", "--subnet", &subnet, &name]);
    assert!(r.ok(&["network", "ls"]).contains(&name));
    r.ok(&[
        "run",
        "-d",
        "--name",
        "server",
        "--network",
        &name,
        "busybox",
        "sleep",
        "100",
    ]);
    let ip = r.ok(&[
        "run",
        "--rm",
        "--network",
        &name,
        "busybox",
        "sh",
        "-c",
        "ip -4 addr show eth0 | grep inet",
    ]);
    assert!(
        ip.contains(subnet.trim_end_matches(".0/24")),
        "{ip} not in {subnet}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&r.ok(&["network", "inspect", &name])).unwrap();
    let endpoint = doc[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(endpoint["Name"], "server");
    let server_ip = doc[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()["IPv4Address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let ping = r.ok(&[
        "run",
        "--rm",
        "--network",
        &name,
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        &server_ip,
    ]);
    assert!(ping.contains("1 packets received"), "{ping}");
    // By name and by alias, in both directions.
    let ping = r.ok(&[
        "run",
        "--rm",
        "--name",
        "client",
        "--network",
        &name,
        "--network-alias",
        "cli",
        "busybox",
        "sh",
        "-c",
        "ping -c 1 -W 2 server",
    ]);
    assert!(ping.contains("1 packets received"), "{ping}");
    r.ok(&[
        "run",
        "-d",
        "--name",
        "second",
        "--network",
        &name,
        "--network-alias",
        "db",
        "busybox",
        "sleep",
        "100",
    ]);
    let seen = r.ok(&["exec", "server", "ping", "-c", "1", "-W", "2", "db"]);
    assert!(seen.contains("1 packets received"), "{seen}");
    // Names come from our name server on the gateway, one per network, and follow containers.
    let gateway = doc[0]["IPAM"]["Config"][0]["Gateway"].as_str().unwrap();
    let resolv = r.ok(&["exec", "server", "cat", "/etc/resolv.conf"]);
    assert!(
        resolv.contains(&format!("nameserver {gateway}\n")),
        "{resolv}"
    );
    assert_eq!(r.dns_servers().len(), 1, "one name server per network");
    let second_id = r.ok(&["inspect", "-f", "{{.Id}}", "second"]);
    let by_id = r.ok(&["exec", "server", "nslookup", &second_id.trim()[..12]]);
    assert!(by_id.contains("Name:"), "{by_id}");
    r.ok(&["rename", "second", "renamed"]);
    let renamed = r.ok(&["exec", "server", "ping", "-c", "1", "-W", "2", "renamed"]);
    assert!(renamed.contains("1 packets received"), "{renamed}");
    r.ok(&["rm", "-f", "renamed"]);
    let (code, out, _) = r.run(&["exec", "server", "nslookup", "db"]);
    assert_ne!(code, 0, "db is gone but still resolves: {out}");
    let (code, _, err) = r.run(&["network", "rm", &name]);
    assert_eq!(code, 1, "in use");
    assert!(!err.is_empty());
    r.ok(&["rm", "-f", "server"]);
    // The last container took the name server with it.
    assert!(
        wait_for(5, || r.dns_servers().is_empty()),
        "name server still running: {:?}",
        r.dns_servers()
    );
    r.ok(&["network", "rm", &name]);
    let (code, _, err) = r.run(&["run", "--rm", "--network", "nosuchnet", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("network nosuchnet not found"), "{err}");
}

#[test]
fn outbound_nat_reaches_the_debian_mirror() {
    let r = Root::new();
    r.ok(&[
        "import",
        images_dir().join("trixie.tar").to_str().unwrap(),
        "trixie",
    ]);
    let (code, out, err) = r.run(&["run", "--rm", "trixie", "apt-get", "update"]);
    assert_eq!(code, 0, "apt-get update through NAT failed: {out}{err}");
    assert!(out.contains("Reading package lists"), "{out}");
}

/// The host's own address on its uplink (a connected UDP socket sends nothing).
fn host_uplink_ip() -> Option<String> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:53").ok()?;
    Some(s.local_addr().ok()?.ip().to_string())
}

#[test]
fn user_network_names_forward_upstream_and_internal_networks_stay_in() {
    let r = Root::with_busybox();
    let pid = std::process::id();
    let open = format!("hf{pid}");
    let closed = format!("hi{pid}");
    let subnet = |n: u32| format!("100.{}.{}.0/24", 73 + n, pid % 250);
    r.ok(&["network", "create", "--subnet", &subnet(0), &open]);
    r.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        &subnet(1),
        &closed,
    ]);
    // Other names go to the host's resolvers (when the host can resolve this one itself).
    use std::net::ToSocketAddrs;
    if ("deb.debian.org", 80).to_socket_addrs().is_ok() {
        let out = r.ok(&[
            "run",
            "--rm",
            "--network",
            &open,
            "busybox",
            "nslookup",
            "deb.debian.org",
        ]);
        assert!(out.contains("Name:\tdeb.debian.org"), "{out}");
    } else {
        eprintln!("skipping upstream forwarding: the host cannot resolve deb.debian.org");
    }
    let uplink = host_uplink_ip().expect("the host has an uplink address");
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        &open,
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        &uplink,
    ]);
    assert!(out.contains("1 packets received"), "{out}");

    // Internal: names of its own containers resolve, nothing outside does, no route out.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "inside",
        "--network",
        &closed,
        "busybox",
        "sleep",
        "100",
    ]);
    let out = r.ok(&[
        "run",
        "--rm",
        "--network",
        &closed,
        "busybox",
        "sh",
        "-c",
        "ping -c 1 -W 2 inside; ip route",
    ]);
    assert!(out.contains("1 packets received"), "{out}");
    assert!(
        !out.contains("default"),
        "internal network has a route out: {out}"
    );
    let (code, out, _) = r.run(&[
        "run",
        "--rm",
        "--network",
        &closed,
        "busybox",
        "nslookup",
        "deb.debian.org",
    ]);
    assert_ne!(
        code, 0,
        "an internal network resolved an outside name: {out}"
    );
    let (code, out, _) = r.run(&[
        "run",
        "--rm",
        "--network",
        &closed,
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "1",
        &uplink,
    ]);
    assert_ne!(
        code, 0,
        "an internal network reached the host's uplink: {out}"
    );
    r.ok(&["rm", "-f", "inside"]);
    r.ok(&["network", "rm", &open, &closed]);
    assert!(
        wait_for(5, || r.dns_servers().is_empty()),
        "name servers still running: {:?}",
        r.dns_servers()
    );
}

/// Another host: a network namespace made by the test, joined to ours by a veth pair on a
/// /30 of its own. Removed on drop.
struct Peer {
    ns: String,
    host_if: String,
    host_ip: String,
}

impl Peer {
    fn new() -> Peer {
        let n = std::process::id() % 100_000;
        let p = Peer {
            ns: format!("hkpeer{n}"),
            host_if: format!("hkpa{n}"),
            host_ip: format!("198.18.{}.1", n % 250),
        };
        let peer_ip = format!("198.18.{}.2", n % 250);
        sh(&format!(
            "ip netns add {ns} && ip link add {h} type veth peer name hkpb{n} netns {ns} && \
             ip addr add {hip}/30 dev {h} && ip link set {h} up && \
             ip -n {ns} addr add {peer_ip}/30 dev hkpb{n} && ip -n {ns} link set hkpb{n} up && \
             ip -n {ns} link set lo up",
            ns = p.ns,
            h = p.host_if,
            hip = p.host_ip,
        ));
        p
    }

    /// `wget` from the other host; the body, or "" on failure.
    fn get(&self, url: &str) -> String {
        std::process::Command::new("ip")
            .args([
                "netns", "exec", &self.ns, "wget", "-q", "-O", "-", "-T", "2", url,
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.ns])
            .status();
    }
}

fn sh(cmd: &str) {
    let out = std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The interfaces enslaved to the bridge of `network` (other tests' containers sit on other
/// bridges, so this is exact where a host-wide scan is not).
fn bridge_ports(r: &Root, network: &str) -> Vec<String> {
    let doc: serde_json::Value =
        serde_json::from_str(&r.ok(&["network", "inspect", network])).unwrap();
    let bridge = common::bridge_of_doc(&doc[0]);
    let mut v: Vec<String> = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `hako port NAME` as (container port/proto, host port) pairs.
fn ports_of(r: &Root, name: &str) -> Vec<(String, u16)> {
    r.ok(&["port", name])
        .lines()
        .map(|l| {
            let (c, h) = l.split_once(" -> ").unwrap();
            (
                c.to_string(),
                h.rsplit(':').next().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

/// Answers one UDP datagram with `echo:` + its payload, from inside the network namespace of
/// process `pid` (this thread joins it; the test's other threads stay where they are).
fn udp_echo_in(pid: &str, port: u16) -> std::thread::JoinHandle<()> {
    udp_echo_on(pid, "0.0.0.0", port)
}

/// [`udp_echo_in`] on the address `bind` of the container.
fn udp_echo_on(pid: &str, bind: &'static str, port: u16) -> std::thread::JoinHandle<()> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        // SAFETY: setns on an fd we own; CLONE_NEWNET moves only this thread.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        let s = std::net::UdpSocket::bind((bind, port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        ready_tx.send(()).unwrap();
        let mut buf = [0u8; 64];
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            let mut reply = b"echo:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            let _ = s.send_to(&reply, from);
        }
    });
    ready_rx.recv().unwrap();
    h
}

#[test]
fn published_ports_from_another_host_hairpin_random_udp_and_cleanup() {
    let r = Root::with_busybox();
    r.ok(&["run", "--name", "base", "busybox", "true"]);
    r.ok(&[
        "commit",
        "-c",
        "EXPOSE 80/tcp",
        "-c",
        "EXPOSE 7/udp",
        "base",
        "exposed:1",
    ]);
    r.ok(&["rm", "base"]);
    let serve = "mkdir /www; echo hello-there > /www/index.html; exec httpd -f -p 80 -h /www";
    // -P: every EXPOSEd port on a random host port.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-P",
        "exposed:1",
        "sh",
        "-c",
        serve,
    ]);
    let ports = ports_of(&r, "web");
    let tcp = ports.iter().find(|(c, _)| c == "80/tcp").unwrap().1;
    let udp = ports.iter().find(|(c, _)| c == "7/udp").unwrap().1;
    assert_eq!(ports.len(), 2, "{ports:?}");
    // -p containerPort: a random host port too.
    r.ok(&[
        "run", "-d", "--name", "web2", "-p", "80", "busybox", "sh", "-c", serve,
    ]);
    let random = ports_of(&r, "web2");
    assert_eq!(random.len(), 1, "{random:?}");
    assert!(random[0].1 != 0 && random[0].1 != tcp, "{random:?}");

    // From another host, through the host's address on the link to it.
    let peer = Peer::new();
    let url = format!("http://{}:{tcp}/", peer.host_ip);
    let mut body = String::new();
    assert!(
        wait_for(5, || {
            body = peer.get(&url);
            body == "hello-there\n"
        }),
        "GET {url} from another host gave {body:?}"
    );
    assert_eq!(
        peer.get(&format!("http://{}:{}/", peer.host_ip, random[0].1)),
        "hello-there\n"
    );
    // Hairpin: from the host's loopback, and from a container to the host's own address.
    let local = std::process::Command::new("wget")
        .args([
            "-q",
            "-O",
            "-",
            "-T",
            "2",
            &format!("http://127.0.0.1:{tcp}/"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&local.stdout), "hello-there\n");
    let uplink = host_uplink_ip().expect("the host has an uplink address");
    // (busybox's wget crashes inside containers here, so plain HTTP through nc.)
    let hairpin = r.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {uplink} {tcp}"),
    ]);
    assert!(hairpin.ends_with("\r\n\r\nhello-there\n"), "{hairpin:?}");

    // UDP, to the published port on the host's loopback.
    let pid = r.ok(&["inspect", "-f", "{{.State.Pid}}", "web"]);
    let echo = udp_echo_in(pid.trim(), 7);
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.send_to(b"ping", ("127.0.0.1", udp)).unwrap();
    let mut buf = [0u8; 64];
    let n = s
        .recv(&mut buf)
        .expect("no UDP reply through the published port");
    assert_eq!(&buf[..n], b"echo:ping");
    echo.join().unwrap();

    // A host port a host process listens on: refused before the container exists.
    let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let taken = held.local_addr().unwrap().port().to_string();
    let (code, _, err) = r.run(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("{taken}:80"),
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("port is already allocated"), "{err}");
    drop(held);
    let leases: serde_json::Value =
        serde_json::from_str(&r.ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(leases[0]["Containers"].as_object().unwrap().len(), 2);

    // After rm: no veth, no DNAT element, no lease.
    r.ok(&["rm", "-f", "web", "web2"]);
    let ruleset = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    let ruleset = String::from_utf8_lossy(&ruleset.stdout);
    for p in [tcp, udp, random[0].1] {
        assert!(
            !ruleset.contains(&format!(" . {p} : ")),
            "port {p} still mapped:\n{ruleset}"
        );
    }
    assert_eq!(
        bridge_ports(&r, "bridge"),
        Vec::<String>::new(),
        "veths left behind"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&r.ok(&["network", "inspect", "bridge"])).unwrap();
    assert_eq!(doc[0]["Containers"], serde_json::json!({}), "leases left");
    // As with Docker, the container that could not start stays, created and unwired.
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.State.Status}}", "clash"]),
        "created\n"
    );
    r.ok(&["rm", "clash"]);
}

#[test]
fn network_options_connect_disconnect_and_prune() {
    let r = Root::with_busybox();
    let pid = std::process::id();
    let lab = format!("ho{pid}");
    let bridge = format!("hkbr{}", pid % 100_000);
    let subnet = format!("100.72.{}.0/24", pid % 250);
    let range = subnet.replace(".0/24", ".128/25");
    r.ok(&[
        "network",
        "create",
        "--subnet",
        &subnet,
        "--ip-range",
        &range,
        "--label",
        "team=net",
        "-o",
        &format!("com.docker.network.bridge.name={bridge}"),
        "-o",
        "com.docker.network.driver.mtu=1400",
        &lab,
    ]);
    let doc: serde_json::Value =
        serde_json::from_str(&r.ok(&["network", "inspect", &lab])).unwrap();
    assert_eq!(doc[0]["Labels"]["team"], "net");
    assert_eq!(doc[0]["IPAM"]["Config"][0]["IPRange"], range.as_str());
    assert_eq!(
        r.ok(&[
            "network",
            "inspect",
            "--format",
            "{{.Name}} {{.Internal}} {{.Labels.team}}",
            &lab
        ]),
        format!("{lab} false net\n")
    );
    assert!(std::path::Path::new("/sys/class/net")
        .join(&bridge)
        .exists());
    let unused = format!("hu{pid}");
    r.ok(&["network", "create", &unused]);

    // connect: a running container on the default bridge gains eth1 on the network, with an
    // address from --ip-range, the network's MTU, and its names in the network's DNS.
    r.ok(&["run", "-d", "--name", "roamer", "busybox", "sleep", "100"]);
    r.ok(&["network", "connect", "--alias", "wanderer", &lab, "roamer"]);
    let eth1 = r.ok(&[
        "exec",
        "roamer",
        "sh",
        "-c",
        "ip -4 -o addr show eth1; cat /sys/class/net/eth1/mtu",
    ]);
    let prefix = subnet.trim_end_matches(".0/24");
    let last: u8 = eth1
        .split_whitespace()
        .find(|w| w.starts_with(prefix))
        .and_then(|a| a.split('/').next()?.rsplit('.').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no address of {subnet} on eth1: {eth1}"));
    assert!(last >= 128, "{last} outside {range}");
    assert!(eth1.ends_with("\n1400\n"), "{eth1}");
    let (code, _, err) = r.run(&["network", "connect", &lab, "roamer"]);
    assert_eq!(code, 1);
    assert!(err.contains("already attached"), "{err}");
    let ping = r.ok(&[
        "run",
        "--rm",
        "--network",
        &lab,
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "wanderer",
    ]);
    assert!(ping.contains("1 packets received"), "{ping}");
    // The network is in use now, so prune keeps it and removes only the unused one.
    let pruned = r.ok(&["network", "prune", "-f"]);
    assert_eq!(pruned, format!("Deleted Networks:\n{unused}\n"));

    // disconnect: the interface and the name go.
    r.ok(&["network", "disconnect", &lab, "roamer"]);
    let links = r.ok(&["exec", "roamer", "ls", "/sys/class/net"]);
    assert!(!links.contains("eth1"), "{links}");
    let (code, out, _) = r.run(&[
        "run",
        "--rm",
        "--network",
        &lab,
        "busybox",
        "nslookup",
        "wanderer",
    ]);
    assert_ne!(code, 0, "wanderer still resolves: {out}");
    let (code, _, err) = r.run(&["network", "disconnect", &lab, "roamer"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not connected"), "{err}");
    r.ok(&["stop", "-t", "0", "roamer"]);
    // A stopped container: the connection is recorded and made at its next start; the
    // network counts as used meanwhile.
    r.ok(&["network", "connect", &lab, "roamer"]);
    let (code, _, err) = r.run(&["network", "connect", &lab, "roamer"]);
    assert_eq!(code, 1);
    assert!(err.contains("already attached"), "{err}");
    assert_eq!(r.ok(&["network", "prune", "-f"]), "");
    r.ok(&["start", "roamer"]);
    let eth1 = r.ok(&["exec", "roamer", "ip", "-4", "-o", "addr", "show", "eth1"]);
    assert!(eth1.contains(&format!("inet {prefix}.")), "{eth1}");
    // Connections last across restarts, as Docker's do, until a disconnect; disconnecting a
    // stopped container removes the record.
    r.ok(&["stop", "-t", "0", "roamer"]);
    r.ok(&["network", "disconnect", &lab, "roamer"]);
    let (code, _, err) = r.run(&["network", "disconnect", &lab, "roamer"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not connected"), "{err}");
    r.ok(&["start", "roamer"]);
    let links = r.ok(&["exec", "roamer", "ls", "/sys/class/net"]);
    assert!(!links.contains("eth1"), "{links}");
    r.ok(&["rm", "-f", "roamer"]);
    let pruned = r.ok(&["network", "prune", "-f"]);
    assert_eq!(pruned, format!("Deleted Networks:\n{lab}\n"));
    assert!(!std::path::Path::new("/sys/class/net")
        .join(&bridge)
        .exists());
    assert!(
        wait_for(5, || r.dns_servers().is_empty()),
        "name servers still running: {:?}",
        r.dns_servers()
    );
}

#[test]
fn a_name_server_that_cannot_start_fails_the_run_and_leaves_nothing() {
    let r = Root::with_busybox();
    let pid = std::process::id();
    let name = format!("hd{pid}");
    let subnet = format!("100.71.{}.0/24", pid % 250);
    r.ok(&["network", "create", "--subnet", &subnet, &name]);
    let gateway = subnet.replace(".0/24", ".1");
    // Something else already answers on the gateway's port 53.
    let squatter = std::net::UdpSocket::bind((gateway.as_str(), 53)).unwrap();
    let (code, _, err) = r.run(&["run", "--rm", "--network", &name, "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains(&format!(
            "the name server of network {name} did not start: listening on {gateway}:53/udp"
        )),
        "{err}"
    );
    assert_eq!(
        bridge_ports(&r, &name),
        Vec::<String>::new(),
        "veth left behind"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&r.ok(&["network", "inspect", &name])).unwrap();
    assert_eq!(doc[0]["Containers"], serde_json::json!({}), "lease left");
    assert!(r.dns_servers().is_empty());
    // Once the port is free, the network works.
    drop(squatter);
    r.ok(&["run", "--rm", "--network", &name, "busybox", "true"]);
    r.ok(&["network", "rm", &name]);
}

/// A name server whose starter was killed between its `ready` and the commit that records it
/// serves on, unrecorded, until it notices (ten seconds). The next start replaces it at once
/// rather than failing every `run` on the network with "Address already in use" meanwhile.
#[test]
fn an_unrecorded_name_server_is_replaced_by_the_next_start() {
    let r = Root::with_busybox();
    let pid = std::process::id();
    let name = format!("hu{pid}");
    let subnet = format!("100.73.{}.0/24", pid % 250);
    r.ok(&["network", "create", "--subnet", &subnet, &name]);
    // Started as `hako` starts it, but recorded nowhere.
    let db = r.path().join("hako.db");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hako-dns"))
        .arg(&db)
        .arg(&name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let orphan: i32 = stdout
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("hako-dns did not start: {stdout}"));
    assert_eq!(r.dns_servers(), vec![orphan]);
    let t = std::time::Instant::now();
    let (code, _, err) = r.run(&["run", "--rm", "--network", &name, "busybox", "true"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "the run waited {:?}",
        t.elapsed()
    );
    assert!(
        wait_for(5, || !r.dns_servers().contains(&orphan)),
        "the unrecorded server {orphan} still runs"
    );
    r.ok(&["network", "rm", &name]);
}

/// A name server whose starter died before recording it stops within a second or two, rather
/// than serving on, unrecorded, for ten.
#[test]
fn a_name_server_whose_starter_died_unrecorded_exits_soon() {
    let r = Root::new();
    let pid = std::process::id();
    let name = format!("hs{pid}");
    let subnet = format!("100.73.{}.0/24", pid % 250 + 1);
    r.ok(&["network", "create", "--subnet", &subnet, &name]);
    // `sh` starts it and exits without recording it, as a `hako` killed right after the
    // server's `ready` would.
    let out = std::process::Command::new("sh")
        .args(["-c", "\"$0\" \"$1\" \"$2\""])
        .arg(env!("CARGO_BIN_EXE_hako-dns"))
        .arg(r.path().join("hako.db"))
        .arg(&name)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let server: i32 = stdout
        .trim()
        .strip_prefix("ready ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("hako-dns did not start: {stdout}"));
    let t = std::time::Instant::now();
    assert!(
        wait_for(5, || !r.dns_servers().contains(&server)),
        "the unrecorded server {server} still runs"
    );
    eprintln!("the unrecorded server stopped after {:?}", t.elapsed());
    r.ok(&["network", "rm", &name]);
}

/// A `network rm` killed after its kernel changes but before its commit leaves the network
/// recorded with some of them done; the next `network rm` finishes. A missing subnet element
/// (an interval set's, which nft reports in words of its own) is no error.
#[test]
fn network_rm_finishes_when_part_of_the_network_is_gone() {
    let r = Root::new();
    let pid = std::process::id();
    let name = format!("hg{pid}");
    let subnet = format!("100.74.{}.0/24", pid % 250);
    r.ok(&["network", "create", "--subnet", &subnet, &name]);
    let other = format!("hg{pid}b");
    let subnet2 = format!("100.74.{}.0/24", pid % 250 + 1);
    // A second network keeps the table, so `rm` deletes elements rather than the table.
    r.ok(&["network", "create", "--subnet", &subnet2, &other]);
    let table = nft_table_of(&r);
    sh(&format!(
        "nft delete element inet {table} nets {{ {subnet} }}"
    ));
    sh(&format!(
        "nft delete element inet {table} natnets {{ {subnet} }}"
    ));
    r.ok(&["network", "rm", &name]);
    let rules = nft_ruleset();
    assert!(!rules.contains(&subnet), "{rules}");
    assert!(rules.contains(&subnet2), "{rules}");
    // And with the bridge gone too.
    let bridge = bridge_of(r.path(), &other);
    sh(&format!("ip link del {bridge}"));
    r.ok(&["network", "rm", &other]);
    assert!(!nft_ruleset().contains(&table));
}

/// The nft table of a private state root (`netwire::config_for`: a hash of its path).
fn nft_table_of(r: &Root) -> String {
    use sha2::Digest;
    let canonical = std::fs::canonicalize(r.path()).unwrap();
    let hash = hex::encode(sha2::Sha256::digest(
        canonical.as_os_str().as_encoded_bytes(),
    ));
    format!("hako_{}", &hash[..6])
}

#[test]
fn bad_network_input_is_refused_and_leaves_nothing() {
    let r = Root::with_busybox();
    let pid = std::process::id();
    let name = format!("hb{pid}");
    let subnet = format!("100.75.{}.0/24", pid % 250);
    r.ok(&["network", "create", "--subnet", &subnet, &name]);
    // Other tests and other roots make bridges at the same time: count only links with an
    // address in our subnet (a half-made network would have brought one up).
    let prefix = subnet.trim_end_matches(".0/24").to_string();
    let bridges = || {
        let out = std::process::Command::new("ip")
            .args(["-o", "-4", "addr", "show"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&format!("inet {prefix}.")))
            .count()
    };
    let before = bridges();
    assert_eq!(before, 1);
    let refused = |args: &[&str], code: i32, msg: &str| {
        let (c, _, err) = r.run(args);
        assert_eq!(c, code, "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    };
    let other = format!("{name}x");
    refused(
        &["network", "create", "--subnet", &subnet, &other],
        1,
        "overlaps with network",
    );
    refused(
        &["network", "create", "--subnet", "10.300.0.0/16", &other],
        1,
        "invalid subnet",
    );
    refused(
        &["network", "create", &name],
        1,
        &format!("network with name {name} already exists"),
    );
    refused(
        &[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            "fd12:3::1/64",
            &other,
        ],
        1,
        "host bits are set",
    );
    refused(
        &["network", "create", "--subnet", "fd12:3::/64", &other],
        1,
        "needs --ipv6",
    );
    // The default network is made on first use; its name is taken before that too.
    refused(
        &["network", "create", "--ipv6", "bridge"],
        1,
        "network with name bridge already exists",
    );
    assert_eq!(bridges(), before, "a refused create left a bridge");
    assert!(!r.ok(&["network", "ls"]).contains(&other));
    let outside = format!("100.76.{}.9", pid % 250);
    refused(
        &[
            "run",
            "--rm",
            "--network",
            &name,
            "--ip",
            &outside,
            "busybox",
            "true",
        ],
        125,
        "is outside the address range",
    );
    let inside = subnet.replace(".0/24", ".9");
    r.ok(&[
        "run",
        "-d",
        "--name",
        "holder",
        "--network",
        &name,
        "--ip",
        &inside,
        "busybox",
        "sleep",
        "100",
    ]);
    refused(
        &[
            "run",
            "--rm",
            "--network",
            &name,
            "--ip",
            &inside,
            "busybox",
            "true",
        ],
        125,
        "is already in use",
    );
    refused(&["network", "rm", &name], 1, "has active endpoints");
    refused(
        &["run", "--rm", "-p", "80:70000", "busybox", "true"],
        125,
        "invalid port spec",
    );
    r.ok(&["rm", "-f", "holder"]);
    r.ok(&["network", "rm", &name]);
}

fn nft_ruleset() -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether the host has IPv6; says the test is skipped when not.
fn ipv6_enabled() -> bool {
    let on = std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6")
        .is_ok_and(|v| v.trim() == "0");
    if !on {
        eprintln!("skipped: IPv6 is disabled on this host");
    }
    on
}

#[test]
fn ipv6_networks_address_route_ping_and_resolve_containers_and_clean_up() {
    if !ipv6_enabled() {
        return;
    }
    let r = Root::with_busybox();
    let pid = std::process::id();
    let name = format!("h6{pid}");
    let subnet = format!("100.77.{}.0/24", pid % 250);
    // Unique per test process, inside fd00::/8 (ULA) and away from any /64 a host would use.
    let prefix6 = format!("fd{:02x}:{:x}:6:", pid % 256, pid & 0xffff);
    let subnet6 = format!("{prefix6}:/64");
    r.ok(&[
        "network", "create", "--ipv6", "--subnet", &subnet, "--subnet", &subnet6, &name,
    ]);
    let doc: serde_json::Value =
        serde_json::from_str(&r.ok(&["network", "inspect", &name])).unwrap();
    assert_eq!(doc[0]["EnableIPv6"], true);
    assert_eq!(doc[0]["IPAM"]["Config"][1]["Subnet"], subnet6.as_str());
    let gw6 = format!("{prefix6}:1");
    assert_eq!(doc[0]["IPAM"]["Config"][1]["Gateway"], gw6.as_str());
    assert!(
        nft_ruleset().contains(&subnet6),
        "no NAT66 element for {subnet6}"
    );
    for c in ["a6", "b6"] {
        r.ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            &name,
            "busybox",
            "sleep",
            "100",
        ]);
    }
    let addr = r.ok(&["exec", "a6", "ip", "-6", "addr", "show", "eth0"]);
    let a6 = format!("{prefix6}:2");
    assert!(
        addr.contains(&format!("inet6 {a6}/64 scope global")),
        "{addr}"
    );
    let route = r.ok(&["exec", "a6", "ip", "-6", "route"]);
    assert!(
        route.contains(&format!("default via {gw6} dev eth0")),
        "{route}"
    );
    let b6 = r.ok(&[
        "inspect",
        "-f",
        &format!("{{{{(index .NetworkSettings.Networks \"{name}\").GlobalIPv6Address}}}}"),
        "b6",
    ]);
    assert_eq!(b6.trim(), format!("{prefix6}:3"));
    let ep: serde_json::Value =
        serde_json::from_str(&r.ok(&["network", "inspect", &name])).unwrap();
    let v6s: Vec<String> = ep[0]["Containers"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| e["IPv6Address"].as_str().unwrap().to_string())
        .collect();
    assert!(v6s.contains(&format!("{a6}/64")), "{v6s:?}");
    // Names resolve to the v6 addresses (AAAA), and the containers reach each other and
    // the gateway over IPv6.
    let aaaa = r.ok(&["exec", "a6", "nslookup", "-type=AAAA", "b6"]);
    assert!(aaaa.contains(b6.trim()), "{aaaa}");
    // The name server answers on the v6 gateway too.
    let aaaa = r.ok(&["exec", "a6", "nslookup", "-type=AAAA", "b6", &gw6]);
    assert!(aaaa.contains(b6.trim()), "{aaaa}");
    let ping = r.ok(&["exec", "a6", "ping", "-6", "-c", "1", "-W", "2", "b6"]);
    assert!(ping.contains("1 packets received"), "{ping}");
    assert!(ping.contains(b6.trim()), "{ping}");
    let ping = r.ok(&["exec", "b6", "ping", "-6", "-c", "1", "-W", "2", &a6]);
    assert!(ping.contains("1 packets received"), "{ping}");
    let ping = r.ok(&["exec", "b6", "ping", "-6", "-c", "1", "-W", "2", &gw6]);
    assert!(ping.contains("1 packets received"), "{ping}");
    // A published port is reachable on the host's IPv6 addresses too (here the bridge's).
    let port = 19000 + (pid % 1000) as u16;
    r.ok(&[
        "run",
        "-d",
        "--name",
        "web6",
        "--network",
        &name,
        "-p",
        &format!("{port}:80"),
        "busybox",
        "sh",
        "-c",
        "mkdir /www; echo hello-v6 > /www/index.html; exec httpd -f -p 80 -h /www",
    ]);
    let url = format!("http://[{gw6}]:{port}/");
    let mut body = String::new();
    assert!(
        wait_for(5, || {
            body = std::process::Command::new("wget")
                .args(["-q", "-O", "-", "-T", "2", &url])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            body == "hello-v6\n"
        }),
        "GET {url} gave {body:?}"
    );
    let web6 = format!("{prefix6}:4");
    let dnat6 = format!("{web6} . 80");
    assert!(nft_ruleset().contains(&dnat6), "no v6 DNAT element");
    r.ok(&["rm", "-f", "a6", "b6", "web6"]);
    assert!(
        !nft_ruleset().contains(&dnat6),
        "v6 DNAT element left after rm"
    );
    // The leases are gone: a new container gets the lowest address again.
    let again = r.ok(&[
        "run",
        "--rm",
        "--network",
        &name,
        "busybox",
        "ip",
        "-6",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(again.contains(&format!("inet6 {a6}/64")), "{again}");
    let doc: serde_json::Value =
        serde_json::from_str(&r.ok(&["network", "inspect", &name])).unwrap();
    assert_eq!(doc[0]["Containers"].as_object().unwrap().len(), 0);
    r.ok(&["network", "rm", &name]);
    assert!(
        !nft_ruleset().contains(&subnet6),
        "NAT66 element for {subnet6} left after network rm"
    );
    // Without a v6 subnet, a random ULA /64 is picked.
    r.ok(&["network", "create", "--ipv6", "--subnet", &subnet, &name]);
    let doc: serde_json::Value =
        serde_json::from_str(&r.ok(&["network", "inspect", &name])).unwrap();
    let auto = doc[0]["IPAM"]["Config"][1]["Subnet"].as_str().unwrap();
    assert!(auto.starts_with("fd") && auto.ends_with("::/64"), "{auto}");
    r.ok(&["network", "rm", &name]);
}

#[test]
fn fixed_ipv6_addresses_on_run_create_and_connect() {
    if !ipv6_enabled() {
        return;
    }
    let r = Root::with_busybox();
    let pid = std::process::id();
    let name = format!("hf{pid}");
    let plain = format!("hp{pid}");
    let subnet = format!("100.78.{}.0/24", pid % 250);
    let prefix6 = format!("fd{:02x}:{:x}:7:", pid % 256, pid & 0xffff);
    let subnet6 = format!("{prefix6}:/64");
    r.ok(&[
        "network", "create", "--ipv6", "--subnet", &subnet, "--subnet", &subnet6, &name,
    ]);
    r.ok(&["network", "create", &plain]);
    let fixed = format!("{prefix6}:99");
    r.ok(&[
        "run",
        "-d",
        "--name",
        "f6",
        "--network",
        &name,
        "--ip6",
        &fixed,
        "busybox",
        "sleep",
        "100",
    ]);
    let addr = r.ok(&["exec", "f6", "ip", "-6", "addr", "show", "eth0"]);
    assert!(
        addr.contains(&format!("inet6 {fixed}/64 scope global")),
        "{addr}"
    );
    let count = || r.ok(&["ps", "-aq"]).lines().count();
    let before = count();
    let refused = |args: &[&str], msg: &str| {
        let (c, _, err) = r.run(args);
        // Docker's `create` exits 1 for what its daemon refuses; `run` 125.
        let want = if args[0] == "create" { 1 } else { 125 };
        assert_eq!(c, want, "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: {err}");
    };
    let outside = "fd00:dead:beef::5";
    for verb in ["run", "create"] {
        refused(
            &[verb, "--network", &name, "--ip6", &fixed, "busybox", "true"],
            "is already in use",
        );
        refused(
            &[
                verb,
                "--network",
                &name,
                "--ip6",
                outside,
                "busybox",
                "true",
            ],
            "is outside the IPv6 subnet",
        );
        refused(
            &[
                verb,
                "--network",
                &plain,
                "--ip6",
                outside,
                "busybox",
                "true",
            ],
            "create it with --ipv6",
        );
        refused(
            &[
                verb,
                "--network",
                &name,
                "--ip6",
                "fd::zz",
                "busybox",
                "true",
            ],
            "invalid IPv6 address",
        );
    }
    assert_eq!(count(), before, "a refused run or create left a container");
    // network connect --ip6, to a running container and to a stopped one.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "g6",
        "--network",
        &plain,
        "busybox",
        "sleep",
        "100",
    ]);
    let (code, _, err) = r.run(&["network", "connect", "--ip6", &fixed, &name, "g6"]);
    assert_eq!(code, 1);
    assert!(err.contains("is already in use"), "{err}");
    let second = format!("{prefix6}:98");
    r.ok(&["network", "connect", "--ip6", &second, &name, "g6"]);
    let eth1 = r.ok(&["exec", "g6", "ip", "-6", "addr", "show", "eth1"]);
    assert!(eth1.contains(&format!("inet6 {second}/64")), "{eth1}");
    r.ok(&["create", "--name", "s6", "busybox", "sleep", "100"]);
    let third = format!("{prefix6}:97");
    r.ok(&["network", "connect", "--ip6", &third, &name, "s6"]);
    r.ok(&["start", "s6"]);
    let eth1 = r.ok(&["exec", "s6", "ip", "-6", "addr", "show", "eth1"]);
    assert!(eth1.contains(&format!("inet6 {third}/64")), "{eth1}");
    let ping = r.ok(&["exec", "s6", "ping", "-6", "-c", "1", "-W", "2", &fixed]);
    assert!(ping.contains("1 packets received"), "{ping}");
    r.ok(&["rm", "-f", "f6", "g6", "s6"]);
    r.ok(&["network", "rm", &name, &plain]);
}

/// Deletes a link the test made, even when the test fails half-way.
struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .status();
    }
}

#[test]
fn ports_published_on_ipv6_host_addresses() {
    if !ipv6_enabled() {
        return;
    }
    let r = Root::with_busybox();
    let pid = std::process::id();
    // A host IPv6 address of the test's own: a /128 on a veth pair of its own (no route but
    // its own; there is no dummy driver here).
    let link = format!("hk6d{}", pid % 100_000);
    sh(&format!(
        "ip link add {link} type veth peer name {link}p && ip link set {link} up && ip link set {link}p up"
    ));
    let _guard = LinkGuard(link.clone());
    let host6 = format!("2001:db8:{:x}::1", pid & 0xffff);
    sh(&format!("ip -6 addr add {host6}/128 dev {link} nodad"));
    let name = format!("hq{pid}");
    let subnet = format!("100.79.{}.0/24", pid % 250);
    let subnet6 = format!("fd{:02x}:{:x}:8::/64", pid % 256, pid & 0xffff);
    r.ok(&[
        "network", "create", "--ipv6", "--subnet", &subnet, "--subnet", &subnet6, &name,
    ]);
    let tcp = 21000 + (pid % 1000) as u16;
    let udp = tcp + 1000;
    r.ok(&[
        "run",
        "-d",
        "--name",
        "w6",
        "--network",
        &name,
        "-p",
        &format!("[{host6}]:{tcp}:80"),
        "-p",
        &format!("[{host6}]:{udp}:7/udp"),
        "busybox",
        "sh",
        "-c",
        "mkdir /www; echo hello-host6 > /www/index.html; exec httpd -f -p 80 -h /www",
    ]);
    let port = r.ok(&["port", "w6", "80"]);
    assert_eq!(port.trim(), format!("[{host6}]:{tcp}"));
    let ps = r.ok(&["ps", "--format", "{{.Ports}}", "-f", "name=w6"]);
    assert!(
        ps.contains(&format!("[{host6}]:{tcp}->80/tcp"))
            && ps.contains(&format!("[{host6}]:{udp}->7/udp")),
        "{ps}"
    );
    let url = format!("http://[{host6}]:{tcp}/");
    let mut body = String::new();
    assert!(
        wait_for(5, || {
            body = std::process::Command::new("wget")
                .args(["-q", "-O", "-", "-T", "2", &url])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            body == "hello-host6\n"
        }),
        "GET {url} gave {body:?}"
    );
    // Only on that address: the host's other addresses do not answer on the port.
    let v4 = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], tcp)),
        std::time::Duration::from_secs(1),
    );
    assert!(v4.is_err(), "port {tcp} answers on 127.0.0.1 too");
    let cpid = r.ok(&["inspect", "-f", "{{.State.Pid}}", "w6"]);
    let echo = udp_echo_on(cpid.trim(), "::", 7);
    let s = std::net::UdpSocket::bind("[::]:0").unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.send_to(b"ping6", (host6.as_str(), udp)).unwrap();
    let mut buf = [0u8; 64];
    let n = s
        .recv(&mut buf)
        .expect("no UDP reply through the port on the IPv6 host address");
    assert_eq!(&buf[..n], b"echo:ping6");
    echo.join().unwrap();
    let pip6 = format!("{host6} . udp . {udp}");
    assert!(nft_ruleset().contains(&pip6), "no pip6 element {pip6}");

    // [::1], through a hako-proxy (the kernel does not DNAT from ::1), to a container on the
    // IPv4-only default bridge; it goes with the container.
    let lo = tcp + 2;
    r.ok(&[
        "run",
        "-d",
        "--name",
        "lo6",
        "-p",
        &format!("[::1]:{lo}:80"),
        "busybox",
        "sh",
        "-c",
        "mkdir /www; echo hello-lo6 > /www/index.html; exec httpd -f -p 80 -h /www",
    ]);
    assert_eq!(
        r.ok(&["port", "lo6"]).trim(),
        format!("80/tcp -> [::1]:{lo}")
    );
    let url = format!("http://[::1]:{lo}/");
    assert!(
        wait_for(5, || {
            body = std::process::Command::new("wget")
                .args(["-q", "-O", "-", "-T", "2", &url])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            body == "hello-lo6\n"
        }),
        "GET {url} gave {body:?}"
    );
    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "-p",
        &format!("[::1]:{lo}:80"),
        "busybox",
        "true",
    ]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("already allocated"), "{err}");
    r.ok(&["rm", "-f", "lo6"]);
    let loopback = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, lo));
    assert!(
        wait_for(5, || std::net::TcpStream::connect(loopback).is_err()),
        "[::1]:{lo} still answers after rm: its proxy is left"
    );

    // A foreground run starts and stops its proxy too.
    r.ok(&[
        "run",
        "--rm",
        "-p",
        &format!("[::1]:{lo}:80"),
        "busybox",
        "true",
    ]);
    assert!(
        wait_for(5, || std::net::TcpStream::connect(loopback).is_err()),
        "[::1]:{lo} still answers after run --rm"
    );

    // UDP on ::1 has no proxy, and an IPv4-only network has no IPv6 address to DNAT to:
    // refused before anything runs, nothing left.
    let before = r.ok(&["ps", "-aq"]).lines().count();
    for (net, spec, msg) in [
        (
            name.as_str(),
            "[::1]:8080:80/udp".to_string(),
            "only TCP ports",
        ),
        (
            "bridge",
            format!("[{host6}]:{}:80", tcp + 1),
            "needs an IPv6 network",
        ),
        (
            name.as_str(),
            format!("[2001:db8:ffff::77]:{}:80", tcp + 1),
            "not an address of this host",
        ),
    ] {
        let (code, _, err) = r.run(&[
            "run",
            "--rm",
            "--network",
            net,
            "-p",
            &spec,
            "busybox",
            "true",
        ]);
        assert_eq!(code, 125, "{spec}: {err}");
        assert!(err.contains(msg), "{spec}: {err}");
    }
    assert_eq!(r.ok(&["ps", "-aq"]).lines().count(), before);
    r.ok(&["rm", "-f", "w6"]);
    assert!(!nft_ruleset().contains(&pip6), "pip6 element left after rm");
    r.ok(&["network", "rm", &name]);
}

/// The host's uplink MTU (the link of its route to 1.1.1.1), as `ip` reports it.
fn host_uplink_mtu() -> Option<u32> {
    let out = std::process::Command::new("ip")
        .args(["route", "get", "1.1.1.1"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut words = text.split_whitespace();
    words.find(|w| *w == "dev")?;
    let dev = words.next()?;
    std::fs::read_to_string(format!("/sys/class/net/{dev}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn default_bridge_links_keep_1500_and_the_default_route_the_uplinks_mtu() {
    let Some(uplink) = host_uplink_mtu() else {
        eprintln!("skipped: this host has no route to 1.1.1.1, so no uplink to take an MTU from");
        return;
    };
    let r = Root::with_busybox();
    let id = r.ok(&["run", "-d", "busybox", "sleep", "60"]);
    let id = id.trim();
    let pid = r.ok(&["inspect", "-f", "{{.State.Pid}}", id]);
    let link: u32 = r
        .ok(&["exec", id, "cat", "/sys/class/net/eth0/mtu"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(link, uplink.max(1500));
    let out = std::process::Command::new("nsenter")
        .args([
            "-t",
            pid.trim(),
            "-n",
            "ip",
            "-4",
            "route",
            "show",
            "default",
        ])
        .output()
        .unwrap();
    let route = String::from_utf8_lossy(&out.stdout).into_owned();
    let route_mtu = route
        .split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .map(|m| m.parse::<u32>().unwrap());
    // What leaves the host fits the uplink; traffic to the host and other containers on the
    // bridge (on-link) uses the links' MTU.
    if uplink < 1500 {
        assert_eq!(route_mtu, Some(uplink), "{route}");
    } else {
        assert_eq!(route_mtu, None, "{route}");
    }
    r.ok(&["rm", "-f", id]);
}

#[test]
fn sysctls_name_the_containers_interfaces_and_ipv4_networks_keep_ipv6_off() {
    let r = Root::with_busybox();
    // The interface exists when the runtime writes the sysctls (after the network is wired).
    let rp = r.ok(&[
        "run",
        "--rm",
        "--sysctl",
        "net.ipv4.conf.eth0.rp_filter=2",
        "busybox",
        "cat",
        "/proc/sys/net/ipv4/conf/eth0/rp_filter",
    ]);
    assert_eq!(rp.trim(), "2");
    if !ipv6_enabled() {
        return;
    }
    // As Docker since 26.0.2: no link-local address on a network without IPv6.
    let out = r.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6; ip -6 addr show dev eth0",
    ]);
    assert_eq!(out.trim(), "1", "{out}");
    // ... unless the user asks for it.
    let out = r.ok(&[
        "run",
        "--rm",
        "--sysctl",
        "net.ipv6.conf.eth0.disable_ipv6=0",
        "busybox",
        "cat",
        "/proc/sys/net/ipv6/conf/eth0/disable_ipv6",
    ]);
    assert_eq!(out.trim(), "0");
    // The host's end of the pair is a bridge port: no address of its own either.
    let id = r.ok(&["run", "-d", "busybox", "sleep", "60"]);
    // The `--rm` runs above may still have their pair on the bridge: the kernel removes it
    // with the namespace, asynchronously. Every port must be address-free, this one included.
    let ports = bridge_ports(&r, "bridge");
    assert!(
        !ports.is_empty(),
        "the container's veth is not on the bridge"
    );
    for port in &ports {
        let out = std::process::Command::new("ip")
            .args(["-6", "addr", "show", "dev", port])
            .output()
            .unwrap();
        // A lingering pair may vanish between the listing and this look.
        if !out.status.success() {
            continue;
        }
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "", "{port}");
    }
    r.ok(&["rm", "-f", id.trim()]);
}

fn docker_user_rules() -> String {
    let out = std::process::Command::new("iptables")
        .args(["-w", "-S", "DOCKER-USER"])
        .output()
        .unwrap();
    assert!(out.status.success(), "iptables -S DOCKER-USER failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_new_bridge_is_allowed_in_docker_user_and_stale_hako_rules_there_are_swept() {
    // Docker's chain exists wherever Docker has run; the suite's own dockerd makes it too, so
    // when it is missing this test makes it, and removes it again.
    let made_chain = std::process::Command::new("iptables")
        .args(["-w", "-N", "DOCKER-USER"])
        .output()
        .unwrap()
        .status
        .success();
    // A rule of the shape hako adds, for a hako-named bridge that does not exist: what a
    // `hako` killed between removing a bridge and its rules leaves.
    let stale = format!("hako{:06x}", std::process::id() & 0xff_ffff);
    assert!(!std::path::Path::new("/sys/class/net").join(&stale).exists());
    sh(&format!("iptables -w -I DOCKER-USER -i {stale} -j ACCEPT"));

    let r = Root::with_busybox();
    r.ok(&["run", "--rm", "busybox", "true"]);
    let doc: serde_json::Value =
        serde_json::from_str(&r.ok(&["network", "inspect", "bridge"])).unwrap();
    let bridge = doc[0]["Options"]["com.docker.network.bridge.name"]
        .as_str()
        .unwrap()
        .to_string();
    let rules = docker_user_rules();
    let stale_left = rules.contains(&format!("-i {stale} "));
    if stale_left {
        sh(&format!("iptables -w -D DOCKER-USER -i {stale} -j ACCEPT"));
    }
    assert!(!stale_left, "{rules}");
    for dir in ["-i", "-o"] {
        assert!(
            rules.contains(&format!("{dir} {bridge} -j ACCEPT")),
            "{rules}"
        );
    }
    r.ok(&["network", "teardown"]);
    let rules = docker_user_rules();
    assert!(!rules.contains(&format!(" {bridge} ")), "{rules}");
    if made_chain {
        // Not flushed: a dockerd or another root started meanwhile may have rules there, and
        // removing an empty chain is all this test owes (-X refuses a chain in use).
        let _ = std::process::Command::new("iptables")
            .args(["-w", "-X", "DOCKER-USER"])
            .output();
    }
}

/// The bridge of `network` in the root at `root` (read without reconcile).
fn bridge_of(root: &std::path::Path, network: &str) -> String {
    let out = std::process::Command::new(common::hako_bin())
        .args(["network", "inspect", network])
        .env("HAKO_ROOT", root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    common::bridge_of_doc(&doc[0])
}

/// The alias of a host link ("" if none).
fn link_alias(name: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{name}/ifalias"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn a_state_root_made_again_at_its_path_runs_on_the_default_bridge() {
    let r = Root::with_busybox();
    r.ok(&["run", "--rm", "busybox", "true"]);
    let bridge = bridge_of(r.path(), "bridge");
    let old_marker = link_alias(&bridge);
    // What many Docker users do to start afresh: every run failed with "invalid bridge name
    // …: a network interface of that name already exists", and no command repaired it.
    for e in std::fs::read_dir(r.path()).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    r.ok(&[
        "import",
        images_dir().join("busybox.tar").to_str().unwrap(),
        "busybox",
    ]);
    let out = r.ok(&[
        "run", "--rm", "busybox", "ip", "-4", "-o", "addr", "show", "eth0",
    ]);
    assert!(out.contains("inet 10."), "{out}");
    // The earlier life's bridge was replaced under the same name, and marked as this one's:
    // `hako INSTANCE ROOT`, a new instance for the new database.
    assert_eq!(bridge_of(r.path(), "bridge"), bridge);
    let marker = link_alias(&bridge);
    let root = r.path().canonicalize().unwrap().display().to_string();
    assert!(
        old_marker.starts_with("hako ") && old_marker.ends_with(&root),
        "{old_marker}"
    );
    assert!(
        marker.starts_with("hako ") && marker.ends_with(&root) && marker != old_marker,
        "{marker}"
    );
}

#[test]
fn a_deleted_roots_bridge_and_table_go_when_another_root_makes_its_first_network() {
    // `rm -rf` of a state root while its networks are up (or a test run killed before its
    // teardown) left the bridge and table behind for good: no root would ever claim them.
    // Root::new holds the suite's serial lock, so the roots besides `other` are plain
    // directories.
    let private = |tag: &str| {
        tempfile::Builder::new()
            .prefix(&format!("hako-e2e-{tag}-"))
            .tempdir_in("/var/tmp")
            .unwrap()
    };
    let (gone, live) = (private("gone"), private("live"));
    let hako = |root: &std::path::Path, args: &[&str]| {
        let out = std::process::Command::new(common::hako_bin())
            .args(args)
            .env("HAKO_ROOT", root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let table_of = |root: &std::path::Path| -> String {
        // A root's table is the one whose comment ends with the root's path.
        let root = root.canonicalize().unwrap().display().to_string();
        let tables = std::process::Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&tables.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("table inet "))
            .find(|t| {
                let l = std::process::Command::new("nft")
                    .args(["list", "table", "inet", t])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&l.stdout).contains(&format!("{root}\""))
            })
            .unwrap_or_else(|| panic!("no table names {root}"))
            .to_string()
    };
    let link_exists = |name: &str| std::path::Path::new("/sys/class/net").join(name).exists();
    let table_exists = |name: &str| {
        std::process::Command::new("nft")
            .args(["list", "table", "inet", name])
            .output()
            .unwrap()
            .status
            .success()
    };
    hako(gone.path(), &["network", "create", "left"]);
    let bridge = bridge_of(gone.path(), "left");
    let table = table_of(gone.path());
    let gone_text = gone.path().canonicalize().unwrap().display().to_string();
    assert!(link_alias(&bridge).ends_with(&gone_text));
    // A root that exists keeps what it made.
    hako(live.path(), &["network", "create", "kept"]);
    let (kept, kept_table) = (bridge_of(live.path(), "kept"), table_of(live.path()));
    drop(gone);
    assert!(link_exists(&bridge));

    let other = Root::new();
    other.ok(&["network", "create", "fresh"]);
    let left = (link_exists(&bridge), table_exists(&table));
    let stayed = (link_exists(&kept), table_exists(&kept_table));
    hako(live.path(), &["network", "teardown"]);
    assert_eq!(
        left,
        (false, false),
        "the deleted root's bridge {bridge} and table {table} are still there"
    );
    assert_eq!(stayed, (true, true), "a live root's network was swept");
}

/// Deletes a host link when dropped (a test's own foreign interface).
struct Link(String);
impl Drop for Link {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .status();
    }
}

#[test]
fn a_foreign_interface_and_table_of_the_default_names_are_left_alone() {
    use sha2::Digest;
    let r = Root::with_busybox();
    let canonical = r.path().canonicalize().unwrap();
    let tag = &hex::encode(sha2::Sha256::digest(
        canonical.as_os_str().as_encoded_bytes(),
    ))[..6];
    let (name, table) = (format!("hako{tag}"), format!("hako_{tag}"));
    // Someone else's bridge and nftables table with the names hako derives for this root.
    sh(&format!(
        "ip link add {name} type bridge && ip addr add 192.0.2.1/32 dev {name} && \
         nft add table inet {table}"
    ));
    let _foreign = Link(name.clone());
    struct Table(String);
    impl Drop for Table {
        fn drop(&mut self) {
            let _ = std::process::Command::new("nft")
                .args(["delete", "table", "inet", &self.0])
                .status();
        }
    }
    let _foreign_table = Table(table.clone());
    let out = r.ok(&[
        "run", "--rm", "busybox", "ip", "-4", "-o", "addr", "show", "eth0",
    ]);
    assert!(out.contains("inet 10."), "{out}");
    assert_eq!(bridge_of(r.path(), "bridge"), format!("{name}1"));
    r.ok(&["network", "teardown"]);
    // Theirs, as it was: down, its own address only, no ports, unmarked; the table empty.
    let link = std::process::Command::new("ip")
        .args(["-o", "addr", "show", &name])
        .output()
        .unwrap();
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        link.contains("192.0.2.1/32") && !link.contains("inet 10."),
        "{link}"
    );
    assert_eq!(link_alias(&name), "");
    assert_eq!(
        std::fs::read_dir(format!("/sys/class/net/{name}/brif"))
            .unwrap()
            .count(),
        0
    );
    let listed = std::process::Command::new("nft")
        .args(["list", "table", "inet", &table])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listed.stdout).trim(),
        format!("table inet {table} {{\n}}")
    );
    assert!(!std::path::Path::new("/sys/class/net")
        .join(format!("{name}1"))
        .exists());
}

#[test]
fn two_roots_whose_names_collide_both_run_on_their_own_bridges() {
    let r = Root::with_busybox();
    // A second root inside the first one's directory, so the first's leak checks cover it.
    let b = r.path().join("second");
    let tag = format!("{:06x}", std::process::id() & 0xff_ffff);
    let hako_b = |args: &[&str]| {
        let out = std::process::Command::new(common::hako_bin())
            .args(args)
            .env("HAKO_ROOT", &b)
            .env("HAKO_TEST_NET_TAG", &tag)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    type Hako<'a> = &'a dyn Fn(&[&str]) -> (i32, String, String);
    struct Teardown<'a>(Hako<'a>);
    impl Drop for Teardown<'_> {
        fn drop(&mut self) {
            (self.0)(&["rm", "-f", "bee"]);
            (self.0)(&["network", "teardown"]);
        }
    }
    let _teardown = Teardown(&hako_b);
    let import = hako_b(&[
        "import",
        images_dir().join("busybox.tar").to_str().unwrap(),
        "busybox",
    ]);
    assert_eq!(import.0, 0, "{}", import.2);
    let a_run = |args: &[&str]| {
        let out = r.cmd(args).env("HAKO_TEST_NET_TAG", &tag).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    a_run(&["run", "-d", "--name", "ay", "busybox", "sleep", "1000"]);
    let (code, _, err) = hako_b(&["run", "-d", "--name", "bee", "busybox", "sleep", "1000"]);
    assert_eq!(code, 0, "the second root cannot start: {err}");
    let (ba, bb) = (bridge_of(r.path(), "bridge"), bridge_of(&b, "bridge"));
    assert_eq!(ba, format!("hako{tag}"));
    assert_eq!(bb, format!("hako{tag}1"));
    let gateway = |root: &std::path::Path| -> String {
        let out = std::process::Command::new(common::hako_bin())
            .args(["network", "inspect", "bridge"])
            .env("HAKO_ROOT", root)
            .output()
            .unwrap();
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc[0]["IPAM"]["Config"][0]["Gateway"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (ga, gb) = (gateway(r.path()), gateway(&b));
    a_run(&["exec", "ay", "ping", "-c1", "-W2", &ga]);
    let (code, _, err) = hako_b(&["exec", "bee", "ping", "-c1", "-W2", &gb]);
    assert_eq!(code, 0, "{err}");
    // The second root's teardown takes only its own bridge and table.
    assert_eq!(hako_b(&["rm", "-f", "bee"]).0, 0);
    assert_eq!(hako_b(&["network", "teardown"]).0, 0);
    assert!(!std::path::Path::new("/sys/class/net").join(&bb).exists());
    assert!(std::path::Path::new("/sys/class/net").join(&ba).exists());
    a_run(&["exec", "ay", "ping", "-c1", "-W2", &ga]);
    r.ok(&["rm", "-f", "ay"]);
}

#[test]
fn host_and_none_are_listed_and_inspected_as_docker_shows_them() {
    let r = Root::with_busybox();
    let ls = r.ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    let names: Vec<&str> = ls.lines().collect();
    assert_eq!(
        names,
        ["bridge bridge local", "host host local", "none null local"]
    );
    // What ls lists, inspect finds by ID (the default bridge too, before its first use).
    let ids = r.ok(&["network", "ls", "-q"]);
    let mut args = vec!["network", "inspect", "-f", "{{.Name}}"];
    args.extend(ids.split_whitespace());
    assert_eq!(r.ok(&args), "bridge\nhost\nnone\n");
    let id = r.ok(&["run", "-d", "--network", "host", "busybox", "sleep", "60"]);
    let id = id.trim();
    let doc: serde_json::Value =
        serde_json::from_str(&r.ok(&["network", "inspect", "host"])).unwrap();
    assert_eq!(doc[0]["Driver"], "host");
    assert_eq!(doc[0]["IPAM"]["Config"], serde_json::json!([]));
    assert!(doc[0]["Containers"].get(id).is_some(), "{doc}");
    // By ID prefix too, as every network.
    let none_id = r.ok(&["network", "ls", "-q", "--filter", "name=none"]);
    assert_eq!(
        r.ok(&["network", "inspect", "-f", "{{.Name}}", none_id.trim()]),
        "none\n"
    );
    let (code, _, err) = r.run(&["network", "rm", "host"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("host is a pre-defined network and cannot be removed"),
        "{err}"
    );
    let other = r.ok(&["run", "-d", "busybox", "sleep", "60"]);
    for net in ["host", "none"] {
        let (code, _, err) = r.run(&["network", "connect", net, other.trim()]);
        assert_eq!(code, 1, "{net}");
        assert!(
            err.contains(&format!("connected to {net} network")),
            "{err}"
        );
    }
    // Neither is pruned, and neither is a bridge the checks of this root look for.
    r.ok(&["network", "prune", "-f"]);
    assert_eq!(r.ok(&["network", "ls", "-q"]).lines().count(), 3);
    r.ok(&["rm", "-f", id, other.trim()]);
}
