//! `.dockerignore` with Docker's semantics: glob patterns with `*`, `?`, `[...]` and `**`,
//! cleaned paths (a leading `/` means the context root), `!` exceptions, the last matching
//! pattern wins, and a pattern that matches a directory matches everything under it.

use crate::pattern::{compile, Dialect};

/// Compiled `.dockerignore` patterns.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<(regex::Regex, bool)>,
}

impl Ignore {
    /// Parses the contents of a `.dockerignore` file; a pattern that does not compile is an
    /// error naming its line.
    pub fn parse(text: &str) -> Result<Ignore, crate::Error> {
        let mut patterns = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (neg, p) = match l.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, l),
            };
            let p = clean(p);
            if p.is_empty() {
                continue;
            }
            let re = compile(&p, Dialect::DockerIgnore)
                .map_err(|e| crate::Error::Invalid(format!(".dockerignore line {}: {e}", n + 1)))?;
            patterns.push((re, neg));
        }
        Ok(Ignore { patterns })
    }

    /// Whether any `!` exception exists (then an ignored directory must still be walked).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|(_, n)| *n)
    }

    /// Whether `rel` (relative to the context, `/`-separated) is excluded: the last pattern
    /// that matches it or one of its parent directories decides.
    pub fn excluded(&self, rel: &str) -> bool {
        self.patterns
            .iter()
            .rev()
            .find(|(re, _)| re.is_match(rel))
            .is_some_and(|(_, neg)| !neg)
    }
}

/// Go's `filepath.Clean` for relative patterns, without a leading `/`.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_semantics() {
        let i = Ignore::parse("# comment\n*.log\n/secret\ntmp/**\n!tmp/keep\n**/node_modules\n")
            .unwrap();
        assert!(i.excluded("a.log"));
        assert!(!i.excluded("dir/a.log"), "* does not cross directories");
        assert!(i.excluded("secret"));
        assert!(
            i.excluded("secret/inner/file"),
            "a matched directory covers its contents"
        );
        assert!(i.excluded("tmp/x/y"));
        assert!(!i.excluded("tmp/keep"));
        assert!(i.excluded("node_modules"));
        assert!(i.excluded("a/b/node_modules/c"));
        assert!(!i.excluded("src/main.c"));
        assert!(i.has_exceptions());
    }

    #[test]
    fn last_match_wins_and_classes() {
        let i = Ignore::parse("*\n!keep*\nkeep.bad\nfile[0-9].txt\n").unwrap();
        assert!(i.excluded("Dockerfile"));
        assert!(!i.excluded("keep.txt"));
        assert!(i.excluded("keep.bad"));
        let j = Ignore::parse("file[0-9].txt\nf?o\n./a/../b\n").unwrap();
        assert!(j.excluded("file3.txt"));
        assert!(!j.excluded("filex.txt"));
        assert!(j.excluded("foo"));
        assert!(!j.excluded("f/o"));
        assert!(j.excluded("b"));
    }

    #[test]
    fn hostile_files() {
        // A line of 50,000 stars overflowed the stack; `*a*a…b` against a long name took
        // exponential time.
        let i = Ignore::parse(&format!("{}\n", "*".repeat(50_000))).unwrap();
        assert!(i.excluded("anything"));
        let i = Ignore::parse(&format!("{}b\n", "*a".repeat(30))).unwrap();
        assert!(!i.excluded(&"a".repeat(200)));
        let e = Ignore::parse("ok\n\nbad[\n").unwrap_err().to_string();
        assert!(
            e.contains(".dockerignore line 3") && e.contains("syntax error"),
            "{e}"
        );
    }
}
