//! The executor: runs the planned stages step by step through the engine, prints Docker's
//! classic builder output, and reuses cached steps.
//!
//! Every step makes an image, as Docker's classic builder does, so a step's cache key can name
//! its parent image: the key is the parent's id, the instruction after expansion (as it appears
//! in the history), the build args a RUN sees, and for COPY/ADD a hash of the content and
//! metadata of every file copied.

use crate::cache;
use crate::context::Context;
use crate::events::{BuildEvent, BuildSink};
use crate::layer::{open_archive, Attrs, LayerWriter};
use crate::parser::{self, heredoc_markers, Instruction};
use crate::plan::{self, Plan};
use crate::union::Union;
use crate::words::{expand, expand_words, name_values, Vars};
use crate::Error;
use hako_engine::hako_image::{ImagePlatform, NewImage, NewLayer, Reference, StagedLayer};
use hako_engine::images::ProgressSink;
use hako_engine::{ContainerConfig, Engine};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// What to build.
pub struct BuildOptions {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The walked context.
    pub context: Context,
    /// `--build-arg NAME=VALUE`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--label K=V`, added as a last LABEL step as Docker's classic builder does.
    pub labels: Vec<(String, String)>,
    /// `-t`.
    pub tags: Vec<Reference>,
    /// `-q`: no step output (RUN output included).
    pub quiet: bool,
    /// `--secret id=ID,src=FILE|env=VAR`: what `RUN --mount=type=secret` mounts.
    pub secrets: crate::mounts::Secrets,
    /// `--ssh ID[=SOCKET]`: the agent sockets `RUN --mount=type=ssh` forwards.
    pub ssh: crate::mounts::SshAgents,
    /// `--cache-from` images (ids), whose history and layers can stand in for steps.
    pub cache_from: Vec<String>,
    /// `--pull`: fetch every base image even when it is in the store.
    pub pull: bool,
    /// `--rm=false`: keep the containers of successful RUN steps.
    pub keep_containers: bool,
    /// `--platform`: what to build for (this host's when `None`). A foreign architecture
    /// needs a registered emulator ([`check_platform`]); RUN steps then run under it.
    pub platform: Option<String>,
    /// Fetches a base image into the store (the registry client), writing progress to the
    /// writer; used for a FROM image missing locally, or for every one with `pull`.
    pub fetch: Option<Fetch>,
    /// `SOURCE_DATE_EPOCH` (see [`crate::epoch`]): a reproducible build, whose image times
    /// and new layers' file times come from it, and whose RUN steps get a fixed hostname.
    pub source_date_epoch: Option<u64>,
}

/// How the builder pulls an image: name, platform (`--platform`; the host's when `None`),
/// progress output.
pub type Fetch = Box<dyn Fn(&str, Option<&str>, &mut ProgressSink<'_>) -> Result<(), String>>;

/// Reads a `--platform` / `FROM --platform` value (`linux` alone is this host's architecture)
/// and accepts it when a container of it can run here: natively, or under a registered
/// `binfmt_misc` emulator.
pub fn check_platform(p: &str) -> Result<ImagePlatform, String> {
    let platform = if p == "linux" {
        ImagePlatform::host()
    } else {
        hako_engine::platform::parse(p).map_err(|e| e.to_string())?
    };
    hako_engine::platform::check(&platform).map_err(|e| format!("platform {p:?}: {e}"))?;
    Ok(platform)
}

/// What a successful build produced.
#[derive(Debug)]
pub struct BuildOutput {
    /// `sha256:` id of the final image.
    pub image_id: String,
    /// `--build-arg`s no ARG consumed.
    pub unused_args: Vec<String>,
}

/// Docker's predefined ARGs: usable without an ARG instruction, and kept out of the history.
const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The hostname of RUN steps in a reproducible build (BuildKit's, for every build).
const REPRODUCIBLE_HOSTNAME: &str = "buildkitsandbox";

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

/// Platform ARGs BuildKit defines in the global scope, for a build for `target`.
fn platform_args(target: &ImagePlatform) -> Vars {
    let arch = go_arch();
    let mut v = Vars::new();
    for (k, val) in [
        ("TARGETPLATFORM", target.to_string()),
        ("TARGETOS", target.os.clone()),
        ("TARGETARCH", target.architecture.clone()),
        ("TARGETVARIANT", target.variant.clone().unwrap_or_default()),
        ("BUILDPLATFORM", format!("linux/{arch}")),
        ("BUILDOS", "linux".into()),
        ("BUILDARCH", arch.into()),
        ("BUILDVARIANT", String::new()),
    ] {
        v.insert(k.into(), val);
    }
    v
}

/// The state of the stage being built.
struct Stage {
    image_id: Option<String>,
    config: Value,
    manifest: Value,
    layers: Vec<PathBuf>,
    /// ARGs declared in this stage: name → value (None: declared without one).
    args: BTreeMap<String, Option<String>>,
}

impl Stage {
    fn cfg(&self) -> &Value {
        &self.config["config"]
    }

    fn cfg_mut(&mut self) -> &mut serde_json::Map<String, Value> {
        if !self.config["config"].is_object() {
            self.config["config"] = json!({});
        }
        self.config["config"]
            .as_object_mut()
            .expect("just made an object")
    }

    fn env(&self) -> Vec<String> {
        self.cfg()["Env"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Variables for expansion: ARG values, overridden by ENV (Docker's precedence).
    fn vars(&self) -> Vars {
        let mut v = Vars::new();
        for (k, val) in &self.args {
            if let Some(val) = val {
                v.insert(k.clone(), val.clone());
            }
        }
        for e in self.env() {
            if let Some((k, val)) = e.split_once('=') {
                v.insert(k.to_string(), val.to_string());
            }
        }
        v
    }

    fn shell(&self) -> Vec<String> {
        match self.cfg()["Shell"].as_array() {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => vec!["/bin/sh".into(), "-c".into()],
        }
    }

    fn workdir(&self) -> String {
        match self.cfg()["WorkingDir"].as_str() {
            Some(w) if !w.is_empty() => w.to_string(),
            _ => "/".into(),
        }
    }

    fn parent_key(&self) -> &str {
        self.image_id.as_deref().unwrap_or("scratch")
    }
}

/// Every stage starts with a PATH, as Docker's builders give it one (appended to the base's
/// `Env`, `FROM scratch` too) when the base has none: the built image's config then carries it.
fn set_default_path(st: &mut Stage) {
    if st
        .env()
        .iter()
        .any(|e| e.split_once('=').is_some_and(|(k, _)| k == "PATH"))
    {
        return;
    }
    let mut env = st.env();
    env.push(format!("PATH={}", hako_runtime::DEFAULT_PATH));
    st.cfg_mut().insert("Env".into(), json!(env));
}

/// Adds the instruction's line and the source file to an error met while copying it, unless it
/// already names its line.
fn in_file<'a>(line: usize, kw: &'a str, file: &'a str) -> impl Fn(Error) -> Error + 'a {
    move |e| match e {
        Error::Line { .. } => e,
        e => Error::at(line, format!("{kw} {file}: {e}")),
    }
}

/// Go's `%q` of a string.
fn go_quote(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\x{:02x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quote_list(v: &[String]) -> String {
    format!(
        "[{}]",
        v.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" ")
    )
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn short(id: &str) -> &str {
    let h = id.strip_prefix("sha256:").unwrap_or(id);
    &h[..12.min(h.len())]
}

/// Adds `keys` to an image-config field that is a set written as `{"key": {}}` (ExposedPorts,
/// Volumes), creating the field when missing.
fn add_set_keys(cfg: &mut serde_json::Map<String, Value>, field: &str, keys: &[String]) {
    let set = cfg.entry(field).or_insert_with(|| json!({}));
    if !set.is_object() {
        *set = json!({});
    }
    let m = set.as_object_mut().expect("just made an object");
    for k in keys {
        m.insert(k.clone(), json!({}));
    }
}

/// RFC 3339 UTC with nanoseconds, as Docker writes `created`.
fn rfc3339_now() -> String {
    hako_base::time::rfc3339(hako_base::time::now_nanos())
}

/// HEALTHCHECK options, in the one duration grammar, in nanoseconds.
fn parse_duration(s: &str) -> Result<i64, hako_base::duration::Error> {
    hako_base::duration::parse(s).map(|d| d.as_nanos() as i64)
}

struct Builder<'a> {
    engine: &'a Engine,
    opts: &'a BuildOptions,
    out: &'a mut BuildSink<'a>,
    escape: char,
    step: usize,
    steps: usize,
    used_args: std::collections::BTreeSet<String>,
    global: Vars,
    started_ms: i64,
    /// In a forked stage builder: the build's pid. Once it is gone, no further step starts.
    parent: Option<nix::unistd::Pid>,
    /// What the build is for (`--platform`, or this host).
    platform: ImagePlatform,
}

/// Runs a build, reporting typed [`BuildEvent`]s to `out`. RUN steps write straight to this
/// process's stdout and stderr, like Docker's streamed step output: the sink should flush
/// each event (as [`crate::events::text_to`] does) so the two interleave in order.
pub fn build<'o>(
    engine: &Engine,
    opts: &BuildOptions,
    out: &'o mut BuildSink<'o>,
) -> Result<BuildOutput, Error> {
    cache::ensure_schema(engine.images().conn())?;
    let df = parser::parse(&opts.dockerfile)?;
    // Global ARGs (before the first FROM) are visible to FROM lines only.
    let platform = match &opts.platform {
        Some(p) => check_platform(p).map_err(Error::Invalid)?,
        None => ImagePlatform::host(),
    };
    let mut global = platform_args(&platform);
    let mut used = std::collections::BTreeSet::new();
    for ins in df.instructions.iter().take_while(|i| i.keyword == "ARG") {
        for (k, v) in parse_arg(ins, &global, df.escape)? {
            let val = opts.build_args.get(&k).cloned().or(v);
            if opts.build_args.contains_key(&k) {
                used.insert(k.clone());
            }
            match val {
                Some(v) => global.insert(k, v),
                // `ARG TARGETARCH` declares a predefined platform ARG: it keeps its value.
                None if platform_args(&platform).contains_key(&k) => None,
                None => global.remove(&k),
            };
        }
    }
    let mut plan = plan::split(&df, &global)?;
    if !opts.labels.is_empty() {
        let last = match &opts.target {
            Some(_) => plan
                .order(opts.target.as_deref())?
                .last()
                .copied()
                .unwrap_or(0),
            None => plan.stages.len() - 1,
        };
        let text = opts
            .labels
            .iter()
            .map(|(k, v)| format!("{}={}", go_quote(k), go_quote(v)))
            .collect::<Vec<_>>()
            .join(" ");
        plan.stages[last].body.push(Instruction {
            line: 0,
            keyword: "LABEL".into(),
            flags: Vec::new(),
            args: text.clone(),
            original: format!("LABEL {text}"),
            heredocs: Vec::new(),
        });
    }
    let order = plan.order(opts.target.as_deref())?;
    let steps = order.iter().map(|i| 1 + plan.stages[*i].body.len()).sum();
    let mut b = Builder {
        engine,
        opts,
        out,
        escape: df.escape,
        step: 0,
        steps,
        used_args: used,
        global,
        started_ms: cache::unix_now_ms(),
        parent: None,
        platform,
    };
    let target = *order.last().expect("the target is always in the order");
    let results = b.stages(&plan, &order)?;
    let last = results[&target].clone();
    for t in &opts.tags {
        // Through the engine, which records the `tag` event as for `hako tag`.
        engine.image_tag(&last, t)?;
    }
    let unused_args = opts
        .build_args
        .keys()
        .filter(|k| !b.used_args.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        // The epoch is the build's own, used whether an ARG declares it or not.
        .filter(|k| !(opts.source_date_epoch.is_some() && k.as_str() == crate::epoch::NAME))
        .cloned()
        .collect();
    Ok(BuildOutput {
        image_id: last,
        unused_args,
    })
}

/// `ARG a=1 b` → [("a", Some("1")), ("b", None)].
fn parse_arg(
    ins: &Instruction,
    vars: &Vars,
    escape: char,
) -> Result<Vec<(String, Option<String>)>, Error> {
    let mut out = Vec::new();
    for w in crate::words::split_raw(&ins.args, escape) {
        match w.split_once('=') {
            Some((k, v)) => {
                let v = expand(v, vars, escape)
                    .map_err(|e| Error::at(ins.line, format!("ARG: {}", e.0)))?;
                out.push((k.to_string(), Some(v)));
            }
            None => out.push((w, None)),
        }
    }
    Ok(out)
}

/// Whether this process runs a single thread, so that a forked child may do anything (the
/// runtime's fork-safety rule: namespaces and clone need a single-threaded process).
fn single_threaded() -> bool {
    hako_base::proc::stat_self().is_some_and(|s| s.threads == 1)
}

/// A stage building in a forked child: its output and its result go to two unlinked files.
struct StageChild {
    index: usize,
    pid: nix::unistd::Pid,
    output: std::fs::File,
    result: std::fs::File,
}

impl StageChild {
    /// Waits for the child, copies its output to `out`, and returns the stage's image and the
    /// build args it used.
    fn finish(mut self, out: &mut BuildSink<'_>) -> Result<(String, Vec<String>), Error> {
        use std::io::Seek;
        let status = loop {
            match nix::sys::wait::waitpid(self.pid, None) {
                Err(nix::errno::Errno::EINTR) => continue,
                other => break other,
            }
        };
        let _ = self.output.rewind();
        let mut log = Vec::new();
        let _ = self.output.read_to_end(&mut log);
        if !log.is_empty() {
            let _ = out(BuildEvent::Output(log));
        }
        let mut text = String::new();
        let _ = self.result.rewind();
        let _ = self.result.read_to_string(&mut text);
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(id) = v["id"].as_str() {
            let used = v["used"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            return Ok((id.to_string(), used));
        }
        match v["error"].as_str() {
            Some(msg) => Err(Error::Stage {
                msg: msg.to_string(),
                code: v["code"].as_i64().unwrap_or(1) as i32,
            }),
            None => Err(Error::Stage {
                msg: format!(
                    "building stage {} in a child process: it ended without a result ({status:?})",
                    self.index
                ),
                code: 1,
            }),
        }
    }
}

impl Builder<'_> {
    /// Builds the stages in `order` (dependencies first). Stages whose dependencies are all
    /// built run at the same time: all but the first of them in forked children whose output
    /// is printed, in stage order, once the first is done, so the output reads as a
    /// sequential build's. Step numbers are fixed per stage in advance for the same reason.
    fn stages(&mut self, plan: &Plan, order: &[usize]) -> Result<BTreeMap<usize, String>, Error> {
        let mut offsets = BTreeMap::new();
        let mut n = 0;
        for i in order {
            offsets.insert(*i, n);
            n += 1 + plan.stages[*i].body.len();
        }
        let mut results: BTreeMap<usize, String> = BTreeMap::new();
        let deps: BTreeMap<usize, Vec<usize>> = order
            .iter()
            .map(|i| {
                (
                    *i,
                    plan.deps(&plan.stages[*i])
                        .into_iter()
                        .map(|(d, _)| d)
                        .collect(),
                )
            })
            .collect();
        // A Dockerfile of thousands of independent stages must not fork thousands of builders
        // at once. The bound is not the CPU count: stages may wait on one another at run time
        // (a server stage and its client), so a small machine still runs a few together.
        let width = std::thread::available_parallelism()
            .map_or(1, |n| n.get() * 2)
            .clamp(4, 16);
        let mut pending: Vec<usize> = order.to_vec();
        while !pending.is_empty() {
            let mut ready: Vec<usize> = pending
                .iter()
                .copied()
                .filter(|i| deps[i].iter().all(|d| results.contains_key(d)))
                .take(width)
                .collect();
            // A dependency outside the order cannot happen (the order is its closure); build
            // the next one alone rather than spin.
            if ready.is_empty() {
                ready.push(pending[0]);
            }
            pending.retain(|i| !ready.contains(i));
            let mut children = Vec::new();
            let mut failed = None;
            if ready.len() > 1 && single_threaded() {
                for &i in &ready[1..] {
                    match self.fork_stage(plan, i, offsets[&i], &results) {
                        Ok(c) => children.push(c),
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
            let forked: Vec<usize> = children.iter().map(|c| c.index).collect();
            if failed.is_none() {
                for &i in ready.iter().filter(|i| !forked.contains(i)) {
                    self.step = offsets[&i];
                    match self.stage(plan, i, &results) {
                        Ok(id) => {
                            results.insert(i, id);
                        }
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            }
            // Children are always waited for, so none outlives a failed build.
            for c in children {
                let i = c.index;
                match c.finish(&mut *self.out) {
                    Ok((id, used)) => {
                        results.insert(i, id);
                        self.used_args.extend(used);
                    }
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(results)
    }

    fn fork_stage(
        &mut self,
        plan: &Plan,
        index: usize,
        offset: usize,
        done: &BTreeMap<usize, String>,
    ) -> Result<StageChild, Error> {
        let tmp = self.engine.root().join("tmp");
        let output = tempfile::tempfile_in(&tmp).map_err(Error::io("create a stage log"))?;
        let result = tempfile::tempfile_in(&tmp).map_err(Error::io("create a stage result"))?;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        let me = nix::unistd::getpid();
        // SAFETY: the process is single-threaded (checked by the caller), so the child is a
        // full copy that may allocate, open the database afresh and create containers; it
        // leaves through `_exit` without running the parent's destructors.
        match unsafe { nix::unistd::fork() } {
            Err(e) => Err(Error::io("fork a stage builder")(e.into())),
            Ok(nix::unistd::ForkResult::Parent { child }) => Ok(StageChild {
                index,
                pid: child,
                output,
                result,
            }),
            Ok(nix::unistd::ForkResult::Child) => {
                let r = self.child_stage(plan, index, offset, done, &output, me);
                let v = match r {
                    Ok((id, used)) => json!({"id": id, "used": used}),
                    Err(e) => json!({"error": e.to_string(), "code": e.exit_code()}),
                };
                let mut result = result;
                let _ = result.write_all(v.to_string().as_bytes());
                let _ = std::io::stdout().flush();
                // SAFETY: ends the forked child without unwinding into the parent's frames or
                // closing the parent's database connection.
                unsafe { libc::_exit(0) }
            }
        }
    }

    /// In a forked child: builds one stage through a fresh engine (a database connection must
    /// not cross a fork), writing everything to `output`.
    fn child_stage(
        &self,
        plan: &Plan,
        index: usize,
        offset: usize,
        done: &BTreeMap<usize, String>,
        output: &std::fs::File,
        parent: nix::unistd::Pid,
    ) -> Result<(String, Vec<String>), Error> {
        // If the build dies, its stages die with it, as its own steps do: the step in flight
        // (whose container has a parent-death SIGKILL too) and everything after it. A SIGTERM
        // here was relayed to the step's command, which as PID 1 ignores it unless it handles
        // it, so the stage ran on for the stop timeout and then committed the step unobserved;
        // what a killed stage leaves (its step's container, `tmp/<pid>-…`) the next command's
        // reconcile and store open remove, as for the build's own process.
        let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
        if nix::unistd::getppid() != parent {
            // It died before the signal was armed.
            return Err(Error::Invalid(
                "the build was interrupted: its process is gone".into(),
            ));
        }
        nix::unistd::dup2_stdout(output).map_err(|e| Error::io("redirect stdout")(e.into()))?;
        nix::unistd::dup2_stderr(output).map_err(|e| Error::io("redirect stderr")(e.into()))?;
        let engine = Engine::open(self.engine.root())?;
        let mut stdout = std::io::stdout();
        let mut sink = crate::events::text_to(&mut stdout);
        let mut b = Builder {
            engine: &engine,
            opts: self.opts,
            out: &mut sink,
            escape: self.escape,
            step: offset,
            steps: self.steps,
            used_args: std::collections::BTreeSet::new(),
            global: self.global.clone(),
            started_ms: self.started_ms,
            parent: Some(parent),
            platform: self.platform.clone(),
        };
        let id = b.stage(plan, index, done)?;
        Ok((id, b.used_args.into_iter().collect()))
    }

    fn say(&mut self, e: BuildEvent) -> Result<(), Error> {
        if !self.opts.quiet {
            (self.out)(e).map_err(Error::io("write the build output"))?;
        }
        Ok(())
    }

    fn used(&self) -> cache::Use {
        cache::Use {
            build_ms: self.started_ms,
            step: self.step,
        }
    }

    fn load(&self, id: &str) -> Result<(Value, Value, Vec<PathBuf>), Error> {
        let store = self.engine.images();
        let image = store.resolve(id)?;
        let config: Value = serde_json::from_slice(&store.read_blob(&image.id)?)
            .map_err(|e| Error::Invalid(format!("image config of {id}: {e}")))?;
        let (_, m) = store.manifest_of(&image.id)?;
        let manifest: Value = serde_json::from_slice(&m)
            .map_err(|e| Error::Invalid(format!("image manifest of {id}: {e}")))?;
        Ok((config, manifest, image.layers))
    }

    fn stage(
        &mut self,
        plan: &Plan,
        index: usize,
        done: &BTreeMap<usize, String>,
    ) -> Result<String, Error> {
        let s = &plan.stages[index];
        self.step += 1;
        let (n, m) = (self.step, self.steps);
        self.say(BuildEvent::Step {
            n,
            of: m,
            instruction: s.from.original.clone(),
        })?;
        let mut st = if let Some(dep) = plan.from_stage(s) {
            let id = done
                .get(&dep)
                .ok_or_else(|| Error::at(s.from.line, "FROM: the stage was not built"))?;
            let (config, manifest, layers) = self.load(id)?;
            Stage {
                image_id: Some(id.clone()),
                config,
                manifest,
                layers,
                args: BTreeMap::new(),
            }
        } else if s.base.eq_ignore_ascii_case("scratch") {
            Stage {
                image_id: None,
                config: {
                    let mut c = json!({
                        "architecture": self.platform.architecture.clone(),
                        "os": "linux",
                        "config": {},
                        "rootfs": {"type": "layers", "diff_ids": []},
                        "history": []
                    });
                    if let Some(v) = &self.platform.variant {
                        c["variant"] = v.as_str().into();
                    }
                    c
                },
                manifest: json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "", "size": 0},
                    "layers": []
                }),
                layers: Vec::new(),
                args: BTreeMap::new(),
            }
        } else {
            // The stage's platform: its own `FROM --platform`, else the build's.
            let want = match s.from.flag("platform") {
                Some(p) => {
                    let p = expand(p, &self.global, self.escape)
                        .map_err(|e| Error::at(s.from.line, format!("FROM --platform: {}", e.0)))?;
                    Some(
                        check_platform(&p)
                            .map_err(|e| Error::at(s.from.line, format!("FROM: {e}")))?,
                    )
                }
                None => self.opts.platform.is_some().then(|| self.platform.clone()),
            };
            let local = self.engine.images().resolve(&s.base);
            let missing = matches!(local, Err(hako_engine::hako_image::Error::NotFound(_)));
            // A local base of another platform than asked for is pulled again, as `run` does.
            let other = match (&local, &want) {
                (Ok(i), Some(w)) => !ImagePlatform::of(&i.config).satisfies(w),
                _ => false,
            };
            if self.opts.pull || missing || other {
                if let Some(fetch) = &self.opts.fetch {
                    let quiet = self.opts.quiet;
                    let out = &mut *self.out;
                    let p = want.as_ref().map(|w| w.to_string());
                    fetch(&s.base, p.as_deref(), &mut |p| match quiet {
                        true => Ok(()),
                        false => out(BuildEvent::Pull(p)),
                    })
                    .map_err(|e| Error::at(s.from.line, format!("FROM {}: {e}", s.base)))?;
                }
            }
            let image = match self.engine.images().resolve(&s.base) {
                Ok(i) => i,
                Err(hako_engine::hako_image::Error::NotFound(_)) => {
                    return Err(Error::at(
                        s.from.line,
                        format!(
                            "FROM {}: no such image in the local store (hako pull it first)",
                            s.base
                        ),
                    ))
                }
                Err(e) => return Err(e.into()),
            };
            // The base must be what was asked for, and runnable here (its RUN steps run
            // natively or emulated): refused now rather than at the first RUN.
            let have = ImagePlatform::of(&image.config);
            if let Some(w) = want.as_ref().filter(|w| !have.satisfies(w)) {
                return Err(Error::at(
                    s.from.line,
                    format!("FROM {}: the image is for {have}, not {w}", s.base),
                ));
            }
            hako_engine::platform::check(&have)
                .map_err(|e| Error::at(s.from.line, format!("FROM {}: {e}", s.base)))?;
            let (config, manifest, layers) = self.load(&image.id)?;
            Stage {
                image_id: Some(image.id),
                config,
                manifest,
                layers,
                args: BTreeMap::new(),
            }
        };
        if let Some(id) = &st.image_id {
            self.say(BuildEvent::StepImage(id.to_string()))?;
        }
        set_default_path(&mut st);
        // ONBUILD triggers of the base run first, then are cleared from the new image.
        let triggers: Vec<String> = st.cfg()["OnBuild"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if !triggers.is_empty() {
            st.cfg_mut().insert("OnBuild".into(), Value::Null);
            self.say(BuildEvent::Triggers(triggers.len()))?;
            for t in &triggers {
                let parsed = parser::parse(t)
                    .map_err(|e| Error::at(s.from.line, format!("ONBUILD trigger {t:?}: {e}")))?;
                for ins in &parsed.instructions {
                    let ins = Instruction {
                        line: s.from.line,
                        ..ins.clone()
                    };
                    self.instruction(plan, &mut st, &ins, done)?;
                }
            }
        }
        for ins in &s.body {
            if self.parent.is_some_and(|p| nix::unistd::getppid() != p) {
                return Err(Error::Invalid(
                    "the build was interrupted: its process is gone".into(),
                ));
            }
            self.step += 1;
            let (n, m) = (self.step, self.steps);
            self.say(BuildEvent::Step {
                n,
                of: m,
                instruction: ins.original.clone(),
            })?;
            self.instruction(plan, &mut st, ins, done)?;
        }
        match st.image_id {
            Some(id) => Ok(id),
            // `FROM scratch` and nothing else: an image with no layers, as Docker refuses.
            None => Err(Error::at(
                s.from.line,
                "No image was generated. Is your Dockerfile empty?",
            )),
        }
    }

    /// Commits the stage's config (plus a layer, if any) as a new image.
    fn commit(
        &mut self,
        st: &mut Stage,
        created_by: &str,
        layer: Option<StagedLayer>,
    ) -> Result<String, Error> {
        self.commit_layer(st, created_by, layer, None)
    }

    /// [`Self::commit`], or with `reused` = (diff id, manifest descriptor) of a layer already
    /// in the store.
    fn commit_layer(
        &mut self,
        st: &mut Stage,
        created_by: &str,
        layer: Option<StagedLayer>,
        reused: Option<(String, Value)>,
    ) -> Result<String, Error> {
        let created = match self.opts.source_date_epoch {
            Some(e) => crate::epoch::created(e),
            None => rfc3339_now(),
        };
        let mut config = st.config.clone();
        config["created"] = created.clone().into();
        let mut hist = json!({"created": created, "created_by": created_by});
        let mut manifest = st.manifest.clone();
        let existing = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| a.len())
            .unwrap_or(0);
        let mut layers: Vec<NewLayer> = (0..existing).map(|_| NewLayer::Existing).collect();
        if let Some((diff_id, descriptor)) = reused {
            // A layer another image in the store has (--cache-from): same chain, no copy.
            config["rootfs"]["diff_ids"]
                .as_array_mut()
                .ok_or_else(|| Error::Invalid("image config has no rootfs.diff_ids".into()))?
                .push(diff_id.into());
            if !manifest["layers"].is_array() {
                manifest["layers"] = json!([]);
            }
            manifest["layers"]
                .as_array_mut()
                .expect("just made an array")
                .push(descriptor);
            layers.push(NewLayer::Existing);
        } else {
            match layer {
                Some(l) => {
                    config["rootfs"]["diff_ids"]
                        .as_array_mut()
                        .ok_or_else(|| {
                            Error::Invalid("image config has no rootfs.diff_ids".into())
                        })?
                        .push(l.diff_id.clone().into());
                    let media = match manifest["mediaType"].as_str() {
                        Some(m) if m.contains("docker") => {
                            "application/vnd.docker.image.rootfs.diff.tar"
                        }
                        _ => "application/vnd.oci.image.layer.v1.tar",
                    };
                    if !manifest["layers"].is_array() {
                        manifest["layers"] = json!([]);
                    }
                    manifest["layers"]
                    .as_array_mut()
                    .expect("just made an array")
                    .push(
                        json!({"mediaType": media, "digest": l.blob_digest, "size": l.blob_size}),
                    );
                    layers.push(NewLayer::Staged(l));
                }
                None => hist["empty_layer"] = true.into(),
            }
        }
        match config["history"].as_array_mut() {
            Some(h) => h.push(hist),
            None => config["history"] = json!([hist]),
        }
        let bytes = serde_json::to_vec(&config).map_err(|e| Error::Invalid(e.to_string()))?;
        manifest["config"]["digest"] = format!("sha256:{}", sha256_hex(&bytes)).into();
        manifest["config"]["size"] = bytes.len().into();
        let image = self.engine.images().commit_image(NewImage {
            manifest: serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(e.to_string()))?,
            config: bytes,
            layers,
            tag: None,
            repo_digest: None,
        })?;
        if let Some(parent) = &st.image_id {
            cache::record_parent(self.engine.images().conn(), &image.id, parent)?;
        }
        st.config = config;
        st.manifest = manifest;
        st.layers = image.layers;
        st.image_id = Some(image.id.clone());
        Ok(image.id)
    }

    /// A step's cache key. An epoch is part of it: the step's image (its `created`, its
    /// layer's times) depends on it, so a step built without one, or with another, is not
    /// reused. Keys without one are as they were before epochs existed.
    fn cache_key(&self, st: &Stage, keyword: &str, canonical: &str) -> String {
        let mut text = format!("hako-build-v1\n{}\n{keyword}\n{canonical}", st.parent_key());
        if let Some(e) = self.opts.source_date_epoch {
            text.push_str(&format!("\n{}={e}", crate::epoch::NAME));
        }
        sha256_hex(text.as_bytes())
    }

    /// Reuses a cached step if there is one; prints Docker's lines either way.
    fn cached(&mut self, st: &mut Stage, key: &str) -> Result<bool, Error> {
        if self.opts.no_cache {
            return Ok(false);
        }
        let Some(id) = cache::lookup(self.engine.images().conn(), key, self.used())? else {
            return Ok(false);
        };
        let (config, manifest, layers) = self.load(&id)?;
        // Also for entries cached before parents were recorded.
        if let Some(parent) = &st.image_id {
            cache::record_parent(self.engine.images().conn(), &id, parent)?;
        }
        st.config = config;
        st.manifest = manifest;
        st.layers = layers;
        st.image_id = Some(id.clone());
        self.say(BuildEvent::UsingCache)?;
        self.say(BuildEvent::StepImage(id.to_string()))?;
        Ok(true)
    }

    /// `--cache-from`, as Docker's classic builder does it: an image whose history and layers
    /// begin with the stage's so far, and whose next history entry is this step's (same
    /// CREATED BY, with a layer), gives that layer; the step is committed with it instead of
    /// running. Returns whether it did.
    fn reuse_cache_source(
        &mut self,
        st: &mut Stage,
        key: &str,
        created_by: &str,
    ) -> Result<bool, Error> {
        if self.opts.cache_from.is_empty() || self.opts.no_cache {
            return Ok(false);
        }
        let hist = |c: &Value| -> Vec<(String, bool)> {
            c["history"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|h| {
                            (
                                h["created_by"].as_str().unwrap_or("").to_string(),
                                h["empty_layer"].as_bool().unwrap_or(false),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let diffs = |c: &Value| -> Vec<String> {
            c["rootfs"]["diff_ids"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default()
        };
        let (ours_h, ours_d) = (hist(&st.config), diffs(&st.config));
        for source in &self.opts.cache_from {
            let Ok((config, manifest, _)) = self.load(source) else {
                continue;
            };
            let (h, d) = (hist(&config), diffs(&config));
            let n = ours_h.len();
            let k = ours_d.len();
            let next = h.get(n);
            let matches = h.len() > n
                && h[..n] == ours_h[..]
                && d.len() > k
                && d[..k] == ours_d[..]
                && next.is_some_and(|(c, empty)| c == created_by && !empty);
            if !matches {
                continue;
            }
            let Some(descriptor) = manifest["layers"].get(k).cloned() else {
                continue;
            };
            let id = self.commit_layer(st, created_by, None, Some((d[k].clone(), descriptor)))?;
            cache::store(self.engine.images().conn(), key, &id, self.used())?;
            self.say(BuildEvent::UsingCache)?;
            self.say(BuildEvent::StepImage(id.to_string()))?;
            return Ok(true);
        }
        Ok(false)
    }

    /// A step that only changes the config: `mutate` edits it, then an empty-layer image.
    fn meta(
        &mut self,
        st: &mut Stage,
        keyword: &str,
        comment: &str,
        mutate: impl FnOnce(&mut Stage),
    ) -> Result<(), Error> {
        let mut shell = st.shell();
        shell.push("#(nop) ".into());
        shell.push(comment.to_string());
        let created_by = shell.join(" ");
        let key = self.cache_key(st, keyword, &created_by);
        if self.cached(st, &key)? {
            return Ok(());
        }
        mutate(st);
        let id = self.commit(st, &created_by, None)?;
        cache::store(self.engine.images().conn(), &key, &id, self.used())?;
        self.say(BuildEvent::StepImage(id.to_string()))?;
        Ok(())
    }

    fn instruction(
        &mut self,
        plan: &Plan,
        st: &mut Stage,
        ins: &Instruction,
        done: &BTreeMap<usize, String>,
    ) -> Result<(), Error> {
        let line = ins.line;
        let kw = ins.keyword.as_str();
        let esc = self.escape;
        let werr = |e: crate::words::WordError| Error::at(line, format!("{kw}: {}", e.0));
        match kw {
            "RUN" => self.run(plan, st, ins, done),
            "COPY" | "ADD" => self.copy(plan, st, ins, done),
            "WORKDIR" => {
                ins.check_flags(&[])?;
                let w = expand(&ins.args, &st.vars(), esc).map_err(werr)?;
                let abs = if w.starts_with('/') {
                    w.clone()
                } else {
                    format!("{}/{}", st.workdir().trim_end_matches('/'), w)
                };
                let comps = Union::new(&st.layers).resolve(&abs, true);
                let abs_clean = format!("/{}", crate::context::clean_rel(&abs).unwrap_or_default());
                let created_by = format!("{} #(nop)  WORKDIR {abs_clean}", st.shell().join(" "));
                let exists = Union::new(&st.layers).metadata(&comps).is_some();
                if exists || comps.is_empty() {
                    return self.meta(st, kw, &format!("WORKDIR {abs_clean}"), |st| {
                        st.cfg_mut()
                            .insert("WorkingDir".into(), abs_clean.clone().into());
                    });
                }
                // The directory is missing: a small layer creates it, as Docker's mkdir does.
                let key = self.cache_key(st, kw, &created_by);
                if self.cached(st, &key)? {
                    return Ok(());
                }
                let image = Union::new(&st.layers);
                let epoch = self.opts.source_date_epoch;
                let staged = self.engine.stage_streamed(|out| {
                    let mut w = LayerWriter::new(out, epoch);
                    w.parents(&image, &comps, (0, 0))?;
                    w.dir(&image, &comps, (0, 0), 0o755)?;
                    w.finish()
                })?;
                st.cfg_mut().insert("WorkingDir".into(), abs_clean.into());
                let id = self.commit(st, &created_by, Some(staged))?;
                cache::store(self.engine.images().conn(), &key, &id, self.used())?;
                self.say(BuildEvent::StepImage(id.to_string()))
            }
            "ENV" => {
                let pairs = name_values(&ins.args, &st.vars(), esc, true).map_err(werr)?;
                let comment = format!(
                    "ENV {}",
                    pairs
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                self.meta(st, kw, &comment, |st| {
                    let mut env = st.env();
                    for (k, v) in &pairs {
                        env.retain(|e| e.split('=').next() != Some(k.as_str()));
                        env.push(format!("{k}={v}"));
                    }
                    st.cfg_mut().insert("Env".into(), json!(env));
                })
            }
            "LABEL" => {
                let pairs = name_values(&ins.args, &st.vars(), esc, true).map_err(werr)?;
                let comment = format!(
                    "LABEL {}",
                    pairs
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                self.meta(st, kw, &comment, |st| {
                    let cfg = st.cfg_mut();
                    if !cfg.get("Labels").is_some_and(|l| l.is_object()) {
                        cfg.insert("Labels".into(), json!({}));
                    }
                    let labels = cfg
                        .get_mut("Labels")
                        .and_then(|l| l.as_object_mut())
                        .expect("just made");
                    for (k, v) in pairs {
                        labels.insert(k, v.into());
                    }
                })
            }
            "MAINTAINER" => {
                let who = ins.args.clone();
                self.meta(st, kw, &format!("MAINTAINER {who}"), |st| {
                    st.config["author"] = who.clone().into();
                })
            }
            "ARG" => {
                let mut comment = Vec::new();
                let vars = st.vars();
                for (k, default) in parse_arg(ins, &vars, esc)? {
                    let v = if let Some(v) = self.opts.build_args.get(&k) {
                        self.used_args.insert(k.clone());
                        Some(v.clone())
                    } else if default.is_some() {
                        default
                    } else {
                        // `ARG NAME` in a stage re-imports a global ARG's value.
                        self.global.get(&k).cloned()
                    };
                    comment.push(match &v {
                        Some(v) => format!("{k}={v}"),
                        None => k.clone(),
                    });
                    st.args.insert(k, v);
                }
                self.meta(st, kw, &format!("ARG {}", comment.join(" ")), |_| {})
            }
            "CMD" | "ENTRYPOINT" => {
                let v = match ins.json_args() {
                    Some(v) => v,
                    None => {
                        let mut s = st.shell();
                        s.push(ins.args.clone());
                        s
                    }
                };
                let key = if kw == "CMD" { "Cmd" } else { "Entrypoint" };
                let comment = format!("{kw} {}", go_quote_list(&v));
                self.meta(st, kw, &comment, |st| {
                    let cfg = st.cfg_mut();
                    cfg.insert(key.into(), json!(v));
                    // A new ENTRYPOINT resets the CMD inherited from the base, as in Docker.
                    if kw == "ENTRYPOINT" {
                        cfg.insert("Cmd".into(), Value::Null);
                    }
                })
            }
            "SHELL" => {
                let v = ins.json_args().filter(|v| !v.is_empty()).ok_or_else(|| {
                    Error::at(line, "SHELL requires the arguments to be in JSON form")
                })?;
                let comment = format!("SHELL [{}]", v.join(" "));
                self.meta(st, kw, &comment, |st| {
                    st.cfg_mut().insert("Shell".into(), json!(v));
                })
            }
            "USER" => {
                let u = expand(&ins.args, &st.vars(), esc).map_err(werr)?;
                self.meta(st, kw, &format!("USER {u}"), |st| {
                    st.cfg_mut().insert("User".into(), u.clone().into());
                })
            }
            "STOPSIGNAL" => {
                let s = expand(&ins.args, &st.vars(), esc).map_err(werr)?;
                self.meta(st, kw, &format!("STOPSIGNAL {s}"), |st| {
                    st.cfg_mut().insert("StopSignal".into(), s.clone().into());
                })
            }
            "EXPOSE" => {
                let mut ports = Vec::new();
                for p in expand_words(&ins.args, &st.vars(), esc).map_err(werr)? {
                    let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let proto = proto.to_ascii_lowercase();
                    let ok_num = num
                        .split('-')
                        .all(|n| !n.is_empty() && n.parse::<u16>().is_ok());
                    if !ok_num || !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                        return Err(Error::at(line, format!("EXPOSE: invalid port {p:?}")));
                    }
                    ports.push(format!("{num}/{proto}"));
                }
                self.meta(st, kw, &format!("EXPOSE {}", ports.join(" ")), |st| {
                    add_set_keys(st.cfg_mut(), "ExposedPorts", &ports)
                })
            }
            "VOLUME" => {
                let vols = match ins.json_args() {
                    Some(v) => v,
                    None => expand_words(&ins.args, &st.vars(), esc).map_err(werr)?,
                };
                if vols.iter().any(|v| v.is_empty()) {
                    return Err(Error::at(
                        line,
                        "VOLUME specified can not be an empty string",
                    ));
                }
                self.meta(st, kw, &format!("VOLUME [{}]", vols.join(" ")), |st| {
                    add_set_keys(st.cfg_mut(), "Volumes", &vols)
                })
            }
            "ONBUILD" => {
                let (k, rest) = ins
                    .args
                    .trim()
                    .split_once(char::is_whitespace)
                    .unwrap_or((ins.args.trim(), ""));
                let k = k.to_ascii_uppercase();
                if matches!(k.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    return Err(Error::at(
                        line,
                        format!("{k} isn't allowed as an ONBUILD trigger"),
                    ));
                }
                if !parser::KNOWN.contains(&k.as_str()) {
                    return Err(Error::at(
                        line,
                        format!("ONBUILD: unknown instruction: {k}"),
                    ));
                }
                let trigger = format!("{k} {}", rest.trim());
                let comment = format!("ONBUILD {trigger}");
                self.meta(st, kw, &comment, |st| {
                    let cfg = st.cfg_mut();
                    let mut list: Vec<Value> = cfg
                        .get("OnBuild")
                        .and_then(|v| v.as_array())
                        .cloned()
                        .unwrap_or_default();
                    list.push(trigger.clone().into());
                    cfg.insert("OnBuild".into(), Value::Array(list));
                })
            }
            "HEALTHCHECK" => {
                let hc = self.healthcheck(ins)?;
                let test: Vec<String> = hc["Test"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let ns = |k: &str| hc[k].as_i64().unwrap_or(0);
                let secs = |n: i64| {
                    if n == 0 {
                        "0s".to_string()
                    } else {
                        format!("{}s", n as f64 / 1e9)
                    }
                };
                let comment = format!(
                    "HEALTHCHECK &{{{} {:?} {:?} {:?} {:?} '\\x{:02x}'}}",
                    go_quote_list(&test),
                    secs(ns("Interval")),
                    secs(ns("Timeout")),
                    secs(ns("StartPeriod")),
                    secs(ns("StartInterval")),
                    ns("Retries")
                );
                self.meta(st, kw, &comment, |st| {
                    st.cfg_mut().insert("Healthcheck".into(), hc.clone());
                })
            }
            other => Err(Error::at(line, format!("unknown instruction: {other}"))),
        }
    }

    fn healthcheck(&self, ins: &Instruction) -> Result<Value, Error> {
        let line = ins.line;
        let args = ins.args.trim();
        if args.eq_ignore_ascii_case("none") {
            if !ins.flags.is_empty() {
                return Err(Error::at(line, "HEALTHCHECK NONE takes no options"));
            }
            return Ok(json!({"Test": ["NONE"]}));
        }
        ins.check_flags(&[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ])?;
        let (k, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        if !k.eq_ignore_ascii_case("cmd") || rest.trim().is_empty() {
            return Err(Error::at(
                line,
                "HEALTHCHECK: expected NONE or CMD <command>",
            ));
        }
        let test: Vec<String> = match parser::parse_json_array(rest) {
            Some(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
            None => vec!["CMD-SHELL".into(), rest.trim().into()],
        };
        let mut hc = json!({"Test": test});
        for (flag, key) in [
            ("interval", "Interval"),
            ("timeout", "Timeout"),
            ("start-period", "StartPeriod"),
            ("start-interval", "StartInterval"),
        ] {
            if let Some(v) = ins.flag(flag) {
                let d = parse_duration(v)
                    .map_err(|e| Error::at(line, format!("HEALTHCHECK: --{flag}: {e}")))?;
                hc[key] = d.into();
            }
        }
        if let Some(r) = ins.flag("retries") {
            let n: i64 = r
                .parse()
                .map_err(|_| Error::at(line, format!("HEALTHCHECK: invalid --retries {r:?}")))?;
            hc["Retries"] = n.into();
        }
        Ok(hc)
    }

    fn run(
        &mut self,
        plan: &Plan,
        st: &mut Stage,
        ins: &Instruction,
        done: &BTreeMap<usize, String>,
    ) -> Result<(), Error> {
        let line = ins.line;
        ins.check_flags(&["network", "mount"])?;
        let mut mounts = ins
            .flags
            .iter()
            .filter(|(n, _)| n == "mount")
            .map(|(_, v)| {
                let v = expand(v, &st.vars(), self.escape).map_err(|e| e.0)?;
                crate::mounts::parse(&v, &st.workdir())
            })
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| Error::at(line, format!("RUN --mount: {e}")))?;
        // BuildKit's default ssh targets count the step's ssh mounts.
        for (n, target) in mounts
            .iter_mut()
            .filter_map(|m| match m {
                crate::mounts::Mount::Ssh { target, .. } => Some(target),
                _ => None,
            })
            .enumerate()
        {
            target.get_or_insert_with(|| format!("/run/buildkit/ssh_agent.{n}"));
        }
        let network = match ins.flag("network") {
            None | Some("default") => hako_engine::Network::Default,
            Some("none") => hako_engine::Network::None,
            Some("host") => hako_engine::Network::Host,
            Some(other) => {
                return Err(Error::at(
                    line,
                    format!("RUN: unsupported --network={other}"),
                ))
            }
        };
        if st.image_id.is_none() {
            return Err(Error::at(
                line,
                "RUN: the stage has no filesystem yet (FROM scratch): nothing to run",
            ));
        }
        let argv: Vec<String> = match ins.json_args() {
            Some(v) if !v.is_empty() => v,
            Some(_) => return Err(Error::at(line, "RUN: empty command")),
            None => {
                let mut sh = st.shell();
                let markers = heredoc_markers(&ins.args);
                let only_heredoc = !ins.heredocs.is_empty()
                    && ins.args.trim().starts_with("<<")
                    && markers.len() == 1
                    && ins.args.split_whitespace().count() == 1;
                if only_heredoc {
                    // `RUN <<EOF` alone: the heredoc is the script, as BuildKit runs it.
                    sh.push(ins.heredocs[0].content.clone());
                } else if ins.heredocs.is_empty() {
                    sh.push(ins.args.clone());
                } else {
                    // The shell reads the here-documents itself, so quoting and expansion
                    // follow its rules.
                    let mut script = ins.args.clone();
                    script.push('\n');
                    for h in &ins.heredocs {
                        script.push_str(&h.content);
                        script.push_str(&h.name);
                        script.push('\n');
                    }
                    sh.push(script);
                }
                sh
            }
        };
        // Build args in effect reach RUN as environment, unless an ENV of the same name wins;
        // like Docker, they are part of the history line (`|N a=b cmd`) and so of the cache key.
        let env_names: Vec<String> = st
            .env()
            .iter()
            .map(|e| e.split('=').next().unwrap_or("").to_string())
            .collect();
        let mut arg_env: Vec<String> = Vec::new();
        let mut shown: Vec<String> = Vec::new();
        for (k, v) in &st.args {
            if let Some(v) = v {
                if !env_names.contains(k) {
                    arg_env.push(format!("{k}={v}"));
                    if !PROXY_ARGS.contains(&k.as_str()) {
                        shown.push(format!("{k}={v}"));
                    }
                }
            }
        }
        for p in PROXY_ARGS {
            if let Some(v) = self.opts.build_args.get(p) {
                if !st.args.contains_key(p) && !env_names.iter().any(|n| n == p) {
                    arg_env.push(format!("{p}={v}"));
                }
            }
        }
        let cmdline = argv.join(" ");
        let created_by = if shown.is_empty() {
            cmdline.clone()
        } else {
            format!("|{} {} {cmdline}", shown.len(), shown.join(" "))
        };
        let mut mount_key = String::new();
        let mut binds = Vec::new();
        for m in &mounts {
            mount_key.push_str(&format!("{m:?}\n"));
            match m {
                // What a bind mount shows is an input of the step, like COPY's sources: the
                // context's files, or the filesystem (layer digests) of the stage or image.
                crate::mounts::Mount::Bind { source, from, .. } => {
                    let b = self.bind_source(plan, done, line, source, from.as_deref())?;
                    match &b {
                        BindSource::Context(rel) => {
                            mount_key.push_str(&self.context_digest(line, rel)?)
                        }
                        BindSource::Image {
                            diff_ids, comps, ..
                        } => mount_key.push_str(&format!(
                            "{} /{}",
                            diff_ids.join(","),
                            comps.join("/")
                        )),
                    }
                    mount_key.push('\n');
                    binds.push(b);
                }
                crate::mounts::Mount::Secret { id, .. } => {
                    let given = self.opts.secrets.contains_key(id);
                    mount_key.push_str(&format!("secret given: {given}\n"));
                }
                crate::mounts::Mount::Ssh { id, .. } => {
                    let given = self.opts.ssh.contains_key(id);
                    mount_key.push_str(&format!("ssh agent given: {given}\n"));
                }
                _ => {}
            }
        }
        let key = self.cache_key(
            st,
            "RUN",
            &format!("{created_by}\n{network:?}\n{mount_key}"),
        );
        if self.cached(st, &key)? || self.reuse_cache_source(st, &key, &created_by)? {
            return Ok(());
        }
        let sm = self.step_mounts(st, line, &mounts, &binds)?;
        // Scratch directories of the step's overlays live until the step's container is gone;
        // secrets and agent relays only until its process is.
        let _scratch = sm.scratch;
        let (secrets, relays) = (sm.secrets, sm.relays);
        let mut env = arg_env;
        let secret_env = !sm.env.is_empty();
        env.extend(sm.env);
        if let Some(sock) = sm.ssh_auth_sock {
            if !env_names.iter().any(|n| n == "SSH_AUTH_SOCK") {
                env.push(format!("SSH_AUTH_SOCK={sock}"));
            }
        }
        let opts = ContainerConfig {
            image: st.image_id.clone().unwrap_or_default(),
            cmd: argv,
            entrypoint: Some(Vec::new()),
            env,
            network,
            mounts: ContainerConfig::mounts_from_flags(&sm.volumes, &sm.tmpfs)
                .map_err(|e| Error::at(line, format!("RUN: {e}")))?,
            overlays: sm.overlays,
            volatile_rootfs: true,
            // The container's id is random, and a step may write its hostname into the
            // layer; a reproducible build names every step's host as BuildKit does.
            hostname: self
                .opts
                .source_date_epoch
                .map(|_| REPRODUCIBLE_HOSTNAME.to_string()),
            ..Default::default()
        };
        let stubs = sm.stubs;
        let image_etc = Union::new(&st.layers)
            .metadata(&["etc".to_string()])
            .filter(|(_, m)| m.is_dir())
            .map(|(_, m)| (m.mode() & 0o7777, m.uid(), m.gid()));
        let quiet = self.opts.quiet;
        let mut said: Option<String> = None;
        let out = &mut *self.out;
        let silence = if quiet { Some(Silence::start()?) } else { None };
        let result = self.engine.run_build_step(&opts, &mut |id: &str| {
            if !quiet {
                let _ = out(BuildEvent::RunningIn(id.to_string()));
            }
            said = Some(id.to_string());
        });
        drop(silence);
        drop(relays);
        drop(secrets);
        let (cid, code) = match result {
            Ok(r) => match r.interrupted {
                // The step was killed for the signal: it did not fail, the build was stopped.
                Some(signal) => {
                    self.engine.remove(&r.id, true, true)?;
                    return Err(Error::Interrupted { signal });
                }
                None => (r.id, r.code),
            },
            Err(e) => return Err(Error::at(line, format!("RUN: {e}"))),
        };
        let committed = if code == 0 {
            self.engine
                .build_layer(&cid, &stubs, image_etc, self.opts.source_date_epoch)
                .map_err(Error::from)
                .and_then(|l| self.commit(st, &created_by, Some(l)))
        } else {
            Err(Error::RunFailed { cmd: cmdline, code })
        };
        // A failed step's container goes whatever `--rm` says: a failed build leaves none
        // behind. A successful one's stays with `--rm=false`, as in Docker, unless its config
        // holds a secret (`--mount=type=secret,env=`).
        if committed.is_ok() && self.opts.keep_containers && !secret_env {
            let id = committed?;
            self.engine.keep_build_step(&cid)?;
            cache::store(self.engine.images().conn(), &key, &id, self.used())?;
            return self.say(BuildEvent::StepImage(id.to_string()));
        }
        let removed = self.engine.remove(&cid, true, true);
        let id = committed?;
        removed?;
        self.say(BuildEvent::RemovedContainer(cid.clone()))?;
        cache::store(self.engine.images().conn(), &key, &id, self.used())?;
        self.say(BuildEvent::StepImage(id.to_string()))
    }

    /// Downloads `url` for ADD into a temporary file, checking `sha256` (hex) when given.
    fn download(
        &self,
        line: usize,
        url: &str,
        sha256: Option<&str>,
    ) -> Result<tempfile::NamedTempFile, Error> {
        // Connect and response timeouts only: a global or resolve timeout makes ureq resolve
        // on a helper thread, and the build forks containers (and stages) afterwards.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(std::time::Duration::from_secs(30)))
            .timeout_recv_response(Some(std::time::Duration::from_secs(120)))
            .user_agent(concat!("hako/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let fail = |e: String| Error::at(line, format!("ADD {url}: {e}"));
        let resp = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
        let tmp = self.engine.root().join("tmp");
        let mut file = tempfile::Builder::new()
            .prefix(&format!("{}-add-", std::process::id()))
            .tempfile_in(&tmp)
            .map_err(Error::io("create a file for a download"))?;
        let mut body = resp.into_body();
        let mut reader = body.as_reader();
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf).map_err(|e| fail(e.to_string()))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            file.write_all(&buf[..n])
                .map_err(Error::io("write a download"))?;
        }
        let got = hex::encode(h.finalize());
        if let Some(want) = sha256 {
            if got != want {
                return Err(fail(format!(
                    "checksum mismatch: expected sha256:{want}, got sha256:{got}"
                )));
            }
        }
        file.flush().map_err(Error::io("write a download"))?;
        Ok(file)
    }

    /// A digest of the context files at and under `rel` (path, mode, size, content), through
    /// the per-file hash cache.
    fn context_digest(&self, line: usize, rel: &str) -> Result<String, Error> {
        let ctx = &self.opts.context;
        let root = ctx.root.clone().ok_or_else(|| {
            Error::at(
                line,
                "RUN --mount=type=bind: there is no build context directory to bind from",
            )
        })?;
        if !ctx.has(rel) {
            return Err(Error::at(
                line,
                format!("RUN --mount=type=bind: source={rel}: not found in the build context"),
            ));
        }
        let conn = self.engine.images().conn();
        let mut h = Sha256::new();
        for (r, m) in ctx.under(rel) {
            h.update(format!("{r}\0{:o}\0{}\0", m.mode(), m.len()).as_bytes());
            let path = root.join(r);
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&path)
                    .map_err(Error::io(format!("read link {}", path.display())))?;
                h.update(t.as_os_str().as_encoded_bytes());
            } else if m.is_file() {
                let key = path.to_string_lossy();
                let stamp = cache::FileStamp::of(m);
                let sum = match cache::file_hash(conn, &key, stamp)? {
                    Some(s) => s,
                    None => {
                        let s = sha256_file(&path)?;
                        cache::remember_file_hash(conn, &key, stamp, &s)?;
                        s
                    }
                };
                h.update(sum.as_bytes());
            }
            h.update(b"\n");
        }
        Ok(hex::encode(h.finalize()))
    }

    /// Where a bind mount's files come from: `source=` resolved (symlinks followed, confined
    /// to the context or the stage's root) and checked to exist.
    fn bind_source(
        &self,
        plan: &Plan,
        done: &BTreeMap<usize, String>,
        line: usize,
        source: &str,
        from: Option<&str>,
    ) -> Result<BindSource, Error> {
        let Some(f) = from else {
            let ctx = &self.opts.context;
            let root = ctx.root.clone().ok_or_else(|| {
                Error::at(
                    line,
                    "RUN --mount=type=bind: there is no build context directory to bind from",
                )
            })?;
            let rel = Union::new(&[root])
                .resolve(&format!("/{source}"), true)
                .join("/");
            if !ctx.has(&rel) {
                return Err(Error::at(
                    line,
                    format!("RUN --mount=type=bind: source={source}: not found in the build context or excluded by .dockerignore"),
                ));
            }
            return Ok(BindSource::Context(rel));
        };
        let id = match plan.stage_ref(f) {
            Some(i) => done.get(&i).cloned().ok_or_else(|| {
                Error::at(
                    line,
                    format!("RUN --mount from={f}: the stage is not built before this one"),
                )
            })?,
            None => {
                self.engine
                    .images()
                    .resolve(f)
                    .map_err(|_| {
                        Error::at(
                            line,
                            format!(
                                "RUN --mount from={f}: no such stage or image in the local store"
                            ),
                        )
                    })?
                    .id
            }
        };
        let (config, _, layers) = self.load(&id)?;
        let u = Union::new(&layers);
        let comps = u.resolve(&format!("/{source}"), true);
        if u.metadata(&comps).is_none() {
            return Err(Error::at(
                line,
                format!("RUN --mount from={f}: source=/{source}: no such file or directory in {f}"),
            ));
        }
        let diff_ids = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        Ok(BindSource::Image {
            layers,
            diff_ids,
            comps,
        })
    }

    /// What a step's `--mount`s become (`binds` are the sources of its bind mounts, in order).
    fn step_mounts(
        &self,
        st: &Stage,
        line: usize,
        mounts: &[crate::mounts::Mount],
        binds: &[BindSource],
    ) -> Result<StepMounts, Error> {
        use crate::mounts::Mount;
        let root = self.engine.root();
        let mut volumes = Vec::new();
        let mut tmpfs = Vec::new();
        let mut overlays = Vec::new();
        let mut scratch = Vec::new();
        let mut secrets = Vec::new();
        let mut relays = Vec::new();
        let mut env = Vec::new();
        let mut ssh_auth_sock = None;
        let mut stubs = Vec::new();
        let mut binds = binds.iter();
        let image = Union::new(&st.layers);
        for m in mounts {
            // Set for every mount but a secret given only as a variable.
            let target = m.target().unwrap_or_default();
            match m {
                Mount::Cache {
                    id,
                    readonly,
                    mode,
                    owner,
                    ..
                } => {
                    let dir = crate::mounts::prepare_cache_dir(root, id, *mode, *owner)?;
                    let ro = if *readonly { ":ro" } else { "" };
                    volumes.push(format!("{}:{target}{ro}", dir.display()));
                }
                Mount::Bind { readwrite, .. } => {
                    let b = binds.next().ok_or_else(|| {
                        Error::Invalid("a bind mount's source was not resolved".into())
                    })?;
                    let (path, lowers, hidden): (PathBuf, Vec<PathBuf>, Vec<&str>) = match b {
                        BindSource::Context(rel) => {
                            let ctx = &self.opts.context;
                            let p = ctx.root.clone().unwrap_or_default().join(rel);
                            (p.clone(), vec![p], ctx.hidden_under(rel).collect())
                        }
                        BindSource::Image { layers, comps, .. } => {
                            let u = Union::new(layers);
                            let (p, _) = u.metadata(comps).ok_or_else(|| {
                                Error::at(
                                    line,
                                    format!("RUN --mount: /{} vanished", comps.join("/")),
                                )
                            })?;
                            (p, u.lowers(comps), Vec::new())
                        }
                    };
                    let meta = std::fs::symlink_metadata(&path)
                        .map_err(Error::io(format!("stat {}", path.display())))?;
                    let simple =
                        !*readwrite && hidden.is_empty() && (lowers.len() == 1 || !meta.is_dir());
                    if simple {
                        // Exactly the source, read-only: a plain bind mount does.
                        volumes.push(format!("{}:{target}:ro", path.display()));
                    } else if !meta.is_dir() {
                        // A writable file: a copy the step may change.
                        let dir = self.scratch_dir()?;
                        let copy = dir.path().join("file");
                        std::fs::copy(&path, &copy)
                            .map_err(Error::io(format!("copy {}", path.display())))?;
                        std::os::unix::fs::chown(&copy, Some(meta.uid()), Some(meta.gid()))
                            .map_err(Error::io("set a mount copy's owner"))?;
                        volumes.push(format!("{}:{target}", copy.display()));
                        scratch.push(dir);
                    } else {
                        let dir = self.scratch_dir()?;
                        let upper = dir.path().join("upper");
                        let work = dir.path().join("work");
                        std::fs::create_dir(&work)
                            .map_err(Error::io("create an overlay work directory"))?;
                        crate::mounts::hiding_layer(&upper, &path, &hidden)?;
                        overlays.push(hako_engine::build_support::OverlayMount {
                            target: target.to_string(),
                            lowers,
                            upper,
                            work,
                            readonly: !*readwrite,
                        });
                        scratch.push(dir);
                    }
                }
                Mount::Tmpfs { size, .. } => tmpfs.push(match size {
                    Some(n) => format!("{target}:size={n}"),
                    None => target.to_string(),
                }),
                Mount::Secret {
                    id,
                    required,
                    target,
                    env: var,
                    mode,
                    owner,
                } => {
                    let Some(secret) = self.opts.secrets.get(id) else {
                        if *required {
                            return Err(Error::at(
                                line,
                                format!("RUN --mount=type=secret: secret {id} not found (pass --secret id={id},src=FILE or --secret id={id},env=VAR)"),
                            ));
                        }
                        continue;
                    };
                    if let crate::mounts::Secret::File(src) = secret {
                        if !src.is_file() {
                            return Err(Error::at(
                                line,
                                format!(
                                    "RUN --mount=type=secret: secret {id}: {} is not a file",
                                    src.display()
                                ),
                            ));
                        }
                    }
                    if let Some(var) = var {
                        let value = match secret {
                            crate::mounts::Secret::Value(v) => v.clone(),
                            crate::mounts::Secret::File(src) => std::fs::read(src)
                                .map_err(Error::io(format!("read the secret {}", src.display())))?,
                        };
                        let value = String::from_utf8(value).map_err(|_| {
                            Error::at(
                                line,
                                format!("RUN --mount=type=secret,env={var}: secret {id} is not UTF-8 text"),
                            )
                        })?;
                        if value.contains('\0') {
                            return Err(Error::at(
                                line,
                                format!("RUN --mount=type=secret,env={var}: secret {id} holds a NUL byte"),
                            ));
                        }
                        env.push(format!("{var}={value}"));
                    }
                    if let Some(target) = target {
                        let dir = self.scratch_dir()?;
                        let file = crate::mounts::secret_file(dir.path(), secret, *mode, *owner)?;
                        volumes.push(format!("{}:{target}:ro", file.display()));
                        secrets.push(dir);
                    }
                }
                Mount::Ssh {
                    id,
                    required,
                    target,
                    mode,
                    owner,
                } => {
                    let Some(agent) = self.opts.ssh.get(id) else {
                        if *required {
                            return Err(Error::at(
                                line,
                                format!("RUN --mount=type=ssh: no ssh agent with id {id} (pass --ssh {id}[=SOCKET])"),
                            ));
                        }
                        continue;
                    };
                    let target = target.as_deref().unwrap_or_default();
                    let dir = self.scratch_dir()?;
                    let relay =
                        crate::agent::AgentRelay::start(dir.path(), agent, *mode, *owner)
                            .map_err(|e| Error::at(line, format!("RUN --mount=type=ssh: {e}")))?;
                    volumes.push(format!("{}:{target}", relay.socket.display()));
                    ssh_auth_sock.get_or_insert_with(|| target.to_string());
                    // The relay goes first, then its directory.
                    relays.push(relay);
                    secrets.push(dir);
                }
            }
            let Some(target) = m.target() else {
                continue;
            };
            let comps = image.resolve(target, true);
            if let Some(first_missing) =
                (1..=comps.len()).find(|&k| image.metadata(&comps[..k]).is_none())
            {
                stubs.push(
                    (first_missing..=comps.len())
                        .map(|k| comps[..k].join("/"))
                        .collect(),
                );
            }
        }
        Ok(StepMounts {
            volumes,
            tmpfs,
            overlays,
            stubs,
            scratch,
            relays,
            secrets,
            env,
            ssh_auth_sock,
        })
    }

    /// A scratch directory in `ROOT/tmp`, named for this process so that the store sweeps it if
    /// the build dies before removing it.
    fn scratch_dir(&self) -> Result<tempfile::TempDir, Error> {
        tempfile::Builder::new()
            .prefix(&format!("{}-mount-", std::process::id()))
            .tempdir_in(self.engine.root().join("tmp"))
            .map_err(Error::io("create a scratch directory for a mount"))
    }

    fn copy(
        &mut self,
        plan: &Plan,
        st: &mut Stage,
        ins: &Instruction,
        done: &BTreeMap<usize, String>,
    ) -> Result<(), Error> {
        let line = ins.line;
        let kw = ins.keyword.as_str();
        let add = kw == "ADD";
        if add {
            ins.check_flags(&["chown", "chmod", "link", "checksum", "keep-git-dir"])?;
        } else {
            ins.check_flags(&["from", "chown", "chmod", "link"])?;
        }
        let vars = st.vars();
        let esc = self.escape;
        let werr = |e: crate::words::WordError| Error::at(line, format!("{kw}: {}", e.0));
        let mut words = match ins.json_args() {
            Some(v) => v
                .iter()
                .map(|w| expand(&go_quote(w), &vars, esc))
                .collect::<Result<Vec<_>, _>>()
                .map_err(werr)?,
            None => expand_words(&ins.args, &vars, esc).map_err(werr)?,
        };
        if words.len() < 2 {
            return Err(Error::at(line, format!("{kw} requires at least two arguments, but only one was provided. Destination could not be determined")));
        }
        let dest_raw = words.pop().expect("two words");
        let image = Union::new(&st.layers);
        // Ownership: numbers as given, names looked up in the image's own passwd/group.
        let owner = match ins.flag("chown") {
            None => (0u64, 0u64),
            Some(spec) => {
                let spec = expand(spec, &vars, esc).map_err(werr)?;
                let (u, g) = spec.split_once(':').unwrap_or((&spec, ""));
                let top_first: Vec<PathBuf> = st.layers.iter().rev().cloned().collect();
                let uid = match u.parse::<u64>() {
                    Ok(n) => n,
                    Err(_) => hako_engine::user::resolve(u, &top_first)
                        .map_err(|e| Error::at(line, format!("{kw}: --chown={spec}: {e}")))?
                        .uid
                        .into(),
                };
                let gid = if g.is_empty() {
                    match u.parse::<u64>() {
                        Ok(n) => n,
                        Err(_) => hako_engine::user::resolve(u, &top_first)
                            .map_err(|e| Error::at(line, format!("{kw}: --chown={spec}: {e}")))?
                            .gid
                            .into(),
                    }
                } else {
                    match g.parse::<u64>() {
                        Ok(n) => n,
                        Err(_) => hako_engine::user::resolve(&format!("0:{g}"), &top_first)
                            .map_err(|e| Error::at(line, format!("{kw}: --chown={spec}: {e}")))?
                            .gid
                            .into(),
                    }
                };
                (uid, gid)
            }
        };
        let chmod = match ins.flag("chmod") {
            None => None,
            Some(m) => Some(
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        Error::at(
                            line,
                            format!("{kw}: invalid --chmod={m}: an octal mode is expected"),
                        )
                    })?,
            ),
        };
        let attrs = Attrs { owner, chmod };

        // Sources: the context, another stage, or an image.
        let from_union;
        let from = match ins.flag("from") {
            None => None,
            Some(f) => {
                let f = expand(f, &vars, esc).map_err(werr)?;
                let id = match plan.stage_ref(&f) {
                    Some(i) => done.get(&i).cloned().ok_or_else(|| {
                        Error::at(
                            line,
                            format!("{kw} --from={f}: the stage is not built before this one"),
                        )
                    })?,
                    None => {
                        self.engine
                            .images()
                            .resolve(&f)
                            .map_err(|_| {
                                Error::at(
                                    line,
                                    format!(
                                    "{kw} --from={f}: no such stage or image in the local store"
                                ),
                                )
                            })?
                            .id
                    }
                };
                let (_, _, layers) = self.load(&id)?;
                from_union = Union::new(&layers);
                Some((id, &from_union))
            }
        };

        // Destination: relative to WORKDIR; a trailing `/` (or `.`) means a directory.
        let workdir = st.workdir();
        let dest_abs = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            format!("{}/{}", workdir.trim_end_matches('/'), dest_raw)
        };
        let dest_is_dir_syntax = dest_raw.ends_with('/')
            || dest_raw == "."
            || dest_raw.ends_with("/.")
            || dest_raw == "..";
        let dest_comps = image.resolve(&dest_abs, true);
        let dest_exists_dir = image.metadata(&dest_comps).is_some_and(|(_, m)| m.is_dir());

        // Expand the sources into (source item, is_dir) pairs.
        enum Item {
            Ctx(String),
            Img(Vec<String>),
            Doc(usize),
            /// A downloaded URL: the URL, the file's name, the download.
            Url(String, String, tempfile::NamedTempFile),
            /// A git checkout: its files (the subdirectory's are copied), the commit, and the
            /// directory that holds them while the step runs.
            Git {
                files: Context,
                subdir: String,
                commit: String,
                _checkout: crate::git::Checkout,
            },
        }
        let keep_git_dir = match ins.flag("keep-git-dir") {
            None | Some("false") => false,
            Some("" | "true") => true,
            Some(other) => {
                return Err(Error::at(
                    line,
                    format!("ADD: invalid --keep-git-dir={other} (true or false)"),
                ))
            }
        };
        let checksum = match ins.flag("checksum") {
            None => None,
            Some(c) => {
                let c = expand(c, &vars, esc).map_err(werr)?;
                let hex = c
                    .strip_prefix("sha256:")
                    .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
                Some(
                    hex.ok_or_else(|| {
                        Error::at(
                            line,
                            format!("ADD --checksum={c}: expected sha256:<64 hex digits>"),
                        )
                    })?
                    .to_ascii_lowercase(),
                )
            }
        };
        let urls = words
            .iter()
            .filter(|w| {
                (w.starts_with("http://") || w.starts_with("https://"))
                    && crate::git::parse(w).is_none()
            })
            .count();
        if checksum.is_some() && (urls != 1 || words.len() != 1) {
            return Err(Error::at(
                line,
                "ADD --checksum needs exactly one source, an http(s) URL",
            ));
        }
        let mut items: Vec<Item> = Vec::new();
        for w in &words {
            if let Some(g) = crate::git::parse(w).filter(|_| add) {
                let fail = |e: String| Error::at(line, format!("ADD {w}: {e}"));
                let g = g.map_err(fail)?;
                let agent = self.opts.ssh.get("default").map(|p| p.as_path());
                let checkout =
                    crate::git::fetch(&g, &self.engine.root().join("tmp"), keep_git_dir, agent)
                        .map_err(fail)?;
                let files = Context::open(checkout.dir.path(), &crate::ignore::Ignore::default())?;
                let is_dir =
                    g.subdir.is_empty() || files.entries.get(&g.subdir).is_some_and(|m| m.is_dir());
                if !is_dir {
                    return Err(fail(format!(
                        "no directory {} in the repository at {}",
                        g.subdir, checkout.commit
                    )));
                }
                items.push(Item::Git {
                    files,
                    subdir: g.subdir,
                    commit: checkout.commit.clone(),
                    _checkout: checkout,
                });
                continue;
            }
            if add && (w.starts_with("http://") || w.starts_with("https://")) {
                let file = self.download(line, w, checksum.as_deref())?;
                // The name is the URL path's last segment, as Docker takes it.
                let path = w.split(['?', '#']).next().unwrap_or(w);
                let after_host = path.splitn(4, '/').nth(3).unwrap_or("");
                let name = after_host
                    .rsplit('/')
                    .find(|s| !s.is_empty())
                    .unwrap_or("")
                    .to_string();
                if name.is_empty() && (dest_raw.ends_with('/') || dest_exists_dir) {
                    return Err(Error::at(line, format!("ADD {w}: cannot determine a filename from the URL; give the destination a file name")));
                }
                items.push(Item::Url(w.clone(), name, file));
                continue;
            }
            if let Some(name) = w.strip_prefix("<<").filter(|_| !ins.heredocs.is_empty()) {
                // `<<EOF`, `<<-EOF` or a quoted delimiter (its quotes already removed).
                let name = name.trim_start_matches('-').trim_matches(['"', '\'']);
                if let Some(pos) = ins.heredocs.iter().position(|h| h.name == name) {
                    items.push(Item::Doc(pos));
                    continue;
                }
            }
            match &from {
                None => {
                    for rel in self
                        .opts
                        .context
                        .select(w)
                        .map_err(|e| Error::at(line, format!("{kw} failed: {e}")))?
                    {
                        items.push(Item::Ctx(rel));
                    }
                }
                Some((_, u)) => {
                    let comps = u.resolve(w, true);
                    if u.metadata(&comps).is_none() {
                        return Err(Error::at(
                            line,
                            format!(
                                "{kw} --from: {w}: no such file or directory in the source image"
                            ),
                        ));
                    }
                    items.push(Item::Img(comps));
                }
            }
        }
        let several = items.len() > 1;
        if several && !dest_is_dir_syntax && !dest_exists_dir {
            return Err(Error::at(line, format!("When using {kw} with more than one source file, the destination must be a directory and end with a /")));
        }

        // The cache key: every source file's path, type, mode, size, link target and content.
        let conn = self.engine.images().conn();
        let mut h = Sha256::new();
        let ctx_root = self.opts.context.root.clone().unwrap_or_default();
        let mut files = 0usize;
        let mut hash_file = |h: &mut Sha256,
                             label: &str,
                             path: &std::path::Path,
                             m: &std::fs::Metadata,
                             cacheable: bool|
         -> Result<(), Error> {
            files += 1;
            h.update(format!("{label}\0{:o}\0{}\0", m.mode(), m.len()).as_bytes());
            if m.file_type().is_symlink() {
                h.update(
                    std::fs::read_link(path)
                        .map_err(Error::io(format!("read link {}", path.display())))?
                        .as_os_str()
                        .as_encoded_bytes(),
                );
            } else if m.is_file() {
                let key = path.to_string_lossy();
                let stamp = cache::FileStamp::of(m);
                let sum = match if cacheable {
                    cache::file_hash(conn, &key, stamp)?
                } else {
                    None
                } {
                    Some(s) => s,
                    None => {
                        let s = sha256_file(path)?;
                        if cacheable {
                            cache::remember_file_hash(conn, &key, stamp, &s)?;
                        }
                        s
                    }
                };
                h.update(sum.as_bytes());
            }
            h.update(b"\n");
            Ok(())
        };
        for it in &items {
            match it {
                Item::Ctx(rel) => {
                    for (r, m) in self.opts.context.under(rel) {
                        hash_file(&mut h, r, &ctx_root.join(r), m, true)?;
                    }
                }
                Item::Img(comps) => {
                    let u = from.as_ref().expect("image items come with --from").1;
                    let mut stack = vec![comps.clone()];
                    while let Some(c) = stack.pop() {
                        let Some((p, m)) = u.metadata(&c) else {
                            continue;
                        };
                        hash_file(&mut h, &c.join("/"), &p, &m, false)?;
                        if m.is_dir() {
                            for n in u.read_dir(&c).into_iter().rev() {
                                let mut cc = c.clone();
                                cc.push(n);
                                stack.push(cc);
                            }
                        }
                    }
                }
                Item::Url(url, _, file) => {
                    let m = file
                        .as_file()
                        .metadata()
                        .map_err(Error::io("stat a download"))?;
                    hash_file(&mut h, url, file.path(), &m, false)?;
                }
                Item::Doc(i) => {
                    h.update(b"heredoc\0");
                    h.update(ins.heredocs[*i].content.as_bytes());
                }
                // The commit names the content; the files' times are the checkout's.
                Item::Git { subdir, commit, .. } => {
                    h.update(format!("git\0{commit}\0{subdir}\0{keep_git_dir}\n").as_bytes());
                }
            }
        }
        let digest = hex::encode(h.finalize());
        let kind = if several {
            "multi"
        } else {
            match items.first() {
                Some(Item::Ctx(r))
                    if self.opts.context.entries.get(r).is_some_and(|m| m.is_dir())
                        || r.is_empty() =>
                {
                    "dir"
                }
                Some(Item::Img(c))
                    if from
                        .as_ref()
                        .and_then(|(_, u)| u.metadata(c))
                        .is_some_and(|(_, m)| m.is_dir()) =>
                {
                    "dir"
                }
                Some(Item::Git { .. }) => "dir",
                _ => "file",
            }
        };
        let mut shell = st.shell();
        let from_note = from
            .as_ref()
            .map(|(id, _)| format!(" from {}", short(id)))
            .unwrap_or_default();
        shell.push(format!(
            "#(nop) {kw} {kind}:{digest}{from_note} in {dest_raw} "
        ));
        let created_by = shell.join(" ");
        let flags = format!("{:?}", ins.flags);
        let key = self.cache_key(
            st,
            kw,
            &format!("{created_by}\n{flags}\n{dest_abs}\n{files}"),
        );
        if self.cached(st, &key)? || self.reuse_cache_source(st, &key, &created_by)? {
            return Ok(());
        }

        // Write the layer.
        let epoch = self.opts.source_date_epoch;
        let staged = self.engine.stage_streamed(|out| {
            let mut w = LayerWriter::new(out, epoch);
            let into_dir = several || dest_is_dir_syntax || dest_exists_dir;
            if into_dir {
                w.parents(&image, &dest_comps, owner)?;
                if !dest_comps.is_empty() {
                    w.dir(&image, &dest_comps, owner, 0o755)?;
                }
            }
            let target = |name: &str| -> Vec<String> {
                let mut c = dest_comps.clone();
                if into_dir {
                    c.push(name.to_string());
                }
                c
            };
            for it in &items {
                match it {
                    Item::Url(_, name, file) => {
                        let m = file
                            .as_file()
                            .metadata()
                            .map_err(Error::io("stat a download"))?;
                        let t = target(name);
                        if !into_dir {
                            w.parents(&image, &t, owner)?;
                        }
                        // Docker gives remote files mode 0600 unless --chmod says otherwise.
                        let a = Attrs {
                            owner,
                            chmod: Some(chmod.unwrap_or(0o600)),
                        };
                        w.host(&t, file.path(), &m, a)?;
                    }
                    Item::Doc(i) => {
                        let hd = &ins.heredocs[*i];
                        let body = if hd.expand {
                            expand(&hd.content, &vars, esc).map_err(werr)?
                        } else {
                            hd.content.clone()
                        };
                        let t = target(&hd.name);
                        if !into_dir {
                            w.parents(&image, &t, owner)?;
                        }
                        w.bytes(&t, body.as_bytes(), attrs)?;
                    }
                    Item::Ctx(rel) => {
                        let is_dir = rel.is_empty()
                            || self
                                .opts
                                .context
                                .entries
                                .get(rel)
                                .is_some_and(|m| m.is_dir());
                        if is_dir {
                            // A directory's contents go into the destination, not the directory.
                            if !into_dir {
                                w.parents(&image, &dest_comps, owner)?;
                                w.dir(&image, &dest_comps, owner, 0o755)?;
                            }
                            for (r, m) in self.opts.context.under(rel) {
                                if r == rel {
                                    continue;
                                }
                                let sub = if rel.is_empty() {
                                    r.as_str()
                                } else {
                                    &r[rel.len() + 1..]
                                };
                                let mut c = dest_comps.clone();
                                c.extend(sub.split('/').map(String::from));
                                w.host(&c, &ctx_root.join(r), m, attrs)
                                    .map_err(in_file(line, kw, r))?;
                            }
                            continue;
                        }
                        let m = &self.opts.context.entries[rel];
                        let name = rel.rsplit('/').next().unwrap_or(rel);
                        let t = target(name);
                        if !into_dir {
                            w.parents(&image, &t, owner)?;
                        }
                        if add && m.is_file() {
                            let archive = open_archive(&ctx_root.join(rel))
                                .map_err(in_file(line, kw, rel))?;
                            if let Some(reader) = archive {
                                // ADD unpacks a local archive into the destination directory.
                                let d = dest_comps.clone();
                                w.parents(&image, &d, owner)?;
                                if !d.is_empty() {
                                    w.dir(&image, &d, owner, 0o755)?;
                                }
                                w.archive(&d, reader).map_err(in_file(line, kw, rel))?;
                                continue;
                            }
                        }
                        w.host(&t, &ctx_root.join(rel), m, attrs)
                            .map_err(in_file(line, kw, rel))?;
                    }
                    Item::Git { files, subdir, .. } => {
                        // Like a context directory: its contents go into the destination.
                        if !into_dir {
                            w.parents(&image, &dest_comps, owner)?;
                            w.dir(&image, &dest_comps, owner, 0o755)?;
                        }
                        let root = files.root.clone().unwrap_or_default();
                        for (r, m) in files.under(subdir) {
                            if r == subdir {
                                continue;
                            }
                            let sub = if subdir.is_empty() {
                                r.as_str()
                            } else {
                                &r[subdir.len() + 1..]
                            };
                            let mut c = dest_comps.clone();
                            c.extend(sub.split('/').map(String::from));
                            w.host(&c, &root.join(r), m, attrs)?;
                        }
                    }
                    Item::Img(comps) => {
                        let u = from.as_ref().expect("image items come with --from").1;
                        let Some((p, m)) = u.metadata(comps) else {
                            continue;
                        };
                        if m.is_dir() {
                            if !into_dir {
                                w.parents(&image, &dest_comps, owner)?;
                                w.dir(&image, &dest_comps, owner, 0o755)?;
                            }
                            let mut stack: Vec<Vec<String>> = u
                                .read_dir(comps)
                                .into_iter()
                                .rev()
                                .map(|n| vec![n])
                                .collect();
                            while let Some(sub) = stack.pop() {
                                let mut src = comps.clone();
                                src.extend(sub.iter().cloned());
                                let Some((sp, sm)) = u.metadata(&src) else {
                                    continue;
                                };
                                let mut c = dest_comps.clone();
                                c.extend(sub.iter().cloned());
                                w.host(&c, &sp, &sm, attrs)?;
                                if sm.is_dir() {
                                    for n in u.read_dir(&src).into_iter().rev() {
                                        let mut s2 = sub.clone();
                                        s2.push(n);
                                        stack.push(s2);
                                    }
                                }
                            }
                            continue;
                        }
                        let name = comps.last().cloned().unwrap_or_default();
                        let t = target(&name);
                        if !into_dir {
                            w.parents(&image, &t, owner)?;
                        }
                        w.host(&t, &p, &m, attrs)?;
                    }
                }
            }
            w.finish()
        })?;
        let id = self.commit(st, &created_by, Some(staged))?;
        cache::store(self.engine.images().conn(), &key, &id, self.used())?;
        self.say(BuildEvent::StepImage(id.to_string()))
    }
}

/// What a step's `--mount`s become.
struct StepMounts {
    /// `-v` values: cache directories, binds, secrets, agent sockets.
    volumes: Vec<String>,
    /// `--tmpfs` values.
    tmpfs: Vec<String>,
    /// Overlays (binds of stages and images, writable binds).
    overlays: Vec<hako_engine::build_support::OverlayMount>,
    /// For each mount point the image lacks, the chain of paths the runtime will create for it
    /// (left out of the layer).
    stubs: Vec<Vec<String>>,
    /// The overlays' scratch directories, needed until the step's container is removed.
    scratch: Vec<tempfile::TempDir>,
    /// The ssh-agent relays, needed while the step runs (declared before `secrets`, which
    /// holds their directories, so that they stop first).
    relays: Vec<crate::agent::AgentRelay>,
    /// Secret files and agent sockets' directories, removed once the step's process is gone.
    secrets: Vec<tempfile::TempDir>,
    /// `NAME=value` of the secrets the step gets as variables.
    env: Vec<String>,
    /// The first agent socket's target, for `SSH_AUTH_SOCK`.
    ssh_auth_sock: Option<String>,
}

/// Where a `RUN --mount=type=bind` shows files from.
enum BindSource {
    /// The context path (relative, resolved inside the context).
    Context(String),
    /// A stage's or image's filesystem.
    Image {
        /// Its layers, bottom first.
        layers: Vec<PathBuf>,
        /// Its layers' diff ids: the content the step sees.
        diff_ids: Vec<String>,
        /// The source path, resolved inside it.
        comps: Vec<String>,
    },
}

/// Points stdout and stderr at /dev/null while a quiet build runs a step; restores them on drop.
struct Silence {
    out: std::os::fd::OwnedFd,
    err: std::os::fd::OwnedFd,
}

impl Silence {
    fn start() -> Result<Silence, Error> {
        let null = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .map_err(Error::io("open /dev/null"))?;
        let out =
            nix::unistd::dup(std::io::stdout()).map_err(|e| Error::io("dup stdout")(e.into()))?;
        let err =
            nix::unistd::dup(std::io::stderr()).map_err(|e| Error::io("dup stderr")(e.into()))?;
        nix::unistd::dup2_stdout(&null).map_err(|e| Error::io("redirect stdout")(e.into()))?;
        nix::unistd::dup2_stderr(&null).map_err(|e| Error::io("redirect stderr")(e.into()))?;
        Ok(Silence { out, err })
    }
}

impl Drop for Silence {
    fn drop(&mut self) {
        let _ = nix::unistd::dup2_stdout(&self.out);
        let _ = nix::unistd::dup2_stderr(&self.err);
    }
}

/// The hex sha256 of a file's content, read in 64 KiB pieces.
fn sha256_file(path: &std::path::Path) -> Result<String, Error> {
    let mut f = std::fs::File::open(path).map_err(Error::io(format!("open {}", path.display())))?;
    let mut fh = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(Error::io(format!("read {}", path.display())))?;
        if n == 0 {
            return Ok(hex::encode(fh.finalize()));
        }
        fh.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_quoting() {
        assert_eq!(
            go_quote_list(&["/bin/sh".into(), "-c".into(), "cat \"x\"".into()]),
            r#"["/bin/sh" "-c" "cat \"x\""]"#
        );
        assert_eq!(parse_duration("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_duration("1d"), Ok(86_400_000_000_000));
        assert!(parse_duration("x").is_err());
        assert!(rfc3339_now().ends_with('Z'));
    }

    #[test]
    fn platforms() {
        let host = format!("linux/{}", go_arch());
        assert_eq!(check_platform(&host), Ok(ImagePlatform::host()));
        assert_eq!(check_platform("linux"), Ok(ImagePlatform::host()));
        let e = check_platform("linux/s390x_nope").unwrap_err();
        assert!(e.contains("cannot run on this host"), "{e}");
        assert_eq!(
            check_platform("windows/amd64").unwrap_err(),
            "platform \"windows/amd64\": image operating system \"windows\" cannot be used on this platform"
        );
        assert!(check_platform("linux/").is_err());
        let vars = platform_args(&check_platform("linux").unwrap());
        assert_eq!(vars["TARGETPLATFORM"], host);
    }
}
