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
    layer_archive(extra, Some(tag))
}

/// [`many_layer_archive`], untagged when `tag` is `None`.
fn layer_archive(extra: usize, tag: Option<&str>) -> tempfile::NamedTempFile {
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
        "Config": cfg, "RepoTags": tag.map(|t| vec![t]), "Layers": names,
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

#[test]
fn a_3000_level_path_is_refused_at_once_and_deep_trees_import() {
    use tar::EntryType as T;
    let r = Root::new();
    let entries: Vec<(String, T)> = (1..=3000).map(|i| ("a/".repeat(i), T::Directory)).collect();
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind) in &entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_size(0);
        b.append_data(&mut h, name, &[][..]).unwrap();
    }
    let deep = write_temp(&b.into_inner().unwrap());
    let start = std::time::Instant::now();
    let (code, _, err) = r.run(&["import", deep.path().to_str().unwrap(), "deep"]);
    // Resolving each level's path from userspace took 205 s of CPU here; Docker refuses
    // this in under a second. A generous bound for a loaded machine.
    let took = start.elapsed();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("is too deep"), "{err}");
    assert!(
        err.contains("513 components, more than 4096 bytes or 512 components"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(took < std::time::Duration::from_secs(30), "{took:?}");
    assert_eq!(r.ok(&["images", "-q"]), "");
    assert_eq!(count_entries(&r.path().join("tmp")), 0);

    // The deepest allowed, a file at every level, imports and runs.
    let mut b = tar::Builder::new(Vec::new());
    let mut path = String::new();
    for i in 0..511 {
        path.push_str("d/");
        for (name, kind, data) in [
            (path.clone(), T::Directory, &b""[..]),
            (format!("{path}f{i}"), T::Regular, &b"x"[..]),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(0o755);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, name, data).unwrap();
        }
    }
    let ok = write_temp(&b.into_inner().unwrap());
    r.ok(&["import", ok.path().to_str().unwrap(), "deepest"]);
    r.ok(&["rmi", "deepest"]);
    assert_eq!(count_entries(&r.path().join("layers")), 0);
}

/// The most threads `pid` had at once, sampled until it exits.
fn peak_threads(child: &mut std::process::Child) -> usize {
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Ok(s) = std::fs::read_to_string(&status) {
            if let Some(n) = s
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse::<usize>().ok())
            {
                peak = peak.max(n);
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    peak
}

#[test]
fn load_stages_layers_on_a_few_threads() {
    use tar::EntryType as T;
    let r = Root::new();
    // 3000 files that look like layers (no image uses them) next to busybox.
    let layer = std::fs::read(images_dir().join("busybox.tar")).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha(&layer))]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": "config.json", "RepoTags": ["few:latest"], "Layers": ["busybox/layer.tar"],
    }]))
    .unwrap();
    let decoys: Vec<(String, Vec<u8>)> = (0..3000)
        .map(|i| {
            let data = vec![i as u8; 20_000];
            (
                format!("decoy/{i}.tar"),
                tar_of(&[(&format!("f{i}"), T::Regular, "", &data)]),
            )
        })
        .collect();
    let mut members: Vec<(&str, T, &str, &[u8])> = decoys
        .iter()
        .map(|(n, d)| (n.as_str(), T::Regular, "", d.as_slice()))
        .collect();
    members.push(("busybox/layer.tar", T::Regular, "", &layer));
    members.push(("config.json", T::Regular, "", &config));
    members.push(("manifest.json", T::Regular, "", &manifest));
    let archive = write_temp(&tar_of(&members));
    let mut child = r
        .cmd(&["load", "-i", archive.path().to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let peak = peak_threads(&mut child);
    assert!(child.wait().unwrap().success());
    // The main thread and at most 8 workers.
    assert!(peak <= 9, "{peak} threads");
    assert_eq!(r.ok(&["run", "--rm", "few", "echo", "ok"]), "ok\n");
    assert_eq!(count_entries(&r.path().join("tmp")), 0);
}

#[test]
fn kill_9_during_rmi_prune_or_load_leaves_no_orphan_after_the_next_command() {
    use std::os::unix::process::ExitStatusExt;
    let r = Root::with_busybox();
    let layers = r.path().join("layers");
    let blobs = r.path().join("blobs/sha256");
    let base = (count_entries(&layers), count_entries(&blobs));
    // busybox and four small layers: its bottom layer is busybox's own, which must stay.
    let tagged = layer_archive(4, Some("five:latest"));
    let dangling = layer_archive(4, None);
    let crash = |args: &[&str], point: &str| {
        let out = r.cmd(args).env("HAKO_TEST_CRASH", point).output().unwrap();
        assert_eq!(
            out.status.signal(),
            Some(9),
            "{args:?} at {point}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let cases: [(&tempfile::NamedTempFile, &[&str], &str); 3] = [
        (&tagged, &["rmi", "five"], "remove:committed"),
        (&tagged, &["rmi", "five"], "remove:unlinking"),
        (&dangling, &["image", "prune", "-f"], "remove:committed"),
    ];
    for (archive, args, point) in cases {
        r.ok(&["load", "-i", archive.path().to_str().unwrap()]);
        crash(args, point);
        // Killed between the commit and the last unlink: files no image references.
        assert!(
            count_entries(&layers) + count_entries(&blobs) > base.0 + base.1,
            "{point}: nothing left to collect"
        );
        assert_eq!(r.ok(&["images", "-q"]).lines().count(), 1, "{point}");
        // That command collected them.
        assert_eq!(
            (count_entries(&layers), count_entries(&blobs)),
            base,
            "{args:?} at {point}"
        );
        assert_eq!(count_entries(&r.path().join("tmp")), 0);
    }
    // Killed after a load renamed its layers into place, before it committed them.
    crash(
        &["load", "-i", tagged.path().to_str().unwrap()],
        "install:renamed",
    );
    assert!(count_entries(&layers) > base.0);
    assert_eq!(r.ok(&["images", "-q"]).lines().count(), 1);
    assert_eq!((count_entries(&layers), count_entries(&blobs)), base);
    assert_eq!(count_entries(&r.path().join("tmp")), 0);
    assert_eq!(r.ok(&["run", "--rm", "busybox", "echo", "ok"]), "ok\n");
}
