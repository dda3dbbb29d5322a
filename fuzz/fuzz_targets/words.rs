//! Docker's word expansion (`crates/build/src/words.rs`) on arbitrary words and variables.
//! Besides not crashing: quoting any string (with the escape character, single or double
//! quotes) expands back to it, `${NAME}` and its `:-`/`:+` forms substitute as specified, and
//! words without special characters are left alone.
//!
//! The input is `WORD\0LITERAL\0NAME=VALUE\n...`; a first byte of `` ` `` selects that escape
//! character, as `# escape=`` ` `` does.
#![no_main]

use hako_build::words::{expand, expand_words, name_values, split_raw, Vars};
use libfuzzer_sys::fuzz_target;

struct Input {
    backtick: bool,
    word: String,
    vars: Vec<(String, String)>,
    literal: String,
}

impl Input {
    fn parse(data: &[u8]) -> Option<Input> {
        let text = std::str::from_utf8(data).ok()?;
        let (backtick, text) = match text.strip_prefix('`') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let mut parts = text.splitn(3, '\0');
        let word = parts.next().unwrap_or_default().to_string();
        let literal = parts.next().unwrap_or_default().to_string();
        let vars = parts
            .next()
            .unwrap_or_default()
            .split('\n')
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Some(Input {
            backtick,
            word,
            vars,
            literal,
        })
    }
}

fn quoted_with_escape(s: &str, esc: char) -> String {
    s.chars().flat_map(|c| [esc, c]).collect()
}

fn double_quoted(s: &str, esc: char) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        if c == '"' || c == '$' || c == esc {
            out.push(esc);
        }
        out.push(c);
    }
    out.push('"');
    out
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let esc = if input.backtick { '`' } else { '\\' };
    let vars: Vars = input.vars.iter().cloned().collect();

    let _ = expand(&input.word, &vars, esc);
    let _ = expand_words(&input.word, &vars, esc);
    let _ = name_values(&input.word, &vars, esc, true);
    let _ = name_values(&input.word, &vars, esc, false);
    for w in split_raw(&input.word, esc) {
        assert!(!w.is_empty());
    }

    let s = &input.literal;
    assert_eq!(
        expand(&quoted_with_escape(s, esc), &vars, esc).as_ref(),
        Ok(s)
    );
    assert_eq!(expand(&double_quoted(s, esc), &vars, esc).as_ref(), Ok(s));
    if !s.contains('\'') {
        assert_eq!(expand(&format!("'{s}'"), &vars, esc).as_ref(), Ok(s));
    }
    let plain = !s
        .chars()
        .any(|c| c == '$' || c == '\'' || c == '"' || c == esc);
    if plain {
        assert_eq!(expand(s, &vars, esc).as_ref(), Ok(s));
    }
    // A quoted literal is one word, whatever it contains.
    assert_eq!(
        expand_words(&double_quoted(s, esc), &vars, esc),
        Ok(vec![s.clone()])
    );

    for (name, value) in &vars {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        assert_eq!(
            expand(&format!("${{{name}}}"), &vars, esc).as_ref(),
            Ok(value)
        );
        let alt = double_quoted(s, esc);
        let set_nonempty = !value.is_empty();
        let dash = expand(&format!("${{{name}:-{alt}}}"), &vars, esc);
        let plus = expand(&format!("${{{name}:+{alt}}}"), &vars, esc);
        assert_eq!(dash.as_ref(), Ok(if set_nonempty { value } else { s }));
        assert_eq!(
            plus,
            Ok(if set_nonempty {
                s.clone()
            } else {
                String::new()
            })
        );
        let unset = format!("{name}_UNSET_{}", vars.len());
        if !vars.contains_key(&unset) {
            assert_eq!(
                expand(&format!("${{{unset}:-{alt}}}"), &vars, esc).as_ref(),
                Ok(s)
            );
            assert_eq!(
                expand(&format!("${{{unset}}}"), &vars, esc),
                Ok(String::new())
            );
        }
    }
});
