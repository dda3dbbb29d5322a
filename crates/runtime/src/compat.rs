//! Parsing of OCI documents where the `oci-spec` crate's spelling differs from the runtime
//! spec's: the documents are normalised to the crate's spelling before typed parsing.

use oci_spec::runtime::{Process, Spec};

/// The spec spells the flag `SCHED_FLAG_RESET_ON_FORK`; oci-spec only parses
/// `SCHED_RESET_ON_FORK`. Both are accepted.
const SPEC_RESET_ON_FORK: &str = "SCHED_FLAG_RESET_ON_FORK";
const CRATE_RESET_ON_FORK: &str = "SCHED_RESET_ON_FORK";

/// Parses a bundle's `config.json`.
pub fn parse_spec(data: &[u8]) -> Result<Spec, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_slice(data)?;
    if let Some(p) = v.get_mut("process") {
        normalise_process(p);
    }
    serde_json::from_value(v)
}

/// Parses a process document (`exec --process`).
pub fn parse_process(data: &[u8]) -> Result<Process, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_slice(data)?;
    normalise_process(&mut v);
    serde_json::from_value(v)
}

fn normalise_process(process: &mut serde_json::Value) {
    let Some(flags) = process
        .pointer_mut("/scheduler/flags")
        .and_then(|f| f.as_array_mut())
    else {
        return;
    };
    for f in flags {
        if f.as_str() == Some(SPEC_RESET_ON_FORK) {
            *f = CRATE_RESET_ON_FORK.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSchedulerFlag;

    fn config(flag: &str) -> Vec<u8> {
        serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": "/"},
            "process": {"cwd": "/", "args": ["true"], "user": {"uid": 0, "gid": 0},
                "scheduler": {"policy": "SCHED_OTHER",
                    "flags": [flag, "SCHED_FLAG_KEEP_POLICY"]}}
        })
        .to_string()
        .into_bytes()
    }

    fn flags(s: &Spec) -> Vec<LinuxSchedulerFlag> {
        let sched = s.process().as_ref().unwrap().scheduler().as_ref().unwrap();
        sched.flags().clone().unwrap()
    }

    #[test]
    fn both_spellings_of_reset_on_fork() {
        let want = vec![
            LinuxSchedulerFlag::SchedResetOnFork,
            LinuxSchedulerFlag::SchedFlagKeepPolicy,
        ];
        assert_eq!(
            flags(&parse_spec(&config(SPEC_RESET_ON_FORK)).unwrap()),
            want
        );
        assert_eq!(
            flags(&parse_spec(&config(CRATE_RESET_ON_FORK)).unwrap()),
            want
        );
        assert!(parse_spec(&config("SCHED_FLAG_BOGUS")).is_err());

        let v: serde_json::Value = serde_json::from_slice(&config(SPEC_RESET_ON_FORK)).unwrap();
        let p = parse_process(v["process"].to_string().as_bytes()).unwrap();
        let sched = p.scheduler().as_ref().unwrap();
        assert_eq!(sched.flags().as_ref().unwrap(), &want);
    }

    #[test]
    fn without_process_or_scheduler() {
        let s = parse_spec(br#"{"ociVersion": "1.2.0", "root": {"path": "/"}}"#).unwrap();
        assert!(s.process().is_none());
        assert!(parse_spec(b"{").is_err());
    }
}
