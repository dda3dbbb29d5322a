//! `run --init`: the embedded static `hako-init` (see `src/bin/hako-init.rs` and `build.rs`),
//! written once per build into the state root and bind-mounted read-only into the container.

use crate::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

static INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hako-init"));

/// Where the init appears inside the container. Podman's choice rather than Docker's
/// `/sbin/docker-init`: `/dev` is a tmpfs of the container's own, so the mount point never
/// lands in the writable layer (and so never shows in `diff` or `commit`).
pub const CONTAINER_PATH: &str = "/dev/init";

/// The host path of this build's init under `root`, written if it is not there yet.
///
/// The file name carries the content hash, so a newer hako never runs an older init and
/// concurrent `hako` processes agree on the file; it is written to a temporary name and
/// renamed, so nobody can see it half-written.
pub(crate) fn host_path(root: &Path) -> Result<PathBuf> {
    let hash = hex::encode(&Sha256::digest(INIT)[..8]);
    let dir = root.join("init");
    let path = dir.join(format!("hako-init-{hash}"));
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(&dir)
        .map_err(|e| Error::io(format!("create a file in {}", dir.display()), e))?;
    tmp.write_all(INIT)
        .and_then(|_| tmp.as_file().sync_all())
        .and_then(|_| {
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(0o555))
        })
        .map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    tmp.persist(&path)
        .map_err(|e| Error::io(format!("write {}", path.display()), e.error))?;
    Ok(path)
}

/// The bind mount of `host` at [`CONTAINER_PATH`].
pub(crate) fn mount(host: &Path) -> oci_spec::runtime::Mount {
    oci_spec::runtime::MountBuilder::default()
        .destination(CONTAINER_PATH)
        .typ("bind")
        .source(host)
        .options(vec!["bind".to_string(), "ro".to_string()])
        .build()
        .expect("a bind mount with a destination is valid")
}

/// The container's argv with the init in front.
pub(crate) fn wrap(args: &[String]) -> Vec<String> {
    [CONTAINER_PATH.to_string(), "--".to_string()]
        .into_iter()
        .chain(args.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_init_is_a_static_elf() {
        assert_eq!(&INIT[..4], b"\x7fELF");
        // A dynamically linked ELF names its loader in a PT_INTERP program header; a static
        // one has none (ELF64, little endian: e_phoff at 0x20, e_phentsize 0x36, e_phnum 0x38).
        let u16_at = |o: usize| u16::from_le_bytes([INIT[o], INIT[o + 1]]) as usize;
        let phoff = u64::from_le_bytes(INIT[0x20..0x28].try_into().unwrap()) as usize;
        let (size, count) = (u16_at(0x36), u16_at(0x38));
        assert!(count > 0);
        for i in 0..count {
            let o = phoff + i * size;
            let p_type = u32::from_le_bytes(INIT[o..o + 4].try_into().unwrap());
            assert_ne!(p_type, 3, "PT_INTERP: hako-init is dynamically linked");
        }
    }

    #[test]
    fn written_once_and_executable() {
        let d = tempfile::tempdir().unwrap();
        let a = host_path(d.path()).unwrap();
        let b = host_path(d.path()).unwrap();
        assert_eq!(a, b);
        assert_eq!(std::fs::read(&a).unwrap(), INIT);
        let mode = std::fs::metadata(&a).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o555);
        assert_eq!(std::fs::read_dir(d.path().join("init")).unwrap().count(), 1);
    }

    #[test]
    fn argv_is_prefixed() {
        assert_eq!(
            wrap(&["sh".into(), "-c".into()]),
            ["/dev/init", "--", "sh", "-c"]
        );
    }
}
