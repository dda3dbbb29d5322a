//! Path patterns compiled to regular expressions, as Docker compiles `.dockerignore` patterns
//! (moby's patternmatcher) and as Go's `filepath.Match` reads COPY sources.
//!
//! Matching by regular expression takes time linear in the path. The backtracking matchers this
//! replaces recursed once per pattern character (a `.dockerignore` line of 50,000 `*` overflowed
//! the stack) and took exponential time on patterns like `*a*a*a…b`.

use regex::Regex;

/// Compiled patterns larger than this are refused rather than built: a hostile `.dockerignore`
/// or Dockerfile must not make the builder allocate without bound.
const SIZE_LIMIT: usize = 1 << 20;

/// `**/` in `.dockerignore`: any number of whole segments, none included.
const ANY_SEGMENTS: &str = "(?:.*/)?";
/// `*`: anything within one segment.
const IN_SEGMENT: &str = "[^/]*";

/// Which dialect a pattern is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `.dockerignore`: `**` spans path segments, and a pattern matching a directory matches
    /// everything under it.
    DockerIgnore,
    /// `filepath.Match` on a whole relative path: `*` never crosses `/`.
    FilepathMatch,
}

/// Compiles `pattern` (already cleaned, without a leading `/`); a malformed one is an error
/// (`syntax error in pattern …`), as in Go.
pub fn compile(pattern: &str, dialect: Dialect) -> Result<Regex, String> {
    let src = translate(pattern, dialect)?;
    regex::RegexBuilder::new(&src)
        .size_limit(SIZE_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => {
                format!("pattern {} is too complex", shorten(pattern))
            }
            e => format!("syntax error in pattern {}: {e}", shorten(pattern)),
        })
}

/// The pattern as a message shows it: long ones are cut.
fn shorten(p: &str) -> String {
    match p.char_indices().nth(60) {
        Some((i, _)) => format!("{:?}…", &p[..i]),
        None => format!("{p:?}"),
    }
}

fn translate(pattern: &str, dialect: Dialect) -> Result<String, String> {
    let bad = || format!("syntax error in pattern {}", shorten(pattern));
    // `(?s)`: file names may hold newlines, which `.` must match too.
    let mut re = String::from("(?s)^");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if dialect == Dialect::DockerIgnore && chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is read as `**`.
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                // Runs of wildcards mean what one does; collapsing them keeps the expression
                // small.
                if i == chars.len() {
                    re.push_str(".*");
                } else if !re.ends_with(ANY_SEGMENTS) {
                    re.push_str(ANY_SEGMENTS);
                }
            }
            '*' => {
                if !re.ends_with(IN_SEGMENT) {
                    re.push_str(IN_SEGMENT);
                }
            }
            '?' => re.push_str("[^/]"),
            '\\' => match chars.get(i) {
                Some(&n) => {
                    i += 1;
                    push_literal(&mut re, n);
                }
                None => return Err(bad()),
            },
            '[' => {
                let mut class = String::from("[");
                if matches!(chars.get(i), Some('^')) {
                    class.push('^');
                    i += 1;
                }
                let mut members = 0;
                loop {
                    let Some(&m) = chars.get(i) else {
                        return Err(bad());
                    };
                    i += 1;
                    if m == ']' && members > 0 {
                        break;
                    }
                    let lo = if m == '\\' {
                        let Some(&e) = chars.get(i) else {
                            return Err(bad());
                        };
                        i += 1;
                        e
                    } else {
                        m
                    };
                    push_class_member(&mut class, lo);
                    if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|c| *c != ']') {
                        let mut hi = chars[i + 1];
                        i += 2;
                        if hi == '\\' {
                            let Some(&e) = chars.get(i) else {
                                return Err(bad());
                            };
                            i += 1;
                            hi = e;
                        }
                        if hi < lo {
                            return Err(bad());
                        }
                        class.push('-');
                        push_class_member(&mut class, hi);
                    }
                    members += 1;
                }
                class.push(']');
                re.push_str(&class);
            }
            c => push_literal(&mut re, c),
        }
    }
    if dialect == Dialect::DockerIgnore {
        // A matched directory covers its contents.
        re.push_str("(?:/.*)?");
    }
    re.push('$');
    Ok(re)
}

fn push_literal(re: &mut String, c: char) {
    let mut buf = [0u8; 4];
    re.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

/// A character inside `[...]`, escaped so that the regex crate's own class syntax (`&&`, `--`,
/// `[:alpha:]`, nested classes) never applies.
fn push_class_member(class: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || !c.is_ascii() {
        class.push(c);
    } else {
        class.push('\\');
        class.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, d: Dialect, s: &str) -> bool {
        compile(p, d).unwrap().is_match(s)
    }

    #[test]
    fn filepath_match() {
        let f = Dialect::FilepathMatch;
        assert!(m("*.txt", f, "a.txt"));
        assert!(!m("*.txt", f, "d/a.txt"));
        assert!(m("d/*", f, "d/a.txt"));
        assert!(m("f?o", f, "foo"));
        assert!(!m("f?o", f, "f/o"));
        assert!(m("file[0-9].txt", f, "file3.txt"));
        assert!(!m("file[^0-9].txt", f, "file3.txt"));
        assert!(m("file[^0-9].txt", f, "filex.txt"));
        assert!(m("a[&&b]", f, "a&"), "regex class syntax is not special");
        assert!(m("a[[:]", f, "a:"));
        assert!(m("\\*", f, "*"));
        assert!(!m("\\*", f, "x"));
        assert!(m("a.b", f, "a.b") && !m("a.b", f, "axb"));
        assert!(compile("a[", f).is_err());
        assert!(compile("a[]", f).is_err());
        assert!(compile("a[z-a]", f).is_err());
        assert!(compile("a\\", f).is_err());
    }

    #[test]
    fn dockerignore() {
        let d = Dialect::DockerIgnore;
        assert!(m("**", d, "a/b/c"));
        assert!(m("**/x", d, "x") && m("**/x", d, "a/b/x"));
        assert!(m("a/**/b", d, "a/b") && m("a/**/b", d, "a/x/y/b"));
        assert!(
            !m("**.log", d, "x.log"),
            "as in Docker, ** spans whole segments"
        );
        assert!(m("**.log", d, "d/.log"));
        assert!(
            m("tmp", d, "tmp/inner/file"),
            "a directory covers its contents"
        );
        assert!(!m("tmp", d, "tmpx"));
    }

    #[test]
    fn hostile_patterns_are_cheap() {
        // Once a stack overflow and an exponential backtrack.
        let stars = "*".repeat(50_000);
        for d in [Dialect::DockerIgnore, Dialect::FilepathMatch] {
            assert!(m(&stars, d, "abc"));
            let p = format!("{}b", "*a".repeat(30));
            assert!(!m(&p, d, &"a".repeat(200)));
        }
        let e = compile(&"[a-z]?".repeat(100_000), Dialect::FilepathMatch).unwrap_err();
        assert!(e.contains("too complex"), "{e}");
    }
}
