//! Test fixtures: a private "host" network namespace per test, "containers" and "other hosts"
//! as `unshare --net sleep` processes, and unique names for everything.
//!
//! Each test thread moves itself into a fresh network namespace first, so bridges, nftables
//! tables, sysctls and routes the tests make never touch the machine's real network (where
//! Docker's rules live). Everything made there disappears with the namespace when the test's
//! thread and its `sleep` processes end; the Drop guards kill those processes even on panic.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hako_net::Config;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Serialises the tests of one binary: `attach_cost_and_no_threads_left` counts the threads of
/// the whole test process, which tests running beside it start and end.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Moves the calling thread into a new network namespace with loopback up.
pub fn private_host() {
    // SAFETY: unshare(2) with CLONE_NEWNET affects only the calling thread's namespaces.
    let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(
        r,
        0,
        "unshare(CLONE_NEWNET): {}",
        std::io::Error::last_os_error()
    );
    sh("ip link set lo up");
}

/// Unique names for one test: bridge, nft table, veth prefix.
pub fn config(subnet: &str) -> Config {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 100_000;
    Config {
        default_network: "bridge".into(),
        default_bridge: format!("hkt{pid}x{n}"),
        default_subnet: Some(subnet.parse().unwrap()),
        nft_table: format!("hakotest_{pid}_{n}"),
        veth_prefix: format!("v{}", n % 100),
        bridge_prefix: "ht-".into(),
        // The name server binary is hako-cli's; the CLI's end-to-end tests cover it.
        dns_server: None,
        proxy_server: None,
        dns_upstream: None,
        owner: format!("/test/{pid}/{n}"),
        owners_are_roots: false,
    }
}

/// Runs a shell command in the calling thread's network namespace; panics on failure.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Like `sh` but returns success and combined output.
pub fn try_sh(cmd: &str) -> (bool, String) {
    let out = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), s)
}

fn netns_of(pid: &str) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()
}

/// A process in its own network namespace: a "container" or an "other host".
pub struct Netns {
    child: Child,
    servers: Vec<Child>,
}

impl Netns {
    pub fn new() -> Netns {
        let child = Command::new("unshare")
            .args(["--net", "sleep", "600"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let me = netns_of("thread-self");
        let pid = child.id().to_string();
        let deadline = Instant::now() + Duration::from_secs(5);
        // unshare execs sleep after switching; wait until the switch is visible.
        while netns_of(&pid) == me || netns_of(&pid).is_none() {
            assert!(Instant::now() < deadline, "unshare --net did not start");
            std::thread::sleep(Duration::from_millis(1));
        }
        Netns {
            child,
            servers: Vec::new(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Runs a shell command inside this namespace; panics on failure.
    pub fn sh(&self, cmd: &str) -> String {
        sh(&format!("nsenter -t {} -n sh -c '{}'", self.pid(), cmd))
    }

    pub fn try_sh(&self, cmd: &str) -> (bool, String) {
        try_sh(&format!("nsenter -t {} -n sh -c '{}'", self.pid(), cmd))
    }

    /// Starts `busybox nc` answering `reply` on TCP `port` inside this namespace.
    pub fn serve(&mut self, port: u16, reply: &str) {
        let c = Command::new("nsenter")
            .args([
                "-t",
                &self.pid().to_string(),
                "-n",
                "busybox",
                "nc",
                "-ll",
                "-p",
            ])
            .arg(port.to_string())
            .args(["-e", "echo", reply])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.servers.push(c);
        // Wait until it listens.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self
            .try_sh(&format!(
                "grep -q \":{port:04X} .* 0A \" /proc/net/tcp /proc/net/tcp6"
            ))
            .0
        {
            assert!(Instant::now() < deadline, "server on {port} did not start");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Connects `outside` (another namespace) to the calling thread's namespace through a veth
    /// pair: host side `host_if` with `host_ip/24`, other side `eth0` with `peer_ip/24`.
    pub fn link_to_host(&self, host_if: &str, host_ip: &str, peer_ip: &str) {
        sh(&format!(
            "ip link add {host_if} type veth peer name eth0 netns {pid} && \
             ip addr add {host_ip}/24 dev {host_if} && ip link set {host_if} up",
            pid = self.pid()
        ));
        self.sh(&format!(
            "ip addr add {peer_ip}/24 dev eth0 && ip link set eth0 up && ip link set lo up"
        ));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh state database in a temporary directory (WAL and a busy timeout, as the engine's).
pub fn db(dir: &tempfile::TempDir) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(dir.path().join("hako.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let _: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    conn
}
