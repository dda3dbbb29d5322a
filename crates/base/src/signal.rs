//! One signal table, with Docker's reading of signal names: `KILL`, `SIGKILL`, `sigkill`, `9`,
//! `RTMIN+3`.
//!
//! The numbers are Linux's on every architecture hako builds for (x86, Arm, RISC-V, PowerPC,
//! s390x, LoongArch); MIPS, SPARC and Alpha number signals differently and are refused at
//! compile time. A unit test checks the table against the C library.

#[cfg(any(
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc",
    target_arch = "sparc64"
))]
compile_error!("hako_base::signal's table holds the generic Linux signal numbers");

/// The lowest real-time signal a program may use: glibc and musl keep 32 and 33 for
/// themselves, and Docker's `RTMIN` is 34 too.
pub const SIGRTMIN: i32 = 34;
/// The highest signal number.
pub const SIGRTMAX: i32 = 64;

/// Names (without `SIG`) and numbers; the first name of a number is the one printed.
const TABLE: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("POLL", 29),
    ("PWR", 30),
    ("SYS", 31),
    ("UNUSED", 31),
];

/// Reads a signal as Docker does: a number from 1 to 64, or a name with or without `SIG`, in
/// any case, including `RTMIN`, `RTMIN+n` and `RTMAX-n` (n ≤ 30). `None` for anything else.
pub fn parse(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=SIGRTMAX).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some(&(_, n)) = TABLE.iter().find(|(k, _)| *k == name) {
        return Some(n);
    }
    let rt = |rest: &str, base: i32, sign: i32| -> Option<i32> {
        if rest.is_empty() {
            return Some(base);
        }
        let (op, k) = rest.split_at(1);
        let k: i32 = k.parse().ok().filter(|_| !k.starts_with('+'))?;
        let want = if sign > 0 { "+" } else { "-" };
        (op == want && (1..=SIGRTMAX - SIGRTMIN).contains(&k)).then_some(base + sign * k)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(rest, SIGRTMIN, 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(rest, SIGRTMAX, -1);
    }
    None
}

/// The name of signal `n` with its `SIG` prefix (`SIGKILL`, `SIGRTMIN+3`), as Docker prints
/// signals; `None` outside 1 to 64 and for 32 and 33.
pub fn name(n: i32) -> Option<String> {
    if let Some((k, _)) = TABLE.iter().find(|(_, v)| *v == n) {
        return Some(format!("SIG{k}"));
    }
    match n {
        SIGRTMIN => Some("SIGRTMIN".into()),
        SIGRTMAX => Some("SIGRTMAX".into()),
        n if n > SIGRTMIN && n < SIGRTMAX => Some(format!("SIGRTMIN+{}", n - SIGRTMIN)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        for s in ["KILL", "SIGKILL", "sigkill", "Kill", "9"] {
            assert_eq!(parse(s), Some(9), "{s}");
        }
        assert_eq!(parse("TERM"), Some(15));
        assert_eq!(parse("sigusr1"), Some(10));
        assert_eq!(parse("IOT"), Some(6));
        assert_eq!(parse("RTMIN"), Some(34));
        assert_eq!(parse("RTMIN+3"), Some(37));
        assert_eq!(parse("SIGRTMIN+30"), Some(64));
        assert_eq!(parse("RTMAX"), Some(64));
        assert_eq!(parse("rtmax-2"), Some(62));
        assert_eq!(parse("64"), Some(64));
        for bad in [
            "", "0", "65", "-9", "SIG", "FOO", "SIGKILLX", "RTMIN+0", "RTMIN+31", "RTMIN-1",
            "RTMAX+1", "RTMIN+", "RTMIN++3", "RTMIN+x", " 9", "SIG 9",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn printed_names() {
        assert_eq!(name(9).as_deref(), Some("SIGKILL"));
        assert_eq!(name(6).as_deref(), Some("SIGABRT"));
        assert_eq!(name(17).as_deref(), Some("SIGCHLD"));
        assert_eq!(name(34).as_deref(), Some("SIGRTMIN"));
        assert_eq!(name(37).as_deref(), Some("SIGRTMIN+3"));
        assert_eq!(name(64).as_deref(), Some("SIGRTMAX"));
        assert_eq!(name(32), None);
        assert_eq!(name(0), None);
        assert_eq!(name(65), None);
        for n in (1..=31).chain(34..=64) {
            assert_eq!(parse(&name(n).unwrap()), Some(n), "{n}");
        }
    }

    /// The table is the C library's on this architecture.
    #[test]
    fn numbers_are_the_c_librarys() {
        let c = [
            ("HUP", libc::SIGHUP),
            ("INT", libc::SIGINT),
            ("QUIT", libc::SIGQUIT),
            ("ILL", libc::SIGILL),
            ("TRAP", libc::SIGTRAP),
            ("ABRT", libc::SIGABRT),
            ("IOT", libc::SIGIOT),
            ("BUS", libc::SIGBUS),
            ("FPE", libc::SIGFPE),
            ("KILL", libc::SIGKILL),
            ("USR1", libc::SIGUSR1),
            ("SEGV", libc::SIGSEGV),
            ("USR2", libc::SIGUSR2),
            ("PIPE", libc::SIGPIPE),
            ("ALRM", libc::SIGALRM),
            ("TERM", libc::SIGTERM),
            ("STKFLT", libc::SIGSTKFLT),
            ("CHLD", libc::SIGCHLD),
            ("CONT", libc::SIGCONT),
            ("STOP", libc::SIGSTOP),
            ("TSTP", libc::SIGTSTP),
            ("TTIN", libc::SIGTTIN),
            ("TTOU", libc::SIGTTOU),
            ("URG", libc::SIGURG),
            ("XCPU", libc::SIGXCPU),
            ("XFSZ", libc::SIGXFSZ),
            ("VTALRM", libc::SIGVTALRM),
            ("PROF", libc::SIGPROF),
            ("WINCH", libc::SIGWINCH),
            ("IO", libc::SIGIO),
            ("POLL", libc::SIGPOLL),
            ("PWR", libc::SIGPWR),
            ("SYS", libc::SIGSYS),
        ];
        for (k, n) in c {
            assert_eq!(parse(k), Some(n), "{k}");
        }
        assert_eq!(
            TABLE.len(),
            c.len() + 2,
            "CLD and UNUSED are the only names not checked"
        );
        assert_eq!(libc::SIGRTMIN(), SIGRTMIN);
        assert_eq!(libc::SIGRTMAX(), SIGRTMAX);
    }
}
