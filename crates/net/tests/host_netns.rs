//! The host side in a network namespace of its own (`set_host_netns`, what rootless hako
//! uses): bridges, the nftables table and sysctls go there, never into the caller's
//! namespace. A test binary of its own: the setting is for the whole process.

mod common;

use common::*;
use hako_net::{AttachOptions, Networks};

#[test]
fn a_host_namespace_of_its_own_takes_bridges_tables_and_sysctls() {
    private_host();
    let side = Netns::new();
    let path = format!("/proc/{}/ns/net", side.pid());
    hako_net::set_host_netns(move || std::fs::File::open(&path));
    assert!(hako_net::host_netns_set());
    let ctr = Netns::new();
    let dir = tempfile::tempdir().unwrap();
    let conn = db(&dir);
    let nets = Networks::open_with(&conn, config("10.231.7.0/24")).unwrap();
    let bridge = nets.config().default_bridge.clone();
    let table = nets.config().nft_table.clone();
    let a = nets
        .attach("bridge", "c1", ctr.pid(), &AttachOptions::default())
        .unwrap();
    assert!(side.sh("ip -br link").contains(&bridge));
    assert!(
        !sh("ip -br link").contains(&bridge),
        "bridge in the caller's namespace"
    );
    assert!(side.sh("nft list tables").contains(&table));
    assert!(!try_sh("nft list tables").1.contains(&table));
    assert_eq!(side.sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    // The container end is wired as ever, and this thread is still where it was.
    assert!(ctr.sh("ip -4 addr show eth0").contains(&a.ip.to_string()));
    ctr.sh(&format!("busybox ping -c1 -W2 {}", a.gateway));
    nets.detach("c1").unwrap();
    nets.remove("bridge").unwrap();
    assert!(!side.sh("ip -br link").contains(&bridge));
    assert!(!side.sh("nft list tables").contains(&table));
}
