//! ZMTP 3.0 over TCP with the NULL mechanism, spoken by the proxy and the
//! worker themselves on `tcp://` endpoints: the wire format every libzmq 4
//! peer (pyzmq, ffi-rzmq, libvpoller) speaks, without libzmq's I/O threads.
//!
//! A libzmq socket hands every message between the thread that owns the
//! socket and an I/O thread, both ways; a proxy and a worker add four such
//! hand-offs to a round trip. Reading and writing the connection in the
//! thread that handles the message leaves only the network's own.
//!
//! This module is the codec (greeting, READY handshake, frames, PING) and
//! the `tcp://` endpoint reading; the loops are in the proxy and the worker.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;

/// The largest message taken from a peer (all its frames); a bigger one
/// ends the connection. libzmq's default has no limit; this one only keeps
/// a broken or hostile peer from exhausting memory.
pub(crate) const MAX_MESSAGE: usize = 1 << 30;
/// Frames from this size on are handed out without a copy when they can be.
const LARGE: usize = 1 << 20;

/// What a peer sent that the connection's owner has to act on.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The peer's greeting is in: send READY now ([`push_ready`]). Some
    /// libzmq versions never answer a READY that arrives before they sent
    /// their own greeting, so it waits for this.
    Greeting,
    /// The handshake is done; the peer's socket type.
    Ready(String),
    /// A whole message, its frames in order.
    Message(Vec<Vec<u8>>),
    /// A heartbeat: answer with [`pong`] and this context.
    Ping(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Greeting,
    Handshake,
    Traffic,
}

/// Reads one connection: bytes in with [`Decoder::read_from`] (or
/// [`Decoder::push`]), events out with [`Decoder::next`]. A half-read frame
/// waits in the buffer, so reads may stop at any byte (timeouts, non-blocking
/// sockets).
pub(crate) struct Decoder {
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    /// A large data frame being read straight into its own buffer: its
    /// flags, the body so far and the bytes still to come.
    large: Option<(u8, Vec<u8>, usize)>,
    stage: Stage,
    frames: Vec<Vec<u8>>,
    message_size: usize,
    accepts: &'static [&'static str],
}

impl Decoder {
    /// A decoder for a connection whose peer must be one of `accepts`
    /// (ZMTP socket type names, e.g. `["REQ", "DEALER", "ROUTER"]`).
    pub(crate) fn new(accepts: &'static [&'static str]) -> Decoder {
        Decoder {
            buffer: Vec::new(),
            start: 0,
            end: 0,
            large: None,
            stage: Stage::Greeting,
            frames: Vec::new(),
            message_size: 0,
            accepts,
        }
    }

    /// Whether the handshake is done.
    pub(crate) fn is_ready(&self) -> bool {
        self.stage == Stage::Traffic
    }

    /// One `read` from `source` into the buffer: the bytes read, 0 at the
    /// end of the stream. The body of a large frame is read into a buffer
    /// of its exact size, which becomes the frame: a big message costs its
    /// size once here, not a growing buffer and a copy.
    pub(crate) fn read_from(&mut self, source: &mut impl Read) -> io::Result<usize> {
        const ROOM: usize = 64 * 1024;
        if let Some((_, body, left)) = self.large.as_mut().filter(|(_, _, left)| *left > 0) {
            let before = body.len();
            // Reads into the spare capacity; what came before an error is kept.
            let outcome = source.take(*left as u64).read_to_end(body);
            let read = body.len() - before;
            *left -= read;
            return match outcome {
                Ok(_) if read == 0 && *left > 0 => Ok(0),
                Ok(_) => Ok(read),
                Err(_) if read > 0 => Ok(read),
                Err(error) => Err(error),
            };
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buffer.len() - self.end < ROOM {
            if self.start > 0 {
                self.buffer.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buffer.len() - self.end < ROOM {
                let size = (self.buffer.len() * 2).max(self.end + ROOM);
                self.buffer.resize(size, 0);
            }
        }
        let read = source.read(&mut self.buffer[self.end..])?;
        self.end += read;
        Ok(read)
    }

    /// Adds bytes as if read.
    #[cfg(test)]
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        let mut source = bytes;
        while !source.is_empty() {
            // Reading from a slice cannot fail.
            let _ = self.read_from(&mut source);
        }
    }

    /// The next event in the bytes read so far, `None` until one is whole;
    /// an error ends the connection (a peer that is not ZMTP 3 with the NULL
    /// mechanism, an incompatible socket type, a broken frame, a message over
    /// [`MAX_MESSAGE`]).
    pub(crate) fn next(&mut self) -> Result<Option<Event>, String> {
        loop {
            if let Some((flags, body, left)) = self.large.take() {
                if left > 0 {
                    self.large = Some((flags, body, left));
                    return Ok(None);
                }
                if let Some(message) = self.add_frame(flags, body) {
                    return Ok(Some(message));
                }
                continue;
            }
            let data = &self.buffer[self.start..self.end];
            if self.stage == Stage::Greeting {
                if data.len() >= 11 {
                    check_signature(&data[..11])?;
                }
                if data.len() < 64 {
                    return Ok(None);
                }
                check_mechanism(&data[12..32])?;
                self.start += 64;
                self.stage = Stage::Handshake;
                return Ok(Some(Event::Greeting));
            }
            let Some((flags, header, size)) = frame_header(data)? else {
                return Ok(None);
            };
            if self.message_size + size > MAX_MESSAGE {
                return Err(format!(
                    "a message over {MAX_MESSAGE} bytes (a frame of {size})"
                ));
            }
            if flags & COMMAND == 0 && self.stage != Stage::Traffic {
                return Err("a message before the handshake".into());
            }
            if flags & COMMAND == 0 && size >= LARGE && data.len() < header + size {
                // The size is the peer's word: memory is taken as bytes come.
                let mut body = Vec::with_capacity(size.min(64 << 20));
                body.extend_from_slice(&data[header..]);
                let left = size - body.len();
                (self.start, self.end) = (0, 0);
                self.large = Some((flags, body, left));
                continue;
            }
            if data.len() < header + size {
                return Ok(None);
            }
            let body = &data[header..header + size];
            self.start += header + size;
            if flags & COMMAND != 0 {
                let (name, fields) = command(body)?;
                match (self.stage, name) {
                    (Stage::Handshake, b"READY") => {
                        let kind = socket_type(fields)?;
                        if !self.accepts.contains(&kind.as_str()) {
                            return Err(format!("a {kind} socket cannot talk to this one"));
                        }
                        self.stage = Stage::Traffic;
                        return Ok(Some(Event::Ready(kind)));
                    }
                    (_, b"ERROR") => {
                        let reason = fields.get(1..).unwrap_or_default();
                        return Err(format!(
                            "the peer refused the connection: {}",
                            String::from_utf8_lossy(reason)
                        ));
                    }
                    (Stage::Handshake, other) => {
                        return Err(format!("{} before READY", String::from_utf8_lossy(other)));
                    }
                    (_, b"PING") if fields.len() >= 2 => {
                        return Ok(Some(Event::Ping(fields[2..].to_vec())));
                    }
                    // PONG, SUBSCRIBE and the like mean nothing here.
                    _ => continue,
                }
            }
            let body = body.to_vec();
            if let Some(message) = self.add_frame(flags, body) {
                return Ok(Some(message));
            }
        }
    }

    /// Adds a data frame to the message being read; the message when it
    /// was the last frame.
    fn add_frame(&mut self, flags: u8, body: Vec<u8>) -> Option<Event> {
        self.message_size += body.len();
        self.frames.push(body);
        if flags & MORE != 0 {
            return None;
        }
        self.message_size = 0;
        Some(Event::Message(std::mem::take(&mut self.frames)))
    }
}

fn check_signature(signature: &[u8]) -> Result<(), String> {
    if signature[0] != 0xff || signature[9] & 1 == 0 {
        return Err("not a ZMTP 2 or 3 peer (not ZeroMQ, or ZMTP 1.0 of libzmq 2.x)".into());
    }
    if signature[10] < 3 {
        // Revision 1 is ZMTP 2.0 (libzmq 3.x); ZMTP 1.0 has no revision.
        return Err(format!(
            "a ZMTP 2.0 peer (libzmq 3.x, revision {}); ZMTP 3 (libzmq 4 and later) is needed",
            signature[10]
        ));
    }
    Ok(())
}

fn check_mechanism(field: &[u8]) -> Result<(), String> {
    let end = field.iter().position(|&byte| byte == 0).unwrap_or(20);
    if &field[..end] != b"NULL" {
        return Err(format!(
            "security mechanism {} (only NULL is served)",
            String::from_utf8_lossy(&field[..end])
        ));
    }
    Ok(())
}

/// Flags, header length and body size of the frame at the start of `data`.
fn frame_header(data: &[u8]) -> Result<Option<(u8, usize, usize)>, String> {
    let Some(&flags) = data.first() else {
        return Ok(None);
    };
    if flags & !(MORE | LONG | COMMAND) != 0 {
        return Err(format!("a frame with flags {flags:#04x}"));
    }
    if flags & LONG == 0 {
        return Ok(data.get(1).map(|&size| (flags, 2, usize::from(size))));
    }
    let Some(size) = data.get(1..9) else {
        return Ok(None);
    };
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(size);
    let size = usize::try_from(u64::from_be_bytes(bytes)).unwrap_or(usize::MAX);
    Ok(Some((flags, 9, size)))
}

/// A command's name and the bytes after it.
fn command(body: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let size = usize::from(*body.first().ok_or("an empty command")?);
    let name = body.get(1..1 + size).ok_or("a command cut short")?;
    Ok((name, &body[1 + size..]))
}

/// The `Socket-Type` property of a READY command's properties.
fn socket_type(mut properties: &[u8]) -> Result<String, String> {
    let broken = || "a READY command cut short".to_string();
    while !properties.is_empty() {
        let name_size = usize::from(properties[0]);
        let name = properties.get(1..1 + name_size).ok_or_else(broken)?;
        let rest = &properties[1 + name_size..];
        let value_size = rest.get(..4).ok_or_else(broken)?;
        let value_size =
            u32::from_be_bytes([value_size[0], value_size[1], value_size[2], value_size[3]])
                as usize;
        let value = rest.get(4..4 + value_size).ok_or_else(broken)?;
        if name.eq_ignore_ascii_case(b"Socket-Type") {
            return Ok(String::from_utf8_lossy(value).into_owned());
        }
        properties = &rest[4 + value_size..];
    }
    Err("a READY command without a socket type".into())
}

/// Our greeting: ZMTP 3.0, NULL mechanism.
fn greeting() -> [u8; 64] {
    let mut greeting = [0u8; 64];
    greeting[0] = 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    greeting[12..16].copy_from_slice(b"NULL");
    greeting
}

/// Between attempts to reach a peer that is not up (libzmq's default
/// reconnect interval).
pub(crate) const RECONNECT_INTERVAL: Duration = Duration::from_millis(100);

/// Connects to the first of `addresses` that answers before `deadline`,
/// with Nagle off, writes bounded by `write_timeout`, and our greeting sent;
/// the last failure when none does.
pub(crate) fn dial(
    addresses: &[SocketAddr],
    deadline: Instant,
    write_timeout: Duration,
) -> io::Result<TcpStream> {
    let mut failure = io::Error::new(io::ErrorKind::TimedOut, "no time left to connect");
    let mut greeting = Vec::with_capacity(64);
    push_greeting(&mut greeting);
    for address in addresses {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            break;
        }
        let dialled = TcpStream::connect_timeout(address, remaining).and_then(|stream| {
            stream.set_nodelay(true)?;
            stream.set_write_timeout(Some(write_timeout))?;
            (&stream).write_all(&greeting)?;
            Ok(stream)
        });
        match dialled {
            Ok(stream) => return Ok(stream),
            Err(error) => failure = error,
        }
    }
    Err(failure)
}

/// Appends our greeting, the first thing a connection sends.
pub(crate) fn push_greeting(out: &mut Vec<u8>) {
    out.extend_from_slice(&greeting());
}

/// Appends the READY command of a `socket_type` socket, sent once the
/// peer's greeting is in ([`Event::Greeting`]).
pub(crate) fn push_ready(out: &mut Vec<u8>, socket_type: &str) {
    let mut ready = vec![5];
    ready.extend_from_slice(b"READY");
    ready.push(11);
    ready.extend_from_slice(b"Socket-Type");
    ready.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    ready.extend_from_slice(socket_type.as_bytes());
    push_frame(out, COMMAND, &ready);
}

/// Appends the answer to a PING with `context`.
pub(crate) fn push_pong(out: &mut Vec<u8>, context: &[u8]) {
    let mut pong = vec![4];
    pong.extend_from_slice(b"PONG");
    pong.extend_from_slice(context);
    push_frame(out, COMMAND, &pong);
}

/// Appends a message of `frames` (at least one).
pub(crate) fn push_message<'a>(out: &mut Vec<u8>, frames: impl IntoIterator<Item = &'a [u8]>) {
    let mut frames = frames.into_iter().peekable();
    while let Some(frame) = frames.next() {
        let flags = if frames.peek().is_some() { MORE } else { 0 };
        push_frame(out, flags, frame);
    }
}

fn push_frame(out: &mut Vec<u8>, flags: u8, body: &[u8]) {
    match u8::try_from(body.len()) {
        Ok(size) => out.extend_from_slice(&[flags, size]),
        Err(_) => {
            out.push(flags | LONG);
            out.extend_from_slice(&(body.len() as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(body);
}

/// The addresses of a `tcp://HOST:PORT` endpoint as libzmq reads it (IPv4
/// unless the host is an IPv6 literal; `*` binds every interface), or
/// `None` for what is left to libzmq itself: other transports, interface
/// names, source addresses, a wildcard port.
pub(crate) fn tcp_addresses(endpoint: &str, bind: bool) -> Option<Vec<SocketAddr>> {
    let address = endpoint.strip_prefix("tcp://")?;
    if address.contains(';') {
        return None;
    }
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if host == "*" {
        return bind.then(|| vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)]);
    }
    let literal = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Some(vec![SocketAddr::new(ip, port)]);
    }
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .ok()?
        .filter(SocketAddr::is_ipv4)
        .collect();
    (!found.is_empty()).then_some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handshake(socket_type: &str) -> Vec<u8> {
        let mut bytes = Vec::new();
        push_greeting(&mut bytes);
        push_ready(&mut bytes, socket_type);
        bytes
    }

    #[test]
    fn a_handshake_then_messages_byte_by_byte() {
        let mut bytes = handshake("REQ");
        push_message(&mut bytes, [&b""[..], b"{\"method\": \"about\"}"]);
        let long = vec![7u8; 300];
        push_message(&mut bytes, [&long[..]]);
        let mut decoder = Decoder::new(&["REQ", "DEALER"]);
        let mut events = Vec::new();
        for byte in bytes {
            decoder.push(&[byte]);
            while let Some(event) = decoder.next().unwrap() {
                events.push(event);
            }
        }
        assert_eq!(
            events,
            vec![
                Event::Greeting,
                Event::Ready("REQ".into()),
                Event::Message(vec![vec![], b"{\"method\": \"about\"}".to_vec()]),
                Event::Message(vec![long]),
            ]
        );
        assert!(decoder.is_ready());
    }

    #[test]
    fn large_frames_come_whole_in_any_split() {
        let big: Vec<u8> = (0..3 << 20).map(|index| (index % 251) as u8).collect();
        let mut bytes = handshake("REQ");
        push_message(&mut bytes, [&b""[..], &big[..]]);
        push_message(&mut bytes, [&big[..1 << 20]]);
        push_message(&mut bytes, [&b"after"[..]]);
        for chunk in [bytes.len(), 100_000, 7] {
            let mut decoder = Decoder::new(&["REQ"]);
            let mut messages = Vec::new();
            for piece in bytes.chunks(chunk) {
                decoder.push(piece);
                while let Some(event) = decoder.next().unwrap() {
                    if let Event::Message(frames) = event {
                        messages.push(frames);
                    }
                }
            }
            assert_eq!(messages.len(), 3, "chunks of {chunk}");
            assert!(messages[0][0].is_empty() && messages[0][1] == big);
            assert_eq!(messages[1], vec![big[..1 << 20].to_vec()]);
            assert_eq!(messages[2], vec![b"after".to_vec()]);
            if chunk < big.len() {
                // Grown to fit one frame, not doubled past it.
                assert!(
                    decoder.buffer.len() < (3 << 20) + (256 << 10),
                    "{}",
                    decoder.buffer.len()
                );
            }
        }
    }

    /// Random bytes, and valid streams with random bytes changed, in random
    /// pieces: the decoder reports or refuses, and never panics.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut valid = handshake("DEALER");
        push_message(&mut valid, [&b""[..], &[1u8; 300][..], b"{}"]);
        push_frame(&mut valid, COMMAND, b"\x04PING\x00\x01ctx");
        for round in 0..2000 {
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
            let mut decoder = Decoder::new(&["DEALER", "ROUTER", "REQ"]);
            let mut rest = &bytes[..];
            'feed: while !rest.is_empty() {
                let take = 1 + (random() as usize) % rest.len();
                decoder.push(&rest[..take]);
                rest = &rest[take..];
                loop {
                    match decoder.next() {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }
    }

    #[test]
    fn pings_are_reported_and_other_commands_skipped() {
        let mut bytes = handshake("DEALER");
        push_frame(&mut bytes, COMMAND, b"\x04PING\x00\x0aabc");
        push_frame(&mut bytes, COMMAND, b"\x04PONG");
        push_message(&mut bytes, [&b"x"[..]]);
        let mut decoder = Decoder::new(&["DEALER"]);
        decoder.push(&bytes);
        assert_eq!(decoder.next().unwrap(), Some(Event::Greeting));
        assert_eq!(decoder.next().unwrap(), Some(Event::Ready("DEALER".into())));
        assert_eq!(decoder.next().unwrap(), Some(Event::Ping(b"abc".to_vec())));
        assert_eq!(
            decoder.next().unwrap(),
            Some(Event::Message(vec![b"x".to_vec()]))
        );
        assert_eq!(decoder.next().unwrap(), None);
        let mut pong = Vec::new();
        push_pong(&mut pong, b"abc");
        assert_eq!(pong, b"\x04\x08\x04PONGabc");
    }

    #[test]
    fn bad_peers_are_refused_with_a_reason() {
        let refusal = |bytes: &[u8], accepts: &'static [&'static str]| {
            let mut decoder = Decoder::new(accepts);
            decoder.push(bytes);
            loop {
                match decoder.next() {
                    Ok(Some(_)) => continue,
                    Ok(None) => return None,
                    Err(reason) => return Some(reason),
                }
            }
        };
        let http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3);
        assert!(refusal(&http, &["REQ"])
            .unwrap()
            .contains("not a ZMTP 2 or 3 peer"));
        let mut old = greeting().to_vec();
        old[10] = 1;
        assert!(refusal(&old[..11], &["REQ"]).unwrap().contains("ZMTP 2.0"));
        let mut curve = greeting().to_vec();
        curve[12..17].copy_from_slice(b"CURVE");
        assert!(refusal(&curve, &["REQ"]).unwrap().contains("CURVE"));
        assert!(refusal(&handshake("PUB"), &["REQ", "DEALER"])
            .unwrap()
            .contains("a PUB socket"));
        let mut early = greeting().to_vec();
        push_message(&mut early, [&b"x"[..]]);
        assert!(refusal(&early, &["REQ"]).unwrap().contains("handshake"));
        let mut flags = handshake("REQ");
        flags.extend_from_slice(&[0x40, 0]);
        assert!(refusal(&flags, &["REQ"]).unwrap().contains("flags"));
        let mut huge = handshake("REQ");
        huge.push(LONG);
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(refusal(&huge, &["REQ"]).unwrap().contains("a message over"));
        // Half a greeting is no verdict yet.
        assert_eq!(refusal(&greeting()[..30], &["REQ"]), None);
    }

    #[test]
    fn tcp_endpoints_as_libzmq_reads_them() {
        let one = |endpoint: &str, bind: bool| {
            tcp_addresses(endpoint, bind).map(|found| found[0].to_string())
        };
        assert_eq!(one("tcp://*:10123", true).as_deref(), Some("0.0.0.0:10123"));
        assert_eq!(one("tcp://*:10123", false), None);
        assert_eq!(
            one("tcp://127.0.0.1:9999", false).as_deref(),
            Some("127.0.0.1:9999")
        );
        assert_eq!(one("tcp://[::1]:9999", true).as_deref(), Some("[::1]:9999"));
        assert_eq!(
            one("tcp://localhost:10124", false).as_deref(),
            Some("127.0.0.1:10124")
        );
        assert_eq!(one("ipc:///tmp/vpoller", true), None);
        assert_eq!(one("tcp://*:*", true), None);
        assert_eq!(one("tcp://127.0.0.1:1;127.0.0.1:2", false), None);
        assert_eq!(one("tcp://no-such-host.invalid:1", false), None);
    }
}
