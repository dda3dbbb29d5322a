//! What `docker build PATH` reads before the first step: the context (a directory, or a tar
//! or a Dockerfile on standard input), its `.dockerignore`, and the Dockerfile (`-f`, `-f -`,
//! or `PATH/Dockerfile`). Every front end prepares a build this way; the API server passes its
//! request body as the input stream.

use crate::context::Context;
use crate::ignore::Ignore;
use crate::Error;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A prepared build input: the Dockerfile's text and the walked context. A context that came
/// as a tar is unpacked under the state root's `tmp/` and removed when this is dropped.
pub struct Prepared {
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The walked context (empty for a Dockerfile given alone).
    pub context: Context,
    /// The unpacked directory of a tar context, kept until the build is done.
    _unpacked: Option<tempfile::TempDir>,
}

fn read_dockerfile(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(Error::io(format!(
        "unable to prepare context: unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
        path.display()
    )))
}

fn read_stdin_dockerfile(input: &mut dyn Read) -> Result<String, Error> {
    let mut s = String::new();
    input
        .read_to_string(&mut s)
        .map_err(Error::io("read the Dockerfile from stdin"))?;
    Ok(s)
}

/// Prepares `build PATH`: `path` is a directory, or `-` for `input`, which holds a tar of the
/// context or a Dockerfile alone (which of the two is told from its content). `file` is `-f`:
/// a path (relative ones are tried from the working directory, then in the context, as Docker's
/// CLI does; with a tar, a path inside it), or `-` for a Dockerfile read from `input`.
/// `tmp` is where a tar context is unpacked (the state root's `tmp/`).
pub fn prepare(
    tmp: &Path,
    path: &str,
    file: Option<&str>,
    input: &mut dyn Read,
) -> Result<Prepared, Error> {
    // `-` is a tar of the context, or a Dockerfile: the input goes to a file first to tell which.
    let mut unpacked = None;
    if path == "-" {
        std::fs::create_dir_all(tmp).map_err(Error::io(format!("create {}", tmp.display())))?;
        // Named `<pid>-…` so the store's sweep of tmp/ leaves it alone while we run.
        let prefix = format!("{}-build-", std::process::id());
        let mut f = tempfile::Builder::new()
            .prefix(&prefix)
            .tempfile_in(tmp)
            .map_err(Error::io("create a file for stdin"))?;
        std::io::copy(input, &mut f).map_err(Error::io("read stdin"))?;
        let dir = tempfile::Builder::new()
            .prefix(&prefix)
            .tempdir_in(tmp)
            .map_err(Error::io("create a directory for the context"))?;
        if !Context::unpack(f.path(), dir.path())? {
            let dockerfile = std::fs::read_to_string(f.path())
                .map_err(Error::io("read the Dockerfile from stdin"))?;
            return Ok(Prepared {
                dockerfile,
                context: Context::empty(),
                _unpacked: None,
            });
        }
        unpacked = Some(dir);
    }
    let dir = match &unpacked {
        Some(d) => d.path().to_path_buf(),
        None => PathBuf::from(path),
    };
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "unable to prepare context: path \"{path}\" not found"
        )));
    }
    let df_path = match file {
        Some("-") => None,
        // With a tar on stdin, -f names a file in it.
        Some(f) if unpacked.is_some() => Some(dir.join(f)),
        Some(f) if Path::new(f).is_absolute() => Some(PathBuf::from(f)),
        Some(f) => Some(if Path::new(f).exists() || !dir.join(f).exists() {
            PathBuf::from(f)
        } else {
            dir.join(f)
        }),
        None => Some(dir.join("Dockerfile")),
    };
    let dockerfile = match df_path {
        Some(p) => read_dockerfile(&p)?,
        None => read_stdin_dockerfile(input)?,
    };
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(t) => Ignore::parse(&t)?,
        Err(_) => Ignore::default(),
    };
    Ok(Prepared {
        dockerfile,
        context: Context::open(&dir, &ignore)?,
        _unpacked: unpacked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dockerfile_alone_on_the_input() {
        let tmp = tempfile::tempdir().unwrap();
        let p = prepare(tmp.path(), "-", None, &mut &b"FROM scratch\n"[..]).unwrap();
        assert_eq!(p.dockerfile, "FROM scratch\n");
        assert_eq!(
            std::fs::read_dir(tmp.path()).unwrap().count(),
            0,
            "nothing left"
        );
    }

    #[test]
    fn a_directory_with_its_ignore_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(d.path().join(".dockerignore"), "secret\n").unwrap();
        std::fs::write(d.path().join("secret"), "x").unwrap();
        let p = prepare(
            d.path(),
            d.path().to_str().unwrap(),
            None,
            &mut std::io::empty(),
        )
        .unwrap();
        assert_eq!(p.dockerfile, "FROM scratch\n");
        let missing = prepare(d.path(), "/nonexistent/ctx", None, &mut std::io::empty());
        assert!(
            matches!(missing, Err(Error::Invalid(ref m)) if m.contains("not found")),
            "a missing context is named"
        );
        let no_file = prepare(
            d.path(),
            d.path().to_str().unwrap(),
            Some("/nonexistent/Dockerfile"),
            &mut std::io::empty(),
        );
        assert!(no_file.is_err());
    }
}
