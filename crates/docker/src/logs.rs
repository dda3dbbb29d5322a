//! A log line as `docker logs` and `GET /containers/{id}/logs` give it.

use hako_engine::logs::LogLine;

/// The text of `l` with the prefixes asked for, in Docker's order: the timestamp and a space
/// (`timestamps`), then the line's attributes and a space (`details`: the comma-separated
/// `k=v` pairs a log driver records from `--log-opt labels/env`; hako's json-file logs record
/// none, so that is an empty list and its space, as Docker prints it then).
pub fn text(l: &LogLine, timestamps: bool, details: bool) -> String {
    let mut s = String::with_capacity(l.text.len() + 40);
    if timestamps {
        s.push_str(&l.time);
        s.push(' ');
    }
    if details {
        s.push(' ');
    }
    s.push_str(&l.text);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use hako_engine::logs::LogStream;

    #[test]
    fn prefixes_in_dockers_order() {
        let l = LogLine {
            stream: LogStream::Stdout,
            time: "2026-12-07T03:00:00.000000001Z".into(),
            time_nanos: 0,
            text: "hi\n".into(),
        };
        assert_eq!(text(&l, false, false), "hi\n");
        assert_eq!(text(&l, false, true), " hi\n");
        assert_eq!(text(&l, true, true), "2026-12-07T03:00:00.000000001Z  hi\n");
    }
}
