//! The lexer: Go's `text/template/parse/lex.go` rules (delimiters `{{ }}`, trim markers,
//! comments, and the tokens inside actions), all at once into a vector.

/// A token's kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Plain text between actions (already trimmed by any trim markers).
    Text,
    LeftDelim,
    RightDelim,
    /// `:=`
    Declare,
    /// `=`
    Assign,
    /// `|`
    Pipe,
    LeftParen,
    RightParen,
    /// `,` (in `range $i, $v :=`)
    Comma,
    /// An identifier: a function name or a keyword (see [`Token::keyword`]).
    Identifier,
    /// `.Name` (the text includes the dot).
    Field,
    /// `$` or `$name`.
    Variable,
    /// `.` alone.
    Dot,
    Bool,
    Nil,
    Number,
    /// `'x'` with its quotes.
    Char,
    /// `"…"` with its quotes.
    String,
    /// `` `…` `` with its quotes.
    RawString,
    /// Spaces inside an action (they separate arguments).
    Space,
    Eof,
}

/// One token: its kind, its text and the byte offset where it starts.
#[derive(Debug, Clone)]
pub struct Token {
    pub kind: Kind,
    pub text: String,
    pub pos: usize,
}

impl Token {
    /// The keyword this identifier is, if any.
    pub fn keyword(&self) -> Option<&str> {
        if self.kind != Kind::Identifier {
            return None;
        }
        match self.text.as_str() {
            "if" | "else" | "end" | "range" | "with" | "define" | "template" | "block"
            | "break" | "continue" => Some(self.text.as_str()),
            _ => None,
        }
    }
}

/// A lexing error: the byte offset and Go's message.
#[derive(Debug)]
pub struct LexError {
    pub pos: usize,
    pub msg: String,
}

const LEFT: &str = "{{";
const RIGHT: &str = "}}";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// `{{-` followed by a space is a left trim marker.
fn left_trim(s: &str) -> bool {
    s.starts_with('-') && s[1..].starts_with(is_space)
}

/// Splits `input` into tokens, ending with [`Kind::Eof`].
pub fn lex(input: &str) -> Result<Vec<Token>, LexError> {
    let mut l = Lexer {
        input,
        pos: 0,
        tokens: Vec::new(),
        paren: 0,
    };
    l.run()?;
    Ok(l.tokens)
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    tokens: Vec<Token>,
    paren: usize,
}

impl Lexer<'_> {
    fn rest(&self) -> &str {
        &self.input[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn emit(&mut self, kind: Kind, start: usize) {
        self.tokens.push(Token {
            kind,
            text: self.input[start..self.pos].to_string(),
            pos: start,
        });
    }

    fn err<T>(&self, pos: usize, msg: impl Into<String>) -> Result<T, LexError> {
        Err(LexError {
            pos,
            msg: msg.into(),
        })
    }

    fn run(&mut self) -> Result<(), LexError> {
        let mut trim_next = false;
        loop {
            let start = self.pos;
            let found = self.rest().find(LEFT);
            let end = found.map_or(self.input.len(), |i| self.pos + i);
            let mut text = &self.input[start..end];
            if trim_next {
                text = text.trim_start_matches(is_space);
            }
            let after = &self.input[end..];
            let trims = found.is_some() && left_trim(&after[LEFT.len()..]);
            if trims {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                let full = &self.input[start..end];
                let lead = if trim_next {
                    full.len() - full.trim_start_matches(is_space).len()
                } else {
                    0
                };
                self.tokens.push(Token {
                    kind: Kind::Text,
                    text: text.to_string(),
                    pos: start + lead,
                });
            }
            let Some(_) = found else {
                self.pos = self.input.len();
                self.emit(Kind::Eof, self.pos);
                return Ok(());
            };
            self.pos = end;
            trim_next = self.action(trims)?;
        }
    }

    /// Lexes one action from its left delimiter; returns whether it ended with a trim marker.
    fn action(&mut self, trims: bool) -> Result<bool, LexError> {
        let start = self.pos;
        self.pos += LEFT.len();
        if trims {
            self.pos += 2;
        }
        if self.rest().starts_with("/*") {
            return self.comment(start);
        }
        self.emit(Kind::LeftDelim, start);
        self.paren = 0;
        loop {
            // A right delimiter, maybe after a trim marker (" -}}": a space first).
            if self.rest().starts_with(RIGHT) {
                if self.paren > 0 {
                    return self.err(self.pos, "unclosed left paren");
                }
                let s = self.pos;
                self.pos += RIGHT.len();
                self.emit(Kind::RightDelim, s);
                return Ok(false);
            }
            let Some(c) = self.peek() else {
                return self.err(self.pos, "unclosed action");
            };
            let s = self.pos;
            match c {
                c if is_space(c) => {
                    let spaces = self.rest().len() - self.rest().trim_start_matches(is_space).len();
                    self.pos += spaces;
                    self.emit(Kind::Space, s);
                    // " -}}" ends the action and trims the text after it.
                    if self.rest().starts_with("-}}") {
                        if self.paren > 0 {
                            return self.err(self.pos, "unclosed left paren");
                        }
                        let r = self.pos;
                        self.pos += 1 + RIGHT.len();
                        self.emit(Kind::RightDelim, r);
                        return Ok(true);
                    }
                }
                '=' => {
                    self.pos += 1;
                    self.emit(Kind::Assign, s);
                }
                ':' => {
                    if !self.rest()[1..].starts_with('=') {
                        return self.err(s, "expected :=");
                    }
                    self.pos += 2;
                    self.emit(Kind::Declare, s);
                }
                '|' => {
                    self.pos += 1;
                    self.emit(Kind::Pipe, s);
                }
                '"' => self.quoted(s, '"', Kind::String, "unterminated quoted string")?,
                '\'' => self.quoted(s, '\'', Kind::Char, "unterminated character constant")?,
                '`' => {
                    let Some(end) = self.rest()[1..].find('`') else {
                        return self.err(s, "unterminated raw quoted string");
                    };
                    self.pos += end + 2;
                    self.emit(Kind::RawString, s);
                }
                '$' => {
                    self.pos += 1;
                    self.word();
                    self.emit(Kind::Variable, s);
                    self.check_end(s)?;
                }
                '.' => {
                    if self.rest()[1..].starts_with(|c: char| c.is_ascii_digit()) {
                        self.number(s)?;
                    } else {
                        self.pos += 1;
                        if self.word() == 0 {
                            self.emit(Kind::Dot, s);
                        } else {
                            self.emit(Kind::Field, s);
                            self.check_end(s)?;
                        }
                    }
                }
                '+' | '-' | '0'..='9' => self.number(s)?,
                ',' => {
                    self.pos += 1;
                    self.emit(Kind::Comma, s);
                }
                '(' => {
                    self.pos += 1;
                    self.paren += 1;
                    self.emit(Kind::LeftParen, s);
                }
                ')' => {
                    if self.paren == 0 {
                        return self.err(s, "unexpected right paren");
                    }
                    self.paren -= 1;
                    self.pos += 1;
                    self.emit(Kind::RightParen, s);
                }
                c if is_alnum(c) => {
                    self.word();
                    let kind = match &self.input[s..self.pos] {
                        "true" | "false" => Kind::Bool,
                        "nil" => Kind::Nil,
                        _ => Kind::Identifier,
                    };
                    self.emit(kind, s);
                    self.check_end(s)?;
                }
                c => {
                    return self.err(
                        s,
                        format!("unrecognized character in action: {}", go_rune(c)),
                    )
                }
            }
        }
    }

    /// Consumes identifier characters; returns how many bytes.
    fn word(&mut self) -> usize {
        let n = self.rest().len() - self.rest().trim_start_matches(is_alnum).len();
        self.pos += n;
        n
    }

    /// After a word, only a space, a delimiter or punctuation may follow (Go's atTerminator).
    fn check_end(&self, _start: usize) -> Result<(), LexError> {
        let rest = self.rest();
        match rest.chars().next() {
            None => Ok(()),
            Some(c) if is_space(c) || matches!(c, '.' | ',' | '|' | ':' | ')' | '(') => Ok(()),
            Some(_) if rest.starts_with(RIGHT) => Ok(()),
            Some(c) => self.err(self.pos, format!("bad character {}", go_rune(c))),
        }
    }

    fn quoted(&mut self, s: usize, q: char, kind: Kind, msg: &str) -> Result<(), LexError> {
        let mut it = self.rest().char_indices().skip(1);
        while let Some((i, c)) = it.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = it.next() {
                        if n == '\n' {
                            return self.err(s, msg);
                        }
                    } else {
                        return self.err(s, msg);
                    }
                }
                '\n' => return self.err(s, msg),
                c if c == q => {
                    self.pos += i + 1;
                    self.emit(kind, s);
                    return Ok(());
                }
                _ => {}
            }
        }
        self.err(s, msg)
    }

    /// Go's scanNumber: the longest text that looks like a number, which must not run into
    /// a letter.
    fn number(&mut self, s: usize) -> Result<(), LexError> {
        let b = self.input.as_bytes();
        let mut p = self.pos;
        let accept = |p: &mut usize, set: &str| -> bool {
            if *p < b.len() && set.as_bytes().contains(&b[*p]) {
                *p += 1;
                true
            } else {
                false
            }
        };
        let run = |p: &mut usize, set: &str| while accept(p, set) {};
        accept(&mut p, "+-");
        let mut digits = "0123456789_";
        if accept(&mut p, "0") {
            if accept(&mut p, "xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if accept(&mut p, "oO") {
                digits = "01234567_";
            } else if accept(&mut p, "bB") {
                digits = "01_";
            }
        }
        run(&mut p, digits);
        if accept(&mut p, ".") {
            run(&mut p, digits);
        }
        if digits.len() == 11 && accept(&mut p, "eE") {
            accept(&mut p, "+-");
            run(&mut p, "0123456789_");
        }
        if digits.len() == 23 && accept(&mut p, "pP") {
            accept(&mut p, "+-");
            run(&mut p, "0123456789_");
        }
        accept(&mut p, "i");
        self.pos = p;
        if self.peek().is_some_and(is_alnum) {
            let end = self.pos + self.peek().map_or(0, char::len_utf8);
            return self.err(s, format!("bad number syntax: {:?}", &self.input[s..end]));
        }
        self.emit(Kind::Number, s);
        Ok(())
    }

    /// `{{/* … */}}`: nothing is emitted; returns whether it ended with a trim marker.
    fn comment(&mut self, start: usize) -> Result<bool, LexError> {
        let body = self.pos + 2;
        let Some(end) = self.input[body..].find("*/") else {
            return self.err(start, "unclosed comment");
        };
        self.pos = body + end + 2;
        if self.rest().starts_with(is_space) && self.rest()[1..].starts_with("-}}") {
            self.pos += 4;
            return Ok(true);
        }
        if !self.rest().starts_with(RIGHT) {
            return self.err(start, "comment ends before closing delimiter");
        }
        self.pos += RIGHT.len();
        Ok(false)
    }
}

/// Go's `%#U` of a rune: `U+0041 'A'`.
pub fn go_rune(c: char) -> String {
    if c.is_control() {
        format!("U+{:04X}", c as u32)
    } else {
        format!("U+{:04X} '{c}'", c as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(s: &str) -> Vec<(Kind, String)> {
        lex(s)
            .unwrap()
            .into_iter()
            .map(|t| (t.kind, t.text))
            .collect()
    }

    #[test]
    fn trims_and_comments() {
        let k = kinds("a  {{- .X -}}  b{{/* c */}}d");
        let texts: Vec<_> = k
            .iter()
            .filter(|(k, _)| *k == Kind::Text)
            .map(|(_, t)| t.as_str())
            .collect();
        assert_eq!(texts, ["a", "b", "d"]);
        assert_eq!(kinds("{{-3}}")[1], (Kind::Number, "-3".into()));
        assert!(lex("{{/* x */ }}").is_err());
        assert_eq!(lex("{{/* x").unwrap_err().msg, "unclosed comment");
        assert_eq!(lex("{{.X").unwrap_err().msg, "unclosed action");
    }

    #[test]
    fn tokens() {
        let k: Vec<Kind> = kinds(r#"{{$x := .A.B | printf "%d" 0x1F 'a' `r`}}"#)
            .into_iter()
            .map(|(k, _)| k)
            .filter(|k| *k != Kind::Space)
            .collect();
        use Kind::*;
        assert_eq!(
            k,
            [
                LeftDelim, Variable, Declare, Field, Field, Pipe, Identifier, String, Number, Char,
                RawString, RightDelim, Eof
            ]
        );
        assert_eq!(lex("{{3x}}").unwrap_err().msg, "bad number syntax: \"3x\"");
        assert_eq!(lex("{{.X#}}").unwrap_err().msg, "bad character U+0023 '#'");
        assert_eq!(
            lex("{{\"a}}").unwrap_err().msg,
            "unterminated quoted string"
        );
        assert_eq!(lex("{{)}}").unwrap_err().msg, "unexpected right paren");
    }
}
