//! Helpers of the `hako build` tests: contexts in /var/tmp and builds with a chosen environment.

use std::path::Path;

use super::Root;

/// Writes `text` to `dir/name`, creating the directories on the way.
pub fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(p, text).unwrap();
}

/// A fresh build context directory, removed on drop.
pub fn ctx() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hako-build-ctx-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// `hako build ARGS CTX` with extra environment variables (and the caller's SSH_AUTH_SOCK
/// removed unless `env` gives one), returning (code, stdout, stderr).
pub fn build_env(
    r: &Root,
    ctx: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> (i32, String, String) {
    let mut a = vec!["build"];
    a.extend_from_slice(args);
    a.push(ctx.to_str().unwrap());
    let mut c = r.cmd(&a);
    c.env_remove("SSH_AUTH_SOCK");
    for (k, v) in env {
        c.env(k, v);
    }
    let o = c.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}
