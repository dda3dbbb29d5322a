//! Idmapped bind mounts (a mount's `uidMappings`/`gidMappings`, options `idmap`/`ridmap`).
//!
//! The parent clones the source tree (`open_tree`), attaches a user namespace holding the
//! mount's mappings to it (`mount_setattr(MOUNT_ATTR_IDMAP)`), and hands the detached tree to
//! the child, which moves it onto the target inside the rootfs (`move_mount`). The user
//! namespace comes from a short-lived helper process that unshares it and waits while the
//! parent writes its maps.

use oci_spec::runtime::{LinuxIdMapping, Mount};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use crate::Error;

fn map_lines(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// A user namespace with these maps, as an fd of `/proc/PID/ns/user`.
fn userns_with(uid: &str, gid: &str) -> Result<OwnedFd, Error> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| Error::sys("pipe", std::io::Error::from(e)))?;
    // SAFETY: the helper makes only async-signal-safe system calls (unshare, read, _exit), so
    // forking is sound even if the caller has threads.
    let child = match unsafe { nix::unistd::fork() }
        .map_err(|e| Error::sys("fork", std::io::Error::from(e)))?
    {
        nix::unistd::ForkResult::Child => {
            drop(w);
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER).is_ok();
            // Wait for EOF: the parent writes our maps and opens our namespace meanwhile.
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&r, &mut b);
            // SAFETY: _exit ends the helper without running the parent's destructors.
            unsafe { libc::_exit(i32::from(!ok)) }
        }
        nix::unistd::ForkResult::Parent { child } => child,
    };
    drop(r);
    let result = (|| {
        // The helper unshares at once; wait until its namespace differs from ours.
        let ours =
            std::fs::read_link("/proc/self/ns/user").map_err(|e| Error::sys("readlink", e))?;
        let ns_path = format!("/proc/{child}/ns/user");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match std::fs::read_link(&ns_path) {
                Ok(l) if l != ours => break,
                Ok(_) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_micros(100))
                }
                Ok(_) => {
                    return Err(Error::Setup(
                        "the idmap helper did not create its user namespace".into(),
                    ))
                }
                Err(e) => return Err(Error::sys("idmap helper", e)),
            }
        }
        std::fs::write(format!("/proc/{child}/uid_map"), uid)
            .map_err(|e| Error::sys("write the idmapped mount's uid_map", e))?;
        std::fs::write(format!("/proc/{child}/gid_map"), gid)
            .map_err(|e| Error::sys("write the idmapped mount's gid_map", e))?;
        let f = std::fs::File::open(&ns_path)
            .map_err(|e| Error::sys("open the idmap user namespace", e))?;
        Ok(OwnedFd::from(f))
    })();
    drop(w);
    let _ = nix::sys::wait::waitpid(child, None);
    result
}

/// The detached, idmapped clone of `m`'s source, when `m` asks for one.
pub(crate) fn prepare(m: &Mount) -> Result<Option<OwnedFd>, Error> {
    let opts = m.options().as_deref().unwrap_or(&[]);
    let wants = opts.iter().any(|o| o == "idmap" || o == "ridmap");
    let (uids, gids) = (m.uid_mappings().as_deref(), m.gid_mappings().as_deref());
    if !wants && uids.is_none() && gids.is_none() {
        return Ok(None);
    }
    let dest = m.destination().display();
    let (Some(uids), Some(gids)) = (
        uids.filter(|u| !u.is_empty()),
        gids.filter(|g| !g.is_empty()),
    ) else {
        return Err(Error::InvalidSpec(format!(
            "mount {dest}: an idmapped mount needs both uidMappings and gidMappings"
        )));
    };
    let is_bind = m
        .typ()
        .as_deref()
        .is_none_or(|t| t == "bind" || t == "none")
        && opts.iter().any(|o| o == "bind" || o == "rbind");
    if !is_bind {
        return Err(Error::InvalidSpec(format!(
            "mount {dest}: only bind mounts can be idmapped"
        )));
    }
    let recursive = opts.iter().any(|o| o == "rbind" || o == "ridmap");
    let src = m.source().as_ref().ok_or_else(|| {
        Error::InvalidSpec(format!(
            "mount {dest}: an idmapped bind mount needs a source"
        ))
    })?;
    let csrc = CString::new(src.as_os_str().as_bytes())
        .map_err(|_| Error::InvalidSpec(format!("mount {dest}: source contains a NUL byte")))?;
    let userns = userns_with(&map_lines(uids), &map_lines(gids))?;
    let mut flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree reads the NUL-terminated path; the result is a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, csrc.as_ptr(), flags) };
    if fd < 0 {
        return Err(Error::sys(
            format!("open_tree {}", src.display()),
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: a fresh descriptor nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let mut at = libc::AT_EMPTY_PATH;
    if recursive {
        at |= libc::AT_RECURSIVE;
    }
    // SAFETY: mount_setattr reads `attr` (of the size we pass) and the empty path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            at,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r != 0 {
        return Err(Error::sys(
            format!("idmap the mount of {} on {dest}", src.display()),
            io::Error::last_os_error(),
        ));
    }
    Ok(Some(tree))
}

/// Moves the detached tree onto `target` (an O_PATH descriptor inside the rootfs).
pub(crate) fn attach(tree: &OwnedFd, target: &OwnedFd) -> io::Result<()> {
    // SAFETY: move_mount takes two descriptors and two empty paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH | libc::MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
