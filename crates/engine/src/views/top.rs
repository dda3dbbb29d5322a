//! `docker top`: the container's processes, as the host's `ps` describes them.

use crate::{Engine, Error, Result};
use serde::Serialize;
use std::process::{Command, Stdio};

/// The processes of a container, one row per process, with `ps`'s column titles (Docker's
/// `ContainerTopResponse`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Top {
    /// `ps`'s header: `UID`, `PID`, `PPID`, ..., `CMD`.
    pub titles: Vec<String>,
    /// Each process's fields, in the order of `titles`; the last one keeps its spaces.
    pub processes: Vec<Vec<String>>,
}

impl Engine {
    /// `docker top`: runs the host's `ps` with `ps_args` (`-ef` when empty) and keeps the rows
    /// of the container's processes. As Docker does, it filters `ps`'s output by its PID column
    /// rather than asking `ps` for those pids: `ps aux -p PIDS` would select every process.
    /// `ps` is spawned (not forked), so any thread may call this.
    pub fn top(&self, key: &str, ps_args: &[String]) -> Result<Top> {
        let pids = self.pids(key)?;
        let args: Vec<&str> = if ps_args.is_empty() {
            vec!["-ef"]
        } else {
            ps_args.iter().map(String::as_str).collect()
        };
        let out = Command::new("ps")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io("run ps", e))?;
        if !out.status.success() {
            return Err(Error::Invalid(format!(
                "Error running ps {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }
}

/// `ps`'s output, restricted to the processes `pids`.
fn parse_ps(text: &str, pids: &[i32]) -> Result<Top> {
    let mut lines = text.lines();
    let titles: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::Invalid("Couldn't find PID field in ps output".into()))?;
    let mut processes = Vec::new();
    for line in lines {
        let mut fields: Vec<String> = line.split_whitespace().map(String::from).collect();
        let Some(pid) = fields.get(pid_col) else {
            continue;
        };
        let pid: i32 = pid.parse().map_err(|_| {
            Error::Invalid(format!(
                "Unexpected pid '{pid}' in the output of ps: {line}"
            ))
        })?;
        if !pids.contains(&pid) {
            continue;
        }
        // The command's words are one field.
        if fields.len() > titles.len() {
            let tail = fields.split_off(titles.len() - 1).join(" ");
            fields.push(tail);
        }
        processes.push(fields);
    }
    Ok(Top { titles, processes })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PS_AUX: &str = "\
USER         PID %CPU %MEM    VSZ   RSS TTY      STAT START   TIME COMMAND
root           1  0.0  0.1 168000 11000 ?        Ss   10:00   0:01 /sbin/init splash
root        4242  0.0  0.0   1300   600 ?        Ss   10:01   0:00 sleep 100
root        4243  0.0  0.0   1300   600 ?        S    10:01   0:00 sh -c while true; do :; done
";

    #[test]
    fn only_the_containers_processes_with_their_whole_command() {
        let t = parse_ps(PS_AUX, &[4242, 4243]).unwrap();
        assert_eq!(t.titles.len(), 11);
        assert_eq!(t.titles[1], "PID");
        assert_eq!(t.processes.len(), 2);
        assert_eq!(t.processes[0][1], "4242");
        assert_eq!(t.processes[0][10], "sleep 100");
        assert_eq!(t.processes[1][10], "sh -c while true; do :; done");
        assert!(parse_ps(PS_AUX, &[]).unwrap().processes.is_empty());
    }

    #[test]
    fn output_without_a_pid_column_is_an_error() {
        let e = parse_ps("USER COMMAND\nroot init\n", &[1]).unwrap_err();
        assert_eq!(e.to_string(), "Couldn't find PID field in ps output");
    }
}
