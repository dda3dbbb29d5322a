//! Go's `text/template` language, as Docker's `--format` flags use it.
//!
//! No maintained Rust crate implements Go's `text/template` faithfully: the one hako used
//! before (`gtmpl`) printed maps and arrays in Rust's debug syntax, padded `%5s` on the wrong
//! side, ranged over maps in a random order, had no bound on recursion and hung or panicked on
//! a dozen inputs found by fuzzing. This crate is hako's own: a lexer ([`lex`]), a parser
//! ([`parse`]) and an executor ([`exec`]) with Go's semantics, and Go's `fmt` printing of the
//! values a JSON document holds ([`fmt`]).
//!
//! The data is a [`Value`]: JSON's values, plus objects that may carry methods (Docker's
//! format contexts offer `.Label "key"` on a `ps` row, for instance). An object is printed
//! as Go prints a map (`map[a:b c:d]`, keys sorted) and ranged over in key order. Whether a
//! missing field is an error (a Go struct) or `<no value>` (a Go map) is the object's
//! [`Object::strict`] flag.
//!
//! Supported: text, comments, trim markers, actions, pipelines, parenthesised pipelines,
//! variables (`$x :=`, `$x =`, `$`), `if`/`else if`/`else`, `with`/`else with`, `range` (over
//! arrays, objects, integers; with `else`, `break`, `continue`), and Go's built-in functions
//! (`and or not eq ne lt le gt ge len index slice print printf println html js urlquery`)
//! plus any the caller adds. `define`, `template` and `block` are refused at parse time.
//!
//! Every run is bounded ([`Limits`]): nesting depth, evaluation steps and output size, so a
//! hostile template cannot exhaust the stack, hang, or fill memory.

pub mod exec;
pub mod fmt;
mod funcs;
pub mod lex;
pub mod parse;

use std::collections::BTreeMap;
use std::rc::Rc;

/// A function a template can call: its arguments (already evaluated) to a value, or a
/// message that becomes Go's `error calling NAME: MESSAGE`.
pub type Func = fn(&[Value]) -> Result<Value, String>;

/// A method of an object (`{{.Label "k"}}`): called with its arguments, like a [`Func`].
pub type Method = Rc<dyn Fn(&[Value]) -> Result<Value, String>>;

/// A value a template works on.
#[derive(Clone)]
pub enum Value {
    /// Go's invalid value: a missing map key; printed `<no value>`.
    NoValue,
    /// JSON's `null`, Go's nil.
    Nil,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    String(Rc<str>),
    Array(Rc<Vec<Value>>),
    Object(Rc<Object>),
}

/// A JSON object, maybe with methods.
#[derive(Clone, Default)]
pub struct Object {
    /// The fields, in key order (Go sorts map keys when printing and ranging).
    pub fields: BTreeMap<String, Value>,
    /// Methods offered besides the fields; a method shadows a field of the same name.
    pub methods: BTreeMap<String, Method>,
    /// A missing field is an error (`can't evaluate field X`), as on a Go struct, rather
    /// than `<no value>`, as on a Go map.
    pub strict: bool,
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::String(Rc::from(s))
    }

    /// A JSON document as a value. The top-level object is strict (a Go struct, as Docker's
    /// documents are); nested objects are strict when all their keys look like Go's exported
    /// field names (a capital letter first), so `.State.Nope` fails as in Docker while
    /// `.Config.Labels.nope` prints `<no value>`.
    pub fn from_json(j: &serde_json::Value) -> Value {
        let mut v = Value::convert(j);
        if let Value::Object(o) = &mut v {
            Rc::make_mut(o).strict = true;
        }
        v
    }

    fn convert(j: &serde_json::Value) -> Value {
        match j {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::Uint(u)
                } else {
                    Value::Float(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Value::str(s),
            serde_json::Value::Array(a) => {
                Value::Array(Rc::new(a.iter().map(Value::convert).collect()))
            }
            serde_json::Value::Object(o) => {
                let fields: BTreeMap<String, Value> = o
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::convert(v)))
                    .collect();
                let strict = !fields.is_empty()
                    && fields
                        .keys()
                        .all(|k| k.starts_with(|c: char| c.is_ascii_uppercase()));
                Value::Object(Rc::new(Object {
                    fields,
                    methods: BTreeMap::new(),
                    strict,
                }))
            }
        }
    }

    /// The value as JSON (`json` function): methods are left out, [`Value::NoValue`] is null.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::NoValue | Value::Nil => serde_json::Value::Null,
            Value::Bool(b) => (*b).into(),
            Value::Int(i) => (*i).into(),
            Value::Uint(u) => (*u).into(),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::Array(a) => serde_json::Value::Array(a.iter().map(Value::to_json).collect()),
            Value::Object(o) => serde_json::Value::Object(
                o.fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// Adds a method to an object (other values are returned unchanged).
    pub fn with_method(
        mut self,
        name: &str,
        f: impl Fn(&[Value]) -> Result<Value, String> + 'static,
    ) -> Value {
        if let Value::Object(o) = &mut self {
            Rc::make_mut(o).methods.insert(name.to_string(), Rc::new(f));
        }
        self
    }

    /// Adds or replaces a field of an object (other values are returned unchanged).
    pub fn with_field(mut self, name: &str, v: Value) -> Value {
        if let Value::Object(o) = &mut self {
            Rc::make_mut(o).fields.insert(name.to_string(), v);
        }
        self
    }

    /// The string inside, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Go's name of the value's type, as its error messages print it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::NoValue | Value::Nil => "<nil>",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint64",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::Array(_) => "[]interface {}",
            Value::Object(_) => "map[string]interface {}",
        }
    }

    /// Go's truth: false, 0, nil, and empty strings, arrays and maps are false.
    pub fn truth(&self) -> bool {
        match self {
            Value::NoValue | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Uint(u) => *u != 0,
            Value::Float(f) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => o.strict || !o.fields.is_empty(),
        }
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&fmt::sprint(std::slice::from_ref(self)))
    }
}

/// Go's message for a function argument of the wrong type (`wrong type for value; expected
/// string; got int`); a [`Func`] returning it is reported without "error calling".
pub fn wrong_type(want: &str, got: &Value) -> String {
    funcs::wrong_type(want, got)
}

/// Why a template could not be parsed or executed; the text is Go's message
/// (`template: :1: unclosed action`, `template: :1:2: executing "" at <.X>: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("template: :{line}: {msg}")]
    Parse { line: usize, msg: String },
    #[error("template: :{line}:{col}: executing \"\" at <{context}>: {msg}")]
    Exec {
        line: usize,
        col: usize,
        context: String,
        msg: String,
    },
    /// A bound of [`Limits`] was reached.
    #[error("template: {0}")]
    Limit(String),
}

/// Bounds on one parse and one execution.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Nesting of control structures and parentheses.
    pub depth: usize,
    /// Evaluation steps (commands, fields, loop iterations) of one execution.
    pub steps: u64,
    /// Bytes of output of one execution.
    pub output: usize,
}

/// A `--format` renders one item (a container, an image, an event) per execution: a few KB
/// of output and a few hundred steps. The bounds leave room for hundreds of times that and stop
/// a runaway template (`{{range 73709551615}}…`, which fuzzing found) after a few milliseconds
/// of work: at 16 MiB and 2M steps, then 1M, a list of such rows took seconds to render under
/// the fuzzer's sanitizer; at 250,000 the suite's unoptimized replay of those inputs still took
/// 3.5 s of the fuzz target's 5 s bound.
impl Default for Limits {
    fn default() -> Limits {
        Limits {
            depth: 200,
            steps: 100_000,
            output: 4 << 20,
        }
    }
}

/// A parsed template.
pub struct Template {
    pub(crate) tree: Rc<parse::Tree>,
    pub(crate) funcs: BTreeMap<String, Func>,
    limits: Limits,
}

impl Template {
    /// Parses `text` with Go's built-in functions plus `funcs`.
    pub fn parse(text: &str, funcs: &[(&str, Func)]) -> Result<Template, Error> {
        Template::parse_with(text, funcs, Limits::default())
    }

    /// [`Template::parse`] with other bounds.
    pub fn parse_with(
        text: &str,
        funcs: &[(&str, Func)],
        limits: Limits,
    ) -> Result<Template, Error> {
        let mut map: BTreeMap<String, Func> = BTreeMap::new();
        for (name, f) in funcs {
            map.insert(name.to_string(), *f);
        }
        let known = |name: &str| map.contains_key(name) || funcs::is_builtin(name);
        let tree = parse::parse(text, &known, limits.depth)?;
        Ok(Template {
            tree: Rc::new(tree),
            funcs: map,
            limits,
        })
    }

    /// The same template with some functions replaced, as Go's `Funcs` after parsing: Docker
    /// renders a table's header with functions that leave their argument alone.
    pub fn with_funcs(&self, funcs: &[(&str, Func)]) -> Template {
        let mut map = self.funcs.clone();
        for (name, f) in funcs {
            map.insert(name.to_string(), *f);
        }
        Template {
            tree: Rc::clone(&self.tree),
            funcs: map,
            limits: self.limits,
        }
    }

    /// Executes the template over `data`, appending to `out`. On an error, what was written
    /// before it stays in `out`, as with Go's `Execute`.
    pub fn execute_into(&self, data: &Value, out: &mut String) -> Result<(), Error> {
        exec::execute(self, data, out, self.limits)
    }

    /// Executes the template over `data`.
    pub fn execute(&self, data: &Value) -> Result<String, Error> {
        let mut out = String::new();
        self.execute_into(data, &mut out)?;
        Ok(out)
    }
}
