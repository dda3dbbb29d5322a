//! `.dockerignore` with Docker's semantics: glob patterns with `*`, `?`, `[...]` and `**`,
//! cleaned paths (a leading `/` means the context root), `!` exceptions, the last matching
//! pattern wins, and a pattern that matches a directory matches everything under it.

/// Compiled `.dockerignore` patterns.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<(Vec<char>, bool)>,
}

impl Ignore {
    /// Parses the contents of a `.dockerignore` file.
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
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
            patterns.push((p.chars().collect(), neg));
        }
        Ignore { patterns }
    }

    /// Whether any `!` exception exists (then an ignored directory must still be walked).
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|(_, n)| *n)
    }

    /// Whether `rel` (relative to the context, `/`-separated) is excluded.
    pub fn excluded(&self, rel: &str) -> bool {
        let mut out = false;
        let s: Vec<char> = rel.chars().collect();
        for (p, neg) in &self.patterns {
            let mut m = glob(p, &s);
            if !m {
                // A pattern matching a parent directory matches the path too.
                m = s
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| **c == '/')
                    .any(|(i, _)| glob(p, &s[..i]));
            }
            if m {
                out = !neg;
            }
        }
        out
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

/// Matches a cleaned pattern against a path.
fn glob(p: &[char], s: &[char]) -> bool {
    if p.len() >= 2 && p[0] == '*' && p[1] == '*' {
        let mut rest = &p[2..];
        let slash = rest.first() == Some(&'/');
        if slash {
            rest = &rest[1..];
        }
        // `**` (or `**/`) spans any number of whole path segments.
        if glob(rest, s) {
            return true;
        }
        for i in 0..s.len() {
            if (s[i] == '/' || !slash) && glob(rest, &s[i + 1..]) {
                return true;
            }
        }
        return false;
    }
    match p.first() {
        None => s.is_empty(),
        Some('*') => {
            for i in 0..=s.len() {
                if glob(&p[1..], &s[i..]) {
                    return true;
                }
                if i < s.len() && s[i] == '/' {
                    break;
                }
            }
            false
        }
        Some('?') => !s.is_empty() && s[0] != '/' && glob(&p[1..], &s[1..]),
        Some('[') => {
            let Some(c) = s.first() else { return false };
            let mut i = 1;
            let neg = matches!(p.get(1), Some('^') | Some('!'));
            if neg {
                i += 1;
            }
            let mut hit = false;
            let mut first = true;
            while i < p.len() && (p[i] != ']' || first) {
                first = false;
                let lo = p[i];
                if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|c| *c != ']') {
                    let hi = p[i + 2];
                    if lo <= *c && *c <= hi {
                        hit = true;
                    }
                    i += 3;
                } else {
                    if lo == *c {
                        hit = true;
                    }
                    i += 1;
                }
            }
            if i >= p.len() {
                return false;
            }
            hit != neg && *c != '/' && glob(&p[i + 1..], &s[1..])
        }
        Some('\\') if p.len() > 1 => !s.is_empty() && s[0] == p[1] && glob(&p[2..], &s[1..]),
        Some(c) => !s.is_empty() && s[0] == *c && glob(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_semantics() {
        let i = Ignore::parse("# comment\n*.log\n/secret\ntmp/**\n!tmp/keep\n**/node_modules\n");
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
        let i = Ignore::parse("*\n!keep*\nkeep.bad\nfile[0-9].txt\n");
        assert!(i.excluded("Dockerfile"));
        assert!(!i.excluded("keep.txt"));
        assert!(i.excluded("keep.bad"));
        let j = Ignore::parse("file[0-9].txt\nf?o\n./a/../b\n");
        assert!(j.excluded("file3.txt"));
        assert!(!j.excluded("filex.txt"));
        assert!(j.excluded("foo"));
        assert!(!j.excluded("f/o"));
        assert!(j.excluded("b"));
    }
}
