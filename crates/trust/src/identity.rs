//! Image identities: the reference an image is pulled by, and how the policy's
//! `signedIdentity` compares it with the `docker-reference` a signature claims.

use std::fmt;

use hako_image::Reference;

/// A fully qualified image reference (`docker.io/library/busybox:latest`), as the policy
/// and signatures see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageRef(Reference);

impl ImageRef {
    /// Parses a reference with Docker's normalization (`busybox` is
    /// `docker.io/library/busybox:latest`).
    pub fn parse(s: &str) -> Result<ImageRef, String> {
        Reference::parse(s).map(ImageRef).map_err(|e| e.to_string())
    }

    /// Parses a reference that must already be written in full, as the policy and
    /// signatures write them (`docker.io/library/busybox`, not `busybox`): containers/image
    /// refuses the short forms there.
    pub fn parse_full(s: &str) -> Result<ImageRef, String> {
        let r = Reference::parse(s).map_err(|e| e.to_string())?;
        let name = s.split(['@']).next().unwrap_or(s);
        let name = match name.rfind('/') {
            Some(slash) => match name[slash..].find(':') {
                Some(c) => &name[..slash + c],
                None => name,
            },
            None => name,
        };
        if name != r.repository() {
            return Err(format!(
                "{s:?} is not a fully qualified reference (it means {})",
                r.repository()
            ));
        }
        Ok(ImageRef(r))
    }

    /// The reference this wraps.
    pub fn reference(&self) -> &Reference {
        &self.0
    }

    /// `domain/path`.
    pub fn repository(&self) -> String {
        self.0.repository()
    }

    /// The registry host (and port).
    pub fn domain(&self) -> &str {
        self.0.domain()
    }

    /// The repository path within the registry.
    pub fn path(&self) -> &str {
        self.0.path()
    }

    /// The manifest digest, when the reference has one.
    pub fn digest(&self) -> Option<&str> {
        self.0.digest()
    }

    /// The tag, when the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.0.tag()
    }

    /// The same image named by its repository and `digest` only.
    pub fn with_digest(&self, digest: &str) -> Result<ImageRef, String> {
        ImageRef::parse(&format!("{}@{digest}", self.repository()))
    }
}

impl fmt::Display for ImageRef {
    /// The full form containers/image prints: `repo:tag`, `repo@digest` or `repo:tag@digest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository())?;
        if let Some(t) = self.tag() {
            write!(f, ":{t}")?;
        }
        if let Some(d) = self.digest() {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The policy's `signedIdentity`: which `docker-reference` in a signature is acceptable for
/// the reference the image is pulled by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignedIdentity {
    /// The same repository and tag (or digest) exactly.
    MatchExact,
    /// The same repository and tag; or, pulled by digest, the same repository with any tag.
    MatchRepoDigestOrExact,
    /// The same repository, any tag.
    MatchRepository,
    /// The signature names exactly this reference, whatever the image is pulled as.
    ExactReference(ImageRef),
    /// The signature names this repository, whatever the image is pulled as.
    ExactRepository(String),
    /// The pulled reference with `prefix` replaced by `signed_prefix`, then as
    /// [`SignedIdentity::MatchRepoDigestOrExact`].
    RemapIdentity {
        /// The prefix of the pulled reference.
        prefix: String,
        /// What the signature names instead.
        signed_prefix: String,
    },
}

impl SignedIdentity {
    /// The policy's name of this kind.
    pub fn name(&self) -> &'static str {
        match self {
            SignedIdentity::MatchExact => "matchExact",
            SignedIdentity::MatchRepoDigestOrExact => "matchRepoDigestOrExact",
            SignedIdentity::MatchRepository => "matchRepository",
            SignedIdentity::ExactReference(_) => "exactReference",
            SignedIdentity::ExactRepository(_) => "exactRepository",
            SignedIdentity::RemapIdentity { .. } => "remapIdentity",
        }
    }

    /// Whether a signature naming `signed` is acceptable for `image`.
    pub fn matches(&self, image: &ImageRef, signed: &ImageRef) -> bool {
        match self {
            SignedIdentity::MatchExact => {
                (image.tag().is_some() || image.digest().is_some())
                    && image.to_string() == signed.to_string()
            }
            SignedIdentity::MatchRepoDigestOrExact => repo_digest_or_exact(image, signed),
            SignedIdentity::MatchRepository => image.repository() == signed.repository(),
            SignedIdentity::ExactReference(r) => r.to_string() == signed.to_string(),
            SignedIdentity::ExactRepository(r) => *r == signed.repository(),
            SignedIdentity::RemapIdentity {
                prefix,
                signed_prefix,
            } => {
                let full = image.to_string();
                let remapped = match matches_prefix(&full, prefix) {
                    true => match ImageRef::parse_full(&format!(
                        "{signed_prefix}{}",
                        &full[prefix.len()..]
                    )) {
                        Ok(r) => r,
                        Err(_) => return false,
                    },
                    false => image.clone(),
                };
                repo_digest_or_exact(&remapped, signed)
            }
        }
    }
}

fn repo_digest_or_exact(image: &ImageRef, signed: &ImageRef) -> bool {
    if image.digest().is_some() {
        image.repository() == signed.repository()
    } else if image.tag().is_some() {
        image.to_string() == signed.to_string()
    } else {
        false
    }
}

/// Whether `prefix` is `name` up to a component boundary (`/`, `:` or `@`), as
/// remapIdentity compares them: `example.com/a` is a prefix of `example.com/a/b` and
/// `example.com/a:1`, not of `example.com/ab`.
fn matches_prefix(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|rest| {
        rest.is_empty() || rest.starts_with(['/', ':', '@']) || prefix.ends_with('/')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    const D: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    #[test]
    fn full_references_only() {
        assert!(ImageRef::parse_full("docker.io/library/busybox:latest").is_ok());
        assert!(ImageRef::parse_full("localhost:5000/a/b").is_ok());
        assert!(ImageRef::parse_full("busybox").is_err());
        assert!(ImageRef::parse_full("library/busybox").is_err());
        assert!(ImageRef::parse_full("docker.io/busybox").is_err());
    }

    #[test]
    fn repo_digest_or_exact_rules() {
        let id = SignedIdentity::MatchRepoDigestOrExact;
        assert!(id.matches(&r("quay.io/a/b:1"), &r("quay.io/a/b:1")));
        assert!(!id.matches(&r("quay.io/a/b:1"), &r("quay.io/a/b:2")));
        let by_digest = r(&format!("quay.io/a/b@{D}"));
        assert!(id.matches(&by_digest, &r("quay.io/a/b:2")));
        assert!(!id.matches(&by_digest, &r("quay.io/a/c:2")));
    }

    #[test]
    fn exact_and_repository() {
        assert!(
            !SignedIdentity::MatchExact.matches(&r(&format!("quay.io/a@{D}")), &r("quay.io/a:1"))
        );
        assert!(SignedIdentity::MatchRepository.matches(&r("quay.io/a:1"), &r("quay.io/a:2")));
        assert!(SignedIdentity::ExactReference(r("quay.io/x:9"))
            .matches(&r("localhost:5000/y:1"), &r("quay.io/x:9")));
        assert!(SignedIdentity::ExactRepository("quay.io/x".into())
            .matches(&r("localhost:5000/y:1"), &r("quay.io/x:3")));
    }

    #[test]
    fn remap() {
        let id = SignedIdentity::RemapIdentity {
            prefix: "mirror.local/ns".into(),
            signed_prefix: "quay.io/ns".into(),
        };
        assert!(id.matches(&r("mirror.local/ns/app:1"), &r("quay.io/ns/app:1")));
        assert!(!id.matches(&r("mirror.local/ns/app:1"), &r("mirror.local/ns/app:2")));
        // Not at a component boundary: no remapping.
        assert!(!id.matches(&r("mirror.local/nsx/app:1"), &r("quay.io/nsx/app:1")));
        assert!(id.matches(&r("mirror.local/nsx/app:1"), &r("mirror.local/nsx/app:1")));
    }
}
