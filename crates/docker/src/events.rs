//! What `events --format` templates see: the fields of Docker's `events.Message` by their Go
//! names (`.Type`, `.Action`, `.Actor.ID`, `.Actor.Attributes.name`, `.Time`, `.TimeNano`, and
//! the older `.Status`, `.ID`, `.From` that Docker still fills for containers and images).

use hako_engine::events::Event;
use serde_json::{json, Value};

/// The template document of one event.
pub fn message(e: &Event) -> Value {
    // Docker fills the legacy fields for containers and images only.
    let legacy = matches!(e.kind.as_str(), "container" | "image");
    let text = |s: &str| if legacy { s.to_string() } else { String::new() };
    json!({
        "Status": text(&e.action),
        "ID": text(&e.id),
        "From": text(e.attributes.get("image").map_or("", String::as_str)),
        "Type": e.kind,
        "Action": e.action,
        "Actor": {"ID": e.id, "Attributes": e.attributes},
        "Scope": "local",
        "Time": e.time_nano.div_euclid(1_000_000_000),
        "TimeNano": e.time_nano,
    })
}

/// One event as `GET /events` streams it: the same message under its JSON names, the legacy
/// `status`/`id`/`from` only where Docker fills them (docker-py and compose 1.x read them).
pub fn wire(e: &Event) -> Value {
    let mut v = json!({
        "Type": e.kind,
        "Action": e.action,
        "Actor": {"ID": e.id, "Attributes": e.attributes},
        "scope": "local",
        "time": e.time_nano.div_euclid(1_000_000_000),
        "timeNano": e.time_nano,
    });
    if matches!(e.kind.as_str(), "container" | "image") {
        v["status"] = e.action.as_str().into();
        v["id"] = e.id.as_str().into();
        if let Some(img) = e.attributes.get("image") {
            v["from"] = img.as_str().into();
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_uses_json_names_and_legacy_fields_where_docker_has_them() {
        let mut attributes = std::collections::BTreeMap::new();
        attributes.insert("image".to_string(), "busybox".to_string());
        let mut e = Event {
            seq: 1,
            kind: "container".into(),
            action: "die".into(),
            id: "c".repeat(64),
            attributes,
            time_nano: 1_700_000_000_123_456_789,
        };
        let w = wire(&e);
        assert_eq!(
            (w["status"].as_str(), w["from"].as_str()),
            (Some("die"), Some("busybox"))
        );
        assert_eq!(w["time"], 1_700_000_000i64);
        assert_eq!(w["Actor"]["ID"], e.id.as_str());
        e.kind = "volume".into();
        assert!(wire(&e).get("status").is_none());
    }

    #[test]
    fn go_field_names_and_the_legacy_ones_for_containers() {
        let mut attributes = std::collections::BTreeMap::new();
        attributes.insert("name".to_string(), "web".to_string());
        attributes.insert("image".to_string(), "busybox".to_string());
        let mut e = Event {
            seq: 1,
            kind: "container".into(),
            action: "start".into(),
            id: "c".repeat(64),
            attributes,
            time_nano: 1_700_000_000_123_456_789,
        };
        let m = message(&e);
        assert_eq!(m["Actor"]["Attributes"]["name"], "web");
        assert_eq!(m["Time"], 1_700_000_000i64);
        assert_eq!(m["TimeNano"], 1_700_000_000_123_456_789i64);
        assert_eq!(
            (m["Status"].as_str(), m["From"].as_str()),
            (Some("start"), Some("busybox"))
        );
        e.kind = "network".into();
        assert_eq!(message(&e)["ID"], "");
    }
}
