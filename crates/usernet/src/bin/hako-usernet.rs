//! `hako-usernet`: the rootless network helper as a program of its own, for the tests and
//! bench/usernet.sh (the engine runs [`hako_usernet::helper_main`] in its own re-executed
//! binary instead).
//!
//! ```text
//! hako-usernet (--pid PID | --userns PATH --netns PATH) [--stack slirp4netns|pasta|none]
//!              [--mtu N] [--keep-host-loopback] [--api-socket PATH] [--exit-fd N]
//!              [--container-ip IP] [-p SPEC]...
//! ```
//! Prints one JSON line when ready, and runs until the process PID exits or fd N closes.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::ExitCode;

use hako_usernet::{helper_main, parse_publish, Error, HelperConfig, StackConfig, Target};

fn parse(args: &[String]) -> Result<(HelperConfig, Option<OwnedFd>), Error> {
    let mut stack = Some(StackConfig::default());
    let (mut pid, mut userns, mut netns, mut exit_fd) = (None, None, None, None);
    let mut cfg_ports = Vec::new();
    let mut container_ip = None;
    let mut it = args.iter();
    let bad = |s: &str| Error::Invalid(s.to_string());
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .ok_or_else(|| bad(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--pid" => pid = Some(val()?.parse::<i32>().map_err(|_| bad("--pid: not a pid"))?),
            "--userns" => userns = Some(val()?),
            "--netns" => netns = Some(val()?),
            "--exit-fd" => {
                exit_fd = Some(
                    val()?
                        .parse::<i32>()
                        .map_err(|_| bad("--exit-fd: not an fd"))?,
                )
            }
            "--stack" => {
                let v = val()?;
                stack = match v.as_str() {
                    "none" => None,
                    d => Some(StackConfig {
                        driver: d.parse()?,
                        ..stack.unwrap_or_default()
                    }),
                }
            }
            "--mtu" => {
                let m = val()?.parse().map_err(|_| bad("--mtu: not a number"))?;
                if let Some(s) = stack.as_mut() {
                    s.mtu = Some(m);
                }
            }
            "--keep-host-loopback" => {
                if let Some(s) = stack.as_mut() {
                    s.disable_host_loopback = false;
                }
            }
            "--api-socket" => {
                let v = val()?;
                if let Some(s) = stack.as_mut() {
                    s.api_socket = Some(v.into());
                }
            }
            "--container-ip" => {
                container_ip = Some(
                    val()?
                        .parse()
                        .map_err(|_| bad("--container-ip: not an address"))?,
                )
            }
            "-p" | "--publish" => cfg_ports.push(parse_publish(&val()?)?),
            other => return Err(bad(&format!("unknown argument {other:?}"))),
        }
    }
    let mut target = match (pid, userns, netns) {
        (Some(p), None, None) => Target::pid(p),
        (holder, Some(u), Some(n)) => Target {
            holder,
            ..Target::paths(u, n)
        },
        _ => return Err(bad("give --pid, or --userns and --netns")),
    };
    if target.holder.is_none() && pid.is_some() {
        target.holder = pid;
    }
    // SAFETY: the caller passed this fd to us for this purpose; nothing else in the process
    // owns it.
    let exit_fd = exit_fd.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    Ok((
        HelperConfig {
            target,
            stack,
            ports: cfg_ports,
            container_ip,
        },
        exit_fd,
    ))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let run = || -> Result<(), Error> {
        let (cfg, exit_fd) = parse(&args)?;
        helper_main(&cfg, exit_fd, &mut std::io::stdout().lock())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hako-usernet: {e}");
            ExitCode::from(1)
        }
    }
}
