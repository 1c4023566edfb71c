//! Builds the statx fallback that goes into bottles under a faulty gVisor
//! (`shim/statx_fallback.c`): a shared object of one function, made with
//! the C compiler that links this crate, for the same target.

use std::path::PathBuf;

fn main() {
    let source = "shim/statx_fallback.c";
    println!("cargo::rerun-if-changed={source}");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("statx_fallback.so");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if !linux || !["x86_64", "aarch64"].contains(&arch.as_str()) {
        // Bottles run Linux on these two; elsewhere the fallback is empty
        // and a launch that needs it says so.
        std::fs::write(&out, b"").expect("OUT_DIR is writable");
        return;
    }
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .opt_level(2)
        .get_compiler();
    let status = compiler
        .to_command()
        .args(["-shared", "-fPIC", "-nostdlib", "-s", "-o"])
        .arg(&out)
        .arg(source)
        .status()
        .expect("the C compiler runs");
    assert!(status.success(), "the C compiler failed on {source}");
}
