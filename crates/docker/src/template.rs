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
        t.parse(text.replace("\\t", "\t").replace("\\n", "\n"))
            .map_err(|e| Error::Parse(e.to_string()))?;
        Ok(Format { tmpl: Some(t) })
    }

    /// Renders one item.
    pub fn render(&self, item: &serde_json::Value) -> Result<String, Error> {
        match &self.tmpl {
            None => serde_json::to_string(item).map_err(|e| Error::Render(e.to_string())),
            Some(t) => t
                .render(&Context::from(to_tmpl(item)))
                .map_err(|e| Error::Render(e.to_string())),
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
    }
}
