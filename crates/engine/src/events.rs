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
        let json = serde_json::to_string(&attrs).unwrap_or_default();
        let conn = self.store.conn();
        let inserted = conn.execute(
            "INSERT INTO events (time, kind, action, id, attributes) VALUES (?1, 'container', ?2, ?3, ?4)",
            params![now_nanos(), action, id, json],
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
