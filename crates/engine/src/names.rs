//! Generated container names in Docker's `adjective_noun` shape, from hako's own word lists.

const ADJECTIVES: &[&str] = &[
    "agile",
    "amber",
    "ample",
    "ancient",
    "arctic",
    "azure",
    "bold",
    "brave",
    "breezy",
    "bright",
    "brisk",
    "calm",
    "candid",
    "cheerful",
    "clever",
    "cosmic",
    "crisp",
    "curious",
    "daring",
    "deft",
    "eager",
    "earnest",
    "elated",
    "fearless",
    "festive",
    "fluent",
    "frosty",
    "gentle",
    "gleaming",
    "golden",
    "graceful",
    "hardy",
    "hidden",
    "humble",
    "jolly",
    "keen",
    "kind",
    "lively",
    "lucid",
    "lunar",
    "mellow",
    "merry",
    "mighty",
    "misty",
    "modest",
    "nimble",
    "noble",
    "patient",
    "placid",
    "plucky",
    "polite",
    "quick",
    "quiet",
    "radiant",
    "rapid",
    "serene",
    "sharp",
    "shiny",
    "silent",
    "snowy",
    "solar",
    "sparkling",
    "spry",
    "steady",
    "stellar",
    "sturdy",
    "sunny",
    "swift",
    "tidy",
    "tranquil",
    "upbeat",
    "valiant",
    "vivid",
    "warm",
    "wise",
    "witty",
    "zealous",
    "zesty",
];

const NOUNS: &[&str] = &[
    "acorn",
    "anchor",
    "aurora",
    "badger",
    "bamboo",
    "beacon",
    "bento",
    "birch",
    "bonsai",
    "brook",
    "camellia",
    "canyon",
    "cedar",
    "cicada",
    "comet",
    "coral",
    "crane",
    "cypress",
    "daikon",
    "delta",
    "dune",
    "ember",
    "falcon",
    "fern",
    "firefly",
    "fjord",
    "furoshiki",
    "geyser",
    "ginkgo",
    "glacier",
    "harbor",
    "heron",
    "hibiscus",
    "island",
    "kettle",
    "kite",
    "koi",
    "lagoon",
    "lantern",
    "lotus",
    "maple",
    "meadow",
    "mochi",
    "nebula",
    "origami",
    "otter",
    "panda",
    "pebble",
    "pine",
    "plum",
    "quasar",
    "raccoon",
    "reef",
    "sakura",
    "sequoia",
    "shiba",
    "sparrow",
    "summit",
    "tanuki",
    "teapot",
    "tern",
    "thistle",
    "tide",
    "torii",
    "tundra",
    "udon",
    "valley",
    "walnut",
    "wasabi",
    "willow",
    "yuzu",
    "zen",
];

/// A random `adjective_noun` name.
pub fn generate() -> String {
    let mut b = [0u8; 4];
    // Falling back to the clock keeps name generation infallible; names need no secrecy.
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        b = t.to_le_bytes();
    }
    let a = u16::from_le_bytes([b[0], b[1]]) as usize % ADJECTIVES.len();
    let n = u16::from_le_bytes([b[2], b[3]]) as usize % NOUNS.len();
    format!("{}_{}", ADJECTIVES[a], NOUNS[n])
}

/// Docker's rule for user-chosen names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn valid(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_are_valid_and_shaped() {
        for _ in 0..100 {
            let n = generate();
            assert!(valid(&n), "{n}");
            let (a, b) = n.split_once('_').unwrap();
            assert!(ADJECTIVES.contains(&a) && NOUNS.contains(&b));
        }
    }

    #[test]
    fn name_rules() {
        assert!(valid("web-1"));
        assert!(valid("a.b_c"));
        assert!(!valid("a"));
        assert!(!valid("-x"));
        assert!(!valid("a/b"));
        assert!(!valid("x y"));
    }
}
