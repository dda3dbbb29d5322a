//! hako's own registry settings, in the spirit of dockerd's `daemon.json`:
//! `$HAKO_CONFIG`, or `/etc/hako/config.json` when that is unset.
//!
//! ```json
//! {
//!   "insecure-registries": ["registry.lan:5000", "10.0.0.0/8"],
//!   "registry-mirrors": ["https://mirror.example.com"]
//! }
//! ```
//!
//! A missing file means no settings; a malformed one is an error naming it,
//! never silently ignored.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::Error;

/// Registry settings from hako's config file.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RegistryConfig {
    /// Registries spoken to over plain HTTP: `host[:port]` or IPv4 CIDR ranges.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Mirrors of Docker Hub tried in order before it, as Docker does
    /// (`https://host[:port]` or `http://…`).
    #[serde(default)]
    pub registry_mirrors: Vec<String>,
}

/// Where the config file is read from.
pub fn config_path() -> PathBuf {
    std::env::var_os("HAKO_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/hako/config.json"))
}

impl RegistryConfig {
    /// Reads the config file; defaults when it does not exist.
    pub fn load() -> Result<RegistryConfig, Error> {
        let path = config_path();
        let data = match std::fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(RegistryConfig::default())
            }
            Err(e) => return Err(Error::Io { path, error: e }),
        };
        let cfg: RegistryConfig = serde_json::from_slice(&data).map_err(|e| Error::Config {
            path: path.clone(),
            message: e.to_string(),
        })?;
        for m in &cfg.registry_mirrors {
            if !(m.starts_with("https://") || m.starts_with("http://")) {
                return Err(Error::Config {
                    path,
                    message: format!("registry mirror {m:?} must start with https:// or http://"),
                });
            }
        }
        Ok(cfg)
    }

    /// Whether `domain` (`host[:port]`) is named insecure, by name or by an
    /// IPv4 range its host falls in.
    pub fn is_insecure(&self, domain: &str) -> bool {
        let host = domain.rsplit_once(':').map_or(domain, |(h, _)| h);
        self.insecure_registries.iter().any(|entry| {
            if entry == domain || entry == host {
                return true;
            }
            let Some((net, bits)) = entry.split_once('/') else {
                return false;
            };
            match (
                net.parse::<Ipv4Addr>(),
                bits.parse::<u32>(),
                host.parse::<Ipv4Addr>(),
            ) {
                (Ok(net), Ok(bits), Ok(ip)) if bits <= 32 => {
                    let mask = if bits == 0 {
                        0
                    } else {
                        u32::MAX << (32 - bits)
                    };
                    u32::from(net) & mask == u32::from(ip) & mask
                }
                _ => false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_by_name_port_and_cidr() {
        let c = RegistryConfig {
            insecure_registries: vec![
                "reg.lan:5000".into(),
                "plain.lan".into(),
                "10.1.0.0/16".into(),
            ],
            registry_mirrors: vec![],
        };
        assert!(c.is_insecure("reg.lan:5000"));
        assert!(!c.is_insecure("reg.lan:5001"));
        assert!(c.is_insecure("plain.lan:443"));
        assert!(c.is_insecure("10.1.200.3:5000"));
        assert!(!c.is_insecure("10.2.0.1"));
        assert!(!c.is_insecure("example.com"));
    }

    #[test]
    fn parses_docker_style_keys() {
        let c: RegistryConfig = serde_json::from_str(
            r#"{"insecure-registries":["a:1"],"registry-mirrors":["https://m"],"other":1}"#,
        )
        .unwrap();
        assert_eq!(c.insecure_registries, ["a:1"]);
        assert_eq!(c.registry_mirrors, ["https://m"]);
    }
}
