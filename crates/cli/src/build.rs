//! `hako build` and `hako builder prune`.

use crate::{open, Failure};
use anyhow::Context as _;
use hako_engine::hako_image::Reference;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Options of `hako build`.
#[derive(clap::Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format (repeatable)
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// Name of the Dockerfile (default: PATH/Dockerfile)
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// Set build-time variables (NAME=VALUE, or NAME to take it from the environment)
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// Set the target build stage to build
    #[arg(long)]
    target: Option<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    no_cache: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    quiet: bool,
    /// Type of progress output: auto or plain (the step-by-step text), quiet (as -q); tty
    /// and rawjson are BuildKit's displays, which hako's builder does not have
    #[arg(long, value_parser = ["auto", "plain", "tty", "quiet", "rawjson"])]
    progress: Option<String>,
    /// Set metadata for an image (KEY=VALUE)
    #[arg(long = "label")]
    labels: Vec<String>,
    /// Write the image ID to the file
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Remove intermediate containers after a successful build (--rm=false keeps them; a
    /// failed step's container is always removed)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    rm: bool,
    /// Always remove intermediate containers
    #[arg(long)]
    force_rm: bool,
    /// Images to consider as cache sources (pulled when missing)
    #[arg(long = "cache-from")]
    cache_from: Vec<String>,
    /// Always attempt to pull a newer version of the base images
    #[arg(long)]
    pull: bool,
    /// Set the target platform for the build (another architecture runs its RUN steps under a registered emulator)
    #[arg(long)]
    platform: Option<String>,
    /// Secret to expose to the build (id=ID,src=FILE or id=ID,env=VAR), for RUN
    /// --mount=type=secret
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// SSH agent socket to expose to the build (default|ID[=SOCKET]; default uses
    /// $SSH_AUTH_SOCK), for RUN --mount=type=ssh
    #[arg(long = "ssh")]
    ssh: Vec<String>,
    /// Build reproducibly: image and history times, and file times in new layers, from this
    /// Unix time (default: $SOURCE_DATE_EPOCH, or --build-arg SOURCE_DATE_EPOCH=N)
    #[arg(long = "source-date-epoch", value_name = "SECONDS")]
    source_date_epoch: Option<String>,
    /// Build context: a directory, or - to read a Dockerfile from stdin
    path: String,
}

/// `hako builder` subcommands.
#[derive(clap::Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune {
        /// Remove all unused build cache, not just dangling ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
        /// Provide filter values (e.g. "until=24h")
        #[arg(long, value_parser = crate::usage::filter_arg)]
        filter: Vec<String>,
        /// Amount of disk space to keep for cache
        #[arg(long)]
        keep_storage: Option<String>,
    },
}

/// `hako build`.
pub fn build(root: &Path, a: BuildArgs) -> Result<i32, Failure> {
    let quiet = match a.progress.as_deref() {
        Some(p @ ("tty" | "rawjson")) => {
            return Err(anyhow::anyhow!(
                "--progress {p} is BuildKit's display, which hako's builder does not have: use --progress plain (or auto), or quiet"
            )
            .into())
        }
        Some("quiet") => true,
        _ => a.quiet,
    };
    let mut tags = Vec::new();
    for t in &a.tags {
        let r = Reference::parse(t)
            .map_err(|e| anyhow::anyhow!("invalid argument \"{t}\" for \"-t, --tag\" flag: {e}"))?;
        let r = if r.tag().is_none() && r.digest().is_none() {
            r.with_tag("latest")?
        } else {
            r
        };
        tags.push(r);
    }
    let mut build_args = BTreeMap::new();
    for b in &a.build_args {
        match b.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                // `--build-arg NAME` takes the value from our environment, or is dropped.
                if let Ok(v) = std::env::var(b) {
                    build_args.insert(b.clone(), v);
                }
            }
        }
    }
    let epoch_env = std::env::var(hako_build::epoch::NAME).ok();
    let source_date_epoch = hako_build::epoch::resolve(
        a.source_date_epoch.as_deref(),
        build_args.get(hako_build::epoch::NAME).map(String::as_str),
        epoch_env.as_deref(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    if let Some(e) = source_date_epoch {
        // As buildx passes it: an `ARG SOURCE_DATE_EPOCH` sees the build's epoch.
        build_args.insert(hako_build::epoch::NAME.to_string(), e.to_string());
    }
    let mut secrets = hako_build::mounts::Secrets::new();
    for s in &a.secrets {
        let (id, secret) = hako_build::mounts::parse_secret(s, |k| std::env::var_os(k))
            .map_err(|e| anyhow::anyhow!(e))?;
        secrets.insert(id, secret);
    }
    let mut ssh = hako_build::mounts::SshAgents::new();
    for s in &a.ssh {
        let (id, socket) = hako_build::mounts::parse_ssh(s, |k| std::env::var_os(k))
            .map_err(|e| anyhow::anyhow!(e))?;
        ssh.insert(id, socket);
    }
    let mut labels = Vec::new();
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.push((k.to_string(), v.to_string()));
    }

    if let Some(p) = &a.platform {
        hako_build::check_platform(p).map_err(|e| anyhow::anyhow!(e))?;
    }
    let prepared = hako_build::source::prepare(
        &root.join("tmp"),
        &a.path,
        a.file.as_deref(),
        &mut std::io::stdin().lock(),
    )?;
    // Moved out field by field: the rest (a tar context's directory) lives until the build ends.
    let (dockerfile, context) = (prepared.dockerfile, prepared.context);

    let engine = open(root)?;
    if !quiet {
        println!("Sending build context to hako  {}", context.human_size());
    }
    let mut cache_from = Vec::new();
    for name in &a.cache_from {
        if let Ok(i) = engine.images().resolve(name) {
            cache_from.push(i.id);
            continue;
        }
        // Docker's classic builder only warns about a cache source it cannot get.
        let got = pull_base(root, name, a.platform.as_deref(), &mut |_| Ok(()))
            .and_then(|_| Ok(engine.images().resolve(name)?.id));
        match got {
            Ok(id) => cache_from.push(id),
            Err(e) => eprintln!("WARNING: --cache-from {name}: {e:#}"),
        }
    }
    let opts = hako_build::BuildOptions {
        cache_from,
        dockerfile,
        context,
        build_args,
        target: a.target.clone(),
        no_cache: a.no_cache,
        labels,
        tags: tags.clone(),
        quiet,
        secrets,
        ssh,
        pull: a.pull,
        keep_containers: !a.rm && !a.force_rm,
        source_date_epoch,
        platform: a.platform.clone(),
        fetch: Some({
            let root = root.to_path_buf();
            Box::new(
                move |name: &str,
                      platform: Option<&str>,
                      progress: &mut hako_engine::images::ProgressSink<'_>| {
                    pull_base(&root, name, platform, progress).map_err(|e| format!("{e:#}"))
                },
            )
        }),
    };
    let mut stdout = std::io::stdout();
    let mut out = hako_build::events::text_to(&mut stdout);
    let result = hako_build::build(&engine, &opts, &mut out);
    match result {
        Ok(done) => {
            if !done.unused_args.is_empty() && !quiet {
                println!(
                    "[Warning] One or more build-args [{}] were not consumed",
                    done.unused_args.join(" ")
                );
            }
            let hex = done.image_id.trim_start_matches("sha256:");
            if quiet {
                println!("{}", done.image_id);
            } else {
                println!("Successfully built {}", &hex[..12]);
                for t in &tags {
                    println!("Successfully tagged {}", t.familiar());
                }
            }
            if let Some(p) = &a.iidfile {
                std::fs::write(p, &done.image_id)
                    .with_context(|| format!("write the image ID to {}", p.display()))?;
            }
            // The image is built: a failing collection is worth a warning, not a failed build.
            if let Err(e) = engine.build_cache_collect(None, Some(&done.image_id)) {
                eprintln!("WARNING: build cache collection: {e:#}");
            }
            Ok(0)
        }
        // Docker's CLI ends an interrupted build silently with 128 + the signal (130 for
        // Ctrl-C); the step's container is already gone.
        Err(e @ hako_build::Error::Interrupted { .. }) => Ok(e.exit_code()),
        Err(e) => Err(Failure {
            code: e.exit_code(),
            err: e.into(),
        }),
    }
}

/// Pulls a base image for `FROM` (missing locally, or `--pull`), reporting to `progress`.
fn pull_base(
    root: &Path,
    name: &str,
    platform: Option<&str>,
    progress: &mut hako_engine::images::ProgressSink<'_>,
) -> anyhow::Result<()> {
    let platform = platform
        .map(hako_engine::images::Platform::parse)
        .transpose()?;
    let reference = Reference::parse(name)?;
    let reference = if reference.tag().is_none() && reference.digest().is_none() {
        reference.with_tag("latest")?
    } else {
        reference
    };
    let engine = open(root)?;
    let opts = hako_engine::images::PullOptions { platform };
    engine
        .pull(&reference, &opts, progress)
        .with_context(|| format!("pull {}", reference.familiar()))?;
    Ok(())
}

/// `hako builder prune`.
pub fn builder(root: &Path, c: BuilderCommand) -> Result<i32, Failure> {
    match c {
        BuilderCommand::Prune {
            all,
            force,
            filter,
            keep_storage,
        } => {
            let mut older_than = None;
            for f in &filter {
                match f.split_once('=') {
                    Some(("until", d)) => {
                        // The grammar of every `until=` (`24h`, `2d`, a time).
                        let t = crate::fmt::parse_time(d, hako_base::time::now_nanos())
                            .map_err(|e| anyhow::anyhow!("invalid filter 'until={d}': {e}"))?;
                        older_than = Some(t.div_euclid(1_000_000_000));
                    }
                    _ => return Err(anyhow::anyhow!("invalid filter '{f}'").into()),
                }
            }
            let keep = keep_storage
                .as_deref()
                .map(|s| hako_engine::options::parse_size(s, "--keep-storage"))
                .transpose()?
                .map(|n| n.max(0) as u64);
            let what = if all { "all" } else { "all dangling" };
            if !force
                && !crate::fmt::confirm(&format!("This will remove {what} build cache. "))
                    .context("ask for confirmation")?
            {
                return Ok(0);
            }
            let engine = open(root)?;
            let report = match keep {
                // `--keep-storage`: the same collection a build runs, down to that size.
                Some(max) => engine.build_cache_collect(Some(max), None)?,
                None => engine.build_cache_prune(older_than, all)?,
            };
            let (deleted, freed) = (report.deleted, report.space_reclaimed);
            if !deleted.is_empty() {
                println!("Deleted build cache objects:");
                for d in &deleted {
                    println!("{}", d.trim_start_matches("sha256:"));
                }
                println!();
            }
            println!(
                "Total reclaimed space: {}",
                hako_build::context::human_size(freed)
            );
            Ok(0)
        }
    }
}
