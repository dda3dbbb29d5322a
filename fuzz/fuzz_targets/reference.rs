//! Image references (`crates/image/src/reference.rs`): a reference that parses prints to its
//! full and familiar forms, and both parse back to the same reference.
#![no_main]

use hako_image::Reference;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let r = match Reference::parse(s) {
        Ok(r) => r,
        Err(e) => {
            let msg = e.to_string();
            assert!(
                matches!(e, hako_image::Error::InvalidReference(_)),
                "wrong kind: {e:?}"
            );
            assert!(!msg.is_empty());
            return;
        }
    };
    let full = r.to_string();
    let again = Reference::parse(&full).unwrap_or_else(|e| panic!("{full:?}: {e}"));
    assert_eq!(again, r, "{full:?}");
    assert_eq!(again.to_string(), full);
    let familiar = r.familiar();
    assert_eq!(
        Reference::parse(&familiar).unwrap_or_else(|e| panic!("{familiar:?}: {e}")),
        r,
        "familiar {familiar:?}"
    );
    assert!(r.tag().is_some() || r.digest().is_some());
    assert_eq!(r.repository(), format!("{}/{}", r.domain(), r.path()));
    // The repository alone is the same name with the default tag.
    let repo =
        Reference::parse(&r.repository()).unwrap_or_else(|e| panic!("{}: {e}", r.repository()));
    assert_eq!(
        (repo.domain(), repo.path(), repo.tag()),
        (r.domain(), r.path(), Some("latest"))
    );
    // Except a bare 64-hex name, which Docker reads as an image ID.
    let fr = r.familiar_repository();
    if !(fr.len() == 64 && fr.bytes().all(|b| b.is_ascii_hexdigit())) {
        let short = Reference::parse(&fr).unwrap_or_else(|e| panic!("{fr:?}: {e}"));
        assert_eq!(short.repository(), r.repository());
    }
    if let Some(t) = r.tag() {
        let t2 = r.with_tag(t).unwrap();
        assert_eq!(t2.tag(), Some(t));
        assert_eq!(t2.digest(), None);
    }
});
