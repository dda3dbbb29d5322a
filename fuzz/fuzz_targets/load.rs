//! `hako load` archives (`crates/image/src/archive.rs`): Docker and OCI layouts, plain or
//! compressed, loaded into a store in the sandbox. A load must not write outside the store,
//! must leave nothing in `tmp/`, must record each image under its config's digest with the
//! tags it reports, must save to an archive that loads back as the same images and tags, and
//! removing every image then collecting garbage must empty the store.
#![no_main]

use hako_fuzz::{digest, entries, fix_tar_checksums, max_depth, Store, MAX_DEPTH};
use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, OnceLock};

fn store() -> &'static Mutex<Store> {
    static S: OnceLock<Mutex<Store>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(Store::new("load")))
}

/// Removes every image and collects garbage; the store must be empty then.
fn clear(st: &Store) {
    let s = &st.store;
    for img in s.list().unwrap() {
        s.remove_unused(&img.id, &|_, _| Ok(None)).unwrap();
    }
    s.gc().unwrap();
    let root = &st.sandbox.inside;
    for d in ["blobs/sha256", "layers", "tmp"] {
        let left = entries(&root.join(d));
        assert!(
            left.is_empty(),
            "{d} keeps {left:?} after removing every image"
        );
    }
}

/// Image IDs with their sorted tags, sorted.
type Tagged = Vec<(String, Vec<String>)>;

fn tagged(pairs: impl IntoIterator<Item = (String, Vec<String>)>) -> Tagged {
    let mut out: Tagged = Vec::new();
    for (id, tags) in pairs {
        match out.iter_mut().find(|(i, _)| *i == id) {
            Some((_, t)) => t.extend(tags),
            None => out.push((id, tags)),
        }
    }
    for (_, t) in out.iter_mut() {
        t.sort();
        t.dedup();
    }
    out.sort();
    out
}

fuzz_target!(|data: &[u8]| {
    let mut data = data.to_vec();
    fix_tar_checksums(&mut data);
    if max_depth(&data) > MAX_DEPTH {
        return;
    }
    let guard = store().lock().unwrap_or_else(|e| e.into_inner());
    let st = &*guard;
    let s = &st.store;
    match s.load_archive(&data[..]) {
        Ok(loaded) => {
            st.sandbox.assert_no_escape(None);
            for l in &loaded {
                let config = s.read_blob(&l.image.id).expect("the config is stored");
                assert_eq!(digest(&config), l.image.id);
                let chains = hako_image::ImageStore::chain_ids_of(&config).unwrap();
                assert_eq!(chains.len(), l.image.layers.len());
                for (dir, chain) in l.image.layers.iter().zip(&chains) {
                    assert!(dir.is_dir(), "layer {chain} is not unpacked");
                    assert!(s.has_layer(chain).unwrap());
                }
                for t in &l.tags {
                    assert_eq!(s.resolve(&t.to_string()).unwrap().id, l.image.id, "{t}");
                }
            }
            // What hako saves, it loads back as the same images with the same tags (as they
            // are once the whole archive is in: a later image may have taken a tag).
            let mut images = Vec::new();
            for l in &loaded {
                let img = s.resolve(&l.image.id).unwrap();
                if !images
                    .iter()
                    .any(|(i, _): &(hako_image::Image, _)| i.id == img.id)
                {
                    let tags = img.repo_tags.clone();
                    images.push((img, tags));
                }
            }
            let want = tagged(
                images
                    .iter()
                    .map(|(i, t)| (i.id.clone(), t.iter().map(ToString::to_string).collect())),
            );
            let mut saved = Vec::new();
            s.save(&images, &mut saved).expect("save what was loaded");
            clear(st);
            let again = s.load_archive(&saved[..]).expect("load what was saved");
            let got = tagged(again.iter().map(|l| {
                (
                    l.image.id.clone(),
                    l.tags.iter().map(ToString::to_string).collect(),
                )
            }));
            assert_eq!(got, want, "save and load again");
        }
        Err(e) => st.sandbox.assert_no_escape(Some(&e)),
    }
    st.assert_tmp_empty("a load");
    clear(st);
    st.sandbox.assert_no_escape(None);
});
