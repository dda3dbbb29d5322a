//! The image store against hostile or extreme input, end to end: archives in old formats and
//! malformed ones, images with many layers, deep trees, and `kill -9` during removals.

mod common;

use std::path::Path;

use common::{images_dir, Root};
use sha2::{Digest, Sha256};

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn count_entries(p: &Path) -> usize {
    std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0)
}

/// A tar from `(name, kind, link target, data)` members.
fn tar_of(members: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn write_temp(data: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .prefix("hako-archive-")
        .tempfile_in("/var/tmp")
        .unwrap();
    std::io::Write::write_all(&mut f, data).unwrap();
    f
}

#[test]
fn load_takes_docker_20_10_repeated_layers_and_refuses_a_manifest_that_is_not_a_list() {
    use tar::EntryType as T;
    let r = Root::new();
    // Docker 20.10's `save` of an image that repeats a layer: the second copy is a symlink.
    let layer = std::fs::read(images_dir().join("busybox.tar")).unwrap();
    let diff = format!("sha256:{}", sha(&layer));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [diff, diff]},
    }))
    .unwrap();
    let cfg = format!("{}.json", sha(&config));
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": cfg, "RepoTags": ["twice:latest"],
        "Layers": ["1111/layer.tar", "2222/layer.tar"],
    }]))
    .unwrap();
    let archive = write_temp(&tar_of(&[
        ("1111/", T::Directory, "", b""),
        ("1111/layer.tar", T::Regular, "", &layer),
        ("2222/", T::Directory, "", b""),
        ("2222/layer.tar", T::Symlink, "../1111/layer.tar", b""),
        (&cfg, T::Regular, "", &config),
        ("manifest.json", T::Regular, "", &manifest),
    ]));
    let path = archive.path().to_str().unwrap();
    assert_eq!(r.ok(&["load", "-i", path]), "Loaded image: twice:latest\n");
    assert_eq!(r.ok(&["run", "--rm", "twice", "echo", "two"]), "two\n");

    // ...but never to a file outside of the archive.
    let archive = write_temp(&tar_of(&[
        ("1111/layer.tar", T::Regular, "", &layer),
        ("2222/layer.tar", T::Symlink, "/etc/passwd", b""),
        (&cfg, T::Regular, "", &config),
        ("manifest.json", T::Regular, "", &manifest),
    ]));
    let (code, out, err) = r.run(&["load", "-i", archive.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("symlink 2222/layer.tar -> /etc/passwd points outside of the archive"),
        "{err}"
    );

    // A manifest.json that is not a list loaded nothing and said nothing.
    let archive = write_temp(&tar_of(&[(
        "manifest.json",
        T::Regular,
        "",
        br#"{"Config": "x.json"}"#,
    )]));
    let (code, out, err) = r.run(&["load", "-i", archive.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(out, "");
    assert!(
        err.contains("manifest.json is not a list of images"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    r.ok(&["rmi", "twice"]);
    assert_eq!(r.ok(&["images", "-q"]), "");
    assert_eq!(count_entries(&r.path().join("layers")), 0);
    assert_eq!(count_entries(&r.path().join("tmp")), 0);
}
