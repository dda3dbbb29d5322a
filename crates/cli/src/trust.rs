//! `hako image trust`: the signature policy in effect, and sigstore key pairs to sign with.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use hako_trust::{ImageRef, Policy, RegistriesD};

use crate::Failure;

#[derive(Subcommand)]
pub enum TrustCommand {
    /// Print the signature policy in effect (policy.json) and, for IMAGE, the scope that applies
    Show {
        /// An image reference: show which scope and requirements apply to pulling it
        image: Option<String>,
    },
    /// Make a sigstore key pair to sign with (PREFIX.private, PREFIX.pub), as skopeo and cosign do
    GenerateSigstoreKey {
        /// Write PREFIX.private and PREFIX.pub
        #[arg(long, value_name = "PREFIX")]
        output_prefix: PathBuf,
        /// Read the passphrase sealing the private key from PATH (else none)
        #[arg(long, value_name = "PATH")]
        passphrase_file: Option<PathBuf>,
    },
}

pub fn run(c: TrustCommand) -> Result<i32, Failure> {
    match c {
        TrustCommand::Show { image } => show(image.as_deref()),
        TrustCommand::GenerateSigstoreKey {
            output_prefix,
            passphrase_file,
        } => generate(output_prefix, passphrase_file),
    }
}

fn show(image: Option<&str>) -> Result<i32, Failure> {
    let policy = Policy::load()?;
    let registries = RegistriesD::load()?;
    let mut out = std::io::stdout().lock();
    out.write_all(policy.render().as_bytes())?;
    if let Some(name) = image {
        let r = ImageRef::parse(name).map_err(anyhow::Error::msg)?;
        let (scope, reqs) = policy.requirements_for(&r);
        let types: Vec<&str> = reqs.iter().map(|r| r.type_name()).collect();
        writeln!(out)?;
        writeln!(
            out,
            "{r}: {} applies: {}",
            scope.describe(),
            types.join(", ")
        )?;
        let dir = registries
            .dir
            .as_deref()
            .unwrap_or(std::path::Path::new(""));
        match registries.read_url(&r) {
            Some(u) => writeln!(out, "  simple signatures: {u}")?,
            None => writeln!(
                out,
                "  simple signatures: no lookaside in {}",
                dir.display()
            )?,
        }
        let attached = match registries.use_sigstore_attachments(&r) {
            true => "read from the registry",
            false => "not read (use-sigstore-attachments is off)",
        };
        writeln!(out, "  sigstore signatures: {attached}")?;
    }
    Ok(0)
}

fn generate(prefix: PathBuf, passphrase_file: Option<PathBuf>) -> Result<i32, Failure> {
    let passphrase = match &passphrase_file {
        Some(p) => {
            let mut s = std::fs::read(p).with_context(|| format!("read {}", p.display()))?;
            while s.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
                s.pop();
            }
            s
        }
        None => Vec::new(),
    };
    let (private, public) = hako_trust::generate_key_pair(&passphrase)?;
    let with = |ext: &str| {
        let mut p = prefix.clone().into_os_string();
        p.push(ext);
        PathBuf::from(p)
    };
    let (private_path, public_path) = (with(".private"), with(".pub"));
    for p in [&private_path, &public_path] {
        if p.exists() {
            return Err(anyhow::anyhow!("{} already exists", p.display()).into());
        }
    }
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&private_path)
            .with_context(|| format!("create {}", private_path.display()))?;
        f.write_all(private.as_bytes())
            .with_context(|| format!("write {}", private_path.display()))?;
    }
    if let Err(e) = std::fs::write(&public_path, public) {
        let _ = std::fs::remove_file(&private_path);
        return Err(anyhow::Error::from(e)
            .context(format!("write {}", public_path.display()))
            .into());
    }
    println!(
        "Key written to {} and {}",
        private_path.display(),
        public_path.display()
    );
    Ok(0)
}
