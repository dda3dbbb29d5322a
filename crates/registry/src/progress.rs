//! Typed progress of pulls and pushes. The caller renders them: the CLI as Docker's plain
//! lines ([`Progress::line`]), the API server as Docker's JSON messages.

/// One step of a pull or a push, in the order Docker reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// A pull starts: `latest: Pulling from library/busybox`.
    PullingFrom {
        /// The tag or digest pulled.
        tag: String,
        /// The repository's path on its registry.
        repository: String,
    },
    /// A push starts: `The push refers to repository [docker.io/library/busybox]`.
    PushRefersTo {
        /// The full repository name.
        repository: String,
    },
    /// Something about one layer; `id` is its short digest (12 hex digits).
    Layer {
        /// The layer's short digest.
        id: String,
        /// What happened to it.
        status: LayerStatus,
    },
    /// A warning that does not stop the operation (an image for another architecture).
    Warning(String),
    /// `Digest: sha256:…` after a pull.
    Digest(String),
    /// The pull's last word: `Status: Downloaded newer image for busybox:latest` (or
    /// `Image is up to date`), with the familiar reference.
    PullDone {
        /// The familiar reference (`busybox:latest`).
        reference: String,
        /// Whether anything new was stored.
        downloaded: bool,
    },
    /// The push's last word: `latest: digest: sha256:… size: 527`.
    Pushed {
        /// The tag pushed.
        tag: String,
        /// The manifest's digest.
        digest: String,
        /// The manifest's size in bytes.
        size: u64,
    },
}

/// What happened to a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerStatus {
    /// The store has it: nothing to download.
    AlreadyExists,
    /// It will be downloaded.
    PullingFsLayer,
    /// Bytes of it have arrived (`current` of `total`).
    Downloading {
        /// Bytes so far.
        current: u64,
        /// Bytes in all.
        total: u64,
    },
    /// All of it arrived and checked out.
    DownloadComplete,
    /// It is unpacked and staged.
    PullComplete,
    /// A push will look at it.
    Preparing,
    /// The registry already has it.
    LayerAlreadyExists,
    /// It was uploaded.
    Pushed,
    /// A foreign (non-distributable) layer, which is never pushed.
    SkippedForeign,
}

impl LayerStatus {
    /// Docker's wording of the status.
    pub fn text(&self) -> &'static str {
        match self {
            LayerStatus::AlreadyExists => "Already exists",
            LayerStatus::PullingFsLayer => "Pulling fs layer",
            LayerStatus::Downloading { .. } => "Downloading",
            LayerStatus::DownloadComplete => "Download complete",
            LayerStatus::PullComplete => "Pull complete",
            LayerStatus::Preparing => "Preparing",
            LayerStatus::LayerAlreadyExists => "Layer already exists",
            LayerStatus::Pushed => "Pushed",
            LayerStatus::SkippedForeign => "Skipped foreign layer",
        }
    }
}

impl Progress {
    /// The line Docker's CLI prints for this without a terminal (no progress bars); `None`
    /// for what it only shows as a bar (bytes downloaded).
    pub fn line(&self) -> Option<String> {
        Some(match self {
            Progress::PullingFrom { tag, repository } => {
                format!("{tag}: Pulling from {repository}")
            }
            Progress::PushRefersTo { repository } => {
                format!("The push refers to repository [{repository}]")
            }
            Progress::Layer {
                status: LayerStatus::Downloading { .. },
                ..
            } => return None,
            Progress::Layer { id, status } => format!("{id}: {}", status.text()),
            Progress::Warning(w) => format!("WARNING: {w}"),
            Progress::Digest(d) => format!("Digest: {d}"),
            Progress::PullDone {
                reference,
                downloaded: true,
            } => format!("Status: Downloaded newer image for {reference}"),
            Progress::PullDone {
                reference,
                downloaded: false,
            } => format!("Status: Image is up to date for {reference}"),
            Progress::Pushed { tag, digest, size } => {
                format!("{tag}: digest: {digest} size: {size}")
            }
        })
    }
}

/// Where progress goes: a failure (the reader went away) stops the pull or push.
pub type ProgressSink<'a> = dyn FnMut(Progress) -> std::io::Result<()> + 'a;

/// A sink that writes [`Progress::line`]s to `w`.
pub fn lines_to(w: &mut dyn std::io::Write) -> impl FnMut(Progress) -> std::io::Result<()> + '_ {
    move |p| match p.line() {
        Some(l) => writeln!(w, "{l}"),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_docker_prints_them() {
        let l = |p: Progress| p.line();
        assert_eq!(
            l(Progress::PullingFrom {
                tag: "latest".into(),
                repository: "library/busybox".into()
            })
            .as_deref(),
            Some("latest: Pulling from library/busybox")
        );
        assert_eq!(
            l(Progress::Layer {
                id: "abc".into(),
                status: LayerStatus::PullComplete
            })
            .as_deref(),
            Some("abc: Pull complete")
        );
        assert_eq!(
            l(Progress::Layer {
                id: "abc".into(),
                status: LayerStatus::Downloading {
                    current: 1,
                    total: 2
                }
            }),
            None
        );
        assert_eq!(
            l(Progress::PullDone {
                reference: "busybox:latest".into(),
                downloaded: false
            })
            .as_deref(),
            Some("Status: Image is up to date for busybox:latest")
        );
        assert_eq!(
            l(Progress::Pushed {
                tag: "1".into(),
                digest: "sha256:x".into(),
                size: 527
            })
            .as_deref(),
            Some("1: digest: sha256:x size: 527")
        );
    }
}
