//! Docker's human-readable formats (`hako_docker::format`), and the times the CLI reads in the
//! user's local zone.

pub use hako_docker::format::{command_text, ellipsis, go_quote, human_binary_size, human_size};

/// Docker's `--since`/`--until`/`until=` times ([`hako_base::time::parse_timestamp`]), in
/// nanoseconds since the epoch; a time without a zone is the user's local time, as Docker's
/// client reads it.
pub fn parse_time(s: &str, now: i64) -> Result<i64, hako_base::time::Error> {
    hako_base::time::parse_timestamp(s, now, local_offset(now.div_euclid(1_000_000_000)))
}

/// Seconds east of UTC of the local time zone (`TZ`, `/etc/localtime`) at Unix time `secs`.
pub fn local_offset(secs: i64) -> i64 {
    let t = secs as libc::time_t;
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to overwrite.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; localtime_r is the reentrant variant.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return 0;
    }
    tm.tm_gmtoff
}

/// Docker's prune prompt: prints `warning` (with its own line break, or a space as `builder
/// prune` has it) and the question on stdout and reads the answer
/// from stdin, a terminal or not (`echo y | hako container prune` confirms, as with docker).
/// Only `y` or `yes`, in any case, confirms; an empty or closed stdin declines.
pub fn confirm(warning: &str) -> std::io::Result<bool> {
    use std::io::{BufRead, Write};
    let mut out = std::io::stdout().lock();
    write!(
        out,
        "WARNING! {warning}Are you sure you want to continue? [y/N] "
    )?;
    out.flush()?;
    drop(out);
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(is_yes(&answer))
}

fn is_yes(answer: &str) -> bool {
    let a = answer.trim();
    a.eq_ignore_ascii_case("y") || a.eq_ignore_ascii_case("yes")
}

/// Docker's refusal of `-it` (a terminal, and our input attached to it) when stdin is not a
/// terminal: raw mode and window sizes have nothing to act on, and docker stops before
/// creating anything.
pub fn require_terminal_stdin() -> anyhow::Result<()> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        Ok(())
    } else {
        Err(anyhow::anyhow!("the input device is not a TTY"))
    }
}

#[cfg(test)]
mod confirm_tests {
    #[test]
    fn only_y_or_yes_confirms() {
        for yes in ["y\n", "Y", " yes \n", "YES"] {
            assert!(super::is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "yy", "sure"] {
            assert!(!super::is_yes(no), "{no:?}");
        }
    }
}
