//! The process's one ZeroMQ context, for the endpoints the client leaves to
//! libzmq.
//!
//! A context owns I/O threads; a forked child has its memory but none of its
//! threads, so using or even closing the parent's context can hang the
//! child: a child builds a context of its own and leaks the inherited one.

use crate::fork;
use crate::sync::Lock;
use once_cell::sync::Lazy;
use std::sync::Mutex;

/// The process's context, with the fork generation it was created in.
static CONTEXT: Lazy<Mutex<Option<(u64, zmq::Context)>>> = Lazy::new(|| Mutex::new(None));

/// The context of this process (created on first use, and again in a forked
/// child), with the generation it belongs to.
pub(crate) fn context() -> (u64, zmq::Context) {
    let current = fork::generation();
    let mut shared = CONTEXT.locked();
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
