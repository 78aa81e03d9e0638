//! A REQ connection spoken by the calling thread: ZMTP 3 over a blocking
//! TCP stream ([`crate::zmtp`]), for `tcp://` endpoints. The request is
//! written and the reply read by the thread that asks, so a round trip
//! costs the network's wake-ups only, not two more for libzmq's I/O thread.
//!
//! It keeps libzmq's REQ behaviour where a client can see it: a proxy that
//! is not up yet is tried again every 100 ms within the attempt's time; the
//! request goes out as an empty delimiter frame and the message; a reply
//! without the delimiter is ignored; heartbeats that come during a request
//! are answered. Between requests nothing reads the connection: a proxy
//! that drops it for missed heartbeats costs a new connection at the next
//! request, within its attempt.

use crate::error::Error;
use crate::zmtp::{self, Decoder, Event};
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The socket types a REQ socket may talk to.
const PEERS: &[&str] = &["ROUTER", "REP"];

/// One connection to the proxy, made on first use.
pub(crate) struct Connection {
    stream: Option<TcpStream>,
    decoder: Decoder,
    out: Vec<u8>,
    /// Whether our READY went out (after the peer's greeting came in).
    ready_sent: bool,
}

/// How an attempt ended without a reply.
enum Silence {
    /// The time is up.
    Timeout,
    /// The connection ended (or broke) first.
    Broken,
}

impl Connection {
    pub(crate) fn new() -> Connection {
        Connection {
            stream: None,
            decoder: Decoder::new(PEERS),
            out: Vec::new(),
            ready_sent: false,
        }
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
        endpoint: &str,
        addresses: &[SocketAddr],
        msg: &[u8],
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, Error> {
        let deadline = Instant::now() + timeout;
        let mut again_at_once = self.stream.is_some();
        loop {
            if self.stream.is_none() && !self.open(endpoint, addresses, timeout, deadline) {
                return Ok(None);
            }
            match self.ask(msg, deadline) {
                Ok(reply) => return reply.map(Some),
                Err(Silence::Timeout) => {
                    self.stream = None;
                    return Ok(None);
                }
                Err(Silence::Broken) => {
                    self.stream = None;
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if remaining.is_zero() {
                        return Ok(None);
                    }
                    if !again_at_once {
                        std::thread::sleep(zmtp::RECONNECT_INTERVAL.min(remaining));
                    }
                    again_at_once = false;
                }
            }
        }
    }

    /// Connects (trying again every [`zmtp::RECONNECT_INTERVAL`] until
    /// `deadline`) and writes the greeting; false when the deadline passed
    /// first.
    fn open(
        &mut self,
        endpoint: &str,
        addresses: &[SocketAddr],
        timeout: Duration,
        deadline: Instant,
    ) -> bool {
        let mut resolved = None;
        loop {
            let round: &[SocketAddr] = resolved.as_deref().unwrap_or(addresses);
            if let Ok(stream) = zmtp::dial(round, deadline, timeout) {
                self.stream = Some(stream);
                self.decoder = Decoder::new(PEERS);
                self.ready_sent = false;
                return true;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return false;
            }
            std::thread::sleep(zmtp::RECONNECT_INTERVAL.min(remaining));
            // A host name may point elsewhere by now, as libzmq resolves it
            // again on reconnecting.
            resolved = zmtp::tcp_addresses(endpoint, false);
        }
    }

    /// Writes the request (after READY, once the peer's greeting is in)
    /// and reads until its reply, the deadline or the end of the connection.
    fn ask(&mut self, msg: &[u8], deadline: Instant) -> Result<Result<Vec<u8>, Error>, Silence> {
        self.out.clear();
        if !self.ready_sent {
            loop {
                match self.decoder.next() {
                    Ok(Some(Event::Greeting)) => break,
                    Ok(Some(_)) => continue,
                    Ok(None) => self.fill(deadline)?,
                    Err(_) => return Err(Silence::Broken),
                }
            }
            zmtp::push_ready(&mut self.out, "REQ");
            self.ready_sent = true;
        }
        zmtp::push_message(&mut self.out, [&b""[..], msg]);
        self.write_out()?;
        loop {
            match self.decoder.next() {
                Ok(Some(Event::Message(mut frames))) => {
                    // A REQ socket drops what does not start with the delimiter.
                    if frames.first().is_some_and(Vec::is_empty) {
                        if frames.len() == 2 {
                            return Ok(Ok(frames.pop().unwrap_or_default()));
                        }
                        return Ok(Err(Error::InvalidReply(format!(
                            "expected one frame, got {}",
                            frames.len() - 1
                        ))));
                    }
                }
                Ok(Some(Event::Ping(context))) => {
                    self.out.clear();
                    zmtp::push_pong(&mut self.out, &context);
                    self.write_out()?;
                }
                Ok(Some(Event::Greeting | Event::Ready(_))) => {}
                Ok(None) => self.fill(deadline)?,
                Err(_) => return Err(Silence::Broken),
            }
        }
    }

    /// Writes what `out` holds.
    fn write_out(&mut self) -> Result<(), Silence> {
        let stream = self.stream.as_mut().ok_or(Silence::Broken)?;
        let written = stream.write_all(&self.out);
        if self.out.capacity() > 1 << 20 {
            self.out = Vec::new();
        }
        written.map_err(|_| Silence::Broken)
    }

    /// Reads once, waiting at most until `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), Silence> {
        let stream = self.stream.as_mut().ok_or(Silence::Broken)?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() || stream.set_read_timeout(Some(remaining)).is_err() {
            return Err(Silence::Timeout);
        }
        match self.decoder.read_from(stream) {
            Ok(0) => Err(Silence::Broken),
            Ok(_) => Ok(()),
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                Ok(())
            }
            Err(_) => Err(Silence::Broken),
        }
    }
}
