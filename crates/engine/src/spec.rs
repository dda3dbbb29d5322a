//! The OCI runtime spec hako gives a container: Docker's defaults for mounts, devices,
//! capabilities, masked paths and namespaces, plus the container's process.

use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceBuilder, LinuxDeviceType,
    LinuxNamespaceBuilder, LinuxNamespaceType, MountBuilder, PosixRlimitBuilder, PosixRlimitType,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
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
    /// `--device HOST[:CONTAINER]`: (host path, path in the container).
    pub devices: Vec<(PathBuf, PathBuf)>,
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

    let mut devices = [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
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
    for (host, inside) in &input.devices {
        devices.push(device_node(host, inside)?);
    }

    let (masked, readonly): (&[&str], &[&str]) = if input.privileged {
        (&[], &[])
    } else {
        (MASKED, READONLY)
    };
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .devices(devices)
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

/// A host device node recreated at `inside` (same type, numbers, mode and owner).
fn device_node(
    host: &Path,
    inside: &Path,
) -> Result<oci_spec::runtime::LinuxDevice, oci_spec::OciSpecError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let meta = std::fs::metadata(host).map_err(|e| {
        let text = e.to_string();
        let text = text
            .split(" (os error")
            .next()
            .unwrap_or(&text)
            .to_lowercase();
        oci_spec::OciSpecError::Other(format!(
            "error gathering device information while adding custom device {:?}: {text}",
            host.display().to_string()
        ))
    })?;
    let typ = if meta.file_type().is_char_device() {
        LinuxDeviceType::C
    } else if meta.file_type().is_block_device() {
        LinuxDeviceType::B
    } else {
        return Err(oci_spec::OciSpecError::Other(format!(
            "{} is not a device node",
            host.display()
        )));
    };
    let rdev = meta.rdev();
    LinuxDeviceBuilder::default()
        .path(inside)
        .typ(typ)
        .major(libc::major(rdev) as i64)
        .minor(libc::minor(rdev) as i64)
        .file_mode(meta.mode() & 0o7777)
        .uid(meta.uid())
        .gid(meta.gid())
        .build()
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
        assert_eq!(spec.mounts().as_ref().unwrap().len(), 9);
    }
}
