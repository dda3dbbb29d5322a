//! The signature policy for images already in the store. A pull is checked as it happens
//! (`hako_registry`); `run` and `create` check the image they are about to use when it was
//! not checked under the requirements in effect now: pulled before the policy asked for
//! signatures, or never pulled at all (built, loaded, imported, tagged). A verdict is kept per
//! image and per fingerprint of the requirements (their keys included) as an empty file
//! `ROOT/cache/trust/<sha256>`, so a verified image costs a run one policy read and one
//! `stat`, and a policy or key change checks it again.

use crate::{Engine, Result};
use hako_image::{Image, Reference};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

impl Engine {
    fn trust_mark(&self, fingerprint: &str, image_id: &str) -> PathBuf {
        let key = Sha256::digest(format!("{fingerprint}\n{image_id}"));
        self.root.join("cache").join("trust").join(hex::encode(key))
    }

    /// Records that `image_id` satisfied the requirements `fingerprint` names. A mark that
    /// cannot be written costs the next run the same check again.
    fn record_trust(&self, fingerprint: &str, image_id: &str) {
        let mark = self.trust_mark(fingerprint, image_id);
        if let Some(dir) = mark.parent() {
            let _ = std::fs::create_dir_all(dir).and_then(|_| std::fs::write(&mark, b""));
        }
    }

    /// After a pull the policy accepted: the image need not be checked again at its run.
    pub(crate) fn record_pull_trust(&self, reference: &Reference, image_id: &str) -> Result<()> {
        if let Some(fingerprint) = hako_registry::policy_fingerprint(reference)? {
            self.record_trust(&fingerprint, image_id);
        }
        Ok(())
    }

    /// The policy's verdict on running `image` as `name` (what the user typed: a reference or
    /// an ID). Named by one of its tags or by a digest, that reference is checked; named by its
    /// ID, every tag and pulled digest it has; with none, the policy's default.
    pub(crate) fn check_trust(&self, name: &str, image: &Image) -> Result<()> {
        // The common case (no policy, or Debian's accept-anything one) costs one small read.
        if hako_registry::policy_accepts_everything()? {
            return Ok(());
        }
        let digests = self.store.repo_digests(&image.id)?;
        let named = Reference::parse(name)
            .ok()
            .filter(|r| r.digest().is_some() || image.repo_tags.contains(r));
        let refs: Vec<Reference> = match named {
            Some(r) => vec![r],
            None => image
                .repo_tags
                .iter()
                .cloned()
                .chain(digests.iter().filter_map(|d| Reference::parse(d).ok()))
                .collect(),
        };
        if refs.is_empty() {
            return Ok(hako_registry::check_stored_unnamed(&image.id)?);
        }
        for r in &refs {
            let repository = r.repository();
            let pulled: Vec<String> = digests
                .iter()
                .filter_map(|d| d.split_once('@'))
                .filter(|(repo, digest)| {
                    *repo == repository && r.digest().is_none_or(|want| want == *digest)
                })
                .map(|(_, digest)| digest.to_string())
                .collect();
            let known = |fp: &str| self.trust_mark(fp, &image.id).exists();
            if let Some(fingerprint) = hako_registry::check_stored(r, &pulled, &known)? {
                self.record_trust(&fingerprint, &image.id);
            }
        }
        Ok(())
    }
}
