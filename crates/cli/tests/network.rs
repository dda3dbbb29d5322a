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
    let subnet = format!(
        "10.{}.{}.0/24",
        200 + std::process::id() % 50,
        std::process::id() % 250
    );
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
    let subnet = |n: u32| format!("10.{}.{}.0/24", 150 + pid % 50, (pid + n) % 250);
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
