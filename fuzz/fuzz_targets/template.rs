//! Go templates for `--format` (`crates/docker/src/template.rs` over `crates/gotmpl`) on an
//! `inspect`-like document and on a `ps` row with a `.Label` method: parsing and rendering
//! must not crash or hang, and stay within the engine's bounds (output size, run time);
//! rendering is deterministic (maps print and range in key order); text without actions
//! renders as itself (with Docker's `\t` and `\n`); `json` renders the document as JSON;
//! a `table` list has one header line more than rows.
#![no_main]

use hako_docker::template::{self, Format, TemplateValue};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn doc() -> &'static serde_json::Value {
    static DOC: OnceLock<serde_json::Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::json!({
            "Id": "4f2c8a0b9d1e",
            "Name": "/web",
            "Created": "2026-01-02T03:04:05.123456789Z",
            "State": {"Status": "running", "Running": true, "Pid": 4242, "ExitCode": 0,
                      "StartedAt": "2026-01-02T03:04:06Z", "Health": null},
            "Config": {"Cmd": ["sh", "-c", "echo hi"], "Env": ["PATH=/usr/bin", "A=b c"],
                       "Labels": {"com.example": "x", "b": "2"}, "ExposedPorts": {"80/tcp": {}},
                       "Entrypoint": null, "Tty": false, "User": ""},
            "HostConfig": {"Memory": 0, "NanoCpus": 1500000000, "RestartPolicy":
                           {"Name": "no", "MaximumRetryCount": 0}},
            "Mounts": [{"Type": "volume", "Name": "data", "Source": "/var/lib/hako/volumes/data",
                        "Destination": "/srv", "RW": true, "Driver": "local"}],
            "NetworkSettings": {"IPAddress": "10.88.0.2", "Ports": {"80/tcp":
                                [{"HostIp": "0.0.0.0", "HostPort": "8080"}]},
                                "Networks": {"bridge": {}, "n1": {}}},
            "Size": 1.5,
            "Neg": -3,
            "Big": 18446744073709551615u64
        })
    })
}

/// The engine's output bound (`hako_gotmpl::Limits::default`), with room for the newlines
/// and table padding a list adds.
const MAX_OUTPUT: usize = 4 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let start = Instant::now();
    if let Ok(f) = Format::parse(text) {
        let out = f.render(doc());
        if let Ok(s) = &out {
            assert!(s.len() <= MAX_OUTPUT, "{} bytes", s.len());
        }
        // Deterministic: the same text again (a map ranged in a random order would differ).
        let again = f.render(doc());
        assert_eq!(
            out.as_ref().map_err(ToString::to_string),
            again.as_ref().map_err(ToString::to_string)
        );
        if text == "json" {
            assert_eq!(out.unwrap(), serde_json::to_string(doc()).unwrap());
        } else if !text.contains("{{") {
            let want = text.replace("\\t", "\t").replace("\\n", "\n");
            assert_eq!(out.unwrap(), want);
        }
    }
    if let Ok(f) = Format::parse_list(text, "table {{.Names}}") {
        let fields = serde_json::json!({"ID": "4f2c8a0b9d1e", "Names": "web", "Image": "busybox",
                                        "Status": "Up 2 seconds", "Ports": ""});
        let rows = [
            template::container_row(&fields, Some(doc()), false),
            template::container_row(&fields, None, true),
        ];
        if let Ok(s) = f.render_list(template::PS_HEADERS, &rows) {
            assert!(s.len() <= 3 * MAX_OUTPUT, "{} bytes", s.len());
            // Each row ends with a newline, and a table starts with its header line; a row's
            // own newlines add lines.
            let min = rows.len() + usize::from(f.is_table());
            assert!(s.matches('\n').count() >= min, "{s:?}");
        }
        let _ = f.render_value(&TemplateValue::Nil);
    }
    // Bounded run time: the step bound stops a hostile template well within this.
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?} for one input",
        start.elapsed()
    );
});
