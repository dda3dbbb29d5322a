//! Image platforms: what every image records, `--platform` selecting from an index and pulling
//! again, other operating systems refused with Docker's message, and a foreign architecture
//! (Debian's arm64 busybox-static) run under qemu-user-static through a `binfmt_misc` entry
//! this test registers itself, or refused before it starts when no emulator is registered.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::peers::Registry;
use common::{images_dir, Root};
use sha2::{Digest, Sha256};

const BINFMT: &str = "/proc/sys/fs/binfmt_misc";
const QEMU_AARCH64: &str = "/usr/bin/qemu-aarch64-static";
/// qemu's own aarch64 ELF magic and mask (scripts/qemu-binfmt-conf.sh).
const AARCH64_MAGIC: &[u8] =
    b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00";
const AARCH64_MASK: &[u8] =
    b"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff";

fn sha(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// An OCI layout holding single-layer images made from the test rootfs tars.
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
        let hex = d.trim_start_matches("sha256:");
        std::fs::write(self.dir.path().join("blobs/sha256").join(hex), data).unwrap();
        d
    }

    /// An image of `rootfs` recorded as `arch`; returns its index descriptor.
    fn image(&self, rootfs: &Path, arch: &str, variant: Option<&str>) -> serde_json::Value {
        let raw = std::fs::read(rootfs).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let blob = gz.finish().unwrap();
        let layer = self.put(&blob);
        let mut config = serde_json::json!({
            "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [sha(&raw)]},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ADD rootfs /"}],
        });
        let mut platform = serde_json::json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            config["variant"] = v.into();
            platform["variant"] = v.into();
        }
        let config = serde_json::to_vec(&config).unwrap();
        let cfg = self.put(&config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": blob.len()}],
        }))
        .unwrap();
        let m = self.put(&manifest);
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": m, "size": manifest.len(), "platform": platform,
        })
    }

    /// Tags an index of `entries` as `tag`.
    fn tag_index(&mut self, entries: Vec<serde_json::Value>, tag: &str) {
        let idx = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": entries,
        }))
        .unwrap();
        let d = self.put(&idx);
        self.index.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": d, "size": idx.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
        std::fs::write(
            self.dir.path().join("index.json"),
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": self.index}))
                .unwrap(),
        )
        .unwrap();
    }
}

fn inspect(r: &Root, name: &str) -> serde_json::Value {
    let out = r.ok(&["image", "inspect", name]);
    serde_json::from_str::<serde_json::Value>(&out).unwrap()[0].clone()
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// The arm64 busybox rootfs, built (cached) by the script the suite's setup runs.
fn arm64_rootfs() -> PathBuf {
    let tar = images_dir().join("busybox-arm64.tar");
    if !tar.exists() {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/make-test-image-arm64.sh");
        let st = std::process::Command::new(script)
            .arg(images_dir())
            .status()
            .unwrap();
        assert!(st.success(), "scripts/make-test-image-arm64.sh failed");
    }
    tar
}

/// `binfmt_misc` as this test found it, put back when dropped: mounted only if it was not,
/// this test's own aarch64 entry (a unique name) registered or not, and the host's aarch64
/// entries (Debian's `qemu-aarch64`) disabled only while the test needs no emulator.
struct Binfmt {
    mounted_here: bool,
    own: String,
    disabled: Vec<PathBuf>,
}

impl Binfmt {
    fn open() -> Binfmt {
        let mounted = std::fs::metadata(Path::new(BINFMT).join("register")).is_ok();
        if !mounted {
            let st = std::process::Command::new("mount")
                .args(["-t", "binfmt_misc", "binfmt_misc", BINFMT])
                .status()
                .unwrap();
            assert!(st.success(), "mount binfmt_misc");
        }
        Binfmt {
            mounted_here: !mounted,
            own: format!("hako-test-aarch64-{}", std::process::id()),
            disabled: Vec::new(),
        }
    }

    /// The enabled entries (other than ours) that would run an aarch64 executable.
    fn host_aarch64_entries(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(BINFMT).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if ["register", "status"].contains(&name.as_str()) || name == self.own {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let field = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(|v| hex::decode(v.trim()).unwrap_or_default())
            };
            let (Some(magic), mask) = (field("magic "), field("mask ")) else {
                continue;
            };
            let offset: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("offset "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let hits = AARCH64_MAGIC
                .get(offset..offset + magic.len())
                .is_some_and(|bytes| {
                    bytes.iter().enumerate().all(|(i, b)| {
                        let m = mask
                            .as_ref()
                            .and_then(|m| m.get(i).copied())
                            .unwrap_or(0xff);
                        b & m == magic[i] & m
                    })
                });
            if hits && text.starts_with("enabled") {
                out.push(e.path());
            }
        }
        out
    }

    /// No emulator for aarch64: the host's are disabled (restored on drop), ours removed.
    fn without_emulator(&mut self) {
        self.unregister();
        for p in self.host_aarch64_entries() {
            std::fs::write(&p, "0").unwrap();
            self.disabled.push(p);
        }
    }

    /// This test's own entry, with the F flag so that the interpreter works in a container.
    fn register(&mut self) {
        let esc = |b: &[u8]| b.iter().map(|c| format!("\\x{c:02x}")).collect::<String>();
        let line = format!(
            ":{}:M::{}:{}:{QEMU_AARCH64}:F",
            self.own,
            esc(AARCH64_MAGIC),
            esc(AARCH64_MASK)
        );
        std::fs::write(Path::new(BINFMT).join("register"), line).unwrap();
    }

    fn unregister(&self) {
        let p = Path::new(BINFMT).join(&self.own);
        if p.exists() {
            std::fs::write(p, "-1").unwrap();
        }
    }
}

impl Drop for Binfmt {
    fn drop(&mut self) {
        self.unregister();
        for p in &self.disabled {
            let _ = std::fs::write(p, "1");
        }
        if self.mounted_here {
            let _ = std::process::Command::new("umount").arg(BINFMT).status();
        }
    }
}

/// Other operating systems are refused where an image comes in, with Docker's message; an
/// import records the platform it is given.
#[test]
fn other_oses_refused_and_import_records_the_platform() {
    let r = Root::new();
    let tar = images_dir().join("busybox.tar");
    let tar = tar.to_str().unwrap();
    let (code, _, err) = r.run(&["import", "--platform", "windows/amd64", tar, "win"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        r#"hako: image operating system "windows" cannot be used on this platform"#
    );
    assert!(r.run(&["image", "inspect", "win"]).0 != 0);

    r.ok(&["import", "--platform", "linux/arm64/v8", tar, "armbox"]);
    let i = inspect(&r, "armbox");
    assert_eq!(
        (&i["Os"], &i["Architecture"], &i["Variant"]),
        (&"linux".into(), &"arm64".into(), &"v8".into())
    );
    r.ok(&["import", tar, "native"]);
    let i = inspect(&r, "native");
    assert_eq!(i["Architecture"], host_arch());
    assert!(i.get("Variant").is_none(), "{i}");

    // A docker-archive of a Windows image: refused, nothing stored.
    let dir = tempfile::tempdir().unwrap();
    let raw = std::fs::read(images_dir().join("busybox.tar")).unwrap();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "windows",
        "rootfs": {"type": "layers", "diff_ids": [sha(&raw)]},
    }))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let manifest = serde_json::to_vec(&serde_json::json!([{
        "Config": "config.json", "RepoTags": ["winload:latest"], "Layers": ["layer.tar"],
    }]))
    .unwrap();
    for (name, data) in [
        ("config.json", &config),
        ("layer.tar", &raw),
        ("manifest.json", &manifest),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    let archive = dir.path().join("win.tar");
    std::fs::write(&archive, b.into_inner().unwrap()).unwrap();
    let (code, _, err) = r.run(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(r#"image operating system "windows" cannot be used on this platform"#),
        "{err}"
    );
    assert!(r.run(&["image", "inspect", "winload"]).0 != 0);
    assert_eq!(
        std::fs::read_dir(r.path().join("layers"))
            .map(|d| d.count())
            .unwrap_or(0),
        1,
        "only the layer the two imports share"
    );
}

/// One index with amd64 and arm64 busybox: `--platform` picks, a local image of another
/// platform is pulled again, and the arm64 one runs under qemu when an emulator is
/// registered and is refused before start, naming both fixes, when none is.
#[test]
fn foreign_architecture_emulated_or_refused() {
    if host_arch() != "amd64" {
        eprintln!("skipped: the arm64 test image is foreign only on an amd64 host");
        return;
    }
    if !Path::new(QEMU_AARCH64).exists() {
        eprintln!("skipped: {QEMU_AARCH64} missing (apt-get install qemu-user-static)");
        return;
    }
    let arm = arm64_rootfs();
    let reg = Registry::start();
    let mut layout = Layout::new();
    let amd64 = layout.image(&images_dir().join("busybox.tar"), "amd64", None);
    let arm64 = layout.image(&arm, "arm64", Some("v8"));
    layout.tag_index(vec![amd64, arm64], "multi");
    reg.skopeo_push(layout.dir.path(), "multi", "multi:latest", &["--all"]);
    let name = reg.name("multi:latest");

    let r = Root::new();
    let mut binfmt = Binfmt::open();
    binfmt.without_emulator();

    r.ok(&["pull", "--platform", "linux/arm64", &name]);
    let i = inspect(&r, &name);
    assert_eq!(
        (&i["Architecture"], &i["Variant"]),
        (&"arm64".into(), &"v8".into())
    );

    // No emulator: refused before anything is created.
    let (code, out, err) = r.run(&["run", "--rm", &name, "uname", "-m"]);
    assert_eq!(code, 125, "{out}{err}");
    assert!(
        err.contains("image platform linux/arm64/v8 cannot run on this host (linux/amd64)")
            && err.contains("no emulator for arm64 is registered")
            && err.contains("--platform linux/amd64")
            && err.contains("qemu-user-static"),
        "{err}"
    );
    let (code, _, err) = r.run(&["create", &name, "true"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot run on this host"), "{err}");
    assert_eq!(r.ok(&["ps", "-aq"]), "");
    let info = r.ok(&["info"]);
    assert!(!info.contains(&binfmt.own), "{info}");
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {name}\nRUN uname -m > /built-on\n"),
    )
    .unwrap();
    let c = ctx.path().to_str().unwrap();
    let (code, _, err) = r.run(&["build", "--platform", "linux/arm64", "-t", "armbuilt", c]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "platform \"linux/arm64\": image platform linux/arm64 cannot run on this host"
        ),
        "{err}"
    );

    // Registered: it runs, and says once that it is emulated.
    binfmt.register();
    let info = r.ok(&["info"]);
    assert!(
        info.contains(&format!("{}: {QEMU_AARCH64} (flags F; usable)", binfmt.own)),
        "{info}"
    );
    let (code, out, err) = r.run(&["run", "--rm", &name, "uname", "-m"]);
    assert_eq!((code, out.as_str()), (0, "aarch64\n"), "{err}");
    assert_eq!(err.matches("running it emulated").count(), 1, "{err}");
    assert!(
        err.contains("(linux/arm64/v8) differs from the host's (linux/amd64)"),
        "{err}"
    );

    // `--platform` other than the local image's: refused with --pull never, pulled otherwise.
    let (code, _, err) = r.run(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "--platform",
        "linux/amd64",
        &name,
        "true",
    ]);
    assert_eq!(code, 125);
    assert!(
        err.contains(&format!(
            "image with reference {name} was found but does not match the specified platform: wanted linux/amd64, actual: linux/arm64/v8"
        )),
        "{err}"
    );
    let (code, out, err) = r.run(&[
        "run",
        "--rm",
        "--platform",
        "linux/amd64",
        &name,
        "uname",
        "-m",
    ]);
    assert_eq!((code, out.as_str()), (0, "x86_64\n"), "{err}");
    assert!(!err.contains("emulated"), "{err}");
    assert_eq!(inspect(&r, &name)["Architecture"], "amd64");
    // And back, by `create`.
    let id = r.ok(&["create", "--platform", "linux/arm64", &name, "uname", "-m"]);
    assert_eq!(inspect(&r, &name)["Architecture"], "arm64");
    let (code, out, err) = r.run(&["start", "-a", id.trim()]);
    assert_eq!((code, out.as_str()), (0, "aarch64\n"), "{err}");
    r.ok(&["rm", id.trim()]);

    // A build for arm64 runs its RUN steps emulated, from the arm64 base.
    r.ok(&["pull", "--platform", "linux/amd64", &name]);
    let out = r.ok(&["build", "--platform", "linux/arm64", "-t", "armbuilt", c]);
    assert!(out.contains("Successfully tagged armbuilt:latest"), "{out}");
    assert_eq!(
        inspect(&r, &name)["Architecture"],
        "arm64",
        "the base was pulled again"
    );
    let i = inspect(&r, "armbuilt");
    assert_eq!(
        (&i["Architecture"], &i["Variant"]),
        (&"arm64".into(), &"v8".into())
    );
    let (code, out, err) = r.run(&["run", "--rm", "armbuilt", "cat", "/built-on"]);
    assert_eq!((code, out.as_str()), (0, "aarch64\n"), "{err}");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nARG TARGETPLATFORM\nLABEL target=$TARGETPLATFORM\n",
    )
    .unwrap();
    r.ok(&["build", "--platform", "linux/arm64", "-t", "armscratch", c]);
    let i = inspect(&r, "armscratch");
    assert_eq!(i["Architecture"], "arm64");
    assert_eq!(i["Config"]["Labels"]["target"], "linux/arm64");
    drop(binfmt);
}

/// A little-endian ELF64 file with one `PT_NOTE` segment holding glibc's `NT_GNU_ABI_TAG`
/// for `min`, and glibc's version banner for `release`: what the checks read of a libc.so.6.
fn fake_libc(min: (u32, u32, u32), release: &str) -> Vec<u8> {
    let mut note = Vec::new();
    for w in [4u32, 16, 1] {
        note.extend_from_slice(&w.to_le_bytes());
    }
    note.extend_from_slice(b"GNU\0");
    for w in [0, min.0, min.1, min.2] {
        note.extend_from_slice(&w.to_le_bytes());
    }
    let mut f = Vec::new();
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f.extend_from_slice(&3u16.to_le_bytes()); // ET_DYN
    f.extend_from_slice(&62u16.to_le_bytes()); // x86-64
    f.extend_from_slice(&1u32.to_le_bytes());
    for v in [0u64, 64, 0] {
        f.extend_from_slice(&v.to_le_bytes()); // entry, phoff, shoff
    }
    f.extend_from_slice(&0u32.to_le_bytes());
    for v in [64u16, 56, 1, 64, 0, 0] {
        f.extend_from_slice(&v.to_le_bytes()); // ehsize, phentsize, phnum, shentsize, shnum, shstrndx
    }
    f.extend_from_slice(&4u32.to_le_bytes()); // PT_NOTE
    f.extend_from_slice(&4u32.to_le_bytes()); // PF_R
    for v in [120u64, 120, 120, note.len() as u64, note.len() as u64, 4] {
        f.extend_from_slice(&v.to_le_bytes());
    }
    f.extend_from_slice(&note);
    f.extend_from_slice(
        format!("GNU C Library stable release version {release}, by Roland McGrath et al.\n")
            .as_bytes(),
    );
    f
}

/// The image's glibc is read before start: one that needs a newer kernel than this one is
/// named with both versions, and an old one that calls vsyscall is named with the fix when
/// this kernel maps no vsyscall page. The container still starts (busybox is static).
#[test]
fn libc_abi_warned_before_start() {
    if host_arch() != "amd64" {
        eprintln!("skipped: the fake libc.so.6 is an x86-64 one");
        return;
    }
    let r = Root::with_busybox();
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("libc.so.6"), fake_libc((99, 1, 2), "2.12")).unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nCOPY libc.so.6 /lib64/libc-2.12.so\nRUN ln -s libc-2.12.so /lib64/libc.so.6\n",
    )
    .unwrap();
    r.ok(&["build", "-q", "-t", "oldlibc", ctx.path().to_str().unwrap()]);
    let release = String::from_utf8(
        std::process::Command::new("uname")
            .arg("-r")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let vsyscall_none = !std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .contains("[vsyscall]");
    for _ in 0..2 {
        // The second run reads the cached reading, and says the same.
        let (code, out, err) = r.run(&["run", "--rm", "oldlibc", "echo", "ran"]);
        assert_eq!((code, out.as_str()), (0, "ran\n"), "{err}");
        assert!(
            err.contains(&format!(
                "The image's C library /lib64/libc.so.6 needs Linux 99.1.2 or newer, and this host runs {}",
                release.trim()
            )),
            "{err}"
        );
        assert_eq!(
            err.contains(
                "The image's glibc 2.12 (/lib64/libc.so.6) calls the legacy vsyscall page"
            ) && err.contains("vsyscall=emulate"),
            vsyscall_none,
            "{err}"
        );
    }
    let cached = |name: &str| {
        let id = inspect(&r, name)["Id"].as_str().unwrap().to_string();
        r.path()
            .join("cache/abi")
            .join(id.trim_start_matches("sha256:"))
    };
    let old = cached("oldlibc");
    assert!(std::fs::read_to_string(&old)
        .unwrap()
        .starts_with("/lib64/libc.so.6 99.1.2 2.12"));
    // busybox has no glibc: nothing to say.
    let (code, _, err) = r.run(&["run", "--rm", "busybox", "true"]);
    assert_eq!(code, 0);
    assert!(!err.contains("C library"), "{err}");
    // Removing the image forgets its reading.
    // `hako info` says what explains it.
    let info = r.ok(&["info"]);
    assert_eq!(info.contains("  vsyscall: none\n"), vsyscall_none, "{info}");
    let actions = std::fs::read_to_string("/proc/sys/kernel/seccomp/actions_avail").unwrap();
    assert!(
        info.contains(&format!("  Seccomp actions: {}\n", actions.trim())),
        "{info}"
    );
    assert!(info.contains("  User namespaces: "), "{info}");
    let bb = cached("busybox");
    assert_eq!(std::fs::read_to_string(&bb).unwrap(), "none");
    r.ok(&["rmi", "oldlibc"]);
    assert!(!old.exists() && bb.exists());
}

/// Syscalls that get ENOSYS are named after the fact: one past this kernel's table, and one a
/// user's profile answers with ENOSYS to stand for an older kernel (glibc's clone3 fallback
/// still works under it). EPERM answers stay as they are, and a run that calls none of them
/// says nothing.
#[test]
fn missing_syscalls_reported_at_exit_and_in_inspect() {
    let r = Root::new();
    r.ok(&[
        "import",
        images_dir().join("trixie.tar").to_str().unwrap(),
        "trixie",
    ]);
    let (code, out, err) = r.run(&[
        "run",
        "--name",
        "beyond",
        "trixie",
        "perl",
        "-e",
        "my $r = syscall(1000); print qq($r ), $!+0, qq(\\n); syscall(1000); syscall(165, 0, 0, 0, 0, 0); print $!+0, qq(\\n)",
    ]);
    assert_eq!((code, out.as_str()), (0, "-1 38\n1\n"), "{err}");
    assert_eq!(
        err,
        "hako: the container called syscall 1000, which this kernel does not implement (or the seccomp profile does not know): it got ENOSYS\n"
    );
    let state = r.ok(&["inspect", "-f", "{{json .State.MissingSyscalls}}", "beyond"]);
    assert_eq!(
        state.trim(),
        r#"[{"Name":null,"Number":1000,"Reason":"kernel"}]"#
    );
    let (code, _, err) = r.run(&["run", "--rm", "trixie", "perl", "-e", "print 1"]);
    assert_eq!((code, err.as_str()), (0, ""));
    r.ok(&["rm", "beyond"]);

    let dir = tempfile::tempdir().unwrap();
    let opt = format!("seccomp={}", older_kernel_profile(dir.path()).display());
    // sort's threads come from glibc's clone3, which the profile (as Docker's) answers
    // ENOSYS: glibc falls back to clone and the sort completes.
    let (code, out, err) = r.run(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "trixie",
        "sh",
        "-c",
        "perl -e 'print syscall(434, 1, 0), qq( ), $!+0, qq(\\n)'; seq 1 300000 | sort -n --parallel=4 -S 50M | tail -1",
    ]);
    assert_eq!((code, out.as_str()), (0, "-1 38\n300000\n"), "{err}");
    assert!(
        err.contains("hako: the container called pidfd_open (434), which the seccomp profile answers with ENOSYS"),
        "{err}"
    );
    assert!(
        err.contains("hako: the container called clone3 (435), which the seccomp profile answers with ENOSYS"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 2, "{err}");
}

/// A user's profile in `dir`: hako's default, with pidfd_open answered ENOSYS.
fn older_kernel_profile(dir: &Path) -> PathBuf {
    let mut profile: serde_json::Value =
        serde_json::from_str(include_str!("../../engine/src/seccomp/default.json")).unwrap();
    for rule in profile["syscalls"].as_array_mut().unwrap() {
        if rule["action"] == "SCMP_ACT_ALLOW"
            && rule.get("includes").is_none()
            && rule.get("args").is_none()
        {
            rule["names"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n != "pidfd_open");
        }
    }
    profile["syscalls"].as_array_mut().unwrap().push(
        serde_json::json!({"names": ["pidfd_open"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}),
    );
    let file = dir.join("older-kernel.json");
    std::fs::write(&file, profile.to_string()).unwrap();
    file
}

/// A detached container's monitor is its seccomp agent: what got ENOSYS is in `inspect` once
/// it exited, also a call made after the container closed its output (the monitor answers
/// until the container's end, not only while it relays). A `start` clears the record of the
/// run before and records its own; `-t` (the monitor's terminal loop) records too.
#[test]
fn missing_syscalls_of_detached_containers_in_inspect() {
    let r = Root::new();
    r.ok(&[
        "import",
        images_dir().join("trixie.tar").to_str().unwrap(),
        "trixie",
    ]);
    let missing = |name: &str| {
        r.ok(&["inspect", "-f", "{{json .State.MissingSyscalls}}", name])
            .trim()
            .to_string()
    };
    // The first run calls 1000 and, once its output is closed, 1003; a second run waits for
    // /go, then calls 1001.
    let script = r#"if [ -e /ran ]; then
        while [ ! -e /go ]; do sleep 0.05; done
        perl -e 'print syscall(1001), qq( ), $!+0, qq(\n)'
    else
        touch /ran
        perl -e 'print syscall(1000), qq( ), $!+0, qq(\n); syscall(1000)'
        exec >&- 2>&-
        perl -e 'syscall(1003) == -1 && $!+0 == 38 or exit 9'
    fi"#;
    r.ok(&["run", "-d", "--name", "bg", "trixie", "sh", "-c", script]);
    assert_eq!(r.ok(&["wait", "bg"]).trim(), "0");
    assert_eq!(r.ok(&["logs", "bg"]), "-1 38\n");
    assert_eq!(
        missing("bg"),
        r#"[{"Name":null,"Number":1000,"Reason":"kernel"},{"Name":null,"Number":1003,"Reason":"kernel"}]"#
    );

    r.ok(&["start", "bg"]);
    assert_eq!(missing("bg"), "[]", "a start clears the last run's record");
    r.ok(&["exec", "bg", "touch", "/go"]);
    assert_eq!(r.ok(&["wait", "bg"]).trim(), "0");
    assert_eq!(
        missing("bg"),
        r#"[{"Name":null,"Number":1001,"Reason":"kernel"}]"#
    );
    r.ok(&["rm", "bg"]);

    r.ok(&[
        "run",
        "-dt",
        "--name",
        "tty",
        "trixie",
        "perl",
        "-e",
        "syscall(1002) == -1 && $!+0 == 38 or exit 9",
    ]);
    assert_eq!(r.ok(&["wait", "tty"]).trim(), "0");
    assert_eq!(
        missing("tty"),
        r#"[{"Name":null,"Number":1002,"Reason":"kernel"}]"#
    );
    r.ok(&["rm", "tty"]);

    // No filter, no listener: with fds 3 to 6 taken (`-i`), the monitor's log must not be
    // taken for one.
    r.ok(&[
        "run",
        "-di",
        "--privileged",
        "--name",
        "nofilter",
        "trixie",
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; sleep 0.05; done",
    ]);
    assert_eq!(r.ok(&["wait", "nofilter"]).trim(), "0");
    assert_eq!(r.ok(&["logs", "nofilter"]), "line1\nline2\nline3\n");
    assert_eq!(missing("nofilter"), "[]");
    r.ok(&["rm", "nofilter"]);

    // A user's profile's ENOSYS rule is named as the profile's.
    let dir = tempfile::tempdir().unwrap();
    let opt = format!("seccomp={}", older_kernel_profile(dir.path()).display());
    r.ok(&[
        "run",
        "-d",
        "--name",
        "older",
        "--security-opt",
        &opt,
        "trixie",
        "perl",
        "-e",
        "syscall(434, 1, 0) == -1 && $!+0 == 38 or exit 9",
    ]);
    assert_eq!(r.ok(&["wait", "older"]).trim(), "0");
    assert_eq!(
        missing("older"),
        r#"[{"Name":"pidfd_open","Number":434,"Reason":"profile"}]"#
    );
    r.ok(&["rm", "older"]);
}

/// A foreground `exec` is its own process's agent, as `run` is: the line at its exit, and the
/// program's own status.
#[test]
fn missing_syscalls_of_exec_reported_at_its_exit() {
    let r = Root::new();
    r.ok(&[
        "import",
        images_dir().join("trixie.tar").to_str().unwrap(),
        "trixie",
    ]);
    r.ok(&["run", "-d", "--name", "host", "trixie", "sleep", "1000"]);
    let (code, out, err) = r.run(&[
        "exec",
        "host",
        "perl",
        "-e",
        "print syscall(1000), qq( ), $!+0, qq(\\n); exit 3",
    ]);
    assert_eq!((code, out.as_str()), (3, "-1 38\n"), "{err}");
    assert_eq!(
        err,
        "hako: the container called syscall 1000, which this kernel does not implement (or the seccomp profile does not know): it got ENOSYS\n"
    );
    let (code, _, err) = r.run(&["exec", "host", "true"]);
    assert_eq!((code, err.as_str()), (0, ""));
    r.ok(&["rm", "-f", "host"]);
}

/// A call waiting for a monitor that dies is answered by the kernel with ENOSYS (the
/// listener closes with it), so the container goes on as it would have without the agent.
#[test]
fn a_dead_monitors_pending_call_gets_enosys() {
    let r = Root::new();
    r.ok(&[
        "import",
        images_dir().join("trixie.tar").to_str().unwrap(),
        "trixie",
    ]);
    let script = r#"while [ ! -e /go ]; do sleep 0.05; done
        perl -e 'print syscall(1000), qq( ), $!+0' > /res.tmp
        mv /res.tmp /res
        sleep 1000"#;
    r.ok(&[
        "run", "-d", "--name", "orphan", "trixie", "sh", "-c", script,
    ]);
    let pid = r.ok(&["inspect", "-f", "{{.State.Pid}}", "orphan"]);
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap();
    // The fourth field, after the command name in parentheses.
    let monitor: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let monitor = nix::unistd::Pid::from_raw(monitor);
    assert!(
        std::fs::read_to_string(format!("/proc/{monitor}/comm"))
            .unwrap()
            .starts_with("hako-monitor"),
        "the container's parent is its monitor"
    );
    // Stopped, the monitor cannot answer: the call waits. Killed in the end whatever fails.
    struct KillAtEnd(nix::unistd::Pid);
    impl Drop for KillAtEnd {
        fn drop(&mut self) {
            let _ = nix::sys::signal::kill(self.0, nix::sys::signal::Signal::SIGKILL);
        }
    }
    let _monitor = KillAtEnd(monitor);
    nix::sys::signal::kill(monitor, nix::sys::signal::Signal::SIGSTOP).unwrap();
    r.ok(&["exec", "orphan", "touch", "/go"]);
    let result = || {
        let (code, out, _) = r.run(&["exec", "orphan", "cat", "/res"]);
        (code == 0).then_some(out)
    };
    let waited = common::wait_for(1, || result().is_some());
    assert!(!waited, "the call waits for the stopped monitor");
    nix::sys::signal::kill(monitor, nix::sys::signal::Signal::SIGKILL).unwrap();
    assert!(common::wait_for(10, || result().is_some()));
    assert_eq!(result().unwrap(), "-1 38");
    r.ok(&["rm", "-f", "orphan"]);
}

/// `hako info` names the newest syscall libseccomp knows that this kernel has: newer ones get
/// ENOSYS in containers whatever the kernel.
#[test]
fn info_names_the_newest_syscall() {
    let r = Root::new();
    let info = r.ok(&["info"]);
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("  Newest syscall: "))
        .unwrap_or_else(|| panic!("{info}"));
    let (name, rest) = line.split_once(" (").unwrap();
    let nr: u32 = rest.split_once(')').unwrap().0.parse().unwrap();
    // clone3 (435) came with Linux 5.3 and libseccomp 2.4.2.
    assert!(nr >= 435, "{line}");
    assert!(
        line.ends_with("which no seccomp profile can name")
            || line.contains("which this kernel lacks"),
        "{line}"
    );
    let prefix = match std::env::consts::ARCH {
        "aarch64" => "__arm64_sys_",
        _ => "__x64_sys_",
    };
    let kallsyms = std::fs::read_to_string("/proc/kallsyms").unwrap();
    assert!(
        kallsyms
            .lines()
            .any(|l| l.ends_with(&format!(" {prefix}{name}"))),
        "{line}"
    );
}

/// Rootless, a detached container's monitor records as a rootful one's does. A foreground
/// `exec` cannot be the agent there (after joining the container's pid namespace for its
/// children, an unprivileged process cannot leave it, and cannot then start a thread): its
/// call gets ENOSYS unrecorded, and nothing waits.
#[test]
fn missing_syscalls_rootless() {
    use hako_testkit::user::{SubIds, TestUser};
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test creates an account: run it as root"
    );
    let u = TestUser::with_subids(SubIds::Count(65536));
    let hako = |args: &[&str]| {
        let o = u.command(common::hako_bin()).args(args).output().unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (
            o.status.code().unwrap_or(-1),
            text(&o.stdout),
            text(&o.stderr),
        )
    };
    let ok = |args: &[&str]| {
        let (code, out, err) = hako(args);
        assert_eq!(code, 0, "hako {args:?}: {err}{out}");
        out
    };
    ok(&[
        "import",
        images_dir().join("trixie.tar").to_str().unwrap(),
        "trixie",
    ]);
    ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "bg",
        "trixie",
        "perl",
        "-e",
        "syscall(1000) == -1 && $!+0 == 38 or exit 9",
    ]);
    assert_eq!(ok(&["wait", "bg"]).trim(), "0");
    assert_eq!(
        ok(&["inspect", "-f", "{{json .State.MissingSyscalls}}", "bg"]).trim(),
        r#"[{"Name":null,"Number":1000,"Reason":"kernel"}]"#
    );
    ok(&["rm", "bg"]);

    ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "host",
        "trixie",
        "sleep",
        "300",
    ]);
    // A rootless exec is its own agent too, as root's (its process is cloned into the
    // container's pid namespace by an intermediate, so this one can still start the thread).
    let (code, out, err) = hako(&[
        "exec",
        "host",
        "perl",
        "-e",
        "print syscall(1000), qq( ), $!+0; exit 3",
    ]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (
            3,
            "-1 38",
            "hako: the container called syscall 1000, which this kernel does not implement (or the seccomp profile does not know): it got ENOSYS\n"
        )
    );
    ok(&["rm", "-f", "host"]);
}
