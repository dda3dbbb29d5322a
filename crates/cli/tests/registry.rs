//! `hako pull`, `push`, `save` and `load` against real peers: Debian's
//! `docker-registry` on 127.0.0.1 (started and stopped here), `skopeo` to
//! push test images into it and read back what hako pushed. Docker, Podman
//! and the other peers are in interop.rs.

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::peers::{need, Registry};
use common::{images_dir, wait_for, Root};
use sha2::{Digest, Sha256};

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

#[derive(Clone, Copy)]
enum Comp {
    Plain,
    Gzip,
    Zstd,
}

/// An OCI image layout built from the busybox rootfs, independent of
/// hako's own code.
struct Layout {
    dir: tempfile::TempDir,
    index: Vec<serde_json::Value>,
}

impl Layout {
    fn new() -> Layout {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("blobs/sha256")).unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        Layout {
            dir,
            index: Vec::new(),
        }
    }

    fn put(&self, data: &[u8]) -> String {
        let d = sha(data);
        std::fs::write(
            self.dir
                .path()
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
            data,
        )
        .unwrap();
        d
    }

    /// Adds a busybox image manifest; returns its descriptor.
    fn image(&self, comp: Comp, os: &str, arch: &str) -> serde_json::Value {
        let raw = std::fs::read(images_dir().join("busybox.tar")).unwrap();
        let (blob, media) = match comp {
            Comp::Plain => (raw.clone(), "application/vnd.oci.image.layer.v1.tar"),
            Comp::Gzip => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                e.write_all(&raw).unwrap();
                (
                    e.finish().unwrap(),
                    "application/vnd.oci.image.layer.v1.tar+gzip",
                )
            }
            Comp::Zstd => (
                zstd::encode_all(&raw[..], 3).unwrap(),
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
        };
        let layer = self.put(&blob);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": os, "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [sha(&raw)]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD busybox.tar /"}],
        }))
        .unwrap();
        let cfg = self.put(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": config.len()},
            "layers": [{"mediaType": media, "digest": layer, "size": blob.len()}],
        }))
        .unwrap();
        let m = self.put(&manifest);
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m, "size": manifest.len(),
            "platform": {"os": os, "architecture": arch},
        })
    }

    /// Names a descriptor in index.json.
    fn tag(&mut self, mut desc: serde_json::Value, tag: &str) {
        desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
        self.index.push(desc);
        self.write_index();
    }

    /// Adds a nested index of `entries` under `tag`.
    fn tag_index(&mut self, entries: Vec<serde_json::Value>, tag: &str) {
        let idx = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }))
        .unwrap();
        let d = self.put(&idx);
        self.tag(
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": d, "size": idx.len(),
            }),
            tag,
        );
    }

    fn write_index(&self) {
        std::fs::write(
            self.dir.path().join("index.json"),
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": self.index}))
                .unwrap(),
        )
        .unwrap();
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A private registry holding the gzip busybox image under each of `names` (`repo:tag`).
fn registry_holding(names: &[&str]) -> Registry {
    let reg = Registry::start();
    let mut layout = Layout::new();
    let gz = layout.image(Comp::Gzip, "linux", "amd64");
    layout.tag(gz, "gzip");
    for n in names {
        reg.skopeo_push(layout.path(), "gzip", n, &[]);
    }
    reg
}

fn count_entries(p: &Path) -> usize {
    std::fs::read_dir(p).map(|d| d.count()).unwrap_or(0)
}

fn inspect(r: &Root, name: &str) -> serde_json::Value {
    let out = r.ok(&["image", "inspect", name]);
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
}

#[test]
fn pull_oci_docker_gzip_zstd_plain_and_run() {
    let reg = Registry::start();
    let mut layout = Layout::new();
    let gz = layout.image(Comp::Gzip, "linux", "amd64");
    layout.tag(gz, "gzip");
    let zs = layout.image(Comp::Zstd, "linux", "amd64");
    layout.tag(zs, "zstd");
    let plain = layout.image(Comp::Plain, "linux", "amd64");
    layout.tag(plain, "plain");
    reg.skopeo_push(layout.path(), "gzip", "bb:latest", &[]);
    reg.skopeo_push(layout.path(), "gzip", "bb:v2s2", &["--format", "v2s2"]);
    reg.skopeo_push(layout.path(), "zstd", "bb:zstd", &[]);
    reg.skopeo_push(layout.path(), "plain", "bb:plain", &[]);

    let r = Root::new();
    let name = reg.name("bb");
    let out = r.ok(&["pull", &name]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "Using default tag: latest", "{out}");
    assert_eq!(lines[1], "latest: Pulling from bb", "{out}");
    assert!(
        lines.iter().any(|l| l.ends_with(": Pull complete")),
        "{out}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("Digest: sha256:")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}:latest")),
        "{out}"
    );
    assert_eq!(*lines.last().unwrap(), format!("{name}:latest"));
    assert_eq!(r.ok(&["run", "--rm", &name, "echo", "pulled"]), "pulled\n");

    let again = r.ok(&["pull", &name]);
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}:latest")),
        "{again}"
    );
    assert!(again.contains(": Already exists") || !again.contains("Pull complete"));

    for tag in ["v2s2", "zstd", "plain"] {
        let n = format!("{name}:{tag}");
        let out = r.ok(&["pull", "-q", &n]);
        assert_eq!(out, format!("{n}\n"), "-q prints only the name");
        assert_eq!(r.ok(&["run", "--rm", &n, "echo", tag]), format!("{tag}\n"));
    }
    // zstd and plain carry other blobs of the same diff, hence the same image.
    let id = inspect(&r, &format!("{name}:zstd"))["Id"].clone();
    assert_eq!(inspect(&r, &name)["Id"], id);
    let digests = inspect(&r, &name)["RepoDigests"].clone();
    assert!(digests.as_array().unwrap().len() >= 2, "{digests}");
    // After removing every tag, nothing of the image remains.
    for tag in ["latest", "v2s2", "zstd", "plain"] {
        r.ok(&["rmi", &format!("{name}:{tag}")]);
    }
    assert_eq!(count_entries(&r.path().join("layers")), 0);
}

/// A layer that is a tar of no entries (BuildKit writes them, and Docker's commit of an
/// unchanged container): pulled and run like any other, and `commit` of a created container
/// makes one.
#[test]
fn an_empty_layer_is_pulled_and_committed() {
    let reg = Registry::start();
    let layout = Layout::new();
    let raw = std::fs::read(images_dir().join("busybox.tar")).unwrap();
    let base = layout.put(&raw);
    // Two end-of-archive blocks: BuildKit's empty layer, gzipped.
    let empty_tar = vec![0u8; 1024];
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&empty_tar).unwrap();
    let empty_gz = e.finish().unwrap();
    let empty = layout.put(&empty_gz);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [sha(&raw), sha(&empty_tar)]},
    }))
    .unwrap();
    let cfg = layout.put(&config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": base, "size": raw.len()},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": empty, "size": empty_gz.len()},
        ],
    }))
    .unwrap();
    let m = layout.put(&manifest);
    let mut layout = layout;
    layout.tag(
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m, "size": manifest.len(),
        }),
        "e",
    );
    reg.skopeo_push(layout.path(), "e", "withempty:1", &[]);

    let r = Root::new();
    let name = reg.name("withempty:1");
    r.ok(&["pull", "-q", &name]);
    assert_eq!(r.ok(&["run", "--rm", &name, "echo", "ran"]), "ran\n");
    let layers = inspect(&r, &name)["RootFS"]["Layers"].clone();
    assert_eq!(layers.as_array().map(Vec::len), Some(2), "{layers}");

    r.ok(&["create", "--name", "unchanged", &name, "true"]);
    let id = r.ok(&["commit", "unchanged", "committed:1"]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let layers = inspect(&r, "committed:1")["RootFS"]["Layers"].clone();
    assert_eq!(layers.as_array().map(Vec::len), Some(3), "{layers}");
    assert_eq!(r.ok(&["run", "--rm", "committed:1", "echo", "ok"]), "ok\n");
    r.ok(&["rm", "unchanged"]);
}

#[test]
fn index_resolves_platform_and_refuses_windows() {
    let reg = Registry::start();
    let mut layout = Layout::new();
    let amd = layout.image(Comp::Gzip, "linux", "amd64");
    let arm = layout.image(Comp::Gzip, "linux", "arm64");
    layout.tag_index(vec![arm, amd], "multi");
    let win = layout.image(Comp::Gzip, "windows", "amd64");
    layout.tag_index(vec![win.clone()], "win");
    layout.tag(win, "winsingle");
    reg.skopeo_push(layout.path(), "multi", "multi:latest", &["--all"]);
    reg.skopeo_push(layout.path(), "win", "win:latest", &["--all"]);
    reg.skopeo_push(layout.path(), "winsingle", "win:single", &[]);

    let r = Root::new();
    let name = reg.name("multi");
    r.ok(&["pull", &name]);
    assert_eq!(inspect(&r, &name)["Architecture"], "amd64");
    r.ok(&["run", "--rm", &name, "true"]);
    let arm_name = format!("{name}:latest");
    r.ok(&["pull", "--platform", "linux/arm64", &arm_name]);
    assert_eq!(inspect(&r, &arm_name)["Architecture"], "arm64");

    let (code, _, err) = r.run(&["pull", "--platform", "linux/s390x", &name]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no matching manifest for linux/s390x"),
        "{err}"
    );
    for n in [reg.name("win"), reg.name("win:single")] {
        let (code, _, err) = r.run(&["pull", &n]);
        assert_eq!(code, 1);
        assert!(
            err.contains(r#"image operating system "windows" cannot be used on this platform"#),
            "{err}"
        );
    }
}

#[test]
fn push_then_skopeo_inspect_and_pull_back() {
    let reg = Registry::start();
    let a = Root::with_busybox();
    let name = reg.name("pushed:v1");
    a.ok(&["tag", "busybox", &name]);
    let out = a.ok(&["push", &name]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("The push refers to repository [{}]", reg.name("pushed")),
        "{out}"
    );
    assert!(lines.iter().any(|l| l.ends_with(": Pushed")), "{out}");
    let last = lines.last().unwrap();
    assert!(last.starts_with("v1: digest: sha256:"), "{out}");
    let digest = last.split_whitespace().nth(2).unwrap().to_string();

    let raw = Command::new(need("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    assert_eq!(
        sha(&raw.stdout),
        digest,
        "the registry holds hako's manifest byte for byte"
    );
    let size: usize = last.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(raw.stdout.len(), size);

    let again = a.ok(&["push", &name]);
    assert!(again.contains(": Layer already exists"), "{again}");
    drop(a);

    let b = Root::new();
    b.ok(&["pull", &name]);
    assert_eq!(b.ok(&["run", "--rm", &name, "echo", "round"]), "round\n");
    assert_eq!(
        inspect(&b, &name)["RepoDigests"][0],
        format!("{}@{digest}", reg.name("pushed"))
    );
}

#[test]
fn tampered_blob_is_rejected_and_nothing_committed() {
    let reg = registry_holding(&["bad:latest"]);
    let manifest = Command::new(need("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}", reg.name("bad:latest")))
        .output()
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    let file = reg.blob_file(&layer);
    let mut data = std::fs::read(&file).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0xff;
    std::fs::write(&file, &data).unwrap();

    let r = Root::new();
    let (code, _, err) = r.run(&["pull", &reg.name("bad")]);
    assert_eq!(code, 1);
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(err.contains(&layer), "{err}");
    assert_eq!(r.ok(&["images", "-q"]), "");
    assert_eq!(count_entries(&r.path().join("layers")), 0);
    assert_eq!(count_entries(&r.path().join("blobs/sha256")), 0);
    assert_eq!(count_entries(&r.path().join("tmp")), 0);
}

#[test]
fn unknown_image_and_unreachable_registry() {
    let reg = Registry::start();
    let r = Root::new();
    let (code, _, err) = r.run(&["pull", &reg.name("nothing:here")]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "manifest for {} not found",
            reg.name("nothing:here")
        )),
        "{err}"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (code, _, err) = r.run(&["pull", &format!("127.0.0.1:{port}/x")]);
    assert_eq!(code, 1);
    assert!(err.contains("Connection refused"), "{err}");
    let (code, _, err) = r.run(&["push", &reg.name("absent:v1")]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist locally"), "{err}");
}

#[test]
fn save_load_round_trip_and_peers() {
    let reg = Registry::start();
    let mut layout = Layout::new();
    let gz = layout.image(Comp::Gzip, "linux", "amd64");
    layout.tag(gz, "gzip");
    reg.skopeo_push(layout.path(), "gzip", "saved:latest", &[]);
    let a = Root::new();
    let name = reg.name("saved");
    a.ok(&["pull", "-q", &name]);
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("saved.tar");
    a.ok(&["save", "-o", archive.to_str().unwrap(), &name]);
    let id = inspect(&a, &name)["Id"].clone();
    // Roots are serialised: only one may exist at a time.
    drop(a);

    let b = Root::new();
    let out = b.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out, format!("Loaded image: {name}:latest\n"));
    assert_eq!(b.ok(&["run", "--rm", &name, "echo", "loaded"]), "loaded\n");
    assert_eq!(inspect(&b, &name)["Id"], id);
    drop(b);

    // stdin, and an OCI archive written by skopeo.
    let c = Root::new();
    let mut child = c
        .cmd(&["load"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::copy(
        &mut std::fs::File::open(&archive).unwrap(),
        child.stdin.as_mut().unwrap(),
    )
    .unwrap();
    drop(child.stdin.take());
    assert!(child.wait_with_output().unwrap().status.success());
    let oci = dir.path().join("oci.tar");
    let st = Command::new(need("skopeo"))
        .args(["copy", &format!("oci:{}:gzip", layout.path().display())])
        .arg(format!("oci-archive:{}:ocibox:v1", oci.display()))
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let out = c.ok(&["load", "-i", oci.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: ocibox:v1\n");
    assert_eq!(c.ok(&["run", "--rm", "ocibox:v1", "echo", "oci"]), "oci\n");
    drop(c);
}

fn skopeo_raw(name: &str) -> Vec<u8> {
    let out = Command::new(need("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn manifest_inspect_prints_the_registry_manifest_or_index() {
    let reg = Registry::start();
    let mut layout = Layout::new();
    let amd = layout.image(Comp::Gzip, "linux", "amd64");
    let arm = layout.image(Comp::Zstd, "linux", "arm64");
    layout.tag_index(vec![amd.clone(), arm], "multi");
    layout.tag(amd, "single");
    reg.skopeo_push(layout.path(), "multi", "mi:multi", &["--all"]);
    reg.skopeo_push(layout.path(), "single", "mi:single", &["--format", "v2s2"]);

    let r = Root::new();
    for tag in ["multi", "single"] {
        let name = reg.name(&format!("mi:{tag}"));
        let out = r.ok(&["manifest", "inspect", &name]);
        assert!(
            out.starts_with("{\n\t\""),
            "tab-indented like docker: {out}"
        );
        let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
        let raw: serde_json::Value = serde_json::from_slice(&skopeo_raw(&name)).unwrap();
        assert_eq!(shown, raw, "{tag}");
    }
    let index: serde_json::Value =
        serde_json::from_str(&r.ok(&["manifest", "inspect", &reg.name("mi:multi")])).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    let single: serde_json::Value =
        serde_json::from_str(&r.ok(&["manifest", "inspect", &reg.name("mi:single")])).unwrap();
    assert_eq!(
        single["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // By digest, the platform manifest the index lists.
    let digest = index["manifests"][1]["digest"].as_str().unwrap();
    let by_digest = r.ok(&[
        "manifest",
        "inspect",
        &format!("{}@{digest}", reg.name("mi")),
    ]);
    let m: serde_json::Value = serde_json::from_str(&by_digest).unwrap();
    assert!(m["layers"][0]["mediaType"]
        .as_str()
        .unwrap()
        .ends_with("zstd"));
    let (code, _, err) = r.run(&["manifest", "inspect", &reg.name("mi:nope")]);
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
    assert_eq!(r.ok(&["images", "-q"]), "", "nothing pulled");
}

// ---- Faults: a small HTTP proxy in front of the real registry ----

/// What the proxy does with one request.
enum Fault {
    /// Forward it and relay the answer.
    Pass,
    /// Answer with this status and a distribution-spec error body.
    Status(u16),
    /// Say nothing for this long, then close.
    Stall(std::time::Duration),
    /// Relay the head and this many body bytes, then wait this long and close.
    Cut(usize, std::time::Duration),
    /// Answer 200 with this content type and body instead of the registry.
    Respond(&'static str, Vec<u8>),
    /// Relay the answer with this many junk bytes after its body, counted in its length.
    Append(usize),
    /// Relay the answer's body, then junk until the client goes (no length announced).
    Endless,
}

type Rule = Box<dyn FnMut(&str) -> Fault + Send>;

/// A loopback HTTP/1.1 proxy that forwards to the registry, one request per connection, and
/// applies `rule` to each request line. Its accept thread ends with the test process.
struct Proxy {
    port: u16,
    /// Request heads in arrival order.
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

fn read_head(s: &mut std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use std::io::Read;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p + 4]).into_owned();
            return Some((head, buf[p + 4..].to_vec()));
        }
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl Proxy {
    fn start(upstream: u16, rule: Rule) -> Proxy {
        Proxy::start_on("127.0.0.1", upstream, rule)
    }

    fn start_on(addr: &str, upstream: u16, rule: Rule) -> Proxy {
        let l = TcpListener::bind((addr, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let rule = std::sync::Arc::new(std::sync::Mutex::new(rule));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { continue };
                let (log, rule) = (log2.clone(), rule.clone());
                std::thread::spawn(move || {
                    let Some((head, rest)) = read_head(&mut c) else {
                        return;
                    };
                    log.lock().unwrap().push(head.clone());
                    let line = head.lines().next().unwrap_or("").to_string();
                    let fault = (rule.lock().unwrap())(&line);
                    Proxy::handle(c, upstream, &head, &rest, fault);
                });
            }
        });
        Proxy { port, log }
    }

    fn handle(mut c: std::net::TcpStream, upstream: u16, head: &str, rest: &[u8], fault: Fault) {
        use std::io::Read;
        let reply = |c: &mut std::net::TcpStream, status: u16, ct: &str, body: &[u8]| {
            let _ = write!(
                c,
                "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = c.write_all(body);
        };
        match fault {
            Fault::Status(s) => {
                return reply(
                    &mut c,
                    s,
                    "application/json",
                    br#"{"errors":[{"code":"UNKNOWN","message":"injected failure"}]}"#,
                )
            }
            Fault::Stall(d) => return std::thread::sleep(d),
            Fault::Respond(ct, body) => return reply(&mut c, 200, ct, &body),
            Fault::Pass | Fault::Cut(..) | Fault::Append(_) | Fault::Endless => {}
        }
        // One request per connection keeps the relay simple.
        let mut fwd: String = head
            .lines()
            .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        fwd.push_str("Connection: close\r\n\r\n");
        let mut up = std::net::TcpStream::connect(("127.0.0.1", upstream)).unwrap();
        up.write_all(fwd.as_bytes()).unwrap();
        up.write_all(rest).unwrap();
        let mut resp = Vec::new();
        let _ = up.read_to_end(&mut resp);
        match fault {
            Fault::Cut(n, wait) => {
                let p = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let _ = c.write_all(&resp[..(p + n).min(resp.len())]);
                let _ = c.flush();
                std::thread::sleep(wait);
            }
            Fault::Append(_) | Fault::Endless => {
                let p = resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                let body = &resp[p..];
                let junk = vec![0x5au8; 64 << 10];
                let length = match fault {
                    Fault::Append(n) => format!("Content-Length: {}\r\n", body.len() + n),
                    _ => String::new(),
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n{length}Connection: close\r\n\r\n"
                );
                if c.write_all(head.as_bytes()).is_err() || c.write_all(body).is_err() {
                    return;
                }
                let mut left = match fault {
                    Fault::Append(n) => n,
                    _ => usize::MAX,
                };
                while left > 0 {
                    let n = left.min(junk.len());
                    if c.write_all(&junk[..n]).is_err() {
                        return;
                    }
                    left -= n;
                }
            }
            _ => {
                let _ = c.write_all(&resp);
            }
        }
    }

    fn name(&self, repo: &str) -> String {
        format!("127.0.0.1:{}/{repo}", self.port)
    }

    fn requests(&self, needle: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|h| h.contains(needle))
            .cloned()
            .collect()
    }
}

/// A registry holding busybox (gzip) as `repo:latest`; returns it with the layer digest.
fn registry_with_busybox(repo: &str) -> (Registry, String) {
    let reg = registry_holding(&[&format!("{repo}:latest")]);
    let m: serde_json::Value =
        serde_json::from_slice(&skopeo_raw(&reg.name(&format!("{repo}:latest")))).unwrap();
    let layer = m["layers"][0]["digest"].as_str().unwrap().to_string();
    (reg, layer)
}

/// Runs hako with a short registry timeout, as a user on a flaky network would set it.
fn run_quick(r: &Root, args: &[&str]) -> (i32, String, String) {
    let out = r
        .cmd(args)
        .env("HAKO_REGISTRY_TIMEOUT", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_store_clean(r: &Root) {
    // Opening the store sweeps what dead processes left in tmp/.
    assert_eq!(r.ok(&["images", "-q"]), "");
    assert_eq!(
        count_entries(&r.path().join("layers")),
        0,
        "no layer installed"
    );
    assert_eq!(count_entries(&r.path().join("blobs/sha256")), 0, "no blob");
    assert_eq!(count_entries(&r.path().join("tmp")), 0, "no leftovers");
}

#[test]
fn registry_500s_are_retried_then_reported() {
    let (reg, layer) = registry_with_busybox("flaky");
    let mut left = 2;
    let needle = format!("/blobs/{layer}");
    let n2 = needle.clone();
    let p = Proxy::start(
        reg.port,
        Box::new(move |line| {
            if line.contains(&n2) && left > 0 {
                left -= 1;
                Fault::Status(500)
            } else {
                Fault::Pass
            }
        }),
    );
    let r = Root::new();
    r.ok(&["pull", &p.name("flaky")]);
    assert_eq!(p.requests(&needle).len(), 3, "two 500s, then success");
    assert_eq!(
        r.ok(&["run", "--rm", &p.name("flaky"), "echo", "ok"]),
        "ok\n"
    );
    drop(r);

    let n3 = needle.clone();
    let p = Proxy::start(
        reg.port,
        Box::new(move |line| {
            if line.contains(&n3) {
                Fault::Status(500)
            } else {
                Fault::Pass
            }
        }),
    );
    let r = Root::new();
    let (code, _, err) = r.run(&["pull", &p.name("flaky")]);
    assert_eq!(code, 1);
    assert!(
        err.contains("500") && err.contains("injected failure"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(p.requests(&needle).len(), 3, "retried, then gave up");
    assert_store_clean(&r);
}

#[test]
fn stalled_and_dropped_connections_are_retried_and_resumed() {
    let (reg, layer) = registry_with_busybox("stall");
    let needle = format!("/blobs/{layer}");
    let n2 = needle.clone();
    let mut step = 0;
    let p = Proxy::start(
        reg.port,
        Box::new(move |line| {
            if !line.contains(&n2) {
                return Fault::Pass;
            }
            step += 1;
            match step {
                // No answer at all, then an answer that stalls mid-body, then one that is
                // cut mid-body: each resumed where the last stopped.
                1 => Fault::Stall(std::time::Duration::from_secs(3)),
                2 => Fault::Cut(200_000, std::time::Duration::from_secs(3)),
                3 => Fault::Cut(100_000, std::time::Duration::ZERO),
                _ => Fault::Pass,
            }
        }),
    );
    let r = Root::new();
    let (code, out, err) = run_quick(&r, &["pull", &p.name("stall")]);
    assert_eq!(code, 0, "{out}{err}");
    let reqs = p.requests(&needle);
    assert_eq!(reqs.len(), 4, "{reqs:?}");
    assert!(!reqs[1].to_lowercase().contains("range:"), "{}", reqs[1]);
    assert!(
        reqs[2].contains("Range: bytes=200000-") || reqs[2].contains("range: bytes=200000-"),
        "{}",
        reqs[2]
    );
    assert!(
        reqs[3].to_lowercase().contains("range: bytes=300000-"),
        "{}",
        reqs[3]
    );
    assert_eq!(
        r.ok(&["run", "--rm", &p.name("stall"), "echo", "whole"]),
        "whole\n"
    );
    drop(r);

    // A registry that never answers: a clear error, not a hang.
    let n3 = needle.clone();
    let p = Proxy::start(
        reg.port,
        Box::new(move |line| {
            if line.contains(&n3) {
                Fault::Stall(std::time::Duration::from_secs(5))
            } else {
                Fault::Pass
            }
        }),
    );
    let r = Root::new();
    let (code, _, err) = run_quick(&r, &["pull", &p.name("stall")]);
    assert_eq!(code, 1);
    assert!(
        err.to_lowercase().contains("timeout") || err.contains("timed out"),
        "{err}"
    );
    assert_store_clean(&r);
}

#[test]
fn malformed_manifest_config_and_unknown_media_type_are_refused() {
    let (reg, _) = registry_with_busybox("bad");
    let bad_config = b"{\"architecture\": \"amd64\", \"os\": ".to_vec();
    let cfg_digest = sha(&bad_config);
    let manifest_with = |config_digest: &str, config_len: usize, layer_type: &str| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_len},
            "layers": [{"mediaType": layer_type, "digest": format!("sha256:{}", "0".repeat(64)), "size": 1}],
        }))
        .unwrap()
    };
    let oci = "application/vnd.oci.image.manifest.v1+json";
    let cases: Vec<(&str, Fault, &str)> = vec![
        (
            "manifests/latest",
            Fault::Respond(oci, b"{\"schemaVersion\": 2, \"layers\": [".to_vec()),
            "malformed manifest",
        ),
        (
            "manifests/latest",
            Fault::Respond(
                "application/vnd.example.unknown+json",
                b"{\"hello\": 1}".to_vec(),
            ),
            "unsupported media type application/vnd.example.unknown+json",
        ),
        (
            "manifests/latest",
            Fault::Respond(
                oci,
                manifest_with(
                    &cfg_digest,
                    bad_config.len(),
                    "application/vnd.example.layer.v9",
                ),
            ),
            "unsupported media type application/vnd.example.layer.v9",
        ),
    ];
    for (path, fault, want) in cases {
        let mut fault = Some(fault);
        let p = Proxy::start(
            reg.port,
            Box::new(move |line| match fault.take() {
                Some(f) if line.contains(path) => f,
                Some(f) => {
                    fault = Some(f);
                    Fault::Pass
                }
                None => Fault::Pass,
            }),
        );
        let r = Root::new();
        let (code, _, err) = r.run(&["pull", &p.name("bad")]);
        assert_eq!(code, 1, "{want}");
        assert!(err.contains(want), "want {want:?}: {err}");
        assert_store_clean(&r);
    }
    // A config blob that matches its digest but is not JSON.
    let manifest = manifest_with(
        &cfg_digest,
        bad_config.len(),
        "application/vnd.oci.image.layer.v1.tar+gzip",
    );
    let cfg_path = format!("blobs/{cfg_digest}");
    let p = Proxy::start(
        reg.port,
        Box::new(move |line| {
            if line.contains("manifests/latest") {
                Fault::Respond(oci, manifest.clone())
            } else if line.contains(&cfg_path) {
                Fault::Respond("application/octet-stream", bad_config.clone())
            } else {
                Fault::Pass
            }
        }),
    );
    let r = Root::new();
    let (code, _, err) = r.run(&["pull", &p.name("bad")]);
    assert_eq!(code, 1);
    assert!(err.contains("config"), "{err}");
    assert_store_clean(&r);
}

/// Starts `hako pull` and kills it with SIGKILL once `ready` holds (or at once).
fn pull_and_kill(r: &Root, name: &str, ready: &mut dyn FnMut() -> bool, delay_ms: u64) {
    let mut child = r
        .cmd(&["pull", "-q", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_for(20, &mut *ready),
        "the pull never reached the moment"
    );
    std::thread::sleep(std::time::Duration::from_millis(delay_ms));
    // By the pid of the child this test started.
    let _ = Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// After any crash, the store must let a later pull and run succeed.
fn assert_recovers(r: &Root, name: &str) {
    r.ok(&["pull", "-q", name]);
    assert_eq!(r.ok(&["run", "--rm", name, "echo", "intact"]), "intact\n");
    r.ok(&["rmi", name]);
    r.ok(&["image", "prune", "-f"]);
    assert_store_clean(r);
}

#[test]
fn kill_9_during_pull_never_leaves_a_usable_corrupt_layer() {
    let (reg, layer) = registry_with_busybox("killed");
    let blob = format!("/blobs/{layer}");
    let r = Root::new();

    // While the manifest is being fetched, and in the middle of the layer.
    for (needle, fault_at) in [("manifests/latest", 0usize), (blob.as_str(), 300_000)] {
        let n = needle.to_string();
        let p = Proxy::start(
            reg.port,
            Box::new(move |line| {
                if !line.contains(&n) {
                    Fault::Pass
                } else if fault_at == 0 {
                    Fault::Stall(std::time::Duration::from_secs(30))
                } else {
                    Fault::Cut(fault_at, std::time::Duration::from_secs(30))
                }
            }),
        );
        let name = p.name("killed");
        pull_and_kill(&r, &name, &mut || !p.requests(needle).is_empty(), 300);
        assert_eq!(r.ok(&["images", "-q"]), "", "nothing committed");
        // The proxy no longer faults the second time around for the manifest case, so go
        // straight to the registry for recovery.
        assert_recovers(&r, &reg.name("killed"));
    }

    // At assorted moments of an unhindered pull, commit included.
    for delay in [0u64, 20, 50, 100, 200, 400] {
        pull_and_kill(&r, &reg.name("killed"), &mut || true, delay);
        let ids = r.ok(&["images", "-q"]);
        if !ids.is_empty() {
            // Committed before the kill: it must be whole.
            assert_eq!(
                r.ok(&["run", "--rm", &reg.name("killed"), "echo", "whole"]),
                "whole\n"
            );
        }
        assert_recovers(&r, &reg.name("killed"));
    }
}

/// A tmpfs mounted over the test's state root; unmounted (before the root's own leak check)
/// on drop.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path, size: &str) -> SmallDisk {
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs");
        SmallDisk(at.to_path_buf())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // The network records live on the tmpfs: take the root's bridge and nft table down
        // while the database still says what they are.
        let _ = Command::new(common::hako_bin())
            .args(["network", "teardown"])
            .env("HAKO_ROOT", &self.0)
            .stdin(Stdio::null())
            .output();
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_gives_a_clear_error_and_a_consistent_store() {
    let (reg, _) = registry_with_busybox("big");
    let r = Root::new();
    // Room for the database and the compressed blob, not for the unpacked layer too.
    let disk = SmallDisk::mount(r.path(), "1600k");
    let (code, _, err) = r.run(&["pull", &reg.name("big")]);
    assert_eq!(code, 1);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains("failed to extract layer: bin/busybox: No space left on device"),
        "{err}"
    );
    assert!(
        !err.contains(&*r.path().to_string_lossy()),
        "no temporary path: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(r.ok(&["images", "-q"]), "");
    assert_eq!(count_entries(&r.path().join("layers")), 0);
    assert_eq!(count_entries(&r.path().join("blobs/sha256")), 0);
    assert_eq!(count_entries(&r.path().join("tmp")), 0);
    // Once there is room, the same store works.
    assert!(Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(r.path())
        .status()
        .unwrap()
        .success());
    r.ok(&["pull", "-q", &reg.name("big")]);
    assert_eq!(
        r.ok(&["run", "--rm", &reg.name("big"), "echo", "fits"]),
        "fits\n"
    );
    r.ok(&["rmi", &reg.name("big")]);
    drop(disk);
}

/// A non-loopback IPv4 address of this host, if it has one.
fn host_ipv4() -> Option<String> {
    let out = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|a| {
            a.parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| !ip.is_loopback())
        })
        .map(str::to_string)
}

#[test]
fn config_file_insecure_registries_and_mirrors() {
    let (reg, _) = registry_with_busybox("library/mirrored");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The first mirror is down: the next one serves Docker Hub names.
    std::fs::write(
        &config,
        format!(
            r#"{{"registry-mirrors": ["http://127.0.0.1:{dead}", "http://127.0.0.1:{}/"]}}"#,
            reg.port
        ),
    )
    .unwrap();
    let r = Root::new();
    let with_config = |args: &[&str]| {
        // The proxy never answers a TLS hello: time that out quickly.
        let out = r
            .cmd(args)
            .env("HAKO_CONFIG", &config)
            .env("HAKO_REGISTRY_TIMEOUT", "2")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = with_config(&["pull", "mirrored"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Status: Downloaded newer image for mirrored:latest"),
        "{out}"
    );
    assert_eq!(r.ok(&["run", "--rm", "mirrored", "echo", "hub"]), "hub\n");

    let (code, _, err) = {
        std::fs::write(&config, "{\"registry-mirrors\": [\"mirror.lan\"]}").unwrap();
        with_config(&["pull", "mirrored"])
    };
    assert_eq!(code, 1);
    assert!(
        err.contains(config.to_str().unwrap()) && err.contains("https://"),
        "{err}"
    );
    std::fs::write(&config, "{not json").unwrap();
    let (code, _, err) = with_config(&["pull", "mirrored"]);
    assert_eq!(code, 1);
    assert!(err.contains(config.to_str().unwrap()), "{err}");

    // A registry on a non-loopback address needs TLS unless the config names it insecure.
    let Some(ip) = host_ipv4() else {
        eprintln!("skipping the insecure-registry half: this host has no non-loopback IPv4");
        return;
    };
    let p = Proxy::start_on(&ip, reg.port, Box::new(|_| Fault::Pass));
    let name = format!("{ip}:{}/library/mirrored", p.port);
    std::fs::write(&config, "{}").unwrap();
    let (code, _, err) = with_config(&["pull", &name]);
    assert_eq!(code, 1, "plain HTTP refused without configuration");
    assert!(err.contains(&format!("https://{ip}:{}", p.port)), "{err}");
    for entry in [format!("{ip}:{}", p.port), format!("{ip}/32")] {
        std::fs::write(
            &config,
            format!(r#"{{"insecure-registries": ["{entry}"]}}"#),
        )
        .unwrap();
        let (code, out, err) = with_config(&["pull", "-q", &name]);
        assert_eq!(code, 0, "{entry}: {out}{err}");
        r.ok(&["rmi", &name]);
    }
}

/// Runs a pull that must fail within `secs` seconds; returns its stderr.
fn pull_fails_quickly(r: &Root, name: &str, secs: u64) -> String {
    let mut child = r
        .cmd(&["pull", name])
        .env("HAKO_REGISTRY_TIMEOUT", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let done = wait_for(secs, || child.try_wait().unwrap().is_some());
    if !done {
        // By the pid of the child this test started.
        let _ = Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status();
    }
    let out = child.wait_with_output().unwrap();
    assert!(done, "the pull of {name} did not end within {secs} s");
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn blobs_manifests_and_configs_are_held_to_their_sizes() {
    let (reg, layer) = registry_with_busybox("sized");
    let raw = skopeo_raw(&reg.name("sized:latest"));
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let ct = "application/vnd.oci.image.manifest.v1+json";
    let size = manifest["layers"][0]["size"].as_u64().unwrap();
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let with_layer_size = |n: u64| {
        let mut m = manifest.clone();
        m["layers"][0]["size"] = n.into();
        serde_json::to_vec(&m).unwrap()
    };
    let blob = format!("/blobs/{layer}");
    let cfg = format!("/blobs/{config}");
    let huge = {
        let mut m = manifest.clone();
        m["annotations"] = serde_json::json!({"pad": "x".repeat(5 << 20)});
        serde_json::to_vec(&m).unwrap()
    };
    // (what the proxy does to which request, what the error must say)
    let cases: Vec<(String, Fault, String)> = vec![
        // 400 MB of junk after the layer: nothing past its size is read.
        (
            blob.clone(),
            Fault::Append(400 << 20),
            format!("layer {layer}: received more than the {size} bytes its descriptor gives"),
        ),
        // A body that never ends.
        (
            blob.clone(),
            Fault::Endless,
            format!("layer {layer}: received more than the {size} bytes its descriptor gives"),
        ),
        // A manifest that gives a layer too few or too many bytes.
        (
            "manifests/latest".into(),
            Fault::Respond(ct, with_layer_size(100)),
            format!("layer {layer}: received more than the 100 bytes its descriptor gives"),
        ),
        (
            "manifests/latest".into(),
            Fault::Respond(ct, with_layer_size(size * 2)),
            format!(
                "layer {layer}: received {size} bytes, its descriptor gives {}",
                size * 2
            ),
        ),
        (
            "manifests/latest".into(),
            Fault::Respond(ct, with_layer_size(0)),
            format!("layer {layer} has no size"),
        ),
        // Manifests and configs are read into memory: bounded.
        (
            "manifests/latest".into(),
            Fault::Respond(ct, huge),
            "received more than the 4194304 bytes a manifest may have".into(),
        ),
        (
            cfg.clone(),
            Fault::Append(10),
            format!("config {config}: received more than the"),
        ),
    ];
    for (needle, fault, want) in cases {
        let mut fault = Some(fault);
        let n = needle.clone();
        let p = Proxy::start(
            reg.port,
            Box::new(move |line| match fault.take() {
                Some(f) if line.contains(&n) => f,
                Some(f) => {
                    fault = Some(f);
                    Fault::Pass
                }
                None => Fault::Pass,
            }),
        );
        let r = Root::new();
        let err = pull_fails_quickly(&r, &p.name("sized"), 60);
        assert!(err.contains(&want), "{needle}: want {want:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert_store_clean(&r);
    }
}

/// Pushes an image of busybox and `extra` one-file layers as `repo:latest`.
fn push_many_layers(reg: &Registry, repo: &str, extra: usize) {
    let layout = Layout::new();
    let base = std::fs::read(images_dir().join("busybox.tar")).unwrap();
    let mut layers = vec![base];
    for i in 0..extra {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        b.append_data(&mut h, format!("f{i}"), &b"x"[..]).unwrap();
        layers.push(b.into_inner().unwrap());
    }
    let descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layout.put(l), "size": l.len(),
            })
        })
        .collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha(l)).collect::<Vec<_>>()},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": layout.put(&config), "size": config.len()},
        "layers": descs,
    }))
    .unwrap();
    let m = layout.put(&manifest);
    let mut layout = layout;
    layout.tag(
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m, "size": manifest.len(),
        }),
        "many",
    );
    reg.skopeo_push(layout.path(), "many", &format!("{repo}:latest"), &[]);
}

#[test]
fn pull_refuses_more_than_125_layers_before_downloading_any() {
    let reg = Registry::start();
    push_many_layers(&reg, "deep", 125);
    let p = Proxy::start(reg.port, Box::new(|_| Fault::Pass));
    let r = Root::new();
    let (code, _, err) = r.run(&["pull", &p.name("deep")]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "max depth exceeded: the image has 126 layers, more than the 125 an image may have"
        ),
        "{err}"
    );
    assert!(
        p.requests("/blobs/").is_empty(),
        "{:?}",
        p.requests("/blobs/")
    );
    assert_store_clean(&r);
    drop(r);
    // The most Docker allows pulls and runs.
    push_many_layers(&reg, "deep", 124);
    let r = Root::new();
    r.ok(&["pull", "-q", &reg.name("deep")]);
    assert_eq!(
        r.ok(&["run", "--rm", &reg.name("deep"), "cat", "/f0", "/f123"]),
        "xx"
    );
}

/// `pull --all-tags` pulls every tag the registry lists (pages followed), with one status line
/// for the repository at the end, as Docker prints it; a tag with `-a` is refused.
#[test]
fn pull_all_tags_takes_every_tag_the_registry_lists() {
    let reg = registry_holding(&["many:one", "many:two", "many:three"]);
    let r = Root::new();
    let name = reg.name("many");
    let out = r.ok(&["pull", "--all-tags", &name]);
    for tag in ["one", "three", "two"] {
        assert!(out.contains(&format!("{tag}: Pulling from many")), "{out}");
    }
    assert!(!out.contains("Using default tag"), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("Status: ")).count(),
        1,
        "{out}"
    );
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    assert_eq!(out.lines().last(), Some(name.as_str()), "{out}");
    let tags = r.ok(&["images", "--format", "{{.Tag}}", &name]);
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort();
    assert_eq!(tags, ["one", "three", "two"]);
    let again = r.ok(&["pull", "-a", &name]);
    assert!(
        again.contains(&format!("Status: Image is up to date for {name}")),
        "{again}"
    );

    let (code, _, err) = r.run(&["pull", "-a", &format!("{name}:one")]);
    assert_eq!(code, 1);
    assert_eq!(err.trim(), "hako: tag can't be used with --all-tags/-a");
}

/// A fake index answering `/v1/search` as Docker Hub does, on loopback (plain HTTP, as hako
/// talks to loopback registries). Its thread ends with the test process.
fn fake_index() -> u16 {
    let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let Some((head, _)) = read_head(&mut c) else {
                continue;
            };
            let line = head.lines().next().unwrap_or("").to_string();
            let (status, body) = if line.starts_with("GET /v1/search?q=tools&n=") {
                let n: usize = line
                    .split("&n=")
                    .nth(1)
                    .and_then(|r| r.split(' ').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(25);
                let all = serde_json::json!([
                    {"name": "lab/tools", "description": "Everything the lab needs to analyse its data, and a few more things besides", "star_count": 42, "is_official": false, "is_automated": false},
                    {"name": "tools", "description": "Official tools", "star_count": 1000, "is_official": true, "is_automated": false},
                    {"name": "old/tools", "description": "multi\nline", "star_count": 3, "is_official": false, "is_automated": true},
                ]);
                let results: Vec<serde_json::Value> =
                    all.as_array().unwrap().iter().take(n).cloned().collect();
                (
                    200,
                    serde_json::json!({"num_results": results.len(), "query": "tools", "results": results})
                        .to_string(),
                )
            } else {
                (404, "404 page not found\n".to_string())
            };
            let _ = write!(
                c,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

/// `search` against an index that has one: Docker's table (description cut at 45 characters
/// unless `--no-trunc`), `--limit`, `--filter`, `--format`; against a plain registry, which
/// has no search, one line saying so.
#[test]
fn search_an_index_and_refuse_a_registry_without_one() {
    let port = fake_index();
    let r = Root::new();
    let term = format!("127.0.0.1:{port}/tools");
    let out = r.ok(&["search", &term]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(lines[0].starts_with("NAME"), "{out}");
    assert!(
        lines[0].contains("DESCRIPTION")
            && lines[0].contains("STARS")
            && lines[0].contains("OFFICIAL"),
        "{out}"
    );
    assert!(lines[1].starts_with("lab/tools "), "{out}");
    assert!(
        lines[1].contains("Everything the lab needs to analyse its data…"),
        "{out}"
    );
    assert!(lines[2].contains("[OK]"), "{out}");
    assert!(lines[3].contains("multi line"), "{out}");
    let out = r.ok(&["search", "--no-trunc", "--limit", "1", &term]);
    assert!(out.contains("and a few more things besides"), "{out}");
    assert_eq!(out.lines().count(), 2, "{out}");
    let out = r.ok(&[
        "search",
        "--filter",
        "stars=10",
        "--filter",
        "is-official=false",
        "--format",
        "{{.Name}}:{{.StarCount}}",
        &term,
    ]);
    assert_eq!(out, "lab/tools:42\n");
    let (code, _, err) = r.run(&["search", "--limit", "101", &term]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[1, 100]"), "{err}");

    let reg = Registry::start();
    let (code, _, err) = r.run(&["search", &reg.name("busybox")]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("does not support search"), "{err}");
}

/// On a terminal, a pull draws each layer's line in place (cursor movements, Docker's
/// display); into a pipe it prints plain lines without any escape sequence.
#[test]
fn pull_progress_is_drawn_in_place_on_a_terminal() {
    let reg = registry_holding(&["tty:1"]);
    let name = reg.name("tty:1");
    let r = Root::new();
    let mut c = Command::new("script");
    c.args([
        "-qec",
        &format!("{} pull {name}", common::hako_bin()),
        "/dev/null",
    ])
    .env("HAKO_ROOT", r.path())
    .env("COLUMNS", "120");
    let out = hako_testkit::in_pty(c);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("\x1b[2K"), "no line rewritten: {text:?}");
    assert!(text.contains(": Pull complete"), "{text:?}");
    assert!(
        text.contains("Status: Downloaded newer image for"),
        "{text:?}"
    );
    r.ok(&["rmi", &name]);
    let piped = r.ok(&["pull", &name]);
    assert!(!piped.contains('\x1b'), "{piped:?}");
    assert!(piped.contains(": Pull complete"), "{piped}");
}
