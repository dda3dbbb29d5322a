//! The container commands: `run`, `create`, `update`. Flags are read by clap here, turned
//! into the engine's typed configuration by `hako_docker::flags`, and handed to the engine.

use crate::{open, usage, Failure};
use clap::Args;
use hako_docker::flags;
use hako_engine::Engine;
use std::io::Write;

// Resource limits shared by `run`/`create` and `update`. Not a doc comment: clap would make
// it the about text of every command that flattens this.
#[derive(Args)]
pub(crate) struct ResourceArgs {
    /// Memory limit (e.g. 512m, 1g)
    #[arg(short = 'm', long)]
    pub(crate) memory: Option<String>,
    /// Memory plus swap limit; -1 for unlimited swap
    #[arg(long)]
    pub(crate) memory_swap: Option<String>,
    /// Number of CPUs (e.g. 1.5)
    #[arg(long)]
    pub(crate) cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long)]
    pub(crate) cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    pub(crate) cpuset_cpus: Option<String>,
    /// Tune container pids limit (-1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) pids_limit: Option<i64>,
}

impl ResourceArgs {
    /// The flags as the Docker-compatibility layer reads them.
    pub(crate) fn flags(&self) -> flags::ResourceFlags {
        flags::ResourceFlags {
            memory: self.memory.clone(),
            memory_swap: self.memory_swap.clone(),
            cpus: self.cpus.clone(),
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            pids_limit: self.pids_limit,
        }
    }
}

// Docker uses -h for --hostname, so clap's automatic -h is switched off here.
#[derive(Args)]
#[command(disable_help_flag = true)]
pub(crate) struct RunArgs {
    /// Remove the container when it exits
    #[arg(long)]
    pub(crate) rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Set environment variables (K=V, or K to copy it from this environment)
    #[arg(short = 'e', long = "env")]
    pub(crate) env: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    pub(crate) workdir: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub(crate) hostname: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub(crate) entrypoint: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub(crate) user: Option<String>,
    /// Connect a container to a network (none, host)
    #[arg(long, alias = "net")]
    pub(crate) network: Option<String>,
    /// Keep STDIN open
    #[arg(short = 'i', long)]
    pub(crate) interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub(crate) tty: bool,
    /// Run container in background
    #[arg(short = 'd', long)]
    pub(crate) detach: bool,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    pub(crate) read_only: bool,
    /// Optional parent cgroup for the container
    #[arg(long)]
    pub(crate) cgroup_parent: Option<String>,
    /// Seconds to wait after a forwarded stop signal before killing the container
    #[arg(long)]
    pub(crate) stop_timeout: Option<u64>,
    /// Signal to stop the container (default: the image's STOPSIGNAL, else SIGTERM)
    #[arg(long)]
    pub(crate) stop_signal: Option<String>,
    /// Set custom DNS search domains
    #[arg(long)]
    pub(crate) dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long)]
    pub(crate) dns_option: Vec<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub(crate) domainname: Option<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) oom_score_adj: Option<i32>,
    /// Read in a line delimited file of labels
    #[arg(long)]
    pub(crate) label_file: Vec<String>,
    /// Add an annotation to the container (passed through to the OCI runtime)
    #[arg(long)]
    pub(crate) annotation: Vec<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long)]
    pub(crate) cgroupns: Option<String>,
    #[command(flatten)]
    pub(crate) resources: ResourceArgs,
    /// Ulimit options (name=soft[:hard])
    #[arg(long)]
    pub(crate) ulimit: Vec<String>,
    /// Add Linux capabilities
    #[arg(long)]
    pub(crate) cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long)]
    pub(crate) cap_drop: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub(crate) privileged: bool,
    /// Bind mount a volume ([SRC:]DST[:OPTS])
    #[arg(short = 'v', long = "volume")]
    pub(crate) volume: Vec<String>,
    /// Mount a tmpfs directory (DST[:OPTS])
    #[arg(long)]
    pub(crate) tmpfs: Vec<String>,
    /// Attach a filesystem mount (type=bind|volume|tmpfs,source=…,target=…[,readonly])
    #[arg(long)]
    pub(crate) mount: Vec<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub(crate) label: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long)]
    pub(crate) add_host: Vec<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub(crate) dns: Vec<String>,
    /// Add additional groups to join
    #[arg(long)]
    pub(crate) group_add: Vec<String>,
    /// Sysctl options
    #[arg(long)]
    pub(crate) sysctl: Vec<String>,
    /// Size of /dev/shm
    #[arg(long)]
    pub(crate) shm_size: Option<String>,
    /// Security options (no-new-privileges)
    #[arg(long)]
    pub(crate) security_opt: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long)]
    pub(crate) env_file: Vec<String>,
    /// Restart policy: no, on-failure[:max-retries], always, unless-stopped
    #[arg(long)]
    pub(crate) restart: Option<String>,
    /// Publish a container's port(s) to the host ([ip:]hostPort:containerPort[/proto])
    #[arg(short = 'p', long = "publish")]
    pub(crate) publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub(crate) publish_all: bool,
    /// IPv4 address on the network
    #[arg(long)]
    pub(crate) ip: Option<String>,
    /// IPv6 address on the network (one created with --ipv6)
    #[arg(long)]
    ip6: Option<String>,
    /// Add a network-scoped alias for the container
    #[arg(long)]
    pub(crate) network_alias: Vec<String>,
    /// Container MAC address (e.g. 92:d0:c6:0a:29:33)
    #[arg(long)]
    pub(crate) mac_address: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub(crate) init: bool,
    /// Attach to STDIN, STDOUT or STDERR (run: only these outputs are shown; all are logged)
    #[arg(short = 'a', long = "attach", value_name = "STREAM")]
    pub(crate) attach: Vec<String>,
    /// Override the key sequence for detaching a container (with -it)
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    pub(crate) detach_keys: String,
    /// Proxy received signals to the process (with -it)
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) sig_proxy: bool,
    /// Add a host device to the container (HOST[:CONTAINER[:PERMISSIONS]]), or a CDI device
    /// (vendor.com/class=name, from the specifications in /etc/cdi and /var/run/cdi)
    #[arg(long)]
    pub(crate) device: Vec<String>,
    /// GPU devices to add to the container ('all', a count, or 'device=ID[,ID...]'): NVIDIA's
    /// CDI devices (nvidia.com/gpu=...)
    #[arg(long)]
    pub(crate) gpus: Option<String>,
    /// Add a rule to the cgroup allowed devices list (e.g. 'c 42:* rmw')
    #[arg(long)]
    pub(crate) device_cgroup_rule: Vec<String>,
    /// PID namespace to use (host, container:NAME)
    #[arg(long)]
    pub(crate) pid: Option<String>,
    /// IPC mode to use (host, container:NAME, private, shareable)
    #[arg(long)]
    pub(crate) ipc: Option<String>,
    /// UTS namespace to use (host)
    #[arg(long)]
    pub(crate) uts: Option<String>,
    /// User namespace to use (rootless: keep-id maps your uid to itself inside)
    #[arg(long)]
    pub(crate) userns: Option<String>,
    /// Log driver options (max-size=10m, max-file=3)
    #[arg(long)]
    pub(crate) log_opt: Vec<String>,
    /// Logging driver (only json-file)
    #[arg(long)]
    pub(crate) log_driver: Option<String>,
    /// Command to run to check health
    #[arg(long)]
    pub(crate) health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h)
    #[arg(long)]
    pub(crate) health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h)
    #[arg(long)]
    pub(crate) health_timeout: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h)
    #[arg(long)]
    pub(crate) health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h)
    #[arg(long)]
    pub(crate) health_start_interval: Option<String>,
    /// Consecutive failures needed to report unhealthy
    #[arg(long)]
    pub(crate) health_retries: Option<u32>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    pub(crate) no_healthcheck: bool,
    /// Add link to another container (NAME[:ALIAS])
    #[arg(long)]
    pub(crate) link: Vec<String>,
    /// Mount volumes from the specified container(s) (C[:ro|rw])
    #[arg(long)]
    pub(crate) volumes_from: Vec<String>,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub(crate) expose: Vec<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long)]
    pub(crate) cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) cpu_quota: Option<i64>,
    /// Memory soft limit
    #[arg(long)]
    pub(crate) memory_reservation: Option<String>,
    /// Disable OOM Killer
    #[arg(long)]
    pub(crate) oom_kill_disable: bool,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable
    #[arg(long)]
    pub(crate) blkio_weight: Option<u16>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long)]
    pub(crate) cpuset_mems: Option<String>,
    /// Tune container memory swappiness (0 to 100)
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) memory_swappiness: Option<i64>,
    /// Block IO weight (relative device weight), PATH:WEIGHT
    #[arg(long)]
    pub(crate) blkio_weight_device: Vec<String>,
    /// Limit read rate (bytes per second) from a device
    #[arg(long)]
    pub(crate) device_read_bps: Vec<String>,
    /// Limit write rate (bytes per second) to a device
    #[arg(long)]
    pub(crate) device_write_bps: Vec<String>,
    /// Limit read rate (IO per second) from a device
    #[arg(long)]
    pub(crate) device_read_iops: Vec<String>,
    /// Limit write rate (IO per second) to a device
    #[arg(long)]
    pub(crate) device_write_iops: Vec<String>,
    /// Write the container ID to the file
    #[arg(long)]
    pub(crate) cidfile: Option<String>,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub(crate) quiet: bool,
    /// Pull image before running: always, missing, never
    #[arg(long, default_value = "missing")]
    pub(crate) pull: String,
    /// Platform of the image to pull (os/arch[/variant])
    #[arg(long)]
    pub(crate) platform: Option<String>,
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    pub(crate) help: Option<bool>,
    /// IMAGE [COMMAND] [ARG...]: everything from the image on belongs to the container, as
    /// with Docker (so `-c` after the image is the command's, not `--cpu-shares`).
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::images))]
    pub(crate) image_and_command: Vec<String>,
}

impl RunArgs {
    /// The flags as the Docker-compatibility layer reads them.
    fn flags(self) -> flags::RunFlags {
        flags::RunFlags {
            name: self.name,
            env: self.env,
            env_file: self.env_file,
            workdir: self.workdir,
            hostname: self.hostname,
            entrypoint: self.entrypoint,
            user: self.user,
            network: self.network,
            interactive: self.interactive,
            tty: self.tty,
            detach: self.detach,
            rm: self.rm,
            read_only: self.read_only,
            cgroup_parent: self.cgroup_parent,
            stop_timeout: self.stop_timeout,
            stop_signal: self.stop_signal.clone(),
            dns_search: self.dns_search.clone(),
            dns_option: self.dns_option.clone(),
            domainname: self.domainname.clone(),
            oom_score_adj: self.oom_score_adj,
            label_file: self.label_file.clone(),
            annotation: self.annotation.clone(),
            cgroupns: self.cgroupns.clone(),
            resources: self.resources.flags(),
            ulimit: self.ulimit,
            cap_add: self.cap_add,
            cap_drop: self.cap_drop,
            privileged: self.privileged,
            volume: self.volume,
            tmpfs: self.tmpfs,
            mount: self.mount,
            label: self.label,
            add_host: self.add_host,
            dns: self.dns,
            group_add: self.group_add,
            sysctl: self.sysctl,
            shm_size: self.shm_size,
            security_opt: self.security_opt,
            restart: self.restart,
            publish: self.publish,
            publish_all: self.publish_all,
            ip: self.ip,
            ip6: self.ip6,
            network_alias: self.network_alias,
            mac_address: self.mac_address,
            init: self.init,
            device: self.device,
            gpus: self.gpus,
            device_cgroup_rule: self.device_cgroup_rule,
            pid: self.pid,
            ipc: self.ipc,
            uts: self.uts,
            userns: self.userns,
            log_opt: self.log_opt,
            log_driver: self.log_driver,
            health_cmd: self.health_cmd,
            health_interval: self.health_interval,
            health_timeout: self.health_timeout,
            health_start_period: self.health_start_period,
            health_start_interval: self.health_start_interval,
            health_retries: self.health_retries,
            no_healthcheck: self.no_healthcheck,
            expose: self.expose,
            volumes_from: self.volumes_from,
            link: self.link,
            more: flags::MoreResourceFlags {
                cpu_period: self.cpu_period,
                cpu_quota: self.cpu_quota,
                memory_reservation: self.memory_reservation,
                oom_kill_disable: self.oom_kill_disable,
                blkio_weight: self.blkio_weight,
                device_read_bps: self.device_read_bps,
                device_write_bps: self.device_write_bps,
                device_read_iops: self.device_read_iops,
                device_write_iops: self.device_write_iops,
                cpuset_mems: self.cpuset_mems,
                memory_swappiness: self.memory_swappiness,
                blkio_weight_device: self.blkio_weight_device,
            },
            image_and_command: self.image_and_command,
        }
    }
}

fn engine_err(e: anyhow::Error) -> Failure {
    Failure { code: 125, err: e }
}

/// `run`/`create` flags read into the container's configuration; what hako cannot do is
/// refused here. `create` exits 1 for what Docker's daemon refuses, 125 for the rest.
fn parse(a: RunArgs, create: bool) -> Result<flags::Parsed, Failure> {
    // Everything from the image on is the container's, so an option clap does not know lands
    // here as the image; no reference starts with '-', and Docker calls it an unknown flag.
    if let Some(flag) = a.image_and_command.first().filter(|s| s.starts_with('-')) {
        return Err(engine_err(anyhow::anyhow!("{}", usage::unknown_flag(flag))));
    }
    let parsed = flags::container_config(&a.flags()).map_err(|e| Failure {
        code: if create && e.by_daemon { 1 } else { 125 },
        err: e.error.into(),
    })?;
    for w in &parsed.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(parsed)
}

/// `hako create`.
pub(crate) fn create(root: &std::path::Path, a: RunArgs) -> Result<i32, Failure> {
    let (pull, platform, quiet) = (a.pull.clone(), a.platform.clone(), a.quiet);
    let cidfile = a.cidfile.clone();
    pull_policy(&pull)?;
    attached_streams(&a.attach)?;
    if !a.attach.is_empty() {
        // Docker's create records them and nothing reads them (`start -a` attaches every
        // stream): refused rather than accepted for nothing.
        return Err(engine_err(anyhow::anyhow!(
            "-a/--attach applies to `run`; `start -a` attaches to every stream"
        )));
    }
    let parsed = parse(a, true)?;
    let mut cid = CidFile::create(cidfile.as_deref())?;
    let engine = open(root).map_err(engine_err)?;
    // Docker's `create` reports what its daemon refuses (a pull that fails too) with
    // status 1, unlike `run`.
    ensure_image(
        &engine,
        &parsed.config.image,
        &pull,
        platform.as_deref(),
        quiet,
    )
    .map_err(|f| Failure { code: 1, ..f })?;
    match engine.create(parsed.name.as_deref(), &parsed.config) {
        Ok(id) => {
            cid.write(&id)?;
            println!("{id}")
        }
        Err(hako_engine::Error::ImageNotFound(name)) => {
            return Err(anyhow::anyhow!("No such image: {name}").into())
        }
        Err(e) => {
            let code = if client_side(&e) { 125 } else { 1 };
            return Err(Failure {
                code,
                err: e.into(),
            });
        }
    }
    Ok(0)
}

/// `--cidfile`: made before the container, so an existing file stops `run`/`create` before
/// anything is created (Docker's check); removed again unless the container's ID got into it.
struct CidFile {
    path: Option<std::path::PathBuf>,
    written: bool,
}

impl CidFile {
    fn create(path: Option<&str>) -> Result<CidFile, Failure> {
        let Some(path) = path else {
            return Ok(CidFile {
                path: None,
                written: false,
            });
        };
        // create_new: two runs given the same file cannot both take it.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(_) => Ok(CidFile {
                path: Some(path.into()),
                written: false,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(engine_err(anyhow::anyhow!(
                    "container ID file found, make sure the other container isn't running or \
                     delete {path}"
                )))
            }
            Err(e) => Err(engine_err(anyhow::anyhow!(
                "failed to create the container ID file: {e}"
            ))),
        }
    }

    fn write(&mut self, id: &str) -> Result<(), Failure> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        std::fs::write(path, id).map_err(|e| {
            engine_err(anyhow::anyhow!(
                "failed to write the container ID to the file: {e}"
            ))
        })?;
        self.written = true;
        Ok(())
    }
}

impl Drop for CidFile {
    fn drop(&mut self) {
        if let (Some(path), false) = (&self.path, self.written) {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Whether an engine error is one Docker's CLI finds itself (a flag's value it parses), so
/// that `create` exits 125 for it: the engine words those as Docker's flag errors.
fn client_side(e: &hako_engine::Error) -> bool {
    matches!(e, hako_engine::Error::Invalid(m) if m.starts_with("invalid argument \""))
}

/// A `--pull` value Docker's CLI knows.
fn pull_policy(policy: &str) -> Result<hako_engine::pull_policy::PullPolicy, Failure> {
    hako_engine::pull_policy::PullPolicy::parse(policy).map_err(|e| engine_err(e.into()))
}

/// `--pull`: the engine fetches the image when the policy asks; the CLI says so as Docker's
/// does and shows the pull's progress on stderr.
fn ensure_image(
    engine: &Engine,
    image: &str,
    policy: &str,
    platform: Option<&str>,
    quiet: bool,
) -> Result<(), Failure> {
    let policy = pull_policy(policy)?;
    let platform = platform
        .map(hako_engine::images::Platform::parse)
        .transpose()
        .map_err(|e| engine_err(e.into()))?;
    // `-q`: nothing but the container's ID (or output) on the way, as Docker's CLI.
    let mut err: Box<dyn Write> = if quiet {
        Box::new(std::io::sink())
    } else {
        Box::new(std::io::stderr().lock())
    };
    let mut missing = |r: &hako_engine::hako_image::Reference| {
        if !quiet {
            let _ = writeln!(
                std::io::stderr(),
                "Unable to find image '{}' locally",
                r.familiar()
            );
        }
    };
    engine
        .ensure_image(
            image,
            policy,
            platform,
            &mut missing,
            &mut crate::progress::sink(quiet, crate::progress::stderr_is_tty(), &mut err),
        )
        .map_err(|e| engine_err(anyhow::anyhow!("{e}")))?;
    Ok(())
}
pub(crate) fn run(root: &std::path::Path, a: RunArgs) -> Result<i32, Failure> {
    let (pull, platform) = (a.pull.clone(), a.platform.clone());
    let (sig_proxy, detach_keys) = (a.sig_proxy, a.detach_keys.clone());
    let (quiet, cidfile) = (a.quiet, a.cidfile.clone());
    pull_policy(&pull)?;
    let detach = a.detach;
    // Without -a, stdout and stderr are shown (and stdin with -i), as Docker's.
    let attached = attached_streams(&a.attach)?;
    if detach && !a.attach.is_empty() {
        return Err(engine_err(anyhow::anyhow!(
            "Conflicting options: -a and -d"
        )));
    }
    let [show_out, show_err] = match attached {
        Some((_, out, err)) => [out, err],
        None => [true, true],
    };
    if a.tty && a.interactive && !show_out {
        // `run -it` goes through the monitor and `attach`, which shows the terminal.
        return Err(engine_err(anyhow::anyhow!(
            "-a without stdout is not supported with -it: the terminal is the container's stdout"
        )));
    }
    if a.tty && a.interactive && !detach {
        crate::fmt::require_terminal_stdin().map_err(|err| Failure { code: 1, err })?;
    }
    let mut parsed = parse(a, false)?;
    if let Some((i, o, e)) = attached {
        let c = &mut parsed.config;
        (c.attach_stdin, c.attach_stdout, c.attach_stderr) = (i, o, e);
    }
    let mut cid = CidFile::create(cidfile.as_deref())?;
    let engine = open(root).map_err(engine_err)?;
    ensure_image(
        &engine,
        &parsed.config.image,
        &pull,
        platform.as_deref(),
        quiet,
    )?;
    // `run -it` is `run -dit` plus `attach`, as in docker: the monitor holds the terminal, so
    // the detach keys can leave the container running.
    let attach = parsed.config.tty && parsed.config.open_stdin && !detach;
    let keys =
        hako_engine::tty::parse_detach_keys(&detach_keys).map_err(|e| engine_err(e.into()))?;
    let mode = hako_engine::RunMode {
        detach: detach || attach,
        attach_on_start: attach,
        hide_stdout: !show_out,
        hide_stderr: !show_err,
    };
    let mut id = String::new();
    let mut cid_err = None;
    let result = engine.run(
        parsed.name.as_deref(),
        &parsed.config,
        mode,
        &mut |started| {
            for w in started.warnings {
                eprintln!("WARNING: {w}");
            }
            if detach {
                println!("{}", started.id);
            }
            id = started.id.to_string();
            if let Err(e) = cid.write(started.id) {
                cid_err = Some(e);
            }
        },
    );
    let code = run_result(result)?;
    if let Some(e) = cid_err {
        return Err(e);
    }
    if !attach {
        return Ok(code);
    }
    match engine.attach_terminal(&id, &keys, sig_proxy)? {
        Some(end) => Ok(crate::attach_end(&engine, &id, end)),
        // It already exited (and its monitor closed the terminal).
        None => Ok(engine.wait(&id).unwrap_or(0)),
    }
}

/// `-a/--attach`'s streams as (stdin, stdout, stderr), `None` without any; Docker's wording
/// for a bad one.
fn attached_streams(values: &[String]) -> Result<Option<(bool, bool, bool)>, Failure> {
    if values.is_empty() {
        return Ok(None);
    }
    let mut streams = (false, false, false);
    for v in values {
        match v.to_ascii_lowercase().as_str() {
            "stdin" => streams.0 = true,
            "stdout" => streams.1 = true,
            "stderr" => streams.2 = true,
            _ => {
                return Err(engine_err(anyhow::anyhow!(
                    "invalid argument \"{v}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"
                )))
            }
        }
    }
    Ok(Some(streams))
}

/// Docker's reporting of a failed `run`/`create`: a missing image gets its own first line.
fn run_result<T>(result: Result<T, hako_engine::Error>) -> Result<T, Failure> {
    match result {
        Ok(v) => Ok(v),
        Err(hako_engine::Error::ImageNotFound(name)) => {
            Err(engine_err(anyhow::anyhow!("No such image: {name}")))
        }
        Err(e) => Err(Failure {
            code: e.exit_code(),
            err: e.into(),
        }),
    }
}

/// `hako update`: new limits (and restart policy) for each container.
pub(crate) fn update(
    root: &std::path::Path,
    resources: &ResourceArgs,
    restart: Option<&str>,
    containers: &[String],
) -> Result<i32, Failure> {
    let r = resources.flags();
    if !r.any() && restart.is_none() {
        return Err(
            anyhow::anyhow!("you must provide one or more flags when using this command").into(),
        );
    }
    // Docker's CLI reads the limits (125 for a bad one); its daemon the restart policy (1).
    let change = flags::update(&r, restart).map_err(|e| Failure {
        code: if e.by_daemon { 1 } else { 125 },
        err: e.error.into(),
    })?;
    crate::each_container(root, containers, |e, k| e.update(k, &change))
}
