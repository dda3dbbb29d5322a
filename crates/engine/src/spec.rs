//! The OCI runtime spec hako gives a container: Docker's defaults for mounts, devices,
//! capabilities, masked paths and namespaces, plus the container's process.

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceBuilder,
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Docker's default capability set.
pub const DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Network namespace choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetMode {
    /// A new network namespace with only loopback.
    Isolated,
    /// The host's network namespace.
    Host,
}

/// Everything that varies between containers.
#[derive(Debug)]
pub struct SpecInput<'a> {
    /// Mount point of the root filesystem.
    pub rootfs: &'a Path,
    /// Full argv.
    pub args: Vec<String>,
    /// Final environment.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: &'a str,
    /// uid, gid, additional gids.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Supplementary gids.
    pub additional_gids: Vec<u32>,
    /// UTS hostname.
    pub hostname: &'a str,
    /// Network namespace.
    pub net: NetMode,
    /// Files bind-mounted at /etc/hosts, /etc/hostname, /etc/resolv.conf.
    pub etc_files: [(&'a str, PathBuf); 3],
    /// `--read-only`.
    pub readonly_root: bool,
    /// Volumes, binds and tmpfs mounts from the command line and the image.
    pub extra_mounts: Vec<oci_spec::runtime::Mount>,
    /// Capabilities of the process (bounding, effective and permitted).
    pub caps: HashSet<Capability>,
    /// `--privileged`: no masked or read-only paths, writable /sys, the host's devices.
    pub privileged: bool,
    /// `--ulimit`: (RLIMIT_NAME, soft, hard).
    pub rlimits: Vec<(String, u64, u64)>,
    /// `--sysctl`.
    pub sysctl: Vec<(String, String)>,
    /// `--shm-size` in bytes.
    pub shm_size: Option<i64>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--device` nodes, resolved with [`resolve_devices`].
    pub devices: Vec<Device>,
    /// The device cgroup rules, in order, for `linux.resources.devices` (the engine applies
    /// the same list to the cgroup).
    pub device_rules: Vec<hako_cgroups::DeviceRule>,
}

/// A host device node to recreate in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Path in the container.
    pub path: PathBuf,
    /// A block device (else a character device).
    pub block: bool,
    /// Major number.
    pub major: i64,
    /// Minor number.
    pub minor: i64,
    /// Permission bits of the host's node.
    pub file_mode: u32,
    /// Owner of the host's node.
    pub uid: u32,
    /// Group of the host's node.
    pub gid: u32,
    /// Device cgroup access (`r`, `w`, `m`).
    pub permissions: String,
}

fn m(dest: &str, typ: &str, source: &str, opts: &[&str]) -> oci_spec::runtime::Mount {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()
        .expect("static mount is valid")
}

/// Builds the spec.
pub fn build(input: &SpecInput<'_>) -> Result<Spec, oci_spec::OciSpecError> {
    let caps = input.caps.clone();
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        // Unset sets would take oci-spec's defaults (which raise ambient capabilities); Docker
        // gives none.
        .inheritable(HashSet::new())
        .ambient(HashSet::new())
        .build()?;
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(
            UserBuilder::default()
                .uid(input.uid)
                .gid(input.gid)
                .additional_gids(input.additional_gids.clone())
                .build()?,
        )
        .args(input.args.clone())
        .env(input.env.clone())
        .cwd(input.cwd)
        .capabilities(capabilities)
        .no_new_privileges(input.no_new_privileges)
        .rlimits(
            input
                .rlimits
                .iter()
                .map(|(name, soft, hard)| {
                    let typ = name.parse::<PosixRlimitType>().map_err(|_| {
                        oci_spec::OciSpecError::Other(format!("unknown rlimit {name}"))
                    })?;
                    PosixRlimitBuilder::default()
                        .typ(typ)
                        .soft(*soft)
                        .hard(*hard)
                        .build()
                })
                .collect::<Result<Vec<_>, _>>()?,
        )
        .build()?;

    let mut mounts = vec![
        m("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        m(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        m(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        m(
            "/sys",
            "sysfs",
            "sysfs",
            if input.privileged {
                &["nosuid", "noexec", "nodev", "rw"]
            } else {
                &["nosuid", "noexec", "nodev", "ro"]
            },
        ),
        // The container's own cgroups, read-only as Docker mounts them (read-write only when
        // privileged); the runtime shows only the container's directories, never a hierarchy's
        // root or its release_agent.
        m(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            if input.privileged {
                &["nosuid", "noexec", "nodev", "relatime", "rw"]
            } else {
                &["nosuid", "noexec", "nodev", "relatime", "ro"]
            },
        ),
        m(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        m(
            "/dev/shm",
            "tmpfs",
            "shm",
            &[
                "nosuid",
                "noexec",
                "nodev",
                "mode=1777",
                &format!("size={}", input.shm_size.unwrap_or(64 << 20)),
            ],
        ),
    ];
    for (dest, src) in &input.etc_files {
        mounts.push(m(
            dest,
            "bind",
            &src.to_string_lossy(),
            &["rbind", "rprivate"],
        ));
    }
    mounts.extend(input.extra_mounts.iter().cloned());

    let mut namespaces = Vec::new();
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ] {
        namespaces.push(LinuxNamespaceBuilder::default().typ(t).build()?);
    }
    if input.net == NetMode::Isolated {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .build()?,
        );
    }

    let mut devices = hako_runtime::DEFAULT_DEVICES
        .iter()
        .map(|(p, ma, mi)| {
            LinuxDeviceBuilder::default()
                .path(*p)
                .typ(LinuxDeviceType::C)
                .major(*ma)
                .minor(*mi)
                .file_mode(0o666u32)
                .uid(0u32)
                .gid(0u32)
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    if input.privileged {
        devices.extend(host_devices()?);
    }
    for d in &input.devices {
        devices.push(
            LinuxDeviceBuilder::default()
                .path(&d.path)
                .typ(if d.block {
                    LinuxDeviceType::B
                } else {
                    LinuxDeviceType::C
                })
                .major(d.major)
                .minor(d.minor)
                .file_mode(d.file_mode)
                .uid(d.uid)
                .gid(d.gid)
                .build()?,
        );
    }
    let device_rules = input
        .device_rules
        .iter()
        .map(|r| {
            let mut b = LinuxDeviceCgroupBuilder::default()
                .allow(r.allow)
                .access(r.access.clone());
            b = match r.kind {
                'b' => b.typ(LinuxDeviceType::B),
                'c' => b.typ(LinuxDeviceType::C),
                _ => b.typ(LinuxDeviceType::A),
            };
            if let Some(major) = r.major {
                b = b.major(major);
            }
            if let Some(minor) = r.minor {
                b = b.minor(minor);
            }
            b.build()
        })
        .collect::<Result<Vec<_>, _>>()?;

    let (masked, readonly): (&[&str], &[&str]) = if input.privileged {
        (&[], &[])
    } else {
        (MASKED, READONLY)
    };
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .devices(devices)
        .resources(
            LinuxResourcesBuilder::default()
                .devices(device_rules)
                .build()?,
        )
        .sysctl(
            input
                .sysctl
                .iter()
                .cloned()
                .collect::<std::collections::HashMap<_, _>>(),
        )
        .masked_paths(masked.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .readonly_paths(readonly.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .build()?;

    SpecBuilder::default()
        .version("1.2.0")
        .root(
            RootBuilder::default()
                .path(input.rootfs)
                .readonly(input.readonly_root)
                .build()?,
        )
        .process(process)
        .hostname(input.hostname)
        .mounts(mounts)
        .linux(linux)
        .build()
}

/// Docker's error for a `--device` it cannot use.
fn device_error(host: &str, why: &str) -> crate::Error {
    crate::Error::Invalid(format!(
        "error gathering device information while adding custom device {host:?}: {why}"
    ))
}

/// The device at `meta` (already known to be one), at `path` in the container.
fn device_from(meta: &std::fs::Metadata, path: PathBuf, permissions: &str) -> Option<Device> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let ft = meta.file_type();
    if !ft.is_char_device() && !ft.is_block_device() {
        return None;
    }
    let rdev = meta.rdev();
    Some(Device {
        path,
        block: ft.is_block_device(),
        major: i64::from(libc::major(rdev)),
        minor: i64::from(libc::minor(rdev)),
        file_mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        permissions: permissions.to_string(),
    })
}

/// Looks up the host's nodes for `--device` requests, as Docker does when a container starts:
/// a device node (symlinks followed) becomes one device; a directory gives every device
/// below it (symlinks in it are not followed), at the same place under the container path.
/// A privileged container already has the host's /dev, so requests for the same path add
/// nothing there.
pub(crate) fn resolve_devices(
    requests: &[crate::options::DeviceRequest],
    privileged: bool,
) -> crate::Result<Vec<Device>> {
    let mut out = Vec::new();
    for r in requests {
        if privileged && r.host == r.container {
            continue;
        }
        // A privileged container's rules allow everything; Docker ignores custom permissions.
        let permissions = if privileged { "rwm" } else { &r.permissions };
        let meta = std::fs::metadata(&r.host).map_err(|e| {
            // Docker's text is Go's: the bare strerror, in lower case.
            let text = e.to_string();
            let text = text.split(" (os error").next().unwrap_or(&text);
            device_error(&r.host, &text.to_lowercase())
        })?;
        if meta.is_dir() {
            let mut stack = vec![PathBuf::from(&r.host)];
            while let Some(dir) = stack.pop() {
                let Ok(entries) = std::fs::read_dir(&dir) else {
                    continue;
                };
                for e in entries.flatten() {
                    let p = e.path();
                    let Ok(m) = std::fs::symlink_metadata(&p) else {
                        continue;
                    };
                    if m.is_dir() {
                        stack.push(p);
                        continue;
                    }
                    let rel = p.strip_prefix(&r.host).unwrap_or(&p);
                    if let Some(d) = device_from(&m, Path::new(&r.container).join(rel), permissions)
                    {
                        out.push(d);
                    }
                }
            }
            continue;
        }
        let d = device_from(&meta, PathBuf::from(&r.container), permissions)
            .ok_or_else(|| device_error(&r.host, "not a device node"))?;
        out.push(d);
    }
    Ok(out)
}

/// The host's device nodes in /dev and /dev/net, for `--privileged` (Docker gives them all).
fn host_devices() -> Result<Vec<oci_spec::runtime::LinuxDevice>, oci_spec::OciSpecError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    for dir in ["/dev", "/dev/net"] {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            let ft = meta.file_type();
            let typ = if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            let rdev = meta.rdev();
            out.push(
                LinuxDeviceBuilder::default()
                    .path(e.path())
                    .typ(typ)
                    .major(libc::major(rdev) as i64)
                    .minor(libc::minor(rdev) as i64)
                    .file_mode(meta.mode() & 0o7777)
                    .uid(meta.uid())
                    .gid(meta.gid())
                    .build()?,
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_resolve_from_the_host() {
        let req = |host: &str, container: &str, permissions: &str| crate::options::DeviceRequest {
            host: host.into(),
            container: container.into(),
            permissions: permissions.into(),
        };
        let d = resolve_devices(&[req("/dev/null", "/dev/nothing", "rw")], false).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].path.as_path(), d[0].block, d[0].major, d[0].minor),
            (Path::new("/dev/nothing"), false, 1, 3)
        );
        assert_eq!(d[0].permissions, "rw");
        // Privileged: the host's /dev is there already; another path still gets its node.
        assert!(resolve_devices(&[req("/dev/null", "/dev/null", "r")], true)
            .unwrap()
            .is_empty());
        let d = resolve_devices(&[req("/dev/null", "/dev/n2", "r")], true).unwrap();
        assert_eq!(d[0].permissions, "rwm");
        let e = resolve_devices(&[req("/etc/hostname", "/x", "r")], false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "error gathering device information while adding custom device \"/etc/hostname\": not a device node"
        );

        // A directory gives the devices below it, at the same place under the container path.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        std::os::unix::fs::symlink("/dev/zero", dir.path().join("link")).unwrap();
        let made = nix::sys::stat::mknod(
            &dir.path().join("sub/null"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::from_bits_truncate(0o644),
            nix::sys::stat::makedev(1, 3),
        );
        if made.is_err() {
            eprintln!("cannot mknod here ({made:?}): the directory case is skipped");
            return;
        }
        let host = dir.path().to_str().unwrap();
        let d = resolve_devices(&[req(host, "/dev/snd", "rwm")], false).unwrap();
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].path, Path::new("/dev/snd/sub/null"));
        assert_eq!(d[0].file_mode, 0o644);
    }

    #[test]
    fn docker_defaults() {
        let input = SpecInput {
            rootfs: Path::new("/r"),
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/",
            uid: 0,
            gid: 0,
            additional_gids: vec![],
            hostname: "abc",
            net: NetMode::Host,
            etc_files: [
                ("/etc/hosts", "/c/hosts".into()),
                ("/etc/hostname", "/c/hostname".into()),
                ("/etc/resolv.conf", "/c/resolv.conf".into()),
            ],
            readonly_root: false,
            extra_mounts: vec![],
            caps: DEFAULT_CAPS.into_iter().collect(),
            privileged: false,
            rlimits: vec![("RLIMIT_NOFILE".into(), 10, 20)],
            sysctl: vec![],
            shm_size: None,
            no_new_privileges: false,
            devices: vec![],
            device_rules: crate::limits::device_rules(false, &[], &[]),
        };
        let spec = build(&input).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let ns: Vec<_> = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect();
        assert!(!ns.contains(&LinuxNamespaceType::Network));
        assert!(ns.contains(&LinuxNamespaceType::Cgroup));
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(!caps
            .bounding()
            .as_ref()
            .unwrap()
            .contains(&Capability::SysAdmin));
        let mounts = spec.mounts().as_ref().unwrap();
        assert_eq!(mounts.len(), 10);
        let cgroup = mounts
            .iter()
            .find(|m| m.destination() == Path::new("/sys/fs/cgroup"))
            .expect("a cgroup mount");
        assert_eq!(cgroup.typ().as_deref(), Some("cgroup"));
        assert!(cgroup
            .options()
            .as_ref()
            .unwrap()
            .contains(&"ro".to_string()));
        // The device rules are in the spec, deny-all first.
        let rules = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert_eq!(rules.len(), 13);
        assert!(!rules[0].allow());
        assert_eq!(rules[0].typ(), Some(LinuxDeviceType::A));
        assert_eq!(rules[0].access().as_deref(), Some("rwm"));
        assert!(rules[1..].iter().all(|r| r.allow()));
    }
}
