//! Layer blobs as a registry sends them (`crates/image/src/extract.rs`): plain, gzip or zstd
//! tar streams, extracted inside a sandbox where any write outside the staging directory is
//! caught. Header checksums are fixed up first so that mutated headers get past the check.
#![no_main]

use hako_fuzz::{check_layer, fix_tar_checksums, Store};
use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, OnceLock};

fn store() -> &'static Mutex<Store> {
    static S: OnceLock<Mutex<Store>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(Store::new("layer")))
}

fuzz_target!(|data: &[u8]| {
    let mut data = data.to_vec();
    fix_tar_checksums(&mut data);
    let st = store().lock().unwrap_or_else(|e| e.into_inner());
    check_layer(&st, &data);
});
