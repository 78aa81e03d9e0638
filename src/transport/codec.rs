//! ZMTP 3.0 framing: the greeting, frames and commands as bytes, and back.
//! No socket semantics (handshake, heartbeats, envelopes): those are the
//! [`Connection`](super::Connection)'s.

use std::io::{self, Read};

const MORE: u8 = 0x01;
const LONG: u8 = 0x02;
const COMMAND: u8 = 0x04;

/// The largest message taken from a peer (all its frames); a bigger one
/// ends the connection. libzmq's default has no limit; this one only keeps
/// a broken or hostile peer from exhausting memory.
pub(crate) const MAX_MESSAGE: usize = 1 << 30;
/// The most frames one message may have (vPoller's have up to five: a
/// routing id or two, the delimiter, the request); each costs memory of
/// its own, even an empty one.
pub(crate) const MAX_FRAMES: usize = 256;
/// The largest command taken (READY's properties, a PING's context).
const MAX_COMMAND: usize = 64 * 1024;
/// Frames from this size on are read into a buffer of their own.
const LARGE: usize = 1 << 20;
/// How much room a read asks for at least.
const ROOM: usize = 64 * 1024;

/// One unit of what a peer sends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unit {
    /// The greeting: ZMTP 3 with the NULL mechanism (others are refused).
    Greeting,
    /// A command frame's body (its name and data).
    Command(Vec<u8>),
    /// A whole message, its frames in order.
    Message(Vec<Vec<u8>>),
}

/// Turns the bytes of one connection into [`Unit`]s: bytes in with
/// [`Reader::read_from`] or [`Reader::push`], units out with
/// [`Reader::next`]. A half-read frame waits in the buffer, so reads may
/// stop at any byte.
pub(crate) struct Reader {
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    /// A large data frame being read straight into its own buffer: its
    /// flags, the body so far and the bytes still to come.
    large: Option<(u8, Vec<u8>, usize)>,
    greeted: bool,
    /// The security mechanism the peer's greeting must name.
    mechanism: &'static [u8],
    /// Whether data frames may come (the handshake is done).
    messages_allowed: bool,
    frames: Vec<Vec<u8>>,
    message_size: usize,
}

impl Reader {
    /// A reader of a peer whose greeting names the NULL mechanism.
    #[cfg(test)]
    pub(crate) fn new() -> Reader {
        Reader::expecting(b"NULL")
    }

    /// A reader of a peer whose greeting names `mechanism`.
    pub(crate) fn expecting(mechanism: &'static [u8]) -> Reader {
        Reader {
            buffer: Vec::new(),
            start: 0,
            end: 0,
            large: None,
            greeted: false,
            mechanism,
            messages_allowed: false,
            frames: Vec::new(),
            message_size: 0,
        }
    }

    /// From now on data frames may come; before, one is refused as soon
    /// as its header is in (nothing of it is buffered).
    pub(crate) fn allow_messages(&mut self) {
        self.messages_allowed = true;
    }

    /// One `read` from `source` into the buffer: the bytes read, 0 at the
    /// end of the stream. The body of a large frame is read into a buffer
    /// of its exact size, which becomes the frame: a big message costs its
    /// size once here, not a growing buffer and a copy.
    pub(crate) fn read_from(&mut self, source: &mut dyn Read) -> io::Result<usize> {
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

    /// The next unit in the bytes read so far, `None` until one is whole;
    /// an error ends the connection (a peer that is not ZMTP 3 with the NULL
    /// mechanism, a broken frame, a message over [`MAX_MESSAGE`]).
    pub(crate) fn next(&mut self) -> Result<Option<Unit>, String> {
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
            if !self.greeted {
                if data.len() >= 11 {
                    check_signature(&data[..11])?;
                }
                if data.len() < 64 {
                    return Ok(None);
                }
                check_mechanism(&data[12..32], self.mechanism)?;
                self.start += 64;
                self.greeted = true;
                return Ok(Some(Unit::Greeting));
            }
            let Some((flags, header, size)) = frame_header(data)? else {
                return Ok(None);
            };
            if flags & COMMAND != 0 {
                // PING and PONG may come between the frames of a message
                // (libzmq sends them when they are due); a command itself is
                // one frame.
                if flags & MORE != 0 {
                    return Err("a command frame marked as continued".into());
                }
                if size > MAX_COMMAND {
                    return Err(format!("a command of {size} bytes (at most {MAX_COMMAND})"));
                }
            } else {
                if !self.messages_allowed {
                    return Err("a message before the handshake".into());
                }
                if self.message_size.saturating_add(size) > MAX_MESSAGE {
                    return Err(format!(
                        "a message over {MAX_MESSAGE} bytes (a frame of {size})"
                    ));
                }
                if self.frames.len() >= MAX_FRAMES {
                    return Err(format!("a message of more than {MAX_FRAMES} frames"));
                }
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
            let body = data[header..header + size].to_vec();
            self.start += header + size;
            if flags & COMMAND != 0 {
                return Ok(Some(Unit::Command(body)));
            }
            if let Some(message) = self.add_frame(flags, body) {
                return Ok(Some(message));
            }
        }
    }

    /// Adds a data frame to the message being read; the message when it
    /// was the last frame.
    fn add_frame(&mut self, flags: u8, body: Vec<u8>) -> Option<Unit> {
        self.message_size += body.len();
        self.frames.push(body);
        if flags & MORE != 0 {
            return None;
        }
        self.message_size = 0;
        Some(Unit::Message(std::mem::take(&mut self.frames)))
    }

    /// Bytes taken from the peer and not yet handed out as units.
    #[cfg(test)]
    pub(crate) fn buffered(&self) -> usize {
        self.buffer.len()
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

fn check_mechanism(field: &[u8], expected: &[u8]) -> Result<(), String> {
    let end = field.iter().position(|&byte| byte == 0).unwrap_or(20);
    let named = &field[..end];
    if named != expected {
        let hint = match (named, expected) {
            (b"CURVE", b"NULL") => " (this side has no CURVE keys set)",
            (b"NULL", b"CURVE") => " (this side needs CURVE: the peer has no CURVE keys set)",
            _ => "",
        };
        return Err(format!(
            "security mechanism {} where {} is spoken{hint}",
            String::from_utf8_lossy(named),
            String::from_utf8_lossy(expected),
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
pub(crate) fn split_command(body: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let size = usize::from(*body.first().ok_or("an empty command")?);
    let name = body.get(1..1 + size).ok_or("a command cut short")?;
    Ok((name, &body[1 + size..]))
}

/// The value of property `wanted` in a READY command's properties, `None`
/// when it has none; an error when the properties are cut short.
pub(crate) fn property<'a>(
    mut properties: &'a [u8],
    wanted: &str,
) -> Result<Option<&'a [u8]>, String> {
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
        if name.eq_ignore_ascii_case(wanted.as_bytes()) {
            return Ok(Some(value));
        }
        properties = &rest[4 + value_size..];
    }
    Ok(None)
}

/// Our greeting: ZMTP 3.0, NULL mechanism, not as server.
#[cfg(test)]
pub(crate) fn greeting() -> [u8; 64] {
    greeting_with(b"NULL", false)
}

/// Our greeting: ZMTP 3.0 with `mechanism` (at most 20 bytes), as server
/// or not.
pub(crate) fn greeting_with(mechanism: &[u8], as_server: bool) -> [u8; 64] {
    let mut greeting = [0u8; 64];
    greeting[0] = 0xff;
    greeting[9] = 0x7f;
    greeting[10] = 3;
    let size = mechanism.len().min(20);
    greeting[12..12 + size].copy_from_slice(&mechanism[..size]);
    greeting[32] = u8::from(as_server);
    greeting
}

/// Appends a command frame `name` with `data`.
pub(crate) fn push_command(out: &mut Vec<u8>, name: &str, data: &[u8]) {
    let mut body = Vec::with_capacity(1 + name.len() + data.len());
    // Command names are short ASCII words of ours.
    body.push(name.len() as u8);
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    push_frame(out, COMMAND, &body);
}

/// Appends the READY command of a `socket_type` socket.
pub(crate) fn push_ready(out: &mut Vec<u8>, socket_type: &str) {
    push_command(out, "READY", &properties(socket_type));
}

/// The metadata of a `socket_type` socket (READY's, or a CURVE box's).
pub(crate) fn properties(socket_type: &str) -> Vec<u8> {
    let mut properties = vec![11];
    properties.extend_from_slice(b"Socket-Type");
    properties.extend_from_slice(&(socket_type.len() as u32).to_be_bytes());
    properties.extend_from_slice(socket_type.as_bytes());
    properties
}

/// Appends a command frame of `body` (its name and data, as CURVE's
/// handshake makes them).
pub(crate) fn push_command_body(out: &mut Vec<u8>, body: &[u8]) {
    push_frame(out, COMMAND, body);
}

/// Appends the header of a data frame of `size` bytes, last of its
/// message; the body follows.
pub(crate) fn push_data_header(out: &mut Vec<u8>, size: usize) {
    match u8::try_from(size) {
        Ok(size) => out.extend_from_slice(&[0, size]),
        Err(_) => {
            out.push(LONG);
            out.extend_from_slice(&(size as u64).to_be_bytes());
        }
    }
}

/// The frames of bytes this module encoded (messages only, as
/// [`push_message`] and [`push_continued`] write them): each frame's body
/// and whether more frames follow.
pub(crate) fn encoded_frames(mut bytes: &[u8]) -> Vec<(bool, &[u8])> {
    let mut frames = Vec::new();
    while let Ok(Some((flags, header, size))) = frame_header(bytes) {
        let Some(body) = bytes.get(header..header + size) else {
            break;
        };
        frames.push((flags & MORE != 0, body));
        bytes = &bytes[header + size..];
    }
    frames
}

/// Appends a message of `frames` (at least one).
pub(crate) fn push_message<'a>(out: &mut Vec<u8>, frames: impl IntoIterator<Item = &'a [u8]>) {
    let mut frames = frames.into_iter().peekable();
    while let Some(frame) = frames.next() {
        let flags = if frames.peek().is_some() { MORE } else { 0 };
        push_frame(out, flags, frame);
    }
}

/// Appends one frame of a message that more frames follow.
pub(crate) fn push_continued(out: &mut Vec<u8>, frame: &[u8]) {
    push_frame(out, MORE, frame);
}

/// The bytes a message of `frames` takes on the wire, at most.
pub(crate) fn message_size<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> usize {
    frames.into_iter().map(|frame| frame.len() + 9).sum()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_frames_come_whole_in_any_split() {
        let big: Vec<u8> = (0..3 << 20).map(|index| (index % 251) as u8).collect();
        let mut bytes = greeting().to_vec();
        push_message(&mut bytes, [&b""[..], &big[..]]);
        push_message(&mut bytes, [&big[..1 << 20]]);
        push_message(&mut bytes, [&b"after"[..]]);
        for chunk in [bytes.len(), 100_000, 7] {
            let mut reader = Reader::new();
            reader.allow_messages();
            let mut messages = Vec::new();
            for piece in bytes.chunks(chunk) {
                reader.push(piece);
                while let Some(unit) = reader.next().unwrap() {
                    if let Unit::Message(frames) = unit {
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
                    reader.buffered() < (3 << 20) + (256 << 10),
                    "{}",
                    reader.buffered()
                );
            }
        }
    }

    /// Every unit in `bytes` (data allowed when `traffic`), or the refusal.
    fn units(bytes: &[u8], traffic: bool) -> Result<Vec<Unit>, String> {
        let mut reader = Reader::new();
        if traffic {
            reader.allow_messages();
        }
        reader.push(bytes);
        let mut units = Vec::new();
        while let Some(unit) = reader.next()? {
            units.push(unit);
        }
        Ok(units)
    }

    #[test]
    fn broken_framing_is_refused_with_a_reason() {
        let refusal = |bytes: &[u8]| units(bytes, true).err();
        let http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".repeat(3);
        assert!(refusal(&http).unwrap().contains("not a ZMTP 2 or 3 peer"));
        let mut old = greeting().to_vec();
        old[10] = 1;
        assert!(refusal(&old[..11]).unwrap().contains("ZMTP 2.0"));
        let mut curve = greeting().to_vec();
        curve[12..17].copy_from_slice(b"CURVE");
        assert!(refusal(&curve)
            .unwrap()
            .contains("CURVE where NULL is spoken"));
        let mut flags = greeting().to_vec();
        flags.extend_from_slice(&[0x40, 0]);
        assert!(refusal(&flags).unwrap().contains("flags"));
        let mut huge = greeting().to_vec();
        huge.push(LONG);
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(refusal(&huge).unwrap().contains("a message over"));
        let mut continued = greeting().to_vec();
        push_frame(&mut continued, COMMAND | MORE, b"\x04PING\x00\x00");
        assert!(refusal(&continued).unwrap().contains("continued"));
        // Half a greeting is no verdict yet.
        assert_eq!(refusal(&greeting()[..30]), None);
    }

    #[test]
    fn memory_is_bounded_by_what_can_be_a_message() {
        // Empty frames cost memory too: many of them are refused.
        let mut empties = greeting().to_vec();
        for _ in 0..MAX_FRAMES + 1 {
            push_frame(&mut empties, MORE, b"");
        }
        assert!(units(&empties, true)
            .unwrap_err()
            .contains("more than 256 frames"));
        // A large command is refused from its header on.
        let mut command = greeting().to_vec();
        command.push(COMMAND | LONG);
        command.extend_from_slice(&(1u64 << 30).to_be_bytes());
        assert!(units(&command, true).unwrap_err().contains("a command of"));
        // Data before the handshake is refused from its header on, before
        // any of its body is taken.
        let mut early = greeting().to_vec();
        early.push(LONG);
        early.extend_from_slice(&(1u64 << 29).to_be_bytes());
        assert!(units(&early, false)
            .unwrap_err()
            .contains("before the handshake"));
    }

    #[test]
    fn heartbeats_may_come_between_the_frames_of_a_message() {
        let mut bytes = greeting().to_vec();
        push_frame(&mut bytes, MORE, b"id");
        push_command(&mut bytes, "PING", b"\x00\x0actx");
        push_frame(&mut bytes, MORE, b"");
        push_command(&mut bytes, "PONG", b"");
        push_frame(&mut bytes, 0, b"request");
        let mut command = Vec::new();
        push_command(&mut command, "PING", b"\x00\x0actx");
        assert_eq!(
            units(&bytes, true).unwrap(),
            vec![
                Unit::Greeting,
                Unit::Command(command[2..].to_vec()),
                Unit::Command(b"\x04PONG".to_vec()),
                Unit::Message(vec![b"id".to_vec(), Vec::new(), b"request".to_vec()]),
            ]
        );
    }

    #[test]
    fn properties_are_found_by_name() {
        let mut ready = Vec::new();
        push_ready(&mut ready, "DEALER");
        let mut reader = Reader::new();
        reader.push(&greeting());
        reader.push(&ready);
        assert_eq!(reader.next().unwrap(), Some(Unit::Greeting));
        let Some(Unit::Command(body)) = reader.next().unwrap() else {
            panic!("no command");
        };
        let (name, properties) = split_command(&body).unwrap();
        assert_eq!(name, b"READY");
        assert_eq!(
            property(properties, "socket-type").unwrap(),
            Some(&b"DEALER"[..])
        );
        assert_eq!(property(properties, "Identity").unwrap(), None);
        assert!(property(&properties[..5], "Identity").is_err());
    }
}
