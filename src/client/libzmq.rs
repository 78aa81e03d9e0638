//! The client's REQ sockets over libzmq, for the endpoints it does not
//! speak itself (`inproc://`, source addresses, other transports), and the
//! process's one ZeroMQ context for them.
//!
//! A context owns I/O threads; a forked child has its memory but none of
//! its threads, so using or even closing the parent's context can hang the
//! child: a child builds a context of its own and leaks the inherited one.

use crate::error::Error;
use crate::fork;
use crate::sync::Lock;
use crate::transport::curve::Security;
use once_cell::sync::Lazy;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// A REQ socket connected to `endpoint`, made in fork generation
/// (returned) of this process, its receives bounded by `timeout`.
pub(super) fn connect(
    endpoint: &str,
    timeout: Duration,
    security: &Security,
) -> Result<(u64, zmq::Socket), Error> {
    let (generation, context) = context();
    let socket = context
        .socket(zmq::REQ)
        .map_err(|e| Error::zmq("creating a socket", e))?;
    if let Security::CurveClient { server, ours } = security {
        socket
            .set_curve_serverkey(server.as_bytes())
            .and_then(|()| socket.set_curve_publickey(ours.public().as_bytes()))
            .and_then(|()| socket.set_curve_secretkey(ours.secret().as_bytes()))
            .map_err(|e| Error::zmq("setting the CURVE keys (is libzmq built with CURVE?)", e))?;
    }
    socket
        .set_linger(0)
        .map_err(|e| Error::zmq("setting LINGER", e))?;
    let timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    socket
        .set_rcvtimeo(timeout_ms)
        .map_err(|e| Error::zmq("setting RCVTIMEO", e))?;
    socket
        .connect(endpoint)
        .map_err(|e| Error::zmq("connecting to the endpoint", e))?;
    Ok((generation, socket))
}

/// Sends one attempt and waits for its reply until `timeout` has passed.
/// `Ok(None)` is silence.
pub(super) fn send_and_wait(
    socket: &zmq::Socket,
    msg: &[u8],
    timeout: Duration,
) -> Result<Option<zmq::Message>, Error> {
    let deadline = Instant::now() + timeout;
    let mut sent_at_once = true;
    loop {
        // A connected REQ socket queues at once; DONTWAIT only guards the
        // deadline should the queue ever be full.
        match socket.send(msg, zmq::DONTWAIT) {
            Ok(()) => break,
            Err(zmq::Error::EINTR) => sent_at_once = false,
            Err(zmq::Error::EAGAIN) => {
                sent_at_once = false;
                if !wait_until(socket, zmq::POLLOUT, deadline)? {
                    return Ok(None);
                }
            }
            Err(error) => return Err(Error::zmq("sending the request", error)),
        }
    }
    // The usual path: one blocking receive bounded by the socket's RCVTIMEO,
    // which is the attempt's timeout (cheaper than a poll and a receive).
    let first_try = if sent_at_once {
        socket.recv_msg(0)
    } else {
        Err(zmq::Error::EINTR)
    };
    let reply = match first_try {
        Ok(reply) => reply,
        Err(zmq::Error::EAGAIN) => return Ok(None),
        Err(zmq::Error::EINTR) => {
            // Interrupted, or the send had to wait: only what is left of the
            // attempt's time may still be spent.
            if !wait_until(socket, zmq::POLLIN, deadline)? {
                return Ok(None);
            }
            loop {
                match socket.recv_msg(zmq::DONTWAIT) {
                    Ok(reply) => break reply,
                    Err(zmq::Error::EINTR) => continue,
                    Err(error) => return Err(Error::zmq("receiving the reply", error)),
                }
            }
        }
        Err(error) => return Err(Error::zmq("receiving the reply", error)),
    };
    if reply.get_more() {
        let mut frames = 1;
        while socket.get_rcvmore().unwrap_or(false) {
            frames += 1;
            if socket.recv_msg(zmq::DONTWAIT).is_err() {
                break;
            }
        }
        return Err(Error::InvalidReply(format!(
            "expected one frame, got {frames}"
        )));
    }
    Ok(Some(reply))
}

/// Polls `socket` for `events` until `deadline`; false when it passed first.
fn wait_until(
    socket: &zmq::Socket,
    events: zmq::PollEvents,
    deadline: Instant,
) -> Result<bool, Error> {
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Ok(false);
        }
        // Round up so that a sub-millisecond remainder does not spin.
        let wait_ms = remaining.as_micros().div_ceil(1000);
        let wait_ms = i64::try_from(wait_ms).unwrap_or(i64::MAX);
        match socket.poll(events, wait_ms) {
            Ok(ready) if ready > 0 => return Ok(true),
            Ok(_) | Err(zmq::Error::EINTR) => continue,
            Err(error) => return Err(Error::zmq("waiting for the reply", error)),
        }
    }
}
