//! Image commands: import, images, rmi, tag, pull, push, save, load,
//! history, image inspect, login, logout.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use clap::Args;
use hako_engine::hako_image::{self, ImportOptions, Reference, RemoveEvent};
use tabwriter::TabWriter;

use crate::{fmt, image_filter, open, short_id, since, template, Failure};

#[derive(Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image (ENV, CMD, ENTRYPOINT, WORKDIR, USER, ...)
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Commit message recorded in the image history
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Tarball path, http(s) URL, or - to read standard input
    file: String,
    /// REPOSITORY[:TAG]
    reference: Option<String>,
}

#[derive(Args)]
pub struct ImagesArgs {
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Show digests
    #[arg(long)]
    digests: bool,
    /// Show all images (by default intermediate build-step images are hidden)
    #[arg(short, long)]
    all: bool,
    /// Filter output based on conditions provided (dangling, reference, label, before, since)
    #[arg(short, long, value_parser = crate::usage::filter_arg)]
    filter: Vec<String>,
    /// Format output using a Go template, "table TEMPLATE", or "json"
    #[arg(long)]
    format: Option<String>,
    /// Only images of this REPOSITORY[:TAG] (a glob, as --filter reference=)
    reference: Option<String>,
}

#[derive(Args)]
pub struct RmiArgs {
    /// Remove even if a container uses the image
    #[arg(short, long)]
    force: bool,
    /// Images
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args)]
pub struct PullArgs {
    /// Set platform if server is multi-platform capable (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG|@DIGEST]
    name: String,
}

#[derive(Args)]
pub struct PushArgs {
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// NAME[:TAG]
    name: String,
}

#[derive(Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<String>,
    /// Images
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    input: Option<String>,
    /// Suppress the load output
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args)]
pub struct HistoryArgs {
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    quiet: bool,
    /// Format output using a Go template, or json
    #[arg(long)]
    format: Option<String>,
    /// Image
    image: String,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short, long)]
    format: Option<String>,
    /// Images
    #[arg(required = true)]
    images: Vec<String>,
}

#[derive(Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    username: Option<String>,
    /// Password
    #[arg(short, long)]
    password: Option<String>,
    /// Take the password from stdin
    #[arg(long)]
    password_stdin: bool,
    /// Registry server (Docker Hub when omitted)
    server: Option<String>,
}

#[derive(Args)]
pub struct LogoutArgs {
    /// Registry server (Docker Hub when omitted)
    server: Option<String>,
}

fn parse_ref(s: &str) -> anyhow::Result<Reference> {
    Ok(Reference::parse(s)?)
}

pub fn import(root: &Path, a: ImportArgs) -> Result<i32, Failure> {
    let engine = open(root)?;
    let reference = a.reference.as_deref().map(parse_ref).transpose()?;
    let opts = ImportOptions {
        reference,
        changes: a.change,
        message: a.message,
        source: a.file.clone(),
    };
    let image = if a.file == "-" {
        engine.images().import(std::io::stdin().lock(), &opts)?
    } else if a.file.starts_with("http://") || a.file.starts_with("https://") {
        let body = hako_registry::open_url(&a.file)?;
        engine
            .images()
            .import(std::io::BufReader::with_capacity(1 << 20, body), &opts)?
    } else {
        let f = std::fs::File::open(&a.file).with_context(|| format!("open {}", a.file))?;
        engine
            .images()
            .import(std::io::BufReader::with_capacity(1 << 20, f), &opts)?
    };
    println!("{}", image.id);
    Ok(0)
}

pub fn images(root: &Path, a: ImagesArgs) -> Result<i32, Failure> {
    let mut filters = image_filter::Filters::parse(&a.filter)?;
    if let Some(r) = &a.reference {
        filters.add_reference(r)?;
    }
    let engine = open(root)?;
    let store = engine.images();
    let list = store.list()?;
    // Docker's intermediate images: untagged ones another image was built on. They are not
    // dangling, and `images` shows them only with -a.
    let parents: std::collections::HashSet<String> = hako_build::cache::parents(store.conn())?
        .into_values()
        .collect();
    let bound = |name: &Option<String>| -> anyhow::Result<Option<std::time::SystemTime>> {
        name.as_deref()
            .map(|n| {
                let img = store.resolve(n)?;
                img.config
                    .created()
                    .as_deref()
                    .and_then(fmt::parse_rfc3339)
                    .ok_or_else(|| anyhow::anyhow!("image {n} has no creation time"))
            })
            .transpose()
    };
    let before = bound(&filters.before)?;
    let since_t = bound(&filters.since)?;

    let mut rows = Vec::new();
    let mut ids = Vec::new();
    for img in &list {
        let untagged = img.repo_tags.is_empty();
        let intermediate = untagged && parents.contains(&img.id);
        if intermediate && !a.all {
            continue;
        }
        match filters.dangling {
            Some(true) if !untagged || intermediate => continue,
            Some(false) if untagged => continue,
            _ => {}
        }
        let created = img.created.as_deref().and_then(fmt::parse_rfc3339);
        if before.is_some_and(|b| created.is_none_or(|c| c >= b))
            || since_t.is_some_and(|s| created.is_none_or(|c| c <= s))
        {
            continue;
        }
        if !filters.label.is_empty() {
            let full = store.resolve(&img.id)?;
            let labels = full
                .config
                .config()
                .as_ref()
                .and_then(|c| c.labels().clone())
                .unwrap_or_default();
            if !filters.labels_match(&labels) {
                continue;
            }
        }
        let tags: Vec<&Reference> = img
            .repo_tags
            .iter()
            .filter(|r| filters.reference_matches(r))
            .collect();
        if !filters.reference.is_empty() && tags.is_empty() {
            continue;
        }
        ids.push(img.id.clone());
        let digests = if a.digests || a.format.is_some() {
            store.repo_digests(&img.id)?
        } else {
            Vec::new()
        };
        let digest_of = |repo: &str| -> String {
            digests
                .iter()
                .filter_map(|d| d.split_once('@'))
                .find(|(r, _)| Reference::parse(r).is_ok_and(|r| r.familiar_repository() == repo))
                .map_or("<none>", |(_, d)| d)
                .to_string()
        };
        let id = if a.no_trunc {
            img.id.clone()
        } else {
            short_id(&img.id).to_string()
        };
        let pairs: Vec<(String, String)> = if tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            tags.iter()
                .map(|r| {
                    (
                        r.familiar_repository(),
                        r.tag().unwrap_or("<none>").to_string(),
                    )
                })
                .collect()
        };
        for (repo, tag) in pairs {
            let digest = digest_of(&repo);
            rows.push(serde_json::json!({
                "Containers": "N/A",
                "CreatedAt": created.map(|c| crate::engine_time(system_nanos(c))).unwrap_or_default(),
                "CreatedSince": created.map(|c| since(Some(c))).unwrap_or_else(|| "N/A".into()),
                "Digest": digest,
                "ID": id,
                "Repository": repo,
                "SharedSize": "N/A",
                "Size": fmt::human_size(img.size),
                "Tag": tag,
                "UniqueSize": "N/A",
                "VirtualSize": fmt::human_size(img.size),
            }));
        }
    }

    let stdout = std::io::stdout().lock();
    if a.quiet {
        let mut out = std::io::BufWriter::new(stdout);
        for id in &ids {
            let shown = if a.no_trunc {
                id.as_str()
            } else {
                short_id(id)
            };
            writeln!(out, "{shown}")?;
        }
        out.flush()?;
        return Ok(0);
    }
    let default_table = if a.digests {
        "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let format = match a.format.as_deref() {
        None | Some("") | Some("table") => default_table,
        Some(f) => f,
    };
    let (table, body) = match format.strip_prefix("table") {
        Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => {
            (true, rest.trim_start())
        }
        _ => (false, format),
    };
    let tmpl = template::Format::parse(body)?;
    if table {
        let mut out = TabWriter::new(stdout).minwidth(7).padding(3);
        writeln!(out, "{}", tmpl.render(&image_filter::headers())?)?;
        for row in &rows {
            writeln!(out, "{}", tmpl.render(row)?)?;
        }
        out.flush()?;
    } else {
        let mut out = std::io::BufWriter::new(stdout);
        for row in &rows {
            writeln!(out, "{}", tmpl.render(row)?)?;
        }
        out.flush()?;
    }
    Ok(0)
}

fn system_nanos(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

pub fn rmi(root: &Path, a: RmiArgs) -> Result<i32, Failure> {
    let engine = open(root)?;
    let mut code = 0;
    for name in &a.images {
        match engine.remove_image(name, a.force) {
            Ok(events) => {
                for e in events {
                    match e {
                        RemoveEvent::Untagged(r) => println!("Untagged: {r}"),
                        RemoveEvent::Deleted(id) => println!("Deleted: {id}"),
                    }
                }
            }
            // As Docker's `rmi -f`: an image that is not there is said, not a failure.
            Err(e @ hako_engine::Error::Image(hako_engine::hako_image::Error::NotFound(_)))
                if a.force =>
            {
                eprintln!("hako: {e}")
            }
            Err(e) => {
                eprintln!("hako: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

pub fn tag(root: &Path, source: &str, target: &str) -> Result<i32, Failure> {
    let engine = open(root)?;
    let image = engine.images().resolve(source)?;
    let reference = parse_ref(target)?;
    engine.images().tag(&image.id, &reference)?;
    Ok(0)
}

pub fn pull(root: &Path, a: PullArgs) -> Result<i32, Failure> {
    let reference = parse_ref(&a.name)?;
    let platform = a
        .platform
        .as_deref()
        .map(hako_registry::Platform::parse)
        .transpose()?;
    let engine = open(root)?;
    let mut stdout = std::io::stdout().lock();
    let mut sink = std::io::sink();
    let progress: &mut dyn Write = if a.quiet { &mut sink } else { &mut stdout };
    // Docker says this only when the user typed neither tag nor digest.
    let bare =
        !a.name.contains('@') && !a.name[a.name.rfind('/').map_or(0, |i| i + 1)..].contains(':');
    if bare {
        writeln!(progress, "Using default tag: latest")?;
    }
    let opts = hako_registry::PullOptions { platform };
    hako_registry::pull(engine.images(), &reference, &opts, progress)
        .with_context(|| format!("pull {}", reference.familiar()))?;
    writeln!(stdout, "{reference}")?;
    Ok(0)
}

pub fn push(root: &Path, a: PushArgs) -> Result<i32, Failure> {
    let reference = parse_ref(&a.name)?;
    let engine = open(root)?;
    let mut stdout = std::io::stdout().lock();
    let mut sink = std::io::sink();
    let progress: &mut dyn Write = if a.quiet { &mut sink } else { &mut stdout };
    hako_registry::push(engine.images(), &reference, progress)
        .with_context(|| format!("push {}", reference.familiar()))?;
    if a.quiet {
        writeln!(stdout, "{reference}")?;
    }
    Ok(0)
}

pub fn save(root: &Path, a: SaveArgs) -> Result<i32, Failure> {
    let engine = open(root)?;
    let mut list = Vec::new();
    for name in &a.images {
        let image = engine.images().resolve(name)?;
        // Like docker: saving by tag records that tag, by ID records all.
        let tags = match Reference::parse(name) {
            Ok(r) if r.tag().is_some() && image.repo_tags.contains(&r) => vec![r],
            _ => image.repo_tags.clone(),
        };
        match list
            .iter_mut()
            .find(|(i, _): &&mut (hako_image::Image, Vec<Reference>)| i.id == image.id)
        {
            Some((_, t)) => t.extend(tags),
            None => list.push((image, tags)),
        }
    }
    write_archive(a.output.as_deref(), |w| {
        engine.images().save(&list, w).map_err(anyhow::Error::from)
    })?;
    Ok(0)
}

pub fn load(root: &Path, a: LoadArgs) -> Result<i32, Failure> {
    let engine = open(root)?;
    let loaded = match a.input.as_deref() {
        Some(p) if p != "-" => {
            let f = std::fs::File::open(p).with_context(|| format!("open {p}"))?;
            engine.images().load_archive(f)?
        }
        _ => engine.images().load_archive(std::io::stdin().lock())?,
    };
    if !a.quiet {
        for l in &loaded {
            if l.tags.is_empty() {
                println!("Loaded image ID: {}", l.image.id);
            }
            for t in &l.tags {
                println!("Loaded image: {}", t.familiar());
            }
        }
    }
    Ok(0)
}

pub fn history(root: &Path, a: HistoryArgs) -> Result<i32, Failure> {
    let engine = open(root)?;
    let image = engine.images().resolve(&a.image)?;
    let sizes = engine.images().layer_sizes(&image.id)?;
    let history = image.config.history().clone().unwrap_or_default();
    // Sizes belong to the history entries that made a layer, in order.
    let mut layer = 0usize;
    let mut rows = Vec::new();
    for h in &history {
        let size = if h.empty_layer().unwrap_or(false) {
            0
        } else {
            let s = sizes.get(layer).copied().unwrap_or(0);
            layer += 1;
            s
        };
        rows.push((h, size));
    }
    if let (Some(f), false) = (&a.format, a.quiet) {
        let tmpl = template::Format::parse(f)?;
        let mut out = std::io::stdout().lock();
        for (i, (h, size)) in rows.into_iter().rev().enumerate() {
            let id = match i {
                0 if a.no_trunc => image.id.clone(),
                0 => short_id(&image.id).to_string(),
                _ => "<missing>".to_string(),
            };
            let created = h.created().clone().unwrap_or_default();
            let by = h.created_by().clone().unwrap_or_default();
            // Docker's `history` fields; CreatedBy is truncated like the table unless --no-trunc.
            let item = serde_json::json!({
                "ID": id,
                "CreatedAt": created,
                "CreatedSince": fmt::parse_rfc3339(&created)
                    .map(|t| since(Some(t)))
                    .unwrap_or_else(|| "N/A".into()),
                "CreatedBy": if a.no_trunc { by } else { fmt::ellipsis(&by, 45) },
                "Size": fmt::human_size(size),
                "Comment": h.comment().clone().unwrap_or_default(),
            });
            writeln!(out, "{}", tmpl.render(&item)?)?;
        }
        return Ok(0);
    }
    let mut out = TabWriter::new(std::io::stdout().lock())
        .minwidth(7)
        .padding(3);
    if !a.quiet {
        writeln!(out, "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT")?;
    }
    for (i, (h, size)) in rows.into_iter().rev().enumerate() {
        let id = if i == 0 {
            if a.no_trunc {
                image.id.clone()
            } else {
                short_id(&image.id).to_string()
            }
        } else {
            "<missing>".to_string()
        };
        if a.quiet {
            writeln!(out, "{id}")?;
            continue;
        }
        let created = h
            .created()
            .as_deref()
            .and_then(fmt::parse_rfc3339)
            .map(|t| since(Some(t)))
            .unwrap_or_else(|| "N/A".into());
        let by = h
            .created_by()
            .clone()
            .unwrap_or_default()
            .replace('\t', " ");
        let by = if a.no_trunc {
            by
        } else {
            fmt::ellipsis(&by, 45)
        };
        writeln!(
            out,
            "{id}\t{created}\t{by}\t{}\t{}",
            fmt::human_size(size),
            h.comment().clone().unwrap_or_default()
        )?;
    }
    out.flush()?;
    Ok(0)
}

pub fn inspect(root: &Path, a: InspectArgs) -> Result<i32, Failure> {
    let tmpl = crate::inspect_format(a.format.as_deref())?;
    let engine = open(root)?;
    let parents = hako_build::cache::parents(engine.images().conn())?;
    let mut docs = Vec::new();
    let mut code = 0;
    for name in &a.images {
        match image_doc(&engine, &parents, name) {
            Ok(Some(doc)) => docs.push(doc),
            Ok(None) => {
                eprintln!("Error: No such image: {name}");
                code = 1;
            }
            Err(e) => {
                eprintln!("Error: {e:#}");
                code = 1;
            }
        }
    }
    crate::print_docs(&serde_json::Value::Array(docs), tmpl.as_ref())?;
    Ok(code)
}

/// The `image inspect` document of `name`; None when there is no such image.
pub fn image_doc(
    engine: &hako_engine::Engine,
    parents: &std::collections::HashMap<String, String>,
    name: &str,
) -> anyhow::Result<Option<serde_json::Value>> {
    let image = match engine.images().resolve(name) {
        Ok(i) => i,
        Err(hako_engine::hako_image::Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let raw: serde_json::Value = serde_json::from_slice(&engine.images().read_blob(&image.id)?)?;
    let repo_digests: Vec<String> = engine
        .images()
        .repo_digests(&image.id)?
        .into_iter()
        .map(|d| match d.split_once('@') {
            Some((r, dg)) => match Reference::parse(r) {
                Ok(r) => format!("{}@{dg}", r.familiar_repository()),
                Err(_) => d.clone(),
            },
            None => d,
        })
        .collect();
    let mut doc = serde_json::json!({
        "Id": image.id,
        "RepoTags": image.repo_tags.iter().map(Reference::familiar).collect::<Vec<_>>(),
        "RepoDigests": repo_digests,
        "Parent": parents.get(&image.id).map_or("", String::as_str),
        "Comment": raw["history"].as_array().and_then(|h| h.last()).and_then(|h| h["comment"].as_str()).unwrap_or(""),
        "Created": raw["created"].as_str().unwrap_or("0001-01-01T00:00:00Z"),
        "DockerVersion": raw["docker_version"].as_str().unwrap_or(""),
        "Author": raw["author"].as_str().unwrap_or(""),
        "Config": raw.get("config").cloned().unwrap_or(serde_json::Value::Null),
        "Architecture": raw["architecture"],
        "Os": raw["os"],
        "Size": image.size,
        "GraphDriver": {
            "Data": {
                "LowerDir": image.layers.iter().rev().map(|p| p.display().to_string()).collect::<Vec<_>>().join(":"),
            },
            "Name": "overlay",
        },
        "RootFS": {
            "Type": "layers",
            "Layers": raw["rootfs"]["diff_ids"],
        },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    });
    if let Some(v) = raw["variant"].as_str() {
        doc["Variant"] = v.into();
    }
    Ok(Some(doc))
}

pub fn login(a: LoginArgs) -> Result<i32, Failure> {
    let domain = hako_registry::login_domain(a.server.as_deref());
    let username = match a.username {
        Some(u) => u,
        None => {
            eprint!("Username: ");
            let mut u = String::new();
            std::io::stdin().lock().read_line(&mut u)?;
            u.trim().to_string()
        }
    };
    let password = match (a.password, a.password_stdin) {
        (Some(_), true) => {
            return Err(
                anyhow::anyhow!("--password and --password-stdin are mutually exclusive").into(),
            )
        }
        (Some(p), false) => {
            eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p
        }
        (None, _) => {
            let mut p = String::new();
            std::io::stdin().lock().read_line(&mut p)?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
    };
    if username.is_empty() || password.is_empty() {
        return Err(anyhow::anyhow!("username and password are required").into());
    }
    let creds = hako_registry::Credentials { username, password };
    let path = hako_registry::login(&domain, &creds).with_context(|| format!("login {domain}"))?;
    eprintln!(
        "WARNING! Your password will be stored unencrypted in {}.",
        path.display()
    );
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(a: LogoutArgs) -> Result<i32, Failure> {
    let domain = hako_registry::login_domain(a.server.as_deref());
    let shown = if domain == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        domain.clone()
    };
    if hako_registry::logout(&domain)? {
        println!("Removing login credentials for {shown}");
    } else {
        println!("Not logged in to {shown}");
    }
    Ok(0)
}

#[derive(Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
    /// Provide filter values (e.g. "until=24h", "label=k=v", "label!=k")
    #[arg(long, value_parser = crate::usage::filter_arg)]
    filter: Vec<String>,
}

pub fn prune(root: &Path, a: PruneArgs) -> Result<i32, Failure> {
    let filter = image_filter::PruneFilter::parse(&a.filter, std::time::SystemTime::now())?;
    if !a.force {
        println!(
            "WARNING! This will remove all {}.",
            if a.all {
                "images without at least one container associated to them"
            } else {
                "dangling images"
            }
        );
        print!("Are you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
            return Ok(0);
        }
    }
    let engine = open(root)?;
    let conn = engine.images().conn();
    let parents = hako_build::cache::parents(conn)?;
    let (events, freed) = engine.image_prune_where(a.all, &|img| filter.accepts(img), &parents)?;
    hako_build::cache::forget_missing(conn)?;
    let mut out = std::io::stdout().lock();
    if !events.is_empty() {
        writeln!(out, "Deleted Images:")?;
        for e in events {
            match e {
                RemoveEvent::Untagged(r) => writeln!(out, "untagged: {r}")?,
                RemoveEvent::Deleted(id) => writeln!(out, "deleted: {id}")?,
            }
        }
        writeln!(out)?;
    }
    writeln!(out, "Total reclaimed space: {}", fmt::human_size(freed))?;
    Ok(0)
}

#[derive(clap::Subcommand)]
pub enum ManifestCommand {
    /// Display an image manifest, or manifest list, from a registry
    Inspect {
        /// NAME[:TAG|@DIGEST]
        image: String,
    },
}

pub fn manifest(c: ManifestCommand) -> Result<i32, Failure> {
    match c {
        ManifestCommand::Inspect { image } => {
            let reference = parse_ref(&image)?;
            let raw = hako_registry::fetch_raw_manifest(&reference)
                .with_context(|| format!("manifest inspect {}", reference.familiar()))?;
            println!("{}", go_json_indent(&raw));
            Ok(0)
        }
    }
}

/// Go's `json.Indent(buf, raw, "", "\t")`, which `docker manifest inspect` prints: the
/// registry's bytes re-indented, key order and number spelling untouched. `raw` must be
/// valid JSON (the registry client checked it).
fn go_json_indent(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::with_capacity(raw.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.trim().chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push('\t');
        }
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    // Go keeps empty objects and arrays on one line.
                    out.push(chars.next().unwrap_or(']'));
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::go_json_indent;

    #[test]
    fn indents_like_go() {
        let raw = br#"{"schemaVersion":2, "layers":[{"digest":"sha256:a,b\"}"}],"annotations":{},"x":[]}"#;
        assert_eq!(
            go_json_indent(raw),
            "{\n\t\"schemaVersion\": 2,\n\t\"layers\": [\n\t\t{\n\t\t\t\"digest\": \"sha256:a,b\\\"}\"\n\t\t}\n\t],\n\t\"annotations\": {},\n\t\"x\": []\n}"
        );
    }
}

#[derive(Args)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<String>,
    /// Container
    container: String,
}

pub fn export(root: &Path, a: ExportArgs) -> Result<i32, Failure> {
    let engine = open(root)?;
    write_archive(a.output.as_deref(), |w| {
        engine.export(&a.container, w).map_err(anyhow::Error::from)
    })?;
    Ok(0)
}

/// Writes an archive (`save`, `export`) to `output`, or to stdout for none or `-`.
///
/// A file is written aside and renamed once synced, so a failed write never leaves a truncated
/// archive under the name asked for. A terminal on stdout is refused, as docker does.
fn write_archive(
    output: Option<&str>,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    match output {
        Some(path) if path != "-" => {
            let tmp = format!("{path}.hako-tmp");
            let f = std::fs::File::create(&tmp).with_context(|| format!("create {tmp}"))?;
            let mut w = std::io::BufWriter::with_capacity(1 << 20, &f);
            let res = write(&mut w)
                .and_then(|_| w.flush().with_context(|| format!("write {tmp}")))
                .and_then(|_| f.sync_all().with_context(|| format!("write {tmp}")))
                .and_then(|_| std::fs::rename(&tmp, path).with_context(|| format!("write {path}")));
            if res.is_err() {
                drop(w);
                let _ = std::fs::remove_file(&tmp);
            }
            res
        }
        _ => {
            let stdout = std::io::stdout();
            if std::io::IsTerminal::is_terminal(&stdout) {
                anyhow::bail!(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                );
            }
            let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
            write(&mut w)?;
            w.flush().context("write to stdout")
        }
    }
}
