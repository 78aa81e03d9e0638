//! The vPoller client: py-vpoller 0.7.3's `VPollerClient` behaviour ("Lazy
//! Pirate" retries over a REQ socket), with the per-call costs taken out.
//!
//! On `tcp://` and `ipc://` endpoints the calling thread speaks ZMTP itself
//! ([`own`]); other endpoints (`inproc://`, source addresses, other
//! transports) use libzmq REQ sockets ([`libzmq`]).

mod libzmq;
mod own;

use crate::curve::{KeyPair, PublicKey, SecretKey};
use crate::error::Error;
use crate::sync::Lock;
use crate::transport::curve::Security;
use crate::transport::Dialer;
use serde_json::value::RawValue;
use serde_json::Value;
use std::fmt;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// The endpoint of a vPoller Proxy on the local machine, py-vpoller's default.
pub const DEFAULT_ENDPOINT: &str = "tcp://localhost:10123";
/// Attempts in all when the caller gives none (py-vpoller's default).
pub const DEFAULT_RETRIES: u32 = 3;
/// Milliseconds each attempt waits when the caller gives no timeout
/// (py-vpoller's default).
pub const DEFAULT_TIMEOUT_MS: u32 = 3000;

/// A client of one vPoller Proxy endpoint.
///
/// A request is sent and its reply awaited for `timeout`; when no reply comes,
/// the socket is closed (dropping anything still in flight) and the request is
/// sent again on a fresh one, `retries` attempts in all. The reply is handed
/// back exactly as the vPoller worker wrote it.
///
/// One `Client` may be shared by many threads (`&Client` is enough): each call
/// borrows a socket of its own from a pool, so calls run in parallel, and a
/// socket goes back to the pool only after a complete exchange. A forked child
/// may keep using a client it inherited; it makes new sockets of its own.
///
/// ```no_run
/// let client = vpoller::Client::new("tcp://localhost:10123", 3, 3000)?;
/// let reply = client.run(r#"{"method": "vm.discover", "hostname": "vc01.example.org"}"#);
/// println!("Received reply from vPoller: {reply}");
/// # Ok::<(), vpoller::Error>(())
/// ```
///
/// With [`Client::set_option`] and [`ClientOption::CurveServerKey`] the
/// requests travel encrypted (ZeroMQ's CURVE) to a proxy that holds that
/// key's secret.
pub struct Client {
    endpoint: String,
    retries: u32,
    timeout: Duration,
    /// How to reach the endpoint when this thread speaks ZMTP itself.
    dialer: Option<Dialer>,
    idle: Mutex<IdleSockets>,
    curve: Mutex<CurveOptions>,
}

/// The options [`Client::set_option`] sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientOption {
    /// The proxy's CURVE public key (40 characters of Z85): requests use
    /// CURVE, and only a proxy holding its secret key can read them or
    /// answer. Empty: plain ZMTP again (the default).
    CurveServerKey,
    /// The client's own CURVE public key (Z85), set with its secret key;
    /// it must be the secret key's (checked once both are set).
    CurvePublicKey,
    /// The client's own CURVE secret key (Z85). Without one the client
    /// makes a fresh key pair (a proxy that lists the keys it allows will
    /// then refuse it).
    CurveSecretKey,
}

/// What the CURVE options say, and the security they make.
struct CurveOptions {
    server: Option<PublicKey>,
    public: Option<PublicKey>,
    secret: Option<SecretKey>,
    /// The pair made when no secret key is given, kept for the client's life.
    fresh: Option<Arc<KeyPair>>,
    /// The security requests use, or why there is none (a public key set
    /// without its secret key).
    security: Result<Security, String>,
    /// Raised at every change: sockets made before it are not reused.
    epoch: u64,
}

impl CurveOptions {
    /// Works out the security of the options as they would be with
    /// `option` set to `value`; an error (and no change) when the value is
    /// not a key, or does not go with the other keys.
    fn set(&mut self, option: ClientOption, value: &str) -> Result<(), Error> {
        let value = value.trim();
        let (mut server, mut public, mut secret) = (self.server, self.public, self.secret.clone());
        match option {
            ClientOption::CurveServerKey => {
                server = optional(value, PublicKey::from_z85, "the server's")?;
            }
            ClientOption::CurvePublicKey => {
                public = optional(value, PublicKey::from_z85, "the client's")?;
            }
            ClientOption::CurveSecretKey => {
                secret = optional(value, SecretKey::from_z85, "the client's")?;
            }
        }
        let own = match (&public, &secret) {
            (Some(public), Some(secret)) => {
                Some(Ok(Arc::new(KeyPair::from_keys(*public, secret.clone())?)))
            }
            (None, Some(secret)) => Some(Ok(Arc::new(KeyPair::from_secret(secret.clone())))),
            (Some(_), None) => Some(Err(
                "a CURVE public key is set without its secret key (set both, or neither for a \
                 fresh key pair)"
                    .to_string(),
            )),
            (None, None) => None,
        };
        let security = match server {
            None => Ok(Security::Null),
            Some(server) => {
                let ours = match own {
                    Some(pair) => pair,
                    None => match &self.fresh {
                        Some(pair) => Ok(Arc::clone(pair)),
                        None => {
                            let pair = Arc::new(KeyPair::generate()?);
                            self.fresh = Some(Arc::clone(&pair));
                            Ok(pair)
                        }
                    },
                };
                ours.map(|ours| Security::CurveClient { server, ours })
            }
        };
        (self.server, self.public, self.secret) = (server, public, secret);
        self.security = security;
        self.epoch += 1;
        Ok(())
    }
}

/// A key from `value`, `None` for an empty one; the error names `whose`
/// key it was.
fn optional<K>(
    value: &str,
    parse: fn(&str) -> Result<K, Error>,
    whose: &str,
) -> Result<Option<K>, Error> {
    if value.is_empty() {
        return Ok(None);
    }
    parse(value).map(Some).map_err(|error| match error {
        Error::InvalidArgument(reason) => Error::InvalidArgument(format!("{whose} key: {reason}")),
        other => other,
    })
}

/// What carries one request: a libzmq REQ socket or a connection of our own.
enum Socket {
    Zmq(zmq::Socket),
    Own(Box<own::Own>),
}

impl Socket {
    /// Lets go of a socket made in fork generation `made_in`: a libzmq
    /// socket of a parent process is never touched (its I/O thread is not
    /// in this process); a connection of our own is only closed here.
    fn release(self, made_in: u64) {
        match self {
            Socket::Zmq(socket) if made_in != crate::fork::generation() => std::mem::forget(socket),
            // LINGER is 0: a request or reply still queued is discarded.
            other => drop(other),
        }
    }
}

/// A reply as it came: libzmq's message or our own bytes.
enum Reply {
    Zmq(zmq::Message),
    Bytes(Vec<u8>),
}

impl Deref for Reply {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Reply::Zmq(message) => message,
            Reply::Bytes(bytes) => bytes,
        }
    }
}

/// Sockets that finished an exchange and can carry the next request.
struct IdleSockets {
    generation: u64,
    /// The CURVE options' epoch the sockets were made in.
    epoch: u64,
    sockets: Vec<Socket>,
}

impl IdleSockets {
    /// Lets go of sockets made before a fork: they belong to the parent.
    fn adopt(&mut self, generation: u64) {
        if self.generation != generation {
            for inherited in self.sockets.drain(..) {
                inherited.release(self.generation);
            }
            self.generation = generation;
        }
    }
}

/// A socket checked out of the pool for one call, with the security it
/// speaks and the CURVE options' epoch that gave it.
struct Lease {
    generation: u64,
    socket: Option<Socket>,
    security: Security,
    epoch: u64,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(socket) = self.socket.take() {
            socket.release(self.generation);
        }
    }
}

impl Client {
    /// Creates a client of the vPoller Proxy at `endpoint` (for example
    /// `tcp://localhost:10123`).
    ///
    /// `retries` is the number of attempts in all and `timeout_ms` how long
    /// each one waits; a value of 0 or less means py-vpoller's default
    /// (3 attempts, 3000 ms). Nothing is sent until the first request; the
    /// endpoint is checked at once, so an address ZeroMQ cannot use is an
    /// [`Error::Zmq`] here rather than a silent failure later.
    ///
    /// ```
    /// let client = vpoller::Client::new("tcp://localhost:10123", 0, -1)?;
    /// assert_eq!(client.retries(), 3);
    /// assert_eq!(client.timeout(), std::time::Duration::from_millis(3000));
    /// assert!(vpoller::Client::new("no-such-transport://x", 3, 3000).is_err());
    /// # Ok::<(), vpoller::Error>(())
    /// ```
    pub fn new(endpoint: &str, retries: i32, timeout_ms: i32) -> Result<Client, Error> {
        let retries = u32::try_from(retries)
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_RETRIES);
        let timeout_ms = u32::try_from(timeout_ms)
            .ok()
            .filter(|&ms| ms > 0)
            .unwrap_or(DEFAULT_TIMEOUT_MS);
        let client = Client {
            endpoint: endpoint.to_owned(),
            retries,
            timeout: Duration::from_millis(u64::from(timeout_ms)),
            dialer: Dialer::new(endpoint),
            idle: Mutex::new(IdleSockets {
                generation: crate::fork::generation(),
                epoch: 0,
                sockets: Vec::new(),
            }),
            curve: Mutex::new(CurveOptions {
                server: None,
                public: None,
                secret: None,
                fresh: None,
                security: Ok(Security::Null),
                epoch: 0,
            }),
        };
        // Connecting the first socket checks the endpoint; it is kept for the first call.
        let first = client.connect()?;
        client.give_back(first);
        Ok(client)
    }

    /// Sets one of the client's options ([`ClientOption`]); an empty
    /// `value` unsets it. A key that is not 40 characters of Z85, or a
    /// public key that is not the secret key's, is an
    /// [`Error::InvalidArgument`] at once, and nothing changes. Requests
    /// already under way finish as they began; the next ones use the new
    /// setting.
    ///
    /// ```
    /// use vpoller::{Client, ClientOption};
    /// let client = Client::new("tcp://localhost:10123", 3, 3000)?;
    /// client.set_option(ClientOption::CurveServerKey, "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7")?;
    /// assert!(client.curve_public_key().is_some()); // a fresh key pair
    /// assert!(client.set_option(ClientOption::CurveSecretKey, "not a key").is_err());
    /// # Ok::<(), vpoller::Error>(())
    /// ```
    pub fn set_option(&self, option: ClientOption, value: &str) -> Result<(), Error> {
        self.curve.locked().set(option, value)
    }

    /// The client's CURVE public key, once a server key is set: the one
    /// given, or that of the fresh pair it made (for a proxy's list of
    /// allowed clients).
    pub fn curve_public_key(&self) -> Option<String> {
        match &self.curve.locked().security {
            Ok(Security::CurveClient { ours, .. }) => Some(ours.public().to_z85()),
            _ => None,
        }
    }

    /// The endpoint this client sends to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The number of attempts per request, in all.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// How long each attempt waits for the reply.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `msg` (a JSON object as text) and returns the reply text.
    ///
    /// Like py-vpoller's `VPollerClient.run`, this always returns a vPoller
    /// reply: when the request cannot be sent or no reply came, the text is a
    /// failure result such as
    /// `{"success": 1, "msg": "Did not receive response, aborting..."}`.
    /// Use [`Client::try_run`] to tell those cases apart by type.
    ///
    /// ```
    /// let client = vpoller::Client::new("tcp://127.0.0.1:9", 1, 100)?;
    /// // Not JSON: refused before anything is sent.
    /// let reply = client.run("vm.discover");
    /// assert!(reply.starts_with(r#"{"success": 1, "msg": "Invalid argument: "#));
    /// # Ok::<(), vpoller::Error>(())
    /// ```
    pub fn run(&self, msg: &str) -> String {
        self.try_run(msg).unwrap_or_else(|error| error.to_reply())
    }

    /// Sends `msg` (a JSON object as text) and returns the reply text exactly
    /// as the vPoller worker sent it, less one trailing NUL byte if the worker
    /// added one (the `vpoller.helpers.cclient` helper does).
    ///
    /// A reply with `"success": 1` from vPoller is still `Ok`: it is vPoller's
    /// answer. `Err` means vPoller did not answer, or could not be asked.
    ///
    /// ```
    /// let client = vpoller::Client::new("tcp://127.0.0.1:9", 2, 50)?;
    /// match client.try_run(r#"{"method": "about", "hostname": "vc01"}"#) {
    ///     Ok(reply) => println!("{reply}"),
    ///     Err(vpoller::Error::NoReply { attempts }) => assert_eq!(attempts, 2),
    ///     Err(other) => panic!("{other}"),
    /// }
    /// # Ok::<(), vpoller::Error>(())
    /// ```
    pub fn try_run(&self, msg: &str) -> Result<String, Error> {
        self.run_with(msg.as_bytes(), str::to_owned)
    }

    /// Sends `msg` and lends the reply text to `read` without copying it, for
    /// callers that turn the reply into something else anyway (large replies,
    /// foreign-language strings).
    ///
    /// `msg` is raw bytes so that text from other languages need not be
    /// checked twice; it must be a UTF-8 JSON object like for [`Client::try_run`].
    ///
    /// ```
    /// let client = vpoller::Client::new("tcp://127.0.0.1:9", 1, 100)?;
    /// let error = client.run_with(b"[1, 2]", |reply| reply.len()).unwrap_err();
    /// assert!(matches!(error, vpoller::Error::InvalidArgument(_)));
    /// # Ok::<(), vpoller::Error>(())
    /// ```
    pub fn run_with<R>(&self, msg: &[u8], read: impl FnOnce(&str) -> R) -> Result<R, Error> {
        check_message(msg)?;
        let reply = self.exchange(msg)?;
        Ok(read(reply_text(&reply)?))
    }

    /// Sends a request given as JSON and returns the reply parsed as JSON.
    ///
    /// ```
    /// use serde_json::json;
    /// let client = vpoller::Client::new("tcp://127.0.0.1:9", 1, 100)?;
    /// let error = client.run_value(&json!(["not", "an", "object"])).unwrap_err();
    /// assert!(error.to_string().contains("JSON object"));
    /// # Ok::<(), vpoller::Error>(())
    /// ```
    pub fn run_value(&self, msg: &Value) -> Result<Value, Error> {
        if !msg.is_object() {
            return Err(not_an_object(kind_of(msg)));
        }
        let text = msg.to_string();
        let reply = self.exchange(text.as_bytes())?;
        serde_json::from_str(reply_text(&reply)?)
            .map_err(|error| Error::InvalidReply(format!("the reply is not JSON ({error})")))
    }

    /// One request, up to `retries` attempts: the Lazy Pirate loop.
    fn exchange(&self, msg: &[u8]) -> Result<Reply, Error> {
        let mut lease = self.take()?;
        let mut attempt = 1;
        loop {
            let reply = match lease.socket.as_mut().expect("lease holds a socket") {
                Socket::Zmq(socket) => {
                    libzmq::send_and_wait(socket, msg, self.timeout)?.map(Reply::Zmq)
                }
                Socket::Own(own) => match &self.dialer {
                    Some(dialer) => own
                        .exchange(dialer, &lease.security, msg, self.timeout)?
                        .map(Reply::Bytes),
                    // Connections of our own are only made with a dialer.
                    None => None,
                },
            };
            if let Some(reply) = reply {
                self.give_back(lease);
                return Ok(reply);
            }
            // Silence: close the socket (its late reply, if any, dies with it)
            // and ask again on a fresh connection, with the security the
            // request began with (options set since are for the next ones).
            let security = std::mem::take(&mut lease.security);
            let epoch = lease.epoch;
            drop(lease);
            if attempt >= self.retries {
                return Err(Error::NoReply {
                    attempts: self.retries,
                });
            }
            attempt += 1;
            lease = self.connect_with(security, epoch)?;
        }
    }

    fn lock_idle(&self) -> MutexGuard<'_, IdleSockets> {
        // The pool holds only complete sockets, so it stays valid after a panic elsewhere.
        self.idle.locked()
    }

    /// The security requests use now and the epoch of the options that
    /// gave it; an error when the options are incomplete.
    fn security(&self) -> Result<(Security, u64), Error> {
        let curve = self.curve.locked();
        match &curve.security {
            Ok(security) => Ok((security.clone(), curve.epoch)),
            Err(reason) => Err(Error::InvalidArgument(reason.clone())),
        }
    }

    /// An idle socket from the pool, or a new one.
    fn take(&self) -> Result<Lease, Error> {
        let generation = crate::fork::generation();
        let (security, epoch) = self.security()?;
        let reused = {
            let mut idle = self.lock_idle();
            idle.adopt(generation);
            if idle.epoch != epoch {
                // Made with other CURVE options: not for this request.
                idle.sockets.clear();
                idle.epoch = epoch;
            }
            idle.sockets.pop()
        };
        match reused {
            Some(socket) => Ok(Lease {
                generation,
                socket: Some(socket),
                security,
                epoch,
            }),
            None => self.connect_with(security, epoch),
        }
    }

    /// A new REQ socket connected to the endpoint with the current options.
    fn connect(&self) -> Result<Lease, Error> {
        let (security, epoch) = self.security()?;
        self.connect_with(security, epoch)
    }

    /// A new REQ socket connected to the endpoint (a connection of our own
    /// is only made when the request is sent).
    fn connect_with(&self, security: Security, epoch: u64) -> Result<Lease, Error> {
        if self.dialer.is_some() {
            return Ok(Lease {
                generation: crate::fork::generation(),
                socket: Some(Socket::Own(Box::new(own::Own::new()))),
                security,
                epoch,
            });
        }
        let (generation, socket) = libzmq::connect(&self.endpoint, self.timeout, &security)?;
        Ok(Lease {
            generation,
            socket: Some(Socket::Zmq(socket)),
            security,
            epoch,
        })
    }

    /// Returns a socket that completed an exchange to the pool.
    fn give_back(&self, mut lease: Lease) {
        let Some(socket) = lease.socket.take() else {
            return;
        };
        let current = crate::fork::generation();
        if lease.generation != current {
            socket.release(lease.generation);
            return;
        }
        let mut idle = self.lock_idle();
        idle.adopt(current);
        if idle.epoch == lease.epoch {
            idle.sockets.push(socket);
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let mut idle = self.lock_idle();
        idle.adopt(crate::fork::generation());
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint)
            .field("retries", &self.retries)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The `success` field of a vPoller reply: `Some(0)` for success, `Some(1)`
/// for a failure, `None` when the reply is not a JSON object with an integer
/// `success` (for example the output of the `vpoller.helpers.zabbix` helper).
///
/// ```
/// assert_eq!(vpoller::reply_success(r#"{"success": 0, "msg": "ok", "result": []}"#), Some(0));
/// assert_eq!(vpoller::reply_success(r#"{"success": 1, "msg": "Cannot find object vm99"}"#), Some(1));
/// assert_eq!(vpoller::reply_success("poweredOn"), None);
/// ```
pub fn reply_success(reply: &str) -> Option<i64> {
    match serde_json::from_str::<Value>(reply) {
        Ok(Value::Object(fields)) => fields.get("success").and_then(Value::as_i64),
        _ => None,
    }
}

/// Refuses anything but a UTF-8 JSON object, before it reaches the wire.
///
/// Runs on every request, so it checks the syntax without building a value:
/// `RawValue` only borrows the input.
fn check_message(msg: &[u8]) -> Result<(), Error> {
    let text = std::str::from_utf8(msg).map_err(|error| {
        Error::InvalidArgument(format!("the message is not valid UTF-8 ({error})"))
    })?;
    let raw = serde_json::from_str::<&RawValue>(text).map_err(|error| {
        Error::InvalidArgument(format!("the message is not valid JSON ({error})"))
    })?;
    let kind = match raw.get().as_bytes().first() {
        Some(b'{') => return Ok(()),
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    };
    Err(not_an_object(kind))
}

fn not_an_object(kind: &str) -> Error {
    Error::InvalidArgument(format!("the message must be a JSON object, not {kind}"))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The reply as text: one trailing NUL (added by vPoller's `cclient` helper)
/// removed, and refused if it holds another NUL or is not UTF-8.
fn reply_text(reply: &[u8]) -> Result<&str, Error> {
    let body = reply.strip_suffix(&[0]).unwrap_or(reply);
    if body.contains(&0) {
        let offset = body.iter().position(|&byte| byte == 0).unwrap_or_default();
        return Err(Error::InvalidReply(format!(
            "the reply holds a NUL byte at offset {offset}"
        )));
    }
    std::str::from_utf8(body)
        .map_err(|error| Error::InvalidReply(format!("the reply is not valid UTF-8 ({error})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_must_be_json_objects() {
        assert!(check_message(br#"{"method": "about"}"#).is_ok());
        for (bad, reason) in [
            (&b"\xff{}"[..], "UTF-8"),
            (b"", "not valid JSON"),
            (b"{\"method\": ", "not valid JSON"),
            (b"[]", "not an array"),
            (b"\"vm.get\"", "not a string"),
            (b"42", "not a number"),
            (b"null", "not null"),
            (b"{} {}", "not valid JSON"),
        ] {
            let error = check_message(bad).unwrap_err();
            assert!(
                error.to_string().contains(reason),
                "{bad:?}: {error} lacks {reason}"
            );
        }
    }

    #[test]
    fn reply_text_strips_one_trailing_nul_only() {
        assert_eq!(reply_text(b"{}\0").unwrap(), "{}");
        assert_eq!(reply_text(b"{}").unwrap(), "{}");
        assert!(reply_text(b"{}\0\0").is_err());
        assert!(reply_text(b"{\0}")
            .unwrap_err()
            .to_string()
            .contains("offset 1"));
        assert!(reply_text(b"{\"a\": \"\xc3\"}").is_err());
        assert_eq!(
            reply_text("{\"név\": \"ü\"}".as_bytes()).unwrap(),
            "{\"név\": \"ü\"}"
        );
    }

    #[test]
    fn non_positive_settings_mean_defaults() {
        let client = Client::new("tcp://127.0.0.1:9", -5, 0).unwrap();
        assert_eq!(client.retries(), DEFAULT_RETRIES);
        assert_eq!(client.timeout(), Duration::from_millis(3000));
        let client = Client::new("tcp://127.0.0.1:9", 7, 250).unwrap();
        assert_eq!(client.retries(), 7);
        assert_eq!(client.timeout(), Duration::from_millis(250));
    }
}
