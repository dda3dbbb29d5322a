//! `hako events`: what happened to containers, recorded in the state database by whichever
//! hako process did it (there is no daemon to broadcast them), and read back or followed.

use crate::{now_nanos, rfc3339, Engine, Result};
use rusqlite::params;

/// One event, as Docker reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Event {
    /// Sequence number (for following).
    #[serde(skip)]
    pub seq: i64,
    /// "container", "image", "volume", "network".
    #[serde(rename = "Type")]
    pub kind: String,
    /// "create", "start", "die", "destroy", ...
    #[serde(rename = "Action")]
    pub action: String,
    /// The object's id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Attributes such as image, name and exitCode.
    #[serde(rename = "Attributes")]
    pub attributes: std::collections::BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

impl Event {
    /// Docker's one-line form: `2026-11-22T19:00:00.000000000Z container start ID (image=x, name=y)`.
    pub fn line(&self) -> String {
        let attrs: Vec<String> = self
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        format!(
            "{} {} {} {} ({})",
            rfc3339(self.time_nano),
            self.kind,
            self.action,
            self.id,
            attrs.join(", ")
        )
    }
}

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    action TEXT NOT NULL,
    id TEXT NOT NULL,
    attributes TEXT NOT NULL
);
";

/// Events older than this many are dropped, so the table stays small.
const KEEP: i64 = 10_000;

impl Engine {
    /// Records a container event; never fails the operation that caused it.
    pub(crate) fn event(&self, id: &str, action: &str, extra: &[(&str, String)]) {
        let row: Option<(String, String)> = self
            .store
            .conn()
            .query_row(
                "SELECT image, name FROM containers WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .ok();
        let mut attrs = std::collections::BTreeMap::new();
        if let Some((image, name)) = row {
            attrs.insert("image".to_string(), image);
            attrs.insert("name".to_string(), name);
        }
        for (k, v) in extra {
            attrs.insert((*k).to_string(), v.clone());
        }
        self.record_event("container", id, action, attrs);
    }

    /// Records an event of an image, volume or network (`kind`), as Docker's daemon logs
    /// them: `id` is Docker's actor ID for it (an image's reference for pull and push, its ID
    /// otherwise; a volume's name; a network's ID).
    pub(crate) fn object_event(
        &self,
        kind: &str,
        id: &str,
        action: &str,
        attrs: &[(&str, String)],
    ) {
        let attrs = attrs
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.clone()))
            .collect();
        self.record_event(kind, id, action, attrs);
    }

    fn record_event(
        &self,
        kind: &str,
        id: &str,
        action: &str,
        attrs: std::collections::BTreeMap<String, String>,
    ) {
        let json = serde_json::to_string(&attrs).unwrap_or_default();
        let conn = self.store.conn();
        let inserted = conn.execute(
            "INSERT INTO events (time, kind, action, id, attributes) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![now_nanos(), kind, action, id, json],
        );
        if inserted.is_ok() {
            // The new row's seq bounds the table: no scan for the maximum on every event.
            let _ = conn.execute(
                "DELETE FROM events WHERE seq <= ?1",
                [conn.last_insert_rowid() - KEEP],
            );
        }
    }

    /// Events after `after_seq` within [since, until] (nanoseconds), oldest first.
    pub fn events(
        &self,
        after_seq: i64,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<Event>> {
        let mut st = self.store.conn().prepare_cached(
            "SELECT seq, time, kind, action, id, attributes FROM events
             WHERE seq > ?1 AND time >= ?2 AND time <= ?3 ORDER BY seq",
        )?;
        let rows = st.query_map(
            params![after_seq, since.unwrap_or(0), until.unwrap_or(i64::MAX)],
            |r| {
                Ok(Event {
                    seq: r.get(0)?,
                    time_nano: r.get(1)?,
                    kind: r.get(2)?,
                    action: r.get(3)?,
                    id: r.get(4)?,
                    attributes: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or_default(),
                })
            },
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// The filter keys of `events` (Docker's; those of swarm objects match nothing here).
pub const FILTER_KEYS: [&str; 14] = [
    "container",
    "event",
    "type",
    "image",
    "label",
    "scope",
    "network",
    "volume",
    "daemon",
    "plugin",
    "node",
    "service",
    "secret",
    "config",
];

/// `events --filter`s, as Docker combines them: the values of one key are alternatives
/// (`label`'s excepted: every label asked for must be there), the keys must all hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilters(std::collections::BTreeMap<String, Vec<String>>);

impl EventFilters {
    /// `key=value` pairs; an unknown key is refused, as Docker does.
    pub fn new<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Result<EventFilters> {
        let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for (k, v) in pairs {
            let k = k.as_ref();
            if !FILTER_KEYS.contains(&k) {
                return Err(crate::Error::Invalid(format!("invalid filter '{k}'")));
            }
            m.entry(k.to_string())
                .or_default()
                .push(v.as_ref().to_string());
        }
        Ok(EventFilters(m))
    }

    /// Whether `e` passes.
    pub fn matches(&self, e: &Event) -> bool {
        self.0.iter().all(|(key, values)| {
            let holds = |v: &String| match key.as_str() {
                "container" => {
                    e.kind == "container"
                        && (e.id.starts_with(v.as_str()) || e.attributes.get("name") == Some(v))
                }
                // Docker's actions with a detail (`exec_start: sh`, `health_status: healthy`)
                // match by the part before it too.
                "event" => &e.action == v || e.action.split_once(": ").is_some_and(|(a, _)| a == v),
                "type" => &e.kind == v,
                // A container's image, or the image an image event is about.
                "image" => {
                    e.attributes.get("image") == Some(v)
                        || (e.kind == "image"
                            && (e.id == *v
                                || e.attributes.get("name") == Some(v)
                                || e.id
                                    .strip_prefix("sha256:")
                                    .is_some_and(|h| h.starts_with(v.as_str()))))
                }
                "label" => {
                    let (k, val) = v.split_once('=').unwrap_or((v, ""));
                    e.attributes
                        .get(k)
                        .is_some_and(|x| val.is_empty() || x == val)
                }
                "scope" => v == "local",
                "network" | "volume" => {
                    e.kind == *key
                        && (e.id.starts_with(v.as_str()) || e.attributes.get("name") == Some(v))
                }
                _ => false,
            };
            if key == "label" {
                values.iter().all(holds)
            } else {
                values.iter().any(holds)
            }
        })
    }
}

/// How long a follower sleeps at most when nothing wakes it.
const BACKSTOP: std::time::Duration = std::time::Duration::from_secs(1);

impl Engine {
    /// `docker events`: the recorded events from `since` (default: now) that pass `filters`,
    /// oldest first, then each new one as it is recorded, until `until` passes (without it,
    /// until `sink` fails: the reader went away). Between reads it sleeps on inotify of the
    /// state root, which a write to the state database's log wakes, not on a timer.
    pub fn follow_events(
        &self,
        since: Option<i64>,
        until: Option<i64>,
        filters: &EventFilters,
        sink: &mut dyn FnMut(&Event) -> std::io::Result<()>,
    ) -> Result<()> {
        let start = since.unwrap_or_else(now_nanos);
        let notify = watch_writes(&self.root);
        let mut last = 0;
        loop {
            for e in self.events(last, Some(start), until)? {
                last = e.seq;
                if filters.matches(&e) {
                    sink(&e).map_err(|err| crate::Error::io("write the events", err))?;
                }
            }
            let now = now_nanos();
            if until.is_some_and(|u| now >= u) {
                return Ok(());
            }
            let limit = until.map_or(BACKSTOP, |u| {
                std::time::Duration::from_nanos((u - now).max(0) as u64).min(BACKSTOP)
            });
            wait_readable(notify.as_ref(), limit);
        }
    }
}

/// inotify on the state root: a write to any file in it (the database's write-ahead log, where
/// every event lands first).
fn watch_writes(root: &std::path::Path) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: inotify_init1 takes flags only; the fd it returns is owned here.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd was just returned by inotify_init1 and is owned by nothing else.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let c = std::ffi::CString::new(root.as_os_str().as_bytes()).ok()?;
    let mask = libc::IN_MODIFY | libc::IN_CREATE | libc::IN_MOVED_TO;
    // SAFETY: a valid inotify fd and a NUL-terminated path.
    if unsafe { libc::inotify_add_watch(std::os::fd::AsRawFd::as_raw_fd(&fd), c.as_ptr(), mask) }
        < 0
    {
        return None;
    }
    Some(fd)
}

/// Sleeps until `fd` is readable or `limit` passes, then reads away what arrived.
fn wait_readable(fd: Option<&std::os::fd::OwnedFd>, limit: std::time::Duration) {
    use std::os::fd::AsRawFd;
    let mut fds: Vec<libc::pollfd> = fd
        .iter()
        .map(|f| libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the duration of the call.
    unsafe {
        libc::poll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            limit.as_millis() as i32,
        )
    };
    if let Some(f) = fd {
        let mut buf = [0u8; 4096];
        // SAFETY: reads into a buffer of its stated length from an fd owned by the caller.
        while unsafe { libc::read(f.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, action: &str, name: &str) -> Event {
        Event {
            seq: 1,
            kind: kind.into(),
            action: action.into(),
            id: "abc123".into(),
            attributes: [
                ("name".to_string(), name.to_string()),
                ("image".to_string(), "busybox".to_string()),
            ]
            .into(),
            time_nano: 0,
        }
    }

    fn f(pairs: &[(&str, &str)]) -> EventFilters {
        EventFilters::new(pairs).unwrap()
    }

    #[test]
    fn values_of_a_key_are_alternatives() {
        let e = ev("container", "start", "web");
        assert!(f(&[("event", "start"), ("event", "die")]).matches(&e));
        assert!(!f(&[("event", "die")]).matches(&e));
        assert!(f(&[("container", "web"), ("image", "busybox")]).matches(&e));
        assert!(f(&[("container", "abc")]).matches(&e));
        assert!(!f(&[("container", "web"), ("type", "image")]).matches(&e));
        assert!(f(&[("label", "name=web")]).matches(&e));
        // Labels, as Docker's MatchKVList: every one asked for.
        assert!(f(&[("label", "name=web"), ("label", "image")]).matches(&e));
        assert!(!f(&[("label", "name=web"), ("label", "name=db")]).matches(&e));
        assert!(f(&[]).matches(&e));
        assert!(!f(&[("container", "web")]).matches(&ev("network", "create", "web")));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = EventFilters::new(&[("colour", "red")]).unwrap_err();
        assert_eq!(e.to_string(), "invalid filter 'colour'");
    }

    /// A write to the database's log in the root wakes a follower at once.
    #[test]
    fn a_write_in_the_root_wakes() {
        let dir = tempfile::tempdir().unwrap();
        let fd = watch_writes(dir.path()).unwrap();
        let t = std::time::Instant::now();
        std::fs::write(dir.path().join("hako.db-wal"), b"x").unwrap();
        wait_readable(Some(&fd), std::time::Duration::from_secs(5));
        assert!(t.elapsed() < std::time::Duration::from_secs(2));
    }
}
