#![deny(missing_docs)]
//! Networking for rootless containers: an ordinary user's container gets outbound access
//! through a user-mode network stack, and its published ports (`-p`) through a forwarder of
//! hako's own. Nothing here needs root; everything runs as the invoking user, who owns the
//! container's user namespace.
//!
//! # How the engine uses it
//!
//! The container's user and network namespaces exist (its pid, or paths to the namespace
//! files, is a [`Target`]). The engine re-executes itself as a helper, like the monitor, and
//! the helper calls [`helper_main`] with a [`HelperConfig`]: the helper starts the stack
//! ([`Stack::start`]), binds the published ports on the host ([`Forwarder::bind`]), joins the
//! container's user namespace, serves the ports from then on, writes one `ready` line with the
//! bound addresses, and exits when the container's namespace holder exits (a pidfd) or when
//! its exit fd (the engine's end of a pipe) closes. The stack is tied to the helper: slirp4netns
//! through its `--exit-fd`, pasta (which has no such option) through a small guard process that
//! kills it when the helper's pipe closes. So `kill -9` of the helper, of the `hako` that started
//! it, or the container's exit leaves no process behind. The container's `/etc/resolv.conf`
//! comes from [`resolv_conf`] with [`StackConfig::dns`].
//!
//! # Addressing
//!
//! As Docker's and Podman's rootless mode: the container's interface `eth0` has
//! `10.0.2.100/24` (the configurable [`StackConfig::cidr`]), the gateway is `.2`, the DNS server
//! `.3` (slirp4netns answers there itself; pasta's `--dns-forward` relays it to the host's
//! resolver). With [`StackConfig::disable_host_loopback`] (the default, as Docker's rootless
//! mode) the gateway does not lead to the host's `127.0.0.1`, so a container cannot reach
//! services the host keeps on loopback.
//!
//! # The default stack, by measurement
//!
//! See [`Driver::default`]: bench/usernet.sh measures container → host throughput and connect
//! latency of both side by side.
//!
//! # Published ports and the client's address
//!
//! The forwarder listens on the host as the user, and for each TCP connection or UDP peer opens a
//! socket inside the container's network namespace. The kernel lets a thread `setns(2)` into a
//! network namespace only with `CAP_SYS_ADMIN` over both the namespace's owning user namespace
//! and the caller's own user namespace; an ordinary user has the first (it owns the container's
//! user namespace) but never the second in the initial one. So the helper first joins the
//! container's user namespace (`setns(CLONE_NEWUSER)`, which the kernel allows only to a
//! single-threaded process: it is done before the first thread), where it holds every
//! capability, and then each serving thread joins the network namespace. Sockets keep the
//! namespace they were created in, so the host listeners bound before still listen on the host.
//!
//! The container sees connections from its own address (`10.0.2.100`), not the client's: the
//! forwarder's socket inside is a local socket of the container's namespace, so the kernel
//! sends the server's replies back to it only when the destination is one of the namespace's
//! own addresses. Keeping the client's address would need `IP_TRANSPARENT` plus a policy route in
//! the container's namespace sending every reply from the published port to the local stack,
//! which would also capture the replies of that port to real peers at those addresses (another
//! container on a user network, the gateway); hako does not rewrite the container's routing
//! behind its back. pasta's and slirp4netns' own port forwarding do not keep it either for
//! loopback clients (both show the gateway).
//!
//! Ports below `net.ipv4.ip_unprivileged_port_start` are refused before anything is started,
//! with the sysctl named.
//!
//! # Rootless user-defined networks
//!
//! Containers of one user reach each other by name through one network namespace per user,
//! the "rootless netns" (Podman's model):
//!
//! - **The namespace.** [`netns_main`] (the engine runs it as `hako __usernet-netns`, on
//!   demand, its pids in `$XDG_RUNTIME_DIR/hako/netns.pid`) forks a keeper that unshares a
//!   network namespace owned by the user's own user namespace (the one whose uid 0 is the
//!   user, which the containers' are nested in) and waits; its outbound access is one
//!   [`Stack`] for the whole namespace, started from the holder, which stays in the host's
//!   namespace as the stack's own sockets must.
//! - **Bridges, addresses, names.** Root's code: the engine gives `hako-net` that namespace as
//!   its host side (`hako_net::set_host_netns`), so bridges (private to the user: two users'
//!   never collide), the nftables table, masquerade to the stack's interface, IPAM in the
//!   user's own database and `hako-dns` on each bridge's gateway all live there. Veth pairs are
//!   created there with the container end moved into the container's namespace (allowed: both
//!   namespaces are owned by the user's user namespace or one nested in it).
//! - **Published ports** of a container on a user network use the same forwarder
//!   ([`helper_main`] with no stack), joining the user's namespace instead of the
//!   container's and connecting to the container's bridge address.
//! - **Life.** The engine stops the holder when the user's last network is removed; a killed
//!   holder takes the keeper (parent-death signal) and the stack (its exit fd) with it, and
//!   the next use makes a new namespace in which `hako-net` re-creates bridges and rules.
//!
//! [`subnet_for`] picks a /24 from Podman's rootless range for callers that want one; the
//! engine uses `hako-net`'s own choice, which cannot clash with the stack's `10.0.2.0/24`.

mod error;
mod forward;
mod guard;
mod helper;
mod netns;
mod network;
mod ports;
mod stack;
mod sys;
mod target;

pub use error::{Error, Result};
pub use forward::Forwarder;
pub use helper::{helper_main, HelperConfig, Ready};
pub use netns::{netns_main, NetnsReady};
pub use network::subnet_for;
pub use ports::{parse_publish, unprivileged_port_start, Proto, Publish};
pub use stack::{resolv_conf, Driver, Stack, StackConfig};
pub use target::Target;
