//! `hako`: the docker-compatible command line. It stays single-threaded on purpose: the runtime
//! clones the container straight out of this process.

mod build;
mod complete;
mod containers;
mod fmt;
mod images;
mod network;
mod progress;
mod service;
mod trust;
mod usage;
mod volume;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use containers::RunArgs;
use hako_docker::template;
use hako_engine::Engine;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tabwriter::TabWriter;

#[derive(Parser)]
// `args_override_self`: a repeated flag takes its last value, as Docker's flags do, instead
// of being an error. `-v` prints the version, as `docker -v` does.
#[command(
    name = "hako",
    version,
    about = "A daemonless container engine",
    disable_help_subcommand = true,
    disable_version_flag = true,
    args_override_self = true
)]
struct Cli {
    /// Print version information and quit
    #[arg(short = 'v', long, action = clap::ArgAction::Version)]
    version: Option<bool>,
    /// State root (images, containers, the state database)
    #[arg(
        long,
        global = true,
        env = "HAKO_ROOT",
        default_value_os_t = hako_engine::rootless::default_root()
    )]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// `defer` on every command enum: clap then builds a subcommand's arguments only when it is
/// the one invoked. Building all of them (`run`'s hundred options four times over, for `run`,
/// `create`, `container run` and `container create`) cost more CPU than a `create` itself.
#[derive(Subcommand)]
#[command(defer = true)]
enum Command {
    /// Build an image from a Dockerfile
    Build(build::BuildArgs),
    /// Manage the build cache
    #[command(subcommand)]
    Builder(build::BuilderCommand),
    /// Create an image from a root filesystem tarball (a file, an http(s) URL, or - for stdin)
    Import(images::ImportArgs),
    /// Export a container's filesystem as a tar archive
    Export(images::ExportArgs),
    /// List images
    Images(images::ImagesArgs),
    /// Manage images
    #[command(subcommand)]
    Image(ImageCommand),
    /// Remove one or more images
    Rmi(images::RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag {
        /// Existing image
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::images))]
        source: String,
        /// New reference
        target: String,
    },
    /// Download an image from a registry
    Pull(images::PullArgs),
    /// Upload an image to a registry
    Push(images::PushArgs),
    /// Search a registry's index for images
    Search(images::SearchArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(images::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Inspect distribution manifests and manifest lists in a registry
    #[command(subcommand)]
    Manifest(images::ManifestCommand),
    /// Log in to a registry
    Login(images::LoginArgs),
    /// Log out from a registry
    Logout(images::LogoutArgs),
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
    /// List containers
    Ps(PsArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Create a new container without starting it
    Create(Box<RunArgs>),
    /// Start one or more stopped containers
    Start {
        /// Attach STDOUT/STDERR and forward signals
        #[arg(short, long)]
        attach: bool,
        /// Attach container's STDIN
        #[arg(short, long)]
        interactive: bool,
        /// Override the key sequence for detaching a container
        #[arg(long, default_value = "ctrl-p,ctrl-q")]
        detach_keys: String,
        /// Containers
        #[arg(required = true)]
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        containers: Vec<String>,
    },
    /// Restart one or more containers
    Restart(StopArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Display detailed information on containers, images, networks and volumes
    Inspect {
        /// Format output using a Go template
        #[arg(short, long)]
        format: Option<String>,
        /// Only objects of this type (container, image, network, volume)
        #[arg(long = "type")]
        kind: Option<String>,
        /// Names or IDs
        #[arg(required = true)]
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        containers: Vec<String>,
    },
    /// Pause all processes within one or more containers
    Pause {
        /// Containers
        #[arg(required = true)]
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        containers: Vec<String>,
    },
    /// Unpause all processes within one or more containers
    Unpause {
        /// Containers
        #[arg(required = true)]
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        containers: Vec<String>,
    },
    /// Update the resource limits (and restart policy) of one or more containers
    Update {
        #[command(flatten)]
        resources: containers::ResourceArgs,
        /// Restart policy to apply when a container exits
        #[arg(long)]
        restart: Option<String>,
        /// Containers
        #[arg(required = true)]
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        containers: Vec<String>,
    },
    /// Rename a container
    Rename {
        /// Container
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        container: String,
        /// New name
        new_name: String,
    },
    /// Inspect changes to files or directories on a container's filesystem
    Diff {
        /// Container
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        container: String,
    },
    /// Display the running processes of a container
    Top {
        /// Container
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        container: String,
        /// ps options (default: -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Display a live stream of container resource usage
    Stats {
        /// Disable streaming stats and only pull the first result
        #[arg(long)]
        no_stream: bool,
        /// Show all containers (default shows just running)
        #[arg(short, long)]
        all: bool,
        /// Format output using a Go template, or json
        #[arg(long)]
        format: Option<String>,
        /// Containers (default: all running)
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        containers: Vec<String>,
    },
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait {
        /// Containers
        #[arg(required = true)]
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        containers: Vec<String>,
    },
    /// Run docker-compose against a private API service of this root
    #[command(disable_help_flag = true)]
    Compose(service::ComposeArgs),
    /// Work of the API service that must run in a single-threaded process
    #[command(hide = true)]
    ApiHelper {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Copy files between a container and the host (CONTAINER:PATH on one side; - for a tar stream)
    Cp {
        /// Archive mode (keep uid/gid of copied files)
        #[arg(short, long)]
        archive: bool,
        /// Always follow symlinks in SRC (a container's are resolved inside the container)
        #[arg(short = 'L', long)]
        follow_link: bool,
        /// Source
        src: String,
        /// Destination
        dst: String,
    },
    /// Create a new image from a container's changes
    Commit {
        /// Author (e.g. "Jane Doe <jane@example.com>")
        #[arg(short, long)]
        author: Option<String>,
        /// Commit message
        #[arg(short, long)]
        message: Option<String>,
        /// Apply Dockerfile instruction to the created image
        #[arg(short = 'c', long = "change")]
        change: Vec<String>,
        /// Container
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        container: String,
        /// REPOSITORY[:TAG]
        reference: Option<String>,
    },
    /// Manage hako: disk usage, pruning, information
    #[command(subcommand)]
    System(SystemCommand),
    /// List port mappings of a container
    Port {
        /// Container
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        container: String,
        /// PRIVATE_PORT[/PROTO]
        port: Option<String>,
    },
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Attach to a running container's output (and relay signals to it)
    Attach {
        /// Do not attach STDIN
        #[arg(long)]
        no_stdin: bool,
        /// Proxy all received signals to the process
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        sig_proxy: bool,
        /// Override the key sequence for detaching a container (-t containers)
        #[arg(long, default_value = "ctrl-p,ctrl-q")]
        detach_keys: String,
        /// Container
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        container: String,
    },
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Get real time events (containers, images, volumes and networks, with Docker's actions)
    Events {
        /// Show events created since this time (RFC 3339, Unix seconds, or a duration like 10m)
        #[arg(long)]
        since: Option<String>,
        /// Stream events until this time
        #[arg(long)]
        until: Option<String>,
        /// Filter output (container=, event=, type=, image=)
        #[arg(short, long, value_parser = usage::filter_arg)]
        filter: Vec<String>,
        /// Format output using a Go template, or "json"
        #[arg(long)]
        format: Option<String>,
    },
    /// Display system-wide information
    Info {
        /// Format output using a Go template, or "json"
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell): source it
    /// (`source <(hako completion bash)`); it completes commands, flags and the names of
    /// containers, images, networks and volumes
    Completion {
        /// Shell
        shell: clap_complete::Shell,
    },
    /// Show the hako version
    Version {
        /// Format output using a Go template ({{.Client.Version}}), or json
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Run a command in rootless hako's user namespace
    ///
    /// There the user is root and its subordinate ids are mapped as in its containers, so
    /// files a container's user left in a bind mount can be removed: hako unshare rm -rf DIR
    Unshare {
        /// The command and its arguments (default: $SHELL)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

#[derive(Subcommand)]
#[command(defer = true)]
enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls(images::ImagesArgs),
    /// Create an image from a root filesystem tarball
    Import(images::ImportArgs),
    /// Remove one or more images
    #[command(alias = "remove")]
    Rm(images::RmiArgs),
    /// Download an image from a registry
    Pull(images::PullArgs),
    /// Upload an image to a registry
    Push(images::PushArgs),
    /// Save one or more images to a tar archive
    Save(images::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(images::LoadArgs),
    /// Show the history of an image
    History(images::HistoryArgs),
    /// Display detailed information on one or more images
    Inspect(images::InspectArgs),
    /// Remove unused images
    Prune(images::PruneArgs),
    /// Show the signature policy, make signing keys
    #[command(subcommand)]
    Trust(trust::TrustCommand),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag {
        /// Existing image
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::images))]
        source: String,
        /// New reference
        target: String,
    },
}

#[derive(Subcommand)]
#[command(defer = true)]
enum ContainerCommand {
    /// Export a container's filesystem as a tar archive
    Export(images::ExportArgs),
    /// Remove all stopped containers
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Display detailed information on one or more containers
    Inspect {
        /// Format output using a Go template
        #[arg(short, long)]
        format: Option<String>,
        /// Containers
        #[arg(required = true)]
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        containers: Vec<String>,
    },
    /// List containers
    #[command(alias = "list")]
    Ls(PsArgs),
    /// Remove one or more containers
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Create and run a new container
    Run(Box<RunArgs>),
}

#[derive(Args)]
struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last")]
    last: Option<usize>,
    /// Filter output (status=, name=, id=, ancestor=, label=, exited=)
    #[arg(short, long, value_parser = usage::filter_arg)]
    filter: Vec<String>,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
    /// Format output using a Go template, or "json"
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args)]
struct RmArgs {
    /// Kill a running container before removing it
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    /// Containers (name or id)
    #[arg(required = true)]
    #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
    containers: Vec<String>,
}

#[derive(Args)]
struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Set environment variables
    #[arg(short, long)]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long)]
    env_file: Vec<String>,
    /// Override the key sequence for detaching a container; hako's exec sessions do not
    /// detach, so every key (these included) goes to the process, and a warning says so
    #[arg(long)]
    detach_keys: Option<String>,
    /// Keep STDIN open
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Give extended privileges to the command
    #[arg(long)]
    privileged: bool,
    /// CONTAINER COMMAND [ARG...]
    #[arg(value_name = "CONTAINER COMMAND [ARG...]", required = true, num_args = 2.., trailing_var_arg = true, allow_hyphen_values = true)]
    #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
    target: Vec<String>,
}

#[derive(Subcommand)]
#[command(defer = true)]
enum SystemCommand {
    /// Show hako disk usage
    Df {
        /// Show detailed information on space usage
        #[arg(short, long)]
        verbose: bool,
        /// Format output using a Go template, or json
        #[arg(long, conflicts_with = "verbose")]
        format: Option<String>,
    },
    /// Remove stopped containers, unused networks, dangling images and build cache (all unused
    /// images and all build cache with -a), and with --volumes unused anonymous volumes
    Prune {
        /// Remove all unused images, not just dangling ones
        #[arg(short, long)]
        all: bool,
        /// Prune anonymous volumes
        #[arg(long)]
        volumes: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Display system-wide information
    Info {
        /// Format output using a Go template, or "json"
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Serve the Docker Engine API (for the docker CLI, docker-compose, the SDKs)
    Service(service::ServiceArgs),
}

#[derive(Args)]
struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout", default_value_t = 10)]
    time: u64,
    /// Containers
    #[arg(required = true)]
    #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
    containers: Vec<String>,
}

#[derive(Args)]
struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, default_value = "KILL")]
    signal: String,
    /// Containers
    #[arg(required = true)]
    #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
    containers: Vec<String>,
}

#[derive(Args)]
struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Show extra details provided to logs (the log's attributes; hako's json-file logs
    /// record none, so each line is preceded by the empty attribute list and a space, as
    /// Docker prints it)
    #[arg(long)]
    details: bool,
    /// Number of lines to show from the end of the logs ("all" for everything)
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since a time (RFC 3339, Unix seconds, or a duration like 10m)
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a time (RFC 3339, Unix seconds, or a duration like 10m)
    #[arg(long)]
    until: Option<String>,
    /// Container
    #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
    container: String,
}

/// An error with the exit status Docker would use for it.
struct Failure {
    code: i32,
    err: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: 1,
            err: e.into(),
        }
    }
}

/// Docker's groups of `--help`: the commands most use, the management commands (each with
/// subcommands of its own), then the rest.
const COMMON_COMMANDS: [&str; 12] = [
    "run", "exec", "ps", "build", "pull", "push", "images", "login", "logout", "search", "version",
    "info",
];

/// The command line, with the top-level help grouped as Docker's (`Common Commands`,
/// `Management Commands`, `Commands`, `Global Options`); clap lists subcommands in one block.
fn cli_command() -> clap::Command {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let mut common = Vec::new();
    let mut management = Vec::new();
    let mut rest = Vec::new();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name().to_string();
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        let entry = (name, about);
        if COMMON_COMMANDS.contains(&entry.0.as_str()) {
            common.push(entry);
        } else if sub.has_subcommands() {
            management.push(entry);
        } else {
            rest.push(entry);
        }
    }
    common.sort_by_key(|(n, _)| COMMON_COMMANDS.iter().position(|c| c == n));
    management.sort();
    rest.sort();
    let width = common
        .iter()
        .chain(&management)
        .chain(&rest)
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0);
    let mut groups = String::new();
    for (title, list) in [
        ("Common Commands", &common),
        ("Management Commands", &management),
        ("Commands", &rest),
    ] {
        groups.push_str(title);
        groups.push_str(":\n");
        for (n, about) in list {
            groups.push_str(&format!("  {n:width$}  {about}\n"));
        }
        groups.push('\n');
    }
    cmd.help_template(format!(
        "{{about-with-newline}}\n{{usage-heading}} {{usage}}\n\n{groups}Global Options:\n{{options}}\n\nRun 'hako COMMAND --help' for more information on a command.\n"
    ))
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, which turns `hako ps | head` into a panic; a CLI should just end.
    // SAFETY: restoring the default disposition of one signal before anything else runs.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // A shell asking for completions (`HAKO_COMPLETE=bash hako -- hako rm <TAB>`): answered, then
    // exit; otherwise one environment lookup.
    clap_complete::CompleteEnv::with_factory(cli_command)
        .var(complete::COMPLETE_VAR)
        .bin("hako")
        .complete();
    if std::env::args_os().nth(1).as_deref() == Some(hako_engine::rootless::HOLDER_ARG.as_ref()) {
        hako_engine::rootless::holder_main();
    }
    if std::env::args_os().nth(1).as_deref() == Some(hako_engine::health::HELPER_ARG.as_ref()) {
        // A step of a detached container's health helper (`hako-health`): the pid and the
        // milliseconds to the next check, or nothing once the container's run is over.
        let args: Vec<std::path::PathBuf> = std::env::args_os().skip(2).map(Into::into).collect();
        let (Some(root), Some(id), Some(what), Ok(me)) = (
            args.first(),
            args.get(1),
            args.get(2),
            std::env::current_exe(),
        ) else {
            return ExitCode::from(2);
        };
        let probe = what.as_os_str() == "probe";
        let id = id.to_string_lossy();
        return match hako_engine::health::helper_step(root, &id, probe, &me) {
            Ok(Some((pid, wait))) => {
                println!("{pid} {}", wait.as_millis());
                ExitCode::SUCCESS
            }
            Ok(None) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hako: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if std::env::args_os().nth(1).as_deref() == Some(hako_engine::rootless::USERNET_ARG.as_ref()) {
        let config = std::env::args().nth(2).unwrap_or_default();
        return ExitCode::from(hako_engine::rootless::usernet_helper_main(&config) as u8);
    }
    if std::env::args_os().nth(1).as_deref() == Some(hako_engine::rootless::NETNS_ARG.as_ref()) {
        let config = std::env::args().nth(2).unwrap_or_default();
        let record = std::env::args_os().nth(3).unwrap_or_default();
        return ExitCode::from(hako_engine::rootless::usernet_netns_main(
            &config,
            std::path::Path::new(&record),
        ) as u8);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let argv: Vec<String> = std::env::args_os()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            // Help is rendered again by the command with the grouped top-level help: making
            // it reads every subcommand, which `defer` spares every other command line.
            let e = if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp
                    | clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                cli_command().try_get_matches_from(&argv).err().unwrap_or(e)
            } else {
                e
            };
            let u = usage::explain(&e, &argv, cli_command);
            match &u.message {
                Some(m) => eprint!("{m}"),
                None => {
                    let _ = e.print();
                }
            }
            return ExitCode::from(u.code);
        }
    };
    // An ordinary user: into its own user namespace before anything else (see
    // hako_engine::rootless); `info` reports what is missing instead of failing.
    if hako_engine::rootless::must_enter() {
        hako_engine::rootless::use_user_config();
        let entered = hako_engine::rootless::enter();
        if entered.is_ok() {
            eprintln!("hako: {}", hako_engine::rootless::reexec());
            return ExitCode::from(125);
        }
        if let Err(e) = entered {
            if !matches!(
                cli.command,
                Command::Info { .. } | Command::System(SystemCommand::Info { .. })
            ) {
                eprintln!("hako: {e}");
                let run = matches!(
                    cli.command,
                    Command::Run(_)
                        | Command::Create(_)
                        | Command::Container(ContainerCommand::Run(_))
                );
                return ExitCode::from(if run { 125 } else { 1 });
            }
        }
    }
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(f) => {
            eprintln!("hako: {:#}", f.err);
            ExitCode::from(f.code.clamp(1, 255) as u8)
        }
    }
}

/// `hako unshare`: this process already joined the user's namespace (and has a mount
/// namespace of its own), so the command is executed in place, its status hako's.
fn unshare(command: Vec<String>) -> Result<i32, Failure> {
    use std::os::unix::process::CommandExt;
    if !hako_engine::rootless::active() {
        return Err(Failure {
            err: anyhow::anyhow!(
                "hako unshare is for ordinary users: it runs a command in rootless hako's user namespace, which root does not use"
            ),
            code: 125,
        });
    }
    let mut argv = command;
    if argv.is_empty() {
        argv.push(std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into()));
    }
    let e = std::process::Command::new(&argv[0]).args(&argv[1..]).exec();
    // exec returns only on failure: as a shell says it, with Docker's codes.
    let code = match e.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    };
    Err(Failure {
        err: anyhow::anyhow!("{}: {e}", argv[0]),
        code,
    })
}

fn open(root: &std::path::Path) -> anyhow::Result<Engine> {
    Engine::open(root).with_context(|| format!("cannot open state root {}", root.display()))
}

fn dispatch(cli: Cli) -> Result<i32, Failure> {
    match cli.command {
        Command::Build(a) => build::build(&cli.root, a),
        Command::Builder(c) => build::builder(&cli.root, c),
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => {
            images::import(&cli.root, a)
        }
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::images(&cli.root, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => images::rmi(&cli.root, a),
        Command::Tag { source, target } | Command::Image(ImageCommand::Tag { source, target }) => {
            images::tag(&cli.root, &source, &target)
        }
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => images::pull(&cli.root, a),
        Command::Search(a) => images::search(a),
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => images::push(&cli.root, a),
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => images::save(&cli.root, a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => images::load(&cli.root, a),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => {
            images::history(&cli.root, a)
        }
        Command::Image(ImageCommand::Inspect(a)) => images::inspect(&cli.root, a),
        Command::Image(ImageCommand::Prune(a)) => images::prune(&cli.root, a),
        Command::Image(ImageCommand::Trust(c)) => trust::run(c),
        Command::Manifest(c) => images::manifest(c),
        Command::Export(a) | Command::Container(ContainerCommand::Export(a)) => {
            images::export(&cli.root, a)
        }
        Command::Login(a) => images::login(a),
        Command::Logout(a) => images::logout(a),
        Command::Run(a) | Command::Container(ContainerCommand::Run(a)) => {
            containers::run(&cli.root, *a)
        }
        Command::Ps(a) | Command::Container(ContainerCommand::Ls(a)) => ps(&cli.root, a),
        Command::Container(ContainerCommand::Prune { force }) => {
            if !force && !fmt::confirm("This will remove all stopped containers.\n")? {
                return Ok(0);
            }
            let engine = open(&cli.root)?;
            let removed = engine.prune()?;
            if !removed.is_empty() {
                println!("Deleted Containers:");
                for id in &removed {
                    println!("{id}");
                }
                println!();
            }
            Ok(0)
        }
        Command::Container(ContainerCommand::Inspect { format, containers }) => {
            inspect(&cli.root, format, Some("container"), &containers)
        }
        Command::Rm(a) | Command::Container(ContainerCommand::Rm(a)) => rm(&cli.root, a),
        Command::Create(a) => containers::create(&cli.root, *a),
        Command::Start {
            attach: false,
            interactive: false,
            containers,
            ..
        } => each_container(&cli.root, &containers, |e, k| e.start(k)),
        Command::Start {
            interactive,
            detach_keys,
            containers,
            ..
        } => start_attached(&cli.root, &containers, interactive, &detach_keys),
        Command::Restart(a) => each_container(&cli.root, &a.containers, |e, k| {
            e.stop(k, Duration::from_secs(a.time))?;
            e.start(k)
        }),
        Command::Volume(v) => volume::volume(&cli.root, v),
        Command::Inspect {
            format,
            kind,
            containers,
        } => inspect(&cli.root, format, kind.as_deref(), &containers),
        Command::Pause { containers } => each_container(&cli.root, &containers, |e, k| e.pause(k)),
        Command::Unpause { containers } => {
            each_container(&cli.root, &containers, |e, k| e.unpause(k))
        }
        Command::Update {
            resources,
            restart,
            containers,
        } => containers::update(&cli.root, &resources, restart.as_deref(), &containers),
        Command::Rename {
            container,
            new_name,
        } => {
            open(&cli.root)?.rename(&container, &new_name)?;
            Ok(0)
        }
        Command::Diff { container } => {
            for (kind, path) in open(&cli.root)?.diff(&container)? {
                println!("{kind} {path}");
            }
            Ok(0)
        }
        Command::Top { container, ps_args } => top(&cli.root, &container, &ps_args),
        Command::Stats {
            no_stream,
            all,
            format,
            containers,
        } => stats(&cli.root, no_stream, all, format, containers),
        Command::Stop(a) => stop(&cli.root, a),
        Command::Kill(a) => kill(&cli.root, a),
        Command::Logs(a) => logs(&cli.root, a),
        Command::Wait { containers } => {
            let engine = open(&cli.root)?;
            let mut code = 0;
            for c in &containers {
                match engine.wait(c) {
                    Ok(status) => println!("{status}"),
                    Err(e) => {
                        eprintln!("hako: {e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        Command::ApiHelper { args } => Ok(hako_apid::helper::main(&cli.root, &args)),
        Command::Compose(a) => service::compose(&cli.root, a),
        Command::System(SystemCommand::Service(a)) => service::service(&cli.root, a),
        Command::Unshare { command } => unshare(command),
        Command::Info { format } | Command::System(SystemCommand::Info { format }) => {
            info(&cli.root, format)
        }
        Command::Port { container, port } => {
            let engine = open(&cli.root)?;
            let c = engine.find(&container)?;
            let ports = engine.published_ports(&c.id);
            let mut found = false;
            for p in ports {
                let proto = format!("{:?}", p.proto).to_lowercase();
                let private = format!("{}/{proto}", p.container_port);
                if let Some(want) = &port {
                    let want = if want.contains('/') {
                        want.clone()
                    } else {
                        format!("{want}/tcp")
                    };
                    if want != private {
                        continue;
                    }
                    println!("{}", p.host());
                } else {
                    println!("{private} -> {}", p.host());
                }
                found = true;
            }
            if port.is_some() && !found {
                return Err(anyhow::anyhow!(
                    "No public port '{}' published for {container}",
                    port.unwrap_or_default()
                )
                .into());
            }
            Ok(0)
        }
        Command::Network(n) => network::network(&cli.root, n),
        Command::Events {
            since,
            until,
            filter,
            format,
        } => events(&cli.root, since, until, filter, format),
        Command::Attach {
            no_stdin,
            sig_proxy,
            detach_keys,
            container,
        } => attach(&cli.root, &container, !no_stdin, sig_proxy, &detach_keys),
        Command::Exec(a) => {
            // Everything from the container on is the command's, so a flag clap does not know
            // lands here as the container.
            if let Some(flag) = a.target.first().filter(|s| s.starts_with('-')) {
                return Err(Failure {
                    code: 125,
                    err: anyhow::anyhow!("{}", usage::unknown_flag(flag)),
                });
            }
            if a.tty && a.interactive && !a.detach {
                fmt::require_terminal_stdin()?;
            }
            if let Some(keys) = &a.detach_keys {
                hako_engine::tty::parse_detach_keys(keys)?;
                if a.interactive && !a.detach {
                    eprintln!(
                        "WARNING: hako exec sessions do not detach: {keys} goes to the process like any other key"
                    );
                }
            }
            let engine = open(&cli.root)?;
            if a.workdir.as_deref().is_some_and(|w| !w.starts_with('/')) {
                engine.find(&a.target[0])?;
                // The runtime's refusal, as Docker reports it: the command cannot start.
                return Err(Failure {
                    code: 126,
                    err: anyhow::anyhow!("Cwd must be an absolute path"),
                });
            }
            let opts = hako_engine::exec::ExecOptions {
                cmd: a.target[1..].to_vec(),
                env: hako_docker::flags::environment(&a.env_file, &a.env)?,
                user: a.user,
                workdir: a.workdir,
                interactive: a.interactive,
                tty: a.tty,
                detach: a.detach,
                privileged: a.privileged,
            };
            match engine.exec(&a.target[0], &opts) {
                Ok(code) => Ok(code),
                Err(e) => {
                    // Docker's exec reports start failures with the runtime's 126/127 (126 for
                    // a user it cannot find), the rest as 1.
                    let code = match &e {
                        hako_engine::Error::Runtime(r) if r.exit_code() != 125 => r.exit_code(),
                        hako_engine::Error::User(_) => 126,
                        _ => 1,
                    };
                    Err(Failure {
                        code,
                        err: e.into(),
                    })
                }
            }
        }
        Command::System(SystemCommand::Df { verbose: true, .. }) => system_df_verbose(&cli.root),
        Command::System(SystemCommand::Df {
            verbose: false,
            format,
        }) => {
            let engine = open(&cli.root)?;
            let tmpl = format
                .as_deref()
                .map(|f| template::Format::parse_list(f, DF_TABLE))
                .transpose()?;
            let df = engine.system_df()?;
            // Docker's fields, all strings (its json prints them quoted too); the build cache
            // without a percentage.
            let row = |kind: &str, t: &hako_engine::views::system::UsageTotals| {
                let pct = (t.reclaimable * 100).checked_div(t.size).unwrap_or(0);
                [
                    kind.to_string(),
                    t.total.to_string(),
                    t.active.to_string(),
                    fmt::human_size(t.size),
                    format!("{} ({pct}%)", fmt::human_size(t.reclaimable)),
                ]
            };
            let b = &df.build_cache;
            let rows = [
                row("Images", &df.images),
                row("Containers", &df.containers),
                row("Local Volumes", &df.volumes),
                [
                    "Build Cache".to_string(),
                    b.entries.to_string(),
                    b.active.to_string(),
                    fmt::human_size(b.size),
                    fmt::human_size(b.reclaimable),
                ],
            ];
            if let Some(t) = tmpl {
                let items: Vec<_> = rows
                    .into_iter()
                    .map(|[kind, total, active, size, reclaimable]| {
                        template::TemplateValue::from_json(&serde_json::json!({
                            "Type": kind,
                            "TotalCount": total,
                            "Active": active,
                            "Size": size,
                            "Reclaimable": reclaimable,
                        }))
                    })
                    .collect();
                let text = t.render_list(template::DF_HEADERS, &items)?;
                std::io::stdout().lock().write_all(text.as_bytes())?;
                return Ok(0);
            }
            let mut out = TabWriter::new(std::io::stdout().lock())
                .minwidth(7)
                .padding(3);
            writeln!(out, "TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE")?;
            for r in rows {
                writeln!(out, "{}", r.join("\t"))?;
            }
            out.flush()?;
            Ok(0)
        }
        Command::System(SystemCommand::Prune {
            all,
            volumes,
            force,
        }) => system_prune(&cli.root, all, volumes, force),
        Command::Commit {
            author,
            message,
            change,
            container,
            reference,
        } => {
            let engine = open(&cli.root)?;
            let reference = reference
                .as_deref()
                .map(hako_engine::hako_image::Reference::parse)
                .transpose()?;
            let id = engine.commit(
                &container,
                &hako_engine::commit::CommitOptions {
                    message,
                    author,
                    changes: change,
                    reference,
                },
            )?;
            println!("{id}");
            Ok(0)
        }
        Command::Cp {
            archive,
            follow_link,
            src,
            dst,
        } => cp(&cli.root, archive, follow_link, &src, &dst),
        Command::Completion { shell } => {
            // The script calls `hako` back for each completion (HAKO_COMPLETE=SHELL), so names of
            // containers, images, networks and volumes complete too.
            let name = shell.to_string();
            let shells = clap_complete::env::Shells::builtins();
            let completer = shells
                .completer(&name)
                .ok_or_else(|| anyhow::anyhow!("no completion for shell {name}"))?;
            completer.write_registration(
                complete::COMPLETE_VAR,
                "hako",
                "hako",
                "hako",
                &mut std::io::stdout(),
            )?;
            Ok(0)
        }
        Command::Version { format: None } => {
            println!("hako version {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        Command::Version { format: Some(f) } => {
            // The client and the engine are one program.
            let part = serde_json::json!({
                "Version": env!("CARGO_PKG_VERSION"),
                "Os": std::env::consts::OS,
                "Arch": match std::env::consts::ARCH {
                    "x86_64" => "amd64",
                    "aarch64" => "arm64",
                    other => other,
                },
            });
            let doc = serde_json::json!({"Client": part, "Server": part});
            println!("{}", template::Format::parse(&f)?.render(&doc)?);
            Ok(0)
        }
    }
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// Docker's default `system df` table, for `--format table`.
const DF_TABLE: &str = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}";

/// Docker's default `stats` table, for `--format table`.
const STATS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// Docker's default `ps` table, for `--format table`.
const PS_TABLE: &str =
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

fn ps(root: &std::path::Path, a: PsArgs) -> Result<i32, Failure> {
    use hako_docker::format::{created_at, ports_text, ps_state, ps_status, time_ago};
    use hako_engine::views::container::{ContainerFilters, PsOptions};
    let pairs = a
        .filter
        .iter()
        .map(|f| {
            f.split_once('=')
                .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let opts = PsOptions {
        all: a.all,
        last: if a.latest { Some(1) } else { a.last },
        filters: ContainerFilters::new(&pairs)?,
        size: a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size")),
    };
    let engine = open(root)?;
    let rows = engine.ps(&opts)?;
    let now = hako_base::time::now_nanos();
    let size_text = |s: Option<(u64, u64)>| {
        s.map(|(rw, virt)| {
            format!(
                "{} (virtual {})",
                fmt::human_size(rw),
                fmt::human_size(virt)
            )
        })
    };
    if let Some(f) = &a.format {
        let tmpl = template::Format::parse_list(f, PS_TABLE)?;
        let details = template::ps_needs_details(f);
        // Docker's `ps` runs the template once before listing, so a field that does not exist
        // is an error even when no container is listed.
        let prototype: serde_json::Map<String, serde_json::Value> = template::PS_HEADERS
            .iter()
            .map(|(k, _)| (k.to_string(), serde_json::Value::String(String::new())))
            .collect();
        tmpl.render_value(&template::container_row(
            &serde_json::Value::Object(prototype),
            None,
            a.no_trunc,
        ))?;
        let mut items = Vec::with_capacity(rows.len());
        for r in &rows {
            let c = &r.container;
            let command = fmt::command_text(&c.command);
            let item = serde_json::json!({
                "ID": if a.no_trunc { c.id.clone() } else { c.id[..12].to_string() },
                "Image": c.image,
                "Command": fmt::go_quote(&if a.no_trunc { command.clone() } else { fmt::ellipsis(&command, 20) }),
                "CreatedAt": created_at(c.created),
                "RunningFor": time_ago(Some(c.created), now),
                "State": ps_state(c, r.paused),
                "Status": ps_status(c, r.paused, now),
                "Ports": ports_text(&r.ports),
                "Names": c.name,
                "Size": size_text(r.size).unwrap_or_default(),
            });
            // Labels, mounts and networks are in the container's document, read only when
            // the format uses them.
            let doc = if details {
                match engine.inspect(&c.id) {
                    Ok(d) => Some(d),
                    // Removed since it was listed.
                    Err(e) if e.kind() == hako_engine::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
            } else {
                None
            };
            items.push(template::container_row(&item, doc.as_ref(), a.no_trunc));
        }
        let text = tmpl.render_list(template::PS_HEADERS, &items)?;
        std::io::stdout().lock().write_all(text.as_bytes())?;
        return Ok(0);
    }
    let mut out = TabWriter::new(std::io::stdout().lock())
        .minwidth(7)
        .padding(3);
    if a.quiet {
        for r in &rows {
            let id = &r.container.id;
            writeln!(out, "{}", if a.no_trunc { id } else { &id[..12] })?;
        }
        out.flush()?;
        return Ok(0);
    }
    writeln!(
        out,
        "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS\tNAMES{}",
        if a.size { "\tSIZE" } else { "" }
    )?;
    for r in &rows {
        let c = &r.container;
        let command = fmt::command_text(&c.command);
        let command = if a.no_trunc {
            command
        } else {
            fmt::ellipsis(&command, 20)
        };
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}{}",
            if a.no_trunc { &c.id } else { &c.id[..12] },
            c.image,
            fmt::go_quote(&command),
            time_ago(Some(c.created), now),
            ps_status(c, r.paused, now),
            ports_text(&r.ports),
            c.name,
            size_text(r.size)
                .map(|s| format!("\t{s}"))
                .unwrap_or_default()
        )?;
    }
    out.flush()?;
    Ok(0)
}

fn rm(root: &std::path::Path, a: RmArgs) -> Result<i32, Failure> {
    let engine = open(root)?;
    let mut code = 0;
    for key in &a.containers {
        match engine.remove(key, a.force, a.volumes) {
            Ok(_) => println!("{key}"),
            // As Docker's `rm -f`: a container that is not there is said, not a failure.
            Err(e) if a.force && e.kind() == hako_engine::ErrorKind::NotFound => {
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

fn each_container(
    root: &std::path::Path,
    containers: &[String],
    f: impl Fn(&Engine, &str) -> Result<String, hako_engine::Error>,
) -> Result<i32, Failure> {
    let engine = open(root)?;
    let mut code = 0;
    for key in containers {
        match f(&engine, key) {
            Ok(_) => println!("{key}"),
            Err(e) => {
                eprintln!("hako: {e}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn stop(root: &std::path::Path, a: StopArgs) -> Result<i32, Failure> {
    each_container(root, &a.containers, |e, k| {
        e.stop(k, Duration::from_secs(a.time))
    })
}

fn kill(root: &std::path::Path, a: KillArgs) -> Result<i32, Failure> {
    // The one signal table: KILL, SIGKILL, sigterm, 9, RTMIN+3.
    let sig = hako_base::signal::parse(&a.signal)
        .ok_or_else(|| anyhow::anyhow!("invalid signal: {}", a.signal))?;
    each_container(root, &a.containers, |e, k| e.kill(k, sig))
}

fn logs(root: &std::path::Path, a: LogsArgs) -> Result<i32, Failure> {
    // Checked before the log is looked at: a bad value is an error even when there is no log.
    let opts = hako_engine::logs::LogOptions {
        tail: hako_engine::logs::parse_tail(&a.tail)?,
        since: a.since.as_deref().map(parse_time_arg).transpose()?,
        until: a.until.as_deref().map(parse_time_arg).transpose()?,
        follow: a.follow,
    };
    let engine = open(root)?;
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    engine.logs(&a.container, &opts, &mut |l| {
        write_log_line(l, a.timestamps, a.details, &mut out, &mut err)
    })?;
    Ok(0)
}

/// `inspect`'s `--format`: a template that does not parse is Docker's status 64.
fn inspect_format(format: Option<&str>) -> Result<Option<template::Format>, Failure> {
    format
        .map(template::Format::parse)
        .transpose()
        .map_err(|err| Failure {
            code: 64,
            err: err.into(),
        })
}

/// `inspect`: each name as a container, an image, a network or a volume, the first that
/// exists (as Docker looks them up), or only as `kind`.
fn inspect(
    root: &std::path::Path,
    format: Option<String>,
    kind: Option<&str>,
    keys: &[String],
) -> Result<i32, Failure> {
    const KINDS: [&str; 4] = ["container", "image", "network", "volume"];
    if let Some(k) = kind.filter(|k| !KINDS.contains(k)) {
        return Err(anyhow::anyhow!(
            "unknown type: {k:?}: must be one of \"container\", \"image\", \"network\", \"volume\""
        )
        .into());
    }
    let tmpl = inspect_format(format.as_deref())?;
    let engine = open(root)?;
    let kinds: Vec<&str> = match kind {
        Some(k) => vec![k],
        None => KINDS.to_vec(),
    };
    let mut docs = Vec::new();
    let mut code = 0;
    for k in keys {
        let mut found = None;
        for kind in &kinds {
            found = match *kind {
                "container" => match engine.container_inspect(k) {
                    Ok(v) => Some(hako_docker::container::inspect_json(&v)),
                    Err(e) if e.kind() == hako_engine::ErrorKind::NotFound => None,
                    Err(e) => return Err(e.into()),
                },
                "image" => images::image_doc(&engine, k)?,
                "network" => network::network_doc(&engine, k).ok(),
                _ => engine
                    .volume_inspect(k)
                    .ok()
                    .map(|v| hako_docker::volume::inspect_json(&v)),
            };
            if found.is_some() {
                break;
            }
        }
        match found {
            Some(d) => docs.push(d),
            None => {
                match kind {
                    Some("container") => eprintln!("hako: No such container: {k}"),
                    Some("image") => eprintln!("hako: No such image: {k}"),
                    Some("network") => eprintln!("hako: network {k} not found"),
                    Some(_) => eprintln!("hako: get {k}: no such volume"),
                    None => eprintln!("hako: Error: No such object: {k}"),
                }
                code = 1;
            }
        }
    }
    print_docs(&serde_json::Value::Array(docs), tmpl.as_ref())?;
    Ok(code)
}

/// An `inspect`'s documents: each through `tmpl` (`-f`), else all as one JSON array.
fn print_docs(docs: &serde_json::Value, tmpl: Option<&template::Format>) -> anyhow::Result<()> {
    match (tmpl, docs.as_array()) {
        (Some(t), Some(items)) => {
            for d in items {
                println!("{}", t.render(d)?);
            }
        }
        _ => println!("{}", serde_json::to_string_pretty(docs)?),
    }
    Ok(())
}

fn top(root: &std::path::Path, key: &str, ps_args: &[String]) -> Result<i32, Failure> {
    let top = open(root)?.top(key, ps_args)?;
    // Docker's CLI: a tabwriter with at least 20 columns per cell and 3 spaces between.
    let mut tw = TabWriter::new(std::io::stdout().lock())
        .minwidth(20)
        .padding(3);
    writeln!(tw, "{}", top.titles.join("\t"))?;
    for p in &top.processes {
        writeln!(tw, "{}", p.join("\t"))?;
    }
    tw.flush()?;
    Ok(0)
}

fn stats(
    root: &std::path::Path,
    no_stream: bool,
    all: bool,
    format: Option<String>,
    keys: Vec<String>,
) -> Result<i32, Failure> {
    let engine = open(root)?;
    let tmpl = template::Format::parse_list(format.as_deref().unwrap_or(""), STATS_TABLE)?;
    let mut sampler = engine.stats_sampler(&keys, all)?;
    loop {
        let rows: Vec<_> = sampler
            .next(Duration::from_millis(if no_stream { 200 } else { 1000 }))?
            .iter()
            .map(|s| template::TemplateValue::from_json(&hako_docker::format::stats_row(s)))
            .collect();
        let mut frame = String::new();
        // Each live frame starts on a cleared screen. The escape goes before the aligned text,
        // not into it: inside the table it counted as seven characters of the first header
        // cell, which shifted the header against the rows.
        if !no_stream {
            frame.push_str("\x1b[2J\x1b[H");
        }
        frame.push_str(&tmpl.render_list(template::STATS_HEADERS, &rows)?);
        let mut out = std::io::stdout().lock();
        out.write_all(frame.as_bytes())?;
        out.flush()?;
        if no_stream {
            return Ok(0);
        }
    }
}

fn info(root: &std::path::Path, format: Option<String>) -> Result<i32, Failure> {
    let engine = open(root)?;
    let i = engine.info()?;
    if let Some(f) = format {
        let doc = serde_json::to_value(&i)?;
        println!("{}", template::Format::parse(&f)?.render(&doc)?);
        return Ok(0);
    }
    println!("Client:");
    println!(" Version:    {}", env!("CARGO_PKG_VERSION"));
    println!(" Context:    daemonless (no server process)");
    println!();
    println!("Server:");
    println!(" Containers: {}", i.containers);
    println!("  Running: {}", i.containers_running);
    println!("  Paused: {}", i.containers_paused);
    println!("  Stopped: {}", i.containers_stopped);
    println!(" Images: {}", i.images);
    println!(" Volumes: {}", i.volumes);
    println!(" Storage Driver: {}", i.driver);
    println!(" Logging Driver: json-file");
    println!(" Cgroup Driver: {}", i.cgroup_driver);
    println!(" Cgroup Version: {}", i.cgroup_version);
    println!(" Runtime: hako (in-process)");
    println!(" Security Options:");
    for s in &i.security_options {
        println!("  {s}");
    }
    println!(" Kernel Version: {}", i.kernel_version);
    println!("  Newest syscall: {}", i.newest_syscall);
    println!("  vsyscall: {}", i.vsyscall);
    println!("  Seccomp actions: {}", i.seccomp_actions);
    println!("  User namespaces: {} at most", i.max_user_namespaces);
    println!(" Operating System: {}", i.operating_system);
    println!(" OSType: linux");
    println!(" Architecture: {}", i.architecture);
    println!(" Emulators (binfmt_misc):");
    if i.emulators.is_empty() {
        println!("  none registered (foreign-architecture images cannot run)");
    }
    for e in &i.emulators {
        println!("  {e}");
    }
    println!(" CPUs: {}", i.ncpu);
    println!(" Total Memory: {}", fmt::human_binary_size(i.mem_total));
    println!(" Hako Root Dir: {}", i.root_dir);
    println!(" Rootless: {}", i.rootless);
    if let Some(m) = &i.rootless_mechanisms {
        println!("  Ids: {}", m.ids);
        println!("  Storage: {}", m.storage);
        println!("  Network: {}", m.network);
        println!("  Cgroups: {}", m.cgroups);
    }
    Ok(0)
}

fn cp(
    root: &std::path::Path,
    archive: bool,
    follow: bool,
    src: &str,
    dst: &str,
) -> Result<i32, Failure> {
    use hako_docker::cp::{Copy, HostSide};
    use hako_engine::copy::{HostEnd, HostSink};
    let copy = hako_docker::cp::parse(src, dst)?;
    let engine = open(root)?;
    match copy {
        Copy::FromContainer {
            container,
            path,
            to: HostSide::Stream,
        } => {
            let mut out = std::io::stdout().lock();
            engine.copy_from(container, path, HostSink::Tar(&mut out), follow)?;
        }
        Copy::FromContainer {
            container,
            path,
            to: HostSide::Path(p),
        } => engine.copy_from(
            container,
            path,
            HostSink::Path(std::path::Path::new(p)),
            follow,
        )?,
        Copy::ToContainer {
            from: HostSide::Stream,
            container,
            path,
        } => {
            let mut input = std::io::stdin().lock();
            engine.copy_to(container, path, HostEnd::Tar(&mut input), archive, follow)?;
        }
        Copy::ToContainer {
            from: HostSide::Path(p),
            container,
            path,
        } => {
            let src_path = std::path::Path::new(p);
            if std::fs::symlink_metadata(src_path).is_err() {
                return Err(anyhow::anyhow!("no such file or directory: {p}").into());
            }
            engine.copy_to(container, path, HostEnd::Path(src_path), archive, follow)?;
        }
    }
    Ok(0)
}

fn system_prune(
    root: &std::path::Path,
    all: bool,
    volumes: bool,
    force: bool,
) -> Result<i32, Failure> {
    let mut warning = vec![
        "all stopped containers",
        "all networks not used by at least one container",
    ];
    if volumes {
        warning.push("all anonymous volumes not used by at least one container");
    }
    if all {
        warning.push("all images without at least one container associated to them");
        warning.push("all build cache");
    } else {
        warning.push("all dangling images");
        warning.push("unused build cache");
    }
    if !force {
        let list: String = warning.iter().map(|w| format!("\n  - {w}")).collect();
        if !fmt::confirm(&format!("This will remove:{list}\n\n"))? {
            return Ok(0);
        }
    }
    let engine = open(root)?;
    let r = engine.system_prune(hako_engine::views::system::SystemPruneOptions { all, volumes })?;
    let section = |title: &str, items: &[String]| {
        if !items.is_empty() {
            println!("{title}:");
            for i in items {
                println!("{i}");
            }
            println!();
        }
    };
    section("Deleted Containers", &r.containers);
    section("Deleted Networks", &r.networks);
    section("Deleted Volumes", &r.volumes);
    let images: Vec<String> = r
        .images
        .iter()
        .map(|e| match e {
            hako_engine::hako_image::RemoveEvent::Untagged(r) => format!("untagged: {r}"),
            hako_engine::hako_image::RemoveEvent::Deleted(id) => format!("deleted: {id}"),
        })
        .collect();
    section("Deleted Images", &images);
    let cache: Vec<String> = r
        .build_cache
        .iter()
        .map(|d| d.trim_start_matches("sha256:").to_string())
        .collect();
    section("Deleted build cache objects", &cache);
    let freed = r.space_reclaimed;
    println!("Total reclaimed space: {}", fmt::human_size(freed));
    Ok(0)
}

/// `system df -v`: docker's three tables (images, containers, local volumes). Layers shared
/// between images are not broken out, so there are no SHARED/UNIQUE SIZE columns.
fn system_df_verbose(root: &std::path::Path) -> Result<i32, Failure> {
    use hako_docker::format::{status_text, time_ago};
    let engine = open(root)?;
    let df = engine.system_df_verbose()?;
    let now = hako_base::time::now_nanos();
    let mut out = TabWriter::new(std::io::stdout().lock())
        .minwidth(7)
        .padding(3);
    writeln!(out, "Images space usage:\n")?;
    writeln!(out, "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tCONTAINERS")?;
    for i in &df.images {
        let img = &i.image;
        let created = time_ago(
            img.created
                .as_deref()
                .and_then(|c| hako_base::time::parse_rfc3339(c).ok())
                .filter(|n| *n >= 0),
            now,
        );
        let tags: Vec<(String, String)> = if img.repo_tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            img.repo_tags
                .iter()
                .map(|r| {
                    (
                        r.familiar_repository(),
                        r.tag().unwrap_or("<none>").to_string(),
                    )
                })
                .collect()
        };
        for (repo, tag) in tags {
            writeln!(
                out,
                "{repo}\t{tag}\t{}\t{created}\t{}\t{}",
                short_id(&img.id),
                fmt::human_size(img.size),
                i.containers
            )?;
        }
    }
    writeln!(out, "\nContainers space usage:\n")?;
    writeln!(
        out,
        "CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES"
    )?;
    for d in &df.containers {
        let c = &d.container;
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            &c.id[..12],
            c.image,
            fmt::go_quote(&fmt::ellipsis(&fmt::command_text(&c.command), 20)),
            d.local_volumes,
            fmt::human_size(d.size_rw),
            time_ago(Some(c.created), now),
            status_text(c, now),
            c.name
        )?;
    }
    writeln!(out, "\nLocal Volumes space usage:\n")?;
    writeln!(out, "VOLUME NAME\tLINKS\tSIZE")?;
    for v in &df.volumes {
        writeln!(out, "{}\t{}\t{}", v.name, v.links, fmt::human_size(v.size))?;
    }
    out.flush()?;
    Ok(0)
}

/// `--since`/`--until`: RFC 3339, Unix seconds, or a duration before now ("10m", "2d").
fn parse_time_arg(s: &str) -> anyhow::Result<i64> {
    Ok(fmt::parse_time(s, hako_base::time::now_nanos())?)
}

fn events(
    root: &std::path::Path,
    since: Option<String>,
    until: Option<String>,
    filter: Vec<String>,
    format: Option<String>,
) -> Result<i32, Failure> {
    let since = since.as_deref().map(parse_time_arg).transpose()?;
    let until = until.as_deref().map(parse_time_arg).transpose()?;
    let tmpl = format.as_deref().map(template::Format::parse).transpose()?;
    let pairs = filter
        .iter()
        .map(|f| {
            f.split_once('=')
                .ok_or_else(|| anyhow::anyhow!("bad format of filter (expected name=value)"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let filters = hako_engine::events::EventFilters::new(&pairs)?;
    let engine = open(root)?;
    let mut out = std::io::stdout().lock();
    // A template that fails on an event is reported as itself, not as a failed write.
    let mut failed: Option<anyhow::Error> = None;
    let r = engine.follow_events(since, until, &filters, &mut |e| {
        let line = match &tmpl {
            Some(t) => match t
                .render(&hako_docker::events::message(e))
                .map_err(anyhow::Error::from)
            {
                Ok(l) => l,
                Err(err) => {
                    failed = Some(err);
                    return Err(std::io::Error::other("template"));
                }
            },
            None => e.line(),
        };
        writeln!(out, "{line}")?;
        out.flush()
    });
    if let Some(err) = failed {
        return Err(err.into());
    }
    r?;
    Ok(0)
}

/// `attach`: the container's output from now on, with Ctrl-C and friends relayed to it (as
/// Docker's --sig-proxy does), until the container exits.
/// `start -a` / `start -i`: one container, started and attached from its first output on;
/// the exit status is the container's, as with docker.
fn start_attached(
    root: &std::path::Path,
    keys: &[String],
    stdin: bool,
    detach_keys: &str,
) -> Result<i32, Failure> {
    let [key] = keys else {
        return Err(
            anyhow::anyhow!("you cannot start and attach multiple containers at once").into(),
        );
    };
    let parsed = hako_engine::tty::parse_detach_keys(detach_keys)?;
    let engine = open(root)?;
    let (id, path) = engine.log_file(key)?;
    let from = std::fs::metadata(&path).map_or(0, |m| m.len());
    engine.start_attaching(&id, true)?;
    if let Some(end) = engine.attach_monitor(&id, &parsed, true, stdin)? {
        return Ok(attach_end(&engine, &id, end));
    }
    drop(engine);
    attach_from(root, &id, stdin, true, detach_keys, Some(from))
}

fn attach(
    root: &std::path::Path,
    key: &str,
    stdin: bool,
    sig_proxy: bool,
    detach_keys: &str,
) -> Result<i32, Failure> {
    attach_from(root, key, stdin, sig_proxy, detach_keys, None)
}

/// `attach`; a log `from` offset instead of its end when the container was just started (its
/// first lines may already be there).
fn attach_from(
    root: &std::path::Path,
    key: &str,
    stdin: bool,
    sig_proxy: bool,
    detach_keys: &str,
    from: Option<u64>,
) -> Result<i32, Failure> {
    use hako_engine::logs::LogStart;
    use nix::sys::signal::{SigSet, SigmaskHow, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    use std::os::fd::AsFd;
    let engine = open(root)?;
    let keys = hako_engine::tty::parse_detach_keys(detach_keys)?;
    let (id, _) = engine.log_file(key)?;
    if from.is_none() && !engine.is_running(&id)? {
        return Err(
            anyhow::anyhow!("You cannot attach to a stopped container, start it first").into(),
        );
    }
    // A -t container: its monitor holds the terminal; typed keys (ctrl-c included) go to it.
    // A -i one: its monitor holds the container's stdin, and passes our input on.
    if let Some(end) = engine.attach_monitor(&id, &keys, sig_proxy, stdin)? {
        return Ok(attach_end(&engine, &id, end));
    }
    // The signals relayed to the container arrive on a signalfd, which wakes the same wait
    // as the log's growth and the container's end.
    let signals = if sig_proxy {
        let mut set = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
        ] {
            set.add(s);
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
        Some(SignalFd::with_flags(
            &set,
            SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC,
        )?)
    } else {
        None
    };
    let mut log = engine.follow_log(&id, from.map_or(LogStart::End, LogStart::Offset))?;
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    loop {
        // Read after the state, so the last lines before a recorded exit are shown.
        let running = log.running()?;
        log.read(&mut |l| write_log_line(l, false, false, &mut out, &mut err))?;
        if !running {
            return Ok(engine.wait(&id).unwrap_or(0));
        }
        if log.wait(signals.as_ref().map(|s| s.as_fd()))? {
            while let Some(sig) = signals
                .as_ref()
                .and_then(|s| s.read_signal().ok().flatten())
            {
                let _ = engine.kill(&id, sig.ssi_signo as i32);
            }
        }
    }
}

/// The status of a terminal attach that ended: 0 when detached; the container's otherwise,
/// once its exit is recorded (so the next command sees it exited).
fn attach_end(engine: &Engine, id: &str, end: hako_engine::tty::AttachEnd) -> i32 {
    use hako_engine::tty::AttachEnd;
    match end {
        AttachEnd::Detached => 0,
        AttachEnd::Exited(code) => {
            let _ = engine.wait(id);
            code
        }
        AttachEnd::Closed => engine.wait(id).unwrap_or(0),
    }
}

/// Prints one json-file log line on the stream it came from (`-t` prefixes its time).
fn write_log_line(
    l: &hako_engine::logs::LogLine,
    timestamps: bool,
    details: bool,
    out: &mut impl Write,
    err: &mut impl Write,
) -> std::io::Result<()> {
    let text = hako_docker::logs::text(l, timestamps, details);
    if l.stream == hako_engine::logs::LogStream::Stderr {
        write!(err, "{text}")
    } else {
        write!(out, "{text}")?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// `hako --help` groups the commands as Docker's `--help` does, each listed once.
    #[test]
    fn top_level_help_is_grouped_as_dockers() {
        let help = cli_command().render_help().to_string();
        let at = |s: &str| {
            help.find(s)
                .unwrap_or_else(|| panic!("{s} missing:\n{help}"))
        };
        assert!(at("Common Commands:") < at("Management Commands:"));
        assert!(at("Management Commands:") < at("\nCommands:"));
        assert!(at("\nCommands:") < at("Global Options:"));
        assert!(at("  run ") < at("  exec ") && at("  exec ") < at("Management Commands:"));
        assert!(
            at("  network ") > at("Management Commands:") && at("  network ") < at("\nCommands:")
        );
        assert!(at("  attach ") > at("\nCommands:"));
        for name in ["run", "network", "attach", "rm"] {
            let lines = help
                .lines()
                .filter(|l| l.trim_start().split(' ').next() == Some(name))
                .count();
            assert_eq!(lines, 1, "{name}:\n{help}");
        }
        // A subcommand's help is clap's own.
        let mut cmd = cli_command();
        let run = cmd
            .find_subcommand_mut("run")
            .unwrap()
            .render_help()
            .to_string();
        assert!(!run.contains("Management Commands"), "{run}");
    }

    /// Subcommands are deferred: their arguments are built only when used. Building the whole
    /// tree still has to give clap's consistency checks and every command its own about text.
    #[test]
    fn deferred_command_tree() {
        Cli::command().debug_assert();
        let mut cli = Cli::command();
        cli.build();
        let about = |path: &[&str]| {
            let mut c = &cli;
            for p in path {
                c = c.find_subcommand(p).expect(p);
            }
            c.get_about().map(|a| a.to_string()).unwrap_or_default()
        };
        assert_eq!(
            about(&["create"]),
            "Create a new container without starting it"
        );
        assert_eq!(
            about(&["container", "run"]),
            "Create and run a new container"
        );
        assert!(about(&["update"]).starts_with("Update the resource limits"));
        let run = cli.find_subcommand("run").unwrap();
        assert!(run.get_arguments().any(|a| a.get_id() == "memory"));
        assert!(run.get_arguments().any(|a| a.get_id() == "root"));
    }

    /// Only the invoked subcommand is built, and what it parses is the same as before.
    #[test]
    fn parses_a_deferred_subcommand() {
        let cli = Cli::try_parse_from(["hako", "--root", "/r", "create", "-m", "1g", "img", "x"])
            .unwrap();
        assert_eq!(cli.root, PathBuf::from("/r"));
        let Command::Create(a) = cli.command else {
            panic!("not create")
        };
        assert_eq!(a.resources.memory.as_deref(), Some("1g"));
        let cli = Cli::try_parse_from(["hako", "container", "ls", "-a", "--root", "/s"]).unwrap();
        assert_eq!(cli.root, PathBuf::from("/s"));
        assert!(matches!(
            cli.command,
            Command::Container(ContainerCommand::Ls(_))
        ));
    }
}
