//! `hako network`: flags in, the engine's networks out, rendered as Docker's CLI does.

use std::io::Write;
use std::path::Path;

use clap::Subcommand;
use hako_docker::network::{inspect_json, ls_row, NetworkFilters};
use hako_engine::views::network::NetworkCreate;
use tabwriter::TabWriter;

use crate::{inspect_format, open, print_docs, template, Failure};
use hako_docker::format::created_at as engine_time;

#[derive(Subcommand)]
#[command(defer = true)]
pub enum NetworkCommand {
    /// Create a network
    Create {
        /// Subnet in CIDR format (once IPv4, once IPv6 with --ipv6)
        #[arg(long)]
        subnet: Vec<String>,
        /// Gateway for the IPv4 or IPv6 subnet
        #[arg(long)]
        gateway: Vec<String>,
        /// Allocate container IPs from a sub-range
        #[arg(long)]
        ip_range: Option<String>,
        /// Restrict external access to the network
        #[arg(long)]
        internal: bool,
        /// Enable IPv6 networking
        #[arg(long)]
        ipv6: bool,
        /// Driver (only "bridge")
        #[arg(short, long, default_value = "bridge")]
        driver: String,
        /// Set metadata on a network
        #[arg(long)]
        label: Vec<String>,
        /// Driver specific options
        #[arg(short = 'o', long = "opt")]
        opt: Vec<String>,
        /// Network name
        name: String,
    },
    /// List networks
    #[command(alias = "list")]
    Ls {
        /// Only display network IDs
        #[arg(short, long)]
        quiet: bool,
        /// Filter output (driver=, id=, label=, name=, scope=, type=custom|builtin, dangling=)
        #[arg(short, long, value_parser = crate::usage::filter_arg)]
        filter: Vec<String>,
        /// Format output using a Go template, or json
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more networks
    Inspect {
        /// Format output using a Go template
        #[arg(short, long)]
        format: Option<String>,
        /// Networks
        #[arg(required = true)]
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::networks))]
        names: Vec<String>,
    },
    /// Remove one or more networks
    #[command(alias = "remove")]
    Rm {
        /// Networks
        #[arg(required = true)]
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::networks))]
        names: Vec<String>,
    },
    /// Connect a running container to a network
    Connect {
        /// IPv4 address
        #[arg(long)]
        ip: Option<String>,
        /// IPv6 address
        #[arg(long)]
        ip6: Option<String>,
        /// Add network-scoped alias for the container
        #[arg(long)]
        alias: Vec<String>,
        /// Network
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::networks))]
        network: String,
        /// Container
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        container: String,
    },
    /// Disconnect a container from a network
    Disconnect {
        /// Force the container to disconnect from a network
        #[arg(short, long)]
        force: bool,
        /// Network
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::networks))]
        network: String,
        /// Container
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::containers))]
        container: String,
    },
    /// Remove all unused networks
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
    /// Remove every network of this state root, the default bridge included (used by tests)
    #[command(hide = true)]
    Teardown,
}

/// `k=v` (or a bare `k`, an empty value) arguments as a map.
fn key_values(v: &[String]) -> std::collections::BTreeMap<String, String> {
    v.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

/// The `network inspect` document of `name`, for `hako inspect` too.
pub fn network_doc(
    engine: &hako_engine::Engine,
    name: &str,
) -> Result<serde_json::Value, hako_engine::Error> {
    engine.network_inspect(name).map(|n| inspect_json(&n))
}

pub fn network(root: &Path, cmd: NetworkCommand) -> Result<i32, Failure> {
    let engine = open(root)?;
    match cmd {
        NetworkCommand::Create {
            subnet,
            gateway,
            ip_range,
            internal,
            ipv6,
            driver,
            label,
            opt,
            name,
        } => {
            let n = engine.network_create(
                &name,
                &NetworkCreate {
                    driver,
                    subnets: subnet,
                    gateways: gateway,
                    ip_range,
                    internal,
                    ipv6,
                    labels: key_values(&label),
                    options: key_values(&opt),
                },
            )?;
            println!("{}", n.id);
            Ok(0)
        }
        NetworkCommand::Ls {
            format: Some(f),
            quiet: false,
            filter,
        } => {
            let filters = NetworkFilters::parse(&filter)?;
            let tmpl = template::Format::parse_list(
                &f,
                "table {{.ID}}\\t{{.Name}}\\t{{.Driver}}\\t{{.Scope}}",
            )?;
            let rows: Vec<_> = engine
                .network_list()?
                .iter()
                .filter(|n| filters.matches(n))
                .map(|n| {
                    template::labels_method(&ls_row(n, &engine_time(n.created)), n.labels.clone())
                })
                .collect();
            let text = tmpl.render_list(template::NETWORK_HEADERS, &rows)?;
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(0)
        }
        NetworkCommand::Ls { quiet, filter, .. } => {
            let filters = NetworkFilters::parse(&filter)?;
            let mut out = TabWriter::new(std::io::stdout().lock())
                .minwidth(7)
                .padding(3);
            if !quiet {
                writeln!(out, "NETWORK ID\tNAME\tDRIVER\tSCOPE")?;
            }
            for n in engine.network_list()?.iter().filter(|n| filters.matches(n)) {
                let id = &n.id[..12.min(n.id.len())];
                if quiet {
                    writeln!(out, "{id}")?;
                } else {
                    writeln!(out, "{id}\t{}\t{}\tlocal", n.name, n.driver)?;
                }
            }
            out.flush()?;
            Ok(0)
        }
        NetworkCommand::Inspect { format, names } => {
            let tmpl = inspect_format(format.as_deref())?;
            let mut docs = Vec::new();
            let mut code = 0;
            for n in &names {
                match network_doc(&engine, n) {
                    Ok(d) => docs.push(d),
                    Err(e) => {
                        eprintln!("hako: {e}");
                        code = 1;
                    }
                }
            }
            print_docs(&serde_json::Value::Array(docs), tmpl.as_ref())?;
            Ok(code)
        }
        NetworkCommand::Connect {
            ip,
            ip6,
            alias,
            network,
            container,
        } => {
            engine.network_connect(&container, &network, ip.as_deref(), ip6.as_deref(), &alias)?;
            Ok(0)
        }
        NetworkCommand::Disconnect {
            force: _,
            network,
            container,
        } => {
            engine.network_disconnect(&container, &network)?;
            Ok(0)
        }
        NetworkCommand::Prune { force } => {
            if !force
                && !crate::fmt::confirm(
                    "This will remove all custom networks not used by at least one container.\n",
                )?
            {
                return Ok(0);
            }
            let gone = engine.network_prune()?;
            if !gone.is_empty() {
                println!("Deleted Networks:");
                for n in gone {
                    println!("{n}");
                }
            }
            Ok(0)
        }
        NetworkCommand::Teardown => {
            engine.network_teardown()?;
            Ok(0)
        }
        NetworkCommand::Rm { names } => {
            let mut code = 0;
            for n in &names {
                match engine.network_remove(n) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("hako: {e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
    }
}
