//! Image operations as every front end needs them: listing, inspecting, history, tagging,
//! removal and pruning, pull and push with typed progress, save, load and import, and registry
//! credentials.

use crate::views::image::{
    HistoryEntry, ImageInspect, ImageListOptions, ImagePruneReport, ImageSummary,
};
use crate::{build_cache, Engine, Error, Result};
use hako_image::Reference;
use std::collections::{BTreeMap, HashMap, HashSet};

pub use hako_registry::{
    lines_to, Credentials, LayerStatus, Platform, Progress, ProgressSink, PullOptions, Pulled,
};

/// Where `import` reads a root filesystem tarball from.
pub enum ImportSource<'a> {
    /// A file on this host.
    File(&'a std::path::Path),
    /// An `http://` or `https://` URL.
    Url(&'a str),
    /// A stream the caller has (`import -`, an API request body).
    Reader(&'a mut dyn std::io::Read),
}

/// The RFC 3339 times image configs carry (`2026-11-22T18:30:00.5Z`, or with a `+hh:mm`
/// offset; [`hako_base::time::parse_rfc3339`]), as ns since the epoch. `None` for anything
/// else, or a time before the epoch, rather than a guess.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    hako_base::time::parse_rfc3339(s).ok().filter(|n| *n >= 0)
}

/// The labels of an image's config.
pub fn image_labels(img: &hako_image::Image) -> BTreeMap<String, String> {
    img.config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .map(|l| l.into_iter().collect())
        .unwrap_or_default()
}

impl Engine {
    /// Image → the image it was built on, for the images that exist.
    pub fn image_parents(&self) -> Result<HashMap<String, String>> {
        build_cache::parents(self.store.conn())
    }

    /// `images`: every image (intermediate ones with `opts.all`), newest first.
    pub fn image_list(&self, opts: &ImageListOptions) -> Result<Vec<ImageSummary>> {
        let parents = self.image_parents()?;
        let parent_ids: HashSet<&String> = parents.values().collect();
        let mut users: HashMap<String, usize> = HashMap::new();
        for row in self
            .store
            .conn()
            .prepare_cached("SELECT image_id, count(*) FROM containers GROUP BY image_id")?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        {
            let (id, n) = row?;
            users.insert(id, n as usize);
        }
        let mut out = Vec::new();
        for img in self.store.list()? {
            let untagged = img.repo_tags.is_empty();
            let intermediate = untagged && parent_ids.contains(&img.id);
            if intermediate && !opts.all {
                continue;
            }
            let labels = if opts.labels {
                Some(image_labels(&self.store.resolve(&img.id)?))
            } else {
                None
            };
            let repo_digests = if opts.digests {
                self.store.repo_digests(&img.id)?
            } else {
                Vec::new()
            };
            out.push(ImageSummary {
                parent: parents.get(&img.id).cloned(),
                containers: users.get(&img.id).copied().unwrap_or(0),
                created: img.created.as_deref().and_then(parse_rfc3339),
                created_text: img.created,
                dangling: untagged && !intermediate,
                intermediate,
                labels,
                repo_digests,
                repo_tags: img.repo_tags,
                size: img.size,
                id: img.id,
            });
        }
        Ok(out)
    }

    /// `image inspect`.
    pub fn image_inspect(&self, name: &str) -> Result<ImageInspect> {
        let image = self.store.resolve(name)?;
        let raw: serde_json::Value = serde_json::from_slice(&self.store.read_blob(&image.id)?)
            .map_err(|e| {
                Error::Image(hako_image::Error::Corrupt(format!(
                    "config of {}: {e}",
                    image.id
                )))
            })?;
        let s = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
        Ok(ImageInspect {
            repo_digests: self.store.repo_digests(&image.id)?,
            parent: self.image_parents()?.remove(&image.id),
            comment: raw["history"]
                .as_array()
                .and_then(|h| h.last())
                .map(|h| s(&h["comment"]))
                .unwrap_or_default(),
            created: raw["created"].as_str().map(str::to_string),
            docker_version: s(&raw["docker_version"]),
            author: s(&raw["author"]),
            config: raw
                .get("config")
                .cloned()
                .unwrap_or(serde_json::Value::Null),
            architecture: s(&raw["architecture"]),
            variant: raw["variant"].as_str().map(str::to_string),
            os: s(&raw["os"]),
            size: image.size,
            diff_ids: raw["rootfs"]["diff_ids"]
                .as_array()
                .into_iter()
                .flatten()
                .map(s)
                .collect(),
            layer_dirs: image.layers,
            repo_tags: image.repo_tags,
            id: image.id,
        })
    }

    /// `history`: the image's history entries, newest first, each with the size of the layer
    /// it made.
    pub fn image_history(&self, name: &str) -> Result<Vec<HistoryEntry>> {
        let image = self.store.resolve(name)?;
        let sizes = self.store.layer_sizes(&image.id)?;
        let history = image.config.history().clone().unwrap_or_default();
        // Sizes belong to the history entries that made a layer, in order.
        let mut layer = 0usize;
        let mut out = Vec::with_capacity(history.len());
        for h in &history {
            let empty = h.empty_layer().unwrap_or(false);
            let size = if empty {
                0
            } else {
                let s = sizes.get(layer).copied().unwrap_or(0);
                layer += 1;
                s
            };
            out.push(HistoryEntry {
                id: None,
                created_nanos: h.created().as_deref().and_then(parse_rfc3339),
                created: h.created().clone(),
                created_by: h.created_by().clone().unwrap_or_default(),
                size,
                comment: h.comment().clone().unwrap_or_default(),
                tags: Vec::new(),
                empty_layer: empty,
            });
        }
        out.reverse();
        if let Some(top) = out.first_mut() {
            top.id = Some(image.id.clone());
            top.tags = image.repo_tags.clone();
        }
        Ok(out)
    }

    /// `tag SOURCE TARGET`.
    pub fn image_tag(&self, source: &str, target: &Reference) -> Result<()> {
        let image = self.store.resolve(source)?;
        self.store.tag(&image.id, target)?;
        self.object_event("image", &image.id, "tag", &[("name", target.familiar())]);
        Ok(())
    }

    /// Removes images no container uses: dangling ones (untagged, and no other image's
    /// parent), or all with `all`, those `candidate` accepts (`--filter`); then collects the
    /// blobs and layers no image references.
    ///
    /// As Docker's does, a prune never removes a parent of a remaining image: the steps of a
    /// tagged image's build stay, so its build cache survives. An image removed takes its
    /// parents along once they are left without children, untagged and unused (Docker's
    /// `ImageDelete` with `prune`), whatever the filter; with `all`, tagged ones too if the
    /// filter accepts them.
    pub fn image_prune(
        &self,
        all: bool,
        candidate: &dyn Fn(&hako_image::Image) -> bool,
    ) -> Result<ImagePruneReport> {
        self.durable.set(true);
        let parents = self.image_parents()?;
        let used: HashSet<String> = self.list(true)?.into_iter().map(|c| c.image_id).collect();
        let mut events = Vec::new();
        // Layers are shared between images: count each freed layer once, and only when no
        // remaining image still uses it.
        let mut freed_layers: HashMap<std::path::PathBuf, u64> = HashMap::new();
        let listed = self.store.list()?;
        // Round one goes in the store's order, so the report reads the same each time.
        let mut round: Vec<String> = listed.iter().map(|i| i.id.clone()).collect();
        let mut images: HashMap<String, hako_image::ImageSummary> =
            listed.into_iter().map(|i| (i.id.clone(), i)).collect();
        let children_of = |images: &HashMap<String, hako_image::ImageSummary>| {
            let mut n: HashMap<String, usize> = HashMap::new();
            for id in images.keys() {
                if let Some(p) = parents.get(id) {
                    *n.entry(p.clone()).or_default() += 1;
                }
            }
            n
        };
        // Round one: the images the prune is about. Later rounds: parents the previous round
        // left childless.
        let mut first = true;
        while !round.is_empty() {
            let children = children_of(&images);
            let mut removed = Vec::new();
            for id in round {
                let Some(img) = images.get(&id) else { continue };
                if used.contains(&id) || children.contains_key(&id) {
                    continue;
                }
                let untagged = img.repo_tags.is_empty();
                let full = self.store.resolve(&id)?;
                let doomed = if first {
                    (all || untagged) && candidate(&full)
                } else {
                    untagged || (all && candidate(&full))
                };
                if !doomed {
                    continue;
                }
                let sizes = self.store.layer_sizes(&id).unwrap_or_default();
                // Checked again under the store lock: a container created since the listing
                // keeps its image.
                if let Some(ev) = self.store.remove_unused(&id, &crate::container_using)? {
                    self.image_removal_events(&id, &ev);
                    events.extend(ev);
                    for (i, layer) in full.layers.iter().enumerate() {
                        freed_layers.insert(layer.clone(), sizes.get(i).copied().unwrap_or(0));
                    }
                    images.remove(&id);
                    removed.push(id);
                }
            }
            first = false;
            round = removed
                .iter()
                .filter_map(|id| parents.get(id).cloned())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            round.sort();
        }
        let mut kept_layers = HashSet::new();
        for id in images.keys() {
            if let Ok(full) = self.store.resolve(id) {
                kept_layers.extend(full.layers);
            }
        }
        let freed = freed_layers
            .iter()
            .filter(|(l, _)| !kept_layers.contains(*l))
            .map(|(_, s)| s)
            .sum::<u64>();
        let gc = self.store.gc()?;
        build_cache::forget_missing(self.store.conn())?;
        Ok(ImagePruneReport {
            events,
            space_reclaimed: freed + gc.bytes,
        })
    }

    /// Pulls `reference` from its registry, reporting progress to `progress`. All of the
    /// pull's threads are joined before it returns, so a container can still be cloned from
    /// this process afterwards.
    pub fn pull(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        progress: &mut ProgressSink<'_>,
    ) -> Result<Pulled> {
        let pulled = hako_registry::pull(&self.store, reference, opts, progress)?;
        self.record_pull_trust(reference, &pulled.image.id)?;
        self.reference_event(reference, "pull");
        Ok(pulled)
    }

    /// Pushes the image tagged `reference` to its registry; returns the manifest digest.
    pub fn push(&self, reference: &Reference, progress: &mut ProgressSink<'_>) -> Result<String> {
        let digest = hako_registry::push(&self.store, reference, progress)?;
        self.reference_event(reference, "push");
        Ok(digest)
    }

    /// An image event whose actor is a reference (pull, push), as Docker logs them.
    fn reference_event(&self, reference: &Reference, action: &str) {
        self.object_event(
            "image",
            &reference.familiar(),
            action,
            &[("name", reference.familiar_repository())],
        );
    }

    /// [`Engine::push`], then signs the manifest pushed as `sign` asks; returns the digest
    /// and a line per signature written.
    pub fn push_signed(
        &self,
        reference: &Reference,
        sign: &hako_registry::SignOptions,
        progress: &mut ProgressSink<'_>,
    ) -> Result<(String, Vec<String>)> {
        let pushed = hako_registry::push_signed(&self.store, reference, None, sign, progress)?;
        self.reference_event(reference, "push");
        Ok(pushed)
    }

    /// [`Engine::pull`] as a client logged in with `creds` (an API request's
    /// `X-Registry-Auth`), not with the credentials stored for the registry.
    pub fn pull_as(
        &self,
        reference: &Reference,
        opts: &PullOptions,
        creds: Option<&Credentials>,
        progress: &mut ProgressSink<'_>,
    ) -> Result<Pulled> {
        let pulled = hako_registry::pull_as(&self.store, reference, opts, creds, progress)?;
        self.record_pull_trust(reference, &pulled.image.id)?;
        self.reference_event(reference, "pull");
        Ok(pulled)
    }

    /// [`Engine::push`] as a client logged in with `creds`.
    pub fn push_as(
        &self,
        reference: &Reference,
        creds: Option<&Credentials>,
        progress: &mut ProgressSink<'_>,
    ) -> Result<String> {
        let digest = hako_registry::push_as(&self.store, reference, creds, progress)?;
        self.reference_event(reference, "push");
        Ok(digest)
    }

    /// `save`: writes the images named to `out` as one archive (Docker's and OCI's layout).
    /// Saving by tag records that tag, by ID all of the image's tags, as Docker does.
    pub fn image_save(&self, names: &[String], out: &mut dyn std::io::Write) -> Result<()> {
        let mut list: Vec<(hako_image::Image, Vec<Reference>)> = Vec::new();
        for name in names {
            let image = self.store.resolve(name)?;
            let tags = match Reference::parse(name) {
                Ok(r) if r.tag().is_some() && image.repo_tags.contains(&r) => vec![r],
                _ => image.repo_tags.clone(),
            };
            match list.iter_mut().find(|(i, _)| i.id == image.id) {
                Some((_, t)) => t.extend(tags),
                None => list.push((image, tags)),
            }
        }
        self.store.save(&list, out)?;
        for (image, _) in &list {
            self.object_event("image", &image.id, "save", &[("name", image.id.clone())]);
        }
        Ok(())
    }

    /// `load`: the images of an archive, with the tags it gave them.
    pub fn image_load(&self, input: &mut dyn std::io::Read) -> Result<Vec<hako_image::Loaded>> {
        let loaded = self.store.load_archive(input)?;
        for l in &loaded {
            let id = &l.image.id;
            self.object_event("image", id, "load", &[("name", id.clone())]);
        }
        Ok(loaded)
    }

    /// `import`: an image of one layer from a root filesystem tarball.
    pub fn image_import(
        &self,
        source: ImportSource<'_>,
        opts: &hako_image::ImportOptions,
    ) -> Result<hako_image::Image> {
        let image = match source {
            ImportSource::Reader(r) => self.store.import(r, opts)?,
            ImportSource::Url(url) => {
                let body = hako_registry::open_url(url)?;
                self.store
                    .import(std::io::BufReader::with_capacity(1 << 20, body), opts)?
            }
            ImportSource::File(p) => {
                let f = std::fs::File::open(p)
                    .map_err(|e| Error::io(format!("open {}", p.display()), e))?;
                self.store
                    .import(std::io::BufReader::with_capacity(1 << 20, f), opts)?
            }
        };
        self.object_event("image", &image.id, "import", &[("name", image.id.clone())]);
        Ok(image)
    }
}

/// `login`: checks `creds` against the registry `server` (Docker Hub when `None`) and records
/// them in the Docker client configuration. Returns the registry's domain and the file written.
/// Credentials are the user's, not the state root's, so this needs no engine.
pub fn login(server: Option<&str>, creds: &Credentials) -> Result<(String, std::path::PathBuf)> {
    let domain = hako_registry::login_domain(server);
    let path = hako_registry::login(&domain, creds)?;
    Ok((domain, path))
}

/// `logout`: forgets the credentials of `server`; returns its domain and whether there were
/// any.
pub fn logout(server: Option<&str>) -> Result<(String, bool)> {
    let domain = hako_registry::login_domain(server);
    let had = hako_registry::logout(&domain)?;
    Ok((domain, had))
}

/// The raw manifest (or index) `reference` names in its registry (`manifest inspect`).
pub fn fetch_manifest(reference: &Reference) -> Result<Vec<u8>> {
    Ok(hako_registry::fetch_raw_manifest(reference)?)
}

#[cfg(test)]
mod tests {
    use super::parse_rfc3339;

    #[test]
    fn parses_utc_and_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:01.5Z"),
            Some(951_868_801_500_000_000)
        );
        assert_eq!(
            parse_rfc3339("2000-03-01T09:00:01+09:00"),
            Some(951_868_801_000_000_000)
        );
        assert_eq!(parse_rfc3339("not a time"), None);
        assert_eq!(parse_rfc3339("1969-12-31T23:59:59Z"), None);
    }
}
