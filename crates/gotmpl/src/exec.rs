//! The executor: Go's `text/template/exec.go` semantics over [`Value`]s, with bounds.

use crate::parse::{Arg, ArgKind, Cmd, Control, Node, Number, Pipe};
use crate::{fmt, funcs, Error, Limits, Template, Value};

enum Flow {
    Normal,
    Break,
    Continue,
}

struct State<'a> {
    t: &'a Template,
    out: &'a mut String,
    vars: Vec<(String, Value)>,
    steps: u64,
    limits: Limits,
}

type R<T> = Result<T, Error>;

pub(crate) fn execute(t: &Template, data: &Value, out: &mut String, limits: Limits) -> R<()> {
    let mut s = State {
        t,
        out,
        vars: vec![("$".to_string(), data.clone())],
        steps: 0,
        limits,
    };
    s.walk(data, &t.tree.root).map(|_| ())
}

/// Messages of argument errors, which Go reports as they are rather than as "error calling".
fn is_arg_error(msg: &str) -> bool {
    msg.starts_with("wrong number of args")
        || msg.starts_with("wrong type for value")
        || msg.starts_with("invalid value;")
}

impl State<'_> {
    fn err(&self, pos: usize, end: usize, msg: impl Into<String>) -> Error {
        let text = &self.t.tree.text;
        let pos = pos.min(text.len());
        let before = &text[..pos];
        let line = 1 + before.matches('\n').count();
        let col = before.rfind('\n').map_or(pos, |n| pos - n - 1);
        let ctx = text.get(pos..end.clamp(pos, text.len())).unwrap_or("");
        let context = if ctx.chars().count() > 20 {
            format!("{}...", ctx.chars().take(20).collect::<String>())
        } else {
            ctx.to_string()
        };
        Error::Exec {
            line,
            col,
            context,
            msg: msg.into(),
        }
    }

    fn step(&mut self) -> R<()> {
        self.charge(1)
    }

    /// Counts `n` steps of work: a function's result costs one step per 64 bytes or per
    /// element, so building large values (`printf "%1000000d"` in a loop, `split` into a
    /// million parts) is bounded like a loop is.
    fn charge(&mut self, n: u64) -> R<()> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.limits.steps {
            return Err(Error::Limit(format!(
                "execution stopped after {} steps",
                self.limits.steps
            )));
        }
        Ok(())
    }

    fn write(&mut self, s: &str) -> R<()> {
        if self.out.len() + s.len() > self.limits.output {
            return Err(Error::Limit(format!(
                "output larger than {} bytes",
                self.limits.output
            )));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn walk(&mut self, dot: &Value, list: &[Node]) -> R<Flow> {
        for n in list {
            self.step()?;
            match n {
                Node::Text(t) => self.write(t)?,
                Node::Action(p) => {
                    let v = self.pipeline(dot, p)?;
                    if p.decl.is_empty() {
                        let s = match v {
                            Value::NoValue | Value::Nil => "<no value>".to_string(),
                            v => fmt::to_string(&v),
                        };
                        if fmt::too_long(&s) {
                            return Err(Error::Limit(format!(
                                "a value printed longer than {} bytes",
                                fmt::MAX_TEXT
                            )));
                        }
                        self.write(&s)?;
                    }
                }
                Node::If(c) | Node::With(c) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(dot, &c.pipe)?;
                    let with = matches!(n, Node::With(_));
                    let flow = if v.truth() {
                        self.walk(if with { &v } else { dot }, &c.list)?
                    } else if let Some(e) = &c.else_list {
                        self.walk(dot, e)?
                    } else {
                        Flow::Normal
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range(c) => {
                    let mark = self.vars.len();
                    self.range(dot, c)?;
                    self.vars.truncate(mark);
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn range(&mut self, dot: &Value, c: &Control) -> R<()> {
        let v = self.pipeline(dot, &c.pipe)?;
        let after_decl = self.vars.len();
        let (pos, end) = (c.pipe.pos, c.pipe.cmds.last().map_or(c.pipe.pos, |c| c.end));
        let items: Vec<(Value, Value)> = match &v {
            Value::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::Int(i as i64), e.clone()))
                .collect(),
            Value::Object(o) => o
                .fields
                .iter()
                .map(|(k, e)| (Value::str(k), e.clone()))
                .collect(),
            Value::Int(_) | Value::Uint(_) => {
                if c.pipe.decl.len() > 1 {
                    return Err(self.err(
                        pos,
                        end,
                        format!(
                            "can't use {} to iterate over more than one variable",
                            fmt::to_string(&v)
                        ),
                    ));
                }
                let n = match v {
                    Value::Int(i) => i.max(0) as u64,
                    Value::Uint(u) => u,
                    _ => 0,
                };
                for i in 0..n {
                    self.step()?;
                    let e = Value::Int(i as i64);
                    match self.iteration(c, after_decl, e.clone(), e)? {
                        Flow::Break => break,
                        Flow::Continue | Flow::Normal => {}
                    }
                }
                if n == 0 {
                    if let Some(e) = &c.else_list {
                        self.walk(dot, e)?;
                    }
                }
                return Ok(());
            }
            Value::NoValue | Value::Nil => Vec::new(),
            v => {
                return Err(self.err(
                    pos,
                    end,
                    format!("range can't iterate over {}", fmt::to_string(v)),
                ))
            }
        };
        if items.is_empty() {
            if let Some(e) = &c.else_list {
                self.walk(dot, e)?;
            }
            return Ok(());
        }
        for (k, e) in items {
            self.step()?;
            match self.iteration(c, after_decl, k, e)? {
                Flow::Break => break,
                Flow::Continue | Flow::Normal => {}
            }
        }
        Ok(())
    }

    fn iteration(&mut self, c: &Control, mark: usize, key: Value, elem: Value) -> R<Flow> {
        let n = c.pipe.decl.len();
        if c.pipe.is_assign {
            let names = &c.pipe.decl;
            let mut set = |name: &String, v: Value| {
                if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    slot.1 = v;
                }
            };
            match names.len() {
                1 => set(&names[0], elem.clone()),
                2 => {
                    set(&names[0], key.clone());
                    set(&names[1], elem.clone());
                }
                _ => {}
            }
        } else if n >= 1 {
            // The last variable gets the element, a first of two the key.
            self.vars[mark - 1].1 = elem.clone();
        }
        if n >= 2 && !c.pipe.is_assign {
            self.vars[mark - 2].1 = key;
        }
        let flow = self.walk(&elem, &c.list)?;
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn pipeline(&mut self, dot: &Value, p: &Pipe) -> R<Value> {
        let mut v: Option<Value> = None;
        for cmd in &p.cmds {
            v = Some(self.command(dot, cmd, v)?);
        }
        let mut v = v.unwrap_or(Value::NoValue);
        // A nil interface is an invalid value once out of a pipeline (Go).
        if matches!(v, Value::Nil) {
            v = Value::NoValue;
        }
        for name in &p.decl {
            if p.is_assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => {
                        return Err(self.err(p.pos, p.pos, format!("undefined variable: {name}")))
                    }
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn not_a_function(&self, cmd: &Cmd, final_: &Option<Value>) -> R<()> {
        if cmd.args.len() > 1 || final_.is_some() {
            let a = &cmd.args[0];
            return Err(self.err(
                cmd.pos,
                cmd.end,
                format!(
                    "can't give argument to non-function {}",
                    &self.t.tree.text[a.pos..a.end]
                ),
            ));
        }
        Ok(())
    }

    fn command(&mut self, dot: &Value, cmd: &Cmd, final_: Option<Value>) -> R<Value> {
        self.step()?;
        let first = &cmd.args[0];
        match &first.kind {
            ArgKind::Field(names) => {
                self.field_chain(dot, dot.clone(), first, names, &cmd.args, final_)
            }
            ArgKind::Chain(p, names) => {
                let v = self.pipeline(dot, p)?;
                self.field_chain(dot, v, first, names, &cmd.args, final_)
            }
            ArgKind::Variable(name, names) => {
                let v = self.var(first, name)?;
                if names.is_empty() {
                    self.not_a_function(cmd, &final_)?;
                    return Ok(v);
                }
                self.field_chain(dot, v, first, names, &cmd.args, final_)
            }
            ArgKind::Ident(name) => self.call(dot, name, &cmd.args[1..], final_, cmd.pos, cmd.end),
            ArgKind::Pipe(p) => {
                self.not_a_function(cmd, &final_)?;
                self.pipeline(dot, p)
            }
            ArgKind::Nil => Err(self.err(first.pos, first.end, "nil is not a command")),
            _ => {
                self.not_a_function(cmd, &final_)?;
                self.arg(dot, first)
            }
        }
    }

    fn var(&self, a: &Arg, name: &str) -> R<Value> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| self.err(a.pos, a.end, format!("undefined variable: {name}")))
    }

    fn field_chain(
        &mut self,
        dot: &Value,
        mut receiver: Value,
        node: &Arg,
        names: &[String],
        args: &[Arg],
        final_: Option<Value>,
    ) -> R<Value> {
        let n = names.len();
        for name in &names[..n - 1] {
            receiver = self.field(dot, name, node, &[], None, receiver)?;
        }
        self.field(dot, &names[n - 1], node, args, final_, receiver)
    }

    fn field(
        &mut self,
        dot: &Value,
        name: &str,
        node: &Arg,
        args: &[Arg],
        final_: Option<Value>,
        receiver: Value,
    ) -> R<Value> {
        self.step()?;
        let has_args = args.len() > 1 || final_.is_some();
        let at = |s: &Self, msg: String| s.err(node.pos, node.end, msg);
        match &receiver {
            Value::Object(o) => {
                if let Some(m) = o.methods.get(name).cloned() {
                    let mut vals = Vec::new();
                    for a in args.iter().skip(1) {
                        vals.push(self.arg(dot, a)?);
                    }
                    vals.extend(final_);
                    let v = m(&vals).map_err(|e| {
                        if is_arg_error(&e) {
                            at(self, e)
                        } else {
                            at(self, format!("error calling {name}: {e}"))
                        }
                    })?;
                    self.charge_value(&v)?;
                    return Ok(v);
                }
                match o.fields.get(name) {
                    Some(_) if has_args && o.strict => Err(at(
                        self,
                        format!("{name} has arguments but cannot be invoked as function"),
                    )),
                    Some(_) | None if has_args && !o.strict => Err(at(
                        self,
                        format!("{name} is not a method but has arguments"),
                    )),
                    Some(v) => Ok(v.clone()),
                    None if o.strict => Err(at(self, format!("can't evaluate field {name}"))),
                    None => Ok(Value::NoValue),
                }
            }
            Value::NoValue => Ok(Value::NoValue),
            Value::Nil => Err(at(
                self,
                format!("nil pointer evaluating interface {{}}.{name}"),
            )),
            v => Err(at(
                self,
                format!("can't evaluate field {name} in type {}", v.type_name()),
            )),
        }
    }

    /// A function call: `args` after the name, `final_` from the previous pipeline stage.
    fn call(
        &mut self,
        dot: &Value,
        name: &str,
        args: &[Arg],
        final_: Option<Value>,
        pos: usize,
        end: usize,
    ) -> R<Value> {
        if name == "and" || name == "or" {
            if args.is_empty() && final_.is_none() {
                return Err(self.err(
                    pos,
                    end,
                    format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut v = Value::NoValue;
            for a in args {
                v = self.arg(dot, a)?;
                if v.truth() == (name == "or") {
                    return Ok(v);
                }
            }
            if let Some(f) = final_ {
                v = f;
            }
            return Ok(v);
        }
        let f = self
            .t
            .funcs
            .get(name)
            .copied()
            .or_else(|| funcs::builtin(name))
            .ok_or_else(|| self.err(pos, end, format!("{name:?} is not a defined function")))?;
        let mut vals = Vec::with_capacity(args.len() + 1);
        for a in args {
            vals.push(self.arg(dot, a)?);
        }
        vals.extend(final_);
        for v in &mut vals {
            if matches!(v, Value::NoValue) {
                *v = Value::Nil;
            }
        }
        let v = f(&vals).map_err(|e| {
            if is_arg_error(&e) {
                self.err(pos, end, e)
            } else {
                self.err(pos, end, format!("error calling {name}: {e}"))
            }
        })?;
        self.charge_value(&v)?;
        Ok(v)
    }

    fn charge_value(&mut self, v: &Value) -> R<()> {
        match v {
            Value::String(s) => self.charge(s.len() as u64 / 64),
            Value::Array(a) => self.charge(a.len() as u64),
            _ => Ok(()),
        }
    }

    fn arg(&mut self, dot: &Value, a: &Arg) -> R<Value> {
        self.step()?;
        match &a.kind {
            ArgKind::Dot => Ok(dot.clone()),
            ArgKind::Nil => Ok(Value::Nil),
            ArgKind::Bool(b) => Ok(Value::Bool(*b)),
            ArgKind::String(s) => Ok(Value::str(s)),
            ArgKind::Number(n) => self.constant(a, n),
            ArgKind::Field(names) => {
                self.field_chain(dot, dot.clone(), a, names, std::slice::from_ref(a), None)
            }
            ArgKind::Variable(name, names) => {
                let v = self.var(a, name)?;
                if names.is_empty() {
                    return Ok(v);
                }
                self.field_chain(dot, v, a, names, std::slice::from_ref(a), None)
            }
            ArgKind::Chain(p, names) => {
                let v = self.pipeline(dot, p)?;
                self.field_chain(dot, v, a, names, std::slice::from_ref(a), None)
            }
            ArgKind::Pipe(p) => self.pipeline(dot, p),
            ArgKind::Ident(name) => self.call(dot, name, &[], None, a.pos, a.end),
        }
    }

    /// Go's idealConstant: a float if written as one, else an int.
    fn constant(&self, a: &Arg, n: &Number) -> R<Value> {
        let t = &n.text;
        let hex_int = t.len() > 2
            && t.starts_with('0')
            && matches!(t.as_bytes()[1], b'x' | b'X')
            && !t.contains(['p', 'P']);
        let rune = t.starts_with('\'');
        if let (Some(f), false, false, true) = (
            n.float,
            hex_int,
            rune,
            t.contains(['.', 'e', 'E', 'p', 'P']),
        ) {
            return Ok(Value::Float(f));
        }
        if let Some(i) = n.int {
            return Ok(Value::Int(i));
        }
        if n.uint.is_some() {
            return Err(self.err(a.pos, a.end, format!("{t} overflows int")));
        }
        Ok(Value::Float(n.float.unwrap_or(0.0)))
    }
}

#[cfg(test)]
mod tests {
    use crate::{Template, Value};

    fn doc() -> Value {
        Value::from_json(&serde_json::json!({
            "Name": "web",
            "Id": "abc",
            "Count": 3,
            "Ratio": 0.5,
            "Empty": "",
            "Null": null,
            "List": ["a", "b", "c"],
            "Nums": [3, 1, 2],
            "Labels": {"b": "2", "a": "1"},
            "State": {"Status": "running", "Running": true, "Health": null},
            "Nested": {"x": {"y": "deep"}},
        }))
    }

    fn run(t: &str) -> String {
        match Template::parse(t, &[]).and_then(|t| t.execute(&doc())) {
            Ok(s) => s,
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn fields_and_printing() {
        assert_eq!(run("{{.Name}} {{.Count}} {{.Ratio}}"), "web 3 0.5");
        assert_eq!(run("{{.List}}"), "[a b c]");
        assert_eq!(run("{{.Labels}}"), "map[a:1 b:2]");
        assert_eq!(
            run("{{.State}}"),
            "map[Health:<nil> Running:true Status:running]"
        );
        assert_eq!(run("{{.Null}}"), "<no value>");
        assert_eq!(run("{{.Labels.zz}}"), "<no value>");
        assert_eq!(run("{{.Nested.x.y}}"), "deep");
        assert_eq!(run("{{.Nested.q.y}}"), "<no value>");
        assert_eq!(
            run("{{.Nope}}"),
            "ERR template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope"
        );
        assert_eq!(
            run("a\n {{.State.Nope}}"),
            "ERR template: :2:3: executing \"\" at <.State.Nope>: can't evaluate field Nope"
        );
        assert_eq!(run("{{.State.Health.Status}}"), "ERR template: :1:2: executing \"\" at <.State.Health.Status>: nil pointer evaluating interface {}.Status");
        assert_eq!(run("{{.Name.X}}"), "ERR template: :1:2: executing \"\" at <.Name.X>: can't evaluate field X in type string");
        assert!(run("{{.}}").starts_with("map[Count:3 Empty: Id:abc"));
        assert_eq!(run("{{$}}"), run("{{.}}"));
        assert_eq!(
            run("{{1e6}} {{1.5}} {{0x10}} {{'a'}} {{-3}} {{true}}"),
            "1e+06 1.5 16 97 -3 true"
        );
        assert_eq!(run(r#"{{"a\tb"}}{{`c\td`}}"#), "a\tbc\\td");
        assert_eq!(run("{{9223372036854775808}}"), "ERR template: :1:2: executing \"\" at <9223372036854775808>: 9223372036854775808 overflows int");
    }

    #[test]
    fn trims_and_comments() {
        assert_eq!(run("a  {{- .Name -}}  b"), "awebb");
        assert_eq!(run("a {{/* c */}} b"), "a  b");
        assert_eq!(run("a {{- /* c */ -}} b"), "ab");
        assert_eq!(run("{{- .Name}}\n"), "web\n");
    }

    #[test]
    fn control_structures() {
        assert_eq!(run("{{if .State.Running}}up{{else}}down{{end}}"), "up");
        assert_eq!(
            run("{{if .Empty}}x{{else if .Count}}c{{else}}n{{end}}"),
            "c"
        );
        assert_eq!(run("{{with .Nested.x}}{{.y}}{{end}}"), "deep");
        assert_eq!(
            run("{{with .Empty}}x{{else with .Name}}{{.}}{{end}}"),
            "web"
        );
        assert_eq!(run("{{with .Null}}x{{else}}none{{end}}"), "none");
        assert_eq!(run("{{range .List}}{{.}},{{end}}"), "a,b,c,");
        assert_eq!(
            run("{{range $i, $v := .List}}{{$i}}={{$v}} {{end}}"),
            "0=a 1=b 2=c "
        );
        assert_eq!(
            run("{{range $k, $v := .Labels}}{{$k}}:{{$v}};{{end}}"),
            "a:1;b:2;"
        );
        assert_eq!(run("{{range $v := .Labels}}{{$v}}{{end}}"), "12");
        assert_eq!(
            run("{{range .Missing}}x{{else}}empty{{end}}"),
            "ERR template: :1:8: executing \"\" at <.Missing>: can't evaluate field Missing"
        );
        assert_eq!(run("{{range .Labels.none}}x{{else}}empty{{end}}"), "empty");
        assert_eq!(
            run("{{range .List}}{{if eq . \"b\"}}{{break}}{{end}}{{.}}{{end}}"),
            "a"
        );
        assert_eq!(
            run("{{range .List}}{{if eq . \"b\"}}{{continue}}{{end}}{{.}}{{end}}"),
            "ac"
        );
        assert_eq!(run("{{range 3}}{{.}}{{end}}"), "012");
        assert_eq!(
            run("{{range .Name}}{{end}}"),
            "ERR template: :1:8: executing \"\" at <.Name>: range can't iterate over web"
        );
        assert_eq!(run("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}"), "2");
        assert_eq!(
            run("{{$x := .Name}}{{range .List}}{{$x}}{{end}}"),
            "webwebweb"
        );
        assert_eq!(run("{{range .List}}{{$.Name}}{{end}}"), "webwebweb");
        assert_eq!(run("{{$n := len .List}}{{$n}}"), "3");
    }

    #[test]
    fn functions() {
        assert_eq!(run("{{len .List}} {{len .Name}} {{len .Labels}}"), "3 3 2");
        assert_eq!(
            run("{{index .List 1}} {{index .Labels \"b\"}} {{index .Labels \"z\"}}|"),
            "b 2 |"
        );
        assert_eq!(run("{{slice .Name 1}} {{slice .List 1 2}}"), "eb [b]");
        assert_eq!(
            run("{{eq .Name \"web\"}} {{eq .Count 1 2 3}} {{ne .Count 3}}"),
            "true true false"
        );
        assert_eq!(
            run("{{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1 2}}"),
            "true true true false"
        );
        assert_eq!(
            run("{{and 1 0 2}} {{or 0 \"\" .Name}} {{not .Empty}} {{and 1 2}}"),
            "0 web true 2"
        );
        assert_eq!(
            run("{{or 0 .Nope}}"),
            "ERR template: :1:7: executing \"\" at <.Nope>: can't evaluate field Nope"
        );
        assert_eq!(run("{{and 0 .Nope}}"), "0");
        assert_eq!(run("{{print 1 2 \"a\" 3}}"), "1 2a3");
        assert_eq!(run("{{println .Name 1}}"), "web 1\n");
        assert_eq!(
            run("{{printf \"%5s|%-4d|%05.1f\" .Name .Count .Ratio}}"),
            "  web|3   |000.5"
        );
        assert_eq!(
            run("{{printf \"%v %s\" .Labels .List}}"),
            "map[a:1 b:2] [a b c]"
        );
        assert_eq!(run("{{.Name | printf \"%q\"}}"), "\"web\"");
        assert_eq!(run("{{.Name | len | printf \"%d\"}}"), "3");
        assert_eq!(
            run("{{html \"<a&b>\"}} {{js \"'x'\"}} {{urlquery \"a b\"}}"),
            "&lt;a&amp;b&gt; \\'x\\' a+b"
        );
        assert_eq!(
            run("{{printf \"%s\" .Nope2}}"),
            "ERR template: :1:14: executing \"\" at <.Nope2>: can't evaluate field Nope2"
        );
        assert_eq!(run("{{printf \"%v\" .Labels.none}}"), "<nil>");
        assert_eq!(run("{{eq .Count \"3\"}}"), "ERR template: :1:2: executing \"\" at <eq .Count \"3\">: error calling eq: incompatible types for comparison");
        assert_eq!(run("{{index .List 5}}"), "ERR template: :1:2: executing \"\" at <index .List 5>: error calling index: index out of range: 5");
        assert_eq!(
            run("{{len 3}}"),
            "ERR template: :1:2: executing \"\" at <len 3>: error calling len: len of type int"
        );
        assert_eq!(run("{{not}}"), "ERR template: :1:2: executing \"\" at <not>: wrong number of args for not: want 1 got 0");
        assert_eq!(run("{{printf 3}}"), "ERR template: :1:2: executing \"\" at <printf 3>: wrong type for value; expected string; got int");
        assert_eq!(run("{{.Name 3}}"), "ERR template: :1:2: executing \"\" at <.Name>: Name has arguments but cannot be invoked as function");
        assert_eq!(run("{{\"x\" 3}}"), "ERR template: :1:2: executing \"\" at <\"x\" 3>: can't give argument to non-function \"x\"");
        assert_eq!(run("{{(len .List) | printf \"%d!\"}}"), "3!");
        assert_eq!(run("{{(index .Nested \"x\").y}}"), "deep");
        assert_eq!(
            run("{{nil}}"),
            "ERR template: :1:2: executing \"\" at <nil>: nil is not a command"
        );
    }

    #[test]
    fn methods_and_limits() {
        let row = Value::from_json(&serde_json::json!({"Name": "n", "L": {"k": "v"}})).with_method(
            "Label",
            |a| match a {
                [Value::String(k)] => Ok(Value::str(if &**k == "k" { "v" } else { "" })),
                _ => Err(crate::funcs::wrong_type(
                    "string",
                    a.first().unwrap_or(&Value::Nil),
                )),
            },
        );
        let t = |s: &str| {
            Template::parse(s, &[])
                .unwrap()
                .execute(&row)
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            t("{{.Label \"k\"}}|{{.Label \"x\"}}|{{\"k\" | .Label}}").unwrap(),
            "v||v"
        );
        assert_eq!(t("{{.Label 3}}").unwrap_err(), "template: :1:2: executing \"\" at <.Label>: wrong type for value; expected string; got int");
        let e = Template::parse("{{range 100000000}}{{end}}", &[])
            .unwrap()
            .execute(&row)
            .unwrap_err();
        assert!(e.to_string().contains("steps"), "{e}");
        let t = Template::parse("{{range 10000}}{{printf \"%1000d\" .}}{{end}}", &[]).unwrap();
        match t.execute(&row) {
            Err(e) => assert!(e.to_string().contains("output larger"), "{e}"),
            Ok(s) => panic!("{} bytes of output", s.len()),
        }
        let t = Template::parse("{{printf \"%1000000v\" (slice (printf \"%1000000d\" 1) 0)}}{{printf \"%1000000d%1000000d%1000000d%1000000d%1000000d\" 1 2 3 4 5}}", &[]).unwrap();
        let e = t.execute(&row).unwrap_err();
        assert!(
            e.to_string()
                .contains("error calling printf: text longer than"),
            "{e}"
        );
        // Work inside functions counts too: a million-byte string per iteration stops early.
        let t = Template::parse(
            "{{range 1000000}}{{len (printf \"%1000000d\" .)}}{{end}}",
            &[],
        );
        let e = t.unwrap().execute(&row).unwrap_err();
        assert!(e.to_string().contains("steps"), "{e}");
        let deep = format!("{}x{}", "{{if 1}}".repeat(100), "{{end}}".repeat(100));
        assert_eq!(
            Template::parse(&deep, &[]).unwrap().execute(&row).unwrap(),
            "x"
        );
        let deeper = format!("{}x{}", "{{if 1}}".repeat(500), "{{end}}".repeat(500));
        assert!(Template::parse(&deeper, &[]).is_err());
    }
}
