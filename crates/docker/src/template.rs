//! `--format`: Go templates (`{{.State.Status}}`, `{{json .Config}}`) rendered by hako's own
//! engine ([`hako_gotmpl`]) with Docker's functions, over the same JSON documents `inspect`
//! prints; `table …` formats of the list commands with a header row and Docker's column
//! alignment.

use hako_gotmpl::{Func, Template, Value};
use std::collections::BTreeMap;
use std::io::Write;

pub use hako_gotmpl::Value as TemplateValue;

/// Why a template could not be used. The text is Go's (`template: :1: unclosed action`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The template text is not a valid Go template.
    #[error("template parsing error: {0}")]
    Parse(String),
    /// The template failed while rendering an item (e.g. a function given the wrong type).
    #[error("{0}")]
    Render(String),
}

impl From<hako_gotmpl::Error> for Error {
    fn from(e: hako_gotmpl::Error) -> Error {
        match e {
            hako_gotmpl::Error::Parse { .. } => Error::Parse(e.to_string()),
            e => Error::Render(e.to_string()),
        }
    }
}

fn want_str(args: &[Value], i: usize) -> Result<&str, String> {
    match args.get(i) {
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(hako_gotmpl::wrong_type("string", v)),
        None => Err(hako_gotmpl::wrong_type("string", &Value::Nil)),
    }
}

fn want_int(args: &[Value], i: usize) -> Result<i64, String> {
    match args.get(i) {
        Some(Value::Int(n)) => Ok(*n),
        Some(v) => Err(hako_gotmpl::wrong_type("int", v)),
        None => Err(hako_gotmpl::wrong_type("int", &Value::Nil)),
    }
}

fn arity(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

/// Docker's `json`: Go's encoder without HTML escaping, no trailing newline.
fn json(a: &[Value]) -> Result<Value, String> {
    arity("json", a, 1)?;
    serde_json::to_string(&a[0].to_json())
        .map(|s| Value::str(&s))
        .map_err(|e| e.to_string())
}

/// Go's `strings.Split`: an empty separator splits into characters.
fn split(a: &[Value]) -> Result<Value, String> {
    arity("split", a, 2)?;
    let (s, sep) = (want_str(a, 0)?, want_str(a, 1)?);
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::str(&c.to_string())).collect()
    } else {
        s.split(sep).map(Value::str).collect()
    };
    Ok(Value::Array(parts.into()))
}

/// Go's `strings.Join` (elements that are not strings are printed as `%v` prints them).
fn join(a: &[Value]) -> Result<Value, String> {
    arity("join", a, 2)?;
    let sep = want_str(a, 1)?;
    let Value::Array(items) = &a[0] else {
        return Err(hako_gotmpl::wrong_type("[]string", &a[0]));
    };
    let parts: Vec<String> = items.iter().map(hako_gotmpl::fmt::to_string).collect();
    Ok(Value::str(&parts.join(sep)))
}

/// Go's `strings.Title`: the first letter of each word upper-cased.
fn title(a: &[Value]) -> Result<Value, String> {
    arity("title", a, 1)?;
    let mut out = String::new();
    let mut prev_letter = false;
    for c in want_str(a, 0)?.chars() {
        if prev_letter {
            out.push(c);
        } else {
            out.extend(c.to_uppercase());
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    Ok(Value::str(&out))
}

fn upper(a: &[Value]) -> Result<Value, String> {
    arity("upper", a, 1)?;
    Ok(Value::str(&want_str(a, 0)?.to_uppercase()))
}

fn lower(a: &[Value]) -> Result<Value, String> {
    arity("lower", a, 1)?;
    Ok(Value::str(&want_str(a, 0)?.to_lowercase()))
}

/// Docker's `pad`: spaces before and after, unless the text is empty.
fn pad(a: &[Value]) -> Result<Value, String> {
    arity("pad", a, 3)?;
    let s = want_str(a, 0)?;
    let (before, after) = (want_int(a, 1)?, want_int(a, 2)?);
    if s.is_empty() {
        return Ok(Value::str(""));
    }
    let n = |k: i64| -> Result<usize, String> {
        usize::try_from(k)
            .ok()
            .filter(|&k| k <= 1 << 20)
            .ok_or_else(|| format!("strings: Repeat count out of range: {k}"))
    };
    let (before, after) = (n(before)?, n(after)?);
    Ok(Value::str(&format!(
        "{}{s}{}",
        " ".repeat(before),
        " ".repeat(after)
    )))
}

/// Docker's `truncate`: the first `n` bytes.
fn truncate(a: &[Value]) -> Result<Value, String> {
    arity("truncate", a, 2)?;
    let s = want_str(a, 0)?;
    let n = want_int(a, 1)?;
    if n < 0 {
        return Err(format!("runtime error: slice bounds out of range [:{n}]"));
    }
    let n = n as usize;
    if s.len() < n {
        return Ok(Value::str(s));
    }
    Ok(Value::str(&String::from_utf8_lossy(&s.as_bytes()[..n])))
}

/// Docker's functions (`templates.basicFunctions` of its CLI).
const FUNCS: &[(&str, Func)] = &[
    ("json", json),
    ("split", split),
    ("join", join),
    ("title", title),
    ("lower", lower),
    ("upper", upper),
    ("pad", pad),
    ("truncate", truncate),
];

/// The first argument as it is: Docker renders a table's header with these in place of
/// `json`, `split`, `join`, `title`, `lower`, `upper` and `truncate`, so the header reads as
/// the field names' headers (`pad` stays, to keep the columns aligned).
fn keep_first(a: &[Value]) -> Result<Value, String> {
    Ok(a.first().cloned().unwrap_or(Value::Nil))
}

const HEADER_FUNCS: &[(&str, Func)] = &[
    ("json", keep_first),
    ("split", keep_first),
    ("join", keep_first),
    ("title", keep_first),
    ("lower", keep_first),
    ("upper", keep_first),
    ("truncate", keep_first),
];

/// A parsed `--format`.
pub struct Format {
    table: bool,
    body: Body,
}

enum Body {
    /// `json`: each item as one line of JSON.
    Json,
    Template(Template),
}

impl Format {
    /// A template over a whole document (`inspect -f`, `version -f`, `info -f`); `json`
    /// alone means the document as JSON. `\t` and `\n` written as such are a tab and a
    /// newline, as in Docker's list formats.
    pub fn parse(text: &str) -> Result<Format, Error> {
        if text == "json" || text == "{{json .}}" {
            return Ok(Format {
                table: false,
                body: Body::Json,
            });
        }
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        Ok(Format {
            table: false,
            body: Body::Template(Template::parse(&text, FUNCS)?),
        })
    }

    /// A list command's `--format`: `table …` prints a header row and aligns the columns
    /// (Docker: any format starting with `table`); an empty format or `table` alone is
    /// `default`; the text around is trimmed of spaces as Docker trims it.
    pub fn parse_list(text: &str, default: &str) -> Result<Format, Error> {
        let text = match text.trim_matches(' ') {
            "" | "table" => default,
            _ => text,
        };
        let (table, body) = match text.strip_prefix("table") {
            Some(rest) => (true, rest.trim_matches(' ')),
            None => (false, text.trim_matches(' ')),
        };
        let mut f = Format::parse(body)?;
        f.table = table;
        Ok(f)
    }

    /// Whether this is a `table` format.
    pub fn is_table(&self) -> bool {
        self.table
    }

    /// Whether the items must carry every field (`json` prints them all).
    pub fn is_json(&self) -> bool {
        matches!(self.body, Body::Json)
    }

    /// Renders one item.
    pub fn render(&self, item: &serde_json::Value) -> Result<String, Error> {
        match &self.body {
            Body::Json => serde_json::to_string(item).map_err(|e| Error::Render(e.to_string())),
            Body::Template(t) => Ok(t.execute(&Value::from_json(item))?),
        }
    }

    /// Renders one item that may carry methods (see [`labels_method`]).
    pub fn render_value(&self, item: &Value) -> Result<String, Error> {
        match &self.body {
            Body::Json => {
                serde_json::to_string(&item.to_json()).map_err(|e| Error::Render(e.to_string()))
            }
            Body::Template(t) => Ok(t.execute(item)?),
        }
    }

    /// The header row of a `table` format: the template over the field names' headers,
    /// with Docker's header functions. As in Docker, an error leaves the header as far as
    /// it got (`.Label "k"` has no header).
    fn header(&self, headers: &[(&str, &str)]) -> String {
        let Body::Template(t) = &self.body else {
            return String::new();
        };
        let map = Value::Object(std::rc::Rc::new(hako_gotmpl::Object {
            fields: headers
                .iter()
                .map(|(k, v)| (k.to_string(), Value::str(v)))
                .collect(),
            ..Default::default()
        }));
        let mut out = String::new();
        let _ = t.with_funcs(HEADER_FUNCS).execute_into(&map, &mut out);
        out
    }

    /// A list's output: each row, then a newline; with `table`, a header row first and the
    /// columns (cells separated by tabs) aligned as Docker's CLI aligns them (Go's tabwriter
    /// with cells at least 10 wide including 3 spaces of padding). Nothing is printed when
    /// a row fails, as with Docker.
    pub fn render_list(&self, headers: &[(&str, &str)], rows: &[Value]) -> Result<String, Error> {
        let mut text = String::new();
        if self.table {
            text.push_str(&self.header(headers));
            text.push('\n');
        }
        for r in rows {
            text.push_str(&self.render_value(r)?);
            text.push('\n');
        }
        if !self.table {
            return Ok(text);
        }
        let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(7).padding(3);
        tw.write_all(text.as_bytes())
            .and_then(|_| tw.flush())
            .map_err(|e| Error::Render(e.to_string()))?;
        let bytes = tw.into_inner().map_err(|e| Error::Render(e.to_string()))?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// `labels` as Docker's list rows print them: `k=v` pairs joined with commas.
pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A list row (`row`, a JSON object) with Docker's `.Label "key"` method over `labels`
/// (empty for a key that is not there).
pub fn labels_method(row: &serde_json::Value, labels: BTreeMap<String, String>) -> Value {
    Value::from_json(row).with_method("Label", move |a| {
        arity("Label", a, 1)?;
        let k = want_str(a, 0)?;
        Ok(Value::str(labels.get(k).map_or("", String::as_str)))
    })
}

/// Whether a `ps` format needs what only a container's inspect document has (its labels,
/// mounts and networks).
pub fn ps_needs_details(format: &str) -> bool {
    format.trim() == "json"
        || ["Label", "Mounts", "Networks", "LocalVolumes"]
            .iter()
            .any(|k| format.contains(k))
}

/// A `ps --format` row: `fields` (Docker's ID, Image, Command, …) plus, from the container's
/// inspect document `doc`, Docker's `Labels` (`k=v,…`), `Mounts` (volume names or source
/// paths, each cut to 15 characters unless `no_trunc`), `Networks` and `LocalVolumes`, and the
/// `.Label "key"` method.
pub fn container_row(
    fields: &serde_json::Value,
    doc: Option<&serde_json::Value>,
    no_trunc: bool,
) -> Value {
    let mut row = fields.clone();
    let mut labels = BTreeMap::new();
    if let (Some(doc), Some(obj)) = (doc, row.as_object_mut()) {
        if let Some(l) = doc["Config"]["Labels"].as_object() {
            labels = l
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
        }
        let mounts = doc["Mounts"].as_array().cloned().unwrap_or_default();
        let names: Vec<String> = mounts
            .iter()
            .map(|m| {
                let name = match m["Name"].as_str() {
                    Some(n) if !n.is_empty() => n,
                    _ => m["Source"].as_str().unwrap_or_default(),
                };
                if no_trunc {
                    name.to_string()
                } else {
                    crate::format::ellipsis(name, 15)
                }
            })
            .collect();
        let local = mounts.iter().filter(|m| m["Driver"] == "local").count();
        let networks: Vec<&String> = doc["NetworkSettings"]["Networks"]
            .as_object()
            .map(|n| n.keys().collect())
            .unwrap_or_default();
        obj.insert("Labels".into(), labels_text(&labels).into());
        obj.insert("Mounts".into(), names.join(",").into());
        obj.insert(
            "Networks".into(),
            networks
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
                .into(),
        );
        obj.insert("LocalVolumes".into(), local.to_string().into());
    }
    labels_method(&row, labels)
}

/// Headers of `ps` columns (Docker's container formatter).
pub const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Names", "NAMES"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Networks", "NETWORKS"),
];

/// Headers of `images` columns.
pub const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("Containers", "CONTAINERS"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedSince", "CREATED"),
    ("Digest", "DIGEST"),
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("SharedSize", "SHARED SIZE"),
    ("Size", "SIZE"),
    ("Tag", "TAG"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "VIRTUAL SIZE"),
];

/// Headers of `network ls` columns.
pub const NETWORK_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

/// Headers of `volume ls` columns.
pub const VOLUME_HEADERS: &[(&str, &str)] = &[
    ("Name", "VOLUME NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
    ("CreatedAt", "CREATED AT"),
    ("Group", "GROUP"),
    ("Availability", "AVAILABILITY"),
    ("Status", "STATUS"),
];

/// Headers of `history` columns.
pub const HISTORY_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

/// Headers of `search` columns.
pub const SEARCH_HEADERS: &[(&str, &str)] = &[
    ("Name", "NAME"),
    ("Description", "DESCRIPTION"),
    ("StarCount", "STARS"),
    ("IsOfficial", "OFFICIAL"),
    ("IsAutomated", "AUTOMATED"),
];

/// Headers of `stats` columns.
pub const STATS_HEADERS: &[(&str, &str)] = &[
    ("Container", "CONTAINER"),
    ("ID", "CONTAINER ID"),
    ("Name", "NAME"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// Headers of `system df` columns.
pub const DF_HEADERS: &[(&str, &str)] = &[
    ("Type", "TYPE"),
    ("TotalCount", "TOTAL"),
    ("Active", "ACTIVE"),
    ("Size", "SIZE"),
    ("Reclaimable", "RECLAIMABLE"),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, doc: &serde_json::Value) -> String {
        match Format::parse(t).and_then(|f| f.render(doc)) {
            Ok(s) => s,
            Err(e) => format!("ERR {e}"),
        }
    }

    #[test]
    fn fields_and_json() {
        let doc = serde_json::json!({"Id": "abc", "State": {"Status": "exited", "ExitCode": 3}, "Config": {"Cmd": ["sh", "-c"], "Labels": {"b": "2", "a": "1"}, "Env": null}});
        assert_eq!(
            render("{{.State.Status}} {{.State.ExitCode}}", &doc),
            "exited 3"
        );
        assert_eq!(render("{{json .Config.Cmd}}", &doc), "[\"sh\",\"-c\"]");
        assert_eq!(
            render("{{.Id}}\\t{{upper .State.Status}}", &doc),
            "abc\tEXITED"
        );
        assert_eq!(render("json", &doc), serde_json::to_string(&doc).unwrap());
        // Go's printing, not Rust's debug syntax (issue 21, defect 9).
        assert_eq!(render("{{.Config.Cmd}}", &doc), "[sh -c]");
        assert_eq!(render("{{.Config.Labels}}", &doc), "map[a:1 b:2]");
        assert_eq!(render("{{.Config.Env}}", &doc), "<no value>");
        assert_eq!(render("{{json .Config.Env}}", &doc), "null");
        assert_eq!(render("{{index .Config.Labels \"a\"}}", &doc), "1");
        assert_eq!(
            render(
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}} {{end}}",
                &doc
            ),
            "a=1 b=2 "
        );
        assert_eq!(render(r#"{{printf "%5s|%%" .Id}}"#, &doc), "  abc|%");
        assert_eq!(
            render("{{.Nope}}", &doc),
            "ERR template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope"
        );
        assert_eq!(
            render("{{.Id", &doc),
            "ERR template parsing error: template: :1: unclosed action"
        );
    }

    #[test]
    fn docker_functions() {
        let doc = serde_json::json!({"Name": "hello world", "Env": ["A=1", "B=2"], "N": 3});
        assert_eq!(render("{{join .Env \",\"}}", &doc), "A=1,B=2");
        assert_eq!(render("{{split .Name \" \"}}", &doc), "[hello world]");
        assert_eq!(render("{{index (split .Name \" \") 1}}", &doc), "world");
        assert_eq!(render("{{title .Name}}", &doc), "Hello World");
        assert_eq!(
            render("{{upper .Name}} {{lower \"AB\"}}", &doc),
            "HELLO WORLD ab"
        );
        assert_eq!(
            render("[{{pad .Name 1 2}}][{{pad \"\" 1 2}}]", &doc),
            "[ hello world  ][]"
        );
        assert_eq!(
            render("{{truncate .Name 5}} {{truncate \"ab\" 5}}", &doc),
            "hello ab"
        );
        assert_eq!(
            render("{{json .}}", &doc),
            serde_json::to_string(&doc).unwrap()
        );
        assert_eq!(render("{{json .Env}}", &doc), "[\"A=1\",\"B=2\"]");
        assert_eq!(render("{{json \"<&>\"}}", &doc), "\"<&>\"");
        assert_eq!(
            render("{{upper .N}}", &doc),
            "ERR template: :1:2: executing \"\" at <upper .N>: wrong type for value; expected string; got int"
        );
        assert_eq!(
            render("{{truncate .Name -1}}", &doc),
            "ERR template: :1:2: executing \"\" at <truncate .Name -1>: error calling truncate: runtime error: slice bounds out of range [:-1]"
        );
    }

    #[test]
    fn tables_have_a_header_and_aligned_columns() {
        let f = Format::parse_list("table {{.ID}}\\t{{.Names}}", "").unwrap();
        assert!(f.is_table());
        let rows = [
            Value::from_json(&serde_json::json!({"ID": "abc", "Names": "web"})),
            Value::from_json(&serde_json::json!({"ID": "0123456789ab", "Names": "db"})),
        ];
        assert_eq!(
            f.render_list(PS_HEADERS, &rows).unwrap(),
            "CONTAINER ID   NAMES\nabc            web\n0123456789ab   db\n"
        );
        // Without `table`: no header, rows as they are.
        let f = Format::parse_list("{{.ID}}\\t{{.Names}}", "").unwrap();
        assert_eq!(
            f.render_list(PS_HEADERS, &rows).unwrap(),
            "abc\tweb\n0123456789ab\tdb\n"
        );
        // Header functions leave the header alone; a short column is 10 wide with its padding.
        let f = Format::parse_list("table {{upper .Names}}\\t{{.ID}}", "").unwrap();
        assert_eq!(
            f.render_list(PS_HEADERS, &rows[..1]).unwrap(),
            "NAMES     CONTAINER ID\nWEB       abc\n"
        );
        // `table` alone or nothing: the command's default.
        let f = Format::parse_list("table", "table {{.Names}}").unwrap();
        assert_eq!(
            f.render_list(PS_HEADERS, &rows[..1]).unwrap(),
            "NAMES\nweb\n"
        );
        let f = Format::parse_list("json", "").unwrap();
        assert_eq!(
            f.render_list(PS_HEADERS, &rows[..1]).unwrap(),
            "{\"ID\":\"abc\",\"Names\":\"web\"}\n"
        );
    }

    #[test]
    fn label_method() {
        let labels: BTreeMap<String, String> = [
            ("a".to_string(), "1".to_string()),
            ("com.x".to_string(), "y".to_string()),
        ]
        .into();
        let row = labels_method(
            &serde_json::json!({"Name": "v", "Labels": labels_text(&labels)}),
            labels,
        );
        let f = Format::parse("{{.Labels}}|{{.Label \"com.x\"}}|{{.Label \"zz\"}}").unwrap();
        assert_eq!(f.render_value(&row).unwrap(), "a=1,com.x=y|y|");
        // In a table header `.Label` has no header: the header stops there, as Docker's.
        let f = Format::parse_list("table {{.Name}}\\t{{.Label \"a\"}}", "").unwrap();
        assert_eq!(
            f.render_list(&[("Name", "NAME")], &[row]).unwrap(),
            "NAME      \nv         1\n"
        );
    }

    #[test]
    fn container_rows_as_dockers_container_context() {
        let doc = serde_json::json!({
            "Config": {"Labels": {"b": "2", "a": "1"}},
            "Mounts": [{"Name": "", "Source": "/very/long/source/path", "Driver": ""},
                       {"Name": "data", "Source": "/var/lib/x", "Driver": "local"}],
            "NetworkSettings": {"Networks": {"n2": {}, "bridge": {}}},
        });
        let fields = serde_json::json!({"Names": "web"});
        let f = Format::parse(
            "{{.Labels}}|{{.Label \"b\"}}|{{.Mounts}}|{{.Networks}}|{{.LocalVolumes}}",
        )
        .unwrap();
        assert_eq!(
            f.render_value(&container_row(&fields, Some(&doc), false))
                .unwrap(),
            "a=1,b=2|2|/very/long/sou…,data|bridge,n2|1"
        );
        assert_eq!(
            f.render_value(&container_row(&fields, Some(&doc), true))
                .unwrap(),
            "a=1,b=2|2|/very/long/source/path,data|bridge,n2|1"
        );
        // Without the document (the format names none of these), `.Label` still answers.
        let f = Format::parse("{{.Names}}:{{.Label \"b\"}}").unwrap();
        assert_eq!(
            f.render_value(&container_row(&fields, None, false))
                .unwrap(),
            "web:"
        );
        assert!(ps_needs_details("{{.Label \"x\"}}") && ps_needs_details("json"));
        assert!(!ps_needs_details("table {{.Names}}"));
    }

    /// Inputs found by fuzzing the gtmpl-based renderer: they must stay a clean error or a
    /// clean output with hako's own engine.
    #[test]
    fn former_fuzz_findings() {
        let doc = serde_json::json!({"Name": "web", "Labels": {"é": "x"}});
        for t in [
            "{{json .ot ",
            "{{ é}}",
            "{{\"\\x4\"}}",
            "{{\"\\\u{7ab}'\"}}",
            "{{define \"x\"}}X{{end}}{{template \"\" .}}",
            "{{- block \"a\" .}}{{end}}",
            "}{ {{- /*.",
        ] {
            assert!(render(t, &doc).starts_with("ERR "), "{t}");
        }
        assert_eq!(render("a{ {{- .Name}}", &doc), "a{web");
        assert_eq!(
            render("→ {{index .Labels \"é\"}} é {{- .Name}} ✓", &doc),
            "→ x éweb ✓"
        );
        assert_eq!(render("{{/*/ x */}}{{.Name}}", &doc), "web");
        assert_eq!(render(r#"{{printf "%5s|" .Name}}"#, &doc), "  web|");
        assert_eq!(render(r#"{{print `\` "x\\" '\\'}}"#, &doc), "\\x\\92");
        // Go refuses widths above 10^6 in the output, not with an error.
        assert_eq!(
            render(r#"{{printf "%099999999999s" .Name}}"#, &doc),
            "%!(BADWIDTH)web"
        );
        assert_eq!(render(r#"{{printf "%1000001d" 1}}"#, &doc), "%!(BADWIDTH)1");
        // A width applied to each of a million parts stops at the engine's bound.
        let e = render(
            r#"{{printf "%1000000v" (split (printf "%1000000d" 1) "")}}"#,
            &doc,
        );
        assert!(
            e.contains("error calling printf: text longer than")
                || e.contains("execution stopped after"),
            "{}",
            &e[..e.len().min(200)]
        );
    }
}
