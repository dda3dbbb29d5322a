//! `run -t` and `exec -t` end to end, under a real terminal made by `script` (util-linux): the
//! container's terminal comes from its own devpts, so `tty` names a `/dev/pts/N` that exists
//! inside the container, and what is typed reaches the program.

mod common;

use common::Root;
use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `hako ARGS` on a new terminal of `rows`x`cols` made by `script`, feeding it `input`;
/// returns (exit code, what the terminal showed).
fn on_terminal(r: &Root, args: &[&str], input: &str) -> (i32, String) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut cmd = format!("stty rows 40 cols 100; exec {}", quote(common::hako_bin()));
    for a in args {
        cmd.push(' ');
        cmd.push_str(&quote(a));
    }
    let mut child = Command::new("timeout")
        .args(["60", "script", "-qec", &cmd, "/dev/null"])
        .env("HAKO_ROOT", r.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script (util-linux)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(code, 124, "timed out; the terminal showed: {shown}");
    (code, shown)
}

const SHOW_TTY: &str =
    "tty; test -c \"$(tty)\" && echo EXISTS; stty size; readlink /proc/self/fd/0";

#[test]
fn run_t_gets_a_terminal_of_the_containers_devpts() {
    let r = Root::with_busybox();
    let (code, shown) = on_terminal(
        &r,
        &["run", "--rm", "-t", "busybox", "sh", "-c", SHOW_TTY],
        "",
    );
    assert_eq!(code, 0, "{shown}");
    let lines: Vec<&str> = shown.lines().map(str::trim_end).collect();
    assert_eq!(
        lines,
        ["/dev/pts/0", "EXISTS", "40 100", "/dev/pts/0"],
        "{shown}"
    );
}

#[test]
fn typed_input_reaches_an_interactive_shell() {
    let r = Root::with_busybox();
    // The shell's answer (42) differs from the typed text, which the terminal echoes.
    let (code, shown) = on_terminal(
        &r,
        &["run", "--rm", "-it", "busybox", "sh", "-i"],
        "echo typed-$((6*7)); tty\nexit 3\n",
    );
    assert_eq!(code, 3, "{shown}");
    assert!(shown.contains("typed-42"), "{shown}");
    assert!(shown.contains("/dev/pts/0"), "{shown}");
}

#[test]
fn exec_t_gets_a_terminal_of_the_containers_devpts() {
    let r = Root::with_busybox();
    r.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let (code, shown) = on_terminal(&r, &["exec", "-t", "box", "sh", "-c", SHOW_TTY], "");
    assert_eq!(code, 0, "{shown}");
    let lines: Vec<&str> = shown.lines().map(str::trim_end).collect();
    assert_eq!(
        lines,
        ["/dev/pts/0", "EXISTS", "40 100", "/dev/pts/0"],
        "{shown}"
    );
    let (code, shown) = on_terminal(
        &r,
        &["exec", "-it", "box", "sh", "-i"],
        "echo typed-$((6*7))\nexit 4\n",
    );
    assert_eq!(code, 4, "{shown}");
    assert!(shown.contains("typed-42"), "{shown}");
    r.ok(&["rm", "-f", "box"]);
}

/// Like `on_terminal`, but types `first`, waits until `ready()` holds (so hako has put the
/// terminal in raw mode, where control keys are no longer the line discipline's), then types
/// `then`.
fn on_terminal_in_steps(
    r: &Root,
    args: &[&str],
    first: &str,
    ready: impl FnMut() -> bool,
    then: &str,
) -> (i32, String) {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut cmd = format!("stty rows 40 cols 100; exec {}", quote(common::hako_bin()));
    for a in args {
        cmd.push(' ');
        cmd.push_str(&quote(a));
    }
    let mut child = Command::new("timeout")
        .args(["60", "script", "-qec", &cmd, "/dev/null"])
        .env("HAKO_ROOT", r.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script (util-linux)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(first.as_bytes()).unwrap();
    stdin.flush().unwrap();
    assert!(common::wait_for(20, ready), "never ready");
    stdin.write_all(then.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(code, 124, "timed out; the terminal showed: {shown}");
    (code, shown)
}

#[test]
fn run_dit_keeps_the_terminal_for_attach_detach_keys_and_resize() {
    let r = Root::with_busybox();
    r.ok(&["run", "-dit", "--name", "tt", "busybox", "sh"]);
    let logs = || r.ok(&["logs", "tt"]);
    // ctrl-p ctrl-q detaches; what was typed before it ran, on a terminal of our size.
    let (code, shown) = on_terminal_in_steps(
        &r,
        &["attach", "tt"],
        "echo hi-$((40+2)); stty size\r",
        || logs().contains("40 100"),
        "\x10\x11",
    );
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("hi-42"), "{shown}");
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.State.Status}}", "tt"]),
        "running\n"
    );
    // Custom keys; ctrl-p ctrl-q are ordinary keys then (the shell gets them, and a newline).
    let (code, shown) = on_terminal_in_steps(
        &r,
        &["attach", "--detach-keys", "ctrl-a,d", "tt"],
        "echo second-$((1+1))\r",
        || logs().contains("second-2"),
        "\x10\x11\x03echo third\r\x01d",
    );
    assert_eq!(code, 0, "{shown}");
    assert!(
        common::wait_for(10, || logs().contains("third")),
        "{}",
        logs()
    );
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.State.Status}}", "tt"]),
        "running\n"
    );
    // Re-attached once more, the shell's exit ends the attach with its status.
    let (code, shown) = on_terminal(&r, &["attach", "tt"], "exit 5\r");
    assert_eq!(code, 5, "{shown}");
    assert_eq!(
        r.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            "tt"
        ]),
        "exited 5\n"
    );
    let (code, _, err) = r.run(&["attach", "--detach-keys", "alt-x", "tt"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Invalid detach keys (alt-x) provided"),
        "{err}"
    );
    r.ok(&["rm", "tt"]);
}

#[test]
fn run_it_detaches_with_ctrl_p_ctrl_q_and_keeps_exit_codes() {
    let r = Root::with_busybox();
    // A command that ends at once still reports its status (and --rm removes it).
    let (code, shown) = on_terminal(
        &r,
        &["run", "--rm", "-it", "busybox", "sh", "-c", "exit 3"],
        "",
    );
    assert_eq!(code, 3, "{shown}");
    assert_eq!(r.ok(&["ps", "-aq"]), "");
    let logs = || {
        let (_, out, _) = r.run(&["logs", "bg"]);
        out
    };
    let (code, shown) = on_terminal_in_steps(
        &r,
        &["run", "--name", "bg", "-it", "busybox", "sh"],
        "echo up-$((3*3))\r",
        || logs().contains("up-9"),
        "\x10\x11",
    );
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("up-9"), "{shown}");
    assert_eq!(
        r.ok(&["inspect", "-f", "{{.State.Status}}", "bg"]),
        "running\n"
    );
    let (code, shown) = on_terminal(&r, &["attach", "bg"], "exit 4\r");
    assert_eq!(code, 4, "{shown}");
    r.ok(&["rm", "bg"]);
}

/// Without -t the container's standard streams are pipes that hako copies, never the caller's
/// terminal, for `run` and `exec` alike: with the terminal itself, a process with
/// CAP_SYS_ADMIN could type into the user's shell (TIOCSTI), and any could change its modes.
#[test]
fn without_t_the_container_never_holds_the_callers_terminal() {
    let r = Root::with_busybox();
    r.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"]);
    let show = "for f in 0 1 2; do readlink /proc/self/fd/$f; done; test -t 0 || test -t 1 || echo NO-TERMINAL";
    for args in [
        vec!["run", "--rm", "-i", "busybox", "sh", "-c", show],
        vec!["exec", "-i", "box", "sh", "-c", show],
    ] {
        let (code, shown) = on_terminal(&r, &args, "");
        assert_eq!(code, 0, "{args:?}: {shown}");
        let lines: Vec<&str> = shown.lines().map(str::trim_end).collect();
        assert_eq!(lines.len(), 4, "{args:?}: {shown}");
        for l in &lines[..3] {
            assert!(l.starts_with("pipe:"), "{args:?}: {shown}");
        }
        assert_eq!(lines[3], "NO-TERMINAL", "{args:?}: {shown}");
    }
    r.ok(&["rm", "-f", "box"]);
}
