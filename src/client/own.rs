//! A REQ connection spoken by the calling thread over a blocking stream
//! ([`crate::transport`]), for `tcp://` and `ipc://` endpoints. The request
//! is written and the reply read by the thread that asks, so a round trip
//! costs the network's wake-ups only, not two more for libzmq's I/O thread.
//!
//! It keeps libzmq's REQ behaviour where a client can see it: a proxy that
//! is not up yet is tried again every 100 ms within the attempt's time (the
//! host name resolved again when the address that answered last does not);
//! a reply without the delimiter is
//! ignored; heartbeats that come during a request are answered. Between
//! requests nothing reads the connection: a proxy that drops it for missed
//! heartbeats costs a new connection at the next request, within its
//! attempt.
//!
//! With CURVE the connection is encrypted from its first message; a proxy
//! that refuses the handshake (a key it does not allow, a server key that
//! is not its own) is a broken connection, tried again until the
//! attempt's time is up, as libzmq does.

use crate::error::Error;
use crate::transport::curve::Security;
use crate::transport::{self, Connection, Dialer, Event, Reading, SocketType, Stream};
use std::time::{Duration, Instant};

/// One connection to the proxy, made on first use.
pub(crate) struct Own {
    link: Option<(Stream, Connection)>,
}

/// How an attempt ended without a reply.
enum Silence {
    /// The time is up.
    Timeout,
    /// The connection ended (or broke) first.
    Broken,
}

impl Own {
    pub(crate) fn new() -> Own {
        Own { link: None }
    }

    /// One attempt: sends `msg` and waits up to `timeout` for the reply;
    /// `Ok(None)` is silence, after which the connection must not be used
    /// again (a late reply would answer the wrong request).
    ///
    /// A connection kept from an earlier request may have been closed by a
    /// proxy that restarted since: then it is made again at once and the
    /// request sent on the new one, within the same attempt.
    pub(crate) fn exchange(
        &mut self,
        dialer: &Dialer,
        security: &Security,
        msg: &[u8],
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, Error> {
        let deadline = Instant::now() + timeout;
        let mut again_at_once = self.link.is_some();
        loop {
            if self.link.is_none() {
                let connection = Connection::secured(SocketType::Req, security)
                    .map_err(|reason| Error::Internal(format!("CURVE: {reason}")))?;
                match dialer.dial(deadline, timeout) {
                    Ok(stream) => self.link = Some((stream, connection)),
                    Err(_) => return Ok(None),
                }
            }
            match self.ask(msg, deadline) {
                Ok(reply) => return reply.map(Some),
                Err(Silence::Timeout) => {
                    self.link = None;
                    return Ok(None);
                }
                Err(Silence::Broken) => {
                    self.link = None;
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Ok(None);
                    }
                    if !again_at_once {
                        std::thread::sleep(transport::RECONNECT_INTERVAL.min(remaining));
                    }
                    again_at_once = false;
                }
            }
        }
    }

    /// Sends the request and reads until its reply, the deadline or the end
    /// of the connection.
    fn ask(&mut self, msg: &[u8], deadline: Instant) -> Result<Result<Vec<u8>, Error>, Silence> {
        let (stream, connection) = self.link.as_mut().ok_or(Silence::Broken)?;
        connection.send([msg]);
        loop {
            loop {
                match connection.poll_event() {
                    Ok(Some(Event::Message(mut frames))) => {
                        if frames.len() == 1 {
                            return Ok(Ok(frames.pop().unwrap_or_default()));
                        }
                        return Ok(Err(Error::InvalidReply(format!(
                            "expected one frame, got {}",
                            frames.len()
                        ))));
                    }
                    Ok(Some(Event::Ready)) => {}
                    Ok(None) => break,
                    Err(_) => return Err(Silence::Broken),
                }
            }
            // Our greeting, READY, the request and PONGs, as they become due.
            connection.write_to(stream).map_err(|_| Silence::Broken)?;
            if !connection.pending().is_empty() {
                // A blocking write that timed out: the proxy takes nothing.
                return Err(Silence::Timeout);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || stream.set_read_timeout(Some(remaining)).is_err() {
                return Err(Silence::Timeout);
            }
            if let Reading::Closed(_) = Reading::blocking(connection.read_from(stream)) {
                return Err(Silence::Broken);
            }
        }
    }
}
