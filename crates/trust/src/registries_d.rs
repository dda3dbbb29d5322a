//! `registries.d` (containers-registries.d(5)): where simple signatures of a repository are
//! read (`lookaside`) and written (`lookaside-staging`), and whether sigstore signatures are
//! read from and written to the registry (`use-sigstore-attachments`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::identity::ImageRef;
use crate::{io_err, Error};

const SYSTEM_DIR: &str = "/etc/containers/registries.d";

/// One scope's settings.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LookasideConfig {
    /// Where signatures are read.
    pub lookaside: Option<String>,
    /// Where signatures are written, when not `lookaside`.
    pub lookaside_staging: Option<String>,
    /// The former name of `lookaside`.
    pub sigstore: Option<String>,
    /// The former name of `lookaside-staging`.
    pub sigstore_staging: Option<String>,
    /// Whether sigstore signatures live in the registry beside the image.
    pub use_sigstore_attachments: Option<bool>,
}

impl LookasideConfig {
    fn read_url(&self) -> Option<&str> {
        self.lookaside.as_deref().or(self.sigstore.as_deref())
    }

    fn write_url(&self) -> Option<&str> {
        self.lookaside_staging
            .as_deref()
            .or(self.sigstore_staging.as_deref())
            .or(self.read_url())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    default_docker: Option<LookasideConfig>,
    docker: Option<BTreeMap<String, LookasideConfig>>,
}

/// All of a `registries.d` directory's files, merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistriesD {
    /// The directory read, if any.
    pub dir: Option<PathBuf>,
    /// `default-docker`.
    pub default_docker: Option<LookasideConfig>,
    /// `docker`: scope → settings.
    pub docker: BTreeMap<String, LookasideConfig>,
}

impl RegistriesD {
    /// The directory in effect: `$HAKO_REGISTRIES_D`; else `~/.config/containers/registries.d`
    /// when it exists; else `/etc/containers/registries.d`.
    pub fn dir() -> PathBuf {
        if let Some(p) = std::env::var_os("HAKO_REGISTRIES_D").filter(|p| !p.is_empty()) {
            return PathBuf::from(p);
        }
        if let Some(user) = crate::home().map(|h| h.join(".config/containers/registries.d")) {
            if user.is_dir() {
                return user;
            }
        }
        PathBuf::from(SYSTEM_DIR)
    }

    /// Reads every `*.yaml` file of [`RegistriesD::dir`]; a missing directory is empty.
    pub fn load() -> Result<RegistriesD, Error> {
        RegistriesD::load_dir(&RegistriesD::dir())
    }

    /// Reads every `*.yaml` file of `dir`. A scope configured in two files is an error, as in
    /// containers/image.
    pub fn load_dir(dir: &Path) -> Result<RegistriesD, Error> {
        let mut out = RegistriesD {
            dir: Some(dir.to_path_buf()),
            ..RegistriesD::default()
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err(dir)(e)),
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
            let f: File = if text.trim().is_empty() {
                File::default()
            } else {
                serde_yaml_ng::from_str(&text).map_err(|e| Error::Config {
                    path: path.clone(),
                    message: e.to_string().replace('\n', " "),
                })?
            };
            if let Some(d) = f.default_docker {
                if out.default_docker.is_some() {
                    return Err(Error::Config {
                        path,
                        message: "default-docker is configured in more than one file".into(),
                    });
                }
                out.default_docker = Some(d);
            }
            for (scope, c) in f.docker.unwrap_or_default() {
                if out.docker.contains_key(&scope) {
                    return Err(Error::Config {
                        path,
                        message: format!("docker.{scope} is configured in more than one file"),
                    });
                }
                out.docker.insert(scope, c);
            }
        }
        Ok(out)
    }

    /// The configured scopes an image falls in, most specific first, then `default-docker`.
    fn configs<'a>(&'a self, image: &ImageRef) -> impl Iterator<Item = &'a LookasideConfig> {
        let mut names = Vec::new();
        let mut name = image.repository();
        loop {
            names.push(name.clone());
            match name.rfind('/') {
                Some(slash) => name.truncate(slash),
                None => break,
            }
        }
        names
            .into_iter()
            .filter_map(|n| self.docker.get(&n))
            .chain(self.default_docker.as_ref())
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// The lookaside URL signatures of `image` are read from.
    pub fn read_url(&self, image: &ImageRef) -> Option<String> {
        self.configs(image)
            .find_map(|c| c.read_url())
            .map(str::to_string)
    }

    /// The lookaside URL signatures of `image` are written to.
    pub fn write_url(&self, image: &ImageRef) -> Option<String> {
        self.configs(image)
            .find_map(|c| c.write_url())
            .map(str::to_string)
    }

    /// Whether sigstore signatures of `image` are kept in its registry.
    pub fn use_sigstore_attachments(&self, image: &ImageRef) -> bool {
        self.configs(image)
            .find_map(|c| c.use_sigstore_attachments)
            .unwrap_or(false)
    }
}

/// The URL of the `index`th (from 1) simple signature of `manifest_digest` under a lookaside
/// base URL: `<base>/<repository path>@sha256=<hex>/signature-<index>`.
pub(crate) fn signature_url(
    base: &str,
    image: &ImageRef,
    manifest_digest: &str,
    index: usize,
) -> String {
    let (algo, hex) = manifest_digest
        .split_once(':')
        .unwrap_or(("sha256", manifest_digest));
    format!(
        "{}/{}@{algo}={hex}/signature-{index}",
        base.trim_end_matches('/'),
        image.path()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_scope_then_default() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "default-docker:\n  lookaside: https://sigs.example/\n  use-sigstore-attachments: false\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "docker:\n  localhost:5000/ns:\n    lookaside: file:///var/sigs\n    lookaside-staging: file:///var/staging\n  localhost:5000:\n    use-sigstore-attachments: true\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "not: [yaml").unwrap();
        let d = RegistriesD::load_dir(dir.path()).unwrap();
        let img = ImageRef::parse("localhost:5000/ns/app:1").unwrap();
        assert_eq!(d.read_url(&img).as_deref(), Some("file:///var/sigs"));
        assert_eq!(d.write_url(&img).as_deref(), Some("file:///var/staging"));
        assert!(d.use_sigstore_attachments(&img));
        let other = ImageRef::parse("quay.io/x:1").unwrap();
        assert_eq!(d.read_url(&other).as_deref(), Some("https://sigs.example/"));
        assert!(!d.use_sigstore_attachments(&other));
        assert_eq!(
            signature_url("file:///var/sigs/", &img, "sha256:abc", 2),
            "file:///var/sigs/ns/app@sha256=abc/signature-2"
        );
    }

    #[test]
    fn unknown_fields_and_duplicates_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            "default-docker:\n  lookasid: x\n",
        )
        .unwrap();
        let e = RegistriesD::load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("a.yaml") && e.contains("lookasid"), "{e}");
        std::fs::write(
            dir.path().join("a.yaml"),
            "docker:\n  q.io:\n    lookaside: x\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "docker:\n  q.io:\n    lookaside: y\n",
        )
        .unwrap();
        let e = RegistriesD::load_dir(dir.path()).unwrap_err().to_string();
        assert!(e.contains("more than one file"), "{e}");
    }
}
