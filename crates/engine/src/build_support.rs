//! What `hako build` needs from the engine beyond `run` and `commit`: a foreground run that
//! names its container before the process starts (so `---> Running in <id>` precedes the step's
//! output, as Docker prints it), and the writable layer of a container as a staged layer,
//! without the container-config merge `commit` does for `docker commit`.

use crate::{random_id, self_owner, stop_signals, Engine, Error, Result, RunOptions};
use std::io::Seek;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// An overlay filesystem a build step's container gets (`RUN --mount=type=bind,from=STAGE`, or a
/// writable or filtered bind mount). The runtime mounts it inside the container's mount
/// namespace, so nothing stays mounted on the host if the build dies; writes land in `upper`,
/// which the builder throws away after the step.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
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
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            esc(&self.upper),
            esc(&self.work)
        );
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
        opts: &RunOptions,
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
            self.insert_container(&id, opts, &plan.image.id, &plan.args, Some(self_owner()))?;
            // Recorded as --rm while the step runs, so that if the build is killed, the next
            // reconcile deletes the container instead of keeping it as exited; this foreground
            // run itself keeps it (its `opts` say no --rm) for `build_layer`.
            let mark = |on: bool| {
                self.store.conn().execute(
                    "UPDATE containers SET auto_remove = ?2 WHERE id = ?1",
                    rusqlite::params![id, on],
                )
            };
            mark(true)?;
            let launched = self.launch(&id, opts, &plan, false, &mut |_| {});
            let _ = mark(false);
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

    /// The container's writable layer as a staged layer (overlay whiteouts converted to OCI
    /// ones), ready for [`hako_image::ImageStore::commit_image`].
    ///
    /// `stubs` are the mount points of a step's own mounts (`RUN --mount`) that the image did
    /// not have, each as the chain of missing paths from the top (`run/secrets`,
    /// `run/secrets/id`): the runtime created them in the upper dir, and the highest one that
    /// holds nothing but the rest of its chain is left out of the layer, as BuildKit does.
    pub fn build_layer(&self, id: &str, stubs: &[Vec<String>]) -> Result<hako_image::StagedLayer> {
        let upper = self.container_dir(id).join("upper");
        let mut tmp = tempfile::tempfile_in(self.root().join("tmp"))
            .map_err(|e| Error::io("create a temporary layer", e))?;
        let mut skip: Vec<String> = MOUNT_FILES.map(String::from).to_vec();
        skip.extend(stubs.iter().filter_map(|chain| only_stub(&upper, chain)));
        crate::commit::write_layer_tar(&upper, &mut tmp, &skip)
            .map_err(|e| Error::io("write the layer", e))?;
        tmp.rewind().map_err(|e| Error::io("rewind the layer", e))?;
        Ok(self.store.stager().stage_layer(&mut tmp, None)?)
    }
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
