//! `linux.netDevices` (runtime-spec 1.2): host network interfaces moved into the container's
//! network namespace, optionally renamed.
//!
//! The runtime does the move from its own network namespace once the container's exists and
//! before anything of the container runs (before the prestart/createRuntime hooks, as runc and
//! crun do). Moving a device drops its addresses, so the permanent, global-scope ones (what
//! the spec requires kept) are read first and added again inside; then the device is set up.
//! Nothing is done at delete: when the namespace dies the kernel returns physical devices to
//! the initial namespace and destroys virtual ones (veth, macvlan, ...), which is what the
//! spec asks for.

use crate::Error;
use netlink_packet_core::Emitable;
use netlink_packet_core::{
    DefaultNla, ErrorBuffer, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable, NlaBuffer, NlasIterator, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

/// One device to move: its name in the runtime's namespace and its name inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetDevice {
    pub host: String,
    pub name: String,
}

/// The checked `linux.netDevices` and the namespace they go to.
#[derive(Debug)]
pub(crate) struct NetDevices {
    pub devices: Vec<NetDevice>,
    /// A joined network namespace (`path`); `None` is the container's new one.
    pub joined: Option<OwnedFd>,
}

/// The kernel's `dev_valid_name`: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or white space.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
}

/// A name the kernel completes (`eth%d`): it picks a free number in the container.
fn is_template(name: &str) -> bool {
    name.contains("%d")
}

fn invalid(msg: String) -> Error {
    Error::InvalidSpec(format!("linux.netDevices: {msg}"))
}

/// Checks `linux.netDevices` before anything is created: valid and distinct names, devices
/// that exist in the runtime's namespace, and a network namespace of the container's own to
/// move them to (a new one, or one joined by path that is not the runtime's).
pub(crate) fn plan(
    spec: &oci_spec::runtime::Spec,
    new_netns: bool,
    joined_netns: Option<&std::path::Path>,
) -> Result<Option<NetDevices>, Error> {
    match spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .filter(|m| !m.is_empty())
    {
        Some(map) => plan_devices(map, new_netns, joined_netns).map(Some),
        None => Ok(None),
    }
}

// Everything below is off the path of a container without netDevices: `#[cold]` and
// `#[inline(never)]` keep it out of `from_spec` and `clone_and_start`, which every `run`
// executes (inlined there, it spread their code over more pages, and the kernel maps the
// pages around each one a process faults in: peak RSS grew with it).
#[cold]
#[inline(never)]
fn plan_devices(
    map: &std::collections::HashMap<String, oci_spec::runtime::LinuxNetDevice>,
    new_netns: bool,
    joined_netns: Option<&std::path::Path>,
) -> Result<NetDevices, Error> {
    let joined = match (new_netns, joined_netns) {
        (true, _) => None,
        (false, Some(path)) => {
            let file = std::fs::File::open(path)
                .map_err(|e| Error::sys(format!("open namespace {}", path.display()), e))?;
            let ns = file
                .metadata()
                .map_err(|e| Error::sys(format!("stat {}", path.display()), e))?;
            let own = std::fs::metadata("/proc/self/ns/net")
                .map_err(|e| Error::sys("stat /proc/self/ns/net", e))?;
            if (ns.dev(), ns.ino()) == (own.dev(), own.ino()) {
                return Err(invalid(format!(
                    "the network namespace {} is the runtime's own: devices can only move to the container's",
                    path.display()
                )));
            }
            Some(file.into())
        }
        (false, None) => {
            return Err(invalid(
                "moving network devices needs a network namespace (linux.namespaces has no network entry, so the container shares the host's)".into(),
            ))
        }
    };
    // The map has no order; a fixed one makes failures and kernel-picked names repeatable.
    // (Sorting the names, not the devices, reuses the binary's sort of strings.)
    let mut hosts: Vec<String> = map.keys().cloned().collect();
    hosts.sort();
    let devices: Vec<NetDevice> = hosts
        .into_iter()
        .map(|host| NetDevice {
            name: map[&host]
                .name()
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| host.clone()),
            host,
        })
        .collect();
    for d in &devices {
        for n in [&d.host, &d.name] {
            if !valid_name(n) {
                return Err(invalid(format!("invalid network device name {n:?}")));
            }
        }
    }
    for (i, d) in devices.iter().enumerate() {
        if is_template(&d.name) {
            continue;
        }
        if let Some(other) = devices[..i].iter().find(|o| o.name == d.name) {
            return Err(invalid(format!(
                "{:?} and {:?} would both be named {:?} in the container",
                other.host, d.host, d.name
            )));
        }
    }
    for d in &devices {
        if nix::net::if_::if_nametoindex(d.host.as_str()).is_err() {
            return Err(invalid(format!(
                "network device {:?} does not exist in the runtime's network namespace",
                d.host
            )));
        }
    }
    Ok(NetDevices { devices, joined })
}

impl NetDevices {
    /// Moves every device into the network namespace of the container whose process is
    /// `pid`, renamed, with its permanent global addresses, and up.
    ///
    /// Every device and name is checked before the first one moves. A failure after that
    /// leaves the moved devices in the container's namespace, where the kernel takes care
    /// of them when it dies (the caller kills the container).
    #[cold]
    #[inline(never)]
    pub fn move_into(&self, pid: i32) -> Result<(), Error> {
        let target = match &self.joined {
            Some(fd) => fd
                .try_clone()
                .map_err(|e| Error::sys("duplicate the network namespace descriptor", e))?,
            None => std::fs::File::open(format!("/proc/{pid}/ns/net"))
                .map_err(|e| Error::sys("open the container's network namespace", e))?
                .into(),
        };
        let host = Rtnl::open().map_err(|e| Error::sys("open a netlink socket", e))?;
        let inside = Rtnl::open_in(&target)?;
        let nl_err = |what: String| move |e: std::io::Error| Error::sys(what, e);

        // Where each goes: its index in the runtime's namespace and a free one inside (the
        // same where it can be), so the device is found again whatever name the kernel gave.
        let mut moves = Vec::with_capacity(self.devices.len());
        for d in &self.devices {
            let index = host
                .link_index(&d.host)
                .map_err(nl_err(format!("look up network device {}", d.host)))?
                .ok_or_else(|| {
                    invalid(format!(
                        "network device {:?} does not exist in the runtime's network namespace",
                        d.host
                    ))
                })?;
            if !is_template(&d.name)
                && inside
                    .link_index(&d.name)
                    .map_err(nl_err(format!("look up {} in the container", d.name)))?
                    .is_some()
            {
                return Err(invalid(format!(
                    "a network device named {:?} already exists in the container's network namespace",
                    d.name
                )));
            }
            let mut new_index = index;
            while moves.iter().any(|&(_, _, i)| i == new_index)
                || inside
                    .link_exists(new_index)
                    .map_err(nl_err("look up an interface index in the container".into()))?
            {
                // Interface indexes are positive `int`s.
                new_index = if new_index >= i32::MAX as u32 {
                    1
                } else {
                    new_index + 1
                };
            }
            moves.push((d, index, new_index));
        }

        for (d, index, new_index) in moves {
            let what = |step: &str| format!("linux.netDevices: {step} {}", d.host);
            let addresses = host
                .permanent_global_addresses(index)
                .map_err(nl_err(what("read the addresses of")))?;
            host.move_link(index, target.as_raw_fd(), &d.name, new_index)
                .map_err(nl_err(what("move")))?;
            let name = inside
                .link_name(new_index)
                .map_err(nl_err(what("find the moved device")))?
                .ok_or_else(|| {
                    Error::Setup(format!(
                        "network device {} is not at index {new_index} in the container after the move",
                        d.host
                    ))
                })?;
            for mut a in addresses {
                a.set_index(new_index);
                a.relabel(&d.host, &name);
                inside.add_address(a).map_err(nl_err(format!(
                    "linux.netDevices: add an address of {} to {name}",
                    d.host
                )))?;
            }
            inside
                .set_up(new_index)
                .map_err(nl_err(format!("linux.netDevices: set {name} up")))?;
        }
        Ok(())
    }
}

/// An address as the kernel listed it: its `ifaddrmsg` and its attributes, raw, since they
/// go back to the kernel as they came (but for the index, the label and the lifetimes).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Address {
    /// family, prefix length, flags, scope, then the interface index (native order).
    header: [u8; 8],
    /// (type, value)
    attrs: Vec<(u16, Vec<u8>)>,
}

impl Address {
    #[cold]
    fn parse(p: &[u8]) -> Option<Address> {
        let header: [u8; 8] = p.get(..8)?.try_into().ok()?;
        let attrs = NlasIterator::new(&p[8..])
            .map(|a| {
                a.ok()
                    .map(|a: NlaBuffer<&[u8]>| (a.kind(), a.value().to_vec()))
            })
            .collect::<Option<_>>()?;
        Some(Address { header, attrs })
    }

    fn index(&self) -> u32 {
        u32::from_ne_bytes([
            self.header[4],
            self.header[5],
            self.header[6],
            self.header[7],
        ])
    }

    fn set_index(&mut self, index: u32) {
        self.header[4..].copy_from_slice(&index.to_ne_bytes());
    }

    /// Whether the spec says to keep it: permanent (not from SLAAC or DHCP, which give a
    /// lifetime) and of global scope. The 32-bit `IFA_FLAGS` speaks for the header's byte.
    fn keep(&self) -> bool {
        let flags = self
            .attrs
            .iter()
            .find(|(kind, _)| *kind == libc::IFA_FLAGS)
            .and_then(|(_, v)| Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?)))
            .unwrap_or(u32::from(self.header[2]));
        flags & libc::IFA_F_PERMANENT != 0 && self.header[3] == libc::RT_SCOPE_UNIVERSE
    }

    /// An IPv4 label names the device (`eth0`, or `eth0:1` for an alias); it follows the
    /// rename. Lifetimes are not copied: these addresses are permanent.
    #[cold]
    fn relabel(&mut self, old: &str, new: &str) {
        self.attrs.retain_mut(|(kind, v)| match *kind {
            libc::IFA_CACHEINFO => false,
            libc::IFA_LABEL => {
                let label = v.split(|&b| b == 0).next().unwrap_or(v);
                let Some(rest) = label
                    .strip_prefix(old.as_bytes())
                    .filter(|r| r.first() == Some(&b':'))
                else {
                    return false;
                };
                if new.len() + rest.len() >= libc::IFNAMSIZ {
                    return false;
                }
                let mut label = new.as_bytes().to_vec();
                label.extend_from_slice(rest);
                label.push(0);
                *v = label;
                true
            }
            _ => true,
        });
    }
}

/// A request: its netlink type, fixed header (`ifinfomsg`, `ifaddrmsg`) and attributes. The
/// messages are built here from the kernel's layouts: a typed rtnetlink crate brings the
/// codec of every attribute and link kind into the binary, ~100 KB for the handful used.
struct Request {
    ty: u16,
    header: Vec<u8>,
    attrs: Vec<DefaultNla>,
}

/// `ifinfomsg`: family, padding, device type, index, flags, change mask.
fn link_request(ty: u16, index: u32, flags: u32, attrs: Vec<DefaultNla>) -> Request {
    let mut header = vec![0u8; 4];
    header.extend_from_slice(&index.to_ne_bytes());
    header.extend_from_slice(&flags.to_ne_bytes());
    header.extend_from_slice(&flags.to_ne_bytes());
    Request { ty, header, attrs }
}

fn name_attr(name: &str) -> DefaultNla {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    DefaultNla::new(libc::IFLA_IFNAME, v)
}

impl NetlinkSerializable for Request {
    fn message_type(&self) -> u16 {
        self.ty
    }
    fn buffer_len(&self) -> usize {
        self.header.len() + self.attrs.as_slice().buffer_len()
    }
    fn serialize(&self, buffer: &mut [u8]) {
        buffer[..self.header.len()].copy_from_slice(&self.header);
        self.attrs.as_slice().emit(&mut buffer[self.header.len()..]);
    }
}

/// A synchronous rtnetlink socket, in the network namespace it was opened in.
struct Rtnl {
    socket: netlink_sys::Socket,
    seq: std::cell::Cell<u32>,
}

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// In an error message's TLVs (`NLM_F_ACK_TLVS`): the kernel's explanation.
const NLMSGERR_ATTR_MSG: u16 = 1;

impl Rtnl {
    #[cold]
    fn open() -> std::io::Result<Rtnl> {
        let mut socket = netlink_sys::Socket::new(netlink_sys::protocols::NETLINK_ROUTE)?;
        socket.bind_auto()?;
        // Errors carry only the request's header back, plus the kernel's own words
        // ("The interface netns is immutable") where it has some.
        socket.set_cap_ack(true)?;
        socket.set_ext_ack(true)?;
        Ok(Rtnl {
            socket,
            seq: std::cell::Cell::new(0),
        })
    }

    /// A socket in the network namespace `ns`: a netlink socket belongs to the namespace it
    /// was created in, so a short-lived thread enters `ns`, creates it and ends (this thread
    /// and the process keep their own namespace).
    #[cold]
    fn open_in(ns: &OwnedFd) -> Result<Rtnl, Error> {
        std::thread::scope(|s| {
            std::thread::Builder::new()
                .name("netns".into())
                .stack_size(64 * 1024)
                .spawn_scoped(s, || {
                    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(|e| Error::sys("enter the container's network namespace", e))?;
                    Rtnl::open().map_err(|e| {
                        Error::sys(
                            "open a netlink socket in the container's network namespace",
                            e,
                        )
                    })
                })
                .map_err(|e| Error::sys("start a thread", e))?
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Sends `req` and calls `each` with the type and payload of every answer until the
    /// kernel's acknowledgement (or, for a dump, its end).
    #[cold]
    fn call(
        &self,
        req: Request,
        flags: u16,
        mut each: impl FnMut(u16, &[u8]),
    ) -> std::io::Result<()> {
        let seq = self.seq.get().wrapping_add(1);
        self.seq.set(seq);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = seq;
        let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(req));
        msg.finalize();
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
        loop {
            let (data, _) = self.socket.recv_from_full()?;
            let mut rest = &data[..];
            while !rest.is_empty() {
                let msg = NetlinkBuffer::new_checked(rest)
                    .map_err(|_| bad("a truncated netlink message"))?;
                let (ty, payload) = (msg.message_type(), msg.payload());
                // new_checked saw a length of at least a header, within `rest`.
                let step = ((msg.length() as usize + 3) & !3).min(rest.len());
                rest = &rest[step..];
                if msg.sequence_number() != seq {
                    continue;
                }
                match ty {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let e = ErrorBuffer::new_checked(payload)
                            .map_err(|_| bad("a truncated netlink error"))?;
                        let Some(code) = e.code() else {
                            return Ok(());
                        };
                        let errno = -code.get();
                        return Err(match ext_ack_message(e.payload()) {
                            Some(text) => std::io::Error::new(
                                std::io::Error::from_raw_os_error(errno).kind(),
                                Refusal { errno, text },
                            ),
                            None => std::io::Error::from_raw_os_error(errno),
                        });
                    }
                    _ => each(ty, payload),
                }
            }
        }
    }

    /// RTM_GETLINK by name or index: the device's index and name, or `None` (ENODEV).
    #[cold]
    fn get_link(&self, index: u32, name: Option<&str>) -> std::io::Result<Option<(u32, String)>> {
        let req = link_request(
            libc::RTM_GETLINK,
            index,
            0,
            name.map(name_attr).into_iter().collect(),
        );
        let mut found = None;
        let r = self.call(req, NLM_F_ACK, |ty, p| {
            // ifinfomsg is 16 bytes; only the index and IFLA_IFNAME are read, so the rest of
            // the (large) answer is never decoded.
            if ty == libc::RTM_NEWLINK && p.len() >= 16 {
                let idx = u32::from_ne_bytes([p[4], p[5], p[6], p[7]]);
                let name = NlasIterator::new(&p[16..])
                    .filter_map(Result::ok)
                    .find(|a: &NlaBuffer<&[u8]>| a.kind() == libc::IFLA_IFNAME)
                    .map(|a| {
                        let v = a.value();
                        String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or(v))
                            .into_owned()
                    })
                    .unwrap_or_default();
                found = Some((idx, name));
            }
        });
        match r {
            Ok(()) => Ok(found),
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    #[cold]
    fn link_index(&self, name: &str) -> std::io::Result<Option<u32>> {
        Ok(self.get_link(0, Some(name))?.map(|(i, _)| i))
    }

    #[cold]
    fn link_name(&self, index: u32) -> std::io::Result<Option<String>> {
        Ok(self.get_link(index, None)?.map(|(_, n)| n))
    }

    #[cold]
    fn link_exists(&self, index: u32) -> std::io::Result<bool> {
        Ok(self.get_link(index, None)?.is_some())
    }

    /// The addresses of `index` that [`Address::keep`] keeps.
    #[cold]
    fn permanent_global_addresses(&self, index: u32) -> std::io::Result<Vec<Address>> {
        let mut out = Vec::new();
        let mut bad = false;
        let dump = Request {
            ty: libc::RTM_GETADDR,
            header: vec![0u8; 8],
            attrs: Vec::new(),
        };
        self.call(dump, NLM_F_DUMP, |ty, p| {
            if ty != libc::RTM_NEWADDR {
                return;
            }
            match Address::parse(p) {
                Some(a) if a.index() == index && a.keep() => out.push(a),
                Some(_) => {}
                None => bad = true,
            }
        })?;
        if bad {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the kernel listed an address this runtime cannot read",
            ));
        }
        Ok(out)
    }

    /// One RTM_NEWLINK: into the namespace `ns_fd`, named `name`, at `new_index` there. The
    /// kernel moves and renames in one request, so the host's name never shows up inside.
    #[cold]
    fn move_link(&self, index: u32, ns_fd: i32, name: &str, new_index: u32) -> std::io::Result<()> {
        let attrs = vec![
            DefaultNla::new(libc::IFLA_NET_NS_FD, ns_fd.to_ne_bytes().to_vec()),
            name_attr(name),
            DefaultNla::new(
                libc::IFLA_NEW_IFINDEX,
                (new_index as i32).to_ne_bytes().to_vec(),
            ),
        ];
        self.call(
            link_request(libc::RTM_NEWLINK, index, 0, attrs),
            NLM_F_ACK,
            |_, _| {},
        )
    }

    #[cold]
    fn add_address(&self, a: Address) -> std::io::Result<()> {
        let req = Request {
            ty: libc::RTM_NEWADDR,
            header: a.header.to_vec(),
            attrs: a
                .attrs
                .into_iter()
                .map(|(kind, v)| DefaultNla::new(kind, v))
                .collect(),
        };
        self.call(req, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, |_, _| {})
    }

    #[cold]
    fn set_up(&self, index: u32) -> std::io::Result<()> {
        let up = libc::IFF_UP as u32;
        self.call(
            link_request(libc::RTM_NEWLINK, index, up, Vec::new()),
            NLM_F_ACK,
            |_, _| {},
        )
    }
}

/// A request the kernel refused with an explanation (extended ack).
#[derive(Debug)]
struct Refusal {
    errno: i32,
    text: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = std::io::Error::from_raw_os_error(self.errno);
        write!(f, "{e}: {}", self.text)
    }
}

impl std::error::Error for Refusal {}

/// The errno of a refused request, with or without the kernel's explanation.
fn errno(e: &std::io::Error) -> Option<i32> {
    e.raw_os_error().or_else(|| {
        e.get_ref()
            .and_then(|r| r.downcast_ref::<Refusal>())
            .map(|r| r.errno)
    })
}

/// The kernel's text in an error's TLVs, which follow the echoed request header (16 bytes,
/// with NETLINK_CAP_ACK).
fn ext_ack_message(payload: &[u8]) -> Option<String> {
    let tlvs = payload.get(16..)?;
    NlasIterator::new(tlvs)
        .filter_map(Result::ok)
        .find(|a: &NlaBuffer<&[u8]>| a.kind() == NLMSGERR_ATTR_MSG)
        .map(|a| {
            let v = a.value();
            String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or(v)).into_owned()
        })
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_kernels_rules() {
        for ok in ["eth0", "ctr%d", "a", "x-y_z.1", "fifteen_chars15"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "tab\tx",
            "sixteen_chars_16",
        ] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }

    fn address(flags: u8, scope: u8, attrs: Vec<(u16, Vec<u8>)>) -> Address {
        Address {
            header: [libc::AF_INET as u8, 24, flags, scope, 7, 0, 0, 0],
            attrs,
        }
    }

    fn label(l: &str) -> (u16, Vec<u8>) {
        (libc::IFA_LABEL, format!("{l}\0").into_bytes())
    }

    #[test]
    fn only_permanent_global_addresses_are_kept() {
        let permanent = libc::IFA_F_PERMANENT as u8;
        assert!(address(permanent, libc::RT_SCOPE_UNIVERSE, vec![]).keep());
        assert!(!address(permanent, libc::RT_SCOPE_LINK, vec![]).keep());
        assert!(!address(permanent, libc::RT_SCOPE_HOST, vec![]).keep());
        assert!(!address(0, libc::RT_SCOPE_UNIVERSE, vec![]).keep());
        // The 32-bit IFA_FLAGS speaks for the header's byte when present.
        let flags = |f: u32| (libc::IFA_FLAGS, f.to_ne_bytes().to_vec());
        assert!(address(0, 0, vec![flags(libc::IFA_F_PERMANENT)]).keep());
        assert!(!address(permanent, 0, vec![flags(libc::IFA_F_NODAD)]).keep());
    }

    #[test]
    fn an_address_goes_back_as_it_came_with_the_new_index_and_label() {
        let lifetimes = (libc::IFA_CACHEINFO, vec![0; 16]);
        let local = (libc::IFA_LOCAL, vec![198, 18, 0, 1]);
        let mut a = address(0x80, 0, vec![local.clone(), label("veth0"), lifetimes]);
        let nlas: Vec<DefaultNla> = a
            .attrs
            .iter()
            .map(|(k, v)| DefaultNla::new(*k, v.clone()))
            .collect();
        let mut wire = a.header.to_vec();
        wire.resize(8 + nlas.as_slice().buffer_len(), 0);
        nlas.as_slice().emit(&mut wire[8..]);
        assert_eq!(Address::parse(&wire), Some(a.clone()));

        a.set_index(42);
        assert_eq!(a.index(), 42);
        a.relabel("veth0", "eth0");
        assert_eq!(a.attrs, vec![local.clone()]);
        let mut alias = address(0x80, 0, vec![local, label("veth0:web")]);
        alias.relabel("veth0", "eth0");
        assert_eq!(alias.attrs[1], label("eth0:web"));
    }

    #[test]
    fn the_kernels_explanation_is_read_from_the_ack() {
        let mut p = vec![0u8; 16];
        let text = b"The interface netns is immutable\0";
        let len = 4 + text.len();
        p.extend_from_slice(&(len as u16).to_ne_bytes());
        p.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        p.extend_from_slice(text);
        while !p.len().is_multiple_of(4) {
            p.push(0);
        }
        assert_eq!(
            ext_ack_message(&p).as_deref(),
            Some("The interface netns is immutable")
        );
        assert_eq!(ext_ack_message(&[0u8; 16]), None);
    }

    #[test]
    fn the_errno_survives_the_explanation() {
        let explained = std::io::Error::other(Refusal {
            errno: libc::ENODEV,
            text: "Link not found".into(),
        });
        assert_eq!(errno(&explained), Some(libc::ENODEV));
        assert_eq!(
            explained.to_string(),
            "No such device (os error 19): Link not found"
        );
        assert_eq!(
            errno(&std::io::Error::from_raw_os_error(libc::EEXIST)),
            Some(libc::EEXIST)
        );
    }
}
