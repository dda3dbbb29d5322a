//! `ADD` of a git repository (`https://host/repo.git#ref:subdir`, `git@host:repo.git`,
//! `git://`, `ssh://`): the host's `git` fetches the commit into a temporary directory, whose
//! files are then copied like a context directory's.

use std::path::Path;
use std::process::{Command, Stdio};

/// A git source of ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitSource {
    /// What `git fetch` is given.
    pub url: String,
    /// The branch, tag or commit (`#ref`); None for the remote's HEAD.
    pub reference: Option<String>,
    /// `#ref:subdir`: the directory of the repository to copy, cleaned and relative.
    pub subdir: String,
}

/// The ADD source `s` as a git repository, if it names one: BuildKit's forms (`git://`,
/// `git@host:path`, `ssh://`, and `http(s)://` URLs whose path ends in `.git`), with an
/// optional `#ref[:subdir]`. Errors for a subdir that leaves the repository.
pub fn parse(s: &str) -> Option<Result<GitSource, String>> {
    let (url, fragment) = match s.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (s, None),
    };
    let is_git = url.starts_with("git://")
        || url.starts_with("ssh://")
        || (url.starts_with("git@") && url.contains(':'))
        || ((url.starts_with("https://") || url.starts_with("http://"))
            && url.split('?').next().unwrap_or(url).ends_with(".git"));
    if !is_git {
        return None;
    }
    let (reference, subdir) = match fragment {
        None => (None, ""),
        Some(f) => {
            let (r, d) = f.split_once(':').unwrap_or((f, ""));
            ((!r.is_empty()).then(|| r.to_string()), d)
        }
    };
    if let Some(r) = &reference {
        // A ref starting with `-` would be taken for an option of git.
        if r.starts_with('-') || r.contains(char::is_whitespace) {
            return Some(Err(format!("invalid git reference {r:?}")));
        }
    }
    let Some(subdir) = crate::context::clean_rel(subdir) else {
        return Some(Err(format!(
            "subdirectory {subdir:?} is outside the repository"
        )));
    };
    Some(Ok(GitSource {
        url: url.to_string(),
        reference,
        subdir,
    }))
}

/// A fetched checkout.
pub struct Checkout {
    /// The temporary directory holding the work tree (removed when dropped).
    pub dir: tempfile::TempDir,
    /// The commit checked out.
    pub commit: String,
}

/// Fetches `src` into a new directory under `tmp` (named `<pid>-git-…`, so that the store
/// sweeps it if the build dies), checked out at its ref with submodules, without `.git`
/// unless `keep_git_dir`. `ssh_auth_sock` is the agent for `git@`/`ssh://` URLs.
pub fn fetch(
    src: &GitSource,
    tmp: &Path,
    keep_git_dir: bool,
    ssh_auth_sock: Option<&Path>,
) -> Result<Checkout, String> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("{}-git-", std::process::id()))
        .tempdir_in(tmp)
        .map_err(|e| format!("create a directory in {}: {e}", tmp.display()))?;
    let work = dir.path();
    let git = |args: &[&str]| -> Result<String, String> {
        let mut c = Command::new("git");
        c.arg("-C")
            .arg(work)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Never wait for a password or a host key answer: fail instead.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
        match ssh_auth_sock {
            Some(s) => c.env("SSH_AUTH_SOCK", s),
            None => c.env_remove("SSH_AUTH_SOCK"),
        };
        let out = c.output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                "git is not installed on this host (hako build runs it for git sources)".to_string()
            } else {
                format!("run git: {e}")
            }
        })?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!("git {}: {}", args[0], last.trim()));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    git(&["init", "-q"])?;
    git(&["remote", "add", "origin", &src.url])?;
    let reference = src.reference.as_deref().unwrap_or("HEAD");
    let shallow = git(&["fetch", "-q", "--depth=1", "--no-tags", "origin", reference]);
    let target = match shallow {
        Ok(_) => "FETCH_HEAD".to_string(),
        // A commit id a server does not serve by name: fetch everything, then look it up.
        Err(_) if reference.len() >= 7 && reference.bytes().all(|b| b.is_ascii_hexdigit()) => {
            git(&[
                "fetch",
                "-q",
                "--tags",
                "origin",
                "+refs/heads/*:refs/remotes/origin/*",
            ])?;
            reference.to_string()
        }
        Err(e) => return Err(e),
    };
    git(&[
        "-c",
        "advice.detachedHead=false",
        "checkout",
        "-q",
        "--detach",
        &target,
    ])?;
    if work.join(".gitmodules").exists() {
        git(&[
            "submodule",
            "update",
            "-q",
            "--init",
            "--recursive",
            "--depth=1",
        ])?;
    }
    let commit = git(&["rev-parse", "HEAD"])?;
    if !keep_git_dir {
        let dotgit = work.join(".git");
        std::fs::remove_dir_all(&dotgit)
            .map_err(|e| format!("remove {}: {e}", dotgit.display()))?;
    }
    Ok(Checkout { dir, commit })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls() {
        let p = |s: &str| parse(s).map(|r| r.unwrap());
        assert_eq!(
            p("https://example.com/a/repo.git#v1.2:docs/site"),
            Some(GitSource {
                url: "https://example.com/a/repo.git".into(),
                reference: Some("v1.2".into()),
                subdir: "docs/site".into(),
            })
        );
        assert_eq!(
            p("git@github.com:moby/buildkit.git"),
            Some(GitSource {
                url: "git@github.com:moby/buildkit.git".into(),
                reference: None,
                subdir: String::new(),
            })
        );
        let g = p("git://127.0.0.1:9418/r.git#main").unwrap();
        assert_eq!(
            (g.reference.as_deref(), g.subdir.as_str()),
            (Some("main"), "")
        );
        let g = p("ssh://git@host/r#:sub/").unwrap();
        assert_eq!((g.reference, g.subdir.as_str()), (None, "sub"));
        // Plain downloads and local paths are not git sources.
        assert_eq!(p("https://example.com/file.tar.gz"), None);
        assert_eq!(p("repo.git"), None);
        assert_eq!(p("file:///srv/repo.git"), None);
        assert!(parse("https://h/r.git#main:../../etc").unwrap().is_err());
        assert!(parse("https://h/r.git#--upload-pack=x").unwrap().is_err());
    }
}
