//! Helpers shared by the integration tests. The stand-in proxy itself is the
//! `vpoller-standin` crate (tests/standin), which other languages' tests run too.
#![allow(dead_code, unused_imports)] // each test binary uses a different part

use std::ffi::CStr;
use std::os::raw::c_char;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use vpoller_standin::{free_port, StandIn};

/// A client of `endpoint` with `retries` attempts of `timeout_ms` each.
pub fn client(endpoint: &str, retries: i32, timeout_ms: i32) -> vpoller::Client {
    vpoller::Client::new(endpoint, retries, timeout_ms).expect("create client")
}

/// Runs `f` and returns its result with the time it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let started = Instant::now();
    let value = f();
    (value, started.elapsed())
}

/// Copies a string returned by the C ABI and releases it with `vpoller_free_string`.
pub fn take_c_string(text: *mut c_char) -> String {
    assert!(!text.is_null(), "the C ABI returned NULL");
    // SAFETY: `text` is a NUL-terminated string from vpoller_run/vpoller_try_run,
    // not yet freed; it is freed right after the copy.
    let copy = unsafe { CStr::from_ptr(text) }
        .to_str()
        .expect("the C ABI returns UTF-8")
        .to_owned();
    vpoller::capi::vpoller_free_string(text);
    copy
}

/// Copies a static or library-owned C string (not freed).
pub fn borrowed_c_string(text: *const c_char) -> String {
    assert!(!text.is_null(), "the C ABI returned NULL");
    // SAFETY: the library documents these pointers as NUL-terminated and valid
    // until the next call on this thread.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// The directory with the compiled C programs (`make c-programs`), passed by
/// `make test` as VPOLLER_C_PROGRAMS.
pub fn c_program(name: &str) -> PathBuf {
    let directory = std::env::var_os("VPOLLER_C_PROGRAMS").unwrap_or_else(|| {
        panic!("VPOLLER_C_PROGRAMS is not set: run the tests with `make test`, which builds the C programs first")
    });
    let path = PathBuf::from(directory).join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make c-programs`",
        path.display()
    );
    path
}
