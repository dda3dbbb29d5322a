//! `--pull` of `run` and `create`: whether their image is fetched from its registry before the
//! container is made. One place for the CLI's `run`/`create` and any other front end.

use crate::images::{Platform, ProgressSink, PullOptions};
use crate::{Engine, Error, Result};
use hako_image::Reference;

/// Docker's `--pull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull every time.
    Always,
    /// Pull when the image is not in the store (Docker's default).
    #[default]
    Missing,
    /// Never pull: a missing image is the create's "No such image".
    Never,
}

impl PullPolicy {
    /// `always`, `missing` or `never`; anything else is refused in Docker's words.
    pub fn parse(s: &str) -> Result<PullPolicy> {
        match s {
            "always" => Ok(PullPolicy::Always),
            "missing" => Ok(PullPolicy::Missing),
            "never" => Ok(PullPolicy::Never),
            other => Err(Error::Invalid(format!(
                "invalid pull option: '{other}': must be one of \"always\", \"missing\" or \"never\""
            ))),
        }
    }
}

impl Engine {
    /// Fetches `image` when `policy` asks for it: always, or when the store lacks it. Before
    /// pulling a missing image, `missing` is told its reference (the CLI prints Docker's
    /// "Unable to find image 'busybox:latest' locally"); the pull's events go to `progress`. A
    /// name that is no reference (an ID prefix) is not pulled: the create reports it missing.
    /// Returns whether it pulled.
    pub fn ensure_image(
        &self,
        image: &str,
        policy: PullPolicy,
        platform: Option<Platform>,
        missing: &mut dyn FnMut(&Reference),
        progress: &mut ProgressSink<'_>,
    ) -> Result<bool> {
        let local = self.images().resolve(image).ok();
        let present = local.is_some();
        // A local image of another platform than `--platform` asks for is pulled again, as
        // Docker does; with `--pull never` it is refused with Docker's message.
        let other_platform = match (&local, &platform) {
            (Some(img), Some(want)) => {
                let have = hako_image::ImagePlatform::of(&img.config);
                let wanted = hako_image::ImagePlatform {
                    os: want.os.clone(),
                    architecture: want.architecture.clone(),
                    variant: want.variant.clone(),
                };
                (!have.satisfies(&wanted)).then_some(have)
            }
            _ => None,
        };
        let needed = match policy {
            PullPolicy::Always => true,
            PullPolicy::Missing => !present || other_platform.is_some(),
            PullPolicy::Never => false,
        };
        if let (false, Some(have), Some(want)) = (needed, &other_platform, &platform) {
            return Err(Error::Invalid(format!(
                "image with reference {image} was found but does not match the specified platform: wanted {want}, actual: {have}"
            )));
        }
        if !needed {
            return Ok(false);
        }
        let Ok(reference) = Reference::parse(image) else {
            return Ok(false);
        };
        if !present {
            missing(&reference);
        }
        // Every thread of the pull is joined before it returns, so a single-threaded caller
        // can still clone the container afterwards.
        self.pull(&reference, &PullOptions { platform }, progress)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_in_dockers_words() {
        assert_eq!(PullPolicy::parse("always").unwrap(), PullPolicy::Always);
        assert_eq!(PullPolicy::parse("missing").unwrap(), PullPolicy::Missing);
        assert_eq!(PullPolicy::parse("never").unwrap(), PullPolicy::Never);
        let e = PullPolicy::parse("sometimes").unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::Invalid);
        assert!(e.to_string().contains("'sometimes'"), "{e}");
    }

    /// What needs no registry: `never` and a name that is no reference pull nothing, and tell
    /// nobody the image is missing.
    #[test]
    fn nothing_is_pulled_when_the_policy_or_the_name_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let mut told = Vec::new();
        let mut sink = |_: crate::images::Progress| Ok(());
        let pulled = engine
            .ensure_image(
                "busybox",
                PullPolicy::Never,
                None,
                &mut |r| told.push(r.to_string()),
                &mut sink,
            )
            .unwrap();
        assert!(!pulled);
        let pulled = engine
            .ensure_image(
                "Not A Reference",
                PullPolicy::Missing,
                None,
                &mut |r| told.push(r.to_string()),
                &mut sink,
            )
            .unwrap();
        assert!(!pulled);
        assert!(told.is_empty(), "{told:?}");
    }
}
