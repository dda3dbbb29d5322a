//! Linux security module labels of the spec: AppArmor's `process.apparmorProfile`, SELinux's
//! `process.selinuxLabel` and `linux.mountLabel`.
//!
//! Where the host runs the module, they are applied: the process labels are written to
//! `/proc/thread-self/attr/…/exec` right before the command is exec'd (the kernel switches at
//! exec), the mount label goes into each filesystem mount's `context=` option. Where it does not,
//! the runtime does what runc does, and says so: a process label fails the create (runc fails
//! too, with a less direct message), a mount label is ignored with a warning (runc ignores it
//! silently).

use crate::mounts::MountPlan;
use crate::Error;
use oci_spec::runtime::Spec;
use std::ffi::CString;
use std::path::Path;

/// Whether AppArmor is the running LSM (the test runc and libapparmor make).
pub(crate) fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|b| b.first() == Some(&b'Y'))
}

/// Whether SELinux is enabled: selinuxfs is mounted (where libselinux looks first) and
/// this process has a context other than the kernel's.
pub(crate) fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
        && std::fs::read_to_string("/proc/thread-self/attr/current")
            .is_ok_and(|c| !c.trim_end_matches('\0').trim().is_empty() && c.trim() != "kernel")
}

/// The labels of a spec, decided in the parent.
#[derive(Debug, Default)]
pub(crate) struct Labels {
    /// (file under `/proc/thread-self/`, value) to write before the exec.
    pub exec: Vec<(&'static str, CString)>,
    /// `linux.mountLabel` when SELinux can apply it.
    pub mount_label: Option<String>,
    pub warnings: Vec<String>,
}

impl Labels {
    pub(crate) fn from_spec(spec: &Spec) -> Result<Self, Error> {
        // The host is only looked at when the spec asks for a label: `hako run` never does.
        Self::decide(spec, apparmor_enabled, selinux_enabled)
    }

    fn decide(
        spec: &Spec,
        apparmor: impl Fn() -> bool,
        selinux: impl Fn() -> bool,
    ) -> Result<Self, Error> {
        let mut out = Labels::default();
        let process = spec.process().as_ref();
        let cstr = |s: String, what: &str| {
            CString::new(s).map_err(|_| Error::InvalidSpec(format!("{what} contains a NUL byte")))
        };
        if let Some(profile) = process
            .and_then(|p| p.apparmor_profile().as_deref())
            .filter(|p| !p.is_empty())
        {
            if !apparmor() {
                return Err(Error::InvalidSpec(format!(
                    "process.apparmorProfile {profile:?} cannot be applied: AppArmor is not enabled on this host"
                )));
            }
            // The interface of the AppArmor-specific directory when the kernel has it, the
            // shared one otherwise (both take the same "exec PROFILE" command).
            let file = if Path::new("/proc/thread-self/attr/apparmor/exec").exists() {
                "attr/apparmor/exec"
            } else {
                "attr/exec"
            };
            out.exec.push((
                file,
                cstr(format!("exec {profile}"), "process.apparmorProfile")?,
            ));
        }
        if let Some(label) = process
            .and_then(|p| p.selinux_label().as_deref())
            .filter(|l| !l.is_empty())
        {
            if !selinux() {
                return Err(Error::InvalidSpec(format!(
                    "process.selinuxLabel {label:?} cannot be applied: SELinux is not enabled on this host"
                )));
            }
            out.exec
                .push(("attr/exec", cstr(label.to_owned(), "process.selinuxLabel")?));
        }
        if let Some(label) = spec
            .linux()
            .as_ref()
            .and_then(|l| l.mount_label().as_deref())
            .filter(|l| !l.is_empty())
        {
            if selinux() {
                out.mount_label = Some(label.to_owned());
            } else {
                out.warnings.push(format!(
                    "linux.mountLabel {label:?} is ignored: SELinux is not enabled on this host"
                ));
            }
        }
        Ok(out)
    }
}

/// Adds the SELinux `context=` option to a filesystem mount, as runc does: not to binds
/// (the kernel ignores data there), proc and sysfs (which take no context), mqueue (labelled
/// through its mount point instead) or cgroup views (which are binds here).
pub(crate) fn label_mount(m: &mut MountPlan, label: &str) {
    if m.is_bind() {
        return;
    }
    if matches!(
        m.fstype.as_deref(),
        None | Some("proc") | Some("sysfs") | Some("mqueue") | Some("cgroup") | Some("cgroup2")
    ) {
        return;
    }
    if !m.data.is_empty() {
        m.data.push(',');
    }
    m.data.push_str(&format!("context=\"{label}\""));
}

/// Writes the process labels; the kernel applies them at the next exec.
pub(crate) fn apply_exec(labels: &[(&'static str, CString)]) -> Result<(), String> {
    for (file, value) in labels {
        let path = format!("/proc/thread-self/{file}");
        std::fs::write(&path, value.as_bytes())
            .map_err(|e| format!("write {path} (LSM label {value:?}): {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        let mut base = serde_json::json!({"ociVersion": "1.2.0", "root": {"path": "/"},
            "process": {"cwd": "/", "args": ["true"], "user": {"uid": 0, "gid": 0}}});
        for (k, val) in v.as_object().unwrap() {
            match (base.get_mut(k), val) {
                (Some(serde_json::Value::Object(b)), serde_json::Value::Object(o)) => {
                    for (k2, v2) in o {
                        b.insert(k2.clone(), v2.clone());
                    }
                }
                _ => base[k] = val.clone(),
            }
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn process_labels_fail_where_the_module_is_off_and_are_written_where_on() {
        let aa = spec(serde_json::json!({"process": {"apparmorProfile": "hako-test"}}));
        let e = Labels::decide(&aa, || false, || false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("AppArmor is not enabled"), "{e}");
        let l = Labels::decide(&aa, || true, || false).unwrap();
        assert_eq!(l.exec.len(), 1);
        assert!(l.exec[0].0.ends_with("exec"));
        assert_eq!(l.exec[0].1.to_str().unwrap(), "exec hako-test");

        let se = spec(
            serde_json::json!({"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}),
        );
        let e = Labels::decide(&se, || false, || false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("SELinux is not enabled"), "{e}");
        let l = Labels::decide(&se, || false, || true).unwrap();
        assert_eq!(
            l.exec,
            vec![(
                "attr/exec",
                CString::new("system_u:system_r:container_t:s0").unwrap()
            )]
        );
    }

    #[test]
    fn mount_label_warns_where_selinux_is_off_and_labels_filesystems_where_on() {
        let s = spec(
            serde_json::json!({"linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}),
        );
        let off = Labels::decide(&s, || false, || false).unwrap();
        assert!(off.mount_label.is_none());
        assert_eq!(off.warnings.len(), 1);
        assert!(off.warnings[0].contains("ignored"), "{:?}", off.warnings);
        let on = Labels::decide(&s, || false, || true).unwrap();
        let label = on.mount_label.unwrap();
        assert!(on.warnings.is_empty());

        let opts = |o: &[&str]| o.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut tmpfs =
            crate::mounts::plan("/dev".into(), Some("tmpfs"), None, &opts(&["mode=755"]));
        label_mount(&mut tmpfs, &label);
        assert_eq!(
            tmpfs.data,
            "mode=755,context=\"system_u:object_r:container_file_t:s0\""
        );
        let mut proc = crate::mounts::plan("/proc".into(), Some("proc"), None, &[]);
        label_mount(&mut proc, &label);
        assert_eq!(proc.data, "");
        let mut bind = crate::mounts::plan(
            "/x".into(),
            Some("bind"),
            Some("/y".into()),
            &opts(&["rbind"]),
        );
        label_mount(&mut bind, &label);
        assert_eq!(bind.data, "");
    }
}
