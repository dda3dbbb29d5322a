//! The name service of user-defined networks: one small `hako-dns` process per network, on the
//! network's gateway address (UDP and TCP port 53), started by the first container that
//! attaches and stopped when the last one leaves. Containers' `/etc/resolv.conf` names the
//! gateway. Names (container name, short ID, `--network-alias`) are read from the state
//! database on every query, so they follow containers as they come and go; other names are
//! forwarded to the host's own resolvers (the server runs in the host's network namespace, so
//! even a loopback resolver such as 127.0.0.53 works), or, rootless, to
//! [`crate::Config::dns_upstream`] (the user-mode stack's DNS address: a loopback resolver of
//! the host is out of reach from the user's network namespace).
//!
//! Messages are parsed here rather than with `hickory-proto`: 0.25 with only `std` pulls in 51
//! crates (ICU/idna, url, futures, tracing, rand) and 0.26 needs a newer Rust than the
//! workspace's; the server only needs the header, one question and A/PTR answers, and relays
//! forwarded replies byte for byte.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::os::unix::process::CommandExt;

use rusqlite::{Connection, OpenFlags, OptionalExtension};

use crate::{Error, NetworkInfo, Networks, Result};

/// TTL of our answers; Docker's embedded DNS uses 600 s too.
const TTL: u32 = 600;
const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_PTR: u16 = 12;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const RCODE_FORMERR: u8 = 1;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_NOTIMP: u8 = 4;
/// At most this many forwarded queries in flight; more get SERVFAIL rather than threads.
const MAX_FORWARDS: usize = 64;

/// A parsed query: the header fields we echo and the one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Query {
    id: u16,
    /// Opcode and RD bits of the request, as they are echoed in the reply.
    flags: u16,
    /// Lower-case, without the trailing dot.
    name: String,
    qtype: u16,
    qclass: u16,
    /// The question section exactly as received (echoed in the reply).
    question: Vec<u8>,
}

/// Parses a query; `Err(Some(id))` when the header is readable but the rest is not (answer
/// FORMERR), `Err(None)` when not even that (drop it).
pub(crate) fn parse_query(buf: &[u8]) -> Result<Query, Option<u16>> {
    if buf.len() < 12 {
        return Err(None);
    }
    let be = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
    let id = be(0);
    let flags = be(2);
    // A response, or not exactly one question: nothing a stub resolver sends.
    if flags & 0x8000 != 0 {
        return Err(None);
    }
    if be(4) != 1 {
        return Err(Some(id));
    }
    let mut i = 12;
    let mut labels: Vec<String> = Vec::new();
    loop {
        let len = *buf.get(i).ok_or(Some(id))? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        // Compression pointers (0xC0) and the reserved label types are not used in questions.
        if len > 63 {
            return Err(Some(id));
        }
        let label = buf.get(i..i + len).ok_or(Some(id))?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        i += len;
    }
    let fixed = buf.get(i..i + 4).ok_or(Some(id))?;
    let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    Ok(Query {
        id,
        flags: flags & 0x7900,
        name: labels.join("."),
        qtype,
        qclass,
        question: buf[12..i + 4].to_vec(),
    })
}

/// An answer record for the question's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Ptr(String),
}

fn encode_name(name: &str, out: &mut Vec<u8>) {
    for l in name.split('.').filter(|l| !l.is_empty()) {
        let l = &l.as_bytes()[..l.len().min(63)];
        out.push(l.len() as u8);
        out.extend_from_slice(l);
    }
    out.push(0);
}

/// An authoritative reply to `q` with `rcode` and `answers`.
pub(crate) fn reply(q: &Query, rcode: u8, answers: &[Answer]) -> Vec<u8> {
    // QR, the request's opcode and RD, AA (the names are ours), RA (we recurse for the rest).
    let flags = 0x8000 | q.flags | 0x0400 | 0x0080 | rcode as u16;
    let mut out = Vec::with_capacity(12 + q.question.len() + answers.len() * 16);
    for v in [q.id, flags, 1, answers.len() as u16, 0, 0] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&q.question);
    for a in answers {
        // A pointer to the question's name at offset 12.
        out.extend_from_slice(&[0xc0, 0x0c]);
        let (rtype, rdata) = match a {
            Answer::A(ip) => (TYPE_A, ip.octets().to_vec()),
            Answer::Aaaa(ip) => (TYPE_AAAA, ip.octets().to_vec()),
            Answer::Ptr(name) => {
                let mut d = Vec::new();
                encode_name(name, &mut d);
                (TYPE_PTR, d)
            }
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(&rdata);
    }
    out
}

fn formerr(id: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(12);
    for v in [id, 0x8000 | 0x0080 | RCODE_FORMERR as u16, 0, 0, 0, 0] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out
}

/// `4.3.2.1.in-addr.arpa` → 1.2.3.4.
fn reverse_v4(name: &str) -> Option<Ipv4Addr> {
    let rest = name.strip_suffix(".in-addr.arpa")?;
    let mut o: Vec<u8> = rest
        .split('.')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if o.len() != 4 {
        return None;
    }
    o.reverse();
    Some(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
}

/// What the server does with a query.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Reply(Vec<u8>),
    Forward,
    /// A name from outside on an internal network, which has no way out for names either.
    NoWayOut,
}

/// The names of one network, looked up in the state database.
pub(crate) struct Names {
    conn: Connection,
    network: String,
    internal: bool,
}

impl Names {
    fn lookup(&self, name: &str) -> rusqlite::Result<Vec<Ipv4Addr>> {
        let mut st = self.conn.prepare_cached(
            "SELECT DISTINCT l.ip FROM net_names n JOIN net_leases l
               ON l.network = n.network AND l.container_id = n.container_id
             WHERE n.network = ?1 AND n.name = ?2 ORDER BY l.ip",
        )?;
        let v = st
            .query_map([&self.network, name], |r| r.get::<_, String>(0))?
            .filter_map(|r| r.ok()?.parse().ok())
            .collect();
        Ok(v)
    }

    fn lookup6(&self, name: &str) -> rusqlite::Result<Vec<Ipv6Addr>> {
        let mut st = self.conn.prepare_cached(
            "SELECT DISTINCT l.ip FROM net_names n JOIN net_leases6 l
               ON l.network = n.network AND l.container_id = n.container_id
             WHERE n.network = ?1 AND n.name = ?2 ORDER BY l.ip",
        )?;
        let v = st
            .query_map([&self.network, name], |r| r.get::<_, String>(0))?
            .filter_map(|r| r.ok()?.parse().ok())
            .collect();
        Ok(v)
    }

    fn reverse(&self, ip: Ipv4Addr) -> rusqlite::Result<Option<String>> {
        self.conn
            .prepare_cached(
                "SELECT n.name FROM net_leases l JOIN net_names n
                   ON l.network = n.network AND l.container_id = n.container_id
                 WHERE l.network = ?1 AND l.ip = ?2 ORDER BY n.ord LIMIT 1",
            )?
            .query_row([&self.network, &ip.to_string()], |r| r.get(0))
            .optional()
    }

    /// Answers from the network's names, or says to forward.
    pub(crate) fn decide(&self, q: &Query) -> Decision {
        let fail = |rcode| Decision::Reply(reply(q, rcode, &[]));
        if (q.flags >> 11) & 0xf != 0 {
            return fail(RCODE_NOTIMP);
        }
        if q.qclass != CLASS_IN {
            return self.outside();
        }
        let Ok(ips) = self.lookup(&q.name) else {
            return fail(RCODE_SERVFAIL);
        };
        if !ips.is_empty() {
            let v6 = match q.qtype {
                TYPE_AAAA | TYPE_ANY => match self.lookup6(&q.name) {
                    Ok(v) => v,
                    Err(_) => return fail(RCODE_SERVFAIL),
                },
                _ => Vec::new(),
            };
            // A name without the asked type gets NOERROR with no data, so that resolvers
            // asking for A and AAAA together still use the other answer.
            let mut answers: Vec<Answer> = match q.qtype {
                TYPE_A | TYPE_ANY => ips.into_iter().map(Answer::A).collect(),
                _ => Vec::new(),
            };
            answers.extend(v6.into_iter().map(Answer::Aaaa));
            return Decision::Reply(reply(q, 0, &answers));
        }
        if q.qtype == TYPE_PTR {
            if let Some(ip) = reverse_v4(&q.name) {
                match self.reverse(ip) {
                    Ok(Some(n)) => return Decision::Reply(reply(q, 0, &[Answer::Ptr(n)])),
                    Ok(None) => {}
                    Err(_) => return fail(RCODE_SERVFAIL),
                }
            }
        }
        self.outside()
    }

    fn outside(&self) -> Decision {
        if self.internal {
            Decision::NoWayOut
        } else {
            Decision::Forward
        }
    }
}

/// The host's nameservers, from its resolv.conf (loopback ones included: we run on the host).
fn upstreams(resolv: &str) -> Vec<SocketAddr> {
    resolv
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next())?
        })
        .filter_map(|a| a.split('%').next()?.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Sends `query` to each upstream in turn over UDP and returns the first matching reply.
fn forward_udp(query: &[u8], ups: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in ups {
        let local: SocketAddr = if up.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let Ok(s) = UdpSocket::bind(local) else {
            continue;
        };
        if s.connect(up).is_err() || s.send(query).is_err() {
            continue;
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = vec![0u8; 65535];
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            match s.recv(&mut buf) {
                // The same ID: a reply to this query and not a stray datagram.
                Ok(n) if n >= 12 && buf[..2] == query[..2] => return Some(buf[..n].to_vec()),
                Ok(_) => continue,
                Err(_) => break,
            }
        }
    }
    None
}

/// Over TCP (for replies too big for UDP).
fn forward_tcp(query: &[u8], ups: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in ups {
        let Ok(mut s) = TcpStream::connect_timeout(up, Duration::from_secs(2)) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(4)));
        let mut msg = (query.len() as u16).to_be_bytes().to_vec();
        msg.extend_from_slice(query);
        if s.write_all(&msg).is_err() {
            continue;
        }
        if let Some(r) = read_tcp_message(&mut s) {
            return Some(r);
        }
    }
    None
}

fn read_tcp_message(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    Some(buf)
}

struct Server {
    names: Names,
    upstreams: Vec<SocketAddr>,
    in_flight: Arc<AtomicUsize>,
}

impl Server {
    /// The reply to one message, `None` to drop it; forwarded queries are answered by `send`
    /// from a thread of their own.
    fn handle(
        &self,
        msg: &[u8],
        tcp: bool,
        send: impl FnOnce(Vec<u8>) + Send + 'static,
    ) -> Option<Vec<u8>> {
        let q = match parse_query(msg) {
            Ok(q) => q,
            Err(Some(id)) => return Some(formerr(id)),
            Err(None) => return None,
        };
        match self.names.decide(&q) {
            Decision::Reply(r) => Some(r),
            Decision::NoWayOut => Some(reply(&q, RCODE_SERVFAIL, &[])),
            Decision::Forward if self.upstreams.is_empty() => Some(reply(&q, RCODE_SERVFAIL, &[])),
            Decision::Forward => {
                if self.in_flight.fetch_add(1, Ordering::SeqCst) >= MAX_FORWARDS {
                    self.in_flight.fetch_sub(1, Ordering::SeqCst);
                    return Some(reply(&q, RCODE_SERVFAIL, &[]));
                }
                let ups = self.upstreams.clone();
                let in_flight = self.in_flight.clone();
                let msg = msg.to_vec();
                std::thread::spawn(move || {
                    let r = if tcp {
                        forward_tcp(&msg, &ups)
                    } else {
                        forward_udp(&msg, &ups)
                    };
                    send(r.unwrap_or_else(|| reply(&q, RCODE_SERVFAIL, &[])));
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                });
                None
            }
        }
    }
}

/// Errors of the server's start, printed on its stdout for the `hako` that started it.
fn start_error(what: &str, e: impl std::fmt::Display) -> String {
    format!("error: {what}: {e}")
}

fn bind_retrying<T>(
    addr: SocketAddr,
    bind: impl Fn(SocketAddr) -> std::io::Result<T>,
) -> std::io::Result<T> {
    // The previous server of this network may still be exiting (it was sent SIGTERM a moment
    // ago); its socket goes with it.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match bind(addr) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            r => return r,
        }
    }
}

/// Binds `addr`, taking it from an earlier server of the same network if one holds it.
///
/// A server is started only by a `hako` that holds the database's write lock and found no
/// live server recorded for the network, so another server of this database and network
/// still running is nobody's: one whose starter was killed between our `ready` and its commit
/// (it would serve on, unrecorded, for up to ten seconds, and every `run` on the network would
/// fail to start a server meanwhile), or one already told to stop. It is stopped, and the
/// address retried until its socket is gone.
fn bind_taking_over<T>(
    addr: SocketAddr,
    bind: impl Fn(SocketAddr) -> std::io::Result<T>,
    db: &Path,
    network: &str,
) -> std::io::Result<T> {
    match bind(addr) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            for (pid, st) in servers_of(db, network) {
                kill(pid, st);
            }
            bind_retrying(addr, bind)
        }
        r => r,
    }
}

/// Other live `hako-dns` processes serving `network` of database `db`, with their start times.
fn servers_of(db: &Path, network: &str) -> Vec<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let me = i64::from(std::process::id());
    // The binary is found by its name: the one this server was started as.
    let own_name = std::env::args_os()
        .next()
        .and_then(|a| Path::new(&a).file_name().map(|f| f.to_os_string()))
        .unwrap_or_else(|| "hako-dns".into());
    let mut out = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<i64>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Empty for a zombie, which holds no socket.
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<&[u8]> = cmd
            .strip_suffix(b"\0")
            .unwrap_or(&cmd)
            .split(|b| *b == 0)
            .collect();
        let ours = match argv[..] {
            [exe, d, n] => {
                Path::new(std::ffi::OsStr::from_bytes(exe))
                    .file_name()
                    .is_some_and(|f| f == own_name)
                    && d == db.as_os_str().as_bytes()
                    && n == network.as_bytes()
            }
            _ => false,
        };
        if let (true, Some(st)) = (ours, start_time(pid)) {
            out.push((pid, st));
        }
    }
    out
}

/// The own row of this server in `net_dns`: `Some(true)` ours, `Some(false)` another
/// server's, `None` no row.
fn own_row(conn: &Connection, network: &str, pid: u32) -> rusqlite::Result<Option<bool>> {
    conn.prepare_cached("SELECT pid FROM net_dns WHERE network = ?1")?
        .query_row([network], |r| r.get::<_, u32>(0))
        .optional()
        .map(|o| o.map(|p| p == pid))
}

/// `hako-dns DB NETWORK`: the body of the `hako-dns` binary. Binds, detaches (prints
/// `ready PID` or `error: ...` on stdout for the caller, then leaves it), serves until its row
/// in `net_dns` goes away or names another server. Returns the exit status.
pub fn server_main(args: impl Iterator<Item = OsString>) -> i32 {
    let args: Vec<OsString> = args.skip(1).collect();
    let (db, network, upstream) = match &args[..] {
        [db, network] => (db, network, None),
        [db, network, up] => match up.to_string_lossy().parse::<std::net::IpAddr>() {
            Ok(ip) => (db, network, Some(SocketAddr::new(ip, 53))),
            Err(_) => {
                eprintln!("hako-dns: upstream {up:?} is not an IP address");
                return 2;
            }
        },
        _ => {
            eprintln!("usage: hako-dns DATABASE NETWORK [UPSTREAM]");
            return 2;
        }
    };
    let network = network.to_string_lossy().into_owned();
    reset_signals();
    match start(Path::new(db), &network, upstream) {
        Ok(()) => 0,
        Err(msg) => {
            println!("{msg}");
            1
        }
    }
}

fn open_ro(db: &Path) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| start_error("state database", e))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| start_error("state database", e))?;
    Ok(conn)
}

fn start(db: &Path, network: &str, upstream: Option<SocketAddr>) -> Result<(), String> {
    let (gateway, internal): (String, bool) = open_ro(db)?
        .query_row(
            "SELECT gateway, internal FROM net_networks WHERE name = ?1",
            [network],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(|e| start_error(&format!("network {network}"), e))?;
    let gateway: Ipv4Addr = gateway
        .parse()
        .map_err(|e| start_error("gateway address", e))?;
    let addr = SocketAddr::from((gateway, 53));
    let udp = bind_taking_over(addr, UdpSocket::bind, db, network)
        .map_err(|e| start_error(&format!("listening on {addr}/udp"), e))?;
    let tcp = bind_taking_over(addr, TcpListener::bind, db, network)
        .map_err(|e| start_error(&format!("listening on {addr}/tcp"), e))?;
    // On IPv6 networks, UDP on the v6 gateway too, for clients that ask it directly.
    let gateway6: Option<String> = open_ro(db)?
        .query_row(
            "SELECT gateway FROM net_networks6 WHERE network = ?1",
            [network],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| start_error(&format!("network {network}"), e))?;
    let udp6 = match gateway6 {
        Some(g) => {
            let g: Ipv6Addr = g.parse().map_err(|e| start_error("gateway address", e))?;
            let addr6 = SocketAddr::from((g, 53));
            Some(
                bind_taking_over(addr6, UdpSocket::bind, db, network)
                    .map_err(|e| start_error(&format!("listening on {addr6}/udp"), e))?,
            )
        }
        None => None,
    };
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    // The `hako` that started us, which records us once we are ready.
    let starter = {
        // SAFETY: getppid has no preconditions.
        let ppid = i64::from(unsafe { libc::getppid() });
        start_time(ppid).map(|st| (ppid, st))
    };
    detach_server()?;
    // Opened after the fork: SQLite's POSIX locks belong to the process that took them, so a
    // connection must never cross a fork (the child's reads would not see later commits).
    let conn = open_ro(db)?;
    let pid = std::process::id();
    let server = Server {
        names: Names {
            conn,
            network: network.to_string(),
            internal,
        },
        upstreams: match upstream {
            Some(up) => vec![up],
            None => upstreams(&resolv),
        },
        in_flight: Arc::new(AtomicUsize::new(0)),
    };
    {
        // TCP on a thread of its own: one connection at a time is enough for the rare
        // truncated-reply retries of a handful of containers.
        let tcp_db = PathBuf::from(db);
        let network = network.to_string();
        let upstreams = server.upstreams.clone();
        std::thread::spawn(move || serve_tcp(tcp, &tcp_db, &network, internal, upstreams));
    }
    if let Some(udp6) = udp6 {
        // Its own connection: a rusqlite Connection is not shared between threads.
        let v6 = Server {
            names: Names {
                conn: open_ro(db)?,
                network: network.to_string(),
                internal,
            },
            upstreams: server.upstreams.clone(),
            in_flight: server.in_flight.clone(),
        };
        std::thread::spawn(move || serve_udp(Arc::new(udp6), &v6));
    }
    let udp = Arc::new(udp);
    udp.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| start_error("socket", e))?;
    let started = Instant::now();
    let mut seen_mine = false;
    let mut buf = vec![0u8; 4096];
    loop {
        match udp.recv_from(&mut buf) {
            Ok((n, peer)) => {
                let out = udp.clone();
                if let Some(r) = server.handle(&buf[..n], false, move |r| {
                    let _ = out.send_to(&r, peer);
                }) {
                    let _ = udp.send_to(&r, peer);
                }
                continue;
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut
                    || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Ok(()),
        }
        // Once a second: still this network's server? (The `hako` that stops us also sends
        // SIGTERM; this covers one that crashed between its commit and the kill.)
        // Looked at before the row: a starter that is gone by then can commit nothing more, so
        // no row after it means it died before recording us (`kill -9` of a `run`), and
        // nobody will stop us.
        let starter_gone = !seen_mine && starter.is_none_or(|(p, st)| start_time(p) != Some(st));
        match own_row(&server.names.conn, network, pid) {
            Ok(Some(true)) => seen_mine = true,
            Ok(Some(false)) => return Ok(()),
            // The caller records us right after `ready`; give it a moment the first time.
            Ok(None)
                if seen_mine || starter_gone || started.elapsed() > Duration::from_secs(10) =>
            {
                return Ok(())
            }
            Ok(None) => {}
            Err(_) if started.elapsed() > Duration::from_secs(10) => return Ok(()),
            Err(_) => {}
        }
    }
}

/// Answers UDP queries on `udp` until the socket fails (the process exits with the main loop).
fn serve_udp(udp: Arc<UdpSocket>, server: &Server) {
    let mut buf = vec![0u8; 4096];
    loop {
        match udp.recv_from(&mut buf) {
            Ok((n, peer)) => {
                let out = udp.clone();
                if let Some(r) = server.handle(&buf[..n], false, move |r| {
                    let _ = out.send_to(&r, peer);
                }) {
                    let _ = udp.send_to(&r, peer);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn serve_tcp(
    listener: TcpListener,
    db: &Path,
    network: &str,
    internal: bool,
    upstreams: Vec<SocketAddr>,
) {
    let Ok(conn) = open_ro(db) else {
        return;
    };
    let server = Server {
        names: Names {
            conn,
            network: network.to_string(),
            internal,
        },
        upstreams,
        in_flight: Arc::new(AtomicUsize::new(0)),
    };
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        while let Some(msg) = read_tcp_message(&mut s) {
            let (tx, rx) = std::sync::mpsc::channel();
            let r = match server.handle(&msg, true, move |r| {
                let _ = tx.send(r);
            }) {
                Some(r) => r,
                None => match rx.recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            let mut out = (r.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&r);
            if s.write_all(&out).is_err() {
                break;
            }
        }
    }
}

/// `hako` blocks SIGTERM and friends while it creates a container, and a blocked mask survives
/// exec: without this the server would never see the SIGTERM that stops it.
pub(crate) fn reset_signals() {
    // SAFETY: sigemptyset initialises the set we own; sigprocmask and signal take plain
    // values and change only this (still single-threaded) process's signal state.
    unsafe {
        let mut set = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
}

/// Forks: the parent exits at once (so the `hako` that started us can reap it and we are
/// nobody's child), the child starts a session, reports `ready PID` on stdout and then points
/// stdin, stdout and stderr at /dev/null, which closes the caller's pipe.
pub(crate) fn detach_server() -> std::result::Result<(), String> {
    // SAFETY: no thread exists yet in this process (the server's threads start after this),
    // so the child may do anything after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(start_error("fork", std::io::Error::last_os_error()));
    }
    if pid > 0 {
        // SAFETY: _exit ends the parent without running atexit handlers or flushing stdio
        // buffers that the child shares.
        unsafe { libc::_exit(0) };
    }
    // SAFETY: setsid has no memory-safety preconditions.
    unsafe { libc::setsid() };
    println!("ready {}", std::process::id());
    let _ = std::io::stdout().flush();
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| start_error("/dev/null", e))?;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors from a file we own; std's handles keep
        // working, now on /dev/null.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
    }
    Ok(())
}

/// The start time of process `pid` (`hako_base::proc::start_time`), to tell it from a later
/// process that reuses the pid; `None` for a zombie (a server killed under an init that reaps
/// lazily), which is not serving.
pub(crate) fn start_time(pid: i64) -> Option<i64> {
    hako_base::proc::start_time(i32::try_from(pid).ok()?).map(|t| t as i64)
}

fn subreaper() -> bool {
    let mut v: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int through the pointer we pass.
    unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut v as *mut libc::c_int) };
    v != 0
}

fn set_subreaper(on: bool) {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes a plain integer argument.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, on as libc::c_ulong) };
}

/// Starts `hako-dns DB NETWORK` and returns the server's pid once it listens.
fn spawn_server(
    exe: &Path,
    db: &Path,
    network: &str,
    upstream: Option<std::net::IpAddr>,
) -> Result<i64> {
    let mut args: Vec<OsString> = vec![db.into(), network.into()];
    args.extend(upstream.map(|ip| ip.to_string().into()));
    spawn_detached(exe, &args).map_err(|why| {
        Error::Dns(format!(
            "the name server of network {network} did not start: {why}"
        ))
    })
}

/// Runs a server binary that detaches itself (see [`detach_server`]) and returns the pid it
/// reports, or why it did not start.
pub(crate) fn spawn_detached(exe: &Path, args: &[OsString]) -> std::result::Result<i64, String> {
    // `run -d` attaches from a child subreaper (the future monitor), which waits for every
    // descendant: the server must not become one of its orphans, so the subreaper bit is off
    // while the server's intermediate process exits and the server is reparented to init.
    let was_subreaper = subreaper();
    if was_subreaper {
        set_subreaper(false);
    }
    let out = std::process::Command::new(exe)
        .args(args)
        .stdin(std::process::Stdio::null())
        // Read only for a server that fails before it is ready: one that starts turns its
        // standard descriptors to /dev/null, which ends the pipe.
        .stderr(std::process::Stdio::piped())
        // Out of the terminal's process group: a Ctrl-C in `hako run` is not for the server.
        .process_group(0)
        .output();
    if was_subreaper {
        set_subreaper(true);
    }
    let out = out.map_err(|e| format!("{}: {e}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("").trim();
    match line.strip_prefix("ready ").and_then(|p| p.parse().ok()) {
        Some(pid) => Ok(pid),
        None if line.is_empty() => {
            // Say which binary failed and how: a stale one beside hako is a likely cause.
            let err = String::from_utf8_lossy(&out.stderr);
            let said = err.lines().rev().find(|l| !l.trim().is_empty());
            Err(match said {
                Some(l) => format!("{}: {} ({})", exe.display(), l.trim(), out.status),
                None => format!("{} printed nothing ({})", exe.display(), out.status),
            })
        }
        None => Err(line.strip_prefix("error: ").unwrap_or(line).to_string()),
    }
}

impl Networks<'_> {
    /// Makes sure network `net` has its name server; returns the address containers should
    /// use (the gateway). Idempotent and safe against concurrent `hako run`s: the row in
    /// `net_dns` is checked and written under the database's write lock.
    pub(crate) fn ensure_dns(&self, net: &NetworkInfo) -> Result<Option<Ipv4Addr>> {
        let Some(exe) = self.cfg.dns_server.as_deref() else {
            return Ok(None);
        };
        let Some(db) = self
            .conn
            .path()
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
        else {
            return Err(Error::Dns(
                "the name server needs an on-disk state database".into(),
            ));
        };
        let tx = self.immediate()?;
        let row: Option<(i64, i64)> = tx
            .query_row(
                "SELECT pid, start_time FROM net_dns WHERE network = ?1",
                [&net.name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((pid, st)) = row {
            if start_time(pid) == Some(st) {
                if crate::host::holds(pid) {
                    return Ok(Some(net.gateway));
                }
                // Serving in a rootless namespace that was made again since: it keeps the
                // old one alive, and answers nobody.
                kill(pid, st);
            }
        }
        let upstream = self.cfg.dns_upstream;
        let pid = crate::host::run(|| spawn_server(exe, &db, &net.name, upstream))
            .map_err(|e| Error::Dns(format!("entering the networks' namespace: {e}")))??;
        let st = start_time(pid).unwrap_or(0);
        let recorded = tx
            .execute(
                "INSERT OR REPLACE INTO net_dns (network, pid, start_time) VALUES (?1, ?2, ?3)",
                rusqlite::params![net.name, pid, st],
            )
            .and_then(|_| tx.commit());
        if let Err(e) = recorded {
            kill(pid, st);
            return Err(e.into());
        }
        Ok(Some(net.gateway))
    }

    /// A container's first name (its container name, see [`crate::AttachOptions::names`])
    /// changed: the name servers answer for the new one from now on.
    pub fn rename(&self, container_id: &str, new_name: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE net_names SET name = ?2 WHERE container_id = ?1 AND ord = 0",
            [container_id, &new_name.to_ascii_lowercase()],
        )?;
        Ok(())
    }

    /// Stops the name servers of networks that no container is attached to any more (or that
    /// were removed).
    pub(crate) fn stop_idle_dns(&self) -> Result<()> {
        // Every command reconciles: a read first keeps the common case off the write lock.
        let any: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM net_dns WHERE NOT EXISTS
                (SELECT 1 FROM net_leases l WHERE l.network = net_dns.network))",
            [],
            |r| r.get(0),
        )?;
        if !any {
            return Ok(());
        }
        let tx = self.immediate()?;
        let idle: Vec<(i64, i64)> = {
            let mut st = tx.prepare_cached(
                "DELETE FROM net_dns WHERE NOT EXISTS
                    (SELECT 1 FROM net_leases l WHERE l.network = net_dns.network)
                 RETURNING pid, start_time",
            )?;
            let v = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            v
        };
        tx.commit()?;
        for (pid, st) in idle {
            kill(pid, st);
        }
        Ok(())
    }
}

/// SIGTERM to our server `pid`, if it is still the process that started at `st`.
pub(crate) fn kill(pid: i64, st: i64) {
    if pid > 0 && start_time(pid) == Some(st) {
        // SAFETY: kill has no memory-safety preconditions; the start time check makes sure
        // the pid was not reused by another process.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_that_fails_to_start_is_named_with_what_it_said() {
        let sh = Path::new("/bin/sh");
        let run = |script: &str| spawn_detached(sh, &["-c".into(), script.into()]);
        let e = run("echo 'usage: old-server DB NET' >&2; exit 2").unwrap_err();
        assert_eq!(e, "/bin/sh: usage: old-server DB NET (exit status: 2)");
        assert_eq!(
            run("exit 1").unwrap_err(),
            "/bin/sh printed nothing (exit status: 1)"
        );
        assert_eq!(run("echo 'error: no port'").unwrap_err(), "no port");
        assert_eq!(run("echo 'ready 42'"), Ok(42));
    }

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        encode_name(name, &mut m);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m
    }

    fn names() -> Names {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::SCHEMA).unwrap();
        conn.execute_batch(
            "INSERT INTO net_leases VALUES ('lab', 'c1', '10.89.0.2', 'm', 'eth0', 'v1', '[]');
             INSERT INTO net_leases VALUES ('lab', 'c2', '10.89.0.3', 'm', 'eth0', 'v2', '[]');
             INSERT INTO net_leases VALUES ('other', 'c3', '10.90.0.2', 'm', 'eth0', 'v3', '[]');
             INSERT INTO net_names VALUES ('lab', 'c1', 0, 'web');
             INSERT INTO net_names VALUES ('lab', 'c1', 1, 'c1c1c1c1c1c1');
             INSERT INTO net_names VALUES ('lab', 'c1', 2, 'front');
             INSERT INTO net_names VALUES ('lab', 'c2', 0, 'db');
             INSERT INTO net_names VALUES ('lab', 'c2', 1, 'front');
             INSERT INTO net_names VALUES ('other', 'c3', 0, 'hidden');
             INSERT INTO net_leases6 VALUES ('lab', 'c1', 'fd00:1::2');",
        )
        .unwrap();
        Names {
            conn,
            network: "lab".into(),
            internal: false,
        }
    }

    fn answer_ips(r: &[u8]) -> Vec<Ipv4Addr> {
        let q = parse_query(&{
            let mut m = r.to_vec();
            m[2] &= 0x7f; // parse_query takes queries only
            m
        })
        .unwrap();
        let mut i = 12 + q.question.len();
        let mut ips = Vec::new();
        while i + 12 <= r.len() {
            let len = u16::from_be_bytes([r[i + 10], r[i + 11]]) as usize;
            if len == 4 {
                ips.push(Ipv4Addr::new(r[i + 12], r[i + 13], r[i + 14], r[i + 15]));
            }
            i += 12 + len;
        }
        ips
    }

    #[test]
    fn parses_a_query_and_rejects_junk() {
        let q = parse_query(&query("Web.Lab.", TYPE_A)).unwrap();
        assert_eq!((q.id, q.name.as_str(), q.qtype), (0x1234, "web.lab", 1));
        assert_eq!(q.flags, 0x0100);
        assert_eq!(parse_query(&[1, 2, 3]), Err(None));
        let mut resp = query("web", TYPE_A);
        resp[2] |= 0x80;
        assert_eq!(parse_query(&resp), Err(None));
        let mut cut = query("web", TYPE_A);
        cut.truncate(cut.len() - 2);
        assert_eq!(parse_query(&cut), Err(Some(0x1234)));
        let mut ptr = query("web", TYPE_A);
        ptr[12] = 0xc0;
        assert_eq!(parse_query(&ptr), Err(Some(0x1234)));
    }

    #[test]
    fn answers_names_of_its_network_only() {
        let n = names();
        let ask = |name: &str, t| match n.decide(&parse_query(&query(name, t)).unwrap()) {
            Decision::Reply(r) => Some(r),
            Decision::Forward | Decision::NoWayOut => None,
        };
        let r = ask("web", TYPE_A).unwrap();
        assert_eq!(r[3] & 0xf, 0);
        assert_eq!(answer_ips(&r), vec![Ipv4Addr::new(10, 89, 0, 2)]);
        assert_eq!(
            answer_ips(&ask("C1C1C1C1C1C1", TYPE_A).unwrap()),
            vec![Ipv4Addr::new(10, 89, 0, 2)]
        );
        assert_eq!(
            answer_ips(&ask("front", TYPE_A).unwrap()),
            vec![Ipv4Addr::new(10, 89, 0, 2), Ipv4Addr::new(10, 89, 0, 3)]
        );
        // AAAA from the IPv6 lease.
        let r = ask("web", TYPE_AAAA).unwrap();
        assert_eq!((r[3] & 0xf, r[7]), (0, 1));
        let want: Ipv6Addr = "fd00:1::2".parse().unwrap();
        assert!(r.ends_with(&want.octets()), "{r:?}");
        // Known name, no IPv6 address: NOERROR and no answers.
        let r = ask("db", TYPE_AAAA).unwrap();
        assert_eq!((r[3] & 0xf, r[7]), (0, 0));
        // Another network's container and unknown names go upstream.
        assert_eq!(ask("hidden", TYPE_A), None);
        assert_eq!(ask("deb.debian.org", TYPE_A), None);
        // Reverse lookups of our addresses answer the container's name.
        let r = ask("3.0.89.10.in-addr.arpa", TYPE_PTR).unwrap();
        assert!(r.ends_with(&[2, b'd', b'b', 0]), "{r:?}");
        assert_eq!(ask("9.0.89.10.in-addr.arpa", TYPE_PTR), None);
    }

    #[test]
    fn internal_networks_do_not_forward() {
        let mut n = names();
        n.internal = true;
        let q = parse_query(&query("deb.debian.org", TYPE_A)).unwrap();
        assert_eq!(n.decide(&q), Decision::NoWayOut);
        let s = Server {
            names: n,
            upstreams: vec!["192.0.2.1:53".parse().unwrap()],
            in_flight: Arc::new(AtomicUsize::new(0)),
        };
        let r = s
            .handle(&query("deb.debian.org", TYPE_A), false, |_| {})
            .unwrap();
        assert_eq!(r[3] & 0xf, RCODE_SERVFAIL);
    }

    #[test]
    fn upstreams_from_resolv_conf() {
        assert_eq!(
            upstreams("# x\nnameserver 127.0.0.53\nsearch lan\nnameserver fe80::1%eth0\n"),
            vec![
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
    }
}
