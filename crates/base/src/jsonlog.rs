//! The writing side of Docker's json-file log: one JSON object per line of output,
//! `{"log":"…\n","stream":"stdout","time":"…"}`, with `--log-opt max-size/max-file` rotation.
//! The per-container monitor writes a detached container's log with it, and a foreground
//! `hako run` its own container's, so `hako logs` reads one format whoever ran it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

/// Docker splits a line longer than its 16 KiB read buffer, so one without a newline cannot
/// grow without bound.
const LONGEST_LINE: usize = 16 * 1024;

/// Which of the container's outputs a piece came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output (and a terminal's output, as Docker logs it).
    Stdout = 0,
    /// Standard error.
    Stderr = 1,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A container's json-file log, open for appending. When the file would exceed `max_size`, it
/// becomes LOG.1 (older ones shift up; the oldest beyond `max_file` goes).
pub struct JsonLog {
    file: Option<File>,
    path: PathBuf,
    written: u64,
    max_size: u64,
    max_file: u32,
    /// Each stream's line not ended yet.
    partial: [Vec<u8>; 2],
}

impl JsonLog {
    /// Opens (creating) the log at `path`; `max_size` 0 never rotates.
    pub fn open(path: impl Into<PathBuf>, max_size: u64, max_file: u32) -> io::Result<JsonLog> {
        let path = path.into();
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let written = file.metadata().map_or(0, |m| m.len());
        Ok(JsonLog {
            file: Some(file),
            path,
            written,
            max_size,
            max_file: max_file.max(1),
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// A log that records nothing, for a writer whose file could not be opened.
    pub fn discard() -> JsonLog {
        JsonLog {
            file: None,
            path: PathBuf::new(),
            written: 0,
            max_size: 0,
            max_file: 1,
            partial: [Vec::new(), Vec::new()],
        }
    }

    /// Appends output of `stream` a line at a time, keeping an unended line for later.
    pub fn output(&mut self, stream: Stream, data: &[u8]) {
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(pos + 1);
            let mut held = std::mem::take(&mut self.partial[stream as usize]);
            if held.is_empty() {
                self.write_line(stream, line);
            } else {
                held.extend_from_slice(line);
                self.write_line(stream, &held);
                held.clear();
            }
            // The buffer is kept for the next unended line.
            self.partial[stream as usize] = held;
            rest = after;
        }
        let held = &mut self.partial[stream as usize];
        held.extend_from_slice(rest);
        if held.len() >= LONGEST_LINE {
            let chunk = std::mem::take(held);
            self.write_line(stream, &chunk);
        }
    }

    /// Logs the unended line of a stream that has ended.
    pub fn end(&mut self, stream: Stream) {
        let rest = std::mem::take(&mut self.partial[stream as usize]);
        if !rest.is_empty() {
            self.write_line(stream, &rest);
        }
    }

    fn write_line(&mut self, stream: Stream, line: &[u8]) {
        if self.file.is_none() {
            return;
        }
        let entry = entry(
            stream,
            line,
            &crate::time::rfc3339(crate::time::now_nanos()),
        );
        self.append(entry.as_bytes());
    }

    fn append(&mut self, data: &[u8]) {
        if self.max_size > 0 && self.written > 0 && self.written + data.len() as u64 > self.max_size
        {
            self.rotate();
        }
        if let Some(f) = &mut self.file {
            if f.write_all(data).is_ok() {
                self.written += data.len() as u64;
            }
        }
    }

    fn rotate(&mut self) {
        self.file = None;
        let numbered = |i: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        if self.max_file > 1 {
            for i in (1..self.max_file - 1).rev() {
                let _ = std::fs::rename(numbered(i), numbered(i + 1));
            }
            let _ = std::fs::rename(&self.path, numbered(1));
        }
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)
            .ok();
        self.written = 0;
    }
}

/// One line of the log, as Docker's json-file driver writes it (invalid UTF-8 replaced).
fn entry(stream: Stream, line: &[u8], time: &str) -> String {
    let mut s = String::with_capacity(line.len() + 80);
    s.push_str("{\"log\":\"");
    for c in String::from_utf8_lossy(line).chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push_str("\",\"stream\":\"");
    s.push_str(stream.name());
    s.push_str("\",\"time\":\"");
    s.push_str(time);
    s.push_str("\"}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                // The text up to the stream field, without the time.
                let end = l.find(",\"time\"").unwrap();
                l[..end].to_string()
            })
            .collect()
    }

    #[test]
    fn lines_are_split_at_newlines_and_unended_ones_wait() {
        let dir = std::env::temp_dir().join(format!("jsonlog-{}-split", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.log");
        let mut log = JsonLog::open(&path, 0, 1).unwrap();
        log.output(Stream::Stdout, b"one\ntw");
        log.output(Stream::Stderr, b"err");
        log.output(Stream::Stdout, b"o\nthr");
        assert_eq!(
            lines(&path),
            [
                r#"{"log":"one\n","stream":"stdout""#,
                r#"{"log":"two\n","stream":"stdout""#
            ]
        );
        log.end(Stream::Stdout);
        log.end(Stream::Stderr);
        log.end(Stream::Stderr);
        assert_eq!(
            lines(&path)[2..],
            [
                r#"{"log":"thr","stream":"stdout""#,
                r#"{"log":"err","stream":"stderr""#
            ]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn control_characters_quotes_and_invalid_utf8_are_escaped() {
        let e = entry(Stream::Stderr, b"a\"b\\c\td\r\x01\xff\n", "T");
        assert_eq!(
            e,
            "{\"log\":\"a\\\"b\\\\c\\td\\r\\u0001\u{fffd}\\n\",\"stream\":\"stderr\",\"time\":\"T\"}\n"
        );
    }

    #[test]
    fn a_line_without_newline_is_cut_at_16k() {
        let dir = std::env::temp_dir().join(format!("jsonlog-{}-long", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.log");
        let mut log = JsonLog::open(&path, 0, 1).unwrap();
        log.output(Stream::Stdout, &[b'x'; LONGEST_LINE - 1]);
        assert!(lines(&path).is_empty());
        log.output(Stream::Stdout, b"yz");
        let got = lines(&path);
        assert_eq!(got.len(), 1);
        assert!(got[0].contains(&format!("{}yz\"", "x".repeat(LONGEST_LINE - 1))));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rotation_keeps_max_file_files() {
        let dir = std::env::temp_dir().join(format!("jsonlog-{}-rotate", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.log");
        // Each entry is about 70 bytes: one per file.
        let mut log = JsonLog::open(&path, 100, 3).unwrap();
        for i in 0..5 {
            log.output(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        let name = |s: &str| dir.join(format!("c.log{s}"));
        assert!(lines(&path)[0].contains("line 4"));
        assert!(lines(&name(".1"))[0].contains("line 3"));
        assert!(lines(&name(".2"))[0].contains("line 2"));
        assert!(!name(".3").exists());
        // A log opened again appends, and counts what the file holds.
        drop(log);
        let mut log = JsonLog::open(&path, 100, 3).unwrap();
        log.output(Stream::Stdout, b"line 5\n");
        assert!(lines(&path)[0].contains("line 5"));
        assert!(lines(&name(".1"))[0].contains("line 4"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_discarding_log_writes_nothing() {
        let mut log = JsonLog::discard();
        log.output(Stream::Stdout, b"gone\n");
        log.end(Stream::Stdout);
    }
}
