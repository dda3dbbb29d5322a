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
