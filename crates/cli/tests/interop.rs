//! Interop with real peers, all started privately by the tests (see common/peers.rs): images
//! move both ways between hako and Docker, Podman and skopeo, and to buildah and umoci,
//! through archives and a local `docker-registry`; hako authenticates to that registry with
//! htpasswd Basic auth and with Bearer tokens from a token server written here.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine;
use common::peers::{need, Docker, Podman, Registry};
use common::Root;

fn out_str(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn check(o: Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    out_str(&o)
}

#[test]
fn hako_save_docker_load_and_docker_save_hako_load() {
    let docker = Docker::start();
    let dir = tempfile::tempdir().unwrap();
    let from_hako = dir.path().join("from-hako.tar");
    let from_docker = dir.path().join("from-docker.tar");
    let r = Root::with_busybox();
    r.ok(&["tag", "busybox", "hako-made:v1"]);
    r.ok(&["save", "-o", from_hako.to_str().unwrap(), "hako-made:v1"]);

    let out = docker.ok(&["load", "-i", from_hako.to_str().unwrap()]);
    assert!(out.contains("Loaded image: hako-made:v1"), "{out}");
    let out = docker.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "hako-made:v1",
        "echo",
        "saved by hako",
    ]);
    assert_eq!(out, "saved by hako\n");

    // An image only Docker has built: its own layer and a CMD from the import.
    let tar = common::images_dir().join("busybox.tar");
    docker.ok(&[
        "import",
        "-c",
        r#"CMD ["echo", "made by docker"]"#,
        tar.to_str().unwrap(),
        "docker-made:v1",
    ]);
    docker.ok(&[
        "save",
        "-o",
        from_docker.to_str().unwrap(),
        "docker-made:v1",
    ]);
    let docker_id = docker.ok(&["image", "inspect", "-f", "{{.Id}}", "docker-made:v1"]);
    let docker_id = docker_id.trim();
    let out = r.ok(&["load", "-i", from_docker.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: docker-made:v1\n");
    assert_eq!(r.ok(&["run", "--rm", "docker-made:v1"]), "made by docker\n");
    let inspect: serde_json::Value =
        serde_json::from_str(&r.ok(&["image", "inspect", "docker-made:v1"])).unwrap();
    assert_eq!(
        inspect[0]["Id"], docker_id,
        "the image ID survives docker save | hako load"
    );
}

#[test]
fn hako_push_then_docker_podman_buildah_skopeo_umoci_read_it() {
    let reg = Registry::start();
    let name = reg.name("pushed:v1");
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.tar");
    {
        let r = Root::with_busybox();
        r.ok(&["tag", "busybox", &name]);
        r.ok(&["push", &name]);
        r.ok(&["save", "-o", saved.to_str().unwrap(), &name]);
    }

    {
        let docker = Docker::start();
        docker.ok(&["pull", &name]);
        let out = docker.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            &name,
            "echo",
            "pulled by docker",
        ]);
        assert_eq!(out, "pulled by docker\n");
        // And the other way: an image Docker built and pushed.
        let tar = common::images_dir().join("busybox.tar");
        docker.ok(&[
            "import",
            "-c",
            r#"CMD ["echo", "pushed by docker"]"#,
            tar.to_str().unwrap(),
            &reg.name("docker-pushed:v1"),
        ]);
        docker.ok(&["push", &reg.name("docker-pushed:v1")]);
    }
    {
        let r = Root::new();
        r.ok(&["pull", "-q", &reg.name("docker-pushed:v1")]);
        assert_eq!(
            r.ok(&["run", "--rm", &reg.name("docker-pushed:v1")]),
            "pushed by docker\n"
        );
    }

    let podman = Podman::new();
    podman.ok(&["pull", "--tls-verify=false", &name]);
    let out = podman.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &name,
        "echo",
        "pulled by podman",
    ]);
    assert_eq!(out, "pulled by podman\n");
    let podman_name = reg.name("podman-pushed:v1");
    podman.ok(&["tag", &name, &podman_name]);
    podman.ok(&["push", "--tls-verify=false", &podman_name]);
    {
        let r = Root::new();
        r.ok(&["pull", "-q", &podman_name]);
        assert_eq!(
            r.ok(&["run", "--rm", &podman_name, "echo", "pushed by podman"]),
            "pushed by podman\n"
        );
    }

    // buildah shares podman's private storage; it pulls the image again by itself.
    let d = podman.dir.path();
    let buildah = |args: &[&str]| {
        Command::new(need("buildah"))
            .env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let name_b = reg.name("pushed:v1");
    check(
        buildah(&["rmi", "-f", &name_b]),
        "buildah rmi of podman's copy",
    );
    check(
        buildah(&["pull", "--tls-verify=false", &name_b]),
        "buildah pull",
    );
    let cfg = check(
        buildah(&["inspect", "--type", "image", &name_b]),
        "buildah inspect",
    );
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["OCIv1"]["os"], "linux", "{cfg}");
    drop(podman);

    // skopeo reads the pushed image into an OCI archive; hako loads that and runs it.
    let oci = dir.path().join("skopeo.tar");
    check(
        Command::new(need("skopeo"))
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{name}"))
            .arg(format!("oci-archive:{}:skopeo-copied:v2", oci.display()))
            .output()
            .unwrap(),
        "skopeo copy",
    );
    {
        let r = Root::new();
        assert_eq!(
            r.ok(&["load", "-i", oci.to_str().unwrap()]),
            "Loaded image: skopeo-copied:v2\n"
        );
        assert_eq!(
            r.ok(&["run", "--rm", "skopeo-copied:v2", "echo", "via skopeo"]),
            "via skopeo\n"
        );
    }

    // umoci unpacks the OCI layout inside the archive `hako save` wrote.
    let layout = dir.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    check(
        Command::new("tar")
            .arg("-xf")
            .arg(&saved)
            .arg("-C")
            .arg(&layout)
            .output()
            .unwrap(),
        "untar",
    );
    let bundle = dir.path().join("bundle");
    check(
        Command::new(need("umoci"))
            .args(["unpack", "--image"])
            .arg(format!("{}:v1", layout.display()))
            .arg(&bundle)
            .output()
            .unwrap(),
        "umoci unpack",
    );
    assert!(bundle.join("rootfs/bin/busybox").exists());
    assert!(bundle.join("config.json").is_file());
}

/// Runs hako with its Docker client config in `config`.
fn with_config(r: &Root, config: &Path, args: &[&str]) -> (i32, String, String) {
    let out = r.cmd(args).env("DOCKER_CONFIG", config).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        out_str(&out),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok_with_config(reg: &Registry, r: &Root, config: &Path, args: &[&str]) -> String {
    let (code, out, err) = with_config(r, config, args);
    assert_eq!(
        code,
        0,
        "hako {args:?}: {err}\nregistry log:\n{}",
        reg.log()
    );
    out
}

/// Login, push, then pull into a fresh root and run; wrong and missing credentials fail with
/// one clear line.
fn exercise_auth(reg: &Registry, user: &str, pass: &str) {
    let config = tempfile::tempdir().unwrap();
    let server = format!("127.0.0.1:{}", reg.port);
    let name = reg.name("private/box:v1");
    {
        let r = Root::with_busybox();
        r.ok(&["tag", "busybox", &name]);
        let (code, _, err) = with_config(&r, config.path(), &["push", &name]);
        assert_eq!(code, 1, "push without login: {err}");
        assert!(err.contains("unauthorized"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");

        let (code, out, err) = with_config(
            &r,
            config.path(),
            &["login", "-u", user, "-p", "wrong", &server],
        );
        assert_eq!(code, 1, "login with a wrong password: {out}{err}");
        let last = err.trim().lines().last().unwrap_or_default().to_string();
        assert!(
            last.contains("unauthorized") && last.contains(&server),
            "{err}"
        );
        assert!(!config.path().join("config.json").exists());

        let out = ok_with_config(
            reg,
            &r,
            config.path(),
            &["login", "-u", user, "-p", pass, &server],
        );
        assert_eq!(out, "Login Succeeded\n");
        ok_with_config(reg, &r, config.path(), &["push", &name]);
    }
    let r = Root::new();
    let (code, _, err) = with_config(&r, tempfile::tempdir().unwrap().path(), &["pull", &name]);
    assert_eq!(code, 1, "pull without credentials: {err}");
    // Basic registries refuse outright; token servers hand out an anonymous token with no
    // access, which the registry then refuses as Docker reports it.
    assert!(
        err.contains("no basic auth credentials") || err.contains("may require 'hako login'"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    ok_with_config(reg, &r, config.path(), &["pull", "-q", &name]);
    assert_eq!(
        ok_with_config(
            reg,
            &r,
            config.path(),
            &["run", "--rm", &name, "echo", "authed"]
        ),
        "authed\n"
    );
    assert_eq!(
        ok_with_config(reg, &r, config.path(), &["logout", &server]),
        format!("Removing login credentials for {server}\n")
    );
}

#[test]
fn htpasswd_basic_auth_login_push_pull() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let out = check(
        Command::new(need("htpasswd"))
            .args(["-Bbn", "hako", "s3cret"])
            .output()
            .unwrap(),
        "htpasswd",
    );
    std::fs::write(&htpasswd, out).unwrap();
    let reg = Registry::start_with(&format!(
        "auth:\n  htpasswd:\n    realm: hako-test\n    path: {}\n",
        htpasswd.display()
    ));
    exercise_auth(&reg, "hako", "s3cret");

    // Docker logs in to the same registry and runs what hako pushed there.
    let docker = Docker::start();
    let server = format!("127.0.0.1:{}", reg.port);
    let mut login = docker
        .cmd(&["login", "-u", "hako", "--password-stdin", &server])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    login.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    check(login.wait_with_output().unwrap(), "docker login");
    let name = reg.name("private/box:v1");
    docker.ok(&["pull", &name]);
    let out = docker.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &name,
        "echo",
        "docker behind basic auth",
    ]);
    assert_eq!(out, "docker behind basic auth\n");
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A token server as the distribution token spec describes: it checks Basic credentials and
/// grants the requested repository scope in an RS256 JWT whose `x5c` header carries the
/// self-signed certificate the registry trusts. Anonymous requests get a token with no access.
struct TokenServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TokenServer {
    fn start(dir: &Path, user: &str, pass: &str) -> TokenServer {
        let key = dir.join("key.pem");
        let cert = dir.join("cert.pem");
        check(
            Command::new(need("openssl"))
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", "/CN=hako-test-token-issuer", "-keyout"])
                .arg(&key)
                .arg("-out")
                .arg(&cert)
                .output()
                .unwrap(),
            "openssl req",
        );
        let der = check_bytes(
            Command::new(need("openssl"))
                .args(["x509", "-outform", "DER", "-in"])
                .arg(&cert)
                .output()
                .unwrap(),
        );
        let x5c = base64::engine::general_purpose::STANDARD.encode(der);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        let (reqs, stop2, key2) = (requests.clone(), stop.clone(), key.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let (conn, _) = match listener.accept() {
                    Ok(c) => c,
                    Err(_) => {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        continue;
                    }
                };
                conn.set_nonblocking(false).unwrap();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut line = String::new();
                let _ = reader.read_line(&mut line);
                let target = line.split(' ').nth(1).unwrap_or("").to_string();
                let mut auth = None;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("authorization") {
                            auth = Some(v.trim().to_string());
                        }
                    }
                }
                reqs.lock().unwrap().push(percent_decode(&target));
                let (status, body) = match auth.as_deref() {
                    Some(a) if a != want => (
                        "401 Unauthorized",
                        r#"{"details":"bad credentials"}"#.to_string(),
                    ),
                    a => {
                        let query = target.split_once('?').map(|q| q.1).unwrap_or("");
                        let param = |k: &str| {
                            query
                                .split('&')
                                .filter_map(|kv| kv.split_once('='))
                                .filter(|(n, _)| *n == k)
                                .map(|(_, v)| percent_decode(v))
                                .collect::<Vec<_>>()
                        };
                        let access: Vec<serde_json::Value> = if a.is_some() {
                            param("scope")
                                .iter()
                                .filter_map(|s| {
                                    let mut p = s.splitn(3, ':');
                                    let (t, n, acts) = (p.next()?, p.next()?, p.next()?);
                                    Some(serde_json::json!({
                                        "type": t, "name": n,
                                        "actions": acts.split(',').collect::<Vec<_>>(),
                                    }))
                                })
                                .collect()
                        } else {
                            Vec::new()
                        };
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs();
                        let header =
                            serde_json::json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
                        let claims = serde_json::json!({
                            "iss": "hako-test-issuer",
                            "sub": if a.is_some() { "hako" } else { "" },
                            "aud": param("service").first().cloned().unwrap_or_default(),
                            "iat": now, "nbf": now - 60, "exp": now + 600,
                            "jti": format!("hako-{now}-{}", reqs.lock().unwrap().len()),
                            "access": access,
                        });
                        let input = format!(
                            "{}.{}",
                            b64url(header.to_string().as_bytes()),
                            b64url(claims.to_string().as_bytes())
                        );
                        let mut sign = Command::new("openssl")
                            .args(["dgst", "-sha256", "-sign"])
                            .arg(&key2)
                            .stdin(Stdio::piped())
                            .stdout(Stdio::piped())
                            .spawn()
                            .unwrap();
                        sign.stdin
                            .take()
                            .unwrap()
                            .write_all(input.as_bytes())
                            .unwrap();
                        let sig = sign.wait_with_output().unwrap().stdout;
                        let token = format!("{input}.{}", b64url(&sig));
                        (
                            "200 OK",
                            serde_json::json!({"token": token, "expires_in": 600}).to_string(),
                        )
                    }
                };
                let mut conn = conn;
                let _ = write!(
                    conn,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        TokenServer {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn check_bytes(o: Output) -> Vec<u8> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

#[test]
fn bearer_token_flow_follows_the_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = TokenServer::start(dir.path(), "hako", "t0ken-pass");
    let reg = Registry::start_with(&format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: hako-test-registry\n    issuer: hako-test-issuer\n    rootcertbundle: {}\n",
        tokens.port,
        dir.path().join("cert.pem").display()
    ));
    exercise_auth(&reg, "hako", "t0ken-pass");
    let seen = tokens.requests.lock().unwrap().clone();
    assert!(
        seen.iter().any(|r| r.starts_with("/token?")
            && r.contains("service=hako-test-registry")
            && r.contains("scope=repository:private/box:")
            && r.contains("push")),
        "hako asked the realm for the challenge's service and a push scope: {seen:?}"
    );
}
