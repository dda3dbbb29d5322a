//! What `hako build` needs from the engine beyond `run` and `commit`: a foreground run that
//! names its container before the process starts (so `---> Running in <id>` precedes the step's
//! output, as Docker prints it), and the writable layer of a container as a staged layer,
//! without the container-config merge `commit` does for `docker commit`.

use crate::{random_id, self_owner, stop_signals, ContainerConfig, Engine, Error, Result, RunMode};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// An overlay filesystem a build step's container gets (`RUN --mount=type=bind,from=STAGE`, or a
/// writable or filtered bind mount). The runtime mounts it inside the container's mount
/// namespace, so nothing stays mounted on the host if the build dies; writes land in `upper`,
/// which the builder throws away after the step.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OverlayMount {
    /// Where it appears in the container.
    pub target: String,
    /// Read-only layers, topmost first.
    pub lowers: Vec<PathBuf>,
    /// The writable layer (a scratch directory of the builder's).
    pub upper: PathBuf,
    /// overlayfs's work directory, on the same filesystem as `upper`.
    pub work: PathBuf,
    /// Mounted read-only.
    pub readonly: bool,
}

impl OverlayMount {
    /// The OCI mount the runtime performs.
    pub(crate) fn oci(&self) -> Result<oci_spec::runtime::Mount> {
        // overlayfs splits its options on `,` and lower dirs on `:`.
        let esc = |p: &std::path::Path| -> String {
            let mut out = String::new();
            for c in String::from_utf8_lossy(p.as_os_str().as_bytes()).chars() {
                if matches!(c, ',' | ':' | '\\') {
                    out.push('\\');
                }
                out.push(c);
            }
            out
        };
        if self.lowers.is_empty() {
            return Err(Error::Invalid(format!(
                "mount {}: an overlay needs a lower layer",
                self.target
            )));
        }
        let lowers: Vec<String> = self.lowers.iter().map(|l| esc(l)).collect();
        let mut data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            esc(&self.upper),
            esc(&self.work)
        );
        // The upper layer is a scratch directory thrown away after the step: nothing to sync
        // when the overlay goes (see `ContainerConfig::volatile_rootfs`).
        if crate::seccomp::kernel_version(&crate::seccomp::kernel_release()) >= (5, 10) {
            data.push_str(",volatile");
        }
        if hako_base::userns::overlay_userxattr() {
            data.push_str(",userxattr");
        }
        // The kernel reads mount options from one page.
        if data.len() >= 4096 {
            return Err(Error::Invalid(format!(
                "mount {}: {} layers are too many for one overlay ({} bytes of options, more than 4096)",
                self.target,
                self.lowers.len(),
                data.len()
            )));
        }
        let mut options = vec![data];
        if self.readonly {
            options.push("ro".into());
        }
        oci_spec::runtime::MountBuilder::default()
            .destination(&self.target)
            .typ("overlay")
            .source("overlay")
            .options(options)
            .build()
            .map_err(|e| Error::Invalid(format!("mount {}: {e}", self.target)))
    }
}

/// Files hako creates for every container (mount points); they are not part of a layer.
const MOUNT_FILES: [&str; 3] = ["etc/hosts", "etc/hostname", "etc/resolv.conf"];

impl Engine {
    /// Runs a build step's container in the foreground, like [`Engine::run`] with `--rm` off:
    /// `named` gets the container id before the process starts. Returns the id and the exit
    /// status; the container is left for [`Engine::build_layer`] and [`Engine::remove`], and
    /// is removed here if it could not be started.
    pub fn run_build_step(
        &self,
        opts: &ContainerConfig,
        named: &mut dyn FnMut(&str),
    ) -> Result<(String, i32)> {
        use nix::sys::signal::{sigprocmask, SigmaskHow};
        let mut old = nix::sys::signal::SigSet::empty();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&stop_signals()), Some(&mut old))
            .map_err(|e| Error::io("block signals", e.into()))?;
        let result = (|| {
            let image = self.resolve_image(&opts.image)?;
            let id = random_id()?;
            let plan = self.plan(&id, opts, image)?;
            named(&id);
            // Recorded as --rm from its insertion until the builder removes or keeps it, so
            // that if the build is killed at any point, the next reconcile deletes the
            // container; this foreground run itself keeps it as exited (its `opts` say no
            // --rm) for `build_layer`.
            self.insert_container(
                &id,
                None,
                opts,
                &plan.image.id,
                &plan.args,
                Some(self_owner()),
                true,
            )?;
            let launched = self.launch(&id, opts, &plan, RunMode::default(), &mut |_| {});
            match launched {
                Ok(code) => Ok((id, code)),
                Err(e) => {
                    let _ = self.remove(&id, true, true);
                    Err(e)
                }
            }
        })();
        let pending = stop_signals();
        // A stop signal that arrived while the step ran was relayed to it: the step fails with
        // the container's status and the build cleans up, so the signal is not delivered again.
        while crate::TimedWaitZero::timed_wait_zero(&pending) {}
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
        result
    }

    /// Keeps a build step's container (`build --rm=false`) as an ordinary exited container:
    /// until then it goes with its build if that dies (see [`Engine::run_build_step`]).
    pub fn keep_build_step(&self, id: &str) -> Result<()> {
        self.store.conn().execute(
            "UPDATE containers SET auto_remove = 0, owner_pid = NULL, owner_start = NULL WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    /// The container's writable layer as a staged layer (overlay whiteouts converted to OCI
    /// ones), ready for [`hako_image::ImageStore::commit_image`].
    ///
    /// `stubs` are the mount points of a step's own mounts (`RUN --mount`) that the image did
    /// not have, each as the chain of missing paths from the top (`run/secrets`,
    /// `run/secrets/id`): the runtime created them in the upper dir, and the highest one that
    /// holds nothing but the rest of its chain is left out of the layer, as BuildKit does.
    ///
    /// `image_etc` is the mode, uid and gid of the image's `/etc` (None if it has none): an
    /// `/etc` that overlayfs only copied up (or the runtime only created) for the mount points
    /// of `/etc/hosts`, `hostname` and `resolv.conf` is left out too, so that a step that does
    /// not touch `/etc` makes no `etc/` entry, as in Docker (unless the layer would be empty).
    ///
    /// `clamp` is a reproducible build's `SOURCE_DATE_EPOCH`: no entry's time is later.
    pub fn build_layer(
        &self,
        id: &str,
        stubs: &[Vec<String>],
        image_etc: Option<(u32, u32, u32)>,
        clamp: Option<u64>,
    ) -> Result<hako_image::StagedLayer> {
        let upper = self.container_dir(id).join("upper");
        let mut skip: Vec<String> = MOUNT_FILES.map(String::from).to_vec();
        skip.extend(stubs.iter().filter_map(|chain| only_stub(&upper, chain)));
        // The store takes no empty layer, so a step that changed nothing keeps the entry.
        let other = std::fs::read_dir(&upper).is_ok_and(|rd| {
            rd.filter_map(|e| e.ok()).any(|e| {
                let n = e.file_name();
                n != "etc" && !skip.iter().any(|s| std::ffi::OsStr::new(s) == n)
            })
        });
        if other && etc_only_for_mounts(&upper, image_etc) {
            skip.push("etc".into());
        }
        self.stage_streamed(|out| {
            crate::commit::write_layer_tar(&upper, out, &skip, clamp)
                .map_err(|e| Error::io("write the layer", e))
        })
    }

    /// Stages the layer tar that `fill` writes while it writes it: the tar goes through a pipe
    /// to [`hako_image::Stager::stage_layer`] on a second thread, never to a file. A temporary
    /// tar would be written, read back and freed again, and the store's sync before it installs
    /// the layer would flush the temporary file's pages too (on the same filesystem): for a
    /// 10 MB COPY that was a third of the data the sync wrote.
    ///
    /// The thread is joined before this returns, so the process is single-threaded again for
    /// the runtime's next clone. An error of `fill` wins over the staging error it causes
    /// (a truncated tar).
    pub fn stage_streamed<E: From<Error>>(
        &self,
        fill: impl FnOnce(&mut dyn Write) -> std::result::Result<(), E>,
    ) -> std::result::Result<hako_image::StagedLayer, E> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::io("create a pipe for a layer", e.into()))?;
        // A larger pipe means fewer wake-ups between the two sides; the default limit for
        // unprivileged processes is 1 MiB, and a refusal only costs speed.
        let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
        let stager = self.store.stager();
        std::thread::scope(|s| {
            let consumer = s.spawn(move || {
                let mut r = std::fs::File::from(r);
                let staged = stager.stage_layer(&mut r, None);
                if staged.is_err() {
                    // Read to the end so that the writer never blocks on a full pipe (nor gets
                    // SIGPIPE, which hako does not ignore).
                    let _ = std::io::copy(&mut r, &mut std::io::sink());
                }
                staged
            });
            let filled = {
                let mut out = std::io::BufWriter::with_capacity(256 * 1024, std::fs::File::from(w));
                fill(&mut out).and_then(|()| {
                    out.flush()
                        .map_err(|e| E::from(Error::io("write the layer", e)))
                })
                // `out` is dropped here: the reader sees the end of the tar.
            };
            let staged = match consumer.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            filled?;
            staged.map_err(|e| E::from(Error::from(e)))
        })
    }
}

/// Whether `upper/etc` holds only hako's mount points, is not opaque (the step did not replace
/// `/etc`), and keeps the image's mode and owner (any, if the image had no `/etc`).
fn etc_only_for_mounts(upper: &std::path::Path, image_etc: Option<(u32, u32, u32)>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let etc = upper.join("etc");
    let Ok(m) = std::fs::symlink_metadata(&etc) else {
        return false;
    };
    if !m.is_dir() {
        return false;
    }
    if let Some(want) = image_etc {
        if (m.mode() & 0o7777, m.uid(), m.gid()) != want {
            return false;
        }
    }
    let Ok(rd) = std::fs::read_dir(&etc) else {
        return false;
    };
    let only_mounts = rd.filter_map(|e| e.ok()).all(|e| {
        MOUNT_FILES
            .iter()
            .any(|f| f.strip_prefix("etc/") == e.file_name().to_str())
    });
    only_mounts
        && !matches!(
            crate::commit::xattr_get(&etc, &crate::commit::opaque_name()),
            Ok(Some(v)) if v == b"y"
        )
}

/// The highest path of `chain` whose upper-dir tree is nothing but the rest of the chain (each
/// directory holding only the next, the last an empty file or directory).
fn only_stub(upper: &std::path::Path, chain: &[String]) -> Option<String> {
    let last = chain.len().checked_sub(1)?;
    let is_stub = |from: usize| -> bool {
        for j in from..last {
            let names: Vec<_> = match std::fs::read_dir(upper.join(&chain[j])) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.file_name())).collect(),
                Err(_) => return false,
            };
            let next = std::path::Path::new(&chain[j + 1]).file_name();
            if names.len() != 1 || Some(names[0].as_os_str()) != next {
                return false;
            }
        }
        let p = upper.join(&chain[last]);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_file() => m.len() == 0,
            Ok(m) if m.is_dir() => std::fs::read_dir(&p).is_ok_and(|mut d| d.next().is_none()),
            _ => false,
        }
    };
    (0..=last).find(|&i| is_stub(i)).map(|i| chain[i].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_entries(root: &std::path::Path) -> Vec<std::ffi::OsString> {
        std::fs::read_dir(root.join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect()
    }

    #[test]
    fn streamed_layer_is_staged_with_its_digest() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        // Larger than the pipe, so both sides must run at once.
        let data = vec![7u8; 3 << 20];
        let mut tar_bytes = Vec::new();
        let write = |out: &mut dyn Write| -> std::io::Result<()> {
            let mut b = tar::Builder::new(out);
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            b.append_data(&mut h, "big", &data[..])?;
            b.into_inner().map(|_| ())
        };
        write(&mut tar_bytes).unwrap();
        let staged = engine
            .stage_streamed(|out| write(out).map_err(|e| Error::io("write", e)))
            .unwrap();
        let want = {
            use sha2::Digest;
            format!("sha256:{}", hex::encode(sha2::Sha256::digest(&tar_bytes)))
        };
        assert_eq!(staged.diff_id, want);
        assert_eq!(staged.diff_size, tar_bytes.len() as u64);
    }

    #[test]
    fn a_failing_writer_wins_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path()).unwrap();
        let before = tmp_entries(dir.path());
        let err = engine
            .stage_streamed(|out| {
                out.write_all(&[1u8; 1 << 20])
                    .map_err(|e| Error::io("write", e))?;
                Err(Error::Invalid("the source vanished".into()))
            })
            .unwrap_err();
        assert!(err.to_string().contains("the source vanished"), "{err}");
        assert_eq!(tmp_entries(dir.path()), before);
    }
}
