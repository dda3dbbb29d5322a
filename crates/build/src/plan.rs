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
    /// Stage names → index, so that resolving a reference does not scan every stage (which
    /// made planning quadratic in the number of stages).
    names: std::collections::HashMap<String, usize>,
}

/// Splits a Dockerfile into stages; `global` are the global ARG values for FROM lines.
pub fn split(df: &Dockerfile, global: &Vars) -> Result<Plan, Error> {
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut names = std::collections::HashMap::new();
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
                    if names.insert(n.clone(), stages.len()).is_some() {
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
        names,
    })
}

impl Plan {
    /// The stage a `--from` or FROM value names (a stage name or an index), if any.
    pub fn stage_ref(&self, name: &str) -> Option<usize> {
        if let Some(i) = self.names.get(&name.to_ascii_lowercase()) {
            return Some(*i);
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
        self.names
            .get(&s.base.to_ascii_lowercase())
            .copied()
            .filter(|i| *i < s.index)
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
            Some(name) => self
                .names
                .get(&name.to_ascii_lowercase())
                .copied()
                .ok_or_else(|| {
                    Error::Invalid(format!("target stage \"{name}\" could not be found"))
                })?,
        };
        // Depth first, with an explicit stack: a chain of thousands of stages (`FROM s1 AS s2`,
        // `FROM s2 AS s3`, …) must not recurse once per stage. Each frame is a stage and its
        // dependencies still to visit; a stage is emitted once all of them are.
        const NEW: u8 = 0;
        const OPEN: u8 = 1;
        const DONE: u8 = 2;
        let mut state = vec![NEW; self.stages.len()];
        let mut out = Vec::new();
        let mut stack: Vec<(usize, std::vec::IntoIter<(usize, usize)>)> = Vec::new();
        state[t] = OPEN;
        stack.push((t, self.deps(&self.stages[t]).into_iter()));
        while let Some((i, deps)) = stack.last_mut() {
            let i = *i;
            match deps.next() {
                Some((d, line)) => match state[d] {
                    NEW => {
                        state[d] = OPEN;
                        stack.push((d, self.deps(&self.stages[d]).into_iter()));
                    }
                    OPEN => {
                        let n = self.stages[d].name.clone().unwrap_or_else(|| d.to_string());
                        return Err(Error::at(
                            line,
                            format!("circular dependency detected on stage: {n}"),
                        ));
                    }
                    _ => {}
                },
                None => {
                    state[i] = DONE;
                    out.push(i);
                    stack.pop();
                }
            }
        }
        Ok(out)
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
    fn long_chains_do_not_recurse() {
        // Each stage starts from the one before: visiting them recursed once per stage.
        let n = 50_000;
        let mut df = String::from("FROM busybox AS s0\n");
        for i in 1..n {
            df.push_str(&format!("FROM s{} AS s{i}\n", i - 1));
        }
        let p = plan(&df);
        let order = std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || p.order(None).unwrap())
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(order, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn global_args_in_from() {
        let mut v = Vars::new();
        v.insert("BASE".into(), "busybox:1".into());
        let p = split(&parse("ARG BASE\nFROM ${BASE} AS x\n").unwrap(), &v).unwrap();
        assert_eq!(p.stages[0].base, "busybox:1");
    }
}
