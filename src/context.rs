//! One ZeroMQ context per process, and fork detection.
//!
//! A ZeroMQ context owns I/O threads; after `fork()` the child has the
//! context's memory but none of its threads, so using or even closing a socket
//! of the parent's context can hang the child. Every socket is therefore tagged
//! with the fork generation it was made in: a child sees a new generation,
//! builds a context of its own and leaks (never touches) what it inherited.

use once_cell::sync::Lazy;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

/// Incremented in the child of every `fork()` (see [`install_fork_hook`]).
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);

/// The process's context, with the generation it was created in.
static CONTEXT: Lazy<Mutex<Option<(u64, zmq::Context)>>> = Lazy::new(|| Mutex::new(None));

/// The fork generation of the running process: 0 in the process that loaded
/// the library, one more in each forked child.
pub(crate) fn generation() -> u64 {
    FORK_GENERATION.load(Ordering::Acquire)
}

/// The fork generation, with the fork hook installed first, for state other
/// than ZeroMQ that must not be shared with a forked child (the vSphere
/// agent's HTTP connections).
pub(crate) fn fork_generation() -> u64 {
    install_fork_hook();
    generation()
}

/// The context of this process (created on first use, and again in a forked
/// child), with the generation it belongs to.
pub(crate) fn context() -> (u64, zmq::Context) {
    install_fork_hook();
    let mut shared = CONTEXT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let current = generation();
    if let Some((made_in, context)) = shared.as_ref() {
        if *made_in == current {
            return (current, context.clone());
        }
    }
    if let Some((_, inherited)) = shared.take() {
        // The parent's context: terminating it here would wait for I/O threads
        // that do not exist in this process.
        std::mem::forget(inherited);
    }
    let context = zmq::Context::new();
    *shared = Some((current, context.clone()));
    (current, context)
}

/// Registers the fork handler once per process.
fn install_fork_hook() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(register_child_handler);
}

#[cfg(unix)]
extern "C" fn on_fork_child() {
    // Only an atomic increment: async-signal-safe, as a child handler must be.
    FORK_GENERATION.fetch_add(1, Ordering::AcqRel);
}

#[cfg(unix)]
fn register_child_handler() {
    // This is the library's one `unsafe` outside `capi`: the fork hook has to be
    // a libc call, and the client needs it whether or not the C ABI is used.
    // SAFETY: `on_fork_child` is a plain `extern "C"` function with no
    // arguments that only touches an atomic; pthread_atfork copies the pointers.
    let status = unsafe { libc::pthread_atfork(None, None, Some(on_fork_child)) };
    // pthread_atfork fails only with ENOMEM, at a time when nothing else in
    // the process would work either; the client then runs as before, only a
    // forked child loses the guarantee.
    debug_assert_eq!(status, 0, "pthread_atfork failed");
}

#[cfg(not(unix))]
fn register_child_handler() {
    // No fork() outside Unix.
}
