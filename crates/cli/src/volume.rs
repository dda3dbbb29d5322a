//! `hako volume`: flags in, the engine's volumes out, rendered as Docker's CLI does.

use std::io::Write;
use std::path::Path;

use clap::Subcommand;
use hako_docker::volume::{inspect_json, ls_row, VolumeFilters};
use hako_engine::volumes::VolumeInfo;
use tabwriter::TabWriter;

use crate::{fmt, inspect_format, open, print_docs, template, Failure};

#[derive(Subcommand)]
#[command(defer = true)]
pub enum VolumeCommand {
    /// Create a volume
    Create {
        /// Set metadata for a volume
        #[arg(short = 'l', long = "label")]
        label: Vec<String>,
        /// Volume name (generated when omitted)
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only display volume names
        #[arg(short, long)]
        quiet: bool,
        /// Filter output (dangling=, driver=, label=, name=)
        #[arg(short, long, value_parser = crate::usage::filter_arg)]
        filter: Vec<String>,
        /// Format output using a Go template, or json
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more volumes
    Inspect {
        /// Format output using a Go template
        #[arg(short, long)]
        format: Option<String>,
        /// Volumes
        #[arg(required = true)]
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::volumes))]
        names: Vec<String>,
    },
    /// Remove one or more volumes
    #[command(alias = "remove")]
    Rm {
        /// A volume that does not exist is no error (volumes in use are still never removed)
        #[arg(short, long)]
        force: bool,
        /// Volumes
        #[arg(required = true)]
        #[arg(add = clap_complete::ArgValueCandidates::new(crate::complete::volumes))]
        names: Vec<String>,
    },
    /// Remove unused volumes (anonymous ones; all unused with -a)
    Prune {
        /// Remove all unused volumes, not just anonymous ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

/// `volume ls --filter`: the volumes that pass.
fn list_filtered(
    engine: &hako_engine::Engine,
    filter: &[String],
) -> anyhow::Result<Vec<VolumeInfo>> {
    let f = VolumeFilters::parse(filter)?;
    let used = if f.needs_usage() {
        engine.volumes_in_use()?
    } else {
        Default::default()
    };
    let mut list = engine.volume_list()?;
    list.retain(|v| f.matches(v, used.contains(&v.name)));
    Ok(list)
}

pub fn volume(root: &Path, cmd: VolumeCommand) -> Result<i32, Failure> {
    let engine = open(root)?;
    match cmd {
        VolumeCommand::Create { label, name } => {
            println!("{}", engine.volume_create(name.as_deref(), &label)?);
            Ok(0)
        }
        VolumeCommand::Ls {
            format: Some(f),
            quiet: false,
            filter,
        } => {
            let tmpl = template::Format::parse_list(&f, "table {{.Driver}}\\t{{.Name}}")?;
            let rows: Vec<_> = list_filtered(&engine, &filter)?
                .iter()
                .map(|v| template::labels_method(&ls_row(v), v.labels.clone()))
                .collect();
            let text = tmpl.render_list(template::VOLUME_HEADERS, &rows)?;
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(0)
        }
        VolumeCommand::Ls { quiet, filter, .. } => {
            let list = list_filtered(&engine, &filter)?;
            let mut out = TabWriter::new(std::io::stdout().lock())
                .minwidth(7)
                .padding(3);
            if !quiet {
                writeln!(out, "DRIVER\tVOLUME NAME")?;
            }
            for v in list {
                if quiet {
                    writeln!(out, "{}", v.name)?;
                } else {
                    writeln!(out, "{}\t{}", v.driver, v.name)?;
                }
            }
            out.flush()?;
            Ok(0)
        }
        VolumeCommand::Inspect { format, names } => {
            let tmpl = inspect_format(format.as_deref())?;
            let mut found = Vec::new();
            let mut code = 0;
            for n in &names {
                match engine.volume_inspect(n) {
                    Ok(v) => found.push(v),
                    Err(e) => {
                        eprintln!("hako: {e}");
                        code = 1;
                    }
                }
            }
            print_docs(
                &serde_json::Value::Array(found.iter().map(inspect_json).collect()),
                tmpl.as_ref(),
            )?;
            Ok(code)
        }
        VolumeCommand::Rm { names, force } => {
            let mut code = 0;
            for n in &names {
                // As Docker's: with -f a missing volume counts as removed.
                match engine.volume_remove(n) {
                    Ok(()) => println!("{n}"),
                    Err(hako_engine::Error::NoSuchVolume(_)) if force => println!("{n}"),
                    Err(e) => {
                        eprintln!("hako: {e}");
                        code = 1;
                    }
                }
            }
            Ok(code)
        }
        VolumeCommand::Prune { all, force } => {
            let warning = if all {
                "This will remove all local volumes not used by at least one container.\n"
            } else {
                "This will remove anonymous local volumes not used by at least one container.\n"
            };
            if !force && !crate::fmt::confirm(warning)? {
                return Ok(0);
            }
            let (removed, freed) = engine.volume_prune(all)?;
            if !removed.is_empty() {
                println!("Deleted Volumes:");
                for n in &removed {
                    println!("{n}");
                }
                println!();
            }
            println!("Total reclaimed space: {}", fmt::human_size(freed));
            Ok(0)
        }
    }
}
