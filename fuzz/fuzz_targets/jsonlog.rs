//! The json-file log writer (`hako_base::jsonlog`) on arbitrary container output: whatever a
//! container prints, and however its reads split it, every entry is one line of valid JSON
//! with Docker's three fields, and `hako logs` gives back what was printed. Byte for byte where
//! a stream is valid UTF-8 with lines shorter than the 16 KiB cut; otherwise the same line
//! breaks, with invalid sequences replaced.
//!
//! The input is a list of reads: `[stream byte][length byte][that many bytes]`, stream odd for
//! stderr.
#![no_main]

use hako_base::jsonlog::{JsonLog, Stream};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("fuzz-jsonlog-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut log = JsonLog::open(&path, 0, 1).expect("open the log");
    let mut printed: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut rest = data;
    while let [stream, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (piece, after) = tail.split_at(n);
        let (s, i) = match stream % 2 {
            0 => (Stream::Stdout, 0),
            _ => (Stream::Stderr, 1),
        };
        log.output(s, piece);
        printed[i].extend_from_slice(piece);
        rest = after;
    }
    log.end(Stream::Stdout);
    log.end(Stream::Stderr);
    drop(log);
    let text = std::fs::read(&path).expect("read the log");
    let _ = std::fs::remove_file(&path);
    let text = String::from_utf8(text).expect("the log is UTF-8");
    let mut logged = [String::new(), String::new()];
    for line in text.split_terminator('\n') {
        let v: serde_json::Value = serde_json::from_str(line).expect("each entry is JSON");
        let o = v.as_object().expect("each entry is an object");
        assert_eq!(o.len(), 3, "{line}");
        let i = match o["stream"].as_str() {
            Some("stdout") => 0,
            Some("stderr") => 1,
            other => panic!("stream {other:?}"),
        };
        assert!(
            o["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
        let entry = o["log"].as_str().expect("log is a string");
        assert!(!entry.is_empty(), "an empty entry: {line}");
        // One line per entry: a newline only at its end.
        assert!(!entry.trim_end_matches('\n').contains('\n'), "{line}");
        logged[i].push_str(entry);
    }
    for i in 0..2 {
        let p = &printed[i];
        let short_lines = p.split(|&b| b == b'\n').all(|l| l.len() < 16 * 1024);
        match std::str::from_utf8(p) {
            Ok(s) if short_lines => assert_eq!(logged[i], s),
            _ => assert_eq!(
                logged[i].matches('\n').count(),
                p.iter().filter(|&&b| b == b'\n').count()
            ),
        }
    }
});
