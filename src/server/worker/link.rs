//! A worker loop's connection to the proxy: a DEALER socket's, read by the
//! pool's reader of the moment and written by every thread that answers.
//!
//! It behaves as libzmq's DEALER: made again after the proxy goes away
//! (every 100 ms until it is back, the host name resolved again when the
//! address that answered last does not), heartbeats answered. Replies go out only once the handshake of
//! the connection they are written to is done.
//!
//! With CURVE the writers seal each reply with the connection's
//! [`Sealer`]; the reader's own messages (PONGs) are sealed and written
//! under the writers' lock too, so that boxes reach the proxy in the
//! order of their counters.

use crate::sync::Lock;
use crate::transport::curve::{Sealer, Security, MESSAGE_OVERHEAD};
use crate::transport::{codec, Connection, Dialer, Event, Reading, SocketType, Stream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a read waits for a request before the reader looks at the
/// stop flag.
pub(super) const READ_WAIT: Duration = Duration::from_millis(250);
/// How long one round of connecting to the proxy may take.
const CONNECT_ROUND: Duration = Duration::from_secs(2);
/// A proxy that takes no reply bytes for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The read side: the stream and the protocol state, held by one thread
/// at a time.
pub(super) struct Link {
    endpoint: String,
    dialer: Dialer,
    security: Security,
    current: Option<(Stream, Connection)>,
    /// Counts connections, so that a broken one is only forgotten by the
    /// writer if it is still the one it writes to.
    generation: u64,
    /// Whether the current outage was logged.
    complained: bool,
}

/// The write side, shared by every thread that sends a reply.
#[derive(Default)]
pub(super) struct Writer {
    stream: Option<Stream>,
    generation: u64,
    /// CURVE: what seals the replies on this stream.
    sealer: Option<Sealer>,
}

impl Link {
    pub(super) fn new(endpoint: &str, dialer: Dialer, security: Security) -> Link {
        Link {
            endpoint: endpoint.to_owned(),
            dialer,
            security,
            current: None,
            generation: 0,
            complained: false,
        }
    }

    /// The next message from the proxy, or `None` after waiting
    /// [`READ_WAIT`] (or a round of connecting) without one.
    pub(super) fn next_message(&mut self, writer: &Mutex<Writer>) -> Option<Vec<Vec<u8>>> {
        if self.current.is_none() && !self.connect() {
            return None;
        }
        loop {
            let (stream, connection) = self.current.as_mut()?;
            // CURVE: a PONG is sealed and written in the writers' turn.
            let mut turn = connection.is_curve().then(|| writer.locked());
            let event = connection.poll_event();
            // READY and PONGs, serialised with the replies other threads write.
            if !connection.pending().is_empty() {
                let written = {
                    let _turn = turn.take().unwrap_or_else(|| writer.locked());
                    connection.write_to(stream)
                };
                // A write that timed out leaves part of a frame out: the
                // stream cannot carry anything more.
                let failure = match written {
                    Err(error) => Some(error.to_string()),
                    Ok(()) if !connection.pending().is_empty() => {
                        Some("the proxy takes no bytes".to_owned())
                    }
                    Ok(()) => None,
                };
                if let Some(reason) = failure {
                    self.disconnect(writer, &reason);
                    return None;
                }
            }
            drop(turn);
            match event {
                Ok(Some(Event::Message(frames))) => return Some(frames),
                Ok(Some(Event::Ready)) => {
                    self.ready(writer);
                    continue;
                }
                Ok(None) => {}
                Err(reason) => {
                    self.disconnect(writer, &reason);
                    return None;
                }
            }
            let (stream, connection) = self.current.as_mut()?;
            match Reading::blocking(connection.read_from(stream)) {
                Reading::Data | Reading::Again => {}
                Reading::Later if connection.handshake_expired(Instant::now()) => {
                    self.disconnect(writer, "no handshake in time");
                    return None;
                }
                Reading::Later => return None,
                Reading::Closed(reason) => {
                    self.disconnect(writer, &reason);
                    return None;
                }
            }
        }
    }

    /// Connects; false when the proxy cannot be reached this round (logged
    /// once per outage).
    fn connect(&mut self) -> bool {
        let dialled = self
            .dialer
            .dial(Instant::now() + CONNECT_ROUND, WRITE_TIMEOUT)
            .and_then(|stream| stream.set_read_timeout(Some(READ_WAIT)).map(|()| stream));
        let connection = match Connection::secured(SocketType::Dealer, &self.security) {
            Ok(connection) => connection,
            Err(reason) => {
                log::warn!("cannot connect to the proxy at {}: {reason}", self.endpoint);
                return false;
            }
        };
        match dialled {
            Ok(stream) => {
                self.current = Some((stream, connection));
                self.generation += 1;
                true
            }
            Err(error) => {
                if !self.complained {
                    log::warn!(
                        "cannot reach the proxy at {} yet ({error}); trying again",
                        self.endpoint
                    );
                    self.complained = true;
                }
                false
            }
        }
    }

    /// The handshake is done: replies may go out on this connection.
    fn ready(&mut self, writer: &Mutex<Writer>) {
        let Some((stream, connection)) = self.current.as_ref() else {
            return;
        };
        match stream.try_clone() {
            Ok(clone) => {
                log::info!("connected to the proxy at {}", self.endpoint);
                self.complained = false;
                *writer.locked() = Writer {
                    stream: Some(clone),
                    generation: self.generation,
                    sealer: connection.sealer(),
                };
            }
            Err(error) => self.disconnect(writer, &error.to_string()),
        }
    }

    /// Drops the connection (a new one is made for the next read).
    pub(super) fn disconnect(&mut self, writer: &Mutex<Writer>, reason: &str) {
        log::warn!("lost the proxy at {}: {reason}", self.endpoint);
        if let Some((stream, _)) = self.current.take() {
            stream.shutdown();
        }
        let mut writer = writer.locked();
        if writer.generation == self.generation {
            writer.stream = None;
        }
    }
}

impl Writer {
    /// Writes one message to the proxy; dropped (and logged) when the
    /// connection is down or breaks. `sealed`: the link speaks CURVE, whose
    /// boxes are sealed in the writers' turn so that they go out in
    /// counter order; a plain message is encoded before that turn.
    pub(super) fn send(writer: &Mutex<Writer>, sealed: bool, frames: &[Vec<u8>]) {
        let parts = frames.iter().map(Vec::as_slice);
        let mut bytes = Vec::new();
        if !sealed {
            bytes.reserve(codec::message_size(parts.clone()));
            codec::push_message(&mut bytes, parts.clone());
        }
        let mut writer = writer.locked();
        let Writer { stream, sealer, .. } = &mut *writer;
        let Some(stream) = stream.as_mut() else {
            log::warn!("dropped a reply: not connected to the proxy");
            return;
        };
        if let Some(sealer) = sealer {
            bytes.reserve(codec::message_size(parts.clone()) + MESSAGE_OVERHEAD * frames.len());
            sealer.push_message(&mut bytes, parts);
        }
        if let Err(error) = std::io::Write::write_all(stream, &bytes) {
            log::warn!("dropped a reply, and the connection to the proxy: {error}");
            // The reader sees the connection end and makes a new one.
            stream.shutdown();
            writer.stream = None;
        }
    }

    /// Ends the connection (at the end of the loop).
    pub(super) fn close(writer: &Mutex<Writer>) {
        if let Some(stream) = writer.locked().stream.take() {
            stream.shutdown();
        }
    }
}
