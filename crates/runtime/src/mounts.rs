//! Translation of OCI mount entries into mount(2) arguments.

use nix::mount::MsFlags;
use std::path::PathBuf;

/// One mount of the spec, decoded before the container process is created so the child only
/// performs system calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountPlan {
    /// Where inside the container.
    pub destination: PathBuf,
    /// Filesystem type (`proc`, `tmpfs`, ...), or `None` for bind mounts.
    pub fstype: Option<String>,
    /// Device or host path.
    pub source: Option<PathBuf>,
    /// Flags applied when mounting (bind mounts get these in a second, remounting call).
    pub flags: MsFlags,
    /// Propagation change applied after mounting (`rprivate`, `slave`, ...).
    pub propagation: MsFlags,
    /// Filesystem-specific data (`mode=755,size=65536k`).
    pub data: String,
    /// Mount attributes for the whole tree, set and cleared with `mount_setattr(2)` and
    /// `AT_RECURSIVE` after mounting: the spec's recursive options (`rro`, `rnosuid`, ...).
    pub recursive: RecursiveAttrs,
}

/// `MOUNT_ATTR_*` bits to set and clear on a mount and everything below it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecursiveAttrs {
    /// Attributes to set.
    pub set: u64,
    /// Attributes to clear (for the access-time mode, the whole `MOUNT_ATTR__ATIME` field).
    pub clear: u64,
}

impl RecursiveAttrs {
    /// Whether the mount needs a `mount_setattr` call at all.
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clear == 0
    }
}

impl MountPlan {
    /// Whether this is a bind mount of a host path.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

/// `MS_NOSYMFOLLOW` (Linux 5.10), which nix does not name.
pub const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(256);

/// Decodes an OCI mount's type, source and options into a plan.
pub fn plan(
    destination: PathBuf,
    typ: Option<&str>,
    source: Option<PathBuf>,
    options: &[String],
) -> MountPlan {
    let mut flags = MsFlags::empty();
    let mut propagation = MsFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    let mut recursive = RecursiveAttrs::default();
    for opt in options {
        if let Some((set, clear)) = recursive_option(opt) {
            recursive.set = (recursive.set & !clear) | set;
            recursive.clear = (recursive.clear & !set) | clear;
            continue;
        }
        let (set, clear, prop): (MsFlags, MsFlags, MsFlags) = match opt.as_str() {
            "defaults" => (MsFlags::empty(), MsFlags::empty(), MsFlags::empty()),
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty(), MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY, MsFlags::empty()),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty(), MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID, MsFlags::empty()),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty(), MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV, MsFlags::empty()),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty(), MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC, MsFlags::empty()),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty(), MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty(), MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty(), MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty(), MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty(), MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty(), MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME, MsFlags::empty()),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty(), MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "bind" => (MsFlags::MS_BIND, MsFlags::empty(), MsFlags::empty()),
            "rbind" => (
                MsFlags::MS_BIND | MsFlags::MS_REC,
                MsFlags::empty(),
                MsFlags::empty(),
            ),
            "private" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_PRIVATE),
            "rprivate" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            ),
            "shared" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SHARED),
            "rshared" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_SHARED | MsFlags::MS_REC,
            ),
            "slave" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_SLAVE),
            "rslave" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
            ),
            "nosymfollow" => (MS_NOSYMFOLLOW, MsFlags::empty(), MsFlags::empty()),
            "symfollow" => (MsFlags::empty(), MS_NOSYMFOLLOW, MsFlags::empty()),
            "lazytime" => (MsFlags::MS_LAZYTIME, MsFlags::empty(), MsFlags::empty()),
            "nolazytime" => (MsFlags::empty(), MsFlags::MS_LAZYTIME, MsFlags::empty()),
            "iversion" => (MsFlags::MS_I_VERSION, MsFlags::empty(), MsFlags::empty()),
            "noiversion" => (MsFlags::empty(), MsFlags::MS_I_VERSION, MsFlags::empty()),
            "silent" => (MsFlags::MS_SILENT, MsFlags::empty(), MsFlags::empty()),
            "loud" => (MsFlags::empty(), MsFlags::MS_SILENT, MsFlags::empty()),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty(), MsFlags::empty()),
            "unbindable" => (MsFlags::empty(), MsFlags::empty(), MsFlags::MS_UNBINDABLE),
            "runbindable" => (
                MsFlags::empty(),
                MsFlags::empty(),
                MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
            ),
            // Docker and Podman annotations the kernel must not see.
            // idmap/ridmap are done with mount_setattr (idmap.rs), not mount(2) data.
            "tmpcopyup" | "notmpcopyup" | "z" | "Z" | "U" | "idmap" | "ridmap" | "copy"
            | "nocopy" => (MsFlags::empty(), MsFlags::empty(), MsFlags::empty()),
            other => {
                data.push(other);
                (MsFlags::empty(), MsFlags::empty(), MsFlags::empty())
            }
        };
        flags.insert(set);
        flags.remove(clear);
        propagation.insert(prop);
    }
    let fstype = match typ {
        Some("bind") | Some("none") | Some("") | None if flags.contains(MsFlags::MS_BIND) => None,
        Some("bind") => {
            flags.insert(MsFlags::MS_BIND);
            None
        }
        Some(t) => Some(t.to_string()),
        None => None,
    };
    MountPlan {
        destination,
        fstype,
        source,
        flags,
        propagation,
        data: data.join(","),
        recursive,
    }
}

/// The recursive mount options runc and crun take, as (`MOUNT_ATTR_*` to set, to clear).
/// Access times are one field: each mode clears the whole field and sets itself.
fn recursive_option(opt: &str) -> Option<(u64, u64)> {
    const RDONLY: u64 = libc::MOUNT_ATTR_RDONLY;
    const NOSUID: u64 = libc::MOUNT_ATTR_NOSUID;
    const NODEV: u64 = libc::MOUNT_ATTR_NODEV;
    const NOEXEC: u64 = libc::MOUNT_ATTR_NOEXEC;
    const ATIME: u64 = libc::MOUNT_ATTR__ATIME;
    const NOATIME: u64 = libc::MOUNT_ATTR_NOATIME;
    const STRICTATIME: u64 = libc::MOUNT_ATTR_STRICTATIME;
    const RELATIME: u64 = libc::MOUNT_ATTR_RELATIME;
    const NODIRATIME: u64 = libc::MOUNT_ATTR_NODIRATIME;
    const NOSYMFOLLOW: u64 = libc::MOUNT_ATTR_NOSYMFOLLOW;
    Some(match opt {
        "rro" => (RDONLY, 0),
        "rrw" => (0, RDONLY),
        "rnosuid" => (NOSUID, 0),
        "rsuid" => (0, NOSUID),
        "rnodev" => (NODEV, 0),
        "rdev" => (0, NODEV),
        "rnoexec" => (NOEXEC, 0),
        "rexec" => (0, NOEXEC),
        "rnodiratime" => (NODIRATIME, 0),
        "rdiratime" => (0, NODIRATIME),
        "rnoatime" => (NOATIME, ATIME),
        "rstrictatime" => (STRICTATIME, ATIME),
        // Back to the kernel's default mode.
        "rrelatime" | "ratime" | "rnorelatime" | "rnostrictatime" => (RELATIME, ATIME),
        "rnosymfollow" => (NOSYMFOLLOW, 0),
        "rsymfollow" => (0, NOSYMFOLLOW),
        _ => return None,
    })
}

/// Every mount option [`plan`] understands, for the runtime's `features` document.
pub const KNOWN_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "ratime",
    "rbind",
    "rdev",
    "rdiratime",
    "relatime",
    "remount",
    "rexec",
    "rnoatime",
    "rnodev",
    "rnodiratime",
    "rnoexec",
    "rnorelatime",
    "rnostrictatime",
    "rnosuid",
    "rnosymfollow",
    "ro",
    "rprivate",
    "rrelatime",
    "rro",
    "rrw",
    "rshared",
    "rslave",
    "rstrictatime",
    "rsuid",
    "rsymfollow",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "unbindable",
    "idmap",
    "ridmap",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(o: &[&str]) -> Vec<String> {
        o.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dev_tmpfs_like_docker() {
        let p = plan(
            "/dev".into(),
            Some("tmpfs"),
            Some("tmpfs".into()),
            &opts(&["nosuid", "strictatime", "mode=755", "size=65536k"]),
        );
        assert_eq!(p.fstype.as_deref(), Some("tmpfs"));
        assert_eq!(p.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(p.data, "mode=755,size=65536k");
        assert!(!p.is_bind());
    }

    #[test]
    fn bind_with_ro_and_propagation() {
        let p = plan(
            "/etc/hosts".into(),
            Some("bind"),
            Some("/x/hosts".into()),
            &opts(&["rbind", "ro", "rprivate"]),
        );
        assert!(p.is_bind());
        assert!(p.flags.contains(MsFlags::MS_REC | MsFlags::MS_RDONLY));
        assert_eq!(p.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(p.fstype, None);
        assert_eq!(p.data, "");
    }

    #[test]
    fn type_bind_without_option_is_still_bind() {
        let p = plan("/a".into(), Some("bind"), Some("/b".into()), &[]);
        assert!(p.is_bind());
    }

    #[test]
    fn every_option_features_lists_is_understood() {
        // None may reach the kernel as filesystem data, which bind mounts ignore.
        for opt in KNOWN_OPTIONS {
            let p = plan("/a".into(), Some("tmpfs"), None, &opts(&[opt]));
            assert_eq!(p.data, "", "{opt}");
        }
        let p = plan(
            "/a".into(),
            Some("bind"),
            Some("/b".into()),
            &opts(&["rro", "rnoatime"]),
        );
        assert_eq!(
            p.recursive.set,
            libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOATIME
        );
        assert_eq!(p.recursive.clear, libc::MOUNT_ATTR__ATIME);
        let p = plan(
            "/a".into(),
            Some("bind"),
            Some("/b".into()),
            &opts(&["rro", "rrw"]),
        );
        assert_eq!(
            (p.recursive.set, p.recursive.clear),
            (0, libc::MOUNT_ATTR_RDONLY)
        );
    }

    #[test]
    fn later_options_override() {
        let p = plan("/a".into(), Some("tmpfs"), None, &opts(&["ro", "rw"]));
        assert!(!p.flags.contains(MsFlags::MS_RDONLY));
    }
}
