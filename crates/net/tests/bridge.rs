//! Bridge networking end to end, as root, inside a private "host" namespace per test.

mod common;

use std::time::Instant;

use common::{config, db, private_host, sh, try_sh, Netns};
use hako_net::{parse_port_spec, AttachOptions, Networks};

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

#[test]
fn default_bridge_nat_and_published_ports() {
    let _serial = common::serial();
    private_host();
    let dir = tempfile::tempdir().unwrap();
    let conn = db(&dir);
    let cfg = config("10.201.0.0/24");
    let (bridge, table) = (cfg.default_bridge.clone(), cfg.nft_table.clone());
    let nets = Networks::open_with(&conn, cfg).unwrap();

    // An "other host" on the uplink side.
    let outside = Netns::new();
    outside.link_to_host("hkup0", "192.168.77.1", "192.168.77.2");

    let a = Netns::new();
    let mut b = Netns::new();
    let t = Instant::now();
    let att_a = nets
        .attach("bridge", "ctr-a", a.pid(), &AttachOptions::default())
        .unwrap();
    println!("first attach (creates bridge + table): {:.2} ms", ms(t));
    let t = Instant::now();
    let att_b = nets
        .attach(
            "bridge",
            "ctr-b",
            b.pid(),
            &AttachOptions {
                ports: parse_port_spec("8080:80").unwrap(),
                ..Default::default()
            },
        )
        .unwrap();
    println!("attach with -p 8080:80: {:.2} ms", ms(t));
    assert_eq!(att_a.ip.to_string(), "10.201.0.2");
    assert_eq!(att_b.ip.to_string(), "10.201.0.3");
    assert_eq!(att_a.gateway.to_string(), "10.201.0.1");
    assert_eq!((att_a.prefix, att_a.interface.as_str()), (24, "eth0"));
    assert_eq!(att_b.ports[0].host_port, 8080);

    // Inside: eth0 with the address and MAC, default route via the bridge, loopback up.
    let addr = a.sh("ip -o addr show eth0");
    assert!(addr.contains("inet 10.201.0.2/24"), "{addr}");
    let link = a.sh("ip -o link show eth0");
    assert!(
        link.contains(&att_a.mac) && link.contains("state UP"),
        "{link}"
    );
    assert!(a.sh("ip route").contains("default via 10.201.0.1 dev eth0"));
    assert!(a.sh("ip -o link show lo").contains("UP"));
    // The host end: on the bridge, up, one queue each way, hairpin mode on (so a container
    // reaches its own published port through the host's address when br_netfilter DNATs
    // bridged frames).
    let host_end = sh(&format!("ip -d link show {}", att_a.host_veth));
    assert!(
        host_end.contains(&format!("master {bridge}")) && host_end.contains("state UP"),
        "{host_end}"
    );
    assert!(host_end.contains("hairpin on"), "{host_end}");
    assert!(
        host_end.contains("numtxqueues 1 numrxqueues 1"),
        "{host_end}"
    );
    // The bridge has the gateway.
    assert!(sh(&format!("ip -o addr show {bridge}")).contains("10.201.0.1/24"));

    // Container to container on the bridge.
    a.sh("busybox ping -c1 -W2 10.201.0.3");
    // Outbound NAT: the outside host has no route to 10.201.0.0/24, so an answer proves
    // masquerading.
    a.sh("busybox ping -c1 -W2 192.168.77.2");

    // The published port, from another host and from the host's loopback and own address.
    b.serve(80, "hello-from-b");
    let out = outside.sh("busybox nc -w 3 192.168.77.1 8080 </dev/null");
    assert_eq!(out.trim(), "hello-from-b");
    let out = sh("busybox nc -w 3 127.0.0.1 8080 </dev/null");
    assert_eq!(out.trim(), "hello-from-b");
    let out = sh("busybox nc -w 3 192.168.77.1 8080 </dev/null");
    assert_eq!(out.trim(), "hello-from-b");
    // And from another container through the host's address (hairpin through the bridge).
    let out = a.sh("busybox nc -w 3 192.168.77.1 8080 </dev/null");
    assert_eq!(out.trim(), "hello-from-b");

    // A random host port (-p 80).
    let c = Netns::new();
    let att_c = nets
        .attach(
            "bridge",
            "ctr-c",
            c.pid(),
            &AttachOptions {
                ports: parse_port_spec("127.0.0.1::80/udp").unwrap(),
                ..Default::default()
            },
        )
        .unwrap();
    assert!(att_c.ports[0].host_port > 0);
    assert_eq!(nets.ports("ctr-c").unwrap(), att_c.ports);

    // Detach removes veth, lease and the DNAT element.
    let t = Instant::now();
    nets.detach("ctr-b").unwrap();
    println!("detach: {:.2} ms", ms(t));
    assert!(!try_sh(&format!("ip link show {}", att_b.host_veth)).0);
    let info = nets.inspect("bridge").unwrap();
    assert_eq!(info.endpoints.len(), 2);
    assert!(info.endpoints.iter().all(|e| e.container_id != "ctr-b"));
    let rules = sh(&format!("nft list table inet {table}"));
    assert!(!rules.contains("8080"), "{rules}");
    assert!(!b.try_sh("ip link show eth0").0);
    nets.detach("ctr-b").unwrap(); // idempotent

    nets.detach("ctr-a").unwrap();
    nets.detach("ctr-c").unwrap();
    nets.remove("bridge").unwrap();
    assert!(!try_sh(&format!("ip link show {bridge}")).0);
    assert!(!try_sh(&format!("nft list table inet {table}")).0);
    assert!(nets.list().unwrap().is_empty());
}

#[test]
fn user_network_internal_and_reconcile() {
    let _serial = common::serial();
    private_host();
    let dir = tempfile::tempdir().unwrap();
    let conn = db(&dir);
    let cfg = config("10.202.0.0/24");
    let table = cfg.nft_table.clone();
    let nets = Networks::open_with(&conn, cfg).unwrap();
    let outside = Netns::new();
    outside.link_to_host("hkup0", "192.168.78.1", "192.168.78.2");

    let mut opts = hako_net::CreateOptions {
        subnet: Some("10.203.0.0/24".into()),
        gateway: Some("10.203.0.254".into()),
        ip_range: Some("10.203.0.128/25".into()),
        internal: true,
        ..Default::default()
    };
    opts.labels.insert("k".into(), "v".into());
    let n = nets.create("inner", &opts).unwrap();
    assert!(n.bridge.starts_with("ht-"));
    assert_eq!(nets.inspect(&n.id[..12]).unwrap().name, "inner");
    assert_eq!(nets.inspect("inner").unwrap().labels["k"], "v");

    let a = Netns::new();
    let b = Netns::new();
    let att = nets
        .attach("inner", "x1", a.pid(), &AttachOptions::default())
        .unwrap();
    assert_eq!(att.ip.to_string(), "10.203.0.128");
    let att2 = nets
        .attach(
            "inner",
            "x2",
            b.pid(),
            &AttachOptions {
                ip: Some("10.203.0.200".parse().unwrap()),
                mac: Some("02:00:00:00:00:42".into()),
                aliases: vec!["db".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(att2.mac, "02:00:00:00:00:42");
    assert_eq!(
        nets.inspect("inner").unwrap().endpoints[1].aliases,
        vec!["db"]
    );
    // Inside the network they talk; there is no way out.
    a.sh("busybox ping -c1 -W2 10.203.0.200");
    assert!(!a.sh("ip route").contains("default"));
    assert!(!a.try_sh("busybox ping -c1 -W1 192.168.78.2").0);
    a.sh("ip route add default via 10.203.0.254");
    assert!(!a.try_sh("busybox ping -c1 -W1 192.168.78.2").0);

    // A second network for the same container becomes eth1.
    let att3 = nets
        .attach("bridge", "x1", a.pid(), &AttachOptions::default())
        .unwrap();
    assert_eq!(att3.interface, "eth1");
    assert!(a.sh("ip -o addr show eth1").contains("10.202.0.2/24"));

    // The container dies; reconcile releases what it had.
    drop(a);
    nets.reconcile(&|id| id == "x2").unwrap();
    let inner = nets.inspect("inner").unwrap();
    assert_eq!(inner.endpoints.len(), 1);
    assert!(nets.inspect("bridge").unwrap().endpoints.is_empty());
    nets.detach("x2").unwrap();
    nets.remove("inner").unwrap();
    // The table stays while "bridge" exists, and goes with it.
    assert!(try_sh(&format!("nft list table inet {table}")).0);
    nets.remove("bridge").unwrap();
    assert!(!try_sh(&format!("nft list table inet {table}")).0);
}

#[test]
fn concurrent_attaches_get_distinct_addresses() {
    let _serial = common::serial();
    private_host();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config("10.204.0.0/24");
    {
        let conn = db(&dir);
        let nets = Networks::open_with(&conn, cfg.clone()).unwrap();
        nets.create(
            "busy",
            &hako_net::CreateOptions {
                subnet: Some("10.205.0.0/24".into()),
                ..Default::default()
            },
        )
        .unwrap();
    }
    let ctrs: Vec<Netns> = (0..8).map(|_| Netns::new()).collect();
    // Threads inherit the creating thread's network namespace, so they all see the test host.
    let ips: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = ctrs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (cfg, dir) = (cfg.clone(), &dir);
                let pid = c.pid();
                s.spawn(move || {
                    let conn = db(dir);
                    let nets = Networks::open_with(&conn, cfg).unwrap();
                    let opts = AttachOptions {
                        ports: parse_port_spec("9000-9100:80").unwrap(),
                        ..Default::default()
                    };
                    let a = nets.attach("busy", &format!("c{i}"), pid, &opts).unwrap();
                    (a.ip.to_string(), a.ports[0].host_port)
                })
            })
            .collect();
        let r: Vec<(String, u16)> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        let ports: std::collections::HashSet<u16> = r.iter().map(|x| x.1).collect();
        assert_eq!(ports.len(), 8, "{r:?}");
        r.into_iter().map(|x| x.0).collect()
    });
    let uniq: std::collections::HashSet<&String> = ips.iter().collect();
    assert_eq!(uniq.len(), 8, "{ips:?}");
    for (i, c) in ctrs.iter().enumerate() {
        assert!(c
            .sh("ip -o addr show eth0")
            .contains(&format!("{}/24", ips[i])));
    }
    let conn = db(&dir);
    let nets = Networks::open_with(&conn, cfg).unwrap();
    for i in 0..8 {
        nets.detach(&format!("c{i}")).unwrap();
    }
    nets.remove("busy").unwrap();
}

/// Prints attach/detach costs (no assertion on time) and checks that attach leaves no thread
/// behind (the process must stay fork-safe for later clones).
#[test]
fn attach_cost_and_no_threads_left() {
    let _serial = common::serial();
    private_host();
    let dir = tempfile::tempdir().unwrap();
    let conn = db(&dir);
    let nets = Networks::open_with(&conn, config("10.206.0.0/24")).unwrap();
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let before = threads();
    let warm = Netns::new();
    nets.attach("bridge", "warm", warm.pid(), &AttachOptions::default())
        .unwrap();
    let (mut plain, mut ported, mut det) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..15 {
        let c = Netns::new();
        let id = format!("t{i}");
        let t = Instant::now();
        let opts = if i % 2 == 0 {
            AttachOptions::default()
        } else {
            AttachOptions {
                ports: parse_port_spec("8080:80").unwrap(),
                ..Default::default()
            }
        };
        nets.attach("bridge", &id, c.pid(), &opts).unwrap();
        if i % 2 == 0 { &mut plain } else { &mut ported }.push(ms(t));
        let t = Instant::now();
        nets.detach(&id).unwrap();
        det.push(ms(t));
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    println!(
        "median attach {:.2} ms, attach with -p {:.2} ms, detach {:.2} ms",
        med(&mut plain),
        med(&mut ported),
        med(&mut det)
    );
    assert_eq!(threads(), before);
    nets.detach("warm").unwrap();
    nets.remove("bridge").unwrap();
}

/// The alias of link `name` in the calling thread's namespace ("" if none).
fn alias(name: &str) -> String {
    let out = sh(&format!("ip -d link show {name}"));
    out.lines()
        .find_map(|l| l.trim().strip_prefix("alias "))
        .unwrap_or("")
        .to_string()
}

#[test]
fn a_root_made_again_replaces_its_earlier_lifes_bridge_and_table() {
    let _serial = common::serial();
    private_host();
    let cfg = config("10.203.0.0/24");
    let (bridge, table) = (cfg.default_bridge.clone(), cfg.nft_table.clone());
    let c = Netns::new();
    let first = tempfile::tempdir().unwrap();
    let conn = db(&first);
    let nets = Networks::open_with(&conn, cfg.clone()).unwrap();
    nets.attach("bridge", "ctr-a", c.pid(), &AttachOptions::default())
        .unwrap();
    let old_alias = alias(&bridge);
    assert!(
        old_alias.starts_with("hako ") && old_alias.ends_with(&cfg.owner),
        "{old_alias}"
    );
    assert!(sh(&format!("nft list table inet {table}")).contains(&old_alias));
    drop(nets);
    drop(conn);
    // `rm -rf` of the root: the bridge and table stay, nothing records them any more.
    drop(first);
    let c2 = Netns::new();
    let again = tempfile::tempdir().unwrap();
    let conn = db(&again);
    let nets = Networks::open_with(&conn, cfg.clone()).unwrap();
    let att = nets
        .attach("bridge", "ctr-b", c2.pid(), &AttachOptions::default())
        .unwrap();
    // The same names, made anew (the old life's container is off the bridge), marked as
    // this life's.
    assert_eq!(nets.inspect("bridge").unwrap().bridge, bridge);
    assert_eq!(nets.inspect("bridge").unwrap().nft_table, table);
    assert_eq!(att.ip.to_string(), "10.203.0.2", "the old lease is gone");
    let new_alias = alias(&bridge);
    assert!(
        new_alias != old_alias && new_alias.ends_with(&cfg.owner),
        "{new_alias}"
    );
    assert!(sh(&format!("nft list table inet {table}")).contains(&new_alias));
    c2.sh("busybox ping -c1 -W2 10.203.0.1");
    nets.detach("ctr-b").unwrap();
    nets.remove("bridge").unwrap();
    assert!(!try_sh(&format!("ip link show {bridge}")).0);
    assert!(!try_sh(&format!("nft list table inet {table}")).0);
}

#[test]
fn others_bridges_and_tables_of_the_same_names_are_left_alone() {
    let _serial = common::serial();
    private_host();
    let cfg = config("10.204.0.0/24");
    let (bridge, table) = (cfg.default_bridge.clone(), cfg.nft_table.clone());
    // Someone else's interface and table with the default network's names, and another
    // state root's marked bridge with the next name.
    sh(&format!(
        "ip link add {bridge} type bridge && nft add table inet {table} && \
         ip link add {bridge}3 type bridge && ip link set {bridge}3 alias 'the lab uplink'"
    ));
    sh(&format!(
        "ip link add {bridge}1 type bridge && ip link set {bridge}1 alias 'hako 00 /elsewhere'"
    ));
    let dir = tempfile::tempdir().unwrap();
    let conn = db(&dir);
    let nets = Networks::open_with(&conn, cfg).unwrap();
    let c = Netns::new();
    let att = nets
        .attach("bridge", "ctr-a", c.pid(), &AttachOptions::default())
        .unwrap();
    let info = nets.inspect("bridge").unwrap();
    assert_eq!(info.bridge, format!("{bridge}2"));
    assert_eq!(info.nft_table, format!("{table}_1"));
    assert_eq!(att.new_bridge.as_deref(), Some(info.bridge.as_str()));
    c.sh("busybox ping -c1 -W2 10.204.0.1");
    // A user network named onto another's link is refused, naming who made it.
    let e = nets
        .create(
            "mine",
            &hako_net::CreateOptions {
                options: [(
                    "com.docker.network.bridge.name".to_string(),
                    format!("{bridge}1"),
                )]
                .into(),
                ..Default::default()
            },
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("/elsewhere"), "{e}");
    nets.detach("ctr-a").unwrap();
    nets.remove("bridge").unwrap();
    // Theirs are as they were.
    for (name, marker) in [
        (bridge.clone(), ""),
        (format!("{bridge}1"), "hako 00 /elsewhere"),
        (format!("{bridge}3"), "the lab uplink"),
    ] {
        assert_eq!(alias(&name), marker);
        let link = sh(&format!("ip -o link show {name}"));
        assert!(link.contains("state DOWN"), "{link}");
        assert!(!sh(&format!("ip -o addr show {name}")).contains("inet "));
    }
    assert_eq!(
        sh(&format!("nft list table inet {table}")).trim(),
        format!("table inet {table} {{\n}}")
    );
    assert!(!try_sh(&format!("ip link show {bridge}2")).0);
    assert!(!try_sh(&format!("nft list table inet {table}_1")).0);
}

#[test]
fn two_roots_whose_names_collide_both_work_and_keep_to_their_own() {
    let _serial = common::serial();
    private_host();
    let a_cfg = config("10.205.0.0/24");
    let b_cfg = hako_net::Config {
        default_subnet: Some("10.206.0.0/24".parse().unwrap()),
        owner: format!("{}-b", a_cfg.owner),
        ..a_cfg.clone()
    };
    let (bridge, table) = (a_cfg.default_bridge.clone(), a_cfg.nft_table.clone());
    let (da, db_) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (conn_a, conn_b) = (db(&da), db(&db_));
    let a = Networks::open_with(&conn_a, a_cfg).unwrap();
    let b = Networks::open_with(&conn_b, b_cfg).unwrap();
    let (ca, cb) = (Netns::new(), Netns::new());
    a.attach("bridge", "ctr-a", ca.pid(), &AttachOptions::default())
        .unwrap();
    b.attach("bridge", "ctr-b", cb.pid(), &AttachOptions::default())
        .unwrap();
    assert_eq!(a.inspect("bridge").unwrap().bridge, bridge);
    assert_eq!(b.inspect("bridge").unwrap().bridge, format!("{bridge}1"));
    assert_eq!(b.inspect("bridge").unwrap().nft_table, format!("{table}_1"));
    ca.sh("busybox ping -c1 -W2 10.205.0.1");
    cb.sh("busybox ping -c1 -W2 10.206.0.1");
    // Each root's teardown takes only its own.
    b.detach("ctr-b").unwrap();
    b.remove("bridge").unwrap();
    assert!(!try_sh(&format!("ip link show {bridge}1")).0);
    ca.sh("busybox ping -c1 -W2 10.205.0.1");
    assert!(try_sh(&format!("nft list table inet {table}")).0);
    // After a reboot another root's bridge holds a's name (it came up first): a says so and
    // leaves it. The reboot: the kernel state goes, and a's record of when it last checked
    // its names is from an earlier boot.
    a.detach("ctr-a").unwrap();
    sh(&format!(
        "ip link del {bridge} && ip link add {bridge} type bridge && \
         ip link set {bridge} alias 'hako 00 /elsewhere'"
    ));
    conn_a
        .execute(
            "UPDATE net_meta SET value = '0' WHERE key = 'checked:bridge'",
            [],
        )
        .unwrap();
    let ca2 = Netns::new();
    let e = a
        .attach("bridge", "ctr-a2", ca2.pid(), &AttachOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&bridge) && e.contains("/elsewhere") && e.contains("leaves it alone"),
        "{e}"
    );
    assert!(
        a.inspect("bridge").unwrap().endpoints.is_empty(),
        "no lease left"
    );
    a.remove("bridge").unwrap();
    assert_eq!(
        alias(&bridge),
        "hako 00 /elsewhere",
        "removal left it alone"
    );
    assert!(!try_sh(&format!("nft list table inet {table}")).0);
}
