//! `hako-proxy`: TCP ports published on the host's IPv6 loopback address (`-p '[::1]:8080:80'`).
//!
//! Every other published port is a DNAT map element, but the kernel does not forward a
//! connection from `::1` to a container (measured: DNAT in the output hook plus masquerade on
//! the bridge never reaches it, while the same rules for a global address of the host do), so
//! these ports get a small userland proxy, as Docker's `docker-proxy` serves them. One process
//! per published port: it listens on `[::1]:PORT` and relays each connection to the container's
//! IPv4 address, which every container on a bridge has.
//!
//! Its life, as that of `hako-dns`: `attach` starts it (it binds first and says `ready PID` or
//! `error: …`), its pid and start time go in `net_proxies`, and `detach` (any path that forgets
//! the container's rows) sends SIGTERM. The proxy also checks once a second that its port's
//! row in `net_ports` still names its container, and exits when not: that covers a `hako`
//! killed between its commit and the kill.

use std::ffi::OsString;
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::dns::{detach_server, reset_signals, spawn_detached};
use crate::{Error, Result};

/// Starts the proxy for `listen` (an address on `::1`) to `target`, for `container_id`'s row
/// in `net_ports`; returns its pid.
pub(crate) fn spawn(
    exe: &Path,
    db: &Path,
    container_id: &str,
    listen: SocketAddr,
    target: SocketAddr,
) -> Result<i64> {
    let args: Vec<OsString> = vec![
        db.into(),
        container_id.into(),
        listen.to_string().into(),
        target.to_string().into(),
    ];
    spawn_detached(exe, &args)
        .map_err(|why| Error::Dns(format!("the proxy for port {listen} did not start: {why}")))
}

/// `hako-proxy DB CONTAINER LISTEN TARGET`: the body of the `hako-proxy` binary. Returns the
/// exit status.
pub fn server_main(args: impl Iterator<Item = OsString>) -> i32 {
    let args: Vec<String> = args
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let [db, container, listen, target] = &args[..] else {
        eprintln!("usage: hako-proxy DATABASE CONTAINER LISTEN TARGET");
        return 2;
    };
    reset_signals();
    let (Ok(listen), Ok(target)) = (listen.parse::<SocketAddr>(), target.parse::<SocketAddr>())
    else {
        println!("error: bad address {listen:?} or {target:?}");
        return 2;
    };
    let listener = match TcpListener::bind(listen) {
        Ok(l) => l,
        Err(e) => {
            println!("error: listening on {listen}: {e}");
            return 1;
        }
    };
    if let Err(msg) = detach_server() {
        println!("{msg}");
        return 1;
    }
    // Opened after the fork: a connection must never cross one.
    let conn = match Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY) {
        Ok(c) => c,
        Err(_) => return 1,
    };
    let _ = conn.busy_timeout(Duration::from_secs(5));
    let (container, port) = (container.clone(), listen.port());
    let host = listen.ip().to_string();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_secs(1));
        let mine: rusqlite::Result<Option<String>> = conn
            .query_row(
                "SELECT container_id FROM net_ports
                 WHERE proto = 'tcp' AND host_ip = ?1 AND host_port = ?2",
                rusqlite::params![host, port],
                |r| r.get(0),
            )
            .optional();
        match mine {
            Ok(Some(c)) if c == container => {}
            // A busy database is no reason to stop serving.
            Err(rusqlite::Error::SqliteFailure(f, _))
                if f.code == rusqlite::ErrorCode::DatabaseBusy => {}
            _ => std::process::exit(0),
        }
    });
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        std::thread::spawn(move || relay(client, target));
    }
    0
}

/// Copies both directions between `client` and a new connection to `target`, passing each
/// end-of-stream on as a half-close, until both are done.
fn relay(client: TcpStream, target: SocketAddr) {
    let Ok(upstream) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        return;
    };
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let back = std::thread::spawn(move || pipe(u2, c2));
    pipe(client, upstream);
    let _ = back.join();
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.flush();
    let _ = to.shutdown(Shutdown::Write);
}
