//! Reproducible builds (`SOURCE_DATE_EPOCH`): every positive Dockerfile case of the build tests
//! built in two state roots, seconds apart, from freshly written contexts, gives the same image
//! ID; one build is checked against digests written here; `hako save` is byte-identical; the
//! epoch's three spellings and its bad values.
//!
//! Left out of the comparison, each because its result is not a function of its inputs on any
//! builder: `multi_stage_gcc_with_apt` (apt installs whatever the mirror serves that day and
//! logs the time), `bounded_cache_lru_df_and_prune` (RUN writes /dev/urandom),
//! `parallel_stages_are_bounded` (RUN records how many stages happened to run at once).

mod common;

use common::build::{ctx, git, write, GitDaemon};
use common::peers::Registry;
use common::Root;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const EPOCH: &str = "1700000000";

/// How a case passes the epoch: the three spellings `hako build` takes.
#[derive(Clone, Copy)]
enum How {
    Flag,
    Env,
    BuildArg,
}

/// What the build reads on stdin.
#[derive(Clone, Copy, PartialEq)]
enum Input {
    /// A context directory.
    Dir,
    /// The Dockerfile (`hako build -`), no context.
    DockerfileOnStdin,
    /// The context as a gzip tar (`hako build -f F -`).
    TarOnStdin,
}

struct Case {
    name: &'static str,
    /// Context files: path, content.
    files: Vec<(&'static str, String)>,
    /// Arguments before the context; `{ctx}` is the context directory.
    args: Vec<&'static str>,
    input: Input,
    how: How,
    /// A `hako` command run in the root before the build.
    before: Option<&'static [&'static str]>,
}

fn case(name: &'static str, files: &[(&'static str, &str)], args: &[&'static str]) -> Case {
    Case {
        name,
        files: files.iter().map(|(p, t)| (*p, t.to_string())).collect(),
        args: args.to_vec(),
        input: Input::Dir,
        how: How::Flag,
        before: None,
    }
}

/// Builds `c` in `r` from a context written now, with the epoch unless `epoch` is None.
/// Returns the image ID.
fn build_case(r: &Root, c: &Case, epoch: Option<&str>) -> String {
    if let Some(cmd) = c.before {
        r.ok(cmd);
    }
    let d = ctx();
    for (p, text) in &c.files {
        write(d.path(), p, text);
    }
    let ctx_path = d.path().to_str().unwrap().to_string();
    let iid = d.path().join(".iid");
    let mut args: Vec<String> = vec!["build".into(), "--iidfile".into(), iid_arg(&iid)];
    let mut env: Vec<(&str, &str)> = Vec::new();
    if let Some(e) = epoch {
        match c.how {
            How::Flag => args.extend(["--source-date-epoch".into(), e.to_string()]),
            How::BuildArg => {
                args.extend(["--build-arg".into(), format!("SOURCE_DATE_EPOCH={e}")]);
            }
            How::Env => env.push(("SOURCE_DATE_EPOCH", e)),
        }
    }
    args.extend(c.args.iter().map(|a| a.replace("{ctx}", &ctx_path)));
    let stdin: Option<Vec<u8>> = match c.input {
        Input::Dir => {
            args.push(ctx_path.clone());
            None
        }
        Input::DockerfileOnStdin => {
            args.push("-".into());
            Some(std::fs::read(d.path().join("Dockerfile")).unwrap())
        }
        Input::TarOnStdin => {
            args.push("-".into());
            let tar = Command::new("tar")
                .args(["-C", &ctx_path, "--exclude=./.iid", "-czf", "-", "."])
                .output()
                .unwrap();
            assert!(tar.status.success());
            Some(tar.stdout)
        }
    };
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut cmd = r.cmd(&a);
    cmd.env_remove("SOURCE_DATE_EPOCH")
        .env_remove("SSH_AUTH_SOCK");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(&input).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "case {}: {}{}",
        c.name,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::read_to_string(&iid).unwrap()
}

fn iid_arg(p: &Path) -> String {
    p.to_str().unwrap().to_string()
}

/// The image's config and history as `image inspect` shows them, for a failure's message.
fn describe(r: &Root, id: &str) -> String {
    let inspect = r.ok(&["image", "inspect", id]);
    let history = r.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedAt}} {{.CreatedBy}} {{.Size}}",
        id,
    ]);
    format!("{inspect}\n{history}")
}

/// The same base image for every root: `hako import` makes a new image each time (its
/// `created` is the import's, as in Docker), so the test image is imported once and saved,
/// and each root loads that archive.
struct Base {
    _dir: tempfile::TempDir,
    archive: std::path::PathBuf,
}

impl Base {
    fn busybox() -> Base {
        Base::of("busybox")
    }

    /// The test image `NAME.tar`, imported as NAME.
    fn of(name: &str) -> Base {
        let dir = ctx();
        let archive = dir.path().join(format!("{name}-saved.tar"));
        let r = Root::new();
        let tar = common::images_dir().join(format!("{name}.tar"));
        r.ok(&["import", tar.to_str().unwrap(), name]);
        r.ok(&["save", "-o", archive.to_str().unwrap(), name]);
        Base { _dir: dir, archive }
    }

    fn root(&self) -> Root {
        let r = Root::new();
        r.ok(&["load", "-q", "-i", self.archive.to_str().unwrap()]);
        r
    }
}

/// Builds every case in a fresh root with `base`, in order; returns (id, description).
fn build_all(base: &Base, cases: &[Case]) -> Vec<(String, String)> {
    let r = base.root();
    let out = cases
        .iter()
        .map(|c| {
            let id = build_case(&r, c, Some(EPOCH));
            (id.clone(), describe(&r, &id))
        })
        .collect();
    out
}

/// Builds the cases in two roots with busybox, seconds apart, and compares the IDs.
fn same_in_two_roots(cases: &[Case]) {
    same_in_two_roots_on(&Base::busybox(), cases)
}

fn same_in_two_roots_on(base: &Base, cases: &[Case]) {
    let first = build_all(base, cases);
    // Whole seconds apart at least, whatever the builds took: the clock is in the image
    // without the epoch.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = build_all(base, cases);
    let mut differ = Vec::new();
    for ((c, a), b) in cases.iter().zip(&first).zip(&second) {
        if a.0 != b.0 {
            differ.push(format!(
                "case {}: {} then {}\n--- first\n{}\n--- second\n{}",
                c.name, a.0, b.0, a.1, b.1
            ));
        }
    }
    assert!(differ.is_empty(), "{}", differ.join("\n\n"));
}

fn nest(n: usize) -> String {
    format!("{}v{}", "${X:-".repeat(n), "}".repeat(n))
}

/// The positive cases of tests/build.rs.
#[test]
fn build_cases_are_reproducible() {
    let multi = "FROM busybox AS builder\nWORKDIR /build\nCOPY main.sh /build\nRUN cp main.sh newfeature && chmod 755 newfeature\n\nFROM busybox AS unused\nRUN echo never\n\nFROM busybox\nWORKDIR /app\nCOPY --from=builder /build/newfeature .\nCMD [\"/app/newfeature\"]\n";
    let port = 20000 + (std::process::id() + 7919) % 20000;
    let parallel = format!(
        "FROM busybox AS server\n\
         RUN --network=host timeout 60 nc -l -p {port}\n\
         FROM busybox AS unused\n\
         RUN echo never-built\n\
         FROM busybox AS client\n\
         RUN --network=host sh -c 'for i in $(seq 600); do nc 127.0.0.1 {port} </dev/null && exit 0; sleep 0.1; done; exit 1'\n\
         FROM busybox\n\
         COPY --from=server /etc/passwd /server\n\
         COPY --from=client /etc/group /client\n"
    );
    let nested = format!("FROM busybox\nENV A={}\n", nest(64));
    let stars = format!(
        "{}\n!keep\n!Dockerfile\n{}b\n",
        "*".repeat(50_000),
        "*a".repeat(30)
    );
    let long_name: &'static str = "a".repeat(200).leak();
    let mut stdin_df = case(
        "dockerfile_on_stdin",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo quiet-output\nENV A=1\n",
        )],
        &["-q"],
    );
    stdin_df.input = Input::DockerfileOnStdin;
    let mut heredocs = case(
        "dockerignore_heredocs_args_and_metadata",
        &[
            (".dockerignore", "secret.txt\n*.log\n!keep.log\n"),
            ("secret.txt", "s"),
            ("a.log", "a"),
            ("keep.log", "k"),
            ("dir/sub/file", "f"),
            (
                "Dockerfile",
                "# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM ${BASE}\nARG WHO=world\nENV GREETING=\"hello ${WHO}\" \\\n    OTHER=${UNSET:-dflt}\nCOPY . /ctx/\nCOPY --chmod=755 <<EOF /script.sh\n#!/bin/sh\necho $GREETING\nEOF\nRUN <<EOT\necho heredoc-run > /hd\necho $WHO >> /hd\nEOT\nLABEL a=b\nEXPOSE 8080\nUSER 1000:1000\ncmd [\"/script.sh\"]\n",
            ),
        ],
        &["-t", "misc", "--build-arg", "WHO=you", "--label", "x=y"],
    );
    heredocs.how = How::Env;
    let mut onbuild_parent = case(
        "onbuild_parent",
        &[(
            "Dockerfile",
            "FROM busybox\nONBUILD COPY marker /marker\nONBUILD RUN echo triggered >> /marker\n",
        )],
        &["-t", "base:onbuild"],
    );
    onbuild_parent.how = How::BuildArg;
    let cases = vec![
        case(
            "seed_dockerfile_and_cache",
            &[
                (
                    "Dockerfile",
                    "FROM busybox\nRUN echo built > /built.txt\nWORKDIR /root\nCOPY test01.txt .\nCMD cat test01.txt\n",
                ),
                ("test01.txt", "hello\n"),
            ],
            &["-t", "seed:1"],
        ),
        case(
            "multi_stage",
            &[("main.sh", "#!/bin/sh\necho succeed from $0\n"), ("Dockerfile", multi)],
            &["-t", "newfeature"],
        ),
        case(
            "multi_stage --target",
            &[("main.sh", "#!/bin/sh\necho succeed from $0\n"), ("Dockerfile", multi)],
            &["--target", "builder", "-t", "b"],
        ),
        heredocs,
        onbuild_parent,
        case(
            "onbuild_child",
            &[
                ("marker", "from-child\n"),
                ("Dockerfile", "FROM base:onbuild\nCMD [\"cat\", \"/marker\"]\n"),
            ],
            &["-t", "child"],
        ),
        case("hostile_nesting", &[("Dockerfile", &nested)], &["-t", "nest:1"]),
        case(
            "hostile_patterns",
            &[
                (".dockerignore", &stars),
                ("keep", "kept\n"),
                (long_name, ""),
                ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
            ],
            &["-t", "ign:1"],
        ),
        stdin_df,
        case(
            "prune_keeps_the_cache_of_tagged_images",
            &[(
                "Dockerfile",
                "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\nCMD [\"sh\"]\n",
            )],
            &["-t", "pc:1"],
        ),
        case(
            "independent_stages_run_in_parallel",
            &[("Dockerfile", &parallel)],
            &["-t", "par:1"],
        ),
        case(
            "run_mounts_and_network",
            &[
                ("data/f", "one\n"),
                ("tok.txt", "s3cret"),
                (
                    "Dockerfile",
                    "FROM busybox\n\
                     RUN --mount=type=cache,target=/cache sh -c 'echo run >> /cache/log; wc -l < /cache/log > /count'\n\
                     RUN --mount=type=bind,source=data,target=/data cat /data/f > /copied\n\
                     RUN --mount=type=secret,id=tok,required=true sh -c 'test \"$(cat /run/secrets/tok)\" = s3cret && echo ok > /secret-ok'\n\
                     RUN --mount=type=tmpfs,target=/scratch sh -c 'echo x > /scratch/f && grep -q \" /scratch tmpfs\" /proc/mounts'\n\
                     RUN --network=none sh -c 'test $(grep -c : /proc/net/dev) = 1'\n",
                ),
            ],
            &["-t", "mounts:1", "--secret", "id=tok,src={ctx}/tok.txt"],
        ),
        case(
            "bind_mounts_from_stages",
            &[(
                "Dockerfile",
                "FROM busybox AS tools\n\
                 ARG V=1\n\
                 RUN mkdir -p /opt/t && echo tool > /opt/t/bin.txt && echo gone > /opt/t/del && ln -s ../../../../../etc /opt/esc\n\
                 RUN rm /opt/t/del && echo $V > /opt/t/v\n\
                 FROM busybox AS unused\n\
                 RUN echo never\n\
                 FROM busybox\n\
                 RUN --mount=type=bind,from=tools,source=/opt/t,target=/t sh -c 'cat /t/bin.txt /t/v > /got; test ! -e /t/del || echo del >> /got; if touch /t/x 2>/dev/null; then echo writable; else echo ro; fi > /ro'\n\
                 RUN --mount=from=tools,source=opt/t,target=/w,rw sh -c 'echo scribble > /w/bin.txt && touch /w/new && cat /w/bin.txt > /rw'\n\
                 RUN --mount=from=tools,source=/opt/t,target=/t2 sh -c 'cat /t2/bin.txt > /after; test -e /t2/new || echo clean >> /after'\n\
                 RUN --mount=type=bind,from=tools,source=/opt/t/bin.txt,target=/f,rw sh -c 'echo changed > /f && cat /f > /frw'\n\
                 RUN --mount=from=busybox,source=/bin/busybox,target=/bb cmp /bb /bin/busybox\n\
                 RUN --mount=from=tools,source=/opt/esc,target=/e sh -c 'test -e /e/passwd && test ! -e /e/debian_version && echo confined > /esc'\n\
                 RUN --mount=type=cache,target=/n/c --mount=from=tools,source=/opt/t,target=/n,rw sh -c 'test -d /n/c && test \"$(stat -c %d /n/c)\" != \"$(stat -c %d /n)\" && test -e /n/bin.txt && echo nested > /nested'\n",
            )],
            &["-t", "bindfrom:1"],
        ),
        case(
            "context_bind_mounts_follow_dockerignore",
            &[
                (".dockerignore", "secret.txt\nsrc/private\nlogs\n!logs/keep.log\n*.tmp\n"),
                ("secret.txt", "x\n"),
                ("a.tmp", "x\n"),
                ("src/private/key", "x\n"),
                ("src/notes.txt", "x\n"),
                ("logs/keep.log", "x\n"),
                ("logs/a.log", "x\n"),
                ("logs/old/x", "x\n"),
                ("src/main.c", "int main;\n"),
                (
                    "Dockerfile",
                    "FROM busybox\n\
                     RUN --mount=type=bind,target=/ctx sh -c 'cd /ctx && find . | sort > /listing'\n\
                     RUN --mount=type=bind,source=src,target=/src sh -c 'ls -A /src > /src-list'\n\
                     RUN --mount=type=bind,target=/ctx,rw sh -c 'echo new > /ctx/src/main.c && rm /ctx/Dockerfile && touch /ctx/secret.txt && cat /ctx/src/main.c > /rwctx'\n\
                     RUN --mount=type=bind,target=/ctx sh -c 'cat /ctx/src/main.c > /after && ls -A /ctx > /after-list'\n",
                ),
            ],
            &["-t", "ctxbind:1"],
        ),
    ];
    same_in_two_roots(&cases);
}

/// Serves `body` at /dl/file.txt on a loopback port, from a thread of the test.
fn serve(body: &'static str) -> u16 {
    use std::io::{BufRead, BufReader};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let mut s = s;
            let resp = if first.starts_with("GET /dl/file.txt ") {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            };
            let _ = s.write_all(resp.as_bytes());
        }
    });
    port
}

/// The positive cases of tests/build_mounts.rs, tests/build_sources.rs (the registry's in
/// [`push_gives_one_manifest_digest`]) and tests/build_git.rs (but `--keep-git-dir`: git's
/// index and reflog in `.git` hold the checkout's own times, on any builder).
#[test]
fn mounts_and_sources_cases_are_reproducible() {
    let serve_git = tempfile::Builder::new()
        .prefix("hako-git-")
        .tempdir_in("/var/tmp")
        .unwrap();
    let has_git = Command::new("git").arg("--version").output().is_ok();
    let git_daemon = has_git.then(|| {
        let src = serve_git.path().join("src");
        std::fs::create_dir(&src).unwrap();
        git(&src, &["init", "-q", "-b", "main"]);
        write(&src, "README", "one\n");
        write(&src, "docs/site/index.html", "page v1\n");
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-q", "-m", "one"]);
        git(&src, &["tag", "v1"]);
        write(&src, "docs/site/index.html", "page v2\n");
        git(&src, &["commit", "-q", "-am", "two"]);
        let st = Command::new("git")
            .args(["clone", "-q", "--bare"])
            .arg(&src)
            .arg(serve_git.path().join("repo.git"))
            .status()
            .unwrap();
        assert!(st.success());
        GitDaemon::start(serve_git.path())
    });
    if git_daemon.is_none() {
        eprintln!("add_a_git_repository left out: git is not installed on this host");
    }
    let port = serve("remote content\n");
    let url = format!("http://127.0.0.1:{port}/dl/file.txt");
    let sum = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b"remote content\n"))
    };
    let add_url =
        format!("FROM busybox\nADD {url} /srv/\nADD --checksum=sha256:{sum} {url} /named.txt\n");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let platform: &'static str = format!("linux/{arch}").leak();
    let mut tar = case(
        "tar_context_on_stdin",
        &[
            ("sub/Dockerfile.alt", "FROM busybox\nCOPY hello.txt /\n"),
            ("hello.txt", "from the tar\n"),
        ],
        &["-f", "sub/Dockerfile.alt", "-t", "fromtar:1"],
    );
    tar.input = Input::TarOnStdin;
    let mut secrets = case(
        "secrets_from_and_to_the_environment",
        &[
            ("expected", "v4lue-of-the-e2e-secret"),
            ("file.txt", "from-a-file"),
            (
                "Dockerfile",
                "FROM busybox\n\
                 COPY expected /expected\n\
                 RUN --mount=type=secret,id=tok,target=/t,mode=0440,uid=7,gid=5 stat -c '%a %u:%g' /t && test \"$(cat /t)\" = \"$(cat /expected)\" && echo file-ok\n\
                 RUN --mount=type=secret,id=file,env=FROM_FILE test \"$FROM_FILE\" = from-a-file && echo file-env-ok\n",
            ),
        ],
        &[
            "-t",
            "secrets:1",
            "--secret",
            "id=tok,src={ctx}/expected",
            "--secret",
            "id=file,src={ctx}/file.txt",
        ],
    );
    secrets.how = How::Env;
    let cache_df = "FROM busybox\nRUN echo a > /a\nCOPY f.txt /f\nENV X=1\n";
    let mut cache_from = case(
        "cache_from_an_image",
        &[("f.txt", "content\n"), ("Dockerfile", cache_df)],
        &["--cache-from", "src:1", "-t", "dst:1"],
    );
    // The steps come from src:1's layers, not from the step cache.
    cache_from.before = Some(&["builder", "prune", "-af"]);
    let mut cases = vec![
        case(
            "cache_from_an_image source",
            &[("f.txt", "content\n"), ("Dockerfile", cache_df)],
            &["-t", "src:1"],
        ),
        cache_from,
        case(
            "predefined_args_tags_labels",
            &[(
                "Dockerfile",
                "ARG TARGETARCH\nFROM busybox\nARG TARGETARCH\nRUN echo \"$HTTP_PROXY $TARGETARCH\" > /seen\n",
            )],
            &[
                "--build-arg",
                "HTTP_PROXY=http://proxy.invalid:3128",
                "-t",
                "one:1",
                "-t",
                "two:2",
                "--label",
                "org.example=yes",
            ],
        ),
        case(
            "run_layers_hold_only_what_the_step_changed",
            &[("Dockerfile", "FROM busybox\nRUN echo x > /x\n")],
            &["-t", "layer:1"],
        ),
        // Not a case elsewhere: a fifo and a device node a step leaves (their layer entries
        // could not be written before).
        case(
            "a RUN step leaves a fifo and a device",
            &[(
                "Dockerfile",
                "FROM busybox\nRUN mkfifo /fifo && mknod /null2 c 1 3\n",
            )],
            &["-t", "special:1"],
        ),
        case(
            "run_layers_hold_only_what_the_step_changed /etc",
            &[("Dockerfile", "FROM busybox\nRUN echo x > /etc/x\n")],
            &["-t", "layer:2"],
        ),
        secrets,
        tar,
        case(
            "platform_and_rm",
            &[(
                "Dockerfile",
                "FROM --platform=$BUILDPLATFORM busybox\nRUN echo kept > /k\n",
            )],
            &["--platform", platform, "--force-rm"],
        ),
        case(
            "add_url_with_checksum",
            &[("Dockerfile", &add_url)],
            &["-t", "url:1"],
        ),
    ];
    if let Some(d) = &git_daemon {
        let url = format!("git://127.0.0.1:{}/repo.git", d.port);
        let df: &'static str = format!(
            "FROM busybox\nADD {url} /src\nADD {url}#v1:docs /docs/\nRUN cat /src/README /docs/site/index.html > /both\n"
        )
        .leak();
        cases.push(case(
            "add_a_git_repository",
            &[("Dockerfile", df)],
            &["-t", "git:1"],
        ));
    }
    same_in_two_roots(&cases);
}

/// tests/build_mounts.rs's `ssh_agent_forwarding`, on trixie. Its `useradd` writes the day of
/// the password's last change into /etc/shadow: today, unless it sees `SOURCE_DATE_EPOCH`
/// (shadow reads it), so the Dockerfile passes the build's epoch on with `ARG`, as it must on
/// any builder.
#[test]
fn ssh_case_is_reproducible() {
    let Some(agent) = common::build::Agent::start("hako-e2e-key") else {
        eprintln!("SKIPPED ssh_case_is_reproducible: ssh-agent, ssh-keygen or ssh-add is missing on this host (Debian openssh-client)");
        return;
    };
    let sock = agent.socket();
    let default: &'static str = format!("default={}", sock.display()).leak();
    let other: &'static str = format!("other={}", sock.display()).leak();
    let df: &'static str = format!(
        "FROM trixie\n\
         ARG SOURCE_DATE_EPOCH\n\
         RUN useradd -u 1234 app\n\
         USER app\n\
         RUN --mount=type=ssh,uid=1234 stat -c '%a %u %F' $SSH_AUTH_SOCK && echo $SSH_AUTH_SOCK && {ASK_AGENT}\n\
         RUN --mount=type=ssh,id=other,target=/tmp/a.sock,uid=1234 --mount=type=ssh,uid=1234 echo $SSH_AUTH_SOCK && {ASK_AGENT}\n\
         USER root\n\
         RUN test ! -e /run/buildkit && test ! -e /tmp/a.sock && echo clean\n",
        ASK_AGENT = common::build::ASK_AGENT
    )
    .leak();
    let cases = [case(
        "ssh_agent_forwarding",
        &[("Dockerfile", df)],
        &["-t", "ssh:1", "--ssh", default, "--ssh", other],
    )];
    same_in_two_roots_on(&Base::of("trixie"), &cases);
}

/// The digests of one build, written here: a dependency upgrade (the tar writer, the JSON
/// writer) or a change of ours that changes the bytes of a reproducible image fails this.
/// `FROM scratch`, so that the test image's own build does not enter. Without the epoch the
/// same build differs between the two roots, as it always has.
#[test]
fn one_build_has_the_digests_written_here() {
    // COPY of a file (its context time is newer than the epoch, so clamped) and of one with
    // an older time (kept), a heredoc with --chmod and --chown, a directory COPY makes on
    // the way, WORKDIR making a directory, and config-only steps.
    let files = [
        ("Dockerfile", "FROM scratch\nCOPY hello.txt old.txt /files/\nCOPY --chmod=755 --chown=7:8 <<EOF /bin/tool\n#!/bin/sh\necho tool\nEOF\nWORKDIR /work/dir\nENV A=1\nLABEL repro=yes\nCMD [\"/bin/tool\"]\n"),
        ("hello.txt", "hello\n"),
        ("old.txt", "old\n"),
    ];
    let build = |r: &Root, epoch: Option<&str>| -> String {
        let d = ctx();
        for (p, text) in files {
            write(d.path(), p, text);
        }
        use std::os::unix::fs::PermissionsExt;
        for p in ["hello.txt", "old.txt"] {
            std::fs::set_permissions(d.path().join(p), std::fs::Permissions::from_mode(0o644))
                .unwrap();
        }
        // 2001-09-09T01:46:40Z, before the epoch.
        let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        std::fs::File::options()
            .write(true)
            .open(d.path().join("old.txt"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        let mut args = vec!["build", "-q", "-t", "pinned:1"];
        if let Some(e) = epoch {
            args.extend(["--source-date-epoch", e]);
        }
        let c = d.path().to_str().unwrap();
        args.push(c);
        r.ok(&args).trim().to_string()
    };
    let layers = |r: &Root| -> Vec<String> {
        let v: serde_json::Value =
            serde_json::from_str(&r.ok(&["image", "inspect", "pinned:1"])).unwrap();
        v[0]["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect()
    };
    let (with_a, plain_a, layers_a, created) = {
        let r = Root::new();
        let plain = build(&r, None);
        let with = build(&r, Some(EPOCH));
        let created = r.ok(&["image", "inspect", "--format", "{{.Created}}", "pinned:1"]);
        (with, plain, layers(&r), created)
    };
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = Root::new();
    let plain_b = build(&r, None);
    assert_ne!(
        plain_a, plain_b,
        "without the epoch, the build's time is in the image"
    );
    let with_b = build(&r, Some(EPOCH));
    assert_eq!(with_a, with_b);
    assert_eq!(created.trim(), "2023-11-14T22:13:20Z");
    assert_eq!(
        layers_a,
        [
            // files/ (the epoch), files/hello.txt (clamped), files/old.txt (older: kept).
            "sha256:e31d6238d5f259fe583363390f5c53788cc9b4e4f16a6ca85c5838553d1ec8f1",
            // bin/ and bin/tool, 7:8, at the epoch.
            "sha256:e1b81667c3f43b4ef0aeb105f3fdf92fa6e4532170383b3ec25620ef7cbf6b6b",
            // work/ and work/dir/ at the epoch.
            "sha256:6edb7f96d37b008980ba0a0e8f46e9951441bb3988a2b35a48b047e1124abb82",
        ]
    );
    // The config, byte for byte: its sha256 is the image ID.
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let t = "2023-11-14T22:13:20Z";
    let config = format!(
        concat!(
            r#"{{"architecture":"{arch}","config":{{"Cmd":["/bin/tool"],"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","A=1"],"Labels":{{"repro":"yes"}},"WorkingDir":"/work/dir"}},"#,
            r#""created":"{t}","history":["#,
            r#"{{"created":"{t}","created_by":"/bin/sh -c #(nop) COPY multi:085eef88d79a0e5260460f060093a07dec68fff7b196ce498c4e07acee9fdd65 in /files/ "}},"#,
            r#"{{"created":"{t}","created_by":"/bin/sh -c #(nop) COPY file:ae13d578fbcee43a258e168d7785d7756b3b39808a4f29415798d66b7da950ea in /bin/tool "}},"#,
            r#"{{"created":"{t}","created_by":"/bin/sh -c #(nop)  WORKDIR /work/dir"}},"#,
            r#"{{"created":"{t}","created_by":"/bin/sh -c #(nop)  ENV A=1","empty_layer":true}},"#,
            r#"{{"created":"{t}","created_by":"/bin/sh -c #(nop)  LABEL repro=yes","empty_layer":true}},"#,
            r#"{{"created":"{t}","created_by":"/bin/sh -c #(nop)  CMD [\"/bin/tool\"]","empty_layer":true}}],"#,
            r#""os":"linux","rootfs":{{"diff_ids":["{l0}","{l1}","{l2}"],"type":"layers"}}}}"#
        ),
        arch = arch,
        t = t,
        l0 = layers_a[0],
        l1 = layers_a[1],
        l2 = layers_a[2],
    );
    let id = {
        use sha2::Digest;
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(config.as_bytes()))
        )
    };
    assert_eq!(with_a, id, "the config is not {config}");
    if arch == "amd64" {
        assert_eq!(
            with_a,
            "sha256:5e0b962e74ad589d0de187c47b7818ca90e4ae13ef29dca9e531bf5b5ce0e67d"
        );
    }
}

/// File times in a reproducible image: what the build made or changed, and context files newer
/// than the epoch, say the epoch; an older context file keeps its time; RUN steps see a fixed
/// hostname, and `ARG SOURCE_DATE_EPOCH` the epoch.
#[test]
fn file_times_are_clamped_to_the_epoch() {
    let r = Root::with_busybox();
    let d = ctx();
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nARG SOURCE_DATE_EPOCH\nRUN echo $SOURCE_DATE_EPOCH > /epoch && hostname > /host && mkdir -p /made/sub\nCOPY new.txt old.txt /ctx/\nWORKDIR /wd/deep\n",
    );
    write(d.path(), "new.txt", "new\n");
    write(d.path(), "old.txt", "old\n");
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(d.path().join("old.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let c = d.path().to_str().unwrap();
    let (code, out, err) = r.run(&["build", "--source-date-epoch", EPOCH, "-t", "times:1", c]);
    assert_eq!(code, 0, "{out}{err}");
    let stat = r.ok(&[
        "run",
        "--rm",
        "times:1",
        "stat",
        "-c",
        "%n %Y",
        "/epoch",
        "/host",
        "/made",
        "/made/sub",
        "/ctx",
        "/ctx/new.txt",
        "/ctx/old.txt",
        "/wd",
        "/wd/deep",
    ]);
    let e = EPOCH;
    assert_eq!(
        stat,
        format!(
            "/epoch {e}\n/host {e}\n/made {e}\n/made/sub {e}\n/ctx {e}\n/ctx/new.txt {e}\n/ctx/old.txt 1000000000\n/wd {e}\n/wd/deep {e}\n"
        )
    );
    assert_eq!(
        r.ok(&["run", "--rm", "times:1", "cat", "/epoch"]),
        format!("{e}\n")
    );
    assert_eq!(
        r.ok(&["run", "--rm", "times:1", "cat", "/host"]),
        "buildkitsandbox\n"
    );
    let created = r.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedAt}}",
        "times:1",
    ]);
    let created: Vec<&str> = created.lines().collect();
    // The four steps of this build, newest first, then busybox's own.
    assert!(
        created[..4]
            .iter()
            .all(|c| c.starts_with("2023-11-14T22:13:20")),
        "{created:?}"
    );
    // Built again with the epoch, the steps are cached; without it, nothing built with the
    // epoch is reused.
    let (code, out, err) = r.run(&["build", "--source-date-epoch", EPOCH, "-t", "times:1", c]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches(" ---> Using cache").count(), 4, "{out}");
    let (code, out, err) = r.run(&["build", "-t", "times:2", c]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("Using cache"), "{out}");
    // The epoch as a build argument is the build's, not an argument no ARG consumed.
    write(d.path(), "Dockerfile", "FROM busybox\nENV X=1\n");
    let arg = format!("SOURCE_DATE_EPOCH={EPOCH}");
    let (code, out, err) = r.run(&["build", "--build-arg", &arg, "-t", "times:3", c]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("were not consumed"), "{out}");
    r.ok(&["rmi", "times:1", "times:2", "times:3"]);
}

/// `hako save` of one image twice gives the same bytes, with the epoch or without; with it,
/// also from two roots.
#[test]
fn save_is_byte_identical() {
    let d = ctx();
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nRUN echo saved > /s\nCOPY f /f\nCMD [\"cat\", \"/s\"]\n",
    );
    write(d.path(), "f", "file\n");
    let c = d.path().to_str().unwrap().to_string();
    let out = ctx();
    let save = |r: &Root, image: &str, name: &str| -> Vec<u8> {
        let p = out.path().join(name);
        r.ok(&["save", "-o", p.to_str().unwrap(), image]);
        std::fs::read(p).unwrap()
    };
    let base = Base::busybox();
    let first = {
        let r = base.root();
        r.ok(&["build", "-q", "-t", "plain:1", &c]);
        r.ok(&[
            "build",
            "-q",
            "--source-date-epoch",
            EPOCH,
            "-t",
            "repro:1",
            &c,
        ]);
        let a = save(&r, "plain:1", "plain-a");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let b = save(&r, "plain:1", "plain-b");
        assert!(a == b, "two saves of one image differ");
        let busybox = save(&r, "busybox", "busybox-a");
        assert!(busybox == save(&r, "busybox", "busybox-b"));
        let both = save(&r, "repro:1", "both");
        assert!(both == save(&r, "repro:1", "both-again"));
        both
    };
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = base.root();
    r.ok(&[
        "build",
        "-q",
        "--source-date-epoch",
        EPOCH,
        "-t",
        "repro:1",
        &c,
    ]);
    assert!(
        first == save(&r, "repro:1", "other-root"),
        "a reproducible image saves to the same bytes in another root"
    );
}

/// A reproducible image pushed from two roots to two registries has one manifest digest; the
/// base image comes from a registry (tests/build_sources.rs's `base_images_are_pulled`).
#[test]
fn push_gives_one_manifest_digest() {
    let reg = Registry::start();
    let base = format!("127.0.0.1:{}/base:1", reg.port);
    {
        let a = Root::with_busybox();
        a.ok(&["tag", "busybox", &base]);
        a.ok(&["push", &base]);
    }
    let d = ctx();
    write(
        d.path(),
        "Dockerfile",
        &format!("FROM {base}\nRUN echo pulled > /p\nCOPY f /f\n"),
    );
    write(d.path(), "f", "f\n");
    let c = d.path().to_str().unwrap().to_string();
    let push = |reg: &Registry| -> (String, String) {
        let r = Root::new();
        let target = format!("127.0.0.1:{}/repro:1", reg.port);
        let id = r.ok(&[
            "build",
            "-q",
            "--source-date-epoch",
            EPOCH,
            "-t",
            &target,
            &c,
        ]);
        let out = r.ok(&["push", &target]);
        let digest = out
            .lines()
            .find_map(|l| l.split("digest: ").nth(1))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no digest in {out}"))
            .to_string();
        (id.trim().to_string(), digest)
    };
    let first = push(&reg);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let other = Registry::start();
    let second = push(&other);
    assert_eq!(first, second);
}

/// A bad epoch is refused before anything is built, in one line naming where it came from;
/// the flag and the build argument must agree.
#[test]
fn bad_epochs_are_refused() {
    let r = Root::with_busybox();
    let d = ctx();
    write(d.path(), "Dockerfile", "FROM busybox\nRUN echo x > /x\n");
    let c = d.path().to_str().unwrap();
    let mut env_cmd = r.cmd(&["build", c]);
    env_cmd.env("SOURCE_DATE_EPOCH", "yesterday");
    let o = env_cmd.output().unwrap();
    let env_err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{env_err}");
    assert!(
        env_err.contains("invalid SOURCE_DATE_EPOCH in the environment \"yesterday\""),
        "{env_err}"
    );
    for (args, want) in [
        (
            vec!["--source-date-epoch=-5"],
            "invalid --source-date-epoch \"-5\"",
        ),
        (
            vec!["--build-arg", "SOURCE_DATE_EPOCH=1.5"],
            "invalid --build-arg SOURCE_DATE_EPOCH \"1.5\"",
        ),
        (
            vec![
                "--source-date-epoch",
                "5",
                "--build-arg",
                "SOURCE_DATE_EPOCH=6",
            ],
            "--source-date-epoch 5 and --build-arg SOURCE_DATE_EPOCH=6 disagree",
        ),
    ] {
        let mut a = vec!["build"];
        a.extend(args.iter().copied());
        a.push(c);
        let (code, out, err) = r.run(&a);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains(want), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
    assert_eq!(
        r.ok(&["images", "-q"]).lines().count(),
        1,
        "nothing was built"
    );
    let left: Vec<_> = std::fs::read_dir(r.path().join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
