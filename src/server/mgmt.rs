//! The management socket both programs serve (a REP socket's connections): `status` and
//! `shutdown` requests, with py-vpoller's replies and error texts, and the
//! client side that `stop` and `status` command lines use.

use crate::error::Error;
use crate::server::Stop;
use crate::transport::{Connection, Event, Listener, Reading, Socket, SocketType};
use mio::{Events, Interest, Poll, Token};
use serde_json::{json, Value};
use std::time::Duration;

/// What a management request asks for.
enum Command {
    Status,
    Shutdown,
    /// Answer this reply text and carry on.
    Reply(String),
}

/// Reads a management request as py-vpoller does; `unknown` is the reply's
/// text for an unknown method (the proxy's says "Uknown", sic).
fn command(request: &[u8], unknown: &str) -> Command {
    let Ok(msg) = serde_json::from_slice::<Value>(request) else {
        return Command::Reply("Invalid message received".into());
    };
    let method = msg.as_object().and_then(|fields| fields.get("method"));
    match method {
        None => Command::Reply(to_ascii_text(
            &json!({"success": 1, "msg": "Missing method name"}),
        )),
        Some(Value::String(name)) if name == "status" => Command::Status,
        Some(Value::String(name)) if name == "shutdown" => Command::Shutdown,
        Some(_) => Command::Reply(to_ascii_text(&json!({"success": 1, "msg": unknown}))),
    }
}

/// Answers management requests on `listener` until `stop` is set: `status`
/// with `status()`, `shutdown` by setting `stop`, anything else with
/// py-vpoller's error text (`unknown` for an unknown method). Each
/// connection is a REP socket's: one request, one reply. It runs in a
/// thread of its own, so that the relaying and task loops never wait on it.
fn serve(
    mut listener: Listener,
    unknown: &str,
    stop: &Stop,
    status: &dyn Fn() -> String,
) -> Result<(), Error> {
    const LISTENER: Token = Token(usize::MAX);
    let failed = |what: &str, error: std::io::Error| Error::Internal(format!("{what}: {error}"));
    let mut poll = Poll::new().map_err(|error| failed("cannot watch sockets", error))?;
    poll.registry()
        .register(listener.source(), LISTENER, Interest::READABLE)
        .map_err(|error| failed("cannot watch the management socket", error))?;
    let mut peers: Vec<Option<(Socket, Connection)>> = Vec::new();
    let mut events = Events::with_capacity(64);
    while !stop.is_set() {
        match poll.poll(&mut events, Some(Duration::from_millis(250))) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(failed("cannot wait for the management socket", error)),
        }
        // Connections that did not complete their handshake in time.
        let now = std::time::Instant::now();
        for peer in peers.iter_mut() {
            if peer
                .as_ref()
                .is_some_and(|(_, connection)| connection.handshake_expired(now))
            {
                if let Some((mut socket, _)) = peer.take() {
                    let _ = poll.registry().deregister(&mut socket);
                }
            }
        }
        // Accepting on every wake-up: a connection left in the backlog by a
        // failed accept (out of descriptors) is taken at the next tick.
        let accepting = events.is_empty() || events.iter().any(|event| event.token() == LISTENER);
        if accepting {
            loop {
                let (mut socket, _) = match listener.accept() {
                    Ok(accepted) => accepted,
                    Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                let slot = peers.iter().position(Option::is_none).unwrap_or_else(|| {
                    peers.push(None);
                    peers.len() - 1
                });
                let watched = poll.registry().register(
                    &mut socket,
                    Token(slot),
                    Interest::READABLE | Interest::WRITABLE,
                );
                if watched.is_ok() {
                    peers[slot] = Some((socket, Connection::new(SocketType::Rep)));
                }
            }
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                continue;
            }
            let slot = event.token().0;
            let Some((socket, connection)) = peers.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let open = answer(
                socket,
                connection,
                &mut |request| match command(request, unknown) {
                    Command::Status => status(),
                    Command::Shutdown => {
                        stop.set();
                        shutdown_reply()
                    }
                    Command::Reply(text) => text,
                },
            );
            if !open {
                if let Some((mut socket, _)) = peers[slot].take() {
                    let _ = poll.registry().deregister(&mut socket);
                }
            }
        }
    }
    Ok(())
}

/// Reads what `socket` has, answers each whole request with `reply` and
/// writes what the connection has for the peer; false when the connection
/// ended or broke. One request at a time, as a REP socket: while a reply
/// is still going out, nothing more is read (the peer's further requests
/// wait in the socket's buffers).
fn answer(
    socket: &mut Socket,
    connection: &mut Connection,
    reply: &mut dyn FnMut(&[u8]) -> String,
) -> bool {
    loop {
        if connection.write_to(socket).is_err() {
            return false;
        }
        if connection.backlog() > 0 {
            // The next writable event brings us back.
            return true;
        }
        match connection.poll_event() {
            Ok(Some(Event::Message(frames))) => {
                let text = reply(frames.first().map(Vec::as_slice).unwrap_or_default());
                connection.send([text.as_bytes()]);
            }
            Ok(Some(Event::Ready)) => {}
            Ok(None) => match Reading::nonblocking(connection.read_from(socket)) {
                Reading::Data | Reading::Again => {}
                Reading::Later => return true,
                Reading::Closed(_) => return false,
            },
            Err(reason) => {
                log::warn!("closed a management connection: {reason}");
                return false;
            }
        }
    }
}

/// Runs `work` (a program's main loop, which ends once `stop` is set) with
/// the management loop ([`serve`]) on `endpoint` beside it in a thread of
/// its own; either one ending stops the other. An endpoint that cannot be
/// bound is an error before `work` starts.
pub(crate) fn beside(
    endpoint: &str,
    unknown: &str,
    stop: &Stop,
    status: &(dyn Fn() -> String + Sync),
    work: impl FnOnce() -> Result<(), Error>,
) -> Result<(), Error> {
    let listener = Listener::bind(endpoint)?;
    std::thread::scope(|scope| {
        let managing = scope.spawn(move || {
            let outcome = serve(listener, unknown, stop, status);
            stop.set();
            outcome
        });
        let worked = work();
        stop.set();
        let managed = managing
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("the management loop panicked".into())));
        worked.and(managed)
    })
}

/// The reply to `shutdown`.
fn shutdown_reply() -> String {
    to_ascii_text(&json!({"success": 0, "msg": "Shutdown time has arrived"}))
}

/// pyzmq's `send_json`: `json.dumps` with its default separators and
/// non-ASCII characters escaped.
pub(crate) fn to_ascii_text(value: &Value) -> String {
    crate::helpers::ascii_json(value)
}

/// Sends `{"method": method}` to the management endpoint and returns the
/// reply text (`stop` and `status` of the command lines), waiting at most
/// `timeout_ms`.
pub fn request(endpoint: &str, method: &str, timeout_ms: i32) -> Result<String, Error> {
    let client = crate::Client::new(endpoint, 1, timeout_ms)?;
    let reply = client.try_run(&json!({"method": method}).to_string())?;
    Ok(reply)
}

/// This machine's name, as Python's `platform.node()` gives it.
#[cfg(not(unix))]
pub(crate) fn node_name() -> String {
    std::env::var("COMPUTERNAME").unwrap_or_default()
}

/// This machine's name, as Python's `platform.node()` gives it.
#[cfg(unix)]
pub(crate) fn node_name() -> String {
    let mut buffer = [0u8; 256];
    // SAFETY: gethostname writes at most buffer.len() bytes into buffer.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return String::new();
    }
    let end = buffer
        .iter()
        .position(|byte| *byte == 0)
        .unwrap_or(buffer.len());
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}
