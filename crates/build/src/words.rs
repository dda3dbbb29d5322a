//! Docker's word processing: quotes, escapes and `$VAR` / `${VAR}` / `${VAR:-default}` /
//! `${VAR:+alt}` expansion, applied to the instructions Docker expands (ADD, COPY, ENV, EXPOSE,
//! FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ARG) and never to RUN, CMD or ENTRYPOINT,
//! whose shell does its own.

use std::collections::BTreeMap;

/// Variables visible to expansion: name → value.
pub type Vars = BTreeMap<String, String>;

/// How deeply `${VAR:-word}` substitutions may nest inside one another. Expansion recurses once
/// per level, so without a bound a Dockerfile line of 30,000 nested defaults overflowed the
/// stack; real Dockerfiles nest two or three deep.
pub const MAX_NESTING: usize = 64;

/// Why a word could not be processed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WordError(pub String);

/// Expands one word: quotes are removed, escapes applied, variables substituted.
pub fn expand(word: &str, vars: &Vars, escape: char) -> Result<String, WordError> {
    let chars: Vec<char> = word.chars().collect();
    let mut p = Lexer {
        c: &chars,
        i: 0,
        vars,
        escape,
        depth: 0,
    };
    p.word(None)
}

/// Splits on unquoted whitespace, keeping quotes and escapes as written (for `ENV a="b c"`).
pub fn split_raw(s: &str, escape: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut it = s.chars().peekable();
    let mut in_word = false;
    while let Some(c) = it.next() {
        if let Some(q) = quote {
            cur.push(c);
            if c == escape && q == '"' {
                if let Some(n) = it.next() {
                    cur.push(n);
                }
            } else if c == q {
                quote = None;
            }
            continue;
        }
        if c.is_whitespace() {
            if in_word {
                out.push(std::mem::take(&mut cur));
                in_word = false;
            }
            continue;
        }
        in_word = true;
        cur.push(c);
        if c == escape {
            if let Some(n) = it.next() {
                cur.push(n);
            }
        } else if c == '"' || c == '\'' {
            quote = Some(c);
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Splits into words and expands each (`COPY a b c`, `EXPOSE 80 443`, `FROM img AS x`).
pub fn expand_words(s: &str, vars: &Vars, escape: char) -> Result<Vec<String>, WordError> {
    split_raw(s, escape)
        .iter()
        .map(|w| expand(w, vars, escape))
        .collect()
}

/// `key=value` pairs of ENV, LABEL and ARG, or the legacy `ENV key value with spaces` form.
/// Values are expanded; keys are expanded too, as Docker does.
pub fn name_values(
    s: &str,
    vars: &Vars,
    escape: char,
    allow_legacy: bool,
) -> Result<Vec<(String, String)>, WordError> {
    let words = split_raw(s, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        if !allow_legacy {
            return Err(WordError(format!("missing '=' in {first:?}")));
        }
        let rest = s.trim_start()[first.len()..].trim();
        if rest.is_empty() {
            return Err(WordError(format!("{first} must have two arguments")));
        }
        return Ok(vec![(
            expand(first, vars, escape)?,
            expand(rest, vars, escape)?,
        )]);
    }
    let mut out = Vec::new();
    for w in &words {
        let Some((k, v)) = w.split_once('=') else {
            return Err(WordError(format!(
                "Syntax error - can't find = in \"{w}\". Must be of the form: name=value"
            )));
        };
        if k.is_empty() {
            return Err(WordError(format!("empty name in \"{w}\"")));
        }
        out.push((expand(k, vars, escape)?, expand(v, vars, escape)?));
    }
    Ok(out)
}

struct Lexer<'a> {
    c: &'a [char],
    i: usize,
    vars: &'a Vars,
    escape: char,
    /// How many `${VAR:-word}` words enclose the current position.
    depth: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    /// Reads until the end (or, inside `${...:-word}`, until the closing `}`).
    fn word(&mut self, stop: Option<char>) -> Result<String, WordError> {
        let mut out = String::new();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                return Ok(out);
            }
            self.i += 1;
            match ch {
                '\'' => {
                    let mut closed = false;
                    while let Some(c) = self.peek() {
                        self.i += 1;
                        if c == '\'' {
                            closed = true;
                            break;
                        }
                        out.push(c);
                    }
                    if !closed {
                        return Err(WordError(
                            "unexpected end of statement while looking for matching single-quote"
                                .into(),
                        ));
                    }
                }
                '"' => {
                    let mut closed = false;
                    while let Some(c) = self.peek() {
                        self.i += 1;
                        if c == '"' {
                            closed = true;
                            break;
                        }
                        if c == '$' {
                            out.push_str(&self.dollar()?);
                        } else if c == self.escape {
                            match self.peek() {
                                Some(n) if n == '"' || n == '$' || n == self.escape => {
                                    self.i += 1;
                                    out.push(n);
                                }
                                // Other escapes are kept as written inside double quotes.
                                Some(_) => out.push(c),
                                None => {}
                            }
                        } else {
                            out.push(c);
                        }
                    }
                    if !closed {
                        return Err(WordError(
                            "unexpected end of statement while looking for matching double-quote"
                                .into(),
                        ));
                    }
                }
                '$' => out.push_str(&self.dollar()?),
                c if c == self.escape => {
                    if let Some(n) = self.peek() {
                        self.i += 1;
                        out.push(n);
                    }
                }
                c => out.push(c),
            }
        }
        if stop.is_some() {
            return Err(WordError("missing '}' in variable".into()));
        }
        Ok(out)
    }

    /// After a `$`: a variable reference, or a literal `$`.
    fn dollar(&mut self) -> Result<String, WordError> {
        match self.peek() {
            Some('{') => {
                self.i += 1;
                let name = self.name();
                if name.is_empty() {
                    return Err(WordError("bad substitution: empty variable name".into()));
                }
                let val = self.vars.get(&name);
                match self.peek() {
                    Some('}') => {
                        self.i += 1;
                        Ok(val.cloned().unwrap_or_default())
                    }
                    Some(':') | Some('-') | Some('+') | Some('?') => {
                        let colon = self.peek() == Some(':');
                        if colon {
                            self.i += 1;
                        }
                        let op = self.peek().ok_or_else(|| WordError("missing '}'".into()))?;
                        self.i += 1;
                        if self.depth >= MAX_NESTING {
                            return Err(WordError(format!(
                                "variable substitutions nested more than {MAX_NESTING} deep"
                            )));
                        }
                        self.depth += 1;
                        let word = self.word(Some('}'));
                        self.depth -= 1;
                        let word = word?;
                        self.i += 1; // the '}'
                        let set = match val {
                            Some(v) => !(colon && v.is_empty()),
                            None => false,
                        };
                        match op {
                            '-' => Ok(if set {
                                val.cloned().unwrap_or_default()
                            } else {
                                word
                            }),
                            '+' => Ok(if set { word } else { String::new() }),
                            '?' if set => Ok(val.cloned().unwrap_or_default()),
                            '?' => Err(WordError(format!(
                                "{name}: {}",
                                if word.is_empty() {
                                    "is not allowed to be unset"
                                } else {
                                    &word
                                }
                            ))),
                            other => Err(WordError(format!(
                                "unsupported modifier ({other}) in substitution"
                            ))),
                        }
                    }
                    _ => Err(WordError(format!("missing '}}' after ${{{name}"))),
                }
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let name = self.name();
                Ok(self.vars.get(&name).cloned().unwrap_or_default())
            }
            _ => Ok("$".into()),
        }
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.i += 1;
            } else {
                break;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [("A", "1"), ("B", "two words"), ("E", "")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn x(s: &str) -> String {
        expand(s, &vars(), '\\').unwrap()
    }

    #[test]
    fn variables() {
        assert_eq!(x("$A"), "1");
        assert_eq!(x("${A}x"), "1x");
        assert_eq!(x("$Ax"), "");
        assert_eq!(x("${NOPE:-d}"), "d");
        assert_eq!(x("${E:-d}"), "d");
        assert_eq!(x("${E-d}"), "");
        assert_eq!(x("${A:-d}"), "1");
        assert_eq!(x("${A:+alt}"), "alt");
        assert_eq!(x("${NOPE:+alt}"), "");
        assert_eq!(x("${NOPE:-$A/x}"), "1/x");
        assert_eq!(x("a$"), "a$");
        assert_eq!(x("$ a"), "$ a");
        assert!(expand("${NOPE:?must be set}", &vars(), '\\').is_err());
        assert!(expand("${A", &vars(), '\\').is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let nest = |n: usize| format!("{}v{}", "${X:-".repeat(n), "}".repeat(n));
        assert_eq!(x(&nest(MAX_NESTING)), "v");
        assert_eq!(x(&format!("\"{}\"", nest(MAX_NESTING))), "v");
        for n in [MAX_NESTING + 1, 30_000] {
            let e = expand(&nest(n), &vars(), '\\').unwrap_err();
            assert!(e.0.contains("nested more than 64 deep"), "{e:?}");
            let e = expand(&format!("\"{}\"", nest(n)), &vars(), '\\').unwrap_err();
            assert!(e.0.contains("nested more than"), "{e:?}");
        }
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A b\""), "1 b");
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("\"\\$A\""), "$A");
        assert_eq!(x("\"a\\nb\""), "a\\nb");
        assert_eq!(x("a\\ b"), "a b");
        assert_eq!(expand("`$A", &vars(), '`').unwrap(), "$A");
        assert!(expand("'abc", &vars(), '\\').is_err());
        assert!(expand("\"abc", &vars(), '\\').is_err());
    }

    #[test]
    fn words() {
        assert_eq!(
            expand_words("a \"b c\" $B", &vars(), '\\').unwrap(),
            vec!["a", "b c", "two words"]
        );
        assert_eq!(
            split_raw("k=\"a b\" c='d e'", '\\'),
            vec!["k=\"a b\"", "c='d e'"]
        );
    }

    #[test]
    fn name_value_forms() {
        let v = name_values("X=\"a b\" Y=$A", &vars(), '\\', true).unwrap();
        assert_eq!(
            v,
            vec![("X".into(), "a b".into()), ("Y".into(), "1".into())]
        );
        let v = name_values("X hello   $A world", &vars(), '\\', true).unwrap();
        assert_eq!(v, vec![("X".into(), "hello   1 world".into())]);
        assert!(name_values("X", &vars(), '\\', true).is_err());
        assert!(name_values("X=1 Y", &vars(), '\\', true).is_err());
    }
}
