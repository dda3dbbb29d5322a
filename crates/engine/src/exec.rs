//! `hako exec`: another process inside a running container, joining all its namespaces and
//! its cgroup, with the container's environment, user and working directory as defaults.

use crate::{spec, tty, user, ContainerConfig, Engine, Error, Result};
use std::os::fd::AsFd;
use std::time::Duration;

/// Options of `hako exec`.
#[derive(Debug, Default, Clone)]
pub struct ExecOptions {
    /// Command and arguments.
    pub cmd: Vec<String>,
    /// `-e`.
    pub env: Vec<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-i`.
    pub interactive: bool,
    /// `-t`.
    pub tty: bool,
    /// `-d`.
    pub detach: bool,
    /// `--privileged`.
    pub privileged: bool,
}

impl Engine {
    /// Runs a command in a running container; returns its exit status (0 with `detach`).
    /// Records Docker's `exec_create`, `exec_start` and (unless detached) `exec_die` events.
    pub fn exec(&self, key: &str, opts: &ExecOptions) -> Result<i32> {
        if opts.cmd.is_empty() {
            return Err(Error::Invalid("exec needs a command to run".into()));
        }
        let c = self.find(key)?;
        let Some(pid) = self.live_pid(&c.id)? else {
            return Err(Error::NotRunning(c.id));
        };
        let exec_id = crate::random_id()?;
        let line = opts.cmd.join(" ");
        let with_id = [("execID", exec_id.clone())];
        self.event(&c.id, &format!("exec_create: {line}"), &with_id);
        self.event(&c.id, &format!("exec_start: {line}"), &with_id);
        let status = self.exec_in(&c, pid, opts);
        if let (Ok(code), false) = (&status, opts.detach) {
            self.event(
                &c.id,
                "exec_die",
                &[("execID", exec_id), ("exitCode", code.to_string())],
            );
        }
        status
    }

    /// [`Engine::exec`] into `c`, whose init is `pid`.
    fn exec_in(&self, c: &crate::ContainerInfo, pid: i32, opts: &ExecOptions) -> Result<i32> {
        let run = self.config_of(&c.id)?;
        let image = self.resolve_image(&c.image_id)?;
        let layers_top_first: Vec<std::path::PathBuf> =
            image.layers.iter().rev().cloned().collect();
        let plan = self.plan(&c.id, &run, image)?;
        let who = match &opts.user {
            Some(u) => user::resolve(u, &layers_top_first)?,
            None => plan.user.clone(),
        };
        let mut env = plan.env.clone();
        for kv in &opts.env {
            let k = kv.split('=').next().unwrap_or("");
            env.retain(|e| e.split('=').next() != Some(k));
            env.push(kv.clone());
        }
        if opts.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".into());
        }
        let dir = self.container_dir(&c.id);
        let mut caps = plan.limits.capabilities.clone();
        if opts.privileged {
            let all = ContainerConfig {
                privileged: true,
                ..Default::default()
            };
            caps = crate::limits::Limits::parse(&all)?.capabilities;
        }
        let caps_for_filter = caps.clone();
        let mut s = spec::build(&spec::SpecInput {
            rootfs: &dir.join("rootfs"),
            args: opts.cmd.clone(),
            env,
            cwd: opts.workdir.as_deref().unwrap_or(&plan.workdir),
            uid: who.uid,
            gid: who.gid,
            additional_gids: who.additional_gids.clone(),
            hostname: &plan.hostname,
            net: spec::NetMode::Isolated,
            etc_files: [
                ("/etc/hosts", dir.join("hosts")),
                ("/etc/hostname", dir.join("hostname")),
                ("/etc/resolv.conf", dir.join("resolv.conf")),
            ],
            readonly_root: false,
            extra_mounts: Vec::new(),
            caps,
            privileged: false,
            rlimits: plan.limits.rlimits.clone(),
            sysctl: Vec::new(),
            shm_size: None,
            no_new_privileges: run.no_new_privileges,
            // The process joins the container's cgroup, and with it the container's device
            // rules; it makes no device nodes of its own.
            devices: Vec::new(),
            device_rules: Vec::new(),
        })
        .map_err(|e| Error::Invalid(format!("runtime spec: {e}")))?;
        // A host-network container has no network namespace of its own to join.
        let mut linux = s.linux().clone().unwrap_or_default();
        if run.network == crate::Network::Host {
            if let Some(namespaces) = linux.namespaces_mut() {
                namespaces.retain(|n| n.typ() != oci_spec::runtime::LinuxNamespaceType::Network);
            }
        }
        // The container's filter holds for what is exec'd into it, as in docker.
        if !run.privileged {
            linux.set_seccomp(run.seccomp.resolve(&caps_for_filter)?);
        }
        s.set_linux(Some(linux));
        // Every namespace is the container's, entered through its init process (the one
        // builder `hako-runtime exec` uses too); the runtime then leaves the (already
        // assembled) root filesystem alone.
        let process = s.process().clone().unwrap_or_default();
        let hako_runtime::ExecSpec {
            spec: mut s,
            enter_existing_root,
        } = hako_runtime::exec_spec(&s, pid, process);

        let cgroup = crate::rootless::open_cgroup(
            &hako_cgroups::CgroupSystem::detect()?,
            run.cgroup_parent.as_deref(),
            &c.id,
            &self.container_dir(&c.id),
        );
        // The container allocates its pty from its own devpts and sends us the master.
        let console = if opts.tty {
            Some(tty::open(&mut s)?)
        } else {
            None
        };
        let seccomp_cache = self.seccomp_cache();
        // As `run`, a foreground exec is its own seccomp agent ([`crate::missing`]): the
        // process gets its own filter (it joins the container, it is not forked from it), whose
        // listener comes to us. A detached one has nobody to outlive it and answer: its filter
        // answers ENOSYS itself, unrecorded.
        let agent = if opts.detach {
            None
        } else {
            Some(
                crate::missing::socket_pair()
                    .map_err(|e| Error::io("create the seccomp agent's socket", e))?,
            )
        };
        let (s, profile_enosys) = if agent.is_some() {
            crate::missing::agent_spec(&s, &run.seccomp)
        } else {
            (std::borrow::Cow::Borrowed(&s), Vec::new())
        };
        // Without a terminal, pipes that we copy (see `crate::stdio`); a detached process's
        // output goes nowhere, as Docker's (it would otherwise hold our caller's terminal or
        // pipe long after we have gone).
        let pipes = match (opts.detach, &console) {
            (false, None) => Some(crate::stdio::Pipes::new(opts.interactive)?),
            _ => None,
        };
        let null = match opts.detach {
            true => Some(
                std::fs::OpenOptions::new()
                    .write(true)
                    .open("/dev/null")
                    .map_err(|e| Error::io("open /dev/null", e))?,
            ),
            false => None,
        };
        let outputs = match (&pipes, &null) {
            (Some(p), _) => Some(p.outputs()),
            (None, Some(n)) => Some((n.as_fd(), n.as_fd())),
            (None, None) => None,
        };
        // The runtime writes to pipes of a process that may die while it joins the container.
        let pipe = crate::SigpipeBlocked::new();
        let running = hako_runtime::spawn(
            &s,
            &hako_runtime::SpawnOptions {
                cgroup: Some(&cgroup),
                kill_with_parent: !opts.detach,
                stdin: pipes
                    .as_ref()
                    .map_or(hako_runtime::Stdin::Null, |p| p.stdin()),
                stdout: outputs.map(|o| o.0),
                stderr: outputs.map(|o| o.1),
                console_socket: console.as_ref().map(|c| c.theirs.as_fd()),
                seccomp_cache: Some(&seccomp_cache),
                enter_existing_root,
                seccomp_agent: agent.as_ref().map(|(_, theirs)| theirs.as_fd()),
                ..Default::default()
            },
        );
        drop(pipe);
        let running = running?;
        if opts.detach {
            running.detach();
            return Ok(0);
        }
        // Without the thread the listener, unreceived in `ours`, closes with it: the kernel
        // then answers the calls with ENOSYS itself, unrecorded, and nothing hangs.
        let agent = agent.and_then(|(ours, theirs)| {
            drop(theirs);
            crate::missing::Agent::start(ours, profile_enosys).ok()
        });
        let relay = match console {
            Some(c) => {
                let master = c.master()?;
                let raw = opts.interactive.then(tty::RawMode::enter);
                Some((
                    tty::relay(
                        master,
                        opts.interactive,
                        hako_base::jsonlog::JsonLog::discard(),
                        true,
                    ),
                    raw,
                ))
            }
            None => None,
        };
        let copier = pipes.map(|p| p.relay(hako_base::jsonlog::JsonLog::discard(), [true, true]));
        let status = running.wait(Duration::from_secs(10));
        if let Some((t, raw)) = relay {
            let _ = t.join();
            drop(raw);
        }
        if let Some(c) = copier {
            c.finish();
        }
        // What `run` prints too; the container's `.State.MissingSyscalls` is its own
        // process's.
        for m in agent.map(crate::missing::Agent::finish).unwrap_or_default() {
            eprintln!("hako: {}", m.message());
        }
        Ok(status?.code())
    }
}
