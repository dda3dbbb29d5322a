//! Parsing of /proc/self/mountinfo and /proc/self/cgroup.

use std::path::PathBuf;

use crate::Error;

pub(crate) const CPU: u16 = 1 << 0;
pub(crate) const CPUACCT: u16 = 1 << 1;
pub(crate) const CPUSET: u16 = 1 << 2;
pub(crate) const MEMORY: u16 = 1 << 3;
pub(crate) const DEVICES: u16 = 1 << 4;
pub(crate) const FREEZER: u16 = 1 << 5;
pub(crate) const BLKIO: u16 = 1 << 6;
pub(crate) const PIDS: u16 = 1 << 7;
pub(crate) const NET_CLS: u16 = 1 << 8;
pub(crate) const NET_PRIO: u16 = 1 << 9;
pub(crate) const PERF_EVENT: u16 = 1 << 10;
pub(crate) const HUGETLB: u16 = 1 << 11;
pub(crate) const SYSTEMD: u16 = 1 << 12;
pub(crate) const RDMA: u16 = 1 << 13;

/// Bit for one v1 controller (or the `name=systemd` named hierarchy); 0 for
/// anything we do not manage, e.g. mount options or `misc`.
fn controller_bit(name: &str) -> u16 {
    match name {
        "cpu" => CPU,
        "cpuacct" => CPUACCT,
        "cpuset" => CPUSET,
        "memory" => MEMORY,
        "devices" => DEVICES,
        "freezer" => FREEZER,
        "blkio" => BLKIO,
        "pids" => PIDS,
        "net_cls" => NET_CLS,
        "net_prio" => NET_PRIO,
        "perf_event" => PERF_EVENT,
        "hugetlb" => HUGETLB,
        "name=systemd" => SYSTEMD,
        "rdma" => RDMA,
        _ => 0,
    }
}

fn controller_mask(list: &str) -> u16 {
    list.split(',').fold(0, |m, c| m | controller_bit(c))
}

/// Which kind of hierarchy a directory lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// cgroup v1 hierarchy with this controller mask.
    V1(u16),
    /// The cgroup2 unified hierarchy.
    V2,
}

/// One cgroup mount as seen in mountinfo.
#[derive(Debug)]
pub(crate) struct Mount {
    pub kind: Kind,
    /// Subdirectory of the hierarchy that is mounted (mountinfo field 4).
    pub root: String,
    pub mount_point: PathBuf,
}

/// Undoes the octal escaping mountinfo applies to space, tab, newline and
/// backslash.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_owned();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            // Out-of-range escapes are not produced by the kernel; wrap like C would.
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn parse_mountinfo(text: &str) -> Result<Vec<Mount>, Error> {
    let mut mounts = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        let bad = || Error::Parse {
            file: "mountinfo",
            line: line.to_owned(),
        };
        // The mount point is escaped, so " - " can only be the separator
        // between the optional fields and the filesystem type.
        let (pre, post) = line.split_once(" - ").ok_or_else(bad)?;
        let mut post_fields = post.split(' ');
        let fstype = post_fields.next().ok_or_else(bad)?;
        let kind = match fstype {
            "cgroup2" => Kind::V2,
            "cgroup" => {
                let _source = post_fields.next().ok_or_else(bad)?;
                let opts = post_fields.next().ok_or_else(bad)?;
                match controller_mask(opts) {
                    0 => continue,
                    m => Kind::V1(m),
                }
            }
            _ => continue,
        };
        let mut fields = pre.split(' ');
        let root = fields.nth(3).ok_or_else(bad)?;
        let mount_point = fields.next().ok_or_else(bad)?;
        mounts.push(Mount {
            kind,
            root: unescape(root),
            mount_point: PathBuf::from(unescape(mount_point)),
        });
    }
    Ok(mounts)
}

/// One line of /proc/self/cgroup.
#[derive(Debug)]
pub(crate) struct Membership<'a> {
    pub kind: Kind,
    pub path: &'a str,
}

pub(crate) fn parse_proc_cgroup(text: &str) -> Result<Vec<Membership<'_>>, Error> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Parse {
                file: "/proc/self/cgroup",
                line: line.to_owned(),
            });
        };
        let kind = if id == "0" && controllers.is_empty() {
            Kind::V2
        } else {
            match controller_mask(controllers) {
                0 => continue,
                m => Kind::V1(m),
            }
        };
        // The kernel appends this when our own cgroup was rmdir'ed under us;
        // the path is still the best base we have.
        let path = path.strip_suffix(" (deleted)").unwrap_or(path);
        out.push(Membership { kind, path });
    }
    Ok(out)
}

/// Normalizes a cgroup path to "/a/b" form ("" for the root), rejecting `..`
/// and NUL so a name can never escape the hierarchy it is placed in.
pub(crate) fn normalize(path: &str) -> Result<String, Error> {
    if path.contains('\0') {
        return Err(Error::InvalidName(path.to_owned()));
    }
    let mut out = String::with_capacity(path.len() + 1);
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => return Err(Error::InvalidName(path.to_owned())),
            c => {
                out.push('/');
                out.push_str(c);
            }
        }
    }
    Ok(out)
}

/// Path of a process's cgroup relative to a mount of `root`.
///
/// Falls back to the mount's top when the cgroup is not below the mounted
/// subtree (e.g. a cgroup namespace boundary), which is the closest place we
/// can actually reach.
pub(crate) fn relative_to_root(root: &str, path: &str) -> String {
    let root = root.trim_end_matches('/');
    let path = path.trim_end_matches('/');
    if root.is_empty() {
        return path.to_owned();
    }
    match path.strip_prefix(root) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.to_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_parsing() {
        let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 /sub /sys/fs/cgroup/sys\\040temd rw,relatime - cgroup cgroup rw,xattr,name=systemd
42 31 0:39 / /sys/fs/cgroup/rdma rw - cgroup cgroup rw,rdma
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
";
        let m = parse_mountinfo(text).unwrap();
        assert_eq!(m.len(), 4);
        assert_eq!(m[0].kind, Kind::V1(CPU | CPUACCT));
        assert_eq!(
            m[0].mount_point,
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        );
        assert_eq!(m[1].kind, Kind::V1(SYSTEMD));
        assert_eq!(m[1].root, "/sub");
        assert_eq!(m[1].mount_point, PathBuf::from("/sys/fs/cgroup/sys temd"));
        assert_eq!(m[2].kind, Kind::V1(RDMA));
        assert_eq!(m[3].kind, Kind::V2);
        assert!(parse_mountinfo("garbage\n").is_err());
    }

    #[test]
    fn proc_cgroup_parsing() {
        let text =
            "12:rdma:/\n4:memory:/a/b\n2:cpu,cpuacct:/\n1:name=systemd:/x (deleted)\n0::/u\n";
        let m = parse_proc_cgroup(text).unwrap();
        assert_eq!(m.len(), 5);
        assert_eq!(m[0].kind, Kind::V1(RDMA));
        assert_eq!((m[1].kind, m[1].path), (Kind::V1(MEMORY), "/a/b"));
        assert_eq!(m[2].kind, Kind::V1(CPU | CPUACCT));
        assert_eq!(m[3].path, "/x");
        assert_eq!((m[4].kind, m[4].path), (Kind::V2, "/u"));
    }

    #[test]
    fn normalization() {
        assert_eq!(normalize("/").unwrap(), "");
        assert_eq!(normalize("hako").unwrap(), "/hako");
        assert_eq!(normalize("//a/./b/").unwrap(), "/a/b");
        assert!(normalize("a/../b").is_err());
        assert!(normalize("..").is_err());
        assert!(normalize("a\0b").is_err());
        assert_eq!(normalize("a..b").unwrap(), "/a..b");
    }

    #[test]
    fn root_stripping() {
        assert_eq!(relative_to_root("/", "/a/b"), "/a/b");
        assert_eq!(relative_to_root("/", "/"), "");
        assert_eq!(relative_to_root("/a", "/a/b"), "/b");
        assert_eq!(relative_to_root("/a", "/a"), "");
        assert_eq!(relative_to_root("/a", "/ab"), "");
        assert_eq!(relative_to_root("/a/", "/a/b/"), "/b");
    }
}
