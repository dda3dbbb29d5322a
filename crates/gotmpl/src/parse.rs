//! The parser: Go's `text/template/parse/parse.go` grammar over the lexer's tokens.

use crate::lex::{self, Kind, Token};
use crate::Error;

/// A parsed template: its nodes and its text (for error positions).
#[derive(Debug)]
pub struct Tree {
    pub root: Vec<Node>,
    pub text: String,
}

#[derive(Debug)]
pub enum Node {
    Text(String),
    Action(Pipe),
    If(Control),
    With(Control),
    Range(Control),
    Break,
    Continue,
}

#[derive(Debug)]
pub struct Control {
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

#[derive(Debug)]
pub struct Pipe {
    pub pos: usize,
    /// The declared or assigned variables (`$x :=`, `$i, $v :=`).
    pub decl: Vec<String>,
    pub is_assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub struct Cmd {
    pub pos: usize,
    pub end: usize,
    pub args: Vec<Arg>,
}

/// A constant number as Go's parser reads it: which types it fits.
#[derive(Debug, Clone)]
pub struct Number {
    pub text: String,
    pub int: Option<i64>,
    pub uint: Option<u64>,
    pub float: Option<f64>,
}

#[derive(Debug)]
pub enum ArgKind {
    /// `.A.B`
    Field(Vec<String>),
    /// `$x.A.B`
    Variable(String, Vec<String>),
    /// `(pipeline).A.B`
    Chain(Box<Pipe>, Vec<String>),
    Pipe(Box<Pipe>),
    Dot,
    Nil,
    Bool(bool),
    Number(Number),
    String(String),
    Ident(String),
}

#[derive(Debug)]
pub struct Arg {
    pub pos: usize,
    pub end: usize,
    pub kind: ArgKind,
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Token>,
    i: usize,
    vars: Vec<String>,
    range_depth: usize,
    depth: usize,
    max_depth: usize,
    known: &'a dyn Fn(&str) -> bool,
}

type PResult<T> = Result<T, Error>;

/// The 1-based line of byte offset `pos` in `text`.
pub fn line_of(text: &str, pos: usize) -> usize {
    1 + text.as_bytes()[..pos.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
}

/// Parses a template; `known` says which function names exist.
pub fn parse(text: &str, known: &dyn Fn(&str) -> bool, max_depth: usize) -> PResult<Tree> {
    let toks = lex::lex(text).map_err(|e| Error::Parse {
        line: line_of(text, e.pos),
        msg: e.msg,
    })?;
    let mut p = Parser {
        text,
        toks,
        i: 0,
        vars: vec!["$".to_string()],
        range_depth: 0,
        depth: 0,
        max_depth,
        known,
    };
    let (root, end) = p.list()?;
    match end {
        Stop::Eof => Ok(Tree {
            root,
            text: text.to_string(),
        }),
        Stop::EndAction(pos) => Err(p.err_at(pos, "unexpected {{end}}")),
        Stop::Else(pos, _) => Err(p.err_at(pos, "unexpected {{else}}")),
    }
}

/// What ended a list of nodes.
enum Stop {
    Eof,
    EndAction(usize),
    /// `{{else}}`, or `{{else if`/`{{else with` (the keyword not consumed).
    Else(usize, Option<String>),
}

/// Go's `item.String()` in "unexpected" messages.
fn describe(t: &Token) -> String {
    match t.kind {
        Kind::Eof => "EOF".into(),
        _ if t.keyword().is_some() => format!("<{}>", t.text),
        _ if t.text.chars().count() > 10 => {
            let short: String = t.text.chars().take(10).collect();
            format!("{short:?}...")
        }
        _ => format!("{:?}", t.text),
    }
}

impl Parser<'_> {
    fn err_at(&self, pos: usize, msg: impl Into<String>) -> Error {
        Error::Parse {
            line: line_of(self.text, pos),
            msg: msg.into(),
        }
    }

    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }

    fn skip_space(&mut self) {
        while self.peek().kind == Kind::Space {
            self.i += 1;
        }
    }

    fn next_non_space(&mut self) -> Token {
        self.skip_space();
        self.next()
    }

    fn peek_non_space(&mut self) -> &Token {
        self.skip_space();
        self.peek()
    }

    fn unexpected(&self, t: &Token, context: &str) -> Error {
        self.err_at(t.pos, format!("unexpected {} in {context}", describe(t)))
    }

    fn enter(&mut self, pos: usize) -> PResult<()> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err(self.err_at(pos, "max expression depth exceeded"));
        }
        Ok(())
    }

    /// Nodes up to the end of the text, an `{{end}}` or an `{{else}}`.
    fn list(&mut self) -> PResult<(Vec<Node>, Stop)> {
        let mut nodes = Vec::new();
        loop {
            let t = self.next();
            match t.kind {
                Kind::Eof => return Ok((nodes, Stop::Eof)),
                Kind::Text => nodes.push(Node::Text(t.text)),
                Kind::LeftDelim => {
                    let kw = self.peek_non_space().clone();
                    match kw.keyword() {
                        Some("end") => {
                            self.next();
                            self.expect_close("end")?;
                            return Ok((nodes, Stop::EndAction(kw.pos)));
                        }
                        Some("else") => {
                            self.next();
                            let after = self.peek_non_space().clone();
                            return match after.keyword() {
                                Some(k @ ("if" | "with")) => {
                                    Ok((nodes, Stop::Else(kw.pos, Some(k.to_string()))))
                                }
                                _ => {
                                    self.expect_close("else")?;
                                    Ok((nodes, Stop::Else(kw.pos, None)))
                                }
                            };
                        }
                        Some(k @ ("if" | "with" | "range")) => {
                            let k = k.to_string();
                            self.next();
                            nodes.push(self.control(&k, kw.pos)?);
                        }
                        Some(k @ ("break" | "continue")) => {
                            let k = k.to_string();
                            self.next();
                            if self.range_depth == 0 {
                                return Err(self
                                    .err_at(kw.pos, format!("{{{{{k}}}}} outside {{{{range}}}}")));
                            }
                            self.expect_close(&k)?;
                            nodes.push(if k == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        Some(k @ ("define" | "template" | "block")) => {
                            return Err(self.err_at(
                                kw.pos,
                                format!("{{{{{k}}}}} is not supported in --format templates"),
                            ));
                        }
                        _ => {
                            let pipe = self.pipeline("command", Kind::RightDelim)?;
                            nodes.push(Node::Action(pipe));
                        }
                    }
                }
                _ => return Err(self.unexpected(&t, "input")),
            }
        }
    }

    fn expect_close(&mut self, context: &str) -> PResult<()> {
        let t = self.next_non_space();
        if t.kind != Kind::RightDelim {
            return Err(self.unexpected(&t, context));
        }
        Ok(())
    }

    /// `if`, `with` or `range` after its keyword, up to its `{{end}}`.
    fn control(&mut self, context: &str, pos: usize) -> PResult<Node> {
        self.enter(pos)?;
        let vars = self.vars.len();
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, end) = self.list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let else_list = match end {
            Stop::Eof => return Err(self.err_at(self.text.len(), "unexpected EOF")),
            Stop::EndAction(_) => None,
            Stop::Else(epos, Some(k)) if k == context && context != "range" => {
                // `{{else if …}}` is `{{else}}{{if …}}…{{end}}` sharing the one `{{end}}`.
                self.next_non_space();
                Some(vec![self.control(&k, epos)?])
            }
            Stop::Else(_, chained) => {
                if let Some(k) = chained {
                    let t = self.peek_non_space().clone();
                    let _ = k;
                    return Err(self.unexpected(&t, "input"));
                }
                let (l, end) = self.list()?;
                match end {
                    Stop::EndAction(_) => Some(l),
                    Stop::Eof => return Err(self.err_at(self.text.len(), "unexpected EOF")),
                    Stop::Else(p, _) => return Err(self.err_at(p, "expected end; found {{else}}")),
                }
            }
        };
        self.vars.truncate(vars);
        self.depth -= 1;
        let c = Control {
            pipe,
            list,
            else_list,
        };
        Ok(match context {
            "if" => Node::If(c),
            "with" => Node::With(c),
            _ => Node::Range(c),
        })
    }

    fn pipeline(&mut self, context: &str, end: Kind) -> PResult<Pipe> {
        let pos = self.peek_non_space().pos;
        let mut pipe = Pipe {
            pos,
            decl: Vec::new(),
            is_assign: false,
            cmds: Vec::new(),
        };
        // Declarations: `$x :=`, `$x =`, `$i, $v :=` (range only).
        loop {
            if self.peek_non_space().kind != Kind::Variable {
                break;
            }
            let save = self.i;
            let v = self.next();
            let next = self.peek_non_space().clone();
            match next.kind {
                Kind::Assign | Kind::Declare => {
                    pipe.is_assign = next.kind == Kind::Assign;
                    self.next();
                    pipe.decl.push(v.text.clone());
                    self.vars.push(v.text);
                    break;
                }
                Kind::Comma => {
                    self.next();
                    pipe.decl.push(v.text.clone());
                    self.vars.push(v.text);
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            Kind::Variable | Kind::RightDelim | Kind::RightParen => continue,
                            _ => {
                                return Err(
                                    self.err_at(next.pos, "range can only initialize variables")
                                )
                            }
                        }
                    }
                    return Err(
                        self.err_at(next.pos, format!("too many declarations in {context}"))
                    );
                }
                _ => {
                    self.i = save;
                    break;
                }
            }
        }
        loop {
            let t = self.next_non_space();
            if t.kind == end {
                if pipe.cmds.is_empty() {
                    return Err(self.err_at(t.pos, format!("missing value for {context}")));
                }
                for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                    if matches!(
                        c.args[0].kind,
                        ArgKind::Bool(_)
                            | ArgKind::Dot
                            | ArgKind::Nil
                            | ArgKind::Number(_)
                            | ArgKind::String(_)
                    ) {
                        return Err(self.err_at(
                            c.pos,
                            format!("non executable command in pipeline stage {}", i + 1),
                        ));
                    }
                }
                return Ok(pipe);
            }
            match t.kind {
                Kind::Bool
                | Kind::Char
                | Kind::Dot
                | Kind::Field
                | Kind::Number
                | Kind::Nil
                | Kind::RawString
                | Kind::String
                | Kind::Variable
                | Kind::LeftParen => {
                    self.i -= 1;
                    pipe.cmds.push(self.command()?);
                }
                Kind::Identifier if t.keyword().is_none() => {
                    self.i -= 1;
                    pipe.cmds.push(self.command()?);
                }
                _ => return Err(self.unexpected(&t, context)),
            }
        }
    }

    fn command(&mut self) -> PResult<Cmd> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            self.skip_space();
            if let Some(a) = self.operand()? {
                args.push(a);
            }
            let t = self.next();
            match t.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.i -= 1,
                Kind::Pipe => {}
                _ => return Err(self.unexpected(&t, "operand")),
            }
            break;
        }
        if args.is_empty() {
            return Err(self.err_at(pos, "empty command"));
        }
        let end = args.last().map_or(pos, |a: &Arg| a.end);
        Ok(Cmd { pos, end, args })
    }

    fn operand(&mut self) -> PResult<Option<Arg>> {
        let Some(mut a) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind == Kind::Field {
            let mut names = Vec::new();
            while self.peek().kind == Kind::Field {
                let t = self.next();
                a.end = t.pos + t.text.len();
                names.push(t.text[1..].to_string());
            }
            a.kind = match a.kind {
                ArgKind::Field(mut f) => {
                    f.extend(names);
                    ArgKind::Field(f)
                }
                ArgKind::Variable(v, mut f) => {
                    f.extend(names);
                    ArgKind::Variable(v, f)
                }
                ArgKind::Pipe(p) => ArgKind::Chain(p, names),
                ArgKind::Ident(_) => {
                    return Err(self.err_at(
                        a.pos,
                        format!("unexpected . after term {:?}", &self.text[a.pos..a.end]),
                    ));
                }
                _ => {
                    let term =
                        &self.text[a.pos..a.end - names.iter().map(|n| n.len() + 1).sum::<usize>()];
                    return Err(self.err_at(a.pos, format!("unexpected . after term {term:?}")));
                }
            };
        }
        Ok(Some(a))
    }

    fn term(&mut self) -> PResult<Option<Arg>> {
        let t = self.next_non_space();
        let pos = t.pos;
        let end = t.pos + t.text.len();
        let kind = match t.kind {
            Kind::Identifier if t.keyword().is_none() => {
                if !(self.known)(&t.text) {
                    return Err(self.err_at(pos, format!("function {:?} not defined", t.text)));
                }
                ArgKind::Ident(t.text)
            }
            Kind::Dot => ArgKind::Dot,
            Kind::Nil => ArgKind::Nil,
            Kind::Variable => {
                if !self.vars.contains(&t.text) {
                    return Err(self.err_at(pos, format!("undefined variable {:?}", t.text)));
                }
                ArgKind::Variable(t.text, Vec::new())
            }
            Kind::Field => ArgKind::Field(vec![t.text[1..].to_string()]),
            Kind::Bool => ArgKind::Bool(t.text == "true"),
            Kind::Number => ArgKind::Number(number(&t.text).map_err(|m| self.err_at(pos, m))?),
            Kind::Char => {
                let c = unquote(&t.text)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .filter(|s| s.chars().count() == 1)
                    .and_then(|s| s.chars().next())
                    .ok_or_else(|| {
                        self.err_at(pos, format!("malformed character constant: {}", t.text))
                    })?;
                let n = c as u32;
                ArgKind::Number(Number {
                    text: t.text,
                    int: Some(n.into()),
                    uint: Some(n.into()),
                    float: Some(n.into()),
                })
            }
            Kind::String | Kind::RawString => {
                let b = unquote(&t.text).map_err(|_| self.err_at(pos, "invalid syntax"))?;
                ArgKind::String(String::from_utf8_lossy(&b).into_owned())
            }
            Kind::LeftParen => {
                self.enter(pos)?;
                let p = self.pipeline("parenthesized pipeline", Kind::RightParen)?;
                self.depth -= 1;
                let close = self.toks[self.i - 1].pos + 1;
                return Ok(Some(Arg {
                    pos,
                    end: close,
                    kind: ArgKind::Pipe(Box::new(p)),
                }));
            }
            _ => {
                self.i -= 1;
                return Ok(None);
            }
        };
        Ok(Some(Arg { pos, end, kind }))
    }
}

/// Go's `strconv.Unquote` of a quoted string, raw string or character constant: the bytes.
/// `Err` means Go's `strconv.ErrSyntax` ("invalid syntax").
#[allow(clippy::result_unit_err)]
pub fn unquote(lit: &str) -> Result<Vec<u8>, ()> {
    let q = lit.chars().next().ok_or(())?;
    if lit.len() < 2 || !lit.ends_with(q) {
        return Err(());
    }
    let body = &lit[1..lit.len() - 1];
    if q == '`' {
        // Raw strings have no escapes; carriage returns are dropped, as Go does.
        return Ok(body.replace('\r', "").into_bytes());
    }
    let mut out = Vec::with_capacity(body.len());
    let mut it = body.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            if c == q || c == '\n' {
                return Err(());
            }
            let mut buf = [0; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = it.next().ok_or(())?;
        let simple = match e {
            'a' => Some(7u8),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            '\'' | '"' if e == q => Some(e as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let (n, radix) = match e {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return Err(()),
        };
        let mut digits = String::new();
        if radix == 8 {
            digits.push(e);
        }
        for _ in 0..n {
            let d = it.next().ok_or(())?;
            if !d.is_digit(radix) {
                return Err(());
            }
            digits.push(d);
        }
        let v = u32::from_str_radix(&digits, radix).map_err(|_| ())?;
        match e {
            'u' | 'U' => {
                let c = char::from_u32(v).ok_or(())?;
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => out.push(u8::try_from(v).map_err(|_| ())?),
        }
    }
    Ok(out)
}

/// Go's integer syntax with base prefix and underscores (`strconv.ParseInt(s, 0, 64)`
/// without the sign): the magnitude.
fn parse_go_uint(s: &str) -> Option<u64> {
    let (radix, digits, prefixed) =
        if let Some(r) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            (16, r, true)
        } else if let Some(r) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
            (8, r, true)
        } else if let Some(r) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
            (2, r, true)
        } else if s.len() > 1 && s.starts_with('0') {
            (8, &s[1..], true)
        } else {
            (10, s, false)
        };
    // Underscores only between digits (or right after a prefix).
    let check = if prefixed {
        format!("0{digits}")
    } else {
        digits.to_string()
    };
    if check.contains("__") || check.ends_with('_') || check.starts_with('_') {
        return None;
    }
    if !prefixed && digits.contains('_') && radix == 10 && s.starts_with('_') {
        return None;
    }
    let clean: String = digits.chars().filter(|&c| c != '_').collect();
    if clean.is_empty() {
        return None;
    }
    u64::from_str_radix(&clean, radix).ok()
}

fn parse_go_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if body.contains("__") || body.starts_with('_') || body.ends_with('_') {
        return None;
    }
    let clean: String = body.chars().filter(|&c| c != '_').collect();
    let v = if let Some(hex) = clean
        .strip_prefix("0x")
        .or_else(|| clean.strip_prefix("0X"))
    {
        // A hex float needs its binary exponent.
        let (mant, exp) = hex.split_once(['p', 'P'])?;
        let exp: i32 = exp.parse().ok()?;
        let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        let mut v = 0f64;
        for c in int.chars() {
            v = v * 16.0 + f64::from(c.to_digit(16)?);
        }
        let mut scale = 1.0 / 16.0;
        for c in frac.chars() {
            v += f64::from(c.to_digit(16)?) * scale;
            scale /= 16.0;
        }
        v * 2f64.powi(exp)
    } else {
        if !clean.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
            return None;
        }
        clean.parse::<f64>().ok()?
    };
    Some(if neg { -v } else { v })
}

/// Go's `parse.newNumber`: which of int, uint and float64 the constant fits.
fn number(text: &str) -> Result<Number, String> {
    if text.ends_with('i') {
        return Err(format!("complex constants are not supported: {text:?}"));
    }
    let (neg, mag) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let u = parse_go_uint(mag);
    let mut n = Number {
        text: text.to_string(),
        int: None,
        uint: None,
        float: None,
    };
    if let Some(u) = u {
        if !neg && !text.starts_with('+') {
            n.uint = Some(u);
        }
        n.int = if neg {
            if u <= i64::MAX as u64 + 1 {
                Some((u as i128).wrapping_neg() as i64)
            } else {
                None
            }
        } else {
            i64::try_from(u).ok()
        };
        if n.int == Some(0) {
            n.uint = Some(0);
        }
    }
    if let Some(i) = n.int {
        n.float = Some(i as f64);
    } else if let Some(u) = n.uint {
        n.float = Some(u as f64);
    } else if let Some(f) = parse_go_float(text) {
        if !text.contains(['.', 'e', 'E', 'p', 'P']) {
            return Err(format!("integer overflow: {text:?}"));
        }
        n.float = Some(f);
        if f.fract() == 0.0 && f.abs() < 9.2e18 {
            n.int = Some(f as i64);
        }
        if f.fract() == 0.0 && (0.0..1.8e19).contains(&f) {
            n.uint = Some(f as u64);
        }
    }
    if n.int.is_none() && n.uint.is_none() && n.float.is_none() {
        return Err(format!("illegal number syntax: {text:?}"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(t: &str) -> String {
        let known = |n: &str| matches!(n, "printf" | "len");
        parse(t, &known, 50).unwrap_err().to_string()
    }

    #[test]
    fn parse_errors_are_gos() {
        assert_eq!(err("{{.X"), "template: :1: unclosed action");
        assert_eq!(
            err("a\n{{nope}}"),
            "template: :2: function \"nope\" not defined"
        );
        assert_eq!(err("{{$x}}"), "template: :1: undefined variable \"$x\"");
        assert_eq!(err("{{end}}"), "template: :1: unexpected {{end}}");
        assert_eq!(err("{{else}}"), "template: :1: unexpected {{else}}");
        assert_eq!(err("{{if .X}}"), "template: :1: unexpected EOF");
        assert_eq!(err("{{}}"), "template: :1: missing value for command");
        assert_eq!(
            err("{{break}}"),
            "template: :1: {{break}} outside {{range}}"
        );
        assert_eq!(
            err("{{.X | 3}}"),
            "template: :1: non executable command in pipeline stage 2"
        );
        assert_eq!(
            err("{{\"a\".X}}"),
            "template: :1: unexpected . after term \"\\\"a\\\"\""
        );
        assert_eq!(
            err("{{99999999999999999999}}"),
            "template: :1: integer overflow: \"99999999999999999999\""
        );
        assert_eq!(err("{{\"\\q\"}}"), "template: :1: invalid syntax");
        assert_eq!(
            err("{{'ab'}}"),
            "template: :1: malformed character constant: 'ab'"
        );
        assert_eq!(
            err("{{if $x := 1}}{{end}}{{$x}}"),
            "template: :1: undefined variable \"$x\""
        );
        assert!(err("{{template \"x\"}}").contains("not supported"));
        assert_eq!(
            err(&format!("{{{{{}1{}}}}}", "(".repeat(60), ")".repeat(60))),
            "template: :1: max expression depth exceeded"
        );
        assert_eq!(
            err(&"{{if 1}}".repeat(60)),
            "template: :1: max expression depth exceeded"
        );
        assert_eq!(
            err("{{range $i, $v, $w := .}}{{end}}"),
            "template: :1: too many declarations in range"
        );
    }

    #[test]
    fn numbers() {
        let n = number("0x1F").unwrap();
        assert_eq!((n.int, n.uint), (Some(31), Some(31)));
        assert_eq!(number("1_000").unwrap().int, Some(1000));
        assert_eq!(number("017").unwrap().int, Some(15));
        assert_eq!(number("0b101").unwrap().int, Some(5));
        assert_eq!(number("-5").unwrap().int, Some(-5));
        assert_eq!(number("1e3").unwrap().float, Some(1000.0));
        assert_eq!(number("1e3").unwrap().int, Some(1000));
        assert_eq!(number("0x1p4").unwrap().float, Some(16.0));
        assert_eq!(number(".5").unwrap().float, Some(0.5));
        assert!(number("1__0").is_err());
        assert!(number("-").is_err());
        assert_eq!(number("18446744073709551615").unwrap().uint, Some(u64::MAX));
    }

    #[test]
    fn unquoting() {
        assert_eq!(
            unquote(r#""a\tb\x41\101\u00e9""#).unwrap(),
            "a\tbAAé".as_bytes()
        );
        assert_eq!(unquote(r"`a\n`").unwrap(), br"a\n");
        assert!(unquote(r#""\'""#).is_err());
        assert_eq!(unquote(r"'\''").unwrap(), b"'");
        assert!(unquote(r#""\400""#).is_err());
        assert!(unquote(r#""\ud800""#).is_err());
    }
}
