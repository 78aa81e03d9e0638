//! ZMTP's CURVE security mechanism (ZeroMQ RFC 26, CurveZMQ), as libzmq
//! speaks it: the handshake's four commands and the MESSAGE boxes after
//! it, on NaCl's `crypto_box` (X25519, XSalsa20-Poly1305) and
//! `crypto_secretbox` from well-kept crates. No I/O: the
//! [`Connection`](super::Connection) feeds commands in and takes bytes
//! out.
//!
//! The handshake, C the client's long-term key, C' its key for this
//! connection, S and S' the server's:
//! - client: HELLO, C' and a box of zeros (C'→S): only a client that knows
//!   S can make it;
//! - server: WELCOME, a box (S→C') of S' and a cookie, a secretbox that only
//!   the server opens, of C' and s';
//! - client: INITIATE, the cookie back, and a box (C'→S') of C, a vouch (a
//!   box C→S' of C' and S, which proves the client holds c) and its
//!   metadata (the socket type);
//! - server: READY, a box (S'→C') of its metadata. Here the server checks
//!   C against the keys it allows, and refuses with ERROR 400.
//!
//! Every box has a nonce of a fixed prefix and a counter (big-endian, one
//! up per box this side sends); a peer's counter must grow, so a replayed or
//! reordered box is refused. MESSAGE boxes hold one frame after a flags
//! byte (1: more frames follow, 2: a command such as PING).

use crate::curve::{random_bytes, KeyPair, PublicKey};
use crypto_box::aead::generic_array::GenericArray;
use crypto_box::aead::AeadInPlace;
use crypto_box::SalsaBox;
use crypto_secretbox::{KeyInit, XSalsa20Poly1305};
use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const TAG: usize = 16;
/// "\x07MESSAGE", the nonce, the tag and the flags byte.
pub(crate) const MESSAGE_OVERHEAD: usize = 8 + 8 + TAG + 1;
const HELLO_SIZE: usize = 200;
const WELCOME_SIZE: usize = 168;
/// INITIATE without metadata.
const INITIATE_MIN: usize = 9 + 96 + 8 + TAG + 128;
const READY_MIN: usize = 6 + 8 + TAG;

/// Flags in a MESSAGE box.
pub(crate) const MORE: u8 = 0x01;
pub(crate) const COMMAND: u8 = 0x02;

/// Which keys a CURVE server lets in.
pub(crate) struct Allowed {
    keys: Option<HashSet<PublicKey>>,
}

impl Allowed {
    /// `None`: any client that knows the server's key.
    pub(crate) fn new(keys: Option<Vec<PublicKey>>) -> Allowed {
        Allowed {
            keys: keys.map(|keys| keys.into_iter().collect()),
        }
    }

    fn allows(&self, key: &PublicKey) -> bool {
        self.keys.as_ref().map_or(true, |keys| keys.contains(key))
    }
}

/// The security of a connection: NULL (none) or CURVE, as client or server.
#[derive(Clone, Default)]
pub(crate) enum Security {
    /// ZMTP's NULL mechanism: no encryption, no authentication.
    #[default]
    Null,
    /// CURVE client: the server's public key and our long-term pair.
    CurveClient {
        server: PublicKey,
        ours: Arc<KeyPair>,
    },
    /// CURVE server: our long-term pair and the clients allowed.
    CurveServer {
        ours: Arc<KeyPair>,
        allowed: Arc<Allowed>,
    },
}

impl Security {
    /// The mechanism's name in the greeting.
    pub(crate) fn mechanism(&self) -> &'static [u8] {
        match self {
            Security::Null => b"NULL",
            _ => b"CURVE",
        }
    }

    /// The greeting's as-server flag.
    pub(crate) fn as_server(&self) -> bool {
        matches!(self, Security::CurveServer { .. })
    }
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Security::Null => f.write_str("NULL"),
            Security::CurveClient { server, ours } => {
                write!(f, "CURVE client of {server} as {}", ours.public())
            }
            Security::CurveServer { ours, .. } => write!(f, "CURVE server {}", ours.public()),
        }
    }
}

/// Why a handshake failed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) reason: String,
    /// The client's long-term key when the server refused it (the
    /// connection then sends ERROR 400 before it is closed).
    pub(crate) refused_key: Option<PublicKey>,
}

fn failure(reason: impl Into<String>) -> Failure {
    Failure {
        reason: reason.into(),
        refused_key: None,
    }
}

/// What a handshake command led to.
pub(crate) enum Step {
    /// A command to send; the handshake goes on.
    Send(Vec<u8>),
    /// The handshake is done: the peer's metadata (ZMTP properties) and,
    /// from a server, the READY command to send.
    Done {
        metadata: Vec<u8>,
        reply: Option<Vec<u8>>,
    },
}

/// One connection's CURVE state.
pub(crate) struct Curve {
    security: Security,
    /// Our key pair for this connection (C' or S').
    transient: crypto_box::SecretKey,
    /// Server: the client's key for this connection (C').
    peer_transient: Option<crypto_box::PublicKey>,
    /// Server: the key of its cookies.
    cookie_key: [u8; 32],
    /// The box between the two connection keys, once both are known.
    shared: Option<Arc<SalsaBox>>,
    /// The counter of our next box.
    nonce: u64,
    /// The counter of the peer's last box.
    peer_nonce: u64,
    /// Client: the server's short-term key and cookie, from WELCOME.
    cookie: Vec<u8>,
    /// What seals our MESSAGE boxes, once the handshake is done.
    sealer: Option<Sealer>,
}

/// The sending half of a CURVE connection whose handshake is done: seals
/// frames in MESSAGE boxes. Clones share one counter, so boxes sealed in
/// several threads have nonces of their own; the peer takes them only in
/// the order of their counters, so whoever seals writes under the same
/// lock as the others.
#[derive(Clone)]
pub(crate) struct Sealer {
    key: Arc<SalsaBox>,
    counter: Arc<AtomicU64>,
    prefix: &'static [u8; 16],
}

impl Sealer {
    /// Appends the body of a MESSAGE command holding one frame with
    /// `flags`: "\x07MESSAGE", the counter, the tag, the box of the flags
    /// and the frame (encrypted where it lies in `out`). False, with
    /// nothing appended, when the frame cannot be sealed.
    pub(crate) fn push_body(&self, out: &mut Vec<u8>, flags: u8, frame: &[u8]) -> bool {
        let counter = self.counter.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        let nonce = short_nonce(self.prefix, &counter);
        out.reserve(MESSAGE_OVERHEAD + frame.len());
        out.extend_from_slice(b"\x07MESSAGE");
        out.extend_from_slice(&counter);
        let tag_at = out.len();
        out.extend_from_slice(&[0u8; TAG]);
        let plain_at = out.len();
        out.push(flags);
        out.extend_from_slice(frame);
        match self.key.encrypt_in_place_detached(
            GenericArray::from_slice(&nonce),
            b"",
            &mut out[plain_at..],
        ) {
            Ok(tag) => {
                out[tag_at..plain_at].copy_from_slice(&tag);
                true
            }
            // Only a frame over 256 GiB fails: never sent in clear.
            Err(_) => {
                out.truncate(tag_at - 16);
                false
            }
        }
    }

    /// Appends one frame as libzmq sends it under CURVE: a data frame
    /// holding the MESSAGE box (nothing when it cannot be sealed).
    pub(crate) fn push_frame(&self, out: &mut Vec<u8>, flags: u8, frame: &[u8]) {
        let start = out.len();
        super::codec::push_data_header(out, MESSAGE_OVERHEAD + frame.len());
        if !self.push_body(out, flags, frame) {
            out.truncate(start);
        }
    }

    /// Appends a message of `frames`, each in a box of its own, all but the
    /// last marked MORE.
    pub(crate) fn push_message<'a>(
        &self,
        out: &mut Vec<u8>,
        frames: impl IntoIterator<Item = &'a [u8]>,
    ) {
        let mut frames = frames.into_iter().peekable();
        while let Some(frame) = frames.next() {
            let flags = if frames.peek().is_some() { MORE } else { 0 };
            self.push_frame(out, flags, frame);
        }
    }
}

/// A nonce of a 16-byte prefix and a counter.
fn short_nonce(prefix: &[u8; 16], counter: &[u8]) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    nonce[..16].copy_from_slice(prefix);
    nonce[16..].copy_from_slice(counter);
    nonce
}

/// A nonce of an 8-byte prefix and 16 bytes.
fn long_nonce(prefix: &[u8; 8], rest: &[u8]) -> [u8; 24] {
    let mut nonce = [0u8; 24];
    nonce[..8].copy_from_slice(prefix);
    nonce[8..].copy_from_slice(rest);
    nonce
}

/// NaCl's box of `plain` from `secret` to `public`: the tag, then the
/// ciphertext.
fn seal(key: &SalsaBox, nonce: &[u8; 24], plain: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; TAG];
    out.extend_from_slice(plain);
    // Encryption without associated data cannot fail.
    if let Ok(tag) =
        key.encrypt_in_place_detached(GenericArray::from_slice(nonce), b"", &mut out[TAG..])
    {
        out[..TAG].copy_from_slice(&tag);
    }
    out
}

/// Opens a box (tag, then ciphertext); `None` when it does not open.
fn open(key: &SalsaBox, nonce: &[u8; 24], sealed: &[u8]) -> Option<Vec<u8>> {
    if sealed.len() < TAG {
        return None;
    }
    let mut plain = sealed[TAG..].to_vec();
    let tag = GenericArray::from_slice(&sealed[..TAG]);
    key.decrypt_in_place_detached(GenericArray::from_slice(nonce), b"", &mut plain, tag)
        .ok()?;
    Some(plain)
}

fn boxed(public: &[u8], secret: &crypto_box::SecretKey) -> SalsaBox {
    let mut key = [0u8; 32];
    key.copy_from_slice(public);
    SalsaBox::new(&crypto_box::PublicKey::from(key), secret)
}

fn long_term_secret(pair: &KeyPair) -> crypto_box::SecretKey {
    crypto_box::SecretKey::from(*pair.secret().as_bytes())
}

impl Curve {
    /// The state of a new connection with `security` (CURVE, client or
    /// server); fails only when the system has no random source.
    pub(crate) fn new(security: Security) -> Result<Curve, String> {
        let random = || random_bytes::<32>().map_err(|error| error.to_string());
        Ok(Curve {
            security,
            transient: crypto_box::SecretKey::from(random()?),
            peer_transient: None,
            cookie_key: random()?,
            shared: None,
            nonce: 1,
            peer_nonce: 0,
            cookie: Vec::new(),
            sealer: None,
        })
    }

    fn next_nonce(&mut self) -> [u8; 8] {
        let nonce = self.nonce.to_be_bytes();
        self.nonce += 1;
        nonce
    }

    /// Takes the peer's counter from a box: it must be above the last one.
    fn take_peer_nonce(&mut self, counter: &[u8]) -> Result<(), String> {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(counter);
        let nonce = u64::from_be_bytes(bytes);
        if nonce <= self.peer_nonce {
            return Err(format!(
                "a CURVE box out of sequence (counter {nonce} after {})",
                self.peer_nonce
            ));
        }
        self.peer_nonce = nonce;
        Ok(())
    }

    /// Whether this side is the server.
    pub(crate) fn is_server(&self) -> bool {
        self.security.as_server()
    }

    /// The client's HELLO, its first command.
    pub(crate) fn hello(&mut self) -> Vec<u8> {
        let Security::CurveClient { server, .. } = &self.security else {
            return Vec::new();
        };
        let server = *server;
        let counter = self.next_nonce();
        let signature = seal(
            &boxed(server.as_bytes(), &self.transient),
            &short_nonce(b"CurveZMQHELLO---", &counter),
            &[0u8; 64],
        );
        let mut hello = Vec::with_capacity(HELLO_SIZE);
        hello.extend_from_slice(b"\x05HELLO\x01\x00");
        hello.extend_from_slice(&[0u8; 72]);
        hello.extend_from_slice(self.transient.public_key().as_bytes());
        hello.extend_from_slice(&counter);
        hello.extend_from_slice(&signature);
        hello
    }

    /// A handshake command from the peer (its whole body, name first).
    pub(crate) fn handshake(
        &mut self,
        body: &[u8],
        socket_metadata: &[u8],
    ) -> Result<Step, Failure> {
        let step = self.step(body, socket_metadata)?;
        if let (Step::Done { .. }, Some(shared)) = (&step, &self.shared) {
            // Message boxes go on counting from the handshake's.
            self.sealer = Some(Sealer {
                key: Arc::clone(shared),
                counter: Arc::new(AtomicU64::new(self.nonce)),
                prefix: self.prefixes().0,
            });
        }
        Ok(step)
    }

    fn step(&mut self, body: &[u8], socket_metadata: &[u8]) -> Result<Step, Failure> {
        let name_size = usize::from(*body.first().unwrap_or(&0));
        let name = body.get(1..1 + name_size).unwrap_or_default();
        match (&self.security, name) {
            (_, b"ERROR") => {
                let size = usize::from(*body.get(6).unwrap_or(&0));
                let reason = body.get(7..7 + size).unwrap_or_default();
                let reason = String::from_utf8_lossy(reason);
                Err(failure(match &*reason {
                    "400" => {
                        "the server does not allow our CURVE public key (ERROR 400)".to_owned()
                    }
                    other => format!("the peer refused the CURVE handshake: ERROR {other}"),
                }))
            }
            (Security::CurveServer { .. }, b"HELLO") if self.peer_transient.is_none() => {
                self.welcome(body).map(Step::Send).map_err(failure)
            }
            (Security::CurveServer { .. }, b"INITIATE") if self.peer_transient.is_some() => {
                self.ready(body, socket_metadata)
            }
            (Security::CurveClient { .. }, b"WELCOME") if self.shared.is_none() => self
                .initiate(body, socket_metadata)
                .map(Step::Send)
                .map_err(failure),
            (Security::CurveClient { .. }, b"READY") if self.shared.is_some() => {
                self.client_ready(body).map_err(failure)
            }
            (_, other) => Err(failure(format!(
                "{} out of turn in the CURVE handshake",
                String::from_utf8_lossy(other)
            ))),
        }
    }

    /// Server: a HELLO, answered with WELCOME.
    fn welcome(&mut self, hello: &[u8]) -> Result<Vec<u8>, String> {
        let Security::CurveServer { ours, .. } = &self.security else {
            return Err("HELLO to a client".into());
        };
        if hello.len() != HELLO_SIZE {
            return Err(format!(
                "a HELLO of {} bytes (not {HELLO_SIZE})",
                hello.len()
            ));
        }
        if hello[6..8] != [1, 0] {
            return Err(format!(
                "CurveZMQ version {}.{} (1.0 is spoken)",
                hello[6], hello[7]
            ));
        }
        let client_transient = &hello[80..112];
        let long_term = long_term_secret(ours);
        let signature = open(
            &boxed(client_transient, &long_term),
            &short_nonce(b"CurveZMQHELLO---", &hello[112..120]),
            &hello[120..200],
        );
        if signature.is_none() {
            return Err(
                "the client's HELLO does not open with this server's key (it was given another server key)"
                    .into(),
            );
        }
        self.take_peer_nonce(&hello[112..120])?;
        let mut key = [0u8; 32];
        key.copy_from_slice(client_transient);
        self.peer_transient = Some(crypto_box::PublicKey::from(key));
        // The cookie: C' and s', which only this server can open.
        let cookie_nonce = random_bytes::<16>().map_err(|error| error.to_string())?;
        let mut cookie_plain = Vec::with_capacity(64);
        cookie_plain.extend_from_slice(client_transient);
        cookie_plain.extend_from_slice(&self.transient.to_bytes());
        let cookie = XSalsa20Poly1305::new(GenericArray::from_slice(&self.cookie_key))
            .encrypt_in_place_detached(
                GenericArray::from_slice(&long_nonce(b"COOKIE--", &cookie_nonce)),
                b"",
                &mut cookie_plain,
            )
            .map_err(|_| "cannot make a CURVE cookie".to_string())?;
        let mut plain = Vec::with_capacity(128);
        plain.extend_from_slice(self.transient.public_key().as_bytes());
        plain.extend_from_slice(&cookie_nonce);
        plain.extend_from_slice(&cookie);
        // Encrypted in place: the cookie's ciphertext.
        plain.extend_from_slice(&cookie_plain);
        let welcome_nonce = random_bytes::<16>().map_err(|error| error.to_string())?;
        let sealed = seal(
            &boxed(client_transient, &long_term),
            &long_nonce(b"WELCOME-", &welcome_nonce),
            &plain,
        );
        let mut welcome = Vec::with_capacity(WELCOME_SIZE);
        welcome.extend_from_slice(b"\x07WELCOME");
        welcome.extend_from_slice(&welcome_nonce);
        welcome.extend_from_slice(&sealed);
        Ok(welcome)
    }

    /// Client: the WELCOME, answered with INITIATE.
    fn initiate(&mut self, welcome: &[u8], metadata: &[u8]) -> Result<Vec<u8>, String> {
        let Security::CurveClient { server, ours } = &self.security else {
            return Err("WELCOME to a server".into());
        };
        if welcome.len() != WELCOME_SIZE {
            return Err(format!(
                "a WELCOME of {} bytes (not {WELCOME_SIZE})",
                welcome.len()
            ));
        }
        let plain = open(
            &boxed(server.as_bytes(), &self.transient),
            &long_nonce(b"WELCOME-", &welcome[8..24]),
            &welcome[24..],
        )
        .ok_or(
            "the server's WELCOME does not open (the server's key is not the one this client was given)",
        )?;
        let server_transient = &plain[..32];
        self.cookie = plain[32..128].to_vec();
        let vouch_nonce = random_bytes::<16>().map_err(|error| error.to_string())?;
        let mut vouch_plain = [0u8; 64];
        vouch_plain[..32].copy_from_slice(self.transient.public_key().as_bytes());
        vouch_plain[32..].copy_from_slice(server.as_bytes());
        let vouch = seal(
            &boxed(server_transient, &long_term_secret(ours)),
            &long_nonce(b"VOUCH---", &vouch_nonce),
            &vouch_plain,
        );
        let shared = boxed(server_transient, &self.transient);
        let mut plain = Vec::with_capacity(128 + metadata.len());
        plain.extend_from_slice(ours.public().as_bytes());
        plain.extend_from_slice(&vouch_nonce);
        plain.extend_from_slice(&vouch);
        plain.extend_from_slice(metadata);
        let counter = self.next_nonce();
        let sealed = seal(&shared, &short_nonce(b"CurveZMQINITIATE", &counter), &plain);
        self.shared = Some(Arc::new(shared));
        let mut initiate = Vec::with_capacity(113 + sealed.len());
        initiate.extend_from_slice(b"\x08INITIATE");
        initiate.extend_from_slice(&self.cookie);
        initiate.extend_from_slice(&counter);
        initiate.extend_from_slice(&sealed);
        Ok(initiate)
    }

    /// Server: the INITIATE; READY when the client is let in.
    fn ready(&mut self, initiate: &[u8], metadata: &[u8]) -> Result<Step, Failure> {
        let Security::CurveServer { ours, allowed } = &self.security else {
            return Err(failure("INITIATE to a client"));
        };
        let (ours, allowed) = (Arc::clone(ours), Arc::clone(allowed));
        if initiate.len() < INITIATE_MIN {
            return Err(failure(format!(
                "an INITIATE of {} bytes (at least {INITIATE_MIN})",
                initiate.len()
            )));
        }
        let Some(client_transient) = self.peer_transient.clone() else {
            return Err(failure("INITIATE before HELLO"));
        };
        // The cookie must be the one of this connection's WELCOME.
        let mut cookie = initiate[25..105].to_vec();
        let opened = XSalsa20Poly1305::new(GenericArray::from_slice(&self.cookie_key))
            .decrypt_in_place_detached(
                GenericArray::from_slice(&long_nonce(b"COOKIE--", &initiate[9..25])),
                b"",
                &mut cookie[TAG..],
                GenericArray::from_slice(&initiate[25..25 + TAG]),
            );
        let genuine = opened.is_ok()
            && cookie[TAG..TAG + 32] == client_transient.as_bytes()[..]
            && cookie[TAG + 32..] == self.transient.to_bytes()[..];
        zeroize::Zeroize::zeroize(&mut cookie);
        if !genuine {
            return Err(failure(
                "an INITIATE with a cookie this server did not make",
            ));
        }
        let shared = SalsaBox::new(&client_transient, &self.transient);
        let plain = open(
            &shared,
            &short_nonce(b"CurveZMQINITIATE", &initiate[105..113]),
            &initiate[113..],
        )
        .ok_or_else(|| failure("an INITIATE that does not open"))?;
        self.take_peer_nonce(&initiate[105..113]).map_err(failure)?;
        let client_key = &plain[..32];
        let vouch = open(
            &boxed(client_key, &self.transient),
            &long_nonce(b"VOUCH---", &plain[32..48]),
            &plain[48..128],
        )
        .ok_or_else(|| failure("an INITIATE whose vouch does not open"))?;
        if vouch[..32] != client_transient.as_bytes()[..]
            || vouch[32..] != ours.public().as_bytes()[..]
        {
            return Err(failure("an INITIATE that vouches for other keys"));
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(client_key);
        let client_key = PublicKey::from_bytes(key);
        if !allowed.allows(&client_key) {
            return Err(Failure {
                reason: format!("the CURVE key {client_key} is not allowed"),
                refused_key: Some(client_key),
            });
        }
        let counter = self.next_nonce();
        let sealed = seal(
            &shared,
            &short_nonce(b"CurveZMQREADY---", &counter),
            metadata,
        );
        self.shared = Some(Arc::new(shared));
        let mut ready = Vec::with_capacity(14 + sealed.len());
        ready.extend_from_slice(b"\x05READY");
        ready.extend_from_slice(&counter);
        ready.extend_from_slice(&sealed);
        Ok(Step::Done {
            metadata: plain[128..].to_vec(),
            reply: Some(ready),
        })
    }

    /// Client: the server's READY ends the handshake.
    fn client_ready(&mut self, ready: &[u8]) -> Result<Step, String> {
        if ready.len() < READY_MIN {
            return Err(format!("a READY of {} bytes", ready.len()));
        }
        let shared = self.shared.as_ref().ok_or("READY before WELCOME")?;
        let metadata = open(
            shared,
            &short_nonce(b"CurveZMQREADY---", &ready[6..14]),
            &ready[14..],
        )
        .ok_or("a READY that does not open")?;
        self.take_peer_nonce(&ready[6..14])?;
        Ok(Step::Done {
            metadata,
            reply: None,
        })
    }

    /// The ERROR command a refused client is sent.
    pub(crate) fn refusal() -> Vec<u8> {
        b"\x05ERROR\x03400".to_vec()
    }

    fn prefixes(&self) -> (&'static [u8; 16], &'static [u8; 16]) {
        if self.security.as_server() {
            (b"CurveZMQMESSAGES", b"CurveZMQMESSAGEC")
        } else {
            (b"CurveZMQMESSAGEC", b"CurveZMQMESSAGES")
        }
    }

    /// The sending half, once the handshake is done.
    pub(crate) fn sealer(&self) -> Option<&Sealer> {
        self.sealer.as_ref()
    }

    /// Opens a MESSAGE command's body in place: the flags and the frame
    /// (the body becomes the frame: no second buffer is made).
    pub(crate) fn open_message(&mut self, mut body: Vec<u8>) -> Result<(u8, Vec<u8>), String> {
        if !body.starts_with(b"\x07MESSAGE") {
            let name_size = usize::from(*body.first().unwrap_or(&0));
            let name = body.get(1..1 + name_size).unwrap_or_default();
            return Err(format!(
                "{} where a CURVE MESSAGE was due",
                String::from_utf8_lossy(name)
            ));
        }
        if body.len() < MESSAGE_OVERHEAD {
            return Err(format!("a CURVE MESSAGE of {} bytes", body.len()));
        }
        let nonce = short_nonce(self.prefixes().1, &body[8..16]);
        let shared = self
            .shared
            .as_ref()
            .ok_or("a CURVE MESSAGE before the handshake")?;
        let (head, plain) = body.split_at_mut(16 + TAG);
        shared
            .decrypt_in_place_detached(
                GenericArray::from_slice(&nonce),
                b"",
                plain,
                GenericArray::from_slice(&head[16..]),
            )
            .map_err(|_| "a CURVE MESSAGE that does not open".to_string())?;
        self.take_peer_nonce(&body[8..16])?;
        let flags = body[16 + TAG];
        body.drain(..MESSAGE_OVERHEAD);
        Ok((flags, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> Arc<KeyPair> {
        Arc::new(KeyPair::generate().unwrap())
    }

    /// A whole handshake between a client and a server state; the server's
    /// step on INITIATE.
    fn handshake(client: &mut Curve, server: &mut Curve) -> Result<Step, Failure> {
        let hello = client.hello();
        let Step::Send(welcome) = server.handshake(&hello, b"server-meta")? else {
            panic!("no WELCOME");
        };
        let Step::Send(initiate) = client.handshake(&welcome, b"client-meta")? else {
            panic!("no INITIATE");
        };
        server.handshake(&initiate, b"server-meta")
    }

    #[test]
    fn a_handshake_and_messages_both_ways() {
        let server_pair = pair();
        let allowed = Arc::new(Allowed::new(None));
        let mut server = Curve::new(Security::CurveServer {
            ours: server_pair.clone(),
            allowed,
        })
        .unwrap();
        let mut client = Curve::new(Security::CurveClient {
            server: *server_pair.public(),
            ours: pair(),
        })
        .unwrap();
        let Step::Done { metadata, reply } = handshake(&mut client, &mut server).unwrap() else {
            panic!("not done");
        };
        assert_eq!(metadata, b"client-meta");
        let Step::Done {
            metadata,
            reply: None,
        } = client.handshake(&reply.unwrap(), b"").unwrap()
        else {
            panic!("client not done");
        };
        assert_eq!(metadata, b"server-meta");
        let mut out = Vec::new();
        client
            .sealer()
            .unwrap()
            .push_body(&mut out, MORE, b"request");
        assert!(!out.windows(7).any(|window| window == b"request"));
        assert_eq!(
            server.open_message(out.clone()).unwrap(),
            (MORE, b"request".to_vec())
        );
        // The same box again is out of sequence.
        assert!(server.open_message(out).unwrap_err().contains("sequence"));
        let mut back = Vec::new();
        server.sealer().unwrap().push_body(&mut back, 0, b"");
        let mut tampered = back.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(client
            .open_message(tampered)
            .unwrap_err()
            .contains("does not open"));
        assert_eq!(client.open_message(back).unwrap(), (0, Vec::new()));
    }

    #[test]
    fn wrong_keys_and_unknown_clients_are_refused() {
        let server_pair = pair();
        let client_pair = pair();
        let only_other = Arc::new(Allowed::new(Some(vec![*pair().public()])));
        let server_of = |allowed: Arc<Allowed>| {
            Curve::new(Security::CurveServer {
                ours: server_pair.clone(),
                allowed,
            })
            .unwrap()
        };
        let client_of = |server: PublicKey| {
            Curve::new(Security::CurveClient {
                server,
                ours: client_pair.clone(),
            })
            .unwrap()
        };
        // A client with another server key: its HELLO does not open.
        let mut server = server_of(Arc::new(Allowed::new(None)));
        let wrong = server.handshake(&client_of(*pair().public()).hello(), b"");
        assert!(wrong.err().unwrap().reason.contains("another server key"));
        // A client the server does not allow.
        let mut server = server_of(only_other.clone());
        let refused = handshake(&mut client_of(*server_pair.public()), &mut server)
            .err()
            .unwrap();
        assert_eq!(refused.refused_key, Some(*client_pair.public()));
        // ERROR 400 reads as a refusal of the client's key.
        let mut client = client_of(*server_pair.public());
        let error = client.handshake(&Curve::refusal(), b"").err().unwrap();
        assert!(error.reason.contains("does not allow our CURVE public key"));
        // Commands out of turn.
        let mut server = server_of(Arc::new(Allowed::new(None)));
        assert!(server
            .handshake(b"\x08INITIATE", b"")
            .err()
            .unwrap()
            .reason
            .contains("out of turn"));
        let mut short = client_of(*server_pair.public()).hello();
        short.pop();
        assert!(server
            .handshake(&short, b"")
            .err()
            .unwrap()
            .reason
            .contains("199 bytes"));
    }
}
