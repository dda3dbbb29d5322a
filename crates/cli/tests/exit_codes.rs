//! Exit statuses and error lines, input by input, against the real Docker CLI on a private
//! dockerd: a usage error is 125 when a flag is wrong (unknown, no value, bad value) and 1
//! when arguments are missing or extra; `run` exits 125 for what the engine refuses, 126/127
//! for a command that cannot be run or found, and the command's own status otherwise; `create`
//! exits 125 for what Docker's CLI checks itself and 1 for what its daemon refuses; other
//! commands exit 1 on errors. Each case runs against both with the same state (a running
//! container `up`, a created one `stopped`, the busybox image, a volume `v1`), and the two
//! statuses must be equal; where a phrase is given, Docker's output and the first line hako
//! prints on stderr must both hold it, and hako's error must be one line plus at most a hint.

mod common;

use common::peers::Docker;
use common::{images_dir, Root};
use std::process::Output;

/// One input: the arguments, and a phrase both error messages hold ("" to check none).
type Case = (&'static [&'static str], &'static str);

const CASES: &[Case] = &[
    // The command line itself.
    (&[], ""),
    (&["nosuchcmd"], "nosuchcmd"),
    (&["--help"], ""),
    (&["-v"], ""),
    (&["--bogus"], "unknown flag: --bogus"),
    (&["image"], ""),
    (&["container"], ""),
    (&["network"], ""),
    (&["volume"], ""),
    (&["system"], ""),
    (&["image", "bogus"], ""),
    (&["network", "bogus"], ""),
    (&["volume", "bogus"], ""),
    // ps
    (&["ps", "--bogus"], "unknown flag: --bogus"),
    (&["ps", "-z"], "unknown shorthand flag: 'z' in -z"),
    (&["ps", "foo"], "accepts no arguments"),
    (
        &["ps", "--last", "x"],
        "invalid argument \"x\" for \"-n, --last\" flag",
    ),
    (&["ps", "-n"], "flag needs an argument: 'n' in -n"),
    (&["ps", "--last"], "flag needs an argument: --last"),
    (
        &["ps", "-f", "bogus"],
        "bad format of filter (expected name=value)",
    ),
    (&["ps", "-f", "bogus=1"], "filter 'bogus'"),
    (&["ps", "--format", "{{.Foo}}"], "Foo"),
    (
        &["ps", "-a", "-f", "name=nomatch", "--format", "{{.Foo}}"],
        "Foo",
    ),
    (&["ps", "--format", "{{"], "unclosed action"),
    (&["ps", "-a", "-q"], ""),
    // images
    (&["images", "a", "b"], "requires at most 1 argument"),
    (&["images", "--filter", "bogus"], "bad format of filter"),
    (&["images", "-f", "bogus=1"], "filter 'bogus'"),
    (&["images", "-f", "dangling=maybe"], "filter 'dangling="),
    (&["images", "--format", "{{.Foo}}"], "Foo"),
    (&["images", "--format", "{{"], "unclosed action"),
    // info, version, events
    (&["info", "extra"], "accepts no arguments"),
    (&["info", "--format", "{{.Foo}}"], "Foo"),
    (&["version", "extra"], "accepts no arguments"),
    (&["version", "--format", "{{.Foo}}"], "Foo"),
    (&["version", "--bogus"], "unknown flag: --bogus"),
    (&["events", "extra"], "accepts no arguments"),
    (&["events", "--since", "bogus"], "bogus"),
    // container lifecycle
    (&["rm"], "requires at least 1 argument"),
    (&["rm", "nosuch"], "No such container: nosuch"),
    (&["rm", "-f", "nosuch"], "No such container: nosuch"),
    (&["rm", "up"], "cannot remove a running container"),
    (&["rm", "-z", "x"], "unknown shorthand flag: 'z' in -z"),
    (&["start"], "requires at least 1 argument"),
    (&["start", "nosuch"], "No such container: nosuch"),
    (&["stop", "nosuch"], "No such container: nosuch"),
    (&["stop", "-t", "x", "up"], "invalid argument \"x\""),
    (&["stop", "--bogus", "up"], "unknown flag: --bogus"),
    (&["restart"], "requires at least 1 argument"),
    (&["restart", "nosuch"], "No such container: nosuch"),
    (&["kill", "nosuch"], "No such container: nosuch"),
    (&["kill", "-s", "BOGUS", "up"], "signal: BOGUS"),
    (&["kill", "stopped"], "is not running"),
    (&["pause", "stopped"], "is not running"),
    (&["unpause", "up"], "is not paused"),
    (&["wait"], "requires at least 1 argument"),
    (&["wait", "nosuch"], "No such container: nosuch"),
    (&["logs"], "1 argument"),
    (&["logs", "a", "b"], "1 argument"),
    (&["logs", "nosuch"], "No such container: nosuch"),
    (&["logs", "--since", "bogus", "up"], "bogus"),
    (&["rename"], "2 arguments"),
    (&["rename", "up"], "2 arguments"),
    (&["rename", "nosuch", "x"], "No such container: nosuch"),
    (&["rename", "up", "stopped"], "is already in use"),
    (&["diff"], "1 argument"),
    (&["diff", "nosuch"], "No such container: nosuch"),
    (&["top"], "requires at least 1 argument"),
    (&["top", "nosuch"], "No such container: nosuch"),
    (&["top", "stopped"], "is not running"),
    (&["port"], "requires at least 1 and at most 2 arguments"),
    (&["port", "nosuch"], "No such container: nosuch"),
    (&["port", "up", "80"], "No public port '80"),
    (&["cp"], "2 arguments"),
    (&["cp", "a"], "2 arguments"),
    (&["cp", "nosuch:/x", "/var/tmp/x"], "nosuch"),
    (&["cp", "up:/nosuch", "/var/tmp/x"], "/nosuch"),
    (&["commit"], "requires at least 1 and at most 2 arguments"),
    (&["commit", "nosuch"], "No such container: nosuch"),
    (&["update"], "requires at least 1 argument"),
    (&["update", "up"], "you must provide one or more flags"),
    (
        &["update", "--cpus", "x", "up"],
        "invalid argument \"x\" for \"--cpus\" flag",
    ),
    (
        &["update", "--cpus", "1", "nosuch"],
        "No such container: nosuch",
    ),
    (&["attach"], "1 argument"),
    (&["attach", "nosuch"], "No such container: nosuch"),
    (
        &["attach", "stopped"],
        "You cannot attach to a stopped container",
    ),
    (
        &["stats", "--no-stream", "nosuch"],
        "No such container: nosuch",
    ),
    (
        &["stats", "--no-stream", "--format", "{{.Foo}}", "up"],
        "Foo",
    ),
    // inspect
    (&["inspect"], "requires at least 1 argument"),
    (&["inspect", "nosuch"], "No such object: nosuch"),
    (&["image", "inspect", "nosuch"], "No such image: nosuch"),
    (&["inspect", "--format", "{{.Foo}}", "up"], "Foo"),
    (&["inspect", "--format", "{{", "up"], "unclosed action"),
    (&["inspect", "--type", "bogus", "up"], "\"bogus\""),
    (&["inspect", "--type", "image", "up"], "No such image: up"),
    (&["inspect", "-f", "{{.Os}}", "busybox"], ""),
    (&["inspect", "-f", "{{.Name}}", "v1"], ""),
    (
        &["container", "inspect", "--format", "{{", "up"],
        "unclosed action",
    ),
    (
        &["image", "inspect", "--format", "{{", "busybox"],
        "unclosed action",
    ),
    (
        &["volume", "inspect", "--format", "{{", "v1"],
        "unclosed action",
    ),
    (&["image", "inspect", "nosuch"], "No such image: nosuch"),
    // exec
    (&["exec"], "requires at least 2 arguments"),
    (&["exec", "up"], "requires at least 2 arguments"),
    (&["exec", "nosuch", "true"], "No such container: nosuch"),
    (&["exec", "stopped", "true"], "is not running"),
    (&["exec", "up", "/etc/passwd"], "permission denied"),
    // `-it` with an input that is not a terminal (these run with stdin on /dev/null).
    (
        &["exec", "-it", "up", "true"],
        "the input device is not a TTY",
    ),
    (
        &["run", "-it", "busybox", "true"],
        "the input device is not a TTY",
    ),
    (&["exec", "up", "sh", "-c", "exit 7"], ""),
    (
        &["exec", "-z", "up", "true"],
        "unknown shorthand flag: 'z' in -z",
    ),
    (
        &["exec", "-u", "nosuchuser", "up", "true"],
        "unable to find user nosuchuser",
    ),
    (
        &["exec", "-w", "relative", "up", "true"],
        "Cwd must be an absolute path",
    ),
    // images and registries
    (&["history"], "1 argument"),
    (&["history", "nosuch"], "No such image: nosuch"),
    (&["history", "--format", "{{.Foo}}", "busybox"], "Foo"),
    (&["save"], "requires at least 1 argument"),
    (&["save", "nosuch"], "No such image: nosuch"),
    (&["load", "extra"], "accepts no arguments"),
    (&["load", "-i", "/nonexistent"], "/nonexistent"),
    (&["import"], "requires at least 1"),
    (&["import", "/nonexistent"], "/nonexistent"),
    (&["export"], "1 argument"),
    (&["export", "nosuch"], "No such container: nosuch"),
    (&["tag"], "2 arguments"),
    (&["tag", "a"], "2 arguments"),
    (&["tag", "nosuch", "x"], "No such image: nosuch"),
    (&["tag", "busybox", "BAD:REF:x"], "must be lowercase"),
    (&["rmi"], "requires at least 1 argument"),
    (&["rmi", "busybox:nosuch"], "No such image: busybox:nosuch"),
    (&["rmi", "-f", "nosuch"], "No such image: nosuch"),
    (&["pull"], "1 argument"),
    (&["pull", "BAD::REF"], "must be lowercase"),
    (&["push"], "1 argument"),
    (
        &["push", "nosuchimage"],
        "An image does not exist locally with the tag: nosuchimage",
    ),
    (&["login", "a", "b"], "requires at most 1 argument"),
    (&["logout", "a", "b"], "requires at most 1 argument"),
    (&["build"], "1 argument"),
    (&["build", "a", "b"], "1 argument"),
    (
        &["build", "/nonexistent"],
        "path \"/nonexistent\" not found",
    ),
    // networks, volumes, system
    (&["network", "create"], "1 argument"),
    (&["network", "create", "a", "b"], "1 argument"),
    (
        &["network", "create", "--driver", "bogus", "n1"],
        "plugin \"bogus\" not found",
    ),
    (&["network", "rm"], "requires at least 1 argument"),
    (&["network", "rm", "nosuch"], "nosuch"),
    (&["network", "inspect", "nosuch"], "nosuch"),
    (&["network", "ls", "extra"], "accepts no arguments"),
    (&["network", "ls", "-f", "bogus=1"], "filter 'bogus'"),
    (&["network", "connect"], "2 arguments"),
    (
        &["network", "connect", "nosuch", "up"],
        "network nosuch not found",
    ),
    (
        &["volume", "create", "a", "b"],
        "requires at most 1 argument",
    ),
    (&["volume", "create", "--bogus"], "unknown flag: --bogus"),
    (&["volume", "rm"], "requires at least 1 argument"),
    (&["volume", "rm", "nosuch"], "such volume"),
    // -f: a missing volume is no error.
    (&["volume", "rm", "-f", "nosuch"], ""),
    (&["volume", "inspect", "nosuch"], "such volume"),
    (&["volume", "ls", "extra"], "accepts no arguments"),
    (&["volume", "ls", "-f", "bogus=1"], "filter 'bogus'"),
    (&["volume", "ls", "-f", "dangling=true", "-q"], ""),
    (&["system", "df", "extra"], "accepts no arguments"),
    (&["system", "df", "--format", "{{.Foo}}"], "Foo"),
    (&["system", "prune", "extra"], "accepts no arguments"),
    (
        &["system", "prune", "-z"],
        "unknown shorthand flag: 'z' in -z",
    ),
    (&["image", "prune", "extra"], "accepts no arguments"),
    (&["image", "inspect"], "requires at least 1 argument"),
    (&["image", "rm"], "requires at least 1 argument"),
    (&["image", "ls", "a", "b"], "requires at most 1 argument"),
    (&["container", "prune", "extra"], "accepts no arguments"),
    (&["container", "ls", "x"], "accepts no arguments"),
    (&["container", "rm"], "requires at least 1 argument"),
    // run
    (&["run"], "requires at least 1 argument"),
    (&["run", "--bogus", "busybox"], "unknown flag: --bogus"),
    (&["run", "-e"], "flag needs an argument: 'e' in -e"),
    (
        &["run", "--rm", "busybox", "nosuchcmd"],
        "executable file not found",
    ),
    (
        &["run", "--rm", "busybox", "/etc/passwd"],
        "permission denied",
    ),
    (&["run", "--rm", "busybox", "sh", "-c", "exit 3"], ""),
    (&["run", "--rm", "busybox", "sh", "-c", "kill -9 $$"], ""),
    (
        &["run", "--rm", "--pull", "never", "nosuch:1"],
        "No such image: nosuch:1",
    ),
    (
        &["run", "--rm", "-m", "bogus", "busybox", "true"],
        "invalid argument \"bogus\" for \"-m, --memory\" flag",
    ),
    (
        &["run", "--rm", "--cpus", "x", "busybox", "true"],
        "invalid argument \"x\" for \"--cpus\" flag",
    ),
    (
        &["run", "--rm", "--restart", "always", "busybox", "true"],
        "onflicting options",
    ),
    (
        &["run", "--rm", "--name", "up", "busybox", "true"],
        "is already in use",
    ),
    (
        &["run", "--rm", "-w", "relative", "busybox", "true"],
        "it needs to be an absolute path",
    ),
    (
        &["run", "--rm", "-u", "nosuchuser", "busybox", "true"],
        "unable to find user nosuchuser",
    ),
    (&["run", "--rm", "busybox"], "No command specified"),
    (&["run", "--rm", "-p", "bogus", "busybox", "true"], "bogus"),
    // create: Docker's CLI checks flags (125), its daemon the rest (1)
    (&["create"], "requires at least 1 argument"),
    (
        &["create", "-z", "busybox"],
        "unknown shorthand flag: 'z' in -z",
    ),
    (
        &["create", "--pull", "never", "nosuch:1"],
        "No such image: nosuch:1",
    ),
    (
        &["create", "--name", "up", "busybox", "true"],
        "is already in use",
    ),
    (
        &["create", "-w", "relative", "busybox", "true"],
        "it needs to be an absolute path",
    ),
    (
        &["create", "--restart", "bogus", "busybox", "true"],
        "invalid restart policy",
    ),
    (
        &["create", "-m", "bogus", "busybox", "true"],
        "invalid argument \"bogus\" for \"-m, --memory\" flag",
    ),
    (
        &["create", "--rm", "--restart", "always", "busybox", "true"],
        "onflicting options",
    ),
    (&["create", "-p", "bogus", "busybox", "true"], "bogus"),
    (&["create", "busybox"], "No command specified"),
];

/// Inputs where hako deliberately differs from the dockerd these tests start (20.10): the
/// arguments, Docker's status there, hako's, and why.
const DIFFERENCES: &[(&[&str], i32, i32, &str)] = &[
    (
        &["exec", "up", "nosuchcmd"],
        126,
        127,
        "dockerd 20.10 overwrites the runtime's 127 with 126 for every exec that fails to \
         start; hako reports a missing command as 127, as `run` does",
    ),
    (
        &["logs", "--tail", "x", "up"],
        0,
        1,
        "dockerd reads an unparsable --tail as `all`; hako refuses a value it would ignore",
    ),
    (
        &["run", "--rm", "--pull", "bogus", "busybox", "true"],
        0,
        125,
        "Docker 20.10's CLI ignores a --pull value it does not know; Docker 28 refuses it with \
         125, as hako does",
    ),
    (
        &["create", "--network", "nosuchnet", "busybox", "true"],
        0,
        1,
        "dockerd 20.10 looks the network up only at start; hako refuses the container at \
         create, as later Docker versions do",
    ),
];

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Docker prints some errors (an exec that cannot start) on stdout.
fn docker_said(o: &Output) -> String {
    let (out, err) = text(o);
    format!("{err}{out}")
}

#[test]
fn exit_codes_and_messages_match_docker() {
    let docker = Docker::start();
    let r = Root::with_busybox();
    let tar = images_dir().join("busybox.tar");
    docker.ok(&["import", tar.to_str().unwrap(), "busybox"]);
    for setup in [
        // Not `sleep 1000`: other suites find their containers by that command line.
        &["run", "-d", "--name", "up", "busybox", "sleep", "86399"][..],
        &["create", "--name", "stopped", "busybox", "true"],
        &["volume", "create", "v1"],
    ] {
        docker.ok(setup);
        r.ok(setup);
    }

    let mut failures = Vec::new();
    for (args, phrase) in CASES {
        let d = docker.docker(args);
        let h = r.hako(args);
        let (dc, hc) = (d.status.code(), h.status.code());
        let (_, herr) = text(&h);
        let what = format!(
            "{args:?}: docker {dc:?}, hako {hc:?}\n  docker: {}\n  hako: {}",
            docker_said(&d).trim(),
            herr.trim()
        );
        if dc != hc {
            failures.push(format!("exit status differs: {what}"));
            continue;
        }
        if phrase.is_empty() {
            continue;
        }
        let first = herr.lines().next().unwrap_or_default();
        if !docker_said(&d).contains(phrase) || !first.contains(phrase) {
            failures.push(format!("message without {phrase:?}: {what}"));
        }
        // Whatever printed it, an error names the program, as every other hako error does.
        if !first.starts_with("hako: ") {
            failures.push(format!("error without the hako: prefix: {what}"));
        }
        if hc != Some(0) && herr.trim().lines().count() > 2 {
            failures.push(format!("more than a line and a hint: {what}"));
        }
    }
    for (args, docker_code, hako_code, why) in DIFFERENCES {
        let d = docker.docker(args);
        let h = r.hako(args);
        let (dc, hc) = (d.status.code(), h.status.code());
        if dc != Some(*docker_code) || hc != Some(*hako_code) {
            failures.push(format!(
                "known difference changed ({why}): {args:?}: docker {dc:?} (was {docker_code}), hako {hc:?} (was {hako_code})\n  docker: {}\n  hako: {}",
                docker_said(&d).trim(),
                text(&h).1.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} inputs differ from Docker:\n{}",
        failures.len(),
        CASES.len() + DIFFERENCES.len(),
        failures.join("\n")
    );
    r.ok(&["rm", "-f", "up", "stopped"]);
    r.ok(&["volume", "rm", "v1"]);
}

/// How many times `stderr` says each OS error, at most: an error says its cause in its own
/// message or exposes it as its source, never both, so no cause is printed twice.
fn most_repeated_os_error(stderr: &str) -> usize {
    let mut counts = std::collections::BTreeMap::new();
    for part in stderr.split("(os error ").skip(1) {
        let code = part.split(')').next().unwrap_or_default();
        *counts.entry(code.to_string()).or_insert(0) += 1;
    }
    counts.into_values().max().unwrap_or(0)
}

/// A permission error and io errors, each through a chain of errors (the state root the
/// engine cannot create, a cgroup file the kernel refuses a value for): the cause appears
/// once, in one line that names what was being done.
#[test]
fn a_cause_is_printed_once() {
    use std::os::unix::fs::PermissionsExt;
    let r = Root::with_busybox();

    // A state root under a directory only root may enter, opened by an ordinary user (with
    // subordinate ids, so rootless hako gets as far as the root): EACCES.
    let locked = r.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let user = hako_testkit::user::TestUser::create();
    let denied = user
        .command(common::hako_bin())
        .arg("--root")
        .arg(locked.join("root"))
        .arg("ps")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&denied.stderr);
    assert_eq!(denied.status.code(), Some(1), "{err}");
    assert!(err.contains("Permission denied (os error 13)"), "{err}");
    assert!(
        err.contains(&locked.join("root").display().to_string()),
        "{err}"
    );
    assert_eq!(most_repeated_os_error(&err), 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // A state root under a file: ENOTDIR, for `run` (125) as for other commands (1).
    let file = r.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let root = file.join("root");
    for (args, code) in [(&["ps"][..], 1), (&["run", "--rm", "busybox", "true"], 125)] {
        let o = std::process::Command::new(common::hako_bin())
            .arg("--root")
            .arg(&root)
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(err.contains("Not a directory (os error 20)"), "{err}");
        assert_eq!(most_repeated_os_error(&err), 1, "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }

    // A value the kernel refuses for a cgroup file: the cgroup error wrapped by the runtime
    // and the engine says the kernel's words once.
    let (code, _, err) = r.run(&["run", "--rm", "--cpuset-cpus", "1023", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("1023"), "{err}");
    assert!(most_repeated_os_error(&err) <= 1, "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
