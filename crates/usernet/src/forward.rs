//! The published-port forwarder: host listeners, and for each TCP connection or UDP peer a
//! socket inside the container's network namespace, joined per thread with `setns(2)`.

use std::collections::HashMap;
use std::io::ErrorKind as IoKind;
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::ports::check_unprivileged;
use crate::sys;
use crate::{unprivileged_port_start, Error, Proto, Publish, Result};

/// Sockets bound on the host for the published ports, before any thread exists.
#[derive(Debug)]
pub struct Forwarder {
    tcp: Vec<(Publish, TcpListener)>,
    udp: Vec<(Publish, UdpSocket)>,
}

/// A UDP peer's flow is forgotten after this long without a datagram either way (as
/// docker-proxy does, roughly).
const UDP_IDLE: Duration = Duration::from_secs(60);
/// Bytes one splice moves at most; also the pipe's size when the kernel grants it.
const CHUNK: usize = 1 << 20;
/// Each connection costs two threads that only wait in splice(2): small stacks.
const STACK: usize = 128 << 10;

fn bind_one(spec: &Publish, ip: IpAddr, port: u16) -> std::io::Result<Socket> {
    let addr = SocketAddr::new(ip, port);
    match spec.proto {
        Proto::Tcp => TcpListener::bind(addr).map(Socket::Tcp),
        Proto::Udp => UdpSocket::bind(addr).map(Socket::Udp),
    }
}

enum Socket {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

fn bind_spec(spec: &Publish) -> Result<Socket> {
    // All addresses: the IPv6 wildcard, which also takes IPv4 unless the host has IPv6 off.
    let ips: &[IpAddr] = match &spec.host_ip {
        Some(ip) => &[*ip][..],
        None => &[
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        ][..],
    };
    let ports: Vec<u16> = (spec.host_port..=spec.host_port_end.max(spec.host_port)).collect();
    let mut last = None;
    for &port in &ports {
        for (i, &ip) in ips.iter().enumerate() {
            match bind_one(spec, ip, port) {
                Ok(s) => return Ok(s),
                // The wildcard's fallback is for hosts without IPv6 only.
                Err(e) if e.kind() == IoKind::AddrNotAvailable && i + 1 < ips.len() => {}
                Err(e)
                    if spec.host_ip.is_none() && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {}
                Err(e) => {
                    last = Some(e);
                    break;
                }
            }
        }
        match &last {
            Some(e) if e.kind() == IoKind::AddrInUse => continue,
            Some(_) => break,
            None => {}
        }
    }
    let e = last.unwrap_or_else(|| std::io::Error::from(IoKind::AddrNotAvailable));
    Err(match e.kind() {
        IoKind::AddrInUse if ports.len() > 1 => Error::Conflict(format!(
            "cannot publish {spec}: every host port in {}-{} is in use",
            spec.host_port, spec.host_port_end
        )),
        IoKind::AddrInUse => Error::Conflict(format!(
            "cannot publish {spec}: host port {} is already in use",
            spec.host_port
        )),
        IoKind::AddrNotAvailable => Error::Invalid(format!(
            "cannot publish {spec}: the host has no address {}",
            spec.host_ip.map_or("*".into(), |i| i.to_string())
        )),
        _ => Error::io(format!("cannot publish {spec}"), e),
    })
}

impl Forwarder {
    /// Binds every port on the host, as the calling user. Ports an ordinary user cannot bind
    /// are refused first, with the sysctl named; on any error nothing stays bound.
    pub fn bind(specs: &[Publish]) -> Result<Forwarder> {
        let start = unprivileged_port_start();
        let root = nix::unistd::geteuid().is_root();
        for spec in specs {
            check_unprivileged(spec, start, root)?;
            if spec.container_port == 0 {
                return Err(Error::Invalid(format!(
                    "cannot publish {spec}: container port 0"
                )));
            }
        }
        let mut fwd = Forwarder {
            tcp: Vec::new(),
            udp: Vec::new(),
        };
        for spec in specs {
            match bind_spec(spec)? {
                Socket::Tcp(l) => fwd.tcp.push((*spec, l)),
                Socket::Udp(u) => fwd.udp.push((*spec, u)),
            }
        }
        Ok(fwd)
    }

    /// Each spec with the address it is bound to (the port chosen, for `0` or a range).
    pub fn addresses(&self) -> Vec<(Publish, SocketAddr)> {
        let tcp = self
            .tcp
            .iter()
            .filter_map(|(s, l)| Some((*s, l.local_addr().ok()?)));
        let udp = self
            .udp
            .iter()
            .filter_map(|(s, u)| Some((*s, u.local_addr().ok()?)));
        tcp.chain(udp).collect()
    }

    /// Serves every port from now on, connecting to `container` inside the network namespace
    /// `net`. The process must already hold `CAP_SYS_ADMIN` over `net`'s user namespace (see
    /// the crate's docs): a thread that cannot join fails here, before any port is served.
    pub fn serve(self, net: OwnedFd, container: IpAddr) -> Result<()> {
        let net = Arc::new(net);
        let (tx, rx) = std::sync::mpsc::channel::<Result<()>>();
        let n = self.tcp.len() + self.udp.len();
        for (spec, listener) in self.tcp {
            let (net, tx) = (net.clone(), tx.clone());
            let target = SocketAddr::new(container, spec.container_port);
            spawn(STACK, move || {
                if report_join(&net, &tx) {
                    accept_loop(listener, target);
                }
            })?;
        }
        for (spec, socket) in self.udp {
            let (net, tx) = (net.clone(), tx.clone());
            let target = SocketAddr::new(container, spec.container_port);
            spawn(STACK, move || {
                if report_join(&net, &tx) {
                    udp_loop(socket, target);
                }
            })?;
        }
        for _ in 0..n {
            rx.recv()
                .map_err(|_| Error::Invalid("a forwarder thread died".into()))??;
        }
        Ok(())
    }
}

fn spawn(stack: usize, f: impl FnOnce() + Send + 'static) -> Result<()> {
    thread::Builder::new()
        .stack_size(stack)
        .spawn(f)
        .map(drop)
        .map_err(|e| Error::io("start a forwarder thread", e))
}

/// Joins the container's network namespace in this thread (threads it starts inherit it).
fn join_net(net: &OwnedFd) -> Result<()> {
    nix::sched::setns(net, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| match e {
        nix::Error::EPERM => Error::Invalid(
            "cannot join the container's network namespace: this process has no CAP_SYS_ADMIN over its user namespace (join that first)".into(),
        ),
        e => Error::io("join the container's network namespace", e.into()),
    })
}

fn report_join(net: &OwnedFd, tx: &std::sync::mpsc::Sender<Result<()>>) -> bool {
    let r = join_net(net);
    let ok = r.is_ok();
    let _ = tx.send(r);
    ok
}

fn accept_loop(listener: TcpListener, target: SocketAddr) {
    loop {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            // Out of fds or memory for a moment: keep serving the others.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                ) =>
            {
                thread::sleep(Duration::from_millis(50));
                continue;
            }
            Err(_) => continue,
        };
        let _ = spawn(STACK, move || connection(client, target));
    }
}

fn connection(client: TcpStream, target: SocketAddr) {
    // Created in this thread, hence in the container's namespace; a refused or timed-out
    // connect closes the client's connection, as docker-proxy does.
    let Ok(inner) = TcpStream::connect_timeout(&target, Duration::from_secs(10)) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = inner.set_nodelay(true);
    loss_based_congestion_control(&inner);
    let (Ok(c2), Ok(i2)) = (client.try_clone(), inner.try_clone()) else {
        return;
    };
    let back = thread::Builder::new()
        .stack_size(STACK)
        .spawn(move || pump(&i2, &c2));
    pump(&client, &inner);
    if let Ok(h) = back {
        let _ = h.join();
    }
}

/// The connection into the container never leaves this host (loopback, or a veth on the
/// user's bridge), where nothing is lost: a host's default of BBR paces it by a bandwidth model
/// that is wrong there, and cost a quarter of the -p throughput (bench/usernet.sh: 15 against
/// 19 Gbit/s). Loss-based control lets the window open to the buffers. CUBIC needs
/// CAP_NET_ADMIN over the namespace unless the host allows it; Reno is always allowed. The
/// client's socket keeps the host's choice: it may cross a real network.
fn loss_based_congestion_control(inner: &TcpStream) {
    use nix::sys::socket::{setsockopt, sockopt::TcpCongestion};
    for cc in ["cubic", "reno"] {
        if setsockopt(inner, TcpCongestion, &std::ffi::OsString::from(cc)).is_ok() {
            return;
        }
    }
}

/// Copies `from` to `to` through a pipe with splice(2), without the bytes passing through
/// user space; ends `to`'s sending side at end-of-file, and both connections on an error so
/// that the other direction's thread wakes too.
fn pump(from: &TcpStream, to: &TcpStream) {
    let Ok((pr, pw)) = sys::pipe() else {
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
        return;
    };
    // SAFETY: fcntl on a pipe we own; failure (the user's pipe budget) keeps the default size.
    unsafe {
        libc::fcntl(pw.as_raw_fd(), libc::F_SETPIPE_SZ, CHUNK as libc::c_int);
    }
    let (f, t) = (from.as_raw_fd(), to.as_raw_fd());
    let ok = loop {
        let n = splice(
            f,
            pw.as_raw_fd(),
            CHUNK,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE,
        );
        match n {
            Ok(0) => break true,
            Ok(mut left) => {
                let mut fine = true;
                while left > 0 {
                    match splice(pr.as_raw_fd(), t, left, libc::SPLICE_F_MOVE) {
                        Ok(0) | Err(_) => {
                            fine = false;
                            break;
                        }
                        Ok(m) => left -= m,
                    }
                }
                if !fine {
                    break false;
                }
            }
            Err(_) => break false,
        }
    };
    if ok {
        let _ = to.shutdown(Shutdown::Write);
    } else {
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    }
}

fn splice(from: i32, to: i32, len: usize, flags: libc::c_uint) -> std::io::Result<usize> {
    loop {
        // SAFETY: splice between two fds we hold, no offsets (both are a socket or a pipe).
        let n = unsafe {
            libc::splice(
                from,
                std::ptr::null_mut(),
                to,
                std::ptr::null_mut(),
                len,
                flags,
            )
        };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != IoKind::Interrupted {
            return Err(e);
        }
    }
}

struct Flow {
    inner: UdpSocket,
    last: AtomicU64,
}

fn now(epoch: Instant) -> u64 {
    epoch.elapsed().as_secs()
}

fn udp_loop(host: UdpSocket, target: SocketAddr) {
    let flows: Arc<Mutex<HashMap<SocketAddr, Arc<Flow>>>> = Arc::default();
    let epoch = Instant::now();
    let mut buf = vec![0u8; 65536];
    let Ok(host) = host.try_clone().map(Arc::new) else {
        return;
    };
    loop {
        let Ok((n, peer)) = host.recv_from(&mut buf) else {
            continue;
        };
        let existing = flows.lock().ok().and_then(|m| m.get(&peer).cloned());
        let flow = match existing {
            Some(f) => f,
            None => {
                let local: SocketAddr = match target {
                    SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
                    SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
                };
                // This thread is in the container's namespace: so is the new socket.
                let Ok(inner) = UdpSocket::bind(local) else {
                    continue;
                };
                if inner.connect(target).is_err() {
                    continue;
                }
                let _ = inner.set_read_timeout(Some(Duration::from_secs(1)));
                let flow = Arc::new(Flow {
                    inner,
                    last: AtomicU64::new(now(epoch)),
                });
                if let Ok(mut m) = flows.lock() {
                    m.insert(peer, flow.clone());
                }
                let (flow2, host2, flows2) = (flow.clone(), host.clone(), flows.clone());
                let _ = spawn(STACK, move || {
                    udp_replies(flow2, host2, peer, flows2, epoch)
                });
                flow
            }
        };
        flow.last.store(now(epoch), Ordering::Relaxed);
        let _ = flow.inner.send(&buf[..n]);
    }
}

fn udp_replies(
    flow: Arc<Flow>,
    host: Arc<UdpSocket>,
    peer: SocketAddr,
    flows: Arc<Mutex<HashMap<SocketAddr, Arc<Flow>>>>,
    epoch: Instant,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        match flow.inner.recv(&mut buf) {
            Ok(n) => {
                flow.last.store(now(epoch), Ordering::Relaxed);
                let _ = host.send_to(&buf[..n], peer);
            }
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => {
                if now(epoch).saturating_sub(flow.last.load(Ordering::Relaxed))
                    >= UDP_IDLE.as_secs()
                {
                    break;
                }
            }
            // ICMP port unreachable from the container: nobody listens (yet); keep the flow.
            Err(_) => {}
        }
    }
    if let Ok(mut m) = flows.lock() {
        m.remove(&peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{getsockopt, sockopt::TcpCongestion};

    #[test]
    fn the_inner_connection_uses_loss_based_congestion_control() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let inner = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        loss_based_congestion_control(&inner);
        let cc = getsockopt(&inner, TcpCongestion).unwrap();
        assert!(
            cc == "cubic" || cc == "reno",
            "congestion control {cc:?} (host default {:?})",
            std::fs::read_to_string("/proc/sys/net/ipv4/tcp_congestion_control")
        );
    }
}
