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
///
/// The entries of one piece of output are written with one `write(2)` and one timestamp (as
/// Docker stamps each read, not each line): a container printing short lines made one system
/// call and one time formatting per line, and logged 20 MB of `yes` in 6 s instead of 0.3.
pub struct JsonLog {
    file: Option<File>,
    path: PathBuf,
    written: u64,
    max_size: u64,
    max_file: u32,
    /// Each stream's line not ended yet.
    partial: [Vec<u8>; 2],
    /// Entries made but not yet written.
    batch: Vec<u8>,
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
            batch: Vec::new(),
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
            batch: Vec::new(),
        }
    }

    /// Appends output of `stream` a line at a time, keeping an unended line for later.
    pub fn output(&mut self, stream: Stream, data: &[u8]) {
        if self.file.is_none() {
            return;
        }
        let time = crate::time::rfc3339(crate::time::now_nanos());
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
            let (line, after) = rest.split_at(pos + 1);
            let mut held = std::mem::take(&mut self.partial[stream as usize]);
            if held.is_empty() {
                self.add(stream, line, &time);
            } else {
                held.extend_from_slice(line);
                self.add(stream, &held, &time);
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
            self.add(stream, &chunk, &time);
        }
        self.flush();
    }

    /// Logs the unended line of a stream that has ended.
    pub fn end(&mut self, stream: Stream) {
        let rest = std::mem::take(&mut self.partial[stream as usize]);
        if !rest.is_empty() && self.file.is_some() {
            self.add(
                stream,
                &rest,
                &crate::time::rfc3339(crate::time::now_nanos()),
            );
            self.flush();
        }
    }

    /// Adds one entry to the batch, rotating first when it would not fit in the file.
    fn add(&mut self, stream: Stream, line: &[u8], time: &str) {
        let before = self.batch.len();
        entry_into(&mut self.batch, stream, line, time);
        let pending = self.written + before as u64;
        if self.max_size > 0
            && pending > 0
            && pending + (self.batch.len() - before) as u64 > self.max_size
        {
            let entry = self.batch.split_off(before);
            self.flush();
            self.rotate();
            self.batch = entry;
        }
    }

    fn flush(&mut self) {
        if let Some(f) = &mut self.file {
            if f.write_all(&self.batch).is_ok() {
                self.written += self.batch.len() as u64;
            }
        }
        self.batch.clear();
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

/// Appends one line of the log as Docker's json-file driver writes it (invalid UTF-8
/// replaced, as Go's encoder does).
fn entry_into(out: &mut Vec<u8>, stream: Stream, line: &[u8], time: &str) {
    out.extend_from_slice(b"{\"log\":\"");
    match std::str::from_utf8(line) {
        Ok(_) => escape_into(out, line),
        Err(_) => escape_into(out, String::from_utf8_lossy(line).as_bytes()),
    }
    out.extend_from_slice(b"\",\"stream\":\"");
    out.extend_from_slice(stream.name().as_bytes());
    out.extend_from_slice(b"\",\"time\":\"");
    out.extend_from_slice(time.as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// JSON string escaping of valid UTF-8: only ASCII needs it, so the bytes between escapes are
/// copied in runs.
fn escape_into(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&s[run..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        run = i + 1;
    }
    out.extend_from_slice(&s[run..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty directory of this test process (the crate has no dependencies, tempfile
    /// included).
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("jsonlog-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

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
        let dir = scratch("split");
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
        let mut e = Vec::new();
        entry_into(&mut e, Stream::Stderr, b"a\"b\\c\td\r\x01\xff\n", "T");
        assert_eq!(
            String::from_utf8(e).unwrap(),
            "{\"log\":\"a\\\"b\\\\c\\td\\r\\u0001\u{fffd}\\n\",\"stream\":\"stderr\",\"time\":\"T\"}\n"
        );
    }

    #[test]
    fn a_line_without_newline_is_cut_at_16k() {
        let dir = scratch("long");
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
        let dir = scratch("rotate");
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
        // Lines that arrive in one piece are written together, and rotate the same way.
        log.output(Stream::Stdout, b"line 6\nline 7\nline 8\n");
        assert!(lines(&path)[0].contains("line 8"));
        assert!(lines(&name(".1"))[0].contains("line 7"));
        assert!(lines(&name(".2"))[0].contains("line 6"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_discarding_log_writes_nothing() {
        let mut log = JsonLog::discard();
        log.output(Stream::Stdout, b"gone\n");
        log.end(Stream::Stdout);
    }
}
