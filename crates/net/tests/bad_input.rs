//! Bad input gives clear errors and leaves nothing half-made.

mod common;

use common::{config, db, private_host, sh, try_sh, Netns};
use hako_net::{parse_port_spec, AttachOptions, CreateOptions, Error, Networks};

fn subnet(s: &str) -> CreateOptions {
    CreateOptions {
        subnet: Some(s.into()),
        ..Default::default()
    }
}

#[test]
fn create_errors() {
    private_host();
    // A host route that a new network must not overlap.
    sh("ip link add hkdummy0 type veth peer name hkdummy1 && ip addr add 10.210.5.1/24 dev hkdummy0 && ip link set hkdummy0 up && ip link set hkdummy1 up");
    let dir = tempfile::tempdir().unwrap();
    let conn = db(&dir);
    let nets = Networks::open_with(&conn, config("10.211.0.0/24")).unwrap();
    nets.create("one", &subnet("10.212.0.0/16")).unwrap();

    let err = |name: &str, o: &CreateOptions| nets.create(name, o).unwrap_err().to_string();
    assert_eq!(
        err("two", &subnet("10.212.3.0/24")),
        "subnet 10.212.3.0/24 overlaps with network one (10.212.0.0/16)"
    );
    assert_eq!(
        err("two", &subnet("10.210.0.0/16")),
        "subnet 10.210.0.0/16 overlaps with host route 10.210.5.0/24"
    );
    assert_eq!(
        err("two", &subnet("10.213.0.1/16")),
        "invalid subnet \"10.213.0.1/16\": host bits are set; did you mean 10.213.0.0/16?"
    );
    assert!(err("two", &subnet("10.213.0.0")).starts_with("invalid subnet"));
    assert_eq!(
        err("one", &subnet("10.214.0.0/16")),
        "network with name one already exists"
    );
    assert!(err("bad name", &subnet("10.214.0.0/16")).starts_with("invalid network name"));
    let mut o = subnet("10.214.0.0/24");
    o.gateway = Some("10.215.0.1".into());
    assert!(err("two", &o).contains("not a usable address of 10.214.0.0/24"));
    o.gateway = None;
    o.ip_range = Some("10.214.1.0/25".into());
    assert!(err("two", &o).contains("not inside the subnet"));
    o.ip_range = None;
    // IPv6: bad prefixes, overlaps with a host route or another network, and v6 input
    // without --ipv6.
    sh("ip -6 addr add fd77:1::1/64 dev hkdummy0 nodad");
    o.gateway6 = Some("fd77:2::1".into());
    assert!(err("two", &o).contains("needs --ipv6"));
    o.gateway6 = None;
    o.ipv6 = true;
    o.subnet6 = Some("fd77:3::1/64".into());
    assert_eq!(
        err("two", &o),
        "invalid subnet \"fd77:3::1/64\": host bits are set; did you mean fd77:3::/64?"
    );
    o.subnet6 = Some("fd77::/24".into());
    assert_eq!(
        err("two", &o),
        "subnet fd77::/24 overlaps with host route fd77:1::/64"
    );
    o.subnet6 = Some("fe80::/64".into());
    assert!(err("two", &o).contains("not a unicast prefix"));
    o.subnet6 = Some("fd78::/64".into());
    o.gateway6 = Some("fd79::1".into());
    assert!(err("two", &o).contains("not a usable address of fd78::/64"));
    o.gateway6 = None;
    let mut six = subnet("10.216.0.0/24");
    six.ipv6 = true;
    six.subnet6 = Some("fd78::/64".into());
    nets.create("six", &six).unwrap();
    o.subnet6 = Some("fd78::/56".into());
    assert_eq!(
        err("two", &o),
        "subnet fd78::/56 overlaps with network six (fd78::/64)"
    );
    nets.remove("six").unwrap();
    o.ipv6 = false;
    o.subnet6 = None;
    o.options
        .insert("com.docker.network.bridge.name".into(), "hkdummy0".into());
    // The bridge name is taken by another interface: refused, nothing is touched.
    assert_eq!(
        err("two", &o),
        "invalid bridge name \"hkdummy0\": a network interface of that name already exists, \
         made by another program (it has no hako marker)"
    );
    assert!(!sh("ip -o addr show hkdummy0").contains("10.214"));
    // Nothing half-made: only "one" exists, and its bridge.
    assert_eq!(nets.list().unwrap().len(), 1);
    assert!(!try_sh("ip link show type bridge | grep -v ht-")
        .1
        .contains(": "));
    // An auto-picked subnet skips the host route and existing networks.
    let auto = nets.create("auto", &CreateOptions::default()).unwrap();
    assert_eq!(auto.subnet.to_string(), "10.89.0.0/16");
    nets.remove("auto").unwrap();
    nets.remove("one").unwrap();
    assert!(matches!(nets.remove("one"), Err(Error::NetworkNotFound(_))));
}

#[test]
fn attach_errors_leave_nothing() {
    private_host();
    let dir = tempfile::tempdir().unwrap();
    let conn = db(&dir);
    let cfg = config("10.216.0.0/24");
    let table = cfg.nft_table.clone();
    let nets = Networks::open_with(&conn, cfg).unwrap();
    let a = Netns::new();
    let b = Netns::new();
    nets.attach(
        "bridge",
        "a",
        a.pid(),
        &AttachOptions {
            ip: Some("10.216.0.10".parse().unwrap()),
            ports: parse_port_spec("8080:80").unwrap(),
            ..Default::default()
        },
    )
    .unwrap();

    let attach_b = |o: AttachOptions| {
        nets.attach("bridge", "b", b.pid(), &o)
            .unwrap_err()
            .to_string()
    };
    let ip = |s: &str| AttachOptions {
        ip: Some(s.parse().unwrap()),
        ..Default::default()
    };
    assert_eq!(
        attach_b(ip("10.217.0.5")),
        "address 10.217.0.5 is outside the address range 10.216.0.0/24 of network bridge"
    );
    assert_eq!(
        attach_b(ip("10.216.0.10")),
        "address 10.216.0.10 is already in use on network bridge"
    );
    assert_eq!(
        attach_b(ip("10.216.0.1")),
        "address 10.216.0.1 is already in use on network bridge"
    );
    // A port another container publishes.
    let ports = |s: &str| AttachOptions {
        ports: parse_port_spec(s).unwrap(),
        ..Default::default()
    };
    assert_eq!(
        attach_b(ports("127.0.0.1:8080:80")),
        "Bind for 127.0.0.1:8080 failed: port is already allocated"
    );
    // A port a host process listens on.
    let _l = std::net::TcpListener::bind("0.0.0.0:8181").unwrap();
    assert_eq!(
        attach_b(ports("8181:80")),
        "Bind for 0.0.0.0:8181 failed: port is already allocated"
    );
    // An unknown network, a dead process, a bad MAC.
    assert_eq!(
        nets.attach("nope", "b", b.pid(), &AttachOptions::default())
            .unwrap_err()
            .to_string(),
        "network nope not found"
    );
    assert!(nets
        .attach("bridge", "b", 999_999_999, &AttachOptions::default())
        .unwrap_err()
        .to_string()
        .starts_with("cannot open the network namespace of process 999999999"));
    let mac = AttachOptions {
        mac: Some("01:00:5e:00:00:01".into()),
        ..Default::default()
    };
    assert!(attach_b(mac).starts_with("invalid MAC address"));
    // Attaching twice.
    assert!(nets
        .attach("bridge", "a", a.pid(), &AttachOptions::default())
        .unwrap_err()
        .to_string()
        .contains("already attached"));

    // None of it left anything: b has no eth0, no lease, no port rows, no extra DNAT element.
    assert!(!b.try_sh("ip link show eth0").0);
    let info = nets.inspect("bridge").unwrap();
    assert_eq!(info.endpoints.len(), 1);
    assert!(nets.ports("b").unwrap().is_empty());
    let rules = sh(&format!("nft list map inet {table} pany"));
    assert!(!rules.contains("8181"), "{rules}");
    assert!(!sh(&format!("nft list map inet {table} pip")).contains("elements"));

    // A network in use cannot be removed.
    assert_eq!(
        nets.remove("bridge").unwrap_err().to_string(),
        "error while removing network: network bridge has active endpoints (a)"
    );
    nets.detach("a").unwrap();
    nets.remove("bridge").unwrap();
}
