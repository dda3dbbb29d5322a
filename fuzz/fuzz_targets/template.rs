//! Go templates for `--format` (`crates/docker/src/template.rs`) over an `inspect`-like
//! document: parsing and rendering must not crash or hang; text without actions renders as
//! itself (with Docker's `\t` and `\n`); `json` renders the document as JSON.
#![no_main]

use hako_docker::template::Format;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

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
                       "Labels": {"com.example": "x"}, "ExposedPorts": {"80/tcp": {}},
                       "Entrypoint": null, "Tty": false, "User": ""},
            "HostConfig": {"Memory": 0, "NanoCpus": 1500000000, "RestartPolicy":
                           {"Name": "no", "MaximumRetryCount": 0}},
            "Mounts": [{"Type": "volume", "Name": "data", "Source": "/var/lib/hako/volumes/data",
                        "Destination": "/srv", "RW": true}],
            "NetworkSettings": {"IPAddress": "10.88.0.2", "Ports": {"80/tcp":
                                [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}},
            "Size": 1.5,
            "Neg": -3,
            "Big": 18446744073709551615u64
        })
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(f) = Format::parse(text) else {
        return;
    };
    let out = f.render(doc());
    if text == "json" {
        assert_eq!(out.unwrap(), serde_json::to_string(doc()).unwrap());
        return;
    }
    if !text.contains("{{") {
        let want = text.replace("\\t", "\t").replace("\\n", "\n");
        assert_eq!(out.unwrap(), want);
    }
});
