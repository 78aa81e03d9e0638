//! One ZMTP 3.0 connection (NULL or CURVE mechanism) as a socket of one
//! type sees it, without I/O: bytes from the peer go in, messages for the
//! application come out; messages from the application go in, bytes for
//! the peer come out. The drivers (the client, the worker, the proxy, the
//! management socket) move the bytes; this decides what they mean.
//!
//! Its methods come in four kinds:
//! - getters: [`Connection::backlog`];
//! - what arrives from the network: [`Connection::read_from`] (one read
//!   from a stream into the connection's buffer);
//! - what the application wants: [`Connection::send`];
//! - what the caller must do next: [`Connection::poll_event`] (the next
//!   message, or the end of the handshake) and [`Connection::write_to`] /
//!   [`Connection::pending`] (bytes to send).
//!
//! The handshake is libzmq's: our greeting at once, our READY once the
//! peer's greeting is in (some libzmq versions never answer a READY that
//! arrives before they sent their greeting), application messages only
//! after our READY. PINGs are answered with PONGs. The socket type gives
//! the envelope: a REQ socket puts an empty delimiter frame before its
//! request and takes it off the reply (dropping replies without one); a
//! REP socket keeps a request's envelope for its reply; a ROUTER socket
//! puts the connection's routing id in front of what it receives.
//!
//! With CURVE ([`Security`]) the greeting names CURVE, the handshake is
//! CURVE's four commands (their metadata carries the socket type, as READY
//! does with NULL), and afterwards every frame and every command (PING,
//! PONG) travels in a MESSAGE box of its own, sent as a data frame as
//! libzmq sends it. Messages sent before the handshake is done wait for it.
//! A server that refuses a client's key answers with ERROR 400 before the
//! connection is closed; [`Connection::refused_key`] names the key.

use super::codec::{self, Reader, Unit, MAX_FRAMES, MAX_MESSAGE};
use super::curve::{Curve, Sealer, Security, Step};
use crate::curve::PublicKey;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

/// Past this many bytes waiting to be sent, a PING is not answered.
const MAX_PROTOCOL_BACKLOG: usize = 64 * 1024;

/// How long a peer may take to complete the handshake (libzmq's
/// `ZMQ_HANDSHAKE_IVL` default).
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The socket types this library speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SocketType {
    /// A client asking one request at a time.
    Req,
    /// A server answering one request at a time (management).
    Rep,
    /// A worker's connection to the proxy, or the proxy's to a worker.
    Dealer,
    /// The proxy's connection to a client.
    Router,
}

impl SocketType {
    /// The name ZMTP uses in READY.
    pub(crate) fn name(self) -> &'static str {
        match self {
            SocketType::Req => "REQ",
            SocketType::Rep => "REP",
            SocketType::Dealer => "DEALER",
            SocketType::Router => "ROUTER",
        }
    }

    /// Whether a peer of socket type `peer` may talk to this one (ZMTP 3.0's
    /// table).
    fn accepts(self, peer: &[u8]) -> bool {
        let peers: &[&[u8]] = match self {
            SocketType::Req => &[b"REP", b"ROUTER"],
            SocketType::Rep => &[b"REQ", b"DEALER"],
            SocketType::Dealer => &[b"REP", b"DEALER", b"ROUTER"],
            SocketType::Router => &[b"REQ", b"DEALER", b"ROUTER"],
        };
        peers.contains(&peer)
    }
}

/// What the application has to act on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The handshake is done: the peer may be sent messages and will send
    /// them.
    Ready,
    /// A message: for REQ the reply without its delimiter, for REP the
    /// request without its envelope, for ROUTER the routing id and then the
    /// frames as sent, for DEALER the frames as sent.
    Message(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the peer's greeting.
    Greeting,
    /// Our READY is out; waiting for the peer's.
    Handshake,
    /// Messages flow.
    Traffic,
}

/// One connection's protocol state.
pub(crate) struct Connection {
    kind: SocketType,
    reader: Reader,
    stage: Stage,
    /// Bytes for the peer, from `sent` on.
    out: Vec<u8>,
    sent: usize,
    /// Messages the application sent before our READY could go out.
    held: Vec<u8>,
    /// ROUTER: the routing id put in front of every message received.
    routing_id: Vec<u8>,
    /// REP: the envelope of the request being answered.
    envelope: Option<Vec<Vec<u8>>>,
    /// When the connection began, for the handshake's deadline.
    started: Instant,
    /// CURVE's state (`None` with NULL), boxed: NULL connections stay small.
    curve: Option<Box<Curve>>,
    /// CURVE: the frames of the message being received, and their size.
    parts: Vec<Vec<u8>>,
    parts_size: usize,
    /// CURVE server: the client key refused at the handshake.
    refused_key: Option<PublicKey>,
}

impl Connection {
    /// A new connection of socket type `kind`; its greeting is the first
    /// thing to send.
    pub(crate) fn new(kind: SocketType) -> Connection {
        Connection {
            kind,
            reader: Reader::expecting(b"NULL"),
            stage: Stage::Greeting,
            out: codec::greeting_with(b"NULL", false).to_vec(),
            sent: 0,
            held: Vec::new(),
            routing_id: Vec::new(),
            envelope: None,
            started: Instant::now(),
            curve: None,
            parts: Vec::new(),
            parts_size: 0,
            refused_key: None,
        }
    }

    /// A new connection of socket type `kind` with `security`; an error
    /// when the system gives no randomness for CURVE's connection keys.
    pub(crate) fn secured(kind: SocketType, security: &Security) -> Result<Connection, String> {
        if let Security::Null = security {
            return Ok(Connection::new(kind));
        }
        let mechanism = security.mechanism();
        Ok(Connection {
            reader: Reader::expecting(mechanism),
            out: codec::greeting_with(mechanism, security.as_server()).to_vec(),
            curve: Some(Box::new(Curve::new(security.clone())?)),
            ..Connection::new(kind)
        })
    }

    /// A ROUTER connection whose messages arrive with `routing_id` in front.
    pub(crate) fn router(routing_id: Vec<u8>) -> Connection {
        Connection::new(SocketType::Router).routed(routing_id)
    }

    /// This connection with `routing_id` put in front of every message
    /// received (a ROUTER's).
    pub(crate) fn routed(self, routing_id: Vec<u8>) -> Connection {
        Connection { routing_id, ..self }
    }

    /// CURVE server: the client key this connection refused at the
    /// handshake, once [`Connection::poll_event`] has reported the refusal.
    pub(crate) fn refused_key(&self) -> Option<&PublicKey> {
        self.refused_key.as_ref()
    }

    /// Whether the peer failed to complete the handshake in time (the
    /// connection is then to be closed).
    pub(crate) fn handshake_expired(&self, now: Instant) -> bool {
        self.stage != Stage::Traffic
            && now.saturating_duration_since(self.started) > HANDSHAKE_TIMEOUT
    }

    /// Bytes waiting to be sent.
    pub(crate) fn backlog(&self) -> usize {
        self.out.len() - self.sent + self.held.len()
    }

    /// One `read` from `source` into the connection: the bytes read, 0 at
    /// the end of the stream. Large frames are read into a buffer of their
    /// own size, which becomes the message frame (no copy).
    pub(crate) fn read_from(&mut self, source: &mut dyn Read) -> io::Result<usize> {
        self.reader.read_from(source)
    }

    /// Bytes the peer sent, already read (the drivers read with
    /// [`Connection::read_from`]; tests feed bytes here).
    #[cfg(test)]
    pub(crate) fn handle_input(&mut self, bytes: &[u8]) {
        self.reader.push(bytes);
    }

    /// The next event in what the peer sent so far, `None` until one is
    /// whole. An error is the reason the connection must be closed (a peer
    /// that is not ZMTP 3 with the NULL mechanism, a socket type that cannot
    /// talk to this one, a broken frame, a refusal from the peer).
    /// Commands are handled here: READY ends the handshake, PING is
    /// answered.
    pub(crate) fn poll_event(&mut self) -> Result<Option<Event>, String> {
        loop {
            let Some(unit) = self.reader.next()? else {
                return Ok(None);
            };
            match unit {
                Unit::Greeting => {
                    self.stage = Stage::Handshake;
                    match &mut self.curve {
                        None => {
                            codec::push_ready(&mut self.out, self.kind.name());
                            if !self.held.is_empty() {
                                let held = std::mem::take(&mut self.held);
                                self.out.extend_from_slice(&held);
                            }
                        }
                        // The client speaks first; the server waits for HELLO.
                        Some(curve) if !curve.is_server() => {
                            let hello = curve.hello();
                            codec::push_command_body(&mut self.out, &hello);
                        }
                        Some(_) => {}
                    }
                }
                Unit::Command(body) if self.curve.is_some() => {
                    if let Some(event) = self.curve_command(body)? {
                        return Ok(Some(event));
                    }
                }
                Unit::Command(body) => {
                    if let Some(event) = self.command(&body)? {
                        return Ok(Some(event));
                    }
                }
                Unit::Message(frames) if self.curve.is_some() => {
                    // Each box is a message of one frame, as libzmq sends it.
                    let [frame] = <[Vec<u8>; 1]>::try_from(frames)
                        .map_err(|_| "CURVE boxes sent as one message of several frames")?;
                    if let Some(event) = self.open_box(frame)? {
                        return Ok(Some(event));
                    }
                }
                Unit::Message(frames) => {
                    // The reader takes data only once the handshake is done.
                    if let Some(message) = self.received(frames) {
                        return Ok(Some(Event::Message(message)));
                    }
                }
            }
        }
    }

    fn command(&mut self, body: &[u8]) -> Result<Option<Event>, String> {
        let (name, data) = codec::split_command(body)?;
        match (self.stage, name) {
            (Stage::Handshake, b"READY") if self.curve.is_none() => {
                self.accept_peer(data)?;
                self.stage = Stage::Traffic;
                self.reader.allow_messages();
                Ok(Some(Event::Ready))
            }
            (_, b"ERROR") => Err(format!(
                "the peer refused the connection: {}",
                String::from_utf8_lossy(data.get(1..).unwrap_or_default())
            )),
            (Stage::Handshake, other) => {
                Err(format!("{} before READY", String::from_utf8_lossy(other)))
            }
            (Stage::Traffic, b"PING") if data.len() >= 2 => {
                // The time to live, then the context the PONG returns (at
                // most 16 bytes, as libzmq keeps). A peer that does not read
                // what we send gets no more PONGs rather than a growing
                // queue of them.
                if self.backlog() < MAX_PROTOCOL_BACKLOG {
                    let context = &data[2..];
                    let context = &context[..context.len().min(16)];
                    match &mut self.curve {
                        None => codec::push_command(&mut self.out, "PONG", context),
                        Some(_) => {
                            let mut pong = Vec::with_capacity(5 + context.len());
                            pong.extend_from_slice(b"\x04PONG");
                            pong.extend_from_slice(context);
                            self.push_box(super::curve::COMMAND, &pong);
                        }
                    }
                }
                Ok(None)
            }
            // PONG, SUBSCRIBE and the like mean nothing here.
            _ => Ok(None),
        }
    }

    /// Checks the peer's metadata (READY's, or CURVE's): its socket type
    /// must be one that talks to ours.
    fn accept_peer(&self, properties: &[u8]) -> Result<(), String> {
        let peer = codec::property(properties, "Socket-Type")?
            .ok_or("a handshake without a socket type")?;
        if !self.kind.accepts(peer) {
            return Err(format!(
                "a {} socket cannot talk to a {} socket",
                String::from_utf8_lossy(peer),
                self.kind.name()
            ));
        }
        Ok(())
    }

    /// A command frame on a CURVE connection: the handshake's, or a
    /// MESSAGE box sent as a command (as RFC 26 has it).
    fn curve_command(&mut self, body: Vec<u8>) -> Result<Option<Event>, String> {
        if self.stage == Stage::Traffic {
            if body.starts_with(b"\x07MESSAGE") {
                return self.open_box(body);
            }
            let (name, _) = codec::split_command(&body)?;
            return Err(format!(
                "{} outside CURVE's boxes",
                String::from_utf8_lossy(name)
            ));
        }
        let Some(curve) = &mut self.curve else {
            return Ok(None);
        };
        match curve.handshake(&body, &codec::properties(self.kind.name())) {
            Ok(Step::Send(command)) => {
                codec::push_command_body(&mut self.out, &command);
                Ok(None)
            }
            Ok(Step::Done { metadata, reply }) => {
                self.accept_peer(&metadata)?;
                if let Some(reply) = reply {
                    codec::push_command_body(&mut self.out, &reply);
                }
                self.stage = Stage::Traffic;
                self.reader.allow_messages();
                let held = std::mem::take(&mut self.held);
                for (more, frame) in codec::encoded_frames(&held) {
                    self.push_box(u8::from(more), frame);
                }
                Ok(Some(Event::Ready))
            }
            Err(failure) => {
                if let Some(key) = failure.refused_key {
                    codec::push_command_body(&mut self.out, &Curve::refusal());
                    self.refused_key = Some(key);
                }
                Err(failure.reason)
            }
        }
    }

    /// Opens a MESSAGE box from the peer: a command inside is handled, a
    /// frame joins the message being received.
    fn open_box(&mut self, body: Vec<u8>) -> Result<Option<Event>, String> {
        let Some(curve) = &mut self.curve else {
            return Ok(None);
        };
        let (flags, frame) = curve.open_message(body)?;
        if flags & super::curve::COMMAND != 0 {
            return self.command(&frame);
        }
        if self.parts.len() >= MAX_FRAMES {
            return Err(format!("a message of more than {MAX_FRAMES} frames"));
        }
        self.parts_size = self.parts_size.saturating_add(frame.len());
        if self.parts_size > MAX_MESSAGE {
            return Err(format!("a message over {MAX_MESSAGE} bytes"));
        }
        self.parts.push(frame);
        if flags & super::curve::MORE != 0 {
            return Ok(None);
        }
        self.parts_size = 0;
        let frames = std::mem::take(&mut self.parts);
        Ok(self.received(frames).map(Event::Message))
    }

    /// Appends one frame for the peer in a MESSAGE box (CURVE, after the
    /// handshake).
    fn push_box(&mut self, flags: u8, frame: &[u8]) {
        if let Some(sealer) = self.curve.as_deref().and_then(Curve::sealer) {
            sealer.push_frame(&mut self.out, flags, frame);
        }
    }

    /// CURVE: what seals this connection's messages once the handshake is
    /// done, for a thread that writes them to the stream itself (its
    /// writes and this connection's must take turns under one lock).
    pub(crate) fn sealer(&self) -> Option<Sealer> {
        self.curve.as_deref().and_then(Curve::sealer).cloned()
    }

    /// Whether the connection speaks CURVE.
    pub(crate) fn is_curve(&self) -> bool {
        self.curve.is_some()
    }

    /// Whether the handshake is still under way.
    pub(crate) fn in_handshake(&self) -> bool {
        self.stage != Stage::Traffic
    }

    /// A message from the peer as the application sees it; `None` for one
    /// this socket type drops.
    fn received(&mut self, mut frames: Vec<Vec<u8>>) -> Option<Vec<Vec<u8>>> {
        match self.kind {
            SocketType::Dealer => Some(frames),
            SocketType::Router => {
                frames.insert(0, self.routing_id.clone());
                Some(frames)
            }
            // A REQ socket drops what does not start with the delimiter.
            SocketType::Req => frames
                .first()
                .is_some_and(Vec::is_empty)
                .then(|| frames.split_off(1)),
            SocketType::Rep => {
                // The envelope is everything up to the first empty frame.
                let delimiter = frames.iter().position(Vec::is_empty)?;
                let body = frames.split_off(delimiter + 1);
                self.envelope = Some(frames);
                Some(body)
            }
        }
    }

    /// Queues a message for the peer: for REQ a request (the delimiter is
    /// added), for REP the reply to the last request (its envelope is
    /// added; false when there is no request to answer), for DEALER and
    /// ROUTER the frames as they are (a ROUTER's caller has already chosen
    /// this connection by its routing id). Before our READY is out the
    /// message waits for it.
    pub(crate) fn send<'a, I>(&mut self, frames: I) -> bool
    where
        I: IntoIterator<Item = &'a [u8]>,
        I::IntoIter: Clone,
    {
        let envelope = match self.kind {
            SocketType::Rep => match self.envelope.take() {
                Some(envelope) => envelope,
                None => return false,
            },
            // No allocation for the other types.
            _ => Vec::new(),
        };
        let delimiter: &[&[u8]] = if self.kind == SocketType::Req {
            &[b""]
        } else {
            &[]
        };
        let head = delimiter
            .iter()
            .copied()
            .chain(envelope.iter().map(Vec::as_slice));
        let frames = frames.into_iter();
        if self.stage == Stage::Traffic {
            if let Some(sealer) = self.curve.as_deref().and_then(Curve::sealer) {
                // The map lets the frames' lifetime meet the envelope's.
                #[allow(clippy::map_identity)]
                sealer.push_message(&mut self.out, head.chain(frames.map(|frame| frame)));
                return true;
            }
        }
        let waits = match self.curve {
            None => self.stage == Stage::Greeting,
            Some(_) => self.stage != Stage::Traffic,
        };
        let target = if waits { &mut self.held } else { &mut self.out };
        target.reserve(codec::message_size(head.clone()) + codec::message_size(frames.clone()));
        for part in head {
            codec::push_continued(target, part);
        }
        codec::push_message(target, frames);
        true
    }

    /// The bytes to send now.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    /// Marks `count` bytes of [`Connection::pending`] as sent.
    pub(crate) fn sent(&mut self, count: usize) {
        self.sent = (self.sent + count).min(self.out.len());
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
            if self.out.capacity() > 1 << 20 {
                // A large message went out: give the memory back.
                self.out = Vec::new();
            }
        } else if self.sent > (1 << 20) && self.sent * 2 > self.out.len() {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
    }

    /// Writes what `sink` takes of the pending bytes: all of them on a
    /// blocking stream, what fits on a non-blocking one (which then
    /// signals when it can take more). An error means the connection is
    /// broken.
    pub(crate) fn write_to(&mut self, sink: &mut dyn Write) -> io::Result<()> {
        while !self.pending().is_empty() {
            match sink.write(self.pending()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => self.sent(written),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Moves the bytes each side has for the other until neither has any,
    /// and returns the events each saw.
    fn exchange(a: &mut Connection, b: &mut Connection) -> (Vec<Event>, Vec<Event>) {
        let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
        loop {
            let (to_b, to_a) = (a.pending().to_vec(), b.pending().to_vec());
            if to_a.is_empty() && to_b.is_empty() {
                return (seen_a, seen_b);
            }
            a.sent(to_b.len());
            b.sent(to_a.len());
            b.handle_input(&to_b);
            a.handle_input(&to_a);
            while let Some(event) = b.poll_event().unwrap() {
                seen_b.push(event);
            }
            while let Some(event) = a.poll_event().unwrap() {
                seen_a.push(event);
            }
        }
    }

    /// Sends a message of `texts` as frames.
    fn send(connection: &mut Connection, texts: &[&str]) -> bool {
        connection.send(texts.iter().map(|text| text.as_bytes()))
    }

    fn frames(texts: &[&str]) -> Vec<Vec<u8>> {
        texts.iter().map(|text| text.as_bytes().to_vec()).collect()
    }

    /// A request sent before the handshake, seen by the ROUTER once the
    /// handshake is done (never on the wire in clear with CURVE).
    fn first_request(client: &mut Connection, router: &mut Connection) {
        assert!(send(client, &["{\"method\": \"about\"}"]));
        let in_clear = client.pending().windows(6).any(|w| w == b"method");
        assert_eq!(
            in_clear,
            client.curve.is_none() && client.stage != Stage::Greeting
        );
        let (client_saw, router_saw) = exchange(client, router);
        assert_eq!(client_saw, vec![Event::Ready]);
        assert_eq!(
            router_saw,
            vec![
                Event::Ready,
                Event::Message(frames(&["\x00id", "", "{\"method\": \"about\"}"]))
            ]
        );
    }

    #[test]
    fn a_request_through_a_router_and_back() {
        let mut client = Connection::new(SocketType::Req);
        let mut router = Connection::router(b"\x00id".to_vec());
        // Sent before any handshake: held until our READY is out.
        first_request(&mut client, &mut router);
        assert!(send(&mut router, &["", "reply"]));
        let (client_saw, _) = exchange(&mut client, &mut router);
        assert_eq!(client_saw, vec![Event::Message(frames(&["reply"]))]);
        // A reply without the delimiter is dropped by REQ.
        assert!(send(&mut router, &["stray"]));
        let (client_saw, _) = exchange(&mut client, &mut router);
        assert_eq!(client_saw, vec![]);
    }

    #[test]
    fn rep_answers_with_the_requests_envelope() {
        let mut dealer = Connection::new(SocketType::Dealer);
        let mut rep = Connection::new(SocketType::Rep);
        assert!(!send(&mut rep, &["nothing asked"]));
        let (_, rep_saw) = exchange(&mut dealer, &mut rep);
        assert_eq!(rep_saw, vec![Event::Ready]);
        assert!(send(&mut dealer, &["a", "b", "", "status"]));
        let (_, rep_saw) = exchange(&mut dealer, &mut rep);
        assert_eq!(rep_saw, vec![Event::Message(frames(&["status"]))]);
        assert!(send(&mut rep, &["running"]));
        let (dealer_saw, _) = exchange(&mut dealer, &mut rep);
        assert_eq!(
            dealer_saw,
            vec![Event::Message(frames(&["a", "b", "", "running"]))]
        );
        // No delimiter: not a request.
        assert!(send(&mut dealer, &["status"]));
        let (_, rep_saw) = exchange(&mut dealer, &mut rep);
        assert_eq!(rep_saw, vec![]);
    }

    #[test]
    fn the_handshake_and_messages_byte_by_byte() {
        let mut peer = codec::greeting().to_vec();
        codec::push_ready(&mut peer, "ROUTER");
        codec::push_message(&mut peer, [&b""[..], b"one"]);
        let long = vec![7u8; 300];
        codec::push_message(&mut peer, [&b""[..], &long[..]]);
        let mut client = Connection::new(SocketType::Req);
        let mut events = Vec::new();
        for (index, byte) in peer.into_iter().enumerate() {
            if index < 64 {
                // READY waits for the whole of the peer's greeting.
                assert_eq!(client.pending(), &codec::greeting()[..], "byte {index}");
            }
            client.handle_input(&[byte]);
            while let Some(event) = client.poll_event().unwrap() {
                events.push(event);
            }
        }
        assert_eq!(
            events,
            vec![
                Event::Ready,
                Event::Message(vec![b"one".to_vec()]),
                Event::Message(vec![long]),
            ]
        );
        assert_eq!(client.stage, Stage::Traffic);
        // Our greeting, then READY once the peer's greeting came.
        let mut expected = codec::greeting().to_vec();
        codec::push_ready(&mut expected, "REQ");
        assert_eq!(client.pending(), &expected[..]);
    }

    #[test]
    fn pings_are_answered_with_their_context() {
        let mut peer = codec::greeting().to_vec();
        codec::push_ready(&mut peer, "DEALER");
        codec::push_command(&mut peer, "PING", b"\x00\x0aabc");
        codec::push_command(&mut peer, "PING", &[b'x'; 100]);
        codec::push_command(&mut peer, "PONG", b"");
        codec::push_message(&mut peer, [&b"x"[..]]);
        let mut dealer = Connection::new(SocketType::Dealer);
        dealer.handle_input(&peer);
        assert_eq!(dealer.poll_event().unwrap(), Some(Event::Ready));
        assert_eq!(
            dealer.poll_event().unwrap(),
            Some(Event::Message(vec![b"x".to_vec()]))
        );
        let mut expected = codec::greeting().to_vec();
        codec::push_ready(&mut expected, "DEALER");
        codec::push_command(&mut expected, "PONG", b"abc");
        // A long context comes back cut to 16 bytes.
        codec::push_command(&mut expected, "PONG", &[b'x'; 16]);
        assert_eq!(dealer.pending(), &expected[..]);
        let mut sink = Vec::new();
        dealer.write_to(&mut sink).unwrap();
        assert_eq!(sink, expected);
        assert_eq!(dealer.backlog(), 0);
    }

    #[test]
    fn peers_that_cannot_talk_to_us_are_refused_with_a_reason() {
        let refusal = |kind: SocketType, peer_type: &str, extra: &[u8]| {
            let mut bytes = codec::greeting().to_vec();
            codec::push_ready(&mut bytes, peer_type);
            bytes.extend_from_slice(extra);
            let mut connection = Connection::new(kind);
            connection.handle_input(&bytes);
            loop {
                match connection.poll_event() {
                    Ok(Some(_)) => continue,
                    Ok(None) => return None,
                    Err(reason) => return Some(reason),
                }
            }
        };
        assert!(refusal(SocketType::Router, "PUB", b"")
            .unwrap()
            .contains("a PUB socket"));
        assert!(refusal(SocketType::Req, "REQ", b"")
            .unwrap()
            .contains("a REQ socket cannot talk to a REQ"));
        assert_eq!(refusal(SocketType::Dealer, "ROUTER", b""), None);
        let mut error = Vec::new();
        codec::push_command(&mut error, "ERROR", b"\x06denied");
        assert!(refusal(SocketType::Req, "ROUTER", &error)
            .unwrap()
            .contains("denied"));
        let mut early = codec::greeting().to_vec();
        codec::push_message(&mut early, [&b"x"[..]]);
        let mut connection = Connection::new(SocketType::Req);
        connection.handle_input(&early);
        assert!(connection.poll_event().unwrap_err().contains("handshake"));
        assert!(!connection.handshake_expired(Instant::now()));
        assert!(connection.handshake_expired(Instant::now() + HANDSHAKE_TIMEOUT * 2));
    }

    fn curve_pair() -> (Security, Security, crate::curve::PublicKey) {
        use super::super::curve::Allowed;
        use crate::curve::KeyPair;
        use std::sync::Arc;
        let server = Arc::new(KeyPair::generate().unwrap());
        let client = Arc::new(KeyPair::generate().unwrap());
        let client_key = *client.public();
        (
            Security::CurveClient {
                server: *server.public(),
                ours: client,
            },
            Security::CurveServer {
                ours: server,
                allowed: Arc::new(Allowed::new(None)),
            },
            client_key,
        )
    }

    #[test]
    fn a_curve_request_through_a_router_and_back() {
        let (client_security, server_security, _) = curve_pair();
        let mut client = Connection::secured(SocketType::Req, &client_security).unwrap();
        let mut router = Connection::secured(SocketType::Router, &server_security)
            .unwrap()
            .routed(b"\x00id".to_vec());
        // Sent before the handshake: held, then sealed once it is done.
        first_request(&mut client, &mut router);
        let long = "x".repeat(70_000);
        assert!(send(&mut router, &["", "reply", &long]));
        let sealed = router.pending().to_vec();
        assert!(!sealed.windows(5).any(|w| w == b"reply"));
        let (client_saw, _) = exchange(&mut client, &mut router);
        assert_eq!(client_saw, vec![Event::Message(frames(&["reply", &long]))]);
        // Byte by byte, a ping in a box is answered with a pong in a box.
        let mut ping = Vec::new();
        router.push_box(super::super::curve::COMMAND, b"\x04PING\x00\x0actx");
        ping.extend_from_slice(router.pending());
        router.sent(ping.len());
        for byte in ping {
            client.handle_input(&[byte]);
            assert_eq!(client.poll_event().unwrap(), None);
        }
        let pong = client.pending().to_vec();
        client.sent(pong.len());
        assert!(!pong.windows(4).any(|w| w == b"PONG"));
        router.handle_input(&pong);
        assert_eq!(router.poll_event().unwrap(), None);
        // A box that does not open ends the connection.
        assert!(send(&mut router, &["", "again"]));
        let mut tampered = router.pending().to_vec();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        client.handle_input(&tampered);
        assert!(client.poll_event().unwrap_err().contains("does not open"));
    }

    #[test]
    fn a_curve_server_refuses_unknown_keys_with_error_400() {
        use super::super::curve::Allowed;
        use std::sync::Arc;
        let (client_security, server_security, client_key) = curve_pair();
        let Security::CurveServer { ours, .. } = server_security else {
            unreachable!()
        };
        let other = *crate::curve::KeyPair::generate().unwrap().public();
        let strict = Security::CurveServer {
            ours,
            allowed: Arc::new(Allowed::new(Some(vec![other]))),
        };
        let mut client = Connection::secured(SocketType::Dealer, &client_security).unwrap();
        let mut server = Connection::secured(SocketType::Dealer, &strict).unwrap();
        let mut client_error = None;
        let mut server_error = None;
        for _ in 0..10 {
            let (to_server, to_client) = (client.pending().to_vec(), server.pending().to_vec());
            client.sent(to_server.len());
            server.sent(to_client.len());
            server.handle_input(&to_server);
            client.handle_input(&to_client);
            if server_error.is_none() {
                server_error = server.poll_event().err();
            }
            if client_error.is_none() {
                client_error = client.poll_event().err();
            }
        }
        assert!(server_error.unwrap().contains("not allowed"));
        assert_eq!(server.refused_key(), Some(&client_key));
        assert!(client_error.unwrap().contains("ERROR 400"));
        // A NULL peer of a CURVE server is told why it is refused.
        let mut plain = Connection::new(SocketType::Dealer);
        let mut server = Connection::secured(SocketType::Dealer, &strict).unwrap();
        server.handle_input(plain.pending());
        assert!(server
            .poll_event()
            .unwrap_err()
            .contains("mechanism NULL where CURVE is spoken"));
        plain.handle_input(&server.pending()[..64]);
        assert!(plain.poll_event().unwrap_err().contains("CURVE where NULL"));
    }

    /// Random bytes, and valid streams with random bytes changed, in random
    /// pieces: the connection reports or refuses, and never panics.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut valid = codec::greeting().to_vec();
        codec::push_ready(&mut valid, "DEALER");
        codec::push_message(&mut valid, [&b""[..], &[1u8; 300][..], b"{}"]);
        codec::push_command(&mut valid, "PING", b"\x00\x01ctx");
        for round in 0..3000 {
            let mut bytes = if round % 2 == 0 {
                valid.clone()
            } else {
                (0..random() % 400).map(|_| random() as u8).collect()
            };
            for _ in 0..random() % 4 {
                if !bytes.is_empty() {
                    let at = (random() as usize) % bytes.len();
                    bytes[at] = random() as u8;
                }
            }
            let kind = [
                SocketType::Req,
                SocketType::Rep,
                SocketType::Dealer,
                SocketType::Router,
            ][round % 4];
            let mut connection = Connection::new(kind);
            let mut rest = &bytes[..];
            'feed: while !rest.is_empty() {
                let take = 1 + (random() as usize) % rest.len();
                connection.handle_input(&rest[..take]);
                rest = &rest[take..];
                loop {
                    match connection.poll_event() {
                        Ok(Some(_)) => {
                            let _ = send(&mut connection, &["answer"]);
                        }
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }
    }
}
