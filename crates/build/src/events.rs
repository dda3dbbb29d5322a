//! Typed output of a build: what the builder reports as it goes. The CLI renders it as
//! Docker's classic builder prints it ([`BuildEvent::text`]); the API server streams it as
//! Docker's JSON messages (`hako_docker::image::build_event_json`).

use hako_engine::images::Progress;

/// One thing a build reports, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// `Step 2/5 : RUN make`: an instruction starts.
    Step {
        /// Its number, counting every stage's instructions and FROM lines.
        n: usize,
        /// How many there are.
        of: usize,
        /// The instruction as the Dockerfile spells it.
        instruction: String,
    },
    /// `# Executing 2 build triggers`: the base image's ONBUILD instructions run first.
    Triggers(usize),
    /// ` ---> Using cache`: the step's result comes from the build cache.
    UsingCache,
    /// ` ---> Running in 0123456789ab`: a RUN step's container (its full ID).
    RunningIn(String),
    /// `Removing intermediate container 0123456789ab` (its full ID).
    RemovedContainer(String),
    /// ` ---> 0123456789ab`: the image a step ended with (its full `sha256:` ID).
    StepImage(String),
    /// A base image being pulled for `FROM`.
    Pull(Progress),
    /// Bytes as a step produced them: the log of a stage built in a child process, which
    /// holds its steps' output and its own lines.
    Output(Vec<u8>),
}

impl BuildEvent {
    /// The text Docker's classic builder prints for this, newline included (output that is
    /// not UTF-8 is shown with replacement characters; [`text_to`] writes its bytes).
    pub fn text(&self) -> String {
        let short = |id: &str| {
            let h = id.strip_prefix("sha256:").unwrap_or(id);
            h[..12.min(h.len())].to_string()
        };
        match self {
            BuildEvent::Step { n, of, instruction } => format!("Step {n}/{of} : {instruction}\n"),
            BuildEvent::Triggers(1) => "# Executing 1 build trigger\n".to_string(),
            BuildEvent::Triggers(k) => format!("# Executing {k} build triggers\n"),
            BuildEvent::UsingCache => " ---> Using cache\n".to_string(),
            BuildEvent::RunningIn(id) => format!(" ---> Running in {}\n", short(id)),
            BuildEvent::RemovedContainer(id) => {
                format!("Removing intermediate container {}\n", short(id))
            }
            BuildEvent::StepImage(id) => format!(" ---> {}\n", short(id)),
            BuildEvent::Pull(p) => p.line().map(|l| l + "\n").unwrap_or_default(),
            BuildEvent::Output(t) => String::from_utf8_lossy(t).into_owned(),
        }
    }
}

/// Where a build's events go: a failure (the reader went away) stops the build.
pub type BuildSink<'a> = dyn FnMut(BuildEvent) -> std::io::Result<()> + 'a;

/// A sink that writes each event's [`BuildEvent::text`] to `w`, flushed, so the lines come out
/// in order with what RUN steps write to the same terminal.
pub fn text_to(w: &mut dyn std::io::Write) -> impl FnMut(BuildEvent) -> std::io::Result<()> + '_ {
    move |e| {
        match e {
            BuildEvent::Output(bytes) => w.write_all(&bytes)?,
            e => w.write_all(e.text().as_bytes())?,
        }
        w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_as_the_classic_builder_prints_it() {
        let step = BuildEvent::Step {
            n: 2,
            of: 3,
            instruction: "RUN true".into(),
        };
        assert_eq!(step.text(), "Step 2/3 : RUN true\n");
        assert_eq!(
            BuildEvent::StepImage("sha256:0123456789abcdef".into()).text(),
            " ---> 0123456789ab\n"
        );
        assert_eq!(
            BuildEvent::RunningIn("fedcba9876543210".into()).text(),
            " ---> Running in fedcba987654\n"
        );
        assert_eq!(
            BuildEvent::Triggers(1).text(),
            "# Executing 1 build trigger\n"
        );
        assert_eq!(
            BuildEvent::Triggers(2).text(),
            "# Executing 2 build triggers\n"
        );
        assert_eq!(BuildEvent::UsingCache.text(), " ---> Using cache\n");
        let mut out = Vec::new();
        text_to(&mut out)(BuildEvent::Output(b"a\n\xffb".to_vec())).unwrap();
        assert_eq!(out, b"a\n\xffb", "output passes through byte for byte");
    }
}
