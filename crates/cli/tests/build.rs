//! `hako build` end to end: the seed Dockerfiles, the cache, multi-stage, .dockerignore,
//! heredocs, ONBUILD and failures.

mod common;

use common::build::{build_env, ctx, write};

use common::{wait_for, Root};
use std::path::Path;

fn build(r: &Root, ctx: &Path, args: &[&str]) -> (i32, String, String) {
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    let c = ctx.to_str().unwrap();
    a.push(c);
    r.run(&a)
}

/// Seed 004: FROM, RUN, WORKDIR, COPY test01.txt, CMD; a no-op rebuild is all cache; changing
/// the copied file rebuilds from the COPY step on.
#[test]
fn seed_dockerfile_and_cache() {
    let r = Root::with_busybox();
    let d = ctx();
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nRUN echo built > /built.txt\nWORKDIR /root\nCOPY test01.txt .\nCMD cat test01.txt\n",
    );
    write(d.path(), "test01.txt", "hello\n");
    let (code, out, err) = build(&r, d.path(), &["-t", "seed:1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("Sending build context to hako  "), "{out}");
    assert!(out.contains("Step 1/5 : FROM busybox"), "{out}");
    assert!(
        out.contains("Step 2/5 : RUN echo built > /built.txt\n ---> Running in "),
        "{out}"
    );
    assert!(out.contains("Removing intermediate container "), "{out}");
    assert!(out.contains("Step 5/5 : CMD cat test01.txt"), "{out}");
    assert!(out.contains("Successfully tagged seed:1"), "{out}");
    assert!(!out.contains("Using cache"), "{out}");
    assert_eq!(r.ok(&["run", "--rm", "seed:1"]), "hello\n");
    assert_eq!(
        r.ok(&["run", "--rm", "seed:1", "cat", "/built.txt"]),
        "built\n"
    );
    assert_eq!(r.ok(&["run", "--rm", "seed:1", "pwd"]), "/root\n");

    let (code, again, err) = build(&r, d.path(), &["-t", "seed:1"]);
    assert_eq!(code, 0, "{again}{err}");
    assert_eq!(again.matches(" ---> Using cache").count(), 4, "{again}");
    assert!(!again.contains("Running in"), "{again}");
    let id = |o: &str| o.lines().last().unwrap().to_string();
    let built = |o: &str| {
        o.lines()
            .find_map(|l| l.strip_prefix("Successfully built "))
            .unwrap()
            .to_string()
    };
    assert_eq!(built(&out), built(&again));
    let _ = id;

    write(d.path(), "test01.txt", "changed\n");
    let (code, changed, err) = build(&r, d.path(), &["-t", "seed:1"]);
    assert_eq!(code, 0, "{changed}{err}");
    let after_copy = changed.split("Step 4/5").nth(1).unwrap();
    let before_copy = changed.split("Step 4/5").next().unwrap();
    assert_eq!(before_copy.matches("Using cache").count(), 2, "{changed}");
    assert!(!after_copy.contains("Using cache"), "{changed}");
    assert_eq!(r.ok(&["run", "--rm", "seed:1"]), "changed\n");

    let hist = r.ok(&["history", "--no-trunc", "seed:1"]);
    assert!(
        hist.contains("/bin/sh -c #(nop)  CMD [\"/bin/sh\" \"-c\" \"cat test01.txt\"]"),
        "{hist}"
    );
    assert!(hist.contains("/bin/sh -c #(nop) COPY file:"), "{hist}");
    assert!(hist.contains("/bin/sh -c #(nop)  WORKDIR /root"), "{hist}");
    assert!(
        hist.contains("/bin/sh -c echo built > /built.txt"),
        "{hist}"
    );

    let (code, nc, _) = build(&r, d.path(), &["--no-cache", "-q"]);
    assert_eq!(code, 0);
    assert!(
        nc.trim().starts_with("sha256:") && nc.lines().count() == 1,
        "{nc}"
    );
    assert_eq!(
        r.ok(&["ps", "-aq"]),
        "",
        "no intermediate container is left"
    );
}

/// Seed 000's multi-stage shape with busybox tools: a builder stage makes a program, the final
/// stage copies it; an unrelated stage is skipped, `--target` stops at the builder.
#[test]
fn multi_stage() {
    let r = Root::with_busybox();
    let d = ctx();
    write(d.path(), "main.sh", "#!/bin/sh\necho succeed from $0\n");
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox AS builder\nWORKDIR /build\nCOPY main.sh /build\nRUN cp main.sh newfeature && chmod 755 newfeature\n\nFROM busybox AS unused\nRUN echo never\n\nFROM busybox\nWORKDIR /app\nCOPY --from=builder /build/newfeature .\nCMD [\"/app/newfeature\"]\n",
    );
    let (code, out, err) = build(&r, d.path(), &["-t", "newfeature"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("never"), "the unused stage is skipped: {out}");
    assert!(
        out.contains("Step 8/8 : CMD [\"/app/newfeature\"]"),
        "{out}"
    );
    assert_eq!(
        r.ok(&["run", "--rm", "newfeature"]),
        "succeed from /app/newfeature\n"
    );
    let (code, out, err) = build(&r, d.path(), &["--target", "builder", "-t", "b"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Step 4/4"), "{out}");
    assert_eq!(r.ok(&["run", "--rm", "b", "pwd"]), "/build\n");
}

/// The seed's real multi-stage build: gcc installed by apt in a Debian builder stage. Needs
/// the bridge network to reach the Debian mirror; says so clearly when it cannot.
#[test]
fn multi_stage_gcc_with_apt() {
    let r = Root::new();
    let out = r.hako(&[
        "import",
        common::images_dir().join("trixie.tar").to_str().unwrap(),
        "trixie",
    ]);
    assert!(out.status.success());
    let probe = r.run(&[
        "run",
        "--rm",
        "trixie",
        "sh",
        "-c",
        "timeout 20 apt-get update -qq >/dev/null 2>&1",
    ]);
    if probe.0 != 0 {
        eprintln!(
            "SKIPPED multi_stage_gcc_with_apt: apt-get update fails in a container (no bridge networking or mirror): {}",
            probe.2
        );
        return;
    }
    let d = ctx();
    write(
        d.path(),
        "main.c",
        "#include <stdio.h>\nint main(void) { puts(\"succeed\"); return 0; }\n",
    );
    write(
        d.path(),
        "Dockerfile",
        "FROM trixie AS builder\nWORKDIR /build\nCOPY main.c /build\nRUN apt-get update && apt-get install -y gcc libc6-dev\nRUN gcc -o newfeature main.c\n\nFROM trixie\nWORKDIR /app\nCOPY --from=builder /build/newfeature .\nCMD [\"/app/newfeature\"]\n",
    );
    let (code, out, err) = build(&r, d.path(), &["-t", "kimullaa/newfeature"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(r.ok(&["run", "--rm", "kimullaa/newfeature"]), "succeed\n");
}

#[test]
fn dockerignore_heredocs_args_and_metadata() {
    let r = Root::with_busybox();
    let d = ctx();
    write(d.path(), ".dockerignore", "secret.txt\n*.log\n!keep.log\n");
    write(d.path(), "secret.txt", "s");
    write(d.path(), "a.log", "a");
    write(d.path(), "keep.log", "k");
    write(d.path(), "dir/sub/file", "f");
    write(
        d.path(),
        "Dockerfile",
        "# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM ${BASE}\nARG WHO=world\nENV GREETING=\"hello ${WHO}\" \\\n    OTHER=${UNSET:-dflt}\nCOPY . /ctx/\nCOPY --chmod=755 <<EOF /script.sh\n#!/bin/sh\necho $GREETING\nEOF\nRUN <<EOT\necho heredoc-run > /hd\necho $WHO >> /hd\nEOT\nLABEL a=b\nEXPOSE 8080\nUSER 1000:1000\ncmd [\"/script.sh\"]\n",
    );
    let (code, out, err) = build(
        &r,
        d.path(),
        &["-t", "misc", "--build-arg", "WHO=you", "--label", "x=y"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let ls = r.ok(&["run", "--rm", "misc", "find", "/ctx", "-type", "f"]);
    assert!(
        ls.contains("/ctx/keep.log") && ls.contains("/ctx/dir/sub/file"),
        "{ls}"
    );
    assert!(!ls.contains("secret.txt") && !ls.contains("a.log"), "{ls}");
    assert_eq!(r.ok(&["run", "--rm", "misc"]), "hello you\n");
    assert_eq!(
        r.ok(&["run", "--rm", "misc", "cat", "/hd"]),
        "heredoc-run\nyou\n"
    );
    assert_eq!(
        r.ok(&["run", "--rm", "misc", "sh", "-c", "echo $OTHER; id -u"]),
        "dflt\n1000\n"
    );
    let v: serde_json::Value = serde_json::from_str(&r.ok(&["image", "inspect", "misc"])).unwrap();
    let labels = &v[0]["Config"]["Labels"];
    assert_eq!(labels["a"], "b", "{v}");
    assert_eq!(labels["x"], "y", "{v}");
    assert_eq!(
        v[0]["Config"]["ExposedPorts"]["8080/tcp"],
        serde_json::json!({}),
        "{v}"
    );
}

#[test]
fn onbuild_triggers_run_in_child_builds() {
    let r = Root::with_busybox();
    let parent = ctx();
    write(
        parent.path(),
        "Dockerfile",
        "FROM busybox\nONBUILD COPY marker /marker\nONBUILD RUN echo triggered >> /marker\n",
    );
    let (code, out, err) = build(&r, parent.path(), &["-t", "base:onbuild"]);
    assert_eq!(code, 0, "{out}{err}");
    let child = ctx();
    write(child.path(), "marker", "from-child\n");
    write(
        child.path(),
        "Dockerfile",
        "FROM base:onbuild\nCMD [\"cat\", \"/marker\"]\n",
    );
    let (code, out, err) = build(&r, child.path(), &["-t", "child"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("# Executing 2 build triggers"), "{out}");
    assert_eq!(r.ok(&["run", "--rm", "child"]), "from-child\ntriggered\n");
    // The triggers do not pass on to grandchildren.
    let v: serde_json::Value = serde_json::from_str(&r.ok(&["image", "inspect", "child"])).unwrap();
    let onbuild = &v[0]["Config"]["OnBuild"];
    assert!(
        onbuild.is_null() || onbuild == &serde_json::json!([]),
        "{v}"
    );
}

#[test]
fn failures_name_the_line_and_leave_nothing() {
    let r = Root::with_busybox();
    let d = ctx();
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nRUN echo before\nRUN false\nCMD x\n",
    );
    let (code, out, err) = build(&r, d.path(), &["-t", "broken"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("The command '/bin/sh -c false' returned a non-zero code: 1"),
        "{err}"
    );
    assert_eq!(r.ok(&["ps", "-aq"]), "");
    assert!(!r.ok(&["images"]).contains("broken"));

    write(d.path(), "Dockerfile", "FROM busybox\nRUN exit 3\n");
    let (code, _, err) = build(&r, d.path(), &[]);
    assert_eq!(code, 3, "{err}");

    for (df, want) in [
        (
            "FROM busybox\nFOO bar\n",
            "line 2: unknown instruction: FOO",
        ),
        ("RUN true\n", "line 1"),
        ("FROM busybox\nCOPY ../etc/passwd /x\n", "line 2"),
        ("FROM busybox\nCOPY nope /x\n", "line 2"),
        (
            "FROM busybox\nCOPY --chown=nobody:nosuchgroup Dockerfile /x\n",
            "line 2",
        ),
        (
            "FROM busybox\nRUN <<EOF\necho\n",
            "line 2: RUN: unterminated heredoc",
        ),
        (
            "FROM busybox\nENV A=\"abc\n",
            "line 2: ENV: unexpected end of statement while looking for matching double-quote",
        ),
        (
            "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n",
            "line 2: circular dependency detected on stage: b",
        ),
    ] {
        write(d.path(), "Dockerfile", df);
        let (code, out, err) = build(&r, d.path(), &[]);
        assert_ne!(code, 0, "{df}: {out}");
        assert!(err.contains(want), "{df}: {err}");
    }
    assert_eq!(r.ok(&["ps", "-aq"]), "");
}

/// Hostile Dockerfiles and `.dockerignore` files: nesting that recursed once per level (a
/// stack overflow, exit 134) and patterns that backtracked exponentially now fail with a
/// line-naming error, or work, in bounded time and stack.
#[test]
fn hostile_nesting_and_patterns() {
    let r = Root::with_busybox();
    let d = ctx();
    let nest = |n: usize| format!("{}v{}", "${X:-".repeat(n), "}".repeat(n));
    write(
        d.path(),
        "Dockerfile",
        &format!("FROM busybox\nENV A={}\n", nest(30_000)),
    );
    let (code, out, err) = build(&r, d.path(), &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("Dockerfile line 2: ENV: variable substitutions nested more than 64 deep"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // The same through a build arg's default, and in a FROM line's global ARG.
    write(
        d.path(),
        "Dockerfile",
        &format!("ARG B={}\nFROM busybox\n", nest(30_000)),
    );
    let (code, _, err) = build(&r, d.path(), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("line 1: ARG: variable substitutions nested"),
        "{err}"
    );
    // Nesting within the bound still expands.
    write(
        d.path(),
        "Dockerfile",
        &format!("FROM busybox\nENV A={}\n", nest(64)),
    );
    let (code, _, err) = build(&r, d.path(), &["-t", "nest:1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        r.ok(&["run", "--rm", "nest:1", "sh", "-c", "echo $A"]),
        "v\n"
    );

    // A .dockerignore line of 50,000 stars (once a stack overflow), and `*a*a…b` against a
    // long name (once exponential).
    write(
        d.path(),
        ".dockerignore",
        &format!(
            "{}\n!keep\n!Dockerfile\n{}b\n",
            "*".repeat(50_000),
            "*a".repeat(30)
        ),
    );
    write(d.path(), "keep", "kept\n");
    write(d.path(), &"a".repeat(200), "");
    write(d.path(), "Dockerfile", "FROM busybox\nCOPY . /ctx/\n");
    let (code, out, err) = build(&r, d.path(), &["-t", "ign:1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        r.ok(&["run", "--rm", "ign:1", "ls", "/ctx"]),
        "Dockerfile\nkeep\n"
    );
    // A pattern that does not compile names its line.
    write(d.path(), ".dockerignore", "ok\nbad[\n");
    let (code, _, err) = build(&r, d.path(), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(".dockerignore line 2: syntax error in pattern"),
        "{err}"
    );
    // COPY sources are patterns too.
    std::fs::remove_file(d.path().join(".dockerignore")).unwrap();
    write(
        d.path(),
        "Dockerfile",
        &format!("FROM busybox\nCOPY {}b /x/\n", "*a".repeat(30)),
    );
    let (code, _, err) = build(&r, d.path(), &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("line 2") && err.contains("no source files"),
        "{err}"
    );
    r.ok(&["rmi", "nest:1", "ign:1"]);
}

#[test]
fn dockerfile_on_stdin_and_iidfile() {
    let r = Root::with_busybox();
    let d = ctx();
    let iid = d.path().join("iid");
    let mut c = r.cmd(&["build", "-q", "--iidfile", iid.to_str().unwrap(), "-"]);
    c.stdin(std::process::Stdio::piped());
    c.stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM busybox\nRUN echo quiet-output\nENV A=1\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("quiet-output"), "{stdout}");
    assert_eq!(stdout.trim(), std::fs::read_to_string(&iid).unwrap());
}

fn df_build_cache(r: &Root) -> Vec<String> {
    let df = r.ok(&["system", "df"]);
    df.lines()
        .find(|l| l.starts_with("Build Cache"))
        .unwrap_or_else(|| panic!("no Build Cache row: {df}"))
        .split_whitespace()
        .skip(2)
        .map(String::from)
        .collect()
}

/// The cache is bounded (least recently used steps go first once what only the cache keeps
/// exceeds HAKO_BUILD_CACHE_MAX), `system df` reports it, and `builder prune` keeps tagged
/// images' steps unless -a.
#[test]
fn bounded_cache_lru_df_and_prune() {
    let r = Root::with_busybox();
    let (a, b) = (ctx(), ctx());
    write(
        a.path(),
        "Dockerfile",
        "FROM busybox\nRUN head -c 2000000 /dev/urandom > /a\n",
    );
    write(
        b.path(),
        "Dockerfile",
        "FROM busybox\nRUN head -c 2000000 /dev/urandom > /b\n",
    );
    let (code, out, err) = build(&r, a.path(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    let row = df_build_cache(&r);
    assert_eq!(row[0], "1", "{row:?}");
    assert!(row[2].ends_with("MB"), "the 2 MB step is counted: {row:?}");

    // Two 2 MB steps exceed 3 MiB (Docker's binary units, as `5MiB` or `3m`): the older
    // (a's) is collected after b's build.
    let max = [("HAKO_BUILD_CACHE_MAX", "3MiB")];
    let (code, out, err) = build_env(&r, b.path(), &max, &[]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = build_env(&r, b.path(), &max, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(" ---> Using cache"), "b is kept: {out}");
    assert_eq!(df_build_cache(&r)[0], "1");
    let (code, out, err) = build_env(&r, a.path(), &max, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Running in") && !out.contains("Using cache"),
        "a was collected: {out}"
    );
    let (code, _, err) = build_env(&r, a.path(), &[("HAKO_BUILD_CACHE_MAX", "lots")], &[]);
    assert_eq!(code, 0, "a bad size warns, the build stands: {err}");
    assert!(err.contains("HAKO_BUILD_CACHE_MAX"), "{err}");

    // The prompt: anything but y keeps everything.
    let mut c = r.cmd(&["builder", "prune"]);
    c.stdin(std::process::Stdio::piped());
    c.stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"n\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.starts_with("WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] "),
        "{said}"
    );
    assert_eq!(df_build_cache(&r)[0], "1");

    // Entries used within the hour survive `until=1h`, in the grammar of every `until=`.
    for until in ["until=1h", "until=2d", "until=2000-01-01T00:00:00Z"] {
        let out = r.ok(&["builder", "prune", "-f", "--filter", until]);
        assert!(out.contains("Total reclaimed space: 0B"), "{until}: {out}");
    }
    let (code, _, err) = r.run(&["builder", "prune", "-f", "--filter", "until=soon"]);
    assert_eq!(code, 1);
    assert!(err.contains("until=soon"), "{err}");
    assert_eq!(df_build_cache(&r)[0], "1");

    // A tagged image's step stays without -a, goes with it.
    let (code, out, err) = build(&r, b.path(), &["-t", "kept:1"]);
    assert_eq!(code, 0, "{out}{err}");
    let out = r.ok(&["builder", "prune", "-f"]);
    assert!(out.contains("Deleted build cache objects:"), "{out}");
    assert!(
        !out.contains("Total reclaimed space: 0B"),
        "a's 2 MB: {out}"
    );
    let row = df_build_cache(&r);
    assert_eq!((row[0].as_str(), row[1].as_str()), ("1", "1"), "{row:?}");
    let (_, again, _) = build(&r, b.path(), &["-t", "kept:1"]);
    assert!(again.contains(" ---> Using cache"), "{again}");
    let out = r.ok(&["builder", "prune", "-af"]);
    assert!(
        out.contains("Total reclaimed space: 0B"),
        "kept:1 holds it: {out}"
    );
    assert_eq!(df_build_cache(&r)[0], "0");
    let (_, again, _) = build(&r, b.path(), &["-t", "kept:1"]);
    assert!(!again.contains("Using cache"), "{again}");
    r.ok(&["rmi", "kept:1"]);
}

/// Pruning keeps the build cache of a tagged image, as Docker does: the steps a tagged image
/// was built from are its parents, which are not dangling. A rebuild's old image is dangling
/// (listed by `images -f dangling=true`) and `image prune` removes exactly it and the steps
/// only it had; `system prune` drops the dangling build cache, `system prune -a` all of it.
#[test]
fn prune_keeps_the_cache_of_tagged_images() {
    let r = Root::with_busybox();
    let d = ctx();
    let df = |two: &str| {
        format!("FROM busybox\nRUN echo one > /one\nRUN echo {two} > /two\nCMD [\"sh\"]\n")
    };
    write(d.path(), "Dockerfile", &df("two"));
    let all_cached =
        |out: &str| out.matches(" ---> Using cache").count() == 3 && !out.contains("Running in");
    let (code, out, err) = build(&r, d.path(), &["-t", "pc:1"]);
    assert_eq!(code, 0, "{out}{err}");
    let first = r
        .ok(&["images", "-q", "--no-trunc", "pc:1"])
        .trim()
        .to_string();
    let (_, out, _) = build(&r, d.path(), &["-t", "pc:1"]);
    assert!(all_cached(&out), "{out}");

    for prune in [
        &["image", "prune", "-f"][..],
        &["builder", "prune", "-f"],
        &["system", "prune", "-f"],
    ] {
        let said = r.ok(prune);
        assert!(!said.contains("deleted:"), "{prune:?}: {said}");
        let (_, out, _) = build(&r, d.path(), &["-t", "pc:1"]);
        assert!(all_cached(&out), "{prune:?} kept the cache: {out}");
    }
    // The steps are intermediate images: shown by -a only, never dangling.
    assert!(r.ok(&["images", "-q", "-f", "dangling=true"]).is_empty());
    assert!(!r.ok(&["images"]).contains("<none>"));
    let doc: serde_json::Value =
        serde_json::from_str(&r.ok(&["image", "inspect", "pc:1"])).unwrap();
    let parent = doc[0]["Parent"].as_str().unwrap();
    assert!(
        parent.starts_with("sha256:") && parent != first,
        "the RUN two step: {doc}"
    );
    let with_steps = r.ok(&["images", "-a", "-q"]).lines().count();
    assert_eq!(
        with_steps, 4,
        "busybox, the two RUN steps and pc:1 (the CMD step)"
    );

    // A rebuild with a changed step leaves the old image dangling.
    write(d.path(), "Dockerfile", &df("TWO"));
    let (code, out, err) = build(&r, d.path(), &["-t", "pc:1"]);
    assert_eq!(code, 0, "{out}{err}");
    let dangling = r.ok(&["images", "-q", "--no-trunc", "-f", "dangling=true"]);
    assert_eq!(dangling.trim(), first, "the old pc:1 is dangling");
    assert!(r.ok(&["images"]).contains("<none>"), "and listed");
    let said = r.ok(&["image", "prune", "-f"]);
    assert_eq!(
        said.matches("deleted: ").count(),
        2,
        "the old image and its RUN two step, not the shared RUN one: {said}"
    );
    assert!(said.contains(&format!("deleted: {first}")), "{said}");
    assert!(r.ok(&["images", "-q", "-f", "dangling=true"]).is_empty());
    assert_eq!(r.ok(&["images", "-a", "-q"]).lines().count(), 4);
    let (_, out, _) = build(&r, d.path(), &["-t", "pc:1"]);
    assert!(all_cached(&out), "{out}");

    // `system prune` drops the dangling build cache: the steps of an untagged build.
    write(d.path(), "Dockerfile", &df("three"));
    let (code, out, err) = build(&r, d.path(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    let said = r.ok(&["system", "prune", "-f"]);
    assert!(said.contains("Deleted Images:"), "{said}");
    let (_, out, _) = build(&r, d.path(), &[]);
    assert!(
        out.contains("Running in"),
        "the untagged build's steps went: {out}"
    );
    write(d.path(), "Dockerfile", &df("TWO"));
    let (_, out, _) = build(&r, d.path(), &["-t", "pc:1"]);
    assert!(all_cached(&out), "pc:1's stayed: {out}");

    // `system prune -a` removes every unused image and all build cache.
    let said = r.ok(&["system", "prune", "-a", "-f"]);
    assert!(said.contains("untagged: pc:1"), "{said}");
    assert!(r.ok(&["images", "-a", "-q"]).is_empty());
    assert_eq!(df_build_cache(&r)[0], "0");
    r.ok(&[
        "import",
        common::images_dir().join("busybox.tar").to_str().unwrap(),
        "busybox",
    ]);
    let (code, out, err) = build(&r, d.path(), &["-t", "pc:1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("Using cache"), "{out}");
    r.ok(&["rmi", "pc:1"]);
}

/// Independent stages run at the same time: a server stage waits for a client stage to
/// connect, which a sequential build could never satisfy (the server would time out). The
/// output still reads stage by stage, with each stage's own step numbers; an unused stage is
/// skipped.
#[test]
fn independent_stages_run_in_parallel() {
    let r = Root::with_busybox();
    let d = ctx();
    let port = 20000 + std::process::id() % 20000;
    write(
        d.path(),
        "Dockerfile",
        &format!(
            "FROM busybox AS server\n\
             RUN --network=host timeout 60 nc -l -p {port}\n\
             FROM busybox AS unused\n\
             RUN echo never-built\n\
             FROM busybox AS client\n\
             RUN --network=host sh -c 'for i in $(seq 600); do nc 127.0.0.1 {port} </dev/null && exit 0; sleep 0.1; done; exit 1'\n\
             FROM busybox\n\
             COPY --from=server /etc/passwd /server\n\
             COPY --from=client /etc/group /client\n"
        ),
    );
    let (code, out, err) = build(&r, d.path(), &["-t", "par:1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("never-built"), "{out}");
    let server = out
        .find("Step 2/7 : RUN --network=host timeout")
        .expect(&out);
    let client = out.find("Step 4/7 : RUN --network=host sh").expect(&out);
    let last = out.find("Step 5/7 : FROM busybox").expect(&out);
    assert!(server < client && client < last, "{out}");
    assert_eq!(out.matches("Removing intermediate container").count(), 2);
    r.ok(&["run", "--rm", "par:1", "test", "-s", "/client"]);

    // A failure in a forked stage fails the build with its message and status, and leaves
    // no container.
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox AS a\nRUN true\nFROM busybox AS b\nRUN exit 7\nFROM busybox\nCOPY --from=a /etc/passwd /a\nCOPY --from=b /etc/passwd /b\n",
    );
    let (code, out, err) = build(&r, d.path(), &[]);
    assert_eq!(code, 7, "{out}{err}");
    assert!(
        err.contains("The command '/bin/sh -c exit 7' returned a non-zero code: 7"),
        "{err}"
    );
    assert_eq!(r.ok(&["ps", "-aq"]), "");
    r.ok(&["rmi", "par:1"]);
}

/// Independent stages run together, but at most 16 builders at once: a Dockerfile of many
/// stages forked one process per stage. Each stage's step marks itself in a shared cache mount
/// while it sleeps and records how many it saw; the last stage reports the most.
#[test]
fn parallel_stages_are_bounded() {
    let r = Root::with_busybox();
    let d = ctx();
    let n = 24;
    let mut df = String::new();
    for i in 0..n {
        df.push_str(&format!(
            "FROM busybox AS s{i}\n\
             RUN --mount=type=cache,id=conc,target=/c sh -c 'touch /c/run-{i}; sleep 4; \
             ls /c | grep -c ^run- > /c/seen-{i}; rm /c/run-{i}'\n"
        ));
    }
    df.push_str("FROM busybox\n");
    for i in 0..n {
        df.push_str(&format!("COPY --from=s{i} /etc/passwd /p{i}\n"));
    }
    df.push_str(
        "RUN --mount=type=cache,id=conc,target=/c sh -c 'cat /c/seen-* | sort -n | tail -1 > /max'\n",
    );
    write(d.path(), "Dockerfile", &df);
    let (code, out, err) = build(&r, d.path(), &["-t", "wide:1"]);
    assert_eq!(code, 0, "{out}{err}");
    let max: usize = file_in(&r, "wide:1", "/max").trim().parse().unwrap();
    assert!(max >= 2, "stages still run together: {max}");
    assert!(max <= 16, "{max} stage builders at once");
    r.ok(&["rmi", "wide:1"]);
    r.ok(&["builder", "prune", "-af"]);
}

fn file_in(r: &Root, image: &str, path: &str) -> String {
    r.ok(&["run", "--rm", image, "cat", path])
}

/// RUN --mount: a cache directory persists across builds (even --no-cache ones) until
/// `builder prune`; a bind mount shows the context and its content keys the step; a secret is
/// readable but stays out of the image, as do the mount points; tmpfs; --network=none.
#[test]
fn run_mounts_and_network() {
    let r = Root::with_busybox();
    let d = ctx();
    write(d.path(), "data/f", "one\n");
    write(d.path(), "tok.txt", "s3cret");
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\n\
         RUN --mount=type=cache,target=/cache sh -c 'echo run >> /cache/log; wc -l < /cache/log > /count'\n\
         RUN --mount=type=bind,source=data,target=/data cat /data/f > /copied\n\
         RUN --mount=type=secret,id=tok,required=true sh -c 'test \"$(cat /run/secrets/tok)\" = s3cret && echo ok > /secret-ok'\n\
         RUN --mount=type=tmpfs,target=/scratch sh -c 'echo x > /scratch/f && grep -q \" /scratch tmpfs\" /proc/mounts'\n\
         RUN --network=none sh -c 'test $(grep -c : /proc/net/dev) = 1'\n",
    );
    let secret = format!("id=tok,src={}", d.path().join("tok.txt").display());
    let (code, out, err) = build(&r, d.path(), &["-t", "mounts:1", "--secret", &secret]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(file_in(&r, "mounts:1", "/count").trim(), "1");
    assert_eq!(file_in(&r, "mounts:1", "/copied"), "one\n");
    assert_eq!(file_in(&r, "mounts:1", "/secret-ok"), "ok\n");
    for gone in ["/cache", "/data", "/run", "/scratch"] {
        let (code, _, _) = r.run(&["run", "--rm", "mounts:1", "test", "-e", gone]);
        assert_eq!(code, 1, "{gone} is a mount point, not part of the image");
    }

    // The bind source's content is a step input; the cache mount kept its file.
    write(d.path(), "data/f", "two\n");
    let (code, out, err) = build(&r, d.path(), &["-t", "mounts:1", "--secret", &secret]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches(" ---> Using cache").count(), 1, "{out}");
    assert_eq!(file_in(&r, "mounts:1", "/copied"), "two\n");
    let (code, out, err) = build(
        &r,
        d.path(),
        &["--no-cache", "-t", "mounts:1", "--secret", &secret],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(file_in(&r, "mounts:1", "/count").trim(), "2");
    assert_eq!(df_build_cache(&r).len(), 4);

    // A required secret that is not given fails on its line; prune -a empties the cache mount.
    let (code, _, err) = build(&r, d.path(), &["--no-cache"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("line 4: RUN --mount=type=secret: secret tok not found"),
        "{err}"
    );
    assert_eq!(r.ok(&["ps", "-aq"]), "");
    let out = r.ok(&["builder", "prune", "-af"]);
    assert!(!out.contains("Total reclaimed space: 0B"), "{out}");
    let (code, out, err) = build(
        &r,
        d.path(),
        &["--no-cache", "-t", "mounts:1", "--secret", &secret],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(file_in(&r, "mounts:1", "/count").trim(), "1");

    // Cache mounts count toward the maximum: a tiny one collects this one after the build.
    let mounts = r.path().join("build-cache/mounts");
    let live = || {
        std::fs::read_dir(&mounts)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count()
    };
    assert_eq!(live(), 1);
    let (code, out, err) = build_env(
        &r,
        d.path(),
        &[("HAKO_BUILD_CACHE_MAX", "1")],
        &["-t", "mounts:1", "--secret", &secret],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(live(), 0);
    r.ok(&["rmi", "mounts:1"]);
}

/// Starts `hako build` on `ctx` and returns once a RUN step's container is running.
fn start_build(r: &Root, ctx: &Path) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut c = r.cmd(&["build", ctx.to_str().unwrap()]);
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    for l in lines.by_ref() {
        let l = l.unwrap();
        seen.push_str(&l);
        seen.push('\n');
        if l.contains("---> Running in") {
            break;
        }
    }
    assert!(seen.contains("Running in"), "the step starts: {seen}");
    // Keep draining so the build never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    assert!(
        wait_for(30, || r.ok(&["ps", "-q"]).lines().count() == 1),
        "the step's container runs: {seen}{}",
        r.ok(&["ps", "-a"])
    );
    child
}

fn assert_nothing_left(r: &Root) {
    assert!(
        wait_for(10, || r.ok(&["ps", "-aq"]).is_empty()),
        "no container is left: {}",
        r.ok(&["ps", "-a"])
    );
    let root = r.path().to_str().unwrap().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&root), "no mount under the root");
    let left: Vec<_> = std::fs::read_dir(r.path().join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "no half-written layer: {left:?}");
    let containers: Vec<_> = std::fs::read_dir(r.path().join("containers"))
        .unwrap()
        .collect();
    assert!(containers.is_empty(), "no container directory");
    let images = r.ok(&["images"]);
    assert_eq!(images.lines().count(), 2, "only busybox: {images}");
}

/// Ctrl-C (SIGINT) during a RUN step stops the step and fails the build; kill -9 of the build
/// leaves a container that dies with it and that the next command removes. Either way nothing
/// is left: no container, mount, temporary layer or tag.
#[test]
fn interrupted_builds_leave_nothing() {
    let r = Root::with_busybox();
    let d = ctx();
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nRUN trap 'exit 130' INT; sleep 60 & wait\nRUN echo never\n",
    );
    let mut child = start_build(&r, d.path());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "the step's status: {status:?}");
    assert_nothing_left(&r);

    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\nRUN sleep 60\nRUN echo never\n",
    );
    let mut child = start_build(&r, d.path());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_nothing_left(&r);
}

/// RUN --mount=type=bind,from=: another stage's or an image's filesystem (a path of it), read-only
/// with its deletions applied and symlinks kept inside it; `rw` makes it writable but the writes
/// never reach the stage; the mounted stage is built because of the mount alone, and its content
/// keys the step.
#[test]
fn bind_mounts_from_stages() {
    let r = Root::with_busybox();
    let d = ctx();
    write(
        d.path(),
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
    );
    let (code, out, err) = build(&r, d.path(), &["-t", "bindfrom:1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !out.contains("echo never"),
        "the unused stage is skipped: {out}"
    );
    assert_eq!(file_in(&r, "bindfrom:1", "/got"), "tool\n1\n");
    assert_eq!(file_in(&r, "bindfrom:1", "/ro"), "ro\n");
    assert_eq!(file_in(&r, "bindfrom:1", "/rw"), "scribble\n");
    assert_eq!(file_in(&r, "bindfrom:1", "/after"), "tool\nclean\n");
    assert_eq!(file_in(&r, "bindfrom:1", "/frw"), "changed\n");
    assert_eq!(file_in(&r, "bindfrom:1", "/esc"), "confined\n");
    assert_eq!(
        file_in(&r, "bindfrom:1", "/nested"),
        "nested\n",
        "a mount inside another is mounted after it, whatever the flags' order"
    );
    for gone in ["/t", "/w", "/f", "/bb", "/e", "/n"] {
        let (code, _, _) = r.run(&["run", "--rm", "bindfrom:1", "test", "-e", gone]);
        assert_eq!(code, 1, "{gone} is a mount point, not part of the image");
    }
    let scratch: Vec<_> = std::fs::read_dir(r.path().join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(
        scratch.is_empty(),
        "no scratch directory is left: {scratch:?}"
    );

    // The writes of the rw mounts never reached the stage.
    let (code, out, err) = build(&r, d.path(), &["--target", "tools", "-t", "tools:1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("Running in"), "all cached: {out}");
    assert_eq!(file_in(&r, "tools:1", "/opt/t/bin.txt"), "tool\n");
    let (code, _, _) = r.run(&["run", "--rm", "tools:1", "test", "-e", "/opt/t/new"]);
    assert_eq!(code, 1, "the stage is unchanged");

    // A rebuild is all cache; a change to the mounted stage reruns the step that mounts it,
    // though its parent is the same.
    let (code, out, err) = build(&r, d.path(), &["-t", "bindfrom:1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("Running in"), "all cached: {out}");
    let (code, out, err) = build(&r, d.path(), &["--build-arg", "V=2", "-t", "bindfrom:1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(file_in(&r, "bindfrom:1", "/got"), "tool\n2\n");
    r.ok(&["rmi", "bindfrom:1", "tools:1"]);
}

/// Bad from= mounts fail on their line and leave nothing: an unknown stage or image, a source
/// leaving the stage's root, a missing source, a cycle through mounts.
#[test]
fn bind_mount_from_failures() {
    let r = Root::with_busybox();
    let d = ctx();
    for (df, want) in [
        (
            "FROM busybox\nRUN --mount=type=bind,from=nope,target=/x true\n",
            "line 2: RUN --mount from=nope: no such stage or image in the local store",
        ),
        (
            "FROM busybox AS s\nFROM busybox\nRUN --mount=type=bind,from=s,source=../../etc,target=/x true\n",
            "line 3: RUN --mount: source=../../etc is outside the root of s",
        ),
        (
            "FROM busybox AS s\nFROM busybox\nRUN --mount=type=bind,from=s,source=/no/such,target=/x true\n",
            "line 3: RUN --mount from=s: source=/no/such: no such file or directory in s",
        ),
        (
            "FROM busybox AS a\nRUN --mount=from=b,target=/x true\nFROM busybox AS b\nRUN --mount=from=a,target=/y true\n",
            "circular dependency detected on stage: ",
        ),
    ] {
        write(d.path(), "Dockerfile", df);
        let (code, out, err) = build(&r, d.path(), &["-t", "bad:1"]);
        assert_eq!(code, 1, "{df}: {out}{err}");
        assert!(err.contains(want), "{df}: {err}");
        let images = r.ok(&["images", "-q"]);
        assert_eq!(images.lines().count(), 1, "only busybox: {images}");
    }
    let (code, _, _) = r.run(&["image", "inspect", "bad:1"]);
    assert_eq!(code, 1);
}

/// A context bind mount shows what `.dockerignore` keeps, no more: excluded files and
/// directories are absent, also inside kept directories and around `!` exceptions; what they
/// hold does not key the step. `rw` writes never reach the context.
#[test]
fn context_bind_mounts_follow_dockerignore() {
    let r = Root::with_busybox();
    let d = ctx();
    write(
        d.path(),
        ".dockerignore",
        "secret.txt\nsrc/private\nlogs\n!logs/keep.log\n*.tmp\n",
    );
    for f in [
        "secret.txt",
        "a.tmp",
        "src/private/key",
        "src/notes.txt",
        "logs/keep.log",
        "logs/a.log",
        "logs/old/x",
    ] {
        write(d.path(), f, "x\n");
    }
    write(d.path(), "src/main.c", "int main;\n");
    write(
        d.path(),
        "Dockerfile",
        "FROM busybox\n\
         RUN --mount=type=bind,target=/ctx sh -c 'cd /ctx && find . | sort > /listing'\n\
         RUN --mount=type=bind,source=src,target=/src sh -c 'ls -A /src > /src-list'\n\
         RUN --mount=type=bind,target=/ctx,rw sh -c 'echo new > /ctx/src/main.c && rm /ctx/Dockerfile && touch /ctx/secret.txt && cat /ctx/src/main.c > /rwctx'\n\
         RUN --mount=type=bind,target=/ctx sh -c 'cat /ctx/src/main.c > /after && ls -A /ctx > /after-list'\n",
    );
    let (code, out, err) = build(&r, d.path(), &["-t", "ctxbind:1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        file_in(&r, "ctxbind:1", "/listing"),
        ".\n./.dockerignore\n./Dockerfile\n./logs\n./logs/keep.log\n./src\n./src/main.c\n./src/notes.txt\n"
    );
    assert_eq!(file_in(&r, "ctxbind:1", "/src-list"), "main.c\nnotes.txt\n");
    assert_eq!(file_in(&r, "ctxbind:1", "/rwctx"), "new\n");
    assert_eq!(file_in(&r, "ctxbind:1", "/after"), "int main;\n");
    assert_eq!(
        file_in(&r, "ctxbind:1", "/after-list"),
        ".dockerignore\nDockerfile\nlogs\nsrc\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("src/main.c")).unwrap(),
        "int main;\n",
        "the context is untouched"
    );
    assert!(d.path().join("Dockerfile").exists());
    let scratch: Vec<_> = std::fs::read_dir(r.path().join("tmp"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    assert!(
        scratch.is_empty(),
        "no scratch directory is left: {scratch:?}"
    );

    // An excluded file is no input of the step; a kept one is.
    write(d.path(), "src/private/key", "changed\n");
    let (code, out, err) = build(&r, d.path(), &["-t", "ctxbind:1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("Running in"), "all cached: {out}");
    write(d.path(), "src/notes.txt", "changed\n");
    let (code, out, err) = build(&r, d.path(), &["-t", "ctxbind:1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Running in"), "the mounts changed: {out}");

    // Excluded sources, and symlinks leaving the context, are not found in it.
    std::os::unix::fs::symlink("/etc", d.path().join("hostetc")).unwrap();
    for src in ["src/private/key", "secret.txt", "logs/old", "hostetc"] {
        write(
            d.path(),
            "Dockerfile",
            &format!("FROM busybox\nRUN --mount=type=bind,source={src},target=/x ls /x\n"),
        );
        let (code, out, err) = build(&r, d.path(), &["-t", "ctxbind:bad"]);
        assert_eq!(code, 1, "{src}: {out}{err}");
        assert!(
            err.contains(&format!("line 2: RUN --mount=type=bind: source={src}: not found in the build context or excluded by .dockerignore")),
            "{src}: {err}"
        );
    }
    r.ok(&["rmi", "ctxbind:1"]);
}

/// `--progress`: plain and auto print the steps, quiet only the image ID (as `-q`); BuildKit's
/// tty and rawjson displays are refused by name before anything is built.
#[test]
fn progress_plain_quiet_and_refused_displays() {
    let r = Root::with_busybox();
    let dir = ctx();
    write(
        dir.path(),
        "Dockerfile",
        "FROM busybox\nRUN echo built > /f\n",
    );
    let (code, out, err) = build(&r, dir.path(), &["--progress", "plain", "-t", "p:1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Step 2/2 : RUN echo built > /f"), "{out}");
    let (code, out, err) = build(&r, dir.path(), &["--progress=quiet"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("sha256:"), "{out}");
    for p in ["tty", "rawjson"] {
        let (code, out, err) = build(&r, dir.path(), &["--progress", p]);
        assert_eq!(code, 1, "{err}");
        assert!(out.is_empty(), "{out}");
        assert!(
            err.contains(&format!("--progress {p} is BuildKit's display")),
            "{err}"
        );
    }
    let (code, _, err) = build(&r, dir.path(), &["--progress", "fancy"]);
    assert_ne!(code, 0);
    assert!(err.contains("fancy"), "{err}");
    r.ok(&["rmi", "p:1"]);
}
