//! Resolving an image's `USER` (`name`, `uid`, `name:group`, `uid:gid`) against the
//! `/etc/passwd` and `/etc/group` of its layers, as Docker does before starting the process.

use std::path::{Path, PathBuf};

/// Who the container process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// Numeric user id.
    pub uid: u32,
    /// Numeric primary group id.
    pub gid: u32,
    /// Supplementary groups that list the user as a member.
    pub additional_gids: Vec<u32>,
    /// Home directory from passwd, used for `HOME`.
    pub home: String,
}

/// Why a `USER` could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    /// A user name is not in the image's passwd file.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    NoUser(String),
    /// A group name is not in the image's group file.
    #[error("unable to find group {0}: no matching entries in group file")]
    NoGroup(String),
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(GroupEntry {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(String::from)
                    .collect(),
            })
        })
        .collect()
}

/// Reads `rel` from the topmost layer that has it (layers given topmost first). Reading a file
/// through the layer directories, rather than a mounted rootfs, keeps this off the mount path.
fn read_from_layers(layers: &[PathBuf], rel: &str) -> String {
    for l in layers {
        let p = l.join(rel);
        // A symlinked passwd could point anywhere on the host; only trust regular files.
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => return std::fs::read_to_string(&p).unwrap_or_default(),
            Ok(_) => return String::new(),
            Err(_) => continue,
        }
    }
    String::new()
}

/// Resolves `spec` (the image's or `--user`'s value; empty = root) using the layers' files.
pub fn resolve(spec: &str, layers_top_first: &[PathBuf]) -> Result<ResolvedUser, UserError> {
    let passwd = parse_passwd(&read_from_layers(layers_top_first, "etc/passwd"));
    let groups = parse_group(&read_from_layers(layers_top_first, "etc/group"));
    resolve_with(spec, &passwd, &groups)
}

fn resolve_with(
    spec: &str,
    passwd: &[PasswdEntry],
    groups: &[GroupEntry],
) -> Result<ResolvedUser, UserError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entry = match user.parse::<u32>() {
        Ok(uid) => passwd.iter().find(|p| p.uid == uid),
        Err(_) => Some(
            passwd
                .iter()
                .find(|p| p.name == user)
                .ok_or_else(|| UserError::NoUser(user.to_string()))?,
        ),
    };
    let uid = match entry {
        Some(e) => e.uid,
        None => user.parse().unwrap_or(0),
    };
    let mut gid = entry.map(|e| e.gid).unwrap_or(0);
    if let Some(g) = group.filter(|g| !g.is_empty()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| UserError::NoGroup(g.to_string()))?,
        };
    }
    // An explicit group replaces the supplementary list, as with Docker.
    let additional_gids = match (entry, group) {
        (Some(e), None) => {
            let mut v: Vec<u32> = groups
                .iter()
                .filter(|g| g.members.contains(&e.name) && g.gid != gid)
                .map(|g| g.gid)
                .collect();
            v.dedup();
            v
        }
        _ => Vec::new(),
    };
    let home = entry
        .map(|e| e.home.clone())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| if uid == 0 { "/root".into() } else { "/".into() });
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// Whether `p` is absolute (Docker rejects relative `-w`).
pub fn is_absolute(p: &str) -> bool {
    Path::new(p).is_absolute()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nhako:x:1234:1234:hako:/home/hako:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:hako,other\nhako:x:1234:\nstaff:x:50:\n";

    fn r(spec: &str) -> Result<ResolvedUser, UserError> {
        resolve_with(spec, &parse_passwd(PASSWD), &parse_group(GROUP))
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(r("").unwrap().uid, 0);
        assert_eq!(r("").unwrap().home, "/root");
        let h = r("hako").unwrap();
        assert_eq!(
            (h.uid, h.gid, h.additional_gids.clone(), h.home.as_str()),
            (1234, 1234, vec![10], "/home/hako")
        );
        assert_eq!(r("1234").unwrap().gid, 1234);
        // Unknown numeric ids are allowed, with gid 0 and HOME=/.
        let u = r("4242").unwrap();
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 0, "/"));
        assert_eq!(r("hako:staff").unwrap().gid, 50);
        assert_eq!(r("hako:staff").unwrap().additional_gids, Vec::<u32>::new());
        assert_eq!(r("1000:1000").unwrap().gid, 1000);
    }

    #[test]
    fn unknown_names_fail() {
        assert_eq!(r("ghost"), Err(UserError::NoUser("ghost".into())));
        assert_eq!(r("hako:ghosts"), Err(UserError::NoGroup("ghosts".into())));
    }

    #[test]
    fn topmost_layer_wins_and_symlinks_are_ignored() {
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("top");
        let bottom = d.path().join("bottom");
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::create_dir_all(bottom.join("etc")).unwrap();
        std::fs::write(bottom.join("etc/passwd"), "u:x:5:5::/h:/bin/sh\n").unwrap();
        assert_eq!(resolve("u", &[top.clone(), bottom.clone()]).unwrap().uid, 5);
        std::fs::write(top.join("etc/passwd"), "u:x:6:6::/h:/bin/sh\n").unwrap();
        assert_eq!(resolve("u", &[top.clone(), bottom.clone()]).unwrap().uid, 6);
        std::fs::remove_file(top.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", top.join("etc/passwd")).unwrap();
        assert!(resolve("root", &[top, bottom]).is_err());
    }
}
