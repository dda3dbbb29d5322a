//! Manifests, indexes and image configs as a registry or an archive serves them
//! (`crates/registry/src/manifest.rs`, the config parsing of `crates/image`). The input is
//! `CONTENT-TYPE\nPLATFORM\nBODY`. A pull's choice from an index must match the platform it
//! asked for, a refusal must name an OS that is not the wanted one, and platforms print back
//! to what they parse from.
#![no_main]

use hako_image::{ImageStore, Reference};
use hako_registry::fuzzing;
use hako_registry::{Error, Platform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let ct = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let plat = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let body = parts.next().unwrap_or_default();
    let reference = Reference::parse("registry.test/fuzz/image:latest").unwrap();

    let want = match Platform::parse(&plat) {
        Ok(p) => {
            let again = Platform::parse(&p.to_string())
                .unwrap_or_else(|e| panic!("{p} does not parse back: {e}"));
            assert_eq!(again, p);
            p
        }
        Err(e) => {
            assert!(matches!(e, Error::InvalidPlatform(_)), "{e:?}");
            Platform::host()
        }
    };

    match fuzzing::classify(&ct, body, &reference) {
        Ok(true) => match fuzzing::select(body, &want, &reference) {
            Ok(sel) => {
                assert_eq!(
                    (sel.os.as_str(), sel.architecture.as_str()),
                    (want.os.as_str(), want.architecture.as_str())
                );
                if let Some(v) = &want.variant {
                    let implied = want.architecture == "arm64" && v == "v8";
                    assert!(sel.variant.as_ref() == Some(v) || (sel.variant.is_none() && implied));
                }
            }
            Err(Error::OsMismatch(os)) => assert_ne!(os, want.os),
            Err(_) => {}
        },
        Ok(false) => {
            let _ = fuzzing::parse_manifest(body, &reference);
        }
        Err(_) => {}
    }

    // serde_json skips unknown fields without checking their escapes, so a config can parse
    // while the same bytes as a whole are no JSON value.
    let value = serde_json::from_slice::<serde_json::Value>(body);
    if let (Ok(chains), Ok(v)) = (ImageStore::chain_ids_of(body), value) {
        let diff_ids = v["rootfs"]["diff_ids"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(chains.len(), diff_ids.len());
        if let Some(first) = chains.first() {
            assert_eq!(Some(first.as_str()), diff_ids[0].as_str());
        }
        for c in &chains {
            assert!(c.starts_with("sha256:") && c.len() == 71, "{c}");
        }
    }
    for p in [None, Some(want)] {
        if let Err(Error::OsMismatch(os)) = fuzzing::check_platform(body, p, &reference) {
            assert_ne!(os, "linux");
        }
    }
});
