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
        h.set_uid(0);
        h.set_gid(0);
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

/// A docker-archive of busybox plus `extra` small layers: layer `i` adds `/l/<i>` and replaces
/// `/top` with `i`.
fn many_layer_archive(extra: usize, tag: &str) -> tempfile::NamedTempFile {
    use tar::EntryType as T;
    let base = std::fs::read(images_dir().join("busybox.tar")).unwrap();
    let mut layers = vec![base];
    for i in 1..=extra {
        let n = i.to_string();
        layers.push(tar_of(&[
            ("l/", T::Directory, "", b""),
            (&format!("l/{i}"), T::Regular, "", n.as_bytes()),
            ("top", T::Regular, "", n.as_bytes()),
        ]));
    }
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", sha(l)))
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cfg = format!("{}.json", sha(&config));
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("{i}/layer.tar"))
        .collect();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": cfg, "RepoTags": [tag], "Layers": names,
    }]))
    .unwrap();
    let mut members: Vec<(&str, tar::EntryType, &str, &[u8])> = names
        .iter()
        .zip(&layers)
        .map(|(n, l)| (n.as_str(), T::Regular, "", l.as_slice()))
        .collect();
    members.push((&cfg, T::Regular, "", &config));
    members.push(("manifest.json", T::Regular, "", &manifest));
    write_temp(&tar_of(&members))
}

#[test]
fn images_of_125_layers_run_and_more_are_refused() {
    let r = Root::new();
    let most = many_layer_archive(124, "most:latest");
    r.ok(&["load", "-i", most.path().to_str().unwrap()]);
    // Far more than a page of overlay options with this state root's layer paths.
    assert_eq!(
        r.ok(&["run", "--rm", "most", "cat", "/top", "/l/1"]),
        "1241"
    );
    assert_eq!(
        r.ok(&["run", "--rm", "most", "sh", "-c", "ls /l | wc -l"])
            .trim(),
        "124"
    );
    // cp and export assemble the same stack themselves.
    r.ok(&["run", "--name", "deep", "most", "touch", "/new"]);
    let out = tempfile::tempdir_in("/var/tmp").unwrap();
    let copied = out.path().join("top");
    r.ok(&["cp", "deep:/top", copied.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&copied).unwrap(), "124");
    let exported = out.path().join("c.tar");
    r.ok(&["export", "-o", exported.to_str().unwrap(), "deep"]);
    let names: Vec<String> = tar::Archive::new(std::fs::File::open(&exported).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().any(|n| n == "l/1") && names.iter().any(|n| n == "l/124"));
    assert!(
        names.iter().any(|n| n == "bin/busybox"),
        "the bottom layer too"
    );

    // One layer more, by commit or build: refused, and nothing stored.
    let images_before = r.ok(&["images", "-q", "--no-trunc"]);
    let blobs_before = count_entries(&r.path().join("blobs/sha256"));
    let layers_before = count_entries(&r.path().join("layers"));
    let (code, _, err) = r.run(&["commit", "deep", "more"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("max depth exceeded"), "{err}");
    assert!(err.contains("126 layers"), "{err}");
    let ctx = tempfile::tempdir_in("/var/tmp").unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM most\nRUN echo x > /x\n",
    )
    .unwrap();
    let (code, _, err) = r.run(&["build", "-t", "more", ctx.path().to_str().unwrap()]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("max depth exceeded"), "{err}");
    r.ok(&["rm", "-f", "deep"]);
    r.ok(&["container", "prune", "-f"]);
    assert_eq!(r.ok(&["images", "-q", "--no-trunc"]), images_before);
    assert_eq!(count_entries(&r.path().join("blobs/sha256")), blobs_before);
    assert_eq!(count_entries(&r.path().join("layers")), layers_before);
    r.ok(&["rmi", "most"]);

    // Loading 126 layers is refused as a whole.
    let over = many_layer_archive(125, "over:latest");
    let (code, out, err) = r.run(&["load", "-i", over.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(
            "max depth exceeded: the image has 126 layers, more than the 125 an image may have"
        ),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    r.ok(&["image", "prune", "-f"]);
    assert_eq!(r.ok(&["images", "-q"]), "");
    assert_eq!(count_entries(&r.path().join("layers")), 0);
    assert_eq!(count_entries(&r.path().join("blobs/sha256")), 0);
    assert_eq!(count_entries(&r.path().join("tmp")), 0);
}
