//! Go's built-in template functions (`and` and `or` are evaluated lazily in [`crate::exec`]).

use crate::{fmt, Func, Value};
use std::rc::Rc;

const BUILTINS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "print", "printf", "println", "eq", "ne", "lt",
    "le", "gt", "ge", "html", "js", "urlquery",
];

pub fn is_builtin(name: &str) -> bool {
    BUILTINS.contains(&name)
}

/// The built-in function of this name (not `and`/`or`).
pub fn builtin(name: &str) -> Option<Func> {
    Some(match name {
        "not" => not,
        "len" => len,
        "index" => index,
        "slice" => slice,
        "print" => |a| text(fmt::sprint(a)),
        "println" => |a| text(fmt::sprintln(a)),
        "printf" => printf,
        "eq" => |a| eq(a).map(Value::Bool),
        "ne" => ne,
        "lt" => |a| cmp2("lt", a, |o| o == Ord::Lt),
        "le" => |a| cmp2("le", a, |o| o != Ord::Gt),
        "gt" => |a| cmp2("gt", a, |o| o == Ord::Gt),
        "ge" => |a| cmp2("ge", a, |o| o != Ord::Lt),
        "html" => |a| Ok(Value::str(&html(&text_of(a)))),
        "js" => |a| Ok(Value::str(&js(&text_of(a)))),
        "urlquery" => |a| Ok(Value::str(&urlquery(&text_of(a)))),
        _ => return None,
    })
}

/// Checks an exact argument count (Go checks it before calling).
pub fn want(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn want_at_least(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() < n {
        return Err(format!(
            "wrong number of args for {name}: want at least {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn not(a: &[Value]) -> Result<Value, String> {
    want("not", a, 1)?;
    Ok(Value::Bool(!a[0].truth()))
}

fn len(a: &[Value]) -> Result<Value, String> {
    want("len", a, 1)?;
    let n = match &a[0] {
        Value::String(s) => s.len(),
        Value::Array(v) => v.len(),
        Value::Object(o) => o.fields.len(),
        Value::Nil | Value::NoValue => return Err("len of nil pointer".into()),
        v => return Err(format!("len of type {}", v.type_name())),
    };
    Ok(Value::Int(n as i64))
}

/// Go's indexArg: an integer index within `0..=cap`.
fn index_arg(v: &Value, cap: usize) -> Result<usize, String> {
    let x: i128 = match v {
        Value::Int(i) => (*i).into(),
        Value::Uint(u) => (*u).into(),
        Value::Nil | Value::NoValue => return Err("cannot index slice/array with nil".into()),
        v => {
            return Err(format!(
                "cannot index slice/array with type {}",
                v.type_name()
            ))
        }
    };
    if x < 0 || x > cap as i128 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn index(a: &[Value]) -> Result<Value, String> {
    want_at_least("index", a, 1)?;
    let mut item = a[0].clone();
    if matches!(item, Value::Nil | Value::NoValue) {
        return Err("index of untyped nil".into());
    }
    for i in &a[1..] {
        item = match &item {
            Value::Array(v) => {
                let x = index_arg(i, v.len())?;
                v.get(x)
                    .cloned()
                    .ok_or_else(|| format!("index out of range: {x}"))?
            }
            Value::String(s) => {
                let x = index_arg(i, s.len())?;
                Value::Int(
                    (*s.as_bytes()
                        .get(x)
                        .ok_or_else(|| format!("index out of range: {x}"))?)
                    .into(),
                )
            }
            Value::Object(o) => {
                let Value::String(k) = i else {
                    return Err(format!(
                        "value has type {}; should be string",
                        i.type_name()
                    ));
                };
                match o.fields.get(&**k) {
                    Some(v) => v.clone(),
                    // Go gives the map's zero value: "" for Docker's string maps (labels,
                    // options), nil for the rest.
                    None if o.fields.values().all(|v| matches!(v, Value::String(_))) => {
                        Value::str("")
                    }
                    None => Value::NoValue,
                }
            }
            Value::Nil | Value::NoValue => return Err("index of nil pointer".into()),
            v => return Err(format!("can't index item of type {}", v.type_name())),
        };
    }
    Ok(item)
}

fn slice(a: &[Value]) -> Result<Value, String> {
    want_at_least("slice", a, 1)?;
    let idx = &a[1..];
    if idx.len() > 3 {
        return Err(format!("too many slice indexes: {}", idx.len()));
    }
    let len = match &a[0] {
        Value::String(s) => {
            if idx.len() == 3 {
                return Err("cannot 3-index slice a string".into());
            }
            s.len()
        }
        Value::Array(v) => v.len(),
        Value::Nil | Value::NoValue => return Err("slice of untyped nil".into()),
        v => return Err(format!("can't slice item of type {}", v.type_name())),
    };
    let mut ix = [0, len, len];
    for (k, i) in idx.iter().enumerate() {
        ix[k] = index_arg(i, len)?;
    }
    if ix[0] > ix[1] {
        return Err(format!("invalid slice index: {} > {}", ix[0], ix[1]));
    }
    if idx.len() == 3 && ix[1] > ix[2] {
        return Err(format!("invalid slice index: {} > {}", ix[1], ix[2]));
    }
    Ok(match &a[0] {
        Value::String(s) => Value::str(&String::from_utf8_lossy(&s.as_bytes()[ix[0]..ix[1]])),
        Value::Array(v) => Value::Array(Rc::new(v[ix[0]..ix[1]].to_vec())),
        _ => unreachable!("checked above"),
    })
}

fn printf(a: &[Value]) -> Result<Value, String> {
    want_at_least("printf", a, 1)?;
    let Value::String(f) = &a[0] else {
        return Err(wrong_type("string", &a[0]));
    };
    text(fmt::sprintf(f, &a[1..]))
}

/// A printed text as a value, unless it grew beyond what one print may build.
fn text(s: String) -> Result<Value, String> {
    if fmt::too_long(&s) {
        return Err(format!("text longer than {} bytes", fmt::MAX_TEXT));
    }
    Ok(Value::str(&s))
}

/// Go's message for an argument of the wrong type (not wrapped in "error calling").
pub fn wrong_type(want: &str, got: &Value) -> String {
    match got {
        Value::Nil | Value::NoValue => format!("invalid value; expected {want}"),
        v => format!(
            "wrong type for value; expected {want}; got {}",
            v.type_name()
        ),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bool,
    Int,
    Uint,
    Float,
    String,
    Invalid,
}

fn kind(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) => Kind::Int,
        Value::Uint(_) => Kind::Uint,
        Value::Float(_) => Kind::Float,
        Value::String(_) => Kind::String,
        _ => Kind::Invalid,
    }
}

fn valid(v: &Value) -> bool {
    !matches!(v, Value::Nil | Value::NoValue)
}

const BAD_COMPARISON: &str = "incompatible types for comparison";
const BAD_COMPARISON_TYPE: &str = "invalid type for comparison";

fn eq(a: &[Value]) -> Result<bool, String> {
    want_at_least("eq", a, 1)?;
    let x = &a[0];
    if a.len() == 1 {
        return Err("missing argument for comparison".into());
    }
    let k1 = kind(x);
    for y in &a[1..] {
        let k2 = kind(y);
        let truth = if k1 != k2 {
            match (x, y) {
                (Value::Int(i), Value::Uint(u)) | (Value::Uint(u), Value::Int(i)) => {
                    *i >= 0 && *i as u64 == *u
                }
                _ if valid(x) && valid(y) => return Err(BAD_COMPARISON.into()),
                _ => false,
            }
        } else {
            match (x, y) {
                (Value::Bool(p), Value::Bool(q)) => p == q,
                (Value::Int(p), Value::Int(q)) => p == q,
                (Value::Uint(p), Value::Uint(q)) => p == q,
                (Value::Float(p), Value::Float(q)) => p == q,
                (Value::String(p), Value::String(q)) => p == q,
                _ if !valid(x) || !valid(y) => valid(x) == valid(y),
                (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => {
                    return Err(format!(
                        "non-comparable type {}: {}",
                        fmt::to_string(y),
                        y.type_name()
                    ))
                }
                _ => {
                    return Err(format!(
                        "non-comparable types {}: {}, {}: {}",
                        fmt::to_string(x),
                        x.type_name(),
                        y.type_name(),
                        fmt::to_string(y)
                    ))
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn ne(a: &[Value]) -> Result<Value, String> {
    want("ne", a, 2)?;
    Ok(Value::Bool(!eq(a)?))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ord {
    Lt,
    Eq,
    Gt,
}

fn order<T: PartialOrd>(x: T, y: T) -> Ord {
    if x < y {
        Ord::Lt
    } else if x == y {
        Ord::Eq
    } else {
        Ord::Gt
    }
}

fn cmp2(name: &str, a: &[Value], f: fn(Ord) -> bool) -> Result<Value, String> {
    want(name, a, 2)?;
    let (x, y) = (&a[0], &a[1]);
    let (k1, k2) = (kind(x), kind(y));
    if k1 == Kind::Invalid || k2 == Kind::Invalid {
        return Err(BAD_COMPARISON_TYPE.into());
    }
    let o = match (x, y) {
        (Value::Int(i), Value::Uint(u)) => {
            if *i < 0 {
                Ord::Lt
            } else {
                order(*i as u64, *u)
            }
        }
        (Value::Uint(u), Value::Int(i)) => {
            if *i < 0 {
                Ord::Gt
            } else {
                order(*u, *i as u64)
            }
        }
        _ if k1 != k2 => return Err(BAD_COMPARISON.into()),
        (Value::Bool(_), _) => return Err(BAD_COMPARISON_TYPE.into()),
        (Value::Int(p), Value::Int(q)) => order(p, q),
        (Value::Uint(p), Value::Uint(q)) => order(p, q),
        (Value::Float(p), Value::Float(q)) => {
            if p < q {
                Ord::Lt
            } else if p == q {
                Ord::Eq
            } else if p > q {
                Ord::Gt
            } else {
                // NaN: neither less nor equal.
                return Ok(Value::Bool(name == "gt" || name == "ge"));
            }
        }
        (Value::String(p), Value::String(q)) => order(p, q),
        _ => return Err(BAD_COMPARISON_TYPE.into()),
    };
    Ok(Value::Bool(f(o)))
}

/// The text the escaping functions work on: a lone string as it is, else `fmt.Sprint`.
fn text_of(a: &[Value]) -> String {
    match a {
        [Value::String(s)] => s.to_string(),
        _ => fmt::sprint(a),
    }
}

/// Go's `template.HTMLEscapeString`.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if (c as u32) >= 0x80 && (c.is_control() || (c.is_whitespace())) => {
                out.push_str(&format!("\\u{:04X}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub fn urlquery(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn comparisons_as_go() {
        assert!(eq(&[Value::Int(1), Value::Int(2), Value::Int(1)]).unwrap());
        assert!(!eq(&[s("a"), s("b")]).unwrap());
        assert_eq!(eq(&[Value::Int(1), s("a")]).unwrap_err(), BAD_COMPARISON);
        assert!(!eq(&[Value::NoValue, s("a")]).unwrap());
        assert!(eq(&[Value::Nil, Value::NoValue]).unwrap());
        assert!(eq(&[Value::Int(3), Value::Uint(3)]).unwrap());
        assert_eq!(
            eq(&[Value::Int(1)]).unwrap_err(),
            "missing argument for comparison"
        );
        let lt = builtin("lt").unwrap();
        assert!(lt(&[s("a"), s("b")]).unwrap().truth());
        assert_eq!(
            lt(&[Value::Bool(true), Value::Bool(false)]).unwrap_err(),
            BAD_COMPARISON_TYPE
        );
        assert_eq!(
            lt(&[Value::Int(1), Value::Float(2.0)]).unwrap_err(),
            BAD_COMPARISON
        );
        assert!(builtin("ge").unwrap()(&[Value::Int(2), Value::Int(2)])
            .unwrap()
            .truth());
        assert!(!builtin("gt").unwrap()(&[Value::Int(-1), Value::Uint(0)])
            .unwrap()
            .truth());
        assert_eq!(
            ne(&[s("a")]).unwrap_err(),
            "wrong number of args for ne: want 2 got 1"
        );
    }

    #[test]
    fn index_slice_len() {
        let doc = Value::from_json(
            &serde_json::json!({"L": {"a": "1"}, "A": [10, 20, 30], "M": {"x": {"y": 1}}}),
        );
        let get = |k: &str| match &doc {
            Value::Object(o) => o.fields[k].clone(),
            _ => unreachable!(),
        };
        assert_eq!(fmt::to_string(&index(&[get("L"), s("a")]).unwrap()), "1");
        assert_eq!(fmt::to_string(&index(&[get("L"), s("zz")]).unwrap()), "");
        assert!(matches!(
            index(&[get("M"), s("zz")]).unwrap(),
            Value::NoValue
        ));
        assert_eq!(
            fmt::to_string(&index(&[get("A"), Value::Int(2)]).unwrap()),
            "30"
        );
        assert_eq!(
            index(&[get("A"), Value::Int(3)]).unwrap_err(),
            "index out of range: 3"
        );
        assert_eq!(
            index(&[get("A"), s("x")]).unwrap_err(),
            "cannot index slice/array with type string"
        );
        assert_eq!(index(&[Value::Nil]).unwrap_err(), "index of untyped nil");
        assert_eq!(
            fmt::to_string(&index(&[s("abc"), Value::Int(1)]).unwrap()),
            "98"
        );
        assert_eq!(
            fmt::to_string(&slice(&[s("hello"), Value::Int(1), Value::Int(3)]).unwrap()),
            "el"
        );
        assert_eq!(
            fmt::to_string(&slice(&[get("A"), Value::Int(1)]).unwrap()),
            "[20 30]"
        );
        assert_eq!(
            slice(&[s("ab"), Value::Int(2), Value::Int(1)]).unwrap_err(),
            "invalid slice index: 2 > 1"
        );
        assert_eq!(fmt::to_string(&len(&[get("A")]).unwrap()), "3");
        assert_eq!(len(&[Value::Int(3)]).unwrap_err(), "len of type int");
    }

    #[test]
    fn escapes_as_go() {
        assert_eq!(
            html("<a href=\"x\">'&'</a>"),
            "&lt;a href=&#34;x&#34;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(
            js("a'b\"c<d>=\\\n"),
            "a\\'b\\\"c\\u003Cd\\u003E\\u003D\\\\\\u000A"
        );
        assert_eq!(urlquery("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
    }
}
