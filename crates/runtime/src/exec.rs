//! The spec of a process that joins a running container (`hako exec`, `hako-runtime exec`):
//! one builder for both, so the two cannot drift apart.

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use std::path::PathBuf;

/// A process to start in a running container: its spec, and whether the container has no
/// mount namespace of its own (its root is then a chroot in the runtime's mount namespace,
/// reached through its init's `/proc/PID/root`: pass this as
/// [`SpawnOptions::enter_existing_root`](crate::SpawnOptions::enter_existing_root)).
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// The spec to spawn.
    pub spec: Spec,
    /// The container shares the runtime's mount namespace.
    pub enter_existing_root: bool,
}

/// The name of a namespace under `/proc/PID/ns/`.
fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Time => "time",
    }
}

/// Turns the spec of a running container whose init process is `init_pid` into the spec of
/// `process` joining it:
/// - every namespace the container has is joined through `/proc/<init_pid>/ns/*`: user and
///   time namespaces too (the runtime joins a user namespace first), so the process sees the
///   same ids, clocks, mounts, network and processes as the container's own;
/// - what only the container's creation sets up goes: the hostname and domainname (the UTS
///   namespace holds them), the mounts (the mount namespace holds them; the runtime leaves the
///   assembled root alone), the hooks, the clock offsets, the network devices moved in (the
///   network namespace holds them) and the mount label;
/// - the rest (capabilities' bounds, seccomp, rlimits, masked paths, cgroup resources) stays the
///   container's, as the caller left it in `container`.
///
/// The caller keeps `container.root` pointing at the container's root directory; a container
/// without a mount namespace is entered through `/proc/<init_pid>/root` instead.
pub fn exec_spec(container: &Spec, init_pid: i32, process: Process) -> ExecSpec {
    let mut spec = container.clone();
    spec.set_process(Some(process));
    spec.set_hostname(None);
    spec.set_domainname(None);
    spec.set_mounts(None);
    spec.set_hooks(None);
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    for ns in &mut namespaces {
        let path = format!("/proc/{init_pid}/ns/{}", proc_name(ns.typ()));
        ns.set_path(Some(PathBuf::from(path)));
    }
    let enter_existing_root = !namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::Mount);
    linux.set_namespaces(Some(namespaces));
    linux.set_time_offsets(None);
    // Moved in at create; the joined network namespace has them already.
    linux.set_net_devices(None);
    // The container's mounts exist already: their label is not the new process's concern.
    linux.set_mount_label(None);
    spec.set_linux(Some(linux));
    if enter_existing_root {
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_path(format!("/proc/{init_pid}/root").into());
        spec.set_root(Some(root));
    }
    ExecSpec {
        spec,
        enter_existing_root,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBuilder, LinuxNamespaceBuilder, MountBuilder, ProcessBuilder, RootBuilder, SpecBuilder,
    };

    fn container(types: &[LinuxNamespaceType]) -> Spec {
        let namespaces = types
            .iter()
            .map(|t| LinuxNamespaceBuilder::default().typ(*t).build().unwrap())
            .collect::<Vec<_>>();
        let mut devices = std::collections::HashMap::new();
        devices.insert(
            "eth9".to_string(),
            oci_spec::runtime::LinuxNetDevice::default(),
        );
        let mut offsets = std::collections::HashMap::new();
        offsets.insert(
            "monotonic".to_string(),
            oci_spec::runtime::LinuxTimeOffset::default(),
        );
        SpecBuilder::default()
            .hostname("box")
            .domainname("example.org")
            .root(
                RootBuilder::default()
                    .path("/var/lib/x/rootfs")
                    .build()
                    .unwrap(),
            )
            .mounts(vec![MountBuilder::default()
                .destination("/proc")
                .typ("proc")
                .build()
                .unwrap()])
            .linux(
                LinuxBuilder::default()
                    .namespaces(namespaces)
                    .time_offsets(offsets)
                    .net_devices(devices)
                    .mount_label("system_u:object_r:container_file_t:s0")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    fn process() -> Process {
        ProcessBuilder::default()
            .args(vec!["ps".to_string()])
            .build()
            .unwrap()
    }

    #[test]
    fn joins_every_namespace_the_container_has() {
        use LinuxNamespaceType as T;
        let all = [
            T::Pid,
            T::Network,
            T::Mount,
            T::Ipc,
            T::Uts,
            T::Cgroup,
            T::User,
            T::Time,
        ];
        let e = exec_spec(&container(&all), 42, process());
        let ns = e
            .spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .clone()
            .unwrap();
        let paths: Vec<(T, String)> = ns
            .iter()
            .map(|n| (n.typ(), n.path().clone().unwrap().display().to_string()))
            .collect();
        let want: Vec<(T, String)> = [
            (T::Pid, "pid"),
            (T::Network, "net"),
            (T::Mount, "mnt"),
            (T::Ipc, "ipc"),
            (T::Uts, "uts"),
            (T::Cgroup, "cgroup"),
            (T::User, "user"),
            (T::Time, "time"),
        ]
        .into_iter()
        .map(|(t, n)| (t, format!("/proc/42/ns/{n}")))
        .collect();
        assert_eq!(paths, want);
        assert!(!e.enter_existing_root);
        assert_eq!(
            e.spec.root().as_ref().unwrap().path(),
            &PathBuf::from("/var/lib/x/rootfs")
        );
        // Only what the creation set up is gone.
        assert_eq!(e.spec.hostname(), &None);
        assert_eq!(e.spec.domainname(), &None);
        assert_eq!(e.spec.mounts(), &None);
        let linux = e.spec.linux().as_ref().unwrap();
        assert_eq!(linux.time_offsets(), &None);
        assert_eq!(linux.net_devices(), &None);
        assert_eq!(linux.mount_label(), &None);
        assert_eq!(
            e.spec.process().as_ref().unwrap().args(),
            &Some(vec!["ps".to_string()])
        );
    }

    #[test]
    fn a_container_without_a_mount_namespace_is_entered_through_its_root() {
        use LinuxNamespaceType as T;
        let e = exec_spec(&container(&[T::Pid, T::Uts]), 7, process());
        assert!(e.enter_existing_root);
        assert_eq!(
            e.spec.root().as_ref().unwrap().path(),
            &PathBuf::from("/proc/7/root")
        );
        // Namespaces the container does not have are not made up.
        let ns = e
            .spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .clone()
            .unwrap();
        assert_eq!(ns.len(), 2);
    }
}
