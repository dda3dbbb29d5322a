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
            action = after;
        }
        out.push_str("{{");
        if trim.is_some() && !action.starts_with("/*") {
            out.push(' ');
        }
        if action.starts_with("/*") {
            // gtmpl finds the end of a comment with a plain search; a missing one is its error.
            match action.find("*/") {
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
        let end = action_end(action)?;
        out.push_str(&action[..end]);
        rest = &action[end..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Where an action's closing `}}` starts, skipping quoted strings, raw strings and character
/// constants the way gtmpl's lexer reads them.
fn action_end(action: &str) -> Result<usize, Error> {
    let mut chars = action.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '}' if action[i..].starts_with("}}") => return Ok(i),
            '"' | '\'' | '`' => {
                let mut escaped = false;
                let closed = loop {
                    match chars.next() {
                        None => break false,
                        Some((_, '\n')) if c != '`' => break false,
                        Some((_, '\\')) if c != '`' && !escaped => escaped = true,
                        Some((_, q)) if q == c && !escaped => break true,
                        Some(_) => escaped = false,
                    }
                };
                if !closed {
                    // gtmpl reports these itself, without reading past the end.
                    return Ok(action.len());
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
    }
}
