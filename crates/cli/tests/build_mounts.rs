//! `hako build` with `RUN --mount=type=ssh` (`--ssh`) and secrets given as environment
//! variables (`--secret id=X,env=VAR`, `RUN --mount=type=secret,env=NAME`).

mod common;

use common::build::{build_env, ctx, write, Agent, ASK_AGENT};

use common::{wait_for, Root};
use std::path::Path;
use std::process::{Command, Stdio};

fn tmp_is_empty(r: &Root) -> bool {
    std::fs::read_dir(r.path().join("tmp"))
        .map(|d| d.count() == 0)
        .unwrap_or(true)
}

fn trixie_root() -> Root {
    let r = Root::new();
    let out = r.hako(&[
        "import",
        common::images_dir().join("trixie.tar").to_str().unwrap(),
        "trixie",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    r
}

/// `--ssh default` forwards $SSH_AUTH_SOCK's agent: the step talks to it through
/// /run/buildkit/ssh_agent.0, a socket with the mount's mode and owner (so a USER that is not
/// root can use it with uid=), SSH_AUTH_SOCK names it, and nothing of it reaches the layer.
/// `--ssh ID=SOCKET` names another agent; a required agent that is not given fails on its
/// line; a killed build leaves no relay process behind.
#[test]
fn ssh_agent_forwarding() {
    let Some(agent) = Agent::start("hako-e2e-key") else {
        eprintln!("SKIPPED ssh_agent_forwarding: ssh-agent, ssh-keygen or ssh-add is missing on this host (Debian openssh-client)");
        return;
    };
    let sock = agent.socket();
    let sock = sock.to_str().unwrap();
    let r = trixie_root();
    let d = ctx();
    write(
        d.path(),
        "Dockerfile",
        &format!(
            "FROM trixie\n\
             RUN useradd -u 1234 app\n\
             USER app\n\
             RUN --mount=type=ssh,uid=1234 stat -c '%a %u %F' $SSH_AUTH_SOCK && echo $SSH_AUTH_SOCK && {ASK_AGENT}\n\
             RUN --mount=type=ssh,id=other,target=/tmp/a.sock,uid=1234 --mount=type=ssh,uid=1234 echo $SSH_AUTH_SOCK && {ASK_AGENT}\n\
             USER root\n\
             RUN test ! -e /run/buildkit && test ! -e /tmp/a.sock && echo clean\n"
        ),
    );
    let other = format!("other={sock}");
    let (code, out, err) = build_env(
        &r,
        d.path(),
        &[("SSH_AUTH_SOCK", sock)],
        &["-t", "ssh:1", "--ssh", "default", "--ssh", &other],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(
            "600 1234 socket\n/run/buildkit/ssh_agent.0\nagent answer 12, 1 key(s), comment ok\n"
        ),
        "{out}"
    );
    // The first ssh mount's target is SSH_AUTH_SOCK; the default target counts ssh mounts.
    assert!(
        out.contains("/tmp/a.sock\nagent answer 12, 1 key(s), comment ok\n"),
        "{out}"
    );
    assert!(out.contains("\nclean\n"), "{out}");
    assert!(tmp_is_empty(&r), "the relays' sockets are gone");

    // Flags that cannot work are refused before anything runs.
    let (code, _, err) = build_env(&r, d.path(), &[], &["--ssh", "default"]);
    assert_eq!(code, 1);
    assert!(err.contains("SSH_AUTH_SOCK is not set"), "{err}");
    let key = agent.key();
    let (code, _, err) = build_env(
        &r,
        d.path(),
        &[],
        &["--ssh", &format!("default={}", key.display())],
    );
    assert_eq!(code, 1);
    assert!(err.contains("is not an agent socket"), "{err}");

    // A required agent that is not given.
    write(
        d.path(),
        "Dockerfile",
        "FROM trixie\nRUN --mount=type=ssh,id=deploy,required=true true\n",
    );
    let (code, out, err) = build_env(&r, d.path(), &[], &["--ssh", &other]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("line 2: RUN --mount=type=ssh: no ssh agent with id deploy (pass --ssh deploy[=SOCKET])"),
        "{err}"
    );

    // kill -9 of the build while its step runs: the relay dies with it.
    write(
        d.path(),
        "Dockerfile",
        "FROM trixie\nRUN --mount=type=ssh sleep 60\n",
    );
    let mut child = r
        .cmd(&[
            "build",
            "--ssh",
            &format!("default={sock}"),
            d.path().to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(d.path().join("build.err")).unwrap())
        .spawn()
        .unwrap();
    let build_pid = child.id() as i32;
    let relays = || -> Vec<i32> {
        // The relay is a fork of the build: same command line, the build (or init, once the
        // build is gone) as parent.
        let mine = std::fs::read(format!("/proc/{build_pid}/cmdline")).unwrap_or_default();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .filter(|p| *p != build_pid)
            .filter(|p| {
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                cmd.windows(d.path().as_os_str().len())
                    .any(|w| w == d.path().as_os_str().as_encoded_bytes())
                    && (mine.is_empty() || cmd == mine)
            })
            .collect()
    };
    assert!(
        wait_for(60, || r.ok(&["ps", "-q"]).lines().count() == 1),
        "the step runs: ps -a {}; build stderr {}",
        r.ok(&["ps", "-a"]),
        std::fs::read_to_string(d.path().join("build.err")).unwrap_or_default()
    );
    let before = relays();
    assert_eq!(before.len(), 1, "one relay while the step runs: {before:?}");
    let _ = Command::new("kill")
        .args(["-9", &build_pid.to_string()])
        .status();
    let _ = child.wait();
    assert!(
        wait_for(10, || before.iter().all(|p| !Path::new(&format!(
            "/proc/{p}"
        ))
        .exists()
            || std::fs::read_to_string(format!("/proc/{p}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true))),
        "the relay died with the build"
    );
    // The next command removes the killed build's step container.
    assert!(
        wait_for(30, || r.ok(&["ps", "-aq"]).is_empty()),
        "{}",
        r.ok(&["ps", "-a"])
    );
}

/// `--secret id=tok,env=VAR` takes the secret from hako's environment; `RUN
/// --mount=type=secret,env=NAME` gives it to the step as a variable (no file unless a target
/// is given), a file gets the mount's mode and owner, and the value reaches neither the
/// image's config nor its history, nor a container kept with `--rm=false`.
#[test]
fn secrets_from_and_to_the_environment() {
    let r = Root::with_busybox();
    let d = ctx();
    let value = "v4lue-of-the-e2e-secret";
    // The steps compare with a copied file: the value is never in the Dockerfile.
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\n\
         COPY expected /expected\n\
         RUN --mount=type=secret,id=tok,env=TOKEN test \"$TOKEN\" = \"$(cat /expected)\" && test ! -e /run/secrets/tok && echo env-ok\n\
         RUN --mount=type=secret,id=tok,target=/t,mode=0440,uid=7,gid=5 stat -c '%a %u:%g' /t && test \"$(cat /t)\" = \"$(cat /expected)\" && echo file-ok\n\
         RUN --mount=type=secret,id=tok,env=T2,target=/both test \"$T2\" = \"$(cat /both)\" && echo both-ok\n\
         RUN --mount=type=secret,id=file,env=FROM_FILE test \"$FROM_FILE\" = from-a-file && echo file-env-ok\n",
    );
    write(d.path(), "expected", value);
    let secret_file = d.path().join("file.txt");
    std::fs::write(&secret_file, "from-a-file").unwrap();
    let file_arg = format!("id=file,src={}", secret_file.display());
    let (code, out, err) = build_env(
        &r,
        d.path(),
        &[("MY_TOKEN", value)],
        &[
            "-t",
            "secrets:1",
            "--rm=false",
            "--secret",
            "id=tok,env=MY_TOKEN",
            "--secret",
            &file_arg,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    for line in ["env-ok", "440 7:5\nfile-ok", "both-ok", "file-env-ok"] {
        assert!(out.contains(&format!("\n{line}\n")), "{line}: {out}");
    }
    assert!(!out.contains(value) && !err.contains(value), "{out}{err}");
    let inspect = r.ok(&["image", "inspect", "secrets:1"]);
    let history = r.ok(&["history", "--no-trunc", "secrets:1"]);
    assert!(!inspect.contains(value) && !history.contains(value));
    // --rm=false keeps step containers, but not those whose config held the secret: only the
    // step with a secret file is kept, and its config does not hold the secret either.
    let kept = r.ok(&["ps", "-aq"]);
    assert_eq!(kept.lines().count(), 1, "{}", r.ok(&["ps", "-a"]));
    let id = kept.trim();
    assert!(!r.ok(&["inspect", id]).contains(value));
    r.ok(&["rm", id]);
    assert!(tmp_is_empty(&r), "the secret files are gone");

    // A variable that is not set is named; so is a required secret that is not given.
    let (code, _, err) = build_env(&r, d.path(), &[], &["--secret", "id=tok,env=MY_TOKEN"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("the environment variable MY_TOKEN is not set"),
        "{err}"
    );
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=secret,id=tok,env=TOKEN,required=true true\n",
    );
    let (code, _, err) = build_env(&r, d.path(), &[], &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("line 2: RUN --mount=type=secret: secret tok not found"),
        "{err}"
    );
    // Not required: the step runs without the variable.
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nRUN --mount=type=secret,id=tok,env=TOKEN test -z \"$TOKEN\" && echo unset-ok\n",
    );
    let (code, out, err) = build_env(&r, d.path(), &[], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\nunset-ok\n"), "{out}");
}

/// The entries of the last layer of `image`, from `hako save`.
fn last_layer_entries(r: &Root, image: &str) -> Vec<String> {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("img.tar");
    r.ok(&["save", "-o", file.to_str().unwrap(), image]);
    let read = |name: &str| -> Vec<u8> {
        let mut a = tar::Archive::new(std::fs::File::open(&file).unwrap());
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_str() == Some(name) {
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                return v;
            }
        }
        panic!("{name} is not in the archive");
    };
    let manifest: serde_json::Value = serde_json::from_slice(&read("manifest.json")).unwrap();
    let last = manifest[0]["Layers"].as_array().unwrap().last().unwrap();
    let layer = read(last.as_str().unwrap());
    let mut a = tar::Archive::new(&layer[..]);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// A RUN layer holds what the step changed, not the `/etc` that overlayfs copied up for the
/// mount points of /etc/hosts, hostname and resolv.conf; a step that writes to /etc keeps it.
#[test]
fn run_layers_hold_only_what_the_step_changed() {
    let r = Root::with_busybox();
    let d = ctx();
    write(d.path(), "Dockerfile", "FROM busybox\nRUN echo x > /x\n");
    let (code, out, err) = build_env(&r, d.path(), &[], &["-t", "layer:1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(last_layer_entries(&r, "layer:1"), ["x"]);
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nRUN echo x > /etc/x\n",
    );
    let (code, out, err) = build_env(&r, d.path(), &[], &["-t", "layer:2"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(last_layer_entries(&r, "layer:2"), ["etc", "etc/x"]);
}
