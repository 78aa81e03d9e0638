//! include/vpoller.h is the cbindgen output for the current sources, and it
//! compiles cleanly as C99 and as C++.

use std::path::Path;
use std::process::Command;

const GENERATED: &str = include_str!(concat!(env!("OUT_DIR"), "/vpoller.h"));

fn committed() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/vpoller.h");
    std::fs::read_to_string(path).expect("include/vpoller.h exists")
}

#[test]
fn committed_header_matches_a_fresh_generation() {
    assert!(
        committed() == GENERATED,
        "include/vpoller.h is stale: run `make header` and commit the result"
    );
}

fn compiles(compiler: &str, args: &[&str], source: &str) {
    let directory =
        std::env::temp_dir().join(format!("vpoller-header-{}-{compiler}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let file = directory.join(source);
    std::fs::write(
        &file,
        "#include <vpoller.h>\n#include <vpoller.h>\n\
         int main(void) { vpoller_client *c = vpoller_client_new(\"tcp://localhost:10123\", \
         VPOLLER_DEFAULT_RETRIES, VPOLLER_DEFAULT_TIMEOUT_MS); char *r = vpoller_run(c, \"{}\"); \
         vpoller_free_string(r); vpoller_client_free(c); return vpoller_last_status() == VPOLLER_OK ? 0 : 1; }\n",
    )
    .unwrap();
    let include = Path::new(env!("CARGO_MANIFEST_DIR")).join("include");
    let output = Command::new(compiler)
        .args(args)
        .arg("-fsyntax-only")
        .arg("-I")
        .arg(&include)
        .arg(&file)
        .output()
        .unwrap_or_else(|error| panic!("run {compiler}: {error}"));
    let _ = std::fs::remove_dir_all(&directory);
    assert!(
        output.status.success(),
        "{compiler} rejects the header:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn header_compiles_as_c99() {
    compiles(
        "cc",
        &["-std=c99", "-Wall", "-Wextra", "-pedantic", "-Werror"],
        "check.c",
    );
}

#[test]
fn header_compiles_as_cpp() {
    compiles(
        "c++",
        &["-std=c++11", "-Wall", "-Wextra", "-pedantic", "-Werror"],
        "check.cpp",
    );
}
