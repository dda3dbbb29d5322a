//! Signature policy on pull and push, against the real peers: a private `docker-registry`,
//! `skopeo` (signing with sigstore keys and GPG, and verifying what hako signed under the
//! same policy), `gpg` with a private GNUPGHOME. Every test writes its own policy.json and
//! registries.d and points hako (`HAKO_POLICY`, `HAKO_REGISTRIES_D`) and skopeo
//! (`--policy`, `--registries.d`) at them.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::peers::{need, Podman, Registry};
use common::Root;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A policy, registries.d and keys in a private directory.
struct Trust {
    dir: tempfile::TempDir,
}

impl Trust {
    fn new() -> Trust {
        let dir = tempfile::Builder::new()
            .prefix("hako-trust-")
            .tempdir_in("/var/tmp")
            .unwrap();
        std::fs::create_dir(dir.path().join("registries.d")).unwrap();
        std::fs::create_dir(dir.path().join("lookaside")).unwrap();
        let t = Trust { dir };
        t.registries_d(&format!(
            "default-docker:\n  use-sigstore-attachments: true\n  lookaside: file://{}\n",
            t.path("lookaside").display()
        ));
        t.policy(r#"{"default":[{"type":"insecureAcceptAnything"}]}"#);
        t
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn policy(&self, json: &str) {
        std::fs::write(self.path("policy.json"), json).unwrap();
    }

    fn registries_d(&self, yaml: &str) {
        std::fs::write(self.path("registries.d/default.yaml"), yaml).unwrap();
    }

    /// A policy: default `insecureAcceptAnything`, and `requirement` for the repositories.
    fn policy_for(&self, scopes: &[(&str, String)]) {
        let docker: Vec<String> = scopes
            .iter()
            .map(|(scope, req)| format!("{scope:?}: [{req}]"))
            .collect();
        self.policy(&format!(
            r#"{{"default":[{{"type":"insecureAcceptAnything"}}],"transports":{{"docker":{{{}}}}}}}"#,
            docker.join(",")
        ));
    }

    fn hako(&self, root: &Root, args: &[&str]) -> Output {
        root.cmd(args)
            .env("HAKO_POLICY", self.path("policy.json"))
            .env("HAKO_REGISTRIES_D", self.path("registries.d"))
            .output()
            .unwrap()
    }

    /// [`Trust::hako`] on another state root than `root`'s.
    fn hako_in(&self, root: &Root, state: &Path, args: &[&str]) -> Output {
        root.cmd(args)
            .env("HAKO_ROOT", state)
            .env("HAKO_POLICY", self.path("policy.json"))
            .env("HAKO_REGISTRIES_D", self.path("registries.d"))
            .output()
            .unwrap()
    }

    fn skopeo(&self) -> Command {
        let mut c = Command::new(need("skopeo"));
        c.arg("--policy")
            .arg(self.path("policy.json"))
            .arg("--registries.d")
            .arg(self.path("registries.d"));
        c
    }

    /// A sigstore key pair made by hako (skopeo 1.9 has no generate-sigstore-key):
    /// `NAME.private` sealed with the passphrase in `pass`, `NAME.pub`.
    fn sigstore_key(&self, root: &Root, name: &str) -> (PathBuf, PathBuf) {
        std::fs::write(self.path("pass"), "secret\n").unwrap();
        let prefix = self.path(name);
        let out = self.hako(
            root,
            &[
                "image",
                "trust",
                "generate-sigstore-key",
                "--output-prefix",
                prefix.to_str().unwrap(),
                "--passphrase-file",
                self.path("pass").to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        (
            self.path(&format!("{name}.private")),
            self.path(&format!("{name}.pub")),
        )
    }

    /// `hako push --sign-by-sigstore-private-key KEY --sign-passphrase-file PASS NAME`.
    fn push_sigstore(&self, root: &Root, key: &Path, pass: &str, name: &str) -> Output {
        self.hako(
            root,
            &[
                "push",
                "--sign-by-sigstore-private-key",
                key.to_str().unwrap(),
                "--sign-passphrase-file",
                self.path(pass).to_str().unwrap(),
                name,
            ],
        )
    }

    fn sigstore_req(key: &Path) -> String {
        format!(
            r#"{{"type":"sigstoreSigned","keyPath":"{}"}}"#,
            key.display()
        )
    }
}

/// Debian builds containers/image without sigstore ("Debian-local change: sigstore
/// disabled"): its skopeo (1.9) can neither sign nor verify sigstore signatures.
fn sigstore_disabled(out: &Output) -> bool {
    !out.status.success() && stderr(out).contains("sigstore disabled")
}

/// Pushes `root`'s busybox, unsigned, to `repo` of `reg`.
fn push_unsigned(t: &Trust, root: &Root, reg: &Registry, repo: &str) -> String {
    let name = reg.name(repo);
    root.ok(&["tag", "busybox", &name]);
    let out = t.hako(root, &["push", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    name
}

/// An empty state root of its own for one pull (a test holds one `Root` at a time: they are
/// serialized), removed when dropped.
fn fresh_state() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hako-trust-pull-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// Asserts the pull was refused with a one-line message naming `rule` and `reason`, exit
/// 1, and that the state root it pulled into holds no image and no blob.
fn assert_rejected(t: &Trust, root: &Root, name: &str, rule: &str, reason: &str) {
    let state = fresh_state();
    let out = t.hako_in(root, state.path(), &["pull", name]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(rule), "{err} lacks {rule}");
    assert!(err.contains(reason), "{err} lacks {reason}");
    let images = t.hako_in(root, state.path(), &["images", "-q"]);
    assert!(images.status.success(), "{}", stderr(&images));
    assert!(
        images.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&images.stdout)
    );
    let blobs = state.path().join("blobs/sha256");
    let n = std::fs::read_dir(&blobs).map_or(0, |d| d.count());
    assert_eq!(n, 0, "blobs left in {}", blobs.display());
}

fn pull_ok(t: &Trust, root: &Root, name: &str) {
    let state = fresh_state();
    let out = t.hako_in(root, state.path(), &["pull", name]);
    assert!(out.status.success(), "pull {name}: {}", stderr(&out));
    let images = t.hako_in(root, state.path(), &["images", "-q"]);
    assert!(!images.stdout.is_empty());
}

#[test]
fn sigstore_signed_by_skopeo_verified_by_hako() {
    let reg = Registry::start();
    let t = Trust::new();
    let root = Root::with_busybox();
    let (private, public) = t.sigstore_key(&root, "k");
    let (_, wrong) = t.sigstore_key(&root, "wrong");
    let src = push_unsigned(&t, &root, &reg, "src:1");
    let signed = reg.name("signed:1");
    let out = t
        .skopeo()
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg("--sign-by-sigstore-private-key")
        .arg(&private)
        .arg("--sign-passphrase-file")
        .arg(t.path("pass"))
        .arg(format!("docker://{src}"))
        .arg(format!("docker://{signed}"))
        .output()
        .unwrap();
    if sigstore_disabled(&out) {
        eprintln!(
            "skopeo signing skipped: this host's skopeo is built without sigstore ({}); hako signs instead",
            stderr(&out).trim()
        );
        root.ok(&["tag", "busybox", &signed]);
        let out = t.push_sigstore(&root, &private, "pass", &signed);
        assert!(out.status.success(), "{}", stderr(&out));
    } else {
        assert!(
            out.status.success(),
            "skopeo copy --sign-by-sigstore-private-key: {}",
            stderr(&out)
        );
    }

    let repo = |r: &str| reg.name(r);
    t.policy_for(&[
        (&repo("signed"), Trust::sigstore_req(&public)),
        (&repo("src"), Trust::sigstore_req(&public)),
    ]);
    pull_ok(&t, &root, &signed);
    assert_rejected(
        &t,
        &root,
        &src,
        &format!("transports.docker[\"{}\"][0] (sigstoreSigned)", repo("src")),
        "no sigstore signature exists",
    );

    // The same signature under the wrong key.
    t.policy_for(&[(&repo("signed"), Trust::sigstore_req(&wrong))]);
    assert_rejected(
        &t,
        &root,
        &signed,
        "(sigstoreSigned)",
        "does not match the policy's key",
    );

    // Signed as signed:1; pulled as another tag of the same manifest, matchRepoDigestOrExact
    // refuses it, and matchRepository accepts it. (hako pushes the same manifest bytes, so
    // the signature of signed:1's digest is found.)
    let other = push_unsigned(&t, &root, &reg, "signed:other");
    t.policy_for(&[(&repo("signed"), Trust::sigstore_req(&public))]);
    assert_rejected(
        &t,
        &root,
        &other,
        "(sigstoreSigned)",
        "matchRepoDigestOrExact",
    );
    t.policy_for(&[(
        &repo("signed"),
        format!(
            r#"{{"type":"sigstoreSigned","keyPath":"{}","signedIdentity":{{"type":"matchRepository"}}}}"#,
            public.display()
        ),
    )]);
    pull_ok(&t, &root, &other);

    // Sigstore signatures are read only where registries.d enables the attachments, as
    // skopeo and Podman do.
    t.registries_d("default-docker:\n  use-sigstore-attachments: false\n");
    assert_rejected(
        &t,
        &root,
        &signed,
        "(sigstoreSigned)",
        "use-sigstore-attachments",
    );
}

/// The manifest digest a tag resolves to, and the manifest.
fn manifest_of(reg: &Registry, repo: &str, reference: &str) -> (String, Vec<u8>) {
    let url = format!(
        "http://127.0.0.1:{}/v2/{repo}/manifests/{reference}",
        reg.port
    );
    let out = Command::new(need("curl"))
        .args(["-sf", "-D", "-", "-o", "-", "-H"])
        .arg("Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl {url}");
    let text = out.stdout;
    let split = text.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let headers = String::from_utf8_lossy(&text[..split]).to_lowercase();
    let digest = headers
        .lines()
        .find_map(|l| l.strip_prefix("docker-content-digest: "))
        .unwrap()
        .trim()
        .to_string();
    (digest, text[split + 4..].to_vec())
}

fn put_manifest(reg: &Registry, repo: &str, reference: &str, media_type: &str, body: &[u8]) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), body).unwrap();
    let url = format!(
        "http://127.0.0.1:{}/v2/{repo}/manifests/{reference}",
        reg.port
    );
    let out = Command::new(need("curl"))
        .args(["-sf", "-X", "PUT", "-H"])
        .arg(format!("Content-Type: {media_type}"))
        .arg("--data-binary")
        .arg(format!("@{}", file.path().display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(out.status.success(), "curl PUT {url}: {}", stderr(&out));
}

#[test]
fn sigstore_signed_by_hako_verified_by_skopeo_and_tampering_rejected() {
    let reg = Registry::start();
    let t = Trust::new();
    let root = Root::with_busybox();
    let (private, public) = t.sigstore_key(&root, "k");
    let (_, wrong) = t.sigstore_key(&root, "wrong");
    let name = reg.name("hs:1");
    root.ok(&["tag", "busybox", &name]);

    // A wrong passphrase fails before anything is uploaded.
    std::fs::write(t.path("badpass"), "nope").unwrap();
    let out = t.push_sigstore(&root, &private, "badpass", &name);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "{}",
        stderr(&out)
    );
    let curl = Command::new(need("curl"))
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{}/v2/hs/tags/list", reg.port))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "404");

    let out = t.push_sigstore(&root, &private, "pass", &name);
    assert!(out.status.success(), "{}", stderr(&out));
    let (digest, manifest) = manifest_of(&reg, "hs", "1");
    let sig_tag = format!("sha256-{}.sig", &digest[7..]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&sig_tag));

    let skopeo_pull = |t: &Trust| {
        let dest = tempfile::tempdir().unwrap();
        t.skopeo()
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{name}"))
            .arg(format!("dir:{}", dest.path().display()))
            .output()
            .unwrap()
    };
    t.policy_for(&[(&reg.name("hs"), Trust::sigstore_req(&public))]);
    let out = skopeo_pull(&t);
    let skopeo_sigstore = !sigstore_disabled(&out);
    if skopeo_sigstore {
        assert!(
            out.status.success(),
            "skopeo refused hako's signature: {}",
            stderr(&out)
        );
    } else {
        eprintln!(
            "skopeo verification skipped: this host's skopeo is built without sigstore ({})",
            stderr(&out).trim()
        );
    }
    pull_ok(&t, &root, &name);
    t.policy_for(&[(&reg.name("hs"), Trust::sigstore_req(&wrong))]);
    if skopeo_sigstore {
        assert!(!skopeo_pull(&t).status.success());
    }
    assert_rejected(
        &t,
        &root,
        &name,
        "(sigstoreSigned)",
        "does not match the policy's key",
    );

    // Tampering: the manifest changed (an annotation added) and the old signature copied
    // beside the new digest. Both skopeo and hako refuse it.
    let mut m: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    m["annotations"] = serde_json::json!({"evil": "yes"});
    let tampered = serde_json::to_vec(&m).unwrap();
    let media_type = m["mediaType"]
        .as_str()
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    put_manifest(&reg, "hs", "1", &media_type, &tampered);
    let (new_digest, _) = manifest_of(&reg, "hs", "1");
    assert_ne!(new_digest, digest);
    let (_, sig_manifest) = manifest_of(&reg, "hs", &sig_tag);
    put_manifest(
        &reg,
        "hs",
        &format!("sha256-{}.sig", &new_digest[7..]),
        "application/vnd.oci.image.manifest.v1+json",
        &sig_manifest,
    );
    t.policy_for(&[(&reg.name("hs"), Trust::sigstore_req(&public))]);
    assert!(
        !skopeo_sigstore || !skopeo_pull(&t).status.success(),
        "skopeo accepted a tampered manifest"
    );
    assert_rejected(
        &t,
        &root,
        &name,
        "(sigstoreSigned)",
        "the manifest was changed after signing",
    );
}

#[test]
fn reject_and_accept_scopes_and_run() {
    let reg = Registry::start();
    let t = Trust::new();
    let root = Root::with_busybox();
    let ok = push_unsigned(&t, &root, &reg, "open/app:1");
    let blocked = push_unsigned(&t, &root, &reg, "closed/app:1");
    root.ok(&["rmi", &ok, &blocked]);
    t.policy(&format!(
        r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{
            "{}":[{{"type":"insecureAcceptAnything"}}],
            "{}":[{{"type":"reject"}}]}}}}}}"#,
        reg.name("open"),
        reg.name("closed/app")
    ));
    pull_ok(&t, &root, &ok);
    assert_rejected(
        &t,
        &root,
        &blocked,
        &format!(
            "transports.docker[\"{}\"][0] (reject)",
            reg.name("closed/app")
        ),
        "the policy rejects every image in this scope",
    );
    // Nothing matches: the default applies.
    let other = push_unsigned(&t, &root, &reg, "elsewhere:1");
    assert_rejected(
        &t,
        &root,
        &other,
        "default[0] (reject)",
        "rejects every image",
    );

    // run pulls the missing image through the same check: exit 125, nothing stored.
    let out = t.hako(
        &root,
        &["run", "--rm", "--network", "none", &blocked, "true"],
    );
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("(reject)"), "{}", stderr(&out));
    // Docker's "Unable to find image" and the pull's first line, then one error line.
    let errors = stderr(&out)
        .lines()
        .filter(|l| l.starts_with("hako:"))
        .count();
    assert_eq!(errors, 1, "{}", stderr(&out));
    let repos = root.ok(&["images", "--format", "{{.Repository}}"]);
    assert!(!repos.contains("closed"), "{repos}");
    let out = t.hako(&root, &["run", "--rm", "--network", "none", &ok, "true"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // `trust show` prints the policy and which scope applies.
    let out = t.hako(&root, &["image", "trust", "show", &blocked]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains(&format!("Policy: {}", t.path("policy.json").display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{blocked}: transports.docker[\"{}\"] applies: reject",
            reg.name("closed/app")
        )),
        "{text}"
    );
}

/// `run` of an image already in the store checks it under the policy in effect: one pulled
/// before the policy asked for a signature is refused until its signature is in the
/// registry, then runs (the verdict is kept, so later runs need no registry); one never
/// pulled from the repository it is named by (tagged or built here) has no signature and is
/// refused; run by its ID, every name it has is checked; an image with no name at all is
/// the policy default's.
#[test]
fn run_checks_a_stored_image_under_the_policy_in_effect() {
    let reg = Registry::start();
    let t = Trust::new();
    let root = Root::with_busybox();
    let (private, public) = t.sigstore_key(&root, "k");
    let name = push_unsigned(&t, &root, &reg, "later/app:1");
    root.ok(&["rmi", &name]);
    // Pulled while the policy accepts anything.
    let out = t.hako(&root, &["pull", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    t.policy_for(&[(&reg.name("later"), Trust::sigstore_req(&public))]);

    let run = |image: &str| t.hako(&root, &["run", "--rm", "--network", "none", image, "true"]);
    let out = run(&name);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("(sigstoreSigned)"), "{err}");
    assert!(err.contains("no sigstore signature exists"), "{err}");
    assert_eq!(root.ok(&["ps", "-aq"]), "", "nothing created");

    let out = t.push_sigstore(&root, &private, "pass", &name);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&name);
    assert!(out.status.success(), "{}", stderr(&out));
    let marks = std::fs::read_dir(root.path().join("cache/trust"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(marks, 1, "the verdict is kept");
    // Another key in the policy: checked again, and refused.
    let (_, other) = t.sigstore_key(&root, "other");
    t.policy_for(&[(&reg.name("later"), Trust::sigstore_req(&other))]);
    let out = run(&name);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(sigstoreSigned)"),
        "{}",
        stderr(&out)
    );
    // The first key again: the kept verdict holds, with the registry gone.
    let (later, local) = (reg.name("later"), reg.name("later/local:1"));
    drop(reg);
    t.policy_for(&[(&later, Trust::sigstore_req(&public))]);
    let out = run(&name);
    assert!(out.status.success(), "{}", stderr(&out));

    // Tagged here under a name the policy covers: never pulled from there, no signature.
    root.ok(&["tag", "busybox", &local]);
    let out = run(&local);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("was not pulled from"), "{err}");
    // By ID, every name counts: busybox is also that tag.
    let id = root.ok(&["images", "-q", "--no-trunc", "busybox"]);
    let out = run(id.trim());
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    // By a name the policy accepts, it runs.
    let out = run("busybox");
    assert!(out.status.success(), "{}", stderr(&out));

    // No name at all: the default decides.
    root.ok(&["create", "--name", "base", "busybox", "true"]);
    let unnamed = root.ok(&["commit", "base"]);
    let unnamed = unnamed.trim().trim_start_matches("sha256:").to_string();
    t.policy(r#"{"default":[{"type":"reject"}]}"#);
    let out = run(&unnamed);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(125), "{err}");
    assert!(err.contains("default[0] (reject)"), "{err}");
    t.policy(r#"{"default":[{"type":"insecureAcceptAnything"}]}"#);
    let out = run(&unnamed);
    assert!(out.status.success(), "{}", stderr(&out));
    root.ok(&["rm", "base"]);
}

#[test]
fn invalid_policy_is_one_line_naming_the_field() {
    let reg = Registry::start();
    let t = Trust::new();
    let root = Root::with_busybox();
    let name = push_unsigned(&t, &root, &reg, "p:1");
    t.policy(
        r#"{"default":[{"type":"signedBy","keyType":"GPGKeys","keyPath":"/k","keyFile":"x"}]}"#,
    );
    let state = fresh_state();
    let out = t.hako_in(&root, state.path(), &["pull", &name]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "{}: default[0].keyFile: unknown field",
            t.path("policy.json").display()
        )),
        "{err}"
    );
    let out = t.hako(&root, &["image", "trust", "show"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("default[0].keyFile"));
}

/// A GNUPGHOME with one signing key, under a short path (gpg-agent's socket lives there).
struct Gpg {
    home: tempfile::TempDir,
    fingerprint: String,
}

impl Gpg {
    fn new() -> Gpg {
        let home = tempfile::Builder::new()
            .prefix("hgpg")
            .tempdir_in("/tmp")
            .unwrap();
        let out = Command::new(need("gpg"))
            .env("GNUPGHOME", home.path())
            .args([
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                "hako test <trust@example.test>",
                "ed25519",
                "sign",
                "never",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "gpg --quick-gen-key: {}",
            stderr(&out)
        );
        let out = Command::new(need("gpg"))
            .env("GNUPGHOME", home.path())
            .args(["--batch", "--with-colons", "--list-secret-keys"])
            .output()
            .unwrap();
        let fingerprint = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("fpr:::::::::"))
            .map(|f| f.trim_end_matches(':').to_string())
            .expect("a fingerprint");
        Gpg { home, fingerprint }
    }

    fn export(&self, to: &Path) {
        let out = Command::new(need("gpg"))
            .env("GNUPGHOME", self.home.path())
            .args(["--batch", "--export", "--output"])
            .arg(to)
            .arg(&self.fingerprint)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        // The agent gpg started for this home only.
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

#[test]
fn gpg_simple_signing_both_ways() {
    let reg = Registry::start();
    let t = Trust::new();
    let signer = Gpg::new();
    let stranger = Gpg::new();
    signer.export(&t.path("signer.gpg"));
    stranger.export(&t.path("stranger.gpg"));
    let signed_by = |key: &str| {
        format!(
            r#"{{"type":"signedBy","keyType":"GPGKeys","keyPath":"{}"}}"#,
            t.path(key).display()
        )
    };

    // Signed by skopeo, verified by hako.
    let root = Root::with_busybox();
    let src = push_unsigned(&t, &root, &reg, "gsrc:1");
    let signed = reg.name("gsigned:1");
    let out = t
        .skopeo()
        .env("GNUPGHOME", signer.home.path())
        .args([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--sign-by",
            &signer.fingerprint,
        ])
        .arg(format!("docker://{src}"))
        .arg(format!("docker://{signed}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo copy --sign-by: {}",
        stderr(&out)
    );
    t.policy_for(&[
        (&reg.name("gsigned"), signed_by("signer.gpg")),
        (&reg.name("gsrc"), signed_by("signer.gpg")),
    ]);
    pull_ok(&t, &root, &signed);
    assert_rejected(&t, &root, &src, "(signedBy)", "no simple signature exists");
    t.policy_for(&[(&reg.name("gsigned"), signed_by("stranger.gpg"))]);
    assert_rejected(
        &t,
        &root,
        &signed,
        "(signedBy)",
        "not made by a key the policy trusts",
    );

    // Signed by hako, verified by skopeo and hako.
    let name = reg.name("ghako:1");
    root.ok(&["tag", "busybox", &name]);
    // hako signs with the user's keyring, as skopeo does.
    let push = root
        .cmd(&["push", "--sign-by", &signer.fingerprint, &name])
        .env("HAKO_POLICY", t.path("policy.json"))
        .env("HAKO_REGISTRIES_D", t.path("registries.d"))
        .env("GNUPGHOME", signer.home.path())
        .output()
        .unwrap();
    assert!(push.status.success(), "{}", stderr(&push));
    t.policy_for(&[(&reg.name("ghako"), signed_by("signer.gpg"))]);
    let dest = tempfile::tempdir().unwrap();
    let out = t
        .skopeo()
        .args(["copy", "--src-tls-verify=false"])
        .arg(format!("docker://{name}"))
        .arg(format!("dir:{}", dest.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo refused hako's GPG signature: {}",
        stderr(&out)
    );
    pull_ok(&t, &root, &name);

    // Podman under the same policy. It has no flag for registries.d: it reads
    // $HOME/.config/containers/registries.d when that exists.
    let podman = Podman::new();
    let home = t.path("home");
    std::fs::create_dir_all(home.join(".config/containers")).unwrap();
    std::os::unix::fs::symlink(
        t.path("registries.d"),
        home.join(".config/containers/registries.d"),
    )
    .unwrap();
    let policy = t.path("policy.json");
    let podman_pull = || {
        podman
            .cmd(&[
                "pull",
                "-q",
                "--tls-verify=false",
                "--signature-policy",
                policy.to_str().unwrap(),
                &name,
            ])
            .env("HOME", &home)
            .output()
            .unwrap()
    };
    let out = podman_pull();
    assert!(
        out.status.success(),
        "podman refused hako's GPG signature: {}",
        stderr(&out)
    );
    podman.ok(&["rmi", "-a"]);

    t.policy_for(&[(&reg.name("ghako"), signed_by("stranger.gpg"))]);
    assert!(
        !podman_pull().status.success(),
        "podman accepted a stranger's key"
    );
    assert_rejected(
        &t,
        &root,
        &name,
        "(signedBy)",
        "not made by a key the policy trusts",
    );
}
