//! The signature policy (`crates/trust/src/policy.rs`): see `hako_trust::fuzzing::policy` for
//! what is checked besides "no crash, no hang".
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hako_trust::fuzzing::policy(data);
});
