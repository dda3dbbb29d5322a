//! `hako-runtime`: runc's command line over hako's OCI runtime library, so containerd, Docker
//! and Podman can drive hako containers the way they drive runc.

mod commands;
mod defaults;
mod hooks;
mod state;
mod update;

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "hako-runtime",
    version,
    about = "Run OCI containers with hako (runc-compatible command line)"
)]
struct Cli {
    /// Directory for container state [default: $XDG_RUNTIME_DIR/hako-runtime for an ordinary
    /// user, else /run/hako-runtime]
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// Append errors (and with --debug, progress) to this file instead of only stderr
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Format of --log lines
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log progress as well as errors
    #[arg(long, global = true)]
    debug: bool,
    /// Use the systemd cgroup driver (not available)
    #[arg(long, global = true)]
    systemd_cgroup: bool,
    /// Path to criu (runc's flag, which containerd's shim passes to every command when its
    /// CriuPath option is set); only checkpoint and restore would use it, and both are refused
    #[arg(long, global = true, value_name = "PATH")]
    criu: Option<PathBuf>,
    /// Rootless mode: auto, true or false
    #[arg(long, global = true, default_value = "auto", num_args = 0..=1, default_missing_value = "true")]
    rootless: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Args, Clone, Default)]
pub struct CreateArgs {
    /// Bundle directory (holding config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pseudo-terminal master of a `terminal: true` process
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Write the container process's pid to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Enter the root with MS_MOVE + chroot instead of pivot_root
    #[arg(long)]
    pub no_pivot: bool,
    /// Keep the caller's session keyring
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass descriptors 3..3+N-1 on to the container
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container ID
    pub id: String,
}

#[derive(Args, Clone, Default)]
pub struct ExecArgs {
    /// JSON file with the OCI process to run (instead of COMMAND)
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal (needs --console-socket)
    #[arg(short, long)]
    pub tty: bool,
    /// Do not wait for the process
    #[arg(short, long)]
    pub detach: bool,
    /// Working directory
    #[arg(long)]
    pub cwd: Option<String>,
    /// Extra environment variables (NAME=VALUE)
    #[arg(short, long)]
    pub env: Vec<String>,
    /// User as uid[:gid]
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional capabilities
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs
    #[arg(long)]
    pub no_new_privs: bool,
    /// Write the process's pid to this file
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pseudo-terminal master
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Pass descriptors 3..3+N-1 on to the process
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Container ID
    pub id: String,
    /// Command and arguments (unless --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Create a container: set it up, stopped just before running its process
    Create(CreateArgs),
    /// Run the process of a created container
    Start { id: String },
    /// Create and start a container; without -d, wait for it and exit with its status
    Run {
        /// Do not wait for the container
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits (foreground only)
        #[arg(long)]
        keep: bool,
        #[command(flatten)]
        create: CreateArgs,
    },
    /// Print the container's OCI state
    State { id: String },
    /// Send a signal (name or number, default SIGTERM) to the container's process
    Kill {
        /// Signal every process in the container's cgroup
        #[arg(short, long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a stopped (or, with --force, any) container and everything it holds
    Delete {
        /// Kill the container first if it is still running
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List containers
    #[command(alias = "ls")]
    List {
        /// table or json
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Print only the IDs
        #[arg(short, long)]
        quiet: bool,
    },
    /// Write a default config.json into the bundle directory
    Spec {
        /// Bundle directory
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        // `spec --rootless` is the global --rootless: one flag cannot be defined twice.
    },
    /// Print what this runtime supports, as the OCI features JSON
    Features,
    /// List the container's processes
    Ps {
        /// table or json
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Options for ps(1) (table format; default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Freeze every process of the container
    Pause { id: String },
    /// Thaw a paused container
    Resume { id: String },
    /// Run a process in a running container
    Exec(ExecArgs),
    /// Change a running container's resource limits
    Update(update::UpdateArgs),
    /// Print a container's statistics, once (--stats) or every --interval with OOM events
    Events(update::EventsArgs),
    /// Checkpoint a running container (not supported: hako-runtime has no CRIU integration)
    Checkpoint(Unsupported),
    /// Restore a container from a checkpoint (not supported: hako-runtime has no CRIU
    /// integration)
    Restore(Unsupported),
}

/// Whatever runc's command of that name takes; refused before it is looked at.
#[derive(Args)]
struct Unsupported {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
}

/// Where errors (and debug lines) go besides stderr.
pub(crate) struct Logger {
    file: Option<std::fs::File>,
    json: bool,
    debug: bool,
}

impl Logger {
    /// A warning goes where runc's go: into the --log file when there is one, else stderr.
    /// Under containerd's shim, stderr of `create` and `exec` is the container's own, and a
    /// warning there would end up in the container's log.
    fn warn(&self, msg: &str) {
        if self.file.is_some() {
            self.log("warning", msg);
        } else {
            eprintln!("hako-runtime: warning: {msg}");
        }
    }

    fn log(&self, level: &str, msg: &str) {
        if level == "debug" && !self.debug {
            return;
        }
        let Some(mut f) = self.file.as_ref() else {
            return;
        };
        let line = if self.json {
            // containerd's shim parses these lines to report why runc failed.
            format!(
                "{}\n",
                serde_json::json!({"level": level, "msg": msg, "time": state::rfc3339_now()})
            )
        } else {
            format!(
                "time=\"{}\" level={level} msg={msg:?}\n",
                state::rfc3339_now()
            )
        };
        let _ = f.write_all(line.as_bytes());
    }
}

fn main() {
    let cli = Cli::parse();
    let logger = Logger {
        file: cli.log.as_ref().and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        }),
        json: cli.log_format == LogFormat::Json,
        debug: cli.debug,
    };
    let code = match dispatch(&cli, &logger) {
        Ok(code) => code,
        Err(e) => {
            let msg = one_line(&e);
            logger.log("error", &msg);
            eprintln!("hako-runtime: {msg}");
            // A command that cannot be executed reports 126/127, as a shell would.
            match e.downcast_ref::<hako_runtime::Error>() {
                Some(err @ hako_runtime::Error::Exec { .. }) => err.exit_code(),
                _ => 1,
            }
        }
    };
    std::process::exit(code);
}

/// The error and its causes on one line, each said once: the runtime library's errors already
/// end with their cause (`open X: No such file or directory`) and also expose it as their
/// source, which `{:#}` would print again.
fn one_line(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if msg.ends_with(&text) {
            continue;
        }
        if !msg.is_empty() {
            msg.push_str(": ");
        }
        msg.push_str(&text);
    }
    msg
}

fn dispatch(cli: &Cli, logger: &Logger) -> Result<i32> {
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup: the systemd cgroup driver is not supported yet; use cgroupfs paths in linux.cgroupsPath");
    }
    let rootless = rootless_mode(&cli.rootless)?;
    // Writing a spec or printing features runs no container, so rootless is only a choice of
    // spec there; runc's `spec` makes a rootless spec only when asked.
    match &cli.command {
        Command::Spec { bundle } => {
            return defaults::write_spec(bundle, cli.rootless == "true").map(|()| 0)
        }
        Command::Features => return defaults::print_features().map(|()| 0),
        _ => {}
    }
    let root = &state_root(cli.root.as_deref())?;
    logger.log(
        "debug",
        &format!("root {} rootless {rootless}", root.display()),
    );
    match &cli.command {
        Command::Create(args) => commands::create(root, args, rootless, logger).map(|()| 0),
        Command::Start { id } => commands::start(root, id, logger).map(|()| 0),
        Command::Run {
            detach,
            keep,
            create,
        } => commands::run(root, create, *detach, *keep, rootless, logger),
        Command::State { id } => commands::state(root, id).map(|()| 0),
        Command::Kill { all, id, signal } => {
            commands::kill(root, id, signal.as_deref(), *all).map(|()| 0)
        }
        Command::Delete { force, id } => commands::delete(root, id, *force, logger).map(|()| 0),
        Command::List { format, quiet } => commands::list(root, format, *quiet).map(|()| 0),
        Command::Spec { .. } | Command::Features => unreachable!("handled above"),
        Command::Ps {
            format,
            id,
            ps_args,
        } => commands::ps(root, id, format, ps_args).map(|()| 0),
        Command::Pause { id } => commands::pause(root, id, true).map(|()| 0),
        Command::Resume { id } => commands::pause(root, id, false).map(|()| 0),
        Command::Exec(args) => commands::exec(root, args, logger),
        Command::Update(args) => update::update(root, args, logger).map(|()| 0),
        Command::Events(args) => update::events(root, args).map(|()| 0),
        Command::Checkpoint(_) | Command::Restore(_) => bail!(
            "checkpoint/restore is not supported: hako-runtime has no CRIU integration, so containers cannot be checkpointed or restored"
        ),
    }
}

/// `--rootless`: whether cgroups are managed as for an ordinary user (runc's rootless cgroup
/// manager). `auto` decides as runc does: yes for a non-root user, and for root inside a user
/// namespace (which cannot tell whether the cgroups it sees are its own).
fn rootless_mode(value: &str) -> Result<bool> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        "auto" => {
            Ok(!nix::unistd::geteuid().is_root() || hako_runtime::rootless::in_user_namespace())
        }
        other => bail!("--rootless must be auto, true or false, not {other:?}"),
    }
}

/// The state directory: `--root`, else runc's rule: `$XDG_RUNTIME_DIR/hako-runtime` for an
/// ordinary user (or root in a user namespace whose `$USER` is not root), else
/// `/run/hako-runtime`. The XDG directory is made 0700 with the sticky bit, which keeps
/// systemd from pruning it.
fn state_root(flag: Option<&std::path::Path>) -> Result<PathBuf> {
    use anyhow::Context;
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(root) = flag {
        return Ok(root.to_owned());
    }
    let honor_xdg = !nix::unistd::geteuid().is_root()
        || (hako_runtime::rootless::in_user_namespace()
            && std::env::var_os("USER").is_none_or(|u| u != "root"));
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
    let Some(xdg) = xdg.filter(|_| honor_xdg) else {
        let root = PathBuf::from("/run/hako-runtime");
        if !nix::unistd::geteuid().is_root() && !root.exists() {
            // runc's default too, which an ordinary user cannot create: say what to do.
            bail!(
                "{} cannot be created by an ordinary user: set XDG_RUNTIME_DIR or pass --root",
                root.display()
            );
        }
        return Ok(root);
    };
    let root = PathBuf::from(xdg).join("hako-runtime");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
        .with_context(|| {
            format!(
                "create {} (the path in $XDG_RUNTIME_DIR must be writable by the user)",
                root.display()
            )
        })?;
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o1700))
        .with_context(|| format!("chmod {}", root.display()))?;
    Ok(root)
}
