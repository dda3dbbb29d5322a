//! Containers of an ordinary user: the user namespace that makes the caller root inside, its
//! id mappings, and how they get written.
//!
//! The kernel lets an unprivileged process write exactly one mapping of its own uid (and,
//! once `setgroups` is denied, of its own gid) into a child's user namespace. Any other id —
//! the subordinate ranges the administrator granted in `/etc/subuid` and `/etc/subgid` —
//! is mapped by the setuid helpers `newuidmap` and `newgidmap` (package `uidmap`), which check
//! the request against those files. This module decides which way a spec's mappings take,
//! checks them up front so that a refusal is one line naming the file, the package or the
//! range, and says for `hako info` which mechanisms this host offers.
//!
//! `/etc/subuid` and `/etc/subgid` are root-owned configuration (newuidmap itself trusts
//! them), so their parser is not fed hostile input and has no fuzz target; it still skips
//! rather than trusts lines it cannot read.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

/// The administrator's grants of subordinate user ids.
pub const SUBUID_FILE: &str = "/etc/subuid";
/// The administrator's grants of subordinate group ids.
pub const SUBGID_FILE: &str = "/etc/subgid";

/// Why a rootless container cannot have the user namespace it asks for. Each message is one
/// line naming what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum RootlessError {
    /// The user has no line in `/etc/subuid` (or `/etc/subgid`), so only its own id can be
    /// mapped.
    #[error("{file} has no entry for user {user}: ask the administrator for a range of subordinate ids (a line such as {user}:100000:65536)")]
    NoSubIds {
        /// The file without an entry.
        file: &'static str,
        /// The user's name.
        user: String,
    },
    /// `newuidmap` or `newgidmap` is not installed (or not in `$PATH`).
    #[error("{tool} is not installed (not found in $PATH): install the package uidmap to map the subordinate ids of {file}")]
    ToolMissing {
        /// `newuidmap` or `newgidmap`.
        tool: &'static str,
        /// The file the tool would read.
        file: &'static str,
    },
    /// A mapping names host ids the user was not granted.
    #[error("{kind} mapping of host ids {start}-{end} is outside what {file} grants user {user} ({granted})")]
    OutsideRanges {
        /// `uid` or `gid`.
        kind: &'static str,
        /// First host id of the mapping.
        start: u64,
        /// Last host id of the mapping.
        end: u64,
        /// The grants file.
        file: &'static str,
        /// The user's name.
        user: String,
        /// What the user has: its own id and its ranges.
        granted: String,
    },
    /// An id the container uses (e.g. an image's `USER 65532`) has no host id in the user
    /// namespace, whose size the user's range decides.
    #[error("{kind} {id} is beyond the user namespace: {file} grants user {user} {granted}, so ids 0-{max} exist in the container; ask for a range of at least {needed} ids")]
    IdBeyondRange {
        /// `uid` or `gid`.
        kind: &'static str,
        /// The id asked for.
        id: u32,
        /// The grants file.
        file: &'static str,
        /// The user's name.
        user: String,
        /// The range(s) granted, e.g. `the range 1000000000:65536`.
        granted: String,
        /// Highest id that exists inside.
        max: u64,
        /// Subordinate ids needed to reach `id` (root is the user's own).
        needed: u64,
    },
    /// `newuidmap`/`newgidmap` ran and refused; its own words.
    #[error("{tool} for pid {pid} failed: {message}")]
    Tool {
        /// The helper.
        tool: &'static str,
        /// The process whose maps it was writing.
        pid: i32,
        /// What it printed (one line), or how it ended.
        message: String,
    },
    /// A grants file could not be read (other than not existing).
    #[error("read {file}: {error}")]
    Read {
        /// The file.
        file: &'static str,
        /// The cause, said in the message.
        error: std::io::Error,
    },
}

impl RootlessError {
    /// The class of this error.
    pub fn kind(&self) -> hako_base::ErrorKind {
        use hako_base::ErrorKind as K;
        match self {
            RootlessError::NoSubIds { .. } | RootlessError::ToolMissing { .. } => K::NotFound,
            RootlessError::OutsideRanges { .. } | RootlessError::IdBeyondRange { .. } => K::Invalid,
            RootlessError::Tool { .. } | RootlessError::Read { .. } => K::Internal,
        }
    }
}

/// One grant of subordinate ids: `count` ids from `start`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubIdRange {
    /// First host id.
    pub start: u32,
    /// Number of ids.
    pub count: u32,
}

impl std::fmt::Display for SubIdRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.start, self.count)
    }
}

/// The ranges `/etc/subuid`-format `text` grants the user `name` (whose id is `id`: shadow
/// accepts either in the first field), in file order. Blank lines, comments and lines that
/// do not read as `owner:start:count` with a non-empty range inside the 32-bit id space are
/// skipped, as newuidmap skips them.
pub fn parse_subids(text: &str, name: &str, id: u32) -> Vec<SubIdRange> {
    let id = id.to_string();
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let mut f = line.split(':');
            let (owner, start, count) = (f.next()?, f.next()?, f.next()?);
            if f.next().is_some() || (owner != name && owner != id) {
                return None;
            }
            let start: u32 = start.trim().parse().ok()?;
            let count: u32 = count.trim().parse().ok()?;
            let fits = u64::from(start) + u64::from(count) <= 1 << 32;
            (count > 0 && fits).then_some(SubIdRange { start, count })
        })
        .collect()
}

/// The calling user and the ids it may map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Login name (the uid as text when the account has no name).
    pub user: String,
    /// The user's ranges in `/etc/subuid`.
    pub subuids: Vec<SubIdRange>,
    /// The user's ranges in `/etc/subgid`.
    pub subgids: Vec<SubIdRange>,
}

fn read_grants(file: &'static str) -> Result<String, RootlessError> {
    match std::fs::read_to_string(file) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(error) => Err(RootlessError::Read { file, error }),
    }
}

impl Identity {
    /// The calling process's user, with its grants read from `/etc/subuid` and `/etc/subgid`.
    pub fn current() -> Result<Identity, RootlessError> {
        let uid = nix::unistd::geteuid();
        let user = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map_or_else(|| uid.to_string(), |u| u.name);
        Ok(Identity::from_grants(
            uid.as_raw(),
            nix::unistd::getegid().as_raw(),
            user,
            &read_grants(SUBUID_FILE)?,
            &read_grants(SUBGID_FILE)?,
        ))
    }

    /// A user with grants from the given file texts (for tests, and callers that read the
    /// files themselves).
    pub fn from_grants(uid: u32, gid: u32, user: String, subuid: &str, subgid: &str) -> Self {
        Identity {
            subuids: parse_subids(subuid, &user, uid),
            subgids: parse_subids(subgid, &user, uid),
            uid,
            gid,
            user,
        }
    }

    fn grants(&self, kind: Kind) -> (&[SubIdRange], u32, &'static str) {
        match kind {
            Kind::Uid => (&self.subuids, self.uid, SUBUID_FILE),
            Kind::Gid => (&self.subgids, self.gid, SUBGID_FILE),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Uid,
    Gid,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Uid => "uid",
            Kind::Gid => "gid",
        }
    }
    fn tool(self) -> &'static str {
        match self {
            Kind::Uid => "newuidmap",
            Kind::Gid => "newgidmap",
        }
    }
}

/// One line of a user namespace's map: `size` ids from `container` inside are `host`
/// outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdMap {
    /// First id inside the namespace.
    pub container: u32,
    /// First id on the host.
    pub host: u32,
    /// Number of ids.
    pub size: u32,
}

fn to_oci(maps: &[IdMap]) -> Vec<LinuxIdMapping> {
    maps.iter()
        .map(|m| {
            oci_spec::runtime::LinuxIdMappingBuilder::default()
                .container_id(m.container)
                .host_id(m.host)
                .size(m.size)
                .build()
                .expect("every field of an id mapping is set")
        })
        .collect()
}

/// The user namespace a rootless container is created in: the seam the engine uses for
/// rootless `hako run`. Build it with [`UserNamespace::with_subids`] (or
/// [`single`](UserNamespace::single)), check the ids the container will use with
/// [`check_ids`](UserNamespace::check_ids), and put it into the spec with
/// [`apply`](UserNamespace::apply); [`crate::spawn`] and [`crate::create`] then write the maps,
/// through `newuidmap`/`newgidmap` where the kernel would refuse a direct write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserNamespace {
    /// The uid map.
    pub uid_map: Vec<IdMap>,
    /// The gid map.
    pub gid_map: Vec<IdMap>,
    /// Who it was made for: names the files and ranges in errors.
    pub identity: Identity,
}

/// Maps the caller's own id to 0 and its ranges, in file order, to 1, 2, … (Podman's
/// default layout).
fn root_then_ranges(own: u32, ranges: &[SubIdRange]) -> Vec<IdMap> {
    let mut maps = vec![IdMap {
        container: 0,
        host: own,
        size: 1,
    }];
    let mut next: u64 = 1;
    for r in ranges {
        let room = (1u64 << 32) - 1 - next;
        let size = u64::from(r.count).min(room);
        if size == 0 {
            break;
        }
        maps.push(IdMap {
            container: next as u32,
            host: r.start,
            size: size as u32,
        });
        next += size;
    }
    maps
}

impl UserNamespace {
    /// Only the caller's own uid and gid, as root: needs no grants and no helper, but every
    /// other id (an image's files owned by uid 1, a `USER 65532`) is unmapped.
    pub fn single(identity: &Identity) -> Self {
        let one = |id| {
            vec![IdMap {
                container: 0,
                host: id,
                size: 1,
            }]
        };
        UserNamespace {
            uid_map: one(identity.uid),
            gid_map: one(identity.gid),
            identity: identity.clone(),
        }
    }

    /// The caller as root and its subordinate ranges as ids 1 and up. Fails when the user has
    /// no grant in either file, or when the helpers are not installed.
    pub fn with_subids(identity: &Identity) -> Result<Self, RootlessError> {
        for kind in [Kind::Uid, Kind::Gid] {
            let (ranges, _, file) = identity.grants(kind);
            if ranges.is_empty() {
                return Err(RootlessError::NoSubIds {
                    file,
                    user: identity.user.clone(),
                });
            }
        }
        find_tools()?;
        Ok(UserNamespace {
            uid_map: root_then_ranges(identity.uid, &identity.subuids),
            gid_map: root_then_ranges(identity.gid, &identity.subgids),
            identity: identity.clone(),
        })
    }

    /// Fails unless `uid` and `gid` (and `additional_gids`) exist inside, naming the range
    /// that is too small: e.g. an image whose `USER` is 65532 under a 1000-id grant.
    pub fn check_ids(
        &self,
        uid: u32,
        gid: u32,
        additional_gids: &[u32],
    ) -> Result<(), RootlessError> {
        let check = |kind: Kind, map: &[IdMap], id: u32| {
            if map.iter().any(|m| {
                id >= m.container && u64::from(id) < u64::from(m.container) + u64::from(m.size)
            }) {
                return Ok(());
            }
            let (ranges, _, file) = self.identity.grants(kind);
            let max = map
                .iter()
                .map(|m| u64::from(m.container) + u64::from(m.size))
                .max()
                .unwrap_or(0)
                .saturating_sub(1);
            let granted = match ranges {
                [] => "no subordinate ids".to_owned(),
                [one] => format!("the range {one} ({} ids)", one.count),
                many => format!(
                    "the ranges {}",
                    many.iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            Err(RootlessError::IdBeyondRange {
                kind: kind.name(),
                id,
                file,
                user: self.identity.user.clone(),
                granted,
                max,
                needed: u64::from(id),
            })
        };
        check(Kind::Uid, &self.uid_map, uid)?;
        check(Kind::Gid, &self.gid_map, gid)?;
        for g in additional_gids {
            check(Kind::Gid, &self.gid_map, *g)?;
        }
        Ok(())
    }

    /// The host uid that container uid `id` is, if it is mapped.
    pub fn host_uid(&self, id: u32) -> Option<u32> {
        host_of(&self.uid_map, id)
    }

    /// The host gid that container gid `id` is, if it is mapped.
    pub fn host_gid(&self, id: u32) -> Option<u32> {
        host_of(&self.gid_map, id)
    }

    /// Writes these maps for process `pid`, which has just made a new user namespace: through
    /// `newuidmap`/`newgidmap` for an ordinary user (checked against the grants first), or
    /// directly where the caller may. For a process that holds a user namespace outside any
    /// spec (rootless hako's per-user namespace).
    pub fn write_to(&self, pid: i32) -> Result<(), crate::Error> {
        let text = |maps: &[IdMap]| {
            maps.iter()
                .map(|m| format!("{} {} {}\n", m.container, m.host, m.size))
                .collect::<String>()
        };
        let (uid_map, gid_map) = (text(&self.uid_map), text(&self.gid_map));
        let writer = plan_maps(&uid_map, &gid_map)?;
        write_maps(&writer, pid, &uid_map, &gid_map)
    }

    /// Gives `spec` a new user namespace (replacing a `user` namespace entry and any
    /// mappings it had) with these maps.
    pub fn apply(&self, spec: &mut Spec) {
        let mut linux = spec.linux().clone().unwrap_or_default();
        let mut ns = linux.namespaces().clone().unwrap_or_default();
        ns.retain(|n| n.typ() != LinuxNamespaceType::User);
        let mut user = oci_spec::runtime::LinuxNamespace::default();
        user.set_typ(LinuxNamespaceType::User);
        ns.push(user);
        linux.set_namespaces(Some(ns));
        linux.set_uid_mappings(Some(to_oci(&self.uid_map)));
        linux.set_gid_mappings(Some(to_oci(&self.gid_map)));
        spec.set_linux(Some(linux));
    }
}

fn host_of(map: &[IdMap], id: u32) -> Option<u32> {
    map.iter().find_map(|m| {
        let off = id.checked_sub(m.container)?;
        (off < m.size).then(|| m.host + off)
    })
}

/// `newuidmap` and `newgidmap` as found in `$PATH`.
fn find_tools() -> Result<(PathBuf, PathBuf), RootlessError> {
    let find = |kind: Kind| {
        find_in_path(kind.tool()).ok_or(RootlessError::ToolMissing {
            tool: kind.tool(),
            file: match kind {
                Kind::Uid => SUBUID_FILE,
                Kind::Gid => SUBGID_FILE,
            },
        })
    };
    Ok((find(Kind::Uid)?, find(Kind::Gid)?))
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// How the maps of a container's new user namespace get written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum MapWriter {
    /// Privileged enough to write any map: straight to `/proc/PID/{uid,gid}_map`.
    Direct,
    /// Only the caller's own uid and gid: `deny` to `/proc/PID/setgroups` first (the kernel's
    /// condition for an unprivileged gid map), then the maps.
    OwnIds,
    /// Through the setuid helpers, which check the maps against the grants files.
    Tools {
        newuidmap: PathBuf,
        newgidmap: PathBuf,
    },
}

fn parse_map(text: &str) -> Vec<IdMap> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|n| n.parse::<u32>().ok());
            Some(IdMap {
                container: f.next()??,
                host: f.next()??,
                size: f.next()??,
            })
        })
        .collect()
}

/// Refuses a process id that the new user namespace's map (`/proc/PID/uid_map` syntax) does
/// not contain, naming the ids that exist.
pub(crate) fn check_mapped(
    kind: &str,
    map: &str,
    field: &str,
    id: u32,
) -> Result<(), crate::Error> {
    let maps = parse_map(map);
    if host_of(&maps, id).is_some() {
        return Ok(());
    }
    let exist: Vec<String> = maps
        .iter()
        .map(|m| {
            let end = u64::from(m.container) + u64::from(m.size).max(1) - 1;
            format!("{}-{end}", m.container)
        })
        .collect();
    Err(crate::Error::InvalidSpec(format!(
        "process.user {kind} {id} is not mapped by {field} (the container has {kind}s {}): map a larger range",
        exist.join(", ")
    )))
}

/// Whether this process holds CAP_SETUID and CAP_SETGID (root in the initial namespace, or
/// a runtime running as root of an enclosing user namespace with a full map).
fn can_write_any_map() -> bool {
    use caps::{CapSet, Capability};
    let has = |c| caps::has_cap(None, CapSet::Effective, c).unwrap_or(false);
    has(Capability::CAP_SETUID) && has(Capability::CAP_SETGID)
}

/// Decides how `uid_map` and `gid_map` (in `/proc/PID/uid_map` syntax) get written, and
/// checks what an ordinary user may map before any process exists.
pub(crate) fn plan_maps(uid_map: &str, gid_map: &str) -> Result<MapWriter, RootlessError> {
    if can_write_any_map() {
        return Ok(MapWriter::Direct);
    }
    let (uids, gids) = (parse_map(uid_map), parse_map(gid_map));
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let own = |maps: &[IdMap], id| matches!(maps, [m] if m.host == id && m.size == 1);
    if own(&uids, euid) && own(&gids, egid) {
        return Ok(MapWriter::OwnIds);
    }
    let identity = Identity::current()?;
    for (kind, maps) in [(Kind::Uid, &uids), (Kind::Gid, &gids)] {
        check_granted(&identity, kind, maps)?;
    }
    let (newuidmap, newgidmap) = find_tools()?;
    Ok(MapWriter::Tools {
        newuidmap,
        newgidmap,
    })
}

/// Every host id of `maps` is the user's own or in one of its ranges.
fn check_granted(identity: &Identity, kind: Kind, maps: &[IdMap]) -> Result<(), RootlessError> {
    let (ranges, own, file) = identity.grants(kind);
    let inside = |start: u64, end: u64| {
        (start == u64::from(own) && end == start)
            || ranges.iter().any(|r| {
                start >= u64::from(r.start) && end < u64::from(r.start) + u64::from(r.count)
            })
    };
    for m in maps {
        let start = u64::from(m.host);
        let end = start + u64::from(m.size).max(1) - 1;
        // The own id may be one line and the ranges others; a line spanning both is not
        // something newuidmap accepts either.
        if inside(start, end) {
            continue;
        }
        if ranges.is_empty() {
            return Err(RootlessError::NoSubIds {
                file,
                user: identity.user.clone(),
            });
        }
        let mut granted = format!("its own id {own}");
        for r in ranges {
            granted.push_str(&format!(", {r}"));
        }
        return Err(RootlessError::OutsideRanges {
            kind: kind.name(),
            start,
            end,
            file,
            user: identity.user.clone(),
            granted,
        });
    }
    Ok(())
}

/// Runs `tool PID inside outside count …` and turns a refusal into one line.
fn run_tool(tool: &Path, kind: Kind, pid: i32, map: &str) -> Result<(), RootlessError> {
    let mut cmd = std::process::Command::new(tool);
    cmd.arg(pid.to_string());
    for m in parse_map(map) {
        cmd.args([
            m.container.to_string(),
            m.host.to_string(),
            m.size.to_string(),
        ]);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| RootlessError::Tool {
            tool: kind.tool(),
            pid,
            message: format!("run {}: {e}", tool.display()),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let message = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    Err(RootlessError::Tool {
        tool: kind.tool(),
        pid,
        message: if message.is_empty() {
            out.status.to_string()
        } else {
            message
        },
    })
}

/// Writes the maps of `pid`'s new user namespace the way `writer` says.
pub(crate) fn write_maps(
    writer: &MapWriter,
    pid: i32,
    uid_map: &str,
    gid_map: &str,
) -> Result<(), crate::Error> {
    use crate::Error;
    let direct = |file: &str, map: &str| {
        std::fs::write(format!("/proc/{pid}/{file}"), map)
            .map_err(|e| Error::sys(format!("write {file}"), e))
    };
    match writer {
        MapWriter::Direct => {
            direct("uid_map", uid_map)?;
            direct("gid_map", gid_map)
        }
        MapWriter::OwnIds => {
            direct("setgroups", "deny")?;
            direct("uid_map", uid_map)?;
            direct("gid_map", gid_map)
        }
        MapWriter::Tools {
            newuidmap,
            newgidmap,
        } => {
            run_tool(newuidmap, Kind::Uid, pid, uid_map)?;
            run_tool(newgidmap, Kind::Gid, pid, gid_map)?;
            Ok(())
        }
    }
}

/// How the id mapping of rootless containers works on this host, or why it cannot.
#[derive(Debug)]
pub enum Mapping {
    /// Subordinate ids through the helpers: the whole range of an image works.
    Subids {
        /// Path of `newuidmap`.
        newuidmap: PathBuf,
        /// Path of `newgidmap`.
        newgidmap: PathBuf,
        /// The user's `/etc/subuid` ranges.
        subuids: Vec<SubIdRange>,
        /// The user's `/etc/subgid` ranges.
        subgids: Vec<SubIdRange>,
    },
    /// Only the user's own id (as root inside): why the subordinate ids are out of reach.
    OwnIdOnly(RootlessError),
}

/// What rootless containers use on this host, for `hako info`: the id mapping and the
/// cgroup driver, each with the reason when the better mechanism is missing.
#[derive(Debug)]
pub struct Mechanisms {
    /// The calling user.
    pub identity: Identity,
    /// How ids are mapped.
    pub mapping: Mapping,
    /// How containers get cgroups (`None` with a reason on cgroup v1 or without
    /// delegation).
    pub cgroups: Result<hako_cgroups::rootless::Driver, hako_cgroups::Error>,
}

/// Looks at the calling user, the grants files, `$PATH` and the cgroup hierarchies.
pub fn mechanisms() -> Result<Mechanisms, RootlessError> {
    let identity = Identity::current()?;
    let mapping = match UserNamespace::with_subids(&identity) {
        Ok(_) => {
            let (newuidmap, newgidmap) = find_tools()?;
            Mapping::Subids {
                newuidmap,
                newgidmap,
                subuids: identity.subuids.clone(),
                subgids: identity.subgids.clone(),
            }
        }
        Err(e) => Mapping::OwnIdOnly(e),
    };
    let cgroups = hako_cgroups::CgroupSystem::detect().map(|s| s.rootless_driver(identity.uid));
    Ok(Mechanisms {
        identity,
        mapping,
        cgroups,
    })
}

/// Whether `ns` (an open `/proc/PID/ns/user`) is this process's own user namespace.
pub(crate) fn is_current_user_ns(ns: &std::fs::File) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (ns.metadata(), std::fs::metadata("/proc/self/ns/user")) {
        (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
        _ => false,
    }
}

/// Moves the calling process into the user namespace of process `pid` (a rootless
/// container's init), unless it is privileged or there already.
///
/// An ordinary user may not join a container's pid namespace from its own user namespace
/// (the kernel wants CAP_SYS_ADMIN over both); inside the container's user namespace, which
/// it owns, it may. So a rootless `exec` enters it before [`crate::spawn`] joins the rest.
/// This cannot be undone and the caller must be single-threaded: meant for a process that
/// exists to run one exec (as `hako-runtime exec`). Its host ids stay what they were.
pub fn enter_user_namespace(pid: i32) -> Result<(), crate::Error> {
    let path = format!("/proc/{pid}/ns/user");
    let ns =
        std::fs::File::open(&path).map_err(|e| crate::Error::sys(format!("open {path}"), e))?;
    if can_write_any_map() || is_current_user_ns(&ns) {
        return Ok(());
    }
    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWUSER)
        .map_err(|e| crate::Error::sys(format!("join the user namespace {path}"), e))
}

/// Whether this process runs in a user namespace other than the initial one (whose map is
/// the whole id space onto itself).
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            let lines: Vec<Vec<&str>> = map
                .lines()
                .map(|l| l.split_whitespace().collect())
                .collect();
            !matches!(lines.as_slice(), [l] if l.as_slice() == ["0", "0", "4294967295"])
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBUID: &str = "\
# comment
alice:100000:65536
bob:165536:65536

1001:300000:10
alice:500000:1000
alice:bad:10
alice:1:0
alice:4294967295:2
carol:1:2:3
";

    #[test]
    fn grants_by_name_or_uid_in_file_order() {
        assert_eq!(
            parse_subids(SUBUID, "alice", 1000),
            [
                SubIdRange {
                    start: 100000,
                    count: 65536
                },
                SubIdRange {
                    start: 500000,
                    count: 1000
                }
            ]
        );
        assert_eq!(
            parse_subids(SUBUID, "dave", 1001),
            [SubIdRange {
                start: 300000,
                count: 10
            }]
        );
        assert!(parse_subids(SUBUID, "carol", 7).is_empty());
        assert!(parse_subids("", "alice", 1000).is_empty());
    }

    fn alice() -> Identity {
        Identity::from_grants(1000, 100, "alice".into(), SUBUID, "alice:200000:65536\n")
    }

    #[test]
    fn root_is_the_user_and_the_ranges_follow() {
        let ns = UserNamespace::with_subids(&alice());
        // The helpers may be missing where the unit tests run; the layout is what matters.
        let Ok(ns) = ns else {
            assert!(matches!(ns, Err(RootlessError::ToolMissing { .. })));
            return;
        };
        assert_eq!(
            ns.uid_map,
            [
                IdMap {
                    container: 0,
                    host: 1000,
                    size: 1
                },
                IdMap {
                    container: 1,
                    host: 100000,
                    size: 65536
                },
                IdMap {
                    container: 65537,
                    host: 500000,
                    size: 1000
                }
            ]
        );
        assert_eq!(ns.host_uid(0), Some(1000));
        assert_eq!(ns.host_uid(1000), Some(100999));
        assert_eq!(ns.host_uid(65537), Some(500000));
        assert_eq!(ns.host_uid(66537), None);
        assert_eq!(ns.host_gid(1), Some(200000));
        ns.check_ids(65532, 65532, &[]).unwrap();
        let e = ns.check_ids(70000, 0, &[]).unwrap_err();
        assert_eq!(e.kind(), hako_base::ErrorKind::Invalid);
        assert_eq!(
            e.to_string(),
            "uid 70000 is beyond the user namespace: /etc/subuid grants user alice the ranges 100000:65536, 500000:1000, so ids 0-66536 exist in the container; ask for a range of at least 70000 ids"
        );
    }

    #[test]
    fn a_small_range_is_named_when_an_image_id_does_not_fit() {
        let id = Identity::from_grants(
            1000,
            100,
            "alice".into(),
            "alice:100000:1000\n",
            "alice:100000:1000\n",
        );
        let ns = UserNamespace {
            uid_map: root_then_ranges(1000, &id.subuids),
            gid_map: root_then_ranges(100, &id.subgids),
            identity: id,
        };
        ns.check_ids(1000, 1000, &[]).unwrap();
        let e = ns.check_ids(0, 65532, &[]).unwrap_err().to_string();
        assert_eq!(e, "gid 65532 is beyond the user namespace: /etc/subgid grants user alice the range 100000:1000 (1000 ids), so ids 0-1000 exist in the container; ask for a range of at least 65532 ids");
        assert!(ns.check_ids(0, 0, &[1001]).is_err());
    }

    #[test]
    fn no_grant_names_the_file_and_the_user() {
        let id = Identity::from_grants(1000, 100, "erin".into(), SUBUID, "");
        let e = UserNamespace::with_subids(&id).unwrap_err();
        assert_eq!(e.kind(), hako_base::ErrorKind::NotFound);
        assert_eq!(e.to_string(), "/etc/subuid has no entry for user erin: ask the administrator for a range of subordinate ids (a line such as erin:100000:65536)");
        let single = UserNamespace::single(&id);
        assert_eq!(single.host_uid(0), Some(1000));
        assert!(single.check_ids(1, 0, &[]).is_err());
    }

    #[test]
    fn grants_are_checked_before_the_helpers_run() {
        let id = alice();
        let maps = |text: &str| parse_map(text);
        check_granted(&id, Kind::Uid, &maps("0 1000 1\n1 100000 65536\n")).unwrap();
        check_granted(&id, Kind::Uid, &maps("0 500000 1000\n")).unwrap();
        let e = check_granted(&id, Kind::Uid, &maps("0 1000 1\n1 100000 65537\n"))
            .unwrap_err()
            .to_string();
        assert_eq!(e, "uid mapping of host ids 100000-165536 is outside what /etc/subuid grants user alice (its own id 1000, 100000:65536, 500000:1000)");
        let e = check_granted(&id, Kind::Uid, &maps("0 0 1\n")).unwrap_err();
        assert_eq!(e.kind(), hako_base::ErrorKind::Invalid);
        let none = Identity::from_grants(1000, 100, "erin".into(), "", "");
        let e = check_granted(&none, Kind::Gid, &maps("0 100 1\n1 5000 10\n")).unwrap_err();
        assert!(
            matches!(
                e,
                RootlessError::NoSubIds {
                    file: SUBGID_FILE,
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn the_namespace_goes_into_the_spec() {
        let mut spec = Spec::default();
        UserNamespace::single(&alice()).apply(&mut spec);
        UserNamespace::single(&alice()).apply(&mut spec);
        let linux = spec.linux().as_ref().unwrap();
        let users = linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|n| n.typ() == LinuxNamespaceType::User)
            .count();
        assert_eq!(users, 1);
        let m = &linux.uid_mappings().as_ref().unwrap()[0];
        assert_eq!((m.container_id(), m.host_id(), m.size()), (0, 1000, 1));
    }

    #[test]
    fn a_missing_tool_names_the_package() {
        let e = RootlessError::ToolMissing {
            tool: "newuidmap",
            file: SUBUID_FILE,
        };
        assert_eq!(e.kind(), hako_base::ErrorKind::NotFound);
        assert!(e.to_string().contains("install the package uidmap"));
    }
}
