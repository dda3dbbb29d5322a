//! `.dockerignore` matching (`crates/build/src/ignore.rs`): arbitrary patterns against
//! arbitrary paths must neither crash nor hang, and must agree with what the semantics say
//! for the cases that are easy to state: a literal pattern excludes its path and everything
//! under it, `!` re-includes, the last match wins.
//!
//! The input is the `.dockerignore` text, a NUL, then paths one per line.
#![no_main]

use hako_build::ignore::Ignore;
use libfuzzer_sys::fuzz_target;

struct Input {
    patterns: String,
    paths: Vec<String>,
}

/// A path component without glob syntax, `.`/`..` or separators.
fn literal(seg: &str) -> bool {
    !seg.is_empty()
        && seg != "."
        && seg != ".."
        && !seg.starts_with('!')
        && !seg.starts_with('#')
        && seg.trim() == seg
        && !seg
            .chars()
            .any(|c| matches!(c, '*' | '?' | '[' | '\\' | '/' | '\n' | '\r'))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (patterns, paths) = text.split_once('\0').unwrap_or((text, ""));
    let input = Input {
        patterns: patterns.to_string(),
        paths: paths.lines().map(str::to_string).collect(),
    };
    let parsed = Ignore::parse(&input.patterns);
    match &parsed {
        Ok(ig) => {
            let _ = ig.has_exceptions();
            for p in &input.paths {
                let _ = ig.excluded(p);
            }
        }
        // A pattern that does not compile is refused, naming its line.
        Err(e) => assert!(e.to_string().contains(".dockerignore line "), "{e}"),
    }
    let parse = |text: &str| {
        Ignore::parse(text).unwrap_or_else(|e| panic!("{text:?}: plain paths refused: {e}"))
    };

    for p in input.paths.iter().take(4) {
        let segs: Vec<&str> = p.split('/').collect();
        if segs.is_empty() || !segs.iter().all(|s| literal(s)) {
            continue;
        }
        let exact = parse(p);
        assert!(exact.excluded(p), "{p:?} does not exclude itself");
        assert!(
            exact.excluded(&format!("{p}/inner")),
            "{p:?}: not its contents"
        );
        assert!(!exact.excluded(&format!("{p}x")), "{p:?} excludes {p}x");
        let negated = parse(&format!("{p}\n!{p}\n"));
        assert!(!negated.excluded(p), "{p:?}: the exception loses");
        // Appending a pattern for another path changes nothing for this one.
        if parsed.is_ok() {
            let more = parse(&format!("{}\n!{p}\n", input.patterns));
            assert!(!more.excluded(p), "{p:?}: a last exception loses");
        }
        let star = parse("**");
        assert!(star.excluded(p));
        if segs.len() == 1 {
            assert!(parse("*").excluded(p));
        }
    }
});
