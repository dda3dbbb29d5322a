//! The `bpf(2)` calls that put a device program on a cgroup v2 directory.
//!
//! Unit tests run against a fake tree on an ordinary filesystem, where no program can be
//! attached; there the `cfg(test)` version of [`attach_device_program`] stands in for the
//! kernel (see `fs.rs` for the other such seams). The real one is exercised by
//! `tests/host.rs`, on the host's own cgroup2 hierarchy.

#[cfg(test)]
use std::path::Path;

#[cfg(test)]
use crate::devices::Insn;
#[cfg(test)]
use crate::Error;

#[cfg(not(test))]
pub(crate) use real::attach_device_program;

#[cfg(not(test))]
mod real {
    use std::ffi::c_void;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;

    use crate::devices::Insn;
    use crate::Error;

    // enum bpf_cmd
    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_PROG_ATTACH: libc::c_long = 8;
    const BPF_PROG_DETACH: libc::c_long = 9;
    const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
    const BPF_PROG_QUERY: libc::c_long = 16;
    /// enum bpf_prog_type
    const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    /// enum bpf_attach_type
    const BPF_CGROUP_DEVICE: u32 = 6;
    /// Programs of a cgroup and of its ancestors all run, and all must allow.
    const BPF_F_ALLOW_MULTI: u32 = 1 << 1;

    /// The `BPF_PROG_LOAD` part of `union bpf_attr`, up to the fields we set.
    #[repr(C, align(8))]
    #[derive(Default)]
    struct ProgLoad {
        prog_type: u32,
        insn_cnt: u32,
        insns: u64,
        license: u64,
        log_level: u32,
        log_size: u32,
        log_buf: u64,
        kern_version: u32,
        prog_flags: u32,
        prog_name: [u8; 16],
        prog_ifindex: u32,
        expected_attach_type: u32,
    }

    /// The `BPF_PROG_ATTACH`/`BPF_PROG_DETACH` part.
    #[repr(C)]
    #[derive(Default)]
    struct Attach {
        target_fd: u32,
        attach_bpf_fd: u32,
        attach_type: u32,
        attach_flags: u32,
        replace_bpf_fd: u32,
    }

    /// The `BPF_PROG_QUERY` part, without the per-program flags (left unasked).
    #[repr(C, align(8))]
    #[derive(Default)]
    struct Query {
        target_fd: u32,
        attach_type: u32,
        query_flags: u32,
        attach_flags: u32,
        prog_ids: u64,
        prog_cnt: u32,
    }

    /// The `BPF_PROG_GET_FD_BY_ID` part.
    #[repr(C)]
    #[derive(Default)]
    struct GetFdById {
        prog_id: u32,
        next_id: u32,
        open_flags: u32,
    }

    /// `bpf(cmd, attr, sizeof attr)`.
    fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
        // SAFETY: `attr` is a live, exclusively borrowed `#[repr(C)]` prefix of `union
        // bpf_attr` for `cmd`, and its size is passed with it, so the kernel reads and writes
        // only within it (it zero-fills the rest of its own copy). Pointers inside it (program,
        // license, log, id buffer) are set by the callers to buffers that outlive the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr as *mut T as *mut c_void,
                std::mem::size_of::<T>() as libc::c_uint,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r)
        }
    }

    fn owned(fd: libc::c_long) -> OwnedFd {
        // SAFETY: the kernel just returned this descriptor for us alone; nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(fd as i32) }
    }

    fn err(op: &'static str, dir: &Path, source: io::Error) -> Error {
        Error::Bpf {
            op,
            path: dir.to_path_buf(),
            error: source,
        }
    }

    fn load(program: &[Insn], dir: &Path) -> Result<OwnedFd, Error> {
        let license = b"Apache-2.0\0";
        let mut name = [0u8; 16];
        name[..12].copy_from_slice(b"hako_devices");
        let mut attr = ProgLoad {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: program.len() as u32,
            insns: program.as_ptr() as u64,
            license: license.as_ptr() as u64,
            prog_name: name,
            expected_attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        match bpf(BPF_PROG_LOAD, &mut attr) {
            Ok(fd) => Ok(owned(fd)),
            Err(e)
                if e.raw_os_error() == Some(libc::EINVAL)
                    || e.raw_os_error() == Some(libc::EACCES) =>
            {
                // The verifier refused it: load again with its log, which says why.
                let mut log = vec![0u8; 64 * 1024];
                attr.log_level = 1;
                attr.log_size = log.len() as u32;
                attr.log_buf = log.as_mut_ptr() as u64;
                let _ = bpf(BPF_PROG_LOAD, &mut attr);
                let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]);
                let last = text.lines().rev().take(3).collect::<Vec<_>>().join(" / ");
                Err(err(
                    "load the device program",
                    dir,
                    io::Error::new(e.kind(), format!("{e}: {last}")),
                ))
            }
            Err(e) => Err(err("load the device program", dir, e)),
        }
    }

    /// Ids of the device programs attached to this cgroup itself (not its ancestors').
    fn attached(cgroup: &OwnedFd, dir: &Path) -> Result<Vec<u32>, Error> {
        let mut ids = vec![0u32; 8];
        loop {
            let mut attr = Query {
                target_fd: cgroup.as_raw_fd() as u32,
                attach_type: BPF_CGROUP_DEVICE,
                prog_ids: ids.as_mut_ptr() as u64,
                prog_cnt: ids.len() as u32,
                ..Default::default()
            };
            match bpf(BPF_PROG_QUERY, &mut attr) {
                Ok(_) => {
                    ids.truncate(attr.prog_cnt as usize);
                    return Ok(ids);
                }
                // More programs than room: prog_cnt now says how many.
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    ids = vec![0; attr.prog_cnt as usize + 8];
                }
                Err(e) => return Err(err("list the cgroup's device programs", dir, e)),
            }
        }
    }

    /// Attaches `program` to the cgroup2 directory `dir` and then detaches the device programs
    /// that were there before, so that applying rules again replaces them instead of adding a
    /// program each time. Until the old ones are gone both apply, and a device needs both to
    /// allow it: the switch never opens more than either rule set. `None` only detaches (the
    /// rules allow everything, which no program at all does too).
    pub(crate) fn attach_device_program(dir: &Path, program: Option<&[Insn]>) -> Result<(), Error> {
        let cgroup: OwnedFd = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(dir)
            .map_err(|e| err("open the cgroup", dir, e))?
            .into();
        let old = attached(&cgroup, dir)?;
        if let Some(program) = program {
            let prog = load(program, dir)?;
            let mut attr = Attach {
                target_fd: cgroup.as_raw_fd() as u32,
                attach_bpf_fd: prog.as_raw_fd() as u32,
                attach_type: BPF_CGROUP_DEVICE,
                attach_flags: BPF_F_ALLOW_MULTI,
                replace_bpf_fd: 0,
            };
            bpf(BPF_PROG_ATTACH, &mut attr)
                .map_err(|e| err("attach the device program", dir, e))?;
            // The cgroup holds the program from here on; our descriptor can go.
        }
        for id in old {
            let mut by_id = GetFdById {
                prog_id: id,
                ..Default::default()
            };
            let prog = match bpf(BPF_PROG_GET_FD_BY_ID, &mut by_id) {
                Ok(fd) => owned(fd),
                // Detached and freed meanwhile.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(err("open an old device program", dir, e)),
            };
            let mut attr = Attach {
                target_fd: cgroup.as_raw_fd() as u32,
                attach_bpf_fd: prog.as_raw_fd() as u32,
                attach_type: BPF_CGROUP_DEVICE,
                ..Default::default()
            };
            match bpf(BPF_PROG_DETACH, &mut attr) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(err("detach an old device program", dir, e)),
            }
        }
        Ok(())
    }
}

/// Stands in for the kernel on the fake tree: the program "attached" to a directory is the
/// file `hako.devices.bpf` there (the raw instructions), which each call replaces, as the real
/// one replaces the attached program; `None` removes it.
#[cfg(test)]
pub(crate) fn attach_device_program(dir: &Path, program: Option<&[Insn]>) -> Result<(), Error> {
    let path = dir.join(FAKE_PROGRAM);
    let Some(program) = program else {
        return match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Remove {
                path,
                error: source,
            }),
        };
    };
    if !dir.is_dir() {
        return Err(Error::Bpf {
            op: "open the cgroup",
            path: dir.to_path_buf(),
            error: std::io::Error::from_raw_os_error(libc::ENOENT),
        });
    }
    let mut bytes = Vec::with_capacity(program.len() * 8);
    for i in program {
        bytes.push(i.code);
        bytes.push(i.regs);
        bytes.extend_from_slice(&i.off.to_le_bytes());
        bytes.extend_from_slice(&i.imm.to_le_bytes());
    }
    std::fs::write(&path, bytes).map_err(|source| Error::Bpf {
        op: "attach the device program",
        path: dir.to_path_buf(),
        error: source,
    })
}

/// Where the fake tree keeps a directory's device program.
#[cfg(test)]
pub(crate) const FAKE_PROGRAM: &str = "hako.devices.bpf";
