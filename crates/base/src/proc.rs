//! Readers of `/proc/PID/stat`, which tell a recorded process from a later one that reuses its
//! pid, and a live process from a zombie.

/// What hako reads from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// Field 3: `R`, `S`, `D`, `Z`, ...
    pub state: char,
    /// Field 20: the number of threads.
    pub threads: u64,
    /// Field 22: the start time in clock ticks after boot.
    pub start_time: u64,
}

impl Stat {
    /// Whether the process has exited and waits to be reaped (`Z`), or is being reaped (`X`).
    pub fn exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X')
    }
}

/// Parses the text of a `/proc/PID/stat` file.
pub fn parse_stat(text: &str) -> Option<Stat> {
    // The command name (field 2) is in parentheses and may hold spaces and parentheses
    // itself; the fields after its last `)` hold neither.
    let mut fields = text[text.rfind(')')? + 1..].split_whitespace();
    let state = fields.next()?.chars().next()?;
    // `state` was field 3; num_threads is field 20 and starttime field 22.
    let threads = fields.nth(16)?.parse().ok()?;
    let start_time = fields.nth(1)?.parse().ok()?;
    Some(Stat {
        state,
        threads,
        start_time,
    })
}

/// The stat of process `pid`; `None` once it is gone (reaped).
pub fn stat(pid: i32) -> Option<Stat> {
    if pid <= 0 {
        return None;
    }
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// This process's stat.
pub fn stat_self() -> Option<Stat> {
    parse_stat(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// The start time of process `pid`, to tell it from a later process reusing its pid; `None`
/// once it has exited. A zombie has exited: its stat still reads until its parent reaps it,
/// which a stopped parent or an init that reaps lazily may never do, and a container whose
/// process is a zombie must count as stopped.
pub fn start_time(pid: i32) -> Option<u64> {
    stat(pid).filter(|s| !s.exited()).map(|s| s.start_time)
}

/// Whether the process recorded as `pid` with start time `start` still runs: the same process,
/// not a later one with its pid, and not a zombie.
pub fn alive(pid: i32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

/// Whether some live (not zombie) process has pid `pid`.
pub fn exists(pid: i32) -> bool {
    stat(pid).is_some_and(|s| !s.exited())
}

/// The host's memory in bytes (`MemTotal` of `/proc/meminfo`); 0 when it cannot be read.
pub fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| parse_mem_total(&m))
        .unwrap_or(0)
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_lines() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 3 0 \
                    987654 1000 100 18446744073709551615";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.threads, 3);
        assert_eq!(s.start_time, 987_654);
        assert!(!s.exited());
        let zombie = line.replace(") S ", ") Z ");
        assert!(parse_stat(&zombie).unwrap().exited());
        assert_eq!(parse_stat("4242 (cut) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn this_process() {
        let me = std::process::id() as i32;
        let s = stat(me).unwrap();
        assert!(s.threads >= 1);
        assert_eq!(stat_self().unwrap().start_time, s.start_time);
        assert!(alive(me, s.start_time));
        assert!(!alive(me, s.start_time + 1));
        assert!(exists(me));
        assert_eq!(start_time(0), None);
        assert_eq!(start_time(-1), None);
        assert_eq!(start_time(i32::MAX), None);
    }

    #[test]
    fn memory() {
        let text = "MemTotal:        4026476 kB\nMemFree:          123 kB\n";
        assert_eq!(parse_mem_total(text), Some(4_026_476 * 1024));
        assert_eq!(parse_mem_total("MemFree: 1 kB\n"), None);
        assert!(mem_total() > 0);
    }

    #[test]
    fn a_zombie_is_not_alive() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Not reaped yet: its stat reads, in state Z, once it has exited.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !stat(pid).unwrap().exited() {
            assert!(std::time::Instant::now() < deadline, "child never exited");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(start_time(pid), None);
        assert!(!exists(pid));
        child.wait().unwrap();
        assert_eq!(stat(pid), None);
    }
}
