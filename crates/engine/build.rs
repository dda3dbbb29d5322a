//! Builds the static `hako-init` that `run --init` bind-mounts into containers.
//!
//! It must run in images without a libc, so it is linked statically (glibc's `+crt-static`),
//! which cargo cannot do for one binary of a workspace build. rustc is called directly on the
//! std-only source, and the engine embeds the result with `include_bytes!`, so every hako
//! binary carries the init that matches it and nothing has to be installed beside it.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "src/bin/hako-init.rs";
    println!("cargo:rerun-if-changed={src}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = std::env::var("TARGET").expect("cargo sets TARGET");
    let bin = out.join("hako-init");
    let status = Command::new(rustc)
        .args([
            "--edition",
            "2021",
            "--crate-name",
            "hako_init",
            "--crate-type",
            "bin",
        ])
        .args(["--target", &target])
        .args([
            "-C",
            "opt-level=s",
            "-C",
            "panic=abort",
            "-C",
            "strip=symbols",
        ])
        .args([
            "-C",
            "target-feature=+crt-static",
            "-C",
            "relocation-model=static",
        ])
        .arg("-o")
        .arg(&bin)
        .arg(src)
        .status()
        .expect("run rustc for hako-init");
    assert!(status.success(), "building the static hako-init failed");
}
