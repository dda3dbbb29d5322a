//! Manifests, indexes and platforms as they travel over the wire.

use serde::Deserialize;

use crate::Error;

pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub(crate) const DOCKER_SCHEMA1_SIGNED: &str =
    "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Everything a pull can use, most preferred first.
pub(crate) const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub platform: Option<WirePlatform>,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct WirePlatform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

/// An OCI index or Docker manifest list.
#[derive(Debug, Deserialize)]
pub(crate) struct Index {
    pub manifests: Vec<Descriptor>,
}

/// An OCI image manifest or Docker schema 2 manifest.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// What kind of document a manifest response holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Index,
    Manifest,
}

/// Classifies a manifest by its Content-Type, falling back to the body's
/// own `mediaType` (registries sometimes answer with a generic type).
pub(crate) fn classify(content_type: &str, body: &[u8], reference: &str) -> Result<Kind, Error> {
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| Error::BadManifest {
        reference: reference.to_string(),
        message: e.to_string(),
    })?;
    let declared = v["mediaType"].as_str().unwrap_or("");
    let kind = |t: &str| -> Option<Result<Kind, Error>> {
        match t {
            OCI_INDEX | DOCKER_LIST => Some(Ok(Kind::Index)),
            OCI_MANIFEST | DOCKER_MANIFEST => Some(Ok(Kind::Manifest)),
            DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => {
                Some(Err(Error::Schema1(reference.to_string())))
            }
            _ => None,
        }
    };
    if let Some(k) = kind(ct).or_else(|| kind(declared)) {
        return k;
    }
    if v["schemaVersion"].as_i64() == Some(1) {
        return Err(Error::Schema1(reference.to_string()));
    }
    // OCI lets the mediaType field be absent: tell by shape.
    if v["manifests"].is_array() {
        return Ok(Kind::Index);
    }
    if v["layers"].is_array() && v["config"].is_object() {
        return Ok(Kind::Manifest);
    }
    Err(Error::UnsupportedMediaType(if ct.is_empty() {
        declared.to_string()
    } else {
        ct.to_string()
    }))
}

/// An os/architecture/variant triple (`--platform`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `windows`, …
    pub os: String,
    /// GOARCH spelling: `amd64`, `arm64`, …
    pub architecture: String,
    /// `v7`, `v8`, … when it matters.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this host (what this binary runs as).
    pub fn host() -> Platform {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "x86" => ("386", None),
            "aarch64" => ("arm64", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            "loongarch64" => ("loong64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
        }
    }

    /// Parses `os/arch[/variant]`, accepting Docker's aliases
    /// (`x86_64`, `aarch64`, `armhf`).
    pub fn parse(s: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(Error::InvalidPlatform(s.to_string()));
        }
        let os = parts[0].to_ascii_lowercase();
        let (arch, mut variant) = match parts[1].to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => ("amd64".to_string(), None),
            "aarch64" => ("arm64".to_string(), None),
            "armhf" => ("arm".to_string(), Some("v7".to_string())),
            "armel" => ("arm".to_string(), Some("v6".to_string())),
            a => (a.to_string(), None),
        };
        if let Some(v) = parts.get(2) {
            variant = Some(v.to_ascii_lowercase());
        }
        Ok(Platform {
            os,
            architecture: arch,
            variant,
        })
    }

    fn matches(&self, p: &WirePlatform) -> bool {
        if p.os != self.os || p.architecture != self.architecture {
            return false;
        }
        match (&self.variant, &p.variant) {
            (None, _) => true,
            (Some(w), Some(g)) => w == g,
            // arm64 images commonly omit the (only) v8 variant.
            (Some(w), None) => self.architecture == "arm64" && w == "v8",
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Picks the index entry for `want`: an exact variant match first, then
/// the first os/arch match. Attestation entries (`unknown/unknown`) never
/// match.
pub(crate) fn select<'a>(index: &'a Index, want: &Platform) -> Result<&'a Descriptor, Error> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| d.platform.as_ref().is_some_and(|p| want.matches(p)))
        .collect();
    if let Some(d) = candidates.first() {
        return Ok(d);
    }
    let oses: Vec<&str> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| p.os.as_str())
        .filter(|o| *o != "unknown")
        .collect();
    if !oses.is_empty() && !oses.contains(&want.os.as_str()) {
        return Err(Error::OsMismatch(oses[0].to_string()));
    }
    Err(Error::NoMatchingPlatform(want.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(&str, &str, Option<&str>)]) -> Index {
        Index {
            manifests: entries
                .iter()
                .enumerate()
                .map(|(i, (os, arch, variant))| Descriptor {
                    media_type: OCI_MANIFEST.into(),
                    digest: format!("sha256:{i:064}"),
                    size: 1,
                    platform: Some(WirePlatform {
                        os: os.to_string(),
                        architecture: arch.to_string(),
                        variant: variant.map(str::to_string),
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn platform_selection() {
        let idx = index(&[
            ("linux", "arm", Some("v6")),
            ("linux", "arm", Some("v7")),
            ("linux", "amd64", None),
            ("linux", "arm64", None),
            ("unknown", "unknown", None),
        ]);
        let pick = |s: &str| {
            select(&idx, &Platform::parse(s).unwrap())
                .unwrap()
                .digest
                .clone()
        };
        assert!(pick("linux/amd64").ends_with("2"));
        assert!(pick("linux/arm/v7").ends_with("1"));
        assert!(pick("linux/arm64/v8").ends_with("3"));
        assert!(matches!(
            select(&idx, &Platform::parse("linux/s390x").unwrap()),
            Err(Error::NoMatchingPlatform(_))
        ));
        let win = index(&[("windows", "amd64", None)]);
        let e = select(&win, &Platform::parse("linux/amd64").unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "image operating system \"windows\" cannot be used on this platform"
        );
    }

    #[test]
    fn classify_manifests() {
        assert_eq!(
            classify(OCI_INDEX, br#"{"manifests":[]}"#, "x").unwrap(),
            Kind::Index
        );
        assert_eq!(
            classify("application/json", br#"{"config":{},"layers":[]}"#, "x").unwrap(),
            Kind::Manifest
        );
        assert!(matches!(
            classify(DOCKER_SCHEMA1_SIGNED, br#"{"schemaVersion":1}"#, "x"),
            Err(Error::Schema1(_))
        ));
        assert!(matches!(
            classify("text/plain", br#"{"schemaVersion":1}"#, "x"),
            Err(Error::Schema1(_))
        ));
        assert!(Platform::parse("linux").is_err());
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
    }
}
