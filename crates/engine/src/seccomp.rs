//! `--security-opt seccomp=…`: Docker-format seccomp profiles (ours by default) turned into the
//! OCI `linux.seccomp` the runtime compiles.
//!
//! Docker's format is OCI's plus per-rule `includes`/`excludes` (capabilities, architectures,
//! minimum kernel) and an `archMap`; those are resolved here, for the container's own
//! capabilities, so the runtime only sees plain rules. An OCI-format profile is a Docker one
//! without the extras, so both load.

use crate::{Error, Result};
use oci_spec::runtime::{Capability, LinuxSeccomp};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Our default profile (see the file's own comment).
const DEFAULT: &str = include_str!("seccomp/default.json");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Profile {
    default_action: String,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<String>>,
    arch_map: Option<Vec<ArchMap>>,
    #[serde(default)]
    syscalls: Vec<Rule>,
    flags: Option<Vec<String>>,
    listener_path: Option<String>,
    #[serde(rename = "listenerMetadata")]
    _listener_metadata: Option<serde::de::IgnoredAny>,
    #[serde(rename = "comment")]
    _comment: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ArchMap {
    architecture: String,
    #[serde(default)]
    sub_architectures: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Rule {
    #[serde(default)]
    names: Vec<String>,
    /// Docker's older single-name form.
    name: Option<String>,
    action: String,
    errno_ret: Option<u32>,
    #[serde(default)]
    args: Vec<Value>,
    #[serde(default)]
    includes: Filter,
    #[serde(default)]
    excludes: Filter,
    #[serde(rename = "comment")]
    _comment: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Filter {
    #[serde(default)]
    caps: Vec<String>,
    #[serde(default)]
    arches: Vec<String>,
    min_kernel: Option<String>,
}

/// What the container runs under.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Seccomp {
    /// hako's default profile.
    #[default]
    Default,
    /// `seccomp=unconfined` (and `--privileged`): no filter.
    Unconfined,
    /// `seccomp=FILE`: the file's text, read when the container was created.
    Custom(String),
}

impl Seccomp {
    /// Parses the value of `--security-opt seccomp=VALUE`, reading and checking a profile file.
    pub fn from_option(value: &str) -> Result<Seccomp> {
        if value == "unconfined" {
            return Ok(Seccomp::Unconfined);
        }
        let text = std::fs::read_to_string(value).map_err(|e| {
            Error::Invalid(format!("opening seccomp profile ({value}) failed: {e}"))
        })?;
        parse(&text)?;
        Ok(Seccomp::Custom(text))
    }

    /// The `linux.seccomp` for a container with capabilities `caps`, or `None` for none.
    pub(crate) fn resolve(&self, caps: &HashSet<Capability>) -> Result<Option<LinuxSeccomp>> {
        let text = match self {
            Seccomp::Unconfined => return Ok(None),
            Seccomp::Default => DEFAULT,
            Seccomp::Custom(t) => t,
        };
        let caps: HashSet<String> = caps
            .iter()
            .filter_map(|c| serde_json::to_value(c).ok())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        // Our own profile was checked by its tests: only a user's is converted a second time,
        // for its errors.
        let profile = match self {
            Seccomp::Default => decode(text)?,
            _ => parse(text)?,
        };
        to_oci(&profile, &caps, &kernel_release()).map(Some)
    }
}

fn decode_err(e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("decoding seccomp profile failed: {e}"))
}

fn decode(text: &str) -> Result<Profile> {
    let p: Profile = serde_json::from_str(text).map_err(decode_err)?;
    if p.listener_path.is_some() {
        return Err(decode_err(
            "listenerPath (SCMP_ACT_NOTIFY agents) is not supported",
        ));
    }
    Ok(p)
}

fn parse(text: &str) -> Result<Profile> {
    let p = decode(text)?;
    // Actions and operators are checked by converting once, for no capabilities.
    to_oci(&p, &HashSet::new(), "")?;
    Ok(p)
}

#[cfg(target_arch = "x86_64")]
const NATIVE: (&str, &str) = ("SCMP_ARCH_X86_64", "amd64");
#[cfg(target_arch = "aarch64")]
const NATIVE: (&str, &str) = ("SCMP_ARCH_AARCH64", "arm64");

pub(crate) fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// "6.1.0-18-amd64" → (6, 1); an unparsable part counts as 0.
pub(crate) fn kernel_version(s: &str) -> (u32, u32) {
    let mut it = s
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn to_oci(p: &Profile, caps: &HashSet<String>, kernel: &str) -> Result<LinuxSeccomp> {
    let arches: Vec<String> = match (&p.architectures, &p.arch_map) {
        (Some(a), _) => a.clone(),
        (None, Some(map)) => map
            .iter()
            .filter(|m| m.architecture == NATIVE.0)
            .flat_map(|m| {
                std::iter::once(m.architecture.clone()).chain(m.sub_architectures.clone())
            })
            .collect(),
        (None, None) => Vec::new(),
    };
    let applies = |r: &Rule| {
        let inc = &r.includes;
        let exc = &r.excludes;
        let old_kernel = |f: &Filter| {
            f.min_kernel
                .as_deref()
                .is_some_and(|k| !kernel.is_empty() && kernel_version(kernel) < kernel_version(k))
        };
        inc.caps.iter().all(|c| caps.contains(c))
            && (inc.arches.is_empty() || inc.arches.iter().any(|a| a == NATIVE.1))
            && !old_kernel(inc)
            && !exc.caps.iter().any(|c| caps.contains(c))
            && !exc.arches.iter().any(|a| a == NATIVE.1)
            && !(exc.min_kernel.is_some() && !kernel.is_empty() && !old_kernel(exc))
    };
    let mut syscalls = Vec::new();
    for r in p.syscalls.iter().filter(|r| applies(r)) {
        let names: Vec<&String> = r.names.iter().chain(r.name.iter()).collect();
        if names.is_empty() {
            return Err(decode_err("a syscall rule names no syscalls"));
        }
        let mut rule = json!({"names": names, "action": r.action});
        if let Some(e) = r.errno_ret {
            rule["errnoRet"] = e.into();
        }
        if !r.args.is_empty() {
            rule["args"] = r.args.clone().into();
        }
        syscalls.push(rule);
    }
    let mut oci = json!({"defaultAction": p.default_action, "syscalls": syscalls});
    if !arches.is_empty() {
        oci["architectures"] = arches.into();
    }
    if let Some(e) = p.default_errno_ret {
        oci["defaultErrnoRet"] = e.into();
    }
    if let Some(f) = &p.flags {
        oci["flags"] = f.clone().into();
    }
    serde_json::from_value(oci).map_err(decode_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_allowed(s: &LinuxSeccomp) -> HashSet<String> {
        s.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.args().as_ref().is_none_or(|a| a.is_empty()))
            .filter(|r| format!("{:?}", r.action()) == "ScmpActAllow")
            .flat_map(|r| r.names().clone())
            .collect()
    }

    #[test]
    fn default_profile_gates_admin_calls_on_the_capability() {
        let plain = Seccomp::Default
            .resolve(&[Capability::Chown, Capability::SysChroot].into())
            .unwrap()
            .unwrap();
        let allowed = names_allowed(&plain);
        assert!(allowed.contains("read") && allowed.contains("chroot"));
        for denied in [
            "mount",
            "unshare",
            "setns",
            "reboot",
            "init_module",
            "kexec_load",
        ] {
            assert!(!allowed.contains(denied), "{denied}");
        }
        let admin = Seccomp::Default
            .resolve(&[Capability::SysAdmin].into())
            .unwrap()
            .unwrap();
        let allowed = names_allowed(&admin);
        assert!(allowed.contains("mount") && allowed.contains("clone3"));
        assert!(!allowed.contains("chroot"));
        assert_eq!(
            plain.architectures().as_ref().map(|a| a.len()),
            Some(if cfg!(target_arch = "x86_64") { 3 } else { 2 })
        );
    }

    #[test]
    fn default_profile_is_valid() {
        parse(DEFAULT).unwrap();
    }

    #[test]
    fn unconfined_has_no_filter() {
        assert!(Seccomp::Unconfined
            .resolve(&HashSet::new())
            .unwrap()
            .is_none());
    }

    #[test]
    fn bad_profiles_are_refused_with_a_reason() {
        for (text, why) in [
            ("{not json", "key must be a string"),
            ("{}", "missing field `defaultAction`"),
            (r#"{"defaultAction": "SCMP_ACT_NOPE"}"#, "SCMP_ACT_NOPE"),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"action": "SCMP_ACT_ERRNO"}]}"#,
                "names no syscalls",
            ),
            (
                r#"{"defaultAction": "SCMP_ACT_ALLOW", "bogus": 1}"#,
                "bogus",
            ),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with("decoding seccomp profile failed: "), "{e}");
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn min_kernel_and_arches() {
        let p = parse(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "5.8"}},
                {"names": ["b"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
                {"names": ["c"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["s390x"]}}
            ]}"#,
        )
        .unwrap();
        let on = |k| names_allowed(&to_oci(&p, &HashSet::new(), k).unwrap());
        assert_eq!(on("6.1.0-18-amd64"), ["a", "c"].map(String::from).into());
        assert_eq!(on("4.19.0"), ["c"].map(String::from).into());
        assert_eq!(kernel_version("5.10.0-28-cloud-amd64"), (5, 10));
    }
}
