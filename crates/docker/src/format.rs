//! Docker's human-readable wording, so hako's tables read like `docker`'s: durations ("2
//! minutes"), sizes ("4.26MB", "1.5MiB"), shortened commands, and a container's STATUS, CREATED
//! and PORTS columns. Shared by the CLI's tables and the API's `Status` fields.

use hako_engine::{ContainerInfo, State};
use std::time::Duration;

/// Docker's `HumanDuration` ("Less than a second", "About a minute", "3 weeks").
pub fn human_duration(d: Duration) -> String {
    let seconds = d.as_secs();
    if d.as_secs_f64() < 1.0 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = seconds / 60;
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    let hours = (d.as_secs_f64() / 3600.0).round() as u64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", seconds / 3600 / 24 / 365)
}

/// Docker's decimal `HumanSize` with three significant digits ("4.26MB", "125MB", "0B"), as
/// `images` and `ps --size` print sizes.
pub fn human_size(bytes: u64) -> String {
    hako_engine::hako_base::size::human_size_with_precision(bytes, 3)
}

/// Docker's `Ellipsis`: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= max {
        return s.to_string();
    }
    let mut out: String = chars[..max - 1].iter().collect();
    out.push('…');
    out
}

/// Go's `strconv.Quote` for the printable strings container commands usually are.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Docker's `BytesSize` (binary units) used by `stats`: "1.5MiB", "7.63GiB".
pub fn human_binary_size(bytes: u64) -> String {
    hako_engine::hako_base::size::bytes_size(bytes)
}

/// How long before `now` the time `nanos` was (both nanoseconds since the epoch).
fn ago(nanos: i64, now: i64) -> Duration {
    Duration::from_nanos(now.saturating_sub(nanos).max(0) as u64)
}

/// "5 minutes ago" (`ps`'s CREATED, `images`' CREATED); "N/A" for an unknown time.
pub fn time_ago(nanos: Option<i64>, now: i64) -> String {
    match nanos {
        Some(t) => format!("{} ago", human_duration(ago(t, now))),
        None => "N/A".into(),
    }
}

/// Docker's STATUS column: "Up 5 seconds", "Exited (3) 2 minutes ago", "Created".
pub fn status_text(c: &ContainerInfo, now: i64) -> String {
    match c.state {
        State::Running => {
            let up = human_duration(ago(c.started_at.unwrap_or(c.created), now));
            match c.health.as_deref() {
                Some("starting") => format!("Up {up} (health: starting)"),
                Some(h) => format!("Up {up} ({h})"),
                None => format!("Up {up}"),
            }
        }
        State::Exited => format!(
            "Exited ({}) {}",
            c.exit_code.unwrap_or(0),
            time_ago(c.finished_at, now)
        ),
        State::Created => "Created".to_string(),
    }
}

/// A container's COMMAND as dockerd lists it: the program, then its arguments, each one that
/// holds a space in single quotes (`sh -c 'echo hi; exit 3'`).
pub fn command_text(argv: &[String]) -> String {
    let mut out = String::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if i > 0 && a.contains(' ') {
            out.push('\'');
            out.push_str(a);
            out.push('\'');
        } else {
            out.push_str(a);
        }
    }
    out
}

/// `ps`'s STATUS of a listed container: [`status_text`], with " (Paused)" after a paused
/// one's "Up …" as Docker writes it.
pub fn ps_status(c: &ContainerInfo, paused: bool, now: i64) -> String {
    let text = status_text(c, now);
    if paused && c.state == State::Running {
        format!("{text} (Paused)")
    } else {
        text
    }
}

/// `ps`'s State of a listed container: the state's word, "paused" for a paused one.
pub fn ps_state(c: &ContainerInfo, paused: bool) -> &'static str {
    if paused && c.state == State::Running {
        "paused"
    } else {
        hako_engine::views::container::state_word(c.state)
    }
}

/// Docker's `CreatedAt` of `ps --format`: "2026-11-22 18:30:00 +0000 UTC".
pub fn created_at(nanos: i64) -> String {
    let c = hako_engine::hako_base::time::civil(nanos.div_euclid(1_000_000_000));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Docker's PORTS column: "0.0.0.0:8080->80/tcp, 0.0.0.0:5353->53/udp".
pub fn ports_text(ports: &[hako_engine::hako_net::PublishedPort]) -> String {
    ports
        .iter()
        .map(|p| {
            format!(
                "{}->{}/{}",
                p.host(),
                p.container_port,
                format!("{:?}", p.proto).to_lowercase()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// One `stats` line with Docker's field names (for `--format`) and Docker's units: binary for
/// memory, decimal for network and block I/O.
pub fn stats_row(r: &hako_engine::views::stats::StatsRow) -> serde_json::Value {
    let s = &r.sample;
    serde_json::json!({
        "ID": &s.id[..12],
        "Container": &s.id[..12],
        "Name": s.name,
        "CPUPerc": format!("{:.2}%", r.cpu_percent),
        "MemUsage": format!("{} / {}", human_binary_size(s.memory.unwrap_or(0)), human_binary_size(r.memory_limit)),
        "MemPerc": format!("{:.2}%", r.memory_percent),
        "NetIO": format!("{} / {}", human_size(s.net_rx), human_size(s.net_tx)),
        "BlockIO": format!("{} / {}", human_size(s.block_read), human_size(s.block_write)),
        "PIDs": s.pids.unwrap_or(0).to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_docker() {
        let s = Duration::from_secs;
        assert_eq!(
            human_duration(Duration::from_millis(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(s(1)), "1 second");
        assert_eq!(human_duration(s(5)), "5 seconds");
        assert_eq!(human_duration(s(61)), "About a minute");
        assert_eq!(human_duration(s(150)), "2 minutes");
        assert_eq!(human_duration(s(3600)), "About an hour");
        assert_eq!(human_duration(s(5 * 3600)), "5 hours");
        assert_eq!(human_duration(s(3 * 86400)), "3 days");
        assert_eq!(human_duration(s(21 * 86400)), "3 weeks");
        assert_eq!(human_duration(s(90 * 86400)), "3 months");
        assert_eq!(human_duration(s(800 * 86400)), "2 years");
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_234), "4.26MB");
        assert_eq!(human_size(125_000_000), "125MB");
        assert_eq!(human_size(1_200_000_000), "1.2GB");
        assert_eq!(human_size(12_340), "12.3kB");
        assert_eq!(human_binary_size(64 << 20), "64MiB");
        assert_eq!(human_binary_size(2_462_000), "2.348MiB");
        assert_eq!(human_binary_size(512), "512B");
    }

    #[test]
    fn commands_like_docker() {
        assert_eq!(ellipsis("sh -c 'exit 3'", 20), "sh -c 'exit 3'");
        assert_eq!(
            ellipsis("sh -c 'sleep 1000 && echo done'", 20),
            "sh -c 'sleep 1000 &…"
        );
        assert_eq!(go_quote("sh -c \"x\""), "\"sh -c \\\"x\\\"\"");
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            command_text(&argv(&["sh", "-c", "echo hi; exit 3"])),
            "sh -c 'echo hi; exit 3'"
        );
        assert_eq!(command_text(&argv(&["/my prog", "a"])), "/my prog a");
        assert_eq!(command_text(&[]), "");
    }

    #[test]
    fn container_columns_like_docker() {
        let min = 60_000_000_000i64;
        let mut c = ContainerInfo {
            id: "a".repeat(64),
            name: "n".into(),
            image: "busybox".into(),
            image_id: String::new(),
            command: Vec::new(),
            created: 0,
            state: State::Running,
            exit_code: None,
            started_at: Some(min),
            finished_at: None,
            health: None,
        };
        assert_eq!(status_text(&c, 4 * min), "Up 3 minutes");
        c.health = Some("starting".into());
        assert_eq!(status_text(&c, 4 * min), "Up 3 minutes (health: starting)");
        c.health = Some("unhealthy".into());
        assert_eq!(status_text(&c, 4 * min), "Up 3 minutes (unhealthy)");
        c.health = None;
        assert_eq!(ps_status(&c, true, 4 * min), "Up 3 minutes (Paused)");
        assert_eq!(ps_state(&c, true), "paused");
        assert_eq!(ps_status(&c, false, 4 * min), "Up 3 minutes");
        assert_eq!(ps_state(&c, false), "running");
        c.state = State::Exited;
        c.exit_code = Some(3);
        c.finished_at = Some(2 * min);
        assert_eq!(status_text(&c, 4 * min), "Exited (3) 2 minutes ago");
        c.finished_at = None;
        assert_eq!(status_text(&c, 4 * min), "Exited (3) N/A");
        c.state = State::Created;
        assert_eq!(status_text(&c, 4 * min), "Created");
        assert_eq!(
            created_at(1_767_323_045_000_000_006),
            "2026-01-02 03:04:05 +0000 UTC"
        );
        assert_eq!(time_ago(Some(0), 5_000_000_000), "5 seconds ago");
    }
}
