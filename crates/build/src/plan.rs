//! Stages of a multi-stage Dockerfile, and which of them a build needs: the target (named with
//! `--target`, or the last stage) and, transitively, the stages it starts `FROM`, copies
//! `--from` or bind-mounts (`RUN --mount=type=bind,from=`). Stages nothing needs are skipped.

use crate::parser::{Dockerfile, Instruction};
use crate::words::{expand_words, Vars};
use crate::Error;

/// One `FROM` and the instructions up to the next.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Position in the file, from 0 (what `--from=0` refers to).
    pub index: usize,
    /// `AS name`, lower-cased as Docker does.
    pub name: Option<String>,
    /// The base as written (expanded with the global ARGs at build time).
    pub base: String,
    /// The FROM instruction.
    pub from: Instruction,
    /// Everything after it.
    pub body: Vec<Instruction>,
}

/// A Dockerfile split into its global ARGs and stages.
#[derive(Debug, Clone)]
pub struct Plan {
    /// ARG instructions before the first FROM.
    pub global_args: Vec<Instruction>,
    /// The stages in file order.
    pub stages: Vec<Stage>,
}

/// Splits a Dockerfile into stages; `global` are the global ARG values for FROM lines.
pub fn split(df: &Dockerfile, global: &Vars) -> Result<Plan, Error> {
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        if ins.keyword == "FROM" {
            ins.check_flags(&["platform"])?;
            let words = expand_words(&ins.args, global, df.escape)
                .map_err(|e| Error::at(ins.line, format!("FROM: {}", e.0)))?;
            let (base, name) = match words.as_slice() {
                [b] => (b.clone(), None),
                [b, as_, n] if as_.eq_ignore_ascii_case("as") => {
                    let n = n.to_ascii_lowercase();
                    let ok = n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                        && n.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
                    if !ok {
                        return Err(Error::at(ins.line, format!("invalid name for build stage: {n:?}, name can't start with a number or contain symbols")));
                    }
                    if stages.iter().any(|s| s.name.as_deref() == Some(n.as_str())) {
                        return Err(Error::at(ins.line, format!("duplicate name {n:?}")));
                    }
                    (b.clone(), Some(n))
                }
                _ => {
                    return Err(Error::at(
                        ins.line,
                        "FROM requires either one or three arguments (FROM <image> [AS <name>])",
                    ))
                }
            };
            if base.is_empty() {
                return Err(Error::at(ins.line, "FROM: base name should not be blank"));
            }
            stages.push(Stage {
                index: stages.len(),
                name,
                base,
                from: ins.clone(),
                body: Vec::new(),
            });
        } else if let Some(s) = stages.last_mut() {
            s.body.push(ins.clone());
        } else if ins.keyword == "ARG" {
            global_args.push(ins.clone());
        } else {
            return Err(Error::at(
                ins.line,
                format!(
                    "{}: no build stage in current context (a Dockerfile starts with FROM)",
                    ins.keyword
                ),
            ));
        }
    }
    if stages.is_empty() {
        return Err(Error::Invalid(
            "the Dockerfile has no FROM instruction".into(),
        ));
    }
    Ok(Plan {
        global_args,
        stages,
    })
}

impl Plan {
    /// The stage a `--from` or FROM value names (a stage name or an index), if any.
    pub fn stage_ref(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(s) = self
            .stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Some(s.index);
        }
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            return name
                .parse::<usize>()
                .ok()
                .filter(|i| *i < self.stages.len());
        }
        None
    }

    /// The earlier stage a FROM names (only by name, as Docker resolves it).
    pub fn from_stage(&self, s: &Stage) -> Option<usize> {
        let lower = s.base.to_ascii_lowercase();
        self.stages[..s.index]
            .iter()
            .find(|x| x.name.as_deref() == Some(lower.as_str()))
            .map(|x| x.index)
    }

    /// The stages another one depends on, with the line of each reference.
    pub(crate) fn deps(&self, s: &Stage) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        if let Some(i) = self.from_stage(s) {
            out.push((i, s.from.line));
        }
        for ins in &s.body {
            if matches!(ins.keyword.as_str(), "COPY" | "ADD") {
                if let Some(f) = ins.flag("from") {
                    if let Some(i) = self.stage_ref(f) {
                        out.push((i, ins.line));
                    }
                }
            }
            if ins.keyword == "RUN" {
                for (_, spec) in ins.flags.iter().filter(|(n, _)| n == "mount") {
                    if let Some(i) = crate::mounts::bind_from(spec).and_then(|f| self.stage_ref(f))
                    {
                        out.push((i, ins.line));
                    }
                }
            }
        }
        out
    }

    /// The stages to build for `target` (None: the last one), dependencies first.
    pub fn order(&self, target: Option<&str>) -> Result<Vec<usize>, Error> {
        let t = match target {
            None => self.stages.len() - 1,
            Some(name) => {
                let lower = name.to_ascii_lowercase();
                self.stages
                    .iter()
                    .find(|s| s.name.as_deref() == Some(lower.as_str()))
                    .map(|s| s.index)
                    .ok_or_else(|| {
                        Error::Invalid(format!("target stage \"{name}\" could not be found"))
                    })?
            }
        };
        let mut state = vec![0u8; self.stages.len()];
        let mut out = Vec::new();
        self.visit(t, &mut state, &mut out)?;
        Ok(out)
    }

    fn visit(&self, i: usize, state: &mut [u8], out: &mut Vec<usize>) -> Result<(), Error> {
        state[i] = 1;
        for (d, line) in self.deps(&self.stages[i]) {
            match state[d] {
                0 => self.visit(d, state, out)?,
                1 => {
                    let n = self.stages[d].name.clone().unwrap_or_else(|| d.to_string());
                    return Err(Error::at(
                        line,
                        format!("circular dependency detected on stage: {n}"),
                    ));
                }
                _ => {}
            }
        }
        state[i] = 2;
        out.push(i);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn plan(s: &str) -> Plan {
        split(&parse(s).unwrap(), &Vars::new()).unwrap()
    }

    #[test]
    fn multi_stage_and_target() {
        let p = plan("ARG V=1\nFROM busybox AS builder\nRUN make\nFROM busybox AS unused\nRUN x\nFROM busybox\nCOPY --from=builder /a /a\n");
        assert_eq!(p.global_args.len(), 1);
        assert_eq!(p.stages.len(), 3);
        assert_eq!(
            p.order(None).unwrap(),
            vec![0, 2],
            "the unused stage is skipped"
        );
        assert_eq!(p.order(Some("unused")).unwrap(), vec![1]);
        assert_eq!(p.order(Some("BUILDER")).unwrap(), vec![0]);
        assert!(p.order(Some("nope")).is_err());
    }

    #[test]
    fn from_a_stage_and_by_index() {
        let p = plan(
            "FROM busybox AS base\nRUN a\nFROM base AS two\nFROM scratch\nCOPY --from=1 /x /x\n",
        );
        assert_eq!(p.order(None).unwrap(), vec![0, 1, 2]);
    }

    #[test]
    fn cycles_and_errors() {
        let p = plan(
            "FROM busybox AS a\nCOPY --from=b /x /x\nFROM busybox AS b\nCOPY --from=a /y /y\n",
        );
        let e = p.order(Some("a")).unwrap_err().to_string();
        assert!(
            e.contains("circular dependency") && e.contains("line"),
            "{e}"
        );
        let e = split(&parse("RUN x\n").unwrap(), &Vars::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
        assert!(split(&parse("ARG X\n").unwrap(), &Vars::new()).is_err());
        let e = split(&parse("FROM a b\n").unwrap(), &Vars::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn bind_mounts_from_stages_are_dependencies() {
        let p = plan("FROM busybox AS tools\nRUN x\nFROM busybox AS other\nFROM busybox\nRUN --mount=type=bind,from=tools,target=/t true\n");
        assert_eq!(p.order(None).unwrap(), vec![0, 2], "other is skipped");
        let p = plan("FROM busybox AS a\nRUN --mount=from=b,target=/x true\nFROM busybox AS b\nCOPY --from=a /y /y\n");
        let e = p.order(Some("b")).unwrap_err().to_string();
        assert!(
            e.contains("circular dependency") && e.contains("line"),
            "{e}"
        );
        let p = plan("FROM busybox AS a\nRUN --mount=type=bind,from=a,target=/x true\n");
        assert!(p.order(None).is_err(), "a stage cannot mount itself");
        let p =
            plan("FROM busybox AS a\nFROM busybox\nRUN --mount=type=cache,from=a,target=/x true\n");
        assert_eq!(
            p.order(None).unwrap(),
            vec![1],
            "only bind mounts bind a stage"
        );
    }

    #[test]
    fn global_args_in_from() {
        let mut v = Vars::new();
        v.insert("BASE".into(), "busybox:1".into());
        let p = split(&parse("ARG BASE\nFROM ${BASE} AS x\n").unwrap(), &v).unwrap();
        assert_eq!(p.stages[0].base, "busybox:1");
    }
}
