//! The Dockerfile syntax: parser directives, comments, line continuations, heredocs, flags.
//!
//! Parsing is purely syntactic: it yields one [`Instruction`] per logical line with its flags and
//! raw (unexpanded) arguments. Variable expansion happens later, in the executor, because its
//! environment depends on the stage being built ([`crate::words`]).

use crate::Error;

/// Instructions the builder knows; anything else is an error naming the line.
pub const KNOWN: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// A here-document attached to an instruction (`RUN <<EOF`, `COPY <<EOF /file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word (`EOF`).
    pub name: String,
    /// The body, each line ending with `\n`.
    pub content: String,
    /// False when the delimiter was quoted (`<<"EOF"`): the body is taken literally.
    pub expand: bool,
}

/// One logical instruction of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// Upper-case instruction name (`RUN`).
    pub keyword: String,
    /// `--name=value` flags before the arguments (a bare `--name` has an empty value).
    pub flags: Vec<(String, String)>,
    /// The arguments after the flags, continuations joined, not expanded.
    pub args: String,
    /// The instruction as written, continuations joined (what `Step N/M :` prints).
    pub original: String,
    /// Here-documents, in the order their delimiters appear.
    pub heredocs: Vec<Heredoc>,
}

impl Instruction {
    /// The value of a flag, if given.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Fails when a flag other than `allowed` is present.
    pub fn check_flags(&self, allowed: &[&str]) -> Result<(), Error> {
        for (n, _) in &self.flags {
            if !allowed.contains(&n.as_str()) {
                return Err(Error::at(
                    self.line,
                    format!("{}: unknown flag: --{n}", self.keyword),
                ));
            }
        }
        Ok(())
    }

    /// The arguments as an exec-form JSON array of strings, if they are one.
    pub fn json_args(&self) -> Option<Vec<String>> {
        parse_json_array(&self.args)
    }
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The escape character (`\` unless `# escape=` says otherwise).
    pub escape: char,
    /// All instructions, in order.
    pub instructions: Vec<Instruction>,
}

/// `["a", "b"]` → the strings; anything else (not JSON, not all strings) → None.
pub fn parse_json_array(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    match serde_json::from_str::<serde_json::Value>(t) {
        Ok(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, Error> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut escape = '\\';
    let mut i = 0;
    // Parser directives: only at the very top, before any comment that is not one, blank line
    // or instruction, as Docker reads them.
    let mut seen_directives = Vec::new();
    while i < lines.len() {
        let l = lines[i].trim();
        let Some(rest) = l.strip_prefix('#') else {
            break;
        };
        let Some((k, v)) = rest.split_once('=') else {
            break;
        };
        let key = k.trim().to_ascii_lowercase();
        if key.is_empty() || key.contains(char::is_whitespace) {
            break;
        }
        if seen_directives.contains(&key) {
            return Err(Error::at(
                i + 1,
                format!("only one {key} parser directive can be used"),
            ));
        }
        match key.as_str() {
            "escape" => {
                escape = match v.trim() {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(Error::at(
                            i + 1,
                            format!("invalid escape token '{other}' does not match ` or \\"),
                        ))
                    }
                }
            }
            // `syntax` names a BuildKit frontend; hako has one parser, so it is accepted and
            // ignored. `check` configures BuildKit's linter, which hako does not have.
            "syntax" | "check" => {}
            _ => break,
        }
        seen_directives.push(key);
        i += 1;
    }

    let mut out = Vec::new();
    while i < lines.len() {
        let raw = strip_cr(lines[i]);
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i += 1;
            continue;
        }
        let start = i + 1;
        // Join continuation lines; comment lines and empty lines inside are dropped.
        let mut logical = String::new();
        let mut cur = trimmed.to_string();
        i += 1;
        loop {
            let t = cur.trim_end();
            match t.strip_suffix(escape) {
                Some(body) => {
                    logical.push_str(body);
                    // Find the next line that is not a comment or blank.
                    loop {
                        if i >= lines.len() {
                            cur = String::new();
                            break;
                        }
                        let next = strip_cr(lines[i]);
                        i += 1;
                        let nt = next.trim_start();
                        if nt.starts_with('#') || nt.trim().is_empty() {
                            continue;
                        }
                        cur = next.to_string();
                        break;
                    }
                    if cur.is_empty() && i >= lines.len() {
                        break;
                    }
                }
                None => {
                    logical.push_str(&cur);
                    break;
                }
            }
        }
        let logical = logical.trim().to_string();
        let (kw, rest) = match logical.find(char::is_whitespace) {
            Some(p) => (&logical[..p], logical[p..].trim_start()),
            None => (logical.as_str(), ""),
        };
        let keyword = kw.to_ascii_uppercase();
        if !KNOWN.contains(&keyword.as_str()) {
            return Err(Error::at(
                start,
                format!("unknown instruction: {}", kw.to_ascii_uppercase()),
            ));
        }
        let (flags, args) = split_flags(rest);
        let mut ins = Instruction {
            line: start,
            keyword,
            flags,
            args: args.to_string(),
            original: logical.clone(),
            heredocs: Vec::new(),
        };
        if matches!(ins.keyword.as_str(), "RUN" | "COPY" | "ADD") && ins.json_args().is_none() {
            for (name, expand, strip_tabs) in heredoc_markers(&ins.args) {
                let mut content = String::new();
                loop {
                    if i >= lines.len() {
                        return Err(Error::at(
                            start,
                            format!("{}: unterminated heredoc {name}", ins.keyword),
                        ));
                    }
                    let mut l = strip_cr(lines[i]).to_string();
                    i += 1;
                    if strip_tabs {
                        l = l.trim_start_matches('\t').to_string();
                    }
                    if l == name {
                        break;
                    }
                    content.push_str(&l);
                    content.push('\n');
                }
                ins.heredocs.push(Heredoc {
                    name,
                    content,
                    expand,
                });
            }
        }
        if ins.args.is_empty() && !matches!(ins.keyword.as_str(), "ONBUILD") {
            return Err(Error::at(
                start,
                format!("{} requires at least one argument", ins.keyword),
            ));
        }
        out.push(ins);
    }
    Ok(Dockerfile {
        escape,
        instructions: out,
    })
}

fn strip_cr(l: &str) -> &str {
    l.strip_suffix('\r').unwrap_or(l)
}

/// Splits leading `--flag[=value]` words off the arguments.
pub fn split_flags(rest: &str) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    let mut r = rest.trim_start();
    while let Some(f) = r.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let word = &f[..end];
        if word.is_empty() {
            break;
        }
        let (n, v) = word.split_once('=').unwrap_or((word, ""));
        flags.push((n.to_string(), v.to_string()));
        r = f[end..].trim_start();
    }
    (flags, r)
}

/// The heredoc delimiters in an instruction's arguments: (name, expand, strip leading tabs).
/// `<<` inside quotes does not count, nor `<<<` (a here-string for the shell).
pub fn heredoc_markers(args: &str) -> Vec<(String, bool, bool)> {
    let b: Vec<char> = args.chars().collect();
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut k = 0;
    while k < b.len() {
        let c = b[k];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            k += 1;
            continue;
        }
        if c == '\'' || c == '"' {
            quote = Some(c);
            k += 1;
            continue;
        }
        if c == '<' && b.get(k + 1) == Some(&'<') && b.get(k + 2) != Some(&'<') {
            let mut j = k + 2;
            let strip = b.get(j) == Some(&'-');
            if strip {
                j += 1;
            }
            let q = match b.get(j) {
                Some(&c) if c == '"' || c == '\'' => {
                    j += 1;
                    Some(c)
                }
                _ => None,
            };
            let s = j;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == '_' || b[j] == '-') {
                j += 1;
            }
            let name: String = b[s..j].iter().collect();
            if let Some(qc) = q {
                if b.get(j) == Some(&qc) {
                    j += 1;
                } else {
                    k += 2;
                    continue;
                }
            }
            if !name.is_empty() {
                out.push((name, q.is_none(), strip));
            }
            k = j;
            continue;
        }
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(d: &Dockerfile) -> Vec<&str> {
        d.instructions.iter().map(|i| i.keyword.as_str()).collect()
    }

    #[test]
    fn seed_dockerfile() {
        let d = parse(
            "FROM ubuntu:20.04\nRUN apt-get update\nWORKDIR /root\nCOPY test01.txt .\nCMD cat test01.txt\n",
        )
        .unwrap();
        assert_eq!(kw(&d), ["FROM", "RUN", "WORKDIR", "COPY", "CMD"]);
        assert_eq!(d.instructions[3].args, "test01.txt .");
        assert_eq!(d.instructions[4].line, 5);
        assert_eq!(d.instructions[4].original, "CMD cat test01.txt");
    }

    #[test]
    fn case_insensitive_and_comments() {
        let d = parse(
            "# a comment\n\nfrom busybox\n  # indented comment\nrun echo hi # not a comment\n",
        )
        .unwrap();
        assert_eq!(kw(&d), ["FROM", "RUN"]);
        assert_eq!(d.instructions[1].args, "echo hi # not a comment");
        assert_eq!(d.instructions[1].line, 5);
    }

    #[test]
    fn continuations_with_comments_and_blank_lines() {
        let d = parse(
            "FROM x\nRUN echo a \\\n# inner comment\n\n    && echo b \\\n    && echo c\nCMD x\n",
        )
        .unwrap();
        assert_eq!(d.instructions[1].args, "echo a     && echo b     && echo c");
        assert_eq!(d.instructions[1].line, 2);
        assert_eq!(d.instructions[2].line, 7);
    }

    #[test]
    fn escape_directive() {
        let d = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo\n").unwrap();
        assert_eq!(d.escape, '`');
        assert_eq!(d.instructions[1].args, "dir c:\\   && echo");
        let d = parse("# syntax=docker/dockerfile:1\n# escape=\\\nFROM x\n").unwrap();
        assert_eq!(d.escape, '\\');
        // A directive after an instruction is just a comment.
        let d = parse("FROM x\n# escape=`\nRUN a \\\n b\n").unwrap();
        assert_eq!(d.escape, '\\');
        assert_eq!(d.instructions[1].args, "a  b");
        assert!(parse("# escape=x\nFROM x\n")
            .unwrap_err()
            .to_string()
            .contains("line 1"));
    }

    #[test]
    fn flags_and_json() {
        let d = parse(
            "FROM x\nCOPY --from=builder --chown=1:2 /a /b\nCMD [\"/app\", \"-v\"]\nCMD [oops\n",
        )
        .unwrap();
        let c = &d.instructions[1];
        assert_eq!(c.flag("from"), Some("builder"));
        assert_eq!(c.flag("chown"), Some("1:2"));
        assert_eq!(c.args, "/a /b");
        assert_eq!(
            d.instructions[2].json_args().unwrap(),
            vec!["/app".to_string(), "-v".to_string()]
        );
        assert_eq!(d.instructions[3].json_args(), None);
        assert!(c
            .check_flags(&["from"])
            .unwrap_err()
            .to_string()
            .contains("line 2"));
    }

    #[test]
    fn heredocs() {
        let d = parse(
            "FROM x\nRUN <<EOF\necho one\necho two\nEOF\nCOPY <<-\"END\" /f\n\thello $X\n\tEND\nRUN cat <<A <<B\na\nA\nb\nB\nCMD x\n",
        )
        .unwrap();
        assert_eq!(kw(&d), ["FROM", "RUN", "COPY", "RUN", "CMD"]);
        let r = &d.instructions[1];
        assert_eq!(r.heredocs.len(), 1);
        assert_eq!(r.heredocs[0].content, "echo one\necho two\n");
        assert!(r.heredocs[0].expand);
        let c = &d.instructions[2];
        assert_eq!(c.heredocs[0].content, "hello $X\n");
        assert!(!c.heredocs[0].expand);
        assert_eq!(d.instructions[3].heredocs.len(), 2);
        assert_eq!(d.instructions[4].line, 14);
        // Quoted `<<` and here-strings are not heredocs.
        assert!(heredoc_markers("echo '<<EOF'").is_empty());
        assert!(heredoc_markers("cat <<< word").is_empty());
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("FROM x\n\nFOO bar\n").unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("unknown instruction: FOO"),
            "{e}"
        );
        let e = parse("FROM x\nRUN <<EOF\necho\n").unwrap_err().to_string();
        assert!(
            e.contains("line 2") && e.contains("unterminated heredoc"),
            "{e}"
        );
        let e = parse("FROM x\nRUN\n").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("RUN requires"), "{e}");
    }

    #[test]
    fn crlf_and_trailing_continuation() {
        let d = parse("FROM x\r\nRUN a \\\r\n  b\r\n").unwrap();
        assert_eq!(d.instructions[1].args, "a   b");
        let d = parse("FROM x\nRUN a \\\n").unwrap();
        assert_eq!(d.instructions[1].args, "a");
    }
}
