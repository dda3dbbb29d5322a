//! `--format` with Go-template syntax (`{{.State.Status}}`, `{{json .Config}}`), rendered over
//! the same JSON documents `inspect` prints, as Docker does.

use gtmpl::{Context, Template};
use gtmpl_value::{FuncError, Value};
use std::collections::HashMap;

/// Why a template could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The template text is not a valid Go template.
    #[error("template parsing error: {0}")]
    Parse(String),
    /// The template failed while rendering an item (e.g. a function given the wrong type).
    #[error("template: {0}")]
    Render(String),
}

fn to_tmpl(v: &serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::from(i),
            (_, Some(u), _) => Value::from(u),
            (_, _, Some(f)) => Value::from(f),
            _ => Value::Nil,
        },
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(a) => Value::Array(a.iter().map(to_tmpl).collect()),
        serde_json::Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), to_tmpl(v)))
                .collect::<HashMap<_, _>>(),
        ),
    }
}

fn to_json(v: &Value) -> serde_json::Value {
    match v {
        Value::NoValue | Value::Nil | Value::Function(_) => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Number(n) => n
            .as_i64()
            .map(serde_json::Value::from)
            .or_else(|| n.as_u64().map(serde_json::Value::from))
            .or_else(|| n.as_f64().map(serde_json::Value::from))
            .unwrap_or(serde_json::Value::Null),
        Value::Array(a) => serde_json::Value::Array(a.iter().map(to_json).collect()),
        Value::Object(o) | Value::Map(o) => {
            serde_json::Value::Object(o.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

fn json(args: &[Value]) -> Result<Value, FuncError> {
    let v = args
        .first()
        .ok_or_else(|| FuncError::AtLeastXArgs("json".into(), 1))?;
    Ok(Value::String(
        serde_json::to_string(&to_json(v)).unwrap_or_default(),
    ))
}

/// The verbs that end a `printf` directive, as gtmpl's formatter reads them.
const PRINTF_VERBS: &str = "vVtTbcdoqxXUeEfFgGsp";
/// Rust's formatter takes widths and precisions up to u16::MAX and panics beyond (gtmpl
/// passes them through); Go pads up to 10^6. Wider is refused rather than crashing hako.
const PRINTF_MAX_WIDTH: u64 = u16::MAX as u64;

/// gtmpl's `printf`, after a check that no width, precision or argument index in the
/// format is beyond what the formatter takes (found by fuzzing: `{{printf "%099999s" .}}`
/// panicked inside gtmpl).
fn printf(args: &[Value]) -> Result<Value, FuncError> {
    if let Some(Value::String(f)) = args.first() {
        let mut chars = f.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                continue;
            }
            let mut n: u64 = 0;
            for c in chars.by_ref() {
                if PRINTF_VERBS.contains(c) {
                    break;
                }
                match c.to_digit(10) {
                    Some(d) => {
                        n = n.saturating_mul(10).saturating_add(u64::from(d));
                        if n > PRINTF_MAX_WIDTH {
                            return Err(FuncError::Generic(format!(
                                "printf: a width or precision above {PRINTF_MAX_WIDTH} in {f:?}"
                            )));
                        }
                    }
                    None => n = 0,
                }
            }
        }
    }
    gtmpl::funcs::printf(args)
}

fn upper(args: &[Value]) -> Result<Value, FuncError> {
    match args.first() {
        Some(Value::String(s)) => Ok(Value::String(s.to_uppercase())),
        _ => Err(FuncError::UnableToConvertFromValue),
    }
}

fn lower(args: &[Value]) -> Result<Value, FuncError> {
    match args.first() {
        Some(Value::String(s)) => Ok(Value::String(s.to_lowercase())),
        _ => Err(FuncError::UnableToConvertFromValue),
    }
}

/// Keeps gtmpl's lexer (0.7, on a thread of its own) away from the text it cannot handle.
/// It steps back one byte at a time, also after reading nothing at the end of the text, so:
/// - a non-ASCII character inside an action, outside a quoted string, leaves it in the middle
///   of a character and panics (which aborts hako);
/// - an action still open at the end of the text makes it loop forever, queueing tokens
///   without bound, while the parser waits for it to finish;
/// - `{{- ` after a non-ASCII character trims part of that character, and panics.
///
/// The first two are refused here with Go's wording; the third is applied here (trailing
/// spaces, tabs and newlines of the text before it go, as in Go) and the marker dropped.
fn guard(text: &str) -> Result<String, Error> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let (before, mut action) = (&rest[..i], &rest[i + 2..]);
        out.push_str(before);
        let trim = action.strip_prefix("- ");
        if let Some(after) = trim {
            out.truncate(out.trim_end_matches([' ', '\t', '\r', '\n']).len());
            // A `{` the trim brings next to the action would make `{{{`, which gtmpl reads
            // as another action than Go did (and can hang on): it is printed by an action.
            if out.ends_with('{') {
                out.pop();
                out.push_str("{{\"{\"}}");
            }
            action = after;
        }
        out.push_str("{{");
        if trim.is_some() && !action.starts_with("/*") {
            out.push(' ');
        }
        if let Some(body) = action.strip_prefix("/*") {
            // gtmpl finds the end of a comment with a plain search from after the `/*` (so
            // `/*/` opens without closing); a missing end is its error.
            match body.find("*/").map(|e| e + 2) {
                Some(end) => {
                    out.push_str(&action[..end + 2]);
                    rest = &action[end + 2..];
                    continue;
                }
                None => {
                    out.push_str(action);
                    return Ok(out);
                }
            }
        }
        let head = action.trim_start_matches([' ', '\t', '\r', '\n']);
        for keyword in ["template", "block"] {
            if head
                .strip_prefix(keyword)
                .is_some_and(|r| !r.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
            {
                // gtmpl has no bound on template depth (Go stops at 100,000): a template
                // that calls itself, even `{{template "" .}}`, overflows the stack.
                return Err(Error::Parse(format!(
                    "{{{{{keyword}}}}} actions are not supported in --format"
                )));
            }
        }
        let end = action_end(action, &mut out)?;
        rest = &action[end..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Copies an action to `out` up to its closing `}}` and returns where that starts. Quoted
/// strings and character constants are decoded here with Go's escapes and written back with
/// only the escapes gtmpl 0.7 decodes safely: its own decoder slices `\x`, `\u` and `\U`
/// escapes by bytes (a panic on a following non-ASCII character) and loops forever on a
/// short one (`"\x4"`); and it decodes them in raw strings too.
fn action_end(action: &str, out: &mut String) -> Result<usize, Error> {
    let mut chars = action.char_indices().peekable();
    let mut copied = 0;
    while let Some((i, c)) = chars.next() {
        match c {
            '}' if action[i..].starts_with("}}") => {
                out.push_str(&action[copied..i]);
                return Ok(i);
            }
            '`' => {
                let Some(end) = action[i + 1..].find('`') else {
                    out.push_str(&action[copied..]);
                    return Ok(action.len());
                };
                // gtmpl decodes escapes in raw strings too (Go does not): the text goes to it
                // as an interpreted string that means the same.
                out.push_str(&action[copied..i]);
                out.push_str(&quote(&action[i + 1..i + 1 + end], '"'));
                copied = i + end + 2;
                while chars.peek().is_some_and(|(j, _)| *j < copied) {
                    chars.next();
                }
            }
            '"' | '\'' => {
                let Some(end) = quoted_end(&action[i..], c) else {
                    // gtmpl reports an unterminated string itself, without reading past it.
                    out.push_str(&action[copied..]);
                    return Ok(action.len());
                };
                let literal = &action[i..i + end];
                out.push_str(&action[copied..i]);
                out.push_str(&requote(literal, c)?);
                copied = i + end;
                while chars.peek().is_some_and(|(j, _)| *j < copied) {
                    chars.next();
                }
            }
            c if !c.is_ascii() => {
                return Err(Error::Parse(format!(
                    "unexpected {c:?} in action: outside quotes, only ASCII is supported"
                )))
            }
            _ => {}
        }
    }
    Err(Error::Parse("unclosed action".into()))
}

/// The length of the quoted literal at the start of `s` (quote `q`), closing quote included;
/// `None` when a newline or the end comes first, as Go's lexer reads it.
fn quoted_end(s: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices().skip(1) {
        match c {
            '\n' => return None,
            '\\' if !escaped => escaped = true,
            c if c == q && !escaped => return Some(i + 1),
            _ => escaped = false,
        }
    }
    None
}

/// Decodes a Go string literal or character constant (quotes included) by the Go
/// specification's escapes and writes it back with [`quote`].
fn requote(literal: &str, q: char) -> Result<String, Error> {
    let bad = |why: &str| Error::Parse(format!("invalid {why} in {literal}"));
    let body = &literal[1..literal.len() - 1];
    let mut bytes = Vec::with_capacity(body.len());
    let mut it = body.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = it.next().ok_or_else(|| bad("escape"))?;
        let simple = match e {
            'a' => Some(7),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            e if e == q => Some(e as u8),
            _ => None,
        };
        if let Some(b) = simple {
            bytes.push(b);
            continue;
        }
        let (digits, radix) = match e {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return Err(bad("escape")),
        };
        let mut text = String::new();
        if radix == 8 {
            text.push(e);
        }
        for _ in 0..digits {
            text.push(it.next().ok_or_else(|| bad("escape"))?);
        }
        let n = u32::from_str_radix(&text, radix)
            .ok()
            .filter(|_| text.chars().all(|d| d.is_digit(radix)))
            .ok_or_else(|| bad("escape"))?;
        if matches!(e, 'u' | 'U') {
            let c = char::from_u32(n).ok_or_else(|| bad("escape"))?;
            let mut buf = [0; 4];
            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        } else {
            // \x and octal escapes are single bytes, which must still make UTF-8 together.
            bytes.push(u8::try_from(n).map_err(|_| bad("escape"))?);
        }
    }
    let text = String::from_utf8(bytes).map_err(|_| bad("UTF-8"))?;
    if q == '\'' && text.chars().count() != 1 {
        return Err(bad("character constant"));
    }
    Ok(quote(&text, q))
}

/// `text` quoted with `q`, escaping only the quote, the backslash and the line breaks, in the
/// forms gtmpl's lexer and decoder both read right.
fn quote(text: &str, q: char) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(q);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // gtmpl's lexer takes the quote after `\\` for an escaped one: a backslash that
            // ends the text is written the one other way gtmpl decodes.
            '\\' if chars.peek().is_none() => out.push_str("\\U0000005c"),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// A parsed `--format` template.
pub struct Format {
    tmpl: Option<Template>,
}

impl Format {
    /// Parses a template; `json` alone means one JSON document per item.
    pub fn parse(text: &str) -> Result<Format, Error> {
        if text == "json" || text == "{{json .}}" {
            return Ok(Format { tmpl: None });
        }
        let mut t = Template::default();
        t.add_funcs(&[
            ("json", json as gtmpl_value::Func),
            ("upper", upper),
            ("lower", lower),
            ("printf", printf),
        ]);
        // Docker templates are written with \t for tab-separated columns.
        let text = guard(&text.replace("\\t", "\t").replace("\\n", "\n"))?;
        t.parse(text).map_err(|e| Error::Parse(e.to_string()))?;
        Ok(Format { tmpl: Some(t) })
    }

    /// Renders one item.
    pub fn render(&self, item: &serde_json::Value) -> Result<String, Error> {
        match &self.tmpl {
            None => serde_json::to_string(item).map_err(|e| Error::Render(e.to_string())),
            Some(t) => t
                .render(&Context::from(to_tmpl(item)))
                .map_err(|e| match e {
                    // gtmpl's message would carry the whole document.
                    gtmpl::error::ExecError::NoFiledFor(field, _) => {
                        Error::Render(format!("executing: can't evaluate field {field}"))
                    }
                    e => Error::Render(e.to_string()),
                }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_json() {
        let doc = serde_json::json!({"Id": "abc", "State": {"Status": "exited", "ExitCode": 3}, "Config": {"Cmd": ["sh"]}});
        let f = Format::parse("{{.State.Status}} {{.State.ExitCode}}").unwrap();
        assert_eq!(f.render(&doc).unwrap(), "exited 3");
        let f = Format::parse("{{json .Config}}").unwrap();
        assert_eq!(f.render(&doc).unwrap(), "{\"Cmd\":[\"sh\"]}");
        let f = Format::parse("{{.Id}}\\t{{upper .State.Status}}").unwrap();
        assert_eq!(f.render(&doc).unwrap(), "abc\tEXITED");
        assert_eq!(
            Format::parse("json").unwrap().render(&doc).unwrap(),
            serde_json::to_string(&doc).unwrap()
        );
        assert!(Format::parse("{{.Id").is_err());
        let e = Format::parse("{{.Nope}}")
            .unwrap()
            .render(&doc)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "template: executing: can't evaluate field Nope");
    }

    /// Found by fuzz/fuzz_targets/template.rs: gtmpl's lexer hangs on an action left open
    /// after a space, and panics on non-ASCII text it steps back over.
    #[test]
    fn inputs_gtmpl_cannot_lex() {
        let doc = serde_json::json!({"Name": "web", "Labels": {"é": "x"}});
        let e = Format::parse("{{json .ot ").err().unwrap().to_string();
        assert_eq!(e, "template parsing error: unclosed action");
        assert!(Format::parse("{{ .Name").is_err());
        let e = Format::parse("{{ é}}").err().unwrap().to_string();
        assert!(e.contains("only ASCII"), "{e}");
        assert!(Format::parse("{{.Name→}}").is_err());
        // Inside quotes, outside actions and after a trim marker, any text works.
        let f = Format::parse("→ {{index .Labels \"é\"}} é {{- .Name}} ✓").unwrap();
        assert_eq!(f.render(&doc).unwrap(), "→ x éweb ✓");
        let f = Format::parse("{{/* é */}}{{.Name}}{{\"}}\"}}").unwrap();
        assert_eq!(f.render(&doc).unwrap(), "web}}");
        let f = Format::parse("a  {{- /* é */ -}}  b").unwrap();
        assert_eq!(f.render(&doc).unwrap(), "ab");
        assert!(Format::parse("{{\"é").is_err());
        // A template that calls itself overflowed gtmpl's stack (fuzzing).
        for t in [
            "{{define \"x\"}}X{{end}}{{template \"\" .}}",
            "{{- block \"a\" .}}{{end}}",
        ] {
            let e = Format::parse(t).err().unwrap().to_string();
            assert!(e.contains("actions are not supported"), "{e}");
        }
        let f = Format::parse("{{.Name}} {{ templates }}").map(|_| ());
        assert!(f.is_ok() || !f.unwrap_err().to_string().contains("not supported"));
        // A trim that brings a `{` next to the action (an hour of fuzzing: gtmpl hung).
        let f = Format::parse("a{ {{- .Name}}").unwrap();
        assert_eq!(f.render(&doc).unwrap(), "a{web");
        let e = Format::parse("}{ {{- /*.").err().unwrap().to_string();
        assert!(e.contains("unclosed comment"), "{e}");
    }

    /// Found by fuzz/fuzz_targets/template.rs: gtmpl's own decoding of string escapes panics
    /// on a non-ASCII character after a backslash and loops forever on a short `\x` escape.
    #[test]
    fn printf_widths_beyond_the_formatter_are_refused_not_a_crash() {
        let render = |t: &str| {
            Format::parse(t)
                .unwrap()
                .render(&serde_json::json!({"Name": "n"}))
        };
        // (gtmpl pads strings on the right where Go pads on the left: a known difference.)
        assert_eq!(render(r#"{{printf "%5s|" .Name}}"#).unwrap().len(), 6);
        assert_eq!(
            render(r#"{{printf "%-65535s" .Name}}"#).unwrap().len(),
            65535
        );
        // `%%` is no directive: the digits after it are text, not a width.
        assert!(render(r#"{{printf "%.3s%%99999999" .Name}}"#).is_ok());
        for t in [
            r#"{{printf "%+-099999999999s-!(d" .Name}}"#,
            r#"{{printf "%65536d" 1}}"#,
            r#"{{printf "%.70000f" 1.5}}"#,
        ] {
            let e = render(t).unwrap_err().to_string();
            assert!(e.contains("width or precision above 65535"), "{t}: {e}");
        }
    }

    #[test]
    fn a_comment_ends_after_its_opening() {
        let render =
            |t: &str| Format::parse(t).and_then(|f| f.render(&serde_json::json!({"Name": "n"})));
        assert_eq!(render("{{/*/ x */}}{{.Name}}").unwrap(), "n");
        // Found by fuzzing: the guard took `/*/` for a whole comment, so it read the rest
        // out of step with gtmpl, and a non-ASCII character reached gtmpl's lexer (a panic).
        let crash =
            "{{/*/[* a a {{{/* a c/*`a t */}}js\x1e\0\0\0\0\0\0\0on{{- .Name \u{502}}c/\\i/*{{- .Name -}}";
        // gtmpl lexes in a thread of its own: its panic reached the caller as "receiving on a
        // closed channel" (and aborted hako where panics abort).
        let e = render(crash).unwrap_err().to_string();
        assert!(!e.contains("closed channel"), "{e}");
    }

    #[test]
    fn string_escapes_are_decoded_as_go_does() {
        let doc = serde_json::json!({"Labels": {"é\"x": "1", "a\\b": "2", "A": "3"}});
        let render = |t: &str| Format::parse(t).and_then(|f| f.render(&doc));
        assert_eq!(render(r#"{{index .Labels "\u00e9\"x"}}"#).unwrap(), "1");
        assert_eq!(render(r#"{{index .Labels "a\\b"}}"#).unwrap(), "2");
        assert_eq!(render(r#"{{index .Labels "\x41"}}"#).unwrap(), "3");
        assert_eq!(render(r#"{{index .Labels "\101"}}"#).unwrap(), "3");
        assert_eq!(render(r#"{{index .Labels "\U00000041"}}"#).unwrap(), "3");
        // (`\n` and `\t` become a newline and a tab before parsing, as in Docker.)
        assert_eq!(render(r#"{{print "é\u00e9" "\xc3\xa9"}}"#).unwrap(), "ééé");
        assert_eq!(render(r#"{{printf "%c" '\''}}"#).unwrap(), "'");
        // Raw strings have no escapes; a backslash in one is a backslash.
        assert_eq!(render(r#"{{index .Labels `a\b`}}"#).unwrap(), "2");
        assert_eq!(render(r#"{{print "\\" "x\\" '\\'}}"#).unwrap(), "\\x\\92");
        assert_eq!(render(r#"{{print `\` `\n"` "x"}}"#).unwrap(), "\\\n\"x");
        for bad in [
            "{{\"\\\u{7ab}'\"}}",
            r#"{{"\x4"}}"#,
            r#"{{"\x4é"}}"#,
            r#"{{"\xff"}}"#,
            r#"{{"\ud800"}}"#,
            r#"{{"\q"}}"#,
            r#"{{'ab'}}"#,
        ] {
            let e = render(bad).unwrap_err().to_string();
            assert!(
                e.starts_with("template parsing error: invalid"),
                "{bad}: {e}"
            );
        }
    }
}
