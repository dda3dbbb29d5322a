//! Ordinary users for rootless tests: each test creates its own account with `useradd`, gives
//! it subordinate id ranges in /etc/subuid and /etc/subgid (or not, to test that error), runs
//! commands as it, and removes all of that on drop. Accounts that a killed test run left behind
//! (their name carries the creating pid) are removed by the next one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use nix::fcntl::{Flock, FlockArg};

/// Where the accounts' home directories live: private to the suite, never a real /home.
const HOMES: &str = "/var/tmp/hako-test-users";
/// Subordinate ranges handed out start here, far above what distributions give real users
/// (100000 + 65536·n), so a test never overlaps an account of the machine.
const RANGE_BASE: u64 = 1_000_000_000;
const PREFIX: &str = "hakot";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Serialises edits of /etc/subuid and /etc/subgid between test processes (useradd locks
/// /etc/passwd for itself, but not those files for us).
fn lock() -> Flock<File> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/lock/hako-testkit-users.lock")
        .expect("open the test users' lock file");
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock the test users' lock file")
}

/// The subordinate ranges a test user gets.
#[derive(Clone, Copy, Debug)]
pub enum SubIds {
    /// No entry in /etc/subuid or /etc/subgid.
    None,
    /// A range of this many ids, in both files.
    Count(u64),
}

/// An account that exists for one test.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
    /// The first subordinate id, when the user has a range.
    pub subid_start: Option<u64>,
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The pid a test account's name carries (`hakot<pid>x<n>`).
fn creator_pid(name: &str) -> Option<u32> {
    name.strip_prefix(PREFIX)?.split('x').next()?.parse().ok()
}

fn subid_lines(file: &str) -> Vec<String> {
    fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_subids(file: &str, lines: &[String]) {
    let mut text = lines.join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    let tmp = format!("{file}.hakot");
    fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {tmp}: {e}"));
    fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
    fs::rename(&tmp, file).unwrap_or_else(|e| panic!("replace {file}: {e}"));
}

fn drop_subids(name: &str) {
    for file in ["/etc/subuid", "/etc/subgid"] {
        let lines = subid_lines(file);
        let kept: Vec<String> = lines
            .iter()
            .filter(|l| l.split(':').next() != Some(name))
            .cloned()
            .collect();
        if kept.len() != lines.len() {
            write_subids(file, &kept);
        }
    }
}

fn userdel(name: &str) {
    // The account's processes are the test's to stop; a leftover one would make userdel refuse.
    let _ = Command::new("pkill").args(["-KILL", "-u", name]).status();
    let _ = Command::new("userdel").args(["-r", "-f", name]).output();
    let _ = fs::remove_dir_all(Path::new(HOMES).join(name));
}

/// Removes the accounts (and their ranges) of test runs whose process is gone.
fn sweep_stale() {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    for name in passwd.lines().filter_map(|l| l.split(':').next()) {
        if let Some(pid) = creator_pid(name) {
            if !pid_alive(pid) {
                userdel(name);
                drop_subids(name);
            }
        }
    }
}

/// The lowest start at or above RANGE_BASE that overlaps no range in either file.
fn free_range(count: u64) -> u64 {
    let mut taken: Vec<(u64, u64)> = Vec::new();
    for file in ["/etc/subuid", "/etc/subgid"] {
        for line in subid_lines(file) {
            let mut f = line.split(':').skip(1);
            if let (Some(Ok(s)), Some(Ok(n))) = (
                f.next().map(str::parse::<u64>),
                f.next().map(str::parse::<u64>),
            ) {
                taken.push((s, s + n));
            }
        }
    }
    taken.sort_unstable();
    let mut start = RANGE_BASE;
    for (s, e) in taken {
        if s < start + count && start < e {
            start = e.next_multiple_of(65536);
        }
    }
    start
}

impl TestUser {
    /// A new account with a 65536-id range, the usual grant.
    pub fn create() -> TestUser {
        TestUser::with_subids(SubIds::Count(65536))
    }

    pub fn with_subids(subids: SubIds) -> TestUser {
        let _guard = lock();
        sweep_stale();
        let name = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        fs::create_dir_all(HOMES).unwrap();
        fs::set_permissions(HOMES, fs::Permissions::from_mode(0o755)).unwrap();
        let home = Path::new(HOMES).join(&name);
        let out = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", "--home-dir"])
            .arg(&home)
            .arg("--no-user-group")
            .args(["--gid", "users"])
            .arg(&name)
            .output()
            .expect("run useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // useradd may add ranges of its own (login.defs SUB_UID_COUNT); only ours may stay.
        drop_subids(&name);
        let subid_start = match subids {
            SubIds::None => None,
            SubIds::Count(count) => {
                let start = free_range(count);
                for file in ["/etc/subuid", "/etc/subgid"] {
                    let mut lines = subid_lines(file);
                    lines.push(format!("{name}:{start}:{count}"));
                    write_subids(file, &lines);
                }
                Some(start)
            }
        };
        let ids = |flag: &str| -> u32 {
            let out = Command::new("id").args([flag, &name]).output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        let (uid, gid) = (ids("-u"), ids("-g"));
        TestUser {
            name,
            uid,
            gid,
            home,
            subid_start,
        }
    }

    /// The user's runtime directory, created as a login session would (0700, owned by the user).
    pub fn runtime_dir(&self) -> PathBuf {
        let dir = self.home.join(".run");
        if !dir.exists() {
            fs::create_dir(&dir).unwrap();
            nix::unistd::chown(&dir, Some(self.uid.into()), Some(self.gid.into())).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();
        }
        dir
    }

    /// `program` as this user, with the environment a login gives (HOME, USER, PATH,
    /// XDG_RUNTIME_DIR) and nothing of the test's own (no HAKO_ROOT, no root's XDG dirs).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .current_dir(&self.home)
            .uid(self.uid)
            .gid(self.gid);
        cmd
    }

    /// Runs `program args…` as this user and returns what it printed.
    pub fn run(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
        self.command(program)
            .args(args)
            .output()
            .expect("start a command as the test user")
    }

    /// Writes a file the user owns (e.g. a Dockerfile in its home).
    pub fn write_file(&self, rel: &str, contents: &[u8]) -> PathBuf {
        let path = self.home.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        let mut f = File::create(&path).unwrap();
        f.write_all(contents).unwrap();
        nix::unistd::chown(&path, Some(self.uid.into()), Some(self.gid.into())).unwrap();
        path
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _guard = lock();
        userdel(&self.name);
        drop_subids(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_test_user_exists_with_its_range_and_is_gone_after_drop() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("skipped: creating accounts needs root");
            return;
        }
        let name;
        {
            let u = TestUser::create();
            name = u.name.clone();
            let start = u.subid_start.unwrap();
            assert!(fs::read_to_string("/etc/subuid")
                .unwrap()
                .contains(&format!("{name}:{start}:65536")));
            let out = u.run("id", &["-u"]);
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                u.uid.to_string()
            );
            assert_ne!(u.uid, 0);
            let other = TestUser::with_subids(SubIds::None);
            assert!(!fs::read_to_string("/etc/subgid")
                .unwrap()
                .contains(&format!("{}:", other.name)));
        }
        assert!(!fs::read_to_string("/etc/passwd")
            .unwrap()
            .contains(&format!("\n{name}:")));
        assert!(!fs::read_to_string("/etc/subuid").unwrap().contains(&name));
    }

    #[test]
    fn the_creator_pid_is_read_back_from_the_name() {
        assert_eq!(creator_pid("hakot123x4"), Some(123));
        assert_eq!(creator_pid("hako"), None);
        assert_eq!(creator_pid("alice"), None);
    }
}
