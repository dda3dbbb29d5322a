//! `hako import`, `images`, `rmi` and `tag` end to end.

mod common;

use common::{images_dir, Root};
use std::io::Write;
use std::process::Stdio;

fn blob_count(r: &Root) -> usize {
    std::fs::read_dir(r.path().join("blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn import_makes_a_content_addressed_image() {
    let r = Root::new();
    let tar = images_dir().join("busybox.tar");
    let id = r
        .ok(&["import", tar.to_str().unwrap(), "busybox"])
        .trim()
        .to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    // The id is the digest of the config blob, which lists the layer's diff id.
    let config_path = r.path().join("blobs/sha256").join(&id[7..]);
    let config = std::fs::read(&config_path).unwrap();
    let digest = std::process::Command::new("sha256sum")
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&digest.stdout).starts_with(&id[7..]));
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    assert!(config["created"].as_str().unwrap().ends_with('Z'));
    let tar_digest = std::process::Command::new("sha256sum")
        .arg(&tar)
        .output()
        .unwrap();
    let tar_digest = String::from_utf8_lossy(&tar_digest.stdout)[..64].to_string();
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        format!("sha256:{tar_digest}")
    );
    assert!(config["history"][0]["comment"]
        .as_str()
        .unwrap()
        .contains("Imported from"));

    let images = r.ok(&["images"]);
    let lines: Vec<&str> = images.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{images}"
    );
    assert!(lines[0].ends_with("SIZE"), "{images}");
    let cols: Vec<&str> = lines[1]
        .split("   ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(cols[0], "busybox");
    assert_eq!(cols[1], "latest");
    assert_eq!(cols[2], &id[7..19]);
    assert!(cols[3].ends_with("ago"), "{images}");
    assert!(cols[4].ends_with("MB"), "{images}");

    // Same content again: a new image (its config records a new creation time, as Docker's
    // does) sharing the one unpacked layer.
    assert_eq!(
        r.ok(&["import", tar.to_str().unwrap(), "other:v1"])
            .trim()
            .len(),
        71
    );
    assert_eq!(r.ok(&["images", "-q"]).lines().count(), 2);
    assert_eq!(
        std::fs::read_dir(r.path().join("layers")).unwrap().count(),
        1
    );
}

#[test]
fn import_from_stdin_and_bad_archives() {
    let r = Root::new();
    let tar = std::fs::read(images_dir().join("busybox.tar")).unwrap();
    let mut child = r
        .cmd(&["import", "-", "fromstdin:latest"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert!(r.ok(&["images"]).contains("fromstdin"));
    let before = blob_count(&r);

    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "this is not a tarball\n".repeat(100)).unwrap();
    let truncated = dir.path().join("truncated.tar");
    std::fs::write(&truncated, &tar[..tar.len() / 2 + 100]).unwrap();
    let empty = dir.path().join("empty.tar");
    std::fs::write(&empty, b"").unwrap();
    for bad in [&text, &truncated, &empty] {
        let (code, _, err) = r.run(&["import", bad.to_str().unwrap(), "bad"]);
        assert_eq!(code, 1, "{}", bad.display());
        assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
        assert!(!r.ok(&["images"]).contains("bad"));
        assert_eq!(
            blob_count(&r),
            before,
            "nothing added to the store for {}",
            bad.display()
        );
        assert_eq!(std::fs::read_dir(r.path().join("tmp")).unwrap().count(), 0);
    }
    let (code, _, err) = r.run(&["import", "/no/such.tar"]);
    assert_eq!(code, 1);
    assert!(err.contains("/no/such.tar"), "{err}");
    let (code, _, err) = r.run(&[
        "import",
        images_dir().join("busybox.tar").to_str().unwrap(),
        "UPPER",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.to_lowercase().contains("invalid reference") || err.contains("lowercase"),
        "{err}"
    );
}

#[test]
fn rmi_refuses_images_in_use_and_untags_like_docker() {
    let r = Root::with_busybox();
    r.ok(&["tag", "busybox", "mybox:2"]);
    let images = r.ok(&["images"]);
    assert!(
        images.contains("mybox") && images.contains("busybox"),
        "{images}"
    );
    // Removing one of two tags only untags.
    assert_eq!(r.ok(&["rmi", "mybox:2"]), "Untagged: mybox:2\n");

    r.ok(&["run", "--name", "user", "busybox", "true"]);
    let (code, _, err) = r.run(&["rmi", "busybox"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "conflict: unable to remove repository reference \"busybox\" (must force) - container "
        ) && err.contains(" is using its referenced image "),
        "{err}"
    );
    assert!(r.ok(&["images"]).contains("busybox"));
    r.ok(&["rm", "user"]);
    let out = r.ok(&["rmi", "busybox"]);
    assert!(
        out.starts_with("Untagged: busybox:latest\nDeleted: sha256:"),
        "{out}"
    );
    assert_eq!(r.ok(&["images", "-q"]), "");
    assert_eq!(
        std::fs::read_dir(r.path().join("layers")).unwrap().count(),
        0,
        "layer removed"
    );
    let (code, _, err) = r.run(&["rmi", "busybox"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such image"), "{err}");
}

fn layer_dirs(r: &Root) -> usize {
    std::fs::read_dir(r.path().join("layers")).unwrap().count()
}

#[test]
fn rmi_force_refuses_the_image_of_a_running_container() {
    let r = Root::with_busybox();
    let id = r.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    let short = &id[7..19];
    let cid = r.ok(&["run", "-d", "--name", "busy", "busybox", "sleep", "1000"]);
    let cshort = &cid.trim()[..12];
    let (layers, blobs) = (layer_dirs(&r), blob_count(&r));
    for args in [
        &["rmi", "-f", short][..],
        &["rmi", "-f", &id],
        &["rmi", short],
    ] {
        let (code, out, err) = r.run(args);
        assert_eq!(code, 1, "{args:?}");
        assert_eq!(out, "");
        assert_eq!(
            err.trim(),
            format!("hako: conflict: unable to delete {short} (cannot be forced) - image is being used by running container {cshort}")
        );
    }
    assert_eq!((layer_dirs(&r), blob_count(&r)), (layers, blobs));
    assert!(r.ok(&["images"]).contains("busybox"));
    assert_eq!(r.ok(&["exec", "busy", "echo", "alive"]), "alive\n");
    assert!(r.ok(&["ps"]).contains("busy"));
    r.ok(&["rm", "-f", "busy"]);
}

#[test]
fn rmi_force_untags_a_stopped_containers_image_until_it_is_removed() {
    let r = Root::with_busybox();
    let id = r.ok(&["images", "-q", "--no-trunc"]).trim().to_string();
    r.ok(&["create", "--name", "idle", "busybox", "echo", "still here"]);
    let (code, _, err) = r.run(&["rmi", &id[7..19]]);
    assert_eq!(code, 1);
    assert!(
        err.contains("(must be forced) - image is being used by stopped container"),
        "{err}"
    );
    let (layers, blobs) = (layer_dirs(&r), blob_count(&r));
    assert_eq!(
        r.ok(&["rmi", "-f", "busybox"]),
        "Untagged: busybox:latest\n"
    );
    // Kept as a <none> image with its layers and config while the container uses it.
    assert_eq!(r.ok(&["images", "-q", "--no-trunc"]).trim(), id);
    assert!(r.ok(&["images"]).contains("<none>"));
    assert_eq!((layer_dirs(&r), blob_count(&r)), (layers, blobs));
    assert_eq!(
        r.ok(&["image", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );
    assert_eq!(r.ok(&["images", "-q", "--no-trunc"]).trim(), id);
    r.ok(&["start", "idle"]);
    assert_eq!(r.ok(&["wait", "idle"]), "0\n");
    assert_eq!(r.ok(&["logs", "idle"]), "still here\n");
    r.ok(&["rm", "idle"]);
    let out = r.ok(&["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {id}")), "{out}");
    assert_eq!(r.ok(&["images", "-q"]), "");
    assert_eq!((layer_dirs(&r), blob_count(&r)), (0, 0));
}

#[test]
fn images_filters_and_formats_like_docker() {
    let r = Root::with_busybox();
    let tar = images_dir().join("busybox.tar");
    let tar = tar.to_str().unwrap();
    r.ok(&[
        "import",
        "-c",
        "LABEL app=web",
        "-c",
        "LABEL tier=front",
        tar,
        "web:1",
    ]);
    r.ok(&["tag", "web:1", "localhost:5000/team/web:2"]);
    let dangling_id = r.ok(&["import", tar]).trim().to_string();
    let short = &dangling_id[7..19];

    let fmt = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["images"];
        a.extend_from_slice(args);
        let mut v: Vec<String> = r.ok(&a).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let rt = ["--format", "{{.Repository}}:{{.Tag}}"];
    assert_eq!(
        fmt(&rt),
        [
            "<none>:<none>",
            "busybox:latest",
            "localhost:5000/team/web:2",
            "web:1"
        ]
    );
    assert_eq!(fmt(&["-f", "dangling=true", "-q"]), [short.to_string()]);
    assert_eq!(
        fmt(&["-f", "dangling=false", rt[0], rt[1]]),
        ["busybox:latest", "localhost:5000/team/web:2", "web:1"]
    );
    // Go's path.Match: `*` does not cross `/`; the pattern is tried with and without the tag.
    assert_eq!(
        fmt(&["-f", "reference=bu*", rt[0], rt[1]]),
        ["busybox:latest"]
    );
    assert_eq!(fmt(&["-f", "reference=*:1", rt[0], rt[1]]), ["web:1"]);
    assert_eq!(
        fmt(&["-f", "reference=localhost:5000/*/*", rt[0], rt[1]]),
        ["localhost:5000/team/web:2"]
    );
    assert_eq!(
        fmt(&[
            "-f",
            "reference=web",
            "-f",
            "reference=busybox",
            rt[0],
            rt[1]
        ]),
        ["busybox:latest", "web:1"],
        "values of one key are ORed"
    );
    assert_eq!(
        fmt(&["web", rt[0], rt[1]]),
        ["web:1"],
        "positional reference"
    );
    assert_eq!(
        fmt(&["-f", "label=app", "-f", "label=tier=front", rt[0], rt[1]]),
        ["localhost:5000/team/web:2", "web:1"]
    );
    assert!(fmt(&["-f", "label=app=db", "-q"]).is_empty());
    // Ordered by creation: busybox, then web, then the dangling import.
    assert_eq!(fmt(&["-f", "since=web:1", "-q"]), [short.to_string()]);
    assert_eq!(
        fmt(&["-f", "before=web:1", rt[0], rt[1]]),
        ["busybox:latest"]
    );

    let table = r.ok(&[
        "images",
        "--format",
        "table {{.Repository}}\\t{{.ID}}\\t{{.Size}}",
        "busybox",
    ]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("REPOSITORY   IMAGE ID"), "{table}");
    assert!(lines[0].ends_with("SIZE"), "{table}");
    assert!(lines[1].starts_with("busybox"), "{table}");

    let json = r.ok(&[
        "images",
        "--format",
        "json",
        "--no-trunc",
        "-f",
        "dangling=true",
    ]);
    let doc: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(doc["ID"], dangling_id.as_str());
    assert_eq!(doc["Repository"], "<none>");
    assert_eq!(doc["Tag"], "<none>");
    assert!(
        doc["CreatedAt"].as_str().unwrap().ends_with("+0000 UTC"),
        "{doc}"
    );
    assert!(doc["Size"].as_str().unwrap().ends_with("MB"), "{doc}");

    for bad in ["bogus=1", "dangling=maybe", "reference=[abc"] {
        let (code, _, err) = r.run(&["images", "-f", bad]);
        assert_eq!(code, 1, "{bad}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}

#[test]
fn images_hides_intermediate_build_images_without_all() {
    let r = Root::with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nENV STEP=1\nENV STEP=2\n",
    )
    .unwrap();
    r.ok(&["build", "-q", "-t", "final", ctx.path().to_str().unwrap()]);
    let shown = r.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(!shown.contains("<none>"), "intermediates hidden: {shown}");
    let all = r.ok(&["images", "-a", "--format", "{{.Repository}}"]);
    assert!(all.contains("<none>"), "-a shows the build steps: {all}");
    assert!(r.ok(&["images", "-q", "-f", "dangling=true"]).is_empty());
}

#[test]
fn image_prune_removes_unused_images_and_collects_garbage() {
    let r = Root::with_busybox();
    let tar = images_dir().join("busybox.tar");
    let tar = tar.to_str().unwrap();
    let other = images_dir().join("trixie.tar");
    r.ok(&["import", "-c", "LABEL app=web", tar, "web:1"]);
    let dangling = r
        .ok(&["import", other.to_str().unwrap()])
        .trim()
        .to_string();
    let used = r.ok(&["import", tar]).trim().to_string();
    r.ok(&["run", "--name", "keeper", &used, "true"]);
    let layers_before = std::fs::read_dir(r.path().join("layers")).unwrap().count();
    assert_eq!(layers_before, 2);

    let out = r.answered(&["image", "prune"], "n\n");
    assert_eq!(
        out,
        "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
    );
    assert_eq!(
        r.ok(&["images", "-q", "-f", "dangling=true"])
            .lines()
            .count(),
        2
    );

    // Leftovers of a crash between a removal's commit and its unlinks.
    let orphan_blob = r.path().join("blobs/sha256").join("ab".repeat(32));
    std::fs::write(&orphan_blob, b"orphan").unwrap();
    let orphan_layer = r.path().join("layers").join("cd".repeat(32));
    std::fs::create_dir_all(orphan_layer.join("diff")).unwrap();

    let out = r.answered(&["image", "prune"], "y\n");
    let expected = format!("Deleted Images:\ndeleted: {dangling}\n\nTotal reclaimed space: ");
    assert!(out.contains(&expected), "{out}");
    assert!(
        out.trim_end().ends_with("MB"),
        "trixie's layer is counted: {out}"
    );
    assert!(
        !orphan_blob.exists() && !orphan_layer.exists(),
        "garbage collected"
    );
    assert_eq!(
        std::fs::read_dir(r.path().join("layers")).unwrap().count(),
        1,
        "trixie's layer removed, busybox's shared one kept"
    );
    let ids = r.ok(&["images", "-a", "-q", "--no-trunc"]);
    assert!(ids.contains(&used), "image of a container kept: {ids}");

    // -a with a label filter removes only matching tagged images.
    let out = r.ok(&["image", "prune", "-a", "-f", "--filter", "label=app=web"]);
    assert!(
        out.starts_with("Deleted Images:\nuntagged: web:1\ndeleted: sha256:"),
        "{out}"
    );
    assert!(
        out.ends_with("Total reclaimed space: 0B\n"),
        "layer still shared: {out}"
    );
    assert!(r.ok(&["images"]).contains("busybox"));

    // One grammar for every `until=`: days as `builder prune` takes them, and timestamps.
    for until in [
        "until=1h",
        "until=2d",
        "until=2000-01-01",
        "until=946684800",
    ] {
        let out = r.ok(&["image", "prune", "-a", "-f", "--filter", until]);
        assert_eq!(
            out, "Total reclaimed space: 0B\n",
            "everything is newer: {until}"
        );
    }
    let out = r.ok(&["image", "prune", "-a", "-f"]);
    assert!(
        out.starts_with("Deleted Images:\nuntagged: busybox:latest\n"),
        "{out}"
    );
    assert_eq!(r.ok(&["images", "-q", "--no-trunc"]).trim(), used);
    r.ok(&["start", "keeper"]);
    assert_eq!(
        r.ok(&["wait", "keeper"]).trim(),
        "0",
        "its image still runs"
    );
    r.ok(&["rm", "keeper"]);
    let out = r.ok(&["image", "prune", "-f"]);
    assert!(out.contains(&format!("deleted: {used}")), "{out}");
    assert_eq!(
        std::fs::read_dir(r.path().join("layers")).unwrap().count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(r.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
    let (code, _, err) = r.run(&["image", "prune", "-f", "--filter", "until=soon"]);
    assert_eq!(code, 1);
    assert!(err.contains("until=soon"), "{err}");
}

fn tar_listing(path: &std::path::Path) -> Vec<String> {
    let out = std::process::Command::new("tar")
        .arg("tvf")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn entry<'a>(listing: &'a [String], name: &str) -> Option<&'a String> {
    listing
        .iter()
        .find(|l| l.ends_with(&format!(" {name}")) || l.contains(&format!(" {name} ")))
}

#[test]
fn export_writes_the_container_filesystem() {
    let r = Root::with_busybox();
    r.ok(&[
        "run",
        "--name",
        "exp",
        "busybox",
        "sh",
        "-c",
        "echo hi > /new && rm /bin/ls && mkfifo /fifo && ln /new /newlink",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("exp.tar");
    r.ok(&["export", "-o", file.to_str().unwrap(), "exp"]);
    let stdout = r.hako(&["export", "exp"]);
    assert!(stdout.status.success());
    assert_eq!(
        stdout.stdout,
        std::fs::read(&file).unwrap(),
        "-o and stdout agree"
    );
    let listing = tar_listing(&file);
    assert!(
        entry(&listing, "new").is_some_and(|l| l.starts_with("-rw")),
        "{listing:?}"
    );
    assert!(
        entry(&listing, "fifo").is_some_and(|l| l.starts_with('p')),
        "{listing:?}"
    );
    assert!(
        entry(&listing, "newlink").is_some_and(|l| l.contains("link to new")),
        "{listing:?}"
    );
    assert!(entry(&listing, "bin/busybox").is_some(), "{listing:?}");
    assert!(
        entry(&listing, "bin/ls").is_none(),
        "deleted file stays deleted"
    );
    assert!(
        !listing.iter().any(|l| l.contains(".wh.")),
        "no whiteouts leak"
    );
    // The archive is a filesystem hako can import and run again.
    r.ok(&["import", file.to_str().unwrap(), "reborn"]);
    assert_eq!(r.ok(&["run", "--rm", "reborn", "cat", "/newlink"]), "hi\n");
    assert_eq!(std::fs::read_dir(r.path().join("tmp")).unwrap().count(), 0);
    r.ok(&["rm", "exp"]);

    // A running container: its own files, not /proc or volumes.
    r.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "-v",
        "/data",
        "busybox",
        "sh",
        "-c",
        "echo v > /data/vol && echo up > /up && exec sleep 300",
    ]);
    let live = dir.path().join("live.tar");
    assert!(common::wait_for(20, || {
        r.ok(&["export", "-o", live.to_str().unwrap(), "live"]);
        entry(&tar_listing(&live), "up").is_some()
    }));
    let listing = tar_listing(&live);
    assert!(
        !listing
            .iter()
            .any(|l| l.contains(" proc/") && !l.ends_with(" proc/")),
        "only the empty /proc: {listing:?}"
    );
    assert!(
        entry(&listing, "data/vol").is_none(),
        "volume contents excluded"
    );
    assert_eq!(
        r.ok(&["exec", "live", "cat", "/up"]),
        "up\n",
        "still running"
    );
    r.ok(&["rm", "-f", "live"]);
    let (code, _, err) = r.run(&["export", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("nosuch"), "{err}");
}

#[test]
fn export_names_directories_with_a_slash_keeps_xattrs_and_refuses_a_terminal() {
    let r = Root::with_busybox();
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("etc/deep")).unwrap();
    std::fs::write(src.join("etc/note"), "n").unwrap();
    let xattrs = std::process::Command::new("setfattr")
        .args(["-n", "user.hako", "-v", "kept"])
        .arg(src.join("etc/note"))
        .status()
        .unwrap()
        .success();
    if !xattrs {
        eprintln!("skipping the xattr check: /var/tmp does not take user.* xattrs");
    }
    let src_tar = dir.path().join("src.tar");
    let st = std::process::Command::new("tar")
        .args(["--xattrs", "--xattrs-include=user.*", "-C"])
        .arg(&src)
        .arg("-cf")
        .arg(&src_tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    r.ok(&["import", src_tar.to_str().unwrap(), "xat"]);
    r.ok(&["create", "--name", "xc", "xat", "true"]);
    let out = r.hako(&["export", "xc"]);
    assert!(out.status.success());
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut names = Vec::new();
    let mut note_xattr = None;
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        if e.header().entry_type().is_dir() {
            assert!(name.ends_with('/'), "directory entry {name}");
        }
        if name == "etc/note" {
            if let Some(pax) = e.pax_extensions().unwrap() {
                for rec in pax {
                    let rec = rec.unwrap();
                    if rec.key().unwrap() == "SCHILY.xattr.user.hako" {
                        note_xattr = Some(rec.value_bytes().to_vec());
                    }
                }
            }
        }
        names.push(name);
    }
    assert!(names.contains(&"etc/".to_string()), "{names:?}");
    assert!(names.contains(&"etc/deep/".to_string()), "{names:?}");
    assert!(names.contains(&"etc/note".to_string()), "{names:?}");
    if xattrs {
        assert_eq!(note_xattr.as_deref(), Some(&b"kept"[..]), "{names:?}");
    }
    r.ok(&["rm", "xc"]);

    // On a terminal (a real pty from script(1)) export refuses, as Docker does.
    r.ok(&["create", "--name", "tty", "busybox", "true"]);
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{} export tty", common::hako_bin()),
            "/dev/null",
        ])
        .env("HAKO_ROOT", r.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(
        shown.contains("cowardly refusing to save to a terminal. Use the -o flag or redirect"),
        "{shown}"
    );
    assert!(shown.len() < 200, "no archive on the terminal: {shown}");
    r.ok(&["rm", "tty"]);
}

/// Serves `body` to each connection with status `status` on a free loopback port.
fn serve(status: &'static str, body: Vec<u8>) -> (u16, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut req = Vec::new();
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = std::io::Read::read(&mut s, &mut buf).unwrap();
            if n == 0 {
                return;
            }
            req.extend_from_slice(&buf[..n]);
        }
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(&body);
    });
    (port, h)
}

#[test]
fn import_from_a_url() {
    let r = Root::new();
    let tar = std::fs::read(images_dir().join("busybox.tar")).unwrap();
    let (port, h) = serve("200 OK", tar);
    let url = format!("http://127.0.0.1:{port}/rootfs.tar");
    r.ok(&[
        "import",
        "-c",
        "CMD [\"echo\", \"from-url\"]",
        &url,
        "fromurl",
    ]);
    h.join().unwrap();
    assert_eq!(r.ok(&["run", "--rm", "fromurl"]), "from-url\n");
    let hist = r.ok(&["history", "--no-trunc", "fromurl"]);
    assert!(hist.contains(&url), "{hist}");

    let (port, h) = serve("404 Not Found", b"no".to_vec());
    let (code, _, err) = r.run(&["import", &format!("http://127.0.0.1:{port}/x.tar"), "nope"]);
    h.join().unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
    assert!(!r.ok(&["images"]).contains("nope"));
}

#[test]
fn system_df_counts_layers_shared_by_images_once() {
    let r = Root::with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    // A build that adds no layer: an image whose layers are all busybox's.
    std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nLABEL a=b\n").unwrap();
    r.ok(&[
        "build",
        "-q",
        "-t",
        "labelled",
        ctx.path().to_str().unwrap(),
    ]);
    let size = r.ok(&["images", "--format", "{{.Size}}", "busybox"]);
    let df = r.ok(&["system", "df", "--format", "{{json .}}"]);
    let images: serde_json::Value = df
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["Type"] == "Images")
        .unwrap();
    assert_eq!(images["TotalCount"], "2", "{df}");
    assert_eq!(images["Size"], size.trim(), "{df}");
    assert_eq!(
        images["Reclaimable"],
        format!("{} (100%)", size.trim()),
        "{df}"
    );
    // A container keeps its image's layers, and so those of every image sharing them.
    r.ok(&["create", "--name", "keep", "labelled", "true"]);
    let df = r.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.Active}} {{.Reclaimable}}",
    ]);
    assert!(df.contains("Images 1 0B (0%)"), "{df}");
}
