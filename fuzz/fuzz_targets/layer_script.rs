//! Layers built from a small script of tar entries (see `hako_fuzz::tar_from_script`): paths
//! with `..`, absolute paths, symlinks and hard links to anywhere, whiteouts, devices, long
//! names and PAX records, combined far more often than byte mutations of a tar would. Each is
//! extracted as a pull would, in the sandbox that catches writes outside the staging directory.
#![no_main]

use hako_fuzz::{check_layer, tar_from_script, Store};
use libfuzzer_sys::fuzz_target;
use std::sync::{Mutex, OnceLock};

fn store() -> &'static Mutex<Store> {
    static S: OnceLock<Mutex<Store>> = OnceLock::new();
    S.get_or_init(|| Mutex::new(Store::new("layer_script")))
}

fuzz_target!(|data: &[u8]| {
    let tar = tar_from_script(data);
    let st = store().lock().unwrap_or_else(|e| e.into_inner());
    check_layer(&st, &tar);
});
