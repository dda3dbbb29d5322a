//! Whether this process is rootless hako: an ordinary user, or the engine running as root of
//! the user namespace an ordinary user's `hako` entered (uid 0 inside is a host uid other than
//! 0). Code that would use a privilege only the initial user namespace has (trusted xattrs,
//! cgroup v1, host bridges) asks here.

use std::ffi::CStr;
use std::sync::OnceLock;

/// One line of `/proc/self/uid_map`: `size` ids from `inside` are `outside` in the parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapLine {
    /// First id inside.
    pub inside: u32,
    /// First id outside.
    pub outside: u32,
    /// Number of ids.
    pub size: u32,
}

/// Parses a `uid_map`/`gid_map` text; lines that do not read as three numbers are skipped.
pub fn parse_map(text: &str) -> Vec<MapLine> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(str::parse::<u32>);
            Some(MapLine {
                inside: f.next()?.ok()?,
                outside: f.next()?.ok()?,
                size: f.next()?.ok()?,
            })
        })
        .collect()
}

/// The identity map of the initial user namespace.
fn is_initial(map: &[MapLine]) -> bool {
    matches!(
        map,
        [MapLine {
            inside: 0,
            outside: 0,
            size: u32::MAX
        }]
    )
}

#[derive(Clone)]
struct Userns {
    uid_map: Vec<MapLine>,
    gid_map: Vec<MapLine>,
    rootless: bool,
}

fn read_state() -> Userns {
    let read = |f: &str| parse_map(&std::fs::read_to_string(f).unwrap_or_default());
    let uid_map = read("/proc/self/uid_map");
    let gid_map = read("/proc/self/gid_map");
    let euid = effective_uid();
    let root_is_host_root = uid_map
        .iter()
        .any(|m| m.inside == 0 && m.outside == 0 && m.size > 0);
    let rootless = euid != 0 || (!uid_map.is_empty() && !root_is_host_root);
    Userns {
        uid_map,
        gid_map,
        rootless,
    }
}

/// The state, cached once it can no longer change: an ordinary user outside any user
/// namespace may still join one (rootless hako does, at the start of `main`), so that state
/// is read afresh each time.
fn this() -> std::borrow::Cow<'static, Userns> {
    static THIS: OnceLock<Userns> = OnceLock::new();
    if let Some(t) = THIS.get() {
        return std::borrow::Cow::Borrowed(t);
    }
    let t = read_state();
    let may_change = t.rootless && (t.uid_map.is_empty() || is_initial(&t.uid_map));
    if may_change {
        return std::borrow::Cow::Owned(t);
    }
    std::borrow::Cow::Borrowed(THIS.get_or_init(|| t))
}

/// The effective uid, from `/proc/self/status` (this crate has no libc); `u32::MAX` if unread.
fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2)?.parse().ok()
        })
        .unwrap_or(u32::MAX)
}

/// Whether this process works without the host's root: an ordinary user, or inside a user
/// namespace whose root is not the host's root.
pub fn rootless() -> bool {
    this().rootless
}

/// Whether this process runs in a user namespace other than the initial one.
pub fn in_user_namespace() -> bool {
    let t = this();
    !t.uid_map.is_empty() && !is_initial(&t.uid_map)
}

/// This process's uid map (empty when it cannot be read).
pub fn uid_map() -> Vec<MapLine> {
    this().uid_map.clone()
}

/// This process's gid map (empty when it cannot be read).
pub fn gid_map() -> Vec<MapLine> {
    this().gid_map.clone()
}

/// The xattr overlayfs reads to make a directory opaque: `trusted.overlay.opaque`, which only
/// the initial user namespace's root may set, or `user.overlay.opaque` for an overlay mounted
/// with `userxattr` inside a user namespace (Linux 5.11+).
pub fn overlay_opaque_xattr() -> &'static CStr {
    if in_user_namespace() {
        c"user.overlay.opaque"
    } else {
        c"trusted.overlay.opaque"
    }
}

/// Whether overlays need `userxattr`: mounted inside a user namespace.
pub fn overlay_userxattr() -> bool {
    in_user_namespace()
}

/// Whether container id `id` exists in `map`.
pub fn mapped(map: &[MapLine], id: u32) -> bool {
    map.iter()
        .any(|m| id >= m.inside && u64::from(id) < u64::from(m.inside) + u64::from(m.size))
}

/// The ids `map` has, as `0-65536` (comma-separated ranges).
pub fn describe(map: &[MapLine]) -> String {
    let mut lines = map.to_vec();
    lines.sort_by_key(|m| m.inside);
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for m in lines {
        let (start, end) = (u64::from(m.inside), u64::from(m.inside) + u64::from(m.size));
        match ranges.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => ranges.push((start, end)),
        }
    }
    ranges
        .iter()
        .map(|(s, e)| format!("{s}-{}", e.max(&(s + 1)) - 1))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_read_and_describe() {
        let m =
            parse_map("         0       1000          1\n         1 1000000000      65536\nbad\n");
        assert_eq!(m.len(), 2);
        assert_eq!(describe(&m), "0-65536");
        assert!(mapped(&m, 65532));
        assert!(mapped(&m, 0));
        assert!(!mapped(&m, 65537));
        assert!(is_initial(&parse_map("0 0 4294967295\n")));
        assert!(!is_initial(&m));
    }
}
