//! A small synchronous rtnetlink client over a raw `AF_NETLINK` socket.
//!
//! Why hand-written instead of `rtnetlink`: that crate needs a tokio runtime whose worker threads
//! would outlive the call, and `hako run` must stay single-threaded (fork-safe) for later clones.
//! `netlink-packet-route` alone would work synchronously, but the handful of messages we send
//! (links, veth, addresses, routes) fit in a few hundred lines with no moving API underneath.
//! Every request is one `send` and one or two `recv`s on a blocking socket: a few microseconds.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// Message types and flags (linux/rtnetlink.h, linux/netlink.h).
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;

// Link attributes (linux/if_link.h).
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_IFALIAS: u16 = 20;
const IFLA_EXT_MASK: u16 = 29;
/// `RTEXT_FILTER_SKIP_STATS`: a GETLINK answer without the link's statistics.
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;
const IFLA_PROTINFO: u16 = 12;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_AF_SPEC: u16 = 26;
const IFLA_INET6_ADDR_GEN_MODE: u16 = 8;
const IN6_ADDR_GEN_MODE_NONE: u8 = 1;
const IFLA_NUM_TX_QUEUES: u16 = 31;
const IFLA_NUM_RX_QUEUES: u16 = 32;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFLA_BRPORT_MODE: u16 = 4;
const IFF_UP: u32 = 1;
/// The loopback device's index in every network namespace (`LOOPBACK_IFINDEX`).
pub(crate) const LOOPBACK_INDEX: i32 = 1;

// Address and route attributes (linux/if_addr.h, linux/rtnetlink.h).
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
/// No duplicate address detection: the address is usable at once instead of after ~1 s
/// of "tentative" state; the IPAM already guarantees uniqueness on the bridge.
const IFA_F_NODAD: u8 = 0x02;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_METRICS: u16 = 8;
const RTAX_MTU: u16 = 2;
const RTA_TABLE: u16 = 15;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
/// nf_tables' `inet` family.
pub(crate) const NFPROTO_INET: u8 = 1;

/// One element of an nf_tables set or map, in register layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetElem {
    pub key: Vec<u8>,
    pub data: Option<Vec<u8>>,
}

/// An IPv6 route of the main table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route6 {
    pub dst: Ipv6Addr,
    pub prefix: u8,
}

/// An IPv4 route of the main table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route4 {
    pub dst: Ipv4Addr,
    pub prefix: u8,
}

/// A netlink message under construction: header, fixed part, then attributes.
struct Msg {
    buf: Vec<u8>,
    nests: Vec<usize>,
}

impl Msg {
    fn new(ty: u16, flags: u16) -> Msg {
        let mut buf = vec![0u8; 16];
        buf[4..6].copy_from_slice(&ty.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        Msg {
            buf,
            nests: Vec::new(),
        }
    }

    fn pad(&mut self) {
        while self.buf.len() & 3 != 0 {
            self.buf.push(0);
        }
    }

    /// `struct nfgenmsg` (4 bytes): family, version 0, resource id (big-endian).
    fn nfgen(mut self, family: u8, res_id: u16) -> Msg {
        self.buf.extend_from_slice(&[family, 0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self
    }

    /// `struct ifinfomsg` (16 bytes).
    fn ifinfo(mut self, family: u8, index: i32, flags: u32, change: u32) -> Msg {
        self.buf.extend_from_slice(&[family, 0, 0, 0]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
        self
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn attr_str(&mut self, ty: u16, s: &str) {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.attr(ty, &v);
    }

    fn attr_u32(&mut self, ty: u16, v: u32) {
        self.attr(ty, &v.to_ne_bytes());
    }

    /// A route's MTU (RTA_METRICS { RTAX_MTU }), if any.
    fn route_mtu(&mut self, mtu: Option<u32>) {
        if let Some(mtu) = mtu {
            self.begin(RTA_METRICS);
            self.attr_u32(RTAX_MTU, mtu);
            self.end();
        }
    }

    fn begin(&mut self, ty: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    }

    fn end(&mut self) {
        let start = self.nests.pop().expect("end() without begin()");
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// Iterates over `(type, payload)` of the route attributes in `data`.
fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let ty = u16::from_ne_bytes([data[2], data[3]]) & !NLA_F_NESTED;
        if len < 4 || len > data.len() {
            return None;
        }
        let payload = &data[4..len];
        let adv = (len + 3) & !3;
        data = &data[adv.min(data.len())..];
        Some((ty, payload))
    })
}

fn u32_of(p: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(p.get(..4)?.try_into().ok()?))
}

/// A blocking rtnetlink socket bound to one network namespace (the one current when it was made).
pub(crate) struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// A socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Netlink> {
        Netlink::open_proto(libc::NETLINK_ROUTE)
    }

    /// A socket on the host side (see `host`): the calling thread's namespace for root.
    pub fn open_host() -> io::Result<Netlink> {
        crate::host::run(Netlink::open)?
    }

    /// A netfilter (nfnetlink) socket on the host side, for nf_tables set elements.
    pub fn open_netfilter() -> io::Result<Netlink> {
        crate::host::run(|| Netlink::open_proto(libc::NETLINK_NETFILTER))?
    }

    fn open_proto(proto: libc::c_int) -> io::Result<Netlink> {
        // SAFETY: plain socket(2) call; the returned fd is checked and owned below.
        let fd =
            unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Netlink {
            fd,
            seq: 0,
            buf: vec![0u8; 32 * 1024],
        })
    }

    fn send(&mut self, msg: Msg) -> io::Result<u32> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let bytes = msg.finish(seq);
        // SAFETY: bytes is a valid buffer of bytes.len() bytes; the kernel only reads it.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(seq)
    }

    /// Receives datagrams, handing each message of sequence `seq` to `f`, until an ACK/error
    /// (request) or `NLMSG_DONE` (dump). Returns the kernel's error as an `io::Error`.
    fn recv(&mut self, seq: u32, mut f: impl FnMut(u16, &[u8])) -> io::Result<()> {
        loop {
            // SAFETY: self.buf is a writable buffer of self.buf.len() bytes.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut data = &self.buf[..n as usize];
            let mut finished = false;
            while data.len() >= 16 {
                let len = u32::from_ne_bytes(data[0..4].try_into().unwrap()) as usize;
                let ty = u16::from_ne_bytes([data[4], data[5]]);
                let mseq = u32::from_ne_bytes(data[8..12].try_into().unwrap());
                if len < 16 || len > data.len() {
                    break;
                }
                let payload = &data[16..len];
                if mseq == seq {
                    match ty {
                        NLMSG_ERROR => {
                            let code = i32::from_ne_bytes(payload[0..4].try_into().unwrap());
                            if code != 0 {
                                return Err(io::Error::from_raw_os_error(-code));
                            }
                            finished = true;
                        }
                        NLMSG_DONE => finished = true,
                        _ => f(ty, payload),
                    }
                }
                data = &data[((len + 3) & !3).min(data.len())..];
            }
            if finished {
                return Ok(());
            }
        }
    }

    /// Adds (`add`) or deletes elements of the nf_tables set or map `set` of table `table`
    /// (family `family`, e.g. `NFPROTO_INET`) in one transaction: a batch of begin, one
    /// NEWSETELEM/DELSETELEM message and end. Keys and data are in register layout (each field
    /// padded to 4 bytes). A missing table, set or element fails with `ENOENT`; adding an
    /// element that exists with `EEXIST`.
    pub fn set_elements(
        &mut self,
        add: bool,
        family: u8,
        table: &str,
        set: &str,
        elems: &[SetElem],
    ) -> io::Result<()> {
        let mut batch = Vec::new();
        self.seq = self.seq.wrapping_add(1);
        batch.extend(
            Msg::new(NFNL_MSG_BATCH_BEGIN, 0)
                .nfgen(libc::AF_UNSPEC as u8, NFNL_SUBSYS_NFTABLES)
                .finish(self.seq),
        );
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let (op, flags) = if add {
            (NFT_MSG_NEWSETELEM, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
        } else {
            (NFT_MSG_DELSETELEM, NLM_F_ACK)
        };
        let mut m = Msg::new(NFNL_SUBSYS_NFTABLES << 8 | op, flags).nfgen(family, 0);
        m.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
        m.attr_str(NFTA_SET_ELEM_LIST_SET, set);
        m.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
        for e in elems {
            m.begin(NFTA_LIST_ELEM);
            m.begin(NFTA_SET_ELEM_KEY);
            m.attr(NFTA_DATA_VALUE, &e.key);
            m.end();
            if let Some(d) = &e.data {
                m.begin(NFTA_SET_ELEM_DATA);
                m.attr(NFTA_DATA_VALUE, d);
                m.end();
            }
            m.end();
        }
        m.end();
        batch.extend(m.finish(seq));
        self.seq = self.seq.wrapping_add(1);
        batch.extend(
            Msg::new(NFNL_MSG_BATCH_END, 0)
                .nfgen(libc::AF_UNSPEC as u8, NFNL_SUBSYS_NFTABLES)
                .finish(self.seq),
        );
        // SAFETY: batch is a valid buffer of batch.len() bytes; the kernel only reads it.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), batch.as_ptr().cast(), batch.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        self.recv(seq, |_, _| {})
    }

    /// Sends a request that changes state and waits for its acknowledgement.
    fn exec(&mut self, msg: Msg) -> io::Result<()> {
        let seq = self.send(msg)?;
        self.recv(seq, |_, _| {})
    }

    /// The index of link `name` in this socket's namespace, or `None` if there is none.
    ///
    /// An `SIOCGIFINDEX` ioctl rather than `RTM_GETLINK`: the kernel answers a GETLINK with
    /// the link's every attribute and statistic, which took ~0.1 ms per lookup in an attach
    /// here, where only the index was wanted.
    pub fn index_of(&self, name: &str) -> io::Result<Option<i32>> {
        if name.len() >= libc::IFNAMSIZ || name.as_bytes().contains(&0) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: ifreq is plain old data; all zeroes is a valid (empty) request.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in req.ifr_name.iter_mut().zip(name.as_bytes()) {
            *d = *s as libc::c_char;
        }
        // SAFETY: SIOCGIFINDEX reads ifr_name (NUL-terminated: the name is shorter than the
        // zeroed array) and writes only ifru_ifindex of the ifreq we own. A netlink socket
        // passes device ioctls on to its namespace's devices.
        let r = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::SIOCGIFINDEX, &mut req) };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENODEV) => Ok(None),
                _ => Err(e),
            };
        }
        // SAFETY: a successful SIOCGIFINDEX filled in the ifindex member of the union.
        Ok(Some(unsafe { req.ifr_ifru.ifru_ifindex }))
    }

    /// The MTU of the link with index `index`, or `None` if there is no such link.
    pub fn mtu_of(&mut self, index: i32) -> io::Result<Option<u32>> {
        let m = Msg::new(RTM_GETLINK, NLM_F_ACK).ifinfo(0, index, 0, 0);
        let seq = self.send(m)?;
        let mut out = None;
        let r = self.recv(seq, |ty, p| {
            if ty == RTM_NEWLINK && p.len() >= 16 {
                out = attrs(&p[16..])
                    .find(|(t, _)| *t == IFLA_MTU)
                    .and_then(|(_, v)| u32_of(v));
            }
        });
        match r {
            Ok(()) => Ok(out),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The alias (`IFLA_IFALIAS`, `ip link set NAME alias TEXT`) of link `name`: `None` if
    /// there is no such link, `Some(None)` if it has no alias.
    ///
    /// Asked over netlink rather than read from `/sys/class/net/NAME/ifalias`, because sysfs
    /// shows the network namespace of whoever mounted it, not necessarily ours.
    pub fn alias_of(&mut self, name: &str) -> io::Result<Option<Option<String>>> {
        let mut m = Msg::new(RTM_GETLINK, NLM_F_ACK).ifinfo(0, 0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        m.attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        let seq = self.send(m)?;
        let mut out = None;
        let r = self.recv(seq, |ty, p| {
            if ty == RTM_NEWLINK && p.len() >= 16 {
                out = Some(
                    attrs(&p[16..])
                        .find(|(t, _)| *t == IFLA_IFALIAS)
                        .map(|(_, v)| {
                            let v = v.split(|b| *b == 0).next().unwrap_or_default();
                            String::from_utf8_lossy(v).into_owned()
                        })
                        .filter(|a| !a.is_empty()),
                );
            }
        });
        match r {
            Ok(()) => Ok(out),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every link of this namespace that has an alias, as (name, alias).
    pub fn aliased_links(&mut self) -> io::Result<Vec<(String, String)>> {
        let mut m = Msg::new(RTM_GETLINK, NLM_F_DUMP).ifinfo(0, 0, 0, 0);
        m.attr_u32(IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
        let seq = self.send(m)?;
        let mut out = Vec::new();
        self.recv(seq, |ty, p| {
            if ty != RTM_NEWLINK || p.len() < 16 {
                return;
            }
            let (mut name, mut alias) = (None, None);
            for (t, v) in attrs(&p[16..]) {
                let text = || {
                    let v = v.split(|b| *b == 0).next().unwrap_or_default();
                    String::from_utf8_lossy(v).into_owned()
                };
                match t {
                    IFLA_IFNAME => name = Some(text()),
                    IFLA_IFALIAS => alias = Some(text()).filter(|a| !a.is_empty()),
                    _ => {}
                }
            }
            if let (Some(n), Some(a)) = (name, alias) {
                out.push((n, a));
            }
        })?;
        Ok(out)
    }

    /// Sets the alias of link `index` (at most 255 bytes).
    pub fn set_alias(&mut self, index: i32, alias: &str) -> io::Result<()> {
        let mut m = Msg::new(RTM_SETLINK, NLM_F_ACK).ifinfo(0, index, 0, 0);
        m.attr_str(IFLA_IFALIAS, alias);
        self.exec(m)
    }

    /// Creates a bridge (fails with `EEXIST` if the name is taken).
    pub fn create_bridge(&mut self, name: &str, mtu: u32) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL).ifinfo(0, 0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        m.attr_u32(IFLA_MTU, mtu);
        m.begin(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "bridge");
        m.end();
        self.exec(m)
    }

    /// Creates a veth pair: `host` enslaved to bridge `master` in this namespace and up, and
    /// `peer` (down) created directly inside the namespace `peer_ns` (so it never appears on
    /// the host), with MAC address `peer_mac`.
    ///
    /// Each end gets one TX and one RX queue at allocation. Without the attributes the kernel
    /// allocates one queue per possible CPU and then shrinks the device to one real queue,
    /// and each shrink waits for an expedited RCU grace period (`synchronize_net` in
    /// `netif_set_real_num_tx_queues`): ~0.2 ms of a 0.8 ms `ip link add` here. The queues
    /// in use are the same (one) either way. The host end comes up in the same message (a
    /// `set_up` round trip less); the peer cannot, as the kernel configures it before the pair
    /// is linked, and opening an unlinked veth fails with `ENOTCONN`.
    pub fn create_veth(
        &mut self,
        host: &str,
        master: i32,
        mtu: u32,
        peer: &str,
        peer_ns: &File,
        peer_mac: [u8; 6],
    ) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
            .ifinfo(0, 0, IFF_UP, IFF_UP);
        m.attr_str(IFLA_IFNAME, host);
        m.attr_u32(IFLA_MTU, mtu);
        m.attr_u32(IFLA_MASTER, master as u32);
        m.attr_u32(IFLA_NUM_TX_QUEUES, 1);
        m.attr_u32(IFLA_NUM_RX_QUEUES, 1);
        m.begin(IFLA_LINKINFO);
        m.attr_str(IFLA_INFO_KIND, "veth");
        m.begin(IFLA_INFO_DATA);
        m.begin(VETH_INFO_PEER);
        // The peer's attributes follow its own ifinfomsg header inside VETH_INFO_PEER.
        m.buf.extend_from_slice(&[0u8; 16]);
        m.attr_str(IFLA_IFNAME, peer);
        m.attr_u32(IFLA_MTU, mtu);
        m.attr(IFLA_ADDRESS, &peer_mac);
        m.attr_u32(IFLA_NET_NS_FD, peer_ns.as_raw_fd() as u32);
        m.attr_u32(IFLA_NUM_TX_QUEUES, 1);
        m.attr_u32(IFLA_NUM_RX_QUEUES, 1);
        m.end();
        m.end();
        m.end();
        self.exec(m)
    }

    /// Sets a link up.
    pub fn set_up(&mut self, index: i32) -> io::Result<()> {
        let m = Msg::new(RTM_NEWLINK, NLM_F_ACK).ifinfo(0, index, IFF_UP, IFF_UP);
        self.exec(m)
    }

    /// Tells the kernel never to generate an IPv6 link-local address for link `index`.
    ///
    /// For a bridge port: its own IPv6 stack never sees a frame (the bridge takes them all), so
    /// the address would only cost duplicate address detection, multicast reports and, when the
    /// port goes, a second walk of the whole conntrack table by the masquerade notifier (one for
    /// the link, one for the address; ~0.4 ms each with this host's 262144 buckets).
    /// A kernel without IPv6 (`EAFNOSUPPORT`) has nothing to switch off.
    pub fn set_addr_gen_none(&mut self, index: i32) -> io::Result<()> {
        let mut m = Msg::new(RTM_SETLINK, NLM_F_ACK).ifinfo(0, index, 0, 0);
        m.begin(IFLA_AF_SPEC);
        m.begin(libc::AF_INET6 as u16);
        m.attr(IFLA_INET6_ADDR_GEN_MODE, &[IN6_ADDR_GEN_MODE_NONE]);
        m.end();
        m.end();
        match self.exec(m) {
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => Ok(()),
            r => r,
        }
    }

    /// Turns on hairpin mode on a bridge port, so a container can reach its own published ports
    /// through the host's addresses (the DNATed packet goes back out the port it came in on).
    ///
    /// RTM_SETLINK with family AF_BRIDGE reaches the bridge's `br_setlink`; an RTM_NEWLINK
    /// goes to the generic link handler, which ignores `IFLA_PROTINFO` and acknowledges the
    /// message all the same.
    pub fn set_hairpin(&mut self, index: i32) -> io::Result<()> {
        let mut m = Msg::new(RTM_SETLINK, NLM_F_ACK).ifinfo(libc::AF_BRIDGE as u8, index, 0, 0);
        m.begin(IFLA_PROTINFO);
        m.attr(IFLA_BRPORT_MODE, &[1]);
        m.end();
        self.exec(m)
    }

    /// Deletes a link by name; `Ok(false)` if it did not exist.
    pub fn delete_link(&mut self, name: &str) -> io::Result<bool> {
        let mut m = Msg::new(RTM_DELLINK, NLM_F_ACK).ifinfo(0, 0, 0, 0);
        m.attr_str(IFLA_IFNAME, name);
        match self.exec(m) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds `addr/prefix` to link `index` (`EEXIST` is success: the call is idempotent).
    pub fn add_addr4(&mut self, index: i32, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        m.buf
            .extend_from_slice(&[libc::AF_INET as u8, prefix, 0, 0]);
        m.buf.extend_from_slice(&(index as u32).to_ne_bytes());
        m.attr(IFA_LOCAL, &addr.octets());
        m.attr(IFA_ADDRESS, &addr.octets());
        if prefix < 31 {
            let bcast = u32::from(addr) | (u32::MAX >> prefix);
            m.attr(IFA_BROADCAST, &Ipv4Addr::from(bcast).octets());
        }
        match self.exec(m) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// Adds a default route via `gateway` on link `index`, with route MTU `mtu` if given
    /// (`EEXIST` is success).
    pub fn add_default_route4(
        &mut self,
        index: i32,
        gateway: Ipv4Addr,
        mtu: Option<u32>,
    ) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        m.buf.extend_from_slice(&[
            libc::AF_INET as u8,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            0, // RT_SCOPE_UNIVERSE
            RTN_UNICAST,
        ]);
        m.buf.extend_from_slice(&0u32.to_ne_bytes());
        m.attr(RTA_GATEWAY, &gateway.octets());
        m.attr_u32(RTA_OIF, index as u32);
        m.route_mtu(mtu);
        match self.exec(m) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// Adds `addr/prefix` without duplicate address detection to link `index` (`EEXIST` is
    /// success).
    pub fn add_addr6(&mut self, index: i32, addr: Ipv6Addr, prefix: u8) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        // ifaddrmsg: family, prefixlen, flags, scope (universe), index.
        m.buf
            .extend_from_slice(&[libc::AF_INET6 as u8, prefix, IFA_F_NODAD, 0]);
        m.buf.extend_from_slice(&(index as u32).to_ne_bytes());
        m.attr(IFA_LOCAL, &addr.octets());
        m.attr(IFA_ADDRESS, &addr.octets());
        match self.exec(m) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// Adds an IPv6 default route via `gateway` on link `index`, with route MTU `mtu` if
    /// given (`EEXIST` is success).
    pub fn add_default_route6(
        &mut self,
        index: i32,
        gateway: Ipv6Addr,
        mtu: Option<u32>,
    ) -> io::Result<()> {
        let mut m = Msg::new(RTM_NEWROUTE, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        m.buf.extend_from_slice(&[
            libc::AF_INET6 as u8,
            0,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            0,
            RTN_UNICAST,
        ]);
        m.buf.extend_from_slice(&0u32.to_ne_bytes());
        m.attr(RTA_GATEWAY, &gateway.octets());
        m.attr_u32(RTA_OIF, index as u32);
        m.route_mtu(mtu);
        match self.exec(m) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// The IPv6 routes of the main table.
    pub fn routes6(&mut self) -> io::Result<Vec<Route6>> {
        Ok(self
            .main_routes(libc::AF_INET6 as u8)?
            .into_iter()
            .map(|(dst, prefix)| Route6 {
                dst: <[u8; 16]>::try_from(dst.as_slice())
                    .map_or(Ipv6Addr::UNSPECIFIED, Ipv6Addr::from),
                prefix,
            })
            .collect())
    }

    /// The IPv4 routes of the main table.
    pub fn routes4(&mut self) -> io::Result<Vec<Route4>> {
        Ok(self
            .main_routes(libc::AF_INET as u8)?
            .into_iter()
            .map(|(dst, prefix)| Route4 {
                dst: <[u8; 4]>::try_from(dst.as_slice())
                    .map_or(Ipv4Addr::UNSPECIFIED, Ipv4Addr::from),
                prefix,
            })
            .collect())
    }

    /// The main table's routes of one address family, as (destination bytes, prefix length);
    /// the destination is empty for a default route, which carries no RTA_DST.
    fn main_routes(&mut self, family: u8) -> io::Result<Vec<(Vec<u8>, u8)>> {
        let mut m = Msg::new(RTM_GETROUTE, NLM_F_DUMP);
        m.buf.extend_from_slice(&[family, 0, 0, 0, 0, 0, 0, 0]);
        m.buf.extend_from_slice(&0u32.to_ne_bytes());
        let seq = self.send(m)?;
        let mut out = Vec::new();
        self.recv(seq, |ty, p| {
            if ty != RTM_NEWROUTE || p.len() < 12 {
                return;
            }
            let prefix = p[1];
            let mut table = p[4] as u32;
            let mut dst = Vec::new();
            for (t, v) in attrs(&p[12..]) {
                match t {
                    RTA_TABLE => table = u32_of(v).unwrap_or(table),
                    RTA_DST => dst = v.to_vec(),
                    _ => {}
                }
            }
            if table == RT_TABLE_MAIN as u32 {
                out.push((dst, prefix));
            }
        })?;
        Ok(out)
    }

    /// The output link of the route the kernel would use to reach `dst`, if any.
    pub fn route_oif(&mut self, dst: Ipv4Addr) -> io::Result<Option<i32>> {
        let mut m = Msg::new(RTM_GETROUTE, NLM_F_ACK);
        m.buf
            .extend_from_slice(&[libc::AF_INET as u8, 32, 0, 0, 0, 0, 0, 0]);
        m.buf.extend_from_slice(&0u32.to_ne_bytes());
        m.attr(RTA_DST, &dst.octets());
        let seq = self.send(m)?;
        let mut oif = None;
        let r = self.recv(seq, |ty, p| {
            if ty == RTM_NEWROUTE && p.len() >= 12 {
                oif = attrs(&p[12..])
                    .find(|(t, _)| *t == RTA_OIF)
                    .and_then(|(_, v)| u32_of(v))
                    .map(|v| v as i32);
            }
        });
        match r {
            Ok(()) => Ok(oif),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENETUNREACH | libc::EHOSTUNREACH)
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

/// Runs `f` with the calling thread inside the network namespace `ns`, then brings it back.
///
/// For what binds to the namespace at creation or lookup: sockets, and `/proc/sys/net` files
/// (resolved in the opening thread's namespace). Only this thread moves, for the length of `f`.
pub(crate) fn in_netns<T: Send>(ns: &File, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    // Rootless: this process could not come back to the host's namespace.
    if crate::host::host_netns_set() {
        return crate::host::on_thread_in(ns, f);
    }
    // /proc/thread-self, not /proc/self: only this thread switches, and it must come back to
    // its own namespace even if other threads (e.g. test harness threads) live elsewhere.
    let home = File::open("/proc/thread-self/ns/net")?;
    setns(ns)?;
    let r = f();
    if let Err(e) = setns(&home) {
        // Staying in the container's namespace would silently misconfigure everything after.
        panic!("cannot return to the original network namespace: {e}");
    }
    Ok(r)
}

/// Switches IPv6 off on interface `name` of the calling thread's network namespace, as Docker
/// does for containers on networks without IPv6: otherwise the kernel gives the interface a
/// link-local address and it answers router advertisements, an IPv6 presence the network
/// never offered. A kernel without IPv6 has no such file, which is success.
pub(crate) fn disable_ipv6(name: &str) -> io::Result<()> {
    match std::fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1") {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Moves the calling thread into the network namespace `ns`.
fn setns(ns: &File) -> io::Result<()> {
    // SAFETY: setns(2) on a valid, open namespace fd; it changes only this thread's namespace.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
