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
use netlink_packet_core::{
    DefaultNla, ErrorBuffer, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
    NetlinkSerializable, NlaBuffer, NlasIterator, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_core::{Emitable, Parseable};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressMessageBuffer,
    AddressScope,
};
use netlink_packet_route::link::{LinkFlags, LinkHeader};
use netlink_packet_route::AddressFamily;
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
    let Some(map) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .filter(|m| !m.is_empty())
    else {
        return Ok(None);
    };
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
    let mut devices: Vec<NetDevice> = map
        .iter()
        .map(|(host, d)| NetDevice {
            host: host.clone(),
            name: d
                .name()
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| host.clone()),
        })
        .collect();
    // The map has no order; a fixed one makes failures and kernel-picked names repeatable.
    devices.sort_by(|a, b| a.host.cmp(&b.host));
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
    Ok(Some(NetDevices { devices, joined }))
}

impl NetDevices {
    /// Moves every device into the network namespace of the container whose process is
    /// `pid`, renamed, with its permanent global addresses, and up.
    ///
    /// Every device and name is checked before the first one moves. A failure after that
    /// leaves the moved devices in the container's namespace, where the kernel takes care
    /// of them when it dies (the caller kills the container).
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
                a.header.index = new_index;
                relabel(&mut a, &d.host, &name);
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

/// An IPv4 label names the device (`eth0`, or `eth0:1` for an alias); it follows the rename.
/// Lifetimes are not copied: these addresses are permanent.
fn relabel(a: &mut AddressMessage, old: &str, new: &str) {
    a.attributes.retain_mut(|attr| match attr {
        AddressAttribute::CacheInfo(_) => false,
        AddressAttribute::Label(l) => {
            if l == old {
                return false;
            }
            match l.strip_prefix(old).filter(|rest| rest.starts_with(':')) {
                Some(rest) if new.len() + rest.len() < libc::IFNAMSIZ => {
                    *l = format!("{new}{rest}");
                    true
                }
                _ => false,
            }
        }
        _ => true,
    });
}

/// Whether an address is one the spec says to keep: permanent (not from SLAAC or DHCP with
/// a lifetime) and of global scope.
fn keep(a: &AddressMessage) -> bool {
    let permanent = a.header.flags.contains(AddressHeaderFlags::Permanent)
        || a.attributes.iter().any(
            |attr| matches!(attr, AddressAttribute::Flags(f) if f.contains(AddressFlags::Permanent)),
        );
    permanent && a.header.scope == AddressScope::Universe
}

/// The requests this runtime sends: their netlink type and body. Link requests carry raw
/// attributes: the crate's typed ones would bring the encoder of every link attribute and
/// kind into the binary (about 100 KB) for the three used here.
enum Request {
    Link(u16, LinkHeader, Vec<DefaultNla>),
    Address(u16, AddressMessage),
}

fn link_request(ty: u16, index: u32, attrs: Vec<DefaultNla>) -> Request {
    let header = LinkHeader {
        index,
        ..Default::default()
    };
    Request::Link(ty, header, attrs)
}

fn name_attr(name: &str) -> DefaultNla {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    DefaultNla::new(libc::IFLA_IFNAME, v)
}

impl NetlinkSerializable for Request {
    fn message_type(&self) -> u16 {
        match self {
            Request::Link(t, ..) | Request::Address(t, _) => *t,
        }
    }
    fn buffer_len(&self) -> usize {
        match self {
            Request::Link(_, h, a) => h.buffer_len() + a.as_slice().buffer_len(),
            Request::Address(_, m) => m.buffer_len(),
        }
    }
    fn serialize(&self, buffer: &mut [u8]) {
        match self {
            Request::Link(_, h, a) => {
                h.emit(buffer);
                a.as_slice().emit(&mut buffer[h.buffer_len()..]);
            }
            Request::Address(_, m) => m.emit(buffer),
        }
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
                        let err = std::io::Error::from_raw_os_error(-code.get());
                        return Err(match ext_ack_message(e.payload()) {
                            Some(text) => std::io::Error::new(err.kind(), format!("{err}: {text}")),
                            None => err,
                        });
                    }
                    _ => each(ty, payload),
                }
            }
        }
    }

    /// RTM_GETLINK by name or index: the device's index and name, or `None` (ENODEV).
    fn get_link(&self, index: u32, name: Option<&str>) -> std::io::Result<Option<(u32, String)>> {
        let req = link_request(
            libc::RTM_GETLINK,
            index,
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
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn link_index(&self, name: &str) -> std::io::Result<Option<u32>> {
        Ok(self.get_link(0, Some(name))?.map(|(i, _)| i))
    }

    fn link_name(&self, index: u32) -> std::io::Result<Option<String>> {
        Ok(self.get_link(index, None)?.map(|(_, n)| n))
    }

    fn link_exists(&self, index: u32) -> std::io::Result<bool> {
        Ok(self.get_link(index, None)?.is_some())
    }

    /// The addresses of `index` that [`keep`] keeps.
    fn permanent_global_addresses(&self, index: u32) -> std::io::Result<Vec<AddressMessage>> {
        let mut out = Vec::new();
        let mut err = None;
        self.call(
            Request::Address(libc::RTM_GETADDR, AddressMessage::default()),
            NLM_F_DUMP,
            |ty, p| {
                if ty != libc::RTM_NEWADDR {
                    return;
                }
                match AddressMessage::parse(&AddressMessageBuffer::new(&p)) {
                    Ok(a) if a.header.index == index && keep(&a) => out.push(a),
                    Ok(_) => {}
                    Err(e) => err = Some(e),
                }
            },
        )?;
        if let Some(e) = err {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                e.to_string(),
            ));
        }
        Ok(out)
    }

    /// One RTM_NEWLINK: into the namespace `ns_fd`, named `name`, at `new_index` there. The
    /// kernel moves and renames in one request, so the host's name never shows up inside.
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
            link_request(libc::RTM_NEWLINK, index, attrs),
            NLM_F_ACK,
            |_, _| {},
        )
    }

    fn add_address(&self, a: AddressMessage) -> std::io::Result<()> {
        self.call(
            Request::Address(libc::RTM_NEWADDR, a),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            |_, _| {},
        )
    }

    fn set_up(&self, index: u32) -> std::io::Result<()> {
        let header = LinkHeader {
            index,
            interface_family: AddressFamily::Unspec,
            flags: LinkFlags::Up,
            change_mask: LinkFlags::Up,
            ..Default::default()
        };
        self.call(
            Request::Link(libc::RTM_NEWLINK, header, Vec::new()),
            NLM_F_ACK,
            |_, _| {},
        )
    }
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

    #[test]
    fn only_permanent_global_addresses_are_kept() {
        let mut a = AddressMessage::default();
        a.header.scope = AddressScope::Universe;
        a.header.flags = AddressHeaderFlags::Permanent;
        assert!(keep(&a));
        a.header.scope = AddressScope::Link;
        assert!(!keep(&a));
        a.header.scope = AddressScope::Universe;
        a.header.flags = AddressHeaderFlags::empty();
        assert!(!keep(&a));
        // The 32-bit IFA_FLAGS attribute speaks for the header's byte when present.
        a.attributes
            .push(AddressAttribute::Flags(AddressFlags::Permanent));
        assert!(keep(&a));
    }

    #[test]
    fn labels_follow_the_rename_and_lifetimes_are_dropped() {
        let mut a = AddressMessage::default();
        a.attributes = vec![
            AddressAttribute::Label("veth0".into()),
            AddressAttribute::CacheInfo(Default::default()),
        ];
        relabel(&mut a, "veth0", "eth0");
        assert!(a.attributes.is_empty(), "{:?}", a.attributes);
        a.attributes = vec![AddressAttribute::Label("veth0:web".into())];
        relabel(&mut a, "veth0", "eth0");
        assert_eq!(
            a.attributes,
            vec![AddressAttribute::Label("eth0:web".into())]
        );
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
}
