use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::*;

fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn header(path: &str, kind: tar::EntryType, mode: u32, uid: u64, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_path(path).unwrap();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(uid);
    h.set_gid(uid);
    h.set_mtime(1_600_000_000);
    h.set_size(size);
    h.set_cksum();
    h
}

/// A small rootfs exercising every entry type the importer must handle.
fn sample_tar() -> Vec<u8> {
    use tar::EntryType as T;
    let mut b = tar::Builder::new(Vec::new());
    for d in ["etc/", "bin/", "opq/", "dev/", "run/"] {
        b.append(&header(d, T::Directory, 0o755, 0, 0), &[][..])
            .unwrap();
    }
    let mut h = header("etc/hello", T::Regular, 0o640, 1000, 3);
    h.set_mtime(12345);
    h.set_cksum();
    b.append(&h, &b"hi\n"[..]).unwrap();
    b.append(&header("bin/su", T::Regular, 0o4755, 0, 2), &b"su"[..])
        .unwrap();
    let mut h = header("etc/link", T::Symlink, 0o777, 0, 0);
    h.set_link_name("hello").unwrap();
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    let mut h = header("etc/hard", T::Link, 0o640, 1000, 0);
    h.set_link_name("etc/hello").unwrap();
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    b.append(&header("etc/.wh.gone", T::Regular, 0o644, 0, 0), &[][..])
        .unwrap();
    b.append(
        &header("opq/.wh..wh..opq", T::Regular, 0o644, 0, 0),
        &[][..],
    )
    .unwrap();
    b.append(&header("run/fifo", T::Fifo, 0o600, 0, 0), &[][..])
        .unwrap();
    let mut h = header("dev/null", T::Char, 0o666, 0, 0);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_cksum();
    b.append(&h, &[][..]).unwrap();
    b.append_pax_extensions([("SCHILY.xattr.user.hako", &b"yes"[..])])
        .unwrap();
    b.append(&header("etc/xattr", T::Regular, 0o644, 0, 1), &b"x"[..])
        .unwrap();
    // Directories listed after their content still get their mtime.
    let mut h = header("late/", T::Directory, 0o700, 0, 0);
    h.set_mtime(777);
    h.set_cksum();
    b.append(&header("late/f", T::Regular, 0o644, 0, 0), &[][..])
        .unwrap();
    b.append(&h, &[][..]).unwrap();
    b.into_inner().unwrap()
}

fn tiny_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.append(
        &header(
            name,
            tar::EntryType::Regular,
            0o644,
            0,
            content.len() as u64,
        ),
        content,
    )
    .unwrap();
    b.into_inner().unwrap()
}

fn opts(reference: Option<&str>) -> ImportOptions {
    ImportOptions {
        reference: reference.map(|r| Reference::parse(r).unwrap()),
        changes: vec![],
        message: None,
        source: "-".into(),
        platform: None,
    }
}

fn count(store: &ImageStore, table: &str) -> i64 {
    store
        .conn()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn dir_len(p: &Path) -> usize {
    fs::read_dir(p).unwrap().count()
}

fn assert_empty(store: &ImageStore) {
    let r = store.root();
    assert_eq!(dir_len(&r.join("blobs/sha256")), 0, "blobs");
    assert_eq!(dir_len(&r.join("layers")), 0, "layers");
    assert_eq!(dir_len(&r.join("tmp")), 0, "tmp");
    for t in ["images", "tags", "layers", "image_layers", "layer_sync"] {
        assert_eq!(count(store, t), 0, "{t}");
    }
}

fn no_use(_: &Connection, _: &str) -> rusqlite::Result<Option<ImageUser>> {
    Ok(None)
}

fn user(container: &str, running: bool) -> ImageUser {
    ImageUser {
        container: container.into(),
        running,
    }
}

fn stopped(_: &Connection, _: &str) -> rusqlite::Result<Option<ImageUser>> {
    Ok(Some(user("ctr1", false)))
}

fn running(_: &Connection, _: &str) -> rusqlite::Result<Option<ImageUser>> {
    Ok(Some(user("ctr2", true)))
}

#[test]
fn import_plain_tar() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let tar = sample_tar();
    let img = store.import(&tar[..], &opts(Some("busybox"))).unwrap();

    // IDs and digests.
    let cfg_bytes = fs::read(store.blob_path(&img.id)).unwrap();
    assert_eq!(img.id, format!("sha256:{}", sha(&cfg_bytes)));
    let diff_id = format!("sha256:{}", sha(&tar));
    assert_eq!(img.config.rootfs().diff_ids(), &vec![diff_id.clone()]);
    assert_eq!(img.config.os(), &Os::Linux);
    assert_eq!(img.config.architecture(), &go_arch());
    let hist = img.config.history().as_ref().unwrap();
    assert_eq!(hist[0].comment().as_deref(), Some("Imported from -"));
    assert_eq!(img.size, tar.len() as u64);
    for e in fs::read_dir(dir.path().join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        let data = fs::read(e.path()).unwrap();
        assert_eq!(e.file_name().to_string_lossy(), sha(&data));
    }
    let manifest_digest: String = store
        .conn()
        .query_row("SELECT manifest_digest FROM images", [], |r| r.get(0))
        .unwrap();
    let manifest =
        oci_spec::image::ImageManifest::from_file(store.blob_path(&manifest_digest)).unwrap();
    assert_eq!(manifest.media_type(), &Some(MediaType::ImageManifest));
    assert_eq!(manifest.config().digest().to_string(), img.id);
    assert_eq!(manifest.config().size(), cfg_bytes.len() as u64);
    let layer = &manifest.layers()[0];
    assert_eq!(layer.media_type(), &MediaType::ImageLayer);
    assert_eq!(layer.digest().to_string(), diff_id);
    assert_eq!(layer.size(), tar.len() as u64);
    assert!(store.blob_path(&diff_id).is_file());

    // Layer contents.
    assert_eq!(img.layers, vec![store.layer_path(&diff_id)]);
    let root = &img.layers[0];
    let hello = fs::symlink_metadata(root.join("etc/hello")).unwrap();
    assert_eq!(hello.mode() & 0o7777, 0o640);
    assert_eq!((hello.uid(), hello.gid()), (1000, 1000));
    assert_eq!(hello.mtime(), 12345);
    assert_eq!(fs::read(root.join("etc/hello")).unwrap(), b"hi\n");
    let su = fs::metadata(root.join("bin/su")).unwrap();
    assert_eq!(su.mode() & 0o7777, 0o4755);
    assert_eq!(
        fs::read_link(root.join("etc/link")).unwrap(),
        Path::new("hello")
    );
    let hard = fs::metadata(root.join("etc/hard")).unwrap();
    assert_eq!(hard.ino(), hello.ino());
    let gone = fs::symlink_metadata(root.join("etc/gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(!root.join("etc/.wh.gone").exists());
    assert!(!root.join("opq/.wh..wh..opq").exists());
    let opaque = xattr(&root.join("opq"), "trusted.overlay.opaque");
    assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
    assert!(fs::symlink_metadata(root.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let null = fs::symlink_metadata(root.join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), libc::makedev(1, 3));
    assert_eq!(null.mode() & 0o7777, 0o666);
    match xattr(&root.join("etc/xattr"), "user.hako") {
        Some(v) => assert_eq!(v, b"yes"),
        None => eprintln!("user xattrs unsupported here; not checked"),
    }
    let late = fs::metadata(root.join("late")).unwrap();
    assert_eq!(late.mtime(), 777);
    assert_eq!(late.mode() & 0o7777, 0o700);
    assert_eq!(dir_len(&dir.path().join("tmp")), 0);

    // Metadata.
    assert_eq!(
        img.repo_tags,
        vec![Reference::parse("docker.io/library/busybox:latest").unwrap()]
    );
    let list = store.list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, img.id);
    assert_eq!(list[0].created.as_deref(), img.config.created().as_deref());
    assert_eq!(list[0].size, tar.len() as u64);
    let (size, parent): (i64, Option<String>) = store
        .conn()
        .query_row("SELECT size, parent FROM layers", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((size as usize, parent), (tar.len(), None));
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = [0u8; 256];
    // SAFETY: NUL-terminated strings and a buffer whose length is passed.
    let rc = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (rc >= 0).then(|| buf[..rc as usize].to_vec())
}

#[test]
fn import_compressed() {
    let tar = sample_tar();
    let diff_id = format!("sha256:{}", sha(&tar));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    for (data, media) in [
        (gz, MediaType::ImageLayerGzip),
        (zst, MediaType::ImageLayerZstd),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let img = store.import(&data[..], &opts(None)).unwrap();
        assert_eq!(img.config.rootfs().diff_ids(), &vec![diff_id.clone()]);
        assert_eq!(img.size, tar.len() as u64);
        let blob = format!("sha256:{}", sha(&data));
        assert_eq!(fs::read(store.blob_path(&blob)).unwrap(), data);
        let (blob_digest, mdigest): (String, String) = store
            .conn()
            .query_row(
                "SELECT blob_digest, manifest_digest FROM layers, images",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(blob_digest, blob);
        let m = oci_spec::image::ImageManifest::from_file(store.blob_path(&mdigest)).unwrap();
        assert_eq!(m.layers()[0].media_type(), &media);
        assert_eq!(m.layers()[0].size(), data.len() as u64);
        assert_eq!(fs::read(img.layers[0].join("etc/hello")).unwrap(), b"hi\n");
        assert!(img.repo_tags.is_empty());
    }
}

#[test]
fn import_changes_and_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut o = opts(Some("app:1"));
    o.changes = vec![
        "CMD [\"/bin/sh\"]".into(),
        "ENV A=1".into(),
        "EXPOSE 80".into(),
    ];
    o.message = Some("hello".into());
    let img = store.import(&tiny_tar("f", b"1")[..], &o).unwrap();
    let c = img.config.config().as_ref().unwrap();
    assert_eq!(c.cmd().as_ref().unwrap(), &vec!["/bin/sh"]);
    assert_eq!(c.env().as_ref().unwrap(), &vec!["A=1"]);
    assert_eq!(c.exposed_ports().as_ref().unwrap(), &vec!["80/tcp"]);
    let h = img.config.history().as_ref().unwrap();
    assert_eq!(h[0].comment().as_deref(), Some("hello"));
    assert_eq!(h[0].created(), img.config.created());

    o.changes = vec!["RUN rm -rf /".into()];
    assert!(matches!(
        store.import(&tiny_tar("f", b"2")[..], &o),
        Err(Error::InvalidChange(_))
    ));
    assert_eq!(count(&store, "images"), 1);
}

#[test]
fn resolve_by_name_id_and_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let img = store
        .import(&tiny_tar("a", b"a")[..], &opts(Some("busybox")))
        .unwrap();
    let hex = img.id.strip_prefix("sha256:").unwrap().to_string();
    for name in [
        "busybox",
        "busybox:latest",
        "docker.io/library/busybox:latest",
        "index.docker.io/library/busybox",
        img.id.as_str(),
        hex.as_str(),
        &hex[..12],
        &hex[..1],
        &format!("sha256:{}", &hex[..5]),
    ] {
        assert_eq!(store.resolve(name).unwrap().id, img.id, "{name}");
    }
    let mdigest: String = store
        .conn()
        .query_row("SELECT manifest_digest FROM images", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        store.resolve(&format!("busybox@{mdigest}")).unwrap().id,
        img.id
    );
    for name in ["busybox:1", "other", "sha256:zz", "", "Busybox"] {
        assert!(
            matches!(store.resolve(name), Err(Error::NotFound(_))),
            "{name}"
        );
    }
    let other = if hex.starts_with('0') { "1" } else { "0" };
    assert!(matches!(store.resolve(other), Err(Error::NotFound(_))));

    // Two IDs sharing a prefix.
    for suffix in ["1", "2"] {
        store
            .conn()
            .execute(
                "INSERT INTO images VALUES (?1, ?1, 'x', NULL, 0, 0)",
                [format!("sha256:{}{suffix}", "ab".repeat(31) + "c")],
            )
            .unwrap();
    }
    assert!(matches!(store.resolve("abab"), Err(Error::Ambiguous(_))));
    assert!(matches!(
        store.resolve("sha256:abab"),
        Err(Error::Ambiguous(_))
    ));
    let msg = store.resolve("abab").unwrap_err().to_string();
    assert_eq!(msg, "multiple IDs found with provided prefix: abab");
}

#[test]
fn tag_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let a = store.import(&tiny_tar("a", b"a")[..], &opts(None)).unwrap();
    let b = store
        .import(&tiny_tar("b", b"b")[..], &opts(Some("b")))
        .unwrap();
    let r = Reference::parse("localhost:5000/x/y:t").unwrap();
    store.tag(&a.id, &r).unwrap();
    assert_eq!(store.resolve("localhost:5000/x/y:t").unwrap().id, a.id);
    // Moving a tag.
    store.tag(&b.id, &r).unwrap();
    assert_eq!(store.resolve("localhost:5000/x/y:t").unwrap().id, b.id);
    // Tagging by name.
    store.tag("b", &Reference::parse("c").unwrap()).unwrap();
    assert_eq!(store.resolve("c").unwrap().id, b.id);
    let digest_ref = Reference::parse(&format!("x@sha256:{}", "1".repeat(64))).unwrap();
    assert!(matches!(
        store.tag(&b.id, &digest_ref),
        Err(Error::InvalidReference(_))
    ));
    assert!(matches!(store.tag("nope", &r), Err(Error::NotFound(_))));

    let list = store.list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].id, b.id, "newest first");
    let tags: Vec<String> = list[0].repo_tags.iter().map(|t| t.familiar()).collect();
    assert_eq!(tags, vec!["b:latest", "c:latest", "localhost:5000/x/y:t"]);
    assert!(list[1].repo_tags.is_empty());
}

#[test]
fn remove_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let img = store
        .import(&tiny_tar("a", b"a")[..], &opts(Some("a:1")))
        .unwrap();
    store
        .tag(&img.id, &Reference::parse("a:2").unwrap())
        .unwrap();

    // By tag with other tags left: only untag, no in-use check.
    let refuse = stopped;
    assert_eq!(
        store.remove("a:1", false, &refuse).unwrap(),
        vec![RemoveEvent::Untagged("a:1".into())]
    );
    // Last tag of an image in use.
    let err = store.remove("a:2", false, &refuse).unwrap_err();
    assert!(
        matches!(&err, Error::ReferenceInUse { container, .. } if container == "ctr1"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to remove repository reference \"a:2\" (must force) - container ctr1 is using its referenced image {}",
            &img.id[7..19]
        )
    );
    assert_eq!(store.resolve("a:2").unwrap().id, img.id);

    // The callback sees the image ID inside the transaction.
    let seen = std::cell::RefCell::new(None);
    let record = |conn: &Connection, id: &str| -> rusqlite::Result<Option<ImageUser>> {
        *seen.borrow_mut() = Some(id.to_string());
        assert!(!conn.is_autocommit());
        Ok(None)
    };
    assert_eq!(
        store.remove("a:2", false, &record).unwrap(),
        vec![
            RemoveEvent::Untagged("a:2".into()),
            RemoveEvent::Deleted(img.id.clone())
        ]
    );
    assert_eq!(seen.borrow().as_deref(), Some(img.id.as_str()));
    assert_empty(&store);

    // By ID: tags in several repositories need force.
    let img = store
        .import(&tiny_tar("a", b"a")[..], &opts(Some("x")))
        .unwrap();
    store.tag(&img.id, &Reference::parse("y").unwrap()).unwrap();
    let short = &img.id[7..19];
    assert!(matches!(
        store.remove(short, false, &no_use),
        Err(Error::Conflict(_))
    ));
    // Forced while a stopped container uses it: untagged, but kept (layers and config) as a
    // <none> image until no container uses it.
    assert_eq!(
        store.remove(short, true, &refuse).unwrap(),
        vec![
            RemoveEvent::Untagged("x:latest".into()),
            RemoveEvent::Untagged("y:latest".into()),
        ]
    );
    let kept = store.resolve(&img.id).unwrap();
    assert!(kept.repo_tags.is_empty());
    assert!(kept.layers[0].join("a").is_file());
    assert_eq!(store.gc().unwrap(), GcReport::default());
    assert_eq!(store.remove_unused(&img.id, &refuse).unwrap(), None);
    assert!(store.remove_unused(&img.id, &no_use).unwrap().is_some());
    assert_empty(&store);

    // A running container's image: refused by ID even with force; forcing its last tag off
    // leaves it as a <none> image.
    let img = store
        .import(&tiny_tar("a", b"a")[..], &opts(Some("r:1")))
        .unwrap();
    for force in [false, true] {
        let err = store.remove(&img.id, force, &running).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "conflict: unable to delete {} (cannot be forced) - image is being used by running container ctr2",
                &img.id[7..19]
            )
        );
    }
    assert_eq!(
        store.remove("r:1", true, &running).unwrap(),
        vec![RemoveEvent::Untagged("r:1".into())]
    );
    assert!(store.resolve(&img.id).unwrap().layers[0]
        .join("a")
        .is_file());
    assert!(store.remove(&img.id, false, &no_use).is_ok());
    assert_empty(&store);

    // By ID with tags in one repository, and untagged by ID.
    let img = store
        .import(&tiny_tar("a", b"a")[..], &opts(Some("x:1")))
        .unwrap();
    store
        .tag(&img.id, &Reference::parse("x:2").unwrap())
        .unwrap();
    assert_eq!(
        store.remove(&img.id, false, &no_use).unwrap(),
        vec![
            RemoveEvent::Untagged("x:1".into()),
            RemoveEvent::Untagged("x:2".into()),
            RemoveEvent::Deleted(img.id.clone())
        ]
    );
    let img = store.import(&tiny_tar("a", b"a")[..], &opts(None)).unwrap();
    let err = store.remove(&img.id, false, &refuse).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to delete {} (must be forced) - image is being used by stopped container ctr1",
            &img.id[7..19]
        )
    );
    assert_eq!(
        store.remove(&img.id, false, &no_use).unwrap(),
        vec![RemoveEvent::Deleted(img.id.clone())]
    );
    assert_empty(&store);
    assert!(matches!(
        store.remove("nothing", false, &no_use),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn shared_layer_is_reused_and_refcounted() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let tar = tiny_tar("a", b"same");
    let one = store.import(&tar[..], &opts(Some("one"))).unwrap();
    let two = store.import(&tar[..], &opts(Some("two"))).unwrap();
    assert_ne!(one.id, two.id, "created differs");
    assert_eq!(one.layers, two.layers);
    assert_eq!(count(&store, "layers"), 1);
    assert_eq!(dir_len(&dir.path().join("layers")), 1);
    assert_eq!(dir_len(&dir.path().join("tmp")), 0);
    store.remove("one", false, &no_use).unwrap();
    assert!(two.layers[0].join("a").is_file());
    assert!(store.blob_path(&format!("sha256:{}", sha(&tar))).is_file());
    store.remove("two", false, &no_use).unwrap();
    assert_empty(&store);
}

/// A tar whose single entry has a name the tar crate's builder would refuse.
fn raw_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link) in entries {
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.name[..name.len()].copy_from_slice(name.as_bytes());
            gnu.linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_size(if kind.is_file() { 4 } else { 0 });
        h.set_cksum();
        let data: &[u8] = if kind.is_file() { b"evil" } else { b"" };
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn malicious_tars_do_not_escape() {
    use tar::EntryType as T;
    let dir = tempfile::tempdir().unwrap();
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let root = dir.path().join("store");
    let store = ImageStore::open(&root).unwrap();
    let evil_name = format!("hako-evil-{}", std::process::id());
    let cases = vec![
        raw_tar(&[("../evil", T::Regular, "")]),
        raw_tar(&[("a/../../evil", T::Regular, "")]),
        raw_tar(&[("/../evil", T::Regular, "")]),
        raw_tar(&[
            ("link", T::Symlink, "/"),
            (&format!("link/etc/{evil_name}"), T::Regular, ""),
        ]),
        raw_tar(&[
            ("link", T::Symlink, outside.to_str().unwrap()),
            ("link/evil", T::Regular, ""),
        ]),
        raw_tar(&[
            ("link", T::Symlink, "../../../../outside"),
            ("link/evil", T::Regular, ""),
        ]),
        raw_tar(&[("hard", T::Link, "/etc/passwd")]),
        raw_tar(&[("hard", T::Link, "../../../../../etc/passwd")]),
        raw_tar(&[
            ("link", T::Symlink, outside.to_str().unwrap()),
            ("link/.wh.x", T::Regular, ""),
        ]),
        raw_tar(&[
            ("link", T::Symlink, outside.to_str().unwrap()),
            ("link/dev", T::Fifo, ""),
        ]),
    ];
    for (i, tar) in cases.iter().enumerate() {
        let err = store.import(&tar[..], &opts(Some("evil"))).unwrap_err();
        assert!(
            matches!(err, Error::InvalidArchive(_) | Error::Io(_)),
            "case {i}: {err:?}"
        );
        eprintln!("case {i}: {err}");
        assert!(!err.to_string().contains('\n'));
        assert_empty(&store);
        assert_eq!(dir_len(&outside), 0, "case {i}");
        assert!(!dir.path().join("evil").exists(), "case {i}");
        assert!(!root.join("evil").exists(), "case {i}");
        assert!(!Path::new("/etc").join(&evil_name).exists(), "case {i}");
    }
    // An absolute path is taken relative to the layer root, like docker.
    let img = store
        .import(&raw_tar(&[("/abs", T::Regular, "")])[..], &opts(None))
        .unwrap();
    assert!(img.layers[0].join("abs").is_file());
    // A relative symlink that stays inside is followed.
    let img = store
        .import(
            &raw_tar(&[
                ("d/", T::Directory, ""),
                ("link", T::Symlink, "d"),
                ("link/f", T::Regular, ""),
            ])[..],
            &opts(None),
        )
        .unwrap();
    assert!(img.layers[0].join("d/f").is_file());
}

#[test]
fn corrupt_inputs_leave_store_empty() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let tar = sample_tar();
    let big = tiny_tar("big", &vec![7u8; 100_000]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&big).unwrap();
    let gz = gz.finish().unwrap();
    let zst = zstd::encode_all(&big[..], 3).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text", b"this is not a tarball\n".repeat(40)),
        ("empty", vec![]),
        ("one byte", vec![1]),
        ("truncated in data", big[..5000].to_vec()),
        ("truncated in header", tar[..700].to_vec()),
        ("truncated gzip", gz[..gz.len() / 2].to_vec()),
        ("gzip of text", {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&b"hello world\n".repeat(100)).unwrap();
            e.finish().unwrap()
        }),
        ("truncated zstd", zst[..zst.len() / 2].to_vec()),
        ("gzip magic only", vec![0x1f, 0x8b]),
    ];
    for (what, data) in cases {
        let err = store.import(&data[..], &opts(Some("x"))).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::InvalidArchive(_)), "{what}: {err:?}");
        assert!(msg.starts_with("invalid tar archive: "), "{what}: {msg}");
        assert!(!msg.contains('\n'), "{what}: {msg}");
        assert_empty(&store);
    }
    let err = store.import(&[][..], &opts(None)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid tar archive: the archive is empty (0 bytes)"
    );
    assert_empty(&store);
    // End-of-archive blocks only: a valid empty layer (Docker's commit of an unchanged
    // container, BuildKit's empty layers in pulled images).
    let img = store.import(&[0u8; 1024][..], &opts(None)).unwrap();
    assert_eq!(std::fs::read_dir(&img.layers[0]).unwrap().count(), 0);
}

/// A zombie has finished with its files: what it left in `tmp/` goes, as a dead process's
/// does (a forked build stage killed with its build stays a zombie until init reaps it).
#[test]
fn open_sweeps_tmp_entries_of_zombies() {
    let dir = tempfile::tempdir().unwrap();
    drop(ImageStore::open(dir.path()).unwrap());
    let tmp = dir.path().join("tmp");
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    // Not reaped: once it has exited, it is a zombie.
    let zombie = || {
        fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !zombie() {
        assert!(
            std::time::Instant::now() < deadline,
            "{pid} never became a zombie"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let left = tmp.join(format!("{pid}-0123abcd"));
    fs::create_dir_all(left.join("diff")).unwrap();
    fs::write(tmp.join(format!("{pid}-journal-4567")), "blob sha256:00\n").unwrap();
    let store = ImageStore::open(dir.path());
    child.wait().unwrap();
    drop(store.unwrap());
    let names: Vec<_> = fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.is_empty(), "left: {names:?}");
}

#[test]
fn open_sweeps_dead_tmp_entries() {
    let dir = tempfile::tempdir().unwrap();
    drop(ImageStore::open(dir.path()).unwrap());
    let tmp = dir.path().join("tmp");
    // Above any pid_max, so certainly not running.
    let dead = tmp.join("999999999-0123abcd");
    fs::create_dir_all(dead.join("diff/sub")).unwrap();
    fs::write(dead.join("diff/sub/f"), b"x").unwrap();
    fs::set_permissions(dead.join("diff/sub"), fs::Permissions::from_mode(0o500)).unwrap();
    fs::write(tmp.join("999999998-blob"), b"x").unwrap();
    fs::write(tmp.join("junk"), b"x").unwrap();
    let live = tmp.join(format!("{}-live", std::process::id()));
    fs::create_dir(&live).unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let left: Vec<_> = fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left, vec![live]);
    // Reopening an existing store keeps its data.
    store
        .import(&tiny_tar("a", b"a")[..], &opts(Some("keep")))
        .unwrap();
    drop(store);
    let store = ImageStore::open(dir.path()).unwrap();
    assert!(store.resolve("keep").is_ok());
    let mode: String = store
        .conn()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn concurrent_stores_on_one_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    ImageStore::open(&root).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || {
                let store = ImageStore::open(&root).unwrap();
                let tar = tiny_tar("f", format!("{i}").as_bytes());
                let tag = format!("img{i}");
                store.import(&tar[..], &opts(Some(&tag))).unwrap();
                store
                    .tag(&tag, &Reference::parse("shared").unwrap())
                    .unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let store = ImageStore::open(&root).unwrap();
    assert_eq!(store.list().unwrap().len(), 4);
    assert!(store.resolve("shared").is_ok());
}

#[test]
fn gc_removes_only_unreferenced_blobs_and_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let kept = store
        .import(&tiny_tar("a", b"kept")[..], &opts(Some("kept")))
        .unwrap();
    let blobs_before = dir_len(&dir.path().join("blobs/sha256"));
    assert_eq!(
        store.gc().unwrap(),
        GcReport::default(),
        "nothing to collect"
    );
    // What a crash leaves: a blob whose image row was deleted, and a layer dir renamed into
    // place whose commit never happened.
    fs::write(store.blob_path(&"ab".repeat(32)), b"orphan").unwrap();
    let stray = dir.path().join("layers").join("cd".repeat(32));
    fs::create_dir_all(stray.join("diff/sub")).unwrap();
    fs::write(stray.join("diff/sub/f"), b"12345").unwrap();
    let report = store.gc().unwrap();
    assert_eq!((report.blobs, report.layers, report.bytes), (1, 1, 11));
    assert!(!stray.exists());
    assert_eq!(dir_len(&dir.path().join("blobs/sha256")), blobs_before);
    assert_eq!(dir_len(&dir.path().join("tmp")), 0);
    let again = store.resolve("kept").unwrap();
    assert_eq!(again.id, kept.id);
    assert!(again.layers[0].join("a").is_file(), "referenced layer kept");
    store.read_blob(&kept.id).unwrap();
    store.remove("kept", false, &no_use).unwrap();
    assert_empty(&store);
}

#[test]
fn remove_unused_keeps_images_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let img = store
        .import(&tiny_tar("a", b"a")[..], &opts(Some("x:1")))
        .unwrap();
    store
        .tag(&img.id, &Reference::parse("y:1").unwrap())
        .unwrap();
    let used = |_: &Connection, _: &str| Ok(Some(user("c0ffee", false)));
    assert_eq!(store.remove_unused(&img.id, &used).unwrap(), None);
    assert!(store.resolve("x:1").unwrap().layers[0].join("a").is_file());
    assert_eq!(
        store.remove_unused(&img.id, &no_use).unwrap(),
        Some(vec![
            RemoveEvent::Untagged("x:1".into()),
            RemoveEvent::Untagged("y:1".into()),
            RemoveEvent::Deleted(img.id.clone())
        ])
    );
    assert_eq!(store.remove_unused(&img.id, &no_use).unwrap(), None, "gone");
    assert_empty(&store);
}

#[test]
fn pending_layers_become_durable_after_the_writeback_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    store
        .import(&tiny_tar("a", b"a")[..], &opts(Some("a")))
        .unwrap();
    assert_eq!(count(&store, "layer_sync"), 1);
    let boot = crate::durable::boot_id();
    let now = time::unix_now();
    store.settle_pending(|| boot.clone(), now).unwrap();
    assert_eq!(
        count(&store, "layer_sync"),
        1,
        "too young to be written back"
    );
    store.settle_pending(|| boot.clone(), now + 3600).unwrap();
    assert_eq!(count(&store, "layer_sync"), 0);
    assert!(store.resolve("a").is_ok());
    store.remove("a", false, &no_use).unwrap();
    assert_empty(&store);
}

#[test]
fn layers_of_an_earlier_boot_are_unpacked_again_from_their_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let img = store.import(&sample_tar()[..], &opts(Some("s"))).unwrap();
    let diff = &img.layers[0];
    // What a power loss can leave of unsynced files: some gone, some empty.
    fs::remove_file(diff.join("etc/hello")).unwrap();
    fs::write(diff.join("bin/su"), b"").unwrap();
    // The boot the layer was written in is not the current one.
    store
        .settle_pending(|| "another-boot".into(), time::unix_now())
        .unwrap();
    assert_eq!(count(&store, "layer_sync"), 0);
    assert_eq!(fs::read(diff.join("etc/hello")).unwrap(), b"hi\n");
    assert_eq!(fs::read(diff.join("bin/su")).unwrap(), b"su");
    let again = store.resolve("s").unwrap();
    assert_eq!(again.id, img.id);
    assert_eq!(again.layers, img.layers);
    assert_eq!(dir_len(&dir.path().join("tmp")), 0);
}

#[test]
fn images_whose_blob_did_not_survive_a_reboot_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let boot = crate::durable::boot_id();
    let kept = store
        .import(&tiny_tar("k", b"kept")[..], &opts(Some("kept")))
        .unwrap();
    store
        .settle_pending(|| boot.clone(), time::unix_now() + 3600)
        .unwrap();
    assert_eq!(count(&store, "layer_sync"), 0);
    let tar = tiny_tar("l", b"lost");
    let lost = store.import(&tar[..], &opts(Some("lost"))).unwrap();
    store
        .tag("lost", &Reference::parse("lost:two").unwrap())
        .unwrap();
    // The blob came back from the power loss truncated.
    fs::write(store.blob_path(&format!("sha256:{}", sha(&tar))), b"").unwrap();
    store
        .settle_pending(|| "another-boot".into(), time::unix_now())
        .unwrap();
    assert!(matches!(store.resolve("lost"), Err(Error::NotFound(_))));
    assert!(matches!(store.resolve("lost:two"), Err(Error::NotFound(_))));
    assert!(!lost.layers[0].exists());
    assert!(!store.blob_path(&format!("sha256:{}", sha(&tar))).exists());
    assert_eq!(store.resolve("kept").unwrap().id, kept.id);
    assert!(kept.layers[0].join("k").is_file());
    assert_eq!(count(&store, "layer_sync"), 0);
    assert_eq!(count(&store, "images"), 1);
    assert_eq!(count(&store, "layers"), 1);
    assert_eq!(store.gc().unwrap(), GcReport::default());
    store.remove("kept", false, &no_use).unwrap();
    assert_empty(&store);
}

#[test]
fn load_of_images_sharing_a_layer() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let tar = tiny_tar("f", b"shared");
    let mut o = opts(Some("one"));
    o.changes = vec!["CMD one".into()];
    let one = store.import(&tar[..], &o).unwrap();
    let mut o = opts(Some("two"));
    o.changes = vec!["CMD two".into()];
    let two = store.import(&tar[..], &o).unwrap();
    let mut archive = Vec::new();
    store
        .save(
            &[
                (one.clone(), one.repo_tags.clone()),
                (two.clone(), two.repo_tags.clone()),
            ],
            &mut archive,
        )
        .unwrap();

    let dir2 = tempfile::tempdir().unwrap();
    let other = ImageStore::open(dir2.path()).unwrap();
    let loaded = other.load_archive(&archive[..]).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(other.resolve("one").unwrap().id, one.id);
    let two_loaded = other.resolve("two").unwrap();
    assert_eq!(two_loaded.id, two.id);
    assert_eq!(fs::read(two_loaded.layers[0].join("f")).unwrap(), b"shared");
    assert_eq!(count(&other, "layers"), 1);
    assert_eq!(dir_len(&dir2.path().join("tmp")), 0);
    let blob = other.blob_path(&format!("sha256:{}", sha(&tar)));
    assert_eq!(sha(&fs::read(blob).unwrap()), sha(&tar));
    assert_eq!(other.gc().unwrap(), GcReport::default());
}

#[test]
fn load_of_a_layer_named_twice_never_stores_a_wrong_blob() {
    let tar = tiny_tar("f", b"real");
    let hex = sha(&tar);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha(&tar))]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("blobs/sha256/{}", sha(&config)),
        "RepoTags": ["twice:latest"],
        "Layers": [format!("blobs/sha256/{hex}")],
    }]))
    .unwrap();
    let forged = tiny_tar("f", b"forged");
    for contents in [[&tar, &forged], [&forged, &tar]] {
        let mut b = tar::Builder::new(Vec::new());
        let mut add = |name: &str, data: &[u8]| {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, data).unwrap();
        };
        add(&format!("blobs/sha256/{}", sha(&config)), &config);
        for c in contents {
            add(&format!("blobs/sha256/{hex}"), c);
        }
        add("manifest.json", &manifest);
        let archive = b.into_inner().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        match store.load_archive(&archive[..]) {
            // The last copy is the one the archive holds.
            Ok(_) if contents[1] == &tar => {
                let img = store.resolve("twice").unwrap();
                assert_eq!(fs::read(img.layers[0].join("f")).unwrap(), b"real");
            }
            Err(Error::DigestMismatch { .. }) if contents[1] == &forged => assert_empty(&store),
            other => panic!("unexpected outcome {other:?}"),
        }
        for e in fs::read_dir(dir.path().join("blobs/sha256")).unwrap() {
            let e = e.unwrap();
            assert_eq!(
                sha(&fs::read(e.path()).unwrap()),
                e.file_name().to_string_lossy()
            );
        }
        assert_eq!(dir_len(&dir.path().join("tmp")), 0);
    }
}

/// An archive in Docker's pre-25 format (`<id>/layer.tar`, `<config>.json`, `manifest.json`)
/// from `(name, kind, link target, data)` members.
fn legacy_archive(members: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in members {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        if !link.is_empty() {
            h.set_link_name(link).unwrap();
        }
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn load_of_a_docker_20_10_archive_with_a_repeated_layer() {
    use tar::EntryType as T;
    // Docker 20.10 saves a layer the image repeats as a symlink to its first copy.
    let tar = tiny_tar("f", b"twice");
    let diff = format!("sha256:{}", sha(&tar));
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff, diff]},
    }))
    .unwrap();
    let cfg = format!("{}.json", sha(&config));
    let manifest = |layers: &[&str]| {
        serde_json::to_vec(&serde_json::json!([{
            "Config": cfg, "RepoTags": ["rep:latest"], "Layers": layers,
        }]))
        .unwrap()
    };
    let good = manifest(&["aaa/layer.tar", "bbb/layer.tar"]);
    let archive = legacy_archive(&[
        ("aaa/", T::Directory, "", b""),
        ("aaa/layer.tar", T::Regular, "", &tar),
        ("bbb/", T::Directory, "", b""),
        ("bbb/layer.tar", T::Symlink, "../aaa/layer.tar", b""),
        (&cfg, T::Regular, "", &config),
        ("manifest.json", T::Regular, "", &good),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let loaded = store.load_archive(&archive[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    let img = store.resolve("rep").unwrap();
    assert_eq!(img.layers.len(), 2);
    for l in &img.layers {
        assert_eq!(fs::read(l.join("f")).unwrap(), b"twice");
    }
    assert_eq!(dir_len(&dir.path().join("tmp")), 0);

    // A symlink is followed only to another member of the archive.
    let outside = dir.path().join("outside-layer.tar");
    fs::write(&outside, &tar).unwrap();
    for target in [
        "../../outside-layer.tar".to_string(),
        "../../../../../../../../etc/passwd".to_string(),
        outside.to_string_lossy().into_owned(),
        "/etc/passwd".to_string(),
    ] {
        let archive = legacy_archive(&[
            ("aaa/layer.tar", T::Regular, "", &tar),
            ("bbb/layer.tar", T::Symlink, &target, b""),
            (&cfg, T::Regular, "", &config),
            ("manifest.json", T::Regular, "", &good),
        ]);
        let d = tempfile::tempdir().unwrap();
        let s = ImageStore::open(d.path()).unwrap();
        let err = s.load_archive(&archive[..]).unwrap_err();
        assert!(matches!(err, Error::InvalidArchive(_)), "{target}: {err:?}");
        assert!(
            err.to_string().contains("points outside of the archive"),
            "{target}: {err}"
        );
        assert_empty(&s);
    }
    // Symlinks in a loop end with an error too.
    let archive = legacy_archive(&[
        ("aaa/layer.tar", T::Symlink, "../bbb/layer.tar", b""),
        ("bbb/layer.tar", T::Symlink, "../aaa/layer.tar", b""),
        (&cfg, T::Regular, "", &config),
        ("manifest.json", T::Regular, "", &good),
    ]);
    let d = tempfile::tempdir().unwrap();
    let s = ImageStore::open(d.path()).unwrap();
    let err = s.load_archive(&archive[..]).unwrap_err();
    assert!(
        err.to_string()
            .contains("too many levels of symbolic links"),
        "{err}"
    );
    assert_empty(&s);
}

#[test]
fn load_refuses_a_manifest_json_that_is_not_a_list() {
    use tar::EntryType as T;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    for doc in [&b"{}"[..], b"\"x\"", b"3"] {
        let archive = legacy_archive(&[("manifest.json", T::Regular, "", doc)]);
        let err = store.load_archive(&archive[..]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid tar archive: manifest.json is not a list of images"
        );
        assert_empty(&store);
    }
    let archive = legacy_archive(&[
        (
            "oci-layout",
            T::Regular,
            "",
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        ),
        ("index.json", T::Regular, "", br#"{"manifests": {}}"#),
    ]);
    let err = store.load_archive(&archive[..]).unwrap_err();
    assert!(err.to_string().contains("index.json"), "{err}");
    // An empty list is an archive of no images, as for docker.
    let archive = legacy_archive(&[("manifest.json", T::Regular, "", b"[]")]);
    assert!(store.load_archive(&archive[..]).unwrap().is_empty());
    assert_empty(&store);
}

#[test]
fn deep_trees_unpack_and_too_deep_ones_are_refused() {
    use tar::EntryType as T;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    // Every level a directory entry with a file and a symlink in it, as deep as allowed.
    let mut path = String::new();
    let mut entries: Vec<(String, T, String)> = Vec::new();
    for _ in 0..crate::unpack::MAX_DEPTH - 1 {
        path.push_str("d/");
        entries.push((path.clone(), T::Directory, String::new()));
        entries.push((format!("{path}f"), T::Regular, String::new()));
        entries.push((format!("{path}l"), T::Symlink, "f".into()));
    }
    let tar = long_tar(&entries);
    let img = store.import(&tar[..], &opts(Some("deep"))).unwrap();
    let bottom = img.layers[0].join(&path);
    assert!(bottom.join("f").is_file());
    assert_eq!(fs::read_link(bottom.join("l")).unwrap(), Path::new("f"));
    store.remove("deep", false, &no_use).unwrap();
    assert_empty(&store);

    // 3000 levels: refused at the first entry past the limit, with a clear message.
    let entries: Vec<(String, T, String)> = (1..=3000)
        .map(|i| ("a/".repeat(i), T::Directory, String::new()))
        .collect();
    let err = store
        .import(&long_tar(&entries)[..], &opts(Some("deeper")))
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::InvalidArchive(_)), "{err:?}");
    assert!(msg.contains("is too deep"), "{msg}");
    assert!(msg.contains("513 components"), "{msg}");
    assert!(msg.len() < 400, "{msg}");
    assert_empty(&store);
}

/// A GNU tar of `(path, kind, link target)` entries, long names included.
fn long_tar(entries: &[(String, tar::EntryType, String)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1);
        h.set_size(0);
        if kind.is_symlink() {
            b.append_link(&mut h, name, link).unwrap();
        } else {
            b.append_data(&mut h, name, &[][..]).unwrap();
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn an_entry_replacing_a_directory_is_seen_by_the_entries_after_it() {
    use tar::EntryType as T;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    // "d" is a directory, then a symlink to "e": "d/g" lands in "e", and "d/f" is gone.
    let img = store
        .import(
            &raw_tar(&[
                ("e/", T::Directory, ""),
                ("d/", T::Directory, ""),
                ("d/f", T::Regular, ""),
                ("d", T::Symlink, "e"),
                ("d/g", T::Regular, ""),
                ("x", T::Regular, ""),
                ("x/", T::Directory, ""),
                ("x/y", T::Regular, ""),
            ])[..],
            &opts(None),
        )
        .unwrap();
    let l = &img.layers[0];
    assert!(l.join("e/g").is_file());
    assert!(!l.join("e/f").exists());
    assert_eq!(fs::read_link(l.join("d")).unwrap(), Path::new("e"));
    assert!(l.join("x/y").is_file());
    // ...and when the symlink leads out, the next entry through it is refused, never written
    // into the directory it replaced.
    let outside = dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let err = store
        .import(
            &raw_tar(&[
                ("d/", T::Directory, ""),
                ("d/f", T::Regular, ""),
                ("d", T::Symlink, outside.to_str().unwrap()),
                ("d/g", T::Regular, ""),
            ])[..],
            &opts(None),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("d resolves outside of the layer"),
        "{err}"
    );
    assert_eq!(dir_len(&outside), 0);
}

#[test]
fn open_finishes_the_changes_a_dead_process_journaled() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let kept = store
        .import(&tiny_tar("k", b"kept")[..], &opts(Some("kept")))
        .unwrap();
    let kept_chain = kept.layers[0]
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let kept_blob = format!("sha256:{}", sha(&tiny_tar("k", b"kept")));
    // What a process killed between its commit and its unlinks left: files no row names.
    let orphan_chain = "ab".repeat(32);
    fs::create_dir_all(dir.path().join("layers").join(&orphan_chain).join("diff/x")).unwrap();
    let orphan_blob = "cd".repeat(32);
    fs::write(store.blob_path(&orphan_blob), b"orphan").unwrap();
    let unrelated = "ef".repeat(32);
    fs::write(store.blob_path(&unrelated), b"not journaled").unwrap();
    let journal = format!(
        "blob sha256:{orphan_blob}\nblob {kept_blob}\nlayer sha256:{orphan_chain}\nlayer sha256:{kept_chain}\nlayer sha256:12"
    );
    let tmp = dir.path().join("tmp");
    // Above any pid_max: certainly dead. A live process's journal is left alone.
    fs::write(tmp.join("999999999-journal-0123"), &journal).unwrap();
    let live = tmp.join(format!("{}-journal-4567", std::process::id()));
    fs::write(&live, &journal).unwrap();
    drop(store);

    let store = ImageStore::open(dir.path()).unwrap();
    assert!(!dir.path().join("layers").join(&orphan_chain).exists());
    assert!(!store.blob_path(&orphan_blob).exists());
    assert!(
        store.blob_path(&unrelated).exists(),
        "only what a journal names"
    );
    assert!(store.blob_path(&kept_blob).exists(), "referenced blob kept");
    assert!(kept.layers[0].join("k").is_file(), "referenced layer kept");
    assert!(!tmp.join("999999999-journal-0123").exists());
    assert!(live.exists());
    fs::remove_file(&live).unwrap();
    fs::remove_file(store.blob_path(&unrelated)).unwrap();
    assert_eq!(store.resolve("kept").unwrap().id, kept.id);
    store.remove("kept", false, &no_use).unwrap();
    assert_empty(&store);
}

#[test]
fn a_directory_replaced_later_in_the_tar_keeps_the_last_entry() {
    use tar::EntryType as T;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, mtime) in [
        ("x/", T::Directory, 5),
        ("x/y", T::Regular, 5),
        ("x", T::Regular, 6),
        ("w/", T::Directory, 100),
        ("w/f", T::Regular, 7),
        ("w/", T::Directory, 200),
    ] {
        let mut h = header(name, kind, 0o755, 0, 0);
        h.set_mtime(mtime);
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }
    let img = store
        .import(&b.into_inner().unwrap()[..], &opts(None))
        .unwrap();
    let l = &img.layers[0];
    assert!(l.join("x").is_file());
    assert_eq!(fs::metadata(l.join("w")).unwrap().mtime(), 200);
    assert!(l.join("w/f").is_file());
}

#[test]
fn load_reads_no_document_larger_than_4_mib() {
    use tar::EntryType as T;
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let big = vec![b' '; (4 << 20) + 1];
    let archive = legacy_archive(&[("manifest.json", T::Regular, "", &big)]);
    let err = store.load_archive(&archive[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid tar archive: manifest.json is 4194305 bytes, more than the 4194304 a manifest or config may have"
    );
    assert_empty(&store);
}

#[test]
fn import_records_the_platform_and_refuses_other_oses() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let arm = ImportOptions {
        platform: Some(crate::ImagePlatform {
            os: "linux".into(),
            architecture: "arm64".into(),
            variant: Some("v8".into()),
        }),
        ..opts(Some("arm:1"))
    };
    let img = store.import(&tiny_tar("f", b"x")[..], &arm).unwrap();
    assert_eq!(
        crate::ImagePlatform::of(&img.config).to_string(),
        "linux/arm64/v8"
    );
    let native = store.import(&tiny_tar("f", b"x")[..], &opts(None)).unwrap();
    assert_eq!(
        crate::ImagePlatform::of(&native.config),
        crate::ImagePlatform::host()
    );
    let win = ImportOptions {
        platform: Some(crate::ImagePlatform {
            os: "windows".into(),
            architecture: "amd64".into(),
            variant: None,
        }),
        ..opts(Some("win:1"))
    };
    let e = store.import(&tiny_tar("f", b"x")[..], &win).unwrap_err();
    assert_eq!(
        e.to_string(),
        "image operating system \"windows\" cannot be used on this platform"
    );
    assert!(store.resolve("win:1").is_err());
}

#[test]
fn load_refuses_a_windows_image_before_staging_it() {
    let tar = tiny_tar("f", b"win");
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "windows",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{}", sha(&tar))]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": format!("blobs/sha256/{}", sha(&config)),
        "RepoTags": ["win:latest"],
        "Layers": [format!("blobs/sha256/{}", sha(&tar))],
    }]))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        (format!("blobs/sha256/{}", sha(&config)), &config),
        (format!("blobs/sha256/{}", sha(&tar)), &tar),
        ("manifest.json".to_string(), &manifest),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    let archive = b.into_inner().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    let e = store.load_archive(&archive[..]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "image operating system \"windows\" cannot be used on this platform"
    );
    assert_eq!(e.kind(), hako_base::ErrorKind::Invalid);
    assert_empty(&store);
}
