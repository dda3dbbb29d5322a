//! Syscalls a container called that got ENOSYS: ones this kernel lacks (numbers past every
//! syscall the seccomp profile names) and ones the profile answers with ENOSYS to stand for an
//! older kernel. The filter notifies them (seccomp user notification) instead of answering
//! itself; an agent receives each, records it and answers ENOSYS, so the container sees what
//! it would have seen: a thread of the foreground `run` or `exec`, or, for a detached
//! container, its monitor (`hako-monitor`, which writes the numbers into the exit file for
//! [`crate::Engine::finish_detached`]). Allowed syscalls never reach a notification, so a
//! container that calls none of these costs only the listener's hand-over at start.

use std::borrow::Cow;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::{Arc, Mutex};

use nix::sys::socket::MsgFlags;
use serde::{Deserialize, Serialize};

/// One syscall the container called and got ENOSYS for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct MissingSyscall {
    /// Its number on the container's architecture.
    pub number: i64,
    /// Its name, when libseccomp knows the number.
    pub name: Option<String>,
    /// `kernel`: past every syscall the profile names (this kernel, or the profile, does not
    /// know it); `profile`: the seccomp profile answers it with ENOSYS.
    pub reason: String,
}

impl MissingSyscall {
    /// What `run` prints at exit.
    pub fn message(&self) -> String {
        let what = match &self.name {
            Some(n) => format!("{n} ({})", self.number),
            None => format!("syscall {}", self.number),
        };
        if self.reason == "profile" {
            format!("the container called {what}, which the seccomp profile answers with ENOSYS (Function not implemented)")
        } else {
            format!("the container called {what}, which this kernel does not implement (or the seccomp profile does not know): it got ENOSYS")
        }
    }
}

/// `spec` with the profile rules that answer ENOSYS turned into notifications, so that the
/// agent sees them, and their names; `None` when the profile has none.
pub(crate) fn notify_enosys_rules(
    spec: &oci_spec::runtime::Spec,
) -> Option<(oci_spec::runtime::Spec, Vec<String>)> {
    use oci_spec::runtime::LinuxSeccompAction as A;
    let mut names = Vec::new();
    let mut linux = spec.linux().clone()?;
    let mut seccomp = linux.seccomp().clone()?;
    let default_errno = seccomp.default_errno_ret().unwrap_or(libc::EPERM as u32);
    let mut rules = seccomp.syscalls().clone().unwrap_or_default();
    for r in &mut rules {
        let errno = r.errno_ret().unwrap_or(default_errno);
        // Only unconditional ones: an ENOSYS that depends on the arguments is a profile's
        // choice about a call the kernel has.
        let plain = r.args().as_ref().is_none_or(|a| a.is_empty());
        if r.action() == A::ScmpActErrno && errno == libc::ENOSYS as u32 && plain {
            r.set_action(A::ScmpActNotify);
            r.set_errno_ret(None);
            names.extend(r.names().iter().cloned());
        }
    }
    if names.is_empty() {
        return None;
    }
    seccomp.set_syscalls(Some(rules));
    linux.set_seccomp(Some(seccomp));
    let mut spec = spec.clone();
    spec.set_linux(Some(linux));
    Some((spec, names))
}

/// The spec to spawn with an agent: only a profile of the user's has its ENOSYS rules
/// notified. The default one answers clone3 with ENOSYS because a filter cannot read its
/// flags, which glibc meets at every thread it starts; that is hako's choice, not a missing
/// syscall, and a round trip to the agent each time. Also the names those rules cover.
pub(crate) fn agent_spec<'a>(
    spec: &'a oci_spec::runtime::Spec,
    seccomp: &crate::seccomp::Seccomp,
) -> (Cow<'a, oci_spec::runtime::Spec>, Vec<String>) {
    let notified = match seccomp {
        crate::seccomp::Seccomp::Custom(_) => notify_enosys_rules(spec),
        _ => None,
    };
    match notified {
        Some((s, names)) => (Cow::Owned(s), names),
        None => (Cow::Borrowed(spec), Vec::new()),
    }
}

/// Where a detached container's monitor start leaves the names of the profile's ENOSYS rules,
/// for its finish to tell `profile` from `kernel`. Written at each start that has some; a
/// container's profile never changes, so one left from an earlier start says the same.
fn profile_names_path(dir: &Path) -> std::path::PathBuf {
    dir.join("seccomp-enosys")
}

/// Records `names` (see [`profile_names_path`]); nothing when there are none.
pub(crate) fn save_profile_names(dir: &Path, names: &[String]) -> std::io::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    std::fs::write(profile_names_path(dir), names.join("\n"))
}

/// What [`save_profile_names`] recorded for the container in `dir`.
pub(crate) fn load_profile_names(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(profile_names_path(dir))
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The syscalls numbered `numbers` (each once, in the order first called) with their names,
/// and why they got ENOSYS: `profile` for one of `profile_names`, else `kernel`.
pub(crate) fn describe(numbers: &[i64], profile_names: &[String]) -> Vec<MissingSyscall> {
    numbers
        .iter()
        .map(|&nr| {
            let name = i32::try_from(nr).ok().and_then(hako_runtime::syscall_name);
            let reason = if name.as_ref().is_some_and(|n| profile_names.contains(n)) {
                "profile"
            } else {
                "kernel"
            };
            MissingSyscall {
                number: nr,
                name,
                reason: reason.into(),
            }
        })
        .collect()
}

/// How many distinct syscalls are recorded, as the monitor keeps them (a container may call
/// any number of numbers; each is still answered).
const MAX_RECORDED: usize = 64;

/// The thread that answers the notifications and what it recorded.
pub(crate) struct Agent {
    thread: Option<std::thread::JoinHandle<()>>,
    stop: Option<OwnedFd>,
    seen: Arc<Mutex<Vec<i64>>>,
    profile_names: Vec<String>,
}

/// A connected pair: ours for the agent, theirs for `SpawnOptions::seccomp_agent`.
pub(crate) fn socket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)
}

impl Agent {
    /// Starts answering on `ours` (once the runtime sends the listener there, if it does).
    pub(crate) fn start(ours: OwnedFd, profile_names: Vec<String>) -> std::io::Result<Agent> {
        let (stop_r, stop_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let out = seen.clone();
        let thread = std::thread::Builder::new()
            .name("seccomp-agent".into())
            .spawn(move || serve(ours, stop_r, out))?;
        Ok(Agent {
            thread: Some(thread),
            stop: Some(stop_w),
            seen,
            profile_names,
        })
    }

    /// Stops the thread (the container has exited) and returns what it recorded, each syscall
    /// once, in the order first called.
    pub(crate) fn finish(mut self) -> Vec<MissingSyscall> {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let seen = self.seen.lock().map(|s| s.clone()).unwrap_or_default();
        describe(&seen, &self.profile_names)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Waits for `fd` or the stop pipe; false once stopped or hung up.
fn wait(fd: &OwnedFd, stop: &OwnedFd) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    loop {
        let mut fds = [
            PollFd::new(fd.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
            Ok(_) => {
                let ev = |i: usize| fds[i].revents().unwrap_or(PollFlags::empty());
                if !ev(1).is_empty() {
                    return false;
                }
                return ev(0).contains(PollFlags::POLLIN);
            }
        }
    }
}

fn serve(ours: OwnedFd, stop: OwnedFd, seen: Arc<Mutex<Vec<i64>>>) {
    if !wait(&ours, &stop) {
        return;
    }
    let Some(listener) = receive_listener(&ours, MsgFlags::empty()) else {
        return;
    };
    while wait(&listener, &stop) {
        let nr = match hako_base::seccomp_notify::answer_enosys(listener.as_raw_fd()) {
            Ok(nr) => i64::from(nr),
            // ENOENT: the caller died before we got it; anything else ends the listener.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(_) => return,
        };
        if let Ok(mut s) = seen.lock() {
            if !s.contains(&nr) && s.len() < MAX_RECORDED {
                s.push(nr);
            }
        }
    }
}

/// The listener the runtime sent on our end of the agent's socket, if it sent one: the runtime
/// hands it over before [`hako_runtime::spawn`] returns, so this never waits. A container
/// without a filter (unconfined, privileged) has none.
pub(crate) fn take_listener(ours: &OwnedFd) -> Option<OwnedFd> {
    receive_listener(ours, MsgFlags::MSG_DONTWAIT)
}

/// The listener the runtime sends (SCM_RIGHTS, with the OCI state as payload, ignored here).
fn receive_listener(sock: &OwnedFd, flags: MsgFlags) -> Option<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, UnixAddr};
    let mut buf = vec![0u8; 64 * 1024];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<UnixAddr>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC | flags,
    )
    .ok()?;
    for c in msg.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: SCM_RIGHTS gave us these descriptors; each is ours to own.
            let mut owned = fds
                .into_iter()
                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
            return owned.next();
        }
    }
    None
}

/// For `hako info`: the newest syscall (highest number) libseccomp names on this architecture
/// that this kernel implements. The seccomp profiles can name no newer one, so a container
/// gets ENOSYS for a newer syscall even where the kernel has it (the filter answers numbers
/// past the profile's highest), and its programs' fallbacks apply.
pub fn newest_syscall() -> String {
    let known: Vec<(i32, String)> = (0..1024)
        .filter_map(|nr| hako_runtime::syscall_name(nr).map(|n| (nr, n)))
        .collect();
    let Some((top_nr, top)) = known.last() else {
        return "unknown (libseccomp names no syscall for this architecture)".into();
    };
    // The kernel's entry points (`__x64_sys_NAME`) name what it was built with; kallsyms
    // lists them for every user (addresses hidden from the unprivileged). Some are of other
    // ABIs (ia32, 16-bit uids), so they tell whether a name libseccomp knows is there, not
    // which numbers exist. Read until the newest one shows up (a sixth of the file here):
    // the kernel formats each line as it is read, 20-40 ms for all of them.
    let prefix = match std::env::consts::ARCH {
        "x86_64" => "__x64_sys_",
        "aarch64" => "__arm64_sys_",
        _ => "",
    };
    let numbers: std::collections::HashMap<&str, i32> =
        known.iter().map(|(nr, n)| (n.as_str(), *nr)).collect();
    let mut found: Option<i32> = None;
    let mut read_any = false;
    if let Some(f) = std::fs::File::open("/proc/kallsyms")
        .ok()
        .filter(|_| !prefix.is_empty())
    {
        use std::io::BufRead;
        for line in std::io::BufReader::with_capacity(64 * 1024, f)
            .lines()
            .map_while(Result::ok)
        {
            read_any = true;
            let Some(name) = line.rsplit(' ').next().and_then(|n| n.strip_prefix(prefix)) else {
                continue;
            };
            if let Some(&nr) = numbers.get(name) {
                found = found.max(Some(nr));
                if nr == *top_nr {
                    break;
                }
            }
        }
    }
    let newer = "containers get ENOSYS for newer ones, which no seccomp profile can name";
    if !read_any {
        return format!(
            "{top} ({top_nr}) is the newest libseccomp names (whether this kernel has it is unknown without /proc/kallsyms); {newer}"
        );
    }
    let name_of = |nr: i32| known.iter().find(|(n, _)| *n == nr).map(|(_, name)| name);
    match found.and_then(|nr| Some((nr, name_of(nr)?))) {
        Some((nr, name)) if nr == *top_nr => {
            format!("{name} ({nr}), the newest libseccomp names; {newer}")
        }
        Some((nr, name)) => format!(
            "{name} ({nr}); libseccomp names newer ones up to {top} ({top_nr}), which this kernel lacks"
        ),
        None => format!(
            "unknown (this kernel has none of the syscalls libseccomp names, up to {top} ({top_nr}))"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enosys_rules_become_notifications_and_messages_say_why() {
        let mut spec = oci_spec::runtime::Spec::default();
        assert!(notify_enosys_rules(&spec).is_none());
        let seccomp: oci_spec::runtime::LinuxSeccomp = serde_json::from_value(serde_json::json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["pidfd_open"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38,
                 "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
                {"names": ["mount"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
            ]
        }))
        .unwrap();
        let mut linux = spec.linux().clone().unwrap_or_default();
        linux.set_seccomp(Some(seccomp));
        spec.set_linux(Some(linux));
        let (spec, names) = notify_enosys_rules(&spec).unwrap();
        assert_eq!(names, vec!["pidfd_open".to_string()]);
        let rules = spec
            .linux()
            .as_ref()
            .unwrap()
            .seccomp()
            .as_ref()
            .unwrap()
            .syscalls()
            .clone()
            .unwrap();
        use oci_spec::runtime::LinuxSeccompAction as A;
        assert_eq!(rules[1].action(), A::ScmpActNotify);
        assert_eq!(
            rules[2].action(),
            A::ScmpActErrno,
            "conditional: left alone"
        );
        assert_eq!(rules[3].action(), A::ScmpActErrno, "EPERM stays");

        let m = MissingSyscall {
            number: 434,
            name: Some("pidfd_open".into()),
            reason: "profile".into(),
        };
        assert!(m.message().starts_with(
            "the container called pidfd_open (434), which the seccomp profile answers with ENOSYS"
        ));
        let k = MissingSyscall {
            number: 1000,
            name: None,
            reason: "kernel".into(),
        };
        assert!(k.message().starts_with(
            "the container called syscall 1000, which this kernel does not implement"
        ));
    }
}
