//! Image commands: import, images, rmi, tag, pull, push, save, load,
//! history, image inspect, login, logout.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::Context;
use clap::Args;
use hako_docker::image::{ImageFilters, PruneFilters};
use hako_engine::hako_image::{ImportOptions, Reference, RemoveEvent};
use hako_engine::images::{self, ImportSource};
use hako_engine::views::image::ImageListOptions;
use tabwriter::TabWriter;

use crate::{fmt, open, short_id, template, Failure};

#[derive(Args)]
pub struct ImportArgs {
    /// Apply a Dockerfile instruction to the image (ENV, CMD, ENTRYPOINT, WORKDIR, USER, ...)
    #[arg(short = 'c', long = "change")]
    change: Vec<String>,
    /// Commit message recorded in the image history
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Platform to record for the image (os/arch[/variant]); this host's by default
    #[arg(long)]
    platform: Option<String>,
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
    #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::images))]
    images: Vec<String>,
}

#[derive(Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short, long)]
    all_tags: bool,
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
pub struct SearchArgs {
    /// Filter output based on conditions provided (stars=N, is-official=true|false,
    /// is-automated=true|false)
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format output using a Go template, or json
    #[arg(long)]
    format: Option<String>,
    /// Max number of search results (1 to 100)
    #[arg(long, default_value_t = 25)]
    limit: u32,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// [REGISTRY/]TERM
    term: String,
}

#[derive(Args)]
pub struct PushArgs {
    /// Suppress verbose output
    #[arg(short, long)]
    quiet: bool,
    /// Sign the image with the sigstore private key at PATH (stored as the sha256-<digest>.sig tag)
    #[arg(long, value_name = "PATH")]
    sign_by_sigstore_private_key: Option<std::path::PathBuf>,
    /// Sign the image with the GPG key FINGERPRINT (stored in registries.d's lookaside-staging)
    #[arg(long, value_name = "FINGERPRINT")]
    sign_by: Option<String>,
    /// Read the passphrase of the signing key from PATH
    #[arg(long, value_name = "PATH")]
    sign_passphrase_file: Option<std::path::PathBuf>,
    /// NAME[:TAG]
    #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::images))]
    name: String,
}

#[derive(Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<String>,
    /// Images
    #[arg(required = true)]
    #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::images))]
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
    #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::images))]
    image: String,
}

#[derive(Args)]
pub struct InspectArgs {
    /// Format output using a Go template
    #[arg(short, long)]
    format: Option<String>,
    /// Images
    #[arg(required = true)]
    #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::images))]
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
    let platform = a
        .platform
        .as_deref()
        .map(|p| {
            images::Platform::parse(p).map(|p| hako_engine::hako_image::ImagePlatform {
                os: p.os,
                architecture: p.architecture,
                variant: p.variant,
            })
        })
        .transpose()?;
    let engine = open(root)?;
    let reference = a.reference.as_deref().map(parse_ref).transpose()?;
    let opts = ImportOptions {
        reference,
        changes: a.change,
        message: a.message,
        source: a.file.clone(),
        platform,
    };
    let mut stdin = std::io::stdin().lock();
    let source = if a.file == "-" {
        ImportSource::Reader(&mut stdin)
    } else if a.file.starts_with("http://") || a.file.starts_with("https://") {
        ImportSource::Url(&a.file)
    } else {
        ImportSource::File(Path::new(&a.file))
    };
    let image = engine.image_import(source, &opts)?;
    println!("{}", image.id);
    Ok(0)
}

pub fn images(root: &Path, a: ImagesArgs) -> Result<i32, Failure> {
    let mut filters = ImageFilters::parse(&a.filter)?;
    if let Some(r) = &a.reference {
        filters.add_reference(r)?;
    }
    let engine = open(root)?;
    let bounds = filters.bounds(&engine)?;
    let list = engine.image_list(&ImageListOptions {
        all: a.all,
        labels: filters.needs_labels(),
        digests: a.digests || a.format.is_some(),
    })?;
    let mut rows = Vec::new();
    let mut ids = Vec::new();
    for img in &list {
        let Some(tags) = filters.matches(img, bounds) else {
            continue;
        };
        ids.push(img.id.clone());
        let digest_of = |repo: &str| -> String {
            img.repo_digests
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
                "CreatedAt": img.created.map(hako_docker::format::created_at).unwrap_or_default(),
                "CreatedSince": img.created.map(|c| hako_docker::format::time_ago(Some(c), hako_base::time::now_nanos())).unwrap_or_else(|| "N/A".into()),
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
    let tmpl = template::Format::parse_list(a.format.as_deref().unwrap_or(""), default_table)?;
    let items: Vec<_> = rows
        .iter()
        .map(template::TemplateValue::from_json)
        .collect();
    let text = tmpl.render_list(template::IMAGE_HEADERS, &items)?;
    let mut out = stdout;
    out.write_all(text.as_bytes())?;
    Ok(0)
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
    let reference = parse_ref(target)?;
    engine.image_tag(source, &reference)?;
    Ok(0)
}

/// A progress sink for a pull or push on stdout: Docker's display on a terminal, plain lines
/// otherwise, nothing with `quiet`.
fn progress_lines(
    quiet: bool,
    out: &mut dyn Write,
) -> impl FnMut(images::Progress) -> std::io::Result<()> + '_ {
    crate::progress::sink(quiet, crate::progress::stdout_is_tty(), out)
}

pub fn pull(root: &Path, a: PullArgs) -> Result<i32, Failure> {
    let reference = parse_ref(&a.name)?;
    let platform = a
        .platform
        .as_deref()
        .map(images::Platform::parse)
        .transpose()?;
    let engine = open(root)?;
    let mut stdout = std::io::stdout().lock();
    // Docker says this only when the user typed neither tag nor digest.
    let bare =
        !a.name.contains('@') && !a.name[a.name.rfind('/').map_or(0, |i| i + 1)..].contains(':');
    if bare && !a.quiet && !a.all_tags {
        writeln!(stdout, "Using default tag: latest")?;
    }
    let opts = images::PullOptions { platform };
    if a.all_tags {
        return pull_all_tags(&engine, &a, &reference, &opts, &mut stdout);
    }
    engine
        .pull(&reference, &opts, &mut progress_lines(a.quiet, &mut stdout))
        .with_context(|| format!("pull {}", reference.familiar()))?;
    writeln!(stdout, "{reference}")?;
    Ok(0)
}

/// `pull --all-tags`: every tag the registry lists for the repository, each with its own
/// progress, then one status line for the repository, as Docker prints it.
fn pull_all_tags(
    engine: &hako_engine::Engine,
    a: &PullArgs,
    reference: &hako_engine::hako_image::Reference,
    opts: &images::PullOptions,
    stdout: &mut dyn Write,
) -> Result<i32, Failure> {
    let named = &a.name[a.name.rfind('/').map_or(0, |i| i + 1)..];
    if named.contains(':') || a.name.contains('@') {
        return Err(anyhow::anyhow!("tag can't be used with --all-tags/-a").into());
    }
    let repository = reference.familiar_repository();
    let tags = hako_registry::list_tags(reference)
        .with_context(|| format!("list the tags of {repository}"))?;
    if tags.is_empty() {
        return Err(anyhow::anyhow!("{repository}: the registry lists no tags").into());
    }
    let mut downloaded = false;
    for tag in &tags {
        let r = reference.with_tag(tag)?;
        let mut sink = |p: images::Progress| match p {
            // One status line for the whole repository, after the last tag.
            images::Progress::PullDone { downloaded: d, .. } => {
                downloaded |= d;
                Ok(())
            }
            p => match p.line() {
                Some(l) if !a.quiet => writeln!(stdout, "{l}"),
                _ => Ok(()),
            },
        };
        engine
            .pull(&r, opts, &mut sink)
            .with_context(|| format!("pull {}", r.familiar()))?;
    }
    if !a.quiet {
        if downloaded {
            writeln!(stdout, "Status: Downloaded newer image for {repository}")?;
        } else {
            writeln!(stdout, "Status: Image is up to date for {repository}")?;
        }
    }
    writeln!(stdout, "{}", reference.repository())?;
    Ok(0)
}

pub fn push(root: &Path, a: PushArgs) -> Result<i32, Failure> {
    let reference = parse_ref(&a.name)?;
    let engine = open(root)?;
    let mut stdout = std::io::stdout().lock();
    let sign = hako_registry::SignOptions {
        sigstore_private_key: a.sign_by_sigstore_private_key,
        gpg_fingerprint: a.sign_by,
        passphrase_file: a.sign_passphrase_file,
    };
    let (_, signed) = engine
        .push_signed(&reference, &sign, &mut progress_lines(a.quiet, &mut stdout))
        .with_context(|| format!("push {}", reference.familiar()))?;
    if !a.quiet {
        for line in signed {
            writeln!(stdout, "{line}")?;
        }
    }
    if a.quiet {
        writeln!(stdout, "{reference}")?;
    }
    Ok(0)
}

pub fn save(root: &Path, a: SaveArgs) -> Result<i32, Failure> {
    let engine = open(root)?;
    // Resolved before the output file is created, so a bad name leaves no file behind.
    for name in &a.images {
        engine.images().resolve(name)?;
    }
    write_archive(a.output.as_deref(), |w| {
        engine.image_save(&a.images, w).map_err(anyhow::Error::from)
    })?;
    Ok(0)
}

pub fn load(root: &Path, a: LoadArgs) -> Result<i32, Failure> {
    let engine = open(root)?;
    let loaded = match a.input.as_deref() {
        Some(p) if p != "-" => {
            let mut f = std::fs::File::open(p).with_context(|| format!("open {p}"))?;
            engine.image_load(&mut f)?
        }
        _ => engine.image_load(&mut std::io::stdin().lock())?,
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

/// Docker's default `history` table, for `--format table`.
const HISTORY_TABLE: &str =
    "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

pub fn history(root: &Path, a: HistoryArgs) -> Result<i32, Failure> {
    let engine = open(root)?;
    let entries = engine.image_history(&a.image)?;
    let id_of = |h: &hako_engine::views::image::HistoryEntry| match &h.id {
        Some(id) if a.no_trunc => id.clone(),
        Some(id) => short_id(id).to_string(),
        None => "<missing>".to_string(),
    };
    let created_since = |h: &hako_engine::views::image::HistoryEntry| {
        h.created_nanos
            .map(|n| hako_docker::format::time_ago(Some(n), hako_base::time::now_nanos()))
            .unwrap_or_else(|| "N/A".into())
    };
    if let (Some(f), false) = (&a.format, a.quiet) {
        let tmpl = template::Format::parse_list(f, HISTORY_TABLE)?;
        let mut items = Vec::with_capacity(entries.len());
        for h in &entries {
            // Docker's `history` fields; CreatedBy is truncated like the table unless --no-trunc.
            let item = serde_json::json!({
                "ID": id_of(h),
                "CreatedAt": h.created.clone().unwrap_or_default(),
                "CreatedSince": created_since(h),
                "CreatedBy": if a.no_trunc { h.created_by.clone() } else { fmt::ellipsis(&h.created_by, 45) },
                "Size": fmt::human_size(h.size),
                "Comment": h.comment,
            });
            items.push(template::TemplateValue::from_json(&item));
        }
        let text = tmpl.render_list(template::HISTORY_HEADERS, &items)?;
        std::io::stdout().lock().write_all(text.as_bytes())?;
        return Ok(0);
    }
    let mut out = TabWriter::new(std::io::stdout().lock())
        .minwidth(7)
        .padding(3);
    if !a.quiet {
        writeln!(out, "IMAGE\tCREATED\tCREATED BY\tSIZE\tCOMMENT")?;
    }
    for h in &entries {
        let id = id_of(h);
        if a.quiet {
            writeln!(out, "{id}")?;
            continue;
        }
        let by = h.created_by.replace('\t', " ");
        let by = if a.no_trunc {
            by
        } else {
            fmt::ellipsis(&by, 45)
        };
        writeln!(
            out,
            "{id}\t{}\t{by}\t{}\t{}",
            created_since(h),
            fmt::human_size(h.size),
            h.comment
        )?;
    }
    out.flush()?;
    Ok(0)
}

pub fn inspect(root: &Path, a: InspectArgs) -> Result<i32, Failure> {
    let tmpl = crate::inspect_format(a.format.as_deref())?;
    let engine = open(root)?;
    let mut docs = Vec::new();
    let mut code = 0;
    for name in &a.images {
        match image_doc(&engine, name) {
            Ok(Some(doc)) => docs.push(doc),
            Ok(None) => {
                eprintln!("hako: No such image: {name}");
                code = 1;
            }
            Err(e) => {
                eprintln!("hako: {e:#}");
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
    name: &str,
) -> anyhow::Result<Option<serde_json::Value>> {
    match engine.image_inspect(name) {
        Ok(i) => Ok(Some(hako_docker::image::inspect_json(&i))),
        Err(hako_engine::Error::Image(hako_engine::hako_image::Error::NotFound(_))) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn login(a: LoginArgs) -> Result<i32, Failure> {
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
    let creds = images::Credentials { username, password };
    let server = a.server.as_deref();
    let (_, path) = images::login(server, &creds)
        .with_context(|| format!("login {}", hako_engine::hako_registry::login_domain(server)))?;
    eprintln!(
        "WARNING! Your password will be stored unencrypted in {}.",
        path.display()
    );
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(a: LogoutArgs) -> Result<i32, Failure> {
    let (domain, had) = images::logout(a.server.as_deref())?;
    let shown = if domain == "docker.io" {
        "https://index.docker.io/v1/".to_string()
    } else {
        domain
    };
    if had {
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
    let now = hako_base::time::now_nanos();
    let filter = PruneFilters::parse(
        &a.filter,
        now,
        crate::fmt::local_offset(now.div_euclid(1_000_000_000)),
    )?;
    if !a.force {
        let warning = if a.all {
            "This will remove all images without at least one container associated to them.\n"
        } else {
            "This will remove all dangling images.\n"
        };
        if !crate::fmt::confirm(warning)? {
            return Ok(0);
        }
    }
    let engine = open(root)?;
    let report = engine.image_prune(a.all, &|img| filter.accepts(img))?;
    let (events, freed) = (report.events, report.space_reclaimed);
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
            let raw = images::fetch_manifest(&reference)
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
    #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
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

/// `search [REGISTRY/]TERM`: the index's `/v1/search` (Docker Hub's for a term without a
/// registry), filtered and printed as Docker prints it.
pub fn search(a: SearchArgs) -> Result<i32, Failure> {
    if !(1..=100).contains(&a.limit) {
        return Err(anyhow::anyhow!("limit {} is outside the range of [1, 100]", a.limit).into());
    }
    let (mut stars, mut official, mut automated) = (0u64, None, None);
    for f in &a.filter {
        let bad = || anyhow::anyhow!("invalid filter '{f}'");
        let (k, v) = f.split_once('=').ok_or_else(bad)?;
        let flag = || match v {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            _ => Err(anyhow::anyhow!("invalid filter '{k}={v}'")),
        };
        match k {
            "stars" => {
                stars = v
                    .parse()
                    .map_err(|_| anyhow::anyhow!("invalid filter 'stars={v}'"))?
            }
            "is-official" => official = Some(flag()?),
            "is-automated" => automated = Some(flag()?),
            _ => return Err(bad().into()),
        }
    }
    // Docker's split: a first component that looks like a host names the index.
    let (index, term) = match a.term.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => (host, rest),
        _ => ("docker.io", a.term.as_str()),
    };
    let results = hako_registry::search(index, term, a.limit)?;
    let mark = |b: bool| if b { "[OK]" } else { "" };
    let rows: Vec<serde_json::Value> = results
        .iter()
        .filter(|r| {
            r.star_count >= stars
                && official.is_none_or(|o| o == r.is_official)
                && automated.is_none_or(|o| o == r.is_automated)
        })
        .map(|r| {
            let description = r.description.replace('\n', " ");
            serde_json::json!({
                "Name": r.name,
                "Description": if a.no_trunc { description } else { hako_docker::format::ellipsis(&description, 45) },
                "StarCount": r.star_count.to_string(),
                "IsOfficial": mark(r.is_official),
                "IsAutomated": mark(r.is_automated),
            })
        })
        .collect();
    let tmpl = template::Format::parse_list(
        a.format.as_deref().unwrap_or(""),
        "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}",
    )?;
    let rows: Vec<template::TemplateValue> = rows
        .iter()
        .map(template::TemplateValue::from_json)
        .collect();
    let text = tmpl.render_list(template::SEARCH_HEADERS, &rows)?;
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(0)
}
