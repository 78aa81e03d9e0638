//! Generates the C header from `src/capi` and sets the shared library's soname.
//!
//! The header is written to `$OUT_DIR/vpoller.h` on every build;
//! `include/vpoller.h` (committed) is refreshed only when
//! `VPOLLER_UPDATE_HEADER=1` (`make header`), and `tests/header.rs` fails when
//! the two differ.

use std::env;
use std::fs;
use std::path::PathBuf;

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=src/capi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=VPOLLER_UPDATE_HEADER");

    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is readable and valid");
    let generated = out_dir.join("vpoller.h");
    cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header from src/capi")
        .write_to_file(&generated);
    if env::var("VPOLLER_UPDATE_HEADER").as_deref() == Ok("1") {
        fs::create_dir_all(crate_dir.join("include")).expect("create include/");
        fs::copy(&generated, crate_dir.join("include/vpoller.h")).expect("write include/vpoller.h");
    }

    // Linux and the BSDs look a shared library up by its soname; 0 is the ABI version.
    let target_os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if matches!(
        target_os.as_str(),
        "linux" | "freebsd" | "netbsd" | "openbsd" | "dragonfly"
    ) {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvpoller.so.0");
    }
}
