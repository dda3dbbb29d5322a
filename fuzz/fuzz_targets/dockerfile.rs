//! The Dockerfile parser (`crates/build/src/parser.rs`), the stage planner and `RUN --mount`
//! specs on what it yields. Besides not crashing: instructions are well formed, errors name a
//! line of the file, and writing the instructions back out parses to the same instructions.
#![no_main]

use hako_build::parser::{self, Dockerfile, KNOWN};
use hako_build::{mounts, plan, words::Vars};
use libfuzzer_sys::fuzz_target;

/// The instructions as a Dockerfile again: directives, each logical line, its heredoc bodies.
/// `None` where a faithful rendering is not possible (a logical line that ends in the escape
/// character would continue onto the next, a body line ending in CR would lose it).
fn render(df: &Dockerfile) -> Option<String> {
    let mut out = String::new();
    if df.escape != '\\' {
        out.push_str(&format!("# escape={}\n", df.escape));
    }
    for ins in &df.instructions {
        if ins.original.ends_with(df.escape) {
            return None;
        }
        out.push_str(&ins.original);
        out.push('\n');
        for h in &ins.heredocs {
            if h.content.split('\n').any(|l| l.ends_with('\r')) {
                return None;
            }
            out.push_str(&h.content);
            out.push_str(&h.name);
            out.push('\n');
        }
    }
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines = text.split('\n').count();
    let df = match parser::parse(text) {
        Ok(df) => df,
        Err(e) => {
            let hako_build::Error::Line { line, msg } = &e else {
                panic!("a parse error that names no line: {e}");
            };
            assert!((1..=lines).contains(line), "line {line} of {lines}: {msg}");
            return;
        }
    };
    let mut last = 0;
    for ins in &df.instructions {
        assert!(KNOWN.contains(&ins.keyword.as_str()), "{}", ins.keyword);
        assert!(ins.line > last && ins.line <= lines, "line {}", ins.line);
        last = ins.line;
        assert!(!ins.args.is_empty() || ins.keyword == "ONBUILD");
        assert!(
            ins.original
                .to_ascii_uppercase()
                .starts_with(ins.keyword.as_str()),
            "{:?} for {}",
            ins.original,
            ins.keyword
        );
        if !ins.heredocs.is_empty() {
            assert!(matches!(ins.keyword.as_str(), "RUN" | "COPY" | "ADD"));
        }
        let _ = ins.json_args();
        for (name, spec) in &ins.flags {
            if name == "mount" {
                let _ = mounts::parse(spec, "/work");
                let _ = mounts::bind_from(spec);
            }
        }
    }

    if let Some(again) = render(&df) {
        let re = parser::parse(&again)
            .unwrap_or_else(|e| panic!("rendered Dockerfile does not parse: {e}\n{again}"));
        assert_eq!(re.escape, df.escape);
        assert_eq!(re.instructions.len(), df.instructions.len(), "{again}");
        for (a, b) in df.instructions.iter().zip(&re.instructions) {
            assert_eq!(
                (&a.keyword, &a.flags, &a.args, &a.original, &a.heredocs),
                (&b.keyword, &b.flags, &b.args, &b.original, &b.heredocs),
                "{again}"
            );
        }
    }

    if let Ok(p) = plan::split(&df, &Vars::new()) {
        for (i, s) in p.stages.iter().enumerate() {
            assert_eq!(s.index, i);
            let _ = p.from_stage(s);
        }
        if let Ok(order) = p.order(None) {
            assert_eq!(order.last(), Some(&(p.stages.len() - 1)));
        }
        for s in &p.stages {
            if let Some(n) = &s.name {
                let _ = p.order(Some(n));
            }
        }
    }
});
