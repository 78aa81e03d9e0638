//! Fork detection: which process generation is running.
//!
//! After `fork()` the child has its parent's memory but none of its threads
//! or sessions, so state that belongs to one process (libzmq contexts and
//! sockets, keep-alive connections, a vSphere login) is tagged with the
//! generation it was made in. A child sees a new generation, makes its own
//! and never touches (writes to, logs out, closes over the wire) what it
//! inherited.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

/// Incremented in the child of every `fork()`.
static GENERATION: AtomicU64 = AtomicU64::new(0);

/// The fork generation of the running process: 0 in the process that loaded
/// the library, one more in each forked child. The first call installs the
/// fork handler; state tagged before it was installed is tagged 0, which is
/// right because no fork was seen before.
pub(crate) fn generation() -> u64 {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(register_child_handler);
    GENERATION.load(Ordering::Acquire)
}

#[cfg(unix)]
extern "C" fn on_fork_child() {
    // Only an atomic increment: async-signal-safe, as a child handler must be.
    GENERATION.fetch_add(1, Ordering::AcqRel);
}

#[cfg(unix)]
fn register_child_handler() {
    // The fork hook has to be a libc call, and it is needed whether or not
    // the C ABI is used, so this `unsafe` lives outside `capi`.
    // SAFETY: `on_fork_child` is a plain `extern "C"` function with no
    // arguments that only touches an atomic; pthread_atfork copies the pointers.
    let status = unsafe { libc::pthread_atfork(None, None, Some(on_fork_child)) };
    // pthread_atfork fails only with ENOMEM, at a time when nothing else in
    // the process would work either; then only a forked child loses the
    // guarantee.
    debug_assert_eq!(status, 0, "pthread_atfork failed");
}

#[cfg(not(unix))]
fn register_child_handler() {
    // No fork() outside Unix.
}
